"""Fit the multilevel logit factor model of Rabe-Hesketh, Skrondal & Pickles (2004, Table 1) to data
simulated from its estimates by ``simulate.py``, set the posterior beside Table 1, and redo the
paper's deviance comparisons as leave-one-district-out LOO comparisons.

The panel is put in wide form, one row per subject with the 28 responses {item}_{wave} (missing
where a wave or a response is missing), so subjects are the units and districts the clusters:

    within (subject):   G =~ λ_G,i {item}_t (all items, λ_G,woman = 1),
                        E =~ λ_E,i {item}_t (defect, risk, rape; λ_E,defect = 1), G ⊥ E
    between (district): D =~ λ_G,i {item}_t (the general factor's district part u_G: the same loadings),
                        {item}_t ~ β_i (one intercept per item, equal over waves), no item-specific
                        district variance.

Shared labels hold every loading equal over the four waves and between G and D, and every
intercept equal over the waves. The comparison models (the paper's deviance tests):

    no extreme factor:  E dropped (paper: deviance +207.7, 3 df)
    no district factor: D dropped (the Table 1 model adds it: paper -8.2, 1 parameter)
    unique factors:     + U_i =~ 1*{item}_1 + ... + 1*{item}_4 for each item, variances free, all
                        factors uncorrelated (the paper's equations 23-24: -12.6, 7 parameters)

Usage: ``python analysis.py [--seeds 2004 7 1986] [--models table1 no_extreme ...]`` fits every
model and seed not fitted yet (the Table 1 model with 4 chains x 500 draws after 500 warm-up, the
comparison models, which serve LOO only, with 4 x 250 after 250; the fits are kept in ``fits/``), then writes ``results_seed{seed}.md``
for each seed fitted, ``results.md`` (every seed side by side) and the results section of README.md.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from simulate import EXTREME_ITEMS, ITEMS, N_WAVES, TABLE1, simulate  # noqa: E402

WAVES = range(1, N_WAVES + 1)
SEEDS = (2004, 7, 1986)
DRAWS, TUNE, CHAINS = 500, 500, 4  # the Table 1 model
COMPARISON_DRAWS, COMPARISON_TUNE = 250, 250  # the three models it is compared with (4 chains)
FITS = HERE / "fits"

# name → (what the syntax holds, label in the tables)
MODELS: dict[str, tuple[dict[str, bool], str]] = {
    "table1": ({}, "Table 1 model"),
    "no_extreme": ({"extreme": False}, "no extreme factor"),
    "no_district": ({"district_general": False}, "no district general factor"),
    "unique": ({"unique_factors": True}, "unique item factors"),
}
# (comparison, model B, model A, the paper's deviance change from A to B, parameters added by B)
COMPARISONS = (
    ("(a) drop the extreme factor", "no_extreme", "table1", 207.7, -3),
    ("(b) add the district general factor", "table1", "no_district", -8.2, 1),
    ("(c) add unique item factors", "unique", "table1", -12.6, 7),
)


def wide(data: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: district and {item}_{wave} (NaN where not answered)."""
    out = data.pivot(index=["district", "subject"], columns="wave", values=list(ITEMS))
    out = out.reindex(columns=pd.MultiIndex.from_product([ITEMS, WAVES]))
    out.columns = [f"{item}_{wave}" for item, wave in out.columns]
    return out.reset_index()


def _factor(name: str, items: tuple[str, ...], labels: dict[str, str]) -> str:
    """``name =~`` every wave column of ``items``, the first item's loadings fixed to 1, the others labelled."""
    terms = [f"{'1' if item == items[0] else labels[item]}*{item}_{t}" for item in items for t in WAVES]
    return f"  {name} =~ " + " + ".join(terms)


def syntax(extreme: bool = True, district_general: bool = True, unique_factors: bool = False) -> str:
    """The model in lavaan syntax (see the module's docstring); the arguments drop or add factors."""
    general = {item: f"lg_{item}" for item in ITEMS}
    within = ["level: within", _factor("G", ITEMS, general)]
    factors = ["G"]
    if extreme:
        within.append(_factor("E", EXTREME_ITEMS, {item: f"le_{item}" for item in EXTREME_ITEMS}))
        factors.append("E")
    if unique_factors:
        for item in ITEMS:
            within.append(f"  U_{item} =~ " + " + ".join(f"1*{item}_{t}" for t in WAVES))
            factors.append(f"U_{item}")
    within += [f"  {a} ~~ 0*{b}" for a, b in itertools.combinations(factors, 2)]
    between = ["level: between"]
    if district_general:
        between.append(_factor("D", ITEMS, general))
    for item in ITEMS:
        between += [f"  {item}_{t} ~ b_{item}*1" for t in WAVES] + [f"  {item}_{t} ~~ 0*{item}_{t}" for t in WAVES]
    return "\n".join(within + between)


