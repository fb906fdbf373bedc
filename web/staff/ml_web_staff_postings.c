/*  ml_web_staff_postings: Manage Postings (docs/web.md "Manage Postings"): the firm's postings
    by state with filters and pages, and a posting's page (its lines and history, resend, and
    reallocating a rejected posting to invoices the staff member picks).

    Everything goes through the core with the staff session: "postings" (with the filters of
    core/staff/ml_staff_postings.c), "posting", "open-items", "resend", "reallocate". The core
    authorizes (read looks, billing acts), keeps the firm's objects to the firm and checks the
    amounts; this page shows its refusals as they are.
*/
#include "ml_web_staff.h"
#include "ml_money.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PAGE_SIZE    25
#define S_MAX_ROWS     200 //  invoices offered for a reallocation
#define S_UUID_CHARSET "0123456789abcdef-"

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

const char *ml_web_staff_when (const char *iso, char *buf, size_t size)
{
    //  The core writes YYYY-MM-DDTHH:MM:SS.mmmZ; people read "YYYY-MM-DD HH:MM UTC".
    if (iso && strlen (iso) >= 16 && iso[10] == 'T')
        snprintf (buf, size, "%.10s %.5s UTC", iso, iso + 11);
    else
        snprintf (buf, size, "%s", iso && *iso ? iso : "-");
    return buf;
}

const char *ml_web_staff_state_name (const char *state)
{
    static const char *const names[][2] = {
        {"pending", "Pending"},       {"delivered", "Delivered"}, {"posted", "Posted"},
        {"rejected", "Rejected"},     {"reversed", "Reversed"},   {"waiting", "Waiting"},
        {"approved", "Approved"},     {"declined", "Declined"},   {"error", "Failed"},
        {"unknown", "Unknown"},       {"partial", "Partial"},     {"reallocated", "Reallocated"},
        {"unresolved", "To resolve"},
    };
    for (size_t index = 0; state && index < sizeof names / sizeof names[0]; index++)
        if (strcmp (state, names[index][0]) == 0)
            return names[index][1];
    return state && *state ? state : "-";
}

static const char *s_source_name (const char *source)
{
    return strcmp (source, "staff") == 0          ? "Staff entry"
           : strcmp (source, "payment") == 0      ? "Card payment"
           : strcmp (source, "autopay") == 0      ? "Auto-Pay"
           : strcmp (source, "reallocation") == 0 ? "Reallocation"
           : strcmp (source, "reversal") == 0     ? "Refund, void or chargeback"
                                                  : source;
}

bool ml_web_staff_uuid_shape (const char *text)
{
    return text && strlen (text) == 36 && strspn (text, S_UUID_CHARSET) == 36;
}

//  The views: all, then each state; "waiting" is pending and delivered together.
static const char *const s_states[][2] = {
    {"", "All"},
    {"waiting", "Waiting"},
    {"pending", "Pending"},
    {"delivered", "Delivered"},
    {"posted", "Posted"},
    {"rejected", "Rejected"},
    {"unresolved", "To resolve"},
    {"reversed", "Reversed"},
};

static const char *const s_sources[][2] = {
    {"", "Any source"},
    {"staff", "Staff entry"},
    {"payment", "Card payment"},
    {"autopay", "Auto-Pay"},
    {"reallocation", "Reallocation"},
    {"reversal", "Refund, void or chargeback"},
};

//  The list's query, as the page keeps it in links (each value checked before use).
typedef struct {
    const char *state, *client, *source, *from, *to, *min, *max;
    int64_t before;
} s_filter_t;

static const char *s_field (ml_web_exchange_t *exchange, const char *name)
{
    const char *value = ml_web_form_get (exchange->query, name);
    return value ? value : "";
}

