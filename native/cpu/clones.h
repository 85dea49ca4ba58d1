// DEEPNODE_CLONES marks a hot loop for GCC function multiversioning: the loop is compiled
// once per instruction set and the widest one the CPU has is chosen when the library
// loads, so one binary vectorises well everywhere without -march flags.
// DEEPNODE_CLONE_TARGETS narrows the list, so that a test build can run the AVX2 or the
// generic clone on an AVX-512 machine (e.g. -DDEEPNODE_CLONE_TARGETS='"avx2","default"');
// DEEPNODE_NO_CLONES turns cloning off.
#pragma once

#ifndef DEEPNODE_CLONE_TARGETS
#define DEEPNODE_CLONE_TARGETS "avx512f", "avx2", "default"
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(DEEPNODE_NO_CLONES)
#define DEEPNODE_CLONES __attribute__((target_clones(DEEPNODE_CLONE_TARGETS)))
#else
#define DEEPNODE_CLONES
#endif
