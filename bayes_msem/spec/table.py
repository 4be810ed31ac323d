"""User table → full parameter table, with lavaan's defaults.

The parameter table is the one representation of a model that every later
stage reads: one row per parameter with ``lhs, op, rhs, level, label, free,
fixed, start, prior, random, user``. ``free`` numbers the distinct free
parameters from 1 (rows that share a label share the number); ``fixed`` holds
the value of a fixed row. Default rows (``user == False``) follow lavaan's
``sem()`` / blavaan's ``bsem()``:

* the first loading of each factor is fixed to 1 (``std_lv=True``: factor
  variances are fixed to 1 and every loading is free);
* every modelled observed and latent variable has a free (residual) variance;
* exogenous factors covary, and so do the residuals of "pure" outcomes
  (dependent variables that predict nothing);
* exogenous observed covariates that live at one level only are conditioned
  on (lavaan's ``fixed.x``): they get no rows at all;
* single level: observed intercepts free, factor means 0. Two or more levels:
  a variable's mean lives at the highest level where it has a part; its
  intercepts at the levels below are fixed to 0 (within-only variables keep a
  free within intercept).

Identification problems that the syntax alone reveals raise
:class:`SpecificationError` here; the data-dependent ones are checked in
:mod:`.plan`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import Error

COLUMNS = ["lhs", "op", "rhs", "level", "label", "free", "fixed", "start", "prior", "random", "user"]
SINGLE_LEVEL = ""
WITHIN, BETWEEN = "within", "between"
_LEVEL_ALIASES = {"within": WITHIN, "1": WITHIN, "between": BETWEEN, "2": BETWEEN}
MODEL_OPS = ("=~", "~", "~~", "~1")
DISPERSION_FAMILIES = ("negbinomial", "gamma")
"""The families whose lowest-level ``y ~~ y`` is a dispersion α: variance μ + αμ² (negbinomial), αμ² (gamma)."""
NOMINAL_SEPARATOR = "#"
"""A nominal variable y's latent responses are y#1 … y#(K−1) (category k against the first)."""
CENSORED_FAMILIES = ("tobit", "interval")
"""The families whose lowest-level ``y ~~ y`` is the residual variance of a censored normal response
(censored at fixed limits, or known to lie in an interval)."""


def family_name(family: str) -> str:
    """The name of the family written ``family``, without its link or options (``"bernoulli(probit)"`` → ``"bernoulli"``)."""
    return family.split("(")[0].strip().lower()


def has_dispersion(family: str) -> bool:
    """Whether the family written ``family`` (``"gamma"``, ``"negbinomial(log)"``) has a dispersion α."""
    return family_name(family) in DISPERSION_FAMILIES


class SpecificationError(Error, ValueError):
    """The model is not specified in a way that can be estimated; the message says how to fix it."""


@dataclass(frozen=True)
class LevelRoles:
    """Which variables play which part at one level.

    ``observed`` are modelled observed variables (they get variances), ``latent``
    the factors defined at this level, ``covariates`` the exogenous observed
    variables conditioned on (fixed.x), ``random`` the random parameters
    (``NAME | relation``) used as variables at this level.
    """

    level: str
    observed: tuple[str, ...]
    latent: tuple[str, ...]
    covariates: tuple[str, ...]
    random: tuple[str, ...] = ()


