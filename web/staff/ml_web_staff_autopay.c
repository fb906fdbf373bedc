/*  ml_web_staff_autopay: the staff app's Auto-Pay pages (seed 004; docs/web.md "The staff
    app", docs/autopay.md). Through the core's autopay-* ops as the staff member: billing
    changes, read-only looks, and the core keeps every object inside the member's firm.

        /staff/autopay[?payer_id=P]          the firm's schedules (or one payer's); "+ Add"
        /staff/autopay/form?payer_id=P       a new schedule; ?schedule_id=S edits one
        /staff/autopay/enroll?schedule_id=S  the payer's associations as checkboxes
        /staff/autopay/schedule?schedule_id=S  one schedule: enrollments, runs and their
                                             postings; enable, disable, delete
*/
#include "ml_web_staff_autopay_internal.h"
#include "ml_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ml_web_ap_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

//  A positive whole number from a form or query field, or 0.
long long ml_web_ap_number (ml_web_form_t *fields, const char *name)
{
    const char *text = ml_web_form_get (fields, name);
    char *end = NULL;
    long long value = text && *text ? strtoll (text, &end, 10) : 0;
    return value > 0 && end && !*end ? value : 0;
}

const char *ml_web_ap_int_text (json_t *object, const char *key, char *buf, size_t size)
{
    json_t *value = json_object_get (object, key);
    *buf = 0;
    if (json_is_integer (value))
        snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    else if (json_is_string (value))
        snprintf (buf, size, "%s", json_string_value (value));
    return buf;
}

//  A call whose reply the page needs ok: NULL after the page was answered (ended session,
//  404 for another firm's object or a role's op, 503).
json_t *ml_web_ap_call (ml_web_exchange_t *exchange, const char *token, json_t *request)
{
    json_t *reply = ml_web_staff_call (exchange, token, request);
    //  A deleted schedule, or one of another firm's (the core's "not found"), is not there.
    if (reply && !ml_web_ap_ok (reply) &&
        strncmp (ml_web_staff_text (reply, "error"), "no Auto-Pay schedule", 20) == 0) {
        ml_web_staff_not_found (exchange);
        json_decref (reply);
        return NULL;
    }
    if (reply && !ml_web_ap_ok (reply)) {
        ml_web_staff_refused (exchange, reply);
        json_decref (reply);
        return NULL;
    }
    return reply;
}

//  The session of a member of at least role least, or NULL after it answered.
json_t *ml_web_ap_session (ml_web_exchange_t *exchange, char *token, size_t size, const char *least)
{
    json_t *session = ml_web_staff_session (exchange, token, size);
    if (session && !ml_web_staff_role_allows (session, least)) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return NULL;
    }
    return session;
}

const char *ml_web_ap_frequency_name (const char *frequency)
{
    return strcmp (frequency, "weekly") == 0      ? "Weekly"
           : strcmp (frequency, "biweekly") == 0  ? "Every two weeks"
           : strcmp (frequency, "monthly") == 0   ? "Monthly"
           : strcmp (frequency, "quarterly") == 0 ? "Quarterly"
                                                  : frequency;
}

const char *ml_web_ap_brand_name (const char *brand)
{
    return strcmp (brand, "visa") == 0         ? "Visa"
           : strcmp (brand, "mastercard") == 0 ? "Mastercard"
           : strcmp (brand, "amex") == 0       ? "American Express"
           : strcmp (brand, "discover") == 0   ? "Discover"
                                               : "Card";
}

//  "Everything due" or "Up to $250.00".
const char *ml_web_ap_amount (json_t *schedule, char *buf, size_t size)
{
    if (json_integer_value (json_object_get (schedule, "amount_minor")) <= 0)
        snprintf (buf, size, "Everything due");
    else {
        char money[64];
        ml_web_page_money (schedule, "amount_minor", ml_web_staff_text (schedule, "currency"),
                           money, sizeof money);
        snprintf (buf, size, "Up to %s", money);
    }
    return buf;
}

