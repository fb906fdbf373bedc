/*  ml_pay_internal: what the files of the payments class (core/pay/) share: the object,
    the payment being built, processor calls and the requests that wait for them. Private
    to core/pay/; the API is include/ml_payments.h. */
#ifndef ML_PAY_INTERNAL_H_INCLUDED
#define ML_PAY_INTERNAL_H_INCLUDED

#include "ml_payments.h"
#include "ml_admin.h"
#include "ml_alloc.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"
#include "ml_service.h"

#include "ml_store.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <time.h>
#include <czmq.h>

struct _ml_payments_t {
    ml_store_t *store;         //  borrowed
    ml_db_t *db;               //  the store's connection
    ml_payers_t *payers;       //  borrowed
    ml_processor_t *processor; //  borrowed, may be NULL
    ml_mailer_t *mailer;       //  borrowed, may be NULL
    //  Processor calls: made by the worker when there is one (the core's), so the thread
    //  that owns this object never waits for the processor; made inline otherwise.
    zactor_t *worker; //  borrowed, may be NULL
    zhashx_t *calls;  //  processor key -> ml_pay_call_t asked and not answered yet (owned)
    //  Calls asked while the store groups its commits (ml_db_group_begin): they go to the
    //  worker once what they depend on is committed (ml_payments_release), not before.
    zlistx_t *unsent; //  ml_pay_call_t, borrowed from calls
    zhashx_t *flows;  //  waiter id -> ml_pay_flow_t: requests waiting for the processor (owned)
    //  What recording the round's answers reads, read for all at once (ml_payments_prepare):
    //  "operation:key" -> the rows of the operation's source query (owned, no destructor),
    //  taken by ml_pay_record, the rest dropped at the round's end (ml_payments_release).
    zhashx_t *known;
    zlistx_t *ready;      //  ml_pay_ready_t: the replies of those requests, once made (owned)
    char public_url[512]; //  portal/public_url: link mails carry PUBLIC_URL/link?token= ("": none)
    ml_firm_owned_fn *owned; //  several nodes: which firms' operations this node resolves
    void *owned_arg;
    int64_t pending_ms; //  with owned: a pending operation is resolved only this old
};

//  One charge being assembled: the lines of one account.
typedef struct {
    const char *type; //  "OPERATING" or "TRUST"
    char currency[4];
    int64_t amount;
    json_t *lines; //  [[kind, reference, amount_minor], ...]
} ml_pay_group_t;

//  Everything a payment needs before a card is charged: whose money, for what, into which
//  accounts. Made from a staff request, or again from a payment link when it is paid (so
//  the balances are checked again then).
typedef struct {
    char firm[64];
    char staff[65];
    int64_t payer_id;
    char payer_name[256];
    char payer_email[256];
    char receipt_email[256];
    char ar_message[1001];
    char client_number[64];
    ml_pay_group_t groups[2]; //  [0] invoices into OPERATING, [1] trust deposits into TRUST
    json_t *accounts[2];
    json_t *payer; //  the saved payer (payer-show), when payer_id is set
} ml_pay_order_t;

//  What a processor call is for, so its answer is recorded where it belongs.
typedef enum { ML_PAY_FOR_TOKEN, ML_PAY_FOR_CHARGE, ML_PAY_FOR_REVERSAL } ml_pay_purpose_t;

//  A processor call asked by this class: the call itself first, since the worker hands
//  back the call's address. A lookup (call.lookup) carries the operation to make when
//  the processor knows nothing under the key.
typedef struct {
    ml_processor_call_t call;
    ml_pay_purpose_t purpose;
    char flow[ML_PROCESSOR_KEY_MAX + 1]; //  the waiting request it belongs to ("" for none)
} ml_pay_call_t;

//  A request that waits for the processor: a payment (tokenize, then its charges), a
//  payment link being paid (the same), or a refund or void.
typedef enum { ML_PAY_FLOW_PAYMENT, ML_PAY_FLOW_LINK, ML_PAY_FLOW_REVERSAL } ml_pay_flow_kind_t;

typedef struct {
    char id[ML_PROCESSOR_KEY_MAX + 1]; //  the payment's UUID, or the reversal's key
    ml_pay_flow_kind_t kind;
    ml_pay_order_t order;
    json_t *request; //  payment, link: the request to check again, never with the card
    char payment_uuid[37];
    char link_id[40];
    char token[ML_PROCESSOR_ID_MAX + 1];
    char brand[16];
    char last4[5];
    //  save_method: the method the card was saved as, or why it was not (the reply says so)
    int64_t method_id;
    char method_error[256];
    int outstanding; //  charges asked and not answered yet
    bool waiting;    //  its request was answered "waiting_for": the reply goes to ready
    json_t *reply;   //  once finished
} ml_pay_flow_t;

typedef struct {
    char waiter[ML_PROCESSOR_KEY_MAX + 1];
    json_t *reply;
} ml_pay_ready_t;

//  What the core records about a charge and about a reversal of one (refund, void,
//  chargeback): both are a processor operation under a stored key that, once approved, makes
//  exactly one posting, whose UUID was fixed when the row was stored. A reversal's posting
//  names the charge's posting it reverses; its lines are what it takes back.
typedef struct {
    const char *name;   //  for logs
    const char *update; //  (status, processor_txn, reason, updated_at, key)
    const char *source; //  (key) -> the posting's fields
} ml_pay_operation_t;

