// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/secmem.h"

static size_t
round_to_pages(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) / page * page;
}

/*
 * Freed one-page regions, wiped and still locked, kept for the next one-page allocation:
 * a daemon that builds a small wg_device per enrollment would otherwise mmap, mlock,
 * munlock and munmap a page each time, and every munmap of a threaded process costs a TLB
 * shootdown on the other cores (5% of enrolld's samples under enrollment load).
 */
#define SECMEM_CACHE 16
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *cache[SECMEM_CACHE];
static size_t n_cache;

/*
 * Locks are not inherited across fork(): in a child the cached pages would be unlocked
 * secret memory. The child drops them (privilege separation forks enrolld).
 */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
cache_prepare(void)
{
	pthread_mutex_lock(&cache_lock);
}

static void
cache_parent(void)
{
	pthread_mutex_unlock(&cache_lock);
}

static void
cache_child(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	while (n_cache > 0)
		munmap(cache[--n_cache], page); /* wiped when they were cached */
	pthread_mutex_unlock(&cache_lock);
}

static void
cache_atfork(void)
{
	(void)pthread_atfork(cache_prepare, cache_parent, cache_child);
}

static void *
cache_take(void)
{
	void *p = NULL;

	pthread_mutex_lock(&cache_lock);
	if (n_cache > 0)
		p = cache[--n_cache];
	pthread_mutex_unlock(&cache_lock);
	return p;
}

static bool
cache_put(void *p)
{
	bool kept = false;

	pthread_once(&atfork_once, cache_atfork);
	pthread_mutex_lock(&cache_lock);
	if (n_cache < SECMEM_CACHE) {
		cache[n_cache++] = p;
		kept = true;
	}
	pthread_mutex_unlock(&cache_lock);
	return kept;
}

void *
secmem_alloc(size_t len)
{
	size_t maplen;
	void *p;

	if (len == 0) {
		errno = EINVAL;
		return NULL;
	}
	maplen = round_to_pages(len);
	/* a cached page was wiped when it was freed: zeroed, like a new mapping */
	if (maplen == round_to_pages(1) && (p = cache_take()) != NULL)
		return p;
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mlock(p, maplen) < 0) {
		int saved = errno;

		munmap(p, maplen);
		errno = saved;
		return NULL;
	}
	/* Best effort: older kernels lack it, and the lock already keeps it off swap. */
	(void)madvise(p, maplen, MADV_DONTDUMP);
	return p;
}

void
secmem_free(void *p, size_t len)
{
	size_t maplen;

	if (p == NULL)
		return;
	maplen = round_to_pages(len);
	explicit_bzero(p, maplen);
	if (maplen == round_to_pages(1) && cache_put(p))
		return;
	munlock(p, maplen);
	munmap(p, maplen);
}

void
secmem_wipe(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
}

int
secmem_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		return -errno;
	return 0;
}
