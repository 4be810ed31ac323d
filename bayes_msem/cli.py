"""The ``bayes-msem`` command line program.

    bayes-msem fit MODEL DATA.csv [--cluster COL [UPPER]] [--crossed] [--draws 1000] [--tune 1000] [--chains 4]
                                  [--seed N] [--sampler nutpie|pymc|numpyro|blackjax] [--target-accept 0.8]
                                  [--std-lv] [--rescale] [--family VAR=FAMILY ...] [--ordered VAR ...]
                                  [--priors KIND=PRIOR ...] [--out DIR] [--progress | --quiet]
    bayes-msem sensitivity MODEL DATA.csv --prior-set [NAME:]KIND=PRIOR[;KIND=PRIOR...] ...
                                  [--cluster ...] [--draws ...] [--out DIR] (as fit)
    bayes-msem study MODEL DATA.csv (--parameters VALUES.csv|.json | --prior) [--replications 100]
                                  [--clusters N --cluster-size SIZE [SIZE ...]] [--missing RATE]
                                  [--workers N | --scheduler ADDRESS] [--sbc NAME ...] [--bins 10]
                                  [--rank-draws 99] [--draws 500] [--tune 500] [--chains 2] [--out DIR] (as fit)
    bayes-msem --version

``fit`` reads lavaan syntax from MODEL and data from a CSV file, samples the
posterior, prints the summary and writes ``posterior.nc`` (read it back with
``bayes_msem.load``) and ``parameters.csv`` into the output directory. Mistakes
in the input end with a one-line ``error: ...`` on stderr and exit status 2 (a syntax
error adds the model line with a caret under the column); failed convergence checks print
``warning: ...``. Errors and warnings give their advice as flags (``--target-accept 0.95``
where Python reads ``target_accept=0.95``). The sampler's progress bar shows in a terminal;
``--progress`` shows it anywhere, ``--quiet`` prints neither it nor the line about compiling.

``sensitivity`` refits the model under each ``--prior-set`` (default priors per kind, e.g.
``"tight: variance=gamma(2, 4)[sd]"``; ``default`` for the model's own), prints the posteriors
side by side and writes ``prior_sets.csv`` and ``prior_sets.png`` into the output directory.

``study`` runs a Monte Carlo study (:func:`.studies.study`): data simulated from the model
(with DATA.csv as the template: its variables, clusters and covariates) at the ``--parameters``
(a CSV table like ``parameters.csv`` of ``fit``, a CSV with name and value columns, or a JSON
object {name: value}) or at θ drawn from the prior (``--prior``), fitted again per replication;
it prints and writes ``summary.csv`` and, with ``--prior``, ``sbc.csv`` and ``ranks.png``. Each
replication is stored under ``DIR/replications`` as it finishes: rerunning the command resumes.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tempfile
import warnings
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from . import DataWarning, Model, ModelSyntaxError, SamplingWarning, sensitivity
from .errors import Error
from .sampling.samplers import SAMPLERS, check_settings, show_progress
from .studies.study import study

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# The package's errors and warnings give their advice in Python's spelling; the command prints it
# as its flags. (pattern of the Python spelling, the flag's spelling), applied in order.
FLAG_SPELLING: tuple[tuple[str, str | Callable[[re.Match], str]], ...] = (
    (r"\btarget_accept=", "--target-accept "),
    (r"\btune=(\d+), draws=(\d+)", r"--tune \1 --draws \2"),
    (r"\b(draws|tune|chains)=(\d+)", r"--\1 \2"),
    (r"^(draws|tune|chains|replications) must be", r"--\1 must be"),
    (r"\(std_lv=False\)", "(without --std-lv)"),
    (r"\bstd_lv=True\b", "--std-lv"),
    (r"\brescale=True\b", "--rescale"),
    (r"\bcrossed=True\b", "--crossed"),
    (r"\bcluster=(\[[^\]]*\]|'[^']*')", lambda m: " ".join(["--cluster", *map(shlex.quote, re.findall(r"'([^']*)'", m[1]))])),
    (r"\bdrop cluster=", "leave out --cluster"),
    (r"\bordered=\['([^']*)'\]", r"--ordered \1"),
    (r"\bfamily=\{'([^']*)': '([^']*)'\}", r"--family \1=\2"),
    (r"\bpriors=\{'([^']*)': '([^']*)'\}", r"--priors '\1=\2'"),
    (r"\bin priors=", "in --priors"),
    (r"\bparameters='prior'", "--prior"),
    (r"\bn_clusters\b", "--clusters"),
    (r"\bcluster_size\b", "--cluster-size"),
    (r": data\.dropna\(subset=\[[^\]]*\]\)", " from the CSV file"),
)
_FLAG_SPELLING = [(re.compile(pattern), flag) for pattern, flag in FLAG_SPELLING]


def as_flags(message: str) -> str:
    """``message`` with the advice it gives in Python's spelling (``target_accept=0.95``,
    ``cluster='COLUMN'``) spelled as the command's flags (``--target-accept 0.95``, ``--cluster COLUMN``)."""
    for pattern, flag in _FLAG_SPELLING:
        message = pattern.sub(flag, message)
    return message


