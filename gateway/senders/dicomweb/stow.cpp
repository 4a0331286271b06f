#include "senders/dicomweb/stow.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>

#include "common/crypto.h"
#include "common/text.h"
#include "senders/dicomweb/stow_answer.h"

namespace dirgw::senders::dicomweb {

namespace {

using detail::Answer;
using detail::clean_uid;
using detail::iequals;
using detail::parse_answer;

// The part's headers. A transcoded copy names its transfer syntax (PS3.18 8.7.3.5.2), so that
// the repository need not guess from the bytes; a file sent as stored names none, as before.
std::string part_header(const Item& item) {
  if (item.transfer_syntax.empty()) return "\r\nContent-Type: application/dicom\r\n\r\n";
  return "\r\nContent-Type: application/dicom; transfer-syntax=" + item.transfer_syntax +
         "\r\n\r\n";
}

std::string hex4(std::uint16_t v) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out = "0x0000";
  for (int i = 0; i < 4; ++i) out[5 - i] = kDigits[(v >> (4 * i)) & 0xF];
  return out;
}

std::string_view warning_meaning(std::uint16_t reason) {
  switch (reason) {
    case 0xB000:
      return "coercion of data elements";
    case 0xB006:
      return "elements discarded";
    case 0xB007:
      return "data set does not match SOP class";
    default:
      return "warning";
  }
}

void fill_all(Outcome& out, std::size_t n, const std::vector<Item>& sent, InstanceStatus status,
              const std::string& reason) {
  out.instances.clear();
  out.instances.reserve(n);
  for (const auto& item : sent) out.instances.push_back({item.sop_instance_uid, status, reason});
}

// ---------------------------------------------------------------------------------------------
// HTTP-date (RFC 9110 section 5.6.7).

std::optional<int> month_number(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i)
    if (iequals(m, kMonths[i])) return i + 1;
  return std::nullopt;
}

std::optional<int> small_number(std::string_view s, std::size_t min_len, std::size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s) {
  std::vector<std::string_view> tok;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '-')) ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != ',' && s[i] != '-') ++i;
    if (i > start) tok.push_back(s.substr(start, i - start));
  }
  std::optional<int> day, month, year;
  std::string_view time;
  if (tok.size() == 5 && month_number(tok[1])) {  // asctime: Sun Nov  6 08:49:37 1994
    month = month_number(tok[1]);
    day = small_number(tok[2], 1, 2);
    time = tok[3];
    year = small_number(tok[4], 4, 4);
  } else if (tok.size() == 6 && iequals(tok[5], "GMT")) {  // IMF-fixdate and RFC 850
    day = small_number(tok[1], 1, 2);
    month = month_number(tok[2]);
    year = small_number(tok[3], 2, 4);
    time = tok[4];
    if (year && tok[3].size() == 2) *year += *year < 70 ? 2000 : 1900;
  } else {
    return std::nullopt;
  }
  if (!day || !month || !year || time.size() != 8 || time[2] != ':' || time[5] != ':')
    return std::nullopt;
  auto hh = small_number(time.substr(0, 2), 2, 2);
  auto mm = small_number(time.substr(3, 2), 2, 2);
  auto ss = small_number(time.substr(6, 2), 2, 2);
  if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 60) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(*year),
                                  std::chrono::month(static_cast<unsigned>(*month)),
                                  std::chrono::day(static_cast<unsigned>(*day))};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days(ymd) + std::chrono::hours(*hh) + std::chrono::minutes(*mm) +
         std::chrono::seconds(*ss);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string make_boundary() { return "dirgw-" + random_hex(16); }

