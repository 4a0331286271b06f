// dirgw: the command-line tool for IT staff. It talks to the daemon over its control socket
// and prints tables for people or JSON (--json) for scripts. CLI11 parses the command line,
// writes --help and reports usage errors; this file says what each command asks the daemon and
// how its answer is shown.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/protocol.h"
#include "deid_preview.h"

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitDaemonDown = 3;
constexpr int kExitPermission = 4;

constexpr const char* kFooter =
    "PATIENT: hn:NUMBER, hn:ISSUER:NUMBER or mrn:ISSUER:MRN.  'dirgw COMMAND --help' tells more.\n"
    "\n"
    "Exit codes: 0 ok, 1 request failed or refused, 2 usage error, 3 daemon not running,\n"
    "            4 permission denied on the control socket.";

constexpr const char* kCommandFooter =
    "The options of dirgw (--socket PATH, --config FILE, --json) may come before or after\n"
    "the command.";

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

// Seconds as people write them: "7d", "36h", "1d 2h", "45s" (at most two units, the second
// left out when it is zero).
std::string human_duration(long long s) {
  if (s < 0) return "-";
  static constexpr struct {
    long long seconds;
    const char* unit;
  } kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (std::size_t i = 0; i < std::size(kUnits); ++i) {
    if (s < kUnits[i].seconds && kUnits[i].seconds > 1) continue;
    std::string out = std::to_string(s / kUnits[i].seconds) + kUnits[i].unit;
    if (i + 1 < std::size(kUnits)) {
      const long long next = s % kUnits[i].seconds / kUnits[i + 1].seconds;
      if (next > 0) out += " " + std::to_string(next) + kUnits[i + 1].unit;
    }
    return out;
  }
  return "0s";
}

