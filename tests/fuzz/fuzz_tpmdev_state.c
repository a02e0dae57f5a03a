// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the device's state-file parser (edge-keyd/tpm/state.c), which reads
 * the AK and sealed-key blobs back from disk. A damaged or planted file must be refused,
 * never read past. The first byte picks the file kind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge-keyd/tpm/tpmdev_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpmdev_file f;
	enum tpmdev_file_kind kind;
	uint8_t *buf;

	if (size < 1)
		return 0;
	kind = (data[0] & 1) ? TPMDEV_FILE_SEALED : TPMDEV_FILE_AK;
	buf = malloc(size - 1 ? size - 1 : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (tpmdev_file_decode(buf, size - 1, kind, &f) == 0 && f.kind != kind)
		abort();
	explicit_bzero(&f, sizeof(f));
	free(buf);
	return 0;
}
