#include "writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dicom.h"
#include "identity.h"
#include "phantoms.h"
#include "rng.h"

namespace dirgw::synth {
namespace {

namespace fs = std::filesystem;

std::string hhmmss(int seconds) {
  seconds %= 86400;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d%02d%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
  return buf;
}

std::string file_name(const Profile& profile, int instance_number) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "_%05d.dcm", instance_number);
  return std::string(profile.cli_name) + buf;
}

E_TransferSyntax dcmtk_syntax(TransferSyntax ts) {
  switch (ts) {
    case TransferSyntax::kImplicit:
      return EXS_LittleEndianImplicit;
    case TransferSyntax::kDeflated:
      return EXS_DeflatedLittleEndianExplicit;
    case TransferSyntax::kExplicit:
      break;
  }
  return EXS_LittleEndianExplicit;
}

const char* syntax_name(TransferSyntax ts) {
  switch (ts) {
    case TransferSyntax::kImplicit:
      return "implicit";
    case TransferSyntax::kDeflated:
      return "deflated";
    case TransferSyntax::kExplicit:
      break;
  }
  return "explicit";
}

// Slice geometry for the cross-sectional modalities: thinner slices for longer series, while the
// phantom always spans the same anatomy (chest to upper abdomen, skull base to vertex).
double ct_slice_thickness(int n) {
  return n <= 60 ? 5.0 : n <= 120 ? 2.5 : n <= 240 ? 1.25 : 0.625;
}
double mr_slice_thickness(int n) { return n <= 30 ? 5.0 : n <= 60 ? 2.5 : 1.0; }

class SeriesWriter {
 public:
  SeriesWriter(const Options& options, const Patient& patient, const Study& study)
      : o_(options),
        p_(patient),
        s_(study),
        uids_(options.seed, options.patient_index, options.profile.uid_code, study.uid),
        series_key_(combine(combine(options.seed, options.patient_index),
                            combine(static_cast<std::uint64_t>(options.profile.uid_code),
                                    hash_string(study.uid)))) {
    if (o_.profile.modality == Modality::kUS) {
      cine_ = std::make_unique<UltrasoundCine>(o_.rows, o_.cols, combine(series_key_, 0xC1E));
    }
  }

  const SeriesUids& uids() const { return uids_; }

  // Builds instance `number` and writes it to `path` via a hidden temporary file and a rename, so
  // a folder watcher never picks up a half-written file. No fsync: this is test data, and syncing
  // 5000 files would dominate the run time.
  void write(int number, const fs::path& path) {
    DcmFileFormat file;
    DcmDataset& ds = *file.getDataset();
    add_common(ds, number);
    switch (o_.profile.modality) {
      case Modality::kCT:
        add_ct(ds, number);
        break;
      case Modality::kMR:
        add_mr(ds, number);
        break;
      case Modality::kCR:
        add_cr(ds);
        break;
      case Modality::kDX:
        add_dx(ds);
        break;
      case Modality::kUS:
        add_us(ds);
        break;
      case Modality::kSC:
        add_sc(ds);
        break;
    }
    add_pixels(ds, number);

    // The pid keeps two runs writing into the same directory off each other's temporary files.
    const fs::path tmp = path.parent_path() / ("." + path.filename().string() + "." +
                                               std::to_string(::getpid()) + ".tmp");
    const OFCondition cond =
        file.saveFile(OFFilename(tmp.c_str()), dcmtk_syntax(o_.transfer_syntax), EET_ExplicitLength,
                      EGL_withoutGL, EPD_withoutPadding, 0, 0, EWM_updateMeta);
    if (cond.bad()) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      throw DicomError("cannot write " + path.string() + ": " + cond.text());
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
      throw DicomError("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                       ec.message());
    }
  }

 private:
  int content_time(int number) const { return s_.time_of_day_s + 120 + (number - 1) % 3600; }

  double z_param(int number) const {
    return o_.instances == 1 ? 0.5 : static_cast<double>(number - 1) / (o_.instances - 1);
  }

