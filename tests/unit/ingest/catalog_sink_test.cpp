#include "ingest/catalog_sink.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "ingest/content_key.h"
#include "temp_catalog.h"

namespace dirgw::ingest::test {
namespace {

class CatalogSinkTest : public TempCatalog {
 protected:
  ReceivedObject received(const std::string& bytes) {
    ReceivedObject o;
    o.stored = store(bytes);
    auto scan = prescan_bytes(bytes, PrescanLimits{});
    EXPECT_TRUE(scan.ok());
    o.scan = *scan;
    o.calling_ae = "PACS1";
    o.peer = "127.0.0.1:4242";
    return o;
  }
  std::unique_ptr<CatalogSink> sink(
      catalog::NewVersionPolicy p = catalog::NewVersionPolicy::kSend) {
    return std::make_unique<CatalogSink>(
        catalog_->ingest, [this] { ++wakes_; }, p);
  }
  int wakes_ = 0;
};

TEST_F(CatalogSinkTest, NewObjectIsCataloguedAndWakesTheScheduler) {
  auto s = sink();
  const auto o = received(dicom());
  auto r = s->object_received(o);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, SinkOutcome::kStored);
  EXPECT_EQ(wakes_, 1);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok());
  ASSERT_TRUE(study->has_value());
  ASSERT_EQ((*study)->instances.size(), 1u);
  const auto& i = (*study)->instances.front();
  EXPECT_EQ(i.sop_instance_uid, dirgw::test::kSopInstance);
  EXPECT_EQ(i.series_uid, dirgw::test::kSeries);
  EXPECT_EQ(i.modality, "OT");
  EXPECT_EQ(i.calling_ae, "PACS1");
  EXPECT_EQ(i.source, "dicom:PACS1");
  EXPECT_EQ(i.sha256, o.stored.sha256);
  EXPECT_EQ(i.size, static_cast<std::int64_t>(o.stored.size));
}

TEST_F(CatalogSinkTest, ObjectFromAFolderRecordsTheFolderAsItsSource) {
  auto s = sink();
  auto o = received(dicom());
  o.calling_ae = "";
  o.peer = "folder:ct-export";
  ASSERT_TRUE(s->object_received(o).ok());
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  ASSERT_EQ((*study)->instances.size(), 1u);
  EXPECT_EQ((*study)->instances.front().source, "folder:ct-export");
}

TEST_F(CatalogSinkTest, SameBytesAgainAreADuplicateAndWakeNobody) {
  auto s = sink();
  const auto o = received(dicom());
  ASSERT_TRUE(s->object_received(o).ok());
  auto again = s->object_received(received(dicom()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, SinkOutcome::kDuplicate);
  EXPECT_EQ(wakes_, 1);
  auto st = catalog_->queries.status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->instances, 1);
}

TEST_F(CatalogSinkTest, DifferentBytesForTheSameInstanceAreANewVersion) {
  auto s = sink(catalog::NewVersionPolicy::kHold);
  ASSERT_TRUE(s->object_received(received(dicom())).ok());
  const auto second = received(dicom(dirgw::test::kSopInstance, "corrected"));
  auto r = s->object_received(second);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, SinkOutcome::kStored);
  EXPECT_EQ(wakes_, 2);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  bool second_version_held = false;
  for (const auto& i : (*study)->instances)
    second_version_held = second_version_held || i.sha256 == second.stored.sha256;
  EXPECT_TRUE(second_version_held);
}

// The same instance through another door, or again in another syntax: other bytes (the door's
// own meta header, implicit VR), the same content. A duplicate, whose file is not kept; with the
// content check off, a new version as before.
std::string implicit_dicom() {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kImplicitLE);
  dirgw::test::standard_head(b);
  dirgw::test::Meta m;
  m.transfer_syntax = std::string(dirgw::test::kImplicitLE);
  return dirgw::test::part10(m, b.take());
}

TEST_F(CatalogSinkTest, SameInstanceInOtherBytesIsADuplicateAndItsFileIsNotKept) {
  auto s = sink();
  s->check_content(*spool_, PrescanLimits{});
  const auto first = received(dicom());
  ASSERT_EQ(*s->object_received(first), SinkOutcome::kStored);
  auto other = received(implicit_dicom());
  other.peer = "folder:export";
  ASSERT_NE(other.stored.sha256, first.stored.sha256);
  ASSERT_TRUE(std::filesystem::exists(other.stored.path));
  auto r = s->object_received(other);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, SinkOutcome::kDuplicateOtherBytes);
  EXPECT_FALSE(std::filesystem::exists(other.stored.path));  // linked by the door: removed
  EXPECT_TRUE(std::filesystem::exists(first.stored.path));
  EXPECT_EQ(wakes_, 1);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  ASSERT_EQ((*study)->instances.size(), 1u);
  EXPECT_EQ((*study)->instances.front().sha256, first.stored.sha256);

  // A door whose object is not linked yet (the SCP's slot): never made durable, left to it.
  auto slot = received(implicit_dicom());
  bool made_durable = false;
  slot.make_durable = [&]() -> Result<void> {
    made_durable = true;
    return {};
  };
  EXPECT_EQ(*s->object_received(slot), SinkOutcome::kDuplicateOtherBytes);
  EXPECT_FALSE(made_durable);
  EXPECT_TRUE(std::filesystem::exists(slot.stored.path));
}

