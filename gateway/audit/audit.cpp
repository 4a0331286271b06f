#include "audit/audit.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <cmath>
#include <utility>

#include "audit/text.h"
#include "common/crypto.h"
#include "common/files.h"

namespace dirgw::audit {

using nlohmann::json;

namespace {

// The canonical form's version: a change to canonical() that alters any existing entry's text
// needs a new version, and canonical() must keep producing the old text for old entries.
constexpr int kCanonicalVersion = 1;

struct TypeName {
  EventType type;
  std::string_view name;
};
constexpr std::array<TypeName, 20> kTypeNames{{
    {EventType::kObjectReceived, "object_received"},
    {EventType::kStudySent, "study_sent"},
    {EventType::kStudyFailed, "study_failed"},
    {EventType::kConsentChanged, "consent_changed"},
    {EventType::kQuarantineAction, "quarantine_action"},
    {EventType::kPatientDataViewed, "patient_data_viewed"},
    {EventType::kOperatorAction, "operator_action"},
    {EventType::kStarted, "started"},
    {EventType::kStopped, "stopped"},
    {EventType::kConfigChanged, "config_changed"},
    {EventType::kAuditExported, "audit_exported"},
    {EventType::kConnectionRefused, "connection_refused"},
    {EventType::kStudyVerified, "study_verified"},
    {EventType::kDeliveryRequeued, "delivery_requeued"},
    {EventType::kObjectsPurged, "objects_purged"},
    {EventType::kPriorsSearched, "priors_searched"},
    {EventType::kPriorFetched, "prior_fetched"},
    {EventType::kStudyHeld, "study_held"},
    {EventType::kStudyReleased, "study_released"},
    {EventType::kStudyWithdrawn, "study_withdrawn"},
}};

void append_detail(std::string& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      out += '{';
      bool first = true;
      // nlohmann's object_t is a std::map: keys iterate in byte order.
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += ',';
        first = false;
        text::append_json_string(out, it.key());
        out += ':';
        append_detail(out, it.value());
      }
      out += '}';
      break;
    }
    case json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& v : j) {
        if (!first) out += ',';
        first = false;
        append_detail(out, v);
      }
      out += ']';
      break;
    }
    case json::value_t::string:
      text::append_json_string(out, j.get_ref<const std::string&>());
      break;
    case json::value_t::boolean:
      out += j.get<bool>() ? "true" : "false";
      break;
    case json::value_t::number_integer:
      out += std::to_string(j.get<std::int64_t>());
      break;
    case json::value_t::number_unsigned:
      out += std::to_string(j.get<std::uint64_t>());
      break;
    case json::value_t::number_float:
      out += j.dump();  // shortest round-trip form; non-finite values print as null
      break;
    case json::value_t::binary: {  // cannot come from stored JSON text; seal() removes it
      out += '[';
      bool first = true;
      for (auto b : j.get_binary()) {
        if (!first) out += ',';
        first = false;
        out += std::to_string(static_cast<unsigned>(b));
      }
      out += ']';
      break;
    }
    case json::value_t::null:
    case json::value_t::discarded:
      out += "null";
      break;
  }
}

json sanitize_detail(const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      json out = json::object();
      for (auto it = j.begin(); it != j.end(); ++it)
        out[text::sanitize_utf8(it.key())] = sanitize_detail(it.value());
      return out;
    }
    case json::value_t::array: {
      json out = json::array();
      for (const auto& v : j) out.push_back(sanitize_detail(v));
      return out;
    }
    case json::value_t::string:
      return text::sanitize_utf8(j.get_ref<const std::string&>());
    case json::value_t::number_float:
      return std::isfinite(j.get<double>()) ? j : json(nullptr);
    case json::value_t::binary:
    case json::value_t::discarded:
      return nullptr;
    default:
      return j;
  }
}

void key(std::string& out, std::string_view name, bool first = false) {
  if (!first) out += ',';
  out += '"';
  out += name;  // our own ASCII key names
  out += "\":";
}

bool is_lower_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<long long> parse_int(std::string_view s) {
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string join_address(std::string_view host, int port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  if (port > 0) {
    out += ':';
    out += std::to_string(port);
  }
  return out;
}

std::string peer_actor(std::string_view scheme, std::string_view id, std::string_view host,
                       int port) {
  std::string out(scheme);
  out += ':';
  out += id;
  out += '@';
  out += join_address(host, port);
  return out;
}

// "<id>@<host>[:port]" with host possibly "[v6]"; the id may itself contain '@'.
bool split_peer(std::string_view rest, Actor& a) {
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) return false;
  a.id = std::string(rest.substr(0, at));
  std::string_view addr = rest.substr(at + 1);
  std::string_view port;
  if (!addr.empty() && addr.front() == '[') {
    const auto close = addr.find(']');
    if (close == std::string_view::npos) return false;
    a.host = std::string(addr.substr(1, close - 1));
    std::string_view tail = addr.substr(close + 1);
    if (!tail.empty()) {
      if (tail.front() != ':') return false;
      port = tail.substr(1);
    }
  } else {
    const auto colon = addr.rfind(':');
    if (colon != std::string_view::npos) {
      a.host = std::string(addr.substr(0, colon));
      port = addr.substr(colon + 1);
    } else {
      a.host = std::string(addr);
    }
  }
  if (!port.empty()) {
    auto p = parse_int(port);
    if (!p || *p <= 0 || *p > 65535) return false;
    a.port = static_cast<int>(*p);
  }
  return true;
}

}  // namespace

