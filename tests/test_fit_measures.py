"""Model fit: the chi-square discrepancy against lavaan, cluster-wise log-likelihood against a dense
normal, PPP on true and misspecified models, Bayesian fit indices, and LOO model choice."""

import numpy as np
import pandas as pd
import pytest
from dense_reference import dense_cluster_logliks
from scipy.stats import multivariate_normal
from test_nested_density import RANDOM_INTERCEPTS
from test_reference import RANDOM_SLOPE_MODEL

import bayes_msem as bm
from bayes_msem.results.fit_measures import GaussianFunctions, SaturatedModel, baseline_syntax, chi_square

DEMO = bm.template("twolevel_sem_demo")
# the Demo model with y3's within loading dropped: y3 uncorrelated with y1, y2 and x within clusters
DEMO_WITHOUT_Y3 = DEMO.replace("fw =~ y1 + y2 + y3", "fw =~ y1 + y2\n  y3 ~~ y3")
HS = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""


def _lavaan_theta(plan, reference: pd.DataFrame) -> np.ndarray:
    """θ at lavaan's estimates: each free parameter's (level, lhs, op, rhs) row of ``reference``."""
    theta = np.empty(len(plan.parameters))
    for k, row in plan.parameters.iterrows():
        op = plan.table.loc[plan.table["free"] == row["free"], "op"].iloc[0]
        hit = reference[(reference["lhs"] == row["lhs"]) & (reference["op"] == op)
                        & (reference["rhs"] == (row["rhs"] or "")) & (reference["level"] == row["level"])]
        theta[k] = hit["est"].iloc[0]
    return theta


@pytest.fixture(scope="module")
def demo_data():
    return bm.datasets.load("demo_twolevel")


@pytest.fixture(scope="module")
def demo_functions(demo_data):
    model = bm.Model(DEMO, demo_data, cluster="cluster")
    return GaussianFunctions(model.plan, model.data), _lavaan_theta(model.plan, bm.datasets.reference("demo_twolevel"))


def test_demo_chi_square_at_lavaan_estimates_is_lavaans(demo_functions):
    """At lavaan's ML estimates: ℓ = −12076.566 (lavaan's, in bm.datasets.describe) and the likelihood-ratio
    statistic against the saturated two-level model is lavaan's 8.092 on 10 degrees of freedom
    (30 sample statistics − 20 parameters; lavaan's multilevel tutorial reports 8.092, df 10)."""
    functions, theta = demo_functions
    assert functions.loglik(theta) == pytest.approx(-12076.566, abs=1e-3)
    saturated = SaturatedModel(functions.layout, functions.statistics)
    best, _ = saturated.maximise(functions.statistics, saturated.start(functions.data))
    assert saturated.n_parameters == 30
    assert 2 * (best - functions.loglik(theta)) == pytest.approx(8.092, abs=2e-3)


def test_holzinger_swineford_chi_square_at_lavaan_estimates_is_lavaans():
    """Single level: lavaan's chi-square of the three-factor CFA is 85.306 on 24 degrees of freedom
    (54 sample statistics with means − 30 parameters)."""
    data = bm.datasets.load("holzinger_swineford")
    model = bm.Model(HS, data)
    reference = bm.datasets.reference("holzinger_swineford").assign(level="")
    functions = GaussianFunctions(model.plan, model.data)
    theta = _lavaan_theta(model.plan, reference)
    saturated = SaturatedModel(functions.layout, functions.statistics)
    best, _ = saturated.maximise(functions.statistics, saturated.start(functions.data))
    assert saturated.n_parameters == 54
    assert 2 * (best - functions.loglik(theta)) == pytest.approx(85.306, abs=2e-3)


def test_replicated_discrepancy_at_fixed_theta_is_chi_square(demo_functions):
    """At a fixed θ the discrepancy of data replicated from θ is asymptotically χ² with p* = 30
    degrees of freedom: over 200 replications its mean (SE 0.55) lies within 2.5 of 30 and its
    variance near 60. This checks the replication and the saturated maximum together."""
    functions, theta = demo_functions
    replicated = chi_square(functions, np.tile(theta, (200, 1)), seed=3).replicated
    assert abs(replicated.mean() - 30) < 2.5
    assert 35 < replicated.var() < 95


