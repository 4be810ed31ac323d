"""The interface every likelihood strategy implements.

A strategy computes the log-likelihood of the models whose :class:`~..spec.plan.Features` it
handles, from the model-implied moments at θ and the data's sufficient statistics:

    marginal kind:     log p(y | θ)            every latent variable integrated out;
    hybrid kind:       log p(y | θ, r)         each cluster's random parameters r_j sampled;
    conditional kind:  log p(y | θ, η)         every latent variable η sampled.

:mod:`.registry` lists the strategies, cheapest first, and gives a plan the first one that
handles it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..spec.plan import Features, Plan
from .gaussian import Statistics

MARGINAL, HYBRID, CONDITIONAL = "marginal", "hybrid", "conditional"


class Strategy(ABC):
    """One way of computing a model's log-likelihood: the models it handles, the statistics it
    takes from the data and the log-likelihood it adds to the PyMC model."""

    name: ClassVar[str]  # the strategy's own name ("marginal", "patterns", ...)
    kind: ClassVar[str]  # what NUTS samples besides θ: MARGINAL (nothing), HYBRID or CONDITIONAL

    @abstractmethod
    def handles(self, features: Features) -> bool:
        """Whether the strategy computes the likelihood of a model with these features exactly."""

    @abstractmethod
    def statistics(self, plan: Plan, data: ClusteredData) -> Statistics:
        """The data's sufficient statistics for this strategy."""

    @abstractmethod
    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        """The log-likelihood at θ from the statistics (registered as ``pm.Data``, or placeholders),
        inside a PyMC model (strategies that sample add their variables to it)."""

    def add_to_model(self, plan: Plan, data: ClusteredData, theta: pt.TensorVariable) -> pt.TensorVariable:
        """Register the statistics as ``pm.Data`` in the current model and return the log-likelihood.
        A group of a multiple-group model is a named sub-model (``g1``), whose names PyMC prefixes
        (``g1::stat_…``, ``g1::random_effects_z``) and whose units' dimensions :func:`local_dim` names."""
        return self.loglik(plan, theta, self.statistics(plan, data).register())


def local_dim(name: str) -> str:
    """The dimension ``name`` of the current model: led by its prefix in a group's sub-model
    (``g1::cluster``), where the units are the group's own."""
    prefix = pm.Model.get_context().prefix
    return f"{prefix}::{name}" if prefix else name
