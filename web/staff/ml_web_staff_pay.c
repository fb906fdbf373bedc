/*  ml_web_staff_pay: "Make a Payment", steps 1 (Criteria) and 2 (Search), and what the four
    steps share: the staff session, the page frame, the dispatch. See
    include/ml_web_staff_pay.h and docs/web.md, "Make a Payment".

    The web keeps nothing: the selection is the core's (selection ops, one per staff user),
    the default search field too (staff-default). Every request carries the staff session
    and every change its CSRF token; the core decides what the staff member may do and
    fills in their firm.
*/
#include "ml_web_staff_pay_internal.h"
#include "ml_web_staff.h"
#include "ml_log.h"
#include "ml_money.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PAGE_INVOICES 20 //  rows per page: a checkbox each, in one form
#define S_PAGE_TRUST    10 //  a checkbox and a deposit amount each

//  The five fields of step 1 (seed 003), as the core's search names them.
static const char *const s_fields[][2] = {
    {"client-name", "Client name"},       {"client-number", "Client number"},
    {"matter-number", "Matter number"},   {"matter-description", "Matter description"},
    {"invoice-number", "Invoice number"},
};
#define S_FIELDS (sizeof s_fields / sizeof s_fields[0])

//  The search's parameters a page passes on (query string of step 2).
static const char *const s_params[] = {"by",      "text",   "match",      "target",     "date_from",
                                       "date_to", "status", "amount_min", "amount_max", "currency",
                                       "after",   "view",   "go",         NULL};

//  Shared helpers ------------------------------------------------------------------------------

const char *ml_wsp_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

const char *ml_wsp_field (ml_web_exchange_t *exchange, const char *name)
{
    const char *value = ml_web_form_get (exchange->form, name);
    return value ? value : "";
}

const char *ml_wsp_query (ml_web_exchange_t *exchange, const char *name)
{
    const char *value = ml_web_form_get (exchange->query, name);
    return value ? value : "";
}

const char *ml_wsp_csrf (ml_wsp_t *self)
{
    return ml_web_staff_csrf (self->session);
}

json_t *ml_wsp_call (ml_wsp_t *self, const char *op, json_t *request)
{
    if (!request)
        request = json_object ();
    json_object_set_new (request, "op", json_string (op));
    return ml_web_staff_call (self->exchange, self->token, request);
}

void ml_wsp_refused (ml_wsp_t *self, json_t *reply)
{
    ml_web_staff_refused (self->exchange, reply);
}

//  The signed-in staff member who may pay (billing and up), or false after it answered:
//  to sign-in, 503, or 404 for a role that may not pay (as for an unknown page).
static bool s_session (ml_wsp_t *self)
{
    self->session = ml_web_staff_session (self->exchange, self->token, sizeof self->token);
    if (!self->session)
        return false;
    if (!ml_web_staff_role_allows (self->session, "billing")) {
        ml_web_staff_not_found (self->exchange);
        json_decref (self->session);
        self->session = NULL;
        return false;
    }
    return true;
}

void ml_wsp_begin (ml_wsp_t *self, const char *heading, int step)
{
    ml_web_staff_begin (self->exchange, heading, self->session);
    if (step < 1)
        return;
    static const char *const steps[][2] = {{"/staff/pay/criteria", "1. Criteria"},
                                           {"/staff/pay/search", "2. Search"},
                                           {"/staff/pay/allocate", "3. Allocate"},
                                           {"/staff/pay/pay", "4. Pay"}};
    ml_web_page_add (self->exchange,
                     "<nav class=\"account steps\" aria-label=\"Make a Payment\"><ul>");
    for (int index = 0; index < 4; index++)
        ml_web_page_add (self->exchange,
                         index + 1 == step ? "<li><a href=\"{}\" aria-current=\"step\"><strong>"
                                             "{}</strong></a></li>"
                                           : "<li><a href=\"{}\">{}</a></li>",
                         steps[index][0], steps[index][1]);
    ml_web_page_add (self->exchange, "</ul></nav>\n");
}

void ml_wsp_end (ml_wsp_t *self)
{
    ml_web_staff_end (self->exchange);
}

const char *ml_wsp_sentence (const char *error, char *buf, size_t size)
{
    snprintf (buf, size, "%s", error && *error ? error : "the request was refused");
    size_t length = strlen (buf);
    if (*buf >= 'a' && *buf <= 'z')
        *buf = (char)(*buf - 'a' + 'A');
    if (length > 0 && buf[length - 1] != '.' && length + 1 < size) {
        buf[length] = '.';
        buf[length + 1] = 0;
    }
    return buf;
}

int64_t ml_wsp_typed (const char *text, const char *currency, const char **why)
{
    int64_t minor = 0;
    if (!text || !*text) {
        *why = "is empty";
        return -1;
    }
    if (ml_money_parse (text, currency, &minor, why) != 0)
        return -1;
    if (minor <= 0) {
        *why = "must be more than zero";
        return -1;
    }
    return minor;
}

