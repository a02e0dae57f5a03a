// SPDX-License-Identifier: MIT
/*
 * Unit tests for common/tpm2.c. Reference values: names printed by tpm2_readpublic on
 * swtpm (captured below as data), KDFa/KDFe and hashes computed independently with
 * Python's hmac/hashlib from the spec's definitions (TPM 2.0 Part 1, 11.4.10).
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

static size_t
hex2bin(uint8_t *out, const char *hex)
{
	size_t i;

	for (i = 0; hex[2 * i]; i++)
		sscanf(&hex[2 * i], "%2hhx", &out[i]);
	return i;
}

/* swtpm: tpm2_createak -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name */
static const char ak_ecc_pub[] =
	"00580023000b00050072000000100018000b000300100020fc8985287b5bcf3cd5c38244a9772ee4d605fc"
	"0ae148da2ec9c4ac87374bab8b0020304129d0c465572bbab5d128e8068752535a48e77de00d46c817d30b"
	"02d5e001";
static const char ak_ecc_name[] =
	"000b2935433c8fab9deafa98e2c98a9e14919a5250c491e7c6e53dff2b13489bb6fb";
/* swtpm_setup --ecc: the P-384 EK at 0x81010016 (nameAlg SHA-384), tpm2_readpublic -n */
static const char ek_p384_pub[] =
	"00aa0023000c000300f20030b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419"
	"cacb47ba09699646150f9fc000f3f80e120006010000430010000400100030d7aefebc46b528f9acc20dec"
	"2e36848c559804cc25be512de83a5928a0c173a72942c3a0abd6548fbba008e60902514d00308f91aa8a0c"
	"ad1891c88617b0fdb82cf88413b4fee97ef492240dce09b9a971feebb5d5a026e61d605c6d3739cb68f2bb";
static const char ek_p384_name[] =
	"000cc83975a4bfa039c32307f4c7f6f879c89864ee18d29c123fc3c7b51c8a9cf19ebc437887f6e6bc20f6"
	"8b16a3095477f5";

static void
test_name_matches_tpm2_tools(void **state)
{
	uint8_t buf[512], want[128];
	TPM2B_NAME name;
	size_t n, wn;

	n = hex2bin(buf, ak_ecc_pub);
	wn = hex2bin(want, ak_ecc_name);
	assert_int_equal(tpm2_name_from_tpm2b_public(buf, n, &name), 0);
	assert_int_equal(name.size, wn);
	assert_memory_equal(name.name, want, wn);

	n = hex2bin(buf, ek_p384_pub);
	wn = hex2bin(want, ek_p384_name);
	assert_int_equal(tpm2_name_from_tpm2b_public(buf, n, &name), 0);
	assert_int_equal(name.size, 50);
	assert_memory_equal(name.name, want, wn);
}

/* Every strict prefix and every extension by a byte is rejected; the exact buffer is not. */
static void
test_public_bounds(void **state)
{
	uint8_t buf[512], out[512];
	TPM2B_PUBLIC pub;
	size_t n = hex2bin(buf, ek_p384_pub), m;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, i, &pub), -EBADMSG);
	buf[n] = 0;
	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n + 1, &pub), -EBADMSG);
	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n, &pub), 0);
	assert_int_equal(pub.publicArea.type, TPM2_ALG_ECC);
	assert_int_equal(pub.publicArea.parameters.eccDetail.curveID, TPM2_ECC_NIST_P384);
	/* round trip */
	assert_int_equal(tpm2_marshal_tpm2b_public(&pub, out, sizeof(out), &m), 0);
	assert_int_equal(m, n);
	assert_memory_equal(out, buf, n);
	assert_int_equal(tpm2_marshal_tpm2b_public(&pub, out, n - 1, &m), -ENOBUFS);
	/* the outer size disagreeing with the content, both ways */
	buf[1]++;
	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n, &pub), -EBADMSG);
	buf[1] -= 2;
	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n, &pub), -EBADMSG);
	buf[1]++;
	/* an inner size beyond its buffer (unique.ecc.x claims 0x0031 bytes) */
	buf[n - 2 * 48 - 4 + 1] = 0x31;
	assert_int_equal(tpm2_unmarshal_tpm2b_public(buf, n, &pub), -EBADMSG);
	assert_int_equal(tpm2_unmarshal_tpm2b_public(NULL, 0, &pub), -EBADMSG);
}

