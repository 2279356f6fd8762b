// PageTable: pinned | window | in-flight regions with eviction by rotation; see
// include/ofrt/kv_cache.h for the layout. The Python twin of the retention rule is
// pipeline/kv_cache.py (KvCacheSet._evict): after committing block k the history is block 0 plus
// the last `window_blocks` blocks.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/check.h"
#include "ofrt/errors.h"
#include "ofrt/kv_cache.h"

namespace ofrt {

void PageTableSpec::validate() const {
  std::vector<std::string> problems;
  if (page_size_tokens < 1) problems.push_back("page_size_tokens must be >= 1");
  if (first_block_tokens < 1) problems.push_back("first_block_tokens must be >= 1");
  if (block_tokens < 1) problems.push_back("block_tokens must be >= 1");
  if (window_blocks < 1) problems.push_back("window_blocks must be >= 1");
  if (max_blocks < 1) problems.push_back("max_blocks must be >= 1");
  if (!problems.empty()) throw ConfigError("invalid page table spec", problems);
}

int64_t PageTableSpec::pages_needed() const {
  validate();
  const int64_t groups = std::min(window_blocks + 1, max_blocks - 1);
  return pages_for_tokens(first_block_tokens, page_size_tokens) +
         groups * pages_for_tokens(block_tokens, page_size_tokens);
}

PageTable::PageTable(const PageTableSpec& spec, std::vector<int64_t> pages)
    : spec_(spec), pages_(std::move(pages)) {
  const int64_t needed = spec_.pages_needed();
  OFRT_CHECK(static_cast<int64_t>(pages_.size()) == needed, InputError,
             "a page table needs " << needed << " pages, got " << pages_.size());
  const int64_t first = pages_for_tokens(spec_.first_block_tokens, spec_.page_size_tokens);
  const int64_t per_block = pages_for_tokens(spec_.block_tokens, spec_.page_size_tokens);
  // Block 0 is written straight into the pinned region: its in-flight group is the pinned one.
  inflight_.block = 0;
  inflight_.tokens = spec_.first_block_tokens;
  inflight_.pages.assign(pages_.begin(), pages_.begin() + first);
  // Ring groups, handed out in reverse so block 1 gets the lowest pages.
  for (auto it = pages_.end(); it != pages_.begin() + first; it -= per_block) {
    spare_groups_.emplace_back(it - per_block, it);
  }
}

std::vector<int64_t> PageTable::slots_of(const PageGroup& group) const {
  std::vector<int64_t> slots;
  slots.reserve(static_cast<size_t>(group.tokens));
  const int64_t ps = spec_.page_size_tokens;
  for (int64_t t = 0; t < group.tokens; ++t) {
    slots.push_back(group.pages[static_cast<size_t>(t / ps)] * ps + t % ps);
  }
  return slots;
}

PageGroup PageTable::take_group(int64_t block) {
  PageGroup group;
  group.block = block;
  group.tokens = spec_.block_tokens;
  if (spare_groups_.empty()) {
    throw CacheCapacityError("stream ran past its " + std::to_string(spec_.max_blocks) +
                             "-block page reservation (block " + std::to_string(block) + ")");
  }
  group.pages = std::move(spare_groups_.back());
  spare_groups_.pop_back();
  return group;
}

void PageTable::commit() {
  if (inflight_.block >= spec_.max_blocks) {
    throw CacheCapacityError("stream ran past its " + std::to_string(spec_.max_blocks) +
                             "-block page reservation (block " + std::to_string(inflight_.block) +
                             ")");
  }
  const int64_t next = inflight_.block + 1;
  if (inflight_.block == 0) {
    pinned_ = std::move(inflight_);
  } else {
    window_.push_back(std::move(inflight_));
  }
  inflight_ = PageGroup();
  if (static_cast<int64_t>(window_.size()) > spec_.window_blocks) {
    // Rotation: the oldest window group's pages become the next in-flight pages (no copy).
    spare_groups_.push_back(std::move(window_.front().pages));
    window_.pop_front();
  }
  if (next < spec_.max_blocks) inflight_ = take_group(next);
  if (inflight_.block < 0) inflight_.block = next;  // past the last block: nothing in flight
  rebuild_history();
}

void PageTable::rebuild_history() {
  history_slots_ = slots_of(pinned_);
  for (const PageGroup& g : window_) {
    const std::vector<int64_t> s = slots_of(g);
    history_slots_.insert(history_slots_.end(), s.begin(), s.end());
  }
}

std::vector<int64_t> PageTable::committed_blocks() const {
  std::vector<int64_t> out;
  if (pinned_.block == 0) out.push_back(0);
  for (const PageGroup& g : window_) out.push_back(g.block);
  return out;
}

}  // namespace ofrt
