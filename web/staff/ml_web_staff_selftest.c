/*  ml_web_staff_selftest: the staff pages over HTTP against a stand-in core that answers the
    staff contract's ops (a ROUTER on an ipc endpoint), part of ml_web_staff_test. The real
    core's side is tested end to end in tests/e2e_staff_web.sh.
*/
#include "ml_web_staff.h"
#include "ml_web_standin.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <string.h>

//  The stand-in core: Ann (admin, second factor, code 123456), Bo (billing, none).
static json_t *s_answer (json_t *request)
{
    const char *op = json_string_value (json_object_get (request, "op"));
    const char *session = json_string_value (json_object_get (request, "staff_session"));
    const char *csrf = json_string_value (json_object_get (request, "csrf"));
    bool ann = session && streq (session, "ANNsession");
    bool bo = session && streq (session, "BOsession");
    const char *own_csrf = ann ? "ANNcsrf" : "BOcsrf";
    if (streq (op, "staff-sign-in")) {
        const char *email = json_string_value (json_object_get (request, "email"));
        const char *password = json_string_value (json_object_get (request, "password"));
        const char *code = json_string_value (json_object_get (request, "code"));
        const char *client = json_string_value (json_object_get (request, "client"));
        if (!streq (password, "right password") || !client || !streq (client, "127.0.0.1"))
            return json_pack ("{s:b, s:s}", "ok", 0, "error", "the e-mail or password is wrong");
        const char *firm = json_string_value (json_object_get (request, "firm"));
        if (streq (email, "cy@example.com") && !firm)
            return json_pack ("{s:b, s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "ok", 0, "error",
                              "choose one", "choose_firm", "firm", "acme", "firm_name",
                              "Acme <LLP>", "firm", "beta", "firm_name", "Beta & Co");
        if (streq (email, "cy@example.com") && streq (firm, "beta") && code &&
            streq (code, "654321"))
            return json_pack ("{s:b, s:s, s:s}", "ok", 1, "staff_session", "BOsession", "csrf",
                              "BOcsrf");
        if (streq (email, "cy@example.com") && streq (firm, "beta"))
            return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "enter the code",
                              "second_factor", 1);
        if (streq (email, "bo@example.com"))
            return json_pack ("{s:b, s:s, s:s}", "ok", 1, "staff_session", "BOsession", "csrf",
                              "BOcsrf");
        if (code && streq (code, "123456"))
            return json_pack ("{s:b, s:s, s:s}", "ok", 1, "staff_session", "ANNsession", "csrf",
                              "ANNcsrf");
        return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "enter the code", "second_factor",
                          1);
    }
    if (!ann && !bo)
        return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "session ended", "session_ended", 1);
    if (streq (op, "staff-session"))
        return json_pack (
            "{s:b, s:s, s:{s:i, s:s, s:s, s:s, s:s, s:s, s:b}}", "ok", 1, "csrf", own_csrf, "staff",
            "staff_id", ann ? 1 : 2, "name", ann ? "Ann <Admin>" : "Bo Billing", "email",
            ann ? "ann@example.com" : "bo@example.com", "role", ann ? "admin" : "billing", "firm",
            "acme", "firm_name", "Smith & Jones", "totp_enabled", ann);
    if (streq (op, "status"))
        return json_pack ("{s:b, s:[{s:s, s:b, s:s, s:i, s:i, s:i}]}", "ok", 1, "firms", "firm_id",
                          "acme", "agent_online", 1, "last_hello_at", "2026-12-05T12:00:00Z",
                          "unanswered_posting_count", 3, "rejected_posting_count", 1,
                          "snapshot_rows", 1234);
    bool admin_op = strncmp (op, "staff-list", 10) == 0 || streq (op, "staff-invite") ||
                    streq (op, "staff-audit") || streq (op, "staff-disable");
    if (admin_op && !ann)
        return json_pack ("{s:b, s:s}", "ok", 0, "error", "not found");
    if (streq (op, "staff-list"))
        return json_pack ("{s:b, s:[{s:i, s:s, s:s, s:s, s:s, s:b}, {s:i, s:s, s:s, s:s, s:s, "
                          "s:b}]}",
                          "ok", 1, "staff", "staff_id", 2, "name", "Bo <b>", "email",
                          "bo@example.com", "role", "billing", "state", "active", "totp_enabled", 0,
                          "staff_id", 3, "name", "Di", "email", "di@example.com", "role", "read",
                          "state", "invited", "totp_enabled", 0);
    if (streq (op, "staff-audit"))
        return json_pack ("{s:b, s:[{s:I, s:i, s:s, s:s, s:s}]}", "ok", 1, "entries", "at",
                          (json_int_t)1764936000, "staff_id", 1, "name", "Ann <Admin>", "op",
                          "staff-invite", "object", "staff 2");
    //  Every other op changes something: the session's CSRF token first.
    if (!csrf || !streq (csrf, own_csrf))
        return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "the form expired", "csrf", 0);
    if (streq (op, "staff-invite") &&
        streq (json_string_value (json_object_get (request, "email")), "taken@example.com"))
        return json_pack ("{s:b, s:s}", "ok", 0, "error", "that <address> is already invited");
    return json_pack ("{s:b}", "ok", 1);
}

