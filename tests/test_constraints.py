"""Constraints as lavaan writes them: lavaan's modifier forms (``label("a")*``, ``equal("a")*``,
``0.5?x``), equalities on any kind of parameter (covariances included) by shared labels and by
``==`` with linear expressions, and inequalities ``<``, ``>``: parse → table → plan → θ, then prior
draws, the log density and a small fit, where every draw must satisfy the constraints exactly."""

import re

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.sampling.build import prior_theta, starting_values
from bayes_msem.spec.constraints import constraint_rows, solve_constraints
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import build_table


def _data(n: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    f = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y1": 0.6 * x + rng.normal(size=n), "y2": 0.3 * x + rng.normal(size=n),
                         "y3": f + 0.5 * rng.normal(size=n), "y4": 0.8 * f + 0.5 * rng.normal(size=n),
                         "y5": 0.8 * f + 0.5 * rng.normal(size=n), "y6": 0.7 * f + 0.5 * rng.normal(size=n)})


DATA = _data()


def _model(syntax: str) -> bm.Model:
    return bm.Model(syntax, DATA)


def _columns(model: bm.Model, theta: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(model.plan.parameters["name"], theta.T))


def _refusal(syntax: str) -> str:
    with pytest.raises(bm.SpecificationError) as info:
        _model(syntax)
    return str(info.value)


# --- lavaan's modifier forms -------------------------------------------------------------

def test_label_and_equal_forms_are_labels():
    table = parse('y3 =~ y4 + label("a")*y5 + equal("a")*y6')
    assert table.label.tolist() == [None, "a", "a"]
    written = build_table(table)
    short = build_table(parse("y3 =~ y4 + a*y5 + a*y6"))
    assert written["free"].tolist() == short["free"].tolist()


def test_question_mark_is_a_start_value_of_a_free_parameter():
    table = parse("y1 ~ 0.5?x + -1?y2")
    assert table.start.tolist() == [0.5, -1.0] and table.fixed.isna().all()
    model = _model("y1 ~ 0.5?x")
    assert model.plan.parameters.set_index("name").loc["y1~x", "start"] == 0.5


@pytest.mark.parametrize("syntax, expected", [
    ("y1 ~ label(a)*x", 'a quoted label such as label("a")'),
    ('y1 ~ equal("2a")*x', 'a quoted label such as equal("a")'),
    ('y1 ~ b*label("a")*x', "at most one label per term"),
    ("y1 ~ 0.5?start(1)*x", "at most one start per term"),
])
def test_malformed_modifier_forms(syntax, expected):
    with pytest.raises(bm.ModelSyntaxError, match=re.escape(expected)):
        parse(syntax)


# --- linear equalities -------------------------------------------------------------------

@pytest.mark.parametrize("syntax, equation", [
    ("a == 2*b", lambda a, b, c: a - 2 * b),
    ("a + b + c == 3", lambda a, b, c: a + b + c - 3),
    ("a - b == 0", lambda a, b, c: a - b),
    ("2*a == b/2 + 1\nc == -a", lambda a, b, c: (2 * a - b / 2 - 1) + (c + a) ** 2),
])
def test_linear_equalities_hold_for_any_sampled_values(syntax, equation):
    base = "y1 ~ a*x\ny2 ~ b*x\ny3 ~ c*x\n"
    table = build_table(parse(base + syntax))
    constraints = solve_constraints(table, constraint_rows(parse(base + syntax)))
    assert len(constraints.derived) == syntax.count("==")
    theta = constraints.derive(np.random.default_rng(0).normal(size=(50, int(table["free"].max()))))
    assert np.abs(equation(*theta[:, :3].T)).max() < 1e-12


def test_the_left_side_is_derived_and_the_right_side_sampled():
    model = _model("y1 ~ a*x\ny2 ~ b*x\na == 2*b")
    (derived,) = model.plan.constraints.derived
    assert model.plan.parameters["name"][derived] == "y1~x"
    assert "y1~x" not in model.pymc_model.coords["regression"]


def test_a_parameter_with_a_written_prior_stays_sampled():
    model = _model('y1 ~ prior("normal(0, 1)")*a*x\ny2 ~ b*x\na == 2*b')
    (derived,) = model.plan.constraints.derived
    assert model.plan.parameters["name"][derived] == "y2~x"


