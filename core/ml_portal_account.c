/*  ml_portal_account: the payer's methods, history, receipts and Auto-Pay in the portal.
    See include/ml_portal_account.h and docs/portal-api.md. */
#include "ml_portal_account.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_HISTORY_MAX 200 //  the newest payments listed; older ones are in the firm's books

static bool s_integer_column (const char *name)
{
    static const char *integers[] = {"method_id",  "exp_month",   "exp_year", "amount_minor",
                                     "is_default", "schedule_id", "payer_id", NULL};
    for (size_t index = 0; integers[index]; index++)
        if (streq (name, integers[index]))
            return true;
    return false;
}

static json_t *s_rows (ml_store_t *store, ml_db_query_t *query)
{
    (void)store; //  one call shape for every query of this file
    return ml_store_rows (query, s_integer_column);
}

static const char *s_text (const json_t *row, const char *key)
{
    const char *text = json_string_value (json_object_get (row, key));
    return text ? text : "";
}

static json_t *s_store_failed (ml_store_t *store, const char *doing)
{
    ml_log (ML_LOG_ERROR, "portal account: %s failed: %s", doing,
            ml_db_error (ml_store_db (store))->message);
    ml_db_rollback (ml_store_db (store));
    return ml_admin_error ("the core store failed; see the core's log");
}

static json_t *s_not_found (void)
{
    return ml_admin_error ("not found");
}

//  The payer's e-mail address (staff entries name the payer by it), or "" when the payer is
//  gone. Returns -1 on a store error.
static int s_payer_email (ml_store_t *store, const ml_actor_t *actor, char *email, size_t size)
{
    json_t *rows = s_rows (store, ml_db_query (ml_store_db (store),
                                               "SELECT email FROM payer WHERE payer_id = ?"
                                               " AND firm_id = ?",
                                               "is", actor->payer_id, actor->firm_id));
    if (!rows)
        return -1;
    snprintf (email, size, "%s", s_text (json_array_get (rows, 0), "email"));
    json_decref (rows);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Saved methods

//  Whether a card is past its expiry month at the core's date (good through its last day).
static bool s_expired (int64_t month, int64_t year)
{
    time_t clock = time (NULL);
    struct tm utc;
    gmtime_r (&clock, &utc);
    return year * 12 + month < (int64_t)(utc.tm_year + 1900) * 12 + utc.tm_mon + 1;
}

static json_t *s_methods (ml_store_t *store, const ml_actor_t *actor)
{
    //  An Auto-Pay schedule that uses a card is named with it: removing it is refused.
    json_t *rows = s_rows (
        store, ml_db_query (ml_store_db (store),
                            "SELECT m.method_id, m.brand, m.last4, m.exp_month, m.exp_year,"
                            " m.created_at, CASE WHEN d.method_id IS NULL THEN 0 ELSE 1 END"
                            " AS is_default, (SELECT group_concat (s.name, ', ') FROM"
                            " autopay_schedule s WHERE s.method_id = m.method_id AND"
                            " s.deleted_at IS NULL) AS autopay FROM payment_method m"
                            " LEFT JOIN payment_method_default d ON d.method_id = m.method_id"
                            " WHERE m.payer_id = ? ORDER BY m.method_id",
                            "i", actor->payer_id));
    if (!rows)
        return s_store_failed (store, "portal-methods");
    json_t *methods = json_array ();
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        int64_t month = json_integer_value (json_object_get (row, "exp_month"));
        int64_t year = json_integer_value (json_object_get (row, "exp_year"));
        json_array_append_new (
            methods,
            json_pack ("{s:O, s:s, s:s, s:I, s:I, s:b, s:b, s:O, s:s}", "method_id",
                       json_object_get (row, "method_id"), "brand", s_text (row, "brand"), "last4",
                       s_text (row, "last4"), "exp_month", (json_int_t)month, "exp_year",
                       (json_int_t)year, "default",
                       json_integer_value (json_object_get (row, "is_default")) == 1, "expired",
                       s_expired (month, year), "autopay", json_object_get (row, "autopay"),
                       "added_at", s_text (row, "created_at")));
    }
    json_decref (rows);
    return ml_admin_ok (json_pack ("{s:o}", "methods", methods));
}

//  The payer's own method named by the request's method_id (its row, new reference), or
//  NULL with *reply set: "not found" for anything else, whoever's it is.
static json_t *s_own_method (ml_store_t *store, const ml_actor_t *actor, const json_t *request,
                             json_t **reply)
{
    json_t *id = json_object_get (request, "method_id");
    *reply = NULL;
    if (!json_is_integer (id) || json_integer_value (id) < 1) {
        *reply = s_not_found ();
        return NULL;
    }
    json_t *rows = s_rows (
        store, ml_db_query (ml_store_db (store),
                            "SELECT method_id, exp_month, exp_year, (SELECT group_concat (s.name,"
                            " ', ') FROM autopay_schedule s WHERE s.method_id ="
                            " payment_method.method_id AND s.deleted_at IS NULL) AS autopay"
                            " FROM payment_method WHERE method_id = ? AND payer_id = ?",
                            "ii", (int64_t)json_integer_value (id), actor->payer_id));
    if (!rows) {
        *reply = s_store_failed (store, "reading a method");
        return NULL;
    }
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    if (!row)
        *reply = s_not_found ();
    return row;
}

