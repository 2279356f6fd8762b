// omniforcing_rt._C._testing: test-only hooks into the host logic (TensorRT-LLM's
// nanobind/testing pattern). Nothing here is public API; tests/runtime/ uses it to reach C++
// internals that have no production binding (error throwing, formatting helpers, and later
// page tables and the engine's schedule).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "common/check.h"
#include "common/py_format.h"
#include "ofrt/errors.h"

namespace py = pybind11;

namespace ofrt::bindings {
namespace {

// Throws the ofrt error class named `name` (the Python class name) with `message`; `items` are
// the problems of ConfigError or the reasons of UnsupportedError. "std::runtime_error" and
// "std::overflow_error" throw those standard types (they are not ofrt errors).
[[noreturn]] void throw_error(const std::string& name, const std::string& message,
                              const std::vector<std::string>& items) {
  if (name == "OfrtError") throw Error(message);
  if (name == "ConfigError") throw ConfigError(message, items);
  if (name == "InputError") throw InputError(message);
  if (name == "CheckpointError") throw CheckpointError(message);
  if (name == "UnsupportedError") throw UnsupportedError(message, items);
  if (name == "CacheCapacityError") throw CacheCapacityError(message);
  if (name == "BackendError") throw BackendError(message);
  if (name == "StreamAbortedError") throw StreamAbortedError(message);
  if (name == "EngineDeadError") throw EngineDeadError(message);
  if (name == "std::runtime_error") throw std::runtime_error(message);
  if (name == "std::overflow_error") throw std::overflow_error(message);
  OFRT_THROW(InputError, "unknown error class " << py_format::str_repr(name));
}

// OFRT_CHECK(value >= 0, <name>, ...) for each error class the macro is used with.
int64_t check_non_negative(const std::string& name, int64_t value) {
  if (name == "ConfigError") {
    OFRT_CHECK(value >= 0, ConfigError, "value must be >= 0, got " << value);
  } else if (name == "InputError") {
    OFRT_CHECK(value >= 0, InputError, "value must be >= 0, got " << value);
  } else if (name == "BackendError") {
    OFRT_CHECK(value >= 0, BackendError, "value must be >= 0, got " << value);
  } else if (name == "EngineDeadError") {
    OFRT_CHECK(value >= 0, EngineDeadError, "value must be >= 0, got " << value);
  } else {
    OFRT_THROW(InputError, "unknown error class " << py_format::str_repr(name));
  }
  return value;
}

}  // namespace

void register_testing(py::module_& m) {
  py::module_ t = m.def_submodule("_testing", R"doc(Test-only hooks into the C++ host logic.

Not public API: names and behaviour may change with the tests that use them.)doc");

  t.def("throw_error", &throw_error, py::arg("name"), py::arg("message"),
        py::arg("items") = std::vector<std::string>{},
        R"doc(Throw the C++ error class named like the Python one (e.g. "ConfigError").

``items`` are the problems (ConfigError) or reasons (UnsupportedError). "std::runtime_error"
and "std::overflow_error" throw those standard exceptions instead.)doc");
  t.def("check_non_negative", &check_non_negative, py::arg("name"), py::arg("value"),
        R"doc(OFRT_CHECK(value >= 0, <name>, ...): returns value, or throws with file:line.)doc");
  t.def("float_repr", &py_format::float_repr, py::arg("value"),
        "C++ mirror of repr(float) used in error messages.");
  t.def("fixed", &py_format::fixed, py::arg("value"), py::arg("digits"),
        "C++ mirror of f'{value:.{digits}f}' used in error messages.");
  t.def("str_repr", &py_format::str_repr, py::arg("text"),
        "C++ mirror of repr(str) used in error messages.");
  t.def("int_list_repr", &py_format::int_list_repr, py::arg("values"),
        "C++ mirror of repr(list[int]) used in error messages.");
}

}  // namespace ofrt::bindings
