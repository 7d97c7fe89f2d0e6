"""The figures the chapters share, drawn with matplotlib on a white background.

White figures stay readable in both the light and the dark theme of the site. Every colour comes
from ``PALETTE``, the Okabe-Ito palette (Okabe and Ito, 2008, "Color Universal Design"), whose
eight colours stay distinct for readers with any of the common colour-vision deficiencies;
``use_course_style`` makes it matplotlib's default colour cycle, so ``C0``, ``C1``... are its
colours too. Every helper draws on an ``Axes`` it is given and returns nothing (or the artist a
caller may need), so a page decides the layout and the caption.

Who uses what: means over seeds with a band (``plot_mean_band``, every chapter); activation
curves, gradient norms per layer, training curves and two-class decision boundaries (chapter 1,
``COLORS``); per-layer histograms and statistics (chapter 2, ``INIT_COLORS``); optimizer paths on
contour plots (chapter 5, ``OPTIMIZER_COLORS``); the best score so far and the 1-D
Gaussian-process posterior (chapter 6, ``SEARCH_COLORS``).

Figures for the web page (issue 18, "readable on a phone"): ``responsive(fig)`` is what a page
glues. It draws the figure twice, at the two widths the site shows figures at: ``WIDE_IN`` (the
text column of a laptop, 672 CSS px) and ``NARROW_IN`` (a 360 px phone, 312 CSS px), with the
panels of a multi-panel figure stacked one above the other in the narrow version. Sizes are in
inches at 96 CSS px per inch, so a font of ``s`` pt is ``s * 96 / 72`` CSS px where the figure is
shown at the width it was drawn for. Each version is a PNG at 1x and 2x (sharp on high-density
screens). The smallest font a version draws and the CSS size it is drawn for ride along in the
PNG's text chunk ``course-figure`` (``figure_meta``), where book/_ext/figures.py finds them to
write ``<picture>``/``srcset`` and tests/test_site_figures.py to check the text a phone shows.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.gridspec import GridSpec, GridSpecFromSubplotSpec
from matplotlib.text import Text

#: The Okabe-Ito colours, by name: safe for colour-blind readers. ``grey`` is for references and
#: baselines (a "none" configuration, a theory line), ``black`` for the strongest emphasis.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
    "grey": "#7f7f7f",
}
#: The default colour cycle (``C0``... ``C6``): yellow, pale on white, comes last.
CYCLE = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")]

#: One colour per activation, the same in every figure of the book.
COLORS = {
    "sigmoid": PALETTE["blue"],
    "tanh": PALETTE["orange"],
    "relu": PALETTE["green"],
    "leaky_relu": PALETTE["vermillion"],
    "prelu": PALETTE["purple"],
    "elu": PALETTE["sky"],
    "gelu": PALETTE["black"],
    "silu": PALETTE["yellow"],
}

#: Two colours for two-class scatter plots (class 0, class 1), distinguishable in greyscale too.
CLASS_COLORS = (PALETTE["blue"], PALETTE["vermillion"])


#: CSS px per inch: a figure ``w`` inches wide is drawn for ``w * CSS_DPI`` CSS px.
CSS_DPI = 96
#: The width figures are drawn at for a laptop: the text column of the site at a 1280 px window.
WIDE_IN = 672 / CSS_DPI
#: The width of the stacked version for a phone: the text column at a 360 px wide screen.
NARROW_IN = 312 / CSS_DPI
#: The pixel densities each version is written at (``srcset`` "1x, 2x").
SCALES = (1, 2)
#: The smallest text a reader should see, in CSS px (the issue's bar for a phone).
MIN_TEXT_PX = 9.0


def color_for(label: str) -> str | None:
    """The activation colour of a label such as ``"relu"`` or ``"relu (He init)"`` (None if none)."""
    return COLORS.get(label.split(" ")[0])


def use_course_style() -> None:
    """Figure defaults for the book: white background, light grid, readable sizes."""
    plt.rcParams.update(
        {
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.dpi": CSS_DPI,  # a notebook shows the figure at its CSS size, as the site does
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": plt.cycler(color=CYCLE),
            "image.cmap": "cividis",  # perceptually uniform and colour-blind safe
        }
    )


def plot_function_and_derivative(
    ax: plt.Axes,
    f: Callable,
    df: Callable,
    name: str,
    x: np.ndarray | None = None,
    title: str | None = None,
) -> None:
    """f(x) solid and f'(x) dashed on one axis; ``title`` defaults to ``name``."""
    x = np.linspace(-5, 5, 1001) if x is None else x
    c = color_for(name)
    ax.plot(x, f(x), color=c, lw=2, label=f"{name}(x)")
    ax.plot(x, df(x), color=c, lw=1.5, ls="--", label=f"{name}'(x)")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_title(name if title is None else title)
    ax.legend(loc="upper left")


