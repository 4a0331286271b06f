#include "ingest/spool/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>

#include "common/crypto.h"
#include "common/files.h"

namespace dirgw::ingest {

namespace fs = std::filesystem;

namespace {
constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kSlotPrefix = "slot-";
constexpr int kSlotBatch = 32;
// A new batch of slots is started on a spool thread when this few are left.
constexpr std::size_t kSlotLowWater = 16;
// At most this many spool threads (flushes of as many associations at once, and the top-up).
constexpr std::size_t kMaxWorkers = 8;

std::string shard_name(int i) { return {kHex[(i >> 4) & 0xf], kHex[i & 0xf]}; }

bool is_slot(const fs::path& p) { return p.filename().string().rfind(kSlotPrefix, 0) == 0; }

// Removes a temporary when it goes out of scope, unless kept.
struct TempGuard {
  const fs::path& p;
  bool keep = false;
  ~TempGuard() {
    if (!keep) ::unlink(p.c_str());
  }
};

// kSlotBatch new empty slots in `tmp`, their names made durable by one directory fsync.
Result<std::vector<fs::path>> create_slots(const fs::path& tmp) {
  std::vector<fs::path> made;
  for (int i = 0; i < kSlotBatch; ++i) {
    fs::path p = tmp / (std::string(kSlotPrefix) + random_hex(16));
    UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    if (!fd.valid()) {
      const int err = errno;
      for (const auto& m : made) ::unlink(m.c_str());
      return make_error(err == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo,
                        "create spool slot: " + errno_text(err));
    }
    made.push_back(std::move(p));
  }
  // One directory fsync makes the whole batch of names durable.
  if (auto r = fsync_dir(tmp); !r) {
    for (const auto& m : made) ::unlink(m.c_str());
    return r.error();
  }
  return made;
}
}  // namespace

struct EarlyFlush {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int err = 0;  // errno of a failed open or fdatasync

  void finish(int e) {
    {
      std::lock_guard lock(mutex);
      err = e;
      done = true;
    }
    cv.notify_all();
  }
  int wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done; });
    return err;
  }
};

struct Spool::Slots {
  std::mutex mutex;
  std::vector<fs::path> free;
  bool topping_up = false;  // a batch of slots is being created on a spool thread
  // Bumped by remove_temporaries(): a top-up begun before it does not hand out its slots, which
  // may have been removed meanwhile (a slot must exist, durably, before it is used).
  std::uint64_t generation = 0;
  struct Linked {
    fs::path slot, shard;
  };
  std::vector<Linked> linked;  // committed slots whose link is not durable yet
  // Committed slots whose shard directory's fsync failed: kept, never unlinked in this run. A
  // second fsync after an I/O error may succeed without writing what the first failed to write
  // (the kernel reports a write-back error once and may drop the page), so only a restart,
  // which links each kept slot's object name again and fsyncs the directory, lets them go.
  std::vector<Linked> kept;
  std::string kept_error;

  // The spool's threads: started when work finds none idle, at most kMaxWorkers; they drain
  // what is queued and are joined when the last copy of the Spool goes.
  std::mutex work_mutex;
  std::condition_variable work_cv;
  std::deque<std::function<void()>> work;
  std::vector<std::thread> workers;
  std::size_t idle = 0;
  bool stopping = false;

  void submit(std::function<void()> task) {
    std::unique_lock lock(work_mutex);
    if (work.size() >= idle && workers.size() < kMaxWorkers) {
      try {
        workers.emplace_back([this] { run(); });
      } catch (const std::system_error&) {
        // No thread to be had: with none at all, the caller does the work itself (a slower
        // path, never a lost flush); otherwise the running ones take it in turn.
        if (workers.empty()) {
          lock.unlock();
          task();
          return;
        }
      }
    }
    work.push_back(std::move(task));
    lock.unlock();
    work_cv.notify_one();
  }

