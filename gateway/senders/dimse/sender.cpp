// DimseSender: one association per round of a batch (almost always one per batch).
//
// Why not keep the association open between batches: the presentation contexts are planned
// from each batch's SOP classes and syntaxes, so a kept association would have to be renewed
// whenever a batch brings a new pair anyway; the Sender has no thread of its own to close an
// idle one; and a peer that dropped an idle association would fail the next batch's first
// C-STORE. An association costs one round trip (three more with TLS) per batch of up to
// max_instances objects.
//
// Decompression never holds an association open: the objects the destination takes as they are
// go first, the association is released, the codec process decompresses the others (a chunk of
// copies at a time, kDecompressChunkBytes), and a new association with the same proposal sends
// the copies. A PACS drops an association idle for longer than its own time-out (30-60 s is
// common), and a large multi-frame can take longer than that to decode: held open, every attempt
// would lose the association at the same object and the batch would be retried for ever.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "common/file_meta.h"
#include "common/files.h"
#include "log/log.h"
#include "senders/dicomweb/stow.h"
#include "senders/dimse/association.h"
#include "senders/dimse/dimse_sender.h"
#include "senders/dimse/outcome.h"
#include "senders/dimse/plan.h"

namespace dirgw::senders::dimse {

namespace {

// Decompressed copies made before each association that sends them: at least one object, then
// up to this many bytes of copies in the spool's tmp/ at once.
constexpr std::uint64_t kDecompressChunkBytes = 512ull << 20;

struct Prepared {
  std::size_t batch_index = 0;
  FileMeta meta;
  std::uint64_t size = 0;
  // A transcoded item's stored original (Item::original_path), when its meta could be read: what
  // goes if the destination refuses the copy's syntax.
  std::optional<FileMeta> original_meta;
};

class DimseSender final : public Sender {
 public:
  explicit DimseSender(const DimseOptions& options) : opts_(options), codec_(options.codec) {
    peer_ = opts_.called_ae + "@" + opts_.host + ":" + std::to_string(opts_.port);
  }
  // The send gate (SendContext::request_sent) is released by the forwarder when the batch is
  // done: a DIMSE batch interleaves requests and answers, so no earlier moment means "left".
  Outcome send(const std::vector<Item>& batch, const SendContext& context) override;
  using Sender::send;

 private:
  // Checks the spool file (exists, has item.size bytes, its meta names the item). On a problem
  // sets `result` and returns nullopt.
  std::optional<Prepared> prepare(std::size_t index, const Item& item, InstanceResult& result);
  // One round: an association for its contexts, then each of its instances. Returns the verdict
  // for everything after it when the round could not finish (no association, association lost).
  std::optional<Verdict> run_round(const AssociationRound& round,
                                   const std::vector<Prepared>& prepared,
                                   const std::vector<PlanItem>& plan_items,
                                   const std::vector<Item>& batch, Outcome& out, std::string& note);
  // One instance over an established association, as `a` assigns it: sets `r`. Returns the
  // failure when the association was lost (the instance may or may not have been stored).
  std::optional<std::string> store_one(Association& assoc, const Item& item, const Prepared& p,
                                       const Assignment& a, InstanceResult& r, Outcome& out);
  // The round's items that need the codec process (`later`, positions in round.items, with their
  // assignments from the first association): decompressed with no association open, then sent
  // over new ones, a chunk of copies at a time. Returns what run_round() returns.
  std::optional<Verdict> send_decompressed(
      const AssociationRound& round, const std::vector<Prepared>& prepared,
      const std::vector<std::pair<std::size_t, Assignment>>& later, const std::vector<Item>& batch,
      Outcome& out, std::string& note);
  // An answer to a C-STORE (or why none came) into `r`, as store_one() describes.
  std::optional<std::string> record_answer(const StoreAnswer& answer, const Assignment& a,
                                           const FileMeta& meta, const Item& item,
                                           InstanceResult& r, Outcome& out);
  // An encapsulated item: may it go decompressed (the destination's `decompress`, a decoder)?
  void decide_decompression(PlanItem& item) const {
    using D = DimseOptions::Decompress;
    const bool lossy_too = opts_.decompress == D::kAlways;
    if (opts_.decompress != D::kNever && decodable_syntax(item.transfer_syntax, lossy_too))
      item.decompressible = true;
    else if (opts_.decompress == D::kNever)
      item.not_decompressed = "the destination's decompress is never";
    else if (decodable_syntax(item.transfer_syntax, true))
      item.not_decompressed = "compressed lossily, and the destination's decompress is lossless";
    else
      item.not_decompressed = "DCMTK has no decoder for it here";
  }