std::string_view event_type_name(EventType type) {
  for (const auto& t : kTypeNames)
    if (t.type == type) return t.name;
  return "unknown";
}

std::optional<EventType> parse_event_type(std::string_view name) {
  for (const auto& t : kTypeNames)
    if (t.name == name) return t.type;
  return std::nullopt;
}

const std::vector<EventType>& all_event_types() {
  static const std::vector<EventType> kAll = [] {
    std::vector<EventType> v;
    for (const auto& t : kTypeNames) v.push_back(t.type);
    return v;
  }();
  return kAll;
}

std::string failure(std::string_view reason) {
  std::string out = "failure:";
  out += reason;
  return out;
}

bool is_success(const Event& e) { return e.outcome == kSuccess; }

std::string_view failure_reason(const Event& e) {
  std::string_view o = e.outcome;
  if (o == kSuccess) return {};
  if (o.starts_with("failure:")) return o.substr(8);
  return o;
}

std::string dicom_actor(std::string_view ae_title, std::string_view host, int port) {
  return peer_actor("dicom", ae_title, host, port);
}

std::string hl7_actor(std::string_view application, std::string_view host, int port) {
  return peer_actor("hl7", application, host, port);
}

std::string user_actor(std::string_view name, long uid) {
  std::string out = "user:";
  out += name;
  out += "(uid ";
  out += std::to_string(uid);
  out += ')';
  return out;
}

std::string system_actor(std::string_view name) {
  std::string out = "system:";
  out += name;
  return out;
}

Event connection_refused(std::string_view calling_ae, std::string_view peer, std::string_view code,
                         std::string_view reason) {
  Event e;
  e.type = EventType::kConnectionRefused;
  const auto colon = peer.rfind(':');
  const std::string_view host = peer.substr(0, colon);
  int port = 0;
  if (colon != std::string_view::npos)
    port = std::atoi(std::string(peer.substr(colon + 1)).c_str());
  e.actor = dicom_actor(calling_ae, host, port);
  e.outcome = failure(code);
  e.detail = {{"reason_code", code}, {"reason", reason}, {"peer", peer}};
  return e;
}

Actor parse_actor(std::string_view s) {
  Actor a;
  const auto other = [&] {
    Actor o;
    o.id = std::string(s);
    return o;
  };
  if (s.starts_with("dicom:") || s.starts_with("hl7:")) {
    const bool dicom = s.starts_with("dicom:");
    a.kind = dicom ? Actor::Kind::kDicom : Actor::Kind::kHl7;
    if (!split_peer(s.substr(dicom ? 6 : 4), a)) return other();
    return a;
  }
  if (s.starts_with("user:")) {
    std::string_view rest = s.substr(5);
    a.kind = Actor::Kind::kUser;
    const auto open = rest.rfind("(uid ");
    if (open != std::string_view::npos && rest.ends_with(')')) {
      auto uid = parse_int(rest.substr(open + 5, rest.size() - open - 6));
      if (uid) {
        a.id = std::string(rest.substr(0, open));
        a.uid = static_cast<long>(*uid);
        return a;
      }
    }
    a.id = std::string(rest);
    return a;
  }
  if (s.starts_with("system:")) {
    a.kind = Actor::Kind::kSystem;
    a.id = std::string(s.substr(7));
    return a;
  }
  return other();
}

ChainHasher ChainHasher::plain() { return ChainHasher(); }

Result<ChainHasher> ChainHasher::keyed(std::string key) {
  if (key.size() < 32)
    return make_error(ErrorCode::kConfig, "audit chain key must be at least 32 bytes");
  ChainHasher h;
  h.key_ = std::move(key);
  return h;
}

std::string ChainHasher::hash(const Event& e) const {
  const std::string c = canonical(e);
  if (key_.empty()) return sha256_hex(c);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(c.data()), c.size(), md, &len);
  return hex_encode(md, len);
}

