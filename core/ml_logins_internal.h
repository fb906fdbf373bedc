/*  ml_logins' object and what its selftest (core/ml_logins_test.c) reads of it: core only. */
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

//  A payer's portal_login row (new reference), NULL when none; *failed on a store error.
json_t *ml_logins_login (ml_logins_t *self, int64_t payer_id, bool *failed);

#endif
