#!/usr/bin/env bash
# Builds images with buildah: no Docker daemon, no registry.
#
#   hack/build-image.sh [base|operator|pause|example]...   (default: base operator)
#
# - base: a Debian image with Python 3 (the Dockerfile's default base, python:3.11-slim
#   on bookworm, made locally from Debian packages with debootstrap), carrying this
#   machine's CA bundle so pip verifies TLS through whatever proxy the machine trusts.
#   Cached: rebuilt only when its recipe (suite, packages, CA bundle) changes.
# - operator: the Dockerfile, built on that base (or on $PYTHON_IMAGE when set, e.g. the
#   official python image where a registry is reachable).
# - pause: the pod sandbox image of the local node: a static C program in `scratch`.
# - example: the image the example JobDefinitions run (examples/words/job/).
#
# Images land in buildah's local storage; `hack/build-image.sh archive IMAGE FILE` writes
# one as an OCI archive (what containerd imports). Prints the image names, one a line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${DATABUILD_CACHE:-$HOME/.cache/databuild}"
images="$cache_root/images"
mkdir -p "$images"

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -n 1)"
OPERATOR_IMAGE="${OPERATOR_IMAGE:-localhost/databuild-operator:$version}"
PAUSE_IMAGE="localhost/databuild-pause:$PAUSE_VERSION"
EXAMPLE_IMAGE="localhost/databuild-words-job:$version"
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

exists() { buildah images --quiet "$1" >/dev/null 2>&1; }

# The base image's tag carries a hash of its recipe, so a changed recipe (or CA bundle)
# makes a new image instead of silently reusing a stale one.
base_image() {
  local packages="python3,python3-venv,ca-certificates"
  local key
  key="$( { echo "$DEBIAN_SUITE $packages"; sha256sum "$ca_bundle"; } | sha256sum | cut -c1-12)"
  echo "localhost/databuild-base:$DEBIAN_SUITE-$key"
}

build_base() {
  local image start=$SECONDS
  image="$(base_image)"
  if exists "$image"; then echo "$image"; return 0; fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  [[ -f "$ca_bundle" ]] || die "no CA bundle at $ca_bundle (set CA_BUNDLE)"
  # The debootstrapped tree is kept (marked complete) until the image is committed, so
  # an interrupted build does not download it again.
  local rootfs="$images/rootfs-$DEBIAN_SUITE"
  if [[ ! -f "$rootfs.complete" ]]; then
    rm -rf "$rootfs"
    log "base: debootstrap $DEBIAN_SUITE (about 2 minutes, once) into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$images/debootstrap.log" 2>&1 \
      || { tail -n 20 "$images/debootstrap.log" >&2; die "debootstrap; log: $images/debootstrap.log"; }
    touch "$rootfs.complete"
  fi
  # Like the official python image: `python` on the PATH, no package caches or docs.
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  local ctr mnt
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  cp -a "$rootfs/." "$mnt/"
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="Debian $DEBIAN_SUITE with Python 3, made with debootstrap" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$image" >/dev/null
  rm -rf "$rootfs" "$rootfs.complete"
  log "base: $image in $((SECONDS - start))s"
  echo "$image"
}

build_operator() {
  local base="${PYTHON_IMAGE:-}" start=$SECONDS
  [[ -n "$base" ]] || base="$(build_base)"
  log "operator: buildah bud on $base"
  buildah bud --quiet --isolation chroot --layers --format docker \
    --build-arg "PYTHON_IMAGE=$base" -t "$OPERATOR_IMAGE" -f "$root/Dockerfile" "$root" >&2
  log "operator: $OPERATOR_IMAGE in $((SECONDS - start))s"
  echo "$OPERATOR_IMAGE"
}

# The pod sandbox: a process that sleeps until told to stop. A static binary in an
# empty image, so the node needs no registry for its pause image either.
build_pause() {
  if exists "$PAUSE_IMAGE"; then echo "$PAUSE_IMAGE"; return 0; fi
  command -v gcc >/dev/null || die "gcc is not installed (apt-get install gcc libc6-dev)"
  local work="$images/pause"
  rm -rf "$work" && mkdir -p "$work"
  gcc -Os -static -o "$work/pause" "$here/pause.c"
  strip "$work/pause" 2>/dev/null || true
  local ctr
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$work/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah commit --quiet --rm "$ctr" "$PAUSE_IMAGE" >/dev/null
  log "pause: $PAUSE_IMAGE"
  echo "$PAUSE_IMAGE"
}

build_example() {
  local base="${PYTHON_IMAGE:-}"
  [[ -n "$base" ]] || base="$(build_base)"
  buildah bud --quiet --isolation chroot --layers --format docker --build-arg "PYTHON_IMAGE=$base" \
    -t "$EXAMPLE_IMAGE" -f "$root/examples/words/job/Dockerfile" "$root/examples/words/job" >&2
  log "example: $EXAMPLE_IMAGE"
  echo "$EXAMPLE_IMAGE"
}

if [[ "${1:-}" == "archive" ]]; then
  # archive IMAGE FILE: an OCI archive of IMAGE named as containerd would name it.
  image="$2" file="$3"
  ref="${image#localhost/}"
  [[ "$ref" == */* ]] || ref="docker.io/library/$ref"
  rm -f "$file"
  buildah push --quiet "$image" "oci-archive:$file:$ref" >/dev/null
  echo "$ref"
  exit 0
fi

for target in "${@:-base operator}"; do
  for t in $target; do "build_$t"; done
done
