#include "senders/transcode/jpeg2000.h"

#include <openjpeg.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/dcmtk_guard.h"

// clang-format off
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcxfer.h"
// clang-format on

namespace dirgw::senders::transcode {

namespace {

constexpr std::string_view kLossless = "1.2.840.10008.1.2.4.90";
constexpr std::string_view kLossy = "1.2.840.10008.1.2.4.91";

struct Bytes {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

// A code stream in memory, read by OpenJPEG through its stream callbacks.
struct Source {
  Bytes bytes;
  std::size_t at = 0;
};

OPJ_SIZE_T source_read(void* buffer, OPJ_SIZE_T n, void* user) {
  auto* s = static_cast<Source*>(user);
  if (s->at >= s->bytes.size) return static_cast<OPJ_SIZE_T>(-1);
  const std::size_t k = std::min<std::size_t>(n, s->bytes.size - s->at);
  std::memcpy(buffer, s->bytes.data + s->at, k);
  s->at += k;
  return k;
}
OPJ_OFF_T source_skip(OPJ_OFF_T n, void* user) {
  auto* s = static_cast<Source*>(user);
  if (n < 0) {
    const std::size_t back = std::min<std::size_t>(static_cast<std::size_t>(-n), s->at);
    s->at -= back;
    return -static_cast<OPJ_OFF_T>(back);
  }
  const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(n), s->bytes.size - s->at);
  s->at += k;
  return static_cast<OPJ_OFF_T>(k);
}
OPJ_BOOL source_seek(OPJ_OFF_T to, void* user) {
  auto* s = static_cast<Source*>(user);
  if (to < 0 || static_cast<std::uint64_t>(to) > s->bytes.size) return OPJ_FALSE;
  s->at = static_cast<std::size_t>(to);
  return OPJ_TRUE;
}
void quiet(const char*, void*) {}  // OpenJPEG's messages may quote the stream: not logged

struct CodecFree {
  void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct StreamFree {
  void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct ImageFree {
  void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};

struct Module {  // the Image Pixel module, as the data set states it
  Uint16 rows = 0, columns = 0, samples = 1, bits_allocated = 0, bits_stored = 0;
  Uint16 representation = 0;
  Sint32 frames = 1;
  OFString photometric;
};

// One frame's code stream decoded into `out` (interleaved samples; 16-bit ones in host order).
std::optional<std::string> decode_frame(Bytes stream, const Module& m, std::uint8_t* out) {
  static constexpr std::uint8_t kJp2Signature[] = {0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20};
  const bool jp2 = stream.size >= sizeof kJp2Signature &&
                   std::memcmp(stream.data, kJp2Signature, sizeof kJp2Signature) == 0;
  std::unique_ptr<opj_codec_t, CodecFree> codec(
      opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K));
  if (!codec) return "OpenJPEG cannot create a decoder";
  opj_set_error_handler(codec.get(), quiet, nullptr);
  opj_set_warning_handler(codec.get(), quiet, nullptr);
  opj_set_info_handler(codec.get(), quiet, nullptr);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  if (!opj_setup_decoder(codec.get(), &params)) return "OpenJPEG refused its parameters";

  Source source{stream, 0};
  std::unique_ptr<opj_stream_t, StreamFree> in(opj_stream_create(64 * 1024, OPJ_TRUE));
  if (!in) return "OpenJPEG cannot create a stream";
  opj_stream_set_read_function(in.get(), source_read);
  opj_stream_set_skip_function(in.get(), source_skip);
  opj_stream_set_seek_function(in.get(), source_seek);
  opj_stream_set_user_data(in.get(), &source, nullptr);
  opj_stream_set_user_data_length(in.get(), stream.size);

  opj_image_t* raw = nullptr;
  if (!opj_read_header(in.get(), codec.get(), &raw)) return "the JPEG 2000 header does not read";
  std::unique_ptr<opj_image_t, ImageFree> image(raw);
  // Checked against the data set before anything the size of the image is allocated.
  if (image->numcomps != m.samples)
    return "the code stream has " + std::to_string(image->numcomps) +
           " components, Samples per Pixel says " + std::to_string(m.samples);
  if (image->x1 - image->x0 != m.columns || image->y1 - image->y0 != m.rows)
    return "the code stream's size differs from Rows and Columns";
  for (OPJ_UINT32 c = 0; c < image->numcomps; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (comp.dx != 1 || comp.dy != 1) return "a subsampled component is not supported";
    if (comp.prec == 0 || comp.prec > m.bits_allocated)
      return "a component's precision exceeds Bits Allocated";
  }
  if (!opj_decode(codec.get(), in.get(), image.get()) || !opj_end_decompress(codec.get(), in.get()))
    return "the JPEG 2000 code stream does not decode";
  for (OPJ_UINT32 c = 0; c < image->numcomps; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (comp.data == nullptr || comp.w != m.columns || comp.h != m.rows)
      return "a decoded component has the wrong size";
  }
  const std::size_t pixels = std::size_t{m.rows} * m.columns;
  const std::size_t samples = m.samples;
  const std::uint32_t mask = m.bits_allocated >= 32 ? 0xFFFFFFFFu : ((1u << m.bits_allocated) - 1u);
  for (std::size_t p = 0; p < pixels; ++p) {
    for (std::size_t c = 0; c < samples; ++c) {
      const auto v = static_cast<std::uint32_t>(image->comps[c].data[p]) & mask;
      const std::size_t i = p * samples + c;
      if (m.bits_allocated == 8) {
        out[i] = static_cast<std::uint8_t>(v);
      } else {  // host order, as DCMTK's putUint16Array takes it
        const auto w = static_cast<std::uint16_t>(v);
        std::memcpy(out + 2 * i, &w, sizeof w);
      }
    }
  }
  return std::nullopt;
}

// The code streams of the frames, from the fragments (item 0 is the Basic Offset Table).
std::optional<std::string> frames_of(DcmPixelSequence& seq, Sint32 frames,
                                     std::vector<std::vector<Bytes>>& out) {
  const unsigned long items = seq.card();
  if (items < 2) return "the pixel data has no fragments";
  std::vector<Bytes> fragments;
  std::vector<std::uint64_t> offsets;  // of each fragment's item, from the first fragment's
  std::uint64_t at = 0;
  for (unsigned long i = 1; i < items; ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (seq.getItem(item, i).bad() || item == nullptr) return "a fragment cannot be read";
    const Uint32 length = item->getLength();
    if (length > 0 && (item->getUint8Array(data).bad() || data == nullptr))
      return "a fragment cannot be read";
    fragments.push_back({data, length});
    offsets.push_back(at);
    at += 8u + length;
  }
  out.clear();
  if (frames == 1) {
    out.push_back(fragments);
    return std::nullopt;
  }
  if (fragments.size() == static_cast<std::size_t>(frames)) {
    for (const Bytes& f : fragments) out.push_back({f});
    return std::nullopt;
  }
  DcmPixelItem* table = nullptr;
  Uint8* bot = nullptr;
  if (seq.getItem(table, 0).good() && table != nullptr && table->getLength() >= 4 &&
      table->getLength() / 4 == static_cast<Uint32>(frames) && table->getUint8Array(bot).good() &&
      bot != nullptr) {
    // The table's entries, little endian, from the first fragment's item.
    auto offset_of = [bot](Sint32 f) {
      const Uint8* p = bot + 4 * f;
      return std::uint64_t{p[0]} | (std::uint64_t{p[1]} << 8) | (std::uint64_t{p[2]} << 16) |
             (std::uint64_t{p[3]} << 24);
    };
    for (Sint32 f = 0; f < frames; ++f) {
      const std::uint64_t start = offset_of(f);
      const std::uint64_t end = f + 1 < frames ? offset_of(f + 1) : at;
      std::vector<Bytes> frame;
      for (std::size_t i = 0; i < fragments.size(); ++i)
        if (offsets[i] >= start && offsets[i] < end) frame.push_back(fragments[i]);
      if (frame.empty() || offsets.end() == std::find(offsets.begin(), offsets.end(), start))
        return "the Basic Offset Table does not match the fragments";
      out.push_back(std::move(frame));
    }
    return std::nullopt;
  }
  // No table: a frame starts at each fragment that starts a code stream (SOC, FF 4F).
  for (const Bytes& f : fragments) {
    const bool starts = f.size >= 2 && f.data[0] == 0xFF && f.data[1] == 0x4F;
    if (starts || out.empty()) out.emplace_back();
    out.back().push_back(f);
  }
  if (out.size() != static_cast<std::size_t>(frames))
    return "the fragments cannot be told apart into Number of Frames frames";
  return std::nullopt;
}

}  // namespace

bool is_jpeg2000_syntax(std::string_view ts) { return ts == kLossless || ts == kLossy; }

std::optional<std::string> decode_jpeg2000(DcmDataset& ds) {
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  const std::string syntax = DcmXfer(xfer).getXferID();
  if (!is_jpeg2000_syntax(syntax)) return "not a JPEG 2000 transfer syntax";
  Module m;
  ds.findAndGetUint16(DCM_Rows, m.rows);
  ds.findAndGetUint16(DCM_Columns, m.columns);
  ds.findAndGetUint16(DCM_SamplesPerPixel, m.samples);
  ds.findAndGetUint16(DCM_BitsAllocated, m.bits_allocated);
  ds.findAndGetUint16(DCM_BitsStored, m.bits_stored);
  ds.findAndGetUint16(DCM_PixelRepresentation, m.representation);
  ds.findAndGetOFString(DCM_PhotometricInterpretation, m.photometric);
  if (ds.findAndGetSint32(DCM_NumberOfFrames, m.frames).bad() || m.frames < 1) m.frames = 1;
  if (m.rows == 0 || m.columns == 0 || (m.samples != 1 && m.samples != 3))
    return "its Image Pixel module is incomplete or not 1 or 3 samples per pixel";
  if (m.bits_allocated != 8 && m.bits_allocated != 16)
    return "Bits Allocated " + std::to_string(m.bits_allocated) + " is not 8 or 16";

  DcmElement* element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr)
    return "no Pixel Data";
  auto* pixel = OFstatic_cast(DcmPixelData*, element);
  DcmPixelSequence* seq = nullptr;
  if (dcmtk_guard([&] { return pixel->getEncapsulatedRepresentation(xfer, nullptr, seq); }).bad() ||
      seq == nullptr)
    return "its encapsulated pixel data cannot be read";
  std::vector<std::vector<Bytes>> frames;
  if (auto why = frames_of(*seq, m.frames, frames)) return why;