void ml_web_staff_pages_test (void)
{
    ml_web_standin_t *standin = ml_web_standin_new ("ml_web_staff_test", s_answer);
    int port = ml_web_standin_port (standin);
    size_t size = 256 * 1024;
    char *response = malloc (size);
    char token[ML_WEB_FORM_TOKEN_SIZE], cookie[300], body[6000], step[5000];
    assert (response);

    //  No session: every signed-in page goes to sign-in.
    const char *pages[] = {"/staff/", "/staff/account", "/staff/users", "/staff/audit", NULL};
    for (size_t index = 0; pages[index]; index++) {
        assert (ml_web_standin_request (port, "GET", pages[index], NULL, NULL, response, size) ==
                303);
        assert (strstr (response, "\r\nLocation: /staff/sign-in\r\n"));
    }
    assert (ml_web_standin_request (port, "GET", "/staff", NULL, NULL, response, size) == 303 &&
            strstr (response, "\r\nLocation: /staff/\r\n"));

    //  Sign-in: the password alone is not enough for Ann; the second step holds it sealed.
    assert (ml_web_standin_request (port, "GET", "/staff/sign-in", NULL, NULL, response, size) ==
            200);
    ml_web_standin_field (response, "form_token", token, sizeof token);
    snprintf (cookie, sizeof cookie, "ml_form=%s", token);
    snprintf (body, sizeof body, "form_token=%s&email=ann%%40example.com&password=right+password",
              token);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", NULL, body, response, size) ==
            403);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            200);
    assert (strstr (response, "Two-step verification") && !strstr (response, "ml_staff="));
    assert (!strstr (response, "right password") && !strstr (response, "right+password"));
    ml_web_standin_field (response, "step", step, sizeof step);
    snprintf (body, sizeof body, "form_token=%s&step=%s&code=999999", token, step);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            400);
    assert (strstr (response, "That code is not right") && !strstr (response, "ml_staff="));
    snprintf (body, sizeof body, "form_token=%s&step=%sx&code=123456", token, step);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            403);
    snprintf (body, sizeof body, "form_token=%s&step=%s&code=123456", token, step);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            303);
    assert (strstr (response, "\r\nLocation: /staff/\r\n"));
    assert (strstr (response, "Set-Cookie: ml_staff=ANNsession; Path=/staff; HttpOnly; "
                              "SameSite=Strict\r\n"));
    snprintf (body, sizeof body, "form_token=%s&email=ann%%40example.com&password=wrong+password",
              token);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            200);
    assert (strstr (response, "The e-mail address or the password is not right."));

    //  Cy works at two firms: the firm first (names escaped), then the code for that firm.
    snprintf (body, sizeof body, "form_token=%s&email=cy%%40example.com&password=right+password",
              token);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            200);
    assert (strstr (response, "Choose the firm") && strstr (response, "Acme &lt;LLP&gt;") &&
            strstr (response, "value=\"beta\""));
    ml_web_standin_field (response, "step", step, sizeof step);
    snprintf (body, sizeof body, "form_token=%s&step=%s&firm=beta", token, step);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            200);
    assert (strstr (response, "Two-step verification") && !strstr (response, "That code"));
    ml_web_standin_field (response, "step", step, sizeof step);
    snprintf (body, sizeof body, "form_token=%s&step=%s&code=654321", token, step);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-in", cookie, body, response, size) ==
            303);
    assert (strstr (response, "Set-Cookie: ml_staff=BOsession;"));

    //  Ann's home, users and audit: escaped, with the navigation of an administrator.
    const char *ann = "ml_staff=ANNsession";
    assert (ml_web_standin_request (port, "GET", "/staff/", ann, NULL, response, size) == 200);
    assert (strstr (response, "<p class=\"firm\">Smith &amp; Jones</p>") &&
            strstr (response, "Ann &lt;Admin&gt;") && strstr (response, ">Administrator<"));
    assert (strstr (response, "href=\"/staff/users\"") && strstr (response, "agent-online") &&
            strstr (response, "postings-waiting\"><a href=\"/staff/postings?state=waiting\">3<"));
    //  A first snapshot under way: its progress.
    assert (strstr (response, "the first copy is being made: 1234 rows received so far"));
    assert (!strstr (response, "<script") && !strstr (response, "style="));
    assert (ml_web_standin_request (port, "GET", "/staff/users", ann, NULL, response, size) == 200);
    assert (strstr (response, "Bo &lt;b&gt;") && strstr (response, "value=\"ANNcsrf\""));
    //  Only the invited member can be sent the invitation again, with what the list says.
    const char *again = strstr (response, "aria-label=\"Send the invitation again to Di\"");
    assert (again && again > strstr (response, "data-staff-id=\"3\"") &&
            !strstr (again + 20, "Send the invitation again to") &&
            strstr (response, "name=\"email\" value=\"di@example.com\""));
    assert (ml_web_standin_request (port, "GET", "/staff/audit?staff_id=1", ann, NULL, response,
                                    size) == 200);
    assert (strstr (response, "One member's entries"));
    assert (ml_web_standin_request (port, "GET", "/staff/audit", ann, NULL, response, size) == 200);
    assert (!strstr (response, "One member's entries"));
    assert (strstr (response, "2025-12-05 12:00:00 UTC") && strstr (response, "staff-invite"));
    //  Changes relay the form's CSRF token: a missing or wrong one is 403.
    assert (ml_web_standin_request (port, "POST", "/staff/users", ann,
                                    "action=invite&email=c%40example.com&name=C&role=read",
                                    response, size) == 403);
    assert (ml_web_standin_request (port, "POST", "/staff/users", ann,
                                    "csrf=BOcsrf&action=disable&staff_id=2", response,
                                    size) == 403);
    assert (
        ml_web_standin_request (port, "POST", "/staff/users", ann,
                                "csrf=ANNcsrf&action=invite&email=c%40example.com&name=C&role=read",
                                response, size) == 303);
    assert (strstr (response, "\r\nLocation: /staff/users?done=invite\r\n"));
    assert (ml_web_standin_request (port, "GET", "/staff/users?done=invite", ann, NULL, response,
                                    size) == 200);
    assert (strstr (response, "The invitation is on its way."));
    //  The core's reason for a refusal is shown, escaped, with the form kept.
    assert (ml_web_standin_request (
                port, "POST", "/staff/users", ann,
                "csrf=ANNcsrf&action=invite&email=taken%40example.com&name=T&role=read", response,
                size) == 400);
    assert (strstr (response, "that &lt;address&gt; is already invited") &&
            strstr (response, "value=\"taken@example.com\""));
    assert (ml_web_standin_request (port, "POST", "/staff/users", ann,
                                    "csrf=ANNcsrf&action=disable&staff_id=2x", response,
                                    size) == 400);
    assert (ml_web_standin_request (port, "POST", "/staff/sign-out", ann, "csrf=wrong", response,
                                    size) == 403);
    assert (!strstr (response, "Set-Cookie"));
    assert (ml_web_standin_request (port, "POST", "/staff/sign-out", ann, "csrf=ANNcsrf", response,
                                    size) == 303);
    assert (strstr (response, "Set-Cookie: ml_staff=; Path=/staff; HttpOnly; SameSite=Strict; "
                              "Max-Age=0\r\n"));

    //  Bo (billing): the administrator's pages are 404, as is posting to them.
    const char *bo = "ml_staff=BOsession";
    assert (ml_web_standin_request (port, "GET", "/staff/", bo, NULL, response, size) == 200);
    assert (strstr (response, ">Billing<") && !strstr (response, "/staff/users"));
    assert (ml_web_standin_request (port, "GET", "/staff/users", bo, NULL, response, size) == 404);
    assert (ml_web_standin_request (port, "GET", "/staff/audit", bo, NULL, response, size) == 404);
    assert (
        ml_web_standin_request (port, "POST", "/staff/users", bo,
                                "csrf=BOcsrf&action=invite&email=e%40example.com&name=E&role=admin",
                                response, size) == 404);
    assert (ml_web_standin_request (port, "GET", "/staff/account", bo, NULL, response, size) ==
            200);
    assert (strstr (response, "Set up two-step verification"));
    assert (ml_web_standin_request (
                port, "POST", "/staff/account", bo,
                "csrf=BOcsrf&action=password&password=a&new_password=bbbbbbbb&confirm=cccccccc",
                response, size) == 400);
    assert (strstr (response, "not the same"));
    //  An ended session: to sign-in, and its cookie goes.
    assert (ml_web_standin_request (port, "GET", "/staff/account", "ml_staff=ENDED", NULL, response,
                                    size) == 303);
    assert (strstr (response, "Max-Age=0") && strstr (response, "Location: /staff/sign-in"));
    //  The payer's session cookie is not a staff session.
    assert (ml_web_standin_request (port, "GET", "/staff/", "ml_session=ANNsession", NULL, response,
                                    size) == 303);

    free (response);
    ml_web_standin_destroy (&standin);
}
