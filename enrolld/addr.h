/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_ADDR_H
#define ENROLLD_ADDR_H

/*
 * Tenant prefixes and host addresses: parsing, formatting, and the allocation rule.
 *
 * An address inside a prefix is handled as its host offset from the network address (a
 * uint64_t: IPv6 host space is limited to the low 64 bits, far more than a fleet needs).
 * Usable offsets of a prefix:
 *   IPv4 /0../30   1 .. 2^(32-plen) - 2   (never the network, never the broadcast)
 *   IPv4 /31       0 .. 1                 (RFC 3021 point-to-point: both usable)
 *   IPv4 /32       none
 *   IPv6 /0../127  1 .. 2^min(64,128-plen) - 1   (never the subnet-router anycast ::0)
 *   IPv6 /128      none
 * The control plane's own address is excluded on top of that (addr_alloc_begin).
 *
 * Allocation is "lowest free": the caller walks the used offsets of a tenant in ascending
 * order (the store's address index is sorted that way) and feeds them to addr_alloc_feed()
 * until it says stop, then addr_alloc_end() gives the answer. No memory, O(used).
 *
 * All functions return 0 or a negative errno and never log.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_STR_LEN 64 /* enough for an IPv6 literal with "/128" */

struct addr_prefix {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t plen;
	uint8_t addr[16]; /* network address; IPv4 in the first 4 bytes, rest zero */
};

/* Bytes of an address of @family: 4 or 16 (0 for anything else). */
size_t addr_len(int family);

/*
 * Parse "a.b.c.d/n" or "x::/n". Host bits must be zero (-EINVAL otherwise: a typo in a
 * prefix must not silently become another prefix).
 */
int addr_prefix_parse(struct addr_prefix *ret, const char *cidr);
int addr_prefix_format(const struct addr_prefix *p, char *buf, size_t len);

/* Parse a bare address; *ret_family is AF_INET or AF_INET6, @ret_addr gets 4 or 16 bytes. */
int addr_parse(int *ret_family, uint8_t ret_addr[static 16], const char *s);
int addr_format(int family, const uint8_t addr[static 16], char *buf, size_t len);

bool addr_in_prefix(const struct addr_prefix *p, int family, const uint8_t addr[static 16]);
bool addr_prefix_overlap(const struct addr_prefix *a, const struct addr_prefix *b);
/* @p lies inside one of the @n prefixes of @set (same family, no shorter than it). */
bool addr_prefix_in_set(const struct addr_prefix *p, const struct addr_prefix *set, size_t n);

/* Host offset of @addr in @p; -EINVAL if not inside or beyond 64 host bits. */
int addr_offset(const struct addr_prefix *p, const uint8_t addr[static 16], uint64_t *ret_off);
/* The address at host offset @off of @p (no range check: use addr_usable_range). */
void addr_at(const struct addr_prefix *p, uint64_t off, uint8_t ret_addr[static 16]);

/* First and last usable offsets; -EADDRNOTAVAIL if the prefix has none. */
int addr_usable_range(const struct addr_prefix *p, uint64_t *ret_first, uint64_t *ret_last);
/* Whether @addr is a usable host address of @p (not network/broadcast, inside). */
bool addr_is_usable(const struct addr_prefix *p, const uint8_t addr[static 16]);

struct addr_alloc {
	uint64_t cand;
	uint64_t last;
	uint64_t self;
	bool has_self;
	bool full;
};

/*
 * Start a lowest-free search in @p at offset @from or above (a low-water mark the caller
 * knows everything below is taken; 0 = from the start), never returning @self (the
 * control plane's own address; NULL for none).
 */
int addr_alloc_begin(struct addr_alloc *a, const struct addr_prefix *p, const uint8_t *self,
	uint64_t from);
/*
 * Feed the next used offset (ascending, duplicates allowed). Returns true when the
 * search is decided (the candidate is below @used, or the space is exhausted) and the
 * caller may stop walking.
 */
bool addr_alloc_feed(struct addr_alloc *a, uint64_t used);
/* The lowest free usable offset, or -EADDRNOTAVAIL. */
int addr_alloc_end(const struct addr_alloc *a, uint64_t *ret_off);

#endif