static void
test_other_unmarshal_trailing(void **state)
{
	TPM2B_DIGEST d;
	TPML_PCR_SELECTION sel;
	uint8_t b[64] = { 0x00, 0x02, 0xaa, 0xbb, 0xcc };
	TPMT_SIGNATURE sig;

	assert_int_equal(tpm2_unmarshal_tpm2b_digest(b, 4, &d), 0);
	assert_int_equal(d.size, 2);
	assert_int_equal(tpm2_unmarshal_tpm2b_digest(b, 5, &d), -EBADMSG);
	assert_int_equal(tpm2_unmarshal_tpm2b_digest(b, 3, &d), -EBADMSG);
	/* sizeofSelect 5 is more than a TPMS_PCR_SELECTION holds */
	memcpy(b, "\x00\x00\x00\x01\x00\x0b\x05\x01\x02\x03\x04\x05", 12);
	assert_int_equal(tpm2_unmarshal_tpml_pcr_selection(b, 12, &sel), -EBADMSG);
	/* a signature with an unknown algorithm */
	memcpy(b, "\x12\x34\x00\x0b", 4);
	assert_int_equal(tpm2_unmarshal_tpmt_signature(b, 4, &sig), -EBADMSG);
}

static void
test_kdfa_vectors(void **state)
{
	uint8_t key[48], u[34], out[80], want[80];
	size_t n;

	for (int i = 0; i < 48; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 34; i++)
		u[i] = (uint8_t)(0x40 + i);
	n = hex2bin(want, "30476cb97de910bef6a6a2c406648583");
	assert_int_equal(tpm2_kdfa(TPM2_ALG_SHA256, key, 32, "STORAGE", u, 34, NULL, 0, 128, out), 0);
	assert_memory_equal(out, want, n);
	n = hex2bin(want, "bacf689f634ece301e1f1b15b072d9c87db6a69585db42b1a0cb8f73ebe2692e");
	assert_int_equal(tpm2_kdfa(TPM2_ALG_SHA256, key, 32, "INTEGRITY", NULL, 0, NULL, 0, 256,
				   out), 0);
	assert_memory_equal(out, want, n);
	n = hex2bin(want, "b3816bb82f8a7fcb0c146293a6ed23b503f8a928f5c8275d92d1cf9ba5c1b321");
	assert_int_equal(tpm2_kdfa(TPM2_ALG_SHA384, key, 48, "STORAGE", u, 34, NULL, 0, 256, out), 0);
	assert_memory_equal(out, want, n);
	/* several blocks, both contexts */
	n = hex2bin(want, "61f6c1b1430ef83c02609c41506d7424e47dc8885ffdb6b5698bc9da6552cb46644e3bf5"
			  "fe495a8b33a714c2780ca62fc547bad8d9596d42c72e28e999bc860980130797bb2fe21e"
			  "798b57");
	assert_int_equal(n, 75);
	assert_int_equal(tpm2_kdfa(TPM2_ALG_SHA256, key, 32, "XYZ", (const uint8_t *)"ab", 2,
				   (const uint8_t *)"cd", 2, 600, out), 0);
	assert_memory_equal(out, want, n);
	assert_int_equal(tpm2_kdfa(TPM2_ALG_NULL, key, 32, "X", NULL, 0, NULL, 0, 8, out), -EINVAL);
	assert_int_equal(tpm2_kdfa(TPM2_ALG_SHA256, key, 32, "X", NULL, 0, NULL, 0, 0, out), -EINVAL);
}

static void
test_kdfe_vectors(void **state)
{
	uint8_t z[48], pu[48], pv[48], out[48], want[48];
	size_t n;

	for (int i = 0; i < 48; i++) {
		z[i] = (uint8_t)(100 + i);
		pu[i] = (uint8_t)(1 + i);
		pv[i] = (uint8_t)(200 + i);
	}
	n = hex2bin(want, "f22a379ac10e2786165dadbaa89dd3ac1a83766bcc3786e68c125c8288fd55a7");
	assert_int_equal(tpm2_kdfe(TPM2_ALG_SHA256, z, 32, "IDENTITY", pu, 32, pv, 32, 256, out), 0);
	assert_memory_equal(out, want, n);
	n = hex2bin(want, "f79f3c9a0aec1b512053d3d2a9c21e6653587ffd8cdb26145d260c3d8cafd182ed0b226d"
			  "4c3c377ed7660fae8ebbbe11");
	assert_int_equal(tpm2_kdfe(TPM2_ALG_SHA384, z, 48, "IDENTITY", pu, 48, pv, 48, 384, out), 0);
	assert_memory_equal(out, want, n);
}

