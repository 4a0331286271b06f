#include "ingest/dimse_scp/watched_layer.h"

#include <cerrno>
#include <memory>

#include "ingest/dimse_scp/pdu_watch.h"

// clang-format off
#include "dcmtk/dcmnet/dcmtrans.h"
// clang-format on

namespace dirgw::ingest {

namespace {

thread_local std::optional<std::string> t_verdict;

// Passes every call to the connection the inner layer made; reads go through the watch first.
class WatchedConnection final : public DcmTransportConnection {
 public:
  WatchedConnection(DcmNativeSocketType socket, DcmTransportConnection* inner)
      : DcmTransportConnection(socket), inner_(inner) {}

  OFCondition serverSideHandshake() override { return inner_->serverSideHandshake(); }
  OFCondition clientSideHandshake() override { return inner_->clientSideHandshake(); }
  OFCondition renegotiate(const char* suite) override { return inner_->renegotiate(suite); }

  ssize_t read(void* buf, size_t nbyte) override {
    if (watch_.tripped()) {
      errno = ECONNRESET;
      return -1;
    }
    const ssize_t n = inner_->read(buf, nbyte);
    if (n > 0 && watch_.watching()) {
      if (auto r = watch_.feed(static_cast<const unsigned char*>(buf), static_cast<size_t>(n));
          !r) {
        t_verdict = r.error().detail;
        inner_->closeTransportConnection();
        errno = ECONNRESET;
        return -1;
      }
    }
    return n;
  }
  ssize_t write(void* buf, size_t nbyte) override { return inner_->write(buf, nbyte); }
  void close() override { inner_->close(); }
  void closeTransportConnection() override { inner_->closeTransportConnection(); }
  unsigned long getPeerCertificateLength() override { return inner_->getPeerCertificateLength(); }
  unsigned long getPeerCertificate(void* buf, unsigned long len) override {
    return inner_->getPeerCertificate(buf, len);
  }
  OFBool networkDataAvailable(int timeout) override {
    return watch_.tripped() ? OFTrue : inner_->networkDataAvailable(timeout);
  }
  OFBool isTransparentConnection() override { return inner_->isTransparentConnection(); }
  OFString& dumpConnectionParameters(OFString& str) override {
    return inner_->dumpConnectionParameters(str);
  }

 private:
  std::unique_ptr<DcmTransportConnection> inner_;
  PduWatch watch_;
};

}  // namespace

DcmTransportConnection* watch_connection(DcmNativeSocketType socket,
                                         DcmTransportConnection* inner) {
  if (inner == nullptr) return nullptr;
  return new WatchedConnection(socket, inner);
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
