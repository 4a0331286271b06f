// The Prometheus text exposition format, version 0.0.4: what GET /metrics answers.
// https://prometheus.io/docs/instrumenting/exposition_formats/
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"

namespace dirgw::metrics {

inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// "# HELP" (unless the help is empty), "# TYPE" and the samples of every family, in order; each
// line ends with '\n'. A family whose callback failed is written with a comment line saying so.
std::string render_text(const std::vector<FamilySnapshot>& families);
// collect() then render.
std::string render_text(const Registry& registry);

// HELP text: '\' and newline escaped. Label values: '\', '"' and newline escaped.
std::string escape_help(std::string_view text);
std::string escape_label_value(std::string_view value);
// Shortest text that reads back as the same double, whole numbers below 1e15 in plain digits;
// "+Inf", "-Inf", "NaN".
std::string format_value(double value);

}  // namespace dirgw::metrics
