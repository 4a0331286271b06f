#include "ingest/dimse_scp/watched_layer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "ingest/dimse_scp/pdu_watch.h"

// clang-format off
#include "dcmtk/dcmnet/dcmtrans.h"
// clang-format on

namespace dirgw::ingest {

namespace {

thread_local std::optional<std::string> t_verdict;

// Passes every call to the connection the inner layer made; reads go through the watch first.
// While the watch holds a data set back, the connection reads ahead (into `ahead_`) until the
// data set is whole and checked, then hands DCMTK what it read, in order.
class WatchedConnection final : public DcmTransportConnection {
 public:
  WatchedConnection(DcmNativeSocketType socket, DcmTransportConnection* inner, bool check_answers)
      : DcmTransportConnection(socket),
        inner_(inner),
        watch_(PduWatch::kDefaultMaxCommandBytes, check_answers) {}

  OFCondition serverSideHandshake() override { return inner_->serverSideHandshake(); }
  OFCondition clientSideHandshake() override { return inner_->clientSideHandshake(); }
  OFCondition renegotiate(const char* suite) override { return inner_->renegotiate(suite); }

  ssize_t read(void* buf, size_t nbyte) override {
    if (watch_.tripped()) return refuse();
    if (ahead_at_ < ahead_.size()) return serve(buf, nbyte);
    const ssize_t n = inner_->read(buf, nbyte);
    if (n <= 0 || !watch_.watching()) return n;
    const auto* bytes = static_cast<const unsigned char*>(buf);
    if (!feed(bytes, static_cast<size_t>(n))) return refuse();
    if (!watch_.holding()) return n;
    // Held: nothing of this goes to DCMTK until the data set is whole and checked.
    ahead_.assign(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n));
    ahead_at_ = 0;
    std::string chunk(64 * 1024, '\0');
    while (watch_.holding()) {
      const ssize_t m = inner_->read(chunk.data(), chunk.size());
      if (m <= 0) return refuse();  // the peer stopped or went silent mid-data set
      if (!feed(reinterpret_cast<const unsigned char*>(chunk.data()), static_cast<size_t>(m)))
        return refuse();
      ahead_.append(chunk.data(), static_cast<size_t>(m));
    }
    return serve(buf, nbyte);
  }
  ssize_t write(void* buf, size_t nbyte) override { return inner_->write(buf, nbyte); }
  void close() override { inner_->close(); }
  void closeTransportConnection() override { inner_->closeTransportConnection(); }
  unsigned long getPeerCertificateLength() override { return inner_->getPeerCertificateLength(); }
  unsigned long getPeerCertificate(void* buf, unsigned long len) override {
    return inner_->getPeerCertificate(buf, len);
  }
  OFBool networkDataAvailable(int timeout) override {
    return watch_.tripped() || ahead_at_ < ahead_.size() ? OFTrue
                                                         : inner_->networkDataAvailable(timeout);
  }
  OFBool isTransparentConnection() override { return inner_->isTransparentConnection(); }
  OFString& dumpConnectionParameters(OFString& str) override {
    return inner_->dumpConnectionParameters(str);
  }

 private:
  bool feed(const unsigned char* bytes, size_t n) {
    auto r = watch_.feed(bytes, n);
    if (!r) t_verdict = r.error().detail;
    return r.ok();
  }
  ssize_t refuse() {
    ahead_.clear();
    ahead_at_ = 0;
    inner_->closeTransportConnection();
    errno = ECONNRESET;
    return -1;
  }
  ssize_t serve(void* buf, size_t nbyte) {
    const size_t k = std::min(nbyte, ahead_.size() - ahead_at_);
    std::memcpy(buf, ahead_.data() + ahead_at_, k);
    ahead_at_ += k;
    if (ahead_at_ == ahead_.size()) {
      ahead_.clear();
      ahead_at_ = 0;
    }
    return static_cast<ssize_t>(k);
  }

  std::unique_ptr<DcmTransportConnection> inner_;
  PduWatch watch_;
  std::string ahead_;  // read ahead while a data set was held, not yet handed to DCMTK
  size_t ahead_at_ = 0;
};

}  // namespace

DcmTransportConnection* watch_connection(DcmNativeSocketType socket, DcmTransportConnection* inner,
                                         bool check_answers) {
  if (inner == nullptr) return nullptr;
  return new WatchedConnection(socket, inner, check_answers);
}

DcmTransportConnection* WatchedLayer::createConnection(DcmNativeSocketType socket, OFBool secure) {
  return watch_connection(socket, inner_ != nullptr
                                      ? inner_->createConnection(socket, secure)
                                      : DcmTransportLayer::createConnection(socket, secure));
}

std::optional<std::string> take_watch_verdict() {
  std::optional<std::string> out;
  out.swap(t_verdict);
  return out;
}

std::string dimse_failure_text(const OFCondition& cond) {
  return take_watch_verdict().value_or(cond.text());
}

}  // namespace dirgw::ingest
