/*  ml_payments: card payments from selection to postings. See include/ml_payments.h. */
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
    ml_odbc_t *odbc;           //  the store's connection
    ml_payers_t *payers;       //  borrowed
    ml_processor_t *processor; //  borrowed, may be NULL
    ml_mailer_t *mailer;       //  borrowed, may be NULL
    //  Processor calls: made by the worker when there is one (the core's), so the thread
    //  that owns this object never waits for the processor; made inline otherwise.
    zactor_t *worker; //  borrowed, may be NULL
    zhashx_t *calls;  //  processor key -> s_call_t asked and not answered yet (owned)
    zhashx_t *flows;  //  waiter id -> s_flow_t: requests waiting for the processor (owned)
    zlistx_t *ready;  //  s_ready_t: the replies of those requests, once made (owned)
};

//  Accounts are typed for good and never removed (DESIGN.md rule 2); charges and their
//  history are a journal: a charge only moves forward (pending, unknown -> final), its
//  money never changes, and a trust charge never carries a fee (rule 4).
static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS account ("
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), account_number TEXT NOT NULL,"
    " account_type TEXT NOT NULL CHECK (account_type IN ('TRUST', 'OPERATING')),"
    " currency TEXT NOT NULL, merchant_account TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (firm_id, account_number), UNIQUE (firm_id, account_type, currency))",
    "CREATE TRIGGER IF NOT EXISTS account_fixed BEFORE UPDATE ON account"
    " BEGIN SELECT RAISE (ABORT, 'an account is TRUST or OPERATING for good'); END",
    "CREATE TRIGGER IF NOT EXISTS account_kept BEFORE DELETE ON account"
    " BEGIN SELECT RAISE (ABORT, 'accounts are never removed'); END",
    "CREATE TABLE IF NOT EXISTS payment ("
    " payment_uuid TEXT PRIMARY KEY, firm_id TEXT NOT NULL REFERENCES firm (firm_id),"
    " source TEXT NOT NULL, staff TEXT NOT NULL, payer_id INTEGER, payer_name TEXT NOT NULL,"
    " payer_email TEXT NOT NULL, receipt_email TEXT NOT NULL, ar_message TEXT NOT NULL,"
    " client_number TEXT NOT NULL, token TEXT NOT NULL, brand TEXT NOT NULL, last4 TEXT NOT NULL,"
    " created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS charge ("
    " charge_key TEXT PRIMARY KEY, payment_uuid TEXT NOT NULL REFERENCES payment (payment_uuid),"
    " account_number TEXT NOT NULL, account_type TEXT NOT NULL, merchant_account TEXT NOT NULL,"
    " currency TEXT NOT NULL, amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),"
    " fee_minor INTEGER NOT NULL DEFAULT 0 CHECK (fee_minor >= 0),"
    " lines TEXT NOT NULL, posting_uuid TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'unknown', 'approved', 'declined',"
    " 'error')), processor_txn TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    //  The payer's receipt: 0 owed, 1 queued, 2 refused by the outbox (logged once).
    " receipt_queued INTEGER NOT NULL DEFAULT 0,"
    " CHECK (account_type <> 'TRUST' OR fee_minor = 0))",
    "CREATE INDEX IF NOT EXISTS charge_open ON charge (status) WHERE status IN ('pending', "
    "'unknown')",
    "CREATE INDEX IF NOT EXISTS charge_payment ON charge (payment_uuid)",
    //  The receipts still owed, without reading every charge ever approved each second.
    "CREATE INDEX IF NOT EXISTS charge_receipt_due ON charge (updated_at)"
    " WHERE status = 'approved' AND receipt_queued = 0",
    "CREATE TRIGGER IF NOT EXISTS charge_money_fixed BEFORE UPDATE OF charge_key, payment_uuid,"
    " account_number, account_type, currency, amount_minor, fee_minor, lines, posting_uuid"
    " ON charge BEGIN SELECT RAISE (ABORT, 'a charge''s money is fixed'); END",
    "CREATE TRIGGER IF NOT EXISTS charge_final BEFORE UPDATE OF status ON charge"
    " WHEN OLD.status IN ('approved', 'declined', 'error')"
    " BEGIN SELECT RAISE (ABORT, 'a charge''s final status never changes'); END",
    "CREATE TRIGGER IF NOT EXISTS charge_kept BEFORE DELETE ON charge"
    " BEGIN SELECT RAISE (ABORT, 'charges are never removed'); END",
    "CREATE TRIGGER IF NOT EXISTS payment_kept BEFORE DELETE ON payment"
    " BEGIN SELECT RAISE (ABORT, 'payments are never removed'); END",
    //  A payment link: valid for 24 hours, single use, revocable. Only the digest of its
    //  token is kept. Its state follows from its columns (paid, cancelled, expired).
    "CREATE TABLE IF NOT EXISTS payment_link ("
    " link_id TEXT PRIMARY KEY, token_digest TEXT NOT NULL UNIQUE,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), payer_id INTEGER, payer_name TEXT NOT NULL,"
    " payer_email TEXT NOT NULL, receipt_email TEXT NOT NULL, ar_message TEXT NOT NULL,"
    " lines TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL,"
    " expires_at TEXT NOT NULL, cancelled_at TEXT, payment_uuid TEXT,"
    " CHECK (cancelled_at IS NULL OR payment_uuid IS NULL))",
    "CREATE INDEX IF NOT EXISTS payment_link_firm ON payment_link (firm_id, created_at)",
    //  Refunds, voids and chargebacks: each takes back part or all of an approved charge
    //  through a reversing posting, never by editing anything.
    "CREATE TABLE IF NOT EXISTS reversal ("
    " reversal_key TEXT PRIMARY KEY, charge_key TEXT NOT NULL REFERENCES charge (charge_key),"
    " kind TEXT NOT NULL CHECK (kind IN ('refund', 'void', 'chargeback')),"
    " amount_minor INTEGER NOT NULL CHECK (amount_minor > 0), lines TEXT NOT NULL,"
    " posting_uuid TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'unknown', 'approved', 'declined',"
    " 'error')), processor_txn TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " staff TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reversal_charge ON reversal (charge_key)",
    "CREATE TRIGGER IF NOT EXISTS reversal_money_fixed BEFORE UPDATE OF reversal_key, charge_key,"
    " kind, amount_minor, lines, posting_uuid ON reversal"
    " BEGIN SELECT RAISE (ABORT, 'a reversal''s money is fixed'); END",
    "CREATE TRIGGER IF NOT EXISTS reversal_final BEFORE UPDATE OF status ON reversal"
    " WHEN OLD.status IN ('approved', 'declined', 'error')"
    " BEGIN SELECT RAISE (ABORT, 'a reversal''s final status never changes'); END",
    "CREATE TRIGGER IF NOT EXISTS reversal_kept BEFORE DELETE ON reversal"
    " BEGIN SELECT RAISE (ABORT, 'reversals are never removed'); END",
    //  Each staff user's selection: what several searches gathered for one payment. Kept
    //  until paid or cleared, whatever the next search asks (amount NULL: an invoice's
    //  whole available balance when paid).
    "CREATE TABLE IF NOT EXISTS selection_item ("
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), staff TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('invoice', 'trust')), number TEXT NOT NULL,"
    " amount_minor INTEGER CHECK (amount_minor IS NULL OR amount_minor > 0),"
    " added_at TEXT NOT NULL, CHECK (kind = 'invoice' OR amount_minor IS NOT NULL),"
    " PRIMARY KEY (firm_id, staff, kind, number))",
    //  Where the firm wants notices ("posting rejected").
    "CREATE TABLE IF NOT EXISTS firm_contact ("
    " firm_id TEXT PRIMARY KEY REFERENCES firm (firm_id), notify_email TEXT NOT NULL,"
    " updated_at TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS payment_link_once BEFORE UPDATE ON payment_link"
    " WHEN OLD.payment_uuid IS NOT NULL OR OLD.cancelled_at IS NOT NULL"
    " BEGIN SELECT RAISE (ABORT, 'a paid or cancelled link never changes'); END",
};

static int s_hold (ml_payments_t *self, const char *firm, const char *key, const json_t *lines);
static bool s_integer_column (const char *name);

//  One charge being assembled: the lines of one account.
typedef struct {
    const char *type; //  "OPERATING" or "TRUST"
    char currency[4];
    int64_t amount;
    json_t *lines; //  [[kind, reference, amount_minor], ...]
} s_group_t;

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
    s_group_t groups[2]; //  [0] invoices into OPERATING, [1] trust deposits into TRUST
    json_t *accounts[2];
    json_t *payer; //  the saved payer (payer-show), when payer_id is set
} s_order_t;

static void s_order_init (s_order_t *order);
static void s_order_free (s_order_t *order);

//  What a processor call is for, so its answer is recorded where it belongs.
typedef enum { S_FOR_TOKEN, S_FOR_CHARGE, S_FOR_REVERSAL } s_purpose_t;

//  A processor call asked by this class: the call itself first, since the worker hands
//  back the call's address. A lookup (call.lookup) carries the operation to make when
//  the processor knows nothing under the key.
typedef struct {
    ml_processor_call_t call;
    s_purpose_t purpose;
    char flow[ML_PROCESSOR_KEY_MAX + 1]; //  the waiting request it belongs to ("" for none)
} s_call_t;

//  A request that waits for the processor: a payment (tokenize, then its charges), a
//  payment link being paid (the same), or a refund or void.
typedef enum { S_FLOW_PAYMENT, S_FLOW_LINK, S_FLOW_REVERSAL } s_flow_kind_t;

typedef struct {
    char id[ML_PROCESSOR_KEY_MAX + 1]; //  the payment's UUID, or the reversal's key
    s_flow_kind_t kind;
    s_order_t order;
    json_t *request; //  payment, link: the request to check again, never with the card
    char payment_uuid[37];
    char link_id[40];
    char token[ML_PROCESSOR_ID_MAX + 1];
    char brand[16];
    char last4[5];
    int outstanding; //  charges asked and not answered yet
    bool waiting;    //  its request was answered "waiting_for": the reply goes to ready
    json_t *reply;   //  once finished
} s_flow_t;

static void s_flow_destroy (s_flow_t **self_p)
{
    if (*self_p) {
        s_flow_t *self = *self_p;
        s_order_free (&self->order);
        json_decref (self->request);
        json_decref (self->reply);
        free (self);
        *self_p = NULL;
    }
}

typedef struct {
    char waiter[ML_PROCESSOR_KEY_MAX + 1];
    json_t *reply;
} s_ready_t;

static void s_ready_destroy (s_ready_t **self_p)
{
    if (*self_p) {
        json_decref ((*self_p)->reply);
        free (*self_p);
        *self_p = NULL;
    }
}

//  A store written before balance holds existed may have charges still open without one:
//  give them their hold now, so they too count against the balance until final.
static int s_hold_upgrade (ml_payments_t *self)
{
    json_t *open = ml_store_rows (
        ml_odbc_query (self->odbc,
                       "SELECT c.charge_key, c.lines, p.firm_id FROM charge c"
                       " JOIN payment p ON p.payment_uuid = c.payment_uuid"
                       " WHERE c.status IN ('pending', 'unknown') AND NOT EXISTS"
                       " (SELECT 1 FROM balance_hold h WHERE h.hold_key = c.charge_key)",
                       NULL),
        s_integer_column);
    if (!open)
        return -1;
    bool ok = json_array_size (open) == 0 || ml_odbc_begin (self->odbc) == 0;
    size_t index;
    json_t *charge;
    json_array_foreach (open, index, charge)
    {
        json_t *lines = json_loads (json_string_value (json_object_get (charge, "lines")), 0, NULL);
        ok = ok && s_hold (self, json_string_value (json_object_get (charge, "firm_id")),
                           json_string_value (json_object_get (charge, "charge_key")), lines) == 0;
        json_decref (lines);
    }
    if (json_array_size (open) > 0 && (!ok || ml_odbc_commit (self->odbc) != 0)) {
        ml_odbc_rollback (self->odbc);
        ok = false;
    }
    json_decref (open);
    return ok ? 0 : -1;
}

ml_payments_t *ml_payments_new (ml_store_t *store, ml_payers_t *payers, ml_processor_t *processor,
                                ml_mailer_t *mailer, char *error, size_t error_size)
{
    assert (store && payers);
    ml_odbc_t *odbc = ml_store_odbc (store);
    if (ml_store_schema (odbc, s_schema, sizeof s_schema / sizeof s_schema[0], "payments tables",
                         error, error_size) != 0)
        return NULL;
    ml_payments_t *self = calloc (1, sizeof (ml_payments_t));
    assert (self);
    self->store = store;
    self->odbc = odbc;
    self->payers = payers;
    self->processor = processor;
    self->mailer = mailer;
    self->calls = zhashx_new ();
    self->flows = zhashx_new ();
    zhashx_set_destructor (self->flows, (zhashx_destructor_fn *)s_flow_destroy);
    self->ready = zlistx_new ();
    zlistx_set_destructor (self->ready, (zlistx_destructor_fn *)s_ready_destroy);
    if (s_hold_upgrade (self) != 0) {
        snprintf (error, error_size, "cannot hold the lines of open charges: %s",
                  ml_odbc_error (odbc)->message);
        ml_payments_destroy (&self);
    }
    return self;
}

void ml_payments_destroy (ml_payments_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_payments_t *self = *self_p;
        //  Calls never answered (the core stopped first) are only forgotten: their charges
        //  stay pending in the store and are resolved by lookup at the next start.
        if (self->calls)
            for (void *call = zhashx_first (self->calls); call; call = zhashx_next (self->calls))
                free (call);
        zhashx_destroy (&self->calls);
        zhashx_destroy (&self->flows);
        zlistx_destroy (&self->ready);
        free (self);
        *self_p = NULL;
    }
}

void ml_payments_set_worker (ml_payments_t *self, zactor_t *worker)
{
    assert (self);
    self->worker = worker;
}

static bool s_integer_column (const char *name)
{
    static const char *integers[] = {"amount_minor", "fee_minor", "attempts", "payer_id"};
    for (size_t index = 0; index < sizeof integers / sizeof integers[0]; index++)
        if (streq (name, integers[index]))
            return true;
    return false;
}

static json_t *s_rows (ml_payments_t *self, const char *sql, const char *picture, const char *text)
{
    return ml_store_rows (ml_odbc_query (self->odbc, sql, picture, text), s_integer_column);
}

static json_t *s_store_failed (ml_payments_t *self, const char *doing)
{
    ml_log (ML_LOG_ERROR, "payments: %s failed: %s", doing, ml_odbc_error (self->odbc)->message);
    ml_odbc_rollback (self->odbc);
    return ml_admin_error ("the core store failed; see the core's log");
}

//  Auto-apply -------------------------------------------------------------------------------

json_t *ml_payments_allocate (ml_store_t *store, const char *firm_id, const char *client,
                              const char *matter, const char *amount_text, const char *currency,
                              ml_line_t *lines, size_t *count, int64_t *amount, char *client_number,
                              char *chosen)
{
    json_t *mismatch = ml_admin_client_matter_check (store, firm_id, client, matter);
    if (mismatch)
        return mismatch;
    json_t *items = ml_store_open_items (store, firm_id, client, matter, NULL);
    if (!items)
        return ml_admin_error ("the core store failed; see the core's log");
    const char *whose_kind = client ? "client" : "matter";
    const char *whose = client ? client : matter;
    json_t *reply = NULL;
    size_t index;
    json_t *item;
    if (json_array_size (items) == 0)
        reply = ml_admin_error ("%s %s has no open invoices at the core (is the number right, "
                                "and is the firm's agent connected?)",
                                whose_kind, whose);
    //  One charge is in one currency: without an explicit choice, all items must agree.
    snprintf (chosen, 4, "%s",
              currency ? currency
              : reply
                  ? ""
                  : json_string_value (json_object_get (json_array_get (items, 0), "currency")));
    bool any_in_currency = false;
    json_array_foreach (items, index, item)
    {
        bool same = streq (json_string_value (json_object_get (item, "currency")), chosen);
        any_in_currency |= same;
        if (!reply && !currency && !same)
            reply = ml_admin_error ("%s %s has invoices in more than one currency: say which "
                                    "with 'currency'",
                                    whose_kind, whose);
    }
    if (!reply && !any_in_currency)
        reply = ml_admin_error ("%s %s has no open invoices in %s", whose_kind, whose, chosen);
    const char *parse_error = NULL;
    if (!reply && (ml_money_parse (amount_text, chosen, amount, &parse_error) != 0 || *amount <= 0))
        reply = ml_admin_error ("amount '%s' is not a positive %s amount%s%s", amount_text, chosen,
                                parse_error ? ": " : "", parse_error ? parse_error : "");
    if (reply) {
        json_decref (items);
        return reply;
    }
    ml_alloc_item_t *candidates = calloc (json_array_size (items), sizeof (ml_alloc_item_t));
    assert (candidates);
    size_t candidate_count = 0;
    int64_t available_total = 0;
    json_array_foreach (items, index, item)
    {
        if (!streq (json_string_value (json_object_get (item, "currency")), chosen))
            continue;
        ml_alloc_item_t *candidate = &candidates[candidate_count++];
        ml_alloc_item_from_json (item, candidate);
        //  Only shown in a refusal: balances may sum past 64 bits, so it saturates.
        if (__builtin_add_overflow (available_total, candidate->available_minor, &available_total))
            available_total = INT64_MAX;
        snprintf (client_number, 64, "%s",
                  json_string_value (json_object_get (item, "client_number")));
    }
    int64_t unapplied = 0;
    *count = ml_alloc_oldest_first (candidates, candidate_count, *amount, lines, ML_MAX_LINES,
                                    &unapplied);
    free (candidates);
    json_decref (items);
    if (unapplied > 0) {
        //  A surplus is refused: this release records no unapplied credit.
        char shown[64], open[64];
        ml_money_format (*amount, chosen, shown, sizeof shown);
        ml_money_format (available_total, chosen, open, sizeof open);
        return ml_admin_error ("%s is more than the %s open on %s %s%s; nothing was charged or "
                               "posted",
                               shown, open, whose_kind, whose,
                               *count == ML_MAX_LINES ? " within 500 invoices" : "");
    }
    return NULL;
}

//  pay_key ----------------------------------------------------------------------------------

