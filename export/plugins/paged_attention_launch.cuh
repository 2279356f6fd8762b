// SPDX-License-Identifier: Apache-2.0
//! TensorRT-free launch glue of the paged block-causal attention plugin.
//!
//! The plugin node `ofrt::PagedBlockCausalAttention` (one stream, one layer, one attention) has
//!   inputs   q [Tq, Hq*D], k_new [Tk, Hk*D], v_new [Tk, Hk*D],
//!            k_cache [P, page_size, Hk*D], v_cache [P, page_size, Hk*D],
//!            page_table [max_pages] int32 (logical page order), cache_len [1] int32
//!   output   out [Tq, Hq*D]
//! and its semantics are those of kernels/cuda/block_causal_attention.cuh with batch 1: every
//! query sees the first cache_len history tokens through the page table, then all of the block's
//! own keys. This file turns the plugin's tensors into OfrtPagedAttentionParams and calls the
//! kernel; it includes no TensorRT header, so it is compile-checked with nvcc where TensorRT is
//! absent (tests/export/test_trt.py).
#pragma once

#include <stdint.h>

#include "block_causal_attention.cuh"

#ifdef __cplusplus
extern "C" {
#endif

//! Shapes and attributes of one plugin call (everything but the data pointers).
typedef struct OfrtTrtAttentionShape {
  int32_t q_tokens;    //!< Tq
  int32_t kv_tokens;   //!< Tk
  int32_t q_heads;     //!< Hq
  int32_t kv_heads;    //!< Hk
  int32_t head_dim;    //!< D
  int32_t num_pages;   //!< P
  int32_t page_size;   //!< tokens per page
  int32_t max_pages;   //!< length of page_table
  int32_t dtype;       //!< OfrtDtype
  float sm_scale;      //!< softmax scale (<= 0: 1/sqrt(D))
} OfrtTrtAttentionShape;

//! Bytes of device workspace a call needs (cu_seqlens_q, cu_seqlens_kv: 2 x 2 int32, aligned).
size_t ofrt_trt_attention_workspace_bytes(void);

//! Fill `params` from the plugin's tensors; returns cudaErrorInvalidValue for inconsistent shapes.
cudaError_t ofrt_trt_attention_params(const OfrtTrtAttentionShape* shape, const void* q, const void* k_new,
                                      const void* v_new, const void* k_cache, const void* v_cache,
                                      const int32_t* page_table, const int32_t* cache_len, void* out,
                                      int32_t* workspace, OfrtPagedAttentionParams* params);

//! Write the cu_seqlens into `workspace` (async on `stream`) and enqueue the kernel.
cudaError_t ofrt_trt_attention_enqueue(const OfrtTrtAttentionShape* shape, const void* q, const void* k_new,
                                       const void* v_new, const void* k_cache, const void* v_cache,
                                       const int32_t* page_table, const int32_t* cache_len, void* out,
                                       void* workspace, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
