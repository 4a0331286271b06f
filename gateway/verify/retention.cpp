#include "verify/retention.h"

#include <set>

#include "common/files.h"
#include "log/log.h"

namespace dirgw::verify {

namespace {
constexpr int kBatch = 200;  // objects recorded per catalog transaction
constexpr const char* kAge = "age";
constexpr const char* kPressure = "disk-pressure";
}  // namespace

Retention::Retention(const config::Retention& config, catalog::VerifyLedger& ledger,
                     const ingest::Spool& spool, const Clock& clock, RetentionMetrics* metrics,
                     FreeBytes free)
    : config_(config),
      ledger_(ledger),
      spool_(spool),
      clock_(clock),
      metrics_(metrics),
      free_(std::move(free)) {
  if (!free_)
    free_ = [this]() -> std::optional<std::uint64_t> {
      auto f = free_bytes(spool_.root());
      if (!f) return std::nullopt;
      return *f;
    };
}

bool Retention::below_floor() const {
  const auto f = free_();
  return !f || *f < config_.spool_floor;
}

std::pair<std::int64_t, std::int64_t> Retention::purge(std::vector<catalog::PurgeCandidate> objects,
                                                       const std::string& reason) {
  // What each object holds, read before its file goes: the same instance received again later
  // in other bytes is then still known (catalog::NewInstance::content). Not under disk pressure:
  // a receiver waits on that purge, and reading every file would slow the space it frees.
  if (reason == kAge && content_key_)
    for (auto& c : objects)
      if (!c.content_known) c.content_key = content_key_(spool_.object_path(c.sha256));
  auto rec = ledger_.record_purged(objects, reason);
  if (!rec) {
    log::error("retention: cannot record a purge: nothing removed",
               {{"error", rec.error().to_string()}});
    return {0, 0};
  }
  for (const auto& c : rec->marked) {
    if (auto r = spool_.remove_object(c.sha256); !r)
      log::error("retention: cannot remove a spool object",
                 {{"object", c.sha256}, {"error", r.error().to_string()}});
    for (const auto& d : c.derived)
      if (auto r = spool_.remove_derived(d); !r)
        log::error("retention: cannot remove a derived object",
                   {{"object", d}, {"error", r.error().to_string()}});
  }
  const auto n = static_cast<std::int64_t>(rec->marked.size());
  if (metrics_ != nullptr) {
    auto& objects_c = reason == kAge ? metrics_->objects_age : metrics_->objects_pressure;
    auto& bytes_c = reason == kAge ? metrics_->bytes_age : metrics_->bytes_pressure;
    objects_c.inc(static_cast<std::uint64_t>(n));
    bytes_c.inc(static_cast<std::uint64_t>(rec->bytes));
  }
  if (n > 0)
    log::info("retention: verified spool objects removed", {{"objects", std::to_string(n)},
                                                            {"bytes", std::to_string(rec->bytes)},
                                                            {"reason", reason}});
  return {n, rec->bytes};
}

std::int64_t Retention::purge_pressure(StepResult* r) {
  std::int64_t removed = 0;
  // Verified objects of any age, oldest verification first, just enough of them to meet the
  // floor (checked again after each purge), until nothing verified is left: never an
  // unverified object. Without a free-space reading nothing is removed blindly.
  for (;;) {
    const auto free = free_();
    if (!free || *free >= config_.spool_floor) break;
    auto batch = ledger_.purgeable(to_epoch_ms(clock_.now()), kBatch);
    if (!batch || batch->empty()) break;
    const std::uint64_t need = config_.spool_floor - *free;
    std::uint64_t gained = 0;
    std::size_t take = 0;
    while (take < batch->size() && gained < need) gained += (*batch)[take++].size;
    batch->resize(take);
    const auto [n, bytes] = purge(*batch, kPressure);
    if (n == 0) break;
    removed += n;
    if (r != nullptr) {
      r->objects += n;
      r->bytes += bytes;
    }
  }
  return removed;
}

Retention::StepResult Retention::step() {
  std::lock_guard lock(mutex_);
  StepResult r;
  const TimePoint now = clock_.now();
  const std::int64_t cutoff = to_epoch_ms(now - config_.keep_after_verified);
  for (;;) {
    auto batch = ledger_.purgeable(cutoff, kBatch);
    if (!batch) {
      log::error("retention: catalog error", {{"error", batch.error().to_string()}});
      r.next = now + std::chrono::seconds(30);
      return r;
    }
    if (batch->empty()) break;
    const auto [n, bytes] = purge(*batch, kAge);
    r.objects += n;
    r.bytes += bytes;
    if (n == 0 || static_cast<int>(batch->size()) < kBatch) break;
  }
  purge_pressure(&r);
  auto oldest = ledger_.oldest_unpurged();
  if (oldest && oldest->has_value()) r.next = from_epoch_ms(**oldest) + config_.keep_after_verified;
  // Due already yet not removed (the catalog refused the purge): not in a tight loop.
  if (r.next && *r.next <= now) r.next = now + std::chrono::seconds(5);
  return r;
}

bool Retention::make_room() {
  std::lock_guard lock(mutex_);
  if (!below_floor()) return true;
  const auto removed = purge_pressure(nullptr);
  const bool ok = !below_floor();
  if (removed > 0 || !ok)
    log::warn(ok ? "spool below its floor: verified objects removed, ingest goes on"
                 : "spool below its floor and no verified object left to remove: ingest refused",
              {{"removed", std::to_string(removed)}});
  return ok;
}

Result<Retention::Plan> Retention::plan() {
  Plan p;
  p.floor = config_.spool_floor;
  p.free = free_();
  const TimePoint now = clock_.now();
  auto aged = ledger_.purgeable(to_epoch_ms(now - config_.keep_after_verified), 100000);
  if (!aged) return aged.error();
  p.by_age = std::move(*aged);
  if (!p.free || *p.free < p.floor) {
    // Oldest first, as make_room would take them, until the shortfall is covered.
    auto all = ledger_.purgeable(to_epoch_ms(now), 100000);
    if (!all) return all.error();
    std::uint64_t gained = 0;
    const std::uint64_t need = p.free ? p.floor - *p.free : p.floor;
    std::set<std::string> aged_already;
    for (const auto& a : p.by_age) aged_already.insert(a.sha256);
    for (auto& c : *all) {
      gained += c.size;
      if (!aged_already.count(c.sha256)) p.by_pressure.push_back(std::move(c));
      if (gained >= need) break;
    }
  }
  return p;
}

}  // namespace dirgw::verify
