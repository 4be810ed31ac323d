# Set up a virtual environment with Python >= 3.12 and run the example or the tests.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: example test test-slow

$(VENV)/installed: pyproject.toml
	$$(sh scripts/find_python.sh) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

example: $(VENV)/installed
	$(PY) -m bayes_msem.examples

test: $(VENV)/installed
	$(PY) -m pytest -m "not slow" -n 2 --dist loadfile

# pytest exits 5 when no test carries the slow marker: that is not a failure
test-slow: $(VENV)/installed
	$(PY) -m pytest -m slow -n 2 --dist loadfile || [ $$? -eq 5 ]
