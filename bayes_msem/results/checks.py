"""Posterior predictive checks for the models the chi-square does not cover: categorical items
(bivariate tables, as Mplus's TECH10) and random slopes, loadings and variances (cluster-level
moments). Each statistic T is computed on the data y and on data y_rep,s replicated
(:mod:`..simulation.simulator`) from each of S posterior draws θ_s.

Categorical items (bernoulli, ordinal; codes 0..K−1): per item pair (a, b) the K_a × K_b table
n(y) of the rows observed on both. With E_s the expected table at θ_s (the mean table of
EXPECTED_SETS further data sets replicated from θ_s, a Monte Carlo estimate of N P(cell | θ_s)),

    X²_ab(y, θ_s) = Σ_cells (n(y) − E_s)² / E_s                   (cells with E_s > 0)
    r(y, θ_s)     = (n(y) − E_s) / √(E_s (1 − E_s / N))           (standardized residual of a cell)
    LOR_ab(y)     = log[(n₁₁ + ½)(n₀₀ + ½) / ((n₁₀ + ½)(n₀₁ + ½))]   (two binary items)

and over the pairs the sum Σ X²_ab and the largest |r|. X² and r are realized discrepancies
(Gelman, Meng & Stern 1996): y and y_rep,s are both compared with the same E_s, draw by draw, as
Mplus's TECH10 compares observed and model-estimated bivariate frequencies. Expected counts
averaged over the posterior instead would sit closer to the data, which chose θ, than to any
replication, and push every PPP to 1.

Two levels (random slopes, loadings and variances, and the fixed ones they would replace): per
cluster j of the lowest clustering the OLS slope of y on x (each within-level regression of an
observed y on an observed x, random ``s | y ~ x`` or fixed; clusters with 3+ complete rows and
varying x), the within-cluster covariance of y with the mean of its factor's other indicators (each
random loading), and for every modelled observed variable the cluster mean (1+ rows) and the
within-cluster SD (2+ rows); the statistic is each one's variance over clusters (ddof 1).

PPP: for the discrepancies (X², Σ X², max |r|, large = misfit) P(T(y_rep,s, θ_s) ≥ T(y, θ_s)); for the signed
statistics (LOR, variances over clusters) the two-sided 2 min(P(T(y_rep) ≥ T(y)), P(T(y_rep) ≤ T(y)))
capped at 1. Near 0 signals misfit for every statistic; like every PPP it is conservative (the data
choose θ), not a test with a known level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..data.clustered import ClusteredData
from ..simulation.simulator import Simulator
from ..spec.plan import Plan
from ..spec.table import family_name
from .predictive import modelled_observed, moment_discrepancy_ppp, moments

CATEGORICAL = ("bernoulli", "ordinal")
EXPECTED_SETS = 20  # data sets per draw whose mean table estimates E_s
PAIR_X2, PAIR_LOR, SUM_X2, MAX_RESIDUAL = "pair X²", "log odds ratio", "sum of pair X²", "max |residual|"
SLOPE_VARIANCE, LOADING_VARIANCE = "var(cluster slope)", "var(cluster covariance)"
MEAN_VARIANCE, SD_VARIANCE = "var(cluster mean)", "var(cluster SD)"
SIGNED = {PAIR_LOR, SLOPE_VARIANCE, LOADING_VARIANCE, MEAN_VARIANCE, SD_VARIANCE}


@dataclass(frozen=True)
class Statistic:
    """One checked statistic: its ``discrepancy`` kind, the ``variables`` it reads, its value on the
    data (one value, or one per draw for the realized discrepancies) and on each replicated data set."""

    discrepancy: str
    variables: str
    observed: float | np.ndarray
    replicated: np.ndarray

    @property
    def ppp(self) -> float:
        """Upper tail P(T_rep ≥ T) for discrepancies, two-sided for signed statistics (module docstring),
        over the replications where both are defined (NaN where none is, e.g. no cluster has a slope)."""
        observed = np.broadcast_to(self.observed, self.replicated.shape)
        defined = np.isfinite(observed) & np.isfinite(self.replicated)
        if not defined.any():
            return float("nan")
        observed, replicated = observed[defined], self.replicated[defined]
        upper = float(np.mean(replicated >= observed))
        if self.discrepancy not in SIGNED:
            return upper
        return min(1.0, 2 * min(upper, float(np.mean(replicated <= observed))))


@dataclass(frozen=True)
class PredictiveChecks:
    """The checked statistics, and the PPP of the moment discrepancy (:mod:`.predictive`) on the same
    replications."""

    statistics: list[Statistic]
    moment_ppp: float
    draws: int

    def table(self) -> pd.DataFrame:
        """A row per statistic: discrepancy, variables, observed (the mean over the draws for the
        realized discrepancies), the replications' mean and SD, ppp."""
        return pd.DataFrame([{"discrepancy": s.discrepancy, "variables": s.variables,
                              "observed": float(np.mean(s.observed)),
                              "replicated": float(np.mean(s.replicated)), "sd": float(np.std(s.replicated)),
                              "ppp": s.ppp} for s in self.statistics])

    def summary(self) -> dict[str, float]:
        """The PPPs of :meth:`Fit.fit_measures` for these models: ``ppp`` (the moment discrepancy),
        ``ppp <summary> [variables]`` for the pair summaries and each cluster-level statistic, and
        ``pairs misfitting``, the number of item pairs whose X² has PPP < 0.05."""
        out: dict[str, float] = {"ppp": self.moment_ppp, "draws": float(self.draws)}
        pairs = [s for s in self.statistics if s.discrepancy == PAIR_X2]
        if pairs:
            out["pairs"] = float(len(pairs))
            out["pairs misfitting"] = float(sum(s.ppp < 0.05 for s in pairs))
        for s in self.statistics:
            if s.discrepancy in (SUM_X2, MAX_RESIDUAL):
                out[f"ppp {s.discrepancy}"] = s.ppp
            elif s.discrepancy not in (PAIR_X2, PAIR_LOR):
                out[f"ppp {s.discrepancy} {s.variables}"] = s.ppp
        return out