json_t *ml_payments_pay_once (ml_store_t *store, const char *firm_id, const json_t *request,
                              char *posting_uuid)
{
    *posting_uuid = 0;
    json_t *value = json_object_get (request, "pay_key");
    if (!value)
        return NULL;
    const char *key = json_string_value (value);
    size_t length = key ? strlen (key) : 0;
    bool valid = key && length >= 1 && length <= 80 && length == json_string_length (value) &&
                 isalnum ((unsigned char)*key);
    for (size_t index = 0; valid && index < length; index++)
        valid = isalnum ((unsigned char)key[index]) || strchr ("-_.:", key[index]);
    if (!valid)
        return ml_admin_error ("'pay_key' must be 1 to 80 letters, digits, '-', '_', '.' or ':', "
                               "starting with a letter or digit");
    //  The posting's UUID follows from the firm and the key (SHA-1, laid out as a version 5
    //  UUID): the posting itself is the record that the key was used, written in the same
    //  transaction as the payment, so a repeat can never post twice whatever stopped when.
    zdigest_t *hash = zdigest_new ();
    const char *parts[] = {"matterlink pay_key", firm_id, key};
    for (size_t index = 0; index < 3; index++)
        zdigest_update (hash, (const byte *)parts[index], strlen (parts[index]) + 1);
    const byte *digest = zdigest_data (hash);
    byte bytes[16];
    memcpy (bytes, digest, 16);
    zdigest_destroy (&hash);
    bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50);
    bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
    char *cursor = posting_uuid;
    for (size_t index = 0; index < 16; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10)
            *cursor++ = '-';
        cursor += sprintf (cursor, "%02x", bytes[index]);
    }
    json_t *posting = ml_store_posting (store, posting_uuid);
    if (!posting)
        return NULL; //  not used yet (or the store failed: then recording it fails too)
    //  Used: the first result, as the first reply gave it, unless the request differs.
    const char *currency = json_string_value (json_object_get (posting, "currency"));
    const char *amount_text = json_string_value (json_object_get (request, "amount"));
    int64_t amount = 0, first = json_integer_value (json_object_get (posting, "amount_minor"));
    const char *problem = NULL;
    json_t *reply;
    if (amount_text &&
        (ml_money_parse (amount_text, currency, &amount, &problem) != 0 || amount != first)) {
        char shown[64];
        ml_money_format (first, currency, shown, sizeof shown);
        reply = ml_admin_error ("pay_key '%s' was used for a payment of %s %s (posting %s): "
                                "give a new key for another payment",
                                key, shown, currency, posting_uuid);
    } else {
        json_t *lines = json_array ();
        size_t index;
        json_t *line;
        json_array_foreach (json_object_get (posting, "lines"), index, line)
        {
            json_array_append_new (lines,
                                   json_pack ("{s:O, s:O}", "invoice_number",
                                              json_object_get (line, "reference"), "amount_minor",
                                              json_object_get (line, "amount_minor")));
        }
        reply = ml_admin_ok (json_pack (
            "{s:s, s:s, s:O, s:s, s:I, s:o, s:b}", "posting_uuid", posting_uuid, "firm_id", firm_id,
            "client_number", json_object_get (posting, "client_number"), "currency", currency,
            "amount_minor", (json_int_t)first, "lines", lines, "repeated", 1));
    }
    json_decref (posting);
    return reply;
}

//  Accounts ---------------------------------------------------------------------------------

static json_t *s_account_add (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *number = ml_admin_argument (request, "number", 63, problem, sizeof problem);
    const char *type = ml_admin_argument (request, "type", 16, problem, sizeof problem);
    const char *currency = ml_admin_argument (request, "currency", 3, problem, sizeof problem);
    const char *merchant =
        ml_admin_argument (request, "merchant_account", 64, problem, sizeof problem);
    if (!*problem && (!firm || !number || !*number || !type || !currency || !merchant))
        snprintf (problem, sizeof problem,
                  "'firm', 'number', 'type', 'currency' and 'merchant_account' are required");
    if (!*problem && !streq (type, "TRUST") && !streq (type, "OPERATING"))
        snprintf (problem, sizeof problem, "'type' must be TRUST or OPERATING");
    if (!*problem && ml_money_exponent (currency) < 0)
        snprintf (problem, sizeof problem, "'%s' is not a currency code", currency);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_error ("unknown firm '%s'", firm);
    json_decref (known);
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_odbc_begin (self->odbc) != 0)
        return s_store_failed (self, "account-add");
    int64_t added = ml_odbc_execute (
        self->odbc,
        "INSERT INTO account (firm_id, account_number, account_type, currency, merchant_account,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        "ssssss", firm, number, type, currency, merchant, now);
    if (added != 1) {
        ml_odbc_rollback (self->odbc);
        return ml_admin_error ("firm %s already has account %s, or a %s account in %s (accounts "
                               "are never changed or removed)",
                               firm, number, type, currency);
    }
    if (ml_odbc_commit (self->odbc) != 0)
        return s_store_failed (self, "account-add");
    ml_log (ML_LOG_NOTICE, "payments: firm %s: %s account %s (%s) added", firm, type, number,
            currency);
    return ml_admin_ok (json_pack ("{s:{s:s, s:s, s:s, s:s, s:s}}", "account", "firm_id", firm,
                                   "account_number", number, "account_type", type, "currency",
                                   currency, "merchant_account", merchant));
}

//  The firm's account of a type in a currency, as a JSON object (new), or NULL if none.
static json_t *s_account (ml_payments_t *self, const char *firm, const char *type,
                          const char *currency)
{
    json_t *rows = ml_store_rows (
        ml_odbc_query (self->odbc,
                       "SELECT account_number, account_type, currency, merchant_account FROM"
                       " account WHERE firm_id = ? AND account_type = ? AND currency = ?",
                       "sss", firm, type, currency),
        s_integer_column);
    json_t *account = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return account;
}

//  Building a payment -------------------------------------------------------------------------

//  Add a line to its group; its sum stays within the one limit (ml_money.h): lines each
//  under it can sum to more, and a charge for that could be approved but never post.
static json_t *s_group_add (s_group_t *group, char kind, const char *reference, int64_t amount)
{
    const char *why = NULL;
    if (ml_money_add (&group->amount, amount, &why) != 0)
        return ml_admin_error ("the %s lines: %s; pay in several payments", group->type, why);
    char kind_text[2] = {kind, 0};
    json_array_append_new (group->lines,
                           json_pack ("[s, s, I]", kind_text, reference, (json_int_t)amount));
    return NULL;
}

//  Check one explicit line against the replica and add it to its group. Returns NULL or an
//  error reply. client_number is set by the first line and must match the others.
static json_t *s_explicit_line (ml_payments_t *self, const char *firm, const json_t *line,
                                s_group_t *invoices, s_group_t *trust, char *client_number)
{
    const char *invoice = json_string_value (json_object_get (line, "invoice"));
    const char *matter = json_string_value (json_object_get (line, "trust"));
    json_t *amount_value = json_object_get (line, "amount_minor");
    if (!json_is_object (line) || (!invoice == !matter) || !json_is_integer (amount_value) ||
        json_integer_value (amount_value) <= 0 || json_object_size (line) != 2)
        return ml_admin_error ("each line is {\"invoice\": NUMBER, \"amount_minor\": N} or "
                               "{\"trust\": MATTER NUMBER, \"amount_minor\": N}, N > 0");
    const char *number = invoice ? invoice : matter;
    const char *over = NULL;
    if (ml_money_check (json_integer_value (amount_value), &over) != 0)
        return ml_admin_error ("the line for %s: %s", number, over);
    if (strlen (number) == 0 || strlen (number) > 63)
        return ml_admin_error ("a line's number must be 1 to 63 bytes");
    int64_t amount = json_integer_value (amount_value);
    char line_client[64] = "";
    if (invoice) {
        json_t *rows = ml_store_open_items (self->store, firm, NULL, NULL, invoice);
        json_t *row = json_array_get (rows, 0);
        if (!row) {
            json_decref (rows);
            return ml_admin_error ("invoice %s is not open at the core", invoice);
        }
        int64_t available = json_integer_value (json_object_get (row, "available_minor"));
        const char *currency = json_string_value (json_object_get (row, "currency"));
        snprintf (line_client, sizeof line_client, "%s",
                  json_string_value (json_object_get (row, "client_number")));
        json_t *problem = NULL;
        if (amount > available) {
            char shown[64], open[64];
            ml_money_format (amount, currency, shown, sizeof shown);
            ml_money_format (available, currency, open, sizeof open);
            problem = ml_admin_error ("%s is more than the %s available on invoice %s (its "
                                      "balance minus postings not yet applied)",
                                      shown, open, invoice);
        } else if (*invoices->currency && !streq (invoices->currency, currency))
            problem = ml_admin_error ("the invoices are in more than one currency; pay them "
                                      "separately");
        else {
            snprintf (invoices->currency, sizeof invoices->currency, "%s", currency);
            for (size_t index = 0; index < json_array_size (invoices->lines); index++)
                if (streq (json_string_value (
                               json_array_get (json_array_get (invoices->lines, index), 1)),
                           invoice))
                    problem = ml_admin_error ("invoice %s is selected twice", invoice);
        }
        json_decref (rows);
        if (!problem)
            problem = s_group_add (invoices, 'I', invoice, amount);
        if (problem)
            return problem;
    } else {
        json_t *known = ml_store_matter (self->store, firm, matter);
        if (!known)
            return ml_admin_error ("the core store failed; see the core's log");
        const char *client = json_string_value (json_object_get (known, "client_number"));
        const char *currency = json_string_value (json_object_get (known, "trust_currency"));
        if (!client) {
            json_decref (known);
            return ml_admin_error ("matter %s is not known at the core", matter);
        }
        snprintf (line_client, sizeof line_client, "%s", client);
        //  A matter's trust entries share one currency: an existing ledger decides it.
        if (currency && *trust->currency && !streq (currency, trust->currency)) {
            json_decref (known);
            return ml_admin_error ("the trust ledgers are in more than one currency");
        }
        if (currency)
            snprintf (trust->currency, sizeof trust->currency, "%s", currency);
        json_decref (known);
        json_t *problem = s_group_add (trust, 'T', matter, amount);
        if (problem)
            return problem;
    }
    if (*client_number && !streq (client_number, line_client))
        return ml_admin_error ("every line of one payment must belong to one client (%s and %s "
                               "differ)",
                               client_number, line_client);
    snprintf (client_number, 64, "%s", line_client);
    return NULL;
}

//  A saved method of the payer: fills token, brand and last4. Returns NULL or an error reply.
static json_t *s_saved_method (const json_t *payer, const json_t *method_id, char *token,
                               char *brand, char *last4)
{
    size_t index;
    json_t *method;
    json_array_foreach (json_object_get (payer, "methods"), index, method)
    {
        if (json_equal (json_object_get (method, "method_id"), method_id)) {
            snprintf (token, ML_PROCESSOR_ID_MAX + 1, "%s",
                      json_string_value (json_object_get (method, "processor_token")));
            snprintf (brand, 16, "%s", json_string_value (json_object_get (method, "brand")));
            snprintf (last4, 5, "%s", json_string_value (json_object_get (method, "last4")));
            return NULL;
        }
    }
    return ml_admin_error ("the payer has no saved method %lld",
                           (long long)json_integer_value (method_id));
}

//  Charging -----------------------------------------------------------------------------------

//  What the core records about a charge and about a reversal of one (refund, void,
//  chargeback): both are a processor operation under a stored key that, once approved, makes
//  exactly one posting, whose UUID was fixed when the row was stored. A reversal's posting
//  names the charge's posting it reverses; its lines are what it takes back.
typedef struct {
    const char *name;   //  for logs
    const char *update; //  (status, processor_txn, reason, updated_at, key)
    const char *source; //  (key) -> the posting's fields
} s_operation_t;

static const s_operation_t s_charge_operation = {
    "charge",
    "UPDATE charge SET status = ?, processor_txn = ?, reason = ?, attempts = attempts + 1,"
    " updated_at = ? WHERE charge_key = ? AND status IN ('pending', 'unknown')",
    "SELECT c.account_number, c.currency, c.amount_minor, c.lines, c.posting_uuid, p.firm_id,"
    " p.client_number, p.payer_name, p.payer_email, p.ar_message, '' AS reverses, p.source"
    " FROM charge c"
    " JOIN payment p ON p.payment_uuid = c.payment_uuid WHERE c.charge_key = ?"};

static const s_operation_t s_reversal_operation = {
    "reversal",
    "UPDATE reversal SET status = ?, processor_txn = ?, reason = ?, attempts = attempts + 1,"
    " updated_at = ? WHERE reversal_key = ? AND status IN ('pending', 'unknown')",
    "SELECT c.account_number, c.currency, v.amount_minor, v.lines, v.posting_uuid, p.firm_id,"
    " p.client_number, p.payer_name, p.payer_email,"
    " v.kind || ' of payment ' || COALESCE (c.processor_txn, '') AS ar_message,"
    " c.posting_uuid AS reverses, 'reversal' AS source FROM reversal v JOIN charge c"
    " ON c.charge_key = v.charge_key"
    " JOIN payment p ON p.payment_uuid = c.payment_uuid WHERE v.reversal_key = ?"};

static bool s_unbooked (ml_payments_t *self, const char *posting_uuid, char *moved, size_t size);

//  Insert the posting of an approved operation, inside the caller's transaction.
static bool s_posting_of (ml_payments_t *self, const s_operation_t *operation, const char *key,
                          const char *txn, char *deliver_firm, size_t size)
{
    json_t *rows =
        ml_store_rows (ml_odbc_query (self->odbc, operation->source, "s", key), s_integer_column);
    json_t *row = json_array_get (rows, 0);
    json_t *lines =
        row ? json_loads (json_string_value (json_object_get (row, "lines")), 0, NULL) : NULL;
    bool ok = row && json_is_array (lines);
    ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
    ml_posting_t *posting = &message->posting;
    if (ok) {
#define S_FIELD(field, column)                                                                     \
    snprintf (posting->field, sizeof posting->field, "%s",                                         \
              json_string_value (json_object_get (row, column)))
        S_FIELD (posting_uuid, "posting_uuid");
        S_FIELD (account_number, "account_number");
        S_FIELD (client_number, "client_number");
        S_FIELD (payer_name, "payer_name");
        S_FIELD (payer_email, "payer_email");
        S_FIELD (ar_message, "ar_message");
        S_FIELD (currency, "currency");
        S_FIELD (reverses, "reverses");
#undef S_FIELD
        snprintf (posting->processor_txn, sizeof posting->processor_txn, "%.127s", txn);
        posting->amount_minor = json_integer_value (json_object_get (row, "amount_minor"));
        size_t count = json_array_size (lines);
        ml_line_t *parts = calloc (count ? count : 1, sizeof (ml_line_t));
        assert (parts);
        for (size_t index = 0; index < count; index++) {
            json_t *part = json_array_get (lines, index);
            parts[index].kind = *json_string_value (json_array_get (part, 0));
            snprintf (parts[index].reference, sizeof parts[index].reference, "%s",
                      json_string_value (json_array_get (part, 1)));
            parts[index].amount_minor = json_integer_value (json_array_get (part, 2));
        }
        ok = ml_msg_set_lines (message, parts, count) == 0;
        free (parts);
        snprintf (deliver_firm, size, "%s", json_string_value (json_object_get (row, "firm_id")));
    }
    //  A refund of a charge whose posting was rejected (and not reallocated) has nothing to
    //  reverse in the books: it makes no posting.
    char moved[128] = "";
    if (ok && *posting->reverses && s_unbooked (self, posting->reverses, moved, sizeof moved)) {
        ml_log (ML_LOG_NOTICE,
                "payments: %s %s gives back money of rejected posting %s: no "
                "reversing posting",
                operation->name, key, posting->reverses);
        ml_msg_destroy (&message);
        json_decref (lines);
        json_decref (rows);
        return true;
    }
    //  An Auto-Pay run's postings say so, so the postings list tells them from staff payments.
    const char *source = json_string_value (json_object_get (row, "source"));
    source = *posting->reverses                    ? "reversal"
             : source && streq (source, "autopay") ? "autopay"
                                                   : "payment";
    ok = ok && ml_store_posting_insert (self->store, deliver_firm, posting, source) == 0;
    ml_msg_destroy (&message);
    json_decref (lines);
    json_decref (rows);
    return ok;
}

//  Record an operation's outcome and (approved) make its posting, in one store transaction:
//  it is approved with its posting or not at all, and at most once.
static int s_record (ml_payments_t *self, const s_operation_t *operation, const char *key,
                     ml_processor_status_t status, const ml_processor_result_t *result,
                     char *deliver_firm, size_t size)
{
    const char *state = status == ML_PROCESSOR_APPROVED   ? "approved"
                        : status == ML_PROCESSOR_DECLINED ? "declined"
                        : status == ML_PROCESSOR_ERROR    ? "error"
                                                          : "unknown";
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_odbc_begin (self->odbc) != 0)
        return -1;
    int64_t changed = ml_odbc_execute (self->odbc, operation->update, "sssss", state,
                                       *result->txn ? result->txn : NULL,
                                       *result->reason ? result->reason : NULL, now, key);
    bool ok = changed >= 0;
    if (ok && changed == 1 && status == ML_PROCESSOR_APPROVED)
        ok = s_posting_of (self, operation, key, result->txn, deliver_firm, size);
    //  Final: the charge's hold on its lines ends here, as its posting (if any) takes over
    //  in the same transaction, so the balance is never free in between.
    if (ok && changed == 1 && status != ML_PROCESSOR_UNKNOWN && operation == &s_charge_operation)
        ok = ml_store_hold_release (self->store, key) == 0;
    if (!ok || ml_odbc_commit (self->odbc) != 0) {
        ml_log (ML_LOG_ERROR, "payments: recording %s %s failed: %s", operation->name, key,
                ml_odbc_error (self->odbc)->message);
        ml_odbc_rollback (self->odbc);
        return -1;
    }
    ml_log (status == ML_PROCESSOR_APPROVED ? ML_LOG_NOTICE : ML_LOG_WARNING,
            "payments: %s %s %s%s%s", operation->name, key, state, *result->reason ? ": " : "",
            result->reason);
    return 0;
}

