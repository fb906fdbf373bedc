/*  ml_payments, part of the class (see include/ml_payments.h): building a payment from a request,
 * charging it, recording outcomes and postings, and the requests that wait for the processor
 * (payment). */
#include "ml_pay_internal.h"

//  Building a payment -------------------------------------------------------------------------

//  Add a line to its group; its sum stays within the one limit (ml_money.h): lines each
//  under it can sum to more, and a charge for that could be approved but never post.
static json_t *s_group_add (ml_pay_group_t *group, char kind, const char *reference, int64_t amount)
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
json_t *ml_pay_explicit_line (ml_payments_t *self, const char *firm, const json_t *line,
                              ml_pay_group_t *invoices, ml_pay_group_t *trust, char *client_number)
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
json_t *ml_pay_saved_method (const json_t *payer, const json_t *method_id, char *token, char *brand,
                             char *last4)
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

const ml_pay_operation_t ml_pay_charge_operation = {
    "charge",
    "UPDATE charge SET status = ?, processor_txn = ?, reason = ?, attempts = attempts + 1,"
    " updated_at = ? WHERE charge_key = ? AND status IN ('pending', 'unknown')",
    "SELECT c.status, c.account_number, c.currency, c.amount_minor, c.lines, c.posting_uuid,"
    " p.firm_id, p.client_number, p.payer_name, p.payer_email, p.ar_message, '' AS reverses,"
    " p.source FROM charge c"
    " JOIN payment p ON p.payment_uuid = c.payment_uuid WHERE c.charge_key = ?"};

const ml_pay_operation_t ml_pay_reversal_operation = {
    "reversal",
    "UPDATE reversal SET status = ?, processor_txn = ?, reason = ?, attempts = attempts + 1,"
    " updated_at = ? WHERE reversal_key = ? AND status IN ('pending', 'unknown')",
    "SELECT v.status, c.account_number, c.currency, v.amount_minor, v.lines, v.posting_uuid,"
    " p.firm_id, p.client_number, p.payer_name, p.payer_email,"
    " v.kind || ' of payment ' || COALESCE (c.processor_txn, '') AS ar_message,"
    " c.posting_uuid AS reverses, 'reversal' AS source FROM reversal v JOIN charge c"
    " ON c.charge_key = v.charge_key"
    " JOIN payment p ON p.payment_uuid = c.payment_uuid WHERE v.reversal_key = ?"};

