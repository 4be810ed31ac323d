"""Posterior predictive checks of categorical items and cluster-level moments (results/checks.py):
the statistics against hand computations on tiny data, PPPs of correctly specified models away
from 0 and 1, and misspecified models caught (a second factor, a slope that varies over clusters)."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.results.checks import (
    Statistic,
    cluster_covariances,
    cluster_means,
    cluster_sds,
    cluster_slopes,
    log_odds_ratio,
    pair_counts,
    realized_x2,
    standardized_residuals,
)

ITEMS = [f"u{k}" for k in range(1, 9)]
TWO_FACTORS = "f1 =~ u1 + u2 + u3 + u4\nf2 =~ u5 + u6 + u7 + u8"
ONE_FACTOR = "f =~ " + " + ".join(ITEMS)
RANDOM_SLOPE = "level: within\n  s | y ~ x\nlevel: between\n  y ~~ y\n  s ~~ s\n  y ~~ s"
FIXED_SLOPE = "level: within\n  y ~ x\nlevel: between\n  y ~~ y"
FIT = {"draws": 250, "tune": 250, "chains": 2, "random_seed": 5, "quiet": True}


def test_pair_statistics_by_hand():
    """a = (0, 0, 1, 1, 1, –), b = (0, 1, 0, 1, 1, 1): the table (n₀₀, n₀₁, n₁₀, n₁₁) = (1, 1, 1, 2) on
    the 5 complete rows; X² of (3, 1, 0, 4) against E = (2, 2, 1, 3) is 1/2 + 1/2 + 1 + 1/3 = 7/3
    (a cell with E = 0 left out), and draw by draw; the residual of the first cell is
    (3 − 2) / √(2 · (1 − 2/8)) = 1/√1.5; LOR = log(2.5 · 1.5 / (1.5 · 1.5)) = log(5/3)."""
    a, b = np.array([0, 0, 1, 1, 1, np.nan]), np.array([0, 1, 0, 1, 1, 1.0])
    np.testing.assert_array_equal(pair_counts(a, b, (2, 2)), [1, 1, 1, 2])
    assert realized_x2(np.array([3.0, 1, 0, 4]), np.array([2.0, 2, 1, 3])) == pytest.approx(7 / 3)
    assert realized_x2(np.array([3.0, 1, 5]), np.array([2.0, 2, 0])) == pytest.approx(1.0)
    np.testing.assert_allclose(realized_x2(np.array([3.0, 1, 0, 4]), np.array([[2.0, 2, 1, 3], [3.0, 1, 0, 4]])),
                               [7 / 3, 0])
    assert standardized_residuals(np.array([3.0, 1, 0, 4]), np.array([2.0, 2, 1, 3]))[0] == pytest.approx(1 / np.sqrt(1.5))
    assert log_odds_ratio(pair_counts(a, b, (2, 2))) == pytest.approx(np.log(5 / 3))
    np.testing.assert_array_equal(pair_counts(np.array([2.0, 0, 1]), np.array([0.0, 1, 0]), (3, 2)), [0, 1, 1, 0, 1, 0])


def test_cluster_statistics_by_hand():
    """Cluster 0: x = (0, 1, 2), y = (1, 3, 5) — slope 2, mean 3, SD 2, covariance 2; cluster 1:
    y = (0, 0, 1) — slope 0.5, mean 1/3, SD √(1/3), covariance 0.5; cluster 2 has one row (a mean only)."""
    cluster = np.array([0, 0, 0, 1, 1, 1, 2])
    x, y = np.array([0, 1, 2, 0, 1, 2, 1.0]), np.array([1, 3, 5, 0, 0, 1, 4.0])
    np.testing.assert_allclose(cluster_slopes(y, x, cluster), [2, 0.5])
    np.testing.assert_allclose(cluster_covariances(y, x, cluster), [2, 0.5])
    np.testing.assert_allclose(cluster_means(y, cluster), [3, 1 / 3, 4])
    np.testing.assert_allclose(cluster_sds(y, cluster), [2, np.sqrt(1 / 3)])


def test_ppp_tails():
    """A discrepancy's PPP is the upper tail, draw by draw; a signed statistic's is two-sided; draws
    where the statistic is undefined are left out, and with none defined the PPP is NaN."""
    replicated = np.array([1.0, 2, 3, 4])
    assert Statistic("pair X²", "a, b", np.array([0.0, 3, 3, 5]), replicated).ppp == 0.5
    assert Statistic("var(cluster slope)", "y ~ x", 3.5, replicated).ppp == 0.5  # 2 · min(1/4, 3/4)
    assert Statistic("var(cluster slope)", "y ~ x", 0.0, replicated).ppp == 0.0  # below every replication
    assert Statistic("var(cluster SD)", "y", 2.0, np.array([1.0, np.nan, 3])).ppp == 1.0
    assert np.isnan(Statistic("var(cluster SD)", "y", np.nan, replicated).ppp)


@pytest.fixture(scope="module")
def binary_items():
    """400 rows of 8 probit items, u1-u4 on f1 and u5-u8 on f2 (loadings 1.5, corr(f1, f2) = 0.3)."""
    rng = np.random.default_rng(11)
    factors = rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]], size=400)
    latent = 1.5 * factors[:, [0, 0, 0, 0, 1, 1, 1, 1]] + rng.normal(size=(400, 8))
    cuts = np.array([-0.5, 0.0, 0.5, 0.3, -0.3, 0.2, 0.0, -0.6])
    return pd.DataFrame((latent > cuts).astype(int), columns=ITEMS)


@pytest.fixture(scope="module")
def binary_fits(binary_items):
    family = {v: "bernoulli(probit)" for v in ITEMS}
    return {name: bm.Model(syntax, binary_items, family=family).fit(**FIT)
            for name, syntax in (("two", TWO_FACTORS), ("one", ONE_FACTOR))}


def test_true_two_factor_model_passes_the_pair_checks(binary_fits, tmp_path):
    """The data's model: PPPs of the summaries in (0.05, 0.95); fit_measures returns them."""
    checks = binary_fits["two"].predictive_checks(draws=200, seed=1)
    assert set(checks["discrepancy"]) == {"pair X²", "log odds ratio", "sum of pair X²", "max |residual|"}
    assert (checks["discrepancy"] == "pair X²").sum() == 28
    summary = checks[checks["discrepancy"].isin(["sum of pair X²", "max |residual|"])]
    assert summary["ppp"].between(0.05, 0.95).all(), summary
    measures = binary_fits["two"].fit_measures(draws=200, seed=1)
    assert measures["ppp sum of pair X²"] == pytest.approx(summary["ppp"].iloc[0])
    assert measures["pairs"] == 28 and measures["ppp"] == binary_fits["two"].ppp(draws=200, seed=1)
    binary_fits["two"].plot_predictive_checks(tmp_path / "checks.png", draws=200, seed=1)
    assert (tmp_path / "checks.png").stat().st_size > 0


