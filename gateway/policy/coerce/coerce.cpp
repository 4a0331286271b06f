#include "policy/coerce/coerce.h"

#include "policy/dicom_encoding.h"

#include "policy/validate/rules.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <set>
#include <string_view>

#include "common/dcmtk_guard.h"
#include "common/files.h"
#include "common/text.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdicent.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcostrmf.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcstack.h"
#include "dcmtk/dcmdata/dcwcache.h"

namespace dirgw::policy {

namespace {

constexpr Uint32 kReadLimit = 4096;  // values larger than this stay on disk
constexpr const char* kModifyingSystem = "dirgw";
constexpr const char* kReason = "COERCE";

DcmTagKey key_of(Tag t) { return DcmTagKey(t.group, t.element); }
Tag tag_of(const DcmTagKey& k) { return Tag{k.getGroup(), k.getElement()}; }

// DICOM value padding (trailing spaces or NUL, leading spaces): one definition, in validate.

bool printable_ascii(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

Error config_error(const Tag& t, std::string_view why) {
  return make_error(ErrorCode::kConfig, "coercion of " + t.to_string() + ": " + std::string(why));
}

// A value for a single-valued LO the gateway writes itself (institution, issuers, health number).
bool usable_lo(std::string_view v) {
  return !v.empty() && v.size() <= 64 && printable_ascii(v) && v.find('\\') == v.npos;
}

std::optional<std::string> string_value(DcmItem& item, const DcmTagKey& key) {
  DcmElement* e = nullptr;
  if (item.findAndGetElement(key, e, OFFalse).bad() || e == nullptr) return std::nullopt;
  if (e->getLength() == 0) return std::string();
  OFString s;
  if (e->getOFStringArray(s, OFFalse).bad()) return std::string();
  return std::string(trim_dicom(std::string_view(s.c_str(), s.length())));
}

bool is_forbidden_target(const DcmTagKey& k) {
  static const DcmTagKey kForbidden[] = {DCM_SpecificCharacterSet,   DCM_SOPClassUID,
                                         DCM_SOPInstanceUID,         DCM_StudyInstanceUID,
                                         DCM_SeriesInstanceUID,      DCM_OriginalAttributesSequence,
                                         DCM_OtherPatientIDsSequence};
  return std::find(std::begin(kForbidden), std::end(kForbidden), k) != std::end(kForbidden);
}

Result<void> check_attribute_rule(const Tag& t, const std::string& value) {
  const DcmTagKey key = key_of(t);
  if (t.group == 0x0002) return config_error(t, "file meta information cannot be coerced");
  if (t.group % 2 == 1) return config_error(t, "private attributes cannot be coerced");
  if (t.element == 0x0000) return config_error(t, "group lengths cannot be coerced");
  if (t.group == 0x7FE0 || (t.group >= 0x6000 && t.group <= 0x60FF)) {
    return config_error(t, "pixel and overlay data cannot be coerced");
  }
  if (is_forbidden_target(key)) {
    return config_error(t, "this attribute identifies the object or is managed by dirgw");
  }
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* entry = dict.findEntry(key, nullptr);
  const bool known = entry != nullptr && !entry->isRepeating();
  const DcmEVR evr = known ? entry->getEVR() : EVR_UNKNOWN;
  const int vm_min = known ? entry->getVMMin() : 0;
  const int vm_max = known ? entry->getVMMax() : 0;
  dcmDataDict.rdunlock();
  if (!known) return config_error(t, "not an attribute of the DICOM dictionary");
  if (!DcmVR(evr).isaString() && evr != EVR_US && evr != EVR_SS && evr != EVR_UL && evr != EVR_SL &&
      evr != EVR_FL && evr != EVR_FD) {
    return config_error(t, "only text and numeric attributes can be coerced");
  }
  if (!printable_ascii(value)) {
    return config_error(t, "the value must be printable ASCII");
  }
  DcmElement* probe = DcmItem::newDicomElement(key);
  if (probe == nullptr) return config_error(t, "cannot create the attribute");
  std::unique_ptr<DcmElement> owned(probe);
  if (owned->putString(value.c_str()).bad()) {
    return config_error(t, "the value does not fit the attribute's value representation");
  }
  std::string vm = std::to_string(vm_min < 1 ? 1 : vm_min);
  if (vm_max == DcmVariableVM) {
    vm += "-n";
  } else if (vm_max > vm_min) {
    vm += "-" + std::to_string(vm_max);
  }
  if (!value.empty() && owned->checkValue(OFString(vm.c_str())).bad()) {
    return config_error(t, "the value does not conform to the attribute's VR and VM (" + vm + ")");
  }
  return {};
}

// Keeps the prior value of every attribute the first time it changes (PS3.3 C.12.1.1.9.2: an
// attribute that was absent or empty is recorded with zero length).
class Recorder {
 public:
  explicit Recorder(DcmItem& ds) : ds_(ds) {}

  void record(const DcmTagKey& key) {
    const Tag t = tag_of(key);
    if (!recorded_.insert(t).second) return;
    DcmElement* old = nullptr;
    DcmElement* copy = nullptr;
    if (ds_.findAndGetElement(key, old, OFFalse).good() && old != nullptr) {
      copy = static_cast<DcmElement*>(old->clone());
    } else {
      copy = DcmItem::newDicomElement(key);
    }
    if (copy != nullptr && previous_.insert(copy, OFTrue).bad()) delete copy;
  }
  void mark_changed(const DcmTagKey& key) { changed_.insert(tag_of(key)); }
  bool was_recorded(const DcmTagKey& key) const { return recorded_.count(tag_of(key)) != 0; }
  const std::set<Tag>& changed() const { return changed_; }
  DcmItem& previous() { return previous_; }

 private:
  DcmItem& ds_;
  DcmItem previous_;
  std::set<Tag> recorded_;
  std::set<Tag> changed_;
};

Result<void> set_value(DcmItem& ds, const DcmTagKey& key, const std::string& value, Recorder& rec) {
  std::optional<std::string> current = string_value(ds, key);
  if (current && *current == trim_dicom(value)) return {};
  rec.record(key);
  OFCondition cond = ds.putAndInsertString(key, value.c_str(), OFTrue);
  if (cond.bad()) {
    return make_error(ErrorCode::kInternal,
                      "cannot set " + tag_of(key).to_string() + ": " + cond.text());
  }
  rec.mark_changed(key);
  return {};
}

bool has_health_number(DcmItem& ds, const std::string& issuer) {
  if (string_value(ds, DCM_IssuerOfPatientID) == issuer &&
      !string_value(ds, DCM_PatientID).value_or("").empty()) {
    return true;
  }
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OtherPatientIDsSequence, seq).bad() || seq == nullptr) {
    return false;
  }
  for (unsigned long i = 0; i < seq->card(); ++i) {
    DcmItem* item = seq->getItem(i);
    if (item != nullptr && string_value(*item, DCM_IssuerOfPatientID) == issuer &&
        !string_value(*item, DCM_PatientID).value_or("").empty()) {
      return true;
    }
  }
  return false;
}

Result<void> fill_health_number(DcmItem& ds, const CoercionRules& rules,
                                const HealthNumberLookup& lookup, Recorder& rec,
                                CoercionResult& result) {
  if (has_health_number(ds, rules.health_number_issuer)) return {};
  const std::string mrn = string_value(ds, DCM_PatientID).value_or("");
  const std::string issuer = string_value(ds, DCM_IssuerOfPatientID).value_or("");
  std::optional<std::string> hn;
  if (!mrn.empty() && lookup) hn = lookup(mrn, issuer);
  if (!hn) {
    result.health_number_unresolved = true;
    return {};
  }
  if (!usable_lo(*hn)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the health-number lookup answered a value that cannot be stored");
  }
  rec.record(DCM_OtherPatientIDsSequence);  // the whole prior sequence, or an empty one
  // Reuse an item of the issuer whose Patient ID is empty; otherwise append one.
  DcmItem* target = nullptr;
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OtherPatientIDsSequence, seq).good() && seq != nullptr) {
    for (unsigned long i = 0; i < seq->card() && target == nullptr; ++i) {
      DcmItem* item = seq->getItem(i);
      if (item != nullptr &&
          string_value(*item, DCM_IssuerOfPatientID) == rules.health_number_issuer) {
        target = item;
      }
    }
  }
  if (target == nullptr &&
      ds.findOrCreateSequenceItem(DCM_OtherPatientIDsSequence, target, -2).bad()) {
    return make_error(ErrorCode::kInternal, "cannot add an Other Patient IDs item");
  }
  if (target == nullptr || target->putAndInsertString(DCM_PatientID, hn->c_str()).bad() ||
      target->putAndInsertString(DCM_IssuerOfPatientID, rules.health_number_issuer.c_str()).bad() ||
      target->putAndInsertString(DCM_TypeOfPatientID, "TEXT").bad()) {
    return make_error(ErrorCode::kInternal, "cannot fill the Other Patient IDs item");
  }
  rec.mark_changed(DCM_OtherPatientIDsSequence);
  return {};
}

