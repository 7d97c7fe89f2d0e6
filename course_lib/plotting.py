"""The figures the chapters share, drawn with matplotlib on a white background.

White figures stay readable in both the light and the dark theme of the site. Every helper
draws on an ``Axes`` it is given and returns nothing (or the artist a caller may need), so a
page decides the layout and the caption. Book chapter 1 uses all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

#: One colour per activation, the same in every figure of the book.
COLORS = {
    "sigmoid": "#1f77b4",
    "tanh": "#ff7f0e",
    "relu": "#2ca02c",
    "leaky_relu": "#d62728",
    "prelu": "#9467bd",
    "elu": "#8c564b",
}

#: Two colours for two-class scatter plots (class 0, class 1), distinguishable in greyscale too.
CLASS_COLORS = ("#1f77b4", "#d62728")


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