std::string str(const json& j, const char* key, const char* fallback = "-") {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

void print_states(const json& states, const char* indent) {
  if (states.empty()) {
    std::printf("%s(none)\n", indent);
    return;
  }
  for (const auto& s : states)
    std::printf("%s%-12s %6lld studies %8lld instances\n", indent, s.value("state", "").c_str(),
                s.value("studies", 0LL), s.value("instances", 0LL));
}

// Verification per destination and retention (issue 15, docs/verification.md).
void print_verification(const json& d) {
  if (!d.contains("verification")) return;
  const auto& v = d["verification"];
  if (str(v, "mode") == "none") {
    std::printf("  verification: none (studies stay SENT; their spool files are kept)\n");
    return;
  }
  std::printf(
      "  verification: %s; %lld instances verified, %lld awaiting, %lld sent again, %lld lost\n",
      str(v, "mode").c_str(), v.value("verified_instances", 0LL),
      v.value("awaiting_instances", 0LL), v.value("resent_instances", 0LL),
      v.value("lost_instances", 0LL));
  if (v.value("studies_check_failing", 0LL) > 0)
    std::printf("  verification failures: %lld studies could not be checked (%s); retried\n",
                v.value("studies_check_failing", 0LL), str(v, "last_check_error").c_str());
}

void print_retention(const json& r) {
  if (!r.contains("retention")) return;
  const auto& t = r["retention"];
  std::printf(
      "retention:    keep %s after verification; %lld objects purged (%s), %lld "
      "verified kept (%s)\n",
      human_duration(t.value("keep_after_verified_s", 0LL)).c_str(), t.value("purged_objects", 0LL),
      human_bytes(t.value("purged_bytes", 0.0)).c_str(), t.value("verified_kept_objects", 0LL),
      human_bytes(t.value("verified_kept_bytes", 0.0)).c_str());
}

// retention.report_days: the catalog rows pruned, or (dry run) the studies whose rows would go.
void print_purge_rows(const json& rows, bool dry_run) {
  if (!rows.is_object()) return;
  if (rows.contains("error")) {
    std::printf("catalog rows: not pruned: %s\n", str(rows, "error").c_str());
    return;
  }
  if (!dry_run) {
    std::printf(
        "pruned the catalog rows of %lld finished studies (%lld instances) and %lld "
        "refusals older than the report period\n",
        rows.value("studies", 0LL), rows.value("instances", 0LL), rows.value("refusals", 0LL));
    return;
  }
  std::printf(
      "would prune the catalog rows of %lld%s finished studies (%lld instances) last received "
      "before %s (retention.report_days %lld)\n",
      rows.value("studies", 0LL), rows.value("more", false) ? "+" : "",
      rows.value("instances", 0LL), str(rows, "before").c_str(), rows.value("report_days", 0LL));
  for (const auto& s : rows.value("list", json::array()))
    std::printf("  study %s %lld instances, last received %s\n", str(s, "study_uid").c_str(),
                s.value("instances", 0LL), str(s, "last_received_at").c_str());
}

void print_purge(const json& r) {
  if (!r.value("dry_run", false)) {
    std::printf("purged %lld objects (%s)\n", r.value("objects", 0LL),
                human_bytes(r.value("bytes", 0.0)).c_str());
    print_purge_rows(r.value("rows", json()), false);
    return;
  }
  std::printf("would purge %lld verified objects (%s); spool free %s, floor %s\n",
              r.value("objects", 0LL), human_bytes(r.value("bytes", 0.0)).c_str(),
              r.contains("free_bytes") && r["free_bytes"].is_number()
                  ? human_bytes(r.value("free_bytes", 0.0)).c_str()
                  : "unknown",
              human_bytes(r.value("floor_bytes", 0.0)).c_str());
  for (const auto& o : r.value("list", json::array()))
    std::printf("  %s %10s verified %s (%s)\n", str(o, "object").c_str(),
                human_bytes(o.value("size", 0.0)).c_str(), str(o, "verified_at").c_str(),
                str(o, "reason").c_str());
  print_purge_rows(r.value("rows", json()), true);
}

void print_status(const json& r) {
  std::printf("dirgw daemon: %s (pid %s, version %s, since %s)\n",
              str(r, "state", "running").c_str(), str(r, "pid").c_str(), str(r, "version").c_str(),
              str(r, "started_at").c_str());
  if (r.contains("facility") && !r["facility"].get<std::string>().empty())
    std::printf("facility:     %s\n", r["facility"].get<std::string>().c_str());
  const auto& c = r["catalog"];
  std::printf("catalog:      %lld studies, %lld instances, %s (schema %d)\n",
              c.value("studies", 0LL), c.value("instances", 0LL),
              human_bytes(c.value("bytes", 0.0)).c_str(), c.value("schema", 0));
  print_states(c["states"], "              ");
  if (r.contains("ingest") && r["ingest"].contains("dicom")) {
    const auto& d = r["ingest"]["dicom"];
    std::printf(
        "dicom ingest: AE %s port %s; %s active, %s stored, %s duplicates, %s refused, %s "
        "presentation contexts refused\n",
        str(d, "ae_title").c_str(), str(d, "port").c_str(), str(d, "associations_active").c_str(),
        str(d, "stored").c_str(), str(d, "duplicates").c_str(), str(d, "refused").c_str(),
        str(d, "presentation_contexts_refused").c_str());
  }
  if (r.contains("ingest") && r["ingest"].contains("folders"))
    for (const auto& f : r["ingest"]["folders"])
      std::printf("folder %-6s %s: %s taken, %s objects, %s rejected%s%s\n", str(f, "name").c_str(),
                  str(f, "path").c_str(), str(f, "taken").c_str(), str(f, "objects_stored").c_str(),
                  str(f, "rejected").c_str(), str(f, "last_error", "").empty() ? "" : "; error: ",
                  str(f, "last_error", "").c_str());
  if (r.contains("ingest") && r["ingest"].contains("hl7_reports")) {
    const auto& h = r["ingest"]["hl7_reports"];
    auto count = [&](const char* state) {
      return h.contains(state) ? h[state].value("count", 0LL) : 0LL;
    };
    std::printf(
        "HL7 reports:  %lld waiting, %lld done, %lld refused, %lld expired; answered AE %lld, "
        "AR %lld since start\n",
        count("waiting"), count("done"), count("refused"), count("expired"),
        h.contains("answered") ? h["answered"].value("AE", 0LL) : 0LL,
        h.contains("answered") ? h["answered"].value("AR", 0LL) : 0LL);
  }
  if (r.contains("ingest") && r["ingest"].contains("pulls"))
    for (const auto& p : r["ingest"]["pulls"])
      std::printf(
          "pull %-8s %s: %s studies complete, %s incomplete, %s no longer on the PACS, last poll "
          "%s%s%s\n",
          str(p, "name").c_str(), str(p, "pacs").c_str(), str(p, "studies_complete").c_str(),
          str(p, "studies_incomplete").c_str(), str(p, "studies_gone", "0").c_str(),
          str(p, "last_poll_at", "never").c_str(),
          str(p, "last_error", "").empty() ? "" : "; error: ", str(p, "last_error", "").c_str());
  const auto& sp = r["spool"];
  std::printf("spool:        %s free (floor %s)%s\n",
              human_bytes(sp.value("free_bytes", 0.0)).c_str(),
              human_bytes(sp.value("floor_bytes", 0.0)).c_str(),
              sp.value("below_floor", false) ? "  WARNING: below floor, new objects refused" : "");
  if (sp.contains("floor_reached_at"))
    std::printf("  forecast:   floor reached %s if nothing leaves (ingest %s/s, last 15 min)\n",
                str(sp, "floor_reached_at").c_str(),
                human_bytes(sp.value("ingest_bytes_per_s", 0.0)).c_str());
  for (const auto& d : r["destinations"]) {
    std::printf("destination %s (%s)\n", str(d, "name").c_str(), str(d, "url").c_str());
    print_states(d["states"], "  ");
    std::printf(
        "  backlog:      %lld instances, %s, oldest since %s\n", d.value("pending_instances", 0LL),
        human_bytes(d.value("pending_bytes", 0.0)).c_str(), str(d, "oldest_pending_at").c_str());
    std::printf("  last success: %s   current rate: %.1f instances/s\n",
                str(d, "last_success_at", "never").c_str(), d.value("rate_instances_per_s", 0.0));
    if (d.contains("require_report") && d["require_report"].is_object()) {
      const auto& rr = d["require_report"];
      std::printf(
          "  reports:      %lld waiting for report, %lld sent without report (max_wait %s)\n",
          rr.value("waiting_for_report", 0LL), rr.value("sent_without_report", 0LL),
          str(rr, "max_wait").c_str());
    }
    if (d.contains("forecast")) {
      const auto& f = d["forecast"];
      std::printf("  forecast:     backlog drained %s (at %.2f instances/s, last 15 min%s)\n",
                  str(f, "drained_at").c_str(), f.value("rate_per_s", 0.0),
                  d.contains("window") ? ", inside upload windows" : "");
      if (f.value("held_instances", 0LL) > 0)
        std::printf(
            "                %lld instances of HELD studies not counted (they wait for "
            "consent, a person or a report)\n",
            f.value("held_instances", 0LL));
    }
    if (d.contains("window")) {
      const auto& w = d["window"];
      std::string line = str(w, "state");
      if (!w.value("open", true)) line += ": next window opens " + str(w, "next_open");
      if (w.value("scheduled", false) && w.value("stat_bypass", true)) line += " (STAT bypasses)";
      std::printf("  window:       %s\n", line.c_str());
      const double cap = d.value("bandwidth_cap", 0.0),
                   gcap = d.value("gateway_bandwidth_cap", 0.0);
      std::printf("  bandwidth:    %s%s\n", cap > 0 ? (human_bytes(cap) + "/s").c_str() : "no cap",
                  gcap > 0 ? (" (gateway-wide " + human_bytes(gcap) + "/s)").c_str() : "");
      std::printf("  auth:         %s, %s\n", str(d, "auth").c_str(), str(d, "auth_state").c_str());
    }
    if (d.contains("transcode") && d["transcode"].is_object()) {
      const auto& t = d["transcode"];
      std::printf(
          "  transcode:    %s: %s transcoded, %s skipped, %s verify failed, %s refused; %s saved "
          "(%s sent for %s stored) since start\n",
          str(t, "to").c_str(), str(t, "transcoded").c_str(), str(t, "skipped").c_str(),
          str(t, "verify_failed").c_str(), str(t, "refused").c_str(),
          human_bytes(t.value("bytes_saved", 0.0)).c_str(),
          human_bytes(t.value("sent_bytes", 0.0)).c_str(),
          human_bytes(t.value("original_bytes", 0.0)).c_str());
    }
    if (d.value("circuit", std::string("closed")) != "closed")
      std::printf("  circuit:      %s (%s failed requests in a row; next probe %s)\n",
                  str(d, "circuit").c_str(), str(d, "circuit_failures").c_str(),
                  str(d, "circuit_probe_at").c_str());
    if (d.contains("retry_after_until") && !d["retry_after_until"].is_null())
      std::printf("  retry-after:  the repository asked to wait; nothing goes before %s\n",
                  str(d, "retry_after_until").c_str());
    if (d.contains("one_request_at_a_time_until") && !d["one_request_at_a_time_until"].is_null())
      std::printf("  throttled:    one request at a time (of %s) until %s\n",
                  str(d, "concurrency").c_str(), str(d, "one_request_at_a_time_until").c_str());
    if (d.contains("paced_requests_per_s") && !d["paced_requests_per_s"].is_null())
      std::printf("  pacing:       throttled lately: at most %.2f requests/s (self-pacing)\n",
                  d["paced_requests_per_s"].get<double>());
    if (!d.value("last_error", std::string()).empty())
      std::printf("  last error:   %s at %s%s\n", str(d, "last_error").c_str(),
                  str(d, "last_error_at").c_str(),
                  d.value("last_error_cleared", false) ? " (old: cleared by a later success)" : "");
    else
      std::printf("  last error:   none\n");
    print_verification(d);
  }
  print_retention(r);
  if (r.contains("startup")) {
    const auto& su = r["startup"];
    std::printf(
        "at start:     %s temporaries removed, %s objects adopted, %s quarantined, %s missing\n",
        str(su, "temporaries_removed").c_str(), str(su, "adopted").c_str(),
        str(su, "quarantined").c_str(), str(su, "missing").c_str());
  }
  if (r.contains("warnings"))
    for (const auto& w : r["warnings"]) std::printf("WARNING: %s\n", w.get<std::string>().c_str());
  const auto& rf = r["refusals"];
  std::printf("refused input: %lld", rf.value("count", 0LL));
  if (rf.contains("last"))
    std::printf(" (last at %s from %s %s: %s)", str(rf["last"], "at").c_str(),
                str(rf["last"], "calling_ae", "").c_str(),
                // A watched folder's rejection has no caller nor peer: its source names it.
                str(rf["last"], "peer").empty() ? str(rf["last"], "source").c_str()
                                                : str(rf["last"], "peer").c_str(),
                str(rf["last"], "reason").c_str());
  std::printf("\n");
}

void print_studies(const json& r) {
  std::printf("%-64s %-10s %9s %10s  %s\n", "STUDY UID", "INGEST", "INSTANCES", "SIZE",
              "DESTINATIONS");
  for (const auto& s : r["studies"]) {
    std::string dests;
    for (const auto& [name, state] : s["destinations"].items()) {
      dests += (dests.empty() ? "" : ", ") + name + "=" + state.get<std::string>();
      // SCHEDULED: waiting for the destination's upload window, which opens then.
      if (s.contains("window_opens_at") && s["window_opens_at"].contains(name) &&
          s["window_opens_at"][name].is_string())
        dests += " (window opens " + s["window_opens_at"][name].get<std::string>() + ")";
    }
    std::printf("%-64s %-10s %9lld %10s  %s\n", str(s, "study_uid").c_str(),
                str(s, "state").c_str(), s.value("instances", 0LL),
                human_bytes(s.value("bytes", 0.0)).c_str(), dests.c_str());
  }
}

// dirgw reports: one line each, newest first; the reason (or the study it joined) last.
void print_reports(const json& r) {
  std::printf("%-6s %-32s %5s %-11s %-10s %-20s  %s\n", "ID", "MESSAGE (MSH-3/4/10)", "ORDER",
              "STATUS", "STATE", "RECEIVED", "REASON / STUDY");
  for (const auto& x : r["reports"]) {
    const std::string state = str(x, "state");
    const std::string detail = state == "done"
                                   ? str(x, "study_uid") + " (version " + str(x, "version") + ")"
                                   : str(x, "reason", "");
    std::printf("%-6s %-32s %5s %-11s %-10s %-20s  %s\n", str(x, "id").c_str(),
                str(x, "message").c_str(), str(x, "order").c_str(), str(x, "status").c_str(),
                state.c_str(), str(x, "received_at", "-").c_str(), detail.c_str());
  }
  if (r["reports"].empty()) std::printf("(no report)\n");
}

void print_sources(const json& r) {
  std::printf("%-8s %-16s %-20s %-20s %6s %8s %8s  %s\n", "KIND", "NAME", "LAST SCAN", "NEXT SCAN",
              "TAKEN", "OBJECTS", "REJECTED", "LAST ERROR");
  for (const auto& f : r["folders"])
    std::printf("%-8s %-16s %-20s %-20s %6s %8s %8s  %s\n", "folder", str(f, "name").c_str(),
                str(f, "last_scan_at", "never").c_str(), str(f, "next_scan_at", "-").c_str(),
                str(f, "taken").c_str(), str(f, "objects_stored").c_str(),
                str(f, "rejected").c_str(), str(f, "last_error", "").c_str());
  // A pull source: TAKEN counts the studies held completely, OBJECTS the instances its C-MOVEs
  // brought since start; the studies still incomplete follow, with what we hold of them, and
  // how many were given up as no longer on the PACS.
  for (const auto& p : r["pulls"]) {
    std::printf("%-8s %-16s %-20s %-20s %6s %8s %8s  %s\n", "pull", str(p, "name").c_str(),
                str(p, "last_poll_at", "never").c_str(), str(p, "next_poll_at", "-").c_str(),
                str(p, "studies_complete").c_str(), str(p, "objects_stored").c_str(),
                str(p, "rejected").c_str(), str(p, "last_error", "").c_str());
    if (p.value("studies_skipped", 0) > 0)
      std::printf(
          "         %s studies not retrieved: none of their modalities in the source's "
          "filter\n",
          str(p, "studies_skipped").c_str());
    if (p.value("studies_gone", 0) > 0)
      std::printf(
          "         %s studies left incomplete: no longer on the PACS, not asked for again\n",
          str(p, "studies_gone").c_str());
    for (const auto& i : p["incomplete"])
      std::printf("         incomplete %s: %s of %s instances, %s retrieves, next %s%s%s\n",
                  str(i, "study_uid").c_str(), str(i, "held").c_str(),
                  str(i, "reported", "?").c_str(), str(i, "pulls").c_str(),
                  str(i, "next_try_at", "-").c_str(), str(i, "last_error", "").empty() ? "" : ": ",
                  str(i, "last_error", "").c_str());
  }
  const json& reports = r.contains("hl7_reports") ? r["hl7_reports"] : json();
  if (reports.is_object()) {
    std::printf("\nHL7 reports:");
    for (const char* state : {"waiting", "held", "refused", "done", "superseded", "expired"})
      std::printf(" %s %lld%s", state, reports[state].value("count", 0LL),
                  std::string(state) == "expired" ? "" : ",");
    std::printf("\n");
    if (r.contains("hl7_reports_answered") && r["hl7_reports_answered"].is_object())
      std::printf("  answered since start: AE %lld, AR %lld (not stored, or refused at once)\n",
                  r["hl7_reports_answered"].value("AE", 0LL),
                  r["hl7_reports_answered"].value("AR", 0LL));
    if (reports["expired"].value("count", 0LL) > 0)
      std::printf("  expired reports: their images never came (max_waiting, max_waiting_age)\n");
    if (reports["waiting"].value("count", 0LL) > 0)
      std::printf("  oldest waiting for its images since %s\n",
                  str(reports["waiting"], "oldest_at").c_str());
    if (reports["refused"].value("count", 0LL) > 0)
      std::printf("  refused reports: the gateway's log names each one and why\n");
  }
}

void print_study(const json& r) {
  std::printf("study %s\n", str(r, "study_uid").c_str());
  std::printf("  ingest: %s, %lld instances, %s, received %s .. %s\n", str(r, "state").c_str(),
              r.value("instances", 0LL), human_bytes(r.value("bytes", 0.0)).c_str(),
              str(r, "first_received_at").c_str(), str(r, "last_received_at").c_str());
  std::string sources;  // distinct, in order of arrival: "dicom:PACS1", "folder:ct-export"
  for (const auto& i : r["instance_list"]) {
    const std::string s = i.value("source", std::string());
    if (!s.empty() && (", " + sources + ", ").find(", " + s + ", ") == std::string::npos)
      sources += (sources.empty() ? "" : ", ") + s;
  }
  if (!sources.empty()) std::printf("  source: %s\n", sources.c_str());
  for (const auto& d : r["destinations"]) {
    std::printf("  %s: %s (round %s)%s%s\n", str(d, "destination").c_str(), str(d, "state").c_str(),
                str(d, "round").c_str(), d.value("reason", std::string()).empty() ? "" : " — ",
                d.value("reason", std::string()).c_str());
    if (!d.value("report", std::string()).empty())
      std::printf("    report: %s\n", d.value("report", std::string()).c_str());
    long long verified = 0, total = 0;
    for (const auto& i : r["instance_list"])
      for (const auto& x : i["deliveries"])
        if (str(x, "destination") == str(d, "destination") && str(x, "state") != "superseded") {
          ++total;
          verified += str(x, "state") == "verified";
        }
    std::printf("    verified: %lld of %lld instances%s%s\n", verified, total,
                d.value("verify_error", std::string()).empty() ? "" : "; verification failing: ",
                d.value("verify_error", std::string()).c_str());
  }
  std::printf("  sends:\n");
  for (const auto& x : r["rounds"])
    std::printf(
        "    %s round %s (%s): %lld instances, %lld sent, %lld failed, %lld pending; %s .. %s\n",
        str(x, "destination").c_str(), str(x, "round").c_str(), str(x, "kind").c_str(),
        x.value("instances", 0LL), x.value("sent", 0LL), x.value("failed", 0LL),
        x.value("pending", 0LL), str(x, "first_sent_at").c_str(), str(x, "last_sent_at").c_str());
  std::printf("  %-64s %-6s %9s  %s\n", "INSTANCE", "MOD", "SIZE", "DELIVERIES");
  for (const auto& i : r["instance_list"]) {
    std::string del;
    for (const auto& d : i["deliveries"]) {
      del += (del.empty() ? "" : "; ") + str(d, "destination") + "=" + str(d, "state");
      if (d.value("attempts", 0) > 0) del += " x" + std::to_string(d.value("attempts", 0));
      if (!d.value("last_error", std::string()).empty()) del += " (" + str(d, "last_error") + ")";
      if (d.value("resends", 0) > 0) del += " resent x" + std::to_string(d.value("resends", 0));
    }
    if (i.value("purged", false)) del += " [spool file purged]";
    if (!i.value("flags", std::string()).empty()) del += " [" + str(i, "flags") + "]";
    std::printf("  %-64s %-6s %9s  %s\n", str(i, "sop_instance_uid").c_str(),
                str(i, "modality").c_str(), human_bytes(i.value("size", 0.0)).c_str(), del.c_str());
  }
}

// "2026-11-28", "2026-11-28T10:00:00Z", "24h", "7d" -> epoch ms.
std::optional<long long> parse_since(const std::string& text) {
  const long long now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  if (text.size() >= 2 && (text.back() == 'h' || text.back() == 'd') &&
      text.find_first_not_of("0123456789") == text.size() - 1) {
    long long n = std::stoll(text.substr(0, text.size() - 1));
    return now - n * (text.back() == 'h' ? 3'600'000LL : 86'400'000LL);
  }
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') {
    tm = {};
    end = strptime(text.c_str(), "%Y-%m-%d", &tm);
    if (end == nullptr || *end != '\0') return std::nullopt;
  }
  return static_cast<long long>(timegm(&tm)) * 1000;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  for (auto& f : out) {
    while (!f.empty() && f.back() == ' ') f.pop_back();
    while (!f.empty() && f.front() == ' ') f.erase(f.begin());
  }
  return out;
}

