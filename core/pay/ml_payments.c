/*  ml_payments: card payments from selection to postings. See include/ml_payments.h;
    the class is split over core/pay/ (ml_pay_internal.h). This file: the object, its
    tables, auto-apply, pay_key, the processor's answers and the op dispatch. */
#include "ml_pay_internal.h"
#include "ml_notify.h"

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

void ml_pay_flow_destroy (ml_pay_flow_t **self_p)
{
    if (*self_p) {
        ml_pay_flow_t *self = *self_p;
        ml_pay_order_free (&self->order);
        json_decref (self->request);
        json_decref (self->reply);
        free (self);
        *self_p = NULL;
    }
}

static void s_ready_destroy (ml_pay_ready_t **self_p)
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
        ml_db_query (self->db,
                     "SELECT c.charge_key, c.lines, p.firm_id FROM charge c"
                     " JOIN payment p ON p.payment_uuid = c.payment_uuid"
                     " WHERE c.status IN ('pending', 'unknown') AND NOT EXISTS"
                     " (SELECT 1 FROM balance_hold h WHERE h.hold_key = c.charge_key)",
                     NULL),
        ml_pay_integer_column);
    if (!open)
        return -1;
    bool ok = json_array_size (open) == 0 || ml_db_begin (self->db) == 0;
    size_t index;
    json_t *charge;
    json_array_foreach (open, index, charge)
    {
        json_t *lines = json_loads (json_string_value (json_object_get (charge, "lines")), 0, NULL);
        ok = ok &&
             ml_pay_hold (self, json_string_value (json_object_get (charge, "firm_id")),
                          json_string_value (json_object_get (charge, "charge_key")), lines) == 0;
        json_decref (lines);
    }
    if (json_array_size (open) > 0 && (!ok || ml_db_commit (self->db) != 0)) {
        ml_db_rollback (self->db);
        ok = false;
    }
    json_decref (open);
    return ok ? 0 : -1;
}

//  Drop the rows read for answers (ml_payments_prepare) that were not recorded.
static void s_known_clear (zhashx_t *known)
{
    for (json_t *rows = (json_t *)zhashx_first (known); rows; rows = (json_t *)zhashx_next (known))
        json_decref (rows);
    zhashx_purge (known);
}

