/* SPDX-License-Identifier: MIT */
#ifndef EDGE_KEYD_TPM_TPMDEV_INT_H
#define EDGE_KEYD_TPM_TPMDEV_INT_H

/* Private to edge-keyd/tpm: the context, handle helpers and the state files. */

#include <stdbool.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "edge-keyd/tpm/tpmdev.h"

struct tpmdev {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	char err[192];
};

/*
 * A TPM object we hold: @flush says whether it is a transient object we loaded or
 * created (released with FlushContext) or a persistent one (released with Esys_TR_Close,
 * which only drops ESYS's metadata).
 */
struct tpmdev_obj {
	ESYS_TR tr;
	bool flush;
};
#define TPMDEV_OBJ_INIT { ESYS_TR_NONE, false }

/* Record a failed @what (Tss2_RC_Decode in dev->err, log_debug) and map @rc to -errno. */
int tpmdev_rc(struct tpmdev *dev, const char *what, TSS2_RC rc);
/* TSS2_RC -> negative errno (0 for success). */
int tpmdev_rc_errno(TSS2_RC rc);
/* Release @o (flush or close) if it is set; always leaves it ESYS_TR_NONE. */
void tpmdev_release(struct tpmdev *dev, struct tpmdev_obj *o);
/* Flush session *@s if it is set; leaves ESYS_TR_NONE. */
void tpmdev_flush_session(struct tpmdev *dev, ESYS_TR *s);

/* True if @handle (persistent, NV) exists. -errno if the TPM cannot say. */
int tpmdev_handle_exists(struct tpmdev *dev, TPM2_HANDLE handle);

/*
 * The SRK: the persistent one at TPM2_SRK_HANDLE if it was made from our template,
 * otherwise CreatePrimary (transient). With @persist, a new SRK is made persistent with
 * EvictControl (if the owner allows; otherwise it stays transient, which is not an error).
 */
int tpmdev_srk(struct tpmdev *dev, bool persist, struct tpmdev_obj *ret);

/* EK of @type (see tpmdev_ek()); *@ret_pub may be NULL. */
int tpmdev_ek_load(struct tpmdev *dev, enum tpm2_ek_type type, unsigned flags,
		   struct tpmdev_obj *ret, TPM2B_PUBLIC *ret_pub);

/* Load @pub/@priv under @parent (transient). */
int tpmdev_load(struct tpmdev *dev, const struct tpmdev_obj *parent, const TPM2B_PUBLIC *pub,
		const TPM2B_PRIVATE *priv, struct tpmdev_obj *ret);

/*
 * Start a session. @salt: ESYS_TR_NONE or a loaded decryption key to salt it with (then
 * AES-128-CFB parameter encryption is possible). @attrs are set on it
 * (TPMA_SESSION_CONTINUESESSION is always added: the caller flushes it).
 */
int tpmdev_session(struct tpmdev *dev, ESYS_TR salt, TPM2_SE type, TPMI_ALG_HASH hash,
		   TPMA_SESSION attrs, ESYS_TR *ret);

/*
 * Read the PCRs of @sel (several PCR_Read calls of at most 8 values) into @ret, with the
 * pcrUpdateCounter of the first read. -EINVAL if the TPM does not have a selected bank.
 */
int tpmdev_pcr_read(struct tpmdev *dev, const TPML_PCR_SELECTION *sel,
		    struct tpm2_pcr_values *ret, UINT32 *ret_counter);

/*
 * Overwrite ESYS's command/response buffer and a stretch of stack after a command that
 * carried a secret in plaintext (Unseal decrypts into both). Best effort, never fails.
 */
void tpmdev_scrub(struct tpmdev *dev);

/* ---- state files (state.c) ------------------------------------------------------------- */

#define TPMDEV_AK_FILE "ak.tpm"
#define TPMDEV_WG_FILE "wg.sealed"
#define TPMDEV_WG_NEXT_FILE "wg.sealed.next"

enum tpmdev_file_kind {
	TPMDEV_FILE_AK = 1,	/* public + private */
	TPMDEV_FILE_SEALED = 2,	/* public + private + wg_pub [+ policy] */
};

struct tpmdev_file {
	enum tpmdev_file_kind kind;
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	uint8_t wg_pub[TPMDEV_KEY_LEN];
	bool has_policy;
	TPML_PCR_SELECTION policy;	/* PolicyPCR selection of a sealed key */
};

/* Parse a state file's bytes (exposed for the fuzz target); -EBADMSG if malformed. */
int tpmdev_file_decode(const uint8_t *buf, size_t len, enum tpmdev_file_kind kind,
	struct tpmdev_file *f);
/* Create @dir (0700) if it does not exist; -ENOTDIR if it is not a directory. */
int tpmdev_state_dir(const char *dir);
/*
 * Read @dir/@name, which must be a regular file of @kind not readable or writable by
 * group or others (-EPERM). -ENOENT if missing, -EBADMSG if malformed.
 */
int tpmdev_file_read(const char *dir, const char *name, enum tpmdev_file_kind kind,
		     struct tpmdev_file *ret);
/* Write @f to @dir/@name atomically (name.tmp, fsync, rename, fsync of the directory). */
int tpmdev_file_write(const char *dir, const char *name, const struct tpmdev_file *f);
/* rename(@dir/@from, @dir/@to) + fsync of the directory. */
int tpmdev_file_rename(const char *dir, const char *from, const char *to);
/* unlink(@dir/@name) + fsync of the directory; 0 if it did not exist. */
int tpmdev_file_remove(const char *dir, const char *name);

#endif
