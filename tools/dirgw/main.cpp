// dirgw: the command-line tool for IT staff. It talks to the daemon over its control socket
// and prints tables for people or JSON (--json) for scripts.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/protocol.h"

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitDaemonDown = 3;
constexpr int kExitPermission = 4;

constexpr const char* kUsage =
    "Usage: dirgw [--socket PATH | --config FILE] COMMAND [--json]\n"
    "\n"
    "Commands:\n"
    "  status                      is the daemon up; studies and instances per state; per\n"
    "                              destination: backlog, last success, last error\n"
    "  studies [--state S] [--destination D] [--limit N]\n"
    "                              recent studies with their state per destination\n"
    "  study UID                   one study: state and rounds per destination, every\n"
    "                              instance with its deliveries, attempts and errors\n"
    "  retry UID | --failed [--destination D]\n"
    "                              send again now: a FAILED or RETRY_WAIT study, or every\n"
    "                              FAILED study\n"
    "  hold UID [--destination D] [--reason TEXT]\n"
    "                              stop a study from being sent until released\n"
    "  release UID [--destination D]\n"
    "                              let a HELD study go\n"
    "  consent grant|withdraw PATIENT [--destination D]\n"
    "                              record a patient's consent or its withdrawal (withdrawal\n"
    "                              stops every unsent study of the patient at once)\n"
    "  consent show PATIENT        identifiers, consent history and state per destination\n"
    "  consent import FILE.csv [--destination D]\n"
    "                              bulk: columns health_number,mrn_issuer,mrn,decision;\n"
    "                              rejected rows are listed with their line numbers\n"
    "                              PATIENT: hn:NUMBER, hn:ISSUER:NUMBER or mrn:ISSUER:MRN\n"
    "  mrn import FILE.csv         the MRN -> health number table used by coercion: columns\n"
    "                              mrn_issuer,mrn,health_number; rejected rows listed by line\n"
    "  quarantine list             studies that failed validation\n"
    "  quarantine show UID         every reason, per instance\n"
    "  quarantine release UID      run policy again (after a fix)\n"
    "  quarantine delete UID [--yes]\n"
    "                              delete a quarantined study and its objects (asks first)\n"
    "  audit verify                prove the audit trail intact, or name its first bad entry\n"
    "  audit export --since T [--out FILE]\n"
    "                              DICOM audit messages (PS3.15 A.5) since T: a date\n"
    "                              (2026-11-28), a UTC time (2026-11-28T10:00:00Z) or an age\n"
    "                              (24h, 7d)\n"
    "  config check FILE           validate a configuration file (needs no daemon)\n"
    "\n"
    "Options:\n"
    "  --socket PATH   the daemon's control socket (default: control_socket from --config,\n"
    "                  else $DIRGW_SOCKET, else /run/dirgw/control.sock)\n"
    "  --config FILE   read the control socket path from this configuration\n"
    "  --json          print the daemon's answer as JSON\n"
    "  -h, --help      this text;  --version  the version\n"
    "\n"
    "Exit codes: 0 ok, 1 request failed or refused, 2 usage error, 3 daemon not running,\n"
    "            4 permission denied on the control socket.\n";

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

void print_status(const json& r) {
  std::printf("dirgw daemon: running (pid %s, version %s, since %s)\n", str(r, "pid").c_str(),
              str(r, "version").c_str(), str(r, "started_at").c_str());
  if (r.contains("facility") && !r["facility"].get<std::string>().empty())
    std::printf("facility:     %s\n", r["facility"].get<std::string>().c_str());
  const auto& c = r["catalog"];
  std::printf("catalog:      %lld studies, %lld instances, %s (schema %d)\n",
              c.value("studies", 0LL), c.value("instances", 0LL),
              human_bytes(c.value("bytes", 0.0)).c_str(), c.value("schema", 0));
  print_states(c["states"], "              ");
  if (r.contains("ingest") && r["ingest"].contains("dicom")) {
    const auto& d = r["ingest"]["dicom"];
    std::printf("dicom ingest: AE %s port %s; %s active, %s stored, %s duplicates, %s refused\n",
                str(d, "ae_title").c_str(), str(d, "port").c_str(),
                str(d, "associations_active").c_str(), str(d, "stored").c_str(),
                str(d, "duplicates").c_str(), str(d, "refused").c_str());
  }
  const auto& sp = r["spool"];
  std::printf("spool:        %s free (floor %s)%s\n",
              human_bytes(sp.value("free_bytes", 0.0)).c_str(),
              human_bytes(sp.value("floor_bytes", 0.0)).c_str(),
              sp.value("below_floor", false) ? "  WARNING: below floor, new objects refused" : "");
  for (const auto& d : r["destinations"]) {
    std::printf("destination %s (%s)\n", str(d, "name").c_str(), str(d, "url").c_str());
    print_states(d["states"], "  ");
    std::printf(
        "  backlog:      %lld instances, %s, oldest since %s\n", d.value("pending_instances", 0LL),
        human_bytes(d.value("pending_bytes", 0.0)).c_str(), str(d, "oldest_pending_at").c_str());
    std::printf("  last success: %s   current rate: %.1f instances/s\n",
                str(d, "last_success_at", "never").c_str(), d.value("rate_instances_per_s", 0.0));
    if (d.value("circuit", std::string("closed")) != "closed")
      std::printf("  circuit:      %s (%s failed requests in a row; next probe %s)\n",
                  str(d, "circuit").c_str(), str(d, "circuit_failures").c_str(),
                  str(d, "circuit_probe_at").c_str());
    if (!d.value("last_error", std::string()).empty())
      std::printf("  last error:   %s at %s\n", str(d, "last_error").c_str(),
                  str(d, "last_error_at").c_str());
    else
      std::printf("  last error:   none\n");
  }
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
                str(rf["last"], "calling_ae", "").c_str(), str(rf["last"], "peer").c_str(),
                str(rf["last"], "reason").c_str());
  std::printf("\n");
}

