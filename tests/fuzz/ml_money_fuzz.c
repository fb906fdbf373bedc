/*  ml_money_fuzz: libFuzzer target for the one amount grammar (common/ml_money.c).

    The input is a currency selector byte and the text of an amount. ml_money_parse must
    refuse with a message or give minor units within the limit; an accepted amount, printed
    by ml_money_decimal, must parse again to the same minor units. ml_money_parse_decimal
    (what databases return) must agree with ml_money_parse on every text both accept.

    Build and run: see tests/fuzz/README.md.
*/
#include "ml_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_fail (const char *what, const char *text)
{
    fprintf (stderr, "ml_money_fuzz: %s (text '%s')\n", what, text);
    abort ();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  Known ones of 2, 0 and 3 decimals, ISO's "no currency" code (not one we know), lower
    //  case, empty.
    static const char *const currencies[] = {"USD", "JPY", "BHD", "EUR", "XXX", "usd", ""};
    if (size < 1 || size > 200)
        return 0;
    const char *currency = currencies[data[0] % (sizeof currencies / sizeof currencies[0])];
    char text[256];
    memcpy (text, data + 1, size - 1);
    text[size - 1] = 0;
    int64_t minor = 0;
    const char *error = NULL;
    int rc = ml_money_parse (text, currency, &minor, &error);
    if (rc != 0) {
        if (!error || !*error)
            s_fail ("refused without a message", text);
        return 0;
    }
    if (minor > ML_MONEY_MAX_MINOR || minor < -ML_MONEY_MAX_MINOR)
        s_fail ("accepted beyond the limit", text);
    int exponent = ml_money_exponent (currency);
    if (exponent < 0)
        s_fail ("accepted for an unknown currency", text);
    char printed[64];
    ml_money_decimal (minor, exponent, printed, sizeof printed);
    int64_t again = 0;
    if (ml_money_parse (printed, currency, &again, &error) != 0 || again != minor)
        s_fail ("the printed amount does not parse to the same minor units", text);
    int64_t decimal = 0;
    if (!strchr (text, ',') && ml_money_parse_decimal (text, exponent, &decimal, &error) == 0 &&
        decimal != minor)
        s_fail ("ml_money_parse_decimal disagrees", text);
    return 0;
}
