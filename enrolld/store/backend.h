/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_BACKEND_H
#define ENROLLD_STORE_BACKEND_H

/*
 * What a store backend implements. Internal to enrolld/store/: the rest of enrolld calls
 * the functions of enrolld/store.h, whose front (enrolld/store/store.c) dispatches to the
 * backend chosen at store_open() (store_options.backend).
 *
 * The contract, the same for every backend:
 * - Each op has the semantics, errors and ownership rules of its public function in
 *   enrolld/store.h (store_<op>), which is its documentation. The same store test suite
 *   (tests/unit/test_store.c) runs against every backend.
 * - The front validates every argument that can be judged without reading state, before
 *   calling the op: tenant and interface names (store_tenant_name_ok, store_ifname_ok),
 *   NUL-terminated strings within their arrays, lengths (serial_len, nonce_len,
 *   secret_len, ak_name_len, ak_public_len, der_len, n_pcrs), enum values (kind, state),
 *   prefixes and self addresses (a zero self4/self6 is replaced by the first usable address of the
 *   prefix before tenant_create is called). An op may assume that input is valid and
 *   does every check that needs state, in the same transaction as its write.
 * - Writes are durable when the op returns; a failed write leaves nothing behind.
 * - Sequence numbers of events are strictly increasing in commit order: a reader that
 *   has seen event N never later finds a new event below N.
 * - An op sets the thread's error text with store_set_errmsg() where a log line would
 *   want more than the errno (store_errmsg() returns it).
 */

#include <stdarg.h>

#include "enrolld/store.h"
#include "enrolld/store/dump.h"

struct store_backend;