  // Decompresses into a copy in the codec process (codec_worker.h); nullopt, with the verdict in
  // `r`, when it cannot be decompressed.
  std::optional<transcode::Transcoded> decompress_copy(const std::filesystem::path& path,
                                                       const Assignment& a, const Item& item,
                                                       InstanceResult& r);

  DimseOptions opts_;
  transcode::CodecWorker codec_;
  int decompressed_ = 0;  // in the current batch, accepted after decompression
  std::string peer_;
  std::unique_ptr<Network> network_;
};

std::optional<Prepared> DimseSender::prepare(std::size_t index, const Item& item,
                                             InstanceResult& result) {
  auto fail = [&](const Error& e) {
    result.status = e.retryable() ? InstanceStatus::kRetry : InstanceStatus::kPermanent;
    result.reason = e.to_string();
    return std::nullopt;
  };
  struct stat st {};
  if (::stat(item.path.c_str(), &st) != 0) {
    const int err = errno;
    return fail(make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                           "spool file: " + errno_text(err)));
  }
  if (!S_ISREG(st.st_mode))
    return fail(make_error(ErrorCode::kIo, "spool file is not a regular file"));
  if (static_cast<std::uint64_t>(st.st_size) != item.size)
    return fail(make_error(ErrorCode::kIo, "spool file has " + std::to_string(st.st_size) +
                                               " bytes, the catalog says " +
                                               std::to_string(item.size)));
  auto meta = read_file_meta(item.path);
  if (!meta) return fail(meta.error());
  if (meta->sop_instance_uid != item.sop_instance_uid)
    return fail(
        make_error(ErrorCode::kBadDicom, "file meta names another SOP instance than the catalog"));
  if (!item.sop_class_uid.empty() && meta->sop_class_uid != item.sop_class_uid)
    return fail(make_error(ErrorCode::kBadDicom, "file meta names SOP class " +
                                                     meta->sop_class_uid + ", the catalog " +
                                                     item.sop_class_uid));
  if (meta->dataset_offset >= item.size)
    return fail(make_error(ErrorCode::kBadDicom, "file has a meta header but no data set"));
  Prepared p{index, std::move(meta).value(), item.size, std::nullopt};
  if (!item.original_path.empty()) {
    // Without a readable original the copy goes alone (the copy was checked above).
    auto original = read_file_meta(item.original_path);
    if (original && original->sop_instance_uid == item.sop_instance_uid &&
        original->dataset_offset < item.original_size)
      p.original_meta = std::move(original).value();
  }
  return p;
}

Outcome DimseSender::send(const std::vector<Item>& batch, const SendContext& /*context*/) {
  Outcome out{};
  if (batch.empty()) {
    out.kind = OutcomeKind::kOk;
    out.message = "empty batch, nothing sent";
    return out;
  }
  std::vector<InstanceResult>& results = out.instances;
  for (const auto& item : batch)
    results.push_back({item.sop_instance_uid, InstanceStatus::kRetry, "not sent"});

  std::vector<Prepared> prepared;
  std::vector<PlanItem> plan_items;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (auto p = prepare(i, batch[i], results[i])) {
      PlanItem item{p->meta.sop_class_uid, p->meta.transfer_syntax,
                    p->original_meta ? p->original_meta->transfer_syntax : ""};
      if (item.original_syntax.empty() && !is_native_syntax(item.transfer_syntax))
        decide_decompression(item);
      plan_items.push_back(std::move(item));
      prepared.push_back(std::move(*p));
    }
  }

