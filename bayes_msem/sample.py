"""Stage 6: run NUTS on a ``pm.Model`` and return an ArviZ DataTree.

nutpie (the default) compiles the model once; the caller keeps the compiled
model (see :class:`bayes_msem.Model`) so that refits skip compilation. PyMC's own
NUTS and the JAX samplers (numpyro, blackjax; ``pip install bayes_msem[jax]``)
go through ``pm.sample``.
"""

from __future__ import annotations

import importlib.util

import pymc as pm
import xarray as xr

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


def check_settings(draws: int, tune: int, chains: int, sampler: str) -> None:
    """Reject impossible sampler settings before anything is compiled."""
    for name, value, least in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    if sampler in ("numpyro", "blackjax") and importlib.util.find_spec(sampler) is None:
        raise ImportError(f"the {sampler} sampler needs JAX: pip install 'bayes_msem[jax]'.")


def compile_nutpie(model: pm.Model):
    """Compile a PyMC model for nutpie (numba backend): the slow step that refits reuse.

    Chains start at the model's starting values (see ``build.starting_values``), which keeps
    them out of reflected and marker-dropping modes; only the standardised random effects
    are jittered: at z = 0 the gradient of a correlation between a random parameter and a
    random intercept is exactly zero, and nutpie's initial mass matrix needs it non-zero.
    """
    import nutpie

    return nutpie.compile_pymc_model(model, jitter_rvs={rv for rv in model.free_RVs if rv.name == "random_effects_z"})


def run_sampler(model: pm.Model, compiled, *, draws: int, tune: int, chains: int, random_seed: int | None,
                sampler: str, progressbar: bool, target_accept: float = 0.8) -> xr.DataTree:
    """Draw ``chains`` × ``draws`` posterior draws after ``tune`` warm-up iterations.

    ``compiled`` is the nutpie-compiled ``model`` (used only by the nutpie sampler).
    """
    check_settings(draws, tune, chains, sampler)
    if sampler == "nutpie":
        import nutpie

        return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=random_seed,
                             progress_bar=progressbar, target_accept=target_accept, save_warmup=False)
    return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
                     nuts_sampler=sampler, model=model, target_accept=target_accept,
                     compute_convergence_checks=False, cores=min(chains, 2), init="adapt_diag")