static json_t *s_method_remove (ml_store_t *store, const ml_actor_t *actor, const json_t *request)
{
    json_t *reply = NULL;
    json_t *method = s_own_method (store, actor, request, &reply);
    if (!method)
        return reply;
    int64_t method_id = json_integer_value (json_object_get (method, "method_id"));
    const char *autopay = json_string_value (json_object_get (method, "autopay"));
    if (autopay) {
        reply = ml_admin_error ("this card pays your Auto-Pay (%s); ask the firm to change it "
                                "before you remove the card",
                                autopay);
        json_decref (method);
        return reply;
    }
    json_decref (method);
    ml_db_t *db = ml_store_db (store);
    if (ml_db_begin (db) != 0 ||
        ml_db_execute (db, "DELETE FROM payment_method_default WHERE method_id = ?", "i",
                       method_id) < 0 ||
        ml_db_execute (db, "DELETE FROM payment_method WHERE method_id = ? AND payer_id = ?", "ii",
                       method_id, actor->payer_id) != 1 ||
        ml_db_commit (db) != 0)
        return s_store_failed (store, "portal-method-remove");
    ml_log (ML_LOG_NOTICE, "portal: payer %lld removed payment method %lld",
            (long long)actor->payer_id, (long long)method_id);
    return ml_admin_ok (json_pack ("{s:I}", "removed", (json_int_t)method_id));
}

static json_t *s_method_default (ml_store_t *store, const ml_actor_t *actor, const json_t *request)
{
    json_t *reply = NULL;
    json_t *method = s_own_method (store, actor, request, &reply);
    if (!method)
        return reply;
    int64_t method_id = json_integer_value (json_object_get (method, "method_id"));
    bool expired = s_expired (json_integer_value (json_object_get (method, "exp_month")),
                              json_integer_value (json_object_get (method, "exp_year")));
    json_decref (method);
    if (expired)
        return ml_admin_error ("this card has expired; it cannot be your default");
    char now[32];
    ml_store_now (now, sizeof now);
    ml_db_t *db = ml_store_db (store);
    if (ml_db_begin (db) != 0 ||
        ml_db_execute (db, "DELETE FROM payment_method_default WHERE payer_id = ?", "i",
                       actor->payer_id) < 0 ||
        ml_db_execute (db,
                       "INSERT INTO payment_method_default (payer_id, method_id, updated_at)"
                       " VALUES (?, ?, ?)",
                       "iis", actor->payer_id, method_id, now) != 1 ||
        ml_db_commit (db) != 0)
        return s_store_failed (store, "portal-method-default");
    return ml_admin_ok (json_pack ("{s:I}", "default", (json_int_t)method_id));
}

//  ---------------------------------------------------------------------------------------
//  History and receipts

//  What became of a posting, for the payer: its state, the matter system's receipt id once
//  posted, and whether the firm moved a rejected one's money elsewhere. Never the reason a
//  matter system gave, nor the A/R message. null when there is no posting (yet).
static json_t *s_posting_fate (ml_store_t *store, const char *posting_uuid)
{
    json_t *posting = posting_uuid && *posting_uuid ? ml_store_posting (store, posting_uuid) : NULL;
    if (!posting)
        return json_null ();
    bool reallocated = false;
    size_t index;
    json_t *event;
    json_array_foreach (json_object_get (posting, "history"), index, event)
    {
        reallocated = reallocated || streq (s_text (event, "status"), "reallocated");
    }
    const char *status = s_text (posting, "status");
    json_t *fate = json_pack ("{s:s, s:s, s:O, s:b}", "posting_id", posting_uuid, "status",
                              reallocated ? "reallocated" : status, "receipt_id",
                              json_object_get (posting, "receipt_id"), "reallocated", reallocated);
    json_decref (posting);
    return fate;
}

//  Lines as stored ([[kind, reference, amount_minor], ...] or posting lines) as
//  [{"kind": "invoice"|"trust", "reference", "amount_minor"}].
static json_t *s_lines (const json_t *stored)
{
    json_t *lines = json_array ();
    size_t index;
    json_t *line;
    json_array_foreach (stored, index, line)
    {
        const char *kind = json_is_array (line)
                               ? json_string_value (json_array_get (line, 0))
                               : json_string_value (json_object_get (line, "kind"));
        json_t *reference =
            json_is_array (line) ? json_array_get (line, 1) : json_object_get (line, "reference");
        json_t *amount = json_is_array (line) ? json_array_get (line, 2)
                                              : json_object_get (line, "amount_minor");
        json_array_append_new (lines, json_pack ("{s:s, s:O, s:O}", "kind",
                                                 kind && *kind == 'T' ? "trust" : "invoice",
                                                 "reference", reference, "amount_minor", amount));
    }
    return lines;
}

//  A charge for the payer: its account type, amount, what happened to it (approved,
//  declined, failed, pending, refunded, partly refunded, voided, charged back), its
//  reversals and its posting's fate.
static json_t *s_charge (ml_store_t *store, const json_t *row, bool with_lines)
{
    const char *key = s_text (row, "charge_key");
    const char *stored = s_text (row, "status");
    int64_t amount = json_integer_value (json_object_get (row, "amount_minor"));
    json_t *rows = s_rows (store, ml_db_query (ml_store_db (store),
                                               "SELECT kind, amount_minor, status, created_at,"
                                               " updated_at, posting_uuid FROM reversal WHERE"
                                               " charge_key = ? ORDER BY created_at",
                                               "s", key));
    json_t *reversals = json_array ();
    int64_t taken = 0;
    bool voided = false, charged_back = false;
    size_t index;
    json_t *reversal;
    json_array_foreach (rows, index, reversal)
    {
        const char *kind = s_text (reversal, "kind");
        const char *status = s_text (reversal, "status");
        bool approved = streq (status, "approved");
        if (approved) {
            taken += json_integer_value (json_object_get (reversal, "amount_minor"));
            voided = voided || streq (kind, "void");
            charged_back = charged_back || streq (kind, "chargeback");
        }
        json_array_append_new (reversals,
                               json_pack ("{s:s, s:O, s:s, s:s}", "kind", kind, "amount_minor",
                                          json_object_get (reversal, "amount_minor"), "status",
                                          approved ? "done"
                                          : streq (status, "pending") || streq (status, "unknown")
                                              ? "pending"
                                              : "failed",
                                          "date", s_text (reversal, "updated_at")));
    }
    json_decref (rows);
    const char *status = streq (stored, "declined")    ? "declined"
                         : streq (stored, "error")     ? "failed"
                         : !streq (stored, "approved") ? "pending"
                         : charged_back                ? "charged back"
                         : voided                      ? "voided"
                         : taken >= amount             ? "refunded"
                         : taken > 0                   ? "partly refunded"
                                                       : "approved";
    const char *type = s_text (row, "account_type");
    json_t *charge = json_pack (
        "{s:s, s:s, s:I, s:I, s:s, s:s, s:O, s:o, s:o}", "account_type",
        streq (type, "TRUST") ? "trust" : "operating", "currency", s_text (row, "currency"),
        "amount_minor", (json_int_t)amount, "taken_back_minor", (json_int_t)taken, "status", status,
        "date", s_text (row, "updated_at"), "reference", json_object_get (row, "processor_txn"),
        "reversals", reversals, "posting",
        streq (stored, "approved") ? s_posting_fate (store, s_text (row, "posting_uuid"))
                                   : json_null ());
    if (with_lines) {
        json_t *stored_lines = json_loads (s_text (row, "lines"), 0, NULL);
        json_object_set_new (charge, "lines", s_lines (stored_lines));
        json_decref (stored_lines);
    }
    return charge;
}