def test_prior_draws_and_log_density_satisfy_equalities():
    model = _model("y1 ~ a*x\ny2 ~ b*x\ny1 ~~ v1*y1\ny2 ~~ v2*y2\na == 2*b\nv1 == v2 + 0.5")
    theta = _columns(model, prior_theta(model.pymc_model, model.plan, 400, 1))
    assert np.abs(theta["y1~x"] - 2 * theta["y2~x"]).max() < 1e-12
    assert np.abs(theta["y1~~y1"] - theta["y2~~y2"] - 0.5).max() < 1e-12
    logp = model.pymc_model.compile_logp()(model.pymc_model.initial_point())
    assert np.isfinite(logp)


def test_derived_variance_is_kept_positive():
    model = _model("y1 ~~ v1*y1\ny2 ~~ v2*y2\nv1 == 3 - v2")
    assert "derived_variances_positive" in [p.name for p in model.pymc_model.potentials]
    theta = _columns(model, prior_theta(model.pymc_model, model.plan, 300, 2))
    assert (theta["y1~~y1"] > 0).all() and np.abs(theta["y1~~y1"] + theta["y2~~y2"] - 3).max() < 1e-12


# --- covariances -------------------------------------------------------------------------

@pytest.mark.parametrize("syntax", ["y1 ~~ c*y2\ny3 ~~ c*y4", "y1 ~~ c*y2\ny3 ~~ d*y4\nc == d"])
def test_equal_covariances_are_one_parameter_whose_second_correlation_is_derived(syntax):
    model = _model(syntax)
    table = model.parameter_table()
    covariances = table[(table["op"] == "~~") & (table["lhs"] != table["rhs"])]
    assert covariances["free"].nunique() == 1 and len(covariances) == 2
    assert [b.sampled.tolist() for b in model.plan.blocks] == [[True], [False]]
    assert "corr_1_positive_definite" in [p.name for p in model.pymc_model.potentials]
    theta = _columns(model, prior_theta(model.pymc_model, model.plan, 300, 3))
    correlation = theta["y1~~y2"] / np.sqrt(theta["y3~~y3"] * theta["y4~~y4"])
    assert (np.abs(correlation) < 1).all()


def test_covariance_as_a_linear_function_of_another():
    model = _model("y1 ~~ c*y2\ny3 ~~ d*y4\nd == 0.5*c")
    theta = _columns(model, prior_theta(model.pymc_model, model.plan, 300, 4))
    assert np.abs(theta["y3~~y4"] - 0.5 * theta["y1~~y2"]).max() < 1e-12
    assert [b.complete for b in model.plan.blocks] == [True, False]


def test_equal_covariances_inside_one_block():
    model = _model("y1 ~~ c*y2 + c*y3\ny2 ~~ y3")
    (block,) = model.plan.blocks
    assert block.sampled.tolist() == [True, False, True] and not block.complete
    theta = prior_theta(model.pymc_model, model.plan, 300, 5)
    assert len(theta[0]) == 3 + 2 + 3  # three variances, covariances c and y2 ~~ y3, three intercepts


# --- inequalities ------------------------------------------------------------------------

def test_inequalities_hold_in_every_prior_draw():
    syntax = ("y1 ~ a*x\ny2 ~ b*x\ny3 ~ c*x\ny4 ~ e*x\ny1 ~~ v*y1\n"
              "a > 0\na < b\nc < 3\nc > -1\n0.2 < e\nv > 0.5")
    model = _model(syntax)
    theta = _columns(model, prior_theta(model.pymc_model, model.plan, 500, 6))
    assert (theta["y1~x"] > 0).all() and (theta["y1~x"] < theta["y2~x"]).all()
    assert ((-1 < theta["y3~x"]) & (theta["y3~x"] < 3)).all() and (theta["y4~x"] > 0.2).all()
    assert (theta["y1~~y1"] > 0.5).all()
    assert np.isfinite(model.pymc_model.compile_logp()(model.pymc_model.initial_point()))


