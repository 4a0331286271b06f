#include "ingest/reconcile.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <system_error>

#include "common/files.h"
#include "ingest/catalog_sink.h"
#include "log/log.h"

namespace dirgw::ingest {

namespace {

// Complete objects the catalog does not know: adopted when they parse, quarantined otherwise.
Result<void> adopt_orphans(const Spool& spool, catalog::IngestLedger& ingest,
                           const std::vector<std::string>& on_disk,
                           const std::vector<std::string>& known, const ReconcileOptions& options,
                           catalog::Reconciliation& summary) {
  bool shard_synced = false;
  for (const auto& sha : on_disk) {
    if (std::binary_search(known.begin(), known.end(), sha)) continue;
    const auto path = spool.object_path(sha);
    auto scan = prescan_file(path, options.limits);
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!scan || ec) {
      log::warn("spool object without a catalog row does not parse: moved to quarantine",
                {{"object", sha}, {"reason", scan ? ec.message() : scan.error().detail}});
      if (auto m = spool.move_object(sha, options.unparseable_dir); !m) return m.error();
      ++summary.quarantined;
      continue;
    }
    // After a kill the name may be in the page cache only (linked just before a COMMIT that did
    // not happen, its slot removed by this start): made durable before the catalog relies on it,
    // or a power cut later takes an object the catalog records and a sender was told it has
    // (found by test_power_cut's kill-then-cut events).
    if (!shard_synced) {
      if (auto s = fsync_dir(path.parent_path()); !s) return s.error();
      shard_synced = true;
    }
    StoredObject stored{sha, size, path, true};
    auto in = new_instance(*scan, stored, "", "reconciliation");
    in.content = content_check(spool, path, options.limits);
    auto r = ingest.record_instance(in);
    if (!r) return r.error();
    if (r->kind == catalog::RecordKind::kDuplicate && r->other_bytes) {
      // Linked by a door that stopped before its catalog said "same content": not kept.
      log::info("spool object without a catalog row holds an instance held already: removed",
                {{"object", sha}, {"sop_instance_uid", scan->dataset_sop_instance_uid}});
      if (auto removed = spool.remove_object(sha); !removed) return removed.error();
      continue;
    }
    log::info("spool object without a catalog row adopted",
              {{"object", sha}, {"sop_instance_uid", scan->dataset_sop_instance_uid}});
    ++summary.adopted;
  }
  return {};
}

Result<void> flag_missing(catalog::IngestLedger& ingest, const std::vector<std::string>& missing,
                          catalog::Reconciliation& summary) {
  for (const auto& sha : missing) {
    auto n = ingest.flag_missing_object(sha);
    if (!n) return n.error();
    log::error("catalogued object is missing from the spool: its deliveries are failed",
               {{"object", sha}, {"deliveries", std::to_string(*n)}});
    ++summary.missing;
  }
  return {};
}

// After a kill, crash or power cut: every spool file against every unpurged catalogued object,
// one shard at a time (memory bounded by a shard, rows read through the partial index of unpurged
// objects, never the purged history). Returns the number of spool files seen.
Result<std::size_t> reconcile_everything(const Spool& spool, catalog::IngestLedger& ingest,
                                         const ReconcileOptions& options,
                                         catalog::Reconciliation& summary) {
  std::size_t files = 0;
  for (int shard = 0; shard < 256; ++shard) {
    auto on_disk = spool.list_objects(shard);
    if (!on_disk) return on_disk.error();
    std::sort(on_disk->begin(), on_disk->end());
    files += on_disk->size();
    constexpr char kHex[] = "0123456789abcdef";
    const std::string prefix{kHex[shard >> 4], kHex[shard & 0xf]};
    auto known = ingest.object_hashes(prefix);
    if (!known) return known.error();
    if (auto r = adopt_orphans(spool, ingest, *on_disk, *known, options, summary); !r)
      return r.error();
    std::vector<std::string> missing;
    std::set_difference(known->begin(), known->end(), on_disk->begin(), on_disk->end(),
                        std::back_inserter(missing));
    if (auto r = flag_missing(ingest, missing, summary); !r) return r.error();
  }
  return files;
}

// After an ordered stop nothing was being received or renamed, so no spool file can lack its
// row; what must still be there are the files of deliveries not yet sent. Returns how many
// objects were checked.
Result<std::size_t> reconcile_open(const Spool& spool, catalog::IngestLedger& ingest,
                                   catalog::Reconciliation& summary) {
  std::size_t checked = 0;
  std::vector<std::string> missing;
  auto r = ingest.each_open_object([&](const std::string& sha) {
    ++checked;
    std::error_code ec;
    if (!std::filesystem::exists(spool.object_path(sha), ec) && !ec) missing.push_back(sha);
  });
  if (!r) return r.error();
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (auto f = flag_missing(ingest, missing, summary); !f) return f.error();
  return checked;
}

}  // namespace

Result<catalog::Reconciliation> reconcile(const Spool& spool, catalog::IngestLedger& ingest,
                                          catalog::DeliveryLedger& delivery,
                                          const ReconcileOptions& options, const Clock& clock) {
  catalog::Reconciliation summary;
  // A slot whose object is catalogued (acknowledged) but whose link did not become durable is
  // linked back before the temporaries go.
  auto cleaned = spool.remove_temporaries([&ingest](const std::string& sha) {
    auto known = ingest.has_object(sha);
    return known && *known;
  });
  if (!cleaned) return cleaned.error();
  summary.temporaries = cleaned->temporaries_removed;
  if (cleaned->slots_relinked > 0)
    log::info("spool slots of catalogued objects linked back after a stop",
              {{"objects", std::to_string(cleaned->slots_relinked)}});

  auto ordered = ingest.begin_run();
  if (!ordered) return ordered.error();
  std::size_t files = 0;
  if (*ordered) {
    auto checked = reconcile_open(spool, ingest, summary);
    if (!checked) return checked.error();
    files = *checked;
  } else {
    auto seen = reconcile_everything(spool, ingest, options, summary);
    if (!seen) return seen.error();
    files = *seen;
  }
  // Requests that were on the wire when the daemon stopped: their outcome is unknown.
  auto in_flight = delivery.recover_interrupted_sends();
  if (!in_flight) return in_flight.error();
  if (*in_flight > 0)
    log::warn("deliveries were in flight when dirgwd stopped: they go again (or stay withdrawn)",
              {{"deliveries", std::to_string(*in_flight)}});
  summary.at = to_epoch_ms(clock.now());
  log::info("spool and catalog reconciled",
            {{"temporaries_removed", std::to_string(summary.temporaries)},
             {"adopted", std::to_string(summary.adopted)},
             {"quarantined", std::to_string(summary.quarantined)},
             {"missing", std::to_string(summary.missing)},
             {"after", *ordered ? "an ordered stop" : "an interrupted run"},
             {"objects_checked", std::to_string(files)}});
  if (auto r = ingest.record_reconciliation(summary); !r) return r.error();
  return summary;
}

}  // namespace dirgw::ingest
