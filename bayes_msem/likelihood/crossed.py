"""The crossed strategy: Gaussian cross-classified models (pupils in schools and in neighbourhoods).

Each row i belongs to a cluster s(i) of the first classification and to a cluster c(i) of each
other classification; its within variables are the sum of their parts,

    y_i = y^W_i + y^S_{s(i)} + Σ_c y^c_{c(i)}.

The other classifications' variables are sampled non-centred, v_c = T_c (α_c + Γ_c w_c + L_c z_c)
with L_c L_cᵀ = Ψ_c over their latent variables and random intercepts
(:func:`.conditional.level_values`); their cluster-level outcomes are Gaussian given them. Given
the sampled parts, y'_i = y_i − Σ_c y^c_{c(i)} is an ordinary two-level model in the first
classification, whose effects integrate out cluster by cluster (:func:`.hybrid.hybrid_loglik`)
from the clusters' means and within scatter of (y', x), which move with the sampled parts:

    log p(y | v) = Σ_s log p(y'_s) + Σ_c Σ_k log N(z_ck; v_ck[outcomes], Ψ_c[outcomes]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData, coordinate, unit_dim
from ..spec.plan import Features, LevelPlan, Plan
from ..spec.table import BETWEEN, WITHIN
from .conditional import (
    disturbance_name,
    level_outcomes,
    level_values,
    offset_of,
    record_scores,
    sampled_disturbances,
)
from .families import Family
from .gaussian import Layout, Statistics
from .hybrid import BetweenGivenRandom, hybrid_loglik
from .moments import implied_moments
from .strategy import HYBRID, Strategy, local_dim
from .woodbury import scatter_add


def first_classification(plan: Plan) -> Plan:
    """The two-level plan of the within level and the first classification's level (its between level)."""
    within, first = list(plan.levels.values())[:2]
    return dataclasses.replace(plan, levels={WITHIN: within, BETWEEN: first})


@dataclass(frozen=True)
class CrossedStatistics(Statistics):
    """Per row: the within variables and covariates (y, x) and the index of its cluster; per cluster
    of the first classification: its size, its cluster-level outcomes and covariates w_s; per other
    classification (one entry each): each row's cluster, and its clusters' covariates and outcomes."""

    rows: np.ndarray
    cluster: np.ndarray
    sizes: np.ndarray
    cluster_values: np.ndarray
    covariates: np.ndarray
    crossed_index: tuple
    crossed_covariates: tuple
    crossed_outcomes: tuple

    @classmethod
    def from_data(cls, plan: Plan, data: ClusteredData) -> CrossedStatistics:
        layout = Layout.from_plan(first_classification(plan))
        ranks = range(2, len(plan.levels))
        levels = list(plan.levels.values())
        return cls(data.matrix(list(layout.within + layout.within_covariates)), data.cluster_index.astype(float),
                   data.sizes.astype(float), data.cluster_values(list(layout.cluster_only)),
                   data.cluster_values(list(layout.top_covariates)),
                   tuple(data.level_index(rank).astype(float) for rank in ranks),
                   tuple(data.level_values(list(levels[rank].roles.covariates), rank) for rank in ranks),
                   tuple(data.level_values(list(level_outcomes(plan, rank)), rank) for rank in ranks))