//  The saved method of payer with method_id, as "Visa ending 4242 (12/2030)", or "#ID".
const char *ml_web_ap_method (json_t *payer, json_int_t method_id, char *buf, size_t size)
{
    snprintf (buf, size, "Saved method #%lld (removed)", (long long)method_id);
    size_t index;
    json_t *method;
    json_array_foreach (json_object_get (payer, "methods"), index, method)
    {
        if (json_integer_value (json_object_get (method, "method_id")) == method_id) {
            char month[16], year[16];
            snprintf (buf, size, "%s ending %s (%s/%s)",
                      ml_web_ap_brand_name (ml_web_staff_text (method, "brand")),
                      ml_web_staff_text (method, "last4"),
                      ml_web_ap_int_text (method, "exp_month", month, sizeof month),
                      ml_web_ap_int_text (method, "exp_year", year, sizeof year));
        }
    }
    return buf;
}

//  What an association covers, for people: "Client C-1 (Acme Corp)", "Matter ...".
const char *ml_web_ap_association (json_t *association, char *buf, size_t size)
{
    const char *level = ml_web_staff_text (association, "level");
    const char *client_name = ml_web_staff_text (association, "client_name");
    if (strcmp (level, "invoice") == 0)
        snprintf (buf, size, "Invoice %s (client %s, matter %s)",
                  ml_web_staff_text (association, "invoice_number"),
                  ml_web_staff_text (association, "client_number"),
                  ml_web_staff_text (association, "matter_number"));
    else if (strcmp (level, "matter") == 0)
        snprintf (buf, size, "Matter %s %s (client %s)",
                  ml_web_staff_text (association, "matter_number"),
                  ml_web_staff_text (association, "matter_description"),
                  ml_web_staff_text (association, "client_number"));
    else
        snprintf (buf, size, "Client %s%s%s%s", ml_web_staff_text (association, "client_number"),
                  *client_name ? " (" : "", client_name, *client_name ? ")" : "");
    return buf;
}

json_t *ml_web_ap_payer (ml_web_exchange_t *exchange, const char *token, json_int_t payer_id)
{
    json_t *reply = ml_web_ap_call (
        exchange, token, json_pack ("{s:s, s:I}", "op", "payer-show", "payer_id", payer_id));
    json_t *payer = reply ? json_incref (json_object_get (reply, "payer")) : NULL;
    json_decref (reply);
    return payer;
}

json_t *ml_web_ap_schedule (ml_web_exchange_t *exchange, const char *token, long long schedule_id)
{
    json_t *reply = ml_web_ap_call (
        exchange, token,
        json_pack ("{s:s, s:I}", "op", "autopay-show", "schedule_id", (json_int_t)schedule_id));
    json_t *schedule = reply ? json_incref (json_object_get (reply, "schedule")) : NULL;
    json_decref (reply);
    return schedule;
}

//  The list ------------------------------------------------------------------------------

