# Fuzzing, included from the top-level CMakeLists.txt (one line, after the tests):
#   include(tests/fuzz/fuzz.cmake OPTIONAL)
#
# Two uses of tests/fuzz/CMakeLists.txt:
#   - the clang build that tests/fuzz/run.sh configures (-DDIRGW_FUZZ=ON): the libFuzzer targets
#     fuzz_<name>, built with -fsanitize=fuzzer,address,undefined;
#   - the ordinary test build (g++, DIRGW_BUILD_TESTS=ON): replay_<name>, the same targets with a
#     plain main() that replays tests/data/regressions and the seeds (CTest label "unit"), and one
#     CTest per target (label "fuzz") that runs run.sh for 60 s in its own clang build — skipped,
#     not failed, where clang with libFuzzer is missing.
option(DIRGW_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only; see tests/fuzz/run.sh)" OFF)
if(DIRGW_FUZZ OR DIRGW_BUILD_TESTS)
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR} ${PROJECT_BINARY_DIR}/tests/fuzz)
endif()
