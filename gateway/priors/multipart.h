// A push parser for the multipart/related body of a WADO-RS answer (PS3.18 8.6.1.2, RFC 2046):
// bytes go in as they arrive, each part's body comes out in pieces, so a study is never held in
// memory (the caller writes each part to a spool temporary). Pure: no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw::priors {

// The boundary parameter of a multipart Content-Type header value ("" when there is none).
std::string multipart_boundary(std::string_view content_type);

class MultipartParser {
 public:
  struct Handler {
    std::function<Result<void>(std::string_view part_headers)> begin_part;
    std::function<Result<void>(std::string_view bytes)> data;
    std::function<Result<void>()> end_part;
  };
  MultipartParser(std::string boundary, Handler handler, std::size_t max_header_bytes = 16384);

  // An error from the handler or a malformed body stops the parser; later calls return it again.
  Result<void> feed(std::string_view bytes);
  // At the end of the body: an error unless the closing delimiter was seen.
  Result<void> finish();
  int parts() const { return parts_; }

 private:
  enum class State { kPreamble, kAfterDelimiter, kHeaders, kBody, kDone };
  Result<void> step(bool& progressed);

  std::string delimiter_;  // "\r\n--" + boundary (the first one may come without the CRLF)
  Handler handler_;
  std::size_t max_header_bytes_;
  std::string buffer_;
  State state_ = State::kPreamble;
  std::optional<Error> failed_;
  int parts_ = 0;
};

}  // namespace dirgw::priors
