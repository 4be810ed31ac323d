"""Stage 3, the likelihood: model-implied moments at θ (:mod:`.moments`) and the strategies that
turn them and the data's statistics into a log-likelihood, behind one interface
(:class:`~.strategy.Strategy`) and registered in one place (:mod:`.registry`): marginal,
patterns (missing cells), slopes (integrated random slopes), nested (three levels), hybrid and
conditional. Shared pieces: Gaussian cross-products (:mod:`.gaussian`), Woodbury corrections
(:mod:`.woodbury`), the fused Gaussian kernel (:mod:`.kernel`), response families (:mod:`.families`).
"""
