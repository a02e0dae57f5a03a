// SPDX-License-Identifier: MIT
/*
 * `enrolld --migrate-to DEST` (enrolld/migrate.h): the command around store_migrate()
 * (enrolld/store/migrate.c). It opens both stores, refuses an LMDB environment another
 * process has open (enrolld must be stopped: LMDB's own lock file tells), copies and
 * verifies the records, then carries the tenants' interface keys across: with LMDB they
 * are files <key_dir>/<tenant>.key (base64, 0600, enrolld/plane.c), with PostgreSQL they
 * are in the database sealed under the KEK (store_tenant_key_get/put). A key is read back
 * from the destination and compared with the source's before it counts as copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"
#include "common/key.h"
#include "common/log.h"
#include "common/secmem.h"
#include "enrolld/migrate.h"
#include "enrolld/store/migrate.h"

struct side {
	const char *label; /* "source", "destination" */
	int backend;       /* enum store_backend_kind */
	const char *where; /* the LMDB directory or the libpq connection string */
	char key_dir[PATH_MAX]; /* LMDB: where the tenants' key files are */
	struct store *s;
};

/*
 * What a log line shows of a side: "lmdb '<dir>'", or only "postgresql": never a connection
 * string (it may hold a password).
 */
static const char *
side_name(const struct side *sd, char *buf, size_t len)
{
	if (sd->backend == STORE_BACKEND_POSTGRESQL)
		snprintf(buf, len, "postgresql");
	else
		snprintf(buf, len, "lmdb '%s'", sd->where);
	return buf;
}

/*
 * Whether another process has the LMDB environment in @dir open: LMDB holds a shared
 * fcntl() lock on the first byte of lock.mdb in every process that has it open, so asking
 * for an exclusive one reports the holder. Returns its pid, 0 if none, or a negative errno.
 * Must be asked before this process opens the environment itself.
 */
static int
lmdb_holder(const char *dir)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char path[PATH_MAX];
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/lock.mdb", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = fcntl(fd, F_GETLK, &fl) < 0 ? -errno : fl.l_type == F_UNLCK ? 0 : (int)fl.l_pid;
	close(fd);
	return r;
}

static int
open_side(struct side *sd, const struct enrolld_conf *conf, const uint8_t *kek)
{
	struct store_options o = { .backend = sd->backend, .kek = kek };
	char name[PATH_MAX + 8];
	int r;

	if (sd->backend == STORE_BACKEND_LMDB) {
		o.map_size_max = (uint64_t)conf->max_size_mib << 20;
		o.map_size = o.map_size_max < STORE_DEFAULT_MAP_SIZE ? o.map_size_max
								     : STORE_DEFAULT_MAP_SIZE;
		r = lmdb_holder(sd->where);
		if (r != 0) {
			if (r > 0)
				log_warnx("the %s '%s' is open in process %d: stop enrolld first",
					sd->label, sd->where, r);
			else
				log_warnx("the %s '%s': %s", sd->label, sd->where, strerror(-r));
			return -EBUSY;
		}
	}
	r = store_open(&sd->s, sd->where, &o);
	if (r < 0)
		log_warnx("cannot open the %s (%s): %s %s", sd->label,
			side_name(sd, name, sizeof(name)), strerror(-r), store_errmsg());
	return r;
}

/* ---- tenant interface keys ------------------------------------------------------------------- */

