#include "policy/stage/stage.h"

#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "common/text.h"
#include "log/log.h"
#include "policy/stage/byte_order.h"
#include "policy/stage/un_vr.h"
#include "policy/validate/rules.h"

namespace dirgw::policy {

namespace {
std::string trimmed(const char* v) { return std::string(trim_dicom(v != nullptr ? v : "")); }

std::string get(DcmItem& item, const DcmTagKey& tag) {
  const char* v = nullptr;
  if (item.findAndGetString(tag, v).good()) return trimmed(v);
  return {};
}
}  // namespace

Result<std::vector<catalog::PatientKey>> patient_keys(const std::filesystem::path& file,
                                                      const std::string& health_number_issuer) {
  DcmFileFormat ff;
  // A read limit keeps pixel data on disk.
  OFCondition cond =
      dcmtk_guard([&] { return ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096); });
  if (cond.bad())
    return make_error(ErrorCode::kBadDicom, std::string("cannot parse: ") + cond.text());
  return patient_keys(*ff.getDataset(), health_number_issuer);
}

std::vector<catalog::PatientKey> patient_keys(DcmItem& ds,
                                              const std::string& health_number_issuer) {
  std::vector<catalog::PatientKey> keys;
  const std::string pid = get(ds, DCM_PatientID), issuer = get(ds, DCM_IssuerOfPatientID);
  if (!pid.empty()) {
    if (!health_number_issuer.empty() && issuer == health_number_issuer)
      keys.push_back({"hn", issuer, pid});
    else
      keys.push_back({"mrn", issuer, pid});
  }
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OtherPatientIDsSequence, seq).good() && seq != nullptr) {
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmItem* item = seq->getItem(i);
      if (item == nullptr) continue;
      const std::string v = get(*item, DCM_PatientID), iss = get(*item, DCM_IssuerOfPatientID);
      if (v.empty()) continue;
      keys.push_back(
          {!health_number_issuer.empty() && iss == health_number_issuer ? "hn" : "mrn", iss, v});
    }
  }
  return keys;
}

std::string accession_number(const std::filesystem::path& file) {
  DcmFileFormat ff;
  if (dcmtk_guard([&] { return ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096); }).bad())
    return "";
  return accession_number(*ff.getDataset());
}

std::string accession_number(DcmItem& dataset) { return get(dataset, DCM_AccessionNumber); }

namespace {
bool stat_caller(const std::string& calling_ae, const config::Priority& rules) {
  for (const auto& ae : rules.stat_calling_aes)
    if (!calling_ae.empty() && ae == calling_ae) return true;
  return false;
}
}  // namespace

bool is_stat(const std::filesystem::path& file, const std::string& calling_ae,
             const config::Priority& rules) {
  if (stat_caller(calling_ae, rules)) return true;
  if (rules.stat_attributes.empty()) return false;
  DcmFileFormat ff;
  if (dcmtk_guard([&] { return ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096); }).bad())
    return false;
  return is_stat(*ff.getDataset(), calling_ae, rules);
}

bool is_stat(DcmItem& ds, const std::string& calling_ae, const config::Priority& rules) {
  if (stat_caller(calling_ae, rules)) return true;
  for (const auto& a : rules.stat_attributes) {
    unsigned g = 0, e = 0;
    if (std::sscanf(a.tag.c_str(), "(%4x,%4x)", &g, &e) != 2) continue;
    const std::string v = get(ds, DcmTagKey(static_cast<Uint16>(g), static_cast<Uint16>(e)));
    for (const auto& want : a.values)
      if (!v.empty() && strcasecmp(v.c_str(), want.c_str()) == 0) return true;
  }
  return false;
}

namespace {
// The site's adjustments (policy.validation, docs/validation.md) on top of a built-in profile.
void adjust_profile(Profile& p, const config::Policy& policy) {
  if (!policy.health_number_issuer.empty()) p.health_number_issuer = policy.health_number_issuer;
  if (!p.allowed_modalities.empty())  // empty: every modality already
    for (const auto& m : policy.validation.allow_modalities)
      if (std::find(p.allowed_modalities.begin(), p.allowed_modalities.end(), m) ==
          p.allowed_modalities.end())
        p.allowed_modalities.push_back(m);
  if (policy.validation.max_private_value)
    p.max_private_value = *policy.validation.max_private_value;
  p.accepted = policy.validation.accept_findings;
}
}  // namespace

