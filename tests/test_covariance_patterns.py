"""Free covariances in incomplete patterns (lavaan's "any pattern"): the covariances not written
stay 0, each free correlation has a one-pair prior, and the block's correlation matrix is kept
positive definite, in the sampler (a −∞ potential) and in prior draws (redrawn). Nothing is
sampled by NUTS here; lavaan's Political Democracy fit is in test_reference.py."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayes_msem as bm
from bayes_msem.sampling.build import prior_theta
from bayes_msem.spec.plan import positive_definite

# a four-cycle y1-y2-y3-y4-y1 without the chords y1 ~~ y3 and y2 ~~ y4: strong correlations around
# the cycle contradict each other, so the positive definite set is a proper part of (−1, 1)⁴
CYCLE = "y1 ~~ y2\ny2 ~~ y3\ny3 ~~ y4\ny4 ~~ y1\n"


def _frame(seed: int = 0, clusters: int = 30, size: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), size)
    values = rng.normal(size=(clusters * size, 4)) + rng.normal(size=(clusters, 4))[cluster]
    frame = pd.DataFrame(values, columns=["y1", "y2", "y3", "y4"]).assign(cluster=cluster)
    return frame.assign(u=(frame["y1"] > 0).astype(int))


def test_prior_draws_are_redrawn_into_the_positive_definite_set():
    model = bm.Model(CYCLE, _frame())
    raw = np.asarray(pm.draw(model.pymc_model["theta"], draws=2000, random_seed=1))
    outside = ~positive_definite(model.plan, raw)
    assert 0.05 < outside.mean() < 0.95  # the restriction binds under the uniform one-pair priors
    theta = prior_theta(model.pymc_model, model.plan, 2000, seed=1)
    assert theta.shape == raw.shape and positive_definite(model.plan, theta).all()
    prior = model.sample_prior_predictive(draws=50, random_seed=2)
    assert positive_definite(model.plan, prior["prior"]["theta"].values).all()
    assert np.isfinite(prior["prior_predictive"]["y1"].values).all()


def test_the_sampler_sees_minus_infinity_outside_the_positive_definite_set():
    model = bm.Model(CYCLE, _frame())
    pymc_model = model.pymc_model
    logp = pymc_model.compile_logp()
    point = pymc_model.initial_point()
    assert np.isfinite(logp(point))
    share = next(name for name in point if name.endswith("_share_logodds__"))
    point[share] = np.full(4, 3.0)  # every correlation 2·expit(3) − 1 = 0.91 around the cycle
    assert logp(point) == -np.inf


@pytest.mark.parametrize(("syntax", "cluster", "family", "strategy"), [
    ("level: within\n  y1 ~~ y2\n  y2 ~~ y3\n  y4 ~~ y4\nlevel: between\n  " + CYCLE.replace("\n", "\n  "),
     "cluster", None, "marginal"),
    ("f1 =~ u + y1\nf2 =~ y2 + y3\nf3 =~ y4 + y1\nf1 ~~ f2\nf2 ~~ f3\nf1 ~~ 0*f3\n", None, {"u": "bernoulli"},
     "conditional"),
], ids=["two-level-marginal", "binary-conditional"])
def test_incomplete_patterns_build_in_every_strategy(syntax, cluster, family, strategy):
    """The pattern lives in θ's construction, which every strategy shares: a within pattern and a
    between four-cycle integrated out (marginal); factor covariances with f1 ~~ f3 fixed to 0 and a
    binary indicator (conditional)."""
    model = bm.Model(syntax, _frame(), cluster=cluster, family=family)
    assert model.strategy.name == strategy
    assert any(not block.complete for block in model.plan.blocks)
    pymc_model = model.pymc_model
    assert np.isfinite(pymc_model.compile_logp()(pymc_model.initial_point()))
    assert any(name.endswith("_positive_definite") for name in map(str, pymc_model.potentials))