std::string dicom_datetime(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int, so the compiler can prove no truncation
  std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d+0000", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Result<void> append_original_attributes(DcmItem& ds, Recorder& rec, const CoercionRules& rules,
                                        std::chrono::system_clock::time_point modified_at) {
  DcmItem* entry = nullptr;
  if (ds.findOrCreateSequenceItem(DCM_OriginalAttributesSequence, entry, -2).bad() ||
      entry == nullptr) {
    return make_error(ErrorCode::kInternal, "cannot add an Original Attributes item");
  }
  DcmItem* modified = nullptr;
  if (entry->findOrCreateSequenceItem(DCM_ModifiedAttributesSequence, modified, -2).bad() ||
      modified == nullptr) {
    return make_error(ErrorCode::kInternal, "cannot add a Modified Attributes item");
  }
  DcmItem& previous = rec.previous();
  while (previous.card() > 0) {
    DcmElement* e = previous.remove(0UL);
    if (e != nullptr && modified->insert(e, OFTrue).bad()) delete e;
  }
  const std::string when = dicom_datetime(modified_at);
  if (entry->putAndInsertString(DCM_AttributeModificationDateTime, when.c_str()).bad() ||
      entry->putAndInsertString(DCM_ModifyingSystem, kModifyingSystem).bad() ||
      entry->putAndInsertString(DCM_SourceOfPreviousValues, rules.facility.c_str()).bad() ||
      entry->putAndInsertString(DCM_ReasonForTheAttributeModification, kReason).bad()) {
    return make_error(ErrorCode::kInternal, "cannot fill the Original Attributes item");
  }
  return {};
}

