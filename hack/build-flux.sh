#!/usr/bin/env bash
# Builds what the GitOps tests run from Go modules, into a per-version cache:
#   ${DATABUILD_CACHE:-~/.cache/databuild}/flux/<versions>/bin
# - source-controller and kustomize-controller (Flux), plus their CRDs from the same
#   module versions in bin/crds/;
# - kstatus, a tiny program (hack/kstatus/main.go) that prints what
#   sigs.k8s.io/cli-utils' kstatus computes for objects read on stdin.
# Idempotent like hack/build-control-plane.sh: a component cached with the same recipe
# (stamped in bin/.<component>.recipe) is not rebuilt.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${DATABUILD_CACHE:-$HOME/.cache/databuild}"
key="source-${FLUX_SOURCE_CONTROLLER_VERSION}_kustomize-${FLUX_KUSTOMIZE_CONTROLLER_VERSION}_cli-utils-${CLI_UTILS_VERSION}"
prefix="$cache_root/flux/$key"
tag=build-flux
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"

# wrapper_module DIR MODULE VERSION: a throwaway module in DIR that requires
# MODULE@VERSION and takes over its replace directives (a replace only applies in the
# main module); a relative one (`=> ./api`) is pinned to the version MODULE requires.
wrapper_module() {
  local dir="$1" module="$2" version="$3" gomod
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init "databuild.dev/flux-${module##*/}" >/dev/null 2>&1
  gomod="$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  go mod edit -json "$gomod" | python3 -c '
import json, sys
mod = json.load(sys.stdin)
required = {r["Path"]: r["Version"] for r in mod.get("Require") or []}
for r in mod.get("Replace") or []:
    old, new = r["Old"]["Path"], r["New"]
    if new["Path"].startswith("."):
        print(f"{old}={old}@{required[old]}")
    else:
        print("%s=%s@%s" % (old, new["Path"], new["Version"]))' | while read -r rep; do
    go mod edit -replace "$rep"
  done
  for rep in $FLUX_REPLACES; do go mod edit -replace "$rep"; done
  go mod edit -require "$module@$version"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$module" >tools.go
}

build_controller() { # NAME MODULE VERSION
  local component="$1" module="$2" version="$3" start=$SECONDS
  local recipe="$version crds $FLUX_REPLACES"
  cached "$component" "$recipe" "$component" "crds/$component" && return 0
  log "$component $version: building (cold: several minutes on 2 cores)"
  wrapper_module "$prefix/src/$component" "$module" "$version"
  run "$component" "go mod tidy" go mod tidy -e
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage/crds/$component"
  run "$component" "go build" go build -trimpath -tags tools -ldflags "-s -w" -o "$stage/$component" "$module"
  local src
  src="$(go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  cp "$src"/config/crd/bases/*.yaml "$stage/crds/$component/"
  chmod -R u+w "$stage/crds"
  mkdir -p "$bin/crds"
  for f in "$stage/crds"/*; do rm -rf "$bin/crds/${f##*/}"; mv -f "$f" "$bin/crds/"; done
  rmdir "$stage/crds"
  install_built "$stage" "$component" "$recipe"
  done_in "$component" "$start"
}

build_kstatus() {
  local component=kstatus start=$SECONDS recipe
  recipe="$CLI_UTILS_VERSION $(sha256sum "$here/kstatus/main.go" | cut -c1-16)"
  cached $component "$recipe" kstatus && return 0
  log "$component (sigs.k8s.io/cli-utils $CLI_UTILS_VERSION): building"
  local work="$prefix/src/kstatus"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  cp "$here/kstatus/main.go" .
  go mod init databuild.dev/kstatus >/dev/null 2>&1
  go mod edit -require "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION"
  run $component "go mod tidy" go mod tidy
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go build" go build -trimpath -ldflags "-s -w" -o "$stage/kstatus" .
  install_built "$stage" $component "$recipe"
  done_in $component "$start"
}

build_source() { build_controller source-controller github.com/fluxcd/source-controller "$FLUX_SOURCE_CONTROLLER_VERSION"; }
build_kustomize() { build_controller kustomize-controller github.com/fluxcd/kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION"; }

components="${*:-kstatus source kustomize}"
for c in $components; do
  "build_$c"
done
echo "$bin"
