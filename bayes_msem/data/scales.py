"""Rescaling: each continuous observed variable divided by its standard deviation for the fit,
the parameters reported back in the variables' own units (``Model(rescale=True)``).

With y = c_y y* for every rescaled variable (c_y its SD; other variables c = 1), every latent
variable scaled like the indicator whose loading is fixed (c_f = c_y; c_f = 1 for a factor
identified by its variance) and a random slope or loading like the path it varies, the model
for y* with parameters θ* is the model for y with

    loading f =~ y:        θ = θ* c_y / c_f
    regression y ~ x:      θ = θ* c_y / c_x
    (co)variance v ~~ w:   θ = θ* c_v c_w
    intercept y ~ 1:       θ = θ* c_y
    threshold:             θ = θ*

The map is exact when it leaves every fixed nonzero value and every equality constraint as
written; :func:`parameter_factors` refuses other models, and random variances (whose log
would shift rather than scale).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..spec.table import SpecificationError
from .clustered import ClusteredData

_TOLERANCE = 1e-9


def variable_scales(data: ClusteredData, names: Sequence[str]) -> dict[str, float]:
    """The standard deviation (over all rows, missing cells ignored) of each variable in ``names``."""
    return {name: float(np.nanstd(data.column(name), ddof=1)) for name in names}


def rescaled(data: ClusteredData, scales: Mapping[str, float]) -> ClusteredData:
    """``data`` with each variable in ``scales`` divided by its scale."""
    values = {name: column / scales[name] if name in scales else column for name, column in data.values.items()}
    return dataclasses.replace(data, values=values)


def parameter_factors(table: pd.DataFrame, scales: Mapping[str, float]) -> np.ndarray:
    """Per row of the parameter table, the factor θ/θ* (module docstring); raises
    :class:`SpecificationError` where the rescaled model is not the written one."""
    scale = variable_scale(table, scales)
    factors = np.array([_factor(row.op, scale(row.lhs, row.level), scale(row.rhs, row.level))
                        for row in table.itertuples(index=False)])
    for row, factor in zip(table.itertuples(index=False), factors):
        written = f"{row.lhs} {row.op} {row.rhs}".strip() + (f" ({row.level})" if row.level else "")
        if isinstance(row.random, str) and row.op == "~~" and abs(scale(row.lhs, row.level) - 1) > _TOLERANCE:
            raise SpecificationError(f"rescale=True cannot carry the random variance {row.random!r} ({written}): its "
                                     "log would shift, not scale. Rescale the data yourself (e.g. divide by a power "
                                     "of ten) and fit without rescale.")
        fixed = row.free == 0 and not isinstance(row.random, str) and np.isfinite(row.fixed) and row.fixed != 0
        if fixed and abs(factor - 1) > _TOLERANCE:
            raise SpecificationError(f"{written} is fixed at {row.fixed:g}, which in the variables' own units is "
                                     f"{row.fixed * factor:.4g}: rescale=True would change the model. Rescale the data "
                                     "yourself and fix the value in those units, or free the parameter.")
    free = pd.DataFrame({"free": table["free"].to_numpy(), "factor": factors})
    spread = free[free["free"] > 0].groupby("free")["factor"].agg(lambda f: f.max() / f.min() - 1)
    if (spread > _TOLERANCE).any():
        rows = table[table["free"] == spread.idxmax()]
        names = ", ".join(f"{r.lhs} {r.op} {r.rhs}" for r in rows.itertuples(index=False))
        raise SpecificationError(f"the equality constraint on {names} joins parameters of variables on different "
                                 "scales: after rescale=True they would no longer be equal in the variables' own "
                                 "units. Rescale the data yourself, keeping those variables' units alike.")
    return factors


def theta_factors(table: pd.DataFrame, scales: Mapping[str, float]) -> np.ndarray:
    """The factor θ/θ* of each free parameter, in the order of θ (free numbers 1, 2, …)."""
    factors = parameter_factors(table, scales)
    free = table["free"].to_numpy()
    return np.array([factors[free == k][0] for k in range(1, int(free.max(initial=0)) + 1)])


def _factor(op: str, lhs: float, rhs: float) -> float:
    """θ/θ* of one parameter from the scales of its two variables (module docstring)."""
    if op == "=~":
        return rhs / lhs
    if op == "~":
        return lhs / rhs
    if op == "~~":
        return lhs * rhs
    return lhs if op == "~1" else 1.0


def variable_scale(table: pd.DataFrame, scales: Mapping[str, float]):
    """The function c(name, level): observed variables their scale, latent ones their marker's (resolved
    in order, for factors of factors), random parameters the factor of the path they vary."""
    latent: dict[tuple[str, str], float] = {}
    random: dict[str, float] = {}

    def scale(name: str, level: str) -> float:
        if (level, name) in latent:
            return latent[(level, name)]
        return random.get(name, scales.get(name, 1.0))

    loadings = table[table["op"] == "=~"]
    factors = list(dict.fromkeys(zip(loadings["level"], loadings["lhs"])))
    for _ in range(len(factors)):  # a factor's marker may itself be a factor: resolve level by level
        for level, factor in factors:
            rows = loadings[(loadings["level"] == level) & (loadings["lhs"] == factor)]
            markers = rows[(rows["free"] == 0) & rows["random"].isna() & rows["fixed"].fillna(0).ne(0)]
            latent[(level, factor)] = scale(markers["rhs"].iloc[0], level) if len(markers) else 1.0
    for row in table[table["random"].notna() & table["op"].isin(["~", "=~"])].itertuples(index=False):
        random[row.random] = _factor(row.op, scale(row.lhs, row.level), scale(row.rhs, row.level))
    return scale
