/*  ml_money: money as int64 minor units with an ISO 4217 currency. Never floating point.

    Parsing turns what people and databases write ("1,234.50", "-12.3") into exact minor
    units; formatting does the reverse; splitting shares an amount by weights with the
    largest-remainder method so the parts always sum exactly to the whole.
*/
#ifndef ML_MONEY_H_INCLUDED
#define ML_MONEY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Number of minor-unit digits of a currency (USD 2, JPY 0, BHD 3), or -1 if the code
//  is not one we know. Codes are three upper-case letters.
int ml_money_exponent (const char *currency);

//  The most one posting, one of its lines, one charge or one refund can carry, in minor
//  units: 999 999 999 999 999 (9,999,999,999,999.99 USD). Every contract dialect refuses a
//  posting amount outside 1..ML_MONEY_MAX_MINOR (sql/*/contract.sql, checked equal by the
//  money_limit test), so the codec and the core refuse it first: no card is charged for
//  an amount that could never post. Balances in the replica may be larger.
#define ML_MONEY_MAX_MINOR INT64_C (999999999999999)

//  Check an amount that is about to be charged, posted or refunded: 1..ML_MONEY_MAX_MINOR.
//  Returns 0, or -1 with *error set to a static message that says why.
int ml_money_check (int64_t minor, const char **error);

//  Add amount (>= 0) to *sum without overflow. Returns 0, or -1 (and *sum unchanged) when
//  the result would exceed ML_MONEY_MAX_MINOR, with *error set: a sum of lines each under
//  the limit can be over it.
int ml_money_add (int64_t *sum, int64_t amount, const char **error);

//  Parse an amount a person typed, in major units of the currency, into minor units. The
//  one grammar of every command (docs/admin-api.md, "Amounts"): an optional '-' (callers
//  refuse amounts that are not positive), ASCII digits with optional "," groups of exactly
//  three, then optionally "." and 1 to as many decimals as the currency has. Refused, each
//  with a message that says why: a '+' sign, spaces, "100." and ".5", exponents ("1e3"),
//  hexadecimal ("0x10"), "," as a decimal point ("1,00"), and a magnitude above
//  ML_MONEY_MAX_MINOR. Returns 0, or -1 with *error set to a static message.
int ml_money_parse (const char *text, const char *currency, int64_t *minor, const char **error);

//  Parse an exact decimal as a database returns it ("123.4500", "-7", "12.") at the given
//  exponent. Extra decimals must be zeros (anything else would lose money). Returns 0 or -1.
int ml_money_parse_decimal (const char *text, int exponent, int64_t *minor, const char **error);

//  Format minor units as "1,234.56 USD" into buf. Returns buf.
const char *ml_money_format (int64_t minor, const char *currency, char *buf, size_t size);

//  Format minor units as a plain decimal "1234.56" (no grouping, no currency), for JSON
//  and machine output. Returns buf.
const char *ml_money_decimal (int64_t minor, int exponent, char *buf, size_t size);

//  Share total (>= 0) over count weights (each >= 0, at least one > 0) by largest
//  remainder: parts[i] is floor (total * w[i] / sum) plus one for the largest remainders
//  (ties go to the lower index). The parts sum exactly to total. Returns 0, or -1 on
//  bad arguments.
int ml_money_split (int64_t total, const int64_t *weights, size_t count, int64_t *parts);

void ml_money_test (bool verbose);

#endif