//  A new processor call (owned by the caller until submitted).
static s_call_t *s_call_new (s_purpose_t purpose, const char *key, const char *flow)
{
    s_call_t *call = calloc (1, sizeof (s_call_t));
    assert (call);
    call->purpose = purpose;
    snprintf (call->call.key, sizeof call->call.key, "%s", key);
    snprintf (call->flow, sizeof call->flow, "%s", flow ? flow : "");
    return call;
}

//  The call that charges a stored charge (a row of S_CHARGE_SQL) with its stored key.
static s_call_t *s_charge_call (const json_t *charge, const char *flow)
{
    s_call_t *call =
        s_call_new (S_FOR_CHARGE, json_string_value (json_object_get (charge, "charge_key")), flow);
    ml_processor_call_t *made = &call->call;
    made->operation = ML_PROCESSOR_CHARGE;
    snprintf (made->token, sizeof made->token, "%s",
              json_string_value (json_object_get (charge, "token")));
    made->amount_minor = json_integer_value (json_object_get (charge, "amount_minor"));
    snprintf (made->currency, sizeof made->currency, "%s",
              json_string_value (json_object_get (charge, "currency")));
    snprintf (made->merchant_account, sizeof made->merchant_account, "%s",
              json_string_value (json_object_get (charge, "merchant_account")));
    //  Not the key: a UUID can hold a digit run the processor takes for a card number.
    snprintf (made->description, sizeof made->description, "law firm payment, %s account",
              json_string_value (json_object_get (charge, "account_type")));
    return call;
}

static int s_completed (ml_payments_t *self, s_call_t *call, char *deliver_firm, size_t size);

//  Ask for a call: the worker makes it and the answer comes back through
//  ml_payments_completed; without a worker it is made now and answered at once. At most
//  one call per key is asked at a time. Returns how many operations reached a final
//  outcome now (only without a worker).
static int s_submit (ml_payments_t *self, s_call_t *call, char *deliver_firm, size_t size)
{
    if (zhashx_lookup (self->calls, call->call.key)) {
        free (call); //  already asked: its answer will come
        return 0;
    }
    zhashx_insert (self->calls, call->call.key, call);
    if (self->worker) {
        zsock_send (self->worker, "sp", "CALL", &call->call);
        return 0;
    }
    ml_processor_call (self->processor, &call->call);
    return s_completed (self, call, deliver_firm, size);
}

#define S_CHARGE_SQL                                                                               \
    "SELECT c.charge_key, c.account_number, c.account_type, c.merchant_account, c.currency,"       \
    " c.amount_minor, c.fee_minor, c.status, c.processor_txn, c.reason, c.posting_uuid,"           \
    " p.token FROM charge c JOIN payment p ON p.payment_uuid = c.payment_uuid"

static json_t *s_payment_json (ml_payments_t *self, const char *payment_uuid)
{
    json_t *payments =
        s_rows (self,
                "SELECT payment_uuid, firm_id, source, staff, payer_id, payer_name, payer_email,"
                " receipt_email, client_number, brand, last4, created_at FROM payment"
                " WHERE payment_uuid = ?",
                "s", payment_uuid);
    json_t *payment = json_incref (json_array_get (payments, 0));
    json_decref (payments);
    if (!payment)
        return NULL;
    json_t *charges = s_rows (self, S_CHARGE_SQL " WHERE c.payment_uuid = ? ORDER BY c.charge_key",
                              "s", payment_uuid);
    size_t index;
    json_t *charge;
    const char *summary = NULL;
    json_array_foreach (charges, index, charge)
    {
        json_object_del (charge, "token");
        const char *status = json_string_value (json_object_get (charge, "status"));
        summary = !summary || streq (summary, status) ? status : "partial";
    }
    json_object_set_new (payment, "charges", charges ? charges : json_array ());
    json_object_set_new (payment, "status", json_string (summary ? summary : "none"));
    return payment;
}

static void s_order_init (s_order_t *order)
{
    memset (order, 0, sizeof *order);
    order->groups[0] = (s_group_t){"OPERATING", "", 0, json_array ()};
    order->groups[1] = (s_group_t){"TRUST", "", 0, json_array ()};
}

static void s_order_free (s_order_t *order)
{
    for (int group = 0; group < 2; group++) {
        json_decref (order->groups[group].lines);
        json_decref (order->accounts[group]);
    }
    json_decref (order->payer);
}

//  The selection as explicit lines ([{"invoice"|"trust": number, "amount_minor": n}]), the
//  form a payment link keeps.
static json_t *s_order_lines (const s_order_t *order)
{
    json_t *lines = json_array ();
    for (int group = 0; group < 2; group++) {
        size_t index;
        json_t *line;
        json_array_foreach (order->groups[group].lines, index, line)
        {
            json_array_append_new (lines, json_pack ("{s:O, s:O}", group == 0 ? "invoice" : "trust",
                                                     json_array_get (line, 1), "amount_minor",
                                                     json_array_get (line, 2)));
        }
    }
    return lines;
}

//  Read and check a request's payer, message and selection into order, and find the
//  accounts. Returns NULL or the error reply; nothing is stored.
static json_t *s_order_parse (ml_payments_t *self, const json_t *request, s_order_t *order)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    const char *payer_name =
        ml_admin_argument (request, "payer_name", 200, problem, sizeof problem);
    const char *payer_email =
        ml_admin_argument (request, "payer_email", 254, problem, sizeof problem);
    const char *receipt_email =
        ml_admin_argument (request, "receipt_email", 254, problem, sizeof problem);
    const char *ar_message =
        ml_admin_argument (request, "ar_message", 1000, problem, sizeof problem);
    const char *typed_in = ml_admin_argument (request, "currency", 3, problem, sizeof problem);
    json_t *payer_value = json_object_get (request, "payer_id");
    json_t *lines = json_object_get (request, "lines");
    json_t *automatic = json_object_get (request, "auto");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm)
        return ml_admin_error ("'firm' is required");
    if (typed_in && ml_money_exponent (typed_in) < 0)
        return ml_admin_error ("'%s' is not a currency code", typed_in);
    if (payer_value && (!json_is_integer (payer_value) || json_integer_value (payer_value) < 1))
        return ml_admin_error ("'payer_id' must be a payer's number");
    if ((lines && (!json_is_array (lines) || json_array_size (lines) > ML_MAX_LINES)) ||
        (automatic && !json_is_object (automatic)) || (!lines && !automatic))
        return ml_admin_error ("say what to pay: 'lines' (at most 500) and/or 'auto' "
                               "({client or matter, amount})");
    snprintf (order->firm, sizeof order->firm, "%s", firm);
    snprintf (order->staff, sizeof order->staff, "%s", staff ? staff : "");
    snprintf (order->ar_message, sizeof order->ar_message, "%s", ar_message ? ar_message : "");
    //  The payer: a saved one (its name, e-mail and methods), or a name and e-mail given now.
    order->payer_id = payer_value ? json_integer_value (payer_value) : 0;
    if (order->payer_id) {
        json_t *show = json_pack ("{s:I}", "payer_id", (json_int_t)order->payer_id);
        json_t *shown = ml_payers_execute (self->payers, "payer-show", show);
        json_decref (show);
        if (!json_is_true (json_object_get (shown, "ok")))
            return shown;
        order->payer = json_incref (json_object_get (shown, "payer"));
        json_decref (shown);
        if (!streq (json_string_value (json_object_get (order->payer, "firm_id")), firm))
            return ml_admin_error ("payer %lld belongs to another firm",
                                   (long long)order->payer_id);
        payer_name = json_string_value (json_object_get (order->payer, "name"));
        payer_email = json_string_value (json_object_get (order->payer, "email"));
    } else if (!payer_name || !*payer_name || !payer_email || !strchr (payer_email, '@'))
        return ml_admin_error ("a payment needs 'payer_id', or 'payer_name' and 'payer_email'");
    if (receipt_email && *receipt_email && !strchr (receipt_email, '@'))
        return ml_admin_error ("'receipt_email' is not an e-mail address");
    snprintf (order->payer_name, sizeof order->payer_name, "%s", payer_name);
    snprintf (order->payer_email, sizeof order->payer_email, "%s", payer_email);
    snprintf (order->receipt_email, sizeof order->receipt_email, "%s",
              receipt_email && *receipt_email ? receipt_email : payer_email);

    //  The selection, grouped by deposit account type.
    s_group_t *invoices = &order->groups[0], *trust = &order->groups[1];
    json_t *reply = NULL;
    if (automatic) {
        //  Trust is never auto-applied (rule 3): a trust member is refused, not ignored.
        reply = json_object_get (automatic, "trust")
                    ? ml_admin_error ("trust is never auto-applied: give the deposit as a line "
                                      "{\"trust\": MATTER, \"amount_minor\": N} in 'lines'")
                    : ml_admin_members (automatic, "client matter amount currency", "'auto'");
        if (reply)
            return reply;
        char part[256] = "";
        const char *client = ml_admin_argument (automatic, "client", 63, part, sizeof part);
        const char *matter = ml_admin_argument (automatic, "matter", 63, part, sizeof part);
        const char *amount_text = ml_admin_argument (automatic, "amount", 40, part, sizeof part);
        const char *currency = ml_admin_argument (automatic, "currency", 3, part, sizeof part);
        if (!*part && ((!client == !matter) || !amount_text))
            snprintf (part, sizeof part, "'auto' is {client or matter, amount[, currency]}");
        if (*part)
            return ml_admin_error ("%s", part);
        ml_line_t *auto_lines = calloc (ML_MAX_LINES, sizeof (ml_line_t));
        assert (auto_lines);
        size_t count = 0;
        int64_t amount = 0;
        reply = ml_payments_allocate (self->store, firm, client, matter, amount_text, currency,
                                      auto_lines, &count, &amount, order->client_number,
                                      invoices->currency);
        //  Trust is never auto-applied: auto lines are invoices only (rule 3).
        for (size_t index = 0; !reply && index < count; index++)
            reply = s_group_add (invoices, 'I', auto_lines[index].reference,
                                 auto_lines[index].amount_minor);
        free (auto_lines);
    }
    size_t index;
    json_t *line;
    json_array_foreach (lines, index, line)
    {
        if (reply)
            break;
        reply = s_explicit_line (self, firm, line, invoices, trust, order->client_number);
    }
    if (!reply && json_array_size (invoices->lines) + json_array_size (trust->lines) > ML_MAX_LINES)
        reply = ml_admin_error ("a payment has at most 500 lines");
    //  Each group's account: never the other type's (rule 2).
    for (int group = 0; !reply && group < 2; group++) {
        s_group_t *part = &order->groups[group];
        if (json_array_size (part->lines) == 0)
            continue;
        if (!*part->currency) {
            //  A first deposit into a matter's trust: the firm's trust account decides.
            json_t *any = s_rows (self,
                                  "SELECT currency FROM account WHERE firm_id = ? AND"
                                  " account_type = 'TRUST' ORDER BY currency LIMIT 1",
                                  "s", firm);
            const char *currency =
                json_string_value (json_object_get (json_array_get (any, 0), "currency"));
            snprintf (part->currency, sizeof part->currency, "%s", currency ? currency : "USD");
            json_decref (any);
        }
        //  Amounts typed in one currency must not land on lines kept in another: 500 meant
        //  as dollars is not 500 yen.
        if (typed_in && !streq (typed_in, part->currency)) {
            reply = ml_admin_error ("the %s lines are in %s, not %s: give the amounts in %s",
                                    group == 0 ? "invoice" : "trust", part->currency, typed_in,
                                    part->currency);
            break;
        }
        order->accounts[group] = s_account (self, firm, part->type, part->currency);
        if (!order->accounts[group])
            reply = ml_admin_error ("firm %s has no %s account in %s (add one with 'matterlink "
                                    "account add')",
                                    firm, part->type, part->currency);
    }
    return reply;
}

//  Hold a charge's lines ([[kind, reference, amount_minor], ...]) against the balance until
//  it is final (ml_store_hold_add), inside the caller's transaction.
static int s_hold (ml_payments_t *self, const char *firm, const char *key, const json_t *lines)
{
    size_t count = json_array_size (lines);
    ml_line_t *held = calloc (count ? count : 1, sizeof (ml_line_t));
    assert (held);
    bool ok = true;
    for (size_t index = 0; index < count; index++) {
        json_t *line = json_array_get (lines, index);
        const char *kind = json_string_value (json_array_get (line, 0));
        const char *reference = json_string_value (json_array_get (line, 1));
        ok &= kind && reference && json_is_integer (json_array_get (line, 2));
        held[index].kind = kind ? *kind : 'I';
        snprintf (held[index].reference, sizeof held[index].reference, "%s",
                  reference ? reference : "");
        held[index].amount_minor = json_integer_value (json_array_get (line, 2));
    }
    int rc = ok ? ml_store_hold_add (self->store, firm, key, held, count) : -1;
    free (held);
    return rc;
}

//  Store the payment and its charges, each with its key and posting UUID, before any money
//  moves; then ask the processor to charge each in turn (an unknown outcome is resolved
//  later, not guessed). With a flow, returns NULL once the charges are asked (the flow's
//  reply follows their answers) or an error reply; without one, the reply with the payment
//  as it stands (pending while a worker charges it).
static json_t *s_order_charge (ml_payments_t *self, const s_order_t *order, const char *source,
                               const char *payment_uuid, const char *token, const char *brand,
                               const char *last4, s_flow_t *flow, char *deliver_firm, size_t size)
{
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_odbc_begin (self->odbc) != 0)
        return s_store_failed (self, "payment");
    bool ok = ml_odbc_execute (
                  self->odbc,
                  "INSERT INTO payment (payment_uuid, firm_id, source, staff, payer_id,"
                  " payer_name, payer_email, receipt_email, ar_message, client_number, token,"
                  " brand, last4, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  "ssssisssssssss", payment_uuid, order->firm, source, order->staff,
                  order->payer_id, order->payer_name, order->payer_email, order->receipt_email,
                  order->ar_message, order->client_number, token, brand, last4, now) == 1;
    for (int group = 0; ok && group < 2; group++) {
        if (!order->accounts[group])
            continue;
        const s_group_t *part = &order->groups[group];
        char key[80], posting_uuid[37];
        snprintf (key, sizeof key, "%s:%s", payment_uuid, group == 0 ? "operating" : "trust");
        ml_store_uuid (posting_uuid, sizeof posting_uuid);
        char *lines_text = json_dumps (part->lines, JSON_COMPACT | JSON_ENSURE_ASCII);
        ok = ml_odbc_execute (
                 self->odbc,
                 "INSERT INTO charge (charge_key, payment_uuid, account_number, account_type,"
                 " merchant_account, currency, amount_minor, lines, posting_uuid, status,"
                 " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                 "ssssssissss", key, payment_uuid,
                 json_string_value (json_object_get (order->accounts[group], "account_number")),
                 part->type,
                 json_string_value (json_object_get (order->accounts[group], "merchant_account")),
                 part->currency, part->amount, lines_text, posting_uuid, now, now) == 1;
        free (lines_text);
        ok = ok && s_hold (self, order->firm, key, part->lines) == 0;
    }
    if (!ok || ml_odbc_commit (self->odbc) != 0)
        return s_store_failed (self, "payment");
    json_t *charges = s_rows (self, S_CHARGE_SQL " WHERE c.payment_uuid = ? ORDER BY c.charge_key",
                              "s", payment_uuid);
    //  Every charge is counted before any is asked: without a worker each is answered at
    //  once, and the flow must not finish before the last.
    if (flow)
        flow->outstanding = (int)json_array_size (charges);
    size_t index;
    json_t *charge;
    json_array_foreach (charges, index, charge)
        s_submit (self, s_charge_call (charge, flow ? flow->id : NULL), deliver_firm, size);
    json_decref (charges);
    if (flow && charges)
        return NULL; //  the flow's reply is made when its charges are answered
    json_t *payment = s_payment_json (self, payment_uuid);
    return payment ? ml_admin_ok (json_pack ("{s:o}", "payment", payment))
                   : s_store_failed (self, "payment");
}

static json_t *s_selection_lines (ml_payments_t *self, const char *firm, const char *staff);

//  With "selection": true, the request's lines are the staff user's selection. Returns the
//  request to use (new reference; the same one without a selection), or NULL with *reply set.
static json_t *s_with_selection (ml_payments_t *self, const json_t *request, json_t **reply)
{
    *reply = NULL;
    if (!json_is_true (json_object_get (request, "selection")))
        return json_incref ((json_t *)request);
    const char *firm = json_string_value (json_object_get (request, "firm"));
    const char *staff = json_string_value (json_object_get (request, "staff"));
    if (json_object_get (request, "lines") || json_object_get (request, "auto"))
        *reply = ml_admin_error ("pay the selection, or 'lines' and 'auto', not both");
    else if (!firm || !staff)
        *reply = ml_admin_error ("a selection belongs to a 'firm' and a 'staff' user");
    if (*reply)
        return NULL;
    json_t *lines = s_selection_lines (self, firm, staff);
    if (!lines || json_array_size (lines) == 0) {
        json_decref (lines);
        *reply = ml_admin_error ("your selection is empty: add to it from searches first");
        return NULL;
    }
    json_t *copy = json_deep_copy (request);
    json_object_set_new (copy, "lines", lines);
    return copy;
}

//  Once a selection was paid (or sent as a link), it is done with.
static void s_selection_done (ml_payments_t *self, const json_t *request)
{
    if (!json_is_true (json_object_get (request, "selection")))
        return;
    ml_odbc_execute (self->odbc, "DELETE FROM selection_item WHERE firm_id = ? AND staff = ?", "ss",
                     json_string_value (json_object_get (request, "firm")),
                     json_string_value (json_object_get (request, "staff")));
}

//  Requests that wait for the processor -----------------------------------------------------

static json_t *s_link_row (ml_payments_t *self, const char *column, const char *value);

static s_flow_t *s_flow_new (s_flow_kind_t kind)
{
    s_flow_t *flow = calloc (1, sizeof (s_flow_t));
    assert (flow);
    flow->kind = kind;
    s_order_init (&flow->order);
    return flow;
}

//  The flow is finished with reply (stolen). If its request was told to wait, the reply
//  joins the ready ones and the flow is gone; else s_flow_answer gives it.
static void s_flow_end (ml_payments_t *self, s_flow_t *flow, json_t *reply)
{
    json_decref (flow->reply);
    flow->reply = reply;
    if (flow->waiting) {
        s_ready_t *ready = calloc (1, sizeof (s_ready_t));
        assert (ready);
        snprintf (ready->waiter, sizeof ready->waiter, "%s", flow->id);
        ready->reply = reply;
        flow->reply = NULL;
        zlistx_add_end (self->ready, ready);
        zhashx_delete (self->flows, flow->id);
    }
}

