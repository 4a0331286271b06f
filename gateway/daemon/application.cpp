#include "daemon/application.h"

#include <grp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>

#include "audit/export.h"
#include "audit/forwarder.h"
#include "catalog/catalog.h"
#include "common/asio.h"
#include "common/crypto.h"
#include "common/files.h"
#include "control/server.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/hl7_mllp/listener.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "log/log.h"
#include "metrics/http_endpoint.h"
#include "metrics/metrics.h"
#include "policy/consent/consent_service.h"
#include "policy/consent/hl7_consent.h"
#include "policy/stage/stage.h"
#include "policy/validate/rules.h"
#include "scheduler/scheduler.h"
#include "senders/sender.h"

namespace dirgw::daemon {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

catalog::NewInstance new_instance(const ingest::PrescanResult& scan, const ingest::StoredObject& o,
                                  const std::string& calling_ae, const std::string& peer);

// Received objects go into the catalog; a new one wakes the scheduler.
class CatalogSink final : public ingest::ObjectSink {
 public:
  CatalogSink(catalog::Catalog& catalog, scheduler::Scheduler*& scheduler,
              catalog::NewVersionPolicy new_versions)
      : catalog_(catalog), scheduler_(scheduler), new_versions_(new_versions) {}

  Result<ingest::SinkOutcome> object_received(const ingest::ReceivedObject& o) override {
    const catalog::NewInstance in = new_instance(o.scan, o.stored, o.calling_ae, o.peer);
    auto r = catalog_.ingest.record_instance(in, new_versions_);
    if (!r) return r.error();
    if (r->kind == catalog::RecordKind::kDuplicate) return ingest::SinkOutcome::kDuplicate;
    if (r->kind == catalog::RecordKind::kNewVersion)
      log::warn(new_versions_ == catalog::NewVersionPolicy::kHold
                    ? "instance received again with different bytes: new version kept, study held"
                    : "instance received again with different bytes: new version kept and sent",
                {{"sop_instance_uid", in.sop_instance_uid}, {"study_uid", in.study_uid}});
    if (scheduler_ != nullptr) scheduler_->instance_received();
    return ingest::SinkOutcome::kStored;
  }

  void refused(const std::string& calling_ae, const std::string& peer,
               const std::string& reason) override {
    auto r = catalog_.ingest.record_refusal({0, "dicom", calling_ae, peer, reason});
    if (!r) log::error("cannot record a refusal", {{"error", r.error().to_string()}});
  }

 private:
  catalog::Catalog& catalog_;
  scheduler::Scheduler*& scheduler_;
  catalog::NewVersionPolicy new_versions_;
};

catalog::NewInstance new_instance(const ingest::PrescanResult& scan, const ingest::StoredObject& o,
                                  const std::string& calling_ae, const std::string& peer) {
  catalog::NewInstance in;
  in.study_uid = scan.study_uid;
  in.series_uid = scan.series_uid;
  in.sop_instance_uid = scan.dataset_sop_instance_uid;
  in.sop_class_uid = scan.dataset_sop_class_uid;
  in.transfer_syntax = scan.transfer_syntax;
  in.modality = scan.modality;
  in.sha256 = o.sha256;
  in.size = o.size;
  in.calling_ae = calling_ae;
  in.peer = peer;
  return in;
}

json state_counts(const std::vector<catalog::StateCount>& states) {
  json out = json::array();
  for (const auto& s : states)
    out.push_back({{"state", s.state}, {"studies", s.studies}, {"instances", s.instances}});
  return out;
}

json time_or_null(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  return format_utc_ms(ms);
}

Result<std::string> load_or_create_key(const std::filesystem::path& file) {
  auto existing = read_small_file(file, 4096);
  if (existing && existing->size() >= 32) return *existing;
  std::string key = random_hex(32);
  if (auto w = write_file_durably(file, key, 0600); !w) return w.error();
  return key;
}

}  // namespace

std::string actor_of(const control::Peer& peer);

struct Application::Impl {
  config::Config config;
  SystemClock clock;
  asio::io_context io;
  metrics::Registry registry;
  std::unique_ptr<metrics::GatewayMetrics> metrics;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint;
  std::unique_ptr<ingest::Spool> spool;
  std::unique_ptr<catalog::Catalog> catalog;
  scheduler::Scheduler* scheduler_ptr = nullptr;
  std::unique_ptr<policy::Stage> policy_stage;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<CatalogSink> sink;
  std::unique_ptr<ingest::DicomScp> scp;
  std::unique_ptr<control::Server> control;
  std::unique_ptr<policy::ConsentService> consent_service;
  std::unique_ptr<policy::ConsentHl7Sink> hl7_sink;
  std::unique_ptr<audit::Forwarder> audit_forwarder;
  audit::ExportContext export_context() const;
  std::unique_ptr<ingest::Hl7Listener> hl7;
  std::int64_t started_at = 0;
  std::string audit_broken;  // why the audit trail did not verify at start
  catalog::Reconciliation reconciliation;
  ingest::PrescanLimits limits;

  explicit Impl(config::Config c) : config(std::move(c)) {}

  Result<void> start();
  Result<void> reconcile();
  json handle(const json& request, const control::Peer& peer);
  json status();
  json studies(const json& request);
  json study(const json& request);
  json action(const std::string& cmd, const json& request, const control::Peer& peer);
  json consent(const json& request, const control::Peer& peer);
  json audit_command(const json& request, const control::Peer& peer);
  void audit(audit::EventType type, const std::string& actor, const std::string& outcome,
             const std::string& study_uid = "", json detail = json::object(),
             const std::string& patient_ref = "");
  void write_anchor();
  void audit_start();
  json quarantine(const json& request, const control::Peer& peer);
  json mrn_import(const json& request, const control::Peer& peer);
  Result<catalog::PatientKey> parse_patient(const std::string& text) const;
};