void ml_wsp_form_key (char *buf, size_t size)
{
    unsigned char random[32];
    randombytes_buf (random, sizeof random);
    sodium_bin2base64 (buf, size, random, sizeof random, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

//  Step 1: Criteria -----------------------------------------------------------------------------

static bool s_known_field (const char *field)
{
    for (size_t index = 0; index < S_FIELDS; index++)
        if (strcmp (field, s_fields[index][0]) == 0)
            return true;
    return false;
}

static const char *s_field_label (const char *field)
{
    for (size_t index = 0; index < S_FIELDS; index++)
        if (strcmp (field, s_fields[index][0]) == 0)
            return s_fields[index][1];
    return "Client name";
}

//  The staff user's default field (staff-default), "" for none; false after it answered.
static bool s_default_field (ml_wsp_t *self, char *field, size_t size)
{
    *field = 0;
    //  The core asks every staff-default for the form token, reading or not.
    json_t *reply =
        ml_wsp_call (self, "staff-default", json_pack ("{s:s}", "csrf", ml_wsp_csrf (self)));
    if (!reply)
        return false;
    if (!json_is_true (json_object_get (reply, "ok"))) {
        ml_wsp_refused (self, reply);
        json_decref (reply);
        return false;
    }
    snprintf (field, size, "%s", ml_wsp_text (reply, "field"));
    json_decref (reply);
    return true;
}

//  The staff user's selection (the core's "selection" reply), or NULL after it answered.
static json_t *s_selection (ml_wsp_t *self)
{
    json_t *reply = ml_wsp_call (self, "selection", NULL);
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        ml_wsp_refused (self, reply);
        json_decref (reply);
        return NULL;
    }
    return reply;
}

void ml_wsp_criteria (ml_wsp_t *self)
{
    ml_web_exchange_t *exchange = self->exchange;
    char field[40];
    if (!s_default_field (self, field, sizeof field))
        return;
    if (strcmp (exchange->method, "POST") == 0) {
        const char *chosen = ml_wsp_field (exchange, "by");
        const char *target = ml_wsp_field (exchange, "target");
        bool remember = *ml_wsp_field (exchange, "remember") != 0;
        if (!s_known_field (chosen))
            chosen = "client-name";
        if (strcmp (target, "trust") != 0)
            target = "invoices";
        //  "Use this every time" is the core's default field: kept, or forgotten when unticked.
        if (remember || *field) {
            json_t *reply = ml_wsp_call (self, "staff-default",
                                         json_pack ("{s:s, s:s}", "field", remember ? chosen : "",
                                                    "csrf", ml_wsp_field (exchange, "csrf")));
            if (!reply)
                return;
            if (!json_is_true (json_object_get (reply, "ok"))) {
                ml_wsp_refused (self, reply);
                json_decref (reply);
                return;
            }
            json_decref (reply);
        }
        char location[200];
        snprintf (location, sizeof location, "/staff/pay/search?by=%s&target=%s", chosen, target);
        ml_web_page_redirect (exchange, location);
        return;
    }
    json_t *selection = s_selection (self);
    if (!selection)
        return;
    const char *by = *ml_wsp_query (exchange, "by") ? ml_wsp_query (exchange, "by") : field;
    ml_wsp_begin (self, "Make a Payment: search criteria", 1);
    size_t held = json_array_size (json_object_get (selection, "items"));
    if (held > 0) {
        char count[32];
        snprintf (count, sizeof count, "%zu", held);
        ml_web_page_add (exchange,
                         "<p class=\"notice\" id=\"selection-kept\">Your selection holds {} "
                         "line(s). It is kept while you change the criteria: new searches "
                         "add to it. <a href=\"/staff/pay/search?view=selected\">See the "
                         "selection</a>.</p>\n",
                         count);
    }
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/pay/criteria\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<fieldset><legend>Search by</legend>\n",
                     ml_wsp_csrf (self));
    for (size_t index = 0; index < S_FIELDS; index++) {
        bool checked = *by ? strcmp (by, s_fields[index][0]) == 0 : index == 0;
        ml_web_page_add (exchange,
                         "<p><input type=\"radio\" name=\"by\" id=\"by-{}\" value=\"{}\"{}>"
                         "<label for=\"by-{}\">{}</label></p>\n",
                         s_fields[index][0], s_fields[index][0], checked ? " checked" : "",
                         s_fields[index][0], s_fields[index][1]);
    }
    bool trust = strcmp (ml_wsp_query (exchange, "target"), "trust") == 0;
    ml_web_page_add (
        exchange,
        "</fieldset>\n<fieldset><legend>Look for</legend>\n"
        "<p><input type=\"radio\" name=\"target\" id=\"target-invoices\" value=\"invoices\"{}>"
        "<label for=\"target-invoices\">Open invoices</label></p>\n"
        "<p><input type=\"radio\" name=\"target\" id=\"target-trust\" value=\"trust\"{}>"
        "<label for=\"target-trust\">Trust ledgers</label></p>\n</fieldset>\n"
        "<p><input type=\"checkbox\" name=\"remember\" id=\"remember\" value=\"1\"{}>"
        "<label for=\"remember\">Use this every time (go straight to step 2 next time)</label>"
        "</p>\n<button type=\"submit\">Continue to search</button>\n</form>\n",
        trust ? "" : " checked", trust ? " checked" : "", *field ? " checked" : "");
    ml_wsp_end (self);
    json_decref (selection);
}

//  Step 2: Search -------------------------------------------------------------------------------

