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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

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
            "figure.dpi": 100,
            "font.size": 10,
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
    ax.legend(loc="upper left", fontsize=8)


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
    ax.legend(fontsize=8)


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
    ax.legend(fontsize=8)


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
    ax.legend(fontsize=8)


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
    ax.legend(fontsize=8)
