// An independent measure of memory for the unit tests: the program's global
// operator new / delete are replaced (heap_counter.cpp) by ones that count
// the bytes held through them, in every thread. A component's own statistics
// say what it believes it holds; this says what it holds.
#pragma once

#include <cstdint>

namespace qcowkit::test {

uint64_t heap_bytes_in_use();   // bytes allocated through operator new and not yet freed
uint64_t heap_peak_bytes();     // the most heap_bytes_in_use() reached since reset_heap_peak()
void reset_heap_peak();         // start a new peak from the current use

}  // namespace qcowkit::test
