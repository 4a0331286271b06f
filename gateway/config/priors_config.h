// priors: bring a patient's prior studies from the regional repository into the local PACS
// (issue 18, docs/priors.md). Kept apart from config.cpp so that the keys live with their reader;
// config.cpp makes the one call, after the destinations (the repository may name one).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace dirgw::config {

struct ConfigError;
struct Destination;

// One row of the body part / procedure table (rules.relevance.groups): an ordered exam whose
// procedure code is one of `procedures`, or whose body part is one of `body_parts`, wants the
// priors whose Body Part Examined is one of `body_parts`, whose Procedure Code Sequence holds one
// of `procedures`, or whose Study Description contains one of `descriptions`.
struct PriorsRelevanceGroup {
  std::string name;
  std::vector<std::string> procedures;    // "SCHEME:CODE", or "CODE" for any coding scheme
  std::vector<std::string> body_parts;    // Body Part Examined values (CS: upper case)
  std::vector<std::string> descriptions;  // Study Description keywords (any case)
};

struct PriorsConfig {
  bool enabled = false;
  // The repository: a stow-rs destination's name (its url and auth are used for QIDO-RS and
  // WADO-RS), or a DICOMweb url of its own with the few auth keys below.
  std::string repository;
  std::string url;
  std::filesystem::path ca, client_cert, client_key, bearer_token_file;
  bool verify_peer = true;
  // The local PACS the priors are C-STOREd into.
  std::string pacs_ae_title, pacs_calling_ae = "DIRGW", pacs_host;
  int pacs_port = 104;
  // Which PID-3 repetition is the local MRN: authority (CX-4.1) mrn_issuer, else type mrn_type.
  std::string mrn_issuer, mrn_type = "MR";
  // Which is the health number: authority health_number_issuer, or type JHN without authority.
  std::string health_number_issuer = "ON";
  // Rules.
  std::vector<std::string> modalities;         // empty: every modality
  int years = 5;                               // studies of the last N years
  int max_studies = 10;                        // at most this many, most recent first
  std::vector<std::string> skip_institutions;  // Institution Name values of this facility
  // The body part / procedure table; empty: every study passing the other rules is relevant.
  std::vector<PriorsRelevanceGroup> relevance;
  // An ordered exam the table does not know: all its priors (true) or none (false).
  bool relevance_unmapped_all = true;
  // Triggers.
  bool on_orders = true;                  // ORM^O01, OMI^O23
  bool on_scheduling = false;             // SIU^S12
  bool on_arrivals = false;               // ADT^A01, ADT^A04
  std::string series_description_prefix;  // e.g. "PRIOR " (empty: series descriptions unchanged)
  std::chrono::milliseconds retry_initial{std::chrono::seconds(30)};
  std::chrono::milliseconds retry_max{std::chrono::hours(1)};
  int max_attempts = 10;  // a request still failing after this many attempts is given up
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // one QIDO/WADO request
};

// What the relevance table, `dirgw priors fetch --procedure` and `--body-part` accept: a procedure
// code "CODE" or "SCHEME:CODE" (printable ASCII without backslash, no colon or space at either end,
// 1 to 64 characters); a Body Part Examined value (capital letters, digits, _; 1 to 16).
bool procedure_code(const std::string& v);
bool body_part_value(const std::string& v);

// Reads the top-level `priors:` mapping; every problem names key and line.
void read_priors(const YAML::Node& root, const std::vector<Destination>& destinations,
                 PriorsConfig& out, std::vector<ConfigError>& errors);

}  // namespace dirgw::config