// The rows of a consent CSV file, or nullopt after saying why the file cannot be used.
std::optional<json> consent_rows(const std::string& file, json& req) {
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "dirgw: cannot read %s\n", file.c_str());
    return std::nullopt;
  }
  std::string line;
  int n = 0;
  std::map<std::string, std::size_t> col;
  json rows = json::array();
  json early = json::array();
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    auto fields = split_csv_line(line);
    if (col.empty()) {
      for (std::size_t i = 0; i < fields.size(); ++i) col[fields[i]] = i;
      if (!col.count("decision") || (!col.count("health_number") && !col.count("mrn"))) {
        std::fprintf(stderr,
                     "dirgw: %s:%d: the first line must name the columns: health_number, "
                     "mrn_issuer, mrn, decision\n",
                     file.c_str(), n);
        return std::nullopt;
      }
      continue;
    }
    if (fields.size() != col.size()) {
      early.push_back({{"line", n},
                       {"reason", "expected " + std::to_string(col.size()) + " columns, found " +
                                      std::to_string(fields.size())}});
      continue;
    }
    json row = {{"line", n}};
    for (const char* k : {"health_number", "mrn_issuer", "mrn", "decision"})
      if (col.count(k)) row[k] = fields[col[k]];
    rows.push_back(row);
  }
  req["rows"] = rows;
  req["file"] = std::filesystem::path(file).filename().string();
  req["cli_rejected"] = early;
  return req;
}

