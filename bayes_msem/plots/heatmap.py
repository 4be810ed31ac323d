"""Heatmaps (matplotlib): a value between 0 and 1 per row and column (a probability), coloured on one
scale with a colour bar saying what it is, chosen cells outlined with a legend entry saying why, a
title, axis labels and a caption. Rows run top down, one per unit (a cluster), as in the forest plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_ROW_INCHES, _COLUMN_INCHES, _MARGIN_INCHES, _LABEL_INCHES, _BAR_INCHES = 0.24, 0.75, 2.2, 2.5, 5.0


def heatmap(values: np.ndarray, marked: np.ndarray, rows: list[str], columns: list[str], title: str, xlabel: str,
            ylabel: str, colour_label: str, mark_label: str, caption: str = "", path: str | Path | None = None):
    """The figure of ``values`` (rows, columns) in [0, 1], the cells where ``marked`` is true outlined;
    saved to ``path`` if given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    width = max(5.0, _LABEL_INCHES + _COLUMN_INCHES * len(columns))
    height = _ROW_INCHES * len(rows)
    figure, ax = plt.subplots(figsize=(width, _MARGIN_INCHES + height), layout="constrained")
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for r, c in zip(*np.nonzero(marked)):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="C1", linewidth=2.2))
    ax.set_xticks(np.arange(len(columns)), columns, fontsize="small")
    ax.set_yticks(np.arange(len(rows)), rows, fontsize="small")
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    figure.colorbar(image, ax=ax, label=colour_label, shrink=min(1.0, _BAR_INCHES / max(height, 1e-9)))
    ax.legend(handles=[Patch(facecolor="none", edgecolor="C1", linewidth=2.2, label=mark_label)], loc="upper left",
              bbox_to_anchor=(0.0, 0.0), frameon=False, fontsize="small", borderaxespad=0.2)
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    if caption:
        figure.supxlabel(caption, x=0.01, ha="left", fontsize="small", color="0.3", wrap=True)
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure
