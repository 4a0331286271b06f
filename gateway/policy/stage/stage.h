// The policy stage: for each study that became STABLE, decides per destination between READY,
// HELD (no consent yet, or waiting for its report: require_report), QUARANTINED (fails validation,
// with every reason) and WITHDRAWN (consent withdrawn), and writes coerced copies as derived
// objects so that retries send identical bytes. Reads the catalog, does its job, records the
// outcome in one transaction.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"
#include "policy/coerce/coerce.h"
#include "policy/stage/deidentify.h"
#include "policy/validate/validate.h"

namespace dirgw::policy {

// Accession Number (0008,0050), trimmed; "" when absent or the file does not parse.
std::string accession_number(const std::filesystem::path& file);
std::string accession_number(DcmItem& dataset);
// Whether an instance makes its study STAT under the configured rules: its calling AE is listed,
// or one of the listed attributes holds one of its values (case-insensitive).
bool is_stat(const std::filesystem::path& file, const std::string& calling_ae,
             const config::Priority& rules);
bool is_stat(DcmItem& dataset, const std::string& calling_ae, const config::Priority& rules);
// Patient identifiers of a DICOM object: Patient ID with its issuer (kind "mrn") and the
// health number from Other Patient IDs Sequence (kind "hn", issuer e.g. "ON"). The overloads
// taking a dataset read one the caller has already parsed (validate_file's).
Result<std::vector<catalog::PatientKey>> patient_keys(const std::filesystem::path& file,
                                                      const std::string& health_number_issuer);
std::vector<catalog::PatientKey> patient_keys(DcmItem& dataset,
                                              const std::string& health_number_issuer);

class Stage {
 public:
  // `deid` (may be null: nothing de-identifies) outlives the stage.
  Stage(const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
        const Clock& clock, metrics::GatewayMetrics* metrics = nullptr,
        const DeidTargets* deid = nullptr);
  struct StepResult {
    int studies = 0, ready = 0, held = 0, quarantined = 0, withdrawn = 0;
    int failed = 0;  // decisions the catalog could not record (the study stays STABLE)
    // send_while_receiving: instances of RECEIVING studies cleared to go now / held back until
    // the study-level decision (counted in `studies` and `failed` too, per study).
    int early_cleared = 0, early_held = 0;
    // require_report: when the next study waiting for its report stops waiting (0: none).
    std::int64_t next_report_check_at = 0;
  };
  // Whether the stage can record its decisions; shown by dirgw status while it cannot.
  struct Health {
    int consecutive_failures = 0;
    std::string last_error;  // our words and the catalog's error, never patient data
  };
  Health health() const;
  // Decides for up to `limit` studies; returns what it did.
  StepResult step(int limit = 20);
  // Called with the study id between deciding and recording the decision (tests pause here).
  void set_before_record_for_test(std::function<void(std::int64_t)> hook) {
    before_record_ = std::move(hook);
  }

 private:
  struct Checked {
    std::vector<catalog::Finding> findings;
    std::set<catalog::PatientKey> keys;
    std::vector<catalog::DerivedObject> derived;
    // De-identifying destinations that cannot take an instance: how many, and the first reason.
    std::map<std::string, std::pair<int, std::string>> deid_refused;
    // Destinations that refuse (or could not convert) an Explicit VR Big Endian instance.
    std::map<std::string, std::pair<int, std::string>> byte_order_refused;
    bool stat = false;      // a priority rule matched (config.priority): forwarded first
    std::string accession;  // (0008,0050) of the first instance that has one, for HL7 orders
    // Findings the site accepts (policy.validation.accept_findings): code -> instances.
    std::map<std::string, int> accepted;
  };
  void deidentify(const std::filesystem::path& input, std::int64_t instance_id,
                  const catalog::PolicyWork& w, Checked& out);
  void byte_order(const std::filesystem::path& input, std::int64_t instance_id, Checked& out);
  void decode_un(const std::filesystem::path& input, std::int64_t instance_id, Checked& out);
  std::vector<catalog::PolicyDecision> propose(const catalog::PolicyWork& w, const Checked& c);
  void wait_for_report(const catalog::PolicyWork& w, const std::string& dest,
                       catalog::PolicyDecision& d) const;
  void release_report_holds(StepResult& out);
  // send_while_receiving: checks the new instances of RECEIVING studies on their own, exactly as
  // the study path will (check_instances), and records which may go now (record_early).
  void early_round(int limit, StepResult& out);
  std::vector<catalog::EarlyDecision> early_decisions(const catalog::EarlyWork& w,
                                                      const Checked& c) const;
  void note_failure(const std::string& what, const Error& e);
  // Removes the derived copies no catalog row names (docs/policy.md, "Derived copies"): one
  // shard of spool/derived per call, the 256 in about an hour, a copy only when older than
  // kDerivedGrace. Runs on the policy thread, the only one that writes derived copies, so no
  // copy made and not yet recorded is taken.
  void sweep_derived();
  Checked check_instances(
      const catalog::PolicyWork& w,
      const std::map<std::string, const catalog::PolicyWork::Instance*>& latest);

  const config::Config& config_;
  catalog::Catalog& catalog_;
  const ingest::Spool& spool_;
  const Clock& clock_;
  std::optional<Profile> profile_;
  CoercionRules rules_;
  bool coerce_ = false;
  bool byte_order_ = false;                      // some destination's big_endian is not "send"
  bool require_report_ = false;                  // some destination waits for reports
  std::vector<std::string> early_destinations_;  // send_while_receiving: true
  metrics::GatewayMetrics* metrics_;
  const DeidTargets* deid_;
  std::function<void(std::int64_t)> before_record_;
  int sweep_shard_ = 0;
  TimePoint next_sweep_at_{};
  mutable std::mutex health_mutex_;
  Health health_;
};

}  // namespace dirgw::policy