//  The link to the list with filter and (when not NULL) state and before changed, into buf.
static const char *s_link (const s_filter_t *filter, const char *state, int64_t before, char *buf,
                           size_t size)
{
    const char *names[] = {"state", "client", "source", "from", "to", "min", "max"};
    const char *values[] = {state ? state : filter->state,
                            filter->client,
                            filter->source,
                            filter->from,
                            filter->to,
                            filter->min,
                            filter->max};
    snprintf (buf, size, "/staff/postings");
    char sep = '?';
    for (size_t index = 0; index < sizeof names / sizeof names[0]; index++) {
        if (!*values[index])
            continue;
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%c%s=", sep, names[index]);
        sep = '&';
        for (const unsigned char *c = (const unsigned char *)values[index]; *c; c++) {
            used = strlen (buf);
            if (strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", *c))
                snprintf (buf + used, size - used, "%c", *c);
            else
                snprintf (buf + used, size - used, "%%%02X", *c);
        }
    }
    if (before > 0) {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%cbefore=%lld", sep, (long long)before);
    }
    return buf;
}

//  An amount typed in a filter: 0 none, 1 read, -1 not an amount. Read as people type
//  amounts everywhere in the app (ml_money_parse), in currency (the firm's deposit accounts').
static int s_amount (const char *text, const char *currency, int64_t *minor)
{
    if (!*text)
        return 0;
    const char *error = NULL;
    return ml_money_parse (text, currency, minor, &error) == 0 && *minor >= 0 ? 1 : -1;
}

//  The currency the firm's amounts are typed in: its first deposit account's (USD when it has
//  none yet), into buf.
static const char *s_currency (ml_web_exchange_t *exchange, const char *token, char *buf,
                               size_t size)
{
    json_t *request = json_pack ("{s:s, s:s}", "op", "account-list", "staff_session", token);
    json_t *reply = request ? ml_web_core_call (exchange->core, request) : NULL;
    json_decref (request);
    const char *currency =
        ml_web_staff_text (json_array_get (json_object_get (reply, "accounts"), 0), "currency");
    snprintf (buf, size, "%s", *currency ? currency : "USD");
    json_decref (reply);
    return buf;
}

static void s_filter_form (ml_web_exchange_t *exchange, const s_filter_t *filter)
{
    ml_web_page_add (exchange,
                     "<form method=\"get\" action=\"/staff/postings\" class=\"filters\" "
                     "aria-label=\"Filter postings\">\n"
                     "<input type=\"hidden\" name=\"state\" value=\"{}\">\n"
                     "<p><label for=\"f-client\">Client number</label>"
                     "<input id=\"f-client\" name=\"client\" type=\"text\" maxlength=\"63\" "
                     "value=\"{}\"></p>\n"
                     "<p><label for=\"f-source\">Source</label><select id=\"f-source\" "
                     "name=\"source\">",
                     filter->state, filter->client);
    for (size_t index = 0; index < sizeof s_sources / sizeof s_sources[0]; index++)
        ml_web_page_add (exchange,
                         strcmp (filter->source, s_sources[index][0]) == 0
                             ? "<option value=\"{}\" selected>{}</option>"
                             : "<option value=\"{}\">{}</option>",
                         s_sources[index][0], s_sources[index][1]);
    ml_web_page_add (exchange,
                     "</select></p>\n"
                     "<p><label for=\"f-from\">From (day)</label><input id=\"f-from\" "
                     "name=\"from\" type=\"date\" value=\"{}\"></p>\n"
                     "<p><label for=\"f-to\">To (day)</label><input id=\"f-to\" name=\"to\" "
                     "type=\"date\" value=\"{}\"></p>\n"
                     "<p><label for=\"f-min\">Smallest amount</label><input id=\"f-min\" "
                     "name=\"min\" type=\"text\" inputmode=\"decimal\" maxlength=\"24\" "
                     "value=\"{}\"></p>\n"
                     "<p><label for=\"f-max\">Largest amount</label><input id=\"f-max\" "
                     "name=\"max\" type=\"text\" inputmode=\"decimal\" maxlength=\"24\" "
                     "value=\"{}\"></p>\n"
                     "<p><button type=\"submit\">Filter</button> "
                     "<a href=\"/staff/postings?state={}\">Clear the filters</a></p>\n</form>\n",
                     filter->from, filter->to, filter->min, filter->max, filter->state);
}

void ml_web_staff_page_postings (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    s_filter_t filter = {s_field (exchange, "state"),  s_field (exchange, "client"),
                         s_field (exchange, "source"), s_field (exchange, "from"),
                         s_field (exchange, "to"),     s_field (exchange, "min"),
                         s_field (exchange, "max"),    0};
    const char *before = s_field (exchange, "before");
    if (*before)
        filter.before = strtoll (before, NULL, 10);
    //  A state that is not a view is no view: all of them.
    bool known = false;
    for (size_t index = 0; index < sizeof s_states / sizeof s_states[0]; index++)
        known = known || strcmp (filter.state, s_states[index][0]) == 0;
    if (!known)
        filter.state = "";
    const char *problem = NULL;
    json_t *request = json_pack ("{s:s, s:i}", "op", "postings", "limit", S_PAGE_SIZE + 0);
    //  Always a filtered request (a page start far above any posting number if none): the
    //  core's filtered list is the one with pages and each posting's payment.
    json_object_set_new (request, "before",
                         json_integer (filter.before > 0 ? filter.before : INT64_MAX));
    if (*filter.state)
        json_object_set_new (request, "status", json_string (filter.state));
    if (*filter.client)
        json_object_set_new (request, "client", json_string (filter.client));
    if (*filter.source)
        json_object_set_new (request, "source", json_string (filter.source));
    if (*filter.from)
        json_object_set_new (request, "date_from", json_string (filter.from));
    if (*filter.to)
        json_object_set_new (request, "date_to", json_string (filter.to));
    int64_t minor = 0;
    char currency[16] = "USD";
    if (*filter.min || *filter.max)
        s_currency (exchange, token, currency, sizeof currency);
    int rc = s_amount (filter.min, currency, &minor);
    if (rc > 0)
        json_object_set_new (request, "amount_min_minor", json_integer (minor));
    else if (rc < 0)
        problem = "The smallest amount is not an amount (such as 1,250.00).";
    rc = s_amount (filter.max, currency, &minor);
    if (rc > 0)
        json_object_set_new (request, "amount_max_minor", json_integer (minor));
    else if (rc < 0)
        problem = "The largest amount is not an amount (such as 1,250.00).";
    json_t *reply = NULL;
    if (!problem) {
        reply = ml_web_staff_call (exchange, token, request);
        request = NULL;
        if (!reply) {
            json_decref (session);
            return;
        }
        if (!s_ok (reply)) {
            if (ml_web_staff_answered (exchange, reply)) {
                json_decref (reply);
                json_decref (session);
                return;
            }
            //  A filter the core does not take (a day that does not exist...): its words.
            problem = ml_web_staff_text (reply, "error");
        }
    }
    json_decref (request);
    ml_web_staff_begin (exchange, "Postings", session);
    ml_web_page_add (exchange, "<nav class=\"tabs\" aria-label=\"Postings by state\"><ul>");
    char link[1200];
    for (size_t index = 0; index < sizeof s_states / sizeof s_states[0]; index++) {
        s_link (&filter, s_states[index][0], 0, link, sizeof link);
        ml_web_page_add (
            exchange,
            strcmp (filter.state, s_states[index][0]) == 0
                ? "<li><a href=\"{}\" aria-current=\"page\" data-state=\"{}\">{}</a></li>"
                : "<li><a href=\"{}\" data-state=\"{}\">{}</a></li>",
            link, *s_states[index][0] ? s_states[index][0] : "all", s_states[index][1]);
    }
    ml_web_page_add (exchange, "</ul></nav>\n");
    s_filter_form (exchange, &filter);
    if (problem)
        ml_web_page_message (exchange, "error", problem);
    json_t *rows = json_object_get (reply, "postings");
    if (reply && s_ok (reply) && json_array_size (rows) == 0)
        ml_web_page_message (exchange, "notice", "No postings match.");
    else if (reply && s_ok (reply)) {
        ml_web_page_add (exchange,
                         "<table class=\"postings\">\n<caption class=\"visually-hidden\">"
                         "Postings, newest first</caption>\n<thead><tr>"
                         "<th scope=\"col\">Date</th><th scope=\"col\">State</th>"
                         "<th scope=\"col\">Client</th><th scope=\"col\">Payer</th>"
                         "<th scope=\"col\">Source</th><th scope=\"col\" class=\"amount\">Amount"
                         "</th><th scope=\"col\">Matter system</th></tr></thead>\n<tbody>\n");
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            char when[40], money[64], href[80];
            const char *uuid = ml_web_staff_text (row, "posting_uuid");
            const char *status = ml_web_staff_text (row, "status");
            const char *settled = ml_web_staff_text (row, "settled");
            snprintf (href, sizeof href, "/staff/postings/%s", uuid);
            const char *answer = *ml_web_staff_text (row, "reason")
                                     ? ml_web_staff_text (row, "reason")
                                     : ml_web_staff_text (row, "receipt_id");
            ml_web_page_add (
                exchange,
                "<tr data-posting=\"{}\"><td data-label=\"Date\"><a href=\"{}\">{}</a></td>"
                "<td data-label=\"State\"><span class=\"status state-{}\">{}</span>{}{}</td>"
                "<td data-label=\"Client\">{}</td><td data-label=\"Payer\">{}</td>"
                "<td data-label=\"Source\">{}</td><td data-label=\"Amount\" class=\"amount\">{}"
                "</td><td data-label=\"Matter system\">{}</td></tr>\n",
                uuid, href,
                ml_web_staff_when (ml_web_staff_text (row, "created_at"), when, sizeof when),
                status, ml_web_staff_state_name (status),
                //  A rejection dealt with says how: its money reallocated or given back.
                *settled ? " <span class=\"settled\">" : "",
                strcmp (settled, "reallocated") == 0 ? "(reallocated)</span>"
                : strcmp (settled, "refunded") == 0  ? "(money given back)</span>"
                                                     : "",
                ml_web_staff_text (row, "client_number"), ml_web_staff_text (row, "payer_name"),
                s_source_name (ml_web_staff_text (row, "source")),
                ml_web_page_money (row, "amount_minor", ml_web_staff_text (row, "currency"), money,
                                   sizeof money),
                answer);
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n<nav class=\"pages\" "
                                   "aria-label=\"Pages\"><p>");
        if (filter.before > 0)
            ml_web_page_add (exchange, "<a href=\"{}\" rel=\"first\">Newest postings</a> ",
                             s_link (&filter, NULL, 0, link, sizeof link));
        json_t *next = json_object_get (reply, "next_before");
        if (json_is_integer (next))
            ml_web_page_add (exchange, "<a href=\"{}\" rel=\"next\">Older postings</a>",
                             s_link (&filter, NULL, json_integer_value (next), link, sizeof link));
        ml_web_page_add (exchange, "</p></nav>\n");
    }
    ml_web_staff_end (exchange);
    json_decref (reply);
    json_decref (session);
}

