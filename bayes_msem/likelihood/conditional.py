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

with the family of each variable (Gaussian ones: residual SD √ψ_vv; negative binomial and gamma
ones: φ = 1/ψ_vv, ψ_vv being the dispersion α of var = μ + α μ² or α μ²; ordinal ones: their
thresholds).
Cluster-level observed variables are Gaussian outcomes of their level.
Random parameters (slopes, loadings, log-variances, covariance blocks) are between variables,
sampled with the others; each row's level matrices are then its cluster's.

With more levels, each level's units are computed top down, and a variable that also lives at
a higher level gets that level's value as an offset: o = the value of the nearest level above
that has the variable (itself including the parts above it), added before T, so that a
factor's part at a higher level (a cross-level regression, ``f ~ f_district`` in the higher
block) also reaches the factor's indicators. Crossed classifications (schools and neighbourhoods)
are each computed on their own, and a row's offset is the sum of its clusters' parts in each:
η_i = y^W_i + y^S_{s(i)} + y^N_{n(i)}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData, cluster_ids, coordinate, unit_dim
from ..spec.plan import Features, LevelPlan, Plan
from ..spec.table import SpecificationError
from .families import Family, nominal_responses, parse_family
from .gaussian import Statistics
from .moments import all_effects, fill, level_matrices, small_matmul
from .strategy import CONDITIONAL, Strategy, local_dim


@dataclass(frozen=True)
class ResponseStatistics(Statistics):
    """Per row: the responses (missing cells 1, a value every family can take, so that their
    log-density terms, multiplied by 0, stay finite), which are observed, the numbers of trials of
    binomial responses (1 elsewhere and in missing cells), the censoring limits of tobit and interval
    responses (−∞ and +∞ elsewhere; an interval response is observed in every row, a missing lower
    bound being −∞), the covariates x and the cluster index;
    per level above the rows (one entry each, lowest first): its clusters'
    covariates and outcomes (variables observed first there), and the index of each cluster of
    the level below it in the level's clusters (rows → clusters first)."""

    responses: np.ndarray
    observed: np.ndarray
    trials: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    covariates: np.ndarray
    level_covariates: tuple
    level_outcomes: tuple
    parents: tuple

    @classmethod
    def from_data(cls, plan: Plan, data: ClusteredData) -> ResponseStatistics:
        levels = [lp.roles for lp in plan.levels.values()]  # lowest first
        y = data.matrix(list(levels[0].observed))
        trials, lower, upper = np.ones_like(y), np.full_like(y, -np.inf), np.full_like(y, np.inf)
        observed = ~np.isnan(y)
        for k, name in enumerate(levels[0].observed):
            family = parse_family(plan.families.get(name, "gaussian"))
            if family.trials is not None:
                trials[:, k] = np.where(np.isnan(y[:, k]), 1.0, data.column(family.trials))
            if family.is_censored:
                lower[:, k], upper[:, k] = family.limits(data.values, data.n_rows, y[:, k])
            if family.name == "interval":
                observed[:, k] = True
        ranks = range(1, len(levels))
        return cls(np.where(np.isnan(y), 1.0, y), observed.astype(float), trials, lower, upper,
                   data.matrix(list(levels[0].covariates)),
                   tuple(data.level_values(list(levels[k].covariates), k) for k in ranks),
                   tuple(data.level_values(list(level_outcomes(plan, k)), k) for k in ranks),
                   tuple([data.cluster_index, *(level.index for level in data.crossed)] if data.crossed else
                         [data.cluster_index, *(upper.parent for upper in data.uppers)][:len(ranks)]))


def level_outcomes(plan: Plan, rank: int) -> tuple[str, ...]:
    """The observed variables of the level of ``rank`` (0 lowest) that no lower level observes (the
    rows' level only, for a crossed classification): its outcomes (cluster-level variables)."""
    levels = [lp.roles for lp in plan.levels.values()]
    lower = {v for roles in levels[:1 if plan.features.crossed and rank else rank] for v in roles.observed}
    return tuple(v for v in levels[rank].observed if v not in lower)


