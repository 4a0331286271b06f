// A main() for the fuzz targets that needs no libFuzzer: it runs LLVMFuzzerTestOneInput once on
// every file named (directories are walked), so the g++ ASan/UBSan test build replays the
// regression files in tests/data/regressions and the seeds on every `make test`.
//   replay_<target> [--quiet] FILE|DIR...      (a path that does not exist is skipped)
// Exit 0 when every input ran; a crash, sanitizer report or FUZZ_CHECK aborts the process.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  bool quiet = false;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quiet") {
      quiet = true;
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg, ec))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else if (!std::filesystem::exists(arg, ec)) {
      // tests/data/regressions/<target> exists only once something was found.
      if (!quiet) std::fprintf(stderr, "replay: %s: absent, skipped\n", arg.c_str());
    } else {
      std::fprintf(stderr, "replay: %s: not a file or directory\n", arg.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    // One read of the whole file: an istreambuf_iterator copies byte by byte, which under ASan
    // took seconds for the bad-input suite's 16-42 MB objects.
    std::error_code size_error;
    const auto size = std::filesystem::file_size(f, size_error);
    std::vector<char> data(size_error ? 0 : size);
    std::ifstream in(f, std::ios::binary);
    if (size_error || !in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
      std::fprintf(stderr, "replay: %s: cannot read\n", f.c_str());
      return 2;
    }
    if (!quiet) std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), data.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  }
  std::printf("replayed %zu inputs, no finding\n", files.size());
  return 0;
}