def test_default_start_moves_inside_the_bounds_and_a_written_one_outside_is_refused():
    model = _model("y1 ~ a*x\ny2 ~ b*x\na > 2\nb > a")
    starts = dict(zip(model.plan.parameters["name"], starting_values(model.plan, model.data)))
    assert starts["y1~x"] > 2 and starts["y2~x"] > starts["y1~x"]
    with pytest.raises(bm.SpecificationError, match="violates its inequality constraint"):
        _ = _model("y1 ~ start(1)*a*x\na > 2").pymc_model


@pytest.mark.slow
def test_constraints_hold_in_every_posterior_draw():
    model = _model("y1 ~ a*x\ny2 ~ b*x\nf =~ y3 + l5*y5 + l6*y6\na == 2*b\nl5 > 0\nl5 < l6\ny1 ~~ c*y2\ny3 ~~ c*y5")
    fit = model.fit(draws=150, tune=300, chains=2, random_seed=1, progressbar=False, quiet=True)
    theta = fit.idata.posterior["theta"].stack(sample=("chain", "draw")).transpose("sample", "parameter").values
    theta = _columns(model, theta)
    assert np.abs(theta["y1~x"] - 2 * theta["y2~x"]).max() < 1e-12
    assert (theta["f=~y5"] > 0).all() and (theta["f=~y5"] < theta["f=~y6"]).all()
    assert (np.abs(theta["y1~~y2"]) < np.sqrt(theta["y3~~y3"] * theta["y5~~y5"])).all()  # y3 ~~ y5, the same c


# --- refusals ----------------------------------------------------------------------------

@pytest.mark.parametrize("syntax, expected", [
    ("y1 ~ a*x\ny2 ~ b*x\na == b^2", "is not linear (a power of a parameter)"),
    ("y1 ~ a*x\ny2 ~ b*x\na*b == 1", "is not linear (a product or quotient of parameters)"),
    ("y1 ~ a*x\ny2 ~ b*x\na == exp(b)", "is not linear"),
    ("y1 ~ a*x\ny2 ~ b*x\na == 2*b\nb == a/2", "is redundant"),
    ("y1 ~ a*x\ny2 ~ b*x\na == 2*b\nb == a/2 + 1", "contradicts the equality constraints before it"),
    ("y1 ~ a*x\na == 2*z", "'z' in the constraint 'a == 2*z' is not a parameter label"),
    ("y1 ~ a*x\ny2 ~~ v*y2\na == 2*v", "joins parameters of different kinds"),
    ('y1 ~ a*x\ny2 ~ start(1)*b*x\ny3 ~ prior("normal(0, 1)")*c*x\nb == c', None),
    ('y1 ~ start(1)*a*x\ny2 ~ start(1)*b*x\na == 2*b', "would have no effect"),
    ("y1 ~ a*x\ny2 ~ b*x\na < b\nb < a", "form a cycle"),
    ("y1 ~ a*x\na > 1\na < 0", "contradict each other"),
    ("y1 ~ a*x\ny2 ~ b*x\na + b > 1", "compares expressions"),
    ("y1 ~ a*x\ny2 ~ b*x\na == 2*b\nb > 0", "in both an equality (==) and an inequality"),
    ("y1 ~~ c*y2\nc > 0", "inequalities apply to"),
    ("y1 ~ a*x\ny2 ~ b*x\ny3 ~ c*x\na < c\nb < c", "a second lower bound"),
    ("y1 ~ a*x\ny2 ~ b*x\na < b\nb < 3", "an interval that can be empty"),
    ("y1 ~~ v*y1\nv < 0", "positive by construction"),
])
def test_refusals(syntax, expected):
    if expected is None:  # b == c between labels: one parameter, both modifiers allowed
        _model(syntax)
        return
    assert expected in _refusal(syntax)


def test_rescale_refuses_constraints():
    with pytest.raises(bm.SpecificationError, match="rescale=True cannot carry constraints"):
        bm.Model("y1 ~ a*x\na > 0", DATA, rescale=True)


def test_derived_parameters_do_not_count_against_the_moments():
    # two indicators give 5 moments; f =~ y3 + l*y4 has 6 parameters, 5 once l == 1 derives l
    with pytest.raises(bm.SpecificationError, match="6 free parameters but the data give only 5"):
        _ = _model("f =~ y3 + l*y4").plan
    assert len(_model("f =~ y3 + l*y4\nl == 1").plan.constraints.derived) == 1