Application::Application(config::Config config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}
Application::~Application() = default;

Result<void> Application::Impl::start() {
  started_at = to_epoch_ms(clock.now());
  const auto& state = config.state_dir;
  for (const auto& dir : {state, state / "keys"})
    if (auto r = make_dirs(dir, 0750); !r) return r.error();
  if (auto r = make_dirs(config.control_socket.parent_path(), 0750); !r) return r.error();
  auto key = load_or_create_key(state / "keys" / "log-hmac.key");
  if (!key) return key.error();
  log::set_phi_key(*key);

  auto opened_spool = ingest::Spool::open(state / "spool");
  if (!opened_spool) return opened_spool.error();
  spool = std::make_unique<ingest::Spool>(std::move(opened_spool).value());
  auto cleaned = spool->remove_temporaries();
  if (!cleaned) return cleaned.error();
  reconciliation.temporaries = cleaned->temporaries_removed;
  limits.max_object_size = config.ingest.dicom.max_object_size;

  std::vector<std::string> names;
  for (const auto& d : config.destinations) names.push_back(d.name);
  auto opened = catalog::Catalog::open(state / "catalog.db", names, clock);
  if (!opened) return opened.error();
  catalog = std::move(opened).value();
  if (auto r = reconcile(); !r) return r.error();

  std::vector<std::unique_ptr<senders::Sender>> senders;
  for (const auto& d : config.destinations)
    senders.push_back(senders::make_stow_rs_sender(scheduler::stow_options(d)));
  std::vector<std::string> dest_names;
  for (const auto& d : config.destinations) dest_names.push_back(d.name);
  metrics = std::make_unique<metrics::GatewayMetrics>(registry, dest_names, DIRGW_VERSION);
  policy_stage = std::make_unique<policy::Stage>(config, *catalog, *spool, clock, metrics.get());
  scheduler::PolicyStep policy_step = [this] {
    const auto p = policy_stage->step();
    return scheduler::PolicyRound{p.studies, p.ready, p.failed};
  };
  scheduler = std::make_unique<scheduler::Scheduler>(config, *catalog, *spool, std::move(senders),
                                                     clock, std::move(policy_step), metrics.get());
  scheduler_ptr = scheduler.get();
  consent_service = std::make_unique<policy::ConsentService>(
      config, catalog->consent,
      [this](audit::Event e) {
        audit(e.type, e.actor, e.outcome, e.study_uid, std::move(e.detail), e.patient_ref);
      },
      [this] { scheduler->work_available(); });
  sink = std::make_unique<CatalogSink>(*catalog, scheduler_ptr,
                                       config.ingest.new_versions == "hold"
                                           ? catalog::NewVersionPolicy::kHold
                                           : catalog::NewVersionPolicy::kSend);

  control = std::make_unique<control::Server>(
      io, config.control_socket.string(),
      [this](const json& req, const control::Peer& peer) { return handle(req, peer); });
  if (auto r = control->start(); !r) return r.error();
  if (group* g = ::getgrnam("dirgw"); g != nullptr) [[maybe_unused]]
    int rc = ::chown(config.control_socket.c_str(), static_cast<uid_t>(-1), g->gr_gid);

  if (config.ingest.dicom.enabled) {
    scp = std::make_unique<ingest::DicomScp>(config.ingest.dicom, *spool, *sink, limits,
                                             config.retention.spool_floor, metrics.get());
    if (auto r = scp->start(); !r) return r.error();
  }
  if (config.metrics.enabled) {
    // Read at scrape time, on the io thread: one aggregate catalog query and one statvfs.
    metrics->set_backlog_source([this] {
      std::vector<metrics::Backlog> out;
      auto st = catalog->queries.status();
      if (!st) return out;
      const std::int64_t now = to_epoch_ms(clock.now());
      for (const auto& d : st->destinations)
        out.push_back({d.name, static_cast<double>(d.pending_instances),
                       static_cast<double>(d.pending_bytes),
                       d.oldest_pending_at > 0 ? (now - d.oldest_pending_at) / 1000.0 : 0.0});
      return out;
    });
    metrics->set_spool_free_source([this] {
      auto f = free_bytes(spool->root());
      return f ? static_cast<double>(*f) : 0.0;
    });
    metrics::EndpointOptions o;
    o.address = config.metrics.bind;
    o.port = static_cast<std::uint16_t>(config.metrics.port);
    metrics_endpoint = std::make_unique<metrics::HttpEndpoint>(io, registry, o);
    if (auto r = metrics_endpoint->start(); !r) return r.error();
    log::info("metrics endpoint ready", {{"address", config.metrics.bind},
                                         {"port", std::to_string(metrics_endpoint->port())}});
  }
  if (config.ingest.hl7.enabled) {
    hl7_sink = std::make_unique<policy::ConsentHl7Sink>(config, *consent_service, catalog->consent);
    hl7 = std::make_unique<ingest::Hl7Listener>(io, config.ingest.hl7, *hl7_sink);
    if (auto r = hl7->start(); !r) return r.error();
  }
  if (config.audit_syslog.enabled) {
    const auto& a = config.audit_syslog;
    audit::ForwarderOptions o{a.host,
                              a.port,
                              a.ca,
                              a.client_cert,
                              a.client_key,
                              a.verify_peer,
                              state / "audit.syslog.cursor"};
    audit::SyslogContext sc;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    sc.hostname = host;
    sc.procid = std::to_string(::getpid());
    audit_forwarder = std::make_unique<audit::Forwarder>(
        o, export_context(), sc,
        [this](std::int64_t after, int limit) { return catalog->audit.audit_after(after, limit); });
    audit_forwarder->start();
  }
  scheduler->start();
  return {};
}

