// KvPoolTensors: the device side of the paged KV cache (the host side is include/ofrt/kv_cache.h).
//
// Eight pool tensors, K and V of the four temporal caches, each [L, num_pages, page_size, D]:
// video_self and v2a over the video page numbering, audio_self and a2v over the audio one
// (compile/denoiser_pass.py CACHE_ORDER). Text K/V are not paged: they are per prompt and live
// with the stream. append() is the paged append of one block: index_copy_ of the block's
// [L, T, D] K/V into its in-flight slots of the flattened [L, pages * page_size, D] view.
// [A gather-scatter kernel would fuse the eight copies; on CPU they are a few MB per block.]
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

#include "ofrt/config.h"

namespace ofrt {

class KvPoolTensors {
 public:
  //! Allocates the pools of `plan` (zero-filled) on `device` in `dtype`.
  KvPoolTensors(const KvPlan& plan, const ModelManifest& manifest, at::ScalarType dtype,
                const at::Device& device);

  //! The eight pool tensors in CACHE_ORDER x (k, v) order.
  const std::vector<at::Tensor>& tensors() const { return pools_; }
  //! Writes the block's K/V (`new_kv`, eight [L, T, D] tensors in pool order) into the slots
  //! `video_slots` / `audio_slots` (int64 [T] on the pool device).
  void append(const std::vector<at::Tensor>& new_kv, const at::Tensor& video_slots,
              const at::Tensor& audio_slots);
  //! Bytes held by the pools.
  int64_t nbytes() const;

 private:
  std::vector<at::Tensor> pools_;
};

}  // namespace ofrt
