#!/usr/bin/env bash
# Fetches the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule...)
# from its Go module, through the Go module proxy, into a cache:
#   ${DATABUILD_CACHE:-~/.cache/databuild}/gomod
# The chart's monitoring objects are checked against them (tests/controlplane/
# test_monitoring_schema.py). Idempotent and offline once cached.
# Prints the directory holding the CRD files on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOMODCACHE="${DATABUILD_CACHE:-$HOME/.cache/databuild}/gomod"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
module="github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
dir="$GOMODCACHE/github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}"
if [ ! -d "$dir/example/prometheus-operator-crd-full" ]; then
  (cd "${TMPDIR:-/tmp}" && go mod download "$module")
fi
echo "$dir/example/prometheus-operator-crd-full"
