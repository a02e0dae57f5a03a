/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_H
#define ENROLLD_STORE_H

/*
 * enrolld's durable state in LMDB (docs/state.md has the data model and the rules).
 *
 * - Every function returns 0 (or a count) or a negative errno; MDB_* codes are converted
 *   here and nowhere else (MDB_MAP_FULL that cannot be grown, like a full file system,
 *   -> -ENOSPC; an exhausted prefix is -EADDRNOTAVAIL; MDB_NOTFOUND ->
 *   -ENOENT, ...). store_errmsg() gives the last LMDB message of the calling thread for a
 *   log line. Nothing here logs above debug. PostgreSQL: -ENOTCONN when the database
 *   cannot be reached (nothing was done; try later), -EIO when a COMMIT's outcome is
 *   unknown.
 * - Writes are durable when the call returns (no MDB_NOSYNC/MDB_NOMETASYNC). They all go
 *   through one writer thread that groups what is queued into one LMDB commit (group
 *   commit); each operation runs in its own nested transaction, so one that fails does not
 *   disturb the others of its batch. A write either fully happens or not at all.
 * - Reads run in the calling thread in LMDB read transactions and never wait for writes.
 * - Thread-safe: one struct store is shared by all threads of the process.
 * - Returned arrays are malloc()ed and owned by the caller (free()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "enrolld/addr.h"

#define STORE_FORMAT_VERSION 1
#define STORE_DEFAULT_MAP_SIZE (UINT64_C(1) << 30) /* 1 GiB */

#define STORE_NAME_MAX 32 /* tenant names: 1..31 of [a-z0-9_-], starting alnum */
#define STORE_IFNAME_MAX 16
#define STORE_ENDPOINT_MAX 256
#define STORE_LABEL_MAX 64
#define STORE_HASH_LEN 32 /* SHA-256 */
#define STORE_KEY_LEN 32  /* WireGuard public key */
#define STORE_SESSION_ID_LEN 16
#define STORE_NONCE_MAX 64
#define STORE_SECRET_MAX 64
#define STORE_AK_NAME_MAX 68 /* TPM2B_NAME buffer: 2 + 66 */
/*
 * An AK public area (TPM2B_PUBLIC, marshalled). The largest AK the attestation accepts,
 * RSA-3072 with a 64-byte authPolicy, is 474 bytes.
 */
#define STORE_AK_PUBLIC_MAX 512
#define STORE_PCR_MAX 24
#define STORE_SERIAL_MAX 32   /* X.509 serial octets */
#define STORE_CA_DER_MAX 8192 /* a device CA certificate, DER */
#define STORE_SUBJECT_MAX 128

struct store;

enum store_backend_kind {
	STORE_BACKEND_LMDB = 0,       /* the embedded default: @path of store_open is a directory */
	STORE_BACKEND_POSTGRESQL = 1, /* @path of store_open is a libpq connection string */
};

#define STORE_KEK_LEN 32

struct store_options {
	int backend; /* enum store_backend_kind */
	/*
	 * Key-encryption key for secrets at rest (AES-256-GCM): session secrets, later tenant
	 * keys. Required by the PostgreSQL backend (-EINVAL without), unused by LMDB. Copied at
	 * open into locked memory; the caller wipes its own copy.
	 */
	const uint8_t *kek;
	uint64_t map_size;     /* initial map size, 0 = STORE_DEFAULT_MAP_SIZE */
	uint64_t map_size_max; /* growth limit on MDB_MAP_FULL, 0 = 64 x map_size */
	bool no_group_commit;  /* one commit per operation (benchmarks, comparisons) */
	unsigned int max_batch; /* operations per commit, 0 = 128 */
	/* Wall clock in seconds; NULL = time(). Tests move time forward with it. */
	int64_t (*clock)(void *ctx);
	void *clock_ctx;
};

/*
 * Open (creating if needed, mode 0700) the LMDB environment in directory @path, check or
 * write the format version and start the writer thread. -EPROTO if the on-disk format is
 * newer than this code understands.
 */
int store_open(struct store **ret, const char *path, const struct store_options *opts);
void store_free(struct store *s);

/* The last LMDB error text of the calling thread ("" if none), for logs. */
const char *store_errmsg(void);

/*
 * A consistent copy of the live database into directory @dir (must exist and be empty),
 * compacted (mdb_env_copy2 with MDB_CP_COMPACT). Runs in a read transaction: writers go on.
 */
int store_backup(struct store *s, const char *dir);

