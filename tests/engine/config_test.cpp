#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/error.h"

using razor::Config;
using razor::Json;

namespace {

// Absolute, normalised path of a file under tests/data/configs, as the loader reports it.
std::string config_path(const std::string& relative) {
  namespace fs = std::filesystem;
  return fs::weakly_canonical(fs::path(RAZOR_TEST_DATA_DIR) / "configs" / relative).string();
}

// The message of the config error `fn` throws ("" and a failed check when it throws none).
std::string config_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const razor::Error& e) {
    CHECK(e.kind() == razor::Error::Kind::Config);
    return e.what();
  }
  FAIL_CHECK("no razor::Error was thrown");
  return "";
}

// Makes `dir` the working directory for a scope (relative `_base_` paths of a stream).
class WorkingDirectory {
 public:
  explicit WorkingDirectory(const std::filesystem::path& dir)
      : previous_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~WorkingDirectory() { std::filesystem::current_path(previous_); }

 private:
  std::filesystem::path previous_;
};

std::filesystem::path fresh_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("razor_config_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return fs::weakly_canonical(dir);
}

// Writes `text` into the FIFO `path` once a reader has opened it; gives up after 10 s so
// that a loader which never opens the FIFO fails the test instead of hanging it.
void write_fifo(const std::string& path, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int fd = -1;
  while ((fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK)) < 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (fd < 0) return;
  ::fcntl(fd, F_SETFL, 0);  // blocking writes from here on
  const ssize_t written = ::write(fd, text.data(), text.size());
  (void)written;
  ::close(fd);
}

const char* kStreamConfig = "_base_ = \"base.toml\"\nseed = 7\n[model]\ndepth = 20\n";

}  // namespace

TEST_CASE("load_config merges bases in order, then the file itself", "[config]") {
  Config config = razor::load_config(config_path("inherit/child.toml"));
  CHECK(config.file == config_path("inherit/child.toml"));

  // model.toml sets depth 18, schedule.toml (later) 34; the file sets type over both bases.
  Json expected = {
      {"model",
       {{"type", "MobileNet"},
        {"depth", 34},
        {"head", {{"num_classes", 100}, {"loss", "CrossEntropy"}}}}},
      {"seed", 1},
      {"optim_wrapper", {{"optimizer", {{"type", "SGD"}, {"lr", 0.05}, {"momentum", 0.9}}}}},
      {"train_cfg", {{"max_epochs", 10}, {"milestones", {5}}}},
      {"work_dir", "runs/child"},
  };
  CHECK(config.tree == expected);  // ordered: key order follows the bases, then the file
  CHECK(config.tree["model"]["depth"].is_number_integer());
  CHECK(config.tree["optim_wrapper"]["optimizer"]["lr"].is_number_float());
  CHECK_FALSE(config.tree.contains("_base_"));
}

TEST_CASE("origins name the file that set each key last", "[config]") {
  Config config = razor::load_config(config_path("inherit/child.toml"));
  const std::string model = config_path("_base_/model.toml");
  const std::string schedule = config_path("_base_/schedule.toml");
  const std::string child = config_path("inherit/child.toml");

  CHECK(config.origins.at("model.head.loss") == model);
  CHECK(config.origins.at("model.depth") == schedule);
  CHECK(config.origins.at("seed") == schedule);
  CHECK(config.origins.at("optim_wrapper.optimizer.momentum") == schedule);
  CHECK(config.origins.at("optim_wrapper.optimizer.lr") == child);
  CHECK(config.origins.at("model.type") == child);
  CHECK(config.origins.at("model.head") == child);
  CHECK(config.origin_of("model.head.loss") == model);
  CHECK(config.origin_of("model.head.absent") == child);  // nearest enclosing table
  CHECK(config.origin_of("absent.key") == child);         // falls back to the file

  razor::apply_overrides(config, {"model.head.loss=Focal", "model.neck.type=FPN"});
  CHECK(config.origin_of("model.head.loss") == "--cfg-options");
  CHECK(config.origin_of("model.neck") == "--cfg-options");
  CHECK(config.origin_of("model.neck.type") == "--cfg-options");
  CHECK(config.origin_of("model.head.num_classes") == child);
}

