/*  ml_web_staff_auth: the staff app's sign-in, sign-out, invitation, forgotten password and
    reset pages (docs/web.md "The staff app").

    Sign-in has a second step when the core answers second_factor (the authenticator's code
    or a recovery code) or choose_firm (one e-mail address at several firms). The core keeps
    nothing between the steps and wants the password again with the code, and the web keeps
    no state either: the e-mail, password and firm travel to the next step sealed
    (crypto_secretbox under a key derived from the form key, for five minutes), so the page
    never holds the password in clear and a copy of the page is useless after the step.
*/
#include "ml_web_staff.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_SIGN_IN_FAILED "The e-mail address or the password is not right."
#define S_FORM_EXPIRED   "The form expired; reload the page and try again."
#define S_LINK_EXPIRED                                                                             \
    "This link has expired or was already used; ask your administrator for a new one."
#define S_STEP_SECONDS 300 //  how long a sealed second step stays good

//  The sealed step's key: the form key hashed with this purpose, so a form token and a
//  sealed step can never be taken for each other.
static void s_step_key (ml_web_exchange_t *exchange, unsigned char *key)
{
    static const char purpose[] = "matterlink staff sign-in second step";
    crypto_generichash (key, crypto_secretbox_KEYBYTES, (const unsigned char *)purpose,
                        sizeof purpose - 1, exchange->form_key, crypto_auth_KEYBYTES);
}