/*
 * Check every index against the primary records and that no address is held twice in a
 * tenant. Returns 0 if consistent, -EUCLEAN otherwise (with a reason in @why).
 */
int store_verify(struct store *s, char *why, size_t why_len);

/* ---- tenants ---------------------------------------------------------------------------- */

struct store_pcr {
	uint8_t index;
	uint8_t sha256[32];
};

struct store_tenant {
	char name[STORE_NAME_MAX];
	struct addr_prefix prefix4;
	struct addr_prefix prefix6; /* family 0 = no IPv6 */
	uint8_t self4[16];          /* the control plane's own address in prefix4 */
	uint8_t self6[16];          /* and in prefix6 */
	char ifname[STORE_IFNAME_MAX];
	char endpoint[STORE_ENDPOINT_MAX]; /* "host:port" the devices dial */
	uint16_t listen_port;
	uint16_t keepalive; /* seconds */
	uint8_t require_tpm;
	uint8_t n_pcrs;
	struct store_pcr pcrs[STORE_PCR_MAX]; /* PCR policy, sorted by index, may be empty */
	int64_t created;
};

/*
 * Create a tenant. A zero self4/self6 picks the first usable address of the prefix.
 * -EINVAL for a bad name, prefix (IPv4 required, /30 or longer has no room), self address,
 * PCR index or interface name; -EEXIST if the name exists or the interface, listen port or
 * a prefix is already used by another tenant.
 */
/*
 * The names the store accepts: a tenant's (1-31 of a-z 0-9 - _, starting with a letter or
 * digit) and an interface's (1-15 printable characters, no '/', ':' or blank).
 */
bool store_tenant_name_ok(const char *name);
bool store_ifname_ok(const char *name);
int store_tenant_create(struct store *s, const struct store_tenant *t);
int store_tenant_get(struct store *s, const char *name, struct store_tenant *ret);
int store_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n);

/* Turn a tenant's require_tpm policy on or off. -ENOENT no such tenant. */
int store_tenant_set_require_tpm(struct store *s, const char *name, bool on);

/* ---- device CAs (X.509 enrollment) per tenant ----------------------------------------------- */

struct store_device_ca {
	char tenant[STORE_NAME_MAX];
	uint8_t fp[STORE_HASH_LEN]; /* SHA-256 of the DER */
	char subject[STORE_SUBJECT_MAX];
	char label[STORE_LABEL_MAX];
	int64_t created;
	uint16_t der_len;
	uint8_t der[STORE_CA_DER_MAX];
};

/* -ENOENT no tenant, -EEXIST this CA is already trusted by the tenant, -EINVAL bad record. */
int store_device_ca_add(struct store *s, const struct store_device_ca *ca);
int store_device_ca_remove(struct store *s, const char *tenant,
	const uint8_t fp[static STORE_HASH_LEN]);
/* @tenant NULL = every tenant's CAs (in tenant order). */
int store_device_ca_list(struct store *s, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n);

/* ---- device CA revocation lists per tenant (X.509 enrollment) --------------------------- */

#define STORE_CRL_DER_MAX (1 << 20)
#define STORE_CRL_NUMBER_MAX 20

/* On disk: this record, then der_len bytes of the CRL's DER. One CRL per issuer. */
struct store_device_crl {
	char tenant[STORE_NAME_MAX];
	uint8_t issuer_hash[STORE_HASH_LEN]; /* SHA-256 of the issuer Name's DER: the key */
	char issuer[STORE_SUBJECT_MAX];
	int64_t created;
	int64_t this_update;
	int64_t next_update; /* 0: none */
	uint8_t number[STORE_CRL_NUMBER_MAX]; /* crlNumber, big endian */
	uint8_t number_len;                   /* 0: the CRL has none */
	uint8_t reserved[3];
	uint32_t der_len;
};

/*
 * Store @crl with its DER @der, replacing the tenant's CRL of the same issuer only by a
 * newer one (a higher crlNumber when both have one, else a later thisUpdate): 0 added,
 * 1 replaced, -ESTALE not newer than the stored one (a rollback would un-revoke),
 * -ENOENT no tenant, -EINVAL bad record.
 */
int store_device_crl_put(struct store *s, const struct store_device_crl *crl, const uint8_t *der);
int store_device_crl_remove(struct store *s, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN]);
/* The records without their DER. @tenant NULL = every tenant's. */
int store_device_crl_list(struct store *s, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n);
/*
 * Call @fn for each CRL of @tenant (record and DER, valid during the call only), in one
 * read transaction; a negative return of @fn stops and is returned.
 */
