// The composition root: builds every stage from the configuration, wires them together, runs
// the event loop and shuts down in order (ingest first, then the scheduler, then the catalog).
// Nothing else constructs the world.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "config/config.h"

namespace dirgw::daemon {

class Application {
 public:
  explicit Application(config::Config config);
  ~Application();
  // Starts everything, tells systemd READY=1, runs until SIGTERM/SIGINT. Returns the exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dirgw::daemon
