// PagePool: a free list over page ids; see include/ofrt/kv_cache.h.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "ofrt/kv_cache.h"

namespace ofrt {

int64_t pages_for_tokens(int64_t tokens, int64_t page_size_tokens) {
  OFRT_CHECK(page_size_tokens >= 1, InputError,
             "page_size_tokens must be >= 1, got " << page_size_tokens);
  OFRT_CHECK(tokens >= 0, InputError, "tokens must be >= 0, got " << tokens);
  return (tokens + page_size_tokens - 1) / page_size_tokens;
}

PagePool::PagePool(int64_t num_pages) : num_pages_(num_pages) {
  OFRT_CHECK(num_pages >= 0, InputError, "num_pages must be >= 0, got " << num_pages);
  free_.reserve(static_cast<size_t>(num_pages));
  for (int64_t p = num_pages - 1; p >= 0; --p) free_.push_back(p);
  is_free_.assign(static_cast<size_t>(num_pages), true);
}

std::vector<int64_t> PagePool::allocate(int64_t count) {
  OFRT_CHECK(count >= 0, InputError, "count must be >= 0, got " << count);
  if (count > free_pages()) {
    throw CacheCapacityError("the KV page pool has " + std::to_string(free_pages()) + " of " +
                             std::to_string(num_pages_) + " pages free, " + std::to_string(count) +
                             " are needed");
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(free_.back());
    is_free_[static_cast<size_t>(free_.back())] = false;
    free_.pop_back();
  }
  return out;
}

void PagePool::release(const std::vector<int64_t>& pages) {
  for (const int64_t p : pages) {
    OFRT_CHECK(p >= 0 && p < num_pages_, InputError, "page " << p << " is not in the pool");
    OFRT_CHECK(!is_free_[static_cast<size_t>(p)], InputError, "page " << p << " is already free");
    is_free_[static_cast<size_t>(p)] = true;
    free_.push_back(p);
  }
  std::sort(free_.begin(), free_.end(), std::greater<int64_t>());
}

}  // namespace ofrt
