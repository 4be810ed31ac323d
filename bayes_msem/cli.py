"""The ``bayes-msem`` command line program.

    bayes-msem fit MODEL DATA.csv [--cluster COL [UPPER]] [--draws 1000] [--tune 1000] [--chains 4]
                                  [--seed N] [--sampler nutpie|pymc|numpyro|blackjax]
                                  [--std-lv] [--rescale] [--family VAR=FAMILY ...] [--ordered VAR ...]
                                  [--priors KIND=PRIOR ...] [--out DIR] [--progress]
    bayes-msem sensitivity MODEL DATA.csv --prior-set [NAME:]KIND=PRIOR[;KIND=PRIOR...] ...
                                  [--cluster ...] [--draws ...] [--out DIR] (as fit)
    bayes-msem study MODEL DATA.csv (--parameters VALUES.csv|.json | --prior) [--replications 100]
                                  [--clusters N --cluster-size SIZE [SIZE ...]] [--missing RATE]
                                  [--workers N | --scheduler ADDRESS] [--sbc NAME ...] [--bins 10]
                                  [--draws 500] [--tune 500] [--chains 2] [--out DIR] (as fit)
    bayes-msem --version

``fit`` reads lavaan syntax from MODEL and data from a CSV file, samples the
posterior, prints the summary and writes ``posterior.nc`` (read it back with
``bayes_msem.load``) and ``parameters.csv`` into the output directory. Mistakes
in the input end with a one-line ``error: ...`` on stderr and exit status 2.

``sensitivity`` refits the model under each ``--prior-set`` (default priors per kind, e.g.
``"tight: variance=gamma(2, 4)[sd]"``; ``default`` for the model's own), prints the posteriors
side by side and writes ``prior_sets.csv`` and ``prior_sets.png`` into the output directory.

``study`` runs a Monte Carlo study (:func:`bayes_msem.study`): data simulated from the model
(with DATA.csv as the template: its variables, clusters and covariates) at the ``--parameters``
(a CSV table like ``parameters.csv`` of ``fit``, a CSV with name and value columns, or a JSON
object {name: value}) or at θ drawn from the prior (``--prior``), fitted again per replication;
it prints and writes ``summary.csv`` and, with ``--prior``, ``sbc.csv`` and ``ranks.png``. Each
replication is stored under ``DIR/replications`` as it finishes: rerunning the command resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from . import DataError, Model, ModelSyntaxError, PriorError, SpecificationError, sensitivity, study
from .sample import SAMPLERS, check_settings

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the command's input, reported as one line without a traceback."""


