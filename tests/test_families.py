"""Response families against scipy (in log space in the tails, η up to ±30), their gradients
(finite at extreme η, equal to finite differences at moderate η), the ordinal normalisation,
parsing and the checks of the observed values."""

import functools
import re

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, stats
from scipy.special import expit, gammaln, logsumexp

import bayes_msem as bm
from bayes_msem.data.clustered import DataError
from bayes_msem.likelihood.families import Family, log_cdf, log_sf, ordinal_levels, parse_family
from bayes_msem.sampling.build import starting_values
from bayes_msem.spec.table import SpecificationError

FAMILIES = [Family("gaussian", "identity"), Family("bernoulli", "logit"), Family("bernoulli", "probit"),
            Family("bernoulli", "cloglog"), Family("ordinal", "logit"), Family("ordinal", "probit"),
            Family("ordinal", "cloglog"), Family("poisson", "log"), Family("negbinomial", "log"),
            Family("gamma", "log"), *(Family("binomial", link, (("n", "trials"),)) for link in ("logit", "probit",
                                                                                                  "cloglog")),
            Family("tobit", "identity", (("lower", "-1"), ("upper", "2")))]
SUPPORT = {"gaussian": [-1.3, 0.0, 2.2], "bernoulli": [0, 1], "ordinal": [0, 1, 2, 3],
           "poisson": [0, 1, 3, 12], "negbinomial": [0, 1, 3, 12], "gamma": [0.05, 0.7, 2.2, 15.0],
           "binomial": [0, 1, 3, 7], "tobit": [-1.0, -0.3, 0.8, 2.0]}
ETA = np.array([-30.0, -8.0, -2.5, -0.3, 0.0, 0.7, 3.0, 8.0, 30.0])
MODERATE = np.array([-2.5, -0.3, 0.7, 1.9])
SD, TAU, PHI, TRIALS, LOWER, UPPER = 1.7, np.array([-1.2, 0.4, 1.5]), 2.5, 7.0, -1.0, 2.0
DIST = {"logit": stats.logistic, "probit": stats.norm, "cloglog": stats.gumbel_l}  # gumbel_l: F(x) = 1 − exp(−e^x)


@functools.cache
def _compiled(family):
    """(y, η, sd, τ, φ) ↦ log p(y | η) and the gradients of Σ log p w.r.t. η, sd, τ and φ."""
    y, eta, sd, tau, phi = pt.dmatrix("y"), pt.dmatrix("eta"), pt.dscalar("sd"), pt.dvector("tau"), pt.dscalar("phi")
    logp = family.logp(y, eta, sd=sd, thresholds=tau, dispersion=phi, trials=TRIALS, lower=LOWER, upper=UPPER)
    grads = pytensor.grad(logp.sum(), [eta, sd, tau, phi], disconnected_inputs="ignore")
    return pytensor.function([y, eta, sd, tau, phi], [logp, *grads], on_unused_input="ignore")


def _evaluate(family, eta, y=None, sd=SD, tau=TAU, phi=PHI):
    """The compiled outputs on the grid of y (default: the family's support) × η."""
    y = np.asarray(SUPPORT[family.name] if y is None else y, float)
    y, eta = (np.array(v) for v in np.broadcast_arrays(y[:, None], eta[None, :]))
    return y, eta, _compiled(family)(y, eta, sd, tau, phi)


