/*  ml_web_staff_dashboard: the firm's dashboard on the staff app's home (docs/web.md
    "Dashboard"): the agent online or not and its last contact, how far the core's replica of
    the matter database is behind (changes and seconds, from the core's status op), postings
    waiting and rejected (links into Manage Postings), today's card payments and the deposit
    accounts. Three read ops with the staff session: status, payments, account-list. A part the
    core does not give (a core without a processor has no payments) is left out, not an error.
*/
#include "ml_web_staff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

//  A read for one part of the dashboard: NULL when the core is away (then the part is
//  left out, not the whole page replaced by the 503 page as ml_web_staff_call would).
static json_t *s_read (ml_web_exchange_t *exchange, const char *token, const char *op)
{
    json_t *request = json_pack ("{s:s, s:s}", "op", op, "staff_session", token);
    json_t *reply = request ? ml_web_core_call (exchange->core, request) : NULL;
    json_decref (request);
    return reply;
}

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

static const char *s_count (json_t *object, const char *key, char *buf, size_t size)
{
    json_t *value = json_object_get (object, key);
    if (json_is_integer (value))
        snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    else
        snprintf (buf, size, "-");
    return buf;
}

//  How many rejected postings nobody dealt with yet (not reallocated, money not given back),
//  from the postings op's "unresolved" view: up to 100, then "100+".
static void s_unresolved (ml_web_exchange_t *exchange, const char *token, char *buf, size_t size)
{
    json_t *request =
        json_pack ("{s:s, s:s, s:s, s:i, s:I}", "op", "postings", "staff_session", token, "status",
                   "unresolved", "limit", 100, "before", (json_int_t)INT64_MAX);
    json_t *reply = request ? ml_web_core_call (exchange->core, request) : NULL;
    json_decref (request);
    if (s_ok (reply))
        snprintf (buf, size, "%zu%s", json_array_size (json_object_get (reply, "postings")),
                  json_object_get (reply, "next_before") ? "+" : "");
    else
        snprintf (buf, size, "-");
    json_decref (reply);
}

static void s_connection (ml_web_exchange_t *exchange, json_t *firm, const char *unresolved)
{
    bool online = json_is_true (json_object_get (firm, "agent_online"));
    const char *contact = ml_web_staff_text (firm, "last_contact_at");
    if (!*contact)
        contact = ml_web_staff_text (firm, "last_hello_at");
    char when[40], changed[40], waiting[24], rejected[24], behind[24], seconds[24];
    ml_web_staff_when (*contact ? contact : NULL, when, sizeof when);
    ml_web_staff_when (*ml_web_staff_text (firm, "last_change_at")
                           ? ml_web_staff_text (firm, "last_change_at")
                           : NULL,
                       changed, sizeof changed);
    s_count (firm, "behind_changes", behind, sizeof behind);
    s_count (firm, "behind_seconds", seconds, sizeof seconds);
    bool late = json_integer_value (json_object_get (firm, "behind_changes")) > 0;
    char replica[240];
    bool refused = json_is_string (json_object_get (firm, "refused"));
    if (refused)
        //  For billing staff: what it means, and who can change it (docs/config.md).
        snprintf (replica, sizeof replica,
                  "Not taking the firm's matter data: its matter database has more open items than "
                  "this payment service is set to keep (core/max_firm_items); ask your IT "
                  "staff to raise the limit");
    else if (!json_integer_value (json_object_get (firm, "complete")) &&
             json_integer_value (json_object_get (firm, "snapshot_rows")) > 0)
        snprintf (replica, sizeof replica,
                  "Not complete yet (the first copy is being made: %lld rows received so far)",
                  (long long)json_integer_value (json_object_get (firm, "snapshot_rows")));
    else if (!json_integer_value (json_object_get (firm, "complete")))
        snprintf (replica, sizeof replica, "Not complete yet (the first copy is being made)");
    else if (late)
        snprintf (replica, sizeof replica, "%s changes behind, for %s s", behind, seconds);
    else
        snprintf (replica, sizeof replica, "Up to date");
    ml_web_page_add (
        exchange,
        "<section class=\"dashboard\" aria-labelledby=\"firm-state\">\n"
        "<h2 id=\"firm-state\">The firm's connection</h2>\n<dl class=\"receipt\">"
        "<dt>Agent</dt><dd><span class=\"status agent-{}\">{}</span></dd>"
        "<dt>Last contact</dt><dd class=\"last-contact\">{}</dd>"
        "<dt>Matter data</dt><dd class=\"replica{}\" data-behind-changes=\"{}\" "
        "data-behind-seconds=\"{}\">{}</dd>"
        "<dt>Last change received</dt><dd class=\"last-change\">{}</dd>"
        "<dt>Postings waiting</dt><dd class=\"postings-waiting\">"
        "<a href=\"/staff/postings?state=waiting\">{}</a></dd>"
        "<dt>Postings rejected</dt><dd class=\"postings-rejected\">"
        "<a href=\"/staff/postings?state=rejected\">{}</a></dd>"
        "<dt>Rejected, to resolve</dt><dd class=\"postings-unresolved\">"
        "<a href=\"/staff/postings?state=unresolved\">{}</a></dd>"
        "</dl>\n</section>\n",
        online ? "online" : "offline", online ? "Online" : "Offline", *contact ? when : "never",
        refused ? " late refused"
        : late  ? " late"
                : "",
        behind, seconds, replica, changed,
        s_count (firm, "unanswered_posting_count", waiting, sizeof waiting),
        s_count (firm, "rejected_posting_count", rejected, sizeof rejected), unresolved);
}

