"""The three-level marginal likelihood against two oracles.

* lme4's log-likelihood of ``three_level.csv`` at its own ML estimates (an external oracle:
  the same random-intercept model, integrated by lme4's sparse Cholesky method).
* A slow, obviously correct dense reference: each whole school stacked (every unit's
  variables) as one multivariate normal, with the covariance of each level from the RAM
  formula in numpy, for a factor model with parts and covariates at all three levels and
  unbalanced classes and schools.
"""

from dataclasses import fields

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from dense_reference import DENSITY_CHECK_MODE, level_moments
from scipy.stats import multivariate_normal

import bayes_msem as bm
from bayes_msem.likelihood.moments import implied_moments
from bayes_msem.likelihood.nested import NestedLayout, NestedStatistics, nested_loglik

RANDOM_INTERCEPTS = bm.datasets.info("three_level").model  # lme4's (1 | school) + (1 | class)

FACTORS = """
level: within
  fw =~ y1 + y2 + y3
  fw ~ x
level: class
  fc =~ y1 + y2 + y3
  fc ~ c
level: school
  y1 ~ w
  y2 ~~ y2
"""


def _loglik(model: bm.Model, theta: np.ndarray) -> float:
    """The model's log-likelihood at the natural-scale θ."""
    layout, plan = NestedLayout.from_plan(model.plan), model.plan
    moments = [implied_moments(lp, pt.as_tensor_variable(theta)) for lp in plan.levels.values()]
    stats = NestedStatistics.from_data(layout, model.data)
    constants = {f.name: pt.as_tensor_variable(np.asarray(getattr(stats, f.name), dtype=float)) for f in fields(stats)}
    return float(nested_loglik(layout, moments, constants).eval(mode=DENSITY_CHECK_MODE))


def test_log_likelihood_equals_lme4_at_its_estimates():
    data = bm.datasets.load("three_level")
    model = bm.Model(RANDOM_INTERCEPTS, data, cluster=["class", "school"])
    est = bm.datasets.reference("three_level").set_index("param")["est"]
    names = model.plan.parameters["name"].to_list()
    assert names == ["within:y~x", "within:y~~y", "class:y~~y", "school:y~~y", "school:y~1"]
    theta = est[["slope_x", "var_residual", "var_class", "var_school", "intercept"]].to_numpy()
    assert _loglik(model, theta) == pytest.approx(est["loglik"], abs=1e-6)


def _data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    class_sizes = [1, 3, 2, 4, 2, 2, 3, 1, 5]
    school_of_class = [0, 0, 1, 1, 1, 2, 2, 3, 3]
    classes = np.repeat(np.arange(len(class_sizes)), class_sizes)
    schools = np.array(school_of_class)[classes]
    n = len(classes)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["y1", "y2", "y3"])
    frame += rng.normal(size=(len(class_sizes), 3))[classes] + rng.normal(size=(4, 3))[schools]
    frame["x"] = rng.normal(size=n)
    frame["c"] = rng.normal(size=len(class_sizes))[classes]
    frame["w"] = rng.normal(size=4)[schools]
    frame["class"], frame["school"] = [f"k{k}" for k in classes], schools
    return frame.sample(frac=1.0, random_state=seed)


def _dense(model: bm.Model, frame: pd.DataFrame, theta: np.ndarray) -> float:
    """Σ over schools of log N(stacked y; stacked mean, Σ_1 ⊗ units + Σ_2 ⊗ classes + Σ_3 ⊗ school)."""
    plans = list(model.plan.levels.values())
    (s1, m1, c1), (s2, m2, c2), (s3, m3, c3) = (level_moments(lp, theta) for lp in plans)
    y_names = list(plans[0].roles.observed)
    embed = [np.eye(len(y_names))[:, [y_names.index(v) for v in lp.roles.observed]] for lp in plans[1:]]
    covariates = [list(lp.roles.covariates) for lp in plans]
    total = 0.0
    for _, school in frame.groupby("school"):
        school = school.sort_values("class")
        n = len(school)
        klass = pd.factorize(school["class"])[0]
        same_class = (klass[:, None] == klass[None, :]).astype(float)
        cov = (np.kron(np.eye(n), s1) + np.kron(same_class, embed[0] @ s2 @ embed[0].T)
               + np.kron(np.ones((n, n)), embed[1] @ s3 @ embed[1].T))
        mean = np.concatenate([
            m1 + c1 @ row[covariates[0]].to_numpy(float)
            + embed[0] @ (m2 + c2 @ row[covariates[1]].to_numpy(float))
            + embed[1] @ (m3 + c3 @ row[covariates[2]].to_numpy(float))
            for _, row in school.iterrows()])
        total += multivariate_normal(mean, cov).logpdf(school[y_names].to_numpy().ravel())
    return total


def test_matches_dense_reference():
    frame = _data(seed=4)
    model = bm.Model(FACTORS, frame, cluster=["class", "school"])
    rng = np.random.default_rng(0)
    kinds = model.plan.parameters["kind"].to_numpy()
    for _ in range(3):
        theta = np.where(kinds == "variance", rng.uniform(0.3, 1.5, len(kinds)), rng.normal(scale=0.7, size=len(kinds)))
        assert _loglik(model, theta) == pytest.approx(_dense(model, frame, theta), abs=1e-8, rel=0)
