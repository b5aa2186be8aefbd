#pragma once
// Small string helpers shared by error messages: nearest-name suggestions and joining.
#include <string>
#include <vector>

namespace razor {

/// Levenshtein edit distance.
size_t edit_distance(const std::string& a, const std::string& b);

/// The candidate closest to `name`, or "" if none is reasonably close.
std::string nearest(const std::string& name, const std::vector<std::string>& candidates);

/// `; did you mean "x"?` or "" when nothing is close.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& parts, const std::string& sep);

/// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string join_key(const std::string& prefix, const std::string& key);

std::vector<std::string> split(const std::string& text, char sep);

/// `value` with `digits` digits after the point ("88.25").
std::string format_number(double value, int digits);

}  // namespace razor