// The rows of an MRN CSV file, or nullopt after saying why the file cannot be used.
std::optional<json> mrn_rows(const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "dirgw: cannot read %s\n", file.c_str());
    return std::nullopt;
  }
  json rows = json::array();
  std::string line;
  int n = 0;
  std::map<std::string, std::size_t> col;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    auto f = split_csv_line(line);
    if (col.empty()) {
      for (std::size_t i = 0; i < f.size(); ++i) col[f[i]] = i;
      if (!col.count("mrn_issuer") || !col.count("mrn") || !col.count("health_number")) {
        std::fprintf(
            stderr,
            "dirgw: %s:%d: the first line must name the columns mrn_issuer, mrn, health_number\n",
            file.c_str(), n);
        return std::nullopt;
      }
      continue;
    }
    json row = {{"line", n}};
    for (const auto& [k, i] : col) row[k] = i < f.size() ? f[i] : std::string();
    rows.push_back(row);
  }
  return rows;
}

// Asks before a quarantined study is deleted for good; true when the operator agreed.
bool confirm_delete(const std::string& uid) {
  if (!isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "dirgw: deleting needs confirmation: add --yes\n");
    return false;
  }
  std::fprintf(stderr, "Delete quarantined study %s and its objects for good? [y/N] ", uid.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "y" && answer != "Y" && answer != "yes") {
    std::fprintf(stderr, "not deleted\n");
    return false;
  }
  return true;
}

void print_consent(const std::string& action, const json& req, const json& r) {
  if (action == "show") {
    if (!r.value("known", false)) {
      std::printf("no consent recorded for this patient\n");
      return;
    }
    std::printf("identifiers:\n");
    for (const auto& i : r["identifiers"])
      std::printf("  %s %s %s\n", str(i, "kind").c_str(), str(i, "issuer").c_str(),
                  str(i, "value").c_str());
    std::printf("state per destination:\n");
    for (const auto& [name, st] : r["state"].items())
      std::printf("  %s: %s\n", name.c_str(), st.get<std::string>().c_str());
    std::printf("history:\n");
    for (const auto& e : r["history"])
      std::printf("  %s %-8s scope %-10s via %-4s by %s %s\n", str(e, "at").c_str(),
                  str(e, "decision").c_str(), str(e, "scope").c_str(), str(e, "source").c_str(),
                  str(e, "operator").c_str(), str(e, "reference", "").c_str());
    std::printf("studies: %zu\n", r["studies"].size());
    return;
  }
  if (action == "import") {
    json rejected = req.value("cli_rejected", json::array());
    for (const auto& x : r["rejected"]) rejected.push_back(x);
    std::printf("imported %d row(s); %zu rejected; %d stud(ies) withdrawn, %d released\n",
                r.value("accepted", 0), rejected.size(), r.value("studies_withdrawn", 0),
                r.value("studies_released", 0));
    for (const auto& x : rejected)
      std::printf("  line %d: %s\n", x.value("line", 0), str(x, "reason").c_str());
    return;
  }
  std::printf("consent %s recorded; %d stud(ies) withdrawn, %d released\n", action.c_str(),
              r.value("studies_withdrawn", 0), r.value("studies_released", 0));
}

void print_quarantine(const std::string& action, const json& r) {
  if (action == "list") {
    std::printf("%-64s %9s %8s  %s\n", "STUDY UID", "INSTANCES", "FINDINGS", "FIRST REASON");
    for (const auto& s : r["studies"])
      std::printf("%-64s %9lld %8d  %s\n", str(s, "study_uid").c_str(), s.value("instances", 0LL),
                  s.value("findings", 0), str(s, "first_reason").c_str());
  } else if (action == "show") {
    std::printf("study %s: %zu finding(s)\n", str(r, "study_uid").c_str(), r["findings"].size());
    if (r.contains("destinations"))
      for (const auto& d : r["destinations"])
        std::printf("  quarantined for %s: %s\n", str(d, "destination").c_str(),
                    str(d, "reason").c_str());
    for (const auto& f : r["findings"])
      std::printf("  %s %-32s %-12s %s\n", str(f, "sop_instance_uid").c_str(),
                  str(f, "code").c_str(), str(f, "tag", "").c_str(), str(f, "message").c_str());
  } else if (action == "release") {
    std::printf("released: policy runs again\n");
  } else {
    std::printf("deleted (%s objects and %s derived copies removed)\n",
                str(r, "objects_removed").c_str(), str(r, "derived_removed", "0").c_str());
  }
}

