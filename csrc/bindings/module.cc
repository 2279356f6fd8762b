// The pybind11 module omniforcing_rt._C (design.md §4): one module, one file per concept.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace ofrt::bindings {
//! Engine, StreamChunk and the engine's _testing hooks (engine.cc, engine_testing.cc).
void register_engine(py::module_& m);
}  // namespace ofrt::bindings

PYBIND11_MODULE(_C, m) {
  m.doc() = R"doc(omniforcing_rt native runtime.

The framework-free C++ core of the streaming engine. Names match the Python modules they
mirror (pipeline/layout.py, pipeline/schedule.py, model/positions.py, errors.py); C++ errors
arrive as the classes of omniforcing_rt.errors.)doc";
  ofrt::bindings::register_errors(m);
  ofrt::bindings::register_block_schedule(m);
  ofrt::bindings::register_testing(m);
  ofrt::bindings::register_engine(m);
}
