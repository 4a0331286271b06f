#include "audit/syslog.h"

#include "audit/export.h"
#include "audit/text.h"

namespace dirgw::audit {

namespace {

// PRINTUSASCII (33..126), at most `max` characters, "-" (NILVALUE) when empty.
std::string header_field(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() == max) break;
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 33 && u <= 126) ? c : '_';
  }
  return out.empty() ? "-" : out;
}

// SD-NAME: PRINTUSASCII except '=', SP, ']', '"'; 1..32 characters.
std::string sd_name(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() == 32) break;
    const auto u = static_cast<unsigned char>(c);
    const bool ok = u >= 33 && u <= 126 && c != '=' && c != ']' && c != '"';
    out += ok ? c : '_';
  }
  return out.empty() ? "_" : out;
}

void sd_param(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += sd_name(name);
  out += "=\"";
  for (char c : text::sanitize_utf8(value)) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace

std::string rfc5424_message(const Event& e, std::string_view xml, const SyslogContext& ctx) {
  const int severity = is_success(e) ? 5 : 4;
  const int facility = (ctx.facility >= 0 && ctx.facility <= 23) ? ctx.facility : 10;
  std::string out = "<";
  out += std::to_string(facility * 8 + severity);
  out += ">1 ";
  out += text::utc_timestamp_ms(e.at_ms);
  out += ' ';
  out += header_field(ctx.hostname, 255);
  out += ' ';
  out += header_field(ctx.app_name, 48);
  out += ' ';
  out += header_field(ctx.procid, 128);
  out += ' ';
  out += header_field(ctx.msgid, 32);
  out += " [";
  out += sd_name(ctx.sd_id);
  sd_param(out, "seq", std::to_string(e.seq));
  sd_param(out, "type", event_type_name(e.type));
  sd_param(out, "prev", e.prev_hash);
  sd_param(out, "hash", e.hash);
  out += "] \xEF\xBB\xBF";  // BOM: MSG is UTF-8
  out += text::sanitize_utf8(xml);
  return out;
}

std::string octet_counted(std::string_view message) {
  std::string out = std::to_string(message.size());
  out += ' ';
  out += message;
  return out;
}

Result<std::vector<std::string>> take_frames(std::string& buffer, std::size_t max_frame) {
  std::vector<std::string> frames;
  std::size_t pos = 0;
  while (pos < buffer.size()) {
    std::size_t len = 0;
    std::size_t i = pos;
    while (i < buffer.size() && buffer[i] >= '0' && buffer[i] <= '9') {
      if (i == pos && buffer[i] == '0')
        return make_error(ErrorCode::kProtocol, "syslog frame: length with a leading zero");
      len = len * 10 + static_cast<std::size_t>(buffer[i] - '0');
      if (len > max_frame) return make_error(ErrorCode::kProtocol, "syslog frame: too long");
      ++i;
    }
    if (i == buffer.size()) break;  // the length is still arriving
    if (buffer[i] != ' ' || i == pos)
      return make_error(ErrorCode::kProtocol, "syslog frame: expected MSG-LEN SP");
    if (buffer.size() - (i + 1) < len) break;  // the message is still arriving
    frames.emplace_back(buffer.substr(i + 1, len));
    pos = i + 1 + len;
  }
  buffer.erase(0, pos);
  return frames;
}

}  // namespace dirgw::audit