int print_audit_verify(const json& r) {
  if (r.value("intact", false)) {
    std::printf("audit trail intact: %lld entries verified%s\n", r.value("checked", 0LL),
                r["anchor"].is_null() ? " (no anchor yet)" : ", anchor matches");
    return kExitOk;
  }
  std::printf("AUDIT TRAIL BROKEN at entry %s: %s (%lld entries before it verified)\n",
              str(r, "first_bad_seq").c_str(), str(r, "reason").c_str(), r.value("checked", 0LL));
  return kExitFailed;
}

int write_audit_export(const json& r, const std::string& out_file) {
  const std::string xml = r.value("xml", std::string());
  if (out_file.empty()) {
    std::fwrite(xml.data(), 1, xml.size(), stdout);
    return kExitOk;
  }
  std::ofstream f(out_file, std::ios::binary);
  f << xml;
  if (!f) {
    std::fprintf(stderr, "dirgw: cannot write %s\n", out_file.c_str());
    return kExitFailed;
  }
  std::printf("%lld audit entries written to %s\n", r.value("entries", 0LL), out_file.c_str());
  return kExitOk;
}

void print_changed(const std::string& cmd, const json& r) {
  std::printf("%s: %d changed\n", cmd.c_str(), r.value("changed", 0));
  for (const auto& why : r["refused"])
    std::printf("  not changed: %s\n", why.get<std::string>().c_str());
}

int config_check(const std::string& file, bool as_json) {
  auto r = dirgw::config::load_file(file);
  if (as_json) {
    json errs = json::array();
    for (const auto& e : r.errors)
      errs.push_back({{"key", e.key}, {"line", e.line}, {"message", e.message}});
    std::cout << json{{"ok", r.ok()}, {"file", file}, {"errors", errs}}.dump(2) << "\n";
  } else if (r.ok()) {
    std::printf("%s: configuration is valid\n", file.c_str());
  } else {
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.to_string(file).c_str());
    std::fprintf(stderr, "%zu error(s)\n", r.errors.size());
  }
  return r.ok() ? kExitOk : kExitFailed;
}

// What every command shares: where the daemon is and how to print its answer.
struct Global {
  std::string socket_path;
  std::string config_path;
  bool as_json = false;
};

// The daemon's control socket: --socket, else control_socket of --config, else $DIRGW_SOCKET,
// else the packaged default. nullopt after saying why --config cannot be used.
std::optional<std::string> resolve_socket(const Global& g) {
  if (!g.socket_path.empty()) return g.socket_path;
  if (!g.config_path.empty()) {
    auto cfg = dirgw::config::load_file(g.config_path);
    if (!cfg.ok()) {
      std::fprintf(stderr, "dirgw: %s is not a valid configuration (see: dirgw config check %s)\n",
                   g.config_path.c_str(), g.config_path.c_str());
      return std::nullopt;
    }
    return cfg.config->control_socket.string();
  }
  const char* env = std::getenv("DIRGW_SOCKET");
  return env != nullptr ? env : "/run/dirgw/control.sock";
}

using Printer = std::function<int(const json& response)>;

// Sends one request and shows the answer: JSON as it came with --json, else `print`'s table.
int ask_daemon(const Global& g, const json& request, const Printer& print) {
  auto socket_path = resolve_socket(g);
  if (!socket_path) return kExitUsage;
  auto response = dirgw::control::call(*socket_path, request);
  if (!response) {
    const auto& e = response.error();
    if (g.as_json)
      std::cout << json{{"ok", false}, {"daemon", "down"}, {"error", e.detail}}.dump(2) << "\n";
    std::fprintf(stderr, "dirgw: %s\n", e.detail.c_str());
    if (e.code == dirgw::ErrorCode::kRefused) return kExitPermission;
    return e.code == dirgw::ErrorCode::kUnavailable ? kExitDaemonDown : kExitFailed;
  }
  const json& r = *response;
  if (!r.value("ok", false)) {
    if (g.as_json) std::cout << r.dump(2) << "\n";
    std::fprintf(stderr, "dirgw: %s\n", r.value("error", std::string("request refused")).c_str());
    return kExitFailed;
  }
  if (g.as_json) {
    std::cout << r.dump(2) << "\n";
    return kExitOk;
  }
  return print(r);
}

// What the chosen command does once the whole command line is parsed (options of the tool may
// follow the command, so nothing runs from inside the parser).
using Action = std::function<int()>;

// Reads an option's value only when it was given, so the request carries the same keys as
// before: a key the operator did not name is absent, not empty.
void put_if(json& request, const char* key, const CLI::Option* option, const std::string& value) {
  if (option != nullptr && option->count() > 0) request[key] = value;
}

void add_study_commands(CLI::App& app, const Global& g, Action& action) {
  auto* status = app.add_subcommand("status",
                                    "is the daemon up; studies and instances per state; per\n"
                                    "destination: backlog, last success, last error");
  status->callback([&g, &action] {
    action = [&g] {
      return ask_daemon(g, {{"cmd", "status"}}, [](const json& r) {
        print_status(r);
        return kExitOk;
      });
    };
  });

  auto* sources = app.add_subcommand(
      "sources",
      "watched folders and polled PACS: last and next scan or poll, taken, rejected, last error; "
      "HL7 reports by state");
  sources->callback([&g, &action] {
    action = [&g] {
      return ask_daemon(g, {{"cmd", "sources"}}, [](const json& r) {
        print_sources(r);
        return kExitOk;
      });
    };
  });

  struct Reports {
    std::string state;
    int limit = 0;
  };
  auto rp = std::make_shared<Reports>();
  auto* reports = app.add_subcommand(
      "reports",
      "HL7 reports, newest first: message (MSH-3/4/10), status, state (waiting, held, refused, "
      "done, superseded, expired), and why, or the study it joined");
  auto* rstate =
      reports->add_option("--state", rp->state, "only reports in this state")->type_name("S");
  auto* rlimit =
      reports->add_option("--limit", rp->limit, "at most N (default 50)")->type_name("N");
  reports->callback([&g, &action, rp, rstate, rlimit] {
    action = [&g, rp, rstate, rlimit] {
      json req = {{"cmd", "reports"}};
      put_if(req, "state", rstate, rp->state);
      if (rlimit->count() > 0) req["limit"] = rp->limit;
      return ask_daemon(g, req, [](const json& r) {
        print_reports(r);
        return kExitOk;
      });
    };
  });

  struct Studies {
    std::string state, destination;
    int limit = 0;
  };
  auto s = std::make_shared<Studies>();
  auto* studies = app.add_subcommand("studies", "recent studies with their state per destination");
  auto* state_opt =
      studies->add_option("--state", s->state, "only studies in this state")->type_name("S");
  auto* dest_opt =
      studies->add_option("--destination", s->destination, "only this destination")->type_name("D");
  auto* limit_opt =
      studies->add_option("--limit", s->limit, "at most N studies (default 100)")->type_name("N");
  studies->callback([&g, &action, s, state_opt, dest_opt, limit_opt] {
    action = [&g, s, state_opt, dest_opt, limit_opt] {
      json req = {{"cmd", "studies"}};
      put_if(req, "state", state_opt, s->state);
      put_if(req, "destination", dest_opt, s->destination);
      if (limit_opt->count() > 0) req["limit"] = s->limit;
      return ask_daemon(g, req, [](const json& r) {
        print_studies(r);
        return kExitOk;
      });
    };
  });

  // study, retry, hold and release name one study (retry: or every FAILED one).
  struct OneStudy {
    const char* name;
    const char* description;
  };
  for (const OneStudy& c :
       {OneStudy{"study",
                 "one study: state and rounds per destination, every\n"
                 "instance with its deliveries, attempts and errors"},
        OneStudy{"retry",
                 "send again now: a FAILED or RETRY_WAIT study (UID), or every\n"
                 "FAILED study (--failed)"},
        OneStudy{"hold", "stop a study from being sent until released"},
        OneStudy{"release", "let a HELD study go"},
        OneStudy{"prioritize",
                 "make a study STAT: sent before older work, and outside\n"
                 "upload windows where the destination allows (stat_bypass)"}}) {
    struct Values {
      std::string uid, destination, reason;
      bool failed = false;
    };
    auto v = std::make_shared<Values>();
    const std::string name = c.name;
    auto* sub = app.add_subcommand(name, c.description);
    auto* uid = sub->add_option("UID", v->uid, "the study instance UID")->type_name("");
    CLI::Option* dest =
        name == "prioritize"
            ? nullptr
            : sub->add_option("--destination", v->destination,
                              name == "study" ? "only this destination" : "only for this one")
                  ->type_name("D");
    CLI::Option* reason = nullptr;
    CLI::Option* failed = nullptr;
    if (name == "retry") {
      failed = sub->add_flag("--failed", v->failed, "every FAILED study");
    } else {
      uid->required();
    }
    if (name == "hold")
      reason = sub->add_option("--reason", v->reason, "recorded with the hold")->type_name("TEXT");
    sub->callback([&g, &action, v, name, uid, dest, reason, failed] {
      if (failed != nullptr && uid->count() == 0 && !v->failed)
        throw CLI::RequiredError("UID or --failed");
      action = [&g, v, name, uid, dest, reason] {
        json req = {{"cmd", name}};
        put_if(req, "destination", dest, v->destination);
        if (reason != nullptr) put_if(req, "reason", reason, v->reason);
        if (v->failed) req["all_failed"] = true;
        put_if(req, "study_uid", uid, v->uid);
        return ask_daemon(g, req, [name](const json& r) {
          if (name == "study")
            print_study(r);
          else
            print_changed(name, r);
          return kExitOk;
        });
      };
    });
  }
}