Result<MultipartBody> MultipartBody::open(const std::vector<Item>& items, std::string boundary,
                                          std::vector<SpoolProblem>* problems) {
  // RFC 2046 5.1.1: 1 to 70 characters; ours are token characters, so no quoting is needed.
  if (boundary.empty() || boundary.size() > 70 ||
      !std::all_of(boundary.begin(), boundary.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      })) {
    return make_error(ErrorCode::kInvalidArgument, "unusable multipart boundary");
  }
  if (items.empty()) return make_error(ErrorCode::kInvalidArgument, "empty batch");

  MultipartBody body;
  body.boundary_ = std::move(boundary);
  std::optional<Error> first;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Item& item = items[i];
    std::optional<Error> problem;
    struct stat st {};
    if (::stat(item.path.c_str(), &st) != 0) {
      int err = errno;
      problem = make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                           "spool file " + item.path.string() + ": " + errno_text(err));
    } else if (!S_ISREG(st.st_mode)) {
      problem =
          make_error(ErrorCode::kIo, "spool file " + item.path.string() + " is not a regular file");
    } else if (static_cast<std::uint64_t>(st.st_size) != item.size) {
      problem = make_error(ErrorCode::kIo, "spool file " + item.path.string() + " has " +
                                               std::to_string(st.st_size) + " bytes, expected " +
                                               std::to_string(item.size));
    }
    if (problem) {
      if (!first) first = *problem;
      if (problems != nullptr) problems->push_back({i, *problem});
      continue;
    }
    FileId id{st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
              static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    body.files_.push_back({item.path, id, part_header(item)});
  }
  if (first) return *first;

  auto add_text = [&body](std::string text) {
    Segment s;
    s.offset = body.total_size_;
    s.length = text.size();
    s.text = std::move(text);
    body.total_size_ += s.length;
    body.segments_.push_back(std::move(s));
  };
  for (std::size_t i = 0; i < body.files_.size(); ++i) {
    add_text((i == 0 ? "--" : "\r\n--") + body.boundary_ + body.files_[i].header);
    if (body.files_[i].id.size == 0) continue;
    Segment s;
    s.offset = body.total_size_;
    s.length = body.files_[i].id.size;
    s.file = static_cast<std::ptrdiff_t>(i);
    body.total_size_ += s.length;
    body.segments_.push_back(std::move(s));
  }
  add_text("\r\n--" + body.boundary_ + "--\r\n");
  return body;
}

std::string MultipartBody::content_type() const {
  return "multipart/related; type=\"application/dicom\"; boundary=" + boundary_;
}

std::size_t MultipartBody::segment_at(std::uint64_t offset) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](std::uint64_t o, const Segment& s) { return o < s.offset; });
  return static_cast<std::size_t>(it - segments_.begin()) - 1;
}

bool MultipartBody::open_file(std::size_t index) {
  fd_.reset();
  open_index_ = -1;
  const File& f = files_[index];
  UniqueFd fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    error_ = make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                        "spool file " + f.path.string() + " vanished: " + errno_text(err));
    return false;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    error_ = make_error(ErrorCode::kIo, "fstat " + f.path.string() + ": " + errno_text(errno));
    return false;
  }
  std::int64_t mtime_ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (st.st_dev != f.id.dev || st.st_ino != f.id.ino ||
      static_cast<std::uint64_t>(st.st_size) != f.id.size || mtime_ns != f.id.mtime_ns) {
    error_ = make_error(ErrorCode::kIo, "spool file " + f.path.string() +
                                            " changed since the "
                                            "request was prepared");
    return false;
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  fd_ = std::move(fd);
  open_index_ = static_cast<std::ptrdiff_t>(index);
  return true;
}

std::size_t MultipartBody::read(char* buf, std::size_t max) {
  if (error_) return 0;
  std::size_t done = 0;
  while (done < max && pos_ < total_size_) {
    const Segment& s = segments_[seg_];
    std::uint64_t in_seg = pos_ - s.offset;
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(max - done, s.length - in_seg));
    if (s.file < 0) {
      std::memcpy(buf + done, s.text.data() + in_seg, want);
    } else {
      if (open_index_ != s.file && !open_file(static_cast<std::size_t>(s.file))) return 0;
      ssize_t n = ::pread(fd_.get(), buf + done, want, static_cast<off_t>(in_seg));
      if (n < 0) {
        if (errno == EINTR) continue;
        error_ = make_error(ErrorCode::kIo,
                            "read " + files_[static_cast<std::size_t>(s.file)].path.string() +
                                ": " + errno_text(errno));
        return 0;
      }
      if (n == 0) {
        error_ = make_error(ErrorCode::kIo,
                            "spool file " + files_[static_cast<std::size_t>(s.file)].path.string() +
                                " shrank during the upload");
        return 0;
      }
      want = static_cast<std::size_t>(n);
    }
    done += want;
    pos_ += want;
    if (pos_ == s.offset + s.length) {
      if (s.file >= 0) {
        fd_.reset();
        open_index_ = -1;
      }
      ++seg_;
    }
  }
  return done;
}

