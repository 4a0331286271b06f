#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>
#include <type_traits>

namespace dirgw::metrics {

namespace {

// A registration error is a bug in the code that registers, not an input: stop loudly.
[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "dirgw metrics: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool name_char(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_identifier(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0)) return false;
  return true;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::vector<double> checked_bounds(const std::string& name, std::span<const double> bounds) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]))
      fail("histogram " + quoted(name) + ": bucket bounds must be finite (+Inf is implicit)");
    if (i > 0 && !(bounds[i] > bounds[i - 1]))
      fail("histogram " + quoted(name) + ": bucket bounds must be strictly increasing");
  }
  return {bounds.begin(), bounds.end()};
}

}  // namespace

std::string_view to_string(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool valid_metric_name(std::string_view name) { return valid_identifier(name); }

bool valid_label_name(std::string_view name) {
  return valid_identifier(name) && !name.starts_with("__");
}

// ---- Histogram ---------------------------------------------------------------------------

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(checked_bounds("(anonymous)", bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::observe(double value) noexcept {
  if (std::isnan(value)) return;  // would poison _sum for the rest of the process
  // Prometheus buckets are "less than or equal".
  std::size_t i = 0;
  while (i < bounds_.size() && !(value <= bounds_[i])) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramData Histogram::snapshot() const {
  HistogramData d;
  d.bounds = bounds_;
  d.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    d.cumulative[i] = running;
  }
  d.sum = sum_.load(std::memory_order_relaxed);
  return d;
}

// ---- Family ------------------------------------------------------------------------------

template <typename T>
T& Family<T>::with(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size())
    fail("metric " + quoted(name_) + " has " + std::to_string(label_names_.size()) +
         " label(s), given " + std::to_string(label_values.size()) + " value(s)");
  std::lock_guard lock(mutex_);
  for (auto& c : children_)
    if (c.label_values == label_values) return *c.metric;
  std::unique_ptr<T> metric;
  if constexpr (std::is_same_v<T, Histogram>)
    metric = std::make_unique<Histogram>(bounds_);
  else
    metric = std::make_unique<T>();
  children_.push_back(Child{label_values, std::move(metric)});
  return *children_.back().metric;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----------------------------------------------------------------------------

struct Registry::Entry {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;
  SampleCallback callback;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::add(std::string name, std::string help, MetricType type,
                               std::vector<std::string> label_names, std::vector<double> bounds) {
  if (!valid_metric_name(name)) fail("invalid metric name " + quoted(name));
  std::set<std::string_view> seen;
  for (const auto& l : label_names) {
    if (!valid_label_name(l)) fail("metric " + quoted(name) + ": invalid label name " + quoted(l));
    if (type == MetricType::kHistogram && l == "le")
      fail("histogram " + quoted(name) + ": label name \"le\" is reserved");
    if (!seen.insert(l).second) fail("metric " + quoted(name) + ": duplicate label " + quoted(l));
  }
  std::vector<std::string> series{name};
  if (type == MetricType::kHistogram) {
    series.push_back(name + "_bucket");
    series.push_back(name + "_sum");
    series.push_back(name + "_count");
  }

  std::lock_guard lock(mutex_);
  for (const auto& s : series)
    if (taken_.contains(s))
      fail("metric " + quoted(name) + ": series name " + quoted(s) + " already registered by " +
           quoted(taken_.at(s)->name));
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  entry->label_names = label_names;
  switch (type) {
    case MetricType::kCounter:
      entry->counters.reset(new CounterFamily(entry->name, std::move(label_names), {}));
      break;
    case MetricType::kGauge:
      entry->gauges.reset(new GaugeFamily(entry->name, std::move(label_names), {}));
      break;
    case MetricType::kHistogram:
      entry->histograms.reset(
          new HistogramFamily(entry->name, std::move(label_names), std::move(bounds)));
      break;
  }
  for (const auto& s : series) taken_.emplace(s, entry.get());
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Counter& Registry::counter(std::string name, std::string help) {
  return counter_family(std::move(name), std::move(help), {}).with({});
}

Gauge& Registry::gauge(std::string name, std::string help) {
  return gauge_family(std::move(name), std::move(help), {}).with({});
}

Histogram& Registry::histogram(std::string name, std::string help, std::span<const double> bounds) {
  return histogram_family(std::move(name), std::move(help), {}, bounds).with({});
}

CounterFamily& Registry::counter_family(std::string name, std::string help,
                                        std::vector<std::string> label_names) {
  return *add(std::move(name), std::move(help), MetricType::kCounter, std::move(label_names), {})
              .counters;
}

GaugeFamily& Registry::gauge_family(std::string name, std::string help,
                                    std::vector<std::string> label_names) {
  return *add(std::move(name), std::move(help), MetricType::kGauge, std::move(label_names), {})
              .gauges;
}

HistogramFamily& Registry::histogram_family(std::string name, std::string help,
                                            std::vector<std::string> label_names,
                                            std::span<const double> bounds) {
  auto checked = checked_bounds(name, bounds);
  return *add(std::move(name), std::move(help), MetricType::kHistogram, std::move(label_names),
              std::move(checked))
              .histograms;
}

void Registry::gauge_callback(std::string name, std::string help,
                              std::vector<std::string> label_names, SampleCallback callback) {
  if (!callback) fail("metric " + quoted(name) + ": empty callback");
  // The family object is created but never used: a callback entry is written from its samples.
  auto& e = add(std::move(name), std::move(help), MetricType::kGauge, std::move(label_names), {});
  std::lock_guard lock(mutex_);
  e.callback = std::move(callback);
}

void Registry::gauge_callback(std::string name, std::string help,
                              std::function<double()> callback) {
  if (!callback) fail("metric " + quoted(name) + ": empty callback");
  gauge_callback(std::move(name), std::move(help), {}, [cb = std::move(callback)] {
    return std::vector<Sample>{Sample{{}, cb()}};
  });
}

void Registry::counter_callback(std::string name, std::string help,
                                std::vector<std::string> label_names, SampleCallback callback) {
  if (!callback) fail("metric " + quoted(name) + ": empty callback");
  auto& e = add(std::move(name), std::move(help), MetricType::kCounter, std::move(label_names), {});
  std::lock_guard lock(mutex_);
  e.callback = std::move(callback);
}

void Registry::before_collect(std::function<void()> hook) {
  if (!hook) fail("empty before_collect hook");
  std::lock_guard lock(mutex_);
  hooks_.push_back(std::move(hook));
}

std::vector<FamilySnapshot> Registry::collect() const {
  // Copy what to visit, then run hooks and callbacks without the registry lock: a callback
  // may take locks of its own (the catalog's) and must not be able to deadlock a registration.
  std::vector<const Entry*> entries;
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& e : entries_) entries.push_back(e.get());
    hooks = hooks_;
  }
  for (const auto& hook : hooks) {
    try {
      hook();
    } catch (...) {
      callback_failures_.inc();
    }
  }

  std::vector<FamilySnapshot> out;
  out.reserve(entries.size());
  for (const Entry* e : entries) {
    FamilySnapshot f;
    f.name = e->name;
    f.help = e->help;
    f.type = e->type;
    f.label_names = e->label_names;
    SampleCallback callback;
    {
      std::lock_guard lock(mutex_);
      callback = e->callback;
    }
    if (callback) {
      try {
        for (auto& s : callback()) {
          if (s.label_values.size() != f.label_names.size()) {
            f.callback_failed = true;
            continue;
          }
          f.points.push_back(Point{std::move(s.label_values), s.value});
        }
      } catch (...) {
        f.callback_failed = true;
        f.points.clear();
      }
      if (f.callback_failed) callback_failures_.inc();
    } else if (e->counters) {
      std::lock_guard lock(e->counters->mutex_);
      for (const auto& c : e->counters->children_)
        f.points.push_back(Point{c.label_values, c.metric->value()});
    } else if (e->gauges) {
      std::lock_guard lock(e->gauges->mutex_);
      for (const auto& c : e->gauges->children_)
        f.points.push_back(Point{c.label_values, c.metric->value()});
    } else if (e->histograms) {
      std::lock_guard lock(e->histograms->mutex_);
      for (const auto& c : e->histograms->children_)
        f.points.push_back(Point{c.label_values, c.metric->snapshot()});
    }
    out.push_back(std::move(f));
  }
  return out;
}

// ---- GatewayMetrics ----------------------------------------------------------------------

struct GatewayMetrics::Families {
  CounterFamily& received;
  CounterFamily& duplicates;
  CounterFamily& bytes_received;
  CounterFamily& refused;
  CounterFamily& associations;
  CounterFamily& contexts_refused;
  Histogram& association_duration;
  Histogram& store_duration;
  Histogram& store_commit_duration;
  Counter& quarantined;
  Gauge& up;
  CounterFamily& sent;
  CounterFamily& bytes_sent;
  CounterFamily& failed;
  CounterFamily& retried;
  HistogramFamily& stow_duration;
  GaugeFamily& circuit_open;
  GaugeFamily& backlog_instances;
  GaugeFamily& backlog_bytes;
  GaugeFamily& backlog_age;
  CounterFamily& held;
  GaugeFamily& paced_rate;
};

// Over 80 lines: one statement per metric family, in the order docs/metrics.md lists them.
GatewayMetrics::Families GatewayMetrics::make_families(Registry& r, std::string_view version) {
  // Registration order is exposition order: ingest, delivery, process.
  auto& received = r.counter_family(
      "dirgw_instances_received_total",
      "Instances received and acknowledged (duplicates included), by input.", {"source"});
  auto& duplicates = r.counter_family(
      "dirgw_instances_duplicate_total",
      "Instances received that were already in the spool (acknowledged, stored once).", {"source"});
  auto& bytes_received =
      r.counter_family("dirgw_bytes_received_total",
                       "Bytes of instances received and acknowledged, by input.", {"source"});
  auto& refused = r.counter_family("dirgw_instances_refused_total",
                                   "Instances refused on ingest, by reason.", {"reason"});
  auto& associations = r.counter_family("dirgw_associations_total",
                                        "DICOM associations requested, by result.", {"result"});
  auto& contexts_refused =
      r.counter_family("dirgw_presentation_contexts_refused_total",
                       "Presentation contexts the DICOM receiver refused, by reason.", {"reason"});
  auto& association_duration = r.histogram(
      "dirgw_association_duration_seconds",
      "Duration of accepted DICOM associations, from accept to release or abort.", buckets::kLong);
  auto& store_duration = r.histogram(
      "dirgw_store_duration_seconds",
      "Time from a C-STORE request's arrival to its response, transfer included.", buckets::kStore);
  auto& store_commit_duration = r.histogram(
      "dirgw_store_commit_duration_seconds",
      "Time from the end of a C-STORE's reception to its response: pre-scan, spool, catalog.",
      buckets::kStore);
  auto& quarantined =
      r.counter("dirgw_instances_quarantined_total", "Instances moved to quarantine by policy.");
  auto& sent = r.counter_family("dirgw_instances_sent_total",
                                "Instances the destination acknowledged.", {"destination"});
  auto& bytes_sent =
      r.counter_family("dirgw_bytes_sent_total", "Bytes of instances the destination acknowledged.",
                       {"destination"});
  auto& failed = r.counter_family(
      "dirgw_instances_failed_total",
      "Instances that failed permanently for a destination (refused, or retries spent).",
      {"destination"});
  auto& retried = r.counter_family("dirgw_instances_retried_total",
                                   "Instance deliveries rescheduled after a transient failure.",
                                   {"destination"});
  auto& stow_duration = r.histogram_family("dirgw_stow_request_duration_seconds",
                                           "Duration of STOW-RS requests, whatever their outcome.",
                                           {"destination"}, buckets::kLong);
  auto& circuit_open = r.gauge_family(
      "dirgw_circuit_open",
      "1 while the destination's circuit breaker is open (not sending), else 0.", {"destination"});
  auto& backlog_instances =
      r.gauge_family("dirgw_backlog_instances", "Instances waiting to be sent to the destination.",
                     {"destination"});
  auto& backlog_bytes = r.gauge_family(
      "dirgw_backlog_bytes", "Bytes waiting to be sent to the destination.", {"destination"});
  auto& backlog_age =
      r.gauge_family("dirgw_backlog_oldest_age_seconds",
                     "Age of the oldest instance waiting for the destination; 0 when none waits.",
                     {"destination"});
  auto& held = r.counter_family(
      "dirgw_requests_retry_after_total",
      "Requests the destination answered with Retry-After (429/503): it was left alone as told.",
      {"destination"});
  auto& paced_rate = r.gauge_family(
      "dirgw_paced_request_rate",
      "Requests per second the gateway allows itself to the destination after being throttled "
      "(self-pacing, AIMD); 0 while not pacing.",
      {"destination"});
  auto& up = r.gauge("dirgw_up", "1 while the daemon runs.");
  r.gauge_family("dirgw_build_info", "Always 1; the version in a label.", {"version"})
      .with({std::string(version)})
      .set(1);
  return GatewayMetrics::Families{received,
                                  duplicates,
                                  bytes_received,
                                  refused,
                                  associations,
                                  contexts_refused,
                                  association_duration,
                                  store_duration,
                                  store_commit_duration,
                                  quarantined,
                                  up,
                                  sent,
                                  bytes_sent,
                                  failed,
                                  retried,
                                  stow_duration,
                                  circuit_open,
                                  backlog_instances,
                                  backlog_bytes,
                                  backlog_age,
                                  held,
                                  paced_rate};
}

GatewayMetrics::GatewayMetrics(Registry& registry, const std::vector<std::string>& destinations,
                               std::string_view version)
    : GatewayMetrics(registry, destinations, make_families(registry, version)) {}

GatewayMetrics::GatewayMetrics(Registry& registry, const std::vector<std::string>& destinations,
                               const Families& f)
    : instances_received_dicom(f.received.with({"dicom"})),
      instances_received_folder(f.received.with({"folder"})),
      duplicates_received_dicom(f.duplicates.with({"dicom"})),
      bytes_received_dicom(f.bytes_received.with({"dicom"})),
      refused_prescan(f.refused.with({"prescan"})),
      refused_sop_mismatch(f.refused.with({"sop_mismatch"})),
      refused_spool_floor(f.refused.with({"spool_floor"})),
      refused_too_large(f.refused.with({"too_large"})),
      refused_spool_error(f.refused.with({"spool_error"})),
      refused_catalog(f.refused.with({"catalog"})),
      refused_folder(f.refused.with({"folder"})),
      associations_accepted(f.associations.with({"accepted"})),
      associations_rejected(f.associations.with({"rejected"})),
      associations_busy(f.associations.with({"busy"})),
      contexts_refused_abstract(f.contexts_refused.with({"abstract_syntax"})),
      contexts_refused_transfer(f.contexts_refused.with({"transfer_syntax"})),
      association_duration(f.association_duration),
      store_duration(f.store_duration),
      store_commit_duration(f.store_commit_duration),
      instances_quarantined(f.quarantined),
      up(f.up) {
  for (const auto& name : destinations) {
    if (destinations_.contains(name)) continue;
    const std::vector<std::string> l{name};
    destination_list_.push_back(std::make_unique<DestinationMetrics>(DestinationMetrics{
        f.sent.with(l), f.bytes_sent.with(l), f.failed.with(l), f.retried.with(l),
        f.stow_duration.with(l), f.circuit_open.with(l), f.backlog_instances.with(l),
        f.backlog_bytes.with(l), f.backlog_age.with(l), f.held.with(l), f.paced_rate.with(l)}));
    destinations_.emplace(name, destination_list_.back().get());
  }
  up.set(1);
  registry.before_collect([this] { refresh_backlog(); });
  registry.gauge_callback(
      "dirgw_spool_free_bytes",
      "Free bytes on the spool's file system (the SCP refuses below its floor).", {}, [this] {
        std::lock_guard lock(source_mutex_);
        if (!spool_free_source_) return std::vector<Sample>{};
        return std::vector<Sample>{Sample{{}, spool_free_source_()}};
      });
}

GatewayMetrics::~GatewayMetrics() = default;

DestinationMetrics& GatewayMetrics::destination(std::string_view name) {
  auto it = destinations_.find(std::string(name));
  if (it == destinations_.end()) fail("no metrics for destination " + quoted(name));
  return *it->second;
}

void GatewayMetrics::set_backlog_source(std::function<std::vector<Backlog>()> source) {
  std::lock_guard lock(source_mutex_);
  backlog_source_ = std::move(source);
}

void GatewayMetrics::set_spool_free_source(std::function<double()> source) {
  std::lock_guard lock(source_mutex_);
  spool_free_source_ = std::move(source);
}

void GatewayMetrics::refresh_backlog() {
  std::vector<Backlog> backlog;
  {
    std::lock_guard lock(source_mutex_);
    if (!backlog_source_) return;
    backlog = backlog_source_();
  }
  for (auto& d : destination_list_) {
    d->backlog_instances.set(0);
    d->backlog_bytes.set(0);
    d->backlog_oldest_age_seconds.set(0);
  }
  for (const auto& b : backlog) {
    auto it = destinations_.find(b.destination);
    if (it == destinations_.end()) continue;  // no longer configured: not a series
    it->second->backlog_instances.set(b.instances);
    it->second->backlog_bytes.set(b.bytes);
    it->second->backlog_oldest_age_seconds.set(b.oldest_age_seconds);
  }
}

}  // namespace dirgw::metrics
