#!/usr/bin/env bash
# Copies the CRDs generated from the pydantic models (crds/) into the Helm chart (Helm
# reads a chart's CRDs only from its own crds/ directory) and into the GitOps example
# (kustomize loads files only from below its own directory). Tests fail when they drift.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for dest in "$root/charts/databuild-operator/crds" "$root/examples/gitops/crds"; do
  rm -f "$dest"/databuild.dev_*.yaml
  cp "$root"/crds/*.yaml "$dest/"
  echo "synced $(ls "$dest"/databuild.dev_*.yaml | wc -l) CRDs into ${dest#"$root"/}"
done
