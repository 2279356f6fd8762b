// SPDX-License-Identifier: Apache-2.0
// Paged block attention with WMMA tensor cores (sm_80+), FlashAttention-2 style online softmax.
//
// A CTA of 4 warps owns 64 query rows of one head (16 rows per warp) and walks the stream's
// keys in 64-key tiles: first the history through the page table, then the block's own K/V, as
// one logical sequence (a tile may straddle the boundary; the source is chosen per key). Per
// tile: all threads gather K/V into shared memory (16-byte vectors, zero-filled past the end);
// each warp computes S = Q K^T with WMMA into shared fp32, two lanes per row run the online
// softmax (base 2) and write P, and the warp accumulates O += P V with WMMA, O living in shared
// fp32 so that the per-row rescale is a plain store (WMMA accumulator layouts are opaque).
//
// This is the portable, correctness-first baseline: it has never been run here (the
// development machine has no GPU) and is only compile-checked for sm_90a. Rejected for now:
// raw mma.sync/wgmma with register-resident O and a cp.async/TMA pipeline, i.e. the
// FlashAttention-3 design - several times faster on an H100 but not something to ship
// untested. The Triton kernel (wgmma via the Triton compiler) is the fast path.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "block_causal_attention.cuh"

namespace ofrt {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockM = 16 * kWarps;  // query rows per CTA
constexpr int kBlockN = 64;           // keys per tile
constexpr int kVec = 8;               // 16-bit elements per 16-byte vector

// Padded row strides: +8 halves / +4 floats break shared-memory bank conflicts while keeping
// every WMMA tile pointer 32-byte aligned (WMMA's requirement).
template <int D>
struct Layout {
  static constexpr int kLdT = D + 8;        // Q, K, V rows (16-bit)
  static constexpr int kLdS = kBlockN + 4;  // S rows (fp32)
  static constexpr int kLdP = kBlockN + 8;  // P rows (16-bit)
  static constexpr int kLdO = D + 4;        // O rows (fp32)
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + size_t(kBlockM) * kLdT * 2;
  static constexpr size_t kV = kK + size_t(kBlockN) * kLdT * 2;
  static constexpr size_t kS = kV + size_t(kBlockN) * kLdT * 2;
  static constexpr size_t kP = kS + size_t(kWarps) * 16 * kLdS * 4;
  static constexpr size_t kO = kP + size_t(kWarps) * 16 * kLdP * 2;
  static constexpr size_t kBytes = kO + size_t(kWarps) * 16 * kLdO * 4;
};

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
// Rows [row0, row0 + kBlockM) of this stream's queries into sQ, zero past q_len.
template <typename T, int D>
__device__ void load_q_tile(const OfrtPagedAttentionParams& p, int64_t q_start, int row0, int q_len, int h,
                            T* sQ) {
  constexpr int kChunks = D / kVec;
  for (int idx = threadIdx.x; idx < kBlockM * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < q_len) {
      const T* src = static_cast<const T*>(p.q) + (q_start + row0 + r) * p.q_stride_token + h * p.q_stride_head;
      val = reinterpret_cast<const uint4*>(src)[c];
    }
    reinterpret_cast<uint4*>(sQ + r * Layout<D>::kLdT)[c] = val;
  }
}

// Keys [n0, n0 + kBlockN) of the logical sequence history ++ block into sK/sV, zero past total.
template <typename T, int D>
__device__ void load_kv_tile(const OfrtPagedAttentionParams& p, int b, int hk, int n0, int cache_len,
                             int64_t kv_start, int total, T* sK, T* sV) {
  constexpr int kChunks = D / kVec;
  for (int idx = threadIdx.x; idx < kBlockN * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const int j = n0 + r;
    uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
    if (j < total) {
      const T* kp;
      const T* vp;
      if (j < cache_len) {
        const int64_t page = p.page_table[b * p.page_table_stride + j / p.page_size];
        const int64_t slot = j % p.page_size;
        kp = static_cast<const T*>(p.k_cache) + page * p.k_cache_stride_page + slot * p.k_cache_stride_slot +
             hk * p.k_cache_stride_head;
        vp = static_cast<const T*>(p.v_cache) + page * p.v_cache_stride_page + slot * p.v_cache_stride_slot +
             hk * p.v_cache_stride_head;
      } else {
        const int64_t row = kv_start + (j - cache_len);
        kp = static_cast<const T*>(p.k_new) + row * p.k_new_stride_token + hk * p.k_new_stride_head;
        vp = static_cast<const T*>(p.v_new) + row * p.v_new_stride_token + hk * p.v_new_stride_head;
      }
      kv = reinterpret_cast<const uint4*>(kp)[c];
      vv = reinterpret_cast<const uint4*>(vp)[c];
    }
    reinterpret_cast<uint4*>(sK + r * Layout<D>::kLdT)[c] = kv;
    reinterpret_cast<uint4*>(sV + r * Layout<D>::kLdT)[c] = vv;
  }
}

