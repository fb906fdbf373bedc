/*  ml_web_pages: the portal's pages. See include/ml_web_pages.h and docs/web.md.

    Every page is written through ml_html, so every value from the core or the request is
    escaped in one place. No page has inline script or style (the Content-Security-Policy
    forbids both); the one style sheet is /static/portal.css. Forms that change something
    are POSTs with a CSRF token: the session's own (the core checks it) once signed in, a
    signed double-submit token before (checked here).
*/
#include "ml_web_pages.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_table.h"

#include <czmq.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SESSION_COOKIE "ml_session"
#define S_FORM_COOKIE    "ml_form"
#define S_TOKEN_MAX      200 //  session and link tokens are 43 characters today

//  The texts a payer may see for failures that must not say more.
#define S_SIGN_IN_FAILED "The e-mail address or the password is not right."
#define S_FORM_EXPIRED   "The form expired; reload the page and try again."
#define S_LINK_EXPIRED   "This link has expired or was already used."

const char *ml_web_cookie_name (bool secure, const char *base, char *buf, size_t size)
{
    snprintf (buf, size, "%s%s", secure ? "__Host-" : "", base);
    return buf;
}

//  Whether text is a token as the core makes them (base64url), so that it can be put in a
//  cookie or a request without surprises.
static bool s_token_shape (const char *text)
{
    size_t length = text ? strlen (text) : 0;
    if (length == 0 || length > S_TOKEN_MAX)
        return false;
    for (const char *cursor = text; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
              (*cursor >= '0' && *cursor <= '9') || *cursor == '-' || *cursor == '_'))
            return false;
    return true;
}

//  Set a cookie: HttpOnly, SameSite=Strict, Path=/, and Secure with the __Host- prefix over
//  HTTPS. value NULL deletes it.
static void s_set_cookie (ml_web_exchange_t *exchange, const char *base, const char *value)
{
    if (exchange->cookie_count == ML_WEB_MAX_COOKIES)
        return;
    char name[64];
    ml_web_cookie_name (exchange->secure, base, name, sizeof name);
    snprintf (exchange->cookies[exchange->cookie_count++], sizeof exchange->cookies[0],
              "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s", name, value ? value : "",
              exchange->secure ? "; Secure" : "", value ? "" : "; Max-Age=0");
}

static int s_get_cookie (ml_web_exchange_t *exchange, const char *base, char *value, size_t size)
{
    char name[64];
    ml_web_cookie_name (exchange->secure, base, name, sizeof name);
    return ml_web_cookie_get (exchange->cookie_header, name, value, size);
}

static void s_redirect (ml_web_exchange_t *exchange, const char *location)
{
    exchange->status = 303;
    snprintf (exchange->location, sizeof exchange->location, "%s", location);
}

