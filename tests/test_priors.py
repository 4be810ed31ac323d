"""Tests for bayes_msem.spec.priors: parsing ``family(args)[scale]`` texts, the defaults per
parameter kind, how priors written in the syntax reach the plan, and starting values inside
each prior's support (PyMC graphs only, nothing is compiled)."""

import functools

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.spec.plan import make_plan
from bayes_msem.spec.priors import DEFAULT_PRIORS, KINDS, Prior, PriorError, default_priors, parse_prior
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import SpecificationError, build_table

FAMILIES = ("normal", "student_t", "cauchy", "uniform", "lognormal", "gamma", "inverse_gamma",
            "exponential", "half_normal", "half_student_t", "half_cauchy", "lkj")


@functools.cache
def plan(syntax: str, priors: tuple[tuple[str, str], ...] = ()):
    return make_plan(build_table(parse(syntax)), dict(priors) or None)


def parameter(syntax: str, name: str, priors: tuple[tuple[str, str], ...] = ()) -> Prior:
    parameters = plan(syntax, priors).parameters.set_index("name")
    return parameters.loc[name, "prior"]


def prior_error(text: str, kind: str) -> str:
    with pytest.raises(PriorError) as info:
        parse_prior(text, kind)
    return str(info.value)


# --- valid priors ------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, expected", [
    ("normal(0, 1)", "loading", Prior("normal", (0.0, 1.0))),
    ("normal(-2.5, 1e1)", "intercept", Prior("normal", (-2.5, 10.0))),
    ("student_t(3, 0, 2.5)", "regression", Prior("student_t", (3.0, 0.0, 2.5))),
    ("cauchy(0, 1)", "regression", Prior("cauchy", (0.0, 1.0))),  # alpha is the location
    ("cauchy(-1, 2)", "loading", Prior("cauchy", (-1.0, 2.0))),
    ("uniform(-1, 1)", "loading", Prior("uniform", (-1.0, 1.0))),
    ("lognormal(0, 1)", "loading", Prior("lognormal", (0.0, 1.0))),
    ("gamma(1, 0.5)", "variance", Prior("gamma", (1.0, 0.5), "sd")),
    ("gamma(2, 1)[var]", "variance", Prior("gamma", (2.0, 1.0), "var")),
    ("inverse_gamma(1, 1)[var]", "variance", Prior("inverse_gamma", (1.0, 1.0), "var")),
    ("exponential(1)", "variance", Prior("exponential", (1.0,), "sd")),
    ("half_normal(2)[sd]", "variance", Prior("half_normal", (2.0,), "sd")),
    ("half_student_t(3, 1)", "variance", Prior("half_student_t", (3.0, 1.0), "sd")),
    ("half_cauchy(1)", "variance", Prior("half_cauchy", (1.0,), "sd")),
    ("lognormal(-1, 0.5)", "variance", Prior("lognormal", (-1.0, 0.5), "sd")),
    ("lkj(2)", "covariance", Prior("lkj", (2.0,))),
])
def test_parse_every_family(text, kind, expected):
    assert parse_prior(text, kind) == expected


def test_every_family_is_covered():
    kinds = {"lkj": "covariance", "uniform": "loading"}
    for family in FAMILIES:
        kind = kinds.get(family, "variance" if family not in ("normal", "student_t", "cauchy") else "loading")
        arity = {"student_t": 3, "exponential": 1, "half_normal": 1, "half_cauchy": 1, "lkj": 1}.get(family, 2)
        text = f"{family}({', '.join(['1'] * arity)})" if family != "uniform" else "uniform(0, 1)"
        assert parse_prior(text, kind).family == family


@pytest.mark.parametrize("text, family", [
    ("invgamma(1, 1)", "inverse_gamma"), ("inv_gamma(1, 1)", "inverse_gamma"), ("halfnormal(1)", "half_normal"),
    ("halfcauchy(1)", "half_cauchy"), ("halft(3, 1)", "half_student_t"), ("HalfNormal(1)", "half_normal"),
])
def test_aliases_and_case(text, family):
    assert parse_prior(text, "variance").family == family


@pytest.mark.parametrize("text, family", [("t(3, 0, 1)", "student_t"), ("student-t(3, 0, 1)", "student_t"),
                                          ("Normal(0, 1)", "normal")])
def test_aliases_for_real_valued_families(text, family):
    assert parse_prior(text, "loading").family == family


def test_spacing_and_text():
    prior = parse_prior("  normal ( 0 ,1 )  ", "loading")
    assert prior == Prior("normal", (0.0, 1.0)) and prior.text == "normal(0, 1)"
    assert parse_prior("gamma(1,0.5) [ var ]", "variance").text == "gamma(1, 0.5)[var]"
    assert parse_prior("gamma(1, 0.5)", "variance").text == "gamma(1, 0.5)[sd]"
    assert parse_prior("gamma(1, 0.5)", "variance").group == ("gamma", "sd")


