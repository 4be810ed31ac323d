"""Stage 2, the data: a DataFrame validated against the model's variables and grouped by cluster
(:class:`~.clustered.ClusteredData`: rows sorted by cluster, cluster sizes, upper levels, missing
cells), and the rescaling of variables to unit SD for the fit (:mod:`.scales`).
"""