TEST_CASE("_delete_ replaces a table instead of merging into it", "[config]") {
  Config config = razor::load_config(config_path("delete/child.toml"));
  CHECK(config.tree["optim_wrapper"]["optimizer"] == Json{{"type", "Adam"}, {"lr", 0.001}});
  // `_delete_ = false` merges as usual.
  CHECK(config.tree["train_cfg"] == Json{{"max_epochs", 20}, {"milestones", {3, 6}}});
  CHECK(config.tree.dump().find("_delete_") == std::string::npos);
  CHECK(config.origins.count("optim_wrapper.optimizer.momentum") == 0);
  CHECK(config.origins.at("optim_wrapper.optimizer.type") == config_path("delete/child.toml"));
  CHECK(config.origins.at("train_cfg.milestones") == config_path("_base_/schedule.toml"));

  Config text = razor::parse_config_text("[a]\n_delete_ = true\nx = 1\n[[b]]\n_delete_ = true\n");
  CHECK(text.tree == Json{{"a", {{"x", 1}}}, {"b", Json::array({Json::object()})}});
}

TEST_CASE("a _base_ cycle is an error listing the chain", "[config]") {
  std::string message = config_error_of([] { razor::load_config(config_path("cycle/a.toml")); });
  CHECK_THAT(message, Catch::Contains("a.toml -> b.toml -> a.toml"));

  message = config_error_of([] { razor::load_config(config_path("cycle/self.toml")); });
  CHECK_THAT(message, Catch::Contains("self.toml -> self.toml"));
}

TEST_CASE("missing files and bad _base_ values name the file at fault", "[config]") {
  std::string message = config_error_of([] { razor::load_config(config_path("missing/child.toml")); });
  CHECK_THAT(message, Catch::Contains("config file not found: " +
                                      config_path("_base_/does_not_exist.toml")));
  CHECK_THAT(message, Catch::Contains(config_path("missing/child.toml")));

  message = config_error_of([] { razor::load_config(config_path("no_such_config.toml")); });
  CHECK(message == "config file not found: " + config_path("no_such_config.toml"));

  message = config_error_of([] { razor::load_config(config_path("bad_base/child.toml")); });
  CHECK_THAT(message, Catch::Contains(config_path("bad_base/child.toml")) &&
                          Catch::Contains("_base_"));
}

TEST_CASE("TOML syntax errors give file:line:column", "[config]") {
  std::string message = config_error_of([] { razor::load_config(config_path("syntax/bad.toml")); });
  CHECK_THAT(message, Catch::StartsWith(config_path("syntax/bad.toml") + ":4:9: "));

  message = config_error_of([] { razor::parse_config_text("a = 1\n\nb = [1, 2\n", "snap"); });
  CHECK_THAT(message, Catch::StartsWith("snap:3:"));
}

TEST_CASE("parse_toml_value reads TOML values and keeps bare words as strings", "[config]") {
  CHECK(razor::parse_toml_value("3") == Json(3));
  CHECK(razor::parse_toml_value("3").is_number_integer());
  CHECK(razor::parse_toml_value("0.1") == Json(0.1));
  CHECK(razor::parse_toml_value("1.0").is_number_float());
  CHECK(razor::parse_toml_value("true") == Json(true));
  CHECK(razor::parse_toml_value("\"s p\"") == Json("s p"));
  CHECK(razor::parse_toml_value("[1, 2]") == Json({1, 2}));
  CHECK(razor::parse_toml_value("{ a = 1, b = \"x\" }") == Json{{"a", 1}, {"b", "x"}});
  CHECK(razor::parse_toml_value("Adam") == Json("Adam"));
  CHECK(razor::parse_toml_value("two words") == Json("two words"));
  CHECK(razor::parse_toml_value("1\nw = 2") == Json("1\nw = 2"));
  CHECK(razor::parse_toml_value("1979-05-27") == Json("1979-05-27"));
}

