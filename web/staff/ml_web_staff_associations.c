/*  ml_web_staff_associations: a payer's Associations tab and "View as payer" (docs/web.md
    "Payers").

    /staff/payer-associations/ID lists what the payer may see (clients, matters, invoices)
    with a Remove button each, and "+" opens the search: Search By (client name, client number,
    matter number, matter description, invoice number), what to associate (the whole client,
    the matter, or the invoice), column filters over the results, a checkbox per result and
    Create Association. The core's search runs in the firm's matter database through the
    agent; association-add finds each checked number there again, so only what exists is
    associated.

    /staff/payer-view/ID shows exactly what the payer's portal shows: the core's
    payer-portal-invoices (the listing portal-invoices gives the payer, from one function)
    through the portal's own renderer (ml_web_page_invoice_list), read-only.
*/
#include "ml_web_staff.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A form holds 32 fields: the checkboxes of one Create Association.
#define S_MAX_PICKS 25
//  Search results asked of the core (the matter database) per search.
#define S_SEARCH_ROWS 200

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

static const char *s_field (ml_web_form_t *form, const char *name)
{
    const char *value = ml_web_form_get (form, name);
    return value ? value : "";
}

//  The Search By choices: the core's field names and their labels.
static const char *const s_by[][2] = {
    {"client-name", "Client name"},       {"client-number", "Client number"},
    {"matter-number", "Matter number"},   {"matter-description", "Matter description"},
    {"invoice-number", "Invoice number"},
};
#define S_BY_COUNT (sizeof s_by / sizeof s_by[0])

//  What a checked result associates, and the level a Search By suggests.
static const char *const s_levels[][2] = {
    {"client", "The whole client (its matters and invoices, new ones too)"},
    {"matter", "The matter (its invoices, new ones too)"},
    {"invoice", "The invoice only"},
};

static const char *s_default_level (const char *by)
{
    return strncmp (by, "client", 6) == 0   ? "client"
           : strncmp (by, "matter", 6) == 0 ? "matter"
                                            : "invoice";
}

//  The column filters: the form field, the row's member, the column's label. Which show
//  depends on the level (a client row has no matter or invoice).
static const char *const s_filters[][3] = {
    {"f_client_name", "client_name", "Client name"},
    {"f_client_number", "client_number", "Client number"},
    {"f_matter_number", "matter_number", "Matter number"},
    {"f_matter_description", "matter_description", "Matter description"},
    {"f_invoice_number", "invoice_number", "Invoice number"},
};
#define S_FILTER_COUNT (sizeof s_filters / sizeof s_filters[0])

static size_t s_filter_columns (const char *level)
{
    return strcmp (level, "client") == 0 ? 2 : strcmp (level, "matter") == 0 ? 4 : 5;
}

//  Whether text holds needle, ASCII letters compared without case (other bytes as they are:
//  a filter narrows what the person sees, the core's search did the finding).
bool ml_web_staff_contains (const char *text, const char *needle)
{
    if (!needle || !*needle)
        return true;
    if (!text)
        return false;
    size_t length = strlen (needle);
    for (const char *at = text; *at; at++) {
        size_t index = 0;
        while (index < length && at[index] &&
               tolower ((unsigned char)at[index]) == tolower ((unsigned char)needle[index]))
            index++;
        if (index == length)
            return true;
    }
    return false;
}

//  The number a row gives at level.
static const char *s_level_number (json_t *row, const char *level)
{
    return ml_web_staff_text (row, strcmp (level, "client") == 0   ? "client_number"
                                   : strcmp (level, "matter") == 0 ? "matter_number"
                                                                   : "invoice_number");
}

//  Whether the payer already has an association of level and number.
static bool s_associated (json_t *associations, const char *level, const char *number)
{
    size_t index;
    json_t *association;
    json_array_foreach (associations, index, association)
    {
        if (strcmp (ml_web_staff_text (association, "level"), level) == 0 &&
            strcmp (s_level_number (association, level), number) == 0)
            return true;
    }
    return false;
}

