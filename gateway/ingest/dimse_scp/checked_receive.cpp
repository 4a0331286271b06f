#include "ingest/dimse_scp/checked_receive.h"

#include <memory>
#include <string>

#include "common/dcmtk_guard.h"
#include "ingest/prescan/prescan.h"

// clang-format off
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcostrma.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/dimse.h"
// clang-format on

namespace dirgw::ingest {

namespace {

constexpr unsigned short kRefused = 2;  // beside dcmtk_guard's kDcmtkThrew, in its module

OFCondition refused(const std::string& why) {
  return OFCondition(kDcmtkGuardModule, kRefused, OF_error, why.c_str());
}

// Appends what DCMTK writes to a string, up to a limit; past it, the write fails and DCMTK ends
// the receive.
class StringConsumer final : public DcmConsumer {
 public:
  StringConsumer(std::string& out, std::size_t limit) : out_(out), limit_(limit) {}
  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool isFlushed() const override { return OFTrue; }
  offile_off_t avail() const override {
    return static_cast<offile_off_t>(out_.size() < limit_ ? limit_ - out_.size() : 0);
  }
  offile_off_t write(const void* buf, offile_off_t len) override {
    if (len < 0 || out_.size() + static_cast<std::size_t>(len) > limit_) {
      over_ = true;
      status_ = EC_StreamNotifyClient;
      return 0;
    }
    out_.append(static_cast<const char*>(buf), static_cast<std::size_t>(len));
    return len;
  }
  void flush() override {}
  bool over() const { return over_; }

 private:
  std::string& out_;
  std::size_t limit_;
  OFCondition status_ = EC_Normal;
  bool over_ = false;
};

// DcmOutputStream's constructor is protected; its consumer must be built before it.
struct ConsumerHolder {
  ConsumerHolder(std::string& out, std::size_t limit) : consumer(out, limit) {}
  StringConsumer consumer;
};
class StringStream final : private ConsumerHolder, public DcmOutputStream {
 public:
  StringStream(std::string& out, std::size_t limit)
      : ConsumerHolder(out, limit), DcmOutputStream(&consumer) {}
  bool over() const { return consumer.over(); }
};

}  // namespace

OFCondition receive_dataset_checked(T_ASC_Association* assoc, int timeout_seconds,
                                    T_ASC_PresentationContextID* pres_id, DcmDataset** out,
                                    std::size_t max_bytes) {
  *out = nullptr;
  std::string bytes;
  StringStream stream(bytes, max_bytes);
  OFCondition cond = dcmtk_guard([&] {
    return DIMSE_receiveDataSetInFile(assoc, DIMSE_NONBLOCKING, timeout_seconds, pres_id, &stream,
                                      nullptr, nullptr);
  });
  if (stream.over())
    return refused("data set larger than " + std::to_string(max_bytes >> 20) + " MiB");
  if (cond.bad()) return cond;
  T_ASC_PresentationContext pc;
  if (ASC_findAcceptedPresentationContext(assoc->params, *pres_id, &pc).bad())
    return refused("data set on a presentation context that was not accepted");
  const std::string syntax = pc.acceptedTransferSyntax;
  if (auto scan = prescan_dataset(bytes, syntax, PrescanLimits{}); !scan)
    return refused("data set refused before parsing: " + scan.error().detail);
  auto ds = std::make_unique<DcmDataset>();
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  in.setEos();
  ds->transferInit();
  cond = dcmtk_guard([&] {
    return ds->read(in, DcmXfer(syntax.c_str()).getXfer(), EGL_noChange, DCM_MaxReadLength);
  });
  ds->transferEnd();
  if (cond.bad()) return cond;
  *out = ds.release();
  return EC_Normal;
}

}  // namespace dirgw::ingest