  void add_common(DcmDataset& ds, int number) {
    const Profile& pr = o_.profile;
    put(ds, DCM_SpecificCharacterSet, "ISO_IR 100");
    put(ds, DCM_SOPClassUID, pr.sop_class_uid);
    put(ds, DCM_SOPInstanceUID, uids_.instance(number));
    put(ds, DCM_InstanceCreationDate, s_.date);
    put(ds, DCM_InstanceCreationTime, hhmmss(content_time(number) + 30));

    // Patient
    put(ds, DCM_PatientName, p_.name_latin1);
    put(ds, DCM_PatientID, p_.patient_id);
    put(ds, DCM_IssuerOfPatientID, kPatientIdIssuer);
    put(ds, DCM_PatientBirthDate, p_.birth_date);
    put(ds, DCM_PatientSex, p_.sex);
    put(ds, DCM_PatientAge, s_.patient_age);
    if (p_.health_number) {
      DcmItem& other = append_item(ds, DCM_OtherPatientIDsSequence);
      put(other, DCM_PatientID, *p_.health_number);
      put(other, DCM_IssuerOfPatientID, kHealthNumberIssuer);
      put(other, DCM_TypeOfPatientID, "TEXT");
    }

    // Study
    put(ds, DCM_StudyInstanceUID, s_.uid);
    put(ds, DCM_StudyDate, s_.date);
    put(ds, DCM_StudyTime, hhmmss(s_.time_of_day_s));
    put(ds, DCM_AccessionNumber, s_.accession);
    put(ds, DCM_StudyID, s_.study_id);
    put(ds, DCM_StudyDescription, s_.description);
    put(ds, DCM_ReferringPhysicianName, s_.referring_physician);

    // Series and equipment
    put(ds, DCM_Modality, pr.dicom_modality);
    put(ds, DCM_SeriesInstanceUID, uids_.series());
    put(ds, DCM_SeriesNumber, std::to_string(pr.uid_code));
    put(ds, DCM_SeriesDate, s_.date);
    put(ds, DCM_SeriesTime, hhmmss(s_.time_of_day_s + 60));
    put(ds, DCM_OperatorsName, s_.operator_name);
    put(ds, DCM_Manufacturer, "dirgw-synth");
    put(ds, DCM_ManufacturerModelName, "synth-" + std::string(pr.cli_name));
    put(ds, DCM_InstitutionName, kInstitutionName);
    put(ds, DCM_StationName, "SYNTH-" + std::string(pr.cli_name) + "01");
    put(ds, DCM_DeviceSerialNumber, "SN-0000" + std::to_string(pr.uid_code));
    put(ds, DCM_SoftwareVersions, "dirgw-synth 1");

    // Image
    put(ds, DCM_InstanceNumber, std::to_string(number));
    put(ds, DCM_ContentDate, s_.date);
    put(ds, DCM_ContentTime, hhmmss(content_time(number)));
    if (pr.modality != Modality::kSC) {
      put(ds, DCM_AcquisitionNumber, "1");
      put(ds, DCM_AcquisitionDate, s_.date);
      put(ds, DCM_AcquisitionTime, hhmmss(content_time(number)));
    }
    put(ds, DCM_LossyImageCompression, "00");
    put(ds, DCM_BurnedInAnnotation, "NO");

    // Image Pixel (Pixel Data itself comes last, in add_pixels)
    put_u16(ds, DCM_SamplesPerPixel, static_cast<std::uint16_t>(pr.samples_per_pixel));
    put(ds, DCM_PhotometricInterpretation, pr.photometric);
    if (pr.samples_per_pixel > 1) put_u16(ds, DCM_PlanarConfiguration, 0);
    put_u16(ds, DCM_Rows, static_cast<std::uint16_t>(o_.rows));
    put_u16(ds, DCM_Columns, static_cast<std::uint16_t>(o_.cols));
    put_u16(ds, DCM_BitsAllocated, static_cast<std::uint16_t>(pr.bits_allocated));
    put_u16(ds, DCM_BitsStored, static_cast<std::uint16_t>(pr.bits_stored));
    put_u16(ds, DCM_HighBit, static_cast<std::uint16_t>(pr.bits_stored - 1));
    put_u16(ds, DCM_PixelRepresentation, pr.is_signed ? 1 : 0);
  }

