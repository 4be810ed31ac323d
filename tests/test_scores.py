"""Latent scores of the marginal strategy against dense Gaussian conditioning.

For one θ, the reference stacks a cluster's between variables b_j and every unit's within
variables v_ij into one normal vector, observes the linear map (y_ij = v_ij[observed] + b_j's
parts, z_j = b_j[z]) and conditions on it with the textbook formula. The score draws are
the two-step conditional (b_j | y_j, then η_ij | y_ij, b_j): with zero noise they must give
the exact conditional means, and their spread the conditional variances.
"""

import numpy as np
import pandas as pd
import pytest
from dense_reference import level_moments

import bayes_msem as bm
from bayes_msem.likelihood.registry import strategy_for
from bayes_msem.results.scores import _moments_function, _three_level_draw, _two_level_draw

SYNTAX = """
level: within
  fw =~ y1 + y2 + y3
  fw ~ x
level: between
  fb =~ y1 + y2 + y3
  fb ~ w
  z ~ fb
"""


RANDOM_LOADING = """
level: within
  fw =~ y1 + y2
  l3 | fw =~ y3
  fw ~ x
level: between
  fb =~ y1 + y2 + y3
  fb ~ w
  z ~ fb
  l3 ~ fb
"""


class _Zeros:
    """A generator whose normal draws are all zero: the draws become conditional means."""

    def standard_normal(self, shape):
        return np.zeros(shape)


def _model(missing: bool = False, syntax: str = SYNTAX):
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(6), [2, 4, 1, 3, 5, 2])
    frame = pd.DataFrame(rng.normal(size=(len(cluster), 4)), columns=["y1", "y2", "y3", "x"])
    frame += rng.normal(size=(6, 4))[cluster]
    frame["w"], frame["z"], frame["cluster"] = rng.normal(size=6)[cluster], rng.normal(size=6)[cluster], cluster
    if missing:  # a cell or two in most clusters, a whole row of cluster 3, all of y2 in cluster 0
        frame.loc[[0, 1], "y2"] = np.nan
        frame.loc[[3, 9, 14], "y1"] = np.nan
        frame.loc[[6], ["y1", "y2", "y3"]] = np.nan
        frame.loc[[12], "y3"] = np.nan
    return bm.Model(syntax, frame, cluster="cluster")


def _theta(model):
    kinds = model.plan.parameters["kind"].to_numpy()
    return np.where(kinds == "variance", 0.8, 0.6)


def _dense(model, theta, random=None):
    """Conditional mean and covariance of (b_j, η_i1, …) for every cluster, by dense conditioning;
    with ``random`` (J, K), also on each cluster's random parameters (between variables), and with
    each cluster's within moments given them (those of the hybrid likelihood, tested in its own
    density tests: here the conditioning is under test)."""
    plan, data = model.plan, model.data
    within, between = plan.levels["within"], plan.levels["between"]
    if random is None:
        h, mu_w, pi_w = (np.broadcast_to(m, (data.n_clusters, *m.shape))
                         for m in level_moments(within, theta, np.arange(len(within.variables))))
    else:
        h, mu_w, pi_w = _moments_function(plan)(theta, random)[:3]
    g, mu_b, c_b = level_moments(between, theta, np.arange(len(between.variables)))
    names = [r.name for r in plan.random]
    p, m_w, m_b = len(within.roles.observed), len(within.variables), len(between.variables)
    results = []
    for j in range(data.n_clusters):
        rows = np.flatnonzero(data.cluster_index == j)
        n = len(rows)
        mean = np.concatenate([mu_b + c_b @ data.matrix(["w"])[rows[0]]]
                              + [mu_w[j] + pi_w[j] @ data.matrix(["x"])[i] for i in rows])
        cov = np.zeros((m_b + n * m_w,) * 2)
        cov[:m_b, :m_b] = g
        for k in range(n):
            cov[m_b + k * m_w:m_b + (k + 1) * m_w, m_b + k * m_w:m_b + (k + 1) * m_w] = h[j]
        observe = np.zeros((n * p + 1 + len(names), len(mean)))
        for k in range(n):
            for a, v in enumerate(within.roles.observed):
                observe[k * p + a, m_b + k * m_w + a] = 1.0
                observe[k * p + a, between.variables.index(v)] = 1.0
        for a, v in enumerate(["z", *names]):
            observe[n * p + a, between.variables.index(v)] = 1.0
        y = np.concatenate([data.matrix(list(within.roles.observed))[rows].ravel(), data.matrix(["z"])[rows[0]],
                            [] if random is None else random[j]])
        observe, y = observe[~np.isnan(y)], y[~np.isnan(y)]  # condition on the observed cells only
        gain = np.linalg.solve(observe @ cov @ observe.T, observe @ cov).T
        results.append((mean + gain @ (y - observe @ mean), cov - gain @ observe @ cov, rows))
    return results


