"""The house style for every figure in the book.

One size, one font scale, one colour cycle (colour-blind safe, Okabe–Ito), and
axes that always carry labels.  Chapters call :func:`figure` to get a styled
figure and :func:`finish` to label and tighten it; :func:`finish` refuses an
axis without a label, so no figure ships unlabelled.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import matplotlib.pyplot as plt
from cycler import cycler

#: Okabe–Ito colours (colour-blind safe), the book's colour cycle.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: Width, height in inches of one panel.
PANEL = (4.2, 3.1)
#: Resolution of figures saved by :func:`save`.
DPI = 110

STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.prop_cycle": cycler(color=list(COLORS)),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "legend.frameon": False,
    "figure.constrained_layout.use": True,
    "svg.hashsalt": "sparsebook",
}


def use_style() -> None:
    """Apply the house style globally (idempotent)."""
    plt.rcParams.update(STYLE)


@contextmanager
def style():
    """Context manager applying the house style temporarily."""
    with plt.rc_context(STYLE):
        yield


def figure(ncols: int = 1, nrows: int = 1, **kwargs):
    """A figure of ``nrows × ncols`` panels in the house style; returns ``(fig, axes)``.

    ``axes`` is a flat list (even for one panel), in row-major order.
    """
    if not isinstance(ncols, int) or not isinstance(nrows, int) or ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be ints >= 1; got ncols={ncols!r}, nrows={nrows!r}")
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL[0] * ncols, PANEL[1] * nrows), squeeze=False, **kwargs)
    return fig, [ax for row in axes for ax in row]


def label(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Set an axis's labels (with units, e.g. ``"width n (neurons)"``) and optional title."""
    for name, text in (("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty string")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def finish(fig, legend: bool | Sequence = True):
    """Check every visible axis is labelled, add legends where there are labelled artists, return ``fig``."""
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            continue
        if not ax.get_xlabel() or not ax.get_ylabel():
            raise ValueError(f"axis {ax.get_title()!r} has no x or y label: every figure in the book is labelled")
        if legend:
            handles, labels = ax.get_legend_handles_labels()
            if handles and ax.get_legend() is None:
                ax.legend()
    return fig


def save(fig, path) -> None:
    """Save ``fig`` (PNG) to ``path`` with the house resolution."""
    fig.savefig(path, dpi=DPI)
