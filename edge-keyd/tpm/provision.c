// SPDX-License-Identifier: MIT
/*
 * Provisioning (SRK, AK, sealed WireGuard key), unsealing and key rotation.
 *
 * Where the WireGuard private key exists in plaintext, and how each copy is wiped:
 *   - struct seal_work, in secmem (mlock()ed, not in core dumps), wiped by secmem_free;
 *   - ESYS's copy of Create's inSensitive (kept in its context for retries): overwritten
 *     by a second Create with an empty sensitive area (wipe_create_copy);
 *   - on the way to the TPM: a salted session with command parameter encryption
 *     (TPMA_SESSION_DECRYPT) carries it encrypted; on the way back from Unseal, response
 *     parameter encryption (TPMA_SESSION_ENCRYPT);
 *   - Unseal's output: copied to the caller's buffer, then wiped before Esys_Free; ESYS's
 *     SAPI buffer and the stack ESYS decrypted it on: tpmdev_scrub();
 *   - OpenSSL's copy while computing the X25519 public key: EVP_PKEY_free cleanses it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/key.h"
#include "common/log.h"
#include "common/secmem.h"
#include "edge-keyd/tpm/tpmdev_int.h"

/* Domain separation of the key derivation (changing it changes no existing key). */
static const char wg_key_label[] = "edge-keyd wireguard private key v1";

struct seal_work {
	uint8_t tpm_rand[32];
	uint8_t os_rand[32];
	uint8_t key[TPMDEV_KEY_LEN];
	TPM2B_SENSITIVE_CREATE sens;
};

