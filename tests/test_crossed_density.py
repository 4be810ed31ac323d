"""The crossed strategy's log-likelihood against a slow, obviously correct dense reference.

Given the neighbourhoods' sampled parts (their values from the RAM formula in numpy at standard
normal z), each school's rows are one multivariate normal of their stacked within variables,
with the neighbourhood parts subtracted: covariance I ⊗ Σ_W + 1 1ᵀ ⊗ Σ_S, mean from both
levels' covariates; the neighbourhood-level outcome is normal given its neighbourhood's factor.
Models with factors, covariates and an outcome in the classifications' blocks, at random θ from
the priors and random z, on unbalanced crossed data. And the conditional strategy's crossed
binary model against the Bernoulli log-density summed by hand.
"""

from dataclasses import fields

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from dense_reference import DENSITY_CHECK_MODE, fill, level_moments, observed_logpdf, point_function, stacked_cluster
from scipy.stats import norm

import bayes_msem as bm
from bayes_msem.likelihood.crossed import CrossedStatistics, crossed_disturbances, crossed_loglik
from bayes_msem.sampling.build import prior_theta

FACTORS = """
level: within
  fw =~ y1 + y2 + y3
  y1 ~ x
level: school
  fs =~ y1 + y2 + y3
  fs ~ w
level: neighbourhood
  fn =~ y1 + y2 + y3 + q
  fn ~ d
"""

INTERCEPTS = """
level: within
  y1 ~ x
  y1 ~~ y2
level: school
  y1 ~~ y1
  y2 ~~ y2
  y1 ~~ y2
level: neighbourhood
  y1 ~ d
  y2 ~~ y2
"""


def crossed_frame(seed: int, schools: int = 5, neighbourhoods: int = 4, rows: int = 40) -> pd.DataFrame:
    """Unbalanced crossed data: each row in a random school and a random neighbourhood."""
    rng = np.random.default_rng(seed)
    school, neighbourhood = rng.integers(0, schools, rows), rng.integers(0, neighbourhoods, rows)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["y1", "y2", "y3"])
    frame += rng.normal(size=(schools, 3))[school] + rng.normal(size=(neighbourhoods, 3))[neighbourhood]
    frame["x"] = rng.normal(size=rows)
    frame["w"] = rng.normal(size=schools)[school]
    frame["d"] = rng.normal(size=neighbourhoods)[neighbourhood]
    frame["q"] = rng.normal(size=neighbourhoods)[neighbourhood]
    frame["school"], frame["neighbourhood"] = [f"s{k}" for k in school], neighbourhood
    return frame.sample(frac=1.0, random_state=seed)


def strategy_loglik(model: bm.Model, theta: np.ndarray, z: list[np.ndarray | None]) -> float:
    """The crossed strategy's log-likelihood at θ and the neighbourhoods' z."""
    stats = CrossedStatistics.from_data(model.plan, model.data)
    constants = {}
    for field in fields(stats):
        value = getattr(stats, field.name)
        constants[field.name] = ([pt.as_tensor_variable(np.asarray(v, float)) for v in value]
                                 if isinstance(value, tuple) else pt.as_tensor_variable(np.asarray(value, float)))
    graph = crossed_loglik(model.plan, pt.as_tensor_variable(theta), constants,
                           [None if v is None else pt.as_tensor_variable(v) for v in z])
    return float(graph.eval(mode=DENSITY_CHECK_MODE))


