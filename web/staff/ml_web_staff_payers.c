/*  ml_web_staff_payers: the staff app's Payers pages (docs/web.md "Payers").

    /staff/payers lists and searches the firm's payers and adds one; /staff/payers/ID is one
    payer's information: edit (an e-mail change of a payer with a portal login waits for the
    new address's confirmation, as the core's payer-edit does), the Login Access switch with
    its confirmation step (each confirmation sends one welcome e-mail) and where the
    invitation stands, reset password, delete the login, and the saved payment methods. The
    Associations tab and "View as payer" are in ml_web_staff_associations.c.

    Every page reads and changes through the core's ops with the staff session: the core
    decides (read looks, billing changes) and keeps the member in their firm. Read-only
    members get the pages without the buttons; a change they post anyway is refused by the
    core (404, as an op their role does not have).
*/
#include "ml_web_staff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

static const char *s_field (ml_web_form_t *form, const char *name)
{
    const char *value = ml_web_form_get (form, name);
    return value ? value : "";
}

int64_t ml_web_staff_payer_id (const char *path, const char *prefix)
{
    size_t length = strlen (prefix);
    if (!path || strncmp (path, prefix, length) != 0)
        return -1;
    const char *digits = path + length;
    size_t count = strlen (digits);
    if (count == 0 || count > 18 || strspn (digits, "0123456789") != count || *digits == '0')
        return -1;
    return strtoll (digits, NULL, 10);
}

void ml_web_staff_payer_tabs (ml_web_exchange_t *exchange, int64_t payer_id, const char *current)
{
    static const char *const tabs[][2] = {
        {"/staff/payers/", "Payer information"},
        {"/staff/payer-associations/", "Associations"},
        {"/staff/payer-view/", "View as payer"},
        {"/staff/autopay?payer_id=", "Auto-Pay"}, //  ml_web_staff_autopay.c
    };
    ml_web_page_add (exchange, "<nav class=\"tabs\" aria-label=\"This payer\"><ul>");
    for (size_t index = 0; index < sizeof tabs / sizeof tabs[0]; index++) {
        char href[96];
        snprintf (href, sizeof href, "%s%lld", tabs[index][0], (long long)payer_id);
        ml_web_page_add (exchange,
                         strcmp (tabs[index][0], current) == 0
                             ? "<li><a href=\"{}\" aria-current=\"page\">{}</a></li>"
                             : "<li><a href=\"{}\">{}</a></li>",
                         href, tabs[index][1]);
    }
    ml_web_page_add (exchange, "</ul></nav>\n");
}

json_t *ml_web_staff_payer_session (ml_web_exchange_t *exchange, const char *prefix,
                                    int64_t *payer_id, char *token, size_t token_size)
{
    *payer_id = ml_web_staff_payer_id (exchange->path, prefix);
    json_t *session = *payer_id > 0 ? ml_web_staff_session (exchange, token, token_size) : NULL;
    if (*payer_id <= 0)
        ml_web_staff_not_found (exchange);
    return session;
}

json_t *ml_web_staff_payer_begin (ml_web_exchange_t *exchange, const char *token, json_t *session,
                                  int64_t payer_id, const char *current, const char *error,
                                  const char *notice)
{
    json_t *shown = ml_web_staff_call (
        exchange, token, json_pack ("{s:s, s:I}", "op", "payer-show", "payer_id", payer_id));
    if (!shown)
        return NULL;
    if (!s_ok (shown)) {
        ml_web_staff_refused (exchange, shown);
        json_decref (shown);
        return NULL;
    }
    ml_web_staff_begin (exchange, ml_web_staff_text (json_object_get (shown, "payer"), "name"),
                        session);
    ml_web_staff_payer_tabs (exchange, payer_id, current);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_message (exchange, "notice", notice);
    return shown;
}

//  ---------------------------------------------------------------------------------------
//  The list, the search and Add payer.

//  The list's Login Access column: whether the payer can sign in to the portal now.
static const char *s_list_access_words (const char *state)
{
    return strcmp (state, "active") == 0    ? "On"
           : strcmp (state, "invited") == 0 ? "Invited: no password yet"
                                            : "Off";
}

