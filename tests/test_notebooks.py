"""The case-study notebooks.

Fast: every notebook under case_studies/ is listed in case_studies/README.md, reads its sampling
settings from the environment in its first code cell, is committed executed without errors, stays
under 1 MB, and has a slow test here. Slow: each notebook runs from top to bottom in its own folder
with small sampling settings (a copy in memory; the committed file is not rewritten), and a cell
appended to it checks its key results, with bounds that hold for 2 chains x 100 draws.
"""

import json
from pathlib import Path

import pytest

CASE_STUDIES = Path(__file__).resolve().parent.parent / "case_studies"
SMALL = {"BAYES_MSEM_NOTEBOOK_DRAWS": "100", "BAYES_MSEM_NOTEBOOK_TUNE": "100", "BAYES_MSEM_NOTEBOOK_CHAINS": "2"}
CELL_TIMEOUT = 1200  # seconds; the longest cell, the GLLAMM fit, samples for about 2 minutes on 2 cores

# Per notebook: check name → a Python expression evaluated in the executed notebook's namespace.
CHECKS = {
    "cluster_specific/cluster_specific.ipynb": {
        "every school has a slope and an intercept": "len(slopes) == len(intercepts) == 40",
        "probabilities lie in [0, 1]": "above['P(slope > average)'].between(0, 1).all()",
        "ranks are a permutation in every draw": "np.isclose(ranking['mean rank'].sum(), 40 * 41 / 2)",
        "posterior slopes follow the true slopes": "np.corrcoef(slopes['mean'], schools['slope'])[0, 1] > 0.6",
        "partial pooling beats least squares for the slopes":
            "recovery.loc['slope', 'RMSE, posterior mean'] < recovery.loc['slope', 'RMSE, least squares']",
        "small schools are pulled furthest": "shrinkage.groupby('size', observed=True)"
                                             "['pulled towards the average'].mean().is_monotonic_decreasing",
    },
    "prior_sensitivity/prior_sensitivity.ipynb": {
        "15 clusters flag the between factor variance":
            "sensitivity[15].set_index(['lhs', 'op', 'rhs', 'level']).loc[('fb', '~~', 'fb', 'between'), 'prior'] > 0.05",
        "15 clusters leave the within loadings alone":
            "(sensitivity[15].query('op == \"=~\" and level == \"within\"')['prior'] < 0.05).all()",
        "300 clusters flag nothing": "(sensitivity[300]['prior'] < 0.05).all()",
        "every prior set is refitted": "all(list(c.fits) == list(PRIOR_SETS) for c in comparisons.values())",
        "300 clusters: the between variance hardly moves with the prior":
            "np.ptp(between_variance[('300 clusters', 'mean')]) < 0.03",
    },
    "gllamm_attitudes/gllamm_attitudes.ipynb": {
        "every Table 1 parameter is compared": "len(result) == 18 and result['mean'].notna().all()",
        "the general factor's loadings on couple, marriage, financial are recovered":
            "(result.set_index('parameter').loc[['λ_G couple', 'λ_G marriage', 'λ_G financial']]"
            ".eval('abs(mean - truth)') < 0.3).all()",
        "three data sets, three LOO comparisons each":
            "len(results) == 3 and all(len(table) == 3 for table in compared.values())",
    },
    "measurement_invariance/measurement_invariance.ipynb": {
        "four steps compared": "list(table['model']) == ['configural', 'metric', 'scalar', 'strict']",
        "lavaan's tests: equal loadings kept, equal intercepts rejected":
            "abs(tests.at['metric', 'chisq_diff'] - 8.19) < 0.01 and tests.at['metric', 'p'] > 0.05 "
            "and tests.at['scalar', 'p'] < 0.001",
        "equal intercepts cost ELPD": "table.set_index('model').at['scalar', 'elpd_diff'] < 0",
        "the largest group differences are intercepts": "(differences['class'].iloc[:3] == 'intercepts').all()",
        "no loading is flagged": "(flagged['class'] != 'loadings').all()",
        "posterior means near lavaan's": "comparison['distance'].median() < 0.5",
        "the partial model frees two intercepts and beats scalar":
            "len(partial_items) == 2 and partial_comparison.at['scalar', 'elpd_diff'] > 0",
    },
    "multilevel_mediation/multilevel_mediation.ipynb": {
        "six indirect effects": "len(indirect) == 6",
        "within total indirect effect recovered": "abs(total.loc['within', 'mean'] - 0.14) < 0.03",
        "the conventional estimate sits at the within effect": "abs(blend['mean'] - blend['within truth']) < 0.03",
        "the between effect is larger than the blend": "total.loc['between', 'mean'] > blend['upper']",
    },
    "stata_three_level/stata_three_level.ipynb": {
        "five parameters compared": "len(result) == 5",
        "slope of x recovered": "abs(result.set_index('parameter').loc['slope_x', 'mean'] - 2) < 0.3",
        "variance shares add up to 1": "abs(shares.mean().sum() - 1) < 1e-9",
    },
}


def _notebooks() -> list[str]:
    return sorted(str(p.relative_to(CASE_STUDIES)) for p in CASE_STUDIES.glob("*/*.ipynb"))


def _first_code_cell(notebook: dict) -> str:
    return "".join(next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")["source"])


def test_every_notebook_is_listed_tested_and_committed_executed():
    notebooks = _notebooks()
    readme = (CASE_STUDIES / "README.md").read_text()
    assert notebooks and sorted(CHECKS) == notebooks
    for name in notebooks:
        path = CASE_STUDIES / name
        assert name in readme, f"{name} is not listed in case_studies/README.md"
        notebook = json.loads(path.read_text())
        assert "BAYES_MSEM_NOTEBOOK_DRAWS" in _first_code_cell(notebook), f"{name}: the first code cell sets no DRAWS"
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert all(cell["execution_count"] for cell in code), f"{name} is committed unexecuted"
        assert not any(out["output_type"] == "error" for cell in code for out in cell["outputs"]), f"{name} has errors"
        assert path.stat().st_size < 1_000_000, f"{name} is over 1 MB"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_with_small_settings(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = CASE_STUDIES / name
    notebook = nbformat.read(path, as_version=4)
    checks = ", ".join(f"{label!r}: bool({expression})" for label, expression in CHECKS[name].items())
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({{{checks}}}))"))
    for variable, value in SMALL.items():
        monkeypatch.setenv(variable, value)
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    printed = "".join(out["text"] for out in notebook.cells[-1]["outputs"]
                      if out["output_type"] == "stream" and out["name"] == "stdout")
    results = json.loads(printed)
    assert results == dict.fromkeys(CHECKS[name], True)
