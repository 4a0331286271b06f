#!/usr/bin/env bash
# tests/fuzz/run.sh: build the libFuzzer targets with clang (libFuzzer + ASan + UBSan) in a build
# directory of their own and run each for a bounded time.
#
#   tests/fuzz/run.sh [--seconds N] [--target NAME]... [--build-dir DIR] [--build-only|--no-build]
#
#   --seconds N     how long each target fuzzes (default: $FUZZ_SECONDS or 60)
#   --target NAME   prescan, intake, policy, stow, config, folder, pdu_watch, hl7, reports
#                   (repeatable; default: all)
#   --build-dir DIR the clang build (default: build-fuzz/ in the repository)
#   --build-only    configure and build, do not fuzz      --no-build  fuzz what is built
#
# A finding (crash, sanitizer report, broken invariant, time-out, out-of-memory, leak) is copied
# into tests/data/regressions/<target>/, where the replay tests of `make test` run it from then on.
# Exit: 0 nothing found, 1 finding, 2 usage or build error, 77 clang with libFuzzer not available
# (CTest reports that as skipped).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECS=${FUZZ_SECONDS:-60}
BUILD_DIR=${FUZZ_BUILD_DIR:-$REPO/build-fuzz}
JOBS=${JOBS:-$(nproc)}
CC_FUZZ=${FUZZ_CC:-clang}
CXX_FUZZ=${FUZZ_CXX:-clang++}
ALL_TARGETS=(prescan intake stow config folder pdu_watch policy)
# The HL7 v2 / MLLP codec has a target once its module exists (tests/fuzz/CMakeLists.txt).
if [ -f "$REPO/gateway/ingest/hl7_mllp/hl7.h" ] && grep -qs hl7_mllp "$REPO/gateway/ingest/CMakeLists.txt"; then
  ALL_TARGETS+=(hl7)
fi
# The ORU / MDM -> report mapping (issue 12).
[ -f "$REPO/gateway/ingest/reports/report_object.h" ] && ALL_TARGETS+=(reports)
TARGETS=()
DO_BUILD=1
DO_RUN=1

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=${2:?}; shift 2 ;;
    --target) TARGETS+=("${2:?}"); shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --build-only) DO_RUN=0; shift ;;
    --no-build) DO_BUILD=0; shift ;;
    --jobs) JOBS=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
case "$SECS" in ''|*[!0-9]*) echo "run.sh: --seconds needs a whole number" >&2; exit 2 ;; esac
for t in "${TARGETS[@]}"; do
  case " ${ALL_TARGETS[*]} " in *" $t "*) ;; *) echo "run.sh: unknown target $t (${ALL_TARGETS[*]})" >&2; exit 2 ;; esac
done
mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)

skip() {
  echo "SKIP: $*"
  echo "SKIP: the fuzz targets did not run. They need clang and libFuzzer: on Debian 12,"
  echo "SKIP:   apt-get install clang libclang-rt-14-dev    (make deps installs them)"
  exit 77
}

# --- is there a clang that links libFuzzer? ---------------------------------------------------
command -v "$CXX_FUZZ" >/dev/null 2>&1 || skip "$CXX_FUZZ not found"
command -v "$CC_FUZZ" >/dev/null 2>&1 || skip "$CC_FUZZ not found"
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  > "$probe_dir/probe.cpp"
if ! "$CXX_FUZZ" -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cpp" -o "$probe_dir/probe" \
     > "$probe_dir/probe.log" 2>&1; then
  sed 's/^/  /' "$probe_dir/probe.log" | head -5
  skip "$CXX_FUZZ cannot link -fsanitize=fuzzer (libFuzzer is in libclang-rt-14-dev)"
fi

