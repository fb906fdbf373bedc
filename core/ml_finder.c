/*  ml_finder: admin searches over the agent's link. See include/ml_finder.h. */
#include "ml_finder.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"
#include "ml_store.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <time.h>

//  The agent's deadline is this much shorter than the core's, so its own "took too long"
//  answer arrives before the core gives up waiting.
#define S_AGENT_MARGIN_MS 50

bool ml_finder_handles (const char *op)
{
    return op &&
           (streq (op, "search") || streq (op, "payer-view") || streq (op, "association-add"));
}

//  Read an optional integer argument in [low, high]; absent or null gives fallback. Sets
//  problem (if not already set) when present but not such an integer.
static int64_t s_integer (const json_t *request, const char *key, int64_t low, int64_t high,
                          int64_t fallback, char *problem, size_t size)
{
    json_t *value = json_object_get (request, key);
    if (!value || json_is_null (value) || *problem)
        return fallback;
    if (!json_is_integer (value) || json_integer_value (value) < low ||
        json_integer_value (value) > high) {
        snprintf (problem, size, "'%s' must be a whole number from %lld to %lld", key,
                  (long long)low, (long long)high);
        return fallback;
    }
    return (int64_t)json_integer_value (value);
}

static void s_today (char *buffer, size_t size)
{
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    strftime (buffer, size, "%Y-%m-%d", &utc);
}

static const char *s_match_name (char match)
{
    return match == 'E' ? "exact" : match == 'P' ? "prefix" : "contains";
}

