// Metrics: the registry of counters, gauges and histograms that the daemon owns and hands to
// each stage by reference (no globals), and GatewayMetrics, the gateway's own metric set.
//
// Hot path: a stage resolves its labelled series once (Family::with) and keeps the Counter& /
// Histogram&; incrementing is one relaxed atomic add. Registration (names, labels) happens at
// start-up; a bad name or a wrong number of label values is a programming error and aborts.
//
// Labels carry destination names, reasons and results — never patient values and never UIDs
// (which would also give every instance its own series).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace dirgw::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view to_string(MetricType type);

// Prometheus syntax: metric [a-zA-Z_][a-zA-Z0-9_]* (no ':', kept for recording rules); label
// the same, not starting with "__" (reserved).
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

// Monotonic count (instances, bytes). Never decreases while the process lives.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (a state, a size).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// What a histogram holds at one moment. cumulative[i] counts observations <= bounds[i];
// cumulative.back() (one more entry than bounds) is the +Inf bucket, equal to count.
struct HistogramData {
  std::vector<double> bounds;
  std::vector<std::uint64_t> cumulative;
  double sum = 0;
  std::uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
};

// Fixed buckets; observe() is lock-free (a scan of the bounds, two relaxed atomic adds).
// A scrape concurrent with observe() may see _sum one observation apart from _count; _count is
// always the +Inf bucket.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);  // strictly increasing, finite
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value) noexcept;  // NaN is ignored
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }
  HistogramData snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// Bucket sets for latencies, in seconds.
namespace buckets {
// Prometheus' default: 5 ms .. 10 s.
inline constexpr double kDefault[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// One C-STORE: 1 ms (commit of a small object) to a minute (a large one over a slow link).
inline constexpr double kStore[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5,   1,      2.5,   5,    10,    30,   60};
// A whole association or a STOW-RS request: 100 ms to an hour.
inline constexpr double kLong[] = {0.1, 0.25, 0.5, 1,   2.5, 5,    10,
                                   30,  60,   120, 300, 900, 1800, 3600};
}  // namespace buckets

// One series of a callback family, produced at scrape time.
struct Sample {
  std::vector<std::string> label_values;  // in the order of the family's label names
  double value = 0;
};
using SampleCallback = std::function<std::vector<Sample>()>;

// A frozen family, as collect() returns it and the exposition writes it.
struct Point {
  std::vector<std::string> label_values;
  std::variant<std::uint64_t, double, HistogramData> value;
};
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  std::vector<Point> points;
  bool callback_failed = false;  // the callback threw or returned a sample of the wrong shape
};

// All series of one metric name with the same label names; each set of label values is a child
// created on first use and kept for the registry's lifetime (so references stay valid).
template <typename T>
class Family {
 public:
  // Finds or creates the child. Takes a mutex: call it at set-up and keep the reference.
  // Aborts if the number of values differs from the number of label names.
  T& with(const std::vector<std::string>& label_values);
  const std::string& name() const { return name_; }

 private:
  friend class Registry;
  struct Child {
    std::vector<std::string> label_values;
    std::unique_ptr<T> metric;
  };
  Family(std::string name, std::vector<std::string> label_names, std::vector<double> bounds)
      : name_(std::move(name)), label_names_(std::move(label_names)), bounds_(std::move(bounds)) {}
  std::string name_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mutex_;
  std::vector<Child> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Owns every metric. Registration is thread-safe but meant for start-up; names are checked
// (Prometheus syntax, no ':' — reserved for recording rules — and no clash with another metric
// or a histogram's _bucket/_sum/_count) and a bad one aborts.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Unlabelled shortcuts.
  Counter& counter(std::string name, std::string help);
  Gauge& gauge(std::string name, std::string help);
  Histogram& histogram(std::string name, std::string help, std::span<const double> bounds);

  CounterFamily& counter_family(std::string name, std::string help,
                                std::vector<std::string> label_names);
  GaugeFamily& gauge_family(std::string name, std::string help,
                            std::vector<std::string> label_names);
  HistogramFamily& histogram_family(std::string name, std::string help,
                                    std::vector<std::string> label_names,
                                    std::span<const double> bounds);

