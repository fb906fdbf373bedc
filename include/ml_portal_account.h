/*  ml_portal_account: the signed-in payer's own account in the portal: saved payment
    methods (list, remove, choose the default; an expired card is marked by the core's date),
    the history of the payer's payments whatever their source (portal, payment link, the
    firm's staff, Auto-Pay) with each charge and what became of it (approved, declined,
    refunded, voided, charged back; its posting), a receipt per payment, and the payer's
    Auto-Pay schedules with their next run.

    Every op acts for the payer of the actor (the session), never for an id taken from the
    request: an object of another payer, or of nobody, answers "not found". The A/R message
    is never read. ml_admin decides who may call the ops and enforces CSRF on the changes.

    Ops (docs/portal-api.md): portal-methods, portal-method-remove, portal-method-default,
    portal-history, portal-receipt, portal-autopay.
*/
#ifndef ML_PORTAL_ACCOUNT_H_INCLUDED
#define ML_PORTAL_ACCOUNT_H_INCLUDED

#include "ml_autopay.h"
#include "ml_logins.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

//  Run one of the ops above for actor (a payer; any other actor gets "not found"). store is
//  the core's; autopay may be NULL (no schedules are then listed). Returns the reply (new
//  reference), or NULL when op is not one of these.
json_t *ml_portal_account_execute (ml_store_t *store, ml_autopay_t *autopay, const char *op,
                                   const json_t *request, const ml_actor_t *actor);

void ml_portal_account_test (bool verbose);

#endif
