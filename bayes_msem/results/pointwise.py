"""The log-likelihood of each cluster with its latent variables integrated out, for the strategies
that sample them (hybrid and conditional), by importance sampling.

A unit j of the highest level (a cluster; a school with three levels; a row of a single-level
model) has standard-normal latent disturbances z_j: its random parameters (hybrid), or every
disturbance of its rows and clusters (conditional). Then

    p(y_j | θ) = ∫ p(y_j | θ, z) N(z; 0, I) dz ≈ (1/M) Σ_m p(y_j | θ, z_m) N(z_m; 0, I) / q_j(z_m),

with z_m ~ q_j, a normal with each element's posterior mean and ``WIDEN`` times its posterior SD
(wider than the posterior it imitates, so that the weights stay bounded). Every draw of θ gets its
own M draws of z; the estimate's Monte Carlo error falls as 1/√M, and the Pareto k of LOO
reports clusters where it or the cluster's influence is too large.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp

from ..data.clustered import ClusteredData
from ..likelihood.conditional import LevelPlan, ResponseStatistics, conditional_loglik, disturbance_name
from ..likelihood.gaussian import flat
from ..likelihood.registry import strategy_for
from ..likelihood.strategy import HYBRID, Strategy
from ..spec.plan import Plan

WIDEN = 1.25


class SampledLikelihood:
    """log p(y_j | θ, z) per unit j, compiled once, and its importance-sampling integral over z;
    z are the random parameters of the hybrid strategy or the disturbances of the conditional one
    (``strategy``: the registry's choice for ``plan`` unless given); ``prefix`` leads their names in
    the posterior (a group's, ``g1::``)."""

    def __init__(self, plan: Plan, data: ClusteredData, strategy: Strategy | None = None, prefix: str = ""):
        self.plan, self.data = plan, data
        theta = pt.vector("theta")
        top_of_row = data.top_index()
        self.inputs: dict[str, tuple[pt.TensorVariable, np.ndarray, int]] = {}  # z name → (input, unit of each row, columns)
        strategy = strategy or strategy_for(plan)
        if strategy.kind == HYBRID:
            stats = strategy.statistics(plan, data)
            symbols = stats.placeholders()
            z = pt.matrix("random_effects_z")
            self.inputs[f"{prefix}random_effects_z"] = (z, np.arange(data.n_clusters), len(plan.random))
            with pm.Model():  # a scratch model for the deterministics the strategy records
                loglik, _ = strategy.graph(plan, theta, symbols, z, by_cluster=True)
        else:
            stats = ResponseStatistics.from_data(plan, data)
            symbols = stats.placeholders()

            def disturbances(rank: int, level: LevelPlan, chosen: np.ndarray) -> pt.TensorVariable | None:
                if not len(chosen):
                    return None
                name = prefix + disturbance_name(rank, plan.two_level)
                index = data.level_index(rank)  # each row's unit of this level
                units = np.zeros(index.max() + 1, dtype=np.int64)
                units[index] = top_of_row
                self.inputs[name] = (pt.matrix(name), units, len(chosen))
                return self.inputs[name][0]

            loglik = conditional_loglik(plan, theta, symbols, disturbances, by_unit=True)
        self.statistics = stats.values()
        self._function = pytensor.function([theta, *(z for z, _, _ in self.inputs.values()), *flat(symbols)], loglik,
                                           on_unused_input="ignore")
        self.n_units = int(top_of_row.max()) + 1

    def conditional(self, theta: np.ndarray, z: dict[str, np.ndarray]) -> np.ndarray:
        """log p(y_j | θ, z_j) of every unit j."""
        return self._function(theta, *(z[name] for name in self.inputs), *self.statistics)

    def integrated(self, theta: np.ndarray, proposal: dict[str, tuple[np.ndarray, np.ndarray]], draws: int,
                   rng: np.random.Generator) -> np.ndarray:
        """log p(y_j | θ) of every unit j by importance sampling with ``draws`` draws from the normal
        ``proposal`` (name → mean, SD of each element of z)."""
        values = np.empty((draws, self.n_units))
        for m in range(draws):
            z = {name: mean + sd * rng.standard_normal(mean.shape) for name, (mean, sd) in proposal.items()}
            ratio = np.zeros(self.n_units)
            for name, (mean, sd) in proposal.items():
                log_ratio = (-0.5 * z[name] ** 2 + 0.5 * ((z[name] - mean) / sd) ** 2 + np.log(sd)).sum(-1)
                ratio += np.bincount(self.inputs[name][1], weights=log_ratio, minlength=self.n_units)
            values[m] = self.conditional(theta, z) + ratio
        return logsumexp(values, axis=0) - np.log(draws)


def posterior_proposal(posterior: xr.DataTree, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each z element's posterior mean and ``WIDEN`` times its posterior SD."""
    out = {}
    for name in names:
        values = posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        out[name] = (values.mean(0), WIDEN * np.maximum(values.std(0), 1e-3))
    return out