def _log_interval(a, b, dist):
    """log(F(b) − F(a)) from scipy's log cdf / log sf, each in the tail where it does not cancel."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = dist.logcdf(b) + np.log(-np.expm1(dist.logcdf(a) - dist.logcdf(b)))
        upper = dist.logsf(a) + np.log(-np.expm1(dist.logsf(b) - dist.logsf(a)))
    return np.where(a + b > 2 * dist.median(), upper, lower)


def _reference(family, y, eta):
    """log p(y | η) from scipy, in log space throughout."""
    if family.name == "gaussian":
        return stats.norm.logpdf(y, eta, SD)
    if family.name == "tobit":  # censored at the limits: log P(y* ≤ lower), log P(y* ≥ upper)
        return np.where(y <= LOWER, stats.norm.logcdf(LOWER, eta, SD),
                        np.where(y >= UPPER, stats.norm.logsf(UPPER, eta, SD), stats.norm.logpdf(y, eta, SD)))
    if family.name == "bernoulli":
        return np.where(y == 1, DIST[family.link].logcdf(eta), DIST[family.link].logsf(eta))
    if family.name == "ordinal":
        bounds = np.concatenate([[-np.inf], TAU, [np.inf]])
        k = y.astype(int)
        return _log_interval(bounds[k] - eta, bounds[k + 1] - eta, DIST[family.link])
    if family.name == "poisson":
        return stats.poisson.logpmf(y, np.exp(eta))
    if family.name == "gamma":
        return stats.gamma.logpdf(y, PHI, scale=np.exp(eta) / PHI)
    if family.name == "binomial":  # log C(n, y) + y log F(η) + (n − y) log(1 − F(η)), scipy's log cdf and log sf
        choose = gammaln(TRIALS + 1) - gammaln(y + 1) - gammaln(TRIALS - y + 1)
        return choose + y * DIST[family.link].logcdf(eta) + (TRIALS - y) * DIST[family.link].logsf(eta)
    mu = np.exp(eta)
    return gammaln(y + PHI) - gammaln(PHI) - gammaln(y + 1) - PHI * np.log1p(mu / PHI) - y * np.log1p(PHI / mu)


def _plain(family, y, eta):
    """log p(y | η) from scipy's probability-space distributions (accurate at moderate η only)."""
    if family.name == "bernoulli":
        p = expit(eta) if family.link == "logit" else DIST[family.link].cdf(eta)
        return stats.bernoulli.logpmf(y, p)
    if family.name == "ordinal":
        bounds, dist = np.concatenate([[-np.inf], TAU, [np.inf]]), DIST[family.link]
        a, b = bounds[y.astype(int)] - eta, bounds[y.astype(int) + 1] - eta
        # the upper tail's P(y = K − 1) = exp(−e^{τ − η}) is below the cloglog cdf's resolution at 1
        return np.log(np.where(a + b > 2 * dist.median(), dist.sf(a) - dist.sf(b), dist.cdf(b) - dist.cdf(a)))
    if family.name == "negbinomial":
        mu = np.exp(eta)
        return stats.nbinom.logpmf(y, PHI, PHI / (PHI + mu))
    if family.name == "binomial":
        return stats.binom.logpmf(y, TRIALS, DIST[family.link].cdf(eta))
    if family.name == "tobit":
        return np.log(np.where(y <= LOWER, stats.norm.cdf(LOWER, eta, SD),
                               np.where(y >= UPPER, stats.norm.sf(UPPER, eta, SD), stats.norm.pdf(y, eta, SD))))
    return _reference(family, y, eta)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_logp_matches_scipy_at_moderate_eta(family):
    y, eta, (logp, *_) = _evaluate(family, MODERATE)
    np.testing.assert_allclose(logp, _plain(family, y, eta), rtol=1e-10)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_logp_is_accurate_in_log_space_up_to_extreme_eta(family):
    y, eta, (logp, *_) = _evaluate(family, ETA)
    # log Γ(y + φ) − log Γ(φ) carries absolute rounding ~1e-17, visible where log p(0 | η = −30) ≈ −1e-13;
    # log C(7, y) = log Γ(8) − … rounds by ~2e-15 (an ulp of log Γ(8)), where log p(0 | η = −30) ≈ −7e-13
    atol = 1e-15 if family.has_dispersion else 1e-14 if family.name == "binomial" else 0.0
    np.testing.assert_allclose(logp, _reference(family, y, eta), rtol=1e-8, atol=atol)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_log_cdf_and_log_sf_match_scipy_in_both_tails(link):
    x = np.concatenate([-np.geomspace(1e3, 1e-3, 40), [0.0], np.geomspace(1e-3, 37, 40)])
    np.testing.assert_allclose(log_cdf(x, link).eval(), DIST[link].logcdf(x), rtol=1e-8, atol=0)
    np.testing.assert_allclose(log_sf(x[x < 300], link).eval(), DIST[link].logsf(x[x < 300]), rtol=1e-8, atol=0)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_gradients_are_finite_at_extreme_eta(family):
    outputs = _evaluate(family, np.array([-100.0, -30.0, 30.0, 100.0]))[2]
    assert all(np.isfinite(out).all() for out in outputs)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_gradients_match_finite_differences(family):
    h, params = 1e-6, {"sd": SD, "tau": TAU, "phi": PHI}
    _, _, (_, d_eta, *d_params) = _evaluate(family, MODERATE)
    up, down = _evaluate(family, MODERATE + h)[2][0], _evaluate(family, MODERATE - h)[2][0]
    np.testing.assert_allclose(d_eta, (up - down) / (2 * h), rtol=1e-6, atol=1e-8)
    for (key, value), grad in zip(params.items(), d_params):
        numeric = []
        for step in np.eye(np.size(value)) * h:
            shifted = [{**params, key: value + s.reshape(np.shape(value))} for s in (step, -step)]
            totals = [_evaluate(family, MODERATE, **p)[2][0].sum() for p in shifted]
            numeric.append((totals[0] - totals[1]) / (2 * h))
        np.testing.assert_allclose(np.atleast_1d(grad), numeric, rtol=1e-6, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
@pytest.mark.parametrize("tau", [np.array([0.3]), TAU, np.array([-4.0, -1.0, -0.9, 2.0, 6.0])], ids=["K2", "K4", "K6"])
def test_ordinal_probabilities_sum_to_one(link, tau):
    _, _, (logp, *_) = _evaluate(Family("ordinal", link), ETA, y=np.arange(len(tau) + 1), tau=tau)
    np.testing.assert_allclose(logsumexp(logp, axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_y_and_eta_broadcast(family):
    y = np.asarray(SUPPORT[family.name][:2], float)
    logp = family.logp(y[:, None], MODERATE[None, :], sd=SD, thresholds=TAU, dispersion=PHI, trials=TRIALS,
                       lower=LOWER, upper=UPPER).eval()
    # atol: log C(n, y)'s rounding (an ulp of log Γ(8)), which graph rewrites may move
    np.testing.assert_allclose(logp, _evaluate(family, MODERATE, y=y)[2][0], rtol=1e-14, atol=1e-14)


def test_logp_asks_for_the_parameters_it_needs():
    with pytest.raises(TypeError, match="thresholds"):
        Family("ordinal", "logit").logp(0.0, 0.0)


@pytest.mark.parametrize("text, name, link", [
    ("gaussian", "gaussian", "identity"), ("Bernoulli", "bernoulli", "logit"), ("binary", "bernoulli", "logit"),
    ("bernoulli(logit)", "bernoulli", "logit"), (" bernoulli ( Probit ) ", "bernoulli", "probit"),
    ("ordinal", "ordinal", "logit"), ("ORDINAL(logit)", "ordinal", "logit"), ("ordinal(probit)", "ordinal", "probit"),
    ("bernoulli(cloglog)", "bernoulli", "cloglog"), ("ordinal(cloglog)", "ordinal", "cloglog"),
    ("poisson", "poisson", "log"), ("negbinomial", "negbinomial", "log"),
    ("negative_binomial", "negbinomial", "log"), ("NegBinomial(log)", "negbinomial", "log"), ("gamma", "gamma", "log"),
])
def test_parse_family_accepts(text, name, link):
    assert parse_family(text) == Family(name, link)


@pytest.mark.parametrize("text, family", [
    ("binomial(n=Trials)", Family("binomial", "logit", (("n", "Trials"),))),
    (" Binomial( probit , n = n_1 ) ", Family("binomial", "probit", (("n", "n_1"),))),
    ("tobit(lower=0)", Family("tobit", "identity", (("lower", "0"),))),
    ("tobit(upper=Cap, lower=-2.5)", Family("tobit", "identity", (("upper", "Cap"), ("lower", "-2.5")))),
    ("binomial(n=trials, cloglog)", Family("binomial", "cloglog", (("n", "trials"),))),
])
def test_parse_family_reads_options_and_keeps_column_names(text, family):
    assert parse_family(text) == family and parse_family(str(family)) == family
    assert family.trials == (family.options[0][1] if family.name == "binomial" else None)


@pytest.mark.parametrize("text, listed", [
    ("weibull", "gaussian (identity); bernoulli (logit, probit, cloglog)"),
    ("bernoulli(log)", "logit, probit, cloglog"),
    ("ordinal(loglog)", "logit, probit, cloglog"), ("poisson(logit)", "its links are: log"),
    ("bernoulli(", "name(link)"), ("bernoulli()", "name(link)"), ("", "negbinomial (log)"),
    ("binomial", "binomial needs the column of its numbers of trials: write binomial(n=COLUMN)"),
    ("binomial(size=n)", "binomial takes no option size="), ("binomial(n=a, n=b)", "given twice"),
    ("poisson(n=k)", "poisson takes no option n="), ("binomial(logit probit, n=k)", "cannot read the family"),
    ("tobit", "tobit needs a censoring limit: write tobit(lower=LIMIT)"), ("tobit(n=3)", "tobit takes no option n="),
])
def test_parse_family_rejects_with_the_valid_choices(text, listed):
    with pytest.raises(SpecificationError, match=re.escape(listed)):
        parse_family(text)


@pytest.mark.parametrize("text, scale, thresholds, dispersion", [
    ("gaussian", True, False, False), ("bernoulli", False, False, False), ("ordinal(probit)", False, True, False),
    ("poisson", False, False, False), ("negbinomial", False, False, True), ("gamma", False, False, True),
])
def test_extra_parameters(text, scale, thresholds, dispersion):
    family = parse_family(text)
    assert (family.has_scale, family.has_thresholds, family.has_dispersion) == (scale, thresholds, dispersion)


NAN = np.nan


@pytest.mark.parametrize("family, values, codes", [
    ("bernoulli", [True, False, True], [1, 0, 1]), ("bernoulli", [0, NAN, 1], [0, NAN, 1]),
    ("ordinal", [4, 3, NAN, 5, 3], [1, 0, NAN, 2, 0]), ("poisson", [0, 3, NAN, 12], [0, 3, NAN, 12]),
    ("negbinomial", [0, 7], [0, 7]), ("gaussian", [-1.5, NAN, 2.0], [-1.5, NAN, 2.0]),
    ("gamma", [0.5, NAN, 2.25], [0.5, NAN, 2.25]),
])
def test_codes(family, values, codes):
    values = np.array(values)
    original = values.copy()
    out = parse_family(family).codes(values, "y")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, codes)
    np.testing.assert_array_equal(values, original)


def test_ordinal_levels_are_the_sorted_observed_values():
    np.testing.assert_array_equal(ordinal_levels(np.array([5.0, 2.0, NAN, 9.0, 2.0])), [2.0, 5.0, 9.0])


@pytest.mark.parametrize("family, values, fragments", [
    ("bernoulli", [0, 1, 2, NAN], ["declared bernoulli but takes values 0, 1, 2", "recode it to 0/1 or declare it ordinal"]),
    ("bernoulli", [0, 0.5], ["takes values 0, 0.5", "declare it gaussian"]),
    ("ordinal", [1, 1.5, 2], ["non-integer values 1.5", "code the categories as integers"]),
    ("ordinal", [3, 3, NAN], ["only the category 3", "at least two categories"]),
    ("ordinal", [5, 2, NAN, 9, 2], ["categories 2, 5, 9; 3, 4, 6, 7, 8 never observed", "consecutive integers",
                                    "merge the unobserved category with a neighbour"]),
    ("poisson", [0, -2, 4], ["negative values -2", "non-negative", "declare it gaussian"]),
    ("negbinomial", [0.5, 2], ["non-integer values 0.5", "whole numbers"]),
    ("poisson", [1, np.inf], ["infinite values", "missing (NaN)"]),
    ("gamma", [0, 1.5, -2, NAN], ["values -2, 0 that are not positive", "set exact zeros to missing"]),
    ("gaussian", ["a", "b"], ["not numeric", "recode it as numbers"]),
])
def test_codes_reject_values_the_family_cannot_take(family, values, fragments):
    with pytest.raises(DataError) as err:
        parse_family(family).codes(np.array(values), "y4")
    assert all(f in str(err.value) for f in ["'y4'", *fragments]), str(err.value)


def test_binary_responses_are_standardized_on_their_latent_response_scale():
    """A probit item with loading λ on a factor of variance 1 has latent response variance λ² + 1,
    so std.all = λ / √(λ² + 1) and R² = λ² / (λ² + 1); with a logit random intercept of variance τ²
    the latent ICC is τ² / (τ² + π²/3) (Snijders & Bosker); a count item has no such scale (NaN)."""
    from bayes_msem.results.standardized import icc_table, r_squared_table, standardized_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 2, size=(40, 3)), columns=["u1", "u2", "u3"]).assign(
        n=rng.poisson(2.0, size=40), cluster=np.repeat(np.arange(10), 4))
    model = bm.Model("f =~ u1 + u2 + u3 + n", frame, std_lv=True,
                     family={"u1": "bernoulli(probit)", "u2": "bernoulli", "u3": "bernoulli", "n": "poisson"})
    theta = model.plan.parameters["kind"].map({"loading": 0.8}).fillna(0.0).to_numpy()[None]
    table = standardized_table(theta, model.plan, model.data).set_index(["lhs", "op", "rhs"])
    assert table.loc[("f", "=~", "u1"), "std.all"] == pytest.approx(0.8 / np.sqrt(1.64))
    assert table.loc[("f", "=~", "u2"), "std.all"] == pytest.approx(0.8 / np.sqrt(0.64 + np.pi**2 / 3))
    assert np.isnan(table.loc[("f", "=~", "n"), "std.all"])
    r2 = r_squared_table(theta, model.plan, model.data).set_index("variable")["mean"]
    assert r2["u1"] == pytest.approx(0.64 / 1.64)

    model = bm.Model("level: within\n u1 ~ 1\nlevel: between\n u1 ~~ u1", frame, cluster="cluster",
                     family={"u1": "bernoulli"})
    theta = model.plan.parameters["kind"].map({"variance": 0.9}).fillna(0.0).to_numpy()[None]
    icc = icc_table(theta, model.plan, model.data).set_index("variable")["mean"]
    assert icc["u1"] == pytest.approx(0.9 / (0.9 + np.pi**2 / 3))


