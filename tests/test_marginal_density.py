"""The marginal likelihood equals a slow, obviously correct dense reference.

The reference stacks each whole cluster — every unit's within variables plus the
cluster-level variables once — and evaluates one multivariate normal over it,
with the covariance built from the level matrices by the RAM formula in numpy.
Agreement to 1e-8 shows that the sufficient-statistic form (cluster means,
pooled within scatter, one factorisation per distinct cluster size, embeddings,
covariates at both levels, constants) is exact.
"""

from dataclasses import fields

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from dense_reference import DENSITY_CHECK_MODE, dense_cluster_logliks, level_moments, observed_logpdf, point_function

import bayes_msem as bm
from bayes_msem.likelihood.gaussian import Layout
from bayes_msem.likelihood.moments import implied_moments, path_length
from bayes_msem.likelihood.patterns import PatternStatistics, pattern_loglik

TWO_LEVEL = """
level: within
  fw =~ y1 + y2 + y3
  fw ~ x1
  y4 ~ x1
level: between
  fb =~ y1 + y2 + y3
  fb ~ w1
  z ~ fb
"""

LATENT_COVARIATE = """
level: within
  fw =~ y1 + y2 + y3
  fw ~ x1
level: between
  fb =~ y1 + y2 + y3
  fb ~ x1 + w1
"""

SINGLE_LEVEL = """
f =~ y1 + y2 + y3 + y4
f ~ x1
y1 ~~ y2
"""


NON_RECURSIVE = """
y1 ~ y2 + x1
y2 ~ y1 + w1
"""


def _remove_cells(frame, names, share, seed):
    """Set a share of the cells of ``names`` to NaN at random, and one row's cells all at once."""
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    cells = frame[names].to_numpy(copy=True)
    cells[rng.random(cells.shape) < share] = np.nan
    cells[0] = np.nan
    frame[names] = cells
    return frame


def _data(sizes, seed):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    n = len(cluster)
    frame = pd.DataFrame(rng.normal(size=(n, 5)), columns=["y1", "y2", "y3", "y4", "x1"])
    frame += rng.normal(size=(len(sizes), 5))[cluster]  # between variation
    frame["w1"] = rng.normal(size=len(sizes))[cluster]
    frame["z"] = rng.normal(size=len(sizes))[cluster]
    frame["cluster"] = cluster
    return frame.sample(frac=1.0, random_state=seed)  # rows out of cluster order


def _dense_two_level(model, theta):
    return sum(dense_cluster_logliks(model.plan, model._frame, theta).values())


def _dense_single_level(model, theta):
    s, m, c = level_moments(model.plan.levels[""], theta)
    roles = model.plan.levels[""].roles
    frame = model._frame
    y, x = frame[list(roles.observed)].to_numpy(), frame[list(roles.covariates)].to_numpy()
    return sum(observed_logpdf(yi, m + c @ xi, s) for yi, xi in zip(y, x))


def _at_random_point(model, seed):
    """θ and the model's log-likelihood at a random point of the unconstrained space."""
    pm_model = model.pymc_model
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
    theta, loglik = point_function(pm_model, ["theta", "loglik"])(point)
    return np.asarray(theta), float(loglik)


@pytest.mark.parametrize("syntax", [TWO_LEVEL, LATENT_COVARIATE], ids=["within-only-and-between-only", "latent-covariate"])
@pytest.mark.parametrize("sizes", [[1, 2, 5, 3, 3, 1, 4], [3] * 6], ids=["unbalanced", "balanced"])
def test_two_level_matches_dense_reference(syntax, sizes):
    frame = _data(sizes, seed=len(sizes))
    model = bm.Model(syntax, frame, cluster="cluster")
    model._frame = frame
    for seed in range(3):
        theta, loglik = _at_random_point(model, seed)
        assert loglik == pytest.approx(_dense_two_level(model, theta), abs=1e-8, rel=0)


@pytest.mark.parametrize("syntax", [SINGLE_LEVEL, NON_RECURSIVE], ids=["recursive", "non-recursive"])
def test_single_level_matches_dense_reference(syntax):
    """(I − B)⁻¹ is a finite sum for the recursive model and a matrix inverse for the other."""
    frame = _data([1] * 40, seed=3)
    model = bm.Model(syntax, frame)
    model._frame = frame
    assert (path_length(model.plan.levels[""]) is None) == (syntax == NON_RECURSIVE)
    for seed in range(3):
        theta, loglik = _at_random_point(model, seed)
        assert loglik == pytest.approx(_dense_single_level(model, theta), abs=1e-8, rel=0)


@pytest.mark.parametrize(("syntax", "names"), [(TWO_LEVEL, ["y1", "y2", "y3", "y4"]), (LATENT_COVARIATE, ["y1", "y2", "x1"])],
                         ids=["within-only-and-between-only", "latent-covariate"])
def test_missing_cells_match_dense_reference(syntax, names):
    """With cells missing at random (pattern-grouped Woodbury form) the likelihood is the dense
    normal of the observed entries of each stacked cluster; a modelled covariate may miss cells too."""
    frame = _remove_cells(_data([1, 2, 5, 3, 3, 1, 4, 6], seed=11), names, 0.25, seed=1)
    model = bm.Model(syntax, frame, cluster="cluster")
    model._frame = frame
    assert model.data.has_missing
    for seed in range(3):
        theta, loglik = _at_random_point(model, seed)
        assert loglik == pytest.approx(_dense_two_level(model, theta), abs=1e-8, rel=0)


def test_missing_cells_single_level_match_dense_reference():
    frame = _remove_cells(_data([1] * 40, seed=3), ["y1", "y2", "y3", "y4"], 0.25, seed=2)
    model = bm.Model(SINGLE_LEVEL, frame)
    model._frame = frame
    for seed in range(3):
        theta, loglik = _at_random_point(model, seed)
        assert loglik == pytest.approx(_dense_single_level(model, theta), abs=1e-8, rel=0)


def test_complete_data_pattern_form_equals_size_form():
    """On complete data the pattern form (one pattern) gives the per-cluster-size form's value."""
    frame = _data([1, 2, 5, 3, 3, 1, 4], seed=5)
    model = bm.Model(TWO_LEVEL, frame, cluster="cluster")
    theta, loglik = _at_random_point(model, 0)
    layout, plan = Layout.from_plan(model.plan), model.plan
    moments = {level: implied_moments(lp, pt.as_tensor_variable(theta)) for level, lp in plan.levels.items()}

    def constants(stats):
        return {f.name: pt.as_tensor_variable(np.asarray(getattr(stats, f.name), dtype=float)) for f in fields(stats)}

    value = pattern_loglik(layout, moments, constants(PatternStatistics.from_data(layout, model.data))).eval(mode=DENSITY_CHECK_MODE)
    assert value == pytest.approx(loglik, abs=1e-8, rel=0)


def test_missing_cells_in_three_level_models_plan_as_conditional():
    """The three-level marginal strategy needs complete data; with missing cells the upper levels'
    effects are sampled (the conditional strategy, tested in test_conditional_density.py)."""
    frame = _data([3] * 6, seed=2).assign(school=lambda f: f["cluster"] // 2)
    syntax = "level: within\n  y1 ~ x1\nlevel: cluster\n  y1 ~~ y1\nlevel: school\n  y1 ~~ y1\n"
    assert bm.Model(syntax, frame, cluster=["cluster", "school"]).strategy.kind == "marginal"
    missing = _remove_cells(frame, ["y1"], 0.2, seed=3)
    assert bm.Model(syntax, missing, cluster=["cluster", "school"]).strategy.kind == "conditional"