struct store_ops {
	const char *name; /* "lmdb", "postgresql": logs and metrics */
	/* @where: the LMDB directory or the libpq connection string. */
	int (*open)(struct store_backend **ret, const char *where, const struct store_options *opts);
	void (*free)(struct store_backend *b);
	int (*backup)(struct store_backend *b, const char *dir);
	int (*verify)(struct store_backend *b, char *why, size_t why_len);
	int (*tenant_create)(struct store_backend *b, const struct store_tenant *t);
	int (*tenant_get)(struct store_backend *b, const char *name, struct store_tenant *ret);
	int (*tenant_list)(struct store_backend *b, struct store_tenant **ret, size_t *ret_n);
	int (*tenant_set_require_tpm)(struct store_backend *b, const char *name, bool on);
	/* NULL: the backend keeps no tenant keys (LMDB: files in key_dir) -> -EOPNOTSUPP */
	int (*tenant_key_get)(struct store_backend *b, const char *tenant,
		uint8_t ret_priv[static 32]);
	int (*tenant_key_put)(struct store_backend *b, const char *tenant,
		const uint8_t priv[static 32]);
	int (*device_ca_add)(struct store_backend *b, const struct store_device_ca *ca);
	int (*device_ca_remove)(struct store_backend *b, const char *tenant,
		const uint8_t fp[static STORE_HASH_LEN]);
	int (*device_ca_list)(struct store_backend *b, const char *tenant,
		struct store_device_ca **ret, size_t *ret_n);
	int (*device_crl_put)(struct store_backend *b, const struct store_device_crl *crl,
		const uint8_t *der);
	int (*device_crl_remove)(struct store_backend *b, const char *tenant,
		const uint8_t issuer_hash[static STORE_HASH_LEN]);
	int (*device_crl_list)(struct store_backend *b, const char *tenant,
		struct store_device_crl **ret, size_t *ret_n);
	int (*device_crl_each)(struct store_backend *b, const char *tenant, int (*fn)(void *ctx,
		const struct store_device_crl *crl, const uint8_t *der), void *ctx);
	int (*x509_revoke)(struct store_backend *b, const struct store_x509_revoked *rv);
	int (*x509_unrevoke)(struct store_backend *b, const char *tenant, const uint8_t *serial,
		size_t serial_len);
	int (*x509_revoked_list)(struct store_backend *b, const char *tenant,
		struct store_x509_revoked **ret, size_t *ret_n);
	int (*x509_is_revoked)(struct store_backend *b, const char *tenant, const uint8_t *serial,
		size_t serial_len);
	int (*registration_add)(struct store_backend *b, const struct store_registration *r);
	int (*registration_remove)(struct store_backend *b, const char *tenant,
		const uint8_t ek_hash[static STORE_HASH_LEN]);
	int (*registration_get)(struct store_backend *b, const char *tenant,
		const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret);
	int (*registration_list)(struct store_backend *b, const char *tenant,
		struct store_registration **ret, size_t *ret_n);
	int (*token_create)(struct store_backend *b, const struct store_token *t);
	int (*token_list)(struct store_backend *b, const char *tenant, struct store_token **ret,
		size_t *ret_n);
	int (*token_get)(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
		struct store_token *ret);
	int (*token_revoke)(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN]);
	int (*session_create)(struct store_backend *b, const struct store_session *sess,
		uint8_t ret_id[static STORE_SESSION_ID_LEN]);
	int (*session_get)(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
		struct store_session *ret);
	int (*session_use)(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN]);
	int (*session_purge)(struct store_backend *b);
	int (*enroll_prev)(struct store_backend *b, const struct store_enroll_req *req,
		struct store_device *ret_dev, struct store_device *ret_prev);
	int (*device_get)(struct store_backend *b, uint64_t id, struct store_device *ret);
	int (*device_by_pubkey)(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
		struct store_device *ret);
	int (*device_by_ek)(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
		struct store_device *ret);
	int (*device_by_addr)(struct store_backend *b, const char *tenant, int family,
		const uint8_t addr[static 16], struct store_device *ret);
	int (*device_list)(struct store_backend *b, const struct store_device_filter *f,
		struct store_device **ret, size_t *ret_n, uint64_t *ret_next);
	int (*device_list_all)(struct store_backend *b, const char *tenant, uint8_t state,
		struct store_device **ret, size_t *ret_n);
	int (*device_revoke)(struct store_backend *b, uint64_t id, struct store_device *ret_dev);
	int (*device_reinstate)(struct store_backend *b, uint64_t id);
	int (*device_delete)(struct store_backend *b, uint64_t id);
	int (*ek_revoked)(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN]);
	int (*health_update)(struct store_backend *b, const struct store_health *h, size_t n);
	int (*health_get)(struct store_backend *b, uint64_t device, struct store_health *ret);
	/* every stored record of an existing device, by device id, from one snapshot */
	int (*health_list)(struct store_backend *b, struct store_health **ret, size_t *ret_n);
	int (*events_read)(struct store_backend *b, uint64_t after, size_t max,
		struct store_event **ret, size_t *ret_n);
	int (*events_last)(struct store_backend *b, uint64_t *ret_seq);
	int (*events_wait)(struct store_backend *b, uint64_t after, int timeout_ms);
	void (*get_stats)(struct store_backend *b, struct store_stats *ret);
	/*
	 * Migration between backends (enrolld/store/migrate.c, enrolld/store/dump.h); no public
	 * function of store.h of their own.
	 * export_raw: what the public reads cannot give, from one snapshot: d->next_device,
	 * d->event_seq, d->revocations and d->health (malloc()ed; the caller frees them with
	 * store_dump_free); the other members of @d are left alone.
	 * import: write every record of @d as it is (ids, sequence numbers, timestamps, states),
	 * the indexes they need and both counters, in one transaction, and only into an empty
	 * store: -ENOTEMPTY if it holds any tenant, device, EK revocation, event, session or a
	 * counter past its start. A failure writes nothing.
	 */
	int (*export_raw)(struct store_backend *b, struct store_dump *d);
	int (*import)(struct store_backend *b, const struct store_dump *d);
};

extern const struct store_ops store_lmdb_ops;
extern const struct store_ops store_pg_ops;

/* The thread's last error text for store_errmsg() (truncated to 160 bytes). */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