// Two doors with the same bytes: the first decided "duplicate" and removed the file they share
// before the second could read it. The second fails (its sender tries again), never recording
// a row without its file; and a file some row names is never removed.
TEST_F(CatalogSinkTest, AnUnreadableObjectIsNotRecordedAndAReferencedFileIsNotRemoved) {
  auto s = sink();
  s->check_content(*spool_, PrescanLimits{});
  const auto first = received(dicom());
  ASSERT_EQ(*s->object_received(first), SinkOutcome::kStored);
  auto other = received(implicit_dicom());
  std::filesystem::remove(other.stored.path);
  auto r = s->object_received(other);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable()) << r.error().to_string();
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  EXPECT_EQ((*study)->instances.size(), 1u);

  bool removed = false;
  auto kept = catalog_->ingest.remove_unreferenced(first.stored.sha256, [&]() -> Result<void> {
    removed = true;
    return {};
  });
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(*kept);
  EXPECT_FALSE(removed);
}

// The keys are read outside the transaction (a large object read under the write lock held
// every door's commit): a deferred check records nothing and asks for them; given them, nothing
// is read inside the transaction, only the object's file is checked to be still there (gone
// meanwhile: the instance fails retryably).
TEST_F(CatalogSinkTest, KeysReadOutsideTheTransactionAreNotReadAgainInsideIt) {
  auto s = sink();
  s->check_content(*spool_, PrescanLimits{});
  const auto first = received(dicom());
  ASSERT_EQ(*s->object_received(first), SinkOutcome::kStored);
  const auto other = received(implicit_dicom());
  auto held = catalog_->ingest.held_versions(std::string(dirgw::test::kSopInstance));
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 1u);
  EXPECT_EQ((*held)[0].sha256, first.stored.sha256);
  EXPECT_FALSE((*held)[0].content_key.has_value());  // not compared yet

  const auto real = content_check(*spool_, other.stored.path, PrescanLimits{});
  catalog::NewInstance in = new_instance(other.scan, other.stored, "PACS1", "127.0.0.1:4242");
  bool made_durable = false;
  in.before_commit = [&]() -> Result<void> {
    made_durable = true;
    return {};
  };
  auto no_reading = catalog::NewInstance::ContentCheck{
      [] {
        ADD_FAILURE() << "the object was read inside the transaction";
        return std::optional<std::string>();
      },
      [](const std::string&) {
        ADD_FAILURE() << "a held object was read inside the transaction";
        return std::string();
      },
      real.same};
  in.content = no_reading;
  in.content->defer = true;
  auto asked = catalog_->ingest.record_instance(in);
  ASSERT_TRUE(asked.ok()) << asked.error().to_string();
  EXPECT_TRUE(asked->content_needed);
  EXPECT_FALSE(made_durable);
  EXPECT_EQ(catalog_->queries.status()->instances, 1);

  in.content = no_reading;
  in.content->own = real.key();
  in.content->stored = {{first.stored.sha256, real.stored_key(first.stored.sha256)}};
  in.content->present = [] { return false; };
  auto gone = catalog_->ingest.record_instance(in);
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.error().retryable()) << gone.error().to_string();
  in.content->present = [] { return true; };
  auto r = catalog_->ingest.record_instance(in);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->kind, catalog::RecordKind::kDuplicate);
  EXPECT_TRUE(r->other_bytes);
  EXPECT_FALSE(made_durable);
  // The held object's key read outside is kept for the next comparison.
  held = catalog_->ingest.held_versions(std::string(dirgw::test::kSopInstance));
  ASSERT_TRUE(held.ok() && held->size() == 1u);
  EXPECT_EQ((*held)[0].content_key, real.stored_key(first.stored.sha256));
}

TEST_F(CatalogSinkTest, OtherContentIsStillANewVersion) {
  auto s = sink();
  s->check_content(*spool_, PrescanLimits{});
  ASSERT_EQ(*s->object_received(received(dicom())), SinkOutcome::kStored);
  EXPECT_EQ(*s->object_received(received(dicom(dirgw::test::kSopInstance, "corrected"))),
            SinkOutcome::kStored);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  EXPECT_EQ((*study)->instances.size(), 2u);
}

