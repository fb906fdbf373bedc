/*  ml_money: exact money arithmetic. See include/ml_money.h. */
#include "ml_money.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

//  Currencies whose minor unit is not two digits; every other valid code uses two.
static const struct {
    const char *code;
    int exponent;
} s_exponents[] = {{"BHD", 3}, {"BIF", 0}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0}, {"IQD", 3},
                   {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0}, {"KWD", 3},
                   {"LYD", 3}, {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0},
                   {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0}};

int ml_money_exponent (const char *currency)
{
    if (!currency || strlen (currency) != 3)
        return -1;
    for (int index = 0; index < 3; index++)
        if (currency[index] < 'A' || currency[index] > 'Z')
            return -1;
    for (size_t index = 0; index < sizeof s_exponents / sizeof s_exponents[0]; index++)
        if (strcmp (s_exponents[index].code, currency) == 0)
            return s_exponents[index].exponent;
    return 2;
}

//  Shared by both parsers: sign, integer digits (optionally grouped), point, decimals.
//  When grouping is allowed, commas must separate groups of exactly three digits.
static int s_parse (const char *text, int exponent, bool allow_grouping, bool allow_extra_zeros,
                    int64_t *minor, const char **error)
{
    if (!text || !*text) {
        *error = "empty amount";
        return -1;
    }
    const char *cursor = text;
    bool negative = false;
    if (*cursor == '-' || *cursor == '+') {
        negative = *cursor == '-';
        cursor++;
    }
    uint64_t value = 0;
    const uint64_t limit = (uint64_t)INT64_MAX;
    int digits = 0;
    int group = -1; //  digits since the last comma, -1 before any comma
    for (; *cursor && *cursor != '.'; cursor++) {
        if (*cursor == ',' && allow_grouping && digits > 0 && (group == -1 || group == 3)) {
            if (group == -1 && digits > 3) {
                *error = "misplaced thousands separator";
                return -1;
            }
            group = 0;
            continue;
        }
        if (!isdigit ((unsigned char)*cursor)) {
            *error = "not a number";
            return -1;
        }
        uint64_t digit = (uint64_t)(*cursor - '0');
        if (value > (limit - digit) / 10) {
            *error = "amount out of range";
            return -1;
        }
        value = value * 10 + digit;
        digits++;
        if (group >= 0)
            group++;
    }
    if (group >= 0 && group != 3) {
        *error = "misplaced thousands separator";
        return -1;
    }
    int decimals = 0;
    if (*cursor == '.') {
        cursor++;
        for (; *cursor; cursor++) {
            if (!isdigit ((unsigned char)*cursor)) {
                *error = "not a number";
                return -1;
            }
            if (decimals >= exponent) {
                if (*cursor != '0' || !allow_extra_zeros) {
                    *error = "too many decimals for the currency";
                    return -1;
                }
                continue;
            }
            uint64_t digit = (uint64_t)(*cursor - '0');
            if (value > (limit - digit) / 10) {
                *error = "amount out of range";
                return -1;
            }
            value = value * 10 + digit;
            decimals++;
            digits++;
        }
    }
    if (digits == 0) {
        *error = "not a number";
        return -1;
    }
    for (; decimals < exponent; decimals++) {
        if (value > limit / 10) {
            *error = "amount out of range";
            return -1;
        }
        value *= 10;
    }
    *minor = negative ? -(int64_t)value : (int64_t)value;
    return 0;
}

//  The refusal of an amount over ML_MONEY_MAX_MINOR, in one wording everywhere.
#define S_OVER_LIMIT                                                                               \
    "above the limit of 999,999,999,999,999 minor units, the most one posting can carry"

int ml_money_check (int64_t minor, const char **error)
{
    if (minor < 1) {
        *error = "an amount must be above zero";
        return -1;
    }
    if (minor > ML_MONEY_MAX_MINOR) {
        *error = S_OVER_LIMIT;
        return -1;
    }
    return 0;
}

