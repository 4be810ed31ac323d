"""Tests for bayes_msem.spec.table (lavaan's defaults, free-parameter numbering, identification
checks) and the table-level checks of bayes_msem.spec.plan. No sampling, no PyMC graph.

The expected tables are what lavaan's ``sem()`` / ``cfa()`` builds with
``meanstructure = TRUE`` and ``fixed.x = TRUE``; where ``bm.datasets`` ships lavaan's own
parameter table for a model, the test compares against it as well.
"""

import functools

import numpy as np
import pandas as pd
import pytest

from bayes_msem import datasets
from bayes_msem.likelihood.registry import strategy_for
from bayes_msem.spec.plan import Plan, make_plan
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import COLUMNS, SpecificationError, assign_roles, build_table

HS = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""
FACTORS = ("visual", "textual", "speed")
ITEMS = tuple(f"x{i}" for i in range(1, 10))

DEMO = datasets.info("demo_twolevel").model  # lavaan's two-level SEM of Demo.twolevel


@functools.cache
def table(syntax: str, cluster: str | tuple[str, ...] | None = None, std_lv: bool = False) -> pd.DataFrame:
    """The parameter table of ``syntax`` (cached: tests must not modify it)."""
    return build_table(parse(syntax), cluster, std_lv)


@functools.cache
def plan(syntax: str, cluster: str | None = None, std_lv: bool = False) -> Plan:
    return make_plan(table(syntax, cluster, std_lv))


def row(t: pd.DataFrame, lhs: str, op: str, rhs: str = "", level: str = "") -> pd.Series:
    hit = t[(t["lhs"] == lhs) & (t["op"] == op) & (t["rhs"] == rhs) & (t["level"] == level)]
    assert len(hit) == 1, (lhs, op, rhs, level, hit)
    return hit.iloc[0]