def level_names(blocks: list[str | None], cluster: str | list[str] | None) -> dict[str | None, str]:
    """Map the raw block names of the syntax to level labels, lowest level first.

    Two levels: ``within``/``between`` (also 1/2, or the cluster column's name for the upper
    one). Three or more levels, ``cluster=[lowest, …, highest]``: ``within`` (or 1), then the
    cluster columns' names (or 2, 3, …), which become the level labels.
    """
    distinct = list(dict.fromkeys(blocks))
    if distinct == [None]:
        if cluster is not None:
            raise SpecificationError(
                f"cluster={cluster!r} was given but the syntax has no level blocks; "
                "write 'level: within' and 'level: between' blocks for a two-level model, "
                "or drop cluster= for a single-level model."
            )
        return {None: SINGLE_LEVEL}
    if cluster is None:
        raise SpecificationError(
            "the syntax has level blocks but no cluster column was given; pass cluster='COLUMN'."
        )
    clusters = [cluster] if isinstance(cluster, str) else list(cluster)
    labels = [WITHIN, BETWEEN] if len(clusters) == 1 else [WITHIN, *clusters]
    aliases = {"within": 0, "1": 0} | {str(k + 2): k + 1 for k in range(len(clusters))}
    aliases |= {c: k + 1 for k, c in enumerate(clusters)} | ({"between": 1} if len(clusters) == 1 else {})
    mapping = {}
    for block in distinct:
        key = str(block)
        rank = aliases.get(key, aliases.get(key.lower()))
        if rank is None:
            upper = (f"'level: between' (or 2, or the cluster column name {clusters[0]!r})" if len(clusters) == 1
                     else " and ".join(f"'level: {c}' (or {k + 2})" for k, c in enumerate(clusters)))
            raise SpecificationError(f"unknown level {block!r}; this model's level blocks are 'level: within' (or 1) "
                                     f"and {upper}, lowest first.")
        mapping[block] = labels[rank]
    if sorted(set(mapping.values()), key=labels.index) != labels:
        needed = " and ".join(repr("level: " + n) for n in labels)
        raise SpecificationError(f"a {len(labels)}-level model needs both a {needed} block"
                                 if len(labels) == 2 else f"a {len(labels)}-level model needs a block for each level: "
                                 f"{needed} (found {sorted(set(mapping.values()))}).")
    return mapping


