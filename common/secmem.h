/* SPDX-License-Identifier: MIT */
#ifndef COMMON_SECMEM_H
#define COMMON_SECMEM_H

#include <stddef.h>

/*
 * Memory for secrets: page-aligned, mlock()ed, excluded from core dumps
 * (MADV_DONTDUMP), wiped with explicit_bzero before it is returned to the system.
 * secmem_alloc returns NULL and sets errno on failure (mlock may fail under a low
 * RLIMIT_MEMLOCK: that is an error, not silently ignored). secmem_free(NULL, n) is a
 * no-op. Memory from secmem_alloc is zeroed. Up to 16 freed one-page regions are kept
 * (wiped, still locked) for the next one-page allocations instead of being unmapped.
 */
void *secmem_alloc(size_t len);
void secmem_free(void *p, size_t len);

/* Wipe @len bytes at @p in a way the compiler cannot elide. */
void secmem_wipe(void *p, size_t len);

/*
 * Harden the process for holding keys: PR_SET_DUMPABLE 0 and no core files.
 * Returns 0 or a negative errno.
 */
int secmem_harden_process(void);

#endif