//  The criteria, filters and page of a search or payer-view request, into a new SEARCH.
//  Returns NULL with problem set on bad input.
static ml_msg_t *s_criteria (ml_payers_t *payers, const json_t *request, const char *staff,
                             char *problem, size_t size)
{
    const char *text = ml_admin_argument (request, "text", 255, problem, size);
    const char *by = ml_admin_argument (request, "by", 32, problem, size);
    const char *match = ml_admin_argument (request, "match", 16, problem, size);
    const char *target = ml_admin_argument (request, "target", 16, problem, size);
    const char *date_from = ml_admin_argument (request, "date_from", 10, problem, size);
    const char *date_to = ml_admin_argument (request, "date_to", 10, problem, size);
    const char *status = ml_admin_argument (request, "status", 16, problem, size);
    int64_t amount_min = s_integer (request, "amount_min", 0, INT64_MAX, -1, problem, size);
    int64_t amount_max = s_integer (request, "amount_max", 0, INT64_MAX, -1, problem, size);
    const char *amount_currency = ml_admin_argument (request, "amount_currency", 3, problem, size);
    int64_t after = s_integer (request, "after", 0, INT64_MAX, 0, problem, size);
    int64_t limit = s_integer (request, "limit", 1, ML_MAX_SEARCH_ROWS, 50, problem, size);
    int64_t deadline = s_integer (request, "deadline_ms", 100, ML_MAX_DEADLINE_MS,
                                  ML_FINDER_DEADLINE_MS, problem, size);
    json_t *remember = json_object_get (request, "remember");
    if (*problem)
        return NULL;
    if (remember && !json_is_boolean (remember)) {
        snprintf (problem, size, "'remember' must be true or false");
        return NULL;
    }
    if (text && !*text)
        text = NULL;
    int field = ML_FIELD_NONE;
    if (by) {
        field = ml_field_parse (by);
        if (field < 0) {
            snprintf (problem, size,
                      "'by' must be one of client-name, client-number, matter-number, "
                      "matter-description, invoice-number");
            return NULL;
        }
        if (!text) {
            snprintf (problem, size, "'by' %s needs a 'text' to look for", by);
            return NULL;
        }
    } else if (text) {
        //  The staff user's remembered field, else the one most searches use.
        const char *remembered = staff ? ml_payers_staff_default (payers, staff) : NULL;
        field = ml_field_parse (remembered ? remembered : "client-name");
        if (field < 0)
            field = ML_FIELD_CLIENT_NAME;
    }
    char match_code;
    if (!match)
        match_code =
            field == ML_FIELD_CLIENT_NAME || field == ML_FIELD_MATTER_DESCRIPTION ? 'C' : 'E';
    else if (streq (match, "exact") || streq (match, "prefix") || streq (match, "contains"))
        match_code = (char)toupper ((unsigned char)*match);
    else {
        snprintf (problem, size, "'match' must be exact, prefix or contains");
        return NULL;
    }
    char target_code = 'I';
    if (target && streq (target, "trust"))
        target_code = 'T';
    else if (target && !streq (target, "invoices")) {
        snprintf (problem, size, "'target' must be invoices or trust");
        return NULL;
    }
    uint8_t status_code = ML_STATUS_ANY;
    if (status && streq (status, "overdue"))
        status_code = ML_STATUS_OVERDUE;
    else if (status && streq (status, "current"))
        status_code = ML_STATUS_CURRENT;
    else if (status && !streq (status, "any")) {
        snprintf (problem, size, "'status' must be any, overdue or current");
        return NULL;
    }
    if ((date_from && !ml_msg_valid_date (date_from)) ||
        (date_to && !ml_msg_valid_date (date_to))) {
        snprintf (problem, size, "dates are YYYY-MM-DD");
        return NULL;
    }
    if (date_from && date_to && *date_from && *date_to && strcmp (date_from, date_to) > 0) {
        snprintf (problem, size, "'date_from' is after 'date_to'");
        return NULL;
    }
    if (amount_min >= 0 && amount_max >= 0 && amount_min > amount_max) {
        snprintf (problem, size, "'amount_min' is above 'amount_max'");
        return NULL;
    }
    //  Bounds are minor units, which mean nothing without their currency (100.00 USD is
    //  10000, 100 JPY is 100): the search compares only rows in that currency.
    if ((amount_min >= 0 || amount_max >= 0) &&
        (!amount_currency || ml_money_exponent (amount_currency) < 0)) {
        snprintf (problem, size,
                  "'amount_min' and 'amount_max' need 'amount_currency', the known currency "
                  "code (like USD) their minor units are in");
        return NULL;
    }
    if (amount_currency && amount_min < 0 && amount_max < 0) {
        snprintf (problem, size,
                  "'amount_currency' is given only with 'amount_min' or 'amount_max'");
        return NULL;
    }
    if (target_code == 'T' && (field == ML_FIELD_INVOICE_NUMBER || (date_from && *date_from) ||
                               (date_to && *date_to) || status_code != ML_STATUS_ANY)) {
        snprintf (problem, size,
                  "trust ledgers have no invoice numbers, invoice dates or due "
                  "dates to search by");
        return NULL;
    }
    if (json_is_true (remember)) {
        if (!staff || !by) {
            snprintf (problem, size, "'remember' needs 'staff' and 'by'");
            return NULL;
        }
        json_t *preference = json_pack ("{s:s, s:s}", "staff", staff, "field", by);
        json_t *saved = ml_payers_execute (payers, "staff-default", preference);
        json_decref (preference);
        bool ok = saved && json_is_true (json_object_get (saved, "ok"));
        if (!ok)
            snprintf (problem, size, "%s",
                      saved ? json_string_value (json_object_get (saved, "error"))
                            : "cannot remember the field");
        json_decref (saved);
        if (!ok)
            return NULL;
    }
    ml_msg_t *message = ml_msg_new (ML_MSG_SEARCH);
    assert (message);
    ml_search_t *search = &message->search;
    search->deadline_ms =
        (uint32_t)(deadline > 2 * S_AGENT_MARGIN_MS ? deadline - S_AGENT_MARGIN_MS : deadline);
    search->target = target_code;
    search->field = (uint8_t)field;
    search->match = match_code;
    snprintf (search->text, sizeof search->text, "%s", text ? text : "");
    snprintf (search->date_from, sizeof search->date_from, "%s", date_from ? date_from : "");
    snprintf (search->date_to, sizeof search->date_to, "%s", date_to ? date_to : "");
    if (amount_min >= 0) {
        search->amount_filter |= ML_AMOUNT_MIN;
        search->amount_min = amount_min;
    }
    if (amount_max >= 0) {
        search->amount_filter |= ML_AMOUNT_MAX;
        search->amount_max = amount_max;
    }
    if (search->amount_filter) {
        search->amount_filter |= ML_AMOUNT_CURRENCY;
        snprintf (search->amount_currency, sizeof search->amount_currency, "%s", amount_currency);
    }
    search->status = status_code;
    if (status_code != ML_STATUS_ANY)
        s_today (search->as_of, sizeof search->as_of);
    search->after = (uint64_t)after;
    search->limit = (uint16_t)limit;
    return message;
}

