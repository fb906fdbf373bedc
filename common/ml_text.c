/*  ml_text: rules for free text. See include/ml_text.h. */
#include "ml_text.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S_CARD_DIGITS_MIN 13 //  card numbers have 13 to 19 digits
#define S_CARD_DIGITS_MAX 19

//  One character of UTF-8 at text: its code point and length (1 for a byte that does not
//  start a well-formed sequence: it counts as a character that is neither digit nor
//  separator, which ends a run).
static uint32_t s_next (const unsigned char *text, size_t *length)
{
    if (text[0] < 0x80 || (text[0] & 0xe0) == 0x80) {
        *length = 1;
        return text[0];
    }
    size_t count = (text[0] & 0xe0) == 0xc0 ? 2 : (text[0] & 0xf0) == 0xe0 ? 3 : 4;
    uint32_t code = text[0] & (0x7f >> count);
    for (size_t index = 1; index < count; index++) {
        if ((text[index] & 0xc0) != 0x80) {
            *length = 1;
            return 0xfffd;
        }
        code = (code << 6) | (text[index] & 0x3f);
    }
    *length = count;
    return code;
}

//  The digit's value (ASCII or full-width), or -1.
static int s_digit (uint32_t code)
{
    if (code >= '0' && code <= '9')
        return (int)(code - '0');
    if (code >= 0xff10 && code <= 0xff19)
        return (int)(code - 0xff10);
    return -1;
}

//  Space, no-break or thin space, hyphen, or a Unicode dash: what people put between groups.
static bool s_separator (uint32_t code)
{
    return code == ' ' || code == '-' || code == 0xa0 || code == 0x2007 || code == 0x2009 ||
           code == 0x202f || code == 0x3000 || (code >= 0x2010 && code <= 0x2015) ||
           code == 0x2212 || code == 0xff0d;
}

static bool s_luhn (const int *digits, size_t count)
{
    int sum = 0;
    for (size_t index = 0; index < count; index++) {
        int digit = digits[count - 1 - index];
        if (index % 2 == 1 && (digit *= 2) > 9)
            digit -= 9;
        sum += digit;
    }
    return sum % 10 == 0;
}

static bool s_uuid_char (unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
}

//  Whether the run [start, end) of text lies in a UUID (8-4-4-4-12 hexadecimal digits): the
//  ids of postings and payments that errors quote. One in about ten thousand has a tail of
//  digits only that passes for a card, and was masked or refused as one.
static bool s_in_uuid (const unsigned char *text, const unsigned char *start,
                       const unsigned char *end)
{
    while (start > text && s_uuid_char (start[-1]))
        start--;
    while (*end && s_uuid_char (*end))
        end++;
    if (end - start != 36)
        return false;
    for (int index = 0; index < 36; index++)
        if ((start[index] == '-') != (index == 8 || index == 13 || index == 18 || index == 23))
            return false;
    return true;
}

//  The card-like runs of text: 13 to 19 digits that pass Luhn, or a longer run (it may hold
//  one anywhere). With mask, each such run's digits become '*' and the scan goes on; with
//  each_run, it is told each run's bytes and the scan goes on; with neither, the first one
//  ends it (text is then not written). Whether one was found.
static bool s_card_runs (unsigned char *text, bool mask, ml_text_run_fn *each_run, void *arg)
{
    bool found = false;
    unsigned char *cursor = text;
    unsigned char *start = NULL; //  the current run's first digit
    unsigned char *end = NULL;   //  the byte after its last digit
    int run[S_CARD_DIGITS_MAX];
    size_t count = 0; //  digits in the current run
    while (true) {
        size_t length = 1;
        uint32_t code = *cursor ? s_next (cursor, &length) : 0;
        int digit = *cursor ? s_digit (code) : -1;
        if (digit >= 0) {
            if (count == 0)
                start = cursor;
            if (count < S_CARD_DIGITS_MAX)
                run[count] = digit;
            count++;
            end = cursor + length;
        } else if (count == 0 || !*cursor || !s_separator (code)) {
            //  The run ends here (spaces and dashes between groups keep it going).
            if ((count > S_CARD_DIGITS_MAX ||
                 (count >= S_CARD_DIGITS_MIN && s_luhn (run, count))) &&
                !s_in_uuid (text, start, end)) {
                if (each_run)
                    each_run (arg, (size_t)(start - text), (size_t)(end - start));
                else if (!mask)
                    return true;
                size_t size = 1;
                for (unsigned char *byte = start; mask && byte < end; byte += size)
                    if (s_digit (s_next (byte, &size)) >= 0)
                        memset (byte, '*', size);
                found = true;
            }
            count = 0;
        }
        if (!*cursor)
            return found;
        cursor += length;
    }
}

bool ml_text_has_card_number (const char *text)
{
    //  (Not written: without mask the scan only reads.)
    return text && s_card_runs ((unsigned char *)text, false, NULL, NULL);
}

bool ml_text_card_runs (const char *text, ml_text_run_fn *each_run, void *arg)
{
    //  (Not written: neither masking nor stopping, the scan only reads.)
    return text && s_card_runs ((unsigned char *)text, false, each_run, arg);
}

