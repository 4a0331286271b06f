// JPEG 2000 (PS3.5 A.4.4: 1.2.840.10008.1.2.4.90 lossless, .91 lossy) decoded with OpenJPEG into
// native pixel data, for a C-STORE destination that refuses the object's JPEG 2000 syntax.
// Debian's DCMTK has no JPEG 2000 codec; DCMTK's own decoders (dcmjpeg, dcmjpls, RLE) cover the
// other syntaxes (senders/dimse/association.cpp).
//
// Each frame's code stream (its fragments: all of them for one frame, one each when there are as
// many as frames, else by the Basic Offset Table, else by the code streams' start markers) is
// decoded and checked against the Image Pixel module: as many components as Samples per Pixel,
// Rows x Columns each, no subsampling, a precision within Bits Allocated. Samples are written
// interleaved (Planar Configuration 0), little endian, as Bits Allocated and Pixel Representation
// say. OpenJPEG applies the inverse component transform a code stream signals, so YBR_RCT and
// YBR_ICT become RGB. A lossy (.91) object keeps Lossy Image Compression "01" and gains the method
// ISO_15444_1 if it names none. Nothing else in the data set changes; the SOP Instance UID stays.
#pragma once

#include <optional>
#include <string>
#include <string_view>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
// clang-format on

namespace dirgw::senders::transcode {

bool is_jpeg2000_syntax(std::string_view transfer_syntax);

// Replaces ds's encapsulated JPEG 2000 Pixel Data (ds read from a file in its JPEG 2000 syntax)
// with native pixel data. Why not, in our words, when it cannot; ds is then unchanged.
std::optional<std::string> decode_jpeg2000(DcmDataset& ds);

}  // namespace dirgw::senders::transcode
