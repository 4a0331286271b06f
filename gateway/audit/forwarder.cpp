#include "audit/forwarder.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

#include "common/files.h"

namespace dirgw::audit {

namespace {
std::string ssl_error(const char* what) {
  char buf[256];
  unsigned long e = ERR_get_error();
  ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + (e != 0 ? buf : "connection failed");
}
}  // namespace

Forwarder::Forwarder(ForwarderOptions options, ExportContext export_ctx, SyslogContext syslog_ctx,
                     Reader reader)
    : opts_(std::move(options)),
      export_ctx_(std::move(export_ctx)),
      syslog_ctx_(std::move(syslog_ctx)),
      reader_(std::move(reader)) {
  if (auto c = read_small_file(opts_.cursor_file, 64); c) {
    try {
      delivered_ = std::stoll(*c);
    } catch (...) {
      delivered_ = 0;
    }
  }
}

Forwarder::~Forwarder() { stop(); }

void Forwarder::start() { thread_ = std::thread(&Forwarder::run, this); }

void Forwarder::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Forwarder::wake() {
  {
    std::lock_guard lock(mutex_);
    pending_ = true;
  }
  cv_.notify_all();
}

std::string Forwarder::last_error() const {
  std::lock_guard lock(const_cast<std::mutex&>(mutex_));
  return last_error_;
}

void Forwarder::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      // Woken by new entries, or after `retry` when the repository was unreachable.
      cv_.wait_for(lock, opts_.retry, [this] { return stop_ || pending_; });
      if (stop_) return;
      pending_ = false;
    }
    for (;;) {
      auto events = reader_(delivered_.load(), 200);
      if (!events || events->empty()) break;
      auto sent = send_batch(*events);
      std::lock_guard lock(mutex_);
      if (!sent) {
        last_error_ = sent.error().detail;
        break;  // the backlog waits in the trail; retried after opts_.retry
      }
      last_error_.clear();
      if (stop_) return;
    }
  }
}

// One TLS connection per batch: simple, and a repository that drops idle connections costs
// nothing. The cursor advances only after the whole batch was written.
Result<void> Forwarder::send_batch(const std::vector<Event>& events) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  if (!ctx) return make_error(ErrorCode::kTls, ssl_error("SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (opts_.verify_peer) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!opts_.ca_file.empty()
            ? SSL_CTX_load_verify_locations(ctx.get(), opts_.ca_file.c_str(), nullptr) != 1
            : SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      return make_error(ErrorCode::kTls, ssl_error("CA file"));
  }
  if (!opts_.client_cert.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx.get(), opts_.client_cert.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx.get(), opts_.client_key.c_str(), SSL_FILETYPE_PEM) != 1))
    return make_error(ErrorCode::kTls, ssl_error("client certificate"));
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio(BIO_new_ssl_connect(ctx.get()), BIO_free_all);
  if (!bio) return make_error(ErrorCode::kTls, ssl_error("BIO_new_ssl_connect"));
  SSL* ssl = nullptr;
  BIO_get_ssl(bio.get(), &ssl);
  SSL_set_tlsext_host_name(ssl, opts_.host.c_str());
  if (opts_.verify_peer) SSL_set1_host(ssl, opts_.host.c_str());
  const std::string target = opts_.host + ":" + std::to_string(opts_.port);
  BIO_set_conn_hostname(bio.get(), target.c_str());
  if (BIO_do_connect(bio.get()) <= 0 || BIO_do_handshake(bio.get()) <= 0)
    return make_error(ErrorCode::kNetwork, ssl_error("audit repository unreachable"));
  std::int64_t last = delivered_.load();
  for (const auto& e : events) {
    const std::string frame =
        octet_counted(rfc5424_message(e, to_dicom_audit_xml(e, export_ctx_, false), syslog_ctx_));
    std::size_t off = 0;
    while (off < frame.size()) {
      int n = BIO_write(bio.get(), frame.data() + off, static_cast<int>(frame.size() - off));
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    if (off < frame.size()) break;
    last = e.seq;
  }
  BIO_flush(bio.get());
  if (last != delivered_.load()) {
    delivered_ = last;
    (void)write_file_durably(opts_.cursor_file, std::to_string(last), 0640);
  }
  if (last < events.back().seq)
    return make_error(ErrorCode::kNetwork, "audit repository closed the connection");
  return {};
}

}  // namespace dirgw::audit
