# The two front-door commands (see README.md): `make search` and `make test`.
# Both create the environment in .venv first if it is missing or pyproject.toml changed.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: search test lint setup bench

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

search: $(STAMP)
	$(VENV)/bin/nas search $(ARGS)

# Every benchmark (about 15 minutes on 2 cores; ARGS=--quick for a smoke run): writes BENCHMARKS.md.
bench: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(VENV)/bin/python bench/run.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	bash scripts/ensure-chromium.sh
	NAS_TEST_POSTGRES_URL="$${NAS_TEST_POSTGRES_URL:-$$(bash scripts/ensure-postgres.sh)}" $(VENV)/bin/pytest $(PYTEST_ARGS)
