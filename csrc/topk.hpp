// Bounded top-k selection ordered by (distance, id).
//
// TopK<D> keeps the k smallest (distance, id) pairs seen so far in a max-heap
// whose root is the current worst kept pair, so a candidate is rejected with
// one comparison in the common case. Ties on distance are broken by the
// smaller id, which makes results independent of scan order, block split and
// thread count. extract_sorted() writes k pairs in ascending order, padding
// with (kMissingId, pad_distance) when fewer than k were pushed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common.hpp"

namespace pyspec {

template <class D>
class TopK {
 public:
  explicit TopK(std::size_t k = 0) : k_(k) { heap_.reserve(k); }

  void reset(std::size_t k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(k);
  }
  std::size_t k() const { return k_; }
  std::size_t size() const { return heap_.size(); }
  bool full() const { return heap_.size() == k_; }
  // Distance a candidate must beat (or tie with a smaller id) when full.
  D worst() const { return heap_.front().first; }

  // True when (d, id) would enter the kept set.
  bool accepts(D d, index_t id) const {
    if (k_ == 0) return false;
    if (heap_.size() < k_) return true;
    const auto& w = heap_.front();
    return d < w.first || (d == w.first && id < w.second);
  }

  void push(D d, index_t id) {
    if (!accepts(d, id)) return;
    if (heap_.size() < k_) {
      heap_.emplace_back(d, id);
      std::push_heap(heap_.begin(), heap_.end());
    } else {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = {d, id};
      std::push_heap(heap_.begin(), heap_.end());
    }
  }

  void merge(const TopK& other) {
    for (const auto& p : other.heap_) push(p.first, p.second);
  }

  void extract_sorted(D* distances, index_t* ids, D pad_distance) {
    std::sort_heap(heap_.begin(), heap_.end());
    std::size_t i = 0;
    for (; i < heap_.size(); ++i) {
      distances[i] = heap_[i].first;
      ids[i] = heap_[i].second;
    }
    for (; i < k_; ++i) {
      distances[i] = pad_distance;
      ids[i] = kMissingId;
    }
    heap_.clear();
  }

 private:
  std::size_t k_;
  std::vector<std::pair<D, index_t>> heap_;  // std::pair orders by (d, id)
};

}  // namespace pyspec