@pytest.mark.parametrize("family, values, start", [
    ("poisson", [50, 60, 55, 55], np.log(55)), ("negbinomial", [0, 0, 0, 1], np.log(0.25)),
    ("bernoulli", [1, 1, 1, 0], np.log(3)), ("bernoulli(probit)", [1, 1, 1, 0], stats.norm.ppf(0.75))])
def test_non_gaussian_intercepts_start_on_the_linear_predictor_scale(family, values, start):
    """Counts averaging 55 start at η = log 55, not 55 (e^55 overflowed: every transition diverged);
    their between variance starts at ½ on the η scale, not at half the counts' variance."""
    frame = pd.DataFrame({"y": np.tile(values, 10), "x": np.arange(40.0) % 3, "g": np.repeat(np.arange(10), 4)})
    model = bm.Model("level: within\n  y ~ x\nlevel: between\n  y ~~ y\n", frame, cluster="g", family={"y": family})
    theta = starting_values(model.plan, model.data)
    table = model.parameter_table().set_index(["lhs", "op", "level"])
    assert theta[table.loc[("y", "~1", "between"), "free"] - 1] == pytest.approx(start)
    assert theta[table.loc[("y", "~~", "between"), "free"] - 1] == pytest.approx(0.5)
    assert np.isfinite(model.pymc_model.point_logps()["loglik"])


