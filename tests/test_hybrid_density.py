"""The hybrid likelihood, and the marginal likelihood with random slopes integrated out, equal
slow, obviously correct dense references.

Given each cluster's random parameters r_j (read from the model's ``random_effects``
at the same point), the reference puts r_j into the within matrices B_j, Γ_j, Ψ_j
in numpy (placed from the random parameters' relations, not from the plan's
random entries), computes the within moments by the RAM formula, conditions the
between level's observed parts on r_j with the textbook Gaussian formulas, stacks
the whole cluster — every unit's within variables plus the cluster-level
variables once — and evaluates one multivariate normal over it. Agreement to
1e-8 shows that the per-cluster sufficient-statistic form, the non-centred split
of the between level and the placement of slopes, loadings, log-variances and
covariance blocks are exact. The random effects themselves are checked against
r_j = μ_r + C_r w_j + L z_j. Each model is compiled once; the balanced data set
reuses the compiled function by swapping the cluster statistics (``pm.Data``).

Random slopes on observed covariates alone are integrated out (marginal strategy): there the
reference stacks the cluster with the slopes' design Z (the change in the within mean for a
unit slope, times x) and the covariance Z G Zᵀ + I ⊗ Σ_W, and checks the conditional mean of
(u_j, s_j) given the cluster against the textbook formula m + G Zᵀ V⁻¹ (y − E y).
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from dense_reference import fill, level_moments, observed_logpdf, point_function, ram_moments, stacked_cluster
from scipy.stats import multivariate_normal

import bayes_msem as bm
from bayes_msem.likelihood.gaussian import Layout
from bayes_msem.likelihood.hybrid import ClusterStatistics

RANDOM_SLOPE = """
level: within
  s | y1 ~ x
level: between
  y1 ~~ s
"""

RANDOM_SLOPE_COVARIATE = """
level: within
  s | y1 ~ x
level: between
  y1 ~~ s
  s ~ w
  y1 ~ w
"""

SLOPE_ON_ENDOGENOUS = """
level: within
  s | y2 ~ y1
  y2 ~ x
level: between
  y2 ~ y1
  s ~ w
  s ~~ y1
"""

RANDOM_MEDIATION_PATHS = """
level: within
  a | y1 ~ x
  b | y2 ~ y1
  y2 ~ x
level: between
  a ~~ b
  y1 ~~ y2
"""

LOADING_AND_LOG_VARIANCE = """
level: within
  fw =~ y1 + y2
  l3 | fw =~ y3
  v | y1 ~~ y1
level: between
  fb =~ y1 + y2 + y3
  l3 ~~ v
"""

COVARIANCE_BLOCK = """
level: within
  f1 =~ y1 + y2
  f2 =~ y3 + y4
  Phi | f1 + f2 ~~ f1 + f2
level: between
  y1 ~~ y1
  y2 ~~ y2
  y3 ~~ y3
  y4 ~~ y4
"""

COVARIANCE_BLOCK_3 = """
level: within
  f1 =~ y1 + y2
  f2 =~ y3 + y4
  f3 =~ y5 + y6
  Phi | f1 + f2 + f3 ~~ f1 + f2 + f3
level: between
  fb =~ y1 + y2 + y3 + y4 + y5 + y6
  Phi.f1 ~~ fb
  Phi.f1.f2 ~ w
"""

WITHIN_ONLY_AND_BETWEEN_ONLY = """
level: within
  fw =~ y1 + y2 + y3
  s | y5 ~ x
level: between
  fb =~ y1 + y2 + y3
  z ~ fb + w
  s ~~ fb
"""

SLOPE_AND_LOG_VARIANCE = """
level: within
  s | y1 ~ x
  v | y1 ~~ y1
level: between
  y1 ~~ s
  s ~ w
"""

TWO_SLOPES_WITH_FACTORS = """
level: within
  fw =~ y1 + y2 + y3
  s1 | fw ~ x
  s2 | y4 ~ x2
level: between
  fb =~ y1 + y2 + y3 + y4
  s1 ~ w
  s1 ~~ s2
"""

INTEGRATED = {
    "random-slope": RANDOM_SLOPE,
    "random-slope-cluster-covariate": RANDOM_SLOPE_COVARIATE,
    "two-slopes-with-factors": TWO_SLOPES_WITH_FACTORS,
}

SLOPE_BETWEEN_FACTORS = """
level: within
  f1 =~ y1 + y2
  f2 =~ y3 + y4
  s | f2 ~ f1
level: between
  fb =~ y1 + y2 + y3 + y4
  s ~~ fb
