#!/usr/bin/env bash
# tests/run_suite.sh: what `make test` runs once its build directory is configured.
#
#   tests/run_suite.sh BUILD_DIR [JOBS]
#
# Two lanes side by side:
#   integration  in the foreground: build what the integration tests run (the target
#                dirgw_integration_deps: dirgwd, the CLI, the study generator, the DIMSE test
#                driver), then ctest -L integration, JOBS at a time.
#   background   at nice 19, in whatever CPU the foreground leaves: build the fuzz targets with
#                clang (a build directory of their own, so from the start: the end of the
#                foreground's build links one program at a time and left a core idle for about
#                80 s), then, once the foreground's build is done, build the unit tests, run them
#                (-L unit) and run the fuzz targets (-L fuzz), each JOBS at a time. Its output
#                goes to BUILD_DIR/background.log and is printed when the integration lane ends;
#                a failure is announced at once.
# Measured in clean clones (2026-12-04): on a shared, busy machine the integration tests' ASan
# processes, Orthanc and the package test's build took most of both CPUs, the background lane
# ended a few minutes after the integration lane, and the whole took 27.1-29.7 min (29.6 with
# the unit tests first and the fuzz build alone). On a quiet machine it took 16.4-16.7 min, the
# background lane done before the integration lane (README, "make test").
# The integration lane runs its ctest from BUILD_DIR/tests/integration, so that the two ctest runs
# keep their own Testing/ directories (LastTest.log, cost data). An interrupted run stops both.
# Exit: 0 when both lanes passed, 1 otherwise.
set -uo pipefail

if [ "${1:-}" = --background ]; then
  # The background lane (below: nice 19, a process group of its own, fd 3 the caller's stderr).
  BUILD=${2:?}
  JOBS=${3:?}
  CALLER=${4:?}
  DEPS_BUILT=${5:?}  # the caller creates it once what the integration tests run is built
  # setsid gave this lane a session of its own, and with the kernel's autogroup scheduling
  # (sched_autogroup_enabled, on in Debian's kernels) a session is one scheduling group: nice 19
  # then only ranks this lane's processes among themselves, and the lane as a whole gets as much
  # CPU as the integration tests. The group's own nice value makes it yield to them.
  echo 19 2> /dev/null > /proc/self/autogroup || true
  started=$(date +%s)
  lane() {
    set -e
    # The clang build has a directory of its own (BUILD/fuzz-clang), so it starts beside the
    # build of what the integration tests run; the unit tests share that build's tree and wait
    # for it (the caller creates $DEPS_BUILT once it is done).
    echo "== fuzz targets: clang build"
    (cd "$BUILD" && JOBS=$JOBS ctest --output-on-failure --timeout 1200 -L fuzz -R '^fuzz_build$')
    echo "== waiting for the build of what the integration tests run"
    while [ ! -e "$DEPS_BUILT" ]; do
      kill -0 "$CALLER" 2> /dev/null || { echo "run_suite: the caller is gone"; exit 1; }
      sleep 1
    done
    echo "== unit tests: build"
    cmake --build "$BUILD" -j"$JOBS"
    echo "== unit tests: run"
    (cd "$BUILD" && ctest --output-on-failure --timeout 1200 -j"$JOBS" -L unit)
    echo "== fuzz targets: runs"
    # Without their fixture's setup: that is the clang build above (run again, it took 12 s
    # to find nothing to do). Each run still skips (77) without clang.
    (cd "$BUILD" && JOBS=$JOBS ctest --output-on-failure --timeout 1200 -j"$JOBS" -L fuzz \
      -E '^fuzz_build$' --fixture-exclude-setup fuzz_clang)
  }
  (lane)
  rc=$?
  [ $rc = 0 ] || echo "run_suite: the background lane (unit build and tests, fuzz) FAILED after" \
    "$(($(date +%s) - started)) s; its output follows when the integration tests end" >&3
  exit $rc
fi

BUILD=${1:?usage: tests/run_suite.sh BUILD_DIR [JOBS]}
JOBS=${2:-$(nproc)}
BUILD=$(cd "$BUILD" && pwd)
LOG="$BUILD/background.log"

say() { echo "run_suite: $*"; }

started=$(date +%s)
DEPS_BUILT="$BUILD/.run_suite-deps-built"
rm -f "$DEPS_BUILT"
# setsid: its own process group, so that an interrupt can stop all of it (a background job of a
# script ignores SIGINT).
setsid nice -n 19 bash "${BASH_SOURCE[0]}" --background "$BUILD" "$JOBS" $$ "$DEPS_BUILT" 3>&2 > "$LOG" 2>&1 &
bg_pid=$!
trap 'kill -TERM -- -"$bg_pid" 2> /dev/null; exit 130' INT TERM
say "the fuzz targets' clang build in the background ($LOG)"

say "building what the integration tests run (-j$JOBS)"
if ! cmake --build "$BUILD" -j"$JOBS" --target dirgw_integration_deps; then
  kill -TERM -- -"$bg_pid" 2> /dev/null
  exit 1
fi
touch "$DEPS_BUILT"
say "built after $(($(date +%s) - started)) s"

say "integration tests, $JOBS at a time; unit build and tests, fuzz in the background ($LOG)"
(cd "$BUILD/tests/integration" && ctest --output-on-failure --timeout 1200 -j"$JOBS" -L integration)
integration_rc=$?
say "integration lane done after $(($(date +%s) - started)) s, the build included (exit $integration_rc)"

if kill -0 "$bg_pid" 2> /dev/null; then
  say "waiting for the background lane"
fi
wait "$bg_pid"
background_rc=$?
trap - INT TERM
say "background lane done after $(($(date +%s) - started)) s (exit $background_rc); its output:"
cat "$LOG"

if [ $integration_rc != 0 ] || [ $background_rc != 0 ]; then
  say "FAILED: integration lane exit $integration_rc, background lane exit $background_rc"
  exit 1
fi
say "all passed"
