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

void ml_admin_test (bool verbose);

#endif
