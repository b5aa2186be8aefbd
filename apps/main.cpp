#include "apps/cli.h"

int main(int argc, char** argv) {
  return razor::run_cli(std::vector<std::string>(argv + 1, argv + argc));
}
