#!/usr/bin/env bash
# Builds Kueue's manager from its Go module into a per-version cache, for the queue tests:
#   ${DATABUILD_CACHE:-~/.cache/databuild}/kueue/<version>/bin
# - bin/kueue, the manager (controllers and admission webhooks in one process);
# - bin/crds/*.yaml, its CRDs, and bin/webhook/manifests.yaml, its Mutating- and
#   ValidatingWebhookConfigurations, both from the same module version's config/.
# Idempotent like hack/build-control-plane.sh (recipe stamped in bin/.kueue.recipe).
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${DATABUILD_CACHE:-$HOME/.cache/databuild}"
prefix="$cache_root/kueue/$KUEUE_VERSION"
tag=build-kueue
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"

build_kueue() {
  local component=kueue start=$SECONDS recipe="$KUEUE_VERSION crds webhook"
  cached $component "$recipe" kueue crds webhook && return 0
  log "$component $KUEUE_VERSION: building (cold: about 3 min on 2 cores)"
  local module=sigs.k8s.io/kueue
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage/crds" "$stage/webhook"
  # `go install pkg@version` builds in module mode from the module's own go.mod, which
  # refuses a -mod flag: clear the one build-lib.sh sets for the wrapper-module builds.
  run $component "go install" env GOFLAGS= GOBIN="$stage" go install -trimpath \
    -ldflags "-s -w -X $module/pkg/version.GitVersion=$KUEUE_VERSION" \
    "$module/cmd/kueue@$KUEUE_VERSION"
  local src
  src="$(cd "${TMPDIR:-/tmp}" && GOFLAGS= go mod download -json "$module@$KUEUE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  cp "$src"/config/components/crd/bases/*.yaml "$stage/crds/"
  cp "$src"/config/components/webhook/manifests.yaml "$stage/webhook/"
  chmod -R u+w "$stage/crds" "$stage/webhook"
  local d
  for d in crds webhook; do rm -rf "${bin:?}/$d"; done
  install_built "$stage" $component "$recipe"
  done_in $component "$start"
}

build_kueue
echo "$bin"