// Compares spool and catalog before any listener opens: complete objects without a row are
// catalogued (their sender was never told success, but will send again and must find them),
// objects that do not parse are moved to quarantine/, rows whose file is gone are flagged.
Result<void> Application::Impl::reconcile() {
  auto on_disk = spool->list_objects();
  if (!on_disk) return on_disk.error();
  auto known_list = catalog->ingest.object_hashes();
  if (!known_list) return known_list.error();
  std::set<std::string> known(known_list->begin(), known_list->end());
  std::set<std::string> present(on_disk->begin(), on_disk->end());
  for (const auto& sha : *on_disk) {
    if (known.count(sha)) continue;
    const auto path = spool->object_path(sha);
    auto scan = ingest::prescan_file(path, limits);
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!scan || ec) {
      log::warn("spool object without a catalog row does not parse: moved to quarantine",
                {{"object", sha}, {"reason", scan ? ec.message() : scan.error().detail}});
      if (auto m = spool->move_object(sha, config.state_dir / "quarantine" / "unparseable"); !m)
        return m.error();
      ++reconciliation.quarantined;
      continue;
    }
    ingest::StoredObject stored{sha, size, path, true};
    auto r = catalog->ingest.record_instance(new_instance(*scan, stored, "", "reconciliation"));
    if (!r) return r.error();
    log::info("spool object without a catalog row adopted",
              {{"object", sha}, {"sop_instance_uid", scan->dataset_sop_instance_uid}});
    ++reconciliation.adopted;
  }
  for (const auto& sha : known) {
    if (present.count(sha)) continue;
    auto n = catalog->ingest.flag_missing_object(sha);
    if (!n) return n.error();
    log::error("catalogued object is missing from the spool: its deliveries are failed",
               {{"object", sha}, {"deliveries", std::to_string(*n)}});
    ++reconciliation.missing;
  }
  // Requests that were on the wire when the daemon stopped: their outcome is unknown.
  auto in_flight = catalog->delivery.recover_interrupted_sends();
  if (!in_flight) return in_flight.error();
  if (*in_flight > 0)
    log::warn("deliveries were in flight when dirgwd stopped: they go again (or stay withdrawn)",
              {{"deliveries", std::to_string(*in_flight)}});
  reconciliation.at = to_epoch_ms(clock.now());
  log::info("spool and catalog reconciled",
            {{"temporaries_removed", std::to_string(reconciliation.temporaries)},
             {"adopted", std::to_string(reconciliation.adopted)},
             {"quarantined", std::to_string(reconciliation.quarantined)},
             {"missing", std::to_string(reconciliation.missing)},
             {"objects", std::to_string(on_disk->size())}});
  return catalog->ingest.record_reconciliation(reconciliation);
}

// The socket is 0660 root:dirgw, so the file system already decides who may connect; the peer's
// credentials are checked again here (root, the daemon's own user, or a member of group dirgw).
bool authorized(const control::Peer& peer) {
  if (peer.uid == 0 || peer.uid == ::geteuid()) return true;
  group* g = ::getgrnam("dirgw");
  if (g == nullptr) return false;
  if (peer.gid == g->gr_gid) return true;
  passwd* pw = ::getpwuid(peer.uid);
  if (pw == nullptr) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) return false;
  for (int i = 0; i < n; ++i)
    if (groups[static_cast<std::size_t>(i)] == g->gr_gid) return true;
  return false;
}

std::vector<std::string> host_warnings(const config::Config& config) {
  std::vector<std::string> out;
  // Clock: an unsynchronised clock makes audit times and upload windows wrong.
  timex tx{};
  if (::ntp_adjtime(&tx) == TIME_ERROR || (tx.status & STA_UNSYNC) != 0)
    out.push_back("system clock is not synchronised (NTP): audit times may be wrong");
  // Client certificates that expire soon.
  for (const auto& d : config.destinations) {
    if (d.auth.client_cert.empty()) continue;
    auto pem = read_small_file(d.auth.client_cert, 1 << 20);
    if (!pem) {
      out.push_back("destination " + d.name + ": client certificate unreadable");
      continue;
    }
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) {
      out.push_back("destination " + d.name + ": client certificate is not PEM");
      continue;
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) == 1) {
      if (days < 0 || (days == 0 && secs <= 0))
        out.push_back("destination " + d.name + ": client certificate has EXPIRED");
      else if (days < 30)
        out.push_back("destination " + d.name + ": client certificate expires in " +
                      std::to_string(days) + " days");
    }
    X509_free(cert);
  }
  return out;
}

json Application::Impl::handle(const json& request, const control::Peer& peer) {
  if (!authorized(peer))
    return {{"ok", false},
            {"error", "permission denied: run as root or as a member of the dirgw group"}};
  const std::string cmd = request.value("cmd", "");
  if (cmd == "status") return status();
  if (cmd == "studies") return studies(request);
  if (cmd == "study") return study(request);
  if (cmd == "retry" || cmd == "hold" || cmd == "release") return action(cmd, request, peer);
  if (cmd == "consent") return consent(request, peer);
  if (cmd == "audit") return audit_command(request, peer);
  if (cmd == "quarantine") return quarantine(request, peer);
  if (cmd == "mrn_import") return mrn_import(request, peer);
  if (cmd == "ping") return {{"ok", true}};
  return {{"ok", false}, {"error", "unknown command '" + cmd.substr(0, 32) + "'"}};
}