std::string canonical(const Event& e) {
  // Keys in byte order, so the text is also what any sorted-key JSON writer would produce.
  std::string out;
  out.reserve(256 + e.actor.size() + e.outcome.size());
  out += '{';
  key(out, "actor", true);
  text::append_json_string(out, e.actor);
  key(out, "at_ms");
  out += std::to_string(e.at_ms);
  key(out, "destination");
  text::append_json_string(out, e.destination);
  key(out, "detail");
  append_detail(out, e.detail);
  key(out, "outcome");
  text::append_json_string(out, e.outcome);
  key(out, "patient_ref");
  text::append_json_string(out, e.patient_ref);
  key(out, "prev_hash");
  text::append_json_string(out, e.prev_hash);
  key(out, "seq");
  out += std::to_string(e.seq);
  key(out, "sop_instance_uid");
  text::append_json_string(out, e.sop_instance_uid);
  key(out, "study_uid");
  text::append_json_string(out, e.study_uid);
  key(out, "type");
  text::append_json_string(out, event_type_name(e.type));
  key(out, "v");
  out += std::to_string(kCanonicalVersion);
  out += '}';
  return out;
}

Result<Event> from_canonical(std::string_view text_in, std::string hash) {
  json j = json::parse(text_in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return make_error(ErrorCode::kInvalidArgument, "audit entry: not a JSON object");
  static constexpr std::array<std::string_view, 12> kKeys{
      "actor",     "at_ms", "destination",      "detail",    "outcome", "patient_ref",
      "prev_hash", "seq",   "sop_instance_uid", "study_uid", "type",    "v"};
  if (j.size() != kKeys.size())
    return make_error(ErrorCode::kInvalidArgument, "audit entry: unexpected set of keys");
  for (auto k : kKeys)
    if (!j.contains(k))
      return make_error(ErrorCode::kInvalidArgument, "audit entry: missing " + std::string(k));
  if (!j["v"].is_number_integer() || j["v"].get<int>() != kCanonicalVersion)
    return make_error(ErrorCode::kInvalidArgument, "audit entry: unknown version");
  for (auto k : {"seq", "at_ms"})
    if (!j[k].is_number_integer())
      return make_error(ErrorCode::kInvalidArgument,
                        "audit entry: " + std::string(k) + " is not an integer");
  for (auto k : {"actor", "destination", "outcome", "patient_ref", "prev_hash", "sop_instance_uid",
                 "study_uid", "type"})
    if (!j[k].is_string())
      return make_error(ErrorCode::kInvalidArgument,
                        "audit entry: " + std::string(k) + " is not a string");
  auto type = parse_event_type(j["type"].get_ref<const std::string&>());
  if (!type) return make_error(ErrorCode::kInvalidArgument, "audit entry: unknown type");
  Event e;
  e.seq = j["seq"].get<std::int64_t>();
  e.at_ms = j["at_ms"].get<std::int64_t>();
  e.type = *type;
  e.actor = j["actor"].get<std::string>();
  e.outcome = j["outcome"].get<std::string>();
  e.study_uid = j["study_uid"].get<std::string>();
  e.sop_instance_uid = j["sop_instance_uid"].get<std::string>();
  e.destination = j["destination"].get<std::string>();
  e.patient_ref = j["patient_ref"].get<std::string>();
  e.detail = std::move(j["detail"]);
  e.prev_hash = j["prev_hash"].get<std::string>();
  e.hash = std::move(hash);
  return e;
}

std::string canonical_detail(const json& detail) {
  std::string out;
  append_detail(out, detail);
  return out;
}

std::string compute_hash(const Event& e) { return sha256_hex(canonical(e)); }

Event seal(Event e, const Anchor& prev, const ChainHasher& hasher) {
  e.seq = prev.seq + 1;
  e.prev_hash = prev.hash;
  for (std::string* s :
       {&e.actor, &e.outcome, &e.study_uid, &e.sop_instance_uid, &e.destination, &e.patient_ref})
    if (!text::is_valid_utf8(*s)) *s = text::sanitize_utf8(*s);
  e.detail = e.detail.is_null() ? json::object() : sanitize_detail(e.detail);
  e.hash = hasher.hash(e);
  return e;
}

std::string format_anchor(const Anchor& a) {
  std::string out = "{";
  key(out, "hash", true);
  text::append_json_string(out, a.hash);
  key(out, "seq");
  out += std::to_string(a.seq);
  out += "}\n";
  return out;
}

Result<Anchor> parse_anchor(std::string_view text_in) {
  json j = json::parse(text_in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("seq") || !j.contains("hash") ||
      !j["seq"].is_number_integer() || !j["hash"].is_string())
    return make_error(ErrorCode::kInvalidArgument,
                      "audit anchor: expected {\"hash\":..,\"seq\":..}");
  Anchor a;
  a.seq = j["seq"].get<std::int64_t>();
  a.hash = j["hash"].get<std::string>();
  if (a.seq < 0 || !is_lower_hex64(a.hash))
    return make_error(ErrorCode::kInvalidArgument, "audit anchor: bad seq or hash");
  return a;
}

Result<void> write_anchor(const std::filesystem::path& path, const Anchor& a) {
  return write_file_durably(path, format_anchor(a), 0640);
}

Result<std::optional<Anchor>> read_anchor(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) return make_error(ErrorCode::kIo, "audit anchor: " + ec.message());
    return std::optional<Anchor>();
  }
  auto content = read_small_file(path, 4096);
  if (!content) return content.error();
  auto a = parse_anchor(*content);
  if (!a) return a.error();
  return std::optional<Anchor>(std::move(*a));
}