@pytest.mark.parametrize("missing", [False, True])
def test_score_draws_match_dense_conditioning(missing):
    model = _model(missing)
    theta = _theta(model)
    plan, data = model.plan, model.data
    moments = _moments_function(plan)(theta)
    eta, b = _two_level_draw(plan, data, moments, _Zeros())
    rng = np.random.default_rng(0)
    b_draws = np.stack([_two_level_draw(plan, data, moments, rng)[1] for _ in range(4000)])
    m_b, m_w = len(plan.levels["between"].variables), len(plan.levels["within"].variables)
    for j, (mean, cov, rows) in enumerate(_dense(model, theta)):
        np.testing.assert_allclose(b[j], mean[:m_b], atol=1e-10)
        np.testing.assert_allclose(eta[rows, 0], mean[m_b + 3::m_w], atol=1e-10)  # fw of each unit
        latent = [k for k, v in enumerate(plan.levels["between"].variables) if v != "z"]
        np.testing.assert_allclose(b_draws[:, j, latent].var(0), np.diag(cov)[latent], rtol=0.1)


@pytest.mark.parametrize("missing", [False, True])
def test_score_draws_given_random_parameters_match_dense_conditioning(missing):
    """A random loading (regressed on the between factor): given each cluster's loading the
    scores condition on it, with that cluster's within moments."""
    model = _model(missing, RANDOM_LOADING)
    theta = _theta(model)
    plan, data = model.plan, model.data
    assert strategy_for(plan).kind == "hybrid"
    random = np.random.default_rng(1).normal(1.0, 0.3, size=(data.n_clusters, 1))
    moments = _moments_function(plan)(theta, random)
    eta, b = _two_level_draw(plan, data, moments, _Zeros(), random)
    m_b, m_w = len(plan.levels["between"].variables), len(plan.levels["within"].variables)
    for j, (mean, _, rows) in enumerate(_dense(model, theta, random)):
        np.testing.assert_allclose(b[j], mean[:m_b], atol=1e-10)
        np.testing.assert_allclose(eta[rows, 0], mean[m_b + 3::m_w], atol=1e-10)


def test_fit_latent_scores_every_level():
    model = _model()
    fit = model.fit(draws=200, tune=200, chains=2, random_seed=1)
    scores = fit.latent_scores(seed=1)
    assert set(scores.groupby("level")["variable"].unique().map(tuple).items()) == {
        ("within", ("fw",)), ("between", ("y1", "y2", "y3", "fb"))}
    assert len(scores.query("level == 'within'")) == model.data.n_rows
    assert (scores["eti_2.5%"] < scores["mean"]).all() and (scores["mean"] < scores["eti_97.5%"]).all()
    assert sorted(scores.query("level == 'within'")["unit"]) == sorted(model.data.row_labels)
    with pytest.raises(ValueError, match="no latent variables at level 'school'"):
        fit.latent_scores("school")


