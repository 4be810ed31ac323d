"""The conditional strategy's log-density given the sampled latent part, against scipy.

The reference rebuilds each level in numpy from θ and the standard-normal draws z (the RAM
form v = (I − B)⁻¹(α + Γx + ζ) with ζ_S = chol(Ψ_SS) z) and sums scipy's log-pmfs and
log-pdfs of the observed cells: a two-level factor model whose indicators are Gaussian,
bernoulli (probit), ordinal (logit), poisson and negative binomial, with a cluster-level Gaussian outcome, a
within covariate and missing cells.
"""

import numpy as np
import pandas as pd
import pytest
from dense_reference import fill, point_function
from scipy import stats
from scipy.special import expit

import bayes_msem as bm
from bayes_msem.likelihood.registry import strategy_for

SYNTAX = """
level: within
  f =~ y1 + y2 + y3
  f ~ x
  y4 ~ x
  y5 ~ x
level: between
  fb =~ y1 + y2 + y3
  y4 ~~ y4
  y5 ~~ y5
  z ~ fb
"""

FAMILIES = {"y2": "bernoulli(probit)", "y3": "ordinal(logit)", "y4": "poisson", "y5": "negbinomial"}


def _data(seed=5):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(8), [3, 1, 4, 2, 5, 3, 2, 4])
    n = len(cluster)
    u = rng.normal(size=8)[cluster]
    frame = pd.DataFrame({
        "y1": rng.normal(size=n) + u, "y2": (rng.normal(size=n) + u > 0).astype(float),
        "y3": np.digitize(rng.normal(size=n) + u, [-0.5, 0.3, 1.0]).astype(float) + 1,
        "y4": rng.poisson(np.exp(0.3 * u)).astype(float), "y5": rng.negative_binomial(2.0, 0.4, size=n).astype(float),
        "x": rng.normal(size=n),
        "z": rng.normal(size=8)[cluster], "cluster": cluster})
    frame.loc[rng.random(n) < 0.2, "y1"] = np.nan
    frame.loc[rng.random(n) < 0.2, "y3"] = np.nan
    return frame


def _level(plan, theta, covariates, z, sampled_names, offset=0.0):
    """v_n = T (α + Γ x_n + ζ_n + o_n) in numpy, ζ on the sampled variables, o the parts from above."""
    b, g, psi, alpha = (fill(getattr(plan, m), theta) for m in ("beta", "gamma", "psi", "alpha"))
    sampled = [plan.variables.index(v) for v in sampled_names]
    zeta = np.zeros((len(covariates), len(plan.variables)))
    if sampled:
        zeta[:, sampled] = z @ np.linalg.cholesky(psi[np.ix_(sampled, sampled)]).T
    inner = alpha[:, 0] + covariates @ g.T + zeta + offset
    return inner @ np.linalg.inv(np.eye(len(b)) - b).T, psi


def _reference(model, theta, within_z, between_z):
    plan, data = model.plan, model.data
    within, between = plan.levels["within"], plan.levels["between"]
    w_values, w_psi = _level(within, theta, data.matrix(["x"]), within_z, ["f"])
    b_values, b_psi = _level(between, theta, np.zeros((data.n_clusters, 0)), between_z,
                             ["y1", "y2", "y3", "y4", "y5", "fb"])
    names = ["y1", "y2", "y3", "y4", "y5"]
    eta = w_values[:, :5] + b_values[data.cluster_index][:, [between.variables.index(v) for v in names]]
    y = data.matrix(names)
    table = plan.table
    tau = table[(table["op"] == "|") & (table["lhs"] == "y3")]["free"].to_numpy() - 1
    tau = np.concatenate([[-np.inf], theta[tau], [np.inf]])
    logp = np.column_stack([
        stats.norm.logpdf(y[:, 0], eta[:, 0], np.sqrt(w_psi[0, 0])),
        stats.norm.logcdf(np.where(y[:, 1] == 1, eta[:, 1], -eta[:, 1])),
        np.log(expit(tau[np.nan_to_num(y[:, 2]).astype(int) + 1] - eta[:, 2])
               - expit(tau[np.nan_to_num(y[:, 2]).astype(int)] - eta[:, 2])),
        stats.poisson.logpmf(y[:, 3], np.exp(eta[:, 3])),
        # NB2 with dispersion α = ψ_55: scipy's n = φ = 1/α successes, p = φ/(φ + μ)
        stats.nbinom.logpmf(y[:, 4], 1 / w_psi[4, 4], 1 / (1 + w_psi[4, 4] * np.exp(eta[:, 4]))),
    ])
    k = between.variables.index("z")
    cluster_z = stats.norm.logpdf(data.cluster_values(["z"])[:, 0], b_values[:, k], np.sqrt(b_psi[k, k]))
    scores = (w_values[:, [within.variables.index("f")]],
              b_values[:, [between.variables.index(v) for v in ["y1", "y2", "y3", "y4", "y5", "fb"]]])
    return np.where(np.isnan(y), 0.0, logp).sum() + cluster_z.sum(), scores


