"""Data sets shipped with the package, each with maximum-likelihood estimates from established
software (R 4.2.2, lavaan 0.6-14, lme4 1.1-31; statsmodels 0.15.0) to compare a fit against::

    import bayes_msem as bm
    data = bm.datasets.load("demo_twolevel")          # a pandas DataFrame
    lavaan = bm.datasets.reference("demo_twolevel")   # lhs, op, rhs, level, est, se
    print(bm.datasets.describe("demo_twolevel"))      # source, licence, design, reference model
    info = bm.datasets.info("random_slope")
    model = bm.Model(info.model, bm.datasets.load("random_slope"), **info.options)

``names()`` lists the sets. The CSV files live in this folder (``bayes_msem/datasets``);
the reference tables keep the columns their software wrote, with text cells that are empty
read as ``""`` and numbers that are empty as NaN.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import as_file, files

import pandas as pd

from ..errors import SettingsError

__all__ = ["Dataset", "describe", "info", "load", "names", "reference"]

_LAVAAN = "lavaan 0.6-14, R 4.2.2"
_LME4 = "lme4 1.1-31, R 4.2.2, REML = FALSE"
_LAVAAN_LICENCE = "GPL-2 | GPL-3, as part of lavaan (Rosseel 2012, Journal of Statistical Software 48(2))"
_HS_LICENCE = ("public domain (Holzinger & Swineford 1939); distributed with lavaan (GPL-2 | GPL-3) "
               "and MBESS")
_SIMULATED = "MIT, like bayes_msem: simulated for bayes_msem's tests"
_HS_SYNTAX = """
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"""


@dataclass(frozen=True)
class Dataset:
    """One shipped data set and the maximum-likelihood fit its reference tables come from.

    ``bm.Model(info.model, load(name), **info.options)`` sets up the reference model (for
    ``hs_multigroup``, the model of each group). ``parameters`` maps the rows of an lme4 table
    (its ``param`` column) to bayes_msem's parameter names; lavaan tables join a fit's
    parameters on (lhs, op, rhs, level) instead."""

    name: str
    title: str
    source: str
    licence: str
    design: str
    fitted: str
    data: str | None
    references: Mapping[str, str]
    model: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        shipped = [self.data] if self.data else []
        shipped += [f"{file} ({table})" for table, file in self.references.items()]
        fields = [f"{self.name}: {self.title}", f"Source: {self.source}", f"Licence: {self.licence}",
                  f"Design: {self.design}", f"Reference: {self.fitted}", "Files: " + ", ".join(shipped)]
        lines = [textwrap.fill(text, 100, subsequent_indent="  ") for text in fields]
        if self.model is not None:
            arguments = "".join(f", {key}={value!r}" for key, value in self.options.items())
            lines.append(f"Model (bm.Model(model, data{arguments})):\n{self.model.strip()}")
        return "\n".join(lines)


_SETS = (
    Dataset(
        name="demo_twolevel",
        title="lavaan's Demo.twolevel, a two-level SEM",
        source="lavaan's data set Demo.twolevel, written with write.csv(Demo.twolevel, row.names = FALSE)",
        licence=_LAVAAN_LICENCE,
        design=("2,500 rows in 200 clusters (`cluster`, 5 to 20 rows each); indicators y1-y6, within "
                "covariates x1-x3, cluster covariates w1, w2 (constant in a cluster); no missing values."),
        fitted=(f"lavaan's ML estimates ({_LAVAAN}), sem(model, cluster = \"cluster\"): columns lhs, op, "
                "rhs, level (within / between), est, se. 20 free parameters (se > 0); fixed rows have se 0, "
                "among them the covariates' (co)variances and means, fixed at their sample values "
                "(fixed.x). Log-likelihood at the estimates: -12076.566; the likelihood-ratio chi-square "
                "against the saturated model is 8.092 on 10 df. (The level column reads within up to "
                "fw ~1 and between after; lavaan's export had written between on every row.)"),
        data="demo_twolevel.csv",
        references={"estimates": "demo_twolevel_lavaan.csv"},
        model="""