def dense_loglik(model: bm.Model, frame: pd.DataFrame, theta: np.ndarray, z: np.ndarray) -> float:
    """Σ over schools of the dense normal of their rows given the neighbourhoods' parts, plus the
    neighbourhood outcomes' normal terms."""
    within, school, neighbourhood = model.plan.levels.values()
    rn = neighbourhood.roles
    _, _, chosen = crossed_disturbances(model.plan)[0][1:]
    b, g, psi, alpha = (fill(spec, theta) for spec in (neighbourhood.beta, neighbourhood.gamma, neighbourhood.psi,
                                                        neighbourhood.alpha))
    t = np.linalg.inv(np.eye(len(b)) - b)
    ids = list(dict.fromkeys(model.data.crossed[0].ids))
    d = frame.groupby("neighbourhood")[list(rn.covariates)].first().loc[ids].to_numpy()
    zeta = np.zeros((len(ids), len(b)))
    zeta[:, chosen] = z @ np.linalg.cholesky(psi[np.ix_(chosen, chosen)]).T
    values = (alpha[:, 0] + d @ g.T + zeta) @ t.T                       # v_n = T (α + Γ d_n + ζ_n)
    part = pd.DataFrame(values, index=ids, columns=neighbourhood.variables)
    total = 0.0
    outcomes = [v for v in rn.observed if v not in within.roles.observed]
    for v in outcomes:
        observed = frame.groupby("neighbourhood")[v].first().loc[ids].to_numpy()
        total += norm(part[v].to_numpy(), np.sqrt(psi[rn.observed.index(v), rn.observed.index(v)])).logpdf(observed).sum()
    adjusted = frame.copy()
    for v in within.roles.observed:
        if v in part:
            adjusted[v] = frame[v] - part.loc[frame["neighbourhood"], v].to_numpy()
    moments_w = level_moments(within, theta)
    sb, mb, cb = level_moments(school, theta)
    for _, rows in adjusted.groupby("school"):
        w = rows[list(school.roles.covariates)].to_numpy()[0]
        total += observed_logpdf(*stacked_cluster(rows, within.roles, school.roles, moments_w, (mb + cb @ w, sb)))
    return total


@pytest.mark.parametrize("syntax", [FACTORS, INTERCEPTS], ids=["factors", "intercepts"])
def test_crossed_loglik_equals_dense_reference(syntax):
    frame = crossed_frame(3)
    model = bm.Model(syntax, frame, cluster=["school", "neighbourhood"], crossed=True)
    assert model.strategy.name == "crossed"
    thetas = prior_theta(model.pymc_model, model.plan, 3, seed=11)
    rng = np.random.default_rng(5)
    (_, _, _, chosen), = crossed_disturbances(model.plan)
    for theta in thetas:
        z = rng.standard_normal((model.data.crossed[0].n_clusters, len(chosen)))
        expected = dense_loglik(model, frame, theta, z)
        assert strategy_loglik(model, theta, [z]) == pytest.approx(expected, rel=1e-8)


def test_conditional_crossed_loglik_equals_bernoulli_sum():
    """A binary persons × items model (conditional strategy): the model's log-likelihood at a random
    point is Σ_i log Bernoulli(y_i; logit⁻¹(β x_i + a_p(i) + b_t(i))) with a_p = σ_p z_p and
    b_t = ν + σ_t z_t from its sampled z."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"person": rng.integers(0, 12, 90), "item": rng.integers(0, 5, 90)})
    frame = frame.assign(x=rng.normal(size=90), y=rng.integers(0, 2, 90))
    syntax = "level: within\n y ~ x\nlevel: person\n y ~~ y\nlevel: item\n y ~~ y"
    model = bm.Model(syntax, frame, cluster=["person", "item"], crossed=True, family={"y": "bernoulli"})
    assert model.strategy.name == "conditional"
    values = point_function(model.pymc_model, ["theta", "between_z", "upper_z", "loglik"])
    point = {k: v + rng.normal(size=np.shape(v)) for k, v in model.pymc_model.initial_point().items()}
    theta, person_z, item_z, loglik = values(point)
    theta = dict(zip(model.plan.parameters["name"], theta))
    data = model.data
    person = np.sqrt(theta["person:y~~y"]) * person_z[:, 0]
    item = theta["item:y~1"] + np.sqrt(theta["item:y~~y"]) * item_z[:, 0]
    eta = theta["within:y~x"] * data.column("x") + person[data.cluster_index] + item[data.crossed[0].index]
    y = data.column("y")
    assert loglik == pytest.approx((y * eta - np.logaddexp(0.0, eta)).sum(), rel=1e-10)
