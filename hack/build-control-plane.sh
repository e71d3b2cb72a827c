#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm; kubelet and kube-proxy for the real node) from
# Go modules into a per-version cache:
#   ${DATABUILD_CACHE:-~/.cache/databuild}/controlplane/<versions>/bin
# Idempotent: a component whose binaries are cached with the same recipe (version and
# build flags, stamped in bin/.<component>.recipe) is not rebuilt; changing a recipe
# here rebuilds only that component.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${DATABUILD_CACHE:-$HOME/.cache/databuild}"
key="kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
prefix="$cache_root/controlplane/$key"
tag=build-control-plane
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

version_ldflags() { # PKG MAJOR MINOR VERSION
  local pkg="$1" major="$2" minor="$3" v="$4"
  printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=%s ' \
    "$pkg" "$v" "$pkg" "$major" "$pkg" "$minor" "$pkg" "$pkg" "$build_date"
}

build_kube() {
  local component=kubernetes start=$SECONDS recipe="$KUBE_VERSION version-ldflags"
  cached $component "$recipe" kube-apiserver kube-controller-manager kube-scheduler kubectl && return 0
  local work="$prefix/src/kubernetes"
  log "$component $KUBE_VERSION: building (cold: about 4 min on 2 cores with a fast module proxy, up to 30 with a slow one)"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  local staging="${KUBE_VERSION/#v1./v0.}"
  run $component "go mod init" go mod init databuild.dev/controlplane-kubernetes
  run $component "download k8s.io/kubernetes" go mod download -json "k8s.io/kubernetes@$KUBE_VERSION"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # k8s.io/kubernetes replaces its staging modules with ./staging/...: pin each to
  # its published tag instead.
  local mod
  for mod in $(go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])'); do
    go mod edit -replace "$mod=$mod@$staging"
  done
  go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  run $component "go mod tidy" go mod tidy -e
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w $(version_ldflags k8s.io/component-base/version 1 "$minor" "$KUBE_VERSION")$(version_ldflags k8s.io/client-go/pkg/version 1 "$minor" "$KUBE_VERSION")"
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go build" go build -trimpath -tags tools -ldflags "$ldflags" -o "$stage/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  install_built "$stage" $component "$recipe"
  done_in $component $start
}

# The real node's kubelet and kube-proxy, from the same wrapper module as the control
# plane (whose module cache and build cache make this take seconds once `kube` is built).
build_node() {
  local component=node start=$SECONDS recipe="$KUBE_VERSION version-ldflags"
  cached $component "$recipe" kubelet kube-proxy && return 0
  local work="$prefix/src/kubernetes"
  [[ -f "$work/go.mod" ]] || build_kube
  log "$component $KUBE_VERSION: building kubelet and kube-proxy"
  cd "$work"
  cat >tools_node.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  run $component "go mod tidy" go mod tidy -e
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w $(version_ldflags k8s.io/component-base/version 1 "$minor" "$KUBE_VERSION")$(version_ldflags k8s.io/client-go/pkg/version 1 "$minor" "$KUBE_VERSION")"
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go build" go build -trimpath -tags tools -ldflags "$ldflags" -o "$stage/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  install_built "$stage" $component "$recipe"
  done_in $component $start
}

build_etcd() {
  local component=etcd start=$SECONDS recipe="$ETCD_VERSION version-ldflags"
  cached $component "$recipe" etcd && return 0
  local work="$prefix/src/etcd"
  log "$component $ETCD_VERSION: building"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  run $component "go mod init" go mod init databuild.dev/controlplane-etcd
  local gomod
  gomod="$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local mod
  for mod in $(go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("../"):
        print(r["Old"]["Path"])'); do
    go mod edit -replace "$mod=$mod@$ETCD_VERSION"
  done
  go mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  run $component "go mod tidy" go mod tidy -e
  local ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go build" go build -trimpath -tags tools -ldflags "$ldflags" -o "$stage/etcd" go.etcd.io/etcd/server/v3
  install_built "$stage" $component "$recipe"
  done_in $component $start
}

build_kwok() {
  local component=kwok start=$SECONDS recipe="$KWOK_VERSION version-ldflags"
  cached $component "$recipe" kwok && return 0
  log "$component $KWOK_VERSION: building"
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go install" env GOBIN="$stage" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  install_built "$stage" $component "$recipe"
  done_in $component $start
}

build_helm() {
  local component=helm start=$SECONDS recipe="$HELM_VERSION version-ldflags kube-capabilities"
  cached $component "$recipe" helm && return 0
  log "$component $HELM_VERSION: building"
  # Like helm's own release build: the Kubernetes version `helm template` and `helm
  # lint` assume without a cluster follows the client-go helm was built with (the
  # default, v1.20, fails charts that require a current Kubernetes).
  local gomod kminor
  gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  kminor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")"
  [[ -n "$kminor" ]] || { log "FAILED: helm, step 'read client-go version from $gomod'"; exit 1; }
  local kflags="" pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    kflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
  done
  local stage="$prefix/stage-$component"
  rm -rf "$stage" && mkdir -p "$stage"
  run $component "go install" env GOBIN="$stage" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean$kflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  install_built "$stage" $component "$recipe"
  done_in $component $start
}

components="${*:-etcd kwok helm kube node}"
for c in $components; do
  "build_$c"
done
echo "$bin"
