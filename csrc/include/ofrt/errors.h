// The C++ side of the error hierarchy in python/omniforcing_rt/errors.py.
//
// Every exception the runtime throws on purpose derives from ofrt::Error. The classes mirror the
// Python ones one to one, and the bindings (csrc/bindings/errors.cc) translate each into the
// Python class of the same name, so callers catch one set of types whichever layer failed:
//
//   C++                      Python (omniforcing_rt.errors)
//   ofrt::Error              OfrtError
//   ofrt::ConfigError        ConfigError(OfrtError, ValueError)        .problems
//   ofrt::InputError         InputError(OfrtError, ValueError)
//   ofrt::CheckpointError    CheckpointError(OfrtError, ValueError)
//   ofrt::UnsupportedError   UnsupportedError(OfrtError)              .reasons
//   ofrt::CacheCapacityError CacheCapacityError(OfrtError, RuntimeError)
//   ofrt::BackendError       BackendError(OfrtError, RuntimeError)
//   ofrt::StreamAbortedError StreamAbortedError(OfrtError, RuntimeError)
//   ofrt::EngineDeadError    EngineDeadError(OfrtError, RuntimeError)
//
// message() is the text given at construction; what() is the full text, which for ConfigError
// and UnsupportedError appends the problems / reasons exactly as the Python constructors do
// ("message:\n  - p1\n  - p2"). Internal checks use OFRT_CHECK from common/check.h, which adds
// the failed condition and file:line.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace ofrt {

//! Message of a ConfigError built without one (Python: ConfigError(problems=[...])).
inline constexpr const char* kDefaultConfigErrorMessage = "invalid configuration";

// -------------------------------------------------------------------------------------------
// Base
// -------------------------------------------------------------------------------------------

//! Base class of every error thrown deliberately by the runtime (Python OfrtError).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : Error(message, message) {}

  //! The message as given at construction, without appended problems / reasons.
  const std::string& message() const noexcept { return message_; }

 protected:
  //! For subclasses whose what() text differs from the bare message.
  Error(const std::string& message, const std::string& what)
      : std::runtime_error(what), message_(message) {}

 private:
  std::string message_;
};

// -------------------------------------------------------------------------------------------
// Subclasses, one per Python class
// -------------------------------------------------------------------------------------------

//! A configuration is invalid; problems() lists every problem found, not only the first.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message, std::vector<std::string> problems = {});

  const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

//! A call received an argument of the wrong shape, dtype, device or value.
class InputError : public Error {
 public:
  using Error::Error;
};

//! A checkpoint is corrupt, incomplete, or does not match the model it is loaded into.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

//! An architecture, dtype, device or backend is not supported; reasons() says why.
class UnsupportedError : public Error {
 public:
  explicit UnsupportedError(const std::string& message, std::vector<std::string> reasons = {});

  const std::vector<std::string>& reasons() const noexcept { return reasons_; }

 private:
  std::vector<std::string> reasons_;
};

//! A KV cache or page pool request does not fit the configured memory budget.
class CacheCapacityError : public Error {
 public:
  using Error::Error;
};

//! A compute backend (AOTInductor, TensorRT, CUDA) failed.
class BackendError : public Error {
 public:
  using Error::Error;
};

//! One stream ended abnormally (cancelled or failed); the engine is still usable.
class StreamAbortedError : public Error {
 public:
  using Error::Error;
};

//! The engine hit an unrecoverable error and must be recreated.
class EngineDeadError : public Error {
 public:
  using Error::Error;
};

//! "message:\n  - item1\n  - item2" (just "message" when items is empty), as errors.py does.
std::string format_error_list(const std::string& message, const std::vector<std::string>& items);

}  // namespace ofrt
