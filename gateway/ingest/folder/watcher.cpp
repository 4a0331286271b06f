#include "ingest/folder/watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <set>

#include "ingest/folder/dicomdir.h"
#include "ingest/folder/safe_open.h"
#include "log/log.h"

namespace dirgw::ingest::folder {

namespace {

constexpr const char* kDone = "done";
constexpr const char* kRejected = "rejected";
constexpr std::size_t kMaxEntries = 100000;

// Entry names are never logged (an export may name its files after the patient).
bool ours_to_skip(const std::string& name) {
  return name == kDone || name == kRejected || name.empty() || name[0] == '.';
}

// A failed fsync of a move is not worth a retry: the objects are durable in spool and catalog
// already, and a unit that reappears after a power cut is taken again as duplicates.
void fsync_fd(int fd) { ::fsync(fd); }

// Moves dir/name into to/, under the same name or, when taken, name-1, name-2, ... The reason
// file (when given) is written durably first, beside where the entry will be.
Result<std::string> move_unique(int dir, const std::string& name, int to,
                                const std::string& reason_text) {
  for (int n = 0; n < 1000; ++n) {
    const std::string target = n == 0 ? name : name + "-" + std::to_string(n);
    struct stat st {};
    if (::fstatat(to, target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
    if (!reason_text.empty()) {
      const std::string reason_name = target + ".reason";
      if (::fstatat(to, reason_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
      UniqueFd fd(::openat(to, reason_name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
      if (!fd.valid()) return make_error(ErrorCode::kIo, "reason file: " + errno_text(errno));
      if (::write(fd.get(), reason_text.data(), reason_text.size()) !=
              static_cast<ssize_t>(reason_text.size()) ||
          ::fsync(fd.get()) != 0)
        return make_error(ErrorCode::kIo, "reason file: " + errno_text(errno));
    }
    if (::renameat2(dir, name.c_str(), to, target.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) continue;
      return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                        "rename: " + errno_text(errno));
    }
    fsync_fd(to);
    fsync_fd(dir);
    return target;
  }
  return make_error(ErrorCode::kIo, "no free name in the target folder");
}

Result<UniqueFd> open_or_make(int dir, const char* name) {
  if (::mkdirat(dir, name, 0750) == 0) fsync_fd(dir);
  return open_dir_at(dir, name);
}

}  // namespace

struct FolderWatcher::Folder {
  Folder(config::FolderIngest c, const Spool& spool, ObjectSink& sink, PrescanLimits limits,
         ZipLimits zip)
      : cfg(std::move(c)),
        settle(cfg.settle),
        intake(spool, sink, limits, zip, "folder:" + cfg.name) {
    status.name = cfg.name;
    status.path = cfg.path.string();
  }
  config::FolderIngest cfg;
  UniqueFd dir, done, rejected;
  int wd = -1;
  SettleTracker settle;
  Intake intake;
  bool dirty = true;
  TimePoint next_rescan{}, next_prune{};
  std::set<std::string> logged;  // units whose failure was logged already (by name, not logged)
  // Units refused once for what they hold, with their stamp then: refused for good only when
  // found the same a settle period later (settle_and_take).
  std::map<std::string, FileStamp> refused_once;
  // Files moved to rejected/ lately, by their name there: taken back when they change there (a
  // copy that stalled for longer than that and then went on writing).
  struct Watched {
    FileStamp stamp;
    TimePoint until;
  };
  std::map<std::string, Watched> rejected_watch;
  std::set<std::uint64_t> taken_back;  // inodes taken back once: a file that keeps changing is not
                                       // taken back again (a log written into the folder)
  FolderStatus status;                 // under status_mutex_
};

FolderWatcher::FolderWatcher(std::vector<config::FolderIngest> folders, const Spool& spool,
                             ObjectSink& sink, PrescanLimits limits, const Clock& clock,
                             ZipLimits zip, metrics::GatewayMetrics* metrics,
                             std::uint64_t spool_floor)
    : spool_(spool),
      sink_(sink),
      limits_(limits),
      clock_(clock),
      zip_(zip),
      metrics_(metrics),
      spool_floor_(spool_floor) {
  for (auto& c : folders)
    folders_.push_back(std::make_unique<Folder>(std::move(c), spool_, sink_, limits_, zip_));
}

FolderWatcher::~FolderWatcher() { stop(); }

void FolderWatcher::set_transfer_syntaxes(const std::set<std::string, std::less<>>& syntaxes) {
  for (auto& f : folders_) f->intake.set_transfer_syntaxes(syntaxes);
}

Result<void> FolderWatcher::open() {
  inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_.valid()) return make_error(ErrorCode::kIo, "inotify: " + errno_text(errno));
  for (auto& f : folders_) {
    f->dir.reset(::open(f->cfg.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!f->dir.valid())
      return make_error(ErrorCode::kConfig, "ingest.folders: cannot open the folder '" +
                                                f->cfg.name + "': " + errno_text(errno));
    auto done = open_or_make(f->dir.get(), kDone);
    auto rejected = open_or_make(f->dir.get(), kRejected);
    if (!done || !rejected)
      return make_error(ErrorCode::kConfig,
                        "ingest.folders: cannot make done/ and rejected/ in '" + f->cfg.name + "'");
    f->done = std::move(*done);
    f->rejected = std::move(*rejected);
    f->wd = ::inotify_add_watch(
        inotify_.get(), f->cfg.path.c_str(),
        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_ONLYDIR);
    if (f->wd < 0)  // the rescan still finds everything, only later
      log::warn("folder not watched by inotify, rescans only",
                {{"folder", f->cfg.name}, {"error", errno_text(errno)}});
  }
  return {};
}

Result<void> FolderWatcher::start() {
  if (auto r = open(); !r) return r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
    return make_error(ErrorCode::kIo, "pipe: " + errno_text(errno));
  stop_read_.reset(p[0]);
  stop_write_.reset(p[1]);
  thread_ = std::thread([this] { run(); });
  return {};
}

void FolderWatcher::stop() {
  stopping_ = true;
  if (stop_write_.valid()) [[maybe_unused]]
    ssize_t n = ::write(stop_write_.get(), "x", 1);
  if (thread_.joinable()) thread_.join();
}

void FolderWatcher::run() {
  while (!stopping_) {
    const TimePoint due = step(false);
    const auto wait = std::chrono::duration_cast<Millis>(due - clock_.now()).count();
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    // At least 10 ms: a unit that fails on our side waits for the rescan, never spins.
    const int rc = ::poll(fds, 2, static_cast<int>(std::clamp<std::int64_t>(wait, 10, 60000)));
    if (rc > 0 && (fds[0].revents & POLLIN) != 0) drain_inotify();
  }
}

bool FolderWatcher::drain_inotify() {
  alignas(inotify_event) char buf[16384];
  bool any = false;
  for (;;) {
    const ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
      for (auto& f : folders_)
        if (e->wd == f->wd || (e->mask & IN_Q_OVERFLOW) != 0) f->dirty = true;
      any = true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  return any;
}

TimePoint FolderWatcher::step(bool all) {
  const TimePoint now = clock_.now();
  TimePoint next = now + std::chrono::hours(1);
  for (auto& f : folders_) {
    const auto settle_due = f->settle.next_due();
    if (all || f->dirty || now >= f->next_rescan || (settle_due && now >= *settle_due)) {
      scan(*f, now);
      if (now >= f->next_prune) {
        prune_done(*f, now);
        f->next_prune = now + std::min<Millis>(f->cfg.rescan, std::chrono::hours(1));
      }
    }
    next = std::min(next, f->next_rescan);
    if (auto d = f->settle.next_due()) next = std::min(next, *d);
  }
  return next;
}

void FolderWatcher::scan(Folder& f, TimePoint now) {
  f.dirty = false;
  f.next_rescan = now + f.cfg.rescan;
  auto names = list_names(f.dir.get(), kMaxEntries);
  if (!names) {
    std::lock_guard lock(status_mutex_);
    f.status.last_error = "cannot list the folder: " + names.error().to_string();
    return;
  }
  std::set<std::string> present;
  for (const auto& n : *names)
    if (!ours_to_skip(n)) present.insert(n);
  f.settle.keep_only(present);
  for (auto it = f.logged.begin(); it != f.logged.end();)
    it = present.count(*it) != 0 ? std::next(it) : f.logged.erase(it);
  for (auto it = f.refused_once.begin(); it != f.refused_once.end();)
    it = present.count(it->first) != 0 ? std::next(it) : f.refused_once.erase(it);
  take_back_grown(f, now);
  for (const auto& name : present) {
    if (stopping_) break;
    handle(f, name, now);
  }
  std::lock_guard lock(status_mutex_);
  f.status.last_scan_at = to_epoch_ms(now);
  f.status.next_scan_at = to_epoch_ms(f.next_rescan);
}

void FolderWatcher::handle(Folder& f, const std::string& name, TimePoint now) {
  const EntryInfo info = look_at(f.dir.get(), name);
  switch (info.kind) {
    case EntryKind::kGone:
      return;
    case EntryKind::kRegular:
      return settle_and_take(f, name, info.stamp, false, now);
    case EntryKind::kDirectory: {
      auto d = open_dir_at(f.dir.get(), name);
      if (!d) return;
      auto stamp = tree_stamp(d->get());
      if (!stamp) {
        if (stamp.error().code == ErrorCode::kRefused)
          reject(f, name, "tree_limits", kTreeLimitsDetail);
        return;
      }
      stamp->ino = info.stamp.ino;
      return settle_and_take(f, name, *stamp, true, now);
    }
    default:  // refused unopened
      return reject(f, name, std::string(kind_reason(info.kind)),
                    "not a regular file or directory: refused without being opened");
  }
}

void FolderWatcher::settle_and_take(Folder& f, const std::string& name, const FileStamp& stamp,
                                    bool tree, TimePoint now) {
  if (!f.settle.observe(name, stamp, now)) return;
  f.settle.forget(name);  // whatever happens next, the unit waits for a new look
  if (spool_floor_ > 0) {
    auto free = free_bytes(spool_.root());
    if ((!free || *free < spool_floor_) && make_room_ && make_room_())
      free = free_bytes(spool_.root());
    if (!free || *free < spool_floor_) {
      // Back-pressure: the file stays in the folder until the spool has room again.
      return finish(f, name,
                    {UnitKind::kRetry, "spool_floor",
                     "spool below its free-space floor: files wait in the folder", 0, 0, 0});
    }
  }
  UnitResult r =
      tree ? f.intake.take_tree(f.dir.get(), name, stamp) : f.intake.take_file(f.dir.get(), name);
  if (r.kind == UnitKind::kRejected && refused_first_time(f, name, stamp)) {
    r.kind = UnitKind::kChanged;  // what it holds so far stays; it is read again after settle
    f.settle.restart(name, stamp, now);  // due a settle period from now, whatever its mtime
  } else {
    f.refused_once.erase(name);
  }
  finish(f, name, r);
}

// A copy that stalls for longer than settle (a network share, a USB hiccup, a slow VPN) reads as
// a truncated object, or not DICOM at all, the first time: a unit refused for what it holds is
// looked at again after another settle period, and rejected only when it is still the same.
bool FolderWatcher::refused_first_time(Folder& f, const std::string& name, const FileStamp& stamp) {
  auto it = f.refused_once.find(name);
  if (it != f.refused_once.end() && it->second == stamp) return false;
  f.refused_once[name] = stamp;
  log::info(
      "folder: entry refused once; read again after another settle period before it is "
      "rejected (a copy may still be under way)",
      {{"folder", f.cfg.name}});
  return true;
}

// A file in rejected/ that changed since its rejection was still being written (a copy that
// stalled for longer than two settle periods, then went on): it goes back into the folder, its
// reason file goes, and it is taken as a new unit. Watched for an hour; not across restarts.
void FolderWatcher::take_back_grown(Folder& f, TimePoint now) {
  for (auto it = f.rejected_watch.begin(); it != f.rejected_watch.end();) {
    const EntryInfo info = look_at(f.rejected.get(), it->first);
    // Gone, past its hour, or another file under the name (an operator's): left alone.
    if (now > it->second.until || info.kind != EntryKind::kRegular ||
        info.stamp.ino != it->second.stamp.ino) {
      it = f.rejected_watch.erase(it);
      continue;
    }
    if (info.stamp == it->second.stamp) {
      ++it;
      continue;
    }
    if (auto back = move_unique(f.rejected.get(), it->first, f.dir.get(), ""); back) {
      (void)::unlinkat(f.rejected.get(), (it->first + ".reason").c_str(), 0);
      fsync_fd(f.rejected.get());
      log::warn(
          "folder: a rejected file changed after its rejection (still being written): "
          "taken back into the folder to be read again",
          {{"folder", f.cfg.name}});
      f.dirty = true;
      if (f.taken_back.size() < 10000) f.taken_back.insert(info.stamp.ino);
    }
    it = f.rejected_watch.erase(it);
  }
}

// What happens to a unit after the intake said what it made of it.
void FolderWatcher::finish(Folder& f, const std::string& name, const UnitResult& r) {
  {
    std::lock_guard lock(status_mutex_);
    f.status.objects_stored += static_cast<std::uint64_t>(r.stored);
    f.status.objects_duplicate += static_cast<std::uint64_t>(r.duplicates);
  }
  if (metrics_ != nullptr)
    metrics_->instances_received_folder.inc(static_cast<std::uint64_t>(r.stored + r.duplicates));
  const log::Field folder{"folder", f.cfg.name};
  if (r.meta_rewritten > 0 && r.kind != UnitKind::kRetry && r.kind != UnitKind::kChanged)
    // The dataset is the sender's; the meta header in front of it is the file's, and ours now.
    // Said once per unit (a unit taken again after a retry would say it again), whether the unit
    // is taken or rejected for something else, so that IT staff can tell the exporter.
    log::warn(
        "folder: meta header written again from the dataset",
        {folder, {"objects", std::to_string(r.meta_rewritten)}, {"first", r.first_meta_rewrite}});
  switch (r.kind) {
    case UnitKind::kTaken: {
      Result<void> after;
      if (f.cfg.after == "delete") {
        after = remove_at(f.dir.get(), name);
        fsync_fd(f.dir.get());
      } else if (auto moved = move_unique(f.dir.get(), name, f.done.get(), ""); !moved) {
        if (moved.error().code != ErrorCode::kNotFound) after = moved.error();
      }
      if (!after) {
        if (f.logged.insert(name).second)
          log::error("folder: objects taken, but the file cannot be moved or deleted",
                     {folder, {"error", after.error().to_string()}});
        std::lock_guard lock(status_mutex_);
        f.status.last_error = after.error().to_string();
        return;
      }
      log::info("folder: taken", {folder,
                                  {"stored", std::to_string(r.stored)},
                                  {"duplicates", std::to_string(r.duplicates)}});
      std::lock_guard lock(status_mutex_);
      ++f.status.units_taken;
      f.status.last_error.clear();  // our side works again
      return;
    }
    case UnitKind::kRejected:
      return reject(f, name, r.reason, r.detail);
    case UnitKind::kRetry:
      if (f.logged.insert(name).second)
        log::warn("folder: cannot take a file now, will retry at the next rescan",
                  {folder, {"reason", r.reason}, {"error", r.detail}});
      {
        std::lock_guard lock(status_mutex_);
        f.status.last_error = r.detail;
      }
      return;
    case UnitKind::kGone:
      // Deleted by someone else while we read it: what was read is kept (the file had settled,
      // every object is whole and durable); nothing is left to move. Said once: it is gone.
      if (!r.detail.empty())
        log::warn("folder: entry deleted while being read",
                  {folder,
                   {"detail", r.detail},
                   {"stored", std::to_string(r.stored)},
                   {"duplicates", std::to_string(r.duplicates)}});
      return;
    case UnitKind::kChanged:
      return;
  }
}

void FolderWatcher::reject(Folder& f, const std::string& name, const std::string& reason,
                           const std::string& detail) {
  f.settle.forget(name);
  const std::string text = "reason: " + reason + "\ndetail: " + detail + "\nfolder: " + f.cfg.name +
                           "\nat: " + format_utc(clock_.now()) + "\n";
  auto moved = move_unique(f.dir.get(), name, f.rejected.get(), text);
  if (!moved) {
    if (moved.error().code != ErrorCode::kNotFound && f.logged.insert(name).second)
      log::error(
          "folder: cannot move a refused entry to rejected/",
          {{"folder", f.cfg.name}, {"reason", reason}, {"error", moved.error().to_string()}});
    return;
  }
  log::warn("folder: entry rejected",
            {{"folder", f.cfg.name}, {"reason", reason}, {"detail", detail}});
  if (const EntryInfo info = look_at(f.rejected.get(), *moved);
      info.kind == EntryKind::kRegular && f.taken_back.count(info.stamp.ino) == 0)
    f.rejected_watch[*moved] = {info.stamp, clock_.now() + std::chrono::hours(1)};
  // Beside the C-STORE refusals: dirgw status shows the last, the metrics count them.
  sink_.refused(DoorRefusal{"", "", "folder " + f.cfg.name + ": " + reason + ": " + detail,
                            refusal::kFolderRejected, false, "folder:" + f.cfg.name});
  if (metrics_ != nullptr) metrics_->refused_folder.inc();
  std::lock_guard lock(status_mutex_);
  ++f.status.rejected;
}

void FolderWatcher::prune_done(Folder& f, TimePoint now) {
  auto names = list_names(f.done.get(), kMaxEntries);
  if (!names) return;
  const std::int64_t keep_ns = std::int64_t{f.cfg.done_days} * 24 * 3600 * 1000000000LL;
  const std::int64_t now_ns = to_epoch_ms(now) * 1000000;
  for (const auto& n : *names) {
    struct stat st {};
    if (::fstatat(f.done.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    // ctime: when it was moved here (a rename changes it; the file's own mtime may be old).
    const std::int64_t moved_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
    if (now_ns - moved_ns >= keep_ns) (void)remove_at(f.done.get(), n);
  }
}

std::vector<FolderStatus> FolderWatcher::status() const {
  std::lock_guard lock(status_mutex_);
  std::vector<FolderStatus> out;
  for (const auto& f : folders_) out.push_back(f->status);
  return out;
}

void FolderWatcher::register_metrics(metrics::Registry& registry) const {
  registry.counter_callback(
      "dirgw_folder_units_total",
      "Units (files, zips, media trees) of watched folders taken or moved to rejected/",
      {"folder", "outcome"}, [this] {
        std::vector<metrics::Sample> out;
        for (const auto& s : status()) {
          out.push_back({{s.name, "taken"}, static_cast<double>(s.units_taken)});
          out.push_back({{s.name, "rejected"}, static_cast<double>(s.rejected)});
        }
        return out;
      });
}

}  // namespace dirgw::ingest::folder
