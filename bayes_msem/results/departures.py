"""Measurement invariance over many clusters: how far each cluster's loadings and intercepts depart
from the common ones, as random loadings and random intercepts (the two-level random formulation of
Muthén & Asparouhov 2018, "Recent methods for the study of measurement invariance with many groups").

Item p of unit i in cluster j: y_pij = ν_pj + λ_pj η_ij + ε_pij. A random loading ``l | f =~ y`` is a
between-level variable l_j; the random intercept of an item is its between part y_p,j, which between
factors (``fb =~ y1 + y2 + ...``) split into the construct's mean differences and the item's own part.
Both follow the between level's model v_j = α + B v_j + Γ w_j + ζ_j, and a departure is the
between-level residual

    δ_pj = ζ_pj = v_pj − α_p − Σ_k B_pk v_kj − Σ_c Γ_pc w_cj,

the part of the cluster's value that the between-level model does not explain:

* a random loading with no between-level predictors: δ_pj = λ_pj − α_p, its departure from the common
  loading α_p (``l ~ 1``, the mean loading);
* an item's random intercept: its between residual u_pj (ν_pj = α_p + Σ_k λ_B,pk η_B,kj + u_pj), the
  cluster's intercept departing from the common one α_p (``y ~ 1`` at the between level) after the between
  factors η_B have carried the construct's mean differences. An item loaded by no between factor keeps
  the whole deviation of its cluster mean, mean differences of the construct included.

With predictors (``l ~ w``, ``y ~ w``) a departure is what they leave unexplained. The cluster's value
is reported as α_p + δ_pj. Every quantity is computed per posterior draw (the between variables drawn
given the data by :mod:`.scores`), and P(|δ_pj| > a) is the share of draws beyond the amount a.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..data.clustered import ClusteredData
from ..errors import SettingsError, UnavailableError
from ..plots.heatmap import heatmap
from ..spec.plan import Plan
from ..spec.table import BETWEEN, WITHIN
from .standardized import fill_draws

COLUMNS = ["cluster", "item", "kind", "parameter", "cluster_mean", "common_mean", "departure_mean", "departure_sd",
           "amount", "probability", "flagged"]


@dataclass(frozen=True)
class Target:
    """A parameter that may differ over clusters: a random loading or an item's random intercept,
    carried at the between level by ``variable`` (the random parameter's name, or the item's)."""

    kind: str
    item: str
    parameter: str
    variable: str


def check_amounts(loadings: object, intercepts: object, probability: object) -> None:
    """Amounts must be positive finite numbers, the probability strictly between 0 and 1."""
    for name, value in (("loadings", loadings), ("intercepts", intercepts)):
        if not _number(value) or not 0 < value < np.inf:
            raise SettingsError(f"{name} must be a positive number, the smallest departure that matters in the "
                                f"{name[:-1]}'s own units, got {value!r}; e.g. {name}=0.3.")
    if not _number(probability) or not 0 < probability < 1:
        raise SettingsError(f"probability must be a number between 0 and 1 (exclusive), got {probability!r}; "
                            "e.g. probability=0.9 flags departures with a posterior probability above 90%.")


def _number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def targets(plan: Plan) -> list[Target]:
    """The random loadings, then the random intercepts of the within level's indicators, in the
    model's order; an error for a model with neither."""
    if set(plan.levels) != {WITHIN, BETWEEN}:
        raise UnavailableError("departures from common loadings and intercepts need a two-level model (clusters "
                               "as the groups) with random loadings ('l2 | f =~ y2') or random intercepts.")
    between = plan.levels[BETWEEN].variables
    loadings = [Target("loading", r.rhs, f"{r.lhs}=~{r.rhs}", r.name) for r in plan.random if r.kind == "loading"]
    table = plan.table
    indicators = dict.fromkeys(table.loc[(table["op"] == "=~") & (table["level"] == WITHIN), "rhs"])
    intercepts = [Target("intercept", item, f"{item}~1", item) for item in indicators if item in between]
    if not loadings and not intercepts:
        raise UnavailableError("this model has neither random loadings ('l2 | f =~ y2' in the within block) nor "
                               "random intercepts of its indicators (their between parts, e.g. 'fb =~ y1 + y2 + y3' "
                               "in the between block): nothing can depart from a common value.")
    return loadings + intercepts