"""

MODELS = {
    "random-slope-and-log-variance": SLOPE_AND_LOG_VARIANCE,
    "random-slope-between-latent-factors": SLOPE_BETWEEN_FACTORS,
    "random-slope-on-endogenous": SLOPE_ON_ENDOGENOUS,
    "random-mediation-paths": RANDOM_MEDIATION_PATHS,
    "random-loading-and-log-variance": LOADING_AND_LOG_VARIANCE,
    "covariance-block": COVARIANCE_BLOCK,
    "covariance-block-3": COVARIANCE_BLOCK_3,
    "within-only-and-between-only": WITHIN_ONLY_AND_BETWEEN_ONLY,
}

SIZES = {"unbalanced": [1, 4, 2, 1, 5, 3], "balanced": [3] * 5}


def _data(sizes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(len(sizes)) * 7 + 3  # cluster labels out of order
    cluster = np.repeat(labels, sizes)
    n = len(cluster)
    names = ["y1", "y2", "y3", "y4", "y5", "y6", "x", "x2"]
    frame = pd.DataFrame(rng.normal(size=(n, len(names))), columns=names)
    frame += rng.normal(size=(len(sizes), len(names)))[np.repeat(np.arange(len(sizes)), sizes)]
    frame["w"] = np.repeat(rng.normal(size=len(sizes)), sizes)
    frame["z"] = np.repeat(rng.normal(size=len(sizes)), sizes)
    frame["cluster"] = cluster
    return frame.sample(frac=1.0, random_state=seed)  # rows out of cluster order


def _correlation(partial, k):
    """Correlation matrix from canonical partial correlations ρ_{ab|0..a−1} (pairs a < b in
    order (0,1), (0,2), …, (1,2), …) by the C-vine recursion
    ρ_{ab|0..m−1} = ρ_{ab|0..m} √((1 − ρ_{ma|·}²)(1 − ρ_{mb|·}²)) + ρ_{ma|·} ρ_{mb|·}."""
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    p = np.zeros((k, k))
    for (a, b), value in zip(pairs, partial):
        p[a, b] = value
    r = np.eye(k)
    for a, b in pairs:
        value = p[a, b]
        for m in range(a - 1, -1, -1):
            value = value * np.sqrt((1 - p[m, a] ** 2) * (1 - p[m, b] ** 2)) + p[m, a] * p[m, b]
        r[a, b] = r[b, a] = value
    return r


def _within_matrices(plan, theta, r):
    """B_j, Γ_j, Ψ_j of the within level with the cluster's random parameters r put in."""
    level = plan.levels["within"]
    pos = {v: i for i, v in enumerate(level.variables)}
    cov = {v: i for i, v in enumerate(level.roles.covariates)}
    b, g, psi = fill(level.beta, theta), fill(level.gamma, theta), fill(level.psi, theta)
    blocks = {}
    for k, p in enumerate(plan.random):
        if p.kind == "slope" and p.rhs in cov:
            g[pos[p.lhs], cov[p.rhs]] = r[k]
        elif p.kind == "slope":
            b[pos[p.lhs], pos[p.rhs]] = r[k]
        elif p.kind == "loading":
            b[pos[p.rhs], pos[p.lhs]] = r[k]
        elif p.kind == "log_variance":
            psi[pos[p.lhs], pos[p.lhs]] = np.exp(r[k])
        else:
            blocks.setdefault(p.written, []).append((p, r[k]))
    for components in blocks.values():
        names = [p.lhs for p, _ in components if p.kind == "log_sd"]
        sd = np.diag([np.exp(v) for p, v in components if p.kind == "log_sd"])
        partial = [np.tanh(v) for p, v in components if p.kind == "correlation"]
        phi = sd @ _correlation(partial, len(names)) @ sd
        for a, u in enumerate(names):
            for c, v in enumerate(names):
                psi[pos[u], pos[v]] = phi[a, c]
    return b, g, psi


def _between(plan, theta):
    """Joint moments of (observed between parts, random parameters) given w."""
    level = plan.levels["between"]
    pos = {v: i for i, v in enumerate(level.variables)}
    select = [pos[v] for v in (*level.roles.observed, *(p.name for p in plan.random))]
    return level_moments(level, theta, select)


