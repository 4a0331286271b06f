#include "daemon/application.h"

#include <grp.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string_view>
#include <thread>

#include "audit/forwarder.h"
#include "catalog/catalog.h"
#include "common/asio.h"
#include "common/crypto.h"
#include "common/files.h"
#include "control/commands/commands.h"
#include "control/server.h"
#include "daemon/audit_trail.h"
#include "daemon/destinations.h"
#include "daemon/host_checks.h"
#include "daemon/ops_metrics.h"
#include "daemon/priors_parts.h"
#include "ingest/catalog_sink.h"
#include "ingest/content_key.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/folder/watcher.h"
#include "ingest/hl7_mllp/listener.h"
#include "ingest/pull/poller.h"
#include "ingest/reconcile.h"
#include "ingest/reports/report_service.h"
#include "ingest/spool/spool.h"
#include "log/log.h"
#include "metrics/http_endpoint.h"
#include "metrics/metrics.h"
#include "policy/consent/consent_service.h"
#include "policy/consent/hl7_consent.h"
#include "policy/orders/hl7_orders.h"
#include "policy/stage/stage.h"
#include "report/nightly.h"
#include "report/pacs_count.h"
#include "scheduler/scheduler.h"
#include "senders/sender.h"
#include "senders/transcode/codec_worker.h"
#include "verify/service.h"

namespace dirgw::daemon {

namespace asio = boost::asio;
namespace commands = control::commands;

namespace {

Result<std::string> load_or_create_key(const std::filesystem::path& file) {
  auto existing = read_small_file(file, 4096);
  if (existing && existing->size() >= 32) return *existing;
  std::string key = random_hex(32);
  if (auto w = write_file_durably(file, key, 0600); !w) return w.error();
  return key;
}

// Runs `tick` now and then every `period` on the event loop, until the loop stops.
void repeat(asio::steady_timer& timer, std::chrono::steady_clock::duration period,
            std::function<void()> tick) {
  tick();
  timer.expires_after(period);
  timer.async_wait([&timer, period, tick = std::move(tick)](const boost::system::error_code& ec) {
    if (!ec) repeat(timer, period, tick);
  });
}

}  // namespace

struct Application::Impl {
  config::Config config;
  SystemClock clock;
  asio::io_context io;
  metrics::Registry registry;
  std::unique_ptr<metrics::GatewayMetrics> metrics;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint;
  std::unique_ptr<ingest::Spool> spool;
  std::unique_ptr<catalog::Catalog> catalog;
  std::unique_ptr<AuditTrail> audit;
  std::unique_ptr<policy::DeidTargets> deid;
  std::unique_ptr<policy::Stage> policy_stage;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  // Per destination (null: transcoding off): what the transcoding hook did since start.
  std::vector<std::shared_ptr<senders::transcode::Counters>> transcoding;
  std::unique_ptr<verify::Service> verifier;  // verification and retention (issue 15)
  std::unique_ptr<ingest::CatalogSink> sink;
  std::unique_ptr<ingest::DicomScp> scp;
  std::unique_ptr<ingest::folder::FolderWatcher> folders;  // watched export folders (issue 12)
  // PACS polled with C-FIND / C-MOVE (issue 12): their objects reach the SCP through pull_sink.
  std::unique_ptr<catalog::PullLedger> pull_ledger;
  std::unique_ptr<ingest::pull::PullSink> pull_sink;
  std::unique_ptr<ingest::pull::Poller> pull;
  ingest::pull::GetIntake get_intake;
  std::unique_ptr<report::Nightly> nightly;  // report.folder (issue 15); null: not configured
  report::PacsCounts pacs_counts;  // report.pacs: the PACS's own count of a day; null: none
  // The nightly writer and the catalog row pruning (retention.report_days) on their own thread:
  // a report.pacs C-FIND may take its time-out and a first pruning many transactions, which the
  // event loop (and the watchdog it feeds) must not wait for.
  std::jthread nightly_thread;
  void start_nightly();
  void prune_rows();
  std::unique_ptr<commands::Context> commands;
  std::unique_ptr<control::Server> control;
  std::unique_ptr<policy::ConsentService> consent_service;
  std::unique_ptr<policy::ConsentHl7Sink> hl7_sink;
  std::unique_ptr<audit::Forwarder> audit_forwarder;
  std::unique_ptr<catalog::ReportLedger> report_ledger;  // reports over HL7 (issue 12)
  std::unique_ptr<reports::ReportService> report_service;
  std::unique_ptr<reports::ReportRouter> hl7_router;
  std::unique_ptr<policy::OrderHl7Sink> hl7_orders;  // ORM/OMI first, the rest to hl7_router/sink
  std::unique_ptr<ingest::Hl7Listener> hl7;
  std::unique_ptr<PriorsParts> priors;  // priors into the local PACS (issue 18); null: off
  std::int64_t started_at = 0;
  catalog::Reconciliation reconciliation;
  ingest::PrescanLimits limits;
  std::atomic<bool> stopping{false};
  std::thread stopper;  // the bounded stop of the listeners, while the control socket answers
  // Makes the spool's slot links durable in batches (spool.h: settle()), off the C-STORE path.
  std::thread settler;
  std::mutex settler_mutex;
  std::condition_variable settler_cv;
  bool settler_stop = false;
  void start_settler();
  void stop_settler();