//  Percent-encode value onto buf (at most size, always terminated).
static void s_encode (char *buf, size_t size, const char *value)
{
    size_t used = strlen (buf);
    for (const unsigned char *cursor = (const unsigned char *)value; *cursor; cursor++) {
        char piece[4];
        if ((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
            (*cursor >= '0' && *cursor <= '9') || strchr ("-_.~", *cursor))
            snprintf (piece, sizeof piece, "%c", *cursor);
        else
            snprintf (piece, sizeof piece, "%%%02X", *cursor);
        size_t length = strlen (piece);
        if (used + length + 1 > size)
            return;
        memcpy (buf + used, piece, length + 1);
        used += length;
    }
}

//  The query string of the search in query, with name set to value (NULL or "" drops it).
static void s_query (ml_web_form_t *query, const char *name, const char *value, char *buf,
                     size_t size)
{
    *buf = 0;
    for (size_t index = 0; s_params[index]; index++) {
        const char *param = s_params[index];
        const char *given =
            name && strcmp (param, name) == 0 ? value : ml_web_form_get (query, param);
        if (!given || !*given)
            continue;
        if (*buf && strlen (buf) + 2 < size)
            strcat (buf, "&");
        if (strlen (buf) + strlen (param) + 2 < size)
            strcat (strcat (buf, param), "=");
        s_encode (buf, size, given);
    }
}

static const char *s_get (ml_web_form_t *query, const char *name)
{
    const char *value = ml_web_form_get (query, name);
    return value ? value : "";
}

//  The core's search request for the query; NULL with why when a filter cannot be read.
static json_t *s_search_request (ml_web_form_t *query, bool trust, char *why, size_t size)
{
    const char *currency = *s_get (query, "currency") ? s_get (query, "currency") : "USD";
    json_t *request = json_pack ("{s:s, s:i}", "target", trust ? "trust" : "invoices", "limit",
                                 trust ? S_PAGE_TRUST : S_PAGE_INVOICES);
    const char *text = s_get (query, "text");
    if (*text) {
        json_object_set_new (request, "text", json_string (text));
        if (s_known_field (s_get (query, "by")))
            json_object_set_new (request, "by", json_string (s_get (query, "by")));
        const char *match = s_get (query, "match");
        if (!strcmp (match, "exact") || !strcmp (match, "prefix") || !strcmp (match, "contains"))
            json_object_set_new (request, "match", json_string (match));
    }
    const char *dates[] = {"date_from", "date_to"};
    for (size_t index = 0; index < 2 && !trust; index++)
        if (*s_get (query, dates[index]))
            json_object_set_new (request, dates[index], json_string (s_get (query, dates[index])));
    const char *status = s_get (query, "status");
    if (!trust && (!strcmp (status, "overdue") || !strcmp (status, "current")))
        json_object_set_new (request, "status", json_string (status));
    const char *bounds[][2] = {{"amount_min", "Balance from"}, {"amount_max", "Balance to"}};
    for (size_t index = 0; index < 2; index++) {
        const char *typed = s_get (query, bounds[index][0]);
        if (!*typed)
            continue;
        int64_t minor = 0;
        const char *problem = NULL;
        if (ml_money_parse (typed, currency, &minor, &problem) != 0 || minor < 0) {
            snprintf (why, size, "%s: %s.", bounds[index][1],
                      problem ? problem : "must not be negative");
            json_decref (request);
            return NULL;
        }
        json_object_set_new (request, bounds[index][0], json_integer (minor));
        json_object_set_new (request, "amount_currency", json_string (currency));
    }
    const char *after = s_get (query, "after");
    if (*after && strspn (after, "0123456789") == strlen (after) && strlen (after) < 16)
        json_object_set_new (request, "after", json_integer (strtoll (after, NULL, 10)));
    return request;
}

//  Whether the selection holds kind ("invoice"/"trust") number; its amount in *amount.
static bool s_selected (json_t *selection, const char *kind, const char *number, int64_t *amount)
{
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (selection, "items"), index, item)
    {
        if (strcmp (ml_wsp_text (item, "kind"), kind) == 0 &&
            strcmp (ml_wsp_text (item, "number"), number) == 0) {
            if (amount)
                *amount = json_integer_value (json_object_get (item, "amount_minor"));
            return true;
        }
    }
    return false;
}

//  Whether a column filter is set (its fold then starts open).
static bool s_filtered (ml_web_form_t *query)
{
    const char *status = s_get (query, "status");
    return *s_get (query, "date_from") || *s_get (query, "date_to") ||
           *s_get (query, "amount_min") || *s_get (query, "amount_max") ||
           (*status && strcmp (status, "any") != 0);
}

