"""The log-likelihood of each cluster with its latent variables integrated out, for the strategies
that sample them (hybrid and conditional), by importance sampling.

A unit j of the highest level (a cluster; a school with three levels; a row of a single-level
model) has standard-normal latent disturbances: its random parameters (hybrid), or every
disturbance of its rows and clusters (conditional). Given those of the levels above the rows,
u_j, each row's disturbances w_i are independent of the other rows', so the integral nests:

    p(y_j | θ) = ∫ Π_{i in j} [∫ p(y_i | θ, u_j, w_i) N(w_i; 0, I) dw_i] p(c_j | θ, u_j) N(u_j; 0, I) du_j

(c_j: the cluster-level outcomes). Both integrals are taken by importance sampling with normal
proposals q that have each element's posterior mean and ``WIDEN`` times its posterior SD (wider
than the posterior they imitate, so that the weights stay bounded): M draws u_m ~ q_j and, for
each, K draws w_ik ~ q_i,

    p(y_j | θ) ≈ (1/M) Σ_m N(u_m) / q_j(u_m) p(c_j | u_m) Π_i (1/K) Σ_k p(y_i | u_m, w_ik) N(w_ik) / q_i(w_ik).

Taking the rows' integrals one by one keeps each in the few dimensions of a row's latent
variables; one importance sample over all of a cluster's rows at once would be in as many
dimensions as the cluster has rows times their latent variables, where its weights degenerate
and the estimate falls far below the integral (log ∫ is underestimated by Jensen's inequality).
Every draw of θ gets its own draws; the Monte Carlo error falls as 1/√M and 1/√K, and the
Pareto k of LOO reports clusters where it or the cluster's influence is too large.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp

from ..data.clustered import ClusteredData
from ..likelihood.conditional import LevelPlan, ResponseStatistics, disturbance_name, loglik_terms
from ..likelihood.gaussian import flat
from ..likelihood.registry import strategy_for
from ..likelihood.strategy import HYBRID, Strategy
from ..spec.plan import Plan

WIDEN = 1.25
ROW_DRAWS = 10  # K, the draws of each row's disturbances per draw of its cluster's


class SampledLikelihood:
    """log p(y_j | θ, z) per unit j, compiled once, and its importance-sampling integral over z;
    z are the random parameters of the hybrid strategy or the disturbances of the conditional one
    (``strategy``: the registry's choice for ``plan`` unless given); ``prefix`` leads their names in
    the posterior (a group's, ``g1::``). ``rows`` names the rows' disturbances, integrated row by
    row (module docstring), when there are levels above the rows."""

    def __init__(self, plan: Plan, data: ClusteredData, strategy: Strategy | None = None, prefix: str = ""):
        self.plan, self.data = plan, data
        theta = pt.vector("theta")
        self.top_of_row = data.top_index()
        self.inputs: dict[str, tuple[pt.TensorVariable, np.ndarray, int]] = {}  # z name → (input, unit of each row, columns)
        self.rows: str | None = None
        strategy = strategy or strategy_for(plan)
        if strategy.kind == HYBRID:
            stats = strategy.statistics(plan, data)
            symbols = stats.placeholders()
            z = pt.matrix("random_effects_z")
            self.inputs[f"{prefix}random_effects_z"] = (z, np.arange(data.n_clusters), len(plan.random))
            with pm.Model():  # a scratch model for the deterministics the strategy records
                outputs = [strategy.graph(plan, theta, symbols, z, by_cluster=True)[0]]
        else:
            stats = ResponseStatistics.from_data(plan, data)
            symbols = stats.placeholders()

            def disturbances(rank: int, level: LevelPlan, chosen: np.ndarray) -> pt.TensorVariable | None:
                if not len(chosen):
                    return None
                name = prefix + disturbance_name(rank, plan.two_level)
                index = data.level_index(rank)  # each row's unit of this level
                units = np.zeros(index.max() + 1, dtype=np.int64)
                units[index] = self.top_of_row
                self.inputs[name] = (pt.matrix(name), units, len(chosen))
                if rank == 0 and data.n_levels > 1:
                    self.rows = name
                return self.inputs[name][0]

            terms = loglik_terms(plan, theta, symbols, disturbances)
            outputs = [terms.rows, terms.by_unit(rows=False)] if self.rows else [terms.by_unit()]
        self.statistics = stats.values()
        self._function = pytensor.function([theta, *(z for z, _, _ in self.inputs.values()), *flat(symbols)], outputs,
                                           on_unused_input="ignore")
        self.n_units = int(self.top_of_row.max()) + 1

    def integrated(self, theta: np.ndarray, proposal: dict[str, tuple[np.ndarray, np.ndarray]], draws: int,
                   rng: np.random.Generator, row_draws: int = ROW_DRAWS) -> np.ndarray:
        """log p(y_j | θ) of every unit j by importance sampling (module docstring) with ``draws``
        draws M of the disturbances above the rows and, for each, ``row_draws`` draws K of the rows'
        (from the normal ``proposal``: name → mean, SD of each element of z); ``draws`` x ``row_draws``
        of the rows' where nothing above them is latent."""
        outer = {name: value for name, value in proposal.items() if name != self.rows}
        if self.rows and not outer:  # only the rows have latent variables: one integral per row
            draws, row_draws = 1, draws * row_draws
        values = np.empty((draws, self.n_units))
        for m in range(draws):
            z, log_ratio = self._draw(outer, rng)
            if self.rows is None:
                values[m] = self._function(theta, *(z[name] for name in self.inputs), *self.statistics)[0] + log_ratio
                continue
            rows = np.empty((row_draws, len(self.top_of_row)))
            for k in range(row_draws):
                inner, rows_ratio = self._draw({self.rows: proposal[self.rows]}, rng, by_unit=False)
                rows[k], upper = self._function(theta, *({**z, **inner}[name] for name in self.inputs), *self.statistics)
                rows[k] += rows_ratio
            per_row = logsumexp(rows, axis=0) - np.log(row_draws)
            values[m] = np.bincount(self.top_of_row, weights=per_row, minlength=self.n_units) + upper + log_ratio
        return logsumexp(values, axis=0) - np.log(draws)

    def _draw(self, proposal: dict[str, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, by_unit: bool = True
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """z ~ q for every name of ``proposal`` and log N(z; 0, I) − log q(z), summed per unit of the
        highest level (per row of z without ``by_unit``)."""
        z, total = {}, 0.0
        for name, (mean, sd) in proposal.items():
            z[name] = mean + sd * rng.standard_normal(mean.shape)
            log_ratio = (-0.5 * z[name] ** 2 + 0.5 * ((z[name] - mean) / sd) ** 2 + np.log(sd)).sum(-1)
            total = total + (np.bincount(self.inputs[name][1], weights=log_ratio, minlength=self.n_units)
                             if by_unit else log_ratio)
        return z, (np.zeros(self.n_units) if isinstance(total, float) else total)


def posterior_proposal(posterior: xr.DataTree, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each z element's posterior mean and ``WIDEN`` times its posterior SD."""
    out = {}
    for name in names:
        values = posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        out[name] = (values.mean(0), WIDEN * np.maximum(values.std(0), 1e-3))
    return out

