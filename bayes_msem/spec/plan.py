"""Parameter table → matrices, free-parameter layout and the features that choose the likelihood.

Each level is written in an all-variable (RAM/LISREL "all-y") form over its
modelled variables v = (observed, latent), conditional on its covariates x:

    v = α + B v + Γ x + ζ,     ζ ~ N(0, Ψ)

so that the observed part (the first ``p`` entries of v) has

    Σ = F (I − B)⁻¹ Ψ (I − B)⁻ᵀ Fᵀ,   E[y | x] = F (I − B)⁻¹ (α + Γ x).

A :class:`MatrixSpec` says which entries of B, Γ, Ψ and α are fixed and which
read which element of the natural-scale parameter vector θ (one element per
distinct free parameter of the table). Free covariances are grouped into
correlation blocks with an LKJ prior; θ's covariance elements are
R_ab √(ψ_aa ψ_bb).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .constraints import Constraints, solve_constraints
from .groups import deviation_prior
from .priors import CATEGORICAL_FACTOR_SD, CATEGORICAL_LOADING, Prior, default_priors, parse_prior
from .table import (
    SINGLE_LEVEL,
    WITHIN,
    LevelRoles,
    RandomParameter,
    SpecificationError,
    assign_roles,
    cross_level_factors,
    family_name,
    has_dispersion,
    random_parameters,
)


@dataclass(frozen=True)
class MatrixSpec:
    """A matrix of fixed values ``base`` plus free entries ``base[rows, cols] = θ[index]``."""

    base: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray

    @property
    def pattern(self) -> np.ndarray:
        """Where the matrix can be non-zero: its fixed non-zero entries and its free ones."""
        nonzero = self.base != 0
        nonzero[self.rows, self.cols] = True
        return nonzero


@dataclass(frozen=True)
class RandomEntries:
    """Entries of one matrix that vary over clusters: ``matrix[rows, cols] = f(r_j[index])`` with
    f = exp for log-variances (``exponentiate``), else the identity."""

    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    exponentiate: np.ndarray


@dataclass(frozen=True)
class RandomCovariance:
    """A cluster-specific covariance block Φ_j of the variables at ``positions``: log-SDs at
    ``log_sd`` and canonical partial correlations (unconstrained) at ``correlation`` in r_j."""

    positions: np.ndarray
    log_sd: np.ndarray
    correlation: np.ndarray


@dataclass(frozen=True)
class LevelPlan:
    """The matrices of one level over its variables: observed, then latent, then random parameters."""

    roles: LevelRoles
    beta: MatrixSpec
    gamma: MatrixSpec
    psi: MatrixSpec
    alpha: MatrixSpec
    random: dict[str, RandomEntries] = field(default_factory=dict)
    random_covariances: tuple[RandomCovariance, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        return self.roles.observed + self.roles.latent + self.roles.random


@dataclass(frozen=True)
class CorrelationBlock:
    """Variables joined by free covariances at one level, which sample their correlations together.

    ``pairs`` holds (a, b, θ index) of each free covariance (positions within
    the block), ``sampled`` whether the pair's correlation is sampled (False where an equality
    constraint computes the covariance: a shared label's later pairs, a derived θ element);
    ``variance`` gives for each variable the θ index of its variance
    or -1 with the fixed value in ``fixed_variance``. A ``complete`` block (every pair free)
    has one LKJ correlation matrix; in an incomplete one the correlations missing from
    ``pairs`` are 0 and each free correlation has the prior of a pair under ``prior``
    (LKJ(η) of two variables: beta(η, η) on (r + 1)/2), the matrix kept positive definite
    (:func:`positive_definite`), as it is in a block with pairs not sampled.
    """

    name: str
    level: str
    variables: tuple[str, ...]
    pairs: np.ndarray
    variance: np.ndarray
    fixed_variance: np.ndarray
    prior: Prior
    sampled: np.ndarray

    @property
    def complete(self) -> bool:
        """Every pair free and sampled: one LKJ correlation matrix."""
        n = len(self.variables)
        return len(self.pairs) == n * (n - 1) // 2 and bool(self.sampled.all())

    def correlation_matrix(self, correlations: np.ndarray) -> np.ndarray:
        """R (..., n, n) with ones on the diagonal and ``correlations`` (..., pairs) at the pairs."""
        n = len(self.variables)
        matrix = np.broadcast_to(np.eye(n), (*correlations.shape[:-1], n, n)).copy()
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        matrix[..., a, b] = matrix[..., b, a] = correlations
        return matrix


@dataclass(frozen=True)
class ApproximateSet:
    """One parameter approximately equal across groups: θ[index[g]] = μ + δ_g, δ_g ~ sd · t_ν (a
    normal for ν = ∞), μ with the parameter's prior (``name``: lavaan's ``lhs op rhs``, with its level)."""

    name: str
    index: np.ndarray
    sd: float
    nu: float = float("inf")


@dataclass(frozen=True)
class Features:
    """What decides how a model's likelihood can be computed (:mod:`..likelihood.registry` picks
    the strategy by them): the number of ``levels``; whether parameters vary over clusters
    (``random``), all of them slopes on observed within covariates (``slopes_only``); non-Gaussian
    responses; missing cells; factors with parts at higher levels (``cross_level``); observed
    variables of an upper level that the lowest level lacks (``upper_only``); levels above the
    rows that are crossed classifications rather than nested ones (``crossed``)."""

    levels: int
    random: bool = False
    slopes_only: bool = False
    non_gaussian: bool = False
    missing: bool = False
    cross_level: bool = False
    upper_only: bool = False
    crossed: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything the PyMC builder needs, derived from the parameter table."""

    table: pd.DataFrame
    parameters: pd.DataFrame  # one row per θ element: name, kind, prior (Prior), start, level
    levels: dict[str, LevelPlan]
    blocks: tuple[CorrelationBlock, ...]
    features: Features
    random: tuple[RandomParameter, ...] = ()
    families: dict[str, str] = field(default_factory=dict)  # non-Gaussian variable → family text
    groups: dict[str, dict[str, LevelPlan]] = field(default_factory=dict)  # group → its levels (multiple groups)
    approximate: tuple[ApproximateSet, ...] = ()
    constraints: Constraints = field(default_factory=Constraints)  # derived θ elements and bounds

    def for_group(self, group: str) -> Plan:
        """The plan of one group of a multiple-group model: its rows of the table and its levels, θ
        shared with the others."""
        return dataclasses.replace(self, table=self.table[self.table["group"] == group], levels=self.groups[group],
                                   groups={})

    @property
    def two_level(self) -> bool:
        """Whether the model has two levels (or more)."""
        return WITHIN in self.levels

    @property
    def three_level(self) -> bool:
        return len(self.levels) == 3


