#include <gtest/gtest.h>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

const char* kPullHead = R"(facility: { name: "Lakeside General", id: LGH }
destinations: [{ name: repo, type: stow-rs, url: "https://dir.example.org/dicom-web" }]
ingest:
  dicom: { ae_title: DIRGW, allowed_callers: [MODALITY1, OLDPACS] }
  pull:
)";

LoadResult load_pull(const std::string& items) {
  return load_string(std::string(kPullHead) + items);
}

using testing_support::expect_error;

TEST(PullConfig, EveryKeyIsRead) {
  auto r = load_pull(
      "    - name: old-pacs\n"
      "      ae_title: OLDPACS\n"
      "      host: 10.0.0.9\n"
      "      port: 4242\n"
      "      calling_ae: DIRGWQR\n"
      "      move_destination: DIRGW\n"
      "      every: 10m\n"
      "      look_back: 2d\n"
      "      modalities: [CT, MR]\n"
      "      retry: { initial: 1m, max: 2h }\n"
      "      timeout: 30s\n"
      "    - { name: other, ae_title: OLDPACS, host: pacs2.example.org }\n");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const auto& p = r.config->ingest.pull;
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "old-pacs");
  EXPECT_EQ(p[0].ae_title, "OLDPACS");
  EXPECT_EQ(p[0].host, "10.0.0.9");
  EXPECT_EQ(p[0].port, 4242);
  EXPECT_EQ(p[0].calling_ae, "DIRGWQR");
  EXPECT_EQ(p[0].move_destination, "DIRGW");
  EXPECT_EQ(p[0].every, std::chrono::minutes(10));
  EXPECT_EQ(p[0].look_back, std::chrono::hours(48));
  EXPECT_EQ(p[0].modalities, (std::vector<std::string>{"CT", "MR"}));
  EXPECT_EQ(p[0].retry_initial, std::chrono::minutes(1));
  EXPECT_EQ(p[0].retry_max, std::chrono::hours(2));
  EXPECT_EQ(p[0].timeout, std::chrono::seconds(30));
  EXPECT_EQ(p[1].port, 104);  // the defaults
  EXPECT_EQ(p[1].every, std::chrono::minutes(15));
  EXPECT_TRUE(p[1].modalities.empty());
}

TEST(PullConfig, MissingKeysAreNamed) {
  auto r = load_pull("    - { port: 104 }\n");
  expect_error(r, "ingest.pull[0].name", 6, "missing");
  expect_error(r, "ingest.pull[0].ae_title", 6, "missing");
  expect_error(r, "ingest.pull[0].host", 6, "missing");
}

TEST(PullConfig, BadValuesNameKeyAndLine) {
  auto r = load_pull(
      "    - name: a b\n"
      "      ae_title: OLDPACS\n"
      "      host: pacs\n"
      "      port: 70000\n"
      "      every: soon\n"
      "      modalities: [ct]\n"
      "      retry: { initial: 1m, later: 2h }\n"
      "      colour: blue\n");
  expect_error(r, "ingest.pull[0].name", 6, "letters, digits");
  expect_error(r, "ingest.pull[0].port", 9, "1 to 65535");
  expect_error(r, "ingest.pull[0].every", 10, "duration");
  expect_error(r, "ingest.pull[0].modalities[0]", 11, "modality code");
  expect_error(r, "ingest.pull[0].retry.later", 12, "unknown key");
  expect_error(r, "ingest.pull[0].colour", 13, "unknown key");
}

TEST(PullConfig, ThePacsMustBeAllowedToCallUsBack) {
  auto r = load_pull("    - { name: a, ae_title: STRANGER, host: pacs }\n");
  expect_error(r, "ingest.pull[0].ae_title", 6, "allowed_callers");
}

TEST(PullConfig, RetrieveByGetNeedsNoCallBack) {
  auto r = load_pull("    - { name: a, ae_title: STRANGER, host: pacs, retrieve: get }\n");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_EQ(r.config->ingest.pull[0].retrieve, "get");
  auto moved = load_pull("    - { name: a, ae_title: OLDPACS, host: pacs }\n");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved.config->ingest.pull[0].retrieve, "move");  // the default
}

TEST(PullConfig, RetrieveMistakes) {
  auto r = load_pull(
      "    - { name: a, ae_title: OLDPACS, host: pacs, retrieve: fetch }\n"
      "    - { name: b, ae_title: OLDPACS, host: pacs, retrieve: get, move_destination: X }\n");
  expect_error(r, "ingest.pull[0].retrieve", 6, "move or get");
  expect_error(r, "ingest.pull[1].move_destination", 7, "retrieve: move");
}

TEST(PullConfig, NamesAreUnique) {
  auto r = load_pull(
      "    - { name: a, ae_title: OLDPACS, host: pacs }\n"
      "    - { name: a, ae_title: OLDPACS, host: pacs2 }\n");
  expect_error(r, "ingest.pull[1].name", 7, "used twice");
}

}  // namespace
}  // namespace dirgw::config
