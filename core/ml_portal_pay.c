/*  ml_portal_pay: payers pay from the portal. See include/ml_portal_pay.h and
    docs/portal-api.md. */
#include "ml_portal_pay.h"
#include "ml_table.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <time.h>

struct _ml_portal_pay_t {
    ml_store_t *store;
    ml_db_t *db;
    ml_payers_t *payers;
    ml_payments_t *payments;
    ml_logins_t *logins;
    ml_processor_t *processor; //  without a worker: token lookups made inline (selftests)
    zactor_t *worker;          //  the processor's worker, or NULL
    zlistx_t *flows;           //  s_flow_t: requests waiting for a token lookup
    zlistx_t *ready;           //  s_ready_t: their replies, made
};

//  A portal-pay request whose new card's token is being looked up at the processor.
typedef struct {
    ml_processor_call_t call; //  first: the worker hands back this pointer
    char id[40];              //  what the request waits for (waiting_for)
    ml_actor_t actor;
    json_t *request;
} s_flow_t;

typedef struct {
    char id[40];
    json_t *reply;
} s_ready_t;

static void s_flow_destroy (s_flow_t **self_p)
{
    if (*self_p) {
        json_decref ((*self_p)->request);
        sodium_memzero (*self_p, sizeof (s_flow_t));
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_ready_destroy (s_ready_t **self_p)
{
    if (*self_p) {
        json_decref ((*self_p)->reply);
        free (*self_p);
        *self_p = NULL;
    }
}

static const char *const s_schema[] = {
    //  The idempotency of portal payments: one payment per payer and form key.
    "CREATE TABLE IF NOT EXISTS portal_payment ("
    " payer_id INTEGER NOT NULL, pay_key TEXT NOT NULL, payment_uuid TEXT NOT NULL,"
    " created_at TEXT NOT NULL, PRIMARY KEY (payer_id, pay_key))",
    //  What a firm lets payers do on the portal (firm-portal); no row: nothing extra.
    "CREATE TABLE IF NOT EXISTS portal_firm ("
    " firm_id TEXT PRIMARY KEY, trust_deposits INTEGER NOT NULL DEFAULT 0)"};

#define S_MAX_SELECTED 100 //  invoices in one portal payment

ml_portal_pay_t *ml_portal_pay_new (ml_store_t *store, ml_payers_t *payers, ml_payments_t *payments,
                                    ml_logins_t *logins, ml_processor_t *processor, char *error,
                                    size_t error_size)
{
    assert (store && payers && logins);
    if (ml_store_schema (ml_store_db (store), s_schema, sizeof s_schema / sizeof s_schema[0],
                         "portal payment tables", error, error_size) != 0)
        return NULL;
    ml_portal_pay_t *self = calloc (1, sizeof (ml_portal_pay_t));
    assert (self);
    self->store = store;
    self->db = ml_store_db (store);
    self->payers = payers;
    self->payments = payments;
    self->logins = logins;
    self->processor = processor;
    self->flows = zlistx_new ();
    zlistx_set_destructor (self->flows, (zlistx_destructor_fn *)s_flow_destroy);
    self->ready = zlistx_new ();
    zlistx_set_destructor (self->ready, (zlistx_destructor_fn *)s_ready_destroy);
    return self;
}

void ml_portal_pay_destroy (ml_portal_pay_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zlistx_destroy (&(*self_p)->flows);
        zlistx_destroy (&(*self_p)->ready);
        free (*self_p);
        *self_p = NULL;
    }
}

void ml_portal_pay_set_worker (ml_portal_pay_t *self, zactor_t *worker)
{
    assert (self);
    self->worker = worker;
}

bool ml_portal_pay_owns (ml_portal_pay_t *self, const ml_processor_call_t *call)
{
    return self && call && call->context == self;
}

static bool s_integer_column (const char *name)
{
    return streq (name, "trust_deposits") || streq (name, "payer_id") || streq (name, "n");
}

static json_t *s_store_failed (const char *doing)
{
    ml_log (ML_LOG_ERROR, "portal-pay: the core store failed (%s)", doing);
    return ml_admin_error ("the payment service failed; nothing was charged; please try again");
}

static const char *s_text (const json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

static bool s_listed (const json_t *list, const char *number)
{
    size_t index;
    json_t *value;
    json_array_foreach (list, index, value)
    {
        if (*number && streq (json_string_value (value), number))
            return true;
    }
    return false;
}

//  -1 store error, else whether the firm lets payers deposit into trust from the portal.
static int s_trust_allowed (ml_portal_pay_t *self, const char *firm)
{
    json_t *rows = ml_store_rows (
        ml_db_query (self->db, "SELECT trust_deposits FROM portal_firm WHERE firm_id = ?", "s",
                     firm),
        s_integer_column);
    int allowed =
        rows
            ? json_integer_value (json_object_get (json_array_get (rows, 0), "trust_deposits")) == 1
            : -1;
    json_decref (rows);
    return allowed;
}

//  What the payer may pay: portal-invoices's items and trust ledgers (the one place that
//  applies the associations to the replica), and the payer's scope for matters.
typedef struct {
    json_t *listing; //  portal-invoices's reply (rows as arrays)
    json_t *items;   //  its items as objects, by column name (s_reach_objects)
    json_t *trust;   //  its trust ledgers as objects
    json_t *scope;   //  {"clients", "matters", "invoices"}
    json_t *payer;   //  payer-show's payer (with its methods)
    char firm[64];
} s_reach_t;

static void s_reach_free (s_reach_t *reach)
{
    json_decref (reach->listing);
    json_decref (reach->items);
    json_decref (reach->trust);
    json_decref (reach->scope);
    json_decref (reach->payer);
    memset (reach, 0, sizeof *reach);
}

//  Returns NULL, or the error reply.
static json_t *s_reach (ml_portal_pay_t *self, const ml_actor_t *actor, s_reach_t *reach)
{
    memset (reach, 0, sizeof *reach);
    json_t *asked = json_pack ("{s:s}", "op", "portal-invoices");
    reach->listing = ml_logins_execute (self->logins, "portal-invoices", asked, actor);
    json_decref (asked);
    if (!json_is_true (json_object_get (reach->listing, "ok"))) {
        json_t *reply = reach->listing ? json_incref (reach->listing) : s_store_failed ("list");
        s_reach_free (reach);
        return reply;
    }
    int found = ml_payers_scope (self->payers, actor->payer_id, reach->firm, sizeof reach->firm,
                                 &reach->scope);
    json_t *show = json_pack ("{s:I}", "payer_id", (json_int_t)actor->payer_id);
    json_t *shown = found == 1 ? ml_payers_execute (self->payers, "payer-show", show) : NULL;
    json_decref (show);
    reach->payer = json_incref (json_object_get (shown, "payer"));
    json_decref (shown);
    if (found != 1 || !reach->payer) {
        s_reach_free (reach);
        return found == 0 ? ml_admin_error ("not found") : s_store_failed ("scope");
    }
    return NULL;
}

//  The listing's rows as objects, made the first time they are needed (the pay page without
//  a chosen invoice and without trust deposits never needs them).
static void s_reach_objects (s_reach_t *reach)
{
    if (reach->items)
        return;
    reach->items = ml_table_objects (json_object_get (reach->listing, "item_columns"),
                                     json_object_get (reach->listing, "items"));
    reach->trust = ml_table_objects (json_object_get (reach->listing, "trust_columns"),
                                     json_object_get (reach->listing, "trust"));
}

static json_t *s_item (s_reach_t *reach, const char *invoice)
{
    s_reach_objects (reach);
    size_t index;
    json_t *item;
    json_array_foreach (reach->items, index, item)
    {
        if (streq (s_text (item, "invoice_number"), invoice))
            return item;
    }
    return NULL;
}

//  A matter the payer may deposit into: one of the payer's matters, or a matter of one of
//  the payer's clients (an invoice association alone gives no trust deposit). Fills client
//  and currency (the trust ledger's, "" without one). 1 yes, 0 no, -1 store error.
static int s_deposit_matter (ml_portal_pay_t *self, const s_reach_t *reach, const char *matter,
                             char *client, char *currency)
{
    json_t *known = ml_store_matter (self->store, reach->firm, matter);
    if (!known)
        return -1;
    snprintf (client, 64, "%s", s_text (known, "client_number"));
    snprintf (currency, 4, "%s", s_text (known, "trust_currency"));
    json_decref (known);
    if (!*client)
        return 0;
    return s_listed (json_object_get (reach->scope, "matters"), matter) ||
           s_listed (json_object_get (reach->scope, "clients"), client);
}

//  The matters offered for a trust deposit: those of the payer's invoices and trust ledgers
//  that s_deposit_matter allows, once each.
static json_t *s_deposit_matters (ml_portal_pay_t *self, s_reach_t *reach)
{
    s_reach_objects (reach);
    json_t *matters = json_array (), *seen = json_array ();
    const json_t *lists[] = {reach->items, reach->trust};
    for (size_t list = 0; list < 2; list++) {
        size_t index;
        json_t *row;
        json_array_foreach (lists[list], index, row)
        {
            const char *matter = s_text (row, "matter_number");
            char client[64], currency[4];
            if (!*matter || s_listed (seen, matter) ||
                s_deposit_matter (self, reach, matter, client, currency) != 1)
                continue;
            json_array_append_new (seen, json_string (matter));
            json_array_append_new (
                matters, json_pack ("{s:s, s:s, s:s, s:s}", "matter_number", matter,
                                    "matter_description", s_text (row, "matter_description"),
                                    "client_number", s_text (row, "client_number"), "client_name",
                                    s_text (row, "client_name")));
        }
    }
    json_decref (seen);
    return matters;
}

//  The payer's saved methods as the payer may see them: never the processor's token.
static json_t *s_methods (const json_t *payer)
{
    time_t clock = time (NULL);
    struct tm utc;
    gmtime_r (&clock, &utc);
    int64_t now = (int64_t)(utc.tm_year + 1900) * 12 + utc.tm_mon + 1;
    json_t *methods = json_array ();
    size_t index;
    json_t *method;
    json_array_foreach (json_object_get (payer, "methods"), index, method)
    {
        json_int_t month = json_integer_value (json_object_get (method, "exp_month"));
        json_int_t year = json_integer_value (json_object_get (method, "exp_year"));
        json_array_append_new (methods,
                               json_pack ("{s:O, s:s, s:s, s:I, s:I, s:b}", "method_id",
                                          json_object_get (method, "method_id"), "brand",
                                          s_text (method, "brand"), "last4",
                                          s_text (method, "last4"), "exp_month", month, "exp_year",
                                          year, "expired", year * 12 + month < now));
    }
    return methods;
}

static json_t *s_pay_form (ml_portal_pay_t *self, const ml_actor_t *actor)
{
    s_reach_t reach;
    json_t *reply = s_reach (self, actor, &reach);
    if (reply)
        return reply;
    int trust = s_trust_allowed (self, reach.firm);
    if (trust < 0)
        reply = s_store_failed ("firm");
    else
        reply = ml_admin_ok (json_pack (
            "{s:O, s:O, s:O, s:O, s:O, s:b, s:o, s:o}", "firm_name",
            json_object_get (reach.listing, "firm_name"), "item_columns",
            json_object_get (reach.listing, "item_columns"), "items",
            json_object_get (reach.listing, "items"), "trust_columns",
            json_object_get (reach.listing, "trust_columns"), "trust",
            json_object_get (reach.listing, "trust"), "trust_deposits", trust == 1,
            "deposit_matters", trust == 1 ? s_deposit_matters (self, &reach) : json_array (),
            "methods", s_methods (reach.payer)));
    s_reach_free (&reach);
    return reply;
}

//  pay_key: 16 to 80 letters, digits, '-' or '_' (the web draws 32 random bytes).
static bool s_pay_key_ok (const char *key)
{
    size_t length = key ? strlen (key) : 0;
    return length >= 16 && length <= 80 &&
           strspn (key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
               length;
}

static int s_amount (const json_t *value, int64_t *amount)
{
    const char *over = NULL;
    if (!json_is_integer (value) || json_integer_value (value) <= 0 ||
        ml_money_check (json_integer_value (value), &over) != 0)
        return -1;
    *amount = json_integer_value (value);
    return 0;
}

static json_t *s_too_much (int64_t amount, int64_t available, const char *currency,
                           const char *what)
{
    char shown[64], open[64];
    ml_money_format (amount, currency, shown, sizeof shown);
    ml_money_format (available, currency, open, sizeof open);
    return ml_admin_error ("%s is more than the %s available on %s", shown, open, what);
}

//  The invoice lines of a request, checked against the payer's reach: each line's invoice
//  must be the payer's, its amount at most what is available. Appends to lines.
static json_t *s_invoice_lines (s_reach_t *reach, const json_t *request, json_t *lines)
{
    json_t *given = json_object_get (request, "lines");
    json_t *automatic = json_object_get (request, "auto");
    if (given && automatic)
        return ml_admin_error ("pay 'lines' or 'auto', not both");
    if (given) {
        if (!json_is_array (given) || json_array_size (given) > S_MAX_SELECTED)
            return ml_admin_error ("'lines' is a list of at most %d {\"invoice\", "
                                   "\"amount_minor\"}",
                                   S_MAX_SELECTED);
        size_t index;
        json_t *line;
        json_array_foreach (given, index, line)
        {
            const char *invoice = json_string_value (json_object_get (line, "invoice"));
            int64_t amount = 0;
            if (!json_is_object (line) || json_object_size (line) != 2 || !invoice ||
                s_amount (json_object_get (line, "amount_minor"), &amount) != 0)
                return ml_admin_error ("each line is {\"invoice\": NUMBER, \"amount_minor\": N}, "
                                       "N > 0");
            json_t *item = s_item (reach, invoice);
            if (!item)
                return ml_admin_error ("not found");
            int64_t available = json_integer_value (json_object_get (item, "available_minor"));
            if (amount > available) {
                char what[96];
                snprintf (what, sizeof what, "invoice %s", invoice);
                return s_too_much (amount, available, s_text (item, "currency"), what);
            }
            json_array_append_new (lines, json_pack ("{s:s, s:I}", "invoice", invoice,
                                                     "amount_minor", (json_int_t)amount));
        }
        return NULL;
    }
    if (!automatic)
        return NULL;
    //  One total over the chosen invoices, oldest first (the listing's order), never more
    //  than an invoice's available balance.
    json_t *chosen = json_object_get (automatic, "invoices");
    int64_t total = 0;
    if (!json_is_object (automatic) || json_object_size (automatic) != 2 ||
        !json_is_array (chosen) || json_array_size (chosen) == 0 ||
        json_array_size (chosen) > S_MAX_SELECTED ||
        s_amount (json_object_get (automatic, "amount_minor"), &total) != 0)
        return ml_admin_error ("'auto' is {\"invoices\": [NUMBER, ...], \"amount_minor\": N}, "
                               "N > 0");
    size_t index;
    json_t *number;
    json_array_foreach (chosen, index, number)
    {
        if (!json_is_string (number) || !s_item (reach, json_string_value (number)))
            return ml_admin_error ("not found");
    }
    int64_t left = total, open = 0;
    const char *currency = "";
    json_t *item;
    s_reach_objects (reach);
    json_array_foreach (reach->items, index, item)
    {
        bool picked = false;
        size_t at;
        json_array_foreach (chosen, at, number)
        {
            picked = picked || streq (json_string_value (number), s_text (item, "invoice_number"));
        }
        if (!picked)
            continue;
        currency = s_text (item, "currency");
        int64_t available = json_integer_value (json_object_get (item, "available_minor"));
        open += available;
        int64_t part = left < available ? left : available;
        if (part > 0)
            json_array_append_new (lines, json_pack ("{s:s, s:I}", "invoice",
                                                     s_text (item, "invoice_number"),
                                                     "amount_minor", (json_int_t)part));
        left -= part;
    }
    if (left > 0)
        return s_too_much (total, open, currency, "the invoices chosen");
    return NULL;
}

//  A payment reply as the payer may see it.
json_t *ml_portal_pay_public (json_t *reply)
{
    json_t *payment = json_object_get (reply, "payment");
    if (!json_is_true (json_object_get (reply, "ok")) || !payment) {
        //  An error: its words only.
        json_t *shown = json_pack ("{s:b, s:s}", "ok", 0, "error",
                                   json_string_value (json_object_get (reply, "error"))
                                       ? json_string_value (json_object_get (reply, "error"))
                                       : "the payment failed");
        json_decref (reply);
        return shown;
    }
    json_t *charges = json_array ();
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        json_t *shown = json_object ();
        const char *keys[] = {"account_type", "amount_minor", "currency", "status",
                              "reason",       "posting_uuid", NULL};
        for (size_t key = 0; keys[key]; key++) {
            json_t *value = json_object_get (charge, keys[key]);
            json_object_set (shown, keys[key], value ? value : json_null ());
        }
        json_array_append_new (charges, shown);
    }
    json_t *shown = json_object ();
    const char *keys[] = {"payment_uuid", "status", "brand", "last4", "created_at", NULL};
    for (size_t key = 0; keys[key]; key++) {
        json_t *value = json_object_get (payment, keys[key]);
        json_object_set (shown, keys[key], value ? value : json_null ());
    }
    json_object_set_new (shown, "charges", charges);
    json_t *result = json_pack ("{s:b, s:o}", "ok", 1, "payment", shown);
    if (json_is_true (json_object_get (reply, "repeated")))
        json_object_set_new (result, "repeated", json_true ());
    json_decref (reply);
    return result;
}

//  The payment a pay_key already made, as it stands: {"ok", "payment", "repeated": true},
//  or NULL when the key is new (*pending: the key's first request is waiting for the
//  processor to look its card's token up).
static json_t *s_paid_before (ml_portal_pay_t *self, const ml_actor_t *actor, const char *key,
                              bool *failed, bool *pending)
{
    json_t *rows = ml_store_rows (ml_db_query (self->db,
                                               "SELECT payment_uuid FROM portal_payment"
                                               " WHERE payer_id = ? AND pay_key = ?",
                                               "is", actor->payer_id, key),
                                  s_integer_column);
    *failed = !rows;
    const char *uuid =
        json_string_value (json_object_get (json_array_get (rows, 0), "payment_uuid"));
    *pending = uuid && !*uuid;
    json_t *reply = NULL;
    if (uuid && *uuid) {
        json_t *show = json_pack ("{s:s}", "payment_uuid", uuid);
        char deliver[64] = "";
        reply = ml_payments_execute (self->payments, "payment-show", show, deliver, sizeof deliver);
        json_decref (show);
        json_object_set_new (reply, "repeated", json_true ());
        reply = ml_portal_pay_public (reply);
    }
    json_decref (rows);
    return reply;
}

//  The form key's row: payment_uuid "" while the card's token is looked up, then the
//  payment's. Returns 0 or -1.
static int s_key_record (ml_portal_pay_t *self, const ml_actor_t *actor, const char *key,
                         const char *uuid)
{
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t updated = ml_db_execute (self->db,
                                     "UPDATE portal_payment SET payment_uuid = ? WHERE payer_id = ?"
                                     " AND pay_key = ?",
                                     "sis", uuid, actor->payer_id, key);
    if (updated == 0)
        updated = ml_db_execute (self->db,
                                 "INSERT INTO portal_payment (payer_id, pay_key, payment_uuid,"
                                 " created_at) VALUES (?, ?, ?, ?)",
                                 "isss", actor->payer_id, key, uuid, now);
    return updated == 1 ? 0 : -1;
}

//  A request that failed after its key's row was made pending: the key is free again.
static void s_key_release (ml_portal_pay_t *self, const ml_actor_t *actor, const char *key)
{
    ml_db_execute (self->db,
                   "DELETE FROM portal_payment WHERE payer_id = ? AND pay_key = ?"
                   " AND payment_uuid = ''",
                   "is", actor->payer_id, key);
}

//  A new card's token from the browser: {"token", "brand", "last4", "exp_month",
//  "exp_year"} as the tokenization endpoint gave them. Only its shape is checked here; what
//  card it names is asked of the processor (s_token_lookup), whose answer is what is kept.
static bool s_token_shape (const json_t *token)
{
    const char *value = json_string_value (json_object_get (token, "token"));
    return json_is_object (token) && json_object_size (token) == 5 && value && *value &&
           strlen (value) <= ML_PROCESSOR_ID_MAX &&
           strspn (value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
               strlen (value) &&
           json_is_string (json_object_get (token, "brand")) &&
           json_is_string (json_object_get (token, "last4")) &&
           json_is_integer (json_object_get (token, "exp_month")) &&
           json_is_integer (json_object_get (token, "exp_year"));
}

//  Save the card the processor described as a method of the payer (the staff payment's code
//  charges saved methods); removed again after the charge is stored unless the payer asked
//  to keep it. Fills method_id.
static json_t *s_token_method (ml_portal_pay_t *self, const ml_actor_t *actor,
                               const ml_processor_result_t *card, bool keep, int64_t *method_id)
{
    json_t *method =
        json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", (json_int_t)actor->payer_id,
                   "token", card->token, "brand", card->brand, "last4", card->last4, "exp_month",
                   card->exp_month, "exp_year", card->exp_year);
    //  A card to save counts against the payer's saved cards (the limit refuses it, clearly,
    //  and nothing is charged); one for this payment only does not.
    json_t *added = keep ? ml_payers_execute (self->payers, "method-add", method)
                         : ml_payers_method_add_once (self->payers, method);
    json_decref (method);
    if (!json_is_true (json_object_get (added, "ok")))
        return added;
    *method_id =
        json_integer_value (json_object_get (json_object_get (added, "method"), "method_id"));
    json_decref (added);
    return NULL;
}

static void s_method_remove (ml_portal_pay_t *self, int64_t method_id)
{
    json_t *remove = json_pack ("{s:I}", "method_id", (json_int_t)method_id);
    json_decref (ml_payers_execute (self->payers, "method-remove", remove));
    json_decref (remove);
}

//  The processor's answer about a token, as the payer may read it: NULL when it names a card.
static json_t *s_token_refused (const ml_processor_result_t *card, const char *asked)
{
    if (card->status == ML_PROCESSOR_APPROVED && streq (card->token, asked))
        return NULL;
    if (card->status == ML_PROCESSOR_UNKNOWN)
        return ml_admin_error ("the card processor could not be reached; nothing was charged; "
                               "please try again");
    return ml_admin_error ("the card processor does not know this card (%s); nothing was "
                           "charged",
                           *card->reason ? card->reason : "invalid_token");
}

//  Ask the worker what card the request's token names; the request waits (waiting_for).
static json_t *s_token_lookup (ml_portal_pay_t *self, const ml_actor_t *actor,
                               const json_t *request, const char *key)
{
    if (s_key_record (self, actor, key, "") != 0)
        return s_store_failed ("pay_key");
    s_flow_t *flow = calloc (1, sizeof (s_flow_t));
    assert (flow);
    flow->call.token_lookup = true;
    snprintf (flow->call.token, sizeof flow->call.token, "%s",
              json_string_value (json_object_get (json_object_get (request, "token"), "token")));
    flow->call.context = self;
    ml_store_uuid (flow->id, sizeof flow->id);
    flow->actor = *actor;
    flow->request = json_deep_copy (request);
    zlistx_add_end (self->flows, flow);
    zsock_send (self->worker, "sp", "CALL", &flow->call);
    return json_pack ("{s:b, s:s}", "ok", 1, "waiting_for", flow->id);
}

//  portal-pay. card: what the processor said of the request's token (NULL before it was
//  asked).
static json_t *s_pay (ml_portal_pay_t *self, const ml_actor_t *actor, const json_t *request,
                      const ml_processor_result_t *card, char *deliver_firm, size_t size)
{
    if (!self->payments)
        return ml_admin_error ("card payments are not available");
    char problem[256] = "";
    const char *key = ml_admin_argument (request, "pay_key", 80, problem, sizeof problem);
    json_t *method_value = json_object_get (request, "method_id");
    json_t *token = json_object_get (request, "token");
    json_t *trust = json_object_get (request, "trust");
    json_t *save = json_object_get (request, "save_method");
    if (*problem || !s_pay_key_ok (key))
        return ml_admin_error ("'pay_key' is required: 16 to 80 letters, digits, '-' or '_'");
    if (!method_value == !token)
        return ml_admin_error ("say how to pay: 'method_id' (a saved card) or 'token' (a new "
                               "card's token from the processor)");
    if (token && !s_token_shape (token))
        return ml_admin_error ("'token' is {\"token\", \"brand\", \"last4\", \"exp_month\", "
                               "\"exp_year\"} as the card processor gave them");
    if (save && !json_is_boolean (save))
        return ml_admin_error ("'save_method' is true or false");
    bool failed = false, pending = false;
    json_t *reply = s_paid_before (self, actor, key, &failed, &pending);
    if (reply || failed)
        return reply ? reply : s_store_failed ("pay_key");
    if (pending && !card)
        //  The first request with this key waits for the processor: this one pays nothing.
        return json_pack ("{s:b, s:b, s:{s:s, s:[]}}", "ok", 1, "repeated", 1, "payment", "status",
                          "pending", "charges");

    s_reach_t reach;
    reply = s_reach (self, actor, &reach);
    json_t *lines = json_array ();
    if (!reply)
        reply = s_invoice_lines (&reach, request, lines);
    if (!reply && trust) {
        const char *matter = json_string_value (json_object_get (trust, "matter"));
        int64_t amount = 0;
        char client[64] = "", currency[4] = "";
        int allowed = s_trust_allowed (self, reach.firm);
        int reached = 0;
        if (!json_is_object (trust) || json_object_size (trust) != 2 || !matter ||
            s_amount (json_object_get (trust, "amount_minor"), &amount) != 0)
            reply = ml_admin_error ("'trust' is {\"matter\": NUMBER, \"amount_minor\": N}, N > 0");
        else if (allowed < 0 ||
                 (reached = s_deposit_matter (self, &reach, matter, client, currency)) < 0)
            reply = s_store_failed ("trust");
        else if (allowed == 0)
            reply = ml_admin_error ("this firm does not take trust deposits on the portal");
        else if (reached == 0)
            reply = ml_admin_error ("not found");
        else
            json_array_append_new (lines, json_pack ("{s:s, s:I}", "trust", matter, "amount_minor",
                                                     (json_int_t)amount));
    }
    if (!reply && json_array_size (lines) == 0)
        reply = ml_admin_error ("choose at least one invoice, or a trust deposit");
    int64_t method_id = 0;
    bool added = false;
    ml_processor_result_t looked_up;
    if (!reply && method_value) {
        //  A saved method of this payer, else "not found" (another payer's id too).
        size_t index;
        json_t *method;
        json_array_foreach (json_object_get (reach.payer, "methods"), index, method)
        {
            if (json_equal (json_object_get (method, "method_id"), method_value))
                method_id = json_integer_value (method_value);
        }
        if (!method_id)
            reply = ml_admin_error ("not found");
    } else if (!reply) {
        //  What card the token names is the processor's word, not the browser's: asked of
        //  the worker (the request waits), or inline without one.
        const char *asked = json_string_value (json_object_get (token, "token"));
        if (!card && self->worker) {
            json_decref (lines);
            s_reach_free (&reach);
            return s_token_lookup (self, actor, request, key);
        }
        if (!card && self->processor) {
            ml_processor_token (self->processor, asked, &looked_up);
            card = &looked_up;
        }
        reply = card ? s_token_refused (card, asked)
                     : ml_admin_error ("card payments are not available");
        if (!reply)
            reply = s_token_method (self, actor, card, json_is_true (save), &method_id);
        added = !reply;
    }
    if (!reply) {
        //  The staff payment's own code, with this payer: the same checks again (balances,
        //  accounts, one client), the same charges, holds, postings and receipts.
        json_t *payment = json_pack ("{s:s, s:s, s:I, s:O, s:I}", "op", "payment", "firm",
                                     reach.firm, "payer_id", (json_int_t)actor->payer_id, "lines",
                                     lines, "method_id", (json_int_t)method_id);
        reply = ml_payments_execute (self->payments, "payment", payment, deliver_firm, size);
        json_decref (payment);
        const char *uuid = json_string_value (json_object_get (reply, "waiting_for"));
        if (!uuid)
            uuid = json_string_value (
                json_object_get (json_object_get (reply, "payment"), "payment_uuid"));
        if (uuid) {
            if (s_key_record (self, actor, key, uuid) != 0 ||
                ml_db_execute (self->db,
                               "UPDATE payment SET source = 'portal' WHERE payment_uuid = ?", "s",
                               uuid) != 1)
                ml_log (ML_LOG_ERROR,
                        "portal-pay: payment %s could not be recorded for its form key", uuid);
            ml_log (ML_LOG_NOTICE, "portal-pay: payer %lld paid from the portal (payment %s)",
                    (long long)actor->payer_id, uuid);
        } else if (pending)
            s_key_release (self, actor, key);
        //  The charges hold the card's token now: a card not to be kept goes again.
        if (added && !json_is_true (save))
            s_method_remove (self, method_id);
        if (!json_object_get (reply, "waiting_for"))
            reply = ml_portal_pay_public (reply);
    } else {
        if (added)
            s_method_remove (self, method_id);
        if (pending)
            s_key_release (self, actor, key);
    }
    json_decref (lines);
    s_reach_free (&reach);
    return reply;
}

int ml_portal_pay_completed (ml_portal_pay_t *self, ml_processor_call_t *call, char *deliver_firm,
                             size_t size)
{
    assert (self && ml_portal_pay_owns (self, call));
    s_flow_t *flow = (s_flow_t *)call;
    s_ready_t *ready = calloc (1, sizeof (s_ready_t));
    assert (ready);
    snprintf (ready->id, sizeof ready->id, "%s", flow->id);
    ready->reply = s_pay (self, &flow->actor, flow->request, &call->result, deliver_firm, size);
    zlistx_add_end (self->ready, ready);
    void *handle = zlistx_find (self->flows, flow);
    if (handle)
        zlistx_delete (self->flows, handle); //  destroys the flow
    return 1;
}

json_t *ml_portal_pay_ready (ml_portal_pay_t *self, char *waiter, size_t size)
{
    assert (self);
    s_ready_t *ready = (s_ready_t *)zlistx_first (self->ready);
    if (!ready)
        return NULL;
    snprintf (waiter, size, "%s", ready->id);
    json_t *reply = ready->reply;
    ready->reply = NULL;
    zlistx_delete (self->ready, zlistx_cursor (self->ready));
    return reply;
}

static json_t *s_firm_portal (ml_portal_pay_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    json_t *trust = json_object_get (request, "trust_deposits");
    if (*problem || !firm)
        return ml_admin_error ("%s", *problem ? problem : "'firm' is required");
    if (trust && !json_is_boolean (trust))
        return ml_admin_error ("'trust_deposits' is true or false");
    json_t *known = ml_store_rows (
        ml_db_query (self->db, "SELECT firm_id FROM firm WHERE firm_id = ?", "s", firm),
        s_integer_column);
    size_t found = json_array_size (known);
    json_decref (known);
    if (!found)
        return ml_admin_error ("no firm '%s'", firm);
    if (trust) {
        int value = json_is_true (trust) ? 1 : 0;
        if (ml_db_execute (self->db, "UPDATE portal_firm SET trust_deposits = ? WHERE firm_id = ?",
                           "is", value, firm) == 0 &&
            ml_db_execute (self->db,
                           "INSERT INTO portal_firm (firm_id, trust_deposits) VALUES (?, ?)", "si",
                           firm, value) != 1)
            return s_store_failed ("firm-portal");
    }
    int allowed = s_trust_allowed (self, firm);
    if (allowed < 0)
        return s_store_failed ("firm-portal");
    return ml_admin_ok (json_pack ("{s:s, s:b}", "firm", firm, "trust_deposits", allowed == 1));
}

json_t *ml_portal_pay_execute (ml_portal_pay_t *self, const char *op, const json_t *request,
                               const ml_actor_t *actor, char *deliver_firm, size_t size)
{
    assert (self && actor);
    if (!op || !json_is_object (request))
        return NULL;
    if (streq (op, "firm-portal"))
        return actor->kind == ML_ACTOR_OPERATOR ? s_firm_portal (self, request)
                                                : ml_admin_error ("not found");
    if (!streq (op, "portal-pay-form") && !streq (op, "portal-pay"))
        return NULL;
    if (actor->kind != ML_ACTOR_PAYER)
        return ml_admin_error ("not found");
    return streq (op, "portal-pay") ? s_pay (self, actor, request, NULL, deliver_firm, size)
                                    : s_pay_form (self, actor);
}

//  ---------------------------------------------------------------------------------------
//  Selftest: against a real store, payers, logins and payments with the built-in test
//  processor (no worker: every reply is final at once).

static json_t *s_test_pay (ml_portal_pay_t *self, const ml_actor_t *actor, const char *text)
{
    json_error_t error;
    json_t *request = json_loads (text, 0, &error);
    if (!request)
        fprintf (stderr, "bad test JSON: %s: %s\n", text, error.text);
    assert (request);
    char deliver[64] = "";
    json_t *reply =
        ml_portal_pay_execute (self, "portal-pay", request, actor, deliver, sizeof deliver);
    json_decref (request);
    return reply;
}

static void s_test_error (json_t *reply, const char *expected)
{
    const char *error = json_string_value (json_object_get (reply, "error"));
    if (!error || !strstr (error, expected)) {
        fprintf (stderr, "expected '%s', got %s\n", expected, error ? error : "success");
        assert (false);
    }
    json_decref (reply);
}

static int64_t s_test_count (ml_store_t *store, const char *sql)
{
    json_t *rows = ml_store_rows (ml_db_query (ml_store_db (store), sql, ""), s_integer_column);
    int64_t count = json_integer_value (json_object_get (json_array_get (rows, 0), "n"));
    json_decref (rows);
    return count;
}

void ml_portal_pay_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_portal_pay: ");
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    char key_path[200];
    snprintf (key_path, sizeof key_path, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (ml_store_db (store), key_path, error, sizeof error);
    assert (mailer);
    ml_processor_settings_t settings;
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    assert (processor);
    ml_payments_t *payments =
        ml_payments_new (store, payers, processor, mailer, error, sizeof error);
    assert (payments);
    ml_logins_settings_t login_settings;
    ml_logins_settings_defaults (&login_settings);
    ml_logins_t *logins =
        ml_logins_new (store, payers, mailer, &login_settings, error, sizeof error);
    assert (logins);
    ml_portal_pay_t *self =
        ml_portal_pay_new (store, payers, payments, logins, processor, error, sizeof error);
    assert (self);
    const ml_selftest_item_t items[] = {{'I', "INV-1", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-2", "2026-02-10", "C-1", "M-1", 20000},
                                        {'I', "INV-3", "2026-03-10", "C-1", "M-1", 30000},
                                        {'I', "INV-9", "2026-01-01", "C-2", "M-2", 50000},
                                        {'T', "", "", "C-1", "M-1", 0}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);
    const char *setup[] = {
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"OP-001\", \"type\": "
        "\"OPERATING\", \"currency\": \"USD\", \"merchant_account\": \"m-op\"}",
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"TR-001\", \"type\": "
        "\"TRUST\", \"currency\": \"USD\", \"merchant_account\": \"m-tr\"}"};
    char deliver[64];
    for (size_t index = 0; index < 2; index++) {
        json_t *request = json_loads (setup[index], 0, NULL);
        json_t *reply =
            ml_payments_execute (payments, "account-add", request, deliver, sizeof deliver);
        assert (json_is_true (json_object_get (reply, "ok")));
        json_decref (reply);
        json_decref (request);
    }
    json_t *request =
        json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Pat", "email", "pat@example.com");
    json_t *reply = ml_payers_execute (payers, "payer-add", request);
    int64_t pat =
        json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
    json_decref (reply);
    json_decref (request);
    ml_item_t found = {.kind = 'I'};
    strcpy (found.client_number, "C-1");
    reply = ml_payers_association_record (payers, pat, "client", &found, "t");
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    ml_actor_t actor = {.kind = ML_ACTOR_PAYER, .payer_id = pat, .firm_id = "acme"};
    ml_actor_t anonymous = {.kind = ML_ACTOR_ANONYMOUS};

    //  The form: Pat's invoices only, no trust deposits until the firm allows them.
    request = json_object ();
    reply =
        ml_portal_pay_execute (self, "portal-pay-form", request, &actor, deliver, sizeof deliver);
    assert (json_array_size (json_object_get (reply, "items")) == 3);
    assert (json_is_false (json_object_get (reply, "trust_deposits")));
    json_decref (reply);
    reply = ml_portal_pay_execute (self, "portal-pay-form", request, &anonymous, deliver,
                                   sizeof deliver);
    s_test_error (reply, "not found");
    json_decref (request);

    const char *key = "\"pay_key\": \"k-0123456789abcdef\"";
    const char *card = "\"token\": {\"token\": \"tok_visa_4242_122099_0123456789abcdef\", "
                       "\"brand\": \"visa\", \"last4\": \"4242\", \"exp_month\": 12, "
                       "\"exp_year\": 2099}";
    //  What the browser says of the card is not believed: the processor's word is kept.
    const char *lying = "\"token\": {\"token\": \"tok_visa_4242_122099_0123456789abcdef\", "
                        "\"brand\": \"amex\", \"last4\": \"1111\", \"exp_month\": 1, "
                        "\"exp_year\": 2098}";
    char text[1024];
    //  Refusals change nothing: a token the processor does not know, another payer's
    //  invoice, more than is available, trust off, no way to pay, a bad key, another payer's
    //  method.
    snprintf (text, sizeof text,
              "{%s, \"token\": {\"token\": \"tok_visa_9999_122099_0123456789abcdef\", "
              "\"brand\": \"visa\", \"last4\": \"9999\", \"exp_month\": 12, \"exp_year\": "
              "2099}, \"lines\": [{\"invoice\": \"INV-1\", \"amount_minor\": 1}]}",
              key);
    s_test_error (s_test_pay (self, &actor, text), "does not know this card (invalid_token)");
    snprintf (text, sizeof text,
              "{%s, %s, \"lines\": [{\"invoice\": \"INV-9\", \"amount_minor\": 1}]}", key, card);
    s_test_error (s_test_pay (self, &actor, text), "not found");
    snprintf (text, sizeof text,
              "{%s, %s, \"lines\": [{\"invoice\": \"INV-1\", \"amount_minor\": 10001}]}", key,
              card);
    s_test_error (s_test_pay (self, &actor, text), "more than the 100.00 USD available");
    snprintf (text, sizeof text,
              "{%s, %s, \"auto\": {\"invoices\": [\"INV-1\", \"INV-2\"], \"amount_minor\": 30001}}",
              key, card);
    s_test_error (s_test_pay (self, &actor, text), "more than the 300.00 USD available");
    snprintf (text, sizeof text,
              "{%s, %s, \"trust\": {\"matter\": \"M-1\", \"amount_minor\": 500}}", key, card);
    s_test_error (s_test_pay (self, &actor, text), "does not take trust deposits");
    snprintf (text, sizeof text, "{%s, \"lines\": [{\"invoice\": \"INV-1\", \"amount_minor\": 1}]}",
              key);
    s_test_error (s_test_pay (self, &actor, text), "say how to pay");
    s_test_error (
        s_test_pay (self, &actor, "{\"pay_key\": \"short\", \"method_id\": 1, \"lines\": []}"),
        "'pay_key' is required");
    snprintf (
        text, sizeof text,
        "{%s, \"method_id\": 999, \"lines\": [{\"invoice\": \"INV-1\", \"amount_minor\": 1}]}",
        key);
    s_test_error (s_test_pay (self, &actor, text), "not found");
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment_method") == 0);

    //  One total over two invoices, oldest first, with a new card not kept; the same key
    //  again answers with the same payment and charges nothing more.
    snprintf (text, sizeof text,
              "{%s, %s, \"auto\": {\"invoices\": [\"INV-2\", \"INV-1\"], \"amount_minor\": 15000}}",
              key, card);
    reply = s_test_pay (self, &actor, text);
    json_t *payment = json_object_get (reply, "payment");
    assert (streq (s_text (payment, "status"), "approved"));
    assert (streq (s_text (payment, "last4"), "4242"));
    assert (json_array_size (json_object_get (payment, "charges")) == 1);
    assert (!json_object_get (json_array_get (json_object_get (payment, "charges"), 0),
                              "merchant_account"));
    char uuid[40];
    snprintf (uuid, sizeof uuid, "%s", s_text (payment, "payment_uuid"));
    json_decref (reply);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment_method") == 0);
    reply = s_test_pay (self, &actor, text);
    assert (json_is_true (json_object_get (reply, "repeated")));
    assert (streq (s_text (json_object_get (reply, "payment"), "payment_uuid"), uuid));
    json_decref (reply);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment WHERE source = 'portal'") ==
            1);
    //  INV-1 is paid in full, INV-2 has 150.00 left: 150.01 more is refused.
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-second-0123456789\", %s, \"save_method\": true, \"lines\": "
              "[{\"invoice\": \"INV-2\", \"amount_minor\": 15001}]}",
              card);
    s_test_error (s_test_pay (self, &actor, text), "more than the 150.00 USD available");
    //  With trust deposits on: a deposit to an associated matter is a charge of its own.
    request = json_pack ("{s:s, s:b}", "firm", "acme", "trust_deposits", 1);
    ml_actor_t operator= {.kind = ML_ACTOR_OPERATOR};
    reply =
        ml_portal_pay_execute (self, "firm-portal", request, &operator, deliver, sizeof deliver);
    assert (json_is_true (json_object_get (reply, "trust_deposits")));
    json_decref (reply);
    json_decref (request);
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-third-0123456789\", %s, \"save_method\": true, \"lines\": "
              "[{\"invoice\": \"INV-2\", \"amount_minor\": 15000}], \"trust\": {\"matter\": "
              "\"M-2\", \"amount_minor\": 500}}",
              card);
    s_test_error (s_test_pay (self, &actor, text), "not found");
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-third-0123456789\", %s, \"save_method\": true, \"lines\": "
              "[{\"invoice\": \"INV-2\", \"amount_minor\": 15000}], \"trust\": {\"matter\": "
              "\"M-1\", \"amount_minor\": 500}}",
              lying);
    reply = s_test_pay (self, &actor, text);
    payment = json_object_get (reply, "payment");
    assert (streq (s_text (payment, "status"), "approved"));
    assert (json_array_size (json_object_get (payment, "charges")) == 2);
    json_decref (reply);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment_method") == 1);
    //  The saved card pays again by its id.
    request = json_object ();
    reply =
        ml_portal_pay_execute (self, "portal-pay-form", request, &actor, deliver, sizeof deliver);
    json_decref (request);
    json_t *method = json_array_get (json_object_get (reply, "methods"), 0);
    assert (method && !json_object_get (method, "processor_token"));
    assert (streq (s_text (method, "brand"), "visa") && streq (s_text (method, "last4"), "4242"));
    assert (json_integer_value (json_object_get (method, "exp_month")) == 12);
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-fourth-0123456789\", \"method_id\": %lld, \"lines\": "
              "[{\"invoice\": \"INV-3\", \"amount_minor\": 100}]}",
              (long long)json_integer_value (json_object_get (method, "method_id")));
    json_decref (reply);
    reply = s_test_pay (self, &actor, text);
    assert (streq (s_text (json_object_get (reply, "payment"), "status"), "approved"));
    json_decref (reply);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment") == 3);
    //  A payer with the most saved cards (20) pays with a new card not to be saved; one to
    //  be saved is refused by the limit, clearly, and nothing is charged.
    for (int index = 1; index < 20; index++) {
        request = json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", (json_int_t)pat, "token",
                             "tok_visa_4242_122099_a", "brand", "visa", "last4", "4242",
                             "exp_month", 12, "exp_year", 2099);
        reply = ml_payers_execute (payers, "method-add", request);
        assert (json_is_true (json_object_get (reply, "ok")));
        json_decref (reply);
        json_decref (request);
    }
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-fifth-0123456789\", %s, \"save_method\": true, \"lines\": "
              "[{\"invoice\": \"INV-3\", \"amount_minor\": 1}]}",
              card);
    s_test_error (s_test_pay (self, &actor, text), "20 payment methods");
    snprintf (text, sizeof text,
              "{\"pay_key\": \"k-sixth-0123456789\", %s, \"lines\": "
              "[{\"invoice\": \"INV-3\", \"amount_minor\": 1}]}",
              card);
    reply = s_test_pay (self, &actor, text);
    assert (streq (s_text (json_object_get (reply, "payment"), "status"), "approved"));
    json_decref (reply);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment") == 4);
    assert (s_test_count (store, "SELECT COUNT (*) AS n FROM payment_method") == 20);

    ml_portal_pay_destroy (&self);
    ml_portal_pay_destroy (&self);
    ml_logins_destroy (&logins);
    ml_payments_destroy (&payments);
    ml_processor_destroy (&processor);
    ml_mailer_destroy (&mailer);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
