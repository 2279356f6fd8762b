// Registration entry points of the pybind11 module omniforcing_rt._C, one per concept file.
#pragma once

#include <pybind11/pybind11.h>

namespace ofrt::bindings {

//! Translates every ofrt::Error subclass into its omniforcing_rt.errors class and re-exports
//! those classes as attributes of `m` (errors.cc).
void register_errors(pybind11::module_& m);

//! LayoutKind, BlockSpec, BlockLayout, media constants, time bounds, sigmas (block_schedule.cc).
void register_block_schedule(pybind11::module_& m);

//! The _C._testing submodule: test-only hooks into host logic (testing.cc).
void register_testing(pybind11::module_& m);

}  // namespace ofrt::bindings