//  A payer's firm and scope into the search. Returns 1, 0 for an unknown payer (problem
//  set), -1 on a store error.
static int s_scope (ml_payers_t *payers, int64_t payer_id, ml_msg_t *message, char *firm_id,
                    size_t firm_size, json_t **scope)
{
    int found = ml_payers_scope (payers, payer_id, firm_id, firm_size, scope);
    if (found != 1)
        return found;
    static const char *lists[] = {"clients", "matters", "invoices"};
    message->search.scoped = 1;
    for (int list = 0; list < 3; list++) {
        size_t index;
        json_t *number;
        json_array_foreach (json_object_get (*scope, lists[list]), index, number)
        {
            if (ml_msg_add_scope (message, list, json_string_value (number)) != 0) {
                json_decref (*scope);
                *scope = NULL;
                return -1;
            }
        }
    }
    return 1;
}

static bool s_scope_empty (const ml_msg_t *message)
{
    const ml_search_t *search = &message->search;
    return search->scope_count[ML_SCOPE_CLIENTS] == 0 &&
           search->scope_count[ML_SCOPE_MATTERS] == 0 &&
           (search->scope_count[ML_SCOPE_INVOICES] == 0 || search->target == 'T');
}

static json_t *s_context (const char *op, const char *firm_id, const ml_msg_t *message,
                          int64_t deadline)
{
    const ml_search_t *search = &message->search;
    return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "op", op, "firm", firm_id, "target",
                      search->target == 'T' ? "trust" : "invoices", "by",
                      ml_field_name (search->field), "match", s_match_name (search->match), "text",
                      search->text, "deadline_ms", (json_int_t)deadline);
}

ml_msg_t *ml_finder_request (ml_payers_t *payers, const json_t *request, char *firm_id,
                             size_t firm_size, json_t **context, json_t **reply)
{
    assert (payers && request && firm_id && context && reply);
    *context = NULL;
    *reply = NULL;
    char problem[256] = "";
    const char *op = json_string_value (json_object_get (request, "op"));
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    int64_t deadline = s_integer (request, "deadline_ms", 100, ML_MAX_DEADLINE_MS,
                                  ML_FINDER_DEADLINE_MS, problem, sizeof problem);
    int64_t payer_id = s_integer (request, streq (op, "search") ? "as_payer" : "payer_id", 1,
                                  INT64_MAX, 0, problem, sizeof problem);
    if (*problem) {
        *reply = ml_admin_error ("%s", problem);
        return NULL;
    }
    ml_msg_t *message = NULL;
    if (streq (op, "association-add")) {
        const char *level = ml_admin_argument (request, "level", 16, problem, sizeof problem);
        const char *number = ml_admin_argument (request, "number", 63, problem, sizeof problem);
        if (!*problem && (!payer_id || !level || !number || !*number))
            snprintf (problem, sizeof problem, "'payer_id', 'level' and 'number' are required");
        int field = !level                     ? -1
                    : streq (level, "client")  ? ML_FIELD_CLIENT_NUMBER
                    : streq (level, "matter")  ? ML_FIELD_MATTER_NUMBER
                    : streq (level, "invoice") ? ML_FIELD_INVOICE_NUMBER
                                               : -1;
        if (!*problem && field < 0)
            snprintf (problem, sizeof problem, "'level' must be client, matter or invoice");
        if (*problem) {
            *reply = ml_admin_error ("%s", problem);
            return NULL;
        }
        json_t *scope = NULL;
        int found = ml_payers_scope (payers, payer_id, firm_id, firm_size, &scope);
        json_decref (scope);
        if (found != 1) {
            *reply = found == 0 ? ml_admin_error ("no payer %lld", (long long)payer_id)
                                : ml_admin_error ("the core store failed; see the core's log");
            return NULL;
        }
        message = ml_msg_new (ML_MSG_SEARCH);
        assert (message);
        message->search.deadline_ms = (uint32_t)(deadline - S_AGENT_MARGIN_MS);
        message->search.target = 'I';
        message->search.field = (uint8_t)field;
        message->search.match = 'E';
        snprintf (message->search.text, sizeof message->search.text, "%s", number);
        message->search.limit = 1;
        *context = s_context (op, firm_id, message, deadline);
        json_object_set_new (*context, "payer_id", json_integer (payer_id));
        json_object_set_new (*context, "level", json_string (level));
        json_object_set_new (*context, "staff", json_string (staff ? staff : ""));
        return message;
    }
    message = s_criteria (payers, request, staff, problem, sizeof problem);
    if (!message) {
        *reply = ml_admin_error ("%s", problem);
        return NULL;
    }
    json_t *scope = NULL;
    if (payer_id) {
        int found = s_scope (payers, payer_id, message, firm_id, firm_size, &scope);
        if (found != 1) {
            *reply = found == 0 ? ml_admin_error ("no payer %lld", (long long)payer_id)
                                : ml_admin_error ("the core store failed; see the core's log");
            ml_msg_destroy (&message);
            return NULL;
        }
        if (firm && !streq (firm, firm_id)) {
            *reply = ml_admin_error ("payer %lld belongs to firm %s, not %s", (long long)payer_id,
                                     firm_id, firm);
            json_decref (scope);
            ml_msg_destroy (&message);
            return NULL;
        }
    } else if (streq (op, "payer-view")) {
        *reply = ml_admin_error ("'payer_id' is required");
        ml_msg_destroy (&message);
        return NULL;
    } else if (!firm) {
        *reply = ml_admin_error ("'firm' is required");
        ml_msg_destroy (&message);
        return NULL;
    } else
        snprintf (firm_id, firm_size, "%s", firm);
    *context = s_context (payer_id ? "payer-view" : "search", firm_id, message, deadline);
    if (payer_id) {
        json_object_set_new (*context, "payer_id", json_integer (payer_id));
        json_object_set_new (*context, "scope", scope);
        //  Nothing associated, nothing to see: no need to ask the firm's database.
        if (s_scope_empty (message)) {
            json_t *empty = json_deep_copy (*context);
            json_object_del (empty, "scope");
            json_object_del (empty, "op");
            json_object_set_new (empty, "items", json_array ());
            json_object_set_new (empty, "next", json_null ());
            *reply = ml_admin_ok (empty);
            json_decref (*context);
            *context = NULL;
            ml_msg_destroy (&message);
            return NULL;
        }
    }
    return message;
}

