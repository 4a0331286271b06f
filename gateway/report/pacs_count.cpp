#include "report/pacs_count.h"

#include <algorithm>

#include "log/log.h"

namespace dirgw::report {

namespace {

PacsDay unavailable(PacsDay d, const std::string& why) {
  d.unavailable = why.empty() ? "no answer" : why;
  d.studies = d.instances = d.received_studies = d.received_instances = 0;
  d.never_received.clear();
  log::warn("report: PACS count unavailable", {{"pacs", d.pacs}, {"error", d.unavailable}});
  return d;
}

}  // namespace

PacsDay count_pacs(const config::PullSource& pacs, const std::string& study_date,
                   const ingest::pull::QrConnect& connect, const HeldInstances& held) {
  PacsDay d{pacs.name, pacs.ae_title, study_date};
  auto session = connect(pacs, pacs.calling_ae);
  if (!session) return unavailable(std::move(d), session.error().detail);
  auto found = (*session)->find_studies_on(study_date);
  if (!found) return unavailable(std::move(d), found.error().detail);
  std::vector<std::string> uids;
  for (const auto& f : *found) {
    if (std::find(uids.begin(), uids.end(), f.study_uid) != uids.end()) continue;
    std::int64_t n = f.reported;
    if (n < 0) {
      // The PACS does not answer NumberOfStudyRelatedInstances: count its series' images.
      auto contents = (*session)->study_contents(f.study_uid);
      if (!contents) return unavailable(std::move(d), contents.error().detail);
      n = contents->instances;
    }
    uids.push_back(f.study_uid);
    d.instances += n;
  }
  d.studies = static_cast<std::int64_t>(uids.size());
  auto ours = held(uids);
  if (!ours) return unavailable(std::move(d), "catalog: " + ours.error().to_string());
  for (const auto& uid : uids) {
    auto it = ours->find(uid);
    if (it == ours->end()) {
      d.never_received.push_back(uid);
      continue;
    }
    ++d.received_studies;
    d.received_instances += it->second;
  }
  std::sort(d.never_received.begin(), d.never_received.end());
  return d;
}

PacsCounts make_pacs_counts(const std::vector<config::PullSource>& pacs,
                            ingest::pull::QrConnect connect, HeldInstances held) {
  if (pacs.empty()) return nullptr;
  // The sessions keep a reference to their PullSource: this copy outlives every call.
  return [pacs, connect = std::move(connect), held = std::move(held)](const std::string& day) {
    std::string date;  // YYYY-MM-DD -> YYYYMMDD (DICOM DA)
    for (char c : day)
      if (c != '-') date += c;
    std::vector<PacsDay> out;
    for (const auto& p : pacs) out.push_back(count_pacs(p, date, connect, held));
    return out;
  };
}

}  // namespace dirgw::report
