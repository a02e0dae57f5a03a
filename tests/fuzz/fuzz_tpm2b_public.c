// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: TPM2B_PUBLIC from the network (EK and AK public areas): strict
 * unmarshal, name, AK and EK checks, and MakeCredential to whatever EK passes the checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/tpm2.h"
#include "enrolld/attest/attest.h"
#include "enrolld/attest/attest_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tss2-mu logs every rejected structure at error level: silence it unless asked for */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setenv("TSS2_LOG", "all+none", 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t buf[TPM2_MAX_MARSHALLED], secret[32] = { 7 };
	TPM2B_PUBLIC pub;
	TPMT_PUBLIC ek;
	TPM2B_NAME name;
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET seed;
	enum attest_reason why;
	size_t n;

	if (tpm2_unmarshal_tpm2b_public(data, size, &pub) == 0) {
		/* what parses must marshal back to the same bytes */
		if (tpm2_marshal_tpm2b_public(&pub, buf, sizeof(buf), &n) != 0 || n != size ||
		    memcmp(buf, data, n) != 0)
			__builtin_trap();
	}
	(void)tpm2_name_from_tpm2b_public(data, size, &name);
	(void)attest_check_ak(data, size, &name, &why);
	if (attest_ek_public_parse(data, size, &ek, &why) == 0) {
		memset(&name, 0, sizeof(name));
		name.size = 34;
		(void)attest_make_credential(&ek, &name, secret, sizeof(secret), NULL, &blob, &seed);
	}
	return 0;
}