  void add_plane(DcmDataset& ds, double spacing, double thickness, double z) {
    put(ds, DCM_FrameOfReferenceUID, uids_.frame_of_reference());
    put(ds, DCM_PositionReferenceIndicator, "");
    put(ds, DCM_PatientPosition, "HFS");
    put(ds, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    put(ds, DCM_ImagePositionPatient,
        decimal_string({-o_.cols * spacing / 2.0 + spacing / 2.0,
                        -o_.rows * spacing / 2.0 + spacing / 2.0, z}));
    put(ds, DCM_PixelSpacing, decimal_string({spacing, spacing}));
    put(ds, DCM_SliceThickness, decimal_string(thickness));
    put(ds, DCM_SliceLocation, decimal_string(z));
  }

  void add_ct(DcmDataset& ds, int number) {
    const double thickness = ct_slice_thickness(o_.instances);
    add_plane(ds, kCtFieldOfViewMm / o_.cols, thickness, -40.0 - (number - 1) * thickness);
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
    put(ds, DCM_SeriesDescription, "CT CHEST W CONTRAST " + decimal_string(thickness) + "mm");
    put(ds, DCM_BodyPartExamined, "CHEST");
    put(ds, DCM_ScanOptions, "HELICAL MODE");
    put(ds, DCM_KVP, "120");
    put(ds, DCM_DataCollectionDiameter, "500");
    put(ds, DCM_ReconstructionDiameter, decimal_string(kCtFieldOfViewMm));
    put(ds, DCM_GantryDetectorTilt, "0");
    put(ds, DCM_TableHeight, "160");
    put(ds, DCM_RotationDirection, "CW");
    put(ds, DCM_ExposureTime, "750");
    put(ds, DCM_XRayTubeCurrent, "250");
    put(ds, DCM_Exposure, "188");
    put(ds, DCM_ConvolutionKernel, "STANDARD");
    put(ds, DCM_ContrastBolusAgent, "Iohexol 350 mg/mL");
    put(ds, DCM_ContrastBolusRoute, "IV");
    put(ds, DCM_RescaleIntercept, "-1024");
    put(ds, DCM_RescaleSlope, "1");
    put(ds, DCM_RescaleType, "HU");
    put(ds, DCM_WindowCenter, "40\\-600");
    put(ds, DCM_WindowWidth, "400\\1500");
    put(ds, DCM_WindowCenterWidthExplanation, "SOFT TISSUE\\LUNG");
    put_ss_explicit(ds, DCM_PixelPaddingValue, kCtPaddingValue);
  }

  void add_mr(DcmDataset& ds, int number) {
    const double thickness = mr_slice_thickness(o_.instances);
    const double between = thickness * 1.2;
    add_plane(ds, kMrFieldOfViewMm / o_.cols, thickness, -30.0 + (number - 1) * between);
    put(ds, DCM_SpacingBetweenSlices, decimal_string(between));
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\OTHER");
    put(ds, DCM_SeriesDescription, "MR BRAIN AX T1 SE");
    put(ds, DCM_BodyPartExamined, "HEAD");
    put(ds, DCM_ScanningSequence, "SE");
    put(ds, DCM_SequenceVariant, "SK");
    put(ds, DCM_ScanOptions, "");
    put(ds, DCM_MRAcquisitionType, "2D");
    put(ds, DCM_SequenceName, "se2d1");
    put(ds, DCM_RepetitionTime, "500");
    put(ds, DCM_EchoTime, "15");
    put(ds, DCM_EchoTrainLength, "1");
    put(ds, DCM_NumberOfAverages, "2");
    put(ds, DCM_ImagingFrequency, "63.87");
    put(ds, DCM_ImagedNucleus, "1H");
    put(ds, DCM_MagneticFieldStrength, "1.5");
    put(ds, DCM_FlipAngle, "90");
    put(ds, DCM_PixelBandwidth, "130");
    put(ds, DCM_ReceiveCoilName, "HEAD");
    put(ds, DCM_InPlanePhaseEncodingDirection, "ROW");
    put(ds, DCM_WindowCenter, "700");
    put(ds, DCM_WindowWidth, "1400");
  }

  void add_projection(DcmDataset& ds, std::string_view kvp) {
    const double spacing = kRadiographHeightMm / o_.rows;
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY");
    put(ds, DCM_BodyPartExamined, "CHEST");
    put(ds, DCM_ViewPosition, "PA");
    put(ds, DCM_PatientOrientation, "L\\F");
    put(ds, DCM_KVP, kvp);
    put(ds, DCM_ExposureTime, "10");
    put(ds, DCM_XRayTubeCurrent, "320");
    put(ds, DCM_Exposure, "3");
    put(ds, DCM_DistanceSourceToDetector, "1800");
    put(ds, DCM_ImagerPixelSpacing, decimal_string({spacing, spacing}));
    put(ds, DCM_RescaleIntercept, "0");
    put(ds, DCM_RescaleSlope, "1");
    put(ds, DCM_RescaleType, "US");
    put(ds, DCM_WindowCenter, "2200");
    put(ds, DCM_WindowWidth, "3600");
  }

  void add_cr(DcmDataset& ds) {
    add_projection(ds, "110");
    put(ds, DCM_SeriesDescription, "CR CHEST PA");
    put(ds, DCM_PlateType, "SYNTH-IP");
  }

  void add_dx(DcmDataset& ds) {
    add_projection(ds, "120");
    put(ds, DCM_SeriesDescription, "DX CHEST PA");
    put(ds, DCM_PresentationIntentType, "FOR PRESENTATION");
    put(ds, DCM_PixelIntensityRelationship, "LOG");
    put_s16(ds, DCM_PixelIntensityRelationshipSign, 1);
    put(ds, DCM_PresentationLUTShape, "IDENTITY");
    put(ds, DCM_ImageLaterality, "U");
    put(ds, DCM_DetectorType, "SCINTILLATOR");
    put(ds, DCM_PositionerType, "COLUMN");
    DcmItem& view = append_item(ds, DCM_ViewCodeSequence);
    put(view, DCM_CodeValue, "272479007");
    put(view, DCM_CodingSchemeDesignator, "SCT");
    put(view, DCM_CodeMeaning, "postero-anterior");
    put_empty_sequence(view, DCM_ViewModifierCodeSequence);
    put(ds, DCM_DistanceSourceToPatient, "1650");
    put_empty_sequence(ds, DCM_AcquisitionContextSequence);
    DcmItem& region = append_item(ds, DCM_AnatomicRegionSequence);
    put(region, DCM_CodeValue, "43799004");
    put(region, DCM_CodingSchemeDesignator, "SCT");
    put(region, DCM_CodeMeaning, "Chest");
  }

  void add_us(DcmDataset& ds) {
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\TTE\\0001");
    put(ds, DCM_SeriesDescription, "US ECHO 2D CINE");
    put(ds, DCM_BodyPartExamined, "HEART");
    put(ds, DCM_PatientOrientation, "");
    put(ds, DCM_NumberOfFrames, std::to_string(o_.frames));
    put_tag(ds, DCM_FrameIncrementPointer, DCM_FrameTime);
    put(ds, DCM_FrameTime, "40");
    put(ds, DCM_CineRate, "25");
    put(ds, DCM_RecommendedDisplayFrameRate, "25");
    DcmItem& region = append_item(ds, DCM_SequenceOfUltrasoundRegions);
    put_u16(region, DCM_RegionSpatialFormat, 1);  // 2D
    put_u16(region, DCM_RegionDataType, 1);       // tissue
    put_u32(region, DCM_RegionFlags, 0);
    put_u32(region, DCM_RegionLocationMinX0, static_cast<std::uint32_t>(cine_->region_min_x()));
    put_u32(region, DCM_RegionLocationMinY0, static_cast<std::uint32_t>(cine_->region_min_y()));
    put_u32(region, DCM_RegionLocationMaxX1, static_cast<std::uint32_t>(cine_->region_max_x()));
    put_u32(region, DCM_RegionLocationMaxY1, static_cast<std::uint32_t>(cine_->region_max_y()));
    put_u16(region, DCM_PhysicalUnitsXDirection, 3);  // cm
    put_u16(region, DCM_PhysicalUnitsYDirection, 3);
    put_f64(region, DCM_PhysicalDeltaX, cine_->cm_per_pixel());
    put_f64(region, DCM_PhysicalDeltaY, cine_->cm_per_pixel());
  }

  void add_sc(DcmDataset& ds) {
    put(ds, DCM_ImageType, "DERIVED\\SECONDARY");
    put(ds, DCM_SeriesDescription, "SC SUMMARY CHART");
    put(ds, DCM_ConversionType, "WSD");
    // A body part keeps Laterality (2C) out: the chart summarises a chest exam.
    put(ds, DCM_BodyPartExamined, "CHEST");
    put(ds, DCM_PatientOrientation, "");
    put(ds, DCM_DateOfSecondaryCapture, s_.date);
    put(ds, DCM_TimeOfSecondaryCapture, hhmmss(s_.time_of_day_s + 900));
  }

  // Renders straight into the element's own buffer: a 200 MB cine loop is held exactly once.
  void add_pixels(DcmDataset& ds, int number) {
    const Profile& pr = o_.profile;
    const std::size_t frame_samples = static_cast<std::size_t>(o_.rows) *
                                      static_cast<std::size_t>(o_.cols) *
                                      static_cast<std::size_t>(pr.samples_per_pixel);
    const std::size_t samples = frame_samples * static_cast<std::size_t>(o_.frames);
    const std::uint64_t noise_seed = combine(series_key_, static_cast<std::uint64_t>(number));

    auto pixel = std::make_unique<DcmPixelData>(DCM_PixelData);
    if (pr.bits_allocated == 8) {
      if (pixel->setVR(EVR_OB).bad()) throw DicomError("cannot set Pixel Data VR to OB");
      Uint8* bytes = nullptr;
      const auto length = static_cast<Uint32>(samples + (samples & 1));  // even, zero pad byte
      if (pixel->createUint8Array(length, bytes).bad() || bytes == nullptr) {
        throw DicomError("cannot allocate " + std::to_string(length) + " bytes of Pixel Data");
      }
      const std::span<std::uint8_t> all(bytes, samples);
      for (int f = 0; f < o_.frames; ++f) {
        const auto frame = all.subspan(static_cast<std::size_t>(f) * frame_samples, frame_samples);
        if (pr.modality == Modality::kUS) {
          cine_->render_frame(frame, f + 7 * (number - 1));
        } else {
          render_chart_rgb(frame, o_.rows, o_.cols, noise_seed);
        }
      }
    } else {
      Uint16* words = nullptr;
      if (pixel->createUint16Array(static_cast<Uint32>(samples), words).bad() || words == nullptr) {
        throw DicomError("cannot allocate " + std::to_string(samples * 2) + " bytes of Pixel Data");
      }
      const std::span<std::uint16_t> all(words, samples);
      switch (pr.modality) {
        case Modality::kCT:
          // int16_t and uint16_t may alias each other.
          render_ct_slice(std::span<std::int16_t>(reinterpret_cast<std::int16_t*>(words), samples),
                          o_.rows, o_.cols, z_param(number), noise_seed);
          break;
        case Modality::kMR:
          render_mr_slice(all, o_.rows, o_.cols, 0.03 + 0.94 * z_param(number), noise_seed);
          break;
        default:
          render_chest_radiograph(all, o_.rows, o_.cols, ((number - 1) % 7 - 3) * 4.0, noise_seed);
          break;
      }
    }
    if (ds.insert(pixel.get(), /*replaceOld=*/true).bad())
      throw DicomError("cannot insert Pixel Data");
    pixel.release();  // owned by the dataset now
  }

  const Options& o_;
  const Patient& p_;
  const Study& s_;
  SeriesUids uids_;
  std::uint64_t series_key_;
  std::unique_ptr<UltrasoundCine> cine_;
};

// The manifest is opened before any DICOM file is written, so a bad path fails the run early.
// Each line goes out in one write(2) with O_APPEND, so concurrent runs sharing a manifest never
// interleave their lines.
class ManifestFile {
 public:
  ManifestFile() = default;
  ManifestFile(const ManifestFile&) = delete;
  ManifestFile& operator=(const ManifestFile&) = delete;
  ~ManifestFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string open(const fs::path& path) {
    path_ = path;
    std::error_code ignored;  // a failure shows up in open(2) below
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ignored);
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return "cannot open manifest " + path.string() + ": " + std::strerror(errno);
    return {};
  }

