// Issue 15's configuration keys: destinations[].verify (short and long forms) and
// retention.keep_after_verified. Each key read, each error with its key, line and what is
// allowed.
#include <gtest/gtest.h>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

using std::chrono::seconds;
using testing_support::expect_error;

const char* kBase = R"yaml(facility: { name: Lakeside }
ingest: { dicom: { allowed_callers: [PACS1] } }
retention: { spool_floor: 2GiB, keep_after_verified: 90s }
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
    verify: { mode: qido, delay: 2s, retry: 1s, max_resends: 5, page_size: 50, timeout: 10s }
  - name: short
    url: https://dir2.example.org/dicom-web
    verify: none
  - name: pacs
    type: dimse
    dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }
  - name: plain
    url: https://dir3.example.org/dicom-web
)yaml";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kBase;
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
  return s;
}

TEST(VerificationConfig, EveryKeyIsRead) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const Config& c = *r.config;
  EXPECT_EQ(c.retention.keep_after_verified, seconds(90));
  const auto& v = c.destinations[0].verify;
  EXPECT_EQ(v.mode, "qido");
  EXPECT_EQ(v.delay, seconds(2));
  EXPECT_EQ(v.retry, seconds(1));
  EXPECT_EQ(v.max_resends, 5);
  EXPECT_EQ(v.page_size, 50);
  EXPECT_EQ(v.timeout, seconds(10));
  EXPECT_FALSE(c.destinations[1].verify.enabled());
  EXPECT_FALSE(c.destinations[2].verify.enabled()) << "dimse: none unless asked";
  EXPECT_EQ(c.destinations[3].verify.mode, "qido") << "stow-rs verifies by default";
  EXPECT_EQ(c.destinations[3].verify.delay, seconds(60));
}

TEST(VerificationConfig, StorageCommitmentForDimse) {
  auto r = load_string(with("dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }",
                            "dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }\n"
                            "    verify: { mode: storage-commitment, timeout: 20s }"));
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_EQ(r.config->destinations[2].verify.mode, "storage-commitment");
  EXPECT_TRUE(r.config->destinations[2].verify.enabled());
  EXPECT_EQ(r.config->destinations[2].verify.timeout, seconds(20));
  auto s = load_string(with("dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }",
                            "dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }\n"
                            "    verify: storage-commitment"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.config->destinations[2].verify.mode, "storage-commitment");
}

TEST(VerificationConfig, DefaultsKeepFilesAWeek) {
  auto r = load_string(with("retention: { spool_floor: 2GiB, keep_after_verified: 90s }\n", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->retention.keep_after_verified, std::chrono::hours(24 * 7));
}

TEST(VerificationConfig, ErrorsNameKeyLineAndWhatIsAllowed) {
  expect_error(load_string(with("verify: none", "verify: sometimes")), "destinations[1].verify", 10,
               "must be qido, storage-commitment or none");
  expect_error(load_string(with("mode: qido,", "mode: storage-commitment,")),
               "destinations[0].verify.mode", 7, "storage-commitment needs a dimse destination");
  expect_error(load_string(with("max_resends: 5", "max_resends: 500")),
               "destinations[0].verify.max_resends", 7, "from 0 to 100");
  expect_error(load_string(with("page_size: 50", "page_size: 0")),
               "destinations[0].verify.page_size", 7, "from 1 to 10000");
  expect_error(load_string(with("delay: 2s", "delay: soon")), "destinations[0].verify.delay", 7,
               "must be a duration");
  expect_error(load_string(with("timeout: 10s", "timeout: 10s, when: now")),
               "destinations[0].verify.when", 7, "unknown key");
  expect_error(load_string(with("keep_after_verified: 90s", "keep_after_verified: forever")),
               "retention.keep_after_verified", 3, "must be a duration");
  expect_error(load_string(with("keep_after_verified: 90s", "keep: 90s")), "retention.keep", 3,
               "unknown key (allowed here: keep_after_verified, report_days, spool_floor)");
  expect_error(load_string(with("dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }",
                                "dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }\n    verify: qido")),
               "destinations[2].verify", 14, "qido needs a stow-rs destination");
}

}  // namespace
}  // namespace dirgw::config
