"""Tests for bayes_msem.templates and the model templates in bayes_msem/templates.

Each template has a simulator here that draws data from its design with known parameter
values (:data:`SIMULATORS`). The fast tests check that every template loads, parses and
plans with its data; the slow ones (``-m slow``, 30-110 s of nutpie compilation each)
fit every template to its data and compare the posterior with the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mediation_designs import simulate_111, simulate_111_random, simulate_211, simulate_221

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, TWOLEVEL_TRUTH
from bayes_msem.likelihood.registry import strategy_for
from bayes_msem.templates import available_templates

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("ansari_jedidi", "contextual_effect", "growth_curve", "logit_factor", "mediation_111",
             "mediation_111_random", "mediation_211", "mediation_221", "multigroup_invariance", "ordinal_factor",
             "random_loadings", "random_slopes", "random_variances", "three_level_random_intercepts", "twolevel_cfa",
             "twolevel_sem_demo", "variance_components_factor")
STRATEGIES = {"ansari_jedidi": "hybrid", "mediation_111_random": "hybrid", "random_loadings": "hybrid",
              "random_variances": "hybrid", "logit_factor": "conditional", "ordinal_factor": "conditional"}


# --------------------------------------------------------------------------------------------
# Simulation: a shared, vectorised helper and one small simulator per design.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Simulated:
    """Data drawn from a template's design, with the true values of its main parameters
    (keys: names of ``theta``'s ``parameter`` dimension, or of defined parameters), and the
    keyword arguments of :class:`bayes_msem.Model` its header asks for (cluster, families)."""

    data: pd.DataFrame
    truth: dict[str, float]
    options: dict = field(default_factory=lambda: {"cluster": "cluster"})


def clusters(rng: np.random.Generator, n_clusters: int = 100, sizes: tuple[int, int] = (5, 15)) -> np.ndarray:
    """The cluster index (0..n_clusters-1) of every row; cluster sizes uniform in ``sizes`` (inclusive)."""
    return np.repeat(np.arange(n_clusters), rng.integers(sizes[0], sizes[1] + 1, size=n_clusters))


def _rows(value: np.ndarray | float, index: np.ndarray, ndim: int) -> np.ndarray:
    """A parameter shared by all groups (``ndim`` dimensions) or given per group (a leading
    group axis), as one copy per row of ``index``."""
    value = np.asarray(value, dtype=float)
    return value[index] if value.ndim == ndim + 1 else np.broadcast_to(value, (len(index), *value.shape))


def normal(rng: np.random.Generator, index: np.ndarray, cov: np.ndarray, mean: np.ndarray | float = 0.0) -> np.ndarray:
    """One multivariate normal draw per row of ``index`` (n, k): covariance ``cov`` (k, k) shared,
    or (G, k, k) per group, picked by ``index``."""
    chol = _rows(np.linalg.cholesky(np.asarray(cov, dtype=float)), index, 2)
    z = rng.standard_normal((len(index), chol.shape[-1]))
    return mean + np.einsum("nkl,nl->nk", chol, z)


def factor_model(rng: np.random.Generator, index: np.ndarray, loadings: np.ndarray, factor_cov: np.ndarray,
                 residual_var: np.ndarray, factor_mean: np.ndarray | float = 0.0) -> np.ndarray:
    """y = Λ η + ε per row of ``index`` (n, p), η ~ N(factor_mean, Φ), ε ~ N(0, diag(θ)).

    Λ (p, k), Φ (k, k) and θ (p,) are shared or carry a leading group axis (per cluster);
    ``factor_mean`` is a scalar or (n, k) (e.g. γ x for a factor regressed on covariates).
    """
    eta = normal(rng, index, factor_cov, factor_mean)
    residual = np.sqrt(_rows(residual_var, index, 1)) * rng.standard_normal((len(index), np.shape(residual_var)[-1]))
    return np.einsum("npk,nk->np", _rows(loadings, index, 2), eta) + residual


def frame(cluster: np.ndarray, **columns: np.ndarray) -> pd.DataFrame:
    """A data set with a 1-based ``cluster`` column; 2-D arrays become columns NAME1, NAME2, ...

    Cluster-level arrays (one value per cluster) are expanded to the rows.
    """
    out = {"cluster": cluster + 1}
    n_clusters = cluster.max() + 1
    for name, value in columns.items():
        value = value[cluster] if len(value) == n_clusters and len(value) != len(cluster) else value
        if value.ndim == 1:
            out[name] = value
        else:
            out.update({f"{name}{k + 1}": value[:, k] for k in range(value.shape[1])})
    return pd.DataFrame(out)


def _between_cfa(rng: np.random.Generator, n_clusters: int, loadings: list[float], residual_var: list[float],
                 means: list[float], factor_var: float, factor_mean: np.ndarray | float = 0.0) -> np.ndarray:
    """The random intercepts (n_clusters, p) from one between factor."""
    index = np.arange(n_clusters)
    mean = np.reshape(factor_mean, (-1, 1)) if np.ndim(factor_mean) else factor_mean
    return np.asarray(means) + factor_model(rng, index, np.c_[loadings], [[factor_var]], residual_var, mean)


def _named(pattern: str, values: list[float], first: int = 2) -> dict[str, float]:
    """{pattern.format(k): value} for k = first, first + 1, ... (e.g. "between:fb=~y{}")."""
    return {pattern.format(k): v for k, v in enumerate(values, start=first)}


def simulate_random_slopes(seed: int = 11) -> Simulated:
    """y_ij = b_j + s_j x_ij + e_ij; b_j = 1 + 0.3 w_j + u0_j, s_j = 0.5 + 0.2 w_j + u1_j."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    w = rng.standard_normal(cluster.max() + 1)
    u = normal(rng, np.arange(len(w)), [[0.4, 0.05], [0.05, 0.1]])
    intercept, slope = 1.0 + 0.3 * w + u[:, 0], 0.5 + 0.2 * w + u[:, 1]
    x = rng.standard_normal(len(cluster))
    y = intercept[cluster] + slope[cluster] * x + rng.standard_normal(len(cluster))
    truth = {"between:y~1": 1.0, "between:y~w": 0.3, "between:s~1": 0.5, "between:s~w": 0.2, "within:y~~y": 1.0}
    return Simulated(frame(cluster, y=y, x=x, w=w), truth)


# Between part shared by the random loading and random variance designs. Without a between
# covariate, fb needs some variance for its loadings to be well determined by 100 clusters (with
# Var(fb) = 0.3 and residuals 0.15-0.25 the chains mixed slowly along the fb variance-loading ridge).
_B_LOADINGS, _B_RESIDUAL, _B_MEANS, _B_VAR = [1.0, 0.9, 0.7, 0.8], [0.1, 0.15, 0.1, 0.15], [2.0, 0.5, -0.3, 1.0], 0.6


def _between_truth() -> dict[str, float]:
    return {**_named("between:fb=~y{}", _B_LOADINGS[1:]), **_named("between:y{}~1", _B_MEANS, first=1)}


def simulate_random_loadings(seed: int = 12) -> Simulated:
    """Within: fw on y1-y4 with loadings (1, l2_j, l3_j, 0.7), l2_j ~ N(0.8, 0.25²), l3_j ~ N(0.9, 0.25²).

    Clusters of 10-20: with 5-15 units a cluster says little about its own loadings, and the
    variances of the random loadings mixed slowly (bulk ESS ~100 of 600 draws, R-hat up to 1.07).
    """
    rng = np.random.default_rng(seed)
    cluster = clusters(rng, sizes=(10, 20))
    n_clusters = cluster.max() + 1
    random = np.array([0.8, 0.9]) + 0.25 * rng.standard_normal((n_clusters, 2))
    loadings = np.stack([np.ones(n_clusters), random[:, 0], random[:, 1], np.full(n_clusters, 0.7)], axis=1)
    within = factor_model(rng, cluster, loadings[:, :, None], [[0.8]], [1.0, 0.9, 0.8, 1.1])
    between = _between_cfa(rng, n_clusters, _B_LOADINGS, _B_RESIDUAL, _B_MEANS, _B_VAR)
    truth = {"within:fw=~y4": 0.7, "between:l2~1": 0.8, "between:l3~1": 0.9, "within:fw~~fw": 0.8, **_between_truth()}
    return Simulated(frame(cluster, y=between[cluster] + within), truth)


def simulate_random_variances(seed: int = 13) -> Simulated:
    """Within: fw on y1-y4 (loadings 1, 0.8, 0.9, 0.7); log residual variances of y1 and y2
    v_j ~ N((0, log 0.9), 0.5²); those of y3, y4 fixed at 0.8, 1.1."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    n_clusters = cluster.max() + 1
    log_var = np.array([0.0, np.log(0.9)]) + 0.5 * rng.standard_normal((n_clusters, 2))
    residual = np.column_stack([np.exp(log_var), np.tile([0.8, 1.1], (n_clusters, 1))])
    within = factor_model(rng, cluster, np.c_[[1.0, 0.8, 0.9, 0.7]], [[0.8]], residual)
    between = _between_cfa(rng, n_clusters, _B_LOADINGS, _B_RESIDUAL, _B_MEANS, _B_VAR)
    truth = {**_named("within:fw=~y{}", [0.8, 0.9, 0.7]), "between:v1~1": 0.0, "between:v2~1": float(np.log(0.9)),
             **_between_truth()}
    return Simulated(frame(cluster, y=between[cluster] + within), truth)


def simulate_ansari_jedidi(seed: int = 14) -> Simulated:
    """Within: f1 on y1-y3 (1, l2_j, 0.8), f2 on y4-y6 (1, l5_j, 0.9), Cov(f1, f2) = Φ_j with
    log-SDs N((0, log 0.8), 0.2²) and correlation tanh(N(atanh 0.4, 0.2²)); l2_j = 0.8 + 0.2 w_j + N(0, 0.15²),
    l5_j = 0.7 − 0.15 w_j + N(0, 0.15²). Between: fb on y1-y6, fb = 0.8 w_j + N(0, 0.3).

    Clusters of 20-40: a cluster-specific 2 × 2 covariance matrix needs some units per cluster. With
    10-20 the variance of the random correlation mixed slowly (bulk ESS ~60 of 600 draws, R-hat 1.05)
    and the posterior of its mean sat 3.6 posterior SDs from the truth. The hybrid likelihood works
    on per-cluster statistics, so larger clusters cost no sampling time.
    """
    rng = np.random.default_rng(seed)
    cluster = clusters(rng, sizes=(20, 40))
    n_clusters = cluster.max() + 1
    w = rng.standard_normal(n_clusters)
    l2 = 0.8 + 0.2 * w + 0.15 * rng.standard_normal(n_clusters)
    l5 = 0.7 - 0.15 * w + 0.15 * rng.standard_normal(n_clusters)
    loadings = np.zeros((n_clusters, 6, 2))
    loadings[:, :3, 0] = np.column_stack([np.ones(n_clusters), l2, np.full(n_clusters, 0.8)])
    loadings[:, 3:, 1] = np.column_stack([np.ones(n_clusters), l5, np.full(n_clusters, 0.9)])
    sd = np.exp(np.array([0.0, np.log(0.8)]) + 0.2 * rng.standard_normal((n_clusters, 2)))
    corr = np.tanh(np.arctanh(0.4) + 0.2 * rng.standard_normal(n_clusters))
    phi = np.empty((n_clusters, 2, 2))
    phi[:, 0, 0], phi[:, 1, 1] = sd[:, 0] ** 2, sd[:, 1] ** 2
    phi[:, 0, 1] = phi[:, 1, 0] = corr * sd[:, 0] * sd[:, 1]
    within = factor_model(rng, cluster, loadings, phi, [0.5, 0.6, 0.5, 0.6, 0.5, 0.6])
    b_loadings, b_means = [1.0, 0.8, 0.9, 0.7, 0.8, 0.9], [0.0, 0.5, 1.0, -0.5, 0.2, 0.8]
    between = _between_cfa(rng, n_clusters, b_loadings, [0.15] * 6, b_means, 0.3, factor_mean=0.8 * w)
    truth = {
        "within:f1=~y3": 0.8, "within:f2=~y6": 0.9, "between:l2~1": 0.8, "between:l5~1": 0.7,
        "between:l2~w": 0.2, "between:l5~w": -0.15, "between:Phi.f1~1": 0.0, "between:Phi.f2~1": float(np.log(0.8)),
        "between:Phi.f1.f2~1": float(np.arctanh(0.4)), "between:fb~w": 0.8,
        **_named("between:fb=~y{}", b_loadings[1:]), **_named("between:y{}~1", b_means, first=1),
    }
    return Simulated(frame(cluster, y=between[cluster] + within, w=w), truth)


def simulate_contextual_effect(seed: int = 15) -> Simulated:
    """x = xb_j + xw_ij (xb ~ N(1, 0.5), xw ~ N(0, 1)); y = yb_j + 0.4 xw_ij + N(0, 0.8),
    yb_j = 2 + 0.9 xb_j + N(0, 0.3): contextual effect 0.9 − 0.4 = 0.5."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    n_clusters = cluster.max() + 1
    xb = 1.0 + np.sqrt(0.5) * rng.standard_normal(n_clusters)
    yb = 2.0 + 0.9 * xb + np.sqrt(0.3) * rng.standard_normal(n_clusters)
    xw = rng.standard_normal(len(cluster))
    y = yb[cluster] + 0.4 * xw + np.sqrt(0.8) * rng.standard_normal(len(cluster))
    truth = {"within:y~x": 0.4, "between:y~x": 0.9, "between:y~1": 2.0, "between:x~1": 1.0, "ctx": 0.5}
    return Simulated(frame(cluster, y=y, x=xb[cluster] + xw), truth)


def simulate_twolevel_cfa(seed: int = 16) -> Simulated:
    """The design of bayes_msem.examples (TWOLEVEL_TRUTH): fw on y1-y4 regressed on x, fb on y1-y4 on w."""
    t = TWOLEVEL_TRUTH
    items = ("y1", "y2", "y3", "y4")
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    n_clusters = cluster.max() + 1
    x, w = rng.standard_normal(len(cluster)), rng.standard_normal(n_clusters)

    def level(name: str, factor: str, covariate: np.ndarray, index: np.ndarray) -> np.ndarray:
        loadings = np.c_[[1.0] + [t[f"{name}:{factor}=~{y}"] for y in items[1:]]]
        mean = t[f"{name}:{factor}~{'x' if name == 'within' else 'w'}"] * covariate[:, None]
        residual = [t[f"{name}:{y}~~{y}"] for y in items]
        return factor_model(rng, index, loadings, [[t[f"{name}:{factor}~~{factor}"]]], residual, mean)

    between = np.array([t[f"between:{y}~1"] for y in items]) + level("between", "fb", w, np.arange(n_clusters))
    y = between[cluster] + level("within", "fw", x, cluster)
    truth = {k: v for k, v in t.items() if "~~" not in k}
    return Simulated(frame(cluster, y=y, x=x, w=w), truth)


def simulate_twolevel_sem_demo(seed: int = 17) -> Simulated:
    """Demo.twolevel's design: fw on y1-y3 (1, 0.8, 0.7) regressed on x1-x3 (0.5, 0.4, 0.2);
    fb on y1-y3 (1, 0.7, 0.6) regressed on w1, w2 (0.3, 0.2)."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    n_clusters = cluster.max() + 1
    x, w = rng.standard_normal((len(cluster), 3)), rng.standard_normal((n_clusters, 2))
    within = factor_model(rng, cluster, np.c_[[1.0, 0.8, 0.7]], [[0.6]], [1.0, 1.0, 1.0], x @ np.c_[[0.5, 0.4, 0.2]])
    means = np.array([0.2, -0.1, 0.3])
    between = means + factor_model(rng, np.arange(n_clusters), np.c_[[1.0, 0.7, 0.6]], [[0.8]], [0.1, 0.15, 0.15],
                                   w @ np.c_[[0.3, 0.2]])
    truth = {"within:fw=~y2": 0.8, "within:fw=~y3": 0.7, "within:fw~x1": 0.5, "within:fw~x2": 0.4, "within:fw~x3": 0.2,
             "between:fb=~y2": 0.7, "between:fb=~y3": 0.6, "between:fb~w1": 0.3, "between:fb~w2": 0.2,
             **_named("between:y{}~1", list(means), first=1)}
    return Simulated(frame(cluster, y=between[cluster] + within, x=x, w=w), truth)


def simulate_variance_components_factor(seed: int = 19) -> Simulated:
    """One factor with the same loadings (1, 0.8, 0.7, 0.9) at both levels: Var(fw) = 1,
    Var(fb) = 0.4 (factor ICC 0.4 / 1.4), residual variances 0.5 (within) and 0.1 (between)."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    loadings = np.c_[[1.0, 0.8, 0.7, 0.9]]
    means = np.array([0.5, 0.0, -0.3, 0.2])
    within = factor_model(rng, cluster, loadings, [[1.0]], [0.5] * 4)
    between = means + factor_model(rng, np.arange(cluster.max() + 1), loadings, [[0.4]], [0.1] * 4)
    truth = {**_named("within:fw=~y{}", [0.8, 0.7, 0.9]), "within:fw~~fw": 1.0, "between:fb~~fb": 0.4,
             "icc_factor": 0.4 / 1.4, **_named("between:y{}~1", list(means), first=1)}
    return Simulated(frame(cluster, y=between[cluster] + within), truth)


def simulate_three_level_random_intercepts(seed: int = 20) -> Simulated:
    """y = 1 + 0.5 x + 0.3 z_jk + 0.4 w_k + v_jk + u_k + e: 40 schools of 3-6 classes of 5-15
    pupils; Var(e) = 1, Var(v) = 0.3, Var(u) = 0.5 (ICCs 0.3/1.8 and 0.5/1.8)."""
    rng = np.random.default_rng(seed)
    school_of_class = clusters(rng, n_clusters=40, sizes=(3, 6))
    pupil_class = clusters(rng, n_clusters=len(school_of_class))
    pupil_school = school_of_class[pupil_class]
    n_classes, n_schools = len(school_of_class), school_of_class.max() + 1
    z, w = rng.standard_normal(n_classes), rng.standard_normal(n_schools)
    v, u = np.sqrt(0.3) * rng.standard_normal(n_classes), np.sqrt(0.5) * rng.standard_normal(n_schools)
    x = rng.standard_normal(len(pupil_class))
    y = 1.0 + 0.5 * x + (0.3 * z + v)[pupil_class] + (0.4 * w + u)[pupil_school] + rng.standard_normal(len(x))
    data = pd.DataFrame({"class": pupil_class + 1, "school": pupil_school + 1, "y": y, "x": x,
                         "z": z[pupil_class], "w": w[pupil_school]})
    truth = {"within:y~x": 0.5, "class:y~z": 0.3, "school:y~w": 0.4, "school:y~1": 1.0, "within:y~~y": 1.0,
             "class:y~~y": 0.3, "school:y~~y": 0.5, "icc_class": 0.3 / 1.8, "icc_school": 0.5 / 1.8}
    return Simulated(data, truth, {"cluster": ["class", "school"]})


def _latent_responses(rng: np.random.Generator, cluster: np.ndarray, within_loadings: list[float], within_var: float,
                      between_loadings: list[float], between_var: float, between_residual: float,
                      noise: np.ndarray) -> np.ndarray:
    """y* = ν_j + Λ_W fw + noise: the latent responses of a two-level factor model whose
    within residuals are ``noise`` (n, p), e.g. logistic or standard normal; ν_j from
    :func:`_between_cfa` with means 0."""
    p = len(within_loadings)
    between = _between_cfa(rng, cluster.max() + 1, between_loadings, [between_residual] * p, [0.0] * p, between_var)
    within = factor_model(rng, cluster, np.c_[within_loadings], [[within_var]], np.zeros(p))
    return between[cluster] + within + noise


_CATEGORICAL_LOADINGS = ([1.0, 1.2, 0.8, 1.0], [1.0, 0.9, 1.1, 0.8])  # within, between


def simulate_logit_factor(seed: int = 21) -> Simulated:
    """logit P(u_k = 1) = ν_k + λ_k^W fw + λ_k^B fb + d_k with intercepts (0.5, 0, −0.5, 0.3):
    Var(fw) = 1.5, Var(fb) = 0.6, Var(d_k) = 0.1; clusters of 10-20 (binary items say little each)."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng, sizes=(10, 20))
    intercepts = np.array([0.5, 0.0, -0.5, 0.3])
    noise = rng.logistic(size=(len(cluster), 4))
    latent = intercepts + _latent_responses(rng, cluster, _CATEGORICAL_LOADINGS[0], 1.5, _CATEGORICAL_LOADINGS[1],
                                            0.6, 0.1, noise)
    truth = {**_named("within:fw=~u{}", _CATEGORICAL_LOADINGS[0][1:]), **_named("between:fb=~u{}", _CATEGORICAL_LOADINGS[1][1:]),
             "within:fw~~fw": 1.5, "between:fb~~fb": 0.6, **_named("between:u{}~1", list(intercepts), first=1)}
    return Simulated(frame(cluster, u=(latent > 0).astype(float)), truth,
                     {"cluster": "cluster", "family": {f"u{k}": "bernoulli" for k in range(1, 5)}})


def simulate_ordinal_factor(seed: int = 22) -> Simulated:
    """Cumulative probit: y* = λ_k^W fw + λ_k^B fb + d_k + N(0, 1), cut at thresholds
    (−1, 0, 1) for every item into categories 1-4: Var(fw) = 1, Var(fb) = 0.5, Var(d_k) = 0.1."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    cuts = np.array([-1.0, 0.0, 1.0])
    latent = _latent_responses(rng, cluster, _CATEGORICAL_LOADINGS[0], 1.0, _CATEGORICAL_LOADINGS[1], 0.5, 0.1,
                               rng.standard_normal((len(cluster), 4)))
    truth = {**_named("within:fw=~o{}", _CATEGORICAL_LOADINGS[0][1:]), **_named("between:fb=~o{}", _CATEGORICAL_LOADINGS[1][1:]),
             "within:fw~~fw": 1.0, "between:fb~~fb": 0.5,
             **{f"within:o{k}|t{c + 1}": cut for k in range(1, 5) for c, cut in enumerate(cuts)}}
    return Simulated(frame(cluster, o=1.0 + (latent[..., None] > cuts).sum(axis=-1)), truth,
                     {"cluster": "cluster", "ordered": [f"o{k}" for k in range(1, 5)]})


def simulate_growth_curve(seed: int = 23) -> Simulated:
    """y_t = (ib + iw) + (sb + sw) t + e_t, t = 0..3: iw = 0.5 x + r_i, sw = 0.2 x + r_s with
    Cov(r_i, r_s) = [[1, 0.1], [0.1, 0.2]]; ib = 2 + 0.4 w + u_i, sb = 0.5 + 0.1 w + u_s with
    Cov(u_i, u_s) = [[0.3, 0.05], [0.05, 0.05]]; residual variances 0.5."""
    rng = np.random.default_rng(seed)
    cluster = clusters(rng)
    n_clusters = cluster.max() + 1
    x, w = rng.standard_normal(len(cluster)), rng.standard_normal(n_clusters)
    person = normal(rng, cluster, [[1.0, 0.1], [0.1, 0.2]], np.outer(x, [0.5, 0.2]))
    school = normal(rng, np.arange(n_clusters), [[0.3, 0.05], [0.05, 0.05]], [2.0, 0.5] + np.outer(w, [0.4, 0.1]))
    growth = person + school[cluster]
    time = np.arange(4.0)
    y = growth[:, :1] + growth[:, 1:] * time + np.sqrt(0.5) * rng.standard_normal((len(cluster), 4))
    truth = {"between:ib~1": 2.0, "between:sb~1": 0.5, "within:iw~x": 0.5, "within:sw~x": 0.2, "between:ib~w": 0.4,
             "between:sb~w": 0.1, "within:iw~~iw": 1.0, "within:sw~~sw": 0.2, "within:iw~~sw": 0.1,
             **_named("within:y{0}~~y{0}", [0.5] * 4, first=1)}
    return Simulated(frame(cluster, y=y, x=x, w=w), truth)


def simulate_multigroup_invariance(seed: int = 24) -> Simulated:
    """Two groups (A, B) of 60 clusters each, scalar invariance: fw on y1-y4 (1, 0.8, 0.7, 0.9)
    and fb on y1-y4 (1, 0.9, 0.8, 0.7) in both groups, item means (0.5, 0, −0.3, 0.2); the groups
    differ in the factor variances (fw 1 and 1.3, fb 0.4 and 0.3) and in the mean of fb (0 and 0.4);
    residual variances 0.5 (within) and 0.1 (between)."""
    rng = np.random.default_rng(seed)
    n_clusters = 120
    cluster = clusters(rng, n_clusters=n_clusters)
    group = (np.arange(n_clusters) >= n_clusters // 2).astype(int)  # 0 (A) or 1 (B), per cluster
    within_loadings, between_loadings = [1.0, 0.8, 0.7, 0.9], [1.0, 0.9, 0.8, 0.7]
    means = np.array([0.5, 0.0, -0.3, 0.2])
    within = factor_model(rng, group[cluster], np.c_[within_loadings], [[[1.0]], [[1.3]]], [0.5] * 4)
    fb_mean = 0.4 * group[:, None]
    between = means + factor_model(rng, group, np.c_[between_loadings], [[[0.4]], [[0.3]]], [0.1] * 4, fb_mean)
    truth = {**_named("within:fw=~y{}", within_loadings[1:]), **_named("between:fb=~y{}", between_loadings[1:]),
             **_named("between:y{}~1", list(means), first=1), "A:within:fw~~fw": 1.0, "B:within:fw~~fw": 1.3,
             "B:between:fb~1": 0.4}
    data = frame(cluster, y=between[cluster] + within).assign(country=np.where(group[cluster], "B", "A"))
    return Simulated(data, truth, {"cluster": "cluster", "group": "country", "group_equal": ["loadings", "intercepts"]})


SIMULATORS: dict[str, Callable[[], Simulated]] = {
    "ansari_jedidi": simulate_ansari_jedidi,
    "contextual_effect": simulate_contextual_effect,
    "growth_curve": simulate_growth_curve,
    "logit_factor": simulate_logit_factor,
    "mediation_111": lambda: Simulated(*simulate_111()),
    "mediation_111_random": lambda: Simulated(*simulate_111_random()),
    "mediation_211": lambda: Simulated(*simulate_211()),
    "mediation_221": lambda: Simulated(*simulate_221()),
    "multigroup_invariance": simulate_multigroup_invariance,
    "ordinal_factor": simulate_ordinal_factor,
    "random_loadings": simulate_random_loadings,
    "random_slopes": simulate_random_slopes,
    "random_variances": simulate_random_variances,
    "three_level_random_intercepts": simulate_three_level_random_intercepts,
    "twolevel_cfa": simulate_twolevel_cfa,
    "twolevel_sem_demo": simulate_twolevel_sem_demo,
    "variance_components_factor": simulate_variance_components_factor,
}


def upper_levels(options: dict) -> dict[str, str]:
    """{level block name: its cluster column}: "between" for two levels, else the columns' names."""
    columns = np.atleast_1d(options["cluster"]).tolist()
    return {"between": columns[0]} if len(columns) == 1 else {column: column for column in columns}


# --------------------------------------------------------------------------------------------
# Fast tests
# --------------------------------------------------------------------------------------------

def test_available_templates() -> None:
    assert available_templates() == sorted(TEMPLATES)
    assert set(SIMULATORS) == set(TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_text(name: str) -> None:
    text = bm.template(name)
    assert text == bm.template(f"{name}.msem")
    header = text[:re.search(r"^level:", text, flags=re.MULTILINE).start()]
    assert header.lstrip().startswith("#") and "Reference" in header and "Adapt" in header
    assert "cluster" in header  # says which column identifies the clusters
    options = SIMULATORS[name]().options
    assert re.findall(r"^level: (\w+)", text, flags=re.MULTILINE) == ["within", *upper_levels(options)]
    assert all(f"{key}=" in header for key in options), "the header shows how to call bm.Model"


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_builds_with_its_data(name: str) -> None:
    sim = SIMULATORS[name]()
    model = bm.Model(bm.template(name), sim.data, **sim.options)
    table = model.parameter_table()
    assert len(table) and (table["free"] > 0).any()
    plan = model.plan
    assert strategy_for(plan).kind == STRATEGIES.get(name, "marginal")
    names = set(plan.parameters["name"]) | set(model.definitions["name"])
    assert set(sim.truth) <= names, f"simulator truth names not in the model: {set(sim.truth) - names}"
    pymc_model = model.pymc_model  # graph only: nothing is compiled
    assert "theta" in pymc_model.named_vars
    assert ("random_effects" in pymc_model.named_vars) == (strategy_for(plan).kind == "hybrid")


def test_twolevel_cfa_is_the_example_model() -> None:
    def statements(text: str) -> list[str]:
        return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]

    assert statements(bm.template("twolevel_cfa")) == statements(TWOLEVEL_CFA)


def test_unknown_template_names_the_closest_and_lists_all() -> None:
    with pytest.raises(ValueError, match="did you mean 'random_slopes'") as error:
        bm.template("random_slope")
    for name in TEMPLATES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="unknown template 'zzz'; available templates: ansari_jedidi"):
        bm.template("zzz")
    with pytest.raises(ValueError, match="unknown template"):
        bm.template("../pyproject")


def test_readme_table_lists_every_template() -> None:
    readme = (ROOT / "bayes_msem" / "templates" / "README.md").read_text()
    listed = re.findall(r"^\| `(\w+)` \|", readme, flags=re.MULTILINE)
    assert sorted(listed) == sorted(TEMPLATES)


def test_root_symlink_points_at_the_package_templates() -> None:
    link = ROOT / "templates"
    assert link.resolve() == (ROOT / "bayes_msem" / "templates").resolve()


@pytest.mark.parametrize("name", TEMPLATES)
def test_simulator_is_deterministic_and_clustered(name: str) -> None:
    first, second = SIMULATORS[name](), SIMULATORS[name]()
    pd.testing.assert_frame_equal(first.data, second.data)
    data = first.data
    cluster, *upper = np.atleast_1d(first.options["cluster"])
    sizes = data.groupby(cluster).size()
    assert len(sizes) >= 100 and sizes.min() >= 5 and sizes.max() <= 40 and sizes.nunique() > 1
    assert np.isfinite(data.select_dtypes("number").to_numpy()).all()
    top = upper[-1] if upper else cluster
    for column in (c for c in data.columns if c.startswith("w")):
        assert (data.groupby(top)[column].nunique() == 1).all()
    nested_in = [*upper, first.options["group"]] if "group" in first.options else upper
    for column in nested_in:  # each cluster lies in one unit of every level above it, and in one group
        assert (data.groupby(cluster)[column].nunique() == 1).all()


def test_simulator_moments() -> None:
    """Large-sample check of the shared helper: per-group covariances and factor loadings."""
    rng = np.random.default_rng(0)
    index = np.repeat([0, 1], 100_000)
    cov = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    draws = normal(rng, index, cov, mean=np.array([1.0, -1.0]))
    for g in (0, 1):
        np.testing.assert_allclose(np.cov(draws[index == g].T), cov[g], atol=0.03)
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, -1.0], atol=0.02)
    y = factor_model(rng, np.zeros(200_000, dtype=int), np.c_[[1.0, 0.5]], [[2.0]], [1.0, 0.5])
    np.testing.assert_allclose(np.cov(y.T), [[3.0, 1.0], [1.0, 1.0]], atol=0.05)


