"""Validate a DataFrame for a (multi)level model and group it by cluster.

`validate` checks that every variable the model uses is a finite, non-constant,
numeric column without missing values (except the modelled variables of the lowest
level, whose missing cells the likelihood integrates out), that the cluster column (if any) is
complete and defines at least two clusters that are not all singletons, and that
cluster-level variables are constant within each cluster.  Every problem raises
`DataError` with a message naming the cause and the fix; nothing is dropped or
imputed silently.  The result, `ClusteredData`, holds float64 column arrays with
the rows stably sorted by cluster (clusters in order of their first row in the
data), plus the per-row cluster index and cluster sizes used by the model stages.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import Error
from ..spec.arguments import check_names
from ..spec.plan import Plan
from ..spec.table import WITHIN, SpecificationError

_SHOW = 5  # row labels shown in messages
_LIST_COLUMNS = 20  # list all columns in messages when there are at most this many


class DataError(Error, ValueError):
    """Bad input data; the message names the cause and the fix."""


class DataWarning(UserWarning):
    """Data the model can use but that is likely to cause trouble; the message says what to do."""


SCALE_RATIO = 1000.0  # variances further apart than this (lavaan's threshold) get a warning


def warn_scales(data: ClusteredData, names: Sequence[str]) -> None:
    """A :class:`DataWarning` when the largest variance of the continuous variables ``names`` is
    more than :data:`SCALE_RATIO` times the smallest: the default priors assume comparable scales,
    and the sampler adapts worse."""
    variances = pd.Series({n: np.nanvar(data.values[n]) for n in names}).loc[lambda v: v > 0]
    if len(variances) < 2 or variances.max() <= SCALE_RATIO * variances.min():
        return
    big, small = variances.idxmax(), variances.idxmin()
    factor = 10 ** round(np.log10(np.sqrt(variances[big] / variances[small])))
    warnings.warn(f"the variables' variances differ by a factor of {variances[big] / variances[small]:,.0f} "
                  f"({big!r}: {variances[big]:.3g}, {small!r}: {variances[small]:.3g}); the default priors assume "
                  f"comparable scales and the sampler adapts worse. Rescale the variable in other units, e.g. "
                  f"data[{big!r}] / {factor:g}, whose estimates then read in those units, or pass rescale=True to "
                  "fit on standardised scales and report in the variables' own units.", DataWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class UpperLevel:
    """The clusters of a level above the lowest clusters: their ``column``, ``ids`` and, per cluster
    of the level below, the index of the cluster it belongs to (``parent``)."""

    column: str
    ids: np.ndarray
    parent: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Classification:
    """A classification of the rows crossed with the lowest clusters (neighbourhoods beside schools):
    its ``column``, its clusters' ``ids`` and, per (sorted) row, the index of its cluster (``index``)."""

    column: str
    ids: np.ndarray
    index: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class ClusteredData:
    """Validated data sorted by cluster (stable sort: original order within a cluster).

    Arrays are read-only.  For single-level data (`cluster` None) every row is its
    own cluster: `cluster_index` is 0..n-1, `sizes` are all 1, `cluster_ids` are
    the row labels. A cross-classified model's other classifications (``crossed``) are levels 2, 3, …
    beside the clusters, each indexed per row, none nested in another.
    """

    values: dict[str, np.ndarray]
    row_labels: np.ndarray
    cluster: str | None
    cluster_ids: np.ndarray
    cluster_index: np.ndarray
    sizes: np.ndarray
    uppers: tuple[UpperLevel, ...] = ()
    crossed: tuple[Classification, ...] = ()

    @property
    def upper(self) -> UpperLevel | None:
        """The clusters of the third level, if any."""
        return self.uppers[0] if self.uppers else None

    def level_index(self, rank: int) -> np.ndarray:
        """Per row, the index of its cluster at level ``rank`` (0 the rows, 1 the clusters, 2 … the
        upper levels, or the crossed classifications)."""
        if self.crossed and rank >= 2:
            return self.crossed[rank - 2].index
        index = np.arange(self.n_rows) if rank == 0 else self.cluster_index
        for upper in self.uppers[:max(rank - 1, 0)]:
            index = upper.parent[index]
        return index

    def level_values(self, names: Sequence[str], rank: int) -> np.ndarray:
        """Value (clusters of level ``rank``, len(names)) of variables constant within them: the first row of each."""
        index = self.level_index(rank)
        first = np.full(index.max() + 1, -1)
        first[index[::-1]] = np.arange(self.n_rows)[::-1]
        return self.matrix(names)[first]

    def n_units(self, rank: int) -> int:
        """The number of units of level ``rank`` (rows, clusters, upper or crossed clusters)."""
        if rank == 0:
            return self.n_rows
        if rank == 1:
            return self.n_clusters
        return (self.crossed or self.uppers)[rank - 2].n_clusters

    def level_ids(self, rank: int) -> np.ndarray:
        """The ids of the units of level ``rank`` ≥ 1."""
        return self.cluster_ids if rank == 1 else (self.crossed or self.uppers)[rank - 2].ids

    @property
    def n_levels(self) -> int:
        """The number of levels, the rows included (1 without clusters)."""
        return 1 if self.cluster is None else 2 + len(self.uppers) + len(self.crossed)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.row_labels)

    @property
    def n_clusters(self) -> int:
        """Number of clusters J (n_rows for single-level data)."""
        return len(self.sizes)

    def column(self, name: str) -> np.ndarray:
        """Float64 values of one variable, in sorted row order."""
        return self.values[name]

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """Float64 array (n_rows, len(names)) of the named variables."""
        out = np.empty((self.n_rows, len(names)))
        for j, name in enumerate(names):
            out[:, j] = self.values[name]
        return out

    @property
    def has_missing(self) -> bool:
        """Whether any variable has missing (NaN) cells."""
        return any(np.isnan(v).any() for v in self.values.values())

    def cluster_means(self, names: Sequence[str]) -> np.ndarray:
        """Per-cluster means (J, len(names)) of the observed cells of the named variables (NaN where
        a cluster has none)."""
        values = self.matrix(names)
        observed = ~np.isnan(values)
        sums = np.add.reduceat(np.where(observed, values, 0.0), self._starts(), axis=0)
        counts = np.add.reduceat(observed.astype(float), self._starts(), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts

    def to_dataset(self) -> xr.Dataset:
        """The validated variables over dimension ``row`` (sorted order), with each row's label and
        the ids of its clusters at each level (:meth:`from_dataset` reads it back)."""
        coords = {"row": np.arange(self.n_rows), "label": ("row", coordinate(self.row_labels)),
                  "cluster": ("row", coordinate(self.cluster_ids[self.cluster_index]))}
        for rank in range(2, self.n_levels):
            coords[unit_dim(rank)] = ("row", coordinate(self.level_ids(rank)[self.level_index(rank)]))
        attrs = {"crossed": 1} if self.crossed else {}
        return xr.Dataset({name: ("row", values) for name, values in self.values.items()}, coords=coords, attrs=attrs)

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset, cluster: str | list[str] | None) -> ClusteredData:
        """The data of a model back from :meth:`to_dataset` (rows sorted by cluster)."""
        codes, ids = pd.factorize(dataset["cluster"].values)
        values = {name: dataset[name].values for name in dataset.data_vars}
        if dataset.attrs.get("crossed"):
            crossed = tuple(Classification(column, np.asarray(uniques), found.astype(np.int64))
                            for rank, column in enumerate(cluster[1:], start=2)
                            for found, uniques in [pd.factorize(dataset[unit_dim(rank)].values)])
            return cls(values, dataset["label"].values, cluster[0], np.asarray(ids), codes.astype(np.int64),
                       np.bincount(codes).astype(np.int64), crossed=crossed)
        uppers, lower, rank = [], codes, 2
        while unit_dim(rank) in dataset.coords:
            upper_codes, upper_ids = pd.factorize(dataset[unit_dim(rank)].values)
            parent = np.zeros(lower.max() + 1, dtype=np.int64)
            parent[lower] = upper_codes
            uppers.append(UpperLevel(cluster[rank - 1], np.asarray(upper_ids), parent))
            lower, rank = upper_codes, rank + 1
        return cls(values, dataset["label"].values, cluster[0] if uppers else cluster, np.asarray(ids),
                   codes.astype(np.int64), np.bincount(codes).astype(np.int64), tuple(uppers))

    def top_index(self) -> np.ndarray:
        """Per row, the index of its cluster at the highest level (its own index without clusters)."""
        return self.level_index(len(self.uppers) + 1) if self.cluster is not None else np.arange(self.n_rows)

    def top_ids(self) -> np.ndarray:
        """The ids of the highest level's clusters (the row labels without clusters), as coordinates."""
        if self.cluster is None:
            return coordinate(self.row_labels)
        return coordinate(self.uppers[-1].ids if self.uppers else self.cluster_ids)

    def part(self, rows: np.ndarray) -> ClusteredData:
        """The data of the rows where ``rows`` (a boolean mask) is true: whole clusters, re-indexed."""
        higher = [*self.uppers, *self.crossed]
        columns = [self.cluster, *(level.column for level in higher)] if higher else self.cluster
        return ClusteredData.from_dataset(self.to_dataset().isel(row=np.flatnonzero(rows)), columns)

    def cluster_values(self, names: Sequence[str]) -> np.ndarray:
        """Value (J, len(names)) of cluster-level variables: the first row of each cluster."""
        return self.matrix(names)[self._starts()]

    def _starts(self) -> np.ndarray:
        """Index of the first (sorted) row of each cluster."""
        return np.concatenate(([0], np.cumsum(self.sizes)[:-1]))


