"""numpy pieces the dense-reference tests share: a level's matrices at θ and the RAM formula."""

import numpy as np
from scipy.stats import multivariate_normal

from bayes_msem.spec.plan import LevelPlan, MatrixSpec


def fill(spec: MatrixSpec, theta: np.ndarray) -> np.ndarray:
    """The matrix ``spec.base`` with its free entries set from θ."""
    m = spec.base.copy()
    m[spec.rows, spec.cols] = theta[spec.index]
    return m


def ram_moments(b, g, psi, alpha, select):
    """Σ, mean and covariate coefficients of the variables at ``select``: with T = (I − B)⁻¹,
    T Ψ Tᵀ, T α and T Γ."""
    t = np.linalg.inv(np.eye(len(b)) - b)[select]
    return t @ psi @ t.T, (t @ alpha)[:, 0], t @ g


def level_moments(level: LevelPlan, theta: np.ndarray, select=None):
    """:func:`ram_moments` of a level at θ; by default of its observed variables."""
    select = np.arange(len(level.roles.observed)) if select is None else select
    return ram_moments(fill(level.beta, theta), fill(level.gamma, theta), fill(level.psi, theta),
                       fill(level.alpha, theta), select)


def stacked_cluster(rows, rw, rb, within, between):
    """A cluster's stacked vector (every unit's within variables, then the cluster-level variables)
    with its mean and covariance, from the within moments (Σ_W, μ_W, Π_W) given x and the between
    part's mean and covariance (of the between observed variables) given w."""
    (sw, mw, cw), (mean_b, cov_b) = within, between
    n, p_w = len(rows), len(rw.observed)
    z_names = [v for v in rb.observed if v not in rw.observed]
    dim = n * p_w + len(z_names)
    k = np.zeros((dim, len(rb.observed)))  # between part → stacked vector
    mean, cov = np.zeros(dim), np.zeros((dim, dim))
    x = rows[list(rw.covariates)].to_numpy()
    for i in range(n):
        block = slice(i * p_w, (i + 1) * p_w)
        cov[block, block] = sw
        mean[block] = mw + cw @ x[i]
        for a, v in enumerate(rw.observed):
            if v in rb.observed:
                k[i * p_w + a, rb.observed.index(v)] = 1.0
    for a, v in enumerate(z_names):
        k[n * p_w + a, rb.observed.index(v)] = 1.0
    y = np.concatenate([rows[list(rw.observed)].to_numpy().ravel(), rows[z_names].to_numpy()[0]])
    return y, mean + k @ mean_b, cov + k @ cov_b @ k.T


def dense_cluster_logliks(plan, frame, theta):
    """log p(y_j) of every cluster of a two-level model as one dense normal of its stacked
    vector (:func:`stacked_cluster`) over its observed cells: {cluster: value}."""
    within = level_moments(plan.levels["within"], theta)
    sb, mb, cb = level_moments(plan.levels["between"], theta)
    rw, rb = plan.levels["within"].roles, plan.levels["between"].roles
    values = {}
    for cluster, rows in frame.groupby("cluster"):
        w = rows[list(rb.covariates)].to_numpy()[0]
        values[cluster] = observed_logpdf(*stacked_cluster(rows, rw, rb, within, (mb + cb @ w, sb)))
    return values


def observed_logpdf(y, mean, cov):
    """log N of the observed (non-NaN) entries of y: the marginal of a normal is its sub-vector."""
    o = ~np.isnan(y)
    return multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(y[o]) if o.any() else 0.0


# The density checks compare values, so their functions are compiled without PyTensor's graph
# rewrites and C code: compiling the C of each new graph is most of a cold first run's time
# (one hybrid case: 160 s in C, 36 s so), and the rewritten graph that the samplers run is
# checked by the fits against lavaan and lme4.
DENSITY_CHECK_MODE = "FAST_COMPILE"


def point_function(pm_model, names):
    """The model's unconstrained point → the values of the variables ``names``."""
    outputs = pm_model.replace_rvs_by_values([pm_model[name] for name in names])
    return pm_model.compile_fn(outputs, inputs=pm_model.value_vars, mode=DENSITY_CHECK_MODE)
