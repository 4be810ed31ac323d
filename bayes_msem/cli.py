"""The ``bayes-msem`` command line program.

    bayes-msem fit MODEL DATA.csv [--cluster COL [UPPER]] [--draws 1000] [--tune 1000] [--chains 4]
                                  [--seed N] [--sampler nutpie|pymc|numpyro|blackjax]
                                  [--std-lv] [--out DIR] [--progress]
    bayes-msem sensitivity MODEL DATA.csv --prior-set [NAME:]KIND=PRIOR[;KIND=PRIOR...] ...
                                  [--cluster ...] [--draws ...] [--out DIR] (as fit)
    bayes-msem --version

``fit`` reads lavaan syntax from MODEL and data from a CSV file, samples the
posterior, prints the summary and writes ``posterior.nc`` (read it back with
``bayes_msem.load``) and ``parameters.csv`` into the output directory. Mistakes
in the input end with a one-line ``error: ...`` on stderr and exit status 2.

``sensitivity`` refits the model under each ``--prior-set`` (default priors per kind, e.g.
``"tight: variance=gamma(2, 4)[sd]"``; ``default`` for the model's own), prints the posteriors
side by side and writes ``prior_sets.csv`` and ``prior_sets.png`` into the output directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from . import DataError, Model, ModelSyntaxError, PriorError, SpecificationError, sensitivity
from .sample import SAMPLERS, check_settings

EXIT_USER_ERROR = 2


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
    return parser


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
        return Model(syntax, data, cluster=cluster, std_lv=args.std_lv)
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


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-msem`` with ``argv`` (default: the process arguments); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version (0) and usage errors (2, message already printed)
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    # Bad draws/chains raise ValueError; a sampler that needs JAX raises ImportError.
    user_errors = (UserError, ModelSyntaxError, DataError, SpecificationError, PriorError, ValueError, ImportError)
    try:
        {"fit": fit_command, "sensitivity": sensitivity_command}[args.command](args)
    except user_errors as error:
        print(f"error: {_reason(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
