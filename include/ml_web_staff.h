/*  ml_web_staff: the staff app's frame (web/staff/, docs/web.md "The staff app").

    Staff pages live under /staff/ and reach the core as the staff actor: the `ml_staff`
    cookie (Path=/staff, apart from the payer's `ml_session`) holds the staff session's token,
    and every call adds it as "staff_session" (docs/staff-api in the contract). The core
    decides what a role may do; a page the role may not see answers 404, as an unknown path
    does. Other staff pages (such as /staff/pay) are built on the helpers below:

        char token[ML_WEB_STAFF_TOKEN_MAX + 1];
        json_t *session = ml_web_staff_session (exchange, token, sizeof token);
        if (!session)
            return;                       //  answered: to /staff/sign-in, or 503
        if (!ml_web_staff_role_allows (session, "billing")) {
            ml_web_staff_not_found (exchange);
            json_decref (session);
            return;
        }
        json_t *reply = ml_web_staff_call (exchange, token, json_pack ("{s:s}", "op", "..."));
        if (reply && ml_web_staff_answered (exchange, reply)) ...   //  ended, 403, 404
        ml_web_staff_begin (exchange, "Heading", session);  //  header, navigation, sign-out
        ml_web_page_add (exchange, "<p>{}</p>\n", text);   //  escaped values (ml_html)
        ml_web_staff_end (exchange);

    Forms that change something post the session's CSRF token as the field "csrf"
    (ml_web_staff_csrf gives it); the core checks it.
*/
#ifndef ML_WEB_STAFF_H_INCLUDED
#define ML_WEB_STAFF_H_INCLUDED

#include "ml_web_pages.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The longest staff session token the cookie may hold (the core's are 43 characters).
#define ML_WEB_STAFF_TOKEN_MAX 200

//  The signed-in staff member: the cookie's token into token (at least
//  ML_WEB_STAFF_TOKEN_MAX + 1 bytes) and the core's staff-session reply ({ok, csrf, staff:
//  {staff_id, name, email, role, firm, firm_name, totp_enabled}}, new reference), or NULL
//  after it answered: a redirect to /staff/sign-in (no cookie, or the session ended: its
//  cookie goes), or 503 when the core is away.
json_t *ml_web_staff_session (ml_web_exchange_t *exchange, char *token, size_t size);

//  Send request (steals it) to the core with "staff_session": token. Returns the reply (new
//  reference), or NULL after it wrote the 503 page.
json_t *ml_web_staff_call (ml_web_exchange_t *exchange, const char *token, json_t *request);

//  For a reply that is not ok: whether this helper answered for the page. An ended session
//  goes to /staff/sign-in (its cookie cleared), a CSRF refusal gets 403 "the form expired",
//  "not found" (another firm's object, or an op the role may not call) gets 404. Returns
//  false for an ok reply and for other refusals, whose "error" the page shows itself.
bool ml_web_staff_answered (ml_web_exchange_t *exchange, json_t *reply);

//  A refusal the page cannot explain: as ml_web_staff_answered, else logged and 503.
void ml_web_staff_refused (ml_web_exchange_t *exchange, json_t *reply);

//  Whether the session's role is least ("read", "billing" or "admin") or above.
bool ml_web_staff_role_allows (json_t *session, const char *least);

//  The role's name for people ("Administrator", "Billing", "Read-only").
const char *ml_web_staff_role_name (const char *role);

//  The session's CSRF token (borrowed from session), for a form's "csrf" field.
const char *ml_web_staff_csrf (json_t *session);

//  The 404 page of a page the role may not see (the words of an unknown path).
void ml_web_staff_not_found (ml_web_exchange_t *exchange);

//  The staff layout: the head, the header with the firm's name and the signed-in member's
//  name and role, the navigation their role allows (the current page marked), the sign-out
//  button, and the h1. end: the footer.
void ml_web_staff_begin (ml_web_exchange_t *exchange, const char *heading, json_t *session);
//  The layout before sign-in: the firm's name when known (firm, else web/title) and the h1.
void ml_web_staff_begin_anonymous (ml_web_exchange_t *exchange, const char *heading,
                                   const char *firm);
void ml_web_staff_end (ml_web_exchange_t *exchange);

//  Set the ml_staff cookie to token (Path=/staff, HttpOnly, SameSite=Strict; over HTTPS
//  Secure with the __Secure- prefix), or delete it when token is NULL.
void ml_web_staff_set_cookie (ml_web_exchange_t *exchange, const char *token);