static json_t *s_text_or_null (const char *text)
{
    return *text ? json_string (text) : json_null ();
}

json_t *ml_finder_item_json (const ml_item_t *item)
{
    json_t *row = json_pack (
        "{s:s, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:s}", "kind",
        item->kind == 'T' ? "trust" : "invoice", "source_id", (json_int_t)item->source_id,
        "invoice_number", s_text_or_null (item->invoice_number), "invoice_date",
        s_text_or_null (item->invoice_date), "due_date", s_text_or_null (item->due_date),
        "client_number", item->client_number, "client_name", item->client_name, "matter_number",
        item->matter_number, "matter_description", item->matter_description, "currency",
        item->currency, "total_minor",
        item->kind == 'T' ? json_null () : json_integer ((json_int_t)item->total_minor),
        "balance_minor", (json_int_t)item->balance_minor, "status", item->status);
    assert (row);
    return row;
}

static json_t *s_failure (const json_t *context, const ml_msg_t *answer)
{
    const char *firm = json_string_value (json_object_get (context, "firm"));
    switch (answer->code) {
        case ML_SEARCH_UNAVAILABLE:
            return ml_admin_error ("firm %s's agent cannot reach its matter database now (%s); "
                                   "try again shortly",
                                   firm, answer->reason);
        case ML_SEARCH_TIMEOUT:
            return ml_admin_error (
                "firm %s's matter database did not answer within %lld ms (%s)", firm,
                (long long)json_integer_value (json_object_get (context, "deadline_ms")),
                answer->reason);
        default:
            return ml_admin_error ("the search failed in firm %s's matter database (%u: %s)", firm,
                                   answer->code, answer->reason);
    }
}

