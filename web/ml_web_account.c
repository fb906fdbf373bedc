/*  ml_web_account: the signed-in payer's account pages: saved payment methods (/methods,
    with POST /methods/default and /methods/remove), the payment history (/history), a
    printable receipt per payment (/history/PAYMENT) and Auto-Pay (/autopay). The core
    decides what is the payer's (docs/portal-api.md): these pages only show what it answers,
    through ml_html, and relay the session's CSRF token on the two changes. See docs/web.md.
*/
#include "ml_web_pages.h"
#include "ml_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOKEN_MAX 200

//  The texts a payer may see.
#define S_FORM_EXPIRED "The form expired; reload the page and try again."
#define S_NOT_YOURS    "This card is not among your saved payment methods."

static const char *s_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

//  The firm's name for the header: the page's reply's, else the session's.
static const char *s_firm (json_t *reply, json_t *session)
{
    const char *firm = s_text (reply, "firm_name");
    return *firm ? firm : s_text (json_object_get (session, "payer"), "firm_name");
}

//  Call a payer op for the signed-in payer: the reply, or NULL after the page was answered
//  (the session ended, the core refused or is away). *session is the portal-session reply.
static json_t *s_account_call (ml_web_exchange_t *exchange, const char *op, json_t **session,
                               char *token, size_t size)
{
    return ml_web_page_session_call (exchange, json_pack ("{s:s}", "op", op), session, token, size);
}

//  A store time (YYYY-MM-DDTHH:MM:SS.mmmZ) as "YYYY-MM-DD HH:MM UTC".
static const char *s_when (const char *stamp, char *buf, size_t size)
{
    if (strlen (stamp) >= 16 && stamp[10] == 'T')
        snprintf (buf, size, "%.10s %.5s UTC", stamp, stamp + 11);
    else
        snprintf (buf, size, "%s", stamp);
    return buf;
}

static const char *s_brand (const char *brand)
{
    return strcmp (brand, "visa") == 0         ? "Visa"
           : strcmp (brand, "mastercard") == 0 ? "Mastercard"
           : strcmp (brand, "amex") == 0       ? "American Express"
           : strcmp (brand, "discover") == 0   ? "Discover"
           : *brand                            ? "Card"
                                               : "";
}

//  ---------------------------------------------------------------------------------------
//  /methods

static void s_methods_page (ml_web_exchange_t *exchange, json_t *session, json_t *reply,
                            const char *kind, const char *message)
{
    ml_web_page_begin (exchange, "Payment methods", s_firm (reply, session));
    ml_web_page_signed_in_bar (exchange, session);
    ml_web_page_message (exchange, kind, message);
    json_t *methods = json_object_get (reply, "methods");
    const char *csrf = s_text (session, "csrf");
    if (json_array_size (methods) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">You have no saved cards.</p>\n");
    else
        ml_web_page_add (exchange,
                         "<table>\n<thead><tr><th scope=\"col\">Card</th><th scope=\"col\">"
                         "Expires</th><th scope=\"col\">Default</th><th scope=\"col\">"
                         "<span class=\"visually-hidden\">Actions</span></th></tr></thead>\n"
                         "<tbody>\n");
    size_t index;
    json_t *method;
    json_array_foreach (methods, index, method)
    {
        char id[32], expiry[16], label[96];
        snprintf (id, sizeof id, "%lld",
                  (long long)json_integer_value (json_object_get (method, "method_id")));
        snprintf (expiry, sizeof expiry, "%02lld/%04lld",
                  (long long)json_integer_value (json_object_get (method, "exp_month")) % 100,
                  (long long)json_integer_value (json_object_get (method, "exp_year")) % 10000);
        snprintf (label, sizeof label, "%s ending %s", s_brand (s_text (method, "brand")),
                  s_text (method, "last4"));
        bool expired = json_is_true (json_object_get (method, "expired"));
        bool is_default = json_is_true (json_object_get (method, "default"));
        const char *autopay = s_text (method, "autopay");
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"Card\">{}</th>"
                         "<td data-label=\"Expires\">{}",
                         label, expiry);
        if (expired)
            ml_web_page_add (exchange, " <span class=\"badge expired\">Expired</span>");
        ml_web_page_add (exchange, "</td><td data-label=\"Default\">");
        if (is_default)
            ml_web_page_add (exchange, "<span class=\"badge\">Default</span>");
        else if (!expired)
            ml_web_page_add (exchange,
                             "<form class=\"inline\" method=\"post\" action=\"/methods/default\">"
                             "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                             "<input type=\"hidden\" name=\"method_id\" value=\"{}\">"
                             "<button type=\"submit\" aria-label=\"Make {} the default\">Make "
                             "default</button></form>",
                             csrf, id, label);
        ml_web_page_add (exchange, "</td><td data-label=\"Actions\">");
        if (*autopay)
            ml_web_page_add (exchange, "<span class=\"small\">Pays your Auto-Pay ({})</span>",
                             autopay);
        else
            ml_web_page_add (exchange,
                             "<form class=\"inline\" method=\"post\" action=\"/methods/remove\">"
                             "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                             "<input type=\"hidden\" name=\"method_id\" value=\"{}\">"
                             "<button type=\"submit\" aria-label=\"Remove {}\">Remove</button>"
                             "</form>",
                             csrf, id, label);
        ml_web_page_add (exchange, "</td></tr>\n");
    }
    if (json_array_size (methods) > 0)
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    ml_web_page_add (exchange,
                     "<p class=\"hint\">New cards are saved when you pay: choose \"Save this "
                     "card\" on the payment page. Your default card is the one offered first.</p>"
                     "\n<p class=\"hint\">We keep only the card's type, last four digits and "
                     "expiry; the card number stays with our card processor.</p>\n");
    ml_web_page_end (exchange);
}