# The model's log-likelihood against scipy per observed cell, summed: a one-factor model whose indicators are
# a Gaussian g, the item y of the family under test (with missing cells) and a logit bernoulli u, at random θ
# and latent draws. Each entry: (family of y, y's values from a normal draw e and the trials column n, scipy's
# log p(y | η, θ)).
def _ordinal_cloglog(y, eta, theta, model):
    tau = np.concatenate([[-np.inf], theta[_rows(model, "y", "|") - 1], [np.inf]])
    k = np.nan_to_num(y).astype(int)
    return np.log(stats.gumbel_l.cdf(tau[k + 1] - eta) - stats.gumbel_l.cdf(tau[k] - eta))


def _tobit(y, eta, sd, lower, upper):
    """Censored: y ≤ lower log P(y* ≤ lower), y ≥ upper log P(y* ≥ upper), else log N(y; η, sd²)."""
    return np.where(y <= lower, stats.norm.logcdf(lower, eta, sd),
                    np.where(y >= upper, stats.norm.logsf(upper, eta, sd), stats.norm.logpdf(y, eta, sd)))


def _dispersion(theta, model):
    """The lowest-level ``y ~~ y``: a negative binomial or gamma y's α, a tobit y's residual variance."""
    return theta[_rows(model, "y", "~~")[0] - 1]


def _rows(model, lhs, op):
    table = model.parameter_table()
    return table.loc[(table["lhs"] == lhs) & (table["op"] == op), "free"].to_numpy()


MODEL_FAMILIES = {
    "bernoulli(cloglog)": (lambda e, n: (e > 0.3).astype(float),
                           lambda y, eta, theta, model: np.where(y == 1, stats.gumbel_l.logcdf(eta),
                                                                 stats.gumbel_l.logsf(eta))),
    "ordinal(cloglog)": (lambda e, n: np.digitize(e, [-0.6, 0.2, 0.9]).astype(float), _ordinal_cloglog),
    "binomial(probit, n=n)": (lambda e, n: np.floor(n * expit(e)), lambda y, eta, theta, model: stats.binom.logpmf(
        y, model.data.column("n"), stats.norm.cdf(eta))),
    "tobit(lower=0, upper=lo)": (lambda e, n: np.clip(e, 0, 1.2), lambda y, eta, theta, model: _tobit(
        y, eta, np.sqrt(_dispersion(theta, model)), 0.0, np.nan_to_num(model.data.column("lo"), nan=np.inf))),
    "gamma": (lambda e, n: np.exp(e), lambda y, eta, theta, model: stats.gamma.logpdf(
        y, 1 / _dispersion(theta, model), scale=np.exp(eta) * _dispersion(theta, model))),
}


def _model_reference(model, theta, z, logp_y, y_counts=None):
    """Σ log p over the observed cells: η = T (α + ζ), ζ_f = √ψ_ff z (RAM form, in numpy); y's
    terms count in the rows ``y_counts`` (default: where y is observed)."""
    from dense_reference import fill

    level = model.plan.levels[""]
    b, psi, alpha = (fill(getattr(level, m), theta) for m in ("beta", "psi", "alpha"))
    f = level.variables.index("f")
    zeta = np.zeros((len(z), len(level.variables)))
    zeta[:, f] = np.sqrt(psi[f, f]) * z[:, 0]
    eta = (alpha[:, 0] + zeta) @ np.linalg.inv(np.eye(len(b)) - b).T
    g, y, u = (model.data.column(v) for v in ("g", "y", "u"))
    terms = [stats.norm.logpdf(g, eta[:, 0], np.sqrt(psi[0, 0])), logp_y(y, eta[:, 1], theta, model),
             stats.bernoulli.logpmf(u, expit(eta[:, 2]))]
    counts = [~np.isnan(g), ~np.isnan(y) if y_counts is None else y_counts, ~np.isnan(u)]
    return sum(np.where(c, t, 0.0).sum() for c, t in zip(counts, terms))