static void s_search_form (ml_wsp_t *self, ml_web_form_t *query, bool trust)
{
    ml_web_exchange_t *exchange = self->exchange;
    const char *by = s_known_field (s_get (query, "by")) ? s_get (query, "by") : "client-name";
    ml_web_page_add (exchange,
                     "<form method=\"get\" action=\"/staff/pay/search\" class=\"stack\" "
                     "id=\"search-form\">\n"
                     "<label for=\"target\">Look for</label>\n<select id=\"target\" "
                     "name=\"target\"><option value=\"invoices\">Open invoices</option>"
                     "<option value=\"trust\"{}>Trust ledgers</option></select>\n"
                     "<label for=\"by\">Search by</label>\n<select id=\"by\" name=\"by\">\n",
                     trust ? " selected" : "");
    for (size_t index = 0; index < S_FIELDS; index++)
        ml_web_page_add (exchange, "<option value=\"{}\"{}>{}</option>\n", s_fields[index][0],
                         strcmp (by, s_fields[index][0]) == 0 ? " selected" : "",
                         s_fields[index][1]);
    const char *match = s_get (query, "match");
    ml_web_page_add (
        exchange,
        "</select>\n<label for=\"text\">{} (empty: every {})</label>\n"
        "<input type=\"text\" id=\"text\" name=\"text\" maxlength=\"255\" value=\"{}\">\n"
        "<label for=\"match\">Match</label>\n<select id=\"match\" name=\"match\">"
        "<option value=\"\">Usual for the field</option>"
        "<option value=\"exact\"{}>Exactly</option>"
        "<option value=\"prefix\"{}>Starts with</option>"
        "<option value=\"contains\"{}>Contains</option></select>\n"
        "<details class=\"filters\"{}><summary>Column filters</summary>\n"
        "<fieldset><legend>Filter the results by column</legend>\n",
        s_field_label (by), trust ? "trust ledger" : "open invoice", s_get (query, "text"),
        strcmp (match, "exact") ? "" : " selected", strcmp (match, "prefix") ? "" : " selected",
        strcmp (match, "contains") ? "" : " selected", s_filtered (query) ? " open" : "");
    if (!trust) {
        const char *status = s_get (query, "status");
        ml_web_page_add (exchange,
                         "<label for=\"date_from\">Invoice date from</label>\n"
                         "<input type=\"date\" id=\"date_from\" name=\"date_from\" value=\"{}\">\n"
                         "<label for=\"date_to\">Invoice date to</label>\n"
                         "<input type=\"date\" id=\"date_to\" name=\"date_to\" value=\"{}\">\n"
                         "<label for=\"status\">Due</label>\n<select id=\"status\" name=\"status\">"
                         "<option value=\"any\">Any</option>"
                         "<option value=\"overdue\"{}>Overdue</option>"
                         "<option value=\"current\"{}>Not yet due</option></select>\n",
                         s_get (query, "date_from"), s_get (query, "date_to"),
                         strcmp (status, "overdue") ? "" : " selected",
                         strcmp (status, "current") ? "" : " selected");
    }
    ml_web_page_add (
        exchange,
        "<label for=\"amount_min\">Balance from</label>\n"
        "<input type=\"text\" inputmode=\"decimal\" id=\"amount_min\" name=\"amount_min\" "
        "value=\"{}\">\n"
        "<label for=\"amount_max\">Balance to</label>\n"
        "<input type=\"text\" inputmode=\"decimal\" id=\"amount_max\" name=\"amount_max\" "
        "value=\"{}\">\n"
        "<label for=\"currency\">Currency of the balances</label>\n"
        "<input type=\"text\" id=\"currency\" name=\"currency\" maxlength=\"3\" value=\"{}\">\n"
        "</fieldset>\n</details>\n<button type=\"submit\" name=\"go\" value=\"1\">Search"
        "</button>\n</form>\n",
        s_get (query, "amount_min"), s_get (query, "amount_max"),
        *s_get (query, "currency") ? s_get (query, "currency") : "USD");
}

//  The "Current search / Selected" switch.
static void s_switch (ml_wsp_t *self, ml_web_form_t *query, bool selected_view, size_t held)
{
    char current[1200], selected[1200], count[32];
    s_query (query, "view", "", current, sizeof current);
    s_query (query, "view", "selected", selected, sizeof selected);
    snprintf (count, sizeof count, "%zu", held);
    ml_web_page_add (self->exchange,
                     "<nav class=\"account view\" aria-label=\"Show\"><ul>"
                     "<li><a id=\"view-current\" href=\"/staff/pay/search?{}\"{}>Current "
                     "search</a></li>"
                     "<li><a id=\"view-selected\" href=\"/staff/pay/search?{}\"{}>Selected (<span "
                     "id=\"selected-count\">{}</span>)</a></li></ul></nav>\n",
                     current, selected_view ? "" : " aria-current=\"page\"", selected,
                     selected_view ? " aria-current=\"page\"" : "", count);
}

