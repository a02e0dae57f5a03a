// SPDX-License-Identifier: MIT
/*
 * Key templates (TCG EK Credential Profile 2.5, TCG Provisioning Guidance) and software
 * policy digests. See common/tpm2_templates.h.
 */
#include <errno.h>
#include <string.h>

#include "common/tpm2.h"
#include "common/tpm2_templates.h"

/* TPM2_PolicySecret(TPM_RH_ENDORSEMENT) in SHA-256: the low-range EK authPolicy. */
static const uint8_t policy_low_sha256[] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d,
	0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
	0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};
/* EK Credential Profile 2.5 PolicyA (PolicySecret(TPM_RH_ENDORSEMENT)), SHA-384. */
static const uint8_t policy_a_sha384[] = {
	0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c,
	0x4d, 0xc1, 0xd4, 0xb6, 0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f,
	0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e, 0x14, 0x3e, 0x8b, 0xb1,
	0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
};
/* EK Credential Profile 2.5 PolicyC, SHA-384. */
static const uint8_t policy_c_sha384[] = {
	0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6,
	0xa3, 0x32, 0x37, 0xef, 0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4,
	0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5, 0xb4, 0x94, 0x7c, 0x2d,
	0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
};
/* PolicyOR(PolicyA, PolicyC), SHA-384: the high-range EK authPolicy (template H-3). */
static const uint8_t policy_high_sha384[] = {
	0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc,
	0xf5, 0xfd, 0x3a, 0x1a, 0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4,
	0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca, 0xcb, 0x47, 0xba, 0x09,
	0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
};

static const struct tpm2_ek_info ek_table[TPM2_EK_TYPE_COUNT] = {
	[TPM2_EK_RSA2048] = { TPM2_EK_RSA2048, "rsa2048", 0x01c00002, 0x81010001, TPM2_ALG_SHA256,
			      false },
	[TPM2_EK_ECC_P256] = { TPM2_EK_ECC_P256, "p256", 0x01c0000a, 0x81010002, TPM2_ALG_SHA256,
			       false },
	[TPM2_EK_ECC_P384] = { TPM2_EK_ECC_P384, "p384", 0x01c00016, 0x81010016, TPM2_ALG_SHA384,
			       true },
};

const struct tpm2_ek_info *
tpm2_ek_info(enum tpm2_ek_type type)
{
	if ((unsigned)type >= TPM2_EK_TYPE_COUNT)
		return NULL;
	return &ek_table[type];
}

