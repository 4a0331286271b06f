// libFuzzer target: the policy stage's own code on what the pre-scan lets through, as the stage
// runs it after DCMTK's parse: validation against the Ontario DIR profile, coercion of the
// facility's identifiers, and de-identification (the screen, then PS3.15 Annex E's Basic Profile,
// with no option or with every option, chosen by the input's length). These walk every element
// and sequence of the object with code of ours, so hostile structure (deep or odd sequences,
// private blocks without creators, UN and unknown VRs, odd lengths, character sets) reaches them.
// Checks besides crashes, hangs and sanitizer reports:
//   - validation's finding codes and coercion's and de-identification's error details are our
//     own words (printable ASCII);
//   - a de-identified data set says Patient Identity Removed YES, and written back in its
//     transfer syntax it passes the structural pre-scan again (what a destination receives is as
//     well-formed as what came in).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ingest/prescan/prescan.h"
#include "policy/coerce/coerce.h"
#include "policy/deid/deid.h"
#include "policy/deid/key.h"
#include "policy/validate/validate.h"

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/oflog/oflog.h"
// clang-format on

namespace policy = dirgw::policy;
namespace deid = dirgw::policy::deid;
using dirgw::fuzz::printable_ascii;

namespace {

constexpr Uint32 kMaxReadLength = 4096;

std::unique_ptr<DcmFileFormat> parse(const std::uint8_t* data, std::size_t size) {
  DcmInputBufferStream in;
  in.setBuffer(data, static_cast<offile_off_t>(size));
  in.setEos();
  auto file = std::make_unique<DcmFileFormat>();
  file->transferInit();
  const OFCondition cond = file->read(in, EXS_Unknown, EGL_noChange, kMaxReadLength);
  file->transferEnd();
  if (cond.bad()) return nullptr;
  file->getDataset()->loadAllDataIntoMemory();
  return file;
}

// The object written back in its own transfer syntax; empty when DCMTK cannot write it.
std::string written(DcmFileFormat& file) {
  DcmDataset& ds = *file.getDataset();
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  if (xfer == EXS_Unknown || !ds.canWriteXfer(xfer)) return {};
  static Uint8 chunk[1 << 16];
  std::string out;
  DcmOutputBufferStream os(chunk, sizeof chunk);
  file.transferInit();
  OFCondition cond = EC_Normal;
  for (int i = 0; i < 4096; ++i) {  // bounded: a stuck writer is a finding (time-out), not a loop
    cond = file.write(os, xfer, EET_ExplicitLength, nullptr, EGL_recalcGL, EPD_noChange, 0, 0, 0,
                      EWM_updateMeta);
    void* buf = nullptr;
    offile_off_t len = 0;
    os.flushBuffer(buf, len);
    out.append(static_cast<const char*>(buf), static_cast<std::size_t>(len));
    if (cond != EC_StreamNotifyClient) break;
  }
  file.transferEnd();
  // A deflated syntax keeps the end of its compressed stream until the stream is flushed.
  for (int i = 0; cond.good() && i < 4096; ++i) {
    os.flush();
    void* buf = nullptr;
    offile_off_t len = 0;
    os.flushBuffer(buf, len);
    out.append(static_cast<const char*>(buf), static_cast<std::size_t>(len));
    if (os.isFlushed()) break;
  }
  return cond.good() ? out : std::string();
}

deid::DeidOptions every_option() {
  deid::DeidOptions o;
  o.safe_private = deid::standard_safe_private();
  o.retain_device_identity = true;
  o.retain_institution_identity = true;
  o.retain_patient_characteristics = true;
  o.dates = deid::LongitudinalDates::kRetainModified;
  o.clean_descriptors = true;
  o.descriptor_allow_list = {"CHEST PA", "HEAD"};
  o.clean_structured_content = true;
  o.clean_graphics = true;
  o.burned_in_allow = {{"", "US", "", "", true}};
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  FUZZ_CHECK(dcmDataDict.isDictionaryLoaded(), "DCMTK data dictionary not loaded (DCMDICTPATH?)");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (!dirgw::ingest::prescan_bytes(bytes, dirgw::ingest::PrescanLimits{})) return 0;

  // Validation.
  if (auto file = parse(data, size)) {
    const auto report =
        policy::validate_dataset(*file->getDataset(), policy::ontario_dir_profile());
    for (const auto& f : report.findings) FUZZ_CHECK(printable_ascii(f.code), "finding code");
    (void)policy::decide(report);
  }

  // Coercion, with a lookup that knows every MRN.
  if (auto file = parse(data, size)) {
    policy::CoercionRules rules;
    rules.facility = "Lakeside General";
    rules.institution_name = "Lakeside General Hospital";
    rules.issuer_of_patient_id = "LGH";
    rules.fill_health_number_from_mrn = true;
    auto coerced = policy::coerce_dataset(
        *file->getDataset(), rules,
        [](const std::string&, const std::string&) -> std::optional<std::string> {
          return std::string("1234567897");
        },
        std::chrono::system_clock::time_point{});
    if (!coerced) FUZZ_CHECK(printable_ascii(coerced.error().detail), "coercion error detail");
  }

  // De-identification: the screen, then the profile, as the stage does for a research
  // destination (no option, or every option).
  static const auto key = deid::Key::from_bytes(std::string(32, 'k'));
  FUZZ_CHECK(key.ok(), "key");
  if (auto file = parse(data, size)) {
    const deid::DeidOptions options = size % 2 == 0 ? deid::DeidOptions{} : every_option();
    DcmDataset& ds = *file->getDataset();
    const policy::Decision screened = deid::screen_dataset(ds, options);
    for (const auto& r : screened.reasons) FUZZ_CHECK(printable_ascii(r), "screen reason");
    auto report = deid::deidentify_dataset(ds, options, *key);
    if (!report) {
      FUZZ_CHECK(printable_ascii(report.error().detail), "de-identification error detail");
      return 0;
    }
    OFString removed;
    ds.findAndGetOFString(DCM_PatientIdentityRemoved, removed);
    FUZZ_CHECK(removed == "YES", "de-identified without Patient Identity Removed YES");
    const std::string out = written(*file);
    if (!out.empty()) {
      dirgw::ingest::PrescanLimits limits;
      limits.compare_meta_uids = false;
      auto again = dirgw::ingest::prescan_bytes(out, limits);
      if (!again) std::fprintf(stderr, "pre-scan: %s\n", again.error().detail.c_str());
      FUZZ_CHECK(again.ok(), "a de-identified object fails the pre-scan");
    }
  }
  return 0;
}
