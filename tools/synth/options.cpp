#include "options.h"

#include <charconv>
#include <limits>
#include <string_view>
#include <vector>

#include "identity.h"

namespace dirgw::synth {
namespace {

constexpr std::uint64_t kMaxPixelBytes = 0xFFFFFFFEULL;  // 32-bit value length, even

struct Raw {
  std::optional<std::string> out, modality, instances, rows, cols, frames, seed, study_uid,
      patient_index, transfer_syntax, manifest, health_number, accession;
};

std::optional<std::string>* slot(Raw& raw, std::string_view name) {
  if (name == "--out") return &raw.out;
  if (name == "--modality") return &raw.modality;
  if (name == "--instances") return &raw.instances;
  if (name == "--rows") return &raw.rows;
  if (name == "--cols") return &raw.cols;
  if (name == "--frames") return &raw.frames;
  if (name == "--seed") return &raw.seed;
  if (name == "--study-uid") return &raw.study_uid;
  if (name == "--patient-index") return &raw.patient_index;
  if (name == "--transfer-syntax") return &raw.transfer_syntax;
  if (name == "--manifest") return &raw.manifest;
  if (name == "--health-number") return &raw.health_number;
  if (name == "--accession") return &raw.accession;
  return nullptr;
}

ParseOutcome usage_error(std::string message) {
  ParseOutcome outcome;
  outcome.kind = ParseOutcome::Kind::kUsageError;
  outcome.error = std::move(message);
  return outcome;
}

// Strict unsigned decimal: no sign, no spaces, no trailing junk.
std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t min,
                                          std::uint64_t max) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

// Short-string VRs (SH, LO): no backslash (value separator) and no control characters.
bool is_plain_text(std::string_view text, std::size_t max_len) {
  if (text.size() > max_len) return false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

// argv into Raw: nullopt and `outcome` set when the answer is help or a usage error.
std::optional<Raw> collect(int argc, const char* const* argv, ParseOutcome& outcome) {
  Raw raw;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      outcome.kind = ParseOutcome::Kind::kHelp;
      return std::nullopt;
    }
    std::string_view name = arg;
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
    }
    std::optional<std::string>* target = slot(raw, name);
    if (target == nullptr) {
      outcome = usage_error("unknown option '" + std::string(arg) + "'");
      return std::nullopt;
    }
    if (!value) {
      if (i + 1 >= argc) {
        outcome = usage_error("option " + std::string(name) + " needs a value");
        return std::nullopt;
      }
      value = argv[++i];
    }
    *target = std::move(value);  // the last occurrence wins, as scripts append overrides
  }
  return raw;
}

// The numeric options over the profile's defaults, and the pixel data size they make.
std::optional<std::string> apply_numbers(const Raw& raw, Options& o) {
  struct IntOption {
    const char* name;
    const std::optional<std::string>& text;
    std::uint64_t min, max;
    std::uint64_t* result;
  };
  std::uint64_t instances = 0, rows = 0, cols = 0, frames = 0, seed = 0, patient_index = 0;
  const std::vector<IntOption> ints = {
      {"--instances", raw.instances, 1, kMaxInstances, &instances},
      {"--rows", raw.rows, 1, 65535, &rows},
      {"--cols", raw.cols, 1, 65535, &cols},
      {"--frames", raw.frames, 1, 999999, &frames},
      {"--seed", raw.seed, 0, std::numeric_limits<std::uint32_t>::max(), &seed},
      {"--patient-index", raw.patient_index, 0, kMaxPatientIndex, &patient_index},
  };
  for (const IntOption& opt : ints) {
    if (!opt.text) continue;
    const auto parsed = parse_number(*opt.text, opt.min, opt.max);
    if (!parsed) {
      return std::string(opt.name) + " must be an integer in [" + std::to_string(opt.min) + ", " +
             std::to_string(opt.max) + "] (got '" + *opt.text + "')";
    }
    *opt.result = *parsed;
  }
  if (raw.instances) o.instances = static_cast<int>(instances);
  if (raw.rows) o.rows = static_cast<int>(rows);
  if (raw.cols) o.cols = static_cast<int>(cols);
  if (raw.frames) {
    if (!o.profile.multi_frame && frames != 1) {
      return "--frames applies only to --modality US (single-frame IOD for " +
             std::string(o.profile.cli_name) + ")";
    }
    o.frames = static_cast<int>(frames);
  }
  if (raw.seed) o.seed = static_cast<std::uint32_t>(seed);
  if (raw.patient_index) o.patient_index = static_cast<std::uint32_t>(patient_index);

  const std::uint64_t pixel_bytes =
      std::uint64_t(o.rows) * std::uint64_t(o.cols) * std::uint64_t(o.profile.samples_per_pixel) *
      std::uint64_t(o.profile.bits_allocated / 8) * std::uint64_t(o.frames);
  if (pixel_bytes + (pixel_bytes & 1) > kMaxPixelBytes) {
    return "rows x cols x frames is too large: pixel data would be " + std::to_string(pixel_bytes) +
           " bytes, the limit is 4 GiB";
  }
  return std::nullopt;
}

