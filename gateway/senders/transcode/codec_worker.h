// The codec process: image decoders and encoders (DCMTK's JPEG, JPEG-LS and RLE codecs,
// OpenJPEG) run in a child process of dirgwd, one object at a time, never in the daemon. They
// parse the most intricate bytes an outside system sends (compressed pixel data is not looked
// at by the pre-scan), and a crash, a hang or a runaway allocation in one of them would
// otherwise stop every door and every destination, again after each restart while the object
// waits in the queue. In the child it costs that object: the worker is stopped (a time-out) or
// found dead, the object fails with the reason, and the next job starts a fresh worker.
//
// The worker is dirgwd itself started again (`dirgwd --codec-worker`, from /proc/self/exe: the
// same build even after a package upgrade replaced the file), talking over a socket pair on its
// standard input and output. It closes every other descriptor it inherited, cannot dump core
// (the pixels are patient data), runs under an address-space limit and in a Landlock sandbox
// (sandbox.h: the spool's objects to read, its tmp/ to write, nothing else). It dies with the
// thread that started it (PR_SET_PDEATHSIG): a sender lane's thread, which lives as long as dirgwd.
// Requests and answers carry spool paths and syntax UIDs only: never a value of the object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/files.h"
#include "senders/transcode/jpeg_ls.h"

namespace dirgw::senders::transcode {

struct CodecSettings {
  // The worker's program and its command line (argv[0] first); no program: the codecs run in this
  // process (unit tests, tools).
  std::string program;
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // one object's job
};

// dirgwd's own settings: `dirgwd --codec-worker` from /proc/self/exe, with its memory limit and
// its sandbox (sandbox.h): it reads the spool's objects/ and derived/, and writes its tmp/.
CodecSettings daemon_codec_settings(std::chrono::milliseconds timeout, std::uint64_t memory_limit,
                                    const std::filesystem::path& spool);

// One worker process, started on first use and again after it died; one job at a time (a sender
// lane owns one). Not thread-safe.
class CodecWorker {
 public:
  explicit CodecWorker(CodecSettings settings) : settings_(std::move(settings)) {}
  ~CodecWorker();
  CodecWorker(const CodecWorker&) = delete;
  CodecWorker& operator=(const CodecWorker&) = delete;

  // transcode_jpeg_ls() in the worker.
  Attempt jpeg_ls(const std::filesystem::path& original, const Options& options);
  // decompress_file() in the worker.
  Attempt decompress(const std::filesystem::path& original, const std::string& target_syntax,
                     const std::filesystem::path& out_dir);

  // dirgwd is stopping: every job in progress ends now with kError (its worker killed), and no
  // new one starts. Process-wide and for good; thread-safe.
  static void stop_all_jobs();

  // How many workers were started, and how many ended by a crash or were stopped (tests, status).
  std::uint64_t started() const { return started_; }
  std::uint64_t failed() const { return failed_; }

 private:
  Attempt run(const std::vector<std::string>& request);
  // run(), for a job that writes `copy` (a name chosen here): removed unless it is the answer.
  Attempt run_for(const std::filesystem::path& copy, const std::vector<std::string>& request);
  bool spawn(std::string& why);
  // Closes the channel, kills the worker when `kill`, reaps it; its wait status.
  int stop(bool kill);

  CodecSettings settings_;
  pid_t pid_ = -1;
  UniqueFd channel_;
  std::uint64_t started_ = 0;
  std::uint64_t failed_ = 0;
};

// The worker's main loop (dirgwd --codec-worker): jobs from standard input, answers to standard
// output, until the daemon closes the channel. Returns the process's exit status.
int run_codec_worker(int argc, char** argv);

}  // namespace dirgw::senders::transcode