  std::string append(const std::string& line) {
    const ssize_t written = ::write(fd_, line.data(), line.size());
    if (written != static_cast<ssize_t>(line.size())) {
      return "cannot append to manifest " + path_.string() + ": " +
             (written < 0 ? std::strerror(errno) : "short write");
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      return "cannot close manifest " + path_.string() + ": " + std::strerror(errno);
    }
    return {};
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

nlohmann::ordered_json manifest_entry(const Options& o, const Patient& p, const Study& s,
                                      const SeriesUids& uids,
                                      const std::vector<std::string>& files) {
  nlohmann::ordered_json j;
  j["study_uid"] = s.uid;
  j["patient_name"] = p.name_utf8;
  j["patient_id"] = p.patient_id;
  j["issuer"] = kPatientIdIssuer;
  j["health_number"] = p.health_number ? nlohmann::ordered_json(*p.health_number) : nullptr;
  j["birth_date"] = p.birth_date;
  j["accession"] = s.accession;
  j["modality"] = o.profile.cli_name;
  j["instances"] = o.instances;
  j["files"] = files;
  // Extra values a log scanner may want to look for.
  j["family_name"] = p.family_name;
  j["given_name"] = p.given_name;
  j["sex"] = p.sex;
  j["health_number_issuer"] = kHealthNumberIssuer;
  j["referring_physician"] = s.referring_physician;
  j["operator"] = s.operator_name;
  j["study_date"] = s.date;
  j["study_id"] = s.study_id;
  j["series_uid"] = uids.series();
  j["sop_class_uid"] = o.profile.sop_class_uid;
  j["dicom_modality"] = o.profile.dicom_modality;
  j["transfer_syntax"] = syntax_name(o.transfer_syntax);
  j["seed"] = o.seed;
  j["patient_index"] = o.patient_index;
  return j;
}

}  // namespace

GenerateOutcome generate(const Options& options) {
  GenerateOutcome outcome;
  if (!dcmDataDict.isDictionaryLoaded()) {
    outcome.error = "DCMTK data dictionary not loaded (check DCMDICTPATH)";
    return outcome;
  }
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec || !fs::is_directory(options.out)) {
    outcome.error = "cannot create output directory " + options.out.string() + ": " +
                    (ec ? ec.message() : "not a directory");
    return outcome;
  }