//  Insert the posting of an approved operation, inside the caller's transaction.
static bool s_posting_of (ml_payments_t *self, const ml_pay_operation_t *operation,
                          const json_t *row, const char *key, const char *txn, char *deliver_firm,
                          size_t size)
{
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
    if (ok && *posting->reverses &&
        ml_pay_unbooked (self, posting->reverses, moved, sizeof moved)) {
        ml_log (ML_LOG_NOTICE,
                "payments: %s %s gives back money of rejected posting %s: no "
                "reversing posting",
                operation->name, key, posting->reverses);
        ml_msg_destroy (&message);
        json_decref (lines);
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
    return ok;
}

//  Record an operation's outcome and (approved) make its posting, in one store transaction:
//  it is approved with its posting or not at all, and at most once.
int ml_pay_record (ml_payments_t *self, const ml_pay_operation_t *operation, const char *key,
                   ml_processor_status_t status, const ml_processor_result_t *result,
                   char *deliver_firm, size_t size)
{
    const char *state = status == ML_PROCESSOR_APPROVED   ? "approved"
                        : status == ML_PROCESSOR_DECLINED ? "declined"
                        : status == ML_PROCESSOR_ERROR    ? "error"
                                                          : "unknown";
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return -1;
    //  The operation as it stands and its posting's fields, in one read. The transaction
    //  holds the store's write lock (ml_db_begin) and only this function writes an
    //  operation's status, so the status read is the one the update finds: the update is
    //  deferred (ml_db_defer), and rides with the next round trip.
    //  Read already when the round's answers were read together (ml_payments_prepare).
    char name[ML_PROCESSOR_KEY_MAX + 16];
    snprintf (name, sizeof name, "%s:%s", operation->name, key);
    json_t *rows = (json_t *)zhashx_lookup (self->known, name);
    if (rows)
        zhashx_delete (self->known, name); //  taken: it has no destructor
    else
        rows = ml_store_rows (ml_db_query (self->db, operation->source, "s", key),
                              ml_pay_integer_column);
    json_t *row = json_array_get (rows, 0);
    const char *current = json_string_value (json_object_get (row, "status"));
    bool ok = rows != NULL;
    int64_t changed = current && (streq (current, "pending") || streq (current, "unknown"));
    if (ok && changed)
        ok = ml_db_defer (self->db, operation->update, "sssss", state,
                          *result->txn ? result->txn : NULL,
                          *result->reason ? result->reason : NULL, now, key) == 0;
    if (ok && changed == 1 && status == ML_PROCESSOR_APPROVED)
        ok = s_posting_of (self, operation, row, key, result->txn, deliver_firm, size);
    //  Final: the charge's hold on its lines ends here, as its posting (if any) takes over
    //  in the same transaction, so the balance is never free in between.
    if (ok && changed == 1 && status != ML_PROCESSOR_UNKNOWN &&
        operation == &ml_pay_charge_operation)
        ok = ml_store_hold_release (self->store, key) == 0;
    //  Read next, asked ahead after the last write: the firm's postings to send and this one
    //  (ml_core_deliver) ride with the reply's read of the payment.
    if (ok && changed == 1 && status == ML_PROCESSOR_APPROVED) {
        ml_store_postings_unanswered_prefetch (
            self->store, json_string_value (json_object_get (row, "firm_id")));
        ml_store_posting_load_prefetch (self->store,
                                        json_string_value (json_object_get (row, "posting_uuid")));
    }
    json_decref (rows);
    if (!ok || ml_db_commit (self->db) != 0) {
        ml_log (ML_LOG_ERROR, "payments: recording %s %s failed: %s", operation->name, key,
                ml_db_error (self->db)->message);
        ml_db_rollback (self->db);
        return -1;
    }
    ml_log (status == ML_PROCESSOR_APPROVED ? ML_LOG_NOTICE : ML_LOG_WARNING,
            "payments: %s %s %s%s%s", operation->name, key, state, *result->reason ? ": " : "",
            result->reason);
    return 0;
}

//  A new processor call (owned by the caller until submitted).
ml_pay_call_t *ml_pay_call_new (ml_pay_purpose_t purpose, const char *key, const char *flow)
{
    ml_pay_call_t *call = calloc (1, sizeof (ml_pay_call_t));
    assert (call);
    call->purpose = purpose;
    snprintf (call->call.key, sizeof call->call.key, "%s", key);
    snprintf (call->flow, sizeof call->flow, "%s", flow ? flow : "");
    return call;
}

//  The call that charges a stored charge (a row of ML_PAY_CHARGE_SQL) with its stored key.
ml_pay_call_t *ml_pay_charge_call (const json_t *charge, const char *flow)
{
    ml_pay_call_t *call = ml_pay_call_new (
        ML_PAY_FOR_CHARGE, json_string_value (json_object_get (charge, "charge_key")), flow);
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

//  Ask for a call: the worker makes it and the answer comes back through
//  ml_payments_completed; without a worker it is made now and answered at once. At most
//  one call per key is asked at a time. Returns how many operations reached a final
//  outcome now (only without a worker).
int ml_pay_submit (ml_payments_t *self, ml_pay_call_t *call, char *deliver_firm, size_t size)
{
    if (zhashx_lookup (self->calls, call->call.key)) {
        free (call); //  already asked: its answer will come
        return 0;
    }
    zhashx_insert (self->calls, call->call.key, call);
    if (self->worker) {
        //  While the store groups its commits, what the call depends on (the charge, stored
        //  before any money moves) is not committed yet: the call waits for it.
        if (ml_db_grouping (self->db))
            zlistx_add_end (self->unsent, call);
        else
            zsock_send (self->worker, "sp", "CALL", &call->call);
        return 0;
    }
    ml_processor_call (self->processor, &call->call);
    return ml_pay_completed (self, call, deliver_firm, size);
}

//  A payment's own columns, then its charges' (no name in both), read in one query.
static const char *s_payment_columns[] = {
    "payment_uuid",  "firm_id",       "source", "staff", "payer_id",   "payer_name", "payer_email",
    "receipt_email", "client_number", "brand",  "last4", "created_at", NULL};

json_t *ml_pay_payment_json (ml_payments_t *self, const char *payment_uuid)
{
    //  A row per charge, the payment's columns repeated (one round trip on PostgreSQL).
    json_t *rows = ml_pay_rows (
        self,
        "SELECT p.payment_uuid, p.firm_id, p.source, p.staff, p.payer_id, p.payer_name,"
        " p.payer_email, p.receipt_email, p.client_number, p.brand, p.last4, p.created_at,"
        " c.charge_key, c.account_number, c.account_type, c.merchant_account, c.currency,"
        " c.amount_minor, c.fee_minor, c.status, c.processor_txn, c.reason, c.posting_uuid"
        " FROM payment p LEFT JOIN charge c ON c.payment_uuid = p.payment_uuid"
        " WHERE p.payment_uuid = ? ORDER BY c.charge_key",
        "s", payment_uuid);
    json_t *first = json_array_get (rows, 0);
    if (!first) {
        json_decref (rows);
        return NULL;
    }
    json_t *payment = json_object ();
    for (const char **name = s_payment_columns; *name; name++)
        json_object_set (payment, *name, json_object_get (first, *name));
    json_t *charges = json_array ();
    const char *summary = NULL;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (!json_is_string (json_object_get (row, "charge_key")))
            continue; //  a payment without charges: its one row has none
        for (const char **name = s_payment_columns; *name; name++)
            json_object_del (row, *name);
        json_array_append (charges, row);
        const char *status = json_string_value (json_object_get (row, "status"));
        summary = !summary || streq (summary, status) ? status : "partial";
    }
    json_decref (rows);
    json_object_set_new (payment, "charges", charges);
    json_object_set_new (payment, "status", json_string (summary ? summary : "none"));
    return payment;
}

void ml_pay_order_init (ml_pay_order_t *order)
{
    memset (order, 0, sizeof *order);
    order->groups[0] = (ml_pay_group_t){"OPERATING", "", 0, json_array ()};
    order->groups[1] = (ml_pay_group_t){"TRUST", "", 0, json_array ()};
}

void ml_pay_order_free (ml_pay_order_t *order)
{
    for (int group = 0; group < 2; group++) {
        json_decref (order->groups[group].lines);
        json_decref (order->accounts[group]);
    }
    json_decref (order->payer);
}

//  The selection as explicit lines ([{"invoice"|"trust": number, "amount_minor": n}]), the
//  form a payment link keeps.
json_t *ml_pay_order_lines (const ml_pay_order_t *order)
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
json_t *ml_pay_order_parse (ml_payments_t *self, const json_t *request, ml_pay_order_t *order)
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
    //  What the checks below read, asked for at once: on PostgreSQL one round trip, not
    //  one each (ml_db_prefetch).
    if (payer_value)
        ml_payers_prefetch_show (self->payers, json_integer_value (payer_value));
    size_t ahead = 0;
    for (size_t index = 0; index < json_array_size (lines) && ahead < 8; index++) {
        const char *invoice =
            json_string_value (json_object_get (json_array_get (lines, index), "invoice"));
        if (invoice && strlen (invoice) <= 63) {
            ml_store_open_items_prefetch (self->store, firm, NULL, NULL, invoice);
            ahead++;
        }
    }
    ml_pay_accounts_prefetch (self, firm);
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
    ml_pay_group_t *invoices = &order->groups[0], *trust = &order->groups[1];
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
        reply = ml_pay_explicit_line (self, firm, line, invoices, trust, order->client_number);
    }
    if (!reply && json_array_size (invoices->lines) + json_array_size (trust->lines) > ML_MAX_LINES)
        reply = ml_admin_error ("a payment has at most 500 lines");
    //  "lines": [] alone says nothing to pay: such a payment once tokenized the card and then
    //  waited for charges it never made, and its request got no answer (e2e_api_fuzz).
    if (!reply && json_array_size (invoices->lines) + json_array_size (trust->lines) == 0)
        reply = ml_admin_error ("say what to pay: 'lines' (at most 500) and/or 'auto' "
                                "({client or matter, amount})");
    //  Each group's account: never the other type's (rule 2).
    for (int group = 0; !reply && group < 2; group++) {
        ml_pay_group_t *part = &order->groups[group];
        if (json_array_size (part->lines) == 0)
            continue;
        if (!*part->currency) {
            //  A first deposit into a matter's trust: the firm's trust account decides.
            json_t *any = ml_pay_rows (self,
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
        order->accounts[group] = ml_pay_account (self, firm, part->type, part->currency);
        if (!order->accounts[group])
            reply = ml_admin_error ("firm %s has no %s account in %s (add one with 'matterlink "
                                    "account add')",
                                    firm, part->type, part->currency);
    }
    return reply;
}

//  Hold a charge's lines ([[kind, reference, amount_minor], ...]) against the balance until
//  it is final (ml_store_hold_add), inside the caller's transaction.
int ml_pay_hold (ml_payments_t *self, const char *firm, const char *key, const json_t *lines)
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
json_t *ml_pay_order_charge (ml_payments_t *self, const ml_pay_order_t *order, const char *source,
                             const char *payment_uuid, const char *token, const char *brand,
                             const char *last4, ml_pay_flow_t *flow, char *deliver_firm,
                             size_t size)
{
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return ml_pay_store_failed (self, "payment");
    //  The charges as their calls need them (ml_pay_charge_call), kept as they are stored
    //  rather than read back: one round trip fewer a payment on PostgreSQL.
    json_t *charges = json_array ();
    bool ok =
        ml_db_defer (self->db,
                     "INSERT INTO payment (payment_uuid, firm_id, source, staff, payer_id,"
                     " payer_name, payer_email, receipt_email, ar_message, client_number, token,"
                     " brand, last4, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     "ssssisssssssss", payment_uuid, order->firm, source, order->staff,
                     order->payer_id, order->payer_name, order->payer_email, order->receipt_email,
                     order->ar_message, order->client_number, token, brand, last4, now) == 0;
    for (int group = 0; ok && group < 2; group++) {
        if (!order->accounts[group])
            continue;
        const ml_pay_group_t *part = &order->groups[group];
        char key[80], posting_uuid[37];
        snprintf (key, sizeof key, "%s:%s", payment_uuid, group == 0 ? "operating" : "trust");
        ml_store_uuid (posting_uuid, sizeof posting_uuid);
        char *lines_text = json_dumps (part->lines, JSON_COMPACT | JSON_ENSURE_ASCII);
        ok = ml_db_defer (
                 self->db,
                 "INSERT INTO charge (charge_key, payment_uuid, account_number, account_type,"
                 " merchant_account, currency, amount_minor, lines, posting_uuid, status,"
                 " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                 "ssssssissss", key, payment_uuid,
                 json_string_value (json_object_get (order->accounts[group], "account_number")),
                 part->type,
                 json_string_value (json_object_get (order->accounts[group], "merchant_account")),
                 part->currency, part->amount, lines_text, posting_uuid, now, now) == 0;
        free (lines_text);
        ok = ok && ml_pay_hold (self, order->firm, key, part->lines) == 0;
        json_array_append_new (
            charges,
            json_pack ("{s:s, s:s, s:O?, s:s, s:I, s:s?}", "charge_key", key, "account_type",
                       part->type, "merchant_account",
                       json_object_get (order->accounts[group], "merchant_account"), "currency",
                       part->currency, "amount_minor", (json_int_t)part->amount, "token", token));
    }
    if (!ok || ml_db_commit (self->db) != 0) {
        json_decref (charges);
        return ml_pay_store_failed (self, "payment");
    }
    //  Every charge is counted before any is asked: without a worker each is answered at
    //  once, and the flow must not finish before the last.
    if (flow)
        flow->outstanding = (int)json_array_size (charges);
    size_t index;
    json_t *charge;
    json_array_foreach (charges, index, charge) ml_pay_submit (
        self, ml_pay_charge_call (charge, flow ? flow->id : NULL), deliver_firm, size);
    json_decref (charges);
    if (flow)
        return NULL; //  the flow's reply is made when its charges are answered
    json_t *payment = ml_pay_payment_json (self, payment_uuid);
    return payment ? ml_admin_ok (json_pack ("{s:o}", "payment", payment))
                   : ml_pay_store_failed (self, "payment");
}

//  Requests that wait for the processor -----------------------------------------------------

ml_pay_flow_t *ml_pay_flow_new (ml_pay_flow_kind_t kind)
{
    ml_pay_flow_t *flow = calloc (1, sizeof (ml_pay_flow_t));
    assert (flow);
    flow->kind = kind;
    ml_pay_order_init (&flow->order);
    return flow;
}

//  The flow is finished with reply (stolen). If its request was told to wait, the reply
//  joins the ready ones and the flow is gone; else ml_pay_flow_answer gives it.
static void s_flow_end (ml_payments_t *self, ml_pay_flow_t *flow, json_t *reply)
{
    json_decref (flow->reply);
    flow->reply = reply;
    if (flow->waiting) {
        ml_pay_ready_t *ready = calloc (1, sizeof (ml_pay_ready_t));
        assert (ready);
        snprintf (ready->waiter, sizeof ready->waiter, "%s", flow->id);
        ready->reply = reply;
        flow->reply = NULL;
        zlistx_add_end (self->ready, ready);
        zhashx_delete (self->flows, flow->id);
    }
}

void ml_pay_flow_end (ml_payments_t *self, ml_pay_flow_t *flow, json_t *reply)
{
    s_flow_end (self, flow, reply);
}

//  What the request that started the flow gets now: the reply if the flow is finished
//  (no worker: everything was answered at once), else {"ok": true, "waiting_for": ID}.
json_t *ml_pay_flow_answer (ml_payments_t *self, ml_pay_flow_t *flow)
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

json_t *ml_pay_reversal_reply (ml_payments_t *self, const char *key)
{
    json_t *stored = ml_pay_rows (self,
                                  "SELECT reversal_key, charge_key, kind, amount_minor, lines,"
                                  " posting_uuid, status, processor_txn, reason, staff, created_at"
                                  " FROM reversal WHERE reversal_key = ?",
                                  "s", key);
    json_t *reply = json_array_get (stored, 0)
                        ? ml_admin_ok (json_pack ("{s:O}", "reversal", json_array_get (stored, 0)))
                        : ml_pay_store_failed (self, "reversal");
    json_decref (stored);
    return reply;
}

//  Every call of the flow was answered: its reply, and what follows from the outcome.
void ml_pay_flow_done (ml_payments_t *self, ml_pay_flow_t *flow)
{
    if (flow->kind == ML_PAY_FLOW_REVERSAL) {
        s_flow_end (self, flow, ml_pay_reversal_reply (self, flow->id));
        return;
    }
    json_t *payment = ml_pay_payment_json (self, flow->payment_uuid);
    if (!payment) {
        s_flow_end (self, flow, ml_pay_store_failed (self, "payment"));
        return;
    }
    const char *status = json_string_value (json_object_get (payment, "status"));
    //  Money moved, or may have: a selection is done with, a link is spent. A decline
    //  keeps the selection, and the link outstanding for another try.
    bool moved = status && !streq (status, "declined") && !streq (status, "error");
    if (moved && flow->kind == ML_PAY_FLOW_PAYMENT)
        ml_pay_selection_done (self, flow->request);
    if (moved && flow->kind == ML_PAY_FLOW_LINK &&
        ml_db_execute (self->db,
                       "UPDATE payment_link SET payment_uuid = ? WHERE link_id = ?"
                       " AND payment_uuid IS NULL",
                       "ss", flow->payment_uuid, flow->link_id) != 1)
        ml_log (ML_LOG_ERROR, "payments: could not mark link %s paid", flow->link_id);
    json_t *reply = ml_admin_ok (json_pack ("{s:o}", "payment", payment));
    //  save_method: the card's method, or why it was not saved (the payment went on).
    if (flow->method_id)
        json_object_set_new (reply, "method_id", json_integer (flow->method_id));
    else if (*flow->method_error)
        json_object_set_new (reply, "method_not_saved", json_string (flow->method_error));
    s_flow_end (self, flow, reply);
}

//  The card is known (a token): check the balances again when the processor was asked
//  first (recheck), since other payments may have taken them meanwhile, then store the
//  charges and ask for them. A saved card asks nothing first: the order was parsed just now
//  (ml_pay_flow_start's callers), and reading the invoices again cost the core thread a
//  fifth of its time (bench/scale.sh).
static void s_flow_charge (ml_payments_t *self, ml_pay_flow_t *flow, bool recheck,
                           char *deliver_firm, size_t size)
{
    json_t *reply = NULL;
    if (recheck) {
        ml_pay_order_free (&flow->order);
        ml_pay_order_init (&flow->order);
        reply = ml_pay_order_parse (self, flow->request, &flow->order);
    }
    if (reply && flow->kind == ML_PAY_FLOW_LINK) {
        const char *why = json_string_value (json_object_get (reply, "error"));
        json_t *changed = ml_admin_error ("the amounts of this link are no longer due (%s); ask "
                                          "the firm for a new link",
                                          why ? why : "");
        json_decref (reply);
        reply = changed;
    }
    if (!reply && flow->kind == ML_PAY_FLOW_LINK) {
        json_t *link = ml_pay_link_row (self, "link_id", flow->link_id);
        const char *state = json_string_value (json_object_get (link, "state"));
        if (!state || !streq (state, "outstanding"))
            reply = ml_admin_error ("this payment link is %s", state ? state : "gone");
        json_decref (link);
    }
    if (!reply)
        reply = ml_pay_order_charge (
            self, &flow->order, flow->kind == ML_PAY_FLOW_LINK ? "link" : "staff",
            flow->payment_uuid, flow->token, flow->brand, flow->last4, flow, deliver_firm, size);
    if (reply)
        s_flow_end (self, flow, reply);
}

//  The processor answered the tokenize call of a flow.
void ml_pay_flow_tokenized (ml_payments_t *self, ml_pay_flow_t *flow,
                            const ml_processor_call_t *made, char *deliver_firm, size_t size)
{
    const ml_processor_result_t *result = &made->result;
    //  A token looked up (a payment link's page): the card is the one the processor names.
    if (made->token_lookup && made->status == ML_PROCESSOR_APPROVED &&
        !streq (result->token, made->token)) {
        s_flow_end (self, flow,
                    ml_admin_error ("the card processor does not know this card; "
                                    "nothing was charged"));
        return;
    }
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
        //  The payment goes on either way; its reply says which (ml_pay_flow_done).
        const char *error = json_string_value (json_object_get (saved, "error"));
        if (json_is_true (json_object_get (saved, "ok")))
            flow->method_id = json_integer_value (
                json_object_get (json_object_get (saved, "method"), "method_id"));
        else {
            snprintf (flow->method_error, sizeof flow->method_error, "%s",
                      error ? error : "the core store failed");
            ml_log (ML_LOG_WARNING, "payments: the card could not be saved for payer %lld: %s",
                    (long long)json_integer_value (payer_id), flow->method_error);
        }
        json_decref (saved);
    }
    s_flow_charge (self, flow, true, deliver_firm, size);
}

