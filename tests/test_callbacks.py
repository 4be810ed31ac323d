"""nutpie's callbacks kept in the on-disk cache (bayes_msem.sampling.callbacks): a second compile of the
same graph loads them, and through the C interface they return what PyTensor's compiled
log-density, gradient and stored values give (to rounding), also after the data are swapped for a refit."""

import ctypes

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, simulate_twolevel
from bayes_msem.sampling import callbacks, samplers

DOUBLE = ctypes.POINTER(ctypes.c_double)


def _logit_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(30), 5)
    x = rng.normal(size=len(cluster))
    u = rng.normal(scale=0.5, size=30)[cluster]
    return pd.DataFrame({"g": cluster, "x": x, "y": (rng.random(len(x)) < 1 / (1 + np.exp(-u - x))).astype(float)})


MODELS = {
    "marginal": lambda seed: bm.Model(TWOLEVEL_CFA, simulate_twolevel(n_clusters=40, seed=seed), cluster="school"),
    "conditional": lambda seed: bm.Model("level: within\n  y ~ x\nlevel: between\n  y ~~ y\n", _logit_data(seed),
                                         cluster="g", family={"y": "bernoulli"}),
}


def _call_logp(compiled, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    grad, logp = np.zeros_like(x), np.zeros(())
    status = compiled.compiled_logp_func.ctypes(len(x), x.ctypes.data_as(DOUBLE), grad.ctypes.data_as(DOUBLE),
                                                logp.ctypes.data_as(DOUBLE), compiled.user_data.ctypes.data)
    return status, float(logp), grad


def _call_expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    values = np.zeros(compiled.n_expanded)
    status = compiled.compiled_expand_func.ctypes(len(x), compiled.n_expanded, x.ctypes.data_as(DOUBLE),
                                                  values.ctypes.data_as(DOUBLE), compiled.user_data.ctypes.data)
    return status, values


@pytest.mark.parametrize("strategy", list(MODELS))
def test_callbacks_load_from_disk_and_match_pytensor(strategy):
    first, other = MODELS[strategy](1), MODELS[strategy](2)
    samplers.compile_nutpie(first.pymc_model)
    compiled = samplers.compile_nutpie(first.pymc_model)   # a new callback object: numba finds it on disk
    assert compiled.compiled_logp_func._pyfunc.__name__ == "logp_callback"
    assert compiled.compiled_expand_func._pyfunc.__name__ == "expand_callback"
    assert compiled.compiled_logp_func.cache_hits == 1 and compiled.compiled_expand_func.cache_hits == 1
    for callback in (compiled.compiled_logp_func, compiled.compiled_expand_func):
        _assert_self_contained(callback)

    reference = samplers.compile_nutpie(other.pymc_model)  # PyTensor functions holding the other data
    swapped = compiled.with_data(**{var.name: var.get_value() for var in reference.shared_var_keys})
    _assert_callbacks_match(compiled, compiled)
    _assert_callbacks_match(swapped, reference)


def _assert_callbacks_match(case, expected, points: int = 3) -> None:
    """``case``'s C callbacks give what ``expected``'s PyTensor functions give at a few points near the start."""
    rng = np.random.default_rng(0)
    for _ in range(points):
        x = case.initial_point_func(int(rng.integers(1000))) + rng.normal(scale=0.1, size=case.n_dim)
        status, logp, grad = _call_logp(case, x)
        want_logp, want_grad = expected.logp_func(x)
        # The same graph on the same inputs. PyTensor compiles with fast-math flags (reassociation,
        # contraction), so numba may optimise the graph function differently where it is compiled
        # into the callback: in one cold-cache run one gradient element differed by 1 ulp. Sums of
        # a few hundred terms reordered stay within ~1e-13 of each other; a wrong pointer or shape
        # would be off by far more.
        assert status == 0
        np.testing.assert_allclose(logp, float(want_logp), rtol=1e-13)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-13 * np.abs(want_grad).max())
        status, values = _call_expand(case, x)
        assert status == 0
        want_values = expected.expand_func(x)[0]
        np.testing.assert_allclose(values, want_values, rtol=1e-13, atol=1e-13 * np.abs(want_values).max())


def test_callbacks_report_wrong_sizes_and_non_finite_values():
    compiled = samplers.compile_nutpie(MODELS["marginal"](1).pymc_model)
    x = compiled.initial_point_func(0)
    assert _call_logp(compiled, x[:-1])[0] == -1
    x[:] = np.nan
    assert _call_logp(compiled, x)[0] in (3, 4)


def _record(word) -> np.dtype:
    """nutpie's user-data layout for one vector ``a``, its pointer and size as ``word``."""
    blocks = [("data", [("a", word)]), ("size", [("a", word)]), ("shape", [("a", np.uint64, (1,))])]
    return np.dtype([("shared", blocks)])


def test_a_graph_without_a_cache_key_or_an_unknown_record_falls_back_to_nutpie():
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    data = {"a": np.zeros(3)}
    plain = numba.njit(lambda x, a: x)
    assert callbacks._cached_callback(callbacks._LOGP, "logp_callback", plain, _record(np.uintp), ["a"], data,
                                      n_dim=1) is None
    keyed = numba.njit(compile_numba_function_src("def graph(x, a):\n    return x\n", "graph", cache_key="test_graph"))
    assert callbacks._cached_callback(callbacks._LOGP, "logp_callback", keyed, _record(np.uintp), ["a"], data,
                                      n_dim=1) is not None
    assert callbacks._cached_callback(callbacks._LOGP, "logp_callback", keyed, _record(np.uint32), ["a"], data,
                                      n_dim=1) is None


def _assert_self_contained(callback) -> None:
    """Every function in the callback's machine code but its own entry points is internal: no call
    binds to a copy compiled elsewhere (bayes_msem.sampling.callbacks)."""
    from llvmlite.binding import Linkage

    library = callback._library
    module = library._final_module if callback.cache_hits == 0 else library._shared_module
    defined = [f for f in module.functions if not f.is_declaration]
    exported = [f.name for f in defined if f.linkage != Linkage.internal]
    assert len(defined) > len(exported) > 0
    assert all(callback._pyfunc.__name__ in name for name in exported), exported


def _padded(make_user_data):
    """nutpie's ``make_user_data`` with a 4-byte field before the record's data: its words no longer
    at 8-byte offsets, a layout the cached callbacks refuse."""
    def make(shared_var_keys, shared_data):
        user_data = make_user_data(shared_var_keys, shared_data)
        padded = np.zeros((), np.dtype([("pad", np.uint32), ("shared", user_data.dtype["shared"])]))
        padded["shared"] = user_data["shared"]
        return padded
    return make


def test_a_record_of_another_layout_compiles_nutpies_callbacks_with_the_same_values(monkeypatch):
    import nutpie.compile_pymc as nutpie_compile

    monkeypatch.setattr(nutpie_compile, "make_user_data", _padded(nutpie_compile.make_user_data))
    compiled = samplers.compile_nutpie(MODELS["conditional"](1).pymc_model)
    assert compiled.user_data.dtype.names == ("pad", "shared")
    assert compiled.compiled_logp_func._pyfunc.__name__ == "logp_numba"  # nutpie's own wrappers
    assert compiled.compiled_expand_func._pyfunc.__name__ == "expand_numba"
    _assert_self_contained(compiled.compiled_logp_func)
    _assert_callbacks_match(compiled, compiled)
