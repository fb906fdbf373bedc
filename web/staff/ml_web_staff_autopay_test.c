/*  ml_web_staff_autopay's selftest: the Auto-Pay and Notifications pages over HTTP against a
    stand-in core (a ROUTER on an ipc endpoint) that answers their ops and checks what the
    pages ask. The real core's side is tested end to end in tests/e2e_staff_autopay.sh.
*/
#include "ml_web_staff.h"
#include "ml_web_standin.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define S_NOT_FOUND json_pack ("{s:b, s:s}", "ok", 0, "error", "not found")

//  Sessions: ANN (admin), BO (billing), RY (read). Schedule 5 is Pat's (payer 1); every
//  other schedule id is another firm's.
static json_t *s_answer (json_t *request)
{
    const char *op = json_string_value (json_object_get (request, "op"));
    const char *session = json_string_value (json_object_get (request, "staff_session"));
    const char *csrf = json_string_value (json_object_get (request, "csrf"));
    const char *role = !session                 ? NULL
                       : streq (session, "ANN") ? "admin"
                       : streq (session, "BO")  ? "billing"
                       : streq (session, "RY")  ? "read"
                                                : NULL;
    if (!role)
        return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "session ended", "session_ended", 1);
    json_t *schedule_id = json_object_get (request, "schedule_id");
    if (schedule_id && json_integer_value (schedule_id) != 5)
        return S_NOT_FOUND;
    if (streq (op, "staff-session"))
        return json_pack ("{s:b, s:s, s:{s:i, s:s, s:s, s:s, s:s, s:s}}", "ok", 1, "csrf", "CSRF",
                          "staff", "staff_id", 1, "name", session, "email", "x@example.com", "role",
                          role, "firm", "acme", "firm_name", "Smith & Jones");
    if (streq (op, "autopay-list"))
        return json_pack ("{s:b, s:[{s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i}]}",
                          "ok", 1, "schedules", "schedule_id", 5, "payer_id", 1, "method_id", 7,
                          "name", "<Rent>", "account_number", "OP-001", "currency", "USD",
                          "frequency", "monthly", "first_date", "2027-01-31", "amount_minor", 25000,
                          "day_rule", "last", "enabled", 1);
    if (streq (op, "payer-show"))
        return json_pack ("{s:b, s:{s:i, s:s, s:[{s:i, s:s, s:s, s:i, s:i}]}}", "ok", 1, "payer",
                          "payer_id", 1, "name", "Pat <Doe>", "methods", "method_id", 7, "brand",
                          "visa", "last4", "4242", "exp_month", 12, "exp_year", 2031);
    if (streq (op, "payer-list"))
        return json_pack ("{s:b, s:[{s:i, s:s, s:s}]}", "ok", 1, "payers", "payer_id", 1, "name",
                          "Pat <Doe>", "email", "pat@example.com");
    if (streq (op, "account-list"))
        return json_pack ("{s:b, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "ok", 1, "accounts",
                          "account_number", "OP-001", "account_type", "OPERATING", "currency",
                          "USD", "account_number", "TR-001", "account_type", "TRUST", "currency",
                          "USD");
    if (streq (op, "association-list"))
        return json_pack ("{s:b, s:[{s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s}]}", "ok", 1,
                          "associations", "association_id", 3, "level", "client", "client_number",
                          "C-1", "client_name", "Acme & Sons", "association_id", 4, "level",
                          "client", "client_number", "C-2", "client_name", "Other");
    if (streq (op, "autopay-show"))
        return json_pack (
            "{s:b, s:{s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:n, s:s, "
            "s:[{s:i, s:s, s:n}], s:[{s:s, s:i, s:s, s:s, s:s, s:i, s:s, s:[{s:s, s:i}], s:n, "
            "s:n}]}}",
            "ok", 1, "schedule", "schedule_id", 5, "payer_id", 1, "method_id", 7, "name", "<Rent>",
            "account_number", "OP-001", "currency", "USD", "ar_message", "A/R <note>", "frequency",
            "monthly", "first_date", "2027-01-31", "amount_minor", 25000, "created_by", "Bo (#2)",
            "state", "active", "state_reason", "day_rule", "last", "enrollments", "association_id",
            3, "level", "client", "ended_at", "runs", "due_date", "2027-01-31", "attempt", 1,
            "run_on", "2027-01-31", "payment_uuid", "pay-1", "status", "paid", "amount_minor",
            25000, "currency", "USD", "lines", "invoice", "INV-<1>", "amount_minor", 25000,
            "reason", "note");
    if (streq (op, "payment-show"))
        return json_pack ("{s:b, s:{s:[{s:s}]}}", "ok", 1, "payment", "charges", "posting_uuid",
                          "post-1");
    if (streq (op, "posting"))
        return json_pack ("{s:b, s:{s:s}}", "ok", 1, "posting", "status", "posted");
    if (streq (op, "notify-settings"))
        return streq (role, "read")
                   ? S_NOT_FOUND
                   : json_pack ("{s:b, s:s, s:[{s:s, s:s, s:b, s:[], s:[s]}, {s:s, s:s, s:b, "
                                "s:[], s:[], s:i}]}",
                                "ok", 1, "contact", "office@example.com", "events", "event",
                                "autopay_failed", "label", "Error-Failed <AutoPay>", "enabled", 1,
                                "recipients", "sends_to", "office@example.com", "event",
                                "agent_offline", "label", "Agent offline", "enabled", 0,
                                "recipients", "sends_to", "minutes", 15);
    //  Every other op changes something: the role, then the session's CSRF token.
    bool admin_op = streq (op, "notify-set");
    if ((admin_op && !streq (role, "admin")) || streq (role, "read"))
        return S_NOT_FOUND;
    if (!csrf || !streq (csrf, "CSRF"))
        return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "the form expired", "csrf", 0);
    if (streq (op, "autopay-add") || streq (op, "autopay-edit")) {
        //  An edit leaves the unchanged first date out; an add sends every field.
        json_t *first = json_object_get (request, "first_date");
        if (streq (op, "autopay-edit") && first && streq (json_string_value (first), "2027-01-31"))
            return json_pack ("{s:b, s:s}", "ok", 0, "error", "'first_date' is in the past");
        if (streq (json_string_value (json_object_get (request, "name")), "bad"))
            return json_pack ("{s:b, s:s}", "ok", 0, "error", "no <account> there");
        return json_pack ("{s:b, s:{s:i}, s:[]}", "ok", 1, "schedule", "schedule_id", 5,
                          "warnings");
    }
    if (streq (op, "autopay-enroll") || streq (op, "autopay-unenroll"))
        return json_pack ("{s:b, s:s}", "ok", 1, "done",
                          json_integer_value (json_object_get (request, "association_id")) == 4 &&
                                  streq (op, "autopay-enroll")
                              ? "4 enrolled"
                              : "?");
    if (streq (op, "notify-set") && !json_is_true (json_object_get (request, "enabled")))
        return json_pack ("{s:b, s:s}", "ok", 0, "error", "'<x>' is not an e-mail address");
    return json_pack ("{s:b}", "ok", 1);
}

