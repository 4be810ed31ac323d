"""bayes_msem: Bayesian multilevel structural equation models in lavaan syntax, on PyMC.

    import bayes_msem as bm
    model = bm.Model(syntax, data, cluster="school")
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1)
    fit.parameters()
"""

from . import (
                     datasets,
                     warning_display,  # noqa: F401  (one-line warnings; PyTensor's BLAS notice silenced)
)
from .data.clustered import DataError, DataWarning, group_mean_center
from .errors import (
                     ArgumentTypeError,
                     Error,
                     MissingDependencyError,
                     MissingFileError,
                     SavedFitError,
                     SettingsError,
                     UnavailableError,
)
from .model import Model, load
from .results.diagnostics import SamplingError, SamplingWarning
from .results.fit import Fit, compare
from .results.invariance import invariance
from .results.sensitivity import sensitivity
from .spec.priors import PriorError
from .spec.syntax import ModelSyntaxError
from .spec.table import SpecificationError
from .studies.study import study
from .templates import template

__all__ = ["Model", "Fit", "compare", "load", "Error", "SettingsError", "ArgumentTypeError", "MissingDependencyError",
           "MissingFileError", "SavedFitError", "UnavailableError", "DataError", "DataWarning", "ModelSyntaxError", "PriorError", "SamplingError", "SamplingWarning", "SpecificationError", "template", "group_mean_center", "sensitivity", "study", "invariance"]
