"""Simulated data sets: parameter values by name → θ, a data design (the model's own clusters and
covariates, or new clusters with new covariates, plus MCAR cells) → one data set drawn by
:class:`.simulator.Simulator` (behind :meth:`.Model.simulate` and every replication of a study).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.clustered import ClusteredData, UpperLevel, data_frame, validate
from ..data.scales import rescaled
from ..errors import ArgumentTypeError, SettingsError
from ..likelihood.families import family_columns, plan_families
from ..spec.arguments import check_seed
from ..spec.plan import Plan, data_variables, missing_allowed, parameter_name
from .simulator import Simulator

ParameterValues = Mapping[str, float] | pd.Series | pd.DataFrame
ClusterSize = int | tuple[int, int]
_SHOW = 8  # names listed in messages


# ---------------------------------------------------------------- parameter values → θ

def theta_values(plan: Plan, values: ParameterValues) -> np.ndarray:
    """θ (one element per free parameter) from values named as in θ's ``parameter`` dimension
    (``level:lhs op rhs``, e.g. ``"between:fb=~y2"``, or ``lhs op rhs`` in single-level models) or by
    label; or from a table with columns lhs, op, rhs, level and ``value`` (else ``mean``), such as
    ``fit.parameters()``, whose fixed rows, defined parameters and rows with ``free`` false are
    skipped. Raises for unknown names, fixed or random parameters given other values, conflicting
    values of one parameter, missing free parameters and non-positive variances."""
    given = _named(values)
    index: dict[str, int] = {}
    fixed: dict[str, float] = {}
    random: dict[str, str] = {}
    for row in plan.table.itertuples(index=False):
        name = parameter_name(row.level, row.lhs, row.op, row.rhs)
        if row.free > 0:
            index[name] = row.free - 1
            if isinstance(row.label, str):
                index[row.label] = row.free - 1
        elif isinstance(row.random, str):
            random[name] = row.random
        else:
            fixed[name] = row.fixed
    theta = np.full(len(plan.parameters), np.nan)
    unknown = []
    for name, value in given.items():
        if not np.isfinite(value):
            raise SettingsError(f"the value of {name!r} is {value}; give every parameter a finite number.")
        if name in index:
            k = index[name]
            if not np.isnan(theta[k]) and theta[k] != value:
                raise SettingsError(f"{name!r} is the parameter {plan.parameters['name'][k]!r} (a shared label), which "
                                    f"was given {theta[k]:g} and {value:g}; give it one value.")
            theta[k] = value
        elif name in random:
            r = random[name]
            raise SettingsError(f"{name!r} varies over clusters as the random parameter {r!r}; give its mean and "
                                f"variance instead (e.g. 'between:{r}~1', 'between:{r}~~{r}').")
        elif name in fixed:
            if value != fixed[name]:
                raise SettingsError(f"{name!r} is fixed to {fixed[name]:g} in the model syntax, not {value:g}; free it in "
                                    "the syntax or leave it out.")
        else:
            unknown.append(name)
    names = list(plan.parameters["name"])
    if unknown:
        close = {n: difflib.get_close_matches(n, list(index), 1) for n in unknown[:_SHOW]}
        hints = [f"{n!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for n, c in close.items()]
        raise SettingsError(f"unknown parameter name(s) {', '.join(hints)}; name parameters as in fit.parameters() "
                            f"(level:lhs op rhs) or by label. The model's free parameters: {listed(names)}.")
    missing = [name for name, value in zip(names, theta) if np.isnan(value)]
    if missing:
        raise SettingsError(f"no value for the free parameter(s) {listed(missing)}; give a value for every free "
                            "parameter (the list is model.plan.parameters['name']), e.g. from fit.parameters() of a fit.")
    positive = plan.parameters["kind"].isin(["variance", "dispersion"]).to_numpy() & (theta <= 0)
    if positive.any():
        raise SettingsError(f"variance(s) {listed([n for n, p in zip(names, positive) if p])} must be positive.")
    return theta


def _named(values: ParameterValues) -> dict[str, float]:
    """{name: value} from a mapping, a Series or a parameter table (:func:`theta_values`)."""
    if isinstance(values, pd.DataFrame):
        if not {"lhs", "op", "rhs"} <= set(values.columns) or not {"value", "mean"} & set(values.columns):
            raise SettingsError("a table of parameter values needs columns lhs, op, rhs (and level in multilevel "
                                f"models) and value (or mean, as fit.parameters()); it has {list(values.columns)}.")
        rows = values[values["op"] != ":="]
        if "free" in rows.columns:
            rows = rows[rows["free"].astype(bool)]
        level = rows["level"].fillna("") if "level" in rows.columns else pd.Series("", index=rows.index)
        column = "value" if "value" in rows.columns else "mean"
        names = [parameter_name(*r) for r in zip(level, rows["lhs"], rows["op"], rows["rhs"].fillna(""))]
        return dict(zip(names, rows[column].astype(float)))
    if isinstance(values, (Mapping, pd.Series)):
        return {str(name): float(value) for name, value in values.items()}
    raise ArgumentTypeError(f"parameter values must be a mapping, a Series or a table like fit.parameters(), got "
                            f"{type(values).__name__}.")


def listed(names: Sequence[str]) -> str:
    """The first few names, quoted."""
    return ", ".join(map(repr, names[:_SHOW])) + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


# ---------------------------------------------------------------- the data design

def design_data(plan: Plan, data: ClusteredData, cluster: str | list[str] | None, rng: np.random.Generator,
                n_clusters: int | None = None, cluster_size: ClusterSize | list[ClusterSize] | None = None,
                covariates: pd.DataFrame | None = None, missing: float | Mapping[str, float] | None = None
                ) -> ClusteredData:
    """The clusters and covariates of a simulated data set, the modelled variables as placeholders
    (0, or NaN in the cells to be missing): the model's ``data`` (its clusters, covariates and
    missing cells); the clusters and covariates of a ``covariates`` frame; or new clusters
    (:func:`new_clusters`) with each exogenous covariate drawn N(0, 1) independently per unit of its
    level. ``missing`` (a rate, or a rate per variable) makes each cell of the lowest level's
    modelled variables missing with that probability (MCAR). The columns response families read (a
    binomial's trials) come from the data or the ``covariates`` frame: new clusters have none."""
    if covariates is not None:
        if n_clusters is not None or cluster_size is not None:
            raise SettingsError("give either a covariates frame (its clusters are the design) or n_clusters and "
                                "cluster_size, not both.")
        data = _covariate_data(plan, covariates, cluster)
    elif n_clusters is not None:
        if plan.features.crossed:
            raise SettingsError("new clusters of crossed classifications need their crossing: give the design as a "
                                "covariates= frame with a row per unit and its cluster columns, e.g. "
                                "covariates=data[['school', 'neighbourhood', 'x']], or leave n_clusters out to keep "
                                "the model's data.")
        for what in family_columns(plan_families(plan)).values():
            raise SettingsError(f"new clusters have no {what}: give the design as a covariates= frame with that "
                                "column (and the cluster columns), e.g. covariates=data[[...]]")
        data = new_clusters(plan, cluster, n_clusters, cluster_size, rng)
    elif cluster_size is not None:
        raise SettingsError("cluster_size needs n_clusters (the number of clusters of the highest level); give both, "
                            "or neither to keep the model's data.")
    return _with_missing(plan, data, missing, rng)


def _levels(plan: Plan) -> list:
    """The plan's levels, lowest first."""
    return list(plan.levels.values())


def _placeholders(plan: Plan, n_rows: int) -> dict[str, np.ndarray]:
    """Zeros for every modelled observed variable of every level (the simulator fills them)."""
    return {v: np.zeros(n_rows) for level in _levels(plan) for v in level.roles.observed}


def _covariate_data(plan: Plan, frame: pd.DataFrame, cluster: str | list[str] | None) -> ClusteredData:
    """The clusters and covariates of ``frame``, checked as model data are."""
    roles = {level.roles.level: level.roles for level in _levels(plan)}
    covariates = [v for r in roles.values() for v in r.covariates]
    _, between, upper = data_variables(roles, plan.features.crossed)
    given = validate(frame, covariates, cluster, [v for v in between if v in covariates],
                     upper_levels=[[v for v in names if v in covariates] for names in upper],
                     auxiliary=family_columns(plan_families(plan)), crossed=plan.features.crossed)
    return dataclasses.replace(given, values={**_placeholders(plan, given.n_rows), **given.values})


def new_clusters(plan: Plan, cluster: str | list[str] | None, n_clusters: int,
                 cluster_size: ClusterSize | list[ClusterSize] | None, rng: np.random.Generator) -> ClusteredData:
    """``n_clusters`` units of the highest level, each holding ``cluster_size`` units of the level
    below (a number, or (low, high) for sizes uniform on low..high), down to the rows; a list of
    sizes, lowest first, for three or more levels (rows per cluster, clusters per level-3 unit, …);
    a single-level model has ``n_clusters`` rows. Ids count from 0 at each level; the exogenous
    covariates are N(0, 1), drawn per unit of their level."""
    columns = [] if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
    _check_count(n_clusters, columns)
    parents, count = [], n_clusters  # parents[k]: per unit of level k (0 the rows), its unit of level k + 1
    for low, high in reversed(_sizes(cluster_size, columns)):
        parents.insert(0, np.repeat(np.arange(count), rng.integers(low, high + 1, size=count)))
        count = len(parents[0])
    units = [len(parent) for parent in parents] + [n_clusters]  # per level, lowest first
    values = _placeholders(plan, units[0])
    index = np.arange(units[0])  # per row, its unit of the level at hand
    for rank, level in enumerate(_levels(plan)):
        draws = rng.standard_normal((units[rank], len(level.roles.covariates)))
        values |= {v: draws[index, k] for k, v in enumerate(level.roles.covariates)}
        index = parents[rank][index] if rank < len(parents) else index
    rows = np.arange(units[0])
    if not columns:
        return ClusteredData(values, rows, None, rows, rows, np.ones(units[0], np.int64))
    uppers = tuple(UpperLevel(column, np.arange(units[rank + 1]), parents[rank])
                   for rank, column in enumerate(columns[1:], start=1))
    return ClusteredData(values, rows, columns[0], np.arange(units[1]), parents[0],
                         np.bincount(parents[0]).astype(np.int64), uppers)


def _check_count(n_clusters: Any, columns: list[str]) -> None:
    if not isinstance(n_clusters, (int, np.integer)) or isinstance(n_clusters, bool) or n_clusters < 2:
        what = f"clusters of {columns[-1]!r}" if columns else "rows (the model has a single level)"
        raise SettingsError(f"n_clusters must be an integer >= 2 (the number of {what}), got {n_clusters!r}.")


def _sizes(cluster_size: Any, columns: list[str]) -> list[tuple[int, int]]:
    """The (low, high) size of each level's units, lowest first, checked (see :func:`new_clusters`)."""
    if not columns:
        if cluster_size not in (None, 1):
            raise SettingsError("a single-level model has no clusters: leave cluster_size out (n_clusters is the number "
                                "of rows).")
        return []
    if cluster_size is None:
        raise SettingsError("n_clusters needs cluster_size: the number of units in each cluster, e.g. 10 or (5, 15), "
                            "one per level above the rows (lowest first) with three or more levels.")
    sizes = cluster_size if isinstance(cluster_size, list) else [cluster_size]
    if len(sizes) != len(columns):
        example = "[10, (3, 6)] for 10 rows per cluster and 3 to 6 clusters per upper cluster" if len(columns) > 1 \
            else "10 or (5, 15)"
        raise SettingsError(f"cluster_size needs one size per level above the rows ({len(columns)}: "
                            f"{', '.join(map(repr, columns))}), lowest first, e.g. {example}; got {cluster_size!r}.")
    bounds = [_bounds(size) for size in sizes]
    for (low, high), size, column in zip(bounds, sizes, columns):
        if not 1 <= low <= high or high < 2:
            raise SettingsError(f"the size of the clusters of {column!r} must be an integer >= 2 or a range (low, high) "
                                f"with 1 <= low <= high and high >= 2, got {size!r}.")
    return bounds


def _bounds(size: Any) -> tuple[int, int]:
    """(n, n) for a number n, (low, high) for a pair of numbers, else (0, 0)."""
    def integer(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if integer(size):
        return int(size), int(size)
    if isinstance(size, tuple) and len(size) == 2 and all(map(integer, size)):
        return int(size[0]), int(size[1])
    return 0, 0


def _with_missing(plan: Plan, data: ClusteredData, missing: float | Mapping[str, float] | None,
                  rng: np.random.Generator) -> ClusteredData:
    """``data`` with each cell of the named variables NaN with its probability (MCAR)."""
    if missing is None:
        return data
    allowed = missing_allowed({level.roles.level: level.roles for level in _levels(plan)})
    rates = dict(missing) if isinstance(missing, Mapping) else dict.fromkeys(allowed, missing)
    wrong = [v for v in rates if v not in allowed]
    if wrong:
        raise SettingsError(f"no missing cells in {listed(wrong)}: only the modelled variables of the lowest level "
                            f"({listed(allowed)}) can have missing cells; covariates and cluster-level variables are "
                            "complete.")
    values = dict(data.values)
    for name, rate in rates.items():
        if not 0 <= rate < 1:
            raise SettingsError(f"the missing rate of {name!r} must be in [0, 1), got {rate!r}.")
        values[name] = np.where(rng.random(data.n_rows) < rate, np.nan, values[name])
    return dataclasses.replace(data, values=values)


def simulate_data(plan: Plan, data: ClusteredData, scales: Mapping[str, float], cluster: str | list[str] | None,
                  parameters: ParameterValues, n_clusters: int | None = None,
                  cluster_size: ClusterSize | list[ClusterSize] | None = None,
                  seed: int | np.random.SeedSequence | None = None, covariates: pd.DataFrame | None = None,
                  missing: float | Mapping[str, float] | None = None) -> pd.DataFrame:
    """One data set from the model of ``plan`` fitted to ``data`` (divided by ``scales``) at
    ``parameters`` (see :meth:`.Model.simulate`)."""
    check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    theta = theta_values(plan, parameters)
    data = rescaled(data, {name: 1 / scale for name, scale in scales.items()})  # in the variables' units
    design = design_data(plan, data, cluster, rng, n_clusters, cluster_size, covariates, missing)
    drawn = Simulator(plan, design).replicated_data(theta, rng)
    for name in _placeholders(plan, 0):
        kept = ~np.isnan(design.column(name))
        if not np.isfinite(drawn.column(name)[kept]).all():
            raise SettingsError(f"the parameter values give non-finite values of {name!r}: check that every covariance "
                                "matrix they imply is positive definite (correlations between -1 and 1).")
    return data_frame(drawn.to_dataset(), cluster)