void ml_web_form_token_make (const unsigned char *key, char *buf, size_t size)
{
    assert (size >= ML_WEB_FORM_TOKEN_SIZE);
    unsigned char nonce[32], mac[crypto_auth_BYTES];
    randombytes_buf (nonce, sizeof nonce);
    crypto_auth (mac, nonce, sizeof nonce, key);
    sodium_bin2base64 (buf, size, nonce, sizeof nonce, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t used = strlen (buf);
    buf[used++] = '.';
    sodium_bin2base64 (buf + used, size - used, mac, sizeof mac,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool ml_web_form_token_valid (const unsigned char *key, const char *token)
{
    if (!token || strlen (token) >= ML_WEB_FORM_TOKEN_SIZE)
        return false;
    const char *dot = strchr (token, '.');
    unsigned char nonce[32], mac[crypto_auth_BYTES];
    size_t nonce_length = 0, mac_length = 0;
    if (!dot ||
        sodium_base642bin (nonce, sizeof nonce, token, (size_t)(dot - token), NULL, &nonce_length,
                           NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        nonce_length != sizeof nonce ||
        sodium_base642bin (mac, sizeof mac, dot + 1, strlen (dot + 1), NULL, &mac_length, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        mac_length != sizeof mac)
        return false;
    return crypto_auth_verify (mac, nonce, sizeof nonce, key) == 0;
}

//  The pre-session form token for a page: the browser's own when it is valid (several
//  tabs keep working), else a new one set as a cookie.
static void s_form_token (ml_web_exchange_t *exchange, char *token, size_t size)
{
    if (s_get_cookie (exchange, S_FORM_COOKIE, token, size) == 0 &&
        ml_web_form_token_valid (exchange->form_key, token))
        return;
    ml_web_form_token_make (exchange->form_key, token, size);
    s_set_cookie (exchange, S_FORM_COOKIE, token);
}

//  A pre-session POST carries the same valid token in its cookie and its form: a page of
//  another site can make the browser send the cookie, but cannot read it to fill the form.
static bool s_form_token_ok (ml_web_exchange_t *exchange)
{
    char cookie[ML_WEB_FORM_TOKEN_SIZE];
    const char *field = ml_web_form_get (exchange->form, "form_token");
    if (s_get_cookie (exchange, S_FORM_COOKIE, cookie, sizeof cookie) != 0 || !field ||
        strlen (field) != strlen (cookie) || sodium_memcmp (field, cookie, strlen (cookie)) != 0)
        return false;
    return ml_web_form_token_valid (exchange->form_key, cookie);
}

//  The page's head, the site's header with the firm's name (or web/title before one is
//  known), and the main heading.
static void s_begin (ml_web_exchange_t *exchange, const char *heading, const char *firm)
{
    ml_html_destroy (&exchange->page);
    exchange->page = ml_html_new ();
    if (!exchange->page)
        return;
    const char *site = firm && *firm ? firm : exchange->title;
    ml_html_add (exchange->page,
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>{} - {}</title>\n"
                 "<link rel=\"stylesheet\" href=\"/static/portal.css\">\n</head>\n<body>\n"
                 "<a class=\"skip\" href=\"#main\">Skip to the content</a>\n"
                 "<header class=\"site\"><p class=\"firm\">{}</p></header>\n"
                 "<main id=\"main\">\n<h1>{}</h1>\n",
                 heading, site, site, heading);
}

static void s_end (ml_web_exchange_t *exchange)
{
    if (exchange->page)
        ml_html_add (exchange->page, "</main>\n<footer class=\"site\"><p>Payments by "
                                     "matterlink</p></footer>\n</body>\n</html>\n");
}

static void s_add (ml_web_exchange_t *exchange, const char *template, ...)
{
    if (!exchange->page)
        return;
    va_list args;
    va_start (args, template);
    ml_html_vadd (exchange->page, template, args);
    va_end (args);
}

static void s_message (ml_web_exchange_t *exchange, const char *kind, const char *text)
{
    if (text)
        s_add (exchange, "<p class=\"{}\" role=\"alert\">{}</p>\n", kind, text);
}

void ml_web_page_error (ml_web_exchange_t *exchange, int status, const char *message)
{
    const char *heading = status == 404   ? "Page not found"
                          : status == 503 ? "Service unavailable"
                          : status >= 500 ? "Something went wrong"
                                          : "The request was refused";
    exchange->status = status;
    s_begin (exchange, heading, NULL);
    s_add (exchange, "<p>{}</p>\n<p><a href=\"/\">Go to the start page</a></p>\n", message);
    s_end (exchange);
}

static void s_unavailable (ml_web_exchange_t *exchange)
{
    ml_web_page_error (exchange, 503,
                       "The portal cannot reach the payment service right now. Please try "
                       "again in a few minutes.");
}

//  Send a request to the core (steals it). Returns the reply, or NULL after it wrote the
//  503 page.
static json_t *s_call (ml_web_exchange_t *exchange, json_t *request)
{
    json_t *reply = request ? ml_web_core_call (exchange->core, request) : NULL;
    json_decref (request);
    if (!reply)
        s_unavailable (exchange);
    return reply;
}

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

static const char *s_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

//  A payer op the core refused: an ended session goes to /sign-in with its cookie cleared;
//  anything else (the core's store failed...) is a failure of the service, not of the payer,
//  and keeps the session.
static void s_refused (ml_web_exchange_t *exchange, json_t *reply)
{
    if (json_is_true (json_object_get (reply, "session_ended"))) {
        s_set_cookie (exchange, S_SESSION_COOKIE, NULL);
        s_redirect (exchange, "/sign-in");
        return;
    }
    char shown[300];
    ml_log (ML_LOG_WARNING, "the core refused a payer's request: %s",
            ml_log_escape (s_text (reply, "error"), shown, sizeof shown));
    ml_web_page_error (exchange, 503,
                       "The payment service could not answer this request. Please try again "
                       "in a few minutes.");
}

//  The signed-in payer's session: the cookie's token in token and the core's
//  portal-session reply, or NULL after it wrote the answer (a redirect to /sign-in when
//  there is no live session, 503 when the core is away).
static json_t *s_session (ml_web_exchange_t *exchange, char *token, size_t size)
{
    if (s_get_cookie (exchange, S_SESSION_COOKIE, token, size) != 0 || !s_token_shape (token)) {
        s_redirect (exchange, "/sign-in");
        return NULL;
    }
    json_t *reply =
        s_call (exchange, json_pack ("{s:s, s:s}", "op", "portal-session", "session", token));
    if (reply && !s_ok (reply)) {
        s_refused (exchange, reply);
        json_decref (reply);
        reply = NULL;
    }
    return reply;
}

//  A payer op for the signed-in payer, with the session checked in the same call to the
//  core ("with_session"): the reply, and in *session (new) what portal-session says; or
//  NULL after the page was answered (no or an ended session: /sign-in; the core refused or
//  is away). Takes request.
static json_t *s_session_call (ml_web_exchange_t *exchange, json_t *request, json_t **session,
                               char *token, size_t size)
{
    *session = NULL;
    if (s_get_cookie (exchange, S_SESSION_COOKIE, token, size) != 0 || !s_token_shape (token)) {
        json_decref (request);
        s_redirect (exchange, "/sign-in");
        return NULL;
    }
    json_object_set_new (request, "session", json_string (token));
    json_object_set_new (request, "with_session", json_true ());
    json_t *reply = s_call (exchange, request);
    if (reply && !s_ok (reply)) {
        s_refused (exchange, reply);
        json_decref (reply);
        return NULL;
    }
    *session = reply ? json_incref (json_object_get (reply, "session")) : NULL;
    if (reply && !*session) {
        ml_web_page_error (exchange, 503,
                           "The payment service could not answer this request. Please try "
                           "again in a few minutes.");
        json_decref (reply);
        return NULL;
    }
    return reply;
}

//  The header of a signed-in page: who is signed in and the sign-out button.
static void s_signed_in_bar (ml_web_exchange_t *exchange, json_t *session)
{
    json_t *payer = json_object_get (session, "payer");
    s_add (exchange,
           "<form class=\"signed-in\" method=\"post\" action=\"/sign-out\">"
           "<p>Signed in as {}</p>"
           "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
           "<button type=\"submit\">Sign out</button></form>\n",
           s_text (payer, "name"), s_text (session, "csrf"));
    s_add (exchange, "<nav class=\"account\" aria-label=\"Your account\"><ul>"
                     "<li><a href=\"/invoices\">Invoices</a></li>"
                     "<li><a href=\"/history\">Payment history</a></li>"
                     "<li><a href=\"/methods\">Payment methods</a></li>"
                     "<li><a href=\"/autopay\">Auto-Pay</a></li></ul></nav>\n");
}

void ml_web_page_root (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    bool cookie = s_get_cookie (exchange, S_SESSION_COOKIE, token, sizeof token) == 0;
    //  /invoices checks the session with the core and sends an ended one to /sign-in.
    s_redirect (exchange, cookie ? "/invoices" : "/sign-in");
}

static void s_sign_in_form (ml_web_exchange_t *exchange, const char *email, const char *error)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    s_form_token (exchange, token, sizeof token);
    s_begin (exchange, "Sign in", NULL);
    s_message (exchange, "error", error);
    s_add (exchange,
           "<form method=\"post\" action=\"/sign-in\" class=\"stack\">\n"
           "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
           "<label for=\"email\">E-mail address</label>\n"
           "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" "
           "required maxlength=\"254\" value=\"{}\">\n"
           "<label for=\"password\">Password</label>\n"
           "<input id=\"password\" name=\"password\" type=\"password\" "
           "autocomplete=\"current-password\" required maxlength=\"1024\">\n"
           "<button type=\"submit\">Sign in</button>\n</form>\n"
           "<p><a href=\"/forgot-password\">Forgot your password?</a></p>\n",
           token, email ? email : "");
    s_end (exchange);
}

void ml_web_page_sign_in (ml_web_exchange_t *exchange)
{
    if (strcmp (exchange->method, "POST") != 0) {
        s_sign_in_form (exchange, NULL, NULL);
        return;
    }
    const char *email = ml_web_form_get (exchange->form, "email");
    const char *password = ml_web_form_get (exchange->form, "password");
    if (!s_form_token_ok (exchange)) {
        s_sign_in_form (exchange, email, S_FORM_EXPIRED);
        exchange->status = 403;
        return;
    }
    if (!email || !*email || !password || !*password) {
        s_sign_in_form (exchange, email, "Enter your e-mail address and your password.");
        exchange->status = 400;
        return;
    }
    json_t *reply =
        s_call (exchange, json_pack ("{s:s, s:s, s:s, s:s}", "op", "portal-sign-in", "email", email,
                                     "password", password, "client", exchange->client));
    if (!reply)
        return;
    const char *session = json_string_value (json_object_get (reply, "session"));
    if (s_ok (reply) && s_token_shape (session)) {
        s_set_cookie (exchange, S_SESSION_COOKIE, session);
        s_redirect (exchange, "/invoices");
    } else
        //  Our own words, whatever the core said: nothing tells which part was wrong.
        s_sign_in_form (exchange, email, S_SIGN_IN_FAILED);
    json_decref (reply);
}

void ml_web_page_sign_out (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    if (s_get_cookie (exchange, S_SESSION_COOKIE, token, sizeof token) != 0 ||
        !s_token_shape (token)) {
        s_redirect (exchange, "/sign-in");
        return;
    }
    json_t *reply = s_call (exchange, json_pack ("{s:s, s:s, s:s}", "op", "portal-sign-out",
                                                 "session", token, "csrf", csrf ? csrf : ""));
    if (!reply)
        return;
    if (json_is_false (json_object_get (reply, "csrf"))) {
        ml_web_page_error (exchange, 403, S_FORM_EXPIRED);
    } else {
        //  Signed out, or the session had ended already: either way the cookie goes.
        s_set_cookie (exchange, S_SESSION_COOKIE, NULL);
        s_redirect (exchange, "/sign-in");
    }
    json_decref (reply);
}

static void s_link_expired (ml_web_exchange_t *exchange)
{
    exchange->status = 410;
    s_begin (exchange, "Link expired", NULL);
    s_add (exchange,
           "<p>{}</p>\n<p><a href=\"/forgot-password\">Ask for a new link</a> or "
           "<a href=\"/sign-in\">sign in</a>.</p>\n",
           S_LINK_EXPIRED);
    s_end (exchange);
}

static void s_set_password_form (ml_web_exchange_t *exchange, const char *link, json_t *about,
                                 const char *error)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    s_form_token (exchange, token, sizeof token);
    s_begin (exchange, "Choose your password", about ? s_text (about, "firm_name") : NULL);
    s_message (exchange, "error", error);
    if (about)
        s_add (exchange, "<p>For the login of {}.</p>\n", s_text (about, "email_hint"));
    s_add (exchange,
           "<form method=\"post\" action=\"/set-password\" class=\"stack\">\n"
           "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
           "<input type=\"hidden\" name=\"token\" value=\"{}\">\n"
           "<label for=\"password\">New password</label>\n"
           "<input id=\"password\" name=\"password\" type=\"password\" "
           "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\" "
           "aria-describedby=\"password-rule\">\n"
           "<p id=\"password-rule\" class=\"hint\">At least 8 characters; a long phrase is "
           "best.</p>\n"
           "<label for=\"confirm\">The same password again</label>\n"
           "<input id=\"confirm\" name=\"confirm\" type=\"password\" "
           "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\">\n"
           "<button type=\"submit\">Set the password</button>\n</form>\n",
           token, link);
    s_end (exchange);
}

void ml_web_page_set_password (ml_web_exchange_t *exchange)
{
    bool post = strcmp (exchange->method, "POST") == 0;
    const char *link = ml_web_form_get (post ? exchange->form : exchange->query, "token");
    if (!s_token_shape (link)) {
        s_link_expired (exchange);
        return;
    }
    if (!post) {
        //  Looking does not use the link up: mail scanners open links before people do.
        json_t *about =
            s_call (exchange, json_pack ("{s:s, s:s}", "op", "portal-token", "token", link));
        if (!about)
            return;
        const char *purpose = s_text (about, "purpose");
        if (s_ok (about) && (strcmp (purpose, "welcome") == 0 || strcmp (purpose, "reset") == 0))
            s_set_password_form (exchange, link, about, NULL);
        else
            s_link_expired (exchange);
        json_decref (about);
        return;
    }
    if (!s_form_token_ok (exchange)) {
        s_set_password_form (exchange, link, NULL, S_FORM_EXPIRED);
        exchange->status = 403;
        return;
    }
    const char *password = ml_web_form_get (exchange->form, "password");
    const char *confirm = ml_web_form_get (exchange->form, "confirm");
    if (!password || !confirm || strcmp (password, confirm) != 0) {
        s_set_password_form (exchange, link, NULL, "The two passwords are not the same.");
        exchange->status = 400;
        return;
    }
    json_t *reply = s_call (exchange, json_pack ("{s:s, s:s, s:s}", "op", "portal-password-set",
                                                 "token", link, "password", password));
    if (!reply)
        return;
    if (s_ok (reply)) {
        s_begin (exchange, "Your password is set", NULL);
        s_add (exchange,
               "<p>You can now sign in with your e-mail address and this "
               "password.</p>\n<p><a class=\"button\" href=\"/sign-in\">Sign in</a></p>\n");
        s_end (exchange);
    } else {
        //  A link that is no longer valid gets the page that says so rather than the form
        //  again; otherwise the core says why for a person (a password too short...).
        json_t *about =
            s_call (exchange, json_pack ("{s:s, s:s}", "op", "portal-token", "token", link));
        if (about && !s_ok (about))
            s_link_expired (exchange);
        else if (about) {
            s_set_password_form (exchange, link, about, s_text (reply, "error"));
            exchange->status = 400;
        }
        json_decref (about);
    }
    json_decref (reply);
}

static void s_forgot_form (ml_web_exchange_t *exchange, const char *error)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    s_form_token (exchange, token, sizeof token);
    s_begin (exchange, "Forgot your password?", NULL);
    s_message (exchange, "error", error);
    s_add (exchange,
           "<p>Enter the e-mail address you sign in with. If it has login access, we send it "
           "a link to choose a new password.</p>\n"
           "<form method=\"post\" action=\"/forgot-password\" class=\"stack\">\n"
           "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
           "<label for=\"email\">E-mail address</label>\n"
           "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" "
           "required maxlength=\"254\">\n"
           "<button type=\"submit\">Send the link</button>\n</form>\n"
           "<p><a href=\"/sign-in\">Back to sign in</a></p>\n",
           token);
    s_end (exchange);
}

void ml_web_page_forgot (ml_web_exchange_t *exchange)
{
    if (strcmp (exchange->method, "POST") != 0) {
        s_forgot_form (exchange, NULL);
        return;
    }
    const char *email = ml_web_form_get (exchange->form, "email");
    if (!s_form_token_ok (exchange)) {
        s_forgot_form (exchange, S_FORM_EXPIRED);
        exchange->status = 403;
        return;
    }
    if (!email || !*email) {
        s_forgot_form (exchange, "Enter your e-mail address.");
        exchange->status = 400;
        return;
    }
    json_t *reply = s_call (exchange, json_pack ("{s:s, s:s, s:s}", "op", "portal-forgot", "email",
                                                 email, "client", exchange->client));
    if (!reply)
        return;
    json_decref (reply);
    //  The same answer whatever the address: nobody learns who has a login.
    s_begin (exchange, "Check your e-mail", NULL);
    s_add (exchange, "<p>If this e-mail address has login access, a link to choose a new "
                     "password is on its way. The link works once and expires soon.</p>\n"
                     "<p><a href=\"/sign-in\">Back to sign in</a></p>\n");
    s_end (exchange);
}

void ml_web_page_confirm_email (ml_web_exchange_t *exchange)
{
    bool post = strcmp (exchange->method, "POST") == 0;
    const char *link = ml_web_form_get (post ? exchange->form : exchange->query, "token");
    if (!s_token_shape (link)) {
        s_link_expired (exchange);
        return;
    }
    if (!post) {
        json_t *about =
            s_call (exchange, json_pack ("{s:s, s:s}", "op", "portal-token", "token", link));
        if (!about)
            return;
        if (s_ok (about) && strcmp (s_text (about, "purpose"), "email") == 0) {
            char token[ML_WEB_FORM_TOKEN_SIZE];
            s_form_token (exchange, token, sizeof token);
            s_begin (exchange, "Confirm your e-mail address", s_text (about, "firm_name"));
            s_add (exchange,
                   "<p>Confirm {} as the address you sign in with.</p>\n"
                   "<form method=\"post\" action=\"/confirm-email\" class=\"stack\">\n"
                   "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
                   "<input type=\"hidden\" name=\"token\" value=\"{}\">\n"
                   "<button type=\"submit\">Confirm</button>\n</form>\n",
                   s_text (about, "email_hint"), token, link);
            s_end (exchange);
        } else
            s_link_expired (exchange);
        json_decref (about);
        return;
    }
    if (!s_form_token_ok (exchange)) {
        ml_web_page_error (exchange, 403, S_FORM_EXPIRED);
        return;
    }
    json_t *reply =
        s_call (exchange, json_pack ("{s:s, s:s}", "op", "portal-email-confirm", "token", link));
    if (!reply)
        return;
    if (s_ok (reply)) {
        s_begin (exchange, "E-mail address confirmed", NULL);
        s_add (exchange, "<p>Sign in with your new e-mail address from now on.</p>\n"
                         "<p><a class=\"button\" href=\"/sign-in\">Sign in</a></p>\n");
        s_end (exchange);
    } else
        s_link_expired (exchange);
    json_decref (reply);
}

//  Minor units from the core: a JSON integer, or a string of decimal digits with an optional
//  '-' (what a store column gives as text). Returns 0, or -1 for anything else.
static int s_minor (json_t *value, int64_t *minor)
{
    if (json_is_integer (value)) {
        *minor = (int64_t)json_integer_value (value);
        return 0;
    }
    const char *text = json_string_value (value);
    if (!text)
        return -1;
    const char *digits = *text == '-' ? text + 1 : text;
    size_t length = strlen (digits);
    if (length == 0 || length > 18 || strspn (digits, "0123456789") != length)
        return -1;
    *minor = strtoll (text, NULL, 10);
    return 0;
}

//  An amount for a person, or a dash when the core sent something that is not one.
static const char *s_money (json_t *object, const char *key, const char *currency, char *buf,
                            size_t size)
{
    int64_t minor;
    if (s_minor (json_object_get (object, key), &minor) != 0 || ml_money_exponent (currency) < 0)
        return strcpy (buf, "-");
    return ml_money_format (minor, currency, buf, size);
}

#define S_MAX_ROWS 2000 //  a page lists at most this many invoices

//  A form may hold 32 fields: at most this many invoices can be chosen for /pay at once.
#define S_MAX_PICKS 30

//  Where the columns of a listing's invoices are (portal-invoices's item_columns).
typedef struct {
    size_t number, date, due, client, client_name, matter, matter_name, currency, total, pending,
        available;
} s_item_columns_t;

static void s_item_columns (const json_t *columns, s_item_columns_t *at)
{
    at->number = ml_table_column (columns, "invoice_number");
    at->date = ml_table_column (columns, "invoice_date");
    at->due = ml_table_column (columns, "due_date");
    at->client = ml_table_column (columns, "client_number");
    at->client_name = ml_table_column (columns, "client_name");
    at->matter = ml_table_column (columns, "matter_number");
    at->matter_name = ml_table_column (columns, "matter_description");
    at->currency = ml_table_column (columns, "currency");
    at->total = ml_table_column (columns, "total_minor");
    at->pending = ml_table_column (columns, "pending_minor");
    at->available = ml_table_column (columns, "available_minor");
}

//  An amount cell for a person, or a dash when the core sent something that is not one.
static const char *s_money_cell (const json_t *row, size_t column, const char *currency, char *buf,
                                 size_t size)
{
    int64_t minor;
    if (s_minor (json_array_get (row, column), &minor) != 0 || ml_money_exponent (currency) < 0)
        return strcpy (buf, "-");
    return ml_money_format (minor, currency, buf, size);
}

//  One invoice's row of the listing.
static void s_invoice_row (ml_web_exchange_t *exchange, const json_t *item,
                           const s_item_columns_t *at, size_t *picks, bool read_only)
{
    const char *currency = ml_table_text (item, at->currency);
    const char *number = ml_table_text (item, at->number);
    char total[64], available[64], pending[64];
    s_money_cell (item, at->total, currency, total, sizeof total);
    s_money_cell (item, at->available, currency, available, sizeof available);
    int64_t pending_minor = 0;
    bool has_pending =
        s_minor (json_array_get (item, at->pending), &pending_minor) == 0 && pending_minor > 0;
    s_add (exchange,
           "<tr><th scope=\"row\" data-label=\"Invoice\">{}</th>"
           "<td data-label=\"Date\">{}</td><td data-label=\"Due\">{}</td>"
           "<td class=\"num\" data-label=\"Total\">{}</td>"
           "<td class=\"num\" data-label=\"Available\">{}",
           number, ml_table_text (item, at->date), ml_table_text (item, at->due), total, available);
    if (has_pending)
        s_add (exchange, "<span class=\"pending\">{} pending</span>",
               s_money_cell (item, at->pending, currency, pending, sizeof pending));
    s_add (exchange, "</td><td data-label=\"Pay\">");
    //  A checkbox per invoice with something to pay: /pay offers its full balance.
    int64_t open = 0;
    if (*picks < S_MAX_PICKS && s_minor (json_array_get (item, at->available), &open) == 0 &&
        open > 0) {
        char name[16];
        snprintf (name, sizeof name, "pick_%zu", (*picks)++);
        s_add (exchange,
               read_only ? "<input type=\"checkbox\" class=\"pick\" id=\"{}\" name=\"{}\" "
                           "value=\"{}\" disabled><label for=\"{}\">Pay {}</label>"
                         : "<input type=\"checkbox\" class=\"pick\" id=\"{}\" name=\"{}\" "
                           "value=\"{}\"><label for=\"{}\">Pay {}</label>",
               name, name, number, name, number);
    }
    s_add (exchange, "</td></tr>\n");
}

//  The invoice listing of a portal-invoices reply (the payer's /invoices), or read_only (no
//  form, the controls disabled) the same for the staff app's "View as payer": one renderer,
//  so staff see exactly what the payer sees.
void ml_web_page_invoice_list (ml_web_exchange_t *exchange, json_t *reply, bool read_only)
{
    json_t *items = json_object_get (reply, "items");
    s_item_columns_t at;
    s_item_columns (json_object_get (reply, "item_columns"), &at);
    size_t count = json_array_size (items);
    if (count > S_MAX_ROWS)
        count = S_MAX_ROWS;
    if (count == 0)
        s_add (exchange, "<p class=\"empty\">You have no open invoices. Thank you!</p>\n");
    //  Grouped by client and matter, each group where its oldest invoice falls (the core
    //  sends them oldest first): one pass finds each invoice's group and chains the
    //  invoices of a group (next), so a long list costs no more than its length. The
    //  checkboxes choose invoices for /pay (a GET: choosing changes nothing).
    size_t *next = count ? calloc (count, sizeof (size_t)) : NULL, *last = NULL;
    bool *leads = count ? calloc (count, sizeof (bool)) : NULL;
    last = count ? calloc (count, sizeof (size_t)) : NULL;
    zhashx_t *groups = zhashx_new (); //  "client\x1fmatter" -> its first invoice + 1
    if (count && (!next || !leads || !last || !groups))
        count = 0; //  out of memory: an empty list rather than a crash
    for (size_t index = 0; index < count; index++) {
        next[index] = SIZE_MAX;
        json_t *item = json_array_get (items, index);
        char *key = zsys_sprintf ("%s\x1f%s", ml_table_text (item, at.client),
                                  ml_table_text (item, at.matter));
        size_t lead = key ? (size_t)(uintptr_t)zhashx_lookup (groups, key) : 0;
        if (lead == 0) {
            if (key)
                zhashx_insert (groups, key, (void *)(uintptr_t)(index + 1));
            leads[index] = true;
            last[index] = index;
        } else {
            next[last[lead - 1]] = index;
            last[lead - 1] = index;
        }
        zstr_free (&key);
    }
    zhashx_destroy (&groups);
    size_t picks = 0;
    if (count > 0 && !read_only)
        s_add (exchange, "<form method=\"get\" action=\"/pay\" id=\"choose\">\n");
    for (size_t index = 0; index < count; index++) {
        if (!leads[index])
            continue;
        json_t *item = json_array_get (items, index);
        s_add (exchange,
               "<section class=\"matter\">\n<h2>{} <span class=\"ref\">{}</span></h2>\n"
               "<p class=\"matter-name\">Matter {}: {}</p>\n"
               "<table>\n<thead><tr><th scope=\"col\">Invoice</th><th scope=\"col\">Date</th>"
               "<th scope=\"col\">Due</th><th scope=\"col\" class=\"num\">Total</th>"
               "<th scope=\"col\" class=\"num\">Available</th><th scope=\"col\">Pay</th></tr>"
               "</thead>\n<tbody>\n",
               ml_table_text (item, at.client_name), ml_table_text (item, at.client),
               ml_table_text (item, at.matter), ml_table_text (item, at.matter_name));
        for (size_t member = index; member != SIZE_MAX; member = next[member])
            s_invoice_row (exchange, json_array_get (items, member), &at, &picks, read_only);
        s_add (exchange, "</tbody>\n</table>\n</section>\n");
    }
    free (next);
    free (last);
    free (leads);
    if (json_array_size (items) > S_MAX_ROWS)
        s_add (exchange, "<p>Only the oldest invoices are shown here; please contact the firm "
                         "for the others.</p>\n");
    if (count > 0)
        s_add (exchange, read_only ? "<button type=\"button\" disabled>Pay selected</button>\n"
                                   : "<button type=\"submit\">Pay selected</button>\n</form>\n");
    s_add (exchange, "<p class=\"hint\">Available is the balance less payments that are "
                     "still being posted.</p>\n");
    json_t *trust = json_object_get (reply, "trust");
    json_t *trust_columns = json_object_get (reply, "trust_columns");
    if (json_array_size (trust) > 0) {
        size_t matter = ml_table_column (trust_columns, "matter_number"),
               description = ml_table_column (trust_columns, "matter_description"),
               currency = ml_table_column (trust_columns, "currency"),
               balance_column = ml_table_column (trust_columns, "balance_minor");
        s_add (exchange, "<section class=\"trust\">\n<h2>Trust accounts</h2>\n<table>\n"
                         "<thead><tr><th scope=\"col\">Matter</th><th scope=\"col\">"
                         "Description</th><th scope=\"col\" class=\"num\">Balance</th></tr>"
                         "</thead>\n<tbody>\n");
        size_t index;
        json_t *ledger;
        json_array_foreach (trust, index, ledger)
        {
            char balance[64];
            s_money_cell (ledger, balance_column, ml_table_text (ledger, currency), balance,
                          sizeof balance);
            s_add (exchange,
                   "<tr><th scope=\"row\" data-label=\"Matter\">{}</th>"
                   "<td data-label=\"Description\">{}</td>"
                   "<td class=\"num\" data-label=\"Balance\">{}</td></tr>\n",
                   ml_table_text (ledger, matter), ml_table_text (ledger, description), balance);
        }
        s_add (exchange, "</tbody>\n</table>\n</section>\n");
    }
}

void ml_web_page_invoices (ml_web_exchange_t *exchange)
{
    char token[S_TOKEN_MAX + 1];
    json_t *session = NULL;
    json_t *reply = s_session_call (exchange, json_pack ("{s:s}", "op", "portal-invoices"),
                                    &session, token, sizeof token);
    if (!reply)
        return;
    const char *firm = s_text (reply, "firm_name");
    if (!*firm)
        firm = s_text (json_object_get (session, "payer"), "firm_name");
    s_begin (exchange, "Your invoices", firm);
    s_signed_in_bar (exchange, session);
    ml_web_page_invoice_list (exchange, reply, false);
    s_end (exchange);
    json_decref (reply);
    json_decref (session);
}

//  The helpers above, for the other page files (web/ml_web_pay.c, web/ml_web_account.c).
void ml_web_page_begin (ml_web_exchange_t *exchange, const char *heading, const char *firm)
{
    s_begin (exchange, heading, firm);
}

void ml_web_page_end (ml_web_exchange_t *exchange)
{
    s_end (exchange);
}

void ml_web_page_add (ml_web_exchange_t *exchange, const char *template, ...)
{
    if (!exchange->page)
        return;
    va_list args;
    va_start (args, template);
    ml_html_vadd (exchange->page, template, args);
    va_end (args);
}

void ml_web_page_message (ml_web_exchange_t *exchange, const char *kind, const char *text)
{
    s_message (exchange, kind, text);
}

void ml_web_page_redirect (ml_web_exchange_t *exchange, const char *location)
{
    s_redirect (exchange, location);
}

json_t *ml_web_page_session (ml_web_exchange_t *exchange, char *token, size_t size)
{
    return s_session (exchange, token, size);
}

json_t *ml_web_page_session_call (ml_web_exchange_t *exchange, json_t *request, json_t **session,
                                  char *token, size_t size)
{
    return s_session_call (exchange, request, session, token, size);
}

void ml_web_page_signed_in_bar (ml_web_exchange_t *exchange, json_t *session)
{
    s_signed_in_bar (exchange, session);
}

json_t *ml_web_page_call (ml_web_exchange_t *exchange, json_t *request)
{
    return s_call (exchange, request);
}

void ml_web_page_refused (ml_web_exchange_t *exchange, json_t *reply)
{
    s_refused (exchange, reply);
}

const char *ml_web_page_money (json_t *object, const char *key, const char *currency, char *buf,
                               size_t size)
{
    return s_money (object, key, currency, buf, size);
}

void ml_web_pages_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_pages: ");
    assert (sodium_init () >= 0);
    unsigned char key[crypto_auth_KEYBYTES], other[crypto_auth_KEYBYTES];
    crypto_auth_keygen (key);
    crypto_auth_keygen (other);
    char token[ML_WEB_FORM_TOKEN_SIZE], second[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_form_token_make (key, token, sizeof token);
    ml_web_form_token_make (key, second, sizeof second);
    assert (strcmp (token, second) != 0 && strlen (token) == 87);
    assert (ml_web_form_token_valid (key, token));
    assert (!ml_web_form_token_valid (other, token));
    token[3] = token[3] == 'A' ? 'B' : 'A';
    assert (!ml_web_form_token_valid (key, token));
    assert (!ml_web_form_token_valid (key, "abc.def") && !ml_web_form_token_valid (key, ""));
    assert (!ml_web_form_token_valid (key, NULL));

    char name[64];
    assert (strcmp (ml_web_cookie_name (true, "ml_session", name, sizeof name),
                    "__Host-ml_session") == 0);
    assert (strcmp (ml_web_cookie_name (false, "ml_session", name, sizeof name), "ml_session") ==
            0);

    //  Cookies and the double submit, through an exchange.
    ml_web_exchange_t exchange;
    memset (&exchange, 0, sizeof exchange);
    exchange.secure = true;
    exchange.form_key = key;
    s_set_cookie (&exchange, S_SESSION_COOKIE, "abc");
    assert (strcmp (exchange.cookies[0],
                    "__Host-ml_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure") == 0);
    exchange.secure = false;
    s_set_cookie (&exchange, S_SESSION_COOKIE, NULL);
    assert (strcmp (exchange.cookies[1],
                    "ml_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0") == 0);
    char form_token[ML_WEB_FORM_TOKEN_SIZE], cookie[200], body[300];
    ml_web_form_token_make (key, form_token, sizeof form_token);
    snprintf (cookie, sizeof cookie, "ml_form=%s", form_token);
    exchange.cookie_header = cookie;
    const char *error;
    snprintf (body, sizeof body, "form_token=%s", form_token);
    exchange.form = ml_web_form_parse (body, strlen (body), &error);
    assert (s_form_token_ok (&exchange));
    ml_web_form_destroy (&exchange.form);
    ml_web_form_token_make (key, second, sizeof second);
    snprintf (body, sizeof body, "form_token=%s", second); //  valid, but not the cookie's
    exchange.form = ml_web_form_parse (body, strlen (body), &error);
    assert (!s_form_token_ok (&exchange));
    ml_web_form_destroy (&exchange.form);
    exchange.cookie_header = NULL;
    snprintf (body, sizeof body, "form_token=%s", form_token);
    exchange.form = ml_web_form_parse (body, strlen (body), &error);
    assert (!s_form_token_ok (&exchange));
    ml_web_form_destroy (&exchange.form);

    int64_t minor = 0;
    json_t *value = json_integer (-5);
    assert (s_minor (value, &minor) == 0 && minor == -5);
    json_decref (value);
    value = json_string ("250000");
    assert (s_minor (value, &minor) == 0 && minor == 250000);
    json_decref (value);
    const char *not_amounts[] = {"",  "-", "1.5", "1e3", " 1", "+1", "0x10", "1234567890123456789",
                                 NULL};
    for (size_t index = 0; not_amounts[index]; index++) {
        value = json_string (not_amounts[index]);
        assert (s_minor (value, &minor) == -1);
        json_decref (value);
    }
    value = json_real (1.5);
    assert (s_minor (value, &minor) == -1);
    json_decref (value);
    char shown[64];
    value = json_pack ("{s:s}", "balance_minor", "123456");
    assert (strcmp (s_money (value, "balance_minor", "USD", shown, sizeof shown), "1,234.56 USD") ==
            0);
    assert (strcmp (s_money (value, "balance_minor", "usd", shown, sizeof shown), "-") == 0);
    assert (strcmp (s_money (value, "missing", "USD", shown, sizeof shown), "-") == 0);
    json_decref (value);

    assert (s_token_shape ("abc-_XYZ09") && !s_token_shape ("a b") && !s_token_shape ("") &&
            !s_token_shape ("a;b") && !s_token_shape (NULL));

    //  Values from the core land escaped in the page.
    exchange.title = "Portal";
    s_begin (&exchange, "Invoices", "Smith & <Jones>");
    s_message (&exchange, "error", "\"><script>alert(1)</script>");
    s_end (&exchange);
    const char *page = ml_html_data (exchange.page);
    assert (strstr (page, "Smith &amp; &lt;Jones&gt;") && !strstr (page, "<script>") &&
            !strstr (page, "<Jones>"));
    assert (!strstr (page, "style=") && !strstr (page, "<style") && !strstr (page, "<script"));
    ml_html_destroy (&exchange.page);
    printf ("OK\n");
}
