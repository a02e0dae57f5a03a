// SPDX-License-Identifier: MIT
/*
 * The TPM connection and the handles everything else uses: SRK, EK, loading blobs,
 * sessions, PCR reads, NV reads. Every ESYS_TR made here is released by its caller with
 * tpmdev_release() / tpmdev_flush_session(); every ESYS output is Esys_Free()d.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tss2/tss2_rc.h>

#include "common/log.h"
#include "edge-keyd/tpm/tpmdev_int.h"

/* Largest EK certificate we read from NV (real ones are 1-2 KiB). */
#define EK_CERT_MAX 8192

int
tpmdev_rc_errno(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK, base;

	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) {
		base = (rc & TPM2_RC_FMT1) ? (rc & (TPM2_RC_FMT1 | 0x3f)) : (rc & 0xfff);
		switch (base) {
		case TPM2_RC_INTEGRITY:
		case TPM2_RC_BINDING:
		case TPM2_RC_SENSITIVE:
			return -EKEYREJECTED;
		case TPM2_RC_POLICY_FAIL:
		case TPM2_RC_PCR_CHANGED:
		case TPM2_RC_AUTH_FAIL:
		case TPM2_RC_BAD_AUTH:
		case TPM2_RC_AUTH_UNAVAILABLE:
		case TPM2_RC_NV_AUTHORIZATION:
		case TPM2_RC_LOCKOUT:
			return -EACCES;
		case TPM2_RC_HANDLE:
			return -ENOENT;
		case TPM2_RC_OBJECT_MEMORY:
		case TPM2_RC_SESSION_MEMORY:
		case TPM2_RC_NV_SPACE:
			return -ENOSPC;
		case TPM2_RC_NV_DEFINED:
			return -EEXIST;
		case TPM2_RC_RETRY:
		case TPM2_RC_YIELDED:
		case TPM2_RC_TESTING:
		case TPM2_RC_NV_RATE:
		case TPM2_RC_NV_UNAVAILABLE:
			return -EAGAIN;
		default:
			return -EIO;
		}
	}
	switch (rc & ~TSS2_RC_LAYER_MASK) {
	case TSS2_BASE_RC_NO_CONNECTION:
		return -ECONNREFUSED;
	case TSS2_BASE_RC_TRY_AGAIN:
		return -EAGAIN;
	case TSS2_BASE_RC_MEMORY:
		return -ENOMEM;
	case TSS2_BASE_RC_RSP_AUTH_FAILED:
		return -EBADMSG;
	default:
		return -EIO;
	}
}

int
tpmdev_rc(struct tpmdev *dev, const char *what, TSS2_RC rc)
{
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	snprintf(dev->err, sizeof(dev->err), "%s: %s", what, Tss2_RC_Decode(rc));
	log_debug("tpmdev: %s", dev->err);
	return tpmdev_rc_errno(rc);
}

const char *
tpmdev_last_error(const struct tpmdev *dev)
{
	return dev != NULL ? dev->err : "";
}

/*
 * tss2 logs ESYS's session keys at debug and the decrypted Unseal response -- the WireGuard
 * key itself -- at trace (tss2-esys 3.2: "IESYS AES output"). Every command of edge-keyd
 * unseals or seals through here and its stderr lands in the journal, so before tss2 first
 * reads TSS2_LOG (in Esys_Initialize) every level above info is capped at info ("esys+trace,tcti+none" -> "esys+info,tcti+none").
 * What cannot be parsed becomes "all+warning".
 */
