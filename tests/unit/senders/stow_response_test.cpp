#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "senders/dicomweb/stow.h"

namespace dirgw::senders::dicomweb {
namespace {

using namespace std::chrono_literals;

std::vector<Item> batch(std::initializer_list<const char*> uids) {
  std::vector<Item> items;
  for (const char* uid : uids) items.push_back(Item{uid, "1.2.840.10008.5.1.4.1.1.7", "/x", 1});
  return items;
}

std::string ref_item(const std::string& uid, const std::string& extra = "") {
  return R"({"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]},"00081155":{"vr":"UI","Value":[")" +
         uid + R"("]})" + extra + "}";
}

std::string failed_item(const std::string& uid, const std::string& reason_json) {
  return R"({"00081155":{"vr":"UI","Value":[")" + uid + R"("]},"00081197":{"vr":"US","Value":[)" +
         reason_json + "]}}";
}

std::string answer(const std::vector<std::string>& referenced,
                   const std::vector<std::string>& failed) {
  auto seq = [](const std::vector<std::string>& items) {
    if (items.empty()) return std::string(R"({"vr":"SQ"})");
    std::string s = R"({"vr":"SQ","Value":[)";
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
    return s + "]}";
  };
  return R"({"00080005":{"vr":"CS","Value":["ISO_IR 100"]},"00081198":)" + seq(failed) +
         R"(,"00081199":)" + seq(referenced) + "}";
}

// What Orthanc 1.10.1 with the DICOMweb plugin 1.7 answered to one good instance (verbatim).
const char* const kOrthancSuccess = R"({
	"00080005" : 
	{
		"Value" : 
		[
			"ISO_IR 100"
		],
		"vr" : "CS"
	},
	"00081190" : 
	{
		"Value" : 
		[
			"http://127.0.0.1:59893/dicom-web/studies/1.2.826.0.1.3680043.2.1125.9.1"
		],
		"vr" : "UR"
	},
	"00081198" : 
	{
		"vr" : "SQ"
	},
	"00081199" : 
	{
		"Value" : 
		[
			{
				"00081150" : 
				{
					"Value" : 
					[
						"1.2.840.10008.5.1.4.1.1.7"
					],
					"vr" : "UI"
				},
				"00081155" : 
				{
					"Value" : 
					[
						"1.2.826.0.1.3680043.2.1125.9.1.1"
					],
					"vr" : "UI"
				},
				"00081190" : 
				{
					"Value" : 
					[
						"http://127.0.0.1:59893/dicom-web/studies/1.2.826.0.1.3680043.2.1125.9.1/series/1.2.826.0.1.3680043.2.1125.9.1.0/instances/1.2.826.0.1.3680043.2.1125.9.1.1"
					],
					"vr" : "UR"
				}
			}
		],
		"vr" : "SQ"
	}
}
)";

// Orthanc's XML answer to a good instance and one missing SeriesInstanceUID (HTTP 400, no
// Content-Type header); note the stray <Value number="1" /> after the items.
const char* const kOrthancMixedXml = R"(<?xml version="1.0" encoding="utf-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xsi:schemaLocation="http://dicom.nema.org/PS3.19/models/NativeDICOM" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <DicomAttribute tag="00080005" vr="CS" keyword="SpecificCharacterSet">
    <Value number="1">ISO_IR 100</Value>
  </DicomAttribute>
  <DicomAttribute tag="00081198" vr="SQ" keyword="FailedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081150" vr="UI" keyword="ReferencedSOPClassUID">
        <Value number="1">1.2.840.10008.5.1.4.1.1.7</Value>
      </DicomAttribute>
      <DicomAttribute tag="00081155" vr="UI" keyword="ReferencedSOPInstanceUID">
        <Value number="1">1.2.826.0.1.3680043.2.1125.9.1.2</Value>
      </DicomAttribute>
      <DicomAttribute tag="00081197" vr="US" keyword="FailureReason">
        <Value number="1">49152</Value>
      </DicomAttribute>
    </Item>
    <Value number="1" />
  </DicomAttribute>
  <DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081150" vr="UI" keyword="ReferencedSOPClassUID">
        <Value number="1">1.2.840.10008.5.1.4.1.1.7</Value>
      </DicomAttribute>
      <DicomAttribute tag="00081155" vr="UI" keyword="ReferencedSOPInstanceUID">
        <Value number="1">1.2.826.0.1.3680043.2.1125.9.1.1</Value>
      </DicomAttribute>
    </Item>
    <Value number="1" />
  </DicomAttribute>