void print_studies(const json& r) {
  std::printf("%-64s %-10s %9s %10s  %s\n", "STUDY UID", "INGEST", "INSTANCES", "SIZE",
              "DESTINATIONS");
  for (const auto& s : r["studies"]) {
    std::string dests;
    for (const auto& [name, state] : s["destinations"].items())
      dests += (dests.empty() ? "" : ", ") + name + "=" + state.get<std::string>();
    std::printf("%-64s %-10s %9lld %10s  %s\n", str(s, "study_uid").c_str(),
                str(s, "state").c_str(), s.value("instances", 0LL),
                human_bytes(s.value("bytes", 0.0)).c_str(), dests.c_str());
  }
}

void print_study(const json& r) {
  std::printf("study %s\n", str(r, "study_uid").c_str());
  std::printf("  ingest: %s, %lld instances, %s, received %s .. %s\n", str(r, "state").c_str(),
              r.value("instances", 0LL), human_bytes(r.value("bytes", 0.0)).c_str(),
              str(r, "first_received_at").c_str(), str(r, "last_received_at").c_str());
  for (const auto& d : r["destinations"]) {
    std::printf("  %s: %s (round %s)%s%s\n", str(d, "destination").c_str(), str(d, "state").c_str(),
                str(d, "round").c_str(), d.value("reason", std::string()).empty() ? "" : " — ",
                d.value("reason", std::string()).c_str());
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
    }
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

std::optional<json> consent_request(const std::vector<std::string>& args) {
  const char* usage =
      "usage: dirgw consent grant|withdraw|show PATIENT [--destination D]\n"
      "       dirgw consent import FILE.csv [--destination D]\n";
  if (args.size() < 3) {
    std::fputs(usage, stderr);
    return std::nullopt;
  }
  json req = {{"cmd", "consent"}, {"action", args[1]}};
  for (std::size_t i = 3; i < args.size(); ++i) {
    if (args[i] == "--destination" && i + 1 < args.size()) {
      req["scope"] = args[++i];
    } else {
      std::fputs(usage, stderr);
      return std::nullopt;
    }
  }
  if (args[1] == "grant" || args[1] == "withdraw" || args[1] == "show") {
    req["patient"] = args[2];
    return req;
  }
  if (args[1] != "import") {
    std::fputs(usage, stderr);
    return std::nullopt;
  }
  std::ifstream in(args[2]);
  if (!in) {
    std::fprintf(stderr, "dirgw: cannot read %s\n", args[2].c_str());
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
                     args[2].c_str(), n);
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
  req["file"] = std::filesystem::path(args[2]).filename().string();
  req["cli_rejected"] = early;
  return req;
}

std::optional<json> quarantine_request(const std::vector<std::string>& args) {
  const char* usage =
      "usage: dirgw quarantine list | show UID | release UID | delete UID [--yes]\n";
  if (args.size() < 2) {
    std::fputs(usage, stderr);
    return std::nullopt;
  }
  json req = {{"cmd", "quarantine"}, {"action", args[1]}};
  bool yes = false;
  for (std::size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "--yes") {
      yes = true;
    } else if (!req.contains("study_uid") && args[i].rfind("--", 0) != 0) {
      req["study_uid"] = args[i];
    } else {
      std::fputs(usage, stderr);
      return std::nullopt;
    }
  }
  if (args[1] != "list" && !req.contains("study_uid")) {
    std::fputs(usage, stderr);
    return std::nullopt;
  }
  if (args[1] == "delete" && !yes) {
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "dirgw: deleting needs confirmation: add --yes\n");
      return std::nullopt;
    }
    std::fprintf(stderr, "Delete quarantined study %s and its objects for good? [y/N] ",
                 req["study_uid"].get<std::string>().c_str());
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::fprintf(stderr, "not deleted\n");
      return std::nullopt;
    }
    yes = true;
  }
  req["confirmed"] = yes;
  return req;
}

