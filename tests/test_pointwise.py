"""The cluster log-likelihood of hybrid and conditional fits by importance sampling, against the
exact marginal of the same model (integrated strategies) and Gauss-Hermite quadrature (logit)."""


import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import bayes_msem as bm
from bayes_msem.likelihood.conditional import Conditional
from bayes_msem.likelihood.hybrid import Hybrid
from bayes_msem.results.fit_measures import GaussianFunctions
from bayes_msem.results.pointwise import WIDEN, SampledLikelihood

SIZES = [3, 5, 2, 4, 6, 3]
IMPORTANCE_DRAWS = 3000


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(len(SIZES)), SIZES)
    x = rng.normal(size=len(cluster))
    slope = 0.5 + 0.3 * rng.normal(size=len(SIZES))
    y = 1 + slope[cluster] * x + 0.5 * rng.normal(size=len(SIZES))[cluster] + 0.7 * rng.normal(size=len(cluster))
    return pd.DataFrame({"x": x, "y": y, "u": (y > 1.2).astype(float), "cluster": cluster})


def _prior_like(likelihood: SampledLikelihood) -> dict:
    """A proposal of mean 0 and SD 1.25 for every z element (the test's clusters are small)."""
    return {name: (np.zeros((len(units), width)), np.full((len(units), width), WIDEN))
            for name, (_, units, width) in likelihood.inputs.items()}


def _theta(model, values: dict) -> np.ndarray:
    theta = model.plan.parameters["name"].map(values).to_numpy()
    assert not np.isnan(theta).any()
    return theta


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing-cells"])
def test_hybrid_cluster_loglik_matches_the_integrated_random_slopes(frame, missing):
    """The same random-slope model planned as hybrid (slopes sampled): importance sampling over
    the slopes reproduces the exact per-cluster marginal (slopes integrated out) within 0.06, with
    complete data and with missing cells."""
    if missing:
        frame = frame.assign(y=frame["y"].where(frame.index % 4 != 1))
    model = bm.Model("level: within\n s | y ~ x\nlevel: between\n y ~~ s", frame, cluster="cluster")
    theta = _theta(model, {"within:y~~y": 0.5, "between:y~1": 1.0, "between:s~1": 0.5, "between:y~~y": 0.3,
                           "between:s~~s": 0.1, "between:y~~s": 0.05})
    exact = GaussianFunctions(model.plan, model.data).cluster_loglik(theta)
    likelihood = SampledLikelihood(model.plan, model.data, Hybrid())
    estimate = likelihood.integrated(theta, _prior_like(likelihood), IMPORTANCE_DRAWS, np.random.default_rng(1))
    np.testing.assert_allclose(estimate, exact, atol=0.06)


def test_conditional_cluster_loglik_matches_the_marginal(frame):
    """A Gaussian random-intercept model planned as conditional (intercepts sampled)."""
    model = bm.Model("level: within\n y ~ x\nlevel: between\n y ~~ y", frame, cluster="cluster")
    theta = _theta(model, {"within:y~x": 0.5, "within:y~~y": 0.8, "between:y~~y": 0.4, "between:y~1": 1.0})
    exact = GaussianFunctions(model.plan, model.data).cluster_loglik(theta)
    likelihood = SampledLikelihood(model.plan, model.data, Conditional())
    assert list(likelihood.inputs) == ["between_z"]
    estimate = likelihood.integrated(theta, _prior_like(likelihood), IMPORTANCE_DRAWS, np.random.default_rng(1))
    np.testing.assert_allclose(estimate, exact, atol=0.06)


def test_logit_cluster_loglik_matches_quadrature(frame):
    """Logit random intercept: log ∫ Π_i Bernoulli(u_ij; expit(β₀ + β₁x_ij + τb)) φ(b) db by 60-point
    Gauss-Hermite quadrature."""
    model = bm.Model("level: within\n u ~ x\nlevel: between\n u ~~ u", frame, cluster="cluster",
                     family={"u": "bernoulli"})
    theta = _theta(model, {"within:u~x": 0.8, "between:u~~u": 0.9, "between:u~1": -0.3})
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    expected = []
    for _, rows in frame.groupby("cluster"):
        p = expit(-0.3 + 0.8 * rows["x"].to_numpy()[:, None] + np.sqrt(0.9) * nodes[None, :])
        like = np.prod(np.where(rows["u"].to_numpy()[:, None] == 1, p, 1 - p), axis=0)
        expected.append(np.log((weights * like).sum() / np.sqrt(2 * np.pi)))
    likelihood = SampledLikelihood(model.plan, model.data)
    estimate = likelihood.integrated(theta, _prior_like(likelihood), IMPORTANCE_DRAWS, np.random.default_rng(1))
    np.testing.assert_allclose(estimate, expected, atol=0.03)


