# One non-recursive Makefile for the whole tree.
#
#   make            build libraries, daemons, test programs
#   make check      unit tests, fuzz smoke runs, integration tests, kernel test
#   make fuzz       build the libFuzzer targets (clang)
#   make fuzz-long  every fuzz target for FUZZ_SECONDS (300) each, corpus kept (build/fuzz)
#   make fuzz-cov   per-target source coverage of that corpus (llvm-cov, build/fuzz-cov)
#   make install    PREFIX=/usr/local DESTDIR=
#   make man        the man pages (scdoc), also part of make
#   make SANITIZE=1 ASan + UBSan build (in build/san)
#   make V=1        show the commands
#
# Sources are found by folder: common/*.c is libcommon.a, enrolld/attest/*.c is
# libattest.a (server-side attestation), edge-keyd/tpm/*.c is libtpmdev.a (device-side
# TPM), tests/unit/test_*.c are cmocka tests, tests/fuzz/fuzz_*.c libFuzzer targets,
# tests/progs/*.c and tests/bench/*.c programs used by tests and benchmarks.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/edgeward
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
PKG_CONFIG ?= pkg-config
CC ?= cc
FUZZ_CC ?= clang

ifeq ($(SANITIZE),1)
B ?= build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B ?= build
SAN_FLAGS :=
endif

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

PKGS := libmnl libcrypto jansson inih tss2-esys tss2-mu tss2-tctildr tss2-rc lmdb libmicrohttpd gnutls \
	libseccomp \
	libcurl
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
# libpq: enrolld's PostgreSQL store backend only; edge-keyd and enrollctl do not link it.
PG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null)
PG_LIBS := $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter
ifeq ($(CI),true)
WARN += -Werror
endif

CFLAGS ?= -O2 -g
# The PostgreSQL store backend (enrolld/store/pg*.c, libpq) is built in: the front's switch.
ENROLLD_DEFS := -DENROLLD_HAVE_PG
ALL_CFLAGS := $(ENROLLD_DEFS) -std=gnu11 -D_GNU_SOURCE -I. $(WARN) $(CFLAGS) $(SAN_FLAGS) $(PKG_CFLAGS) \
	$(PG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)

