/*  ml_web_staff_account: the staff app's home (the firm's dashboard frame) and the signed-in
    member's own account: two-step verification, new recovery codes, the password
    (docs/web.md "The staff app").
*/
#include "ml_web_staff.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

void ml_web_staff_page_home (ml_web_exchange_t *exchange)
{
    if (strcmp (exchange->path, "/staff") == 0) {
        ml_web_page_redirect (exchange, "/staff/");
        return;
    }
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    json_t *staff = json_object_get (session, "staff");
    ml_web_staff_begin (exchange, "Home", session);
    ml_web_page_add (exchange,
                     "<p class=\"welcome\">Welcome, {}. You are signed in to {} as {}.</p>\n",
                     ml_web_staff_text (staff, "name"), ml_web_staff_text (staff, "firm_name"),
                     ml_web_staff_role_name (ml_web_staff_text (staff, "role")));
    if (!json_is_true (json_object_get (staff, "totp_enabled")))
        ml_web_page_add (exchange, "<p class=\"notice\">Protect your account with two-step "
                                   "verification: <a href=\"/staff/account\">turn it on in "
                                   "your account</a>.</p>\n");
    ml_web_staff_dashboard (exchange, token, session);
    ml_web_staff_end (exchange);
    json_decref (session);
}

//  A form on the account page: its action, the session's token, what it holds, its button.
static void s_form (ml_web_exchange_t *exchange, json_t *session, const char *action,
                    const char *fields, const char *button)
{
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/account\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"action\" value=\"{}\">\n",
                     ml_web_staff_csrf (session), action);
    //  fields is trusted markup from this file, never a value.
    if (fields)
        ml_web_page_add (exchange, fields);
    ml_web_page_add (exchange, "<button type=\"submit\">{}</button>\n</form>\n", button);
}

#define S_CODE_FIELD(id, label)                                                                    \
    "<label for=\"" id "\">" label "</label>\n<input id=\"" id "\" name=\"code\" type=\"text\" "   \
    "autocomplete=\"one-time-code\" required maxlength=\"32\">\n"

static void s_recovery_codes (ml_web_exchange_t *exchange, json_t *codes)
{
    ml_web_page_add (exchange,
                     "<section class=\"recovery\" aria-labelledby=\"codes-heading\">\n"
                     "<h2 id=\"codes-heading\">Your recovery codes</h2>\n"
                     "<p class=\"notice\">These codes are shown <strong>only now</strong>. Print "
                     "this page or copy the codes to a safe place. Each code signs you in once "
                     "when you do not have your authenticator app; any earlier codes no longer "
                     "work.</p>\n<ol class=\"codes\">");
    size_t index;
    json_t *code;
    json_array_foreach (codes, index, code)
        ml_web_page_add (exchange, "<li><code>{}</code></li>", json_string_value (code));
    ml_web_page_add (exchange, "</ol>\n</section>\n");
}

//  The enrolment step: the secret as text and as an otpauth link, then the first code.
static void s_enrol (ml_web_exchange_t *exchange, json_t *session, json_t *begun)
{
    ml_web_page_add (exchange,
                     "<section aria-labelledby=\"enrol\"><h2 id=\"enrol\">Set up your "
                     "authenticator app</h2>\n"
                     "<p>Open the link on your phone, or type the key into the app.</p>\n"
                     "<p><a class=\"otpauth\" href=\"{}\">Add to an authenticator app</a></p>\n"
                     "<p>Key: <code class=\"secret\" id=\"totp-secret\">{}</code></p>\n",
                     ml_web_staff_text (begun, "totp_uri"),
                     ml_web_staff_text (begun, "totp_secret"));
    s_form (exchange, session, "totp-confirm",
            "<label for=\"code\">The 6-digit code the app shows</label>\n"
            "<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" "
            "autocomplete=\"one-time-code\" required pattern=\"[0-9]{{6}\" maxlength=\"6\">\n",
            "Turn on two-step verification");
    ml_web_page_add (exchange, "</section>\n");
}

static void s_account (ml_web_exchange_t *exchange, json_t *session, const char *error,
                       const char *notice, json_t *codes, json_t *begun)
{
    json_t *staff = json_object_get (session, "staff");
    bool admin = strcmp (ml_web_staff_text (staff, "role"), "admin") == 0;
    ml_web_staff_begin (exchange, "Your account", session);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_message (exchange, "notice", notice);
    if (json_array_size (codes) > 0)
        s_recovery_codes (exchange, codes);
    ml_web_page_add (exchange,
                     "<dl class=\"receipt\"><dt>Name</dt><dd>{}</dd><dt>E-mail address</dt>"
                     "<dd>{}</dd><dt>Role</dt><dd>{}</dd></dl>\n",
                     ml_web_staff_text (staff, "name"), ml_web_staff_text (staff, "email"),
                     ml_web_staff_role_name (ml_web_staff_text (staff, "role")));
    ml_web_page_add (exchange, "<h2>Two-step verification</h2>\n");
    if (begun)
        s_enrol (exchange, session, begun);
    else if (json_is_true (json_object_get (staff, "totp_enabled"))) {
        ml_web_page_add (exchange,
                         "<p><span class=\"badge totp-on\">On</span> Signing in asks for the "
                         "code of your authenticator app.</p>\n<h3>New recovery codes</h3>\n"
                         "<p class=\"hint\">The codes you have now stop working.</p>\n");
        s_form (exchange, session, "recovery-codes",
                S_CODE_FIELD ("recovery-code", "The code your app shows now"),
                "Make new recovery codes");
        if (!admin) {
            ml_web_page_add (exchange, "<h3>Turn two-step verification off</h3>\n");
            s_form (
                exchange, session, "totp-off",
                "<label for=\"off-password\">Your password</label>\n"
                "<input id=\"off-password\" name=\"password\" type=\"password\" "
                "autocomplete=\"current-password\" required maxlength=\"1024\">\n" S_CODE_FIELD (
                    "off-code", "The code your app shows now"),
                "Turn off");
        } else
            ml_web_page_add (exchange, "<p class=\"hint\">Administrators always use two-step "
                                       "verification.</p>\n");
    } else {
        ml_web_page_add (exchange,
                         "<p><span class=\"badge totp-off\">Off</span> Signing in asks only for "
                         "your password. With two-step verification it also asks for a code "
                         "from an authenticator app on your phone.</p>\n");
        s_form (exchange, session, "totp-begin", NULL, "Set up two-step verification");
    }
    ml_web_page_add (exchange, "<h2>Change your password</h2>\n");
    s_form (exchange, session, "password",
            "<label for=\"current\">Your current password</label>\n"
            "<input id=\"current\" name=\"password\" type=\"password\" "
            "autocomplete=\"current-password\" required maxlength=\"1024\">\n"
            "<label for=\"new_password\">New password</label>\n"
            "<input id=\"new_password\" name=\"new_password\" type=\"password\" "
            "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\">\n"
            "<label for=\"confirm\">The new password again</label>\n"
            "<input id=\"confirm\" name=\"confirm\" type=\"password\" "
            "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\">\n",
            "Change the password");
    ml_web_page_add (exchange, "<p class=\"hint\">Changing the password signs you out "
                               "everywhere else.</p>\n");
    ml_web_staff_end (exchange);
}

