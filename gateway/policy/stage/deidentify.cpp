#include "policy/stage/deidentify.h"

namespace dirgw::policy {

deid::DeidOptions deid_options(const config::Deidentify& d) {
  deid::DeidOptions o;
  for (const auto& sp : d.safe_private)
    o.safe_private.push_back(
        {static_cast<std::uint16_t>(sp.group), sp.creator, static_cast<std::uint8_t>(sp.element)});
  if (d.safe_private_table) {
    const auto& table = deid::standard_safe_private();
    o.safe_private.insert(o.safe_private.end(), table.begin(), table.end());
  }
  o.retain_uids = d.retain_uids;
  o.retain_device_identity = d.retain_device_identity;
  o.retain_institution_identity = d.retain_institution_identity;
  o.retain_patient_characteristics = d.retain_patient_characteristics;
  o.dates = d.dates == "full"       ? deid::LongitudinalDates::kRetainFull
            : d.dates == "modified" ? deid::LongitudinalDates::kRetainModified
                                    : deid::LongitudinalDates::kRemove;
  o.clean_descriptors = d.clean_descriptors;
  o.descriptor_allow_list = d.descriptor_allow_list;
  o.clean_structured_content = d.clean_structured_content;
  o.clean_graphics = d.clean_graphics;
  for (const auto& b : d.burned_in_allow)
    o.burned_in_allow.push_back(
        {b.sop_class_uid, b.modality, b.manufacturer, b.model, b.allow_marked_yes});
  return o;
}

Result<DeidTargets> DeidTargets::make(const config::Config& config) {
  DeidTargets t;
  for (const auto& d : config.destinations) {
    if (!d.deidentify.enabled) continue;
    auto options = deid_options(d.deidentify);
    if (auto ok = deid::check_options(options); !ok)
      return make_error(ErrorCode::kConfig,
                        "destinations." + d.name + ".deidentify: " + ok.error().detail);
    t.options_.emplace(d.name, std::move(options));
  }
  if (t.options_.empty()) return t;
  const auto path =
      config.deid_key_file.empty() ? config.state_dir / "keys" / "deid.key" : config.deid_key_file;
  auto key = deid::load_or_create_key(path);
  if (!key) return key.error();
  t.key_ = std::move(key).value();
  return t;
}

DeidTargets::Copy DeidTargets::copy(const std::string& destination,
                                    const std::filesystem::path& input, std::int64_t instance_id,
                                    const ingest::Spool& spool, bool burned_in_reviewed) const {
  Copy out;
  const auto options = options_.find(destination);
  if (options == options_.end() || !key_) {
    out.refused = "no de-identification configured";
    return out;
  }
  const deid::DeidOptions* use = &options->second;
  deid::DeidOptions reviewed;
  if (burned_in_reviewed) {
    // An operator looked at this instance's pixel data (schema 29). The other screens
    // (encapsulated documents, SR, overlays, recognizable features) stay.
    reviewed = options->second;
    reviewed.burned_in_reviewed = true;
    use = &reviewed;
  }
  const auto tmp = spool.new_temp_path();
  auto report = deid::deidentify_file(input, tmp, *use, *key_);
  if (!report) {
    spool.discard_temp(tmp);
    // kRefused carries the screen's reasons ("burned-in-annotation", ...): our words only.
    out.refused = report.error().code == ErrorCode::kRefused
                      ? report.error().detail
                      : "could not be de-identified: " + report.error().to_string();
    return out;
  }
  auto stored = spool.commit_derived(tmp);
  spool.discard_temp(tmp);
  if (!stored) {
    out.refused = "the de-identified copy could not be stored: " + stored.error().to_string();
    return out;
  }
  out.derived = catalog::DerivedObject{instance_id,  destination,    stored->sha256,
                                       stored->size, "deidentified", report->sop_instance_uid};
  return out;
}

}  // namespace dirgw::policy