//  Seal {e, p, f, t} into buf (base64url of nonce and box). Returns 0, or -1 if it does not
//  fit (a form field holds at most ML_WEB_FORM_MAX_VALUE bytes).
static int s_step_seal (ml_web_exchange_t *exchange, const char *email, const char *password,
                        const char *firm, char *buf, size_t size)
{
    json_t *step = json_pack ("{s:s, s:s, s:s, s:I}", "e", email, "p", password, "f",
                              firm ? firm : "", "t", (json_int_t)time (NULL));
    char *text = step ? json_dumps (step, JSON_COMPACT) : NULL;
    json_decref (step);
    if (!text)
        return -1;
    size_t length = strlen (text);
    size_t sealed_size = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + length;
    int rc = -1;
    unsigned char *sealed = malloc (sealed_size);
    if (sealed &&
        sodium_base64_ENCODED_LEN (sealed_size, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <= size) {
        unsigned char key[crypto_secretbox_KEYBYTES];
        s_step_key (exchange, key);
        randombytes_buf (sealed, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy (sealed + crypto_secretbox_NONCEBYTES, (unsigned char *)text, length,
                               sealed, key);
        sodium_memzero (key, sizeof key);
        sodium_bin2base64 (buf, size, sealed, sealed_size,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        rc = 0;
    }
    sodium_memzero (text, length);
    free (text);
    free (sealed);
    return rc;
}

//  Open a sealed step: its object (new reference) when it is ours and not older than
//  S_STEP_SECONDS, else NULL.
static json_t *s_step_open (ml_web_exchange_t *exchange, const char *text)
{
    if (!text || strlen (text) > ML_WEB_FORM_MAX_VALUE)
        return NULL;
    unsigned char sealed[ML_WEB_FORM_MAX_VALUE];
    size_t sealed_size = 0;
    if (sodium_base642bin (sealed, sizeof sealed, text, strlen (text), NULL, &sealed_size, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        sealed_size <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
        return NULL;
    size_t length = sealed_size - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    char plain[ML_WEB_FORM_MAX_VALUE + 1];
    unsigned char key[crypto_secretbox_KEYBYTES];
    s_step_key (exchange, key);
    int rc =
        crypto_secretbox_open_easy ((unsigned char *)plain, sealed + crypto_secretbox_NONCEBYTES,
                                    sealed_size - crypto_secretbox_NONCEBYTES, sealed, key);
    sodium_memzero (key, sizeof key);
    if (rc != 0)
        return NULL;
    plain[length] = 0;
    json_t *step = json_loads (plain, 0, NULL);
    sodium_memzero (plain, sizeof plain);
    json_int_t at = json_integer_value (json_object_get (step, "t"));
    json_int_t now = (json_int_t)time (NULL);
    if (!json_is_string (json_object_get (step, "e")) ||
        !json_is_string (json_object_get (step, "p")) || at > now + 5 ||
        now - at > S_STEP_SECONDS) {
        json_decref (step);
        return NULL;
    }
    return step;
}

static void s_sign_in_form (ml_web_exchange_t *exchange, const char *email, const char *error,
                            const char *notice)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_staff_form_token (exchange, token, sizeof token);
    ml_web_staff_begin_anonymous (exchange, "Staff sign-in", NULL);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_message (exchange, "notice", notice);
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/sign-in\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
                     "<label for=\"email\">E-mail address</label>\n"
                     "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" "
                     "required maxlength=\"254\" value=\"{}\">\n"
                     "<label for=\"password\">Password</label>\n"
                     "<input id=\"password\" name=\"password\" type=\"password\" "
                     "autocomplete=\"current-password\" required maxlength=\"1024\">\n"
                     "<button type=\"submit\">Sign in</button>\n</form>\n"
                     "<p><a href=\"/staff/forgot\">Forgot your password?</a></p>\n",
                     token, email ? email : "");
    ml_web_staff_end (exchange);
}

//  The second step: the code (error says why it is shown again), or the firm to sign in to.
static void s_second_step (ml_web_exchange_t *exchange, const char *sealed, json_t *firms,
                           const char *error)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_staff_form_token (exchange, token, sizeof token);
    ml_web_staff_begin_anonymous (exchange, firms ? "Choose the firm" : "Two-step verification",
                                  NULL);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/sign-in\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"step\" value=\"{}\">\n",
                     token, sealed);
    if (firms) {
        ml_web_page_add (exchange, "<fieldset><legend>Your e-mail address signs in to several "
                                   "firms. Which one now?</legend>\n");
        size_t index;
        json_t *firm;
        json_array_foreach (firms, index, firm)
        {
            char id[32];
            snprintf (id, sizeof id, "firm-%zu", index);
            ml_web_page_add (exchange,
                             "<p><input type=\"radio\" name=\"firm\" id=\"{}\" value=\"{}\"{}>"
                             "<label for=\"{}\">{}</label></p>\n",
                             id, ml_web_staff_text (firm, "firm"), index == 0 ? " checked" : "", id,
                             ml_web_staff_text (firm, "firm_name"));
        }
        ml_web_page_add (exchange, "</fieldset>\n<button type=\"submit\">Continue</button>\n");
    } else
        ml_web_page_add (exchange,
                         "<label for=\"code\">Code</label>\n"
                         "<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"text\" "
                         "autocomplete=\"one-time-code\" required maxlength=\"32\" "
                         "aria-describedby=\"code-hint\" autofocus>\n"
                         "<p id=\"code-hint\" class=\"hint\">The 6 digits your authenticator app "
                         "shows now, or one of your recovery codes (each works once).</p>\n"
                         "<button type=\"submit\">Verify</button>\n");
    ml_web_page_add (exchange, "</form>\n<p><a href=\"/staff/sign-in\">Start again</a></p>\n");
    ml_web_staff_end (exchange);
}

//  Ask the core, and answer: the session's cookie and home, the next step, or the form again.
static void s_sign_in (ml_web_exchange_t *exchange, const char *email, const char *password,
                       const char *firm, const char *code)
{
    //  The browser's address goes along for the audit of sign-ins and failures.
    json_t *request = json_pack ("{s:s, s:s, s:s, s:s}", "op", "staff-sign-in", "email", email,
                                 "password", password, "client", exchange->client);
    if (request && firm && *firm)
        json_object_set_new (request, "firm", json_string (firm));
    if (request && code && *code)
        json_object_set_new (request, "code", json_string (code));
    json_t *reply = ml_web_page_call (exchange, request);
    if (!reply)
        return;
    const char *session = json_string_value (json_object_get (reply, "staff_session"));
    json_t *firms = json_object_get (reply, "choose_firm");
    char sealed[ML_WEB_FORM_MAX_VALUE];
    if (json_is_true (json_object_get (reply, "ok")) && ml_web_staff_token_shape (session)) {
        ml_web_staff_set_cookie (exchange, session);
        ml_web_page_redirect (exchange, "/staff/");
    } else if ((json_is_true (json_object_get (reply, "second_factor")) ||
                json_array_size (firms) > 0) &&
               s_step_seal (exchange, email, password, firm, sealed, sizeof sealed) == 0) {
        //  A code that was given and refused says so; the first time, the step just asks.
        const char *error = code && *code ? "That code is not right, or was used already. "
                                            "Enter the code your app shows now."
                                          : NULL;
        s_second_step (exchange, sealed, json_array_size (firms) > 0 ? firms : NULL, error);
        if (error)
            exchange->status = 400;
    } else
        //  Our own words, whatever the core said: nothing tells which part was wrong.
        s_sign_in_form (exchange, email, S_SIGN_IN_FAILED, NULL);
    json_decref (reply);
}

void ml_web_staff_page_sign_in (ml_web_exchange_t *exchange)
{
    if (strcmp (exchange->method, "POST") != 0) {
        s_sign_in_form (exchange, NULL, NULL, NULL);
        return;
    }
    const char *email = ml_web_form_get (exchange->form, "email");
    if (!ml_web_staff_form_token_ok (exchange)) {
        s_sign_in_form (exchange, email, S_FORM_EXPIRED, NULL);
        exchange->status = 403;
        return;
    }
    const char *sealed = ml_web_form_get (exchange->form, "step");
    if (sealed) {
        json_t *step = s_step_open (exchange, sealed);
        if (!step) {
            s_sign_in_form (exchange, NULL, "That took too long; sign in again.", NULL);
            exchange->status = 403;
            return;
        }
        const char *firm = ml_web_form_get (exchange->form, "firm");
        if (!firm || !*firm)
            firm = ml_web_staff_text (step, "f");
        s_sign_in (exchange, ml_web_staff_text (step, "e"), ml_web_staff_text (step, "p"), firm,
                   ml_web_form_get (exchange->form, "code"));
        json_object_set_new (step, "p", json_string (""));
        json_decref (step);
        return;
    }
    const char *password = ml_web_form_get (exchange->form, "password");
    if (!email || !*email || !password || !*password) {
        s_sign_in_form (exchange, email, "Enter your e-mail address and your password.", NULL);
        exchange->status = 400;
        return;
    }
    s_sign_in (exchange, email, password, NULL, NULL);
}

void ml_web_staff_page_sign_out (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    char name[64];
    snprintf (name, sizeof name, "%sml_staff", exchange->secure ? "__Secure-" : "");
    if (ml_web_cookie_get (exchange->cookie_header, name, token, sizeof token) != 0 ||
        !ml_web_staff_token_shape (token)) {
        ml_web_page_redirect (exchange, "/staff/sign-in");
        return;
    }
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    json_t *reply = ml_web_staff_call (
        exchange, token,
        json_pack ("{s:s, s:s}", "op", "staff-sign-out", "csrf", csrf ? csrf : ""));
    if (!reply)
        return;
    if (json_is_false (json_object_get (reply, "csrf")))
        ml_web_page_error (exchange, 403, S_FORM_EXPIRED);
    else {
        //  Signed out, or the session had ended already: either way the cookie goes.
        ml_web_staff_set_cookie (exchange, NULL);
        ml_web_page_redirect (exchange, "/staff/sign-in");
    }
    json_decref (reply);
}

static void s_link_expired (ml_web_exchange_t *exchange)
{
    exchange->status = 410;
    ml_web_staff_begin_anonymous (exchange, "Link expired", NULL);
    ml_web_page_add (exchange, "<p>{}</p>\n<p><a href=\"/staff/sign-in\">Sign in</a></p>\n",
                     S_LINK_EXPIRED);
    ml_web_staff_end (exchange);
}

//  The recovery codes, shown once: what they are for, and to print or copy them now.
static void s_recovery_codes (ml_web_exchange_t *exchange, json_t *codes)
{
    ml_web_page_add (exchange,
                     "<section class=\"recovery\" aria-labelledby=\"codes-heading\">\n"
                     "<h2 id=\"codes-heading\">Your recovery codes</h2>\n"
                     "<p class=\"notice\">These codes are shown <strong>only now</strong>. Print "
                     "this page or copy the codes to a safe place. Each code signs you in once "
                     "when you do not have your authenticator app.</p>\n<ol class=\"codes\">");
    size_t index;
    json_t *code;
    json_array_foreach (codes, index, code)
        ml_web_page_add (exchange, "<li><code>{}</code></li>", json_string_value (code));
    ml_web_page_add (exchange, "</ol>\n</section>\n");
}

//  The authenticator's enrolment: the secret as text and as an otpauth link, and the code.
static void s_totp_fields (ml_web_exchange_t *exchange, json_t *about)
{
    ml_web_page_add (exchange,
                     "<fieldset class=\"totp\"><legend>Two-step verification</legend>\n"
                     "<p>Add this account to your authenticator app: open the link on your phone, "
                     "or type the key into the app.</p>\n"
                     "<p><a class=\"otpauth\" href=\"{}\">Add to an authenticator app</a></p>\n"
                     "<p>Key: <code class=\"secret\" id=\"totp-secret\">{}</code></p>\n"
                     "<label for=\"totp_code\">The 6-digit code the app shows</label>\n"
                     "<input id=\"totp_code\" name=\"totp_code\" type=\"text\" "
                     "inputmode=\"numeric\" autocomplete=\"one-time-code\" required "
                     "pattern=\"[0-9]{{6}\" maxlength=\"6\">\n</fieldset>\n",
                     ml_web_staff_text (about, "totp_uri"),
                     ml_web_staff_text (about, "totp_secret"));
}

static void s_accept_form (ml_web_exchange_t *exchange, const char *link, json_t *about,
                           const char *error)
{
    bool invite = strcmp (ml_web_staff_text (about, "purpose"), "invite") == 0;
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_staff_form_token (exchange, token, sizeof token);
    ml_web_staff_begin_anonymous (exchange,
                                  invite ? "Accept the invitation" : "Choose a new password",
                                  ml_web_staff_text (about, "firm_name"));
    ml_web_page_message (exchange, "error", error);
    if (invite)
        ml_web_page_add (exchange,
                         "<p>Welcome, {}. You join {} as {} with the e-mail address {}.</p>\n",
                         ml_web_staff_text (about, "name"), ml_web_staff_text (about, "firm_name"),
                         ml_web_staff_role_name (ml_web_staff_text (about, "role")),
                         ml_web_staff_text (about, "email"));
    else
        ml_web_page_add (exchange, "<p>For the staff login of {}.</p>\n",
                         ml_web_staff_text (about, "email"));
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"{}\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"token\" value=\"{}\">\n"
                     "<label for=\"password\">New password</label>\n"
                     "<input id=\"password\" name=\"password\" type=\"password\" "
                     "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\" "
                     "aria-describedby=\"password-rule\">\n"
                     "<p id=\"password-rule\" class=\"hint\">At least 8 characters, not your "
                     "e-mail address; a long phrase is best.</p>\n"
                     "<label for=\"confirm\">The same password again</label>\n"
                     "<input id=\"confirm\" name=\"confirm\" type=\"password\" "
                     "autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"1024\">\n",
                     exchange->path, token, link);
    if (json_is_true (json_object_get (about, "totp_required")) &&
        *ml_web_staff_text (about, "totp_secret"))
        s_totp_fields (exchange, about);
    ml_web_page_add (exchange, "<button type=\"submit\">{}</button>\n</form>\n",
                     invite ? "Accept and set the password" : "Set the password");
    ml_web_staff_end (exchange);
}

