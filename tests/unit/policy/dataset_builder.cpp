#include "dataset_builder.h"

#include <stdlib.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcuid.h"

namespace dirgw::policy::test {

namespace {
void check(OFCondition c, const char* what) {
  if (c.bad()) throw std::runtime_error(std::string(what) + ": " + c.text());
}
}  // namespace

std::unique_ptr<DcmDataset> valid_ct(const ImageShape& shape) {
  auto ds = std::make_unique<DcmDataset>();
  check(ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100"), "charset");
  check(ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage), "sop class");
  check(ds->putAndInsertString(DCM_SOPInstanceUID, kSopUid), "sop");
  check(ds->putAndInsertString(DCM_StudyInstanceUID, kStudyUid), "study");
  check(ds->putAndInsertString(DCM_SeriesInstanceUID, kSeriesUid), "series");
  check(ds->putAndInsertString(DCM_FrameOfReferenceUID, "1.2.826.0.1.3680043.10.543.7.9"), "for");
  check(ds->putAndInsertString(DCM_StudyDate, "20240105"), "date");
  check(ds->putAndInsertString(DCM_Modality, "CT"), "modality");
  check(ds->putAndInsertString(DCM_AccessionNumber, kAccession), "accession");
  check(ds->putAndInsertString(DCM_StudyID, "S1"), "study id");
  check(ds->putAndInsertString(DCM_InstitutionName, "Old Name Hospital"), "institution");
  check(ds->putAndInsertString(DCM_PatientName, kPatientName), "name");
  check(ds->putAndInsertString(DCM_PatientID, kPatientId), "pid");
  check(ds->putAndInsertString(DCM_IssuerOfPatientID, kMrnIssuer), "issuer");
  set_health_number(*ds, kHealthNumber);
  check(ds->putAndInsertUint16(DCM_SamplesPerPixel, shape.samples_per_pixel), "spp");
  check(ds->putAndInsertString(DCM_PhotometricInterpretation,
                               shape.samples_per_pixel == 3 ? "RGB" : "MONOCHROME2"),
        "photometric");
  check(ds->putAndInsertUint16(DCM_Rows, shape.rows), "rows");
  check(ds->putAndInsertUint16(DCM_Columns, shape.columns), "columns");
  check(ds->putAndInsertUint16(DCM_BitsAllocated, shape.bits_allocated), "bits");
  check(ds->putAndInsertUint16(DCM_BitsStored, shape.bits_allocated), "stored");
  check(ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(shape.bits_allocated - 1)), "high");
  check(ds->putAndInsertUint16(DCM_PixelRepresentation, 0), "pixrep");
  if (shape.frames > 0) {
    check(ds->putAndInsertString(DCM_NumberOfFrames, std::to_string(shape.frames).c_str()),
          "frames");
  }
  const std::size_t frames = shape.frames > 0 ? static_cast<std::size_t>(shape.frames) : 1;
  std::size_t values = std::size_t{shape.rows} * shape.columns * shape.samples_per_pixel * frames;
  std::size_t bytes =
      shape.bits_allocated == 1 ? (values + 7) / 8 : values * (shape.bits_allocated / 8);
  put_native_pixels(*ds, bytes + (bytes & 1));
  return ds;
}

void put_native_pixels(DcmItem& ds, std::size_t bytes) {
  std::vector<Uint8> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<Uint8>((i * 131 + 7) & 0xFF);
  ds.findAndDeleteElement(DCM_PixelData);
  auto* pixel = new DcmPixelData(DCM_PixelData);
  pixel->setVR(EVR_OW);
  check(pixel->putUint8Array(data.data(), static_cast<unsigned long>(bytes)), "pixels");
  check(ds.insert(pixel, OFTrue), "insert pixels");
}

void put_encapsulated_pixels(DcmDataset& ds, E_TransferSyntax xfer, std::size_t fragments,
                             std::size_t fragment_bytes, std::size_t bot_entries) {
  ds.findAndDeleteElement(DCM_PixelData);
  auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelData, EVR_OB));
  auto* bot = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
  std::vector<Uint8> offsets(bot_entries * 4, 0);
  for (std::size_t i = 0; i < bot_entries; ++i) {
    Uint32 off = static_cast<Uint32>(i * (fragment_bytes + 8));
    for (int b = 0; b < 4; ++b)
      offsets[i * 4 + static_cast<std::size_t>(b)] = static_cast<Uint8>((off >> (8 * b)) & 0xFF);
  }
  if (!offsets.empty()) {
    check(bot->putUint8Array(offsets.data(), static_cast<unsigned long>(offsets.size())), "bot");
  }
  check(seq->insert(bot), "insert bot");
  for (std::size_t f = 0; f < fragments; ++f) {
    std::vector<Uint8> frag(fragment_bytes);
    for (std::size_t i = 0; i < fragment_bytes; ++i) {
      frag[i] = static_cast<Uint8>((i * 7 + f * 13 + 1) & 0xFF);
    }
    auto* item = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
    check(item->putUint8Array(frag.data(), static_cast<unsigned long>(frag.size())), "fragment");
    check(seq->insert(item), "insert fragment");
  }
  auto* pixel = new DcmPixelData(DCM_PixelData);
  pixel->setVR(EVR_OB);
  pixel->putOriginalRepresentation(xfer, nullptr, seq);
  check(ds.insert(pixel, OFTrue), "insert pixel data");
}

void set_health_number(DcmItem& ds, std::string_view value, std::string_view issuer) {
  ds.findAndDeleteElement(DCM_OtherPatientIDsSequence);
  DcmItem* item = nullptr;
  check(ds.findOrCreateSequenceItem(DCM_OtherPatientIDsSequence, item, -2), "seq");
  check(item->putAndInsertString(DCM_PatientID, std::string(value).c_str()), "hn");
  check(item->putAndInsertString(DCM_IssuerOfPatientID, std::string(issuer).c_str()), "hn issuer");
  check(item->putAndInsertString(DCM_TypeOfPatientID, "TEXT"), "hn type");
}

void save(DcmDataset& ds, const std::filesystem::path& path, E_TransferSyntax xfer,
          E_EncodingType encoding) {
  DcmFileFormat file(&ds);  // copies the dataset
  check(file.saveFile(OFFilename(path.c_str()), xfer, encoding, EGL_recalcGL, EPD_noChange, 0, 0,
                      EWM_fileformat),
        "save");
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "dirgw-policy-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace dirgw::policy::test
