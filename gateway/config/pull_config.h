// ingest.pull: PACS that cannot push, polled on a schedule with C-FIND and retrieved with C-MOVE
// to our own SCP (issue 12). Kept apart from config.cpp so that the pull keys live with their
// reader; config.cpp makes the one call.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace dirgw::config {

struct ConfigError;
struct DicomIngest;

struct PullSource {
  std::string name;      // shown in `dirgw sources`; objects are recorded as "pull:<name>"
  std::string ae_title;  // the PACS's (called) AE title; it also calls us back with it
  std::string host;
  int port = 104;
  std::string calling_ae;        // ours for C-FIND/C-MOVE; empty: ingest.dicom.ae_title
  std::string move_destination;  // the AE the PACS sends to; empty: ingest.dicom.ae_title
  // How a study is retrieved: "move" (C-MOVE: the PACS opens an association to our receiver) or
  // "get" (C-GET: the objects come back on our own association, for a PACS that cannot connect
  // to us; they take the same intake path: pre-scan, spool, catalog).
  std::string retrieve = "move";
  std::chrono::milliseconds every{std::chrono::minutes(15)};  // time between polls
  // Studies whose Study Date falls in the last look_back (counted from the last successful
  // poll, so that a daemon stopped for a week does not miss that week).
  std::chrono::milliseconds look_back{std::chrono::hours(24)};
  std::vector<std::string> modalities;  // empty: every modality
  std::chrono::milliseconds retry_initial{std::chrono::seconds(30)};
  std::chrono::milliseconds retry_max{std::chrono::hours(1)};
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // per DIMSE answer and connect
};

// Reads ingest.pull (a list) from the ingest mapping, after ingest.dicom (whose SCP receives what
// the PACS sends); every problem names key and line.
void read_pull(const YAML::Node& ingest, const std::string& ingest_key, const DicomIngest& dicom,
               std::vector<PullSource>& out, std::vector<ConfigError>& errors);

// Reads report.pacs (a list) from the report mapping, after ingest: the PACS whose own count of a
// day (STUDY C-FIND by Study Date) `dirgw report` shows beside dirgw's (docs/report.md). Each is
// `{pull: NAME}` (an ingest.pull source: its AE title, address, calling AE and time-out) or
// `{name, ae_title, host, port, calling_ae, timeout}`; only name, AE, address, calling AE and
// timeout of the PullSource are used. An empty calling AE becomes ingest.dicom.ae_title.
void read_report_pacs(const YAML::Node& report, const std::string& report_key,
                      const std::vector<PullSource>& pulls, const DicomIngest& dicom,
                      std::vector<PullSource>& out, std::vector<ConfigError>& errors);

}  // namespace dirgw::config