int ml_money_add (int64_t *sum, int64_t amount, const char **error)
{
    int64_t total;
    if (amount < 0 || __builtin_add_overflow (*sum, amount, &total) || total > ML_MONEY_MAX_MINOR) {
        *error = "the lines sum to more than 999,999,999,999,999 minor units, the most one "
                 "posting can carry";
        return -1;
    }
    *sum = total;
    return 0;
}

//  What people type that the shared parser would misread or call merely "not a number":
//  each gets a reason, so the refusal says what to write instead.
static const char *s_human_problem (const char *text)
{
    if (!text || !*text)
        return "empty amount";
    for (const char *cursor = text; *cursor; cursor++)
        if (isspace ((unsigned char)*cursor))
            return "an amount has no spaces";
    if (*text == '+')
        return "no '+' sign: write the amount alone (100.00)";
    const char *digits = *text == '-' ? text + 1 : text;
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X'))
        return "not a decimal number: hexadecimal (0x...) is not an amount";
    if (strpbrk (digits, "eE"))
        return "no exponents (1e3): write the digits (1000)";
    if (*digits == '.')
        return "write a digit before the decimal point (0.50, not .50)";
    size_t length = strlen (digits);
    if (length > 0 && digits[length - 1] == '.')
        return "a decimal point needs digits after it (100 or 100.00, not 100.)";
    if (strchr (digits, ',') &&
        strchr (digits, ',') > (strchr (digits, '.') ? strchr (digits, '.') : digits + length))
        return "',' only groups thousands before the decimal point";
    for (const char *cursor = digits; *cursor; cursor++)
        if (!isdigit ((unsigned char)*cursor) && *cursor != ',' && *cursor != '.')
            return "not a number: only digits, ',' between groups of three and one '.'";
    return NULL;
}

int ml_money_parse (const char *text, const char *currency, int64_t *minor, const char **error)
{
    int exponent = ml_money_exponent (currency);
    if (exponent < 0) {
        *error = "unknown currency";
        return -1;
    }
    const char *problem = s_human_problem (text);
    if (problem) {
        *error = problem;
        return -1;
    }
    int64_t value = 0;
    if (s_parse (text, exponent, true, false, &value, error) != 0) {
        if (strcmp (*error, "amount out of range") == 0)
            *error = S_OVER_LIMIT;
        else if (strcmp (*error, "misplaced thousands separator") == 0)
            *error = "misplaced ',': it separates groups of exactly three digits (1,234.50) and is "
                     "never a decimal point (write 1.00, not 1,00)";
        return -1;
    }
    //  The limit holds for the magnitude: callers refuse negative amounts with their own words.
    if (value > ML_MONEY_MAX_MINOR || value < -ML_MONEY_MAX_MINOR) {
        *error = S_OVER_LIMIT;
        return -1;
    }
    *minor = value;
    return 0;
}

int ml_money_parse_decimal (const char *text, int exponent, int64_t *minor, const char **error)
{
    return s_parse (text, exponent, false, true, minor, error);
}

//  The digits of magnitude with a point before the last exponent of them (at least one
//  digit before the point), and grouped with commas by three before it when grouped, right
//  to left into the end of out[]. Returns where the text starts. Written by hand, not with
//  snprintf: a page of invoices formats a hundred amounts (bench/web.sh).
static char *s_digits (uint64_t magnitude, int exponent, bool negative, bool grouped, char *end)
{
    char *cursor = end;
    *--cursor = 0;
    for (int index = 0; index < exponent; index++) {
        *--cursor = (char)('0' + magnitude % 10);
        magnitude /= 10;
    }
    if (exponent > 0)
        *--cursor = '.';
    int count = 0;
    do {
        if (grouped && count > 0 && count % 3 == 0)
            *--cursor = ',';
        *--cursor = (char)('0' + magnitude % 10);
        magnitude /= 10;
        count++;
    } while (magnitude > 0);
    if (negative)
        *--cursor = '-';
    return cursor;
}

