#include "ingest/prescan/walker.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/text.h"
#include "common/uid.h"

namespace dirgw::ingest::prescan_detail {

namespace {

enum class Kind : std::uint8_t { kDataset, kItem, kSequence, kPixelSequence };

struct Frame {
  std::uint64_t start;  // offset of the header that opened it
  std::uint64_t end;    // kNoEnd for undefined length (and the top level)
  std::uint64_t limit;  // nearest enclosing defined end, own included; kNoEnd if unknown
  std::uint32_t last_tag = 0;
  bool has_last = false;
  bool item_seen = false;  // pixel sequence: the basic offset table item
  Kind kind;
  Encoding enc;
  std::uint32_t tag = 0;    // sequence: its element's tag (content digest)
  std::uint64_t items = 0;  // sequence: items seen (content digest)
};

// One value's part of the content digest (walker.h): its digest and length, trailing padding
// left out for a text tag. The padding is held back until a byte of content follows it.
class ValueTap final : public Tap {
 public:
  void start(std::uint32_t tag, bool trim) {
    tag_ = tag;
    trim_ = trim;
    pending_.clear();
    length_ = 0;
    hash_ = std::make_unique<Sha256>();
  }
  bool active() const { return hash_ != nullptr; }
  void take(const char* data, std::size_t n) override {
    if (!trim_) return add(data, n);
    for (std::size_t i = 0; i < n; ++i) {
      if (data[i] == ' ' || data[i] == '\0') {
        pending_.push_back(data[i]);
        continue;
      }
      if (!pending_.empty()) {
        add(pending_.data(), pending_.size());
        pending_.clear();
      }
      add(data + i, 1);
    }
  }
  // Into `header`: the tag, the length and the digest ('V'), or the tag alone ('Z') when empty.
  void finish(Sha256& header) {
    unsigned char rec[9] = {static_cast<unsigned char>(length_ == 0 ? 'Z' : 'V')};
    put32(rec + 1, tag_);
    put32(rec + 5, static_cast<std::uint32_t>(length_));
    header.update(rec, length_ == 0 ? 5 : 9);
    if (length_ != 0) {
      const std::string digest = hash_->hex_digest();
      header.update(digest.data(), digest.size());
    }
    hash_.reset();
  }
  static void put32(unsigned char* out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
  }

 private:
  void add(const char* data, std::size_t n) {
    hash_->update(data, n);
    length_ += n;
  }
  std::uint32_t tag_ = 0;
  bool trim_ = false;
  std::string pending_;
  std::uint64_t length_ = 0;
  std::unique_ptr<Sha256> hash_;
};

class HashTap final : public Tap {
 public:
  explicit HashTap(Sha256& hash) : hash_(hash) {}
  void take(const char* data, std::size_t n) override { hash_.update(data, n); }

 private:
  Sha256& hash_;
};

struct Found {
  std::optional<std::string> value;
  std::uint64_t offset = 0;
};

class Walker {
 public:
  Walker(Reader& r, const PrescanLimits& limits, const TransferSyntax& ts, std::uint64_t top_limit,
         bool inflated, PrescanResult& out, ContentDigest* digest)
      : r_(r),
        limits_(limits),
        ts_(ts),
        top_limit_(top_limit),
        inflated_(inflated),
        out_(out),
        digest_(digest) {
    if (digest_ != nullptr) pixel_tap_ = std::make_unique<HashTap>(digest_->pixels);
  }

  Result<void> run() {
    stack_.push_back(
        Frame{r_.pos(), kNoEnd, top_limit_, 0, false, false, Kind::kDataset, ts_.encoding});
    for (;;) {
      end_value();  // headers are never content; a value's step sets the tap
      Frame& f = stack_.back();
      const std::uint64_t p = r_.pos();
      if (f.end != kNoEnd && p == f.end) {
        pop();
        continue;
      }
      const bool at_limit = f.limit != kNoEnd ? p >= f.limit : r_.at_end();
      if (r_.error()) return *r_.error();
      if (at_limit) {
        if (stack_.size() == 1) break;
        return not_closed(f);
      }
      Result<void> step = f.kind == Kind::kSequence        ? sequence_step(p)
                          : f.kind == Kind::kPixelSequence ? pixel_step(p)
                                                           : element_step(p);
      if (!step) return step;
    }
    return finish();
  }