Stage::Stage(const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
             const Clock& clock, metrics::GatewayMetrics* metrics, const DeidTargets* deid)
    : config_(config),
      catalog_(catalog),
      spool_(spool),
      clock_(clock),
      metrics_(metrics),
      deid_(deid) {
  if (config.policy.validation_profile != "none")
    profile_ = builtin_profile(config.policy.validation_profile);
  if (profile_) adjust_profile(*profile_, config.policy);
  rules_.facility = config.facility_name;
  rules_.institution_name = config.policy.coercion.institution_name;
  rules_.issuer_of_patient_id = config.policy.coercion.issuer_of_patient_id;
  rules_.fill_health_number_from_mrn = config.policy.coercion.fill_health_number_from_mrn;
  rules_.health_number_issuer = config.policy.health_number_issuer;
  for (const auto& [tag, value] : config.policy.coercion.set)
    if (auto t = Tag::parse(tag)) rules_.set_attributes.emplace_back(*t, value);
  coerce_ = !rules_.institution_name.empty() || !rules_.issuer_of_patient_id.empty() ||
            rules_.fill_health_number_from_mrn || !rules_.set_attributes.empty();
  for (const auto& d : config.destinations) {
    byte_order_ = byte_order_ || d.big_endian != "send";
    require_report_ = require_report_ || d.require_report.enabled;
    if (d.send_while_receiving) early_destinations_.push_back(d.name);
  }
}

Stage::Health Stage::health() const {
  std::lock_guard lock(health_mutex_);
  return health_;
}

// Coercion, validation and the patient's identifiers, instance by instance: what would leave
// (the coerced copy if there is one) is what is validated.
Stage::Checked Stage::check_instances(
    const catalog::PolicyWork& w,
    const std::map<std::string, const catalog::PolicyWork::Instance*>& latest) {
  Checked out;
  auto& findings = out.findings;
  for (const auto& uid : w.identity_conflicts)
    findings.push_back(
        {uid, catalog::reason::kIdentityConflict, "", catalog::reason::kIdentityConflictText});
  auto& keys = out.keys;
  auto& derived = out.derived;
  for (const auto& [uid, inst] : latest) {
    const auto original = spool_.object_path(inst->sha256);
    std::filesystem::path checked = original;  // what validation looks at: what would leave
    if (coerce_) {
      const auto tmp = spool_.new_temp_path();
      HealthNumberLookup lookup = [this](const std::string& mrn, const std::string& issuer) {
        auto hn = catalog_.consent.health_number_for(issuer, mrn);
        return hn ? *hn : std::optional<std::string>();
      };
      // Dated by the instance's arrival: deterministic, so a re-run writes the same bytes.
      auto coerced = coerce_file(original, tmp, rules_, lookup, from_epoch_ms(inst->received_at));
      if (!coerced) {
        findings.push_back({uid, "coercion", "", coerced.error().detail});
      } else if (coerced->changed) {
        auto stored = spool_.commit_derived(tmp);
        if (!stored) {
          findings.push_back({uid, "coercion", "", stored.error().to_string()});
        } else {
          checked = stored->path;
          for (const auto& d : w.destinations)
            derived.push_back({inst->id, d, stored->sha256, stored->size, "coerced", ""});
        }
      }
      spool_.discard_temp(tmp);
    }
    // Parsed once, by the validation, for what the steps below read (keys, STAT, accession).
    std::unique_ptr<DcmFileFormat> loaded;
    if (profile_) {
      auto report = validate_file(checked, *profile_, &loaded);
      if (!report) {
        findings.push_back({uid, "parse", "", report.error().detail});
      } else {
        for (const auto& f : report->findings) {
          if (f.severity == Severity::kError) findings.push_back({uid, f.code, f.tag, f.message});
          if (f.accepted) ++out.accepted[f.code];
        }
      }
    }
    DcmDataset* ds = loaded ? loaded->getDataset() : nullptr;
    if (ds != nullptr) {
      const auto k = patient_keys(*ds, config_.policy.health_number_issuer);
      keys.insert(k.begin(), k.end());
    } else if (auto k = patient_keys(checked, config_.policy.health_number_issuer)) {
      keys.insert(k->begin(), k->end());
    }
    if (!out.stat)
      out.stat = ds != nullptr ? is_stat(*ds, inst->calling_ae, config_.priority)
                               : is_stat(checked, inst->calling_ae, config_.priority);
    if (out.accession.empty() && config_.ingest.hl7.enabled && config_.priority.hl7_orders.enabled)
      out.accession =
          ds != nullptr && checked == original ? accession_number(*ds) : accession_number(original);
    if (deid_ != nullptr && deid_->any()) deidentify(checked, inst->id, w, out);
    if (byte_order_) byte_order(checked, inst->id, out);
    decode_un(checked, inst->id, out);
  }
  return out;
}

