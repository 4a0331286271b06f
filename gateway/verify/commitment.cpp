#include "verify/commitment.h"

#include <openssl/rand.h>

#include <array>
#include <unordered_map>

#include "common/uid.h"
#include "log/log.h"
#include "senders/dimse/commitment_scu.h"
#include "verify/verifier.h"

namespace dirgw::verify {

std::string new_transaction_uid() {
  std::array<std::uint8_t, 16> bits{};
  if (RAND_bytes(bits.data(), static_cast<int>(bits.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return "2.25." + uid_decimal(bits);
}

namespace {

class DimseCommitter : public Committer {
 public:
  DimseCommitter(senders::DimseOptions options, ingest::CommitmentReceiver& receiver,
                 std::chrono::milliseconds linger)
      : options_(std::move(options)), receiver_(receiver), linger_(linger) {}
  Result<void> request(const std::string& transaction_uid,
                       const std::vector<ingest::CommitRef>& refs,
                       const std::function<bool()>& answered) override {
    return senders::request_storage_commitment(options_, transaction_uid, refs, receiver_, linger_,
                                               answered);
  }

 private:
  senders::DimseOptions options_;
  ingest::CommitmentReceiver& receiver_;
  std::chrono::milliseconds linger_;
};

}  // namespace

std::unique_ptr<Committer> make_dimse_committer(senders::DimseOptions options,
                                                ingest::CommitmentReceiver& receiver,
                                                std::chrono::milliseconds linger) {
  return std::make_unique<DimseCommitter>(std::move(options), receiver, linger);
}

std::vector<catalog::VerifyFinding> commitment_findings(
    const std::vector<catalog::VerifyInstance>& sent, const ingest::CommitmentReport& report) {
  std::unordered_map<std::string, const catalog::VerifyInstance*> by_uid;
  for (const auto& s : sent) by_uid.emplace(s.sop_instance_uid, &s);
  std::vector<catalog::VerifyFinding> out;
  for (const auto& c : report.committed) {
    auto it = by_uid.find(c.sop_instance_uid);
    if (it == by_uid.end()) continue;
    out.push_back({it->second->instance_id, c.sop_class_uid == it->second->sop_class_uid
                                                ? catalog::VerifyVerdict::kListed
                                                : catalog::VerifyVerdict::kMismatch});
    by_uid.erase(it);  // named twice: the first answer counts
  }
  for (const auto& f : report.failed) {
    auto it = by_uid.find(f.sop_instance_uid);
    if (it == by_uid.end()) continue;
    out.push_back({it->second->instance_id, catalog::VerifyVerdict::kMissing});
    by_uid.erase(it);
  }
  return out;
}

CommitmentInbox::CommitmentInbox(const config::Config& config, catalog::VerifyLedger& ledger,
                                 VerifyMetrics* metrics, std::function<void()> on_requeued)
    : config_(config), ledger_(ledger), metrics_(metrics), on_requeued_(std::move(on_requeued)) {}

const config::Destination* CommitmentInbox::destination(const std::string& name) const {
  for (const auto& d : config_.destinations)
    if (d.name == name) return &d;
  return nullptr;
}

bool CommitmentInbox::answered(const std::string& transaction_uid) {
  auto t = ledger_.commitment_transaction(transaction_uid);
  return !t || !t->has_value() || (*t)->state == "answered";
}

// The checks in the order a refusal must be decided (unknown transaction, wrong caller, already
// answered), then the one record.
std::uint16_t CommitmentInbox::event_report(const std::string& calling_ae, const std::string& peer,
                                            const ingest::CommitmentReport& report) {
  auto refuse = [&](std::uint16_t status, const char* why) {
    // UIDs and AE titles only: a report names no patient.
    log::warn("storage commitment report refused", {{"calling_ae", calling_ae},
                                                    {"peer", peer},
                                                    {"transaction_uid", report.transaction_uid},
                                                    {"reason", why}});
    return status;
  };
  auto t = ledger_.commitment_transaction(report.transaction_uid);
  if (!t) return refuse(ingest::kStatusProcessingFailure, "catalog error");
  if (!t->has_value())
    return refuse(ingest::kStatusProcessingFailure, "not a transaction dirgw issued");
  const catalog::CommitmentTransaction& tx = **t;
  const config::Destination* d = destination(tx.destination);
  if (d == nullptr || d->dimse.ae_title != calling_ae)
    return refuse(ingest::kStatusNotAuthorized,
                  "the calling AE title is not the destination's the transaction went to");
  if (tx.state == "answered") {
    log::info("storage commitment report repeated: already recorded",
              {{"destination", tx.destination}, {"transaction_uid", tx.transaction_uid}});
    return ingest::kStatusSuccess;
  }
  auto sent = ledger_.sent_instances(tx.study_id, tx.destination);
  if (!sent) return refuse(ingest::kStatusProcessingFailure, "catalog error");
  const auto findings = commitment_findings(*sent, report);
  auto rec =
      ledger_.record_verification(tx.destination, tx.study_id, findings, d->verify.max_resends);
  if (!rec) return refuse(ingest::kStatusProcessingFailure, "catalog error");
  (void)ledger_.record_commitment_answer(tx.transaction_uid, "answered",
                                         static_cast<int>(report.committed.size()),
                                         static_cast<int>(report.failed.size()));
  if (metrics_ != nullptr) count_findings(metrics_->destination(tx.destination), findings, *rec);
  const bool short_of = rec->requeued > 0 || rec->failed > 0;
  log::write(short_of ? log::Level::kWarn : log::Level::kInfo,
             short_of ? "storage commitment: the destination did not commit every instance"
                      : "storage commitment: study verified",
             {{"destination", tx.destination},
              {"transaction_uid", tx.transaction_uid},
              {"event_type", std::to_string(report.event_type)},
              {"verified", std::to_string(rec->verified)},
              {"requeued", std::to_string(rec->requeued)},
              {"failed", std::to_string(rec->failed)}});
  if (rec->requeued > 0 && on_requeued_) on_requeued_();
  return ingest::kStatusSuccess;
}

}  // namespace dirgw::verify
