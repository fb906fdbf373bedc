/*  ml_web_pages: the portal's pages, each a handler of one exchange (web/ml_web_pages.c).

    The server (ml_web_server) parses and bounds the request, fills an exchange and calls
    the page's handler from its route table; the handler calls the core, writes its page
    with ml_html (every value escaped there) and sets the status, a redirect or cookies.
    The server then adds the security headers and sends it.
*/
#ifndef ML_WEB_PAGES_H_INCLUDED
#define ML_WEB_PAGES_H_INCLUDED

#include "ml_html.h"
#include "ml_web_core.h"
#include "ml_web_form.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>

#define ML_WEB_MAX_COOKIES 4

typedef struct {
    //  The request, borrowed for the handler's call.
    const char *method;        //  "GET", "HEAD" or "POST"
    const char *path;          //  without the query
    ml_web_form_t *query;      //  the query string's fields (never NULL)
    ml_web_form_t *form;       //  a POST's body fields (never NULL; empty for GET)
    const char *cookie_header; //  NULL when the request has none
    const char *client;        //  the peer's address, for the core's audit
    bool secure;               //  reached over HTTPS (itself or through its TLS proxy)
    ml_web_core_t *core;
    const unsigned char *form_key; //  crypto_auth key of pre-session form tokens
    const char *title;             //  web/title
    const char *tokenize_url;      //  web/tokenize_url ("" when cards cannot be taken)
    //  The response, filled by the handler.
    int status;      //  200 unless set
    ml_html_t *page; //  the body (text/html)
    char location[600];
    char connect_origin[300]; //  an origin the page's script may reach (CSP connect-src)
    char cookies[ML_WEB_MAX_COOKIES][700];
    size_t cookie_count;
} ml_web_exchange_t;

typedef void (ml_web_handler_fn) (ml_web_exchange_t *exchange);

ml_web_handler_fn ml_web_page_root, ml_web_page_sign_in, ml_web_page_sign_out,
    ml_web_page_set_password, ml_web_page_forgot, ml_web_page_confirm_email, ml_web_page_invoices,
    ml_web_page_pay;

//  The payer's account (web/ml_web_account.c): saved methods, history, receipts, Auto-Pay.
//  A payment link's page (web/ml_web_link.c), no sign-in needed.
ml_web_handler_fn ml_web_page_link;

//  The new card's fields through the processor's hosted fields (web/ml_web_pay.c): for a form
//  with id "pay-form" and data-tokenize-url, followed by /static/pay.js.
void ml_web_pay_new_card (ml_web_exchange_t *exchange, bool checked, bool save_offer,
                          bool save_checked);

//  The portal's invoice listing of a portal-invoices reply (borrowed) into the page: the
//  payer's /invoices, and read_only (nothing to choose or pay) the staff's "View as payer".
void ml_web_page_invoice_list (ml_web_exchange_t *exchange, json_t *reply, bool read_only);

ml_web_handler_fn ml_web_page_methods, ml_web_page_method_change, ml_web_page_history,
    ml_web_page_receipt, ml_web_page_autopay;

//  The page helpers, for every page file (web/ml_web_pay.c, web/ml_web_account.c). begin: the head,
//  the header with the firm's name (web/title when NULL) and the h1; end: the footer. add: a
//  template with escaped values (ml_html_add). message: a paragraph of kind "error" (role alert) or
//  "notice".
void ml_web_page_begin (ml_web_exchange_t *exchange, const char *heading, const char *firm);
void ml_web_page_end (ml_web_exchange_t *exchange);
void ml_web_page_add (ml_web_exchange_t *exchange, const char *template, ...);
void ml_web_page_message (ml_web_exchange_t *exchange, const char *kind, const char *text);
void ml_web_page_redirect (ml_web_exchange_t *exchange, const char *location);
//  The signed-in payer's portal-session reply with the cookie's token in token (new
//  reference), or NULL after it answered (to /sign-in, or 503).
json_t *ml_web_page_session (ml_web_exchange_t *exchange, char *token, size_t size);
//  Who is signed in, the sign-out button and the account's navigation.
void ml_web_page_signed_in_bar (ml_web_exchange_t *exchange, json_t *session);
//  Send request to the core (steals it): the reply, or NULL after it wrote the 503 page.
json_t *ml_web_page_call (ml_web_exchange_t *exchange, json_t *request);
//  A payer op the core refused: an ended session to /sign-in, anything else 503.
void ml_web_page_refused (ml_web_exchange_t *exchange, json_t *reply);
//  object[key] (minor units) in currency for a person, or "-" (ml_money).
const char *ml_web_page_money (json_t *object, const char *key, const char *currency, char *buf,
                               size_t size);

//  The error page for a status the server decides (400, 404, 405, 413, 500).
void ml_web_page_error (ml_web_exchange_t *exchange, int status, const char *message);

//  A cookie's name as sent: "__Host-" + base over HTTPS (browsers accept that prefix only
//  with Secure), base alone on plain loopback HTTP.
const char *ml_web_cookie_name (bool secure, const char *base, char *buf, size_t size);

//  Pre-session form tokens (signed double submit): "NONCE.MAC" in base64url, MAC the
//  crypto_auth of NONCE under key. Make one into buf (at least ML_WEB_FORM_TOKEN_SIZE).
#define ML_WEB_FORM_TOKEN_SIZE 104
void ml_web_form_token_make (const unsigned char *key, char *buf, size_t size);
bool ml_web_form_token_valid (const unsigned char *key, const char *token);

void ml_web_pages_test (bool verbose);
void ml_web_pay_test (bool verbose);

#endif