def variance_pattern(level: LevelPlan) -> np.ndarray:
    """Where Ψ can be non-zero: its fixed non-zero and free entries, and those that vary over clusters."""
    psi = level.psi.pattern
    random_psi = level.random.get("psi")
    if random_psi is not None:
        psi[random_psi.rows, random_psi.cols] = True
    for block in level.random_covariances:
        psi[np.ix_(block.positions, block.positions)] = True
    return psi


def sampled_disturbances(level: LevelPlan, outcomes: list[int], families: dict[str, str]) -> np.ndarray:
    """S: the positions of the level's non-outcome variables whose variance is not fixed to 0
    (or varies over clusters); raises unless the outcomes are endpoints with residuals
    independent of ζ_S (module docstring)."""
    psi, beta = variance_pattern(level), level.beta.pattern
    random_psi = level.random.get("psi")
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
                 z: pt.TensorVariable | None, random: pt.TensorVariable | None = None,
                 cluster: pt.TensorVariable | None = None, offset: OffsetParts = ()
                 ) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """v_n = T α + (T Γ) x_n + (T_S L) z_n + T o_n for every unit n (n, m), with ζ_S = L z_n from the
    standard normal ``z`` (n, |S|), T_S the columns S of T and the other disturbances 0, and o_n
    the parts of the unit's variables at the levels above (``offset``, :func:`offset_parts`: T o_n
    is taken per unit of those levels, where T does not vary over clusters); also Ψ. With the
    clusters' random parameters ``random`` (J, K), B, Γ and Ψ are each unit's ``cluster``'s.
    Each term is one product with a matrix of the level's (or of the unit's cluster): nothing is
    placed into columns of an (n, m) array, which in a gradient costs a pass over it."""
    _, gamma, psi = level_matrices(level, theta, random)
    t = all_effects(level, theta, random)

    def per_unit(matrix):  # a unit's cluster's matrix, where it varies over clusters
        return matrix[cluster] if matrix.ndim == 3 else matrix

    values = t @ fill(level.alpha, theta)[:, 0]
    if values.ndim == 2:  # per cluster
        values = values[cluster]
    if level.gamma.base.shape[-1]:  # covariates
        values = values + _apply(per_unit(small_matmul(t, gamma)), covariates)
    if len(sampled):
        chol = pt.linalg.cholesky(psi[..., sampled[:, None], sampled])
        values = values + _apply(per_unit(small_matmul(t[..., :, sampled], chol)), z)
    if offset and t.ndim == 2:
        values = values + sum((above @ t.T)[where] for above, where in offset)
    elif offset:
        values = values + _apply(t[cluster], sum(above[where] for above, where in offset))
    if values.ndim == 1:  # nothing varies over units
        values = pt.broadcast_to(values, (covariates.shape[0], len(level.variables)))
    return values, per_unit(psi)


def _apply(matrix: pt.TensorVariable, vectors: pt.TensorVariable) -> pt.TensorVariable:
    """A x_n for every row x_n of ``vectors`` (n, k): one A (m, k) or one per row (n, m, k)."""
    return vectors @ matrix.T if matrix.ndim == 2 else (matrix * vectors[:, None, :]).sum(-1)


@dataclass(frozen=True)
class LevelValues:
    """One level's values per unit (with the parts of the levels above), its Ψ (per unit where it
    varies over clusters) and its outcomes (positions of the variables first observed there)."""

    level: LevelPlan
    values: pt.TensorVariable
    psi: pt.TensorVariable
    outcomes: list[int]


Disturbances = Callable[[int, LevelPlan, np.ndarray], pt.TensorVariable]
"""(rank, level, positions S) → the standard-normal z (units, |S|) of the level's disturbances ζ_S."""


