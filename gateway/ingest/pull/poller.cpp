#include "ingest/pull/poller.h"

#include <date/tz.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "log/log.h"

namespace dirgw::ingest::pull {

using std::chrono::milliseconds;

StudyAction decide(const std::optional<catalog::PullStudyRow>& row, std::int64_t reported,
                   std::int64_t held, std::int64_t now_ms) {
  if (reported >= 0 && held >= reported) return StudyAction::kSkip;
  if (reported < 0 && row && row->state == "complete") return StudyAction::kSkip;
  if (row && row->state != "complete" && row->next_try_at > now_ms) return StudyAction::kWait;
  return StudyAction::kPull;
}

milliseconds backoff(milliseconds initial, milliseconds max, int failures) {
  milliseconds d = initial;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

std::string window_start_date(TimePoint poll_point, milliseconds look_back, const std::string& tz) {
  const auto t = date::floor<std::chrono::seconds>(poll_point - look_back);
  date::local_days day;
  try {
    day = date::floor<date::days>(date::locate_zone(tz)->to_local(t));
  } catch (const std::exception&) {
    day = date::local_days(date::floor<date::days>(t).time_since_epoch());  // UTC
  }
  const date::year_month_day ymd(day);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

struct Poller::Source {
  config::PullSource cfg;
  std::string calling_ae, destination;
  TimePoint next_poll{};
  bool loaded = false;  // next_poll read from the catalog
  PullStatus status;
};

Poller::Poller(std::vector<config::PullSource> sources, std::string our_ae, std::string time_zone,
               catalog::PullLedger& ledger, PullSink& sink, const Clock& clock, QrConnect connect)
    : our_ae_(std::move(our_ae)),
      timezone_(std::move(time_zone)),
      ledger_(ledger),
      sink_(sink),
      clock_(clock),
      connect_(std::move(connect)) {
  for (auto& c : sources) {
    auto s = std::make_unique<Source>();
    s->calling_ae = c.calling_ae.empty() ? our_ae_ : c.calling_ae;
    s->destination = c.move_destination.empty() ? our_ae_ : c.move_destination;
    s->status.name = c.name;
    s->status.pacs = c.ae_title + "@" + c.host + ":" + std::to_string(c.port);
    s->cfg = std::move(c);
    sources_.push_back(std::move(s));
  }
}

Poller::~Poller() { stop(); }

void Poller::start() {
  thread_ = std::thread([this] { run(); });
}

void Poller::request_stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void Poller::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

void Poller::run() {
  while (!stopping_) {
    const TimePoint next = step();
    std::unique_lock lock(wake_mutex_);
    wake_.wait_until(lock, next, [this] { return stopping_.load(); });
  }
}

TimePoint Poller::step() {
  TimePoint next = clock_.now() + std::chrono::hours(1);
  for (auto& s : sources_) {
    if (stopping_) break;
    const TimePoint now = clock_.now();
    if (!s->loaded) {
      // The schedule survives a restart: a poll cut short by a crash left next_poll_at in the
      // past (it is written at the end), so it runs again at once.
      auto row = ledger_.source(s->cfg.name);
      if (row) {
        s->next_poll = from_epoch_ms(row->next_poll_at);
        s->loaded = true;
      }
    }
    if (s->loaded && s->next_poll <= now) poll(*s, now);
    next = std::min(next, s->loaded ? s->next_poll : now + std::chrono::seconds(5));
  }
  return next;
}

void Poller::poll(Source& s, TimePoint now) {
  auto loaded = ledger_.source(s.cfg.name);
  if (!loaded) {
    s.next_poll = now + std::chrono::seconds(5);
    return;
  }
  catalog::PullSourceRow row = *loaded;
  row.last_poll_at = to_epoch_ms(now);
  const TimePoint point = row.last_ok_at > 0 ? std::min(now, from_epoch_ms(row.last_ok_at)) : now;
  const std::string from = window_start_date(point, s.cfg.look_back, timezone_);
  auto session = connect_(s.cfg, s.calling_ae);
  if (!session) return finish_poll(s, row, session.error().to_string(), now);
  auto answers = (*session)->find_studies(from);
  if (!answers) return finish_poll(s, row, answers.error().to_string(), now);
  const std::vector<FoundStudy> found = merge_answers(*answers);
  log::info("pull: polled",
            {{"source", s.cfg.name}, {"from", from}, {"studies", std::to_string(found.size())}});
  std::string error;
  std::set<std::string> seen;
  for (const auto& f : found) {
    if (stopping_) break;
    seen.insert(f.study_uid);
    if (!handle_study(s, **session, f, to_epoch_ms(now))) {
      error = "the association with the PACS failed during the poll";
      break;
    }
  }
  // Studies left incomplete whose date has left the window are asked for by UID.
  auto left = ledger_.summary(s.cfg.name, 100);
  if (left && error.empty())
    for (const auto& r : left->incomplete_studies) {
      if (stopping_) break;
      if (seen.count(r.study_uid) != 0) continue;
      if (!handle_left_study(s, **session, r, to_epoch_ms(now))) {
        error = "the association with the PACS failed during the poll";
        break;
      }
    }
  finish_poll(s, row, error, now);
}

bool Poller::handle_left_study(Source& s, QrSession& session, const catalog::PullStudyRow& row,
                               std::int64_t now) {
  if (row.next_try_at > now) return true;  // not due yet
  // What the PACS holds now, asked by UID: a study deleted there (or merged into another) is
  // not asked for again for ever, and one that lost instances there is complete with fewer.
  // A PACS that cannot answer such a query: the count it gave last time.
  FoundStudy f{row.study_uid, row.reported, {}};
  if (auto answers = session.find_study(row.study_uid)) {
    const auto merged = merge_answers(*answers);
    auto it = std::find_if(merged.begin(), merged.end(),
                           [&](const FoundStudy& m) { return m.study_uid == row.study_uid; });
    if (it == merged.end()) {
      catalog::PullStudyRow r = row;
      r.not_found += 1;
      const std::string times = std::to_string(r.not_found);
      if (r.not_found >= kNotFoundToGone) {
        r.state = "gone";
        r.next_try_at = 0;
        r.last_error = "the PACS no longer holds this study (no match to a query by its UID, " +
                       times + " times in a row): not asked for again";
        log::warn("pull: study no longer on the PACS, not asked for again",
                  {{"source", s.cfg.name},
                   {"study_uid", row.study_uid},
                   {"held", std::to_string(row.held)},
                   {"reported", std::to_string(row.reported)}});
      } else {
        r.failures += 1;
        r.next_try_at = now + backoff(s.cfg.retry_initial, s.cfg.retry_max, r.failures).count();
        r.last_error = "the PACS answered no match to a query by this study's UID (" + times +
                       " of " + std::to_string(kNotFoundToGone) +
                       " before it is taken as deleted there)";
        log::warn("pull: study not found on the PACS, will ask again",
                  {{"source", s.cfg.name},
                   {"study_uid", row.study_uid},
                   {"times", times},
                   {"of", std::to_string(kNotFoundToGone)}});
      }
      if (auto saved = ledger_.save_study(r); !saved)
        log::error("pull: cannot record a study", {{"error", saved.error().to_string()}});
      return true;
    }
    if (it->reported >= 0) f.reported = it->reported;
    f.modalities = it->modalities;
  }
  return handle_study(s, session, f, now);
}

std::vector<FoundStudy> merge_answers(const std::vector<FoundStudy>& answers) {
  std::vector<FoundStudy> out;
  std::map<std::string, std::size_t> at;
  for (const auto& a : answers) {
    auto [it, fresh] = at.emplace(a.study_uid, out.size());
    if (fresh) {
      out.push_back(a);
      continue;
    }
    FoundStudy& m = out[it->second];
    m.reported = m.reported < 0 || a.reported < 0 ? -1 : m.reported + a.reported;
    m.modalities.insert(a.modalities.begin(), a.modalities.end());
  }
  return out;
}

std::string retrieve_status_text(std::uint16_t status) {
  if (status == 0x0000) return "";
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04X", status);
  std::string out = "; the PACS answered status 0x" + std::string(hex);
  if (status == 0xA801)
    out +=
        ": move destination unknown (is this gateway's AE title, host and port in the PACS's "
        "list of DICOM nodes?)";
  else if (status == 0xA701 || status == 0xA702)
    out += ": out of resources";
  else if (status == 0xA900)
    out += ": identifier does not match SOP class";
  else if ((status & 0xF000) == 0xC000)
    out += ": unable to process (the PACS's log says why; an unknown destination often reads so)";
  else if (status == 0xFE00)
    out += ": cancelled";
  else if (status == 0xB000)
    out += ": some sub-operations failed";
  return out;
}

bool Poller::handle_study(Source& s, QrSession& session, const FoundStudy& found,
                          std::int64_t now) {
  auto row = ledger_.study(s.cfg.name, found.study_uid);
  if (!row) return true;
  std::int64_t reported = found.reported;
  std::set<std::string> modalities = found.modalities;
  if (reported < 0 || (!s.cfg.modalities.empty() && modalities.empty())) {
    // The PACS did not say: ask at series and image level (a PACS that cannot answer leaves the
    // count unknown, and the C-MOVE's own answer decides).
    if (auto c = session.study_contents(found.study_uid)) {
      if (reported < 0) reported = c->instances;
      if (modalities.empty()) modalities = c->modalities;
    }
  }
  if (!s.cfg.modalities.empty() && !modalities.empty() &&
      std::none_of(s.cfg.modalities.begin(), s.cfg.modalities.end(),
                   [&](const std::string& m) { return modalities.count(m) != 0; })) {
    // Traced once (a row, a log line), so that "why was it not pulled" has an answer.
    if (!*row) {
      std::string listed;
      for (const auto& m : modalities) listed += (listed.empty() ? "" : ",") + m;
      catalog::PullStudyRow r;
      r.source = s.cfg.name;
      r.study_uid = found.study_uid;
      r.first_seen_at = now;
      r.state = "skipped";
      r.reported = reported;
      r.last_error = "modalities " + listed + " not in the source's modalities";
      (void)ledger_.save_study(r);
      log::info("pull: study skipped, its modalities are not in the source's filter",
                {{"source", s.cfg.name}, {"study_uid", found.study_uid}, {"modalities", listed}});
    }
    return true;
  }
  auto held = ledger_.held_instances(found.study_uid);
  if (!held) return true;
  const StudyAction action = decide(*row, reported, *held, now);
  if (action == StudyAction::kWait) return true;
  if (action == StudyAction::kSkip) {
    if (!*row || (*row)->state != "complete" || (*row)->held != *held ||
        (*row)->reported != reported) {
      catalog::PullStudyRow r = row->value_or(catalog::PullStudyRow{});
      r.source = s.cfg.name;
      r.study_uid = found.study_uid;
      if (r.first_seen_at == 0) r.first_seen_at = now;
      r.state = "complete";
      r.held = *held;
      r.reported = reported;
      r.failures = 0;
      r.not_found = 0;
      r.last_error.clear();
      (void)ledger_.save_study(r);
    }
    return true;
  }
  return retrieve(s, session, found.study_uid, reported, *held, *row, now);
}

bool Poller::retrieve(Source& s, QrSession& session, const std::string& study_uid,
                      std::int64_t reported, std::int64_t held_before,
                      std::optional<catalog::PullStudyRow> row, std::int64_t now) {
  catalog::PullStudyRow r = row.value_or(catalog::PullStudyRow{});
  const bool again = row && row->state == "complete";  // it grew on the PACS
  r.source = s.cfg.name;
  r.study_uid = study_uid;
  r.not_found = 0;  // the PACS listed it
  if (r.first_seen_at == 0) r.first_seen_at = now;
  log::info(again ? "pull: study grew on the PACS, retrieving it again" : "pull: retrieving study",
            {{"source", s.cfg.name},
             {"study_uid", study_uid},
             {"held", std::to_string(held_before)},
             {"reported", std::to_string(reported)}});
  sink_.expect(s.cfg.ae_title, study_uid, s.cfg.name);
  const bool get = s.cfg.retrieve == "get";
  const std::string how = get ? "C-GET" : "C-MOVE";
  auto moved = get ? session.get_study(study_uid) : session.move_study(study_uid, s.destination);
  const PullTally tally = sink_.done(s.cfg.ae_title, study_uid);
  auto held = ledger_.held_instances(study_uid);
  r.held = held ? *held : r.held;
  r.reported = reported;
  r.pulls += 1;
  r.pulled_at = to_epoch_ms(clock_.now());
  bool complete = false;
  std::string why;
  if (!moved) {
    why = moved.error().to_string();
  } else if (reported >= 0) {
    complete = r.held >= reported;
    if (!complete)
      why = "holding " + std::to_string(r.held) + " of " + std::to_string(reported) +
            " instances after " + how + " (" + std::to_string(moved->failed) +
            " sub-operations failed" + retrieve_status_text(moved->status) + ")";
  } else {
    complete = moved->success() && moved->failed == 0;
    if (!complete)
      why = how + " ended with " + std::to_string(moved->failed) + " failures" +
            retrieve_status_text(moved->status);
  }
  if (complete) {
    r.state = "complete";
    r.failures = 0;
    r.next_try_at = 0;
    r.last_error.clear();
  } else {
    r.state = "incomplete";
    if (stopping_) {
      r.next_try_at = 0;  // cut short by our own stop: not the PACS's failure, asked again at once
    } else {
      r.failures += 1;
      r.next_try_at = now + backoff(s.cfg.retry_initial, s.cfg.retry_max, r.failures).count();
    }
    r.last_error = why;
  }
  if (auto saved = ledger_.save_study(r); !saved)
    log::error("pull: cannot record a study", {{"error", saved.error().to_string()}});
  {
    std::lock_guard lock(status_mutex_);
    s.status.studies_pulled += 1;
    s.status.objects_stored += tally.stored;
    s.status.objects_duplicate += tally.duplicates;
    s.status.rejected += tally.refused + (moved ? static_cast<std::uint64_t>(moved->failed) : 0);
  }
  if (complete)
    log::info("pull: study complete", {{"source", s.cfg.name},
                                       {"study_uid", study_uid},
                                       {"stored", std::to_string(tally.stored)},
                                       {"duplicates", std::to_string(tally.duplicates)},
                                       {"held", std::to_string(r.held)}});
  else
    log::warn("pull: study incomplete, will retry", {{"source", s.cfg.name},
                                                     {"study_uid", study_uid},
                                                     {"stored", std::to_string(tally.stored)},
                                                     {"held", std::to_string(r.held)},
                                                     {"reported", std::to_string(reported)},
                                                     {"reason", why}});
  return moved.ok();
}

void Poller::finish_poll(Source& s, catalog::PullSourceRow row, const std::string& error,
                         TimePoint started) {
  const TimePoint now = clock_.now();
  if (stopping_) {
    s.next_poll = now;  // stopped mid-poll (a C-MOVE cut by our own stop): again at the next start
  } else if (error.empty()) {
    row.last_ok_at = to_epoch_ms(started);
    row.failures = 0;
    row.last_error.clear();
    // A poll that took longer than `every` is followed by the next at once.
    s.next_poll = std::max(started + s.cfg.every, now);
  } else {
    row.failures += 1;
    row.last_error = error;
    s.next_poll =
        now + std::min<milliseconds>(backoff(s.cfg.retry_initial, s.cfg.retry_max, row.failures),
                                     s.cfg.every);
    log::warn(
        "pull: poll failed, will retry",
        {{"source", s.cfg.name}, {"reason", error}, {"failures", std::to_string(row.failures)}});
  }
  row.next_poll_at = to_epoch_ms(s.next_poll);
  if (auto saved = ledger_.save_source(row); !saved)
    log::error("pull: cannot record a poll", {{"error", saved.error().to_string()}});
  std::lock_guard lock(status_mutex_);
  s.status.last_poll_at = row.last_poll_at;
  s.status.last_ok_at = row.last_ok_at;
  s.status.next_poll_at = row.next_poll_at;
  s.status.last_error = row.last_error;
}

std::vector<PullStatus> Poller::status() const {
  std::vector<PullStatus> out;
  for (const auto& s : sources_) {
    PullStatus st;
    {
      std::lock_guard lock(status_mutex_);
      st = s->status;
    }
    if (auto row = ledger_.source(s->cfg.name)) {
      st.last_poll_at = row->last_poll_at;
      st.last_ok_at = row->last_ok_at;
      st.next_poll_at = row->next_poll_at;
      st.last_error = row->last_error;
    }
    if (auto sum = ledger_.summary(s->cfg.name)) {
      st.studies_complete = sum->complete;
      st.studies_incomplete = sum->incomplete;
      st.studies_gone = sum->gone;
      st.studies_skipped = sum->skipped;
      for (const auto& r : sum->incomplete_studies)
        st.incomplete.push_back(
            {r.study_uid, r.held, r.reported, r.pulls, r.next_try_at, r.last_error});
    }
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace dirgw::ingest::pull