//  Call op with the form's csrf and the fields named (NULL-terminated). The reply, or NULL
//  after the answer was written (503, an ended session, a CSRF refusal).
static json_t *s_post (ml_web_exchange_t *exchange, const char *token, const char *op,
                       const char *const *fields)
{
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *request = json_pack ("{s:s, s:s}", "op", op, "csrf", csrf ? csrf : "");
    for (size_t index = 0; request && fields[index]; index += 2) {
        const char *value = ml_web_form_get (exchange->form, fields[index + 1]);
        json_object_set_new (request, fields[index], json_string (value ? value : ""));
    }
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (reply && ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        return NULL;
    }
    return reply;
}

void ml_web_staff_page_account (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") != 0) {
        s_account (exchange, session, NULL, NULL, NULL, NULL);
        json_decref (session);
        return;
    }
    const char *action = ml_web_form_get (exchange->form, "action");
    action = action ? action : "";
    static const char *const none[] = {NULL};
    static const char *const code[] = {"code", "code", NULL};
    static const char *const off[] = {"password", "password", "code", "code", NULL};
    static const char *const password[] = {"password", "password", "new_password", "new_password",
                                           NULL};
    const char *op = strcmp (action, "totp-begin") == 0       ? "staff-totp-begin"
                     : strcmp (action, "totp-confirm") == 0   ? "staff-totp-confirm"
                     : strcmp (action, "totp-off") == 0       ? "staff-totp-off"
                     : strcmp (action, "recovery-codes") == 0 ? "staff-recovery-codes"
                     : strcmp (action, "password") == 0       ? "staff-password"
                                                              : NULL;
    if (!op) {
        s_account (exchange, session, "That is not something this page does.", NULL, NULL, NULL);
        exchange->status = 400;
        json_decref (session);
        return;
    }
    if (strcmp (op, "staff-password") == 0) {
        const char *new_password = ml_web_form_get (exchange->form, "new_password");
        const char *confirm = ml_web_form_get (exchange->form, "confirm");
        if (!new_password || !confirm || strcmp (new_password, confirm) != 0) {
            s_account (exchange, session, "The two new passwords are not the same.", NULL, NULL,
                       NULL);
            exchange->status = 400;
            json_decref (session);
            return;
        }
    }
    const char *const *fields = strcmp (op, "staff-totp-off") == 0     ? off
                                : strcmp (op, "staff-password") == 0   ? password
                                : strcmp (op, "staff-totp-begin") == 0 ? none
                                                                       : code;
    json_t *reply = s_post (exchange, token, op, fields);
    if (!reply) {
        json_decref (session);
        return;
    }
    if (!s_ok (reply)) {
        //  The core says why (a wrong code or password); enrolment starts again with a new key.
        json_t *begun = NULL;
        if (strcmp (op, "staff-totp-confirm") == 0) {
            begun = s_post (exchange, token, "staff-totp-begin", none);
            if (!begun) {
                json_decref (reply);
                json_decref (session);
                return;
            }
        }
        s_account (exchange, session, ml_web_staff_text (reply, "error"), NULL, NULL,
                   s_ok (begun) ? begun : NULL);
        exchange->status = 400;
        json_decref (begun);
    } else if (strcmp (op, "staff-totp-begin") == 0)
        s_account (exchange, session, NULL, NULL, NULL, reply);
    else {
        //  The session's view changed (two-step on or off): ask again for the page.
        json_t *fresh =
            ml_web_staff_call (exchange, token, json_pack ("{s:s}", "op", "staff-session"));
        json_t *shown = fresh && s_ok (fresh) ? fresh : session;
        const char *notice = strcmp (op, "staff-totp-confirm") == 0 ? "Two-step verification is on."
                             : strcmp (op, "staff-totp-off") == 0 ? "Two-step verification is off."
                             : strcmp (op, "staff-password") == 0
                                 ? "Your password is changed; your other sessions ended."
                                 : "Your new recovery codes are below.";
        if (fresh)
            s_account (exchange, shown, NULL, notice, json_object_get (reply, "recovery_codes"),
                       NULL);
        json_decref (fresh);
    }
    json_decref (reply);
    json_decref (session);
}
