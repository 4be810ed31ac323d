"""Measurement invariance across groups: the configural, metric, scalar and strict models of a
multiple-group model fitted in turn and compared, as lavaan users compare them with
``lavTestLRT``, here by leave-one-cluster-out LOO (Vehtari, Gelman & Gabry 2017) and the PPP.

Each step adds equalities to the one before: metric equal loadings, scalar equal loadings and
intercepts (thresholds of categorical items), strict also equal residual variances. The ELPD difference of a step and its SE come
from the pointwise differences over the units (clusters; rows of a single-level model),

    Δ = Σ_j (elpd_j,step − elpd_j,before),   SE(Δ) = √(J · Var_j(elpd_j,step − elpd_j,before)),

so a Δ well below 0 (|Δ| more than about twice its SE) says the equalities cost predictive
accuracy: that level of invariance does not hold. The configural fit's group differences of the
loadings, intercepts and residual variances name the parameters that differ most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import SettingsError
from ..spec.groups import binary_items, row_class
from ..spec.plan import row_names

STEPS = {"configural": [], "metric": ["loadings"], "scalar": ["loadings", "intercepts", "thresholds"],
         "strict": ["loadings", "intercepts", "thresholds", "residuals"]}
_COMPARED = ("loadings", "intercepts", "thresholds", "residuals")


@dataclass(frozen=True)
class Invariance:
    """The fits of each step (``fits``), their comparison (``table``) and the configural fit's
    group differences (``differences``)."""

    fits: dict
    table: pd.DataFrame
    differences: pd.DataFrame


def invariance(model, steps: Sequence[str] = tuple(STEPS), group_partial: Sequence[str] = (),
               ppp_draws: int = 200, seed: int | None = None, **fit_settings) -> Invariance:
    """Fit ``model`` (a multiple-group :class:`~bayes_msem.Model`) at each of ``steps`` (the
    equalities of :data:`STEPS`, with ``group_partial`` exempt) and compare them (module
    docstring); ``fit_settings`` go to :meth:`Model.fit`, ``ppp_draws`` draws to each PPP."""
    if not getattr(model, "group", None):
        raise SettingsError("invariance compares the groups of a multiple-group model; build it with group='COLUMN'.")
    unknown = [step for step in steps if step not in STEPS]
    if unknown or not steps:
        raise SettingsError(f"unknown invariance step(s) {unknown}; the steps are {', '.join(STEPS)}.")
    fits = {step: model.variant(group_equal=STEPS[step], group_partial=list(group_partial)).fit(**fit_settings)
            for step in steps}
    rows, before = [], None
    for step, fit in fits.items():
        loo = fit.loo()
        row = {"model": step, "free parameters": int(fit.table["free"].max()), "elpd_loo": loo.elpd, "se": loo.se,
               "p_loo": loo.p, "ppp": fit.ppp(draws=ppp_draws, seed=seed)}
        if before is not None:
            difference = loo.elpd_i.values - before.elpd_i.values
            row |= {"elpd_diff": difference.sum(), "diff_se": np.sqrt(len(difference) * difference.var())}
        rows.append(row)
        before = loo
    table = pd.DataFrame(rows, columns=["model", "free parameters", "elpd_loo", "se", "p_loo", "elpd_diff",
                                        "diff_se", "ppp"])
    configural = fits.get("configural")
    differences = group_differences(configural) if configural is not None else pd.DataFrame()
    return Invariance(fits, table, differences)


def group_differences(fit) -> pd.DataFrame:
    """Per loading, intercept and residual variance and per group after the first: the posterior of
    θ_g − θ_first (mean, SD, 95% interval, the posterior probability that it is above 0) and the
    mean over its SD, largest first."""
    table = fit.table
    groups = fit.info["groups"]
    latent, binary = set(table.loc[table["op"] == "=~", "lhs"]), binary_items(fit.info.get("families") or {})
    names = pd.Series(row_names(table), index=table.index)
    theta = fit.idata.posterior["theta"].stack(sample=("chain", "draw"))
    first = table[(table["group"] == groups[0]) & (table["free"] > 0)]
    rows = []
    for index, row in first.iterrows():
        kind = row_class(row["op"], row["lhs"], row["rhs"], latent, binary)
        if kind not in _COMPARED:
            continue
        for group in groups[1:]:
            other = table[(table["group"] == group) & (table["lhs"] == row["lhs"]) & (table["op"] == row["op"])
                          & (table["rhs"] == row["rhs"]) & (table["level"] == row["level"])]
            draws = theta.sel(parameter=names[other.index[0]]).values - theta.sel(parameter=names[index]).values
            rows.append({"class": kind, "lhs": row["lhs"], "op": row["op"], "rhs": row["rhs"], "level": row["level"],
                         "group": group, "mean": draws.mean(), "sd": draws.std(),
                         "lower": np.quantile(draws, 0.025), "upper": np.quantile(draws, 0.975),
                         "p_above_0": np.mean(draws > 0)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["standardized"] = out["mean"] / out["sd"]
    return out.sort_values("standardized", key=np.abs, ascending=False, ignore_index=True)
