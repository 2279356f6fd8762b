// C++ -> Python error translation: each ofrt::Error subclass is raised as the EXISTING class of
// the same name in omniforcing_rt.errors (so `except ConfigError` works whichever layer threw).
// ConfigError / UnsupportedError are constructed with (message, problems / reasons), which lets
// the Python constructor fill .problems / .reasons and format str(e) itself.
#include "ofrt/errors.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <exception>
#include <string>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace ofrt::bindings {
namespace {

constexpr const char* kErrorsModule = "omniforcing_rt.errors";

constexpr const char* kErrorClassNames[] = {
    "OfrtError",       "ConfigError",        "InputError",
    "CheckpointError", "UnsupportedError",   "CacheCapacityError",
    "BackendError",    "StreamAbortedError", "EngineDeadError",
};

// Raises omniforcing_rt.errors.<class_name>(*args). Called with the GIL held (translators are).
// If the Python class cannot be built (e.g. during interpreter shutdown), falls back to a
// RuntimeError carrying the original text rather than losing it.
void raise_as(const char* class_name, const py::tuple& args, const char* what) {
  try {
    py::object cls = py::module_::import(kErrorsModule).attr(class_name);
    py::object instance = cls(*args);
    PyErr_SetObject(cls.ptr(), instance.ptr());
  } catch (py::error_already_set& e) {
    const std::string text =
        std::string(what) + " [" + class_name + " could not be raised: " + e.what() + "]";
    PyErr_SetString(PyExc_RuntimeError, text.c_str());
  }
}

void translate(std::exception_ptr p) {
  if (!p) return;
  try {
    std::rethrow_exception(p);
  } catch (const ConfigError& e) {
    raise_as("ConfigError", py::make_tuple(e.message(), py::cast(e.problems())), e.what());
  } catch (const UnsupportedError& e) {
    raise_as("UnsupportedError", py::make_tuple(e.message(), py::cast(e.reasons())), e.what());
  } catch (const InputError& e) {
    raise_as("InputError", py::make_tuple(e.what()), e.what());
  } catch (const CheckpointError& e) {
    raise_as("CheckpointError", py::make_tuple(e.what()), e.what());
  } catch (const CacheCapacityError& e) {
    raise_as("CacheCapacityError", py::make_tuple(e.what()), e.what());
  } catch (const BackendError& e) {
    raise_as("BackendError", py::make_tuple(e.what()), e.what());
  } catch (const StreamAbortedError& e) {
    raise_as("StreamAbortedError", py::make_tuple(e.what()), e.what());
  } catch (const EngineDeadError& e) {
    raise_as("EngineDeadError", py::make_tuple(e.what()), e.what());
  } catch (const Error& e) {
    raise_as("OfrtError", py::make_tuple(e.what()), e.what());
  }
  // Anything else propagates to pybind11's own translators (std::overflow_error -> OverflowError,
  // std::runtime_error -> RuntimeError, ...).
}

}  // namespace

void register_errors(py::module_& m) {
  py::module_ errors = py::module_::import(kErrorsModule);
  for (const char* name : kErrorClassNames) m.attr(name) = errors.attr(name);
  py::register_exception_translator(&translate);
}

}  // namespace ofrt::bindings