void add_purge_command(CLI::App& app, const Global& g, Action& action) {
  auto dry_run = std::make_shared<bool>(false);
  auto* purge =
      app.add_subcommand("purge",
                         "remove spool files every destination has verified and that are\n"
                         "past retention.keep_after_verified (below the spool floor: the\n"
                         "oldest verified ones), then the catalog rows of finished studies\n"
                         "past retention.report_days; --dry-run lists what would go");
  purge->add_flag("--dry-run", *dry_run, "list what would go, remove nothing");
  purge->callback([&g, &action, dry_run] {
    action = [&g, dry_run] {
      return ask_daemon(g, {{"cmd", "purge"}, {"dry_run", *dry_run}}, [](const json& r) {
        print_purge(r);
        return kExitOk;
      });
    };
  });
}

// dirgw priors fetch|list (issue 18, docs/priors.md).
void print_priors_list(const json& r) {
  std::printf("%-8s %-20s %-10s %-24s %s\n", "REQUEST", "WHEN", "STATE", "TRIGGER",
              "FOUND/FETCHED");
  for (const auto& q : r.value("requests", json::array()))
    std::printf("%-8lld %-20s %-10s %-24s %d/%d %s\n", q.value("id", 0LL),
                q.value("created", "").c_str(), q.value("state", "").c_str(),
                q.value("trigger", "").c_str(), q.value("found", 0), q.value("fetched", 0),
                q.value("error", "").c_str());
  std::printf("\n%-64s %-10s %-8s %-10s %-20s %s\n", "STUDY", "DATE", "MODALITY", "STATE",
              "FETCHED", "TRIGGER");
  for (const auto& s : r.value("studies", json::array()))
    std::printf("%-64s %-10s %-8s %-10s %-20s %s\n", s.value("study_uid", "").c_str(),
                s.value("study_date", "").c_str(), s.value("modalities", "").c_str(),
                s.value("state", "").c_str(), s.value("fetched", "").c_str(),
                s.value("trigger", "").c_str());
}

void add_priors_commands(CLI::App& app, const Global& g, Action& action) {
  auto* priors = app.add_subcommand(
      "priors",
      "fetch PATIENT [--since 5y] [--procedure CODE | --body-part PART], list [PATIENT]:\n"
      "a patient's prior studies from the regional repository into the local PACS, and what\n"
      "was fetched, when, why");
  priors->require_subcommand(1);
  struct Values {
    std::string patient, since, health_number, procedure, body_part;
  };
  auto v = std::make_shared<Values>();
  auto* fetch = priors->add_subcommand("fetch", "search the repository now and fetch the priors");
  fetch->add_option("PATIENT", v->patient, "mrn:ISSUER:MRN (or the MRN, with priors.mrn_issuer)")
      ->type_name("")
      ->required();
  auto* since = fetch->add_option("--since", v->since, "how far back, e.g. 5y, 18m (months), 90d")
                    ->type_name("AGE");
  auto* hn = fetch
                 ->add_option("--health-number", v->health_number,
                              "the patient's health number (default: the MRN table)")
                 ->type_name("HN");
  auto* procedure =
      fetch
          ->add_option("--procedure", v->procedure,
                       "the ordered exam's procedure code, SCHEME:CODE or CODE: only the priors\n"
                       "priors.rules.relevance maps it to")
          ->type_name("CODE");
  auto* body_part = fetch
                        ->add_option("--body-part", v->body_part,
                                     "the ordered exam's body part, e.g. CHEST: only the priors\n"
                                     "priors.rules.relevance maps it to")
                        ->type_name("PART");
  fetch->callback([&g, &action, v, since, hn, procedure, body_part] {
    action = [&g, v, since, hn, procedure, body_part] {
      json req = {{"cmd", "priors"}, {"action", "fetch"}, {"patient", v->patient}};
      put_if(req, "since", since, v->since);
      put_if(req, "health_number", hn, v->health_number);
      put_if(req, "procedure", procedure, v->procedure);
      put_if(req, "body_part", body_part, v->body_part);
      return ask_daemon(g, req, [](const json& r) {
        std::printf("request %lld: %s; %d prior(s) selected, %d fetched%s%s\n",
                    r.value("request", 0LL), r.value("state", "").c_str(), r.value("found", 0),
                    r.value("fetched", 0), r.value("error", "").empty() ? "" : "; ",
                    r.value("error", "").c_str());
        return kExitOk;
      });
    };
  });
  auto lv = std::make_shared<std::string>();
  auto* list = priors->add_subcommand("list", "requests and fetched priors, newest first");
  list->add_option("PATIENT", *lv, "mrn:ISSUER:MRN or the MRN (default: every patient)")
      ->type_name("");
  list->callback([&g, &action, lv] {
    action = [&g, lv] {
      json req = {{"cmd", "priors"}, {"action", "list"}};
      if (!lv->empty()) req["patient"] = *lv;
      return ask_daemon(g, req, [](const json& r) {
        print_priors_list(r);
        return kExitOk;
      });
    };
  });
}