 private:
  std::string at(std::uint64_t p) const {
    return " at offset " + std::to_string(p) + (inflated_ ? " of the inflated dataset" : "");
  }

  std::string end_name(const Frame& f) const {
    if (f.limit == kNoEnd) return "the data";
    if (f.limit == top_limit_) return "the file";
    return "its enclosing item";
  }

  Error not_closed(const Frame& f) const {
    const char* what = f.kind == Kind::kSequence        ? "undefined-length sequence"
                       : f.kind == Kind::kPixelSequence ? "encapsulated pixel data"
                                                        : "undefined-length item";
    return reject(std::string(what) + " opened at offset " + std::to_string(f.start) +
                  (inflated_ ? " of the inflated dataset" : "") +
                  " is not closed before the end of " + end_name(f));
  }

  // Reads n header bytes of the current frame, refusing to cross the frame's end.
  Result<void> read_header(void* out, std::size_t n, std::uint64_t start) {
    const Frame& f = stack_.back();
    const std::uint64_t p = r_.pos();
    if (f.limit != kNoEnd && n > f.limit - p) {
      if (f.limit == top_limit_)
        return reject("file ends inside a data element header" + at(start));
      return reject("data element header crosses the end of its enclosing item" + at(start));
    }
    if (!r_.read(out, n)) {
      if (r_.error()) return *r_.error();
      return reject("data ends inside a data element header" + at(start));
    }
    return {};
  }

  // A defined length must fit the enclosing items and the file.
  Result<void> check_length(std::uint64_t len, std::uint64_t start, const char* what) {
    if (len > limits_.max_object_size) {
      return reject(std::string(what) + " length exceeds max_object_size" + at(start));
    }
    const Frame& f = stack_.back();
    const std::uint64_t p = r_.pos();
    if (f.limit != kNoEnd && len > f.limit - p) {
      if (f.limit == top_limit_) {
        return reject(std::string(what) + " extends beyond the end of the file" + at(start));
      }
      return reject(std::string(what) + " extends beyond the end of its enclosing item" +
                    at(start));
    }
    return {};
  }

  Result<void> skip_value(std::uint64_t len, std::uint64_t start, const char* what) {
    if (!r_.skip(len)) {
      if (r_.error()) return *r_.error();
      return reject(std::string(what) + " extends beyond the end of the data" + at(start));
    }
    return {};
  }

  void warn(std::string text) {
    if (out_.warnings.size() < PrescanResult::kMaxWarnings)
      out_.warnings.push_back(std::move(text));
  }

  Result<void> count_item(std::uint64_t start) {
    if (++items_ > limits_.max_items) return reject("more items than max_items" + at(start));
    return {};
  }

  Result<void> push_sequence(std::uint64_t start, std::uint64_t end, Encoding enc,
                             std::uint32_t tag) {
    if (seq_depth_ + 1 > limits_.max_depth) {
      return reject("sequence nesting deeper than max_depth" + at(start));
    }
    ++seq_depth_;
    const std::uint64_t limit = std::min(end, stack_.back().limit);
    stack_.push_back(Frame{start, end, limit, 0, false, false, Kind::kSequence, enc, tag});
    return {};
  }

  void pop() {
    const Frame& f = stack_.back();
    if (f.kind == Kind::kSequence) {
      --seq_depth_;
      // An empty sequence, in any length form, is recorded as an empty value is.
      if (f.items == 0) {
        digest_mark('Z', f.tag);
      } else {
        digest_mark('Q', f.tag);
      }
    }
    if (f.kind == Kind::kItem) digest_mark('E', 0);
    stack_.pop_back();
  }

