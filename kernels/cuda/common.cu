// SPDX-License-Identifier: Apache-2.0
#include "common.cuh"

extern "C" const char* ofrt_error_string(int error) { return cudaGetErrorString(static_cast<cudaError_t>(error)); }