//  Start a payment or link flow (stolen) with its card: a saved method of the payer, or a
//  card to tokenize first. The caller has just parsed flow->order from flow->request. Returns an
//  error reply (nothing asked), or the answer of ml_pay_flow_answer.
json_t *ml_pay_flow_start (ml_payments_t *self, ml_pay_flow_t *flow, const json_t *request,
                           char *deliver_firm, size_t size)
{
    json_t *method_id = json_object_get (request, "method_id");
    json_t *card = json_object_get (request, "card");
    json_t *card_token = json_object_get (request, "card_token");
    json_t *reply = NULL;
    ml_pay_call_t *call = NULL;
    if ((method_id != NULL) + (card != NULL) + (card_token != NULL) != 1)
        reply = ml_admin_error ("say how to pay: 'method_id' (a saved method of the payer), "
                                "'card' ({number, exp_month, exp_year, cvc}) or 'card_token' "
                                "(the card processor's token of a card)");
    else if (card_token) {
        //  A card the browser tokenized at the processor (staff pages' hosted fields): what
        //  card the token names is the processor's word, looked up first, as a link's page.
        const char *token = json_string_value (card_token);
        size_t length = token ? strlen (token) : 0;
        if (length == 0 || length > ML_PROCESSOR_ID_MAX ||
            strspn (token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                length) {
            ml_pay_flow_destroy (&flow);
            return ml_admin_error ("'card_token' is the card processor's token of a card");
        }
        char key[ML_PROCESSOR_KEY_MAX + 1];
        snprintf (key, sizeof key, "%s:token", flow->payment_uuid);
        call = ml_pay_call_new (ML_PAY_FOR_TOKEN, key, flow->id);
        call->call.token_lookup = true;
        snprintf (call->call.token, sizeof call->call.token, "%s", token);
    } else if (method_id)
        reply = ml_pay_saved_method (flow->order.payer, method_id, flow->token, flow->brand,
                                     flow->last4);
    else {
        const char *number = json_string_value (json_object_get (card, "number"));
        const char *cvc = json_string_value (json_object_get (card, "cvc"));
        json_t *month = json_object_get (card, "exp_month");
        json_t *year = json_object_get (card, "exp_year");
        if (!json_is_object (card) || !number || !cvc || !json_is_integer (month) ||
            !json_is_integer (year) || strlen (number) > 40 || strlen (cvc) > 4) {
            ml_pay_flow_destroy (&flow);
            return ml_admin_error ("'card' is {\"number\": text, \"exp_month\": N, \"exp_year\": "
                                   "N, \"cvc\": text}");
        }
        char key[ML_PROCESSOR_KEY_MAX + 1];
        snprintf (key, sizeof key, "%s:tokenize", flow->payment_uuid);
        call = ml_pay_call_new (ML_PAY_FOR_TOKEN, key, flow->id);
        call->call.operation = ML_PROCESSOR_TOKENIZE;
        //  The card's only copy here; the call wipes it once made.
        snprintf (call->call.number, sizeof call->call.number, "%s", number);
        snprintf (call->call.cvc, sizeof call->call.cvc, "%s", cvc);
        json_int_t month_value = json_integer_value (month), year_value = json_integer_value (year);
        call->call.exp_month = month_value < -1 || month_value > 99 ? -1 : (int)month_value;
        call->call.exp_year = year_value < -1 || year_value > 9999 ? -1 : (int)year_value;
    }
    if (reply) {
        ml_pay_flow_destroy (&flow);
        return reply;
    }
    zhashx_insert (self->flows, flow->id, flow);
    if (call)
        ml_pay_submit (self, call, deliver_firm, size);
    else
        s_flow_charge (self, flow, false, deliver_firm, size);
    return ml_pay_flow_answer (self, flow);
}

//  A payment form's key (pay_key: 16 to 80 letters, digits, '-' or '_', drawn when the staff
//  page was made) names one payment of the firm's staff user: its UUID follows from them, so
//  the same form sent twice (a double click, a resend) finds that payment instead of paying
//  again, and no table has to remember keys. Returns false for a malformed key.
static bool s_keyed_uuid (const char *firm, const char *staff, const char *key, char *uuid,
                          size_t size)
{
    size_t length = key ? strlen (key) : 0;
    if (length < 16 || length > 80 ||
        strspn (key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != length)
        return false;
    zdigest_t *hash = zdigest_new ();
    const char *parts[] = {"payment:", firm ? firm : "", ":", staff ? staff : "", ":", key};
    for (size_t index = 0; index < sizeof parts / sizeof parts[0]; index++)
        zdigest_update (hash, (const byte *)parts[index], strlen (parts[index]));
    char hex[41];
    snprintf (hex, sizeof hex, "%s", zdigest_string (hash));
    zdigest_destroy (&hash);
    for (char *cursor = hex; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    snprintf (uuid, size, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return true;
}

json_t *ml_pay_payment (ml_payments_t *self, const json_t *original, char *deliver_firm,
                        size_t size)
{
    if (!self->processor)
        return ml_admin_error ("no card processor is configured (section 'processor' of the "
                               "core's configuration)");
    char keyed[37] = "";
    json_t *pay_key = json_object_get (original, "pay_key");
    if (pay_key) {
        if (!s_keyed_uuid (json_string_value (json_object_get (original, "firm")),
                           json_string_value (json_object_get (original, "staff")),
                           json_string_value (pay_key), keyed, sizeof keyed))
            return ml_admin_error ("'pay_key' must be 16 to 80 letters, digits, '-' or '_'");
        //  This form was sent before: its payment as it stands, not a second one.
        json_t *known = ml_pay_payment_json (self, keyed);
        if (known)
            return json_pack ("{s:b, s:o, s:b}", "ok", 1, "payment", known, "repeated", 1);
        if (zhashx_lookup (self->flows, keyed))
            return json_pack ("{s:b, s:b, s:{s:s, s:s, s:[]}}", "ok", 1, "repeated", 1, "payment",
                              "payment_uuid", keyed, "status", "pending", "charges");
    }
    json_t *reply = NULL;
    json_t *request = ml_pay_with_selection (self, original, &reply);
    if (!request)
        return reply;
    ml_pay_flow_t *flow = ml_pay_flow_new (ML_PAY_FLOW_PAYMENT);
    reply = ml_pay_order_parse (self, request, &flow->order);
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
            ml_pay_order_free (&flow->order);
            ml_pay_order_init (&flow->order);
            reply = ml_pay_order_parse (self, flow->request, &flow->order);
        } else
            reply = added;
    }
    if (*keyed)
        snprintf (flow->payment_uuid, sizeof flow->payment_uuid, "%s", keyed);
    else
        ml_store_uuid (flow->payment_uuid, sizeof flow->payment_uuid);
    snprintf (flow->id, sizeof flow->id, "%s", flow->payment_uuid);
    if (!reply)
        reply = ml_pay_flow_start (self, flow, request, deliver_firm, size);
    else
        ml_pay_flow_destroy (&flow);
    json_decref (request);
    return reply;
}
