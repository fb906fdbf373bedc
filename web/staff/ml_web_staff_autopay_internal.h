/*  ml_web_staff_autopay_internal: what the staff app's Auto-Pay pages share (web/staff/
    ml_web_staff_autopay.c: helpers, the list and the form; ml_web_staff_autopay_show.c: the
    enrollments and a schedule's page). Not an API: only these files include it.
*/
#ifndef ML_WEB_STAFF_AUTOPAY_INTERNAL_H_INCLUDED
#define ML_WEB_STAFF_AUTOPAY_INTERNAL_H_INCLUDED

#include "ml_web_staff.h"

//  Whether a core reply is ok.
bool ml_web_ap_ok (json_t *reply);
//  A positive whole number from a form or query field, or 0.
long long ml_web_ap_number (ml_web_form_t *fields, const char *name);
//  object[key] (an integer or text) as text into buf.
const char *ml_web_ap_int_text (json_t *object, const char *key, char *buf, size_t size);
//  A call whose reply the page needs ok: NULL after the page was answered (ended session,
//  404 for another firm's object, a deleted schedule or a role's op, 503).
json_t *ml_web_ap_call (ml_web_exchange_t *exchange, const char *token, json_t *request);
//  The session of a member of at least role least, or NULL after it answered.
json_t *ml_web_ap_session (ml_web_exchange_t *exchange, char *token, size_t size,
                           const char *least);
//  For people: a frequency, a card brand, a schedule's amount ("Everything due", "Up to
//  ..."), a saved method of payer ("Visa ending 4242 (12/2031)"), what an association covers.
const char *ml_web_ap_frequency_name (const char *frequency);
const char *ml_web_ap_brand_name (const char *brand);
const char *ml_web_ap_amount (json_t *schedule, char *buf, size_t size);
const char *ml_web_ap_method (json_t *payer, json_int_t method_id, char *buf, size_t size);
const char *ml_web_ap_association (json_t *association, char *buf, size_t size);
//  payer-show's payer and autopay-show's schedule (new references), or NULL after the page
//  was answered.
json_t *ml_web_ap_payer (ml_web_exchange_t *exchange, const char *token, json_int_t payer_id);
json_t *ml_web_ap_schedule (ml_web_exchange_t *exchange, const char *token, long long schedule_id);

#endif