void ml_web_page_methods (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    json_t *session = NULL;
    json_t *reply = s_account_call (exchange, "portal-methods", &session, token, sizeof token);
    if (!reply)
        return;
    const char *done = ml_web_form_get (exchange->query, "done");
    const char *notice = !done                           ? NULL
                         : strcmp (done, "default") == 0 ? "Your default card is changed."
                         : strcmp (done, "removed") == 0 ? "The card is removed."
                                                         : NULL;
    s_methods_page (exchange, session, reply, "notice", notice);
    json_decref (reply);
    json_decref (session);
}

//  A method id from a form: digits only, or 0 (which the core finds nobody's).
static json_int_t s_method_id (const char *text)
{
    size_t length = text ? strlen (text) : 0;
    if (length == 0 || length > 18 || strspn (text, "0123456789") != length)
        return 0;
    return (json_int_t)strtoll (text, NULL, 10);
}

//  POST /methods/default and /methods/remove.
void ml_web_page_method_change (ml_web_exchange_t *exchange)
{
    bool remove = strcmp (exchange->path, "/methods/remove") == 0;
    char token[S_TOKEN_MAX + 1];
    json_t *session = ml_web_page_session (exchange, token, sizeof token);
    if (!session)
        return;
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *reply = ml_web_page_call (
        exchange, json_pack ("{s:s, s:s, s:s, s:I}", "op",
                             remove ? "portal-method-remove" : "portal-method-default", "session",
                             token, "csrf", csrf ? csrf : "", "method_id",
                             s_method_id (ml_web_form_get (exchange->form, "method_id"))));
    if (!reply) {
        json_decref (session);
        return;
    }
    if (s_ok (reply))
        ml_web_page_redirect (exchange, remove ? "/methods?done=removed" : "/methods?done=default");
    else if (json_is_true (json_object_get (reply, "session_ended")))
        ml_web_page_refused (exchange, reply);
    else if (json_is_false (json_object_get (reply, "csrf")))
        ml_web_page_error (exchange, 403, S_FORM_EXPIRED);
    else if (strcmp (s_text (reply, "error"), "not found") == 0)
        ml_web_page_error (exchange, 404, S_NOT_YOURS);
    else {
        //  A refusal for a person (the card pays Auto-Pay, it expired): the list again.
        json_t *methods = ml_web_page_call (
            exchange, json_pack ("{s:s, s:s}", "op", "portal-methods", "session", token));
        if (methods && s_ok (methods)) {
            char message[400];
            snprintf (message, sizeof message, "%s", s_text (reply, "error"));
            if (*message >= 'a' && *message <= 'z')
                *message = (char)(*message - 'a' + 'A');
            s_methods_page (exchange, session, methods, "error", message);
            exchange->status = 409;
        } else if (methods)
            ml_web_page_refused (exchange, methods);
        json_decref (methods);
    }
    json_decref (reply);
    json_decref (session);
}

