// Test helper: puts a DICOM dataset into the spool and records it in the catalog, as the DICOM
// receiver would (without the network).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "catalog/ingest_ledger.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "ingest/spool/spool.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::testing {

inline void spool_instance(ingest::Spool& spool, catalog::IngestLedger& ingest, DcmDataset& ds,
                           const std::string& study_uid, const std::string& sop_uid) {
  ASSERT_TRUE(ds.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str()).good());
  ASSERT_TRUE(ds.putAndInsertString(DCM_SOPInstanceUID, sop_uid.c_str()).good());
  const auto temp = spool.new_temp_path();
  policy::test::save(ds, temp);
  auto stored = spool.commit(temp, 1 << 30);
  ASSERT_TRUE(stored.ok());
  catalog::NewInstance in;
  in.study_uid = study_uid;
  in.series_uid = study_uid + ".1";
  in.sop_instance_uid = sop_uid;
  in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
  in.transfer_syntax = "1.2.840.10008.1.2.1";
  in.sha256 = stored->sha256;
  in.size = stored->size;
  ASSERT_TRUE(ingest.record_instance(in).ok());
}

}  // namespace dirgw::testing
