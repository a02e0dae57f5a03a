// SPDX-License-Identifier: MIT
/*
 * The device side (edge-keyd/tpm, on a real swtpm) against the server side
 * (enrolld/attest), end to end through the library APIs. Driven by
 * tests/integration/tpm_roundtrip.sh and tests/integration/tpm_custody.sh.
 *
 *   tpm_roundtrip cycle TCTI STATEDIR TRUSTDIR
 *       The whole device cycle, twice on the same TPM (the first time with a transient
 *       SRK, the second with the SRK made persistent), checking after every operation
 *       that no transient object or session is left in the TPM:
 *       provision; for each EK type (RSA-2048, P-256, P-384): EK + certificate, the EK
 *       made from our template equals the TPM's, attest_verify_ek against TRUSTDIR,
 *       attest_challenge_new, tpmdev_activate, tpmdev_quote, attest_complete == ATTEST_OK;
 *       unseal (same key both rounds); certify (signature and name checked here). Then:
 *       an RSA AK device, a credential activated with the wrong EK, a PCR policy that the
 *       quote does not satisfy, a quote claiming another WireGuard key, key rotation.
 *       One line per check; exit 0 if all pass, 1 otherwise.
 *   tpm_roundtrip provision TCTI STATEDIR [PCRSPEC]
 *       provision (PCR policy over PCRSPEC, e.g. sha256:16); prints the WireGuard public
 *       key (base64)
 *   tpm_roundtrip unseal TCTI STATEDIR KEYFILE
 *       unseal, write the raw 32-byte private key to KEYFILE (a test's temp file: this is
 *       how the custody test learns which bytes must never appear anywhere)
 *   tpm_roundtrip handles TCTI
 *       print "objects N sessions N" loaded in the TPM
 *   tpm_roundtrip memscan TCTI STATEDIR
 *       provision a new device and close, unseal, wipe our copy, then search every
 *       writable mapping of this process (heap, stacks, ESYS's buffers, freed memory) for
 *       the key: it must not be found after provisioning (a forked child keeps that
 *       memory until the key is known), after unsealing, or after tpmdev_close
 *
 * Failures print "error: <ERRNO NAME>: <tpmdev_last_error>" and exit 3.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/key.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/tpm2.h"
#include "common/tpm2_templates.h"
#include "edge-keyd/tpm/tpmdev.h"
#include "enrolld/attest/attest.h"
#include "enrolld/attest/attest_int.h"

#define PCR_SPEC "sha256:0,1,2,3,7"

static int failures, checks;

static void
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	checks++;
	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

static const char *
ename(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);

	return n != NULL ? n : "?";
}

static void
handles_clean(struct tpmdev *dev, const char *after)
{
	unsigned o = 99, s = 99;
	int err = tpmdev_loaded_handles(dev, &o, &s);

	check(err == 0 && o == 0 && s == 0, "no object or session left after %s (objects %u, "
	      "sessions %u)", after, o, s);
}

/* ---- one enrollment ----------------------------------------------------------------------- */

enum mutation {
	MUT_NONE,
	MUT_POLICY_VALUE,	/* server policy: one PCR value edited */
	MUT_WRONG_EK,		/* credential made for EK @type, activated with another EK */
	MUT_OTHER_WG,		/* the quote names another WireGuard key than the session */
};

/*
 * Enroll the device of @state with EK @type: returns the attest reason of the complete
 * step (ATTEST_OK on success), or -1 (with a FAIL line) if a step before it failed.
 */
static int
enroll(struct tpmdev *dev, const struct attest_trust *trust, const char *state,
       enum tpm2_ek_type type, const uint8_t wg[32], enum mutation mut, const char *what)
{
	uint8_t *ekpub = NULL, *cert = NULL, *akpub = NULL, secret[32], other_wg[32];
	size_t ekpub_len, cert_len, akpub_len, blob_len, seed_len;
	struct tpmdev_quote *q = calloc(1, sizeof(*q));
	struct tpm2_pcr_values *policy = calloc(1, sizeof(*policy));
	struct attest_challenge *c = NULL;
	const uint8_t *blob, *seed;
	enum tpm2_ek_type act_type = type;
	enum attest_reason why;
	struct attest_response r;
	TPML_PCR_SELECTION sel;
	time_t now = time(NULL);
	int err, result = -1;

