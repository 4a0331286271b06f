// STOW-RS bytes (DICOM PS3.18 section 10.5): the multipart/related request body, streamed from
// spool files, and the Store Instances Response (PS3.18 Annex I) turned into an Outcome.
// No sockets here: http.cpp carries the bytes. See docs/stow-rs.md for the decisions.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "senders/sender.h"

namespace dirgw::senders::dicomweb {

// A fresh multipart boundary: "dirgw-" and 32 random hex characters. 128 random bits make a
// collision with file content negligible, so files are not scanned for it.
std::string make_boundary();

// An item whose spool file cannot be sent as it is (missing, unreadable, size differs).
struct SpoolProblem {
  std::size_t index;  // into the batch
  Error error;
};

// The multipart/related body of one STOW-RS request, produced on demand a chunk at a time:
// the files are read while libcurl sends, never held in memory whole. Each part is
//   --<boundary> CRLF "Content-Type: application/dicom" CRLF CRLF <file bytes> CRLF
// ("application/dicom; transfer-syntax=<uid>" for an item with Item::transfer_syntax)
// and the body ends with --<boundary>-- CRLF (RFC 2046 section 5.1.1, RFC 2387).
class MultipartBody {
 public:
  // Checks every file now (exists, is a regular file, has exactly item.size bytes) so that
  // Content-Length is known before the first byte goes out. On failure the error describes
  // the first bad item and `problems`, when given, lists every bad one.
  static Result<MultipartBody> open(const std::vector<Item>& items, std::string boundary,
                                    std::vector<SpoolProblem>* problems = nullptr);

  MultipartBody(MultipartBody&&) noexcept = default;
  MultipartBody& operator=(MultipartBody&&) noexcept = default;
  MultipartBody(const MultipartBody&) = delete;
  MultipartBody& operator=(const MultipartBody&) = delete;
  ~MultipartBody() = default;

  // multipart/related; type="application/dicom"; boundary=<boundary>
  std::string content_type() const;
  const std::string& boundary() const { return boundary_; }
  std::uint64_t total_size() const { return total_size_; }
  std::uint64_t position() const { return pos_; }

  // Copies up to `max` next bytes into `buf`; 0 at the end of the body. A file that changed,
  // shrank or vanished since open() stops the stream: read() returns 0 and error() is set.
  std::size_t read(char* buf, std::size_t max);
  // Moves to an absolute offset (libcurl rewinds on redirects, authentication and retried
  // connections). Clears nothing: a failed body stays failed.
  Result<void> seek(std::uint64_t offset);
  Result<void> rewind() { return seek(0); }

  bool failed() const { return error_.has_value(); }
  const std::optional<Error>& error() const { return error_; }

 private:
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
  };
  struct Segment {
    std::uint64_t offset = 0;  // in the body
    std::uint64_t length = 0;
    std::string text;          // framing, when file < 0
    std::ptrdiff_t file = -1;  // index into files_
  };
  struct File {
    std::filesystem::path path;
    FileId id;
    std::string header;  // CRLF Content-Type CRLF CRLF, after the boundary line
  };

  MultipartBody() = default;
  std::size_t segment_at(std::uint64_t offset) const;
  bool open_file(std::size_t index);

  std::string boundary_;
  std::vector<File> files_;
  std::vector<Segment> segments_;
  std::uint64_t total_size_ = 0;
  std::uint64_t pos_ = 0;
  std::size_t seg_ = 0;
  std::ptrdiff_t open_index_ = -1;  // which file fd_ holds
  UniqueFd fd_;
  std::optional<Error> error_;
};

// Turns a STOW-RS answer into an Outcome with one InstanceResult per sent item (same order).
// `content_type` may be empty (Orthanc 1.10 sends none with 4xx answers): the body is then
// recognised by its first character. Understands DICOM JSON (PS3.18 F.2) and DICOM XML
// (PS3.19 NativeDicomModel). retry_after and bytes_sent are left for the caller to fill.
Outcome parse_stow_response(int http_status, std::string_view content_type, std::string_view body,
                            const std::vector<Item>& sent);

// What a FailureReason (0008,1197) means for the instance (PS3.18 Table I.2-2, PS3.7 Annex C).
struct ReasonClass {
  InstanceStatus status;
  std::string_view meaning;
};
ReasonClass classify_failure_reason(std::uint16_t reason);

// Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date (IMF-fixdate, RFC 850,
// asctime). Dates in the past give 0; values are capped at 24 hours. nullopt when unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// The kind of the request as a whole, from its instances (see OutcomeKind).
OutcomeKind aggregate_kind(const std::vector<InstanceResult>& instances);

// "accepted 3, retry 1, permanent 0": the counts that go into messages.
std::string count_summary(const std::vector<InstanceResult>& instances);

}  // namespace dirgw::senders::dicomweb