void print_consent(const json& req, const json& r) {
  const std::string action = req.value("action", "");
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

void print_quarantine(const json& req, const json& r) {
  const std::string action = req.value("action", "");
  if (action == "list") {
    std::printf("%-64s %9s %8s  %s\n", "STUDY UID", "INSTANCES", "FINDINGS", "FIRST REASON");
    for (const auto& s : r["studies"])
      std::printf("%-64s %9lld %8d  %s\n", str(s, "study_uid").c_str(), s.value("instances", 0LL),
                  s.value("findings", 0), str(s, "first_reason").c_str());
  } else if (action == "show") {
    std::printf("study %s: %zu finding(s)\n", str(r, "study_uid").c_str(), r["findings"].size());
    for (const auto& f : r["findings"])
      std::printf("  %s %-32s %-12s %s\n", str(f, "sop_instance_uid").c_str(),
                  str(f, "code").c_str(), str(f, "tag", "").c_str(), str(f, "message").c_str());
  } else if (action == "release") {
    std::printf("released: policy runs again\n");
  } else {
    std::printf("deleted (%s objects removed)\n", str(r, "objects_removed").c_str());
  }
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

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::string socket_path, config_path;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      as_json = true;
    } else if (a == "--socket" && i + 1 < argc) {
      socket_path = argv[++i];
    } else if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if (a == "--version") {
      std::puts("dirgw " DIRGW_VERSION);
      return kExitOk;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  if (args[0] == "config") {
    if (args.size() != 3 || args[1] != "check") {
      std::fprintf(stderr, "usage: dirgw config check FILE\n");
      return kExitUsage;
    }
    return config_check(args[2], as_json);
  }

  if (socket_path.empty() && !config_path.empty()) {
    auto cfg = dirgw::config::load_file(config_path);
    if (!cfg.ok()) {
      std::fprintf(stderr, "dirgw: %s is not a valid configuration (see: dirgw config check %s)\n",
                   config_path.c_str(), config_path.c_str());
      return kExitUsage;
    }
    socket_path = cfg.config->control_socket.string();
  }
  if (socket_path.empty()) {
    const char* env = std::getenv("DIRGW_SOCKET");
    socket_path = env != nullptr ? env : "/run/dirgw/control.sock";
  }

  json request;
  std::string out_file;
  if (args[0] == "audit") {
    if (args.size() >= 2 && args[1] == "verify" && args.size() == 2) {
      request = {{"cmd", "audit"}, {"action", "verify"}};
    } else if (args.size() >= 2 && args[1] == "export") {
      request = {{"cmd", "audit"}, {"action", "export"}, {"since_ms", 0}};
      for (std::size_t i = 2; i < args.size(); ++i) {
        if (args[i] == "--since" && i + 1 < args.size()) {
          auto t = parse_since(args[++i]);
          if (!t) {
            std::fprintf(stderr,
                         "dirgw: --since takes 2026-11-28, 2026-11-28T10:00:00Z or 24h/7d\n");
            return kExitUsage;
          }
          request["since_ms"] = *t;
        } else if (args[i] == "--out" && i + 1 < args.size()) {
          out_file = args[++i];
        } else {
          std::fprintf(stderr, "usage: dirgw audit export --since T [--out FILE]\n");
          return kExitUsage;
        }
      }
    } else {
      std::fprintf(stderr,
                   "usage: dirgw audit verify | dirgw audit export --since T [--out FILE]\n");
      return kExitUsage;
    }
  } else if (args[0] == "consent") {
    auto r = consent_request(args);
    if (!r) return kExitUsage;
    request = *r;
  } else if (args[0] == "mrn") {
    if (args.size() != 3 || args[1] != "import") {
      std::fprintf(stderr, "usage: dirgw mrn import FILE.csv\n");
      return kExitUsage;
    }
    std::ifstream in(args[2]);
    if (!in) {
      std::fprintf(stderr, "dirgw: cannot read %s\n", args[2].c_str());
      return kExitUsage;
    }
    request = {{"cmd", "mrn_import"}, {"rows", json::array()}};
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
              args[2].c_str(), n);
          return kExitUsage;
        }
        continue;
      }
      json row = {{"line", n}};
      for (const auto& [k, i] : col) row[k] = i < f.size() ? f[i] : std::string();
      request["rows"].push_back(row);
    }
  } else if (args[0] == "quarantine") {
    auto r = quarantine_request(args);
    if (!r) return kExitUsage;
    request = *r;
  } else if (args[0] == "status" && args.size() == 1) {
    request = {{"cmd", "status"}};
  } else if (args[0] == "studies") {
    request = {{"cmd", "studies"}};
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--state" && i + 1 < args.size()) {
        request["state"] = args[++i];
      } else if (args[i] == "--destination" && i + 1 < args.size()) {
        request["destination"] = args[++i];
      } else if (args[i] == "--limit" && i + 1 < args.size()) {
        request["limit"] = std::atoi(args[++i].c_str());
      } else {
        std::fprintf(stderr,
                     "usage: dirgw studies [--state S] [--destination D] [--limit N] [--json]\n");
        return kExitUsage;
      }
    }
  } else if (args[0] == "study" || args[0] == "retry" || args[0] == "hold" ||
             args[0] == "release") {
    request = {{"cmd", args[0]}};
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--destination" && i + 1 < args.size()) {
        request["destination"] = args[++i];
      } else if (args[i] == "--reason" && i + 1 < args.size() && args[0] == "hold") {
        request["reason"] = args[++i];
      } else if (args[i] == "--failed" && args[0] == "retry") {
        request["all_failed"] = true;
      } else if (args[i].rfind("--", 0) != 0 && !request.contains("study_uid")) {
        request["study_uid"] = args[i];
      } else {
        std::fprintf(stderr, "dirgw %s: unexpected argument '%s'\n", args[0].c_str(),
                     args[i].c_str());
        return kExitUsage;
      }
    }
    if (!request.contains("study_uid") && !request.value("all_failed", false)) {
      std::fprintf(stderr, "usage: dirgw %s UID%s\n", args[0].c_str(),
                   args[0] == "retry" ? " | --failed" : "");
      return kExitUsage;
    }
  } else {
    std::fprintf(stderr, "dirgw: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
    return kExitUsage;
  }

  auto response = dirgw::control::call(socket_path, request);
  if (!response) {
    const auto& e = response.error();
    if (as_json)
      std::cout << json{{"ok", false}, {"daemon", "down"}, {"error", e.detail}}.dump(2) << "\n";
    std::fprintf(stderr, "dirgw: %s\n", e.detail.c_str());
    if (e.code == dirgw::ErrorCode::kRefused) return kExitPermission;
    return e.code == dirgw::ErrorCode::kUnavailable ? kExitDaemonDown : kExitFailed;
  }
  const json& r = *response;
  if (!r.value("ok", false)) {
    if (as_json) std::cout << r.dump(2) << "\n";
    std::fprintf(stderr, "dirgw: %s\n", r.value("error", std::string("request refused")).c_str());
    return kExitFailed;
  }
  if (as_json) {
    std::cout << r.dump(2) << "\n";
  } else if (args[0] == "status") {
    print_status(r);
  } else if (args[0] == "studies") {
    print_studies(r);
  } else if (args[0] == "study") {
    print_study(r);
  } else if (args[0] == "audit" && request.value("action", "") == "verify") {
    if (r.value("intact", false)) {
      std::printf("audit trail intact: %lld entries verified%s\n", r.value("checked", 0LL),
                  r["anchor"].is_null() ? " (no anchor yet)" : ", anchor matches");
    } else {
      std::printf("AUDIT TRAIL BROKEN at entry %s: %s (%lld entries before it verified)\n",
                  str(r, "first_bad_seq").c_str(), str(r, "reason").c_str(),
                  r.value("checked", 0LL));
      return kExitFailed;
    }
  } else if (args[0] == "audit") {
    const std::string xml = r.value("xml", std::string());
    if (out_file.empty()) {
      std::fwrite(xml.data(), 1, xml.size(), stdout);
    } else {
      std::ofstream f(out_file, std::ios::binary);
      f << xml;
      if (!f) {
        std::fprintf(stderr, "dirgw: cannot write %s\n", out_file.c_str());
        return kExitFailed;
      }
      std::printf("%lld audit entries written to %s\n", r.value("entries", 0LL), out_file.c_str());
    }
  } else if (args[0] == "mrn") {
    std::printf("imported %d row(s); %zu rejected\n", r.value("accepted", 0), r["rejected"].size());
    for (const auto& x : r["rejected"])
      std::printf("  line %d: %s\n", x.value("line", 0), str(x, "reason").c_str());
  } else if (args[0] == "consent") {
    print_consent(request, r);
  } else if (args[0] == "quarantine") {
    print_quarantine(request, r);
  } else {
    std::printf("%s: %d changed\n", args[0].c_str(), r.value("changed", 0));
    for (const auto& why : r["refused"])
      std::printf("  not changed: %s\n", why.get<std::string>().c_str());
  }
  return kExitOk;
}