static void
tpmdev_tss2_log_cap(void)
{
	static const char *const safe[] = { "none", "error", "warning", "info" };
	const char *v = getenv("TSS2_LOG"), *tok, *end, *plus;
	char buf[256];
	size_t n = 0, len, mlen, llen;
	bool ok;

	if (v == NULL)
		return;
	for (tok = v; *tok != '\0'; tok = *end ? end + 1 : end) {
		end = strchr(tok, ',');
		if (end == NULL)
			end = tok + strlen(tok);
		len = (size_t)(end - tok);
		plus = memchr(tok, '+', len);
		if (plus == NULL)
			goto fallback;
		mlen = (size_t)(plus - tok) + 1;
		ok = false;
		for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
			if (strlen(safe[i]) == len - mlen &&
			    strncasecmp(plus + 1, safe[i], len - mlen) == 0)
				ok = true;
		llen = ok ? len - mlen : strlen("info");
		if (n + (n ? 1 : 0) + mlen + llen + 1 > sizeof(buf))
			goto fallback;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%.*s%.*s", n ? "," : "",
			(int)mlen, tok, (int)llen, ok ? plus + 1 : "info");
	}
	if (n > 0 && setenv("TSS2_LOG", buf, 1) == 0)
		return;
fallback:
	(void)setenv("TSS2_LOG", "all+warning", 1);
}

/*
 * tss2's device TCTI turns every failure to open its device into an I/O error (the cause is
 * only in tss2's own log line): "Input/output error" for a user who is not in the device's
 * group. So a "device:PATH" TCTI's device is opened here first, and closed again, for the
 * errno: -EACCES (not allowed: usually not in group tss), -ENOENT (no such device), -EBUSY
 * (/dev/tpm0, which has no resource manager, held by another program). 0 for any other
 * TCTI, or when the device opens.
 */
static int
device_precheck(const char *tcti)
{
	const char *path;
	int fd;

	if (tcti == NULL || strncmp(tcti, "device", 6) != 0 || (tcti[6] != ':' && tcti[6] != '\0'))
		return 0;
	path = tcti[6] == ':' && tcti[7] != '\0' ? tcti + 7 : "/dev/tpm0";
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int
tpmdev_open(struct tpmdev **ret_dev, const char *tcti)
{
	struct tpmdev *dev;
	TSS2_RC rc;
	int ret;

	tpmdev_tss2_log_cap();
	ret = device_precheck(tcti);
	if (ret < 0)
		return ret;
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL)
		return -ENOMEM;
	rc = Tss2_TctiLdr_Initialize(tcti, &dev->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		ret = tpmdev_rc(dev, "Tss2_TctiLdr_Initialize", rc);
		goto fail;
	}
	rc = Esys_Initialize(&dev->esys, dev->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		ret = tpmdev_rc(dev, "Esys_Initialize", rc);
		goto fail;
	}
	*ret_dev = dev;
	return 0;
fail:
	tpmdev_close(dev);
	return ret;
}

void
tpmdev_close(struct tpmdev *dev)
{
	if (dev == NULL)
		return;
	if (dev->esys != NULL)
		Esys_Finalize(&dev->esys);
	if (dev->tcti != NULL)
		Tss2_TctiLdr_Finalize(&dev->tcti);
	free(dev);
}

/* Cleanup failures are logged but do not replace the error that matters in dev->err. */
static void
cleanup_rc(const char *what, TSS2_RC rc)
{
	if (rc != TSS2_RC_SUCCESS)
		log_debug("tpmdev: %s: %s", what, Tss2_RC_Decode(rc));
}

void
tpmdev_release(struct tpmdev *dev, struct tpmdev_obj *o)
{
	if (o->tr == ESYS_TR_NONE)
		return;
	if (o->flush)
		cleanup_rc("Esys_FlushContext", Esys_FlushContext(dev->esys, o->tr));
	else
		cleanup_rc("Esys_TR_Close", Esys_TR_Close(dev->esys, &o->tr));
	o->tr = ESYS_TR_NONE;
	o->flush = false;
}

void
tpmdev_flush_session(struct tpmdev *dev, ESYS_TR *s)
{
	if (*s == ESYS_TR_NONE)
		return;
	cleanup_rc("Esys_FlushContext(session)", Esys_FlushContext(dev->esys, *s));
	*s = ESYS_TR_NONE;
}

static int
get_cap(struct tpmdev *dev, TPM2_CAP cap, UINT32 prop, UINT32 count, TPMS_CAPABILITY_DATA **ret)
{
	return tpmdev_rc(dev, "Esys_GetCapability",
			 Esys_GetCapability(dev->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, cap,
					    prop, count, NULL, ret));
}

