/*  ml_payers: the people who pay a firm, what they may see, and how staff like to search.

    A payer is a firm's client or someone paying for them. The core keeps payers in its own
    store, with their saved payment methods (the processor's token and what staff need to
    recognise a card, never a card number) and their associations: the clients, matters or
    invoices of the firm's matter database that the payer may see and pay. The e-mail is an
    attribute, not a key, so it can be corrected without breaking anything that refers to
    the payer. Each staff user's default search field lives here too.

    Admin ops: payer-add, payer-edit, payer-list, payer-show, method-add, method-remove,
    association-list, association-remove, staff-default (ml_payers_execute). Every write is
    one transaction; every argument is outside input and checked before use.
*/
#ifndef ML_PAYERS_H_INCLUDED
#define ML_PAYERS_H_INCLUDED

#include "ml_msg.h"
#include "ml_db.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _ml_payers_t ml_payers_t;

//  Create the tables if needed (borrowed connection; the store outlives this object). NULL + error
//  on failure.
ml_payers_t *ml_payers_new (ml_db_t *db, char *error, size_t error_size);

//  Destroy the object (the tables and the connection stay). Idempotent; nulls the
//  caller's pointer.
void ml_payers_destroy (ml_payers_t **self_p);

//  Run one admin op that belongs to this class; returns the reply (new reference, built with
//  ml_admin_ok / ml_admin_error from include/ml_admin.h, arguments read with ml_admin_argument),
//  or NULL when op is not one of this class's ops.
//  So the admin API can offer these ops without knowing them: it tries this class first
//  and falls back to its own ops on NULL.
json_t *ml_payers_execute (ml_payers_t *self, const char *op, const json_t *request);

//  Ask ahead (ml_db_prefetch) for what payer-show of payer_id reads: a payment that names a
//  payer reads them with the invoices it pays, in one round trip on PostgreSQL.
void ml_payers_prefetch_show (ml_payers_t *self, int64_t payer_id);

//  method-add for a card kept only for the payment it makes (the payer portal's new card
//  not to be saved, removed after the payment): the same checks and reply, but not the limit
//  of saved methods, so a payer who has the most can still pay with another card. Not an op.
json_t *ml_payers_method_add_once (ml_payers_t *self, const json_t *request);

//  NULL when email is a well-formed address that no other payer of the payer's firm uses,
//  else the error reply (new reference): for an e-mail change that waits for confirmation.
json_t *ml_payers_email_check (ml_payers_t *self, int64_t payer_id, const char *email);

//  A payer's firm and scope for searches: *scope becomes {"clients": [client numbers], "matters":
//  [matter numbers], "invoices": [invoice numbers]} (new reference). Returns 1 found, 0 unknown
//  payer, -1 store error. *scope is NULL unless 1 is returned. The scope is read once per search,
//  so what the agent may answer and what the core lets through come from the same associations.
int ml_payers_scope (ml_payers_t *self, int64_t payer_id, char *firm_id, size_t firm_size,
                     json_t **scope);

//  True if an item (a search answer row) is inside the scope: its client_number is in clients, or
//  its matter_number in matters, or (invoice items, kind 'I', only) its invoice_number in invoices.
//  Used by the core to check again every row the agent returns. The agent is not trusted to filter:
//  a row outside the scope never reaches a payer. An empty number never matches, and a NULL scope
//  allows nothing.
bool ml_payers_scope_allows (const json_t *scope, const ml_item_t *item);

//  Record an association after the core found its target through a search (found is the row the
//  search returned; level "client", "matter" or "invoice" decides which of its numbers are kept).
//  Returns the reply JSON ({"ok":true,"association":{...}} or an error reply). Taking the row the
//  search returned, not numbers typed by staff, means a payer is only ever associated with
//  something that exists in the firm's matter database. staff is the staff user who made the
//  association (NULL or "" when unknown).
json_t *ml_payers_association_record (ml_payers_t *self, int64_t payer_id, const char *level,
                                      const ml_item_t *found, const char *staff);

//  A staff user's default search field, or NULL if none set (borrowed until the next call).
//  Also NULL when the store fails (logged): a search then just has no default.
const char *ml_payers_staff_default (ml_payers_t *self, const char *staff);

void ml_payers_test (bool verbose);

#endif
