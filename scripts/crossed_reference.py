"""Simulate the crossed_schools data set and write statsmodels' ML estimates beside it.

Pupils in schools and in neighbourhoods, crossed (each school draws its pupils from nearby
neighbourhoods, each neighbourhood sends pupils to several schools), with a pupil covariate x:

    y_i = 1.0 + 0.5 x_i + u_school(i) + v_neighbourhood(i) + e_i,
    u ~ N(0, 0.30), v ~ N(0, 0.15), e ~ N(0, 1.0).

statsmodels' MixedLM fits the same model by maximum likelihood with the two variance components
(``vc_formula``, one group holding every row); the script checks MixedLM's log-likelihood against a
dense normal over all rows and takes the variances' standard errors from that dense likelihood's
observed information (MixedLM gives those of the variance ratios only). Run from the repository root, with statsmodels
importable (it is not a dependency of bayes_msem)::

    PYTHONPATH=/path/to/statsmodels python scripts/crossed_reference.py

It writes bayes_msem/datasets/crossed_schools.csv and crossed_schools_statsmodels.csv
(columns param, est, se; the log-likelihood at the estimates as the row loglik).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.formula.api as smf

SEED = 20261205
SCHOOLS, NEIGHBOURHOODS, PUPILS = 40, 30, 1500
TRUTH = {"intercept": 1.0, "slope_x": 0.5, "var_school": 0.30, "var_neighbourhood": 0.15, "var_residual": 1.0}
FOLDER = Path(__file__).resolve().parents[1] / "bayes_msem" / "datasets"


def simulate(rng: np.random.Generator) -> pd.DataFrame:
    """The pupils: a school each, a neighbourhood within ±4 of the school's place on the town's
    circle of neighbourhoods, x ~ N(0, 1) and y from the model of the module docstring."""
    school = rng.integers(0, SCHOOLS, PUPILS)
    centre = np.round(school * NEIGHBOURHOODS / SCHOOLS).astype(int)
    neighbourhood = (centre + rng.integers(-4, 5, PUPILS)) % NEIGHBOURHOODS
    x = rng.normal(size=PUPILS)
    u = rng.normal(0.0, np.sqrt(TRUTH["var_school"]), SCHOOLS)
    v = rng.normal(0.0, np.sqrt(TRUTH["var_neighbourhood"]), NEIGHBOURHOODS)
    e = rng.normal(0.0, np.sqrt(TRUTH["var_residual"]), PUPILS)
    y = TRUTH["intercept"] + TRUTH["slope_x"] * x + u[school] + v[neighbourhood] + e
    frame = pd.DataFrame({"pupil": np.arange(PUPILS), "school": school, "neighbourhood": neighbourhood,
                          "x": x.round(4), "y": y.round(4)})
    return frame.sort_values(["school", "pupil"]).reset_index(drop=True)


def dense_loglik(frame: pd.DataFrame, values: np.ndarray) -> float:
    """The model's log-likelihood at (intercept, slope_x, var_school, var_neighbourhood,
    var_residual) as one dense normal over every row: y ~ N(X β, σ²_s Z_s Z_sᵀ + σ²_n Z_n Z_nᵀ + σ²_e I)."""
    intercept, slope, var_school, var_neighbourhood, var_residual = values
    z_school = pd.get_dummies(frame["school"]).to_numpy(float)
    z_neighbourhood = pd.get_dummies(frame["neighbourhood"]).to_numpy(float)
    cov = (var_school * z_school @ z_school.T + var_neighbourhood * z_neighbourhood @ z_neighbourhood.T
           + var_residual * np.eye(len(frame)))
    chol = np.linalg.cholesky(cov)
    residual = np.linalg.solve(chol, frame["y"].to_numpy() - intercept - slope * frame["x"].to_numpy())
    return -0.5 * (len(frame) * np.log(2 * np.pi) + 2 * np.log(np.diag(chol)).sum() + residual @ residual)


def observed_information_se(frame: pd.DataFrame, values: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Standard errors from the inverse of the dense log-likelihood's negative Hessian (central
    differences of ``step``) at the estimates."""
    k = len(values)
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            def at(a: int, b: int) -> float:
                shifted = values.copy()
                shifted[i] += a * step
                shifted[j] += b * step
                return dense_loglik(frame, shifted)
            hessian[i, j] = hessian[j, i] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * step**2)
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


def fit(frame: pd.DataFrame) -> pd.DataFrame:
    """statsmodels' ML estimates of the five parameters, their standard errors, and the log-likelihood.

    MixedLM reports the variance components relative to the residual variance (``params``, with
    standard errors of those ratios); the variances are ``vcomp`` and ``scale``. Their standard
    errors here come from the observed information of the dense log-likelihood
    (:func:`observed_information_se`), whose value at the estimates must equal MixedLM's; the fixed
    effects' standard errors are MixedLM's (and agree with the dense ones)."""
    model = smf.mixedlm("y ~ x", frame.assign(everyone=1), groups="everyone", re_formula="0",
                        vc_formula={"school": "0 + C(school)", "neighbourhood": "0 + C(neighbourhood)"})
    result = model.fit(reml=False, method=["bfgs"], gtol=1e-8)
    if not result.converged:
        raise RuntimeError("MixedLM did not converge")
    components = dict(zip(model.exog_vc.names, result.vcomp))
    values = np.array([result.fe_params["Intercept"], result.fe_params["x"], components["school"],
                       components["neighbourhood"], result.scale])
    if abs(dense_loglik(frame, values) - result.llf) > 1e-6:
        raise RuntimeError("the dense log-likelihood at MixedLM's estimates differs from its llf")
    se = observed_information_se(frame, values)
    if not np.allclose(se[:2], result.bse_fe[["Intercept", "x"]].to_numpy(), rtol=1e-3):
        raise RuntimeError("the fixed effects' standard errors differ from MixedLM's")
    se[:2] = result.bse_fe[["Intercept", "x"]].to_numpy()
    names = ["intercept", "slope_x", "var_school", "var_neighbourhood", "var_residual"]
    return pd.DataFrame({"param": [*names, "loglik"], "est": [*values, result.llf], "se": [*se, np.nan]})


def main() -> None:
    frame = simulate(np.random.default_rng(SEED))
    estimates = fit(frame)
    frame.to_csv(FOLDER / "crossed_schools.csv", index=False)
    estimates.to_csv(FOLDER / "crossed_schools_statsmodels.csv", index=False, float_format="%.10g")
    print(f"statsmodels {statsmodels.__version__}")
    print(estimates.to_string(index=False))
    print(frame.groupby("school").size().describe().to_string())
    print("neighbourhoods per school:", frame.groupby("school")["neighbourhood"].nunique().describe().to_string())


if __name__ == "__main__":
    main()