//  What the request that started the flow gets now: the reply if the flow is finished
//  (no worker: everything was answered at once), else {"ok": true, "waiting_for": ID}.
static json_t *s_flow_answer (ml_payments_t *self, s_flow_t *flow)
{
    if (flow->reply) {
        json_t *reply = flow->reply;
        flow->reply = NULL;
        zhashx_delete (self->flows, flow->id);
        return reply;
    }
    flow->waiting = true;
    return json_pack ("{s:b, s:s}", "ok", 1, "waiting_for", flow->id);
}

static json_t *s_reversal_reply (ml_payments_t *self, const char *key)
{
    json_t *stored = s_rows (self,
                             "SELECT reversal_key, charge_key, kind, amount_minor, lines,"
                             " posting_uuid, status, processor_txn, reason, staff, created_at"
                             " FROM reversal WHERE reversal_key = ?",
                             "s", key);
    json_t *reply = json_array_get (stored, 0)
                        ? ml_admin_ok (json_pack ("{s:O}", "reversal", json_array_get (stored, 0)))
                        : s_store_failed (self, "reversal");
    json_decref (stored);
    return reply;
}

//  Every call of the flow was answered: its reply, and what follows from the outcome.
static void s_flow_done (ml_payments_t *self, s_flow_t *flow)
{
    if (flow->kind == S_FLOW_REVERSAL) {
        s_flow_end (self, flow, s_reversal_reply (self, flow->id));
        return;
    }
    json_t *payment = s_payment_json (self, flow->payment_uuid);
    if (!payment) {
        s_flow_end (self, flow, s_store_failed (self, "payment"));
        return;
    }
    const char *status = json_string_value (json_object_get (payment, "status"));
    //  Money moved, or may have: a selection is done with, a link is spent. A decline
    //  keeps the selection, and the link outstanding for another try.
    bool moved = status && !streq (status, "declined") && !streq (status, "error");
    if (moved && flow->kind == S_FLOW_PAYMENT)
        s_selection_done (self, flow->request);
    if (moved && flow->kind == S_FLOW_LINK &&
        ml_odbc_execute (self->odbc,
                         "UPDATE payment_link SET payment_uuid = ? WHERE link_id = ?"
                         " AND payment_uuid IS NULL",
                         "ss", flow->payment_uuid, flow->link_id) != 1)
        ml_log (ML_LOG_ERROR, "payments: could not mark link %s paid", flow->link_id);
    s_flow_end (self, flow, ml_admin_ok (json_pack ("{s:o}", "payment", payment)));
}

//  The card is known (a token): check the balances again, since other payments may have
//  taken them while the card was tokenized, then store the charges and ask for them.
static void s_flow_charge (ml_payments_t *self, s_flow_t *flow, char *deliver_firm, size_t size)
{
    s_order_free (&flow->order);
    s_order_init (&flow->order);
    json_t *reply = s_order_parse (self, flow->request, &flow->order);
    if (reply && flow->kind == S_FLOW_LINK) {
        const char *why = json_string_value (json_object_get (reply, "error"));
        json_t *changed = ml_admin_error ("the amounts of this link are no longer due (%s); ask "
                                          "the firm for a new link",
                                          why ? why : "");
        json_decref (reply);
        reply = changed;
    }
    if (!reply && flow->kind == S_FLOW_LINK) {
        json_t *link = s_link_row (self, "link_id", flow->link_id);
        const char *state = json_string_value (json_object_get (link, "state"));
        if (!state || !streq (state, "outstanding"))
            reply = ml_admin_error ("this payment link is %s", state ? state : "gone");
        json_decref (link);
    }
    if (!reply)
        reply = s_order_charge (self, &flow->order, flow->kind == S_FLOW_LINK ? "link" : "staff",
                                flow->payment_uuid, flow->token, flow->brand, flow->last4, flow,
                                deliver_firm, size);
    if (reply)
        s_flow_end (self, flow, reply);
}

//  The processor answered the tokenize call of a flow.
static void s_flow_tokenized (ml_payments_t *self, s_flow_t *flow, const ml_processor_call_t *made,
                              char *deliver_firm, size_t size)
{
    const ml_processor_result_t *result = &made->result;
    if (made->status != ML_PROCESSOR_APPROVED) {
        //  The processor's message never holds card data (ml_processor's promise).
        s_flow_end (self, flow,
                    ml_admin_error ("the card was refused: %s (%s); nothing was charged",
                                    result->message, result->reason));
        return;
    }
    snprintf (flow->token, sizeof flow->token, "%s", result->token);
    snprintf (flow->brand, sizeof flow->brand, "%s", result->brand);
    snprintf (flow->last4, sizeof flow->last4, "%s", result->last4);
    json_t *payer_id = json_object_get (flow->request, "payer_id");
    if (json_is_integer (payer_id) &&
        json_is_true (json_object_get (flow->request, "save_method"))) {
        json_t *method = json_pack ("{s:O, s:s, s:s, s:s, s:i, s:i}", "payer_id", payer_id, "token",
                                    result->token, "brand", result->brand, "last4", result->last4,
                                    "exp_month", result->exp_month, "exp_year", result->exp_year);
        json_t *saved = ml_payers_execute (self->payers, "method-add", method);
        json_decref (method);
        if (!json_is_true (json_object_get (saved, "ok")))
            ml_log (ML_LOG_WARNING, "payments: the card could not be saved for payer %lld: %s",
                    (long long)json_integer_value (payer_id),
                    json_string_value (json_object_get (saved, "error")));
        json_decref (saved);
    }
    s_flow_charge (self, flow, deliver_firm, size);
}

//  Start a payment or link flow (stolen) with its card: a saved method of the payer, or a
//  card to tokenize first. Returns an error reply (nothing asked), or the answer of
//  s_flow_answer.
static json_t *s_flow_start (ml_payments_t *self, s_flow_t *flow, const json_t *request,
                             char *deliver_firm, size_t size)
{
    json_t *method_id = json_object_get (request, "method_id");
    json_t *card = json_object_get (request, "card");
    json_t *reply = NULL;
    s_call_t *call = NULL;
    if (!method_id == !card)
        reply = ml_admin_error ("say how to pay: 'method_id' (a saved method of the payer) or "
                                "'card' ({number, exp_month, exp_year, cvc})");
    else if (method_id)
        reply =
            s_saved_method (flow->order.payer, method_id, flow->token, flow->brand, flow->last4);
    else {
        const char *number = json_string_value (json_object_get (card, "number"));
        const char *cvc = json_string_value (json_object_get (card, "cvc"));
        json_t *month = json_object_get (card, "exp_month");
        json_t *year = json_object_get (card, "exp_year");
        if (!json_is_object (card) || !number || !cvc || !json_is_integer (month) ||
            !json_is_integer (year) || strlen (number) > 40 || strlen (cvc) > 4) {
            s_flow_destroy (&flow);
            return ml_admin_error ("'card' is {\"number\": text, \"exp_month\": N, \"exp_year\": "
                                   "N, \"cvc\": text}");
        }
        char key[ML_PROCESSOR_KEY_MAX + 1];
        snprintf (key, sizeof key, "%s:tokenize", flow->payment_uuid);
        call = s_call_new (S_FOR_TOKEN, key, flow->id);
        call->call.operation = ML_PROCESSOR_TOKENIZE;
        //  The card's only copy here; the call wipes it once made.
        snprintf (call->call.number, sizeof call->call.number, "%s", number);
        snprintf (call->call.cvc, sizeof call->call.cvc, "%s", cvc);
        json_int_t month_value = json_integer_value (month), year_value = json_integer_value (year);
        call->call.exp_month = month_value < -1 || month_value > 99 ? -1 : (int)month_value;
        call->call.exp_year = year_value < -1 || year_value > 9999 ? -1 : (int)year_value;
    }
    if (reply) {
        s_flow_destroy (&flow);
        return reply;
    }
    zhashx_insert (self->flows, flow->id, flow);
    if (call)
        s_submit (self, call, deliver_firm, size);
    else
        s_flow_charge (self, flow, deliver_firm, size);
    return s_flow_answer (self, flow);
}

static json_t *s_payment (ml_payments_t *self, const json_t *original, char *deliver_firm,
                          size_t size)
{
    if (!self->processor)
        return ml_admin_error ("no card processor is configured (section 'processor' of the "
                               "core's configuration)");
    json_t *reply = NULL;
    json_t *request = s_with_selection (self, original, &reply);
    if (!request)
        return reply;
    s_flow_t *flow = s_flow_new (S_FLOW_PAYMENT);
    reply = s_order_parse (self, request, &flow->order);
    //  What is checked again before the charges are stored: the request without its card.
    flow->request = json_deep_copy (request);
    json_object_del (flow->request, "card");
    //  A new payer may be saved now, so the card can be saved with them.
    if (!reply && !flow->order.payer_id && json_is_true (json_object_get (request, "save_payer"))) {
        json_t *profile = json_pack ("{s:s, s:s, s:s}", "firm", flow->order.firm, "name",
                                     flow->order.payer_name, "email", flow->order.payer_email);
        json_t *added = ml_payers_execute (self->payers, "payer-add", profile);
        json_decref (profile);
        if (json_is_true (json_object_get (added, "ok"))) {
            json_object_set (flow->request, "payer_id",
                             json_object_get (json_object_get (added, "payer"), "payer_id"));
            json_decref (added);
            s_order_free (&flow->order);
            s_order_init (&flow->order);
            reply = s_order_parse (self, flow->request, &flow->order);
        } else
            reply = added;
    }
    ml_store_uuid (flow->payment_uuid, sizeof flow->payment_uuid);
    snprintf (flow->id, sizeof flow->id, "%s", flow->payment_uuid);
    if (!reply)
        reply = s_flow_start (self, flow, request, deliver_firm, size);
    else
        s_flow_destroy (&flow);
    json_decref (request);
    return reply;
}

//  Payment links ------------------------------------------------------------------------------

#define S_LINK_HOURS 24

//  A link's secret is its token; the store keeps only its digest, so a copy of the store
//  cannot pay anything.
static void s_link_digest (const char *token, char *digest, size_t size)
{
    zdigest_t *hash = zdigest_new ();
    zdigest_update (hash, (const byte *)token, strlen (token));
    snprintf (digest, size, "%s", zdigest_string (hash));
    zdigest_destroy (&hash);
}

#define S_LINK_SQL                                                                                 \
    "SELECT link_id, firm_id, payer_id, payer_name, payer_email, receipt_email, ar_message,"       \
    " lines, created_by, created_at, expires_at, cancelled_at, payment_uuid,"                      \
    " CASE WHEN payment_uuid IS NOT NULL THEN 'paid' WHEN cancelled_at IS NOT NULL"                \
    " THEN 'cancelled' WHEN expires_at <= ? THEN 'expired' ELSE 'outstanding' END AS state"        \
    " FROM payment_link"