TEST_F(CatalogSinkTest, WithoutTheContentCheckOtherBytesAreANewVersion) {
  auto s = sink();
  ASSERT_EQ(*s->object_received(received(dicom())), SinkOutcome::kStored);
  EXPECT_EQ(*s->object_received(received(implicit_dicom())), SinkOutcome::kStored);
}

// A held object whose file is gone (purged after verification) is compared by the content key
// kept in the catalog.
TEST_F(CatalogSinkTest, AHeldObjectWhoseFileIsGoneIsComparedByItsKeptKey) {
  auto s = sink();
  s->check_content(*spool_, PrescanLimits{});
  const auto first = received(dicom());
  ASSERT_EQ(*s->object_received(first), SinkOutcome::kStored);
  // The first comparison records the held object's key; then its file goes.
  ASSERT_EQ(*s->object_received(received(implicit_dicom())), SinkOutcome::kDuplicateOtherBytes);
  ASSERT_TRUE(spool_->remove_object(first.stored.sha256).ok());
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitLE);
  dirgw::test::standard_head(b);
  dirgw::test::Meta m;
  dirgw::test::DatasetBuilder door(dirgw::test::Enc::kExplicitLE);
  door.str(0x00020013u, "SH", "OTHER_DOOR_1");  // another door's implementation version name
  m.extra = door.take();
  EXPECT_EQ(*s->object_received(received(dirgw::test::part10(m, b.take()))),
            SinkOutcome::kDuplicateOtherBytes);
}

TEST(PaddedTextTag, TheDictionarySaysWhichTagsHoldText) {
  EXPECT_TRUE(padded_text_tag(0x00080008u));   // Image Type, CS
  EXPECT_TRUE(padded_text_tag(0x00100010u));   // Patient's Name, PN
  EXPECT_TRUE(padded_text_tag(0x00080018u));   // SOP Instance UID, UI
  EXPECT_FALSE(padded_text_tag(0x00280010u));  // Rows, US
  EXPECT_FALSE(padded_text_tag(0x7FE00010u));  // Pixel Data
  EXPECT_FALSE(padded_text_tag(0x00091010u));  // private: no dictionary says
  EXPECT_TRUE(padded_text_tag(0x00080008u));   // remembered
}

TEST_F(CatalogSinkTest, RefusalIsRecordedForStatus) {
  auto s = sink();
  s->refused("STRANGER", "10.0.0.9:104", "calling AE title not allowed");
  auto st = catalog_->queries.status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->refusals, 1);
  ASSERT_TRUE(st->last_refusal.has_value());
  EXPECT_EQ(st->last_refusal->source, "dicom");
  EXPECT_EQ(st->last_refusal->calling_ae, "STRANGER");
  EXPECT_EQ(st->last_refusal->peer, "10.0.0.9:104");
  EXPECT_EQ(st->last_refusal->reason, "calling AE title not allowed");
  EXPECT_EQ(wakes_, 0);
}

// Group commit (issue 16): objects received at the same time share one transaction; each caller
// gets its own outcome, and a study already RECEIVING wakes nobody.
TEST_F(CatalogSinkTest, ConcurrentObjectsShareCommitsAndEachGetsItsOutcome) {
  auto s = sink();
  constexpr int kThreads = 4, kEach = 10;
  std::vector<ReceivedObject> objects;
  for (int i = 0; i < kThreads * kEach; ++i)
    objects.push_back(received(dicom("1.2.826.0.1.3680043.2.1125.1.9" + std::to_string(i))));
  std::atomic<int> stored{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = s->object_received(objects[static_cast<std::size_t>(t * kEach + i)]);
        if (r.ok() && *r == SinkOutcome::kStored) ++stored;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(stored, kThreads * kEach);
  const auto stats = s->group_commit().stats();
  EXPECT_EQ(stats.instances, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_LE(stats.commits, stats.instances);
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  EXPECT_EQ((*study)->instances.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(wakes_, 1);  // only the first instance opened the study
}

TEST_F(CatalogSinkTest, TheHookRunsAfterTheCommitBeforeTheCallerReturns) {
  auto s = sink();
  std::size_t hooked = 0;
  s->group_commit().set_after_commit_for_test([&](std::size_t n) {
    hooked += n;
    // The row is committed (visible on the read connection) before anyone is answered.
    auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
    EXPECT_TRUE(study.ok() && study->has_value());
  });
  auto r = s->object_received(received(dicom()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(hooked, 1u);
}

}  // namespace
}  // namespace dirgw::ingest::test
