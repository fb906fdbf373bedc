/*  ml_payments, part of the class (see include/ml_payments.h): refunds, voids, chargebacks and
 * reallocation of rejected postings. */
#include "ml_pay_internal.h"

//  Refunds, voids, chargebacks -------------------------------------------------------------

//  What reversals of a charge, not failed, already took back from one of its lines.
static int64_t s_taken_back (ml_payments_t *self, const char *charge_key, const char *kind,
                             const char *reference)
{
    ml_db_query_t *query = ml_db_query (
        self->db,
        ml_db_dialect (self->db) == ML_DB_POSTGRESQL
            ? "SELECT COALESCE (SUM ((j.value ->> 2)::bigint), 0)::bigint FROM reversal v,"
              " jsonb_array_elements (v.lines::jsonb) AS j (value) WHERE v.charge_key = ? AND"
              " v.status NOT IN ('declined', 'error') AND j.value ->> 0 = ? AND j.value ->> 1 = ?"
            : "SELECT COALESCE (SUM (json_extract (j.value, '$[2]')), 0) FROM reversal v,"
              " json_each (v.lines) j WHERE v.charge_key = ? AND v.status NOT IN ('declined',"
              " 'error') AND json_extract (j.value, '$[0]') = ? AND json_extract (j.value,"
              " '$[1]') = ?",
        "sss", charge_key, kind, reference);
    int64_t taken = 0;
    if (!query || ml_db_fetch (query) != 1 || ml_db_int64 (query, 0, &taken) != 0)
        taken = -1;
    ml_db_query_destroy (&query);
    return taken;
}

//  A matter's trust money that reversals not yet reflected in the replica will take out:
//  reversing postings still travelling (or posted but not yet seen as a change), and
//  reversals still at the processor.
static int64_t s_trust_pending (ml_payments_t *self, const char *firm, const char *matter)
{
    //  The reversal's lines are JSON [[kind, reference, amount], ...]: read per dialect.
#define S_TRUST_PENDING(amount, lines, kind, reference)                                            \
    "SELECT (SELECT COALESCE (SUM (l.amount_minor), 0) FROM posting_line l"                        \
    " JOIN posting p ON p.posting_uuid = l.posting_uuid JOIN replica_state r"                      \
    " ON r.firm_id = p.firm_id WHERE l.firm_id = ? AND p.reverses <> '' AND l.kind = 'T'"          \
    " AND l.reference = ? AND (p.status IN ('pending', 'delivered') OR (p.status = 'posted'"       \
    " AND p.result_cursor > r.cursor)))"                                                           \
    " + (SELECT COALESCE (SUM (" amount "), 0) FROM reversal v"                                    \
    " JOIN charge c ON c.charge_key = v.charge_key JOIN payment y ON y.payment_uuid ="             \
    " c.payment_uuid, " lines " WHERE y.firm_id = ? AND v.status IN ('pending', 'unknown')"        \
    " AND " kind " = 'T' AND " reference " = ?)"
    ml_db_query_t *query = ml_db_query (
        self->db,
        ml_db_dialect (self->db) == ML_DB_POSTGRESQL
            ? S_TRUST_PENDING ("(j.value ->> 2)::bigint",
                               "jsonb_array_elements (v.lines::jsonb) AS j (value)",
                               "j.value ->> 0", "j.value ->> 1")
            : S_TRUST_PENDING ("json_extract (j.value, '$[2]')", "json_each (v.lines) j",
                               "json_extract (j.value, '$[0]')", "json_extract (j.value, '$[1]')"),
        "ssss", firm, matter, firm, matter);
#undef S_TRUST_PENDING
    int64_t pending = 0;
    if (!query || ml_db_fetch (query) != 1 || ml_db_int64 (query, 0, &pending) != 0)
        pending = -1;
    ml_db_query_destroy (&query);
    return pending;
}