def test_cluster_loglik_matches_dense_reference():
    """log p(y_j | θ) per cluster equals a dense normal of the cluster's stacked vector (1e-8),
    with within and cluster-level covariates and a cluster-level outcome."""
    rng = np.random.default_rng(5)
    sizes = [1, 2, 5, 3, 3, 4]
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    frame = pd.DataFrame(rng.normal(size=(len(cluster), 4)), columns=["y1", "y2", "y3", "x1"])
    frame += rng.normal(size=(len(sizes), 4))[cluster]
    frame["w1"] = rng.normal(size=len(sizes))[cluster]
    frame["z"] = rng.normal(size=len(sizes))[cluster]
    frame["cluster"] = cluster
    syntax = """
    level: within
      f =~ y1 + y2 + y3
      f ~ x1
    level: between
      fb =~ y1 + y2 + y3
      fb ~ w1
      z ~ fb
    """
    model = bm.Model(syntax, frame, cluster="cluster")
    functions = GaussianFunctions(model.plan, model.data)
    theta = model.plan.parameters["kind"].map({"variance": 0.7, "loading": 0.8}).fillna(0.3).to_numpy()
    expected = dense_cluster_logliks(model.plan, frame, theta)
    np.testing.assert_allclose(functions.cluster_loglik(theta), [expected[c] for c in model.data.cluster_ids],
                               atol=1e-8, rtol=0)
    assert functions.cluster_loglik(theta).sum() == pytest.approx(functions.loglik(theta), abs=1e-8)


def test_baseline_is_the_independence_model_with_the_same_covariates():
    plan = bm.Model(DEMO, bm.datasets.load("demo_twolevel"), cluster="cluster").plan
    assert baseline_syntax(plan).split("\n") == [
        "level: within", "y1 ~~ y1", "y2 ~~ y2", "y3 ~~ y3", "y1 ~ 0*x1 + 0*x2 + 0*x3",
        "level: between", "y1 ~~ y1", "y2 ~~ y2", "y3 ~~ y3", "y1 ~ 0*w1 + 0*w2"]


@pytest.fixture(scope="module")
def demo_fits(demo_data):
    fit = bm.Model(DEMO, demo_data, cluster="cluster").fit(draws=500, tune=500, chains=2, random_seed=1)
    wrong = bm.Model(DEMO_WITHOUT_Y3, demo_data, cluster="cluster").fit(draws=500, tune=500, chains=2, random_seed=1)
    return fit, wrong


def test_ppp_and_indices_accept_the_true_model_and_reject_a_dropped_loading(demo_fits):
    """Demo.twolevel with its own model: PPP well above 0.1 (0.60 measured), BRMSEA near 0 and
    BCFI near 1. Without y3's within loading: PPP < 0.05, BRMSEA and BCFI clearly worse."""
    fit, wrong = demo_fits
    measures = fit.fit_measures(seed=1)
    assert measures["ppp"] > 0.1
    assert measures["moments"] == 30 and 8 < measures["df"] < 12  # 30 − p_D, p_D ≈ 20 parameters
    assert measures["BRMSEA"] < 0.03 and measures["BCFI"] > 0.98
    worse = wrong.fit_measures(seed=1)
    assert worse["ppp"] < 0.05
    assert worse["BRMSEA"] > 0.05 and worse["BCFI"] < measures["BCFI 2.5%"]


def test_loo_and_waic_are_per_cluster(demo_fits):
    fit, wrong = demo_fits
    log_likelihood = fit.log_likelihood()
    assert log_likelihood.sizes["unit"] == 200
    loo, waic = fit.loo(), fit.waic()
    assert loo.n_data_points == 200 and (loo.pareto_k.values < loo.good_k).all()
    assert waic["elpd_waic"] == pytest.approx(loo.elpd, abs=1.0)
    ranked = bm.compare({"true": fit, "y3 dropped": wrong})
    assert ranked.index[0] == "true"


@pytest.mark.slow
def test_loo_prefers_the_data_generating_model():
    """Two within factors simulated; the one-factor model loses under leave-one-cluster-out LOO by
    more than two SEs of the difference."""
    rng = np.random.default_rng(11)
    clusters, size = 60, 8
    cluster = np.repeat(np.arange(clusters), size)
    factors = rng.multivariate_normal([0, 0], [[1, 0.3], [0.3, 1]], size=len(cluster))
    loadings = np.array([[1, 0], [0.8, 0], [0.7, 0], [0, 1], [0, 0.8], [0, 0.7]])
    y = factors @ loadings.T + rng.normal(scale=0.6, size=(len(cluster), 6))
    y += rng.normal(scale=0.5, size=(clusters, 6))[cluster]
    frame = pd.DataFrame(y, columns=[f"y{k}" for k in range(1, 7)]).assign(cluster=cluster)
    between = "\nlevel: between\n" + "\n".join(f"y{k} ~~ y{k}" for k in range(1, 7))
    two = "level: within\n f1 =~ y1 + y2 + y3\n f2 =~ y4 + y5 + y6" + between
    one = "level: within\n f =~ y1 + y2 + y3 + y4 + y5 + y6" + between
    fits = {name: bm.Model(syntax, frame, cluster="cluster").fit(draws=300, tune=300, chains=2, random_seed=2)
            for name, syntax in [("two factors", two), ("one factor", one)]}
    ranked = bm.compare(fits)
    assert ranked.index[0] == "two factors"
    worse = ranked.loc["one factor"]
    assert -worse["elpd_diff"] > 2 * worse["dse"]  # elpd_diff = elpd(one) − elpd(two) < 0