//  The selection as a table, each line with a Remove button.
static void s_selected_view (ml_wsp_t *self, ml_web_form_t *query, json_t *selection)
{
    ml_web_exchange_t *exchange = self->exchange;
    json_t *items = json_object_get (selection, "items");
    char back[1200];
    s_query (query, NULL, NULL, back, sizeof back);
    if (json_array_size (items) == 0) {
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing is selected yet. Search, check "
                                   "the lines to pay and add them.</p>\n");
        return;
    }
    ml_web_page_add (exchange, "<table id=\"selected\"><caption class=\"visually-hidden\">"
                               "Selected lines</caption><thead><tr><th scope=\"col\">Line</th>"
                               "<th scope=\"col\">Client</th><th scope=\"col\">Matter</th>"
                               "<th scope=\"col\">Invoice date</th>"
                               "<th scope=\"col\" class=\"num\">Available</th>"
                               "<th scope=\"col\"><span class=\"visually-hidden\">Remove</span>"
                               "</th></tr></thead><tbody>\n");
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        bool trust = strcmp (ml_wsp_text (item, "kind"), "trust") == 0;
        const char *currency = ml_wsp_text (item, "currency");
        char available[64], line[120];
        snprintf (line, sizeof line, "%s %s", trust ? "Trust deposit, matter" : "Invoice",
                  ml_wsp_text (item, "number"));
        ml_web_page_money (item, trust ? "amount_minor" : "available_minor", currency, available,
                           sizeof available);
        ml_web_page_add (
            exchange,
            "<tr><th scope=\"row\" data-label=\"Line\">{}</th><td data-label=\"Client\">{} {}</td>"
            "<td data-label=\"Matter\">{}</td><td data-label=\"Invoice date\">{}</td>"
            "<td class=\"num\" data-label=\"{}\">{}</td><td>"
            "<form class=\"inline\" method=\"post\" action=\"/staff/pay/remove\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
            "<input type=\"hidden\" name=\"kind\" value=\"{}\">"
            "<input type=\"hidden\" name=\"number\" value=\"{}\">"
            "<input type=\"hidden\" name=\"back\" value=\"{}\">"
            "<button type=\"submit\" aria-label=\"Remove {}\">Remove</button></form></td></tr>\n",
            line, ml_wsp_text (item, "client_number"), ml_wsp_text (item, "client_name"),
            ml_wsp_text (item, "matter_number"), ml_wsp_text (item, "invoice_date"),
            trust ? "Deposit" : "Available", available, ml_wsp_csrf (self),
            ml_wsp_text (item, "kind"), ml_wsp_text (item, "number"), back, line);
    }
    ml_web_page_add (exchange,
                     "</tbody></table>\n<form class=\"inline\" method=\"post\" "
                     "action=\"/staff/pay/remove\"><input type=\"hidden\" name=\"csrf\" "
                     "value=\"{}\"><input type=\"hidden\" name=\"kind\" value=\"all\">"
                     "<input type=\"hidden\" name=\"back\" value=\"{}\">"
                     "<button type=\"submit\">Clear the selection</button></form>\n",
                     ml_wsp_csrf (self), back);
}

//  One result row's line in the form's "rows" list: kind letter, currency, number.
static void s_row_line (json_t *item, char *buf, size_t size)
{
    bool trust = strcmp (ml_wsp_text (item, "kind"), "trust") == 0;
    snprintf (buf, size, "%c%-3.3s%s", trust ? 't' : 'i', ml_wsp_text (item, "currency"),
              ml_wsp_text (item, trust ? "matter_number" : "invoice_number"));
}

