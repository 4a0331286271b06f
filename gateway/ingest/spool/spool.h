// The spool: sole owner of object files on disk.
//   spool/tmp/<random>.part          an object being received (folders, pulls, derived copies)
//   spool/tmp/slot-<random>          a pre-created receiving slot (the DICOM SCP)
//   spool/objects/ab/<sha256>        complete objects, content-addressed
// Names never contain a value taken from a DICOM or HL7 message. An object is durable before
// anyone is told it was received: either fsync file, rename, fsync directory; or, for a slot,
// fdatasync the slot, whose directory entry was made durable when the slot was created (slots
// are created in batches, one directory fsync per batch). A committed slot is hard-linked to its
// content name at once (readers see it there); the shard directories are fsynced in batches
// afterwards by settle(), and only then is the slot unlinked. Until then the slot is the durable
// copy: after a crash remove_temporaries() links back every slot whose object the catalog knows
// and that is missing from objects/ (docs/performance.md, "Spool slots").
// Two things run on the spool's own threads, beside the receiving ones: a received slot's
// fdatasync, started as soon as its last byte is in (start_flush()), so that the pre-scan and the
// hash run while the disk writes; and topping up the free slots before they run out, so that an
// association seldom waits for a batch of slots to be created.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace dirgw::ingest {

struct StoredObject {
  std::string sha256;
  std::uint64_t size = 0;
  std::filesystem::path path;
  bool already_present = false;  // identical bytes were already in the spool
};

// A slot's data being made durable on a spool thread; finish_commit() waits for it.
struct EarlyFlush;

struct SpoolCleanup {
  int temporaries_removed = 0;
  int slots_relinked = 0;
};

class Spool {
 public:
  // Creates the layout (and the 256 shard directories, made durable once, so that the
  // per-object path needs only the rename's directory fsync).
  static Result<Spool> open(const std::filesystem::path& root);

  // A fresh name for an object about to be received.
  std::filesystem::path new_temp_path() const;
  // A pre-created, durable, empty slot to receive an object into (commit() or discard_temp()
  // it). Creates a batch of slots, with one directory fsync, when none is left.
  Result<std::filesystem::path> acquire_slot() const;
  // Makes the links of committed slots durable (one fsync per shard directory touched) and
  // unlinks those slots. Returns how many slots were settled. When a shard directory's fsync
  // fails, its slots are kept (the durable copies) until the next start, and the error says how
  // many; the other shards' slots are settled.
  Result<int> settle() const;
  // How many committed slots a failed directory fsync kept in tmp/ (and that fsync's error).
  std::size_t kept_slots(std::string* error = nullptr) const;

  // Starts the fdatasync of a completely received slot on a spool thread and returns at once;
  // hand the result to finish_commit(). Nothing (a null pointer) for a temporary that is not a
  // slot.
  std::shared_ptr<EarlyFlush> start_flush(const std::filesystem::path& slot) const;

  // Hashes, fsyncs and moves a completely received temporary into objects/. The temporary is
  // gone afterwards whatever the outcome. Equivalent to hash_received() then finish_commit().
  Result<StoredObject> commit(const std::filesystem::path& temp, std::uint64_t max_size) const;

  // The two halves of commit(), for a caller that does other work between them (the DICOM SCP
  // runs the catalog's statements while the slot's data flush started by start_flush() goes on).
  // hash_received(): the content name and size, and whether identical bytes are in objects/
  // already; nothing is flushed or moved (the temporary is removed on failure).
  Result<StoredObject> hash_received(const std::filesystem::path& temp,
                                     std::uint64_t max_size) const;
  // finish_commit(): makes the data durable (waits for `flushing`, this slot's flush from
  // start_flush(), or flushes itself when null), then links or renames it under its content name
  // (the temporary is removed on failure, or when the bytes were there already).
  Result<StoredObject> finish_commit(const std::filesystem::path& temp, StoredObject hashed,
                                     const std::shared_ptr<EarlyFlush>& flushing = nullptr) const;

  // Removes one temporary of ours that will not be committed (nothing if it is gone already).
  void discard_temp(const std::filesystem::path& temp) const;

  // Removes half-written temporaries left by a crash (call at start, before listeners open).
  // A slot whose content `catalogued` knows is renamed over its object's name first, and that
  // shard directory fsynced (its object was acknowledged; its name in objects/ may not have been
  // durable when the daemon stopped, even if it shows).
  Result<SpoolCleanup> remove_temporaries(
      const std::function<bool(const std::string& sha256)>& catalogued = {}) const;

  std::filesystem::path object_path(const std::string& sha256) const;

  // Derived objects (coerced / de-identified copies) live apart, in derived/ab/<sha256>, so that
  // reconciliation never mistakes one for a received object.
  Result<StoredObject> commit_derived(const std::filesystem::path& temp) const;
  std::filesystem::path derived_path(const std::string& sha256) const;

  // Every complete object's hash (for start-up reconciliation with the catalog).
  Result<std::vector<std::string>> list_objects() const;
  // The same for one of the 256 shard directories (0..255), so that a caller walking the whole
  // spool holds one shard's names at a time.
  Result<std::vector<std::string>> list_objects(int shard) const;
  // The derived copies in one of the 256 shard directories of derived/ (0..255), by hash.
  Result<std::vector<std::string>> list_derived(int shard) const;
  // Moves an object out of the spool into `dir` (made durable), e.g. one that does not parse.
  Result<void> move_object(const std::string& sha256, const std::filesystem::path& dir) const;
  // Deletes an object the catalog no longer refers to (a quarantined study deleted by an
  // operator). An object already gone is not an error.
  Result<void> remove_object(const std::string& sha256) const;
  // Deletes a derived copy (retention, once every destination verified it; gone: not an error).
  Result<void> remove_derived(const std::string& sha256) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  struct Slots;  // the slot pool, the links waiting for settle(), the spool's threads
  explicit Spool(std::filesystem::path root);
  Result<StoredObject> link_slot(const std::filesystem::path& slot, StoredObject out) const;
  std::filesystem::path root_;
  std::shared_ptr<Slots> slots_;
};

}  // namespace dirgw::ingest
