# The pinned commands (see README.md). Everything runs from the project's .venv.
SHELL := /bin/bash
PY := .venv/bin/python
KUBECONFIG ?= $(CURDIR)/.databuild/kubeconfig
export KUBECONFIG

.PHONY: crds venv cluster-up cluster-down run demo test test-unit lint bench-planner bench-liveness bench-scale bench bench-quick control-plane flux kueue prometheus-crds image lock

venv: .venv/.installed
.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q -U pip
	.venv/bin/pip install -q -e '.[dev]'
	touch $@

## Build (cached) the control plane binaries and link them into .databuild/bin.
control-plane:
	@bin="$$(hack/build-control-plane.sh | tail -n 1)" && mkdir -p .databuild && ln -sfn "$$bin" .databuild/bin

## Build (cached) Flux's source- and kustomize-controller and the kstatus tool, for the
## GitOps tests, and link them into .databuild/flux.
flux:
	@bin="$$(hack/build-flux.sh | tail -n 1)" && mkdir -p .databuild && ln -sfn "$$bin" .databuild/flux

## Build (cached) Kueue's manager with its CRDs and webhook configurations, for the queue
## tests, and link it into .databuild/kueue.
kueue:
	@bin="$$(hack/build-kueue.sh | tail -n 1)" && mkdir -p .databuild && ln -sfn "$$bin" .databuild/kueue

## Fetch (cached) the Prometheus Operator's CRDs the chart's monitoring objects are checked against.
prometheus-crds:
	@hack/fetch-prometheus-crds.sh >/dev/null

cluster-up: venv control-plane
	$(PY) -m databuild.testing.cluster up

cluster-down: venv
	$(PY) -m databuild.testing.cluster down

run: venv
	$(PY) -m databuild.operator --kubeconfig "$(KUBECONFIG)"

demo: venv control-plane
	$(PY) -m databuild.testing.demo

## The whole suite: fast unit tests first, then the control-plane and e2e tests.
test: venv control-plane flux kueue prometheus-crds
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest -m unit

lint: venv
	.venv/bin/ruff format --check operator tests examples
	.venv/bin/ruff check operator tests examples
	.venv/bin/mypy
	.venv/bin/lint-imports

bench-planner: venv
	$(PY) -m databuild.domain.bench

## How long planning a 100,000-partition namespace delays the event loop (/healthz, Lease).
bench-liveness: venv
	$(PY) -m databuild.bench.liveness

## The real loop against an in-memory API server at 1,000, 10,000 and 100,000 partitions:
## CPU, writes and memory per partition and how they grow (no control plane needed).
bench-scale: venv
	$(PY) -m databuild.bench.scale --output docs/benchmarks/results-scale.md

## The operator against a zero-overhead baseline on a local control plane (or the cluster
## of $DATABUILD_TEST_KUBECONFIG); prints a table, writes docs/benchmarks/results*.md.
bench: venv control-plane
	$(PY) -m databuild.bench

bench-quick: venv control-plane
	$(PY) -m databuild.bench --quick

## Regenerate crds/ from the pydantic models and copy them into the chart and the GitOps example.
crds: venv
	$(PY) -m databuild.adapters.crds
	charts/sync-crds.sh

## The operator image from the Dockerfile, with buildah (no Docker daemon, no registry): the
## base image is made once from Debian packages (cached), see hack/build-image.sh.
image:
	hack/build-image.sh base operator

## Re-lock the image's dependencies (pyproject.toml's, plus the postgres extra) with hashes.
lock: venv
	PIP_FIND_LINKS= .venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps \
		--extra postgres --strip-extras --no-emit-find-links --no-emit-index-url \
		--output-file requirements/image.txt pyproject.toml
