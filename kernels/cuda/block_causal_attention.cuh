// SPDX-License-Identifier: Apache-2.0
//! block_causal_attention (paged form): attention of one block's queries over the stream's
//! paged history plus the block's own keys/values.
//!
//! Layout (element strides; the last dim of every tensor is contiguous):
//!   q        [Tq, Hq, D]   queries, streams packed varlen by cu_seqlens_q [B + 1]
//!   k_new    [Tkv, Hk, D]  the block's own keys, packed by cu_seqlens_kv [B + 1]; v_new alike
//!   k_cache  [num_pages, page_size, Hk, D] paged history; v_cache alike
//!   page_table [B, max_pages] page ids of each stream in logical order
//!   cache_lens [B]         valid history tokens of each stream
//!   out      [Tq, Hq, D]
//! Every query sees all cache_lens[b] history tokens and all of its block's keys (spec B.2 with
//! a KV cache: no mask). A stream with no keys at all gets output 0. Hq must be a multiple of Hk.
//! Supported: fp16 / bf16, D in {64, 128}, sm_80 or newer (WMMA tensor cores).
#pragma once

#include <stddef.h>

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

//! Arguments of one paged attention launch.
typedef struct OfrtPagedAttentionParams {
  const void* q;
  const void* k_new;
  const void* v_new;
  const void* k_cache;
  const void* v_cache;
  const int32_t* page_table;
  const int32_t* cu_seqlens_q;
  const int32_t* cu_seqlens_kv;
  const int32_t* cache_lens;
  void* out;
  int64_t q_stride_token, q_stride_head;
  int64_t k_new_stride_token, k_new_stride_head;
  int64_t v_new_stride_token, v_new_stride_head;
  int64_t k_cache_stride_page, k_cache_stride_slot, k_cache_stride_head;
  int64_t v_cache_stride_page, v_cache_stride_slot, v_cache_stride_head;
  int64_t page_table_stride;
  int64_t out_stride_token, out_stride_head;
  int32_t batch;         //!< streams B
  int32_t q_heads;       //!< Hq
  int32_t kv_heads;      //!< Hk
  int32_t head_dim;      //!< D (64 or 128)
  int32_t page_size;     //!< tokens per page
  int32_t max_seqlen_q;  //!< longest query block (sizes the grid; no host sync needed)
  float sm_scale;        //!< softmax scale, usually 1/sqrt(D)
  int32_t dtype;         //!< OfrtDtype: kOfrtFloat16 or kOfrtBFloat16
} OfrtPagedAttentionParams;

//! Dynamic shared memory one CTA needs for `head_dim` (0 if unsupported).
size_t ofrt_block_causal_attention_paged_smem_bytes(int32_t head_dim);

//! sizeof(OfrtPagedAttentionParams), so bindings can check their struct mirror at load time.
size_t ofrt_paged_attention_params_size(void);

//! Enqueue the paged attention on `stream`.
cudaError_t ofrt_block_causal_attention_paged(const OfrtPagedAttentionParams* params, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