// DcmFileFormat::saveFile(..., EWM_dontUpdateMeta) without its warning on every call: the file
// meta information as received (preamble included), then the dataset in `xfer`. Values that were
// left on disk are streamed from the input file through the write cache, a block at a time.
OFCondition write_derived(DcmFileFormat& file, const std::filesystem::path& path,
                          E_TransferSyntax xfer, E_EncodingType encoding) {
  DcmMetaInfo* meta = file.getMetaInfo();
  DcmDataset* ds = file.getDataset();
  if (meta == nullptr || ds == nullptr) return EC_CorruptedData;
  DcmWriteCache cache;
  DcmOutputFileStream stream(OFFilename(path.c_str()));
  OFCondition cond = stream.status();
  if (cond.bad()) return cond;
  meta->transferInit();
  cond = meta->write(stream, xfer, encoding, &cache);
  meta->transferEnd();
  if (cond.bad()) return cond;
  const Uint32 meta_length = meta->calcElementLength(xfer, encoding);
  ds->transferInit();
  cond = ds->write(stream, xfer, encoding, &cache, EGL_recalcGL, EPD_noChange, 0, 0, meta_length);
  ds->transferEnd();
  if (cond.bad()) return cond;
  stream.flush();
  return stream.status();
}

}  // namespace

