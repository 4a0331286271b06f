#include "config/folders_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "config/config.h"

namespace dirgw::config {

namespace {

using std::chrono::milliseconds;

struct Errors {
  std::vector<ConfigError>& out;
  void add(const std::string& key, const YAML::Node& n, std::string message) {
    out.push_back({key, n.IsDefined() ? n.Mark().line + 1 : 0, std::move(message)});
  }
};

bool valid_folder_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return s != "." && s != "..";
}

// A scalar child, or nullptr (with an error when it is present but not a single value).
const std::string* scalar(Errors& e, const YAML::Node& item, const std::string& key,
                          const char* name) {
  const YAML::Node n = item[name];
  if (!n.IsDefined() || n.IsNull()) return nullptr;
  if (!n.IsScalar()) {
    e.add(key + "." + name, n, "must be a single value");
    return nullptr;
  }
  return &n.Scalar();
}

void read_duration(Errors& e, const YAML::Node& item, const std::string& key, const char* name,
                   milliseconds lo, milliseconds hi, milliseconds& out) {
  const std::string* v = scalar(e, item, key, name);
  if (v == nullptr) return;
  auto d = parse_duration(*v);
  if (!d)
    e.add(key + "." + name, item[name],
          "must be a duration such as 500ms, 5s or 1m, not '" + *v + "'");
  else if (*d < lo || *d > hi)
    e.add(key + "." + name, item[name],
          "must be between " + std::to_string(lo.count()) + "ms and " + std::to_string(hi.count()) +
              "ms");
  else
    out = *d;
}

void read_path(Errors& e, const YAML::Node& item, const std::string& key, FolderIngest& f) {
  const std::string* v = scalar(e, item, key, "path");
  if (v == nullptr) {
    e.add(key + ".path", item, "missing: the folder to watch (an absolute path)");
    return;
  }
  if (v->empty() || (*v)[0] != '/' || *v == "/")
    e.add(key + ".path", item["path"], "must be an absolute path below /, not '" + *v + "'");
  else if (v->size() > 4096 || v->find('\0') != std::string::npos)
    e.add(key + ".path", item["path"], "is not a usable path");
  else
    f.path = std::filesystem::path(*v).lexically_normal();
}

void read_after(Errors& e, const YAML::Node& item, const std::string& key, FolderIngest& f) {
  if (const std::string* v = scalar(e, item, key, "after")) {
    if (*v != "move" && *v != "delete")
      e.add(key + ".after", item["after"], "must be move or delete, not '" + *v + "'");
    else
      f.after = *v;
  }
  if (const std::string* v = scalar(e, item, key, "done_days")) {
    bool digits = !v->empty() && v->size() <= 4;
    for (char c : *v) digits = digits && c >= '0' && c <= '9';
    const int days = digits ? std::stoi(*v) : -1;
    if (days < 0 || days > 3650)
      e.add(key + ".done_days", item["done_days"],
            "must be a whole number of days from 0 to 3650, not '" + *v + "'");
    else if (f.after != "move")
      e.add(key + ".done_days", item["done_days"], "only applies with after: move");
    else
      f.done_days = days;
  }
}

FolderIngest read_one(Errors& e, const YAML::Node& item, const std::string& key) {
  FolderIngest f;
  static const std::set<std::string> kAllowed = {"path",      "name",   "after",
                                                 "done_days", "settle", "rescan"};
  for (const auto& kv : item) {
    const auto k = kv.first.as<std::string>();
    if (kAllowed.count(k) == 0)
      e.add(key + "." + k, kv.first,
            "unknown key (allowed here: after, done_days, name, path, rescan, settle)");
  }
  read_path(e, item, key, f);
  if (const std::string* v = scalar(e, item, key, "name")) {
    if (!valid_folder_name(*v))
      e.add(key + ".name", item["name"],
            "must be 1 to 64 letters, digits, '.', '-' or '_', not '" + *v + "'");
    else
      f.name = *v;
  } else {
    e.add(key + ".name", item, "missing: a short name shown in status (e.g. ct-export)");
  }
  read_after(e, item, key, f);
  read_duration(e, item, key, "settle", milliseconds(100), std::chrono::hours(1), f.settle);
  read_duration(e, item, key, "rescan", std::chrono::seconds(1), std::chrono::hours(24), f.rescan);
  return f;
}

bool nested(const std::filesystem::path& a, const std::filesystem::path& b) {
  auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return ia == a.end() || ib == b.end();
}

}  // namespace

void read_folders(const YAML::Node& ingest, const std::string& ingest_key,
                  std::vector<FolderIngest>& out, std::vector<ConfigError>& errors) {
  Errors e{errors};
  const YAML::Node list = ingest["folders"];
  const std::string key = ingest_key + ".folders";
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    e.add(key, list, "must be a list of folders ({path, name, after, done_days, settle})");
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string k = key + "[" + std::to_string(i) + "]";
    if (!list[i].IsMap()) {
      e.add(k, list[i], "must be a mapping with path and name");
      continue;
    }
    FolderIngest f = read_one(e, list[i], k);
    for (const auto& other : out) {
      if (!f.name.empty() && f.name == other.name)
        e.add(k + ".name", list[i]["name"], "the name '" + f.name + "' is used twice");
      if (!f.path.empty() && !other.path.empty() && nested(f.path, other.path))
        e.add(k + ".path", list[i]["path"],
              "overlaps the folder '" + other.name + "' (folders must not nest)");
    }
    out.push_back(std::move(f));
  }
}

}  // namespace dirgw::config
