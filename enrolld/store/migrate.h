/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_MIGRATE_H
#define ENROLLD_STORE_MIGRATE_H

/*
 * Copying a whole store into another one, of the same or the other backend, with every
 * identity kept (device ids, event sequence numbers, timestamps, states, and the counters,
 * so new ids continue after the copied ones), then proving the copy equal record by record.
 * `enrolld --migrate-to` (enrolld/migrate.c) is the command around it; docs/state.md
 * ("Moving between LMDB and PostgreSQL") says what is and is not copied (enrolld/store/dump.h).
 * Nothing here logs; the source is only read.
 */

#include <stddef.h>

#include "enrolld/store.h"
#include "enrolld/store/dump.h"

/*
 * Everything @s holds into @ret (store_dump_free() it), each kind in a canonical order
 * (by name, id, sequence number or key), so two dumps compare element by element.
 */
int store_dump_read(struct store *s, struct store_dump *ret);

/* 1 if @s holds no record and neither counter has moved, 0 if it does, or a negative errno. */
int store_is_empty(struct store *s);

/*
 * Compare two dumps field by field: 0 if equal, else -EUCLEAN and the first difference in
 * @why ("device 17: addr4 differs ...", "events: 12 in the source, 11 in the copy").
 */
int store_dump_compare(const struct store_dump *src, const struct store_dump *dst, char *why,
	size_t why_len);

/*
 * Copy @src into the empty @dst (-ENOTEMPTY otherwise, nothing written), then read @dst back,
 * check its indexes (store_verify) and compare it with what was read from @src. @ret_dump
 * (may be NULL) gets the source's dump (for the tenant keys and the summary; the caller
 * frees it). 0, or a negative errno with the reason in @why: -EUCLEAN the copy differs.
 */
int store_migrate(struct store *src, struct store *dst, struct store_dump *ret_dump, char *why,
	size_t why_len);

#endif
