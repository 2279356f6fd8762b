// DenoiserBackend: what the engine needs from a compute backend, one transformer pass at a time.
//
// A pass takes named tensors and returns named tensors (python/omniforcing_rt/compile/
// denoiser_pass.py defines both lists and their shapes); the engine owns everything stateful
// (pools, tables, noise, schedule) and hands the backend plain tensors. The first backend is
// AotiBackend (csrc/backends/aoti_backend.cc): an AOTInductor .pt2 package run through
// torch::inductor::AOTIModelPackageLoader on CPU or CUDA. The interface is tensor-level, so this
// header (unlike the framework-free ones) includes ATen's Tensor; a TensorRT backend would
// implement the same three methods (design.md §9).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "ofrt/config.h"

namespace ofrt {

//! One denoiser pass (see the file comment).
class DenoiserBackend {
 public:
  virtual ~DenoiserBackend() = default;

  //! Backend name for messages ("aoti").
  virtual std::string name() const = 0;
  //! Runs one pass: `inputs` in manifest.input_names order, outputs in output_names order.
  //! BackendError on failure (the engine then aborts the stream, not the engine).
  virtual std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) = 0;
};

//! The backend `config.backend` names, loaded from `package_dir` (manifest.package_file).
//! UnsupportedError for an unknown backend or a package built for another device/dtype.
std::unique_ptr<DenoiserBackend> make_denoiser_backend(const EngineConfig& config,
                                                       const ModelManifest& manifest,
                                                       const std::string& package_dir);

}  // namespace ofrt