@pytest.mark.parametrize("text", MODEL_FAMILIES)
def test_model_loglik_matches_scipy_per_observation(text):
    from dense_reference import point_function

    draw, logp_y = MODEL_FAMILIES[text]
    rng = np.random.default_rng(3)
    e = rng.normal(size=40)
    n = rng.integers(1, 9, size=40).astype(float)
    frame = pd.DataFrame({"g": e + rng.normal(size=40), "y": draw(e + rng.normal(size=40), n),
                          "u": (e + rng.normal(size=40) > 0).astype(float), "n": n,
                          "lo": np.where(rng.random(40) < 0.3, np.nan, 1.2)})  # an upper limit in 70% of rows
    missing = rng.random(40) < 0.2
    frame.loc[missing, "y"] = np.nan
    frame.loc[missing & (rng.random(40) < 0.5), "n"] = np.nan  # a missing count's trials may be missing too
    model = bm.Model("f =~ g + y + u", frame, family={"y": text, "u": "bernoulli"})
    pm_model = model.pymc_model
    evaluate = point_function(pm_model, ["theta", "loglik", "latent_z"])
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, z = evaluate(point)
        assert loglik == pytest.approx(_model_reference(model, theta, z, logp_y), abs=1e-8, rel=0)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.name not in ("gaussian", "gamma", "tobit")], ids=str)
def test_draws_follow_the_log_density(family):
    """The frequencies of 200 000 draws at η = 0.4 match exp(log p) within 4 binomial SE."""
    draws = family.draw(np.full(200_000, 0.4), np.random.default_rng(4), thresholds=TAU, dispersion=PHI,
                        trials=np.full(200_000, TRIALS))
    counts = family.name in ("poisson", "negbinomial", "binomial")
    y = np.arange(13.0) if counts else np.asarray(SUPPORT[family.name], float)
    p = np.exp(_evaluate(family, np.array([0.4]), y=y)[2][0][:, 0])
    np.testing.assert_array_less(np.abs((draws[:, None] == y).mean(0) - p), 4 * np.sqrt(p * (1 - p) / 200_000) + 1e-9)


@pytest.mark.parametrize("family", [Family("gamma", "log")], ids=str)
def test_continuous_draws_follow_the_log_density(family):
    """20 000 draws at η = 0.4 against the distribution whose log density the family computes
    (scipy's, equal to it by the tests above): a Kolmogorov-Smirnov test at the 1% level."""
    draws = family.draw(np.full(20_000, 0.4), np.random.default_rng(5), dispersion=PHI)
    assert stats.kstest(draws, stats.gamma(PHI, scale=np.exp(0.4) / PHI).cdf).pvalue > 0.01


BINOMIAL = parse_family("binomial(n=trials)")


@pytest.mark.parametrize("counts, trials, fragments", [
    ([3, 8, NAN], [5, 7, NAN], ["counts more successes than its trials 'trials' in 1 row(s) (e.g. 8 of 7)",
                                "check that n= names the trials column"]),
    ([1, 2], [4, 0], ["trials column 'trials' of 'y4' has values 0", "positive whole numbers"]),
    ([1, 2], [4, 2.5], ["has values 2.5", "positive whole numbers"]),
    ([1, 2], [4, NAN], ["trials column 'trials' is missing where 'y4' is observed", "fill in the trials"]),
    ([1.5, 2], [4, 4], ["non-integer values 1.5", "whole numbers"]),
    ([-1, 2], [4, 4], ["negative values -1", "non-negative"]),
])
def test_binomial_codes_check_the_counts_against_their_trials(counts, trials, fragments):
    with pytest.raises(DataError) as err:
        BINOMIAL.codes(np.array(counts, float), "y4", {"trials": np.array(trials, float)})
    assert all(f in str(err.value) for f in fragments), str(err.value)


def test_binomial_codes_keep_counts_and_missing_cells():
    codes = BINOMIAL.codes(np.array([0, 3, NAN]), "y", {"trials": np.array([2, 3, NAN])})
    np.testing.assert_array_equal(codes, [0, 3, NAN])


@pytest.mark.parametrize("options, fragment", [
    ({"family": {"y1": "binomial(n=k)"}}, "the trials column 'k' of 'y1' (binomial(logit, n=k)) is not a column"),
    ({"family": {"y1": "binomial(n=g)"}}, "counts more successes than its trials 'g'"),
])
def test_binomial_models_name_the_trials_column(options, fragment):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y1": rng.integers(0, 5, 30), "g": rng.integers(1, 3, 30), "x": rng.normal(size=30)})
    with pytest.raises(DataError, match=re.escape(fragment)):
        bm.Model("y1 ~ x", frame, **options)


def test_new_clusters_need_the_trials_column():
    frame = pd.DataFrame({"y": [1, 0, 2, 3], "n": [3, 3, 4, 4], "x": [0.1, -0.3, 0.5, 1.2]})
    design = pd.DataFrame({"x": np.linspace(-1, 1, 6), "n": [5] * 6})
    model = bm.Model("y ~ x", frame, family={"y": "binomial(n=n)"})
    with pytest.raises(bm.SettingsError, match="new clusters have no the trials column 'n'"):
        model.simulate({"y~x": 0.5, "y~1": 0.0}, n_clusters=10)
    simulated = model.simulate({"y~x": 0.5, "y~1": 0.0}, covariates=design, seed=1)
    assert ((simulated["y"] >= 0) & (simulated["y"] <= 5)).all()


def test_tobit_draws_are_censored_normal_draws():
    """200 000 draws at η = 0.4: P(y ≤ t) = Φ((t − η)/sd) for lower ≤ t < upper, the rest at upper,
    within 4 binomial SE."""
    family = parse_family("tobit(lower=-1, upper=2)")
    draws = family.draw(np.full(200_000, 0.4), np.random.default_rng(6), sd=SD, lower=LOWER, upper=UPPER)
    assert draws.min() == LOWER and draws.max() == UPPER
    t = np.array([LOWER, -0.3, 0.8, 1.9])
    p = np.append(stats.norm.cdf(t, 0.4, SD), stats.norm.sf(UPPER, 0.4, SD))
    shares = np.append((draws[:, None] <= t).mean(0), (draws == UPPER).mean())
    np.testing.assert_array_less(np.abs(shares - p), 4 * np.sqrt(p * (1 - p) / 200_000))