def build_table(user: pd.DataFrame, cluster: str | list[str] | None = None, std_lv: bool = False,
                families: Mapping[str, str] | None = None, categories: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Complete a parsed user table with default rows and number the free parameters.

    ``families`` names the response family of each non-Gaussian variable and ``categories`` the
    number of categories of each ordinal one: such a variable has no residual variance at the
    lowest level (the family supplies the noise) except a negative binomial or gamma one, whose
    ``y ~~ y`` there is its dispersion α (as in Mplus), and a tobit one, whose ``y ~~ y`` is the
    residual variance of its censored normal response; an ordinal one has thresholds ``y | t1 + ...``
    there and its intercepts fixed to 0.
    """
    user = user.copy()
    mapping = level_names(list(user["block"]), cluster)
    order = list(dict.fromkeys(mapping[b] for b in sorted(mapping, key=lambda b: _rank(mapping[b], cluster))))
    user["level"] = user["block"].map(mapping)
    user = user.sort_values("level", key=lambda s: s.map(order.index), kind="stable")  # lowest level first
    rows = user[user["op"].isin(MODEL_OPS) | (user["op"] == "|")]
    _check_statements(rows, user[user["op"] == ":="])
    _check_latent_levels(rows)
    _check_random_duplicates(rows)
    roles = assign_roles(rows)
    families, categories = dict(families or {}), dict(categories or {})
    _check_families(rows, roles, families, categories)
    table_rows: list[dict] = []
    for level, level_roles in roles.items():
        level_user = rows[rows["level"] == level]
        table_rows += _level_rows(level_user, level_roles, roles, std_lv, families, categories)
    table = pd.DataFrame(table_rows, columns=[*COLUMNS[:4], "label", "fixed", "start", "prior", "random", "user",
                                              "free_forced", "per_group"])
    table = _apply_equalities(table, user[user["op"].isin(["==", "<", ">"])])
    table = _number_free(table)
    per_group = ["per_group"] if table["per_group"].notna().any() else []
    if not per_group:  # else each group's values are known, and checked, once groups.group_table applies c(...)
        check_values(table, families, roles)
    return table[COLUMNS + per_group].reset_index(drop=True)


def expand_nominal(user: pd.DataFrame, categories: Mapping[str, int]) -> pd.DataFrame:
    """The user table with each nominal variable y of K categories replaced by its K − 1 latent
    responses y#1 … y#(K−1): every statement naming y is repeated for each (a label on it is then
    shared, so equal across them; ``y ~~ y`` gives each response its own variance). A nominal
    variable in a random parameter, or two in one statement, is refused."""
    if not categories:
        return user
    rows = []
    for row in user.to_dict("records"):
        named = [v for v in dict.fromkeys((row["lhs"], row["rhs"])) if v in categories]
        if not named or row["op"] not in MODEL_OPS:
            rows.append(row)
            continue
        if row["random"] is not None or len(named) > 1:
            what = "a random parameter" if row["random"] is not None else "a statement with another nominal variable"
            raise SpecificationError(f"line {row['line']}: the nominal variable {named[0]!r} is in {what}, which "
                                     "nominal variables do not take yet; write its latent responses' terms without it.")
        for k in range(1, categories[named[0]]):
            response = f"{named[0]}{NOMINAL_SEPARATOR}{k}"
            rows.append({**row, **{side: response for side in ("lhs", "rhs") if row[side] == named[0]}})
    return pd.DataFrame({c: pd.Series([row[c] for row in rows], dtype=user[c].dtype) for c in user.columns})


def _rank(label: str, cluster: str | list[str] | None) -> int:
    """Position of a level label from the lowest level up."""
    clusters = [] if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
    return ([SINGLE_LEVEL, WITHIN, BETWEEN] if len(clusters) < 2 else [WITHIN, *clusters]).index(label)


def definitions(user: pd.DataFrame) -> pd.DataFrame:
    """The ``:=`` rows of a parsed user table: name and expression."""
    defined = user[user["op"] == ":="]
    return pd.DataFrame({"name": defined["lhs"].to_list(), "expression": defined["rhs"].to_list()})


def assign_roles(rows: pd.DataFrame) -> dict[str, LevelRoles]:
    """Sort the names of each level into modelled observed, latent and covariates.

    A covariate is an observed variable that appears only on the right of ``~``
    and at one level only; it is conditioned on. Everything else observed is
    modelled (a variable used at both levels is split into within and between
    parts, both modelled).
    """
    latent = set(rows.loc[rows["op"] == "=~", "lhs"])
    components = [c.name for c in random_parameters(rows)]
    random = set(components) | set(rows["random"].dropna())
    levels = list(dict.fromkeys(rows["level"]))
    names_at = {lev: _names(rows[rows["level"] == lev]) for lev in levels}
    roles = {}
    for lev in levels:
        r = rows[rows["level"] == lev]
        regressors = set(r.loc[r["op"] == "~", "rhs"])
        elsewhere = set().union(*(names_at[o] for o in levels if o != lev))
        non_predictor = set(r.loc[r["op"].isin(["=~", "~~", "~1", "|"]), ["lhs", "rhs"]].to_numpy().ravel())
        non_predictor |= set(r.loc[r["op"] == "~", "lhs"])
        covariates = [
            v for v in names_at[lev]
            if v in regressors and v not in latent | random and v not in non_predictor and v not in elsewhere
        ]
        observed = [v for v in names_at[lev] if v not in latent | random and v not in covariates]
        lv = [v for v in names_at[lev] if v in latent]
        rp = [v for v in names_at[lev] if v in random]
        if len(levels) > 1 and lev == levels[1]:  # random parameters are variables of the level above the lowest
            rp = list(dict.fromkeys(components + rp))
        roles[lev] = LevelRoles(lev, tuple(observed), tuple(lv), tuple(covariates), tuple(rp))
    return roles


@dataclass(frozen=True)
class RandomParameter:
    """A within-level parameter that varies over clusters, as a between-level variable ``name``.

    ``kind``: ``slope`` (``s | y ~ x``), ``loading`` (``l | f =~ y``), ``log_variance``
    (``v | y ~~ y``: the log of the residual variance varies), or, for a cluster-specific
    covariance matrix ``Phi | f1 + f2 ~~ f1 + f2``, ``log_sd`` (``Phi.f1``, the log-SD of f1)
    and ``correlation`` (``Phi.f1.f2``: the unconstrained canonical partial correlation).
    """

    name: str
    kind: str
    lhs: str
    op: str
    rhs: str
    written: str


def random_parameters(rows: pd.DataFrame) -> list[RandomParameter]:
    """The random parameters declared with ``NAME | relation``, in written order."""
    out: list[RandomParameter] = []
    declared = rows[rows["random"].notna()]
    for name, group in declared.groupby("random", sort=False):
        relations = list(group[["lhs", "op", "rhs"]].itertuples(index=False, name=None))
        if len(set(group["level"])) != 1 or group["level"].iloc[0] != WITHIN:
            raise SpecificationError(
                f"the random parameter {name!r} must be declared in the 'level: within' block (random "
                "parameters vary over the clusters of the level above it, and can have parts at higher levels)."
            )
        if len(relations) == 1 and relations[0][1] != "~~":
            lhs, op, rhs = relations[0]
            out.append(RandomParameter(name, "slope" if op == "~" else "loading", lhs, op, rhs, name))
        elif len(relations) == 1 and relations[0][0] == relations[0][2]:
            lhs, op, rhs = relations[0]
            out.append(RandomParameter(name, "log_variance", lhs, op, rhs, name))
        else:
            out += _covariance_components(name, relations)
    return out


def _covariance_components(name: str, relations: list[tuple[str, str, str]]) -> list[RandomParameter]:
    """``Phi | f1 + f2 ~~ f1 + f2``: log-SDs and canonical partial correlations of a complete block."""
    variables = list(dict.fromkeys(v for lhs, _, rhs in relations for v in (lhs, rhs)))
    pairs = {frozenset((lhs, rhs)) for lhs, op, rhs in relations}
    needed = {frozenset((a, b)) for i, a in enumerate(variables) for b in variables[i:]}
    if any(op != "~~" for _, op, _ in relations) or pairs != needed:
        raise SpecificationError(
            f"the random parameter {name!r} must be a complete covariance block, written "
            f"'{name} | {' + '.join(variables)} ~~ {' + '.join(variables)}', or a single random variance 'v | y ~~ y'."
        )
    out = [RandomParameter(f"{name}.{v}", "log_sd", v, "~~", v, name) for v in variables]
    out += [RandomParameter(f"{name}.{a}.{b}", "correlation", a, "~~", b, name)
            for i, a in enumerate(variables) for b in variables[i + 1:]]
    return out


def _names(rows: pd.DataFrame) -> list[str]:
    """Variable names in order of appearance (intercept rows have no rhs)."""
    names: list[str] = []
    for lhs, op, rhs in rows[["lhs", "op", "rhs"]].itertuples(index=False):
        names.append(lhs)
        if op in ("=~", "~", "~~"):
            names.append(rhs)
    return list(dict.fromkeys(names))


def _check_random_duplicates(rows: pd.DataFrame) -> None:
    """A matrix entry is a fixed parameter or one random parameter, never both.

    Relations are compared as matrix entries: ``f =~ y`` and ``y ~ f`` are both B[y, f];
    ``a ~~ b`` and ``b ~~ a`` are both Ψ[a, b].
    """
    def entry(lhs: str, op: str, rhs: str, level: str) -> tuple:
        if op == "=~":
            return level, "~", rhs, lhs
        return (level, op, *sorted((lhs, rhs))) if op == "~~" else (level, op, lhs, rhs)

    owner: dict[tuple, str] = {}
    for row in rows[rows["random"].notna()].itertuples(index=False):
        key = entry(row.lhs, row.op, row.rhs, row.level)
        if owner.setdefault(key, row.random) != row.random:
            raise SpecificationError(
                f"line {row.line}: '{row.lhs} {row.op} {row.rhs}' is part of two random parameters "
                f"({owner[key]} and {row.random}); each entry can vary over clusters through one of them only."
            )
    for row in rows[rows["random"].isna()].itertuples(index=False):
        if entry(row.lhs, row.op, row.rhs, row.level) in owner:
            raise SpecificationError(
                f"line {row.line}: '{row.lhs} {row.op} {row.rhs}' is written both as a fixed parameter and as the "
                f"random parameter {owner[entry(row.lhs, row.op, row.rhs, row.level)]}; write it once, in the "
                "random form 'NAME | ...'."
            )


def _check_latent_levels(rows: pd.DataFrame) -> None:
    """A factor belongs to the level that defines it; a higher level may use it (its part at that
    level, e.g. ``f ~ f_district``: a cross-level regression), a lower one may not."""
    defined = rows[rows["op"] == "=~"].groupby("lhs")["level"].agg(lambda s: sorted(set(s)))
    for name, levels in defined.items():
        if len(levels) > 1:
            raise SpecificationError(
                f"the factor {name!r} is defined at levels {levels}; give the factor at each "
                f"level its own name (for example {name}_w and {name}_b)."
            )
    order = list(dict.fromkeys(rows["level"]))  # lowest first
    home = {name: levels[0] for name, levels in defined.items()}
    for row in rows.itertuples(index=False):
        for name in (row.lhs, row.rhs):
            if name in home and order.index(row.level) < order.index(home[name]):
                raise SpecificationError(
                    f"line {row.line}: the factor {name!r} is defined at the {home[name]} level "
                    f"but used at the lower {row.level} level; a factor exists at the level that "
                    "defines it (and, as its part there, at the levels above)."
                )


def cross_level_factors(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(factor, level) for each factor used at a level above the one that defines it."""
    home = dict(rows.loc[rows["op"] == "=~", ["lhs", "level"]].drop_duplicates("lhs").itertuples(index=False))
    used = rows.loc[rows["op"] != "=~", ["lhs", "rhs", "level"]]
    return sorted({(name, level) for lhs, rhs, level in used.itertuples(index=False)
                   for name in (lhs, rhs) if name in home and level != home[name]})


