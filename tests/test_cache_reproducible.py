"""Same seed, same draws whether the compile cache was empty or warm: two fresh processes share one
new, empty compile cache; the first compiles the model and stores nutpie's callbacks, the second
loads them, and both draw the same posterior to the bit. The random-slope model (lme4's data) drew
differently before the callbacks were made self-contained (bayes_msem.sampling.callbacks): gradients 4e-15
apart, posterior means 3e-9 apart after 2 x (200 + 200) draws; its cold compile takes 2-3 minutes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FIT = r"""
import sys
import numpy as np
import pandas as pd
import bayes_msem as bm
from bayes_msem.sampling import samplers

if sys.argv[2] == "logit":
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    data = pd.DataFrame({"x": x, "y": (rng.random(60) < 1 / (1 + np.exp(-x))).astype(float)})
    model = bm.Model("y ~ x", data, family={"y": "bernoulli"})
else:
    data = pd.read_csv(bm.__path__[0] + "/datasets/random_slope.csv")
    model = bm.Model("level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n", data, cluster="school")
fit = model.fit(draws=200, tune=200, chains=2, random_seed=5, quiet=True)
(compiled,) = samplers._COMPILED.values()
posterior = fit.idata.posterior.to_dataset()
np.savez(sys.argv[1], cache_hits=[compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits],
         **{name: posterior[name].values for name in posterior.data_vars})
"""


def _fit_in_a_new_process(model: str, cache: Path, out: Path) -> dict[str, np.ndarray]:
    """Fit in a fresh process whose compile caches (PyTensor's ``base_compiledir``, which holds its
    numba cache, and numba's own) live in ``cache``."""
    flags = ",".join(filter(None, [os.environ.get("PYTENSOR_FLAGS"), f"base_compiledir={cache}"]))
    env = {**os.environ, "PYTENSOR_FLAGS": flags, "NUMBA_CACHE_DIR": str(cache / "numba")}
    subprocess.run([sys.executable, "-c", FIT, str(out), model], env=env, check=True, cwd=Path(__file__).parent.parent)
    with np.load(out) as saved:
        return dict(saved)


@pytest.mark.parametrize("model", ["logit", pytest.param("random_slope", marks=pytest.mark.slow)])
def test_same_seed_same_draws_from_an_empty_and_a_warm_compile_cache(model, tmp_path):
    cold = _fit_in_a_new_process(model, tmp_path / "cache", tmp_path / "cold.npz")
    warm = _fit_in_a_new_process(model, tmp_path / "cache", tmp_path / "warm.npz")
    assert list(cold.pop("cache_hits")) == [0, 0]  # compiled
    assert list(warm.pop("cache_hits")) == [1, 1]  # loaded from disk
    assert cold.keys() == warm.keys() and cold
    for name in cold:
        np.testing.assert_array_equal(cold[name], warm[name], err_msg=name)
