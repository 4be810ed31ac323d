"""The Holzinger-Swineford three-factor model in the two schools: the data, lavaan's estimates and
likelihood-ratio tests beside the posterior, the mean residuals that pick the intercepts of a
partial-invariance model, and the figures.

    visual  =~ x1 + x2 + x3
    textual =~ x4 + x5 + x6      (first loadings fixed to 1, in each school)
    speed   =~ x7 + x8 + x9
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

import bayes_msem as bm

DATA = bm.datasets.load("hs_multigroup")
MODEL = bm.datasets.info("hs_multigroup").model
ITEMS = [f"x{k}" for k in range(1, 10)]
LAVAAN_STEPS = ("configural", "metric", "scalar")  # the steps of the reference data set


def lavaan_tests() -> pd.DataFrame:
    """lavaan's likelihood-ratio test of each step against the one before:
    Δχ² = χ²_step − χ²_before on Δdf degrees of freedom, p = P(χ²_Δdf > Δχ²)."""
    fit = bm.datasets.reference("hs_multigroup", "fit").set_index("model")
    rows = []
    for before, step in zip(LAVAAN_STEPS, LAVAAN_STEPS[1:]):
        chisq = fit.at[step, "chisq"] - fit.at[before, "chisq"]
        df = int(fit.at[step, "df"] - fit.at[before, "df"])
        rows.append({"model": step, "against": before, "chisq_diff": chisq, "df_diff": df,
                     "p": stats.chi2.sf(chisq, df)})
    return pd.DataFrame(rows).set_index("model")


def against_lavaan(fits: dict[str, bm.Fit]) -> pd.DataFrame:
    """Per step and free parameter: posterior mean and SD beside lavaan's ML estimate and SE, and
    the distance |mean − est| / SD."""
    reference = bm.datasets.reference("hs_multigroup").query("se > 0")
    tables = []
    for step in LAVAAN_STEPS:
        ours = fits[step].parameters().query("free")[["lhs", "op", "rhs", "group", "mean", "sd"]]
        joined = ours.merge(reference.query("model == @step")[["lhs", "op", "rhs", "group", "est", "se"]],
                            on=["lhs", "op", "rhs", "group"], validate="one_to_one")
        tables.append(joined.assign(model=step, distance=(joined["mean"] - joined["est"]).abs() / joined["sd"]))
    return pd.concat(tables, ignore_index=True).set_index(["model", "group", "lhs", "op", "rhs"])


def mean_residuals(fit: bm.Fit, data: pd.DataFrame = DATA, group: str = "school") -> pd.DataFrame:
    """Per item and group: the observed mean minus the model-implied mean ν + Λκ at the posterior
    means, in units of the item's SD in that group; items whose equal intercept the data reject
    have the largest residuals (of opposite signs in the two groups)."""
    table = fit.parameters()
    rows = []
    for name, rows_of_group in table.groupby("group", sort=False):
        values = rows_of_group.set_index(["lhs", "op", "rhs"])["mean"]
        observed = data.loc[data[group] == name, ITEMS]
        for item in ITEMS:
            loading = rows_of_group.query("op == '=~' and rhs == @item").iloc[0]
            implied = values[(item, "~1", "")] + loading["mean"] * values[(loading["lhs"], "~1", "")]
            rows.append({"group": name, "item": item,
                         "residual": (observed[item].mean() - implied) / observed[item].std()})
    groups = list(dict.fromkeys(table["group"]))
    return pd.DataFrame(rows).pivot(index="item", columns="group", values="residual")[groups]


def elpd_against(fit: bm.Fit, others: dict[str, bm.Fit]) -> pd.DataFrame:
    """ELPD (LOO) difference of ``fit`` from each of ``others`` and its SE, from the pointwise
    differences d_j over the pupils: Δ = Σ_j d_j, SE = √(J Var_j d_j)."""
    elpd = fit.loo().elpd_i.values
    rows = {}
    for name, other in others.items():
        difference = elpd - other.loo().elpd_i.values
        rows[name] = {"elpd_diff": difference.sum(), "diff_se": np.sqrt(len(difference) * difference.var())}
    return pd.DataFrame(rows).T


def _estimates_with_se(ax, centres: pd.Series, se: pd.Series, labels: list[str], colour: str) -> None:
    """One row per estimate: the point, ±1 SE (thick) and ±2 SE (thin), the first row on top."""
    position = np.arange(len(centres))
    for width, factor in ((1.0, 2), (3.0, 1)):
        ax.hlines(position, centres - factor * se, centres + factor * se, color=colour, linewidth=width)
    ax.plot(centres, position, "o", color=colour)
    ax.set(yticks=position, yticklabels=labels)
    ax.invert_yaxis()


def plot_elpd(table: pd.DataFrame):
    """ELPD (LOO) of each step with ±1 and ±2 SE, and the difference from the step before."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    _estimates_with_se(left, table["elpd_loo"], table["se"], list(table["model"]), "C0")
    left.set(xlabel="ELPD (LOO)", title="each step (±1, ±2 SE)")
    steps = table.assign(before=table["model"].shift()).dropna(subset=["elpd_diff"])
    labels = list(steps["model"] + " − " + steps["before"])
    _estimates_with_se(right, steps["elpd_diff"], steps["diff_se"], labels, "C1")
    right.axvline(0, color="0.35", linestyle="--", linewidth=0.9)
    right.set(xlabel="ELPD difference", title="difference from the step before")
    return figure


def plot_differences(differences: pd.DataFrame, classes: tuple[str, ...] = ("intercepts", "loadings")):
    """The posterior mean and 95% interval of each group difference θ_second − θ_first of
    ``classes``; red where the interval excludes 0."""
    rows = differences[differences["class"].isin(classes)].sort_values(["class", "lhs", "rhs"])
    flagged = (rows["lower"] > 0) | (rows["upper"] < 0)
    labels = [f"{r.lhs} {r.op} {r.rhs}".strip() for r in rows.itertuples()]
    figure, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1), layout="constrained")
    position = np.arange(len(rows))
    colours = np.where(flagged, "C3", "0.4")
    ax.hlines(position, rows["lower"], rows["upper"], colors=colours)
    ax.scatter(rows["mean"], position, c=colours, zorder=3, s=18)
    ax.axvline(0, color="0.35", linestyle="--", linewidth=0.9)
    ax.set(yticks=position, yticklabels=labels, xlabel=f"{rows['group'].iloc[0]} − first group (configural fit)",
           title="group differences; red: 95% interval excludes 0")
    ax.invert_yaxis()
    return figure