def unit_dim(rank: int) -> str:
    """The dimension name of the units of level ``rank``: row, cluster, upper, upper_4, upper_5, …"""
    return ("row", "cluster", "upper")[rank] if rank < 3 else f"upper_{rank + 1}"


def coordinate(values: np.ndarray) -> np.ndarray:
    """Ids as coordinate values: numbers as they are, anything else as strings."""
    return values if values.dtype.kind in "iuf" else values.astype(str)


def cluster_ids(data: ClusteredData) -> np.ndarray:
    """The data's cluster ids as coordinate values (integers, or strings)."""
    return coordinate(data.cluster_ids)


def _suggest(name: str, data: pd.DataFrame) -> str:
    """Close column names (also case-insensitive) and, if few, all columns."""
    columns = [str(c) for c in data.columns]
    lower = {c.lower(): c for c in columns}
    close = difflib.get_close_matches(name, columns) + [
        lower[c] for c in difflib.get_close_matches(name.lower(), list(lower))
    ]
    text = f" Did you mean {', '.join(map(repr, dict.fromkeys(close)))}?" if close else ""
    if len(columns) <= _LIST_COLUMNS:
        text += f" Available columns: {', '.join(map(repr, columns))}."
    return text


def _show(labels: np.ndarray, which: np.ndarray) -> str:
    """The first few of labels[which] (a mask or index array), as Python reprs."""
    hit = labels[which]
    more = ", ..." if len(hit) > _SHOW else ""
    return ", ".join(repr(x) for x in hit[:_SHOW].tolist()) + more