@pytest.mark.parametrize("text, values, columns, fragments", [
    ("tobit(lower=0)", [0, 1.5, -0.2], {}, ["1 value(s) lie outside their censoring limits",
                                           "(e.g. -0.2 with limits 0 and inf)", "record a censored value"]),
    ("tobit(lower=lo, upper=hi)", [1, 2], {"lo": np.array([0, 3.0]), "hi": np.array([5, 3.0])},
     ["1 row(s) have a lower limit at or above the upper one (e.g. 3 and 3)"]),
    ("tobit(upper=hi)", [1, 7, NAN], {"hi": np.array([5, 5.0, 5.0])}, ["(e.g. 7 with limits -inf and 5)"]),
])
def test_tobit_codes_check_the_values_against_their_limits(text, values, columns, fragments):
    with pytest.raises(DataError) as err:
        parse_family(text).codes(np.array(values, float), "y4", columns)
    assert all(f in str(err.value) for f in ["'y4'", *fragments]), str(err.value)


def test_tobit_limit_columns_may_be_missing_where_a_row_has_no_limit():
    family = parse_family("tobit(lower=0, upper=hi)")
    lower, upper = family.limits({"hi": np.array([4.0, NAN])}, 2)
    np.testing.assert_array_equal(lower, [0.0, 0.0])
    np.testing.assert_array_equal(upper, [4.0, np.inf])
    np.testing.assert_array_equal(family.codes(np.array([4.0, 9.0]), "y", {"hi": np.array([4.0, NAN])}), [4.0, 9.0])


INTERVAL = parse_family("interval(upper=hi)")
# (lower, upper) per case: exact, two-sided, left- and right-censored, narrow, far in either tail and straddling
BOUNDS = np.array([(0.4, 0.4), (-1.0, 0.7), (-np.inf, 0.2), (0.5, np.inf), (-0.3, -0.3 + 1e-4), (8.0, 9.5),
                   (30.0, 31.0), (-41.0, -40.0), (-60.0, 60.0)])


@functools.cache
def _interval_compiled():
    """(η, sd) ↦ log p of :data:`BOUNDS` row by row and the gradients of Σ log p w.r.t. η and sd."""
    eta, sd = pt.dvector("eta"), pt.dscalar("sd")
    logp = INTERVAL.logp(np.zeros(len(BOUNDS)), eta, sd=sd, lower=BOUNDS[:, 0], upper=BOUNDS[:, 1])
    return pytensor.function([eta, sd], [logp, *pytensor.grad(logp.sum(), [eta, sd])])


def _interval_by_quadrature(lower, upper, eta, sd):
    """log ∫_lower^upper N(t; η, sd²) dt by adaptive quadrature (the density itself where lower = upper)."""
    if lower == upper:
        return stats.norm.logpdf(lower, eta, sd)
    mass, _ = integrate.quad(stats.norm(eta, sd).pdf, lower, upper, epsabs=0, epsrel=1e-12, limit=200,
                             points=[eta] if lower < eta < upper and np.isfinite(upper - lower) else None)
    return np.log(mass)


@pytest.mark.parametrize("eta", MODERATE)
def test_interval_logp_matches_the_integral_of_the_normal_density(eta):
    moderate = np.abs(BOUNDS[:, 0]) < 5  # where the mass is well above the quadrature's absolute floor
    logp = _interval_compiled()(np.full(len(BOUNDS), eta), SD)[0]
    reference = [_interval_by_quadrature(lower, upper, eta, SD) for lower, upper in BOUNDS[moderate]]
    np.testing.assert_allclose(logp[moderate], reference, rtol=1e-9)


@pytest.mark.parametrize("eta", ETA)
def test_interval_logp_is_accurate_in_log_space_far_in_either_tail(eta):
    """Against log[Φ(b) − Φ(a)] from scipy's log cdf and log sf, each in the tail where it does not
    cancel (the plain difference of cdfs is 0 there, e.g. for [30, 31] at η = 0)."""
    logp = _interval_compiled()(np.full(len(BOUNDS), eta), SD)[0]
    a, b = (BOUNDS[:, 0] - eta) / SD, (BOUNDS[:, 1] - eta) / SD
    exact = BOUNDS[:, 0] == BOUNDS[:, 1]
    reference = np.where(exact, stats.norm.logpdf(BOUNDS[:, 0], eta, SD), _log_interval(a, b, stats.norm))
    assert np.isfinite(logp).all()
    # atol: log P(−60 < y* < 60) ≈ −2e-270, whose last digits differ between the two log cdfs
    np.testing.assert_allclose(logp, reference, rtol=1e-8, atol=1e-15)


def test_interval_gradients_are_finite_and_match_the_analytic_ones():
    """d/dη log P = (φ(a) − φ(b))/(sd P), d/dsd log P = (a φ(a) − b φ(b))/(sd P) (φ(±∞) = 0), and for an
    exact row d/dη = (l − η)/sd², d/dsd = −1/sd + (l − η)²/sd³; P from scipy in log space, so that the
    ratios hold far in the tails and for the narrow interval, where finite differences lose digits."""
    compiled = _interval_compiled()
    for eta in (-100.0, -30.0, 30.0, 100.0):
        assert all(np.isfinite(out).all() for out in compiled(np.full(len(BOUNDS), eta), SD))
    exact = BOUNDS[:, 0] == BOUNDS[:, 1]
    for eta in ETA[np.abs(ETA) < 10]:
        _, d_eta, d_sd = compiled(np.full(len(BOUNDS), eta), SD)
        a, b = (BOUNDS[:, 0] - eta) / SD, (BOUNDS[:, 1] - eta) / SD
        with np.errstate(invalid="ignore", divide="ignore"):
            log_p = _log_interval(a, b, stats.norm)
            density_a, density_b = (np.exp(stats.norm.logpdf(x) - log_p) for x in (a, b))
            by_eta = (density_a - density_b) / SD
            by_sd = (np.nan_to_num(a * density_a) - np.nan_to_num(b * density_b)) / SD
        np.testing.assert_allclose(d_eta, np.where(exact, a / SD, by_eta), rtol=1e-7,
                                   atol=1e-15)  # [−60, 60]: ≈ 1e-284 against scipy's 0
        assert d_sd == pytest.approx(np.where(exact, (a**2 - 1) / SD, by_sd).sum(), rel=1e-7)