def _check_families(rows: pd.DataFrame, roles: dict[str, LevelRoles], families: dict[str, str],
                    categories: dict[str, int]) -> None:
    """A family belongs to a modelled variable of the lowest level; thresholds to an ordinal one,
    one fewer than its categories."""
    lowest = next(iter(roles.values()))
    for name in families:
        if name not in lowest.observed:
            where = "a covariate (conditioned on)" if name in lowest.covariates else "not a modelled variable of the lowest level"
            raise SpecificationError(f"a family is given for {name!r}, which is {where}; families apply to the modelled "
                                     f"(outcome or indicator) variables of the {lowest.level or 'single'} level.")
    for name, written in rows[rows["op"] == "|"].groupby("lhs", sort=False):
        if families.get(name) != "ordinal":
            raise SpecificationError(f"thresholds '{name} | t1 + ...' are for ordinal variables; declare {name!r} "
                                     f"ordinal (ordered=[{name!r}] or family={{{name!r}: 'ordinal'}}).")
        if len(written) != categories[name] - 1:
            raise SpecificationError(f"{name!r} has {categories[name]} categories in the data, so it takes "
                                     f"{categories[name] - 1} thresholds; {len(written)} are written.")


def _level_rows(user: pd.DataFrame, roles: LevelRoles, all_roles: dict[str, LevelRoles], std_lv: bool,
                families: dict[str, str], categories: dict[str, int]) -> list[dict]:
    """The user's rows of one level plus its default rows."""
    level = roles.level
    lowest = level == next(iter(all_roles))
    rows = [_user_row(r) for r in user.itertuples(index=False)]
    given = {(r["lhs"], r["op"], r["rhs"]) for r in rows}
    given |= {(r["rhs"], r["op"], r["lhs"]) for r in rows if r["op"] == "~~"}

    def add(lhs: str, op: str, rhs: str, fixed: float = np.nan) -> None:
        if (lhs, op, rhs) not in given:
            rows.append(dict(lhs=lhs, op=op, rhs=rhs, level=level, label=None, fixed=fixed, start=np.nan,
                             prior=None, random=None, user=False, free_forced=False, per_group=None))
            given.add((lhs, op, rhs))

    defined = [lv for lv in roles.latent if any(r["op"] == "=~" and r["lhs"] == lv for r in rows)]  # not parts
    if not std_lv:
        for lv in defined:
            first = next(r for r in rows if r["op"] == "=~" and r["lhs"] == lv)
            if np.isnan(first["fixed"]) and not first["free_forced"] and first["random"] is None:
                first["fixed"] = 1.0
    for v in roles.observed + roles.latent:
        no_noise = (lowest and v in families and not has_dispersion(families[v])
                    and families[v] not in CENSORED_FAMILIES)
        add(v, "~~", v, 1.0 if std_lv and v in defined else 0.0 if no_noise else np.nan)
    for v in roles.observed:
        if lowest and families.get(v) == "ordinal":
            for k in range(1, categories[v]):
                add(v, "|", f"t{k}")

    dependent = {r["lhs"] for r in rows if r["op"] == "~"}
    predictors = {r["rhs"] for r in rows if r["op"] == "~"}
    indicators = {r["rhs"] for r in rows if r["op"] == "=~"}
    exogenous_lv = [v for v in roles.latent if v not in dependent and v not in indicators]
    pure_outcomes = [v for v in roles.observed + roles.latent
                     if v in dependent and v not in predictors and v not in indicators and not (lowest and v in families)]
    for a, b in itertools.chain(itertools.combinations(exogenous_lv, 2), itertools.combinations(pure_outcomes, 2)):
        add(a, "~~", b)

    levels = list(all_roles)
    above = [all_roles[r] for r in levels[levels.index(level) + 1:]]
    higher = {v for r in above for v in r.observed + r.random}  # their means live at the highest level
    for v in roles.observed:
        add(v, "~1", "", 0.0 if v in higher or families.get(v) == "ordinal" else np.nan)
    for v in roles.latent:
        add(v, "~1", "", 0.0)
    for v in roles.random:
        add(v, "~~", v)
        add(v, "~1", "", 0.0 if v in higher else np.nan)
    return rows