def _version() -> str:
    """The installed package version."""
    try:
        return version("bayes_msem")
    except PackageNotFoundError:
        return "dev"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-msem`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="bayes-msem", description="Bayesian multilevel SEM in lavaan syntax.")
    parser.add_argument("--version", action="version", version=f"bayes-msem {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser("fit", help="fit a model to a CSV file",
                              description="Fit a model written in lavaan syntax to the data in a CSV file.")
    fit.add_argument("model", metavar="MODEL", type=Path, help="text file with the lavaan model syntax")
    fit.add_argument("data", metavar="DATA.csv", type=Path, help="CSV file with one row per unit")
    fit.add_argument("--cluster", metavar="COL", nargs="+",
                     help="column that identifies clusters (two-level models); two columns, lowest first, "
                          "for three-level models")
    fit.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    fit.add_argument("--tune", type=int, default=1000, help="warm-up iterations per chain (default 1000)")
    fit.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    fit.add_argument("--seed", type=int, default=None, help="random seed")
    fit.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation (default nutpie)")
    fit.add_argument("--std-lv", action="store_true", help="fix factor variances to 1 instead of first loadings")
    fit.add_argument("--rescale", action="store_true",
                     help="fit with continuous variables divided by their SDs; report in their own units")
    fit.add_argument("--family", metavar="VAR=FAMILY", action="append", default=[],
                     help="response family of a variable, e.g. u1=bernoulli, n=poisson, o1='ordinal(logit)'; "
                          "give it once per variable")
    fit.add_argument("--ordered", metavar="VAR", nargs="+", default=[],
                     help="ordinal variables (cumulative probit, as lavaan's ordered=)")
    fit.add_argument("--priors", metavar="KIND=PRIOR", action="append", default=[], dest="priors",
                     help="default prior of a kind of parameter, e.g. 'variance=gamma(2, 4)[sd]'; once per kind")
    fit.add_argument("--out", metavar="DIR", type=Path, default=Path("bayes_msem_out"),
                     help="output directory (default ./bayes_msem_out)")
    fit.add_argument("--progress", action="store_true", help="show the sampler's progress bar")
    sensitivity = commands.add_parser(
        "sensitivity", parents=[fit], add_help=False, conflict_handler="resolve",
        help="refit a model under alternative prior sets and compare the posteriors",
        description="Refit a model under each prior set and write the posteriors side by side.")
    sensitivity.add_argument("--prior-set", metavar="[NAME:]KIND=PRIOR[;KIND=PRIOR...]", action="append",
                             required=True, dest="prior_sets",
                             help="default priors per kind, e.g. 'tight: variance=gamma(2, 4)[sd]'; "
                                  "'default' for the model's own; give it once per set")
    run = commands.add_parser(
        "study", parents=[fit], add_help=False, conflict_handler="resolve",
        help="simulate from a model and fit it again, many times (bias, coverage, power, calibration)",
        description="Monte Carlo study: data simulated from the model with DATA.csv as the template, fitted "
                    "again per replication; rerun the command to resume an interrupted study.")
    truth = run.add_mutually_exclusive_group(required=True)
    truth.add_argument("--parameters", metavar="VALUES", type=Path,
                       help="true values: a CSV table like fit's parameters.csv (lhs, op, rhs, level, mean or "
                            "value), a CSV with name and value columns, or a JSON object {name: value}")
    truth.add_argument("--prior", action="store_true",
                       help="draw the true values from the prior in each replication (simulation-based calibration)")
    run.add_argument("--replications", type=int, default=100, help="number of replications (default 100)")
    run.add_argument("--clusters", type=int, metavar="N",
                     help="clusters of the highest level per data set (default: those of DATA.csv, with its covariates)")
    run.add_argument("--cluster-size", metavar="SIZE", nargs="+", type=_size,
                     help="units per cluster, N or LOW:HIGH; one per level above the rows, lowest first")
    run.add_argument("--missing", type=float, metavar="RATE",
                     help="share of the lowest level's modelled cells made missing completely at random")
    run.add_argument("--draws", type=int, default=500, help="posterior draws per chain (default 500)")
    run.add_argument("--tune", type=int, default=500, help="warm-up iterations per chain (default 500)")
    run.add_argument("--chains", type=int, default=2, help="number of chains (default 2)")
    run.add_argument("--seed", type=int, default=None,
                     help="study seed (default: that of the study in DIR, else a fresh one, recorded in DIR)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="local processes (default: cores / chains; 0 runs in this process)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at this scheduler address")
    run.add_argument("--sbc", metavar="NAME", nargs="+",
                     help="parameters whose ranks are tested and plotted (with --prior; default all)")
    run.add_argument("--bins", type=int, default=10, help="rank histogram bins (default 10)")
    run.add_argument("--rank-draws", type=int, default=99, help="thinned posterior draws the truth is ranked among")
    run.add_argument("--out", metavar="DIR", type=Path, default=Path("bayes_msem_study"),
                     help="output directory (default ./bayes_msem_study)")
    run.add_argument("--progress", action="store_true", help="show a progress bar of the replications")
    return parser


def _size(text: str) -> int | tuple[int, int]:
    """A cluster size ``N`` or range ``LOW:HIGH``."""
    try:
        parts = [int(part) for part in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"cannot read the cluster size {text!r}; write N or LOW:HIGH, e.g. 10 or 5:15")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _read_model(path: Path) -> str:
    """The model syntax in ``path``."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the model file {path}: {_reason(error)}") from error


def _read_data(path: Path) -> pd.DataFrame:
    """The CSV file at ``path`` as a DataFrame."""
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"cannot read the data file {path}: {_reason(error)}") from error


def _prepare_output(directory: Path) -> None:
    """Create ``directory`` if needed and check that files can be written into it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise UserError(f"cannot write to the output directory {directory}: {_reason(error)}") from error


def _reason(error: BaseException) -> str:
    """The first line of ``error``'s message (OSError's strerror when it has one)."""
    text = getattr(error, "strerror", None) or str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _model(args: argparse.Namespace) -> Model:
    """The model of the command's MODEL and DATA files."""
    syntax = _read_model(args.model)
    data = _read_data(args.data)
    try:
        cluster = args.cluster[0] if args.cluster and len(args.cluster) == 1 else args.cluster
        return Model(syntax, data, cluster=cluster, std_lv=args.std_lv, rescale=args.rescale, family=assignments(args.family, "--family"),
                     ordered=args.ordered, priors=assignments(args.priors, "--priors"))
    except ModelSyntaxError as error:
        raise UserError(f"{args.model}: {_reason(error)}") from error


def fit_command(args: argparse.Namespace) -> None:
    """``bayes-msem fit``: fit, print the summary, write posterior.nc and parameters.csv."""
    model = _model(args)
    check_settings(args.draws, args.tune, args.chains, args.sampler)
    _prepare_output(args.out)  # before the slow part: compiling and sampling
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                    sampler=args.sampler, progressbar=args.progress)
    print(fit.summary())
    posterior, parameters = args.out / "posterior.nc", args.out / "parameters.csv"
    try:
        fit.save(posterior)
        fit.parameters().to_csv(parameters, index=False)
    except OSError as error:
        raise UserError(f"cannot write the results to {args.out}: {_reason(error)}") from error
    print(f"Wrote {posterior} and {parameters}.")


def assignments(texts: list[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` texts as {name: value}."""
    pairs = [text.partition("=") for text in texts]
    bad = [text for text, (name, sep, value) in zip(texts, pairs) if not sep or not name.strip() or not value.strip()]
    if bad:
        raise UserError(f"cannot read {option} {bad[0]!r}; write NAME=VALUE, e.g. {option} "
                        f"{'u1=bernoulli' if option == '--family' else 'variance=gamma(2, 4)[sd]'}")
    return {name.strip(): value.strip() for name, _, value in pairs}


def prior_sets(texts: list[str]) -> dict[str, dict[str, str]]:
    """``[NAME:]KIND=PRIOR[;KIND=PRIOR...]`` per set as {name: {kind: prior}} (unnamed sets are
    "set 1", "set 2", …; ``default`` is the set without changes)."""
    sets = {}
    for k, text in enumerate(texts, start=1):
        head, colon, rest = text.partition(":")
        named = bool(colon) and "=" not in head
        name, body = (head.strip(), rest.strip()) if named else (f"set {k}", text.strip())
        if body == "default":
            sets[name if named else "default"] = {}
            continue
        pairs = [part.partition("=") for part in body.split(";") if part.strip()]
        if not pairs or any(not sep or not kind.strip() or not prior.strip() for kind, sep, prior in pairs):
            raise UserError(f"cannot read the prior set {text!r}; write [NAME:]KIND=PRIOR[;KIND=PRIOR...], "
                            "e.g. 'tight: variance=gamma(2, 4)[sd]', or 'default'")
        sets[name] = {kind.strip(): prior.strip() for kind, _, prior in pairs}
    return sets


def sensitivity_command(args: argparse.Namespace) -> None:
    """``bayes-msem sensitivity``: refit under each prior set, print and write the comparison."""
    sets = prior_sets(args.prior_sets)
    model = _model(args)
    check_settings(args.draws, args.tune, args.chains, args.sampler)
    _prepare_output(args.out)
    comparison = sensitivity(model, sets, draws=args.draws, tune=args.tune, chains=args.chains,
                             random_seed=args.seed, sampler=args.sampler, progressbar=args.progress)
    table = comparison.table()
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    csv, png = args.out / "prior_sets.csv", args.out / "prior_sets.png"
    try:
        table.to_csv(csv)
        comparison.plot(png)
    except OSError as error:
        raise UserError(f"cannot write the results to {args.out}: {_reason(error)}") from error
    print(f"Wrote {csv} and {png}.")


def _read_parameters(path: Path) -> dict[str, float] | pd.DataFrame:
    """True values from a JSON object or a CSV table (lhs, op, rhs, level, value/mean; or name, value)."""
    try:
        if path.suffix.lower() == ".json":
            return {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as error:
        raise UserError(f"cannot read the parameter values {path}: {_reason(error)}") from error
    if {"name", "value"} <= set(table.columns):
        return dict(zip(table["name"].astype(str), table["value"].astype(float)))
    for column in ("lhs", "op", "rhs", "level", "label"):
        if column in table.columns:
            table[column] = table[column].fillna("").astype(str)
    return table


def study_command(args: argparse.Namespace) -> None:
    """``bayes-msem study``: run (or resume) the study, print and write its summaries."""
    model = _model(args)
    parameters = "prior" if args.prior else _read_parameters(args.parameters)
    check_settings(args.draws, args.tune, args.chains, args.sampler)
    _prepare_output(args.out)
    design = {"n_clusters": args.clusters, "missing": args.missing,
              "cluster_size": None if args.cluster_size is None else
              args.cluster_size[0] if len(args.cluster_size) == 1 else args.cluster_size}
    try:
        result = study(model, parameters, args.replications, {k: v for k, v in design.items() if v is not None},
                       out=args.out, seed=args.seed, draws=args.draws, tune=args.tune, chains=args.chains,
                       rank_draws=args.rank_draws, workers=args.workers, scheduler=args.scheduler,
                       progressbar=args.progress, sampler=args.sampler)
    except KeyboardInterrupt:
        stored = len(list((args.out / "replications").glob("replication-*.parquet")))
        print(f"interrupted: {stored} replication(s) stored in {args.out}; run the same command to resume.",
              file=sys.stderr)
        raise
    summary = result.summary()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    written = [args.out / "summary.csv"]
    try:
        summary.to_csv(written[0])
        if args.prior:
            calibration = result.sbc(args.sbc, args.bins)
            print(calibration.to_string(float_format=lambda v: f"{v:.3f}"))
            written += [args.out / "sbc.csv", args.out / "ranks.png"]
            calibration.to_csv(written[1])
            result.plot_ranks(written[2], args.sbc, args.bins)
    except OSError as error:
        raise UserError(f"cannot write the results to {args.out}: {_reason(error)}") from error
    print(f"Wrote {', '.join(map(str, written))} ({len(result.replications['replication'].unique())} replications "
          f"in {args.out / 'replications'}).")


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-msem`` with ``argv`` (default: the process arguments); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version (0) and usage errors (2, message already printed)
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    # Bad draws/chains raise ValueError; a sampler that needs JAX raises ImportError.
    user_errors = (UserError, ModelSyntaxError, DataError, SpecificationError, PriorError, ValueError, ImportError)
    try:
        {"fit": fit_command, "sensitivity": sensitivity_command, "study": study_command}[args.command](args)
    except user_errors as error:
        print(f"error: {_reason(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
