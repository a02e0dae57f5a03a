// SPDX-License-Identifier: MIT
/*
 * Unit tests for common/tpm2_templates.c. Reference values: the EK policy digests of the
 * TCG EK Credential Profile 2.5 (as DESIGN.md quotes them), EK and AK public areas made by
 * swtpm 0.7 / tpm2-tools 5.4 (tpm2_readpublic -f tss, tpm2_createek, tpm2_createak), and
 * PolicyPCR digests computed by the TPM in a trial session (tpm2_createpolicy --policy-pcr
 * -f values) on swtpm.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "common/tpm2.h"
#include "common/tpm2_templates.h"

static size_t
hex2bin(uint8_t *out, const char *hex)
{
	size_t i;

	for (i = 0; hex[2 * i]; i++)
		sscanf(&hex[2 * i], "%2hhx", &out[i]);
	return i;
}

static void
assert_digest_hex(const TPM2B_DIGEST *d, const char *hex)
{
	uint8_t want[TPM2_MAX_DIGEST_LEN];
	size_t n = hex2bin(want, hex);

	assert_int_equal(d->size, n);
	assert_memory_equal(d->buffer, want, n);
}

/* DESIGN.md: the TCG EK Credential Profile 2.5 SHA-384 digests */
static const char policy_a_sha384[] = "8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3"
				      "278c930e143e8bb1133824ccb431053871c6db53";
static const char policy_c_sha384[] = "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cf"
				      "fd217ad5b4947c2d73e63005eed2dc2b3593d165";
static const char auth_policy_p384[] = "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9"
				       "bde419cacb47ba09699646150f9fc000f3f80e12";
/* the low-range EK authPolicy (tpm2_readpublic of swtpm's RSA EK prints it) */
static const char auth_policy_low[] =
	"837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa";

/* swtpm_setup --create-ek-cert: the RSA-2048 EK at 0x81010001 (tpm2_readpublic -f tss) */
static const char ek_rsa_pub[] =
	"013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469"
	"aa00060080004300100800000000000100c1aecbbb69a7ffff7f3428569bfa3cf6f65409e4498a91ab1f95"
	"e3acb9abccc4b5603e2ff7948b77c65fcb483020a1aaaae3c3935c5bf3cdee053e3cf19d0f444483358d21"
	"e555198038ce201adcaa01fd3ddbc4094257328c406312d70e97387a0d9f6bedd835ebfcddf961d139bf75"
	"91c11b2e6bbc081eebd24291067ccfa6cc4c1e2a24b8f62a514328809fa160a6e3421a2d8ad17989fa53ff"
	"966341c0a441a3188fda726804ef8cb941e930daca4faf9795434383f201f8f102e3801ee94df0c2d34e31"
	"faa7bedb3b94e74a47345e5e1ad751b6826c600f72cb61d24295ff557efde88562eee7100d6a437f7a1021"
	"062430c803b85b968147f88311083b";
/* tpm2_createek -G ecc (the TCG P-256 template in tpm2-tools) */
static const char ek_p256_pub[] =
	"007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469"
	"aa000600800043001000030010002078b1fce907e817b37f647b9194a290b2c633ca82400a9e1addf6efcb"
	"1936a62a0020ea25faacb4624c0afbea1fcb9bf0641c3b43a0993d8eb288f1bec959260bb250";
/* swtpm_setup --ecc: the P-384 EK at 0x81010016 */
static const char ek_p384_pub[] =
	"00aa0023000c000300f20030b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419"
	"cacb47ba09699646150f9fc000f3f80e120006010000430010000400100030d7aefebc46b528f9acc20dec"
	"2e36848c559804cc25be512de83a5928a0c173a72942c3a0abd6548fbba008e60902514d00308f91aa8a0c"
	"ad1891c88617b0fdb82cf88413b4fee97ef492240dce09b9a971feebb5d5a026e61d605c6d3739cb68f2bb";
/* tpm2_createak -G ecc -g sha256 -s ecdsa */
static const char ak_ecc_pub[] =
	"00580023000b00050072000000100018000b000300100020fc8985287b5bcf3cd5c38244a9772ee4d605fc"
	"0ae148da2ec9c4ac87374bab8b0020304129d0c465572bbab5d128e8068752535a48e77de00d46c817d30b"
	"02d5e001";