#define ML_PAY_CHARGE_SQL                                                                          \
    "SELECT c.charge_key, c.account_number, c.account_type, c.merchant_account, c.currency,"       \
    " c.amount_minor, c.fee_minor, c.status, c.processor_txn, c.reason, c.posting_uuid,"           \
    " p.token FROM charge c JOIN payment p ON p.payment_uuid = c.payment_uuid"

extern const ml_pay_operation_t ml_pay_charge_operation;
extern const ml_pay_operation_t ml_pay_reversal_operation;

//  Shared between the files of the class; each is described where it is defined.
void ml_pay_flow_destroy (ml_pay_flow_t **self_p);
bool ml_pay_integer_column (const char *name);
json_t *ml_pay_rows (ml_payments_t *self, const char *sql, const char *picture, const char *text);
json_t *ml_pay_store_failed (ml_payments_t *self, const char *doing);
int ml_pay_completed (ml_payments_t *self, ml_pay_call_t *call, char *deliver_firm, size_t size);
json_t *ml_pay_account_add (ml_payments_t *self, const json_t *request);
//  Ask ahead (ml_db_prefetch) for what ml_pay_account of the firm reads.
void ml_pay_accounts_prefetch (ml_payments_t *self, const char *firm);
json_t *ml_pay_account (ml_payments_t *self, const char *firm, const char *type,
                        const char *currency);
json_t *ml_pay_explicit_line (ml_payments_t *self, const char *firm, const json_t *line,
                              ml_pay_group_t *invoices, ml_pay_group_t *trust, char *client_number);
json_t *ml_pay_saved_method (const json_t *payer, const json_t *method_id, char *token, char *brand,
                             char *last4);
int ml_pay_record (ml_payments_t *self, const ml_pay_operation_t *operation, const char *key,
                   ml_processor_status_t status, const ml_processor_result_t *result,
                   char *deliver_firm, size_t size);
//  Whether an answer to call is recorded (ml_pay_record), and as which operation.
bool ml_pay_records (const ml_pay_call_t *call, const ml_pay_operation_t **operation);
ml_pay_call_t *ml_pay_call_new (ml_pay_purpose_t purpose, const char *key, const char *flow);
ml_pay_call_t *ml_pay_charge_call (const json_t *charge, const char *flow);
int ml_pay_submit (ml_payments_t *self, ml_pay_call_t *call, char *deliver_firm, size_t size);
json_t *ml_pay_payment_json (ml_payments_t *self, const char *payment_uuid);
void ml_pay_order_init (ml_pay_order_t *order);
void ml_pay_order_free (ml_pay_order_t *order);
json_t *ml_pay_order_lines (const ml_pay_order_t *order);
json_t *ml_pay_order_parse (ml_payments_t *self, const json_t *request, ml_pay_order_t *order);
int ml_pay_hold (ml_payments_t *self, const char *firm, const char *key, const json_t *lines);
json_t *ml_pay_order_charge (ml_payments_t *self, const ml_pay_order_t *order, const char *source,
                             const char *payment_uuid, const char *token, const char *brand,
                             const char *last4, ml_pay_flow_t *flow, char *deliver_firm,
                             size_t size);
ml_pay_flow_t *ml_pay_flow_new (ml_pay_flow_kind_t kind);
//  The flow is finished with reply (stolen): given now or when asked (ml_pay_flow_answer).
void ml_pay_flow_end (ml_payments_t *self, ml_pay_flow_t *flow, json_t *reply);
json_t *ml_pay_flow_answer (ml_payments_t *self, ml_pay_flow_t *flow);
json_t *ml_pay_reversal_reply (ml_payments_t *self, const char *key);
void ml_pay_flow_done (ml_payments_t *self, ml_pay_flow_t *flow);
void ml_pay_flow_tokenized (ml_payments_t *self, ml_pay_flow_t *flow,
                            const ml_processor_call_t *made, char *deliver_firm, size_t size);
json_t *ml_pay_flow_start (ml_payments_t *self, ml_pay_flow_t *flow, const json_t *request,
                           char *deliver_firm, size_t size);
json_t *ml_pay_payment (ml_payments_t *self, const json_t *original, char *deliver_firm,
                        size_t size);
json_t *ml_pay_selection (ml_payments_t *self, const char *op, const json_t *request);
json_t *ml_pay_with_selection (ml_payments_t *self, const json_t *request, json_t **reply);
void ml_pay_selection_done (ml_payments_t *self, const json_t *request);
json_t *ml_pay_link_row (ml_payments_t *self, const char *column, const char *value);
void ml_pay_lines_text (zchunk_t *text, const json_t *lines, const char *currency);
char *ml_pay_chunk_text (zchunk_t *chunk);
json_t *ml_pay_link_create (ml_payments_t *self, const json_t *original);
json_t *ml_pay_link_pay (ml_payments_t *self, const json_t *request, char *deliver_firm,
                         size_t size);
json_t *ml_pay_links (ml_payments_t *self, const json_t *request);
json_t *ml_pay_link_cancel (ml_payments_t *self, const json_t *request);
json_t *ml_pay_link_view (ml_payments_t *self, const json_t *request);
json_t *ml_pay_link_pay_page (ml_payments_t *self, const json_t *request, char *deliver_firm,
                              size_t size);
json_t *ml_pay_firm_contact (ml_payments_t *self, const json_t *request);
bool ml_pay_unbooked (ml_payments_t *self, const char *posting_uuid, char *moved, size_t size);
json_t *ml_pay_reverse (ml_payments_t *self, const char *kind, const json_t *request,
                        char *deliver_firm, size_t size);
json_t *ml_pay_reallocate (ml_payments_t *self, const json_t *request, char *deliver_firm,
                           size_t size);

#endif
