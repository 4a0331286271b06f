// ingest.folders: the watched export folders (issue 12). Kept apart from config.cpp so that the
// folder keys live with their reader; config.cpp makes the one call.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace dirgw::config {

struct ConfigError;

struct FolderIngest {
  std::filesystem::path path;  // absolute; done/ and rejected/ are made inside it
  std::string name;            // shown in status and recorded as the source "folder:<name>"
  std::string after = "move";  // "move" to done/ (kept done_days), or "delete"
  int done_days = 7;
  // A file is taken once its size and modification time have not changed for this long.
  std::chrono::milliseconds settle{std::chrono::seconds(5)};
  // Full rescan interval (inotify wakes us sooner, but loses events on overflow and restarts).
  std::chrono::milliseconds rescan{std::chrono::seconds(60)};
};

// Reads ingest.folders (a list) from the ingest mapping; every problem names key and line.
void read_folders(const YAML::Node& ingest, const std::string& ingest_key,
                  std::vector<FolderIngest>& out, std::vector<ConfigError>& errors);

}  // namespace dirgw::config