int store_device_crl_each(struct store *s, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx);

/* ---- revoked certificate serials per tenant ------------------------------------------------ */

struct store_x509_revoked {
	char tenant[STORE_NAME_MAX];
	uint8_t serial[STORE_SERIAL_MAX];
	uint8_t serial_len;
	char label[STORE_LABEL_MAX];
	int64_t created;
};

/* -ENOENT no tenant, -EEXIST already revoked. */
int store_x509_revoke(struct store *s, const struct store_x509_revoked *rv);
int store_x509_unrevoke(struct store *s, const char *tenant, const uint8_t *serial,
	size_t serial_len);
int store_x509_revoked_list(struct store *s, const char *tenant,
	struct store_x509_revoked **ret, size_t *ret_n);
/* 1 if @serial is revoked in @tenant, 0 if not. */
int store_x509_is_revoked(struct store *s, const char *tenant, const uint8_t *serial,
	size_t serial_len);

/* ---- factory registrations (EK allowlist per tenant) -------------------------------------- */

struct store_registration {
	char tenant[STORE_NAME_MAX];
	uint8_t ek_hash[STORE_HASH_LEN];
	char label[STORE_LABEL_MAX];
	int64_t created;
};

/* -ENOENT no tenant, -EEXIST already registered in this tenant. */
int store_registration_add(struct store *s, const struct store_registration *r);
int store_registration_remove(struct store *s, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN]);
/* One registration by (tenant, EK hash): 0, or -ENOENT. @ret may be NULL. */
int store_registration_get(struct store *s, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret);
int store_registration_list(struct store *s, const char *tenant,
	struct store_registration **ret, size_t *ret_n);

/* ---- enrollment tokens (only the SHA-256 of a token is stored) -------------------------- */

struct store_token {
	uint8_t hash[STORE_HASH_LEN];
	char tenant[STORE_NAME_MAX];
	char label[STORE_LABEL_MAX];
	uint32_t uses_left;
	int64_t expires; /* unix seconds; 0 = never */
	int64_t created;
	uint8_t revoked;
};

int store_token_create(struct store *s, const struct store_token *t);
/* @tenant NULL = all tenants. */
int store_token_list(struct store *s, const char *tenant, struct store_token **ret,
	size_t *ret_n);
int store_token_get(struct store *s, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret);
int store_token_revoke(struct store *s, const uint8_t hash[static STORE_HASH_LEN]);

/* ---- attestation sessions ----------------------------------------------------------------- */

struct store_session {
	uint8_t id[STORE_SESSION_ID_LEN];
	char tenant[STORE_NAME_MAX];
	uint8_t ek_hash[STORE_HASH_LEN];
	uint8_t ak_name[STORE_AK_NAME_MAX];
	uint8_t ak_name_len;
	uint8_t wg_pubkey[STORE_KEY_LEN];
	uint8_t nonce[STORE_NONCE_MAX];
	uint8_t nonce_len;
	uint8_t secret[STORE_SECRET_MAX]; /* wiped in the record when the session is used */
	uint8_t secret_len;
	uint8_t used;
	uint8_t has_token; /* authorised by a token (its hash below), else by registration */
	uint8_t token_hash[STORE_HASH_LEN];
	int64_t expires;
	/*
	 * The AK's public area as the device sent it (not secret), so that any node can rebuild
	 * the challenge; 0 = not kept (LMDB records written before it existed).
	 */
	uint16_t ak_public_len;
	uint8_t ak_public[STORE_AK_PUBLIC_MAX];
};

/*
 * Whether this store keeps a session's secret sealed at rest (under the KEK: PostgreSQL),
 * so that a completion on another node can check it. LMDB keeps records in clear: there
 * the secret stays in the answering process's memory (store_session.secret_len 0).
 */
bool store_seals_secrets(const struct store *s);

/*
 * Store a session. A zero id gets a random one; the id used is written to @ret_id.
 * Expired sessions are purged on the way.
 */
int store_session_create(struct store *s, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN]);
/*
 * Read a session, secret included: the caller wipes @ret with store_session_wipe() when
 * done. -ENOENT unknown, -ETIMEDOUT expired, -EALREADY used.
 */
int store_session_get(struct store *s, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret);
/* Mark a session used (e.g. after a failed attestation) and wipe its stored secret. */
int store_session_use(struct store *s, const uint8_t id[static STORE_SESSION_ID_LEN]);
void store_session_wipe(struct store_session *sess);
/* Delete sessions past their expiry (used ones are kept until then). Returns how many. */
int store_session_purge(struct store *s);

