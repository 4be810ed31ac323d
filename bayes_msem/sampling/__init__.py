"""Stage 4, sampling: the PyMC model (θ from its priors plus the strategy's log-likelihood,
:mod:`.build`), NUTS through nutpie, PyMC or JAX (:mod:`.samplers`), and the on-disk cache of
nutpie's compiled callbacks (:mod:`.callbacks`).
"""
