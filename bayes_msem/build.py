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
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from .data import ClusteredData, coordinate, unit_dim
from .likelihood.conditional import ResponseStatistics, conditional_loglik
from .likelihood.families import parse_family
from .likelihood.gaussian import Layout, Statistics
from .likelihood.hybrid import ClusterStatistics, hybrid_loglik, hybrid_units_loglik, split_between
from .likelihood.marginal import MarginalStatistics, marginal_loglik
from .likelihood.nested import NestedLayout, NestedStatistics, nested_loglik
from .likelihood.patterns import PatternStatistics, pattern_loglik
from .likelihood.slopes import slopes_loglik
from .likelihood.woodbury import UnitStatistics
from .moments import implied_moments, total_effects
from .plan import CONDITIONAL, HYBRID, Plan
from .priors import PriorError, lkj_cholesky, ordered_vector, prior_vector
from .table import BETWEEN, WITHIN, RandomParameter


def build_model(plan: Plan, data: ClusteredData) -> pm.Model:
    """The PyMC model of a planned MSEM with its data registered as ``pm.Data``."""
    with pm.Model(coords={"parameter": plan.parameters["name"].to_list()}) as model:
        theta = parameter_vector(plan, starting_values(plan, data))
        if plan.strategy == CONDITIONAL:
            loglik = _conditional(plan, data, theta)
        elif plan.strategy == HYBRID:
            loglik = _hybrid(plan, data, Layout.from_plan(plan), theta)
        else:
            stats = integrated_statistics(plan, data, data.has_missing).register()
            loglik = integrated_loglik(plan, theta, stats, data.has_missing)
        pm.Potential("loglik", loglik)
    return model


def cluster_ids(data: ClusteredData) -> np.ndarray:
    """The data's cluster ids as coordinate values (integers, or strings)."""
    return coordinate(data.cluster_ids)


def _between_with_random(plan: Plan, theta: pt.TensorVariable):
    """Between-level moments of (observed between variables, random parameters), in that order."""
    between_plan = plan.levels[BETWEEN]
    position = {v: i for i, v in enumerate(between_plan.variables)}
    select = np.array([position[v] for v in (*between_plan.roles.observed, *(r.name for r in plan.random))])
    return implied_moments(between_plan, theta, select=select)


def integrated_statistics(plan: Plan, data: ClusteredData, missing: bool) -> Statistics:
    """The sufficient statistics of a plan whose latent variables all integrate out (the marginal
    strategy: per cluster size, per missingness pattern when the model's data have ``missing``
    cells, per cluster with integrated random slopes, per school and class size for three levels)."""
    if plan.three_level:
        return NestedStatistics.from_data(NestedLayout.from_plan(plan), data)
    layout = Layout.from_plan(plan)
    if plan.random:
        return UnitStatistics.from_data(data, layout.within, layout.within_covariates, layout.top_covariates)
    return (PatternStatistics if missing else MarginalStatistics).from_data(layout, data)


def integrated_loglik(plan: Plan, theta: pt.TensorVariable, stats: dict, missing: bool) -> pt.TensorVariable:
    """The log-likelihood of such a plan from its statistics (:func:`integrated_statistics`), as
    ``pm.Data`` or placeholders: :mod:`.likelihood.marginal`, :mod:`.likelihood.patterns`,
    :mod:`.likelihood.slopes` or :mod:`.likelihood.nested`."""
    if plan.three_level:
        return nested_loglik(NestedLayout.from_plan(plan), [implied_moments(lp, theta) for lp in plan.levels.values()],
                             stats)
    layout = Layout.from_plan(plan)
    if plan.random:  # random slopes on observed covariates
        within_plan = plan.levels[WITHIN]
        return slopes_loglik(layout, implied_moments(within_plan, theta), total_effects(within_plan, theta),
                             _between_with_random(plan, theta), within_plan.random["gamma"], stats, missing)
    moments = {level: implied_moments(lp, theta) for level, lp in plan.levels.items()}
    return (pattern_loglik if missing else marginal_loglik)(layout, moments, stats)


def _conditional(plan: Plan, data: ClusteredData, theta: pt.TensorVariable) -> pt.TensorVariable:
    """Latent variables sampled per row and cluster (and upper cluster), responses of any family
    (:mod:`.likelihood.conditional`)."""
    model = pm.Model.get_context()
    model.add_coord("row", np.arange(data.n_rows))
    model.add_coord("cluster", cluster_ids(data))
    for rank, upper in enumerate(data.uppers, start=2):
        model.add_coord(unit_dim(rank), coordinate(upper.ids))
    return conditional_loglik(plan, theta, ResponseStatistics.from_data(plan, data).register())


def _hybrid(plan: Plan, data: ClusteredData, layout: Layout, theta: pt.TensorVariable) -> pt.TensorVariable:
    """Random parameters r_j (deterministic ``random_effects``, dims cluster × random) from
    standard normal ``random_effects_z``; the hybrid log-likelihood given them (over the
    observed cells where some are missing)."""
    model = pm.Model.get_context()
    model.add_coord("cluster", cluster_ids(data))
    model.add_coord("random", [r.name for r in plan.random])
    stats = hybrid_statistics(layout, data).register()
    z = pm.Normal("random_effects_z", 0.0, 1.0, dims=("cluster", "random"))
    loglik, random = hybrid_graph(plan, layout, theta, stats, z, data.has_missing)
    pm.Deterministic("random_effects", random, dims=("cluster", "random"))
    return loglik