# --- invalid priors ----------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, fragments", [
    ("foo(0, 1)", "loading", ["unknown prior family 'foo'", "normal, student_t", "lkj"]),
    ("normal(0)", "loading", ["takes 2 argument(s) (mu, sigma), got 1"]),
    ("normal(0, 1, 2)", "loading", ["takes 2 argument(s)", "got 3"]),
    ("normal()", "loading", ["got 0"]),
    ("exponential(1, 2)", "variance", ["takes 1 argument(s) (lam)"]),
    ("normal(0, 0)", "loading", ["sigma must be a positive finite number"]),
    ("normal(0, -1)", "loading", ["sigma must be a positive"]),
    ("normal(inf, 1)", "loading", ["mu must be a finite number"]),
    ("gamma(0, 1)", "variance", ["alpha must be a positive"]),
    ("cauchy(0, 0)", "loading", ["beta must be a positive"]),
    ("lkj(0)", "covariance", ["eta must be a positive"]),
    ("uniform(1, 1)", "loading", ["lower bound must be below the upper bound"]),
    ("uniform(2, -1)", "loading", ["lower bound must be below"]),
    ("lkj(2)", "loading", ["'lkj' is a prior for correlation blocks", "not for a loading"]),
    ("normal(0, 1)", "variance", ["a variance needs a prior on positive numbers", "gamma(1, 0.5)[sd]"]),
    ("uniform(0, 10)", "variance", ["positive numbers"]),
    ("normal(0, 1)", "covariance", ["LKJ prior", "lkj(2)"]),
    ("normal(0, 1)[sd]", "loading", ["[sd] suffix", "only to variances"]),
    ("normal(0, 1)[var]", "regression", ["[var] suffix"]),
    ("lkj(2)[sd]", "covariance", ["[sd] suffix"]),
    ("garbage", "loading", ["cannot read the prior 'garbage'", "family(arguments)", "normal(0, 1)"]),
    ("normal(0, 1", "loading", ["cannot read the prior"]),
    ("normal(0, 1)[se]", "variance", ["has the scale [se]", "[sd]", "[var]"]),
    ("gamma(1, 1)[prec]", "variance", ["has the scale [prec]", "on its SD ([sd], the default) or on the variance"]),
    ("normal(a, 1)", "loading", ["must be numbers"]),
    ("", "loading", ["cannot read the prior"]),
])
def test_invalid_priors(text, kind, fragments):
    message = prior_error(text, kind)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unknown_family_lists_every_family():
    message = prior_error("beta(1, 1)", "loading")
    assert message.endswith(f"known families: {', '.join(FAMILIES)}.")


def test_prior_error_is_a_value_error():
    assert issubclass(PriorError, ValueError)


# --- defaults -------------------------------------------------------------------------------

def test_defaults():
    priors = default_priors()
    assert tuple(priors) == KINDS
    assert priors == {kind: parse_prior(DEFAULT_PRIORS[kind], kind) for kind in KINDS}
    assert priors["loading"] == Prior("normal", (0.0, 10.0))
    assert priors["variance"] == Prior("gamma", (1.0, 0.5), "sd")
    assert priors["covariance"] == Prior("lkj", (1.0,))
    assert default_priors(None) == default_priors({}) == priors


def test_override_one_kind():
    priors = default_priors({"loading": "normal(0, 1)"})
    assert priors["loading"] == Prior("normal", (0.0, 1.0))
    assert {k: v for k, v in priors.items() if k != "loading"} == {
        k: v for k, v in default_priors().items() if k != "loading"}


def test_categorical_items_default_to_priors_on_the_latent_response_scale():
    """normal(0, 2.5) for the loadings of binary and ordinal indicators and gamma(2, 1) on the SD of
    a factor that only they measure (docs/priors.md says why), the kinds' defaults elsewhere;
    priors={"loading": ...} and priors={"variance": ...} set them all, a written prior wins."""
    syntax = "f =~ u1 + u2 + y3 + prior('normal(0, 1)')*q4\ng =~ u1 + q4\n"
    families = {"u1": "bernoulli(logit)", "u2": "bernoulli(logit)", "q4": "ordinal(probit)"}

    def priors_of(priors=None):
        table = build_table(parse(syntax), families={v: f.split("(")[0] for v, f in families.items()},
                            categories={"q4": 3})
        rows = make_plan(table, priors, families).parameters.query("kind in ['loading', 'variance']")
        return {name: (prior.family, prior.args) for name, prior in zip(rows["name"], rows["prior"])}

    normal, gamma = ("normal", (0.0, 2.5)), ("gamma", (1.0, 0.5))
    assert priors_of() == {"f=~u2": normal, "f=~y3": ("normal", (0.0, 10.0)), "f=~q4": ("normal", (0.0, 1.0)),
                           "g=~q4": normal, "y3~~y3": gamma, "f~~f": gamma, "g~~g": ("gamma", (2.0, 1.0))}
    overridden = priors_of({"loading": "normal(0, 5)", "variance": "gamma(1, 1)[sd]"})
    assert overridden["f=~u2"] == overridden["f=~y3"] == ("normal", (0.0, 5.0))
    assert overridden["g~~g"] == overridden["f~~f"] == ("gamma", (1.0, 1.0))


