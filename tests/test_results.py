"""Post-processing of draws: factor sign alignment and defined parameters (no sampling); the
summary's lavaan layout, on a table and on two small fits; the package's warnings on one line;
forest plots."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_msem as bm
from bayes_msem.plots.forest import Series, forest
from bayes_msem.results.clusters import forest_plot
from bayes_msem.results.fit import align_signs, evaluate_definitions
from bayes_msem.results.report import estimates_text
from bayes_msem.spec.plan import parameter_name
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import build_table, definitions


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
    from bayes_msem.results.fit import Fit

    table = build_table(parse("f =~ y1 + a*y2 + a*y3"))
    theta = _theta(table, np.random.default_rng(3).normal(size=(2, 40, int(table["free"].max()))))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"theta": theta}),
                                  "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 40)))})})
    table_out = Fit(tree, table, definitions(parse("f =~ y1")), {}).parameters().set_index(["lhs", "op", "rhs"])
    shared = table_out.loc[[("f", "=~", "y2"), ("f", "=~", "y3")], "mean"]
    assert shared.iloc[0] == shared.iloc[1] == pytest.approx(float(_value(theta, "f=~y2").mean()))


def test_sampled_scores_follow_their_factors_reflection():
    from bayes_msem.results.fit import align_scores, factor_signs

    table = build_table(parse("f =~ y1 + y2 + y3"), std_lv=True)
    values = np.ones((1, 4, int(table["free"].max())))
    values[0, :2, 0] = -1.0  # f reflected in the first two draws
    signs = factor_signs(_theta(table, values), table)
    scores = xr.DataArray(np.ones((1, 4, 3, 1)), dims=("chain", "draw", "row", "v"), coords={"v": ["f"]},
                          name="scores_single")
    np.testing.assert_array_equal(align_scores(scores, signs).values[0, :, 0, 0], [-1, -1, 1, 1])


_NAN = np.nan
_COLUMNS = ["lhs", "op", "rhs", "level", "label", "random", "free", "mean", "sd", "eti_2.5%", "eti_97.5%", "r_hat",
            "ess_bulk", "ess_tail"]
_STATS = (0.5, 0.01, 0.48, 0.52, 1.0, 500.0, 400.0)


def test_estimates_are_laid_out_as_lavaan_lays_them_out():
    """Sections per level, rows under their left-hand side, residual dots, labels; numbers with three
    decimals (more where the mean would read 0.000), integer ESS; a fixed value alone; a random
    slope and a binary item's residual named, not shown as numbers; thresholds; a negative binomial
    item's dispersion."""
    rows = [("f", "=~", "y1", "within", None, None, False, 1.0, *[_NAN] * 6),
            ("f", "=~", "y2", "within", "a", None, True, 0.8, 0.05, 0.7, 0.9, 1.0012, 412.6, 300.0),
            ("f", "=~", "u", "within", None, None, True, *_STATS),
            ("y2", "~", "x", "within", None, "s", False, *[_NAN] * 7),
            ("y1", "~~", "y2", "within", None, None, True, -0.12345, 0.01, -0.14, -0.1, 1.0, 500.0, 400.0),
            ("u", "~~", "u", "within", None, None, False, 0.0, *[_NAN] * 6),
            ("o", "|", "t1", "within", None, None, True, *_STATS),
            ("n", "~~", "n", "within", None, None, True, *_STATS),
            ("f", "~~", "f", "within", None, None, True, *_STATS),
            ("y2", "~1", "", "between", None, None, True, 0.00004, 0.00002, 0.00001, 0.00009, 1.0, 500.0, 400.0),
            ("ab", ":=", "a*2", "", None, None, True, 1.6, 0.1, 1.4, 1.8, 1.0, 412.6, 300.0)]
    text = estimates_text(pd.DataFrame(rows, columns=_COLUMNS), {"u": "bernoulli", "n": "negbinomial"})
    header = " " * 18 + "     Mean       SD     2.5%    97.5%    R-hat      ESS"
    assert text == [
        "Level: within", "",
        "Latent Variables:", header,
        "  f =~",
        "    y1                1.000",
        "    y2 (a)            0.800    0.050    0.700    0.900    1.001      413",
        "    u                 0.500    0.010    0.480    0.520    1.000      500", "",
        "Regressions:", header,
        "  y2 ~",
        "    x                varies over clusters: s", "",
        "Covariances:", header,
        "  .y1 ~~",
        "    .y2              -0.123    0.010   -0.140   -0.100    1.000      500", "",
        "Thresholds:", header,
        "    o|t1              0.500    0.010    0.480    0.520    1.000      500", "",
        "Variances:", header,
        "   .u                from the family: bernoulli",
        "    n (dispersion)    0.500    0.010    0.480    0.520    1.000      500",
        "    f                 0.500    0.010    0.480    0.520    1.000      500", "",
        "Level: between", "",
        "Intercepts:", header,
        "    y2             0.000040 0.000020 0.000010 0.000090    1.000      500", "",
        "Defined Parameters:", header,
        "    ab                1.600    0.100    1.400    1.800    1.000      413", ""]


def _slope_data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    cluster = np.repeat(np.arange(60), 12)
    x = rng.normal(size=len(cluster))
    slope = 0.5 + 0.4 * rng.normal(size=60)
    y = slope[cluster] * x + 0.6 * rng.normal(size=60)[cluster] + rng.normal(size=len(cluster))
    return pd.DataFrame({"y": y, "x": x, "cluster": cluster})