static void s_list (ml_web_exchange_t *exchange, const char *token, json_t *session,
                    const char *error, ml_web_form_t *kept)
{
    const char *text = s_field (exchange->query, "q");
    json_t *request = json_pack ("{s:s, s:i}", "op", "payer-list", "limit", 200);
    if (request && *text)
        json_object_set_new (request, "text", json_string (text));
    json_t *list = ml_web_staff_call (exchange, token, request);
    if (!list)
        return;
    if (!s_ok (list)) {
        ml_web_staff_refused (exchange, list);
        json_decref (list);
        return;
    }
    bool billing = ml_web_staff_role_allows (session, "billing");
    ml_web_staff_begin (exchange, "Payers", session);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_add (exchange,
                     "<form method=\"get\" action=\"/staff/payers\" class=\"search\" "
                     "role=\"search\">\n<label for=\"q\">Search payers by name or e-mail</label>\n"
                     "<input id=\"q\" name=\"q\" type=\"text\" maxlength=\"200\" value=\"{}\">\n"
                     "<button type=\"submit\">Search</button>\n</form>\n",
                     text);
    if (billing)
        ml_web_page_add (exchange, "<p><a class=\"button\" href=\"#add\">Add Payer</a></p>\n");
    json_t *payers = json_object_get (list, "payers");
    if (json_array_size (payers) == 0)
        ml_web_page_add (exchange, *text ? "<p class=\"empty\">No payer matches.</p>\n"
                                         : "<p class=\"empty\">The firm has no payers yet.</p>\n");
    else {
        ml_web_page_add (exchange, "<table class=\"payers\">\n<thead><tr><th scope=\"col\">Name"
                                   "</th><th scope=\"col\">E-mail address</th><th scope=\"col\">"
                                   "Phone</th><th scope=\"col\">Login Access</th>"
                                   "<th scope=\"col\">Open</th></tr></thead>\n<tbody>\n");
        size_t index;
        json_t *payer;
        json_array_foreach (payers, index, payer)
        {
            char id[32];
            snprintf (id, sizeof id, "%lld",
                      (long long)json_integer_value (json_object_get (payer, "payer_id")));
            const char *name = ml_web_staff_text (payer, "name");
            ml_web_page_add (exchange,
                             "<tr data-payer-id=\"{}\"><th scope=\"row\" data-label=\"Name\">"
                             "<a href=\"/staff/payers/{}\">{}</a></th>"
                             "<td data-label=\"E-mail address\">{}</td>"
                             "<td data-label=\"Phone\">{}</td>"
                             "<td data-label=\"Login Access\" class=\"login-access\">{}</td>"
                             "<td data-label=\"Open\">"
                             "<a href=\"/staff/payers/{}\" aria-label=\"{} {}\">{}</a> "
                             "<a href=\"/staff/payer-associations/{}\" "
                             "aria-label=\"Associations of {}\">Associations</a> "
                             "<a href=\"/staff/payer-view/{}\" aria-label=\"View as {}\">View as "
                             "payer</a></td></tr>\n",
                             id, id, name, ml_web_staff_text (payer, "email"),
                             ml_web_staff_text (payer, "phone"),
                             s_list_access_words (ml_web_staff_text (payer, "login_access")), id,
                             billing ? "Edit" : "Open", name, billing ? "Edit" : "Open", id, name,
                             id, name);
        }
        ml_web_page_add (exchange, "</tbody>\n</table>\n");
        if (json_array_size (payers) == 200)
            ml_web_page_add (exchange, "<p class=\"hint\">The first 200 payers; search to find "
                                       "others.</p>\n");
    }
    if (billing)
        ml_web_page_add (
            exchange,
            "<h2 id=\"add\">Add Payer</h2>\n"
            "<form method=\"post\" action=\"/staff/payers\" class=\"stack add-payer\">\n"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
            "<label for=\"add-name\">Name</label>\n"
            "<input id=\"add-name\" name=\"name\" type=\"text\" required maxlength=\"200\" "
            "autocomplete=\"off\" value=\"{}\">\n"
            "<label for=\"add-email\">E-mail address</label>\n"
            "<input id=\"add-email\" name=\"email\" type=\"email\" required maxlength=\"254\" "
            "autocomplete=\"off\" value=\"{}\">\n"
            "<label for=\"add-phone\">Phone (optional)</label>\n"
            "<input id=\"add-phone\" name=\"phone\" type=\"text\" maxlength=\"40\" "
            "autocomplete=\"off\" value=\"{}\">\n"
            "<button type=\"submit\">Add Payer</button>\n</form>\n"
            "<p class=\"hint\">Then give the payer what they may see (Associations) and turn "
            "Login Access on.</p>\n",
            ml_web_staff_csrf (session), kept ? s_field (kept, "name") : "",
            kept ? s_field (kept, "email") : "", kept ? s_field (kept, "phone") : "");
    ml_web_staff_end (exchange);
    json_decref (list);
}

