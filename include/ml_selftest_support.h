/*  ml_selftest_support: fixtures shared by the selftests (test code only). */
#ifndef ML_SELFTEST_SUPPORT_H_INCLUDED
#define ML_SELFTEST_SUPPORT_H_INCLUDED

#include "ml_store.h"

#include <stddef.h>

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

#endif
