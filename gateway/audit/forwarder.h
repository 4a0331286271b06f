// Forwards the audit trail to an audit repository as RFC 5424 syslog over TLS (RFC 5425
// octet-counted frames), each entry a DICOM audit message. The trail itself is the backlog: a
// cursor (the last seq the repository took) is kept beside the catalog, so entries written while
// the repository is unreachable go when it is back, in order, none twice in normal operation.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit.h"
#include "audit/export.h"
#include "audit/syslog.h"
#include "common/result.h"

namespace dirgw::audit {

struct ForwarderOptions {
  std::string host;
  int port = 6514;
  std::filesystem::path ca_file, client_cert, client_key;
  bool verify_peer = true;
  std::filesystem::path cursor_file;  // last seq delivered
  std::chrono::milliseconds retry{5000};
};

class Forwarder {
 public:
  // `read_since(seq, limit)` returns entries with seq > the given one, oldest first.
  using Reader = std::function<Result<std::vector<Event>>(std::int64_t after_seq, int limit)>;
  Forwarder(ForwarderOptions options, ExportContext export_ctx, SyslogContext syslog_ctx,
            Reader reader);
  ~Forwarder();
  void start();
  void stop();
  void wake();  // new entries were written
  std::int64_t delivered() const { return delivered_.load(); }
  std::string last_error() const;

 private:
  void run();
  Result<void> send_batch(const std::vector<Event>& events);

  ForwarderOptions opts_;
  ExportContext export_ctx_;
  SyslogContext syslog_ctx_;
  Reader reader_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false, pending_ = true;
  std::atomic<std::int64_t> delivered_{0};
  std::string last_error_;
};

}  // namespace dirgw::audit