# --- build (serialised: CTest may start several of us) ----------------------------------------
exec 9>"$BUILD_DIR/.run.lock"
flock 9
if [ "$DO_BUILD" = 1 ]; then
  if ! grep -q 'tests/fuzz/fuzz.cmake' "$REPO/CMakeLists.txt"; then
    echo "run.sh: the top-level CMakeLists.txt does not include tests/fuzz/fuzz.cmake;" >&2
    echo "run.sh: add after the tests block:  include(tests/fuzz/fuzz.cmake OPTIONAL)" >&2
    exit 2
  fi
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    # -O1: the usual speed/precision trade-off for ASan fuzzing. -Werror off: a warning clang
    # has and g++ has not must not stop the fuzzing (the g++ build keeps -Werror).
    cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" \
      -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DCMAKE_CXX_FLAGS=-O1 \
      -DDIRGW_SANITIZE=ON -DDIRGW_LEAN_DEBUG=ON -DDIRGW_FUZZ=ON -DDIRGW_BUILD_TESTS=OFF -DDIRGW_WERROR=OFF \
      > "$BUILD_DIR/configure.log" 2>&1 || { tail -30 "$BUILD_DIR/configure.log"; exit 2; }
  else
    # Again, so that a target added since the tree was configured exists (make does not
    # regenerate for a target it does not know).
    cmake "$BUILD_DIR" > "$BUILD_DIR/configure.log" 2>&1 ||
      { tail -30 "$BUILD_DIR/configure.log"; exit 2; }
  fi
  bins=()
  for t in "${TARGETS[@]}"; do bins+=(--target "fuzz_$t"); done
  echo "fuzz: building ${TARGETS[*]} with $CXX_FUZZ in $BUILD_DIR"
  cmake --build "$BUILD_DIR" "${bins[@]}" -j"$JOBS" > "$BUILD_DIR/build.log" 2>&1 ||
    { grep -E 'error|Error' "$BUILD_DIR/build.log" | head -30; exit 2; }

  # Seeds: generated DICOM objects (valid ones and the small hostile cases), the committed STOW
  # answers and configuration snippets, and every regression file.
  rm -rf "$BUILD_DIR/seeds"
  mkdir -p "$BUILD_DIR/seeds/config"
  python3 "$REPO/tests/tools/make_bad_inputs.py" --fuzz-seeds "$BUILD_DIR/seeds/dicom" \
    --max-seed-size 8192 --small-only > /dev/null
  cp "$REPO/config/dirgw.yaml" "$BUILD_DIR/seeds/config/" 2>/dev/null || true
fi
[ "$DO_RUN" = 1 ] || { echo "fuzz: built"; exit 0; }

# --- run ---------------------------------------------------------------------------------------
findings=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "run.sh: $bin is not built (run without --no-build)" >&2; exit 2; }
  corpus="$BUILD_DIR/corpus/$t"
  artifacts="$BUILD_DIR/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  add_seed() { [ -d "$1" ] && seeds+=("$1") || true; }
  case "$t" in
    prescan|intake|policy) add_seed "$BUILD_DIR/seeds/dicom"; max_len=16384 ;;
    stow) add_seed "$REPO/tests/data/stow"; max_len=16384 ;;
    config) add_seed "$REPO/tests/data/config"; add_seed "$BUILD_DIR/seeds/config"; max_len=8192 ;;
    hl7) add_seed "$REPO/tests/data/hl7"; max_len=8192 ;;
    reports) add_seed "$REPO/tests/data/hl7/reports"; max_len=8192 ;;
    folder) add_seed "$REPO/tests/data/folder"; max_len=16384 ;;
    pdu_watch) add_seed "$REPO/tests/data/pdu_watch"; max_len=65536 ;;
  esac
  add_seed "$REPO/tests/data/regressions/$t"
  dict=()
  case "$t" in prescan|intake|policy) dname=dicom ;; reports) dname=hl7 ;; *) dname=$t ;; esac
  [ -f "$REPO/tests/fuzz/dicts/$dname.dict" ] && dict=(-dict="$REPO/tests/fuzz/dicts/$dname.dict")
  log="$BUILD_DIR/fuzz-$t.log"
  echo "fuzz: $t for ${SECS}s (log: $log)"
  set +e
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2560 -max_len="$max_len" \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" "${seeds[@]}" \
      > "$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  last=$({ grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" || true; } | tail -1 |
         sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+\/[0-9]+[a-zA-Z]*).*/\1/')
  found=("$artifacts"/*)
  [ -e "${found[0]}" ] || found=()
  if [ "$rc" != 0 ] || [ ${#found[@]} -gt 0 ]; then
    findings=$((findings + 1))
    echo "FINDING in $t (exit $rc):"
    { grep -E 'ERROR: |FUZZ_CHECK|runtime error|SUMMARY|Test unit written' "$log" || true; } |
      head -12 | sed 's/^/  /'
    mkdir -p "$REPO/tests/data/regressions/$t"
    for f in "${found[@]}"; do
      cp "$f" "$REPO/tests/data/regressions/$t/"
      echo "  kept as tests/data/regressions/$t/$(basename "$f")"
      echo "  reproduce: $bin $REPO/tests/data/regressions/$t/$(basename "$f")"
      rm -f "$f"
    done
  fi
  n_found=${#found[@]}
  [ "$rc" = 0 ] || [ "$n_found" -gt 0 ] || n_found=1  # a failure without an artifact still counts
  echo "fuzz $t: ${SECS}s, ${runs:-?} runs, ${last:-no stats}, findings: $n_found"
done
[ "$findings" = 0 ] || { echo "fuzz: $findings target(s) with findings"; exit 1; }
echo "fuzz: no findings"