def test_conditional_matches_scipy_reference():
    model = bm.Model(SYNTAX, _data(), cluster="cluster", family=FAMILIES)
    assert model.strategy.kind == "conditional"
    pm_model = model.pymc_model
    assert pm_model.named_vars_to_dims["within_z"] == ("row", "within_z_variable")
    rng = np.random.default_rng(0)
    names = ["theta", "loglik", "within_z", "between_z", "scores_within", "scores_between"]
    evaluate = point_function(pm_model, names)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, within_z, between_z, *scores = evaluate(point)
        reference, reference_scores = _reference(model, theta, within_z, between_z)
        assert loglik == pytest.approx(reference, abs=1e-8, rel=0)
        for ours, theirs in zip(scores, reference_scores):  # the latent scores are the sampled values
            np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_ordinal_codes_and_thresholds():
    """Ordinal categories become codes 0..K−1 and K − 1 thresholds, reported as 'y3 | t1' ...; the
    ordinal intercept is fixed to 0 and no non-Gaussian variable has a residual variance except the
    negative binomial's dispersion, a parameter of its own kind."""
    model = bm.Model(SYNTAX, _data(), cluster="cluster", family=FAMILIES)
    assert set(np.unique(model.data.column("y3")[~np.isnan(model.data.column("y3"))])) == {0.0, 1.0, 2.0, 3.0}
    table = model.parameter_table()
    assert table.query("op == '|'")["rhs"].to_list() == ["t1", "t2", "t3"]
    residual = table.query("op == '~~' and lhs == rhs and level == 'within'").set_index("lhs")
    assert residual.loc[["y2", "y3", "y4"], "fixed"].eq(0).all() and (residual.loc[["y1", "y5"], "free"] > 0).all()
    kinds = model.plan.parameters.set_index("name")["kind"]
    assert kinds["within:y5~~y5"] == "dispersion" and kinds["between:y5~~y5"] == "variance"
    assert kinds["within:y1~~y1"] == "variance"
    assert table.query("lhs == 'y3' and op == '~1'")["fixed"].eq(0).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"family": {"x": "bernoulli"}}, "'x', which is a covariate"),
    ({"family": {"y2": "weibull"}}, "unknown family 'weibull'"),
    ({"family": {"y5": "negbinomial(logit)"}}, "negbinomial has no link 'logit'"),
    ({"family": {"y1": "bernoulli"}}, "'y1' is declared bernoulli but takes values"),
])
def test_family_errors(kwargs, message):
    frame = _data()
    with pytest.raises((bm.SpecificationError, bm.DataError), match=message):
        bm.Model(SYNTAX, frame, cluster="cluster", **kwargs)


@pytest.mark.parametrize(("syntax", "message"), [
    ("f =~ y1 + y2 + y3\ny3 ~ y2", "'y2' predicts another variable"),
    ("f =~ y1 + y2 + y3\ny1 ~~ y2", "'y1' has a residual covariance"),
])
def test_conditional_structure_errors(syntax, message):
    model = bm.Model(syntax, _data(), family={"y2": "bernoulli"})
    with pytest.raises(bm.SpecificationError, match=message):
        model.pymc_model


