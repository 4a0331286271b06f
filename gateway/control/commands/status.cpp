// dirgw status: the catalog's counts, the daemon's live facts, and the warnings an operator
// should act on.
#include <unistd.h>

#include "common/files.h"
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

namespace {

json dicom_json(const config::Config& config, const DicomFacts& d) {
  return {{"ae_title", config.ingest.dicom.ae_title},
          {"port", d.port},
          {"associations_active", d.associations_active},
          {"associations", d.associations},
          {"associations_rejected", d.associations_rejected},
          {"stored", d.stored},
          {"duplicates", d.duplicates},
          {"refused", d.refused},
          {"presentation_contexts_refused", d.contexts_refused}};
}

// Spool, host and audit warnings, in the order status has always listed them.
void add_daemon_warnings(const config::Config& config, const Result<std::uint64_t>& free,
                         const LiveFacts& live, json& warnings) {
  const std::uint64_t floor = config.retention.spool_floor;
  if (free && *free < floor)
    warnings.push_back("spool below its free-space floor: new objects are refused (A700)");
  else if (free && *free < floor + floor / 10 + (256ull << 20))
    warnings.push_back("spool is close to its free-space floor");
  for (const auto& w : live.host_warnings) warnings.push_back(w);
  if (live.policy_failures > 0)
    warnings.push_back(
        "policy decisions cannot be recorded (" + std::to_string(live.policy_failures) +
        " rounds in a row): " + live.policy_error + "; studies wait STABLE and are retried");
  if (!live.audit_forwarder_error.empty())
    warnings.push_back("audit repository: " + live.audit_forwarder_error +
                       " (entries wait in the trail)");
  if (!live.audit_broken.empty())
    warnings.push_back("audit trail does not verify (" + live.audit_broken +
                       "): run dirgw audit verify");
}

// Upload windows, caps and authentication as the forwarder sees them now. Outside its windows a
// destination's waiting studies are SCHEDULED (their catalog state stays READY/RETRY_WAIT).
void schedule_json(const scheduler::ForwarderStatus& c, json& out) {
  out["window"] = {{"scheduled", c.scheduled},
                   {"open", c.window_open},
                   {"state", !c.scheduled    ? "always open"
                             : c.window_open ? "open"
                                             : "SCHEDULED"},
                   {"next_open", c.next_open ? json(format_utc(*c.next_open)) : json(nullptr)},
                   {"stat_bypass", c.stat_bypass}};
  out["bandwidth_cap"] = c.cap;
  out["gateway_bandwidth_cap"] = c.gateway_cap;
  out["auth"] = c.auth;
  out["auth_state"] = c.auth_failed ? "authentication failed" : "ok";
}

// One destination's entry, and its warnings (open circuit, failed studies).
json destination_json(const config::Destination& cfg, const catalog::DestinationStatus& d,
                      const scheduler::ForwarderStatus& c, json& warnings) {
  if (c.auth_failed)
    warnings.push_back("destination " + d.name +
                       ": authentication failed: sending paused, the backlog is kept (check the "
                       "destination's token or certificate)");
  else if (c.circuit != scheduler::Circuit::kClosed)
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
  if (c.scheduled && !c.window_open && !c.stat_bypass && d.pending_instances > 0)
    warnings.push_back("destination " + d.name + ": outside its upload windows, " +
                       std::to_string(d.pending_instances) + " instance(s) SCHEDULED");
  json out = {
      {"name", d.name},
      {"type", cfg.type},
      {"url", cfg.type == "dimse" ? "dicom://" + cfg.dimse.ae_title + "@" + cfg.dimse.host + ":" +
                                        std::to_string(cfg.dimse.port)
                                  : cfg.url},
      {"states", state_counts(d.states)},
      {"pending_instances", d.pending_instances},
      {"held_instances", d.held_instances},
      {"pending_bytes", d.pending_bytes},
      {"oldest_pending_at", time_or_null(d.oldest_pending_at)},
      {"last_success_at", time_or_null(d.last_success_at)},
      {"last_error_at", time_or_null(d.last_error_at)},
      {"last_error", d.last_error},
      // An error older than the last success is history, not the destination's state now.
      {"last_error_cleared", !d.last_error.empty() && d.last_error_at < d.last_success_at},
      {"rate_instances_per_s", c.rate_per_s},
      {"circuit", scheduler::to_string(c.circuit)},
      {"circuit_failures", c.consecutive_failures},
      {"authentication_failed", c.auth_failed},
      {"circuit_probe_at",
       c.circuit == scheduler::Circuit::kOpen ? json(format_utc(c.open_until)) : json(nullptr)},
      // The repository asked to wait (429/503 Retry-After): nothing goes before then.
      {"retry_after_until", c.held_until ? json(format_utc(*c.held_until)) : json(nullptr)},
      // Throttled lately: the request rate the gateway allows itself (self-pacing); null: none.
      {"paced_requests_per_s", c.paced_rate ? json(*c.paced_rate) : json(nullptr)},
      {"concurrency", cfg.concurrency},
      // Throttled lately with several lanes: one request at a time until then; null: all lanes.
      {"one_request_at_a_time_until",
       c.one_lane_until ? json(format_utc(*c.one_lane_until)) : json(nullptr)}};
  if (cfg.require_report.enabled)
    out["require_report"] = {{"max_wait", config::format_duration(cfg.require_report.max_wait)},
                             {"waiting_for_report", d.waiting_report},
                             {"sent_without_report", d.without_report}};
  schedule_json(c, out);
  return out;
}

// Lossless transcoding (docs/transcoding.md): null when off; counts since the daemon started.
json transcode_json(const config::Destination& cfg,
                    const std::optional<senders::transcode::CountersSnapshot>& t) {
  if (cfg.transcode.to.empty()) return nullptr;
  const senders::transcode::CountersSnapshot s = t ? *t : senders::transcode::CountersSnapshot{};
  return {{"to", cfg.transcode.to},
          {"max_pixel_bytes", cfg.transcode.max_pixel_bytes},
          {"transcoded", s.transcoded},
          {"skipped", s.skipped},
          {"verify_failed", s.verify_failed},
          {"refused", s.refused},
          {"original_bytes", s.original_bytes},
          {"sent_bytes", s.sent_bytes},
          {"bytes_saved", s.bytes_saved()},
          {"since", "start"}};
}

}  // namespace