class UserError(Error):
    """A problem with the command's input, written for the command line: printed as it is (one line,
    or a syntax error's three), without a traceback."""


def _version() -> str:
    """The installed package version."""
    try:
        return version("bayes_msem")
    except PackageNotFoundError:
        return "dev"


SAMPLER_PROGRESS = "the sampler's progress bar"
QUIET_FIT = "show neither the sampler's progress bar nor the line that says a model structure is being compiled"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-msem`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="bayes-msem", description="Bayesian multilevel SEM in lavaan syntax.")
    parser.add_argument("--version", action="version", version=f"bayes-msem {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = commands.add_parser("fit", help="fit a model to a CSV file",
                              description="Fit a model written in lavaan syntax to the data in a CSV file.")
    _add_fit_options(fit, draws=1000, chains=4, out="bayes_msem_out", seed="random seed", progress=SAMPLER_PROGRESS,
                     quiet=QUIET_FIT)
    sensitivity = commands.add_parser(
        "sensitivity", help="refit a model under alternative prior sets and compare the posteriors",
        description="Refit a model under each prior set and write the posteriors side by side.")
    _add_fit_options(sensitivity, draws=1000, chains=4, out="bayes_msem_out", seed="random seed",
                     progress=SAMPLER_PROGRESS, quiet=QUIET_FIT)
    sensitivity.add_argument("--prior-set", metavar="[NAME:]KIND=PRIOR[;KIND=PRIOR...]", action="append",
                             required=True, dest="prior_sets",
                             help="default priors per kind, e.g. 'tight: variance=gamma(2, 4)[sd]'; "
                                  "'default' for the model's own; give it once per set")
    run = commands.add_parser(
        "study", help="simulate from a model and fit it again, many times (bias, coverage, power, calibration)",
        description="Monte Carlo study: data simulated from the model with DATA.csv as the template, fitted "
                    "again per replication; rerun the command to resume an interrupted study.")
    _add_fit_options(run, draws=500, chains=2, out="bayes_msem_study",
                     seed="study seed (default: that of the study in DIR, else a fresh one, recorded in DIR)",
                     progress="a progress bar of the replications", quiet="show no progress bar of the replications")
    truth = run.add_mutually_exclusive_group(required=True)
    truth.add_argument("--parameters", metavar="VALUES", type=Path,
                       help="true values: a CSV table like fit's parameters.csv (lhs, op, rhs, level, mean or "
                            "value), a CSV with name and value columns, or a JSON object {name: value}")
    truth.add_argument("--prior", action="store_true",
                       help="draw the true values from the prior in each replication (simulation-based calibration)")
    run.add_argument("--replications", type=int, default=100, metavar="N",
                     help="number of replications (default 100)")
    run.add_argument("--clusters", type=int, metavar="N",
                     help="clusters of the highest level per data set (default: those of DATA.csv, with its covariates)")
    run.add_argument("--cluster-size", metavar="SIZE", nargs="+", type=_size,
                     help="units per cluster, N or LOW:HIGH; one per level above the rows, lowest first")
    run.add_argument("--missing", type=float, metavar="RATE",
                     help="share of the lowest level's modelled cells made missing completely at random")
    run.add_argument("--workers", type=int, metavar="N",
                     help="local processes (default: cores / chains; 0 runs in this process)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at this scheduler address")
    run.add_argument("--sbc", metavar="NAME", nargs="+",
                     help="parameters whose ranks are tested and plotted (with --prior; default all)")
    run.add_argument("--bins", type=int, default=10, metavar="N", help="rank histogram bins (default 10)")
    run.add_argument("--rank-draws", type=int, default=99, metavar="N",
                     help="thinned posterior draws the truth is ranked among (default 99)")
    return parser


def _add_fit_options(parser: argparse.ArgumentParser, *, draws: int, chains: int, out: str, seed: str,
                     progress: str, quiet: str) -> None:
    """MODEL, DATA.csv and the options of the model and the sampler (``--tune`` defaults to ``draws``
    too), which every subcommand takes (each subcommand its own actions: argparse's ``parents=`` shares them, and overriding a shared
    option there strips the option strings from the parent's action as well)."""
    parser.add_argument("model", metavar="MODEL", type=Path, help="text file with the lavaan model syntax")
    parser.add_argument("data", metavar="DATA.csv", type=Path, help="CSV file with one row per unit")
    parser.add_argument("--cluster", metavar="COL", nargs="+",
                        help="column that identifies clusters (two-level models); two columns, lowest first, "
                             "for three-level models")
    parser.add_argument("--crossed", action="store_true",
                        help="the --cluster columns are crossed classifications (pupils in schools and in "
                             "neighbourhoods), not nested levels")
    parser.add_argument("--draws", type=int, default=draws, metavar="N",
                        help=f"posterior draws per chain (default {draws})")
    parser.add_argument("--tune", type=int, default=draws, metavar="N",
                        help=f"warm-up iterations per chain (default {draws})")
    parser.add_argument("--chains", type=int, default=chains, metavar="N", help=f"number of chains (default {chains})")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help=seed)
    parser.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation (default nutpie)")
    parser.add_argument("--target-accept", type=float, default=None, metavar="P",
                        help="the sampler's target acceptance rate, in (0, 1) (default 0.8); higher values, "
                             "e.g. 0.95, take smaller steps, which avoids most divergent transitions")
    parser.add_argument("--std-lv", action="store_true", help="fix factor variances to 1 instead of first loadings")
    parser.add_argument("--rescale", action="store_true",
                        help="fit with continuous variables divided by their SDs; report in their own units")
    parser.add_argument("--family", metavar="VAR=FAMILY", action="append", default=[],
                        help="response family of a variable: gaussian, bernoulli, ordinal, poisson, negbinomial, gamma, "
                             "binomial(n=TRIALS), tobit(lower=..., upper=...), interval(upper=COLUMN), nominal, with a link in brackets, e.g. "
                             "u1=bernoulli, n=poisson, o1='ordinal(logit)', k='binomial(n=trials)'; give it once per "
                             "variable")
    parser.add_argument("--ordered", metavar="VAR", nargs="+", default=[],
                        help="ordinal variables (cumulative probit, as lavaan's ordered=)")
    parser.add_argument("--priors", metavar="KIND=PRIOR", action="append", default=[],
                        help="default prior of a kind of parameter, e.g. 'variance=gamma(2, 4)[sd]'; once per kind")
    parser.add_argument("--out", metavar="DIR", type=Path, default=Path(out),
                        help=f"output directory (default ./{out})")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help=f"show {progress} even when standard error is not a terminal (default: only in a terminal)")
    shown.add_argument("--quiet", action="store_true", help=f"{quiet} (results, warnings and errors still print)")


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
        return Model(syntax, data, cluster=cluster, crossed=args.crossed, std_lv=args.std_lv, rescale=args.rescale, family=assignments(args.family, "--family"),
                     ordered=args.ordered, priors=assignments(args.priors, "--priors"))
    except ModelSyntaxError as error:  # the whole message: its last lines echo the line with a caret under the column
        raise UserError(f"{args.model}: {error}") from error


def _sampler_settings(args: argparse.Namespace) -> dict:
    """The command's draws, tune, chains, sampler and (when given) target_accept, checked."""
    check_settings(args.draws, args.tune, args.chains, args.sampler)
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "sampler": args.sampler}
    if args.target_accept is not None:
        if not 0 < args.target_accept < 1:
            raise UserError(f"--target-accept must be a number between 0 and 1, e.g. 0.95; got {args.target_accept:g}.")
        settings["target_accept"] = args.target_accept
    return settings


def _fit_settings(args: argparse.Namespace) -> dict:
    """The keyword arguments of :meth:`Model.fit` that the command sets: the sampler's settings,
    the seed, and what it prints (``--progress``: a progress bar even outside a terminal)."""
    return {**_sampler_settings(args), "random_seed": args.seed, "progressbar": True if args.progress else "auto",
            "quiet": args.quiet}


def fit_command(args: argparse.Namespace) -> None:
    """``bayes-msem fit``: fit, print the summary, write posterior.nc and parameters.csv."""
    settings = _fit_settings(args)
    model = _model(args)
    _prepare_output(args.out)  # before the slow part: compiling and sampling
    fit = model.fit(**settings)
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
    settings = _fit_settings(args)
    model = _model(args)
    _prepare_output(args.out)
    comparison = sensitivity(model, sets, **settings)
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
    settings = _sampler_settings(args)
    model = _model(args)
    parameters = "prior" if args.prior else _read_parameters(args.parameters)
    _prepare_output(args.out)
    design = {"n_clusters": args.clusters, "missing": args.missing,
              "cluster_size": None if args.cluster_size is None else
              args.cluster_size[0] if len(args.cluster_size) == 1 else args.cluster_size}
    try:
        result = study(model, parameters, args.replications, {k: v for k, v in design.items() if v is not None},
                       out=args.out, seed=args.seed, rank_draws=args.rank_draws, workers=args.workers,
                       scheduler=args.scheduler, progressbar=not args.quiet and (args.progress or show_progress("auto")),
                       **settings)
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


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file=None, line: str | None = None) -> None:
    """Print the package's warnings as ``warning: ...`` with their advice as flags; others as Python does."""
    if issubclass(category, (SamplingWarning, DataWarning)):
        print(f"warning: {as_flags(str(message))}", file=sys.stderr)
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-msem`` with ``argv`` (default: the process arguments); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version (0) and usage errors (2, message already printed)
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    # Every error the package raises on purpose is an Error (bad settings, a sampler that needs JAX, ...).
    user_errors = (Error, ValueError, ImportError)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            {"fit": fit_command, "sensitivity": sensitivity_command, "study": study_command}[args.command](args)
    except UserError as error:  # written for the command line: printed whole
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except user_errors as error:
        print(f"error: {as_flags(_reason(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
