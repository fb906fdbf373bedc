/*  ml_web_staff_users: the administrator's pages: the firm's staff (invite, change role,
    disable and enable, send a password reset, reset two-step verification) and the audit
    trail (docs/web.md "The staff app"). Other roles get 404, from the core as from here.
*/
#include "ml_web_staff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

//  A member that may be a number, text or more (staff ids are integers; an audit entry's
//  object may be an object of ids), as text for a page, cut to fit buf.
static const char *s_id (json_t *object, const char *key, char *buf, size_t size)
{
    json_t *value = json_object_get (object, key);
    *buf = 0;
    if (json_is_integer (value))
        snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    else if (json_is_string (value))
        snprintf (buf, size, "%s", json_string_value (value));
    else if (value && !json_is_null (value)) {
        char *text = json_dumps (value, JSON_COMPACT | JSON_ENSURE_ASCII);
        snprintf (buf, size, "%s", text ? text : "");
        free (text);
    }
    return buf;
}

//  A time from the core for a page: seconds since 1970 as UTC, or text as the core wrote it.
static const char *s_when (json_t *object, const char *key, char *buf, size_t size)
{
    json_t *value = json_object_get (object, key);
    *buf = 0;
    if (json_is_integer (value)) {
        time_t seconds = (time_t)json_integer_value (value);
        struct tm parts;
        if (gmtime_r (&seconds, &parts))
            strftime (buf, size, "%Y-%m-%d %H:%M:%S UTC", &parts);
    } else if (json_is_string (value))
        snprintf (buf, size, "%s", json_string_value (value));
    return buf;
}

//  The session of an administrator, or NULL after it answered (sign-in, 404, 503).
static json_t *s_admin_session (ml_web_exchange_t *exchange, char *token, size_t size)
{
    json_t *session = ml_web_staff_session (exchange, token, size);
    if (session && !ml_web_staff_role_allows (session, "admin")) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return NULL;
    }
    return session;
}

static const char *s_state_name (const char *state)
{
    return strcmp (state, "invited") == 0    ? "Invited"
           : strcmp (state, "active") == 0   ? "Active"
           : strcmp (state, "disabled") == 0 ? "Disabled"
                                             : state;
}

//  One button form acting on one member.
static void s_row_action (ml_web_exchange_t *exchange, json_t *session, const char *action,
                          const char *staff_id, const char *label, const char *name)
{
    ml_web_page_add (exchange,
                     "<form class=\"inline\" method=\"post\" action=\"/staff/users\">"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"action\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"staff_id\" value=\"{}\">"
                     "<button type=\"submit\" aria-label=\"{}: {}\">{}</button></form> ",
                     ml_web_staff_csrf (session), action, staff_id, label, name, label);
}

static void s_role_options (ml_web_exchange_t *exchange, const char *current)
{
    static const char *const roles[] = {"read", "billing", "admin"};
    for (size_t index = 0; index < 3; index++)
        ml_web_page_add (exchange,
                         strcmp (roles[index], current) == 0
                             ? "<option value=\"{}\" selected>{}</option>"
                             : "<option value=\"{}\">{}</option>",
                         roles[index], ml_web_staff_role_name (roles[index]));
}