/* TPM RNG and OS RNG, hashed together: either one alone being weak is not fatal. */
static int
wg_key_generate(struct tpmdev *dev, struct seal_work *w)
{
	struct tpm2_buf parts[3];
	size_t got = 0;
	int err;

	while (got < sizeof(w->tpm_rand)) {
		TPM2B_DIGEST *r = NULL;

		err = tpmdev_rc(dev, "Esys_GetRandom",
				Esys_GetRandom(dev->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					       (UINT16)(sizeof(w->tpm_rand) - got), &r));
		if (err < 0)
			return err;
		if (r->size == 0 || r->size > sizeof(w->tpm_rand) - got) {
			Esys_Free(r);
			return -EIO;
		}
		memcpy(w->tpm_rand + got, r->buffer, r->size);
		got += r->size;
		explicit_bzero(r->buffer, r->size);
		Esys_Free(r);
	}
	got = 0;
	while (got < sizeof(w->os_rand)) {
		ssize_t n = getrandom(w->os_rand + got, sizeof(w->os_rand) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	parts[0] = (struct tpm2_buf){ wg_key_label, sizeof(wg_key_label) - 1 };
	parts[1] = (struct tpm2_buf){ w->tpm_rand, sizeof(w->tpm_rand) };
	parts[2] = (struct tpm2_buf){ w->os_rand, sizeof(w->os_rand) };
	err = tpm2_hashv(TPM2_ALG_SHA256, parts, 3, w->key);
	explicit_bzero(w->tpm_rand, sizeof(w->tpm_rand));
	explicit_bzero(w->os_rand, sizeof(w->os_rand));
	if (err < 0)
		return err;
	key_clamp(w->key);
	return 0;
}

/* PolicyPCR digest over the current values of @sel (the PCRs the key is bound to). */
static int
pcr_policy_digest(struct tpmdev *dev, const TPML_PCR_SELECTION *sel, TPM2B_DIGEST *ret)
{
	struct tpm2_pcr_values *v;
	TPM2B_DIGEST pd;
	int err, tries = 0;

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	do {
		err = tpmdev_pcr_read(dev, sel, v, NULL);
	} while (err == -EAGAIN && ++tries < 3);
	if (err == 0)
		err = tpm2_pcr_digest(TPM2_ALG_SHA256, v, &pd);
	if (err == 0)
		err = tpm2_policy_init(TPM2_ALG_SHA256, ret);
	if (err == 0)
		err = tpm2_policy_pcr(TPM2_ALG_SHA256, ret, sel, &pd);
	free(v);
	return err;
}

/*
 * ESYS keeps a copy of the last TPM2_Create's inSensitive in its context (Esys_Create
 * stores its inputs so that it can resubmit). Sealing one zero byte through the same
 * context overwrites the whole copy (a struct assignment) with zeros. (A sealed-data
 * object needs data: an empty one is refused with TPM_RC_ATTRIBUTES.)
 */
static void
wipe_create_copy(struct tpmdev *dev, const struct tpmdev_obj *parent)
{
	TPM2B_SENSITIVE_CREATE zero;
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC tmpl, *pub = NULL;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;

	memset(&zero, 0, sizeof(zero));
	zero.sensitive.data.size = 1;
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	(void)tpm2_seal_template(NULL, &tmpl);
	/* its result does not matter: ESYS stores the inputs before it sends the command */
	if (Esys_Create(dev->esys, parent->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &zero,
			&tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL) != TSS2_RC_SUCCESS)
		log_debug("tpmdev: the wiping Create failed (the copy is overwritten anyway)");
	Esys_Free(priv);
	Esys_Free(pub);
}

/*
 * Create an object under @parent from @tmpl with sensitive data @sens (NULL: none), through
 * a salted session that encrypts the sensitive area on its way to the TPM.
 */
static int
create_object(struct tpmdev *dev, const struct tpmdev_obj *parent, const TPM2B_PUBLIC *tmpl,
	      const TPM2B_SENSITIVE_CREATE *sens, TPM2B_PUBLIC *ret_pub, TPM2B_PRIVATE *ret_priv)
{
	TPM2B_SENSITIVE_CREATE empty;
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	ESYS_TR s = ESYS_TR_NONE;
	int err;

	memset(&empty, 0, sizeof(empty));
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	err = tpmdev_session(dev, parent->tr, TPM2_SE_HMAC, TPM2_ALG_SHA256, TPMA_SESSION_DECRYPT,
			     &s);
	if (err < 0)
		return err;
	err = tpmdev_rc(dev, "Esys_Create",
			Esys_Create(dev->esys, parent->tr, s, ESYS_TR_NONE, ESYS_TR_NONE,
				    sens != NULL ? sens : &empty, tmpl, &outside, &pcrs, &priv,
				    &pub, NULL, NULL, NULL));
	tpmdev_flush_session(dev, &s);
	if (sens != NULL)
		wipe_create_copy(dev, parent);
	if (err < 0)
		return err;
	*ret_pub = *pub;
	*ret_priv = *priv;
	Esys_Free(pub);
	Esys_Free(priv);
	return 0;
}

/* True if @pub/@priv load under @srk (the blob belongs to this TPM and this SRK). */
static int
check_loads(struct tpmdev *dev, const struct tpmdev_obj *srk, const struct tpmdev_file *f)
{
	struct tpmdev_obj o = TPMDEV_OBJ_INIT;
	int err;

	err = tpmdev_load(dev, srk, &f->pub, &f->priv, &o);
	tpmdev_release(dev, &o);
	return err;
}

/* A sealed key file's public area must be one our template makes (with its own policy). */
static bool
sealed_public_ok(const struct tpmdev_file *f)
{
	TPM2B_PUBLIC tmpl;

	if (tpm2_seal_template(&f->pub.publicArea.authPolicy, &tmpl) < 0)
		return false;
	if (f->has_policy != (f->pub.publicArea.authPolicy.size > 0))
		return false;
	return tpm2_public_matches_template(&f->pub.publicArea, &tmpl.publicArea);
}

static bool
ak_public_ok(const TPM2B_PUBLIC *pub)
{
	TPM2B_PUBLIC tmpl;

	if (tpm2_ak_template(pub->publicArea.type, &tmpl) < 0)
		return false;
	return tpm2_public_matches_template(&pub->publicArea, &tmpl.publicArea);
}

/*
 * Make a new sealed WireGuard key under @srk bound to @sel (NULL/empty: no PCR policy)
 * and write it to @dir/@name.
 */
static int
seal_new_key(struct tpmdev *dev, const struct tpmdev_obj *srk, const char *dir, const char *name,
	     const TPML_PCR_SELECTION *sel, uint8_t ret_pub[static TPMDEV_KEY_LEN])
{
	struct seal_work *w;
	struct tpmdev_file *f;
	TPM2B_DIGEST policy;
	TPM2B_PUBLIC tmpl;
	bool has_policy = sel != NULL && tpm2_pcr_selection_count(sel) > 0;
	int err;

	w = secmem_alloc(sizeof(*w));
	if (w == NULL)
		return -errno;
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		err = -ENOMEM;
		goto out;
	}
	memset(&policy, 0, sizeof(policy));
	if (has_policy) {
		err = pcr_policy_digest(dev, sel, &policy);
		if (err < 0)
			goto out;
	}
	err = tpm2_seal_template(has_policy ? &policy : NULL, &tmpl);
	if (err < 0)
		goto out;
	err = wg_key_generate(dev, w);
	if (err < 0)
		goto out;
	err = key_public_from_private(f->wg_pub, w->key);
	if (err < 0)
		goto out;
	w->sens.sensitive.data.size = TPMDEV_KEY_LEN;
	memcpy(w->sens.sensitive.data.buffer, w->key, TPMDEV_KEY_LEN);
	explicit_bzero(w->key, sizeof(w->key));
	err = create_object(dev, srk, &tmpl, &w->sens, &f->pub, &f->priv);
	if (err < 0)
		goto out;
	f->kind = TPMDEV_FILE_SEALED;
	f->has_policy = has_policy;
	if (has_policy)
		f->policy = *sel;
	err = tpmdev_file_write(dir, name, f);
	if (err < 0)
		goto out;
	memcpy(ret_pub, f->wg_pub, TPMDEV_KEY_LEN);
out:
	secmem_free(w, sizeof(*w));
	free(f);
	return err;
}

/*
 * Read @dir/@name and check that it loads under @srk. 1: usable (in *@f); 0: missing, or
 * unusable and @replace (make a new one); <0: unusable and not @replace, or an error that
 * replacing would not fix (permissions, I/O).
 */
static int
existing_usable(struct tpmdev *dev, const struct tpmdev_obj *srk, const char *dir,
		const char *name, enum tpmdev_file_kind kind, bool replace, struct tpmdev_file *f)
{
	int err;

	err = tpmdev_file_read(dir, name, kind, f);
	if (err == -ENOENT)
		return 0;
	if (err == 0) {
		bool ok = kind == TPMDEV_FILE_AK ? ak_public_ok(&f->pub) : sealed_public_ok(f);

		err = ok ? check_loads(dev, srk, f) : -EBADMSG;
		if (err == 0)
			return 1;
	}
	/* only a blob that is provably unusable is replaced, never on an I/O or TPM hiccup */
	if (replace && (err == -EBADMSG || err == -EKEYREJECTED)) {
		log_debug("tpmdev: %s/%s does not load (%d): replacing it", dir, name, err);
		return 0;
	}
	return err;
}

int
tpmdev_provision(struct tpmdev *dev, const char *state_dir,
		 const struct tpmdev_provision_opts *opts)
{
	const struct tpmdev_provision_opts defaults = { 0 };
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT;
	struct tpmdev_file *f = NULL;
	TPM2B_PUBLIC tmpl;
	uint8_t pub[TPMDEV_KEY_LEN];
	bool created = false, replace;
	int err;

	if (opts == NULL)
		opts = &defaults;
	replace = opts->flags & TPMDEV_PROV_REPLACE;
	dev->err[0] = '\0';
	err = tpm2_ak_template(opts->ak_type ? opts->ak_type : TPM2_ALG_ECC, &tmpl);
	if (err < 0)
		return err;
	err = tpmdev_state_dir(state_dir);
	if (err < 0)
		return err;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = tpmdev_srk(dev, !(opts->flags & TPMDEV_PROV_NO_PERSIST), &srk);
	if (err < 0)
		goto out;

	err = existing_usable(dev, &srk, state_dir, TPMDEV_AK_FILE, TPMDEV_FILE_AK, replace, f);
	if (err < 0)
		goto out;
	if (err == 0) {
		memset(f, 0, sizeof(*f));
		f->kind = TPMDEV_FILE_AK;
		err = create_object(dev, &srk, &tmpl, NULL, &f->pub, &f->priv);
		if (err == 0)
			err = tpmdev_file_write(state_dir, TPMDEV_AK_FILE, f);
		if (err < 0)
			goto out;
		created = true;
	}

	err = existing_usable(dev, &srk, state_dir, TPMDEV_WG_FILE, TPMDEV_FILE_SEALED, replace,
			      f);
	if (err < 0)
		goto out;
	if (err == 0) {
		err = seal_new_key(dev, &srk, state_dir, TPMDEV_WG_FILE, opts->pcr_policy, pub);
		if (err < 0)
			goto out;
		created = true;
	}
	err = created ? 0 : 1;
out:
	tpmdev_release(dev, &srk);
	free(f);
	return err;
}

static int
wg_public_of(const char *state_dir, const char *name, uint8_t ret_pub[static TPMDEV_KEY_LEN])
{
	struct tpmdev_file *f;
	int err;

	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = tpmdev_file_read(state_dir, name, TPMDEV_FILE_SEALED, f);
	if (err == 0)
		memcpy(ret_pub, f->wg_pub, TPMDEV_KEY_LEN);
	free(f);
	return err;
}

int
tpmdev_wg_public(const char *state_dir, uint8_t ret_pub[static TPMDEV_KEY_LEN])
{
	return wg_public_of(state_dir, TPMDEV_WG_FILE, ret_pub);
}

int
tpmdev_wg_public_staged(const char *state_dir, uint8_t ret_pub[static TPMDEV_KEY_LEN])
{
	return wg_public_of(state_dir, TPMDEV_WG_NEXT_FILE, ret_pub);
}

int
tpmdev_ak_public(const char *state_dir, uint8_t **ret_pub, size_t *ret_len)
{
	struct tpmdev_file *f;
	uint8_t *buf = NULL;
	size_t len;
	int err;

	f = malloc(sizeof(*f));
	buf = malloc(sizeof(TPM2B_PUBLIC) + 4);
	if (f == NULL || buf == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = tpmdev_file_read(state_dir, TPMDEV_AK_FILE, TPMDEV_FILE_AK, f);
	if (err == 0)
		err = tpm2_marshal_tpm2b_public(&f->pub, buf, sizeof(TPM2B_PUBLIC) + 4, &len);
	if (err < 0)
		goto out;
	*ret_pub = buf;
	*ret_len = len;
	buf = NULL;
out:
	free(buf);
	free(f);
	return err;
}

/*
 * Does the PolicyPCR digest of the current values of @f's PCRs equal its authPolicy? 0 yes
 * (or no policy), -EKEYEXPIRED no (dev->err says so).
 */
static int
policy_holds(struct tpmdev *dev, const struct tpmdev_file *f)
{
	TPM2B_DIGEST now;
	int err;

	if (!f->has_policy)
		return 0;
	err = pcr_policy_digest(dev, &f->policy, &now);
	if (err < 0)
		return err;
	if (now.size == f->pub.publicArea.authPolicy.size &&
	    memcmp(now.buffer, f->pub.publicArea.authPolicy.buffer, now.size) == 0)
		return 0;
	snprintf(dev->err, sizeof(dev->err),
		 "PolicyPCR: the PCRs no longer have the values the key was sealed to");
	return -EKEYEXPIRED;
}

/* The current sealed key file, checked against our template; malloc()ed into *@ret. */
static int
read_sealed(struct tpmdev *dev, const char *state_dir, struct tpmdev_file **ret)
{
	struct tpmdev_file *f;
	int err;

	dev->err[0] = '\0';
	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = tpmdev_file_read(state_dir, TPMDEV_WG_FILE, TPMDEV_FILE_SEALED, f);
	if (err == 0 && !sealed_public_ok(f))
		err = -EBADMSG;
	if (err < 0) {
		free(f);
		return err;
	}
	*ret = f;
	return 0;
}

int
tpmdev_wg_policy_check(struct tpmdev *dev, const char *state_dir, TPML_PCR_SELECTION *ret_sel)
{
	struct tpmdev_file *f = NULL;
	int err;

	err = read_sealed(dev, state_dir, &f);
	if (err == 0 && ret_sel != NULL) {
		memset(ret_sel, 0, sizeof(*ret_sel));
		if (f->has_policy)
			*ret_sel = f->policy;
	}
	if (err == 0)
		err = policy_holds(dev, f);
	free(f);
	return err;
}

int
tpmdev_unseal(struct tpmdev *dev, const char *state_dir, uint8_t key[static TPMDEV_KEY_LEN])
{
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT, obj = TPMDEV_OBJ_INIT;
	TPM2B_SENSITIVE_DATA *out = NULL;
	struct tpmdev_file *f = NULL;
	ESYS_TR s = ESYS_TR_NONE;
	uint8_t tmp[TPMDEV_KEY_LEN], pub[TPMDEV_KEY_LEN];
	TPM2B_DIGEST any;
	int err;

	err = read_sealed(dev, state_dir, &f);
	if (err < 0)
		goto out;
	/* changed PCRs: say so, rather than have the TPM answer "a policy check failed" */
	err = policy_holds(dev, f);
	if (err < 0)
		goto out;
	err = tpmdev_srk(dev, false, &srk);
	if (err == 0)
		err = tpmdev_load(dev, &srk, &f->pub, &f->priv, &obj);
	/* salted with the SRK: the response (the key) is encrypted under the session key */
	if (err == 0)
		err = tpmdev_session(dev, srk.tr, f->has_policy ? TPM2_SE_POLICY : TPM2_SE_HMAC,
				     TPM2_ALG_SHA256, TPMA_SESSION_ENCRYPT, &s);
	tpmdev_release(dev, &srk);
	if (err < 0)
		goto out;
	if (f->has_policy) {
		memset(&any, 0, sizeof(any)); /* empty: the TPM checks its current values */
		err = tpmdev_rc(dev, "Esys_PolicyPCR",
				Esys_PolicyPCR(dev->esys, s, ESYS_TR_NONE, ESYS_TR_NONE,
					       ESYS_TR_NONE, &any, &f->policy));
		if (err < 0)
			goto out;
	}
	err = tpmdev_rc(dev, "Esys_Unseal",
			Esys_Unseal(dev->esys, obj.tr, s, ESYS_TR_NONE, ESYS_TR_NONE, &out));
	if (err < 0)
		goto out;
	if (out->size != TPMDEV_KEY_LEN) {
		err = -EBADMSG;
		goto out;
	}
	memcpy(tmp, out->buffer, TPMDEV_KEY_LEN);
	err = key_public_from_private(pub, tmp);
	if (err == 0 && !key_equal(pub, f->wg_pub)) {
		snprintf(dev->err, sizeof(dev->err), "unsealed key does not match its public key");
		err = -EKEYREJECTED;
	}
	if (err == 0)
		memcpy(key, tmp, TPMDEV_KEY_LEN);
out:
	if (out != NULL) {
		explicit_bzero(out->buffer, sizeof(out->buffer));
		Esys_Free(out);
	}
	explicit_bzero(tmp, sizeof(tmp));
	tpmdev_flush_session(dev, &s);
	tpmdev_release(dev, &obj);
	tpmdev_release(dev, &srk);
	tpmdev_scrub(dev);
	if (err < 0)
		explicit_bzero(key, TPMDEV_KEY_LEN);
	free(f);
	return err;
}

int
tpmdev_rotate_prepare(struct tpmdev *dev, const char *state_dir,
		      const TPML_PCR_SELECTION *pcr_policy, uint8_t ret_pub[static TPMDEV_KEY_LEN])
{
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT;
	struct tpmdev_file *cur, *next;
	int err;

	dev->err[0] = '\0';
	cur = malloc(sizeof(*cur));
	next = malloc(sizeof(*next));
	if (cur == NULL || next == NULL) {
		err = -ENOMEM;
		goto out;
	}
	/* a device is rotated only once it is provisioned */
	err = tpmdev_file_read(state_dir, TPMDEV_WG_FILE, TPMDEV_FILE_SEALED, cur);
	if (err < 0)
		goto out;
	err = tpmdev_srk(dev, false, &srk);
	if (err < 0)
		goto out;
	/* a staged key that loads is kept: prepare may run again after a restart */
	err = existing_usable(dev, &srk, state_dir, TPMDEV_WG_NEXT_FILE, TPMDEV_FILE_SEALED, true,
			      next);
	if (err < 0)
		goto out;
	if (err == 1) {
		memcpy(ret_pub, next->wg_pub, TPMDEV_KEY_LEN);
		err = 0;
		goto out;
	}
	if (pcr_policy == NULL && cur->has_policy)
		pcr_policy = &cur->policy;
	err = seal_new_key(dev, &srk, state_dir, TPMDEV_WG_NEXT_FILE, pcr_policy, ret_pub);
out:
	tpmdev_release(dev, &srk);
	free(cur);
	free(next);
	return err;
}

int
tpmdev_rotate_commit(const char *state_dir)
{
	struct tpmdev_file *f;
	int err;

	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	/* never install something that is not a sealed key file */
	err = tpmdev_file_read(state_dir, TPMDEV_WG_NEXT_FILE, TPMDEV_FILE_SEALED, f);
	free(f);
	if (err < 0)
		return err;
	return tpmdev_file_rename(state_dir, TPMDEV_WG_NEXT_FILE, TPMDEV_WG_FILE);
}

int
tpmdev_rotate_abort(const char *state_dir)
{
	return tpmdev_file_remove(state_dir, TPMDEV_WG_NEXT_FILE);
}