//  ---------------------------------------------------------------------------------------
//  /history and /history/PAYMENT

static const char *s_source (const char *source)
{
    return strcmp (source, "portal") == 0     ? "Online, in this portal"
           : strcmp (source, "link") == 0     ? "Payment link"
           : strcmp (source, "firm") == 0     ? "Charged by the firm"
           : strcmp (source, "autopay") == 0  ? "Auto-Pay"
           : strcmp (source, "recorded") == 0 ? "Recorded by the firm"
                                              : source;
}

//  What became of a charge's posting, for a person.
static const char *s_fate (json_t *posting)
{
    const char *status = s_text (posting, "status");
    return !json_is_object (posting)             ? NULL
           : strcmp (status, "posted") == 0      ? "Posted to your account"
           : strcmp (status, "pending") == 0     ? "Being posted to your account"
           : strcmp (status, "delivered") == 0   ? "Being posted to your account"
           : strcmp (status, "reallocated") == 0 ? "Applied by the firm"
           : strcmp (status, "rejected") == 0    ? "The firm is reviewing where it applies"
           : strcmp (status, "reversed") == 0    ? "Reversed in your account"
                                                 : "Being posted to your account";
}

static void s_charge_summary (ml_web_exchange_t *exchange, json_t *charge)
{
    char amount[64];
    ml_web_page_money (charge, "amount_minor", s_text (charge, "currency"), amount, sizeof amount);
    bool trust = strcmp (s_text (charge, "account_type"), "trust") == 0;
    ml_web_page_add (exchange, "<span class=\"fate\">{}: {}, <span class=\"status\">{}</span>",
                     trust ? "Trust" : "Operating", amount, s_text (charge, "status"));
    const char *fate = s_fate (json_object_get (charge, "posting"));
    if (fate)
        ml_web_page_add (exchange, "; {}", fate);
    ml_web_page_add (exchange, "</span>");
}

void ml_web_page_history (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    json_t *session = NULL;
    json_t *reply = s_account_call (exchange, "portal-history", &session, token, sizeof token);
    if (!reply)
        return;
    ml_web_page_begin (exchange, "Payment history", s_firm (reply, session));
    ml_web_page_signed_in_bar (exchange, session);
    json_t *payments = json_object_get (reply, "payments");
    if (json_array_size (payments) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">No payments yet.</p>\n");
    else
        ml_web_page_add (exchange,
                         "<table class=\"history\">\n<thead><tr><th scope=\"col\">Date</th>"
                         "<th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Paid "
                         "with</th><th scope=\"col\">How</th><th scope=\"col\">Status</th>"
                         "<th scope=\"col\">Receipt</th></tr></thead>\n<tbody>\n");
    size_t index;
    json_t *payment;
    json_array_foreach (payments, index, payment)
    {
        char amount[64], date[11], paid_with[96], receipt[80];
        ml_web_page_money (payment, "amount_minor", s_text (payment, "currency"), amount,
                           sizeof amount);
        snprintf (date, sizeof date, "%.10s", s_text (payment, "date"));
        const char *last4 = s_text (payment, "last4");
        snprintf (paid_with, sizeof paid_with, "%s", *last4 ? "" : "-");
        if (*last4)
            snprintf (paid_with, sizeof paid_with, "%s ending %s",
                      s_brand (s_text (payment, "brand")), last4);
        snprintf (receipt, sizeof receipt, "/history/%s", s_text (payment, "payment"));
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"Date\">{}</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td>"
                         "<td data-label=\"Paid with\">{}</td><td data-label=\"How\">{}</td>"
                         "<td data-label=\"Status\"><span class=\"status\">{}</span>",
                         date, amount, paid_with, s_source (s_text (payment, "source")),
                         s_text (payment, "status"));
        size_t item;
        json_t *charge;
        json_array_foreach (json_object_get (payment, "charges"), item, charge)
            s_charge_summary (exchange, charge);
        ml_web_page_add (exchange,
                         "</td><td data-label=\"Receipt\"><a href=\"{}\">Receipt<span "
                         "class=\"visually-hidden\"> of {} on {}</span></a></td></tr>\n",
                         receipt, amount, date);
    }
    if (json_array_size (payments) > 0)
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    ml_web_page_end (exchange);
    json_decref (reply);
    json_decref (session);
}

