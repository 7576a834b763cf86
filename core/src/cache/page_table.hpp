// PageTable<T>: the cache's index from page number to its T (a Page), the
// lookup every read, write and write-back makes, usually for a page that
// is not cached at all.
//
// Open addressing with linear probing over a power-of-two array of (page
// number, pointer) slots, at most half full; erasing shifts later slots of
// the same probe run back, so there are no tombstones. Each T lives in an
// allocation of its own: a reference to it stays valid until it is erased,
// as with std::unordered_map (iterators do not survive an insert or an
// erase). A lookup reads one or two cache lines of slots; the node-based
// std::unordered_map it replaces chased three or four pointers for a miss,
// each a cache miss under random I/O (10% of the filter's CPU time under
// 4K random writes over a memory plugin).
//
// Not thread-safe: the cache's mutex guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace qcowkit::cache {

template <typename T>
class PageTable {
  static constexpr uint64_t kEmpty = UINT64_MAX;  // no page number reaches it
  struct Slot {
    uint64_t index = kEmpty;
    std::unique_ptr<T> value;
  };

 public:
  using value_type = std::pair<const uint64_t, T&>;

  // Iterates over the occupied slots, in no particular order.
  template <bool Const>
  class Iterator {
    using SlotPtr = std::conditional_t<Const, const Slot*, Slot*>;
    using Ref = std::pair<const uint64_t, std::conditional_t<Const, const T&, T&>>;

   public:
    struct Arrow {  // what operator-> points into: a pair made on the spot
      Ref ref;
      const Ref* operator->() const { return &ref; }
    };
    Iterator(SlotPtr at, SlotPtr end) : at_(at), end_(end) { skip_empty(); }
    Ref operator*() const { return Ref(at_->index, *at_->value); }
    Arrow operator->() const { return Arrow{**this}; }
    Iterator& operator++() {
      ++at_;
      skip_empty();
      return *this;
    }
    bool operator==(const Iterator& other) const { return at_ == other.at_; }
    bool operator!=(const Iterator& other) const { return at_ != other.at_; }

   private:
    friend class PageTable;
    void skip_empty() {
      while (at_ != end_ && at_->index == kEmpty) ++at_;
    }
    SlotPtr at_, end_;
  };
  using iterator = Iterator<false>;
  using const_iterator = Iterator<true>;

  PageTable() { rehash(16); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // What iterating walks: every slot, empty or not. The table never
  // shrinks, so after a cache drains this stays at its largest.
  size_t slot_count() const { return slots_.size(); }

  iterator begin() { return iterator(slots_.data(), slots_.data() + slots_.size()); }
  iterator end() { return iterator(slots_.data() + slots_.size(), slots_.data() + slots_.size()); }
  const_iterator begin() const {
    return const_iterator(slots_.data(), slots_.data() + slots_.size());
  }
  const_iterator end() const {
    return const_iterator(slots_.data() + slots_.size(), slots_.data() + slots_.size());
  }

  iterator find(uint64_t index) {
    const size_t at = locate(index);
    return slots_[at].index == kEmpty ? end()
                                      : iterator(slots_.data() + at, slots_.data() + slots_.size());
  }
  size_t count(uint64_t index) const { return slots_[locate(index)].index == kEmpty ? 0 : 1; }

  T& at(uint64_t index) {
    const size_t at = locate(index);
    if (slots_[at].index == kEmpty) throw std::out_of_range("PageTable::at: page not cached");
    return *slots_[at].value;
  }
  const T& at(uint64_t index) const { return const_cast<PageTable*>(this)->at(index); }

  // The T of `index`, value-initialised and inserted when absent.
  T& operator[](uint64_t index) {
    size_t at = locate(index);
    if (slots_[at].index != kEmpty) return *slots_[at].value;
    if ((size_ + 1) * 2 > slots_.size()) {
      rehash(slots_.size() * 2);
      at = locate(index);
    }
    slots_[at].index = index;
    slots_[at].value = std::make_unique<T>();
    ++size_;
    return *slots_[at].value;
  }

  void erase(iterator it) {
    size_t hole = static_cast<size_t>(it.at_ - slots_.data());
    slots_[hole].value.reset();
    slots_[hole].index = kEmpty;
    --size_;
    // Move back every later slot of the run whose home is not between the
    // hole and itself, so every lookup still finds its slot before an
    // empty one.
    for (size_t next = (hole + 1) & mask_; slots_[next].index != kEmpty;
         next = (next + 1) & mask_) {
      const size_t home = home_of(slots_[next].index);
      const bool home_after_hole = ((next - home) & mask_) < ((next - hole) & mask_);
      if (home_after_hole) continue;
      slots_[hole] = std::move(slots_[next]);
      slots_[next].index = kEmpty;
      hole = next;
    }
  }

  void clear() {
    slots_.clear();
    size_ = 0;
    rehash(16);
  }

  // Room for `count` pages without growing.
  void reserve(size_t count) {
    size_t want = 16;
    while (want < count * 2) want *= 2;
    if (want > slots_.size()) rehash(want);
  }

 private:
  size_t home_of(uint64_t index) const {
    // Fibonacci hashing: neighbouring page numbers land far apart.
    return static_cast<size_t>((index * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  // The slot holding `index`, or the empty slot where it would go.
  size_t locate(uint64_t index) const {
    size_t at = home_of(index);
    while (slots_[at].index != kEmpty && slots_[at].index != index) at = (at + 1) & mask_;
    return at;
  }
  void rehash(size_t capacity) {  // a power of two, above twice the size
    std::vector<Slot> old = std::move(slots_);
    slots_ = std::vector<Slot>(capacity);
    mask_ = capacity - 1;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c /= 2) --shift_;
    for (Slot& slot : old) {
      if (slot.index == kEmpty) continue;
      size_t at = home_of(slot.index);
      while (slots_[at].index != kEmpty) at = (at + 1) & mask_;
      slots_[at] = std::move(slot);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace qcowkit::cache