def _user_row(r) -> dict:
    return dict(lhs=r.lhs, op=r.op, rhs=r.rhs, level=r.level, label=r.label, fixed=r.fixed, start=r.start,
                prior=r.prior, random=r.random, user=True, free_forced=bool(r.free_forced),
                per_group=getattr(r, "per_group", None))


def _apply_equalities(table: pd.DataFrame, constraints: pd.DataFrame) -> pd.DataFrame:
    """``a == b`` between two labels makes them one parameter: their rows get one ``key`` (the labels
    stay, so ``:=`` definitions can use either). Other constraints (linear expressions, ``<``, ``>``)
    reparametrise θ later (:mod:`.constraints`)."""
    labels = set(table["label"].dropna())
    table["key"] = table["label"]
    for c in constraints.itertuples(index=False):
        if c.op != "==" or c.lhs not in labels or c.rhs not in labels:
            continue
        first, second = (table.loc[table["label"] == name, "key"].iloc[0] for name in (c.lhs, c.rhs))
        table.loc[table["key"] == second, "key"] = first
    return table


def _number_free(table: pd.DataFrame) -> pd.DataFrame:
    """Number free parameters from 1; rows sharing a key (a label, or labels joined by ``==``) share a number
    (and a fixed value)."""
    table = table.copy()
    for key, group in table[table["key"].notna()].groupby("key", sort=False):
        fixed = shared_value(" == ".join(group["label"].unique()), group)
        if not np.isnan(fixed):
            table.loc[group.index, "fixed"] = fixed
    free = np.zeros(len(table), dtype=np.int64)
    ids: dict[str, int] = {}
    for i, (key, fixed, random) in enumerate(table[["key", "fixed", "random"]].itertuples(index=False)):
        if not np.isnan(fixed) or isinstance(random, str):
            continue
        free[i] = ids.setdefault(key if isinstance(key, str) else f"__row{i}", len(ids) + 1)
    table["free"] = free
    return table


