// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: EK certificates as a device sends them (DER, TCG NV header, padding),
 * through tpm2_ek_cert_strip and attest_verify_ek against the swtpm test CA with a fixed
 * RSA EK public area (captured from swtpm).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/tpm2.h"
#include "enrolld/attest/attest.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tss2-mu logs every rejected structure at error level: silence it unless asked for */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	setenv("TSS2_LOG", "all+none", 0);
	return 0;
}

static const char ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIEEDCCAnigAwIBAgIUdMy2zMuj68PqWr3otSyE8+GiDAMwDQYJKoZIhvcNAQEL\n"
	"BQAwHzEdMBsGA1UEAxMUc3d0cG0tbG9jYWxjYS1yb290Y2EwIBcNMjYxMTI1MDU1\n"
	"MDA1WhgPOTk5OTEyMzEyMzU5NTlaMB8xHTAbBgNVBAMTFHN3dHBtLWxvY2FsY2Et\n"
	"cm9vdGNhMIIBojANBgkqhkiG9w0BAQEFAAOCAY8AMIIBigKCAYEAo+Pzjf+MVZH7\n"
	"6arqicsNbcEEl5QD4AqVbB1G3s+m+CYB0Q8abqAAfbWE3oHhdFaKPrDneTdfTHxa\n"
	"BqZygWwqTbJrbZK1i71lDAGb+iw7twsDFzOBDkGuI1Sv2ll6XNifsCyhCfrYOPtc\n"
	"xYw3BMgkWgAgZ5Obt4TH8ru6yJFBikLjLHUQTA4QLVg3/bzbmA7hINPmjMomK1Zn\n"
	"OnIhg+23lt+ItCu3uktZM4prf6FC2LTTOSRnUUm+Poh2e06jDTTMLO81AUKJVYHg\n"
	"kQhh9zJRFFEdb2stgTxS/VJnzhcYHzx5rVGfJYjx+esHoBzA1mu7JpkzxK1mQcEB\n"
	"4YgFQFQDPJptehAHrX1pKn3i4DyzBnse9XQngYSv8+mrHfBXTD2GLHt+xHV1gSLN\n"
	"35zBluS8zSqkebgzD8RCgCwhMFk4n4sMQrQWJfKKv2h6L9+L7ggzV7KwkKC81PPd\n"
	"veQe+G8ejO/+hB5nMmCWMALSQjcmZRHyrjtrsJIq3kzLniZR+7rhAgMBAAGjQjBA\n"
	"MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMB0GA1UdDgQWBBTRcsic\n"
	"ax6+T1Ckebihluv9YWvVXTANBgkqhkiG9w0BAQsFAAOCAYEAjn91G1Lm6jA4LNj0\n"
	"ejaR2G9KDM1r2wMHBGPb424nTY59h/w8efPxmQJtMxUHcDhMImuHvRpyWL6/l1Pq\n"
	"2ilzr6BjM/TndcayS6zF+tfXhzDEbmzgj88mZsiz9M0bZuBS1L3eP3hc2n5GFVeu\n"
	"VZiLzuOQHZJPfG7P/fVpCHIMZWimkP/Djc7TYEND+yiFNeaUGkeTE8Rpjftm4crm\n"
	"PAd8PVxztdwKPA0njQ/sDojod/p/3GNdHN3qDrI22HKGF1HA6oN8i0uPV6TlVEJb\n"
	"h/N2i3qlj6gN769VisbZXJ+m4j8AqtBp6+g1lDMATTvIukiTzGoyRlX1kHS7mLtb\n"
	"UJDw+lVyjmP7kukoZSSBDazkwVT/rStesVFkgy/Uj5uc6wQuRP+5fvK72UMrM5Rw\n"
	"x0TRoB2Q+rvAPCsoM6TbU3+y+O64hizyUuB09J9DWRTxuJT1rfPLaWDGrxcxexNJ\n"
	"Ky5t3UCJ+rdTrl8NLMY3eFmg5p5At3kk/KqF1unQa3i8YyB9\n"
	"-----END CERTIFICATE-----\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIEKjCCApKgAwIBAgIURBYf9Ytb0eBKMCtcrqRvMmQH94IwDQYJKoZIhvcNAQEL\n"
	"BQAwHzEdMBsGA1UEAxMUc3d0cG0tbG9jYWxjYS1yb290Y2EwIBcNMjYxMTI1MDU1\n"
	"MDA1WhgPOTk5OTEyMzEyMzU5NTlaMBgxFjAUBgNVBAMTDXN3dHBtLWxvY2FsY2Ew\n"
	"ggGiMA0GCSqGSIb3DQEBAQUAA4IBjwAwggGKAoIBgQDWz6SjeVruHGXYAF+bl6rH\n"
	"klYDu0qb+m184mzG/MzK72HJ9snzf8ECjv61zp16dETBffRz0KNR3ti0I5fpxsK9\n"
	"wvLP0ry1xIMp+65a2l+bxeBiISizrleFEltl4TAnYByfhLfSN1Tv508CSgjv8XZK\n"
	"AsZjPfU0SBfcukVqScSLQIaCvzrjH6OHO8MUnVFnTVsaMRPi32uC7yGZDU6aE+n0\n"
	"Ic6sznrSNNeUUwdRT/1f+oKWCzJDRFZKSrwjQFTWALinI0v+VP5NcDilhjbWNS/T\n"
	"Rlt3ThMP9tYRlV6+AsStBX/3QajC7bZDiSJwIKbVdPBbsOi/xFS0jeride4cIhXV\n"
	"NOvCpmculEiWQjQ3nMsGFq6Yld3BALz+0hSht/LMddX2diZi1UN/WnJeNQnnsPVm\n"
	"Gv0ejkBG6aROXmQ1MmjKE1fbnBE73w8O7AVjmRmAmBcI+PhP3+gN1WHTn5AnnHGN\n"
	"QtnwgOm30Jo6K7cyrBo+oDWpALk52qPNmcyYTh9xsk8CAwEAAaNjMGEwDwYDVR0T\n"
	"AQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAgQwHQYDVR0OBBYEFEdDHUhm8frhqXT0\n"
	"Z0ofjrN7veOFMB8GA1UdIwQYMBaAFNFyyJxrHr5PUKR5uKGW6/1ha9VdMA0GCSqG\n"
	"SIb3DQEBCwUAA4IBgQBG+kYYw/vjGdtNLWz64HnpT+YauYOfdKhKr3asiQ1NsFuK\n"
	"7i7evVHF5Meix2YKWAgO11OTQA4ox+VAwWcdOxBdYmx7EiTKhXCVP3nlsNEXZa1U\n"
	"91YPuuH6pFnlR1cGOU4ELQZ8ihYroTRiCILG03WT4K7mQ6Ulnj7mUNsdG819JcHu\n"
	"gETQ6QZ2A4CRCq0XmFYi4EN/klmJqGEi2rqrON/bclTQB/4YKmr7827HXSQPhUOA\n"
	"eVKmnFAmPpY9CZsLbzb8p4Uqek8CbrQUGm+XXyk7C66egpdy+X47N3sdM6I18S7D\n"
	"pD+iAXSkCDeMwXeIVOeLBTT/Hwj744HzIkuj5QY/fjutTmSVhYy6P39hyTzVcuR4\n"
	"zUUmrXxSnBwOApA1trUJl/4xYP1jBPn6NGoZ58gCJ+y7w+HxGwrI2LzNqsAaTwvt\n"
	"cPKw4+qLgbkSGeuv7eyRCoQ5hFm1Qw7P6MEAfTj5a3Tds0TVTacVNnVlbHvvBI26\n"
	"Lenp0a5qrz3WXZtcxcc=\n"
	"-----END CERTIFICATE-----\n"
	;
