// SPDX-License-Identifier: MIT
/*
 * The state directory's files. Each file is one object, so replacing it is one atomic
 * rename:
 *
 *   "EKTP" | version (1) | kind (1) | 0 0 | records...
 *   record: tag (u16 BE) | length (u16 BE) | value
 *     1 TPM2B_PUBLIC, 2 TPM2B_PRIVATE (both tss2-mu marshalled), 3 WireGuard public key
 *     (32 bytes), 4 TPML_PCR_SELECTION of the sealed key's PolicyPCR.
 *
 * An AK file has 1 and 2; a sealed key file 1, 2, 3 and optionally 4. Anything else
 * (unknown or repeated tag, missing record, bad length, trailing bytes) is -EBADMSG. The
 * private part is the TPM's own encrypted blob (wrapped by the parent SRK's seed): no
 * plaintext key is ever written here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>

#include "common/log.h"
#include "edge-keyd/tpm/tpmdev_int.h"

#define FILE_MAGIC "EKTP"
#define FILE_VERSION 1
#define FILE_MAX 16384

enum {
	TAG_PUBLIC = 1,
	TAG_PRIVATE = 2,
	TAG_WG_PUB = 3,
	TAG_POLICY = 4,
};

int
tpmdev_state_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int
tpmdev_own_like_dir(int fd, const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(dir, &st) < 0)
		return -errno;
	if (st.st_uid == 0)
		return 0;
	return fchown(fd, st.st_uid, st.st_gid) < 0 ? -errno : 0;
}

static int
path_of(char *buf, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int
put_record(uint8_t *buf, size_t cap, size_t *off, unsigned tag, const uint8_t *v, size_t len)
{
	if (len > 0xffff || cap - *off < 4 + len)
		return -ENOBUFS;
	buf[*off] = (uint8_t)(tag >> 8);
	buf[*off + 1] = (uint8_t)tag;
	buf[*off + 2] = (uint8_t)(len >> 8);
	buf[*off + 3] = (uint8_t)len;
	memcpy(buf + *off + 4, v, len);
	*off += 4 + len;
	return 0;
}

static int
file_encode(const struct tpmdev_file *f, uint8_t *buf, size_t cap, size_t *ret_len)
{
	uint8_t tmp[sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE)];
	size_t off = 8, n;
	int ret;

	memcpy(buf, FILE_MAGIC, 4);
	buf[4] = FILE_VERSION;
	buf[5] = (uint8_t)f->kind;
	buf[6] = buf[7] = 0;

	ret = tpm2_marshal_tpm2b_public(&f->pub, tmp, sizeof(tmp), &n);
	if (ret == 0)
		ret = put_record(buf, cap, &off, TAG_PUBLIC, tmp, n);
	if (ret < 0)
		return ret;
	n = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Marshal(&f->priv, tmp, sizeof(tmp), &n) != TSS2_RC_SUCCESS)
		return -EINVAL;
	ret = put_record(buf, cap, &off, TAG_PRIVATE, tmp, n);
	if (ret < 0)
		return ret;
	if (f->kind == TPMDEV_FILE_SEALED) {
		ret = put_record(buf, cap, &off, TAG_WG_PUB, f->wg_pub, sizeof(f->wg_pub));
		if (ret < 0)
			return ret;
		if (f->has_policy) {
			ret = tpm2_marshal_tpml_pcr_selection(&f->policy, tmp, sizeof(tmp), &n);
			if (ret == 0)
				ret = put_record(buf, cap, &off, TAG_POLICY, tmp, n);
			if (ret < 0)
				return ret;
		}
	}
	*ret_len = off;
	return 0;
}

int
tpmdev_file_decode(const uint8_t *buf, size_t len, enum tpmdev_file_kind kind, struct tpmdev_file *f)
{
	unsigned seen = 0;
	size_t off = 8;

	memset(f, 0, sizeof(*f));
	if (len < 8 || memcmp(buf, FILE_MAGIC, 4) != 0 || buf[4] != FILE_VERSION ||
	    buf[5] != (uint8_t)kind || buf[6] != 0 || buf[7] != 0)
		return -EBADMSG;
	f->kind = kind;
	while (off < len) {
		unsigned tag, n;
		const uint8_t *v;
		size_t used = 0;
		TSS2_RC rc = TSS2_RC_SUCCESS;

		if (len - off < 4)
			return -EBADMSG;
		tag = (unsigned)buf[off] << 8 | buf[off + 1];
		n = (unsigned)buf[off + 2] << 8 | buf[off + 3];
		v = buf + off + 4;
		if (len - off - 4 < n || tag < TAG_PUBLIC || tag > TAG_POLICY || (seen & (1u << tag)))
			return -EBADMSG;
		seen |= 1u << tag;
		switch (tag) {
		case TAG_PUBLIC:
			if (tpm2_unmarshal_tpm2b_public(v, n, &f->pub) < 0)
				return -EBADMSG;
			break;
		case TAG_PRIVATE:
			rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(v, n, &used, &f->priv);
			if (rc != TSS2_RC_SUCCESS || used != n)
				return -EBADMSG;
			break;
		case TAG_WG_PUB:
			if (kind != TPMDEV_FILE_SEALED || n != sizeof(f->wg_pub))
				return -EBADMSG;
			memcpy(f->wg_pub, v, n);
			break;
		case TAG_POLICY:
			if (kind != TPMDEV_FILE_SEALED ||
			    tpm2_unmarshal_tpml_pcr_selection(v, n, &f->policy) < 0)
				return -EBADMSG;
			f->has_policy = true;
			break;
		}
		off += 4 + n;
	}
	if (!(seen & (1u << TAG_PUBLIC)) || !(seen & (1u << TAG_PRIVATE)))
		return -EBADMSG;
	if (kind == TPMDEV_FILE_SEALED && !(seen & (1u << TAG_WG_PUB)))
		return -EBADMSG;
	return 0;
}

int
tpmdev_file_read(const char *dir, const char *name, enum tpmdev_file_kind kind,
		 struct tpmdev_file *ret)
{
	uint8_t buf[FILE_MAX + 1];
	char path[4096];
	struct stat st;
	size_t len = 0;
	int fd = -1, ret_code;

	ret_code = path_of(path, sizeof(path), dir, name);
	if (ret_code < 0)
		return ret_code;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret_code = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret_code = -EBADMSG;
		goto out;
	}
	if (st.st_mode & 077) {
		log_debug("tpmdev: '%s' is accessible to group or others (mode %04o)", path,
			  (unsigned)(st.st_mode & 07777));
		ret_code = -EPERM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret_code = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			ret_code = -EBADMSG; /* larger than any state file */
			goto out;
		}
	}
	ret_code = tpmdev_file_decode(buf, len, kind, ret);
	if (ret_code < 0)
		log_debug("tpmdev: '%s' is not a valid state file", path);
