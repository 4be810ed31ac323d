"""Stage 5, results: :class:`~.fit.Fit` (posterior draws joined back onto the parameter table) and
what is computed from it: tables and the lavaan-style report, standardized solution, fit
measures, convergence diagnostics, latent scores, cluster-specific estimates and their departures
from the common loadings and intercepts, pointwise log-likelihoods for LOO, predictive checks and
prior sensitivity.
"""
