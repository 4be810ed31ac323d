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
from .table import BETWEEN, WITHIN


def build_model(plan: Plan, data: ClusteredData) -> pm.Model:
    """The PyMC model of a planned MSEM with its data registered as ``pm.Data``."""
    with pm.Model(coords={"parameter": plan.parameters["name"].to_list()}) as model:
        theta = parameter_vector(plan, starting_values(plan, data))
        moments = {level: implied_moments(lp, theta) for level, lp in plan.levels.items()}
        layout = Layout.from_plan(plan)
        stats = MarginalStatistics.from_data(layout, data).register()
        pm.Potential("loglik", marginal_loglik(layout, moments, stats))
    return model


def parameter_vector(plan: Plan, starts: np.ndarray) -> pt.TensorVariable:
    """θ: sampled vectors scattered into table order, covariances R_ab √(ψ_aa ψ_bb) from the LKJ blocks.

    ``starts`` are natural-scale starting values of θ (the samplers start there).
    """
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
        initial = starts[rows["index"].to_numpy()]
        initial = np.sqrt(initial) if scale == "sd" else initial
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


def starting_values(plan: Plan, data: ClusteredData) -> np.ndarray:
    """Simple starting values (as lavaan's): written start() values first; loadings 1, regressions
    and covariances 0, intercepts at the observed mean, residual variances half the observed
    variance at the level, factor variances half their first indicator's.

    Starting every chain here keeps chains out of reflected or marker-dropping modes.
    """
    mean, variance = _level_moments(plan, data)
    table = plan.table
    starts = []
    for row in plan.parameters.itertuples(index=False):
        key = (row.level, row.lhs)
        if not np.isnan(row.start):
            starts.append(row.start)
        elif row.kind == "loading":
            starts.append(1.0)
        elif row.kind == "intercept":
            starts.append(mean.get(key, 0.0))
        elif row.kind == "variance":
            indicators = table[(table["level"] == row.level) & (table["op"] == "=~") & (table["lhs"] == row.lhs)]
            first = (row.level, indicators["rhs"].iloc[0]) if len(indicators) else key
            starts.append(0.5 * variance.get(first, 2.0))
        else:
            starts.append(0.0)
    return np.array(starts, dtype=float)


def _level_moments(plan: Plan, data: ClusteredData) -> tuple[dict, dict]:
    """Observed mean and variance of each modelled variable at each level (within: pooled
    within-cluster variance; between: variance of the cluster means)."""
    mean, variance = {}, {}
    for level, lp in plan.levels.items():
        names = list(lp.roles.observed)
        if level == WITHIN:
            values = data.matrix(names) - data.cluster_means(names)[data.cluster_index]
        elif level == BETWEEN:
            values = data.cluster_means(names)
        else:
            values = data.matrix(names)
        for name, m, v in zip(names, values.mean(axis=0), values.var(axis=0)):
            mean[(level, name)], variance[(level, name)] = m, max(v, 1e-3)
    return mean, variance
