#include "engine/registry.h"
namespace razor { void register_algorithms() {} }
