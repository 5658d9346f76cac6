# Two commands do everything on a fresh machine (Python 3.11 and network access to PyPI;
# the full suite also needs Debian's chromium and Terraform >= 1.11: README, "Two commands"):
#   make run    create the environment, start the local stack and run the main job
#   make test   create the environment, lint and type-check, and run the whole test suite
# While developing: make check (lint, types and the unit tier, well under a minute warm).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .venv-uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help run test check lint ruff types env bytecode tools down status clean gcp-bootstrap gcp-deploy gcp-smoke gcp-model gcp-destroy function-requirements docs bench

# This list: each target with the first line of the comment above it (one summary line each).
help:
	@awk '/^# / && !c {c=substr($$0,3)} /^[a-z][a-z-]*:/ {split($$0,t,":"); if (c) printf "  make %-22s %s\n", t[1], c} !/^# / {c=""}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The project environment, exactly as uv.lock pins it (dev group included), bytecode compiled.
# Compiled once: where PYTHONDONTWRITEBYTECODE is set (CI images, this machine) nothing else
# writes .pyc files, and every process - each pipeline step, server and CLI call in the
# tests - recompiled scikit-learn, MLflow and pandas on import (sklearn 10.6 s -> 3.0 s,
# measured on the loaded 2-core machine).
env: $(UV)
	$(SYNC) --compile-bytecode

SYNC = $(UV) sync --frozen --python $(PYTHON) --quiet

# The environment's bytecode alone (`make test` runs it beside lint and tools).
# uv's --compile-bytecode processes the whole site-packages, not only what the sync installs:
# `make test` runs it after a plain sync.
bytecode: $(UV)
	$(SYNC) --compile-bytecode

# Test-only tools that cannot share the project environment (see tools/).
tools: $(UV)
	UV=$(UV) bash tools/setup-test-tools.sh

# Set up and start the local stack, the functions, and run the pipeline once (README).
run: env
	$(BIN)/potability up
	$(BIN)/potability functions --quiet
	$(BIN)/potability pipeline run --local

# Static checks: ruff's rules and formatting, mypy over the five packages (docs/testing.md).
# First because they take seconds (warm caches); [tool.ruff], [tool.mypy] in pyproject.toml.
lint: ruff types

# ruff's rules and formatting check (seconds).
ruff: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over potability/, training/, functions/, components/ and pipelines/.
types: env
	$(BIN)/mypy

# The developer's loop: the static checks, then the unit tier (pytest -m unit).
check: env lint
	$(BIN)/python -m pytest -m unit -q

TEST_WORKERS ?= 3

# Everything CI runs: lint, types and the whole suite (all three tiers), from scratch.
# The suite runs in TEST_WORKERS processes (pytest-xdist; each file's tests stay in one
# worker, --dist loadfile, so a file's module fixtures start once). On CI's two cores,
# measured: 14 min 8 s in one process, 9 min 10 s in two, and a third pays again: the suite
# waits on servers and child processes most of its time (docs/testing.md).
# The tools and the bytecode run side by side (each one's output whole, as it ends), then
# ruff (seconds), then mypy beside the suite: a cold mypy is half a minute of one core's work
# that the waiting suite absorbs. Its output is printed when the suite ends; a failure of
# either fails `make test`.
test: $(UV)
	$(SYNC)
	@$(MAKE) --no-print-directory -j2 --output-sync=target -o env tools bytecode
	@$(MAKE) --no-print-directory -o env ruff
	@log=$$(mktemp); echo "make types (beside the suite; its output follows the suite's)"; \
	$(MAKE) --no-print-directory -o env types > $$log 2>&1 & types=$$!; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile; suite=$$?; \
	wait $$types; typed=$$?; cat $$log; rm -f $$log; \
	exit $$(( suite || typed ))

# The guard against slowdowns: predict's throughput and latency, one run (bench/README.md).
# Predict against the model server behind it, one run on a throw-away stack
# (bench/functions_bench.py); its last line is the row for bench/README.md.
# ARGS="--variants gthread:8:1" adds other ways of serving predict to the same run.
bench: env
	$(BIN)/python bench/functions_bench.py $(ARGS)

# Stop the local stack.
down:
	$(BIN)/potability down

# What of the local stack runs.
status:
	$(BIN)/potability status

# Stop the local stack and delete its state.
clean: down
	rm -rf .potability

# Before the first `terraform apply`: enable the APIs Terraform itself needs (once a project).
# serviceusage, cloudresourcemanager and iam (potability/gcp/bootstrap.py). PROJECT=... or
# project_id in terraform/terraform.tfvars.
gcp-bootstrap: env
	$(BIN)/potability gcp bootstrap $(if $(PROJECT),--project=$(PROJECT)) $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run)

# After `terraform apply`: build and pin the image, publish, migrate, smoke-test (docs/gcp.md).
# In detail: build the image with Cloud Build, pin it by digest, publish the pipeline, run the
# migration job, print the function URLs and smoke-test status (potability/gcp/deploy.py).
# DRY_RUN=1 prints every command instead; ARGS="--auto-approve".
gcp-deploy: env
	$(BIN)/potability gcp deploy $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run) $(ARGS)

# The smoke test alone (gcp-deploy ends with it): the deployed functions, called for real.
# Predict, add_sample and the status page called as the smoke-test account through Google's
# front end, rows read back; ARGS="--pipeline" also runs the pipeline once
# (potability/gcp/smoke.py).
gcp-smoke: env
	$(BIN)/potability gcp smoke $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run) $(ARGS)

# Operators without a VPN: `potability model ARGS` as a Cloud Run job, e.g. ARGS=status.
# The job terraform/model_job.tf creates; ARGS='rollback --reason "live precision fell"'
# (potability/gcp/model_job.py).
gcp-model: env
	$(BIN)/potability gcp model $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run) $(ARGS)

# Teardown: everything Terraform and gcp-deploy created, around what stops `terraform destroy`.
# Undeploy the endpoint's models, lift Cloud SQL's deletion protection, destroy, delete the
# service-networking peering Terraform abandons, destroy the rest
# (potability/gcp/destroy.py). DRY_RUN=1 prints every command instead; ARGS="--auto-approve".
gcp-destroy: env
	$(BIN)/potability gcp destroy $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run) $(ARGS)

# docs/configuration.md from the Settings model's JSON schema (a test fails while stale).
docs: env
	$(BIN)/python -c "from potability.config import configuration_markdown as md; open('docs/configuration.md', 'w').write(md())"

# The Cloud Functions' requirements.txt from uv.lock (run after changing dependencies).
# Exactly what uv.lock pins (with hashes) for the `functions` dependency group; a test fails
# while it is stale.
function-requirements: $(UV)
	$(UV) export --frozen --only-group functions --no-emit-project --quiet > terraform/function_source/requirements.txt