  // The content digest (walker.h): a mark of structure, with the tag it belongs to.
  void digest_mark(char what, std::uint32_t tag) {
    if (digest_ == nullptr) return;
    unsigned char rec[5] = {static_cast<unsigned char>(what)};
    ValueTap::put32(rec + 1, tag);
    digest_->header.update(rec, sizeof rec);
  }

  // The content digest of an element with a value (not a sequence): the step that consumes the
  // value hands its bytes to the tap; end_value() adds it. Group lengths and trailing padding say
  // nothing about the content; the top-level Pixel Data goes to a digest of its own.
  void digest_element(std::uint32_t tag, std::uint32_t len, bool top) {
    if (digest_ == nullptr) return;
    if ((tag & 0xFFFFu) == 0 || tag == kTagTrailingPadding) return;
    if (top && tag == kTagPixelData) {
      r_.set_tap(pixel_tap_.get());
      return;
    }
    // Padding is held back while it runs: only for a value no longer than a text value may be
    // (a text tag stated as OB may hold gigabytes).
    value_tap_.start(tag,
                     len <= limits_.max_text_value && digest_->text_tag && digest_->text_tag(tag));
    r_.set_tap(&value_tap_);
  }

  // Before the next header: the value read since digest_element() goes into the digest.
  void end_value() {
    r_.set_tap(nullptr);
    if (value_tap_.active()) value_tap_.finish(digest_->header);
  }

  // Inside a sequence: only items and, for undefined length, the sequence delimiter.
  Result<void> sequence_step(std::uint64_t p) {
    unsigned char h[8];
    if (auto rh = read_header(h, 8, p); !rh) return rh;
    const bool big = stack_.back().enc == Encoding::kExplicitBE;
    const std::uint32_t tag = std::uint32_t{get16(h, big)} << 16 | get16(h + 2, big);
    const std::uint32_t len = get32(h + 4, big);
    Frame& f = stack_.back();
    if (tag == kTagItem) {
      if (auto c = count_item(p); !c) return c;
      if (f.items++ == 0) digest_mark('S', f.tag);
      digest_mark('I', 0);
      const Encoding enc = f.enc;
      if (len == kUndefinedLength) {
        stack_.push_back(Frame{p, kNoEnd, f.limit, 0, false, false, Kind::kItem, enc});
        return {};
      }
      if (auto c = check_length(len, p, "item"); !c) return c;
      if (len % 2 != 0) warn("odd item length" + at(p));
      const std::uint64_t end = r_.pos() + len;
      stack_.push_back(Frame{p, end, std::min(end, f.limit), 0, false, false, Kind::kItem, enc});
      return {};
    }
    if (tag == kTagSeqDelim) {
      if (f.end != kNoEnd) {
        return reject("sequence delimitation item inside a defined-length sequence" + at(p));
      }
      if (len != 0) return reject("sequence delimitation item with nonzero length" + at(p));
      pop();
      return {};
    }
    if (tag == kTagItemDelim) {
      return reject("item delimitation item in a sequence outside any item" + at(p));
    }
    return reject("data element " + tag_text(tag) + " where a sequence item was expected" + at(p));
  }

  // Inside encapsulated pixel data: fragment items until the sequence delimiter.
  Result<void> pixel_step(std::uint64_t p) {
    unsigned char h[8];
    if (auto rh = read_header(h, 8, p); !rh) return rh;
    const std::uint32_t tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
    const std::uint32_t len = get32(h + 4, false);
    Frame& f = stack_.back();
    if (tag == kTagItem) {
      if (auto c = count_item(p); !c) return c;
      if (len == kUndefinedLength) {
        return reject("encapsulated pixel data fragment with undefined length" + at(p));
      }
      if (auto c = check_length(len, p, "encapsulated pixel data fragment"); !c) return c;
      if (len % 2 != 0) warn("odd fragment length" + at(p));
      // The pixels are the fragments after the basic offset table, however they are cut.
      if (f.item_seen && digest_ != nullptr) r_.set_tap(pixel_tap_.get());
      f.item_seen = true;
      return skip_value(len, p, "encapsulated pixel data fragment");
    }
    if (tag == kTagSeqDelim) {
      if (len != 0) return reject("sequence delimitation item with nonzero length" + at(p));
      if (!f.item_seen) {
        return reject("encapsulated pixel data without a basic offset table item" + at(p));
      }
      pop();
      return {};
    }
    return reject("data element " + tag_text(tag) +
                  " inside encapsulated pixel data, where a fragment item was expected" + at(p));
  }