def _three_level_dense(model, theta):
    """Per school: the conditional mean of (school variables, each class's variables, each unit's
    within variables) given the school's responses, by stacking them all into one normal vector."""
    plan, data = model.plan, model.data
    plans = list(plan.levels.values())
    moments = [level_moments(lp, theta, np.arange(len(lp.variables))) for lp in plans]
    y_names = list(plans[0].roles.observed)
    p, (m1, m2, m3) = len(y_names), (len(lp.variables) for lp in plans)
    place = [np.array([[float(v == y) for v in lp.variables] for y in y_names]) for lp in plans[1:]]
    results = []
    for k in range(data.upper.n_clusters):
        classes = np.flatnonzero(data.upper.parent == k)
        rows = np.flatnonzero(np.isin(data.cluster_index, classes))
        size = m3 + len(classes) * m2 + len(rows) * m1
        mean, cov, observe = np.zeros(size), np.zeros((size, size)), np.zeros((len(rows) * p, size))
        (h, mu_1, pi_1), (g_2, mu_2, pi_2), (g_3, mu_3, pi_3) = moments
        mean[:m3] = mu_3 + pi_3 @ data.matrix(list(plans[2].roles.covariates))[rows[0]]
        cov[:m3, :m3] = g_3
        for a, j in enumerate(classes):
            at = slice(m3 + a * m2, m3 + (a + 1) * m2)
            mean[at] = mu_2 + pi_2 @ data.matrix(list(plans[1].roles.covariates))[rows[data.cluster_index[rows] == j][0]]
            cov[at, at] = g_2
        for b, i in enumerate(rows):
            at = slice(m3 + len(classes) * m2 + b * m1, m3 + len(classes) * m2 + (b + 1) * m1)
            mean[at] = mu_1 + pi_1 @ data.matrix(list(plans[0].roles.covariates))[i]
            cov[at, at] = h
            a = int(np.flatnonzero(classes == data.cluster_index[i])[0])
            observe[b * p:(b + 1) * p, at.start:at.start + p] = np.eye(p)
            observe[b * p:(b + 1) * p, m3 + a * m2:m3 + (a + 1) * m2] = place[0]
            observe[b * p:(b + 1) * p, :m3] = place[1]
        y = data.matrix(y_names)[rows].ravel()
        gain = np.linalg.solve(observe @ cov @ observe.T, observe @ cov).T
        results.append((mean + gain @ (y - observe @ mean), np.diag(cov - gain @ observe @ cov), classes, rows))
    return results


def test_three_level_score_draws_match_dense_conditioning():
    """With zero noise each top-down step gives the exact conditional mean of its level's variables
    (E[c | y, δ] is linear in δ, evaluated at E[δ | y]); with noise the school draws have the
    conditional variances (4000 draws: a sampling error of the variance of about 2%)."""
    from test_nested_density import FACTORS, _data

    model = bm.Model(FACTORS, _data(seed=4), cluster=["class", "school"])
    plan = model.plan
    kinds = model.plan.parameters["kind"].to_numpy()
    theta = np.where(kinds == "variance", 0.7, 0.5)
    moments = _moments_function(plan)(theta)
    units, classes, schools = _three_level_draw(plan, model.data, moments, _Zeros())
    m1, m2, m3 = (len(lp.variables) for lp in plan.levels.values())
    p = len(plan.levels["within"].roles.observed)
    rng = np.random.default_rng(0)
    school_draws = np.stack([_three_level_draw(plan, model.data, moments, rng)[2]
                             for _ in range(4000)])
    for k, (mean, variance, class_index, rows) in enumerate(_three_level_dense(model, theta)):
        np.testing.assert_allclose(schools[k], mean[:m3], atol=1e-9)
        np.testing.assert_allclose(school_draws[:, k].var(0), variance[:m3], rtol=0.1)
        middle, top = list(plan.levels.values())[1:]
        school_part = np.array([mean[top.variables.index(v)] if v in top.variables else 0.0 for v in middle.variables])
        own = mean[m3:m3 + len(class_index) * m2].reshape(len(class_index), m2)
        np.testing.assert_allclose(classes[class_index], own + school_part, atol=1e-9)  # scores include school parts
        within = mean[m3 + len(class_index) * m2:].reshape(len(rows), m1)
        np.testing.assert_allclose(units[rows], within[:, p:], atol=1e-9)
