"""Fit the 1-1-1 two-mediator model to data simulated by ``simulate.py``: within and between
indirect effects beside the truth, the ICCs, and the one indirect effect a conventional
multilevel regression reports.

Usage: ``python analysis.py [results.md]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

sys.path.insert(0, str(Path(__file__).parent))
from simulate import TARGET_ICC, TRUTH, indirect_effects, population_icc, sample_icc, simulate  # noqa: E402

SETTINGS = dict(draws=4000, tune=4000, chains=4, random_seed=2010)


def _paths(suffix: str) -> str:
    """The two-mediator path model with labels a1{suffix}, ..., c{suffix}."""
    return (f"  m1 ~ a1{suffix}*x\n  m2 ~ a2{suffix}*x\n"
            f"  y ~ b1{suffix}*m1 + b2{suffix}*m2 + c{suffix}*x\n  m1 ~~ m2\n")


def _indirect(suffix: str, level: str) -> str:
    return (f"ind_m1_{level} := a1{suffix}*b1{suffix}\nind_m2_{level} := a2{suffix}*b2{suffix}\n"
            f"ind_total_{level} := ind_m1_{level} + ind_m2_{level}\n")


MODEL = ("level: within\n" + _paths("w") + "level: between\n" + _paths("b") + "\n"
         + _indirect("w", "within") + _indirect("b", "between"))

# A conventional multilevel regression: random intercepts, raw (uncentred) predictors, one equation
# for the mediators and one for the outcome.
MEDIATORS_ON_X = """
level: within
  m1 ~ a1*x
  m2 ~ a2*x
  m1 ~~ m2
level: between
  m1 ~~ m2
"""
OUTCOME_ON_ALL = """
level: within
  y ~ b1*m1 + b2*m2 + c*x
level: between
  y ~~ y
"""

EFFECTS = {"ind_m1": "through m1", "ind_m2": "through m2", "ind_total": "total indirect"}


def _summary(draws: np.ndarray) -> tuple[float, float, float, float]:
    return float(draws.mean()), float(draws.std()), *np.quantile(draws, [0.025, 0.975])


def _draws(fit: bm.Fit, name: str) -> np.ndarray:
    """A defined parameter's draws, or a labelled parameter's (``a1``), over chains and draws."""
    posterior = fit.idata.posterior
    if "defined" in posterior and name in posterior["defined"]["definition"].values:
        return posterior["defined"].sel(definition=name).values
    free = int(fit.table.loc[fit.table["label"] == name, "free"].iloc[0])
    return posterior["theta"].isel(parameter=free - 1).values


def indirect_table(fit: bm.Fit) -> pd.DataFrame:
    """Within and between indirect effects: truth, posterior mean, SD, 95% interval, covered."""
    rows = []
    for level in ("within", "between"):
        truth = indirect_effects(level)
        for effect, label in EFFECTS.items():
            mean, sd, lower, upper = _summary(_draws(fit, f"{effect}_{level}"))
            rows.append((level, label, truth[effect], mean, sd, lower, upper, lower < truth[effect] < upper))
    return pd.DataFrame(rows, columns=["level", "effect", "truth", "mean", "sd", "lower", "upper", "covered"])


def path_table(fit: bm.Fit) -> pd.DataFrame:
    """The a, b and c paths of each level beside the truth."""
    rows = []
    for level, suffix in (("within", "w"), ("between", "b")):
        for path in ("a1", "a2", "b1", "b2", "c"):
            mean, sd, lower, upper = _summary(_draws(fit, path + suffix))
            truth = TRUTH[level][path]
            rows.append((level, path, truth, mean, sd, lower, upper, lower < truth < upper))
    return pd.DataFrame(rows, columns=["level", "path", "truth", "mean", "sd", "lower", "upper", "covered"])


def icc_table(data: pd.DataFrame, fit: bm.Fit) -> pd.DataFrame:
    """Target, population (under TRUTH), sample (ANOVA) and model-implied ICCs."""
    implied = fit.icc().set_index("variable")
    sample, population = sample_icc(data), population_icc()
    return pd.DataFrame([(v, TARGET_ICC[v], population[v], sample[v], implied.loc[v, "mean"],
                          implied.loc[v, "eti_2.5%"], implied.loc[v, "eti_97.5%"]) for v in TARGET_ICC],
                        columns=["variable", "target", "population", "sample", "model", "lower", "upper"])


def conventional_table(data: pd.DataFrame) -> pd.DataFrame:
    """Indirect effects a_k b_k of the conventional multilevel regressions, one per mediator and
    their sum, from the two fits' draws multiplied pairwise (the equations' estimates taken as
    independent, as in the classic two-equation analysis)."""
    mediators = bm.Model(MEDIATORS_ON_X, data, cluster="classroom").fit(**SETTINGS)
    outcome = bm.Model(OUTCOME_ON_ALL, data, cluster="classroom").fit(**SETTINGS)
    ind = {k: _draws(mediators, f"a{k}") * _draws(outcome, f"b{k}") for k in (1, 2)}
    draws = {"ind_m1": ind[1], "ind_m2": ind[2], "ind_total": ind[1] + ind[2]}
    within, between = indirect_effects("within"), indirect_effects("between")
    return pd.DataFrame([(EFFECTS[k], within[k], between[k], *_summary(d)) for k, d in draws.items()],
                        columns=["effect", "within truth", "between truth", "mean", "sd", "lower", "upper"])


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table; numbers to three decimals."""
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(path: str | None = None) -> None:
    data = simulate()
    fit = bm.Model(MODEL, data, cluster="classroom").fit(**SETTINGS)
    checks = fit.diagnostics()["value"]
    text = "\n\n".join([
        f"{len(data)} students in {data['classroom'].nunique()} classrooms; strategy {fit.info['strategy']}; "
        f"{SETTINGS['chains']} chains x {SETTINGS['draws']} draws after {SETTINGS['tune']} warm-up; "
        f"{checks['divergences']:.0f} divergences, "
        f"max R-hat {checks['r_hat']:.3f}, min bulk ESS {checks['ess_bulk']:.0f}.",
        "## Indirect effects (multilevel SEM)", markdown(indirect_table(fit)),
        "## Paths", markdown(path_table(fit)),
        "## Intraclass correlations", markdown(icc_table(data, fit)),
        "## Conventional multilevel regression (raw predictors, random intercepts)",
        markdown(conventional_table(data)),
    ]) + "\n"
    if path:
        Path(path).write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