  // Inside the dataset or an item: one data element (or the item delimiter). The steps below
  // keep the order of the checks, which decides which reason a bad element gets.
  Result<void> element_step(std::uint64_t p) {
    unsigned char h[12];
    if (auto rh = read_header(h, 4, p); !rh) return rh;
    const Encoding enc = stack_.back().enc;
    const bool big = enc == Encoding::kExplicitBE;
    const std::uint16_t group = get16(h, big);
    const std::uint32_t tag = std::uint32_t{group} << 16 | get16(h + 2, big);
    const bool top = stack_.size() == 1;

    if (group == 0xFFFE) return delimiter_step(p, h, tag, big);
    if (auto c = check_tag(p, h, tag, big, top); !c) return c;

    const VrInfo* vr = nullptr;
    std::uint32_t len = 0;
    if (auto rl = read_vr_and_length(p, h, tag, top, enc, vr, len); !rl) return rl;
    if (len == kUndefinedLength) return undefined_length(p, tag, vr, enc);

    if (auto c = check_length(len, p, "value"); !c) return c;
    if (top && tag == kTagPixelData && ts_.encapsulated) {
      // Native pixels under a compressed syntax: a receiver would decode them as a JPEG (or
      // RLE...) stream and fail; the repository refuses it (Orthanc answers 400).
      return reject("native (defined-length) pixel data in an encapsulated transfer syntax" +
                    at(p));
    }
    const std::uint64_t value_start = r_.pos();
    if (vr_is(vr, "SQ")) return push_sequence(p, value_start + len, enc, tag);
    if ((vr == nullptr || vr_is(vr, "UN")) && len >= 8 && !is_bulk_tag(tag)) {
      // A value that starts with an item tag is a sequence DCMTK's dictionary would descend into:
      // it gets the same depth, count and structure checks.
      const unsigned char* v = r_.peek(4);
      if (v != nullptr && get32(v, false) == 0xE000FFFEu) {
        return push_sequence(p, value_start + len, Encoding::kImplicitLE, tag);
      }
      if (r_.error()) return *r_.error();
    }
    digest_element(tag, len, top);
    if (len % 2 != 0) {
      warn("odd value length for " + tag_text(tag) + at(p));
      if (out_.odd_lengths++ == 0) out_.first_odd_length_tag = tag;
    }
    if ((group & 1) != 0 && len > out_.largest_private_value) {
      out_.largest_private_value = len;
      out_.largest_private_tag = tag;
    }
    const bool text =
        vr != nullptr ? vr->cls == VrClass::kText : ((group & 1) == 0 && !is_bulk_tag(tag));
    if (text && len > limits_.max_text_value) {
      return reject("value of " + tag_text(tag) + " longer than max_text_value" + at(p));
    }
    if (tag == kTagDirectoryRecordType || tag == kTagReferencedFileId)
      return check_record_code_string(p, tag, len);
    if (top) {
      if (Found* slot = top_level_slot(tag)) {
        if (auto v = check_identity_vr(p, tag, vr); !v) return v;
        return read_top_level(p, tag, len, *slot);
      }
    }
    return skip_value(len, p, "value");
  }