//  /staff/accept and /staff/reset: the invitation's and the reset's single-use links. Looking
//  (GET) does not use the link up: mail scanners open links before people do.
void ml_web_staff_page_accept (ml_web_exchange_t *exchange)
{
    bool post = strcmp (exchange->method, "POST") == 0;
    const char *link = ml_web_form_get (post ? exchange->form : exchange->query, "token");
    if (!ml_web_staff_token_shape (link)) {
        s_link_expired (exchange);
        return;
    }
    json_t *about =
        ml_web_page_call (exchange, json_pack ("{s:s, s:s}", "op", "staff-token", "token", link));
    if (!about)
        return;
    const char *purpose = ml_web_staff_text (about, "purpose");
    const char *wanted = strcmp (exchange->path, "/staff/reset") == 0 ? "reset" : "invite";
    if (!json_is_true (json_object_get (about, "ok")) || strcmp (purpose, wanted) != 0) {
        s_link_expired (exchange);
        json_decref (about);
        return;
    }
    if (!post) {
        s_accept_form (exchange, link, about, NULL);
        json_decref (about);
        return;
    }
    if (!ml_web_staff_form_token_ok (exchange)) {
        s_accept_form (exchange, link, about, S_FORM_EXPIRED);
        exchange->status = 403;
        json_decref (about);
        return;
    }
    const char *password = ml_web_form_get (exchange->form, "password");
    const char *confirm = ml_web_form_get (exchange->form, "confirm");
    const char *code = ml_web_form_get (exchange->form, "totp_code");
    if (!password || !confirm || strcmp (password, confirm) != 0) {
        s_accept_form (exchange, link, about, "The two passwords are not the same.");
        exchange->status = 400;
        json_decref (about);
        return;
    }
    json_t *request = json_pack ("{s:s, s:s, s:s, s:s}", "op", "staff-accept", "token", link,
                                 "password", password, "confirm", confirm);
    if (request && code && *code)
        json_object_set_new (request, "totp_code", json_string (code));
    json_t *reply = ml_web_page_call (exchange, request);
    if (!reply) {
        json_decref (about);
        return;
    }
    if (json_is_true (json_object_get (reply, "ok"))) {
        ml_web_staff_begin_anonymous (
            exchange, strcmp (purpose, "invite") == 0 ? "Welcome aboard" : "Your password is set",
            ml_web_staff_text (about, "firm_name"));
        json_t *codes = json_object_get (reply, "recovery_codes");
        if (json_array_size (codes) > 0)
            s_recovery_codes (exchange, codes);
        ml_web_page_add (exchange, "<p>You can now sign in with your e-mail address and this "
                                   "password.</p>\n<p><a class=\"button no-print\" "
                                   "href=\"/staff/sign-in\">Sign in</a></p>\n");
        ml_web_staff_end (exchange);
    } else {
        //  The core says why for a person (a password too short, a wrong code).
        s_accept_form (exchange, link, about, ml_web_staff_text (reply, "error"));
        exchange->status = 400;
    }
    json_decref (reply);
    json_decref (about);
}