static void s_users (ml_web_exchange_t *exchange, const char *token, json_t *session,
                     const char *error, const char *notice, json_t *invite)
{
    json_t *list = ml_web_staff_call (exchange, token, json_pack ("{s:s}", "op", "staff-list"));
    if (!list)
        return;
    if (!s_ok (list)) {
        ml_web_staff_refused (exchange, list);
        json_decref (list);
        return;
    }
    ml_web_staff_begin (exchange, "Users", session);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_message (exchange, "notice", notice);
    ml_web_page_add (exchange,
                     "<table class=\"users\">\n<thead><tr><th scope=\"col\">Name</th>"
                     "<th scope=\"col\">E-mail address</th><th scope=\"col\">Role</th>"
                     "<th scope=\"col\">State</th><th scope=\"col\">Two-step</th>"
                     "<th scope=\"col\">Last sign-in</th><th scope=\"col\">Actions</th></tr>"
                     "</thead>\n<tbody>\n");
    size_t index;
    json_t *member;
    json_array_foreach (json_object_get (list, "staff"), index, member)
    {
        char id[32], field[48];
        s_id (member, "staff_id", id, sizeof id);
        const char *name = ml_web_staff_text (member, "name");
        const char *state = ml_web_staff_text (member, "state");
        const char *role = ml_web_staff_text (member, "role");
        char last[64];
        s_when (member, "last_sign_in_at", last, sizeof last);
        ml_web_page_add (exchange,
                         "<tr data-staff-id=\"{}\"><th scope=\"row\" data-label=\"Name\">{}</th>"
                         "<td data-label=\"E-mail address\">{}</td>"
                         "<td data-label=\"Role\">{}</td>"
                         "<td data-label=\"State\" class=\"state\">{}</td>"
                         "<td data-label=\"Two-step\">{}</td>"
                         "<td data-label=\"Last sign-in\">{}</td><td data-label=\"Actions\">",
                         id, name, ml_web_staff_text (member, "email"),
                         ml_web_staff_role_name (role), s_state_name (state),
                         json_is_true (json_object_get (member, "totp_enabled")) ? "On" : "Off",
                         *last ? last : "never");
        snprintf (field, sizeof field, "role-%s", id);
        ml_web_page_add (exchange,
                         "<form class=\"inline\" method=\"post\" action=\"/staff/users\">"
                         "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                         "<input type=\"hidden\" name=\"action\" value=\"role\">"
                         "<input type=\"hidden\" name=\"staff_id\" value=\"{}\">"
                         "<label class=\"visually-hidden\" for=\"{}\">Role of {}</label>"
                         "<select id=\"{}\" name=\"role\">",
                         ml_web_staff_csrf (session), id, field, name, field);
        s_role_options (exchange, role);
        ml_web_page_add (exchange,
                         "</select><button type=\"submit\" aria-label=\"Change the role of "
                         "{}\">Change role</button></form> ",
                         name);
        if (strcmp (state, "disabled") == 0)
            s_row_action (exchange, session, "enable", id, "Enable", name);
        else
            s_row_action (exchange, session, "disable", id, "Disable", name);
        if (strcmp (state, "active") == 0)
            s_row_action (exchange, session, "reset", id, "Send password reset", name);
        if (strcmp (state, "invited") == 0)
            //  The same invitation again, with a new link (the old one ends).
            ml_web_page_add (exchange,
                             "<form class=\"inline\" method=\"post\" action=\"/staff/users\">"
                             "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                             "<input type=\"hidden\" name=\"action\" value=\"invite\">"
                             "<input type=\"hidden\" name=\"email\" value=\"{}\">"
                             "<input type=\"hidden\" name=\"name\" value=\"{}\">"
                             "<input type=\"hidden\" name=\"role\" value=\"{}\">"
                             "<button type=\"submit\" aria-label=\"Send the invitation again to "
                             "{}\">Send the invitation again</button></form> ",
                             ml_web_staff_csrf (session), ml_web_staff_text (member, "email"), name,
                             role, name);
        if (json_is_true (json_object_get (member, "totp_enabled")))
            s_row_action (exchange, session, "totp-reset", id, "Reset two-step", name);
        ml_web_page_add (exchange,
                         "<a href=\"/staff/audit?staff_id={}\" aria-label=\"Audit trail of {}\">"
                         "Audit trail</a>",
                         id, name);
        ml_web_page_add (exchange, "</td></tr>\n");
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n");
    const char *email = invite ? ml_web_staff_text (invite, "email") : "";
    const char *name = invite ? ml_web_staff_text (invite, "name") : "";
    const char *role = invite ? ml_web_staff_text (invite, "role") : "billing";
    ml_web_page_add (exchange,
                     "<h2 id=\"invite\">Invite a colleague</h2>\n"
                     "<form method=\"post\" action=\"/staff/users\" class=\"stack invite\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"action\" value=\"invite\">\n"
                     "<label for=\"invite-name\">Name</label>\n"
                     "<input id=\"invite-name\" name=\"name\" type=\"text\" required "
                     "maxlength=\"200\" autocomplete=\"off\" value=\"{}\">\n"
                     "<label for=\"invite-email\">E-mail address</label>\n"
                     "<input id=\"invite-email\" name=\"email\" type=\"email\" required "
                     "maxlength=\"254\" autocomplete=\"off\" value=\"{}\">\n"
                     "<label for=\"invite-role\">Role</label>\n"
                     "<select id=\"invite-role\" name=\"role\" aria-describedby=\"roles\">",
                     ml_web_staff_csrf (session), name, email);
    s_role_options (exchange, *role ? role : "billing");
    ml_web_page_add (exchange,
                     "</select>\n<p id=\"roles\" class=\"hint\">Read-only looks; Billing also "
                     "takes payments and manages payers, Auto-Pay and postings; Administrator "
                     "also manages users and the firm's settings and must use two-step "
                     "verification.</p>\n<button type=\"submit\">Send the invitation</button>\n"
                     "</form>\n<p class=\"hint\">The invitation link works once, for 72 "
                     "hours.</p>\n");
    ml_web_staff_end (exchange);
    json_decref (list);
}

//  What the redirect after a change says, by the action done (anything else: nothing).
static const char *s_done (const char *action)
{
    static const char *const notices[][2] = {
        {"invite", "The invitation is on its way."},
        {"role", "The role is changed."},
        {"disable", "The user is disabled and signed out."},
        {"enable", "The user is enabled."},
        {"reset", "A password reset link is on its way."},
        {"totp-reset", "Two-step verification is reset for the user."},
    };
    for (size_t index = 0; action && index < sizeof notices / sizeof notices[0]; index++)
        if (strcmp (action, notices[index][0]) == 0)
            return notices[index][1];
    return NULL;
}

void ml_web_staff_page_users (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = s_admin_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") != 0) {
        s_users (exchange, token, session, NULL, s_done (ml_web_form_get (exchange->query, "done")),
                 NULL);
        json_decref (session);
        return;
    }
    const char *action = ml_web_form_get (exchange->form, "action");
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    const char *staff_id = ml_web_form_get (exchange->form, "staff_id");
    action = action ? action : "";
    json_t *request = NULL;
    if (strcmp (action, "invite") == 0) {
        const char *email = ml_web_form_get (exchange->form, "email");
        const char *name = ml_web_form_get (exchange->form, "name");
        const char *role = ml_web_form_get (exchange->form, "role");
        request =
            json_pack ("{s:s, s:s, s:s, s:s}", "op", "staff-invite", "email", email ? email : "",
                       "name", name ? name : "", "role", role ? role : "");
    } else {
        //  The id as the core has it, an integer; anything else is not a member.
        char *end = NULL;
        long long id = staff_id && *staff_id ? strtoll (staff_id, &end, 10) : -1;
        const char *op = strcmp (action, "role") == 0         ? "staff-edit"
                         : strcmp (action, "disable") == 0    ? "staff-disable"
                         : strcmp (action, "enable") == 0     ? "staff-enable"
                         : strcmp (action, "reset") == 0      ? "staff-reset"
                         : strcmp (action, "totp-reset") == 0 ? "staff-totp-reset"
                                                              : NULL;
        if (!op || id <= 0 || (end && *end)) {
            s_users (exchange, token, session, "That is not something this page does.", NULL, NULL);
            exchange->status = 400;
            json_decref (session);
            return;
        }
        request = json_pack ("{s:s, s:I}", "op", op, "staff_id", (json_int_t)id);
        if (request && strcmp (op, "staff-edit") == 0) {
            const char *role = ml_web_form_get (exchange->form, "role");
            json_object_set_new (request, "role", json_string (role ? role : ""));
        }
    }
    if (request)
        json_object_set_new (request, "csrf", json_string (csrf ? csrf : ""));
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply || ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        json_decref (session);
        return;
    }
    if (s_ok (reply)) {
        //  Post, then redirect: reloading the page shows the list, not the form sent again.
        char location[64];
        snprintf (location, sizeof location, "/staff/users?done=%s", action);
        ml_web_page_redirect (exchange, location);
    } else {
        //  The core says why (an address already invited, the firm's last administrator).
        bool invite = strcmp (action, "invite") == 0;
        json_t *kept = invite ? json_pack ("{s:s, s:s, s:s}", "email",
                                           ml_web_form_get (exchange->form, "email")
                                               ? ml_web_form_get (exchange->form, "email")
                                               : "",
                                           "name",
                                           ml_web_form_get (exchange->form, "name")
                                               ? ml_web_form_get (exchange->form, "name")
                                               : "",
                                           "role",
                                           ml_web_form_get (exchange->form, "role")
                                               ? ml_web_form_get (exchange->form, "role")
                                               : "")
                              : NULL;
        s_users (exchange, token, session, ml_web_staff_text (reply, "error"), NULL, kept);
        exchange->status = 400;
        json_decref (kept);
    }
    json_decref (reply);
    json_decref (session);
}