def shared_value(label: str, rows: pd.DataFrame) -> float:
    """The value at which the rows that share ``label`` are fixed (NaN: free); refuses two fixed
    values, and parameters of different kinds under one label."""
    fixed = rows["fixed"].dropna().unique()
    if len(fixed) > 1:
        raise SpecificationError(f"the label {label!r} is fixed to different values {[float(v) for v in fixed]}.")
    kinds = {"variance" if op == "~~" and lhs == rhs else op
             for op, lhs, rhs in rows[["op", "lhs", "rhs"]].itertuples(index=False)}
    if len(kinds) > 1:
        raise SpecificationError(f"the label {label!r} is shared by parameters of different kinds ({sorted(kinds)}); "
                                 "equality constraints must join parameters of one kind.")
    return float(fixed[0]) if len(fixed) else float("nan")


def check_values(table: pd.DataFrame, families: Mapping[str, str],
                 roles: dict[str, LevelRoles] | None = None) -> None:
    """Refuse what a numbered table (or one group's) cannot fit: a factor without a scale, impossible
    fixed values (:func:`_check_fixed_values`), priors or start values on fixed parameters."""
    roles = roles or assign_roles(table[table["op"].isin(MODEL_OPS)])
    _check_scales(table, roles)
    _check_fixed_values(table, roles, families)
    _check_priors_are_on_free_parameters(table)


