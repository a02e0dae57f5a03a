// SPDX-License-Identifier: MIT
/*
 * The device's half of enrollment: ActivateCredential (EK policy sessions), Quote, and
 * Certify of the sealed key object. Object slots used at once: at most two transient
 * objects (the SRK is released as soon as its children are loaded) and one session.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "edge-keyd/tpm/tpmdev_int.h"

/* Load the AK of @dir (under the SRK, which is released again). */
static int
load_ak(struct tpmdev *dev, const char *dir, struct tpmdev_obj *ret, TPMT_PUBLIC *ret_pub)
{
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT;
	struct tpmdev_file *f;
	int err;

	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = tpmdev_file_read(dir, TPMDEV_AK_FILE, TPMDEV_FILE_AK, f);
	if (err == 0)
		err = tpmdev_srk(dev, false, &srk);
	if (err == 0)
		err = tpmdev_load(dev, &srk, &f->pub, &f->priv, ret);
	if (err == 0 && ret_pub != NULL)
		*ret_pub = f->pub.publicArea;
	tpmdev_release(dev, &srk);
	free(f);
	return err;
}

int
tpmdev_activate(struct tpmdev *dev, const char *state_dir, enum tpm2_ek_type type,
		const uint8_t *blob, size_t blob_len, const uint8_t *seed, size_t seed_len,
		uint8_t secret[static TPMDEV_SECRET_LEN])
{
	const struct tpm2_ek_info *info = tpm2_ek_info(type);
	struct tpmdev_obj ak = TPMDEV_OBJ_INIT, ek = TPMDEV_OBJ_INIT;
	TPM2B_ID_OBJECT cred;
	TPM2B_ENCRYPTED_SECRET enc;
	TPM2B_NONCE nonce_tpm, policy_ref;
	TPM2B_DIGEST cp_hash, *cert_info = NULL;
	TPM2B_TIMEOUT *timeout = NULL;
	TPMT_TK_AUTH *ticket = NULL;
	TPML_DIGEST branches;
	ESYS_TR s = ESYS_TR_NONE;
	int err;

	if (info == NULL)
		return -EINVAL;
	dev->err[0] = '\0';
	if (tpm2_unmarshal_tpm2b_id_object(blob, blob_len, &cred) < 0 ||
	    tpm2_unmarshal_tpm2b_encrypted_secret(seed, seed_len, &enc) < 0)
		return -EBADMSG;
	err = load_ak(dev, state_dir, &ak, NULL);
	if (err == 0)
		err = tpmdev_ek_load(dev, type, 0, &ek, NULL);
	if (err == 0)
		err = tpmdev_session(dev, ESYS_TR_NONE, TPM2_SE_POLICY, info->policy_hash, 0, &s);
	if (err < 0)
		goto out;
	/* the EK's policy: PolicySecret(endorsement) [+ PolicyOR(PolicyA, PolicyC)] */
	memset(&nonce_tpm, 0, sizeof(nonce_tpm));
	memset(&policy_ref, 0, sizeof(policy_ref));
	memset(&cp_hash, 0, sizeof(cp_hash));
	err = tpmdev_rc(dev, "Esys_PolicySecret",
			Esys_PolicySecret(dev->esys, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_PASSWORD,
					  ESYS_TR_NONE, ESYS_TR_NONE, &nonce_tpm, &cp_hash,
					  &policy_ref, 0, &timeout, &ticket));
	Esys_Free(timeout);
	Esys_Free(ticket);
	if (err < 0)
		goto out;
	if (info->policy_or) {
		err = tpm2_ek_policy_branches(type, &branches);
		if (err == 0)
			err = tpmdev_rc(dev, "Esys_PolicyOR",
					Esys_PolicyOR(dev->esys, s, ESYS_TR_NONE, ESYS_TR_NONE,
						      ESYS_TR_NONE, &branches));
		if (err < 0)
			goto out;
	}
	err = tpmdev_rc(dev, "Esys_ActivateCredential",
			Esys_ActivateCredential(dev->esys, ak.tr, ek.tr, ESYS_TR_PASSWORD, s,
						ESYS_TR_NONE, &cred, &enc, &cert_info));
	if (err < 0)
		goto out;
	if (cert_info->size != TPMDEV_SECRET_LEN) {
		err = -EBADMSG;
		goto out;
	}
	memcpy(secret, cert_info->buffer, TPMDEV_SECRET_LEN);
out:
	if (cert_info != NULL) {
		explicit_bzero(cert_info->buffer, sizeof(cert_info->buffer));
		Esys_Free(cert_info);
	}
	tpmdev_flush_session(dev, &s);
	tpmdev_release(dev, &ek);
	tpmdev_release(dev, &ak);
	return err;
}

/* Hash of an AK's signing scheme: what the TPM hashes the quoted PCRs with. */
static TPMI_ALG_HASH
ak_scheme_hash(const TPMT_PUBLIC *ak)
{
	if (ak->type == TPM2_ALG_ECC)
		return ak->parameters.eccDetail.scheme.details.anySig.hashAlg;
	if (ak->type == TPM2_ALG_RSA)
		return ak->parameters.rsaDetail.scheme.details.anySig.hashAlg;
	return TPM2_ALG_NULL;
}