def hybrid_statistics(layout: Layout, data: ClusteredData) -> Statistics:
    """The hybrid strategy's statistics: per cluster, or per cluster and missingness pattern."""
    if data.has_missing:
        return UnitStatistics.from_data(data, layout.within, layout.within_covariates, layout.top_covariates,
                                        layout.cluster_only)
    return ClusterStatistics.from_data(layout, data)


def hybrid_graph(plan: Plan, layout: Layout, theta: pt.TensorVariable, stats: dict, z: pt.TensorVariable,
                 missing: bool, by_cluster: bool = False) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """The hybrid log-likelihood given the standardised random parameters z (J, K) (per cluster
    with ``by_cluster``) and the random parameters r_j themselves."""
    between = _between_with_random(plan, theta)
    split = split_between(between, len(plan.levels[BETWEEN].roles.observed), z, stats["covariates"])
    within = implied_moments(plan.levels[WITHIN], theta, random=split.random)
    return (hybrid_units_loglik if missing else hybrid_loglik)(layout, within, split, stats, by_cluster), split.random


def parameter_vector(plan: Plan, starts: np.ndarray) -> pt.TensorVariable:
    """θ: sampled vectors scattered into table order, covariances R_ab √(ψ_aa ψ_bb) from the LKJ blocks.

    ``starts`` are natural-scale starting values of θ (the samplers start there).
    """
    params = plan.parameters.assign(index=np.arange(len(plan.parameters)))
    theta = pt.zeros(len(params))
    plain = params[~params["kind"].isin(["covariance", "threshold"])].copy()
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
    for name, rows in params[params["kind"] == "threshold"].groupby("lhs", sort=False):
        index = rows["index"].to_numpy()
        theta = pt.set_subtensor(theta[index], ordered_vector(f"thresholds_{name}", rows["prior"].to_list(), starts[index]))
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
    variance at the level, factor variances half their first indicator's, dispersions from the
    counts' mean and variance; a default outside its prior's support moves inside it (a written
    one there is an error).

    Starting every chain here keeps chains out of reflected or marker-dropping modes.
    """
    mean, variance = _level_moments(plan, data)
    table = plan.table
    random = {r.name: r for r in plan.random}
    starts = []
    for row in plan.parameters.itertuples(index=False):
        key = (row.level, row.lhs)
        if not np.isnan(row.start):
            if not row.prior.contains(row.start):
                raise PriorError(f"the start value {row.start:g} of {row.name} lies outside the support of its prior "
                                 f"{row.prior.text}; write a start() inside it.")
            starts.append(row.start)
            continue
        if row.lhs in random:
            starts.append(_random_start(random[row.lhs], row.kind, variance))
        elif row.kind == "loading":
            starts.append(1.0)
        elif row.kind == "threshold":  # the logit of the share of responses below the threshold
            share = np.nanmean(data.column(row.lhs) < int(row.rhs[1:]))
            starts.append(float(np.log(share / (1 - share))))
        elif row.kind == "intercept":
            starts.append(mean.get(key, 0.0))
        elif row.kind == "dispersion":  # α of var = μ + α μ², from the marginal moments, at least 0.05
            counts = data.column(row.lhs)
            m, v = np.nanmean(counts), np.nanvar(counts)
            starts.append(float(np.clip((v - m) / max(m, 1e-3) ** 2, 0.05, 5.0)))
        elif row.kind == "variance":
            indicators = table[(table["level"] == row.level) & (table["op"] == "=~") & (table["lhs"] == row.lhs)]
            first = (row.level, indicators["rhs"].iloc[0]) if len(indicators) else key
            starts.append(0.5 * variance.get(first, 2.0))
        else:
            starts.append(0.0)
        starts[-1] = row.prior.inside(starts[-1])  # e.g. a regression under lognormal(0, 1) starts at 1
    return np.array(starts, dtype=float)


def _random_start(random: RandomParameter, kind: str, variance: dict) -> float:
    """Random parameters start at their fixed-effect counterpart's start with a small spread."""
    if kind == "variance":
        return 0.05
    if kind != "intercept":
        return 0.0
    if random.kind == "loading":
        return 1.0
    if random.kind == "log_variance":
        return float(np.log(0.5 * variance.get((WITHIN, random.lhs), 2.0)))
    return 0.0


def _level_moments(plan: Plan, data: ClusteredData) -> tuple[dict, dict]:
    """Observed mean and variance of each modelled variable at each level (within: pooled
    within-cluster variance; upper levels: variance of the means of the level's clusters).
    Non-Gaussian responses' moments are on the scale of their linear predictor: the mean there
    is the family's η of the variable's overall mean, the variance 1 (a probit latent response's)."""
    families = {name: parse_family(text) for name, text in plan.families.items()}
    mean, variance = {}, {}
    for rank, (level, lp) in enumerate(plan.levels.items()):
        names = list(lp.roles.observed)
        if level == WITHIN:
            values = data.matrix(names) - data.cluster_means(names)[data.cluster_index]
        elif rank >= 2:
            values = pd.DataFrame(data.matrix(names)).groupby(data.level_index(rank)).mean().to_numpy()
        elif rank == 1:
            values = data.cluster_means(names)
        else:
            values = data.matrix(names)
        for name, m, v in zip(names, np.nanmean(values, axis=0), np.nanvar(values, axis=0)):
            if name in families:
                m, v = families[name].linear_predictor(np.nanmean(data.column(name))), 1.0
            mean[(level, name)], variance[(level, name)] = m, max(v, 1e-3)
    return mean, variance