def categorical_items(plan: Plan) -> list[str]:
    """The lowest level's bernoulli and ordinal items, in the model's order."""
    lowest = next(iter(plan.levels.values())).roles.observed
    return [v for v in lowest if v in plan.families and family_name(plan.families[v]) in CATEGORICAL]


def applicable(plan: Plan) -> bool:
    """Whether the model has statistics to check here: categorical items or two levels."""
    return bool(categorical_items(plan)) or len(plan.levels) > 1


def pair_counts(a: np.ndarray, b: np.ndarray, categories: tuple[int, int]) -> np.ndarray:
    """The K_a × K_b table (flattened row by row) of codes ``a`` and ``b`` over the rows observed on both."""
    both = ~(np.isnan(a) | np.isnan(b))
    cells = a[both].astype(int) * categories[1] + b[both].astype(int)
    return np.bincount(cells, minlength=categories[0] * categories[1]).astype(float)


def realized_x2(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Σ (n − E_s)² / E_s over the last axis, draw by draw (``expected``: draws, cells; ``counts``
    broadcast against it), over the cells with E_s > 0."""
    keep = expected > 0
    return np.where(keep, (counts - expected) ** 2 / np.where(keep, expected, 1.0), 0.0).sum(-1)


def standardized_residuals(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """(n − E) / √(E (1 − E/N)) per cell, N the table's total; 0 where E is 0 or N."""
    total = expected.sum(-1, keepdims=True)
    variance = expected * (1 - expected / np.maximum(total, 1e-300))
    keep = variance > 0
    return np.where(keep, (counts - expected) / np.sqrt(np.where(keep, variance, 1.0)), 0.0)


def log_odds_ratio(counts: np.ndarray) -> np.ndarray:
    """log[(n₁₁ + ½)(n₀₀ + ½) / ((n₁₀ + ½)(n₀₁ + ½))] of 2 × 2 tables flattened on the last axis
    as (n₀₀, n₀₁, n₁₀, n₁₁)."""
    n = counts + 0.5
    return np.log(n[..., 3] * n[..., 0] / (n[..., 2] * n[..., 1]))


def cluster_slopes(y: np.ndarray, x: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """b_j = Σ_i (x_ij − x̄_j)(y_ij − ȳ_j) / Σ_i (x_ij − x̄_j)² of each cluster with 3+ complete rows
    and varying x."""
    return _cluster_products(y, x, cluster, slope=True)


def cluster_covariances(y: np.ndarray, x: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Σ_i (x_ij − x̄_j)(y_ij − ȳ_j) / (n_j − 1) of each cluster with 3+ complete rows."""
    return _cluster_products(y, x, cluster, slope=False)


def _cluster_products(y: np.ndarray, x: np.ndarray, cluster: np.ndarray, slope: bool) -> np.ndarray:
    both = ~(np.isnan(y) | np.isnan(x))
    y, x, cluster = y[both], x[both], cluster[both]
    clusters = int(cluster.max()) + 1 if len(cluster) else 0
    n = np.bincount(cluster, minlength=clusters)
    safe = np.maximum(n, 1)
    dx = x - (np.bincount(cluster, x, clusters) / safe)[cluster]
    dy = y - (np.bincount(cluster, y, clusters) / safe)[cluster]
    sxy, sxx = np.bincount(cluster, dx * dy, clusters), np.bincount(cluster, dx * dx, clusters)
    if slope:
        keep = (n >= 3) & (sxx > 1e-12 * np.maximum(1.0, np.bincount(cluster, x * x, clusters)))
        return sxy[keep] / sxx[keep]
    keep = n >= 3
    return sxy[keep] / (n[keep] - 1)


def cluster_means(y: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """ȳ_j of each cluster with an observed value."""
    seen = ~np.isnan(y)
    n = np.bincount(cluster[seen], minlength=cluster.max() + 1)
    return (np.bincount(cluster[seen], y[seen], cluster.max() + 1) / np.maximum(n, 1))[n > 0]


def cluster_sds(y: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """The SD (ddof 1) of y within each cluster with 2+ observed values."""
    seen = ~np.isnan(y)
    y, cluster = y[seen], cluster[seen]
    clusters = int(cluster.max()) + 1 if len(cluster) else 0
    n = np.bincount(cluster, minlength=clusters)
    deviations = y - (np.bincount(cluster, y, clusters) / np.maximum(n, 1))[cluster]
    keep = n >= 2
    return np.sqrt(np.bincount(cluster, deviations**2, clusters)[keep] / (n[keep] - 1))


def _variance(values: np.ndarray) -> float:
    return float(np.var(values, ddof=1)) if len(values) > 1 else np.nan


def cluster_statistics(plan: Plan) -> list[tuple[str, str, Callable[[ClusteredData], float]]]:
    """(discrepancy, variables, statistic of a data set) of each cluster-level moment of a two-level
    model: a slope variance per regression of a lowest-level observed variable on an observed one
    (fixed or random: a fixed slope that varies shows here), a covariance variance per random
    loading, and the variances of the cluster means and SDs of each modelled lowest-level observed
    variable."""
    lowest_name, lowest = next(iter(plan.levels.items()))
    observed, table = list(lowest.roles.observed), plan.table
    found: list[tuple[str, str, Callable[[ClusteredData], float]]] = []
    regressions = table[(table["op"] == "~") & (table["level"] == lowest_name)]
    for y, x in dict.fromkeys(zip(regressions["lhs"], regressions["rhs"])):
        if y in observed and x in observed + list(lowest.roles.covariates):
            found.append((SLOPE_VARIANCE, f"{y} ~ {x}", lambda d, y=y, x=x: _variance(
                cluster_slopes(d.column(y), d.column(x), d.cluster_index))))
    for r in plan.random:
        if r.kind != "loading" or r.rhs not in observed:
            continue
        others = [v for v in table.loc[(table["op"] == "=~") & (table["lhs"] == r.lhs), "rhs"].unique()
                  if v in observed and v != r.rhs]
        if others:
            found.append((LOADING_VARIANCE, f"{r.rhs}, mean({', '.join(others)})",
                          lambda d, y=r.rhs, rest=tuple(others): _variance(cluster_covariances(
                              d.column(y), d.matrix(list(rest)).mean(1), d.cluster_index))))
    for v in observed:
        found.append((MEAN_VARIANCE, v, lambda d, y=v: _variance(cluster_means(d.column(y), d.cluster_index))))
        found.append((SD_VARIANCE, v, lambda d, y=v: _variance(cluster_sds(d.column(y), d.cluster_index))))
    return found


def predictive_checks(simulator: Simulator, theta: np.ndarray, seed: int | None) -> PredictiveChecks:
    """The statistics of the module docstring on the data and on data replicated from each draw of
    ``theta`` (draws, parameters); the replications are those of :func:`.predictive.moment_ppp` with
    the same ``seed``, so its PPP comes with them. With item pairs, E_s comes from EXPECTED_SETS
    further data sets per draw, drawn from a stream of their own."""
    rng = np.random.default_rng(seed)
    extra = rng.spawn(1)[0]  # leaves rng's stream, hence the moment PPP, as moment_ppp draws it
    plan, data = simulator.plan, simulator.data
    items = categorical_items(plan)
    categories = {v: int(np.nanmax(data.column(v))) + 1 for v in items}
    pairs = list(combinations(items, 2))
    by_cluster = cluster_statistics(plan) if len(plan.levels) > 1 else []
    names = modelled_observed(plan)
    two_level = len(plan.levels) > 1

    def tables(d: ClusteredData) -> np.ndarray:
        return np.concatenate([pair_counts(d.column(a), d.column(b), (categories[a], categories[b])) for a, b in pairs]
                              ) if pairs else np.zeros(0)

    def statistics(d: ClusteredData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tables(d), np.array([f(d) for _, _, f in by_cluster]), moments(d, names, two_level)

    observed_tables, observed_cluster, observed_moments = statistics(data)
    replicated = [statistics(simulator.replicated_data(t, rng)) for t in theta]
    found: list[Statistic] = []
    if pairs:
        expected = np.stack([np.mean([tables(simulator.replicated_data(t, extra)) for _ in range(EXPECTED_SETS)], 0)
                             for t in theta])
        sizes = [categories[a] * categories[b] for a, b in pairs]
        found = _pair_statistics(pairs, observed_tables, np.stack([r[0] for r in replicated]), expected, sizes)
    cluster_replicated = np.stack([r[1] for r in replicated]) if by_cluster else None
    found += [Statistic(kind, variables, float(observed_cluster[k]), cluster_replicated[:, k])
              for k, (kind, variables, _) in enumerate(by_cluster)]
    moment = moment_discrepancy_ppp(observed_moments, np.stack([r[2] for r in replicated]))
    return PredictiveChecks(found, moment, len(theta))


def _pair_statistics(pairs: list[tuple[str, str]], observed: np.ndarray, replicated: np.ndarray, expected: np.ndarray,
                     sizes: list[int]) -> list[Statistic]:
    """X² per pair, LOR per binary pair, the sum of X² and the largest |standardized residual|, from the
    pairs' tables laid end to end: ``observed`` (cells), ``replicated`` and ``expected`` (draws, cells)."""
    found = []
    total = np.zeros((2, len(expected)))
    largest = np.zeros((2, len(expected)))
    for (a, b), end, size in zip(pairs, np.cumsum(sizes), sizes):
        cells = slice(end - size, end)
        counts = np.stack([np.broadcast_to(observed[cells], replicated[:, cells].shape), replicated[:, cells]])
        x2 = realized_x2(counts, expected[:, cells])
        found.append(Statistic(PAIR_X2, f"{a}, {b}", x2[0], x2[1]))
        total += x2
        largest = np.maximum(largest, np.abs(standardized_residuals(counts, expected[:, cells])).max(-1))
        if size == 4:
            found.append(Statistic(PAIR_LOR, f"{a}, {b}", float(log_odds_ratio(observed[cells])),
                                   log_odds_ratio(replicated[:, cells])))
    everyone = ", ".join(dict.fromkeys(v for pair in pairs for v in pair))
    return found + [Statistic(SUM_X2, everyone, total[0], total[1]), Statistic(MAX_RESIDUAL, everyone, *largest)]