# --------------------------------------------------------------------------------------------
# Slow tests: fit every template to its simulated data.
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_recovers_its_simulated_truth(name: str) -> None:
    sim = SIMULATORS[name]()
    # The conditional strategy samples every latent variable: the between residual variances of
    # categorical items, near 0, mix slowly. With 2 x 1000 draws and the package's default prior
    # on them the ordinal model's min bulk ESS was 35-150 over seeds 1-4 (R-hat up to 1.055); with
    # the templates' gamma(2, 2)[sd] it was 183-262 (R-hat 1.013-1.019).
    draws = 1000 if STRATEGIES.get(name) == "conditional" else 300
    fit = bm.Model(bm.template(name), sim.data, **sim.options).fit(draws=draws, tune=draws, chains=2, random_seed=1)
    d = fit.diagnostics()["value"]
    assert d["divergences"] <= 0.01 * draws * 2, d
    assert d["r_hat"] < 1.05, d
    posterior = fit.idata.posterior
    draws = [posterior[var] for var in ("theta", "defined") if var in posterior]  # free and defined parameters
    mean = pd.concat([d.mean(("chain", "draw")).to_series() for d in draws])
    sd = pd.concat([d.std(("chain", "draw")).to_series() for d in draws])
    truth = pd.Series(sim.truth)
    z = ((mean[truth.index] - truth) / sd[truth.index]).abs()
    # With 100 clusters the posterior of a main parameter (loading, slope, mean of a random
    # parameter) is close to normal around the truth with its posterior SD as scale, so
    # (mean - truth) / sd is roughly standard normal. |z| < 4 fails by chance with probability
    # ~6e-5 per parameter (under 2e-3 over a template's <= 20): a failure signals bias.
    assert (z < 4).all(), f"{name}: parameters far from the truth:\n{z[z >= 4]}"
    if "group" in sim.options:  # scores, standardized solutions and R² come per group later
        assert list(dict.fromkeys(fit.parameters()["group"])) == list(dict.fromkeys(sim.data[sim.options["group"]]))
        with pytest.raises(bm.UnavailableError, match="multiple-group"):
            fit.standardized()
        return
    # latent scores of every unit at each level (given the random parameters of each draw)
    scores = fit.latent_scores(seed=1)
    units = {"within": len(sim.data)} | {level: sim.data[column].nunique()
                                         for level, column in upper_levels(sim.options).items()}
    for level, rows in scores.groupby("level"):
        assert rows.groupby("variable").size().eq(units[level]).all(), (level, rows.groupby("variable").size())
    assert np.isfinite(scores[["mean", "sd"]].to_numpy()).all() and scores["sd"].gt(0).all()
    # the standardized solution (per cluster and averaged with random parameters) and R²
    standardized = fit.standardized()
    paths = standardized[standardized["op"].isin(["=~", "~"])]
    assert np.isfinite(paths["std.all"]).all() and (paths["std.all"].abs() < 1.5).all(), paths
    assert fit.r_squared()["mean"].between(0, 1).all()


