"""Forest plots (matplotlib): one row per quantity, rows grouped under bold headers (a level and a
section of the parameter table, an entry of a covariance block), one colour per series (a prior
set, a kind of sensitivity) with a legend when there are several, a dashed reference line (zero,
or a threshold), a title, an axis label and a caption saying what the marks are.

A series drawn from posterior draws shows the mean as a point, the 50% interval as a thick line
and the 95% equal-tailed interval as a thin one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SettingsError
from ..spec.plan import parameter_name
from ..spec.table import section

INTERVALS_CAPTION = "Points: posterior means; thick and thin lines: 50% and 95% intervals."
_ROW_INCHES, _MARGIN_INCHES, _WIDTH_INCHES = 0.24, 1.6, 7.5


@dataclass(frozen=True)
class Series:
    """One colour of a forest plot: a point per row and, optionally, inner and outer intervals
    (rows, 2)."""

    name: str
    points: np.ndarray
    inner: np.ndarray | None = None
    outer: np.ndarray | None = None


def from_draws(name: str, draws: np.ndarray) -> Series:
    """The series of draws (samples, rows): means, 50% and 95% equal-tailed intervals."""
    q = np.quantile(draws, [0.025, 0.25, 0.75, 0.975], axis=0)
    return Series(name, draws.mean(axis=0), q[1:3].T, q[[0, 3]].T)


def free_rows(table: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """The free parameters of ``table``, one row per free number (those named in ``names`` only, as
    in θ: ``"between:fb~~fb"``), ordered by level and summary section, with columns lhs, op, rhs,
    level, ``name`` (θ's), ``group`` (level and section) and ``label`` (lavaan form)."""
    free = table[table["free"] > 0].drop_duplicates("free").sort_values("free")
    rows = free[["lhs", "op", "rhs", "level"]].reset_index(drop=True)
    rows["name"] = [parameter_name(*r) for r in rows[["level", "lhs", "op", "rhs"]].itertuples(index=False)]
    if names is not None:
        unknown = sorted(set(names) - set(rows["name"]))
        if unknown:
            raise SettingsError(f"not free parameters of this model: {', '.join(map(repr, unknown))}; name them as "
                                f"in theta: {', '.join(rows['name'])}.")
        rows = rows[rows["name"].isin(names)]
    places = [section(r) for r in rows.to_dict("records")]
    levels = list(dict.fromkeys(rows["level"]))
    rows = rows.assign(group=[f"{level}: {title}" if level else title for level, (_, title) in zip(rows["level"], places)],
                       label=[f"{r.lhs} {r.op} {r.rhs}".strip() for r in rows.itertuples()],
                       order=[(levels.index(level), place) for level, (place, _) in zip(rows["level"], places)])
    return rows.sort_values("order", kind="stable").drop(columns="order").reset_index(drop=True)


def forest(groups: list[str], labels: list[str], series: list[Series], title: str, xlabel: str, ylabel: str = "",
           caption: str = INTERVALS_CAPTION, reference: float | None = 0.0, reference_label: str | None = None,
           path: str | Path | None = None):
    """The figure: rows ``labels`` under the headers ``groups`` (one per row; consecutive equal
    headers share one, an empty one shows none), each series' marks on each row; saved to ``path``
    if given."""
    import matplotlib.pyplot as plt

    positions, ticks, names, headers = _layout(groups, labels)
    figure, ax = plt.subplots(figsize=(_WIDTH_INCHES, _MARGIN_INCHES + _ROW_INCHES * len(ticks)), layout="constrained")
    offsets = (np.arange(len(series)) - (len(series) - 1) / 2) * min(0.25, 0.7 / len(series))
    for k, (s, offset) in enumerate(zip(series, offsets)):
        y, colour = positions + offset, f"C{k}"
        for interval, width in ((s.outer, 1.0), (s.inner, 3.0)):
            if interval is not None:
                ax.hlines(y, interval[:, 0], interval[:, 1], color=colour, linewidth=width)
        ax.plot(s.points, y, "o", color=colour, markersize=4.5, markeredgecolor="white", markeredgewidth=0.6,
                label=s.name)
    if reference is not None:
        ax.axvline(reference, color="0.35", linestyle="--", linewidth=0.9, zorder=1.5, label=reference_label)
    ax.set_yticks(ticks, names)
    for tick, header in zip(ax.get_yticklabels(), headers):
        if header:
            tick.set_fontweight("bold")
    ax.set_ylim(max(ticks) + 0.8, -0.8)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) > 1 or reference_label:
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=len(series) + bool(reference_label),
                  frameon=False, fontsize="small", borderaxespad=0.2)
    if caption:
        figure.supxlabel(caption, x=0.01, ha="left", fontsize="small", color="0.3")
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure


def _layout(groups: list[str], labels: list[str]) -> tuple[np.ndarray, list[float], list[str], list[bool]]:
    """The y position of each row (top down, a header's row before each new group), and every tick's
    position, text and whether it is a header."""
    ticks: list[tuple[float, str, bool]] = []
    positions, previous = [], None
    for group, label in zip(groups, labels):
        if group != previous and group:
            ticks.append((len(ticks), group, True))
        previous = group
        positions.append(len(ticks))
        ticks.append((len(ticks), f"  {label}" if group else label, False))
    return np.array(positions, dtype=float), *map(list, zip(*ticks))