//  Copy text into buf of size, cut to fit (as snprintf would). Returns buf.
static char *s_copy_cut (char *buf, size_t size, const char *text)
{
    if (size == 0)
        return buf;
    size_t length = strlen (text);
    if (length >= size)
        length = size - 1;
    memcpy (buf, text, length);
    buf[length] = 0;
    return buf;
}

const char *ml_money_decimal (int64_t minor, int exponent, char *buf, size_t size)
{
    //  Work on the magnitude as unsigned so INT64_MIN formats correctly.
    uint64_t magnitude = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    if (exponent < 0 || exponent > 18)
        exponent = 2;
    char text[48];
    return s_copy_cut (buf, size,
                       s_digits (magnitude, exponent, minor < 0, false, text + sizeof text));
}

const char *ml_money_format (int64_t minor, const char *currency, char *buf, size_t size)
{
    int exponent = ml_money_exponent (currency);
    if (exponent < 0)
        exponent = 2;
    uint64_t magnitude = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    //  19 digits, 6 commas, a point, a sign, a space and a code of 3 fit in 64 bytes.
    char text[64];
    char *amount = s_digits (magnitude, exponent, minor < 0, true, text + 40);
    size_t length = strlen (amount);
    memmove (text, amount, length);
    text[length++] = ' ';
    const char *code = currency ? currency : "";
    size_t code_length = strnlen (code, 3 + 1);
    if (code_length > 3) { //  never an ISO code, but shown whole all the same
        snprintf (buf, size, "%.*s %s", (int)length - 1, text, code);
        return buf;
    }
    memcpy (text + length, code, code_length);
    text[length + code_length] = 0;
    return s_copy_cut (buf, size, text);
}

int ml_money_split (int64_t total, const int64_t *weights, size_t count, int64_t *parts)
{
    if (total < 0 || count == 0 || !weights || !parts)
        return -1;
    __int128 sum = 0;
    for (size_t index = 0; index < count; index++) {
        if (weights[index] < 0)
            return -1;
        sum += weights[index];
    }
    if (sum == 0)
        return -1;
    int64_t assigned = 0;
    for (size_t index = 0; index < count; index++) {
        parts[index] = (int64_t)(((__int128)total * weights[index]) / sum);
        assigned += parts[index];
    }
    //  Hand out what is left, one unit at a time, to the largest remainders. At most
    //  count - 1 units remain, so this loop is bounded by count * count.
    for (int64_t left = total - assigned; left > 0; left--) {
        size_t best = count;
        __int128 best_remainder = -1;
        for (size_t index = 0; index < count; index++) {
            __int128 remainder = ((__int128)total * weights[index]) % sum;
            //  A part that already got its extra unit has its remainder spent.
            if (parts[index] > (int64_t)(((__int128)total * weights[index]) / sum))
                continue;
            if (remainder > best_remainder) {
                best = index;
                best_remainder = remainder;
            }
        }
        assert (best < count);
        parts[best]++;
    }
    return 0;
}

