/*  ml_selftest_support: fixtures for selftests. See include/ml_selftest_support.h. */
#include "ml_selftest_support.h"
#include "ml_log.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

const char *ml_selftest_store_connection (const char *directory)
{
    static char connection[300];
    //  ML_SELFTEST_POSTGRESQL (a server's URI without a database, as the CTests
    //  selftest_*_postgresql give) puts the store in a database of its own there instead.
    const char *server = getenv ("ML_SELFTEST_POSTGRESQL");
    const char *suffix = strrchr (directory, '_');
    if (server && *server && suffix) {
        char database[64];
        snprintf (database, sizeof database, "mltest_%s", suffix + 1);
        for (char *cursor = database; *cursor; cursor++)
            *cursor = (char)tolower ((unsigned char)*cursor);
        snprintf (connection, sizeof connection, "%s/%s", server, database);
    } else
        snprintf (connection, sizeof connection,
                  "Driver=SQLite3;Database=%s/core.db;StepAPI=1;FKSupport=1;Timeout=5000",
                  directory);
    return connection;
}

ml_store_t *ml_selftest_store (char *directory, size_t size)
{
    if (ml_selftest_tmpdir (directory, size) != 0)
        return NULL;
    char connection_string[300], error[512];
    snprintf (connection_string, sizeof connection_string, "%s",
              ml_selftest_store_connection (directory));
    const char *server = getenv ("ML_SELFTEST_POSTGRESQL");
    if (server && *server) {
        //  The database is made on the server's maintenance database.
        char maintenance[300], sql[128];
        snprintf (maintenance, sizeof maintenance, "%s/postgres", server);
        snprintf (sql, sizeof sql, "CREATE DATABASE %s", strrchr (connection_string, '/') + 1);
        ml_db_error_t db_error;
        ml_db_t *db = ml_db_new (maintenance, &db_error);
        if (!db || ml_db_execute (db, sql, NULL) < 0) {
            fprintf (stderr, "ml_selftest_store: %s: %s\n", sql,
                     db ? ml_db_error (db)->message : db_error.message);
            ml_db_destroy (&db);
            return NULL;
        }
        ml_db_destroy (&db);
    }
    ml_store_t *store = ml_store_new (connection_string, error, sizeof error);
    if (store && ml_store_firm_add (store, "acme", "Acme LLP", "key-acme", "OP-001") != 0)
        ml_store_destroy (&store);
    return store;
}

pid_t ml_selftest_server (const char *const *argv, const char *log_path, int *port)
{
    int fds[2];
    assert (pipe (fds) == 0);
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    assert (pid >= 0);
    if (pid == 0) {
        //  Even if the selftest dies on an assertion, the server does not outlive it.
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        int log_fd = open (log_path, O_CREAT | O_WRONLY | O_APPEND, 0600);
        dup2 (fds[1], STDOUT_FILENO);
        if (log_fd >= 0)
            dup2 (log_fd, STDERR_FILENO);
        close (fds[0]);
        close (fds[1]);
        execvp (argv[0], (char *const *)argv);
        _exit (127);
    }
    close (fds[1]);
    //  The server prints its port once it listens: wait for that line, with a deadline.
    char line[32];
    size_t used = 0;
    int64_t deadline = zclock_mono () + 10000;
    while (used < sizeof line - 1 && !memchr (line, '\n', used)) {
        struct pollfd item = {fds[0], POLLIN, 0};
        int remaining = (int)(deadline - zclock_mono ());
        if (remaining <= 0 || poll (&item, 1, remaining) <= 0)
            break;
        ssize_t got = read (fds[0], line + used, sizeof line - 1 - used);
        if (got <= 0)
            break;
        used += (size_t)got;
    }
    line[used] = 0;
    close (fds[0]);
    *port = atoi (line);
    return pid;
}

int ml_selftest_replica (ml_store_t *store, const ml_selftest_item_t *items, size_t count)
{
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    strcpy (hello->epoch, "e");
    bool resync;
    uint64_t cursor;
    int rc = ml_store_session_open (store, "acme", hello, &resync, &cursor);
    for (size_t index = 0; rc == 0 && index < count; index++) {
        ml_item_t *item = ml_msg_add_item (batch);
        item->kind = items[index].kind;
        item->op = 'U';
        item->source_id = (uint64_t)index + 1;
        snprintf (item->invoice_number, sizeof item->invoice_number, "%s",
                  items[index].invoice_number);
        snprintf (item->invoice_date, sizeof item->invoice_date, "%s", items[index].invoice_date);
        snprintf (item->client_number, sizeof item->client_number, "%s",
                  items[index].client_number);
        snprintf (item->matter_number, sizeof item->matter_number, "%s",
                  items[index].matter_number);
        strcpy (item->currency, "USD");
        item->balance_minor = items[index].balance_minor;
        item->total_minor = item->kind == 'I' ? item->balance_minor : 0;
    }
    if (rc == 0)
        rc = ml_store_snapshot_rows (store, "acme", batch);
    if (rc == 0)
        rc = ml_store_snapshot_end (store, "acme", 10);
    ml_msg_destroy (&batch);
    ml_msg_destroy (&hello);
    return rc;
}

void ml_selftest_write (const char *path, const char *text, mode_t mode)
{
    int fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    assert (fd >= 0);
    assert (fchmod (fd, mode) == 0);
    assert (write (fd, text, strlen (text)) == (ssize_t)strlen (text));
    close (fd);
}

int ml_selftest_stderr_to (const char *path)
{
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    int file = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert (saved >= 0 && file >= 0);
    dup2 (file, STDERR_FILENO);
    close (file);
    return saved;
}

void ml_selftest_stderr_back (int saved)
{
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
}

char *ml_selftest_read (const char *path)
{
    FILE *file = fopen (path, "rb");
    assert (file);
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *text = calloc (1, (size_t)size + 1);
    assert (text);
    assert (fread (text, 1, (size_t)size, file) == (size_t)size);
    fclose (file);
    return text;
}

int ml_selftest_main (const char *program, int argc, char *argv[],
                      const ml_selftest_class_t *classes, size_t count)
{
    bool verbose = false;
    const char *only = NULL;
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv[index], "-v") == 0)
            verbose = true;
        else if (strcmp (argv[index], "-t") == 0 && index + 1 < argc)
            only = argv[++index];
        else {
            fprintf (stderr, "usage: %s [-v] [-t CLASS]\n", program);
            return 2;
        }
    }
    ml_log_setup ("selftest", verbose ? ML_LOG_DEBUG : ML_LOG_WARNING);
    bool found = false;
    for (size_t index = 0; index < count; index++)
        if (!only || strcmp (only, classes[index].name) == 0) {
            classes[index].test (verbose);
            found = true;
        }
    if (!found) {
        fprintf (stderr, "%s: no class %s\n", program, only);
        return 2;
    }
    return 0;
}