def test_override_is_checked_for_its_kind():
    with pytest.raises(PriorError, match="positive numbers"):
        default_priors({"variance": "normal(0, 1)"})


def test_unknown_kind_in_overrides():
    with pytest.raises(PriorError) as info:
        default_priors({"loadings": "normal(0, 1)", "residual": "gamma(1, 1)"})
    message = str(info.value)
    assert "['loadings', 'residual']" in message and "loading, regression, intercept, variance, covariance" in message


# --- priors in the syntax and in make_plan ----------------------------------------------------

CFA = "f =~ y1 + prior(\"normal(0, 1)\")*y2 + y3"


def test_prior_in_syntax_reaches_the_plan():
    assert parameter(CFA, "f=~y2") == Prior("normal", (0.0, 1.0))
    assert parameter(CFA, "f=~y3") == Prior("normal", (0.0, 10.0))  # the default for the others
    assert parameter(CFA, "y1~~y1") == Prior("gamma", (1.0, 0.5), "sd")
    assert parameter(CFA, "y1~1") == Prior("normal", (0.0, 32.0))


def test_syntax_prior_beats_the_kind_override():
    overrides = (("loading", "normal(1, 0.5)"),)
    assert parameter(CFA, "f=~y2", overrides) == Prior("normal", (0.0, 1.0))
    assert parameter(CFA, "f=~y3", overrides) == Prior("normal", (1.0, 0.5))


def test_variance_prior_in_syntax():
    syntax = "f =~ y1 + y2 + y3\ny1 ~~ prior(\"inverse_gamma(1, 1)[var]\")*y1\ny2 ~~ prior(\"half_normal(1)\")*y2"
    assert parameter(syntax, "y1~~y1") == Prior("inverse_gamma", (1.0, 1.0), "var")
    assert parameter(syntax, "y2~~y2") == Prior("half_normal", (1.0,), "sd")


def test_covariance_prior_in_syntax_sets_the_block_prior():
    syntax = "f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\nf1 ~~ prior(\"lkj(2)\")*f2"
    (block,) = plan(syntax).blocks
    assert block.prior == Prior("lkj", (2.0,)) and block.variables == ("f1", "f2")
    (block,) = plan("f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6", (("covariance", "lkj(3)"),)).blocks
    assert block.prior == Prior("lkj", (3.0,))


def test_one_block_takes_one_prior():
    syntax = "f1 =~ y1 + y2\nf2 =~ y3 + y4\nf3 =~ y5 + y6\nf1 ~~ prior(\"lkj(2)\")*f2"
    with pytest.raises(SpecificationError, match="different priors"):
        plan(syntax)


def test_shared_label_with_different_priors():
    syntax = "f =~ y1 + prior(\"normal(0, 1)\")*a*y2 + prior(\"normal(0, 2)\")*a*y3"
    with pytest.raises(SpecificationError, match="'a' have different priors"):
        plan(syntax)
    shared = "f =~ y1 + prior(\"normal(0, 1)\")*a*y2 + a*y3"
    assert parameter(shared, "f=~y2") == Prior("normal", (0.0, 1.0))


def test_invalid_prior_in_syntax_names_the_problem():
    with pytest.raises(PriorError, match="positive numbers"):
        plan("f =~ y1 + y2 + y3\ny1 ~~ prior(\"normal(0, 1)\")*y1")
    with pytest.raises(PriorError, match="unknown prior family 'nromal'"):
        plan("f =~ y1 + prior(\"nromal(0, 1)\")*y2 + y3")


@pytest.mark.parametrize("syntax", [
    'y ~ prior("lognormal(0, 1)")*x',                 # a regression starts at 0 by default
    'y ~ prior("uniform(0.5, 2)")*x',
    'f =~ y1 + prior("uniform(2, 3)")*y2 + y3',       # a loading starts at 1 by default
])
def test_default_starts_move_inside_a_bounded_prior(syntax):
    """The model's log density at its starting point is finite (was -inf or NaN)."""
    rng = np.random.default_rng(1)
    data = pd.DataFrame(rng.normal(size=(50, 5)), columns=["y", "x", "y1", "y2", "y3"])
    logps = bm.Model(syntax, data).pymc_model.point_logps()
    assert np.isfinite(list(logps.values())).all(), logps


def test_a_written_start_outside_the_prior_is_an_error():
    data = pd.DataFrame(np.random.default_rng(1).normal(size=(50, 2)), columns=["y", "x"])
    with pytest.raises(PriorError, match="start value 0 of y~x lies outside the support of its prior lognormal"):
        bm.Model('y ~ prior("lognormal(0, 1)")*start(0)*x', data).pymc_model
