"""Plan + data → ``pm.Model``: the sampled parameters and the strategy's log-likelihood.

The free parameters are sampled in a few vectors, one per kind and prior
family (``loadings``, ``regressions``, ``intercepts``, ``sds``; variances as
standard deviations unless their prior says ``[var]``;
free covariances as LKJ correlation blocks), and assembled into θ, the
natural-scale parameter vector in table order, stored as the deterministic
``theta`` with dimension ``parameter``. The likelihood strategy that
:func:`..likelihood.registry.strategy_for` picks adds the log-likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..errors import SettingsError
from ..likelihood.families import parse_family, plan_families
from ..likelihood.registry import strategy_for
from ..likelihood.strategy import Strategy
from ..spec.plan import CorrelationBlock, Plan, positive_definite
from ..spec.priors import PriorError, lkj_cholesky, ordered_vector, prior_vector, truncated_scalar
from ..spec.table import WITHIN, RandomParameter


def build_model(plan: Plan, data: ClusteredData, groups: Mapping[str, ClusteredData] | None = None,
                strategy: Strategy | None = None) -> pm.Model:
    """The PyMC model of a planned MSEM with its data registered as ``pm.Data``: θ from the priors
    (:func:`parameter_vector`) and the log-likelihood of ``strategy`` (by default the one the
    registry picks); with multiple groups, the sum of each group's (``groups``: the data of each),
    θ shared."""
    with pm.Model(coords={"parameter": plan.parameters["name"].to_list()}) as model:
        theta = parameter_vector(plan, starting_values(plan, data))
        strategy = strategy or strategy_for(plan)
        if groups:  # each group a named sub-model: its data and sampled latent variables g1::…, g2::…
            loglik = 0.0
            for k, (name, part) in enumerate(groups.items(), start=1):
                with pm.Model(name=f"g{k}"):
                    loglik = loglik + strategy.add_to_model(plan.for_group(name), part, theta)
        else:
            loglik = strategy.add_to_model(plan, data, theta)
        pm.Potential("loglik", loglik)
    return model


def prior_theta(model: pm.Model, plan: Plan, draws: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """``draws`` draws (draws, parameters) of θ from the priors of ``model``, those outside the
    support of the incomplete covariance blocks' joint prior (:func:`..spec.plan.positive_definite`)
    drawn again."""
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    for attempt in range(100):
        theta = pm.draw(model["theta"], draws=draws, random_seed=seed if attempt == 0 else rng)
        theta = np.asarray(theta, dtype=float).reshape(draws, -1)
        kept += list(theta[positive_definite(plan, theta)])
        if len(kept) >= draws:
            return np.stack(kept[:draws])
    raise SettingsError("fewer than 1% of the prior draws give positive definite correlation matrices for the model's "
                        "incomplete covariance patterns; free more covariances of each connected set or narrow their "
                        "priors (e.g. lkj(4)).")


def parameter_vector(plan: Plan, starts: np.ndarray) -> pt.TensorVariable:
    """θ: sampled vectors scattered into table order, parameters bounded by inequalities as truncated
    scalars, parameters that equality constraints derive as offset + C θ, and covariances
    R_ab √(ψ_aa ψ_bb) from the correlation blocks.

    ``starts`` are natural-scale starting values of θ (the samplers start there).
    """
    constraints = plan.constraints
    params = plan.parameters.assign(index=np.arange(len(plan.parameters)))
    theta = pt.zeros(len(params))
    own = set(constraints.derived) | {bound.index for bound in constraints.bounds}  # not in the vectors
    own |= {i for chosen in plan.approximate for i in chosen.index}
    plain = params[~params["kind"].isin(["covariance", "threshold"]) & ~params["index"].isin(own)].copy()
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
    if plan.approximate:
        theta = _approximately_equal(plan, theta, starts)
    for name, rows in params[params["kind"] == "threshold"].groupby("lhs", sort=False):
        index = rows["index"].to_numpy()
        theta = pt.set_subtensor(theta[index], ordered_vector(f"thresholds_{name}", rows["prior"].to_list(), starts[index]))
    theta = _bounded(plan, theta, starts)
    covariance = params["kind"].to_numpy() == "covariance"
    theta = _derived(plan, theta, ~covariance)
    for block in plan.blocks:
        variance = pt.switch(block.variance >= 0, theta[np.maximum(block.variance, 0)], np.nan_to_num(block.fixed_variance))
        sd = pt.sqrt(variance)
        a, b, index = block.pairs[block.sampled].T
        if len(index):
            theta = pt.set_subtensor(theta[index], _correlations(block) * sd[a] * sd[b])
    theta = _derived(plan, theta, covariance)
    _support(plan, theta)
    return pm.Deterministic("theta", theta, dims="parameter")


def _approximately_equal(plan: Plan, theta: pt.TensorVariable, starts: np.ndarray) -> pt.TensorVariable:
    """θ of the parameters approximately equal across groups: θ_g = μ + sd · z_g (non-centred,
    z_g ~ N(0, 1), or Student-t with ν degrees of freedom), μ (``approximate_means``, dims
    ``approximate``) with the parameter's prior; the deviations δ_g = sd · z_g are the
    deterministic ``approximate_deviations`` (approximate × group)."""
    model = pm.Model.get_context()
    sets = plan.approximate
    model.add_coord("approximate", [s.name for s in sets])
    model.add_coord("group", list(plan.groups))
    priors = [plan.parameters["prior"].iloc[s.index[0]] for s in sets]
    if len({p.family for p in priors}) > 1:
        raise PriorError("the parameters of group_approx take priors of one family; write the same family for all.")
    means = prior_vector("approximate_means", priors, dims="approximate",
                         initval=np.array([starts[s.index].mean() for s in sets]))
    nu = sets[0].nu  # one family for all (spec.groups.check_equalities)
    z = (pm.Normal("approximate_z", 0.0, 1.0, dims=("approximate", "group")) if np.isinf(nu)
         else pm.StudentT("approximate_z", nu=nu, mu=0.0, sigma=1.0, dims=("approximate", "group")))
    deviations = pm.Deterministic("approximate_deviations", np.array([s.sd for s in sets])[:, None] * z,
                                  dims=("approximate", "group"))
    index = np.stack([s.index for s in sets])
    return pt.set_subtensor(theta[index], means[:, None] + deviations)


def _bounded(plan: Plan, theta: pt.TensorVariable, starts: np.ndarray) -> pt.TensorVariable:
    """θ with each parameter bounded by inequalities (``a > 0``, ``a < b``) drawn from its prior truncated
    to its bounds: on the SD scale for a variance whose prior is (bounds √θ), as the parameter else."""
    for bound in plan.constraints.bounds:
        row = plan.parameters.iloc[bound.index]
        on_sd = row["prior"].scale == "sd"
        scale = np.sqrt if on_sd else (lambda value: value)
        lower = scale(max(bound.lower, 0.0)) if on_sd else bound.lower
        if bound.above >= 0:
            lower = pt.maximum(pt.sqrt(theta[bound.above]) if on_sd else theta[bound.above], lower)
        value = truncated_scalar(f"{row['name']}_bounded", row["prior"], lower, scale(bound.upper),
                                 float(scale(starts[bound.index])))
        theta = pt.set_subtensor(theta[bound.index], value**2 if on_sd else value)
    return theta


def _derived(plan: Plan, theta: pt.TensorVariable, kinds: np.ndarray) -> pt.TensorVariable:
    """θ with the derived elements whose ``kinds`` mask is set computed: θ_p = offset_p + C_p θ."""
    constraints = plan.constraints
    chosen = kinds[constraints.derived]
    if not chosen.any():
        return theta
    value = constraints.offset[chosen] + pt.dot(constraints.coefficients[chosen], theta)
    return pt.set_subtensor(theta[constraints.derived[chosen]], value)


def _support(plan: Plan, theta: pt.TensorVariable) -> None:
    """Potentials that are −∞ outside the joint prior's support: where the correlation matrix of a block
    that is not one LKJ matrix (an incomplete pattern, or covariances an equality derives) is not
    positive definite, and where a variance an equality derives is not positive."""
    for block in plan.blocks:
        if block.complete:
            continue
        variance = pt.switch(block.variance >= 0, theta[np.maximum(block.variance, 0)], np.nan_to_num(block.fixed_variance))
        sd = pt.sqrt(variance)
        a, b, index = block.pairs.T
        correlations = theta[index] / (sd[a] * sd[b])
        matrix = pt.set_subtensor(pt.set_subtensor(pt.eye(len(block.variables))[a, b], correlations)[b, a], correlations)
        chol = pt.linalg.cholesky(matrix, on_error="nan")
        pm.Potential(f"{block.name}_positive_definite", pt.switch(pt.all(pt.isfinite(chol)), np.float64(0), np.float64(-np.inf)))
    derived = plan.constraints.derived
    variances = derived[np.isin(plan.parameters["kind"].to_numpy()[derived], ["variance", "dispersion"])]
    if len(variances):
        pm.Potential("derived_variances_positive",
                     pt.switch(pt.all(theta[variances] > 0), np.float64(0), np.float64(-np.inf)))


def _correlations(block: CorrelationBlock) -> pt.TensorVariable:
    """The correlations of a block's sampled pairs: entries of an LKJ correlation matrix for a
    complete block; else r = 2u − 1 with u ~ beta(η, η) per pair (the LKJ(η) marginal of one pair),
    kept positive definite by :func:`_support`."""
    a, b, _ = block.pairs[block.sampled].T
    if block.complete:
        chol = lkj_cholesky(block.name, block.prior, len(block.variables))
        return (chol @ chol.T)[a, b]
    pm.Model.get_context().add_coord(f"{block.name}_pair", [f"{block.variables[i]}~~{block.variables[j]}"
                                                          for i, j in zip(a, b)])
    eta = block.prior.args[0]
    shares = pm.Beta(f"{block.name}_share", eta, eta, dims=f"{block.name}_pair", initval=np.full(len(a), 0.5))
    return 2.0 * shares - 1.0


def starting_values(plan: Plan, data: ClusteredData) -> np.ndarray:
    """Simple starting values (as lavaan's): written start() values first; loadings 1, regressions
    and covariances 0, intercepts at the observed mean, residual variances half the observed
    variance at the level, factor variances half their first indicator's, dispersions from the
    responses' mean and variance; a default outside its prior's support moves inside it (a written
    one there is an error); then moved inside the inequalities' bounds, and the parameters that
    equality constraints derive computed from the others (:meth:`..spec.constraints.Constraints.move_inside`).

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
        elif row.kind == "dispersion":  # α from the marginal moments
            values = data.column(row.lhs)
            starts.append(parse_family(plan.families[row.lhs]).moment_dispersion(np.nanmean(values), np.nanvar(values)))
        elif row.kind == "variance":
            indicators = table[(table["level"] == row.level) & (table["op"] == "=~") & (table["lhs"] == row.lhs)]
            first = (row.level, indicators["rhs"].iloc[0]) if len(indicators) else key
            starts.append(0.5 * variance.get(first, 2.0))
        else:
            starts.append(0.0)
        starts[-1] = row.prior.inside(starts[-1])  # e.g. a regression under lognormal(0, 1) starts at 1
    written = plan.parameters["start"].notna().to_numpy()
    return plan.constraints.move_inside(np.array(starts, dtype=float), written, plan.parameters["name"].to_list())


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
    is the family's η of the variable's overall mean (a binomial's: of the mean proportion), the
    variance 1 (a probit latent response's)."""
    families = plan_families(plan)
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
            if name in families and not families[name].has_scale:  # a tobit's latent response is normal
                trials = data.column(families[name].trials) if families[name].trials else 1.0
                m, v = families[name].linear_predictor(np.nanmean(data.column(name) / trials)), 1.0
            mean[(level, name)], variance[(level, name)] = m, max(v, 1e-3)
    return mean, variance