  const std::size_t frame_bytes =
      std::size_t{m.rows} * m.columns * m.samples * (m.bits_allocated / 8u);
  const std::size_t total = frame_bytes * static_cast<std::size_t>(m.frames);
  std::vector<std::uint8_t> native(total + (total % 2));  // Pixel Data has an even length
  std::vector<std::uint8_t> joined;
  for (std::size_t f = 0; f < frames.size(); ++f) {
    Bytes stream = frames[f].front();
    if (frames[f].size() > 1) {  // a frame in several fragments: one code stream
      joined.clear();
      for (const Bytes& b : frames[f]) joined.insert(joined.end(), b.data, b.data + b.size);
      stream = {joined.data(), joined.size()};
    }
    if (auto why = decode_frame(stream, m, native.data() + f * frame_bytes))
      return "frame " + std::to_string(f + 1) + ": " + *why;
  }

  // All frames decoded: the data set changes only now.
  auto* fresh = new DcmPixelData(DCM_PixelData);
  const OFCondition put =
      m.bits_allocated == 8
          ? fresh->putUint8Array(native.data(), static_cast<unsigned long>(native.size()))
          : fresh->putUint16Array(reinterpret_cast<const Uint16*>(native.data()),
                                  static_cast<unsigned long>(native.size() / 2));
  if (put.bad()) {
    delete fresh;
    return std::string("DCMTK could not take the decoded pixels: ") + put.text();
  }
  if (ds.insert(fresh, /*replaceOld=*/OFTrue).bad()) {
    delete fresh;
    return "DCMTK could not take the decoded pixels";
  }
  if (m.photometric == "YBR_RCT" || m.photometric == "YBR_ICT")
    ds.putAndInsertString(DCM_PhotometricInterpretation, "RGB");
  if (m.samples > 1) ds.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  if (syntax == kLossy) {
    ds.putAndInsertString(DCM_LossyImageCompression, "01");
    OFString method;
    if (ds.findAndGetOFString(DCM_LossyImageCompressionMethod, method).bad() || method.empty())
      ds.putAndInsertString(DCM_LossyImageCompressionMethod, "ISO_15444_1");
  }
  return std::nullopt;
}

}  // namespace dirgw::senders::transcode
