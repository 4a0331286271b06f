#pragma once

// DCMTK can throw out of its parsers. 3.6.7 reads every item of a Directory Record Sequence
// (0004,1220), in any data set it reads (a file, a DIMSE command set, a peer's data set), as a
// directory record and "corrects" its record type with DcmByteString::verify(OFTrue), which throws
// std::out_of_range for a last value longer than 16 bytes (fixed upstream in 2024, after 3.6.7).
// An exception that leaves one of our threads ends dirgwd, and one C-ECHO from any host that can
// reach the port could do that. So every call that has DCMTK read bytes from outside goes through
// dcmtk_guard(): an exception becomes that call's failed OFCondition, the caller fails that object
// or association alone (an association is aborted: DCMTK's state in it is unknown), and the
// process lives. The pre-scan still refuses the known case before DCMTK sees a file
// (docs/hostile-input.md); this is the net for what no one has found yet.
//
// Header-only: used by the libraries that link dirgw_dcmtk.

#include <dcmtk/config/osconfig.h>
#include <dcmtk/ofstd/ofcond.h>

#include <exception>
#include <new>
#include <string>
#include <utility>

namespace dirgw {

// OFCondition module number of our own conditions (DCMTK's modules use 1-2000 and reserve
// 1024-65535 for applications).
inline constexpr unsigned short kDcmtkGuardModule = 1024 + 0x6477;  // "dw"
inline constexpr unsigned short kDcmtkThrew = 1;

// Runs f (returning OFCondition); an exception out of it becomes an error condition whose text
// says what was thrown. The text comes from the C++ library or DCMTK, never from a value.
template <class F>
OFCondition dcmtk_guard(F&& f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (const std::bad_alloc&) {
    return OFCondition(kDcmtkGuardModule, kDcmtkThrew, OF_error,
                       "DICOM library failed: out of memory while reading");
  } catch (const std::exception& e) {
    try {
      std::string what = e.what();
      if (what.size() > 160) what.resize(160);
      return OFCondition(kDcmtkGuardModule, kDcmtkThrew, OF_error,
                         ("DICOM library failed: exception while reading (" + what + ")").c_str());
    } catch (...) {
      return OFCondition(kDcmtkGuardModule, kDcmtkThrew, OF_error,
                         "DICOM library failed: exception while reading");
    }
  } catch (...) {
    return OFCondition(kDcmtkGuardModule, kDcmtkThrew, OF_error,
                       "DICOM library failed: unknown exception while reading");
  }
}

// Whether cond came from an exception caught by dcmtk_guard.
inline bool dcmtk_threw(const OFCondition& cond) {
  return cond.module() == kDcmtkGuardModule && cond.code() == kDcmtkThrew;
}

}  // namespace dirgw
