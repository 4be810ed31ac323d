"""bayes_msem: Bayesian multilevel structural equation models in lavaan syntax, on PyMC.

    import bayes_msem as bm
    model = bm.Model(syntax, data, cluster="school")
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1)
    fit.parameters()
"""

from . import datasets
from .data import DataError, DataWarning, group_mean_center
from .diagnostics import SamplingError, SamplingWarning
from .errors import (ArgumentTypeError, Error, MissingDependencyError, MissingFileError, SavedFitError,
                     SettingsError, UnavailableError)
from .model import Model
from .priors import PriorError
from .results import Fit, compare, load
from .prior_sensitivity import sensitivity
from .study import study
from .syntax import ModelSyntaxError
from .table import SpecificationError
from .templating import template
from . import warning_display  # noqa: F401  (one-line warnings; PyTensor's BLAS notice silenced)

__all__ = ["Model", "Fit", "compare", "load", "Error", "SettingsError", "ArgumentTypeError", "MissingDependencyError",
           "MissingFileError", "SavedFitError", "UnavailableError", "DataError", "DataWarning", "ModelSyntaxError", "PriorError", "SamplingError", "SamplingWarning", "SpecificationError", "template", "group_mean_center", "sensitivity", "study"]