def _random_within(plan, data, theta, random, within_z, sampled_names):
    """Per row, with its cluster's random parameters put in by the hybrid tests' numpy placement:
    the within values T_j (α + Γ_j x + ζ), ζ on the sampled variables, and Ψ_j."""
    from test_hybrid_density import _within_matrices

    within = plan.levels["within"]
    sampled = [within.variables.index(v) for v in sampled_names]
    x = data.matrix(list(within.roles.covariates))
    values, psis = [], []
    for i, j in enumerate(data.cluster_index):
        b, g, psi = _within_matrices(plan, theta, random[j])
        zeta = np.zeros(len(b))
        zeta[sampled] = np.linalg.cholesky(psi[np.ix_(sampled, sampled)]) @ within_z[i]
        values.append(np.linalg.solve(np.eye(len(b)) - b, fill(within.alpha, theta)[:, 0] + g @ x[i] + zeta))
        psis.append(psi)
    return np.array(values), np.array(psis)


RANDOM = """
level: within
  f =~ y1 + y3
  l2 | f =~ y2
  s | y4 ~ x
  v | y1 ~~ y1
level: between
  fb =~ y1 + y2 + y3
  y4 ~~ s
  l2 ~ fb
"""


def test_conditional_with_random_parameters_matches_scipy_reference():
    """A random loading of a probit item, a random slope of a poisson count and a random residual
    log-variance of a Gaussian indicator (y3 Gaussian too): each row's within matrices are its cluster's, with the
    random parameters (sampled between variables) put in by the hybrid tests' numpy placement."""
    families = {"y2": "bernoulli(probit)", "y4": "poisson"}
    model = bm.Model(RANDOM, _data(), cluster="cluster", family=families)
    plan, data = model.plan, model.data
    assert strategy_for(plan).kind == "conditional" and [r.name for r in plan.random] == ["l2", "s", "v"]
    pm_model = model.pymc_model
    names = ["theta", "loglik", "within_z", "between_z", "random_effects"]
    evaluate = point_function(pm_model, names)
    within, between = plan.levels["within"], plan.levels["between"]
    rng = np.random.default_rng(1)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, within_z, between_z, random = evaluate(point)
        b_values, _ = _level(between, theta, np.zeros((data.n_clusters, 0)), between_z,
                             list(pm_model.coords["between_z_variable"]))
        np.testing.assert_allclose(random, b_values[:, [between.variables.index(r) for r in ("l2", "s", "v")]])
        values, psi = _random_within(plan, data, theta, random, within_z, pm_model.coords["within_z_variable"])
        order = [within.variables.index(v) for v in ("y1", "y2", "y3", "y4")]
        y = data.matrix(["y1", "y2", "y3", "y4"])
        eta = values[:, order] + b_values[data.cluster_index][:, [between.variables.index(v) for v in ("y1", "y2", "y3", "y4")]]
        sd = np.sqrt(psi[:, order, order][:, [0, 2]])
        logp = np.column_stack([stats.norm.logpdf(y[:, 0], eta[:, 0], sd[:, 0]),
                                stats.norm.logcdf(np.where(y[:, 1] == 1, eta[:, 1], -eta[:, 1])),
                                stats.norm.logpdf(y[:, 2], eta[:, 2], sd[:, 1]),
                                stats.poisson.logpmf(y[:, 3], np.exp(eta[:, 3]))])
        assert loglik == pytest.approx(np.where(np.isnan(y), 0.0, logp).sum(), abs=1e-8, rel=0)


def test_random_variance_of_a_non_gaussian_response_is_an_error():
    syntax = "level: within\n  f =~ y1 + y2\n  v | y2 ~~ y2\nlevel: between\n  y2 ~~ y2\n"
    model = bm.Model(syntax, _data(), cluster="cluster", family={"y2": "bernoulli"})
    with pytest.raises(bm.SpecificationError, match="'y2' is bernoulli.*no residual variance to vary"):
        model.pymc_model


THREE_LEVEL = """
level: within
  f =~ y1 + y2 + y3
  s | y4 ~ x
level: cluster
  fc =~ y1 + y2 + y3
  y4 ~~ s
  z ~ fc
level: school
  y1 ~~ y1
  y4 ~~ y4
  s ~~ s
  z ~~ z
"""


