// Presentation-context planning for one batch, as pure functions (no DCMTK, no I/O).
//
// Proposal: one presentation context per (SOP class, transfer syntax), a single transfer syntax
// each, so that the answer says exactly which syntaxes the destination takes. Per SOP class, in
// the order the batch first names them: the stored syntaxes of its objects, then Explicit VR
// Little Endian and Implicit VR Little Endian when one of its objects is native (not
// encapsulated) and could be re-encoded into them losslessly.
//
// Assignment: an object goes in its own syntax when that was accepted (sent byte for byte);
// a transcoded copy whose syntax was refused is replaced by its stored original, assigned alike;
// a native object whose own syntax was refused goes in Explicit, else Implicit VR Little Endian
// (re-encoded by DCMTK: lossless, only the byte layout changes); an encapsulated object goes in
// its own syntax, else, when DCMTK can decode it (JPEG, JPEG-LS, RLE; not JPEG 2000 or MPEG,
// which Debian's DCMTK cannot) and the destination's `decompress` allows, decompressed to
// Explicit, else Implicit VR Little Endian (PlanItem::decompressible, Kind::kDecompress); else
// it is refused permanently, with the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw::senders::dimse {

inline constexpr std::string_view kImplicitVrLittleEndian = "1.2.840.10008.1.2";
inline constexpr std::string_view kExplicitVrLittleEndian = "1.2.840.10008.1.2.1";
inline constexpr std::string_view kDeflatedExplicitVrLittleEndian = "1.2.840.10008.1.2.1.99";
inline constexpr std::string_view kExplicitVrBigEndian = "1.2.840.10008.1.2.2";

// The four syntaxes whose pixel data (if any) is native: any one converts to another without
// loss. Everything else (and any unknown UID) is treated as encapsulated.
bool is_native_syntax(std::string_view transfer_syntax);
// "JPEG-LS Lossless (1.2.840.10008.1.2.4.80)", or the UID alone when it is not one we name.
std::string describe_syntax(std::string_view transfer_syntax);

// Encapsulated syntaxes DCMTK decodes here (dcmjpeg, dcmjpls, dcmdata's RLE): lossless ones
// (JPEG Lossless, JPEG-LS Lossless, RLE) and, with lossy_too, JPEG Baseline and Extended and
// JPEG-LS Near-Lossless. Decompressing a lossy image loses nothing more; the object keeps
// Lossy Image Compression (0028,2110) "01".
bool decodable_syntax(std::string_view transfer_syntax, bool lossy_too);

struct PlanItem {
  std::string sop_class_uid;
  std::string transfer_syntax;  // as stored: the file's (0002,0010)
  // A transcoded copy's stored original (its syntax, native): proposed too, and used when the
  // destination refuses the copy's syntax (Assignment::original).
  std::string original_syntax;
  // Encapsulated, and may go decompressed when its own syntax is refused; else, for an
  // encapsulated object, why not (the destination's `decompress`, or no decoder).
  bool decompressible = false;
  std::string not_decompressed;
};

struct ProposedContext {
  std::uint8_t id = 0;  // odd, 1..255 (PS3.8 9.3.2.2)
  std::string abstract_syntax;
  std::string transfer_syntax;
};

// PS3.8 allows 128 presentation contexts in one association request.
inline constexpr std::size_t kMaxContexts = 128;

// One association's worth: the contexts to propose and which items (indices into the batch)
// go over it. Almost every batch is one round; a batch naming more (SOP class, syntax) pairs
// than fit in one request is split, whole SOP classes at a time.
struct AssociationRound {
  std::vector<ProposedContext> contexts;
  std::vector<std::size_t> items;
};

// `extra_abstract_syntaxes` are proposed once each in every round with Explicit and Implicit VR
// Little Endian (for Storage Commitment's N-ACTION later); they count against kMaxContexts.
std::vector<AssociationRound> plan_rounds(
    const std::vector<PlanItem>& items,
    const std::vector<std::string>& extra_abstract_syntaxes = {});

// What the destination answered for one proposed context.
struct NegotiatedContext {
  std::uint8_t id = 0;
  std::string abstract_syntax;
  std::string transfer_syntax;  // the one proposed (we propose one per context)
  bool accepted = false;
};

struct Assignment {
  enum class Kind {
    kAsIs,        // in its own syntax, the stored dataset bytes unchanged
    kConvert,     // native object re-encoded into another native syntax
    kDecompress,  // encapsulated object decompressed into a native syntax
    kRefused,     // not sendable over this association: permanent
  };
  Kind kind = Kind::kRefused;
  std::uint8_t context_id = 0;
  std::string transfer_syntax;  // the syntax it goes in (kAsIs, kConvert, kDecompress)
  std::string reason;           // kRefused: why, naming the SOP class and syntax
  bool original = false;        // the item's stored original goes, not the transcoded copy
};

Assignment assign_context(const PlanItem& item, const std::vector<NegotiatedContext>& contexts);

}  // namespace dirgw::senders::dimse