static void s_results (ml_wsp_t *self, ml_web_form_t *query, json_t *found, json_t *selection,
                       bool trust)
{
    ml_web_exchange_t *exchange = self->exchange;
    json_t *items = json_object_get (found, "items");
    if (json_array_size (items) == 0) {
        ml_web_page_add (exchange, "<p class=\"empty\" id=\"no-results\">Nothing matches this "
                                   "search.</p>\n");
        return;
    }
    char back[1200], rows[ML_WEB_FORM_MAX_VALUE] = "";
    s_query (query, NULL, NULL, back, sizeof back);
    ml_web_page_add (
        exchange,
        "<form method=\"post\" action=\"/staff/pay/select\" id=\"select-form\">\n"
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
        "<input type=\"hidden\" name=\"back\" value=\"{}\">\n"
        "<table id=\"results\"><caption class=\"visually-hidden\">Search results</caption>"
        "<thead><tr><th scope=\"col\">Select</th>",
        ml_wsp_csrf (self), back);
    if (trust)
        ml_web_page_add (exchange, "<th scope=\"col\">Matter</th><th scope=\"col\">Client</th>"
                                   "<th scope=\"col\" class=\"num\">In trust</th>"
                                   "<th scope=\"col\">Deposit</th></tr></thead><tbody>\n");
    else
        ml_web_page_add (exchange, "<th scope=\"col\">Invoice</th><th scope=\"col\">Date</th>"
                                   "<th scope=\"col\">Due</th><th scope=\"col\">Client</th>"
                                   "<th scope=\"col\">Matter</th>"
                                   "<th scope=\"col\" class=\"num\">Balance</th></tr></thead>"
                                   "<tbody>\n");
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        if (index >= ML_WSP_MAX_ROWS)
            break;
        char line[200], name[32], id[32], balance[64];
        s_row_line (item, line, sizeof line);
        if (strlen (rows) + strlen (line) + 2 < sizeof rows)
            strcat (strcat (rows, *rows ? "\n" : ""), line);
        snprintf (name, sizeof name, "pick_%zu", index);
        snprintf (id, sizeof id, "%zu", index);
        const char *currency = ml_wsp_text (item, "currency");
        ml_web_page_money (item, "balance_minor", currency, balance, sizeof balance);
        if (trust) {
            int64_t amount = 0;
            const char *matter = ml_wsp_text (item, "matter_number");
            bool held = s_selected (selection, "trust", matter, &amount);
            char deposit[64] = "", amount_name[32];
            if (held)
                ml_money_decimal (amount, ml_money_exponent (currency), deposit, sizeof deposit);
            snprintf (amount_name, sizeof amount_name, "amount_%zu", index);
            ml_web_page_add (
                exchange,
                "<tr><td><input type=\"checkbox\" id=\"{}\" name=\"{}\" value=\"{}\"{}>"
                "<label for=\"{}\" class=\"visually-hidden\">Select matter {}</label></td>"
                "<th scope=\"row\" data-label=\"Matter\">{} <span class=\"small\">{}</span></th>"
                "<td data-label=\"Client\">{} {}</td><td class=\"num\" data-label=\"In trust\">{}"
                "</td><td data-label=\"Deposit\"><label for=\"{}\" class=\"visually-hidden\">"
                "Deposit to matter {} ({})</label><input type=\"text\" inputmode=\"decimal\" "
                "id=\"{}\" name=\"{}\" value=\"{}\"></td></tr>\n",
                name, name, id, held ? " checked" : "", name, matter, matter,
                ml_wsp_text (item, "matter_description"), ml_wsp_text (item, "client_number"),
                ml_wsp_text (item, "client_name"), balance, amount_name, matter, currency,
                amount_name, amount_name, deposit);
        } else {
            const char *invoice = ml_wsp_text (item, "invoice_number");
            bool held = s_selected (selection, "invoice", invoice, NULL);
            ml_web_page_add (
                exchange,
                "<tr><td><input type=\"checkbox\" id=\"{}\" name=\"{}\" value=\"{}\"{}>"
                "<label for=\"{}\" class=\"visually-hidden\">Select invoice {}</label></td>"
                "<th scope=\"row\" data-label=\"Invoice\">{}</th>"
                "<td data-label=\"Date\">{}</td><td data-label=\"Due\">{}</td>"
                "<td data-label=\"Client\">{} {}</td>"
                "<td data-label=\"Matter\">{} <span class=\"small\">{}</span></td>"
                "<td class=\"num\" data-label=\"Balance\">{}</td></tr>\n",
                name, name, id, held ? " checked" : "", name, invoice, invoice,
                ml_wsp_text (item, "invoice_date"), ml_wsp_text (item, "due_date"),
                ml_wsp_text (item, "client_number"), ml_wsp_text (item, "client_name"),
                ml_wsp_text (item, "matter_number"), ml_wsp_text (item, "matter_description"),
                balance);
        }
    }
    ml_web_page_add (exchange,
                     "</tbody></table>\n<input type=\"hidden\" name=\"rows\" value=\"{}\">\n"
                     "<button type=\"submit\" id=\"add-selection\">Update the selection</button>"
                     "\n</form>\n",
                     rows);
    //  Paging: the core's "next" is where the next page starts.
    json_t *next = json_object_get (found, "next");
    bool later = *s_get (query, "after") != 0;
    if (json_is_integer (next) || later) {
        ml_web_page_add (exchange, "<nav aria-label=\"Pages\" class=\"account\"><ul>");
        char link[1200];
        if (later) {
            s_query (query, "after", "", link, sizeof link);
            ml_web_page_add (exchange, "<li><a href=\"/staff/pay/search?{}\">First page</a></li>",
                             link);
        }
        if (json_is_integer (next)) {
            char after[32];
            snprintf (after, sizeof after, "%lld", (long long)json_integer_value (next));
            s_query (query, "after", after, link, sizeof link);
            ml_web_page_add (exchange,
                             "<li><a href=\"/staff/pay/search?{}\" id=\"next-page\">Next "
                             "page</a></li>",
                             link);
        }
        ml_web_page_add (exchange, "</ul></nav>\n");
    }
}

void ml_wsp_search (ml_wsp_t *self, ml_web_form_t *query, const char *error)
{
    ml_web_exchange_t *exchange = self->exchange;
    bool trust = strcmp (s_get (query, "target"), "trust") == 0;
    bool selected_view = strcmp (s_get (query, "view"), "selected") == 0;
    json_t *selection = s_selection (self);
    if (!selection)
        return;
    json_t *found = NULL;
    char why[300] = "";
    if (!selected_view && *s_get (query, "go")) {
        json_t *request = s_search_request (query, trust, why, sizeof why);
        if (request) {
            found = ml_wsp_call (self, "search", request);
            if (!found) {
                json_decref (selection);
                return;
            }
            if (ml_web_staff_answered (exchange, found)) {
                json_decref (found);
                json_decref (selection);
                return;
            }
            if (!json_is_true (json_object_get (found, "ok"))) {
                //  The agent offline, a filter refused: the core's words, the form again.
                ml_wsp_sentence (ml_wsp_text (found, "error"), why, sizeof why);
                json_decref (found);
                found = NULL;
            }
        }
    }
    ml_wsp_begin (self, "Make a Payment: search", 2);
    if (error)
        ml_web_page_message (exchange, "error", error);
    if (*why) {
        exchange->status = 400;
        ml_web_page_message (exchange, "error", why);
    }
    s_search_form (self, query, trust);
    size_t held = json_array_size (json_object_get (selection, "items"));
    s_switch (self, query, selected_view, held);
    if (selected_view)
        s_selected_view (self, query, selection);
    else if (found)
        s_results (self, query, found, selection, trust);
    ml_web_page_add (exchange, "<p><a href=\"/staff/pay/criteria\">Back to step 1: criteria</a> "
                               "(the selection is kept)</p>\n");
    if (held > 0)
        ml_web_page_add (exchange, "<p><a class=\"button\" href=\"/staff/pay/allocate\" "
                                   "id=\"to-allocate\">Continue to step 3: Allocate</a></p>\n");
    ml_wsp_end (self);
    json_decref (found);
    json_decref (selection);
}