</NativeDicomModel>
)";

TEST(StowResponse, OrthancSuccessIsAccepted) {
  auto sent = batch({"1.2.826.0.1.3680043.2.1125.9.1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json", kOrthancSuccess, sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
  EXPECT_EQ(o.http_status, 200);
  ASSERT_EQ(o.instances.size(), 1u);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[0].sop_instance_uid, "1.2.826.0.1.3680043.2.1125.9.1.1");
  EXPECT_EQ(o.message, "HTTP 200: 1 accepted, 0 to retry, 0 failed permanently");
}

TEST(StowResponse, AllAcceptedKeepsTheOrderOfTheBatch) {
  auto sent = batch({"1.1", "1.2", "1.3"});
  // The answer lists them in another order.
  Outcome o =
      parse_stow_response(200, "application/dicom+json; charset=utf-8",
                          answer({ref_item("1.3"), ref_item("1.1"), ref_item("1.2")}, {}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
  ASSERT_EQ(o.instances.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(o.instances[i].sop_instance_uid, sent[i].sop_instance_uid);
    EXPECT_EQ(o.instances[i].status, InstanceStatus::kAccepted);
  }
}

TEST(StowResponse, WarningReasonIsStillAccepted) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(
      202, "application/dicom+json",
      answer({ref_item("1.1", R"(,"00081196":{"vr":"US","Value":[45056]})")}, {}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[0].reason, "WarningReason 0xB000 (coercion of data elements)");
}

TEST(StowResponse, SomeFailedWithPermanentAndTransientReasons) {
  auto sent = batch({"1.1", "1.2", "1.3", "1.4", "1.5", "1.6"});
  Outcome o = parse_stow_response(
      202, "application/dicom+json",
      answer({ref_item("1.1")}, {failed_item("1.2", "42752"),  // 0xA700 out of resources
                                 failed_item("1.3", "43264"),  // 0xA900 does not match
                                 failed_item("1.4", "49442"),  // 0xC122 transfer syntax
                                 failed_item("1.5", "273"),    // 0x0111 duplicate
                                 failed_item("1.6", "272")}),  // 0x0110 processing failure
      sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.instances[1].reason, "FailureReason 0xA700 (out of resources)");
  EXPECT_EQ(o.instances[2].status, InstanceStatus::kPermanent);
  EXPECT_EQ(o.instances[2].reason, "FailureReason 0xA900 (data set does not match SOP class)");
  EXPECT_EQ(o.instances[3].status, InstanceStatus::kPermanent);
  EXPECT_EQ(o.instances[3].reason, "FailureReason 0xC122 (transfer syntax not supported)");
  EXPECT_EQ(o.instances[4].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[5].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.message, "HTTP 202: 2 accepted, 2 to retry, 2 failed permanently");
}

TEST(StowResponse, OnlyPermanentFailuresLeftMakeTheRequestPermanent) {
  auto sent = batch({"1.1", "1.2"});
  Outcome o = parse_stow_response(202, "application/dicom+json",
                                  answer({ref_item("1.1")}, {failed_item("1.2", "49152")}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kPermanent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kPermanent);
}

TEST(StowResponse, AllFailed409IsParsedPerInstance) {
  auto sent = batch({"1.1", "1.2"});
  Outcome o = parse_stow_response(
      409, "application/dicom+json",
      answer({}, {failed_item("1.1", "290"), failed_item("1.2", "42753")}), sent);
  EXPECT_EQ(o.http_status, 409);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kPermanent);
  EXPECT_EQ(o.instances[0].reason, "FailureReason 0x0122 (SOP class not supported)");
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kRetry);  // 0xA701: out of resources
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
}

TEST(StowResponse, Conflict409WithoutBodyIsPermanentForAll) {
  auto sent = batch({"1.1", "1.2"});
  Outcome o = parse_stow_response(409, "", "", sent);
  EXPECT_EQ(o.kind, OutcomeKind::kPermanent);
  for (const auto& r : o.instances) EXPECT_EQ(r.status, InstanceStatus::kPermanent);
}

TEST(StowResponse, MalformedJsonWith200IsRetriedNotAssumedStored) {
  auto sent = batch({"1.1", "1.2"});
  Outcome o =
      parse_stow_response(200, "application/dicom+json", R"({"00081199": {"vr": "SQ", )", sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  for (const auto& r : o.instances) EXPECT_EQ(r.status, InstanceStatus::kRetry);
  EXPECT_NE(o.message.find("unreadable answer"), std::string::npos);
}

TEST(StowResponse, EmptyBodyWith200IsRetried) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json", "  \r\n", sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kRetry);
}

TEST(StowResponse, OrthancAnswerToAnUnparsableBodyIsNotSuccess) {
  // Orthanc answers 200 with both sequences empty when the body holds no multipart parts.
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json", answer({}, {}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_EQ(o.instances[0].reason, "not acknowledged in the answer");
}

TEST(StowResponse, JsonThatIsNotAStoreInstancesResponseIsNoEvidence) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/json", R"({"Status":"Success"})", sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_NE(o.message.find("not a Store Instances Response"), std::string::npos) << o.message;
}

TEST(StowResponse, UnattributedInstancesInA2xxAnswerAreRetried) {
  auto sent = batch({"1.1", "1.2", "1.3"});
  Outcome o =
      parse_stow_response(200, "application/dicom+json", answer({ref_item("1.2")}, {}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kRetry);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[2].status, InstanceStatus::kRetry);
}

TEST(StowResponse, XmlAnswerIsParsed) {
  auto sent = batch({"1.2.826.0.1.3680043.2.1125.9.1.1", "1.2.826.0.1.3680043.2.1125.9.1.2"});
  Outcome o = parse_stow_response(200, "application/dicom+xml", kOrthancMixedXml, sent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kPermanent);
  EXPECT_EQ(o.instances[1].reason, "FailureReason 0xC000 (cannot understand)");
}

TEST(StowResponse, OrthancBadRequestWithoutContentTypeIsRecognisedAndAttributed) {
  // Orthanc 1.10.1 sends its 400 answers with no Content-Type header.
  auto sent = batch({"1.2.826.0.1.3680043.2.1125.9.1.1", "1.2.826.0.1.3680043.2.1125.9.1.2",
                     "1.2.826.0.1.3680043.2.1125.9.1.9"});
  Outcome xml = parse_stow_response(400, "", kOrthancMixedXml, sent);
  Outcome json =
      parse_stow_response(400, "",
                          answer({ref_item("1.2.826.0.1.3680043.2.1125.9.1.1")},
                                 {failed_item("1.2.826.0.1.3680043.2.1125.9.1.2", "49152")}),
                          sent);
  for (const Outcome* o : {&xml, &json}) {
    EXPECT_EQ(o->instances[0].status, InstanceStatus::kAccepted);  // Orthanc did store it
    EXPECT_EQ(o->instances[1].status, InstanceStatus::kPermanent);
    // Not DICOM at all: Orthanc leaves it out of both sequences. In a 4xx that is final.
    EXPECT_EQ(o->instances[2].status, InstanceStatus::kPermanent);
    EXPECT_EQ(o->instances[2].reason, "HTTP 400, not acknowledged in the answer");
    EXPECT_EQ(o->kind, OutcomeKind::kPermanent);
  }
}

TEST(StowResponse, ServerErrorsAreRetriedWhateverTheBody) {
  auto sent = batch({"1.1", "1.2"});
  for (int status : {500, 502, 503, 504, 408, 429}) {
    Outcome o = parse_stow_response(status, "application/dicom+json",
                                    answer({ref_item("1.1")}, {failed_item("1.2", "49152")}), sent);
    EXPECT_EQ(o.kind, OutcomeKind::kRetry) << status;
    for (const auto& r : o.instances) EXPECT_EQ(r.status, InstanceStatus::kRetry) << status;
    EXPECT_EQ(o.http_status, status);
  }
}

TEST(StowResponse, ClientErrorsArePermanent) {
  auto sent = batch({"1.1"});
  const char* orthanc_415 = R"({"HttpError":"Unsupported Media Type","HttpStatus":415,)"
                            R"("Message":"Unsupported media type","OrthancStatus":3000})";
  for (int status : {400, 401, 403, 404, 413, 415}) {
    Outcome o = parse_stow_response(status, "", status == 415 ? orthanc_415 : "", sent);
    EXPECT_EQ(o.kind, OutcomeKind::kPermanent) << status;
    EXPECT_EQ(o.instances[0].status, InstanceStatus::kPermanent) << status;
    EXPECT_EQ(o.instances[0].reason, "HTTP " + std::to_string(status)) << status;
  }
}

TEST(StowResponse, RedirectsArePermanentAndOddStatusesRetried) {
  auto sent = batch({"1.1"});
  EXPECT_EQ(parse_stow_response(301, "", "", sent).kind, OutcomeKind::kPermanent);
  EXPECT_EQ(parse_stow_response(307, "", "", sent).kind, OutcomeKind::kPermanent);
  EXPECT_EQ(parse_stow_response(0, "", "", sent).kind, OutcomeKind::kRetry);
  EXPECT_EQ(parse_stow_response(101, "", "", sent).kind, OutcomeKind::kRetry);
}

TEST(StowResponse, MessagesAndReasonsNeverCarryTheBody) {
  auto sent = batch({"1.1", "1.2"});
  const std::string secret = "SYNTH^SECRETNAME";
  std::string body = answer(
      {ref_item("1.1", R"(,"00100010":{"vr":"PN","Value":[{"Alphabetic":")" + secret + R"("}]})")},
      {failed_item("1.2", R"("not a number )" + secret + R"(")")});
  for (int status : {200, 202, 400, 409, 500}) {
    Outcome o = parse_stow_response(status, "application/dicom+json", body, sent);
    EXPECT_EQ(o.message.find("SECRET"), std::string::npos) << o.message;
    for (const auto& r : o.instances) EXPECT_EQ(r.reason.find("SECRET"), std::string::npos);
  }
  Outcome bad = parse_stow_response(200, "text/html", "<html>" + secret + "</html>", sent);
  EXPECT_EQ(bad.message.find("SECRET"), std::string::npos);
  EXPECT_EQ(bad.kind, OutcomeKind::kRetry);
}

TEST(StowResponse, ToleratesReasonsWrittenAsText) {
  auto sent = batch({"1.1", "1.2", "1.3"});
  Outcome o = parse_stow_response(
      202, "application/dicom+json",
      answer({}, {failed_item("1.1", R"("A700")"), failed_item("1.2", R"("0xC000")"),
                  failed_item("1.3", R"("43264")")}),
      sent);
  EXPECT_EQ(o.instances[0].reason, "FailureReason 0xA700 (out of resources)");
  EXPECT_EQ(o.instances[1].reason, "FailureReason 0xC000 (cannot understand)");
  EXPECT_EQ(o.instances[2].reason, "FailureReason 0xA900 (data set does not match SOP class)");
}

TEST(StowResponse, FailedWithoutReasonOrListedTwiceIsRetried) {
  auto sent = batch({"1.1", "1.2"});
  std::string body = answer({ref_item("1.2")}, {R"({"00081155":{"vr":"UI","Value":["1.1"]}})",
                                                failed_item("1.2", "49152")});
  Outcome o = parse_stow_response(202, "application/dicom+json", body, sent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.instances[0].reason, "failed without a FailureReason");
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.instances[1].reason, "listed as both stored and failed");
}

