"""Post-processing of draws: factor sign alignment and defined parameters (no sampling)."""

import numpy as np
import pytest
import xarray as xr

from bayes_msem.plan import parameter_name
from bayes_msem.results import align_signs, evaluate_definitions
from bayes_msem.syntax import parse
from bayes_msem.table import build_table, definitions


def _theta(table, values):
    """Draws (chain, draw, parameter) with one column per free parameter, named as the package does."""
    free = table[table["free"] > 0].drop_duplicates("free").sort_values("free")
    names = [parameter_name(*r) for r in free[["level", "lhs", "op", "rhs"]].itertuples(index=False)]
    return xr.DataArray(np.array(values, dtype=float), dims=("chain", "draw", "parameter"), coords={"parameter": names})


def _value(theta, name):
    return theta.sel(parameter=name).values


def test_reflected_draws_are_aligned_on_the_first_loading():
    table = build_table(parse("f =~ y1 + y2 + y3\ng =~ y4 + y5 + y6\nf ~~ g"), std_lv=True)
    rng = np.random.default_rng(1)
    n_free = int(table["free"].max())
    values = np.abs(rng.normal(1.0, 0.1, size=(2, 50, n_free)))
    theta = _theta(table, values)
    flip_f = rng.random((2, 50)) < 0.5  # reflect f in about half of the draws
    for name in ["f=~y1", "f=~y2", "f=~y3", "f~~g"]:
        theta.loc[dict(parameter=name)] = np.where(flip_f, -1, 1) * _value(theta, name)
    aligned = align_signs(theta, table)
    for name in theta["parameter"].values:
        np.testing.assert_allclose(_value(aligned, name), values[..., list(theta["parameter"].values).index(name)])


def test_factors_with_a_marker_are_left_alone():
    table = build_table(parse("f =~ y1 + y2 + y3"))
    theta = _theta(table, -np.ones((1, 4, int(table["free"].max()))))
    xr.testing.assert_equal(align_signs(theta, table), theta)


def test_defined_parameters_are_evaluated_per_draw():
    user = parse("m ~ a*x\ny ~ b*m + c*x\nind := a*b\ntotal := ind + c\nratio := exp(log(a)) / 2^1")
    table = build_table(user)
    rng = np.random.default_rng(2)
    theta = _theta(table, rng.uniform(0.5, 1.5, size=(2, 30, int(table["free"].max()))))
    defined = evaluate_definitions(theta, table, definitions(user))
    a, b, c = (_value(theta, n) for n in ["m~x", "y~m", "y~x"])
    np.testing.assert_allclose(defined.sel(definition="ind").values, a * b)
    np.testing.assert_allclose(defined.sel(definition="total").values, a * b + c)
    np.testing.assert_allclose(defined.sel(definition="ratio").values, a / 2)


@pytest.mark.parametrize("expression, message", [("a * q", "'q'"), ("a.real", "only numbers, labels")])
def test_bad_definitions_name_the_problem(expression, message):
    user = parse(f"m ~ a*x\nind := {expression}")
    table = build_table(user)
    theta = _theta(table, np.ones((1, 2, int(table["free"].max()))))
    with pytest.raises(ValueError, match=message):
        evaluate_definitions(theta, table, definitions(user))


def test_parameters_of_shared_labels():
    """Rows that share a label report the one parameter (named after its first row) on every row."""
    from bayes_msem.results import Fit

    table = build_table(parse("f =~ y1 + a*y2 + a*y3"))
    theta = _theta(table, np.random.default_rng(3).normal(size=(2, 40, int(table["free"].max()))))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"theta": theta}),
                                  "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 40)))})})
    table_out = Fit(tree, table, definitions(parse("f =~ y1")), {}).parameters().set_index(["lhs", "op", "rhs"])
    shared = table_out.loc[[("f", "=~", "y2"), ("f", "=~", "y3")], "mean"]
    assert shared.iloc[0] == shared.iloc[1] == pytest.approx(float(_value(theta, "f=~y2").mean()))


def test_sampled_scores_follow_their_factors_reflection():
    from bayes_msem.results import align_scores, factor_signs

    table = build_table(parse("f =~ y1 + y2 + y3"), std_lv=True)
    values = np.ones((1, 4, int(table["free"].max())))
    values[0, :2, 0] = -1.0  # f reflected in the first two draws
    signs = factor_signs(_theta(table, values), table)
    scores = xr.DataArray(np.ones((1, 4, 3, 1)), dims=("chain", "draw", "row", "v"), coords={"v": ["f"]},
                          name="scores_single")
    np.testing.assert_array_equal(align_scores(scores, signs).values[0, :, 0, 0], [-1, -1, 1, 1])
