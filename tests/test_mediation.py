"""Multilevel mediation (Preacher, Zyphur & Zhang 2010) with the templates ``mediation_111``,
``mediation_111_random``, ``mediation_211`` and ``mediation_221``.

Data come from :mod:`mediation_designs` (known truth). The 1-1-1 posterior is also set beside
maximum likelihood: an independent per-cluster multivariate normal likelihood written here
(each cluster's stacked (x, m, y) rows have covariance I ⊗ Σ_W + 1 1ᵀ ⊗ Σ_B) maximised with
scipy. The random-path likelihood is checked for exactness against a dense reference in
``test_hybrid_density.py`` (``random-mediation-paths``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mediation_designs import RANDOM_SLOPES, simulate_111, simulate_111_random, simulate_211, simulate_221
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

import bayes_msem as bm

SETTINGS = dict(draws=300, tune=300, chains=2, random_seed=1)


def _draws(fit: bm.Fit, name: str) -> np.ndarray:
    """All posterior draws of a parameter (``within:m~x``) or a defined parameter (``ind_within``)."""
    posterior = fit.idata.posterior
    if name in posterior["theta"]["parameter"].values:
        return posterior["theta"].sel(parameter=name).values.ravel()
    return posterior["defined"].sel(definition=name).values.ravel()


def _interval(draws: np.ndarray) -> tuple[float, float]:
    lower, upper = np.quantile(draws, [0.025, 0.975])
    return float(lower), float(upper)


@pytest.fixture(scope="module")
def fit_111() -> tuple[pd.DataFrame, dict[str, float], bm.Fit]:
    data, truth = simulate_111()
    return data, truth, bm.Model(bm.template("mediation_111"), data, cluster="cluster").fit(**SETTINGS)


# --------------------------------------------------------------------------------------------
# Where each design puts its variables (no sampling)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("design, simulate, within, between, cluster_covariates, strategy", [
    ("111", simulate_111, ("m", "x", "y"), ("m", "x", "y"), (), "marginal"),
    ("211", simulate_211, ("m", "y"), ("m", "y"), ("x",), "marginal"),
    ("221", simulate_221, ("y",), ("m", "y"), ("x",), "marginal"),
    ("111_random", simulate_111_random, ("m", "y"), ("m", "y"), (), "hybrid"),
], ids=["111", "211", "221", "111_random"])
def test_design_places_variables_at_their_levels(design, simulate, within, between, cluster_covariates, strategy):
    """A variable in both blocks is split into within and between parts; a cluster-level x is
    conditioned on at the between level; random paths a and b need the hybrid strategy (y ~ m
    with m an endogenous variable: given a_j, b_j the within model is linear and Gaussian)."""
    data, _ = simulate()
    model = bm.Model(bm.template(f"mediation_{design}"), data, cluster="cluster")
    roles = model.plan.levels
    assert sorted(roles["within"].roles.observed) == list(within)
    assert sorted(roles["between"].roles.observed) == list(between)
    assert roles["between"].roles.covariates == cluster_covariates
    assert model.strategy.kind == strategy


# --------------------------------------------------------------------------------------------
# 1-1-1: recovery and maximum likelihood
# --------------------------------------------------------------------------------------------

def test_111_recovers_within_and_between_indirect_effects(fit_111):
    _, truth, fit = fit_111
    assert fit.diagnostics().loc["r_hat", "value"] < 1.05
    for name in ("ind_within", "ind_between", "within:m~x", "within:y~m", "between:m~x", "between:y~m"):
        lower, upper = _interval(_draws(fit, name))
        assert lower < truth[name] < upper, (name, truth[name], lower, upper)
    assert _interval(_draws(fit, "ind_between"))[0] > 0


def _path_moments(slopes: np.ndarray, variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For m = a x + e_m, y = b m + c x + e_y with Var(x, e_m, e_y) = diag(v): T = (I − B)⁻¹
    and Σ = T diag(v) Tᵀ of (x, m, y)."""
    a, b, c = slopes
    t = np.linalg.inv(np.eye(3) - np.array([[0.0, 0.0, 0.0], [a, 0.0, 0.0], [c, b, 0.0]]))
    return t, t @ np.diag(variances) @ t.T


def _negative_loglik(params: np.ndarray, groups: dict[int, np.ndarray]) -> float:
    """−Σ_j log N(vec y_j; 1 ⊗ μ, I ⊗ Σ_W + 1 1ᵀ ⊗ Σ_B) over clusters grouped by size n
    (``groups[n]``: one row per cluster, its units' (x, m, y) one after the other).

    params: within slopes (a, b, c), between slopes, log within variances, log between
    variances, between intercepts (x mean, m and y intercepts)."""
    _, sigma_w = _path_moments(params[0:3], np.exp(params[6:9]))
    t, sigma_b = _path_moments(params[3:6], np.exp(params[9:12]))
    mean = t @ params[12:15]
    total = 0.0
    for n, rows in groups.items():
        cov = np.kron(np.eye(n), sigma_w) + np.kron(np.ones((n, n)), sigma_b)
        total += np.sum(multivariate_normal(np.tile(mean, n), cov).logpdf(rows))
    return -total