// Explicit VR Big Endian for destinations that convert or refuse it (byte_order.h): made from
// what would otherwise leave for that destination (its coerced or de-identified copy if any).
void Stage::byte_order(const std::filesystem::path& input, std::int64_t instance_id, Checked& out) {
  for (const auto& dest : config_.destinations) {
    if (dest.big_endian == "send") continue;
    auto own = std::find_if(out.derived.begin(), out.derived.end(), [&](const auto& o) {
      return o.instance_id == instance_id && o.destination == dest.name;
    });
    const bool derived = own != out.derived.end();
    auto copy = byte_order_copy(dest.big_endian, dest.name,
                                derived ? spool_.derived_path(own->sha256) : input, instance_id,
                                derived ? own->sop_instance_uid : std::string(), spool_);
    if (copy.derived) {
      if (derived) out.derived.erase(own);
      out.derived.push_back(std::move(*copy.derived));
    } else if (!copy.refused.empty()) {
      auto& [count, first] = out.byte_order_refused[dest.name];
      if (count++ == 0) first = copy.refused;
    }
  }
}

// UN elements the dictionary knows, decoded in a copy for destinations with un_elements: decode
// (un_vr.h): made from
// what would otherwise leave for it, last, so that it applies to coerced, de-identified and
// converted copies too. One copy serves every destination that would send the same input.
void Stage::decode_un(const std::filesystem::path& input, std::int64_t instance_id, Checked& out) {
  std::map<std::string, std::optional<catalog::DerivedObject>> made;  // by input path
  for (const auto& dest : config_.destinations) {
    if (dest.un_elements != "decode") continue;
    auto own = std::find_if(out.derived.begin(), out.derived.end(), [&](const auto& o) {
      return o.instance_id == instance_id && o.destination == dest.name;
    });
    const bool derived = own != out.derived.end();
    const auto from = derived ? spool_.derived_path(own->sha256) : input;
    auto [it, fresh] = made.try_emplace(from.string());
    if (fresh)
      it->second = un_decoded_copy(dest.name, from, instance_id,
                                   derived ? own->sop_instance_uid : std::string(), spool_);
    if (!it->second) continue;
    auto copy = *it->second;
    copy.destination = dest.name;
    if (derived) out.derived.erase(own);
    out.derived.push_back(std::move(copy));
  }
}

// A de-identifying destination gets its own copy, made from what would otherwise leave (the
// coerced copy if there is one), in place of the coerced copy; or, when the object may not be
// de-identified (burned-in text, an encapsulated document...), nothing: the study is quarantined
// for that destination alone.
void Stage::deidentify(const std::filesystem::path& input, std::int64_t instance_id,
                       const catalog::PolicyWork& w, Checked& out) {
  for (const auto& dest : config_.destinations) {
    if (!deid_->deidentifies(dest.name)) continue;
    std::erase_if(out.derived, [&](const catalog::DerivedObject& o) {
      return o.instance_id == instance_id && o.destination == dest.name;
    });
    const auto review = w.burned_in_reviewed.find(dest.name);
    const bool reviewed = review != w.burned_in_reviewed.end() && instance_id <= review->second;
    auto copy = deid_->copy(dest.name, input, instance_id, spool_, reviewed);
    if (copy.derived) {
      out.derived.push_back(std::move(*copy.derived));
    } else {
      auto& [count, first] = out.deid_refused[dest.name];
      if (count++ == 0) first = copy.refused;
    }
  }
}

