"""Tests for the bayes-msem command line program: error paths without sampling, and one end-to-end fit."""

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.cli import main

MODEL = "f =~ y1 + y2 + y3\n"


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A one-factor model file and a CSV with 200 rows simulated from it."""
    rng = np.random.default_rng(1)
    f = rng.standard_normal(200)
    data = pd.DataFrame({f"y{k}": 0.8 * f + 0.6 * rng.standard_normal(200) for k in (1, 2, 3)})
    model, csv = tmp_path / "model.txt", tmp_path / "data.csv"
    model.write_text(MODEL)
    data.to_csv(csv, index=False)
    return model, csv


def _no_fit(*args, **kwargs):
    raise AssertionError("the CLI should have stopped before fitting")


@pytest.fixture(autouse=True)
def _forbid_fitting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Error-path tests must fail fast: fitting is only allowed in the end-to-end test."""
    if "end_to_end" not in request.node.name:
        monkeypatch.setattr(bm.Model, "fit", _no_fit)


def _error(capsys: pytest.CaptureFixture) -> str:
    """The single stderr line the CLI printed."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bayes-msem {version('bayes_msem')}"


def test_missing_model_file(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, csv = inputs
    assert main(["fit", str(tmp_path / "nope.txt"), str(csv), "--out", str(tmp_path / "out")]) == 2
    assert "nope.txt" in _error(capsys)


def test_missing_csv(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, _ = inputs
    assert main(["fit", str(model), str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.csv" in _error(capsys)


def test_bad_syntax(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    model.write_text("f =~ y1 +\n")
    assert main(["fit", str(model), str(csv), "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert "model.txt" in err and "line 1" in err
    assert not (tmp_path / "out").exists()  # nothing is created for a model that cannot be fitted


def test_unknown_variable(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    model.write_text("f =~ y1 + y2 + y9\n")
    assert main(["fit", str(model), str(csv), "--out", str(tmp_path / "out")]) == 2
    assert "y9" in _error(capsys)


def test_bad_draws(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    assert main(["fit", str(model), str(csv), "--draws", "0", "--out", str(tmp_path / "out")]) == 2
    assert "draws" in _error(capsys)


def test_unwritable_out_is_caught_before_fitting(inputs: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["fit", str(model), str(csv), "--out", str(blocker / "out")]) == 2  # a path under a regular file
    assert "a_file" in _error(capsys)
    assert main(["fit", str(model), str(csv), "--out", str(blocker)]) == 2  # a regular file
    assert "output directory" in _error(capsys)


def test_end_to_end(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    out = tmp_path / "results" / "run1"
    argv = ["fit", str(model), str(csv), "--draws", "100", "--tune", "100", "--chains", "1", "--seed", "1",
            "--sampler", "pymc", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "single-level SEM" in printed and "f =~ y2" in printed and "Observations                 200" in printed
    assert str(out / "posterior.nc") in printed and str(out / "parameters.csv") in printed
    written = pd.read_csv(out / "parameters.csv")
    loaded = bm.load(out / "posterior.nc").parameters()
    assert list(written["lhs"] + written["op"] + written["rhs"].fillna("")) == list(loaded["lhs"] + loaded["op"] + loaded["rhs"])
    assert written["free"].sum() == 9  # 2 loadings, 3 residual variances, the factor variance, 3 intercepts
    np.testing.assert_allclose(loaded["mean"].to_numpy(float), written["mean"].to_numpy(float), rtol=1e-9)


def test_three_level_cluster_columns(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--cluster class school`` passes both columns, lowest first: the missing upper column is named."""
    model, csv = inputs
    pd.read_csv(csv).assign(klass=np.repeat(np.arange(50), 4)).to_csv(csv, index=False)
    model.write_text("level: within\n  y1 ~ y2\nlevel: klass\n  y1 ~~ y1\nlevel: school\n  y1 ~~ y1\n")
    assert main(["fit", str(model), str(csv), "--cluster", "klass", "school", "--out", str(tmp_path / "out")]) == 2
    assert "cluster column 'school' is not a column" in _error(capsys)


