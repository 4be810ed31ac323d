"""Stage 5: plan → ``pm.Model``.

The free parameters are sampled in a few vectors, one per kind and prior
family (``loadings``, ``regressions``, ``intercepts``, ``sds``; variances as
standard deviations unless their prior says ``[var]``;
free covariances as LKJ correlation blocks), and assembled into θ, the
natural-scale parameter vector in table order, stored as the deterministic
``theta`` with dimension ``parameter``. The level matrices are filled from θ
and the chosen likelihood strategy adds the log-likelihood.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .data import ClusteredData
from .likelihood.marginal import Layout, MarginalStatistics, marginal_loglik
from .moments import implied_moments
from .plan import Plan
from .priors import lkj_cholesky, prior_vector

_INITIAL = {"loading": 1.0, "regression": 0.0}


def build_model(plan: Plan, data: ClusteredData) -> pm.Model:
    """The PyMC model of a planned MSEM with its data registered as ``pm.Data``."""
    with pm.Model(coords={"parameter": plan.parameters["name"].to_list()}) as model:
        theta = parameter_vector(plan)
        moments = {level: implied_moments(lp, theta) for level, lp in plan.levels.items()}
        layout = Layout.from_plan(plan)
        stats = MarginalStatistics.from_data(layout, data).register()
        pm.Potential("loglik", marginal_loglik(layout, moments, stats))
    return model


def parameter_vector(plan: Plan) -> pt.TensorVariable:
    """θ: sampled vectors scattered into table order, covariances R_ab √(ψ_aa ψ_bb) from the LKJ blocks."""
    params = plan.parameters.assign(index=np.arange(len(plan.parameters)))
    theta = pt.zeros(len(params))
    plain = params[params["kind"] != "covariance"].copy()
    plain["group"] = [(k, p.family, p.scale) for k, p in zip(plain["kind"], plain["prior"])]
    groups = list(plain.groupby("group", sort=False))
    for (kind, family, scale), rows in groups:
        base = scale if kind == "variance" else kind
        clash = sum((k if k != "variance" else s) == base for (k, _, s), _ in groups) > 1
        dim = f"{base}_{family}" if clash else base
        pm.Model.get_context().add_coord(dim, rows["name"].to_list())
        initial = _initial_values(kind, scale, rows)
        value = prior_vector(f"{dim}s", rows["prior"].to_list(), dims=dim, initval=initial)
        if scale == "sd":
            value = value**2
        theta = pt.set_subtensor(theta[rows["index"].to_numpy()], value)
    for block in plan.blocks:
        chol = lkj_cholesky(block.name, block.prior, len(block.variables))
        corr = chol @ chol.T
        variance = pt.switch(block.variance >= 0, theta[np.maximum(block.variance, 0)], np.nan_to_num(block.fixed_variance))
        sd = pt.sqrt(variance)
        a, b, index = block.pairs.T
        theta = pt.set_subtensor(theta[index], corr[a, b] * sd[a] * sd[b])
    return pm.Deterministic("theta", theta, dims="parameter")


def _initial_values(kind: str, scale: str | None, rows) -> np.ndarray | None:
    """Starting values: written start() values, loadings at 1 (never a reflected start), else the prior's own."""
    start = rows["start"].to_numpy(dtype=float)
    if kind == "variance" and scale == "sd":
        start = np.sqrt(start)
    default = _INITIAL.get(kind)
    if default is None and np.isnan(start).all():
        return None
    fallback = default if default is not None else (1.0 if kind == "variance" else 0.0)
    return np.where(np.isnan(start), fallback, start)
