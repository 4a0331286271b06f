// What the fuzz targets share: an invariant check that fails loudly (libFuzzer and the replay
// driver both report an abort as a finding), and small helpers.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

// A broken invariant is a finding, like a crash: print why and abort.
#define FUZZ_CHECK(cond, what)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, what, \
                   #cond);                                                                    \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace dirgw::fuzz {

// Our own words only: printable ASCII. A detail or message that carries bytes of the input
// would show up here as a control or non-ASCII character sooner or later.
inline bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

}  // namespace dirgw::fuzz