Verifier::Verifier(ChainHasher hasher, Anchor start, std::optional<Anchor> end)
    : hasher_(std::move(hasher)), start_(std::move(start)), end_(std::move(end)) {
  result_.last = start_;
}

void Verifier::fail(std::int64_t seq, std::string reason) {
  result_.ok = false;
  result_.first_bad_seq = seq;
  result_.reason = std::move(reason);
}

void Verifier::reject(std::int64_t seq, std::string reason) {
  if (!result_.ok) return;
  fail(seq, "entry " + std::to_string(seq) + " cannot be read: " + reason);
}

bool Verifier::add(const Event& e) {
  if (!result_.ok) return false;
  const Anchor& last = result_.last;
  const std::int64_t expected = last.seq + 1;
  const auto n = [](std::int64_t v) { return std::to_string(v); };
  if (e.seq != expected) {
    if (e.seq > expected) {
      fail(expected, "entry " + n(expected) + " is missing: entry " + n(e.seq) +
                         " comes after entry " + n(last.seq) +
                         " (entries removed or out of order)");
    } else {
      fail(expected, "expected entry " + n(expected) + " after entry " + n(last.seq) +
                         ", found entry " + n(e.seq) + " (entries duplicated or out of order)");
    }
    return false;
  }
  if (hasher_.hash(e) != e.hash) {
    fail(e.seq, "entry " + n(e.seq) + " does not match its hash: its content was changed" +
                    (hasher_.is_keyed() ? " (or the key is wrong)" : ""));
    return false;
  }
  if (e.prev_hash != last.hash) {
    if (result_.checked == 0 && start_ == Anchor{}) {
      fail(e.seq, "entry 1 does not start a trail: its prev_hash is not the genesis hash");
    } else if (result_.checked == 0) {
      fail(e.seq, "entry " + n(e.seq) + " does not link to the trusted entry " + n(last.seq));
    } else if (hasher_.is_keyed()) {
      fail(e.seq, "entry " + n(e.seq) + " does not link to entry " + n(last.seq) + ": entry " +
                      n(e.seq) + " was forged or rewritten");
    } else {
      fail(e.seq, "entry " + n(e.seq) + " does not link to entry " + n(last.seq) + ": entry " +
                      n(e.seq) + " was forged, or entry " + n(last.seq) +
                      " was rewritten with a recomputed hash");
    }
    return false;
  }
  if (end_ && e.seq == end_->seq) {
    end_seen_ = true;
    if (e.hash != end_->hash) {
      fail(e.seq, "entry " + n(e.seq) +
                      " differs from the anchor: the trail was rewritten up to this entry");
      return false;
    }
  }
  result_.last = anchor_of(e);
  ++result_.checked;
  return true;
}

VerifyResult Verifier::finish() const {
  VerifyResult r = result_;
  if (!r.ok || !end_) return r;
  const Anchor& end = *end_;
  if (end.seq < start_.seq) return r;  // the anchor predates what was checked
  if (end.seq == start_.seq) {
    if (end.hash != start_.hash) {
      r.ok = false;
      r.first_bad_seq = end.seq;
      r.reason = "the trusted start entry " + std::to_string(end.seq) + " differs from the anchor";
    }
  } else if (r.last.seq < end.seq) {
    r.ok = false;
    r.first_bad_seq = r.last.seq + 1;
    r.reason = "the trail ends at entry " + std::to_string(r.last.seq) +
               " but the anchor records entry " + std::to_string(end.seq) + ": entries " +
               std::to_string(r.last.seq + 1) + " to " + std::to_string(end.seq) + " were removed";
  } else if (!end_seen_) {
    r.ok = false;  // cannot happen when entries rise by one; kept so a gap is never "ok"
    r.first_bad_seq = end.seq;
    r.reason = "entry " + std::to_string(end.seq) + " recorded by the anchor was not seen";
  }
  if (r.ok) r.beyond_anchor = r.last.seq - end.seq;
  return r;
}

VerifyResult verify(const std::vector<Event>& events, const std::optional<Anchor>& end,
                    const ChainHasher& hasher, const Anchor& start) {
  Verifier v(hasher, start, end);
  for (const auto& e : events)
    if (!v.add(e)) break;
  return v.finish();
}

}  // namespace dirgw::audit