// The text options: study UID, transfer syntax, manifest, health number, accession.
std::optional<std::string> apply_texts(const Raw& raw, Options& o) {
  if (raw.study_uid) {
    if (!is_valid_uid(*raw.study_uid)) {
      return "--study-uid '" + *raw.study_uid +
             "' is not a valid UID (digits and dots, <= 64 chars, no leading zeros)";
    }
    o.study_uid = raw.study_uid;
  }
  if (raw.transfer_syntax) {
    if (*raw.transfer_syntax == "explicit") {
      o.transfer_syntax = TransferSyntax::kExplicit;
    } else if (*raw.transfer_syntax == "implicit") {
      o.transfer_syntax = TransferSyntax::kImplicit;
    } else if (*raw.transfer_syntax == "deflated") {
      o.transfer_syntax = TransferSyntax::kDeflated;
    } else {
      return "--transfer-syntax must be explicit, implicit or deflated (got '" +
             *raw.transfer_syntax + "')";
    }
  }
  if (raw.manifest) {
    if (raw.manifest->empty()) return "--manifest needs a file name";
    o.manifest = *raw.manifest;
  }
  if (raw.health_number) {
    if (*raw.health_number == "none") {
      o.health_number.mode = HealthNumber::Mode::kNone;
    } else if (!is_plain_text(*raw.health_number, 64)) {
      return "--health-number must fit a LO value: <= 64 chars, no backslash";
    } else {
      o.health_number.mode = HealthNumber::Mode::kGiven;
      o.health_number.given = *raw.health_number;
    }
  }
  if (raw.accession) {
    if (!is_plain_text(*raw.accession, 16)) {
      return "--accession must fit a SH value: <= 16 chars, no backslash";
    }
    o.accession = raw.accession;
  }
  return std::nullopt;
}

}  // namespace

ParseOutcome parse_options(int argc, const char* const* argv) {
  ParseOutcome outcome;
  const std::optional<Raw> raw = collect(argc, argv, outcome);
  if (!raw) return outcome;
  if (!raw->out || raw->out->empty()) return usage_error("--out DIR is required");
  if (!raw->modality) return usage_error("--modality is required");

  Options o;
  o.out = *raw->out;
  const std::optional<Profile> profile = find_profile(*raw->modality);
  if (!profile) {
    return usage_error("--modality must be one of CT, MR, CR, US, DX, SC (got '" + *raw->modality +
                       "')");
  }
  o.profile = *profile;
  o.instances = o.profile.default_instances;
  o.rows = o.profile.default_rows;
  o.cols = o.profile.default_cols;
  o.frames = o.profile.default_frames;
  if (auto error = apply_numbers(*raw, o)) return usage_error(std::move(*error));
  if (auto error = apply_texts(*raw, o)) return usage_error(std::move(*error));

  outcome.kind = ParseOutcome::Kind::kRun;
  outcome.options = std::move(o);
  return outcome;
}

std::string usage_text() {
  return R"(Usage: dirgw-synth --out DIR --modality CT|MR|CR|US|DX|SC [options]

Writes synthetic DICOM Part-10 files (made-up patients, realistic attributes and
image content) as DIR/<MODALITY>_<5-digit instance number>.dcm, one series per
run, and prints the Study Instance UID on stdout.

Required:
  --out DIR                 output directory, created if missing
  --modality M              CT  CT Image Storage, chest phantom, 16-bit signed
                            MR  MR Image Storage, head phantom, 12-bit in 16
                            CR  Computed Radiography, chest PA, 12-bit in 16
                            US  Ultrasound Multi-frame, cine loop, 8-bit
                            DX  Digital X-Ray For Presentation, chest PA, 12-bit
                            SC  Secondary Capture, RGB chart, 8-bit x 3

Options:
  --instances N             number of instances, 1..99999
                            (default: CT 20, MR 20, CR 1, US 1, DX 1, SC 1)
  --rows R, --cols C        image size, 1..65535 (default: CT 512x512, MR 256x256,
                            CR/DX 2500x2048, US 480x640, SC 512x512)
  --frames F                frames per instance, US only (default 10)
  --seed S                  0..4294967295 (default 1); same seed and options give
                            the same UIDs and byte-identical files
  --study-uid UID           use this Study Instance UID (default derived from seed,
                            patient index and modality); runs sharing it form one
                            study with consistent study-level attributes
  --patient-index K         which synthetic patient, 0..999999 (default 0)
  --transfer-syntax T       explicit (default), implicit or deflated little endian
  --manifest FILE           append one JSON line describing the study written
  --health-number HN|none   Ontario health number to store in Other Patient IDs
                            (default: a generated one with a valid check digit;
                            HN is stored as given, even if invalid; none omits it)
  --accession ACC           Accession Number (default "ACC" + 8 digits)
  --help                    print this text

Exit status: 0 success, 1 failure (e.g. cannot write), 2 usage error.
)";
}

}  // namespace dirgw::synth