	if (q == NULL || policy == NULL)
		abort();
	err = tpmdev_ek(dev, type, 0, &ekpub, &ekpub_len, &cert, &cert_len);
	if (err < 0) {
		check(false, "%s: tpmdev_ek: %s: %s", what, ename(err), tpmdev_last_error(dev));
		goto out;
	}
	err = attest_verify_ek(trust, cert, cert_len, ekpub, ekpub_len, now, NULL, &why);
	check(err == 0, "%s: EK certificate verified against the fixture CA (%s)", what,
	      attest_reason_code(why));
	if (err < 0)
		goto out;
	err = tpmdev_ak_public(state, &akpub, &akpub_len);
	if (err == 0)
		err = attest_challenge_new(ekpub, ekpub_len, akpub, akpub_len, wg, now, 60, &c, &why);
	check(err == 0, "%s: challenge made (%s)", what, attest_reason_code(why));
	if (err < 0)
		goto out;
	attest_challenge_credential(c, &blob, &blob_len);
	attest_challenge_encrypted_seed(c, &seed, &seed_len);
	if (mut == MUT_WRONG_EK)
		act_type = type == TPM2_EK_RSA2048 ? TPM2_EK_ECC_P256 : TPM2_EK_RSA2048;
	err = tpmdev_activate(dev, state, act_type, blob, blob_len, seed, seed_len, secret);
	if (mut == MUT_WRONG_EK) {
		check(err < 0, "%s: activation with another EK refused (%s: %s)", what, ename(err),
		      tpmdev_last_error(dev));
		result = err < 0 ? ATTEST_CREDENTIAL_NOT_ACTIVATED : ATTEST_OK;
		goto out;
	}
	if (err < 0) {
		check(false, "%s: tpmdev_activate: %s: %s", what, ename(err),
		      tpmdev_last_error(dev));
		goto out;
	}
	if (tpm2_pcr_selection_parse(PCR_SPEC, &sel) < 0)
		abort();
	memcpy(other_wg, wg, 32);
	other_wg[0] ^= 0x80;
	err = tpmdev_quote(dev, state, attest_challenge_nonce(c), mut == MUT_OTHER_WG ? other_wg : wg,
			   &sel, q);
	if (err < 0) {
		check(false, "%s: tpmdev_quote: %s: %s", what, ename(err), tpmdev_last_error(dev));
		goto out;
	}
	/* the operator's policy: exactly the values the device reports */
	if (tpm2_pcr_values_unmarshal(q->pcrs, q->pcrs_len, policy) < 0) {
		check(false, "%s: PCR values blob unmarshals", what);
		goto out;
	}
	if (mut == MUT_POLICY_VALUE)
		policy->value[policy->count - 1].buffer[0] ^= 1; /* PCR 7 is not what it wants */
	r = (struct attest_response){ secret, sizeof(secret), q->quote, q->quote_len, q->sig,
				      q->sig_len, q->pcrs, q->pcrs_len, NULL, NULL };
	err = attest_complete(c, &r, policy, now + 1, &why);
	result = (int)why;
out:
	explicit_bzero(secret, sizeof(secret));
	attest_challenge_free(c);
	free(ekpub);
	free(cert);
	free(akpub);
	free(q);
	free(policy);
	return result;
}

/* ---- certify: checked here (enrolld/attest has no Certify verifier yet) ------------------- */

