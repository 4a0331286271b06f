#include "metrics/exposition.h"

#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>

namespace dirgw::metrics {
namespace {

TEST(Exposition, CountersGaugesAndLabels) {
  Registry r;
  r.counter("dirgw_things_total", "Things seen.").inc(3);
  auto& sent = r.counter_family("dirgw_sent_total", "Sent, by destination.", {"destination"});
  sent.with({"hdirs"}).inc(2);
  sent.with({"backup"});
  r.gauge("dirgw_temperature", "A gauge.").set(-1.5);
  auto& g = r.gauge_family("dirgw_two_labels", "", {"a", "b"});
  g.with({"x", "y"}).set(0.25);

  EXPECT_EQ(render_text(r),
            "# HELP dirgw_things_total Things seen.\n"
            "# TYPE dirgw_things_total counter\n"
            "dirgw_things_total 3\n"
            "# HELP dirgw_sent_total Sent, by destination.\n"
            "# TYPE dirgw_sent_total counter\n"
            "dirgw_sent_total{destination=\"hdirs\"} 2\n"
            "dirgw_sent_total{destination=\"backup\"} 0\n"
            "# HELP dirgw_temperature A gauge.\n"
            "# TYPE dirgw_temperature gauge\n"
            "dirgw_temperature -1.5\n"
            "# TYPE dirgw_two_labels gauge\n"
            "dirgw_two_labels{a=\"x\",b=\"y\"} 0.25\n");
}

TEST(Exposition, LabelledFamilyWithoutChildrenHasOnlyItsHeader) {
  Registry r;
  r.counter_family("dirgw_empty_total", "Nothing yet.", {"reason"});
  EXPECT_EQ(render_text(r),
            "# HELP dirgw_empty_total Nothing yet.\n"
            "# TYPE dirgw_empty_total counter\n");
}

TEST(Exposition, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  const double bounds[] = {0.25, 1, 2.5};
  auto& h = r.histogram_family("dirgw_latency_seconds", "Latency.", {"destination"}, bounds);
  auto& a = h.with({"a"});
  a.observe(0.125);
  a.observe(0.25);  // le is inclusive
  a.observe(0.5);
  a.observe(std::chrono::milliseconds(2000));
  a.observe(7.0);
  EXPECT_EQ(render_text(r),
            "# HELP dirgw_latency_seconds Latency.\n"
            "# TYPE dirgw_latency_seconds histogram\n"
            "dirgw_latency_seconds_bucket{destination=\"a\",le=\"0.25\"} 2\n"
            "dirgw_latency_seconds_bucket{destination=\"a\",le=\"1\"} 3\n"
            "dirgw_latency_seconds_bucket{destination=\"a\",le=\"2.5\"} 4\n"
            "dirgw_latency_seconds_bucket{destination=\"a\",le=\"+Inf\"} 5\n"
            "dirgw_latency_seconds_sum{destination=\"a\"} 9.875\n"
            "dirgw_latency_seconds_count{destination=\"a\"} 5\n");
}

TEST(Exposition, UnlabelledHistogram) {
  Registry r;
  const double bounds[] = {0.005};
  r.histogram("dirgw_h_seconds", "H.", bounds).observe(0.001);
  EXPECT_EQ(render_text(r),
            "# HELP dirgw_h_seconds H.\n"
            "# TYPE dirgw_h_seconds histogram\n"
            "dirgw_h_seconds_bucket{le=\"0.005\"} 1\n"
            "dirgw_h_seconds_bucket{le=\"+Inf\"} 1\n"
            "dirgw_h_seconds_sum 0.001\n"
            "dirgw_h_seconds_count 1\n");
}

TEST(Exposition, CallbackGauges) {
  Registry r;
  int calls = 0;
  r.gauge_callback("dirgw_backlog_instances", "Backlog.", {"destination"}, [&] {
    ++calls;
    return std::vector<Sample>{{{"hdirs"}, 12}, {{"backup"}, 0}};
  });
  r.gauge_callback("dirgw_spool_free_bytes", "Free.", [] { return 1073741824.0; });
  r.counter_callback("dirgw_cb_total", "Counted elsewhere.", {}, [] {
    return std::vector<Sample>{{{}, 42}};
  });
  const std::string expected =
      "# HELP dirgw_backlog_instances Backlog.\n"
      "# TYPE dirgw_backlog_instances gauge\n"
      "dirgw_backlog_instances{destination=\"hdirs\"} 12\n"
      "dirgw_backlog_instances{destination=\"backup\"} 0\n"
      "# HELP dirgw_spool_free_bytes Free.\n"
      "# TYPE dirgw_spool_free_bytes gauge\n"
      "dirgw_spool_free_bytes 1073741824\n"
      "# HELP dirgw_cb_total Counted elsewhere.\n"
      "# TYPE dirgw_cb_total counter\n"
      "dirgw_cb_total 42\n";
  EXPECT_EQ(render_text(r), expected);
  EXPECT_EQ(render_text(r), expected);
  EXPECT_EQ(calls, 2);  // evaluated at every scrape
}

TEST(Exposition, FailingCallbackIsReportedNotFatal) {
  Registry r;
  r.gauge_callback("dirgw_throws", "Throws.", {},
                   []() -> std::vector<Sample> { throw std::runtime_error("catalog down"); });
  r.gauge_callback("dirgw_wrong_shape", "Wrong shape.", {"destination"}, [] {
    return std::vector<Sample>{{{}, 1}, {{"ok"}, 2}};
  });
  r.gauge("dirgw_after", "Still written.").set(1);
  EXPECT_EQ(render_text(r),
            "# HELP dirgw_throws Throws.\n"
            "# TYPE dirgw_throws gauge\n"
            "# dirgw: the callback for this metric failed\n"
            "# HELP dirgw_wrong_shape Wrong shape.\n"
            "# TYPE dirgw_wrong_shape gauge\n"
            "# dirgw: the callback for this metric failed\n"
            "dirgw_wrong_shape{destination=\"ok\"} 2\n"
            "# HELP dirgw_after Still written.\n"
            "# TYPE dirgw_after gauge\n"
            "dirgw_after 1\n");
  EXPECT_EQ(r.callback_failures(), 2u);
}

TEST(Exposition, EscapesHelpAndLabelValues) {
  Registry r;
  r.gauge_family("dirgw_escaped", "Back\\slash and\nnewline; \"quotes\" stay.", {"destination"})
      .with({"a\\b \"c\"\nd"})
      .set(1);
  EXPECT_EQ(render_text(r),
            "# HELP dirgw_escaped Back\\\\slash and\\nnewline; \"quotes\" stay.\n"
            "# TYPE dirgw_escaped gauge\n"
            "dirgw_escaped{destination=\"a\\\\b \\\"c\\\"\\nd\"} 1\n");
}

TEST(Exposition, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(1), "1");
  EXPECT_EQ(format_value(-2.5), "-2.5");
  EXPECT_EQ(format_value(0.005), "0.005");
  EXPECT_EQ(format_value(1e-7), "1e-07");
  EXPECT_EQ(format_value(1234567890123.0), "1234567890123");
  EXPECT_EQ(format_value(5e9), "5000000000");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(Exposition, CountersKeepFullIntegerPrecision) {
  Registry r;
  r.counter("dirgw_big_total", "").inc(18446744073709551615ull);
  EXPECT_EQ(render_text(r),
            "# TYPE dirgw_big_total counter\n"
            "dirgw_big_total 18446744073709551615\n");
}

}  // namespace
}  // namespace dirgw::metrics