@pytest.mark.slow
def test_random_loadings_with_missing_cells_match_the_complete_data_fit() -> None:
    """The hybrid strategy over the observed cells: y2 and y3 (the items with random loadings)
    about 12% missing at random, more often where y1 is high. As in the Demo.twolevel check
    (test_reference.py), losing that share moves a posterior mean by about 0.4 posterior SD at
    most; 1 SD is far inside the bias of a likelihood that mishandled the missing cells."""
    sim = SIMULATORS["random_loadings"]()
    data = sim.data.copy()
    rng = np.random.default_rng(8)
    y1 = (data["y1"] - data["y1"].mean()) / data["y1"].std()
    for name in ["y2", "y3"]:
        data.loc[rng.random(len(data)) < 1 / (1 + np.exp(2.2 - 0.8 * y1)), name] = np.nan
    assert 0.08 < data["y2"].isna().mean() < 0.16

    def fit(frame):
        return bm.Model(bm.template("random_loadings"), frame, cluster="cluster").fit(
            draws=500, tune=500, chains=2, random_seed=1)

    with_missing, complete = fit(data), fit(sim.data)
    assert with_missing.info["strategy"] == "hybrid"
    ours, full = with_missing.parameters().query("free"), complete.parameters().query("free")
    distance = (ours["mean"] - full["mean"]).abs() / ours["sd"]
    assert distance.max() < 1.0, ours.assign(complete=full["mean"], distance=distance)
    assert with_missing.diagnostics().loc["r_hat", "value"] < 1.05