def parameter_kind(op: str, lhs: str, rhs: str, dispersion: bool = False) -> str:
    """The prior class of a table row: loading, regression, intercept, variance, covariance,
    threshold, or dispersion (``y ~~ y`` of a negative binomial or gamma y at the lowest level)."""
    if op == "~~":
        return "dispersion" if dispersion else "variance" if lhs == rhs else "covariance"
    return {"=~": "loading", "~": "regression", "~1": "intercept", "|": "threshold"}[op]


def row_names(table: pd.DataFrame) -> list[str]:
    """The θ name of each table row (:func:`parameter_name`); in a multiple-group table a row of a
    parameter that is not shared by every group is prefixed by its group (``Grant-White:visual~1``)."""
    names = [parameter_name(*r) for r in table[["level", "lhs", "op", "rhs"]].itertuples(index=False)]
    if "group" not in table:
        return names
    groups = table.groupby("free")["group"].nunique()
    everywhere = table["group"].nunique()
    return [name if free > 0 and groups[free] == everywhere else f"{group}:{name}"
            for name, free, group in zip(names, table["free"], table["group"])]


def parameter_name(level: str, lhs: str, op: str, rhs: str) -> str:
    """lavaan-style name of a parameter, prefixed by its level in multilevel models."""
    name = f"{lhs}{op}{rhs}"
    return f"{level}:{name}" if level else name


