/*  ml_web_staff_pay's parts (web/staff/ml_web_staff_pay*.c): the staff session and page
    frame they share, and each step's handler. Not for other pages. */
#ifndef ML_WEB_STAFF_PAY_INTERNAL_H_INCLUDED
#define ML_WEB_STAFF_PAY_INTERNAL_H_INCLUDED

#include "ml_web_staff.h"
#include "ml_web_staff_pay.h"

#include <stdint.h>

//  The signed-in staff member of one request: the cookie's session token and the core's
//  staff-session reply (csrf, staff: {name, role, firm, firm_name}).
typedef struct {
    ml_web_exchange_t *exchange;
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session;
} ml_wsp_t;

//  Lines a form can carry: a form holds at most ML_WEB_FORM_MAX_FIELDS fields.
#define ML_WSP_MAX_ROWS 24

//  Text of object[key], "" when absent.
const char *ml_wsp_text (json_t *object, const char *key);
//  A field of the POST's body, "" when absent.
const char *ml_wsp_field (ml_web_exchange_t *exchange, const char *name);
//  A field of the query string, "" when absent.
const char *ml_wsp_query (ml_web_exchange_t *exchange, const char *name);
//  The session's CSRF token.
const char *ml_wsp_csrf (ml_wsp_t *self);
//  Call op with the staff session (request stolen, "op" added). The reply, or NULL after
//  it wrote the 503 page.
json_t *ml_wsp_call (ml_wsp_t *self, const char *op, json_t *request);
//  A reply the core refused for reasons that are not the staff member's (an ended session:
//  to sign-in; "not found": 404; else 503). Writes the answer.
void ml_wsp_refused (ml_wsp_t *self, json_t *reply);
//  The page frame: the staff header (firm, who, links), the steps of "Make a Payment" with
//  step (1-4, 0 for none) as the current one, and the heading.
void ml_wsp_begin (ml_wsp_t *self, const char *heading, int step);
void ml_wsp_end (ml_wsp_t *self);
//  The core's error as a sentence: capital first, a full stop at the end, into buf.
const char *ml_wsp_sentence (const char *error, char *buf, size_t size);
//  An amount typed in currency: minor units above 0, or -1 with *why.
int64_t ml_wsp_typed (const char *text, const char *currency, const char **why);
//  A new random key for a form (base64url of 32 bytes) into buf (at least 48 bytes).
void ml_wsp_form_key (char *buf, size_t size);

//  The steps.
void ml_wsp_criteria (ml_wsp_t *self);
void ml_wsp_search (ml_wsp_t *self, ml_web_form_t *query, const char *error);
void ml_wsp_select (ml_wsp_t *self);
void ml_wsp_remove (ml_wsp_t *self);
void ml_wsp_allocate (ml_wsp_t *self);
void ml_wsp_pay (ml_wsp_t *self);

#endif