json Application::Impl::status() {
  auto s = catalog->queries.status();
  if (!s) return {{"ok", false}, {"error", s.error().to_string()}};
  json out = {{"ok", true},
              {"version", DIRGW_VERSION},
              {"pid", ::getpid()},
              {"started_at", format_utc_ms(started_at)},
              {"facility", config.facility_name},
              {"catalog",
               {{"schema", s->schema_version},
                {"studies", s->studies},
                {"instances", s->instances},
                {"bytes", s->bytes},
                {"states", state_counts(s->ingest_states)}}},
              {"startup",
               {{"temporaries_removed", reconciliation.temporaries},
                {"adopted", reconciliation.adopted},
                {"quarantined", reconciliation.quarantined},
                {"missing", reconciliation.missing}}}};
  if (scp) {
    const auto& st = scp->stats();
    out["ingest"]["dicom"] = {{"ae_title", config.ingest.dicom.ae_title},
                              {"port", scp->port()},
                              {"associations_active", st.active.load()},
                              {"associations", st.associations.load()},
                              {"associations_rejected", st.associations_rejected.load()},
                              {"stored", st.stored.load()},
                              {"duplicates", st.duplicates.load()},
                              {"refused", st.refused.load()}};
  }
  auto free = free_bytes(spool->root());
  out["spool"] = {{"free_bytes", free ? static_cast<std::int64_t>(*free) : -1},
                  {"floor_bytes", config.retention.spool_floor},
                  {"below_floor", free && *free < config.retention.spool_floor}};
  json dests = json::array();
  const auto circuits = scheduler->status();
  json warnings = json::array();
  if (free && *free < config.retention.spool_floor)
    warnings.push_back("spool below its free-space floor: new objects are refused (A700)");
  else if (free && *free < config.retention.spool_floor + config.retention.spool_floor / 10 +
                               (256ull << 20))
    warnings.push_back("spool is close to its free-space floor");
  for (auto& w : host_warnings(config)) warnings.push_back(std::move(w));
  if (audit_forwarder && !audit_forwarder->last_error().empty())
    warnings.push_back("audit repository: " + audit_forwarder->last_error() +
                       " (entries wait in the trail)");
  if (!audit_broken.empty())
    warnings.push_back("audit trail does not verify (" + audit_broken +
                       "): run dirgw audit verify");
  for (std::size_t i = 0; i < s->destinations.size(); ++i) {
    const auto& d = s->destinations[i];
    const auto& c = circuits[i];
    if (c.circuit != scheduler::Circuit::kClosed)
      warnings.push_back("destination " + d.name + ": circuit " +
                         std::string(scheduler::to_string(c.circuit)) + " after " +
                         std::to_string(c.consecutive_failures) + " failed requests in a row");
    std::int64_t failed = 0;
    for (const auto& st : d.states)
      if (st.state == "FAILED") failed = st.studies;
    if (failed > 0)
      warnings.push_back("destination " + d.name + ": " + std::to_string(failed) + " failed stud" +
                         (failed == 1 ? "y" : "ies") +
                         " (see: dirgw studies --state FAILED; dirgw retry --failed)");
    dests.push_back({{"name", d.name},
                     {"url", config.destinations[i].url},
                     {"states", state_counts(d.states)},
                     {"pending_instances", d.pending_instances},
                     {"pending_bytes", d.pending_bytes},
                     {"oldest_pending_at", time_or_null(d.oldest_pending_at)},
                     {"last_success_at", time_or_null(d.last_success_at)},
                     {"last_error_at", time_or_null(d.last_error_at)},
                     {"last_error", d.last_error},
                     {"rate_instances_per_s", c.rate_per_s},
                     {"circuit", scheduler::to_string(c.circuit)},
                     {"circuit_failures", c.consecutive_failures},
                     {"circuit_probe_at", c.circuit == scheduler::Circuit::kOpen
                                              ? json(format_utc(c.open_until))
                                              : json(nullptr)}});
  }
  out["destinations"] = dests;
  out["warnings"] = warnings;
  out["refusals"] = {{"count", s->refusals}};
  if (s->last_refusal)
    out["refusals"]["last"] = {{"at", format_utc_ms(s->last_refusal->at)},
                               {"source", s->last_refusal->source},
                               {"calling_ae", s->last_refusal->calling_ae},
                               {"peer", s->last_refusal->peer},
                               {"reason", s->last_refusal->reason}};
  return out;
}

json Application::Impl::studies(const json& request) {
  std::string state = request.value("state", "");
  std::string destination = request.value("destination", "");
  int limit = request.value("limit", 100);
  auto list = catalog->queries.studies(state, std::clamp(limit, 1, 10000), destination);
  if (!list) return {{"ok", false}, {"error", list.error().to_string()}};
  json arr = json::array();
  for (const auto& s : *list) {
    json dests = json::object();
    for (const auto& [name, st] : s.destination_states) dests[name] = st;
    arr.push_back({{"study_uid", s.study_uid},
                   {"state", s.state},
                   {"instances", s.instances},
                   {"bytes", s.bytes},
                   {"first_received_at", format_utc_ms(s.first_received_at)},
                   {"last_received_at", format_utc_ms(s.last_received_at)},
                   {"destinations", dests}});
  }
  return {{"ok", true}, {"studies", arr}};
}