static void s_receipt_lines (ml_web_exchange_t *exchange, json_t *charge)
{
    const char *currency = s_text (charge, "currency");
    size_t index;
    json_t *line;
    json_array_foreach (json_object_get (charge, "lines"), index, line)
    {
        char amount[64], what[128];
        ml_web_page_money (line, "amount_minor", currency, amount, sizeof amount);
        bool trust = strcmp (s_text (line, "kind"), "trust") == 0;
        snprintf (what, sizeof what, "%s %s", trust ? "Trust deposit, matter" : "Invoice",
                  s_text (line, "reference"));
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"For\">{}</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td></tr>\n",
                         what, amount);
    }
}

void ml_web_page_receipt (ml_web_exchange_t *exchange)
{
    const char *id = exchange->path + strlen ("/history/");
    char token[S_TOKEN_MAX + 1];
    json_t *session = ml_web_page_session (exchange, token, sizeof token);
    if (!session)
        return;
    json_t *reply =
        ml_web_page_call (exchange, json_pack ("{s:s, s:s, s:s}", "op", "portal-receipt", "session",
                                               token, "payment", id));
    if (!reply) {
        json_decref (session);
        return;
    }
    if (!s_ok (reply)) {
        if (strcmp (s_text (reply, "error"), "not found") == 0)
            ml_web_page_error (exchange, 404, "There is no such payment among yours.");
        else
            ml_web_page_refused (exchange, reply);
        json_decref (reply);
        json_decref (session);
        return;
    }
    json_t *payment = json_object_get (reply, "payment");
    const char *firm = s_firm (reply, session);
    char amount[64], paid_with[96] = "-";
    ml_web_page_money (payment, "amount_minor", s_text (payment, "currency"), amount,
                       sizeof amount);
    if (*s_text (payment, "last4"))
        snprintf (paid_with, sizeof paid_with, "%s ending %s", s_brand (s_text (payment, "brand")),
                  s_text (payment, "last4"));
    json_t *payer = json_object_get (payment, "payer");
    char when[40];
    s_when (s_text (payment, "date"), when, sizeof when);
    ml_web_page_begin (exchange, "Receipt", firm);
    ml_web_page_signed_in_bar (exchange, session);
    ml_web_page_add (exchange,
                     "<p class=\"no-print\"><a href=\"/history\">Back to the payment history"
                     "</a></p>\n<section class=\"receipt\">\n<h2>{}</h2>\n<dl class=\"receipt\">"
                     "<dt>Paid by</dt><dd>{} ({})</dd>"
                     "<dt>Date</dt><dd>{}</dd>"
                     "<dt>Amount</dt><dd>{}</dd>"
                     "<dt>Paid with</dt><dd>{}</dd>"
                     "<dt>How</dt><dd>{}</dd>"
                     "<dt>Status</dt><dd><span class=\"status\">{}</span></dd>"
                     "<dt>Payment</dt><dd>{}</dd></dl>\n",
                     firm, s_text (payer, "name"), s_text (payer, "email"), when, amount, paid_with,
                     s_source (s_text (payment, "source")), s_text (payment, "status"),
                     s_text (payment, "payment"));
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        bool trust = strcmp (s_text (charge, "account_type"), "trust") == 0;
        char charged[64];
        ml_web_page_money (charge, "amount_minor", s_text (charge, "currency"), charged,
                           sizeof charged);
        ml_web_page_add (exchange,
                         "<h3>{}</h3>\n<table>\n<thead><tr><th scope=\"col\">For</th>"
                         "<th scope=\"col\" class=\"num\">Amount</th></tr></thead>\n<tbody>\n",
                         trust ? "Into the firm's trust account"
                               : "Into the firm's operating account");
        s_receipt_lines (exchange, charge);
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"For\">Total</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td></tr>\n</tbody>\n"
                         "</table>\n<dl class=\"receipt\"><dt>Status</dt><dd><span "
                         "class=\"status\">{}</span></dd>",
                         charged, s_text (charge, "status"));
        if (*s_text (charge, "reference"))
            ml_web_page_add (exchange, "<dt>Card reference</dt><dd>{}</dd>",
                             s_text (charge, "reference"));
        json_t *posting = json_object_get (charge, "posting");
        if (json_is_object (posting)) {
            ml_web_page_add (exchange, "<dt>In your account</dt><dd>{}</dd>", s_fate (posting));
            if (*s_text (posting, "receipt_id"))
                ml_web_page_add (exchange, "<dt>Firm's receipt</dt><dd>{}</dd>",
                                 s_text (posting, "receipt_id"));
            ml_web_page_add (exchange, "<dt>Posting</dt><dd>{}</dd>",
                             s_text (posting, "posting_id"));
        }
        size_t item;
        json_t *reversal;
        json_array_foreach (json_object_get (charge, "reversals"), item, reversal)
        {
            char back[64], label[80];
            ml_web_page_money (reversal, "amount_minor", s_text (charge, "currency"), back,
                               sizeof back);
            const char *kind = s_text (reversal, "kind");
            snprintf (label, sizeof label, "%s (%s)",
                      strcmp (kind, "void") == 0         ? "Voided"
                      : strcmp (kind, "chargeback") == 0 ? "Charged back"
                                                         : "Refunded",
                      s_text (reversal, "status"));
            char on[40];
            ml_web_page_add (exchange, "<dt>{}</dt><dd>{} on {}</dd>", label, back,
                             s_when (s_text (reversal, "date"), on, sizeof on));
        }
        ml_web_page_add (exchange, "</dl>\n");
    }
    ml_web_page_add (exchange, "</section>\n<p class=\"hint no-print\">To print this receipt, use "
                               "your browser's Print command; the page prints without the "
                               "portal's menus.</p>\n");
    ml_web_page_end (exchange);
    json_decref (reply);
    json_decref (session);
}