def maximum_likelihood_111(data: pd.DataFrame) -> dict[str, float]:
    """ML estimates of the 1-1-1 paths and indirect effects (names as the fit's)."""
    clusters = [frame[["x", "m", "y"]].to_numpy().ravel() for _, frame in data.groupby("cluster")]
    groups = {n: np.array([c for c in clusters if len(c) == 3 * n]) for n in {len(c) // 3 for c in clusters}}
    start = np.concatenate([np.zeros(6), np.full(6, np.log(0.5)), data[["x", "m", "y"]].mean().to_numpy()])
    result = minimize(_negative_loglik, start, args=(groups,), method="BFGS")
    assert np.abs(result.jac).max() < 1e-3, result  # at the optimum (BFGS may stop on finite-difference precision)
    names = ["within:m~x", "within:y~m", "within:y~x", "between:m~x", "between:y~m", "between:y~x"]
    estimates = dict(zip(names, result.x[:6]))
    estimates["ind_within"] = estimates["within:m~x"] * estimates["within:y~m"]
    estimates["ind_between"] = estimates["between:m~x"] * estimates["between:y~m"]
    return estimates


def test_111_posterior_means_agree_with_maximum_likelihood(fit_111):
    """With vague priors (normal(0, 10) slopes, gamma(1, 0.5) on SDs) the posterior mean and the
    ML estimate differ by O(1/N) while the posterior SD is O(1/√N), N the number of clusters
    (between parameters) or units (within ones): a few hundredths of a posterior SD with 100
    clusters and 1016 units (the largest distance measured was 0.06 SD, between:m~x). Monte
    Carlo error adds about 0.05 SD (~500 effective draws), hence 0.15 SD. A likelihood or a
    defined parameter evaluated wrongly moves the posterior by far more."""
    data, _, fit = fit_111
    ml = maximum_likelihood_111(data)
    for name, estimate in ml.items():
        draws = _draws(fit, name)
        distance = abs(draws.mean() - estimate) / draws.std()
        assert distance < 0.15, (name, draws.mean(), estimate, distance)


# --------------------------------------------------------------------------------------------
# 1-1-1 with random a and b
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_random_paths_within_indirect_effect_includes_their_covariance():
    """E[a_j b_j] = E[a] E[b] + Cov(a, b) = 0.09 + 0.1 = 0.19: the interval of ind_within
    (ma*mb + cab) covers 0.19 and excludes 0.09, the product of the mean paths alone.

    200 clusters of 10-30 units give ind_within a posterior SD of about 0.03. The slopes drawn
    with this seed have sample means (0.29, 0.30), covariance 0.105 and mean product 0.191, close
    to the population values, so the check is of the estimator and not of the draw."""
    data, truth = simulate_111_random(seed=23, n_clusters=200, sizes=(10, 30))
    model = bm.Model(bm.template("mediation_111_random"), data, cluster="cluster")
    fit = model.fit(draws=500, tune=500, chains=2, random_seed=1)
    assert fit.info["strategy"] == "hybrid"
    assert fit.diagnostics().loc["r_hat", "value"] < 1.05
    lower, upper = _interval(_draws(fit, "ind_within"))
    assert lower < truth["ind_within"] < upper, (lower, upper)
    assert RANDOM_SLOPES["mean_a"] * RANDOM_SLOPES["mean_b"] < lower
    cov_lower, cov_upper = _interval(_draws(fit, "between:a~~b"))
    assert 0 < cov_lower < RANDOM_SLOPES["cov_ab"] < cov_upper


# --------------------------------------------------------------------------------------------
# 2-1-1 and 2-2-1
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("design, simulate", [("211", simulate_211), ("221", simulate_221)], ids=["211", "221"])
def test_cluster_level_designs_recover_between_indirect_effect(design, simulate):
    """The between indirect effect 0.5 · 0.6 = 0.3 lies in its 95% interval, which excludes 0."""
    data, truth = simulate()
    fit = bm.Model(bm.template(f"mediation_{design}"), data, cluster="cluster").fit(
        draws=1000, tune=1000, chains=2, random_seed=1)
    assert fit.diagnostics().loc["r_hat", "value"] < 1.05
    lower, upper = _interval(_draws(fit, "ind_between"))
    assert 0 < lower < truth["ind_between"] < upper, (lower, upper)