int
tpmdev_handle_exists(struct tpmdev *dev, TPM2_HANDLE handle)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	int ret;

	ret = get_cap(dev, TPM2_CAP_HANDLES, handle, 1, &cap);
	if (ret < 0)
		return ret;
	ret = cap->data.handles.count >= 1 && cap->data.handles.handle[0] == handle;
	Esys_Free(cap);
	return ret;
}

static int
count_handles(struct tpmdev *dev, TPM2_HANDLE first, unsigned *ret)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	int ret_code;

	ret_code = get_cap(dev, TPM2_CAP_HANDLES, first, TPM2_MAX_CAP_HANDLES, &cap);
	if (ret_code < 0)
		return ret_code;
	*ret = 0;
	for (UINT32 i = 0; i < cap->data.handles.count; i++)
		if ((cap->data.handles.handle[i] >> 24) == (first >> 24))
			(*ret)++;
	Esys_Free(cap);
	return 0;
}

int
tpmdev_loaded_handles(struct tpmdev *dev, unsigned *ret_objects, unsigned *ret_sessions)
{
	unsigned objects, loaded, saved;
	int ret;

	/* handle ranges by type (TPM2_TRANSIENT_FIRST's macro shifts an int into its sign bit) */
	ret = count_handles(dev, (TPM2_HANDLE)TPM2_HT_TRANSIENT << 24, &objects);
	if (ret == 0)
		ret = count_handles(dev, (TPM2_HANDLE)TPM2_HT_LOADED_SESSION << 24, &loaded);
	if (ret == 0)
		ret = count_handles(dev, (TPM2_HANDLE)TPM2_HT_SAVED_SESSION << 24, &saved);
	if (ret < 0)
		return ret;
	*ret_objects = objects;
	*ret_sessions = loaded + saved;
	return 0;
}

static int
create_primary(struct tpmdev *dev, ESYS_TR hierarchy, const TPM2B_PUBLIC *tmpl,
	       struct tpmdev_obj *ret, TPM2B_PUBLIC *ret_pub)
{
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR tr = ESYS_TR_NONE;
	int err;

	memset(&sens, 0, sizeof(sens));
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	err = tpmdev_rc(dev, "Esys_CreatePrimary",
			Esys_CreatePrimary(dev->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					   ESYS_TR_NONE, &sens, tmpl, &outside, &pcrs, &tr, &pub,
					   NULL, NULL, NULL));
	if (err < 0)
		return err;
	if (ret_pub != NULL)
		*ret_pub = *pub;
	Esys_Free(pub);
	ret->tr = tr;
	ret->flush = true;
	return 0;
}

/*
 * The persistent object at @handle if it exists and was made from @tmpl: 1 and *@ret set;
 * 0 if there is none or it does not match (then nothing is held).
 */
static int
persistent_matching(struct tpmdev *dev, TPM2_HANDLE handle, const TPM2B_PUBLIC *tmpl,
		    struct tpmdev_obj *ret, TPM2B_PUBLIC *ret_pub)
{
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR tr = ESYS_TR_NONE;
	int err;

	err = tpmdev_handle_exists(dev, handle);
	if (err <= 0)
		return err;
	err = tpmdev_rc(dev, "Esys_TR_FromTPMPublic",
			Esys_TR_FromTPMPublic(dev->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE,
					      ESYS_TR_NONE, &tr));
	if (err < 0)
		return err;
	err = tpmdev_rc(dev, "Esys_ReadPublic",
			Esys_ReadPublic(dev->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					&pub, NULL, NULL));
	if (err < 0)
		goto out;
	if (!tpm2_public_matches_template(&pub->publicArea, &tmpl->publicArea)) {
		log_debug("tpmdev: persistent 0x%08x is not made from our template, not used",
			  handle);
		err = 0;
		goto out;
	}
	if (ret_pub != NULL)
		*ret_pub = *pub;
	ret->tr = tr;
	ret->flush = false;
	tr = ESYS_TR_NONE;
	err = 1;
out:
	Esys_Free(pub);
	if (tr != ESYS_TR_NONE)
		Esys_TR_Close(dev->esys, &tr);
	return err;
}

