/*  ml_web_staff_autopay_show: the staff app's Auto-Pay enrollments and a schedule's page
    (see web/staff/ml_web_staff_autopay.c): the payer's associations as checkboxes, "Enroll and
    Save"; the schedule with its enrollments and runs, their outcomes and postings; enable,
    disable, delete.
*/
#include "ml_web_staff_autopay_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  How many of a schedule's newest runs show their postings' state (a year of weekly runs is
//  53: beyond this the page would make too many calls to the core).
#define S_RUNS_LOOKED_UP 24

//  Enrollments ---------------------------------------------------------------------------

static bool s_enrolled (json_t *schedule, json_int_t association_id)
{
    size_t index;
    json_t *enrollment;
    json_array_foreach (json_object_get (schedule, "enrollments"), index, enrollment)
    {
        if (json_integer_value (json_object_get (enrollment, "association_id")) == association_id &&
            json_is_null (json_object_get (enrollment, "ended_at")))
            return true;
    }
    return false;
}

void ml_web_staff_page_autopay_enroll (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_ap_session (exchange, token, sizeof token, "billing");
    if (!session)
        return;
    bool post = strcmp (exchange->method, "POST") == 0;
    long long schedule_id =
        ml_web_ap_number (post ? exchange->form : exchange->query, "schedule_id");
    if (!schedule_id) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return;
    }
    json_t *schedule = ml_web_ap_schedule (exchange, token, schedule_id);
    json_t *list =
        schedule ? ml_web_ap_call (exchange, token,
                                   json_pack ("{s:s, s:O}", "op", "association-list", "payer_id",
                                              json_object_get (schedule, "payer_id")))
                 : NULL;
    if (!list) {
        json_decref (schedule);
        json_decref (session);
        return;
    }
    json_t *associations = json_object_get (list, "associations");
    char id[32];
    snprintf (id, sizeof id, "%lld", schedule_id);
    if (post) {
        //  Each association to the state its box asks for: enrolled or not.
        const char *csrf = ml_web_form_get (exchange->form, "csrf");
        size_t index;
        json_t *association;
        json_array_foreach (associations, index, association)
        {
            json_int_t association_id =
                json_integer_value (json_object_get (association, "association_id"));
            char field[48];
            snprintf (field, sizeof field, "association-%lld", (long long)association_id);
            bool want = ml_web_form_get (exchange->form, field) != NULL;
            if (want == s_enrolled (schedule, association_id))
                continue;
            json_t *reply = ml_web_staff_call (
                exchange, token,
                json_pack ("{s:s, s:s, s:I, s:I}", "op",
                           want ? "autopay-enroll" : "autopay-unenroll", "csrf", csrf ? csrf : "",
                           "schedule_id", (json_int_t)schedule_id, "association_id",
                           association_id));
            if (!reply || ml_web_staff_answered (exchange, reply)) {
                json_decref (reply);
                goto done;
            }
            if (!ml_web_ap_ok (reply)) {
                ml_web_staff_refused (exchange, reply);
                json_decref (reply);
                goto done;
            }
            json_decref (reply);
        }
        char location[120];
        snprintf (location, sizeof location, "/staff/autopay/schedule?schedule_id=%s&done=enrolled",
                  id);
        ml_web_page_redirect (exchange, location);
        goto done;
    }
    char heading[300];
    snprintf (heading, sizeof heading, "Enrollments: %s", ml_web_staff_text (schedule, "name"));
    ml_web_staff_begin (exchange, heading, session);
    if (json_array_size (associations) == 0)
        ml_web_page_add (exchange,
                         "<p class=\"empty\">This payer has no associations yet: add them on the "
                         "payer's Associations tab, then enroll them here.</p>\n"
                         "<p><a href=\"/staff/autopay/schedule?schedule_id={}\">Back to the "
                         "schedule</a></p>\n",
                         id);
    else {
        ml_web_page_add (exchange,
                         "<p class=\"hint\">Check each association this schedule pays for. Client "
                         "and matter associations pay their open invoices, new ones too, for a "
                         "year; an invoice association is a payment plan that ends when the "
                         "invoice is paid.</p>\n<form method=\"post\" "
                         "action=\"/staff/autopay/enroll\" class=\"stack enrollments\">\n"
                         "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n<input "
                         "type=\"hidden\" name=\"schedule_id\" value=\"{}\">\n<fieldset>\n"
                         "<legend>The payer's associations</legend>\n",
                         ml_web_staff_csrf (session), id);
        size_t index;
        json_t *association;
        json_array_foreach (associations, index, association)
        {
            char association_id[32], label[400];
            ml_web_ap_int_text (association, "association_id", association_id,
                                sizeof association_id);
            bool enrolled = s_enrolled (
                schedule, json_integer_value (json_object_get (association, "association_id")));
            ml_web_page_add (exchange,
                             "<div class=\"check\"><input type=\"checkbox\" "
                             "id=\"association-{}\" name=\"association-{}\" value=\"on\"{}>"
                             "<label for=\"association-{}\">{}</label></div>\n",
                             association_id, association_id, enrolled ? " checked" : "",
                             association_id,
                             ml_web_ap_association (association, label, sizeof label));
        }
        ml_web_page_add (exchange,
                         "</fieldset>\n<div class=\"actions\"><button type=\"submit\">Enroll and "
                         "Save</button> <a href=\"/staff/autopay/schedule?schedule_id={}\">"
                         "Cancel</a></div>\n</form>\n",
                         id);
    }
    ml_web_staff_end (exchange);