static void
test_qualifying_data(void **state)
{
	uint8_t nonce[32], wg[32], want[32];
	TPM2B_DATA qd;

	for (int i = 0; i < 32; i++) {
		nonce[i] = (uint8_t)i;
		wg[i] = (uint8_t)(32 + i);
	}
	hex2bin(want, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108");
	assert_int_equal(tpm2_qualifying_data(nonce, wg, &qd), 0);
	assert_int_equal(qd.size, 32);
	assert_memory_equal(qd.buffer, want, 32);
}

static void
test_pcr_selection(void **state)
{
	TPML_PCR_SELECTION a, b;

	assert_int_equal(tpm2_pcr_selection_parse("sha256:0,1,7,23", &a), 0);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.pcrSelections[0].hash, TPM2_ALG_SHA256);
	assert_int_equal(a.pcrSelections[0].sizeofSelect, 3);
	assert_int_equal(a.pcrSelections[0].pcrSelect[0], 0x83);
	assert_int_equal(a.pcrSelections[0].pcrSelect[2], 0x80);
	assert_int_equal(tpm2_pcr_selection_count(&a), 4);
	assert_true(tpm2_pcr_selection_has(&a, TPM2_ALG_SHA256, 7));
	assert_false(tpm2_pcr_selection_has(&a, TPM2_ALG_SHA256, 8));
	assert_false(tpm2_pcr_selection_has(&a, TPM2_ALG_SHA1, 7));
	assert_int_equal(tpm2_pcr_selection_from_mask(TPM2_ALG_SHA256, 0x800083, &b), 0);
	assert_true(tpm2_pcr_selection_equal(&a, &b));
	b.pcrSelections[0].sizeofSelect = 4; /* zero padding does not change the selection */
	assert_true(tpm2_pcr_selection_equal(&a, &b));
	b.pcrSelections[0].pcrSelect[0] = 0x03;
	assert_false(tpm2_pcr_selection_equal(&a, &b));

	assert_int_equal(tpm2_pcr_selection_parse("sha256:0,7+sha1:1", &a), 0);
	assert_int_equal(a.count, 2);
	assert_int_equal(tpm2_pcr_selection_count(&a), 3);
	assert_int_equal(tpm2_pcr_selection_parse("sha256:", &a), 0);
	assert_int_equal(tpm2_pcr_selection_count(&a), 0);

	static const char *const bad[] = { "", "sha256", "sha256:24", "md5:1", "sha256:1,",
					   "sha256:1,,2", "sha256:a", "sha256:1+sha256:2",
					   "sha256:-1", "sha256:1 ", NULL };
	for (int i = 0; bad[i]; i++)
		assert_int_equal(tpm2_pcr_selection_parse(bad[i], &a), -EINVAL);
}

static void
test_pcr_values_and_digest(void **state)
{
	struct tpm2_pcr_values *v = calloc(1, sizeof(*v)), *w = calloc(1, sizeof(*w));
	uint8_t buf[4096], want[32];
	TPML_DIGEST list = { 0 };
	TPM2B_DIGEST d;
	size_t n;

	/* real swtpm values of sha256:0,1,2 after boot (zero), hashed by Python */
	assert_int_equal(tpm2_pcr_selection_parse("sha256:0,1,2", &v->sel), 0);
	list.count = 3;
	for (int i = 0; i < 3; i++)
		list.digests[i].size = 32;
	assert_int_equal(tpm2_pcr_values_add(v, &list), 0);
	assert_int_equal(tpm2_pcr_digest(TPM2_ALG_SHA256, v, &d), 0);
	hex2bin(want, "2ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452d4");
	assert_int_equal(d.size, 32);
	assert_memory_equal(d.buffer, want, 32);

	assert_int_equal(tpm2_pcr_values_marshal(v, buf, sizeof(buf), &n), 0);
	assert_int_equal(tpm2_pcr_values_unmarshal(buf, n, w), 0);
	assert_int_equal(w->count, 3);
	assert_non_null(tpm2_pcr_values_get(w, TPM2_ALG_SHA256, 2));
	assert_null(tpm2_pcr_values_get(w, TPM2_ALG_SHA256, 3));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tpm2_pcr_values_unmarshal(buf, i, w), -EBADMSG);
	buf[n] = 0;
	assert_int_equal(tpm2_pcr_values_unmarshal(buf, n + 1, w), -EBADMSG);

	/* one value too few for the selection */
	v->count = 2;
	assert_int_equal(tpm2_pcr_digest(TPM2_ALG_SHA256, v, &d), -EBADMSG);
	assert_int_equal(tpm2_pcr_values_marshal(v, buf, sizeof(buf), &n), -EINVAL);
	/* a value of the wrong size for its bank */
	v->count = 3;
	v->value[1].size = 20;
	assert_int_equal(tpm2_pcr_digest(TPM2_ALG_SHA256, v, &d), -EBADMSG);

	/* more than 8 values: split over several TPML_DIGEST */
	memset(v, 0, sizeof(*v));
	assert_int_equal(tpm2_pcr_selection_parse("sha256:0,1,2,3,4,5,6,7,8,9,10", &v->sel), 0);
	for (int i = 0; i < 11; i++) {
		v->value[i].size = 32;
		v->value[i].buffer[0] = (uint8_t)i;
	}
	v->count = 11;
	assert_int_equal(tpm2_pcr_values_marshal(v, buf, sizeof(buf), &n), 0);
	assert_int_equal(tpm2_pcr_values_unmarshal(buf, n, w), 0);
	assert_int_equal(w->count, 11);
	assert_int_equal(tpm2_pcr_values_get(w, TPM2_ALG_SHA256, 10)->buffer[0], 10);
	free(v);
	free(w);
}