//  The payment's status from its charges': the one status they share; else "pending" while
//  one is, "partly approved" when one account's charge went through and another's did not,
//  or "partly refunded" (voided, charged back) when only some of the money came back.
static const char *s_overall (const json_t *charges)
{
    const char *first = NULL, *back = NULL;
    bool same = true, pending = false, failed = false;
    size_t index;
    json_t *charge;
    json_array_foreach (charges, index, charge)
    {
        const char *status = s_text (charge, "status");
        pending = pending || streq (status, "pending");
        failed = failed || streq (status, "declined") || streq (status, "failed");
        if (streq (status, "voided") || streq (status, "charged back") ||
            strstr (status, "refunded"))
            back = back ? back : status;
        same = same && (!first || streq (first, status));
        first = first ? first : status;
    }
    if (!first)
        return "pending";
    if (same)
        return first;
    if (pending)
        return "pending";
    if (failed)
        return "partly approved";
    return !back                          ? "approved"
           : streq (back, "voided")       ? "partly voided"
           : streq (back, "charged back") ? "partly charged back"
                                          : "partly refunded";
}

//  One card payment of the payer (a row of payment), with its charges.
static json_t *s_card_payment (ml_store_t *store, const json_t *row, bool with_lines)
{
    json_t *rows =
        s_rows (store, ml_db_query (ml_store_db (store),
                                    "SELECT charge_key, account_type, currency, amount_minor,"
                                    " status, processor_txn, lines, posting_uuid, updated_at FROM"
                                    " charge WHERE payment_uuid = ? ORDER BY account_type",
                                    "s", s_text (row, "payment_uuid")));
    json_t *charges = json_array ();
    int64_t total = 0;
    const char *currency = NULL;
    size_t index;
    json_t *charge;
    json_array_foreach (rows, index, charge)
    {
        if (!currency)
            currency = s_text (charge, "currency");
        if (streq (currency, s_text (charge, "currency")))
            total += json_integer_value (json_object_get (charge, "amount_minor"));
        json_array_append_new (charges, s_charge (store, charge, with_lines));
    }
    //  The sources a payer recognises: the firm's staff, a payment link, Auto-Pay, the portal.
    const char *source = s_text (row, "source");
    json_t *payment =
        json_pack ("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "payment",
                   s_text (row, "payment_uuid"), "date", s_text (row, "created_at"), "source",
                   streq (source, "staff") ? "firm" : source, "currency", currency ? currency : "",
                   "amount_minor", (json_int_t)total, "brand", s_text (row, "brand"), "last4",
                   s_text (row, "last4"), "status", s_overall (charges), "charges", charges);
    json_decref (rows);
    return payment;
}

//  A payment staff recorded (the `pay` op: a check, a transfer), which is a posting only.
static json_t *s_recorded_payment (ml_store_t *store, const json_t *row, bool with_lines)
{
    const char *type = s_text (row, "account_type");
    json_t *charge = json_pack (
        "{s:s, s:s, s:O, s:I, s:s, s:s, s:n, s:[], s:o}", "account_type",
        streq (type, "TRUST") ? "trust" : "operating", "currency", s_text (row, "currency"),
        "amount_minor", json_object_get (row, "amount_minor"), "taken_back_minor", (json_int_t)0,
        "status", "approved", "date", s_text (row, "created_at"), "reference", "reversals",
        "posting", s_posting_fate (store, s_text (row, "posting_uuid")));
    if (with_lines) {
        json_t *posting = ml_store_posting (store, s_text (row, "posting_uuid"));
        json_object_set_new (charge, "lines", s_lines (json_object_get (posting, "lines")));
        json_decref (posting);
    }
    return json_pack ("{s:s, s:s, s:s, s:s, s:O, s:n, s:n, s:s, s:[o]}", "payment",
                      s_text (row, "posting_uuid"), "date", s_text (row, "created_at"), "source",
                      "recorded", "currency", s_text (row, "currency"), "amount_minor",
                      json_object_get (row, "amount_minor"), "brand", "last4", "status", "approved",
                      "charges", charge);
}

//  A payment is the payer's when it names the payer, or, entered by staff without choosing
//  a saved payer, when its payer e-mail is the payer's address (of the same firm).
#define S_CARD_SQL                                                                                 \
    "SELECT payment_uuid, source, created_at, brand, last4, payer_name, payer_email FROM payment"  \
    " WHERE firm_id = ? AND (payer_id = ? OR (payer_id IS NULL AND payer_email = ? COLLATE"        \
    " NOCASE))"
#define S_RECORDED_SQL                                                                             \
    "SELECT p.posting_uuid, p.created_at, p.currency, p.amount_minor, p.payer_name,"               \
    " p.payer_email, COALESCE (a.account_type, 'OPERATING') AS account_type FROM posting p"        \
    " LEFT JOIN account a ON a.firm_id = p.firm_id AND a.account_number = p.account_number"        \
    " WHERE p.firm_id = ? AND p.source = 'staff' AND p.payer_email = ? COLLATE NOCASE"             \
    " AND ? <> ''"