//  ---------------------------------------------------------------------------------------
//  A posting's page.

//  The posting's payment (a card charge's, or a reversal's), "" when none, into buf. false
//  after the 503 page (the core away).
static bool s_payment_of (ml_web_exchange_t *exchange, const char *token, const char *uuid,
                          char *buf, size_t size)
{
    *buf = 0;
    json_t *reply = ml_web_staff_call (
        exchange, token, json_pack ("{s:s, s:s}", "op", "postings", "posting_uuid", uuid));
    if (reply && s_ok (reply))
        snprintf (buf, size, "%s",
                  ml_web_staff_text (json_array_get (json_object_get (reply, "postings"), 0),
                                     "payment_uuid"));
    json_decref (reply);
    return reply != NULL;
}

//  Whether the posting may still be reallocated: rejected, not a reversal, not reallocated.
static bool s_reallocatable (json_t *posting)
{
    if (strcmp (ml_web_staff_text (posting, "status"), "rejected") != 0 ||
        *ml_web_staff_text (posting, "reverses"))
        return false;
    size_t index;
    json_t *event;
    json_array_foreach (json_object_get (posting, "history"), index, event)
    {
        if (strcmp (ml_web_staff_text (event, "status"), "reallocated") == 0)
            return false;
    }
    return true;
}