TEST_CASE("apply_overrides sets typed values and creates tables", "[config]") {
  Config config = razor::parse_config_text(R"(
[model]
depth = 18
[model.head]
num_classes = 10
loss = "CE"
[optim_wrapper.optimizer]
type = "SGD"
lr = 0.1
)");
  razor::apply_overrides(config, {
                                     "model.depth=50",
                                     "optim_wrapper.optimizer.lr=0.01",
                                     "model.pretrained=true",
                                     "work_dir=\"runs/a=b\"",
                                     "optim_wrapper.optimizer.type=Adam",
                                     "model.stages=[1, 2, 3]",
                                     "new.deep.key=5",
                                     "model.head={ num_classes = 5 }",
                                 });
  const Json& tree = config.tree;
  CHECK(tree["model"]["depth"] == 50);
  CHECK(tree["model"]["depth"].is_number_integer());
  CHECK(tree["optim_wrapper"]["optimizer"]["lr"] == 0.01);
  CHECK(tree["optim_wrapper"]["optimizer"]["lr"].is_number_float());
  CHECK(tree["model"]["pretrained"] == true);
  CHECK(tree["work_dir"] == "runs/a=b");
  CHECK(tree["optim_wrapper"]["optimizer"]["type"] == "Adam");
  CHECK(tree["model"]["stages"] == Json({1, 2, 3}));
  CHECK(tree["new"] == Json{{"deep", {{"key", 5}}}});
  // A table value merges key by key, as a config file would.
  CHECK(tree["model"]["head"] == Json{{"num_classes", 5}, {"loss", "CE"}});
  CHECK(config.origin_of("new.deep.key") == "--cfg-options");

  std::string message =
      config_error_of([&] { razor::apply_overrides(config, {"model.depth.x=1"}); });
  CHECK_THAT(message, Catch::Contains("model.depth.x") && Catch::Contains("model.depth is a number"));
  message = config_error_of([&] { razor::apply_overrides(config, {"model.depth"}); });
  CHECK_THAT(message, Catch::Contains("expected KEY=VALUE"));
  message = config_error_of([&] { razor::apply_overrides(config, {"model..depth=1"}); });
  CHECK_THAT(message, Catch::Contains("model..depth"));
}

TEST_CASE("to_toml prints TOML that reads back to the same tree", "[config]") {
  // Within each table, plain values come first: the order TOML prints them in.
  Json tree = {
      {"name", "quote \" back\\slash\nnew line\ttab"},
      {"lr", 0.1},
      {"weight_decay", 5e-4},
      {"one", 1.0},
      {"huge", 1e300},
      {"negative", -2.5},
      {"count", 42},
      {"flag", false},
      {"list", {1, 2, 3}},
      {"mixed", {1, Json{{"a", 1}}}},
      {"nested", {Json{1, 2}, Json::array({"x"}), Json::array({Json{{"t", 0.25}}})}},
      {"empty_list", Json::array()},
      {"weird key", 1},
      {"dotted.key", "v"},
      {"model",
       {{"type", "ResNet"},
        {"backbone", {{"depth", 18}, {"scale", 0.30000000000000004}, {"empty", Json::object()}}}}},
      {"only_tables", {{"inner", {{"x", 1}}}}},
      {"stages",
       {{{"k", 1}, {"sub", {{"z", 2}}}, {"inner", {{{"q", 1}}, {{"q", 2}}}}}, {{"k", 2}}}},
      {"empty", Json::object()},
  };
  std::string text = razor::to_toml(tree);
  INFO(text);
  Config back = razor::parse_config_text(text, "printed");
  CHECK(back.tree == tree);
  CHECK(back.tree["one"].is_number_float());
  CHECK(back.tree["count"].is_number_integer());
  CHECK(back.tree["huge"].get<double>() == 1e300);
  CHECK(back.tree["model"]["backbone"]["scale"].get<double>() == 0.30000000000000004);

  CHECK_THAT(text, Catch::Contains("lr = 0.1\n"));
  CHECK_THAT(text, Catch::Contains("weight_decay = 5e-4\n"));
  CHECK_THAT(text, Catch::Contains("one = 1.0\n"));
  CHECK_THAT(text, Catch::Contains("\"weird key\" = 1\n"));
  CHECK_THAT(text, Catch::Contains("[model.backbone.empty]\n"));
  CHECK_THAT(text, Catch::Contains("[[stages]]\n"));
  CHECK_THAT(text, Catch::Contains("[[stages.inner]]\n"));
  CHECK_THAT(text, Catch::Contains("[stages.sub]\n"));
  CHECK_THAT(text, Catch::Contains("[empty]\n"));
  CHECK_THAT(text, Catch::Contains("mixed = [1, { a = 1 }]\n"));

  // A loaded config reads back with the same values; only root scalars move up front.
  Config loaded = razor::load_config(config_path("inherit/child.toml"));
  Json reread = razor::parse_config_text(razor::to_toml(loaded.tree)).tree;
  CHECK(nlohmann::json::parse(reread.dump()) == nlohmann::json::parse(loaded.tree.dump()));
  CHECK(reread.begin().key() == "seed");

  CHECK_THROWS_AS(razor::to_toml(Json{{"x", nullptr}}), razor::Error);
}