COMMON_SRCS := $(sort $(wildcard common/*.c))
ATTEST_SRCS := $(sort $(wildcard enrolld/attest/*.c))
TPMDEV_SRCS := $(sort $(wildcard edge-keyd/tpm/*.c))
# Each daemon: <daemon>/main.c is the program, the rest of <daemon>/*.c its library
# (so unit tests can link the daemon's modules); enrolld's store is enrolld/store/*.c.
ENROLLD_SRCS := $(filter-out enrolld/main.c,$(sort $(wildcard enrolld/*.c enrolld/store/*.c enrolld/cluster/*.c)))
EDGEKEYD_SRCS := $(filter-out edge-keyd/main.c,$(sort $(wildcard edge-keyd/*.c)))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
PROG_SRCS := $(sort $(wildcard tests/progs/*.c))
BENCH_SRCS := $(sort $(wildcard tests/bench/*.c))

LIBCOMMON := $(B)/libcommon.a
LIBATTEST := $(B)/libattest.a
LIBTPMDEV := $(B)/libtpmdev.a
LIBENROLLD := $(B)/libenrolld.a
LIBEDGEKEYD := $(B)/libedgekeyd.a
# Order matters for static linking: users before what they use.
LIBS_ALL := $(LIBENROLLD) $(LIBEDGEKEYD) $(LIBATTEST) $(LIBTPMDEV) $(LIBCOMMON)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRCS))
PROG_BINS := $(patsubst tests/progs/%.c,$(B)/tests/progs/%,$(PROG_SRCS))
BENCH_BINS := $(patsubst tests/bench/%.c,$(B)/tests/bench/%,$(BENCH_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))

DAEMONS := $(if $(wildcard enrolld/main.c),$(B)/enrolld) $(if $(wildcard edge-keyd/main.c),$(B)/edge-keyd)

# Keep objects between runs (they are intermediate files of pattern chains).
.SECONDARY:
.DELETE_ON_ERROR:

# Man pages: docs/man/<name>.<section>.scd, built with scdoc into build/man/<name>.<section>.
MAN_SRCS := $(sort $(wildcard docs/man/*.scd))
MAN_PAGES := $(patsubst docs/man/%.scd,build/man/%,$(MAN_SRCS))

.PHONY: all check check-sanitized unit fuzz fuzz-check integration kernel-test bench install clean deps man
all: $(LIBS_ALL) $(DAEMONS) $(PROG_BINS) $(BENCH_BINS) $(UNIT_BINS) $(MAN_PAGES)

man: $(MAN_PAGES)

build/man/%: docs/man/%.scd
	$(call msg,SCDOC,$<)
	@mkdir -p $(@D)
	$(Q)scdoc <$< >$@

$(B)/obj/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRCS))
$(LIBATTEST): $(call obj,$(ATTEST_SRCS))
$(LIBTPMDEV): $(call obj,$(TPMDEV_SRCS))
$(LIBENROLLD): $(call obj,$(ENROLLD_SRCS))
$(LIBEDGEKEYD): $(call obj,$(EDGEKEYD_SRCS))
$(LIBS_ALL):
	$(call msg,AR,$@)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(B)/enrolld: $(B)/obj/enrolld/main.o $(LIBS_ALL)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(PKG_LIBS) $(PG_LIBS) -lpthread

$(B)/edge-keyd: $(B)/obj/edge-keyd/main.o $(LIBS_ALL)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(PKG_LIBS)

# The dashboard's files (enrolld/ui/*), compiled into enrolld: api_ui.c includes the table.
UI_ASSETS := $(sort $(wildcard enrolld/ui/*))
build/gen/ui_assets.inc: $(UI_ASSETS) scripts/embed-ui.sh
	$(call msg,GEN,$@)
	@mkdir -p $(@D)
	$(Q)./scripts/embed-ui.sh $(UI_ASSETS) >$@
$(call obj,enrolld/api_ui.c) build/fuzz/obj/enrolld/api_ui.o: build/gen/ui_assets.inc
test_enrolld_ui_LDFLAGS := -Wl,--wrap=http_request_param,--wrap=http_request_header \
	-Wl,--wrap=http_response_header,--wrap=http_error

# A unit test may fake a dependency with --wrap: set test_<name>_LDFLAGS here.
# test_example_LDFLAGS := -Wl,--wrap=foo
test_edgekeyd_wgquick_LDFLAGS := -Wl,--wrap=ekd_unseal
test_wg_uapi_LDFLAGS := -Wl,--wrap=wg_genl_open,--wrap=wg_genl_close,--wrap=wg_genl_get_device \
	-Wl,--wrap=wg_genl_set_device,--wrap=wg_genl_last_error
# test_enrolld_plane: a fake interface instead of wireguard-go, rtnetlink no-ops.
test_enrolld_plane_LDFLAGS := -Wl,--wrap=wg_set_device,--wrap=wgproc_ensure \
	-Wl,--wrap=rtnl_addr_add,--wrap=rtnl_link_set_up,--wrap=rtnl_route_add
# test_enrolld_health: a fake interface instead of plane_peer_stats.
test_enrolld_health_LDFLAGS := -Wl,--wrap=plane_peer_stats
# test_wg_genl plays the kernel: libmnl's socket calls are replaced by the test's.
test_wg_genl_LDFLAGS := -Wl,--wrap=mnl_socket_open2,--wrap=mnl_socket_bind \
	-Wl,--wrap=mnl_socket_setsockopt,--wrap=mnl_socket_get_portid,--wrap=mnl_socket_close \
	-Wl,--wrap=mnl_socket_sendto,--wrap=mnl_socket_recvfrom

$(B)/tests/unit/%: $(B)/obj/tests/unit/%.o $(LIBS_ALL)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) $($(*)_LDFLAGS) -o $@ $< $(LIBS_ALL) $(PKG_LIBS) $(PG_LIBS) $(CMOCKA_LIBS)

$(B)/tests/progs/%: $(B)/obj/tests/progs/%.o $(LIBS_ALL)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(PKG_LIBS) $(PG_LIBS)

$(B)/tests/bench/%: $(B)/obj/tests/bench/%.o $(LIBS_ALL)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(PKG_LIBS) $(PG_LIBS)

# enroll_bench, http_flood (its challenge bodies) and cluster_load (the failover test's
# load) link the software TPM device (tests/bench/softdev/, not a program itself).
$(B)/tests/progs/http_flood $(B)/tests/progs/cluster_load \
$(B)/tests/bench/enroll_bench: $(B)/tests/%: $(B)/obj/tests/%.o \
		$(B)/obj/tests/bench/softdev/softdev.o $(LIBS_ALL)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBS_ALL) $(PKG_LIBS) $(PG_LIBS) -lpthread \
		$(if $(filter %/enroll_bench,$@),-lssl)

# enrollctl, the operator's CLI: enrollctl/main.c is the program, the rest its library
# (its unit tests link that and libcommon only). Installed with its bash completion.
ENROLLCTL_SRCS := $(filter-out enrollctl/main.c,$(sort $(wildcard enrollctl/*.c)))
LIBENROLLCTL := $(B)/libenrollctl.a
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
all: $(B)/enrollctl
$(LIBENROLLCTL): $(call obj,$(ENROLLCTL_SRCS))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(B)/enrollctl: $(B)/obj/enrollctl/main.o $(LIBENROLLCTL) $(LIBCOMMON)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBENROLLCTL) $(LIBCOMMON) $(PKG_LIBS)
$(B)/tests/unit/test_enrollctl_%: $(B)/obj/tests/unit/test_enrollctl_%.o $(LIBENROLLCTL) $(LIBCOMMON)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBENROLLCTL) $(LIBCOMMON) $(PKG_LIBS) $(CMOCKA_LIBS)
.PHONY: install-enrollctl
install: install-enrollctl
install-enrollctl: $(B)/enrollctl
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 $(B)/enrollctl $(DESTDIR)$(BINDIR)
	install -m 0644 enrollctl/enrollctl.bash-completion $(DESTDIR)$(COMPLETIONDIR)/enrollctl

# Fuzz targets: every library source compiled again with clang and the fuzzer's
# instrumentation, into build/fuzz (independent of SANITIZE).
FUZZ_CFLAGS := $(ENROLLD_DEFS) -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-DFUZZING_BUILD_MODE $(PKG_CFLAGS) $(PG_CFLAGS) -MMD -MP
FUZZ_LIB_OBJS := $(patsubst %.c,build/fuzz/obj/%.o,$(COMMON_SRCS) $(ATTEST_SRCS) $(TPMDEV_SRCS) \
	$(ENROLLD_SRCS) $(EDGEKEYD_SRCS) enrollctl/sse.c)

build/fuzz/obj/%.o: %.c
	$(call msg,FUZZCC,$<)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# A target may fake a dependency with --wrap: set <target>_FUZZ_LDFLAGS here.
# fuzz_http: the plane's calls from the handlers do nothing (no WireGuard, no processes);
# log_info is formatted and dropped.
fuzz_http_FUZZ_LDFLAGS := -Wl,--wrap=plane_tenant_up,--wrap=plane_device_sync \
	-Wl,--wrap=plane_tenant_key,--wrap=plane_tenant_is_up,--wrap=log_info

build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJS)
	$(call msg,FUZZLD,$@)
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer,address,undefined $($(*)_FUZZ_LDFLAGS) -o $@ $^ \
		$(PKG_LIBS) $(PG_LIBS) -lpthread

fuzz: $(FUZZ_BINS)

# The same targets with source-based coverage instead of sanitizers (build/fuzz-cov), for
# tests/fuzz/coverage.sh: it replays each target's long corpus (make fuzz-long) and reports
# with llvm-cov which lines and functions of our sources the corpus reaches.
FUZZCOV_CFLAGS := $(ENROLLD_DEFS) -std=gnu11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer-no-link \
	-fprofile-instr-generate -fcoverage-mapping -DFUZZING_BUILD_MODE $(PKG_CFLAGS) $(PG_CFLAGS) -MMD -MP
FUZZCOV_LIB_OBJS := $(patsubst build/fuzz/%,build/fuzz-cov/%,$(FUZZ_LIB_OBJS))
FUZZCOV_BINS := $(patsubst build/fuzz/%,build/fuzz-cov/%,$(FUZZ_BINS))
build/fuzz-cov/obj/enrolld/api_ui.o: build/gen/ui_assets.inc

build/fuzz-cov/obj/%.o: %.c
	$(call msg,COVCC,$<)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZCOV_CFLAGS) -c -o $@ $<

build/fuzz-cov/%: build/fuzz-cov/obj/tests/fuzz/%.o $(FUZZCOV_LIB_OBJS)
	$(call msg,COVLD,$@)
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer -fprofile-instr-generate $($(*)_FUZZ_LDFLAGS) -o $@ $^ \
		$(PKG_LIBS) $(PG_LIBS) -lpthread

# make fuzz-long [FUZZ_SECONDS=300] [FUZZ_TARGETS='fuzz_http fuzz_x509']: every target for
# FUZZ_SECONDS, corpus kept in build/fuzz/corpus-long/<target>, findings there too (the
# run fails if any). make fuzz-cov: per-target coverage of that corpus (llvm-cov).
.PHONY: fuzz-long fuzz-cov
fuzz-long: fuzz
	$(Q)FUZZ_SECONDS=$(or $(FUZZ_SECONDS),300) FUZZ_TARGETS='$(FUZZ_TARGETS)' ./tests/fuzz/long.sh

fuzz-cov: $(FUZZCOV_BINS)
	$(Q)FUZZ_TARGETS='$(FUZZ_TARGETS)' ./tests/fuzz/coverage.sh

deps:
	./scripts/install-deps.sh

check: all
	$(Q)B=$(B) ./tests/run.sh

unit: all
	$(Q)B=$(B) ./tests/run.sh unit

fuzz-check: fuzz
	$(Q)B=$(B) ./tests/run.sh fuzz

integration: all
	$(Q)B=$(B) ./tests/run.sh integration

# The unit and integration tests that run our code, for the sanitizer build (make
# SANITIZE=1 check-sanitized; scripts/test.sh runs it after make check): left out are the
# packaging, browser, valgrind and doc-sync tests, which add nothing under ASan.
# (enrolld_crash, its 50 SIGKILLs, was left out for its devices' deadlines; since they go
# by the device's own progress it passes under ASan + UBSan: in since 2026-12-03.)
SAN_SKIP := ^integration/(debian_packages|dashboard|valgrind_e2e|prometheus_rules|openapi_sync|man_pages)$$
check-sanitized: all
	$(Q)B=$(B) SKIP='$(SAN_SKIP)' ./tests/run.sh unit integration

kernel-test: all
	$(Q)B=$(B) ./tests/run.sh kernel

bench: all
	$(Q)B=$(B) ./tests/bench/run.sh

# Daemons in SBINDIR; example configs, the gateway's WAN ruleset and the factory X.509
# tool in DATADIR (configs go to /etc by the operator, see docs/operations.md); units, with
# their ExecStart paths pointing at SBINDIR.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(UNITDIR)
	$(if $(DAEMONS),install -m 0755 $(DAEMONS) $(DESTDIR)$(SBINDIR))
	install -m 0644 etc/*.conf.example edge-keyd/wan-firewall.nft $(DESTDIR)$(DATADIR)
	$(if $(wildcard scripts/factory-x509.sh),install -m 0755 scripts/factory-x509.sh $(DESTDIR)$(DATADIR))
	$(Q)for u in $(wildcard etc/*.service); do sed 's|/usr/local/sbin/|$(SBINDIR)/|g' $$u \
		>$(DESTDIR)$(UNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done
	install -m 0644 etc/prometheus/enrolld-alerts.yml docs/grafana/enrolld-dashboard.json $(DESTDIR)$(DATADIR)
	$(Q)for p in $(MAN_PAGES); do s=$${p##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 0644 $$p $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; done

clean:
	rm -rf build

# Only the compilers' dependency files: caches under build/ (VM images, chroots) hold
# directories named *.d (etc/rc2.d) that make must never read.
-include $(shell find build -path '*/obj/*' -name '*.d' -type f 2>/dev/null)