def _dense_hybrid(model, frame, theta, random, cluster_ids):
    plan = model.plan
    rw, rb = plan.levels["within"].roles, plan.levels["between"].roles
    alpha_w = fill(plan.levels["within"].alpha, theta)
    sb, mb, cb = _between(plan, theta)
    p_b = len(rb.observed)
    row_of = {c: j for j, c in enumerate(cluster_ids)}
    total = 0.0
    for label, rows in frame.groupby("cluster"):
        r = random[row_of[label]]
        w = rows[list(rb.covariates)].to_numpy()[0]
        # u | r by Gaussian conditioning
        mean_all = mb + cb @ w
        s_ur, s_rr = sb[:p_b, p_b:], sb[p_b:, p_b:]
        mean_u = mean_all[:p_b] + s_ur @ np.linalg.solve(s_rr, r - mean_all[p_b:])
        cov_u = sb[:p_b, :p_b] - s_ur @ np.linalg.solve(s_rr, s_ur.T)
        b, g, psi = _within_matrices(plan, theta, r)
        within = ram_moments(b, g, psi, alpha_w, np.arange(len(rw.observed)))
        total += observed_logpdf(*stacked_cluster(rows, rw, rb, within, (mean_u, cov_u)))
    return total


def _check_non_centred(model, theta, random, z, cluster_ids, frame):
    """r_j = μ_r + C_r w_j + L z_j with L the Cholesky factor of Σ_rr."""
    rb = model.plan.levels["between"].roles
    sb, mb, cb = _between(model.plan, theta)
    p_b = len(rb.observed)
    w = frame.groupby("cluster")[list(rb.covariates)].first().loc[cluster_ids].to_numpy()
    expected = mb[p_b:] + w @ cb[p_b:].T + z @ np.linalg.cholesky(sb[p_b:, p_b:]).T
    np.testing.assert_allclose(random, expected, rtol=0, atol=1e-10)


def _evaluator(model):
    """A compiled function: unconstrained point → (θ, r, loglik)."""
    return point_function(model.pymc_model, ["theta", "random_effects", "loglik"])


def _swap_data(model, other):
    """Put the cluster statistics of ``other`` (same syntax, other data) into ``model``'s
    ``pm.Data``, so one compiled function serves several data sets; its cluster labels."""
    stats = ClusterStatistics.from_data(Layout.from_plan(other.plan), other.data)
    pm.set_data({f"stat_{k}": np.asarray(getattr(stats, k), dtype=float)
                 for k in ("sizes", "means", "covariate_means", "covariates", "scatter")},
                model=model.pymc_model)
    return other.data.cluster_ids


def _random_point(initial, n_clusters, seed):
    """The initial point plus noise; the standardised random effects well away from 0."""
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in initial.items()}
    shape = (n_clusters, initial["random_effects_z"].shape[1])
    point["random_effects_z"] = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.7, 2.0, size=shape)
    return point


@pytest.mark.parametrize("syntax", MODELS.values(), ids=MODELS.keys())
def test_hybrid_matches_dense_reference(syntax):
    """Unbalanced clusters with singletons, then balanced ones through the same compiled function."""
    frames = [_data(sizes, seed=len(sizes)) for sizes in SIZES.values()]
    model = bm.Model(syntax, frames[0], cluster="cluster")
    assert model.strategy.kind == "hybrid"
    pm_model = model.pymc_model
    assert list(pm_model.coords["cluster"]) == list(model.data.cluster_ids)
    evaluate, initial = _evaluator(model), pm_model.initial_point()
    for frame in frames:
        if frame is frames[0]:
            cluster_ids = model.data.cluster_ids
        else:
            cluster_ids = _swap_data(model, bm.Model(syntax, frame, cluster="cluster"))
        assert sorted(cluster_ids) == sorted(frame["cluster"].unique())
        for seed in range(3):
            point = _random_point(initial, len(cluster_ids), seed)
            theta, random, loglik = (np.asarray(v) for v in evaluate(point))
            _check_non_centred(model, theta, random, point["random_effects_z"], cluster_ids, frame)
            dense = _dense_hybrid(model, frame, theta, random, cluster_ids)
            assert float(loglik) == pytest.approx(dense, abs=1e-8, rel=0)


@pytest.mark.parametrize("syntax", MODELS.values(), ids=MODELS.keys())
def test_hybrid_with_missing_cells_matches_dense_reference(syntax):
    """Missing cells (a fifth of each response, a whole row, one cluster without its first
    response): the units of one cluster and pattern against the dense density of the observed cells."""
    responses = [v for v in ("y1", "y2", "y3", "y4", "y5", "y6") if v in syntax]
    frame = _remove_cells(_data(SIZES["unbalanced"], seed=6), responses, seed=3)
    model = bm.Model(syntax, frame, cluster="cluster")
    assert model.strategy.kind == "hybrid" and model.data.has_missing
    evaluate, initial = _evaluator(model), model.pymc_model.initial_point()
    for seed in range(3):
        point = _random_point(initial, model.data.n_clusters, seed)
        theta, random, loglik = (np.asarray(v) for v in evaluate(point))
        dense = _dense_hybrid(model, frame, theta, random, model.data.cluster_ids)
        assert float(loglik) == pytest.approx(dense, abs=1e-8, rel=0)


