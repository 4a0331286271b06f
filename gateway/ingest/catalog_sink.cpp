#include "ingest/catalog_sink.h"

#include "ingest/content_key.h"
#include "log/log.h"

namespace dirgw::ingest {

catalog::NewInstance new_instance(const PrescanResult& scan, const StoredObject& object,
                                  const std::string& calling_ae, const std::string& peer) {
  catalog::NewInstance in;
  in.study_uid = scan.study_uid;
  in.series_uid = scan.series_uid;
  in.sop_instance_uid = scan.dataset_sop_instance_uid;
  in.sop_class_uid = scan.dataset_sop_class_uid;
  in.transfer_syntax = scan.transfer_syntax;
  in.modality = scan.modality;
  in.sha256 = object.sha256;
  in.size = object.size;
  in.calling_ae = calling_ae;
  in.peer = peer;
  // Always non-empty (even with no Patient ID), so that "no patient" differs from "patient X".
  in.patient_identity = "id=" + scan.patient_id + "\x1fissuer=" + scan.issuer_of_patient_id;
  // A folder object's peer names its folder; reconciliation adopts objects without a caller.
  in.source = peer.rfind("folder:", 0) == 0 || calling_ae.empty() ? peer : "dicom:" + calling_ae;
  return in;
}

catalog::NewInstance::ContentCheck content_check(const Spool& spool, std::filesystem::path file,
                                                 const PrescanLimits& limits) {
  auto key_of = [limits](const std::filesystem::path& path) -> std::optional<std::string> {
    auto key = object_content_key(path, limits);
    if (!key) return std::nullopt;
    return std::move(key).value();
  };
  return {[key_of, file = std::move(file)] { return key_of(file); },
          [key_of, &spool](const std::string& sha256) {
            return key_of(spool.object_path(sha256)).value_or(std::string());
          },
          [](std::string_view a, std::string_view b) { return same_content(a, b); }};
}

Result<SinkOutcome> CatalogSink::object_received(const ReceivedObject& o) {
  catalog::NewInstance in = new_instance(o.scan, o.stored, o.calling_ae, o.peer);
  if (!o.source.empty()) in.source = o.source;  // a C-MOVE we asked for: "pull:<name>"
  in.before_commit = o.make_durable;
  const auto file = o.file.empty() ? o.stored.path : o.file;
  if (spool_ != nullptr) {
    in.content = content_check(*spool_, file, limits_);
    in.content->defer = true;
  }

  auto r = commits_.record(in, new_versions_);
  if (r && r->content_needed) {
    // Held in other bytes: the keys are read now, outside the catalog's write lock, and the
    // instance is recorded again (the usual path never comes here).
    read_keys_before_commit(in, file);
    r = commits_.record(in, new_versions_);
  }
  if (!r) return r.error();
  if (r->kind == catalog::RecordKind::kDuplicate && r->other_bytes) {
    log::info("instance received again in other bytes, same content: duplicate, not kept",
              {{"sop_instance_uid", in.sop_instance_uid},
               {"study_uid", in.study_uid},
               {"transfer_syntax", in.transfer_syntax}});
    // A file of its own (the door linked it before the catalog decided), removed under the
    // catalog's write lock once no row refers to it: another door may share its bytes.
    if (!o.make_durable && !o.stored.already_present) {
      auto removed = ledger_.remove_unreferenced(
          o.stored.sha256, [&] { return spool_->remove_object(o.stored.sha256); });
      if (!removed)
        log::warn("cannot remove the spool copy of a duplicate",
                  {{"object", o.stored.sha256}, {"error", removed.error().to_string()}});
    }
    return SinkOutcome::kDuplicateOtherBytes;
  }
  if (r->kind == catalog::RecordKind::kDuplicate) return SinkOutcome::kDuplicate;
  if (r->kind == catalog::RecordKind::kIdentityConflict)
    log::warn(
        "SOP Instance UID received again for another patient or study: both kept, every "
        "study involved quarantined",
        {{"sop_instance_uid", in.sop_instance_uid},
         {"study_uid", in.study_uid},
         {"reason", catalog::reason::kIdentityConflict}});
  if (r->kind == catalog::RecordKind::kNewVersion)
    log::warn(new_versions_ == catalog::NewVersionPolicy::kHold
                  ? "instance received again with different bytes: new version kept, study held"
                  : "instance received again with different bytes: new version kept and sent",
              {{"sop_instance_uid", in.sop_instance_uid}, {"study_uid", in.study_uid}});
  // Another instance of a study already RECEIVING changes nobody's plans: its stable time only
  // moves later, which the readiness thread finds when it wakes for the earlier one (unless a
  // destination sends while receiving: then the instance itself may go now).
  if ((r->opened || wake_every_instance_) && instance_received_) instance_received_();
  return SinkOutcome::kStored;
}

// The keys the catalog compares, read outside its write lock (reading a large object under it
// would hold every door's commit meanwhile). Whatever could not be read here, or changed since
// (a version recorded meanwhile), is read inside the transaction as before.
void CatalogSink::read_keys_before_commit(catalog::NewInstance& in,
                                          const std::filesystem::path& file) const {
  in.content->defer = false;
  auto held = ledger_.held_versions(in.sop_instance_uid);
  if (!held) return;
  auto own = in.content->key();
  if (!own) return;  // unreadable now: read (and failed, retryably) in the transaction
  in.content->own = std::move(own);
  in.content->present = [file] {
    std::error_code ec;
    return std::filesystem::exists(file, ec);
  };
  for (const auto& h : *held)
    if (!h.content_key)
      if (auto k = in.content->stored_key(h.sha256); !k.empty()) in.content->stored[h.sha256] = k;
}

void CatalogSink::refused(const DoorRefusal& refusal) {
  auto r = ledger_.record_refusal(
      {0, refusal.source, refusal.calling_ae, refusal.peer, refusal.reason, refusal.code});
  if (!r) log::error("cannot record a refusal", {{"error", r.error().to_string()}});
  if (refusal.security && audit_) audit_(refusal);
}

}  // namespace dirgw::ingest
