/*  ml_admin: the core's admin API, one JSON request in, one JSON reply out.

    Requests are objects with an "op" and its arguments; replies are {"ok": true, ...} or
    {"ok": false, "error": "..."} with an error a person can act on. Every argument is
    outside input: checked for type and length before use. docs/admin-api.md lists the ops.
*/
#ifndef ML_ADMIN_H_INCLUDED
#define ML_ADMIN_H_INCLUDED

#include "ml_autopay.h"
#include "ml_logins.h"
#include "ml_mailer.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_portal_pay.h"
#include "ml_staff.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

//  Largest admin request accepted, in bytes.
#define ML_ADMIN_MAX_REQUEST (64 * 1024)

//  What a request asks of the running core besides its reply.
typedef struct {
    //  A posting was created or re-queued: deliver this firm's outbox now ("" if none).
    char deliver_firm[64];
    //  A search must run in this firm's matter database first: send search (owned by the
    //  caller from now on) to its agent, and make the reply from the answer and context
    //  (also the caller's) with ml_finder_reply.
    char search_firm[64];
    ml_msg_t *search;
    json_t *context;
    //  The request was forwarded by another core node (ml_admin_api_execute_forwarded).
    bool forwarded;
} ml_admin_effects_t;

//  The classes whose ops the admin API offers (payments, mailer, autopay, logins and portal_pay may
//  be NULL).
typedef struct {
    ml_store_t *store;
    ml_payers_t *payers;
    ml_payments_t *payments;
    ml_mailer_t *mailer;
    ml_autopay_t *autopay;
    ml_logins_t *logins;
    ml_portal_pay_t *portal_pay; //  may be NULL: no paying from the portal
    ml_staff_t *staff;           //  may be NULL: no staff accounts
} ml_admin_parts_t;

//  Execute a request of the operator (the admin socket). Returns the reply (new reference),
//  or NULL when effects->search is set and the reply waits for the agent's answer.
json_t *ml_admin_execute (const ml_admin_parts_t *parts, const json_t *request,
                          ml_admin_effects_t *effects);

//  Execute a request that came in on the API socket (matterlink-web). It runs as the payer
//  of its "session", or as the staff member of its "staff_session", when the core finds
//  that session live, else as anonymous; an op the actor may not call answers "not found"
//  (or "session ended" when the request named a session that is no longer live and the op
//  is a payer's or a staff member's). Returns the reply (new reference), or NULL when a
//  staff member's search waits for the agent (effects->search set, as for the operator).
json_t *ml_admin_api_execute (const ml_admin_parts_t *parts, const json_t *request,
                              ml_admin_effects_t *effects);

//  ml_admin_api_execute for a request another core node forwarded (docs/multinode.md): that
//  node recorded a staff member's ask that waits for the agent already, so it is not recorded
//  in the staff audit again.
json_t *ml_admin_api_execute_forwarded (const ml_admin_parts_t *parts, const json_t *request,
                                        ml_admin_effects_t *effects);

//  True when op only reads the store and needs nothing of the running core, so the API
//  may answer it on a reader thread (ml_readers); false for every other op and for NULL.
bool ml_admin_op_reads (const char *op);

//  Helpers for every op handler, so all replies and argument checks look alike.
//  An error reply {"ok": false, "error": text} (new reference).
json_t *ml_admin_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  A store failure inside an op: logged once as "WHO: WHAT failed: the database's message",
//  and the reply a client gets (new reference): the core store failed, see the log.
json_t *ml_admin_store_failed (ml_db_t *db, const char *who, const char *what);

//  The reply when ml_store_firm found no firm: "unknown firm 'FIRM'", or, when the store
//  could not be read (logged already), that the core store failed.
json_t *ml_admin_unknown_firm (ml_store_t *store, const char *firm);

//  End an op's transaction by its reply: commit a success (a failed commit becomes the
//  store-failure reply), roll back anything else. Takes reply, returns the reply to send.
json_t *ml_admin_commit (ml_db_t *db, const char *who, json_t *reply);

//  Mark body (or a new empty object when NULL) as a success reply; takes the reference.
json_t *ml_admin_ok (json_t *body);

//  Read an optional string argument of at most max bytes. Returns the value (borrowed),
//  NULL when absent, and sets problem (if not already set) when present but not a string,
//  too long, or holding a NUL byte, or when a free-text member (ar_message, payer_name, name,
//  text, note, memo, description, message, staff) holds a card-like number (ml_text.h).
//  Once problem is set, later calls return NULL, so
//  handlers read every argument and then report the first problem.
const char *ml_admin_argument (const json_t *request, const char *key, size_t max, char *problem,
                               size_t size);

//  When a request names both a client and a matter, the matter must be that client's: an
//  error reply saying whose it is (new reference), or NULL when they belong together, when
//  either is NULL, or when the core's replica does not know the matter (the caller's own
//  "no open invoices" message then says so).
json_t *ml_admin_client_matter_check (ml_store_t *store, const char *firm, const char *client,
                                      const char *matter);

//  Every member of object must be one of members (names separated by single spaces); "op"
//  and "staff" (who is asking) are always allowed in a request. Returns NULL, or an error
//  reply naming the first unknown member and what is taken: a misspelled optional member
//  is never silently ignored. what names the object in the message ("a pay request").
json_t *ml_admin_members (const json_t *object, const char *members, const char *what);

void ml_admin_test (bool verbose);

#endif