ml_payments_t *ml_payments_new (ml_store_t *store, ml_payers_t *payers, ml_processor_t *processor,
                                ml_mailer_t *mailer, char *error, size_t error_size)
{
    assert (store && payers);
    ml_db_t *db = ml_store_db (store);
    if (ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "payments tables",
                         error, error_size) != 0 ||
        ml_notify_schema (db, error, error_size) != 0) //  the notice sweep reads it
        return NULL;
    ml_payments_t *self = calloc (1, sizeof (ml_payments_t));
    assert (self);
    self->store = store;
    self->db = db;
    self->payers = payers;
    self->processor = processor;
    self->mailer = mailer;
    self->calls = zhashx_new ();
    self->unsent = zlistx_new ();
    self->flows = zhashx_new ();
    zhashx_set_destructor (self->flows, (zhashx_destructor_fn *)ml_pay_flow_destroy);
    self->known = zhashx_new ();
    self->ready = zlistx_new ();
    zlistx_set_destructor (self->ready, (zlistx_destructor_fn *)s_ready_destroy);
    if (s_hold_upgrade (self) != 0) {
        snprintf (error, error_size, "cannot hold the lines of open charges: %s",
                  ml_db_error (db)->message);
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
        zlistx_destroy (&self->unsent);
        zhashx_destroy (&self->flows);
        s_known_clear (self->known);
        zhashx_destroy (&self->known);
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

bool ml_pay_integer_column (const char *name)
{
    static const char *integers[] = {"amount_minor", "fee_minor", "attempts", "payer_id"};
    for (size_t index = 0; index < sizeof integers / sizeof integers[0]; index++)
        if (streq (name, integers[index]))
            return true;
    return false;
}

json_t *ml_pay_rows (ml_payments_t *self, const char *sql, const char *picture, const char *text)
{
    return ml_store_rows (ml_db_query (self->db, sql, picture, text), ml_pay_integer_column);
}

json_t *ml_pay_store_failed (ml_payments_t *self, const char *doing)
{
    ml_log (ML_LOG_ERROR, "payments: %s failed: %s", doing, ml_db_error (self->db)->message);
    ml_db_rollback (self->db);
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

void ml_payments_set_owner (ml_payments_t *self, ml_firm_owned_fn *owned, void *arg,
                            int64_t pending_ms)
{
    assert (self);
    self->owned = owned;
    self->owned_arg = arg;
    self->pending_ms = pending_ms;
}

//  Several nodes: whether this node resolves the operation (a charge_key or reversal_key,
//  found by sql with one text parameter, returning firm_id, status, updated_at) now.
static bool s_resolves (ml_payments_t *self, const char *sql, const char *key)
{
    if (!self->owned)
        return true;
    json_t *rows = ml_pay_rows (self, sql, "s", key);
    json_t *row = json_array_get (rows, 0);
    const char *firm = json_string_value (json_object_get (row, "firm_id"));
    const char *status = json_string_value (json_object_get (row, "status"));
    const char *updated = json_string_value (json_object_get (row, "updated_at"));
    char cutoff[32] = "";
    time_t seconds = (time_t)((zclock_time () - self->pending_ms) / 1000);
    struct tm utc;
    if (gmtime_r (&seconds, &utc))
        strftime (cutoff, sizeof cutoff, "%Y-%m-%dT%H:%M:%S.999Z", &utc);
    bool yes = firm && status && updated && self->owned (self->owned_arg, firm) &&
               (!streq (status, "pending") || strcmp (updated, cutoff) < 0);
    json_decref (rows);
    return yes;
}

int ml_payments_resolve (ml_payments_t *self, char *deliver_firm, size_t size)
{
    assert (self);
    if (!self->processor)
        return 0;
    //  Charges left pending by a core that stopped mid-call, and unknown outcomes: asked by
    //  lookup with their stored key (a call already asked is not asked again).
    json_t *open = ml_pay_rows (self,
                                ML_PAY_CHARGE_SQL " WHERE c.status IN ('pending', 'unknown')"
                                                  " ORDER BY c.created_at LIMIT 20",
                                NULL, NULL);
    int resolved = 0;
    size_t index;
    json_t *row;
    json_array_foreach (open, index, row)
    {
        if (zhashx_lookup (self->calls, json_string_value (json_object_get (row, "charge_key"))))
            continue;
        if (!s_resolves (self,
                         "SELECT p.firm_id, c.status, c.updated_at FROM charge c JOIN payment p"
                         " ON p.payment_uuid = c.payment_uuid WHERE c.charge_key = ?",
                         json_string_value (json_object_get (row, "charge_key"))))
            continue;
        ml_pay_call_t *call = ml_pay_charge_call (row, NULL);
        call->call.lookup = true;
        resolved += ml_pay_submit (self, call, deliver_firm, size);
    }
    json_decref (open);
    //  Refunds and voids whose outcome is unknown: asked the same way.
    open = ml_pay_rows (self,
                        "SELECT v.reversal_key, v.kind, v.amount_minor, c.currency, c.processor_txn"
                        " FROM reversal v JOIN charge c ON c.charge_key = v.charge_key"
                        " WHERE v.status IN ('pending', 'unknown') ORDER BY v.created_at LIMIT 20",
                        NULL, NULL);
    json_array_foreach (open, index, row)
    {
        const char *key = json_string_value (json_object_get (row, "reversal_key"));
        if (zhashx_lookup (self->calls, key))
            continue;
        if (!s_resolves (self,
                         "SELECT p.firm_id, v.status, v.updated_at FROM reversal v JOIN charge c"
                         " ON c.charge_key = v.charge_key JOIN payment p ON p.payment_uuid ="
                         " c.payment_uuid WHERE v.reversal_key = ?",
                         key))
            continue;
        ml_pay_call_t *call = ml_pay_call_new (ML_PAY_FOR_REVERSAL, key, NULL);
        call->call.lookup = true;
        call->call.operation = streq (json_string_value (json_object_get (row, "kind")), "void")
                                   ? ML_PROCESSOR_VOID
                                   : ML_PROCESSOR_REFUND;
        snprintf (call->call.charge_txn, sizeof call->call.charge_txn, "%s",
                  json_string_value (json_object_get (row, "processor_txn")));
        call->call.amount_minor = json_integer_value (json_object_get (row, "amount_minor"));
        snprintf (call->call.currency, sizeof call->call.currency, "%s",
                  json_string_value (json_object_get (row, "currency")));
        resolved += ml_pay_submit (self, call, deliver_firm, size);
    }
    json_decref (open);
    return resolved;
}

//  A call was answered: record it where it belongs. Returns how many operations reached a
//  final outcome (a lookup that finds nothing asks for the operation itself, same key).
int ml_pay_completed (ml_payments_t *self, ml_pay_call_t *call, char *deliver_firm, size_t size)
{
    ml_processor_call_t *made = &call->call;
    zhashx_delete (self->calls, made->key);
    ml_pay_flow_t *flow =
        *call->flow ? (ml_pay_flow_t *)zhashx_lookup (self->flows, call->flow) : NULL;
    if (call->purpose == ML_PAY_FOR_TOKEN) {
        if (flow)
            ml_pay_flow_tokenized (self, flow, made, deliver_firm, size);
        free (call);
        return 0;
    }
    if (made->lookup && made->status == ML_PROCESSOR_NOT_FOUND) {
        //  Nothing happened under this key: making the operation with it now is safe.
        made->lookup = false;
        return ml_pay_submit (self, call, deliver_firm, size);
    }
    bool reversal = call->purpose == ML_PAY_FOR_REVERSAL;
    const ml_pay_operation_t *operation = NULL;
    int finals = 0;
    if (ml_pay_records (call, &operation) &&
        ml_pay_record (self, operation, made->key, made->status, &made->result, deliver_firm,
                       size) == 0 &&
        made->status != ML_PROCESSOR_UNKNOWN)
        finals = 1;
    //  The Auto-Pay crash hook (docs/autopay.md): die right after an Auto-Pay charge's
    //  outcome is recorded, before its run's outcome is.
    const char *crash =
        self->worker && finals && !reversal ? getenv ("MATTERLINK_TEST_CRASH") : NULL;
    if (crash && streq (crash, "autopay-after-charge")) {
        //  "Recorded" is committed: the core thread's round (ml_group) may still hold it.
        if (ml_db_grouping (self->db))
            ml_db_group_commit (self->db);
        json_t *rows =
            ml_pay_rows (self,
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
        ml_pay_flow_done (self, flow);
    free (call);
    return finals;
}

bool ml_pay_records (const ml_pay_call_t *call, const ml_pay_operation_t **operation)
{
    const ml_processor_call_t *made = &call->call;
    bool reversal = call->purpose == ML_PAY_FOR_REVERSAL;
    *operation = reversal ? &ml_pay_reversal_operation : &ml_pay_charge_operation;
    //  A lookup tells only what is final: approved or declined. An operation's own answer is
    //  always recorded (UNKNOWN included: it stays open, to be looked up again; ERROR, the
    //  processor's refusal of the request, is final). A lookup the processor refuses (a key
    //  it no longer takes, an answer off the protocol) says nothing of whether the operation
    //  happened: it stays open too, and is asked again.
    return call->purpose != ML_PAY_FOR_TOKEN &&
           !(made->lookup && made->status == ML_PROCESSOR_NOT_FOUND) &&
           (!made->lookup || made->status == ML_PROCESSOR_APPROVED ||
            made->status == ML_PROCESSOR_DECLINED);
}

void ml_payments_prepare (ml_payments_t *self, ml_processor_call_t *const *calls, size_t count)
{
    assert (self);
    //  Only on PostgreSQL (SQLite has no round trips to save), and only inside the core
    //  thread's round: the reads then run in its transaction, under the store's lock, which
    //  it holds until every answer is recorded, and no answer of the round writes another's
    //  operation (one call a key at a time), so what was read is what each record finds.
    if (ml_db_dialect (self->db) != ML_DB_POSTGRESQL || !ml_db_grouping (self->db))
        return;
    for (int pass = 0; pass < 2; pass++)
        for (size_t index = 0; index < count; index++) {
            const ml_pay_call_t *call = (const ml_pay_call_t *)calls[index];
            const ml_pay_operation_t *operation = NULL;
            if (!calls[index] || zhashx_lookup (self->calls, calls[index]->key) != call ||
                !ml_pay_records (call, &operation))
                continue;
            if (pass == 0) { //  asked ahead: one round trip for them all
                ml_db_prefetch (self->db, operation->source, "s", calls[index]->key);
                continue;
            }
            json_t *rows =
                ml_store_rows (ml_db_query (self->db, operation->source, "s", calls[index]->key),
                               ml_pay_integer_column);
            if (!rows)
                continue; //  read again by ml_pay_record, which reports the failure
            char name[ML_PROCESSOR_KEY_MAX + 16];
            snprintf (name, sizeof name, "%s:%s", operation->name, calls[index]->key);
            json_decref ((json_t *)zhashx_lookup (self->known, name));
            zhashx_update (self->known, name, rows);
        }
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
    return ml_pay_completed (self, (ml_pay_call_t *)call, deliver_firm, size);
}

void ml_payments_release (ml_payments_t *self, bool committed)
{
    assert (self);
    s_known_clear (self->known);
    ml_pay_call_t *call;
    while ((call = (ml_pay_call_t *)zlistx_first (self->unsent))) {
        zlistx_delete (self->unsent, zlistx_cursor (self->unsent));
        if (committed) {
            zsock_send (self->worker, "sp", "CALL", &call->call);
            continue;
        }
        //  What the call depended on was undone: it is not made, and its request hears so
        //  (an operation already stored earlier stays open, for ml_payments_resolve).
        ml_log (ML_LOG_ERROR, "payments: processor call %s not made: the store failed",
                call->call.key);
        ml_pay_flow_t *flow =
            *call->flow ? (ml_pay_flow_t *)zhashx_lookup (self->flows, call->flow) : NULL;
        zhashx_delete (self->calls, call->call.key);
        free (call);
        if (flow)
            ml_pay_flow_end (self, flow,
                             ml_admin_error ("the core's store failed while recording this "
                                             "request; nothing was charged"));
    }
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
        //  Calls held back for the store's group commit (an answer may ask another: a
        //  lookup that found nothing) go now, after it.
        if (zlistx_size (self->unsent) > 0)
            ml_payments_release (self, ml_db_group_commit (self->db) == 0);
        if (zhashx_size (self->calls) == 0)
            break;
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
    ml_pay_ready_t *ready = (ml_pay_ready_t *)zlistx_first (self->ready);
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
        return ml_pay_account_add (self, request);
    if (streq (op, "account-list")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        if (*problem || !firm)
            return ml_admin_error ("'firm' is required");
        json_t *rows =
            ml_pay_rows (self,
                         "SELECT account_number, account_type, currency, merchant_account,"
                         " created_at FROM account WHERE firm_id = ? ORDER BY account_number",
                         "s", firm);
        return rows ? ml_admin_ok (json_pack ("{s:o}", "accounts", rows))
                    : ml_pay_store_failed (self, "account-list");
    }
    if (streq (op, "payment"))
        return ml_pay_payment (self, request, deliver_firm, size);
    if (streq (op, "refund") || streq (op, "void") || streq (op, "chargeback"))
        return ml_pay_reverse (self, op, request, deliver_firm, size);
    if (streq (op, "selection") || streq (op, "selection-add") || streq (op, "selection-remove") ||
        streq (op, "selection-clear"))
        return ml_pay_selection (self, op, request);
    if (streq (op, "reallocate"))
        return ml_pay_reallocate (self, request, deliver_firm, size);
    if (streq (op, "firm-contact"))
        return ml_pay_firm_contact (self, request);
    if (streq (op, "link-create"))
        return ml_pay_link_create (self, request);
    if (streq (op, "link-pay"))
        return ml_pay_link_pay (self, request, deliver_firm, size);
    if (streq (op, "link-list"))
        return ml_pay_links (self, request);
    if (streq (op, "link-cancel"))
        return ml_pay_link_cancel (self, request);
    if (streq (op, "link-view"))
        return ml_pay_link_view (self, request);
    if (streq (op, "link-pay-page"))
        return ml_pay_link_pay_page (self, request, deliver_firm, size);
    if (streq (op, "payments")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        if (*problem || !firm)
            return ml_admin_error ("'firm' is required");
        json_t *rows = ml_pay_rows (self,
                                    "SELECT payment_uuid FROM payment WHERE firm_id = ?"
                                    " ORDER BY created_at DESC LIMIT 100",
                                    "s", firm);
        json_t *list = json_array ();
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            json_t *payment = ml_pay_payment_json (
                self, json_string_value (json_object_get (row, "payment_uuid")));
            if (payment)
                json_array_append_new (list, payment);
        }
        json_decref (rows);
        return ml_admin_ok (json_pack ("{s:o}", "payments", list));
    }
    if (streq (op, "payment-show")) {
        const char *uuid = ml_admin_argument (request, "payment_uuid", 36, problem, sizeof problem);
        json_t *payment = !*problem && uuid ? ml_pay_payment_json (self, uuid) : NULL;
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
    json_t *known = ml_pay_payment_json (self, payment_uuid);
    if (known)
        return ml_admin_ok (json_pack ("{s:o}", "payment", known));
    json_t *request =
        json_pack ("{s:s, s:s, s:I, s:I, s:O, s:s}", "firm", firm, "staff", "autopay", "payer_id",
                   (json_int_t)payer_id, "method_id", (json_int_t)method_id, "lines",
                   (json_t *)lines, "ar_message", ar_message ? ar_message : "");
    ml_pay_order_t order;
    ml_pay_order_init (&order);
    json_t *reply = ml_pay_order_parse (self, request, &order);
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
        reply = ml_pay_saved_method (order.payer, json_object_get (request, "method_id"), token,
                                     brand, last4);
    //  No flow: the run records the payment as it stands (pending while the worker charges
    //  it) and settles it from payment-show on a later tick.
    if (!reply)
        reply = ml_pay_order_charge (self, &order, "autopay", payment_uuid, token, brand, last4,
                                     NULL, deliver_firm, size);
    ml_pay_order_free (&order);
    json_decref (request);
    return reply;
}