static void
parse_pub(const char *hex, TPMT_PUBLIC *out)
{
	uint8_t buf[1024];
	size_t n = hex2bin(buf, hex);
	TPM2B_PUBLIC p;

	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n, &p), 0);
	*out = p.publicArea;
}

static void
test_ek_info(void **state)
{
	const struct tpm2_ek_info *i;
	enum tpm2_ek_type t;

	i = tpm2_ek_info(TPM2_EK_RSA2048);
	assert_non_null(i);
	assert_int_equal(i->nv_cert, 0x01c00002);
	assert_int_equal(i->persistent, 0x81010001);
	assert_int_equal(i->policy_hash, TPM2_ALG_SHA256);
	assert_false(i->policy_or);
	i = tpm2_ek_info(TPM2_EK_ECC_P256);
	assert_int_equal(i->nv_cert, 0x01c0000a);
	assert_int_equal(i->persistent, 0x81010002);
	i = tpm2_ek_info(TPM2_EK_ECC_P384);
	assert_int_equal(i->nv_cert, 0x01c00016);
	assert_int_equal(i->persistent, 0x81010016);
	assert_int_equal(i->policy_hash, TPM2_ALG_SHA384);
	assert_true(i->policy_or);
	assert_null(tpm2_ek_info(TPM2_EK_TYPE_COUNT));
	assert_null(tpm2_ek_info((enum tpm2_ek_type)-1));

	assert_int_equal(tpm2_ek_type_parse("p384", &t), 0);
	assert_int_equal(t, TPM2_EK_ECC_P384);
	assert_int_equal(tpm2_ek_type_parse("rsa", &t), 0);
	assert_int_equal(t, TPM2_EK_RSA2048);
	assert_int_equal(tpm2_ek_type_parse("rsa2048", &t), 0);
	assert_int_equal(tpm2_ek_type_parse("p256", &t), 0);
	assert_int_equal(t, TPM2_EK_ECC_P256);
	assert_int_equal(tpm2_ek_type_parse("P384", &t), -EINVAL);
	assert_int_equal(tpm2_ek_type_parse("", &t), -EINVAL);
	assert_int_equal(tpm2_ek_type_parse(NULL, &t), -EINVAL);
}

/* The low-range authPolicy is PolicySecret(TPM_RH_ENDORSEMENT), computed in software. */
static void
test_low_range_policy(void **state)
{
	TPM2B_DIGEST d;
	TPM2B_NAME n;
	TPM2B_PUBLIC t;

	tpm2_name_from_handle(TPM2_RH_ENDORSEMENT, &n);
	assert_int_equal(n.size, 4);
	assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA256, &d), 0);
	assert_int_equal(tpm2_policy_secret(TPM2_ALG_SHA256, &d, &n, NULL), 0);
	assert_digest_hex(&d, auth_policy_low);

	assert_int_equal(tpm2_ek_template(TPM2_EK_RSA2048, &t), 0);
	assert_digest_hex(&t.publicArea.authPolicy, auth_policy_low);
	assert_int_equal(tpm2_ek_template(TPM2_EK_ECC_P256, &t), 0);
	assert_digest_hex(&t.publicArea.authPolicy, auth_policy_low);
}

/* P-384 (H-3): authPolicy equals DESIGN.md's; PolicyA is PolicySecret(endorsement) in
 * SHA-384; authPolicy = PolicyOR(PolicyA, PolicyC). */
static void
test_p384_policy(void **state)
{
	TPM2B_PUBLIC t;
	TPML_DIGEST br;
	TPM2B_DIGEST d;
	TPM2B_NAME n;

	assert_int_equal(tpm2_ek_template(TPM2_EK_ECC_P384, &t), 0);
	assert_int_equal(t.publicArea.nameAlg, TPM2_ALG_SHA384);
	assert_digest_hex(&t.publicArea.authPolicy, auth_policy_p384);

	assert_int_equal(tpm2_ek_policy_branches(TPM2_EK_ECC_P384, &br), 0);
	assert_int_equal(br.count, 2);
	assert_digest_hex(&br.digests[0], policy_a_sha384);
	assert_digest_hex(&br.digests[1], policy_c_sha384);

	tpm2_name_from_handle(TPM2_RH_ENDORSEMENT, &n);
	assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA384, &d), 0);
	assert_int_equal(tpm2_policy_secret(TPM2_ALG_SHA384, &d, &n, NULL), 0);
	assert_digest_hex(&d, policy_a_sha384);
	/* what the device's policy session ends at after PolicySecret + PolicyOR */
	assert_int_equal(tpm2_policy_or(TPM2_ALG_SHA384, &d, &br), 0);
	assert_digest_hex(&d, auth_policy_p384);

	assert_int_equal(tpm2_ek_policy_branches(TPM2_EK_RSA2048, &br), 0);
	assert_int_equal(br.count, 0);
	assert_int_equal(tpm2_ek_policy_branches(TPM2_EK_TYPE_COUNT, &br), -EINVAL);
}