/* ---- tenant interface keys (PostgreSQL) ------------------------------------------------------ */

/*
 * With the PostgreSQL backend the private key of each tenant's WireGuard interface lives in
 * the database, sealed with the KEK (AES-256-GCM, the tenant's name as associated data), so
 * that whichever node holds the tenant brings its interface up with the same key. Never in
 * clear in the database. The LMDB backend keeps keys as files in [state] key_dir and
 * answers -EOPNOTSUPP here.
 *
 * get: the key into @ret_priv (caller wipes); -ENOENT none stored yet, -EBADMSG the sealed
 * key does not open (another KEK).
 * put: store @priv if the tenant has no key yet; -EEXIST if it has one (the stored key wins:
 * read it with get), -ENOENT no such tenant.
 */
int store_tenant_key_get(struct store *s, const char *tenant, uint8_t ret_priv[static 32]);
int store_tenant_key_put(struct store *s, const char *tenant, const uint8_t priv[static 32]);

/* ---- devices and enrollment ----------------------------------------------------------------- */

enum store_device_state {
	STORE_DEVICE_ACTIVE = 1,
	STORE_DEVICE_REVOKED = 2,
};

enum store_attest_kind {
	STORE_ATTEST_TPM = 1,
	STORE_ATTEST_X509 = 2,
};

struct store_device {
	uint64_t id; /* never 0, never reused */
	char tenant[STORE_NAME_MAX];
	uint8_t addr4[16];
	uint8_t addr6[16];
	uint8_t has_addr6;
	uint8_t state; /* enum store_device_state */
	uint8_t kind;  /* enum store_attest_kind */
	uint8_t wg_pubkey[STORE_KEY_LEN];
	uint8_t ek_hash[STORE_HASH_LEN];
	int64_t created;
	int64_t updated;
	int64_t revoked; /* 0 if never revoked */
};

struct store_enroll_req {
	char tenant[STORE_NAME_MAX];
	/* TPM: SHA-256 of the EK; X.509: the certificate's identity hash (x509_peer_identity) */
	uint8_t ek_hash[STORE_HASH_LEN];
	uint8_t wg_pubkey[STORE_KEY_LEN];
	uint8_t kind; /* enum store_attest_kind */
	/*
	 * X.509: the certificate (verified by the caller against the tenant's device CAs) is
	 * the authorisation; its serial is checked against the tenant's revoked serials and the
	 * tenant's require_tpm policy in the same transaction. Token/registration are not used.
	 */
	uint8_t serial[STORE_SERIAL_MAX];
	uint8_t serial_len;
	/* TPM authorisation: a token (consumes one use), else a registration of ek_hash. */
	bool has_token;
	uint8_t token_hash[STORE_HASH_LEN];
	/* The attestation session to consume (must match tenant, EK and key); optional. */
	bool has_session;
	uint8_t session_id[STORE_SESSION_ID_LEN];
};

enum store_enroll_result {
	STORE_ENROLL_NEW = 1,      /* new device, new address */
	STORE_ENROLL_ROTATED = 2,  /* same EK, new WireGuard key, same address */
	STORE_ENROLL_SAME = 3,     /* same EK and key again: nothing changed but auth use */
	STORE_ENROLL_RENEWED = 4,  /* a reinstated (revoked) device is active again */
};

/*
 * Enroll, in one write transaction: session (exists, matches, not expired, not used ->
 * used), revocation of the EK (-EPERM), authorisation (token: exists, same tenant, not
 * revoked (-EACCES), not expired (-ETIMEDOUT), a use left (-EACCES) -> one use consumed;
 * else a registration (-EACCES)), then the device: new (lowest free address,
 * -EADDRNOTAVAIL when the prefix is full), or the EK's existing device (keeps its address;
 * new key = rotation).
 * -EEXIST if the key belongs to another device or the EK to a device of another tenant.
 * X.509 (kind STORE_ATTEST_X509): -EPROTONOSUPPORT if the tenant requires a TPM,
 * -EKEYREVOKED if the serial is revoked in the tenant; no token or registration.
 * On success *ret_dev is the device as committed and the return value a
 * enum store_enroll_result. On any error nothing is written.
 */
int store_enroll(struct store *s, const struct store_enroll_req *req,
	struct store_device *ret_dev);