json status(const Context& ctx) {
  auto s = ctx.queries.status();
  if (!s) return error_reply(s.error().to_string());
  const LiveFacts live = ctx.live ? ctx.live() : LiveFacts{};
  const auto& rec = live.reconciliation;
  json out = {{"ok", true},
              {"version", DIRGW_VERSION},
              {"pid", ::getpid()},
              {"state", live.stopping ? "stopping" : "running"},
              {"started_at", format_utc_ms(live.started_at_ms)},
              {"facility", ctx.config.facility_name},
              {"catalog",
               {{"schema", s->schema_version},
                {"studies", s->studies},
                {"instances", s->instances},
                {"bytes", s->bytes},
                {"states", state_counts(s->ingest_states)}}},
              {"startup",
               {{"temporaries_removed", rec.temporaries},
                {"adopted", rec.adopted},
                {"quarantined", rec.quarantined},
                {"missing", rec.missing}}}};
  if (live.dicom) out["ingest"]["dicom"] = dicom_json(ctx.config, *live.dicom);
  if (!live.folders.empty()) out["ingest"]["folders"] = folders_json(live.folders);
  if (!live.pulls.empty()) out["ingest"]["pulls"] = pulls_json(live.pulls);
  if (live.hl7_reports) {
    // Reports by state (the catalog) and those answered AE / AR since start.
    out["ingest"]["hl7_reports"] = reports_json(live.hl7_reports);
    out["ingest"]["hl7_reports"]["answered"] = {{"AE", live.hl7_reports_ae},
                                                {"AR", live.hl7_reports_ar}};
  }
  const std::uint64_t floor = ctx.config.retention.spool_floor;
  auto free = free_bytes(ctx.spool.root());
  out["spool"] = {{"free_bytes", free ? static_cast<std::int64_t>(*free) : -1},
                  {"floor_bytes", floor},
                  {"below_floor", free && *free < floor}};
  json warnings = json::array();
  add_daemon_warnings(ctx.config, free, live, warnings);
  std::string flush_error;
  if (const std::size_t kept = ctx.spool.kept_slots(&flush_error); kept > 0)
    warnings.push_back("spool: a directory flush failed (" + flush_error +
                       "): " + std::to_string(kept) +
                       " received object(s) kept in spool/tmp until dirgwd restarts; check the "
                       "disk (dmesg), then restart dirgwd");
  json dests = json::array();
  for (std::size_t i = 0; i < s->destinations.size(); ++i) {
    const scheduler::ForwarderStatus c =
        i < live.forwarders.size() ? live.forwarders[i] : scheduler::ForwarderStatus{};
    dests.push_back(destination_json(ctx.config.destinations[i], s->destinations[i], c, warnings));
    dests.back()["transcode"] =
        transcode_json(ctx.config.destinations[i],
                       i < live.transcoding.size() ? live.transcoding[i] : std::nullopt);
  }
  out["destinations"] = dests;
  add_verification(ctx, live, out, warnings);
  add_forecasts(ctx, free, out);
  out["warnings"] = warnings;
  out["refusals"] = {{"count", s->refusals}};
  if (s->last_refusal)
    out["refusals"]["last"] = {
        {"at", format_utc_ms(s->last_refusal->at)},  {"source", s->last_refusal->source},
        {"calling_ae", s->last_refusal->calling_ae}, {"peer", s->last_refusal->peer},
        {"reason", s->last_refusal->reason},         {"reason_code", s->last_refusal->code}};
  return out;
}

}  // namespace dirgw::control::commands