json Application::Impl::study(const json& request) {
  const std::string uid = request.value("study_uid", "");
  auto found = catalog->queries.study(uid);
  if (!found) return {{"ok", false}, {"error", found.error().to_string()}};
  if (!found->has_value()) return {{"ok", false}, {"error", "no study with that UID"}};
  const auto& d = **found;
  json dests = json::array();
  for (const auto& x : d.destinations)
    dests.push_back({{"destination", x.destination},
                     {"state", x.state},
                     {"reason", x.reason},
                     {"round", x.round},
                     {"updated_at", format_utc_ms(x.updated_at)},
                     {"sent_at", time_or_null(x.sent_at)}});
  json rounds = json::array();
  for (const auto& r : d.rounds)
    rounds.push_back({{"destination", r.destination},
                      {"round", r.round},
                      {"kind", r.round == 1 ? "initial" : "delta"},
                      {"instances", r.instances},
                      {"sent", r.sent},
                      {"failed", r.failed},
                      {"pending", r.pending},
                      {"first_sent_at", time_or_null(r.first_sent_at)},
                      {"last_sent_at", time_or_null(r.last_sent_at)}});
  json instances = json::array();
  for (const auto& i : d.instances) {
    json del = json::array();
    for (const auto& x : i.deliveries)
      del.push_back({{"destination", x.destination},
                     {"state", x.state},
                     {"attempts", x.attempts},
                     {"round", x.round},
                     {"last_error", x.last_error},
                     {"next_attempt_at", time_or_null(x.next_attempt_at)},
                     {"sent_at", time_or_null(x.sent_at)}});
    instances.push_back({{"sop_instance_uid", i.sop_instance_uid},
                         {"sop_class_uid", i.sop_class_uid},
                         {"series_uid", i.series_uid},
                         {"modality", i.modality},
                         {"transfer_syntax", i.transfer_syntax},
                         {"size", i.size},
                         {"received_at", format_utc_ms(i.received_at)},
                         {"calling_ae", i.calling_ae},
                         {"flags", i.flags},
                         {"object", i.sha256},
                         {"deliveries", del}});
  }
  return {{"ok", true},
          {"study_uid", d.summary.study_uid},
          {"state", d.summary.state},
          {"instances", d.summary.instances},
          {"bytes", d.summary.bytes},
          {"first_received_at", format_utc_ms(d.summary.first_received_at)},
          {"last_received_at", format_utc_ms(d.summary.last_received_at)},
          {"destinations", dests},
          {"rounds", rounds},
          {"instance_list", instances}};
}

json Application::Impl::action(const std::string& cmd, const json& request,
                               const control::Peer& peer) {
  const std::string uid = request.value("study_uid", "");
  const std::string destination = request.value("destination", "");
  if (!destination.empty()) {
    bool known = false;
    for (const auto& d : config.destinations) known = known || d.name == destination;
    if (!known)
      return {{"ok", false}, {"error", "no destination named '" + destination.substr(0, 32) + "'"}};
  }
  Result<catalog::ActionResult> r = make_error(ErrorCode::kInvalidArgument, "no study given");
  if (cmd == "retry" && request.value("all_failed", false)) {
    r = catalog->operators.retry_all_failed(destination);
  } else if (uid.empty()) {
    return {{"ok", false},
            {"error", "give a study UID" + std::string(cmd == "retry" ? " or --failed" : "")}};
  } else if (cmd == "retry") {
    r = catalog->operators.retry(uid, destination);
  } else if (cmd == "hold") {
    r = catalog->operators.hold(uid, destination, request.value("reason", ""));
  } else {
    r = catalog->operators.release(uid, destination);
  }
  if (!r) return {{"ok", false}, {"error", r.error().detail}};
  log::info("operator action", {{"action", cmd},
                                {"study_uid", uid.empty() ? "(all failed)" : uid},
                                {"destination", destination.empty() ? "(all)" : destination},
                                {"changed", std::to_string(r->changed)}});
  if (r->changed > 0) scheduler->work_available();
  audit(audit::EventType::kOperatorAction, actor_of(peer),
        r->changed > 0 ? std::string(audit::kSuccess) : audit::failure("refused by the life cycle"),
        uid, {{"action", cmd}, {"destination", destination}, {"changed", r->changed}});
  return {{"ok", r->refused.empty() || r->changed > 0},
          {"changed", r->changed},
          {"refused", r->refused},
          {"error", r->changed == 0 && !r->refused.empty() ? r->refused.front() : ""}};
}

std::string actor_of(const control::Peer& peer) {
  passwd* pw = ::getpwuid(peer.uid);
  return audit::user_actor(pw != nullptr ? pw->pw_name : "unknown", peer.uid);
}

std::string who(const control::Peer& peer) {
  passwd* pw = ::getpwuid(peer.uid);
  return std::string(pw != nullptr ? pw->pw_name : "uid") + "(" + std::to_string(peer.uid) + ")";
}

Result<catalog::PatientKey> Application::Impl::parse_patient(const std::string& text) const {
  return policy::parse_patient(text, config.policy.health_number_issuer);
}