static json_t *s_link_row (ml_payments_t *self, const char *column, const char *value)
{
    char sql[512], now[32];
    ml_store_now (now, sizeof now);
    snprintf (sql, sizeof sql, S_LINK_SQL " WHERE %s = ?", column);
    json_t *rows =
        ml_store_rows (ml_odbc_query (self->odbc, sql, "ss", now, value), s_integer_column);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

//  A selection's lines for people: "Invoice INV-1: 12.34 USD" / "Trust deposit, matter M-1".
static void s_lines_text (zchunk_t *text, const json_t *lines, const char *currency)
{
    size_t index;
    json_t *line;
    json_array_foreach (lines, index, line)
    {
        //  Either form: [kind, reference, amount] (a charge) or {invoice|trust: n, amount_minor}.
        bool trust = json_is_array (line)
                         ? streq (json_string_value (json_array_get (line, 0)), "T")
                         : json_object_get (line, "trust") != NULL;
        const char *reference =
            json_is_array (line)
                ? json_string_value (json_array_get (line, 1))
                : json_string_value (json_object_get (line, trust ? "trust" : "invoice"));
        int64_t amount = json_is_array (line)
                             ? json_integer_value (json_array_get (line, 2))
                             : json_integer_value (json_object_get (line, "amount_minor"));
        char money[64];
        ml_money_format (amount, currency, money, sizeof money);
        zchunk_extend (text, "  ", 2);
        const char *label = trust ? "Trust deposit, matter " : "Invoice ";
        zchunk_extend (text, label, strlen (label));
        zchunk_extend (text, reference, strlen (reference));
        zchunk_extend (text, ": ", 2);
        zchunk_extend (text, money, strlen (money)); //  "12.34 USD": it names the currency
        zchunk_extend (text, "\n", 1);
    }
}

static char *s_chunk_text (zchunk_t *chunk)
{
    zchunk_extend (chunk, "", 1);
    char *text = strdup ((const char *)zchunk_data (chunk));
    zchunk_destroy (&chunk);
    return text;
}

static void s_link_body (const s_order_t *order, const char *token, const char *expires,
                         char **body)
{
    zchunk_t *text = zchunk_new (NULL, 0);
    char head[512];
    snprintf (head, sizeof head,
              "Dear %s,\n\nYou can pay the following online, once, until %s (UTC):\n\n",
              order->payer_name, expires);
    zchunk_extend (text, head, strlen (head));
    for (int group = 0; group < 2; group++)
        s_lines_text (text, order->groups[group].lines, order->groups[group].currency);
    snprintf (head, sizeof head,
              "\nYour payment code: %s\n\nIf you did not expect this message, ignore it.\n", token);
    zchunk_extend (text, head, strlen (head));
    *body = s_chunk_text (text);
    explicit_bzero (head, sizeof head);
}

int ml_payments_notify (ml_payments_t *self)
{
    assert (self);
    if (!self->mailer)
        return 0;
    int queued = 0;
    //  Receipts: one per approved charge, to the payment's receipt address.
    json_t *due =
        s_rows (self,
                "SELECT c.charge_key, c.account_type, c.currency, c.amount_minor, c.lines,"
                " c.processor_txn, c.updated_at, p.firm_id, p.payer_name, p.receipt_email, p.brand,"
                " p.last4, f.name AS firm_name FROM charge c JOIN payment p ON p.payment_uuid ="
                " c.payment_uuid JOIN firm f ON f.firm_id = p.firm_id WHERE c.status = 'approved'"
                " AND c.receipt_queued = 0 ORDER BY c.updated_at LIMIT 50",
                NULL, NULL);
    size_t index;
    json_t *row;
    json_array_foreach (due, index, row)
    {
#define S_TEXT(key) json_string_value (json_object_get (row, key))
        char money[64], head[1024], subject[200], dedupe[128], error[256];
        ml_money_format (json_integer_value (json_object_get (row, "amount_minor")),
                         S_TEXT ("currency"), money, sizeof money);
        snprintf (subject, sizeof subject, "%s: receipt for your payment of %s",
                  S_TEXT ("firm_name"), money);
        snprintf (head, sizeof head,
                  "Dear %s,\n\nThank you. %s received your payment of %s on %.10s,\n"
                  "paid with %s ending %s (reference %s), for:\n\n",
                  S_TEXT ("payer_name"), S_TEXT ("firm_name"), money, S_TEXT ("updated_at"),
                  S_TEXT ("brand"), S_TEXT ("last4"), S_TEXT ("processor_txn"));
        zchunk_t *text = zchunk_new (head, strlen (head));
        json_t *lines = json_loads (S_TEXT ("lines"), 0, NULL);
        s_lines_text (text, lines, S_TEXT ("currency"));
        json_decref (lines);
        const char *tail = "\nKeep this message for your records.\n";
        zchunk_extend (text, tail, strlen (tail));
        char *body = s_chunk_text (text);
        snprintf (dedupe, sizeof dedupe, "receipt:%s", S_TEXT ("charge_key"));
        //  Queued and marked in one transaction; the dedupe key keeps a repeat harmless.
        *error = 0;
        if (ml_odbc_begin (self->odbc) == 0 &&
            ml_mailer_enqueue (self->mailer, "receipt", dedupe, S_TEXT ("firm_id"),
                               S_TEXT ("receipt_email"), subject, body, error, sizeof error) >= 0 &&
            ml_odbc_execute (self->odbc,
                             "UPDATE charge SET receipt_queued = 1 WHERE charge_key = ?", "s",
                             S_TEXT ("charge_key")) == 1 &&
            ml_odbc_commit (self->odbc) == 0)
            queued++;
        else {
            ml_odbc_rollback (self->odbc);
            //  A receipt the outbox refuses (a bad address) is logged once and not tried
            //  again; a store error is tried again at the next sweep.
            ml_log (ML_LOG_WARNING, "payments: no receipt for charge %s: %s", S_TEXT ("charge_key"),
                    *error ? error : "the core store failed");
            if (*error)
                ml_odbc_execute (self->odbc,
                                 "UPDATE charge SET receipt_queued = 2 WHERE charge_key = ?", "s",
                                 S_TEXT ("charge_key"));
        }
        free (body);
#undef S_TEXT
    }
    json_decref (due);
    //  Rejected postings: the firm learns at once, with the matter system's reason.
    due = s_rows (self,
                  "SELECT p.posting_uuid, p.firm_id, p.client_number, p.currency, p.amount_minor,"
                  " p.reason, p.source, f.notify_email FROM posting p JOIN firm_contact f"
                  " ON f.firm_id = p.firm_id WHERE p.status = 'rejected' AND NOT EXISTS"
                  " (SELECT 1 FROM mail m WHERE m.dedupe_key = 'rejected:' || p.posting_uuid)"
                  " LIMIT 50",
                  NULL, NULL);
    json_array_foreach (due, index, row)
    {
#define S_TEXT(key) json_string_value (json_object_get (row, key))
        char money[64], body[1024], subject[200], dedupe[128], error[256];
        ml_money_format (json_integer_value (json_object_get (row, "amount_minor")),
                         S_TEXT ("currency"), money, sizeof money);
        snprintf (subject, sizeof subject, "Posting rejected: %s for client %s", money,
                  S_TEXT ("client_number"));
        snprintf (body, sizeof body,
                  "The matter system rejected posting %s (%s for client %s, from a %s "
                  "payment).\nReason: %s\n\nThe money was received; the posting needs your "
                  "attention: see 'matterlink posting %s', then reallocate or resend it.\n",
                  S_TEXT ("posting_uuid"), money, S_TEXT ("client_number"), S_TEXT ("source"),
                  S_TEXT ("reason") ? S_TEXT ("reason") : "(none given)", S_TEXT ("posting_uuid"));
        snprintf (dedupe, sizeof dedupe, "rejected:%s", S_TEXT ("posting_uuid"));
        if (ml_odbc_begin (self->odbc) == 0 &&
            ml_mailer_enqueue (self->mailer, "posting_rejected", dedupe, S_TEXT ("firm_id"),
                               S_TEXT ("notify_email"), subject, body, error, sizeof error) >= 0 &&
            ml_odbc_commit (self->odbc) == 0)
            queued++;
        else {
            ml_odbc_rollback (self->odbc);
            ml_log (ML_LOG_WARNING, "payments: no rejection notice for posting %s: %s",
                    S_TEXT ("posting_uuid"), error);
        }
#undef S_TEXT
    }
    json_decref (due);
    return queued;
}

static json_t *s_firm_contact (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    if (*problem || !firm || !email || !strchr (email, '@') || strpbrk (email, " \r\n"))
        return ml_admin_error ("'firm' and 'email' (one address) are required");
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_error ("unknown firm '%s'", firm);
    json_decref (known);
    ml_store_now (now, sizeof now);
    if (ml_odbc_begin (self->odbc) != 0 ||
        ml_odbc_execute (self->odbc,
                         "INSERT OR REPLACE INTO firm_contact (firm_id, notify_email, updated_at)"
                         " VALUES (?, ?, ?)",
                         "sss", firm, email, now) != 1 ||
        ml_odbc_commit (self->odbc) != 0)
        return s_store_failed (self, "firm-contact");
    return ml_admin_ok (json_pack ("{s:s, s:s}", "firm", firm, "notify_email", email));
}

static json_t *s_link_create (ml_payments_t *self, const json_t *original)
{
    json_t *reply = NULL;
    json_t *request = s_with_selection (self, original, &reply);
    if (!request)
        return reply;
    s_order_t order;
    s_order_init (&order);
    reply = s_order_parse (self, request, &order);
    if (reply) {
        s_order_free (&order);
        json_decref (request);
        return reply;
    }
    //  128 random bits: the token is the link's only credential.
    zuuid_t *random = zuuid_new ();
    char token[33], digest[64], link_id[37], now[32], expires[32];
    snprintf (token, sizeof token, "%s", zuuid_str (random));
    zuuid_destroy (&random);
    for (char *cursor = token; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    s_link_digest (token, digest, sizeof digest);
    ml_store_uuid (link_id, sizeof link_id);
    ml_store_now (now, sizeof now);
    time_t later = time (NULL) + S_LINK_HOURS * 3600;
    struct tm utc;
    gmtime_r (&later, &utc);
    strftime (expires, sizeof expires, "%Y-%m-%dT%H:%M:%S.000Z", &utc);
    json_t *lines = s_order_lines (&order);
    char *lines_text = json_dumps (lines, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref (lines);
    //  The payer's e-mail carries the token: the only moment it exists outside the payer.
    char *body = NULL, subject[160], dedupe[64], mail_error[256] = "";
    json_t *firm = ml_store_firm (self->store, order.firm);
    snprintf (subject, sizeof subject, "%s: your payment link",
              firm ? json_string_value (json_object_get (firm, "name")) : order.firm);
    json_decref (firm);
    s_link_body (&order, token, expires, &body);
    snprintf (dedupe, sizeof dedupe, "link:%s", link_id);
    bool ok = ml_odbc_begin (self->odbc) == 0 &&
              ml_odbc_execute (
                  self->odbc,
                  "INSERT INTO payment_link (link_id, token_digest, firm_id, payer_id, payer_name,"
                  " payer_email, receipt_email, ar_message, lines, created_by, created_at,"
                  " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  "sssissssssss", link_id, digest, order.firm, order.payer_id, order.payer_name,
                  order.payer_email, order.receipt_email, order.ar_message, lines_text, order.staff,
                  now, expires) == 1 &&
              (!self->mailer || ml_mailer_enqueue (self->mailer, "payment_link", dedupe, order.firm,
                                                   order.receipt_email, subject, body, mail_error,
                                                   sizeof mail_error) >= 0) &&
              ml_odbc_commit (self->odbc) == 0;
    if (!ok && self->mailer && *mail_error)
        ml_log (ML_LOG_WARNING, "payments: payment link e-mail refused: %s", mail_error);
    explicit_bzero (body, strlen (body));
    free (body);
    free (lines_text);
    s_order_free (&order);
    if (ok)
        s_selection_done (self, request);
    json_decref (request);
    if (!ok)
        return s_store_failed (self, "link-create");
    ml_log (ML_LOG_NOTICE, "payments: payment link %s created, valid until %s", link_id, expires);
    json_t *link = s_link_row (self, "link_id", link_id);
    //  The token is shown once, to be sent to the payer; it is not kept.
    json_object_set_new (link, "token", json_string (token));
    return ml_admin_ok (json_pack ("{s:o}", "link", link));
}

static json_t *s_link_pay (ml_payments_t *self, const json_t *request, char *deliver_firm,
                           size_t size)
{
    char problem[256] = "", digest[64];
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("'token' is required");
    if (!self->processor)
        return ml_admin_error ("no card processor is configured");
    s_link_digest (token, digest, sizeof digest);
    json_t *link = s_link_row (self, "token_digest", digest);
    if (!link)
        return ml_admin_error ("no such payment link");
    const char *state = json_string_value (json_object_get (link, "state"));
    if (!streq (state, "outstanding")) {
        json_t *reply = ml_admin_error ("this payment link is %s", state);
        json_decref (link);
        return reply;
    }
    //  The link's selection, checked again against today's balances.
    json_t *again = json_pack (
        "{s:O, s:O, s:O, s:O, s:O, s:o}", "firm", json_object_get (link, "firm_id"), "payer_name",
        json_object_get (link, "payer_name"), "payer_email", json_object_get (link, "payer_email"),
        "receipt_email", json_object_get (link, "receipt_email"), "ar_message",
        json_object_get (link, "ar_message"), "lines",
        json_loads (json_string_value (json_object_get (link, "lines")), 0, NULL));
    json_object_set_new (again, "staff", json_string ("payment link"));
    //  One payment of a link at a time: while one waits for the processor, another could
    //  otherwise pay the same link again (a link is spent only once its charge is answered).
    for (s_flow_t *other = (s_flow_t *)zhashx_first (self->flows); other;
         other = (s_flow_t *)zhashx_next (self->flows))
        if (other->kind == S_FLOW_LINK &&
            streq (other->link_id, json_string_value (json_object_get (link, "link_id")))) {
            json_decref (again);
            json_decref (link);
            return ml_admin_error ("this payment link is being paid right now; if that payment "
                                   "is declined, try again in a minute");
        }
    s_flow_t *flow = s_flow_new (S_FLOW_LINK);
    flow->request = again;
    snprintf (flow->link_id, sizeof flow->link_id, "%s",
              json_string_value (json_object_get (link, "link_id")));
    json_decref (link);
    json_t *reply = s_order_parse (self, again, &flow->order);
    if (reply) {
        const char *why = json_string_value (json_object_get (reply, "error"));
        json_t *changed = ml_admin_error ("the amounts of this link are no longer due (%s); ask "
                                          "the firm for a new link",
                                          why ? why : "");
        json_decref (reply);
        reply = changed;
    }
    ml_store_uuid (flow->payment_uuid, sizeof flow->payment_uuid);
    snprintf (flow->id, sizeof flow->id, "%s", flow->payment_uuid);
    if (!reply && json_object_get (request, "method_id"))
        reply = ml_admin_error ("a payment link is paid with a card");
    if (reply) {
        s_flow_destroy (&flow);
        return reply;
    }
    //  Single use: once money moved, or may have (an unknown outcome), the link is spent
    //  (s_flow_done). A declined card leaves it outstanding for another try.
    return s_flow_start (self, flow, request, deliver_firm, size);
}

static json_t *s_links (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *state = ml_admin_argument (request, "state", 16, problem, sizeof problem);
    if (*problem || !firm)
        return ml_admin_error ("'firm' is required");
    if (state && !streq (state, "outstanding") && !streq (state, "paid") &&
        !streq (state, "cancelled") && !streq (state, "expired"))
        return ml_admin_error ("'state' must be outstanding, paid, cancelled or expired");
    ml_store_now (now, sizeof now);
    json_t *rows = ml_store_rows (ml_odbc_query (self->odbc,
                                                 "SELECT * FROM (" S_LINK_SQL
                                                 " WHERE firm_id = ?) WHERE (? IS NULL OR"
                                                 " state = ?) ORDER BY created_at DESC LIMIT 1000",
                                                 "ssss", now, firm, state, state),
                                  s_integer_column);
    return rows ? ml_admin_ok (json_pack ("{s:o}", "links", rows))
                : s_store_failed (self, "link-list");
}

static json_t *s_link_cancel (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *link_id = ml_admin_argument (request, "link_id", 36, problem, sizeof problem);
    if (*problem || !link_id)
        return ml_admin_error ("'link_id' is required");
    json_t *link = s_link_row (self, "link_id", link_id);
    if (!link)
        return ml_admin_error ("no payment link %s", link_id);
    const char *state = json_string_value (json_object_get (link, "state"));
    json_t *reply = NULL;
    char now[32];
    ml_store_now (now, sizeof now);
    if (!streq (state, "outstanding"))
        reply = ml_admin_error ("payment link %s is %s already", link_id, state);
    else if (ml_odbc_execute (self->odbc,
                              "UPDATE payment_link SET cancelled_at = ? WHERE link_id = ? AND"
                              " payment_uuid IS NULL AND cancelled_at IS NULL",
                              "ss", now, link_id) != 1)
        reply = s_store_failed (self, "link-cancel");
    json_decref (link);
    if (reply)
        return reply;
    ml_log (ML_LOG_NOTICE, "payments: payment link %s cancelled", link_id);
    return ml_admin_ok (json_pack ("{s:o}", "link", s_link_row (self, "link_id", link_id)));
}

//  Refunds, voids, chargebacks -------------------------------------------------------------

//  What reversals of a charge, not failed, already took back from one of its lines.
static int64_t s_taken_back (ml_payments_t *self, const char *charge_key, const char *kind,
                             const char *reference)
{
    ml_query_t *query = ml_odbc_query (
        self->odbc,
        "SELECT COALESCE (SUM (json_extract (j.value, '$[2]')), 0) FROM reversal v,"
        " json_each (v.lines) j WHERE v.charge_key = ? AND v.status NOT IN ('declined', 'error')"
        " AND json_extract (j.value, '$[0]') = ? AND json_extract (j.value, '$[1]') = ?",
        "sss", charge_key, kind, reference);
    int64_t taken = 0;
    if (!query || ml_query_fetch (query) != 1 || ml_query_int64 (query, 0, &taken) != 0)
        taken = -1;
    ml_query_destroy (&query);
    return taken;
}

//  A matter's trust money that reversals not yet reflected in the replica will take out:
//  reversing postings still travelling (or posted but not yet seen as a change), and
//  reversals still at the processor.
static int64_t s_trust_pending (ml_payments_t *self, const char *firm, const char *matter)
{
    ml_query_t *query = ml_odbc_query (
        self->odbc,
        "SELECT (SELECT COALESCE (SUM (l.amount_minor), 0) FROM posting_line l"
        " JOIN posting p ON p.posting_uuid = l.posting_uuid JOIN replica_state r"
        " ON r.firm_id = p.firm_id WHERE p.firm_id = ? AND p.reverses <> '' AND l.kind = 'T'"
        " AND l.reference = ? AND (p.status IN ('pending', 'delivered') OR (p.status = 'posted'"
        " AND p.result_cursor > r.cursor)))"
        " + (SELECT COALESCE (SUM (json_extract (j.value, '$[2]')), 0) FROM reversal v"
        " JOIN charge c ON c.charge_key = v.charge_key JOIN payment y ON y.payment_uuid ="
        " c.payment_uuid, json_each (v.lines) j WHERE y.firm_id = ? AND v.status IN"
        " ('pending', 'unknown') AND json_extract (j.value, '$[0]') = 'T'"
        " AND json_extract (j.value, '$[1]') = ?)",
        "ssss", firm, matter, firm, matter);
    int64_t pending = 0;
    if (!query || ml_query_fetch (query) != 1 || ml_query_int64 (query, 0, &pending) != 0)
        pending = -1;
    ml_query_destroy (&query);
    return pending;
}

//  Whether a rejected posting's money is outside the books: rejected and never reallocated
//  (then a refund gives it back with no reversing posting, as there is nothing to reverse).
//  A reallocated one sets moved to where its money went.
static bool s_unbooked (ml_payments_t *self, const char *posting_uuid, char *moved, size_t size)
{
    json_t *posting = ml_store_posting (self->store, posting_uuid);
    bool unbooked =
        posting && streq (json_string_value (json_object_get (posting, "status")), "rejected");
    size_t index;
    json_t *event;
    json_array_foreach (json_object_get (posting, "history"), index, event)
    {
        if (streq (json_string_value (json_object_get (event, "status")), "reallocated")) {
            snprintf (moved, size, "%s", json_string_value (json_object_get (event, "detail")));
            unbooked = false;
        }
    }
    json_decref (posting);
    return unbooked;
}

//  Reverse part or all of an approved charge: the lines taken back (last line first, never
//  more than a line gave, and from a trust ledger never more than its balance minus what is
//  pending: rule 5), stored before the processor is called, then the processor's refund or
//  void (a chargeback is the processor's own decision, recorded as it is).
static json_t *s_reverse (ml_payments_t *self, const char *kind, const json_t *request,
                          char *deliver_firm, size_t size)
{
    char problem[256] = "";
    const char *charge_key = ml_admin_argument (request, "charge_key", 80, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    const char *amount_text = ml_admin_argument (request, "amount", 40, problem, sizeof problem);
    json_t *amount_value = json_object_get (request, "amount_minor");
    if (*problem || !charge_key)
        return ml_admin_error ("'charge_key' is required (a payment's charge, as payment-show "
                               "lists it)");
    if (amount_value && (!json_is_integer (amount_value) || json_integer_value (amount_value) < 1))
        return ml_admin_error ("'amount_minor' must be a whole number above 0");
    const char *over = NULL;
    if (amount_value && ml_money_check (json_integer_value (amount_value), &over) != 0)
        return ml_admin_error ("'amount_minor': %s", over);
    if (amount_value && amount_text)
        return ml_admin_error ("give 'amount' (text, in the charge's currency) or "
                               "'amount_minor', not both");
    if (streq (kind, "void") && (amount_value || amount_text))
        return ml_admin_error ("a void cancels the whole charge: no 'amount_minor'");
    if (!self->processor && !streq (kind, "chargeback"))
        return ml_admin_error ("no card processor is configured");
    json_t *rows = s_rows (self,
                           "SELECT c.charge_key, c.account_type, c.currency, c.amount_minor,"
                           " c.lines, c.status, c.processor_txn, c.posting_uuid, p.firm_id,"
                           " t.status AS posting_status FROM charge c JOIN payment p"
                           " ON p.payment_uuid = c.payment_uuid LEFT JOIN posting t"
                           " ON t.posting_uuid = c.posting_uuid WHERE c.charge_key = ?",
                           "s", charge_key);
    json_t *charge = json_array_get (rows, 0);
#define S_TEXT(key) json_string_value (json_object_get (charge, key))
    json_t *reply = NULL;
    if (!charge)
        reply = ml_admin_error ("no charge '%s'", charge_key);
    else if (!streq (S_TEXT ("status"), "approved"))
        reply = ml_admin_error ("charge %s is %s: only an approved charge can be reversed",
                                charge_key, S_TEXT ("status"));
    //  A charge whose posting was rejected is refunded too (its money is never stuck): the
    //  books never had it, so nothing is reversed there and no trust balance limits it.
    char moved[128] = "";
    bool unbooked = charge && S_TEXT ("posting_status") &&
                    streq (S_TEXT ("posting_status"), "rejected") &&
                    s_unbooked (self, S_TEXT ("posting_uuid"), moved, sizeof moved);
    if (reply || unbooked)
        ;
    else if (*moved)
        reply = ml_admin_error ("the charge's posting was rejected and its money reallocated (%s): "
                                "it is in the books on that posting",
                                moved);
    else if (!S_TEXT ("posting_status") || !streq (S_TEXT ("posting_status"), "posted"))
        reply = ml_admin_error ("the charge's posting is %s, not posted yet: reverse it once "
                                "the matter system has it",
                                S_TEXT ("posting_status") ? S_TEXT ("posting_status") : "missing");
    json_t *charge_lines = reply ? NULL : json_loads (S_TEXT ("lines"), 0, NULL);
    json_t *taken = json_array ();
    int64_t total = 0;
    if (!reply) {
        int64_t charged = json_integer_value (json_object_get (charge, "amount_minor"));
        int64_t before = 0;
        for (size_t index = 0; index < json_array_size (charge_lines); index++) {
            json_t *line = json_array_get (charge_lines, index);
            before += s_taken_back (self, charge_key, json_string_value (json_array_get (line, 0)),
                                    json_string_value (json_array_get (line, 1)));
        }
        int64_t wanted = amount_value ? json_integer_value (amount_value) : charged - before;
        const char *parse_error = NULL;
        if (amount_text &&
            (ml_money_parse (amount_text, S_TEXT ("currency"), &wanted, &parse_error) != 0 ||
             wanted <= 0))
            reply = ml_admin_error ("amount '%s' is not a positive %s amount%s%s", amount_text,
                                    S_TEXT ("currency"), parse_error ? ": " : "",
                                    parse_error ? parse_error : "");
        if (reply)
            ;
        else if (streq (kind, "void") && before > 0)
            reply = ml_admin_error ("part of charge %s was reversed already: refund the rest "
                                    "instead of voiding it",
                                    charge_key);
        else if (wanted <= 0 || wanted > charged - before) {
            char left[64];
            ml_money_format (charged - before, S_TEXT ("currency"), left, sizeof left);
            reply =
                ml_admin_error ("at most %s of charge %s can still be reversed", left, charge_key);
        }
        //  Last line first, as a refund usually undoes the latest allocation.
        int64_t left = wanted;
        for (size_t index = json_array_size (charge_lines); !reply && left > 0 && index > 0;
             index--) {
            json_t *line = json_array_get (charge_lines, index - 1);
            const char *line_kind = json_string_value (json_array_get (line, 0));
            const char *reference = json_string_value (json_array_get (line, 1));
            int64_t room = json_integer_value (json_array_get (line, 2)) -
                           s_taken_back (self, charge_key, line_kind, reference);
            if (streq (line_kind, "T") && !unbooked) {
                json_t *matter = ml_store_matter (self->store, S_TEXT ("firm_id"), reference);
                int64_t balance =
                    json_integer_value (json_object_get (matter, "trust_balance_minor"));
                json_decref (matter);
                int64_t available = balance - s_trust_pending (self, S_TEXT ("firm_id"), reference);
                if (available < room)
                    room = available;
            }
            int64_t take = room < left ? room : left;
            if (take > 0) {
                json_array_append_new (
                    taken, json_pack ("[s, s, I]", line_kind, reference, (json_int_t)take));
                left -= take;
                total += take;
            }
        }
        if (!reply && left > 0)
            reply = ml_admin_error ("the trust ledger cannot give back that much now: a trust "
                                    "refund never exceeds the matter's trust balance minus what "
                                    "is pending (%lld minor units short)",
                                    (long long)left);
    }
    char key[128], posting_uuid[37], now[32];
    if (!reply) {
        //  The key says which reversal of the charge this is, so a retry reuses it.
        json_t *count = s_rows (self,
                                "SELECT COUNT (*) AS attempts FROM reversal WHERE"
                                " charge_key = ?",
                                "s", charge_key);
        snprintf (key, sizeof key, "%s:%s:%lld", charge_key, kind,
                  (long long)json_integer_value (
                      json_object_get (json_array_get (count, 0), "attempts")) +
                      1);
        json_decref (count);
        ml_store_uuid (posting_uuid, sizeof posting_uuid);
        ml_store_now (now, sizeof now);
        char *lines_text = json_dumps (taken, JSON_COMPACT | JSON_ENSURE_ASCII);
        bool ok = ml_odbc_begin (self->odbc) == 0 &&
                  ml_odbc_execute (self->odbc,
                                   "INSERT INTO reversal (reversal_key, charge_key, kind,"
                                   " amount_minor, lines, posting_uuid, status, staff,"
                                   " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending',"
                                   " ?, ?, ?)",
                                   "sssisssss", key, charge_key, kind, total, lines_text,
                                   posting_uuid, staff ? staff : "", now, now) == 1 &&
                  ml_odbc_commit (self->odbc) == 0;
        free (lines_text);
        if (!ok)
            reply = s_store_failed (self, "reversal");
    }
    if (!reply && streq (kind, "chargeback")) {
        //  Decided by the card network, not asked of the processor: recorded as it stands.
        ml_processor_result_t result;
        memset (&result, 0, sizeof result);
        snprintf (result.txn, sizeof result.txn, "%s", S_TEXT ("processor_txn"));
        s_record (self, &s_reversal_operation, key, ML_PROCESSOR_APPROVED, &result, deliver_firm,
                  size);
        reply = s_reversal_reply (self, key);
    } else if (!reply) {
        s_flow_t *flow = s_flow_new (S_FLOW_REVERSAL);
        snprintf (flow->id, sizeof flow->id, "%s", key);
        flow->outstanding = 1;
        zhashx_insert (self->flows, flow->id, flow);
        s_call_t *call = s_call_new (S_FOR_REVERSAL, key, key);
        call->call.operation = streq (kind, "void") ? ML_PROCESSOR_VOID : ML_PROCESSOR_REFUND;
        snprintf (call->call.charge_txn, sizeof call->call.charge_txn, "%s",
                  S_TEXT ("processor_txn"));
        call->call.amount_minor = total;
        snprintf (call->call.currency, sizeof call->call.currency, "%s", S_TEXT ("currency"));
        s_submit (self, call, deliver_firm, size);
        reply = s_flow_answer (self, flow);
    }
#undef S_TEXT
    json_decref (taken);
    json_decref (charge_lines);
    json_decref (rows);
    return reply;
}

//  Reallocating a rejected posting ----------------------------------------------------------

//  The money of a rejected posting was received all the same: staff put it on other lines
//  (of the same deposit account, for the same amount) as a new posting, and the rejected one
//  says where its money went. A posting is reallocated once.
static json_t *s_reallocate (ml_payments_t *self, const json_t *request, char *deliver_firm,
                             size_t size)
{
    char problem[256] = "";
    const char *uuid = ml_admin_argument (request, "posting_uuid", 36, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    if (*problem || !uuid || !json_is_array (json_object_get (request, "lines")))
        return ml_admin_error ("'posting_uuid' and 'lines' are required");
    json_t *original = ml_store_posting (self->store, uuid);
    if (!original)
        return ml_admin_error ("no posting %s", uuid);
#define S_TEXT(key) json_string_value (json_object_get (original, key))
    json_t *reply = NULL;
    size_t index;
    json_t *event;
    if (!streq (S_TEXT ("status"), "rejected"))
        reply = ml_admin_error ("posting %s is %s: only a rejected posting is reallocated", uuid,
                                S_TEXT ("status"));
    else if (S_TEXT ("reverses") && *S_TEXT ("reverses"))
        reply = ml_admin_error ("a reversing posting is not reallocated");
    json_array_foreach (json_object_get (original, "history"), index, event)
    {
        if (!reply && streq (json_string_value (json_object_get (event, "status")), "reallocated"))
            reply = ml_admin_error ("posting %s was reallocated already (%s)", uuid,
                                    json_string_value (json_object_get (event, "detail")));
    }
    //  Money given back to the payer is not put in the books as well.
    json_t *given = reply ? NULL
                          : s_rows (self,
                                    "SELECT COUNT (*) AS attempts FROM reversal v JOIN charge"
                                    " c ON c.charge_key = v.charge_key WHERE c.posting_uuid = ?"
                                    " AND v.status NOT IN ('declined', 'error')",
                                    "s", uuid);
    if (json_integer_value (json_object_get (json_array_get (given, 0), "attempts")) > 0)
        reply = ml_admin_error ("the money of posting %s was refunded (or charged back), in part "
                                "or whole: it is not reallocated",
                                uuid);
    json_decref (given);
    //  The new lines, checked like a payment's, in the original's currency.
    s_order_t order;
    s_order_init (&order);
    if (!reply) {
        json_t *again =
            json_pack ("{s:s, s:s, s:s, s:s, s:O}", "firm", S_TEXT ("firm_id"), "payer_name",
                       *S_TEXT ("payer_name") ? S_TEXT ("payer_name") : "unknown payer",
                       "payer_email", "reallocation@matterlink.invalid", "currency",
                       S_TEXT ("currency"), "lines", json_object_get (request, "lines"));
        reply = s_order_parse (self, again, &order);
        json_decref (again);
    }
    //  Same deposit account: its money is already there.
    json_t *account = NULL;
    if (!reply) {
        account =
            ml_store_rows (ml_odbc_query (self->odbc,
                                          "SELECT account_type FROM account WHERE firm_id = ? AND"
                                          " account_number = ?",
                                          "ss", S_TEXT ("firm_id"), S_TEXT ("account_number")),
                           s_integer_column);
        const char *type =
            json_string_value (json_object_get (json_array_get (account, 0), "account_type"));
        //  Without the account on record, the original's lines say what it was.
        bool trust =
            type ? streq (type, "TRUST")
                 : streq (json_string_value (json_object_get (
                              json_array_get (json_object_get (original, "lines"), 0), "kind")),
                          "T");
        int64_t amount = order.groups[0].amount + order.groups[1].amount;
        if (json_array_size (order.groups[trust ? 0 : 1].lines) > 0)
            reply = ml_admin_error ("posting %s went to %s account %s: its new lines must all be "
                                    "%s",
                                    uuid, trust ? "TRUST" : "OPERATING", S_TEXT ("account_number"),
                                    trust ? "trust deposits" : "invoices");
        else if (amount != json_integer_value (json_object_get (original, "amount_minor")))
            reply = ml_admin_error (
                "the new lines must sum to the posting's amount (%lld minor "
                "units), not %lld",
                (long long)json_integer_value (json_object_get (original, "amount_minor")),
                (long long)amount);
    }
    if (!reply) {
        const s_group_t *group = &order.groups[json_array_size (order.groups[0].lines) ? 0 : 1];
        ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
        ml_posting_t *posting = &message->posting;
        snprintf (posting->account_number, sizeof posting->account_number, "%s",
                  S_TEXT ("account_number"));
        snprintf (posting->client_number, sizeof posting->client_number, "%s", order.client_number);
        snprintf (posting->payer_name, sizeof posting->payer_name, "%s", S_TEXT ("payer_name"));
        snprintf (posting->payer_email, sizeof posting->payer_email, "%s", S_TEXT ("payer_email"));
        snprintf (posting->ar_message, sizeof posting->ar_message, "%s", S_TEXT ("ar_message"));
        snprintf (posting->processor_txn, sizeof posting->processor_txn, "%s",
                  S_TEXT ("processor_txn"));
        snprintf (posting->currency, sizeof posting->currency, "%s", S_TEXT ("currency"));
        snprintf (posting->received_on, sizeof posting->received_on, "%s", S_TEXT ("received_on"));
        posting->amount_minor = group->amount;
        size_t count = json_array_size (group->lines);
        ml_line_t *parts = calloc (count, sizeof (ml_line_t));
        assert (parts);
        for (index = 0; index < count; index++) {
            json_t *part = json_array_get (group->lines, index);
            parts[index].kind = *json_string_value (json_array_get (part, 0));
            snprintf (parts[index].reference, sizeof parts[index].reference, "%s",
                      json_string_value (json_array_get (part, 1)));
            parts[index].amount_minor = json_integer_value (json_array_get (part, 2));
        }
        ml_msg_set_lines (message, parts, count);
        free (parts);
        char detail[128];
        bool ok =
            ml_odbc_begin (self->odbc) == 0 &&
            ml_store_posting_insert (self->store, S_TEXT ("firm_id"), posting, "reallocation") == 0;
        snprintf (detail, sizeof detail, "as %s by %s", posting->posting_uuid,
                  staff && *staff ? staff : "staff");
        ok = ok && ml_store_posting_note (self->store, uuid, "reallocated", detail) == 0 &&
             ml_odbc_commit (self->odbc) == 0;
        if (!ok)
            reply = s_store_failed (self, "reallocate");
        else {
            snprintf (deliver_firm, size, "%s", S_TEXT ("firm_id"));
            ml_log (ML_LOG_NOTICE, "payments: rejected posting %s reallocated %s", uuid, detail);
            reply = ml_admin_ok (json_pack ("{s:o}", "posting",
                                            ml_store_posting (self->store, posting->posting_uuid)));
        }
        ml_msg_destroy (&message);
    }
#undef S_TEXT
    json_decref (account);
    s_order_free (&order);
    json_decref (original);
    return reply;
}

//  Selections -------------------------------------------------------------------------------

#define S_SELECTION_MAX 500

//  The staff user's selection as the lines of a payment ({invoice|trust, amount_minor}),
//  whole available balances filled in for invoices without an amount. NULL on a store error.
static json_t *s_selection_lines (ml_payments_t *self, const char *firm, const char *staff)
{
    json_t *items = ml_store_rows (
        ml_odbc_query (self->odbc,
                       "SELECT kind, number, amount_minor FROM selection_item WHERE firm_id = ?"
                       " AND staff = ? ORDER BY added_at, number",
                       "ss", firm, staff),
        s_integer_column);
    if (!items)
        return NULL;
    json_t *lines = json_array ();
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        const char *kind = json_string_value (json_object_get (item, "kind"));
        const char *number = json_string_value (json_object_get (item, "number"));
        json_t *amount = json_object_get (item, "amount_minor");
        json_int_t minor = json_integer_value (amount);
        if (json_is_null (amount) || !amount) {
            json_t *open = ml_store_open_items (self->store, firm, NULL, NULL, number);
            minor =
                json_integer_value (json_object_get (json_array_get (open, 0), "available_minor"));
            json_decref (open);
        }
        json_array_append_new (lines,
                               json_pack ("{s:s, s:I}", kind, number, "amount_minor", minor));
    }
    json_decref (items);
    return lines;
}

static json_t *s_selection (ml_payments_t *self, const char *op, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    const char *invoice = ml_admin_argument (request, "invoice", 63, problem, sizeof problem);
    const char *matter = ml_admin_argument (request, "trust", 63, problem, sizeof problem);
    json_t *amount = json_object_get (request, "amount_minor");
    if (*problem || !firm || !staff || !*staff)
        return ml_admin_error ("'firm' and 'staff' are required%s%s", *problem ? ": " : "",
                               problem);
    ml_store_now (now, sizeof now);
    if (streq (op, "selection-add") || streq (op, "selection-remove")) {
        if (!invoice == !matter)
            return ml_admin_error ("name one 'invoice' or one 'trust' (a matter number)");
        if (amount && (!json_is_integer (amount) || json_integer_value (amount) < 1))
            return ml_admin_error ("'amount_minor' must be a whole number above 0");
    }
    const char *kind = invoice ? "invoice" : "trust";
    const char *number = invoice ? invoice : matter;
    if (streq (op, "selection-add")) {
        //  The same checks a payment makes, so the selection never holds what cannot be paid.
        json_t *line = json_pack ("{s:s, s:I}", kind, number, "amount_minor",
                                  amount ? json_integer_value (amount) : (json_int_t)1);
        if (matter && !amount) {
            json_decref (line);
            return ml_admin_error ("trust is allocated by hand: give 'amount_minor'");
        }
        s_group_t groups[2] = {{"OPERATING", "", 0, json_array ()},
                               {"TRUST", "", 0, json_array ()}};
        char client[64] = "";
        json_t *refused = s_explicit_line (self, firm, line, &groups[0], &groups[1], client);
        json_decref (line);
        json_decref (groups[0].lines);
        json_decref (groups[1].lines);
        if (refused)
            return refused;
        json_t *count = s_rows (self,
                                "SELECT COUNT (*) AS attempts FROM selection_item WHERE"
                                " firm_id = ?",
                                "s", firm);
        bool full = json_integer_value (json_object_get (json_array_get (count, 0), "attempts")) >=
                    S_SELECTION_MAX * 20;
        json_decref (count);
        if (full)
            return ml_admin_error ("too many selections are open at this firm; pay or clear some");
        //  Without an amount the invoice's whole available balance is paid, as it is then.
        bool stored = ml_odbc_begin (self->odbc) == 0;
        const char *insert = "INSERT OR REPLACE INTO selection_item (firm_id, staff, kind, number,"
                             " amount_minor, added_at) VALUES (?, ?, ?, ?, ?, ?)";
        if (stored && amount)
            stored = ml_odbc_execute (self->odbc, insert, "ssssis", firm, staff, kind, number,
                                      (int64_t)json_integer_value (amount), now) == 1;
        else if (stored)
            stored = ml_odbc_execute (self->odbc, insert, "ssssss", firm, staff, kind, number, NULL,
                                      now) == 1;
        if (!stored || ml_odbc_commit (self->odbc) != 0)
            return s_store_failed (self, "selection-add");
    } else if (streq (op, "selection-remove")) {
        if (ml_odbc_execute (self->odbc,
                             "DELETE FROM selection_item WHERE firm_id = ? AND staff = ? AND"
                             " kind = ? AND number = ?",
                             "ssss", firm, staff, kind, number) < 0)
            return s_store_failed (self, "selection-remove");
    } else if (streq (op, "selection-clear")) {
        if (ml_odbc_execute (self->odbc,
                             "DELETE FROM selection_item WHERE firm_id = ? AND staff = ?", "ss",
                             firm, staff) < 0)
            return s_store_failed (self, "selection-clear");
    }
    json_t *lines = s_selection_lines (self, firm, staff);
    return lines ? ml_admin_ok (json_pack ("{s:s, s:s, s:o}", "firm", firm, "staff", staff,
                                           "selection", lines))
                 : s_store_failed (self, "selection");
}

int ml_payments_resolve (ml_payments_t *self, char *deliver_firm, size_t size)
{
    assert (self);
    if (!self->processor)
        return 0;
    //  Charges left pending by a core that stopped mid-call, and unknown outcomes: asked by
    //  lookup with their stored key (a call already asked is not asked again).
    json_t *open = s_rows (self,
                           S_CHARGE_SQL " WHERE c.status IN ('pending', 'unknown')"
                                        " ORDER BY c.created_at LIMIT 20",
                           NULL, NULL);
    int resolved = 0;
    size_t index;
    json_t *row;
    json_array_foreach (open, index, row)
    {
        if (zhashx_lookup (self->calls, json_string_value (json_object_get (row, "charge_key"))))
            continue;
        s_call_t *call = s_charge_call (row, NULL);
        call->call.lookup = true;
        resolved += s_submit (self, call, deliver_firm, size);
    }
    json_decref (open);
    //  Refunds and voids whose outcome is unknown: asked the same way.
    open = s_rows (self,
                   "SELECT v.reversal_key, v.kind, v.amount_minor, c.currency, c.processor_txn"
                   " FROM reversal v JOIN charge c ON c.charge_key = v.charge_key"
                   " WHERE v.status IN ('pending', 'unknown') ORDER BY v.created_at LIMIT 20",
                   NULL, NULL);
    json_array_foreach (open, index, row)
    {
        const char *key = json_string_value (json_object_get (row, "reversal_key"));
        if (zhashx_lookup (self->calls, key))
            continue;
        s_call_t *call = s_call_new (S_FOR_REVERSAL, key, NULL);
        call->call.lookup = true;
        call->call.operation = streq (json_string_value (json_object_get (row, "kind")), "void")
                                   ? ML_PROCESSOR_VOID
                                   : ML_PROCESSOR_REFUND;
        snprintf (call->call.charge_txn, sizeof call->call.charge_txn, "%s",
                  json_string_value (json_object_get (row, "processor_txn")));
        call->call.amount_minor = json_integer_value (json_object_get (row, "amount_minor"));
        snprintf (call->call.currency, sizeof call->call.currency, "%s",
                  json_string_value (json_object_get (row, "currency")));
        resolved += s_submit (self, call, deliver_firm, size);
    }
    json_decref (open);
    return resolved;
}

//  A call was answered: record it where it belongs. Returns how many operations reached a
//  final outcome (a lookup that finds nothing asks for the operation itself, same key).
static int s_completed (ml_payments_t *self, s_call_t *call, char *deliver_firm, size_t size)
{
    ml_processor_call_t *made = &call->call;
    zhashx_delete (self->calls, made->key);
    s_flow_t *flow = *call->flow ? (s_flow_t *)zhashx_lookup (self->flows, call->flow) : NULL;
    if (call->purpose == S_FOR_TOKEN) {
        if (flow)
            s_flow_tokenized (self, flow, made, deliver_firm, size);
        free (call);
        return 0;
    }
    if (made->lookup && made->status == ML_PROCESSOR_NOT_FOUND) {
        //  Nothing happened under this key: making the operation with it now is safe.
        made->lookup = false;
        return s_submit (self, call, deliver_firm, size);
    }
    bool reversal = call->purpose == S_FOR_REVERSAL;
    //  A lookup tells only what is final; an operation's own answer is always recorded
    //  (UNKNOWN included: it stays open, to be looked up again).
    bool record = !made->lookup || made->status == ML_PROCESSOR_APPROVED ||
                  made->status == ML_PROCESSOR_DECLINED ||
                  (reversal && made->status == ML_PROCESSOR_ERROR);
    int finals = 0;
    if (record &&
        s_record (self, reversal ? &s_reversal_operation : &s_charge_operation, made->key,
                  made->status, &made->result, deliver_firm, size) == 0 &&
        made->status != ML_PROCESSOR_UNKNOWN)
        finals = 1;
    //  The Auto-Pay crash hook (docs/autopay.md): die right after an Auto-Pay charge's
    //  outcome is recorded, before its run's outcome is.
    const char *crash =
        self->worker && finals && !reversal ? getenv ("MATTERLINK_TEST_CRASH") : NULL;
    if (crash && streq (crash, "autopay-after-charge")) {
        json_t *rows = s_rows (self,
                               "SELECT p.source FROM charge c JOIN payment p ON p.payment_uuid ="
                               " c.payment_uuid WHERE c.charge_key = ?",
                               "s", made->key);
        const char *source =
            json_string_value (json_object_get (json_array_get (rows, 0), "source"));
        if (source && streq (source, "autopay"))
            raise (SIGKILL);
        json_decref (rows);
    }
    if (flow && --flow->outstanding <= 0)
        s_flow_done (self, flow);
    free (call);
    return finals;
}

int ml_payments_completed (ml_payments_t *self, ml_processor_call_t *call, char *deliver_firm,
                           size_t size)
{
    assert (self && call);
    //  Only a call this object asked and is still waiting for.
    if (zhashx_lookup (self->calls, call->key) != (void *)call) {
        ml_log (ML_LOG_ERROR, "payments: an answer to a call not asked (%s) ignored", call->key);
        return 0;
    }
    return s_completed (self, (s_call_t *)call, deliver_firm, size);
}

int ml_payments_drain (ml_payments_t *self, int timeout_ms, char *deliver_firm, size_t size)
{
    assert (self);
    int answered = 0;
    if (!self->worker || zhashx_size (self->calls) == 0)
        return 0;
    zpoller_t *poller = zpoller_new (self->worker, NULL);
    assert (poller);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zhashx_size (self->calls) > 0 && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int)(deadline - zclock_mono ())))
            break; //  out of time, or interrupted
        char *command = NULL;
        void *call = NULL;
        if (zsock_recv (self->worker, "sp", &command, &call) == 0 && command &&
            streq (command, "DONE") && call) {
            ml_payments_completed (self, (ml_processor_call_t *)call, deliver_firm, size);
            answered++;
        }
        zstr_free (&command);
    }
    zpoller_destroy (&poller);
    return answered;
}

