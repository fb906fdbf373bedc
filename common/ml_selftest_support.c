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
