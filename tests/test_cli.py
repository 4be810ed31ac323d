"""Tests for the bayes-msem command line program: error paths without sampling, and one end-to-end fit."""

import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_msem as bm
from bayes_msem import cli
from bayes_msem.cli import as_flags, main
from bayes_msem.results.diagnostics import report

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


def test_bad_syntax_keeps_the_caret_under_the_column(inputs: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    model.write_text("f =~ y1 + y2 + y3\nf ~~ f\ny2 ~ y1 $ y3\n")  # line 3, column 9: '$'
    assert main(["fit", str(model), str(csv), "--out", str(tmp_path / "out")]) == 2
    first, echoed, caret = capsys.readouterr().err.rstrip("\n").split("\n")
    assert first.startswith(f"error: {model}: line 3, column 9: found '$'")
    assert echoed == "  y2 ~ y1 $ y3" and caret == " " * 10 + "^"  # two spaces of indent, then column 9
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
    printed, err = capsys.readouterr()
    # one chain: the R-hat check's remedy, printed as a warning with its advice as a flag
    assert "warning: R-hat needs two or more chains to compare: rerun with --chains 4." in err.splitlines()
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


def test_crossed_cluster_columns_are_named_as_a_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Crossed columns without ``--crossed`` are refused with the flag as the fix; with it the
    model is built as a cross-classified one."""
    csv, model = tmp_path / "pupils.csv", tmp_path / "model.txt"
    bm.datasets.load("crossed_schools").to_csv(csv, index=False)
    model.write_text("level: within\n  y ~ x\nlevel: school\n  y ~~ y\nlevel: neighbourhood\n  y ~~ y\n")
    assert main(["fit", str(model), str(csv), "--cluster", "school", "neighbourhood", "--out", str(tmp_path)]) == 2
    assert "pass --crossed for a cross-classified model" in _error(capsys)
    args = cli.build_parser().parse_args(["fit", str(model), str(csv), "--cluster", "school", "neighbourhood",
                                          "--crossed"])
    assert cli._model(args).plan.features.crossed


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
    (["--family", "y1=weibull"], "unknown family 'weibull'"),
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


OPTIONS = ["--cluster", "--crossed", "--draws", "--tune", "--chains", "--seed", "--sampler", "--target-accept", "--std-lv",
           "--rescale", "--family", "--ordered", "--priors", "--out", "--progress", "--quiet"]
COMMAND_OPTIONS = {
    "fit": OPTIONS,
    "sensitivity": [*OPTIONS, "--prior-set"],
    "study": [*OPTIONS, "--parameters", "--prior", "--replications", "--clusters", "--cluster-size", "--missing",
              "--workers", "--scheduler", "--sbc", "--bins", "--rank-draws"],
}


@pytest.mark.parametrize("command", list(COMMAND_OPTIONS))
def test_help_lists_every_option_with_its_dashes(command: str, capsys: pytest.CaptureFixture) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    listed = re.findall(r"^  (-h, --help|--[a-z-]+|[A-Za-z][\w.]*)", text.split("options:")[1], re.M)
    assert listed == ["-h, --help", *COMMAND_OPTIONS[command]]
    usage = text.split("\n\n")[0]
    assert set(re.findall(r"--[a-z-]+", usage)) == set(COMMAND_OPTIONS[command]) and usage.endswith("MODEL DATA.csv")


def _fit_arguments(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict:
    """The keyword arguments ``bayes-msem fit`` gives :meth:`Model.fit` for ``argv``."""
    given = []
    monkeypatch.setattr(bm.Model, "fit", lambda self, **kwargs: given.append(kwargs) or _no_fit())
    with pytest.raises(AssertionError, match="stopped before fitting"):
        main(argv)
    return given[0]


@pytest.mark.parametrize("flags, expected", [
    ([], {"progressbar": "auto", "quiet": False}),
    (["--progress"], {"progressbar": True, "quiet": False}),
    (["--quiet"], {"progressbar": "auto", "quiet": True}),
    (["--target-accept", "0.95", "--seed", "3", "--sampler", "pymc"],
     {"target_accept": 0.95, "random_seed": 3, "sampler": "pymc"}),
])
def test_fit_flags_reach_the_fit(inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 flags: list[str], expected: dict) -> None:
    model, csv = inputs
    given = _fit_arguments(monkeypatch, ["fit", str(model), str(csv), "--out", str(tmp_path / "out"), *flags])
    assert {key: given[key] for key in expected} == expected
    assert ("target_accept" in given) == ("--target-accept" in flags)  # else Model.fit's own default


@pytest.mark.parametrize("command, flag, expected", [
    ("sensitivity", "--quiet", {"quiet": True, "progressbar": "auto"}),
    ("sensitivity", "--progress", {"quiet": False, "progressbar": True}),
    ("study", "--quiet", {"progressbar": False}),
    ("study", "--progress", {"progressbar": True}),
])
def test_progress_and_quiet_reach_sensitivity_and_study(inputs: tuple[Path, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, command: str, flag: str,
                                                        expected: dict) -> None:
    model, csv = inputs
    given = []
    monkeypatch.setattr(cli, command, lambda *args, **kwargs: given.append(kwargs) or _no_fit())
    extra = ["--prior-set", "default"] if command == "sensitivity" else ["--prior"]
    with pytest.raises(AssertionError, match="stopped before fitting"):
        main([command, str(model), str(csv), *extra, flag, "--out", str(tmp_path / "out")])
    assert {key: given[0][key] for key in expected} == expected


def test_progress_and_quiet_exclude_each_other(inputs: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    assert main(["fit", str(model), str(csv), "--progress", "--quiet"]) == 2
    assert "argument --quiet: not allowed with argument --progress" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan"])
def test_target_accept_outside_0_1(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
                                   value: str) -> None:
    model, csv = inputs
    assert main(["fit", str(model), str(csv), "--target-accept", value, "--out", str(tmp_path / "out")]) == 2
    assert _error(capsys).startswith("error: --target-accept must be a number between 0 and 1, e.g. 0.95; got ")


PYTHON_SPELLING = re.compile(r"\b(target_accept|draws|tune|chains|std_lv|rescale|cluster|ordered|family|priors|"
                             r"parameters|n_clusters|cluster_size)=|\b(n_clusters|cluster_size)\b")


@pytest.mark.parametrize("syntax, options, flags", [
    ("level: within\n  f =~ y1 + y2 + y3\nlevel: between\n  f =~ y1 + y2 + y3\n", [], "pass --cluster COLUMN."),
    (MODEL, ["--cluster", "y1"], "--cluster y1 was given but the syntax has no level blocks"),
    (MODEL, ["--cluster", "y1"], "or leave out --cluster for a single-level model."),
    (MODEL + "y1 | t1\n", [], "declare 'y1' ordinal (--ordered y1 or --family y1=ordinal)."),
    ("f =~ NA*y1 + y2 + y3\n", [], "or fit with --std-lv."),
    (MODEL, ["--priors", "loadings=normal(0, 1)"], "in --priors; use"),
])
def test_errors_give_their_advice_as_flags(inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
                                           syntax: str, options: list[str], flags: str) -> None:
    model, csv = inputs
    model.write_text(syntax)
    assert main(["fit", str(model), str(csv), *options, "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert flags in err and not PYTHON_SPELLING.search(err)


@pytest.mark.parametrize("options, flags", [
    (["--cluster-size", "5"], "--cluster-size needs --clusters (the number of clusters of the highest level); give both"),
    (["--rescale"], "a study cannot use --rescale:"),
])
def test_study_errors_give_their_advice_as_flags(inputs: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, options: list[str], flags: str) -> None:
    model, csv = inputs
    assert main(["study", str(model), str(csv), "--prior", *options, "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert flags in err and not PYTHON_SPELLING.search(err)


def test_missing_covariate_advice_names_the_csv_file(inputs: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    model.write_text("y1 ~ y2\n")
    pd.read_csv(csv).assign(y2=lambda d: d["y2"].where(d.index != 3)).to_csv(csv, index=False)
    assert main(["fit", str(model), str(csv), "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert err.startswith("error: Missing values in 'y2': 1 missing (rows 3)")
    assert err.endswith("or drop those rows from the CSV file.") and "dropna" not in err


def test_data_warning_gives_its_advice_as_a_flag(inputs: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    model, csv = inputs
    pd.read_csv(csv).assign(y1=lambda d: 1000 * d["y1"]).to_csv(csv, index=False)
    with pytest.raises(AssertionError, match="stopped before fitting"):
        main(["fit", str(model), str(csv), "--out", str(tmp_path / "out")])
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: the variables' variances differ by a factor of ")
    assert "or pass --rescale to fit on standardised scales" in warning and not PYTHON_SPELLING.search(warning)


def test_sampling_remedies_give_their_advice_as_flags(inputs: tuple[Path, Path]) -> None:
    """The remedies of the package's own convergence report for one chain of 50 draws, 5 of them
    divergent: R-hat (more chains), ESS (more draws) and divergences (a higher target acceptance)."""
    model = bm.Model(MODEL, pd.read_csv(inputs[1]))
    names = list(model.plan.parameters["name"])
    draws = np.random.default_rng(1).standard_normal((1, 50, len(names)))
    idata = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"theta": (("chain", "draw", "parameter"), draws)}, coords={"parameter": names}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.arange(50)[None] % 10 == 0)}),
    })
    remedies = report(idata, model.table).query("verdict == 'warning'")["remedy"]
    assert PYTHON_SPELLING.search(" ".join(remedies))  # the Python spelling the command line translates
    printed = {check: as_flags(remedy) for check, remedy in remedies.items()}
    assert printed["r_hat"].endswith("rerun with --chains 4.")
    assert re.search(r"draw more \(--draws \d+00 at this efficiency\), or reparameterise \(--std-lv identifies",
                     printed["ess_bulk"])
    assert printed["divergences"].startswith("5 divergent transitions: ")
    assert "rerun with --target-accept 0.95." in printed["divergences"]
    assert not any(PYTHON_SPELLING.search(text) for text in printed.values())


def test_every_flag_the_advice_names_exists() -> None:
    named = {flag for _, spelling in cli.FLAG_SPELLING if isinstance(spelling, str)
             for flag in re.findall(r"--[a-z-]+", spelling)}
    assert named == {"--target-accept", "--tune", "--draws", "--std-lv", "--rescale", "--ordered", "--family",
                     "--priors", "--prior", "--clusters", "--cluster-size", "--cluster", "--crossed"}
    assert named <= {option for options in COMMAND_OPTIONS.values() for option in options}


@pytest.mark.parametrize("message, flags", [
    ("(tune=2000, draws=2000).", "(--tune 2000 --draws 2000)."),
    ("cluster=['klass', 'school'] was given", "--cluster klass school was given"),
    ("pass crossed=True for a cross-classified model", "pass --crossed for a cross-classified model"),
    ("keep a marker loading (std_lv=False) or", "keep a marker loading (without --std-lv) or"),
    ("e.g. priors={'variance': 'gamma(2, 2)[sd]'};", "e.g. --priors 'variance=gamma(2, 2)[sd]';"),
    ("run the study with parameters='prior'.", "run the study with --prior."),
    ("draws must be an integer >= 1, got 0.", "--draws must be an integer >= 1, got 0."),
])
def test_python_spellings_of_settings_become_flags(message: str, flags: str) -> None:
    """Pieces of the package's messages (results/diagnostics.py, spec/table.py, studies/study.py,
    sampling/samplers.py) that the end-to-end cases above do not reach cheaply."""
    assert as_flags(message) == flags
