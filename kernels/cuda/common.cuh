// SPDX-License-Identifier: Apache-2.0
//! Shared definitions of the framework-agnostic kernels in kernels/cuda.
//!
//! Every kernel here takes raw device pointers and a cudaStream_t, never a framework tensor, so
//! the TensorRT plugin, the optional torch ops and the C++ runtime can all call it. Launchers are
//! `extern "C"`, validate their arguments before touching the device, and return cudaError_t:
//! cudaErrorInvalidValue for a bad argument, cudaErrorNotSupported for an unsupported dtype or
//! head dim, otherwise the launch status. Kernels never throw.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//! Element type of activations and caches.
typedef enum OfrtDtype {
  kOfrtFloat16 = 0,
  kOfrtBFloat16 = 1,
  kOfrtFloat32 = 2,
} OfrtDtype;

#ifdef __cplusplus
}  // extern "C"
#endif

#ifdef __cplusplus
extern "C" {
#endif

//! Human-readable text of a cudaError_t returned by a launcher (for bindings without cudart).
const char* ofrt_error_string(int error);

#ifdef __cplusplus
}  // extern "C"
#endif
