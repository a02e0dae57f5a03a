// SPDX-License-Identifier: MIT
/*
 * TPM 2.0 structure helpers shared by device and server: strict tss2-mu wrappers, names,
 * qualifying data, PCR selections and digests, EK certificate NV header stripping, KDFa
 * and KDFe. See common/tpm2.h for the contract.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <tss2/tss2_mu.h>

#include "common/log.h"
#include "common/tpm2.h"

/* ---- marshalling ------------------------------------------------------------------------- */

/*
 * tss2-mu stops at the end of the structure and reports how far it got; a structure from
 * the network must fill its buffer exactly, so trailing bytes are an error too.
 */
#define TPM2_UNMARSHAL(fn, type)                                                                 \
	int tpm2_unmarshal_##fn(const uint8_t *buf, size_t len, type *ret)                       \
	{                                                                                        \
		type tmp;                                                                        \
		size_t off = 0;                                                                  \
		TSS2_RC rc;                                                                      \
                                                                                                 \
		if (buf == NULL && len > 0)                                                      \
			return -EINVAL;                                                          \
		memset(&tmp, 0, sizeof(tmp));                                                    \
		rc = Tss2_MU_##type##_Unmarshal(buf, len, &off, &tmp);                           \
		if (rc != TSS2_RC_SUCCESS) {                                                     \
			log_debug("tpm2: " #type " unmarshal: 0x%x", rc);                        \
			return -EBADMSG;                                                         \
		}                                                                                \
		if (off != len) {                                                                \
			log_debug("tpm2: " #type ": %zu trailing bytes", len - off);             \
			return -EBADMSG;                                                         \
		}                                                                                \
		memcpy(ret, &tmp, sizeof(tmp));                                                  \
		return 0;                                                                        \
	}

#define TPM2_MARSHAL(fn, type)                                                                   \
	int tpm2_marshal_##fn(const type *in, uint8_t *buf, size_t cap, size_t *ret_len)         \
	{                                                                                        \
		size_t off = 0;                                                                  \
		TSS2_RC rc;                                                                      \
                                                                                                 \
		rc = Tss2_MU_##type##_Marshal(in, buf, cap, &off);                               \
		if (rc == TSS2_MU_RC_INSUFFICIENT_BUFFER)                                        \
			return -ENOBUFS;                                                         \
		if (rc != TSS2_RC_SUCCESS)                                                       \
			return -EINVAL;                                                          \
		*ret_len = off;                                                                  \
		return 0;                                                                        \
	}

TPM2_UNMARSHAL(tpmt_public, TPMT_PUBLIC)
TPM2_UNMARSHAL(tpms_attest, TPMS_ATTEST)
TPM2_UNMARSHAL(tpmt_signature, TPMT_SIGNATURE)
TPM2_UNMARSHAL(tpm2b_attest, TPM2B_ATTEST)
TPM2_UNMARSHAL(tpm2b_id_object, TPM2B_ID_OBJECT)
TPM2_UNMARSHAL(tpm2b_encrypted_secret, TPM2B_ENCRYPTED_SECRET)
TPM2_UNMARSHAL(tpm2b_digest, TPM2B_DIGEST)
TPM2_UNMARSHAL(tpml_pcr_selection, TPML_PCR_SELECTION)
TPM2_UNMARSHAL(tpml_digest, TPML_DIGEST)

TPM2_MARSHAL(tpm2b_public, TPM2B_PUBLIC)
TPM2_MARSHAL(tpmt_public, TPMT_PUBLIC)
TPM2_MARSHAL(tpm2b_attest, TPM2B_ATTEST)
TPM2_MARSHAL(tpms_attest, TPMS_ATTEST)
TPM2_MARSHAL(tpmt_signature, TPMT_SIGNATURE)
TPM2_MARSHAL(tpm2b_id_object, TPM2B_ID_OBJECT)
TPM2_MARSHAL(tpm2b_encrypted_secret, TPM2B_ENCRYPTED_SECRET)
TPM2_MARSHAL(tpm2b_digest, TPM2B_DIGEST)
TPM2_MARSHAL(tpml_pcr_selection, TPML_PCR_SELECTION)
TPM2_MARSHAL(tpml_digest, TPML_DIGEST)

/*
 * TPM2B_PUBLIC carries its own size in front of a TPMT_PUBLIC. Parse the inner structure
 * against exactly that size so a size that disagrees with the content is rejected whatever
 * the tss2-mu version does with it.
 */
int
tpm2_unmarshal_tpm2b_public(const uint8_t *buf, size_t len, TPM2B_PUBLIC *ret)
{
	TPM2B_PUBLIC tmp;
	size_t size;
	int r;

	if (buf == NULL || len < 2)
		return -EBADMSG;
	size = (size_t)buf[0] << 8 | buf[1];
	if (size == 0 || size != len - 2) {
		log_debug("tpm2: TPM2B_PUBLIC size %zu, buffer %zu", size, len);
		return -EBADMSG;
	}
	memset(&tmp, 0, sizeof(tmp));
	r = tpm2_unmarshal_tpmt_public(buf + 2, size, &tmp.publicArea);
	if (r < 0)
		return r;
	tmp.size = (uint16_t)size;
	memcpy(ret, &tmp, sizeof(tmp));
	return 0;
}

/* ---- hashing ----------------------------------------------------------------------------- */

static const EVP_MD *
tpm2_md(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return EVP_sha1();
	case TPM2_ALG_SHA256:
		return EVP_sha256();
	case TPM2_ALG_SHA384:
		return EVP_sha384();
	case TPM2_ALG_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

const char *
tpm2_hash_name(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return "sha1";
	case TPM2_ALG_SHA256:
		return "sha256";
	case TPM2_ALG_SHA384:
		return "sha384";
	case TPM2_ALG_SHA512:
		return "sha512";
	default:
		return "unknown";
	}
}

size_t
tpm2_hash_size(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return 20;
	case TPM2_ALG_SHA256:
		return 32;
	case TPM2_ALG_SHA384:
		return 48;
	case TPM2_ALG_SHA512:
		return 64;
	default:
		return 0;
	}
}

int
tpm2_hashv(TPMI_ALG_HASH alg, const struct tpm2_buf *parts, size_t n, uint8_t *out)
{
	const EVP_MD *md = tpm2_md(alg);
	EVP_MD_CTX *ctx = NULL;
	unsigned int olen = 0;
	int ret = -EIO;

	if (md == NULL)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (parts[i].len > 0 && EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, out, &olen) != 1)
		goto out;
	ret = (int)olen;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

int
tpm2_hash(TPMI_ALG_HASH alg, const void *data, size_t len, uint8_t *out)
{
	struct tpm2_buf part = { data, len };

	return tpm2_hashv(alg, &part, 1, out);
}

/* ---- names and qualifying data ------------------------------------------------------------ */

int
tpm2_name_from_public(const TPMT_PUBLIC *pub, TPM2B_NAME *ret_name)
{
	uint8_t buf[sizeof(TPMT_PUBLIC) + 16];
	TPM2B_NAME name = { 0 };
	size_t len;
	int r;

	if (tpm2_hash_size(pub->nameAlg) == 0)
		return -EINVAL;
	r = tpm2_marshal_tpmt_public(pub, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	name.name[0] = (uint8_t)(pub->nameAlg >> 8);
	name.name[1] = (uint8_t)pub->nameAlg;
	r = tpm2_hash(pub->nameAlg, buf, len, name.name + 2);
	if (r < 0)
		return r;
	name.size = (uint16_t)(2 + r);
	*ret_name = name;
	return 0;
}

int
tpm2_name_from_tpm2b_public(const uint8_t *buf, size_t len, TPM2B_NAME *ret_name)
{
	TPM2B_PUBLIC pub;
	int r;

	r = tpm2_unmarshal_tpm2b_public(buf, len, &pub);
	if (r < 0)
		return r;
	return tpm2_name_from_public(&pub.publicArea, ret_name);
}

int
tpm2_qualifying_data(const uint8_t nonce[static TPM2_NONCE_LEN],
		     const uint8_t wg_pub[static TPM2_WG_KEY_LEN], TPM2B_DATA *ret_qd)
{
	struct tpm2_buf parts[2] = { { nonce, TPM2_NONCE_LEN }, { wg_pub, TPM2_WG_KEY_LEN } };
	TPM2B_DATA qd = { 0 };
	int r;

	r = tpm2_hashv(TPM2_ALG_SHA256, parts, 2, qd.buffer);
	if (r < 0)
		return r;
	qd.size = (uint16_t)r;
	*ret_qd = qd;
	return 0;
}

/* ---- PCR selections ---------------------------------------------------------------------- */

int
tpm2_pcr_selection_from_mask(TPMI_ALG_HASH bank, uint32_t mask, TPML_PCR_SELECTION *ret_sel)
{
	TPML_PCR_SELECTION sel = { 0 };

	if (tpm2_hash_size(bank) == 0 || (mask >> 24) != 0)
		return -EINVAL;
	sel.count = 1;
	sel.pcrSelections[0].hash = bank;
	sel.pcrSelections[0].sizeofSelect = 3;
	for (unsigned i = 0; i < 3; i++)
		sel.pcrSelections[0].pcrSelect[i] = (uint8_t)(mask >> (8 * i));
	*ret_sel = sel;
	return 0;
}

static TPMI_ALG_HASH
tpm2_hash_by_name(const char *s, size_t len)
{
	static const struct {
		const char *name;
		TPMI_ALG_HASH alg;
	} tab[] = {
		{ "sha1", TPM2_ALG_SHA1 },
		{ "sha256", TPM2_ALG_SHA256 },
		{ "sha384", TPM2_ALG_SHA384 },
		{ "sha512", TPM2_ALG_SHA512 },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strlen(tab[i].name) == len && strncmp(tab[i].name, s, len) == 0)
			return tab[i].alg;
	}
	return TPM2_ALG_ERROR;
}

int
tpm2_pcr_selection_parse(const char *spec, TPML_PCR_SELECTION *ret_sel)
{
	TPML_PCR_SELECTION sel = { 0 };
	const char *p = spec;

	if (spec == NULL || *spec == '\0')
		return -EINVAL;
	for (;;) {
		TPMS_PCR_SELECTION *s;
		const char *colon = strchr(p, ':');
		TPMI_ALG_HASH bank;

		if (colon == NULL || sel.count == TPM2_NUM_PCR_BANKS)
			return -EINVAL;
		bank = tpm2_hash_by_name(p, (size_t)(colon - p));
		if (bank == TPM2_ALG_ERROR)
			return -EINVAL;
		for (uint32_t i = 0; i < sel.count; i++) {
			if (sel.pcrSelections[i].hash == bank)
				return -EINVAL;
		}
		s = &sel.pcrSelections[sel.count++];
		s->hash = bank;
		s->sizeofSelect = 3;
		p = colon + 1;
		while (*p != '\0' && *p != '+') {
			char *end;
			unsigned long pcr;

			if (*p < '0' || *p > '9')
				return -EINVAL;
			errno = 0;
			pcr = strtoul(p, &end, 10);
			if (errno != 0 || pcr > 23)
				return -EINVAL;
			s->pcrSelect[pcr / 8] |= (uint8_t)(1u << (pcr % 8));
			p = end;
			if (*p == ',') {
				p++;
				if (*p == '\0' || *p == '+')
					return -EINVAL;
			} else if (*p != '\0' && *p != '+') {
				return -EINVAL;
			}
		}
		if (*p == '\0')
			break;
		p++;
	}
	*ret_sel = sel;
	return 0;
}

int
tpm2_pcr_selection_count(const TPML_PCR_SELECTION *sel)
{
	int n = 0;

	if (sel->count > TPM2_NUM_PCR_BANKS)
		return -EBADMSG;
	for (uint32_t b = 0; b < sel->count; b++) {
		const TPMS_PCR_SELECTION *s = &sel->pcrSelections[b];

		if (s->sizeofSelect > TPM2_PCR_SELECT_MAX)
			return -EBADMSG;
		for (unsigned i = 0; i < s->sizeofSelect; i++)
			n += __builtin_popcount(s->pcrSelect[i]);
	}
	return n;
}

bool
tpm2_pcr_selection_has(const TPML_PCR_SELECTION *sel, TPMI_ALG_HASH bank, unsigned pcr)
{
	for (uint32_t b = 0; b < sel->count && b < TPM2_NUM_PCR_BANKS; b++) {
		const TPMS_PCR_SELECTION *s = &sel->pcrSelections[b];

		if (s->hash != bank || pcr / 8 >= s->sizeofSelect || s->sizeofSelect > 4)
			continue;
		if (s->pcrSelect[pcr / 8] & (1u << (pcr % 8)))
			return true;
	}
	return false;
}

/*
 * Equal as selections: same banks in the same order (the order decides the order of the
 * values in the digest), same PCRs; a shorter sizeofSelect equals a longer one padded with
 * zero bits.
 */
bool
tpm2_pcr_selection_equal(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b)
{
	if (a->count != b->count || a->count > TPM2_NUM_PCR_BANKS)
		return false;
	for (uint32_t i = 0; i < a->count; i++) {
		const TPMS_PCR_SELECTION *x = &a->pcrSelections[i], *y = &b->pcrSelections[i];

		if (x->hash != y->hash || x->sizeofSelect > 4 || y->sizeofSelect > 4)
			return false;
		for (unsigned j = 0; j < 4; j++) {
			uint8_t bx = j < x->sizeofSelect ? x->pcrSelect[j] : 0;
			uint8_t by = j < y->sizeofSelect ? y->pcrSelect[j] : 0;

			if (bx != by)
				return false;
		}
	}
	return true;
}

/* ---- PCR values -------------------------------------------------------------------------- */

int
tpm2_pcr_values_add(struct tpm2_pcr_values *v, const TPML_DIGEST *list)
{
	if (list->count > 8 || v->count + list->count > TPM2_PCR_VALUES_MAX)
		return -ENOBUFS;
	for (uint32_t i = 0; i < list->count; i++)
		v->value[v->count++] = list->digests[i];
	return 0;
}

/* Values must be exactly one per selected PCR, each of its bank's digest size. */
static int
tpm2_pcr_values_check(const struct tpm2_pcr_values *v)
{
	uint32_t k = 0;
	int n = tpm2_pcr_selection_count(&v->sel);

	if (n < 0 || (uint32_t)n != v->count || v->count > TPM2_PCR_VALUES_MAX)
		return -EBADMSG;
	for (uint32_t b = 0; b < v->sel.count; b++) {
		const TPMS_PCR_SELECTION *s = &v->sel.pcrSelections[b];
		size_t dlen = tpm2_hash_size(s->hash);
		int nb = 0;

		if (dlen == 0)
			return -EBADMSG;
		for (unsigned i = 0; i < s->sizeofSelect; i++)
			nb += __builtin_popcount(s->pcrSelect[i]);
		for (int i = 0; i < nb; i++, k++) {
			if (v->value[k].size != dlen)
				return -EBADMSG;
		}
	}
	return 0;
}

int
tpm2_pcr_values_marshal(const struct tpm2_pcr_values *v, uint8_t *buf, size_t cap,
			size_t *ret_len)
{
	size_t off = 0, n;
	int r;

	r = tpm2_pcr_values_check(v);
	if (r < 0)
		return -EINVAL;
	r = tpm2_marshal_tpml_pcr_selection(&v->sel, buf, cap, &n);
	if (r < 0)
		return r;
	off = n;
	for (uint32_t i = 0; i < v->count || i == 0; i += 8) {
		TPML_DIGEST list = { 0 };

		for (uint32_t j = i; j < v->count && j < i + 8; j++)
			list.digests[list.count++] = v->value[j];
		r = tpm2_marshal_tpml_digest(&list, buf + off, cap - off, &n);
		if (r < 0)
			return r;
		off += n;
		if (v->count == 0)
			break;
	}
	*ret_len = off;
	return 0;
}

int
tpm2_pcr_values_unmarshal(const uint8_t *buf, size_t len, struct tpm2_pcr_values *ret)
{
	struct tpm2_pcr_values *v;
	size_t off = 0;
	int r = -EBADMSG;

	if (buf == NULL)
		return -EBADMSG;
	/* ~6 KiB: keep it off the stack of callers that are already deep */
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	if (Tss2_MU_TPML_PCR_SELECTION_Unmarshal(buf, len, &off, &v->sel) != TSS2_RC_SUCCESS)
		goto out;
	if (off == len)
		goto out; /* at least one TPML_DIGEST, even if empty */
	while (off < len) {
		TPML_DIGEST list;

		if (Tss2_MU_TPML_DIGEST_Unmarshal(buf, len, &off, &list) != TSS2_RC_SUCCESS)
			goto out;
		if (tpm2_pcr_values_add(v, &list) < 0)
			goto out;
	}
	if (tpm2_pcr_values_check(v) < 0)
		goto out;
	memcpy(ret, v, sizeof(*v));
	r = 0;
out:
	free(v);
	return r;
}

const TPM2B_DIGEST *
tpm2_pcr_values_get(const struct tpm2_pcr_values *v, TPMI_ALG_HASH bank, unsigned pcr)
{
	uint32_t k = 0;

	if (tpm2_pcr_values_check(v) < 0)
		return NULL;
	for (uint32_t b = 0; b < v->sel.count; b++) {
		const TPMS_PCR_SELECTION *s = &v->sel.pcrSelections[b];

		for (unsigned i = 0; i < 8u * s->sizeofSelect; i++) {
			if (!(s->pcrSelect[i / 8] & (1u << (i % 8))))
				continue;
			if (s->hash == bank && i == pcr)
				return &v->value[k];
			k++;
		}
	}
	return NULL;
}

int
tpm2_pcr_digest(TPMI_ALG_HASH alg, const struct tpm2_pcr_values *v, TPM2B_DIGEST *ret_digest)
{
	TPM2B_DIGEST d = { 0 };
	const EVP_MD *md = tpm2_md(alg);
	EVP_MD_CTX *ctx = NULL;
	unsigned int olen = 0;
	int ret = -EIO;

	if (md == NULL)
		return -EINVAL;
	if (tpm2_pcr_values_check(v) < 0)
		return -EBADMSG;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
		goto out;
	for (uint32_t i = 0; i < v->count; i++) {
		if (EVP_DigestUpdate(ctx, v->value[i].buffer, v->value[i].size) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, d.buffer, &olen) != 1)
		goto out;
	d.size = (uint16_t)olen;
	*ret_digest = d;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* ---- EK certificates -------------------------------------------------------------------- */

/* Length of the DER element (tag, length, content) at @p, or 0 if it does not fit in @len. */
static size_t
der_sequence_len(const uint8_t *p, size_t len)
{
	size_t hdr = 2, clen;

	if (len < 2 || p[0] != 0x30)
		return 0;
	if (p[1] < 0x80) {
		clen = p[1];
	} else {
		unsigned nb = p[1] & 0x7f;

		/* DER: long form only with 1..4 length bytes (certificates are < 4 GiB) */
		if (nb == 0 || nb > 4 || len < 2 + (size_t)nb)
			return 0;
		clen = 0;
		for (unsigned i = 0; i < nb; i++)
			clen = clen << 8 | p[2 + i];
		hdr += nb;
	}
	if (clen > len - hdr)
		return 0;
	return hdr + clen;
}

int
tpm2_ek_cert_strip(const uint8_t *buf, size_t len, const uint8_t **ret_der, size_t *ret_der_len)
{
	size_t n;

	if (buf == NULL)
		return -EBADMSG;
	/* TCG PC Client Platform TPM Profile: some vendors wrap the DER in 0x1001 || len16 */
	if (len >= 4 && buf[0] == 0x10 && buf[1] == 0x01) {
		size_t hlen = (size_t)buf[2] << 8 | buf[3];

		if (hlen > len - 4)
			return -EBADMSG;
		buf += 4;
		len = hlen;
	}
	n = der_sequence_len(buf, len);
	if (n == 0)
		return -EBADMSG;
	*ret_der = buf;
	*ret_der_len = n;
	return 0;
}

/* ---- KDFs -------------------------------------------------------------------------------- */

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
tpm2_kdfa(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_len, const char *label,
	  const uint8_t *ctx_u, size_t ctx_u_len, const uint8_t *ctx_v, size_t ctx_v_len,
	  uint32_t bits, uint8_t *out)
{
	const char *mdname = NULL;
	size_t hlen = tpm2_hash_size(alg), outlen = ((size_t)bits + 7) / 8, done = 0;
	uint8_t block[TPM2_MAX_DIGEST_LEN], ctr[4], be_bits[4];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int ret = -EIO;

	if (hlen == 0 || bits == 0)
		return -EINVAL;
	mdname = EVP_MD_get0_name(tpm2_md(alg));
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)mdname, 0);
	params[1] = OSSL_PARAM_construct_end();
	put_be32(be_bits, bits);
	for (uint32_t i = 1; done < outlen; i++) {
		size_t n = 0;

		EVP_MAC_CTX_free(ctx);
		ctx = EVP_MAC_CTX_new(mac);
		if (ctx == NULL || EVP_MAC_init(ctx, key, key_len, params) != 1)
			goto out;
		put_be32(ctr, i);
		if (EVP_MAC_update(ctx, ctr, 4) != 1 ||
		    EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1) != 1 ||
		    (ctx_u_len > 0 && EVP_MAC_update(ctx, ctx_u, ctx_u_len) != 1) ||
		    (ctx_v_len > 0 && EVP_MAC_update(ctx, ctx_v, ctx_v_len) != 1) ||
		    EVP_MAC_update(ctx, be_bits, 4) != 1 ||
		    EVP_MAC_final(ctx, block, &n, sizeof(block)) != 1 || n != hlen)
			goto out;
		n = outlen - done < hlen ? outlen - done : hlen;
		memcpy(out + done, block, n);
		done += n;
	}
	/* the spec keeps the low-order bits when bits is not a whole number of bytes */
	if (bits % 8)
		out[0] &= (uint8_t)((1u << (bits % 8)) - 1);
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (ret < 0)
		OPENSSL_cleanse(out, outlen);
	return ret;
}

