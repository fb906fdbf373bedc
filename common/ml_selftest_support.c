/*  ml_selftest_support: fixtures for selftests. See include/ml_selftest_support.h. */
#include "ml_selftest_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int ml_selftest_tmpdir (char *path, size_t size)
{
    snprintf (path, size, "/tmp/matterlink_test_XXXXXX");
    return mkdtemp (path) ? 0 : -1;
}

int ml_selftest_matter_db (char *path, size_t size, int clients, int invoices)
{
    char directory[128];
    if (ml_selftest_tmpdir (directory, sizeof directory) != 0)
        return -1;
    snprintf (path, size, "%s/matter.db", directory);
    char command[1024];
    snprintf (command, sizeof command,
              "sh '%s/sql/sample.sh' --dialect sqlite --db '%s' --clients %d --invoices %d "
              ">/dev/null",
              ML_SOURCE_DIR, path, clients, invoices);
    return system (command) == 0 ? 0 : -1;
}

int ml_selftest_remove (const char *path)
{
    char command[300];
    snprintf (command, sizeof command, "rm -rf '%s'", path);
    return system (command) == 0 ? 0 : -1;
}

ml_store_t *ml_selftest_store (char *directory, size_t size)
{
    if (ml_selftest_tmpdir (directory, size) != 0)
        return NULL;
    char connection_string[300], error[512];
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s/core.db;StepAPI=1;FKSupport=1;Timeout=5000", directory);
    ml_store_t *store = ml_store_new (connection_string, error, sizeof error);
    if (store && ml_store_firm_add (store, "acme", "Acme LLP", "key-acme", "OP-001") != 0)
        ml_store_destroy (&store);
    return store;
}