TEST(StowResponse, UidsThatWereNotSentAreCountedNotTrusted) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json",
                                  answer({ref_item("1.1"), ref_item("9.9")}, {}), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
  EXPECT_NE(o.message.find("1 UIDs in the answer were not sent"), std::string::npos);
}

TEST(StowResponse, UidPaddingIsIgnored) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json",
                                  answer({ref_item(std::string("1.1") + "\\u0000")}, {}), sent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
}

TEST(StowResponse, ArrayWrappedJsonIsAccepted) {
  auto sent = batch({"1.1"});
  Outcome o = parse_stow_response(200, "application/dicom+json",
                                  "[" + answer({ref_item("1.1")}, {}) + "]", sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
}

TEST(StowResponse, HostileNestingIsRefusedWithoutCrashing) {
  auto sent = batch({"1.1"});
  std::string deep_json = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(parse_stow_response(200, "application/dicom+json", deep_json, sent).kind,
            OutcomeKind::kRetry);
  std::string deep_xml = "<NativeDicomModel>";
  for (int i = 0; i < 10000; ++i) deep_xml += "<a>";
  EXPECT_EQ(parse_stow_response(200, "application/dicom+xml", deep_xml, sent).kind,
            OutcomeKind::kRetry);
  std::string doctype =
      R"(<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><NativeDicomModel/>)";
  EXPECT_EQ(parse_stow_response(200, "application/dicom+xml", doctype, sent).kind,
            OutcomeKind::kRetry);
}

TEST(StowResponse, XmlWithPrefixesEntitiesAndCommentsIsRead) {
  auto sent = batch({"1.1"});
  std::string xml = R"(<?xml version="1.0"?>
<!-- a comment -->
<d:NativeDicomModel xmlns:d="http://dicom.nema.org/PS3.19/models/NativeDICOM">
  <d:DicomAttribute tag="00081199" vr="SQ"><d:Item number="1">
    <d:DicomAttribute tag="00081155" vr="UI"><d:Value number="1"><![CDATA[1.1]]></d:Value></d:DicomAttribute>
    <d:DicomAttribute tag="00081196" vr="US"><d:Value number="1">&#52;5056</d:Value></d:DicomAttribute>
  </d:Item></d:DicomAttribute>
</d:NativeDicomModel>)";
  Outcome o = parse_stow_response(200, "application/dicom+xml", xml, sent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[0].reason, "WarningReason 0xB000 (coercion of data elements)");
}