  decompressed_ = 0;
  auto finish = [&](const std::string& note) {
    out.kind = dicomweb::aggregate_kind(results);
    out.message = "C-STORE to " + peer_ + ": " + dicomweb::count_summary(results);
    if (decompressed_ > 0)
      out.message += " (" + std::to_string(decompressed_) + " sent decompressed: the destination " +
                     "refused their compressed syntax)";
    if (!note.empty()) out.message += " (" + note + ")";
    log::info("dimse batch done", {{"destination", peer_},
                                   {"instances", std::to_string(batch.size())},
                                   {"bytes_sent", std::to_string(out.bytes_sent)},
                                   {"outcome", out.message}});
    return out;
  };
  if (prepared.empty()) return finish("no sendable spool file");

  if (!network_) {
    auto n = Network::create(opts_);
    if (!n) {
      for (const auto& p : prepared)
        results[p.batch_index] = {
            batch[p.batch_index].sop_instance_uid,
            n.error().retryable() ? InstanceStatus::kRetry : InstanceStatus::kPermanent,
            "not sent: " + n.error().to_string()};
      return finish(n.error().to_string());
    }
    network_ = std::move(n).value();
  }

  std::string note;
  std::optional<Verdict> stopped;  // once set, nothing more is attempted in this batch
  for (const AssociationRound& round : plan_rounds(plan_items)) {
    if (!stopped) {
      stopped = run_round(round, prepared, plan_items, batch, out, note);
      continue;
    }
    for (std::size_t index : round.items) {
      results[prepared[index].batch_index].status = stopped->status;
      results[prepared[index].batch_index].reason = stopped->reason;
    }
  }
  return finish(note);
}

std::optional<Verdict> DimseSender::run_round(const AssociationRound& round,
                                              const std::vector<Prepared>& prepared,
                                              const std::vector<PlanItem>& plan_items,
                                              const std::vector<Item>& batch, Outcome& out,
                                              std::string& note) {
  auto set_all = [&](const Verdict& v, std::size_t from) {
    for (std::size_t k = from; k < round.items.size(); ++k) {
      const Prepared& p = prepared[round.items[k]];
      out.instances[p.batch_index].status = v.status;
      out.instances[p.batch_index].reason = v.reason;
    }
  };
  Verdict failure{InstanceStatus::kRetry, ""};
  auto assoc = Association::request(*network_, opts_, round.contexts, &failure);
  if (!assoc) {
    log::warn("dimse association not established",
              {{"destination", peer_}, {"reason", failure.reason}});
    set_all(failure, 0);
    note = failure.reason;
    return failure;
  }
  log::debug("dimse association established",
             {{"destination", peer_},
              {"contexts", std::to_string(round.contexts.size())},
              {"tls", network_->tls() ? "on" : "off"},
              {"tcp_nodelay", network_->last_nodelay() ? "on" : "off"}});
  // Objects to decompress in the codec process wait until this association is released.
  std::vector<std::pair<std::size_t, Assignment>> later;
  std::optional<Verdict> rest;
  for (std::size_t k = 0; k < round.items.size() && !rest; ++k) {
    const Prepared& p = prepared[round.items[k]];
    const Item& item = batch[p.batch_index];
    Assignment a = assign_context(plan_items[round.items[k]], assoc->contexts());
    if (a.kind == Assignment::Kind::kDecompress && !opts_.codec.program.empty()) {
      later.emplace_back(k, std::move(a));
      continue;
    }
    const auto lost = store_one(*assoc, item, p, a, out.instances[p.batch_index], out);
    if (!lost) continue;
    rest = Verdict{InstanceStatus::kRetry, "not sent: association lost after " + std::to_string(k) +
                                               " of " + std::to_string(round.items.size()) +
                                               " instances (" + *lost + ")"};
    set_all(*rest, k + 1);
    for (const auto& [position, assignment] : later) {
      InstanceResult& r = out.instances[prepared[round.items[position]].batch_index];
      r.status = rest->status;
      r.reason = rest->reason;
    }
    note = *lost;
    log::warn(
        "dimse association lost",
        {{"destination", peer_}, {"sop_instance_uid", item.sop_instance_uid}, {"reason", *lost}});
  }
  if (assoc->usable() && !assoc->release())
    log::debug("dimse association release not confirmed", {{"destination", peer_}});
  assoc.reset();
  if (rest || later.empty()) return rest;
  return send_decompressed(round, prepared, later, batch, out, note);
}

