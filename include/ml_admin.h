/*  ml_admin: the core's admin API, one JSON request in, one JSON reply out.

    Requests are objects with an "op" and its arguments; replies are {"ok": true, ...} or
    {"ok": false, "error": "..."} with an error a person can act on. Every argument is
    outside input: checked for type and length before use. docs/admin-api.md lists the ops.
*/
#ifndef ML_ADMIN_H_INCLUDED
#define ML_ADMIN_H_INCLUDED

#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

//  Largest admin request accepted, in bytes.
#define ML_ADMIN_MAX_REQUEST (64 * 1024)

//  Execute a request. Returns the reply (new reference). When the request created or
//  re-queued a posting, the firm to deliver for is written into deliver_firm (else it is
//  set to "").
json_t *ml_admin_execute (ml_store_t *store, const json_t *request, char *deliver_firm,
                          size_t size);

//  Helpers for every op handler, so all replies and argument checks look alike.
//  An error reply {"ok": false, "error": text} (new reference).
json_t *ml_admin_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Mark body (or a new empty object when NULL) as a success reply; takes the reference.
json_t *ml_admin_ok (json_t *body);

//  Read an optional string argument of at most max bytes. Returns the value (borrowed),
//  NULL when absent, and sets problem (if not already set) when present but not a string,
//  too long, or holding a NUL byte. Once problem is set, later calls return NULL, so
//  handlers read every argument and then report the first problem.
const char *ml_admin_argument (const json_t *request, const char *key, size_t max, char *problem,
                               size_t size);

void ml_admin_test (bool verbose);

#endif