int
tpmdev_srk(struct tpmdev *dev, bool persist, struct tpmdev_obj *ret)
{
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT;
	ESYS_TR ptr = ESYS_TR_NONE;
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;
	int err;

	tpm2_srk_template(&tmpl);
	err = persistent_matching(dev, TPM2_SRK_HANDLE, &tmpl, ret, NULL);
	if (err != 0)
		return err < 0 ? err : 0;
	err = create_primary(dev, ESYS_TR_RH_OWNER, &tmpl, &srk, NULL);
	if (err < 0)
		return err;
	if (persist && tpmdev_handle_exists(dev, TPM2_SRK_HANDLE) == 0) {
		rc = Esys_EvictControl(dev->esys, ESYS_TR_RH_OWNER, srk.tr, ESYS_TR_PASSWORD,
				       ESYS_TR_NONE, ESYS_TR_NONE, TPM2_SRK_HANDLE, &ptr);
		if (rc == TSS2_RC_SUCCESS) {
			tpmdev_release(dev, &srk);
			ret->tr = ptr;
			ret->flush = false;
			return 0;
		}
		/* owner auth set or NV full: a transient SRK works the same, only slower */
		(void)tpmdev_rc(dev, "Esys_EvictControl(SRK)", rc);
	}
	*ret = srk;
	return 0;
}

int
tpmdev_ek_load(struct tpmdev *dev, enum tpm2_ek_type type, unsigned flags,
	       struct tpmdev_obj *ret, TPM2B_PUBLIC *ret_pub)
{
	const struct tpm2_ek_info *info = tpm2_ek_info(type);
	TPM2B_PUBLIC tmpl;
	int err;

	if (info == NULL || tpm2_ek_template(type, &tmpl) < 0)
		return -EINVAL;
	if (!(flags & TPMDEV_EK_CREATE)) {
		err = persistent_matching(dev, info->persistent, &tmpl, ret, ret_pub);
		if (err != 0)
			return err < 0 ? err : 0;
	}
	return create_primary(dev, ESYS_TR_RH_ENDORSEMENT, &tmpl, ret, ret_pub);
}

int
tpmdev_load(struct tpmdev *dev, const struct tpmdev_obj *parent, const TPM2B_PUBLIC *pub,
	    const TPM2B_PRIVATE *priv, struct tpmdev_obj *ret)
{
	ESYS_TR tr = ESYS_TR_NONE;
	int err;

	err = tpmdev_rc(dev, "Esys_Load",
			Esys_Load(dev->esys, parent->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				  ESYS_TR_NONE, priv, pub, &tr));
	if (err < 0)
		return err;
	ret->tr = tr;
	ret->flush = true;
	return 0;
}

int
tpmdev_session(struct tpmdev *dev, ESYS_TR salt, TPM2_SE type, TPMI_ALG_HASH hash,
	       TPMA_SESSION attrs, ESYS_TR *ret)
{
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	ESYS_TR s = ESYS_TR_NONE;
	int err;

	if (salt != ESYS_TR_NONE) {
		sym.algorithm = TPM2_ALG_AES;
		sym.keyBits.aes = 128;
		sym.mode.aes = TPM2_ALG_CFB;
	}
	err = tpmdev_rc(dev, "Esys_StartAuthSession",
			Esys_StartAuthSession(dev->esys, salt, ESYS_TR_NONE, ESYS_TR_NONE,
					      ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, &sym, hash,
					      &s));
	if (err < 0)
		return err;
	err = tpmdev_rc(dev, "Esys_TRSess_SetAttributes",
			Esys_TRSess_SetAttributes(dev->esys, s,
						  attrs | TPMA_SESSION_CONTINUESESSION, 0xff));
	if (err < 0) {
		tpmdev_flush_session(dev, &s);
		return err;
	}
	*ret = s;
	return 0;
}

