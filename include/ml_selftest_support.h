/*  ml_selftest_support: fixtures shared by the selftests (test code only). */
#ifndef ML_SELFTEST_SUPPORT_H_INCLUDED
#define ML_SELFTEST_SUPPORT_H_INCLUDED

#include "ml_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

//  Create a reference matter database (sql/sample.sh) in a new temporary file and write
//  its path into path. Returns 0 or -1.
int ml_selftest_matter_db (char *path, size_t size, int clients, int invoices);

//  Create a new temporary directory and write its path. Returns 0 or -1.
int ml_selftest_tmpdir (char *path, size_t size);

//  Remove a temporary directory and everything in it. Returns 0 or -1.
int ml_selftest_remove (const char *path);

//  A core store in a new temporary directory (written into directory), with firm "acme"
//  (agent key "key-acme", operating account OP-001) registered. NULL on failure.
ml_store_t *ml_selftest_store (char *directory, size_t size);

//  The connection string of the store ml_selftest_store made in directory (a static
//  buffer): SQLite's file there, or with ML_SELFTEST_POSTGRESQL set a PostgreSQL database.
const char *ml_selftest_store_connection (const char *directory);

//  One row of a test replica: an open invoice ('I') or a matter's trust ledger ('T').
typedef struct {
    char kind;
    const char *invoice_number; //  "" for trust
    const char *invoice_date;   //  "" for trust
    const char *client_number;
    const char *matter_number;
    int64_t balance_minor; //  an invoice's total is its balance
} ml_selftest_item_t;

//  Give firm "acme" of store a complete replica of these items (USD, source ids 1, 2, ... in
//  order, change cursor 10), as an agent's snapshot would. Returns 0 or -1.
int ml_selftest_replica (ml_store_t *store, const ml_selftest_item_t *items, size_t count);

//  Write text to a new file (or over one) with the given mode.
void ml_selftest_write (const char *path, const char *text, mode_t mode);

//  A whole file as zero-terminated text (caller frees it).
char *ml_selftest_read (const char *path);

//  Send this process's stderr (the log) to a new owner-only file at path, to be searched
//  afterwards. Returns the saved stderr for ml_selftest_stderr_back.
int ml_selftest_stderr_to (const char *path);
//  Give stderr back (saved from ml_selftest_stderr_to), what was written flushed first.
void ml_selftest_stderr_back (int saved);

//  Start a test server (argv, NULL-terminated, argv[0] found on PATH) that prints its port
//  on a line of standard output once it listens; its standard error goes to log_path. The
//  server ends with the selftest even if an assertion kills it. Waits up to 10 s for the
//  port. Returns the server's pid, with *port 0 when it did not start.
pid_t ml_selftest_server (const char *const *argv, const char *log_path, int *port);

//  One selftest of a runner's table: the class's name and its x_test function.
typedef struct {
    const char *name;
    void (*test) (bool verbose);
} ml_selftest_class_t;

//  The main of a selftest runner: "[-v] [-t CLASS]" runs every class of the table, or one.
//  Returns the exit code (0, or 2 for bad arguments or an unknown class).
int ml_selftest_main (const char *program, int argc, char *argv[],
                      const ml_selftest_class_t *classes, size_t count);

#endif
