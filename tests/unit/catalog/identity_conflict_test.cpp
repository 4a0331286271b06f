// Issue 17 item 1: one SOP Instance UID received again with another patient or study identity is
// held, both versions kept, nothing superseded, and a policy re-run keeps the conflict.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "catalog/catalog.h"
#include "fakes/fake_clock.h"

namespace dirgw::catalog {
namespace {

namespace fs = std::filesystem;

class IdentityConflictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-conflict-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    auto c = Catalog::open(dir_ / "catalog.db", {"hdirs"}, clock_);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    catalog_ = std::move(c).value();
  }
  void TearDown() override {
    catalog_.reset();
    fs::remove_all(dir_);
  }

  static NewInstance instance(const std::string& study, const std::string& sop, char sha,
                              const std::string& patient) {
    NewInstance in;
    in.study_uid = study;
    in.series_uid = study + ".1";
    in.sop_instance_uid = sop;
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.modality = "CT";
    in.sha256 = std::string(64, sha);
    in.size = 100;
    in.patient_identity = "id=" + patient + "\x1fissuer=LGH";
    return in;
  }

  std::string row(const std::string& study) {
    auto d = catalog_->queries.study(study);
    if (!d || !*d || (*d)->destinations.empty()) return "<none>";
    return (*d)->destinations[0].state + " " + (*d)->destinations[0].reason;
  }

  std::vector<std::string> delivery_states(const std::string& study) {
    std::vector<std::string> out;
    auto d = catalog_->queries.study(study);
    for (const auto& i : (*d)->instances)
      for (const auto& del : i.deliveries) out.push_back(del.state);
    return out;
  }

  fs::path dir_;
  testing::FakeClock clock_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(IdentityConflictTest, OtherPatientSameStudyHoldsTheStudyAndSupersedesNothing) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'a', "P1")));
  auto r = catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'b', "P2"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, RecordKind::kIdentityConflict);
  EXPECT_EQ(row("1.2.3"), std::string("QUARANTINED ") + reason::kIdentityConflictText);
  // Both versions kept; neither superseded (nothing is sent while quarantined).
  EXPECT_EQ(delivery_states("1.2.3"), (std::vector<std::string>{"pending", "pending"}));
  auto due = catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()) + 1000000000, 100,
                                               1u << 30);
  ASSERT_TRUE(due);
  EXPECT_TRUE(due->empty());
}

TEST_F(IdentityConflictTest, OtherStudyQuarantinesBothStudies) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'a', "P1")));
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.2", 'c', "P1")));
  auto r = catalog_->ingest.record_instance(instance("1.2.4", "1.2.3.1.1", 'b', "P1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, RecordKind::kIdentityConflict);
  EXPECT_EQ(row("1.2.3"), std::string("QUARANTINED ") + reason::kIdentityConflictText);
  EXPECT_EQ(row("1.2.4"), std::string("QUARANTINED ") + reason::kIdentityConflictText);
  for (const auto& s : delivery_states("1.2.3")) EXPECT_EQ(s, "pending");
}

TEST_F(IdentityConflictTest, SameIdentityIsStillANewVersion) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'a', "P1")));
  auto r = catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'b', "P1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, RecordKind::kNewVersion);
  EXPECT_EQ(delivery_states("1.2.3"), (std::vector<std::string>{"superseded", "pending"}));
}

TEST_F(IdentityConflictTest, APolicyReRunAfterReleaseKeepsTheConflict) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", "1.2.3.1.1", 'a', "P1")));
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.4", "1.2.3.1.1", 'b', "P2")));
  auto rel = catalog_->operators.release_quarantine("1.2.4");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->changed, 1);
  auto work = catalog_->policy.policy_work(10);
  ASSERT_TRUE(work);
  ASSERT_EQ(work->size(), 1u);
  EXPECT_EQ((*work)[0].identity_conflicts, (std::vector<std::string>{"1.2.3.1.1"}));
  // Once the wrong side is deleted, the other study has no conflict left.
  ASSERT_TRUE(catalog_->operators.delete_quarantined("1.2.3", nullptr));
  auto again = catalog_->policy.policy_work(10);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_TRUE((*again)[0].identity_conflicts.empty());
}

}  // namespace
}  // namespace dirgw::catalog
