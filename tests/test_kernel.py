"""The fused kernels against scipy (the multivariate normal; the log-sigmoid), finite differences
and themselves across backends (numpy reference, numba for nutpie, JAX for numpyro/blackjax)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from scipy.special import expit, log_expit
from scipy.stats import multivariate_normal

from bayes_msem.likelihood.kernel import gaussian_scatter
from bayes_msem.likelihood.logit import bernoulli_logit_logp

PYTHON = Mode(linker="py", optimizer="fast_run")
BACKENDS = [PYTHON, "NUMBA", "JAX"]
IDS = ["numpy", "numba", "jax"]


def _case(seed=0, groups=5, p=3, d=4):
    """V_g, A_g, M_g = Σ_i D_i D_iᵀ and c_g, with the rows D_i of each group."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(groups, p, p))
    cov = a @ a.transpose(0, 2, 1) + np.eye(p)
    coef = rng.normal(size=(groups, p, d))
    counts = rng.integers(1, 6, groups).astype(float)
    rows = [rng.normal(size=(int(c), d)) for c in counts]
    crossprod = np.stack([r.T @ r for r in rows])
    return (cov, coef, crossprod, counts), rows


def _function(mode):
    inputs = [pt.tensor3("cov"), pt.tensor3("coef"), pt.tensor3("crossprod"), pt.vector("counts")]
    value = gaussian_scatter(*inputs)
    grads = pytensor.grad(value.sum() + 2 * value[0], inputs)  # non-uniform weights
    return pytensor.function(inputs, [value, *grads], mode=mode)


@pytest.mark.parametrize("mode", BACKENDS, ids=IDS)
def test_value_is_the_sum_of_normal_log_densities(mode):
    (cov, coef, crossprod, counts), rows = _case()
    value = _function(mode)(cov, coef, crossprod, counts)[0]
    expected = [multivariate_normal(np.zeros(3), v).logpdf(r @ a.T).sum() for v, a, r in zip(cov, coef, rows)]
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    counts = np.array([2.0, 5.0, 1.0])
    # V = L Lᵀ + I and M = B Bᵀ keep both symmetric, as every caller's are
    pytensor.gradient.verify_grad(
        lambda l, a, b: gaussian_scatter(l @ l.mT + pt.eye(2), a, b @ b.mT, counts) * np.array([1.0, -2.0, 0.5]),
        [rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2, 3)), rng.normal(size=(3, 3, 3))],
        rng=rng, mode=PYTHON, abs_tol=1e-6, rel_tol=1e-6,
    )


def test_backends_agree_on_values_and_gradients():
    case = _case(seed=3, groups=7, p=4, d=6)[0]
    reference = _function(PYTHON)(*case)
    for mode in ("NUMBA", "JAX"):
        for got, expected in zip(_function(mode)(*case), reference):
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", BACKENDS, ids=IDS)
def test_not_positive_definite_is_minus_infinity(mode):
    (cov, coef, crossprod, counts), _ = _case(groups=2)
    cov[1] = -np.eye(3)
    value = _function(mode)(cov, coef, crossprod, counts)[0]
    assert np.isfinite(value[0]) and value[1] == -np.inf


def _logit_function(mode):
    """Value, first and second derivative of Σ w ℓ(y, η) with the fused Bernoulli-logit kernel."""
    y, eta, w = pt.vector("y"), pt.vector("eta"), pt.vector("w")
    value = bernoulli_logit_logp(y, eta)
    slope = pytensor.grad((w * value).sum(), eta)
    return pytensor.function([y, eta, w], [value, slope, pytensor.grad(slope.sum(), eta)], mode=mode)


@pytest.mark.parametrize("mode", BACKENDS, ids=IDS)
def test_bernoulli_logit_matches_scipy_far_into_both_tails(mode):
    rng = np.random.default_rng(4)
    eta = np.r_[rng.normal(0.0, 3.0, 200), -1e3, -40.0, -0.0, 0.0, 40.0, 1e3]
    y = (rng.random(eta.size) < 0.5).astype(float)
    w = rng.normal(size=eta.size)
    value, slope, curvature = _logit_function(mode)(y, eta, w)
    sign = 2 * y - 1
    # scipy's log_expit and expit are accurate to a few ulp in both tails
    np.testing.assert_allclose(value, log_expit(sign * eta), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(slope, w * sign * expit(-sign * eta), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(curvature, -w * expit(eta) * expit(-eta), rtol=1e-12, atol=1e-300)


def test_bernoulli_logit_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    pytensor.gradient.verify_grad(lambda eta: bernoulli_logit_logp(y, eta) * np.array([1.0, -2.0, 0.5, 3.0, 1.0]),
                                  [rng.normal(0.0, 2.0, 5)], rng=rng, mode=PYTHON, abs_tol=1e-7, rel_tol=1e-7)


def test_bernoulli_logit_broadcasts_like_the_other_families():
    value = bernoulli_logit_logp(np.array([[0.0], [1.0]]), pt.as_tensor(np.array([-1.0, 2.0]))).eval()
    np.testing.assert_allclose(value, log_expit(np.array([[1.0, -2.0], [-1.0, 2.0]])), rtol=1e-14)