  ManifestFile manifest;
  if (options.manifest) {
    if (std::string err = manifest.open(*options.manifest); !err.empty()) {
      outcome.error = std::move(err);
      return outcome;
    }
  }

  const Patient patient = make_patient(options.seed, options.patient_index, options.health_number);
  const Study study = make_study(options, patient);
  std::vector<std::string> files;
  files.reserve(static_cast<std::size_t>(options.instances));
  try {
    SeriesWriter writer(options, patient, study);
    for (int n = 1; n <= options.instances; ++n) {
      const fs::path path = options.out / file_name(options.profile, n);
      writer.write(n, path);
      files.push_back(fs::absolute(path).lexically_normal().string());
    }
    if (options.manifest) {
      const std::string line =
          manifest_entry(options, patient, study, writer.uids(), files)
              .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
          "\n";
      if (std::string err = manifest.append(line); !err.empty()) {
        outcome.error = std::move(err);
        return outcome;
      }
    }
  } catch (const DicomError& e) {
    outcome.error = e.what();
    return outcome;
  } catch (const fs::filesystem_error& e) {
    outcome.error = e.what();
    return outcome;
  } catch (const std::bad_alloc&) {
    outcome.error = "out of memory";
    return outcome;
  }
  outcome.ok = true;
  outcome.study_uid = study.uid;
  return outcome;
}

}  // namespace dirgw::synth
