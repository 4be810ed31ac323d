"""Replicated data against closed-form moments and family probabilities; prior and posterior
predictive draws and plots; the moment PPP on a random-slope model with and without its residual
covariance."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit
from scipy.stats import gaussian_kde, norm

import bayes_msem as bm
from bayes_msem.likelihood.families import parse_family
from bayes_msem.results.predictive import plot_predictive
from bayes_msem.simulation.simulator import Simulator

RANDOM_SLOPE = """
level: within
  s | y ~ x
level: between
  y ~ w
  s ~ 1
  y ~~ s
"""


def test_family_draws_follow_their_distributions():
    """Means over 200,000 draws within 4 Monte Carlo SEs of the family's probabilities and moments."""
    rng = np.random.default_rng(0)
    eta = np.full(200_000, 0.4)
    for link, cdf in (("logit", expit), ("probit", norm.cdf)):
        y = parse_family(f"bernoulli({link})").draw(eta, rng)
        assert abs(y.mean() - cdf(0.4)) < 4 * np.sqrt(cdf(0.4) * (1 - cdf(0.4)) / len(y))
        cuts = np.array([-0.5, 0.3, 1.2])
        y = parse_family(f"ordinal({link})").draw(eta, rng, thresholds=cuts)
        below = cdf(np.concatenate([cuts, [np.inf]]) - 0.4)
        shares = np.diff(np.concatenate([[0.0], below]))
        np.testing.assert_allclose(np.bincount(y.astype(int), minlength=4) / len(y), shares,
                                   atol=4 * np.sqrt(0.25 / len(y)))
    y = parse_family("poisson").draw(eta, rng)
    assert abs(y.mean() - np.exp(0.4)) < 4 * np.sqrt(np.exp(0.4) / len(y))
    alpha, mean = 0.5, np.exp(0.4)
    y = parse_family("negbinomial").draw(eta, rng, dispersion=1 / alpha)
    assert abs(y.mean() - mean) < 4 * np.sqrt((mean + alpha * mean**2) / len(y))
    assert y.var() == pytest.approx(mean + alpha * mean**2, rel=0.05)


def test_random_slope_replicates_have_the_mixed_model_moments():
    """Replicated clusters of y = β₀ + β_w w_j + u_j + s_j x_ij + e_ij with (u_j, s_j) ~ N(μ, G):
    the stacked cluster vectors' mean (μ_u + β_w w + μ_s x) and covariance (Z G Zᵀ + σ² I, Z = [1, x])
    over 20,000 replications match the closed form within Monte Carlo error."""
    frame = pd.DataFrame({"x": [-1.0, 0.5, 1.5, 0.0, 2.0], "w": [0.3, 0.3, -1.0, -1.0, -1.0],
                          "y": [0.1, 0.2, 0.3, 0.4, 0.5], "cluster": [0, 0, 1, 1, 1]})
    model = bm.Model(RANDOM_SLOPE, frame, cluster="cluster")
    values = {"within:y~~y": 0.5, "between:y~w": 0.7, "between:s~1": 0.4, "between:y~1": 1.0,
              "between:y~~y": 0.8, "between:s~~s": 0.3, "between:y~~s": 0.2}
    theta = model.plan.parameters["name"].map(values).to_numpy()
    assert not np.isnan(theta).any()
    simulator, rng = Simulator(model.plan, model.data), np.random.default_rng(1)
    draws = np.stack([simulator.replicate(theta, rng)["y"] for _ in range(20_000)])
    x, w = model.data.column("x"), model.data.column("w")
    mean = 1.0 + 0.7 * w + 0.4 * x
    z = np.column_stack([np.ones_like(x), x])
    same = model.data.cluster_index[:, None] == model.data.cluster_index[None, :]
    cov = same * (z @ np.array([[0.8, 0.2], [0.2, 0.3]]) @ z.T) + 0.5 * np.eye(len(x))
    assert (np.abs(draws.mean(0) - mean) < 4 * np.sqrt(np.diag(cov) / len(draws))).all()
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.06)


@pytest.fixture(scope="module")
def two_outcomes():
    """Two outcomes with a random slope of y1 on x and a within residual covariance of 0.5."""
    rng = np.random.default_rng(7)
    clusters, size = 60, 12
    cluster = np.repeat(np.arange(clusters), size)
    x = rng.normal(size=len(cluster))
    slope = 0.5 + 0.4 * rng.normal(size=clusters)
    e = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=len(cluster))
    u = 0.6 * rng.normal(size=(clusters, 2))
    y1 = slope[cluster] * x + u[cluster, 0] + e[:, 0]
    y2 = 0.3 * x + u[cluster, 1] + e[:, 1]
    return pd.DataFrame({"y1": y1, "y2": y2, "x": x, "cluster": cluster})


