"""The SEM (wide) form of the three-level model and the relaxation it allows.

With a balanced design, one row per county and one column per child position, the
three-level random-intercept model is a single-level factor model: a county factor U with
every loading fixed to 1, one factor S_s per school position s with loading 1 on that
school's children, one slope of x, one residual variance, one school variance, and all
factor covariances 0. The wide form can drop those constraints: a free covariance matrix of
the county's school effects gives heteroskedastic (a variance per position) and correlated
school effects, which the multilevel form cannot express and which make sense when positions
are not exchangeable (e.g. ordered occasions). The county factor must then go: an equal
covariance among the S_s is the county effect itself (with U and free covariances,
var(U) + t, var(S_s) − t, cov(S_a, S_b) − t fit equally well), so the relaxed model's
Σ_S = var(U) 1 1ᵀ + Σ_V holds both.

Data are simulated with such effects (school variances 0.5, 1, 2 by position, correlation 0.4,
county variance 1), then fitted three ways: the multilevel form (long data) and the
constrained wide form, which are the same model and must agree, and the relaxed wide form,
which must recover Σ_S.

Usage: ``python wide_form.py [results_wide.md]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

sys.path.insert(0, str(Path(__file__).parent))
from analysis import MODEL as LONG  # noqa: E402  (the multilevel form, as fitted in analysis.py)

SCHOOLS, CHILDREN, COUNTIES = 3, 5, 150
SCHOOL_VARIANCES, SCHOOL_CORRELATION = (0.5, 1.0, 2.0), 0.4
TRUTH = {"intercept": 0.0, "slope_x": 2.0, "var_U_county": 1.0, "var_E_child": 1.0,
         "var_V_school (mean over positions)": float(np.mean(SCHOOL_VARIANCES))}
SIGMA_S = 1.0 + SCHOOL_CORRELATION * np.outer(np.sqrt(SCHOOL_VARIANCES), np.sqrt(SCHOOL_VARIANCES)) \
    + np.diag((1 - SCHOOL_CORRELATION) * np.asarray(SCHOOL_VARIANCES))  # Cov(U + V_s, U + V_t)
ITEMS = [(s, c) for s in range(1, SCHOOLS + 1) for c in range(1, CHILDREN + 1)]


def simulate(seed: int = 2011) -> pd.DataFrame:
    """Long data: y = 2x + U_k + V_sk + E with (V_1k, V_2k, V_3k) ~ N(0, Σ_V) per county."""
    rng = np.random.default_rng(seed)
    sd = np.sqrt(SCHOOL_VARIANCES)
    cov = SCHOOL_CORRELATION * np.outer(sd, sd) + np.diag((1 - SCHOOL_CORRELATION) * np.asarray(SCHOOL_VARIANCES))
    county = np.repeat(np.arange(COUNTIES), SCHOOLS * CHILDREN)
    position = np.tile(np.repeat(np.arange(SCHOOLS), CHILDREN), COUNTIES)
    school_effects = rng.multivariate_normal(np.zeros(SCHOOLS), cov, size=COUNTIES)
    x = rng.uniform(size=len(county))
    y = 2 * x + rng.standard_normal(COUNTIES)[county] + school_effects[county, position] + rng.standard_normal(len(county))
    return pd.DataFrame({"county": county, "school": county * SCHOOLS + position, "position": position + 1,
                         "child": np.tile(np.arange(1, CHILDREN + 1), COUNTIES * SCHOOLS), "x": x, "y": y})


def wide(long: pd.DataFrame) -> pd.DataFrame:
    """One row per county; columns y<s>_<c> and x<s>_<c>."""
    table = long.pivot(index="county", columns=["position", "child"], values=["y", "x"])
    table.columns = [f"{v}{s}_{c}" for v, s, c in table.columns]
    return table.reset_index(drop=True)


def wide_syntax(relaxed: bool) -> str:
    """The SEM form: constrained (county factor, equal school variances, no covariances) or
    relaxed (no county factor, a free covariance matrix of the school factors)."""
    positions = range(1, SCHOOLS + 1)
    lines = [f"S{s} =~ " + " + ".join(f"1*y{s}_{c}" for c in range(1, CHILDREN + 1)) for s in positions]
    lines += [f"y{s}_{c} ~ b*x{s}_{c}\ny{s}_{c} ~ a*1\ny{s}_{c} ~~ e*y{s}_{c}" for s, c in ITEMS]
    if not relaxed:
        lines += ["U =~ " + " + ".join(f"1*y{s}_{c}" for s, c in ITEMS)]
        lines += [f"S{s} ~~ v*S{s}\nU ~~ 0*S{s}" for s in positions]
        lines += [f"S{a} ~~ 0*S{b}" for a in positions for b in positions if a < b]
    return "\n".join(lines) + "\n"




def estimates(fit: bm.Fit, keys: dict[str, tuple[str, str, str, str]]) -> pd.Series:
    """"mean (SD)" of the named parameters."""
    table = fit.parameters().set_index(["lhs", "op", "rhs", "level"])
    return pd.Series({name: f"{table.loc[key, 'mean']:.3f} ({table.loc[key, 'sd']:.3f})" for name, key in keys.items()})


def main(path: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    long = simulate()
    settings = dict(draws=1000, tune=1000, chains=4, random_seed=5)
    fits = {"multilevel (long)": bm.Model(LONG, long, cluster=["school", "county"]).fit(**settings),
            "wide, constrained": bm.Model(wide_syntax(False), wide(long)).fit(**settings),
            "wide, relaxed": bm.Model(wide_syntax(True), wide(long)).fit(**settings)}
    same = pd.DataFrame({"truth": pd.Series(TRUTH).round(3)})
    same["multilevel (long)"] = estimates(fits["multilevel (long)"], {
        "intercept": ("y", "~1", "", "county"), "slope_x": ("y", "~", "x", "within"),
        "var_U_county": ("y", "~~", "y", "county"), "var_E_child": ("y", "~~", "y", "within"),
        "var_V_school (mean over positions)": ("y", "~~", "y", "school")})
    same["wide, constrained"] = estimates(fits["wide, constrained"], {
        "intercept": ("y1_1", "~1", "", ""), "slope_x": ("y1_1", "~", "x1_1", ""), "var_U_county": ("U", "~~", "U", ""),
        "var_E_child": ("y1_1", "~~", "y1_1", ""), "var_V_school (mean over positions)": ("S1", "~~", "S1", "")})
    pairs = [(a, b) for a in range(SCHOOLS) for b in range(a, SCHOOLS)]
    relaxed = pd.DataFrame({"truth": [round(SIGMA_S[a, b], 3) for a, b in pairs]},
                           index=[f"S{a + 1} ~~ S{b + 1}" for a, b in pairs])
    relaxed["wide, relaxed"] = estimates(fits["wide, relaxed"], {f"S{a + 1} ~~ S{b + 1}": (f"S{a + 1}", "~~", f"S{b + 1}", "")
                                                                 for a, b in pairs}).to_numpy()
    diagnostics = "\n".join(f"- {name}: {fit.diagnostics().loc['divergences', 'value']:.0f} divergences, max R-hat "
                             f"{fit.diagnostics().loc['r_hat', 'value']:.3f}, {fit.info['seconds_sample']:.1f} s sampling"
                             for name, fit in fits.items())
    text = (f"{COUNTIES} counties x {SCHOOLS} schools x {CHILDREN} children; school variances {SCHOOL_VARIANCES} "
            f"by position, correlation {SCHOOL_CORRELATION}, county variance 1; 4 chains x 1000 draws each. "
            "Posterior mean (SD).\n\nThe multilevel model and its constrained SEM form (one school variance, "
            "which the heteroskedastic truth makes the average):\n\n" + same.to_string()
            + "\n\nThe relaxed SEM form: the covariance matrix of the county's school effects, "
            "Σ_S = var(U) 1 1ᵀ + Σ_V:\n\n" + relaxed.to_string() + f"\n\n{diagnostics}\n")
    if path:
        Path(path).write_text(text)
    print(text)
    return same, relaxed


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
