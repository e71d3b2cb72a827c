#!/usr/bin/env bash
# Copies the CRDs generated from the pydantic models (crds/) into the Helm chart, which
# must ship the same files (Helm reads a chart's CRDs only from its own crds/ directory).
# tests/unit/chart/test_chart.py fails when the two drift.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/charts/databuild-operator/crds"
rm -f "$dest"/*.yaml
cp "$root"/crds/*.yaml "$dest/"
echo "synced $(ls "$dest" | wc -l) CRDs into charts/databuild-operator/crds"