std::vector<catalog::PolicyDecision> Stage::propose(const catalog::PolicyWork& w,
                                                    const Checked& c) {
  std::vector<catalog::PolicyDecision> proposals;
  for (const auto& dest : w.destinations) {
    catalog::PolicyDecision d;
    d.destination = dest;
    for (const auto& cd : config_.destinations)
      if (cd.name == dest) d.opt_in = cd.consent_mode == "opt-in";
    if (!w.identity_conflicts.empty()) {
      d.state = catalog::StudyState::kQuarantined;
      d.code = catalog::reason::kIdentityConflict;
      d.reason = std::string(catalog::reason::kIdentityConflictText) + " (" +
                 std::to_string(w.identity_conflicts.size()) + " instance(s))";
    } else if (!c.findings.empty()) {
      d.state = catalog::StudyState::kQuarantined;
      d.code = catalog::reason::kValidation;
      d.reason = std::to_string(c.findings.size()) +
                 " validation finding(s), first: " + c.findings.front().code;
    } else if (auto r = c.deid_refused.find(dest); r != c.deid_refused.end()) {
      d.state = catalog::StudyState::kQuarantined;
      d.code = catalog::reason::kDeidRefused;
      d.reason =
          std::to_string(r->second.first) +
          " instance(s) not de-identifiable for this destination, first: " + r->second.second;
    } else if (auto b = c.byte_order_refused.find(dest); b != c.byte_order_refused.end()) {
      d.state = catalog::StudyState::kQuarantined;
      d.code = catalog::reason::kBigEndianRefused;
      d.reason = std::to_string(b->second.first) + " instance(s) in Explicit VR Big Endian, " +
                 b->second.second;
    }
    if (d.state == catalog::StudyState::kReady) wait_for_report(w, dest, d);
    proposals.push_back(std::move(d));
  }
  return proposals;
}

// require_report: a study the destination would take waits for its final report, at most
// max_wait from its first instance; what the report meant is noted for dirgw study.
void Stage::wait_for_report(const catalog::PolicyWork& w, const std::string& dest,
                            catalog::PolicyDecision& d) const {
  const auto cd = std::find_if(config_.destinations.begin(), config_.destinations.end(),
                               [&](const config::Destination& c) { return c.name == dest; });
  if (cd == config_.destinations.end() || !cd->require_report.enabled) return;
  const std::string max_wait = config::format_duration(cd->require_report.max_wait);
  if (w.final_report) {
    d.report_note = "with its final report";
  } else if (to_epoch_ms(clock_.now()) <
             w.first_received_at + cd->require_report.max_wait.count()) {
    d.state = catalog::StudyState::kHeld;
    d.code = catalog::reason::kWaitingReport;
    d.reason = "waiting for report (sent without it after " + max_wait + ")";
    d.report_note = "waiting for report";
  } else {
    d.report_note = "sent without report after " + max_wait;
  }
}

// require_report: studies whose report came or whose wait ended are judged again.
void Stage::release_report_holds(StepResult& out) {
  std::map<std::string, std::int64_t> max_wait;
  for (const auto& d : config_.destinations)
    if (d.require_report.enabled) max_wait[d.name] = d.require_report.max_wait.count();
  auto released = catalog_.policy.release_report_holds(max_wait);
  if (!released) {
    log::error("policy: cannot release studies waiting for their report",
               {{"error", released.error().to_string()}});
    out.next_report_check_at = to_epoch_ms(clock_.now()) + 5000;
    return;
  }
  out.next_report_check_at = released->next_at;
  if (released->released > 0)
    log::info("studies waiting for their report judged again",
              {{"count", std::to_string(released->released)}});
}

void Stage::note_failure(const std::string& what, const Error& e) {
  std::lock_guard lock(health_mutex_);
  ++health_.consecutive_failures;
  health_.last_error = what + ": " + e.to_string();
}