void ml_web_staff_page_audit (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = s_admin_session (exchange, token, sizeof token);
    if (!session)
        return;
    json_t *request = json_pack ("{s:s, s:i}", "op", "staff-audit", "limit", 200);
    const char *who = ml_web_form_get (exchange->query, "staff_id");
    char *end = NULL;
    long long id = who && *who ? strtoll (who, &end, 10) : 0;
    bool request_filtered = request && id > 0 && end && !*end;
    if (request_filtered)
        json_object_set_new (request, "staff_id", json_integer ((json_int_t)id));
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply) {
        json_decref (session);
        return;
    }
    if (!s_ok (reply)) {
        ml_web_staff_refused (exchange, reply);
        json_decref (reply);
        json_decref (session);
        return;
    }
    ml_web_staff_begin (exchange, "Audit trail", session);
    if (request_filtered)
        ml_web_page_add (exchange, "<p class=\"notice\">One member's entries. <a "
                                   "href=\"/staff/audit\">Show everyone's</a></p>\n");
    json_t *entries = json_object_get (reply, "entries");
    if (json_array_size (entries) == 0)
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing is recorded yet.</p>\n");
    else {
        ml_web_page_add (exchange,
                         "<p class=\"hint\">The newest first: every change made by the firm's "
                         "staff, with who made it.</p>\n"
                         "<table class=\"audit\">\n<thead><tr><th scope=\"col\">When</th>"
                         "<th scope=\"col\">Who</th><th scope=\"col\">What</th>"
                         "<th scope=\"col\">Object</th><th scope=\"col\">Detail</th></tr>"
                         "</thead>\n<tbody>\n");
        size_t index;
        json_t *entry;
        json_array_foreach (entries, index, entry)
        {
            char object[200], detail[400], at[64];
            s_id (entry, "object", object, sizeof object);
            ml_web_page_add (exchange,
                             "<tr><th scope=\"row\" data-label=\"When\">{}</th>"
                             "<td data-label=\"Who\" class=\"who\">{}</td>"
                             "<td data-label=\"What\" class=\"op\">{}</td>"
                             "<td data-label=\"Object\">{}</td>"
                             "<td data-label=\"Detail\">{}</td></tr>\n",
                             s_when (entry, "at", at, sizeof at), ml_web_staff_text (entry, "name"),
                             ml_web_staff_text (entry, "op"), object,
                             s_id (entry, "detail", detail, sizeof detail));
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
    }
    ml_web_staff_end (exchange);
    json_decref (reply);
    json_decref (session);
}