/* Clear from @left the PCRs that @got selects; -EIO if @got selects one @left does not. */
static int
selection_remove(TPML_PCR_SELECTION *left, const TPML_PCR_SELECTION *got)
{
	for (UINT32 i = 0; i < got->count; i++) {
		const TPMS_PCR_SELECTION *g = &got->pcrSelections[i];
		TPMS_PCR_SELECTION *l = NULL;

		for (UINT32 j = 0; j < left->count; j++)
			if (left->pcrSelections[j].hash == g->hash)
				l = &left->pcrSelections[j];
		for (unsigned b = 0; b < g->sizeofSelect && b < sizeof(g->pcrSelect); b++) {
			if (g->pcrSelect[b] == 0)
				continue;
			if (l == NULL || b >= l->sizeofSelect ||
			    (g->pcrSelect[b] & ~l->pcrSelect[b]) != 0)
				return -EIO;
			l->pcrSelect[b] &= (BYTE)~g->pcrSelect[b];
		}
	}
	return 0;
}

int
tpmdev_pcr_read(struct tpmdev *dev, const TPML_PCR_SELECTION *sel, struct tpm2_pcr_values *ret,
		UINT32 *ret_counter)
{
	TPML_PCR_SELECTION left = *sel;
	UINT32 first = 0;
	bool have_first = false;
	int want, err;

	want = tpm2_pcr_selection_count(sel);
	if (want < 0)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->sel = *sel;
	while (tpm2_pcr_selection_count(&left) > 0) {
		TPML_PCR_SELECTION *out_sel = NULL;
		TPML_DIGEST *values = NULL;
		UINT32 counter = 0;

		err = tpmdev_rc(dev, "Esys_PCR_Read",
				Esys_PCR_Read(dev->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					      &left, &counter, &out_sel, &values));
		if (err < 0)
			return err;
		if (values->count == 0) {
			snprintf(dev->err, sizeof(dev->err), "PCR_Read: a selected bank is not active");
			err = -EINVAL;
		} else if (have_first && counter != first) {
			err = -EAGAIN; /* a PCR changed while we read them */
		} else {
			err = tpm2_pcr_values_add(ret, values);
			if (err == 0)
				err = selection_remove(&left, out_sel);
		}
		if (!have_first) {
			first = counter;
			have_first = true;
		}
		Esys_Free(out_sel);
		Esys_Free(values);
		if (err < 0)
			return err;
	}
	if ((int)ret->count != want)
		return -EIO;
	if (ret_counter != NULL)
		*ret_counter = first;
	return 0;
}