  void run() {
    std::unique_lock lock(work_mutex);
    for (;;) {
      ++idle;
      work_cv.wait(lock, [&] { return stopping || !work.empty(); });
      --idle;
      if (work.empty()) return;  // stopping, and nothing left to do
      auto task = std::move(work.front());
      work.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  ~Slots() {
    {
      std::lock_guard lock(work_mutex);
      stopping = true;
    }
    work_cv.notify_all();
    for (auto& t : workers) t.join();
  }
};

Spool::Spool(fs::path root) : root_(std::move(root)), slots_(std::make_shared<Slots>()) {}

Result<fs::path> Spool::acquire_slot() const {
  std::lock_guard lock(slots_->mutex);
  if (slots_->free.empty()) {
    // None left (the first object, or a burst faster than the top-up): create a batch here.
    auto made = create_slots(root_ / "tmp");
    if (!made) return made.error();
    slots_->free = std::move(made).value();
  }
  fs::path p = std::move(slots_->free.back());
  slots_->free.pop_back();
  if (slots_->free.size() < kSlotLowWater && !slots_->topping_up) {
    slots_->topping_up = true;
    Slots* slots = slots_.get();  // the task runs on a thread that Slots joins before it goes
    slots_->submit([slots, tmp = root_ / "tmp", generation = slots_->generation] {
      auto made = create_slots(tmp);  // a failure is met again, and reported, by acquire_slot()
      std::lock_guard slots_lock(slots->mutex);
      slots->topping_up = false;
      if (made && generation == slots->generation)
        slots->free.insert(slots->free.end(), made->begin(), made->end());
    });
  }
  return p;
}

std::shared_ptr<EarlyFlush> Spool::start_flush(const fs::path& slot) const {
  if (!is_slot(slot) || slot.parent_path() != root_ / "tmp") return nullptr;
  auto flush = std::make_shared<EarlyFlush>();
  slots_->submit([flush, slot] {
    UniqueFd fd(::open(slot.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return flush->finish(errno);
    flush->finish(::fdatasync(fd.get()) == 0 ? 0 : errno);
  });
  return flush;
}

Result<int> Spool::settle() const {
  std::vector<Slots::Linked> linked;
  {
    std::lock_guard lock(slots_->mutex);
    linked.swap(slots_->linked);
  }
  if (linked.empty()) return 0;
  std::vector<fs::path> shards;
  for (const auto& l : linked) shards.push_back(l.shard);
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  std::vector<fs::path> failed;
  std::optional<Error> first;
  for (const auto& shard : shards) {
    if (auto r = fsync_dir(shard); !r) {
      failed.push_back(shard);
      if (!first) first = r.error();
    }
  }
  int settled = 0;
  std::vector<Slots::Linked> kept;
  for (auto& l : linked) {
    if (std::binary_search(failed.begin(), failed.end(), l.shard)) {
      kept.push_back(std::move(l));  // the slot stays the durable copy, until the next start
    } else {
      ::unlink(l.slot.c_str());
      ++settled;
    }
  }
  if (!first) return settled;
  std::lock_guard lock(slots_->mutex);
  slots_->kept.insert(slots_->kept.end(), kept.begin(), kept.end());
  slots_->kept_error = first->detail;
  return make_error(first->code, first->detail + ": " + std::to_string(kept.size()) +
                                     " received object(s) kept in spool/tmp until dirgwd restarts");
}

std::size_t Spool::kept_slots(std::string* error) const {
  std::lock_guard lock(slots_->mutex);
  if (error != nullptr) *error = slots_->kept_error;
  return slots_->kept.size();
}

// The slot's data is durable (fdatasync) and so is its name: link it under its content name,
// visible at once; settle() makes the link durable later and only then removes the slot.
Result<StoredObject> Spool::link_slot(const fs::path& slot, StoredObject out) const {
  if (::link(slot.c_str(), out.path.c_str()) == 0) {
    std::lock_guard lock(slots_->mutex);
    slots_->linked.push_back({slot, out.path.parent_path()});
    return out;
  }
  const int err = errno;
  if (err == EEXIST) {  // the same content committed meanwhile by another association
    ::unlink(slot.c_str());
    out.already_present = true;
    return out;
  }
  if (err != EPERM && err != ENOSYS && err != EMLINK && err != EOPNOTSUPP)
    return make_error(ErrorCode::kIo, "link into spool: " + errno_text(err));
  // A file system without hard links: rename and fsync the directory, as for a temporary.
  if (::rename(slot.c_str(), out.path.c_str()) != 0) {
    const int rerr = errno;
    ::unlink(slot.c_str());
    return make_error(ErrorCode::kIo, "rename into spool: " + errno_text(rerr));
  }
  if (auto r = fsync_dir(out.path.parent_path()); !r) return r.error();
  return out;
}

Result<Spool> Spool::open(const fs::path& root) {
  // derived/ now too, not at its first copy: the codec process's sandbox names it at its start.
  for (const auto& dir : {root / "tmp", root / "objects", root / "derived"}) {
    if (auto r = make_dirs(dir, 0750); !r) return r.error();
  }
  bool created = false;
  for (int i = 0; i < 256; ++i) {
    fs::path shard = root / "objects" / shard_name(i);
    if (::mkdir(shard.c_str(), 0750) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return make_error(ErrorCode::kIo, "cannot create spool shard: " + errno_text(errno));
    }
  }
  if (created) {
    if (auto r = fsync_dir(root / "objects"); !r) return r.error();
  }
  if (auto r = fsync_dir(root); !r) return r.error();
  return Spool(root);
}

fs::path Spool::new_temp_path() const { return root_ / "tmp" / (random_hex(16) + ".part"); }

fs::path Spool::object_path(const std::string& sha256) const {
  return root_ / "objects" / sha256.substr(0, 2) / sha256;
}

Result<StoredObject> Spool::commit(const fs::path& temp, std::uint64_t max_size) const {
  auto hashed = hash_received(temp, max_size);
  if (!hashed) return hashed;
  return finish_commit(temp, std::move(hashed).value());
}

Result<StoredObject> Spool::hash_received(const fs::path& temp, std::uint64_t max_size) const {
  TempGuard unlinker{temp};

  UniqueFd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error(ErrorCode::kIo, "open received object: " + errno_text(errno));
  Sha256 hash;
  std::uint64_t size = 0;
  static thread_local char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, "read received object: " + errno_text(errno));
    }
    if (n == 0) break;
    size += static_cast<std::uint64_t>(n);
    if (size > max_size)
      return make_error(ErrorCode::kPrescanRejected, "object larger than max_object_size");
    hash.update(buf, static_cast<std::size_t>(n));
  }
  StoredObject out;
  out.sha256 = hash.hex_digest();
  out.size = size;
  out.path = object_path(out.sha256);
  struct stat st {};
  // Same content already durable: finish_commit() drops the temporary.
  out.already_present =
      ::stat(out.path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) == size;
  unlinker.keep = true;
  return out;
}

Result<StoredObject> Spool::finish_commit(const fs::path& temp, StoredObject out,
                                          const std::shared_ptr<EarlyFlush>& flushing) const {
  TempGuard unlinker{temp};
  if (out.already_present) return out;
  // fsync through a read-only descriptor is enough: fsync flushes the inode's data whatever the
  // open mode on Linux. A slot's name is durable already, so its data (and size) is all that
  // needs flushing: fdatasync.
  const bool slot = is_slot(temp);
  int err = 0;
  if (flushing && slot) {
    err = flushing->wait();
  } else {
    UniqueFd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
      err = errno;
    else if ((slot ? ::fdatasync(fd.get()) : ::fsync(fd.get())) != 0)
      err = errno;
  }
  if (err != 0)
    return make_error(err == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo,
                      "fsync received object: " + errno_text(err));
  if (slot) {
    unlinker.keep = true;  // link_slot() owns it from here
    return link_slot(temp, std::move(out));
  }
  if (::rename(temp.c_str(), out.path.c_str()) != 0)
    return make_error(ErrorCode::kIo, "rename into spool: " + errno_text(errno));
  unlinker.keep = true;
  if (auto r = fsync_dir(out.path.parent_path()); !r) return r.error();
  return out;
}

fs::path Spool::derived_path(const std::string& sha256) const {
  return root_ / "derived" / sha256.substr(0, 2) / sha256;
}

Result<StoredObject> Spool::commit_derived(const fs::path& temp) const {
  auto hash = sha256_file(temp);
  if (!hash) return hash.error();
  const fs::path target = derived_path(*hash);
  if (auto r = make_dirs(target.parent_path(), 0750); !r) return r.error();
  std::error_code ec;
  const auto size = fs::file_size(temp, ec);
  if (ec) return make_error(ErrorCode::kIo, "stat derived object: " + ec.message());
  if (auto r = fsync_path(temp); !r) return r.error();
  if (::rename(temp.c_str(), target.c_str()) != 0)
    return make_error(ErrorCode::kIo, "rename derived object: " + errno_text(errno));
  if (auto r = fsync_dir(target.parent_path()); !r) return r.error();
  return StoredObject{*hash, size, target, false};
}

Result<std::vector<std::string>> Spool::list_objects() const {
  std::vector<std::string> out;
  for (int i = 0; i < 256; ++i) {
    auto shard = list_objects(i);
    if (!shard) return shard.error();
    out.insert(out.end(), shard->begin(), shard->end());
  }
  return out;
}

namespace {

// Only our own names: 64 lower-case hex digits in their own shard. A shard directory that does
// not exist (derived/ makes them as copies are written) holds nothing.
Result<std::vector<std::string>> list_shard(const fs::path& dir, const std::string& shard) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir / shard, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 64 && name.find_first_not_of(kHex) == std::string::npos &&
        name.compare(0, 2, shard) == 0)
      out.push_back(name);
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return make_error(ErrorCode::kIo, "scan spool: " + ec.message());
  return out;
}

}  // namespace

