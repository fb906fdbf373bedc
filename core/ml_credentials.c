/*  ml_credentials: tokens, digests, CSRF, passwords and throttling shared by every sign-in.
    See include/ml_credentials.h. */
#include "ml_credentials.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

//  OWASP's minimum for Argon2id: 19 MiB, two passes (one lane, libsodium's only choice).
#define S_PWHASH_OPS    2
#define S_PWHASH_MEM    (19u * 1024u * 1024u)
#define S_PASSWORD_MIN  8   //  code points
#define S_THROTTLE_FREE 5   //  failures in a row before attempts must wait
#define S_THROTTLE_MAX  900 //  the longest wait, in seconds

static void s_digest (const char *token, char digest[ML_CREDENTIALS_DIGEST_SIZE])
{
    unsigned char hash[32];
    crypto_generichash (hash, sizeof hash, (const unsigned char *)token,
                        ML_CREDENTIALS_TOKEN_LENGTH, NULL, 0);
    sodium_bin2hex (digest, ML_CREDENTIALS_DIGEST_SIZE, hash, sizeof hash);
}

void ml_credentials_token_new (char token[ML_CREDENTIALS_TOKEN_LENGTH + 1],
                               char digest[ML_CREDENTIALS_DIGEST_SIZE])
{
    unsigned char bytes[32];
    randombytes_buf (bytes, sizeof bytes);
    sodium_bin2base64 (token, ML_CREDENTIALS_TOKEN_LENGTH + 1, bytes, sizeof bytes,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero (bytes, sizeof bytes);
    s_digest (token, digest);
}

bool ml_credentials_token_digest (const char *token, char digest[ML_CREDENTIALS_DIGEST_SIZE])
{
    if (!token || strlen (token) != ML_CREDENTIALS_TOKEN_LENGTH)
        return false;
    for (const char *cursor = token; *cursor; cursor++)
        if (!isalnum ((unsigned char)*cursor) && *cursor != '-' && *cursor != '_')
            return false;
    s_digest (token, digest);
    return true;
}

bool ml_credentials_digest_equal (const char *stored, const char *digest)
{
    return stored && digest && strlen (stored) == 64 && strlen (digest) == 64 &&
           sodium_memcmp (stored, digest, 64) == 0;
}

void ml_credentials_csrf (const char *label, const char *session,
                          char csrf[ML_CREDENTIALS_TOKEN_LENGTH + 1])
{
    unsigned char hash[32];
    crypto_generichash (hash, sizeof hash, (const unsigned char *)label, strlen (label),
                        (const unsigned char *)session, ML_CREDENTIALS_TOKEN_LENGTH);
    sodium_bin2base64 (csrf, ML_CREDENTIALS_TOKEN_LENGTH + 1, hash, sizeof hash,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool ml_credentials_csrf_ok (const char *label, const char *session, const char *csrf)
{
    if (!session || strlen (session) != ML_CREDENTIALS_TOKEN_LENGTH || !csrf ||
        strlen (csrf) != ML_CREDENTIALS_TOKEN_LENGTH)
        return false;
    char expected[ML_CREDENTIALS_TOKEN_LENGTH + 1];
    ml_credentials_csrf (label, session, expected);
    return sodium_memcmp (expected, csrf, ML_CREDENTIALS_TOKEN_LENGTH) == 0;
}

const char *ml_credentials_password_problem (const char *password, const char *email)
{
    size_t points = 0;
    for (const unsigned char *cursor = (const unsigned char *)password; *cursor; cursor++)
        if ((*cursor & 0xC0) != 0x80)
            points++;
    if (points < S_PASSWORD_MIN)
        return "the password must have at least 8 characters";
    if (points > ML_CREDENTIALS_PASSWORD_MAX)
        return "the password may have at most 128 characters";
    if (email && strcasecmp (password, email) == 0)
        return "the password must not be your e-mail address";
    return NULL;
}

int ml_credentials_hash (const char *password, char hash[crypto_pwhash_STRBYTES])
{
    return crypto_pwhash_str_alg (hash, password, strlen (password), S_PWHASH_OPS, S_PWHASH_MEM,
                                  crypto_pwhash_ALG_ARGON2ID13);
}

int ml_credentials_dummy_hash (char hash[crypto_pwhash_STRBYTES])
{
    char password[ML_CREDENTIALS_TOKEN_LENGTH + 1], digest[ML_CREDENTIALS_DIGEST_SIZE];
    ml_credentials_token_new (password, digest);
    int rc = ml_credentials_hash (password, hash);
    sodium_memzero (password, sizeof password);
    return rc;
}

bool ml_credentials_verify (const char *hash, const char *password)
{
    return hash && password && crypto_pwhash_str_verify (hash, password, strlen (password)) == 0;
}

bool ml_credentials_needs_rehash (const char *hash)
{
    return crypto_pwhash_str_needs_rehash (hash, S_PWHASH_OPS, S_PWHASH_MEM) != 0;
}

bool ml_credentials_throttled (int64_t failures, int64_t last_failure_at, int64_t now)
{
    if (failures < S_THROTTLE_FREE)
        return false;
    int shift = (int)(failures - S_THROTTLE_FREE);
    int64_t wait = shift >= 10 ? S_THROTTLE_MAX : (int64_t)1 << shift;
    if (wait > S_THROTTLE_MAX)
        wait = S_THROTTLE_MAX;
    //  The store keeps whole seconds: "<=" makes the wait at least the stated one (a failure
    //  at x.99 and an attempt at x+1.01 are 1 apart, but 0.02 s passed).
    return now - last_failure_at <= wait;
}

void ml_credentials_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_credentials: ");
    assert (sodium_init () >= 0);
    char token[ML_CREDENTIALS_TOKEN_LENGTH + 1], digest[ML_CREDENTIALS_DIGEST_SIZE],
        again[ML_CREDENTIALS_DIGEST_SIZE];
    ml_credentials_token_new (token, digest);
    assert (strlen (token) == ML_CREDENTIALS_TOKEN_LENGTH && strlen (digest) == 64);
    assert (ml_credentials_token_digest (token, again) &&
            ml_credentials_digest_equal (digest, again));
    //  Outside text that cannot be a token has no digest.
    assert (!ml_credentials_token_digest ("short", again));
    assert (!ml_credentials_token_digest (NULL, again));
    char bad[ML_CREDENTIALS_TOKEN_LENGTH + 1];
    memcpy (bad, token, sizeof bad);
    bad[3] = '\'';
    assert (!ml_credentials_token_digest (bad, again));
    assert (!ml_credentials_digest_equal ("abc", digest));
    //  The CSRF token: the same for a session and label, another under another label.
    char csrf[ML_CREDENTIALS_TOKEN_LENGTH + 1], other[ML_CREDENTIALS_TOKEN_LENGTH + 1];
    ml_credentials_csrf ("matterlink portal csrf", token, csrf);
    ml_credentials_csrf ("matterlink staff csrf", token, other);
    assert (strcmp (csrf, other) != 0);
    assert (ml_credentials_csrf_ok ("matterlink portal csrf", token, csrf));
    assert (!ml_credentials_csrf_ok ("matterlink staff csrf", token, csrf));
    assert (!ml_credentials_csrf_ok ("matterlink portal csrf", token, NULL));
    assert (!ml_credentials_csrf_ok ("matterlink portal csrf", token, "x"));
    //  Passwords.
    assert (ml_credentials_password_problem ("short", NULL));
    assert (ml_credentials_password_problem ("Pat@Example.com", "pat@example.com"));
    assert (!ml_credentials_password_problem ("correct horse", "pat@example.com"));
    char long_password[600];
    memset (long_password, 'a', 129);
    long_password[129] = 0;
    assert (ml_credentials_password_problem (long_password, NULL));
    //  "é" is two bytes, one code point: 128 of them are allowed.
    long_password[0] = 0;
    for (int index = 0; index < 128; index++)
        strcat (long_password, "\xc3\xa9");
    assert (!ml_credentials_password_problem (long_password, NULL));
    char hash[crypto_pwhash_STRBYTES];
    assert (ml_credentials_hash ("correct horse", hash) == 0);
    assert (strncmp (hash, "$argon2id$", 10) == 0);
    assert (ml_credentials_verify (hash, "correct horse"));
    assert (!ml_credentials_verify (hash, "correct horsE"));
    assert (!ml_credentials_needs_rehash (hash));
    //  Throttling: five free failures, then 1, 2, 4 ... seconds, never more than 900.
    assert (!ml_credentials_throttled (4, 100, 100));
    assert (ml_credentials_throttled (5, 100, 101) && !ml_credentials_throttled (5, 100, 102));
    assert (ml_credentials_throttled (7, 100, 104) && !ml_credentials_throttled (7, 100, 105));
    assert (ml_credentials_throttled (60, 100, 1000) && !ml_credentials_throttled (60, 100, 1001));
    printf ("OK\n");
}
