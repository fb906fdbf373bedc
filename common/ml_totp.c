/*  ml_totp: RFC 6238 one-time passwords. See include/ml_totp.h. */
#include "ml_totp.h"

#include <assert.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static const char s_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint32_t ml_totp_code (const unsigned char *secret, size_t length, uint64_t step, int digits)
{
    assert (secret && digits >= 6 && digits <= 8);
    unsigned char counter[8], mac[EVP_MAX_MD_SIZE];
    for (int index = 7; index >= 0; index--, step >>= 8)
        counter[index] = (unsigned char)(step & 0xff);
    unsigned int mac_length = 0;
    if (!HMAC (EVP_sha1 (), secret, (int)length, counter, sizeof counter, mac, &mac_length) ||
        mac_length < 20)
        return UINT32_MAX; //  never a code: no typed code can match it
    //  RFC 4226 5.3: dynamic truncation.
    int offset = mac[mac_length - 1] & 0x0f;
    uint32_t binary = ((uint32_t)(mac[offset] & 0x7f) << 24) | ((uint32_t)mac[offset + 1] << 16) |
                      ((uint32_t)mac[offset + 2] << 8) | (uint32_t)mac[offset + 3];
    uint32_t modulo = 1;
    for (int digit = 0; digit < digits; digit++)
        modulo *= 10;
    return binary % modulo;
}

uint64_t ml_totp_step (int64_t now)
{
    return now < 0 ? 0 : (uint64_t)now / ML_TOTP_STEP_SECONDS;
}

uint64_t ml_totp_check (const unsigned char *secret, size_t length, const char *code, int64_t now,
                        uint64_t last_step)
{
    if (!secret || !code)
        return 0;
    uint32_t typed = 0;
    int digits = 0;
    for (const char *cursor = code; *cursor; cursor++) {
        if (*cursor == ' ')
            continue;
        if (!isdigit ((unsigned char)*cursor) || ++digits > 6)
            return 0;
        typed = typed * 10 + (uint32_t)(*cursor - '0');
    }
    if (digits != 6)
        return 0;
    uint64_t current = ml_totp_step (now);
    uint64_t matched = 0;
    //  Every candidate is computed, so the time taken does not say which one matched.
    for (uint64_t step = current ? current - 1 : 0; step <= current + 1; step++)
        if (step > last_step && ml_totp_code (secret, length, step, 6) == typed && !matched)
            matched = step;
    return matched;
}

void ml_totp_base32 (const unsigned char *bytes, size_t length, char *text, size_t size)
{
    size_t out = 0;
    uint32_t buffer = 0;
    int bits = 0;
    for (size_t index = 0; index < length; index++) {
        buffer = (buffer << 8) | bytes[index];
        bits += 8;
        while (bits >= 5 && out + 1 < size) {
            text[out++] = s_alphabet[(buffer >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0 && out + 1 < size)
        text[out++] = s_alphabet[(buffer << (5 - bits)) & 31];
    if (size)
        text[out] = 0;
}

int ml_totp_base32_decode (const char *text, unsigned char *bytes, size_t size)
{
    size_t out = 0;
    uint32_t buffer = 0;
    int bits = 0;
    for (const char *cursor = text; *cursor; cursor++) {
        if (*cursor == ' ' || *cursor == '-' || *cursor == '=')
            continue;
        const char *found = strchr (s_alphabet, toupper ((unsigned char)*cursor));
        if (!found || !*found)
            return -1;
        buffer = (buffer << 5) | (uint32_t)(found - s_alphabet);
        bits += 5;
        if (bits >= 8) {
            if (out == size)
                return -1;
            bytes[out++] = (unsigned char)((buffer >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return (int)out;
}

void ml_totp_uri (const char *secret_text, const char *account, char *uri, size_t size)
{
    //  The account is an e-mail address: only its '@' and a few others need no escape.
    char escaped[3 * 256 + 1];
    size_t out = 0;
    for (const unsigned char *cursor = (const unsigned char *)account;
         *cursor && out + 4 < sizeof escaped; cursor++) {
        if (isalnum (*cursor) || strchr ("@.-_", *cursor))
            escaped[out++] = (char)*cursor;
        else
            out += (size_t)snprintf (escaped + out, 4, "%%%02X", *cursor);
    }
    escaped[out] = 0;
    snprintf (uri, size, "otpauth://totp/matterlink:%s?secret=%s&issuer=matterlink", escaped,
              secret_text);
}

void ml_totp_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_totp: ");
    //  RFC 6238 appendix B, SHA-1: the secret is the ASCII "12345678901234567890", 8 digits.
    const unsigned char *secret = (const unsigned char *)"12345678901234567890";
    const struct {
        int64_t time;
        uint32_t code;
    } vectors[] = {{59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
                   {1234567890, 89005924}, {2000000000, 69279037}, {20000000000, 65353130}};
    for (size_t index = 0; index < sizeof vectors / sizeof vectors[0]; index++)
        assert (ml_totp_code (secret, 20, ml_totp_step (vectors[index].time), 8) ==
                vectors[index].code);
    //  RFC 4226 appendix D: HOTP, 6 digits, counters 0 and 9.
    assert (ml_totp_code (secret, 20, 0, 6) == 755224);
    assert (ml_totp_code (secret, 20, 9, 6) == 520489);
    //  Checking: the step before, now and after; never one used; never malformed.
    int64_t now = 1111111111;
    uint64_t step = ml_totp_step (now);
    char code[16];
    snprintf (code, sizeof code, "%06u", ml_totp_code (secret, 20, step, 6));
    assert (ml_totp_check (secret, 20, code, now, 0) == step);
    assert (ml_totp_check (secret, 20, code, now, step) == 0); //  replayed
    assert (ml_totp_check (secret, 20, code, now + 30, 0) == step);
    assert (ml_totp_check (secret, 20, code, now - 30, 0) == step);
    assert (ml_totp_check (secret, 20, code, now + 90, 0) == 0); //  too old
    snprintf (code, sizeof code, "%03u %03u", ml_totp_code (secret, 20, step - 1, 6) / 1000,
              ml_totp_code (secret, 20, step - 1, 6) % 1000);
    assert (ml_totp_check (secret, 20, code, now, 0) == step - 1);
    assert (ml_totp_check (secret, 20, code, now, step - 1) == 0);
    assert (ml_totp_check (secret, 20, "12345", now, 0) == 0);
    assert (ml_totp_check (secret, 20, "1234567", now, 0) == 0);
    assert (ml_totp_check (secret, 20, "12a456", now, 0) == 0);
    assert (ml_totp_check (secret, 20, NULL, now, 0) == 0);
    //  base32 of RFC 4648's test vectors, and back.
    char text[64];
    ml_totp_base32 ((const unsigned char *)"foobar", 6, text, sizeof text);
    assert (strcmp (text, "MZXW6YTBOI") == 0);
    ml_totp_base32 (secret, 20, text, sizeof text);
    assert (strcmp (text, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") == 0);
    unsigned char back[32];
    assert (ml_totp_base32_decode ("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", back, sizeof back) ==
            20);
    assert (memcmp (back, secret, 20) == 0);
    assert (ml_totp_base32_decode ("GEZD1", back, sizeof back) == -1);
    assert (ml_totp_base32_decode ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", back, 4) == -1);
    char uri[300];
    ml_totp_uri ("GEZDGNBV", "pat+x@example.com", uri, sizeof uri);
    assert (strcmp (uri, "otpauth://totp/matterlink:pat%2Bx@example.com?secret=GEZDGNBV"
                         "&issuer=matterlink") == 0);
    printf ("OK\n");
}