//  ---------------------------------------------------------------------------------------
//  /autopay

void ml_web_page_autopay (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    json_t *session = NULL;
    json_t *reply = s_account_call (exchange, "portal-autopay", &session, token, sizeof token);
    if (!reply)
        return;
    ml_web_page_begin (exchange, "Auto-Pay", s_firm (reply, session));
    ml_web_page_signed_in_bar (exchange, session);
    json_t *schedules = json_object_get (reply, "schedules");
    if (json_array_size (schedules) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">You have no Auto-Pay.</p>\n");
    size_t index;
    json_t *schedule;
    json_array_foreach (schedules, index, schedule)
    {
        char amount[96], card[96], next[64], covers[600] = "";
        if (json_integer_value (json_object_get (schedule, "amount_minor")) == 0)
            snprintf (amount, sizeof amount, "Everything due");
        else {
            char money[64];
            ml_web_page_money (schedule, "amount_minor", s_text (schedule, "currency"), money,
                               sizeof money);
            snprintf (amount, sizeof amount, "Up to %s", money);
        }
        snprintf (card, sizeof card, "%s ending %s", s_brand (s_text (schedule, "brand")),
                  s_text (schedule, "last4"));
        const char *state = s_text (schedule, "state");
        if (strcmp (state, "active") == 0)
            snprintf (next, sizeof next, "%s%s", s_text (schedule, "next_run"),
                      json_is_true (json_object_get (schedule, "next_is_retry")) ? " (a retry)"
                                                                                 : "");
        else
            snprintf (next, sizeof next, "%s",
                      strcmp (state, "off") == 0 ? "None: paused by the firm"
                                                 : "None: nothing left to pay");
        size_t item;
        json_t *cover;
        json_array_foreach (json_object_get (schedule, "covers"), item, cover)
        {
            size_t used = strlen (covers);
            snprintf (covers + used, sizeof covers - used, "%s%s %s", used ? ", " : "",
                      s_text (cover, "level"), s_text (cover, "number"));
        }
        ml_web_page_add (exchange,
                         "<section class=\"autopay\">\n<h2>{}</h2>\n<dl class=\"receipt\">"
                         "<dt>Next payment</dt><dd>{}</dd><dt>How often</dt><dd>{}</dd>"
                         "<dt>Amount</dt><dd>{}</dd><dt>Card</dt><dd>{}</dd>"
                         "<dt>Pays for</dt><dd>{}</dd></dl>\n</section>\n",
                         s_text (schedule, "name"), next, s_text (schedule, "frequency"), amount,
                         card, *covers ? covers : "-");
    }
    ml_web_page_add (exchange, "<p class=\"hint\">The firm sets up and changes Auto-Pay; contact "
                               "them to change or stop it.</p>\n");
    ml_web_page_end (exchange);
    json_decref (reply);
    json_decref (session);
}