out:
	close(fd);
	return ret_code;
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int
tpmdev_file_write(const char *dir, const char *name, const struct tpmdev_file *f)
{
	uint8_t buf[FILE_MAX];
	char path[4096], tmp[4096];
	size_t len, off = 0;
	int fd = -1, ret;

	ret = file_encode(f, buf, sizeof(buf), &len);
	if (ret < 0)
		return ret;
	ret = path_of(path, sizeof(path), dir, name);
	if (ret == 0)
		ret = snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ? -ENAMETOOLONG
										: 0;
	if (ret < 0)
		return ret;
	/* a .tmp left by a crash is garbage: only one writer works on a state directory */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return -errno;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	ret = tpmdev_own_like_dir(fd, dir);
	if (ret < 0)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto fail;
	}
	return fsync_dir(dir);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

int
tpmdev_file_rename(const char *dir, const char *from, const char *to)
{
	char a[4096], b[4096];
	int ret;

	ret = path_of(a, sizeof(a), dir, from);
	if (ret == 0)
		ret = path_of(b, sizeof(b), dir, to);
	if (ret < 0)
		return ret;
	if (rename(a, b) < 0)
		return -errno;
	return fsync_dir(dir);
}

int
tpmdev_file_remove(const char *dir, const char *name)
{
	char path[4096];
	int ret;

	ret = path_of(path, sizeof(path), dir, name);
	if (ret < 0)
		return ret;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync_dir(dir);
}
