// SPDX-License-Identifier: Apache-2.0
//! paged_kv_append: write a block's K/V rows into their cache pages (exact byte copy).
//!
//! Layout: new rows are packed varlen, stream b owning rows [cu_seqlens[b], cu_seqlens[b+1]);
//! its row i goes to logical position start_pos[b] + i, i.e. page page_table[b][pos / page_size],
//! slot pos % page_size. A row is `row_bytes` bytes (Hk * D * element size) and is copied
//! verbatim, so the op is dtype-agnostic and bit-exact. Rows whose position falls outside the
//! page-table row, or whose page id is < 0 or >= num_pages, are skipped.
#pragma once

#include <stddef.h>

#include "common.cuh"

#ifdef __cplusplus
extern "C" {
#endif

//! Arguments of one append launch. Strides of the data tensors are in bytes.
typedef struct OfrtPagedKvAppendParams {
  const void* k_new;             //!< [T, row] new keys
  const void* v_new;             //!< [T, row] new values
  void* k_cache;                 //!< [num_pages, page_size, row] key pages, written in place
  void* v_cache;                 //!< [num_pages, page_size, row] value pages, written in place
  const int32_t* page_table;     //!< [batch, max_pages] page ids in logical order
  const int32_t* cu_seqlens;     //!< [batch + 1] row offsets into k_new / v_new
  const int32_t* start_pos;      //!< [batch] logical position of each stream's first new row
  int64_t k_new_stride_token;    //!< bytes between consecutive rows of k_new
  int64_t v_new_stride_token;    //!< bytes between consecutive rows of v_new
  int64_t k_cache_stride_page;   //!< bytes between pages of k_cache
  int64_t k_cache_stride_slot;   //!< bytes between slots of a k_cache page
  int64_t v_cache_stride_page;   //!< bytes between pages of v_cache
  int64_t v_cache_stride_slot;   //!< bytes between slots of a v_cache page
  int64_t page_table_stride;     //!< elements between rows of page_table
  int32_t batch;                 //!< number of streams B
  int32_t max_seqlen;            //!< longest stream (sizes the grid; no host sync needed)
  int32_t page_size;             //!< tokens per page
  int32_t max_pages;             //!< columns of page_table
  int32_t num_pages;             //!< pages in the pool
  int32_t row_bytes;             //!< bytes per row (Hk * D * element size)
} OfrtPagedKvAppendParams;

//! Enqueue the append on `stream`. Returns cudaErrorInvalidValue for bad arguments.
cudaError_t ofrt_paged_kv_append(const OfrtPagedKvAppendParams* params, cudaStream_t stream);

//! sizeof(OfrtPagedKvAppendParams), so bindings can check their struct mirror at load time.
size_t ofrt_paged_kv_append_params_size(void);

#ifdef __cplusplus
}  // extern "C"
#endif