def reference() -> pd.DataFrame:
    """Table 1's free parameters, keyed as the parameter table (lhs, op, rhs, level), with a name,
    the estimate and its SE."""
    rows = []
    for row in TABLE1[TABLE1["se"].notna()].itertuples():
        if row.block == "intercept":
            key, name = (f"{row.item}_1", "~1", "", "between"), f"β {row.item}"
        elif row.block == "loading":
            factor = "G" if row.factor == "general" else "E"
            key, name = (factor, "=~", f"{row.item}_1", "within"), f"λ_{factor} {row.item}"
        elif row.level == "subject":
            factor = "G" if row.factor == "general" else "E"
            key, name = (factor, "~~", factor, "within"), f"Var(ζ_{factor})"
        else:
            key, name = ("D", "~~", "D", "between"), "Var(u_G)"
        rows.append((key, name, row.estimate, float(row.se)))
    return pd.DataFrame(rows, columns=["key", "parameter", "table1", "se"])


def settings(name: str) -> tuple[int, int, int]:
    """Draws, warm-up and chains of model ``name``."""
    return (DRAWS, TUNE, CHAINS) if name == "table1" else (COMPARISON_DRAWS, COMPARISON_TUNE, CHAINS)


def fit_path(seed: int, name: str, draws: int, tune: int, chains: int) -> Path:
    """Where the fit of model ``name`` to the data of ``seed`` with these settings is kept."""
    return FITS / f"seed{seed}_{name}_{chains}x{draws}+{tune}.nc"


def fit_model(seed: int, name: str, draws: int | None = None, tune: int | None = None,
              chains: int | None = None) -> bm.Fit:
    """Fit model ``name`` to the data of ``seed`` (with :func:`settings` unless given), compute its
    pointwise log-likelihood and keep the fit in fits/; read it from there when it was made before
    with the same settings."""
    default = settings(name)
    draws, tune, chains = draws or default[0], tune or default[1], chains or default[2]
    path = fit_path(seed, name, draws, tune, chains)
    if path.exists():
        return bm.load(path)
    data = wide(simulate(seed))
    columns = [c for c in data.columns if c not in ("district", "subject")]
    model = bm.Model(syntax(**MODELS[name][0]), data, cluster="district", family=dict.fromkeys(columns, "bernoulli"))
    fit = model.fit(draws=draws, tune=tune, chains=chains, random_seed=seed)
    fit.log_likelihood(seed=seed)
    FITS.mkdir(exist_ok=True)
    fit.save(path)
    return fit


def diagnostics_line(fit: bm.Fit) -> str:
    """Divergences, max R-hat, min bulk ESS and sampling time of one fit, and its LOO: ELPD (SE),
    p_loo and the districts whose Pareto k exceeds the reliable bound."""
    value, posterior = fit.diagnostics()["value"], fit.idata.posterior
    with warnings.catch_warnings():  # the districts with a large Pareto k are counted here
        warnings.simplefilter("ignore")
        loo = fit.loo()
    high_k = int((loo.pareto_k.values > loo.good_k).sum())
    return (f"{posterior.sizes['chain']} chains x {posterior.sizes['draw']} draws: {value['divergences']:.0f} divergences, "
            f"max R-hat {value['r_hat']:.3f}, min bulk ESS {value['ess_bulk']:.0f}; "
            f"{fit.info['seconds_sample']:.0f} s sampling (wall); ELPD {loo.elpd:.1f} (SE {loo.se:.1f}), "
            f"p_loo {loo.p:.1f}, {high_k} of {loo.pareto_k.size} districts with Pareto k > {loo.good_k:.2f}")


def recovery(fit: bm.Fit) -> pd.DataFrame:
    """Table 1's estimate (SE) beside the posterior mean, SD and 95% interval, and whether the
    interval covers the estimate that generated the data."""
    table = reference()
    result = fit.recovery(dict(zip(table["key"], table["table1"])), dict(zip(table["key"], table["parameter"])))
    return result.assign(se=table["se"].to_numpy())


def comparisons(fits: dict[str, bm.Fit]) -> pd.DataFrame:
    """Each of the paper's deviance changes beside ELPD_B - ELPD_A (leave one district out), its SE
    and -2 (ELPD_B - ELPD_A), on the deviance's scale."""
    rows = []
    for label, b, a, deviance, parameters in COMPARISONS:
        if a not in fits or b not in fits:
            continue
        table = bm.compare({b: fits[b], a: fits[a]})  # dse: the SE of the difference, on the second-ranked row
        difference = table.at[b, "elpd"] - table.at[a, "elpd"]
        rows.append((label, deviance, parameters, difference, table["dse"].max(), -2 * difference))
    return pd.DataFrame(rows, columns=["comparison", "paper deviance change", "parameters added",
                                       "ELPD_B - ELPD_A", "SE", "-2 (ELPD_B - ELPD_A)"])


