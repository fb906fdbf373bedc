/*  ml_totp: time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1 from
    libcrypto), as authenticator apps make them: 6 digits, a 30-second step.

    A secret is 20 random bytes, shown to people as base32 (RFC 4648, no padding) and as an
    otpauth:// URI for a QR code. ml_totp_check accepts the step before, the current one and
    the one after (clocks drift), and never a step at or before the last one used, so a code
    seen over a shoulder or replayed by a proxy does not work twice.
*/
#ifndef ML_TOTP_H_INCLUDED
#define ML_TOTP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_TOTP_SECRET_BYTES 20
#define ML_TOTP_STEP_SECONDS 30
//  base32 of 20 bytes is 32 characters
#define ML_TOTP_SECRET_TEXT 33

//  The HOTP value of secret at counter step with digits digits (6 to 8).
uint32_t ml_totp_code (const unsigned char *secret, size_t length, uint64_t step, int digits);

//  The step of a time (seconds since the epoch).
uint64_t ml_totp_step (int64_t now);

//  Check a 6-digit code typed by a person (spaces allowed) at time now against secret:
//  returns the step it matched (> last_step, within one step of now's), or 0 when it does
//  not match or its step was used already.
uint64_t ml_totp_check (const unsigned char *secret, size_t length, const char *code, int64_t now,
                        uint64_t last_step);

//  base32 (RFC 4648, upper case, no padding) of bytes into text (size >= 8*length/5+2).
void ml_totp_base32 (const unsigned char *bytes, size_t length, char *text, size_t size);

//  Decode base32 text (case and spaces ignored); returns the byte count, or -1 if not base32.
int ml_totp_base32_decode (const char *text, unsigned char *bytes, size_t size);

//  The otpauth URI of a secret for an account (an e-mail), issuer "matterlink".
void ml_totp_uri (const char *secret_text, const char *account, char *uri, size_t size);

void ml_totp_test (bool verbose);

#endif
