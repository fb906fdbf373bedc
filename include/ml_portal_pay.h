/*  ml_portal_pay: payers pay their invoices (and, where the firm allows it, a trust deposit)
    from the portal (docs/portal-api.md, "Paying").

    A payer op never names a payer: the payer is the session's (ml_actor_t). Every invoice
    and matter of a request is checked against the payer's associations here, with the same
    scope as portal-invoices; anything outside it is "not found". The payment itself goes
    through the staff payment's own code (ml_payments' "payment" op with the payer fixed),
    so it is charged, held, posted and receipted exactly once like every other payment. A
    card typed in the browser reaches the core only as the processor's token (hosted
    fields, docs/processor.md); the core asks the processor what card that token names
    (ml_processor_token, through the processor's worker) and keeps the processor's brand,
    last four and expiry, not the browser's. A double submit pays once: each form carries a random
    pay_key, and a key already used answers with the payment it made.

    Ops: portal-pay-form, portal-pay (payer), firm-portal (operator).
*/
#ifndef ML_PORTAL_PAY_H_INCLUDED
#define ML_PORTAL_PAY_H_INCLUDED

#include "ml_logins.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct _ml_portal_pay_t ml_portal_pay_t;

//  Create the tables if needed. Every part is borrowed and outlives this object; payments
//  may be NULL (paying is then refused); processor may be NULL (new cards are then refused).
//  NULL + error on failure.
ml_portal_pay_t *ml_portal_pay_new (ml_store_t *store, ml_payers_t *payers, ml_payments_t *payments,
                                    ml_logins_t *logins, ml_processor_t *processor, char *error,
                                    size_t error_size);

//  Ask the processor through worker (borrowed; ml_processor_actor) what card a new card's
//  token names, so this object's thread never waits for the processor; the request then
//  waits ({"ok": true, "waiting_for": ID}) and its reply comes from ml_portal_pay_ready.
//  Without a worker the processor is asked inline (the selftests). Destroy the worker first.
void ml_portal_pay_set_worker (ml_portal_pay_t *self, zactor_t *worker);

//  Whether call (a worker's "DONE") is one of this object's.
bool ml_portal_pay_owns (ml_portal_pay_t *self, const ml_processor_call_t *call);

//  The worker answered call (one of this object's): go on with the request it belongs to.
//  Its reply joins the ready ones. Returns 1. deliver_firm as for ml_payments_execute.
int ml_portal_pay_completed (ml_portal_pay_t *self, ml_processor_call_t *call, char *deliver_firm,
                             size_t size);

//  The next reply made for a request that was told to wait, with its ID in waiter (new
//  reference), or NULL. A reply may itself say {"ok": true, "waiting_for": ID2}: the
//  request now waits for the payment ID2 (ml_payments_ready answers it).
json_t *ml_portal_pay_ready (ml_portal_pay_t *self, char *waiter, size_t size);

void ml_portal_pay_destroy (ml_portal_pay_t **self_p);

//  Run op for actor (already allowed by ml_admin's table). Returns the reply (new
//  reference; {"ok": true, "waiting_for": ID} when the payment waits for the processor's
//  worker: the caller answers later with ml_portal_pay_public of the ready reply), or NULL
//  when op is not this class's. deliver_firm as for ml_payments_execute.
json_t *ml_portal_pay_execute (ml_portal_pay_t *self, const char *op, const json_t *request,
                               const ml_actor_t *actor, char *deliver_firm, size_t size);

//  What a payer may see of a payment reply (reply is taken; returns a new reference): the
//  payment's id, status, card brand and last four, time, and per charge its account type,
//  amount, currency, status, reason and posting. Never an account number, merchant account,
//  fee, staff name or A/R message.
json_t *ml_portal_pay_public (json_t *reply);

void ml_portal_pay_test (bool verbose);

#endif
