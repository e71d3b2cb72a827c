# shellcheck shell=bash
# What the hack/build-*.sh scripts share: they build Go programs into a per-version
# cache. The sourcing script sets `tag` (its log prefix) and `prefix` (the cache
# directory of its versions) first; this sets `bin` and `logs`, takes the cache's lock
# and defines log, run, cached, install_built and done_in.

bin="$prefix/bin"
logs="$prefix/logs"
mkdir -p "$bin" "$logs"

# One build of a cache at a time: a second run (another terminal, a parallel test run)
# waits here and then finds the binaries cached, instead of building the same staging
# and source directories under the first one's feet.
exec 9>"$prefix/.lock"
if ! flock -n 9; then
  printf '[%s] waiting for another build of %s\n' "$tag" "$prefix" >&2
  flock 9
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf '[%s] %s\n' "$tag" "$*" >&2; }

# The step running in the background, if any. A non-interactive shell starts
# background jobs with SIGINT ignored, so a Ctrl-C would stop this script but leave
# `go build` running: pass it on as SIGTERM.
child=""
on_signal() {
  if [[ -n "$child" ]]; then kill -TERM "$child" 2>/dev/null || true; fi
  log "interrupted"
  exit 130
}
trap on_signal INT TERM

# run COMPONENT STEP CMD...: runs CMD with output in the component's log, printing
# elapsed time every 30 s so a long cold build visibly makes progress.
run() {
  local component="$1" step="$2"; shift 2
  local logfile="$logs/$component.log" start=$SECONDS
  printf '\n== %s: %s\n$ %s\n' "$component" "$step" "$*" >>"$logfile"
  "$@" >>"$logfile" 2>&1 9>&- &  # the build lock stays with this script
  local pid=$!
  child=$pid
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if (( (SECONDS - start) % 30 < 2 && SECONDS - start >= 30 )); then
      log "$component: $step ... $((SECONDS - start))s"
    fi
  done
  local ok=0
  wait "$pid" || ok=$?
  child=""
  if (( ok != 0 )); then
    log "FAILED: $component, step '$step' after $((SECONDS - start))s; log: $logfile"
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  printf -- '-- %s: %s took %ss\n' "$component" "$step" "$((SECONDS - start))" >>"$logfile"
}

# done_in COMPONENT START: reports (and logs, so the numbers stay in the cache) the
# component's total build time.
done_in() {
  local component="$1" start="$2"
  log "$component: done in $((SECONDS - start))s"
  printf '== %s: done in %ss (%s)\n' "$component" "$((SECONDS - start))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$logs/$component.log"
}

# cached COMPONENT RECIPE PATH...: whether every path (a binary, or a directory) is in
# bin and was built by RECIPE.
cached() {
  local component="$1" recipe="$2" p; shift 2
  [[ -f "$bin/.$component.recipe" && "$(<"$bin/.$component.recipe")" == "$recipe" ]] || return 1
  for p in "$@"; do [[ -x "$bin/$p" ]] || return 1; done
}

# install_built STAGE COMPONENT RECIPE: moves the binaries built in STAGE into bin,
# then stamps the recipe. A rename within one file system is atomic, so an interrupted
# build never leaves a truncated binary that `cached` would take for a cached one.
install_built() {
  local stage="$1" component="$2" recipe="$3" f
  for f in "$stage"/*; do mv -f "$f" "$bin/"; done
  rmdir "$stage"
  printf '%s' "$recipe" >"$bin/.$component.recipe"
}
