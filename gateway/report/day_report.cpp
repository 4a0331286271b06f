#include "report/day_report.h"

#include <date/tz.h>

#include <charconv>

namespace dirgw::report {

namespace {

Error day_error(std::string detail) { return {ErrorCode::kInvalidArgument, std::move(detail)}; }

std::optional<int> digits(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<const date::time_zone*> zone(const std::string& time_zone) {
  try {
    return date::locate_zone(time_zone);
  } catch (const std::exception&) {
    return day_error("unknown time zone '" + time_zone + "'");
  }
}

std::int64_t start_of(const date::time_zone* z, date::local_days d) {
  // Midnight may not exist (a zone that springs forward at 00:00): the day starts when the clock
  // first shows a time of it.
  auto t = z->to_sys(date::local_seconds(d), date::choose::earliest);
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

Day day_of(const date::time_zone* z, date::local_days d, const std::string& time_zone) {
  Day out;
  out.day = date::format("%F", d);
  out.time_zone = time_zone;
  out.from_ms = start_of(z, d);
  out.to_ms = start_of(z, d + date::days(1));
  return out;
}

std::string reasons_text(const std::map<std::string, std::int64_t>& reasons) {
  std::string out;
  for (const auto& [code, n] : reasons) {
    if (!out.empty()) out += ';';
    out += code + "=" + std::to_string(n);
  }
  return out;
}

// A CSV field: quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::optional<std::int64_t> oldest_pending_age_s(const Report& r,
                                                 const catalog::DestinationDay& d) {
  if (d.oldest_pending_received_ms == 0) return std::nullopt;
  return std::max<std::int64_t>(0, (r.generated_at_ms - d.oldest_pending_received_ms) / 1000);
}

}  // namespace

Result<Day> make_day(const std::string& day, const std::string& time_zone) {
  const auto bad = [&] {
    return day_error("'" + day.substr(0, 32) + "' is not a date YYYY-MM-DD such as 2026-12-02");
  };
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return bad();
  auto y = digits(std::string_view(day).substr(0, 4));
  auto m = digits(std::string_view(day).substr(5, 2));
  auto d = digits(std::string_view(day).substr(8, 2));
  if (!y || !m || !d) return bad();
  date::year_month_day ymd{date::year(*y), date::month(static_cast<unsigned>(*m)),
                           date::day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return bad();
  auto z = zone(time_zone);
  if (!z) return z.error();
  return day_of(*z, date::local_days(ymd), time_zone);
}

Result<Day> day_before(TimePoint now, const std::string& time_zone, int days_back) {
  auto z = zone(time_zone);
  if (!z) return z.error();
  auto local = (*z)->to_local(date::floor<std::chrono::seconds>(now));
  return day_of(*z, date::floor<date::days>(local) - date::days(days_back), time_zone);
}

int minute_of_day(TimePoint now, const std::string& time_zone) {
  auto z = zone(time_zone);
  if (!z) return -1;
  auto local = (*z)->to_local(date::floor<std::chrono::seconds>(now));
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::minutes>(local - date::floor<date::days>(local))
          .count());
}

bool adds_up(const Report& r) {
  for (const auto& d : r.counts.destinations)
    if (d.outcome_total() != d.instances || d.instances > r.counts.instances) return false;
  return true;
}

std::string check_lines(const Report& r) {
  std::string out;
  for (const auto& d : r.counts.destinations) {
    out += "check: " + d.destination + ": " + std::to_string(d.instances) + " received =";
    bool first = true;
    for (auto o : catalog::kAllDayOutcomes) {
      out += (first ? " " : " + ") + std::to_string(d.outcomes.at(o)) + " " +
             std::string(catalog::to_string(o));
      first = false;
    }
    out += d.outcome_total() == d.instances ? ": ok\n" : ": DOES NOT ADD UP\n";
  }
  return out;
}

std::string pacs_summary(const Report& r) {
  if (!r.pacs) return "n/a";
  std::string out;
  for (const auto& p : *r.pacs) {
    if (!out.empty()) out += "; ";
    out += p.pacs + ": ";
    if (!p.available()) {
      out += "unavailable: " + p.unavailable;
      continue;
    }
    out += std::to_string(p.studies) + " studies, " + std::to_string(p.instances) + " instances, " +
           std::to_string(p.never_received.size()) + " studies never received";
  }
  return out;
}

namespace {

nlohmann::json pacs_json(const PacsDay& p) {
  using nlohmann::json;
  const bool ok = p.available();
  auto num = [ok](std::int64_t v) { return ok ? json(v) : json(nullptr); };
  return {{"pacs", p.pacs},
          {"ae_title", p.ae_title},
          {"study_date", p.study_date},
          {"available", ok},
          {"reason", p.unavailable},
          {"studies", num(p.studies)},
          {"instances", num(p.instances)},
          {"received_studies", num(p.received_studies)},
          {"received_instances", num(p.received_instances)},
          {"studies_difference", num(p.studies - p.received_studies)},
          {"instances_difference", num(p.instances - p.received_instances)},
          {"never_received", p.never_received}};
}

// A `pacs` row's pacs_count field: what dirgw holds of the PACS's studies, or why no count.
std::string pacs_csv_text(const PacsDay& p) {
  if (!p.available()) return "unavailable: " + p.unavailable;
  std::string uids;
  for (const auto& u : p.never_received) uids += (uids.empty() ? "" : " ") + u;
  return "study_date=" + p.study_date + ";received_studies=" + std::to_string(p.received_studies) +
         ";received_instances=" + std::to_string(p.received_instances) + ";never_received=" + uids;
}

}  // namespace

nlohmann::json to_json(const Report& r) {
  using nlohmann::json;
  json sources = json::object();
  for (const auto& [name, c] : r.counts.by_source)
    sources[name] = {{"instances", c.instances}, {"studies", c.studies}};
  json dests = json::array();
  for (const auto& d : r.counts.destinations) {
    json row = {{"destination", d.destination},
                {"instances", d.instances},
                {"studies", d.studies},
                {"quarantined_by_reason", d.quarantined_by_reason},
                {"held_by_reason", d.held_by_reason},
                {"adds_up", d.outcome_total() == d.instances}};
    for (auto o : catalog::kAllDayOutcomes)
      row[std::string(catalog::to_string(o))] = d.outcomes.at(o);
    const auto age = oldest_pending_age_s(r, d);
    row["oldest_pending_age_s"] = age ? json(*age) : json(nullptr);
    dests.push_back(std::move(row));
  }
  json pacs = json::array();
  if (r.pacs)
    for (const auto& p : *r.pacs) pacs.push_back(pacs_json(p));
  return {
      {"day", r.day.day},
      {"time_zone", r.day.time_zone},
      {"from", format_utc_ms(r.day.from_ms)},
      {"to", format_utc_ms(r.day.to_ms)},
      {"generated_at", format_utc_ms(r.generated_at_ms)},
      {"received",
       {{"instances", r.counts.instances}, {"studies", r.counts.studies}, {"by_source", sources}}},
      {"destinations", dests},
      {"pacs_count", pacs_summary(r)},
      {"pacs", pacs},
      {"adds_up", adds_up(r)},
      {"check", check_lines(r)}};
}

std::string to_csv(const Report& r) {
  std::string out = "day,time_zone,row,name,instances,studies";
  for (auto o : catalog::kAllDayOutcomes) out += "," + std::string(catalog::to_string(o));
  out += ",oldest_pending_age_s,quarantined_by_reason,held_by_reason,pacs_count,adds_up\r\n";
  const std::string lead = r.day.day + "," + csv_field(r.day.time_zone) + ",";
  const std::string no_outcomes(std::size(catalog::kAllDayOutcomes), ',');
  out += lead + "received,," + std::to_string(r.counts.instances) + "," +
         std::to_string(r.counts.studies) + no_outcomes + ",,,," + csv_field(pacs_summary(r)) +
         "," + (adds_up(r) ? "yes" : "no") + "\r\n";
  for (const auto& [name, c] : r.counts.by_source)
    out += lead + "source," + csv_field(name) + "," + std::to_string(c.instances) + "," +
           std::to_string(c.studies) + no_outcomes + ",,,,,\r\n";
  for (const auto& d : r.counts.destinations) {
    out += lead + "destination," + csv_field(d.destination) + "," + std::to_string(d.instances) +
           "," + std::to_string(d.studies);
    for (auto o : catalog::kAllDayOutcomes) out += "," + std::to_string(d.outcomes.at(o));
    const auto age = oldest_pending_age_s(r, d);
    out += "," + (age ? std::to_string(*age) : std::string()) + "," +
           csv_field(reasons_text(d.quarantined_by_reason)) + "," +
           csv_field(reasons_text(d.held_by_reason)) + ",," +
           (d.outcome_total() == d.instances ? "yes" : "no") + "\r\n";
  }
  if (r.pacs)
    for (const auto& p : *r.pacs)
      out += lead + "pacs," + csv_field(p.pacs) + "," +
             (p.available() ? std::to_string(p.instances) + "," + std::to_string(p.studies)
                            : std::string(",")) +
             no_outcomes + ",,,," + csv_field(pacs_csv_text(p)) + ",\r\n";
  return out;
}

}  // namespace dirgw::report