Result<std::vector<std::string>> Spool::list_objects(int shard) const {
  return list_shard(root_ / "objects", shard_name(shard));
}

Result<std::vector<std::string>> Spool::list_derived(int shard) const {
  return list_shard(root_ / "derived", shard_name(shard));
}

Result<void> Spool::move_object(const std::string& sha256, const fs::path& dir) const {
  if (auto r = make_dirs(dir, 0750); !r) return r.error();
  const fs::path target = dir / sha256;
  if (::rename(object_path(sha256).c_str(), target.c_str()) != 0)
    return make_error(ErrorCode::kIo, "move object: " + errno_text(errno));
  if (auto r = fsync_dir(dir); !r) return r;
  return fsync_dir(object_path(sha256).parent_path());
}

Result<void> Spool::remove_object(const std::string& sha256) const {
  if (::unlink(object_path(sha256).c_str()) != 0 && errno != ENOENT)
    return make_error(ErrorCode::kIo, "remove object: " + errno_text(errno));
  return {};
}

Result<void> Spool::remove_derived(const std::string& sha256) const {
  if (::unlink(derived_path(sha256).c_str()) != 0 && errno != ENOENT)
    return make_error(ErrorCode::kIo, "remove derived object: " + errno_text(errno));
  return {};
}

Result<SpoolCleanup> Spool::remove_temporaries(
    const std::function<bool(const std::string&)>& catalogued) const {
  SpoolCleanup c;
  std::error_code ec;
  std::vector<fs::path> shards;  // directories that got a name back: fsynced before the slots go
  std::vector<fs::path> relinked;
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    if (!e.is_regular_file(ec)) continue;
    if (catalogued && is_slot(e.path()) && e.file_size(ec) > 0) {
      auto sha = sha256_file(e.path());
      if (!sha) return sha.error();
      if (catalogued(*sha)) {
        // An acknowledged object whose slot is still here: its name in objects/ may not be on
        // the disk even when it shows (a kill before settle(), or a directory fsync that
        // failed: after an I/O error a later fsync need not write the entry again). Linked
        // again, the name changes the directory, so the fsync below writes it; the slot goes
        // only after that fsync. (Not a rename: over a hard link of the same file it does
        // nothing.) Nothing reads objects/ yet.
        const fs::path target = object_path(*sha);
        const bool was_there = ::unlink(target.c_str()) == 0;
        if (::link(e.path().c_str(), target.c_str()) != 0)
          return make_error(ErrorCode::kIo, "relink spool slot: " + errno_text(errno));
        shards.push_back(target.parent_path());
        relinked.push_back(e.path());
        if (!was_there) ++c.slots_relinked;
        continue;
      }
    }
    if (::unlink(e.path().c_str()) == 0) ++c.temporaries_removed;
  }
  if (ec) return make_error(ErrorCode::kIo, "scan spool/tmp: " + ec.message());
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  for (const auto& shard : shards)
    if (auto r = fsync_dir(shard); !r) return r.error();
  for (const auto& slot : relinked)
    if (::unlink(slot.c_str()) == 0) ++c.temporaries_removed;
  {
    std::lock_guard lock(slots_->mutex);
    slots_->free.clear();
    slots_->linked.clear();
    slots_->kept.clear();
    slots_->kept_error.clear();
    ++slots_->generation;
  }
  return c;
}

void Spool::discard_temp(const std::filesystem::path& temp) const {
  // Only ever inside tmp/: a path from elsewhere is a bug, not something to delete.
  if (temp.parent_path() != root_ / "tmp") return;
  ::unlink(temp.c_str());
}

}  // namespace dirgw::ingest
