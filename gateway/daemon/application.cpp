#include "daemon/application.h"

#include <grp.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

#include "catalog/catalog.h"
#include "common/asio.h"
#include "common/crypto.h"
#include "common/files.h"
#include "control/server.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/spool/spool.h"
#include "log/log.h"
#include "scheduler/scheduler.h"
#include "senders/sender.h"

namespace dirgw::daemon {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

// Received objects go into the catalog; a new one wakes the scheduler.
class CatalogSink final : public ingest::ObjectSink {
 public:
  CatalogSink(catalog::Catalog& catalog, scheduler::Scheduler*& scheduler)
      : catalog_(catalog), scheduler_(scheduler) {}

  Result<ingest::SinkOutcome> object_received(const ingest::ReceivedObject& o) override {
    catalog::NewInstance in;
    in.study_uid = o.scan.study_uid;
    in.series_uid = o.scan.series_uid;
    in.sop_instance_uid = o.scan.dataset_sop_instance_uid;
    in.sop_class_uid = o.scan.dataset_sop_class_uid;
    in.transfer_syntax = o.scan.transfer_syntax;
    in.modality = o.scan.modality;
    in.sha256 = o.stored.sha256;
    in.size = o.stored.size;
    in.calling_ae = o.calling_ae;
    in.peer = o.peer;
    auto r = catalog_.record_instance(in);
    if (!r) return r.error();
    if (r->kind == catalog::RecordKind::kDuplicate) return ingest::SinkOutcome::kDuplicate;
    if (r->kind == catalog::RecordKind::kNewVersion)
      log::warn("instance received again with different bytes: kept as a new version",
                {{"sop_instance_uid", in.sop_instance_uid}, {"study_uid", in.study_uid}});
    if (scheduler_ != nullptr) scheduler_->instance_received();
    return ingest::SinkOutcome::kStored;
  }

  void refused(const std::string& calling_ae, const std::string& peer,
               const std::string& reason) override {
    auto r = catalog_.record_refusal({0, "dicom", calling_ae, peer, reason});
    if (!r) log::error("cannot record a refusal", {{"error", r.error().to_string()}});
  }

 private:
  catalog::Catalog& catalog_;
  scheduler::Scheduler*& scheduler_;
};

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

struct Application::Impl {
  config::Config config;
  SystemClock clock;
  asio::io_context io;
  std::unique_ptr<ingest::Spool> spool;
  std::unique_ptr<catalog::Catalog> catalog;
  scheduler::Scheduler* scheduler_ptr = nullptr;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<CatalogSink> sink;
  std::unique_ptr<ingest::DicomScp> scp;
  std::unique_ptr<control::Server> control;
  std::int64_t started_at = 0;
  int temporaries_removed = 0;

  explicit Impl(config::Config c) : config(std::move(c)) {}

  Result<void> start();
  json handle(const json& request, const control::Peer& peer);
  json status();
  json studies(const json& request);
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
  temporaries_removed = cleaned->temporaries_removed;
  if (temporaries_removed > 0)
    log::info("removed half-received temporaries left by an earlier run",
              {{"count", std::to_string(temporaries_removed)}});

  std::vector<std::string> names;
  for (const auto& d : config.destinations) names.push_back(d.name);
  auto opened = catalog::Catalog::open(state / "catalog.db", names, clock);
  if (!opened) return opened.error();
  catalog = std::move(opened).value();

  std::vector<std::unique_ptr<senders::Sender>> senders;
  for (const auto& d : config.destinations) {
    senders::StowRsOptions o;
    o.base_url = d.url;
    o.ca_file = d.auth.ca;
    o.client_cert = d.auth.client_cert;
    o.client_key = d.auth.client_key;
    o.bearer_token_file = d.auth.bearer_token_file;
    o.verify_peer = d.auth.verify_peer;
    o.connect_timeout = d.connect_timeout;
    o.request_timeout = d.request_timeout;
    senders.push_back(senders::make_stow_rs_sender(o));
  }
  scheduler =
      std::make_unique<scheduler::Scheduler>(config, *catalog, *spool, std::move(senders), clock);
  scheduler_ptr = scheduler.get();
  sink = std::make_unique<CatalogSink>(*catalog, scheduler_ptr);

  control = std::make_unique<control::Server>(
      io, config.control_socket.string(),
      [this](const json& req, const control::Peer& peer) { return handle(req, peer); });
  if (auto r = control->start(); !r) return r.error();
  if (group* g = ::getgrnam("dirgw"); g != nullptr) [[maybe_unused]]
    int rc = ::chown(config.control_socket.c_str(), static_cast<uid_t>(-1), g->gr_gid);

  if (config.ingest.dicom.enabled) {
    ingest::PrescanLimits limits;
    limits.max_object_size = config.ingest.dicom.max_object_size;
    scp = std::make_unique<ingest::DicomScp>(config.ingest.dicom, *spool, *sink, limits,
                                             config.retention.spool_floor);
    if (auto r = scp->start(); !r) return r.error();
  }
  scheduler->start();
  return {};
}

json Application::Impl::handle(const json& request, const control::Peer& peer) {
  // The socket is 0660 root:dirgw; the file system decides who may connect.
  (void)peer;
  const std::string cmd = request.value("cmd", "");
  if (cmd == "status") return status();
  if (cmd == "studies") return studies(request);
  if (cmd == "ping") return {{"ok", true}};
  return {{"ok", false}, {"error", "unknown command '" + cmd.substr(0, 32) + "'"}};
}

json Application::Impl::status() {
  auto s = catalog->status();
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
              {"startup", {{"temporaries_removed", temporaries_removed}}}};
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
  for (std::size_t i = 0; i < s->destinations.size(); ++i) {
    const auto& d = s->destinations[i];
    dests.push_back({{"name", d.name},
                     {"url", config.destinations[i].url},
                     {"states", state_counts(d.states)},
                     {"pending_instances", d.pending_instances},
                     {"pending_bytes", d.pending_bytes},
                     {"oldest_pending_at", time_or_null(d.oldest_pending_at)},
                     {"last_success_at", time_or_null(d.last_success_at)},
                     {"last_error_at", time_or_null(d.last_error_at)},
                     {"last_error", d.last_error}});
  }
  out["destinations"] = dests;
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
  int limit = request.value("limit", 100);
  auto list = catalog->studies(state, std::clamp(limit, 1, 10000));
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
  s.io.run();

  // Ordered shutdown: no new objects, then no new sends, then the catalog closes.
  if (s.scp) s.scp->stop();
  s.scheduler->stop();
  s.control->stop();
  log::info("dirgwd stopped");
  return 0;
}

}  // namespace dirgw::daemon