static int s_newest_first (const void *a, const void *b)
{
    const json_t *left = *(const json_t *const *)a, *right = *(const json_t *const *)b;
    return strcmp (s_text (right, "date"), s_text (left, "date"));
}

static json_t *s_history (ml_store_t *store, const ml_actor_t *actor)
{
    char email[256];
    if (s_payer_email (store, actor, email, sizeof email) != 0)
        return s_store_failed (store, "portal-history");
    if (!*email)
        return s_not_found ();
    ml_db_t *db = ml_store_db (store);
    json_t *cards =
        s_rows (store, ml_db_query (db, S_CARD_SQL " ORDER BY created_at DESC LIMIT 200", "sis",
                                    actor->firm_id, actor->payer_id, email));
    json_t *recorded =
        s_rows (store, ml_db_query (db, S_RECORDED_SQL " ORDER BY p.created_at DESC LIMIT 200",
                                    "sss", actor->firm_id, email, email));
    if (!cards || !recorded) {
        json_decref (cards);
        json_decref (recorded);
        return s_store_failed (store, "portal-history");
    }
    size_t count = json_array_size (cards) + json_array_size (recorded), used = 0;
    json_t **all = calloc (count ? count : 1, sizeof (json_t *));
    assert (all);
    size_t index;
    json_t *row;
    json_array_foreach (cards, index, row) all[used++] = s_card_payment (store, row, false);
    json_array_foreach (recorded, index, row) all[used++] = s_recorded_payment (store, row, false);
    qsort (all, used, sizeof (json_t *), s_newest_first);
    json_t *payments = json_array ();
    for (index = 0; index < used; index++)
        if (index < S_HISTORY_MAX)
            json_array_append_new (payments, all[index]);
        else
            json_decref (all[index]);
    free (all);
    json_decref (cards);
    json_decref (recorded);
    return ml_admin_ok (json_pack ("{s:o}", "payments", payments));
}

static json_t *s_receipt (ml_store_t *store, const ml_actor_t *actor, const json_t *request)
{
    const char *id = json_string_value (json_object_get (request, "payment"));
    if (!id || strlen (id) != 36)
        return s_not_found ();
    char email[256];
    if (s_payer_email (store, actor, email, sizeof email) != 0)
        return s_store_failed (store, "portal-receipt");
    if (!*email)
        return s_not_found ();
    ml_db_t *db = ml_store_db (store);
    json_t *cards = s_rows (store, ml_db_query (db, S_CARD_SQL " AND payment_uuid = ?", "siss",
                                                actor->firm_id, actor->payer_id, email, id));
    json_t *recorded = s_rows (store, ml_db_query (db, S_RECORDED_SQL " AND p.posting_uuid = ?",
                                                   "ssss", actor->firm_id, email, email, id));
    json_t *firm = ml_store_firm (store, actor->firm_id);
    json_t *reply = NULL;
    json_t *row =
        json_array_get (cards, 0) ? json_array_get (cards, 0) : json_array_get (recorded, 0);
    if (!cards || !recorded)
        reply = s_store_failed (store, "portal-receipt");
    else if (!row)
        reply = s_not_found ();
    else {
        json_t *payment = json_array_get (cards, 0) ? s_card_payment (store, row, true)
                                                    : s_recorded_payment (store, row, true);
        json_object_set_new (payment, "payer",
                             json_pack ("{s:s, s:s}", "name", s_text (row, "payer_name"), "email",
                                        s_text (row, "payer_email")));
        reply = ml_admin_ok (
            json_pack ("{s:s, s:o}", "firm_name", s_text (firm, "name"), "payment", payment));
    }
    json_decref (firm);
    json_decref (cards);
    json_decref (recorded);
    return reply;
}

static json_t *s_autopay (ml_store_t *store, ml_autopay_t *autopay, const ml_actor_t *actor)
{
    json_t *schedules =
        autopay ? ml_autopay_payer_schedules (autopay, actor->payer_id) : json_array ();
    return schedules ? ml_admin_ok (json_pack ("{s:o}", "schedules", schedules))
                     : s_store_failed (store, "portal-autopay");
}

json_t *ml_portal_account_execute (ml_store_t *store, ml_autopay_t *autopay, const char *op,
                                   const json_t *request, const ml_actor_t *actor)
{
    assert (store && op && actor);
    static const char *const ops[] = {"portal-methods",
                                      "portal-method-remove",
                                      "portal-method-default",
                                      "portal-history",
                                      "portal-receipt",
                                      "portal-autopay",
                                      NULL};
    size_t index = 0;
    while (ops[index] && !streq (ops[index], op))
        index++;
    if (!ops[index])
        return NULL;
    //  The payer ops act for the session's payer only.
    if (actor->kind != ML_ACTOR_PAYER || actor->payer_id < 1)
        return s_not_found ();
    if (streq (op, "portal-methods"))
        return s_methods (store, actor);
    if (streq (op, "portal-method-remove"))
        return s_method_remove (store, actor, request);
    if (streq (op, "portal-method-default"))
        return s_method_default (store, actor, request);
    if (streq (op, "portal-history"))
        return s_history (store, actor);
    if (streq (op, "portal-receipt"))
        return s_receipt (store, actor, request);
    return s_autopay (store, autopay, actor);
}

//  ---------------------------------------------------------------------------------------
//  Selftest

static json_t *s_test_call (ml_store_t *store, ml_autopay_t *autopay, const ml_actor_t *actor,
                            const char *text)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    json_t *reply = ml_portal_account_execute (
        store, autopay, json_string_value (json_object_get (request, "op")), request, actor);
    json_decref (request);
    assert (reply);
    return reply;
}