def unit_index(stats: dict, n_levels: int, crossed: bool = False) -> dict[tuple[int, int], pt.TensorVariable]:
    """(rank a, rank b) → the index of each unit of level a in the units of level b > a; with
    ``crossed`` classifications, of the rows in each classification's clusters only."""
    parents = [pt.cast(parent, "int64") for parent in stats["parents"]]
    if crossed:
        return {(0, b): parents[b - 1] for b in range(1, n_levels)}
    index = {}
    for a in range(n_levels):
        for b in range(a + 1, n_levels):
            index[(a, b)] = parents[b - 1] if b == a + 1 else parents[b - 1][index[(a, b - 1)]]
    return index


def top_down(plan: Plan, theta: pt.TensorVariable, stats: dict, sampled: Callable[[int, LevelPlan, list[int]], np.ndarray],
             disturbances: Disturbances) -> list[LevelValues]:
    """Every level's values, top down (module docstring), lowest first in the result; ``sampled``
    chooses each level's disturbed positions S from its outcomes, ``disturbances`` gives their z."""
    levels = list(plan.levels.values())  # lowest first
    crossed = plan.features.crossed
    index = unit_index(stats, len(levels), crossed)
    totals, found = {}, {}  # rank → (level, values with the parts of the levels above)
    for rank in range(len(levels) - 1, 0, -1):
        level = levels[rank]
        outcomes = [level.variables.index(v) for v in level_outcomes(plan, rank)]
        chosen = sampled(rank, level, outcomes)
        values, psi = level_values(level, theta, stats["level_covariates"][rank - 1], chosen,
                                   disturbances(rank, level, chosen),
                                   offset=offset_parts(totals, level.variables, rank, index, crossed))
        totals[rank] = (level, values)
        found[rank] = LevelValues(level, values, psi, outcomes)
    random = None
    if plan.random:  # the clusters' random parameters: variables of the level above, sampled with the others
        level, values = totals[1]
        random = values[:, [level.variables.index(r.name) for r in plan.random]]
    lowest = levels[0]
    outcomes = list(range(len(lowest.roles.observed)))
    chosen = sampled(0, lowest, outcomes)
    values, psi = level_values(lowest, theta, stats["covariates"], chosen, disturbances(0, lowest, chosen), random,
                               index.get((0, 1)), offset_parts(totals, lowest.variables, 0, index, crossed))
    return [LevelValues(lowest, values, psi, outcomes), *(found[rank] for rank in sorted(found))]


@dataclass(frozen=True)
class LoglikTerms:
    """The terms of log p(y | sampled latent part): the rows' (N,), and those of the cluster-level
    outcomes of each level above (rank, terms per unit of that level), with the index of each
    row and unit in the units of the highest level."""

    rows: pt.TensorVariable
    upper: list[tuple[int, pt.TensorVariable]]
    index: dict[tuple[int, int], pt.TensorVariable]
    n_units: pt.TensorVariable
    top: int

    def total(self) -> pt.TensorVariable:
        """Σ log p(y | sampled latent part)."""
        return self.rows.sum() + sum(t.sum() for _, t in self.upper)

    def by_unit(self, rows: bool = True) -> pt.TensorVariable:
        """The terms summed per unit of the highest level (each row of a single-level model); the
        rows' terms left out without ``rows``."""
        terms = ([(0, self.rows)] if rows else []) + self.upper
        return sum((t if rank == self.top else pt.inc_subtensor(pt.zeros(self.n_units)[self.index[(rank, self.top)]], t)
                    for rank, t in terms), pt.zeros(self.n_units))