//  The search's rows kept by the column filters, one per number at level (a client's
//  invoices make one client row), each with "count" and, when one currency, "sum".
static json_t *s_result_rows (json_t *items, const char *level, ml_web_form_t *query)
{
    json_t *rows = json_array (), *seen = json_object ();
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        bool kept = true;
        for (size_t filter = 0; filter < S_FILTER_COUNT && kept; filter++)
            kept = ml_web_staff_contains (ml_web_staff_text (item, s_filters[filter][1]),
                                          s_field (query, s_filters[filter][0]));
        const char *number = s_level_number (item, level);
        if (!kept || !*number)
            continue;
        json_t *row = json_object_get (seen, number);
        int64_t balance = json_integer_value (json_object_get (item, "balance_minor"));
        if (!row) {
            row = json_deep_copy (item);
            json_object_set_new (row, "count", json_integer (0));
            json_object_set_new (row, "sum", json_integer (0));
            json_object_set (seen, number, row);
            json_array_append_new (rows, row);
        }
        json_object_set_new (
            row, "count", json_integer (json_integer_value (json_object_get (row, "count")) + 1));
        //  One sum per currency only: amounts in two currencies are not added up.
        if (strcmp (ml_web_staff_text (row, "currency"), ml_web_staff_text (item, "currency")))
            json_object_set_new (row, "mixed", json_true ());
        else
            json_object_set_new (
                row, "sum",
                json_integer (json_integer_value (json_object_get (row, "sum")) + balance));
    }
    json_decref (seen);
    return rows;
}

static void s_options (ml_web_exchange_t *exchange, const char *const (*choices)[2], size_t count,
                       const char *current)
{
    for (size_t index = 0; index < count; index++)
        ml_web_page_add (exchange,
                         strcmp (choices[index][0], current) == 0
                             ? "<option value=\"{}\" selected>{}</option>"
                             : "<option value=\"{}\">{}</option>",
                         choices[index][0], choices[index][1]);
}