static bool
verify_sig(const TPMT_PUBLIC *ak, const TPMT_SIGNATURE *sig, const uint8_t *data, size_t len)
{
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	unsigned char *der = NULL;
	const unsigned char *s;
	size_t slen;
	int dlen;
	bool ok = false;

	if (ctx == NULL || attest_pkey_from_public(ak, &pkey) < 0)
		goto out;
	if (sig->sigAlg == TPM2_ALG_ECDSA) {
		es = ECDSA_SIG_new();
		if (es == NULL ||
		    ECDSA_SIG_set0(es,
				   BN_bin2bn(sig->signature.ecdsa.signatureR.buffer,
					     sig->signature.ecdsa.signatureR.size, NULL),
				   BN_bin2bn(sig->signature.ecdsa.signatureS.buffer,
					     sig->signature.ecdsa.signatureS.size, NULL)) != 1)
			goto out;
		dlen = i2d_ECDSA_SIG(es, &der);
		if (dlen <= 0)
			goto out;
		s = der;
		slen = (size_t)dlen;
	} else if (sig->sigAlg == TPM2_ALG_RSASSA) {
		s = sig->signature.rsassa.sig.buffer;
		slen = sig->signature.rsassa.sig.size;
	} else {
		goto out;
	}
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, s, slen, data, len) == 1;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static void
certify(struct tpmdev *dev, const char *state, const uint8_t wg[32], const char *what)
{
	struct tpmdev_certify *cf = calloc(1, sizeof(*cf));
	uint8_t nonce[32], *akbuf = NULL;
	size_t aklen;
	TPM2B_ATTEST att;
	TPMS_ATTEST a;
	TPMT_SIGNATURE sig;
	TPM2B_PUBLIC akpub;
	TPM2B_NAME name;
	TPM2B_DATA qd;
	int err;

	memset(nonce, 0x42, sizeof(nonce));
	err = tpmdev_certify(dev, state, nonce, wg, cf);
	check(err == 0, "%s: certify of the sealed key (%s: %s)", what, ename(err),
	      err ? tpmdev_last_error(dev) : "");
	if (err < 0)
		goto out;
	if (tpm2_unmarshal_tpm2b_attest(cf->attest, cf->attest_len, &att) < 0 ||
	    tpm2_unmarshal_tpms_attest(att.attestationData, att.size, &a) < 0 ||
	    tpm2_unmarshal_tpmt_signature(cf->sig, cf->sig_len, &sig) < 0 ||
	    tpm2_name_from_tpm2b_public(cf->sealed_public, cf->sealed_public_len, &name) < 0 ||
	    tpm2_qualifying_data(nonce, wg, &qd) < 0 ||
	    tpmdev_ak_public(state, &akbuf, &aklen) < 0 ||
	    tpm2_unmarshal_tpm2b_public(akbuf, aklen, &akpub) < 0) {
		check(false, "%s: certify structures parse", what);
		goto out;
	}
	check(a.magic == TPM2_GENERATED_VALUE && a.type == TPM2_ST_ATTEST_CERTIFY &&
		      a.extraData.size == qd.size &&
		      memcmp(a.extraData.buffer, qd.buffer, qd.size) == 0 &&
		      a.attested.certify.name.size == name.size &&
		      memcmp(a.attested.certify.name.name, name.name, name.size) == 0,
	      "%s: certify names the sealed object, with our qualifying data", what);
	check(verify_sig(&akpub.publicArea, &sig, att.attestationData, att.size),
	      "%s: certify signature verifies with the AK", what);
	att.attestationData[att.size - 1] ^= 1;
	check(!verify_sig(&akpub.publicArea, &sig, att.attestationData, att.size),
	      "%s: an edited certify does not verify", what);
out:
	free(akbuf);
	free(cf);
}

/* ---- the cycle ---------------------------------------------------------------------------- */

static const enum tpm2_ek_type ek_types[] = { TPM2_EK_RSA2048, TPM2_EK_ECC_P256,
					      TPM2_EK_ECC_P384 };

static void
ek_template_matches(struct tpmdev *dev, enum tpm2_ek_type type)
{
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int e1, e2;

	e1 = tpmdev_ek(dev, type, TPMDEV_EK_NO_CERT, &a, &alen, NULL, NULL);
	e2 = tpmdev_ek(dev, type, TPMDEV_EK_NO_CERT | TPMDEV_EK_CREATE, &b, &blen, NULL, NULL);
	check(e1 == 0 && e2 == 0 && alen == blen && memcmp(a, b, alen) == 0,
	      "EK %s: CreatePrimary from our template gives the TPM's EK",
	      tpm2_ek_info(type)->name);
	free(a);
	free(b);
}

static void
round_(struct tpmdev *dev, const struct attest_trust *trust, const char *state, unsigned flags,
       int want_prov, uint8_t key_out[32], const char *round_name)
{
	struct tpmdev_provision_opts opts = { .ak_type = TPM2_ALG_ECC, .flags = flags };
	uint8_t wg[32], pub[32];
	char what[128];
	int err;

	err = tpmdev_provision(dev, state, &opts);
	check(err == want_prov, "%s: provision returns %d (got %d %s: %s)", round_name, want_prov,
	      err, err < 0 ? ename(err) : "", tpmdev_last_error(dev));
	handles_clean(dev, "provision");
	err = tpmdev_wg_public(state, wg);
	check(err == 0, "%s: WireGuard public key stored", round_name);
	for (size_t i = 0; i < sizeof(ek_types) / sizeof(ek_types[0]); i++) {
		snprintf(what, sizeof(what), "%s, EK %s", round_name,
			 tpm2_ek_info(ek_types[i])->name);
		err = enroll(dev, trust, state, ek_types[i], wg, MUT_NONE, what);
		check(err == ATTEST_OK, "%s: enrollment complete: %s", what,
		      err < 0 ? "(failed before)" : attest_reason_code(err));
		handles_clean(dev, what);
	}
	err = tpmdev_unseal(dev, state, key_out);
	check(err == 0, "%s: unseal (%s: %s)", round_name, ename(err), tpmdev_last_error(dev));
	if (err == 0) {
		key_public_from_private(pub, key_out);
		check(key_equal(pub, wg), "%s: unsealed key's public key is the stored one",
		      round_name);
	}
	handles_clean(dev, "unseal");
	certify(dev, state, wg, round_name);
	handles_clean(dev, "certify");
}