//  The reallocation form: the client's open invoices (or, for a trust posting, the client's
//  matters) with an amount each; typed (a form sent back with an error) keeps what was typed.
static bool s_reallocate_form (ml_web_exchange_t *exchange, const char *token, json_t *session,
                               json_t *posting, bool trust, ml_web_form_t *typed)
{
    const char *uuid = ml_web_staff_text (posting, "posting_uuid");
    const char *currency = ml_web_staff_text (posting, "currency");
    json_t *items = ml_web_staff_call (exchange, token,
                                       json_pack ("{s:s, s:s}", "op", "open-items", "client",
                                                  ml_web_staff_text (posting, "client_number")));
    if (!items)
        return false; //  the 503 page

    char money[64];
    ml_web_page_add (exchange,
                     "<section class=\"reallocate\" aria-labelledby=\"reallocate-heading\">\n"
                     "<h2 id=\"reallocate-heading\">Reallocate</h2>\n"
                     "<p>The money was received all the same: put exactly <strong>{}</strong> "
                     "on {} of client {}. The payment service checks each amount against what "
                     "is open now.</p>\n",
                     ml_web_page_money (posting, "amount_minor", currency, money, sizeof money),
                     trust ? "trust deposits to matters" : "open invoices",
                     ml_web_staff_text (posting, "client_number"));
    json_t *rows = json_object_get (items, "items");
    if (!s_ok (items) || json_array_size (rows) == 0) {
        ml_web_page_message (exchange, "notice",
                             s_ok (items) ? "The client has no open invoices now."
                                          : ml_web_staff_text (items, "error"));
        ml_web_page_add (exchange, "</section>\n");
        json_decref (items);
        return true;
    }
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/postings/{}\" class=\"reallocate\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"action\" value=\"reallocate\">\n"
                     "<table class=\"lines\">\n<thead><tr><th scope=\"col\">{}</th>"
                     "<th scope=\"col\">Matter</th><th scope=\"col\" class=\"amount\">Available"
                     "</th><th scope=\"col\">Amount to apply</th></tr></thead>\n<tbody>\n",
                     uuid, ml_web_staff_csrf (session), trust ? "Matter number" : "Invoice");
    size_t index, shown = 0;
    json_t *item;
    json_array_foreach (rows, index, item)
    {
        if (shown == S_MAX_ROWS)
            break;
        const char *matter = ml_web_staff_text (item, "matter_number");
        //  Trust: one row per matter (the items come sorted by invoice, so skip repeats).
        if (trust) {
            bool seen = false;
            for (size_t earlier = 0; earlier < index && !seen; earlier++)
                seen = strcmp (ml_web_staff_text (json_array_get (rows, earlier), "matter_number"),
                               matter) == 0;
            if (seen || !*matter)
                continue;
        }
        const char *reference = trust ? matter : ml_web_staff_text (item, "invoice_number");
        char field[32], line[32];
        snprintf (field, sizeof field, "amount-%zu", shown);
        snprintf (line, sizeof line, "line-%zu", shown);
        const char *value = typed ? ml_web_form_get (typed, field) : NULL;
        ml_web_page_add (
            exchange,
            "<tr><th scope=\"row\" data-label=\"{}\">{}<input type=\"hidden\" name=\"{}\" "
            "value=\"{}\"></th><td data-label=\"Matter\">{}</td>"
            "<td data-label=\"Available\" class=\"amount\">{}</td>"
            "<td data-label=\"Amount to apply\"><label class=\"visually-hidden\" for=\"{}\">"
            "Amount for {}</label><input id=\"{}\" name=\"{}\" type=\"text\" "
            "inputmode=\"decimal\" maxlength=\"24\" value=\"{}\" "
            "data-reference=\"{}\"></td></tr>\n",
            trust ? "Matter number" : "Invoice", reference, line, reference,
            ml_web_staff_text (item, "matter_description"),
            trust ? "-"
                  : ml_web_page_money (item, "available_minor",
                                       ml_web_staff_text (item, "currency"), money, sizeof money),
            field, reference, field, field, value ? value : "", reference);
        shown++;
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n<button type=\"submit\">Reallocate</button>\n"
                               "</form>\n</section>\n");
    json_decref (items);
    return true;
}