def test_interval_draws_are_the_latent_normal_response():
    """Replicated interval responses are y* ~ N(η, sd²) itself (a Kolmogorov-Smirnov test at 1%)."""
    draws = INTERVAL.draw(np.full(20_000, 0.4), np.random.default_rng(7), sd=SD)
    assert stats.kstest(draws, stats.norm(0.4, SD).cdf).pvalue > 0.01


def test_simulated_interval_responses_are_exact_where_the_data_give_a_lower_bound():
    """model.simulate (and so the posterior predictive checks) draws y* = 0.5 + 0.8 x + ε exactly,
    ε ~ N(0, 0.36) (a Kolmogorov-Smirnov test at 1%), missing where the data's lower bound is."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=2000)
    lower = np.where(rng.random(2000) < 0.2, NAN, np.floor(x))
    frame = pd.DataFrame({"y": lower, "hi": np.floor(x) + 1, "x": x})
    model = bm.Model("y ~ x", frame, family={"y": "interval(upper=hi)"})
    simulated = model.simulate({"y~x": 0.8, "y~1": 0.5, "y~~y": 0.36}, seed=1)
    np.testing.assert_array_equal(simulated["y"].isna(), frame["y"].isna())
    residual = (simulated["y"] - 0.5 - 0.8 * simulated["x"]).dropna()
    assert stats.kstest(residual, stats.norm(0, 0.6).cdf).pvalue > 0.01


@pytest.mark.parametrize("text, fragment", [
    ("interval", "interval needs the column of its upper bounds: write interval(upper=COLUMN)"),
    ("interval(lower=lo)", "interval takes no option lower="),
    ("interval(upper=2.5)", "interval's upper= names the column of each row's upper bound, not a number"),
    ("interval(probit, upper=hi)", "interval has no link 'probit'"),
])
def test_interval_family_is_written_with_its_upper_bound_column(text, fragment):
    assert parse_family(" Interval( upper = y_hi ) ") == Family("interval", "identity", (("upper", "y_hi"),))
    assert INTERVAL.has_scale and INTERVAL.is_censored and INTERVAL.columns == {"hi": "the upper bound column"}
    with pytest.raises(SpecificationError, match=re.escape(fragment)):
        parse_family(text)


def test_interval_limits_are_the_response_and_the_upper_column_infinite_where_missing():
    lower, upper = INTERVAL.limits({"hi": np.array([1.0, 2.0, NAN, 4.0])}, 4, np.array([1.0, NAN, 3.0, 0.5]))
    np.testing.assert_array_equal(lower, [1.0, -np.inf, 3.0, 0.5])
    np.testing.assert_array_equal(upper, [1.0, 2.0, np.inf, 4.0])
    codes = INTERVAL.codes(np.array([1.0, NAN, 3.0]), "y", {"hi": np.array([1.0, 2.0, NAN])})
    np.testing.assert_array_equal(codes, [1.0, NAN, 3.0])


@pytest.mark.parametrize("lower, upper, fragments", [
    ([1.0, 3.0, 0.0], [2.0, 2.5, 0.0], ["1 row(s) have an upper bound below the lower one (e.g. 2.5 in 'hi' below 3 in "
                                        "'y4')", "swap them where they are reversed"]),
    ([NAN, 1.0], [-np.inf, 2.0], ["1 row(s) have an upper bound below the lower one"]),
    ([NAN, 1.0, NAN], [NAN, 2.0, NAN], ["2 row(s) have neither bound ('y4' and 'hi' both missing, e.g. the row at "
                                        "position 0)", "data.dropna(subset=['y4', 'hi'], how='all')"]),
])
def test_interval_codes_refuse_crossed_or_absent_bounds(lower, upper, fragments):
    with pytest.raises(DataError) as err:
        INTERVAL.codes(np.array(lower), "y4", {"hi": np.array(upper)})
    declared = "'y4' is declared interval(identity, upper=hi)"
    assert all(f in str(err.value) for f in [declared, *fragments]), str(err.value)


@pytest.mark.parametrize("hi, fragment", [
    (None, "the upper bound column 'hi' of 'y' (interval(identity, upper=hi)) is not a column of the data"),
    (["a", "b"] * 20, "the upper bound column 'hi' of 'y' (interval(identity, upper=hi)) must be numeric"),
])
def test_interval_models_name_the_upper_bound_column(hi, fragment):
    frame = pd.DataFrame({"y": np.arange(40.0), "x": np.linspace(0, 1, 40)})
    if hi is not None:
        frame["hi"] = hi
    with pytest.raises(DataError, match=re.escape(fragment)):
        bm.Model("y ~ x", frame, family={"y": "interval(upper=hi)"})


def _interval_frame(rng, n=40):
    """A factor f measured by a Gaussian g, an interval response y (lower bounds; missing: none)
    with upper bounds hi (missing: none; equal: exact) and a logit bernoulli u."""
    e = rng.normal(size=n)
    latent = e + rng.normal(size=n)
    kind = rng.choice(["exact", "bracket", "left", "right"], size=n)
    lower = np.where(kind == "left", NAN, np.where(kind == "bracket", np.floor(latent * 2) / 2, latent))
    upper = np.where(kind == "right", NAN, np.where(kind == "bracket", np.floor(latent * 2) / 2 + 0.5, latent))
    lower[kind == "right"], upper[kind == "left"] = np.floor(latent[kind == "right"]), np.ceil(latent[kind == "left"])
    return pd.DataFrame({"g": e + rng.normal(size=n), "y": lower, "hi": upper,
                         "u": (e + rng.normal(size=n) > 0).astype(float)})


def _interval_reference(y, hi, eta, sd):
    """log P(y < y* < hi) from scipy's log cdf and log sf (:func:`_log_interval`), the density where
    y = hi, −∞/+∞ for missing bounds."""
    lower, upper = np.nan_to_num(y, nan=-np.inf), np.nan_to_num(hi, nan=np.inf)
    return np.where(lower == upper, stats.norm.logpdf(lower, eta, sd),
                    _log_interval((lower - eta) / sd, (upper - eta) / sd, stats.norm))


def test_interval_model_loglik_matches_scipy_per_observation():
    """The conditional strategy (the one that takes response families) against scipy, per row, at random θ
    and latent draws: left-censored rows (no lower bound, the response missing) count, as do all others."""
    from dense_reference import point_function

    rng = np.random.default_rng(8)
    frame = _interval_frame(rng)
    model = bm.Model("f =~ g + y + u", frame, family={"y": "interval(upper=hi)", "u": "bernoulli"})
    assert model.strategy.kind == "conditional" and frame["y"].isna().any()
    evaluate = point_function(model.pymc_model, ["theta", "loglik", "latent_z"])
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in model.pymc_model.initial_point().items()}
        theta, loglik, z = evaluate(point)
        reference = _model_reference(model, theta, z, lambda y, eta, theta, model: _interval_reference(
            frame["y"].to_numpy(), frame["hi"].to_numpy(), eta, np.sqrt(_dispersion(theta, model))),
            y_counts=np.ones(len(frame), bool))
        assert loglik == pytest.approx(reference, abs=1e-8, rel=0)


def _nominal_terms(y, responses):
    """Σ_k of the latent responses' log-density terms of a nominal item, compiled."""
    families = [Family("nominal", "logit", (("k", str(k)),)) for k in range(1, responses.shape[1] + 1)]
    return sum(f.logp(y, responses[:, k], responses=responses) for k, f in enumerate(families)).eval()


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["moderate", "extreme"])
def test_nominal_terms_add_up_to_the_multinomial_logit(scale):
    """The K − 1 latent responses' terms of a nominal item add up to scipy's log P(y = c) of a
    multinomial draw of one trial with softmax(0, η_1, …, η_{K−1}) probabilities, per observation."""
    rng = np.random.default_rng(7)
    responses, y = scale * rng.normal(size=(50, 3)), rng.integers(0, 4, size=50).astype(float)
    logits = np.column_stack([np.zeros(50), responses])
    probabilities = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    reference = [stats.multinomial.logpmf(np.eye(4)[int(c)], 1, p) for c, p in zip(y, probabilities)]
    if scale == 1.0:
        np.testing.assert_allclose(_nominal_terms(y, responses), reference, rtol=1e-12)
    else:  # scipy's probabilities underflow: log softmax in log space; η_c − log Σ e^η cancels to ~ε |η|
        np.testing.assert_allclose(_nominal_terms(y, responses),
                                   logits[np.arange(50), y.astype(int)] - logsumexp(logits, axis=1), rtol=1e-12,
                                   atol=1e-13)