static void s_forgot_form (ml_web_exchange_t *exchange, const char *error)
{
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_staff_form_token (exchange, token, sizeof token);
    ml_web_staff_begin_anonymous (exchange, "Forgot your password?", NULL);
    ml_web_page_message (exchange, "error", error);
    ml_web_page_add (exchange,
                     "<p>Enter the e-mail address you sign in with. If it belongs to an active "
                     "staff account, we send it a link to choose a new password.</p>\n"
                     "<form method=\"post\" action=\"/staff/forgot\" class=\"stack\">\n"
                     "<input type=\"hidden\" name=\"form_token\" value=\"{}\">\n"
                     "<label for=\"email\">E-mail address</label>\n"
                     "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" "
                     "required maxlength=\"254\">\n"
                     "<button type=\"submit\">Send the link</button>\n</form>\n"
                     "<p><a href=\"/staff/sign-in\">Back to sign in</a></p>\n",
                     token);
    ml_web_staff_end (exchange);
}

void ml_web_staff_page_forgot (ml_web_exchange_t *exchange)
{
    if (strcmp (exchange->method, "POST") != 0) {
        s_forgot_form (exchange, NULL);
        return;
    }
    const char *email = ml_web_form_get (exchange->form, "email");
    if (!ml_web_staff_form_token_ok (exchange)) {
        s_forgot_form (exchange, S_FORM_EXPIRED);
        exchange->status = 403;
        return;
    }
    if (!email || !*email) {
        s_forgot_form (exchange, "Enter your e-mail address.");
        exchange->status = 400;
        return;
    }
    json_t *reply =
        ml_web_page_call (exchange, json_pack ("{s:s, s:s}", "op", "staff-forgot", "email", email));
    if (!reply)
        return;
    json_decref (reply);
    //  The same answer whatever the address: nobody learns who has an account.
    ml_web_staff_begin_anonymous (exchange, "Check your e-mail", NULL);
    ml_web_page_add (exchange, "<p>If this e-mail address belongs to an active staff account, a "
                               "link to choose a new password is on its way. The link works once "
                               "and expires in an hour.</p>\n"
                               "<p><a href=\"/staff/sign-in\">Back to sign in</a></p>\n");
    ml_web_staff_end (exchange);
}