// Per destination: everything of the round goes, or (any instance failing any check, or an
// identity conflict in the study) everything is held back; blocked destinations hold back
// unchecked. Consent is the catalog's to read (record_early).
std::vector<catalog::EarlyDecision> Stage::early_decisions(const catalog::EarlyWork& w,
                                                           const Checked& c) const {
  std::vector<std::int64_t> ids;
  for (const auto& i : w.instances) ids.push_back(i.id);
  std::vector<catalog::EarlyDecision> out;
  for (const auto& dest : w.destinations) {
    catalog::EarlyDecision d;
    d.destination = dest;
    for (const auto& cd : config_.destinations)
      if (cd.name == dest) d.opt_in = cd.consent_mode == "opt-in";
    const bool fails = !w.identity_conflicts.empty() || !c.findings.empty() ||
                       c.deid_refused.count(dest) > 0 || c.byte_order_refused.count(dest) > 0;
    (fails ? d.held : d.cleared) = ids;
    out.push_back(std::move(d));
  }
  for (const auto& dest : w.blocked) out.push_back({dest, false, {}, ids});
  return out;
}

void Stage::early_round(int limit, StepResult& out) {
  auto work = catalog_.policy.early_work(early_destinations_, limit);
  if (!work) {
    log::error("policy: catalog error", {{"error", work.error().to_string()}});
    note_failure("cannot read instances to check while receiving", work.error());
    return;
  }
  for (const auto& w : *work) {
    ++out.studies;
    Checked checked;
    if (!w.destinations.empty()) {
      std::map<std::string, const catalog::PolicyWork::Instance*> latest;
      for (const auto& i : w.instances) latest[i.sop_instance_uid] = &i;
      checked = check_instances(w, latest);
      // Copies made for other destinations are the study path's to record.
      std::erase_if(checked.derived, [&](const catalog::DerivedObject& o) {
        return std::find(w.destinations.begin(), w.destinations.end(), o.destination) ==
               w.destinations.end();
      });
    }
    const std::vector<catalog::PatientKey> keys(checked.keys.begin(), checked.keys.end());
    auto recorded = catalog_.policy.record_early(w.study_id, keys, early_decisions(w, checked),
                                                 checked.derived);
    if (!recorded) {
      log::error("policy: cannot record instances checked while receiving",
                 {{"study_uid", w.study_uid}, {"error", recorded.error().to_string()}});
      ++out.failed;
      note_failure("cannot record instances checked while receiving", recorded.error());
      continue;
    }
    {
      std::lock_guard lock(health_mutex_);
      health_ = {};
    }
    out.early_cleared += recorded->cleared;
    out.early_held += recorded->held;
    for (const auto& dest : recorded->newly_blocked)
      log::info(
          "send while receiving: study held back until its study-level decision (consent, or an "
          "instance failed its checks)",
          {{"study_uid", w.study_uid},
           {"destination", dest},
           {"findings", std::to_string(checked.findings.size())}});
  }
}

namespace {

constexpr auto kSweepPeriod = std::chrono::hours(1);  // every shard of spool/derived once
constexpr auto kDerivedGrace = std::chrono::minutes(10);

}  // namespace

void Stage::sweep_derived() {
  const auto now = clock_.now();
  if (now < next_sweep_at_) return;
  next_sweep_at_ = now + kSweepPeriod / 256;
  const int shard = sweep_shard_;
  sweep_shard_ = (sweep_shard_ + 1) % 256;
  auto names = spool_.list_derived(shard);
  if (!names) {
    log::warn("policy: cannot list derived copies", {{"error", names.error().to_string()}});
    return;
  }
  // Older than the grace by their own time stamp: a copy written a moment ago by anything else
  // (an operator's tool on the spool) is left for the next round.
  const auto cutoff = std::filesystem::file_time_type::clock::now() - kDerivedGrace;
  std::vector<std::string> old;
  for (const auto& sha : *names) {
    std::error_code ec;
    const auto at = std::filesystem::last_write_time(spool_.derived_path(sha), ec);
    if (!ec && at < cutoff) old.push_back(sha);
  }
  auto unreferenced = catalog_.policy.forget_unreferenced_derived(old);
  if (!unreferenced) {
    log::warn("policy: cannot check derived copies", {{"error", unreferenced.error().to_string()}});
    return;
  }
  for (const auto& sha : *unreferenced)
    if (auto r = spool_.remove_derived(sha); !r)
      log::warn("policy: cannot remove a derived copy no row names",
                {{"object", sha}, {"error", r.error().to_string()}});
  if (!unreferenced->empty())
    log::info("policy: derived copies no catalog row names removed",
              {{"copies", std::to_string(unreferenced->size())}});
}

