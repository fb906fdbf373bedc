/*  ml_staff: a firm's staff accounts in the core: invitations, passwords, the second factor,
    sessions and the audit trail of what staff did (docs/staff-api.md).

    A staff member belongs to one firm and has one role: read (looks), billing (reads and
    takes payments, edits payers, Auto-Pay and postings), admin (billing and the firm's users,
    deposit accounts and settings). Administrators invite people by e-mail: a single-use link
    (72 hours) sets the password; resets work the same way (1 hour). Passwords are Argon2id,
    throttled as payers' are (ml_credentials). The second factor is TOTP (ml_totp, RFC 6238):
    required for administrators, optional for others; its secret is sealed in the store with
    a key derived from the outbox key (which lives outside the store), so a copy of the store
    alone lets nobody sign in; no step works twice. Ten recovery codes, kept as keyed digests,
    work once each. Sessions are tokens kept as digests (idle 30 minutes, 12 hours at most:
    the portal's settings); the CSRF token is derived from the session. staff_audit, append
    only, says who did what (never a secret).

    ml_admin decides who may call which op (its table of ops, with the least role) and keeps
    every staff request inside the staff member's firm (ml_staff_scope) before a handler runs;
    this class trusts the actor it is given.
*/
#ifndef ML_STAFF_H_INCLUDED
#define ML_STAFF_H_INCLUDED

#include "ml_logins.h"
#include "ml_mailer.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _ml_staff_t ml_staff_t;

//  The most bytes of "NAME (#STAFF_ID)", the staff member the core names in a request (the
//  ops' "staff" member holds at most 64 bytes).
#define ML_STAFF_NAME_MAX 64

//  Create the tables if needed. store and mailer are borrowed and outlive this object;
//  settings are the portal's (public_url, link and session lifetimes). NULL + error on failure.
ml_staff_t *ml_staff_new (ml_store_t *store, ml_mailer_t *mailer,
                          const ml_logins_settings_t *settings, char *error, size_t error_size);

//  Destroy the object (the tables stay). Idempotent; nulls the caller's pointer.
void ml_staff_destroy (ml_staff_t **self_p);

//  Use now (seconds since the epoch) as the time from here on; 0 goes back to the system
//  clock. For tests of expiry, throttling and TOTP.
void ml_staff_set_clock (ml_staff_t *self, int64_t now);

//  Find a live staff session by its token: 1 live (actor becomes the staff member, and the
//  session's idle clock starts again), 0 unknown, ended, expired or its account not active,
//  -1 store error. The token is never logged.
int ml_staff_session (ml_staff_t *self, const char *token, ml_actor_t *actor);

//  True if csrf is the CSRF token of the staff actor's session (constant-time compare).
bool ml_staff_csrf_ok (const ml_actor_t *actor, const char *csrf);

//  Run one of this class's ops (staff-*) for actor (already allowed by ml_admin; for a
//  staff actor the request is already scoped to the firm). Returns the reply (new
//  reference), or NULL when op is not one of this class's.
json_t *ml_staff_execute (ml_staff_t *self, const char *op, const json_t *request,
                          const ml_actor_t *actor);

//  Append a row to staff_audit for what actor (staff or the operator) did in firm_id: op,
//  object (the ids it acted on) and detail, neither ever a secret. A failure is logged.
void ml_staff_audit (ml_staff_t *self, const ml_actor_t *actor, const char *firm_id, const char *op,
                     const char *object, const char *detail);

//  Firm scoping (core/staff/ml_staff_scope.c), for a staff actor's request before its
//  handler runs: "firm" is filled in with the staff's firm when the op takes one (takes_firm)
//  and absent, and every object id member (payer_id, as_payer, method_id, association_id,
//  schedule_id, posting_uuid, charge_key, payment_uuid, mail_id, link_id, staff_id) must name an
//  object of the staff's firm. Sets *scoped to the request to run (new reference: a copy with
//  "firm" and "staff" ("NAME (#ID)") set and "staff_session" and "csrf" removed) and returns NULL,
//  or returns the reply to give ("not found", or a store error) with *scoped NULL.
json_t *ml_staff_scope (ml_staff_t *self, const ml_actor_t *actor, bool takes_firm,
                        const json_t *request, json_t **scoped);

//  The ids of objects a successful state change acted on, as "payer_id=3 posting_uuid=..."
//  for staff_audit, from the request and the reply (a new object's id). Writes into object.
void ml_staff_scope_object (const json_t *request, const json_t *reply, char *object, size_t size);

//  Limit a report that lists several firms (status) to the staff's firm, in place.
void ml_staff_scope_reply (const ml_actor_t *actor, const char *op, json_t *reply);

void ml_staff_test (bool verbose);

#endif