int
tpm2_ek_type_parse(const char *s, enum tpm2_ek_type *ret_type)
{
	if (s == NULL)
		return -EINVAL;
	if (strcmp(s, "rsa") == 0) {
		*ret_type = TPM2_EK_RSA2048;
		return 0;
	}
	for (unsigned i = 0; i < TPM2_EK_TYPE_COUNT; i++) {
		if (strcmp(s, ek_table[i].name) == 0) {
			*ret_type = ek_table[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

#define EK_LOW_ATTRIBUTES                                                                        \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |      \
	 TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)
/* the high-range templates also set userWithAuth (the policy still guards ADMIN) */
#define EK_HIGH_ATTRIBUTES (EK_LOW_ATTRIBUTES | TPMA_OBJECT_USERWITHAUTH)

static void
set_digest(TPM2B_DIGEST *d, const uint8_t *p, size_t len)
{
	d->size = (UINT16)len;
	memcpy(d->buffer, p, len);
}

static void
sym_aes_cfb(TPMT_SYM_DEF_OBJECT *sym, UINT16 bits)
{
	sym->algorithm = TPM2_ALG_AES;
	sym->keyBits.aes = bits;
	sym->mode.aes = TPM2_ALG_CFB;
}

int
tpm2_ek_template(enum tpm2_ek_type type, TPM2B_PUBLIC *ret_tmpl)
{
	TPMT_PUBLIC *p;

	if ((unsigned)type >= TPM2_EK_TYPE_COUNT)
		return -EINVAL;
	memset(ret_tmpl, 0, sizeof(*ret_tmpl));
	p = &ret_tmpl->publicArea;
	switch (type) {
	case TPM2_EK_RSA2048: /* template L-1 */
		p->type = TPM2_ALG_RSA;
		p->nameAlg = TPM2_ALG_SHA256;
		p->objectAttributes = EK_LOW_ATTRIBUTES;
		set_digest(&p->authPolicy, policy_low_sha256, sizeof(policy_low_sha256));
		sym_aes_cfb(&p->parameters.rsaDetail.symmetric, 128);
		p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.rsaDetail.keyBits = 2048;
		p->parameters.rsaDetail.exponent = 0;
		p->unique.rsa.size = 256; /* zeros */
		break;
	case TPM2_EK_ECC_P256: /* template L-2 */
		p->type = TPM2_ALG_ECC;
		p->nameAlg = TPM2_ALG_SHA256;
		p->objectAttributes = EK_LOW_ATTRIBUTES;
		set_digest(&p->authPolicy, policy_low_sha256, sizeof(policy_low_sha256));
		sym_aes_cfb(&p->parameters.eccDetail.symmetric, 128);
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		p->unique.ecc.x.size = 32; /* zeros */
		p->unique.ecc.y.size = 32;
		break;
	case TPM2_EK_ECC_P384: /* template H-3: unique is empty in the high range */
		p->type = TPM2_ALG_ECC;
		p->nameAlg = TPM2_ALG_SHA384;
		p->objectAttributes = EK_HIGH_ATTRIBUTES;
		set_digest(&p->authPolicy, policy_high_sha384, sizeof(policy_high_sha384));
		sym_aes_cfb(&p->parameters.eccDetail.symmetric, 256);
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

int
tpm2_ek_policy_branches(enum tpm2_ek_type type, TPML_DIGEST *ret_list)
{
	if ((unsigned)type >= TPM2_EK_TYPE_COUNT)
		return -EINVAL;
	memset(ret_list, 0, sizeof(*ret_list));
	if (!ek_table[type].policy_or)
		return 0;
	set_digest(&ret_list->digests[0], policy_a_sha384, sizeof(policy_a_sha384));
	set_digest(&ret_list->digests[1], policy_c_sha384, sizeof(policy_c_sha384));
	ret_list->count = 2;
	return 0;
}

void
tpm2_srk_template(TPM2B_PUBLIC *ret_tmpl)
{
	TPMT_PUBLIC *p = &ret_tmpl->publicArea;

	memset(ret_tmpl, 0, sizeof(*ret_tmpl));
	p->type = TPM2_ALG_ECC;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
			      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
			      TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	sym_aes_cfb(&p->parameters.eccDetail.symmetric, 128);
	p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	p->unique.ecc.x.size = 32; /* zeros, as in the Provisioning Guidance */
	p->unique.ecc.y.size = 32;
}

int
tpm2_ak_template(TPMI_ALG_PUBLIC type, TPM2B_PUBLIC *ret_tmpl)
{
	TPM2B_PUBLIC t;
	TPMT_PUBLIC *p = &t.publicArea;

	memset(&t, 0, sizeof(t));
	p->type = type;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPM2_AK_ATTRIBUTES;
	switch (type) {
	case TPM2_ALG_ECC:
		p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
		p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		break;
	case TPM2_ALG_RSA:
		p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
		p->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
		p->parameters.rsaDetail.keyBits = 2048;
		p->parameters.rsaDetail.exponent = 0;
		break;
	default:
		return -EINVAL;
	}
	*ret_tmpl = t;
	return 0;
}

int
tpm2_seal_template(const TPM2B_DIGEST *policy, TPM2B_PUBLIC *ret_tmpl)
{
	TPM2B_PUBLIC t;
	TPMT_PUBLIC *p = &t.publicArea;
	bool has_policy = policy != NULL && policy->size > 0;

	if (has_policy && policy->size != tpm2_hash_size(TPM2_ALG_SHA256))
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	p->type = TPM2_ALG_KEYEDHASH;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
	if (has_policy)
		p->authPolicy = *policy;
	else
		p->objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	p->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	*ret_tmpl = t;
	return 0;
}

static bool
sym_equal(const TPMT_SYM_DEF_OBJECT *a, const TPMT_SYM_DEF_OBJECT *b)
{
	if (a->algorithm != b->algorithm)
		return false;
	if (a->algorithm == TPM2_ALG_NULL)
		return true;
	return a->keyBits.sym == b->keyBits.sym && a->mode.sym == b->mode.sym;
}

/* Asymmetric and keyed-hash schemes share the layout { scheme; details { hashAlg ... } }. */
static bool
scheme_equal(TPMI_ALG_ASYM_SCHEME sa, TPMI_ALG_HASH ha, TPMI_ALG_ASYM_SCHEME sb, TPMI_ALG_HASH hb)
{
	if (sa != sb)
		return false;
	return sa == TPM2_ALG_NULL || ha == hb;
}

bool
tpm2_public_matches_template(const TPMT_PUBLIC *pub, const TPMT_PUBLIC *tmpl)
{
	if (pub->type != tmpl->type || pub->nameAlg != tmpl->nameAlg ||
	    pub->objectAttributes != tmpl->objectAttributes ||
	    pub->authPolicy.size != tmpl->authPolicy.size ||
	    memcmp(pub->authPolicy.buffer, tmpl->authPolicy.buffer, tmpl->authPolicy.size) != 0)
		return false;

	switch (pub->type) {
	case TPM2_ALG_RSA: {
		const TPMS_RSA_PARMS *a = &pub->parameters.rsaDetail, *b = &tmpl->parameters.rsaDetail;
		UINT32 ea = a->exponent ? a->exponent : 65537, eb = b->exponent ? b->exponent : 65537;

		return sym_equal(&a->symmetric, &b->symmetric) &&
		       scheme_equal(a->scheme.scheme, a->scheme.details.anySig.hashAlg,
				    b->scheme.scheme, b->scheme.details.anySig.hashAlg) &&
		       a->keyBits == b->keyBits && ea == eb;
	}
	case TPM2_ALG_ECC: {
		const TPMS_ECC_PARMS *a = &pub->parameters.eccDetail, *b = &tmpl->parameters.eccDetail;

		return sym_equal(&a->symmetric, &b->symmetric) &&
		       scheme_equal(a->scheme.scheme, a->scheme.details.anySig.hashAlg,
				    b->scheme.scheme, b->scheme.details.anySig.hashAlg) &&
		       a->curveID == b->curveID &&
		       scheme_equal(a->kdf.scheme, a->kdf.details.mgf1.hashAlg, b->kdf.scheme,
				    b->kdf.details.mgf1.hashAlg);
	}
	case TPM2_ALG_KEYEDHASH: {
		const TPMT_KEYEDHASH_SCHEME *a = &pub->parameters.keyedHashDetail.scheme;
		const TPMT_KEYEDHASH_SCHEME *b = &tmpl->parameters.keyedHashDetail.scheme;

		if (a->scheme != b->scheme)
			return false;
		if (a->scheme == TPM2_ALG_HMAC)
			return a->details.hmac.hashAlg == b->details.hmac.hashAlg;
		if (a->scheme == TPM2_ALG_XOR)
			return a->details.exclusiveOr.hashAlg == b->details.exclusiveOr.hashAlg &&
			       a->details.exclusiveOr.kdf == b->details.exclusiveOr.kdf;
		return true;
	}
	case TPM2_ALG_SYMCIPHER:
		return sym_equal(&pub->parameters.symDetail.sym, &tmpl->parameters.symDetail.sym);
	default:
		return false;
	}
}

/* ---- policy digests ----------------------------------------------------------------------- */

static void
be32(uint8_t out[4], uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
}

int
tpm2_policy_init(TPMI_ALG_HASH alg, TPM2B_DIGEST *ret_digest)
{
	size_t n = tpm2_hash_size(alg);

	if (n == 0)
		return -EINVAL;
	memset(ret_digest, 0, sizeof(*ret_digest));
	ret_digest->size = (UINT16)n;
	return 0;
}

/* @digest must already be a policy digest of @alg (tpm2_policy_init). */
static int
policy_check(TPMI_ALG_HASH alg, const TPM2B_DIGEST *digest)
{
	size_t n = tpm2_hash_size(alg);

	return n != 0 && digest->size == n ? 0 : -EINVAL;
}

void
tpm2_name_from_handle(TPM2_HANDLE handle, TPM2B_NAME *ret_name)
{
	memset(ret_name, 0, sizeof(*ret_name));
	be32(ret_name->name, handle);
	ret_name->size = 4;
}

int
tpm2_policy_secret(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPM2B_NAME *auth_name,
		   const TPM2B_NONCE *policy_ref)
{
	uint8_t cc[4], out[TPM2_MAX_DIGEST_LEN];
	struct tpm2_buf parts[3];
	int ret;

	if (policy_check(alg, digest) < 0 || auth_name->size > sizeof(auth_name->name))
		return -EINVAL;
	be32(cc, TPM2_CC_PolicySecret);
	parts[0] = (struct tpm2_buf){ digest->buffer, digest->size };
	parts[1] = (struct tpm2_buf){ cc, 4 };
	parts[2] = (struct tpm2_buf){ auth_name->name, auth_name->size };
	ret = tpm2_hashv(alg, parts, 3, out);
	if (ret < 0)
		return ret;
	parts[0] = (struct tpm2_buf){ out, (size_t)ret };
	parts[1] = (struct tpm2_buf){ policy_ref ? policy_ref->buffer : NULL,
				      policy_ref ? policy_ref->size : 0 };
	ret = tpm2_hashv(alg, parts, 2, out);
	if (ret < 0)
		return ret;
	memcpy(digest->buffer, out, (size_t)ret);
	return 0;
}

int
tpm2_policy_or(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPML_DIGEST *branches)
{
	uint8_t cc[4], zeros[TPM2_MAX_DIGEST_LEN] = { 0 }, out[TPM2_MAX_DIGEST_LEN];
	struct tpm2_buf parts[2 + 8];
	size_t n = tpm2_hash_size(alg);
	int ret;

	if (policy_check(alg, digest) < 0 || branches->count < 2 || branches->count > 8)
		return -EINVAL;
	be32(cc, TPM2_CC_PolicyOR);
	parts[0] = (struct tpm2_buf){ zeros, n };
	parts[1] = (struct tpm2_buf){ cc, 4 };
	for (UINT32 i = 0; i < branches->count; i++) {
		if (branches->digests[i].size != n)
			return -EINVAL;
		parts[2 + i] = (struct tpm2_buf){ branches->digests[i].buffer, n };
	}
	ret = tpm2_hashv(alg, parts, 2 + branches->count, out);
	if (ret < 0)
		return ret;
	memcpy(digest->buffer, out, n);
	return 0;
}

int
tpm2_policy_pcr(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPML_PCR_SELECTION *sel,
		const TPM2B_DIGEST *pcr_digest)
{
	uint8_t cc[4], selbuf[sizeof(TPML_PCR_SELECTION)], out[TPM2_MAX_DIGEST_LEN];
	struct tpm2_buf parts[4];
	size_t sellen;
	int ret;

	if (policy_check(alg, digest) < 0 || pcr_digest->size != digest->size)
		return -EINVAL;
	ret = tpm2_marshal_tpml_pcr_selection(sel, selbuf, sizeof(selbuf), &sellen);
	if (ret < 0)
		return ret;
	be32(cc, TPM2_CC_PolicyPCR);
	parts[0] = (struct tpm2_buf){ digest->buffer, digest->size };
	parts[1] = (struct tpm2_buf){ cc, 4 };
	parts[2] = (struct tpm2_buf){ selbuf, sellen };
	parts[3] = (struct tpm2_buf){ pcr_digest->buffer, pcr_digest->size };
	ret = tpm2_hashv(alg, parts, 4, out);
	if (ret < 0)
		return ret;
	memcpy(digest->buffer, out, (size_t)ret);
	return 0;
}