//  One HTTP exchange with the session who (ml_staff cookie): the status, the response in
//  response.
static int s_http (int port, const char *method, const char *path, const char *who,
                   const char *body, char *response, size_t size)
{
    char cookie[64];
    snprintf (cookie, sizeof cookie, "ml_staff=%s", who);
    return ml_web_standin_request (port, method, path, cookie, body, response, size);
}

void ml_web_staff_autopay_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_staff_autopay: ");
    ml_web_standin_t *standin = ml_web_standin_new ("ml_web_staff_autopay_test", s_answer);
    int port = ml_web_standin_port (standin);
    size_t size = 256 * 1024;
    char *response = malloc (size);
    assert (response);
#define S_GET(who, path)        s_http (port, "GET", path, who, NULL, response, size)
#define S_POST(who, path, body) s_http (port, "POST", path, who, body, response, size)

    //  The list: names escaped, the payer chosen first; the navigation has Auto-Pay.
    assert (S_GET ("BO", "/staff/autopay") == 200);
    assert (strstr (response, "&lt;Rent&gt;") && !strstr (response, "<Rent>") &&
            strstr (response, "Pat &lt;Doe&gt;") && strstr (response, "Up to 250.00 USD") &&
            strstr (response, "href=\"/staff/autopay/schedule?schedule_id=5\"") &&
            strstr (response, "id=\"add-payer\"") && strstr (response, "href=\"/staff/autopay\""));
    assert (!strstr (response, "<script") && !strstr (response, "style="));
    assert (S_GET ("BO", "/staff/autopay?payer_id=1") == 200);
    assert (strstr (response, "href=\"/staff/autopay/form?payer_id=1\"") &&
            !strstr (response, "id=\"add-payer\""));
    //  Read-only looks: no add, no form, no actions.
    assert (S_GET ("RY", "/staff/autopay") == 200 && !strstr (response, "Add Auto-Pay"));
    assert (S_GET ("RY", "/staff/autopay/form?payer_id=1") == 404);
    assert (S_GET ("RY", "/staff/autopay/schedule?schedule_id=5") == 200);
    assert (!strstr (response, "Manage Enrollments") && !strstr (response, "Disable"));

    //  The form: the payer's card, operating accounts only, every field of the seed.
    assert (S_GET ("BO", "/staff/autopay/form?payer_id=1") == 200);
    assert (strstr (response, "Visa ending 4242 (12/2031)") &&
            strstr (response, "value=\"OP-001\"") && !strstr (response, "TR-001") &&
            strstr (response, "id=\"ap-message\"") && strstr (response, "id=\"ap-frequency\"") &&
            strstr (response, "id=\"ap-first\"") && strstr (response, "id=\"ap-pay-upto\"") &&
            strstr (response, "Save and Manage Enrollments"));
    assert (S_GET ("BO", "/staff/autopay/form") == 404);
    const char *add = "csrf=CSRF&payer_id=1&method_id=7&name=Rent&account=OP-001&ar_message=m&"
                      "frequency=monthly&day_rule=last&first_date=2027-01-31&pay=all&"
                      "action=enroll";
    assert (S_POST ("BO", "/staff/autopay/form", add) == 303);
    assert (strstr (response, "\r\nLocation: /staff/autopay/enroll?schedule_id=5\r\n"));
    assert (S_POST ("BO", "/staff/autopay/form", add + 10) == 403); //  no CSRF token
    //  A refusal is shown, escaped, with what was typed; up to an amount needs one.
    assert (S_POST ("BO", "/staff/autopay/form",
                    "csrf=CSRF&payer_id=1&method_id=7&name=bad&account=OP-001&frequency=monthly&"
                    "first_date=2027-02-01&pay=all&action=save") == 400);
    assert (strstr (response, "no &lt;account&gt; there") && strstr (response, "value=\"bad\""));
    assert (S_POST ("BO", "/staff/autopay/form",
                    "csrf=CSRF&payer_id=1&method_id=7&name=x&account=OP-001&frequency=monthly&"
                    "first_date=2027-02-01&pay=upto&amount=&action=save") == 400);
    assert (strstr (response, "Enter the amount to pay up to"));
    //  Editing: the schedule's values; an unchanged (past) first date is not sent.
    assert (S_GET ("BO", "/staff/autopay/form?schedule_id=5") == 200);
    assert (strstr (response, "value=\"250.00\"") && strstr (response, "A/R &lt;note&gt;") &&
            strstr (response, "name=\"schedule_id\" value=\"5\""));
    assert (S_POST ("BO", "/staff/autopay/form",
                    "csrf=CSRF&schedule_id=5&method_id=7&name=Rent&account=OP-001&"
                    "frequency=monthly&day_rule=last&first_date=2027-01-31&pay=upto&"
                    "amount=300.00&action=save") == 303);
    assert (strstr (response, "Location: /staff/autopay/schedule?schedule_id=5&done=saved"));
    //  Another firm's schedule: not found.
    assert (S_GET ("BO", "/staff/autopay/form?schedule_id=6") == 404);
    assert (S_GET ("BO", "/staff/autopay/schedule?schedule_id=6") == 404);
    assert (S_GET ("BO", "/staff/autopay/enroll?schedule_id=6") == 404);

    //  Enrollments: the payer's associations, the enrolled one checked.
    assert (S_GET ("BO", "/staff/autopay/enroll?schedule_id=5") == 200);
    assert (strstr (response, "name=\"association-3\" value=\"on\" checked") &&
            strstr (response, "name=\"association-4\" value=\"on\">") &&
            strstr (response, "Client C-1 (Acme &amp; Sons)") &&
            strstr (response, "Enroll and Save"));
    assert (S_POST ("BO", "/staff/autopay/enroll",
                    "csrf=CSRF&schedule_id=5&association-3=on&association-4=on") == 303);
    assert (strstr (response, "done=enrolled"));
    assert (S_POST ("BO", "/staff/autopay/enroll", "schedule_id=5&association-4=on") == 403);

    //  The schedule: its fields, the run with its posting, the actions.
    assert (S_GET ("BO", "/staff/autopay/schedule?schedule_id=5&done=enrolled") == 200);
    assert (strstr (response, "The enrollments are saved.") &&
            strstr (response, "A/R &lt;note&gt;") &&
            strstr (response, "INV-&lt;1&gt; 250.00 USD") &&
            strstr (response, "<a href=\"/staff/postings/post-1\">post-1</a> (posted)") &&
            strstr (response, ">Paid<") && strstr (response, ">Disable<") &&
            strstr (response, ">Delete<"));
    assert (S_POST ("BO", "/staff/autopay/schedule", "csrf=CSRF&schedule_id=5&action=disable") ==
            303);
    assert (strstr (response, "done=disable"));
    assert (S_POST ("BO", "/staff/autopay/schedule", "schedule_id=5&action=disable") == 403);
    assert (S_POST ("BO", "/staff/autopay/schedule", "csrf=CSRF&schedule_id=5&action=x") == 400);
    //  Delete asks once more; confirmed, back to the list.
    assert (S_POST ("BO", "/staff/autopay/schedule", "csrf=CSRF&schedule_id=5&action=delete") ==
            200);
    assert (strstr (response, "Delete this Auto-Pay?") && strstr (response, "value=\"yes\""));
    assert (S_POST ("BO", "/staff/autopay/schedule",
                    "csrf=CSRF&schedule_id=5&action=delete&confirm=yes") == 303);
    assert (strstr (response, "Location: /staff/autopay?done=deleted"));

    //  Notifications: the administrator's; billing and read get 404.
    assert (S_GET ("ANN", "/staff/notifications") == 200);
    assert (strstr (response, "Error-Failed &lt;AutoPay&gt;") &&
            strstr (response, "id=\"autopay_failed-on\" name=\"enabled\" value=\"on\" checked") &&
            strstr (response, "id=\"agent_offline-minutes\"") &&
            strstr (response, "office@example.com") && strstr (response, "/staff/notifications\""));
    assert (S_GET ("BO", "/staff/notifications") == 404);
    assert (S_GET ("RY", "/staff/notifications") == 404);
    assert (S_POST ("BO", "/staff/notifications", "csrf=CSRF&event=link_paid&enabled=on") == 404);
    assert (S_POST ("ANN", "/staff/notifications", "csrf=CSRF&event=link_paid&enabled=on") == 303);
    assert (strstr (response, "Location: /staff/notifications?done=1"));
    assert (S_POST ("ANN", "/staff/notifications", "event=link_paid&enabled=on") == 403);
    assert (S_POST ("ANN", "/staff/notifications", "csrf=CSRF&event=autopay_failed") == 400);
    assert (strstr (response, "&lt;x&gt;") && strstr (response, "is not an e-mail address"));
#undef S_GET
#undef S_POST
    free (response);
    ml_web_standin_destroy (&standin);
    printf ("OK\n");
}
