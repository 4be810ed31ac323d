"""Multiple groups, as lavaan's ``group``, ``group.equal`` and ``group.partial``: one copy of the
parameter table per group, in a ``group`` column, whose free parameters are the group's own
unless an equality shares them.

A parameter of group g is shared by all groups when it carries a label (a label names one
parameter, in every group, as in lavaan), or when its class is in ``group_equal`` and its name
is not in ``group_partial``. With equal intercepts the factor means of the top level are fixed to
0 in the first group only and free in the others (lavaan's identification of scalar models),
unless the means are equal too (then 0 in every group).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def check_equalities(group_equal: Sequence[str], group_partial: Sequence[str]) -> None:
    """``group_equal`` names lavaan's classes; ``group_partial`` names parameters as ``lhs op rhs``."""
    unknown = [name for name in group_equal if name not in EQUALITY_CLASSES]
    if unknown:
        raise SpecificationError(f"unknown group_equal class(es) {unknown}; the classes are {', '.join(EQUALITY_CLASSES)}.")
    for name in group_partial:
        if not any(op in name.replace(" ", "") for op in ("=~", "~~", "~1", "~", "|")):
            raise SpecificationError(f"group_partial names parameters as in lavaan, 'lhs op rhs' (e.g. 'visual =~ x2', "
                                     f"'x3 ~1'); got {name!r}.")


def group_table(table: pd.DataFrame, groups: Sequence[str], group_equal: Sequence[str] = (),
                group_partial: Sequence[str] = ()) -> pd.DataFrame:
    """The table of each group stacked (column ``group``), free parameters renumbered: a free row's
    number is shared across groups where it is equal (module docstring), else the group's own."""
    check_equalities(group_equal, group_partial)
    latent = set(table.loc[table["op"] == "=~", "lhs"])
    partial = {name.replace(" ", "") for name in group_partial}
    top = table["level"].iloc[-1] if len(table) else ""
    means_free = "intercepts" in group_equal and "means" not in group_equal
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
    free = []
    for row in stacked.itertuples(index=False):
        if row.free == 0:
            free.append(0)
            continue
        name = f"{row.lhs}{row.op}{row.rhs}"
        shared = row.free > 0 and (isinstance(row.label, str) or (
            row_class(row.op, row.lhs, row.rhs, latent) in group_equal and name not in partial))
        key = (row.level, row.free) if shared else (row.group, row.level, row.lhs, row.op, row.rhs, row.free)
        free.append(numbers.setdefault(key, len(numbers) + 1))
    return stacked.assign(free=free)