static void s_posting_page (ml_web_exchange_t *exchange, const char *token, json_t *session,
                            const char *uuid, const char *error, ml_web_form_t *typed)
{
    json_t *reply = ml_web_staff_call (
        exchange, token, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid));
    if (!reply)
        return;
    if (!s_ok (reply)) {
        //  Another firm's posting, or none: 404, as for a page that does not exist.
        if (strncmp (ml_web_staff_text (reply, "error"), "no posting", 10) == 0)
            ml_web_staff_not_found (exchange);
        else
            ml_web_staff_refused (exchange, reply);
        json_decref (reply);
        return;
    }
    json_t *posting = json_object_get (reply, "posting");
    char payment[64];
    if (!s_payment_of (exchange, token, uuid, payment, sizeof payment)) {
        json_decref (reply);
        return;
    }
    const char *status = ml_web_staff_text (posting, "status");
    const char *currency = ml_web_staff_text (posting, "currency");
    bool billing = ml_web_staff_role_allows (session, "billing");
    char money[64], when[40], heading[80], attempts[24];
    snprintf (attempts, sizeof attempts, "%lld",
              (long long)json_integer_value (json_object_get (posting, "attempts")));
    snprintf (heading, sizeof heading, "Posting %.8s", uuid);
    ml_web_staff_begin (exchange, heading, session);
    ml_web_page_add (exchange, "<p><a href=\"/staff/postings\">All postings</a></p>\n");
    const char *done = ml_web_form_get (exchange->query, "done");
    if (done && strcmp (done, "resent") == 0)
        ml_web_page_message (exchange, "notice",
                             "Sent again to the matter system; it answers with its stored result.");
    else if (done && strcmp (done, "reallocated") == 0)
        ml_web_page_message (
            exchange, "notice",
            "Reallocated: this is the new posting. It goes to the matter system now.");
    ml_web_page_message (exchange, "error", error);
    ml_web_page_add (
        exchange,
        "<dl class=\"receipt posting\">"
        "<dt>State</dt><dd><span class=\"status state-{}\" id=\"posting-state\">{}</span></dd>"
        "<dt>Amount</dt><dd class=\"amount\">{}</dd>"
        "<dt>Client</dt><dd>{}</dd><dt>Payer</dt><dd>{} {}</dd>"
        "<dt>Deposit account</dt><dd>{}</dd><dt>Source</dt><dd>{}</dd>"
        "<dt>Received on</dt><dd>{}</dd><dt>Matter system's answer</dt><dd id=\"posting-answer\">{}"
        "</dd><dt>Sent</dt><dd>{} time(s)</dd><dt>Posting ID</dt><dd><code>{}</code></dd>",
        status, ml_web_staff_state_name (status),
        ml_web_page_money (posting, "amount_minor", currency, money, sizeof money),
        ml_web_staff_text (posting, "client_number"), ml_web_staff_text (posting, "payer_name"),
        ml_web_staff_text (posting, "payer_email"), ml_web_staff_text (posting, "account_number"),
        s_source_name (ml_web_staff_text (posting, "source")),
        ml_web_staff_text (posting, "received_on"),
        *ml_web_staff_text (posting, "reason") ? ml_web_staff_text (posting, "reason")
                                               : (*ml_web_staff_text (posting, "receipt_id")
                                                      ? ml_web_staff_text (posting, "receipt_id")
                                                      : "-"),
        attempts, uuid);
    if (*payment)
        ml_web_page_add (
            exchange,
            "<dt>Payment</dt><dd><a href=\"/staff/payments/{}\" class=\"payment-link\">"
            "The card payment</a></dd>",
            payment);
    const char *reverses = ml_web_staff_text (posting, "reverses");
    if (*reverses)
        ml_web_page_add (exchange,
                         "<dt>Gives back from</dt><dd><a href=\"/staff/postings/{}\">Posting {}</a>"
                         "</dd>",
                         reverses, reverses);
    if (*ml_web_staff_text (posting, "ar_message"))
        ml_web_page_add (exchange, "<dt>A/R message</dt><dd>{}</dd>",
                         ml_web_staff_text (posting, "ar_message"));
    ml_web_page_add (exchange, "</dl>\n<h2>Lines</h2>\n<table class=\"lines\">\n<thead><tr>"
                               "<th scope=\"col\">#</th><th scope=\"col\">Kind</th>"
                               "<th scope=\"col\">Reference</th><th scope=\"col\" "
                               "class=\"amount\">Amount</th></tr></thead>\n<tbody>\n");
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (posting, "lines"), index, item)
    {
        char number[24];
        snprintf (number, sizeof number, "%lld",
                  (long long)json_integer_value (json_object_get (item, "line_no")));
        ml_web_page_add (exchange,
                         "<tr><td data-label=\"#\">{}</td><td data-label=\"Kind\">{}</td>"
                         "<td data-label=\"Reference\">{}</td><td data-label=\"Amount\" "
                         "class=\"amount\">{}</td></tr>\n",
                         number,
                         strcmp (ml_web_staff_text (item, "kind"), "T") == 0 ? "Trust deposit"
                                                                             : "Invoice",
                         ml_web_staff_text (item, "reference"),
                         ml_web_page_money (item, "amount_minor", currency, money, sizeof money));
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n<h2>History</h2>\n<ol class=\"history\">\n");
    json_array_foreach (json_object_get (posting, "history"), index, item)
    {
        const char *detail = ml_web_staff_text (item, "detail");
        const char *state = ml_web_staff_text (item, "status");
        ml_web_page_add (exchange, "<li><span class=\"when\">{}</span> <strong>{}</strong> ",
                         ml_web_staff_when (ml_web_staff_text (item, "at"), when, sizeof when),
                         ml_web_staff_state_name (state));
        //  "reallocated" "as UUID by STAFF": the next try of the chain, as a link.
        if (strcmp (state, "reallocated") == 0 && strncmp (detail, "as ", 3) == 0 &&
            strlen (detail) >= 39) {
            char next[37];
            snprintf (next, sizeof next, "%.36s", detail + 3);
            if (ml_web_staff_uuid_shape (next)) {
                ml_web_page_add (exchange, "as <a href=\"/staff/postings/{}\">{}</a>{}</li>\n",
                                 next, next, detail + 39);
                continue;
            }
        }
        ml_web_page_add (exchange, "{}</li>\n", detail);
    }
    ml_web_page_add (exchange, "</ol>\n");
    if (billing && strcmp (status, "posted") != 0 && strcmp (status, "reversed") != 0)
        ml_web_page_add (
            exchange,
            "<form method=\"post\" action=\"/staff/postings/{}\" class=\"inline resend\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
            "<input type=\"hidden\" name=\"action\" value=\"resend\">"
            "<button type=\"submit\">Send again to the matter system</button></form>\n",
            uuid, ml_web_staff_csrf (session));
    if (billing && s_reallocatable (posting)) {
        bool trust = json_array_size (json_object_get (posting, "lines")) > 0 &&
                     strcmp (ml_web_staff_text (
                                 json_array_get (json_object_get (posting, "lines"), 0), "kind"),
                             "T") == 0;
        if (!s_reallocate_form (exchange, token, session, posting, trust, typed)) {
            json_decref (reply);
            return;
        }
    }
    ml_web_staff_end (exchange);
    json_decref (reply);
}