def test_one_factor_for_two_fails_on_the_pairs(binary_fits):
    """One factor for two correlated at 0.3 (tetrachoric correlations about 0.69 within a set, 0.21
    across): it cannot reproduce the associations within both sets, so the X² of every pair within
    one set (at least) has PPP < 0.05, and so do the sum over the pairs and the largest residual."""
    checks = binary_fits["one"].predictive_checks(draws=200, seed=1).set_index(["discrepancy", "variables"])
    x2 = checks.xs("pair X²", level="discrepancy")["ppp"]
    within = [[f"u{a}, u{b}" for a in items for b in items if a < b] for items in (range(1, 5), range(5, 9))]
    assert any((x2[pairs] < 0.05).all() for pairs in within), x2
    assert checks.xs("sum of pair X²", level="discrepancy")["ppp"].iloc[0] < 0.05
    assert checks.xs("max |residual|", level="discrepancy")["ppp"].iloc[0] < 0.05
    assert binary_fits["one"].fit_measures(draws=200, seed=1)["pairs misfitting"] >= 6


@pytest.fixture(scope="module")
def slope_data():
    """60 clusters of 15: y = 0.5 + u_j + (0.5 + s_j) x + e with SD(u) = 0.5, SD(s) = 0.8, SD(e) = 1."""
    rng = np.random.default_rng(12)
    cluster = np.repeat(np.arange(60), 15)
    x = rng.normal(size=len(cluster))
    u, s = 0.5 * rng.normal(size=60), 0.8 * rng.normal(size=60)
    y = 0.5 + u[cluster] + (0.5 + s[cluster]) * x + rng.normal(size=len(cluster))
    return pd.DataFrame({"y": y, "x": x, "cluster": cluster})


def test_random_slope_model_reproduces_the_slopes_spread(slope_data):
    """The data's model: the cluster-level PPPs in (0.05, 0.95), and fit_measures returns them."""
    fit = bm.Model(RANDOM_SLOPE, slope_data, cluster="cluster").fit(**FIT)
    checks = fit.predictive_checks(draws=200, seed=1)
    assert list(checks["discrepancy"]) == ["var(cluster slope)", "var(cluster mean)", "var(cluster SD)"]
    assert checks["ppp"].between(0.05, 0.95).all(), checks
    measures = fit.fit_measures(draws=200, seed=1)
    assert measures["ppp var(cluster slope) y ~ x"] == checks["ppp"].iloc[0]


def test_a_fixed_slope_misses_the_slopes_spread(slope_data):
    """Without the random slope (SD 0.8) the spread of the clusters' OLS slopes has PPP < 0.05."""
    checks = bm.Model(FIXED_SLOPE, slope_data, cluster="cluster").fit(**FIT).predictive_checks(draws=200, seed=1)
    assert checks.set_index("discrepancy").loc["var(cluster slope)", "ppp"] < 0.05
