#include "engine/config.h"
namespace razor { std::string Config::origin_of(const std::string&) const { return file; } }