//  The search a POST came from (its "back" field), read strictly as a query string.
static ml_web_form_t *s_back (ml_web_exchange_t *exchange)
{
    const char *back = ml_wsp_field (exchange, "back");
    const char *problem = NULL;
    ml_web_form_t *query = ml_web_form_parse (back, strlen (back), &problem);
    return query ? query : ml_web_form_parse ("", 0, &problem);
}

static void s_back_to_search (ml_web_exchange_t *exchange, ml_web_form_t *query)
{
    char rest[1200], location[1300];
    s_query (query, NULL, NULL, rest, sizeof rest);
    snprintf (location, sizeof location, "/staff/pay/search%s%s", *rest ? "?" : "", rest);
    ml_web_page_redirect (exchange, location);
}

//  Add or remove one line; "" or the core's refusal in why. false after it answered.
static bool s_change (ml_wsp_t *self, const char *op, bool trust, const char *number,
                      int64_t amount, char *why, size_t size)
{
    json_t *request = json_pack ("{s:s, s:s}", trust ? "trust" : "invoice", number, "csrf",
                                 ml_wsp_field (self->exchange, "csrf"));
    if (amount > 0)
        json_object_set_new (request, "amount_minor", json_integer (amount));
    json_t *reply = ml_wsp_call (self, op, request);
    if (!reply)
        return false;
    if (ml_web_staff_answered (self->exchange, reply)) {
        json_decref (reply);
        return false;
    }
    if (!json_is_true (json_object_get (reply, "ok"))) {
        char sentence[300];
        ml_wsp_sentence (ml_wsp_text (reply, "error"), sentence, sizeof sentence);
        size_t used = strlen (why);
        snprintf (why + used, size - used, "%s%s", used ? " " : "", sentence);
    }
    json_decref (reply);
    return true;
}

void ml_wsp_select (ml_wsp_t *self)
{
    ml_web_exchange_t *exchange = self->exchange;
    ml_web_form_t *query = s_back (exchange);
    json_t *selection = s_selection (self);
    if (!selection) {
        ml_web_form_destroy (&query);
        return;
    }
    //  Each row the page showed: checked and not held yet is added (a trust deposit also
    //  when its amount changed); unchecked and held is removed.
    char rows[ML_WEB_FORM_MAX_VALUE], why[2000] = "";
    snprintf (rows, sizeof rows, "%s", ml_wsp_field (exchange, "rows"));
    char *save = NULL;
    size_t index = 0;
    bool answered = false;
    for (char *line = strtok_r (rows, "\r\n", &save); line && index < ML_WSP_MAX_ROWS && !answered;
         line = strtok_r (NULL, "\r\n", &save), index++) {
        if (strlen (line) < 5 || (line[0] != 'i' && line[0] != 't'))
            continue;
        bool trust = line[0] == 't';
        char currency[4], name[32];
        snprintf (currency, sizeof currency, "%.3s", line + 1);
        const char *number = line + 4;
        snprintf (name, sizeof name, "pick_%zu", index);
        bool checked = *ml_wsp_field (exchange, name) != 0;
        int64_t held_amount = 0, amount = 0;
        bool held = s_selected (selection, trust ? "trust" : "invoice", number, &held_amount);
        if (checked && trust) {
            snprintf (name, sizeof name, "amount_%zu", index);
            const char *problem = NULL;
            amount = ml_wsp_typed (ml_wsp_field (exchange, name), currency, &problem);
            if (amount < 0) {
                size_t used = strlen (why);
                snprintf (why + used, sizeof why - used,
                          "%sThe deposit to matter %s %s: trust is allocated by hand, give "
                          "its amount.",
                          used ? " " : "", number, problem);
                continue;
            }
        }
        if (checked && (!held || (trust && amount != held_amount)))
            answered = !s_change (self, "selection-add", trust, number, amount, why, sizeof why);
        else if (!checked && held)
            answered = !s_change (self, "selection-remove", trust, number, 0, why, sizeof why);
    }
    json_decref (selection);
    if (!answered && *why) {
        exchange->status = 400;
        ml_wsp_search (self, query, why);
    } else if (!answered)
        s_back_to_search (exchange, query);
    ml_web_form_destroy (&query);
}

void ml_wsp_remove (ml_wsp_t *self)
{
    ml_web_exchange_t *exchange = self->exchange;
    ml_web_form_t *query = s_back (exchange);
    const char *kind = ml_wsp_field (exchange, "kind");
    char why[600] = "";
    bool answered = false;
    if (strcmp (kind, "all") == 0) {
        json_t *reply = ml_wsp_call (self, "selection-clear",
                                     json_pack ("{s:s}", "csrf", ml_wsp_field (exchange, "csrf")));
        answered = !reply || ml_web_staff_answered (exchange, reply);
        if (!answered && !json_is_true (json_object_get (reply, "ok")))
            ml_wsp_sentence (ml_wsp_text (reply, "error"), why, sizeof why);
        json_decref (reply);
    } else
        answered = !s_change (self, "selection-remove", strcmp (kind, "trust") == 0,
                              ml_wsp_field (exchange, "number"), 0, why, sizeof why);
    if (!answered && *why) {
        exchange->status = 400;
        ml_wsp_search (self, query, why);
    } else if (!answered)
        s_back_to_search (exchange, query);
    ml_web_form_destroy (&query);
}

