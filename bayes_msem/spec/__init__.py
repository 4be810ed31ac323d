"""Stage 1, the model as written: lavaan syntax → user table (:mod:`.syntax`) → parameter table
with lavaan's defaults and identification checks (:mod:`.table`) → matrices, free parameters
and the model's :class:`~.plan.Features` (:mod:`.plan`); priors (:mod:`.priors`) and the checks
of ``Model(...)``/``fit(...)`` arguments (:mod:`.arguments`). Nothing here reads data values.
"""
