"""The conditional strategy: non-Gaussian responses, with the latent variables sampled.

Nothing non-Gaussian integrates in closed form, so each level's latent part is sampled,
non-centred. A level's variables are v = T (α + Γ x + ζ) with T = (I − B)⁻¹; the
disturbances ζ_S = L z_n, z_n ~ N(0, I), L Lᵀ = Ψ_SS, are sampled per unit n (row, or
cluster) for the set S of the level's latent variables whose variance is not fixed to 0
(at the between level these include the between parts of the within variables: the
random intercepts). The level's observed variables are its outcomes: nothing is regressed
on them and their residuals are independent of ζ_S, so given the sampled part each
response has linear predictor η_ijv = v_ij[v] + b_j[v] (its within value plus its
cluster's between part) and

    log p(y | sampled part) = Σ_ij Σ_{v observed in row ij} log p_v(y_ijv | η_ijv),

with the family of each variable (Gaussian ones: residual SD √ψ_vv; negative binomial ones:
φ = 1/ψ_vv, ψ_vv being the dispersion α of var = μ + α μ²; ordinal ones: their thresholds). Cluster-level observed variables are Gaussian outcomes of the between level.
Random parameters (slopes, loadings, log-variances, covariance blocks) are between variables,
sampled with the others; each row's level matrices are then its cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..data import ClusteredData
from ..moments import all_effects, fill, level_matrices
from ..plan import LevelPlan, Plan
from ..table import BETWEEN, SINGLE_LEVEL, WITHIN, SpecificationError
from .families import Family, parse_family
from .gaussian import Layout, Statistics


@dataclass(frozen=True)
class ResponseStatistics(Statistics):
    """Per row: the responses (missing cells 0), which are observed, the covariates x and the
    cluster index; per cluster: the covariates w and the cluster-level outcomes z."""

    responses: np.ndarray
    observed: np.ndarray
    covariates: np.ndarray
    cluster: np.ndarray
    cluster_covariates: np.ndarray
    cluster_outcomes: np.ndarray

    @classmethod
    def from_data(cls, layout: Layout, data: ClusteredData) -> ResponseStatistics:
        names, covariates = layout.units
        y = data.matrix(list(names))
        return cls(np.nan_to_num(y), (~np.isnan(y)).astype(float), data.matrix(list(covariates)),
                   data.cluster_index.astype(float), data.cluster_values(list(layout.top_covariates)),
                   data.cluster_values(list(layout.cluster_only)))


def sampled_disturbances(level: LevelPlan, outcomes: list[int], families: dict[str, str]) -> np.ndarray:
    """S: the positions of the level's non-outcome variables whose variance is not fixed to 0
    (or varies over clusters); raises unless the outcomes are endpoints with residuals
    independent of ζ_S (module docstring)."""
    psi, beta = level.psi.pattern, level.beta.pattern
    random_psi = level.random.get("psi")
    if random_psi is not None:
        psi[random_psi.rows, random_psi.cols] = True
    for block in level.random_covariances:
        psi[np.ix_(block.positions, block.positions)] = True
    where = level.roles.level or "single"
    for k in outcomes:
        name = level.variables[k]
        if beta[:, k].any():
            raise SpecificationError(f"{name!r} predicts another variable at the {where} level; with "
                                     "non-Gaussian responses observed variables can be outcomes and indicators only, "
                                     "for now.")
        if psi[k].sum() > psi[k, k]:
            raise SpecificationError(f"{name!r} has a residual covariance at the {where} level; with "
                                     "non-Gaussian responses residual covariances of observed variables are not "
                                     "supported yet.")
        if random_psi is not None and k in random_psi.rows and name in families:
            raise SpecificationError(f"{name!r} is {families[name]}: it has no residual variance to vary over clusters; "
                                     "remove its random variance ('NAME | ...~~...').")
    return np.array([k for k in range(len(level.variables)) if k not in outcomes and psi[k, k]], dtype=np.int64)


def level_values(level: LevelPlan, theta: pt.TensorVariable, covariates: pt.TensorVariable, sampled: np.ndarray,
                 name: str, dim: str, random: pt.TensorVariable | None = None,
                 cluster: pt.TensorVariable | None = None) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """v_n = T (α + Γ x_n + ζ_n) for every unit n (n, m), with ζ_S = L z_n sampled as ``name`` (dims
    ``dim`` × the sampled variables) and the other disturbances 0; also Ψ. With the clusters'
    random parameters ``random`` (J, K), B, Γ and Ψ are each unit's ``cluster``'s."""
    beta, gamma, psi = level_matrices(level, theta, random)
    t = all_effects(level, theta, random)

    def per_unit(matrix):  # a unit's cluster's matrix, where it varies over clusters
        return matrix[cluster] if matrix.ndim == 3 else matrix

    disturbance = pt.zeros((covariates.shape[0], len(level.variables)))
    if len(sampled):
        model = pm.Model.get_context()
        model.add_coord(f"{name}_variable", [level.variables[k] for k in sampled])
        z = pm.Normal(name, 0.0, 1.0, dims=(dim, f"{name}_variable"))
        chol = per_unit(pt.linalg.cholesky(psi[..., sampled[:, None], sampled]))
        disturbance = pt.set_subtensor(disturbance[:, sampled], _apply(chol, z))
    inner = fill(level.alpha, theta)[:, 0][None, :] + _apply(per_unit(gamma), covariates) + disturbance
    return _apply(per_unit(t), inner), per_unit(psi)


def _apply(matrix: pt.TensorVariable, vectors: pt.TensorVariable) -> pt.TensorVariable:
    """A x_n for every row x_n of ``vectors`` (n, k): one A (m, k) or one per row (n, m, k)."""
    return vectors @ matrix.T if matrix.ndim == 2 else (matrix * vectors[:, None, :]).sum(-1)


def conditional_loglik(plan: Plan, layout: Layout, theta: pt.TensorVariable,
                       stats: dict[str, pt.TensorVariable]) -> pt.TensorVariable:
    """Σ log p(y | sampled latent part) (module docstring)."""
    lowest = plan.levels[WITHIN if plan.two_level else SINGLE_LEVEL]
    names = lowest.roles.observed
    index = pt.cast(stats["cluster"], "int64")
    ll, random = 0.0, None
    if plan.two_level:
        between = plan.levels[BETWEEN]
        outcomes = [k for k, v in enumerate(between.roles.observed) if v not in names]
        cluster_values, between_psi = level_values(between, theta, stats["cluster_covariates"],
                                                   sampled_disturbances(between, outcomes, plan.families), "between_z",
                                                   "cluster")
        _scores(between, cluster_values, [k for k in range(len(between.variables))
                                          if k not in outcomes and between.variables[k] not in between.roles.random],
                "cluster")
        if plan.random:  # the clusters' random parameters: between variables, sampled with the others
            random = cluster_values[:, [between.variables.index(r.name) for r in plan.random]]
            pm.Model.get_context().add_coord("random", [r.name for r in plan.random])
            pm.Deterministic("random_effects", random, dims=("cluster", "random"))
        if outcomes:
            sd = pt.sqrt(pt.diagonal(between_psi)[outcomes])
            ll = ll + Family("gaussian", "identity").logp(stats["cluster_outcomes"], cluster_values[:, outcomes], sd=sd).sum()
    values, psi = level_values(lowest, theta, stats["covariates"],
                               sampled_disturbances(lowest, list(range(len(names))), plan.families),
                               "within_z" if plan.two_level else "latent_z", "row", random, index)
    _scores(lowest, values, range(len(names), len(lowest.variables)), "row")
    eta = values[:, :len(names)]
    if plan.two_level:
        parts = [between.roles.observed.index(v) for v in names if v in between.roles.observed]
        with_part = [k for k, v in enumerate(names) if v in between.roles.observed]
        eta = pt.inc_subtensor(eta[:, with_part], cluster_values[index][:, parts])
    variance = pt.diagonal(psi, axis1=-2, axis2=-1)[..., :len(names)]                 # (p,) or per row (N, p)
    for k, name in enumerate(names):
        family = parse_family(plan.families.get(name, "gaussian"))
        logp = family.logp(stats["responses"][:, k], eta[:, k], sd=pt.sqrt(variance[..., k]),
                           dispersion=1.0 / variance[..., k],
                           thresholds=_thresholds(plan, name, theta) if family.has_thresholds else None)
        ll = ll + (stats["observed"][:, k] * logp).sum()
    return ll


def _scores(level: LevelPlan, values: pt.TensorVariable, positions, unit: str) -> None:
    """The level's latent values per unit as the deterministic ``scores_<level>`` (unit × variable)."""
    positions = list(positions)
    if positions:
        name = f"scores_{level.roles.level or 'single'}"
        pm.Model.get_context().add_coord(f"{name}_variable", [level.variables[k] for k in positions])
        pm.Deterministic(name, values[:, positions], dims=(unit, f"{name}_variable"))


def _thresholds(plan: Plan, name: str, theta: pt.TensorVariable) -> pt.TensorVariable:
    """τ_1 < … < τ_{K−1} of an ordinal variable from θ (free) or the table (fixed)."""
    rows = plan.table[(plan.table["op"] == "|") & (plan.table["lhs"] == name)]
    return pt.stack([theta[f - 1] if f > 0 else pt.constant(fixed, dtype="float64")
                     for f, fixed in zip(rows["free"], rows["fixed"])])