  // Series computed at scrape time, on the scraping thread (the io_context): keep the callback
  // short. A throw is caught: if it throws, or returns a sample with the wrong number of label
  // values, the family is written without (those) samples and callback_failures() goes up.
  void gauge_callback(std::string name, std::string help, std::vector<std::string> label_names,
                      SampleCallback callback);
  void gauge_callback(std::string name, std::string help, std::function<double()> callback);
  void counter_callback(std::string name, std::string help, std::vector<std::string> label_names,
                        SampleCallback callback);

  // Runs at the start of every collect(), before any family is read: for refreshing several
  // gauges from one query. Same rules as a callback.
  void before_collect(std::function<void()> hook);

  // Every family, in registration order.
  std::vector<FamilySnapshot> collect() const;
  std::uint64_t callback_failures() const { return callback_failures_.value(); }

 private:
  struct Entry;
  Entry& add(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, std::vector<double> bounds);
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, const Entry*> taken_;  // every series name in use
  std::vector<std::function<void()>> hooks_;
  mutable Counter callback_failures_;
};

// The gateway's metrics: names, labels and buckets decided here, once (docs/metrics.md).
// Built by the daemon from its registry and the configured destination names; every labelled
// series exists from the start (at 0), so a scrape never lacks a destination.
struct DestinationMetrics {
  Counter& instances_sent;
  Counter& bytes_sent;
  Counter& instances_failed;   // permanent refusals and deliveries given up on
  Counter& instances_retried;  // transient failures rescheduled
  Histogram& stow_request_duration;
  Gauge& circuit_open;  // 1 while the circuit is open, else 0
  Gauge& backlog_instances;
  Gauge& backlog_bytes;
  Gauge& backlog_oldest_age_seconds;
  Counter& requests_held;  // whole requests answered with Retry-After: the destination waited
  Gauge& paced_rate;       // requests/s allowed after throttling (self-pacing); 0: not pacing
};

struct Backlog {
  std::string destination;
  double instances = 0;
  double bytes = 0;
  double oldest_age_seconds = 0;  // 0 when nothing is pending
};

class GatewayMetrics {
  struct Families;

 public:
  GatewayMetrics(Registry& registry, const std::vector<std::string>& destinations,
                 std::string_view version);
  ~GatewayMetrics();
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  // Ingest (the SCP; later the folder and HL7 inputs).
  Counter& instances_received_dicom;  // every acknowledged instance, duplicates included
  Counter& instances_received_folder;
  Counter& duplicates_received_dicom;  // acknowledged, already in the spool
  Counter& bytes_received_dicom;
  Counter& refused_prescan;
  Counter& refused_sop_mismatch;
  Counter& refused_spool_floor;
  Counter& refused_too_large;  // cut off while arriving: over max_object_size
  Counter& refused_spool_error;
  Counter& refused_catalog;
  Counter& refused_folder;  // watched-folder entries moved to rejected/ (units, not instances)
  Counter& associations_accepted;
  Counter& associations_rejected;
  Counter& associations_busy;          // refused: max_associations reached
  Counter& contexts_refused_abstract;  // presentation contexts: SOP class not accepted
  Counter& contexts_refused_transfer;  // presentation contexts: no proposed syntax offered
  Histogram& association_duration;     // accepted associations: acknowledge to release/abort
  Histogram& store_duration;           // C-STORE-RQ arrival to response (transfer included)
  Histogram& store_commit_duration;    // end of reception to response: pre-scan, spool, catalog
  // Policy.
  Counter& instances_quarantined;
  // Process.
  Gauge& up;

  // Aborts for a name that was not configured: resolve once, keep the reference.
  DestinationMetrics& destination(std::string_view name);

  // Called once per scrape; destinations it does not mention read 0. Set these before the
  // endpoint starts.
  void set_backlog_source(std::function<std::vector<Backlog>()> source);
  // Free bytes on the spool's file system (statvfs), read per scrape.
  void set_spool_free_source(std::function<double()> source);

 private:
  GatewayMetrics(Registry& registry, const std::vector<std::string>& destinations,
                 const Families& families);
  static Families make_families(Registry& registry, std::string_view version);
  void refresh_backlog();
  std::vector<std::unique_ptr<DestinationMetrics>> destination_list_;
  std::unordered_map<std::string, DestinationMetrics*> destinations_;
  std::mutex source_mutex_;
  std::function<std::vector<Backlog>()> backlog_source_;
  std::function<double()> spool_free_source_;
};

}  // namespace dirgw::metrics
