"""Posterior predictive check figures (matplotlib): per statistic, a histogram of its values in the
replicated data sets with the data's value as a vertical line (or, for a realized discrepancy, the
histogram of the data's values at each draw) and its PPP in the title; with item pairs, first a
triangle of the pairs' PPPs (one cell per pair, small PPPs dark).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_PANEL_INCHES, _COLUMNS = 2.9, 3


def check_figure(panels: list[tuple[str, float | np.ndarray, np.ndarray, float]], pair_ppp: np.ndarray | None, items: list[str],
                 title: str, path: str | Path | None = None):
    """``panels``: (title, observed value or values, replicated values, PPP) of each statistic; ``pair_ppp``
    (items × items, NaN off the pairs) the PPP of each item pair's X², drawn first when given;
    saved to ``path`` if given."""
    import matplotlib.pyplot as plt

    count = len(panels) + (pair_ppp is not None)
    columns = min(_COLUMNS, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                                figsize=(0.4 + _PANEL_INCHES * columns, 0.8 + _PANEL_INCHES * 0.85 * rows))
    flat = list(axes.ravel())
    if pair_ppp is not None:
        ax = flat.pop(0)
        image = ax.imshow(pair_ppp, cmap="Blues_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks(np.arange(len(items)), items, fontsize="x-small", rotation=90)
        ax.set_yticks(np.arange(len(items)), items, fontsize="x-small")
        ax.set_title("PPP of each item pair's X²", fontsize="medium")
        figure.colorbar(image, ax=ax, shrink=0.8)
    for ax, (name, observed, replicated, ppp) in zip(flat, panels):
        finite = replicated[np.isfinite(replicated)]
        ax.hist(finite, bins=30, color="C0", alpha=0.6, label="replicated")
        if np.ndim(observed):  # a realized discrepancy: the data's value at each draw
            ax.hist(observed, bins=30, histtype="step", color="black", linewidth=1.5, label="observed")
        else:
            ax.axvline(observed, color="black", linewidth=1.8, label="observed")
        ax.set_title(f"{name}\nPPP {ppp:.3f}", fontsize="small")
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    if panels:
        flat[0].legend(frameon=False, fontsize="x-small")
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure
