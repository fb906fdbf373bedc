/*  ml_credentials: the primitives every sign-in of matterlink shares (payers' portal logins
    in ml_logins, staff accounts in ml_staff), so their logic lives in one place.

    Tokens (links, sessions) are 32 random bytes shown as 43 base64url characters; the store
    keeps only their BLAKE2b digests. A session's CSRF token is derived from the session
    token under a label (keyed BLAKE2b), so it is stored nowhere. Passwords are 8 to 128 code
    points, not the e-mail address, hashed with Argon2id at OWASP's minimum cost or more.
    Failed sign-ins are throttled per account with a wait that doubles, never a lockout.
*/
#ifndef ML_CREDENTIALS_H_INCLUDED
#define ML_CREDENTIALS_H_INCLUDED

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Length of a token as text (32 bytes, base64url without padding).
#define ML_CREDENTIALS_TOKEN_LENGTH 43
//  The hex digest of a token, with its terminating zero.
#define ML_CREDENTIALS_DIGEST_SIZE 65
//  The longest password accepted, in code points, and in bytes as UTF-8.
#define ML_CREDENTIALS_PASSWORD_MAX   128
#define ML_CREDENTIALS_PASSWORD_BYTES (4 * ML_CREDENTIALS_PASSWORD_MAX + 4)

//  A new token and the hex digest the store keeps.
void ml_credentials_token_new (char token[ML_CREDENTIALS_TOKEN_LENGTH + 1],
                               char digest[ML_CREDENTIALS_DIGEST_SIZE]);

//  The digest of a token typed or relayed from outside; false when it cannot be a token.
bool ml_credentials_token_digest (const char *token, char digest[ML_CREDENTIALS_DIGEST_SIZE]);

//  True if stored (a digest read from the store) is digest (constant time).
bool ml_credentials_digest_equal (const char *stored, const char *digest);

//  The CSRF token of a session: keyed BLAKE2b of label under the session token. Each kind of
//  session has its own label, so one kind's token is never the other's.
void ml_credentials_csrf (const char *label, const char *session,
                          char csrf[ML_CREDENTIALS_TOKEN_LENGTH + 1]);

//  True if csrf is the CSRF token of session under label (constant-time compare).
bool ml_credentials_csrf_ok (const char *label, const char *session, const char *csrf);

//  Passwords: 8 to 128 code points, not the e-mail address. NULL, or why not.
const char *ml_credentials_password_problem (const char *password, const char *email);

//  Argon2id hash of password. Returns 0, or -1 when out of memory.
int ml_credentials_hash (const char *password, char hash[crypto_pwhash_STRBYTES]);

//  The hash of a random password nobody knows: what a sign-in with an unknown e-mail is
//  checked against, so it takes as long as one with a known e-mail. Returns 0 or -1.
int ml_credentials_dummy_hash (char hash[crypto_pwhash_STRBYTES]);

//  True if password matches hash (an Argon2id string).
bool ml_credentials_verify (const char *hash, const char *password);

//  True if hash was made at a lower cost than today's: rehash on the next sign-in.
bool ml_credentials_needs_rehash (const char *hash);

//  After failures failed attempts in a row, the last at last_failure_at: true while an
//  attempt at now must wait (5 free attempts, then 1, 2, 4 ... up to 900 seconds).
bool ml_credentials_throttled (int64_t failures, int64_t last_failure_at, int64_t now);

void ml_credentials_test (bool verbose);

#endif