//  "+": the search form, and its results with checkboxes when a search was asked. Returns
//  false when the page was answered otherwise (the core away: 503; the session ended).
static bool s_add_form (ml_web_exchange_t *exchange, const char *token, json_t *session,
                        int64_t payer_id, json_t *associations)
{
    ml_web_form_t *query = exchange->query;
    const char *by = s_field (query, "by");
    bool by_known = false;
    for (size_t index = 0; index < S_BY_COUNT; index++)
        by_known = by_known || strcmp (by, s_by[index][0]) == 0;
    if (!by_known)
        by = "client-name";
    const char *level = s_field (query, "level");
    if (strcmp (level, "client") && strcmp (level, "matter") && strcmp (level, "invoice"))
        level = s_default_level (by);
    //  A client or matter with money in trust and no open invoice is found in the ledgers.
    const char *target = strcmp (s_field (query, "target"), "trust") == 0 ? "trust" : "invoices";
    bool trust = strcmp (target, "trust") == 0;
    if (trust && strcmp (level, "invoice") == 0)
        level = "matter";
    const char *text = s_field (query, "text");
    char path[64];
    snprintf (path, sizeof path, "/staff/payer-associations/%lld", (long long)payer_id);
    ml_web_page_add (exchange,
                     "<section class=\"add-association\" aria-labelledby=\"add-h\">\n"
                     "<h2 id=\"add-h\">Add an association</h2>\n"
                     "<form id=\"association-search\" method=\"get\" action=\"{}\" "
                     "class=\"stack\" role=\"search\">\n"
                     "<input type=\"hidden\" name=\"add\" value=\"1\">\n"
                     "<label for=\"by\">Search By</label>\n<select id=\"by\" name=\"by\">",
                     path);
    s_options (exchange, s_by, S_BY_COUNT, by);
    ml_web_page_add (exchange,
                     "</select>\n<label for=\"text\">Search for</label>\n"
                     "<input id=\"text\" name=\"text\" type=\"text\" required maxlength=\"200\" "
                     "value=\"{}\">\n<label for=\"level\">Associate</label>\n"
                     "<select id=\"level\" name=\"level\">",
                     text);
    s_options (exchange, s_levels, 3, level);
    static const char *const targets[][2] = {{"invoices", "Open invoices"},
                                             {"trust", "Trust ledgers (no invoice numbers)"}};
    ml_web_page_add (exchange, "</select>\n<label for=\"target\">Look in</label>\n"
                               "<select id=\"target\" name=\"target\">");
    s_options (exchange, targets, 2, target);
    ml_web_page_add (exchange, "</select>\n<fieldset class=\"filters\"><legend>Column filters "
                               "(optional): rows whose column holds the text</legend>\n");
    for (size_t filter = 0; filter < s_filter_columns (level); filter++)
        ml_web_page_add (exchange,
                         "<label for=\"{}\">{}</label><input id=\"{}\" name=\"{}\" type=\"text\" "
                         "maxlength=\"200\" value=\"{}\">\n",
                         s_filters[filter][0], s_filters[filter][2], s_filters[filter][0],
                         s_filters[filter][0], s_field (query, s_filters[filter][0]));
    ml_web_page_add (exchange, "</fieldset>\n<button type=\"submit\">Search</button>\n</form>\n");
    if (!*text) {
        ml_web_page_add (exchange, "</section>\n");
        return true;
    }
    json_t *found =
        ml_web_staff_call (exchange, token,
                           json_pack ("{s:s, s:s, s:s, s:s, s:i}", "op", "search", "by", by, "text",
                                      text, "target", target, "limit", S_SEARCH_ROWS));
    if (!found)
        return false;
    if (!s_ok (found)) {
        //  The agent away or slow: the core says so; the page stays usable.
        bool answered = ml_web_staff_answered (exchange, found);
        if (!answered)
            ml_web_page_message (exchange, "error", ml_web_staff_text (found, "error"));
        json_decref (found);
        if (!answered)
            ml_web_page_add (exchange, "</section>\n");
        return !answered;
    }
    json_t *rows = s_result_rows (json_object_get (found, "items"), level, query);
    size_t count = json_array_size (rows);
    if (count == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing matches; change the search or the "
                                   "filters.</p>\n</section>\n");
    else {
        static const char *const headers[] = {"Client name", "Client number", "Matter number",
                                              "Matter description", "Invoice number"};
        size_t columns = s_filter_columns (level);
        ml_web_page_add (exchange,
                         "<form method=\"post\" action=\"{}\" class=\"results\">\n"
                         "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                         "<input type=\"hidden\" name=\"action\" value=\"add\">\n"
                         "<input type=\"hidden\" name=\"level\" value=\"{}\">\n"
                         "<table class=\"results\">\n<thead><tr><th scope=\"col\">Select</th>",
                         path, ml_web_staff_csrf (session), level);
        for (size_t column = 0; column < columns; column++)
            ml_web_page_add (exchange, "<th scope=\"col\">{}</th>", headers[column]);
        ml_web_page_add (exchange,
                         "<th scope=\"col\" class=\"num\">{}</th>"
                         "<th scope=\"col\" class=\"num\">Balance</th></tr></thead>\n<tbody>\n",
                         trust ? "Ledgers" : "Open invoices");
        size_t picks = 0;
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            if (picks == S_MAX_PICKS)
                break;
            const char *number = s_level_number (row, level);
            char name[16], sum[64], many[24];
            snprintf (name, sizeof name, "pick_%zu", picks);
            ml_web_page_add (exchange, "<tr><td data-label=\"Select\">");
            if (s_associated (associations, level, number))
                ml_web_page_add (exchange, "<span class=\"badge\">Associated</span>");
            else {
                ml_web_page_add (exchange,
                                 "<input type=\"checkbox\" id=\"{}\" name=\"{}\" value=\"{}\">"
                                 "<label for=\"{}\" class=\"visually-hidden\">Associate {} {}"
                                 "</label>",
                                 name, name, number, name, level, number);
                picks++;
            }
            ml_web_page_add (exchange, "</td>");
            for (size_t column = 0; column < columns; column++)
                ml_web_page_add (exchange, "<td data-label=\"{}\" class=\"{}\">{}</td>",
                                 headers[column], s_filters[column][1],
                                 ml_web_staff_text (row, s_filters[column][1]));
            snprintf (many, sizeof many, "%lld",
                      (long long)json_integer_value (json_object_get (row, "count")));
            if (json_is_true (json_object_get (row, "mixed")))
                snprintf (sum, sizeof sum, "several currencies");
            else
                ml_web_page_money (row, "sum", ml_web_staff_text (row, "currency"), sum,
                                   sizeof sum);
            ml_web_page_add (exchange,
                             "<td class=\"num\" data-label=\"{}\">{}</td>"
                             "<td class=\"num\" data-label=\"Balance\">{}</td></tr>\n",
                             trust ? "Ledgers" : "Open invoices", many, sum);
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
        if (count > picks || json_is_integer (json_object_get (found, "next")))
            ml_web_page_add (exchange, "<p class=\"hint\">Not every result is shown: narrow the "
                                       "search or the column filters.</p>\n");
        ml_web_page_add (exchange, "<button type=\"submit\">Create Association</button>\n"
                                   "</form>\n</section>\n");
    }
    json_decref (rows);
    json_decref (found);
    return true;
}

