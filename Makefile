# sb3-worldmodels: `make demo` and `make test` set everything up on a fresh machine (.venv, CPU torch,
# MuJoCo software rendering) and run. Override the torch requirement with TORCH_SPEC=... if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dmc,metaworld,atari,crafter,video,dev,docs
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO_STEPS ?= 2500
PYTEST_ARGS ?=

.PHONY: demo test install render-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# MuJoCo renders off-screen through Mesa EGL (or OSMesa); install them from Debian when missing.
render-deps:
	@if ldconfig -p 2>/dev/null | grep -qE 'libEGL\.so\.1|libOSMesa\.so'; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Mesa EGL/OSMesa for MuJoCo rendering"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 >/dev/null; \
	else echo "warning: no libEGL/libOSMesa found; install Mesa (libegl1 libgl1-mesa-dri) for pixel observations"; fi

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

install: render-deps $(STAMP)

demo: install
	$(BIN)/python -m sb3_worldmodels.cli demo --steps $(DEMO_STEPS) --out demo_out

test: install
	$(BIN)/python -m pytest -n 2 --timeout 900 -q $(PYTEST_ARGS)

clean:
	rm -rf demo_out docs/_build .pytest_cache