def conditional_loglik(plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
    """Σ log p(y | sampled latent part) (module docstring), the standard-normal disturbances being
    the model's ``*_z`` variables (the latent values recorded as deterministics)."""
    return loglik_terms(plan, theta, stats).total()


def loglik_terms(plan: Plan, theta: pt.TensorVariable, stats: dict, disturbances: Disturbances | None = None
                 ) -> LoglikTerms:
    """The terms of Σ log p(y | sampled latent part) (module docstring). The standard-normal
    disturbances are the model's ``*_z`` variables (with the latent values recorded as
    deterministics), or given by ``disturbances``."""
    model = pm.Model.get_context() if disturbances is None else None

    def standard_normal(rank: int, level: LevelPlan, chosen: np.ndarray) -> pt.TensorVariable | None:
        if not len(chosen):
            return None
        name = disturbance_name(rank, plan.two_level)
        model.add_coord(local_dim(f"{name}_variable"), [level.variables[k] for k in chosen])
        return pm.Normal(name, 0.0, 1.0, dims=(local_dim(unit_dim(rank) if rank else "row"),
                                               local_dim(f"{name}_variable")))

    def likelihood_disturbances(rank: int, level: LevelPlan, outcomes: list[int]) -> np.ndarray:
        return sampled_disturbances(level, outcomes, plan.families)

    found = top_down(plan, theta, stats, likelihood_disturbances, disturbances or standard_normal)
    top = len(found) - 1
    index = unit_index(stats, len(found), plan.features.crossed)
    terms = []  # (rank, log-density of each unit of that level)
    for rank, part in enumerate(found):
        if model is not None:
            unit = local_dim(unit_dim(rank) if rank else "row")
            record_scores(part.level, part.values,
                          [k for k in range(len(part.level.variables)) if k not in part.outcomes], unit)
        if rank and part.outcomes:  # cluster-level outcomes, Gaussian
            sd = pt.sqrt(pt.diagonal(part.psi)[part.outcomes])
            terms.append((rank, Family("gaussian", "identity").logp(stats["level_outcomes"][rank - 1],
                                                                   part.values[:, part.outcomes], sd=sd).sum(-1)))
    if plan.random and model is not None:
        model.add_coord("random", [r.name for r in plan.random])
        level = found[1].level
        pm.Deterministic("random_effects", found[1].values[:, [level.variables.index(r.name) for r in plan.random]],
                         dims=(local_dim("cluster"), "random"))
    lowest = found[0]
    names = lowest.level.roles.observed
    eta = lowest.values[:, :len(names)]
    variance = pt.diagonal(lowest.psi, axis1=-2, axis2=-1)[..., :len(names)]                 # (p,) or per row (N, p)
    rows = 0.0
    nominal = nominal_responses(plan.families, list(names))
    for family, k in family_columns(plan, names):  # k: a column, or the columns of one family without own parameters
        name = names[k] if isinstance(k, int) else None
        logp = family.logp(stats["responses"][:, k], eta[:, k], sd=pt.sqrt(variance[..., k]),
                           dispersion=1.0 / variance[..., k], trials=stats["trials"][:, k],
                           lower=stats["lower"][:, k], upper=stats["upper"][:, k],
                           responses=eta[:, nominal[name]] if name in nominal else None,
                           thresholds=thresholds(plan, name, theta) if family.has_thresholds else None)
        if plan.features.missing:  # missing cells' terms are 0
            logp = stats["observed"][:, k] * logp
        rows = rows + (logp if isinstance(k, int) else logp.sum(-1))
    return LoglikTerms(rows, terms, index, found[top].values.shape[0], top)


def family_columns(plan: Plan, names: tuple[str, ...]) -> list[tuple[Family, int | np.ndarray]]:
    """The response families of the columns ``names`` with the column each applies to; the columns of
    a family that has no parameters of its own (thresholds, a nominal variable's other responses)
    together, as one array of positions, so that its log-density is one operation (and its
    gradient one array) for all of them."""
    found: dict[Family, list[int]] = {}
    single = []
    for k, name in enumerate(names):
        family = parse_family(plan.families.get(name, "gaussian"))
        if family.has_thresholds or family.name == "nominal":
            single.append((family, k))
        else:
            found.setdefault(family, []).append(k)
    return [(family, np.array(columns)) for family, columns in found.items()] + single


OffsetParts = Sequence[tuple[pt.TensorVariable, pt.TensorVariable]]
"""The parts of a level's variables at the levels above: per level above, its units' values placed
in the level's variables (units above, m) and the index of each unit of the level in its units."""


def offset_parts(totals: dict, names: tuple[str, ...], rank: int, index: dict, crossed: bool = False) -> OffsetParts:
    """Per unit of level ``rank`` and each of its variables, the variable's value at the nearest
    level above that has it (which already holds the parts of the levels above that one), as
    :data:`OffsetParts`; nothing where no level above has it. With ``crossed`` classifications,
    its values in every classification a row belongs to (nothing for a classification's own units)."""
    parts, done = [], set()
    for above in sorted(totals):
        level, values = totals[above]
        where = [k for k, v in enumerate(names) if v in level.variables and (crossed or v not in done)]
        if above > rank and where and (rank, above) in index:
            placement = np.zeros((len(level.variables), len(names)))  # the level's variable → the same name here
            placement[[level.variables.index(names[k]) for k in where], where] = 1.0
            parts.append((values @ placement, index[(rank, above)]))
            done |= {names[k] for k in where}
    return parts


def offset_of(totals: dict, names: tuple[str, ...], rank: int, index: dict, crossed: bool = False
              ) -> pt.TensorVariable | float:
    """The sum of :func:`offset_parts` per unit of level ``rank`` (units, m); 0 if there are none."""
    return sum((above[where] for above, where in offset_parts(totals, names, rank, index, crossed)), 0.0)


def disturbance_name(rank: int, multilevel: bool = True) -> str:
    """The name of a level's standard-normal disturbances: within_z, between_z, upper_z, upper_4_z, …
    (latent_z in a single-level model)."""
    if not multilevel:
        return "latent_z"
    return ("within_z", "between_z")[rank] if rank < 2 else f"{unit_dim(rank)}_z"


def record_scores(level: LevelPlan, values: pt.TensorVariable, positions, unit: str) -> None:
    """The level's latent values per unit as the deterministic ``scores_<level>`` (unit × variable)."""
    positions = list(positions)
    if positions:
        name = f"scores_{level.roles.level or 'single'}"
        pm.Model.get_context().add_coord(local_dim(f"{name}_variable"), [level.variables[k] for k in positions])
        pm.Deterministic(name, values[:, positions], dims=(unit, local_dim(f"{name}_variable")))


def thresholds(plan: Plan, name: str, theta: pt.TensorVariable) -> pt.TensorVariable:
    """τ_1 < … < τ_{K−1} of an ordinal variable from θ (free) or the table (fixed)."""
    rows = plan.table[(plan.table["op"] == "|") & (plan.table["lhs"] == name)]
    return pt.stack([theta[f - 1] if f > 0 else pt.constant(fixed, dtype="float64")
                     for f, fixed in zip(rows["free"], rows["fixed"])])


class Conditional(Strategy):
    """Any model, the last resort: latent variables sampled per row and cluster (and upper
    cluster), responses of any family; needed for non-Gaussian responses (nothing non-Gaussian
    integrates in closed form), four or more levels, cross-level factors, and three levels with
    random parameters, missing cells or variables observed at an upper level only."""

    name = kind = CONDITIONAL

    def handles(self, features: Features) -> bool:
        return True

    def statistics(self, plan: Plan, data: ClusteredData) -> ResponseStatistics:
        return ResponseStatistics.from_data(plan, data)

    def add_to_model(self, plan: Plan, data: ClusteredData, theta: pt.TensorVariable) -> pt.TensorVariable:
        model = pm.Model.get_context()
        model.add_coord(local_dim("row"), np.arange(data.n_rows))
        model.add_coord(local_dim("cluster"), cluster_ids(data))
        for rank in range(2, data.n_levels):
            model.add_coord(local_dim(unit_dim(rank)), coordinate(data.level_ids(rank)))
        return super().add_to_model(plan, data, theta)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        return conditional_loglik(plan, theta, stats)
