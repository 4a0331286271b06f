// The gateway's configuration: one YAML file loaded into typed, immutable values.
// load() validates everything at once and reports every error with its key, its line and
// what is allowed, so `dirgw config check` shows the whole list in one go.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/folders_config.h"
#include "config/priors_config.h"
#include "config/pull_config.h"

namespace dirgw::config {

using Duration = std::chrono::milliseconds;

// DICOM TLS on the SCP (DCMTK dcmtls, BCP 195 non-downgrading: TLS 1.2 and later).
struct DicomTls {
  bool enabled = false;                            // a tls: block with a certificate
  std::filesystem::path certificate, private_key;  // PEM; the key not group/world-readable
  std::filesystem::path ca;                        // PEM bundle trusted for client certificates
  bool require_client_certificate = false;
};

// Who may call as one AE title: from which addresses and, with TLS, with which certificate.
struct CallerBinding {
  std::string ae_title;
  std::vector<std::string> networks;  // "10.0.0.5" or "10.0.0.0/24"; empty: any address
  std::vector<std::string> subjects;  // certificate subject, "CN=pacs1,O=Lakeside"; empty: any
};

// Every transfer syntax the receiver offers for storage unless ingest.dicom.transfer_syntaxes
// says otherwise (config/dicom_ingest.cpp; docs/ingest-dicom.md).
std::vector<std::string> default_storage_transfer_syntaxes();

struct DicomIngest {
  bool enabled = true;
  std::string ae_title = "DIRGW";
  std::string bind = "0.0.0.0";
  int port = 11112;
  std::vector<std::string> allowed_callers;  // calling AE titles; "*" admits any
  int max_associations = 8;
  std::uint32_t max_pdu = 65536;
  Duration acse_timeout{std::chrono::seconds(30)};
  Duration dimse_timeout{std::chrono::seconds(60)};
  std::uint64_t max_object_size = 2ull << 30;
  // Sequence items plus encapsulated pixel fragments in one object (PrescanLimits::max_items): a
  // whole-slide image has a fragment per tile, an enhanced MR nine items per frame.
  std::uint64_t max_items = 1000000;
  DicomTls tls;
  // Calling AE titles bound to addresses and certificate subjects; an AE listed here may call
  // only as its bindings say (see docs/dicom-tls.md).
  std::vector<CallerBinding> callers;
  // On SIGTERM: associations in progress may finish for this long, then they are aborted.
  Duration stop_grace{std::chrono::seconds(10)};
  // Offered for storage SOP classes (UIDs); the sender's order of preference decides among them.
  std::vector<std::string> transfer_syntaxes = default_storage_transfer_syntaxes();
  // Storage SOP classes accepted beyond the 1.2.840.10008.5.1.4.1.1 family and those known to
  // DCMTK and dirgw (private classes, say).
  std::vector<std::string> extra_sop_classes;
};

// ingest.hl7.reports: ORU^R01 / MDM^T02 reports made into DICOM objects of their study (issue 12;
// docs/hl7.md "Reports").
struct Hl7Reports {
  bool enabled = false;
  std::string accession_field = "filler";  // "filler" (OBR-3, TXA-15) or "placer" (OBR-2, TXA-14)
  std::string preliminary = "hold";        // a preliminary report: "hold" it, or "send" it
  std::string uid_root = "2.25";           // root of the UIDs of the objects we make
  // The character set of a report without MSH-18 whose text is not ASCII or UTF-8, e.g.
  // "8859/1"; empty: such a report is refused (AE) with the reason.
  std::string default_charset;
  // Reports waiting for their images: at most max_waiting of them, none older than
  // max_waiting_age; beyond, the oldest are expired (kept, state "expired", with the reason).
  int max_waiting = 10000;
  Duration max_waiting_age{std::chrono::hours(24 * 30)};
};

struct Hl7Ingest {
  bool enabled = false;
  std::string bind = "127.0.0.1";
  int port = 2575;
  // Where an ADT message carries the consent flag, e.g. "PD1-12" (protection indicator: Y means
  // the patient withdrew consent / asked for protection).
  std::string consent_field = "PD1-12";
  std::string consent_withdraw_value = "Y";
  std::string consent_grant_value = "N";
  int max_connections = 8;
  // A connection with nothing to say for idle_timeout is closed; a message begun must be
  // complete within message_timeout of its first byte (however slowly bytes trickle in).
  Duration idle_timeout{std::chrono::minutes(5)};
  Duration message_timeout{std::chrono::seconds(60)};
  // The largest message accepted (MLLP frame and parse): a larger one is answered AR with the
  // limit named. Reports with a PDF are the large ones (base64: 4/3 of the PDF's size).
  std::uint64_t max_message_size = std::uint64_t{1} << 20;
  // MSH-11's processing IDs taken (HL7 table 0103: P production, T training/test, D debugging);
  // another is answered AR (ERR 202) and not applied: an interface test sent to the production
  // port must not withdraw a patient's consent or file a report.
  std::vector<std::string> processing_ids{"P"};
  Hl7Reports reports;
};

struct Ingest {
  DicomIngest dicom;
  Hl7Ingest hl7;
  std::vector<FolderIngest> folders;  // watched export folders (config/folders_config.h)
  std::vector<PullSource> pull;       // PACS polled with C-FIND / C-MOVE (config/pull_config.h)
  // An SOP instance received again with different bytes: "send" the new version too, or
  // "hold" the study for a person to look at.
  std::string new_versions = "send";
};

struct Coercion {
  std::string institution_name;              // stamp Institution Name (0008,0080); empty: leave
  std::string issuer_of_patient_id;          // stamp Issuer of Patient ID (0010,0021); empty: leave
  bool fill_health_number_from_mrn = false;  // from the MRN -> health number table
  // Further attributes to stamp: "(gggg,eeee)" -> value, in file order.
  std::vector<std::pair<std::string, std::string>> set;
};

// A site's adjustments to its validation profile (docs/validation.md, "Site adjustments").
struct ValidationAdjustments {
  std::vector<std::string> allow_modalities;       // accepted besides the profile's list
  std::optional<std::uint64_t> max_private_value;  // replaces the profile's (0: no limit)
  std::vector<std::string> accept_findings;        // codes reported as warnings, not quarantined
};

struct Policy {
  Duration stable_age{std::chrono::seconds(60)};
  std::string validation_profile = "ontario-dir";  // or "none"
  ValidationAdjustments validation;
  std::string health_number_issuer = "ON";
  Coercion coercion;
};

struct Auth {
  std::filesystem::path ca;           // CA bundle to trust (empty: system default)
  std::filesystem::path client_cert;  // mutual TLS
  std::filesystem::path client_key;
  std::filesystem::path bearer_token_file;  // static OAuth2 bearer token
  bool verify_peer = true;
  // OAuth2 client credentials (token_url empty: none). Excludes bearer_token_file.
  struct OAuth2 {
    std::string token_url;
    std::string client_id;
    std::filesystem::path client_secret_file;  // 0600/0400, one line
    std::string scope;
  } oauth2;
};

// A byte-rate cap (bytes per second, 0: none), optionally another one during office hours.
struct Bandwidth {
  std::uint64_t max = 0;
  std::vector<std::string> office_hours;  // window specs, e.g. "Mon-Fri 08:00-18:00"
  std::uint64_t office_hours_max = 0;     // used inside office_hours (0: no cap then)
};

// Lossless transcoding before upload (docs/transcoding.md). `to` empty: off, objects go as stored.
struct Transcode {
  std::string to;                               // "jpeg-ls-lossless" or empty
  std::uint64_t max_pixel_bytes = 64ull << 20;  // bigger Pixel Data goes as stored
  bool syntax_parameter = false;  // STOW-RS parts say "application/dicom; transfer-syntax=..."
};

// When a destination may be sent to: window specs in facility.timezone (docs/scheduling.md).
struct Schedule {
  std::vector<std::string> windows;  // empty: always open
  bool stat_bypass = true;           // STAT studies go at once, window or not
};

// A DICOM C-STORE destination (type: dimse).
struct DimseDestination {
  std::string ae_title;              // called AE
  std::string calling_ae = "DIRGW";  // ours, as the destination knows us
  std::string host;
  int port = 104;
  bool tls = false;
  std::filesystem::path ca, client_cert, client_key;
  bool verify_peer = true;
  bool verify_hostname = true;
  // An object stored compressed (JPEG, JPEG-LS, RLE) whose syntax the destination refuses:
  // "always" decompresses it to Explicit/Implicit VR Little Endian, "lossless" only when it was
  // compressed losslessly, "never" refuses it (docs/dimse-sender.md).
  std::string decompress = "always";
};

// Which studies are STAT: they bypass upload windows and go before older work.
struct StatAttribute {
  std::string tag;                  // "(0040,1003)"
  std::vector<std::string> values;  // any of them, compared after trimming, case-insensitive
};
// STAT from HL7 orders (ORM^O01, OMI^O23) on the MLLP listener (docs/scheduling.md).
struct Hl7Orders {
  bool enabled = true;
  // HL7 field paths tried in order (first with a value wins), as SEG-FIELD[.COMPONENT].
  std::vector<std::string> accession_fields = {"IPC-1", "OBR-18"};
  std::vector<std::string> priority_fields = {"TQ1-9", "ORC-7.6", "OBR-27.6"};
  std::vector<std::string> stat_values = {"S"};  // HL7 table 0027 codes that mean STAT
};
struct Priority {
  std::vector<StatAttribute> stat_attributes;
  std::vector<std::string> stat_calling_aes;
  Hl7Orders hl7_orders;
};

// De-identification for one destination (DICOM PS3.15 Annex E, Basic Profile and options; see
// docs/deidentification.md). The policy stage maps this onto policy::deid::DeidOptions.
struct SafePrivate {
  int group = 0;  // odd; 0: any odd group
  std::string creator;
  int element = 0;  // low byte of the element number, 0x00..0xFF
};
struct BurnedInAllow {
  std::string sop_class_uid, modality, manufacturer, model;  // every non-empty field must match
  bool allow_marked_yes = false;
};
struct Deidentify {
  bool enabled = false;
  bool retain_uids = false;
  bool retain_device_identity = false;
  bool retain_institution_identity = false;
  bool retain_patient_characteristics = false;
  std::string dates = "remove";  // remove | full | modified (Retain Longitudinal Temporal ...)
  bool clean_descriptors = false;
  bool clean_structured_content = false;
  bool clean_graphics = false;
  std::vector<std::string> descriptor_allow_list;
  std::vector<SafePrivate> safe_private;
  bool safe_private_table = false;  // retain_safe_private: PS3.15 Table E.3.10-1's attributes too
  std::vector<BurnedInAllow> burned_in_allow;
};

// Proof of delivery (docs/verification.md): after a study is SENT, ask the repository what it
// holds and mark each instance VERIFIED only when it is listed with the same SOP Class.
struct Verification {
  // qido: QIDO-RS on the destination's DICOMweb URL (stow-rs only; the default there).
  // storage-commitment: N-ACTION / N-EVENT-REPORT (dimse only). none: the study stays SENT and
  // its spool files are never removed by retention (the default for dimse).
  std::string mode = "qido";
  Duration delay{std::chrono::seconds(60)};  // after the last instance was acknowledged
  Duration retry{std::chrono::minutes(5)};   // a check that could not run is tried again then
  int max_resends = 3;  // an instance found missing this often more is FAILED, not re-sent
  int page_size = 500;  // QIDO-RS limit per request (offset pages through the rest)
  // One QIDO-RS request; storage-commitment: how long the N-EVENT-REPORT may take after the
  // N-ACTION was answered.
  Duration timeout{std::chrono::seconds(30)};
  bool enabled() const { return mode != "none"; }
};

// require_report (issue 12): a study is held for this destination until its final report (HL7
// ORU/MDM, docs/hl7.md) is an object of the study, or until it is max_wait old, then sent
// without it. The report goes out with the images, in the same round.
struct RequireReport {
  bool enabled = false;
  Duration max_wait{std::chrono::hours(24)};  // from the study's first instance
};

// `concurrency` when a stow-rs destination does not set it: two requests in flight, so that the
// link carries the next batch while the repository stores the previous one (issue 16;
// docs/scheduling.md "Concurrency per destination"). C-STORE destinations keep one association.
inline constexpr int kDefaultStowRsConcurrency = 2;

struct Destination {
  std::string name;
  std::string type = "stow-rs";
  std::string consent_mode = "opt-out";  // opt-in: nothing leaves without a recorded grant
  std::string withdrawal_notify_url;     // POSTed a JSON notice when consent is withdrawn
  // Explicit VR Big Endian objects: "send" as received, "convert" to Explicit VR Little Endian
  // (lossless, checked), or "refuse" (the study is quarantined for this destination).
  std::string big_endian = "send";
  // VR UN elements of public tags the dictionary knows (SOP UIDs written as UN by some
  // exporters): "decode" sends a copy with the dictionary's VR (lossless, policy/stage/un_vr.h),
  // "send" sends them as received.
  std::string un_elements = "decode";
  std::string url;  // DICOMweb base URL; STOW-RS posts to <url>/studies
  Auth auth;
  int batch_max_instances = 50;
  std::uint64_t batch_max_bytes = 64ull << 20;
  Duration connect_timeout{std::chrono::seconds(10)};
  Duration request_timeout{std::chrono::minutes(10)};
  Duration retry_initial{std::chrono::seconds(30)};
  Duration retry_max{std::chrono::hours(1)};
  // A repository's (or token endpoint's) Retry-After is honoured up to this long, plus jitter.
  Duration retry_after_max{std::chrono::minutes(15)};
  // Self-pacing after a 429/503 (retry.pacing, docs/scaling.md): AIMD on the request rate.
  // Off unless asked for: fewer refused requests, but gateways behind one repository share it
  // less evenly than with the Retry-After holds alone (measured: docs/scaling.md).
  struct Pacing {
    bool enabled = false;
    double decrease = 0.5;  // a throttled request multiplies the paced rate by this
    double increase = 1.0;  // requests/s added per second of admitted requests
    Duration release_after{std::chrono::minutes(5)};  // no throttling this long: pacing ends
  } pacing;
  // A delivery still failing this long after its first failure becomes FAILED.
  Duration give_up_after{std::chrono::hours(24 * 7)};
  // After this many requests in a row fail as a whole, the destination's circuit opens: it is
  // left alone for a cool-down, then probed with a single instance.
  int circuit_failures = 5;
  Duration circuit_cooldown{std::chrono::minutes(1)};
  Deidentify deidentify;  // enabled: this destination receives de-identified copies only
  Schedule schedule;
  Bandwidth bandwidth;
  // Requests in flight to this destination at once (1-64): STOW-RS requests or C-STORE
  // associations, one sender lane each (make_sender_pool). 1 keeps strict oldest-first order;
  // 2-4 keep a long, fast link busy while the repository stores a batch. The configuration
  // reader's default is kDefaultStowRsConcurrency for stow-rs, 1 for dimse.
  int concurrency = 1;
  DimseDestination dimse;  // type: dimse
  Transcode transcode;     // optional JPEG-LS Lossless copies before upload
  Verification verify;
  RequireReport require_report;
  // Instances of a study still RECEIVING go out as soon as their own checks pass (consent,
  // per-instance validation, coercion, de-identification); the study-level decision still
  // governs READY/SENT/VERIFIED (docs/scheduling.md, "Sending while receiving").
  bool send_while_receiving = false;
};

// The codec process (senders/transcode/codec_worker.h): decompression for C-STORE destinations
// and JPEG-LS transcoding run in a child process, one object at a time, with these limits.
struct Codecs {
  Duration timeout{std::chrono::minutes(5)};  // one object's job; the worker is stopped after it
  std::uint64_t memory_limit = 4ull << 30;    // the worker's address space
};

struct Retention {
  std::uint64_t spool_floor = 1ull << 30;  // free bytes below which the SCP refuses objects
  // A spool file goes this long after every destination verified it (docs/verification.md);
  // below spool_floor, verified files go at once, oldest first, before ingest is refused.
  Duration keep_after_verified{std::chrono::hours(24 * 7)};
  // The report period: a finished study's catalog rows go this many days after it was last
  // received (their figures kept for the daily report: catalog/row_pruner.h); 0: kept for ever.
  int report_days = 400;
};

// The daily reconciliation report (docs/report.md): `dirgw report` needs nothing; a folder turns
// on the nightly file, written at `at` (facility.timezone) for the day before.
struct Report {
  std::filesystem::path folder;  // empty: no nightly file
  int at_minute = 60;            // minutes after local midnight ("01:00")
  // report.pacs: PACS whose own count of the day is shown beside dirgw's (config/pull_config.h);
  // empty: "n/a".
  std::vector<PullSource> pacs;
};

struct Metrics {
  bool enabled = false;
  std::string bind = "127.0.0.1";
  int port = 9719;
};

struct AuditSyslog {
  bool enabled = false;
  std::string host;
  int port = 6514;
  std::filesystem::path ca, client_cert, client_key;
  bool verify_peer = true;
};

struct Config {
  std::filesystem::path source;  // the file it came from
  std::string facility_name;
  std::string facility_id;
  std::string timezone = "UTC";    // IANA name: upload windows and office hours are in it
  Bandwidth forwarding_bandwidth;  // gateway-wide cap shared by every destination
  Priority priority;
  std::filesystem::path state_dir = "/var/lib/dirgw";
  std::filesystem::path control_socket = "/run/dirgw/control.sock";
  std::string log_level = "info";
  Ingest ingest;
  Policy policy;
  std::vector<Destination> destinations;
  // The secret behind every pseudonym (32 bytes, 0600, created at first start when absent).
  std::filesystem::path deid_key_file;  // empty: <state_dir>/keys/deid.key
  Retention retention;
  Codecs codecs;
  Report report;
  Metrics metrics;
  AuditSyslog audit_syslog;
  PriorsConfig priors;  // priors from the repository into the local PACS (docs/priors.md)
};

struct ConfigError {
  std::string key;  // "destinations[0].url"
  int line = 0;     // 1-based; 0 when the file itself is at fault
  std::string message;

  std::string to_string(const std::string& file) const;
};

struct LoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
  bool ok() const { return config.has_value() && errors.empty(); }
};

LoadResult load_file(const std::filesystem::path& path);
LoadResult load_string(const std::string& yaml, const std::filesystem::path& source = "<string>");

// "90s", "5m", "250ms", "1h", "7d" -> milliseconds.
std::optional<Duration> parse_duration(const std::string& text);
// The inverse, in the largest unit that divides it: 4h, 90s, 250ms.
std::string format_duration(Duration d);
// "5GiB", "64MiB", "512KiB", "10MB", "1234" -> bytes.
std::optional<std::uint64_t> parse_size(const std::string& text);

}  // namespace dirgw::config