/*
 * The same, and in *ret_prev the EK's device as it was just before, read in the same
 * transaction (id 0: this enrollment created the device). Its key is the one the enrollment
 * replaced: a read before the call cannot tell that when enrollments of one EK run
 * concurrently.
 */
int store_enroll_prev(struct store *s, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev);

int store_device_get(struct store *s, uint64_t id, struct store_device *ret);
int store_device_by_pubkey(struct store *s, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret);
int store_device_by_ek(struct store *s, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret);
int store_device_by_addr(struct store *s, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret);

struct store_device_filter {
	const char *tenant; /* NULL = all */
	uint8_t state;      /* 0 = any */
	uint64_t after;     /* cursor: ids greater than this (0 = from the start) */
	unsigned int limit; /* 0 = 100; at most 1000 */
};

/*
 * Devices in id order (creation order). *ret_next is the cursor for the next page, 0 when
 * this was the last page.
 */
int store_device_list(struct store *s, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next);
/* Every device of @tenant (NULL: all) in @state (0: any), all pages; free *ret. */
int store_device_list_all(struct store *s, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n);

/*
 * Revoke: the device becomes revoked (its address stays reserved), its EK is recorded as
 * revoked, an event is appended. -EALREADY if already revoked.
 */
int store_device_revoke(struct store *s, uint64_t id, struct store_device *ret_dev);
/*
 * Reinstate: clear the revocation of the device's EK; the device stays revoked until it
 * enrolls again (fresh attestation), then gets its old address back. -EALREADY if its EK
 * is not revoked.
 */
int store_device_reinstate(struct store *s, uint64_t id);
/* Delete a revoked device for good: frees its address. -EBUSY if it is active. */
int store_device_delete(struct store *s, uint64_t id);

/* Whether an EK is revoked: 1 yes, 0 no. */
int store_ek_revoked(struct store *s, const uint8_t ek_hash[static STORE_HASH_LEN]);

/* ---- health ------------------------------------------------------------------------------ */

enum store_health_state {
	STORE_HEALTH_NEVER = 0,
	STORE_HEALTH_UP = 1,
	STORE_HEALTH_DOWN = 2,
};

struct store_health {
	uint64_t device;
	uint8_t state; /* enum store_health_state */
	int64_t since;
};

/*
 * Record health states of several devices in one commit. Only changes are written, and
 * each change appends an up/down event. Returns the number of transitions recorded.
 * Unknown devices are skipped (they may have been deleted since the tick started).
 */
int store_health_update(struct store *s, const struct store_health *h, size_t n);
/* A device never seen gets state NEVER, since 0. */
int store_health_get(struct store *s, uint64_t device, struct store_health *ret);
/*
 * Every stored health record, of the devices that exist, sorted by device id, read at once
 * (one cursor walk or one query) into a malloc()ed *ret (NULL when none): what a health
 * monitor starting over the whole fleet needs, instead of a store_health_get per device. A
 * device without a record has state NEVER, since 0, as store_health_get says.
 */
int store_health_list(struct store *s, struct store_health **ret, size_t *ret_n);

/* ---- event log ----------------------------------------------------------------------------- */

enum store_event_kind {
	STORE_EV_ENROLLED = 1,
	STORE_EV_UP = 2,
	STORE_EV_DOWN = 3,
	STORE_EV_REVOKED = 4,
	STORE_EV_REINSTATED = 5,
	STORE_EV_ROTATED = 6,
};

struct store_event {
	uint64_t seq; /* from 1, strictly increasing, never reused */
	int64_t time;
	uint8_t kind;
	uint64_t device;
	char tenant[STORE_NAME_MAX];
};

const char *store_event_kind_name(int kind);

/* Events with seq > @after, at most @max (0 = 1000), in order. */
int store_events_read(struct store *s, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n);
/* The newest sequence number (0 if none). */
int store_events_last(struct store *s, uint64_t *ret_seq);
/*
 * Wait until an event newer than @after is committed or @timeout_ms passes. Returns 1 if
 * there is one, 0 on timeout (for the SSE stream).
 */
int store_events_wait(struct store *s, uint64_t after, int timeout_ms);

/* ---- statistics (for the benchmark and metrics) --------------------------------------------- */

struct store_stats {
	uint64_t commits;      /* write transactions committed (LMDB: batches) */
	uint64_t lazy_commits; /* of those, not flushed before answered: open sessions */
	uint64_t operations;   /* write operations committed or failed in them */
	uint64_t map_size;
};

void store_get_stats(struct store *s, struct store_stats *ret);

#endif
