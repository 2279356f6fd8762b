// SPDX-License-Identifier: Apache-2.0
// TensorRT plugin `ofrt::PagedBlockCausalAttention` (IPluginV3, TensorRT >= 10): the paged
// block-causal attention of kernels/cuda, called through paged_attention_launch.cuh.
//
// Compiled only where TensorRT's headers exist (`__has_include(<NvInferRuntime.h>)`) and the
// CMake option OFRT_ENABLE_TENSORRT is ON; elsewhere this translation unit is empty, so the
// default build never needs TensorRT. It has not been compiled against TensorRT on the
// development machine (TensorRT cannot be installed there, toolchain.md pitfall 7): build and
// run it with the recipe in export/README.md on a machine that has TensorRT.
//
// Attributes: num_q_heads, num_kv_heads, head_dim, page_size (int32), sm_scale (float32, <= 0
// means 1/sqrt(head_dim)). I/O: see paged_attention_launch.cuh.
#if defined(OFRT_ENABLE_TENSORRT) && __has_include(<NvInferRuntime.h>)

#include <NvInferRuntime.h>
#include <NvInferRuntimePlugin.h>

#include <cstring>
#include <string>
#include <vector>

#include "paged_attention_launch.cuh"

namespace ofrt::trt {
namespace nv = nvinfer1;

constexpr char const* kName = "PagedBlockCausalAttention";
constexpr char const* kVersion = "1";
constexpr char const* kNamespace = "ofrt";

struct Attrs {
  int32_t q_heads = 0, kv_heads = 0, head_dim = 0, page_size = 0;
  float sm_scale = 0.f;
};

class PagedAttentionPlugin : public nv::IPluginV3,
                             public nv::IPluginV3OneCore,
                             public nv::IPluginV3OneBuild,
                             public nv::IPluginV3OneRuntime {
 public:
  explicit PagedAttentionPlugin(Attrs a) : a_(a) { fields(); }

  // IPluginV3
  nv::IPluginCapability* getCapabilityInterface(nv::PluginCapabilityType t) noexcept override {
    if (t == nv::PluginCapabilityType::kBUILD) return static_cast<nv::IPluginV3OneBuild*>(this);
    if (t == nv::PluginCapabilityType::kRUNTIME) return static_cast<nv::IPluginV3OneRuntime*>(this);
    return static_cast<nv::IPluginV3OneCore*>(this);
  }
  nv::IPluginV3* clone() noexcept override { return new PagedAttentionPlugin(a_); }

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override { return kName; }
  char const* getPluginVersion() const noexcept override { return kVersion; }
  char const* getPluginNamespace() const noexcept override { return kNamespace; }

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override { return 1; }
  int32_t getOutputDataTypes(nv::DataType* out, int32_t, nv::DataType const* in, int32_t) const noexcept override {
    out[0] = in[0];
    return 0;
  }
  int32_t getOutputShapes(nv::DimsExprs const* in, int32_t, nv::DimsExprs const*, int32_t, nv::DimsExprs* out,
                          int32_t, nv::IExprBuilder&) noexcept override {
    out[0] = in[0];  // [Tq, Hq*D]
    return 0;
  }
  bool supportsFormatCombination(int32_t pos, nv::DynamicPluginTensorDesc const* io, int32_t, int32_t) noexcept override {
    nv::PluginTensorDesc const& d = io[pos].desc;
    if (d.format != nv::TensorFormat::kLINEAR) return false;
    if (pos == 5 || pos == 6) return d.type == nv::DataType::kINT32;  // page_table, cache_len
    bool half = d.type == nv::DataType::kHALF || d.type == nv::DataType::kBF16;
    return half && (pos == 0 || d.type == io[0].desc.type);
  }
  int32_t configurePlugin(nv::DynamicPluginTensorDesc const*, int32_t, nv::DynamicPluginTensorDesc const*,
                          int32_t) noexcept override {
    return 0;
  }
  size_t getWorkspaceSize(nv::DynamicPluginTensorDesc const*, int32_t, nv::DynamicPluginTensorDesc const*,
                          int32_t) const noexcept override {
    return ofrt_trt_attention_workspace_bytes();
  }

  // IPluginV3OneRuntime
  int32_t onShapeChange(nv::PluginTensorDesc const*, int32_t, nv::PluginTensorDesc const*, int32_t) noexcept override {
    return 0;
  }
  int32_t enqueue(nv::PluginTensorDesc const* in, nv::PluginTensorDesc const*, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
    OfrtTrtAttentionShape s{};
    s.q_tokens = static_cast<int32_t>(in[0].dims.d[0]);
    s.kv_tokens = static_cast<int32_t>(in[1].dims.d[0]);
    s.q_heads = a_.q_heads;
    s.kv_heads = a_.kv_heads;
    s.head_dim = a_.head_dim;
    s.num_pages = static_cast<int32_t>(in[3].dims.d[0]);
    s.page_size = a_.page_size;
    s.max_pages = static_cast<int32_t>(in[5].dims.d[0]);
    s.dtype = in[0].type == nv::DataType::kBF16 ? kOfrtBFloat16 : kOfrtFloat16;
    s.sm_scale = a_.sm_scale;
    cudaError_t err = ofrt_trt_attention_enqueue(
        &s, inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], static_cast<int32_t const*>(inputs[5]),
        static_cast<int32_t const*>(inputs[6]), outputs[0], workspace, stream);
    return err == cudaSuccess ? 0 : -1;
  }
  nv::IPluginV3* attachToContext(nv::IPluginResourceContext*) noexcept override { return clone(); }
  nv::PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &fc_; }

 private:
  void fields() {
    f_ = {nv::PluginField("num_q_heads", &a_.q_heads, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("num_kv_heads", &a_.kv_heads, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("head_dim", &a_.head_dim, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("page_size", &a_.page_size, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("sm_scale", &a_.sm_scale, nv::PluginFieldType::kFLOAT32, 1)};
    fc_.nbFields = static_cast<int32_t>(f_.size());
    fc_.fields = f_.data();
  }
  Attrs a_;
  std::vector<nv::PluginField> f_;
  nv::PluginFieldCollection fc_{};
};

class PagedAttentionCreator : public nv::IPluginCreatorV3One {
 public:
  PagedAttentionCreator() {
    f_ = {nv::PluginField("num_q_heads", nullptr, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("num_kv_heads", nullptr, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("head_dim", nullptr, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("page_size", nullptr, nv::PluginFieldType::kINT32, 1),
          nv::PluginField("sm_scale", nullptr, nv::PluginFieldType::kFLOAT32, 1)};
    fc_.nbFields = static_cast<int32_t>(f_.size());
    fc_.fields = f_.data();
  }
  char const* getPluginName() const noexcept override { return kName; }
  char const* getPluginVersion() const noexcept override { return kVersion; }
  char const* getPluginNamespace() const noexcept override { return kNamespace; }
  nv::PluginFieldCollection const* getFieldNames() noexcept override { return &fc_; }
  nv::IPluginV3* createPlugin(char const*, nv::PluginFieldCollection const* fc, nv::TensorRTPhase) noexcept override {
    Attrs a;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
      std::string n = fc->fields[i].name;
      void const* d = fc->fields[i].data;
      if (n == "num_q_heads") std::memcpy(&a.q_heads, d, 4);
      if (n == "num_kv_heads") std::memcpy(&a.kv_heads, d, 4);
      if (n == "head_dim") std::memcpy(&a.head_dim, d, 4);
      if (n == "page_size") std::memcpy(&a.page_size, d, 4);
      if (n == "sm_scale") std::memcpy(&a.sm_scale, d, 4);
    }
    if (a.q_heads <= 0 || a.kv_heads <= 0 || a.head_dim <= 0 || a.page_size <= 0) return nullptr;
    return new PagedAttentionPlugin(a);
  }

 private:
  std::vector<nv::PluginField> f_;
  nv::PluginFieldCollection fc_{};
};

REGISTER_TENSORRT_PLUGIN(PagedAttentionCreator);

}  // namespace ofrt::trt

#endif  // OFRT_ENABLE_TENSORRT && __has_include(<NvInferRuntime.h>)
