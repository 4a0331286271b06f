// Shared by the steps that write derived DICOM objects (coercion, de-identification).
#pragma once

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcstack.h"
// clang-format on

namespace dirgw::policy {

// DCMTK writes every sequence and item with one length encoding. Keep the input's: explicit
// lengths unless some sequence or item of the input (outside encapsulated pixel data) used
// undefined length.
inline E_EncodingType input_encoding(DcmItem& ds) {
  DcmStack stack;
  while (ds.nextObject(stack, OFTrue).good()) {
    DcmObject* obj = stack.top();
    if (obj == nullptr) continue;
    const DcmEVR vr = obj->ident();
    if ((vr == EVR_SQ || vr == EVR_item) && obj->getLengthField() == DCM_UndefinedLength) {
      return EET_UndefinedLength;
    }
  }
  return EET_ExplicitLength;
}

}  // namespace dirgw::policy