std::optional<Verdict> DimseSender::send_decompressed(
    const AssociationRound& round, const std::vector<Prepared>& prepared,
    const std::vector<std::pair<std::size_t, Assignment>>& later, const std::vector<Item>& batch,
    Outcome& out, std::string& note) {
  struct Copy {
    std::size_t position;  // in round.items
    const Assignment* assignment;
    transcode::Transcoded file;
  };
  std::vector<Copy> chunk;
  auto remove_copies = [&] {
    for (const Copy& c : chunk) ::unlink(c.file.path.c_str());
    chunk.clear();
  };
  auto result_of = [&](std::size_t position) -> InstanceResult& {
    return out.instances[prepared[round.items[position]].batch_index];
  };
  // Everything not yet answered (this chunk's copies, the objects after it) gets `v`.
  auto fail_from = [&](std::size_t next, const Verdict& v) {
    auto set = [&](std::size_t position) {
      result_of(position).status = v.status;
      result_of(position).reason = v.reason;
    };
    for (const Copy& c : chunk) set(c.position);
    for (std::size_t j = next; j < later.size(); ++j) set(later[j].first);
    remove_copies();
    note = v.reason;
    return v;
  };
  std::size_t next = 0;
  while (next < later.size()) {
    // Decompress up to a chunk's worth, with no association open.
    std::uint64_t bytes = 0;
    while (next < later.size() && (chunk.empty() || bytes < kDecompressChunkBytes)) {
      const auto& [position, assignment] = later[next++];
      const Item& item = batch[prepared[round.items[position]].batch_index];
      auto copy = decompress_copy(item.path, assignment, item, result_of(position));
      if (!copy) continue;
      bytes += copy->size;
      chunk.push_back({position, &assignment, std::move(*copy)});
    }
    if (chunk.empty()) continue;
    Verdict failure{InstanceStatus::kRetry, ""};
    auto assoc = Association::request(*network_, opts_, round.contexts, &failure);
    if (!assoc) {
      log::warn("dimse association not established",
                {{"destination", peer_}, {"reason", failure.reason}});
      return fail_from(next, failure);
    }
    for (std::size_t c = 0; c < chunk.size(); ++c) {
      const Copy& copy = chunk[c];
      const Prepared& p = prepared[round.items[copy.position]];
      const Item& item = batch[p.batch_index];
      InstanceResult& r = result_of(copy.position);
      const Assignment& a = *copy.assignment;
      const bool accepted = std::any_of(
          assoc->contexts().begin(), assoc->contexts().end(), [&](const NegotiatedContext& n) {
            return n.id == a.context_id && n.accepted && n.transfer_syntax == a.transfer_syntax;
          });
      StoreAnswer answer;
      if (accepted) {
        // The copy is in the context's syntax already: DCMTK writes it out without a codec.
        answer = assoc->store_converted(copy.file.path, p.meta, a.context_id, false);
      } else {
        answer.kind = StoreAnswer::Kind::kNotSent;
        answer.verdict = {InstanceStatus::kRetry, "not sent: the destination no longer accepted " +
                                                      describe_syntax(a.transfer_syntax) +
                                                      " after decompression"};
      }
      ::unlink(copy.file.path.c_str());
      const auto lost = record_answer(answer, a, p.meta, item, r, out);
      if (!lost) continue;
      chunk.erase(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(c) + 1);
      log::warn(
          "dimse association lost",
          {{"destination", peer_}, {"sop_instance_uid", item.sop_instance_uid}, {"reason", *lost}});
      return fail_from(
          next, {InstanceStatus::kRetry,
                 "not sent: association lost while sending decompressed copies (" + *lost + ")"});
    }
    chunk.clear();
    if (assoc->usable() && !assoc->release())
      log::debug("dimse association release not confirmed", {{"destination", peer_}});
  }
  return std::nullopt;
}

