// AotiBackend: runs the denoiser pass compiled by AOTInductor (python/omniforcing_rt/compile/
// export.py) through torch::inductor::AOTIModelPackageLoader. One loader per engine; the engine
// calls run() from its single worker thread. [A runner pool (num_runners > 1) only helps when
// several threads run passes concurrently, which the engine does not do.]
#include <c10/util/Exception.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ofrt/backend.h"
#include "ofrt/errors.h"

namespace ofrt {
namespace {

class AotiBackend final : public DenoiserBackend {
 public:
  AotiBackend(const std::string& package_path, c10::DeviceIndex device_index) {
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          package_path, "model", /*run_single_threaded=*/false, /*num_runners=*/1, device_index);
    } catch (const c10::Error& e) {
      throw BackendError("aoti: cannot load " + package_path + ": " + e.what_without_backtrace());
    }
  }

  std::string name() const override { return "aoti"; }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) override {
    // The compiled kernels index inputs with the example's (contiguous) strides and do not check
    // them: a strided view (e.g. a patchified single-frame block) would be read wrongly.
    std::vector<at::Tensor> dense;
    dense.reserve(inputs.size());
    for (const at::Tensor& t : inputs) dense.push_back(t.contiguous());
    try {
      return loader_->run(dense);
    } catch (const c10::Error& e) {
      throw BackendError(std::string("aoti: pass failed: ") + e.what_without_backtrace());
    }
  }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

std::string device_type(const std::string& device) { return device.substr(0, device.find(':')); }

}  // namespace

std::unique_ptr<DenoiserBackend> make_denoiser_backend(const EngineConfig& config,
                                                       const ModelManifest& manifest,
                                                       const std::string& package_dir) {
  std::vector<std::string> reasons;
  if (config.backend != "aoti") reasons.push_back("unknown backend '" + config.backend + "'");
  if (device_type(manifest.device) != device_type(config.device)) {
    reasons.push_back("the package was compiled for " + manifest.device + ", the engine runs on " +
                      config.device);
  }
  if (manifest.dtype != config.dtype) {
    reasons.push_back("the package was compiled for " + manifest.dtype + ", the engine uses " +
                      config.dtype);
  }
  if (!reasons.empty()) throw UnsupportedError("cannot create the denoiser backend", reasons);
  const c10::Device device(config.device);
  return std::make_unique<AotiBackend>(package_dir + "/" + manifest.package_file,
                                       device.has_index() ? device.index() : -1);
}

}  // namespace ofrt