//  The sealed second step: it opens with the same key, not with another, not once changed,
//  not when stale.
void ml_web_staff_auth_test (void)
{
    unsigned char key[crypto_auth_KEYBYTES], other[crypto_auth_KEYBYTES];
    crypto_auth_keygen (key);
    crypto_auth_keygen (other);
    ml_web_exchange_t exchange;
    memset (&exchange, 0, sizeof exchange);
    exchange.form_key = key;
    char sealed[ML_WEB_FORM_MAX_VALUE];
    assert (s_step_seal (&exchange, "a@example.com", "pass word", "acme", sealed, sizeof sealed) ==
            0);
    assert (!strstr (sealed, "pass") && strlen (sealed) < ML_WEB_FORM_MAX_VALUE);
    json_t *step = s_step_open (&exchange, sealed);
    assert (step && strcmp (ml_web_staff_text (step, "p"), "pass word") == 0 &&
            strcmp (ml_web_staff_text (step, "f"), "acme") == 0);
    json_decref (step);
    exchange.form_key = other;
    assert (!s_step_open (&exchange, sealed));
    exchange.form_key = key;
    sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
    assert (!s_step_open (&exchange, sealed));
    assert (!s_step_open (&exchange, "") && !s_step_open (&exchange, NULL) &&
            !s_step_open (&exchange, "not*base64"));
    char small[40];
    assert (s_step_seal (&exchange, "a@example.com", "p", NULL, small, sizeof small) == -1);
}