void ml_money_test (bool verbose)
{
    printf (" * ml_money: ");
    int64_t minor = 0;
    const char *error = NULL;
    assert (ml_money_exponent ("USD") == 2);
    assert (ml_money_exponent ("JPY") == 0);
    assert (ml_money_exponent ("KWD") == 3);
    assert (ml_money_exponent ("usd") == -1);
    assert (ml_money_exponent ("US") == -1);

    assert (ml_money_parse ("1,234.56", "USD", &minor, &error) == 0 && minor == 123456);
    assert (ml_money_parse ("1234.5", "USD", &minor, &error) == 0 && minor == 123450);
    assert (ml_money_parse ("0.01", "USD", &minor, &error) == 0 && minor == 1);
    assert (ml_money_parse ("-7", "USD", &minor, &error) == 0 && minor == -700);
    assert (ml_money_parse ("250", "JPY", &minor, &error) == 0 && minor == 250);
    assert (ml_money_parse ("1.5", "JPY", &minor, &error) == -1);
    assert (ml_money_parse ("1.234", "USD", &minor, &error) == -1);
    assert (ml_money_parse ("12,34.00", "USD", &minor, &error) == -1);
    assert (ml_money_parse ("1234,567", "USD", &minor, &error) == -1);
    assert (ml_money_parse ("1,234,567.00", "USD", &minor, &error) == 0 && minor == 123456700);
    assert (ml_money_parse ("", "USD", &minor, &error) == -1);
    assert (ml_money_parse (".", "USD", &minor, &error) == -1);
    assert (ml_money_parse ("1e5", "USD", &minor, &error) == -1);
    //  The one limit: 999 999 999 999 999 minor units, whatever the currency's decimals.
    assert (ml_money_parse ("9,999,999,999,999.99", "USD", &minor, &error) == 0 &&
            minor == ML_MONEY_MAX_MINOR);
    assert (ml_money_parse ("10,000,000,000,000.00", "USD", &minor, &error) == -1 &&
            strstr (error, "limit"));
    assert (ml_money_parse ("999999999999999", "JPY", &minor, &error) == 0 &&
            minor == ML_MONEY_MAX_MINOR);
    assert (ml_money_parse ("1000000000000000", "JPY", &minor, &error) == -1);
    assert (ml_money_parse ("-10000000000000", "USD", &minor, &error) == -1);
    assert (ml_money_parse ("92233720368547758.07", "USD", &minor, &error) == -1 &&
            strstr (error, "limit"));
    assert (ml_money_parse ("99999999999999999999", "USD", &minor, &error) == -1 &&
            strstr (error, "limit"));
    //  The grammar (docs/admin-api.md, "Amounts"): each refusal says why.
    const struct {
        const char *text;
        const char *why;
    } refused[] = {{"+100", "'+'"},          {"100.", "after it"},   {".5", "before the decimal"},
                   {"1,00", "three"},        {" 100", "spaces"},     {"100 ", "spaces"},
                   {"1e3", "exponent"},      {"1E3", "exponent"},    {"0x10", "hexadecimal"},
                   {"1.000,50", "','"},      {"12a", "only digits"}, {"--1", "only digits"},
                   {"1\t0", "spaces"},       {"", "empty"},          {"-", "not a number"},
                   {"1.5.0", "not a number"}};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        error = NULL;
        assert (ml_money_parse (refused[index].text, "USD", &minor, &error) == -1);
        if (!strstr (error, refused[index].why)) {
            printf ("'%s': %s\n", refused[index].text, error);
            assert (false);
        }
    }
    assert (ml_money_parse ("007.5", "USD", &minor, &error) == 0 && minor == 750);
    assert (ml_money_parse ("100.00", "JPY", &minor, &error) == -1);
    //  Database decimals keep their own, wider grammar ("12." is how some drivers write 12).
    assert (ml_money_parse_decimal ("12.", 2, &minor, &error) == 0 && minor == 1200);
    assert (ml_money_parse_decimal ("92233720368547758.07", 2, &minor, &error) == 0 &&
            minor == INT64_MAX);

    assert (ml_money_check (1, &error) == 0);
    assert (ml_money_check (ML_MONEY_MAX_MINOR, &error) == 0);
    assert (ml_money_check (ML_MONEY_MAX_MINOR + 1, &error) == -1 && strstr (error, "limit"));
    assert (ml_money_check (0, &error) == -1 && ml_money_check (-5, &error) == -1);
    int64_t running = ML_MONEY_MAX_MINOR - 1;
    assert (ml_money_add (&running, 1, &error) == 0 && running == ML_MONEY_MAX_MINOR);
    assert (ml_money_add (&running, 1, &error) == -1 && running == ML_MONEY_MAX_MINOR &&
            strstr (error, "sum"));
    running = INT64_MAX - 1;
    assert (ml_money_add (&running, INT64_MAX, &error) == -1 && running == INT64_MAX - 1);
    assert (ml_money_parse ("1.00", "XYZ1", &minor, &error) == -1);

    assert (ml_money_parse_decimal ("123.4500", 2, &minor, &error) == 0 && minor == 12345);
    assert (ml_money_parse_decimal ("123.4510", 2, &minor, &error) == -1);
    assert (ml_money_parse_decimal ("-0.5", 2, &minor, &error) == 0 && minor == -50);
    assert (ml_money_parse_decimal ("1,000", 2, &minor, &error) == -1);

    char buf[64];
    assert (strcmp (ml_money_format (123456789, "USD", buf, sizeof buf), "1,234,567.89 USD") == 0);
    assert (strcmp (ml_money_format (-5, "USD", buf, sizeof buf), "-0.05 USD") == 0);
    assert (strcmp (ml_money_format (1000, "JPY", buf, sizeof buf), "1,000 JPY") == 0);
    assert (strcmp (ml_money_format (INT64_MIN, "USD", buf, sizeof buf),
                    "-92,233,720,368,547,758.08 USD") == 0);
    assert (strcmp (ml_money_decimal (100, 2, buf, sizeof buf), "1.00") == 0);
    //  Written by hand since the portal's pages format so many: the same as before.
    assert (strcmp (ml_money_format (0, "USD", buf, sizeof buf), "0.00 USD") == 0);
    assert (strcmp (ml_money_format (100000, "USD", buf, sizeof buf), "1,000.00 USD") == 0);
    assert (strcmp (ml_money_format (99999, "USD", buf, sizeof buf), "999.99 USD") == 0);
    assert (strcmp (ml_money_format (-123456, "KWD", buf, sizeof buf), "-123.456 KWD") == 0);
    assert (strcmp (ml_money_format (INT64_MAX, "JPY", buf, sizeof buf),
                    "9,223,372,036,854,775,807 JPY") == 0);
    assert (strcmp (ml_money_format (5, "usd", buf, sizeof buf), "0.05 usd") == 0);
    assert (strcmp (ml_money_format (5, "DOLLARS", buf, sizeof buf), "0.05 DOLLARS") == 0);
    assert (strcmp (ml_money_format (5, NULL, buf, sizeof buf), "0.05 ") == 0);
    char small[6];
    assert (strcmp (ml_money_format (123456, "USD", small, sizeof small), "1,234") == 0);
    assert (strcmp (ml_money_decimal (-1, 0, buf, sizeof buf), "-1") == 0);
    assert (strcmp (ml_money_decimal (7, 3, buf, sizeof buf), "0.007") == 0);

    int64_t weights[] = {1, 1, 1};
    int64_t parts[3];
    assert (ml_money_split (100, weights, 3, parts) == 0);
    assert (parts[0] == 34 && parts[1] == 33 && parts[2] == 33);
    int64_t skewed[] = {0, 2, 1};
    assert (ml_money_split (10, skewed, 3, parts) == 0);
    assert (parts[0] == 0 && parts[1] == 7 && parts[2] == 3);
    int64_t zero[] = {0, 0};
    assert (ml_money_split (10, zero, 2, parts) == -1);
    //  Exact sums over many random splits.
    unsigned int seed = 7;
    for (int round = 0; round < 2000; round++) {
        int64_t random_weights[7];
        int64_t random_parts[7];
        size_t count = 1 + (size_t)(rand_r (&seed) % 7);
        for (size_t index = 0; index < count; index++)
            random_weights[index] = rand_r (&seed) % 100000;
        random_weights[0] += 1;
        int64_t total = (int64_t)rand_r (&seed) * 1000 + rand_r (&seed);
        assert (ml_money_split (total, random_weights, count, random_parts) == 0);
        int64_t sum = 0;
        for (size_t index = 0; index < count; index++) {
            assert (random_parts[index] >= 0);
            sum += random_parts[index];
        }
        assert (sum == total);
    }
    printf ("OK\n");
}