level: within
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: between
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2
""",
        options={"cluster": "cluster"},
    ),
    Dataset(
        name="holzinger_swineford",
        title="Holzinger & Swineford (1939), mental ability tests of 301 pupils",
        source="lavaan's data set HolzingerSwineford1939",
        licence=_HS_LICENCE,
        design=("301 pupils of two schools (`school`: Pasteur 156, Grant-White 145); id, sex, ageyr, "
                "agemo, grade (one missing), test scores x1-x9."),
        fitted=(f"lavaan's ML estimates ({_LAVAAN}) of the single-level three-factor CFA with means, "
                "cfa(model, meanstructure = TRUE): columns lhs, op, rhs, est, se. 30 free parameters "
                "(se > 0); each factor scaled by its first loading fixed to 1, factor means fixed to 0. "
                "Chi-square 85.306 on 24 df."),
        data="holzinger_swineford.csv",
        references={"estimates": "holzinger_swineford_cfa_lavaan.csv"},
        model=_HS_SYNTAX,
    ),
    Dataset(
        name="hs_multigroup",
        title="Holzinger & Swineford (1939) by school: multigroup CFA and measurement invariance",
        source="lavaan's data set HolzingerSwineford1939 (the pupils and values of holzinger_swineford)",
        licence=_HS_LICENCE,
        design=("301 pupils in two groups (`school`: Pasteur 156, lavaan's group 1; Grant-White 145, "
                "group 2); id, sex, ageyr, grade (one missing, not used by the model), x1-x9."),
        fitted=(f"lavaan's ML estimates ({_LAVAAN}), cfa(model, group = \"school\", meanstructure = TRUE), of three "
                "fits: configural (no equality constraints), metric (group.equal = \"loadings\"), scalar "
                "(group.equal = c(\"loadings\", \"intercepts\")). Table estimates: parameterEstimates() of "
                "each, columns model, lhs, op, rhs, group (the school), label, est, se; rows with the same "
                "label (lavaan's automatic .p2. ...) are constrained equal across groups; fixed rows have "
                "se 0; the latent means are fixed to 0 except Grant-White's in scalar. Table fit: "
                "fitMeasures(), one row per model: model, logl, npar, chisq, df, aic, bic. "
                "Log-likelihoods: configural -3682.198 (60 free parameters), metric -3686.294 (54), "
                "scalar -3706.323 (48)."),
        data="hs_multigroup.csv",
        references={"estimates": "hs_multigroup_lavaan.csv", "fit": "hs_multigroup_fit.csv"},
        model=_HS_SYNTAX,
    ),
    Dataset(
        name="political_democracy",
        title="Bollen (1989), industrialization and political democracy in 75 developing countries",
        source=("Bollen, K. A. (1989). Structural Equations with Latent Variables, Wiley, pp. 12, 17, 332; "
                "lavaan's data set PoliticalDemocracy"),
        licence=_LAVAAN_LICENCE,
        design=("75 countries (rows); democracy ratings y1-y4 (1960) and y5-y8 (1965): press freedom, freedom "
                "of political opposition, fairness of elections, effectiveness of the legislature; "
                "industrialization x1-x3 (1960): GNP per capita, energy consumption per capita, share of the "
                "labour force in industry (logarithms). No missing values."),
        fitted=("lavaan's ML estimates of its tutorial model, sem(model, data = PoliticalDemocracy), as lavaan "
                "prints them (3 decimals; lavaan 0.5-23 and later): columns lhs, op, rhs, est, se. 31 free "
                "parameters (se > 0); no mean structure. Chi-square 38.125 on 35 df. The residual covariances "
                "y2 ~~ y4, y2 ~~ y6, y4 ~~ y8, y6 ~~ y8 form an incomplete pattern (y2 ~~ y8 and y4 ~~ y6 "
                "are fixed to 0)."),
        data="political_democracy.csv",
        references={"estimates": "political_democracy_lavaan.csv"},
        model="""