// S_w [16, kBlockN] = Q_w K^T for this warp's 16 query rows.
template <typename T, int D>
__device__ void warp_scores(const T* sQ_w, const T* sK, float* sS_w) {
  using L = Layout<D>;
  for (int j = 0; j < kBlockN / 16; ++j) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < D / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bt;  // K rows read as K^T columns
      wmma::load_matrix_sync(a, sQ_w + kk * 16, L::kLdT);
      wmma::load_matrix_sync(bt, sK + j * 16 * L::kLdT + kk * 16, L::kLdT);
      wmma::mma_sync(acc, a, bt, acc);
    }
    wmma::store_matrix_sync(sS_w + j * 16, acc, L::kLdS, wmma::mem_row_major);
  }
}

// O_w [16, D] += P_w V, with O kept in shared fp32.
template <typename T, int D>
__device__ void warp_accumulate(const T* sP_w, const T* sV, float* sO_w) {
  using L = Layout<D>;
  for (int j = 0; j < D / 16; ++j) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
    wmma::load_matrix_sync(o, sO_w + j * 16, L::kLdO, wmma::mem_row_major);
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bv;
      wmma::load_matrix_sync(a, sP_w + kk * 16, L::kLdP);
      wmma::load_matrix_sync(bv, sV + kk * 16 * L::kLdT + j * 16, L::kLdT);
      wmma::mma_sync(o, a, bv, o);
    }
    wmma::store_matrix_sync(sO_w + j * 16, o, L::kLdO, wmma::mem_row_major);
  }
}