def test_fit_measures_explain_what_they_cover():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "cluster": np.repeat(np.arange(10), 4)})
    model = bm.Model("level: within\n s | y ~ x\nlevel: between\n y ~~ y\n s ~~ s", frame, cluster="cluster")
    from bayes_msem.results.fit_measures import check_supported
    with pytest.raises(NotImplementedError, match="random intercepts only"):
        check_supported(model.plan, model.data, "PPP")


def test_unit_loglik_of_random_slopes_and_three_levels_sums_to_lme4():
    """With integrated random slopes and with three levels the log-likelihood of each cluster (each
    school) is evaluated on its own data; at lme4's ML estimates the units add up to lme4's
    log-likelihood (−2246.833 and −1442.958), and a school's value is a dense normal of its rows."""
    slopes = bm.datasets.reference("random_slope").set_index("param")["est"]
    model = bm.Model(RANDOM_SLOPE_MODEL, bm.datasets.load("random_slope"), cluster="school")
    values = {"within:y~~y": "var_residual", "between:y~1": "intercept", "between:s~1": "slope_x",
              "between:y~~y": "var_intercept", "between:s~~s": "var_slope", "between:y~~s": "cov_intercept_slope"}
    theta = slopes[model.plan.parameters["name"].map(values)].to_numpy()
    units = GaussianFunctions(model.plan, model.data).cluster_loglik(theta)
    assert len(units) == 100 and units.sum() == pytest.approx(slopes["loglik"], abs=1e-6)

    three = bm.datasets.reference("three_level").set_index("param")["est"]
    data = bm.datasets.load("three_level")
    model = bm.Model(RANDOM_INTERCEPTS, data, cluster=["class", "school"])
    theta = three[["slope_x", "var_residual", "var_class", "var_school", "intercept"]].to_numpy()
    functions = GaussianFunctions(model.plan, model.data)
    units = functions.cluster_loglik(theta)
    assert len(units) == 60 and units.sum() == pytest.approx(three["loglik"], abs=1e-6)
    school = data[data["school"] == model.data.top_ids()[0]]
    same_class = (school["class"].to_numpy()[:, None] == school["class"].to_numpy()[None, :])
    cov = three["var_school"] + three["var_class"] * same_class + three["var_residual"] * np.eye(len(school))
    mean = three["intercept"] + three["slope_x"] * school["x"].to_numpy()
    assert units[0] == pytest.approx(multivariate_normal(mean, cov).logpdf(school["y"].to_numpy()), abs=1e-8)


def test_unit_loglik_with_missing_cells_matches_dense_reference(demo_data):
    """Missing cells (the pattern form): each cluster's value is the dense normal of its observed cells."""
    frame = demo_data[demo_data["cluster"] <= 12].copy()
    frame.loc[frame.index[::7], "y2"] = np.nan
    frame.loc[frame.index[3::11], "y3"] = np.nan
    model = bm.Model(DEMO, frame, cluster="cluster")
    theta = model.plan.parameters["kind"].map({"variance": 0.6, "loading": 0.9}).fillna(0.2).to_numpy()
    expected = dense_cluster_logliks(model.plan, frame, theta)
    np.testing.assert_allclose(GaussianFunctions(model.plan, model.data).cluster_loglik(theta),
                               [expected[c] for c in model.data.cluster_ids], atol=1e-8, rtol=0)


def test_holzinger_swineford_fit_indices_match_lavaan():
    """The three-factor CFA misfits (lavaan: chi-square 85.306 on 24 df, RMSEA 0.092, CFI 0.931,
    TLI 0.896). With vague priors the Bayesian indices sit near them (BRMSEA uses T − p* over
    (p* − p_D) N, and T ≈ chi-square + p_D per draw): within 0.015 for BRMSEA and 0.03 for BCFI and
    BTLI, which covers their posterior spread; the PPP is 0."""
    data = bm.datasets.load("holzinger_swineford")
    fit = bm.Model(HS, data).fit(draws=500, tune=500, chains=2, random_seed=1)
    measures = fit.fit_measures(seed=1)
    assert measures["ppp"] < 0.01 and measures["moments"] == 54
    assert measures["BRMSEA"] == pytest.approx(0.092, abs=0.015)
    assert measures["BCFI"] == pytest.approx(0.931, abs=0.03)
    assert measures["BTLI"] == pytest.approx(0.896, abs=0.03)
