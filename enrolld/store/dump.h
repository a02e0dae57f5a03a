/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_DUMP_H
#define ENROLLD_STORE_DUMP_H

/*
 * A whole store as plain arrays of the records of enrolld/store.h, with their identities
 * (device ids, event sequence numbers) and the counters that hand out the next ones: what
 * `enrolld --migrate-to` copies from one backend into another (enrolld/store/migrate.c,
 * docs/state.md "Moving between LMDB and PostgreSQL").
 *
 * Not in a dump: attestation sessions (they expire within minutes: a challenge open during
 * the move is answered session_expired/unknown_session and the device retries), the address
 * low-water marks (an optimisation: allocation still finds the lowest free address, they
 * grow again), the tenants' leases of a cluster (runtime state) and the tenants' interface
 * keys (files with LMDB; copied by enrolld/migrate.c through store_tenant_key_get/put).
 */

#include <stddef.h>
#include <stdint.h>

#include "enrolld/store.h"

/* An EK revoked by store_device_revoke(): kept after its device is deleted. */
struct store_dump_revocation {
	uint8_t ek_hash[STORE_HASH_LEN];
	uint64_t device;
	int64_t time;
};

struct store_dump_crl {
	struct store_device_crl rec;
	uint8_t *der; /* rec.der_len bytes */
};

struct store_dump {
	uint64_t next_device; /* the id the next new device gets (1 in an empty store) */
	uint64_t event_seq;   /* the last event sequence number handed out (0: none) */
	struct store_tenant *tenants;
	size_t n_tenants;
	struct store_device_ca *cas;
	size_t n_cas;
	struct store_dump_crl *crls;
	size_t n_crls;
	struct store_x509_revoked *x509;
	size_t n_x509;
	struct store_registration *regs;
	size_t n_regs;
	struct store_token *tokens;
	size_t n_tokens;
	struct store_device *devices;
	size_t n_devices;
	struct store_dump_revocation *revocations;
	size_t n_revocations;
	struct store_health *health; /* the stored health records (a device without one: NEVER) */
	size_t n_health;
	struct store_event *events;
	size_t n_events;
};

/* The front's doors to the backend's ops of the same names (backend.h). */
int store_export_raw(struct store *s, struct store_dump *d);
int store_import(struct store *s, const struct store_dump *d);

/* Frees what a dump holds (and wipes nothing: a dump holds no secret). NULL is a no-op. */
void store_dump_free(struct store_dump *d);

#endif
