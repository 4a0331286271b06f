// Builds DICOM byte streams for the pre-scan tests: data elements, nested sequences and items of
// defined or undefined length, encapsulated pixel data, a Part-10 meta header, raw deflate.
// Deliberately permissive: it writes whatever it is told, so tests can build broken objects.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw::test {

enum class Enc { kImplicitLE, kExplicitLE, kExplicitBE };

inline constexpr std::string_view kImplicitLE = "1.2.840.10008.1.2";
inline constexpr std::string_view kExplicitLE = "1.2.840.10008.1.2.1";
inline constexpr std::string_view kExplicitBE = "1.2.840.10008.1.2.2";
inline constexpr std::string_view kDeflated = "1.2.840.10008.1.2.1.99";
inline constexpr std::string_view kJpegBaseline = "1.2.840.10008.1.2.4.50";
inline constexpr std::string_view kRle = "1.2.840.10008.1.2.5";
inline constexpr std::string_view kSecondaryCapture = "1.2.840.10008.5.1.4.1.1.7";
inline constexpr std::string_view kSopInstance = "1.2.826.0.1.3680043.2.1125.1.42";
inline constexpr std::string_view kStudy = "1.2.826.0.1.3680043.2.1125.1.1";
inline constexpr std::string_view kSeries = "1.2.826.0.1.3680043.2.1125.1.2";

inline bool long_form(std::string_view vr) {
  static constexpr std::string_view kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                               "SV", "UC", "UN", "UR", "UT", "UV"};
  for (auto l : kLong) {
    if (vr == l) return true;
  }
  return false;
}

class DatasetBuilder {
 public:
  static constexpr std::uint32_t kUndefined = 0xFFFFFFFFu;

  explicit DatasetBuilder(Enc enc = Enc::kExplicitLE) : enc_(enc) {}

  Enc enc() const { return enc_; }
  std::size_t size() const { return out_.size(); }

  // A data element with the value as given (no padding).
  DatasetBuilder& element(std::uint32_t tag, std::string_view vr, std::string_view value) {
    header(tag, vr, static_cast<std::uint32_t>(value.size()));
    out_.append(value);
    return *this;
  }
  // A string element padded to even length (NUL for UI, space otherwise).
  DatasetBuilder& str(std::uint32_t tag, std::string_view vr, std::string_view value) {
    std::string v(value);
    if (v.size() % 2 != 0) v.push_back(vr == "UI" ? '\0' : ' ');
    return element(tag, vr, v);
  }
  // Only a header: tag, VR (if explicit) and the given length.
  DatasetBuilder& header(std::uint32_t tag, std::string_view vr, std::uint32_t len) {
    put_tag(tag);
    if (enc_ == Enc::kImplicitLE) {
      u32(len);
    } else {
      out_.append(vr.substr(0, 2));
      if (long_form(vr)) {
        u16(0);
        u32(len);
      } else {
        u16(static_cast<std::uint16_t>(len));
      }
    }
    return *this;
  }
  DatasetBuilder& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  // FFFE-group item/delimiter header: tag and 32-bit length, no VR.
  DatasetBuilder& item_header(std::uint32_t tag, std::uint32_t len) {
    put_tag(tag);
    u32(len);
    return *this;
  }

  // Sequence with VR SQ (or UN: its content is then implicit VR LE, per PS3.5 6.2.2).
  DatasetBuilder& begin_sequence(std::uint32_t tag, bool undefined = true,
                                 std::string_view vr = "SQ") {
    header(tag, vr, undefined ? kUndefined : 0);
    open_.push_back({out_.size() - 4, undefined, false, enc_});
    if (vr == "UN") enc_ = Enc::kImplicitLE;
    return *this;
  }
  DatasetBuilder& end_sequence() { return close(false, 0xFFFEE0DDu); }
  DatasetBuilder& begin_item(bool undefined = true) {
    item_header(0xFFFEE000u, undefined ? kUndefined : 0);
    open_.push_back({out_.size() - 4, undefined, true, enc_});
    return *this;
  }
  DatasetBuilder& end_item() { return close(true, 0xFFFEE00Du); }

  // Encapsulated pixel data: (7FE0,0010) OB undefined length, BOT item, fragments, delimiter.
  DatasetBuilder& begin_pixel_sequence(std::string_view vr = "OB") {
    return header(0x7FE00010u, vr, kUndefined);
  }
  DatasetBuilder& fragment(std::string_view bytes) {
    item_header(0xFFFEE000u, static_cast<std::uint32_t>(bytes.size()));
    out_.append(bytes);
    return *this;
  }
  DatasetBuilder& end_pixel_sequence() { return item_header(0xFFFEE0DDu, 0); }

  std::string take() {
    if (!open_.empty()) throw std::logic_error("DatasetBuilder: unclosed sequence or item");
    return std::move(out_);
  }
  // For deliberately unclosed structures.
  std::string take_unchecked() { return std::move(out_); }