done:
    json_decref (list);
    json_decref (schedule);
    json_decref (session);
}

//  One schedule ----------------------------------------------------------------------------

static const char *s_outcome_name (const char *status)
{
    return strcmp (status, "paid") == 0          ? "Paid"
           : strcmp (status, "nothing_due") == 0 ? "Nothing due"
           : strcmp (status, "declined") == 0    ? "Declined"
           : strcmp (status, "error") == 0       ? "Failed"
           : strcmp (status, "pending") == 0     ? "Waiting for the processor"
           : strcmp (status, "scheduled") == 0   ? "Retry scheduled"
           : strcmp (status, "started") == 0     ? "Running"
                                                 : status;
}

//  The run's payment's postings as the core knows them, each {uuid, state} appended to found.
//  false after the page was answered.
static bool s_run_postings (ml_web_exchange_t *exchange, const char *token, json_t *run,
                            json_t *found)
{
    const char *payment = ml_web_staff_text (run, "payment_uuid");
    if (!*payment)
        return true;
    json_t *shown = ml_web_ap_call (
        exchange, token, json_pack ("{s:s, s:s}", "op", "payment-show", "payment_uuid", payment));
    if (!shown)
        return false;
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (json_object_get (shown, "payment"), "charges"), index,
                        charge)
    {
        const char *uuid = ml_web_staff_text (charge, "posting_uuid");
        if (!*uuid)
            continue;
        json_t *posting = ml_web_staff_call (
            exchange, token, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid));
        if (!posting) {
            json_decref (shown);
            return false;
        }
        const char *state = ml_web_staff_text (json_object_get (posting, "posting"), "status");
        json_array_append_new (
            found, json_pack ("{s:s, s:s}", "uuid", uuid, "state", *state ? state : "unknown"));
        json_decref (posting);
    }
    json_decref (shown);
    return true;
}

static void s_button (ml_web_exchange_t *exchange, json_t *session, const char *id,
                      const char *action, const char *label)
{
    ml_web_page_add (exchange,
                     "<form class=\"inline\" method=\"post\" action=\"/staff/autopay/schedule\">"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"schedule_id\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"action\" value=\"{}\">"
                     "<button type=\"submit\">{}</button></form>\n",
                     ml_web_staff_csrf (session), id, action, label);
}

static const char *s_done (const char *done)
{
    static const char *const notices[][2] = {
        {"saved", "The schedule is saved."},
        {"enrolled", "The enrollments are saved."},
        {"enable", "The schedule is on: it runs from today on."},
        {"disable", "The schedule is off: it makes no runs until it is enabled."},
    };
    for (size_t index = 0; done && index < sizeof notices / sizeof notices[0]; index++)
        if (strcmp (done, notices[index][0]) == 0)
            return notices[index][1];
    return NULL;
}