static void
test_policy_or_args(void **state)
{
	TPML_DIGEST br;
	TPM2B_DIGEST d;

	assert_int_equal(tpm2_ek_policy_branches(TPM2_EK_ECC_P384, &br), 0);
	/* wrong session hash for these branches */
	assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA256, &d), 0);
	assert_int_equal(tpm2_policy_or(TPM2_ALG_SHA256, &d, &br), -EINVAL);
	/* one branch is not an OR */
	br.count = 1;
	assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA384, &d), 0);
	assert_int_equal(tpm2_policy_or(TPM2_ALG_SHA384, &d, &br), -EINVAL);
	br.count = 9;
	assert_int_equal(tpm2_policy_or(TPM2_ALG_SHA384, &d, &br), -EINVAL);
	/* digest of another hash */
	assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA256, &d), 0);
	br.count = 2;
	assert_int_equal(tpm2_policy_or(TPM2_ALG_SHA384, &d, &br), -EINVAL);
	assert_int_equal(tpm2_policy_init(0x1234, &d), -EINVAL);
}

/* PolicyPCR against the TPM's own trial-session result (tpm2_createpolicy on swtpm). */
static void
test_policy_pcr(void **state)
{
	static const struct {
		const char *spec;
		uint8_t fill[3];
		const char *want;
	} v[] = {
		{ "sha256:0,7", { 0x00, 0x07 },
		  "f68f25c14cac2f875012beb256a79ba5b5b7d504e563462a557e908a4a8249be" },
		{ "sha256:3,16,23", { 0x01, 0x01, 0x01 },
		  "7c87e083ab963eff6724e4065ea49c4a8735db8872349262658bcd1400156347" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct tpm2_pcr_values *pv = calloc(1, sizeof(*pv));
		TPM2B_DIGEST pd, d;
		TPML_DIGEST list;
		int n;

		assert_non_null(pv);
		assert_int_equal(tpm2_pcr_selection_parse(v[i].spec, &pv->sel), 0);
		n = tpm2_pcr_selection_count(&pv->sel);
		memset(&list, 0, sizeof(list));
		list.count = (UINT32)n;
		for (int j = 0; j < n; j++) {
			list.digests[j].size = 32;
			memset(list.digests[j].buffer, v[i].fill[j], 32);
		}
		assert_int_equal(tpm2_pcr_values_add(pv, &list), 0);
		assert_int_equal(tpm2_pcr_digest(TPM2_ALG_SHA256, pv, &pd), 0);
		assert_int_equal(tpm2_policy_init(TPM2_ALG_SHA256, &d), 0);
		assert_int_equal(tpm2_policy_pcr(TPM2_ALG_SHA256, &d, &pv->sel, &pd), 0);
		assert_digest_hex(&d, v[i].want);
		/* a pcrDigest of another size */
		pd.size = 20;
		assert_int_equal(tpm2_policy_pcr(TPM2_ALG_SHA256, &d, &pv->sel, &pd), -EINVAL);
		free(pv);
	}
}

/* Keys the TPM made from the TCG templates match ours (all but unique). */
static void
test_templates_match_tpm_keys(void **state)
{
	TPMT_PUBLIC pub;
	TPM2B_PUBLIC t;

	parse_pub(ek_rsa_pub, &pub);
	assert_int_equal(tpm2_ek_template(TPM2_EK_RSA2048, &t), 0);
	assert_true(tpm2_public_matches_template(&pub, &t.publicArea));
	assert_int_equal(tpm2_ek_template(TPM2_EK_ECC_P256, &t), 0);
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));

	parse_pub(ek_p256_pub, &pub);
	assert_true(tpm2_public_matches_template(&pub, &t.publicArea));
	assert_int_equal(tpm2_ek_template(TPM2_EK_ECC_P384, &t), 0);
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));

	parse_pub(ek_p384_pub, &pub);
	assert_true(tpm2_public_matches_template(&pub, &t.publicArea));

	parse_pub(ak_ecc_pub, &pub);
	assert_int_equal(tpm2_ak_template(TPM2_ALG_ECC, &t), 0);
	assert_true(tpm2_public_matches_template(&pub, &t.publicArea));
	assert_int_equal(pub.objectAttributes, TPM2_AK_ATTRIBUTES);
}