def cluster_statistics(rows: pt.TensorVariable, cluster: pt.TensorVariable, sizes: pt.TensorVariable
                       ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Each cluster's means (J, d) of the rows r_i (N, d) and its within scatter Σ_i (r_i − r̄)(r_i − r̄)ᵀ (J, d, d)."""
    means = scatter_add(rows, cluster, sizes.shape[0]) / sizes[:, None]
    deviations = rows - means[cluster]
    return means, scatter_add(deviations[:, :, None] * deviations[:, None, :], cluster, sizes.shape[0])


def crossed_loglik(plan: Plan, theta: pt.TensorVariable, stats: dict, z: list[pt.TensorVariable],
                   record: bool = False) -> pt.TensorVariable:
    """log p(y | the other classifications' parts) (module docstring), from their standard-normal
    disturbances ``z`` (one (clusters, |S_c|) matrix per other classification, or None where it has
    none); with ``record`` their values are kept as the deterministics ``scores_<level>``."""
    within = plan.levels[WITHIN]
    loglik, totals, index = 0.0, {}, {}
    for k, (rank, level, outcomes, chosen) in enumerate(crossed_disturbances(plan)):
        values, psi = level_values(level, theta, stats["crossed_covariates"][k], chosen, z[k])
        if outcomes:
            sd = pt.sqrt(pt.diagonal(psi)[outcomes])
            loglik = loglik + Family("gaussian", "identity").logp(stats["crossed_outcomes"][k], values[:, outcomes],
                                                                  sd=sd).sum()
        if record:
            record_scores(level, values, [j for j in range(len(level.variables)) if j not in outcomes],
                          local_dim(unit_dim(rank)))
        totals[rank] = (level, values)
        index[(0, rank)] = pt.cast(stats["crossed_index"][k], "int64")
    p = len(within.roles.observed)
    offset = offset_of(totals, within.variables, 0, index, crossed=True)
    rows = stats["rows"]
    if not isinstance(offset, float):
        rows = pt.set_subtensor(rows[:, :p], rows[:, :p] - offset[:, :p])
    cluster = pt.cast(stats["cluster"], "int64")
    means, scatter = cluster_statistics(rows, cluster, stats["sizes"])
    two_level = first_classification(plan)
    between = implied_moments(two_level.levels[BETWEEN], theta)
    given = BetweenGivenRandom(None, between.mean[None, :] + stats["covariates"] @ between.coef.T, between.cov)
    cluster_stats = {"sizes": stats["sizes"], "means": pt.concatenate([means[:, :p], stats["cluster_values"]], axis=1),
                     "covariate_means": means[:, p:], "scatter": scatter}
    return loglik + hybrid_loglik(Layout.from_plan(two_level), implied_moments(within, theta), given, cluster_stats)


def crossed_disturbances(plan: Plan) -> list[tuple[int, LevelPlan, list[int], np.ndarray]]:
    """(rank, level, positions of its outcomes, sampled positions S) of each classification after the first."""
    levels = list(plan.levels.values())
    found = []
    for rank in range(2, len(levels)):
        level = levels[rank]
        outcomes = [level.variables.index(v) for v in list(level_outcomes(plan, rank))]
        found.append((rank, level, outcomes, sampled_disturbances(level, outcomes, {})))
    return found


class Crossed(Strategy):
    """Gaussian cross-classified models without random parameters or missing cells: the first
    classification's effects integrated out, the others' sampled (``upper_z``, … over their clusters;
    their values as ``scores_<classification>``)."""

    name = "crossed"
    kind = HYBRID

    def handles(self, features: Features) -> bool:
        return features.crossed and not (features.random or features.non_gaussian or features.missing
                                         or features.cross_level)

    def statistics(self, plan: Plan, data: ClusteredData) -> CrossedStatistics:
        return CrossedStatistics.from_data(plan, data)

    def add_to_model(self, plan: Plan, data: ClusteredData, theta: pt.TensorVariable) -> pt.TensorVariable:
        model = pm.Model.get_context()
        for rank in range(2, data.n_levels):
            model.add_coord(local_dim(unit_dim(rank)), coordinate(data.level_ids(rank)))
        return super().add_to_model(plan, data, theta)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        model = pm.Model.get_context()
        z = []
        for rank, level, _, chosen in crossed_disturbances(plan):
            if not len(chosen):
                z.append(None)
                continue
            name = disturbance_name(rank)
            model.add_coord(local_dim(f"{name}_variable"), [level.variables[k] for k in chosen])
            z.append(pm.Normal(name, 0.0, 1.0, dims=(local_dim(unit_dim(rank)), local_dim(f"{name}_variable"))))
        return crossed_loglik(plan, theta, stats, z, record=True)
