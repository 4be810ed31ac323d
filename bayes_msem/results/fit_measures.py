"""Model fit of Gaussian models whose latent variables integrate out (the marginal strategy).

* :class:`GaussianFunctions`: the model's log-likelihood compiled as a function of θ — in total,
  and per cluster (the pointwise log-likelihood of leave-one-cluster-out LOO), for every model of
  the marginal strategy (missing cells, integrated random slopes and three levels included).
The chi-square, the PPP and the fit indices cover complete-data single- and two-level models
with random intercepts:

* :class:`SaturatedModel`: the unrestricted model of the same data, fitted by maximum likelihood
  (per level a free covariance matrix, free covariate effects and free means; two-level: the
  saturated two-level model with Σ_W and Σ_B free), whose maximum ℓ_sat(y) the chi-square
  discrepancy needs.
* :func:`chi_square`: the likelihood-ratio discrepancy T(y, θ) = 2 [ℓ_sat(y) − ℓ(y | θ)] on the
  data and on data replicated from each posterior draw, the posterior predictive p-value
  PPP = P(T(y_rep, θ) ≥ T(y, θ) | y).
* :func:`bayesian_indices`: BRMSEA, BCFI and BTLI (Garnier-Villarreal & Jorgensen 2020) from the
  per-draw discrepancies of the model and of the independence (null) model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy.optimize import minimize

from ..data.clustered import ClusteredData
from ..errors import UnavailableError
from ..likelihood.gaussian import Layout, Statistics, flat
from ..likelihood.marginal import MarginalStatistics, marginal_loglik
from ..likelihood.moments import Moments, level_moments
from ..likelihood.registry import strategy_for
from ..likelihood.strategy import MARGINAL
from ..simulation.simulator import Simulator
from ..spec.plan import Plan
from ..spec.table import BETWEEN, SINGLE_LEVEL, WITHIN


def not_covered(plan: Plan, data: ClusteredData) -> str | None:
    """Why the chi-square measures do not cover a model (None when they do): they need a
    complete-data, Gaussian, single- or two-level model without random parameters."""
    kind = strategy_for(plan).kind
    if kind != MARGINAL or plan.random or plan.three_level:
        return (f"they cover single- and two-level Gaussian models with random intercepts only (this model uses "
                f"the {kind} strategy{' with random parameters' if plan.random else ''}"
                f"{' and three levels' if plan.three_level else ''})")
    if data.has_missing:
        return "they need complete data (this data set has missing cells)"
    return None


def check_supported(plan: Plan, data: ClusteredData, what: str) -> None:
    """Raise, with the reason and the alternative, for a model :func:`not_covered` names."""
    reason = not_covered(plan, data)
    if reason is not None:
        raise UnavailableError(f"{what} is not available: {reason}; fit.ppp() checks the model with a moment "
                               "discrepancy instead.")


def _compile(inputs: list, outputs) -> pytensor.compile.Function:
    return pytensor.function(inputs, outputs, on_unused_input="ignore")


class GaussianFunctions:
    """The log-likelihood of a model whose latent variables all integrate out (the marginal
    strategy), compiled once as a function of θ: in total, and per unit of the highest level
    (cluster; school with three levels; row of a single-level model), the pointwise values of
    leave-one-cluster-out LOO."""

    def __init__(self, plan: Plan, data: ClusteredData):
        strategy = strategy_for(plan)
        if strategy.kind != MARGINAL:
            raise UnavailableError(f"the closed-form log-likelihood needs every latent variable integrated out; this model "
                                   f"uses the {strategy.kind} strategy (see pointwise.SampledLikelihood).")
        self.plan, self.data = plan, data
        self.layout = None if plan.three_level else Layout.from_plan(plan)
        theta = pt.vector("theta")
        self.statistics = strategy.statistics(plan, data)
        symbols = self.statistics.placeholders()
        with pm.Model():  # a scratch model for the deterministics some strategies record
            loglik = strategy.loglik(plan, theta, symbols)
        self._loglik = _compile([theta, *flat(symbols)], loglik)
        self._by_cluster = None
        if data.has_missing or plan.random or plan.three_level:  # the units' statistics, one by one
            index = data.top_index()
            self._units = [strategy.statistics(plan, data.part(index == unit))
                           for unit in range(index.max() + 1)]
        else:  # one group per cluster in one call
            per_cluster = MarginalStatistics.per_cluster(self.layout, data)
            self._by_cluster = _compile([theta, *flat(symbols)],
                                        marginal_loglik(self.layout, level_moments(plan, theta), symbols, by_cluster=True))
            self._per_cluster = per_cluster.values()

    def loglik(self, theta: np.ndarray, stats: Statistics | None = None) -> float:
        """ℓ(y | θ) of the data (or of the data whose ``stats`` are given)."""
        return float(self._loglik(theta, *(stats or self.statistics).values()))

    def cluster_loglik(self, theta: np.ndarray) -> np.ndarray:
        """log p(y_j | θ) of every unit j of the highest level."""
        if self._by_cluster is not None:
            return self._by_cluster(theta, *self._per_cluster)
        return np.array([self.loglik(theta, stats) for stats in self._units])


class SaturatedModel:
    """The unrestricted model of a layout, fitted by maximum likelihood (L-BFGS on Cholesky factors
    with log diagonals): Σ_W, Π_W and the means of within-only variables at the within level; Σ_B,
    μ_B and Π_B at the top level (the single level's Σ, μ, Π for single-level models)."""

    def __init__(self, layout: Layout, statistics: MarginalStatistics):
        self.layout = layout
        p_w, q_w = len(layout.within), len(layout.within_covariates)
        p_b, q_b = len(layout.top), len(layout.top_covariates)
        within_only = [k for k, v in enumerate(layout.within) if v not in layout.top]
        self.sizes = [p_w * (p_w + 1) // 2, p_w * q_w, len(within_only), p_b * (p_b + 1) // 2, p_b, p_b * q_b]
        self.n_parameters = sum(self.sizes)
        x = pt.vector("x")
        ends = np.cumsum(self.sizes)
        pieces = [x[end - size:end] for size, end in zip(self.sizes, ends)]
        top = Moments(_covariance(pieces[3], p_b), pieces[4], pieces[5].reshape((p_b, q_b)))
        if layout.within:
            mean = pt.set_subtensor(pt.zeros(p_w)[within_only], pieces[2])
            moments = {WITHIN: Moments(_covariance(pieces[0], p_w), mean, pieces[1].reshape((p_w, q_w))), BETWEEN: top}
        else:
            moments = {SINGLE_LEVEL: top}
        symbols = statistics.placeholders()
        loglik = marginal_loglik(layout, moments, symbols)
        self._value_grad = _compile([x, *flat(symbols)], [-loglik, -pt.grad(loglik, x)])
        self._within_only = within_only

    def start(self, data: ClusteredData) -> np.ndarray:
        """Starting values from the data: Σ_W the pooled within covariance; μ_B and Σ_B the mean and
        covariance of the cluster values (the within variables' cluster means less Σ_W / n̄),
        kept positive definite; no covariate effects."""
        layout = self.layout
        parts = [np.zeros(n) for n in self.sizes]
        if layout.within:
            names = list(layout.within)
            deviations = data.matrix(names) - data.cluster_means(names)[data.cluster_index]
            sigma_w = deviations.T @ deviations / (data.n_rows - data.n_clusters)
            vector = np.hstack([data.cluster_means(names), data.cluster_values(list(layout.cluster_only))])
            order = [layout.cluster_vector.index(v) for v in layout.top]
            top, e = vector[:, order], layout.embedding(layout.within)[order]
            sigma_b = np.cov(top.T, ddof=0).reshape(len(order), -1) - e @ sigma_w @ e.T / data.sizes.mean()
            parts[0], parts[2] = _unconstrained(sigma_w), vector[:, self._within_only].mean(0)
        else:
            top = data.matrix(list(layout.top))
            sigma_b = np.cov(top.T, ddof=0).reshape(len(layout.top), -1)
        parts[3], parts[4] = _unconstrained(_positive_definite(sigma_b)), top.mean(0)
        return np.concatenate(parts)

    def maximise(self, stats: MarginalStatistics, start: np.ndarray) -> tuple[float, np.ndarray]:
        """max ℓ_sat of the data whose statistics are ``stats``, and the maximiser, from ``start``."""
        values = stats.values()
        result = minimize(lambda x: self._value_grad(x, *values), start, jac=True, method="L-BFGS-B",
                          options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-7})
        return -float(result.fun), result.x


def _covariance(vector: pt.TensorVariable, p: int) -> pt.TensorVariable:
    """L Lᵀ with L lower triangular from ``vector`` (row by row), its diagonal on the log scale."""
    rows, cols = np.tril_indices(p)
    chol = pt.set_subtensor(pt.zeros((p, p))[rows, cols], vector)
    chol = pt.set_subtensor(chol[np.arange(p), np.arange(p)], pt.exp(pt.diagonal(chol)))
    return chol @ chol.T


def _positive_definite(sigma: np.ndarray) -> np.ndarray:
    """``sigma`` with its eigenvalues raised to at least 5% of its mean variance."""
    values, vectors = np.linalg.eigh(sigma)
    return vectors @ np.diag(np.maximum(values, 0.05 * max(np.trace(sigma) / len(sigma), 1e-8))) @ vectors.T


def _unconstrained(sigma: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_covariance`."""
    chol = np.linalg.cholesky(sigma)
    chol[np.diag_indices_from(chol)] = np.log(np.diag(chol))
    return chol[np.tril_indices(len(sigma))]


@dataclass(frozen=True)
class ChiSquare:
    """Per posterior draw: the discrepancy on the data and on the data replicated from that draw;
    the saturated model's maximum ℓ_sat(y), its number of parameters p* (the sample statistics)
    and the sample size N."""

    observed: np.ndarray
    replicated: np.ndarray
    best: float
    moments: int
    n: int

    @property
    def ppp(self) -> float:
        """PPP = P(T(y_rep, θ) ≥ T(y, θ) | y): near 0 means misfit; about 0.5 for a model that fits."""
        return float(np.mean(self.replicated >= self.observed))


def chi_square(functions: GaussianFunctions, theta: np.ndarray, seed: int | None = None) -> ChiSquare:
    """T(y, θ_s) = 2 [ℓ_sat(y) − ℓ(y | θ_s)] and T(y_rep,s, θ_s) for each draw θ_s (rows of ``theta``),
    y_rep,s replicated from θ_s; ℓ_sat is the saturated model's maximum on each data set."""
    rng = np.random.default_rng(seed)
    layout, data = functions.layout, functions.data
    simulator = Simulator(functions.plan, data)
    saturated = SaturatedModel(layout, functions.statistics)
    best, optimum = saturated.maximise(functions.statistics, saturated.start(data))
    observed, replicated = np.empty(len(theta)), np.empty(len(theta))
    for s, draw in enumerate(theta):
        observed[s] = 2 * (best - functions.loglik(draw))
        stats = MarginalStatistics.from_data(layout, simulator.replicated_data(draw, rng))
        best_rep, _ = saturated.maximise(stats, optimum)
        replicated[s] = 2 * (best_rep - functions.loglik(draw, stats))
    return ChiSquare(observed, replicated, best, saturated.n_parameters, data.n_rows)


def bayesian_indices(model: ChiSquare, p_d: float, null: ChiSquare | None = None, null_p_d: float | None = None
                     ) -> dict[str, np.ndarray]:
    """Per draw (Garnier-Villarreal & Jorgensen 2020, with p_D the effective number of parameters):

        BRMSEA = √( max(0, T − p*) / ((p* − p_D) N) )
        BCFI   = 1 − max(0, T − p*) / (T₀ − p*)
        BTLI   = ((T₀ − p_D₀)/(p* − p_D₀) − (T − p_D)/(p* − p_D)) / ((T₀ − p_D₀)/(p* − p_D₀) − 1)

    T is the model's discrepancy on the data, T₀ the null model's (paired draw by draw; the shorter
    sets the number of draws)."""
    if model.moments <= p_d:
        raise UnavailableError(f"the effective number of parameters ({p_d:.1f}) is not below the number of sample "
                               f"statistics ({model.moments}): the model has no degrees of freedom to assess fit.")
    excess = np.maximum(model.observed - model.moments, 0.0)
    out = {"BRMSEA": np.sqrt(excess / ((model.moments - p_d) * model.n))}
    if null is not None:
        k = min(len(null.observed), len(model.observed))
        null_ratio = (null.observed[:k] - null_p_d) / (model.moments - null_p_d)
        ratio = (model.observed[:k] - p_d) / (model.moments - p_d)
        out["BCFI"] = 1 - excess[:k] / (null.observed[:k] - model.moments)
        out["BTLI"] = (null_ratio - ratio) / (null_ratio - 1)
    return out


def baseline_syntax(plan: Plan) -> str:
    """The independence (null) model of a plan in model syntax: every observed variable with its own
    variance at each level where it has a part, and no covariances; covariate effects fixed at 0 so
    that the covariates (and the saturated model) stay those of the model."""
    layout = Layout.from_plan(plan)

    def block(variables: tuple[str, ...], covariates: tuple[str, ...]) -> list[str]:
        lines = [f"{v} ~~ {v}" for v in variables]
        if covariates:
            lines.append(f"{variables[0]} ~ {' + '.join(f'0*{x}' for x in covariates)}")
        return lines

    if not layout.within:
        return "\n".join(block(layout.top, layout.top_covariates))
    return "\n".join(["level: within", *block(layout.within, layout.within_covariates),
                      "level: between", *block(layout.top, layout.top_covariates)])


def waic(log_likelihood: np.ndarray) -> dict[str, float]:
    """WAIC from the pointwise log-likelihood (draws, units): elpd = Σ_i [log mean_s p(y_i | θ_s)
    − var_s log p(y_i | θ_s)], p_waic the sum of the variances, waic = −2 elpd, and the SE of elpd."""
    top = log_likelihood.max(axis=0)
    lppd = np.log(np.exp(log_likelihood - top).mean(axis=0)) + top
    variance = log_likelihood.var(axis=0, ddof=1)
    pointwise = lppd - variance
    return {"elpd_waic": float(pointwise.sum()), "p_waic": float(variance.sum()), "waic": float(-2 * pointwise.sum()),
            "se": float(np.sqrt(len(pointwise) * pointwise.var()))}