def test_nominal_draws_follow_the_softmax():
    responses = np.tile([0.5, -0.3, 1.1], (200_000, 1))
    draws = Family("nominal", "logit", (("k", "1"),)).draw(responses[:, 0], np.random.default_rng(8),
                                                           responses=responses)
    p = np.exp(np.r_[0.0, responses[0]] - logsumexp(np.r_[0.0, responses[0]]))
    np.testing.assert_array_less(np.abs((draws[:, None] == np.arange(4)).mean(0) - p),
                                 4 * np.sqrt(p * (1 - p) / 200_000))


def test_nominal_model_loglik_matches_scipy_per_observation():
    """f =~ g + y + u with y nominal (3 categories, latent responses y#1, y#2) and missing cells."""
    from dense_reference import fill, point_function

    rng = np.random.default_rng(9)
    e = rng.normal(size=40)
    frame = pd.DataFrame({"g": e + rng.normal(size=40), "y": rng.choice([2.0, 5.0, 7.0], size=40),
                          "u": (e + rng.normal(size=40) > 0).astype(float)})
    frame.loc[rng.random(40) < 0.2, "y"] = np.nan
    model = bm.Model("f =~ g + y + u", frame, family={"y": "nominal", "u": "bernoulli"})
    level = model.plan.levels[""]
    assert level.variables == ("g", "y#1", "y#2", "u", "f")
    pm_model = model.pymc_model
    evaluate = point_function(pm_model, ["theta", "loglik", "latent_z"])
    codes = pd.Series(frame["y"]).map({2.0: 0, 5.0: 1, 7.0: 2}).to_numpy()
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, z = evaluate(point)
        b, psi, alpha = (fill(getattr(level, m), theta) for m in ("beta", "psi", "alpha"))
        zeta = np.zeros((40, 5))
        zeta[:, 4] = np.sqrt(psi[4, 4]) * z[:, 0]
        eta = (alpha[:, 0] + zeta) @ np.linalg.inv(np.eye(5) - b).T
        logits = np.column_stack([np.zeros(40), eta[:, 1:3]])
        p_y = [stats.multinomial.logpmf(np.eye(3)[int(c)], 1, np.exp(lg - logsumexp(lg)))
               for c, lg in zip(np.nan_to_num(codes), logits)]
        reference = (stats.norm.logpdf(frame["g"], eta[:, 0], np.sqrt(psi[0, 0])).sum()
                     + np.where(np.isnan(codes), 0.0, p_y).sum()
                     + stats.bernoulli.logpmf(frame["u"], expit(eta[:, 3])).sum())
        assert loglik == pytest.approx(reference, abs=1e-8, rel=0)


@pytest.mark.parametrize("syntax, values, error, fragment", [
    ("level: within\n s | y ~ x\nlevel: between\n y ~~ s", [1, 2, 3], SpecificationError,
     "the nominal variable 'y' is in a random parameter"),
    ("y ~ x", [4, 4, 4], DataError, "'y' is declared nominal but has 1 distinct value(s)"),
])
def test_nominal_bad_inputs(syntax, values, error, fragment):
    frame = pd.DataFrame({"y": np.resize(values, 40), "x": np.arange(40.0) % 7, "c": np.repeat(np.arange(10), 4)})
    with pytest.raises(error, match=re.escape(fragment)):
        bm.Model(syntax, frame, cluster="c" if "level" in syntax else None, family={"y": "nominal"})