Result<void> check_rules(const CoercionRules& rules) {
  auto plain = [](const std::string& what, const std::string& v) -> Result<void> {
    if (!v.empty() && !usable_lo(v)) {
      return make_error(ErrorCode::kConfig,
                        "coercion " + what + ": at most 64 printable ASCII characters, no '\\'");
    }
    return {};
  };
  if (auto r = plain("institution_name", rules.institution_name); !r) return r;
  if (auto r = plain("issuer_of_patient_id", rules.issuer_of_patient_id); !r) return r;
  if (auto r = plain("facility", rules.facility); !r) return r;
  if (rules.fill_health_number_from_mrn && !usable_lo(rules.health_number_issuer)) {
    return make_error(ErrorCode::kConfig, "coercion health_number_issuer: must be a short code");
  }
  for (const auto& [tag, value] : rules.set_attributes) {
    if (auto r = check_attribute_rule(tag, value); !r) return r;
  }
  return {};
}

Result<CoercionResult> coerce_dataset(DcmItem& dataset, const CoercionRules& rules,
                                      const HealthNumberLookup& lookup,
                                      std::chrono::system_clock::time_point modified_at) {
  if (auto r = check_rules(rules); !r) return r.error();
  CoercionResult result;
  Recorder rec(dataset);

  if (!rules.institution_name.empty()) {
    if (auto r = set_value(dataset, DCM_InstitutionName, rules.institution_name, rec); !r) {
      return r.error();
    }
  }
  if (!rules.issuer_of_patient_id.empty()) {
    if (auto r = set_value(dataset, DCM_IssuerOfPatientID, rules.issuer_of_patient_id, rec); !r) {
      return r.error();
    }
  }
  for (const auto& [tag, value] : rules.set_attributes) {
    if (auto r = set_value(dataset, key_of(tag), value, rec); !r) return r.error();
  }
  if (rules.fill_health_number_from_mrn) {
    if (auto r = fill_health_number(dataset, rules, lookup, rec, result); !r) return r.error();
  }
  if (rec.changed().empty()) return result;

  // A changed Patient ID is only meaningful with its issuer (PS3.3 C.12.1.1.9): keep the issuer's
  // prior value too, even when it did not change.
  if (rec.was_recorded(DCM_PatientID) && !rec.was_recorded(DCM_IssuerOfPatientID)) {
    rec.record(DCM_IssuerOfPatientID);
  }
  if (auto r = append_original_attributes(dataset, rec, rules, modified_at); !r) return r.error();
  result.changed = true;
  for (const Tag& t : rec.changed()) result.changed_tags.push_back(t.to_string());
  return result;
}

Result<CoercionResult> coerce_file(const std::filesystem::path& in_path,
                                   const std::filesystem::path& out_path,
                                   const CoercionRules& rules, const HealthNumberLookup& lookup,
                                   std::chrono::system_clock::time_point modified_at) {
  if (auto r = check_rules(rules); !r) return r.error();
  struct stat st {};
  if (::stat(in_path.c_str(), &st) != 0) {
    int err = errno;
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "stat object: " + errno_text(err));
  }
  DcmFileFormat file;
  OFCondition cond = dcmtk_guard([&] {
    return file.loadFile(OFFilename(in_path.c_str()), EXS_Unknown, EGL_noChange, kReadLimit);
  });
  if (cond.bad()) {
    return make_error(ErrorCode::kBadDicom, std::string("cannot parse the object: ") + cond.text());
  }
  DcmDataset* ds = file.getDataset();
  if (ds == nullptr) return make_error(ErrorCode::kInternal, "DCMTK returned no dataset");
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  const E_EncodingType encoding = input_encoding(*ds);

  Result<CoercionResult> result = coerce_dataset(*ds, rules, lookup, modified_at);
  if (!result || !result->changed) return result;

  // Owner-only (a derived object is patient data, whatever the umask). Same transfer syntax,
  // group lengths recalculated only where the input had them, padding as it was, file meta
  // information exactly as received. Unloaded values are copied from in_path.
  auto written = write_durably_via(
      out_path, "derived object", [&](const std::filesystem::path& tmp) -> Result<void> {
        OFCondition c = write_derived(file, tmp, xfer, encoding);
        if (c.bad())
          return make_error(ErrorCode::kIo,
                            std::string("cannot write the derived object: ") + c.text());
        return {};
      });
  if (!written) return written.error();
  return result;
}

}  // namespace dirgw::policy