def _check_priors_are_on_free_parameters(table: pd.DataFrame) -> None:
    """A prior on a fixed parameter would be silently ignored: say so instead."""
    for r in table[table["prior"].notna() & (table["free"] == 0)].itertuples(index=False):
        where = f" (level {r.level})" if r.level else ""
        marker = (f" A factor's first loading is fixed at 1 to set its scale: write NA*{r.rhs} to free it, and "
                  "fix the factor's variance instead (or use std_lv=True)." if r.op == "=~" else "")
        raise SpecificationError(f"the prior on '{r.lhs} {r.op} {r.rhs}'{where} would have no effect: that parameter is "
                                 f"fixed at {r.fixed:g}. Drop the prior or free the parameter.{marker}")


def _check_scales(table: pd.DataFrame, roles: dict[str, LevelRoles]) -> None:
    """Each factor needs a scale: a loading fixed to a non-zero value or a fixed variance."""
    for level, r in roles.items():
        at = table[table["level"] == level]
        for lv in r.latent:
            loadings = at[(at["op"] == "=~") & (at["lhs"] == lv)]
            variance = at[(at["op"] == "~~") & (at["lhs"] == lv) & (at["rhs"] == lv)]
            if loadings.empty or (loadings["fixed"].fillna(0) != 0).any() or variance["free"].eq(0).any():
                continue  # a factor's part at a higher level is on the factor's scale
            where = f" at the {level} level" if level else ""
            raise SpecificationError(
                f"the factor {lv!r}{where} has no scale: all its loadings and its variance are free. "
                f"Fix one loading (e.g. '{lv} =~ 1*{loadings['rhs'].iloc[0]} + ...'), fix its variance "
                f"('{lv} ~~ 1*{lv}'), or fit with std_lv=True."
            )


def _statement_key(level: str, lhs: str, op: str, rhs: str) -> tuple:
    """One key per matrix entry a statement writes: ``a ~~ b`` and ``b ~~ a`` are the same entry."""
    return (level, op, *sorted((lhs, rhs))) if op == "~~" else (level, op, lhs, rhs)


def _check_statements(rows: pd.DataFrame, defined: pd.DataFrame) -> None:
    """Refuse what lavaan refuses in the syntax itself: a parameter written twice, a variable
    regressed on itself, a random parameter named like a factor, a label that is also a variable
    name, a defined name used twice or that is also a variable or a label."""
    first: dict[tuple, int] = {}
    for r in rows.itertuples(index=False):
        statement = f"{r.lhs} {r.op} {r.rhs}".strip()
        if r.op in ("~", "=~") and r.lhs == r.rhs:
            raise SpecificationError(f"line {r.line}: '{statement}' relates a variable to itself; a variable cannot "
                                     "predict or measure itself. Remove the statement (a variance is written "
                                     f"'{r.lhs} ~~ {r.lhs}').")
        key = _statement_key(r.level, r.lhs, r.op, r.rhs)
        if isinstance(r.random, str):
            continue  # a random relation written twice: _check_random_duplicates says how
        if key in first:
            raise SpecificationError(f"line {r.line}: '{statement}' is written twice (first on line {first[key]}); "
                                     "write each parameter once, with all its modifiers (to make parameters equal, "
                                     "give them the same label).")
        first[key] = r.line
    factors = set(rows.loc[rows["op"] == "=~", "lhs"])
    for r in rows[rows["random"].isin(factors)].itertuples(index=False):
        raise SpecificationError(f"line {r.line}: {r.random!r} names both a factor ('=~') and a random parameter "
                                 f"('{r.random} | ...'); give the random parameter its own name (e.g. s_{r.random}).")
    variables = set(_names(rows)) | set(rows["random"].dropna())
    for r in rows[rows["label"].isin(variables)].itertuples(index=False):
        raise SpecificationError(f"line {r.line}: the label {r.label!r} is also the name of a variable; labels and "
                                 f"variable names must differ (e.g. b_{r.label}).")
    labels = set(rows["label"].dropna())
    seen: set[str] = set()
    for r in defined.itertuples(index=False):
        clash = ("a variable" if r.lhs in variables else "a parameter label" if r.lhs in labels
                 else "defined twice" if r.lhs in seen else None)
        if clash:
            what = "is " + clash if clash != "defined twice" else "is defined more than once"
            raise SpecificationError(f"line {r.line}: the defined parameter {r.lhs!r} (':=') {what}; give each "
                                     "defined parameter its own new name.")
        seen.add(r.lhs)


