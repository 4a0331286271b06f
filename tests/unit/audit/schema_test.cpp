// Every message the exporter can write validates against the DICOM audit message schema
// (PS3.15 A.5.1, audit-message.rng), checked with xmllint when it is installed (libxml2-utils).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "audit/audit.h"
#include "audit/export.h"

namespace dirgw::audit {
namespace {

TEST(AuditSchema, EveryMessageValidatesAgainstPs315A51) {
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "xmllint not installed (Debian package libxml2-utils)";
  const auto dir =
      std::filesystem::temp_directory_path() / ("dirgw-audit-schema-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  ExportContext ctx;
  ctx.enterprise_site_id = "LGH";
  ctx.local_host = "gw1.example.org";
  ctx.destination_hosts["hdirs"] = "2001:db8::7";
  std::string files;
  int n = 0;
  Anchor last;
  for (EventType type : all_event_types()) {
    for (int variant = 0; variant < 4; ++variant) {
      Event e;
      e.at_ms = 1795000123456 + n;
      e.type = type;
      e.actor = variant == 0   ? system_actor()
                : variant == 1 ? user_actor("alice <ops>", 1000)
                : variant == 2 ? dicom_actor("PACS1", "10.0.0.5", 4242)
                               : hl7_actor("LAB", "lab.example.org", 2575);
      e.outcome = variant == 2 ? failure("refused & \"bad\"\t<x>\x01") : std::string(kSuccess);
      e.study_uid = variant == 0 ? "" : "1.2.826.0.1.3680043.10.543.7";
      e.sop_instance_uid = variant >= 2 ? "1.2.826.0.1.3680043.10.543.7.1" : "";
      e.destination = "hdirs";
      e.patient_ref = variant == 0 ? "" : "a1b2c3d4e5f60718";
      if (variant != 3)
        e.detail = {{"action", variant == 1 ? "delete" : "release"},
                    {"path", "/etc/dirgw/dirgw.yaml"},
                    {"sop_class_uid", "1.2.840.10008.5.1.4.1.1.2"}};
      e = seal(e, last);
      last = anchor_of(e);
      const auto path = dir / ("msg" + std::to_string(++n) + ".xml");
      std::ofstream(path) << to_dicom_audit_xml(e, ctx);
      files += " '" + path.string() + "'";
    }
  }
  const auto log = dir / "xmllint.log";
  const std::string cmd = std::string("xmllint --noout --relaxng '") + DIRGW_AUDIT_RNG + "'" +
                          files + " >'" + log.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  EXPECT_EQ(rc, 0) << out.str();
  EXPECT_EQ(out.str().find("fails to validate"), std::string::npos) << out.str();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dirgw::audit