bool ml_text_mask_card_numbers (char *text)
{
    return text && s_card_runs ((unsigned char *)text, true, NULL, NULL);
}

struct s_test_runs {
    size_t (*runs)[2];
    size_t *count;
};

static void s_test_run (void *arg, size_t offset, size_t length)
{
    struct s_test_runs *found = arg;
    if (*found->count < 4) {
        found->runs[*found->count][0] = offset;
        found->runs[*found->count][1] = length;
    }
    (*found->count)++;
}

void ml_text_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_text: ");
    //  Where each run lies: from its first digit to its last, separators inside.
    {
        size_t runs[4][2], count = 0;
        const char *text = "pay 4242 4242 4242 4242 now, 4111111111111111. 1234";
        assert (ml_text_card_runs (text, s_test_run, &(struct s_test_runs){runs, &count}));
        assert (count == 2 && runs[0][0] == 4 && runs[0][1] == 19 && runs[1][0] == 29 &&
                runs[1][1] == 16);
        assert (
            !ml_text_card_runs ("no card 1234", s_test_run, &(struct s_test_runs){runs, &count}));
        assert (!ml_text_card_runs (NULL, s_test_run, NULL) && count == 2);
    }
    //  Test card numbers (Visa, Mastercard, Amex, a 13-digit Visa, a 19-digit one).
    const char *cards[] = {"4111111111111111",
                           "4111 1111 1111 1111",
                           "4111-1111-1111-1111",
                           "pay 5555 5555 5555 4444 now",
                           "card:378282246310005.",
                           "4222222222222",
                           "6011 0000 0000 0000 001", //  19 digits
                           "x4111-1111 1111-1111y",
                           "\xef\xbc\x94\xef\xbc\x91\xef\xbc\x91\xef\xbc\x91"
                           "111111111111", //  full-width 4111 + ASCII
                           "4111\xc2\xa0"
                           "1111\xc2\xa0"
                           "1111\xc2\xa0"
                           "1111", //  no-break spaces
                           "4111\xe2\x80\x93"
                           "1111\xe2\x80\x93"
                           "1111\xe2\x80\x93"
                           "1111",
                           "4111  1111  1111  1111",
                           "4111 - 1111 - 1111 - 1111",
                           "12345678901234567890", //  20 digits: may hold one
                           NULL};
    for (size_t index = 0; cards[index]; index++) {
        if (!ml_text_has_card_number (cards[index]))
            printf ("missed '%s'\n", cards[index]);
        assert (ml_text_has_card_number (cards[index]));
    }
    const char *texts[] = {NULL, "", "Invoice INV-2026-0042, thank you",
                           "4111111111111112",       //  fails Luhn
                           "411111111111",           //  12 digits
                           "call +1 (555) 010-0199", //  a phone number
                           "2026-01-31",
                           "invoices 1001 1002 1003 1004", //  16 digits, fail Luhn
                           "4111,1111,1111,1111", "M\xc3\xbcller & S\xc3\xb6hne, 12 Rue de la Paix",
                           "\xff\xfe broken UTF-8 4111",
                           //  UUIDs whose tails are digits only (a Luhn-valid 16, a run of 20)
                           "no posting 1234abcd-1234-4234-4111-111111111111",
                           "12345678-1234-4234-9234-123456789012", NULL};
    assert (!ml_text_has_card_number (NULL));
    //  A card beside a UUID is still one.
    assert (ml_text_has_card_number ("4111111111111111 1234abcd-1234-4234-9234-123456789012"));
    assert (ml_text_has_card_number ("1234abcd-1234-4234-9234-1234567890124111111111111111"));
    for (size_t index = 1; texts[index]; index++) {
        if (ml_text_has_card_number (texts[index]))
            printf ("false alarm on '%s'\n", texts[index]);
        assert (!ml_text_has_card_number (texts[index]));
    }
    //  Masking finds what the check finds, and leaves the rest as it was.
    char copy[128];
    for (size_t index = 0; cards[index]; index++) {
        snprintf (copy, sizeof copy, "%s", cards[index]);
        assert (ml_text_mask_card_numbers (copy));
        assert (!ml_text_has_card_number (copy) && strlen (copy) == strlen (cards[index]));
    }
    for (size_t index = 1; texts[index]; index++) {
        snprintf (copy, sizeof copy, "%s", texts[index]);
        assert (!ml_text_mask_card_numbers (copy) && strcmp (copy, texts[index]) == 0);
    }
    assert (!ml_text_mask_card_numbers (NULL));
    snprintf (copy, sizeof copy, "no posting 4242 4242 4242 4242. (12345, 999999999999999)");
    assert (ml_text_mask_card_numbers (copy));
    assert (strcmp (copy, "no posting **** **** **** ****. (12345, 999999999999999)") == 0);
    //  After a masked run the scan goes on from the character that ended it, whatever its
    //  length in bytes.
    snprintf (copy, sizeof copy, "4242424242424242\xc3\xa9 then 5555 5555 5555 4444!");
    assert (ml_text_mask_card_numbers (copy));
    assert (strcmp (copy, "****************\xc3\xa9 then **** **** **** ****!") == 0);
    printf ("OK\n");
}
