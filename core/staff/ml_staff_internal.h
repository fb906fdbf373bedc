/*  ml_staff's pieces share these (core/staff only): the object and its small helpers. */
#ifndef ML_STAFF_INTERNAL_H_INCLUDED
#define ML_STAFF_INTERNAL_H_INCLUDED

#include "ml_admin.h"
#include "ml_credentials.h"
#include "ml_log.h"
#include "ml_staff.h"
#include "ml_totp.h"

#include <ctype.h>
#include <sodium.h>
#include <time.h>

struct _ml_staff_t {
    ml_store_t *store;
    ml_odbc_t *odbc;
    ml_mailer_t *mailer;
    ml_logins_settings_t settings;
    int64_t clock; //  0: the system clock
    char dummy_hash[crypto_pwhash_STRBYTES];
    unsigned char totp_key[32]; //  seals TOTP secrets (from the outbox key, outside the store)
    unsigned char code_key[32]; //  keys the digests of recovery codes
    bool testing;               //  the selftest reads the last token mailed
    char test_token[ML_CREDENTIALS_TOKEN_LENGTH + 1];
};

int64_t ml_staff_now (ml_staff_t *self);
json_t *ml_staff_rows (ml_staff_t *self, ml_query_t *query);
json_t *ml_staff_row (ml_staff_t *self, ml_query_t *query, bool *failed);
const char *ml_staff_text (const json_t *row, const char *key);
int64_t ml_staff_int (const json_t *row, const char *key);
json_t *ml_staff_store_failed (ml_staff_t *self, const char *what);
//  Commit a success, roll back anything else.
json_t *ml_staff_finish (ml_staff_t *self, json_t *reply);
ml_role_t ml_staff_role (const char *text);
json_t *ml_staff_user (ml_staff_t *self, int64_t staff_id, bool *failed);
json_t *ml_staff_public (const json_t *user);
void ml_staff_actor_of (const json_t *user, ml_actor_t *actor);
char *ml_staff_seal (ml_staff_t *self, int64_t staff_id, const unsigned char *secret);
bool ml_staff_open (ml_staff_t *self, int64_t staff_id, const char *sealed, unsigned char *secret);
json_t *ml_staff_codes_new (ml_staff_t *self, int64_t staff_id);
int ml_staff_code_check (ml_staff_t *self, const json_t *user, const char *code, bool recovery);
int64_t ml_staff_tokens_invalidate (ml_staff_t *self, int64_t staff_id, const char *purpose);
//  End staff_id's live sessions but the one with except_digest (NULL: all). -1 on error.
int64_t ml_staff_sessions_end (ml_staff_t *self, int64_t staff_id, const char *why,
                               const char *except_digest);
//  Make a link (purpose "invite" or "reset") for user and mail it, in the caller's
//  transaction. Returns the mail id, or -1 with the reply to give in *reply.
int64_t ml_staff_link_mail (ml_staff_t *self, const json_t *user, const char *purpose,
                            json_t **reply);

//  The administrators' ops (ml_staff_admin.c): NULL when op is not one of them.
json_t *ml_staff_admin_execute (ml_staff_t *self, const char *op, const json_t *request,
                                const ml_actor_t *actor);
//  A staff member's own account ops (ml_staff_admin.c): NULL when op is not one of them.
json_t *ml_staff_account_execute (ml_staff_t *self, const char *op, const json_t *request,
                                  const ml_actor_t *actor);

#endif