static void
test_matches_is_strict(void **state)
{
	TPMT_PUBLIC pub;
	TPM2B_PUBLIC t;

	assert_int_equal(tpm2_ek_template(TPM2_EK_RSA2048, &t), 0);
	parse_pub(ek_rsa_pub, &pub);
	pub.parameters.rsaDetail.exponent = 65537; /* same as 0 */
	assert_true(tpm2_public_matches_template(&pub, &t.publicArea));
	pub.parameters.rsaDetail.exponent = 3;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
	parse_pub(ek_rsa_pub, &pub);
	pub.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
	parse_pub(ek_rsa_pub, &pub);
	pub.authPolicy.buffer[5] ^= 1;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
	parse_pub(ek_rsa_pub, &pub);
	pub.parameters.rsaDetail.symmetric.keyBits.aes = 256;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
	parse_pub(ek_rsa_pub, &pub);
	pub.nameAlg = TPM2_ALG_SHA384;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));

	assert_int_equal(tpm2_ak_template(TPM2_ALG_ECC, &t), 0);
	parse_pub(ak_ecc_pub, &pub);
	pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA384;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
	parse_pub(ak_ecc_pub, &pub);
	pub.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
	assert_false(tpm2_public_matches_template(&pub, &t.publicArea));
}

static void
test_ak_srk_seal_templates(void **state)
{
	TPM2B_PUBLIC t, s;
	TPM2B_DIGEST pol;
	uint8_t buf[1024];
	size_t n;

	assert_int_equal(tpm2_ak_template(TPM2_ALG_RSA, &t), 0);
	assert_int_equal(t.publicArea.objectAttributes, TPM2_AK_ATTRIBUTES);
	assert_int_equal(t.publicArea.parameters.rsaDetail.scheme.scheme, TPM2_ALG_RSASSA);
	assert_int_equal(t.publicArea.parameters.rsaDetail.keyBits, 2048);
	assert_int_equal(tpm2_ak_template(TPM2_ALG_KEYEDHASH, &t), -EINVAL);

	tpm2_srk_template(&s);
	assert_int_equal(s.publicArea.type, TPM2_ALG_ECC);
	assert_int_equal(s.publicArea.objectAttributes, 0x00030472);
	assert_int_equal(s.publicArea.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
	assert_int_equal(tpm2_marshal_tpm2b_public(&s, buf, sizeof(buf), &n), 0);

	assert_int_equal(tpm2_seal_template(NULL, &t), 0);
	assert_int_equal(t.publicArea.type, TPM2_ALG_KEYEDHASH);
	assert_int_equal(t.publicArea.objectAttributes,
			 TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA |
				 TPMA_OBJECT_USERWITHAUTH);
	assert_int_equal(t.publicArea.authPolicy.size, 0);

	memset(&pol, 0x5a, sizeof(pol));
	pol.size = 32;
	assert_int_equal(tpm2_seal_template(&pol, &t), 0);
	/* the policy is the only way to unseal; Certify (ADMIN) still works with authValue */
	assert_int_equal(t.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0);
	assert_int_equal(t.publicArea.objectAttributes & TPMA_OBJECT_ADMINWITHPOLICY, 0);
	assert_int_equal(t.publicArea.objectAttributes & TPMA_OBJECT_SENSITIVEDATAORIGIN, 0);
	assert_memory_equal(t.publicArea.authPolicy.buffer, pol.buffer, 32);
	pol.size = 48;
	assert_int_equal(tpm2_seal_template(&pol, &t), -EINVAL);
	assert_int_equal(tpm2_marshal_tpm2b_public(&t, buf, sizeof(buf), &n), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ek_info),
		cmocka_unit_test(test_low_range_policy),
		cmocka_unit_test(test_p384_policy),
		cmocka_unit_test(test_policy_or_args),
		cmocka_unit_test(test_policy_pcr),
		cmocka_unit_test(test_templates_match_tpm_keys),
		cmocka_unit_test(test_matches_is_strict),
		cmocka_unit_test(test_ak_srk_seal_templates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