void ml_web_staff_page_autopay (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_ap_session (exchange, token, sizeof token, "read");
    if (!session)
        return;
    long long payer_id = ml_web_ap_number (exchange->query, "payer_id");
    json_t *request = json_pack ("{s:s}", "op", "autopay-list");
    if (payer_id)
        json_object_set_new (request, "payer_id", json_integer (payer_id));
    json_t *payer = payer_id ? ml_web_ap_payer (exchange, token, payer_id) : NULL;
    json_t *list = payer_id && !payer ? NULL : ml_web_ap_call (exchange, token, request);
    if (!list) {
        json_decref (payer);
        json_decref (session);
        return;
    }
    //  Payers by id, for the names and cards of the firm's schedules.
    json_t *payers = json_object ();
    if (payer) {
        //  Kept by payers from here on (borrowed below).
        char id[32];
        json_object_set_new (payers, ml_web_ap_int_text (payer, "payer_id", id, sizeof id), payer);
    }
    bool billing = ml_web_staff_role_allows (session, "billing");
    char heading[300];
    snprintf (heading, sizeof heading, "Auto-Pay%s%s", payer ? ": " : "",
              payer ? ml_web_staff_text (payer, "name") : "");
    ml_web_staff_begin (exchange, heading, session);
    if (payer) //  a tab of the payer's pages (web/staff/ml_web_staff_payers.c)
        ml_web_staff_payer_tabs (exchange, payer_id, "/staff/autopay?payer_id=");
    const char *done = ml_web_form_get (exchange->query, "done");
    if (done && strcmp (done, "deleted") == 0)
        ml_web_page_message (exchange, "notice", "The schedule is deleted; its runs are kept.");
    ml_web_page_add (exchange,
                     "<p class=\"hint\">Auto-Pay charges a payer's saved card on a schedule and "
                     "pays the invoices of the associations enrolled in it, oldest first; each "
                     "payment is posted to the matter system.</p>\n");
    json_t *schedules = json_object_get (list, "schedules");
    if (json_array_size (schedules) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">No Auto-Pay schedules yet.</p>\n");
    else {
        ml_web_page_add (exchange,
                         "<table class=\"autopay\">\n<thead><tr><th scope=\"col\">Name</th>"
                         "<th scope=\"col\">Payer</th><th scope=\"col\">Card</th>"
                         "<th scope=\"col\">Deposit account</th><th scope=\"col\">Frequency"
                         "</th><th scope=\"col\">First date</th><th scope=\"col\">Amount</th>"
                         "<th scope=\"col\">State</th></tr></thead>\n<tbody>\n");
        size_t index;
        json_t *schedule;
        json_array_foreach (schedules, index, schedule)
        {
            char id[32], owner[32], card[200], amount[96];
            ml_web_ap_int_text (schedule, "schedule_id", id, sizeof id);
            ml_web_ap_int_text (schedule, "payer_id", owner, sizeof owner);
            json_t *whose = json_object_get (payers, owner);
            if (!whose) {
                whose = ml_web_ap_payer (
                    exchange, token, json_integer_value (json_object_get (schedule, "payer_id")));
                if (!whose) {
                    //  Answered (the core went away): the page so far is dropped.
                    json_decref (payers);
                    json_decref (list);
                    json_decref (session);
                    return;
                }
                json_object_set_new (payers, owner, whose);
            }
            ml_web_ap_method (whose, json_integer_value (json_object_get (schedule, "method_id")),
                              card, sizeof card);
            ml_web_page_add (
                exchange,
                "<tr data-schedule-id=\"{}\"><th scope=\"row\" data-label=\"Name\"><a "
                "href=\"/staff/autopay/schedule?schedule_id={}\">{}</a></th>"
                "<td data-label=\"Payer\"><a href=\"/staff/autopay?payer_id={}\">{}</a></td>"
                "<td data-label=\"Card\">{}</td><td data-label=\"Deposit account\">{}</td>"
                "<td data-label=\"Frequency\">{}</td><td data-label=\"First date\">{}</td>"
                "<td data-label=\"Amount\">{}</td><td data-label=\"State\" class=\"state\">{}"
                "</td></tr>\n",
                id, id, ml_web_staff_text (schedule, "name"), owner,
                ml_web_staff_text (whose, "name"), card,
                ml_web_staff_text (schedule, "account_number"),
                ml_web_ap_frequency_name (ml_web_staff_text (schedule, "frequency")),
                ml_web_staff_text (schedule, "first_date"),
                ml_web_ap_amount (schedule, amount, sizeof amount),
                json_integer_value (json_object_get (schedule, "enabled")) ? "On" : "Off");
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    }
    if (billing && payer) {
        char id[32];
        ml_web_page_add (exchange,
                         "<p><a class=\"button\" href=\"/staff/autopay/form?payer_id={}\">+ Add "
                         "Auto-Pay</a></p>\n",
                         ml_web_ap_int_text (payer, "payer_id", id, sizeof id));
    } else if (billing) {
        //  A schedule belongs to a payer: choose one first (their cards and associations).
        json_t *found = ml_web_ap_call (exchange, token,
                                        json_pack ("{s:s, s:i}", "op", "payer-list", "limit", 500));
        if (!found) {
            json_decref (payers);
            json_decref (list);
            json_decref (session);
            return;
        }
        ml_web_page_add (exchange, "<h2 id=\"add\">Add Auto-Pay</h2>\n<form method=\"get\" "
                                   "action=\"/staff/autopay/form\" class=\"stack\">\n"
                                   "<label for=\"add-payer\">Payer</label>\n"
                                   "<select id=\"add-payer\" name=\"payer_id\" required>\n");
        size_t index;
        json_t *entry;
        json_array_foreach (json_object_get (found, "payers"), index, entry)
        {
            char id[32];
            ml_web_page_add (exchange, "<option value=\"{}\">{} ({})</option>\n",
                             ml_web_ap_int_text (entry, "payer_id", id, sizeof id),
                             ml_web_staff_text (entry, "name"), ml_web_staff_text (entry, "email"));
        }
        ml_web_page_add (exchange, "</select>\n<button type=\"submit\">+ Add Auto-Pay</button>\n"
                                   "</form>\n");
        json_decref (found);
    }
    if (payer)
        ml_web_page_add (exchange, "<p><a href=\"/staff/autopay\">Every schedule of the "
                                   "firm</a></p>\n");
    ml_web_staff_end (exchange);
    json_decref (payers);
    json_decref (list);
    json_decref (session);
}

//  The schedule form ---------------------------------------------------------------------

//  What the form shows: the schedule's values (editing), the values sent back (a refusal),
//  or the defaults (new).
typedef struct {
    char method_id[32], name[256], account[80], ar_message[1100], frequency[16], day_rule[8],
        first_date[16], amount[48];
    bool pay_all;
} s_fields_t;

static void s_fields_from_schedule (s_fields_t *fields, json_t *schedule)
{
    memset (fields, 0, sizeof *fields);
    ml_web_ap_int_text (schedule, "method_id", fields->method_id, sizeof fields->method_id);
    snprintf (fields->name, sizeof fields->name, "%s", ml_web_staff_text (schedule, "name"));
    snprintf (fields->account, sizeof fields->account, "%s",
              ml_web_staff_text (schedule, "account_number"));
    snprintf (fields->ar_message, sizeof fields->ar_message, "%s",
              ml_web_staff_text (schedule, "ar_message"));
    snprintf (fields->frequency, sizeof fields->frequency, "%s",
              ml_web_staff_text (schedule, "frequency"));
    snprintf (fields->day_rule, sizeof fields->day_rule, "%s",
              ml_web_staff_text (schedule, "day_rule"));
    snprintf (fields->first_date, sizeof fields->first_date, "%s",
              ml_web_staff_text (schedule, "first_date"));
    json_int_t minor = json_integer_value (json_object_get (schedule, "amount_minor"));
    fields->pay_all = minor <= 0;
    if (minor > 0)
        ml_money_decimal (minor, ml_money_exponent (ml_web_staff_text (schedule, "currency")),
                          fields->amount, sizeof fields->amount);
}

static void s_fields_from_form (s_fields_t *fields, ml_web_form_t *form)
{
    memset (fields, 0, sizeof *fields);
#define S_COPY(member, name)                                                                       \
    snprintf (fields->member, sizeof fields->member, "%s",                                         \
              ml_web_form_get (form, name) ? ml_web_form_get (form, name) : "")
    S_COPY (method_id, "method_id");
    S_COPY (name, "name");
    S_COPY (account, "account");
    S_COPY (ar_message, "ar_message");
    S_COPY (frequency, "frequency");
    S_COPY (day_rule, "day_rule");
    S_COPY (first_date, "first_date");
    S_COPY (amount, "amount");
#undef S_COPY
    const char *pay = ml_web_form_get (form, "pay");
    fields->pay_all = !pay || strcmp (pay, "upto") != 0;
}

static void s_option (ml_web_exchange_t *exchange, const char *value, const char *label,
                      const char *current)
{
    ml_web_page_add (exchange,
                     strcmp (value, current) == 0 ? "<option value=\"{}\" selected>{}</option>\n"
                                                  : "<option value=\"{}\">{}</option>\n",
                     value, label);
}

static void s_form (ml_web_exchange_t *exchange, const char *token, json_t *session, json_t *payer,
                    long long schedule_id, const s_fields_t *fields, const char *error)
{
    json_t *accounts = ml_web_ap_call (exchange, token, json_pack ("{s:s}", "op", "account-list"));
    if (!accounts)
        return;
    char heading[300], payer_id[32], schedule[32];
    ml_web_ap_int_text (payer, "payer_id", payer_id, sizeof payer_id);
    snprintf (schedule, sizeof schedule, "%lld", schedule_id);
    snprintf (heading, sizeof heading, "%s Auto-Pay for %s", schedule_id ? "Edit" : "Add",
              ml_web_staff_text (payer, "name"));
    ml_web_staff_begin (exchange, heading, session);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/autopay/form\" class=\"stack "
                     "autopay-form\">\n<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n",
                     ml_web_staff_csrf (session));
    if (schedule_id)
        ml_web_page_add (exchange, "<input type=\"hidden\" name=\"schedule_id\" value=\"{}\">\n",
                         schedule);
    else
        ml_web_page_add (exchange, "<input type=\"hidden\" name=\"payer_id\" value=\"{}\">\n",
                         payer_id);
    //  1. A saved method of this payer's.
    json_t *methods = json_object_get (payer, "methods");
    if (json_array_size (methods) == 0)
        ml_web_page_add (exchange,
                         "<p class=\"error\">This payer has no saved payment method: save a "
                         "card on the payer's page first.</p>\n");
    else {
        ml_web_page_add (exchange, "<label for=\"ap-method\">Payment method</label>\n<select "
                                   "id=\"ap-method\" name=\"method_id\" required>\n");
        size_t index;
        json_t *method;
        json_array_foreach (methods, index, method)
        {
            char id[32], label[200];
            ml_web_ap_int_text (method, "method_id", id, sizeof id);
            s_option (exchange, id,
                      ml_web_ap_method (payer,
                                        json_integer_value (json_object_get (method, "method_id")),
                                        label, sizeof label),
                      fields->method_id);
        }
        ml_web_page_add (exchange, "</select>\n");
    }
    //  2. Name; 3. the deposit account (operating only: Auto-Pay never pays into trust).
    ml_web_page_add (exchange,
                     "<label for=\"ap-name\">Schedule name</label>\n<input id=\"ap-name\" "
                     "name=\"name\" type=\"text\" required maxlength=\"200\" value=\"{}\">\n"
                     "<label for=\"ap-account\">Deposit account</label>\n"
                     "<select id=\"ap-account\" name=\"account\" required "
                     "aria-describedby=\"ap-account-hint\">\n",
                     fields->name);
    size_t index;
    json_t *account;
    json_array_foreach (json_object_get (accounts, "accounts"), index, account)
    {
        if (strcmp (ml_web_staff_text (account, "account_type"), "OPERATING") != 0)
            continue;
        char label[200];
        snprintf (label, sizeof label, "%s (operating, %s)",
                  ml_web_staff_text (account, "account_number"),
                  ml_web_staff_text (account, "currency"));
        s_option (exchange, ml_web_staff_text (account, "account_number"), label, fields->account);
    }
    ml_web_page_add (
        exchange,
        "</select>\n<p class=\"hint\" id=\"ap-account-hint\">Operating accounts only: Auto-Pay "
        "never pays into trust.</p>\n"
        "<label for=\"ap-message\">A/R message (optional)</label>\n"
        "<textarea id=\"ap-message\" name=\"ar_message\" maxlength=\"1000\" rows=\"2\" "
        "aria-describedby=\"ap-message-hint\">{}</textarea>\n<p class=\"hint\" "
        "id=\"ap-message-hint\">Goes with each posting into the firm's ledger; the payer never "
        "sees it.</p>\n<label for=\"ap-frequency\">Frequency</label>\n<select "
        "id=\"ap-frequency\" name=\"frequency\" required>\n",
        fields->ar_message);
    const char *frequency = *fields->frequency ? fields->frequency : "monthly";
    s_option (exchange, "weekly", "Weekly", frequency);
    s_option (exchange, "biweekly", "Every two weeks", frequency);
    s_option (exchange, "monthly", "Monthly", frequency);
    s_option (exchange, "quarterly", "Quarterly", frequency);
    ml_web_page_add (exchange,
                     "</select>\n<label for=\"ap-first\">Date of the first payment</label>\n"
                     "<input id=\"ap-first\" name=\"first_date\" type=\"date\" required "
                     "value=\"{}\">\n<label for=\"ap-day-rule\">When a month has no such day "
                     "(monthly and quarterly)</label>\n<select id=\"ap-day-rule\" "
                     "name=\"day_rule\">\n",
                     fields->first_date);
    const char *rule = *fields->day_rule ? fields->day_rule : "last";
    s_option (exchange, "last", "Pay on that month's last day", rule);
    s_option (exchange, "next", "Pay on the 1st of the next month (quarterly)", rule);
    ml_web_page_add (
        exchange,
        "</select>\n<fieldset>\n<legend>Each time the schedule runs</legend>\n"
        "<div class=\"check\"><input id=\"ap-pay-all\" type=\"radio\" name=\"pay\" "
        "value=\"all\"{}><label for=\"ap-pay-all\">Pay off all outstanding invoices</label>"
        "</div>\n<div class=\"check\"><input id=\"ap-pay-upto\" type=\"radio\" name=\"pay\" "
        "value=\"upto\"{}><label for=\"ap-pay-upto\">Pay up to an amount</label></div>\n"
        "<label for=\"ap-amount\">Amount (when paying up to an amount)</label>\n"
        "<input id=\"ap-amount\" name=\"amount\" type=\"text\" inputmode=\"decimal\" "
        "maxlength=\"20\" value=\"{}\" aria-describedby=\"ap-amount-hint\">\n"
        "<p class=\"hint\" id=\"ap-amount-hint\">Invoices are paid oldest to newest until the "
        "amount is met.</p>\n</fieldset>\n",
        fields->pay_all ? " checked" : "", fields->pay_all ? "" : " checked", fields->amount);
    ml_web_page_add (exchange, "<div class=\"actions\"><button type=\"submit\" name=\"action\" "
                               "value=\"enroll\">Save and Manage Enrollments</button>\n<button "
                               "type=\"submit\" name=\"action\" value=\"save\">Save</button>\n");
    if (schedule_id)
        ml_web_page_add (exchange, "<a href=\"/staff/autopay/schedule?schedule_id={}\">Cancel</a>",
                         schedule);
    else
        ml_web_page_add (exchange, "<a href=\"/staff/autopay?payer_id={}\">Cancel</a>", payer_id);
    ml_web_page_add (exchange, "</div>\n</form>\n");
    if (schedule_id)
        ml_web_page_add (exchange, "<p class=\"hint\">After a change the schedule runs from "
                                   "today on: dates already passed are not charged.</p>\n");
    ml_web_staff_end (exchange);
    json_decref (accounts);
}

