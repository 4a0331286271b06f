#include "metrics/exposition.h"

#include <charconv>
#include <cmath>
#include <system_error>
#include <variant>

namespace dirgw::metrics {

namespace {

// {a="x",b="y"} with an optional extra label (le) last; nothing when there are no labels.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += escape_label_value(value);
    out += '"';
  };
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) one(names[i], values[i]);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out += '}';
}

void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view value,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  out += name;
  append_labels(out, names, values, extra_name, extra_value);
  out += ' ';
  out += value;
  out += '\n';
}

void append_histogram(std::string& out, const FamilySnapshot& f, const Point& p,
                      const HistogramData& h) {
  const std::string bucket = f.name + "_bucket";
  for (std::size_t i = 0; i < h.bounds.size(); ++i)
    append_sample(out, bucket, f.label_names, p.label_values, std::to_string(h.cumulative[i]), "le",
                  format_value(h.bounds[i]));
  append_sample(out, bucket, f.label_names, p.label_values, std::to_string(h.count()), "le",
                "+Inf");
  append_sample(out, f.name + "_sum", f.label_names, p.label_values, format_value(h.sum));
  append_sample(out, f.name + "_count", f.label_names, p.label_values, std::to_string(h.count()));
}

}  // namespace

std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  // Whole numbers (bytes, counts) in plain digits rather than the shorter "5e+09".
  const bool whole = std::trunc(value) == value && std::fabs(value) < 1e15;
  auto [end, ec] = whole ? std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "NaN";  // cannot happen: 32 bytes hold any shortest double
  return std::string(buf, end);
}

std::string render_text(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const auto& f : families) {
    if (!f.help.empty()) {
      out += "# HELP ";
      out += f.name;
      out += ' ';
      out += escape_help(f.help);
      out += '\n';
    }
    out += "# TYPE ";
    out += f.name;
    out += ' ';
    out += to_string(f.type);
    out += '\n';
    if (f.callback_failed) out += "# dirgw: the callback for this metric failed\n";
    for (const auto& p : f.points) {
      if (const auto* u = std::get_if<std::uint64_t>(&p.value))
        append_sample(out, f.name, f.label_names, p.label_values, std::to_string(*u));
      else if (const auto* d = std::get_if<double>(&p.value))
        append_sample(out, f.name, f.label_names, p.label_values, format_value(*d));
      else
        append_histogram(out, f, p, std::get<HistogramData>(p.value));
    }
  }
  return out;
}

std::string render_text(const Registry& registry) { return render_text(registry.collect()); }

}  // namespace dirgw::metrics
