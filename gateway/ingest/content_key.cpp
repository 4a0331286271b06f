#include "ingest/content_key.h"

#include <mutex>
#include <string_view>
#include <unordered_map>

#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdicent.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcvr.h"

namespace dirgw::ingest {

namespace {

bool text_vr(std::string_view vr) {
  static constexpr std::string_view kText[] = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT",
                                               "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"};
  for (auto t : kText)
    if (t == vr) return true;
  return false;
}

bool dictionary_text(std::uint32_t tag) {
  const auto group = static_cast<std::uint16_t>(tag >> 16);
  const auto element = static_cast<std::uint16_t>(tag & 0xFFFFu);
  bool text = false;
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  if (const DcmDictEntry* e = dict.findEntry(DcmTagKey(group, element), nullptr); e != nullptr)
    text = text_vr(DcmVR(e->getEVR()).getVRName());
  dcmDataDict.rdunlock();
  return text;
}

}  // namespace

bool padded_text_tag(std::uint32_t tag) {
  if ((tag >> 16) % 2 != 0) return false;  // private: no dictionary says
  // A few hundred distinct tags in practice: remembered, so the dictionary's lock is taken once.
  static std::mutex mutex;
  static std::unordered_map<std::uint32_t, bool> known;
  {
    std::lock_guard lock(mutex);
    if (auto it = known.find(tag); it != known.end()) return it->second;
  }
  const bool text = dictionary_text(tag);
  std::lock_guard lock(mutex);
  if (known.size() < 65536) known.emplace(tag, text);
  return text;
}

Result<std::string> object_content_key(const std::filesystem::path& path,
                                       const PrescanLimits& limits) {
  return content_key_file(path, limits, padded_text_tag);
}

}  // namespace dirgw::ingest