int
tpm2_kdfe(TPMI_ALG_HASH alg, const uint8_t *z, size_t z_len, const char *label,
	  const uint8_t *party_u, size_t party_u_len, const uint8_t *party_v,
	  size_t party_v_len, uint32_t bits, uint8_t *out)
{
	size_t hlen = tpm2_hash_size(alg), outlen = ((size_t)bits + 7) / 8, done = 0;
	uint8_t block[TPM2_MAX_DIGEST_LEN], ctr[4];
	int ret = 0;

	if (hlen == 0 || bits == 0)
		return -EINVAL;
	for (uint32_t i = 1; done < outlen; i++) {
		struct tpm2_buf parts[5] = {
			{ ctr, 4 },
			{ z, z_len },
			{ label, strlen(label) + 1 },
			{ party_u, party_u_len },
			{ party_v, party_v_len },
		};
		size_t n;

		put_be32(ctr, i);
		ret = tpm2_hashv(alg, parts, 5, block);
		if (ret < 0)
			goto out;
		n = outlen - done < hlen ? outlen - done : hlen;
		memcpy(out + done, block, n);
		done += n;
	}
	if (bits % 8)
		out[0] &= (uint8_t)((1u << (bits % 8)) - 1);
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	if (ret < 0)
		OPENSSL_cleanse(out, outlen);
	return ret;
}
