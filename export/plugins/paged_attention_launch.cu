// SPDX-License-Identifier: Apache-2.0
// Launch glue of the paged attention plugin (see paged_attention_launch.cuh): no TensorRT here.
#include <math.h>

#include "paged_attention_launch.cuh"

namespace {

// cu_seqlens of a batch of one: {0, Tq} and {0, Tk}, written by a one-thread kernel so the
// enqueue stays asynchronous (no host-to-device copy from pageable memory).
__global__ void write_cu_seqlens(int32_t* ws, int32_t q_tokens, int32_t kv_tokens) {
  ws[0] = 0;
  ws[1] = q_tokens;
  ws[2] = 0;
  ws[3] = kv_tokens;
}

}  // namespace

extern "C" size_t ofrt_trt_attention_workspace_bytes(void) { return 256; }

extern "C" cudaError_t ofrt_trt_attention_params(const OfrtTrtAttentionShape* s, const void* q, const void* k_new,
                                                 const void* v_new, const void* k_cache, const void* v_cache,
                                                 const int32_t* page_table, const int32_t* cache_len, void* out,
                                                 int32_t* workspace, OfrtPagedAttentionParams* p) {
  if (s == nullptr || p == nullptr || workspace == nullptr) return cudaErrorInvalidValue;
  if (s->q_heads <= 0 || s->kv_heads <= 0 || s->q_heads % s->kv_heads != 0) return cudaErrorInvalidValue;
  if (s->head_dim <= 0 || s->page_size <= 0 || s->q_tokens < 0 || s->kv_tokens < 0) return cudaErrorInvalidValue;
  const int64_t d = s->head_dim, q_row = int64_t(s->q_heads) * d, kv_row = int64_t(s->kv_heads) * d;
  *p = OfrtPagedAttentionParams{};
  p->q = q;
  p->k_new = k_new;
  p->v_new = v_new;
  p->k_cache = k_cache;
  p->v_cache = v_cache;
  p->page_table = page_table;
  p->cu_seqlens_q = workspace;
  p->cu_seqlens_kv = workspace + 2;
  p->cache_lens = cache_len;
  p->out = out;
  p->q_stride_token = q_row;
  p->q_stride_head = d;
  p->k_new_stride_token = kv_row;
  p->k_new_stride_head = d;
  p->v_new_stride_token = kv_row;
  p->v_new_stride_head = d;
  p->k_cache_stride_page = int64_t(s->page_size) * kv_row;
  p->k_cache_stride_slot = kv_row;
  p->k_cache_stride_head = d;
  p->v_cache_stride_page = int64_t(s->page_size) * kv_row;
  p->v_cache_stride_slot = kv_row;
  p->v_cache_stride_head = d;
  p->page_table_stride = s->max_pages;
  p->out_stride_token = q_row;
  p->out_stride_head = d;
  p->batch = 1;
  p->q_heads = s->q_heads;
  p->kv_heads = s->kv_heads;
  p->head_dim = s->head_dim;
  p->page_size = s->page_size;
  p->max_seqlen_q = s->q_tokens;
  p->sm_scale = s->sm_scale > 0.f ? s->sm_scale : 1.f / sqrtf(float(s->head_dim));
  p->dtype = s->dtype;
  return cudaSuccess;
}

extern "C" cudaError_t ofrt_trt_attention_enqueue(const OfrtTrtAttentionShape* s, const void* q, const void* k_new,
                                                  const void* v_new, const void* k_cache, const void* v_cache,
                                                  const int32_t* page_table, const int32_t* cache_len, void* out,
                                                  void* workspace, cudaStream_t stream) {
  OfrtPagedAttentionParams p;
  int32_t* ws = static_cast<int32_t*>(workspace);
  cudaError_t err = ofrt_trt_attention_params(s, q, k_new, v_new, k_cache, v_cache, page_table, cache_len, out, ws, &p);
  if (err != cudaSuccess) return err;
  write_cu_seqlens<<<1, 1, 0, stream>>>(ws, s->q_tokens, s->kv_tokens);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  return ofrt_block_causal_attention_paged(&p, stream);
}
