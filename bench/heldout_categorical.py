"""Binary and ordinal factor models that played no part in choosing the default priors, each fitted
once with every default (``model.fit(random_seed=...)``: 4 chains x 1000 draws after 1000 warm-up):
the largest R-hat over the free parameters, divergences, the smallest bulk ESS and whether each
loading's posterior mean lies within 2 posterior SDs of its true value.

    .venv/bin/python bench/heldout_categorical.py      # writes its section of bench/RECOVERY.md

The designs differ from bench/recovery_categorical.py's (items, factors, loadings, sizes,
categories); the first is the two-level binary model as a new user writes it, with the loadings
the defaults were diagnosed on, simulated afresh.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from recovery_categorical import render, replace_section  # noqa: E402


@dataclass(frozen=True)
class Design:
    """Latent responses y*_k = Σ_f λ_kf η_f (+ λ^B_k η_B + d_k with clusters) + e_k, e_k logistic
    (binary: u_k = 1 when ν_k + y*_k > 0) or standard normal (ordinal: category 1 + #{c: y*_k > τ_c})."""

    name: str
    loadings: np.ndarray  # items x within factors; the first nonzero entry per factor is the marker
    factor_cov: np.ndarray
    rows: int
    intercepts: tuple[float, ...] = ()  # binary items
    thresholds: tuple[float, ...] = ()  # ordinal items, the same for every item
    clusters: int = 0
    between_loadings: tuple[float, ...] = ()
    between_variance: float = 0.0
    seed: int = 0
    factors: tuple[str, ...] = field(default=("f1", "f2"))

    @property
    def items(self) -> list[str]:
        return [f"u{k + 1}" for k in range(len(self.loadings))]

    @property
    def ordinal(self) -> bool:
        return bool(self.thresholds)

    def syntax(self) -> str:
        within = [f"{self.factors[f]} =~ " + " + ".join(item for item, value in zip(self.items, self.loadings[:, f])
                                                        if value)
                  for f in range(self.loadings.shape[1])]
        if not self.clusters:
            return "\n".join(within) + "\n"
        return "\n  ".join(["level: within", *within]) + "\nlevel: between\n  fb =~ " + " + ".join(self.items) + "\n"

    def simulate(self) -> pd.DataFrame:
        rng = np.random.default_rng(self.seed)
        eta = rng.multivariate_normal(np.zeros(len(self.factor_cov)), self.factor_cov, self.rows)
        latent = eta @ self.loadings.T
        frame = pd.DataFrame(index=range(self.rows))
        if self.clusters:
            cluster = np.repeat(np.arange(self.clusters), self.rows // self.clusters)
            between = rng.normal(scale=np.sqrt(self.between_variance), size=self.clusters)
            latent += np.outer(between[cluster], self.between_loadings)
            frame["cluster"] = cluster
        if self.ordinal:
            latent += rng.standard_normal(latent.shape)
            values = 1 + (latent[..., None] > np.array(self.thresholds)).sum(-1)
        else:
            values = (np.array(self.intercepts) + latent + rng.logistic(size=latent.shape) > 0).astype(int)
        return frame.assign(**dict(zip(self.items, values.T)))

    def model(self) -> bm.Model:
        kind = {"ordered": self.items} if self.ordinal else {"family": {item: "bernoulli" for item in self.items}}
        return bm.Model(self.syntax(), self.simulate(), cluster="cluster" if self.clusters else None, **kind)

    def true_loadings(self) -> dict[str, float]:
        """The true value of each free loading, keyed as ``theta``'s parameters."""
        level = "within:" if self.clusters else ""
        values = {}
        for f in range(self.loadings.shape[1]):
            items = [(item, value) for item, value in zip(self.items, self.loadings[:, f]) if value]
            values |= {f"{level}{self.factors[f]}=~{item}": value for item, value in items[1:]}
        if self.clusters:
            values |= {f"between:fb=~{item}": value for item, value in zip(self.items[1:], self.between_loadings[1:])}
        return values


ONE = np.array([[1.0], [0.8], [1.2], [1.5]])
DESIGNS = [
    Design("binary, two levels, 100 clusters of 12 (the first model users try)", ONE, np.eye(1), 1200,
           intercepts=(0.0, -0.5, 0.3, 0.5), clusters=100, between_loadings=(1.0, 0.8, 1.2, 1.5), between_variance=0.5,
           seed=101, factors=("fw",)),
    Design("binary, one level, two factors (r = 0.4), 6 items, 400 rows",
           np.array([[1, 0], [1.3, 0], [0.7, 0], [0, 1], [0, 1.4], [0, 0.9]]), np.array([[1.2, 0.4], [0.4, 0.8]]), 400,
           intercepts=(0.2, -0.4, 0.6, 0.0, 0.5, -0.8), seed=102),
    Design("ordinal (5 categories), one level, 5 items, 300 rows", np.array([[1.0], [0.6], [1.4], [0.9], [1.1]]),
           np.eye(1), 300, thresholds=(-1.5, -0.5, 0.4, 1.3), seed=103, factors=("f",)),
    Design("binary, two levels, 60 clusters of 20, 5 items", np.array([[1.0], [1.1], [0.6], [1.3], [0.9]]),
           np.array([[2.0]]), 1200, intercepts=(-0.3, 0.4, 0.0, -0.8, 0.6), clusters=60,
           between_loadings=(1.0, 0.7, 1.2, 0.9, 1.1), between_variance=0.3, seed=104, factors=("fw",)),
    Design("ordinal (4 categories), two levels, 80 clusters of 10", np.array([[1.0], [1.2], [0.8], [1.0]]), np.eye(1),
           800, thresholds=(-1.0, 0.0, 1.0), clusters=80, between_loadings=(1.0, 0.9, 1.1, 0.8), between_variance=0.5,
           seed=105, factors=("fw",)),
]


def run(design: Design) -> dict:
    model = design.model()
    started = time.perf_counter()
    fit = model.fit(random_seed=design.seed, quiet=True, progressbar=False)
    seconds = time.perf_counter() - started
    table = fit.parameters().query("free")
    theta = fit.idata.posterior["theta"]
    mean, sd = theta.mean(("chain", "draw")), theta.std(("chain", "draw"))
    truth = design.true_loadings()
    distance = {name: abs(float(mean.sel(parameter=name)) - value) / float(sd.sel(parameter=name))
                for name, value in truth.items()}
    worst = max(distance, key=distance.get)
    diagnostics = fit.diagnostics()["value"]
    return {"design": design.name, "free parameters": len(table), "max R-hat": float(table["r_hat"].max()),
            "slowest": "{level}:{lhs} {op} {rhs}".format(**table.loc[table["r_hat"].idxmax()]).lstrip(":"),
            "min bulk ESS": float(table["ess_bulk"].min()), "divergences": int(diagnostics["divergences"]),
            "loadings within 2 SD": f"{sum(d < 2 for d in distance.values())} of {len(distance)}",
            "largest |mean - truth| / SD": f"{distance[worst]:.2f} ({worst})", "seconds": seconds}


START, END = "<!-- held-out categorical: start -->", "<!-- held-out categorical: end -->"


def write(rows: list[dict]) -> None:
    rows = [row | {"min bulk ESS": round(row["min bulk ESS"]), "seconds": round(row["seconds"])} for row in rows]
    section = (f"{START}\n## Held-out binary and ordinal factor models, every default\n\n"
               f"Date {time.strftime('%Y-%m-%d')}; one data set per design, fitted with `model.fit(random_seed=...)` "
               "(4 chains x 1000 draws after 1000 warm-up, the default priors). Reproduce: "
               f"`.venv/bin/python bench/heldout_categorical.py`.\n\n{render(rows)}\n{END}\n")
    replace_section(START, END, section)


if __name__ == "__main__":
    results = []
    for design in DESIGNS:
        results.append(run(design))
        print(results[-1], flush=True)
        write(results)