def keys(t: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    return set(zip(t["level"], t["lhs"], t["op"], t["rhs"]))


def free_keys(t: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    return keys(t[t["free"] > 0])


def spec_error(syntax: str, **kwargs) -> str:
    with pytest.raises(SpecificationError) as info:
        table(syntax, **kwargs)
    return str(info.value)


def plan_error(syntax: str, **kwargs) -> str:
    t = table(syntax, **kwargs)
    with pytest.raises(SpecificationError) as info:
        make_plan(t)
    return str(info.value)


# --- Holzinger-Swineford 3-factor CFA --------------------------------------------------

def test_hs_columns_and_free_numbers():
    t = table(HS)
    assert list(t.columns) == COLUMNS
    assert t["free"].dtype == np.int64
    free = t.loc[t["free"] > 0, "free"]
    assert sorted(free) == list(range(1, 31))  # 30 distinct free parameters, numbered 1..30
    assert t["fixed"][t["free"] > 0].isna().all() and t["fixed"][t["free"] == 0].notna().all()
    assert (t["level"] == "").all()
    assert t["user"].sum() == 9 and t.loc[t["user"], "op"].eq("=~").all()


def test_hs_defaults_match_lavaan():
    t = table(HS)
    for factor, first, others in [("visual", "x1", "x2 x3"), ("textual", "x4", "x5 x6"), ("speed", "x7", "x8 x9")]:
        r = row(t, factor, "=~", first)
        assert r["free"] == 0 and r["fixed"] == 1.0  # marker-variable scaling
        assert all(row(t, factor, "=~", item)["free"] > 0 for item in others.split())
        assert row(t, factor, "~~", factor)["free"] > 0
        mean = row(t, factor, "~1")
        assert mean["free"] == 0 and mean["fixed"] == 0.0
    for item in ITEMS:
        assert row(t, item, "~~", item)["free"] > 0
        assert row(t, item, "~1")["free"] > 0
    covariances = t[(t["op"] == "~~") & (t["lhs"] != t["rhs"])]
    assert set(zip(covariances["lhs"], covariances["rhs"])) == {
        ("visual", "textual"), ("visual", "speed"), ("textual", "speed")}
    assert (covariances["free"] > 0).all() and not covariances["user"].any()
    counts = t[t["free"] > 0].groupby("op").size().to_dict()
    assert counts == {"=~": 6, "~~": 15, "~1": 9}  # 6 + (9 + 3 + 3) + 9 = 30


def test_hs_std_lv():
    t = table(HS, std_lv=True)
    assert (t.loc[t["op"] == "=~", "free"] > 0).all()  # all 9 loadings free
    for factor in FACTORS:
        variance = row(t, factor, "~~", factor)
        assert variance["free"] == 0 and variance["fixed"] == 1.0
        assert row(t, factor, "~1")["fixed"] == 0.0
    assert t["free"].max() == 30 and sorted(t.loc[t["free"] > 0, "free"]) == list(range(1, 31))
    assert all(row(t, a, "~~", b)["free"] > 0 for a, b in [("visual", "textual"), ("visual", "speed"), ("textual", "speed")])


def test_hs_std_lv_keeps_user_fixed_loading():
    t = table("f =~ 0.5*y1 + y2 + y3", std_lv=True)
    assert row(t, "f", "=~", "y1")["fixed"] == 0.5 and row(t, "f", "=~", "y2")["free"] > 0


def test_hs_against_lavaan_parameter_table():
    reference = datasets.reference("holzinger_swineford").assign(level="")
    ours = table(HS)
    lavaan_free = reference[reference["se"] > 0]
    assert free_keys(ours) == keys(lavaan_free)
    # the same order of free parameters as lavaan's parameter table
    ordered = ours[ours["free"] > 0].sort_values("free")
    assert list(zip(ordered["lhs"], ordered["op"], ordered["rhs"])) == list(
        zip(lavaan_free["lhs"], lavaan_free["op"], lavaan_free["rhs"]))
    fixed = ours[ours["free"] == 0].merge(reference, on=["lhs", "op", "rhs", "level"], how="left")
    assert (fixed["se"] == 0).all() and np.allclose(fixed["fixed"], fixed["est"])
    assert keys(ours) == keys(reference)


def test_hs_second_order_factor():
    t = table(HS + "g =~ visual + textual + speed")
    assert row(t, "g", "=~", "visual")["fixed"] == 1.0 and row(t, "g", "=~", "speed")["free"] > 0
    assert not ((t["op"] == "~~") & (t["lhs"] != t["rhs"])).any()  # first-order factors are not exogenous
    assert all(row(t, f, "~~", f)["free"] > 0 and row(t, f, "~1")["fixed"] == 0.0 for f in (*FACTORS, "g"))
    assert t["free"].max() == 30  # lavaan: 8 loadings, 9 + 3 + 1 variances, 9 intercepts


def test_hs_plan():
    hs = plan(HS)
    parameters = hs.parameters
    assert len(parameters) == 30 and list(parameters["free"]) == list(range(1, 31))
    assert parameters["kind"].value_counts().to_dict() == {
        "variance": 12, "intercept": 9, "loading": 6, "covariance": 3}
    assert parameters["name"].iloc[0] == "visual=~x2" and "visual~~textual" in set(parameters["name"])
    assert not hs.two_level and strategy_for(hs).kind == "marginal"
    level = hs.levels[""]
    assert level.variables == ITEMS + FACTORS
    assert level.beta.base.shape == (12, 12) and level.gamma.base.shape == (12, 0)
    assert level.beta.base[0, 9] == 1.0  # x1 on visual, fixed
    assert len(level.beta.index) == 6 and len(level.alpha.index) == 9


def test_hs_one_correlation_block():
    (block,) = plan(HS).blocks
    assert block.variables == FACTORS and block.level == ""
    assert block.prior.family == "lkj" and block.prior.args == (1.0,)
    assert sorted(map(tuple, block.pairs[:, :2].tolist())) == [(0, 1), (0, 2), (1, 2)]
    assert (block.variance >= 0).all()  # the three factor variances are free
    std = plan(HS, std_lv=True).blocks[0]
    assert (std.variance == -1).all() and (std.fixed_variance == 1.0).all()


# --- lavaan's Demo.twolevel ------------------------------------------------------------

def test_twolevel_defaults():
    t = table(DEMO, cluster="cluster")
    assert t["free"].max() == 20 and sorted(t.loc[t["free"] > 0, "free"]) == list(range(1, 21))
    assert set(t["level"]) == {"within", "between"}
    covariates = {"x1", "x2", "x3", "w1", "w2"}
    assert not covariates & set(t.loc[t["op"] != "~", "lhs"]) and not covariates & set(t.loc[t["op"] != "~", "rhs"])
    for y in ("y1", "y2", "y3"):
        within = row(t, y, "~1", level="within")
        assert within["free"] == 0 and within["fixed"] == 0.0  # the mean lives at the between level
        assert row(t, y, "~1", level="between")["free"] > 0
        assert row(t, y, "~~", y, "within")["free"] > 0 and row(t, y, "~~", y, "between")["free"] > 0
    for factor, level in [("fw", "within"), ("fb", "between")]:
        assert row(t, factor, "=~", "y1", level)["fixed"] == 1.0
        assert row(t, factor, "~1", level=level)["fixed"] == 0.0
        assert row(t, factor, "~~", factor, level)["free"] > 0
    assert all(row(t, "fw", "~", x, "within")["free"] > 0 for x in ("x1", "x2", "x3"))
    assert all(row(t, "fb", "~", w, "between")["free"] > 0 for w in ("w1", "w2"))
    assert (t.groupby("level")["free"].apply(lambda f: (f > 0).sum()).to_dict()
            == {"within": 9, "between": 11})


def test_twolevel_roles():
    t = table(DEMO, cluster="cluster")
    roles = assign_roles(t)
    assert list(roles) == ["within", "between"]
    assert roles["within"].observed == ("y1", "y2", "y3") and roles["within"].latent == ("fw",)
    assert roles["within"].covariates == ("x1", "x2", "x3")
    assert roles["between"].observed == ("y1", "y2", "y3") and roles["between"].latent == ("fb",)
    assert roles["between"].covariates == ("w1", "w2")
    assert roles["within"].random == roles["between"].random == ()


def test_twolevel_against_lavaan_parameter_table():
    reference = datasets.reference("demo_twolevel")
    ours = table(DEMO, cluster="cluster")
    assert free_keys(ours) == keys(reference[reference["se"] > 0])
    # lavaan keeps rows for the fixed.x covariates (fixed at their sample values); we condition without rows
    covariates = {"x1", "x2", "x3", "w1", "w2"}
    model_rows = reference[~reference["lhs"].isin(covariates)]
    assert keys(ours) == keys(model_rows)
    fixed = ours[ours["free"] == 0].merge(model_rows, on=["lhs", "op", "rhs", "level"], how="left")
    assert (fixed["se"] == 0).all() and np.allclose(fixed["fixed"], fixed["est"])


@pytest.mark.parametrize("within, between", [("1", "2"), ("within", "cluster"), ("Within", "BETWEEN"), ("1", "cluster")])
def test_level_names_give_the_same_table(within, between):
    expected = table(DEMO, cluster="cluster")
    syntax = DEMO.replace("level: within", f"level: {within}").replace("level: between", f"level: {between}")
    pd.testing.assert_frame_equal(table(syntax, cluster="cluster"), expected)
    pd.testing.assert_frame_equal(table(syntax, cluster=("cluster",)), expected)


def test_twolevel_plan():
    demo = plan(DEMO, cluster="cluster")
    assert demo.two_level and list(demo.levels) == ["within", "between"]
    assert len(demo.parameters) == 20 and demo.blocks == ()
    assert demo.parameters["name"].iloc[0] == "within:fw=~y2"
    assert set(demo.parameters["level"]) == {"within", "between"}
    assert demo.levels["within"].gamma.base.shape == (4, 3)
    assert demo.levels["between"].gamma.base.shape == (4, 2)


def test_within_only_variable_keeps_its_within_intercept():
    t = table("level: within\nfw =~ y1 + y2 + y3 + y4\nlevel: between\nfb =~ y1 + y2 + y3", cluster="c")
    assert row(t, "y4", "~1", level="within")["free"] > 0
    assert row(t, "y1", "~1", level="within")["fixed"] == 0.0
    assert not ((t["level"] == "between") & (t["lhs"] == "y4")).any()


def test_between_only_variable_is_modelled_at_the_between_level():
    t = table("level: within\nfw =~ y1 + y2 + y3\nlevel: between\nfb =~ y1 + y2 + y3 + z", cluster="c")
    assert row(t, "z", "~~", "z", "between")["free"] > 0 and row(t, "z", "~1", level="between")["free"] > 0
    assert not ((t["level"] == "within") & (t["lhs"] == "z")).any()


# --- labels and equality constraints ---------------------------------------------------

def test_shared_label_shares_the_free_number():
    t = table("f =~ y1 + a*y2 + a*y3")
    assert row(t, "f", "=~", "y2")["free"] == row(t, "f", "=~", "y3")["free"] > 0
    assert t["free"].max() == 8  # 1 loading + 3 + 1 variances + 3 intercepts
    assert list(t.loc[t["label"].notna(), "label"]) == ["a", "a"]


def test_equality_constraint_merges_labels():
    merged = table("f =~ y1 + a*y2 + b*y3\na == b")
    shared = table("f =~ y1 + a*y2 + a*y3")
    assert list(merged["free"]) == list(shared["free"])
    # the labels stay as written (':=' definitions may use either)
    assert row(merged, "f", "=~", "y2")["label"] == "a" and row(merged, "f", "=~", "y3")["label"] == "b"


@pytest.mark.parametrize("constraints", ["a == b\nb == c", "b == c\na == b", "c == a\nb == c"])
def test_chained_equality_constraints(constraints):
    t = table("f =~ y1 + a*y2 + b*y3 + c*y4\n" + constraints)
    loadings = [row(t, "f", "=~", y)["free"] for y in ("y2", "y3", "y4")]
    assert loadings[0] > 0 and len(set(loadings)) == 1
    assert t["free"].max() == 10


def test_constraints_other_than_two_labels_stay_out_of_the_table():
    # a == 2*b, a == 2 and inequalities reparametrise θ in the plan (tests/test_constraints.py)
    assert list(table("f =~ y1 + a*y2 + b*y3\na == 2*b\na > 0")["free"]) == list(table("f =~ y1 + a*y2 + b*y3")["free"])


def test_label_shared_by_a_loading_and_a_variance():
    message = spec_error("f =~ y1 + a*y2 + y3\ny2 ~~ a*y2")
    assert "'a'" in message and "different kinds" in message and "one kind" in message
    message = spec_error("f =~ y1 + a*y2 + y3\ny3 ~~ b*y3\na == b")
    assert "a == b" in message and "different kinds" in message


def test_labelled_fixed_value_propagates():
    t = table("f =~ y1 + a*y2 + y3\ng =~ y4 + 0.5*a*y5 + y6")
    for item in ("y2", "y5"):
        r = row(t, "f" if item == "y2" else "g", "=~", item)
        assert r["free"] == 0 and r["fixed"] == 0.5
    t = table("f =~ y1 + a*y2 + b*y3 + 2*b*y4\na == b")  # through '==' as well
    assert [row(t, "f", "=~", y)["fixed"] for y in ("y2", "y3", "y4")] == [2.0, 2.0, 2.0]


def test_label_fixed_to_two_values():
    message = spec_error("f =~ y1 + 2*a*y2 + 3*a*y3")
    assert "'a'" in message and "different values" in message


# --- path-model defaults ----------------------------------------------------------------

def test_pure_outcomes_covary():
    t = table("y1 ~ x1\ny2 ~ x1")
    covariance = row(t, "y1", "~~", "y2")
    assert covariance["free"] > 0 and not covariance["user"]
    assert assign_roles(t)[""].covariates == ("x1",)
    assert "x1" not in set(t["lhs"]) and t["free"].max() == 7  # 2 slopes, 2 variances, 1 covariance, 2 intercepts


def test_mediation_has_no_residual_covariance():
    t = table("m ~ x\ny ~ m + x")
    assert not ((t["op"] == "~~") & (t["lhs"] != t["rhs"])).any()
    assert assign_roles(t)[""].covariates == ("x",) and t["free"].max() == 7


def test_user_fixed_covariance_replaces_the_default():
    t = table("y1 ~ x1\ny2 ~ x1\ny1 ~~ 0*y2")
    covariance = t[(t["op"] == "~~") & (t["lhs"] != t["rhs"])]
    assert len(covariance) == 1 and covariance["fixed"].iloc[0] == 0.0 and covariance["user"].iloc[0]


def test_exogenous_factors_covary_endogenous_do_not():
    t = table("f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\nf3 =~ y7 + y8 + y9\nf3 ~ f1 + f2")
    covariances = t[(t["op"] == "~~") & (t["lhs"] != t["rhs"])]
    assert set(zip(covariances["lhs"], covariances["rhs"])) == {("f1", "f2")}


def test_dependent_factors_covary_like_lavaan_lv_y():
    t = table("f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\nf1 ~ x\nf2 ~ x")
    assert row(t, "f1", "~~", "f2")["free"] > 0
    assert assign_roles(t)[""].covariates == ("x",)


def test_predictor_used_elsewhere_is_not_a_covariate():
    t = table("y ~ x\nx ~~ x")
    assert assign_roles(t)[""].covariates == ()
    assert row(t, "x", "~1")["free"] > 0


# --- specification errors ----------------------------------------------------------------

def test_factor_without_a_scale():
    message = spec_error("f =~ NA*y1 + y2 + y3")
    assert "'f'" in message and "no scale" in message
    assert "f =~ 1*y1" in message and "f ~~ 1*f" in message and "std_lv=True" in message
    assert table("f =~ NA*y1 + y2 + y3\nf ~~ 1*f")["free"].max() == 9
    assert table("f =~ NA*y1 + y2 + y3", std_lv=True)["free"].max() == 9


def test_factor_without_a_scale_in_a_level():
    message = spec_error("level: within\nfw =~ NA*y1 + y2 + y3\nlevel: between\nfb =~ y1 + y2 + y3", cluster="c")
    assert "'fw'" in message and "within level" in message


def test_more_parameters_than_moments():
    message = plan_error("f =~ y1")  # loading 1, y1 ~~ y1, f ~~ f, y1 ~1: 3 parameters, 2 moments
    assert "3 free parameters" in message and "only 2 moments" in message and "fix or constrain" in message
    plan("f =~ y1\ny1 ~~ 0*y1")  # fixing the residual variance identifies it


def test_more_parameters_than_moments_two_levels():
    # within: 4 parameters for 3 covariance moments (no means at the within level)
    syntax = "level: within\nfw =~ y1 + y2\nlevel: between\nfb =~ y1 + y2"
    message = plan_error(syntax, cluster="c")
    assert "10 free parameters" in message and "only 8 moments" in message
    plan(DEMO, cluster="cluster")  # 20 parameters, 30 moments


def test_factor_defined_at_both_levels():
    message = spec_error("level: within\nf =~ y1 + y2 + y3\nlevel: between\nf =~ y1 + y2 + y3", cluster="c")
    assert "'f'" in message and "f_w" in message and "f_b" in message


def test_within_factor_used_in_the_between_block_is_its_between_part():
    """A factor used above its own level stands for its part there (a cross-level structure),
    with a free variance and its mean fixed to 0; used below its level it is an error."""
    table = build_table(parse("level: within\nfw =~ y1 + y2 + y3\nlevel: between\nfb =~ y1 + y2 + y3\nfb ~ fw"),
                        cluster="c")
    part = table.query("level == 'between' and lhs == 'fw'").set_index("op")
    assert part.loc["~~", "free"] > 0 and part.loc["~1", "fixed"] == 0
    assert strategy_for(make_plan(table)).kind == "conditional"
    message = spec_error("level: within\nfw =~ y1 + y2 + y3\nfw ~ fb\nlevel: between\nfb =~ y1 + y2 + y3",
                         cluster="c")
    assert "line 3" in message and "'fb'" in message and "lower within level" in message


def test_cluster_without_level_blocks():
    message = spec_error(HS, cluster="school")
    assert "cluster='school'" in message and "level: within" in message and "drop cluster=" in message


def test_level_blocks_without_cluster():
    message = spec_error(DEMO)
    assert "no cluster" in message and "cluster='COLUMN'" in message


def test_unknown_level_name():
    message = spec_error(DEMO.replace("level: between", "level: school"), cluster="cluster")
    assert "'school'" in message and "level: between" in message and "'cluster'" in message


def test_only_one_level_block():
    message = spec_error("level: within\nfw =~ y1 + y2 + y3", cluster="c")
    assert "both" in message and "level: between" in message
    message = spec_error("level: 2\nfb =~ y1 + y2 + y3", cluster="c")
    assert "both" in message and "'within'" not in message and "between" in message


def test_four_levels_are_named_after_their_cluster_columns():
    message = spec_error(DEMO, cluster=("class", "school", "district"))
    assert "unknown level 'between'" in message and "'level: district' (or 4)" in message
    syntax = "level: 4\n  y ~~ y\nlevel: within\n  y ~ x\nlevel: class\n  y ~~ y\nlevel: school\n  y ~~ y\n"
    table = build_table(parse(syntax), cluster=["class", "school", "district"])
    assert list(dict.fromkeys(table["level"])) == ["within", "class", "school", "district"]


THREE_LEVEL = """
level: school
  y ~ w
level: within
  y ~ x
level: class
  y ~~ y
"""


def test_three_level_blocks_named_after_cluster_columns():
    """Blocks are ordered lowest level first whatever the written order; y's mean lives at the
    top level (school), its intercepts below are fixed to 0."""
    result = table(THREE_LEVEL, cluster=("class", "school"))
    assert list(dict.fromkeys(result["level"])) == ["within", "class", "school"]
    intercepts = result[result["op"] == "~1"].set_index("level")
    assert intercepts.loc["within", "fixed"] == 0 and intercepts.loc["class", "fixed"] == 0
    assert intercepts.loc["school", "free"] > 0
    numbered = table(THREE_LEVEL.replace("school", "3").replace("within", "1").replace("class", "2"),
                    cluster=("class", "school"))
    pd.testing.assert_frame_equal(numbered, result)


def test_three_level_unknown_or_missing_block():
    message = spec_error(THREE_LEVEL.replace("level: class", "level: between"), cluster=("class", "school"))
    assert "'between'" in message and "'level: class' (or 2)" in message and "'level: school' (or 3)" in message
    message = spec_error("level: within\ny ~ x\nlevel: school\ny ~ w", cluster=("class", "school"))
    assert "needs a block for each level" in message and "'level: class'" in message


def test_random_slope_is_a_between_level_variable_and_plans_as_hybrid():
    syntax = "level: within\ns | y ~ x\nlevel: between\ny ~ w\ns ~ w"
    t = table(syntax, cluster="c")
    slope = row(t, "y", "~", "x", "within")
    assert slope["random"] == "s" and slope["user"]
    assert t.loc[t["random"].notna(), "random"].tolist() == ["s"]
    roles = assign_roles(t)
    assert roles["between"].random == ("s",) and roles["within"].covariates == ("x",)
    assert row(t, "s", "~", "w", "between")["free"] > 0
    assert row(t, "s", "~~", "s", "between")["free"] > 0 and row(t, "s", "~1", level="between")["free"] > 0
    assert slope["free"] == 0  # its mean is the between-level intercept s ~ 1
    assert strategy_for(plan(syntax, cluster="c")).kind == "marginal"  # a slope on an observed covariate integrates out


def test_thresholds_need_an_ordinal_variable_with_matching_categories():
    message = spec_error("f =~ y1 + y2 + y3\ny1 | t1")
    assert "thresholds" in message and "declare 'y1' ordinal" in message
    user = parse("f =~ y1 + y2 + y3\ny1 | t1")
    t = build_table(user, families={"y1": "ordinal"}, categories={"y1": 2})
    assert t.query("op == '|'")[["lhs", "rhs"]].values.tolist() == [["y1", "t1"]]
    with pytest.raises(SpecificationError, match="3 categories in the data, so it takes 2 thresholds; 1 are written"):
        build_table(user, families={"y1": "ordinal"}, categories={"y1": 3})


# --- correlation blocks --------------------------------------------------------------------

def test_pure_outcomes_form_one_block():
    (block,) = plan("y1 ~ x\ny2 ~ x\ny3 ~ x").blocks
    assert block.variables == ("y1", "y2", "y3") and len(block.pairs) == 3


def test_separate_components_give_separate_blocks():
    blocks = plan("y1 ~~ y2\ny3 ~~ y4").blocks
    assert [b.variables for b in blocks] == [("y1", "y2"), ("y3", "y4")]
    assert [b.name for b in blocks] == ["corr_0", "corr_1"]


@pytest.mark.parametrize("extra", ["", "\ny1 ~~ 0*y3"])
def test_incomplete_correlation_block(extra):
    """y1 ~~ y2 and y2 ~~ y3 without y1 ~~ y3 (or with it fixed to 0): one block of three whose
    correlation between y1 and y3 stays 0; with all three free, a complete (LKJ) block."""
    (block,) = plan("y1 ~~ y2\ny2 ~~ y3" + extra).blocks
    assert block.variables == ("y1", "y2", "y3") and not block.complete
    assert [tuple(p[:2]) for p in block.pairs] == [(0, 1), (1, 2)]
    np.testing.assert_array_equal(block.correlation_matrix(np.array([0.5, -0.5])),
                                  [[1, 0.5, 0], [0.5, 1, -0.5], [0, -0.5, 1]])
    assert plan("y1 ~~ y2\ny2 ~~ y3\ny1 ~~ y3").blocks[0].complete


def test_incomplete_block_among_observed_residuals_of_a_cfa():
    (block,) = plan("f =~ y1 + y2 + y3 + y4 + y5 + y6\ny1 ~~ y2\ny2 ~~ y3").blocks
    assert block.variables == ("y1", "y2", "y3") and block.level == "" and not block.complete


def test_equal_covariances_sample_the_first_pair_only():
    first, second = plan("y1 ~~ a*y2\ny3 ~~ a*y4").blocks
    assert first.sampled.tolist() == [True] and second.sampled.tolist() == [False]
    assert first.pairs[0, 2] == second.pairs[0, 2] and not second.complete


def test_random_parameter_outside_the_lowest_block():
    syntax = "level: within\ny ~ x\nlevel: class\ns | y ~ w\nlevel: school\ny ~~ s\n"
    message = spec_error(syntax, cluster=("class", "school"))
    assert "'s' must be declared in the 'level: within' block" in message


def test_random_slope_at_two_upper_levels_has_its_mean_at_the_top():
    """s_jk = γ + v_jk + u_k: the class part has mean 0 (as y's class part), or the two means
    would only be identified through their sum."""
    syntax = "level: within\ns | y ~ x\nlevel: class\ny ~~ y\ns ~~ s\nlevel: school\ny ~~ y\ns ~~ s"
    t = table(syntax, cluster=("class", "school"))
    assert row(t, "s", "~1", level="class")["free"] == 0 and row(t, "s", "~1", level="class")["fixed"] == 0
    assert row(t, "s", "~1", level="school")["free"] > 0
    assert row(t, "y", "~1", level="class")["free"] == 0 and row(t, "y", "~1", level="school")["free"] > 0


@pytest.mark.parametrize("syntax, fragments", [
    ('f =~ prior("normal(1, 1)")*y1 + y2 + y3', ["prior on 'f =~ y1' would have no effect", "fixed at 1", "NA*y1"]),
    ('f =~ y1 + y2 + y3\ny1 ~~ prior("gamma(1, 1)")*0.5*y1', ["prior on 'y1 ~~ y1'", "fixed at 0.5", "Drop the prior"]),
])
def test_prior_on_a_fixed_parameter(syntax, fragments):
    message = spec_error(syntax)
    assert all(f in message for f in fragments), message
    table('f =~ NA*prior("normal(1, 1)")*y1 + y2 + y3\nf ~~ 1*f')  # freed, the prior applies