  // DCMTK 3.6.7 reads every item of a Directory Record Sequence (0004,1220), in any object, as a
  // directory record, and "corrects" its Directory Record Type (0004,1430) and Referenced File
  // ID (0004,1500) with DcmByteString::verify(OFTrue): when the last value is longer than a code
  // string may be (16 bytes), that function underflows a position and throws std::out_of_range,
  // which ends the process (dcmdump too). Found by fuzz_folder. Refused here, before DCMTK.
  Result<void> check_record_code_string(std::uint64_t p, std::uint32_t tag, std::uint32_t len) {
    constexpr std::uint32_t kMaxValues = 8;  // (0004,1500) has VM 1-8
    if (len > kMaxValues * (kMaxCs + 1)) {
      return reject("value of " + tag_text(tag) + " longer than a code string of up to 8 values" +
                    at(p));
    }
    std::string value(len, '\0');
    if (!r_.read(value.data(), len)) {
      if (r_.error()) return *r_.error();
      return reject("value extends beyond the end of the data" + at(p));
    }
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = value.find('\\', start);
      const std::size_t n = (end == std::string::npos ? value.size() : end) - start;
      if (n > kMaxCs) {
        return reject("value of " + tag_text(tag) + " has a component longer than 16 bytes" +
                      at(p));
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return {};
  }

  // An item or sequence delimiter, or an item, where a data element was expected.
  Result<void> delimiter_step(std::uint64_t p, unsigned char* h, std::uint32_t tag, bool big) {
    if (auto rh = read_header(h + 4, 4, p); !rh) return rh;
    const std::uint32_t len = get32(h + 4, big);
    const Frame& f = stack_.back();
    if (tag == kTagItemDelim) {
      if (f.kind != Kind::kItem || f.end != kNoEnd) {
        return reject("item delimitation item outside an undefined-length item" + at(p));
      }
      if (len != 0) return reject("item delimitation item with nonzero length" + at(p));
      pop();
      return {};
    }
    if (tag == kTagSeqDelim) {
      return reject("sequence delimitation item outside an undefined-length sequence" + at(p));
    }
    if (tag == kTagItem) return reject("item outside a sequence" + at(p));
    return reject("unknown delimiter element " + tag_text(tag) + at(p));
  }

  // Byte order, group, ascending order and the element count, from the tag alone.
  Result<void> check_tag(std::uint64_t p, const unsigned char* h, std::uint32_t tag, bool big,
                         bool top) {
    const auto group = static_cast<std::uint16_t>(tag >> 16);
    if (top && first_element_) {
      first_element_ = false;
      // A valid dataset contains (0008,0016), so its first element's group is at most 0x0008.
      const std::uint16_t swapped = get16(h, !big);
      if (group > 0x0008 && swapped <= 0x0008) {
        return reject("dataset byte order does not match the transfer syntax" + at(p));
      }
    }
    if (group == 0x0000)
      return reject("command element " + tag_text(tag) + " in the dataset" + at(p));
    if (group == 0x0002) {
      return reject("file meta element " + tag_text(tag) + " in the dataset" + at(p));
    }
    if (group == 0x0001 || group == 0x0003 || group == 0x0005 || group == 0x0007 ||
        group == 0xFFFF) {
      return reject("data element " + tag_text(tag) + " in an illegal group" + at(p));
    }
    Frame& f = stack_.back();
    if (f.has_last && tag <= f.last_tag) {
      return reject(tag == f.last_tag
                        ? "data element " + tag_text(tag) + " repeated" + at(p)
                        : "data element " + tag_text(tag) + " out of ascending tag order" + at(p));
    }
    f.last_tag = tag;
    f.has_last = true;
    if (++elements_ > limits_.max_elements) {
      return reject("more data elements than max_elements" + at(p));
    }
    return {};
  }

  // The rest of the header: VR (explicit VR only; nullptr in implicit VR) and value length.
  Result<void> read_vr_and_length(std::uint64_t p, unsigned char* h, std::uint32_t tag, bool top,
                                  Encoding enc, const VrInfo*& vr, std::uint32_t& len) {
    const bool big = enc == Encoding::kExplicitBE;
    if (auto rh = read_header(h + 4, 4, p); !rh) return rh;
    if (enc == Encoding::kImplicitLE) {
      len = get32(h + 4, false);
      if (top && elements_ == 1 && find_vr(h + 4) != nullptr) {
        return reject("dataset looks like explicit VR but the transfer syntax is implicit VR" +
                      at(p));
      }
      return {};
    }
    vr = find_vr(h + 4);
    if (vr == nullptr) {
      return reject("invalid VR for " + tag_text(tag) +
                    " (the transfer syntax says explicit VR; is the dataset implicit VR?)" + at(p));
    }
    if (vr->long_form) {
      if (auto rh = read_header(h + 8, 4, p); !rh) return rh;
      len = get32(h + 8, big);
    } else {
      len = get16(h + 6, big);
    }
    return {};
  }

  // An element of undefined length: a sequence, encapsulated pixel data, or an error.
  Result<void> undefined_length(std::uint64_t p, std::uint32_t tag, const VrInfo* vr,
                                Encoding enc) {
    if (vr_is(vr, "SQ")) return push_sequence(p, kNoEnd, enc, tag);
    if (tag == kTagPixelData &&
        (vr == nullptr || vr_is(vr, "OB") || vr_is(vr, "OW") || vr_is(vr, "UN"))) {
      if (!ts_.encapsulated) {
        return reject("undefined-length (encapsulated) pixel data in a native transfer syntax" +
                      at(p));
      }
      const std::uint64_t limit = stack_.back().limit;
      stack_.push_back(Frame{p, kNoEnd, limit, 0, false, false, Kind::kPixelSequence, enc});
      return {};
    }
    // UN of undefined length, or any implicit-VR element of undefined length: a sequence whose
    // content is implicit VR little endian (PS3.5 6.2.2).
    if (vr == nullptr || vr_is(vr, "UN"))
      return push_sequence(p, kNoEnd, Encoding::kImplicitLE, tag);
    return reject(std::string("undefined length on ") + tag_text(tag) + " with VR " + vr->name +
                  ", which is not a sequence" + at(p));
  }

  // Where a top-level value the catalog wants goes; nullptr for the others.
  Found* top_level_slot(std::uint32_t tag) {
    return tag == kTagSopClass            ? &sop_class_
           : tag == kTagSopInstance       ? &sop_instance_
           : tag == kTagModality          ? &modality_
           : tag == kTagStudyUid          ? &study_
           : tag == kTagSeriesUid         ? &series_
           : tag == kTagPatientId         ? &patient_id_
           : tag == kTagIssuerOfPatientId ? &issuer_
                                          : nullptr;
  }

  // The values the catalog keeps (an object's UIDs, modality, patient ID) must be read by DCMTK as
  // the same value: in explicit VR, DCMTK takes the VR the object states, so a SOP Instance UID
  // stated as US is a list of numbers to every later stage (found by fuzz_policy: de-identified,
  // it came out without a SOP Instance UID). Only their own VR is taken, and UN, which objects
  // from the field carry (pydicom's rtdose_rle.dcm states its SOP Class UID as UN) and whose
  // bytes are the value as text; implicit VR states none.
  Result<void> check_identity_vr(std::uint64_t p, std::uint32_t tag, const VrInfo* vr) {
    if (vr == nullptr || vr_is(vr, "UN")) return {};
    const char* own = tag == kTagModality                                    ? "CS"
                      : tag == kTagPatientId || tag == kTagIssuerOfPatientId ? "LO"
                                                                             : "UI";
    if (vr_is(vr, own)) return {};
    return reject(tag_text(tag) + " has VR " + vr->name + ", not " + own + at(p));
  }

  Result<void> read_top_level(std::uint64_t p, std::uint32_t tag, std::uint32_t len, Found& slot) {
    if ((tag == kTagPatientId || tag == kTagIssuerOfPatientId) && len > kMaxLoBytes) {
      // Over-long, but structurally fine: validation judges it. Its length stands for it in the
      // identity comparison (the value is not kept).
      slot.value = "#over-long:" + std::to_string(len);
      slot.offset = p;
      return skip_value(len, p, "value");
    }
    const std::size_t max = tag == kTagModality                                    ? kMaxCs
                            : tag == kTagPatientId || tag == kTagIssuerOfPatientId ? kMaxLoBytes
                                                                                   : kMaxUid;
    if (len > max) {
      return reject("value of " + tag_text(tag) + " longer than " + std::to_string(max) + " bytes" +
                    at(p));
    }
    std::string value(len, '\0');
    if (!r_.read(value.data(), len)) {
      if (r_.error()) return *r_.error();
      return reject("value extends beyond the end of the data" + at(p));
    }
    slot.value = std::string(trim_dicom_trailing(value));
    slot.offset = p;
    return {};
  }

  Result<void> finish() {
    const std::string ds_at = " (dataset at offset " + std::to_string(out_.dataset_offset) + ")";
    auto require = [&](const Found& found, const char* what) -> std::optional<Error> {
      if (!found.value || found.value->empty()) {
        return reject(std::string("dataset has no ") + what + ds_at);
      }
      return std::nullopt;
    };
    // A DICOMDIR (read by the folder input) is an index, not an object: its structure is
    // checked like any other, but it carries none of an object's UIDs.
    if (!limits_.require_object_uids) return {};
    if (auto e = require(sop_class_, "SOP Class UID (0008,0016)")) return *e;
    if (auto e = require(sop_instance_, "SOP Instance UID (0008,0018)")) return *e;
    if (auto e = require(study_, "Study Instance UID (0020,000D)")) return *e;
    if (auto e = require(series_, "Series Instance UID (0020,000E)")) return *e;
    auto uid = [&](const Found& found, const char* what) -> std::optional<Error> {
      if (!uid_syntax_ok(*found.value)) {
        return reject(std::string(what) + " is not a UID (only digits and dots, at most 64)" +
                      at(found.offset));
      }
      return std::nullopt;
    };
    if (auto e = uid(sop_class_, "SOP Class UID (0008,0016)")) return *e;
    if (auto e = uid(sop_instance_, "SOP Instance UID (0008,0018)")) return *e;
    if (auto e = uid(study_, "Study Instance UID (0020,000D)")) return *e;
    if (auto e = uid(series_, "Series Instance UID (0020,000E)")) return *e;
    if (limits_.compare_meta_uids && *sop_class_.value != out_.sop_class_uid) {
      return reject("SOP Class UID (0008,0016) differs from the meta header's (0002,0002)" +
                    at(sop_class_.offset));
    }
    if (limits_.compare_meta_uids && *sop_instance_.value != out_.sop_instance_uid) {
      return reject("SOP Instance UID (0008,0018) differs from the meta header's (0002,0003)" +
                    at(sop_instance_.offset));
    }
    out_.dataset_sop_class_uid = *sop_class_.value;
    out_.dataset_sop_instance_uid = *sop_instance_.value;
    out_.study_uid = *study_.value;
    out_.series_uid = *series_.value;
    out_.modality = modality_.value.value_or(std::string());
    out_.patient_id = patient_id_.value.value_or(std::string());
    out_.issuer_of_patient_id = issuer_.value.value_or(std::string());
    return {};
  }

  Reader& r_;
  const PrescanLimits& limits_;
  TransferSyntax ts_;
  std::uint64_t top_limit_;
  bool inflated_;
  PrescanResult& out_;
  std::vector<Frame> stack_;
  int seq_depth_ = 0;
  std::uint64_t items_ = 0;
  std::uint64_t elements_ = 0;
  bool first_element_ = true;
  ContentDigest* digest_;
  ValueTap value_tap_;
  std::unique_ptr<HashTap> pixel_tap_;
  Found sop_class_, sop_instance_, modality_, study_, series_, patient_id_, issuer_;
};

}  // namespace

Result<void> walk_dataset(Reader& r, const PrescanLimits& limits, const TransferSyntax& ts,
                          std::uint64_t top_limit, bool inflated, PrescanResult& out,
                          ContentDigest* digest) {
  return Walker(r, limits, ts, top_limit, inflated, out, digest).run();
}

}  // namespace dirgw::ingest::prescan_detail
