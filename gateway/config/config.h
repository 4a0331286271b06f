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

namespace dirgw::config {

using Duration = std::chrono::milliseconds;

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
};

struct Ingest {
  DicomIngest dicom;
  Hl7Ingest hl7;
  std::vector<FolderIngest> folders;  // watched export folders (config/folders_config.h)
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

struct Policy {
  Duration stable_age{std::chrono::seconds(60)};
  std::string validation_profile = "ontario-dir";  // or "none"
  std::string health_number_issuer = "ON";
  Coercion coercion;
};

struct Auth {
  std::filesystem::path ca;           // CA bundle to trust (empty: system default)
  std::filesystem::path client_cert;  // mutual TLS
  std::filesystem::path client_key;
  std::filesystem::path bearer_token_file;  // static OAuth2 bearer token
  bool verify_peer = true;
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
  std::vector<BurnedInAllow> burned_in_allow;
};

struct Destination {
  std::string name;
  std::string type = "stow-rs";
  std::string consent_mode = "opt-out";  // opt-in: nothing leaves without a recorded grant
  std::string withdrawal_notify_url;     // POSTed a JSON notice when consent is withdrawn
  std::string url;                       // DICOMweb base URL; STOW-RS posts to <url>/studies
  Auth auth;
  int batch_max_instances = 50;
  std::uint64_t batch_max_bytes = 64ull << 20;
  Duration connect_timeout{std::chrono::seconds(10)};
  Duration request_timeout{std::chrono::minutes(10)};
  Duration retry_initial{std::chrono::seconds(30)};
  Duration retry_max{std::chrono::hours(1)};
  // A delivery still failing this long after its first failure becomes FAILED.
  Duration give_up_after{std::chrono::hours(24 * 7)};
  // After this many requests in a row fail as a whole, the destination's circuit opens: it is
  // left alone for a cool-down, then probed with a single instance.
  int circuit_failures = 5;
  Duration circuit_cooldown{std::chrono::minutes(1)};
  Deidentify deidentify;  // enabled: this destination receives de-identified copies only
};

struct Retention {
  std::uint64_t spool_floor = 1ull << 30;  // free bytes below which the SCP refuses objects
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
  std::filesystem::path state_dir = "/var/lib/dirgw";
  std::filesystem::path control_socket = "/run/dirgw/control.sock";
  std::string log_level = "info";
  Ingest ingest;
  Policy policy;
  std::vector<Destination> destinations;
  // The secret behind every pseudonym (32 bytes, 0600, created at first start when absent).
  std::filesystem::path deid_key_file;  // empty: <state_dir>/keys/deid.key
  Retention retention;
  Metrics metrics;
  AuditSyslog audit_syslog;
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
// "5GiB", "64MiB", "512KiB", "10MB", "1234" -> bytes.
std::optional<std::uint64_t> parse_size(const std::string& text);

}  // namespace dirgw::config