static const char *s_test_error (json_t *reply, char *buf, size_t size)
{
    snprintf (buf, size, "%s", s_text (reply, "error"));
    json_decref (reply);
    return buf;
}

static void s_test_sql (ml_store_t *store, const char *sql)
{
    int64_t done = ml_db_execute (ml_store_db (store), sql, NULL);
    if (done < 0)
        fprintf (stderr, "%s: %s\n", sql, ml_db_error (ml_store_db (store))->message);
    assert (done >= 0);
}

//  An op through the admin table, as the API socket runs it.
static json_t *s_test_api (const ml_admin_parts_t *parts, const char *text)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    ml_admin_effects_t effects;
    json_t *reply = ml_admin_api_execute (parts, request, &effects);
    json_decref (request);
    assert (reply);
    return reply;
}

void ml_portal_account_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_portal_account: ");
    assert (sodium_init () >= 0);
    char directory[128], error[600], text[1024], buf[600], key_path[200];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_db_t *db = ml_store_db (store);
    ml_payers_t *payers = ml_payers_new (db, error, sizeof error);
    assert (payers);
    snprintf (key_path, sizeof key_path, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (db, key_path, error, sizeof error);
    assert (mailer);
    ml_payments_t *payments = ml_payments_new (store, payers, NULL, NULL, error, sizeof error);
    assert (payments);
    ml_autopay_t *autopay = ml_autopay_new (store, payers, payments, NULL, error, sizeof error);
    assert (autopay);
    ml_logins_settings_t settings;
    ml_logins_settings_defaults (&settings);
    ml_logins_t *logins = ml_logins_new (store, payers, mailer, &settings, error, sizeof error);
    assert (logins);
    const ml_selftest_item_t items[] = {{'I', "INV-1", "2026-01-05", "C-1", "M-1", 10000},
                                        {'T', "", "", "C-1", "M-1", 50000}};
    assert (ml_selftest_replica (store, items, 2) == 0);

    //  Pat and Sam, payers of the firm, with saved cards.
    int64_t pat = 0, sam = 0;
    const char *people[][2] = {{"Pat Doe", "pat@example.com"}, {"Sam Roe", "sam@example.com"}};
    for (size_t person = 0; person < 2; person++) {
        json_t *request = json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", people[person][0],
                                     "email", people[person][1]);
        json_t *reply = ml_payers_execute (payers, "payer-add", request);
        int64_t id =
            json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
        *(person ? &sam : &pat) = id;
        json_decref (reply);
        json_decref (request);
    }
    assert (pat > 0 && sam > 0);
    int64_t method[3];
    const char *cards[][3] = {
        {"tok_a", "visa", "4242"}, {"tok_b", "mastercard", "4444"}, {"tok_s", "amex", "0005"}};
    for (size_t card = 0; card < 3; card++) {
        json_t *request =
            json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id",
                       (json_int_t)(card < 2 ? pat : sam), "token", cards[card][0], "brand",
                       cards[card][1], "last4", cards[card][2], "exp_month", 12, "exp_year", 2099);
        json_t *reply = ml_payers_execute (payers, "method-add", request);
        method[card] =
            json_integer_value (json_object_get (json_object_get (reply, "method"), "method_id"));
        json_decref (reply);
        json_decref (request);
        assert (method[card] > 0);
    }
    //  A card that expired since it was saved (method-add refuses expired cards).
    snprintf (text, sizeof text,
              "INSERT INTO payment_method (payer_id, processor_token, brand, last4, exp_month,"
              " exp_year, created_at) VALUES (%lld, 'tok_old', 'visa', '1111', 1, 2001, 'x')",
              (long long)pat);
    s_test_sql (store, text);
    ml_actor_t as_pat = {.kind = ML_ACTOR_PAYER, .payer_id = pat, .firm_id = "acme"};
    ml_actor_t as_sam = {.kind = ML_ACTOR_PAYER, .payer_id = sam, .firm_id = "acme"};
    ml_actor_t anonymous = {.kind = ML_ACTOR_ANONYMOUS};

    json_t *reply = s_test_call (store, autopay, &as_pat, "{\"op\": \"portal-methods\"}");
    json_t *methods = json_object_get (reply, "methods");
    assert (json_array_size (methods) == 3);
    assert (!json_is_true (json_object_get (json_array_get (methods, 0), "expired")));
    assert (json_is_true (json_object_get (json_array_get (methods, 2), "expired")));
    assert (streq (s_text (json_array_get (methods, 2), "last4"), "1111"));
    int64_t expired =
        json_integer_value (json_object_get (json_array_get (methods, 2), "method_id"));
    assert (!json_is_true (json_object_get (json_array_get (methods, 0), "default")));
    //  Never the processor's token.
    char *dump = json_dumps (reply, 0);
    assert (!strstr (dump, "tok_"));
    free (dump);
    json_decref (reply);

    //  Another payer's method, or none at all, is "not found", and nothing changes.
    const char *changes[] = {"portal-method-default", "portal-method-remove"};
    for (size_t change = 0; change < 2; change++) {
        snprintf (text, sizeof text, "{\"op\": \"%s\", \"method_id\": %lld}", changes[change],
                  (long long)method[2]);
        assert (streq (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                       "not found"));
        snprintf (text, sizeof text, "{\"op\": \"%s\", \"method_id\": \"%lld\"}", changes[change],
                  (long long)method[0]);
        assert (streq (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                       "not found"));
        snprintf (text, sizeof text, "{\"op\": \"%s\", \"method_id\": 999999}", changes[change]);
        assert (streq (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                       "not found"));
        snprintf (text, sizeof text, "{\"op\": \"%s\", \"method_id\": %lld}", changes[change],
                  (long long)method[0]);
        assert (
            streq (s_test_error (s_test_call (store, autopay, &anonymous, text), buf, sizeof buf),
                   "not found"));
    }
    reply = s_test_call (store, autopay, &as_sam, "{\"op\": \"portal-methods\"}");
    assert (json_array_size (json_object_get (reply, "methods")) == 1);
    json_decref (reply);

    //  The default: one per payer, never an expired card.
    snprintf (text, sizeof text, "{\"op\": \"portal-method-default\", \"method_id\": %lld}",
              (long long)expired);
    assert (strstr (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                    "expired"));
    for (size_t round = 0; round < 2; round++) {
        snprintf (text, sizeof text, "{\"op\": \"portal-method-default\", \"method_id\": %lld}",
                  (long long)method[round]);
        reply = s_test_call (store, autopay, &as_pat, text);
        assert (json_is_true (json_object_get (reply, "ok")));
        json_decref (reply);
        reply = s_test_call (store, autopay, &as_pat, "{\"op\": \"portal-methods\"}");
        methods = json_object_get (reply, "methods");
        assert (json_is_true (json_object_get (json_array_get (methods, round), "default")));
        assert (!json_is_true (json_object_get (json_array_get (methods, 1 - round), "default")));
        json_decref (reply);
    }
    //  Removing the default card removes the choice with it; staff's method-remove too.
    snprintf (text, sizeof text, "{\"op\": \"portal-method-remove\", \"method_id\": %lld}",
              (long long)method[1]);
    reply = s_test_call (store, autopay, &as_pat, text);
    assert (json_integer_value (json_object_get (reply, "removed")) == method[1]);
    json_decref (reply);
    assert (streq (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                   "not found"));
    snprintf (text, sizeof text, "{\"op\": \"portal-method-default\", \"method_id\": %lld}",
              (long long)method[0]);
    json_decref (s_test_call (store, autopay, &as_pat, text));
    json_t *request = json_pack ("{s:I}", "method_id", (json_int_t)method[0]);
    reply = ml_payers_execute (payers, "method-remove", request);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);
    reply = s_test_call (store, autopay, &as_pat, "{\"op\": \"portal-methods\"}");
    assert (json_array_size (json_object_get (reply, "methods")) == 1);
    json_decref (reply);

    //  Auto-Pay: Sam's schedule with Sam's card; its card cannot be removed in the portal.
    ml_item_t found = {.kind = 'I'};
    strcpy (found.client_number, "C-1");
    reply = ml_payers_association_record (payers, sam, "client", &found, "t");
    int64_t association = json_integer_value (
        json_object_get (json_object_get (reply, "association"), "association_id"));
    json_decref (reply);
    snprintf (text, sizeof text,
              "INSERT INTO autopay_schedule (firm_id, payer_id, method_id, name, account_number,"
              " currency, ar_message, frequency, day_rule, first_date, amount_minor, enabled,"
              " runs_from, created_by, created_at, updated_at) VALUES ('acme', %lld, %lld,"
              " 'Monthly fees', 'OP-001', 'USD', 'SECRET-AR', 'monthly', 'last', '2090-01-15', 0,"
              " 1, '2090-01-15', 't', 'x', 'x')",
              (long long)sam, (long long)method[2]);
    s_test_sql (store, text);
    snprintf (text, sizeof text,
              "INSERT INTO autopay_enrollment (schedule_id, association_id, enrolled_at)"
              " SELECT MAX (schedule_id), %lld, 'x' FROM autopay_schedule",
              (long long)association);
    s_test_sql (store, text);
    reply = s_test_call (store, autopay, &as_sam, "{\"op\": \"portal-autopay\"}");
    json_t *schedule = json_array_get (json_object_get (reply, "schedules"), 0);
    assert (streq (s_text (schedule, "next_run"), "2090-01-15"));
    assert (streq (s_text (schedule, "state"), "active"));
    assert (streq (s_text (schedule, "last4"), "0005"));
    assert (
        streq (s_text (json_array_get (json_object_get (schedule, "covers"), 0), "number"), "C-1"));
    dump = json_dumps (reply, 0);
    assert (!strstr (dump, "SECRET-AR") && !strstr (dump, "ar_message"));
    free (dump);
    json_decref (reply);
    reply = s_test_call (store, autopay, &as_pat, "{\"op\": \"portal-autopay\"}");
    assert (json_array_size (json_object_get (reply, "schedules")) == 0);
    json_decref (reply);
    //  A soft decline's retry comes before the next due date; a schedule turned off has none.
    s_test_sql (store, "INSERT INTO autopay_run (schedule_id, due_date, attempt, run_on,"
                       " payment_uuid, status, currency, lines, created_at, updated_at) SELECT"
                       " MAX (schedule_id), '2089-12-15', 2, '2089-12-16', 'run-2', 'scheduled',"
                       " 'USD', '[]', 'x', 'x' FROM autopay_schedule");
    reply = s_test_call (store, autopay, &as_sam, "{\"op\": \"portal-autopay\"}");
    schedule = json_array_get (json_object_get (reply, "schedules"), 0);
    assert (streq (s_text (schedule, "next_run"), "2089-12-16"));
    assert (json_is_true (json_object_get (schedule, "next_is_retry")));
    json_decref (reply);
    s_test_sql (store, "UPDATE autopay_schedule SET enabled = 0");
    reply = s_test_call (store, autopay, &as_sam, "{\"op\": \"portal-autopay\"}");
    schedule = json_array_get (json_object_get (reply, "schedules"), 0);
    assert (streq (s_text (schedule, "state"), "off"));
    assert (json_is_null (json_object_get (schedule, "next_run")));
    json_decref (reply);
    s_test_sql (store, "UPDATE autopay_schedule SET enabled = 1");
    snprintf (text, sizeof text, "{\"op\": \"portal-method-remove\", \"method_id\": %lld}",
              (long long)method[2]);
    assert (strstr (s_test_error (s_test_call (store, autopay, &as_sam, text), buf, sizeof buf),
                    "Auto-Pay (Monthly fees)"));

    //  History: Pat's staff charge (operating approved and posted, trust refunded), a link
    //  payment naming Pat by address only (declined), a payment staff recorded for Pat's
    //  address; and Sam's payment.
    const char *sql[] = {
        "INSERT INTO payment VALUES ('11111111-1111-4111-8111-111111111111', 'acme', 'staff',"
        " 'alice', PAT, 'Pat Doe', 'pat@example.com', 'pat@example.com', 'SECRET-AR', 'C-1',"
        " 'tok_a', 'visa', '4242', '2026-03-01T10:00:00.000Z')",
        "INSERT INTO charge (charge_key, payment_uuid, account_number, account_type,"
        " merchant_account, currency, amount_minor, lines, posting_uuid, status, processor_txn,"
        " created_at, updated_at) VALUES ('k-op', '11111111-1111-4111-8111-111111111111', 'OP-001',"
        " 'OPERATING', 'm', 'USD', 10000, '[[\"I\", \"INV-1\", 10000]]', 'post-op', 'approved',"
        " 'txn-1', 'x', '2026-03-01T10:00:01.000Z')",
        "INSERT INTO charge (charge_key, payment_uuid, account_number, account_type,"
        " merchant_account, currency, amount_minor, lines, posting_uuid, status, processor_txn,"
        " created_at, updated_at) VALUES ('k-tr', '11111111-1111-4111-8111-111111111111', 'TR-001',"
        " 'TRUST', 'm', 'USD', 2500, '[[\"T\", \"M-1\", 2500]]', 'post-tr', 'approved', 'txn-2',"
        " 'x', '2026-03-01T10:00:01.000Z')",
        "INSERT INTO reversal (reversal_key, charge_key, kind, amount_minor, lines, posting_uuid,"
        " status, staff, created_at, updated_at) VALUES ('r-1', 'k-tr', 'refund', 2500,"
        " '[[\"T\", \"M-1\", 2500]]', 'post-r', 'approved', 'alice', 'x', '2026-03-02')",
        "INSERT INTO posting (posting_uuid, firm_id, source, created_at, received_on,"
        " account_number, client_number, payer_name, payer_email, currency, amount_minor,"
        " ar_message, processor_txn, status, receipt_id, updated_at) VALUES ('post-op', 'acme',"
        " 'payment', 'x', '2026-03-01', 'OP-001', 'C-1', 'Pat Doe', 'pat@example.com', 'USD',"
        " 10000, 'SECRET-AR', 'txn-1', 'posted', 'RCPT-9', 'x')",
        "INSERT INTO payment VALUES ('22222222-2222-4222-8222-222222222222', 'acme', 'link',"
        " 'alice', NULL, 'Pat Doe', 'PAT@example.com', 'pat@example.com', 'SECRET-AR', 'C-1',"
        " 'tok_x', 'mastercard', '4444', '2026-03-05T10:00:00.000Z')",
        "INSERT INTO charge (charge_key, payment_uuid, account_number, account_type,"
        " merchant_account, currency, amount_minor, lines, posting_uuid, status, processor_txn,"
        " created_at, updated_at) VALUES ('k-no', '22222222-2222-4222-8222-222222222222', 'OP-001',"
        " 'OPERATING', 'm', 'USD', 700, '[[\"I\", \"INV-1\", 700]]', 'post-no', 'declined', NULL,"
        " 'x', 'x')",
        "INSERT INTO posting (posting_uuid, firm_id, source, created_at, received_on,"
        " account_number, client_number, payer_name, payer_email, currency, amount_minor,"
        " ar_message, processor_txn, status, updated_at) VALUES"
        " ('33333333-3333-4333-8333-333333333333', 'acme', 'staff', '2026-02-01T09:00:00.000Z',"
        " '2026-02-01', 'OP-001', 'C-1', 'Pat', 'pat@EXAMPLE.com', 'USD', 1500, 'SECRET-AR', '',"
        " 'pending', 'x')",
        "INSERT INTO posting_line VALUES ('33333333-3333-4333-8333-333333333333', 1, 'I', 'INV-1',"
        " 1500, 'acme')",
        "INSERT INTO payment VALUES ('44444444-4444-4444-8444-444444444444', 'acme', 'staff',"
        " 'alice', SAM, 'Sam Roe', 'sam@example.com', 'sam@example.com', 'SECRET-AR', 'C-1',"
        " 'tok_s', 'amex', '0005', '2026-03-09T10:00:00.000Z')",
        NULL};
    for (size_t index = 0; sql[index]; index++) {
        char statement[1200], number[24];
        snprintf (statement, sizeof statement, "%s", sql[index]);
        char *hole =
            strstr (statement, "PAT") ? strstr (statement, "PAT") : strstr (statement, "SAM");
        if (hole && (hole[-1] == ' ')) {
            snprintf (number, sizeof number, "%lld", (long long)(hole[0] == 'P' ? pat : sam));
            char rest[1200];
            snprintf (rest, sizeof rest, "%s", hole + 3);
            snprintf (hole, sizeof statement - (size_t)(hole - statement), "%s%s", number, rest);
        }
        s_test_sql (store, statement);
    }
    reply = s_test_call (store, autopay, &as_pat, "{\"op\": \"portal-history\"}");
    json_t *list = json_object_get (reply, "payments");
    assert (json_array_size (list) == 3);
    json_t *link = json_array_get (list, 0), *staff = json_array_get (list, 1),
           *recorded = json_array_get (list, 2);
    assert (streq (s_text (link, "source"), "link") && streq (s_text (link, "status"), "declined"));
    assert (streq (s_text (staff, "source"), "firm"));
    assert (streq (s_text (staff, "status"), "partly refunded"));
    assert (json_integer_value (json_object_get (staff, "amount_minor")) == 12500);
    json_t *charges = json_object_get (staff, "charges");
    assert (streq (s_text (json_array_get (charges, 0), "account_type"), "operating"));
    assert (streq (s_text (json_array_get (charges, 0), "status"), "approved"));
    json_t *posting = json_object_get (json_array_get (charges, 0), "posting");
    assert (streq (s_text (posting, "status"), "posted"));
    assert (streq (s_text (posting, "receipt_id"), "RCPT-9"));
    assert (streq (s_text (json_array_get (charges, 1), "account_type"), "trust"));
    assert (streq (s_text (json_array_get (charges, 1), "status"), "refunded"));
    assert (streq (s_text (recorded, "source"), "recorded"));
    assert (streq (s_text (recorded, "payment"), "33333333-3333-4333-8333-333333333333"));
    dump = json_dumps (reply, 0);
    assert (!strstr (dump, "SECRET-AR") && !strstr (dump, "tok_") &&
            !strstr (dump, "44444444-4444-4444-8444-444444444444"));
    free (dump);
    json_decref (reply);
    reply = s_test_call (store, autopay, &as_sam, "{\"op\": \"portal-history\"}");
    assert (json_array_size (json_object_get (reply, "payments")) == 1);
    json_decref (reply);

    //  Receipts: the payer's own, with lines and the firm's name; anyone else's is not found.
    reply = s_test_call (store, autopay, &as_pat,
                         "{\"op\": \"portal-receipt\", \"payment\":"
                         " \"11111111-1111-4111-8111-111111111111\"}");
    assert (streq (s_text (reply, "firm_name"), "Acme LLP"));
    json_t *payment = json_object_get (reply, "payment");
    assert (streq (s_text (json_object_get (payment, "payer"), "name"), "Pat Doe"));
    json_t *line = json_array_get (
        json_object_get (json_array_get (json_object_get (payment, "charges"), 1), "lines"), 0);
    assert (streq (s_text (line, "kind"), "trust") && streq (s_text (line, "reference"), "M-1"));
    dump = json_dumps (reply, 0);
    assert (!strstr (dump, "SECRET-AR"));
    free (dump);
    json_decref (reply);
    reply = s_test_call (store, autopay, &as_pat,
                         "{\"op\": \"portal-receipt\", \"payment\":"
                         " \"33333333-3333-4333-8333-333333333333\"}");
    line = json_array_get (
        json_object_get (
            json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0),
            "lines"),
        0);
    assert (streq (s_text (line, "reference"), "INV-1"));
    json_decref (reply);
    const char *foreign[] = {"44444444-4444-4444-8444-444444444444", "post-op", "nothing", ""};
    for (size_t index = 0; index < 4; index++) {
        snprintf (text, sizeof text, "{\"op\": \"portal-receipt\", \"payment\": \"%s\"}",
                  foreign[index]);
        assert (streq (s_test_error (s_test_call (store, autopay, &as_pat, text), buf, sizeof buf),
                       "not found"));
    }
    assert (streq (s_test_error (s_test_call (store, autopay, &as_sam,
                                              "{\"op\": \"portal-receipt\", \"payment\":"
                                              " \"33333333-3333-4333-8333-333333333333\"}"),
                                 buf, sizeof buf),
                   "not found"));

    //  Through the table, as the web reaches it: a session, and CSRF on every change.
    ml_admin_parts_t parts = {.store = store,
                              .payers = payers,
                              .payments = payments,
                              .mailer = mailer,
                              .autopay = autopay,
                              .logins = logins};
    const char *session = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    unsigned char hash[32];
    char digest[65], csrf[ML_LOGINS_TOKEN_LENGTH + 1];
    crypto_generichash (hash, sizeof hash, (const unsigned char *)session, strlen (session), NULL,
                        0);
    sodium_bin2hex (digest, sizeof digest, hash, sizeof hash);
    static const char label[] = "matterlink portal csrf";
    crypto_generichash (hash, sizeof hash, (const unsigned char *)label, sizeof label - 1,
                        (const unsigned char *)session, strlen (session));
    sodium_bin2base64 (csrf, sizeof csrf, hash, sizeof hash,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf (text, sizeof text,
              "INSERT INTO portal_login (payer_id, state, created_at, updated_at) VALUES (%lld,"
              " 'on', 0, 0)",
              (long long)sam);
    s_test_sql (store, text);
    snprintf (text, sizeof text,
              "INSERT INTO portal_session (digest, payer_id, created_at, last_seen_at) VALUES"
              " ('%s', %lld, %lld, %lld)",
              digest, (long long)sam, (long long)time (NULL), (long long)time (NULL));
    s_test_sql (store, text);
    snprintf (text, sizeof text, "{\"op\": \"portal-methods\", \"session\": \"%s\"}", session);
    reply = s_test_api (&parts, text);
    assert (json_array_size (json_object_get (reply, "methods")) == 1);
    json_decref (reply);
    assert (
        streq (s_test_error (s_test_api (&parts, "{\"op\": \"portal-history\"}"), buf, sizeof buf),
               "not found"));
    json_t *sam_default = json_pack ("{s:s, s:s, s:I}", "op", "portal-method-default", "session",
                                     session, "method_id", (json_int_t)method[2]);
    ml_admin_effects_t effects;
    reply = ml_admin_api_execute (&parts, sam_default, &effects);
    assert (json_is_false (json_object_get (reply, "csrf")));
    json_decref (reply);
    json_object_set_new (sam_default, "csrf", json_string ("wrong"));
    reply = ml_admin_api_execute (&parts, sam_default, &effects);
    assert (json_is_false (json_object_get (reply, "csrf")));
    json_decref (reply);
    json_object_set_new (sam_default, "csrf", json_string (csrf));
    reply = ml_admin_api_execute (&parts, sam_default, &effects);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (sam_default);
    //  A member the op does not take is refused, a payer's id among them.
    snprintf (text, sizeof text,
              "{\"op\": \"portal-history\", \"session\": \"%s\", \"payer_id\": %lld}", session,
              (long long)pat);
    assert (strstr (s_test_error (s_test_api (&parts, text), buf, sizeof buf), "payer_id"));

    ml_logins_destroy (&logins);
    ml_autopay_destroy (&autopay);
    ml_payments_destroy (&payments);
    ml_mailer_destroy (&mailer);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