int
tpmdev_quote(struct tpmdev *dev, const char *state_dir, const uint8_t nonce[static 32],
	     const uint8_t wg_pub[static 32], const TPML_PCR_SELECTION *sel,
	     struct tpmdev_quote *ret)
{
	struct tpmdev_obj ak = TPMDEV_OBJ_INIT;
	struct tpm2_pcr_values *values = NULL;
	TPMS_ATTEST *attest = NULL;
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;
	TPMT_PUBLIC akpub;
	TPM2B_DATA qd;
	TPM2B_DIGEST pd;
	int err, tries;

	dev->err[0] = '\0';
	if (sel == NULL)
		return -EINVAL;
	err = tpm2_qualifying_data(nonce, wg_pub, &qd);
	if (err < 0)
		return err;
	values = malloc(sizeof(*values));
	attest = malloc(sizeof(*attest));
	if (values == NULL || attest == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = load_ak(dev, state_dir, &ak, &akpub);
	if (err < 0)
		goto out;
	/*
	 * Read the values, quote, and check that the quote's pcrDigest is the digest of the
	 * values read: if a PCR was extended in between, do it again.
	 */
	for (tries = 0; tries < 3; tries++) {
		Esys_Free(quoted);
		Esys_Free(sig);
		quoted = NULL;
		sig = NULL;
		err = tpmdev_pcr_read(dev, sel, values, NULL);
		if (err == -EAGAIN)
			continue;
		if (err < 0)
			goto out;
		err = tpmdev_rc(dev, "Esys_Quote",
				Esys_Quote(dev->esys, ak.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					   ESYS_TR_NONE, &qd, &scheme, sel, &quoted, &sig));
		if (err < 0)
			goto out;
		err = tpm2_unmarshal_tpms_attest(quoted->attestationData, quoted->size, attest);
		if (err == 0)
			err = tpm2_pcr_digest(ak_scheme_hash(&akpub), values, &pd);
		if (err < 0)
			goto out;
		if (pd.size == attest->attested.quote.pcrDigest.size &&
		    memcmp(pd.buffer, attest->attested.quote.pcrDigest.buffer, pd.size) == 0)
			break;
		log_debug("tpmdev: PCRs changed during the quote, again");
		err = -EAGAIN;
	}
	if (err < 0)
		goto out;
	err = tpm2_marshal_tpm2b_attest(quoted, ret->quote, sizeof(ret->quote), &ret->quote_len);
	if (err == 0)
		err = tpm2_marshal_tpmt_signature(sig, ret->sig, sizeof(ret->sig), &ret->sig_len);
	if (err == 0)
		err = tpm2_pcr_values_marshal(values, ret->pcrs, sizeof(ret->pcrs), &ret->pcrs_len);
out:
	Esys_Free(quoted);
	Esys_Free(sig);
	tpmdev_release(dev, &ak);
	free(values);
	free(attest);
	return err;
}

int
tpmdev_certify(struct tpmdev *dev, const char *state_dir, const uint8_t nonce[static 32],
	       const uint8_t wg_pub[static 32], struct tpmdev_certify *ret)
{
	struct tpmdev_obj srk = TPMDEV_OBJ_INIT, ak = TPMDEV_OBJ_INIT, obj = TPMDEV_OBJ_INIT;
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_ATTEST *info = NULL;
	TPMT_SIGNATURE *sig = NULL;
	struct tpmdev_file *f;
	TPM2B_DATA qd;
	int err;

	dev->err[0] = '\0';
	err = tpm2_qualifying_data(nonce, wg_pub, &qd);
	if (err < 0)
		return err;
	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = load_ak(dev, state_dir, &ak, NULL);
	if (err == 0)
		err = tpmdev_file_read(state_dir, TPMDEV_WG_FILE, TPMDEV_FILE_SEALED, f);
	if (err == 0)
		err = tpmdev_srk(dev, false, &srk);
	if (err == 0)
		err = tpmdev_load(dev, &srk, &f->pub, &f->priv, &obj);
	tpmdev_release(dev, &srk);
	if (err < 0)
		goto out;
	/* ADMIN role of the sealed object: its authValue (adminWithPolicy is clear) */
	err = tpmdev_rc(dev, "Esys_Certify",
			Esys_Certify(dev->esys, obj.tr, ak.tr, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD,
				     ESYS_TR_NONE, &qd, &scheme, &info, &sig));
	if (err < 0)
		goto out;
	err = tpm2_marshal_tpm2b_attest(info, ret->attest, sizeof(ret->attest), &ret->attest_len);
	if (err == 0)
		err = tpm2_marshal_tpmt_signature(sig, ret->sig, sizeof(ret->sig), &ret->sig_len);
	if (err == 0)
		err = tpm2_marshal_tpm2b_public(&f->pub, ret->sealed_public,
						sizeof(ret->sealed_public), &ret->sealed_public_len);
out:
	Esys_Free(info);
	Esys_Free(sig);
	tpmdev_release(dev, &obj);
	tpmdev_release(dev, &ak);
	free(f);
	return err;
}