json Application::Impl::consent(const json& request, const control::Peer& peer) {
  const std::string action = request.value("action", "");
  const std::string scope = request.value("scope", "*");
  if (scope != "*") {
    bool known = false;
    for (const auto& d : config.destinations) known = known || d.name == scope;
    if (!known) return {{"ok", false}, {"error", "no destination with that name"}};
  }
  auto apply = [&](const std::vector<catalog::PatientKey>& keys, bool grant,
                   const std::string& source, const std::string& reference) {
    policy::ConsentService::Change c;
    c.identifiers = keys;
    c.grant = grant;
    c.scope = scope;
    c.source = source;
    c.operator_name = who(peer);
    c.actor = actor_of(peer);
    c.reference = reference;
    return consent_service->record(c);
  };
  if (action == "grant" || action == "withdraw") {
    auto key = parse_patient(request.value("patient", ""));
    if (!key) return {{"ok", false}, {"error", key.error().detail}};
    auto r = apply({*key}, action == "grant", "cli", "");
    if (!r) return {{"ok", false}, {"error", r.error().to_string()}};
    return {{"ok", true},
            {"studies_withdrawn", r->studies_withdrawn},
            {"studies_released", r->studies_released}};
  }
  if (action == "show") {
    auto key = parse_patient(request.value("patient", ""));
    if (!key) return {{"ok", false}, {"error", key.error().detail}};
    auto pc = catalog->consent.patient_consent(*key);
    if (!pc) return {{"ok", false}, {"error", pc.error().to_string()}};
    log::info("consent shown", {{"patient", log::phi_tag(key->value)}, {"operator", who(peer)}});
    audit(audit::EventType::kPatientDataViewed, actor_of(peer), std::string(audit::kSuccess), "",
          {{"command", "consent show"}}, log::phi_tag(key->value));
    if (!pc->has_value()) return {{"ok", true}, {"known", false}};
    json ids = json::array(), history = json::array();
    for (const auto& k : (*pc)->identifiers)
      ids.push_back({{"kind", k.kind}, {"issuer", k.issuer}, {"value", k.value}});
    for (const auto& e : (*pc)->history)
      history.push_back({{"at", format_utc_ms(e.at)},
                         {"decision", e.decision},
                         {"scope", e.scope},
                         {"source", e.source},
                         {"operator", e.operator_name},
                         {"reference", e.reference}});
    json state = json::object();
    for (const auto& d : config.destinations) {
      auto st = catalog->consent.consent_for((*pc)->identifiers, d.name);
      state[d.name] = !st                                        ? "unreadable"
                      : *st == catalog::ConsentState::kGranted   ? "granted"
                      : *st == catalog::ConsentState::kWithdrawn ? "withdrawn"
                      : d.consent_mode == "opt-in"               ? "none (opt-in: held)"
                                                                 : "none (opt-out: sent)";
    }
    return {{"ok", true},         {"known", true},  {"identifiers", ids},
            {"history", history}, {"state", state}, {"studies", (*pc)->study_uids}};
  }
  if (action == "import") {
    // The CLI read the CSV; each row: line, health_number, mrn_issuer, mrn, decision.
    json rejected = json::array();
    int accepted = 0, withdrawn = 0, released = 0;
    for (const auto& row : request.value("rows", json::array())) {
      const int line = row.value("line", 0);
      auto reject = [&](const std::string& why) {
        rejected.push_back({{"line", line}, {"reason", why}});
      };
      const std::string hn = row.value("health_number", ""), mrn = row.value("mrn", ""),
                        mrn_issuer = row.value("mrn_issuer", ""),
                        decision = row.value("decision", "");
      if (decision != "grant" && decision != "withdraw") {
        reject("decision must be grant or withdraw");
        continue;
      }
      if (hn.empty() && mrn.empty()) {
        reject("neither health_number nor mrn given");
        continue;
      }
      std::vector<catalog::PatientKey> keys;
      if (!hn.empty()) {
        auto k = parse_patient("hn:" + hn);
        if (!k) {
          reject("health_number: " + k.error().detail);
          continue;
        }
        keys.push_back(*k);
      }
      if (!mrn.empty()) {
        if (mrn_issuer.empty()) {
          reject("mrn given without mrn_issuer");
          continue;
        }
        auto k = parse_patient("mrn:" + mrn_issuer + ":" + mrn);
        if (!k) {
          reject("mrn: " + k.error().detail);
          continue;
        }
        keys.push_back(*k);
      }
      auto r = apply(keys, decision == "grant", "csv",
                     request.value("file", "") + ":" + std::to_string(line));
      if (!r) {
        reject(r.error().to_string());
        continue;
      }
      ++accepted;
      withdrawn += r->studies_withdrawn;
      released += r->studies_released;
    }
    log::info("consent import", {{"accepted", std::to_string(accepted)},
                                 {"rejected", std::to_string(rejected.size())},
                                 {"operator", who(peer)}});
    audit(audit::EventType::kConsentChanged, actor_of(peer), std::string(audit::kSuccess), "",
          {{"source", "csv"},
           {"file", request.value("file", "")},
           {"accepted", accepted},
           {"rejected", rejected.size()}});
    return {{"ok", true},
            {"accepted", accepted},
            {"rejected", rejected},
            {"studies_withdrawn", withdrawn},
            {"studies_released", released}};
  }
  return {{"ok", false}, {"error", "consent actions: grant, withdraw, show, import"}};
}

json Application::Impl::mrn_import(const json& request, const control::Peer& peer) {
  json rejected = json::array();
  int accepted = 0;
  for (const auto& row : request.value("rows", json::array())) {
    const int line = row.value("line", 0);
    const std::string issuer = row.value("mrn_issuer", ""), mrn = row.value("mrn", ""),
                      hn = row.value("health_number", "");
    auto m = parse_patient("mrn:" + issuer + ":" + mrn);
    if (issuer.empty() || !m) {
      rejected.push_back(
          {{"line", line},
           {"reason", issuer.empty() ? "mrn_issuer is empty" : "mrn: " + m.error().detail}});
      continue;
    }
    auto h = parse_patient("hn:" + hn);
    if (!h) {
      rejected.push_back({{"line", line}, {"reason", "health_number: " + h.error().detail}});
      continue;
    }
    if (auto r = catalog->consent.put_mrn_health_number(issuer, mrn, hn, "csv"); !r) {
      rejected.push_back({{"line", line}, {"reason", r.error().to_string()}});
      continue;
    }
    ++accepted;
  }
  log::info("MRN to health number table import", {{"accepted", std::to_string(accepted)},
                                                  {"rejected", std::to_string(rejected.size())},
                                                  {"operator", who(peer)}});
  audit(audit::EventType::kOperatorAction, actor_of(peer), std::string(audit::kSuccess), "",
        {{"action", "mrn import"}, {"accepted", accepted}, {"rejected", rejected.size()}});
  return {{"ok", true}, {"accepted", accepted}, {"rejected", rejected}};
}

