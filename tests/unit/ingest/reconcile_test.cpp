#include "ingest/reconcile.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ingest/catalog_sink.h"
#include "temp_catalog.h"

namespace dirgw::ingest::test {
namespace {

class ReconcileTest : public TempCatalog {
 protected:
  Result<catalog::Reconciliation> run() {
    return reconcile(*spool_, catalog_->ingest, catalog_->delivery,
                     {PrescanLimits{}, dir_ / "quarantine" / "unparseable"}, clock_);
  }
  bool in_spool(const std::string& sha) {
    auto list = spool_->list_objects();
    EXPECT_TRUE(list.ok());
    return std::find(list->begin(), list->end(), sha) != list->end();
  }
};

TEST_F(ReconcileTest, NothingToDoOnAnEmptySpool) {
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->temporaries, 0);
  EXPECT_EQ(r->adopted, 0);
  EXPECT_EQ(r->quarantined, 0);
  EXPECT_EQ(r->missing, 0);
  EXPECT_EQ(r->at, to_epoch_ms(clock_.now()));
}

TEST_F(ReconcileTest, HalfWrittenTemporariesAreRemoved) {
  ASSERT_TRUE(write_file_durably(spool_->new_temp_path(), "half", 0640).ok());
  auto r = run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->temporaries, 1);
  EXPECT_TRUE(std::filesystem::is_empty(spool_->root() / "tmp"));
}

TEST_F(ReconcileTest, OrphanSpoolObjectIsAdopted) {
  const auto o = store(dicom());
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->adopted, 1);
  EXPECT_EQ(r->quarantined, 0);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  ASSERT_EQ((*study)->instances.size(), 1u);
  EXPECT_EQ((*study)->instances.front().sha256, o.sha256);
  EXPECT_TRUE(in_spool(o.sha256));
  // A second start finds nothing left to adopt.
  auto again = run();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->adopted, 0);
}

TEST_F(ReconcileTest, UnparseableOrphanIsMovedToQuarantine) {
  const auto o = store("this is not DICOM at all, not even close");
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->quarantined, 1);
  EXPECT_EQ(r->adopted, 0);
  EXPECT_FALSE(in_spool(o.sha256));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "quarantine" / "unparseable" / o.sha256));
  auto st = catalog_->queries.status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->instances, 0);
}

TEST_F(ReconcileTest, CataloguedObjectMissingFromTheSpoolIsFlagged) {
  const std::string bytes = dicom();
  const auto o = store(bytes);
  auto scan = prescan_bytes(bytes, PrescanLimits{});
  ASSERT_TRUE(scan.ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(new_instance(*scan, o, "PACS1", "peer")).ok());
  // Gone behind the spool's back (a disk repaired, a file deleted by hand).
  std::filesystem::remove(o.path);
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->missing, 1);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  ASSERT_EQ((*study)->instances.size(), 1u);
  ASSERT_FALSE((*study)->instances.front().deliveries.empty());
  for (const auto& d : (*study)->instances.front().deliveries) EXPECT_EQ(d.state, "failed");
}

// After an ordered stop (issue 16: start-up flat at millions of rows) only spool/tmp/ and the
// files of deliveries still to be sent are checked; a missing one is still flagged.
TEST_F(ReconcileTest, AfterAnOrderedStopOnlyOpenDeliveriesAreChecked) {
  ASSERT_TRUE(run().ok());  // first start: a catalog that never recorded a stop
  const std::string bytes = dicom();
  const auto o = store(bytes);
  auto scan = prescan_bytes(bytes, PrescanLimits{});
  ASSERT_TRUE(scan.ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(new_instance(*scan, o, "PACS1", "peer")).ok());
  ASSERT_TRUE(catalog_->ingest.end_run().ok());
  std::filesystem::remove(o.path);
  ASSERT_TRUE(write_file_durably(spool_->new_temp_path(), "half", 0640).ok());
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->missing, 1) << "a pending delivery's file is checked after an ordered stop";
  EXPECT_EQ(r->temporaries, 1);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  for (const auto& d : (*study)->instances.front().deliveries) EXPECT_EQ(d.state, "failed");
}

// An orphan can only be left by an interrupted run (a rename into objects/ whose row never
// committed): after one, the whole spool is walked again and the orphan adopted.
TEST_F(ReconcileTest, AfterAnInterruptedRunTheWholeSpoolIsReconciled) {
  ASSERT_TRUE(run().ok());
  ASSERT_TRUE(catalog_->ingest.end_run().ok());
  ASSERT_TRUE(run().ok());  // this run is then killed: no end_run()
  store(dicom());
  auto r = run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->adopted, 1);
}

}  // namespace
}  // namespace dirgw::ingest::test