void ml_web_staff_page_payers (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") != 0) {
        s_list (exchange, token, session, NULL, NULL);
        json_decref (session);
        return;
    }
    //  The one change here: Add Payer (the core refuses it to a read-only member).
    json_t *request = json_pack (
        "{s:s, s:s, s:s, s:s}", "op", "payer-add", "name", s_field (exchange->form, "name"),
        "email", s_field (exchange->form, "email"), "csrf", s_field (exchange->form, "csrf"));
    if (request && *s_field (exchange->form, "phone"))
        json_object_set_new (request, "phone", json_string (s_field (exchange->form, "phone")));
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (reply && !ml_web_staff_answered (exchange, reply)) {
        if (s_ok (reply)) {
            char location[96];
            snprintf (location, sizeof location, "/staff/payers/%lld?done=added",
                      (long long)json_integer_value (
                          json_object_get (json_object_get (reply, "payer"), "payer_id")));
            ml_web_page_redirect (exchange, location);
        } else {
            s_list (exchange, token, session, ml_web_staff_text (reply, "error"), exchange->form);
            exchange->status = 400;
        }
    }
    json_decref (reply);
    json_decref (session);
}

//  ---------------------------------------------------------------------------------------
//  One payer.

//  What the redirect after a change says (anything else: nothing).
static const char *s_done (const char *done)
{
    static const char *const notices[][2] = {
        {"added", "The payer is added. Give them what they may see (Associations) and turn Login "
                  "Access on when they should use the portal."},
        {"saved", "The payer is saved."},
        {"email-pending", "Saved. The new e-mail address is confirmed by the payer first: a link "
                          "went to it, and the payer signs in with the old one until it is used."},
        {"access-on", "The welcome e-mail is on its way: it has a link to set a password."},
        {"access-back", "Login access is on again: the payer signs in with their password."},
        {"access-off", "Login access is off: the payer is signed out and cannot sign in."},
        {"reset", "A password reset e-mail is on its way."},
        {"deleted", "The portal login is deleted. Turning Login Access on again sends a new "
                    "welcome e-mail."},
        {"method-removed", "The saved method is removed."},
    };
    for (size_t index = 0; done && index < sizeof notices / sizeof notices[0]; index++)
        if (strcmp (done, notices[index][0]) == 0)
            return notices[index][1];
    return NULL;
}

//  Where login access stands, for people (the core's payer-show "access").
static const char *s_access_words (const char *state)
{
    return strcmp (state, "active") == 0    ? "On: the payer has set a password"
           : strcmp (state, "invited") == 0 ? "On: invited, no password yet"
           : strcmp (state, "deleted") == 0 ? "Off: the login was deleted"
                                            : "Off";
}

static const char *s_invitation_words (const char *invitation)
{
    return strcmp (invitation, "sent") == 0           ? "Sent; the link is not used yet"
           : strcmp (invitation, "link used") == 0    ? "Link used; no password set yet"
           : strcmp (invitation, "password set") == 0 ? "Password set"
           : strcmp (invitation, "expired") == 0      ? "Expired unused; send it again"
                                                      : invitation;
}