// report.pacs: each PACS's own count of the studies of the day, and what dirgw holds of them.
void print_report_pacs(const json& pacs) {
  for (const auto& p : pacs) {
    if (!p.value("available", false)) {
      std::printf("  PACS %s (%s): unavailable: %s\n", str(p, "pacs").c_str(),
                  str(p, "ae_title").c_str(), str(p, "reason").c_str());
      continue;
    }
    const auto& never = p["never_received"];
    std::printf(
        "  PACS %s (%s), Study Date %s: %lld studies, %lld instances; dirgw received %lld "
        "studies, %lld instances of them; %zu studies never received\n",
        str(p, "pacs").c_str(), str(p, "ae_title").c_str(), str(p, "study_date").c_str(),
        p.value("studies", 0LL), p.value("instances", 0LL), p.value("received_studies", 0LL),
        p.value("received_instances", 0LL), never.size());
    for (const auto& uid : never)
      std::printf("    never received: %s\n", uid.get<std::string>().c_str());
  }
}

// dirgw report: the daily reconciliation report as a table, its check line last.
void print_report(const json& rep) {
  std::printf("day %s (%s): %lld instances, %lld studies received; PACS count: %s\n",
              str(rep, "day").c_str(), str(rep, "time_zone").c_str(),
              rep["received"].value("instances", 0LL), rep["received"].value("studies", 0LL),
              str(rep, "pacs_count").c_str());
  for (const auto& [source, c] : rep["received"]["by_source"].items())
    std::printf("  from %-24s %6lld instances %4lld studies\n", source.c_str(),
                c.value("instances", 0LL), c.value("studies", 0LL));
  print_report_pacs(rep.value("pacs", json::array()));
  static constexpr const char* kColumns[] = {"verified",    "sent", "failed",     "withdrawn",
                                             "quarantined", "held", "superseded", "pending"};
  std::printf("%-16s %9s %7s", "destination", "instances", "studies");
  for (const char* c : kColumns) std::printf(" %11s", c);
  std::printf("  oldest pending\n");
  for (const auto& d : rep.value("destinations", json::array())) {
    std::printf("%-16s %9lld %7lld", str(d, "destination").c_str(), d.value("instances", 0LL),
                d.value("studies", 0LL));
    for (const char* c : kColumns) std::printf(" %11lld", d.value(c, 0LL));
    const auto& age = d["oldest_pending_age_s"];
    std::printf("  %s\n", age.is_number() ? human_duration(age.get<long long>()).c_str() : "-");
    for (const char* what : {"quarantined_by_reason", "held_by_reason"}) {
      const json reasons = d.value(what, json::object());  // items() must not outlive it
      for (const auto& [code, n] : reasons.items())
        std::printf("    %s %s: %lld\n", what, code.c_str(), n.get<long long>());
    }
  }
  std::printf("%s", str(rep, "check").c_str());
}

void add_report_command(CLI::App& app, const Global& g, Action& action) {
  struct Values {
    std::string day, destination;
    bool csv = false, write = false, from_audit = false;
  };
  auto v = std::make_shared<Values>();
  auto* report = app.add_subcommand("report",
                                    "the daily reconciliation report: per destination, what was\n"
                                    "received on a facility day and where each instance stands");
  report->add_option("--day", v->day, "the facility day (default: yesterday)")
      ->type_name("YYYY-MM-DD");
  report->add_option("--destination", v->destination, "only this destination")->type_name("NAME");
  report->add_flag("--csv", v->csv, "print CSV (as the nightly file)");
  report->add_flag("--write", v->write,
                   "write the day's JSON and CSV files into report.folder now");
  report->add_flag("--from-audit", v->from_audit,
                   "rebuild the report from the audit trail alone (a cross-check)");
  report->callback([&g, &action, v] {
    action = [&g, v] {
      json request = {{"cmd", "report"}};
      if (!v->day.empty()) request["day"] = v->day;
      if (!v->destination.empty()) request["destination"] = v->destination;
      if (v->from_audit) request["from_audit"] = true;
      if (v->write) {
        request["write"] = true;
        return ask_daemon(g, request, [](const json& r) {
          for (const auto& f : r.value("written", json::array()))
            std::printf("written %s\n", f.get<std::string>().c_str());
          return kExitOk;
        });
      }
      Global plain = g;
      plain.as_json = false;  // --json prints the report itself, not the reply around it
      return ask_daemon(plain, request, [&g, v](const json& r) {
        if (g.as_json)
          std::cout << r["report"].dump(2) << "\n";
        else if (v->csv)
          std::cout << r.value("csv", std::string());
        else
          print_report(r["report"]);
        return r["report"].value("adds_up", false) ? kExitOk : kExitFailed;
      });
    };
  });
}

void add_consent_commands(CLI::App& app, const Global& g, Action& action) {
  auto* consent =
      app.add_subcommand("consent",
                         "grant|withdraw|show PATIENT, import FILE.csv: a patient's consent\n"
                         "or its withdrawal (withdrawal stops every unsent study of the\n"
                         "patient at once)");
  consent->require_subcommand(1);
  struct Values {
    std::string patient, destination;
  };
  struct ConsentAction {
    const char* name;
    const char* description;
    const char* what;
  };
  for (const ConsentAction& a :
       {ConsentAction{"grant", "record a patient's consent", "PATIENT"},
        ConsentAction{"withdraw", "record a withdrawal: every unsent study of the patient stops",
                      "PATIENT"},
        ConsentAction{"show", "identifiers, consent history and state per destination", "PATIENT"},
        ConsentAction{"import",
                      "bulk: columns health_number,mrn_issuer,mrn,decision;\n"
                      "rejected rows are listed with their line numbers",
                      "FILE.csv"}}) {
    auto v = std::make_shared<Values>();
    const std::string name = a.name;
    auto* sub = consent->add_subcommand(name, a.description);
    sub->add_option(
           a.what, v->patient,
           name == "import" ? "the CSV file" : "hn:NUMBER, hn:ISSUER:NUMBER or mrn:ISSUER:MRN")
        ->type_name("")
        ->required();
    auto* dest = sub->add_option("--destination", v->destination, "only for this destination")
                     ->type_name("D");
    sub->callback([&g, &action, v, name, dest] {
      action = [&g, v, name, dest] {
        json req = {{"cmd", "consent"}, {"action", name}};
        put_if(req, "scope", dest, v->destination);
        if (name == "import") {
          if (!consent_rows(v->patient, req)) return kExitUsage;
        } else {
          req["patient"] = v->patient;
        }
        return ask_daemon(g, req, [name, req](const json& r) {
          print_consent(name, req, r);
          return kExitOk;
        });
      };
    });
  }

  auto* mrn =
      app.add_subcommand("mrn",
                         "import FILE.csv: the MRN -> health number table used by coercion:\n"
                         "columns mrn_issuer,mrn,health_number; rejected rows listed by line");
  mrn->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* import = mrn->add_subcommand("import", "load the MRN -> health number table");
  import->add_option("FILE.csv", *file, "columns mrn_issuer,mrn,health_number")
      ->type_name("")
      ->required();
  import->callback([&g, &action, file] {
    action = [&g, file] {
      auto rows = mrn_rows(*file);
  if (!rows) return kExitUsage;
  return ask_daemon(g, {{"cmd", "mrn_import"}, {"rows", *rows}}, [](const json& r) {
    std::printf("imported %d row(s); %zu rejected\n", r.value("accepted", 0), r["rejected"].size());
    for (const auto& x : r["rejected"])
      std::printf("  line %d: %s\n", x.value("line", 0), str(x, "reason").c_str());
    return kExitOk;
  });
};
}  // namespace
);
}