json_t *ml_finder_reply (ml_payers_t *payers, json_t *context, const ml_msg_t *answer,
                         ml_msg_t **follow_up)
{
    assert (payers && context && answer && follow_up);
    *follow_up = NULL;
    if (answer->code != ML_SEARCH_OK)
        return s_failure (context, answer);
    const char *op = json_string_value (json_object_get (context, "op"));
    if (streq (op, "association-add")) {
        const char *level = json_string_value (json_object_get (context, "level"));
        const char *text = json_string_value (json_object_get (context, "text"));
        int64_t payer_id = json_integer_value (json_object_get (context, "payer_id"));
        if (answer->item_count > 0)
            return ml_payers_association_record (
                payers, payer_id, level, &answer->items[0],
                json_string_value (json_object_get (context, "staff")));
        //  A client or matter with no open invoice may still hold money in trust.
        if (!streq (level, "invoice") &&
            streq (json_string_value (json_object_get (context, "target")), "invoices")) {
            ml_msg_t *next = ml_msg_new (ML_MSG_SEARCH);
            assert (next);
            next->search.deadline_ms =
                (uint32_t)(json_integer_value (json_object_get (context, "deadline_ms")) -
                           S_AGENT_MARGIN_MS);
            next->search.target = 'T';
            next->search.field =
                (uint8_t)ml_field_parse (json_string_value (json_object_get (context, "by")));
            next->search.match = 'E';
            snprintf (next->search.text, sizeof next->search.text, "%s", text);
            next->search.limit = 1;
            json_object_set_new (context, "target", json_string ("trust"));
            *follow_up = next;
            return NULL;
        }
        return ml_admin_error ("firm %s's matter database has no %s %s with an open invoice%s",
                               json_string_value (json_object_get (context, "firm")), level, text,
                               streq (level, "invoice") ? "" : " or a trust ledger");
    }
    const json_t *scope = json_object_get (context, "scope");
    json_t *items = json_array ();
    size_t hidden = 0;
    for (size_t index = 0; index < answer->item_count; index++) {
        const ml_item_t *item = &answer->items[index];
        //  Checked again here: the agent's SQL applied the scope, but a payer's view never
        //  depends on one component alone.
        if (scope && !ml_payers_scope_allows (scope, item)) {
            hidden++;
            continue;
        }
        json_array_append_new (items, ml_finder_item_json (item));
    }
    if (hidden)
        ml_log (ML_LOG_WARNING,
                "firm %s: the agent returned %zu rows outside payer %lld's associations; "
                "they were withheld",
                json_string_value (json_object_get (context, "firm")), hidden,
                (long long)json_integer_value (json_object_get (context, "payer_id")));
    json_t *reply = json_deep_copy (context);
    json_object_del (reply, "scope");
    json_object_del (reply, "op");
    json_object_set_new (reply, "items", items);
    json_object_set_new (reply, "next",
                         answer->next ? json_integer ((json_int_t)answer->next) : json_null ());
    return ml_admin_ok (reply);
}