def model_features(roles: dict[str, LevelRoles], random: tuple[RandomParameter, ...],
                   families: Mapping[str, str] | None = None, missing: bool = False,
                   cross_level: bool = False, crossed: bool = False) -> Features:
    """The facts of a model that the likelihood strategies' registry chooses by."""
    levels = list(roles.values())  # lowest first
    lowest = set(levels[0].observed)
    within = roles.get(WITHIN)
    return Features(
        levels=len(levels), random=bool(random), non_gaussian=bool(families), missing=missing, cross_level=cross_level,
        crossed=crossed,
        upper_only=any(v not in lowest for r in levels[1:] for v in r.observed),
        slopes_only=bool(random) and within is not None
        and all(r.kind == "slope" and r.rhs in within.covariates for r in random),
    )


def make_plan(table: pd.DataFrame, priors: dict[str, str] | None = None,
              families: Mapping[str, str] | None = None, missing: bool = False,
              constraints: pd.DataFrame | None = None, crossed: bool = False) -> Plan:
    """Derive matrices, free parameters and correlation blocks from a complete table
    (``families``: the family text of each non-Gaussian variable; ``missing``: whether the
    data have missing cells; ``constraints``: the ``==``, ``<``, ``>`` rows that
    :func:`.constraints.constraint_rows` keeps; ``crossed``: the levels above the rows are crossed
    classifications)."""
    kind_priors = default_priors(priors)
    model_rows = table[table["op"].isin(["=~", "~", "~~", "~1"])]
    groups = list(dict.fromkeys(table["group"])) if "group" in table else []
    first = model_rows[model_rows["group"] == groups[0]] if groups else model_rows  # every group has its structure
    roles = assign_roles(first)
    lowest = next(iter(roles))
    dispersions = {(lowest, v) for v, f in (families or {}).items() if has_dispersion(f)}
    categorical = {v for v, f in (families or {}).items() if family_name(f) in ("bernoulli", "ordinal")}
    if "loading" not in (priors or {}):  # on a latent response's scale (docs/priors.md)
        kind_priors |= {("loading", level, variable): parse_prior(CATEGORICAL_LOADING, "loading")
                        for level in roles for variable in categorical}
    if "variance" not in (priors or {}):
        kind_priors |= {("variance", level, factor): parse_prior(CATEGORICAL_FACTOR_SD, "variance")
                        for level, factor in _categorical_factors(model_rows, categorical)}
    parameters = _free_parameters(table[table["op"].isin(["=~", "~", "~~", "~1", "|"])], kind_priors, dispersions,
                                  pd.Series(row_names(table), index=table.index))
    solved = solve_constraints(table, constraints) if constraints is not None else Constraints()
    random = tuple(random_parameters(first))
    cross_level = bool(cross_level_factors(first))
    if crossed:
        _check_crossed(roles, random, cross_level)
    features = model_features(roles, random, families, missing, cross_level, crossed)
    if not random and not cross_level:  # the count ignores the cross-level covariances these models use
        _check_moments(parameters.drop(index=solved.derived), roles, max(len(groups), 1))
    by_group = {g: model_rows[model_rows["group"] == g] for g in groups} or {"": model_rows}
    plans = {g: {lev: _level_plan(rows[rows["level"] == lev], r, random) for lev, r in roles.items()}
             for g, rows in by_group.items()}
    blocks = _correlation_blocks(model_rows, parameters, set(solved.derived))
    return Plan(table, parameters, next(iter(plans.values())), blocks, features, random, dict(families or {}),
                groups=plans if groups else {}, approximate=_approximate_sets(table), constraints=solved)


def _check_crossed(roles: dict[str, LevelRoles], random: tuple[RandomParameter, ...], cross_level: bool) -> None:
    """Refuse what cross-classified models do not take yet: random parameters (slopes, loadings,
    variances varying over a classification) and factors with parts in several blocks."""
    if random:
        raise SpecificationError(f"random parameters ({', '.join(r.written for r in random)}) over crossed "
                                 "classifications are not supported yet; a crossed model takes random intercepts, "
                                 "factors, regressions and covariances in each classification's block.")
    if cross_level:
        raise SpecificationError("a factor with parts in several level blocks is not supported in cross-classified "
                                 "models yet; define each classification's factors in its own block.")
    if len(roles) < 3:
        raise SpecificationError("a cross-classified model (crossed=True) needs a 'level: within' block and one "
                                 "block per classification, named after its cluster column.")


