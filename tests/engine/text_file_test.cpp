// Text inputs are bounded: a device or pipe that never ends is an error, not a read that
// exhausts memory (configs, their _base_ files, subnet YAML).
#include <catch2/catch.hpp>

#include <fstream>

#include "components/mutators/fix_subnet.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/text_file.h"
#include "tests/datasets/temp_dir.h"

using namespace razor;
using namespace razor::test;

TEST_CASE("read_text_file reads up to its limit and refuses one byte more", "[config][text_file]") {
  TempDir dir;
  std::ofstream(dir / "ten.txt") << "0123456789";
  CHECK(read_text_file(dir / "ten.txt", "test file", 10) == "0123456789");
  CHECK_THROWS_WITH(read_text_file(dir / "ten.txt", "test file", 9), Catch::Contains("holds more than"));
  CHECK_THROWS_WITH(read_text_file(dir / "absent.txt", "test file"),
                    Catch::Contains("cannot read test file") && Catch::Contains("absent.txt"));
}

TEST_CASE("Inputs that never end are config errors naming the file", "[config][text_file]") {
  TempDir dir;
  auto config_error_of = [](const std::string& path) {
    try {
      load_config(path);
    } catch (const Error& e) {
      CHECK(e.kind() == Error::Kind::Config);
      return std::string(e.what());
    }
    FAIL("no error");
    return std::string();
  };
  CHECK_THAT(config_error_of("/dev/zero"), Catch::Contains("config file /dev/zero holds more than 8 MiB"));
  std::ofstream(dir / "random_base.toml") << "_base_ = [\"/dev/urandom\"]\n";
  CHECK_THAT(config_error_of(dir / "random_base.toml"), Catch::Contains("/dev/urandom holds more than 8 MiB"));
  CHECK_THROWS_WITH(read_subnet_file("/dev/zero"), Catch::Contains("subnet file /dev/zero holds more than 8 MiB"));
}