Result<void> MultipartBody::seek(std::uint64_t offset) {
  if (offset > total_size_) return make_error(ErrorCode::kInvalidArgument, "seek past the end");
  pos_ = offset;
  seg_ = offset == total_size_ ? segments_.size() : segment_at(offset);
  return {};
}

// ---------------------------------------------------------------------------------------------

ReasonClass classify_failure_reason(std::uint16_t reason) {
  using S = InstanceStatus;
  switch (reason) {
    case 0x0111:
      return {S::kAccepted, "duplicate SOP instance: already stored"};
    case 0x0110:
      return {S::kRetry, "processing failure"};
    case 0x0213:
      return {S::kRetry, "resource limitation"};
    case 0x0210:
      return {S::kRetry, "duplicate invocation"};
    case 0x0117:
      return {S::kPermanent, "invalid SOP instance"};
    case 0x0118:
      return {S::kPermanent, "no such SOP class"};
    case 0x0119:
      return {S::kPermanent, "class/instance conflict"};
    case 0x0122:
      return {S::kPermanent, "SOP class not supported"};
    case 0x0124:
      return {S::kPermanent, "not authorized"};
    case 0xC122:
      return {S::kPermanent, "transfer syntax not supported"};
    default:
      break;
  }
  if ((reason & 0xFF00) == 0xA700) return {S::kRetry, "out of resources"};
  if ((reason & 0xFF00) == 0xA900) return {S::kPermanent, "data set does not match SOP class"};
  if ((reason & 0xF000) == 0xC000) return {S::kPermanent, "cannot understand"};
  // Unknown codes are retried: the scheduler's give-up time bounds the cost, and a transient
  // refusal marked permanent would need a person to notice it.
  return {S::kRetry, "unknown failure reason"};
}

OutcomeKind aggregate_kind(const std::vector<InstanceResult>& instances) {
  bool permanent = false;
  for (const auto& r : instances) {
    if (r.status == InstanceStatus::kRetry) return OutcomeKind::kRetry;
    if (r.status == InstanceStatus::kPermanent) permanent = true;
  }
  return permanent ? OutcomeKind::kPermanent : OutcomeKind::kOk;
}

std::string count_summary(const std::vector<InstanceResult>& instances) {
  std::size_t accepted = 0, retry = 0, permanent = 0;
  for (const auto& r : instances) {
    switch (r.status) {
      case InstanceStatus::kAccepted:
        ++accepted;
        break;
      case InstanceStatus::kRetry:
        ++retry;
        break;
      case InstanceStatus::kPermanent:
        ++permanent;
        break;
    }
  }
  return std::to_string(accepted) + " accepted, " + std::to_string(retry) + " to retry, " +
         std::to_string(permanent) + " failed permanently";
}

namespace {

// What the answer says about each UID. A UID both stored and failed is not evidence of either.
struct Verdict {
  InstanceStatus status;
  std::string reason;
  bool referenced = false;
  bool failed = false;
};
using Verdicts = std::map<std::string, Verdict, std::less<>>;

Verdicts verdicts_of(const Answer& answer) {
  Verdicts verdicts;
  for (const auto& e : answer.referenced) {
    Verdict& v = verdicts[e.uid];
    v.referenced = true;
    v.status = InstanceStatus::kAccepted;
    v.reason = e.reason ? "WarningReason " + hex4(*e.reason) + " (" +
                              std::string(warning_meaning(*e.reason)) + ")"
                        : std::string();
  }
  for (const auto& e : answer.failed) {
    Verdict& v = verdicts[e.uid];
    v.failed = true;
    if (v.referenced) continue;
    if (e.reason) {
      ReasonClass c = classify_failure_reason(*e.reason);
      v.status = c.status;
      v.reason = "FailureReason " + hex4(*e.reason) + " (" + std::string(c.meaning) + ")";
    } else {
      v.status = InstanceStatus::kRetry;
      v.reason = "failed without a FailureReason";
    }
  }
  return verdicts;
}

InstanceResult instance_result(const Item& item, const Verdicts& verdicts, bool is_2xx,
                               const std::string& status_text) {
  auto it = verdicts.find(clean_uid(item.sop_instance_uid));
  if (it == verdicts.end()) {
    if (is_2xx) {
      InstanceResult r{item.sop_instance_uid, InstanceStatus::kRetry,
                       "not acknowledged in the answer"};
      r.unconfirmed = true;
      return r;
    }
    return {item.sop_instance_uid, InstanceStatus::kPermanent,
            status_text + ", not acknowledged in the answer"};
  }
  const Verdict& v = it->second;
  if (v.referenced && v.failed) {
    return {item.sop_instance_uid, InstanceStatus::kRetry, "listed as both stored and failed"};
  }
  return {item.sop_instance_uid, v.status, v.reason};
}

// What the answer held besides our instances: UIDs we did not send, items without a UID.
std::string answer_note(const Verdicts& verdicts, const std::vector<Item>& sent,
                        std::size_t without_uid) {
  std::string note;
  std::size_t unknown = 0;
  for (const auto& [uid, v] : verdicts) {
    bool ours = std::any_of(sent.begin(), sent.end(), [&uid = uid](const Item& item) {
      return clean_uid(item.sop_instance_uid) == uid;
    });
    if (!ours) ++unknown;
  }
  if (unknown > 0) note = std::to_string(unknown) + " UIDs in the answer were not sent";
  if (without_uid > 0) {
    if (!note.empty()) note += "; ";
    note += std::to_string(without_uid) + " answer items without a UID";
  }
  return note;
}

}  // namespace