def _dtype_fix(name: str, series: pd.Series) -> str | None:
    """Why a column cannot be used as a numeric variable and how to fix it; None if it can."""
    dtype = series.dtype
    where = f"column {name!r} has dtype {dtype}"
    if isinstance(dtype, pd.CategoricalDtype):
        return f"{where}: encode it, e.g. pd.get_dummies(data[{name!r}]) or data[{name!r}].cat.codes"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return (f"{where}: convert it to a number, e.g. days since start: "
                f"(data[{name!r}] - data[{name!r}].min()).dt.days")
    if pd.api.types.is_timedelta64_dtype(dtype):
        return f"{where}: convert it to a number, e.g. data[{name!r}].dt.total_seconds()"
    if pd.api.types.is_complex_dtype(dtype):
        return f"{where}: use its real part, absolute value or angle as separate real variables"
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return None
    return f"{where}: {_text_fix(name, series)}"


def _text_fix(name: str, series: pd.Series) -> str:
    """Advice for a text column: numbers stored as text convert with pd.to_numeric; a few non-numeric
    values among numbers are missing-value codes (".", "NA ", "-99x"), read as NaN with na_values=;
    anything else holds categories."""
    given = series.dropna()
    text = pd.Series(given.to_numpy(), dtype=object)
    numbers = pd.to_numeric(text.where(~text.map(lambda v: isinstance(v, bool))), errors="coerce")
    codes = list(dict.fromkeys(text[numbers.isna()]))
    if not codes:
        return f"it holds numbers stored as text; convert with pd.to_numeric(data[{name!r}])"
    found = ", ".join(map(repr, codes[:_SHOW])) + (", ..." if len(codes) > _SHOW else "")
    if numbers.notna().any() and len(codes) <= _SHOW:
        return (f"its non-numeric values {found} look like missing-value codes: read the file with "
                f"pd.read_csv(..., na_values={codes!r}), or convert with "
                f"pd.to_numeric(data[{name!r}].replace({codes!r}, np.nan))")
    return (f"it holds text such as {found}; if these are categories, encode them with "
            f"pd.get_dummies(data[{name!r}]) or data[{name!r}].astype('category').cat.codes")