  explicit Impl(config::Config c) : config(std::move(c)) {}

  Result<void> start();
  Result<void> open_state();
  Result<void> build_stages();
  Result<void> start_control();
  Result<void> start_metrics();
  Result<void> start_listeners();
  void start_audit_forwarder();
  commands::LiveFacts live_facts() const;
  void report_status();
  void write_nightly();
  void begin_stop();
  void stop();
};

Application::Application(config::Config config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}
Application::~Application() = default;

// Start order: state on disk (reconciled) first, then the stages, then whatever lets the world
// in (control socket, listeners), and the forwarders last.
Result<void> Application::Impl::start() {
  started_at = to_epoch_ms(clock.now());
  if (auto r = open_state(); !r) return r.error();
  if (auto r = build_stages(); !r) return r.error();
  start_settler();
  if (auto r = start_control(); !r) return r.error();
  if (auto r = start_listeners(); !r) return r.error();
  if (config.audit_syslog.enabled) start_audit_forwarder();
  scheduler->start();
  verifier->start();
  if (priors) priors->service->start();
  return {};
}

namespace {
// DIRGW_FAULT_FOR_TEST=kill-after-group-commit:N (tests/integration/test_fault_injection.py):
// SIGKILL right after the Nth group commit's COMMIT returned, before any of its C-STOREs is
// answered. Test-only; production never sets it.
void install_fault_points_for_test(ingest::CatalogSink& sink) {
  const char* fault = std::getenv("DIRGW_FAULT_FOR_TEST");
  constexpr std::string_view kKill = "kill-after-group-commit:";
  if (fault == nullptr || std::string_view(fault).rfind(kKill, 0) != 0) return;
  const long at = std::strtol(fault + kKill.size(), nullptr, 10);
  log::warn("test fault point armed: SIGKILL after a group commit",
            {{"commit", std::to_string(at)}});
  auto count = std::make_shared<std::atomic<long>>(0);
  sink.group_commit().set_after_commit_for_test([count, at](std::size_t) {
    if (++*count == at) ::kill(::getpid(), SIGKILL);
  });
}
}  // namespace

// Keys, spool and catalog, reconciled with each other before any listener opens.
Result<void> Application::Impl::open_state() {
  const auto& state = config.state_dir;
  for (const auto& dir : {state, state / "keys"})
    if (auto r = make_dirs(dir, 0750); !r) return r.error();
  if (auto r = make_dirs(config.control_socket.parent_path(), 0750); !r) return r.error();
  auto key = load_or_create_key(state / "keys" / "log-hmac.key");
  if (!key) return key.error();
  log::set_phi_key(*key);
  auto deid_targets = policy::DeidTargets::make(config);
  if (!deid_targets) return deid_targets.error();
  deid = std::make_unique<policy::DeidTargets>(std::move(deid_targets).value());

  auto opened_spool = ingest::Spool::open(state / "spool");
  if (!opened_spool) return opened_spool.error();
  spool = std::make_unique<ingest::Spool>(std::move(opened_spool).value());
  limits.max_object_size = config.ingest.dicom.max_object_size;
  limits.max_items = config.ingest.dicom.max_items;

  std::vector<std::string> names;
  for (const auto& d : config.destinations) names.push_back(d.name);
  auto opened = catalog::Catalog::open(state / "catalog.db", names, clock);
  if (!opened) return opened.error();
  catalog = std::move(opened).value();
  audit = std::make_unique<AuditTrail>(config, catalog->audit);
  auto reconciled = ingest::reconcile(*spool, catalog->ingest, catalog->delivery,
                                      {limits, state / "quarantine" / "unparseable"}, clock);
  if (!reconciled) return reconciled.error();
  reconciliation = *reconciled;
  return {};
}

Result<void> Application::Impl::build_stages() {
  auto built = build_destinations(config, clock, spool->root() / "tmp");
  if (!built) return built.error();
  std::vector<std::string> dest_names;
  for (const auto& d : config.destinations) dest_names.push_back(d.name);
  metrics = std::make_unique<metrics::GatewayMetrics>(registry, dest_names, DIRGW_VERSION);
  transcoding = built->transcoding;
  register_transcode_metrics(registry, dest_names, transcoding);
  policy_stage =
      std::make_unique<policy::Stage>(config, *catalog, *spool, clock, metrics.get(), deid.get());
  scheduler::PolicyStep policy_step = [this] {
    const auto p = policy_stage->step();
    return scheduler::PolicyRound{p.studies, p.ready, p.failed, p.next_report_check_at,
                                  p.early_cleared};
  };
  std::vector<std::shared_ptr<senders::TokenProvider>> tokens;  // QIDO-RS shares them
  for (const auto& s : built->schedules) tokens.push_back(s.tokens);
  scheduler = std::make_unique<scheduler::Scheduler>(
      config, *catalog, *spool, std::move(built->senders), clock, std::move(policy_step),
      metrics.get(), std::move(built->schedules));
  verifier = std::make_unique<verify::Service>(config, *catalog, *spool, clock, &registry, tokens,
                                               [this] { scheduler->work_available(); });
  verifier->retention().set_content_key([this](const std::filesystem::path& path) {
    auto key = ingest::object_content_key(path, limits);
    return key ? std::move(key).value() : std::string();
  });
  if (config.priors.enabled)
    priors = build_priors(config, *catalog, *spool, clock, tokens, limits,
                          [this](audit::Event e) { audit->record(std::move(e)); });
  consent_service = std::make_unique<policy::ConsentService>(
      config, catalog->consent, [this](audit::Event e) { audit->record(std::move(e)); },
      [this] { scheduler->work_available(); });
  sink = std::make_unique<ingest::CatalogSink>(
      catalog->ingest,
      [this] {
        scheduler->instance_received();
        if (report_service) report_service->wake();
      },
      config.ingest.new_versions == "hold" ? catalog::NewVersionPolicy::kHold
                                           : catalog::NewVersionPolicy::kSend);
  for (const auto& d : config.destinations)
    if (d.send_while_receiving) sink->set_wake_on_every_instance(true);
  sink->check_content(*spool, limits);
  install_fault_points_for_test(*sink);
  sink->set_audit([this](const ingest::DoorRefusal& r) {
    audit->record(audit::connection_refused(r.calling_ae, r.peer, r.code, r.reason));
  });
  pacs_counts = report::make_pacs_counts(
      config.report.pacs,
      [](const config::PullSource& pacs, const std::string& ae) {
        return ingest::pull::connect_dcmtk(pacs, ae);
      },
      [this](const std::vector<std::string>& uids) {
        return catalog->day_report.instances_of_studies(uids);
      });
  if (!config.report.folder.empty())
    nightly = std::make_unique<report::Nightly>(
        report::NightlySettings{config.report.folder, config.report.at_minute, config.timezone},
        clock,
        [this](std::int64_t from, std::int64_t to) { return catalog->day_report.counts(from, to); },
        pacs_counts);
  return {};
}

// report.folder: looked at now (to catch up after downtime) and every minute; the catalog rows
// past retention.report_days pruned now and every hour.
void Application::Impl::start_nightly() {
  if (!nightly && config.retention.report_days == 0) return;
  nightly_thread = std::jthread([this](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    for (int minute = 0; !stop.stop_requested(); ++minute) {
      lock.unlock();
      if (nightly) write_nightly();
      if (minute % 60 == 0) prune_rows();
      lock.lock();
      cv.wait_for(lock, stop, std::chrono::minutes(1), [] { return false; });
    }
  });
}

void Application::Impl::prune_rows() {
  if (config.retention.report_days == 0) return;
  const std::int64_t before = to_epoch_ms(clock.now()) -
                              static_cast<std::int64_t>(config.retention.report_days) * 86'400'000;
  auto pruned = catalog->pruner.prune(before);
  if (!pruned)
    log::warn("catalog rows not pruned", {{"error", pruned.error().to_string()}});
  else if (pruned->studies > 0 || pruned->refusals > 0)
    log::info("catalog rows pruned",
              {{"studies", std::to_string(pruned->studies)},
               {"instances", std::to_string(pruned->instances)},
               {"refusals", std::to_string(pruned->refusals)},
               {"report_days", std::to_string(config.retention.report_days)}});
}

// The nightly report files due now (and missed nights, after downtime): docs/report.md.
void Application::Impl::write_nightly() {
  auto written = nightly->step();
  if (!written) {
    log::warn("nightly report not written", {{"error", written.error().to_string()}});
    return;
  }
  for (const auto& day : *written)
    log::info("nightly report written", {{"day", day}, {"folder", config.report.folder.string()}});
}

Result<void> Application::Impl::start_control() {
  // The report ledger is the catalog's: `dirgw reports` reads it from the first request on.
  if (config.ingest.hl7.enabled && config.ingest.hl7.reports.enabled)
    report_ledger = std::make_unique<catalog::ReportLedger>(catalog->db());
  commands = std::make_unique<commands::Context>(
      commands::Context{.config = config,
                        .queries = catalog->queries,
                        .operators = catalog->operators,
                        .policy = catalog->policy,
                        .consent = catalog->consent,
                        .audit_log = catalog->audit,
                        .consent_service = *consent_service,
                        .spool = *spool,
                        .export_context = export_context(config),
                        .work_available = [this] { scheduler->work_available(); },
                        .audit = [this](audit::Event e) { audit->record(std::move(e)); },
                        .audit_verified = [this] { audit->write_anchor(); },
                        .live = [this] { return live_facts(); },
                        .retention = &verifier->retention(),
                        .priors = priors ? priors->service.get() : nullptr,
                        .prior_ledger = priors ? priors->ledger.get() : nullptr,
                        .day_report = &catalog->day_report,
                        .nightly = nightly.get(),
                        .pacs_counts = pacs_counts,
                        .pruner = &catalog->pruner,
                        .report_ledger = report_ledger.get()});
  control = std::make_unique<control::Server>(
      io, config.control_socket.string(),
      [this](const nlohmann::json& req, const control::Peer& peer) {
        return commands::handle(*commands, req, peer);
      });
  if (auto r = control->start(); !r) return r.error();
  if (group* g = ::getgrnam("dirgw"); g != nullptr) [[maybe_unused]]
    int rc = ::chown(config.control_socket.c_str(), static_cast<uid_t>(-1), g->gr_gid);
  return {};
}

Result<void> Application::Impl::start_listeners() {
  if (!config.ingest.pull.empty()) pull_sink = std::make_unique<ingest::pull::PullSink>(*sink);
  if (config.ingest.dicom.enabled) {
    ingest::ObjectSink& scp_sink = pull_sink ? *pull_sink : static_cast<ingest::ObjectSink&>(*sink);
    scp = std::make_unique<ingest::DicomScp>(config.ingest.dicom, *spool, scp_sink, limits,
                                             config.retention.spool_floor, metrics.get());
    scp->set_make_room([this] { return verifier->make_room(); });
    // Storage commitment reports from the dimse destinations that are asked for them.
    std::set<std::string> repository_aes, our_aes;
    for (const auto& d : config.destinations)
      if (d.type == "dimse" && d.verify.mode == "storage-commitment") {
        repository_aes.insert(d.dimse.ae_title);
        our_aes.insert(d.dimse.calling_ae);
      }
    if (!repository_aes.empty())
      scp->set_commitment(&verifier->commitment_receiver(), std::move(repository_aes),
                          std::move(our_aes));
    if (auto r = scp->start(); !r) return r.error();
  }
  if (pull_sink) {
    pull_ledger = std::make_unique<catalog::PullLedger>(catalog->db());
    // C-GET sources (retrieve: get) receive on their own association, into the same intake.
    get_intake = ingest::pull::GetIntake{spool.get(), pull_sink.get(), limits,
                                         config.ingest.dicom.transfer_syntaxes};
    pull = std::make_unique<ingest::pull::Poller>(
        config.ingest.pull, config.ingest.dicom.ae_title, config.timezone, *pull_ledger, *pull_sink,
        clock, [this](const config::PullSource& s, const std::string& ae) {
          return ingest::pull::connect_dcmtk(s, ae, &get_intake);
        });
    pull->start();
  }
  if (!config.ingest.folders.empty()) {
    folders = std::make_unique<ingest::folder::FolderWatcher>(
        config.ingest.folders, *spool, *sink, limits, clock, ingest::folder::ZipLimits{},
        metrics.get(), config.retention.spool_floor);
    folders->register_metrics(registry);
    folders->set_make_room([this] { return verifier->make_room(); });
    // Every syntax the receiver could be configured to take (not the site's list, which may be
    // narrowed to make C-STORE senders decompress: a file cannot), and explicit big endian.
    const auto readable = config::default_storage_transfer_syntaxes();
    std::set<std::string, std::less<>> syntaxes(readable.begin(), readable.end());
    syntaxes.insert("1.2.840.10008.1.2.2");
    folders->set_transfer_syntaxes(syntaxes);
    if (auto r = folders->start(); !r) return r.error();
  }
  if (config.metrics.enabled)
    if (auto r = start_metrics(); !r) return r.error();
  if (config.ingest.hl7.enabled) {
    hl7_sink = std::make_unique<policy::ConsentHl7Sink>(config, *consent_service, catalog->consent);
    ingest::Hl7Sink* hl7_in = hl7_sink.get();
    if (config.ingest.hl7.reports.enabled) {
      if (!report_ledger) report_ledger = std::make_unique<catalog::ReportLedger>(catalog->db());
      report_service = std::make_unique<reports::ReportService>(
          config.ingest.hl7.reports, *report_ledger, *spool, *sink, limits);
      // A study held for its report (require_report) is judged again once the report is in.
      report_service->set_on_done([this] { scheduler->instance_received(); });
      report_service->register_metrics(registry);
      hl7_router = std::make_unique<reports::ReportRouter>(*report_service, *hl7_sink);
      hl7_in = hl7_router.get();
      report_service->start();
    }
    // Orders (ORM/OMI) first; reports (ORU/MDM) next when on; the rest to the consent sink.
    hl7_orders =
        std::make_unique<policy::OrderHl7Sink>(config.priority.hl7_orders, catalog->orders, *hl7_in,
                                               [this] { scheduler->work_available(); });
    ingest::Hl7Sink& hl7_first =
        priors ? priors->hook_hl7(config, *catalog, *hl7_orders) : *hl7_orders;  // priors first
    hl7 = std::make_unique<ingest::Hl7Listener>(io, config.ingest.hl7, hl7_first);
    if (auto r = hl7->start(); !r) return r.error();
  }
  return {};
}

Result<void> Application::Impl::start_metrics() {
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
  register_ops_metrics(registry, config, [this]() -> std::optional<bool> {
    if (!audit_forwarder) return std::nullopt;  // off (or not started yet)
    return audit_forwarder->last_error().empty();
  });
  metrics::EndpointOptions o;
  o.address = config.metrics.bind;
  o.port = static_cast<std::uint16_t>(config.metrics.port);
  metrics_endpoint = std::make_unique<metrics::HttpEndpoint>(io, registry, o);
  if (auto r = metrics_endpoint->start(); !r) return r.error();
  log::info("metrics endpoint ready",
            {{"address", config.metrics.bind}, {"port", std::to_string(metrics_endpoint->port())}});
  return {};
}

void Application::Impl::start_audit_forwarder() {
  const auto& a = config.audit_syslog;
  audit::ForwarderOptions o{a.host,
                            a.port,
                            a.ca,
                            a.client_cert,
                            a.client_key,
                            a.verify_peer,
                            config.state_dir / "audit.syslog.cursor"};
  audit::SyslogContext sc;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  sc.hostname = host;
  sc.procid = std::to_string(::getpid());
  audit_forwarder = std::make_unique<audit::Forwarder>(
      o, export_context(config), sc,
      [this](std::int64_t after, int limit) { return catalog->audit.audit_after(after, limit); });
  audit->set_forwarder(audit_forwarder.get());
  audit_forwarder->start();
}

// What status shows beyond the catalog; read on the control socket's worker thread.
commands::LiveFacts Application::Impl::live_facts() const {
  commands::LiveFacts f;
  f.started_at_ms = started_at;
  f.stopping = stopping;
  f.reconciliation = reconciliation;
  if (scp) {
    const auto& st = scp->stats();
    f.dicom = commands::DicomFacts{scp->port(),
                                   static_cast<std::uint64_t>(st.active.load()),
                                   st.associations.load(),
                                   st.associations_rejected.load(),
                                   st.stored.load(),
                                   st.duplicates.load(),
                                   st.refused.load(),
                                   st.contexts_refused.load()};
  }
  if (folders) f.folders = folders->status();
  if (report_ledger)
    if (auto counts = report_ledger->counts()) f.hl7_reports = std::move(*counts);
  if (report_service) {
    f.hl7_reports_ae = report_service->refused().ae;
    f.hl7_reports_ar = report_service->refused().ar;
  }
  if (pull) f.pulls = pull->status();
  f.forwarders = scheduler->status();
  for (const auto& t : transcoding)
    f.transcoding.push_back(t ? std::optional(senders::transcode::snapshot(*t)) : std::nullopt);
  f.host_warnings = host_warnings(config, clock);
  if (audit_forwarder) f.audit_forwarder_error = audit_forwarder->last_error();
  f.audit_broken = audit->broken();
  const auto health = policy_stage->health();
  f.policy_failures = health.consecutive_failures;
  f.policy_error = health.last_error;
  f.verification = verifier->status();
  return f;
}

// systemd's STATUS= line: what `systemctl status dirgw` shows at a glance.
void Application::Impl::report_status() {
  auto st = catalog->queries.status();
  if (!st) return;
  std::int64_t pending = 0, bytes = 0;
  for (const auto& d : st->destinations) {
    pending += d.pending_instances;
    bytes += d.pending_bytes;
  }
  sd_notifyf(0, "STATUS=%lld studies, %lld instances; backlog %lld instances (%lld MiB)",
             static_cast<long long>(st->studies), static_cast<long long>(st->instances),
             static_cast<long long>(pending), static_cast<long long>(bytes >> 20));
}

// On SIGTERM: the listeners stop (the SCP within its stop_grace) while the event loop keeps
// running, so that the control socket answers "stopping" and the watchdog is fed; the loop
// stops once no association is left.
void Application::Impl::begin_stop() {
  if (stopping.exchange(true)) return;
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing associations in progress");
  if (hl7) hl7->stop();
  stopper = std::thread([this] {
    // The poller stops asking at once; the receiver's bounded stop cuts a C-MOVE in progress
    // short (the study is asked for again at the next start), then the poller's thread ends.
    if (pull) pull->request_stop();
    if (scp) scp->stop();
    if (pull) pull->stop();
    asio::post(io, [this] { io.stop(); });
  });
}

void Application::Impl::start_settler() {
  settler = std::thread([this] {
    std::unique_lock lock(settler_mutex);
    for (bool last = false; !last;) {
      last = settler_cv.wait_for(lock, std::chrono::milliseconds(250),
                                 [this] { return settler_stop; });
      lock.unlock();
      if (auto r = spool->settle(); !r)
        log::error("a spool directory flush failed: the objects' slots are kept until restart",
                   {{"error", r.error().to_string()}});
      lock.lock();
    }
  });
}

void Application::Impl::stop_settler() {
  if (!settler.joinable()) return;
  {
    std::lock_guard lock(settler_mutex);
    settler_stop = true;
  }
  settler_cv.notify_all();
  settler.join();  // its last round settles what the stopped SCP committed
}

// Ordered shutdown: no new objects, then no new sends, then the catalog closes.
void Application::Impl::stop() {
  if (stopper.joinable()) stopper.join();
  if (nightly_thread.joinable()) {
    nightly_thread.request_stop();
    nightly_thread.join();
  }
  if (pull) pull->stop();
  if (scp) scp->stop();
  stop_settler();
  if (folders) folders->stop();
  if (hl7) hl7->stop();
  if (report_service) report_service->stop();
  if (priors) priors->service->stop();
  // A decompression or transcoding in progress would hold its sender until codecs.timeout.
  senders::transcode::CodecWorker::stop_all_jobs();
  scheduler->stop();
  verifier->stop();
  control->stop();
  if (metrics_endpoint) metrics_endpoint->stop();
  audit->record(audit::EventType::kStopped);
  audit->write_anchor();
  if (audit_forwarder) audit_forwarder->stop();
  // Everything that writes is stopped: the next start needs to reconcile only what an ordered
  // stop leaves open (docs/performance.md, catalog scale).
  if (auto r = catalog->ingest.end_run(); !r)
    log::error("cannot record the ordered stop", {{"error", r.error().to_string()}});
}

int Application::run() {
  auto& s = *impl_;
  auto started = s.start();
  if (!started) {
    log::error("dirgwd cannot start", {{"error", started.error().to_string()}});
    sd_notifyf(0, "STATUS=cannot start: %s", started.error().to_string().c_str());
    if (s.pull) s.pull->stop();
    if (s.scp) s.scp->stop();
    s.stop_settler();
    if (s.folders) s.folders->stop();
    if (s.scheduler) s.scheduler->stop();
    if (s.verifier) s.verifier->stop();
    if (s.priors) s.priors->service->stop();
    return 1;
  }
  log::info("dirgwd started", {{"version", DIRGW_VERSION},
                               {"state_dir", s.config.state_dir.string()},
                               {"destinations", std::to_string(s.config.destinations.size())}});
  s.audit->check_at_start();
  sd_notify(0, "READY=1\nSTATUS=running");

  asio::signal_set signals(s.io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("stopping", {{"signal", std::to_string(sig)}});
    s.begin_stop();
  });
  // The watchdog is fed from the event loop: a hung loop stops feeding it and systemd restarts us.
  asio::steady_timer watchdog(s.io);
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    repeat(watchdog, std::chrono::microseconds(usec / 2), [] { sd_notify(0, "WATCHDOG=1"); });
  asio::steady_timer status_timer(s.io);
  repeat(status_timer, std::chrono::seconds(10), [&] { s.report_status(); });
  // The audit anchor (newest seq and hash) is written beside the catalog every minute and at
  // stop, so that removing the newest entries is detected too.
  asio::steady_timer anchor_timer(s.io);
  repeat(anchor_timer, std::chrono::minutes(1), [&] { s.audit->write_anchor(); });
  s.start_nightly();
  s.io.run();

  s.stop();
  log::info("dirgwd stopped");
  return 0;
}

}  // namespace dirgw::daemon