ind60 =~ x1 + x2 + x3
dem60 =~ y1 + y2 + y3 + y4
dem65 =~ y5 + y6 + y7 + y8
dem60 ~ ind60
dem65 ~ ind60 + dem60
y1 ~~ y5
y2 ~~ y4 + y6
y3 ~~ y7
y4 ~~ y8
y6 ~~ y8
""",
    ),
    Dataset(
        name="random_slope",
        title="a random intercept and slope of y on x in 100 schools",
        source="simulated for bayes_msem",
        licence=_SIMULATED,
        design="1,457 rows in 100 clusters (`school`, 3 to 25 rows each); columns school, x, y.",
        fitted=(f"lme4's ML estimates ({_LME4}), lmer(y ~ x + (1 + x | school)): columns param, est; "
                "intercept, slope_x, var_intercept, var_slope, cov_intercept_slope, var_residual, and "
                "loglik = -2246.833."),
        data="random_slope.csv",
        references={"estimates": "random_slope_lme4.csv"},
        model="""
level: within
  s | y ~ x
level: between
  y ~~ s
""",
        options={"cluster": "school"},
        parameters={"intercept": "between:y~1", "slope_x": "between:s~1", "var_intercept": "between:y~~y",
                    "var_slope": "between:s~~s", "cov_intercept_slope": "between:y~~s",
                    "var_residual": "within:y~~y"},
    ),
    Dataset(
        name="three_level",
        title="students in classes in schools: a three-level random-intercept regression",
        source="simulated for bayes_msem",
        licence=_SIMULATED,
        design=("900 students: 60 schools (`school`) x 3 classes (`class`, ids unique across schools) x "
                "5 students (`student`); columns student, class, school, x, y."),
        fitted=(f"lme4's ML estimates ({_LME4}), lmer(y ~ x + (1 | school) + (1 | class)): columns param, "
                "est; intercept, slope_x, var_school, var_class, var_residual, and loglik = -1442.958."),
        data="three_level.csv",
        references={"estimates": "three_level_lme4.csv"},
        model="""
level: within
  y ~ x
level: class
  y ~~ y
level: school
  y ~~ y
""",
        options={"cluster": ["class", "school"]},
        parameters={"intercept": "school:y~1", "slope_x": "within:y~x", "var_school": "school:y~~y",
                    "var_class": "class:y~~y", "var_residual": "within:y~~y"},
    ),
    Dataset(
        name="logit_random_intercept",
        title="a binary y with a random intercept in 80 clusters",
        source="simulated for bayes_msem",
        licence=_SIMULATED,
        design="1,488 rows in 80 clusters (`cluster`, 5 to 30 rows each); columns cluster, x, y (0/1).",
        fitted=("lme4's ML estimates (lme4 1.1-31, R 4.2.2), glmer(y ~ x + (1 | cluster), family = "
                "binomial, nAGQ = 25): columns param, est; intercept, slope_x, var_cluster, and "
                "loglik = -929.709."),
        data="logit_random_intercept.csv",
        references={"estimates": "logit_random_intercept_lme4.csv"},
        model="""
level: within
  y ~ x
level: between
  y ~~ y
""",
        options={"cluster": "cluster", "family": {"y": "bernoulli"}},
        parameters={"intercept": "between:y~1", "slope_x": "within:y~x", "var_cluster": "between:y~~y"},
    ),
    Dataset(
        name="crossed_schools",
        title="pupils in schools and in neighbourhoods: a cross-classified random-intercept regression",
        source="simulated for bayes_msem (scripts/crossed_reference.py)",
        licence=_SIMULATED,
        design=("1,500 pupils (`pupil`) in 40 schools (`school`, 24 to 56 pupils each) and, crossed with them, "
                "30 neighbourhoods (`neighbourhood`; each school's pupils come from 8 or 9 of them); columns "
                "pupil, school, neighbourhood, x, y. Simulated with intercept 1.0, slope 0.5, school variance "
                "0.30, neighbourhood variance 0.15, residual variance 1.0."),
        fitted=("statsmodels' ML estimates (statsmodels 0.15.0, MixedLM, reml=False), y ~ x with variance "
                "components for school and neighbourhood (vc_formula, one group of every row): columns param, "
                "est, se; intercept, slope_x, var_school, var_neighbourhood, var_residual, and loglik = "
                "-2227.697 (equal to a dense normal over all rows at the estimates). The variances' standard "
                "errors come from that dense likelihood's observed information, the fixed effects' from "
                "MixedLM."),
        data="crossed_schools.csv",
        references={"estimates": "crossed_schools_statsmodels.csv"},
        model="""