def _check_columns(data: pd.DataFrame, used: list[str], clusters: list[str], role: str = "cluster column") -> None:
    """Raise if a variable or a cluster column (a column of that ``role``) is missing or duplicated,
    or a cluster column is also a model variable."""
    for name in set(used) & set(clusters):
        raise DataError(f"{name!r} is the cluster column and also a variable of the model: a cluster id is a label, "
                        "not a measurement. Use another column in the model (e.g. a cluster-level covariate).")
    for name, what in [(n, "variable") for n in used] + [(c, role) for c in clusters]:
        count = int((data.columns == name).sum())
        if count == 0:
            raise DataError(f"The {what} {name!r} is not a column of the data.{_suggest(name, data)}"
                            f" Fix the name in the model or rename the column.")
        if count > 1:
            raise DataError(f"The column {name!r} appears {count} times in the data; "
                            f"rename or drop the duplicates.")


def _to_float(data: pd.DataFrame, used: list[str], missing_ok: Sequence[str]) -> dict[str, np.ndarray]:
    """Check dtypes and values of the variables and return them as float64 arrays (original order);
    only the variables in ``missing_ok`` may have missing cells, and none may be missing entirely."""
    problems = [fix for n in used if (fix := _dtype_fix(n, data[n])) is not None]
    if problems:
        raise DataError("Model variables must be numeric (or boolean): " + "; ".join(problems) + ".")
    values = {n: data[n].to_numpy(dtype=np.float64, na_value=np.nan) for n in used}
    labels = data.index.to_numpy()
    empty = [n for n, v in values.items() if np.isnan(v).all()]
    if empty:
        raise DataError(f"Variable(s) {', '.join(map(repr, empty))} have no observed values; "
                        "remove them from the model or check the column.")
    incomplete = [n for n in used if n not in missing_ok and np.isnan(values[n]).any()]
    if incomplete:
        missing = [f"{n!r}: {(m := np.isnan(values[n])).sum()} missing (rows {_show(labels, m)})" for n in incomplete]
        raise DataError(
            "Missing values in " + "; ".join(missing) + ". Missing cells are integrated out (missing at random) "
            "only in the modelled variables of the lowest level; covariates (variables only on the right of "
            "'~', which are conditioned on) and cluster-level variables must be complete. Model a covariate "
            "to integrate its missing values out, by giving it a variance in each level block where it "
            f"appears (e.g. '{incomplete[0]} ~~ {incomplete[0]}'), or drop those rows: "
            f"data.dropna(subset={incomplete!r}).")
    infinite = [f"{n!r} (rows {_show(labels, m)})" for n, v in values.items() if (m := np.isinf(v)).any()]
    if infinite:
        raise DataError("Infinite values in model variables: " + "; ".join(infinite)
                        + ". Replace or drop those rows (e.g. check for division by zero or log(0)).")
    with np.errstate(over="ignore", invalid="ignore"):
        huge = [n for n, v in values.items() if not np.isfinite(np.nanvar(v))]
    if huge:
        scale = 10.0 ** np.floor(np.log10(np.nanmax(np.abs(values[huge[0]]))))
        raise DataError(f"The values of {', '.join(map(repr, huge))} are so large that their variance overflows; "
                        f"divide by a power of ten, e.g. data[{huge[0]!r}] / {scale:g}.")
    constant = [n for n, v in values.items() if np.nanmax(v) == np.nanmin(v)]
    if constant:
        raise DataError(f"Constant variable(s) {', '.join(map(repr, constant))}: a constant column carries "
                        "no information (zero variance); remove it from the model.")
    return values


