#include "priors/service.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>

#include "common/files.h"
#include "common/uid.h"
#include "log/log.h"
#include "priors/coerce_prior.h"
#include "priors/relevance.h"

namespace dirgw::priors {

namespace {

// A temporary in spool/tmp that one retrieved part is written to, as it arrives.
class PartFile {
 public:
  Result<void> open(const std::filesystem::path& path) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0)
      return make_error(ErrorCode::kIo, "cannot create a spool temporary: " + errno_text(errno));
    size_ = 0;
    return {};
  }
  Result<void> write(std::string_view bytes, std::uint64_t max) {
    size_ += bytes.size();
    if (size_ > max)
      return make_error(ErrorCode::kPrescanRejected, "a retrieved instance exceeds the size limit");
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return make_error(ErrorCode::kIo, "cannot write a spool temporary: " + errno_text(errno));
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }
  Result<void> close() {
    if (fd_ >= 0 && ::close(fd_) != 0) {
      fd_ = -1;
      return make_error(ErrorCode::kIo, "cannot close a spool temporary");
    }
    fd_ = -1;
    return {};
  }
  ~PartFile() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// A search's audit event names at most this many of the studies the rules left out.
constexpr std::size_t kMaxSkippedInAudit = 100;

std::string yyyymmdd(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "\\") + s;
  return out;
}

// Removes the temporaries whatever happened.
struct TempsGuard {
  const ingest::Spool& spool;
  std::vector<std::filesystem::path>& temps;
  ~TempsGuard() {
    for (const auto& t : temps) spool.discard_temp(t);
  }
};

}  // namespace

Service::Service(ServiceOptions options, catalog::PriorLedger& ledger, Repository& repository,
                 senders::Sender& pacs, const ingest::Spool& spool, const Clock& clock,
                 ConsentCheck consent_withdrawn, AuditSink audit)
    : o_(std::move(options)),
      ledger_(ledger),
      repository_(repository),
      pacs_(pacs),
      spool_(spool),
      clock_(clock),
      consent_withdrawn_(std::move(consent_withdrawn)),
      audit_(std::move(audit)) {}

Service::~Service() { stop(); }

void Service::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Service::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Service::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

Result<std::int64_t> Service::request(catalog::PriorRequest r) {
  auto id = ledger_.add_request(r);
  if (id) wake();
  return id;
}

void Service::loop() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      woken_ = false;
    }
    step();
    auto next = ledger_.next_due();
    std::unique_lock lock(mu_);
    if (stopping_) return;
    if (woken_) continue;
    // The next retry, or a minute (a request recorded while the catalog was unreadable).
    auto wait = std::chrono::milliseconds(60000);
    if (next && *next)
      wait = std::clamp(std::chrono::milliseconds(**next - to_epoch_ms(clock_.now())),
                        std::chrono::milliseconds(0), wait);
    cv_.wait_for(lock, wait, [this] { return stopping_ || woken_; });
  }
}

int Service::step() {
  auto due = ledger_.due(to_epoch_ms(clock_.now()));
  if (!due) {
    log::warn("priors: cannot read the request queue", {{"error", due.error().to_string()}});
    return 0;
  }
  int n = 0;
  for (const auto& r : *due) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    run(r);
    ++n;
  }
  return n;
}

std::string Service::since_date(const catalog::PriorRequest& r) const {
  const int days = r.since_days > 0 ? r.since_days : o_.config.years * 365;
  return yyyymmdd(clock_.now() - std::chrono::hours(24) * days);
}

void Service::audit_event(const catalog::PriorRequest& r, audit::EventType type,
                          const std::string& outcome, const std::string& study_uid,
                          nlohmann::json detail) {
  if (!audit_) return;
  audit::Event e;
  e.type = type;
  e.actor = r.actor.empty() ? audit::system_actor() : r.actor;
  e.outcome = outcome;
  e.study_uid = study_uid;
  e.destination = o_.pacs_label;
  e.patient_ref = r.patient_ref;
  detail["trigger"] = r.trigger_ref;
  detail["trigger_kind"] = r.trigger_kind;
  detail["request"] = r.id;
  e.detail = std::move(detail);
  audit_(std::move(e));
}

