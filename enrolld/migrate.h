/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_MIGRATE_H
#define ENROLLD_MIGRATE_H

#include "enrolld/enrolld.h"

/*
 * `enrolld --migrate-to DEST`: copy the state of @conf's [state] (the source) into the empty
 * store DEST ("lmdb:<directory>" or "postgresql:<libpq connection string>"), with the
 * tenants' interface keys (LMDB: <key_dir>/<tenant>.key files; PostgreSQL: sealed in the
 * database under the KEK of state.kek_file), then prove the copy equal. Logs what it does;
 * returns the process's exit status (0: copied and verified). docs/state.md, "Moving between
 * LMDB and PostgreSQL".
 */
int enrolld_migrate(const struct enrolld_conf *conf, const char *dest);

#endif
