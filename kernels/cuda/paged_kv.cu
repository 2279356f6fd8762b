// SPDX-License-Identifier: Apache-2.0
// paged_kv_append: one CTA copies kTokensPerCta rows of one stream, each thread moving whole
// vectors (16, 4 or 1 bytes, the widest that every pointer and stride allows). Rejected
// alternative: one CTA per (token, page) with a memcpy-style loop - fewer threads per byte and a
// launch grid that depends on the page layout instead of on max_seqlen alone.
#include "paged_kv.cuh"

namespace ofrt {
namespace {

constexpr int kThreads = 256;
constexpr int kTokensPerCta = 8;

template <typename VecT>
__global__ void __launch_bounds__(kThreads) paged_kv_append_kernel(const OfrtPagedKvAppendParams p) {
  const int b = blockIdx.y;
  const int32_t t0 = p.cu_seqlens[b];
  const int32_t n = p.cu_seqlens[b + 1] - t0;
  const int32_t tile0 = blockIdx.x * kTokensPerCta;
  if (tile0 >= n) return;
  const int chunks = p.row_bytes / static_cast<int>(sizeof(VecT));
  const int64_t start = p.start_pos[b];
  for (int idx = threadIdx.x; idx < kTokensPerCta * chunks; idx += kThreads) {
    const int32_t tok = tile0 + idx / chunks;
    const int c = idx % chunks;
    if (tok >= n) break;  // idx only grows, so every later idx is past the stream too
    const int64_t pos = start + tok;
    if (pos < 0) continue;
    const int64_t pidx = pos / p.page_size;
    if (pidx >= p.max_pages) continue;
    const int32_t page = p.page_table[b * p.page_table_stride + pidx];
    if (page < 0 || page >= p.num_pages) continue;
    const int64_t slot = pos % p.page_size;
    const int64_t row = static_cast<int64_t>(t0) + tok;
    const char* ks = static_cast<const char*>(p.k_new) + row * p.k_new_stride_token;
    const char* vs = static_cast<const char*>(p.v_new) + row * p.v_new_stride_token;
    char* kd = static_cast<char*>(p.k_cache) + page * p.k_cache_stride_page + slot * p.k_cache_stride_slot;
    char* vd = static_cast<char*>(p.v_cache) + page * p.v_cache_stride_page + slot * p.v_cache_stride_slot;
    reinterpret_cast<VecT*>(kd)[c] = reinterpret_cast<const VecT*>(ks)[c];
    reinterpret_cast<VecT*>(vd)[c] = reinterpret_cast<const VecT*>(vs)[c];
  }
}

bool aligned_to(const OfrtPagedKvAppendParams& p, int64_t a) {
  const int64_t vals[] = {
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(p.k_new)),
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(p.v_new)),
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(p.k_cache)),
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(p.v_cache)),
      p.k_new_stride_token, p.v_new_stride_token, p.k_cache_stride_page, p.k_cache_stride_slot,
      p.v_cache_stride_page, p.v_cache_stride_slot, p.row_bytes};
  for (int64_t v : vals) {
    if (v % a != 0) return false;
  }
  return true;
}

}  // namespace
}  // namespace ofrt

extern "C" cudaError_t ofrt_paged_kv_append(const OfrtPagedKvAppendParams* params, cudaStream_t stream) {
  if (params == nullptr) return cudaErrorInvalidValue;
  const OfrtPagedKvAppendParams& p = *params;
  if (p.batch < 0 || p.max_seqlen < 0 || p.page_size <= 0 || p.max_pages < 0 || p.num_pages < 0 ||
      p.row_bytes <= 0 || p.batch > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.batch == 0 || p.max_seqlen == 0) return cudaSuccess;
  if (!p.k_new || !p.v_new || !p.k_cache || !p.v_cache || !p.page_table || !p.cu_seqlens || !p.start_pos) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid((p.max_seqlen + ofrt::kTokensPerCta - 1) / ofrt::kTokensPerCta, p.batch);
  if (ofrt::aligned_to(p, 16)) {
    ofrt::paged_kv_append_kernel<uint4><<<grid, ofrt::kThreads, 0, stream>>>(p);
  } else if (ofrt::aligned_to(p, 4)) {
    ofrt::paged_kv_append_kernel<uint32_t><<<grid, ofrt::kThreads, 0, stream>>>(p);
  } else {
    ofrt::paged_kv_append_kernel<uint8_t><<<grid, ofrt::kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

extern "C" size_t ofrt_paged_kv_append_params_size(void) { return sizeof(OfrtPagedKvAppendParams); }