//  The reallocation's lines from the form: each line-N with a non-empty amount-N, in the
//  posting's currency. NULL with problem set when an amount is not one.
static json_t *s_lines (ml_web_exchange_t *exchange, const char *currency, bool trust,
                        char *problem, size_t size)
{
    json_t *lines = json_array ();
    for (size_t index = 0; index < S_MAX_ROWS; index++) {
        char field[32], line[32];
        snprintf (field, sizeof field, "amount-%zu", index);
        snprintf (line, sizeof line, "line-%zu", index);
        const char *reference = ml_web_form_get (exchange->form, line);
        const char *amount = ml_web_form_get (exchange->form, field);
        if (!reference)
            break;
        if (!amount || !*amount)
            continue;
        int64_t minor = 0;
        const char *error = NULL;
        if (ml_money_parse (amount, currency, &minor, &error) != 0 || minor <= 0) {
            snprintf (problem, size, "The amount for %s is not an amount above zero: %s", reference,
                      amount);
            json_decref (lines);
            return NULL;
        }
        json_array_append_new (lines, json_pack ("{s:s, s:I}", trust ? "trust" : "invoice",
                                                 reference, "amount_minor", (json_int_t)minor));
    }
    if (json_array_size (lines) == 0) {
        snprintf (problem, size, "Type an amount for at least one %s.",
                  trust ? "matter" : "invoice");
        json_decref (lines);
        return NULL;
    }
    return lines;
}

