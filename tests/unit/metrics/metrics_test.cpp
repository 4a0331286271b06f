#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "metrics/exposition.h"

namespace dirgw::metrics {
namespace {

TEST(Registry, WithReturnsTheSameChildForTheSameLabels) {
  Registry r;
  auto& f = r.counter_family("dirgw_x_total", "X.", {"destination"});
  Counter& a = f.with({"a"});
  Counter& a2 = f.with({"a"});
  Counter& b = f.with({"b"});
  EXPECT_EQ(&a, &a2);
  EXPECT_NE(&a, &b);
  a.inc();
  a2.inc(4);
  EXPECT_EQ(a.value(), 5u);
  EXPECT_EQ(b.value(), 0u);
}

TEST(Registry, GaugeSetAddIncDec) {
  Registry r;
  Gauge& g = r.gauge("dirgw_g", "G.");
  g.set(10);
  g.add(2.5);
  g.inc();
  g.dec();
  g.dec();
  EXPECT_DOUBLE_EQ(g.value(), 11.5);
}

TEST(Registry, ConcurrentUpdatesSumCorrectly) {
  Registry r;
  Counter& c = r.counter("dirgw_c_total", "C.");
  Counter& labelled = r.counter_family("dirgw_l_total", "L.", {"destination"}).with({"d"});
  Gauge& g = r.gauge("dirgw_g", "G.");
  const double bounds[] = {1, 2};
  Histogram& h = r.histogram("dirgw_h_seconds", "H.", bounds);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        labelled.inc(2);
        g.add(1);
        h.observe(t % 2 == 0 ? 0.5 : 1.5);
        if (i % 1000 == 0) (void)render_text(r);  // scrapes race with updates
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(labelled.value(), std::uint64_t{2} * kThreads * kPerThread);
  EXPECT_DOUBLE_EQ(g.value(), double{kThreads} * kPerThread);
  auto snap = h.snapshot();
  ASSERT_EQ(snap.cumulative.size(), 3u);
  EXPECT_EQ(snap.cumulative[0], std::uint64_t{kThreads / 2} * kPerThread);
  EXPECT_EQ(snap.cumulative[1], std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(snap.count(), std::uint64_t{kThreads} * kPerThread);
  EXPECT_DOUBLE_EQ(snap.sum, (0.5 + 1.5) * kThreads / 2 * kPerThread);
}

TEST(Registry, ValidNames) {
  EXPECT_TRUE(valid_metric_name("dirgw_up"));
  EXPECT_TRUE(valid_metric_name("_x9"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("9x"));
  EXPECT_FALSE(valid_metric_name("dirgw-up"));
  EXPECT_FALSE(valid_metric_name("dirgw:up"));  // colons are for recording rules
  EXPECT_FALSE(valid_metric_name("dirgw up"));
  EXPECT_TRUE(valid_label_name("destination"));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name("dest.name"));
}

using RegistryDeathTest = ::testing::Test;

TEST_F(RegistryDeathTest, BadMetricNameAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.counter("bad-name_total", "x"), "invalid metric name \"bad-name_total\"");
  EXPECT_DEATH(r.gauge("", "x"), "invalid metric name");
}

TEST_F(RegistryDeathTest, BadLabelNameAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.counter_family("dirgw_x_total", "x", {"dest-name"}), "invalid label name");
  EXPECT_DEATH(r.counter_family("dirgw_x_total", "x", {"__reserved"}), "invalid label name");
  EXPECT_DEATH(r.counter_family("dirgw_x_total", "x", {"a", "a"}), "duplicate label");
  const double b[] = {1};
  EXPECT_DEATH(r.histogram_family("dirgw_h", "x", {"le"}, b), "\"le\" is reserved");
}

TEST_F(RegistryDeathTest, DuplicateOrClashingNamesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  r.counter("dirgw_x_total", "x");
  const double b[] = {1};
  r.histogram("dirgw_h_seconds", "x", b);
  EXPECT_DEATH(r.gauge("dirgw_x_total", "x"), "already registered");
  EXPECT_DEATH(r.counter("dirgw_h_seconds_count", "x"), "already registered");
  EXPECT_DEATH(r.gauge_callback("dirgw_h_seconds_bucket", "x", [] { return 1.0; }),
               "already registered");
}

TEST_F(RegistryDeathTest, WrongNumberOfLabelValuesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  auto& f = r.counter_family("dirgw_x_total", "x", {"destination"});
  EXPECT_DEATH(f.with({}), "has 1 label\\(s\\), given 0");
  EXPECT_DEATH(f.with({"a", "b"}), "given 2");
}

TEST_F(RegistryDeathTest, BadBucketsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  const double unordered[] = {1, 0.5};
  const double repeated[] = {1, 1};
  const double inf[] = {1, std::numeric_limits<double>::infinity()};
  EXPECT_DEATH(r.histogram("dirgw_a", "x", unordered), "strictly increasing");
  EXPECT_DEATH(r.histogram("dirgw_b", "x", repeated), "strictly increasing");
  EXPECT_DEATH(r.histogram("dirgw_c", "x", inf), "finite");
}

TEST(Registry, BeforeCollectRunsOncePerScrapeFirst) {
  Registry r;
  Gauge& g = r.gauge("dirgw_refreshed", "R.");
  int calls = 0;
  r.before_collect([&] { g.set(++calls); });
  EXPECT_NE(render_text(r).find("dirgw_refreshed 1\n"), std::string::npos);
  EXPECT_NE(render_text(r).find("dirgw_refreshed 2\n"), std::string::npos);
}

TEST(GatewayMetrics, EverySeriesExistsFromTheStart) {
  Registry r;
  GatewayMetrics m(r, {"hdirs", "backup"}, "0.1.0");
  const std::string text = render_text(r);
  for (const char* line : {
           "dirgw_instances_received_total{source=\"dicom\"} 0\n",
           "dirgw_instances_received_total{source=\"folder\"} 0\n",
           "dirgw_instances_duplicate_total{source=\"dicom\"} 0\n",
           "dirgw_bytes_received_total{source=\"dicom\"} 0\n",
           "dirgw_instances_refused_total{reason=\"prescan\"} 0\n",
           "dirgw_instances_refused_total{reason=\"sop_mismatch\"} 0\n",
           "dirgw_instances_refused_total{reason=\"spool_floor\"} 0\n",
           "dirgw_instances_refused_total{reason=\"spool_error\"} 0\n",
           "dirgw_instances_refused_total{reason=\"catalog\"} 0\n",
           "dirgw_associations_total{result=\"accepted\"} 0\n",
           "dirgw_associations_total{result=\"rejected\"} 0\n",
           "dirgw_associations_total{result=\"busy\"} 0\n",
           "dirgw_association_duration_seconds_count 0\n",
           "dirgw_store_duration_seconds_bucket{le=\"0.001\"} 0\n",
           "dirgw_store_commit_duration_seconds_bucket{le=\"60\"} 0\n",
           "dirgw_instances_quarantined_total 0\n",
           "dirgw_instances_sent_total{destination=\"hdirs\"} 0\n",
           "dirgw_instances_sent_total{destination=\"backup\"} 0\n",
           "dirgw_bytes_sent_total{destination=\"hdirs\"} 0\n",
           "dirgw_instances_failed_total{destination=\"hdirs\"} 0\n",
           "dirgw_instances_retried_total{destination=\"hdirs\"} 0\n",
           "dirgw_stow_request_duration_seconds_bucket{destination=\"backup\",le=\"+Inf\"} 0\n",
           "dirgw_circuit_open{destination=\"hdirs\"} 0\n",
           "dirgw_backlog_instances{destination=\"hdirs\"} 0\n",
           "dirgw_backlog_bytes{destination=\"hdirs\"} 0\n",
           "dirgw_backlog_oldest_age_seconds{destination=\"hdirs\"} 0\n",
           "dirgw_up 1\n",
           "dirgw_build_info{version=\"0.1.0\"} 1\n",
           "# TYPE dirgw_spool_free_bytes gauge\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // No source set yet: the family is there without a sample.
  EXPECT_EQ(text.find("\ndirgw_spool_free_bytes "), std::string::npos);
  // Nothing names a patient, a study or an instance.
  EXPECT_EQ(text.find("uid"), std::string::npos);
  EXPECT_EQ(text.find("patient"), std::string::npos);
}

TEST(GatewayMetrics, HotPathReferencesAndScrapeTimeSources) {
  Registry r;
  GatewayMetrics m(r, {"hdirs", "backup"}, "0.1.0");
  m.instances_received_dicom.inc();
  m.bytes_received_dicom.inc(524288);
  m.refused_prescan.inc();
  m.store_duration.observe(std::chrono::microseconds(1500));
  DestinationMetrics& hdirs = m.destination("hdirs");
  hdirs.instances_sent.inc(3);
  hdirs.circuit_open.set(1);
  hdirs.stow_request_duration.observe(0.3);
  int backlog_calls = 0;
  m.set_backlog_source([&] {
    ++backlog_calls;
    return std::vector<Backlog>{{"hdirs", 7, 3.5e6, 120}, {"gone", 1, 1, 1}};
  });
  m.set_spool_free_source([] { return 5e9; });
  const std::string text = render_text(r);
  EXPECT_EQ(backlog_calls, 1);  // one query feeds all three backlog families
  for (const char* line : {
           "dirgw_instances_received_total{source=\"dicom\"} 1\n",
           "dirgw_bytes_received_total{source=\"dicom\"} 524288\n",
           "dirgw_instances_refused_total{reason=\"prescan\"} 1\n",
           "dirgw_store_duration_seconds_bucket{le=\"0.001\"} 0\n",
           "dirgw_store_duration_seconds_bucket{le=\"0.0025\"} 1\n",
           "dirgw_instances_sent_total{destination=\"hdirs\"} 3\n",
           "dirgw_circuit_open{destination=\"hdirs\"} 1\n",
           "dirgw_stow_request_duration_seconds_bucket{destination=\"hdirs\",le=\"0.5\"} 1\n",
           "dirgw_backlog_instances{destination=\"hdirs\"} 7\n",
           "dirgw_backlog_bytes{destination=\"hdirs\"} 3500000\n",
           "dirgw_backlog_oldest_age_seconds{destination=\"hdirs\"} 120\n",
           "dirgw_backlog_instances{destination=\"backup\"} 0\n",
           "dirgw_spool_free_bytes 5000000000\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  EXPECT_EQ(text.find("gone"), std::string::npos);  // not configured: no series

  // The next scrape: a destination the source no longer mentions reads 0 again.
  m.set_backlog_source([] { return std::vector<Backlog>{}; });
  EXPECT_NE(render_text(r).find("dirgw_backlog_instances{destination=\"hdirs\"} 0\n"),
            std::string::npos);
}

TEST(GatewayMetricsDeathTest, UnknownDestinationAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  GatewayMetrics m(r, {"hdirs"}, "0.1.0");
  EXPECT_DEATH(m.destination("elsewhere"), "no metrics for destination \"elsewhere\"");
}

}  // namespace
}  // namespace dirgw::metrics