def plot_gradient_norms(
    ax: plt.Axes, norms: Mapping[str, Sequence[float]], styles: Mapping[str, str] | None = None
) -> None:
    """||dL/dW|| per layer (log scale), one line per network: where the gradient vanishes.

    Labels are coloured by their first word (``"relu (He init)"`` gets relu's colour);
    ``styles`` maps a label to a matplotlib line style (``"--"``) to tell such lines apart.
    """
    styles = styles or {}
    for label, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        ax.semilogy(layers, values, "o", ls=styles.get(label, "-"), color=color_for(label), label=label)
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel(r"$\|\partial L / \partial W_\ell\|$")
    ax.legend()


def plot_histories(ax: plt.Axes, histories: Mapping[str, object], metric: str = "val_acc") -> None:
    """One curve per run of ``metric`` (a ``History`` field) against the epoch."""
    for label, h in histories.items():
        ax.plot(h.epoch, getattr(h, metric), color=color_for(label), label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend()


def plot_seed_histories(
    ax: plt.Axes, runs: Mapping[str, Sequence[object]], metric: str = "train_loss"
) -> None:
    """Several seeds per label: every run of a label in the label's colour, one legend entry each."""
    for label, hists in runs.items():
        for i, h in enumerate(hists):
            ax.plot(
                h.epoch,
                getattr(h, metric),
                color=color_for(label),
                alpha=0.8,
                lw=1.2,
                label=label if i == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend()


def plot_mean_band(
    ax: plt.Axes,
    x: Sequence[float] | np.ndarray,
    values: Sequence[Sequence[float]] | np.ndarray,
    label: str,
    color: str | None = None,
    ls: str = "-",
    band: str = "sd",
) -> None:
    """The mean over seeds of ``values`` (S, T) against ``x`` (T,), with a shaded band of ± one
    standard deviation (``band="sd"``) or ± one standard error of the mean (``"se"``).

    The band shows how much of a difference between two curves is seed-to-seed noise: the
    chapters draw one band per configuration instead of one line per seed.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(x):
        raise ValueError(f"values must be (seeds, {len(x)}), got {v.shape}")
    mean = v.mean(axis=0)
    spread = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
    if band == "se":
        spread = spread / np.sqrt(v.shape[0])
    elif band != "sd":
        raise ValueError(f"band is 'sd' or 'se', got {band!r}")
    color = color or color_for(label)
    (line,) = ax.plot(x, mean, color=color, ls=ls, lw=1.8, label=f"{label} (mean of {v.shape[0]} seeds)")
    ax.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, lw=0)


def plot_two_classes(ax: plt.Axes, X: np.ndarray, y: np.ndarray, s: float = 14) -> None:
    """Scatter of 2-D points X (N, 2) coloured by their label y (N,) in {0, 1}."""
    for c, marker in ((0, "o"), (1, "^")):
        pts = X[y == c]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=s,
            marker=marker,
            color=CLASS_COLORS[c],
            edgecolors="white",
            linewidths=0.4,
            label=f"class {c}",
            zorder=3,
        )
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")


def plot_decision_boundary(
    ax: plt.Axes,
    prob: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    margin: float = 0.5,
    resolution: int = 200,
):
    """P(class 1 | x) as a filled contour over the data's box, the 0.5 level line, and the data.

    ``prob`` maps an (M, 2) array of points to (M,) probabilities of class 1. Returns the
    filled-contour artist (for a colour bar).
    """
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    p = np.asarray(prob(np.column_stack([g1.ravel(), g2.ravel()]))).reshape(g1.shape)  # (R, R)
    cf = ax.contourf(g1, g2, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45, vmin=0, vmax=1)
    if p.min() < 0.5 < p.max():
        ax.contour(g1, g2, p, levels=[0.5], colors="k", linewidths=1.2)
    plot_two_classes(ax, X, y)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    return cf


#: One colour per hyperparameter search method (book chapter 6), the same in every figure.
SEARCH_COLORS = {
    "grid": PALETTE["grey"],
    "random": PALETTE["blue"],
    "bayes": PALETTE["vermillion"],
    "optuna": PALETTE["green"],
    "successive": PALETTE["orange"],
    "hyperband": PALETTE["purple"],
}


def plot_best_so_far(ax: plt.Axes, tables: Mapping[str, object], ylabel: str = "best score so far") -> None:
    """Every trial's score (dots) and the best score so far (steps) against the trial number.

    ``tables`` maps a label to a ``course_lib.search`` results table (columns ``trial``, ``score``,
    ``best_so_far``); a label is coloured by its first word (``"bayes (GP + EI)"`` -> bayes).
    """
    for label, t in tables.items():
        c = SEARCH_COLORS.get(label.split(" ")[0].lower())
        n = np.asarray(t["trial"]) + 1
        ax.plot(n, t["score"], "o", color=c, alpha=0.35, ms=4)
        ax.step(n, t["best_so_far"], where="post", color=c, lw=2, label=label)
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.legend()


def plot_gp_1d(
    ax: plt.Axes,
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    X_obs: np.ndarray,
    y_obs: np.ndarray,
    truth: np.ndarray | None = None,
) -> None:
    """A 1-D Gaussian-process posterior on the points x (M,): the mean, a band of mean +- 2 std, the
    observations (X_obs, y_obs) and, when given, the true function's values ``truth`` (M,) dashed."""
    if truth is not None:
        ax.plot(x, truth, color="k", ls="--", lw=1, label="true function")
    ax.fill_between(
        x, mean - 2 * std, mean + 2 * std, color=PALETTE["blue"], alpha=0.2, lw=0, label="mean ± 2 std"
    )
    ax.plot(x, mean, color=PALETTE["blue"], lw=1.8, label="posterior mean")
    ax.plot(X_obs, y_obs, "o", color="k", ms=5, label="observations", zorder=3)


#: One colour per optimizer (book chapter 5), the same in every figure.
OPTIMIZER_COLORS = {
    "SGD": PALETTE["grey"],
    "momentum": PALETTE["blue"],
    "Nesterov": PALETTE["sky"],
    "AdaGrad": PALETTE["green"],
    "RMSProp": PALETTE["orange"],
    "Adam": PALETTE["vermillion"],
    "AdamW": PALETTE["purple"],
}


def plot_paths_on_contours(
    ax: plt.Axes,
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    levels: int | Sequence[float] = 25,
    minimum: Sequence[float] | None = None,
    log_levels: bool = True,
    styles: Mapping[str, str] | None = None,
) -> None:
    """Level sets of a 2-D loss ``f(X, Y)`` (elementwise on grids) and one optimizer path per label.

    ``paths`` maps a label to the iterates, an array (T, 2); a label is coloured by its first word
    (``OPTIMIZER_COLORS``) and drawn with the line style ``styles[label]`` (default solid; a
    dashed line is drawn wider, so that a path hidden under another one still shows). With
    ``log_levels`` the level sets are spaced on a log scale above the grid's minimum, which shows
    both the valley floor and the steep walls of losses such as Rosenbrock's. ``minimum`` is
    marked with a star, each path's start with a circle.
    """
    styles = styles or {}
    gx, gy = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    z = f(gx, gy)  # (200, 200)
    if log_levels and np.ndim(levels) == 0:
        lo = float(z.min())
        lv = lo + np.logspace(-3, np.log10(float(z.max()) - lo + 1e-12), int(levels))
    else:
        lv = levels
    ax.contour(gx, gy, z, levels=lv, colors="#b0b0b0", linewidths=0.6)
    for label, path in paths.items():
        path = np.asarray(path)
        inside = np.all(np.isfinite(path), axis=1)
        c = OPTIMIZER_COLORS.get(label.split(" ")[0])
        ls = styles.get(label, "-")
        lw = 1.4 if ls == "-" else 2.6
        ax.plot(path[inside, 0], path[inside, 1], ls=ls, color=c, lw=lw, label=label, alpha=0.9)
        ax.plot(path[0, 0], path[0, 1], "o", color="k", ms=4)
    if minimum is not None:
        ax.plot(*minimum, "*", color="k", ms=12, zorder=5)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")


#: One colour per weight initialization (book chapter 2), the same in every figure.
INIT_COLORS = {
    "zeros": PALETTE["grey"],
    "constant": PALETTE["black"],
    "N(0, 0.01²)": PALETTE["blue"],
    "N(0, 1)": PALETTE["vermillion"],
    "Xavier": PALETTE["orange"],
    "He": PALETTE["green"],
    "LeCun": PALETTE["purple"],
}


def init_color(label: str) -> str | None:
    """The colour of an initializer label such as ``"He"`` or ``"Xavier (gain 5/3)"`` (None if none)."""
    for name, c in INIT_COLORS.items():
        if label == name or label.startswith(name + " "):
            return c
    return None


def plot_layer_histograms(
    ax: plt.Axes,
    values: Sequence[np.ndarray],
    bins: int = 80,
    xlim: tuple[float, float] | None = None,
    cmap: str = "viridis",
):
    """One outlined histogram (a density) per layer of the values in ``values[l]`` (any shape),
    coloured from dark (layer 1) to light (last layer), as in Glorot and Bengio's figures.

    ``xlim`` defaults to the central 99.8 % of all values. Returns a ``ScalarMappable`` for a
    colour bar labelled with the layer number.
    """
    from matplotlib.colors import ListedColormap

    flat = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    if xlim is None:
        every = np.concatenate(flat)
        lo, hi = np.quantile(every, [0.001, 0.999])
        if hi <= lo:  # a spike: give it some room
            lo, hi = lo - 1e-12 - abs(lo) * 0.1, hi + 1e-12 + abs(hi) * 0.1
        xlim = (float(lo), float(hi))
    edges = np.linspace(xlim[0], xlim[1], bins + 1)
    colors = plt.get_cmap(cmap)(np.linspace(0.0, 0.9, len(flat)))  # the lightest end is hard to see
    for v, c in zip(flat, colors, strict=True):
        counts, _ = np.histogram(v, bins=edges)
        density = counts / max(len(v), 1) / np.diff(edges)
        ax.stairs(density, edges, color=c, lw=1.2)
    ax.set_xlim(*xlim)
    norm = plt.Normalize(0.5, len(flat) + 0.5)
    return plt.cm.ScalarMappable(norm=norm, cmap=ListedColormap(colors))


def plot_per_layer(
    ax: plt.Axes,
    values: Mapping[str, Sequence[float]],
    ylabel: str,
    styles: Mapping[str, str] | None = None,
    log: bool = True,
) -> None:
    """One line per label of a per-layer quantity (a std, a norm) against the layer number.

    Labels are coloured by ``init_color``; ``styles`` maps a label to a line style (``"--"``).
    Values that are not finite or not positive (on a log scale) are left out.
    """
    styles = styles or {}
    for label, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        layer = np.arange(1, len(v) + 1)
        keep = np.isfinite(v) & ((v > 0) if log else True)
        style = styles.get(label, "-")
        ax.plot(layer[keep], v[keep], "o", ls=style, ms=4, color=init_color(label), label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel(ylabel)
    ax.legend()


# --- figures for the web page: a wide and a stacked version, at 1x and 2x -------------------------

PNG_KEY = "course-figure"  # the keyword of the PNG text chunk that carries a figure's metadata
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes):
    """(type, payload) of every chunk of a PNG file."""
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        yield data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n


def figure_meta(data: bytes) -> dict | None:
    """The metadata ``responsive`` wrote into a PNG (its ``course-figure`` text chunk), or None."""
    for kind, payload in _png_chunks(data):
        if kind == b"tEXt" and payload.startswith(PNG_KEY.encode() + b"\0"):
            return json.loads(payload[len(PNG_KEY) + 1 :].decode("latin-1"))
    return None


def with_figure_meta(data: bytes, meta: dict | None) -> bytes:
    """The PNG ``data`` with its ``course-figure`` chunk replaced by ``meta`` (removed if None)."""
    out = [_PNG_SIGNATURE]
    for kind, payload in _png_chunks(data):
        if kind == b"tEXt" and payload.startswith(PNG_KEY.encode() + b"\0"):
            continue
        if kind == b"IEND" and meta is not None:
            text = PNG_KEY.encode() + b"\0" + json.dumps(meta, separators=(",", ":")).encode("latin-1")
            out.append(_chunk(b"tEXt", text))
        out.append(_chunk(kind, payload))
    return b"".join(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def smallest_text(fig: plt.Figure) -> tuple[float, str]:
    """The smallest font size (pt) of the text a figure draws, and that text.

    Every visible, non-empty ``Text`` counts: titles, labels, tick labels, legends, annotations.
    Mathtext sub- and superscripts are drawn at about 70 % of their text's size and are not counted.
    """
    fig.canvas.draw()  # tick labels exist only once the figure has been drawn
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    if not texts:
        return float("inf"), ""
    t = min(texts, key=lambda t: t.get_fontsize())
    return float(t.get_fontsize()), t.get_text()


def wrap_titles(fig: plt.Figure) -> None:
    """Break an axes title that is wider than its axes into lines (between words, never inside
    ``$math$``), so a narrowed figure keeps its titles inside its width. A title the page broke
    into lines itself is left alone."""
    renderer = fig.canvas.get_renderer()
    for _ in range(6):  # the layout moves as titles wrap: measure again until every title fits
        fig.canvas.draw()
        changed = False
        for ax in fig.axes:
            width = 0.97 * ax.get_window_extent(renderer).width
            for t in (ax.title, ax._left_title, ax._right_title):
                original = getattr(t, "_course_original", None) or t.get_text()
                extent = t.get_window_extent(renderer).width if original else 0
                if extent <= width or width <= 0 or ("\n" in original and original == t.get_text()):
                    continue
                lines = t.get_text().count("\n") + 1
                limit = max(6, int(len(original) / lines * width / extent))  # characters per line
                t._course_original = original
                t.set_text(_wrap(original, limit))
                changed = True
        if not changed:
            return


def _wrap(text: str, limit: int) -> str:
    words = re.findall(r"\$[^$]*\$\S*|\S+", text)
    lines, line = [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > limit:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    return "\n".join([*lines, line])


def _wrap_to(t: Text, width: float, renderer) -> bool:
    """Break the text ``t`` into lines so it is at most ``width`` display px wide; True if changed."""
    original = getattr(t, "_course_original", None) or t.get_text()
    extent = t.get_window_extent(renderer).width if original.strip() else 0
    if extent <= width or width <= 0:
        return False
    lines = t.get_text().count("\n") + 1
    limit = max(6, int(len(original) / lines * width / extent))  # characters per line
    wrapped = _wrap(original, limit)
    if wrapped == t.get_text():
        return False
    t._course_original = original
    t.set_text(wrapped)
    return True


def _legends_below(fig: plt.Figure, width: float, renderer) -> None:
    """A legend too wide for its axes (or beside them) moves under its axes, one column, its labels
    wrapped to the figure's width: inside a narrow panel it would cover the data or stick out."""
    for ax in fig.axes:
        leg = ax.get_legend()
        box = ax.get_window_extent(renderer)
        if leg is None or box.width <= 0:
            continue
        extent = leg.get_window_extent(renderer)
        if extent.width <= 0.8 * box.width and extent.x1 <= box.x1 + 1:
            continue
        texts = leg.get_texts()
        labels = [t.get_text() for t in texts]
        size = texts[0].get_fontsize() if texts else None
        title = leg.get_title().get_text() or None
        tight = ax.get_tightbbox(renderer)
        y = (tight.y0 - 4 - box.y0) / box.height  # under the tick labels and the x label
        new = ax.legend(leg.legend_handles, labels, loc="upper center", bbox_to_anchor=(0.5, y),
                        ncols=1, fontsize=size, title=title)
        for t in new.get_texts():
            _wrap_to(t, 0.85 * width * fig.dpi, renderer)
        w, h = fig.get_size_inches()  # the panel keeps its height: the figure grows by the legend's
        fig.set_size_inches(w, h + new.get_window_extent(renderer).height / fig.dpi)


def _fit(fig: plt.Figure, width: float):
    """Make everything the figure draws fit in ``width`` inches; return that drawn area, padded,
    in inches (the same for every scale). Legends too wide for their axes move under them
    (``_legends_below``), texts of an axes wider than the figure are wrapped, and what still
    sticks out (a label beside the axes) is made room for by narrowing the figure a little."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    if fig.get_tightbbox(renderer).width > width + 0.05:
        _legends_below(fig, width, renderer)
        for ax in fig.axes:
            for t in ax.texts:
                _wrap_to(t, 0.9 * width * fig.dpi, renderer)
    for _ in range(6):
        fig.canvas.draw()
        box = fig.get_tightbbox(renderer).padded(0.04)
        excess = box.width - width
        w, h = fig.get_size_inches()
        if excess <= 0.01 or w - excess < 0.8 * width:
            break
        fig.set_size_inches(w - excess, h)
    return box


def _render(fig: plt.Figure, scale: int, box) -> bytes:
    """A PNG of the area ``box`` (inches) of the figure at ``scale`` device px per CSS px, in 256
    colours. A palette of 256 colours (median cut, no dithering) is not visibly different on these
    white-background plots and about halves the bytes of a full-colour PNG."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CSS_DPI * scale, bbox_inches=box)
    image = Image.open(buf).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True
    )
    return out.getvalue()


def _version(fig: plt.Figure, layout: str, width: float) -> dict:
    """The PNGs of a figure as it is now laid out, at most ``width`` inches wide, at each of
    ``SCALES``, with their metadata."""
    wrap_titles(fig)
    box = _fit(fig, width)
    pt, text = smallest_text(fig)
    pngs = {s: _render(fig, s, box) for s in SCALES}
    w, h = round(box.width * CSS_DPI), round(box.height * CSS_DPI)
    meta = {
        "layout": layout,
        "css_width": w,  # CSS px: the 1x PNG's pixels, half the 2x one's
        "css_height": h,
        "min_font_pt": pt,
        "min_font_px": round(pt * CSS_DPI / 72, 2),  # at the CSS width it is drawn for
        "min_font_text": text[:60],
    }
    return {
        f"{layout}@{s}x": with_figure_meta(png, {**meta, "scale": s}) for s, png in pngs.items()
    } | {"meta": meta}


def _cells(fig: plt.Figure) -> dict:
    """The panels of a figure: each top-level grid cell (a SubplotSpec of the figure's one outer
    GridSpec) -> the axes or nested gridspecs that live in it. Colour bars placed by the layout
    engine (``fig.colorbar(ax=...)``) follow their axes and are not panels."""
    cells: dict = {}
    outer = None
    for ax in fig.axes:
        ss = ax.get_subplotspec()
        if ss is None:
            if getattr(ax, "_colorbar", None) is not None or hasattr(ax, "_colorbar_info"):
                continue
            raise ValueError(
                "responsive(): an axes placed by fig.add_axes cannot be restacked; use a gridspec "
                "(plt.subplots) and fig.colorbar(..., ax=axes), or pass narrow=False"
            )
        gs, owner = ss.get_gridspec(), ax
        while isinstance(gs, GridSpecFromSubplotSpec):  # a nested grid: move the cell it sits in
            ss, owner = gs._subplot_spec, gs
            gs = ss.get_gridspec()
        if outer is None:
            outer = gs
        elif gs is not outer:
            raise ValueError("responsive(): the figure's panels belong to more than one outer grid")
        key = (ss.rowspan.start, ss.colspan.start)
        cells.setdefault(key, {"spec": ss, "owners": []})
        if owner not in cells[key]["owners"]:
            cells[key]["owners"].append(owner)
    return {"grid": outer, "cells": cells}


def _restack(fig: plt.Figure, order, narrow_height: float | None) -> None:
    """Lay the panels of ``fig`` out one above the other, ``NARROW_IN`` wide."""
    found = _cells(fig)
    outer, cells = found["grid"], found["cells"]
    if order == "rows":
        keys = sorted(cells)
    elif order == "columns":
        keys = sorted(cells, key=lambda k: (k[1], k[0]))
    else:
        keys = [tuple(k) for k in order]
        if sorted(keys) != sorted(cells):
            raise ValueError(f"order must list every panel's (row, col) once: {sorted(cells)}")
    W, H = fig.get_size_inches()
    hr = np.asarray(outer.get_height_ratios() or [1] * outer.nrows, dtype=float)
    wr = np.asarray(outer.get_width_ratios() or [1] * outer.ncols, dtype=float)
    heights = []
    for k in keys:  # a panel keeps its aspect ratio (its share of the old figure), within limits
        ss = cells[k]["spec"]
        h_in = H * hr[ss.rowspan].sum() / hr.sum()
        w_in = W * wr[ss.colspan].sum() / wr.sum()
        heights.append(h_in * NARROW_IN / w_in)
    if narrow_height is None:  # a panel of a wide figure would be flat on a phone: 2 in at least
        heights = [float(np.clip(h, 2.0, 3.2)) for h in heights]
    total = narrow_height or sum(heights)
    new = GridSpec(len(keys), 1, figure=fig, height_ratios=heights)
    for i, k in enumerate(keys):
        for owner in cells[k]["owners"]:
            if isinstance(owner, GridSpecFromSubplotSpec):
                owner._subplot_spec = new[i]
            else:
                owner.set_subplotspec(new[i])
    for ax in fig.axes:  # shared axes hid their inner tick labels: each panel now stands alone
        if ax.get_subplotspec() is not None:
            ax.tick_params(labelbottom=True, labelleft=True)
    fig.set_size_inches(NARROW_IN, total)


class Responsive:
    """A figure drawn for the site: PNGs of a wide and a narrow (stacked) version, 1x and 2x.

    Jupyter (and MyST-NB's ``glue``) shows the wide 1x PNG; the other versions travel inside it
    (base64 in its ``course-figure`` text chunk) to the build, where book/_ext/figures.py writes
    them out as files and serves them with ``<picture>`` and ``srcset``.
    """

    def __init__(self, versions: dict):
        self.versions = versions

    @property
    def meta(self) -> dict:
        return figure_meta(self.versions["wide@1x"])

    def _repr_png_(self) -> bytes:
        return self.versions["wide@1x"]

    def _repr_mimebundle_(self, include=None, exclude=None):
        main = self.versions["wide@1x"]
        others = {k: base64.b64encode(v).decode("ascii") for k, v in self.versions.items() if k != "wide@1x"}
        data = with_figure_meta(main, {**figure_meta(main), "variants": others})
        return {"image/png": base64.b64encode(data).decode("ascii"), "text/plain": "<course figure>"}


def responsive(
    fig: plt.Figure,
    narrow: bool = True,
    order: str | Sequence[tuple[int, int]] = "rows",
    height: float | None = None,
    narrow_height: float | None = None,
) -> Responsive:
    """The figure drawn for the site: ``WIDE_IN`` wide (``height`` inches tall, default: the
    figure's own aspect ratio), and ``NARROW_IN`` wide with its panels stacked one per row.

    ``order`` is the order of the panels from top to bottom on a phone: ``"rows"`` (reading
    order), ``"columns"``, or the (row, column) of each panel's top-left cell. ``narrow=False``
    keeps the wide layout and only narrows the figure (a single panel, or one that already
    stacks). The figure is changed (resized and relaid out); close it afterwards.
    """
    W, H = fig.get_size_inches()
    fig.set_size_inches(WIDE_IN, height or H * WIDE_IN / W)
    versions = _version(fig, "wide", WIDE_IN)
    versions.pop("meta")
    if narrow:
        _restack(fig, order, narrow_height)
    else:
        w, h = fig.get_size_inches()
        fig.set_size_inches(NARROW_IN, narrow_height or h * NARROW_IN / w)
    narrow_versions = _version(fig, "narrow", NARROW_IN)
    narrow_meta = narrow_versions.pop("meta")
    versions.update(narrow_versions)
    # The main PNG says what the narrow one is drawn for too: the build writes <source> from it.
    versions["wide@1x"] = with_figure_meta(
        versions["wide@1x"], {**figure_meta(versions["wide@1x"]), "narrow": narrow_meta}
    )
    return Responsive(versions)
