// Inside config/ only: the DICOM receiver's negotiation keys (ingest.dicom.transfer_syntaxes,
// ingest.dicom.extra_sop_classes), read apart from config.cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace dirgw::config {

// Reads both keys of the mapping `m` (at `path`); every problem names the key and its line.
void read_dicom_negotiation(const YAML::Node& m, const std::string& path, DicomIngest& d,
                            std::vector<ConfigError>& errors);

}  // namespace dirgw::config