static int
cmd_cycle(const char *tcti, const char *state, const char *trustdir)
{
	struct tpmdev *dev = NULL;
	struct attest_trust *trust = NULL;
	uint8_t *key1, *key2, wg[32], wg2[32], pub[32];
	char state_rsa[4096];
	struct tpmdev_provision_opts ropts = { .ak_type = TPM2_ALG_RSA };
	struct timespec t0, t1;
	int err;

	key1 = secmem_alloc(32);
	key2 = secmem_alloc(32);
	if (key1 == NULL || key2 == NULL) {
		fprintf(stderr, "secmem_alloc: %s\n", strerror(errno));
		return 3;
	}
	if (attest_trust_load(trustdir, &trust) < 0) {
		fprintf(stderr, "cannot load trust anchors from %s\n", trustdir);
		return 3;
	}
	err = tpmdev_open(&dev, tcti);
	if (err < 0) {
		fprintf(stderr, "tpmdev_open: %s\n", ename(err));
		return 3;
	}
	handles_clean(dev, "open");
	for (size_t i = 0; i < sizeof(ek_types) / sizeof(ek_types[0]); i++)
		ek_template_matches(dev, ek_types[i]);
	handles_clean(dev, "EK template checks");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	round_(dev, trust, state, TPMDEV_PROV_NO_PERSIST, 0, key1, "round 1 (transient SRK)");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("     round 1 took %ld ms\n",
	       (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	round_(dev, trust, state, 0, 1, key2, "round 2 (persistent SRK)");
	check(memcmp(key1, key2, 32) == 0, "both rounds unseal the same key (no second identity)");

	/* an RSA AK */
	snprintf(state_rsa, sizeof(state_rsa), "%s-rsa-ak", state);
	err = tpmdev_provision(dev, state_rsa, &ropts);
	check(err == 0, "RSA AK device provisioned (%s)", err ? ename(err) : "");
	if (err == 0 && tpmdev_wg_public(state_rsa, wg) == 0) {
		err = enroll(dev, trust, state_rsa, TPM2_EK_ECC_P384, wg, MUT_NONE, "RSA AK, EK p384");
		check(err == ATTEST_OK, "RSA AK, EK p384: enrollment complete: %s",
		      err < 0 ? "(failed before)" : attest_reason_code(err));
		certify(dev, state_rsa, wg, "RSA AK");
	}
	handles_clean(dev, "RSA AK device");

	/* negative cases */
	if (tpmdev_wg_public(state, wg) < 0)
		memset(wg, 0, sizeof(wg));
	err = enroll(dev, trust, state, TPM2_EK_RSA2048, wg, MUT_WRONG_EK, "wrong EK");
	check(err == ATTEST_CREDENTIAL_NOT_ACTIVATED, "wrong EK: no secret for the server");
	handles_clean(dev, "a refused activation");
	err = enroll(dev, trust, state, TPM2_EK_ECC_P256, wg, MUT_POLICY_VALUE, "wrong PCR value");
	check(err == ATTEST_PCR_POLICY_MISMATCH, "wrong PCR value: rejected as %s",
	      err < 0 ? "(failed before)" : attest_reason_code(err));
	err = enroll(dev, trust, state, TPM2_EK_ECC_P384, wg, MUT_OTHER_WG, "other WireGuard key");
	check(err == ATTEST_QUOTE_QUALIFYING_DATA || err == ATTEST_QUOTE_WG_KEY_MISMATCH,
	      "other WireGuard key in the quote: rejected as %s",
	      err < 0 ? "(failed before)" : attest_reason_code(err));
	handles_clean(dev, "negative cases");

	/* rotation */
	err = tpmdev_rotate_prepare(dev, state, NULL, wg2);
	check(err == 0 && !key_equal(wg, wg2), "rotation: a new key is staged (%s)",
	      err ? ename(err) : "");
	err = tpmdev_rotate_prepare(dev, state, NULL, pub);
	check(err == 0 && key_equal(pub, wg2), "rotation: prepare again keeps the staged key");
	check(tpmdev_wg_public(state, pub) == 0 && key_equal(pub, wg),
	      "rotation: the current key is still in use before commit");
	err = enroll(dev, trust, state, TPM2_EK_RSA2048, wg2, MUT_NONE, "rotation");
	check(err == ATTEST_OK, "rotation: enrollment with the staged key: %s",
	      err < 0 ? "(failed before)" : attest_reason_code(err));
	check(tpmdev_rotate_commit(state) == 0, "rotation: commit");
	check(tpmdev_wg_public(state, pub) == 0 && key_equal(pub, wg2),
	      "rotation: the staged key is current");
	check(tpmdev_wg_public_staged(state, pub) == -ENOENT, "rotation: nothing staged any more");
	err = tpmdev_unseal(dev, state, key2);
	check(err == 0 && key_public_from_private(pub, key2) == 0 && key_equal(pub, wg2) &&
		      memcmp(key1, key2, 32) != 0,
	      "rotation: unseal gives the new key");
	check(tpmdev_rotate_commit(state) == -ENOENT, "rotation: a second commit has nothing to do");
	err = tpmdev_rotate_prepare(dev, state, NULL, pub);
	check(err == 0 && tpmdev_rotate_abort(state) == 0 &&
		      tpmdev_wg_public_staged(state, pub) == -ENOENT &&
		      tpmdev_wg_public(state, wg) == 0 && key_equal(wg, wg2),
	      "rotation: abort drops the staged key and keeps the current one");
	handles_clean(dev, "rotation");

	tpmdev_close(dev);
	attest_trust_free(trust);
	secmem_free(key1, 32);
	secmem_free(key2, 32);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

/* ---- memscan: no copy of the key left in our own memory -------------------------------- */

/*
 * Find the key in every writable mapping of this process. The key itself is never held
 * here: only key ^ mask and mask, so a match can only be a real copy left behind.
 * Returns the number of copies found (each printed).
 */
static int
scan_memory(const uint8_t masked[32], const uint8_t mask[32], const char *when)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	if (maps == NULL)
		return -1;
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char perms[8], path[256] = "";

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) < 3)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w' || strncmp(path, "[v", 2) == 0)
			continue;
		for (const volatile uint8_t *p = (const uint8_t *)lo;
		     p + 32 <= (const uint8_t *)hi; p++) {
			size_t i;

			if ((uint8_t)(p[0] ^ mask[0]) != masked[0])
				continue;
			for (i = 1; i < 32; i++)
				if ((uint8_t)(p[i] ^ mask[i]) != masked[i])
					break;
			if (i == 32) {
				printf("     key found %s at %p in %lx-%lx %s\n", when,
				       (const void *)p, lo, hi, path[0] ? path : "[anon]");
				found++;
			}
		}
	}
	fclose(maps);
	return found;
}