// Online softmax of one tile for this lane's half row; updates (m_run, l_run), writes P and
// rescales the lane's half of the O row. Two lanes (lane ^ 1) share a row.
template <typename T, int D>
__device__ void warp_softmax(float* sS_w, T* sP_w, float* sO_w, int n_valid, float scale_log2, float& m_run,
                             float& l_run) {
  using L = Layout<D>;
  const int lane = threadIdx.x % 32;
  const int r = lane >> 1;
  const int c0 = (lane & 1) * (kBlockN / 2);
  float tile_max = -INFINITY;
  for (int c = c0; c < c0 + kBlockN / 2; ++c) {
    const float s = c < n_valid ? sS_w[r * L::kLdS + c] * scale_log2 : -INFINITY;
    sS_w[r * L::kLdS + c] = s;
    tile_max = fmaxf(tile_max, s);
  }
  tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
  const float m_new = fmaxf(m_run, tile_max);
  const float m_safe = m_new == -INFINITY ? 0.0f : m_new;  // no -inf - -inf = NaN
  float row_sum = 0.0f;
  for (int c = c0; c < c0 + kBlockN / 2; ++c) {
    const float e = exp2f(sS_w[r * L::kLdS + c] - m_safe);
    row_sum += e;
    sP_w[r * L::kLdP + c] = from_float<T>(e);
  }
  row_sum += __shfl_xor_sync(0xffffffffu, row_sum, 1);
  const float alpha = exp2f(m_run - m_safe);
  l_run = l_run * alpha + row_sum;
  m_run = m_new;
  const int d0 = (lane & 1) * (D / 2);
  for (int c = d0; c < d0 + D / 2; ++c) sO_w[r * L::kLdO + c] *= alpha;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(const OfrtPagedAttentionParams p) {
  using L = Layout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  const int b = blockIdx.y / p.q_heads;
  const int h = blockIdx.y % p.q_heads;
  const int hk = h / (p.q_heads / p.kv_heads);
  const int64_t q_start = p.cu_seqlens_q[b];
  const int q_len = p.cu_seqlens_q[b + 1] - static_cast<int>(q_start);
  const int row0 = blockIdx.x * kBlockM;
  if (row0 >= q_len) return;
  const int cache_len = p.cache_lens[b];
  const int64_t kv_start = p.cu_seqlens_kv[b];
  const int total = cache_len + (p.cu_seqlens_kv[b + 1] - static_cast<int>(kv_start));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sK = reinterpret_cast<T*>(smem + L::kK);
  T* sV = reinterpret_cast<T*>(smem + L::kV);
  float* sS_w = reinterpret_cast<float*>(smem + L::kS) + warp * 16 * L::kLdS;
  T* sP_w = reinterpret_cast<T*>(smem + L::kP) + warp * 16 * L::kLdP;
  float* sO_w = reinterpret_cast<float*>(smem + L::kO) + warp * 16 * L::kLdO;

  load_q_tile<T, D>(p, q_start, row0, q_len, h, sQ);
  for (int i = lane; i < 16 * L::kLdO; i += 32) sO_w[i] = 0.0f;
  __syncthreads();
  const float scale_log2 = p.sm_scale * 1.4426950408889634f;
  float m_run = -INFINITY, l_run = 0.0f;  // statistics of row (lane >> 1), replicated in both lanes
  for (int n0 = 0; n0 < total; n0 += kBlockN) {
    load_kv_tile<T, D>(p, b, hk, n0, cache_len, kv_start, total, sK, sV);
    __syncthreads();
    warp_scores<T, D>(sQ + warp * 16 * L::kLdT, sK, sS_w);
    __syncwarp();
    warp_softmax<T, D>(sS_w, sP_w, sO_w, min(kBlockN, total - n0), scale_log2, m_run, l_run);
    __syncwarp();
    warp_accumulate<T, D>(sP_w, sV, sO_w);
    __syncthreads();  // every warp is done with sK/sV before the next tile overwrites them
  }
  const int r = lane >> 1;
  const int row = row0 + warp * 16 + r;
  if (row < q_len) {
    const float inv = l_run > 0.0f ? 1.0f / l_run : 0.0f;  // a stream with no keys gives 0
    T* dst = static_cast<T*>(p.out) + (q_start + row) * p.out_stride_token + h * p.out_stride_head;
    const int d0 = (lane & 1) * (D / 2);
    for (int c = d0; c < d0 + D / 2; ++c) dst[c] = from_float<T>(sO_w[r * L::kLdO + c] * inv);
  }
}

template <typename T, int D>
cudaError_t launch(const OfrtPagedAttentionParams& p, cudaStream_t stream) {
  auto kernel = paged_attention_kernel<T, D>;
  const size_t smem = Layout<D>::kBytes;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid((p.max_seqlen_q + kBlockM - 1) / kBlockM, p.batch * p.q_heads);
  kernel<<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

bool vec_aligned(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

bool valid(const OfrtPagedAttentionParams& p) {
  if (p.batch < 0 || p.q_heads <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads != 0) return false;
  if (p.page_size <= 0 || p.max_seqlen_q < 0 || int64_t(p.batch) * p.q_heads > 65535) return false;
  if (!(p.sm_scale > 0.0f)) return false;
  const void* ptrs[] = {p.q, p.k_new, p.v_new, p.k_cache, p.v_cache, p.out};
  for (const void* ptr : ptrs) {
    if (ptr == nullptr || !vec_aligned(ptr)) return false;
  }
  if (!p.page_table || !p.cu_seqlens_q || !p.cu_seqlens_kv || !p.cache_lens) return false;
  // 16-byte vector loads need every row start aligned: strides in multiples of 8 elements.
  const int64_t strides[] = {p.q_stride_token,      p.q_stride_head,       p.k_new_stride_token,
                             p.k_new_stride_head,   p.v_new_stride_token,  p.v_new_stride_head,
                             p.k_cache_stride_page, p.k_cache_stride_slot, p.k_cache_stride_head,
                             p.v_cache_stride_page, p.v_cache_stride_slot, p.v_cache_stride_head};
  for (int64_t s : strides) {
    if (s % kVec != 0) return false;
  }
  return true;
}

}  // namespace
}  // namespace ofrt

extern "C" size_t ofrt_paged_attention_params_size(void) { return sizeof(OfrtPagedAttentionParams); }

extern "C" size_t ofrt_block_causal_attention_paged_smem_bytes(int32_t head_dim) {
  if (head_dim == 64) return ofrt::Layout<64>::kBytes;
  if (head_dim == 128) return ofrt::Layout<128>::kBytes;
  return 0;
}

extern "C" cudaError_t ofrt_block_causal_attention_paged(const OfrtPagedAttentionParams* params,
                                                         cudaStream_t stream) {
  if (params == nullptr) return cudaErrorInvalidValue;
  const OfrtPagedAttentionParams& p = *params;
  if (p.head_dim != 64 && p.head_dim != 128) return cudaErrorNotSupported;
  if (p.dtype != kOfrtFloat16 && p.dtype != kOfrtBFloat16) return cudaErrorNotSupported;
  if (!ofrt::valid(p)) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.max_seqlen_q == 0) return cudaSuccess;
  if (p.dtype == kOfrtBFloat16) {
    return p.head_dim == 64 ? ofrt::launch<__nv_bfloat16, 64>(p, stream) : ofrt::launch<__nv_bfloat16, 128>(p, stream);
  }
  return p.head_dim == 64 ? ofrt::launch<__half, 64>(p, stream) : ofrt::launch<__half, 128>(p, stream);
}
