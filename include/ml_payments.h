/*  ml_payments: card payments taken by the core, from selection to postings.

    A payment is a selection of lines (invoices to pay, matters' trust ledgers to deposit
    into), a payer, and a card (a saved method's token, or a card tokenized now). The core
    splits it by deposit account: invoice lines go to the firm's OPERATING account and trust
    lines to its TRUST account, each as a charge of its own, so trust and operating money
    never share a charge (DESIGN.md rule 2) and no fee is ever taken from a trust deposit
    (rule 4: the store refuses it). Every charge is stored, with its idempotency key and the
    UUID of the posting it will make, before the processor is called; an approved charge
    makes exactly one posting, which travels to the matter system like any other. A charge
    whose outcome is unknown (a timeout) is resolved later by asking the processor with the
    same key, never assumed failed.

    Accounts belong here too: each is typed TRUST or OPERATING for good (the store refuses
    any change), with its currency and the processor's merchant account.

    The class is split over core/pay/ (a file per concern, sharing core/pay/ml_pay_internal.h).

    Admin ops: account-add, account-list, payment, payment-show, payments, link-create,
    link-pay, link-list, link-cancel, firm-contact.
*/
#ifndef ML_PAYMENTS_H_INCLUDED
#define ML_PAYMENTS_H_INCLUDED

#include "ml_lease.h"
#include "ml_mailer.h"
#include "ml_msg.h"
#include "ml_payers.h"
#include "ml_processor.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct _ml_payments_t ml_payments_t;

//  Create the tables if needed. store, payers, processor and mailer are borrowed (processor
//  may be NULL: payments are then refused with a message saying none is configured; mailer
//  may be NULL: no mail is queued).
ml_payments_t *ml_payments_new (ml_store_t *store, ml_payers_t *payers, ml_processor_t *processor,
                                ml_mailer_t *mailer, char *error, size_t error_size);

//  Queue the mail owed for what happened: a receipt to the payer for each approved charge
//  (never showing the A/R message, which is for the firm's ledger), and a "posting
//  rejected" notice to the firm's contact address for each rejected posting. A sweep, keyed
//  by the mail's dedupe key, so a notice is never lost or doubled whatever stopped when.
//  Returns the number of mails queued.
int ml_payments_notify (ml_payments_t *self);

//  Destroy. Idempotent; nulls the caller's pointer.
void ml_payments_destroy (ml_payments_t **self_p);

//  Make processor calls through worker (ml_processor_actor over the processor given to
//  ml_payments_new; borrowed), so this object's thread never waits for the processor.
//  Without a worker (the selftests) calls are made inline, and every reply is final at once.
//  With one, an op that needs the processor (payment, link-pay, refund, void) stores what it
//  must first, asks the worker, and returns {"ok": true, "waiting_for": ID}: the caller keeps
//  its client under ID and sends the reply ml_payments_ready gives for ID later. That
//  member never reaches a client.
void ml_payments_set_worker (ml_payments_t *self, zactor_t *worker);

//  The portal's public address (portal/public_url, "" for none): a payment link's e-mail then
//  carries url/link?token=TOKEN, the payer's page (docs/web.md, "Payment links").
void ml_payments_set_public_url (ml_payments_t *self, const char *url);

//  The worker answered call (received as "DONE" with its pointer, which this object owns):
//  record its outcome (an approved charge with its posting), go on with the request it
//  belongs to. Returns how many charges or reversals reached a final outcome; deliver_firm
//  as for ml_payments_execute.
//  Before ml_payments_completed of a round's answers (calls as received; others' calls and
//  NULL are skipped): what recording them reads is read for all of them in one round trip
//  (PostgreSQL, while the store groups its commits), kept until each is recorded or the
//  round ends (ml_payments_release).
void ml_payments_prepare (ml_payments_t *self, ml_processor_call_t *const *calls, size_t count);
int ml_payments_completed (ml_payments_t *self, ml_processor_call_t *call, char *deliver_firm,
                           size_t size);

//  While the store groups its commits (ml_db_group_begin), calls for the worker are held
//  back: after the group's commit, committed true sends them; false (the commit failed, what
//  they depended on is undone) drops them and fails the requests that waited for them.
void ml_payments_release (ml_payments_t *self, bool committed);