std::optional<transcode::Transcoded> DimseSender::decompress_copy(const std::filesystem::path& path,
                                                                  const Assignment& a,
                                                                  const Item& item,
                                                                  InstanceResult& r) {
  const transcode::Attempt made = codec_.decompress(path, a.transfer_syntax, opts_.scratch_dir);
  if (made.kind == transcode::Attempt::Kind::kTranscoded && made.copy) return made.copy;
  // Not decodable, or the codec crashed or hung on it: the same again next time (permanent).
  // A file or resource trouble may pass (retried).
  r.status = made.kind == transcode::Attempt::Kind::kError ? InstanceStatus::kRetry
                                                           : InstanceStatus::kPermanent;
  r.reason = made.reason;
  if (made.kind == transcode::Attempt::Kind::kCodecFailed)
    log::error("codec process failed on an object: it is not sent decompressed",
               {{"destination", peer_},
                {"sop_instance_uid", item.sop_instance_uid},
                {"reason", made.reason}});
  if (made.copy) ::unlink(made.copy->path.c_str());
  return std::nullopt;
}

std::optional<std::string> DimseSender::store_one(Association& assoc, const Item& item,
                                                  const Prepared& p, const Assignment& a,
                                                  InstanceResult& r, Outcome& out) {
  if (a.kind == Assignment::Kind::kRefused) {
    r.status = InstanceStatus::kPermanent;
    r.reason = a.reason;
    return std::nullopt;
  }
  // A transcoded copy refused in its syntax: its stored original goes in its place.
  const bool original = a.original && p.original_meta.has_value();
  const std::filesystem::path& path = original ? item.original_path : item.path;
  const FileMeta& meta = original ? *p.original_meta : p.meta;
  r.sent_original = original;
  const StoreAnswer answer =
      a.kind == Assignment::Kind::kAsIs
          ? assoc.store_as_is(path, meta, original ? item.original_size : p.size, a.context_id)
          : assoc.store_converted(path, meta, a.context_id,
                                  a.kind == Assignment::Kind::kDecompress);
  return record_answer(answer, a, meta, item, r, out);
}

std::optional<std::string> DimseSender::record_answer(const StoreAnswer& answer,
                                                      const Assignment& a, const FileMeta& meta,
                                                      const Item& item, InstanceResult& r,
                                                      Outcome& out) {
  out.bytes_sent += answer.bytes;
  if (answer.kind == StoreAnswer::Kind::kNotSent) {
    r.status = answer.verdict.status;
    r.reason = answer.verdict.reason;
    return std::nullopt;
  }
  if (answer.kind == StoreAnswer::Kind::kLost) {
    r.status = InstanceStatus::kRetry;
    r.reason = "no C-STORE response (" + answer.failure +
               "); the destination may or may not have stored it";
    return answer.failure;
  }
  Verdict v = classify_store_status(answer.status);
  if (a.kind == Assignment::Kind::kDecompress && v.status == InstanceStatus::kAccepted)
    ++decompressed_;
  if (a.kind != Assignment::Kind::kAsIs && v.status == InstanceStatus::kAccepted) {
    const std::string sent_as = "sent as " + describe_syntax(a.transfer_syntax) + ", stored as " +
                                describe_syntax(meta.transfer_syntax) +
                                (a.kind == Assignment::Kind::kDecompress ? " (decompressed)" : "");
    v.reason = v.reason.empty() ? sent_as : v.reason + "; " + sent_as;
  }
  r.status = v.status;
  r.reason = v.reason;
  log::debug("dimse c-store answered", {{"sop_instance_uid", item.sop_instance_uid},
                                        {"status", hex_status(answer.status)},
                                        {"syntax", a.transfer_syntax}});
  return std::nullopt;
}

}  // namespace

}  // namespace dirgw::senders::dimse

namespace dirgw::senders {

std::unique_ptr<Sender> make_dimse_sender(const DimseOptions& options) {
  return std::make_unique<dimse::DimseSender>(options);
}

}  // namespace dirgw::senders