def test_three_level_conditional_matches_scipy_reference():
    """Three levels (rows in clusters in schools): a probit and a poisson response, a random
    slope that varies over clusters and schools, a cluster-level outcome with a school part, and
    missing cells; each level's values from its own sampled disturbances, the parts of the
    levels above added."""
    frame = _data().assign(school=lambda f: f["cluster"] // 2)
    model = bm.Model(THREE_LEVEL, frame, cluster=["cluster", "school"], family={"y2": "bernoulli(probit)", "y4": "poisson"})
    plan, data = model.plan, model.data
    assert strategy_for(plan).kind == "conditional" and plan.three_level
    pm_model = model.pymc_model
    names = ["theta", "loglik", "within_z", "between_z", "upper_z", "random_effects"]
    evaluate = point_function(pm_model, names)
    within, middle, top = plan.levels.values()
    school = data.upper.parent
    rng = np.random.default_rng(2)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, within_z, between_z, upper_z, random = evaluate(point)
        s_values, s_psi = _level(top, theta, np.zeros((data.upper.n_clusters, 0)), upper_z,
                                 list(pm_model.coords["upper_z_variable"]))
        c_values, c_psi = _level(middle, theta, np.zeros((data.n_clusters, 0)), between_z,
                                 list(pm_model.coords["between_z_variable"]))

        def total(v, rows_cluster):  # a variable's class value plus its school part, per cluster given
            value = c_values[rows_cluster, middle.variables.index(v)]
            return value + (s_values[school[rows_cluster], top.variables.index(v)] if v in top.variables else 0.0)

        clusters = np.arange(data.n_clusters)
        np.testing.assert_allclose(random[:, 0], total("s", clusters), atol=1e-10)
        k = middle.variables.index("z")
        logp = stats.norm.logpdf(data.cluster_values(["z"])[:, 0], total("z", clusters), np.sqrt(c_psi[k, k])).sum()
        values, psi = _random_within(plan, data, theta, random, within_z, pm_model.coords["within_z_variable"])
        order = [within.variables.index(v) for v in ("y1", "y2", "y3", "y4")]
        y = data.matrix(["y1", "y2", "y3", "y4"])
        eta = values[:, order] + np.column_stack([total(v, data.cluster_index) for v in ("y1", "y2", "y3", "y4")])
        sd = np.sqrt(psi[:, order, order][:, [0, 2]])
        cells = np.column_stack([stats.norm.logpdf(y[:, 0], eta[:, 0], sd[:, 0]),
                                 stats.norm.logcdf(np.where(y[:, 1] == 1, eta[:, 1], -eta[:, 1])),
                                 stats.norm.logpdf(y[:, 2], eta[:, 2], sd[:, 1]),
                                 stats.poisson.logpmf(y[:, 3], np.exp(eta[:, 3]))])
        assert loglik == pytest.approx(logp + np.where(np.isnan(y), 0.0, cells).sum(), abs=1e-8, rel=0)


FOUR_LEVEL = """
level: within
  y1 ~ x
  y2 ~ x
level: cluster
  y1 ~~ y1
  y2 ~~ y2
level: school
  y1 ~~ y1
level: district
  y1 ~~ y1
  y2 ~~ y2
  y1 ~ d
"""


def test_four_level_conditional_matches_scipy_reference():
    """Rows in clusters in schools in districts: random intercepts at every level (y2 has none at
    the school level), a district covariate, a binary response and missing cells."""
    frame = _data().assign(school=lambda f: f["cluster"] // 2, district=lambda f: f["cluster"] // 4)
    frame["d"] = np.array([0.3, -1.2])[frame["district"]]
    model = bm.Model(FOUR_LEVEL, frame, cluster=["cluster", "school", "district"], family={"y2": "bernoulli"})
    plan, data = model.plan, model.data
    assert strategy_for(plan).kind == "conditional" and list(plan.levels) == ["within", "cluster", "school", "district"]
    pm_model = model.pymc_model
    names = ["theta", "loglik", "between_z", "upper_z", "upper_4_z"]
    evaluate = point_function(pm_model, names)
    levels = list(plan.levels.values())
    rng = np.random.default_rng(3)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, *z = evaluate(point)
        w_values, w_psi = _level(levels[0], theta, data.matrix(["x"]), np.zeros((data.n_rows, 0)), [])
        eta = w_values[:, :2].copy()
        for rank, (level, draws) in enumerate(zip(levels[1:], z), start=1):
            covariates = data.level_values(list(level.roles.covariates), rank)
            values, _ = _level(level, theta, covariates, draws, list(pm_model.coords[f"{['between', 'upper', 'upper_4'][rank - 1]}_z_variable"]))
            for k, v in enumerate(["y1", "y2"]):
                if v in level.variables:
                    eta[:, k] += values[data.level_index(rank), level.variables.index(v)]
        y = data.matrix(["y1", "y2"])
        cells = np.column_stack([stats.norm.logpdf(y[:, 0], eta[:, 0], np.sqrt(w_psi[0, 0])),
                                 np.log(expit(np.where(y[:, 1] == 1, eta[:, 1], -eta[:, 1])))])
        assert loglik == pytest.approx(np.where(np.isnan(y), 0.0, cells).sum(), abs=1e-8, rel=0)
    fit = model.fit(draws=20, tune=20, chains=1, random_seed=1)
    text = fit.summary()
    assert "4-level SEM" in text and "Clusters (district)          2" in text and "Level: district" in text
    scores = fit.latent_scores()
    assert scores.groupby("level").size().to_dict() == {"cluster": 16, "school": 4, "district": 4}
    assert set(scores.query("level == 'district'")["unit"]) == {0, 1}


CROSS_LEVEL = """
level: within
  fw =~ y1 + y2 + y3
level: cluster
  fs =~ y1 + y2 + y3
level: school
  fd =~ y1 + y3
  fs ~ fd
"""


def test_cross_level_regression_matches_scipy_reference():
    """A cluster-level factor regressed on a school-level one (``fs ~ fd`` in the school block): fs
    has a school part, b fd + ζ, that reaches fs's indicators through the cluster level's
    loadings; y2 has no school part; a binary response."""
    frame = _data().assign(school=lambda f: f["cluster"] // 2)
    model = bm.Model(CROSS_LEVEL, frame, cluster=["cluster", "school"], family={"y2": "bernoulli"})
    plan, data = model.plan, model.data
    assert strategy_for(plan).kind == "conditional"
    pm_model = model.pymc_model
    evaluate = point_function(pm_model, ["theta", "loglik", "within_z", "between_z", "upper_z"])
    within, middle, top = plan.levels.values()
    school = data.upper.parent
    rng = np.random.default_rng(4)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, within_z, between_z, upper_z = evaluate(point)
        s_values, _ = _level(top, theta, np.zeros((data.upper.n_clusters, 0)), upper_z,
                             list(pm_model.coords["upper_z_variable"]))
        offset = np.zeros((data.n_clusters, len(middle.variables)))
        for k, v in enumerate(middle.variables):
            if v in top.variables:
                offset[:, k] = s_values[school, top.variables.index(v)]
        c_values, _ = _level(middle, theta, np.zeros((data.n_clusters, 0)), between_z,
                             list(pm_model.coords["between_z_variable"]), offset)
        row_offset = np.zeros((data.n_rows, len(within.variables)))
        for k, v in enumerate(within.variables):
            if v in middle.variables:
                row_offset[:, k] = c_values[data.cluster_index, middle.variables.index(v)]
        w_values, w_psi = _level(within, theta, np.zeros((data.n_rows, 0)), within_z,
                                 list(pm_model.coords["within_z_variable"]), row_offset)
        order = [within.variables.index(v) for v in ("y1", "y2", "y3")]
        eta, y = w_values[:, order], data.matrix(["y1", "y2", "y3"])
        sd = np.sqrt(w_psi[order, order])
        cells = np.column_stack([stats.norm.logpdf(y[:, 0], eta[:, 0], sd[0]),
                                 np.log(expit(np.where(y[:, 1] == 1, eta[:, 1], -eta[:, 1]))),
                                 stats.norm.logpdf(y[:, 2], eta[:, 2], sd[2])])
        assert loglik == pytest.approx(np.where(np.isnan(y), 0.0, cells).sum(), abs=1e-8, rel=0)


def test_a_factor_used_below_its_level_is_an_error():
    syntax = "level: within\n  fw =~ y1 + y2\n  fw ~ fb\nlevel: between\n  fb =~ y1 + y2\n"
    with pytest.raises(bm.SpecificationError, match="'fb' is defined at the between level but used at the lower within"):
        bm.Model(syntax, _data(), cluster="cluster")