static void
test_ek_cert_strip(void **state)
{
	uint8_t b[400];
	const uint8_t *der;
	size_t n;

	/* a 300-byte SEQUENCE (long form, 2 length bytes) */
	memset(b, 0xee, sizeof(b));
	b[0] = 0x30;
	b[1] = 0x82;
	b[2] = 0x01;
	b[3] = 0x28; /* 296 content bytes */
	assert_int_equal(tpm2_ek_cert_strip(b, 300, &der, &n), 0);
	assert_ptr_equal(der, b);
	assert_int_equal(n, 300);
	assert_int_equal(tpm2_ek_cert_strip(b, 400, &der, &n), 0); /* NV padding */
	assert_int_equal(n, 300);
	assert_int_equal(tpm2_ek_cert_strip(b, 299, &der, &n), -EBADMSG);

	/* TCG header: 0x10 0x01, length of what follows */
	memmove(b + 4, b, 300);
	b[0] = 0x10;
	b[1] = 0x01;
	b[2] = 0x01;
	b[3] = 0x2c; /* 300 */
	assert_int_equal(tpm2_ek_cert_strip(b, 304, &der, &n), 0);
	assert_ptr_equal(der, b + 4);
	assert_int_equal(n, 300);
	assert_int_equal(tpm2_ek_cert_strip(b, 303, &der, &n), -EBADMSG); /* header lies */
	b[3] = 0x2b; /* header shorter than the DER inside */
	assert_int_equal(tpm2_ek_cert_strip(b, 304, &der, &n), -EBADMSG);

	/* not a SEQUENCE, indefinite length, absurd length-of-length */
	assert_int_equal(tpm2_ek_cert_strip((const uint8_t *)"\x31\x00", 2, &der, &n), -EBADMSG);
	assert_int_equal(tpm2_ek_cert_strip((const uint8_t *)"\x30\x80\x00\x00", 4, &der, &n),
			 -EBADMSG);
	assert_int_equal(tpm2_ek_cert_strip((const uint8_t *)"\x30\x89\x01", 3, &der, &n), -EBADMSG);
	assert_int_equal(tpm2_ek_cert_strip((const uint8_t *)"\x30\x00", 2, &der, &n), 0);
	assert_int_equal(tpm2_ek_cert_strip(NULL, 0, &der, &n), -EBADMSG);
}

static void
test_hash_table(void **state)
{
	uint8_t out[64];

	assert_int_equal(tpm2_hash_size(TPM2_ALG_SHA1), 20);
	assert_int_equal(tpm2_hash_size(TPM2_ALG_SHA384), 48);
	assert_int_equal(tpm2_hash_size(TPM2_ALG_SM3_256), 0);
	assert_int_equal(tpm2_hash(TPM2_ALG_SHA512, "abc", 3, out), 64);
	assert_int_equal(out[0], 0xdd); /* SHA-512("abc") = ddaf35a1... */
	assert_int_equal(tpm2_hash(TPM2_ALG_NULL, "abc", 3, out), -EINVAL);
	assert_string_equal(tpm2_hash_name(TPM2_ALG_SHA256), "sha256");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_matches_tpm2_tools),
		cmocka_unit_test(test_public_bounds),
		cmocka_unit_test(test_other_unmarshal_trailing),
		cmocka_unit_test(test_kdfa_vectors),
		cmocka_unit_test(test_kdfe_vectors),
		cmocka_unit_test(test_qualifying_data),
		cmocka_unit_test(test_pcr_selection),
		cmocka_unit_test(test_pcr_values_and_digest),
		cmocka_unit_test(test_ek_cert_strip),
		cmocka_unit_test(test_hash_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
