/*  ml_web_staff: the staff app's frame. See include/ml_web_staff.h and docs/web.md.

    The session helper and the layout every staff page shares. The web keeps no state: the
    staff session lives in the core, which also decides what each role may do; the
    navigation below only leaves out the links a role would get 404 for.
*/
#include "ml_web_staff.h"
#include "ml_log.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define S_STAFF_COOKIE "ml_staff"
#define S_FORM_COOKIE  "ml_form"

const char *ml_web_staff_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

bool ml_web_staff_token_shape (const char *text)
{
    size_t length = text ? strlen (text) : 0;
    if (length == 0 || length > ML_WEB_STAFF_TOKEN_MAX)
        return false;
    return strspn (text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
           length;
}

//  The cookie's name: browsers take "__Secure-" only with Secure, and "__Host-" would need
//  Path=/, which the staff cookie must not have (the payer's pages must not receive it).
static const char *s_cookie_name (ml_web_exchange_t *exchange, char *buf, size_t size)
{
    snprintf (buf, size, "%s%s", exchange->secure ? "__Secure-" : "", S_STAFF_COOKIE);
    return buf;
}

void ml_web_staff_set_cookie (ml_web_exchange_t *exchange, const char *token)
{
    if (exchange->cookie_count == ML_WEB_MAX_COOKIES)
        return;
    char name[64];
    snprintf (exchange->cookies[exchange->cookie_count++], sizeof exchange->cookies[0],
              "%s=%s; Path=/staff; HttpOnly; SameSite=Strict%s%s",
              s_cookie_name (exchange, name, sizeof name), token ? token : "",
              exchange->secure ? "; Secure" : "", token ? "" : "; Max-Age=0");
}

//  The portal's form cookie, set the same way it sets it (Path=/, __Host- over HTTPS), so
//  one token serves both apps' pre-session forms.
static void s_set_form_cookie (ml_web_exchange_t *exchange, const char *value)
{
    if (exchange->cookie_count == ML_WEB_MAX_COOKIES)
        return;
    char name[64];
    ml_web_cookie_name (exchange->secure, S_FORM_COOKIE, name, sizeof name);
    snprintf (exchange->cookies[exchange->cookie_count++], sizeof exchange->cookies[0],
              "%s=%s; Path=/; HttpOnly; SameSite=Strict%s", name, value,
              exchange->secure ? "; Secure" : "");
}

void ml_web_staff_form_token (ml_web_exchange_t *exchange, char *buf, size_t size)
{
    char name[64];
    ml_web_cookie_name (exchange->secure, S_FORM_COOKIE, name, sizeof name);
    if (ml_web_cookie_get (exchange->cookie_header, name, buf, size) == 0 &&
        ml_web_form_token_valid (exchange->form_key, buf))
        return;
    ml_web_form_token_make (exchange->form_key, buf, size);
    s_set_form_cookie (exchange, buf);
}

bool ml_web_staff_form_token_ok (ml_web_exchange_t *exchange)
{
    char name[64], cookie[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_cookie_name (exchange->secure, S_FORM_COOKIE, name, sizeof name);
    const char *field = ml_web_form_get (exchange->form, "form_token");
    if (ml_web_cookie_get (exchange->cookie_header, name, cookie, sizeof cookie) != 0 || !field ||
        strlen (field) != strlen (cookie) || sodium_memcmp (field, cookie, strlen (cookie)) != 0)
        return false;
    return ml_web_form_token_valid (exchange->form_key, cookie);
}

json_t *ml_web_staff_call (ml_web_exchange_t *exchange, const char *token, json_t *request)
{
    if (request && token)
        json_object_set_new (request, "staff_session", json_string (token));
    return ml_web_page_call (exchange, request);
}

json_t *ml_web_staff_session (ml_web_exchange_t *exchange, char *token, size_t size)
{
    char name[64];
    s_cookie_name (exchange, name, sizeof name);
    if (ml_web_cookie_get (exchange->cookie_header, name, token, size) != 0 ||
        !ml_web_staff_token_shape (token)) {
        ml_web_page_redirect (exchange, "/staff/sign-in");
        return NULL;
    }
    json_t *reply = ml_web_staff_call (exchange, token, json_pack ("{s:s}", "op", "staff-session"));
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        //  Whatever the core says of a session it does not take, the page cannot go on.
        if (!json_is_true (json_object_get (reply, "session_ended")) &&
            strcmp (ml_web_staff_text (reply, "error"), "not found") != 0)
            ml_web_staff_refused (exchange, reply);
        else {
            ml_web_staff_set_cookie (exchange, NULL);
            ml_web_page_redirect (exchange, "/staff/sign-in");
        }
        json_decref (reply);
        reply = NULL;
    }
    return reply;
}

void ml_web_staff_not_found (ml_web_exchange_t *exchange)
{
    ml_html_destroy (&exchange->page);
    exchange->cookie_count = 0;
    *exchange->location = 0;
    ml_web_page_error (exchange, 404, "There is no such page.");
}

bool ml_web_staff_answered (ml_web_exchange_t *exchange, json_t *reply)
{
    if (json_is_true (json_object_get (reply, "ok")))
        return false;
    if (json_is_true (json_object_get (reply, "session_ended"))) {
        ml_html_destroy (&exchange->page);
        ml_web_staff_set_cookie (exchange, NULL);
        ml_web_page_redirect (exchange, "/staff/sign-in");
        return true;
    }
    if (json_is_false (json_object_get (reply, "csrf"))) {
        ml_html_destroy (&exchange->page);
        ml_web_page_error (exchange, 403, "The form expired; reload the page and try again.");
        return true;
    }
    if (strcmp (ml_web_staff_text (reply, "error"), "not found") == 0) {
        ml_web_staff_not_found (exchange);
        return true;
    }
    return false;
}

void ml_web_staff_refused (ml_web_exchange_t *exchange, json_t *reply)
{
    if (ml_web_staff_answered (exchange, reply))
        return;
    char shown[300];
    ml_log (ML_LOG_WARNING, "the core refused a staff request: %s",
            ml_log_escape (ml_web_staff_text (reply, "error"), shown, sizeof shown));
    ml_html_destroy (&exchange->page);
    ml_web_page_error (exchange, 503,
                       "The payment service could not answer this request. Please try again "
                       "in a few minutes.");
}

static int s_role_rank (const char *role)
{
    return !role                           ? 0
           : strcmp (role, "admin") == 0   ? 3
           : strcmp (role, "billing") == 0 ? 2
           : strcmp (role, "read") == 0    ? 1
                                           : 0;
}

bool ml_web_staff_role_allows (json_t *session, const char *least)
{
    int rank = s_role_rank (ml_web_staff_text (json_object_get (session, "staff"), "role"));
    return rank > 0 && rank >= s_role_rank (least);
}

const char *ml_web_staff_role_name (const char *role)
{
    switch (s_role_rank (role)) {
        case 3:
            return "Administrator";
        case 2:
            return "Billing";
        case 1:
            return "Read-only";
        default:
            return "Unknown role";
    }
}

const char *ml_web_staff_csrf (json_t *session)
{
    return ml_web_staff_text (session, "csrf");
}

//  The staff app's pages in its navigation, each with the least role that may see it. A page
//  another helper adds (Make a Payment) gets its line here.
typedef struct {
    const char *path;
    const char *label;
    const char *least;
} s_nav_t;

static const s_nav_t s_nav[] = {
    {"/staff/", "Home", "read"},
    {"/staff/pay", "Make a Payment", "billing"},
    {"/staff/payers", "Payers", "read"},
    {"/staff/postings", "Postings", "read"},
    {"/staff/autopay", "Auto-Pay", "read"},
    {"/staff/users", "Users", "admin"},
    {"/staff/notifications", "Notifications", "admin"},
    {"/staff/audit", "Audit trail", "admin"},
    {"/staff/account", "Your account", "read"},
};

static void s_head (ml_web_exchange_t *exchange, const char *heading, const char *firm)
{
    ml_html_destroy (&exchange->page);
    exchange->page = ml_html_new ();
    const char *site = firm && *firm ? firm : exchange->title;
    ml_web_page_add (exchange,
                     "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     "<title>{} - {} staff</title>\n"
                     "<link rel=\"stylesheet\" href=\"/static/portal.css\">\n</head>\n"
                     "<body class=\"staff\">\n"
                     "<a class=\"skip\" href=\"#main\">Skip to the content</a>\n"
                     "<header class=\"site\"><p class=\"firm\">{}</p>",
                     heading, site, site);
}

void ml_web_staff_begin (ml_web_exchange_t *exchange, const char *heading, json_t *session)
{
    json_t *staff = json_object_get (session, "staff");
    s_head (exchange, heading, ml_web_staff_text (staff, "firm_name"));
    ml_web_page_add (exchange,
                     "<p class=\"who\"><span class=\"name\">{}</span> "
                     "<span class=\"role badge\">{}</span></p></header>\n"
                     "<nav class=\"account staff\" aria-label=\"Staff pages\"><ul>",
                     ml_web_staff_text (staff, "name"),
                     ml_web_staff_role_name (ml_web_staff_text (staff, "role")));
    for (size_t index = 0; index < sizeof s_nav / sizeof s_nav[0]; index++) {
        if (!ml_web_staff_role_allows (session, s_nav[index].least))
            continue;
        bool current = exchange->path && strcmp (exchange->path, s_nav[index].path) == 0;
        if (current)
            ml_web_page_add (exchange, "<li><a href=\"{}\" aria-current=\"page\">{}</a></li>",
                             s_nav[index].path, s_nav[index].label);
        else
            ml_web_page_add (exchange, "<li><a href=\"{}\">{}</a></li>", s_nav[index].path,
                             s_nav[index].label);
    }
    ml_web_page_add (exchange,
                     "<li><form class=\"inline sign-out\" method=\"post\" "
                     "action=\"/staff/sign-out\"><input type=\"hidden\" name=\"csrf\" "
                     "value=\"{}\"><button type=\"submit\">Sign out</button></form></li>"
                     "</ul></nav>\n<main id=\"main\">\n<h1>{}</h1>\n",
                     ml_web_staff_csrf (session), heading);
}

void ml_web_staff_begin_anonymous (ml_web_exchange_t *exchange, const char *heading,
                                   const char *firm)
{
    s_head (exchange, heading, firm);
    ml_web_page_add (exchange, "</header>\n<main id=\"main\">\n<h1>{}</h1>\n", heading);
}

void ml_web_staff_end (ml_web_exchange_t *exchange)
{
    ml_web_page_add (exchange, "</main>\n<footer class=\"site\"><p>matterlink for the firm's "
                               "staff</p></footer>\n</body>\n</html>\n");
}

void ml_web_staff_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_staff: ");
    assert (ml_web_staff_token_shape ("abc-_XYZ09") && !ml_web_staff_token_shape ("a b") &&
            !ml_web_staff_token_shape ("") && !ml_web_staff_token_shape (NULL) &&
            !ml_web_staff_token_shape ("a;b"));

    //  The staff cookie stays under /staff, apart from the payer's.
    ml_web_exchange_t exchange;
    memset (&exchange, 0, sizeof exchange);
    exchange.title = "Portal";
    exchange.secure = true;
    ml_web_staff_set_cookie (&exchange, "tok");
    assert (strcmp (exchange.cookies[0],
                    "__Secure-ml_staff=tok; Path=/staff; HttpOnly; SameSite=Strict; Secure") == 0);
    exchange.secure = false;
    ml_web_staff_set_cookie (&exchange, NULL);
    assert (strcmp (exchange.cookies[1],
                    "ml_staff=; Path=/staff; HttpOnly; SameSite=Strict; Max-Age=0") == 0);
    exchange.cookie_count = 0;

    //  Roles nest; the navigation leaves out what the role would get 404 for.
    json_t *session = json_pack ("{s:s, s:{s:s, s:s, s:s}}", "csrf", "C<1>", "staff", "name",
                                 "Ann <Admin>", "role", "billing", "firm_name", "Smith & Jones");
    assert (ml_web_staff_role_allows (session, "read") &&
            ml_web_staff_role_allows (session, "billing") &&
            !ml_web_staff_role_allows (session, "admin"));
    exchange.path = "/staff/";
    ml_web_staff_begin (&exchange, "Home", session);
    ml_web_staff_end (&exchange);
    const char *page = ml_html_data (exchange.page);
    assert (strstr (page, "<p class=\"firm\">Smith &amp; Jones</p>"));
    assert (strstr (page, "Ann &lt;Admin&gt;") && strstr (page, ">Billing<"));
    assert (strstr (page, "href=\"/staff/pay\"") && !strstr (page, "/staff/users") &&
            !strstr (page, "/staff/audit"));
    assert (strstr (page, "href=\"/staff/\" aria-current=\"page\""));
    assert (strstr (page, "name=\"csrf\" value=\"C&lt;1&gt;\""));
    assert (!strstr (page, "<script") && !strstr (page, "style="));
    json_object_set_new (json_object_get (session, "staff"), "role", json_string ("admin"));
    ml_web_staff_begin (&exchange, "Home", session);
    page = ml_html_data (exchange.page);
    assert (strstr (page, "/staff/users") && strstr (page, "/staff/audit") &&
            strstr (page, ">Administrator<"));
    json_object_set_new (json_object_get (session, "staff"), "role", json_string ("root"));
    assert (!ml_web_staff_role_allows (session, "read"));
    json_decref (session);

    //  The core's refusals: ended, CSRF, not found; others are the page's to show.
    json_t *reply = json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "x", "session_ended", 1);
    assert (ml_web_staff_answered (&exchange, reply) && exchange.status == 303 &&
            strcmp (exchange.location, "/staff/sign-in") == 0 && exchange.cookie_count == 1);
    json_decref (reply);
    reply = json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "expired", "csrf", 0);
    assert (ml_web_staff_answered (&exchange, reply) && exchange.status == 403);
    json_decref (reply);
    reply = json_pack ("{s:b, s:s}", "ok", 0, "error", "not found");
    assert (ml_web_staff_answered (&exchange, reply) && exchange.status == 404 &&
            exchange.cookie_count == 0 && !*exchange.location);
    json_decref (reply);
    reply = json_pack ("{s:b, s:s}", "ok", 0, "error", "the firm's last administrator");
    assert (!ml_web_staff_answered (&exchange, reply));
    json_decref (reply);
    reply = json_pack ("{s:b}", "ok", 1);
    assert (!ml_web_staff_answered (&exchange, reply));
    json_decref (reply);
    ml_html_destroy (&exchange.page);
    ml_web_staff_auth_test ();
    ml_web_staff_pages_test ();
    ml_web_staff_payers_test ();
    ml_web_staff_postings_test ();
    printf ("OK\n");
}