def residual_draws(between: xr.DataArray, theta: np.ndarray, plan: Plan, data: ClusteredData, names: list[str]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """δ (draws, clusters, names) and α (draws, names) of the between variables ``names``: δ = v − α −
    B v − Γ w (module docstring), from the draws (chain, draw, unit, variable) of the between level's
    latent variables and θ (draws, parameters) at the same draws; cluster-level observed variables
    are taken from the data."""
    level = plan.levels[BETWEEN]
    drawn = between.stack(sample=("chain", "draw")).transpose("sample", "unit", "variable")
    values = np.empty((drawn.sizes["sample"], data.n_clusters, len(level.variables)))
    sampled = set(drawn["variable"].values.tolist())
    for k, name in enumerate(level.variables):
        values[..., k] = drawn.sel(variable=name).values if name in sampled else data.cluster_values([name])[:, 0]
    rows = [level.variables.index(name) for name in names]
    alpha = fill_draws(level.alpha, theta)[:, rows, 0]
    explained = np.einsum("srm,sjm->sjr", fill_draws(level.beta, theta)[:, rows], values)
    covariates = data.cluster_values(list(level.roles.covariates))
    explained += np.einsum("srq,jq->sjr", fill_draws(level.gamma, theta)[:, rows], covariates)
    return values[..., rows] - alpha[:, None] - explained, alpha


def departure_table(departures: np.ndarray, common: np.ndarray, found: list[Target], clusters: np.ndarray,
                    amounts: dict[str, float], probability: float) -> pd.DataFrame:
    """One row per target and cluster (:data:`COLUMNS`): posterior means of α_p + δ_pj, α_p and δ_pj,
    the SD of δ_pj, P(|δ_pj| > a) over the draws and whether it exceeds ``probability``."""
    amount = np.array([amounts[t.kind] for t in found])
    beyond = (np.abs(departures) > amount).mean(0)                                    # (clusters, targets)
    frame = pd.DataFrame({
        "cluster": np.tile(clusters, len(found)),
        "item": np.repeat([t.item for t in found], len(clusters)),
        "kind": np.repeat([t.kind for t in found], len(clusters)),
        "parameter": np.repeat([t.parameter for t in found], len(clusters)),
        "cluster_mean": (common[:, None] + departures).mean(0).T.ravel(),
        "common_mean": np.repeat(common.mean(0), len(clusters)),
        "departure_mean": departures.mean(0).T.ravel(),
        "departure_sd": departures.std(0).T.ravel(),
        "amount": np.repeat(amount, len(clusters)),
        "probability": beyond.T.ravel(),
    })
    return frame.assign(flagged=frame["probability"] > probability)[COLUMNS]


def departure_plot(table: pd.DataFrame, probability: float, path: str | Path | None = None):
    """Heatmap (:func:`..plots.heatmap.heatmap`) of P(|departure| > amount): a row per cluster, a
    column per loading and intercept, flagged cells outlined; saved to ``path`` if given."""
    columns = list(dict.fromkeys(zip(table["kind"], table["parameter"])))
    grid = table.pivot(index="cluster", columns=["kind", "parameter"], values="probability")[columns]
    flagged = table.pivot(index="cluster", columns=["kind", "parameter"], values="flagged")[columns]
    amounts = table.drop_duplicates("kind").set_index("kind")["amount"]
    stated = ", ".join(f"{kind}s {amount:g}" for kind, amount in amounts.items())
    return heatmap(grid.to_numpy(dtype=float), flagged.to_numpy(dtype=bool), [str(c) for c in grid.index],
                   [f"{kind}\n{parameter}" for kind, parameter in columns],
                   title="Departures from the common loadings and intercepts", xlabel="parameter", ylabel="cluster",
                   colour_label="P(|departure| > amount)", mark_label=f"flagged: P > {probability:g}",
                   caption=f"Colour: posterior probability that the cluster's value departs from the common one by "
                           f"more than the amount ({stated}).", path=path)