void ml_web_staff_page_autopay_form (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_ap_session (exchange, token, sizeof token, "billing");
    if (!session)
        return;
    bool post = strcmp (exchange->method, "POST") == 0;
    ml_web_form_t *fields_in = post ? exchange->form : exchange->query;
    long long schedule_id = ml_web_ap_number (fields_in, "schedule_id");
    long long payer_id = ml_web_ap_number (fields_in, "payer_id");
    json_t *schedule = schedule_id ? ml_web_ap_schedule (exchange, token, schedule_id) : NULL;
    if (schedule_id && !schedule) {
        json_decref (session);
        return;
    }
    if (schedule)
        payer_id = json_integer_value (json_object_get (schedule, "payer_id"));
    if (!payer_id) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return;
    }
    json_t *payer = ml_web_ap_payer (exchange, token, payer_id);
    if (!payer) {
        json_decref (schedule);
        json_decref (session);
        return;
    }
    s_fields_t fields;
    if (!post) {
        if (schedule)
            s_fields_from_schedule (&fields, schedule);
        else
            memset (&fields, 0, sizeof fields), fields.pay_all = true;
        s_form (exchange, token, session, payer, schedule_id, &fields, NULL);
        goto done;
    }
    s_fields_from_form (&fields, exchange->form);
    const char *problem = NULL;
    char *end = NULL;
    long long method_id = *fields.method_id ? strtoll (fields.method_id, &end, 10) : 0;
    if (method_id <= 0 || (end && *end))
        problem = "Choose one of the payer's saved payment methods.";
    else if (!fields.pay_all && !*fields.amount)
        problem = "Enter the amount to pay up to, or choose to pay off all outstanding invoices.";
    if (problem) {
        s_form (exchange, token, session, payer, schedule_id, &fields, problem);
        exchange->status = 400;
        goto done;
    }
    //  The CSRF token is the form's, checked by the core.
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *request =
        json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "op",
                   schedule_id ? "autopay-edit" : "autopay-add", "csrf", csrf ? csrf : "",
                   "method_id", (json_int_t)method_id, "name", fields.name, "account",
                   fields.account, "ar_message", fields.ar_message, "frequency", fields.frequency,
                   "day_rule", fields.day_rule, "amount", fields.pay_all ? "all" : fields.amount);
    if (!request) {
        //  Text cut inside a character (a field far past its limit): not JSON text.
        s_form (exchange, token, session, payer, schedule_id, &fields,
                "A field is too long; shorten it and try again.");
        exchange->status = 400;
        goto done;
    }
    if (schedule_id)
        json_object_set_new (request, "schedule_id", json_integer (schedule_id));
    else
        json_object_set_new (request, "payer_id", json_integer (payer_id));
    //  An unchanged first date stays out of an edit: it may be past by now, and a schedule
    //  runs from today on after any change anyway.
    if (!schedule || strcmp (fields.first_date, ml_web_staff_text (schedule, "first_date")) != 0)
        json_object_set_new (request, "first_date", json_string (fields.first_date));
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply || ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        goto done;
    }
    if (!ml_web_ap_ok (reply)) {
        s_form (exchange, token, session, payer, schedule_id, &fields,
                ml_web_staff_text (reply, "error"));
        exchange->status = 400;
        json_decref (reply);
        goto done;
    }
    char id[32], location[120];
    ml_web_ap_int_text (json_object_get (reply, "schedule"), "schedule_id", id, sizeof id);
    const char *action = ml_web_form_get (exchange->form, "action");
    bool enroll = action && strcmp (action, "enroll") == 0;
    snprintf (location, sizeof location, "%s?schedule_id=%s%s",
              enroll ? "/staff/autopay/enroll" : "/staff/autopay/schedule", id,
              enroll ? "" : "&done=saved");
    json_t *warnings = json_object_get (reply, "warnings");
    if (json_array_size (warnings) == 0)
        ml_web_page_redirect (exchange, location);
    else {
        //  What staff must know before going on (no one gets the failure alert, ...).
        ml_web_staff_begin (exchange, "Auto-Pay saved", session);
        ml_web_page_add (exchange, "<p class=\"notice\">The schedule is saved.</p>\n"
                                   "<ul class=\"warnings\">\n");
        size_t index;
        json_t *warning;
        json_array_foreach (warnings, index, warning)
        {
            ml_web_page_add (exchange, "<li class=\"warning\">{}</li>\n",
                             json_string_value (warning));
        }
        ml_web_page_add (exchange, "</ul>\n<p><a class=\"button\" href=\"{}\">{}</a></p>\n",
                         location, enroll ? "Manage Enrollments" : "Continue");
        ml_web_staff_end (exchange);
    }
    json_decref (reply);
done:
    json_decref (payer);
    json_decref (schedule);
    json_decref (session);
}