static const char *s_level_name (const char *level)
{
    return strcmp (level, "client") == 0   ? "Client"
           : strcmp (level, "matter") == 0 ? "Matter"
                                           : "Invoice";
}

static void s_associations (ml_web_exchange_t *exchange, const char *token, json_t *session,
                            int64_t payer_id, const char *error, const char *notice)
{
    json_t *shown = ml_web_staff_payer_begin (exchange, token, session, payer_id,
                                              "/staff/payer-associations/", error, notice);
    if (!shown)
        return;
    json_t *payer = json_object_get (shown, "payer");
    json_t *associations = json_object_get (payer, "associations");
    bool billing = ml_web_staff_role_allows (session, "billing");
    char path[64];
    snprintf (path, sizeof path, "/staff/payer-associations/%lld", (long long)payer_id);
    ml_web_page_add (exchange, "<h2 id=\"associations-h\">Associations</h2>\n<p class=\"hint\">"
                               "What this payer sees and pays in the portal.</p>\n");
    if (billing)
        ml_web_page_add (exchange,
                         "<p><a class=\"button add\" href=\"{}?add=1#add-h\" aria-label=\"Add an "
                         "association\" title=\"Add an association\">+</a></p>\n",
                         path);
    if (json_array_size (associations) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">No associations: the payer sees nothing "
                                   "yet.</p>\n");
    else {
        ml_web_page_add (exchange,
                         "<table class=\"associations\">\n<thead><tr><th scope=\"col\">Level</th>"
                         "<th scope=\"col\">Client</th><th scope=\"col\">Matter</th>"
                         "<th scope=\"col\">Invoice</th><th scope=\"col\">Added</th>");
        ml_web_page_add (exchange, billing ? "<th scope=\"col\">Remove</th></tr></thead>\n<tbody>\n"
                                           : "</tr></thead>\n<tbody>\n");
        size_t index;
        json_t *association;
        json_array_foreach (associations, index, association)
        {
            const char *level = ml_web_staff_text (association, "level");
            char client[300], matter[300], id[32];
            snprintf (client, sizeof client, "%s %s",
                      ml_web_staff_text (association, "client_name"),
                      ml_web_staff_text (association, "client_number"));
            snprintf (matter, sizeof matter, "%s %s",
                      ml_web_staff_text (association, "matter_number"),
                      ml_web_staff_text (association, "matter_description"));
            snprintf (
                id, sizeof id, "%lld",
                (long long)json_integer_value (json_object_get (association, "association_id")));
            ml_web_page_add (exchange,
                             "<tr data-level=\"{}\" data-number=\"{}\"><th scope=\"row\" "
                             "data-label=\"Level\">{}</th><td data-label=\"Client\">{}</td>"
                             "<td data-label=\"Matter\">{}</td><td data-label=\"Invoice\">{}</td>"
                             "<td data-label=\"Added\">{} <span class=\"small\">{}</span></td>",
                             level, s_level_number (association, level), s_level_name (level),
                             client, strcmp (level, "client") ? matter : "all",
                             strcmp (level, "invoice") == 0
                                 ? ml_web_staff_text (association, "invoice_number")
                                 : "all",
                             ml_web_staff_text (association, "created_at"),
                             ml_web_staff_text (association, "created_by"));
            if (billing) {
                char aria[120];
                snprintf (aria, sizeof aria, "Remove the %s association %s", level,
                          s_level_number (association, level));
                ml_web_page_add (exchange,
                                 "<td data-label=\"Remove\"><form class=\"inline\" "
                                 "method=\"post\" action=\"{}\"><input type=\"hidden\" "
                                 "name=\"csrf\" value=\"{}\"><input type=\"hidden\" "
                                 "name=\"action\" value=\"remove\"><input type=\"hidden\" "
                                 "name=\"association_id\" value=\"{}\"><button type=\"submit\" "
                                 "class=\"danger\" aria-label=\"{}\">Remove</button></form></td>",
                                 path, ml_web_staff_csrf (session), id, aria);
            }
            ml_web_page_add (exchange, "</tr>\n");
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    }
    if (!billing || !*s_field (exchange->query, "add") ||
        s_add_form (exchange, token, session, payer_id, associations))
        ml_web_staff_end (exchange);
    json_decref (shown);
}

//  Create Association: each checked number through association-add (which finds it in the
//  matter database again). Returns how many were added; error gets the first refusal.
static int s_create (ml_web_exchange_t *exchange, const char *token, int64_t payer_id, char *error,
                     size_t size, bool *answered)
{
    const char *level = s_field (exchange->form, "level");
    int added = 0;
    for (size_t index = 0; index < 30 && !*answered; index++) {
        char name[16];
        snprintf (name, sizeof name, "pick_%zu", index);
        const char *number = ml_web_form_get (exchange->form, name);
        if (!number)
            continue;
        json_t *reply = ml_web_staff_call (
            exchange, token,
            json_pack ("{s:s, s:I, s:s, s:s, s:s}", "op", "association-add", "payer_id", payer_id,
                       "level", level, "number", number, "csrf", s_field (exchange->form, "csrf")));
        if (!reply || ml_web_staff_answered (exchange, reply))
            *answered = true;
        else if (s_ok (reply))
            added++;
        else if (!*error)
            snprintf (error, size, "%s: %s", number, ml_web_staff_text (reply, "error"));
        json_decref (reply);
    }
    return added;
}

void ml_web_staff_page_payer_associations (ml_web_exchange_t *exchange)
{
    int64_t payer_id;
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_payer_session (exchange, "/staff/payer-associations/", &payer_id,
                                                  token, sizeof token);
    if (!session)
        return;
    const char *done = s_field (exchange->query, "done");
    if (strcmp (exchange->method, "POST") != 0) {
        char notice[96] = "";
        if (strcmp (done, "removed") == 0)
            snprintf (notice, sizeof notice, "The association is removed.");
        else if (strcmp (done, "added") == 0)
            snprintf (notice, sizeof notice, "Associations created: %lld.",
                      strtoll (s_field (exchange->query, "count"), NULL, 10));
        s_associations (exchange, token, session, payer_id, NULL, *notice ? notice : NULL);
        json_decref (session);
        return;
    }
    const char *action = s_field (exchange->form, "action");
    char error[400] = "", location[128];
    bool answered = false;
    if (strcmp (action, "remove") == 0) {
        int64_t id = ml_web_staff_payer_id (s_field (exchange->form, "association_id"), "");
        json_t *reply = ml_web_staff_call (exchange, token,
                                           json_pack ("{s:s, s:I, s:s}", "op", "association-remove",
                                                      "association_id", id > 0 ? id : 0, "csrf",
                                                      s_field (exchange->form, "csrf")));
        if (!reply || ml_web_staff_answered (exchange, reply))
            answered = true;
        else if (s_ok (reply)) {
            snprintf (location, sizeof location, "/staff/payer-associations/%lld?done=removed",
                      (long long)payer_id);
            ml_web_page_redirect (exchange, location);
            answered = true;
        } else
            snprintf (error, sizeof error, "%s", ml_web_staff_text (reply, "error"));
        json_decref (reply);
    } else if (strcmp (action, "add") == 0) {
        int added = s_create (exchange, token, payer_id, error, sizeof error, &answered);
        if (!answered && added == 0 && !*error)
            snprintf (error, sizeof error, "Check at least one result to associate.");
        if (!answered && !*error) {
            snprintf (location, sizeof location,
                      "/staff/payer-associations/%lld?done=added&count=%d", (long long)payer_id,
                      added);
            ml_web_page_redirect (exchange, location);
            answered = true;
        }
    } else
        snprintf (error, sizeof error, "That is not something this page does.");
    if (!answered) {
        s_associations (exchange, token, session, payer_id, error, NULL);
        exchange->status = 400;
    }
    json_decref (session);
}

//  ---------------------------------------------------------------------------------------
//  View as payer.

void ml_web_staff_page_payer_view (ml_web_exchange_t *exchange)
{
    int64_t payer_id;
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session =
        ml_web_staff_payer_session (exchange, "/staff/payer-view/", &payer_id, token, sizeof token);
    if (!session)
        return;
    json_t *shown = ml_web_staff_call (
        exchange, token, json_pack ("{s:s, s:I}", "op", "payer-show", "payer_id", payer_id));
    json_t *listing =
        shown && s_ok (shown)
            ? ml_web_staff_call (
                  exchange, token,
                  json_pack ("{s:s, s:I}", "op", "payer-portal-invoices", "payer_id", payer_id))
            : NULL;
    if (shown && !s_ok (shown))
        ml_web_staff_refused (exchange, shown);
    else if (listing && !s_ok (listing))
        ml_web_staff_refused (exchange, listing);
    else if (listing) {
        json_t *payer = json_object_get (shown, "payer");
        const char *name = ml_web_staff_text (payer, "name");
        const char *state = ml_web_staff_text (json_object_get (payer, "access"), "state");
        ml_web_staff_begin (exchange, name, session);
        ml_web_staff_payer_tabs (exchange, payer_id, "/staff/payer-view/");
        ml_web_page_add (exchange,
                         "<p class=\"notice\">Exactly what {} sees on the portal's invoice page "
                         "(nothing here can be paid or changed).</p>\n",
                         name);
        if (strcmp (state, "active") && strcmp (state, "invited"))
            ml_web_page_add (exchange, "<p class=\"hint\">Login Access is off: the payer cannot "
                                       "sign in to see it now.</p>\n");
        ml_web_page_add (exchange, "<section class=\"as-payer\" aria-label=\"The payer's "
                                   "portal\">\n<h2>Your invoices</h2>\n");
        ml_web_page_invoice_list (exchange, listing, true);
        ml_web_page_add (exchange, "</section>\n");
        ml_web_staff_end (exchange);
    }
    json_decref (listing);
    json_decref (shown);
    json_decref (session);
}

void ml_web_staff_payers_test (void)
{
    //  Ids from paths: digits only, no leading zero, no sign, nothing after.
    if (ml_web_staff_payer_id ("/staff/payers/12", "/staff/payers/") != 12 ||
        ml_web_staff_payer_id ("/staff/payers/012", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("/staff/payers/-1", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("/staff/payers/", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("/staff/payers/1x", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("/staff/payers/9999999999999999999", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("/staff/payer-view/7", "/staff/payers/") != -1 ||
        ml_web_staff_payer_id ("42", "") != 42) {
        fprintf (stderr, "ml_web_staff_payer_id\n");
        abort ();
    }
    //  Column filters: a part, without case; empty keeps all.
    if (!ml_web_staff_contains ("Acme Holdings", "hold") ||
        ml_web_staff_contains ("Acme", "acmex") || !ml_web_staff_contains ("x", "") ||
        ml_web_staff_contains (NULL, "a")) {
        fprintf (stderr, "ml_web_staff_contains\n");
        abort ();
    }
    //  One row per client; filters apply to every column; a mixed-currency sum is not added.
    json_t *items = json_pack (
        "[{s:s, s:s, s:s, s:s, s:I}, {s:s, s:s, s:s, s:s, s:I}, {s:s, s:s, s:s, s:s, s:I}]",
        "client_number", "C-1", "client_name", "Acme", "matter_number", "M-1", "currency", "USD",
        "balance_minor", (json_int_t)100, "client_number", "C-1", "client_name", "Acme",
        "matter_number", "M-2", "currency", "USD", "balance_minor", (json_int_t)250,
        "client_number", "C-2", "client_name", "Brio", "matter_number", "M-3", "currency", "EUR",
        "balance_minor", (json_int_t)5);
    const char *problem = NULL;
    ml_web_form_t *query = ml_web_form_parse ("f_client_name=ACM", 17, &problem);
    json_t *rows = s_result_rows (items, "client", query);
    if (json_array_size (rows) != 1 ||
        json_integer_value (json_object_get (json_array_get (rows, 0), "sum")) != 350 ||
        json_integer_value (json_object_get (json_array_get (rows, 0), "count")) != 2) {
        fprintf (stderr, "s_result_rows\n");
        abort ();
    }
    json_decref (rows);
    ml_web_form_destroy (&query);
    query = ml_web_form_parse ("", 0, &problem);
    rows = s_result_rows (items, "matter", query);
    if (json_array_size (rows) != 3) {
        fprintf (stderr, "s_result_rows by matter\n");
        abort ();
    }
    json_decref (rows);
    ml_web_form_destroy (&query);
    json_decref (items);
}