//  Dispatch ------------------------------------------------------------------------------------

void ml_web_staff_pay (ml_web_exchange_t *exchange)
{
    ml_wsp_t self = {exchange, "", NULL};
    const char *step = strncmp (exchange->path, "/staff/pay/", 11) == 0 ? exchange->path + 11 : "";
    bool post = strcmp (exchange->method, "POST") == 0;
    //  What each step answers to; anything else is not a page.
    bool known = (!*step && !post) || !strcmp (step, "criteria") ||
                 (!strcmp (step, "search") && !post) || (!strcmp (step, "select") && post) ||
                 (!strcmp (step, "remove") && post) || !strcmp (step, "allocate") ||
                 !strcmp (step, "pay");
    if (!known) {
        ml_web_page_error (exchange, 404, "There is no such page.");
        return;
    }
    if (!s_session (&self))
        return;
    if (!*step) {
        //  "Use this every time": straight to step 2 with the staff user's field.
        char field[40];
        if (s_default_field (&self, field, sizeof field)) {
            if (*field) {
                char location[120];
                snprintf (location, sizeof location, "/staff/pay/search?by=%s", field);
                ml_web_page_redirect (exchange, location);
            } else
                ml_wsp_criteria (&self);
        }
    } else if (!strcmp (step, "criteria"))
        ml_wsp_criteria (&self);
    else if (!strcmp (step, "search"))
        ml_wsp_search (&self, exchange->query, NULL);
    else if (!strcmp (step, "select"))
        ml_wsp_select (&self);
    else if (!strcmp (step, "remove"))
        ml_wsp_remove (&self);
    else if (!strcmp (step, "allocate"))
        ml_wsp_allocate (&self);
    else
        ml_wsp_pay (&self);
    json_decref (self.session);
}

void ml_web_staff_pay_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_staff_pay: ");
    //  A search's query string is rebuilt from known parameters only, each encoded, so a
    //  "back" field can never put a header or a foreign parameter in a redirect.
    const char *problem = NULL;
    const char *text = "by=client-name&text=King%20%26%0D%0ASet-Cookie%3A&evil=1&after=12";
    ml_web_form_t *query = ml_web_form_parse (text, strlen (text), &problem);
    assert (query);
    char buf[400];
    s_query (query, NULL, NULL, buf, sizeof buf);
    assert (strcmp (buf, "by=client-name&text=King%20%26%0D%0ASet-Cookie%3A&after=12") == 0);
    s_query (query, "after", "", buf, sizeof buf);
    assert (strcmp (buf, "by=client-name&text=King%20%26%0D%0ASet-Cookie%3A") == 0);
    s_query (query, "view", "selected", buf, sizeof buf);
    assert (strstr (buf, "&view=selected"));
    //  A full buffer cuts, never overruns.
    char small[12];
    s_query (query, NULL, NULL, small, sizeof small);
    assert (strlen (small) < sizeof small);
    //  Filters: a balance typed in the currency; a bad one says which.
    char why[200] = "";
    json_t *request = s_search_request (query, false, why, sizeof why);
    assert (request && json_integer_value (json_object_get (request, "after")) == 12);
    assert (!json_object_get (request, "amount_currency"));
    json_decref (request);
    ml_web_form_destroy (&query);
    text = "amount_min=1%2C000.50&amount_max=abc&currency=USD";
    query = ml_web_form_parse (text, strlen (text), &problem);
    request = s_search_request (query, false, why, sizeof why);
    assert (!request && strstr (why, "Balance to"));
    ml_web_form_destroy (&query);
    text = "amount_min=1%2C000.50&date_from=2024-01-01&status=overdue";
    query = ml_web_form_parse (text, strlen (text), &problem);
    request = s_search_request (query, true, why, sizeof why);
    //  Trust ledgers have no dates: those filters are not sent.
    assert (request && json_integer_value (json_object_get (request, "amount_min")) == 100050);
    assert (!json_object_get (request, "date_from") && !json_object_get (request, "status"));
    assert (strcmp (json_string_value (json_object_get (request, "amount_currency")), "USD") == 0);
    json_decref (request);
    ml_web_form_destroy (&query);
    //  The column filters' fold is open only when one is set.
    text = "status=any&text=x";
    query = ml_web_form_parse (text, strlen (text), &problem);
    assert (!s_filtered (query));
    ml_web_form_destroy (&query);
    text = "status=overdue";
    query = ml_web_form_parse (text, strlen (text), &problem);
    assert (s_filtered (query));
    ml_web_form_destroy (&query);
    //  The core's errors read as sentences.
    assert (strcmp (ml_wsp_sentence ("nothing here", buf, sizeof buf), "Nothing here.") == 0);
    assert (strcmp (ml_wsp_sentence ("Done.", buf, sizeof buf), "Done.") == 0);
    const char *why_typed = NULL;
    assert (ml_wsp_typed ("12.50", "USD", &why_typed) == 1250);
    assert (ml_wsp_typed ("0", "USD", &why_typed) == -1 && why_typed);
    printf ("OK\n");
}