level: within
  y ~ x
level: school
  y ~~ y
level: neighbourhood
  y ~~ y
""",
        options={"cluster": ["school", "neighbourhood"], "crossed": True},
        parameters={"intercept": "neighbourhood:y~1", "slope_x": "within:y~x", "var_school": "school:y~~y",
                    "var_neighbourhood": "neighbourhood:y~~y", "var_residual": "within:y~~y"},
    ),
    Dataset(
        name="gllamm_table1",
        title="GLLAMM's multilevel logit factor model of attitudes to abortion: published estimates",
        source="Rabe-Hesketh, Skrondal & Pickles (2004), Generalized multilevel structural equation modeling, Psychometrika 69(2), 167-190, Table 1",
        licence="published estimates, quoted from the paper for reference",
        design=("The data (British Social Attitudes panel on abortion, UK Data Archive) are not public. "
                "Seven binary items (1 = in favour of legal abortion when ...): woman (decides on her "
                "own), couple (both agree), marriage (not married, won't marry), financial (cannot "
                "afford more children), defect (strong chance of a defect), risk (woman's health "
                "endangered), rape. Four panel waves in 734 subjects in 57 polling districts; 14,143 "
                "item responses, unbalanced (49 % of subjects answered in all four waves, 12 % in "
                "three, 13 % in two, 25 % in one; 7 % of item responses missing within interviews)."),
        fitted=("ML by adaptive quadrature (10 points per dimension). logit P(y_itjk = 1) = beta_i + "
                "lambda_G,i eta_G,jk + lambda_E,i eta_E,jk with eta_G,jk = u_G,k + zeta_G,jk (the "
                "general factor varies between districts) and eta_E,jk = zeta_E,jk; lambda_E = 0 for "
                "woman, couple, marriage, financial; lambda_G,woman = 1 and lambda_E,defect = 1 fixed. "
                "Columns block (intercept, loading, factor_variance, loglik), item, factor, level "
                "(fixed, subject, district), estimate, se (empty: fixed for identification). "
                "Var(zeta_G) = 5.22, Var(zeta_E) = 3.30 (uncorrelated), Var(u_G) = 0.36; "
                "log-likelihood -5160.9."),
        data=None,
        references={"estimates": "gllamm_table1.csv"},
    ),
)
_BY_NAME = {dataset.name: dataset for dataset in _SETS}


def names() -> list[str]:
    """The names of the shipped data sets, in the order they are documented."""
    return list(_BY_NAME)


def info(name: str) -> Dataset:
    """The record of data set ``name``: source, licence, design, reference fit and model.

    An unknown name raises ``bm.SettingsError`` (a ``ValueError``) listing the names."""
    if name not in _BY_NAME:
        raise SettingsError(f"no data set named {name!r}; the data sets are: {', '.join(_BY_NAME)}.")
    return _BY_NAME[name]


def describe(name: str) -> str:
    """A description of data set ``name``: source, licence, design, reference fit, files and model."""
    return str(info(name))


def _read(file: str) -> pd.DataFrame:
    with as_file(files(__name__).joinpath(file)) as path:
        return pd.read_csv(path)


def load(name: str) -> pd.DataFrame:
    """The data of set ``name`` as read from its CSV file (missing values as NaN).

    Raises ``bm.SettingsError`` for an unknown name and for a set without public data."""
    dataset = info(name)
    if dataset.data is None:
        raise SettingsError(f"{name!r} has no data in the package, only published estimates (the data are not "
                            f"public); read them with bm.datasets.reference({name!r}).")
    return _read(dataset.data)


def reference(name: str, table: str = "estimates") -> pd.DataFrame:
    """The maximum-likelihood table ``table`` of set ``name`` (``"estimates"``; ``hs_multigroup``
    also ``"fit"``), with the columns its software wrote; empty text cells read as ``""``.

    Raises ``bm.SettingsError`` for an unknown name or table, listing the choices."""
    tables = info(name).references
    if table not in tables:
        raise SettingsError(f"{name!r} has no reference table {table!r}; its tables are: {', '.join(tables)}.")
    frame = _read(tables[table])
    text = frame.select_dtypes(exclude="number").columns
    return frame.fillna({column: "" for column in text})