void add_quarantine_commands(CLI::App& app, const Global& g, Action& action) {
  auto* quarantine =
      app.add_subcommand("quarantine",
                         "list | show UID | release UID | delete UID [--yes]: studies\n"
                         "that failed validation");
  quarantine->require_subcommand(1);
  struct Values {
    std::string uid;
    bool yes = false;
    std::string reviewed;  // release --reviewed-burned-in DEST
  };
  struct Sub {
    const char* name;
    const char* description;
  };
  for (const Sub& q :
       {Sub{"list", "studies that failed validation"}, Sub{"show", "every reason, per instance"},
        Sub{"release", "run policy again (after a fix)"},
        Sub{"delete", "delete a quarantined study and its objects (asks first)"}}) {
    auto v = std::make_shared<Values>();
    const std::string name = q.name;
    auto* sub = quarantine->add_subcommand(name, q.description);
    if (name != "list")
      sub->add_option("UID", v->uid, "the study instance UID")->type_name("")->required();
    if (name == "delete") sub->add_flag("--yes", v->yes, "do not ask");
    if (name == "release")
      sub->add_option("--reviewed-burned-in", v->reviewed,
                      "DEST: you looked at the images and they carry no identifying burned-in\n"
                      "text: DEST (a de-identifying destination) takes them (audited)")
          ->type_name("DEST");
    sub->callback([&g, &action, v, name] {
      action = [&g, v, name] {
        json req = {{"cmd", "quarantine"}, {"action", name}};
        if (name != "list") req["study_uid"] = v->uid;
        if (!v->reviewed.empty()) req["reviewed_burned_in"] = v->reviewed;
        bool confirmed = v->yes;
        if (name == "delete" && !confirmed) {
          if (!confirm_delete(v->uid)) return kExitUsage;
          confirmed = true;
        }
        req["confirmed"] = confirmed;
        return ask_daemon(g, req, [name](const json& r) {
          print_quarantine(name, r);
          return kExitOk;
        });
      };
    });
  }
}

void add_audit_commands(CLI::App& app, const Global& g, Action& action) {
  auto* audit = app.add_subcommand("audit",
                                   "verify | export --since T [--out FILE]: prove the audit trail\n"
                                   "intact, or write it as DICOM audit messages (PS3.15 A.5)");
  audit->require_subcommand(1);
  auto* verify =
      audit->add_subcommand("verify", "prove the audit trail intact, or name its first bad entry");
  verify->callback([&g, &action] {
    action = [&g] {
      return ask_daemon(g, {{"cmd", "audit"}, {"action", "verify"}}, print_audit_verify);
    };
  });

  struct Values {
    std::string since, out;
  };
  auto v = std::make_shared<Values>();
  auto* exp = audit->add_subcommand("export", "DICOM audit messages (PS3.15 A.5) since T");
  exp->add_option("--since", v->since,
                  "a date (2026-11-28), a UTC time (2026-11-28T10:00:00Z) or an\n"
                  "age (24h, 7d)")
      ->type_name("T")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return parse_since(text) ? "" : "takes 2026-11-28, 2026-11-28T10:00:00Z or 24h/7d";
          },
          "", "time"));
  exp->add_option("--out", v->out, "write to FILE instead of standard output")->type_name("FILE");
  exp->callback([&g, &action, v] {
    action = [&g, v] {
      json req = {{"cmd", "audit"}, {"action", "export"}, {"since_ms", 0}};
      if (!v->since.empty()) req["since_ms"] = *parse_since(v->since);
      return ask_daemon(g, req, [v](const json& r) { return write_audit_export(r, v->out); });
    };
  });
}

void add_config_commands(CLI::App& app, const Global& g, Action& action) {
  auto* config =
      app.add_subcommand("config", "check FILE: validate a configuration file (needs no daemon)");
  config->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* check = config->add_subcommand("check", "validate a configuration file (needs no daemon)");
  check->add_option("FILE", *file, "the configuration file")->type_name("")->required();
  check->callback(
      [&g, &action, file] { action = [&g, file] { return config_check(*file, g.as_json); }; });
}

void add_deid_commands(CLI::App& app, const Global& g, Action& action) {
  auto* deid = app.add_subcommand(
      "deid", "preview FILE --destination NAME: what de-identification would change (no daemon)");
  deid->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto dest = std::make_shared<std::string>();
  auto* preview = deid->add_subcommand(
      "preview", "what a destination's de-identification would change in FILE (sends nothing)");
  preview->add_option("FILE", *file, "a DICOM file")->type_name("")->required();
  preview->add_option("--destination", *dest, "a destination with a deidentify: block")
      ->type_name("NAME")
      ->required();
  preview->callback([&g, &action, file, dest] {
    action = [&g, file, dest] {
      const std::string cfg = g.config_path.empty() ? "/etc/dirgw/dirgw.yaml" : g.config_path;
      return dirgw::cli::deid_preview(cfg, *dest, *file, g.as_json);
    };
  });
}

// The deepest command the parser entered, for an error's usage line.
const CLI::App* chosen(const CLI::App& app) {
  const CLI::App* a = &app;
  while (!a->get_subcommands().empty()) a = a->get_subcommands().front();
  return a;
}

std::string command_path(const CLI::App* a) {
  std::string path;
  for (; a != nullptr; a = a->get_parent()) path = a->get_name() + (path.empty() ? "" : " ") + path;
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  Global g;
  Action action;
  CLI::App app(
      "dirgw: look at and steer the dirgw imaging gateway through its daemon's control socket;\n"
      "tables for people, the daemon's answer as JSON (--json) for scripts.",
      "dirgw");
  auto formatter = std::make_shared<CLI::Formatter>();
  formatter->label("SUBCOMMAND", "COMMAND");
  app.formatter(formatter);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_help_flag("-h,--help", "this text");
  app.set_version_flag("--version", "dirgw " DIRGW_VERSION, "the version");
  app.add_option("--socket", g.socket_path,
                 "the daemon's control socket (default: control_socket\n"
                 "from --config, else $DIRGW_SOCKET, else /run/dirgw/control.sock)")
      ->type_name("PATH");
  app.add_option("--config", g.config_path, "read the control socket path from this configuration")
      ->type_name("FILE");
  app.add_flag("--json", g.as_json, "print the daemon's answer as JSON");
  app.require_subcommand(1);
  app.fallthrough();  // --json, --socket and --config may follow the command, as they always could
  app.group("Commands");
  app.footer(kCommandFooter);  // what every command inherits; the tool's own is set below

  add_study_commands(app, g, action);
  add_purge_command(app, g, action);
  add_report_command(app, g, action);
  add_consent_commands(app, g, action);
  add_priors_commands(app, g, action);
  add_quarantine_commands(app, g, action);
  add_audit_commands(app, g, action);
  add_config_commands(app, g, action);
  add_deid_commands(app, g, action);
  app.footer(kFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    const CLI::App* where = chosen(app);
    if (where == &app && argc == 1) {
      std::cerr << app.help();
      return kExitUsage;
    }
    // A word where a command belongs: name it, rather than say that a command is missing.
    std::string what = e.what();
    const auto left = app.remaining(true);
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr &&
        where->get_subcommands().empty() && !left.empty())
      what = (left.front().starts_with("-") ? "unknown option '" : "unknown command '") +
             left.front() + "'";
    std::cerr << "dirgw: " << what << "\n"
              << formatter->make_usage(where, command_path(where)) << "Run '" << command_path(where)
              << " --help' for more.\n";
    return kExitUsage;
  }
  return action();
}
