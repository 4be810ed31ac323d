"""Argument checks of ``Model(...)`` and ``Model.fit(...)``, run before anything else.

Wrong types and impossible values end here in an :class:`~.errors.ArgumentTypeError` or
:class:`~.errors.SettingsError` that names the argument, what it got and what it takes, instead
of a raw ``TypeError`` from deep inside pandas or the sampler (or, worse, a silent misreading:
``ordered="y1"`` read as the variables ``y`` and ``1``). Latent variables named like a data
column are refused here too (lavaan refuses them): the column would be silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ArgumentTypeError, SettingsError
from .syntax import parse
from .table import SpecificationError


def _type_error(name: str, wanted: str, value: object, example: str) -> ArgumentTypeError:
    return ArgumentTypeError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__}); e.g. {example}.")


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise _type_error(name, "True or False", value, f"{name}=True")


def check_names(name: str, value: object, example: str) -> None:
    """A list (or tuple) of column names; a single string is refused, as it reads as its letters."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise _type_error(name, "a list of variable names", value, example)


def _check_mapping(name: str, value: object, example: str) -> None:
    """A mapping of names to text (or None)."""
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _type_error(name, "a dict of names to text", value, example)


def _check_cluster(cluster: object) -> None:
    if cluster is None or isinstance(cluster, str):
        return
    if not isinstance(cluster, (list, tuple)) or not cluster or not all(isinstance(c, str) for c in cluster):
        raise _type_error("cluster", "a column name or a list of column names (lowest level first)", cluster,
                          "cluster='school' or cluster=['class', 'school']")
    if len(set(cluster)) < len(cluster):
        raise SettingsError(f"cluster={cluster!r} names a column more than once; give the cluster column of each "
                            "level once, lowest level first, e.g. cluster=['class', 'school'].")


def _check_latent_names(syntax: str, data: object) -> None:
    """A factor or random parameter may not share its name with a data column (lavaan refuses it)."""
    if not isinstance(data, pd.DataFrame):
        return  # data.validate says what the data must be
    user = parse(syntax)
    names = list(dict.fromkeys([*user.loc[user["op"] == "=~", "lhs"], *user["random"].dropna()]))
    clashes = [n for n in names if n in set(map(str, data.columns))]
    if clashes:
        what, column = (("is a latent variable (or random parameter)", "a column") if len(clashes) == 1 else
                        ("are latent variables (or random parameters)", "columns"))
        raise SpecificationError(
            f"{', '.join(map(repr, clashes))} {what} of the model and also {column} of the data, which would be "
            f"ignored. Rename the latent variable (e.g. '{clashes[0]}_lv'), or, if the data are meant, do not define "
            "it with '=~' or '|'.")


def check_model_arguments(syntax: object, data: object, cluster: object, std_lv: object, priors: object,
                          family: object, ordered: object, rescale: object, crossed: object = False) -> None:
    """Raise for an argument of ``Model(...)`` of the wrong type, or a latent variable named like a
    data column; the rest (syntax, data values, families) is checked by the stages that read them."""
    _check_cluster(cluster)
    _check_flag("std_lv", std_lv)
    _check_flag("crossed", crossed)
    if crossed and (isinstance(cluster, str) or cluster is None or len(cluster) < 2):
        raise SettingsError("crossed=True needs the columns of two classifications or more, e.g. "
                            "cluster=['school', 'neighbourhood'].")
    _check_flag("rescale", rescale)
    _check_mapping("priors", priors, "priors={'loading': 'normal(0, 5)'}")
    _check_mapping("family", family, "family={'y4': 'bernoulli'}")
    check_names("ordered", ordered, "ordered=['y1', 'y2']")
    if isinstance(syntax, str):
        _check_latent_names(syntax, data)


def check_groups(group: object, group_equal: object, group_partial: object, group_approx: object = None) -> None:
    """``group`` a column name or None; ``group_equal`` and ``group_partial`` lists of names and
    ``group_approx`` a mapping of class names to deviation SDs or priors, given only with a group column."""
    if group is not None and not isinstance(group, str):
        raise ArgumentTypeError(f"group must be the name of the group column (a str), got {type(group).__name__}.")
    check_names("group_equal", group_equal, "group_equal=['loadings', 'intercepts']")
    check_names("group_partial", group_partial, "group_partial=['visual =~ x2']")
    if group_approx is not None and not isinstance(group_approx, Mapping):
        raise _type_error("group_approx", "a dict of classes to deviation SDs or priors", group_approx,
                          "group_approx={'intercepts': 0.1}")
    if group is None and (group_equal or group_partial or group_approx):
        raise SettingsError("group_equal, group_partial and group_approx constrain the groups of a multiple-group "
                            "model; give the group column too, e.g. group='school'.")


def check_count(name: str, value: object, least: int = 1) -> None:
    """An integer (not a bool) of at least ``least``, e.g. draws, chains or replications."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise SettingsError(f"{name} must be an integer >= {least}, got {value!r}.")


def check_seed(name: str, value: object) -> None:
    """None, an integer >= 0 or a ``np.random.SeedSequence``."""
    if value is None or isinstance(value, np.random.SeedSequence):
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise SettingsError(f"{name} must be None or an integer >= 0, got {value!r}; e.g. {name}=1.")


def check_fit_arguments(random_seed: object, target_accept: object, progressbar: object, quiet: object) -> None:
    """Raise for a ``fit(...)`` argument of the wrong type or out of range (draws, tune, chains and
    the sampler are checked by :func:`~..sampling.samplers.check_settings`)."""
    check_seed("random_seed", random_seed)
    if (not isinstance(target_accept, (float, int, np.floating)) or isinstance(target_accept, bool)
            or not 0 < target_accept < 1):
        raise SettingsError(f"target_accept must be a number between 0 and 1 (exclusive), got {target_accept!r}; "
                            "e.g. target_accept=0.95 for smaller steps where there are divergences.")
    if not (isinstance(progressbar, (bool, np.bool_)) or progressbar == "auto"):
        raise _type_error("progressbar", "True, False or 'auto'", progressbar, "progressbar=False")
    _check_flag("quiet", quiet)
