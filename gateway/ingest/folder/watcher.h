// Watched export folders (issue 12): inotify for promptness plus a periodic rescan (inotify loses
// events on overflow and across restarts). Each top-level entry is a unit: a file (Part 10, a
// dataset without meta, a zip) or a directory holding a DICOMDIR media tree. A unit is taken when
// it has settled (settle.h); symbolic links, fifos, sockets and devices are refused unopened.
// Only after all of a unit's objects are durable in spool and catalog is it moved to done/ (kept
// done_days) or deleted; what cannot be taken goes to rejected/ with a reason file beside it, so
// the folder never fills with retries of the same bad file. A crash at any point leaves the unit
// in the folder (taken again: the catalog dedups) or its objects safely in the spool.
//
// One thread for all folders: reading files and DCMTK's DICOMDIR parse block, so they stay off
// the daemon's io_context. step() is one pass a unit test drives on a FakeClock.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/files.h"
#include "config/folders_config.h"
#include "ingest/folder/folder_status.h"
#include "ingest/folder/intake.h"
#include "ingest/folder/settle.h"
#include "metrics/metrics.h"

namespace dirgw::ingest::folder {

class FolderWatcher {
 public:
  FolderWatcher(std::vector<config::FolderIngest> folders, const Spool& spool, ObjectSink& sink,
                PrescanLimits limits, const Clock& clock, ZipLimits zip = {},
                metrics::GatewayMetrics* metrics = nullptr, std::uint64_t spool_floor = 0);
  ~FolderWatcher();
  FolderWatcher(const FolderWatcher&) = delete;
  FolderWatcher& operator=(const FolderWatcher&) = delete;

  // Opens every folder (it must exist; done/ and rejected/ are created in it) and inotify.
  Result<void> open();
  // open() and the watcher thread.
  Result<void> start();
  void stop();

  // One pass over every folder that is due (or every folder when `all`); returns the time the
  // next pass is due.
  TimePoint step(bool all);
  std::vector<FolderStatus> status() const;
  // dirgw_folder_units_total{folder,outcome="taken|rejected"}, read at scrape time.
  void register_metrics(metrics::Registry& registry) const;
  // Before start: called when the spool is below its floor, before a file is left waiting;
  // true when it made room (retention removed verified objects: docs/verification.md).
  void set_make_room(std::function<bool()> make_room) { make_room_ = std::move(make_room); }
  // Before start: the transfer syntaxes a file may be in (Intake::set_transfer_syntaxes).
  void set_transfer_syntaxes(const std::set<std::string, std::less<>>& syntaxes);

 private:
  struct Folder;
  void run();
  void scan(Folder& f, TimePoint now);
  void handle(Folder& f, const std::string& name, TimePoint now);
  void settle_and_take(Folder& f, const std::string& name, const FileStamp& stamp, bool tree,
                       TimePoint now);
  void finish(Folder& f, const std::string& name, const UnitResult& r);
  bool refused_first_time(Folder& f, const std::string& name, const FileStamp& stamp);
  void take_back_grown(Folder& f, TimePoint now);
  void reject(Folder& f, const std::string& name, const std::string& reason,
              const std::string& detail);
  void prune_done(Folder& f, TimePoint now);
  bool drain_inotify();

  std::vector<std::unique_ptr<Folder>> folders_;
  const Spool& spool_;
  ObjectSink& sink_;
  PrescanLimits limits_;
  const Clock& clock_;
  ZipLimits zip_;
  metrics::GatewayMetrics* metrics_;
  std::uint64_t spool_floor_;  // below it nothing is taken (as the SCP refuses): files wait
  std::function<bool()> make_room_;
  UniqueFd inotify_;
  UniqueFd stop_read_, stop_write_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex status_mutex_;
};

}  // namespace dirgw::ingest::folder
