#include "priors/multipart.h"

#include <algorithm>
#include <cctype>

namespace dirgw::priors {

std::string multipart_boundary(std::string_view ct) {
  std::string lower(ct);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lower.find("boundary=");
  if (at == std::string::npos) return {};
  std::string_view v = ct.substr(at + 9);
  if (!v.empty() && v.front() == '"') {
    v.remove_prefix(1);
    const auto end = v.find('"');
    return end == std::string_view::npos ? std::string() : std::string(v.substr(0, end));
  }
  const auto end = v.find_first_of("; \t\r\n");
  return std::string(v.substr(0, end));
}

MultipartParser::MultipartParser(std::string boundary, Handler handler,
                                 std::size_t max_header_bytes)
    : delimiter_("\r\n--" + std::move(boundary)),
      handler_(std::move(handler)),
      max_header_bytes_(max_header_bytes) {}

Result<void> MultipartParser::feed(std::string_view bytes) {
  if (failed_) return *failed_;
  buffer_.append(bytes);
  bool progressed = true;
  while (progressed && state_ != State::kDone) {
    progressed = false;
    if (auto r = step(progressed); !r) {
      failed_ = r.error();
      return r.error();
    }
  }
  return {};
}

// One move of the state machine over buffer_; progressed says whether more may follow.
Result<void> MultipartParser::step(bool& progressed) {
  switch (state_) {
    case State::kPreamble: {
      // The first delimiter may open the body without the CRLF before it.
      const std::string_view first(delimiter_.data() + 2, delimiter_.size() - 2);
      if (buffer_.size() < first.size()) return {};
      if (buffer_.compare(0, first.size(), first) == 0) {
        buffer_.erase(0, first.size());
      } else {
        const std::size_t at = buffer_.find(delimiter_);
        if (at == std::string::npos) {
          if (buffer_.size() > max_header_bytes_)
            return make_error(ErrorCode::kProtocol, "WADO-RS answer: no multipart boundary");
          return {};
        }
        buffer_.erase(0, at + delimiter_.size());
      }
      state_ = State::kAfterDelimiter;
      progressed = true;
      return {};
    }
    case State::kAfterDelimiter: {
      if (buffer_.size() < 2) return {};
      if (buffer_.compare(0, 2, "--") == 0) {
        state_ = State::kDone;
        return {};
      }
      const auto eol = buffer_.find("\r\n");
      if (eol == std::string::npos) return {};
      buffer_.erase(0, eol + 2);  // transport padding, then CRLF
      state_ = State::kHeaders;
      progressed = true;
      return {};
    }
    case State::kHeaders: {
      const auto end = buffer_.find("\r\n\r\n");
      const bool empty_headers = buffer_.rfind("\r\n", 0) == 0;
      if (end == std::string::npos && !empty_headers) {
        if (buffer_.size() > max_header_bytes_)
          return make_error(ErrorCode::kProtocol, "WADO-RS answer: part headers too long");
        return {};
      }
      const std::size_t len = empty_headers ? 0 : end;
      if (auto r = handler_.begin_part(std::string_view(buffer_).substr(0, len)); !r) return r;
      ++parts_;
      buffer_.erase(0, empty_headers ? 2 : end + 4);
      state_ = State::kBody;
      progressed = true;
      return {};
    }
    case State::kBody: {
      const auto at = buffer_.find(delimiter_);
      if (at == std::string::npos) {
        // Keep what could be the start of a delimiter; hand on the rest.
        const std::size_t keep = std::min(buffer_.size(), delimiter_.size() - 1);
        const std::size_t give = buffer_.size() - keep;
        if (give > 0) {
          if (auto r = handler_.data(std::string_view(buffer_).substr(0, give)); !r) return r;
          buffer_.erase(0, give);
        }
        return {};
      }
      if (at > 0)
        if (auto r = handler_.data(std::string_view(buffer_).substr(0, at)); !r) return r;
      if (auto r = handler_.end_part(); !r) return r;
      buffer_.erase(0, at + delimiter_.size());
      state_ = State::kAfterDelimiter;
      progressed = true;
      return {};
    }
    case State::kDone:
      return {};
  }
  return {};
}

Result<void> MultipartParser::finish() {
  if (failed_) return *failed_;
  if (state_ != State::kDone)
    return make_error(ErrorCode::kProtocol, "WADO-RS answer ended before its closing boundary");
  return {};
}

}  // namespace dirgw::priors
