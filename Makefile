# Set-up and the everyday jobs, on a fresh machine with Python 3.10+:
#   make quick   install, fetch data, run the short CPU training (configs/quick.py)
#   make test    install (with the demo extra), fetch data, run the test suite
#   make demo    install the demo extra, serve the demo page of pretrained/dual
# Data: MIXAE_DATA_DIR if set, else .cache/data, written from ../shared/data
# when that folder exists (otherwise tensorflow-datasets is used).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED_DATA := ../shared/data
DATA_DIR ?= $(or $(MIXAE_DATA_DIR),$(CURDIR)/.cache/data)
export MIXAE_DATA_DIR := $(DATA_DIR)

PORT ?= 8080
# The suite runs on two processes (pytest-xdist), each test file whole in one,
# so a module's shared fixtures are built once; PYTEST_WORKERS= runs it in one.
PYTEST_WORKERS ?= -n 2 --dist loadfile

.PHONY: install install-demo data quick test demo clean

install: $(VENV)/.installed

# The demo page's extra (Gradio); the tests need it for the browser test.
install-demo: $(VENV)/.installed-demo

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

$(VENV)/.installed-demo: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,demo]"
	touch $@

data: install
	@if [ -f $(SHARED_DATA)/prepare.py ]; then \
	  $(PY) $(SHARED_DATA)/prepare.py $(DATA_DIR); \
	else \
	  echo "No $(SHARED_DATA): set MIXAE_DATA_DIR to a folder of MNIST/CIFAR-10 files, or tfds is used."; \
	fi

quick: data
	$(PY) launch.py --config=configs/quick.py --workdir=runs/quick

test: data install-demo
	$(PY) -m pytest -q $(PYTEST_WORKERS)

demo: data install-demo
	$(PY) launch.py --mode=serve --workdir=pretrained/dual --port=$(PORT)

clean:
	rm -rf $(VENV) .cache runs