static int
cmd_memscan(const char *tcti, const char *state)
{
	struct tpmdev *dev = NULL;
	uint8_t *key, masked[32], mask[32], msg[64];
	int err, n, pfd[2] = { -1, -1 }, status;
	pid_t child = -1;

#if defined(__SANITIZE_ADDRESS__)
	/* ASan poisons freed memory and owns huge shadow mappings: a raw scan cannot work */
	(void)scan_memory;
	printf("memscan: skipped in an AddressSanitizer build\n");
	return 77;
#endif
	key = secmem_alloc(32);
	if (key == NULL || getrandom(mask, sizeof(mask), 0) != sizeof(mask) || pipe(pfd) < 0)
		return 3;
	/*
	 * 1. What provisioning leaves behind: provision, close, and fork a child that keeps
	 *    this memory as it is now; it scans it once we know the key (after unsealing).
	 */
	err = tpmdev_open(&dev, tcti);
	if (err == 0)
		err = tpmdev_provision(dev, state, NULL);
	check(err == 0, "memscan: provisioned (%s)", err < 0 ? ename(err) : "");
	tpmdev_close(dev);
	dev = NULL;
	if (err < 0)
		goto out;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		close(pfd[1]);
		if (read(pfd[0], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			_exit(2);
		n = scan_memory(msg, msg + 32, "after provision + tpmdev_close");
		fflush(stdout);
		_exit(n == 0 ? 0 : 1);
	}
	close(pfd[0]);
	pfd[0] = -1;

	/* 2. What unsealing leaves behind, here */
	err = tpmdev_open(&dev, tcti);
	if (err == 0)
		err = tpmdev_unseal(dev, state, key);
	check(err == 0, "memscan: unsealed (%s)", err < 0 ? ename(err) : "");
	if (err < 0)
		goto out;
	for (size_t i = 0; i < 32; i++)
		masked[i] = key[i] ^ mask[i];
	memcpy(msg, masked, 32);
	memcpy(msg + 32, mask, 32);
	if (write(pfd[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		goto out;
	status = -1;
	waitpid(child, &status, 0);
	child = -1;
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "memscan: no copy of the key in process memory after provisioning");
	/* the scanner works: it finds the copy that is still there */
	n = scan_memory(masked, mask, "(the caller's own locked copy)");
	check(n == 1, "memscan: the scanner finds the caller's own copy (%d)", n);
	secmem_free(key, 32); /* the only legitimate copy, wiped and unmapped */
	key = NULL;
	n = scan_memory(masked, mask, "after unseal");
	check(n == 0, "memscan: no copy of the key in process memory after unseal");
	tpmdev_close(dev);
	dev = NULL;
	n = scan_memory(masked, mask, "after tpmdev_close");
	check(n == 0, "memscan: none after tpmdev_close either (freed ESYS context included)");
out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	secmem_free(key, 32);
	tpmdev_close(dev);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

static int
fail_err(struct tpmdev *dev, const char *what, int err)
{
	fprintf(stderr, "error: %s: %s: %s\n", ename(err), what, tpmdev_last_error(dev));
	return 3;
}

int
main(int argc, char **argv)
{
	struct tpmdev *dev = NULL;
	int err, rc = 0;

	log_init(1, "tpm_roundtrip");
	if (getenv("VERBOSE") != NULL)
		log_setverbose(2);
	if (argc == 5 && strcmp(argv[1], "cycle") == 0)
		return cmd_cycle(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "memscan") == 0)
		return cmd_memscan(argv[2], argv[3]);
	if (argc < 3) {
		fprintf(stderr, "usage: see the header of tests/progs/tpm_roundtrip.c\n");
		return 2;
	}
	err = tpmdev_open(&dev, argv[2]);
	if (err < 0)
		return fail_err(dev, "open", err);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "provision") == 0) {
		struct tpmdev_provision_opts opts = { 0 };
		TPML_PCR_SELECTION sel;
		uint8_t pub[32];
		char b64[WG_KEY_B64_LEN];

		if (argc == 5) {
			if (tpm2_pcr_selection_parse(argv[4], &sel) < 0) {
				fprintf(stderr, "bad PCR selection '%s'\n", argv[4]);
				rc = 2;
				goto out;
			}
			opts.pcr_policy = &sel;
		}
		err = tpmdev_provision(dev, argv[3], &opts);
		if (err < 0) {
			rc = fail_err(dev, "provision", err);
			goto out;
		}
		if (tpmdev_wg_public(argv[3], pub) < 0) {
			rc = 3;
			goto out;
		}
		key_to_base64(b64, pub);
		printf("%s\n", b64);
	} else if (argc == 5 && strcmp(argv[1], "unseal") == 0) {
		uint8_t *key = secmem_alloc(32);
		FILE *f;

		if (key == NULL) {
			rc = 3;
			goto out;
		}
		err = tpmdev_unseal(dev, argv[3], key);
		if (err < 0) {
			rc = fail_err(dev, "unseal", err);
		} else {
			f = fopen(argv[4], "wb");
			if (f == NULL || fwrite(key, 1, 32, f) != 32 || fclose(f) != 0)
				rc = 3;
		}
		secmem_free(key, 32);
	} else if (argc == 3 && strcmp(argv[1], "handles") == 0) {
		unsigned o, s;

		err = tpmdev_loaded_handles(dev, &o, &s);
		if (err < 0)
			rc = fail_err(dev, "handles", err);
		else
			printf("objects %u sessions %u\n", o, s);
	} else {
		fprintf(stderr, "usage: see the header of tests/progs/tpm_roundtrip.c\n");
		rc = 2;
	}
out:
	tpmdev_close(dev);
	return rc;
}
