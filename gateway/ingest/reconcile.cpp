#include "ingest/reconcile.h"

#include <set>
#include <string>
#include <system_error>

#include "ingest/catalog_sink.h"
#include "log/log.h"

namespace dirgw::ingest {

namespace {

// Complete objects the catalog does not know: adopted when they parse, quarantined otherwise.
Result<void> adopt_orphans(const Spool& spool, catalog::IngestLedger& ingest,
                           const std::vector<std::string>& on_disk,
                           const std::set<std::string>& known, const ReconcileOptions& options,
                           catalog::Reconciliation& summary) {
  for (const auto& sha : on_disk) {
    if (known.count(sha)) continue;
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
    StoredObject stored{sha, size, path, true};
    auto r = ingest.record_instance(new_instance(*scan, stored, "", "reconciliation"));
    if (!r) return r.error();
    log::info("spool object without a catalog row adopted",
              {{"object", sha}, {"sop_instance_uid", scan->dataset_sop_instance_uid}});
    ++summary.adopted;
  }
  return {};
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

  auto on_disk = spool.list_objects();
  if (!on_disk) return on_disk.error();
  auto known_list = ingest.object_hashes();
  if (!known_list) return known_list.error();
  std::set<std::string> known(known_list->begin(), known_list->end());
  std::set<std::string> present(on_disk->begin(), on_disk->end());
  if (auto r = adopt_orphans(spool, ingest, *on_disk, known, options, summary); !r)
    return r.error();
  for (const auto& sha : known) {
    if (present.count(sha)) continue;
    auto n = ingest.flag_missing_object(sha);
    if (!n) return n.error();
    log::error("catalogued object is missing from the spool: its deliveries are failed",
               {{"object", sha}, {"deliveries", std::to_string(*n)}});
    ++summary.missing;
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
             {"objects", std::to_string(on_disk->size())}});
  if (auto r = ingest.record_reconciliation(summary); !r) return r.error();
  return summary;
}

}  // namespace dirgw::ingest