def test_reference_correlation_matches_two_variable_tanh():
    """The vine recursion reduces to ρ = tanh(c) for two variables and gives a valid matrix for more."""
    assert _correlation([np.tanh(0.7)], 2)[0, 1] == pytest.approx(np.tanh(0.7))
    r = _correlation(np.tanh([2.0, -1.5, 1.0, 0.3, -2.5, 0.8]), 4)
    assert np.all(np.linalg.eigvalsh(r) > 0)
    # ρ_{12|0} from r by the partial-correlation formula equals the input
    partial = (r[1, 2] - r[0, 1] * r[0, 2]) / np.sqrt((1 - r[0, 1] ** 2) * (1 - r[0, 2] ** 2))
    assert partial == pytest.approx(np.tanh(0.3))


def _dense_integrated(model, frame, theta):
    """Σ_j log N(y_j; E y_j, Z_j G Z_jᵀ + I ⊗ Σ_W) and E[(u_j, s_j) | y_j] per cluster, over the
    observed cells of y_j."""
    plan = model.plan
    rw, rb = plan.levels["within"].roles, plan.levels["between"].roles
    observed = np.arange(len(rw.observed))
    alpha_w = fill(plan.levels["within"].alpha, theta)
    sb, mb, cb = _between(plan, theta)
    k_r, p_w, p_b = len(plan.random), len(rw.observed), len(rb.observed)
    sw, mw, cw = ram_moments(*_within_matrices(plan, theta, np.zeros(k_r)), alpha_w, observed)
    unit = [ram_moments(*_within_matrices(plan, theta, np.eye(k_r)[k]), alpha_w, observed)[2] - cw for k in range(k_r)]
    total, conditional = 0.0, {}
    for label, rows in frame.groupby("cluster"):
        n, x = len(rows), rows[list(rw.covariates)].to_numpy()
        z = np.zeros((n * p_w, p_b + k_r))
        mean = np.zeros(n * p_w)
        for i in range(n):
            block = slice(i * p_w, (i + 1) * p_w)
            mean[block] = mw + cw @ x[i]
            for a, v in enumerate(rw.observed):
                if v in rb.observed:
                    z[i * p_w + a, rb.observed.index(v)] = 1.0
            for k in range(k_r):
                z[block, p_b + k] = unit[k] @ x[i]
        m = mb + cb @ rows[list(rb.covariates)].to_numpy()[0]
        cov = z @ sb @ z.T + np.kron(np.eye(n), sw)
        residual = rows[list(rw.observed)].to_numpy().ravel() - mean - z @ m
        o = ~np.isnan(residual)
        cov, residual, z = cov[np.ix_(o, o)], residual[o], z[o]
        total += multivariate_normal(np.zeros(o.sum()), cov).logpdf(residual) if o.any() else 0.0
        conditional[label] = m + sb @ z.T @ np.linalg.solve(cov, residual)
    return total, conditional


def _remove_cells(frame, names, seed):
    """Missing cells in about a fifth of each named column, a whole row of them, and every value
    of the first name in one cluster."""
    frame = frame.copy()
    rng = np.random.default_rng(seed)
    for name in names:
        frame.loc[rng.random(len(frame)) < 0.2, name] = np.nan
    frame.loc[frame.index[3], names] = np.nan
    frame.loc[frame["cluster"] == frame["cluster"].iloc[0], names[0]] = np.nan
    return frame


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing-cells"])
@pytest.mark.parametrize("syntax", INTEGRATED.values(), ids=INTEGRATED.keys())
def test_integrated_slopes_match_dense_reference(syntax, missing):
    frame = _data(SIZES["unbalanced"], seed=11)
    if missing:
        frame = _remove_cells(frame, [v for v in ("y1", "y2", "y3", "y4") if v in syntax], seed=2)
    model = bm.Model(syntax, frame, cluster="cluster")
    assert model.strategy.kind == "marginal"
    pm_model = model.pymc_model
    names = ["theta", "loglik", "random_effects_mean"]
    evaluate = point_function(pm_model, names)
    rng = np.random.default_rng(5)
    for _ in range(3):
        point = {k: v + rng.normal(scale=0.4, size=np.shape(v)) for k, v in pm_model.initial_point().items()}
        theta, loglik, conditional_mean = (np.asarray(v) for v in evaluate(point))
        dense, conditional = _dense_integrated(model, frame, theta)
        assert float(loglik) == pytest.approx(dense, abs=1e-8, rel=0)
        expected = np.stack([conditional[label] for label in model.data.cluster_ids])
        np.testing.assert_allclose(conditional_mean, expected, rtol=0, atol=1e-8)
