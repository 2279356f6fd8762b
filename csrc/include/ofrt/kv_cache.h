// Host-side paged KV bookkeeping: the page pool and the per-stream page tables (design.md §3,
// modelled on TensorRT-LLM's visual_gen kv_causal_cache.py). Framework-free: no tensors here;
// csrc/kv_cache/cache_set.h owns the pool tensors and the device copies of the tables.
//
// Data layout. Each temporal cache of every layer is a pool tensor [L, num_pages, page_size, D].
// The two video-token caches (video_self, v2a) share one page numbering and one table per
// stream, as do the two audio-token caches (audio_self, a2v). A page holds `page_size` tokens of
// one block of one stream; token t of a block lives at slot page * page_size + t % page_size of
// the block's pages[t / page_size]. A stream's table has three regions:
//
//   pinned    block 0 (the Global Prefix and the audio sinks): never evicted
//   window    the last `window_blocks` committed blocks, oldest first (a ring of page groups)
//   in-flight the pages the block being generated writes at commit
//
// Eviction is rotation: at commit the in-flight group joins the window; when the window then
// holds more than `window_blocks` blocks, its oldest group's pages become the next in-flight
// pages. No K/V is ever copied. The host twin of the table is the list of history slots (pinned
// then window, in token order); the engine rewrites its device copy only at commit, so the
// passes of one block all read the same table (CUDA-graph safe).
//
// Sizing (TensorRT-LLM pool_tokens_for style): a stream needs
//   pages(first block) + min(window + 1, blocks - 1) * pages(block)
// pages per modality, and the pool holds max_streams such reservations. The pool is sized and
// checked against the memory budget before any allocation (CacheCapacityError).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace ofrt {

//! Streams with no block limit (Python UNLIMITED_BLOCKS).
inline constexpr int64_t kUnlimitedBlocks = int64_t{1} << 40;

//! Pages holding `tokens` tokens (ceil division); InputError for a page size < 1.
int64_t pages_for_tokens(int64_t tokens, int64_t page_size_tokens);

// -------------------------------------------------------------------------------------------
// PagePool
// -------------------------------------------------------------------------------------------

//! A free list over page ids [0, num_pages). Not thread-safe (the engine holds its lock).
class PagePool {
 public:
  explicit PagePool(int64_t num_pages);

  int64_t num_pages() const { return num_pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  //! `count` pages, lowest ids first; CacheCapacityError when fewer are free.
  std::vector<int64_t> allocate(int64_t count);
  //! Returns pages to the pool; InputError for an id out of range or already free.
  void release(const std::vector<int64_t>& pages);

 private:
  int64_t num_pages_;
  std::vector<int64_t> free_;  // sorted descending, so allocate() pops the lowest ids
  std::vector<bool> is_free_;
};

// -------------------------------------------------------------------------------------------
// PageTable
// -------------------------------------------------------------------------------------------

//! The geometry of one modality's table.
struct PageTableSpec {
  int64_t page_size_tokens = 64;   //!< tokens per page
  int64_t first_block_tokens = 0;  //!< block 0 tokens (audio: sinks included)
  int64_t block_tokens = 0;        //!< tokens of every later block
  int64_t window_blocks = 1;       //!< history blocks kept besides block 0 (>= 1)
  int64_t max_blocks = 1;          //!< blocks the stream may run (kUnlimitedBlocks: no limit)

  //! Pages one stream reserves: pinned + min(window + 1, max_blocks - 1) block groups.
  int64_t pages_needed() const;
  //! ConfigError listing every invalid field.
  void validate() const;
};

//! One group of pages holding one block's tokens.
struct PageGroup {
  int64_t block = -1;          //!< block index (-1: not yet assigned)
  int64_t tokens = 0;          //!< tokens written (or to be written) in the group
  std::vector<int64_t> pages;  //!< page ids, token order
};

//! The table of one modality of one stream (see the file comment).
class PageTable {
 public:
  //! `pages` must hold exactly spec.pages_needed() ids (the stream's reservation).
  PageTable(const PageTableSpec& spec, std::vector<int64_t> pages);

  const PageTableSpec& spec() const { return spec_; }
  //! The block in flight (the next to be committed).
  int64_t block() const { return inflight_.block; }
  //! Pool slots of the committed history the in-flight block attends to, in token order.
  const std::vector<int64_t>& history_slots() const { return history_slots_; }
  //! Pool slots the in-flight block's tokens are written to at commit.
  std::vector<int64_t> inflight_slots() const { return slots_of(inflight_); }
  //! Makes the in-flight block committed, evicts by rotation, prepares block() + 1.
  //! CacheCapacityError when the stream runs past spec().max_blocks.
  void commit();

  // ----- regions (tests, stats)
  const PageGroup& pinned() const { return pinned_; }
  const std::deque<PageGroup>& window() const { return window_; }
  const PageGroup& inflight() const { return inflight_; }
  //! Committed block ids in order (block 0 first).
  std::vector<int64_t> committed_blocks() const;
  //! Every page the stream owns (its reservation), for release.
  const std::vector<int64_t>& pages() const { return pages_; }

 private:
  std::vector<int64_t> slots_of(const PageGroup& group) const;
  PageGroup take_group(int64_t block);
  void rebuild_history();

  PageTableSpec spec_;
  std::vector<int64_t> pages_;
  PageGroup pinned_;
  std::deque<PageGroup> window_;
  PageGroup inflight_;
  std::vector<std::vector<int64_t>> spare_groups_;  // ring slots not used yet
  std::vector<int64_t> history_slots_;
};

}  // namespace ofrt