TEST_CASE("a config read from a FIFO takes its _base_ paths from the working directory",
          "[config]") {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_dir("fifo");
  std::ofstream(dir / "base.toml") << "seed = 1\n[model]\ntype = \"ResNet\"\ndepth = 18\n";
  fs::create_directories(dir / "pipes");
  const std::string fifo = (dir / "pipes" / "config.toml").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);

  WorkingDirectory cwd(dir);
  std::thread writer(write_fifo, fifo, kStreamConfig);
  Config config;
  std::string failure;
  try {
    config = razor::load_config(fifo);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  writer.join();
  INFO(failure);
  REQUIRE(failure.empty());
  CHECK(config.tree == Json{{"seed", 7}, {"model", {{"type", "ResNet"}, {"depth", 20}}}});
  CHECK(config.file == fifo);
  CHECK(config.origins.at("model.type") == (dir / "base.toml").string());
  CHECK(config.origins.at("model.depth") == fifo);
}

TEST_CASE("a config read from /dev/stdin (a pipe) loads", "[config]") {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_dir("stdin");
  std::ofstream(dir / "base.toml") << "seed = 1\n[model]\ntype = \"ResNet\"\ndepth = 18\n";
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const std::string text = kStreamConfig;
  // The text fits in the pipe's buffer: write it all, close, and let the loader read EOF.
  REQUIRE(::write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fds[1]);
  const int saved_stdin = ::dup(0);
  REQUIRE(saved_stdin >= 0);
  REQUIRE(::dup2(fds[0], 0) == 0);
  ::close(fds[0]);

  std::string failure;
  Config config;
  {
    WorkingDirectory cwd(dir);
    try {
      config = razor::load_config("/dev/stdin");
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  ::dup2(saved_stdin, 0);
  ::close(saved_stdin);
  INFO(failure);
  REQUIRE(failure.empty());
  CHECK(config.tree == Json{{"seed", 7}, {"model", {{"type", "ResNet"}, {"depth", 20}}}});
  CHECK(config.origins.at("model.type") == (dir / "base.toml").string());
}

TEST_CASE("an override that opens an array, a table or a string but does not parse is an error",
          "[config]") {
  Config config = razor::parse_config_text("[model.backbone]\ndepth = 18\n");
  std::string message =
      config_error_of([&] { razor::apply_overrides(config, {"model.backbone.depth=[1,"}); });
  CHECK_THAT(message, Catch::StartsWith("--cfg-options model.backbone.depth: \"[1,\"") &&
                          Catch::Contains("an array"));
  message = config_error_of([&] { razor::apply_overrides(config, {"x={a="}); });
  CHECK_THAT(message, Catch::StartsWith("--cfg-options x: \"{a=\"") &&
                          Catch::Contains("an inline table"));
  message = config_error_of([&] { razor::apply_overrides(config, {"work_dir=\"runs/a"}); });
  CHECK_THAT(message, Catch::StartsWith("--cfg-options work_dir: ") && Catch::Contains("a string"));
  message = config_error_of([&] { razor::apply_overrides(config, {"x=[1]\ny = 2"}); });
  CHECK_THAT(message, Catch::Contains("--cfg-options x") && Catch::Contains("not one TOML value"));
  // Nothing was set by the failed overrides.
  CHECK(config.tree == Json{{"model", {{"backbone", {{"depth", 18}}}}}});

  // Bare words are still strings, and well-formed values still parse.
  razor::apply_overrides(config, {"a=Adam", "b=two words", "c= [1, 2]", "d=1979-05-27"});
  CHECK(config.tree["a"] == "Adam");
  CHECK(config.tree["b"] == "two words");
  CHECK(config.tree["c"] == Json({1, 2}));
  CHECK(config.tree["d"] == "1979-05-27");
}
