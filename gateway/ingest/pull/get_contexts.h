// The storage presentation contexts a C-GET association proposes (dirgw in the SCP role), as a
// pure rule: no DCMTK here (qr_client.cpp negotiates); unit-tested in
// tests/unit/ingest/get_contexts_test.cpp.
//
// In a C-GET the PACS sends the study back as C-STORE sub-operations on our own association, and
// it can only use a presentation context we proposed and it accepted, for the object's SOP class
// and one transfer syntax. A context carries one SOP class and is accepted with one transfer
// syntax, and an association has at most 128 contexts. A PACS that holds its objects JPEG
// lossless (or JPEG 2000, RLE, ...) and finds no context in that syntax must decompress them,
// and many cannot (DCMTK's dcmqrscp fails the sub-operation). So each retrieve gets an
// association of its own, proposed for that study:
//
//   1. the study's classes (those the PACS reported at IMAGE level, else those its modalities
//      use, and always the Secondary Capture family); its image classes: an uncompressed context
//      (explicit and implicit VR little endian, big endian when offered), then one context per
//      compressed syntax the receiver offers (ingest.dicom.transfer_syntaxes), the syntaxes most
//      common in archives first, video syntaxes only for the video classes;
//   2. the classes that accompany images in most studies (reports, dose SRs, key objects,
//      presentation states, PDF), uncompressed, between the common and the rarer compressed
//      syntaxes of step 1;
//   3. every other class of `fallback` (DCMTK's list of commonly used storage classes),
//      uncompressed, while room is left.
//
// What does not fit is counted in `dropped` (the caller logs it).
//
// Which context a PACS sends an object on is its own choice. Some look for one accepted in the
// object's syntax (and convert when there is none, if they can); others, DCMTK's dcmqrscp among
// them, take the first context accepted for the SOP class, whatever its syntax. For those the
// first context of a class decides, so there are two layouts: kUncompressedFirst (the class's
// first context is uncompressed: right for a PACS that holds its objects uncompressed or can
// decompress them) and kPacsChoiceFirst (the first context proposes every syntax and the PACS
// accepts the one it prefers, normally the one it stores in; an uncompressed context follows the
// common compressed ones). The retrieve uses the first, and the second when sub-operations failed.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace dirgw::ingest::pull {

enum class GetLayout { kUncompressedFirst, kPacsChoiceFirst };

struct StorageProposal {
  std::string sop_class;
  std::vector<std::string> transfer_syntaxes;
};

struct GetContextPlan {
  std::vector<StorageProposal> contexts;
  std::size_t image_classes = 0;  // classes proposed with compressed syntaxes (step 1)
  std::size_t dropped = 0;        // contexts that did not fit in the budget
};

// The storage contexts of a C-GET association. `sop_classes`: the SOP classes the PACS reported
// for the study's instances (empty when it did not say); `modalities`: the study's modalities;
// `offered`: the transfer syntaxes the receiver offers, in its order; `fallback`: further storage
// classes, in order of preference; `budget`: how many contexts there is room for.
GetContextPlan plan_get_contexts(const std::set<std::string>& sop_classes,
                                 const std::set<std::string>& modalities,
                                 const std::vector<std::string>& offered,
                                 const std::vector<std::string>& fallback, std::size_t budget,
                                 GetLayout layout = GetLayout::kUncompressedFirst);

// The storage classes a modality's objects use (PS3.3 / PS3.4): image classes, and for the
// modalities without pixel data (RTPLAN, RTSTRUCT, RTDOSE, RTRECORD, ECG, HD, EPS, AU, PR, KO,
// SR, SEG, REG, FID, DOC) theirs; none for a modality not listed.
std::vector<std::string> classes_of_modality(const std::string& modality);

}  // namespace dirgw::ingest::pull