static void s_show (ml_web_exchange_t *exchange, const char *token, json_t *session,
                    long long schedule_id, const char *notice, const char *error)
{
    json_t *schedule = ml_web_ap_schedule (exchange, token, schedule_id);
    json_t *payer =
        schedule ? ml_web_ap_payer (exchange, token,
                                    json_integer_value (json_object_get (schedule, "payer_id")))
                 : NULL;
    json_t *list =
        payer ? ml_web_ap_call (exchange, token,
                                json_pack ("{s:s, s:O}", "op", "association-list", "payer_id",
                                           json_object_get (schedule, "payer_id")))
              : NULL;
    if (!list) {
        json_decref (payer);
        json_decref (schedule);
        return;
    }
    //  The runs' postings first: a call that fails answers the page itself. Only the newest
    //  runs' are looked up (two calls each); older runs name their payment.
    json_t *runs = json_object_get (schedule, "runs");
    json_t *postings = json_array ();
    size_t index;
    json_t *run;
    json_array_foreach (runs, index, run)
    {
        json_t *found = json_array ();
        json_array_append_new (postings, found);
        if (index + S_RUNS_LOOKED_UP < json_array_size (runs))
            continue;
        if (!s_run_postings (exchange, token, run, found)) {
            json_decref (postings);
            json_decref (list);
            json_decref (payer);
            json_decref (schedule);
            return;
        }
    }
    char id[32], payer_id[32], card[200], amount[96];
    snprintf (id, sizeof id, "%lld", schedule_id);
    ml_web_ap_int_text (payer, "payer_id", payer_id, sizeof payer_id);
    const char *state = ml_web_staff_text (schedule, "state");
    char heading[300];
    snprintf (heading, sizeof heading, "Auto-Pay: %s", ml_web_staff_text (schedule, "name"));
    ml_web_staff_begin (exchange, heading, session);
    ml_web_page_message (exchange, "notice", notice);
    ml_web_page_message (exchange, "error", error);
    char state_text[300];
    snprintf (state_text, sizeof state_text, "%s%s%s",
              strcmp (state, "active") == 0 ? "On"
              : strcmp (state, "off") == 0  ? "Off"
                                            : "Ended: makes no more runs",
              *ml_web_staff_text (schedule, "state_reason") ? " - " : "",
              ml_web_staff_text (schedule, "state_reason"));
    ml_web_page_add (
        exchange,
        "<dl class=\"receipt schedule\"><dt>State</dt><dd class=\"state\">{}</dd>"
        "<dt>Payer</dt><dd><a href=\"/staff/autopay?payer_id={}\">{}</a></dd>"
        "<dt>Payment method</dt><dd>{}</dd><dt>Deposit account</dt><dd>{}</dd>"
        "<dt>A/R message</dt><dd>{}</dd><dt>Frequency</dt><dd>{}</dd>"
        "<dt>First date</dt><dd>{}</dd><dt>Each run pays</dt><dd>{}</dd>"
        "<dt>Created by</dt><dd>{}</dd></dl>\n",
        state_text, payer_id, ml_web_staff_text (payer, "name"),
        ml_web_ap_method (payer, json_integer_value (json_object_get (schedule, "method_id")), card,
                          sizeof card),
        ml_web_staff_text (schedule, "account_number"),
        *ml_web_staff_text (schedule, "ar_message") ? ml_web_staff_text (schedule, "ar_message")
                                                    : "-",
        ml_web_ap_frequency_name (ml_web_staff_text (schedule, "frequency")),
        ml_web_staff_text (schedule, "first_date"),
        ml_web_ap_amount (schedule, amount, sizeof amount),
        ml_web_staff_text (schedule, "created_by"));
    if (ml_web_staff_role_allows (session, "billing")) {
        ml_web_page_add (exchange,
                         "<div class=\"actions\"><a class=\"button\" "
                         "href=\"/staff/autopay/form?schedule_id={}\">Edit</a>\n<a "
                         "class=\"button\" href=\"/staff/autopay/enroll?schedule_id={}\">Manage "
                         "Enrollments</a>\n",
                         id, id);
        if (strcmp (state, "off") == 0)
            s_button (exchange, session, id, "enable", "Enable");
        else
            s_button (exchange, session, id, "disable", "Disable");
        s_button (exchange, session, id, "delete", "Delete");
        ml_web_page_add (exchange, "</div>\n");
    }
    //  Enrollments.
    ml_web_page_add (exchange, "<h2>Enrollments</h2>\n");
    json_t *enrollments = json_object_get (schedule, "enrollments");
    if (json_array_size (enrollments) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing is enrolled: the schedule pays "
                                   "nothing until an association is.</p>\n");
    else {
        ml_web_page_add (exchange, "<ul class=\"enrollments\">\n");
        json_t *enrollment;
        json_array_foreach (enrollments, index, enrollment)
        {
            char label[400], ended[200] = "";
            //  The association's own words when the payer still has it.
            json_t *association = enrollment;
            size_t other;
            json_t *candidate;
            json_array_foreach (json_object_get (list, "associations"), other, candidate)
            {
                if (json_integer_value (json_object_get (candidate, "association_id")) ==
                    json_integer_value (json_object_get (enrollment, "association_id")))
                    association = candidate;
            }
            if (!json_is_null (json_object_get (enrollment, "ended_at")))
                snprintf (ended, sizeof ended, " - ended %s (%s)",
                          ml_web_staff_text (enrollment, "ended_at"),
                          ml_web_staff_text (enrollment, "end_reason"));
            ml_web_page_add (exchange, "<li>{}{}</li>\n",
                             ml_web_ap_association (association, label, sizeof label), ended);
        }
        ml_web_page_add (exchange, "</ul>\n");
    }
    //  Runs, newest first.
    ml_web_page_add (exchange, "<h2>Runs</h2>\n");
    if (json_array_size (runs) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">No runs yet.</p>\n");
    else {
        ml_web_page_add (exchange, "<table class=\"runs\">\n<thead><tr><th scope=\"col\">Due</th>"
                                   "<th scope=\"col\">Attempt</th><th scope=\"col\">Ran on</th>"
                                   "<th scope=\"col\">Outcome</th><th scope=\"col\">Amount</th>"
                                   "<th scope=\"col\">Invoices</th><th scope=\"col\">Postings</th>"
                                   "<th scope=\"col\">Note</th></tr></thead>\n<tbody>\n");
        for (size_t row = json_array_size (runs); row-- > 0;) {
            run = json_array_get (runs, row);
            char attempt[16], money[64], invoices[600] = "";
            const char *currency = ml_web_staff_text (run, "currency");
            size_t item;
            json_t *line;
            json_array_foreach (json_object_get (run, "lines"), item, line)
            {
                char paid[64];
                size_t used = strlen (invoices);
                ml_web_page_money (line, "amount_minor", currency, paid, sizeof paid);
                snprintf (invoices + used, sizeof invoices - used, "%s%s %s", used ? ", " : "",
                          ml_web_staff_text (line, "invoice"), paid);
            }
            const char *reason = ml_web_staff_text (run, "reason");
            const char *status = ml_web_staff_text (run, "status");
            char outcome[200];
            snprintf (outcome, sizeof outcome, "%s%s%s", s_outcome_name (status),
                      *reason ? ": " : "", reason);
            ml_web_page_add (exchange,
                             "<tr class=\"run {}\"><th scope=\"row\" data-label=\"Due\">{}</th>"
                             "<td data-label=\"Attempt\">{}</td><td data-label=\"Ran on\">{}</td>"
                             "<td data-label=\"Outcome\" class=\"outcome\">{}</td>"
                             "<td data-label=\"Amount\">{}</td><td data-label=\"Invoices\">{}</td>"
                             "<td data-label=\"Postings\" class=\"postings\">",
                             status, ml_web_staff_text (run, "due_date"),
                             ml_web_ap_int_text (run, "attempt", attempt, sizeof attempt),
                             ml_web_staff_text (run, "run_on"), outcome,
                             ml_web_page_money (run, "amount_minor", currency, money, sizeof money),
                             *invoices ? invoices : "-");
            //  Each posting links to its page in Manage Postings; older runs name the payment.
            json_t *found = json_array_get (postings, row);
            size_t posting_index;
            json_t *posting;
            json_array_foreach (found, posting_index, posting)
            {
                const char *uuid = ml_web_staff_text (posting, "uuid");
                ml_web_page_add (exchange, "{}<a href=\"/staff/postings/{}\">{}</a> ({})",
                                 posting_index ? ", " : "", uuid, uuid,
                                 ml_web_staff_text (posting, "state"));
            }
            const char *payment = ml_web_staff_text (run, "payment_uuid");
            if (json_array_size (found) == 0) {
                if (*payment)
                    ml_web_page_add (exchange, "payment {}", payment);
                else
                    ml_web_page_add (exchange, "-");
            }
            ml_web_page_add (exchange, "</td><td data-label=\"Note\">{}</td></tr>\n",
                             *ml_web_staff_text (run, "note") ? ml_web_staff_text (run, "note")
                                                              : "-");
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    }
    ml_web_staff_end (exchange);
    json_decref (postings);
    json_decref (list);
    json_decref (payer);
    json_decref (schedule);
}

void ml_web_staff_page_autopay_schedule (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_ap_session (exchange, token, sizeof token, "read");
    if (!session)
        return;
    bool post = strcmp (exchange->method, "POST") == 0;
    long long schedule_id =
        ml_web_ap_number (post ? exchange->form : exchange->query, "schedule_id");
    if (!schedule_id) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return;
    }
    if (!post) {
        s_show (exchange, token, session, schedule_id,
                s_done (ml_web_form_get (exchange->query, "done")), NULL);
        json_decref (session);
        return;
    }
    const char *action = ml_web_form_get (exchange->form, "action");
    action = action ? action : "";
    const char *op = strcmp (action, "enable") == 0    ? "autopay-enable"
                     : strcmp (action, "disable") == 0 ? "autopay-disable"
                     : strcmp (action, "delete") == 0  ? "autopay-delete"
                                                       : NULL;
    char id[32];
    snprintf (id, sizeof id, "%lld", schedule_id);
    if (!op) {
        ml_web_page_error (exchange, 400, "That is not something this page does.");
        json_decref (session);
        return;
    }
    //  Deleting ends the schedule for good: the page asks once more first.
    if (strcmp (action, "delete") == 0 && !ml_web_form_get (exchange->form, "confirm")) {
        ml_web_staff_begin (exchange, "Delete this Auto-Pay?", session);
        ml_web_page_add (
            exchange,
            "<p>Deleting ends the schedule for good: it makes no more runs. Its runs and "
            "postings are kept. To stop it for a while, disable it instead.</p>\n"
            "<form method=\"post\" action=\"/staff/autopay/schedule\" class=\"actions\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
            "<input type=\"hidden\" name=\"schedule_id\" value=\"{}\">"
            "<input type=\"hidden\" name=\"action\" value=\"delete\">"
            "<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
            "<button type=\"submit\">Delete the schedule</button> "
            "<a href=\"/staff/autopay/schedule?schedule_id={}\">Keep it</a></form>\n",
            ml_web_staff_csrf (session), id, id);
        ml_web_staff_end (exchange);
        json_decref (session);
        return;
    }
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *reply =
        ml_web_staff_call (exchange, token,
                           json_pack ("{s:s, s:s, s:I}", "op", op, "csrf", csrf ? csrf : "",
                                      "schedule_id", (json_int_t)schedule_id));
    if (!reply || ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        json_decref (session);
        return;
    }
    if (!ml_web_ap_ok (reply)) {
        s_show (exchange, token, session, schedule_id, NULL, ml_web_staff_text (reply, "error"));
        exchange->status = 400;
    } else {
        char location[120];
        if (strcmp (action, "delete") == 0) {
            char payer[32];
            ml_web_ap_int_text (json_object_get (reply, "schedule"), "payer_id", payer,
                                sizeof payer);
            snprintf (location, sizeof location, "/staff/autopay?%s%s%sdone=deleted",
                      *payer ? "payer_id=" : "", payer, *payer ? "&" : "");
        } else
            snprintf (location, sizeof location, "/staff/autopay/schedule?schedule_id=%s&done=%s",
                      id, action);
        ml_web_page_redirect (exchange, location);
    }
    json_decref (reply);
    json_decref (session);
}