//  A one-button form posting action for this payer (with an extra member when name is set).
static void s_button (ml_web_exchange_t *exchange, json_t *session, const char *path,
                      const char *action, const char *name, const char *value, const char *kind,
                      const char *label, const char *aria)
{
    ml_web_page_add (exchange,
                     "<form class=\"inline\" method=\"post\" action=\"{}\">"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"action\" value=\"{}\">",
                     path, ml_web_staff_csrf (session), action);
    if (name)
        ml_web_page_add (exchange, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", name, value);
    ml_web_page_add (exchange,
                     "<button type=\"submit\" class=\"{}\" aria-label=\"{}\">{}</button>"
                     "</form> ",
                     kind, aria, label);
}

static void s_access (ml_web_exchange_t *exchange, json_t *session, json_t *payer, const char *path,
                      bool billing, const char *confirm)
{
    json_t *access = json_object_get (payer, "access");
    const char *state = json_is_object (access) ? ml_web_staff_text (access, "state") : "off";
    const char *invitation = ml_web_staff_text (access, "invitation");
    const char *name = ml_web_staff_text (payer, "name");
    const char *email = ml_web_staff_text (payer, "email");
    bool on = strcmp (state, "active") == 0 || strcmp (state, "invited") == 0;
    bool login = on || strcmp (state, "off") == 0;
    ml_web_page_add (exchange,
                     "<section class=\"access\" aria-labelledby=\"access-h\">\n"
                     "<h2 id=\"access-h\">Login Access</h2>\n<dl class=\"receipt\">"
                     "<dt>Access</dt><dd class=\"access-state\" data-state=\"{}\">{}</dd>",
                     state, s_access_words (state));
    if (*invitation)
        ml_web_page_add (exchange,
                         "<dt>Invitation</dt><dd class=\"invitation\" data-invitation=\"{}\">{}"
                         "<span class=\"small\">sent {}</span></dd>",
                         invitation, s_invitation_words (invitation),
                         ml_web_staff_text (access, "invited_at"));
    if (*ml_web_staff_text (access, "last_sign_in_at"))
        ml_web_page_add (exchange, "<dt>Last sign-in</dt><dd>{}</dd>",
                         ml_web_staff_text (access, "last_sign_in_at"));
    if (*ml_web_staff_text (access, "pending_email"))
        ml_web_page_add (exchange,
                         "<dt>New address</dt><dd class=\"pending-email\">{} <span "
                         "class=\"small\">waits for the payer to confirm it</span></dd>",
                         ml_web_staff_text (access, "pending_email"));
    ml_web_page_add (exchange, "</dl>\n");
    if (!billing) {
        ml_web_page_add (exchange, "</section>\n");
        return;
    }
    //  The confirmation steps (GET ?confirm=...): nothing is sent until the member confirms.
    if (strcmp (confirm, "on") == 0) {
        ml_web_page_add (
            exchange,
            "<div class=\"confirm\" role=\"alertdialog\" aria-labelledby=\"confirm-h\" "
            "aria-describedby=\"confirm-p\">\n<h3 id=\"confirm-h\">Send the welcome "
            "e-mail?</h3>\n<p id=\"confirm-p\">{} gets a welcome e-mail at <strong>{}"
            "</strong> with a link to set a password (valid for 72 hours). Each "
            "confirmation sends one e-mail; an earlier link stops working.</p>\n",
            name, email);
        s_button (exchange, session, path, "access-on", NULL, NULL, "", "Confirm",
                  "Confirm: send the welcome e-mail");
        ml_web_page_add (exchange, "<a href=\"{}\">Cancel</a>\n</div>\n", path);
    } else if (strcmp (confirm, "delete") == 0 && login) {
        ml_web_page_add (
            exchange,
            "<div class=\"confirm\" role=\"alertdialog\" aria-labelledby=\"confirm-h\" "
            "aria-describedby=\"confirm-p\">\n<h3 id=\"confirm-h\">Delete the "
            "portal login?</h3>\n<p id=\"confirm-p\">{} is signed out and can no "
            "longer sign in; their links stop working. The payer, their saved methods "
            "and associations stay.</p>\n",
            name);
        s_button (exchange, session, path, "delete", NULL, NULL, "danger", "Delete user",
                  "Confirm: delete the portal login");
        ml_web_page_add (exchange, "<a href=\"{}\">Cancel</a>\n</div>\n", path);
    }
    //  The switch: on -> a confirmation step (it sends mail); off at once (it sends none).
    ml_web_page_add (exchange, "<p class=\"actions\">");
    if (on)
        s_button (exchange, session, path, "access-off", NULL, NULL, "switch", "Login Access: On",
                  "Login Access is on; turn it off");
    else
        ml_web_page_add (exchange,
                         "<a class=\"button switch\" href=\"{}?confirm=on\" "
                         "aria-label=\"Login Access is off; turn it on\" data-on=\"false\">Login "
                         "Access: Off</a> ",
                         path);
    if (strcmp (state, "invited") == 0)
        ml_web_page_add (exchange,
                         "<a class=\"button secondary\" href=\"{}?confirm=on\">Send the welcome "
                         "e-mail again</a> ",
                         path);
    if (strcmp (state, "active") == 0)
        s_button (exchange, session, path, "reset", NULL, NULL, "", "Reset password",
                  "Send a password reset e-mail");
    if (login)
        ml_web_page_add (exchange,
                         "<a class=\"button danger\" href=\"{}?confirm=delete\">Delete user</a>",
                         path);
    ml_web_page_add (exchange, "</p>\n</section>\n");
}

static void s_methods (ml_web_exchange_t *exchange, json_t *session, json_t *payer,
                       const char *path, bool billing)
{
    json_t *methods = json_object_get (payer, "methods");
    ml_web_page_add (exchange, "<section class=\"methods\" aria-labelledby=\"methods-h\">\n"
                               "<h2 id=\"methods-h\">Saved payment methods</h2>\n");
    if (json_array_size (methods) == 0) {
        ml_web_page_add (exchange, "<p class=\"empty\">No saved methods.</p>\n</section>\n");
        return;
    }
    ml_web_page_add (exchange, "<table class=\"methods\">\n<thead><tr><th scope=\"col\">Card</th>"
                               "<th scope=\"col\">Expires</th>");
    if (billing)
        ml_web_page_add (exchange, "<th scope=\"col\">Remove</th>");
    ml_web_page_add (exchange, "</tr></thead>\n<tbody>\n");
    size_t index;
    json_t *method;
    json_array_foreach (methods, index, method)
    {
        //  Never the processor's token: the brand and last four digits are what staff need.
        char card[64], expires[16], id[32];
        snprintf (card, sizeof card, "%s ending %s", ml_web_staff_text (method, "brand"),
                  ml_web_staff_text (method, "last4"));
        snprintf (expires, sizeof expires, "%02lld/%lld",
                  (long long)json_integer_value (json_object_get (method, "exp_month")),
                  (long long)json_integer_value (json_object_get (method, "exp_year")));
        snprintf (id, sizeof id, "%lld",
                  (long long)json_integer_value (json_object_get (method, "method_id")));
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"Card\">{}</th>"
                         "<td data-label=\"Expires\">{}</td>",
                         card, expires);
        if (billing) {
            char aria[96];
            snprintf (aria, sizeof aria, "Remove %s", card);
            ml_web_page_add (exchange, "<td data-label=\"Remove\">");
            s_button (exchange, session, path, "method-remove", "method_id", id, "", "Remove",
                      aria);
            ml_web_page_add (exchange, "</td>");
        }
        ml_web_page_add (exchange, "</tr>\n");
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n</section>\n");
}

static void s_payer (ml_web_exchange_t *exchange, const char *token, json_t *session,
                     int64_t payer_id, const char *error, ml_web_form_t *kept)
{
    json_t *shown =
        ml_web_staff_payer_begin (exchange, token, session, payer_id, "/staff/payers/", error,
                                  s_done (ml_web_form_get (exchange->query, "done")));
    if (!shown)
        return;
    json_t *payer = json_object_get (shown, "payer");
    bool billing = ml_web_staff_role_allows (session, "billing");
    char path[64];
    snprintf (path, sizeof path, "/staff/payers/%lld", (long long)payer_id);
    ml_web_page_add (exchange, "<section class=\"info\" aria-labelledby=\"info-h\">\n"
                               "<h2 id=\"info-h\">Payer Information</h2>\n");
    if (billing)
        ml_web_page_add (
            exchange,
            "<form method=\"post\" action=\"{}\" class=\"stack edit-payer\">\n"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
            "<input type=\"hidden\" name=\"action\" value=\"edit\">\n"
            "<label for=\"name\">Name</label>\n"
            "<input id=\"name\" name=\"name\" type=\"text\" required maxlength=\"200\" "
            "value=\"{}\">\n<label for=\"email\">E-mail address</label>\n"
            "<input id=\"email\" name=\"email\" type=\"email\" required maxlength=\"254\" "
            "value=\"{}\" aria-describedby=\"email-hint\">\n"
            "<p id=\"email-hint\" class=\"hint\">A payer who signs in to the portal confirms a new "
            "address from a link sent to it; until then the old one stays.</p>\n"
            "<label for=\"phone\">Phone (optional)</label>\n"
            "<input id=\"phone\" name=\"phone\" type=\"text\" maxlength=\"40\" value=\"{}\">\n"
            "<button type=\"submit\">Save</button>\n</form>\n",
            path, ml_web_staff_csrf (session),
            kept ? s_field (kept, "name") : ml_web_staff_text (payer, "name"),
            kept ? s_field (kept, "email") : ml_web_staff_text (payer, "email"),
            kept ? s_field (kept, "phone") : ml_web_staff_text (payer, "phone"));
    else
        ml_web_page_add (exchange,
                         "<dl class=\"receipt\"><dt>Name</dt><dd>{}</dd><dt>E-mail address</dt>"
                         "<dd>{}</dd><dt>Phone</dt><dd>{}</dd></dl>\n",
                         ml_web_staff_text (payer, "name"), ml_web_staff_text (payer, "email"),
                         ml_web_staff_text (payer, "phone"));
    ml_web_page_add (exchange, "</section>\n");
    s_access (exchange, session, payer, path, billing, s_field (exchange->query, "confirm"));
    s_methods (exchange, session, payer, path, billing);
    ml_web_staff_end (exchange);
    json_decref (shown);
}

//  The op and the redirect's notice of each action of the payer page.
static json_t *s_request (ml_web_exchange_t *exchange, int64_t payer_id, const char *action)
{
    ml_web_form_t *form = exchange->form;
    json_t *request = NULL;
    if (strcmp (action, "edit") == 0) {
        request = json_pack ("{s:s, s:I, s:s, s:s, s:s}", "op", "payer-edit", "payer_id", payer_id,
                             "name", s_field (form, "name"), "email", s_field (form, "email"),
                             "phone", s_field (form, "phone"));
    } else if (strcmp (action, "access-on") == 0 || strcmp (action, "access-off") == 0 ||
               strcmp (action, "reset") == 0 || strcmp (action, "delete") == 0) {
        const char *what = strcmp (action, "access-on") == 0    ? "on"
                           : strcmp (action, "access-off") == 0 ? "off"
                                                                : action;
        request = json_pack ("{s:s, s:I, s:s}", "op", "payer-access", "payer_id", payer_id,
                             "action", what);
    } else if (strcmp (action, "method-remove") == 0) {
        int64_t method_id = ml_web_staff_payer_id (s_field (form, "method_id"), "");
        if (method_id > 0)
            request = json_pack ("{s:s, s:I}", "op", "method-remove", "method_id", method_id);
    }
    if (request)
        json_object_set_new (request, "csrf", json_string (s_field (form, "csrf")));
    return request;
}

void ml_web_staff_page_payer (ml_web_exchange_t *exchange)
{
    int64_t payer_id;
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session =
        ml_web_staff_payer_session (exchange, "/staff/payers/", &payer_id, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") != 0) {
        s_payer (exchange, token, session, payer_id, NULL, NULL);
        json_decref (session);
        return;
    }
    const char *action = s_field (exchange->form, "action");
    json_t *request = s_request (exchange, payer_id, action);
    if (!request) {
        s_payer (exchange, token, session, payer_id, "That is not something this page does.", NULL);
        exchange->status = 400;
        json_decref (session);
        return;
    }
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (reply && !ml_web_staff_answered (exchange, reply)) {
        if (s_ok (reply)) {
            //  Post, then redirect: a reload shows the payer, never sends the change again.
            const char *done =
                strcmp (action, "edit") == 0
                    ? (json_object_get (reply, "email_change") ? "email-pending" : "saved")
                : strcmp (action, "access-on") == 0
                    ? (json_is_integer (json_object_get (reply, "mail_id")) ? "access-on"
                                                                            : "access-back")
                    : action;
            if (strcmp (done, "delete") == 0)
                done = "deleted";
            else if (strcmp (done, "method-remove") == 0)
                done = "method-removed";
            char location[128];
            snprintf (location, sizeof location, "/staff/payers/%lld?done=%s", (long long)payer_id,
                      done);
            ml_web_page_redirect (exchange, location);
        } else {
            s_payer (exchange, token, session, payer_id, ml_web_staff_text (reply, "error"),
                     strcmp (action, "edit") == 0 ? exchange->form : NULL);
            exchange->status = 400;
        }
    }
    json_decref (reply);
    json_decref (session);
}