 private:
  struct Open {
    std::size_t len_pos;
    bool undefined;
    bool item;
    Enc saved;
  };

  DatasetBuilder& close(bool item, std::uint32_t delim) {
    if (open_.empty() || open_.back().item != item) {
      throw std::logic_error("DatasetBuilder: mismatched end");
    }
    Open o = open_.back();
    open_.pop_back();
    if (o.undefined) {
      item_header(delim, 0);  // in the content's encoding
      enc_ = o.saved;
    } else {
      enc_ = o.saved;  // the length sits in the enclosing encoding
      patch32(o.len_pos, static_cast<std::uint32_t>(out_.size() - (o.len_pos + 4)));
    }
    return *this;
  }

  bool big() const { return enc_ == Enc::kExplicitBE; }
  void put_tag(std::uint32_t tag) {
    u16(static_cast<std::uint16_t>(tag >> 16));
    u16(static_cast<std::uint16_t>(tag & 0xFFFF));
  }
  void u16(std::uint16_t v) {
    if (big()) {
      out_.push_back(static_cast<char>(v >> 8));
      out_.push_back(static_cast<char>(v & 0xFF));
    } else {
      out_.push_back(static_cast<char>(v & 0xFF));
      out_.push_back(static_cast<char>(v >> 8));
    }
  }
  void u32(std::uint32_t v) {
    if (big()) {
      u16(static_cast<std::uint16_t>(v >> 16));
      u16(static_cast<std::uint16_t>(v & 0xFFFF));
    } else {
      u16(static_cast<std::uint16_t>(v & 0xFFFF));
      u16(static_cast<std::uint16_t>(v >> 16));
    }
  }
  void patch32(std::size_t pos, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      const int shift = big() ? 24 - 8 * i : 8 * i;
      out_[pos + static_cast<std::size_t>(i)] = static_cast<char>((v >> shift) & 0xFF);
    }
  }

  std::string out_;
  Enc enc_;
  std::vector<Open> open_;
};

// The SOP Common / Study / Series head every test dataset starts with; tests append elements with
// tags above (0020,000E).
inline DatasetBuilder& standard_head(DatasetBuilder& b,
                                     std::string_view sop_instance = kSopInstance) {
  b.str(0x00080016u, "UI", kSecondaryCapture)
      .str(0x00080018u, "UI", sop_instance)
      .str(0x00080060u, "CS", "OT")
      .str(0x00100010u, "PN", "Synthetic^Patient")
      .str(0x0020000Du, "UI", kStudy)
      .str(0x0020000Eu, "UI", kSeries);
  return b;
}

struct Meta {
  std::string transfer_syntax{kExplicitLE};
  std::string sop_class{kSecondaryCapture};
  std::string sop_instance{kSopInstance};
  std::string preamble = std::string(128, '\0');
  bool version = true;
  std::int64_t group_length_delta = 0;  // lie about (0002,0000)
  std::string extra;                    // raw bytes appended inside the meta group
};

inline std::string meta_elements(const Meta& m) {
  DatasetBuilder b(Enc::kExplicitLE);
  if (m.version) b.element(0x00020001u, "OB", std::string("\0\1", 2));
  if (!m.sop_class.empty()) b.str(0x00020002u, "UI", m.sop_class);
  if (!m.sop_instance.empty()) b.str(0x00020003u, "UI", m.sop_instance);
  if (!m.transfer_syntax.empty()) b.str(0x00020010u, "UI", m.transfer_syntax);
  b.str(0x00020012u, "UI", "1.2.826.0.1.3680043.2.1125.99");
  b.raw(m.extra);
  return b.take();
}

// Preamble + DICM + meta group (with its group length) + dataset bytes as given.
inline std::string part10(const Meta& m, std::string_view dataset) {
  const std::string elements = meta_elements(m);
  DatasetBuilder g(Enc::kExplicitLE);
  const auto glen =
      static_cast<std::uint32_t>(static_cast<std::int64_t>(elements.size()) + m.group_length_delta);
  g.element(
      0x00020000u, "UL",
      std::string{static_cast<char>(glen & 0xFF), static_cast<char>((glen >> 8) & 0xFF),
                  static_cast<char>((glen >> 16) & 0xFF), static_cast<char>((glen >> 24) & 0xFF)});
  std::string out = m.preamble;
  out += "DICM";
  out += g.take();
  out += elements;
  out.append(dataset);
  return out;
}

inline std::string part10(std::string_view ts, std::string_view dataset) {
  Meta m;
  m.transfer_syntax = std::string(ts);
  return part10(m, dataset);
}

// Raw deflate (no zlib header), as PS3.5 A.5 wants.
inline std::string raw_deflate(std::string_view in, int level = 6) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())) + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  out.resize(zs.total_out);
  return out;
}

}  // namespace dirgw::test