//  Today's (UTC) approved card payments: how many, and the list.
static void s_today (ml_web_exchange_t *exchange, json_t *payments)
{
    char today[16];
    time_t now = time (NULL);
    struct tm parts;
    gmtime_r (&now, &parts);
    strftime (today, sizeof today, "%Y-%m-%d", &parts);
    size_t index, count = 0;
    json_t *payment;
    json_array_foreach (payments, index, payment) count +=
        strncmp (ml_web_staff_text (payment, "created_at"), today, 10) == 0;
    char number[24];
    snprintf (number, sizeof number, "%zu", count);
    ml_web_page_add (exchange,
                     "<section class=\"dashboard\" aria-labelledby=\"today-heading\">\n"
                     "<h2 id=\"today-heading\">Today's card payments</h2>\n"
                     "<p class=\"payments-today\"><span class=\"count\">{}</span> today ({} UTC)."
                     "</p>\n",
                     number, today);
    if (count) {
        ml_web_page_add (exchange, "<ul class=\"payments\">\n");
        json_array_foreach (payments, index, payment)
        {
            if (strncmp (ml_web_staff_text (payment, "created_at"), today, 10) != 0)
                continue;
            char when[40], money[64], total[200] = "";
            size_t line;
            json_t *charge;
            json_array_foreach (json_object_get (payment, "charges"), line, charge)
            {
                ml_web_page_money (charge, "amount_minor", ml_web_staff_text (charge, "currency"),
                                   money, sizeof money);
                snprintf (total + strlen (total), sizeof total - strlen (total), "%s%s",
                          line ? " + " : "", money);
            }
            const char *status = ml_web_staff_text (payment, "status");
            ml_web_page_add (
                exchange,
                "<li><a href=\"/staff/payments/{}\">{}</a> {}, {} "
                "<span class=\"status state-{}\">{}</span></li>\n",
                ml_web_staff_text (payment, "payment_uuid"),
                ml_web_staff_when (ml_web_staff_text (payment, "created_at"), when, sizeof when),
                ml_web_staff_text (payment, "payer_name"), total, status,
                ml_web_staff_state_name (status));
        }
        ml_web_page_add (exchange, "</ul>\n");
    }
    ml_web_page_add (exchange, "</section>\n");
}

static void s_accounts (ml_web_exchange_t *exchange, json_t *accounts)
{
    ml_web_page_add (exchange,
                     "<section class=\"dashboard\" aria-labelledby=\"accounts-heading\">\n"
                     "<h2 id=\"accounts-heading\">Deposit accounts</h2>\n");
    if (json_array_size (accounts) == 0) {
        ml_web_page_add (exchange, "<p>No deposit accounts yet.</p>\n</section>\n");
        return;
    }
    ml_web_page_add (exchange,
                     "<table class=\"accounts\">\n<thead><tr><th scope=\"col\">Account</th>"
                     "<th scope=\"col\">Type</th><th scope=\"col\">Currency</th>"
                     "<th scope=\"col\">Merchant account</th></tr></thead>\n<tbody>\n");
    size_t index;
    json_t *account;
    json_array_foreach (accounts, index, account)
    {
        const char *type = ml_web_staff_text (account, "account_type");
        if (!*type)
            type = ml_web_staff_text (account, "type");
        ml_web_page_add (exchange,
                         "<tr><td data-label=\"Account\">{}</td><td data-label=\"Type\">{}</td>"
                         "<td data-label=\"Currency\">{}</td><td data-label=\"Merchant account\">"
                         "{}</td></tr>\n",
                         ml_web_staff_text (account, "account_number"),
                         strcmp (type, "TRUST") == 0 ? "Trust" : "Operating",
                         ml_web_staff_text (account, "currency"),
                         ml_web_staff_text (account, "merchant_account"));
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n</section>\n");
}

void ml_web_staff_dashboard (ml_web_exchange_t *exchange, const char *token, json_t *session)
{
    (void)session;
    //  The core away: keep the frame and say so.
    json_t *status = s_read (exchange, token, "status");
    if (!status) {
        ml_web_page_message (exchange, "error", "The payment service did not answer.");
        return;
    }
    json_t *firm = json_array_get (json_object_get (status, "firms"), 0);
    if (s_ok (status) && firm) {
        char unresolved[24];
        s_unresolved (exchange, token, unresolved, sizeof unresolved);
        s_connection (exchange, firm, unresolved);
    }
    json_decref (status);
    json_t *payments = s_read (exchange, token, "payments");
    if (payments && s_ok (payments))
        s_today (exchange, json_object_get (payments, "payments"));
    json_decref (payments);
    json_t *accounts = s_read (exchange, token, "account-list");
    if (accounts && s_ok (accounts))
        s_accounts (exchange, json_object_get (accounts, "accounts"));
    json_decref (accounts);
}