def _categorical_factors(rows: pd.DataFrame, categorical: set[str]) -> list[tuple[str, str]]:
    """(level, factor) of the factors whose indicators are all binary or ordinal."""
    loadings = rows[rows["op"] == "=~"]
    return [key for key, items in loadings.groupby(["level", "lhs"], sort=False) if set(items["rhs"]) <= categorical]


def _approximate_sets(table: pd.DataFrame) -> tuple[ApproximateSet, ...]:
    """The parameters of a multiple-group table whose ``approx`` column holds a deviation SD, each
    with its θ index in every group (the groups in order)."""
    if "approx" not in table:
        return ()
    rows = table[table["approx"].notna() & (table["free"] > 0)]
    return tuple(ApproximateSet(parameter_name(level, lhs, op, rhs), same["free"].to_numpy() - 1,
                                *deviation_prior(lhs, same["approx_prior"].iloc[0] if "approx_prior" in same
                                                 else float(same["approx"].iloc[0])))
                 for (level, lhs, op, rhs), same in rows.groupby(["level", "lhs", "op", "rhs"], sort=False))


def data_variables(roles: dict[str, LevelRoles], crossed: bool = False) -> tuple[list[str], list[str], list[list[str]]]:
    """All observed variables the model uses; those absent from the within level (constant within
    clusters); per level above the clusters, those first used there or higher (constant within
    its clusters). With ``crossed`` classifications: those of the first classification's block and,
    per other classification, those of its block, that the within level lacks."""
    names = [[v for v in (*r.observed, *r.covariates)] for r in roles.values()]  # levels lowest first
    used = list(dict.fromkeys(v for level in names for v in level))
    if WITHIN not in roles:
        return used, [], []
    if crossed:
        return used, [v for v in names[1] if v not in names[0]], [[v for v in level if v not in names[0]]
                                                                   for level in names[2:]]
    between = [v for v in used if v not in names[0]]
    upper = [[v for v in between if not any(v in level for level in names[:rank])] for rank in range(2, len(names))]
    return used, between, upper


def missing_allowed(roles: dict[str, LevelRoles]) -> list[str]:
    """The variables whose missing cells the likelihood integrates out: the modelled observed
    variables of the lowest level."""
    return list(roles[WITHIN if WITHIN in roles else SINGLE_LEVEL].observed)


def _free_parameters(rows: pd.DataFrame, kind_priors: dict, dispersions: set[tuple[str, str]] = frozenset(),
                     names: pd.Series | None = None) -> pd.DataFrame:
    """One row per distinct free parameter (θ element) with its kind, prior and name (``names``:
    each row's, by the table's index, else :func:`parameter_name`; ``dispersions``: the (level,
    variable) pairs whose variance row is a dispersion). ``kind_priors`` maps a kind, or a (kind,
    level, right-hand side) triple where such rows have a default of their own, to the default prior."""
    free = rows[rows["free"] > 0]
    records = []
    for fid, group in free.groupby("free", sort=True):
        first = group.iloc[0]
        dispersion = first["op"] == "~~" and first["lhs"] == first["rhs"] and (first["level"], first["lhs"]) in dispersions
        kind = parameter_kind(first["op"], first["lhs"], first["rhs"], dispersion)
        written = group["prior"].dropna().unique()
        if len(written) > 1:
            raise SpecificationError(f"parameters sharing the label {first['label']!r} have different priors {list(written)}.")
        default = kind_priors.get((kind, first["level"], first["rhs"]), kind_priors[kind])
        prior = parse_prior(written[0], kind) if len(written) else default
        starts = group["start"].dropna()
        records.append(dict(
            free=fid, name=names[first.name] if names is not None else parameter_name(
                first["level"], first["lhs"], first["op"], first["rhs"]),
            lhs=first["lhs"], rhs=first["rhs"],
            kind=kind, level=first["level"], prior=prior, start=starts.iloc[0] if len(starts) else np.nan,
            label=first["label"],
        ))
    return pd.DataFrame(records, columns=["free", "name", "lhs", "rhs", "kind", "level", "prior", "start", "label"])