def _check_fixed_values(table: pd.DataFrame, roles: dict[str, LevelRoles], families: Mapping[str, str]) -> None:
    """Refuse fixed values no model can have: non-finite ones, negative variances, a zero residual
    variance of a Gaussian observed variable of the lowest level that measures no factor (its
    covariance matrix would be singular), a zero variance of a factor nothing predicts or measures,
    and fixed covariances whose correlation (with both variances fixed) lies outside [-1, 1]; and
    start values of fixed parameters, which would be silently ignored."""
    fixed = table[table["fixed"].notna()]
    for r in fixed[~np.isfinite(fixed["fixed"].to_numpy(float))].itertuples(index=False):
        raise SpecificationError(f"'{r.lhs} {r.op} {r.rhs}'{_at(r.level)} is fixed at {r.fixed}; fix it at a finite "
                                 "number or free it.")
    for r in fixed[fixed["start"].notna()].itertuples(index=False):
        raise SpecificationError(f"the start value of '{r.lhs} {r.op} {r.rhs}'{_at(r.level)} would have no effect: that "
                                 f"parameter is fixed at {r.fixed:g}. Drop start() or free the parameter (NA*).")
    variance = fixed[(fixed["op"] == "~~") & (fixed["lhs"] == fixed["rhs"])]
    lowest = next(iter(roles))
    indicators = set(table.loc[(table["op"] == "=~") & (table["level"] == lowest), "rhs"])
    for r in variance.itertuples(index=False):
        singular = (r.fixed == 0 and r.level == lowest and r.lhs in roles[lowest].observed
                    and r.lhs not in indicators and r.lhs not in families)
        constant = r.fixed == 0 and r.lhs in _exogenous_factors(table[table["level"] == r.level], roles[r.level])
        if r.fixed < 0 or singular or constant:
            why = ("a variance cannot be negative" if r.fixed < 0 else "with no residual variance it would be an "
                   "exact function of the other variables, and the likelihood would be singular" if singular else
                   "a factor that predicts without varying is a constant, and its loadings cannot be estimated")
            raise SpecificationError(f"'{r.lhs} ~~ {r.rhs}'{_at(r.level)} is fixed at {r.fixed:g}: {why}. Fix it at a "
                                     "positive value or free it.")
    sd = {(r.level, r.lhs): np.sqrt(r.fixed) for r in variance.itertuples(index=False)}
    for r in fixed[(fixed["op"] == "~~") & (fixed["lhs"] != fixed["rhs"])].itertuples(index=False):
        scale = sd.get((r.level, r.lhs), np.nan) * sd.get((r.level, r.rhs), np.nan)
        if abs(r.fixed) > scale:  # False while either variance is free (nan)
            raise SpecificationError(
                f"'{r.lhs} ~~ {r.rhs}'{_at(r.level)} is fixed at {r.fixed:g}, a correlation of {r.fixed / scale:.3g} "
                f"given the fixed variances of {r.lhs!r} and {r.rhs!r}; a correlation lies in [-1, 1]. Fix the "
                "covariance within ± the product of the standard deviations, or free it.")


def _exogenous_factors(rows: pd.DataFrame, roles: LevelRoles) -> set[str]:
    """The factors of a level that nothing predicts or measures (their variance is their whole variance)."""
    dependent = set(rows.loc[rows["op"] == "~", "lhs"]) | set(rows.loc[rows["op"] == "=~", "rhs"])
    return set(roles.latent) - dependent


def _at(level: str) -> str:
    return f" at the {level} level" if level else ""


# The sections of lavaan's ``summary()``, in its order (a row's kind: its operator, ``~~`` split).
SECTIONS = {"=~": "Latent Variables", "~": "Regressions", "covariance": "Covariances", "~1": "Intercepts",
            "|": "Thresholds", "variance": "Variances"}


def section_kind(row: Mapping) -> str:
    """The summary section of a row (a mapping with lhs, op, rhs): its operator, with ``~~`` split
    into variances and covariances."""
    if row["op"] == "~~":
        return "variance" if row["lhs"] == row["rhs"] else "covariance"
    return row["op"]


def section(row: Mapping) -> tuple[int, str]:
    """The summary section of a table row: its place and title."""
    kind = section_kind(row)
    return list(SECTIONS).index(kind), SECTIONS[kind]