/* Keep the compiler from merging or dropping the stack burn. */
static void __attribute__((noinline))
burn_stack(void)
{
	uint8_t buf[16384];

	explicit_bzero(buf, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}

void
tpmdev_scrub(struct tpmdev *dev)
{
	TPMS_CAPABILITY_DATA *cap = NULL;

	/*
	 * ESYS keeps the last response in its SAPI buffer (decrypted in place) and decrypted
	 * it through a stack array. A 16-property GetCapability answer (>140 bytes) overwrites
	 * the start of that buffer, where a small response parameter sits; the burn covers the
	 * stack ESYS used below our frame.
	 */
	cleanup_rc("Esys_GetCapability(scrub)",
		   Esys_GetCapability(dev->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				      TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED, 16, NULL, &cap));
	Esys_Free(cap);
	burn_stack();
}

/* Read a whole NV index; *@ret malloc()ed. */
static int
nv_read(struct tpmdev *dev, TPM2_HANDLE index, uint8_t **ret, size_t *ret_len)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR nv = ESYS_TR_NONE, auth;
	uint8_t *buf = NULL;
	UINT16 size, chunk = 512, off = 0;
	TPMA_NV attrs;
	int err;

	err = tpmdev_handle_exists(dev, index);
	if (err <= 0)
		return err < 0 ? err : -ENOENT;
	if (get_cap(dev, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &cap) == 0) {
		if (cap->data.tpmProperties.count == 1 &&
		    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
		    cap->data.tpmProperties.tpmProperty[0].value >= 64 &&
		    cap->data.tpmProperties.tpmProperty[0].value <= 1024)
			chunk = (UINT16)cap->data.tpmProperties.tpmProperty[0].value;
		Esys_Free(cap);
	}
	err = tpmdev_rc(dev, "Esys_TR_FromTPMPublic(NV)",
			Esys_TR_FromTPMPublic(dev->esys, index, ESYS_TR_NONE, ESYS_TR_NONE,
					      ESYS_TR_NONE, &nv));
	if (err < 0)
		return err;
	err = tpmdev_rc(dev, "Esys_NV_ReadPublic",
			Esys_NV_ReadPublic(dev->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					   &pub, NULL));
	if (err < 0)
		goto out;
	size = pub->nvPublic.dataSize;
	attrs = pub->nvPublic.attributes;
	if (size == 0 || size > EK_CERT_MAX) {
		err = -EBADMSG;
		goto out;
	}
	if (attrs & TPMA_NV_OWNERREAD)
		auth = ESYS_TR_RH_OWNER;
	else if (attrs & TPMA_NV_AUTHREAD)
		auth = nv;
	else if (attrs & TPMA_NV_PPREAD)
		auth = ESYS_TR_RH_PLATFORM;
	else {
		err = -EACCES;
		goto out;
	}
	buf = malloc(size);
	if (buf == NULL) {
		err = -ENOMEM;
		goto out;
	}
	while (off < size) {
		TPM2B_MAX_NV_BUFFER *data = NULL;
		UINT16 n = (UINT16)(size - off < chunk ? size - off : chunk);

		err = tpmdev_rc(dev, "Esys_NV_Read",
				Esys_NV_Read(dev->esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					     ESYS_TR_NONE, n, off, &data));
		if (err == -EACCES && off == 0 && auth != nv && (attrs & TPMA_NV_AUTHREAD)) {
			auth = nv; /* the owner has a password: the index's own (empty) auth */
			continue;
		}
		if (err < 0)
			goto out;
		if (data->size != n) {
			Esys_Free(data);
			err = -EIO;
			goto out;
		}
		memcpy(buf + off, data->buffer, n);
		off = (UINT16)(off + n);
		Esys_Free(data);
	}
	*ret = buf;
	*ret_len = size;
	buf = NULL;
	err = 0;
out:
	free(buf);
	Esys_Free(pub);
	Esys_TR_Close(dev->esys, &nv);
	return err;
}

int
tpmdev_ek(struct tpmdev *dev, enum tpm2_ek_type type, unsigned flags, uint8_t **ret_pub,
	  size_t *ret_pub_len, uint8_t **ret_cert, size_t *ret_cert_len)
{
	const struct tpm2_ek_info *info = tpm2_ek_info(type);
	struct tpmdev_obj ek = TPMDEV_OBJ_INIT;
	uint8_t *pubbuf = NULL, *nvbuf = NULL, *cert = NULL;
	const uint8_t *der;
	size_t publen, nvlen, derlen;
	TPM2B_PUBLIC pub;
	int err;

	if (info == NULL)
		return -EINVAL;
	dev->err[0] = '\0';
	err = tpmdev_ek_load(dev, type, flags, &ek, &pub);
	tpmdev_release(dev, &ek); /* only its public area is needed */
	if (err < 0)
		return err;
	pubbuf = malloc(sizeof(TPM2B_PUBLIC) + 4);
	if (pubbuf == NULL)
		return -ENOMEM;
	err = tpm2_marshal_tpm2b_public(&pub, pubbuf, sizeof(TPM2B_PUBLIC) + 4, &publen);
	if (err < 0)
		goto out;
	if (!(flags & TPMDEV_EK_NO_CERT)) {
		err = nv_read(dev, info->nv_cert, &nvbuf, &nvlen);
		if (err < 0)
			goto out;
		err = tpm2_ek_cert_strip(nvbuf, nvlen, &der, &derlen);
		if (err < 0)
			goto out;
		cert = malloc(derlen);
		if (cert == NULL) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(cert, der, derlen);
		*ret_cert = cert;
		*ret_cert_len = derlen;
		cert = NULL;
	}
	*ret_pub = pubbuf;
	*ret_pub_len = publen;
	pubbuf = NULL;
	err = 0;
out:
	free(pubbuf);
	free(nvbuf);
	free(cert);
	return err;
}