// The XML answers recorded under tests/data/stow (also the fuzz target's seeds).
std::string recorded(const std::string& name) {
  std::ifstream in(std::string(DIRGW_STOW_DATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<Item> recorded_batch() {
  return batch({"1.2.826.0.1.3680043.10.1001.1", "1.2.826.0.1.3680043.10.1001.2",
                "1.2.826.0.1.3680043.10.1001.3"});
}

TEST(StowResponse, RecordedXmlAnswersAreReadPerInstance) {
  const auto sent = recorded_batch();
  Outcome o = parse_stow_response(200, "application/dicom+xml", recorded("success.xml"), sent);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[0].reason, "");
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[1].reason, "WarningReason 0xB007 (data set does not match SOP class)");
  EXPECT_EQ(o.instances[2].status, InstanceStatus::kPermanent);
  EXPECT_EQ(o.instances[2].reason, "FailureReason 0xC000 (cannot understand)");
  EXPECT_EQ(o.message, "HTTP 200: 2 accepted, 0 to retry, 1 failed permanently");

  // Prefixes, CDATA, character references; "&amp;" is no FailureReason.
  o = parse_stow_response(200, "", recorded("prefixed-entities.xml"), sent);
  EXPECT_EQ(o.instances[0].reason, "WarningReason 0xB000 (coercion of data elements)");
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kAccepted);
  EXPECT_EQ(o.instances[2].status, InstanceStatus::kRetry);
  EXPECT_EQ(o.instances[2].reason, "failed without a FailureReason");
  EXPECT_EQ(o.message, "HTTP 200: 2 accepted, 1 to retry, 0 failed permanently");

  o = parse_stow_response(200, "application/dicom+xml", recorded("doctype.xml"), sent);
  EXPECT_EQ(o.message,
            "HTTP 200: 0 accepted, 3 to retry, 0 failed permanently (unreadable answer, no "
            "evidence of storage)");
}

