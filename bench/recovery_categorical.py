"""Recovery of binary and ordinal factor models fitted with the default priors and settings: bias,
90% interval coverage, R-hat and divergences over replications, one- and two-level.

    .venv/bin/python bench/recovery_categorical.py [replications]   # default 50; writes its section of bench/RECOVERY.md

Every replication simulates new data from the design's parameters and fits the model as a user
writes it (marker loadings, the default priors) with 2 chains x 1000 draws after 1000 warm-up.
Coverage counts the free parameters whose true value is inside the model's parameter space:
between-level residual variances of the items are 0 in these designs (the clusters differ only
through the between factor), on the boundary, and are left out of it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import bayes_msem as bm

HERE = Path(__file__).resolve().parent
ITEMS = ["u1", "u2", "u3", "u4"]
LOADINGS = np.array([1.0, 0.8, 1.2, 1.5])
INTERCEPTS = np.array([0.0, -0.5, 0.3, 0.5])  # logit P(u = 1) = ν + λ f (binary)
THRESHOLDS = np.array([[-0.6, 0.7], [-0.2, 1.0], [-0.9, 0.4], [-0.4, 0.6]])  # P(u ≤ k) = Φ(τ_k − λ f) (ordinal)
ONE_LEVEL = "f =~ u1 + u2 + u3 + u4\n"
TWO_LEVEL = "level: within\n  fw =~ u1 + u2 + u3 + u4\nlevel: between\n  fb =~ u1 + u2 + u3 + u4\n"
BETWEEN_VARIANCE = 0.5


@dataclass(frozen=True)
class Design:
    name: str
    ordinal: bool
    clusters: int  # 0: one level

    @property
    def syntax(self) -> str:
        return TWO_LEVEL if self.clusters else ONE_LEVEL

    def simulate(self, rng: np.random.Generator) -> pd.DataFrame:
        rows = self.clusters * 12 if self.clusters else 500
        factor = rng.normal(size=rows)
        eta = np.outer(factor, LOADINGS)
        frame = pd.DataFrame(index=range(rows))
        if self.clusters:
            cluster = np.repeat(np.arange(self.clusters), 12)
            eta += np.outer(rng.normal(scale=np.sqrt(BETWEEN_VARIANCE), size=self.clusters)[cluster], LOADINGS)
            frame["cluster"] = cluster
        for k, item in enumerate(ITEMS):
            if self.ordinal:
                frame[item] = ((eta[:, k] + rng.normal(size=rows))[:, None] > THRESHOLDS[k]).sum(1)
            else:
                frame[item] = (rng.random(rows) < 1 / (1 + np.exp(-(INTERCEPTS[k] + eta[:, k])))).astype(int)
        return frame

    def model(self, data: pd.DataFrame) -> bm.Model:
        kind = {"ordered": ITEMS} if self.ordinal else {"family": {item: "bernoulli" for item in ITEMS}}
        return bm.Model(self.syntax, data, cluster="cluster" if self.clusters else None, **kind)

    def truth(self) -> dict[tuple[str, str, str, str], float]:
        """(level, lhs, op, rhs) → the true value of each free parameter (None: on the boundary)."""
        within, between = ("within", "between") if self.clusters else ("", "")
        factor, upper = ("fw", "fb") if self.clusters else ("f", None)
        values = {(within, factor, "=~", item): LOADINGS[k] for k, item in enumerate(ITEMS)}
        values[(within, factor, "~~", factor)] = 1.0
        if upper:
            values |= {(between, upper, "=~", item): LOADINGS[k] for k, item in enumerate(ITEMS)}
            values[(between, upper, "~~", upper)] = BETWEEN_VARIANCE
            values |= {(between, item, "~~", item): None for item in ITEMS}
        for k, item in enumerate(ITEMS):
            if self.ordinal:
                values |= {(within, item, "|", f"t{j + 1}"): tau for j, tau in enumerate(THRESHOLDS[k])}
            else:
                values[(between if upper else within, item, "~1", "")] = INTERCEPTS[k]
        return values


DESIGNS = [Design("binary, one level, 500 rows", False, 0), Design("ordinal (3 categories), one level, 500 rows", True, 0),
           Design("binary, two levels, 100 clusters of 12", False, 100),
           Design("ordinal (3 categories), two levels, 100 clusters of 12", True, 100)]


def replicate(design: Design, seed: int) -> dict:
    model = design.model(design.simulate(np.random.default_rng(seed)))
    started = time.perf_counter()
    fit = model.fit(draws=1000, tune=1000, chains=2, random_seed=seed, quiet=True, progressbar=False)
    seconds = time.perf_counter() - started
    table = fit.parameters().query("free")
    theta = fit.idata.posterior["theta"].stack(sample=("chain", "draw"))
    truth = design.truth()
    rows = []
    for row in table.itertuples(index=False):
        key = (row.level or "", row.lhs, row.op, row.rhs if row.op != "~1" else "")
        true = truth[key]
        draws = theta.sel(parameter=f"{row.level}:{row.lhs}{row.op}{row.rhs}" if row.level else
                          f"{row.lhs}{row.op}{row.rhs}").values
        lower, upper = np.quantile(draws, [0.05, 0.95])
        rows.append({"parameter": f"{key[0]}:{row.lhs} {row.op} {row.rhs}".lstrip(":"), "op": row.op, "true": true,
                     "mean": row.mean, "sd": row.sd, "covered": None if true is None else bool(lower <= true <= upper),
                     "r_hat": row.r_hat})
    diagnostics = fit.diagnostics()["value"]
    return {"rows": rows, "r_hat": float(table["r_hat"].max()), "divergences": int(diagnostics["divergences"]),
            "seconds": seconds}


def summarise(design: Design, runs: list[dict]) -> dict:
    rows = pd.DataFrame([row for run in runs for row in run["rows"]])
    inside = rows[rows["covered"].notna()]
    covered, n = int(inside["covered"].sum()), len(inside)
    low, high = stats.binom.ppf([0.025, 0.975], n, 0.9) / n
    loadings = inside[inside["op"] == "=~"]
    by_parameter = inside.groupby("parameter")["covered"].mean()
    r_hats = np.array([run["r_hat"] for run in runs])
    return {"design": design.name, "replications": len(runs), "intervals": n, "covered": covered,
            "coverage": covered / n, "band": f"{low:.3f}-{high:.3f}",
            "loading bias": float((loadings["mean"] - loadings["true"]).mean()),
            "loading |bias| max": float((loadings["mean"] - loadings["true"]).groupby(loadings["parameter"]).mean()
                                        .abs().max()),
            "loading within 2 SD": float(((loadings["mean"] - loadings["true"]).abs() < 2 * loadings["sd"]).mean()),
            "max R-hat": float(r_hats.max()), "R-hat < 1.01": int((r_hats < 1.01).sum()),
            "R-hat < 1.02": int((r_hats < 1.02).sum()), "divergences": int(sum(run["divergences"] for run in runs)),
            "median seconds": float(np.median([run["seconds"] for run in runs])),
            "least covered": f"{by_parameter.idxmin()} ({by_parameter.min():.2f})"}


def render(summaries: list[dict]) -> str:
    def cell(value) -> str:
        return (f"{value:.3f}" if isinstance(value, float) else str(value)).replace("|", "\\|")

    columns = list(summaries[0])
    lines = ["| " + " | ".join(map(cell, columns)) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(map(cell, s.values())) + " |" for s in summaries]
    return "\n".join(lines)


START, END = "<!-- categorical recovery: start -->", "<!-- categorical recovery: end -->"


def main(replications: int) -> None:
    summaries = []
    for design in DESIGNS:
        runs = [replicate(design, seed) for seed in range(1, replications + 1)]
        summaries.append(summarise(design, runs))
        print(summaries[-1], flush=True)
        write(summaries, replications)


def write(summaries: list[dict], replications: int) -> None:
    """The section of bench/RECOVERY.md with the designs done so far."""
    section = (f"{START}\n## Binary and ordinal factor models, default priors\n\n"
               f"Date {time.strftime('%Y-%m-%d')}; 2 chains x 1000 draws after 1000 warm-up per replication; the model as "
               "a user writes it (marker loadings, default priors: loadings of binary and ordinal items normal(0, 2.5), "
               "the SD of a factor they alone measure gamma(2, 1)); "
               "90% equal-tailed intervals. Reproduce: `.venv/bin/python bench/recovery_categorical.py "
               f"{replications}`.\n\n{render(summaries)}\n\n"
               "*intervals* count the free parameters whose true value lies inside the parameter space (the items' "
               "between-level residual variances, 0 in the two-level designs, are left out); *loading bias* is the mean "
               "of posterior mean minus truth over loadings and replications, *loading |bias| max* the largest "
               "per-loading mean; *loading within 2 SD* the share of loadings whose posterior mean lies within 2 "
               f"posterior SDs of the truth.\n{END}\n")
    replace_section(START, END, section)


def replace_section(start: str, end: str, section: str) -> None:
    """Put ``section`` (from the ``start`` marker to the ``end`` one) in bench/RECOVERY.md, in place
    of the one between those markers, or at the end."""
    page = HERE / "RECOVERY.md"
    text = page.read_text()
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
