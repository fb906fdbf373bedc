/*  ml_logins' pieces share these (core only): the object, and the helpers one piece keeps and
    another uses (ml_logins.c, ml_logins_sign_in.c, ml_logins_invoices.c, ml_logins_test.c). */
#ifndef ML_LOGINS_INTERNAL_H_INCLUDED
#define ML_LOGINS_INTERNAL_H_INCLUDED

#include "ml_logins.h"

#include <sodium.h>

struct _ml_logins_t {
    ml_store_t *store;
    ml_db_t *db;
    ml_payers_t *payers;
    ml_mailer_t *mailer;
    ml_logins_settings_t settings;
    int64_t clock; //  0: the system clock
    char dummy_hash[crypto_pwhash_STRBYTES];
    bool testing;                                //  the selftest reads the last token mailed
    char test_token[ML_LOGINS_TOKEN_LENGTH + 1]; //  (only when testing)
};

//  What every failed sign-in, and every dead link, answers: the same, whatever the cause.
#define ML_LOGINS_GENERIC_FAILURE "the e-mail address or the password is not right"
#define ML_LOGINS_LINK_FAILURE    "this link has expired or was already used"

//  The label of a session's CSRF token (ml_credentials_csrf).
#define ML_LOGINS_CSRF_LABEL "matterlink portal csrf"

//  A payer's portal_login row (new reference), NULL when none; *failed on a store error.
json_t *ml_logins_login (ml_logins_t *self, int64_t payer_id, bool *failed);

//  ml_logins.c ---------------------------------------------------------------------------

//  Now, in seconds since the epoch: the test clock when set.
int64_t ml_logins_now (ml_logins_t *self);

//  The columns of this class's tables that are integers, for ml_store_rows.
bool ml_logins_integer_column (const char *name);

//  Every row of a query (ml_store_rows with this class's integer columns).
json_t *ml_logins_rows (ml_db_query_t *query);

//  The first row of a query (new reference), or NULL when none; *failed on a store error.
json_t *ml_logins_row (ml_db_query_t *query, bool *failed);

//  A row's text and integer members.
const char *ml_logins_text (const json_t *row, const char *key);
int64_t ml_logins_int (const json_t *row, const char *key);

//  A store failure: logged, and the reply to give (ml_admin_store_failed).
json_t *ml_logins_store_failed (ml_logins_t *self, const char *what);

//  Commit a success, roll back anything else.
json_t *ml_logins_finish (ml_logins_t *self, json_t *reply);

//  "p***@example.com": enough for a payer to recognise the address, little for anyone else.
void ml_logins_email_hint (const char *email, char *hint, size_t size);

//  Append an event to the portal's audit (a missed row is logged, never refused).
void ml_logins_audit (ml_logins_t *self, int64_t payer_id, const char *firm_id, const char *event,
                      const char *client, const char *detail);

//  The payer's firm, name, e-mail and firm name (new reference), NULL when unknown.
json_t *ml_logins_payer (ml_logins_t *self, int64_t payer_id, bool *failed);

//  End every live session of a payer. Returns the number ended, -1 on error.
int64_t ml_logins_sessions_end (ml_logins_t *self, int64_t payer_id, const char *why);

//  Invalidate the live links of a payer for purposes ("welcome reset" etc. as an SQL IN list
//  of up to three). Returns how many, -1 on error.
int64_t ml_logins_tokens_invalidate (ml_logins_t *self, int64_t payer_id, const char *first,
                                     const char *second, const char *third);

//  Make a link and mail it. kind is the mail's kind; path the portal page it opens. Returns
//  the mail id, or -1 with the reply to give in *reply.
int64_t ml_logins_link_mail (ml_logins_t *self, const json_t *payer, const char *purpose,
                             const char *email, int hours, const char *kind, const char *path,
                             const char *subject, const char *opening, json_t **reply);

//  A live link by its token (new reference, with the payer's login state), or NULL.
json_t *ml_logins_token_find (ml_logins_t *self, const char *token, bool *failed);

//  ml_logins_sign_in.c -------------------------------------------------------------------

//  The anonymous ops (ml_logins_sign_in.c), one per op of the same name.
json_t *ml_logins_portal_token (ml_logins_t *self, const json_t *request);
json_t *ml_logins_portal_password_set (ml_logins_t *self, const json_t *request);
json_t *ml_logins_portal_sign_in (ml_logins_t *self, const json_t *request);
json_t *ml_logins_portal_forgot (ml_logins_t *self, const json_t *request);
json_t *ml_logins_portal_email_confirm (ml_logins_t *self, const json_t *request);

//  ml_logins_invoices.c ------------------------------------------------------------------

//  The portal's invoice listing of one payer: what portal-invoices answers the payer, and
//  payer-portal-invoices a firm's staff ("View as payer"), from this one function so the two
//  can never differ. Rows are arrays of the columns named beside them (item_columns,
//  trust_columns): the payer's pages are the core's most frequent requests, and a listing
//  as arrays is a third of the size and far cheaper to build and to read than as objects.
json_t *ml_logins_portal_invoices (ml_logins_t *self, int64_t payer_id);

#endif
