"""The likelihood strategies, registered in one place, cheapest first.

The planner's question, which strategy computes a model's likelihood, has one answer: the first
strategy here that handles the model's :class:`~..spec.plan.Features`. A new strategy is a
:class:`~.strategy.Strategy` subclass in its own module, added to :data:`STRATEGIES` in its
place by cost.
"""

from __future__ import annotations

from ..spec.plan import Plan
from .conditional import Conditional
from .crossed import Crossed
from .hybrid import Hybrid
from .marginal import Marginal
from .nested import Nested
from .patterns import Patterns
from .slopes import Slopes
from .strategy import Strategy

STRATEGIES: tuple[Strategy, ...] = (Marginal(), Patterns(), Slopes(), Crossed(), Nested(), Hybrid(), Conditional())


def strategy_for(plan: Plan) -> Strategy:
    """The cheapest exact strategy for the model of ``plan``."""
    return next(strategy for strategy in STRATEGIES if strategy.handles(plan.features))
