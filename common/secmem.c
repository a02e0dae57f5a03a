// SPDX-License-Identifier: MIT
#include <errno.h>
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