json Application::Impl::quarantine(const json& request, const control::Peer& peer) {
  const std::string action = request.value("action", "");
  const std::string uid = request.value("study_uid", "");
  if (action == "list") {
    auto list = catalog->queries.quarantined(1000);
    if (!list) return {{"ok", false}, {"error", list.error().to_string()}};
    json arr = json::array();
    for (const auto& s : *list) {
      auto f = catalog->policy.findings(s.study_uid);
      arr.push_back({{"study_uid", s.study_uid},
                     {"instances", s.instances},
                     {"last_received_at", format_utc_ms(s.last_received_at)},
                     {"findings", f ? static_cast<int>(f->size()) : -1},
                     {"first_reason", f && !f->empty() ? f->front().code : ""}});
    }
    return {{"ok", true}, {"studies", arr}};
  }
  if (uid.empty()) return {{"ok", false}, {"error", "give a study UID"}};
  if (action == "show") {
    auto f = catalog->policy.findings(uid);
    if (!f) return {{"ok", false}, {"error", f.error().to_string()}};
    json arr = json::array();
    for (const auto& x : *f)
      arr.push_back({{"sop_instance_uid", x.sop_instance_uid},
                     {"code", x.code},
                     {"tag", x.tag},
                     {"message", x.message}});
    return {{"ok", true}, {"study_uid", uid}, {"findings", arr}};
  }
  if (action == "release") {
    auto r = catalog->operators.release_quarantine(uid);
    if (!r) return {{"ok", false}, {"error", r.error().detail}};
    log::info("quarantine released: policy runs again",
              {{"study_uid", uid}, {"operator", who(peer)}});
    audit(audit::EventType::kQuarantineAction, actor_of(peer),
          r->changed > 0 ? std::string(audit::kSuccess) : audit::failure("not quarantined"), uid,
          {{"action", "release"}});
    scheduler->work_available();
    return {{"ok", r->changed > 0},
            {"changed", r->changed},
            {"refused", r->refused},
            {"error", r->changed == 0 && !r->refused.empty() ? r->refused.front() : ""}};
  }
  if (action == "delete") {
    if (!request.value("confirmed", false))
      return {{"ok", false}, {"error", "deleting a quarantined study needs confirmation (--yes)"}};
    std::vector<std::string> objects;
    auto r = catalog->operators.delete_quarantined(uid, &objects);
    if (!r) return {{"ok", false}, {"error", r.error().detail}};
    if (r->changed == 0)
      return {{"ok", false}, {"error", r->refused.empty() ? "not deleted" : r->refused.front()}};
    for (const auto& sha : objects) {
      std::error_code ec;
      std::filesystem::remove(spool->object_path(sha), ec);
    }
    audit(audit::EventType::kQuarantineAction, actor_of(peer), std::string(audit::kSuccess), uid,
          {{"action", "delete"}, {"objects", objects.size()}});
    log::warn(
        "quarantined study deleted",
        {{"study_uid", uid}, {"operator", who(peer)}, {"objects", std::to_string(objects.size())}});
    return {{"ok", true}, {"changed", 1}, {"objects_removed", objects.size()}};
  }
  return {{"ok", false}, {"error", "quarantine actions: list, show, release, delete"}};
}

audit::ExportContext Application::Impl::export_context() const {
  audit::ExportContext ctx;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  ctx.audit_source_id = std::string("dirgw@") + host;
  ctx.enterprise_site_id = config.facility_id;
  ctx.local_user_id = config.ingest.dicom.ae_title;
  ctx.local_host = host;
  for (const auto& d : config.destinations)
    ctx.destination_hosts[d.name] = audit::host_of_url(d.url);
  return ctx;
}

void Application::Impl::audit(audit::EventType type, const std::string& actor,
                              const std::string& outcome, const std::string& study_uid, json detail,
                              const std::string& patient_ref) {
  audit::Event e;
  e.type = type;
  e.actor = actor;
  e.outcome = outcome;
  e.study_uid = study_uid;
  e.detail = std::move(detail);
  e.patient_ref = patient_ref;
  if (auto r = catalog->audit.audit(std::move(e)); !r)
    log::error("cannot write the audit trail", {{"error", r.error().to_string()}});
  else if (audit_forwarder)
    audit_forwarder->wake();
}

void Application::Impl::write_anchor() {
  // A trail found broken keeps its old anchor: overwriting it would hide what was removed.
  if (!audit_broken.empty()) return;
  auto head = catalog->audit.audit_head();
  if (!head) return;
  if (auto r = audit::write_anchor(config.state_dir / "audit.anchor", *head); !r)
    log::error("cannot write the audit anchor", {{"error", r.error().to_string()}});
}