//  For the Auto-Pay test clock only: wait, blocking this thread for at most timeout_ms, for
//  the answers to every call asked, and record them. Returns how many were answered.
int ml_payments_drain (ml_payments_t *self, int timeout_ms, char *deliver_firm, size_t size);

//  The next reply made for a request that was told to wait (new reference), with its ID in
//  waiter; NULL when there is none.
json_t *ml_payments_ready (ml_payments_t *self, char *waiter, size_t size);

//  Run one admin op of this class. Returns the reply (new reference), or NULL when op is not
//  one of this class's. When postings were created, deliver_firm is set to their firm.
json_t *ml_payments_execute (ml_payments_t *self, const char *op, const json_t *request,
                             char *deliver_firm, size_t size);

//  Resolve charges (and refunds, voids) whose outcome is unknown, or left pending by a core
//  that stopped mid-call, by a lookup with the same idempotency key (then the operation
//  itself, same key, if the processor has none). Calls already asked are not asked again.
//  Returns the number that reached a final state now (always 0 with a worker: the answers
//  come through ml_payments_completed); deliver_firm as above (the firm of the last
//  posting made).
int ml_payments_resolve (ml_payments_t *self, char *deliver_firm, size_t size);

//  Several nodes (docs/multinode.md): resolve only the charges and reversals of firms for
//  which owned (arg, firm_id) is true, and one left pending only once it is older than
//  pending_ms (the longest a processor call can take, with margin): until then the node that
//  made it may still be waiting for its answer, and a lookup beside that call could make the
//  processor see the operation twice. Without it, every firm's, pending or not.
void ml_payments_set_owner (ml_payments_t *self, ml_firm_owned_fn *owned, void *arg,
                            int64_t pending_ms);

//  Auto-apply: allocate amount_text (a decimal amount of currency, or of the invoices' one
//  currency when currency is NULL) over the open invoices of a client or matter, oldest
//  first, never above an invoice's available balance. Fills lines (ML_MAX_LINES room),
//  *count, *amount, client_number (64 bytes) and chosen (the currency, 4 bytes). Returns
//  NULL, or the error reply (new reference) when the amount cannot be allocated: no open
//  invoices, mixed currencies without a choice, or a surplus (refused, nothing recorded).
json_t *ml_payments_allocate (ml_store_t *store, const char *firm_id, const char *client,
                              const char *matter, const char *amount_text, const char *currency,
                              ml_line_t *lines, size_t *count, int64_t *amount, char *client_number,
                              char *chosen);

//  pay's idempotency key: request member "pay_key" (1 to 80 letters, digits, '-', '_', '.',
//  ':'). Without one, returns NULL and leaves posting_uuid empty. With one, the posting's
//  UUID follows from firm and key (posting_uuid, 37 bytes): returns NULL when no posting has
//  it yet (the caller records its posting under that UUID), else the reply to give (new
//  reference): the first result, with "repeated": true, or an error when the key is
//  malformed or was used for another amount. Nothing is recorded either way.
json_t *ml_payments_pay_once (ml_store_t *store, const char *firm_id, const json_t *request,
                              char *posting_uuid);

//  Auto-Pay: charge one run of a schedule (ml_autopay) through the same checks and charge
//  path as a staff payment, with source "autopay". lines are [{"invoice": NUMBER,
//  "amount_minor": N}] (borrowed); the money goes into account_number, which must be the
//  firm's OPERATING account in the invoices' currency. payment_uuid is the run's own (stored
//  with the run before this call): when a payment with it already exists, it is returned as
//  it stands and nothing is charged again (ml_payments_resolve settles it). Returns
//  {"ok": true, "payment": {...}} or an error reply (new reference).
json_t *ml_payments_autopay (ml_payments_t *self, const char *firm, int64_t payer_id,
                             int64_t method_id, const char *account_number, const json_t *lines,
                             const char *ar_message, const char *payment_uuid, char *deliver_firm,
                             size_t size);

void ml_payments_test (bool verbose);

#endif
