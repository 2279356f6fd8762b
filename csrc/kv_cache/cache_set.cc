// KvPoolTensors; see cache_set.h.
// Per-operator ATen headers (a fraction of ATen.h's compile time).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS

#include "kv_cache/cache_set.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>

#include <string>
#include <vector>

#include "common/check.h"

namespace ofrt {
namespace {
// CACHE_ORDER of compile/denoiser_pass.py; the first two hold video tokens.
const char* const kCacheOrder[] = {"video_self", "v2a", "audio_self", "a2v"};
}  // namespace

KvPoolTensors::KvPoolTensors(const KvPlan& plan, const ModelManifest& manifest,
                             at::ScalarType dtype, const at::Device& device) {
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int i = 0; i < 4; ++i) {
    const int64_t pages = i < 2 ? plan.video_pool_pages : plan.audio_pool_pages;
    const int64_t dim = manifest.cache_dims.at(kCacheOrder[i]);
    for (int kv = 0; kv < 2; ++kv) {
      pools_.push_back(
          at::zeros({manifest.num_layers, pages, plan.video.page_size_tokens, dim}, options));
    }
  }
}

void KvPoolTensors::append(const std::vector<at::Tensor>& new_kv, const at::Tensor& video_slots,
                           const at::Tensor& audio_slots) {
  OFRT_CHECK(new_kv.size() == pools_.size(), InputError,
             "append needs " << pools_.size() << " tensors, got " << new_kv.size());
  for (size_t i = 0; i < pools_.size(); ++i) {
    const at::Tensor& pool = pools_[i];
    const at::Tensor& slots = i < 4 ? video_slots : audio_slots;
    OFRT_CHECK(new_kv[i].size(1) == slots.size(0), InputError,
               "cache " << kCacheOrder[i / 2] << ": " << new_kv[i].size(1) << " new tokens for "
                        << slots.size(0) << " slots");
    pool.view({pool.size(0), pool.size(1) * pool.size(2), pool.size(3)})
        .index_copy_(1, slots, new_kv[i].to(pool.scalar_type()));
  }
}

int64_t KvPoolTensors::nbytes() const {
  int64_t total = 0;
  for (const at::Tensor& t : pools_) total += static_cast<int64_t>(t.nbytes());
  return total;
}

}  // namespace ofrt
