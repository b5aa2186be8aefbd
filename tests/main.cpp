// Catch2's main, with a private temporary directory per test process: CTest runs each test
// case as a process of its own, and with TMPDIR pointing at a fresh directory, tests that
// write fixed names under temp_directory_path() (and the razor processes they start) can
// run side by side (ctest -j). The directory is removed when every test passed and kept,
// with its path printed, when one failed.
#define CATCH_CONFIG_RUNNER
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

int main(int argc, char* argv[]) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "razor_test_XXXXXX").string();
  const bool private_tmp = mkdtemp(pattern.data()) != nullptr;
  if (private_tmp) setenv("TMPDIR", pattern.c_str(), /*overwrite=*/1);

  Catch::Session session;
  if (const int code = session.applyCommandLine(argc, argv); code != 0) return code;
  const Catch::ConfigData& data = session.configData();
  // Listing (as catch_discover_tests does) returns the number of tests listed, not failures.
  const bool listing =
      data.listTests || data.listTestNamesOnly || data.listTags || data.listReporters;
  const int failures = session.run();

  if (private_tmp) {
    if (failures == 0 || listing) {
      std::error_code ignored;
      fs::remove_all(pattern, ignored);
    } else {
      std::cerr << "the failed test's temporary files are kept in " << pattern << "\n";
    }
  }
  return failures;
}