json_t *ml_payments_ready (ml_payments_t *self, char *waiter, size_t size)
{
    assert (self);
    s_ready_t *ready = (s_ready_t *)zlistx_first (self->ready);
    if (!ready)
        return NULL;
    snprintf (waiter, size, "%s", ready->waiter);
    json_t *reply = ready->reply;
    ready->reply = NULL;
    zlistx_delete (self->ready, zlistx_cursor (self->ready));
    return reply;
}

json_t *ml_payments_execute (ml_payments_t *self, const char *op, const json_t *request,
                             char *deliver_firm, size_t size)
{
    assert (self && op);
    char problem[256] = "";
    if (streq (op, "account-add"))
        return s_account_add (self, request);
    if (streq (op, "account-list")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        if (*problem || !firm)
            return ml_admin_error ("'firm' is required");
        json_t *rows = s_rows (self,
                               "SELECT account_number, account_type, currency, merchant_account,"
                               " created_at FROM account WHERE firm_id = ? ORDER BY account_number",
                               "s", firm);
        return rows ? ml_admin_ok (json_pack ("{s:o}", "accounts", rows))
                    : s_store_failed (self, "account-list");
    }
    if (streq (op, "payment"))
        return s_payment (self, request, deliver_firm, size);
    if (streq (op, "refund") || streq (op, "void") || streq (op, "chargeback"))
        return s_reverse (self, op, request, deliver_firm, size);
    if (streq (op, "selection") || streq (op, "selection-add") || streq (op, "selection-remove") ||
        streq (op, "selection-clear"))
        return s_selection (self, op, request);
    if (streq (op, "reallocate"))
        return s_reallocate (self, request, deliver_firm, size);
    if (streq (op, "firm-contact"))
        return s_firm_contact (self, request);
    if (streq (op, "link-create"))
        return s_link_create (self, request);
    if (streq (op, "link-pay"))
        return s_link_pay (self, request, deliver_firm, size);
    if (streq (op, "link-list"))
        return s_links (self, request);
    if (streq (op, "link-cancel"))
        return s_link_cancel (self, request);
    if (streq (op, "payments")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        if (*problem || !firm)
            return ml_admin_error ("'firm' is required");
        json_t *rows = s_rows (self,
                               "SELECT payment_uuid FROM payment WHERE firm_id = ?"
                               " ORDER BY created_at DESC LIMIT 100",
                               "s", firm);
        json_t *list = json_array ();
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            json_t *payment =
                s_payment_json (self, json_string_value (json_object_get (row, "payment_uuid")));
            if (payment)
                json_array_append_new (list, payment);
        }
        json_decref (rows);
        return ml_admin_ok (json_pack ("{s:o}", "payments", list));
    }
    if (streq (op, "payment-show")) {
        const char *uuid = ml_admin_argument (request, "payment_uuid", 36, problem, sizeof problem);
        json_t *payment = !*problem && uuid ? s_payment_json (self, uuid) : NULL;
        return payment ? ml_admin_ok (json_pack ("{s:o}", "payment", payment))
                       : ml_admin_error ("no payment '%s'", uuid ? uuid : "");
    }
    return NULL;
}