//  Whether a rejected posting's money is outside the books: rejected and never reallocated
//  (then a refund gives it back with no reversing posting, as there is nothing to reverse).
//  A reallocated one sets moved to where its money went.
bool ml_pay_unbooked (ml_payments_t *self, const char *posting_uuid, char *moved, size_t size)
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
json_t *ml_pay_reverse (ml_payments_t *self, const char *kind, const json_t *request,
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
    json_t *rows = ml_pay_rows (self,
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
                    ml_pay_unbooked (self, S_TEXT ("posting_uuid"), moved, sizeof moved);
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
        json_t *count = ml_pay_rows (self,
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
        bool ok = ml_db_begin (self->db) == 0 &&
                  ml_db_execute (self->db,
                                 "INSERT INTO reversal (reversal_key, charge_key, kind,"
                                 " amount_minor, lines, posting_uuid, status, staff,"
                                 " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending',"
                                 " ?, ?, ?)",
                                 "sssisssss", key, charge_key, kind, total, lines_text,
                                 posting_uuid, staff ? staff : "", now, now) == 1 &&
                  ml_db_commit (self->db) == 0;
        free (lines_text);
        if (!ok)
            reply = ml_pay_store_failed (self, "reversal");
    }
    if (!reply && streq (kind, "chargeback")) {
        //  Decided by the card network, not asked of the processor: recorded as it stands.
        ml_processor_result_t result;
        memset (&result, 0, sizeof result);
        snprintf (result.txn, sizeof result.txn, "%s", S_TEXT ("processor_txn"));
        ml_pay_record (self, &ml_pay_reversal_operation, key, ML_PROCESSOR_APPROVED, &result,
                       deliver_firm, size);
        reply = ml_pay_reversal_reply (self, key);
    } else if (!reply) {
        ml_pay_flow_t *flow = ml_pay_flow_new (ML_PAY_FLOW_REVERSAL);
        snprintf (flow->id, sizeof flow->id, "%s", key);
        flow->outstanding = 1;
        zhashx_insert (self->flows, flow->id, flow);
        ml_pay_call_t *call = ml_pay_call_new (ML_PAY_FOR_REVERSAL, key, key);
        call->call.operation = streq (kind, "void") ? ML_PROCESSOR_VOID : ML_PROCESSOR_REFUND;
        snprintf (call->call.charge_txn, sizeof call->call.charge_txn, "%s",
                  S_TEXT ("processor_txn"));
        call->call.amount_minor = total;
        snprintf (call->call.currency, sizeof call->call.currency, "%s", S_TEXT ("currency"));
        ml_pay_submit (self, call, deliver_firm, size);
        reply = ml_pay_flow_answer (self, flow);
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
json_t *ml_pay_reallocate (ml_payments_t *self, const json_t *request, char *deliver_firm,
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
    json_t *given = reply
                        ? NULL
                        : ml_pay_rows (self,
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
    ml_pay_order_t order;
    ml_pay_order_init (&order);
    if (!reply) {
        json_t *again =
            json_pack ("{s:s, s:s, s:s, s:s, s:O}", "firm", S_TEXT ("firm_id"), "payer_name",
                       *S_TEXT ("payer_name") ? S_TEXT ("payer_name") : "unknown payer",
                       "payer_email", "reallocation@matterlink.invalid", "currency",
                       S_TEXT ("currency"), "lines", json_object_get (request, "lines"));
        reply = ml_pay_order_parse (self, again, &order);
        json_decref (again);
    }
    //  Same deposit account: its money is already there.
    json_t *account = NULL;
    if (!reply) {
        account =
            ml_store_rows (ml_db_query (self->db,
                                        "SELECT account_type FROM account WHERE firm_id = ? AND"
                                        " account_number = ?",
                                        "ss", S_TEXT ("firm_id"), S_TEXT ("account_number")),
                           ml_pay_integer_column);
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
        const ml_pay_group_t *group =
            &order.groups[json_array_size (order.groups[0].lines) ? 0 : 1];
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
            ml_db_begin (self->db) == 0 &&
            ml_store_posting_insert (self->store, S_TEXT ("firm_id"), posting, "reallocation") == 0;
        snprintf (detail, sizeof detail, "as %s by %s", posting->posting_uuid,
                  staff && *staff ? staff : "staff");
        ok = ok && ml_store_posting_note (self->store, uuid, "reallocated", detail) == 0 &&
             ml_db_commit (self->db) == 0;
        if (!ok)
            reply = ml_pay_store_failed (self, "reallocate");
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
    ml_pay_order_free (&order);
    json_decref (original);
    return reply;
}
