// Out-of-line parts of the error hierarchy (include/ofrt/errors.h) and of OFRT_CHECK.
#include "ofrt/errors.h"

#include <string>
#include <utility>
#include <vector>

#include "common/check.h"

namespace ofrt {

std::string format_error_list(const std::string& message, const std::vector<std::string>& items) {
  if (items.empty()) return message;
  std::string out = message + ":";
  for (const std::string& item : items) out += "\n  - " + item;
  return out;
}

ConfigError::ConfigError(const std::string& message, std::vector<std::string> problems)
    : Error(message, format_error_list(message, problems)), problems_(std::move(problems)) {}

UnsupportedError::UnsupportedError(const std::string& message, std::vector<std::string> reasons)
    : Error(message, format_error_list(message, reasons)), reasons_(std::move(reasons)) {}

namespace detail {

std::string check_message(const char* condition, const std::string& message, const char* file,
                          int line) {
  // Keep the path from "csrc/" on: __FILE__ is absolute in CMake builds.
  std::string path = file;
  const std::string::size_type pos = path.rfind("csrc/");
  if (pos != std::string::npos) path.erase(0, pos);
  std::string out = message.empty() ? std::string("check failed") : message;
  if (condition != nullptr) {
    out += " (check `";
    out += condition;
    out += "` failed at ";
  } else {
    out += " (at ";
  }
  out += path;
  out += ":";
  out += std::to_string(line);
  out += ")";
  return out;
}

}  // namespace detail
}  // namespace ofrt