// Records the request's end, or its next attempt when the failure may pass.
void Service::settle(const catalog::PriorRequest& r, RequestOutcome& out, bool retryable) {
  if (retryable && r.attempts + 1 < o_.config.max_attempts) {
    auto delay = o_.config.retry_initial * (1LL << std::min(r.attempts, 20));
    delay = std::min<std::chrono::milliseconds>(delay, o_.config.retry_max);
    out.state = "pending";
    if (auto w = ledger_.retry_later(r.id, to_epoch_ms(clock_.now()) + delay.count(), out.error);
        !w)
      log::warn("priors: cannot record a retry", {{"error", w.error().to_string()}});
    return;
  }
  if (auto w = ledger_.finish(r.id, out.state, out.found, out.fetched, out.error); !w)
    log::warn("priors: cannot record a request's end", {{"error", w.error().to_string()}});
}

// The search and the rules: the studies to fetch, most recent first, each with the rule that chose
// it. nullopt when the request ended here (the search failed: recorded, audited, settled).
std::optional<std::vector<Service::Chosen>> Service::choose(const catalog::PriorRequest& r,
                                                            RequestOutcome& out) {
  auto found = repository_.search(r.health_number, since_date(r));
  auto fail = [&](const std::string& why, const Error& e) {
    out.state = "failed";
    out.error = why + e.detail;
    audit_event(r, audit::EventType::kPriorsSearched, audit::failure(out.error), "", {});
    settle(r, out, e.retryable());
    return std::nullopt;
  };
  if (!found) return fail("search: ", found.error());
  // At most max_studies count: stored now or before, or failed (run() counts). A study found to be
  // this facility's only after retrieval (a repository that does not list Institution Name) does
  // not count, so the next one is taken instead.
  Rules rules{o_.config.modalities, since_date(r), std::numeric_limits<int>::max(),
              o_.config.skip_institutions, r.health_number_issuer};
  const std::size_t listed = found->size();
  auto selection = select_priors_explained(std::move(*found), rules);
  const Relevance relevance = relevance_for(o_.config, r.procedures, r.body_part);
  std::vector<Chosen> chosen;
  for (auto& s : selection.selected) {
    std::string because = relevant_because(relevance, s);
    if (because.empty() && relevance.wants_series_body_parts()) {
      // Body Part Examined is a series attribute: a study-level answer lists one series' at most.
      auto parts = repository_.series_body_parts(s.study_uid);
      if (!parts) return fail("series search: ", parts.error());
      because = relevant_because(relevance, s, *parts);
    }
    if (because.empty())
      selection.skipped.push_back({s.study_uid, "relevance (" + relevance.rule + ")"});
    else
      chosen.push_back({std::move(s), std::move(because)});
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& k : selection.skipped) {
    if (skipped.size() >= kMaxSkippedInAudit) break;
    skipped.push_back({{"study", k.study_uid}, {"rule", k.rule}});
  }
  audit_event(r, audit::EventType::kPriorsSearched, std::string(audit::kSuccess), "",
              {{"listed", listed},
               {"eligible", chosen.size()},
               {"relevance", relevance.rule},
               {"skipped", std::move(skipped)},
               {"skipped_total", selection.skipped.size()}});
  return chosen;
}

RequestOutcome Service::run(const catalog::PriorRequest& r) {
  RequestOutcome out;
  auto withdrawn = consent_withdrawn_ ? consent_withdrawn_(r) : Result<bool>(false);
  if (!withdrawn || *withdrawn) {
    out.state = withdrawn ? "refused" : "failed";
    out.error = withdrawn ? "consent-withdrawn" : "consent could not be read";
    audit_event(r, audit::EventType::kPriorsSearched, audit::failure(out.error), "",
                {{"found", 0}});
    log::info(
        "priors: request refused",
        {{"request", std::to_string(r.id)}, {"patient", r.patient_ref}, {"reason", out.error}});
    settle(r, out, !withdrawn);
    return out;
  }
  auto chosen = choose(r, out);
  if (!chosen) return out;
  bool retry = false;
  for (const auto& [s, because] : *chosen) {
    if (out.found >= o_.config.max_studies) break;
    auto known = ledger_.study(s.study_uid);
    if (known && *known) {
      if ((*known)->state == "skipped") continue;
      ++out.already;
      ++out.found;
      continue;
    }
    auto got = fetch_study(r, s);
    if (!got) {
      ++out.found;
      out.error = s.study_uid + ": " + got.error().detail;
      retry = retry || got.error().retryable();
      audit_event(r, audit::EventType::kPriorFetched, audit::failure(got.error().detail),
                  s.study_uid, {{"selected_by", because}});
      continue;
    }
    if (!got->skipped.empty()) {
      ++out.skipped;
      audit_event(r, audit::EventType::kPriorFetched, audit::failure("not stored: " + got->skipped),
                  s.study_uid, {{"instances", got->instances}, {"selected_by", because}});
      continue;
    }
    ++out.found;
    ++out.fetched;
    audit_event(r, audit::EventType::kPriorFetched, std::string(audit::kSuccess), s.study_uid,
                {{"instances", got->instances},
                 {"study_date", s.study_date},
                 {"modalities", joined(s.modalities)},
                 {"selected_by", because}});
  }
  out.state = out.error.empty() ? "done" : "failed";
  log::info("priors: request handled", {{"request", std::to_string(r.id)},
                                        {"patient", r.patient_ref},
                                        {"selected", std::to_string(out.found)},
                                        {"fetched", std::to_string(out.fetched)},
                                        {"already", std::to_string(out.already)},
                                        {"state", out.state}});
  settle(r, out, retry);
  return out;
}

