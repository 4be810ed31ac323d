"""Multiple groups, as lavaan's ``group``, ``group.equal`` and ``group.partial``: one copy of the
parameter table per group, in a ``group`` column, whose free parameters are the group's own
unless an equality shares them.

A parameter of group g is shared by all groups when it carries a label (a label names one
parameter, in every group, as in lavaan), or when its class is in ``group_equal`` and its name
is not in ``group_partial``. lavaan's ``c(e1, e2, ...)*`` modifier gives a term one entry per
group (a label, NA, a fixed value or a prior), as lavaan's labels do: ``c(b, b)*x`` makes a
parameter equal across groups, ``c(b1, b2)*x`` frees it in a model whose class is equal, a fixed
entry fixes it in that group. A parameter of a class in ``group_approx`` (blavaan's ``wiggle``,
Muthén & Asparouhov's approximate invariance) stays each group's own but is tied to the others
by its prior: θ_g = μ + δ_g with δ_g ~ N(0, s²) (or a Cauchy or Student-t of scale s: a sparse
prior, under which a few groups may depart far while the rest stay close), μ with the
parameter's prior (columns ``approx``: s, ``approx_prior``: the deviation prior written out).
With equal intercepts the factor means of the top level are fixed to 0 in the first group only and free in the others (lavaan's identification of scalar models),
unless the means are equal too (then 0 in every group); likewise with equal thresholds of
categorical items, and with approximately equal intercepts or thresholds (Muthén & Asparouhov 2013).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from .table import SpecificationError, check_values, family_name, shared_value

EQUALITY_CLASSES = ("loadings", "intercepts", "residuals", "residual.covariances", "lv.variances",
                    "lv.covariances", "means", "regressions", "thresholds")


def row_class(op: str, lhs: str, rhs: str, latent: set[str], binary: Collection[str] = ()) -> str | None:
    """lavaan's ``group.equal`` class of a table row: loadings, regressions, thresholds (the ``|``
    rows of ordinal items, and the intercept of a ``binary`` item, its one threshold with the sign
    turned, as lavaan and Mplus count it), intercepts (of observed variables) or means (of latent
    ones), residuals and residual.covariances (of observed variables), lv.variances and lv.covariances."""
    if op == "=~":
        return "loadings"
    if op == "~":
        return "regressions"
    if op == "|" or op == "~1" and lhs in binary:
        return "thresholds"
    if op == "~1":
        return "means" if lhs in latent else "intercepts"
    if op == "~~" and lhs == rhs:
        return "lv.variances" if lhs in latent else "residuals"
    if op == "~~":
        return "lv.covariances" if lhs in latent and rhs in latent else "residual.covariances"
    return None


APPROXIMATE_CLASSES = ("loadings", "intercepts", "means", "regressions", "thresholds")
_DEVIATION = re.compile(r"\s*(normal|cauchy|student_t)\s*\(\s*(?:([0-9.eE+-]+)\s*,\s*)?0\s*,\s*([0-9.eE+-]+)\s*\)\s*")


def deviation_prior(name: str, value: float | str) -> tuple[float, float]:
    """The prior of a group's deviation δ_g in ``group_approx``, as (scale s, degrees of freedom ν):
    a number s is N(0, s²) (blavaan's ``wiggle.sd``, ν = ∞); ``"normal(0, s)"``, ``"cauchy(0, s)"``
    (ν = 1) or ``"student_t(ν, 0, s)"`` a prior of that family centred at 0."""
    if isinstance(value, str):
        match = _DEVIATION.fullmatch(value)
        family, nu, scale = match.groups() if match else (None, None, None)
        if match and (nu is None) == (family != "student_t"):
            try:
                s = float(scale)
                degrees = {"normal": float("inf"), "cauchy": 1.0}.get(family) or float(nu)
            except ValueError:
                s = degrees = float("nan")
            if s > 0 and degrees > 0:
                return s, degrees
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value), float("inf")
    raise SpecificationError(f"the deviation prior of {name!r} in group_approx must be a number > 0 (the SD of a normal "
                             "prior, e.g. 0.05) or a prior centred at 0: 'normal(0, 0.05)', 'cauchy(0, 0.05)', "
                             f"'student_t(3, 0, 0.05)'; got {value!r}.")


def deviation_text(name: str, value: float | str) -> str:
    """A ``group_approx`` deviation prior written out: ``normal(0, s)``, ``cauchy(0, s)`` or ``student_t(ν, 0, s)``."""
    scale, nu = deviation_prior(name, value)
    if nu == float("inf"):
        return f"normal(0, {scale:g})"
    return f"cauchy(0, {scale:g})" if nu == 1 else f"student_t({nu:g}, 0, {scale:g})"


def check_equalities(group_equal: Sequence[str], group_partial: Sequence[str],
                     group_approx: Mapping[str, float | str] | None = None) -> None:
    """``group_equal`` names lavaan's classes; ``group_partial`` names parameters as ``lhs op rhs``;
    ``group_approx`` maps classes to the prior of each group's deviation (:func:`deviation_prior`)."""
    families = set()
    for name, value in (group_approx or {}).items():
        if name not in APPROXIMATE_CLASSES:
            raise SpecificationError(f"group_approx takes the classes {', '.join(APPROXIMATE_CLASSES)} (the variance "
                                     f"classes not yet); got {name!r}.")
        families.add(deviation_prior(name, value)[1])
        if name in group_equal:
            raise SpecificationError(f"{name!r} is in group_equal and in group_approx; a class is either equal or "
                                     "approximately equal across groups.")
    unknown = [name for name in group_equal if name not in EQUALITY_CLASSES]
    if unknown:
        raise SpecificationError(f"unknown group_equal class(es) {unknown}; the classes are {', '.join(EQUALITY_CLASSES)}.")
    if len(families) > 1:
        raise SpecificationError("the deviation priors of group_approx must be of one family (all normal, all cauchy or "
                                 f"all student_t with one ν); got {dict(group_approx or {})}.")
    for name in group_partial:
        if not any(op in name.replace(" ", "") for op in ("=~", "~~", "~1", "~", "|")):
            raise SpecificationError(f"group_partial names parameters as in lavaan, 'lhs op rhs' (e.g. 'visual =~ x2', "
                                     f"'x3 ~1'); got {name!r}.")


def binary_items(families: Mapping[str, str]) -> set[str]:
    """The variables of the bernoulli family, whose intercepts are thresholds (:func:`row_class`)."""
    return {name for name, family in families.items() if family_name(family) == "bernoulli"}


def per_group_modifiers(user: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """Check that every ``c(...)`` of a parsed user table has one entry per group. Without groups, a
    one-entry ``c(x)`` is the plain modifier x; with groups, a term that some entry frees (NA) is
    free in the shared table, and :func:`group_table` applies the entries."""
    user = user.copy()
    count = max(len(groups), 1)
    for i, row in user[user["per_group"].notna()].iterrows():
        if len(row.per_group) != count:
            term = f"{row.lhs} {row.op} {'1' if row.op == '~1' else row.rhs}".replace(" ~1 1", " ~ 1")
            has = f"{len(row.per_group)} entr{'y' if len(row.per_group) == 1 else 'ies'}"
            if not groups:
                raise SpecificationError(f"line {row.line}: c(...) on '{term}' has {has}, one per group, but the model "
                                         "has no groups; pass group='COLUMN', or write a plain modifier.")
            raise SpecificationError(f"line {row.line}: c(...) on '{term}' has {has}; the model has {count} groups "
                                     f"({', '.join(map(str, groups))}), so write {count} entries, in that order.")
        if not groups:
            label, fixed, prior, free = row.per_group[0]
            user.loc[i, ["label", "fixed", "prior", "free_forced"]] = [
                row.label if label is None else label, fixed if fixed == fixed else row.fixed,
                row.prior if prior is None else prior, row.free_forced or free]
            user.at[i, "per_group"] = None
        else:
            user.at[i, "free_forced"] = row.free_forced or any(entry[3] for entry in row.per_group)
    return user


def group_table(table: pd.DataFrame, groups: Sequence[str], group_equal: Sequence[str] = (),
                group_partial: Sequence[str] = (), group_approx: Mapping[str, float | str] | None = None,
                families: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The table of each group stacked (column ``group``), free parameters renumbered: a free row's
    number is shared across groups where it is equal (module docstring), else the group's own;
    columns ``approx`` and ``approx_prior`` hold the scale and the text of the deviation prior of the
    approximately equal ones (else NaN and None; :func:`deviation_prior`).
    ``families`` (of the non-Gaussian variables) for the checks of each group's fixed values."""
    group_approx = dict(group_approx or {})
    check_equalities(group_equal, group_partial, group_approx)
    latent = set(table.loc[table["op"] == "=~", "lhs"])
    binary = binary_items(families or {})
    partial = _partial_names(table, group_partial)
    top = table["level"].iloc[-1] if len(table) else ""
    means_free = "means" not in group_equal and any(kind in group_equal or kind in group_approx
                                                    for kind in ("intercepts", "thresholds"))
    per_group = table["per_group"] if "per_group" in table else pd.Series(None, index=table.index, dtype=object)
    base_labels = dict(zip(table["label"], table["free"]))
    copies = []
    for rank, group in enumerate(groups):
        copy = table.drop(columns="per_group", errors="ignore").assign(group=group)
        if means_free and rank > 0:  # factor means at the top level: free where intercepts are equal
            means = (copy["op"] == "~1") & copy["lhs"].isin(latent) & (copy["level"] == top) & (copy["free"] == 0)
            copy.loc[means, "free"] = -1  # marked, numbered below
            copy.loc[means, "fixed"] = float("nan")
        for i, entries in per_group.dropna().items():
            label, fixed, prior, free = entries[rank]
            if label is not None:
                copy.at[i, "label"] = label
            if prior is not None:
                copy.at[i, "prior"] = prior
            if fixed == fixed:
                copy.loc[i, ["free", "fixed"]] = [0, fixed]
            elif free and copy.at[i, "free"] == 0:
                copy.loc[i, ["free", "fixed"]] = [-1, float("nan")]
        copies.append(copy)
    stacked = _fix_labels(pd.concat(copies, ignore_index=True))
    numbers: dict[object, int] = {}
    free, approx, priors = [], [], []
    for row in stacked.itertuples(index=False):
        name = f"{row.lhs}{row.op}{row.rhs}"
        kind = row_class(row.op, row.lhs, row.rhs, latent, binary)
        wiggles = row.free > 0 and kind in group_approx and name not in partial and not isinstance(row.label, str)
        approx.append(deviation_prior(kind, group_approx[kind])[0] if wiggles else float("nan"))
        priors.append(deviation_text(kind, group_approx[kind]) if wiggles else None)
        if row.free == 0:
            free.append(0)
            continue
        if isinstance(row.label, str):  # one parameter per label (a label of the shared table: its number there)
            key = ("shared", base_labels[row.label]) if row.label in base_labels else ("label", row.label)
        elif row.free > 0 and kind in group_equal and name not in partial:
            key = ("shared", row.free)
        else:
            key = (row.group, row.level, row.lhs, row.op, row.rhs, row.free)
        free.append(numbers.setdefault(key, len(numbers) + 1))
    stacked = stacked.assign(free=free, approx=approx, approx_prior=priors)
    for group in groups:
        check_values(stacked[stacked["group"] == group], families or {})
    return stacked


def _partial_names(table: pd.DataFrame, group_partial: Sequence[str]) -> set[str]:
    """The ``group_partial`` names as ``lhs op rhs`` without spaces (``b ~~ a`` read as ``a ~~ b``);
    refuses a name that is not a parameter of the model."""
    names = {f"{lhs}{op}{rhs}": f"{lhs} {op} {rhs}".strip()
             for lhs, op, rhs in table[["lhs", "op", "rhs"]].itertuples(index=False)}
    partial = set()
    for written in group_partial:
        name = written.replace(" ", "")
        if name not in names and "~~" in name:
            name = "~~".join(reversed(name.split("~~", 1)))
        if name not in names:
            like = sorted(v for n, v in names.items() if v.split()[0] == re.split(r"=~|~|\|", written)[0].strip())
            hint = f"; parameters of that variable: {', '.join(like[:8])}" if like else ""
            raise SpecificationError(f"group_partial names {written!r}, which is not a parameter of the model{hint}. "
                                     "Write it as in the parameter table, 'lhs op rhs' (e.g. 'visual =~ x2', 'x3 ~1').")
        partial.add(name)
    return partial


def _fix_labels(stacked: pd.DataFrame) -> pd.DataFrame:
    """A label fixed anywhere (``c(a, b)*x`` on a marker loading, ``c(1, NA)`` beside a label) is fixed
    wherever it appears, as in the shared table; it must be fixed at one value and name parameters of one kind."""
    for label, rows in stacked[stacked["label"].notna()].groupby("label", sort=False):
        fixed = shared_value(label, rows)
        if not np.isnan(fixed):
            stacked.loc[rows.index, ["free", "fixed"]] = [0, fixed]
    return stacked
