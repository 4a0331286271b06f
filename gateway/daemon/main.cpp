// dirgwd: the dirgw gateway daemon.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "config/config.h"
#include "daemon/application.h"
#include "log/log.h"
#include "senders/transcode/codec_worker.h"

namespace {
constexpr const char* kUsage =
    "Usage: dirgwd [--config FILE]\n"
    "       dirgwd --check --config FILE\n"
    "\n"
    "The dirgw gateway daemon: receives DICOM studies from the facility's PACS, keeps them\n"
    "durably, and forwards them to the regional imaging repository.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE  configuration file (default /etc/dirgw/dirgw.yaml)\n"
    "      --check        validate the configuration and exit (0 valid, 1 invalid)\n"
    "  -h, --help         this text\n"
    "      --version      print the version\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop it in order (ingest, then forwarding, then the catalog).\n"
    "Exit codes: 0 stopped cleanly, 1 failed to start or run, 2 usage error.\n";
}

int main(int argc, char** argv) {
  // The codec process (senders/transcode/codec_worker.h): dirgwd started again by itself.
  if (argc > 1 && std::string(argv[1]) == "--codec-worker")
    return dirgw::senders::transcode::run_codec_worker(argc, argv);
  std::string config_path = "/etc/dirgw/dirgw.yaml";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--check") {
      check = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::puts("dirgwd " DIRGW_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "dirgwd: unknown argument '%s'\n\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  auto loaded = dirgw::config::load_file(config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors)
      std::fprintf(stderr, "%s\n", e.to_string(config_path).c_str());
    std::fprintf(stderr, "dirgwd: %zu configuration error(s); not starting\n",
                 loaded.errors.size());
    return 1;
  }
  if (check) {
    std::printf("%s: configuration is valid\n", config_path.c_str());
    return 0;
  }
  dirgw::log::init(dirgw::log::parse_level(loaded.config->log_level, dirgw::log::Level::kInfo),
                   true);
  dirgw::daemon::Application app(std::move(*loaded.config));
  return app.run();
}
