"""Multiple groups, as lavaan's ``group``, ``group.equal`` and ``group.partial``: one copy of the
parameter table per group, in a ``group`` column, whose free parameters are the group's own
unless an equality shares them.

A parameter of group g is shared by all groups when it carries a label (a label names one
parameter, in every group, as in lavaan), or when its class is in ``group_equal`` and its name
is not in ``group_partial``. A parameter of a class in ``group_approx`` (blavaan's ``wiggle``,
Muthén & Asparouhov's approximate invariance) stays each group's own but is tied to the others
by its prior: θ_g = μ + δ_g with δ_g ~ N(0, sd²), μ with the parameter's prior (column
``approx``: the sd). With equal intercepts the factor means of the top level are fixed to
0 in the first group only and free in the others (lavaan's identification of scalar models),
unless the means are equal too (then 0 in every group); likewise with approximately equal
intercepts (Muthén & Asparouhov 2013).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .table import SpecificationError

EQUALITY_CLASSES = ("loadings", "intercepts", "residuals", "residual.covariances", "lv.variances",
                    "lv.covariances", "means", "regressions", "thresholds")


def row_class(op: str, lhs: str, rhs: str, latent: set[str]) -> str | None:
    """lavaan's ``group.equal`` class of a table row: loadings, regressions, thresholds, intercepts
    (of observed variables) or means (of latent ones), residuals and residual.covariances (of
    observed variables), lv.variances and lv.covariances."""
    if op == "=~":
        return "loadings"
    if op == "~":
        return "regressions"
    if op == "|":
        return "thresholds"
    if op == "~1":
        return "means" if lhs in latent else "intercepts"
    if op == "~~" and lhs == rhs:
        return "lv.variances" if lhs in latent else "residuals"
    if op == "~~":
        return "lv.covariances" if lhs in latent and rhs in latent else "residual.covariances"
    return None


APPROXIMATE_CLASSES = ("loadings", "intercepts", "means", "regressions", "thresholds")


def check_equalities(group_equal: Sequence[str], group_partial: Sequence[str],
                     group_approx: Mapping[str, float] | None = None) -> None:
    """``group_equal`` names lavaan's classes; ``group_partial`` names parameters as ``lhs op rhs``;
    ``group_approx`` maps classes to the SD of each group's deviation."""
    for name, sd in (group_approx or {}).items():
        if name not in APPROXIMATE_CLASSES:
            raise SpecificationError(f"group_approx takes the classes {', '.join(APPROXIMATE_CLASSES)} (the variance "
                                     f"classes not yet); got {name!r}.")
        if not isinstance(sd, (int, float)) or isinstance(sd, bool) or not sd > 0:
            raise SpecificationError(f"the deviation SD of {name!r} in group_approx must be a number > 0, e.g. 0.05; "
                                     f"got {sd!r}.")
        if name in group_equal:
            raise SpecificationError(f"{name!r} is in group_equal and in group_approx; a class is either equal or "
                                     "approximately equal across groups.")
    unknown = [name for name in group_equal if name not in EQUALITY_CLASSES]
    if unknown:
        raise SpecificationError(f"unknown group_equal class(es) {unknown}; the classes are {', '.join(EQUALITY_CLASSES)}.")
    for name in group_partial:
        if not any(op in name.replace(" ", "") for op in ("=~", "~~", "~1", "~", "|")):
            raise SpecificationError(f"group_partial names parameters as in lavaan, 'lhs op rhs' (e.g. 'visual =~ x2', "
                                     f"'x3 ~1'); got {name!r}.")


def group_table(table: pd.DataFrame, groups: Sequence[str], group_equal: Sequence[str] = (),
                group_partial: Sequence[str] = (), group_approx: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The table of each group stacked (column ``group``), free parameters renumbered: a free row's
    number is shared across groups where it is equal (module docstring), else the group's own;
    column ``approx`` holds the deviation SD of the approximately equal ones (else NaN)."""
    group_approx = dict(group_approx or {})
    check_equalities(group_equal, group_partial, group_approx)
    latent = set(table.loc[table["op"] == "=~", "lhs"])
    partial = {name.replace(" ", "") for name in group_partial}
    top = table["level"].iloc[-1] if len(table) else ""
    means_free = ("intercepts" in group_equal or "intercepts" in group_approx) and "means" not in group_equal
    copies = []
    for rank, group in enumerate(groups):
        copy = table.assign(group=group)
        if means_free and rank > 0:  # factor means at the top level: free where intercepts are equal
            means = (copy["op"] == "~1") & copy["lhs"].isin(latent) & (copy["level"] == top) & (copy["free"] == 0)
            copy.loc[means, "free"] = -1  # marked, numbered below
            copy.loc[means, "fixed"] = float("nan")
        copies.append(copy)
    stacked = pd.concat(copies, ignore_index=True)
    numbers: dict[object, int] = {}
    free, approx = [], []
    for row in stacked.itertuples(index=False):
        name = f"{row.lhs}{row.op}{row.rhs}"
        kind = row_class(row.op, row.lhs, row.rhs, latent)
        approx.append(group_approx[kind] if row.free > 0 and kind in group_approx and name not in partial
                      and not isinstance(row.label, str) else float("nan"))
        if row.free == 0:
            free.append(0)
            continue
        shared = row.free > 0 and (isinstance(row.label, str) or (kind in group_equal and name not in partial))
        key = (row.level, row.free) if shared else (row.group, row.level, row.lhs, row.op, row.rhs, row.free)
        free.append(numbers.setdefault(key, len(numbers) + 1))
    return stacked.assign(free=free, approx=approx)
