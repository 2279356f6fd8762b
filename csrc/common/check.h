// OFRT_CHECK / OFRT_THROW: throw an ofrt::Error subclass whose message names file:line.
//
//   OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
//   OFRT_THROW(BackendError, "cudaMemcpyAsync failed: " << cudaGetErrorString(err));
//   -> ofrt::InputError("count must be >= 0, got -1 (check `count >= 0` failed at
//      csrc/runtime/block_schedule.cc:42)")
//
// The message argument is streamed into an std::ostringstream, so any `<<`-able values can be
// mixed in. The error type is a bare name inside namespace ofrt (ConfigError, InputError, ...)
// and must derive from ofrt::Error. Use these for internal invariants and argument checks.
// Validation that must match the Python side word for word (ConfigError problem lists) builds
// its messages explicitly instead, since a file:line suffix would differ from Python's.
#pragma once

#include <sstream>
#include <string>
#include <type_traits>

#include "ofrt/errors.h"

namespace ofrt::detail {

//! "<message> (check `<condition>` failed at csrc/<path>:<line>)", or "<message> (at
//! csrc/<path>:<line>)" when condition is null (OFRT_THROW).
std::string check_message(const char* condition, const std::string& message, const char* file,
                          int line);

}  // namespace ofrt::detail

#define OFRT_THROW_AT_(ErrorType, condition_text, msg)                        \
  do {                                                                        \
    static_assert(std::is_base_of_v<::ofrt::Error, ::ofrt::ErrorType>,        \
                  "OFRT_CHECK: " #ErrorType " must derive from ofrt::Error"); \
    std::ostringstream ofrt_check_stream_;                                    \
    ofrt_check_stream_ << msg;                                                \
    throw ::ofrt::ErrorType(::ofrt::detail::check_message(                    \
        condition_text, ofrt_check_stream_.str(), __FILE__, __LINE__));       \
  } while (false)

//! Throws ofrt::ErrorType(msg + condition + file:line) when `cond` is false.
#define OFRT_CHECK(cond, ErrorType, msg)                \
  do {                                                  \
    if (!(cond)) OFRT_THROW_AT_(ErrorType, #cond, msg); \
  } while (false)

//! Throws ofrt::ErrorType(msg + file:line) unconditionally.
#define OFRT_THROW(ErrorType, msg) OFRT_THROW_AT_(ErrorType, nullptr, msg)