def _cell(row: pd.Series) -> str:
    mark = "" if row["covered"] else " **missed**"
    return f"{row['mean']:.2f} ({row['sd']:.2f}) [{row['lower']:.2f}, {row['upper']:.2f}]{mark}"


def seed_report(seed: int, fits: dict[str, bm.Fit]) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The markdown of one data set (Table 1 beside the posterior, the LOO comparisons, each fit's
    diagnostics), its recovery table and its comparisons."""
    data = wide(simulate(seed))
    columns = [c for c in data.columns if c not in ("district", "subject")]
    answered = int(data[columns].notna().to_numpy().sum())
    result = recovery(fits["table1"])
    compared = comparisons(fits)
    lines = [f"# Seed {seed}", "",
             f"{len(data)} subjects in {data['district'].nunique()} districts, {answered} item responses. "
             f"{result['covered'].sum()} of {len(result)} Table 1 estimates inside their 95% intervals.", "",
             "| parameter | Table 1 (SE) | posterior mean (SD) [95% interval] |", "| --- | --- | --- |"]
    lines += [f"| {row['parameter']} | {row['truth']:.2f} ({row['se']:.2f}) | {_cell(row)} |" for _, row in result.iterrows()]
    lines += ["", "## LOO comparisons (leave one district out)", "", _markdown(compared), "", "## Fits", ""]
    lines += [f"- {MODELS[name][1]}: {diagnostics_line(fit)}" for name, fit in fits.items()]
    return "\n".join(lines) + "\n", result, compared


def _markdown(frame: pd.DataFrame) -> str:
    """A frame as a markdown table, numbers to 1 decimal."""
    header = "| " + " | ".join(frame.columns) + " |\n| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, *rows])


def side_by_side(results: dict[int, pd.DataFrame], compared: dict[int, pd.DataFrame]) -> str:
    """Every seed's posterior beside Table 1, and every seed's LOO comparisons beside the paper's."""
    seeds = list(results)
    first = results[seeds[0]]
    lines = ["| parameter | Table 1 (SE) | " + " | ".join(f"seed {s}: mean (SD) [95% interval]" for s in seeds) + " |",
             "| --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
    for k, row in first.iterrows():
        cells = [_cell(results[s].loc[k]) for s in seeds]
        lines.append(f"| {row['parameter']} | {row['truth']:.2f} ({row['se']:.2f}) | " + " | ".join(cells) + " |")
    covered = ", ".join(f"seed {s}: {results[s]['covered'].sum()} of {len(results[s])}" for s in seeds)
    lines += ["", f"Table 1 estimates inside the 95% intervals: {covered}.", "",
              "ELPD_B − ELPD_A (SE) over the 57 districts, and −2 × that difference on the deviance's scale:", ""]
    lines += ["| comparison | paper: deviance change (parameters) | "
              + " | ".join(f"seed {s}: ELPD diff (SE); −2 × diff" for s in seeds) + " |",
              "| --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
    for label, _, _, deviance, parameters in COMPARISONS:
        cells = []
        for s in seeds:
            table = compared[s].set_index("comparison")
            if label not in table.index:
                cells.append("not fitted")
                continue
            row = table.loc[label]
            cells.append(f"{row['ELPD_B - ELPD_A']:.1f} ({row['SE']:.1f}); {row['-2 (ELPD_B - ELPD_A)']:.1f}")
        lines.append(f"| {label} | {deviance:+.1f} ({parameters:+d}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(seeds: tuple[int, ...]) -> None:
    """results_seed{seed}.md for each seed with a Table 1 fit, results.md and README.md's results
    section (between its ``<!-- results -->`` markers) from the fits in fits/."""
    results, compared = {}, {}
    for seed in seeds:
        fits = {name: bm.load(fit_path(seed, name, *settings(name))) for name in MODELS
                if fit_path(seed, name, *settings(name)).exists()}
        if "table1" not in fits:
            continue
        text, results[seed], compared[seed] = seed_report(seed, fits)
        (HERE / f"results_seed{seed}.md").write_text(text)
        results[seed].to_csv(HERE / f"results_seed{seed}.csv", index=False)
        compared[seed].to_csv(HERE / f"comparisons_seed{seed}.csv", index=False)
    table = side_by_side(results, compared)
    (HERE / "results.md").write_text("# Table 1 beside the posterior of each simulated data set\n\n" + table)
    readme = HERE / "README.md"
    text = readme.read_text()
    readme.write_text(re.sub(r"(<!-- results -->\n).*?(<!-- /results -->)", lambda m: m[1] + table + m[2], text,
                             flags=re.DOTALL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--reports-only", action="store_true", help="write the reports from the fits in fits/")
    arguments = parser.parse_args()
    if not arguments.reports_only:
        for seed, name in itertools.product(arguments.seeds, arguments.models):
            fit_model(seed, name)
    write_reports(tuple(SEEDS))


if __name__ == "__main__":
    main()