//  Auto-Pay -------------------------------------------------------------------------------------

json_t *ml_payments_autopay (ml_payments_t *self, const char *firm, int64_t payer_id,
                             int64_t method_id, const char *account_number, const json_t *lines,
                             const char *ar_message, const char *payment_uuid, char *deliver_firm,
                             size_t size)
{
    assert (self && firm && account_number && lines && payment_uuid);
    if (!self->processor)
        return ml_admin_error ("no card processor is configured (section 'processor' of the "
                               "core's configuration)");
    //  A run that stopped after its payment was stored is never charged again under a new
    //  key: its charges are settled by ml_payments_resolve with their stored keys.
    json_t *known = s_payment_json (self, payment_uuid);
    if (known)
        return ml_admin_ok (json_pack ("{s:o}", "payment", known));
    json_t *request =
        json_pack ("{s:s, s:s, s:I, s:I, s:O, s:s}", "firm", firm, "staff", "autopay", "payer_id",
                   (json_int_t)payer_id, "method_id", (json_int_t)method_id, "lines",
                   (json_t *)lines, "ar_message", ar_message ? ar_message : "");
    s_order_t order;
    s_order_init (&order);
    json_t *reply = s_order_parse (self, request, &order);
    //  Auto-Pay pays invoices into the schedule's OPERATING account, never trust.
    if (!reply && (order.accounts[1] || !order.accounts[0]))
        reply = ml_admin_error ("Auto-Pay pays invoices only, into an OPERATING account");
    if (!reply && !streq (json_string_value (json_object_get (order.accounts[0], "account_number")),
                          account_number))
        reply = ml_admin_error (
            "the invoices' currency is paid into account %s, not %s",
            json_string_value (json_object_get (order.accounts[0], "account_number")),
            account_number);
    char token[ML_PROCESSOR_ID_MAX + 1] = "", brand[16] = "", last4[5] = "";
    if (!reply)
        reply = s_saved_method (order.payer, json_object_get (request, "method_id"), token, brand,
                                last4);
    //  No flow: the run records the payment as it stands (pending while the worker charges
    //  it) and settles it from payment-show on a later tick.
    if (!reply)
        reply = s_order_charge (self, &order, "autopay", payment_uuid, token, brand, last4, NULL,
                                deliver_firm, size);
    s_order_free (&order);
    json_decref (request);
    return reply;
}

//  Selftest -------------------------------------------------------------------------------------

static json_t *s_run (ml_payments_t *self, const char *text, char *deliver)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    const char *op = json_string_value (json_object_get (request, "op"));
    json_t *reply = ml_payments_execute (self, op, request, deliver, 64);
    json_decref (request);
    assert (reply);
    return reply;
}

static int64_t s_count (ml_store_t *store, const char *sql)
{
    ml_query_t *query = ml_odbc_query (ml_store_odbc (store), sql, NULL);
    int64_t value = -1;
    assert (query && ml_query_fetch (query) == 1 && ml_query_int64 (query, 0, &value) == 0);
    ml_query_destroy (&query);
    return value;
}

//  What a payment can still apply to an invoice now.
static int64_t s_available (ml_store_t *store, const char *invoice)
{
    json_t *items = ml_store_open_items (store, "acme", NULL, NULL, invoice);
    int64_t available =
        json_integer_value (json_object_get (json_array_get (items, 0), "available_minor"));
    json_decref (items);
    return available;
}