//  Pre-session forms (sign-in, accept, forgot, reset): the signed double-submit token of
//  the portal (cookie ml_form), made or reused into buf (ML_WEB_FORM_TOKEN_SIZE), and whether
//  a POST carries a valid one in both its cookie and its "form_token" field.
void ml_web_staff_form_token (ml_web_exchange_t *exchange, char *buf, size_t size);
bool ml_web_staff_form_token_ok (ml_web_exchange_t *exchange);

//  Whether text has the shape of a token the core makes (base64url, 1..200 characters).
bool ml_web_staff_token_shape (const char *text);

//  A JSON string member for a page, "" when absent (borrowed).
const char *ml_web_staff_text (json_t *object, const char *key);

//  The staff pages (web/staff/*.c), routed in web/ml_web_server.c.
ml_web_handler_fn ml_web_staff_page_home, ml_web_staff_page_sign_in, ml_web_staff_page_sign_out,
    ml_web_staff_page_accept, ml_web_staff_page_forgot, ml_web_staff_page_account,
    ml_web_staff_page_users, ml_web_staff_page_audit;
//  Auto-Pay (web/staff/ml_web_staff_autopay.c) and Notifications (ml_web_staff_notify.c).
ml_web_handler_fn ml_web_staff_page_autopay, ml_web_staff_page_autopay_form,
    ml_web_staff_page_autopay_enroll, ml_web_staff_page_autopay_schedule,
    ml_web_staff_page_notifications;

//  Payers (web/staff/ml_web_staff_payers.c, ml_web_staff_associations.c): the list, one
//  payer, its associations, "View as payer". The id at the end of path after prefix (digits,
//  no leading zero), else -1; the payer's tabs; a filter's match (part, ASCII case ignored).
ml_web_handler_fn ml_web_staff_page_payers, ml_web_staff_page_payer,
    ml_web_staff_page_payer_associations, ml_web_staff_page_payer_view;
int64_t ml_web_staff_payer_id (const char *path, const char *prefix);
void ml_web_staff_payer_tabs (ml_web_exchange_t *exchange, int64_t payer_id, const char *current);
//  A payer page's start: the payer's id from the path after prefix (*payer_id) and the staff
//  session (token into token). Returns the session (new reference), or NULL when the page
//  is answered already (404 for a bad id, sign-in for no session).
json_t *ml_web_staff_payer_session (ml_web_exchange_t *exchange, const char *prefix,
                                    int64_t *payer_id, char *token, size_t token_size);
//  A payer page's top: payer-show, then the title, the payer's tabs (current) and the error
//  and notice (when not NULL). Returns payer-show's reply (new reference: the payer is its
//  "payer"), or NULL when the page is answered already (the core refused or did not answer).
json_t *ml_web_staff_payer_begin (ml_web_exchange_t *exchange, const char *token, json_t *session,
                                  int64_t payer_id, const char *current, const char *error,
                                  const char *notice);
bool ml_web_staff_contains (const char *text, const char *needle);
void ml_web_staff_payers_test (void);
//  Manage Postings (web/staff/ml_web_staff_postings.c, ml_web_staff_payment.c) and the
//  dashboard on the home page (ml_web_staff_dashboard.c).
ml_web_handler_fn ml_web_staff_page_postings, ml_web_staff_page_posting, ml_web_staff_page_payment;
void ml_web_staff_dashboard (ml_web_exchange_t *exchange, const char *token, json_t *session);
//  A time from the core (YYYY-MM-DDTHH:MM:SS.mmmZ) for people, "-" when NULL or empty.
const char *ml_web_staff_when (const char *iso, char *buf, size_t size);
//  A posting's, charge's or payment's state for people ("rejected" -> "Rejected").
const char *ml_web_staff_state_name (const char *state);
//  Whether text is a UUID as the core writes it (lower-case hex and dashes, 36 characters).
bool ml_web_staff_uuid_shape (const char *text);
void ml_web_staff_postings_test (void);

void ml_web_staff_test (bool verbose);
//  The Auto-Pay and Notifications pages against a stand-in core.
void ml_web_staff_autopay_test (bool verbose);
//  Parts of the selftest in the page files.
void ml_web_staff_auth_test (void);
void ml_web_staff_pages_test (void);

#endif
