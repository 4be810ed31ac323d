"""The error family: every error bayes_msem raises on purpose is an :class:`Error`.

Each class also derives from the builtin exception it replaced (``ValueError``, ``TypeError``,
``ImportError``, ...), so code that catches the builtin keeps working. The stage-specific classes
(``ModelSyntaxError``, ``SpecificationError``, ``DataError``, ``PriorError``, ``SamplingError``)
live with their stages and derive from :class:`Error` too. A leaf module: it imports nothing
from the package.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every error bayes_msem raises on purpose; the message names the cause and the fix.

    ``except bm.Error`` catches them all."""


class SettingsError(Error, ValueError):
    """An argument of a function or method with a value it cannot take (fit settings, study
    designs, result options); the message names the argument and the values it accepts."""


class ArgumentTypeError(SettingsError, TypeError):
    """An argument of the wrong type (text where a number is needed, a string where a list is
    needed, ...); the message names the argument and the type it takes."""


class MissingDependencyError(Error, ImportError, RuntimeError):
    """A feature needs an optional package or program that is not installed (JAX, Dask,
    Graphviz's ``dot``); the message says how to install it. Also a ``RuntimeError``, which a
    missing Graphviz raised before."""


class MissingFileError(Error, FileNotFoundError):
    """A file or folder named by the caller does not exist."""


class SavedFitError(Error, ValueError):
    """A file that is not a fit saved by bayes_msem, or a damaged one."""


class UnavailableError(Error, NotImplementedError, ValueError):
    """A result this model or fit cannot give (ICCs of a single-level model, scores of a model
    without latent variables, ...); the message says what gives it instead."""