def _two_outcome_syntax(residual_covariance: bool) -> str:
    # both outcomes' residuals covary by default (lavaan's auto.cov.y): the wrong model fixes it to 0
    return ("level: within\n  s | y1 ~ x\n  y2 ~ x\n" + ("" if residual_covariance else "  y1 ~~ 0*y2\n")
            + "level: between\n  s ~ 1\n  y1 ~~ y2\n")


@pytest.fixture(scope="module")
def two_outcome_fit(two_outcomes):
    return (bm.Model(_two_outcome_syntax(True), two_outcomes, cluster="cluster")
            .fit(draws=300, tune=300, chains=2, random_seed=3))


def test_moment_ppp_accepts_the_true_random_slope_model(two_outcome_fit):
    """Random slopes leave the chi-square to Gaussian random-intercept models; the moment
    discrepancy of the true model gives PPP > 0.1."""
    assert two_outcome_fit.ppp(draws=300, seed=1) > 0.1


@pytest.mark.slow
def test_moment_ppp_rejects_a_missing_residual_covariance(two_outcomes):
    """Without the within residual covariance of 0.5 the moment PPP falls below 0.05."""
    wrong = bm.Model(_two_outcome_syntax(False), two_outcomes, cluster="cluster")
    assert wrong.fit(draws=300, tune=300, chains=2, random_seed=3).ppp(draws=300, seed=1) < 0.05


def test_prior_and_posterior_predictive_draws_and_plots(two_outcomes, two_outcome_fit, tmp_path):
    model = bm.Model(_two_outcome_syntax(True), two_outcomes, cluster="cluster")
    prior = model.sample_prior_predictive(draws=40, random_seed=2)
    assert set(prior.children) == {"prior", "prior_predictive", "observed_data"}
    assert prior["prior_predictive"]["y1"].shape == (1, 40, len(two_outcomes))
    assert np.isfinite(prior["prior_predictive"]["y2"].values).all()
    model.plot_prior_predictive(tmp_path / "prior.png", draws=20, random_seed=2)
    predictive = two_outcome_fit.sample_posterior_predictive(draws=60, random_seed=4)
    assert predictive["y1"].dims == ("chain", "draw", "row") and predictive.sizes["draw"] == 30
    # replicated data resemble the data: the overall SD of y1 within 15% of the observed one
    assert predictive["y1"].std().item() == pytest.approx(two_outcomes["y1"].std(), rel=0.15)
    figure = two_outcome_fit.plot_posterior_predictive(tmp_path / "posterior.png")
    for name in ("prior.png", "posterior.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # beside the values' distribution, the cluster means' and the within-cluster SDs', per outcome
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [f"{v}: {s}" for s in ("values", "cluster means", "within-cluster SDs") for v in ("y1", "y2")]
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["replicated", "observed"]
    observed = {ax.get_title(): ax.get_lines()[-1] for ax in figure.axes}  # drawn last, over the replicated sets
    for title, statistic in (("y1: cluster means", "mean"), ("y2: within-cluster SDs", "std")):
        line = observed[title]
        statistics = np.round(two_outcomes.groupby("cluster")[title[:2]].agg(statistic), 9)  # as the plot rounds
        expected = gaussian_kde(statistics)(line.get_xdata())
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-9)
    assert len(figure.axes[2].get_lines()) == 40 + 1  # 40 of the 60 replicated sets, and the data


def test_predictive_plot_of_a_binary_item_shows_proportions():
    """A 0/1 item's values (and cluster SDs) take few values: proportions, the observed one a dot."""
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(20), 4)
    y = (rng.random(80) < 0.3).astype(float)
    frame = pd.DataFrame({"y": y, "cluster": cluster})
    replicated = (rng.random((1, 5, 80)) < 0.3).astype(float)
    tree = xr.DataTree.from_dict({
        "posterior_predictive": xr.Dataset({"y": (("chain", "draw", "row"), replicated)}),
        "observed_data": xr.Dataset({"y": ("row", y)}, coords={"cluster": ("row", cluster)})})
    figure = plot_predictive(tree, "posterior_predictive")
    values = figure.axes[0]
    assert values.get_ylabel() == "proportion" and list(values.get_lines()[-1].get_xdata()) == [0.0, 1.0]
    np.testing.assert_allclose(values.get_lines()[-1].get_ydata(), [1 - y.mean(), y.mean()])
    np.testing.assert_allclose(values.get_lines()[0].get_ydata()[1], replicated[0, 0].mean())
    sds = np.round(frame.groupby("cluster")["y"].std(), 9).value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(figure.axes[2].get_lines()[-1].get_ydata(), sds.to_numpy())