def _logit_data() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    cluster = np.repeat(np.arange(40), 6)
    x = rng.normal(size=len(cluster))
    u = rng.normal(scale=0.5, size=40)[cluster]
    return pd.DataFrame({"g": cluster, "x": x, "y": (rng.random(len(x)) < 1 / (1 + np.exp(-u - x))).astype(float)})


@pytest.fixture(scope="module")
def slope_fit() -> bm.Fit:
    model = bm.Model("level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n", _slope_data(), cluster="cluster")
    return model.fit(draws=300, tune=300, chains=2, random_seed=1)


def _line(text: str, level: str, section: str, start: str) -> str:
    """The one line of ``section`` at ``level`` of a summary that starts with ``start``."""
    body = text.split(f"Level: {level}")[1].split(f"{section}:")[1].split("\n\n")[0]
    (line,) = [line for line in body.splitlines() if line.startswith(start)]
    return line


def test_summary_of_a_random_slope_fit(slope_fit):
    """The slope's row names its random parameter; its mean and variance are between-level rows
    with the posterior's numbers (three decimals, R-hat, integer bulk ESS)."""
    text = slope_fit.summary()
    assert _line(text, "within", "Regressions", "    x ").split() == ["x", "varies", "over", "clusters:", "s"]
    table = slope_fit.parameters().set_index(["lhs", "op", "rhs", "level"])
    mean = table.loc[("s", "~1", "", "between")]
    expected = [f"{mean[c]:.3f}" for c in ("mean", "sd", "eti_2.5%", "eti_97.5%", "r_hat")] + [f"{mean['ess_bulk']:.0f}"]
    assert _line(text, "between", "Intercepts", "    s ").split() == ["s", *expected]
    assert _line(text, "within", "Intercepts", "   .y ").split() == [".y", "0.000"]  # fixed: its value, no spread


def test_summary_names_the_family_of_a_binary_items_residual():
    with pytest.warns(bm.SamplingWarning):  # 100 draws of one chain
        fit = bm.Model("level: within\n  y ~ x\nlevel: between\n  y ~~ y\n", _logit_data(), cluster="g",
                       family={"y": "bernoulli"}).fit(draws=100, tune=100, chains=1, random_seed=1)
    line = _line(fit.summary(), "within", "Variances", "   .y ")
    assert line.split() == [".y", "from", "the", "family:", "bernoulli(logit)"]


def test_package_warnings_print_once_on_one_line_and_pytensors_blas_notice_not_at_all():
    """In a fresh process: a SamplingWarning issued twice from one place prints once, as
    "SamplingWarning: message"; another library's warning keeps Python's format; looking up
    PyTensor's BLAS flags (which warns where no BLAS library can be linked) prints nothing."""
    script = (
        "import logging, warnings\n"
        "import pytensor\n"
        "import bayes_msem as bm\n"
        "for _ in range(2):\n"
        "    warnings.warn('too few draws', bm.SamplingWarning)\n"
        "warnings.warn('elsewhere', UserWarning)\n"
        "pytensor.config.blas__ldflags\n"
        "logging.getLogger('pytensor.tensor.blas').warning('Using NumPy C-API based implementation for BLAS functions.')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stderr == "SamplingWarning: too few draws\n<string>:6: UserWarning: elsewhere\n"


def test_forest_rows_sit_under_their_headers():
    figure = forest(["a", "a", "b"], ["x", "y", "z"], [Series("one", np.array([1.0, 2.0, 3.0])),
                                                      Series("two", np.array([0.5, 1.5, 2.5]))], "title", "value")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "  x", "  y", "b", "  z"]
    assert [t.get_fontweight() == "bold" for t in ax.get_yticklabels()] == [True, False, False, True, False]
    one, two = (line for line in ax.get_lines() if line.get_label() in ("one", "two"))
    assert list(one.get_ydata() + 0.125) == list(two.get_ydata() - 0.125) == [1.0, 2.0, 4.0]  # beside each other
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one", "two"]  # colours that mean something


def test_cluster_forest_plot(slope_fit, tmp_path):
    """A row per cluster at its posterior mean, a title, an axis label and a zero line."""
    figure = slope_fit.plot_cluster_effects("s", tmp_path / "forest.png")
    assert (tmp_path / "forest.png").read_bytes()[:4] == b"\x89PNG"
    ax = figure.axes[0]
    (points,) = [line for line in ax.get_lines() if line.get_label() == "s"]
    np.testing.assert_allclose(points.get_xdata(), slope_fit.cluster_effects("s")["mean"])
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in range(60)]
    assert (figure.get_suptitle(), ax.get_xlabel(), ax.get_ylabel()) == ("Cluster-specific values of s", "s", "cluster")
    assert [list(line.get_xdata()) for line in ax.get_lines() if line.get_linestyle() == "--"] == [[0, 0]]


def test_cluster_forest_plot_of_a_covariance_block_groups_its_entries():
    """Φ_j's entries each head the rows of the clusters (draws made up: the layout is checked)."""
    draws = xr.DataArray(np.random.default_rng(1).normal(size=(2, 50, 3, 2)), dims=("chain", "draw", "cluster", "entry"),
                         coords={"cluster": [10, 11, 12], "entry": ["f1~~f1", "f1~~f2"]})
    ax = forest_plot(draws, "Phi").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Phi: f1~~f1", "  10", "  11", "  12",
                                                            "Phi: f1~~f2", "  10", "  11", "  12"]
    (points,) = [line for line in ax.get_lines() if line.get_label() == "Phi"]
    np.testing.assert_allclose(points.get_xdata(), draws.mean(("chain", "draw")).transpose("entry", "cluster").values.ravel())