def test_rows_latent_variables_are_integrated_row_by_row_as_nested_quadrature():
    """A two-level logit factor model (a within factor per row, a random intercept of u1 per cluster):
    nested importance sampling (each row's factor inside each draw of its cluster's intercept)
    against nested 40 x 40-point Gauss-Hermite quadrature,
    log ∫ Π_i [∫ Π_v Bernoulli(u_iv; expit(ν_v + λ_v √ψ f + [v = 1] τ b)) φ(f) df] φ(b) db.
    With these (prior-like) proposals the estimate's SD is about 0.02 (seeds 0-3 of 300 x 30 draws
    gave errors within ±0.05, of both signs), so 0.06 is three SDs."""
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(len(SIZES)), SIZES)
    f, b = rng.normal(size=len(cluster)), rng.normal(size=len(SIZES))[cluster]
    frame = pd.DataFrame({"u1": (rng.random(len(cluster)) < expit(0.3 + f + 0.8 * b)).astype(float),
                          "u2": (rng.random(len(cluster)) < expit(-0.2 + 1.2 * f)).astype(float), "cluster": cluster})
    model = bm.Model("level: within\n fw =~ u1 + u2\nlevel: between\n u1 ~~ u1\n u2 ~~ 0*u2", frame,
                     cluster="cluster", family={"u1": "bernoulli", "u2": "bernoulli"})
    values = {"within:fw=~u2": 1.2, "within:fw~~fw": 1.5, "between:u1~~u1": 0.64, "between:u1~1": 0.3,
              "between:u2~1": -0.2}
    theta = _theta(model, values)
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / np.sqrt(2 * np.pi)
    expected = []
    for _, rows in frame.groupby("cluster"):
        fw = np.sqrt(1.5) * nodes[None, :, None]                                     # (row, f node, b node)
        eta1 = 0.3 + fw + 0.8 * nodes[None, None, :]
        eta2 = -0.2 + 1.2 * fw
        like = [np.where(rows[v].to_numpy()[:, None, None] == 1, expit(eta), expit(-eta))
                for v, eta in (("u1", eta1), ("u2", eta2))]
        per_row = np.einsum("f,rfb->rb", weights, like[0] * like[1])             # each row's integral over f
        expected.append(np.log(weights @ np.prod(per_row, axis=0)))
    likelihood = SampledLikelihood(model.plan, model.data)
    assert likelihood.rows == "within_z" and list(likelihood.inputs) == ["between_z", "within_z"]
    estimate = likelihood.integrated(theta, _prior_like(likelihood), 1000, np.random.default_rng(1), row_draws=20)
    np.testing.assert_allclose(estimate, expected, atol=0.06)


@pytest.mark.slow
def test_loo_of_a_logit_fit_prefers_the_data_generating_model():
    """Leave-one-cluster-out LOO of conditional (logit random-intercept) fits: the model with the
    covariate that generated the data wins by more than two SEs, and every Pareto k is fine."""
    rng = np.random.default_rng(4)
    clusters, size = 60, 10
    cluster = np.repeat(np.arange(clusters), size)
    x = rng.normal(size=len(cluster))
    u = rng.random(len(cluster)) < expit(-0.2 + 1.2 * x + rng.normal(size=clusters)[cluster])
    data = pd.DataFrame({"u": u.astype(float), "x": x, "z": rng.normal(size=len(cluster)), "cluster": cluster})
    fits = {name: bm.Model(f"level: within\n u ~ {covariate}\nlevel: between\n u ~~ u", data, cluster="cluster",
                           family={"u": "bernoulli"}).fit(draws=1000, tune=500, chains=2, random_seed=1)
            for name, covariate in [("x", "x"), ("noise", "z")]}
    fits["x"].log_likelihood(draws=1000)  # Pareto k from 1000 draws: its estimate and ArviZ's bound for them
    loo = fits["x"].loo()
    assert loo.n_data_points == clusters and (loo.pareto_k.values < loo.good_k).all()
    ranked = bm.compare(fits)
    assert ranked.index[0] == "x" and -ranked.loc["noise", "elpd_diff"] > 2 * ranked.loc["noise", "dse"]
