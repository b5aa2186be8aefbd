#include <catch2/catch.hpp>

#include "engine/args.h"

using razor::Args;
using razor::Json;

TEST_CASE("Args reads typed values with defaults") {
  Json table = {{"depth", 20}, {"lr", 0.1}, {"name", "x"}, {"flags", {1, 2}}};
  Args args = Args::of(table, "model");
  CHECK(args.get<int>("depth", 0) == 20);
  CHECK(args.get<double>("lr", 0.0) == Approx(0.1));
  CHECK(args.get<double>("depth", 0.0) == Approx(20.0));
  CHECK(args.get("name", "y") == "x");
  CHECK(args.get<std::vector<int64_t>>("flags", {}) == std::vector<int64_t>{1, 2});
  CHECK(args.get<int>("absent", 7) == 7);
  CHECK_NOTHROW(args.finish());
}

TEST_CASE("Args reports wrong types and unknown keys with the nearest valid key") {
  Json table = {{"depth", "twenty"}, {"widht", 2}};
  Args args = Args::of(table, "model.backbone");
  CHECK_THROWS_WITH(args.get<int>("depth", 0),
                    Catch::Contains("model.backbone.depth") && Catch::Contains("integer"));
  (void)args.get<int>("width", 1);
  CHECK_THROWS_WITH(args.finish(), Catch::Contains("model.backbone.widht") &&
                                       Catch::Contains("did you mean \"width\""));
}