def test_prior_sets_are_read_with_names_kinds_and_defaults() -> None:
    from bayes_msem.cli import prior_sets

    assert prior_sets(["default", "tight: variance=gamma(2, 4)[sd]", "loading=normal(0, 1); variance=gamma(1, 1)[sd]"]) == {
        "default": {}, "tight": {"variance": "gamma(2, 4)[sd]"},
        "set 3": {"loading": "normal(0, 1)", "variance": "gamma(1, 1)[sd]"}}


def test_unreadable_prior_set(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    assert main(["sensitivity", str(model), str(csv), "--prior-set", "variance", "--out", str(tmp_path / "out")]) == 2
    assert "[NAME:]KIND=PRIOR" in _error(capsys)


def test_sensitivity_end_to_end(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Three prior sets: refits, a side-by-side table and a forest plot (the PNG looked at: each
    parameter's posterior under the three sets, one row each)."""
    model, csv = inputs
    out = tmp_path / "out"
    assert main(["sensitivity", str(model), str(csv), "--draws", "200", "--tune", "200", "--chains", "2", "--seed", "1",
                 "--out", str(out), "--prior-set", "default", "--prior-set", "tight: variance=gamma(2000, 4000)[sd]",
                 "--prior-set", "wide: loading=normal(0, 100)"]) == 0
    table = pd.read_csv(out / "prior_sets.csv", header=[0, 1], index_col=[0, 1, 2, 3])
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == ["default", "tight", "wide"]
    variance = table.xs(("y1", "~~", "y1"), level=(0, 1, 2)).iloc[0]
    # a prior that pins the SD near 0.5 (variance 0.25) pulls the residual variance (about 0.36) to it
    assert variance[("tight", "mean")] < variance[("default", "mean")]
    assert (out / "prior_sets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Wrote" in capsys.readouterr().out


def test_family_ordered_and_prior_options_reach_the_model(inputs: tuple[Path, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model, csv = inputs
    data = pd.read_csv(csv)
    data["y1"] = (data["y1"] > 0).astype(int)
    data["y2"] = np.digitize(data["y2"], [-0.5, 0.5])
    data.to_csv(csv, index=False)
    built = []
    monkeypatch.setattr(bm.Model, "fit", lambda self, **kwargs: built.append(self) or _no_fit())
    argv = ["fit", str(model), str(csv), "--family", "y1=bernoulli(probit)", "--ordered", "y2",
            "--priors", "variance=gamma(2, 4)[sd]", "--rescale", "--out", str(tmp_path / "out")]
    with pytest.raises(AssertionError, match="stopped before fitting"):
        main(argv)
    (fitted,) = built
    assert {v: str(f) for v, f in fitted.families.items()} == {"y1": "bernoulli(probit)", "y2": "ordinal(probit)"}
    assert fitted.priors == {"variance": "gamma(2, 4)[sd]"}
    assert set(fitted.scales) == set(fitted.data.values) - {"y1", "y2"}  # the continuous variables


@pytest.mark.parametrize("option, fragment", [
    (["--family", "y1"], "cannot read --family 'y1'; write NAME=VALUE"),
    (["--priors", "loadings=normal(0, 1)"], "unknown parameter kind(s) ['loadings']"),
    (["--family", "y1=gamma"], "unknown family 'gamma'"),
])
def test_bad_family_or_prior_option(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
                                    option: list[str], fragment: str) -> None:
    model, csv = inputs
    assert main(["fit", str(model), str(csv), *option, "--out", str(tmp_path / "out")]) == 2
    assert fragment in _error(capsys)


def test_study_keeps_prior_for_draws_from_the_prior_beside_priors_per_kind() -> None:
    from bayes_msem.cli import build_parser

    args = build_parser().parse_args(["study", "m.txt", "d.csv", "--prior", "--priors", "variance=gamma(2, 4)[sd]"])
    assert args.prior is True and args.priors == ["variance=gamma(2, 4)[sd]"]
