// SPDX-License-Identifier: MIT
/*
 * kenroll: put fake devices straight into enrolld's store, for the kernel test
 * (tests/kernel/enrolld_vm.sh), where no swtpm runs and so no device can attest.
 *
 *   kenroll DB TENANT N [TENANT N]...
 *
 * For each TENANT (which must exist: created through the REST API before), N devices are
 * enrolled the way enrolld's own enrollment commits them: a factory registration of a
 * random EK hash, then store_enroll() with a random WireGuard key. enrolld must not be
 * running (one writer). One line per device on stdout:
 *
 *   <id> <tenant> <public key, base64> <IPv4 address>
 *
 * Exit status: 0, 1 on failure (with a message on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "common/key.h"
#include "enrolld/addr.h"
#include "enrolld/store.h"

static int
enroll_one(struct store *s, const char *tenant, unsigned int i)
{
	struct store_registration reg;
	struct store_enroll_req req;
	struct store_device d;
	uint8_t priv[WG_KEY_LEN];
	char pub[WG_KEY_B64_LEN], a4[ADDR_STR_LEN];
	int r;

	memset(&reg, 0, sizeof(reg));
	memset(&req, 0, sizeof(req));
	snprintf(reg.tenant, sizeof(reg.tenant), "%s", tenant);
	snprintf(reg.label, sizeof(reg.label), "kenroll-%u", i);
	if (getrandom(reg.ek_hash, sizeof(reg.ek_hash), 0) != sizeof(reg.ek_hash))
		return -EIO;
	r = store_registration_add(s, &reg);
	if (r < 0) {
		fprintf(stderr, "kenroll: registration in '%s': %s\n", tenant, strerror(-r));
		return r;
	}
	r = key_generate_private(priv);
	if (r == 0)
		r = key_public_from_private(req.wg_pubkey, priv);
	explicit_bzero(priv, sizeof(priv));
	if (r < 0)
		return r;
	snprintf(req.tenant, sizeof(req.tenant), "%s", tenant);
	memcpy(req.ek_hash, reg.ek_hash, sizeof(req.ek_hash));
	req.kind = STORE_ATTEST_TPM;
	r = store_enroll(s, &req, &d);
	if (r != STORE_ENROLL_NEW) {
		fprintf(stderr, "kenroll: enroll in '%s': %s\n", tenant,
			r < 0 ? strerror(-r) : "not a new device");
		return r < 0 ? r : -EEXIST;
	}
	key_to_base64(pub, d.wg_pubkey);
	addr_format(AF_INET, d.addr4, a4, sizeof(a4));
	printf("%llu %s %s %s\n", (unsigned long long)d.id, d.tenant, pub, a4);
	return 0;
}

int
main(int argc, char **argv)
{
	struct store *s = NULL;
	int r, rc = 1;

	if (argc < 4 || argc % 2 != 0) {
		fprintf(stderr, "usage: kenroll DB TENANT N [TENANT N]...\n");
		return 2;
	}
	r = store_open(&s, argv[1], NULL);
	if (r < 0) {
		fprintf(stderr, "kenroll: open '%s': %s (%s)\n", argv[1], strerror(-r),
			store_errmsg());
		return 1;
	}
	for (int a = 2; a < argc; a += 2) {
		char *end;
		unsigned long n = strtoul(argv[a + 1], &end, 10);

		if (*end != '\0' || n == 0 || n > 100000) {
			fprintf(stderr, "kenroll: bad count '%s'\n", argv[a + 1]);
			rc = 2;
			goto out;
		}
		for (unsigned long i = 0; i < n; i++)
			if (enroll_one(s, argv[a], (unsigned int)i) < 0)
				goto out;
	}
	rc = 0;
out:
	store_free(s);
	return rc;
}