void ml_finder_test (bool verbose)
{
    printf (" * ml_finder: ");
    char directory[128], error[512], firm_id[64];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    json_t *context = NULL, *reply = NULL;

    //  Bad input: a clear error, no SEARCH.
    const char *bad[] = {
        "{\"op\": \"search\", \"text\": \"smith\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"by\": \"colour\", \"text\": \"x\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"by\": \"client-name\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"text\": \"x\", \"match\": \"regex\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"limit\": 501}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"deadline_ms\": 0}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"date_from\": \"2026-13-01\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"date_from\": \"2026-02-01\", \"date_to\": "
        "\"2026-01-01\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"amount_min\": 5, \"amount_max\": 4}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"target\": \"trust\", \"by\": "
        "\"invoice-number\", \"text\": \"1\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"amount_min\": \"5\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"amount_min\": 5}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"amount_min\": 5, \"amount_currency\": "
        "\"usd\"}",
        "{\"op\": \"search\", \"firm\": \"acme\", \"amount_currency\": \"USD\"}",
        "{\"op\": \"payer-view\"}",
        "{\"op\": \"payer-view\", \"payer_id\": 99}",
        "{\"op\": \"association-add\", \"payer_id\": 1, \"level\": \"galaxy\", \"number\": "
        "\"1\"}",
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        json_t *request = json_loads (bad[index], 0, NULL);
        assert (request);
        ml_msg_t *message =
            ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
        if (message || !reply || json_is_true (json_object_get (reply, "ok")))
            fprintf (stderr, "case %zu: %s\n", index, bad[index]);
        assert (!message && !context && reply);
        assert (json_is_false (json_object_get (reply, "ok")));
        json_decref (reply);
        json_decref (request);
    }

    //  A staff search: the remembered field is used when none is given.
    json_t *request =
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:b}", "op", "search", "firm", "acme", "staff",
                   "alice", "by", "matter-number", "text", "M-1", "remember", 1);
    ml_msg_t *message =
        ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
    assert (message && context && !reply && streq (firm_id, "acme"));
    assert (message->search.field == ML_FIELD_MATTER_NUMBER && message->search.match == 'E');
    assert (!message->search.scoped && message->search.limit == 50);
    ml_msg_destroy (&message);
    json_decref (context);
    json_decref (request);
    request = json_pack ("{s:s, s:s, s:s, s:s}", "op", "search", "firm", "acme", "staff", "alice",
                         "text", "M-");
    message = ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
    assert (message && message->search.field == ML_FIELD_MATTER_NUMBER);

    //  Its answer becomes rows and the next page.
    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    answer->code = ML_SEARCH_OK;
    answer->next = 7;
    ml_item_t *row = ml_msg_add_item (answer);
    row->kind = 'I';
    row->op = 'U';
    row->source_id = 7;
    strcpy (row->invoice_number, "INV-7");
    strcpy (row->client_number, "C-1");
    strcpy (row->matter_number, "M-1");
    strcpy (row->currency, "USD");
    row->total_minor = row->balance_minor = 500;
    ml_msg_t *follow_up = NULL;
    reply = ml_finder_reply (payers, context, answer, &follow_up);
    assert (reply && !follow_up && json_is_true (json_object_get (reply, "ok")));
    assert (json_array_size (json_object_get (reply, "items")) == 1);
    assert (json_integer_value (json_object_get (reply, "next")) == 7);
    json_decref (reply);
    //  A failed search says why.
    answer->code = ML_SEARCH_UNAVAILABLE;
    reply = ml_finder_reply (payers, context, answer, &follow_up);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "cannot reach"));
    json_decref (reply);
    answer->code = ML_SEARCH_OK;
    ml_msg_destroy (&message);
    json_decref (context);
    json_decref (request);

    //  A payer without associations sees nothing, without asking the agent.
    json_t *payer =
        json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Pat", "email", "pat@example.com");
    json_t *added = ml_payers_execute (payers, "payer-add", payer);
    json_decref (payer);
    assert (json_is_true (json_object_get (added, "ok")));
    json_int_t payer_id =
        json_integer_value (json_object_get (json_object_get (added, "payer"), "payer_id"));
    json_decref (added);
    request = json_pack ("{s:s, s:I}", "op", "payer-view", "payer_id", payer_id);
    message = ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
    assert (!message && !context && reply && json_is_true (json_object_get (reply, "ok")));
    assert (json_array_size (json_object_get (reply, "items")) == 0);
    json_decref (reply);

    //  With an invoice-level association: the scope travels, and a row outside it that an
    //  agent returned anyway is withheld.
    ml_item_t associated = *row;
    reply = ml_payers_association_record (payers, payer_id, "invoice", &associated, "alice");
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    message = ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
    assert (message && message->search.scoped == 1);
    assert (message->search.scope_count[ML_SCOPE_INVOICES] == 1);
    row = ml_msg_add_item (answer);
    *row = answer->items[0];
    row->source_id = 8;
    strcpy (row->invoice_number, "INV-8");
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    reply = ml_finder_reply (payers, context, answer, &follow_up);
    ml_log_setup (NULL, saved);
    json_t *items = json_object_get (reply, "items");
    assert (json_array_size (items) == 1);
    assert (
        streq (json_string_value (json_object_get (json_array_get (items, 0), "invoice_number")),
               "INV-7"));
    json_decref (reply);
    ml_msg_destroy (&message);
    json_decref (context);
    json_decref (request);

    //  association-add: a client found in neither invoices nor trust is refused; the
    //  trust ledgers are asked when no open invoice names it.
    request = json_pack ("{s:s, s:I, s:s, s:s}", "op", "association-add", "payer_id", payer_id,
                         "level", "client", "number", "C-9");
    message = ml_finder_request (payers, request, firm_id, sizeof firm_id, &context, &reply);
    assert (message && message->search.field == ML_FIELD_CLIENT_NUMBER);
    ml_msg_clear_items (answer);
    reply = ml_finder_reply (payers, context, answer, &follow_up);
    assert (!reply && follow_up && follow_up->search.target == 'T');
    ml_msg_destroy (&follow_up);
    reply = ml_finder_reply (payers, context, answer, &follow_up);
    assert (reply && !follow_up && json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    ml_msg_destroy (&message);
    json_decref (context);
    json_decref (request);

    ml_msg_destroy (&answer);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