def _auxiliary(data: pd.DataFrame, auxiliary: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The columns response families read, as float64 arrays (original order); raise if one is
    not a column or not numeric."""
    for name, what in auxiliary.items():
        if name not in data.columns:
            raise DataError(f"{what} is not a column of the data.{_suggest(name, data)} "
                            "Fix the name in family= or add the column.")
        if (fix := _dtype_fix(name, data[name])) is not None:
            raise DataError(f"{what} must be numeric: {fix}.")
    return {name: data[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in auxiliary}


def _check_between(grouped: ClusteredData, between: Sequence[str], rank: int) -> None:
    """Raise if a cluster-level variable varies within a cluster of level ``rank`` (1 the lowest
    clusters, 2 … the upper levels), up to rounding (rtol 1e-9)."""
    index = grouped.level_index(rank)
    ids = grouped.level_ids(rank)
    first_row = np.unique(index, return_index=True)[1]
    column = grouped.cluster if rank == 1 else (grouped.crossed or grouped.uppers)[rank - 2].column
    for name in between:
        v = grouped.column(name)
        first = v[first_row][index]
        differ = ~np.isclose(v, first, rtol=1e-9, atol=0.0)
        if differ.any():
            i = int(np.argmax(differ))
            raise DataError(
                f"Cluster-level variable {name!r} varies within {len(np.unique(index[differ]))} "
                f"cluster(s) of {column!r}, e.g. cluster {_show(ids, index[[i]])} has values "
                f"{first[i]:g} and {v[i]:g}. "
                "Aggregate it to the cluster level (e.g. the cluster mean) or model it at the within level.")


def _upper_level(data: pd.DataFrame, column: str, lower: str, order: np.ndarray, index: np.ndarray) -> UpperLevel:
    """The clusters of the level above ``lower``; raise unless each lower cluster lies in one of them."""
    codes, uniques = pd.factorize(data[column])
    codes = codes[order]
    parent = np.full(index.max() + 1, -1)
    parent[index] = codes
    crossed = index[codes != parent[index]]
    if len(crossed):
        example = data[lower].to_numpy()[order][index == crossed[0]][0]
        example = example.item() if isinstance(example, np.generic) else example  # 0, not np.int64(0)
        schools = sorted(set(codes[index == crossed[0]].tolist()))
        reversed_order = bool((data.groupby(column, sort=False)[lower].nunique() == 1).all())
        fix = (f"The columns seem to be listed highest level first: list them lowest level first, e.g. "
               f"cluster=[{column!r}, {lower!r}, ...]." if reversed_order else
               f"If the two classifications are crossed (each {lower} meets several {column} clusters and each "
               f"{column} several {lower} clusters, as pupils in schools and in neighbourhoods), pass crossed=True "
               f"for a cross-classified model. If the ids restart in each {column}, make them unique, e.g. "
               f"data[{lower!r}] = data[{column!r}].astype(str) + '/' + data[{lower!r}].astype(str).")
        raise DataError(
            f"The clusters of {lower!r} are not nested in {column!r}: {lower} {example!r} appears in "
            f"{len(schools)} different {column} clusters ({_show(np.asarray(uniques), np.array(schools))}). " + fix)
    if len(uniques) < 2:
        raise DataError(f"The cluster column {column!r} has {len(uniques)} distinct cluster(s); each level of "
                        "a model needs many clusters (at least 2 to run, 30+ advisable). Check the column or drop "
                        "the level.")
    if np.bincount(parent).max() == 1:
        raise DataError(f"Every {column} cluster holds a single {lower} cluster, so the two levels cannot be "
                        "separated; check the cluster columns or drop one level.")
    return UpperLevel(column, np.asarray(uniques), parent)


def _classification(data: pd.DataFrame, column: str, order: np.ndarray) -> Classification:
    """A classification crossed with the clusters; raise unless it has two clusters or more, not
    every one of a single row."""
    codes, uniques = pd.factorize(data[column])
    if len(uniques) < 2:
        raise DataError(f"The cluster column {column!r} has {len(uniques)} distinct cluster(s); each classification "
                        "of a cross-classified model needs many clusters (at least 2 to run, 30+ advisable). Check "
                        "the column or drop the classification.")
    if np.bincount(codes).max() == 1:
        raise DataError(f"Every cluster of {column!r} holds a single row, so its effects cannot be separated from "
                        "the residuals; check that the cluster column is the right one or drop the classification.")
    return Classification(column, np.asarray(uniques), codes[order].astype(np.int64))


def validate(data: pd.DataFrame, variables: Sequence[str], cluster: str | Sequence[str] | None = None,
             between: Sequence[str] = (), missing_ok: Sequence[str] = (),
             upper_levels: Sequence[Sequence[str]] = (), auxiliary: Mapping[str, str] | None = None,
             crossed: bool = False) -> ClusteredData:
    """Check `data` for a model using `variables` and group it by `cluster` (a column, or the columns
    of the clusters of each level above the rows, lowest first, which must nest; with ``crossed``,
    the columns of crossed classifications, the rows grouped by the first).

    `between` must be constant within the (lowest) clusters, `upper_levels[k]` within the
    clusters of the (k + 3)-th level (of the (k + 2)-th classification when crossed); `missing_ok`
    may have missing cells. `auxiliary` names the
    columns response families read (a binomial's trials) with what each is: they must be numeric
    and are carried along; their family checks their values.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"The data must be a pandas DataFrame, got {type(data).__name__}; "
                        "pass a DataFrame, e.g. pd.DataFrame(data).")
    if len(data) == 0:
        raise DataError("The data has no rows; pass a DataFrame with observations.")
    clusters = [] if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
    cluster = clusters[0] if clusters else None
    upper_levels = [list(names) for names in upper_levels]
    used = list(dict.fromkeys([*variables, *between, *(v for names in upper_levels for v in names)]))
    _check_columns(data, used, clusters)
    for column in clusters:
        if (na := data[column].isna().to_numpy()).any():
            raise DataError(f"The cluster column {column!r} has {na.sum()} missing value(s) "
                            f"(rows {_show(data.index.to_numpy(), na)}); "
                            "drop those rows or assign them a cluster.")
    values = _to_float(data, used, missing_ok) | _auxiliary(data, {k: v for k, v in (auxiliary or {}).items()
                                                                   if k not in used})
    n = len(data)
    if cluster is None:
        order = np.arange(n)
        index = np.arange(n, dtype=np.int64)
        ids = data.index.to_numpy(copy=True)
        sizes = np.ones(n, dtype=np.int64)
    else:
        codes, uniques = pd.factorize(data[cluster])  # codes in order of first appearance
        order = np.argsort(codes, kind="stable")
        index = codes[order].astype(np.int64)
        ids = np.asarray(uniques)
        sizes = np.bincount(codes, minlength=len(ids)).astype(np.int64)
        if len(ids) < 2:
            raise DataError(f"The cluster column {cluster!r} has {len(ids)} distinct cluster(s); a two-level "
                            "model needs many clusters (at least 2 to run, 30+ advisable). Check the cluster "
                            "column or fit a single-level model.")
        if sizes.max() == 1:
            raise DataError(f"Every cluster in {cluster!r} has a single member, so within and between "
                            "variation cannot be separated; check that the cluster column is the right one.")
    if crossed and len(clusters) < 2:
        raise DataError("crossed=True needs two cluster columns or more, e.g. cluster=['school', 'neighbourhood'].")
    uppers, row_index = [], index
    for lower, column in zip(clusters, clusters[1:]):
        if crossed:
            break
        uppers.append(_upper_level(data, column, lower, order, row_index))
        row_index = uppers[-1].parent[row_index]
    classifications = tuple(_classification(data, column, order) for column in clusters[1:]) if crossed else ()
    result = ClusteredData({k: v[order] for k, v in values.items()}, data.index.to_numpy()[order],
                           cluster, ids, index, sizes, tuple(uppers), classifications)
    for arr in [*result.values.values(), result.row_labels, ids, index, sizes, *(c.index for c in classifications)]:
        arr.setflags(write=False)
    _check_between(result, [*between, *(() if crossed else (v for names in upper_levels for v in names))], 1)
    for rank, names in enumerate(upper_levels, start=2):
        _check_between(result, names, rank)
    return result


def recode(data: ClusteredData, coders: Mapping[str, Callable[[np.ndarray, str], np.ndarray]]) -> ClusteredData:
    """``data`` with each named variable replaced by ``coder(values, name)`` (e.g. a response family's
    codes: 0/1, or 0..K−1 for ordinal categories), read-only like the rest."""
    if not coders:
        return data
    values = dict(data.values)
    for name, coder in coders.items():
        values[name] = coder(values[name].copy(), name)
        values[name].setflags(write=False)
    return dataclasses.replace(data, values=values)


def group_mean_center(data: pd.DataFrame, columns: Sequence[str], cluster: str) -> pd.DataFrame:
    """Observed group-mean centering, for comparison with the latent decomposition.

    Adds ``<x>_cm``, the cluster mean x̄_j, and ``<x>_cwc``, the deviation x_ij − x̄_j, for each
    column; use ``x_cwc`` in the within block and ``x_cm`` in the between block. The observed
    cluster mean measures the latent one with error, which biases between-level and contextual
    effects when clusters are small or the ICC of x is low (Lüdtke et al., 2008).
    """
    check_names("columns", columns, "columns=['x']")
    validate(data, list(columns), cluster)
    means = data.groupby(cluster, sort=False)[list(columns)].transform("mean")
    centred = data.copy()
    for column in columns:
        centred[f"{column}_cm"] = means[column]
        centred[f"{column}_cwc"] = data[column] - means[column]
    return centred


def data_frame(dataset: xr.Dataset, cluster: str | list[str] | None) -> pd.DataFrame:
    """Data over ``row`` (:meth:`ClusteredData.to_dataset`, or a fit's observed data) as a
    DataFrame with the cluster column(s), indexed by the rows' labels where the data carry them."""
    index = dataset["label"].values if "label" in dataset.coords else None
    frame = pd.DataFrame({name: dataset[name].values for name in dataset.data_vars}, index=index)
    for rank, column in enumerate([cluster] if isinstance(cluster, str) else list(cluster or []), start=1):
        frame[column] = dataset[unit_dim(rank)].values
    return frame


def check_within_variation(plan: Plan, data: ClusteredData) -> None:
    """A within-level variable must vary inside clusters, or Σ_W would be singular."""
    if not plan.two_level:
        return
    roles = plan.levels[WITHIN].roles
    names = [*roles.observed, *roles.covariates]
    deviations = data.matrix(names) - data.cluster_means(names)[data.cluster_index]
    for name, spread in zip(names, np.nanmax(np.abs(deviations), axis=0)):
        if spread <= 1e-12 * max(1.0, np.abs(data.column(name)).max()):
            raise SpecificationError(
                f"{name!r} is used at the within level but does not vary inside any cluster "
                "(it is a cluster-level variable); use it in the 'level: between' block only."
            )


def group_values(data: pd.DataFrame, group: str, clusters: Sequence[str] = ()) -> list:
    """The groups of a multiple-group model, in order of first appearance (lavaan's order): the
    values of column ``group``, which must be complete, hold at least two groups, and not split a
    cluster (clusters are nested in groups)."""
    _check_columns(data, [], [group], role="group column")
    values = data[group]
    if values.isna().any():
        raise DataError(f"the group column {group!r} has {int(values.isna().sum())} missing value(s) "
                        f"(rows {_show(data.index.to_numpy(), values.isna().to_numpy())}); drop those rows or give "
                        "them a group.")
    groups = list(dict.fromkeys(values))
    if len(groups) < 2:
        raise DataError(f"the group column {group!r} holds one group ({groups[0]!r}); a multiple-group model needs "
                        "at least two. Leave group= out for a single-group model.")
    for cluster in clusters:
        split = data.groupby(cluster)[group].nunique()
        if (split > 1).any():
            raise DataError(f"cluster {split.index[split > 1][0]!r} of {cluster!r} has rows in more than one group of "
                            f"{group!r}; clusters must be nested in groups (give each group's clusters their own ids).")
    return groups


def check_group_sizes(data: pd.DataFrame, group: str, observed: Sequence[str], clusters: Sequence[str] = ()) -> None:
    """Each group has more rows than the model has observed variables (else its own covariance
    matrix, and the parameters it has on its own, rest on its prior alone) and, with clusters, at
    least two clusters of the highest level."""
    rows = data.groupby(group, sort=False).size()
    few = rows[rows <= len(observed)]
    if len(few):
        raise DataError(f"group {few.index[0]!r} of {group!r} has {int(few.iloc[0])} row(s), no more than the model's "
                        f"{len(observed)} observed variables: too few to estimate its own parameters. Merge it with "
                        "another group or drop its rows.")
    if clusters:
        counts = data.groupby(group, sort=False)[clusters[-1]].nunique()
        single = counts[counts < 2]
        if len(single):
            raise DataError(f"group {single.index[0]!r} of {group!r} has one cluster of {clusters[-1]!r}; its "
                            "cluster-level parameters need at least two. Merge it with another group or drop its rows.")