Result<std::vector<std::filesystem::path>> Service::retrieve(const std::string& study_uid) {
  std::vector<std::filesystem::path> files;
  PartFile part;
  const std::uint64_t max = o_.limits.max_object_size;
  MultipartParser::Handler h;
  h.begin_part = [&](std::string_view headers) -> Result<void> {
    std::string lower(headers);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find("content-type") != std::string::npos &&
        lower.find("application/dicom") == std::string::npos)
      return make_error(ErrorCode::kProtocol, "a WADO-RS part is not application/dicom");
    files.push_back(spool_.new_temp_path());
    return part.open(files.back());
  };
  h.data = [&](std::string_view bytes) { return part.write(bytes, max); };
  h.end_part = [&] { return part.close(); };
  auto r = repository_.retrieve_study(study_uid, std::move(h));
  (void)part.close();
  if (!r) {
    for (const auto& f : files) spool_.discard_temp(f);
    return r.error();
  }
  return files;
}

Result<Service::Fetched> Service::fetch_study(const catalog::PriorRequest& r,
                                              const FoundStudy& study) {
  auto files = retrieve(study.study_uid);
  if (!files) return files.error();
  std::vector<std::filesystem::path> temps = *files;
  TempsGuard guard{spool_, temps};
  if (files->empty()) return make_error(ErrorCode::kProtocol, "WADO-RS returned no instance");
  return store(r, study, *files, temps);
}

// Pre-scan, this-facility check, coercion and C-STORE of one retrieved study.
Result<Service::Fetched> Service::store(const catalog::PriorRequest& r, const FoundStudy& study,
                                        const std::vector<std::filesystem::path>& files,
                                        std::vector<std::filesystem::path>& temps) {
  Fetched f;
  f.instances = static_cast<std::int64_t>(files.size());
  catalog::PriorStudy row{
      study.study_uid,          r.id,        r.patient_ref, r.mrn, r.mrn_issuer,  study.study_date,
      joined(study.modalities), f.instances, "stored",      "",    r.trigger_ref, 0};
  const LocalIdentity id{r.mrn,
                         r.mrn_issuer,
                         r.health_number,
                         r.health_number_issuer,
                         o_.config.series_description_prefix,
                         o_.facility};
  std::vector<senders::Item> batch;
  const auto now = clock_.now();
  for (const auto& file : files) {
    auto scan = ingest::prescan_file(file, o_.limits);
    if (!scan) return make_error(ErrorCode::kPrescanRejected, scan.error().detail);
    if (scan->study_uid != study.study_uid)
      return make_error(ErrorCode::kProtocol, "WADO-RS returned an instance of another study");
    auto header = read_prior_header(file);
    if (!header) return header.error();
    if (institution_matches(header->institution, o_.config.skip_institutions)) {
      // From this facility: the local PACS has it already. Recorded, so never asked again.
      f.skipped = "from this facility";
      row.state = "skipped";
      row.reason = "this-facility";
      if (auto w = ledger_.record_study(row); !w) return w.error();
      return f;
    }
    temps.push_back(spool_.new_temp_path());
    if (auto c = coerce_prior(file, temps.back(), *header, id, now); !c) return c.error();
    std::error_code ec;
    const auto size = std::filesystem::file_size(temps.back(), ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot read a coerced prior's size");
    batch.push_back({scan->sop_instance_uid, scan->sop_class_uid, temps.back(), size, "", {}, 0});
  }
  const auto outcome = pacs_.send(batch);
  if (outcome.kind != senders::OutcomeKind::kOk) {
    const bool again = outcome.kind == senders::OutcomeKind::kRetry;
    return make_error(again ? ErrorCode::kNetwork : ErrorCode::kRefused,
                      "the local PACS did not store every instance: " + outcome.message);
  }
  if (auto w = ledger_.record_study(row); !w) return w.error();
  return f;
}

}  // namespace dirgw::priors