def _check_moments(parameters: pd.DataFrame, roles: dict[str, LevelRoles], groups: int = 1) -> None:
    """More free parameters than sample moments cannot be identified.

    Each level of each of the ``groups`` gives the (co)variances of its observed variables and
    their covariate effects; each variable's mean counts once, at the highest level where it has
    a part; an ordinal variable's category proportions give one moment per threshold.
    """
    levels = list(roles.values())  # lowest first
    moments = int((parameters["kind"] == "threshold").sum())
    for k, r in enumerate(levels):
        p, q = len(r.observed), len(r.covariates)
        higher = {v for upper in levels[k + 1:] for v in upper.observed}
        moments += groups * (p * (p + 1) // 2 + p * q + sum(v not in higher for v in r.observed))
    if len(parameters) > moments:
        raise SpecificationError(
            f"the model has {len(parameters)} free parameters but the data give only {moments} "
            "moments (variances, covariances, means and covariate effects); fix or constrain "
            f"at least {len(parameters) - moments} parameters."
        )


def _level_plan(rows: pd.DataFrame, roles: LevelRoles, random: tuple[RandomParameter, ...]) -> LevelPlan:
    """Scatter the rows of one level into B, Γ, Ψ and α; random rows go to the random entries."""
    position = {v: i for i, v in enumerate(roles.observed + roles.latent + roles.random)}
    covariate = {v: i for i, v in enumerate(roles.covariates)}
    m, q = len(position), len(covariate)
    entries: dict[str, list[tuple[int, int, float, int]]] = {"beta": [], "gamma": [], "psi": [], "alpha": []}
    random_entries, random_covariances = _random_entries(rows, random, position, covariate)
    for row in rows[rows["random"].isna()].itertuples(index=False):
        matrix, r, c = matrix_entry(row.op, row.lhs, row.rhs, position, covariate)
        entries[matrix].append((r, c, row.fixed, row.free - 1))
        if matrix == "psi" and r != c:
            entries[matrix].append((c, r, row.fixed, row.free - 1))
    shapes = {"beta": (m, m), "gamma": (m, q), "psi": (m, m), "alpha": (m, 1)}
    matrices = {k: _matrix(shapes[k], e) for k, e in entries.items()}
    return LevelPlan(roles, **matrices, random=random_entries, random_covariances=random_covariances)


def matrix_entry(op: str, lhs: str, rhs: str, position: dict[str, int], covariate: dict[str, int]) -> tuple[str, int, int]:
    """The matrix entry a relation sets: f =~ y → B[y, f]; y ~ x → Γ[y, x] for a covariate x,
    else B[y, x]; y ~ 1 → α[y]; a ~~ b → Ψ[a, b]."""
    if op == "=~":
        return "beta", position[rhs], position[lhs]
    if op == "~":
        return ("gamma", position[lhs], covariate[rhs]) if rhs in covariate else ("beta", position[lhs], position[rhs])
    if op == "~1":
        return "alpha", position[lhs], 0
    return "psi", position[lhs], position[rhs]


def _random_entries(rows: pd.DataFrame, random: tuple[RandomParameter, ...], position: dict[str, int],
                    covariate: dict[str, int]) -> tuple[dict[str, RandomEntries], tuple[RandomCovariance, ...]]:
    """Where each random parameter of this level's rows enters B, Γ or Ψ (index = position in ``random``)."""
    if rows["random"].isna().all():
        return {}, ()
    found: dict[str, list[tuple[int, int, int, bool]]] = {"beta": [], "gamma": [], "psi": []}
    blocks: dict[str, list[int]] = {}
    for k, r in enumerate(random):
        if r.kind in ("log_sd", "correlation"):
            blocks.setdefault(r.written, []).append(k)
        else:
            matrix, row, col = matrix_entry(r.op, r.lhs, r.rhs, position, covariate)
            found[matrix].append((row, col, k, r.kind == "log_variance"))
    entries = {
        name: RandomEntries(*(np.array([t[i] for t in e], dtype=bool if i == 3 else np.int64) for i in range(4)))
        for name, e in found.items() if e
    }
    covariances = []
    for ks in blocks.values():
        log_sd = [k for k in ks if random[k].kind == "log_sd"]
        covariances.append(RandomCovariance(
            positions=np.array([position[random[k].lhs] for k in log_sd]),
            log_sd=np.array(log_sd), correlation=np.array([k for k in ks if random[k].kind == "correlation"], dtype=np.int64),
        ))
    return entries, tuple(covariances)


def _matrix(shape: tuple[int, int], entries: list[tuple[int, int, float, int]]) -> MatrixSpec:
    base = np.zeros(shape)
    free = [(r, c, i) for r, c, v, i in entries if i >= 0]
    for r, c, v, i in entries:
        if i < 0:
            base[r, c] = v
    rows, cols, index = (np.array(x, dtype=np.int64) for x in zip(*free)) if free else (np.zeros(0, np.int64),) * 3
    return MatrixSpec(base, rows, cols, index)


def _correlation_blocks(rows: pd.DataFrame, parameters: pd.DataFrame, derived: set[int]
                        ) -> tuple[CorrelationBlock, ...]:
    """Group free covariances into blocks (connected components) per level, and per group in a
    multiple-group table; a pair is sampled unless its θ element is ``derived`` or an earlier row
    shares it (a shared label; a covariance equal across groups is sampled in the first group)."""
    blocks = []
    covariances = rows[(rows["op"] == "~~") & (rows["lhs"] != rows["rhs"]) & (rows["free"] > 0)]
    sampled = ~covariances["free"].duplicated() & ~(covariances["free"] - 1).isin(derived)
    grouped = "group" in rows
    for key, at in covariances.groupby(["group", "level"] if grouped else ["level"], sort=False):
        group, level = key if grouped else (None, key[0])
        prefix = f"g{list(dict.fromkeys(rows['group'])).index(group) + 1}_" if grouped else ""
        components = _components(list(zip(at["lhs"], at["rhs"])))
        for k, members in enumerate(components):
            within = at[at["lhs"].isin(members) & at["rhs"].isin(members)]
            order = {v: i for i, v in enumerate(members)}
            pairs = np.array([(order[a], order[b], f - 1) for a, b, f in zip(within["lhs"], within["rhs"], within["free"])])
            variance, fixed = [], []
            lev = rows[(rows["level"] == level) & ((rows["group"] == group) if grouped else True)]
            for v in members:
                row = lev[(lev["op"] == "~~") & (lev["lhs"] == v) & (lev["rhs"] == v)].iloc[0]
                variance.append(row["free"] - 1)
                fixed.append(row["fixed"] if row["free"] == 0 else np.nan)
            priors = [p for p in parameters.set_index("free").loc[within["free"], "prior"]]
            if len({p.text for p in priors}) > 1:
                raise SpecificationError(f"the covariances among {members} have different priors; the covariances of "
                                         "one connected set take one lkj(eta).")
            name = f"corr_{prefix}{level}_{k}" if level else f"corr_{prefix}{k}"
            blocks.append(CorrelationBlock(name, level, tuple(members), pairs, np.array(variance), np.array(fixed),
                                           priors[0], sampled[within.index].to_numpy()))
    return tuple(blocks)


def positive_definite(plan: Plan, theta: np.ndarray) -> np.ndarray:
    """Whether the correlation matrix of every incomplete block is positive definite and every
    variance an equality constraint derives is positive at each θ (..., parameters): the support of
    the joint prior. Complete blocks and sampled variances are valid by construction."""
    derived = plan.constraints.derived
    variances = derived[np.isin(plan.parameters["kind"].to_numpy()[derived], ["variance", "dispersion"])]
    ok = (theta[..., variances] > 0).all(axis=-1)
    for block in plan.blocks:
        if block.complete:
            continue
        variance = np.where(block.variance >= 0, theta[..., np.maximum(block.variance, 0)], block.fixed_variance)
        sd = np.sqrt(variance)
        a, b, index = block.pairs.T
        matrix = block.correlation_matrix(theta[..., index] / (sd[..., a] * sd[..., b]))
        ok &= np.linalg.eigvalsh(matrix)[..., 0] > 0
    return ok


def _components(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Connected components of an undirected graph, nodes in order of appearance."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    nodes = list(dict.fromkeys(v for e in edges for v in e))
    groups: dict[str, list[str]] = {}
    for v in nodes:
        groups.setdefault(find(v), []).append(v)
    return list(groups.values())