static const uint8_t ek_rsa_pub[] = {
	  0x01, 0x3a, 0x00, 0x01, 0x00, 0x0b, 0x00, 0x03, 0x00, 0xb2, 0x00, 0x20,
	  0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d,
	  0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
	  0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa, 0x00, 0x06, 0x00, 0x80,
	  0x00, 0x43, 0x00, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	  0x8f, 0xf6, 0x80, 0xf8, 0x56, 0xbe, 0x60, 0x57, 0x7d, 0x0e, 0xc8, 0x85,
	  0xe1, 0x89, 0x84, 0x9f, 0xb0, 0x2d, 0xe5, 0x7a, 0x54, 0xf0, 0x6d, 0x34,
	  0x48, 0xd1, 0xff, 0x6b, 0x98, 0xa9, 0x12, 0x00, 0x3e, 0xd3, 0x3f, 0xe0,
	  0xee, 0x0a, 0x6f, 0x72, 0xff, 0xf1, 0xf5, 0xfe, 0x14, 0x23, 0x7c, 0x78,
	  0x7d, 0x6c, 0xef, 0x6b, 0x95, 0x2e, 0xcb, 0x45, 0x8a, 0xb2, 0x82, 0x6f,
	  0x87, 0xcf, 0x53, 0x5c, 0xd1, 0x4a, 0xfd, 0x51, 0xf2, 0x28, 0x7c, 0x13,
	  0xf7, 0xbc, 0x29, 0xe3, 0x09, 0x58, 0x00, 0xcb, 0x96, 0xbc, 0xe0, 0xc8,
	  0x38, 0x88, 0xd5, 0x58, 0x07, 0x80, 0x8d, 0x14, 0x88, 0x88, 0x3f, 0xce,
	  0x2f, 0x45, 0x6a, 0x63, 0x1d, 0x60, 0x65, 0x16, 0x44, 0xde, 0xcf, 0xad,
	  0x58, 0x8c, 0xff, 0xaa, 0x9a, 0x10, 0xfc, 0xdd, 0x23, 0xca, 0xbe, 0xb1,
	  0xa5, 0xe9, 0x83, 0x8d, 0x84, 0x28, 0x27, 0x40, 0x76, 0xcc, 0x49, 0xca,
	  0xf8, 0xcb, 0x4e, 0x59, 0xab, 0x30, 0xfb, 0xf1, 0xb1, 0xbb, 0x42, 0xe7,
	  0x1e, 0x58, 0x77, 0x64, 0x6b, 0x76, 0xf8, 0x9e, 0xb3, 0xe7, 0x13, 0x3d,
	  0x29, 0x47, 0xd9, 0x01, 0x78, 0x9c, 0x66, 0x48, 0x76, 0x6c, 0xe0, 0x59,
	  0xda, 0x53, 0xb1, 0x14, 0x46, 0x4f, 0xd3, 0x17, 0xea, 0x3c, 0x65, 0x44,
	  0x53, 0x95, 0xd1, 0x1f, 0x99, 0x5a, 0xd9, 0xbc, 0x72, 0x6d, 0xaf, 0x55,
	  0x71, 0x22, 0xa0, 0x5c, 0xa5, 0x87, 0x68, 0xff, 0xb2, 0xec, 0xde, 0x0e,
	  0x39, 0x99, 0x9d, 0xe1, 0x53, 0xa5, 0x30, 0x96, 0x5e, 0x1e, 0x39, 0x18,
	  0x71, 0x91, 0xc9, 0xaa, 0x6d, 0x8d, 0x9e, 0xd5, 0xbf, 0x33, 0xf9, 0xf6,
	  0x8a, 0x6b, 0x5d, 0xe1, 0x56, 0x3a, 0x95, 0x33, 0x66, 0x83, 0xa6, 0x28,
	  0x0c, 0x53, 0x19, 0xc0, 0xa5, 0x39, 0x64, 0xa7, 0xc1, 0x32, 0x63, 0x6a,
	  0x93, 0xea, 0x2d, 0x89
};

static struct attest_trust *
trust(void)
{
	static struct attest_trust *t;
	char dir[] = "/tmp/fuzz_ekcert.XXXXXX", path[64];
	FILE *f;

	if (t != NULL)
		return t;
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	f = fopen(path, "w");
	if (f == NULL || fputs(ca_pem, f) < 0)
		abort();
	fclose(f);
	if (attest_trust_load(dir, &t) < 0)
		abort();
	unlink(path);
	rmdir(dir);
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *der;
	size_t len;
	uint8_t id[32];
	enum attest_reason why;

	(void)tpm2_ek_cert_strip(data, size, &der, &len);
	/* a fixed time inside the test CA's validity */
	(void)attest_verify_ek(trust(), data, size, ek_rsa_pub, sizeof(ek_rsa_pub),
			       (time_t)1800000000, id, &why);
	return 0;
}
