"""Data replicated from a model at θ, every latent variable of every level drawn afresh.

Levels are computed top down as in the conditional strategy
(:func:`.likelihood.conditional.top_down`), v_n = T (α + Γ x_n + ζ_n + o_n), with every
disturbance drawn: ζ_n ~ N(0, Ψ) over the level's variables whose variance is not fixed to 0
(residuals of observed variables, factors, random intercepts and random parameters), except the
lowest level's non-Gaussian responses, which are drawn from their family given the linear
predictor η (:meth:`.likelihood.families.Family.draw`). New clusters' effects are drawn, as for
predicting new clusters; covariates, clusters and missing cells stay those of the data (as
lavaan's ``fixed.x``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..likelihood.conditional import LevelPlan, ResponseStatistics, thresholds, top_down, variance_pattern
from ..likelihood.families import nominal_responses, parse_family
from ..likelihood.gaussian import flat
from ..spec.plan import Plan


class Simulator:
    """Draws data sets like ``data`` from the model of ``plan`` at any θ; compiled once."""

    def __init__(self, plan: Plan, data: ClusteredData):
        self.plan, self.data = plan, data
        statistics = ResponseStatistics.from_data(plan, data)
        self.statistics, self._responses = statistics.values(), statistics
        symbols = statistics.placeholders()
        theta = pt.vector("theta")
        self._chosen: dict[int, np.ndarray] = {}
        inputs: dict[int, pt.TensorVariable] = {}

        def disturbed(rank: int, level: LevelPlan, outcomes: list[int]) -> np.ndarray:
            keep = np.diag(variance_pattern(level)).copy()
            if rank == 0:  # non-Gaussian responses have no residual; theirs is the family's noise
                keep[[k for k, v in enumerate(level.roles.observed) if v in plan.families]] = False
            self._chosen[rank] = np.flatnonzero(keep)
            return self._chosen[rank]

        def standard_normal(rank: int, level: LevelPlan, chosen: np.ndarray) -> pt.TensorVariable:
            inputs[rank] = pt.matrix(f"z_{rank}")
            return inputs[rank]

        found = top_down(plan, theta, symbols, disturbed, standard_normal)
        lowest = found[0]
        p = len(lowest.level.roles.observed)
        variance = pt.diagonal(lowest.psi, axis1=-2, axis2=-1)[..., :p]
        cuts = [thresholds(plan, v, theta) for v, f in plan.families.items() if parse_family(f).has_thresholds]
        self._ranks = sorted(inputs)
        outputs = [part.values for part in found] + [variance] + cuts
        self._function = pytensor.function([theta, *(inputs[r] for r in self._ranks), *flat(symbols)], outputs,
                                           on_unused_input="ignore")
        self._found = [(part.level, part.outcomes) for part in found]
        self._units = [data.n_units(rank) for rank in range(len(found))]

    def replicate(self, theta: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One replicated data set at θ: each modelled observed variable's values per row."""
        z = [rng.standard_normal((self._units[r], len(self._chosen[r]))) for r in self._ranks]
        outputs = self._function(theta, *z, *self.statistics)
        levels, variance, cuts = outputs[:len(self._found)], outputs[len(self._found)], iter(outputs[len(self._found) + 1:])
        lowest, _ = self._found[0]
        values = {}
        nominal = nominal_responses(self.plan.families, list(lowest.roles.observed))
        drawn = {}  # a nominal variable's category, drawn once for all its latent responses
        for k, name in enumerate(lowest.roles.observed):
            eta = levels[0][:, k]
            if name in nominal and (first := nominal[name][0]) in drawn:
                eta = drawn[first]
            elif name in self.plan.families:
                family = parse_family(self.plan.families[name])
                eta = family.draw(eta, rng, thresholds=next(cuts) if family.has_thresholds else None,
                                  dispersion=1.0 / variance[..., k] if family.has_dispersion else None,
                                  trials=self._responses.trials[:, k], sd=np.sqrt(variance[..., k]),
                                  lower=self._responses.lower[:, k], upper=self._responses.upper[:, k],
                                  responses=levels[0][:, nominal[name]] if name in nominal else None)
                if name in nominal:
                    drawn[nominal[name][0]] = eta
            values[name] = eta
        for rank in range(1, len(self._found)):  # outcomes of upper levels, on every row of their clusters
            level, outcomes = self._found[rank]
            rows = self.data.level_index(rank)
            for k in outcomes:
                values[level.variables[k]] = levels[rank][rows, k]
        for name, column in values.items():  # missing cells stay missing
            column[np.isnan(self.data.column(name))] = np.nan
        return values

    def replicated_data(self, theta: np.ndarray, rng: np.random.Generator) -> ClusteredData:
        """:meth:`replicate` as clustered data (covariates and clusters of the original)."""
        return dataclasses.replace(self.data, values={**self.data.values, **self.replicate(theta, rng)})