static void s_posting_post (ml_web_exchange_t *exchange, const char *token, json_t *session,
                            const char *uuid)
{
    const char *action = ml_web_form_get (exchange->form, "action");
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *request = json_pack ("{s:s, s:s}", "posting_uuid", uuid, "csrf", csrf ? csrf : "");
    char problem[300] = "";
    if (action && strcmp (action, "resend") == 0)
        json_object_set_new (request, "op", json_string ("resend"));
    else if (action && strcmp (action, "reallocate") == 0) {
        //  The posting's currency and kind: the core's, not the form's.
        json_t *original = ml_web_staff_call (
            exchange, token, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid));
        if (!original) {
            json_decref (request);
            return;
        }
        if (!s_ok (original)) {
            ml_web_staff_refused (exchange, original);
            json_decref (original);
            json_decref (request);
            return;
        }
        json_t *posting = json_object_get (original, "posting");
        json_t *first = json_array_get (json_object_get (posting, "lines"), 0);
        bool trust = strcmp (ml_web_staff_text (first, "kind"), "T") == 0;
        json_t *lines = s_lines (exchange, ml_web_staff_text (posting, "currency"), trust, problem,
                                 sizeof problem);
        json_decref (original);
        if (!lines) {
            json_decref (request);
            s_posting_page (exchange, token, session, uuid, problem, exchange->form);
            return;
        }
        json_object_set_new (request, "op", json_string ("reallocate"));
        json_object_set_new (request, "lines", lines);
    } else {
        json_decref (request);
        ml_web_page_error (exchange, 400, "That is not something this page does.");
        return;
    }
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply)
        return;
    if (ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        return;
    }
    char location[120];
    if (s_ok (reply) && strcmp (action, "resend") == 0) {
        snprintf (location, sizeof location, "/staff/postings/%s?done=resent", uuid);
        ml_web_page_redirect (exchange, location);
    } else if (s_ok (reply)) {
        const char *moved = ml_web_staff_text (json_object_get (reply, "posting"), "posting_uuid");
        snprintf (location, sizeof location, "/staff/postings/%s?done=reallocated",
                  ml_web_staff_uuid_shape (moved) ? moved : uuid);
        ml_web_page_redirect (exchange, location);
    } else {
        snprintf (problem, sizeof problem, "%s", ml_web_staff_text (reply, "error"));
        s_posting_page (exchange, token, session, uuid, problem, exchange->form);
    }
    json_decref (reply);
}

