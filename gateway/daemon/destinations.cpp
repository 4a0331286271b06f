#include "daemon/destinations.h"

#include "senders/dicomweb/oauth2.h"
#include "senders/dimse/dimse_sender.h"

namespace dirgw::daemon {

namespace {

Result<std::optional<scheduler::WindowSet>> windows_of(const std::vector<std::string>& specs,
                                                       const std::string& tz,
                                                       const std::string& what) {
  if (specs.empty()) return std::optional<scheduler::WindowSet>();
  auto set = scheduler::parse_windows(specs, tz);
  if (!set) return make_error(ErrorCode::kConfig, what + ": " + set.error().detail);
  return std::optional<scheduler::WindowSet>(std::move(*set));
}

// A bucket for a cap (null when there is none) and, with office hours, its rate switch.
Result<std::shared_ptr<scheduler::TokenBucket>> bucket_for(
    const config::Bandwidth& b, const std::string& tz, const Clock& clock, const std::string& what,
    std::vector<scheduler::RateSwitch>& out) {
  if (b.max == 0 && b.office_hours_max == 0) return std::shared_ptr<scheduler::TokenBucket>();
  auto bucket = std::make_shared<scheduler::TokenBucket>(clock, b.max);
  auto hours = windows_of(b.office_hours, tz, what + ".office_hours");
  if (!hours) return hours.error();
  if (*hours) {
    scheduler::RateSwitch rs{bucket, scheduler::OfficeHours(std::move(**hours)), b.office_hours_max,
                             b.max};
    rs.apply(clock.now());
    out.push_back(std::move(rs));
  }
  return bucket;
}

Result<std::shared_ptr<senders::TokenProvider>> oauth2_for(const config::Destination& d,
                                                           const Clock& clock) {
  senders::dicomweb::OAuth2Options o;
  o.token_url = d.auth.oauth2.token_url;
  o.client_id = d.auth.oauth2.client_id;
  o.client_secret_file = d.auth.oauth2.client_secret_file;
  o.scope = d.auth.oauth2.scope;
  o.ca_file = d.auth.ca;
  o.client_cert = d.auth.client_cert;
  o.client_key = d.auth.client_key;
  o.verify_peer = d.auth.verify_peer;
  o.retry_after_max = d.retry_after_max;
  auto p = senders::dicomweb::OAuth2ClientCredentials::create(std::move(o), clock);
  if (!p)
    return make_error(ErrorCode::kConfig,
                      "destinations." + d.name + ".auth.oauth2: " + p.error().detail);
  return std::shared_ptr<senders::TokenProvider>(std::move(*p));
}

std::unique_ptr<senders::Sender> dimse_sender(const config::Destination& d,
                                              const scheduler::ForwardSchedule& s,
                                              const config::Codecs& codecs,
                                              const std::filesystem::path& spool_tmp) {
  senders::DimseOptions o = scheduler::dimse_options(d);
  o.codec = senders::transcode::daemon_codec_settings(codecs.timeout, codecs.memory_limit,
                                                      spool_tmp.parent_path());
  o.scratch_dir = spool_tmp;
  for (const auto& b : {s.bucket, s.gateway_bucket})
    if (b) o.bandwidth_buckets.push_back(b);
  return senders::make_dimse_sender(o);
}

std::string auth_kind(const config::Destination& d) {
  if (d.type == "dimse")
    return d.dimse.tls ? (d.dimse.client_cert.empty() ? "tls" : "tls+client-cert") : "none";
  std::string kind = !d.auth.oauth2.token_url.empty()    ? "oauth2"
                     : !d.auth.bearer_token_file.empty() ? "bearer"
                                                         : "none";
  if (!d.auth.client_cert.empty()) kind += "+mtls";
  return kind;
}

// The destination's sender, wrapped in the transcoding hook when `transcode:` is on.
// The sender itself when `counters` is null (transcoding off), else wrapped in the transcoding
// hook; every lane of a destination shares its counters.
std::unique_ptr<senders::Sender> with_transcoding(
    std::unique_ptr<senders::Sender>&& sender, const config::Destination& d,
    const std::filesystem::path& spool_tmp, const config::Codecs& codecs,
    const std::shared_ptr<senders::transcode::Counters>& counters) {
  if (!counters) return std::move(sender);
  return senders::transcode::make_transcoding_sender(
      std::move(sender), {spool_tmp, d.transcode.max_pixel_bytes, d.transcode.syntax_parameter},
      counters,
      senders::transcode::daemon_codec_settings(codecs.timeout, codecs.memory_limit,
                                                spool_tmp.parent_path()));
}

}  // namespace

Result<Destinations> build_destinations(const config::Config& config, const Clock& clock,
                                        const std::filesystem::path& spool_tmp) {
  Destinations out;
  std::vector<scheduler::RateSwitch> gateway_rates;
  auto gateway = bucket_for(config.forwarding_bandwidth, config.timezone, clock,
                            "forwarding.bandwidth", gateway_rates);
  if (!gateway) return gateway.error();
  for (const auto& d : config.destinations) {
    const std::string where = "destinations." + d.name;
    scheduler::ForwardSchedule s;
    auto windows = windows_of(d.schedule.windows, config.timezone, where + ".schedule");
    if (!windows) return windows.error();
    s.windows = std::move(*windows);
    s.stat_bypass = d.schedule.stat_bypass;
    auto bucket = bucket_for(d.bandwidth, config.timezone, clock, where + ".bandwidth", s.rates);
    if (!bucket) return bucket.error();
    s.bucket = *bucket;
    s.gateway_bucket = *gateway;
    s.rates.insert(s.rates.end(), gateway_rates.begin(), gateway_rates.end());
    s.auth = auth_kind(d);
    // One sender per lane (`concurrency`), sharing the buckets, the token provider and the
    // transcoding counters.
    std::vector<std::unique_ptr<senders::Sender>> lanes;
    auto counters =
        d.transcode.to.empty() ? nullptr : std::make_shared<senders::transcode::Counters>();
    out.transcoding.push_back(counters);
    auto lane = [&](std::unique_ptr<senders::Sender> sender) {
      return with_transcoding(std::move(sender), d, spool_tmp, config.codecs, counters);
    };
    if (d.type == "dimse") {
      for (int i = 0; i < d.concurrency; ++i)
        lanes.push_back(lane(dimse_sender(d, s, config.codecs, spool_tmp)));
    } else {
      senders::StowRsOptions o = scheduler::stow_options(d);
      for (const auto& b : {s.bucket, s.gateway_bucket})
        if (b) o.bandwidth_buckets.push_back(b);
      if (!d.auth.oauth2.token_url.empty()) {
        auto tokens = oauth2_for(d, clock);
        if (!tokens) return tokens.error();
        s.tokens = *tokens;
        o.token_provider = s.tokens;
      }
      for (int i = 0; i < d.concurrency; ++i)
        lanes.push_back(lane(senders::make_stow_rs_sender(o)));
    }
    out.senders.push_back(senders::make_sender_pool(std::move(lanes)));
    out.schedules.push_back(std::move(s));
  }
  return out;
}

void register_transcode_metrics(
    metrics::Registry& registry, const std::vector<std::string>& names,
    const std::vector<std::shared_ptr<senders::transcode::Counters>>& counters) {
  std::vector<std::pair<std::string, std::shared_ptr<senders::transcode::Counters>>> on;
  for (std::size_t i = 0; i < names.size() && i < counters.size(); ++i)
    if (counters[i]) on.emplace_back(names[i], counters[i]);
  if (on.empty()) return;
  registry.counter_callback(
      "dirgw_transcode_objects_total",
      "Objects by what the transcoding hook did: transcoded (the JPEG-LS copy was accepted), "
      "skipped, verify_failed, refused (the destination refused JPEG-LS); since start",
      {"destination", "result"}, [on] {
        std::vector<metrics::Sample> out;
        for (const auto& [name, c] : on) {
          const auto s = senders::transcode::snapshot(*c);
          out.push_back({{name, "transcoded"}, static_cast<double>(s.transcoded)});
          out.push_back({{name, "skipped"}, static_cast<double>(s.skipped)});
          out.push_back({{name, "verify_failed"}, static_cast<double>(s.verify_failed)});
          out.push_back({{name, "refused"}, static_cast<double>(s.refused)});
        }
        return out;
      });
  registry.counter_callback(
      "dirgw_transcode_bytes_saved_total",
      "Stored size minus sent size of the transcoded copies the destination accepted; since start",
      {"destination"}, [on] {
        std::vector<metrics::Sample> out;
        for (const auto& [name, c] : on)
          out.push_back(
              {{name}, static_cast<double>(senders::transcode::snapshot(*c).bytes_saved())});
        return out;
      });
}

}  // namespace dirgw::daemon
