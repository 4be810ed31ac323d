"""Data drawn from a model at known θ: the compiled generative model (:mod:`.simulator`, the
conditional strategy run forwards) and data designs, parameter values by name and whole data
sets (:mod:`.design`). Used by :meth:`Model.simulate`, predictive checks, fit measures and studies.
"""