void ml_web_staff_page_posting (ml_web_exchange_t *exchange)
{
    const char *uuid = exchange->path + strlen ("/staff/postings/");
    if (!ml_web_staff_uuid_shape (uuid)) {
        ml_web_staff_not_found (exchange);
        return;
    }
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") == 0)
        s_posting_post (exchange, token, session, uuid);
    else
        s_posting_page (exchange, token, session, uuid, NULL, NULL);
    json_decref (session);
}

void ml_web_staff_postings_test (void)
{
    assert (ml_web_staff_uuid_shape ("2225af50-89dd-4663-83cd-ec312b50c85e"));
    assert (!ml_web_staff_uuid_shape ("2225AF50-89dd-4663-83cd-ec312b50c85e"));
    assert (!ml_web_staff_uuid_shape ("../x") && !ml_web_staff_uuid_shape (NULL));
    char buf[64];
    assert (strcmp (ml_web_staff_when ("2026-11-22T03:30:14.982Z", buf, sizeof buf),
                    "2026-11-22 03:30 UTC") == 0);
    assert (strcmp (ml_web_staff_when (NULL, buf, sizeof buf), "-") == 0);
    assert (strcmp (ml_web_staff_state_name ("rejected"), "Rejected") == 0);
    //  The list's links keep the filters, escaped for a URL (then for HTML by ml_html).
    s_filter_t filter = {"rejected", "C 1&x", "", "2026-11-01", "", "", "", 0};
    char link[300];
    assert (strcmp (s_link (&filter, NULL, 42, link, sizeof link),
                    "/staff/postings?state=rejected&client=C%201%26x&from=2026-11-01&before=42") ==
            0);
    assert (strcmp (s_link (&filter, "", 0, link, sizeof link),
                    "/staff/postings?client=C%201%26x&from=2026-11-01") == 0);
    //  A path that is not a posting's or payment's UUID is 404 before the core is asked.
    ml_web_exchange_t exchange;
    memset (&exchange, 0, sizeof exchange);
    exchange.method = "GET";
    exchange.path = "/staff/postings/2225AF50-89DD-4663-83CD-EC312B50C85E";
    ml_web_staff_page_posting (&exchange);
    assert (exchange.status == 404);
    ml_html_destroy (&exchange.page);
    exchange.path = "/staff/payments/1234";
    exchange.status = 0;
    ml_web_staff_page_payment (&exchange);
    assert (exchange.status == 404);
    ml_html_destroy (&exchange.page);
    int64_t minor = 0;
    assert (s_amount ("", "USD", &minor) == 0);
    assert (s_amount ("1,250.50", "USD", &minor) == 1 && minor == 125050);
    assert (s_amount ("1,250", "JPY", &minor) == 1 && minor == 1250);
    assert (s_amount ("abc", "USD", &minor) == -1);
}