static int
key_file_path(const struct side *sd, const char *tenant, const char *suffix, char *buf,
	size_t len)
{
	int n = snprintf(buf, len, "%s/%s.key%s", sd->key_dir, tenant, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
key_file_read(const struct side *sd, const char *tenant, uint8_t ret[static WG_KEY_LEN])
{
	char path[PATH_MAX], buf[WG_KEY_B64_LEN + 8];
	ssize_t n;
	int r;

	r = key_file_path(sd, tenant, "", path, sizeof(path));
	if (r < 0)
		return r;
	n = config_read_secret(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	r = key_from_base64(ret, buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/* A new key file, as enrolld/plane.c writes one (key_file_create: never replaces). */
static int
key_file_write(const struct side *sd, const char *tenant, const uint8_t key[static WG_KEY_LEN])
{
	char path[PATH_MAX];
	int r;

	r = key_file_path(sd, tenant, "", path, sizeof(path));
	if (r < 0)
		return r;
	if (mkdir(sd->key_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return key_file_create(sd->key_dir, path, key);
}

static int
key_get(const struct side *sd, const char *tenant, uint8_t ret[static WG_KEY_LEN])
{
	if (sd->backend == STORE_BACKEND_LMDB)
		return key_file_read(sd, tenant, ret);
	return store_tenant_key_get(sd->s, tenant, ret);
}

static int
key_put(const struct side *sd, const char *tenant, const uint8_t key[static WG_KEY_LEN])
{
	if (sd->backend == STORE_BACKEND_LMDB)
		return key_file_write(sd, tenant, key);
	return store_tenant_key_put(sd->s, tenant, key);
}

/*
 * Each tenant's key from @src to @dst, read back and compared. A tenant without a key (its
 * interface never came up) gets one when it first does. Returns how many were copied.
 */
static int
copy_keys(const struct side *src, const struct side *dst, const struct store_dump *d,
	size_t *ret_missing)
{
	uint8_t *buf;
	int copied = 0, r = 0;

	buf = secmem_alloc(2 * WG_KEY_LEN);
	if (buf == NULL)
		return -errno;
	*ret_missing = 0;
	for (size_t i = 0; i < d->n_tenants; i++) {
		const char *t = d->tenants[i].name;
		uint8_t *key = buf, *back = buf + WG_KEY_LEN;

		r = key_get(src, t, key);
		if (r == -ENOENT) {
			log_info("tenant '%s' has no interface key yet (made when its interface "
				 "first comes up)", t);
			(*ret_missing)++;
			r = 0;
			continue;
		}
		if (r < 0) {
			log_warnx("tenant '%s': cannot read its interface key from the source: %s %s",
				t, strerror(-r), src->backend == STORE_BACKEND_LMDB ? "" : store_errmsg());
			break;
		}
		r = key_put(dst, t, key);
		if (r < 0 && r != -EEXIST) {
			log_warnx("tenant '%s': cannot store its interface key in the destination: %s "
				  "%s", t, strerror(-r),
				dst->backend == STORE_BACKEND_LMDB ? "" : store_errmsg());
			break;
		}
		/* -EEXIST: one was there already; it counts only if it is this one */
		r = key_get(dst, t, back);
		if (r < 0 || CRYPTO_memcmp(key, back, WG_KEY_LEN) != 0) {
			log_warnx("tenant '%s': the destination's interface key %s", t,
				r < 0 ? "cannot be read back" : "differs from the source's");
			r = -EUCLEAN;
			break;
		}
		copied++;
	}
	secmem_free(buf, 2 * WG_KEY_LEN);
	return r < 0 ? r : copied;
}

/* ---- the command ------------------------------------------------------------------------------ */

static int
parse_dest(const char *dest, struct side *dst)
{
	int n;

	if (strncmp(dest, "lmdb:", 5) == 0 && dest[5] != '\0') {
		dst->backend = STORE_BACKEND_LMDB;
		dst->where = dest + 5;
		/* the default key_dir of a configuration whose db_path is this directory */
		n = snprintf(dst->key_dir, sizeof(dst->key_dir), "%s/keys", dst->where);
		return n < 0 || (size_t)n >= sizeof(dst->key_dir) ? -ENAMETOOLONG : 0;
	}
	if (strncmp(dest, "postgresql:", 11) == 0 && dest[11] != '\0') {
		dst->backend = STORE_BACKEND_POSTGRESQL;
		dst->where = dest + 11;
		return 0;
	}
	return -EINVAL;
}

int
enrolld_migrate(const struct enrolld_conf *conf, const char *dest)
{
	struct side src = { .label = "source" }, dst = { .label = "destination" };
	struct store_dump d = { 0 };
	uint8_t *kek = NULL;
	size_t missing = 0;
	char why[512], sname[PATH_MAX + 8], dname[PATH_MAX + 8];
	int keys, r, ret = 1;

	if (parse_dest(dest, &dst) < 0) {
		log_warnx("--migrate-to: expected lmdb:<directory> or "
			  "postgresql:<libpq connection string>");
		return 2;
	}
	src.backend = conf->store_backend;
	src.where = src.backend == STORE_BACKEND_POSTGRESQL ? conf->pg_conninfo : conf->db_path;
	snprintf(src.key_dir, sizeof(src.key_dir), "%s", conf->key_dir);
	if (src.backend == STORE_BACKEND_LMDB && dst.backend == STORE_BACKEND_LMDB) {
		char a[PATH_MAX], b[PATH_MAX];

		if (realpath(src.where, a) != NULL && realpath(dst.where, b) != NULL &&
		    strcmp(a, b) == 0) {
			log_warnx("the destination is the source ('%s')", a);
			return 1;
		}
	}
	if (src.backend == STORE_BACKEND_POSTGRESQL || dst.backend == STORE_BACKEND_POSTGRESQL) {
		if (conf->kek_file == NULL) {
			log_warnx("state.kek_file is needed: the PostgreSQL side seals the tenants' "
				  "keys under it (add it to [state], also with backend = lmdb)");
			return 1;
		}
		kek = secmem_alloc(STORE_KEK_LEN);
		if (kek == NULL || conf_read_kek(conf->kek_file, kek) < 0)
			goto out;
	}
	if (open_side(&src, conf, kek) < 0 || open_side(&dst, conf, kek) < 0)
		goto out;
	r = store_verify(src.s, why, sizeof(why));
	if (r < 0) {
		log_warnx("the source is inconsistent (%s): not copying it", why);
		goto out;
	}
	side_name(&src, sname, sizeof(sname));
	side_name(&dst, dname, sizeof(dname));
	log_info("copying %s into %s", sname, dname);
	r = store_migrate(src.s, dst.s, &d, why, sizeof(why));
	if (r == -ENOTEMPTY) {
		log_warnx("the destination (%s) is not empty: nothing copied", dname);
		goto out;
	}
	if (r == -EUCLEAN) {
		log_warnx("migration failed: the copy differs from the source: %s; empty the "
			  "destination (%s) before trying again", why, dname);
		goto out;
	}
	if (r < 0) {
		log_warnx("migration failed: %s (%s); the destination (%s) may hold part of the "
			  "copy: empty it before trying again", why, strerror(-r), dname);
		goto out;
	}
	keys = copy_keys(&src, &dst, &d, &missing);
	if (keys < 0) {
		log_warnx("migration failed while copying the tenants' interface keys; the "
			  "destination (%s) holds the records: empty it before trying again", dname);
		goto out;
	}
	log_info("copied and verified equal: %zu tenants, %zu devices (next id %llu), %zu events "
		 "(last %llu), %zu tokens, %zu registrations, %zu EK revocations, %zu health "
		 "records, %zu device CAs, %zu CRLs, %zu revoked serials, %d interface keys "
		 "(%zu tenants without one); attestation sessions are not copied",
		d.n_tenants, d.n_devices, (unsigned long long)d.next_device, d.n_events,
		(unsigned long long)d.event_seq, d.n_tokens, d.n_regs, d.n_revocations,
		d.n_health, d.n_cas, d.n_crls, d.n_x509, keys, missing);
	if (dst.backend == STORE_BACKEND_LMDB)
		log_info("tenant keys are in '%s' (the default state.key_dir for db_path = '%s')",
			dst.key_dir, dst.where);
	ret = 0;
out:
	store_dump_free(&d);
	store_free(dst.s);
	store_free(src.s);
	secmem_free(kek, STORE_KEK_LEN);
	return ret;
}