// Start, and a configuration that differs from the one of the previous start.
void Application::Impl::audit_start() {
  // Before anything is appended: is the trail as the last anchor left it?
  auto anchor = audit::read_anchor(config.state_dir / "audit.anchor");
  if (anchor) {
    auto v = catalog->audit.verify_audit(*anchor);
    if (v && !v->ok) {
      audit_broken = v->reason;
      log::error("the audit trail does not verify: its anchor is kept and status warns",
                 {{"first_bad_seq", v->first_bad_seq ? std::to_string(*v->first_bad_seq) : "-"},
                  {"reason", v->reason}});
    }
  }
  auto text = read_small_file(config.source, 1 << 20);
  const std::string hash = text ? sha256_hex(*text) : "";
  const auto mark = config.state_dir / "config.sha256";
  auto previous = read_small_file(mark, 256);
  if (previous && *previous != hash) {
    audit(audit::EventType::kConfigChanged, audit::system_actor(), std::string(audit::kSuccess), "",
          {{"file", config.source.string()}, {"previous_sha256", *previous}, {"sha256", hash}});
  }
  if (!previous || *previous != hash) (void)write_file_durably(mark, hash, 0640);
  audit(audit::EventType::kStarted, audit::system_actor(), std::string(audit::kSuccess), "",
        {{"version", DIRGW_VERSION}, {"config_sha256", hash}});
}

json Application::Impl::audit_command(const json& request, const control::Peer& peer) {
  const std::string action = request.value("action", "");
  if (action == "verify") {
    auto anchor = audit::read_anchor(config.state_dir / "audit.anchor");
    if (!anchor) return {{"ok", false}, {"error", anchor.error().to_string()}};
    auto r = catalog->audit.verify_audit(*anchor);
    if (!r) return {{"ok", false}, {"error", r.error().to_string()}};
    log::info("audit trail verified", {{"ok", r->ok ? "true" : "false"},
                                       {"entries", std::to_string(r->checked)},
                                       {"operator", who(peer)}});
    json out = {{"ok", true},
                {"intact", r->ok},
                {"checked", r->checked},
                {"anchor", *anchor ? json{{"seq", (*anchor)->seq}} : json(nullptr)},
                {"beyond_anchor", r->beyond_anchor},
                {"reason", r->reason}};
    if (r->first_bad_seq) out["first_bad_seq"] = *r->first_bad_seq;
    if (r->ok) write_anchor();
    return out;
  }
  if (action == "export") {
    const std::int64_t since = request.value("since_ms", static_cast<std::int64_t>(0));
    auto events = catalog->audit.audit_since(since, 200000);
    if (!events) return {{"ok", false}, {"error", events.error().to_string()}};
    const audit::ExportContext ctx = export_context();
    std::string xml = audit::export_since(*events, since, ctx);
    audit(audit::EventType::kAuditExported, actor_of(peer), std::string(audit::kSuccess), "",
          {{"since_ms", since}, {"entries", events->size()}});
    return {{"ok", true}, {"entries", events->size()}, {"xml", xml}};
  }
  return {{"ok", false}, {"error", "audit actions: verify, export"}};
}

int Application::run() {
  auto& s = *impl_;
  auto started = s.start();
  if (!started) {
    log::error("dirgwd cannot start", {{"error", started.error().to_string()}});
    sd_notifyf(0, "STATUS=cannot start: %s", started.error().to_string().c_str());
    if (s.scp) s.scp->stop();
    if (s.scheduler) s.scheduler->stop();
    return 1;
  }
  log::info("dirgwd started", {{"version", DIRGW_VERSION},
                               {"state_dir", s.config.state_dir.string()},
                               {"destinations", std::to_string(s.config.destinations.size())}});
  s.audit_start();
  sd_notify(0, "READY=1\nSTATUS=running");

  asio::signal_set signals(s.io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("stopping", {{"signal", std::to_string(sig)}});
    sd_notify(0, "STOPPING=1");
    s.io.stop();
  });

  // The watchdog is fed from the event loop: a hung loop stops feeding it and systemd restarts us.
  asio::steady_timer watchdog(s.io);
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    auto interval = std::chrono::microseconds(usec / 2);
    std::function<void()> feed = [&] {
      sd_notify(0, "WATCHDOG=1");
      watchdog.expires_after(interval);
      watchdog.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) feed();
      });
    };
    feed();
  }
  // systemd's STATUS= line: what `systemctl status dirgw` shows at a glance.
  asio::steady_timer status_timer(s.io);
  std::function<void()> report = [&] {
    if (auto st = s.catalog->queries.status(); st) {
      std::int64_t pending = 0, bytes = 0;
      for (const auto& d : st->destinations) {
        pending += d.pending_instances;
        bytes += d.pending_bytes;
      }
      sd_notifyf(0, "STATUS=%lld studies, %lld instances; backlog %lld instances (%lld MiB)",
                 static_cast<long long>(st->studies), static_cast<long long>(st->instances),
                 static_cast<long long>(pending), static_cast<long long>(bytes >> 20));
    }
    status_timer.expires_after(std::chrono::seconds(10));
    status_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) report();
    });
  };
  report();
  // The audit anchor (newest seq and hash) is written beside the catalog every minute and at
  // stop, so that removing the newest entries is detected too.
  asio::steady_timer anchor_timer(s.io);
  std::function<void()> anchor = [&] {
    s.write_anchor();
    anchor_timer.expires_after(std::chrono::minutes(1));
    anchor_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) anchor();
    });
  };
  anchor();
  s.io.run();

  // Ordered shutdown: no new objects, then no new sends, then the catalog closes.
  if (s.scp) s.scp->stop();
  if (s.hl7) s.hl7->stop();
  s.scheduler->stop();
  s.control->stop();
  if (s.metrics_endpoint) s.metrics_endpoint->stop();
  s.audit(audit::EventType::kStopped, audit::system_actor(), std::string(audit::kSuccess));
  s.write_anchor();
  if (s.audit_forwarder) s.audit_forwarder->stop();
  log::info("dirgwd stopped");
  return 0;
}

}  // namespace dirgw::daemon