Stage::StepResult Stage::step(int limit) {
  StepResult out;
  // Before this round writes any copy: every copy of the rounds before is recorded by now.
  sweep_derived();
  if (require_report_) release_report_holds(out);
  if (!early_destinations_.empty()) early_round(limit, out);
  auto work = catalog_.policy.policy_work(limit);
  if (!work) {
    log::error("policy: catalog error", {{"error", work.error().to_string()}});
    note_failure("cannot read studies to decide", work.error());
    return out;
  }
  for (const auto& w : *work) {
    ++out.studies;
    // Only the newest version of each SOP instance counts.
    std::map<std::string, const catalog::PolicyWork::Instance*> latest;
    for (const auto& i : w.instances) latest[i.sop_instance_uid] = &i;

    const Checked checked = check_instances(w, latest);
    const auto& findings = checked.findings;
    const std::vector<catalog::PatientKey> key_list(checked.keys.begin(), checked.keys.end());
    // READY is only proposed here: the catalog reads consent in the transaction that commits
    // the decision (a withdrawal landing meanwhile is never missed).
    const auto proposals = propose(w, checked);
    // An HL7 order for the study's accession number that said STAT (catalog/order_book.h):
    // linking marks the study STAT, before the decision makes it READY.
    if (!checked.accession.empty()) {
      auto by_order = catalog_.orders.link_study(w.study_id, checked.accession);
      if (!by_order)
        log::error("policy: cannot note the study's accession number",
                   {{"study_uid", w.study_uid}, {"error", by_order.error().to_string()}});
      else if (*by_order)
        log::info("study is STAT by its HL7 order: forwarded first", {{"study_uid", w.study_uid}});
    }
    // Marked before the decision makes it READY, so no forwarder sees it as routine first.
    if (checked.stat) {
      if (auto m = catalog_.operators.mark_stat(w.study_id); !m)
        log::error("policy: cannot mark a STAT study",
                   {{"study_uid", w.study_uid}, {"error", m.error().to_string()}});
      else
        log::info("study is STAT: forwarded first", {{"study_uid", w.study_uid}});
    }
    if (before_record_) before_record_(w.study_id);
    auto decided =
        catalog_.policy.record_policy(w.study_id, key_list, findings, proposals, checked.derived);
    if (!decided) {
      log::error("policy: cannot record the decision",
                 {{"study_uid", w.study_uid}, {"error", decided.error().to_string()}});
      ++out.failed;
      note_failure("cannot record a policy decision", decided.error());
      continue;
    }
    {
      std::lock_guard lock(health_mutex_);
      health_ = {};
    }
    // Findings the site accepts (policy.validation.accept_findings), as code:instances.
    std::string accepted;
    for (const auto& [code, n] : checked.accepted)
      accepted += (accepted.empty() ? "" : ",") + code + ":" + std::to_string(n);
    for (const auto& d : *decided) {
      switch (d.state) {
        case catalog::StudyState::kQuarantined:
          ++out.quarantined;
          if (metrics_ != nullptr) metrics_->instances_quarantined.inc(latest.size());
          break;
        case catalog::StudyState::kWithdrawn:
          ++out.withdrawn;
          break;
        case catalog::StudyState::kHeld:
          ++out.held;
          break;
        default:
          ++out.ready;
      }
      const std::string state(catalog::to_string(d.state));
      const std::string count = std::to_string(findings.size());
      if (accepted.empty())
        log::info("policy decided", {{"study_uid", w.study_uid},
                                     {"destination", d.destination},
                                     {"state", state},
                                     {"reason", d.reason},
                                     {"findings", count}});
      else
        log::info("policy decided", {{"study_uid", w.study_uid},
                                     {"destination", d.destination},
                                     {"state", state},
                                     {"reason", d.reason},
                                     {"findings", count},
                                     {"accepted_findings", accepted}});
    }
  }
  return out;
}

}  // namespace dirgw::policy