// An answer naming instance 1.1, with `prolog` before it and `inside` in its UID's Value.
std::string xml_answer(const std::string& prolog, const std::string& inside = "1.1") {
  return prolog +
         R"(<NativeDicomModel><DicomAttribute tag="00081199" vr="SQ"><Item number="1">)"
         R"(<DicomAttribute tag="00081155" vr="UI"><Value number="1">)" +
         inside + "</Value></DicomAttribute></Item></DicomAttribute></NativeDicomModel>";
}

bool unreadable(const Outcome& o) {
  return o.kind == OutcomeKind::kRetry && o.message.find("unreadable answer") != std::string::npos;
}

TEST(StowResponse, XmlEntitiesAreNeverExpandedNorFetched) {
  auto sent = batch({"1.1"});
  ASSERT_EQ(parse_stow_response(200, "application/dicom+xml", xml_answer(""), sent).kind,
            OutcomeKind::kOk);
  // Billion laughs: 10^9 "lol"s from a few hundred bytes, if entities were expanded.
  std::string laughs = R"(<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">)";
  for (int i = 1; i <= 9; ++i) {
    laughs += "<!ENTITY lol" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j) laughs += "&lol" + std::to_string(i - 1) + ";";
    laughs += "\">";
  }
  laughs += "]>";
  EXPECT_TRUE(unreadable(
      parse_stow_response(200, "application/dicom+xml", xml_answer(laughs, "&lol9;"), sent)));
  // External entities (XXE) and parameter entities: the internal subset alone refuses them.
  for (const char* subset :
       {R"(<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>)",
        R"(<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]>)",
        R"(<!DOCTYPE x [ ]>)"}) {
    EXPECT_TRUE(unreadable(
        parse_stow_response(200, "application/dicom+xml", xml_answer(subset, "&e;"), sent)))
        << subset;
  }
  // A DOCTYPE naming an external DTD only is ignored, the DTD is never fetched.
  Outcome o = parse_stow_response(
      200, "application/dicom+xml",
      xml_answer(R"(<!DOCTYPE NativeDicomModel SYSTEM "http://127.0.0.1:1/x.dtd">)"), sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
}

TEST(StowResponse, XmlDepthAndSizeAreBounded) {
  auto sent = batch({"1.1"});
  // Elements 64 levels below the root are read, 65 are refused (closed: well-formed).
  auto deep_answer = [](int levels) {
    std::string open, close;
    for (int i = 0; i < levels; ++i) {
      open += "<x>";
      close += "</x>";
    }
    return R"(<NativeDicomModel><DicomAttribute tag="00081199" vr="SQ"><Item number="1">)"
           R"(<DicomAttribute tag="00081155" vr="UI"><Value number="1">1.1</Value>)"
           R"(</DicomAttribute></Item></DicomAttribute>)" +
           open + close + "</NativeDicomModel>";
  };
  EXPECT_EQ(parse_stow_response(200, "application/dicom+xml", deep_answer(64), sent).kind,
            OutcomeKind::kOk);
  EXPECT_TRUE(unreadable(parse_stow_response(200, "application/dicom+xml", deep_answer(65), sent)));
  EXPECT_TRUE(
      unreadable(parse_stow_response(200, "application/dicom+xml", deep_answer(100000), sent)));
  // Larger than any answer the transport reads (8 MiB): refused before parsing.
  std::string big = xml_answer("<!--" + std::string(std::size_t{8} << 20, 'x') + "-->");
  EXPECT_TRUE(unreadable(parse_stow_response(200, "application/dicom+xml", big, sent)));
}

TEST(StowResponse, XmlBesideTheRootIsRefused) {
  auto sent = batch({"1.1"});
  for (const std::string& body :
       {xml_answer("") + "<NativeDicomModel/>", xml_answer("") + "trailing text",
        "text before" + xml_answer(""), xml_answer("<![CDATA[x]]>"), xml_answer("", "1.1</x>"),
        xml_answer("", "<unclosed>1.1")}) {
    EXPECT_TRUE(unreadable(parse_stow_response(200, "application/dicom+xml", body, sent))) << body;
  }
  // What may stand beside it: a BOM, the declaration, comments, processing instructions.
  Outcome o = parse_stow_response(200, "",
                                  "\xEF\xBB\xBF<?xml version=\"1.0\"?>\r\n<!-- c --><?pi x?>\n" +
                                      xml_answer("") + "\n<!-- after --><?pi y?>\n",
                                  sent);
  EXPECT_EQ(o.kind, OutcomeKind::kOk);
}

TEST(FailureReason, ClassificationTable) {
  struct Case {
    std::uint16_t reason;
    InstanceStatus status;
  };
  const Case cases[] = {
      {0xA700, InstanceStatus::kRetry},     {0xA7FF, InstanceStatus::kRetry},
      {0x0110, InstanceStatus::kRetry},     {0x0213, InstanceStatus::kRetry},
      {0xA900, InstanceStatus::kPermanent}, {0xA9FF, InstanceStatus::kPermanent},
      {0xC000, InstanceStatus::kPermanent}, {0xCFFF, InstanceStatus::kPermanent},
      {0xC122, InstanceStatus::kPermanent}, {0xC123, InstanceStatus::kPermanent},
      {0x0122, InstanceStatus::kPermanent}, {0x0124, InstanceStatus::kPermanent},
      {0x0117, InstanceStatus::kPermanent}, {0x0119, InstanceStatus::kPermanent},
      {0x0111, InstanceStatus::kAccepted},  {0x1234, InstanceStatus::kRetry},
  };
  for (const auto& c : cases)
    EXPECT_EQ(classify_failure_reason(c.reason).status, c.status) << std::hex << c.reason;
}

TEST(RetryAfter, SecondsAndHttpDates) {
  const auto now = std::chrono::sys_days(std::chrono::year(2026) / 11 / 28) + 10h;
  EXPECT_EQ(parse_retry_after("120", now), std::chrono::milliseconds(120000));
  EXPECT_EQ(parse_retry_after(" 0 ", now), std::chrono::milliseconds(0));
  EXPECT_EQ(parse_retry_after("Sat, 28 Nov 2026 10:00:30 GMT", now),
            std::chrono::milliseconds(30000));
  EXPECT_EQ(parse_retry_after("Saturday, 28-Nov-26 10:01:00 GMT", now),
            std::chrono::milliseconds(60000));
  EXPECT_EQ(parse_retry_after("Sat Nov 28 10:00:05 2026", now), std::chrono::milliseconds(5000));
  EXPECT_EQ(parse_retry_after("Fri, 27 Nov 2026 10:00:00 GMT", now), std::chrono::milliseconds(0));
  EXPECT_EQ(parse_retry_after("99999999999", now), std::chrono::milliseconds(24h));
  EXPECT_EQ(parse_retry_after("Sat, 28 Nov 2036 10:00:00 GMT", now),
            std::chrono::milliseconds(24h));
  EXPECT_FALSE(parse_retry_after("", now).has_value());
  EXPECT_FALSE(parse_retry_after("-5", now).has_value());
  EXPECT_FALSE(parse_retry_after("soon", now).has_value());
  EXPECT_FALSE(parse_retry_after("Sat, 31 Feb 2026 10:00:00 GMT", now).has_value());
}

// A key repeated in an object counts with its last value, at every level (the reader follows
// the events of the text, not a tree: stow_answer.cpp); the first Referenced SOP Sequence here,
// naming 1001.9, is replaced by the second.
TEST(StowResponse, ARepeatedKeyCountsWithItsLastValue) {
  const auto sent = recorded_batch();
  Outcome o =
      parse_stow_response(200, "application/dicom+json", recorded("repeated-keys.json"), sent);
  ASSERT_EQ(o.instances.size(), 3u);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kRetry);  // its UID was overwritten by .2's
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kAccepted);
  EXPECT_NE(o.instances[1].reason.find("0xB007"), std::string::npos) << o.instances[1].reason;
  EXPECT_EQ(o.instances[2].status, InstanceStatus::kRetry);  // its last Value is empty
}

TEST(StowResponse, AModuleInAOneElementArrayIsReadWithOddValuesIgnored) {
  const auto sent = recorded_batch();
  Outcome o =
      parse_stow_response(200, "application/dicom+json", recorded("wrapped-module.json"), sent);
  ASSERT_EQ(o.instances.size(), 3u);
  EXPECT_EQ(o.instances[0].status, InstanceStatus::kAccepted);  // a reason of 1.5 is no reason
  EXPECT_EQ(o.instances[1].status, InstanceStatus::kRetry);     // not in the answer
  EXPECT_NE(o.instances[2].reason.find("0xA700"), std::string::npos) << o.instances[2].reason;
}

}  // namespace
}  // namespace dirgw::senders::dicomweb