Outcome parse_stow_response(int http_status, std::string_view content_type, std::string_view body,
                            const std::vector<Item>& sent) {
  Outcome out{};
  out.http_status = http_status;
  const std::string status_text = "HTTP " + std::to_string(http_status);
  auto finish = [&out, &status_text](const std::string& note) {
    out.kind = aggregate_kind(out.instances);
    out.message = status_text + ": " + count_summary(out.instances);
    if (!note.empty()) out.message += " (" + note + ")";
    return out;
  };

  const bool is_2xx = http_status >= 200 && http_status <= 299;
  const bool is_4xx = http_status >= 400 && http_status <= 499;

  // Transient by status alone, whatever the body says (PS3.18 8.5; RFC 9110 15.5.9, 15.6).
  if (http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599)) {
    fill_all(out, sent.size(), sent, InstanceStatus::kRetry, status_text);
    return finish("transient");
  }
  if (http_status >= 300 && http_status <= 399) {
    fill_all(out, sent.size(), sent, InstanceStatus::kPermanent,
             status_text + ", redirect not followed");
    return finish("redirects are not followed: check the destination URL");
  }
  if (!is_2xx && !is_4xx) {
    fill_all(out, sent.size(), sent, InstanceStatus::kRetry, status_text + ", unexpected status");
    return finish("unexpected status");
  }

  std::optional<Answer> answer;
  const bool empty_body = trim_whitespace(body).empty();
  if (!empty_body) answer = parse_answer(content_type, body);
  // JSON or XML that is not a Store Instances Response (an error document, say) says nothing
  // about the instances.
  const bool foreign = answer && !answer->has_module;
  if (!answer || foreign) {
    if (is_2xx) {
      // Success is never assumed without per-instance evidence (docs/stow-rs.md).
      std::string why = empty_body ? "no Store Instances Response"
                        : foreign  ? "answer is not a Store Instances Response"
                                   : "unreadable answer";
      fill_all(out, sent.size(), sent, InstanceStatus::kRetry, status_text + ", " + why);
      return finish(why + ", no evidence of storage");
    }
    fill_all(out, sent.size(), sent, InstanceStatus::kPermanent, status_text);
    return finish(empty_body ? "refused, no answer body"
                  : foreign  ? "refused, answer is not a Store Instances Response"
                             : "refused, answer not understood");
  }

  const Verdicts verdicts = verdicts_of(*answer);
  out.instances.reserve(sent.size());
  for (const auto& item : sent) {
    out.instances.push_back(instance_result(item, verdicts, is_2xx, status_text));
  }
  return finish(answer_note(verdicts, sent, answer->without_uid));
}

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  using std::chrono::milliseconds;
  constexpr milliseconds kCap = std::chrono::hours(24);
  value = trim_whitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 6) return kCap;  // more than 11 days: capped anyway
    std::int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return std::min<milliseconds>(std::chrono::seconds(seconds), kCap);
  }
  auto when = parse_http_date(value);
  if (!when) return std::nullopt;
  if (*when <= now) return milliseconds(0);
  return std::min<milliseconds>(std::chrono::duration_cast<milliseconds>(*when - now), kCap);
}

}  // namespace dirgw::senders::dicomweb