void ml_payments_test (bool verbose)
{
    printf (" * ml_payments: ");
    char directory[128], error[512], deliver[64];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_odbc (store), error, sizeof error);
    assert (payers);
    ml_processor_settings_t settings;
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    assert (processor);
    ml_payments_t *payments = ml_payments_new (store, payers, processor, NULL, error, sizeof error);
    if (!payments)
        fprintf (stderr, "%s\n", error);
    assert (payments);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);

    //  A replica: client C-1 with three invoices on matter M-1 (which has a trust ledger),
    //  client C-2 with one invoice.
    const ml_selftest_item_t items[] = {{'I', "INV-12", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-9", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-50", "2026-05-01", "C-1", "M-1", 10000},
                                        {'I', "INV-77", "2025-12-01", "C-2", "M-2", 10000},
                                        {'T', "", "", "C-1", "M-1", 70000},
                                        {'I', "INV-88", "2026-06-01", "C-1", "M-1", 10000},
                                        {'I', "BIG-1", "2026-02-01", "C-3", "M-3", 600000000000000},
                                        {'I', "BIG-2", "2026-02-02", "C-3", "M-3", 600000000000000},
                                        {'I', "BIG-3", "2026-02-03", "C-3", "M-3", INT64_MAX}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);

    //  Accounts: typed for good, one per type and currency.
    json_t *reply = s_run (payments,
                           "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"OP-001\","
                           " \"type\": \"OPERATING\", \"currency\": \"USD\", \"merchant_account\":"
                           " \"acct_operating\"}",
                           deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    const char *refused[] = {
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"OP-002\", \"type\": "
        "\"OPERATING\", \"currency\": \"USD\", \"merchant_account\": \"x\"}",
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"X\", \"type\": \"SAVINGS\", "
        "\"currency\": \"USD\", \"merchant_account\": \"x\"}",
        "{\"op\": \"account-add\", \"firm\": \"nope\", \"number\": \"X\", \"type\": \"TRUST\", "
        "\"currency\": \"USD\", \"merchant_account\": \"x\"}"};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        reply = s_run (payments, refused[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        json_decref (reply);
    }
    //  Without a trust account, a trust deposit is refused before any money moves.
    const char *mixed = "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                        " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                        " \"4242 4242 4242 4242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
                        " \"123\"}, \"lines\": [{\"invoice\": \"INV-9\", \"amount_minor\": 5000},"
                        " {\"trust\": \"M-1\", \"amount_minor\": 20000}]}";
    reply = s_run (payments, mixed, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "TRUST account"));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == 0);
    reply = s_run (payments,
                   "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"TR-001\","
                   " \"type\": \"TRUST\", \"currency\": \"USD\", \"merchant_account\":"
                   " \"acct_trust\"}",
                   deliver);
    json_decref (reply);
    ml_odbc_t *odbc = ml_store_odbc (store);
    assert (ml_odbc_execute (odbc, "UPDATE account SET account_type = 'OPERATING'", NULL) < 0);
    assert (ml_odbc_execute (odbc, "DELETE FROM account", NULL) < 0);

    //  Invoices and trust in one selection: two charges into the right accounts, two
    //  postings, each carrying its processor transaction. The card number appears nowhere.
    *deliver = 0;
    reply = s_run (payments, mixed, deliver);
    assert (json_is_true (json_object_get (reply, "ok")) && streq (deliver, "acme"));
    char *text = json_dumps (reply, 0);
    assert (!strstr (text, "4242 4242") && !strstr (text, "4242424242424242"));
    free (text);
    json_t *payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "approved"));
    json_t *charges = json_object_get (payment, "charges");
    assert (json_array_size (charges) == 2);
    json_t *operating = json_array_get (charges, 0), *trust = json_array_get (charges, 1);
    assert (streq (json_string_value (json_object_get (operating, "account_type")), "OPERATING"));
    assert (streq (json_string_value (json_object_get (operating, "merchant_account")),
                   "acct_operating"));
    assert (json_integer_value (json_object_get (operating, "amount_minor")) == 5000);
    assert (streq (json_string_value (json_object_get (trust, "account_number")), "TR-001"));
    assert (json_integer_value (json_object_get (trust, "amount_minor")) == 20000);
    assert (json_integer_value (json_object_get (trust, "fee_minor")) == 0);
    json_t *posted =
        ml_store_posting (store, json_string_value (json_object_get (trust, "posting_uuid")));
    assert (posted);
    assert (streq (json_string_value (json_object_get (posted, "account_number")), "TR-001"));
    assert (*json_string_value (json_object_get (posted, "processor_txn")));
    json_decref (posted);
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting WHERE source = 'payment'") == 2);
    //  No fee is ever netted from a trust deposit, and a charge's money and final status
    //  never change.
    assert (ml_odbc_execute (odbc,
                             "INSERT INTO charge (charge_key, payment_uuid, account_number,"
                             " account_type, merchant_account, currency, amount_minor, fee_minor,"
                             " lines, posting_uuid, status, created_at, updated_at) SELECT 'x',"
                             " payment_uuid, 'TR-001', 'TRUST', 'acct_trust', 'USD', 100, 1, '[]',"
                             " 'y', 'pending', '', '' FROM payment LIMIT 1",
                             NULL) < 0);
    assert (ml_odbc_execute (odbc, "UPDATE charge SET amount_minor = 1", NULL) < 0);
    assert (ml_odbc_execute (odbc, "UPDATE charge SET status = 'pending'", NULL) < 0);

    //  Auto-apply pays invoices oldest first and never touches trust; the pending posting
    //  counts, so INV-9's remaining 50.00 goes first.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"auto\": {\"client\": \"C-1\", \"amount\": \"80.00\"}}",
                   deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    charges = json_object_get (json_object_get (reply, "payment"), "charges");
    assert (json_array_size (charges) == 1);
    posted = ml_store_posting (
        store, json_string_value (json_object_get (json_array_get (charges, 0), "posting_uuid")));
    json_t *lines = json_object_get (posted, "lines");
    assert (json_array_size (lines) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 0), "reference")),
                   "INV-9"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 0), "amount_minor")) ==
            5000);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 1), "reference")),
                   "INV-12"));
    json_decref (posted);
    json_decref (reply);

    //  Refusals, each before any money moves: more than available, two clients, a
    //  declined card (charged, refused, no posting).
    int64_t charges_before = s_count (store, "SELECT COUNT (*) FROM charge");
    const char *bad[] = {
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 10001}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 1}, {\"invoice\": \"INV-77\", \"amount_minor\": 1}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424241\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 1}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"lines\": []}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"currency\": \"JPY\", \"card\": {\"number\": \"4242424242424242\","
        " \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\":"
        " \"INV-50\", \"amount_minor\": 500}]}"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        reply = s_run (payments, bad[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        text = json_dumps (reply, 0);
        assert (!strstr (text, "4242424242424241"));
        free (text);
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == charges_before);
    //  The one money limit (ml_money.h), before any charge: a line above it, lines each
    //  under it whose sum is above it, an auto amount above it.
#define S_CARD_PAYMENT                                                                             \
    "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"          \
    " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"         \
    " \"exp_year\": 2031, \"cvc\": \"123\"}, "
    const char *over[] = {
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-3\", \"amount_minor\": 1000000000000000}]}",
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-1\", \"amount_minor\": 600000000000000},"
                       " {\"invoice\": \"BIG-2\", \"amount_minor\": 400000000000000}]}",
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-1\", \"amount_minor\": 600000000000000},"
                       " {\"invoice\": \"BIG-3\", \"amount_minor\": 9223372036854775807}]}",
        S_CARD_PAYMENT "\"auto\": {\"client\": \"C-3\", \"amount\": \"10,000,000,000,000.00\"}}",
        S_CARD_PAYMENT
        "\"auto\": {\"client\": \"C-3\", \"amount\": \"6,000,000,000,000.00\"},"
        " \"lines\": [{\"invoice\": \"BIG-3\", \"amount_minor\": 400000000000000}]}"};
#undef S_CARD_PAYMENT
    for (size_t index = 0; index < sizeof over / sizeof over[0]; index++) {
        reply = s_run (payments, over[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        if (!strstr (json_string_value (json_object_get (reply, "error")), "999,999,999,999,999")) {
            fprintf (stderr, "%s\n", json_string_value (json_object_get (reply, "error")));
            assert (false);
        }
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == charges_before);
    int64_t postings_before = s_count (store, "SELECT COUNT (*) FROM posting");
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4000000000000002\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 100}]}",
                   deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "declined"));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before);
    //  A declined charge is final: it holds nothing.
    assert (s_count (store, "SELECT COUNT (*) FROM balance_hold") == 0);
    int64_t available_before = s_available (store, "INV-50");

    //  A timeout leaves the charge unknown, never failed; resolving asks the processor with
    //  the same key and makes the one posting.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4000000000003006\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 300}]}",
                   deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "unknown"));
    char payment_uuid[37], show[512];
    snprintf (payment_uuid, sizeof payment_uuid, "%s",
              json_string_value (json_object_get (payment, "payment_uuid")));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before);
    //  Until it is final, its lines are held: no other payment gets INV-50's whole balance.
    assert (s_available (store, "INV-50") == available_before - 300);
    snprintf (show, sizeof show,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
              " \"123\"}, \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": %lld}]}",
              (long long)available_before);
    reply = s_run (payments, show, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "available"));
    json_decref (reply);
    //  A store from before holds gets them for its open charges when opened.
    assert (ml_odbc_execute (odbc, "DELETE FROM balance_hold", NULL) == 1);
    ml_payments_t *reopened = ml_payments_new (store, payers, processor, NULL, error, sizeof error);
    assert (reopened && s_available (store, "INV-50") == available_before - 300);
    ml_payments_destroy (&reopened);
    *deliver = 0;
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 1);
    //  Final: the hold is gone and the posting takes over, the balance never free between.
    assert (s_count (store, "SELECT COUNT (*) FROM balance_hold") == 0);
    assert (s_available (store, "INV-50") == available_before - 300);
    assert (streq (deliver, "acme"));
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 0);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before + 1);
    snprintf (show, sizeof show, "{\"op\": \"payment-show\", \"payment_uuid\": \"%s\"}",
              payment_uuid);
    reply = s_run (payments, show, deliver);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);

    char request[512];
    //  Reversals: a refund takes back from the last lines first, never more than was
    //  charged; a trust refund never exceeds the ledger's balance minus what is pending; a
    //  void takes all or nothing; a chargeback is recorded as the processor decided.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 700}, {\"invoice\":"
                   " \"INV-12\", \"amount_minor\": 300}, {\"trust\": \"M-1\", \"amount_minor\":"
                   " 80000}]}",
                   deliver);
    charges = json_object_get (json_object_get (reply, "payment"), "charges");
    char operating_key[96], trust_key[96];
    snprintf (operating_key, sizeof operating_key, "%s",
              json_string_value (json_object_get (json_array_get (charges, 0), "charge_key")));
    snprintf (trust_key, sizeof trust_key, "%s",
              json_string_value (json_object_get (json_array_get (charges, 1), "charge_key")));
    //  Not before the matter system has the posting.
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              operating_key);
    json_t *refused_reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (refused_reply, "error")), "not posted"));
    json_decref (refused_reply);
    for (size_t index = 0; index < 2; index++) {
        ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
        snprintf (
            result->posting_uuid, sizeof result->posting_uuid, "%s",
            json_string_value (json_object_get (json_array_get (charges, index), "posting_uuid")));
        strcpy (result->status, "posted");
        strcpy (result->receipt_id, "9");
        assert (ml_store_posting_result (store, "acme", result) == 1);
        ml_msg_destroy (&result);
    }
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 400}", operating_key);
    reply = s_run (payments, request, deliver);
    json_t *reversal = json_object_get (reply, "reversal");
    assert (streq (json_string_value (json_object_get (reversal, "status")), "approved"));
    posted =
        ml_store_posting (store, json_string_value (json_object_get (reversal, "posting_uuid")));
    lines = json_object_get (posted, "lines");
    //  INV-12's 300 first (the last line), then 100 of INV-50.
    assert (json_array_size (lines) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 0), "reference")),
                   "INV-12"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 1), "amount_minor")) ==
            100);
    assert (*json_string_value (json_object_get (posted, "reverses")));
    json_decref (posted);
    json_decref (reply);
    //  600 are left: 601 is refused, and a void after a refund too.
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 601}", operating_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "at most 6.00"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"void\", \"charge_key\": \"%s\"}", operating_key);
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    //  The replica says M-1 holds 700.00 in trust: 800.00 cannot go back, 700.00 can, and
    //  then nothing more while that reversal is pending.
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "trust balance"));
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 70000}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"chargeback\", \"charge_key\": \"%s\", \"amount_minor\": 1}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "trust balance"));
    json_decref (reply);
    //  A chargeback of what is left of the operating charge is recorded as decided.
    snprintf (request, sizeof request, "{\"op\": \"chargeback\", \"charge_key\": \"%s\"}",
              operating_key);
    reply = s_run (payments, request, deliver);
    assert (json_integer_value (
                json_object_get (json_object_get (reply, "reversal"), "amount_minor")) == 600);
    json_decref (reply);
    assert (ml_odbc_execute (odbc, "UPDATE reversal SET amount_minor = 1", NULL) < 0);
    assert (ml_odbc_execute (odbc, "DELETE FROM reversal", NULL) < 0);

    //  A rejected posting's money goes on other lines, once, same account, same amount.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-77\", \"amount_minor\": 100}]}",
                   deliver);
    char rejected_uuid[37];
    snprintf (
        rejected_uuid, sizeof rejected_uuid, "%s",
        json_string_value (json_object_get (
            json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0),
            "posting_uuid")));
    json_decref (reply);
    ml_msg_t *rejection = ml_msg_new (ML_MSG_POSTING_RESULT);
    snprintf (rejection->posting_uuid, sizeof rejection->posting_uuid, "%s", rejected_uuid);
    strcpy (rejection->status, "rejected");
    strcpy (rejection->reason, "ML001 invoice_not_open");
    assert (ml_store_posting_result (store, "acme", rejection) == 1);
    ml_msg_destroy (&rejection);
    const char *reallocations[] = {
        "{\"op\": \"reallocate\", \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 99}]}",
        "{\"op\": \"reallocate\", \"lines\": [{\"trust\": \"M-1\", \"amount_minor\": 100}]}",
        "{\"op\": \"reallocate\", \"staff\": \"alice\", \"lines\": [{\"invoice\":"
        " \"INV-50\", \"amount_minor\": 100}]}"};
    for (size_t index = 0; index < 4; index++) {
        json_t *move = json_loads (reallocations[index < 3 ? index : 2], 0, NULL);
        json_object_set_new (move, "posting_uuid", json_string (rejected_uuid));
        reply = ml_payments_execute (payments, "reallocate", move, deliver, sizeof deliver);
        json_decref (move);
        //  Only the third succeeds; the fourth repeats it and is refused.
        assert (json_is_true (json_object_get (reply, "ok")) == (index == 2));
        if (index == 2) {
            json_t *moved = json_object_get (reply, "posting");
            assert (streq (json_string_value (json_object_get (moved, "source")), "reallocation"));
            assert (json_integer_value (json_object_get (moved, "amount_minor")) == 100);
        }
        json_decref (reply);
    }

    //  A rejected posting's charge is refunded instead, with no reversing posting (the books
    //  never had the money, and no trust balance limits it); then it is not reallocated.
    //  One whose money was reallocated is in the books there, and is not refunded here.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"trust\": \"M-1\", \"amount_minor\": 90000000}]}",
                   deliver);
    json_t *unbooked =
        json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0);
    assert (unbooked);
    char unbooked_uuid[37], unbooked_key[80];
    snprintf (unbooked_uuid, sizeof unbooked_uuid, "%s",
              json_string_value (json_object_get (unbooked, "posting_uuid")));
    snprintf (unbooked_key, sizeof unbooked_key, "%s",
              json_string_value (json_object_get (unbooked, "charge_key")));
    json_decref (reply);
    rejection = ml_msg_new (ML_MSG_POSTING_RESULT);
    snprintf (rejection->posting_uuid, sizeof rejection->posting_uuid, "%s", unbooked_uuid);
    strcpy (rejection->status, "rejected");
    strcpy (rejection->reason, "ML001 matter_closed");
    assert (ml_store_posting_result (store, "acme", rejection) == 1);
    ml_msg_destroy (&rejection);
    int64_t postings_now = s_count (store, "SELECT COUNT (*) FROM posting");
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 1000000000000000}",
              unbooked_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "999,999,999,999,999"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              unbooked_key);
    reply = s_run (payments, request, deliver);
    reversal = json_object_get (reply, "reversal");
    assert (streq (json_string_value (json_object_get (reversal, "status")), "approved"));
    assert (json_integer_value (json_object_get (reversal, "amount_minor")) == 90000000);
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_now);
    json_t *again = json_pack ("{s:s, s:s, s:[{s:s, s:i}]}", "op", "reallocate", "posting_uuid",
                               unbooked_uuid, "lines", "trust", "M-1", "amount_minor", 90000000);
    reply = ml_payments_execute (payments, "reallocate", again, deliver, sizeof deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "refunded"));
    json_decref (reply);
    json_decref (again);
    json_t *charge_rows = s_rows (payments, "SELECT charge_key FROM charge WHERE posting_uuid = ?",
                                  "s", rejected_uuid);
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              json_string_value (json_object_get (json_array_get (charge_rows, 0), "charge_key")));
    json_decref (charge_rows);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "reallocated"));
    json_decref (reply);

    //  Payment links: 24 hours, single use, revocable, balances checked again when paid.
    reply = s_run (payments,
                   "{\"op\": \"link-create\", \"firm\": \"acme\", \"staff\": \"alice\","
                   " \"payer_name\": \"Pat\", \"payer_email\": \"pat@example.com\","
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 1000},"
                   " {\"trust\": \"M-1\", \"amount_minor\": 500}]}",
                   deliver);
    json_t *link = json_object_get (reply, "link");
    assert (streq (json_string_value (json_object_get (link, "state")), "outstanding"));
    char token[64], link_id[40];
    snprintf (token, sizeof token, "%s", json_string_value (json_object_get (link, "token")));
    snprintf (link_id, sizeof link_id, "%s", json_string_value (json_object_get (link, "link_id")));
    json_decref (reply);
#define S_PAY_LINK                                                                                 \
    "{\"op\": \"link-pay\", \"token\": \"%s\", \"card\": {\"number\":"                             \
    " \"%s\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}}"
    snprintf (request, sizeof request, S_PAY_LINK, token, "4000000000000002");
    reply = s_run (payments, request, deliver);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "declined"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, token, "4242424242424242");
    reply = s_run (payments, request, deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "approved"));
    assert (json_array_size (json_object_get (payment, "charges")) == 2);
    json_decref (reply);
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "is paid"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, "0123456789abcdef0123456789abcdef",
              "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    //  A link whose invoice was paid meanwhile is refused; cancelled and expired ones too.
#define S_CREATE_LINK                                                                              \
    "{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\":"                                \
    " \"Pat\", \"payer_email\": \"pat@example.com\", \"lines\":"                                   \
    " [{\"invoice\": \"INV-77\", \"amount_minor\": %d}]}"
    char tokens[3][64], ids[3][40];
    for (int index = 0; index < 3; index++) {
        snprintf (request, sizeof request, S_CREATE_LINK, index == 0 ? 10000 : 100);
        reply = s_run (payments, request, deliver);
        link = json_object_get (reply, "link");
        snprintf (tokens[index], sizeof tokens[index], "%s",
                  json_string_value (json_object_get (link, "token")));
        snprintf (ids[index], sizeof ids[index], "%s",
                  json_string_value (json_object_get (link, "link_id")));
        json_decref (reply);
    }
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
                   " \"123\"}, \"lines\": [{\"invoice\": \"INV-77\", \"amount_minor\":"
                   " 500}]}",
                   deliver);
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[0], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "no longer due"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"link-cancel\", \"link_id\": \"%s\"}", ids[1]);
    reply = s_run (payments, request, deliver);
    assert (streq (json_string_value (json_object_get (json_object_get (reply, "link"), "state")),
                   "cancelled"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[1], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "cancelled"));
    json_decref (reply);
    assert (ml_odbc_execute (odbc,
                             "UPDATE payment_link SET expires_at = '2000-01-01' WHERE link_id = ?",
                             "s", ids[2]) == 1);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[2], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "expired"));
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"link-list\", \"firm\": \"acme\", \"state\": \"paid\"}",
                   deliver);
    assert (json_array_size (json_object_get (reply, "links")) == 1);
    assert (streq (json_string_value (json_object_get (
                       json_array_get (json_object_get (reply, "links"), 0), "link_id")),
                   link_id));
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"payments\", \"firm\": \"acme\"}", deliver);
    assert (json_array_size (json_object_get (reply, "payments")) >= 5);
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"link-list\", \"firm\": \"acme\"}", deliver);
    assert (json_array_size (json_object_get (reply, "links")) == 4);
    json_decref (reply);
    assert (ml_odbc_execute (odbc, "UPDATE payment_link SET payment_uuid = NULL WHERE link_id = ?",
                             "s", link_id) < 0);

    //  A selection gathers lines from several searches and is paid at once, then emptied.
    reply = s_run (payments,
                   "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\": \"alice\","
                   " \"trust\": \"M-1\"}",
                   deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "by hand"));
    json_decref (reply);
    json_decref (s_run (payments,
                        "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\":"
                        " \"alice\", \"invoice\": \"INV-88\"}",
                        deliver));
    json_decref (s_run (payments,
                        "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\":"
                        " \"alice\", \"trust\": \"M-1\", \"amount_minor\": 100}",
                        deliver));
    reply = s_run (payments, "{\"op\": \"selection\", \"firm\": \"acme\", \"staff\": \"alice\"}",
                   deliver);
    json_t *selection = json_object_get (reply, "selection");
    assert (json_array_size (selection) == 2);
    assert (json_integer_value (json_object_get (json_array_get (selection, 0), "amount_minor")) >
            0);
    json_decref (reply);
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"staff\": \"alice\","
                   " \"selection\": true, \"payer_name\": \"Pat\", \"payer_email\":"
                   " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\","
                   " \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}}",
                   deliver);
    assert (json_array_size (json_object_get (json_object_get (reply, "payment"), "charges")) == 2);
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"selection\", \"firm\": \"acme\", \"staff\": \"alice\"}",
                   deliver);
    assert (json_array_size (json_object_get (reply, "selection")) == 0);
    json_decref (reply);

    //  With the processor's worker: a payment is told to wait, is charged on the worker's
    //  thread, and its reply is ready once the answers are recorded.
    zactor_t *worker = ml_service_start (ml_processor_actor, processor);
    assert (worker);
    ml_payments_set_worker (payments, worker);
    char pay_request[512];
    const char *open_invoice = NULL;
    const char *candidates[] = {"INV-9", "INV-12", "INV-50", "INV-77", "INV-88"};
    for (size_t index = 0; !open_invoice && index < 5; index++)
        if (s_available (store, candidates[index]) >= 100)
            open_invoice = candidates[index];
    assert (open_invoice);
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
              " \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": 100}]}",
              open_invoice);
    reply = s_run (payments, pay_request, deliver);
    char waiter[ML_PROCESSOR_KEY_MAX + 1];
    snprintf (waiter, sizeof waiter, "%s",
              json_string_value (json_object_get (reply, "waiting_for")));
    assert (*waiter);
    json_decref (reply);
    assert (ml_payments_ready (payments, show, sizeof show) == NULL);
    //  Two answers: the card's token, then the charge.
    assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 2);
    reply = ml_payments_ready (payments, show, sizeof show);
    assert (reply && streq (show, waiter));
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);
    //  A link is paid once at a time: a second try while the first waits is refused.
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"lines\": [{\"invoice\": \"%s\","
              " \"amount_minor\": 1}]}",
              open_invoice);
    reply = s_run (payments, pay_request, deliver);
    char link_token[64];
    snprintf (link_token, sizeof link_token, "%s",
              json_string_value (json_object_get (json_object_get (reply, "link"), "token")));
    json_decref (reply);
    snprintf (pay_request, sizeof pay_request, S_PAY_LINK, link_token, "4242424242424242");
    reply = s_run (payments, pay_request, deliver);
    assert (json_object_get (reply, "waiting_for"));
    json_decref (reply);
    reply = s_run (payments, pay_request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "being paid"));
    json_decref (reply);
    assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 2);
    reply = ml_payments_ready (payments, show, sizeof show);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);
    reply = s_run (payments, pay_request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "is paid"));
    json_decref (reply);
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
              " \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": 100}]}",
              open_invoice);
    //  A core stopped with a call in flight: the charge stays pending, found by lookup later.
    reply = s_run (payments, pay_request, deliver);
    assert (json_object_get (reply, "waiting_for"));
    json_decref (reply);
    zactor_destroy (&worker);
    ml_payments_set_worker (payments, NULL);

    //  pay with a pay_key: a repeat returns the first result and posts nothing more.
    ml_admin_parts_t parts = {store, payers, payments, NULL, NULL, NULL};
    ml_admin_effects_t effects;
    const char *keyed[] = {
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.02\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk 1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1043\"}"};
    char first_uuid[37] = "";
    int64_t keyed_before = s_count (store, "SELECT COUNT (*) FROM posting");
    for (size_t index = 0; index < sizeof keyed / sizeof keyed[0]; index++) {
        json_t *keyed_request = json_loads (keyed[index], 0, NULL);
        reply = ml_admin_execute (&parts, keyed_request, &effects);
        json_decref (keyed_request);
        const char *uuid = json_string_value (json_object_get (reply, "posting_uuid"));
        //  Only the first and the last post; the second repeats the first.
        assert (json_is_true (json_object_get (reply, "ok")) == (index < 2 || index == 4));
        assert (json_is_true (json_object_get (reply, "repeated")) == (index == 1));
        if (index == 0)
            snprintf (first_uuid, sizeof first_uuid, "%s", uuid);
        if (index == 1)
            assert (streq (uuid, first_uuid) &&
                    json_array_size (json_object_get (reply, "lines")) == 1);
        if (index == 2)
            assert (strstr (json_string_value (json_object_get (reply, "error")), first_uuid));
        if (index == 4)
            assert (!streq (uuid, first_uuid));
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == keyed_before + 2);

    ml_log_setup (NULL, saved);
    ml_payments_destroy (&payments);
    ml_processor_destroy (&processor);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
