/*  matterlink: the staff command line. Talks to the core's admin API (docs/admin-api.md)
    and prints tables for people or JSON for scripts.

    Each command is one row of s_commands: its options and bare arguments, the admin op it
    sends, and how it prints the reply. One parser reads every command line against that
    row, so a usage error (unknown option, missing value, bad number, date or amount) is
    explained before anything is sent.

    A card number is never a command-line argument, where ps and the shell's history would
    show it: "charge --card-stdin" reads the card from standard input, sends it only in the
    request's text, and wipes every buffer that held it.

    Exit codes: 0 done; 1 the core refused the request (the message says why), or not all
    of what was asked could be done (a card charge declined); 2 usage error; 3 the core did
    not answer; 4 --wait ran out before the posting was final; 5 a card charge's outcome is
    not known yet (the core settles it with the processor: see "matterlink payment show").
*/
#include "ml_config.h"
#include "ml_finder.h"
#include "ml_money.h"
#include "ml_msg.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define S_EXIT_REFUSED     1
#define S_EXIT_USAGE       2
#define S_EXIT_UNREACHABLE 3
#define S_EXIT_WAIT        4
#define S_EXIT_UNKNOWN     5

//  Without --timeout, how long to wait for a reply: this long, or, for an op that makes
//  the core wait for the firm's agent (or the card processor), that wait and this much
//  more, so the core's own error ("did not answer within N ms") arrives before the command
//  gives up.
#define S_TIMEOUT_MS       5000
#define S_TIMEOUT_SLACK_MS 2000

//  A card payment makes up to three calls to the processor while the request waits
//  (tokenize, then one charge per deposit account), each at most (retries + 1) x timeout_ms
//  plus back-off: 3 x 45.75 s with the processor's defaults (docs/processor.md).
#define S_PROCESSOR_WAIT_MS 150000

//  A run of this many digits (spaces and '-' between them allowed) is taken for a card
//  number, as the core takes it (method-add, the processor's descriptions).
#define S_CARD_DIGITS 12
//  The card line "NUMBER MM/YYYY CVC" on standard input is at most this long.
#define S_CARD_LINE_MAX 100

//  "association add --level" reads the whole search in pages of this many rows, and stops
//  (asking for a narrower search) after this many pages.
#define S_PICK_PAGE_ROWS ML_MAX_SEARCH_ROWS
#define S_PICK_PAGES     20

#define S_MAX_OPTIONS 24
#define S_MAX_BARE    2
#define S_MAX_COLUMNS 12

//  ---------------------------------------------------------------------------------------
//  Options and bare arguments

typedef enum { S_TEXT, S_NUMBER, S_FLAG } s_kind_t;

typedef struct {
    const char *name;             //  "--by"; for a bare argument its placeholder, "PAYER_ID"
    const char *meta;             //  the value's placeholder in usage text; NULL for a flag
    s_kind_t kind;                //  text, whole number, or a flag without a value
    int64_t low, high;            //  S_NUMBER: the range; S_TEXT: high is the most bytes
    const char *key;              //  the request member it becomes, or NULL if the command reads it
    const char *choices;          //  S_TEXT: the values allowed, "a|b|c", or NULL
    bool (*valid) (const char *); //  S_TEXT: a further check, or NULL
    const char *expect;           //  what valid wants, for the message
    bool rest;                    //  a bare TEXT: every remaining word, joined by spaces
    bool repeat;                  //  an option's TEXT: given again, adds ",value" (a list)
    const char *help;             //  what it is for, in --help
} s_option_t;

static bool s_is_date (const char *text);
static bool s_is_currency (const char *text);
static bool s_is_printable (const char *text);
static bool s_is_last4 (const char *text);
static bool s_is_expiry (const char *text);
static bool s_is_pick (const char *text);

#define S_FIELDS "client-name|client-number|matter-number|matter-description|invoice-number"

//  Text of at most bytes, sent as member (NULL: the command reads it).
#define S_STRING(option, placeholder, bytes, member, about)                                        \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = S_TEXT, .high = bytes, .key = member,         \
        .help = about                                                                              \
    }
//  One of the values in list ("a|b|c").
#define S_CHOICE(option, placeholder, bytes, member, list, about)                                  \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = S_TEXT, .high = bytes, .key = member,         \
        .choices = list, .help = about                                                             \
    }
//  Text that check accepts; wants says what it wants.
#define S_CHECKED(option, placeholder, bytes, member, check, wants, about)                         \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = S_TEXT, .high = bytes, .key = member,         \
        .valid = check, .expect = wants, .help = about                                             \
    }
//  A whole number from lowest to highest.
#define S_WHOLE(option, placeholder, lowest, highest, member, about)                               \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = S_NUMBER, .low = lowest, .high = highest,     \
        .key = member, .help = about                                                               \
    }
//  A flag, sent as member: true.
#define S_SWITCH(option, member, about)                                                            \
    {                                                                                              \
        .name = option, .kind = S_FLAG, .key = member, .help = about                               \
    }

//  Before the command (or after it).
static const s_option_t o_config =
    S_STRING ("--config", "FILE", 4096, NULL, "the core's configuration file");
static const s_option_t o_admin =
    S_STRING ("--admin", "ENDPOINT", 4096, NULL, "the core's admin endpoint");
static const s_option_t o_json = S_SWITCH ("--json", NULL, "print the reply as JSON");
static const s_option_t o_timeout =
    S_WHOLE ("--timeout", "MS", 1, 3600000, NULL, "how long to wait for each reply, 1 to 3600000");
static const s_option_t o_staff = S_CHECKED ("--staff", "NAME", 64, NULL, s_is_printable,
                                             "printable text", "who you are, for the core");
static const s_option_t *s_global_options[] = {&o_config,  &o_admin, &o_json,
                                               &o_timeout, &o_staff, NULL};

//  Firms, payments and postings.
static const s_option_t o_firm = S_STRING ("--firm", "F", 63, "firm", "the firm's ID");
static const s_option_t o_client = S_STRING ("--client", "C", 63, "client", "a client number");
static const s_option_t o_matter = S_STRING ("--matter", "M", 63, "matter", "a matter number");
static const s_option_t o_amount =
    S_STRING ("--amount", "A", 40, "amount", "the amount, like 1,250.00");
static const s_option_t o_currency =
    S_STRING ("--currency", "CUR", 3, "currency", "the currency to pay in, like USD");
static const s_option_t o_payer_name =
    S_STRING ("--payer-name", "N", 255, "payer_name", "who paid, for the receipt");
static const s_option_t o_payer_email =
    S_STRING ("--payer-email", "E", 255, "payer_email", "their e-mail, for the receipt");
static const s_option_t o_message =
    S_STRING ("--message", "TEXT", 1000, "ar_message", "a note for the receivables ledger");
static const s_option_t o_account =
    S_STRING ("--account", "NUMBER", 63, "account", "the account the money goes into");
static const s_option_t o_wait =
    S_WHOLE ("--wait", "SECONDS", 1, 86400, NULL, "wait until the posting is final, 1 to 86400");
static const s_option_t o_posting_status =
    S_STRING ("--status", "S", 16, "status", "only postings in this status");
static const s_option_t o_posting_limit =
    S_WHOLE ("--limit", "N", 1, 10000, "limit", "at most this many, 1 to 10000 (default 50)");
static const s_option_t o_uuid = S_STRING ("UUID", "UUID", 36, "posting_uuid", "a posting's ID");

//  Searches.
static const s_option_t o_text = {.name = "TEXT",
                                  .meta = "TEXT",
                                  .kind = S_TEXT,
                                  .high = 255,
                                  .key = "text",
                                  .rest = true,
                                  .help = "what to look for (several words are one text)"};
static const s_option_t o_by =
    S_CHOICE ("--by", "FIELD", 32, "by", S_FIELDS, "where to look for TEXT (default: yours)");
static const s_option_t o_match = S_CHOICE ("--match", "M", 16, "match", "exact|prefix|contains",
                                            "how TEXT must match (default: by field)");
static const s_option_t o_trust =
    S_SWITCH ("--trust", NULL, "search trust ledgers, not open invoices");
static const s_option_t o_from = S_CHECKED ("--from", "YYYY-MM-DD", 10, "date_from", s_is_date,
                                            "a date as YYYY-MM-DD", "invoices dated from this day");
static const s_option_t o_to = S_CHECKED ("--to", "YYYY-MM-DD", 10, "date_to", s_is_date,
                                          "a date as YYYY-MM-DD", "invoices dated up to this day");
static const s_option_t o_min =
    S_STRING ("--min", "AMOUNT", 40, NULL, "a balance of at least this, like 250.00");
static const s_option_t o_max =
    S_STRING ("--max", "AMOUNT", 40, NULL, "a balance of at most this, like 5,000.00");
static const s_option_t o_amount_currency =
    S_CHECKED ("--currency", "CUR", 3, NULL, s_is_currency, "a currency code in capitals, like USD",
               "the currency of --min and --max (default USD)");
static const s_option_t o_search_status =
    S_CHOICE ("--status", "S", 16, "status", "any|overdue|current", "which invoices");
static const s_option_t o_search_limit = S_WHOLE ("--limit", "N", 1, ML_MAX_SEARCH_ROWS, "limit",
                                                  "rows per page, 1 to 500 (default 50)");
static const s_option_t o_after =
    S_WHOLE ("--after", "CURSOR", 0, INT64_MAX, "after", "the next page, as the last one said");
static const s_option_t o_deadline =
    S_WHOLE ("--deadline", "MS", 100, ML_MAX_DEADLINE_MS, "deadline_ms",
             "the wait for the agent, 100 to 60000 (default 5000)");
static const s_option_t o_remember =
    S_SWITCH ("--remember", "remember", "save --by as your default search field");
static const s_option_t o_as_payer =
    S_WHOLE ("--as-payer", "PAYER_ID", 1, INT64_MAX, "as_payer", "only what this payer may see");
static const s_option_t o_field =
    S_CHOICE ("FIELD", "FIELD", 32, "field", S_FIELDS, "the field to search by default");

//  Payers, their payment methods and associations.
static const s_option_t o_payer_id =
    S_WHOLE ("PAYER_ID", "PAYER_ID", 1, INT64_MAX, "payer_id", "a payer's ID");
static const s_option_t o_method_id =
    S_WHOLE ("METHOD_ID", "METHOD_ID", 1, INT64_MAX, "method_id", "a payment method's ID");
static const s_option_t o_association_id = S_WHOLE (
    "ASSOCIATION_ID", "ASSOCIATION_ID", 1, INT64_MAX, "association_id", "an association's ID");
static const s_option_t o_name = S_STRING ("--name", "N", 200, "name", "the payer's name");
static const s_option_t o_email = S_STRING ("--email", "E", 254, "email", "the payer's e-mail");
static const s_option_t o_phone =
    S_STRING ("--phone", "P", 40, "phone", "the payer's phone (\"\" removes it)");
static const s_option_t o_list_text =
    S_STRING ("--text", "T", 200, "text", "only payers with this in their name or e-mail");
static const s_option_t o_list_limit =
    S_WHOLE ("--limit", "N", 1, 1000, "limit", "at most this many, 1 to 1000 (default 100)");
static const s_option_t o_token =
    S_STRING ("--token", "T", 128, "token", "the payment processor's token for the card");
static const s_option_t o_brand = S_CHOICE (
    "--brand", "B", 16, "brand", "visa|mastercard|amex|discover|other", "the card's brand");
static const s_option_t o_last4 = S_CHECKED ("--last4", "NNNN", 4, "last4", s_is_last4,
                                             "exactly 4 digits", "the card number's last 4 digits");
static const s_option_t o_expiry =
    S_CHECKED ("--expiry", "MM/YYYY", 7, NULL, s_is_expiry, "a month as MM/YYYY, like 04/2030",
               "the card's expiry month");
static const s_option_t o_association_client =
    S_STRING ("--client", "NUMBER", 63, NULL, "associate this client");
static const s_option_t o_association_matter =
    S_STRING ("--matter", "NUMBER", 63, NULL, "associate this matter");
static const s_option_t o_association_invoice =
    S_STRING ("--invoice", "NUMBER", 63, NULL, "associate this invoice");
static const s_option_t o_level = S_CHOICE ("--level", "L", 16, NULL, "client|matter|invoice",
                                            "what the search finds to associate");
static const s_option_t o_pick =
    S_CHECKED ("--pick", "1,3,...", 200, NULL, s_is_pick, "numbers from the list, like 1,3",
               "associate these of the numbered list");
static const s_option_t o_all = S_SWITCH ("--all", NULL, "associate every one the search found");

//  Deposit accounts and card payments.
static const s_option_t o_account_number =
    S_CHECKED ("--number", "N", 63, "number", s_is_printable, "printable text",
               "the account's number in the matter system");
static const s_option_t o_account_type =
    S_CHOICE ("--type", "TYPE", 16, "type", "TRUST|OPERATING", "what it holds, for good");
static const s_option_t o_account_currency =
    S_CHECKED ("--currency", "CUR", 3, "currency", s_is_currency,
               "a currency code in capitals, like USD", "the account's currency");
static const s_option_t o_merchant =
    S_CHECKED ("--merchant-account", "M", 64, "merchant_account", s_is_printable, "printable text",
               "the processor's account the money goes to");
static const s_option_t o_charge_client =
    S_STRING ("--client", "C", 63, NULL, "pay its invoices, oldest first (with --amount)");
static const s_option_t o_charge_matter =
    S_STRING ("--matter", "M", 63, NULL, "pay its invoices, oldest first (with --amount)");
static const s_option_t o_charge_amount =
    S_STRING ("--amount", "A", 40, NULL, "what --client or --matter pays, like 1,250.00");
static const s_option_t o_charge_invoice = {
    .name = "--invoice",
    .meta = "NUMBER=AMOUNT",
    .kind = S_TEXT,
    .high = 16000,
    .repeat = true,
    .help = "pay the invoice this much; repeat, or join with ,"};
static const s_option_t o_charge_trust = {.name = "--trust",
                                          .meta = "MATTER=AMOUNT",
                                          .kind = S_TEXT,
                                          .high = 16000,
                                          .repeat = true,
                                          .help = "deposit into the matter's trust; likewise"};
static const s_option_t o_charge_currency =
    S_CHECKED ("--currency", "CUR", 3, NULL, s_is_currency, "a currency code in capitals, like USD",
               "the currency of the amounts (default USD)");
static const s_option_t o_payer =
    S_WHOLE ("--payer", "PAYER_ID", 1, INT64_MAX, "payer_id", "a saved payer pays");
static const s_option_t o_method = S_WHOLE ("--method", "METHOD_ID", 1, INT64_MAX, "method_id",
                                            "pay with this saved card of --payer");
static const s_option_t o_charge_payer_name =
    S_STRING ("--payer-name", "N", 200, "payer_name", "who pays, without --payer");
static const s_option_t o_charge_payer_email =
    S_STRING ("--payer-email", "E", 254, "payer_email", "their e-mail, without --payer");
static const s_option_t o_card_stdin =
    S_SWITCH ("--card-stdin", NULL, "read NUMBER MM/YYYY CVC from standard input");
static const s_option_t o_save_method =
    S_SWITCH ("--save-method", "save_method", "save that card for --payer");
static const s_option_t o_receipt_email =
    S_STRING ("--receipt-email", "E", 254, "receipt_email", "send the receipt here, not the payer");
static const s_option_t o_notify_email =
    S_STRING ("--email", "E", 254, "email", "where the firm gets notices (posting rejected)");
static const s_option_t o_save_payer =
    S_SWITCH ("--save-payer", "save_payer", "save --payer-name and --payer-email as a payer");
static const s_option_t o_selection =
    S_SWITCH ("--selection", "selection", "pay what you selected ('matterlink select add')");
static const s_option_t o_select_invoice =
    S_STRING ("--invoice", "NUMBER[=AMOUNT]", 120, NULL,
              "an invoice; without an amount, its whole balance when paid");
static const s_option_t o_select_trust =
    S_STRING ("--trust", "MATTER=AMOUNT", 120, NULL, "a deposit to a matter's trust ledger");
static const s_option_t o_charge_key =
    S_STRING ("CHARGE_KEY", "CHARGE_KEY", 80, "charge_key",
              "a charge, as 'payment show' lists it (PAYMENT_UUID:operating or :trust)");
static const s_option_t o_reverse_amount =
    S_STRING ("--amount", "A", 40, "amount",
              "how much to take back, in the charge's currency (default: all)");
static const s_option_t o_link_state = S_CHOICE (
    "--state", "S", 16, "state", "outstanding|paid|cancelled|expired", "only links in this state");
static const s_option_t o_link_id =
    S_STRING ("LINK_ID", "LINK_ID", 36, "link_id", "a payment link's ID");
static const s_option_t o_link_token =
    S_STRING ("TOKEN", "TOKEN", 64, "token", "the link's token, as sent to the payer");
//  Auto-Pay schedules.
static const s_option_t o_schedule_id = S_WHOLE ("SCHEDULE_ID", "SCHEDULE_ID", 1, INT64_MAX,
                                                 "schedule_id", "an Auto-Pay schedule's ID");
static const s_option_t o_schedule_name =
    S_STRING ("--name", "N", 200, "name", "what the schedule is called");
static const s_option_t o_frequency = S_CHOICE ("--frequency", "F", 16, "frequency",
                                                "weekly|biweekly|monthly|quarterly", "how often");
static const s_option_t o_day_rule =
    S_CHOICE ("--day-rule", "R", 8, "day_rule", "last|next",
              "months without the first date's day: their last day, or the 1st after");
static const s_option_t o_first_date = S_CHECKED ("--first", "YYYY-MM-DD", 10, "first_date",
                                                  s_is_date, "a date, YYYY-MM-DD", "the first run");
static const s_option_t o_schedule_amount =
    S_STRING ("--amount", "A|all", 40, "amount", "pay up to this much each run, or all");
static const s_option_t o_schedule_payer =
    S_WHOLE ("--payer", "PAYER_ID", 1, INT64_MAX, "payer_id", "the payer");
static const s_option_t o_schedule_method = S_WHOLE (
    "--method", "METHOD_ID", 1, INT64_MAX, "method_id", "the payer's saved card to charge");
static const s_option_t o_today =
    S_STRING ("DATE", "YYYY-MM-DD", 10, "today", "the scheduler's today (\"\" for the real one)");
static const s_option_t o_payment_uuid =
    S_STRING ("PAYMENT_UUID", "PAYMENT_UUID", 36, "payment_uuid", "a payment's ID");

//  What one search can ask: search, view-as and "association add --level" share them.
#define S_CRITERIA                                                                                 \
    &o_by, &o_match, &o_trust, &o_from, &o_to, &o_min, &o_max, &o_amount_currency,                 \
        &o_search_status, &o_deadline

//  ---------------------------------------------------------------------------------------
//  The command line's state, and the commands

typedef struct {
    const char *config_path;
    const char *admin;
    ml_config_t *config;
    bool json;
    int timeout_ms;    //  from --timeout, or 0 for the default
    const char *staff; //  from --staff, or NULL for the default
    zsock_t *socket;   //  connected on the first request
    bool sent;         //  the last request left for the core (its reply may not have come)
} s_cli_t;

typedef struct _s_command_t s_command_t;

//  A parsed command line: values[i] is the value of command->options[i] (new reference, NULL
//  when not given), values[S_MAX_OPTIONS + i] that of command->bare[i].
typedef struct {
    const s_command_t *command;
    json_t *values[S_MAX_OPTIONS + S_MAX_BARE];
} s_args_t;

//  Command flags.
#define S_NEEDS_FIRM      1  //  --firm may be left out when the core has only one firm
#define S_SENDS_STAFF     2  //  the request names the staff user
#define S_WAITS           4  //  the core waits for the agent, up to the deadline
#define S_WAITS_TWICE     8  //  ... up to twice (a second search may follow the first)
#define S_CALLS_PROCESSOR 16 //  the core calls the card processor before it answers

typedef int (s_step_fn) (s_cli_t *cli, const s_args_t *args, json_t *request);
typedef int (s_print_fn) (s_cli_t *cli, const s_args_t *args, json_t *reply);
typedef int (s_run_fn) (s_cli_t *cli, const s_args_t *args);

struct _s_command_t {
    const char *name;     //  "payer add"
    const char *op;       //  the admin op it sends
    const char *synopsis; //  what follows the name in usage text
    const char *summary;
    unsigned flags;
    const s_option_t *options[S_MAX_OPTIONS]; //  NULL-terminated
    const s_option_t *bare[S_MAX_BARE + 1];   //  bare arguments in order, NULL-terminated
    int bare_required;                        //  how many of them must be given
    const char *required;                     //  options that must be given, space-separated
    s_step_fn *prepare;                       //  more checks and members before sending, or NULL
    s_print_fn *print;                        //  the reply for people (without --json), or NULL
    s_run_fn *run; //  the whole command instead of the usual steps, or NULL
};

//  ---------------------------------------------------------------------------------------
//  Small helpers

static bool s_is_printable (const char *text)
{
    if (!*text)
        return false;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor == 0x7f)
            return false;
    return true;
}

//  A real calendar date as YYYY-MM-DD.
static bool s_is_date (const char *text)
{
    if (!*text || !ml_msg_valid_date (text))
        return false;
    int year = atoi (text), month = atoi (text + 5), day = atoi (text + 8);
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= days[month - 1] && !(month == 2 && day == 29 && !leap);
}

static bool s_is_currency (const char *text)
{
    return ml_money_exponent (text) >= 0;
}

static bool s_is_digits (const char *text, size_t low, size_t high)
{
    size_t length = strspn (text, "0123456789");
    return !text[length] && length >= low && length <= high;
}

static bool s_is_last4 (const char *text)
{
    return s_is_digits (text, 4, 4);
}

//  The longest run of digits, read through the spaces and dashes people put between a
//  card number's groups, so "4111-1111-1111-1111" counts as one run of 16.
static size_t s_digit_run (const char *text)
{
    size_t longest = 0, run = 0;
    for (const char *cursor = text; *cursor; cursor++) {
        if (*cursor >= '0' && *cursor <= '9')
            longest = ++run > longest ? run : longest;
        else if (!(run > 0 && (*cursor == ' ' || *cursor == '-')))
            run = 0;
    }
    return longest;
}

//  MM/YYYY (or M/YYYY), a month from 1 to 12 and a year from 2000 to 2099.
static bool s_is_expiry (const char *text)
{
    const char *slash = strchr (text, '/');
    if (!slash || slash == text || slash - text > 2 || !s_is_digits (slash + 1, 4, 4))
        return false;
    for (const char *cursor = text; cursor < slash; cursor++)
        if (*cursor < '0' || *cursor > '9')
            return false;
    int month = atoi (text), year = atoi (slash + 1);
    return month >= 1 && month <= 12 && year >= 2000 && year <= 2099;
}

//  "1,3,7": numbers from 1, separated by single commas.
static bool s_is_pick (const char *text)
{
    const char *cursor = text;
    do {
        size_t length = strspn (cursor, "0123456789");
        if (length == 0 || length > 6 || atoi (cursor) < 1)
            return false;
        cursor += length;
    } while (*cursor == ',' && *++cursor);
    return *cursor == 0 && cursor[-1] != ',';
}

//  A whole number in [low, high] into *value. Returns 0, or -1 for anything else.
static int s_parse_number (const char *text, int64_t low, int64_t high, int64_t *value)
{
    if (!(*text >= '0' && *text <= '9') && !(*text == '-' && text[1] >= '0' && text[1] <= '9'))
        return -1;
    char *end = NULL;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || *end || number < low || number > high)
        return -1;
    *value = (int64_t)number;
    return 0;
}

static bool s_choice (const char *choices, const char *text)
{
    size_t length = strlen (text);
    for (const char *cursor = choices; *cursor;) {
        size_t size = strcspn (cursor, "|");
        if (size == length && strncmp (cursor, text, size) == 0)
            return true;
        cursor += size + (cursor[size] == '|');
    }
    return false;
}

//  "a|b|c" as "a, b or c" into buf. Returns buf.
static const char *s_choices_text (const char *choices, char *buf, size_t size)
{
    const char *last = strrchr (choices, '|');
    size_t used = 0;
    *buf = 0;
    for (const char *cursor = choices; *cursor && used < size; cursor++) {
        const char *between = cursor == last ? " or " : ", ";
        int added = *cursor == '|' ? snprintf (buf + used, size - used, "%s", between)
                                   : snprintf (buf + used, size - used, "%c", *cursor);
        used += added > 0 ? (size_t)added : 0;
    }
    return buf;
}

static const char *s_text (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value ? value : "";
}

static const char *s_integer_text (json_t *value, char *buf, size_t size)
{
    snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    return buf;
}

static long long s_integer (json_t *object, const char *key)
{
    return (long long)json_integer_value (json_object_get (object, key));
}

static const char *s_money (json_t *object, const char *key, const char *currency, char *buf,
                            size_t size)
{
    return ml_money_format (json_integer_value (json_object_get (object, key)), currency, buf,
                            size);
}

//  Print text from the core or the firm's database with control bytes shown as '?', so no
//  row can move the cursor or change the terminal.
static void s_put_clean (FILE *stream, const char *text, size_t bytes)
{
    for (size_t index = 0; index < bytes && text[index]; index++) {
        unsigned char byte = (unsigned char)text[index];
        fputc (byte < 0x20 || byte == 0x7f ? '?' : byte, stream);
    }
}

static void s_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  An error for the person at the terminal, on standard error.
static void s_error (const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    fputs ("matterlink: ", stderr);
    s_put_clean (stderr, text, sizeof text);
    fputc ('\n', stderr);
}

static void s_print_json (json_t *reply)
{
    json_object_del (reply, "ok");
    char *text = json_dumps (reply, JSON_INDENT (2) | JSON_SORT_KEYS);
    printf ("%s\n", text ? text : "{}");
    free (text);
}

//  ---------------------------------------------------------------------------------------
//  Usage

static void s_print_synopsis (FILE *stream, const s_command_t *command)
{
    //  The summary starts at column 42, or on a line of its own after a long synopsis.
    char line[512];
    snprintf (line, sizeof line, "  %s%s%s", command->name, *command->synopsis ? " " : "",
              command->synopsis);
    const char *last_line = strrchr (line, '\n');
    size_t last = strlen (last_line ? last_line + 1 : line);
    if (last < 41)
        fprintf (stream, "%s%*s %s\n", line, (int)(41 - last), "", command->summary);
    else
        fprintf (stream, "%s\n%42s%s\n", line, "", command->summary);
}

static void s_usage_error (const s_command_t *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  A usage error: what is wrong, then how the command is used.
static void s_usage_error (const s_command_t *command, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    s_error ("%s", text);
    fprintf (stderr, "Try 'matterlink %s%s--help'.\n", command ? command->name : "",
             command ? " " : "");
}

//  ---------------------------------------------------------------------------------------
//  The parser: one option (or bare argument) value at a time, checked against its row.

//  Check text as the value of option and set *value to it (new reference; a value given
//  before is dropped: the last one counts). Returns 0, or -1 after saying what is wrong.
static int s_value (const s_command_t *command, const s_option_t *option, const char *text,
                    json_t **value)
{
    json_t *parsed = NULL;
    char choices[200];
    //  A list option given again adds to its list.
    char *joined = option->repeat && json_is_string (*value)
                       ? zsys_sprintf ("%s,%s", json_string_value (*value), text)
                       : NULL;
    text = joined ? joined : text;
    if (option->kind == S_NUMBER) {
        int64_t number = 0;
        if (s_parse_number (text, option->low, option->high, &number) == 0)
            parsed = json_integer (number);
        else if (option->high == INT64_MAX)
            s_usage_error (command, "%s must be a whole number of at least %lld", option->name,
                           (long long)option->low);
        else
            s_usage_error (command, "%s must be a whole number from %lld to %lld", option->name,
                           (long long)option->low, (long long)option->high);
    } else if (strlen (text) > (size_t)option->high)
        s_usage_error (command, "%s is longer than %lld bytes", option->name,
                       (long long)option->high);
    else if (!(parsed = json_string (text)))
        s_usage_error (command, "%s must be UTF-8 text", option->name);
    else if (option->choices && !s_choice (option->choices, text)) {
        s_usage_error (command, "%s must be %s", option->name,
                       s_choices_text (option->choices, choices, sizeof choices));
        json_decref (parsed);
        parsed = NULL;
    } else if (option->valid && !option->valid (text)) {
        s_usage_error (command, "%s must be %s", option->name, option->expect);
        json_decref (parsed);
        parsed = NULL;
    }
    zstr_free (&joined);
    if (!parsed)
        return -1;
    json_decref (*value);
    *value = parsed;
    return 0;
}

//  If argv[*index] is one of options, read it (and its value) into values and move *index
//  past it. Returns 1 read, 0 not one of options, -1 a bad or missing value (said).
static int s_take_option (const s_command_t *command, const s_option_t *const *options,
                          json_t **values, int argc, char **argv, int *index)
{
    for (size_t slot = 0; options[slot]; slot++) {
        const s_option_t *option = options[slot];
        if (!streq (argv[*index], option->name))
            continue;
        if (option->kind == S_FLAG) {
            json_decref (values[slot]);
            values[slot] = json_true ();
            return 1;
        }
        if (*index + 1 >= argc) {
            char choices[200];
            s_usage_error (
                command, "%s needs a value: %s%s", option->name,
                option->choices ? "" : option->meta,
                option->choices ? s_choices_text (option->choices, choices, sizeof choices) : "");
            return -1;
        }
        *index += 1;
        return s_value (command, option, argv[*index], &values[slot]) == 0 ? 1 : -1;
    }
    return 0;
}

static void s_args_clear (s_args_t *args)
{
    for (size_t slot = 0; slot < S_MAX_OPTIONS + S_MAX_BARE; slot++)
        json_decref (args->values[slot]);
    memset (args, 0, sizeof *args);
}

//  One line of a command's help: the option and what it is for.
static void s_option_help (const s_option_t *option)
{
    char name[64], choices[200];
    bool dashed = *option->name == '-';
    snprintf (name, sizeof name, "%s%s%s", option->name, dashed && option->meta ? " " : "",
              dashed && option->meta ? option->meta : "");
    printf ("    %-24s%s", name, option->help);
    if (option->choices) {
        s_choices_text (option->choices, choices, sizeof choices);
        bool fits = 28 + strlen (option->help) + 2 + strlen (choices) <= 80;
        printf (":%s%s", fits ? " " : "\n                              ", choices);
    }
    printf ("\n");
}

static void s_command_help (const s_command_t *command)
{
    printf ("usage: matterlink [global options] COMMAND, where COMMAND is\n");
    s_print_synopsis (stdout, command);
    for (size_t slot = 0; command->options[slot]; slot++)
        s_option_help (command->options[slot]);
    for (size_t slot = 0; command->bare[slot]; slot++)
        s_option_help (command->bare[slot]);
    printf ("Global options: see 'matterlink --help'. More in docs/admin-api.md.\n");
}

//  Read a command's arguments against its row (global options into globals). Returns 0, or the exit
//  code (after saying why): 2 for a usage error, or -1 when it only printed help.
static int s_parse (const s_command_t *command, int argc, char **argv, s_args_t *args,
                    json_t **globals)
{
    memset (args, 0, sizeof *args);
    args->command = command;
    const char *bare[64];
    size_t bare_count = 0;
    bool options_end = false;
    for (int index = 0; index < argc; index++) {
        const char *word = argv[index];
        if (!options_end && streq (word, "--")) {
            options_end = true;
            continue;
        }
        if (!options_end && (streq (word, "-h") || streq (word, "--help"))) {
            s_command_help (command);
            return -1;
        }
        if (!options_end && word[0] == '-' && word[1]) {
            int taken = s_take_option (command, command->options, args->values, argc, argv, &index);
            //  The options before the command may come after it too.
            if (taken == 0)
                taken = s_take_option (command, s_global_options, globals, argc, argv, &index);
            if (taken < 0)
                return S_EXIT_USAGE;
            if (taken == 0) {
                s_usage_error (command, "%s: unknown option '%.64s'", command->name, word);
                return S_EXIT_USAGE;
            }
        } else if (bare_count < sizeof bare / sizeof bare[0])
            bare[bare_count++] = word;
        else {
            s_usage_error (command, "too many arguments");
            return S_EXIT_USAGE;
        }
    }
    size_t used = 0;
    for (size_t slot = 0; command->bare[slot] && used < bare_count; slot++) {
        const s_option_t *option = command->bare[slot];
        int rc = 0;
        if (option->rest) {
            //  Every remaining word, so "search king motors" needs no quotes.
            zchunk_t *joined = zchunk_new (NULL, 0);
            for (; used < bare_count; used++)
                zchunk_extend (joined, bare[used], strlen (bare[used]) + 1);
            char *text = (char *)zchunk_data (joined);
            for (size_t byte = 0; byte + 1 < zchunk_size (joined); byte++)
                text[byte] = text[byte] ? text[byte] : ' ';
            rc = s_value (command, option, text, &args->values[S_MAX_OPTIONS + slot]);
            zchunk_destroy (&joined);
        } else
            rc = s_value (command, option, bare[used++], &args->values[S_MAX_OPTIONS + slot]);
        if (rc != 0)
            return S_EXIT_USAGE;
    }
    if (used < bare_count) {
        s_usage_error (command, "unexpected argument '%.64s'", bare[used]);
        return S_EXIT_USAGE;
    }
    for (int slot = 0; slot < command->bare_required; slot++)
        if (!args->values[S_MAX_OPTIONS + slot]) {
            s_usage_error (command, "%s needs %s", command->name, command->bare[slot]->name);
            return S_EXIT_USAGE;
        }
    //  Options the command cannot do without.
    for (const char *cursor = command->required ? command->required : ""; *cursor;) {
        size_t length = strcspn (cursor, " ");
        bool given = false;
        for (size_t slot = 0; command->options[slot]; slot++)
            if (strlen (command->options[slot]->name) == length &&
                strncmp (command->options[slot]->name, cursor, length) == 0)
                given = args->values[slot] != NULL;
        if (!given) {
            s_usage_error (command, "%s needs %.*s", command->name, (int)length, cursor);
            return S_EXIT_USAGE;
        }
        cursor += length + (cursor[length] == ' ');
    }
    return 0;
}

//  The value of an option or bare argument by name (borrowed), or NULL if not given.
static json_t *s_arg (const s_args_t *args, const char *name)
{
    const s_command_t *command = args->command;
    for (size_t slot = 0; command->options[slot]; slot++)
        if (streq (command->options[slot]->name, name))
            return args->values[slot];
    for (size_t slot = 0; command->bare[slot]; slot++)
        if (streq (command->bare[slot]->name, name))
            return args->values[S_MAX_OPTIONS + slot];
    return NULL;
}

static const char *s_arg_text (const s_args_t *args, const char *name)
{
    return json_string_value (s_arg (args, name));
}

//  The request the command line describes: the op, and every option and bare argument
//  that names a request member (new reference).
static json_t *s_request_new (const s_args_t *args)
{
    const s_command_t *command = args->command;
    json_t *request = json_pack ("{s:s}", "op", command->op);
    for (size_t slot = 0; command->options[slot]; slot++)
        if (command->options[slot]->key && args->values[slot])
            json_object_set (request, command->options[slot]->key, args->values[slot]);
    for (size_t slot = 0; command->bare[slot]; slot++)
        if (command->bare[slot]->key && args->values[S_MAX_OPTIONS + slot])
            json_object_set (request, command->bare[slot]->key, args->values[S_MAX_OPTIONS + slot]);
    return request;
}

//  ---------------------------------------------------------------------------------------
//  Talking to the core

static int s_connect (s_cli_t *cli)
{
    if (cli->socket)
        return 0;
    if (!cli->admin) {
        char error[600];
        cli->config = ml_config_load (cli->config_path, error, sizeof error);
        if (!cli->config) {
            s_error ("%s (or give --admin ENDPOINT)", error);
            return S_EXIT_USAGE;
        }
        cli->admin = ml_config_string (cli->config, "admin/endpoint", NULL);
        if (ml_config_error (cli->config)) {
            s_error ("%s", ml_config_error (cli->config));
            return S_EXIT_USAGE;
        }
    }
    cli->socket = zsock_new (ZMQ_REQ);
    assert (cli->socket);
    zsock_set_linger (cli->socket, 0);
    //  Only a connection made takes a request, so with no core to connect to the send fails
    //  and the request has certainly gone nowhere (which matters for a card payment).
    zsock_set_immediate (cli->socket, 1);
    if (zsock_connect (cli->socket, "%s", cli->admin) != 0) {
        s_error ("'%s' is not a valid admin endpoint", cli->admin);
        zsock_destroy (&cli->socket);
        return S_EXIT_USAGE;
    }
    return 0;
}

//  Free a request's text, wiped first: it may hold a card. hint is its size.
static void s_wipe_free (void *data, void *hint)
{
    explicit_bzero (data, (size_t)(uintptr_t)hint);
    free (data);
}

//  Send text (a request; steals it) and wait for the reply: up to --timeout, else long
//  enough for the core to wait wait_ms for the firm's agent or the card processor. libzmq
//  sends text itself, not a copy, and wipes it when done. Sets cli->sent. Returns 0 with
//  *reply set (new reference, ok or not), or the exit code after saying why: 2 no usable
//  endpoint, 3 no answer.
static int s_exchange_text (s_cli_t *cli, char *text, int wait_ms, json_t **reply)
{
    *reply = NULL;
    cli->sent = false;
    assert (text);
    size_t size = strlen (text);
    int code = s_connect (cli);
    if (code) {
        s_wipe_free (text, (void *)(uintptr_t)(size + 1));
        return code;
    }
    int timeout = cli->timeout_ms;
    if (!timeout)
        timeout = wait_ms + S_TIMEOUT_SLACK_MS > S_TIMEOUT_MS ? wait_ms + S_TIMEOUT_SLACK_MS
                                                              : S_TIMEOUT_MS;
    //  A running core takes the request at once; only its answer may take long.
    int send_timeout = cli->timeout_ms ? cli->timeout_ms : S_TIMEOUT_MS;
    zsock_set_sndtimeo (cli->socket, send_timeout);
    zsock_set_rcvtimeo (cli->socket, timeout);
    zmq_msg_t message;
    int rc = zmq_msg_init_data (&message, text, size, s_wipe_free, (void *)(uintptr_t)(size + 1));
    assert (rc == 0);
    rc = zmq_msg_send (&message, zsock_resolve (cli->socket), 0);
    if (rc < 0)
        zmq_msg_close (&message);
    cli->sent = rc >= 0;
    char *answer = cli->sent ? zstr_recv (cli->socket) : NULL;
    if (!answer) {
        timeout = cli->sent ? timeout : send_timeout;
        s_error ("the core does not answer at %s within %d ms (is matterlink-core running?)",
                 cli->admin, timeout);
        return S_EXIT_UNREACHABLE;
    }
    *reply = json_loads (answer, 0, NULL);
    zstr_free (&answer);
    if (!*reply || !json_is_object (*reply)) {
        json_decref (*reply);
        *reply = NULL;
        s_error ("the core's reply is not JSON");
        return S_EXIT_UNREACHABLE;
    }
    return 0;
}

//  As s_exchange_text, with request as JSON (steals it).
static int s_exchange (s_cli_t *cli, json_t *request, int wait_ms, json_t **reply)
{
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    return s_exchange_text (cli, text, wait_ms, reply);
}

//  As s_exchange_text, but a refusal is said (prefixed with context when not NULL) and
//  returns 1; *reply is set only on success.
static int s_ask_text (s_cli_t *cli, char *text, int wait_ms, const char *context, json_t **reply)
{
    int code = s_exchange_text (cli, text, wait_ms, reply);
    if (code == 0 && !json_is_true (json_object_get (*reply, "ok"))) {
        s_error ("%s%s%s", context ? context : "", context ? ": " : "", s_text (*reply, "error"));
        json_decref (*reply);
        *reply = NULL;
        code = S_EXIT_REFUSED;
    }
    return code;
}

//  As s_ask_text, with request as JSON (steals it).
static int s_ask (s_cli_t *cli, json_t *request, int wait_ms, const char *context, json_t **reply)
{
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    return s_ask_text (cli, text, wait_ms, context, reply);
}

//  How long the core waits for the agent's answer to one search, in ms.
static int s_deadline (const s_args_t *args)
{
    json_t *deadline = s_arg (args, "--deadline");
    return deadline ? (int)json_integer_value (deadline) : ML_FINDER_DEADLINE_MS;
}

//  How long the core may wait on this command's request, for the firm's agent or the card
//  processor, in ms.
static int s_core_wait (const s_args_t *args)
{
    unsigned flags = args->command->flags;
    return flags & S_CALLS_PROCESSOR ? S_PROCESSOR_WAIT_MS
           : flags & S_WAITS_TWICE   ? 2 * s_deadline (args)
           : flags & S_WAITS         ? s_deadline (args)
                                     : 0;
}

//  The staff user: --staff, else $MATTERLINK_STAFF, else $SUDO_USER (whoever ran sudo -u
//  matterlink), else the login name. NULL when there is none.
static const char *s_staff (s_cli_t *cli)
{
    if (cli->staff)
        return cli->staff;
    const char *sources[] = {getenv ("MATTERLINK_STAFF"), getenv ("SUDO_USER")};
    for (size_t index = 0; index < 2; index++)
        if (sources[index] && *sources[index])
            return sources[index];
    struct passwd *entry = getpwuid (getuid ());
    return entry && entry->pw_name && *entry->pw_name ? entry->pw_name : NULL;
}

//  Add "staff" to request. With required, no usable name is a usage error (2).
static int s_add_staff (s_cli_t *cli, const s_command_t *command, json_t *request, bool required)
{
    const char *staff = s_staff (cli);
    json_t *name =
        staff && strlen (staff) <= 64 && s_is_printable (staff) ? json_string (staff) : NULL;
    if (name)
        json_object_set_new (request, "staff", name);
    else if (required) {
        s_usage_error (command,
                       "no usable staff name (1 to 64 bytes of printable UTF-8): give --staff "
                       "NAME or set MATTERLINK_STAFF");
        return S_EXIT_USAGE;
    }
    return 0;
}

//  Without --firm, the core's only firm: asks status. Several firms are a usage error.
static int s_fill_firm (s_cli_t *cli, const s_command_t *command, json_t *request)
{
    if (json_object_get (request, "firm"))
        return 0;
    json_t *reply = NULL;
    int code = s_ask (cli, json_pack ("{s:s}", "op", "status"), 0, NULL, &reply);
    if (code)
        return code;
    json_t *firms = json_object_get (reply, "firms");
    if (json_array_size (firms) == 1)
        json_object_set (request, "firm", json_object_get (json_array_get (firms, 0), "firm_id"));
    else if (json_array_size (firms) == 0) {
        s_error ("the core has no firms registered yet (matterlink-core register-agent)");
        code = S_EXIT_REFUSED;
    } else {
        char list[512] = "";
        size_t index;
        json_t *firm;
        json_array_foreach (firms, index, firm)
        {
            size_t used = strlen (list);
            snprintf (list + used, sizeof list - used, "%s%s", index ? ", " : "",
                      s_text (firm, "firm_id"));
        }
        s_usage_error (command, "say which firm with --firm: the core has %s", list);
        code = S_EXIT_USAGE;
    }
    json_decref (reply);
    return code;
}

//  The usual request: built from the command line, prepared, and completed with the firm
//  and staff. Returns 0 with *request (new reference) or the exit code.
static int s_request_build (s_cli_t *cli, const s_args_t *args, json_t **request)
{
    const s_command_t *command = args->command;
    *request = s_request_new (args);
    int code = command->flags & S_SENDS_STAFF ? s_add_staff (cli, command, *request, false) : 0;
    if (!code && command->prepare)
        code = command->prepare (cli, args, *request);
    if (!code && command->flags & S_NEEDS_FIRM)
        code = s_fill_firm (cli, command, *request);
    if (code) {
        json_decref (*request);
        *request = NULL;
    }
    return code;
}

//  The usual steps: build the request and ask. Returns 0 with *reply (new reference) or the
//  exit code.
static int s_request (s_cli_t *cli, const s_args_t *args, json_t **reply)
{
    *reply = NULL;
    json_t *request = NULL;
    int code = s_request_build (cli, args, &request);
    return code ? code : s_ask (cli, request, s_core_wait (args), NULL, reply);
}

static int s_run_usual (s_cli_t *cli, const s_args_t *args)
{
    json_t *reply = NULL;
    int code = s_request (cli, args, &reply);
    if (code)
        return code;
    if (cli->json || !args->command->print)
        s_print_json (reply);
    else
        code = args->command->print (cli, args, reply);
    json_decref (reply);
    return code;
}

//  ---------------------------------------------------------------------------------------
//  Tables

#define S_RIGHT 1 //  right-aligned
#define S_MONEY 2 //  an amount in minor units of the row's "currency"
#define S_FILL  4 //  takes the rest of the terminal's width (40 when not a terminal)

typedef struct {
    const char *header;
    const char *key; //  the row member shown
    unsigned flags;
    int width; //  at least this wide
    int cap;   //  at most this wide (longer values are cut), or 0
} s_column_t;

//  Width in characters of UTF-8 text (every character one column).
static size_t s_chars (const char *text)
{
    size_t count = 0;
    for (; *text; text++)
        count += ((unsigned char)*text & 0xc0) != 0x80;
    return count;
}

static const char *s_cell (json_t *row, const s_column_t *column, char *buf, size_t size)
{
    json_t *value = json_object_get (row, column->key);
    if (column->flags & S_MONEY)
        return value ? ml_money_format (json_integer_value (value), s_text (row, "currency"), buf,
                                        size)
                     : "";
    if (json_is_integer (value))
        snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    else
        snprintf (buf, size, "%s", json_is_string (value) ? json_string_value (value) : "");
    return buf;
}

//  One cell: cut to width characters and padded.
static void s_put_cell (FILE *stream, const char *text, size_t width, bool right)
{
    size_t bytes = 0, chars = 0;
    while (text[bytes] && chars < width) {
        chars++;
        bytes++;
        while (((unsigned char)text[bytes] & 0xc0) == 0x80)
            bytes++;
    }
    if (right)
        fprintf (stream, "%*s", (int)(width - chars), "");
    s_put_clean (stream, text, bytes);
    if (!right)
        fprintf (stream, "%*s", (int)(width - chars), "");
}

static int s_terminal_width (void)
{
    struct winsize size;
    if (isatty (STDOUT_FILENO) && ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col)
        return size.ws_col;
    return 0;
}

//  Rows (an array of objects) as a table with a header, each line indented.
static void s_print_table (json_t *rows, const s_column_t *columns, size_t count, int indent)
{
    assert (count <= S_MAX_COLUMNS);
    size_t widths[S_MAX_COLUMNS];
    char buf[512];
    int others = 0;
    size_t fill = count;
    for (size_t column = 0; column < count; column++) {
        size_t width = s_chars (columns[column].header);
        if ((size_t)columns[column].width > width)
            width = (size_t)columns[column].width;
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            size_t chars = s_chars (s_cell (row, &columns[column], buf, sizeof buf));
            width = chars > width ? chars : width;
        }
        if (columns[column].cap && width > (size_t)columns[column].cap)
            width = (size_t)columns[column].cap;
        widths[column] = width;
        if (columns[column].flags & S_FILL)
            fill = column;
        else
            others += (int)width + 1;
    }
    if (fill < count) {
        int terminal = s_terminal_width ();
        int room = terminal ? terminal - indent - others : 40;
        room = room < 16 ? 16 : room;
        if (widths[fill] > (size_t)room)
            widths[fill] = (size_t)room;
    }
    for (size_t index = 0; index <= json_array_size (rows); index++) {
        json_t *row = index ? json_array_get (rows, index - 1) : NULL;
        char *line = NULL;
        size_t size = 0;
        FILE *stream = open_memstream (&line, &size);
        assert (stream);
        fprintf (stream, "%*s", indent, "");
        for (size_t column = 0; column < count; column++) {
            const char *text =
                row ? s_cell (row, &columns[column], buf, sizeof buf) : columns[column].header;
            fprintf (stream, "%s", column ? " " : "");
            s_put_cell (stream, text, widths[column], columns[column].flags & S_RIGHT);
        }
        fclose (stream);
        while (size > 0 && line[size - 1] == ' ')
            size--;
        printf ("%.*s\n", (int)size, line);
        free (line);
    }
}

#define S_TABLE(rows, columns, indent)                                                             \
    s_print_table (rows, columns, sizeof columns / sizeof columns[0], indent)

//  Open items of the core's replica: the order pay allocates in.
static const s_column_t s_open_item_columns[] = {
    {"Invoice", "invoice_number", 0, 14, 0},
    {"Date", "invoice_date", 0, 10, 0},
    {"Client", "client_number", 0, 10, 0},
    {"Matter", "matter_number", 0, 12, 0},
    {"Client name", "client_name", 0, 28, 28},
    {"Balance", "balance_minor", S_RIGHT | S_MONEY, 16, 0},
    {"Available", "available_minor", S_RIGHT | S_MONEY, 16, 0},
};

//  Rows a search of the firm's matter database found.
static const s_column_t s_found_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Invoice", "invoice_number", 0, 0, 0},
    {"Date", "invoice_date", 0, 10, 0},
    {"Due", "due_date", 0, 10, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},
    {"Description", "matter_description", S_FILL, 0, 0},
    {"Balance", "balance_minor", S_RIGHT | S_MONEY, 12, 0},
};

static const s_column_t s_trust_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},
    {"Description", "matter_description", S_FILL, 0, 0},
    {"Balance", "balance_minor", S_RIGHT | S_MONEY, 12, 0},
};

static const s_column_t s_payer_columns[] = {
    {"Payer", "payer_id", S_RIGHT, 0, 0}, {"Firm", "firm_id", 0, 0, 0}, {"Name", "name", 0, 0, 32},
    {"E-mail", "email", 0, 0, 40},        {"Phone", "phone", 0, 0, 0},
};

static const s_column_t s_association_columns[] = {
    {"ID", "association_id", S_RIGHT, 0, 0}, {"Level", "level", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},    {"Description", "matter_description", 0, 0, 30},
    {"Invoice", "invoice_number", 0, 0, 0},  {"Added", "created_at", 0, 0, 10},
    {"By", "created_by", 0, 0, 16},
};

//  ---------------------------------------------------------------------------------------
//  Firms, open items, payments and postings

static int s_print_status (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    size_t index;
    json_t *firm;
    json_t *firms = json_object_get (reply, "firms");
    if (json_array_size (firms) == 0)
        printf ("No firms registered (matterlink-core register-agent).\n");
    json_array_foreach (firms, index, firm)
    {
        char money[64];
        printf ("Firm %s (%s)\n", s_text (firm, "firm_id"), s_text (firm, "name"));
        printf ("  agent:           %s\n",
                json_is_true (json_object_get (firm, "agent_online")) ? "online" : "offline");
        printf ("  replica:         %s, at change %lld\n",
                s_integer (firm, "complete") ? "complete" : "waiting for snapshot",
                s_integer (firm, "cursor"));
        const char *currency = s_text (firm, "open_balance_currency");
        if (streq (currency, "mixed") || !*currency)
            printf ("  open invoices:   %lld%s\n", s_integer (firm, "invoice_count"),
                    *currency ? " (in several currencies)" : "");
        else
            printf ("  open invoices:   %lld, %s outstanding\n", s_integer (firm, "invoice_count"),
                    s_money (firm, "open_balance_minor", currency, money, sizeof money));
        printf ("  trust ledgers:   %lld\n", s_integer (firm, "trust_ledger_count"));
        printf ("  postings:        %lld posted, %lld waiting, %lld rejected\n",
                s_integer (firm, "posted_posting_count"),
                s_integer (firm, "unanswered_posting_count"),
                s_integer (firm, "rejected_posting_count"));
    }
    return 0;
}

static int s_print_open_items (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *items = json_object_get (reply, "items");
    S_TABLE (items, s_open_item_columns, 0);
    printf ("%zu open invoice%s\n", json_array_size (items),
            json_array_size (items) == 1 ? "" : "s");
    return 0;
}

static int s_print_postings (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *postings = json_object_get (reply, "postings");
    printf ("%-36s %-10s %-10s %16s %-10s %s\n", "Posting", "Received", "Client", "Amount",
            "Status", "Receipt / reason");
    size_t index;
    json_t *posting;
    json_array_foreach (postings, index, posting)
    {
        char amount[64];
        printf (
            "%-36s %-10s %-10s %16s %-10s %s\n", s_text (posting, "posting_uuid"),
            s_text (posting, "received_on"), s_text (posting, "client_number"),
            s_money (posting, "amount_minor", s_text (posting, "currency"), amount, sizeof amount),
            s_text (posting, "status"),
            *s_text (posting, "receipt_id") ? s_text (posting, "receipt_id")
                                            : s_text (posting, "reason"));
    }
    return 0;
}

static int s_print_posting (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *posting = json_object_get (reply, "posting");
    char money[64];
    const char *currency = s_text (posting, "currency");
    printf ("Posting %s\n", s_text (posting, "posting_uuid"));
    printf ("  status:          %s%s%s\n", s_text (posting, "status"),
            *s_text (posting, "reason") ? ": " : "", s_text (posting, "reason"));
    if (*s_text (posting, "receipt_id"))
        printf ("  receipt:         %s (in the matter system)\n", s_text (posting, "receipt_id"));
    printf ("  firm / client:   %s / %s\n", s_text (posting, "firm_id"),
            s_text (posting, "client_number"));
    printf ("  amount:          %s into account %s, received %s\n",
            s_money (posting, "amount_minor", currency, money, sizeof money),
            s_text (posting, "account_number"), s_text (posting, "received_on"));
    if (*s_text (posting, "payer_name") || *s_text (posting, "payer_email"))
        printf ("  payer:           %s %s\n", s_text (posting, "payer_name"),
                s_text (posting, "payer_email"));
    if (*s_text (posting, "ar_message"))
        printf ("  A/R message:     %s\n", s_text (posting, "ar_message"));
    printf ("  allocation:\n");
    size_t index;
    json_t *line;
    json_array_foreach (json_object_get (posting, "lines"), index, line)
    {
        printf ("    %-6s %-16s %16s\n", streq (s_text (line, "kind"), "T") ? "trust" : "invoice",
                s_text (line, "reference"),
                s_money (line, "amount_minor", currency, money, sizeof money));
    }
    printf ("  history:\n");
    json_t *event;
    json_array_foreach (json_object_get (posting, "history"), index, event)
    {
        printf ("    %s  %-10s %s\n", s_text (event, "at"), s_text (event, "status"),
                s_text (event, "detail"));
    }
    return 0;
}

//  Poll a posting until it is posted or rejected. Returns an exit code.
static int s_wait (s_cli_t *cli, const char *uuid, int seconds)
{
    int64_t deadline = zclock_mono () + (int64_t)seconds * 1000;
    int code = S_EXIT_WAIT;
    while (zclock_mono () < deadline) {
        json_t *reply = NULL;
        int rc = s_exchange (cli, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid),
                             0, &reply);
        if (rc) {
            code = rc;
            break;
        }
        json_t *posting = json_object_get (reply, "posting");
        const char *status = s_text (posting, "status");
        if (streq (status, "posted") || streq (status, "rejected")) {
            if (cli->json)
                s_print_json (reply);
            else if (streq (status, "posted"))
                printf ("Posted: the matter system recorded receipt %s.\n",
                        s_text (posting, "receipt_id"));
            else
                printf ("Rejected by the matter system: %s\n", s_text (posting, "reason"));
            code = streq (status, "posted") ? 0 : S_EXIT_REFUSED;
            json_decref (reply);
            break;
        }
        json_decref (reply);
        zclock_sleep (200);
    }
    if (code == S_EXIT_WAIT)
        s_error ("posting %s is not final after %d s (it stays queued and is delivered when the "
                 "agent is reachable)",
                 uuid, seconds);
    return code;
}

static int s_run_pay (s_cli_t *cli, const s_args_t *args)
{
    json_t *reply = NULL;
    int code = s_request (cli, args, &reply);
    if (code)
        return code;
    int wait_seconds = (int)json_integer_value (s_arg (args, "--wait"));
    if (!cli->json) {
        char money[64];
        const char *currency = s_text (reply, "currency");
        printf ("Payment of %s for client %s recorded as posting %s\n",
                s_money (reply, "amount_minor", currency, money, sizeof money),
                s_text (reply, "client_number"), s_text (reply, "posting_uuid"));
        printf ("  %-16s %16s\n", "Invoice", "Applied");
        size_t index;
        json_t *line;
        json_array_foreach (json_object_get (reply, "lines"), index, line)
        {
            printf ("  %-16s %16s\n", s_text (line, "invoice_number"),
                    s_money (line, "amount_minor", currency, money, sizeof money));
        }
    } else if (!wait_seconds)
        s_print_json (reply);
    if (wait_seconds)
        code = s_wait (cli, s_text (reply, "posting_uuid"), wait_seconds);
    json_decref (reply);
    return code;
}

//  ---------------------------------------------------------------------------------------
//  Searches and what a payer sees

//  The search criteria members the options cannot give directly: the target, the amounts
//  in minor units; and the checks that need several options. Shared by search, view-as
//  and "association add --level".
static int s_prepare_criteria (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    const s_command_t *command = args->command;
    const char *currency = s_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    const char *bounds[][2] = {{"--min", "amount_min"}, {"--max", "amount_max"}};
    int64_t amounts[2] = {-1, -1};
    for (size_t bound = 0; bound < 2; bound++) {
        const char *text = s_arg_text (args, bounds[bound][0]);
        const char *problem = NULL;
        if (!text)
            continue;
        if (ml_money_parse (text, currency, &amounts[bound], &problem) == 0 && amounts[bound] < 0)
            problem = "below zero";
        if (problem) {
            s_usage_error (command, "%s '%s' is not an amount in %s (like 250.00): %s",
                           bounds[bound][0], text, currency, problem);
            return S_EXIT_USAGE;
        }
        json_object_set_new (request, bounds[bound][1], json_integer (amounts[bound]));
        json_object_set_new (request, "amount_currency", json_string (currency));
    }
    if (amounts[0] >= 0 && amounts[1] >= 0 && amounts[0] > amounts[1]) {
        s_usage_error (command, "--min is above --max");
        return S_EXIT_USAGE;
    }
    const char *from = s_arg_text (args, "--from"), *to = s_arg_text (args, "--to");
    if (from && to && strcmp (from, to) > 0) {
        s_usage_error (command, "--from is after --to");
        return S_EXIT_USAGE;
    }
    const char *by = s_arg_text (args, "--by"), *status = s_arg_text (args, "--status");
    if (by && !s_arg (args, "TEXT")) {
        s_usage_error (command, "--by %s needs TEXT to look for", by);
        return S_EXIT_USAGE;
    }
    if (s_arg (args, "--remember") && !by) {
        s_usage_error (command, "--remember saves the --by field: give --by FIELD");
        return S_EXIT_USAGE;
    }
    if (s_arg (args, "--remember") && s_add_staff (cli, command, request, true) != 0)
        return S_EXIT_USAGE;
    if (s_arg (args, "--trust")) {
        if ((by && streq (by, "invoice-number")) || from || to ||
            (status && !streq (status, "any"))) {
            s_usage_error (command, "trust ledgers have no invoice number, invoice date or due "
                                    "date: --trust cannot go with --by invoice-number, --from, "
                                    "--to or --status");
            return S_EXIT_USAGE;
        }
        json_object_set_new (request, "target", json_string ("trust"));
    }
    return 0;
}

static int s_prepare_search (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    int code = s_prepare_criteria (cli, args, request);
    //  A payer's view searches the payer's firm.
    if (!code && !s_arg (args, "--as-payer"))
        code = s_fill_firm (cli, args->command, request);
    return code;
}

//  What the search looked for, from the reply: 'open invoices, client-name contains "x"'.
static void s_print_criteria (const s_args_t *args, json_t *reply)
{
    printf ("%s", streq (s_text (reply, "target"), "trust") ? "trust ledgers" : "open invoices");
    if (*s_text (reply, "by")) {
        const char *match = s_text (reply, "match");
        printf (", %s %s \"", s_text (reply, "by"),
                streq (match, "exact")    ? "is"
                : streq (match, "prefix") ? "starts with"
                                          : "contains");
        s_put_clean (stdout, s_text (reply, "text"), SIZE_MAX);
        printf ("\"");
    }
    //  The filters, as typed (the reply does not repeat them).
    const char *status = s_arg_text (args, "--status");
    if (status && !streq (status, "any"))
        printf (", %s", status);
    const char *currency = s_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    const char *filters[][2] = {{"--from", "dated from"},
                                {"--to", "dated up to"},
                                {"--min", "balance from"},
                                {"--max", "balance up to"}};
    for (size_t filter = 0; filter < 4; filter++) {
        const char *text = s_arg_text (args, filters[filter][0]), *problem = NULL;
        char money[64];
        int64_t minor = 0;
        //  The amounts were checked before the search was sent.
        if (text && filter >= 2 && ml_money_parse (text, currency, &minor, &problem) == 0)
            text = ml_money_format (minor, currency, money, sizeof money);
        if (text)
            printf (", %s %s", filters[filter][1], text);
    }
}

//  The rows found, and how to get the next page. Trust ledgers have no invoice columns.
static void s_print_found_rows (json_t *reply)
{
    json_t *items = json_object_get (reply, "items");
    bool trust = streq (s_text (reply, "target"), "trust");
    size_t count = json_array_size (items);
    if (count && trust)
        S_TABLE (items, s_trust_columns, 0);
    else if (count)
        S_TABLE (items, s_found_columns, 0);
    printf ("%zu %s%s\n", count, trust ? "trust ledger" : "open invoice", count == 1 ? "" : "s");
    if (json_is_integer (json_object_get (reply, "next")))
        printf ("More rows match: run the same command with --after %lld for the next page.\n",
                s_integer (reply, "next"));
}

//  A payer's view: the heading names the payer; a payer with no associations sees nothing.
static int s_print_payer_view (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    long long payer_id = s_integer (reply, "payer_id");
    json_t *shown = NULL;
    int code = s_ask (cli, json_pack ("{s:s, s:I}", "op", "payer-show", "payer_id", payer_id), 0,
                      NULL, &shown);
    if (code)
        return code;
    json_t *payer = json_object_get (shown, "payer");
    printf ("As payer %lld (", payer_id);
    s_put_clean (stdout, s_text (payer, "name"), SIZE_MAX);
    printf (") sees it: ");
    s_print_criteria (args, reply);
    printf ("\n");
    if (json_array_size (json_object_get (payer, "associations")) == 0)
        printf ("Payer %lld has no associations, so it sees nothing (matterlink association add "
                "%lld ...).\n",
                payer_id, payer_id);
    else
        s_print_found_rows (reply);
    json_decref (shown);
    return 0;
}

//  A search's rows; a payer's view (view-as, search --as-payer) names the payer.
static int s_print_search (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    if (json_object_get (reply, "payer_id"))
        return s_print_payer_view (cli, args, reply);
    printf ("Firm %s: ", s_text (reply, "firm"));
    s_print_criteria (args, reply);
    printf ("\n");
    s_print_found_rows (reply);
    return 0;
}

static int s_prepare_default_field (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    return s_add_staff (cli, args->command, request, true);
}

static int s_print_default_field (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    const char *staff = s_text (reply, "staff");
    if (s_arg (args, "FIELD"))
        printf ("%s now searches by %s when no --by is given.\n", staff, s_text (reply, "field"));
    else if (json_is_string (json_object_get (reply, "field")))
        printf ("%s searches by %s when no --by is given.\n", staff, s_text (reply, "field"));
    else
        printf ("%s has no default search field: searches without --by look in client-name.\n",
                staff);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Payers and payment methods

static const char *s_method_text (json_t *method, char *buf, size_t size)
{
    snprintf (buf, size, "%s ending %s, expires %02lld/%lld", s_text (method, "brand"),
              s_text (method, "last4"), s_integer (method, "exp_month"),
              s_integer (method, "exp_year"));
    return buf;
}

static void s_print_profile (json_t *payer)
{
    printf ("Payer %lld: ", s_integer (payer, "payer_id"));
    s_put_clean (stdout, s_text (payer, "name"), SIZE_MAX);
    printf ("\n  firm:            %s\n  e-mail:          ", s_text (payer, "firm_id"));
    s_put_clean (stdout, s_text (payer, "email"), SIZE_MAX);
    printf ("\n  phone:           %s\n", *s_text (payer, "phone") ? s_text (payer, "phone") : "-");
    printf ("  added:           %s (changed %s)\n", s_text (payer, "created_at"),
            s_text (payer, "updated_at"));
}

static int s_print_payer (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *payer = json_object_get (reply, "payer");
    if (streq (args->command->name, "payer add"))
        printf ("Added payer %lld.\n", s_integer (payer, "payer_id"));
    else if (streq (args->command->name, "payer edit"))
        printf ("Changed payer %lld.\n", s_integer (payer, "payer_id"));
    s_print_profile (payer);
    return 0;
}

static int s_prepare_payer_edit (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    if (!s_arg (args, "--name") && !s_arg (args, "--email") && !s_arg (args, "--phone")) {
        s_usage_error (args->command, "say what to change: --name, --email or --phone (--phone "
                                      "\"\" removes the phone number)");
        return S_EXIT_USAGE;
    }
    return 0;
}

static int s_print_payer_list (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *payers = json_object_get (reply, "payers");
    size_t count = json_array_size (payers);
    if (count)
        S_TABLE (payers, s_payer_columns, 0);
    json_t *limit = s_arg (args, "--limit");
    printf ("%zu payer%s%s\n", count, count == 1 ? "" : "s",
            count == (size_t)(limit ? json_integer_value (limit) : 100)
                ? " (the first ones: narrow with --text, or raise --limit)"
                : "");
    return 0;
}

static int s_print_payer_show (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *payer = json_object_get (reply, "payer");
    s_print_profile (payer);
    json_t *methods = json_object_get (payer, "methods");
    printf ("  payment methods:%s\n", json_array_size (methods) ? "" : " none");
    size_t index;
    json_t *method;
    json_array_foreach (methods, index, method)
    {
        char text[128];
        printf ("    method %lld: ", s_integer (method, "method_id"));
        s_put_clean (stdout, s_method_text (method, text, sizeof text), SIZE_MAX);
        printf ("\n");
    }
    json_t *associations = json_object_get (payer, "associations");
    if (json_array_size (associations) == 0)
        printf ("  associations:    none, so the payer sees nothing\n");
    else {
        printf ("  associations (what the payer may see and pay):\n");
        S_TABLE (associations, s_association_columns, 4);
    }
    return 0;
}

static int s_prepare_method_add (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    const char *expiry = s_arg_text (args, "--expiry");
    json_object_set_new (request, "exp_month", json_integer (atoi (expiry)));
    json_object_set_new (request, "exp_year", json_integer (atoi (strchr (expiry, '/') + 1)));
    return 0;
}

static int s_print_method (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *method = json_object_get (reply, "method");
    char text[128];
    printf ("Saved payment method %lld for payer %lld: ", s_integer (method, "method_id"),
            s_integer (method, "payer_id"));
    s_put_clean (stdout, s_method_text (method, text, sizeof text), SIZE_MAX);
    printf ("\n");
    return 0;
}

static int s_print_removed (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    printf ("Removed %s %lld.\n",
            streq (args->command->name, "method remove") ? "payment method" : "association",
            s_integer (reply, "removed"));
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Associations

//  The number of a row at a level: its client, matter or invoice number.
static const char *s_level_number (json_t *row, const char *level)
{
    return s_text (row, streq (level, "client")   ? "client_number"
                        : streq (level, "matter") ? "matter_number"
                                                  : "invoice_number");
}

//  What a row (a search row or an association) names at a level, for people:
//  "client C-1 (Smith & Co)", "matter M-7 (Lease; client C-1 Smith & Co)".
static const char *s_describe (json_t *row, const char *level, char *buf, size_t size)
{
    if (streq (level, "client"))
        snprintf (buf, size, "client %s (%s)", s_text (row, "client_number"),
                  s_text (row, "client_name"));
    else if (streq (level, "matter"))
        snprintf (buf, size, "matter %s (%s; client %s %s)", s_text (row, "matter_number"),
                  s_text (row, "matter_description"), s_text (row, "client_number"),
                  s_text (row, "client_name"));
    else {
        //  A search row also says when the invoice was sent and what is left to pay.
        char money[64], balance[80] = "";
        if (json_object_get (row, "balance_minor"))
            snprintf (
                balance, sizeof balance, ", %s open",
                s_money (row, "balance_minor", s_text (row, "currency"), money, sizeof money));
        snprintf (buf, size, "invoice %s%s%s%s (client %s %s, matter %s)",
                  s_text (row, "invoice_number"), *s_text (row, "invoice_date") ? " of " : "",
                  s_text (row, "invoice_date"), balance, s_text (row, "client_number"),
                  s_text (row, "client_name"), s_text (row, "matter_number"));
    }
    return buf;
}

static void s_print_association_added (json_t *association)
{
    char text[700];
    printf ("Added association %lld: payer %lld may see ",
            s_integer (association, "association_id"), s_integer (association, "payer_id"));
    s_put_clean (stdout, s_describe (association, s_text (association, "level"), text, sizeof text),
                 SIZE_MAX);
    printf ("\n");
}

static int s_print_association_list (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *associations = json_object_get (reply, "associations");
    long long payer_id = (long long)json_integer_value (s_arg (args, "PAYER_ID"));
    if (json_array_size (associations) == 0)
        printf ("Payer %lld has no associations, so it sees nothing.\n", payer_id);
    else {
        printf ("Payer %lld may see and pay:\n", payer_id);
        S_TABLE (associations, s_association_columns, 0);
    }
    return 0;
}

//  Create one association by level and number, reported in created, or in refused with
//  the core's reason (said with the level and number when say_which). Returns 0, 1 refused (said),
//  or the exit code of a failed exchange.
static int s_associate (s_cli_t *cli, const s_args_t *args, const char *level, const char *number,
                        bool say_which, json_t *created, json_t *refused)
{
    json_t *request = json_pack ("{s:s, s:O, s:s, s:s}", "op", "association-add", "payer_id",
                                 s_arg (args, "PAYER_ID"), "level", level, "number", number);
    if (s_arg (args, "--deadline"))
        json_object_set (request, "deadline_ms", s_arg (args, "--deadline"));
    s_add_staff (cli, args->command, request, false);
    json_t *reply = NULL;
    int code = s_exchange (cli, request, s_core_wait (args), &reply);
    if (code)
        return code;
    if (json_is_true (json_object_get (reply, "ok"))) {
        json_t *association = json_object_get (reply, "association");
        if (!cli->json)
            s_print_association_added (association);
        json_array_append (created, association);
    } else {
        if (say_which)
            s_error ("%s %s: %s", level, number, s_text (reply, "error"));
        else
            s_error ("%s", s_text (reply, "error"));
        json_array_append_new (refused,
                               json_pack ("{s:s, s:s, s:O}", "level", level, "number", number,
                                          "error", json_object_get (reply, "error")));
        code = S_EXIT_REFUSED;
    }
    json_decref (reply);
    return code;
}

static int s_compare_candidates (const void *left, const void *right)
{
    return strcmp (*(const char *const *)left, *(const char *const *)right);
}

//  Read every page of a search, keeping the first row of each distinct number at the
//  level in candidates (number -> row). Returns 0, or the exit code after saying why.
static int s_collect (s_cli_t *cli, const s_args_t *args, json_t *search, const char *level,
                      json_t *candidates, json_t **first_reply)
{
    json_int_t after = 0;
    for (int page = 0; page < S_PICK_PAGES; page++) {
        json_t *request = json_deep_copy (search);
        json_object_set_new (request, "after", json_integer (after));
        json_t *reply = NULL;
        int code = s_ask (cli, request, s_deadline (args), NULL, &reply);
        if (code)
            return code;
        size_t index;
        json_t *row;
        json_array_foreach (json_object_get (reply, "items"), index, row)
        {
            const char *number = s_level_number (row, level);
            if (*number && !json_object_get (candidates, number))
                json_object_set (candidates, number, row);
        }
        json_t *next = json_object_get (reply, "next");
        after = json_integer_value (next);
        if (first_reply && !*first_reply)
            *first_reply = json_incref (reply);
        json_decref (reply);
        if (!json_is_integer (next))
            return 0;
    }
    s_error ("the search matches more than %d rows; narrow it (--match exact, more TEXT, or "
             "filters)",
             S_PICK_PAGES * S_PICK_PAGE_ROWS);
    return S_EXIT_REFUSED;
}

//  The distinct clients (matters, invoices) a search finds, sorted by number so the same
//  search numbers them the same way: *listed (new reference) holds one row for each.
static int s_find_candidates (s_cli_t *cli, const s_args_t *args, const char *level,
                              json_t **listed)
{
    *listed = json_array ();
    json_t *search = s_request_new (args);
    json_object_set_new (search, "op", json_string ("search"));
    json_object_del (search, "payer_id");
    json_object_set_new (search, "limit", json_integer (S_PICK_PAGE_ROWS));
    s_add_staff (cli, args->command, search, false);
    int code = s_prepare_criteria (cli, args, search);
    //  The payer's firm is the one to search.
    json_t *shown = NULL;
    if (!code)
        code = s_ask (
            cli, json_pack ("{s:s, s:O}", "op", "payer-show", "payer_id", s_arg (args, "PAYER_ID")),
            0, NULL, &shown);
    if (!code)
        json_object_set (search, "firm",
                         json_object_get (json_object_get (shown, "payer"), "firm_id"));
    json_decref (shown);
    json_t *candidates = json_object ();
    json_t *first_reply = NULL;
    if (!code)
        code = s_collect (cli, args, search, level, candidates, &first_reply);
    //  A client or matter may have money in trust and no open invoice: look there too,
    //  unless the criteria are about invoices only.
    const char *by = first_reply ? s_text (first_reply, "by") : "";
    const char *status = s_arg_text (args, "--status");
    if (!code && !streq (level, "invoice") && !s_arg (args, "--trust") &&
        !streq (by, "invoice-number") && !s_arg (args, "--from") && !s_arg (args, "--to") &&
        !(status && !streq (status, "any"))) {
        json_object_set_new (search, "target", json_string ("trust"));
        json_object_set_new (search, "by", json_string (by));
        code = s_collect (cli, args, search, level, candidates, NULL);
    }
    json_decref (first_reply);
    json_decref (search);
    size_t count = json_object_size (candidates), index = 0;
    const char **numbers = calloc (count ? count : 1, sizeof (char *));
    assert (numbers);
    const char *number;
    json_t *row;
    json_object_foreach (candidates, number, row) numbers[index++] = number;
    qsort (numbers, count, sizeof (char *), s_compare_candidates);
    for (index = 0; index < count; index++)
        json_array_append (*listed, json_object_get (candidates, numbers[index]));
    free (numbers);
    json_decref (candidates);
    return code;
}

//  Which candidates to associate (chosen[i] set): the only one, --all, or --pick. Several
//  and no choice: list them and refuse.
static int s_choose (s_cli_t *cli, const s_args_t *args, const char *level, json_t *listed,
                     char *chosen)
{
    size_t count = json_array_size (listed);
    const char *pick = s_arg_text (args, "--pick");
    if (count == 0) {
        s_error ("the search found no %s to associate", level);
        return S_EXIT_REFUSED;
    }
    if (pick) {
        for (const char *cursor = pick; *cursor;) {
            int choice = atoi (cursor);
            cursor += strspn (cursor, "0123456789");
            cursor += *cursor == ',';
            if ((size_t)choice > count) {
                s_usage_error (args->command, "--pick %d: the search found %zu %s%s", choice, count,
                               level, count == 1 ? "" : "s");
                return S_EXIT_USAGE;
            }
            chosen[choice - 1] = 1;
        }
        return 0;
    }
    if (count == 1 || s_arg (args, "--all")) {
        memset (chosen, 1, count);
        return 0;
    }
    if (cli->json) {
        json_t *out = json_pack ("{s:O}", "candidates", listed);
        s_print_json (out);
        json_decref (out);
    } else
        for (size_t index = 0; index < count; index++) {
            char text[700];
            printf ("%3zu. ", index + 1);
            s_put_clean (stdout,
                         s_describe (json_array_get (listed, index), level, text, sizeof text),
                         SIZE_MAX);
            printf ("\n");
        }
    s_error ("the search found %zu %ss: choose with --pick (like --pick 1,3), or --all", count,
             level);
    return S_EXIT_REFUSED;
}

//  "association add PAYER_ID --level L [criteria] TEXT": search, number the distinct
//  clients (matters, invoices) found, and associate the one found or those chosen.
static int s_associate_found (s_cli_t *cli, const s_args_t *args, const char *level)
{
    if (!s_arg (args, "TEXT")) {
        s_usage_error (args->command, "--level needs TEXT to search for (with --by FIELD, or "
                                      "your default search field)");
        return S_EXIT_USAGE;
    }
    if (s_arg (args, "--pick") && s_arg (args, "--all")) {
        s_usage_error (args->command, "give --pick or --all, not both");
        return S_EXIT_USAGE;
    }
    json_t *listed = NULL;
    int code = s_find_candidates (cli, args, level, &listed);
    size_t count = json_array_size (listed);
    char *chosen = calloc (count ? count : 1, 1);
    assert (chosen);
    if (!code)
        code = s_choose (cli, args, level, listed, chosen);
    json_t *created = json_array (), *refused = json_array ();
    for (size_t index = 0; !code && index < count; index++) {
        if (!chosen[index])
            continue;
        const char *number = s_level_number (json_array_get (listed, index), level);
        int rc = s_associate (cli, args, level, number, true, created, refused);
        if (rc && rc != S_EXIT_REFUSED)
            code = rc;
    }
    if (!code && json_array_size (refused))
        code = S_EXIT_REFUSED;
    if (cli->json && (json_array_size (created) || json_array_size (refused))) {
        json_t *out = json_pack ("{s:O, s:O, s:O}", "candidates", listed, "created", created,
                                 "refused", refused);
        s_print_json (out);
        json_decref (out);
    }
    json_decref (created);
    json_decref (refused);
    json_decref (listed);
    free (chosen);
    return code;
}

static int s_run_association_add (s_cli_t *cli, const s_args_t *args)
{
    const s_command_t *command = args->command;
    const s_option_t *direct[] = {&o_association_client, &o_association_matter,
                                  &o_association_invoice};
    const char *level = NULL, *number = NULL;
    for (size_t index = 0; index < 3; index++)
        if (s_arg (args, direct[index]->name)) {
            if (level) {
                s_usage_error (command, "give one of --client, --matter or --invoice");
                return S_EXIT_USAGE;
            }
            level = direct[index]->name + 2;
            number = s_arg_text (args, direct[index]->name);
        }
    if (!level && !s_arg (args, "--level")) {
        s_usage_error (command, "say what to associate: --client, --matter or --invoice NUMBER, "
                                "or --level L with a search (--by FIELD TEXT)");
        return S_EXIT_USAGE;
    }
    if (!level)
        return s_associate_found (cli, args, s_arg_text (args, "--level"));
    //  A number given directly: the options of a search do not go with it.
    for (size_t slot = 0; command->options[slot]; slot++) {
        const s_option_t *option = command->options[slot];
        if (args->values[slot] && option != direct[0] && option != direct[1] &&
            option != direct[2] && option != &o_deadline) {
            s_usage_error (command,
                           "--%s NUMBER names what to associate: %s is for adding from "
                           "a search (--level)",
                           level, option->name);
            return S_EXIT_USAGE;
        }
    }
    if (s_arg (args, "TEXT")) {
        s_usage_error (command,
                       "--%s NUMBER names what to associate: TEXT is for adding from a "
                       "search (--level)",
                       level);
        return S_EXIT_USAGE;
    }
    json_t *created = json_array (), *refused = json_array ();
    int code = s_associate (cli, args, level, number, false, created, refused);
    if (!code && cli->json) {
        json_t *out = json_pack ("{s:O}", "association", json_array_get (created, 0));
        s_print_json (out);
        json_decref (out);
    }
    json_decref (created);
    json_decref (refused);
    return code;
}

//  ---------------------------------------------------------------------------------------
//  Deposit accounts and card payments

static const s_column_t s_account_columns[] = {
    {"Account", "account_number", 0, 0, 0}, {"Type", "account_type", 0, 0, 0},
    {"Currency", "currency", 0, 0, 0},      {"Merchant account", "merchant_account", 0, 0, 0},
    {"Added", "created_at", 0, 0, 10},
};

//  A payment's charges, with what the command adds to each row: the processor's
//  transaction (or, unless approved, the reason) and the posting (an approved charge's).
static const s_column_t s_charge_columns[] = {
    {"Account", "account_number", 0, 0, 0},
    {"Type", "account_type", 0, 0, 0},
    {"Amount", "amount_minor", S_RIGHT | S_MONEY, 12, 0},
    {"Status", "status", 0, 0, 0},
    {"Transaction / reason", "outcome", 0, 0, 0},
    {"Posting", "posting", 0, 0, 0},
};

static int s_print_account (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *account = json_object_get (reply, "account");
    printf ("Added %s account %s in %s for firm %s (merchant account %s).\n",
            s_text (account, "account_type"), s_text (account, "account_number"),
            s_text (account, "currency"), s_text (account, "firm_id"),
            s_text (account, "merchant_account"));
    return 0;
}

static int s_print_account_list (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *accounts = json_object_get (reply, "accounts");
    size_t count = json_array_size (accounts);
    if (count == 0) {
        printf ("No deposit accounts: card payments need them (matterlink account add).\n");
        return 0;
    }
    S_TABLE (accounts, s_account_columns, 0);
    printf ("%zu account%s\n", count, count == 1 ? "" : "s");
    return 0;
}

//  Add the lines of --invoice or --trust ("NUMBER=AMOUNT,NUMBER=AMOUNT") to lines as
//  {member: NUMBER, "amount_minor": N}, each amount typed in currency. An amount may have
//  thousands separators, so a comma ends a line only when an '=' comes before the next one.
//  Returns 0, or 2 after saying what is wrong.
static int s_add_lines (const s_command_t *command, const char *option, const char *member,
                        const char *text, const char *currency, json_t *lines)
{
    char *copy = strdup (text);
    assert (copy);
    int code = 0;
    for (char *cursor = copy; cursor && !code;) {
        char *equals = strchr (cursor, '='), *next = NULL;
        for (char *comma = equals ? strchr (equals, ',') : NULL; comma;
             comma = strchr (comma + 1, ',')) {
            char *sign = strchr (comma + 1, '='), *following = strchr (comma + 1, ',');
            if (sign && (!following || sign < following)) {
                *comma = 0;
                next = comma + 1;
                break;
            }
        }
        const char *number = cursor, *amount_text = equals ? equals + 1 : "", *problem = NULL;
        if (equals)
            *equals = 0;
        int64_t amount = 0;
        if (!equals || !*number || strchr (number, ',') || strlen (number) > 63 ||
            !s_is_printable (number)) {
            s_usage_error (command,
                           "%s takes NUMBER=AMOUNT pairs separated by commas (numbers of 1 to 63 "
                           "bytes), like %s=250.00,%s=40.00",
                           option, streq (member, "invoice") ? "INV-1" : "M-1",
                           streq (member, "invoice") ? "INV-2" : "M-2");
            code = S_EXIT_USAGE;
        } else if (ml_money_parse (amount_text, currency, &amount, &problem) != 0 || amount <= 0) {
            s_usage_error (command, "%s %s: '%s' is not an amount in %s (like 250.00): %s", option,
                           number, amount_text, currency, problem ? problem : "not above zero");
            code = S_EXIT_USAGE;
        }
        size_t index;
        json_t *line;
        json_array_foreach (lines, index, line)
        {
            if (!code && streq (s_text (line, member), number)) {
                s_usage_error (command, "%s names %s twice", option, number);
                code = S_EXIT_USAGE;
            }
        }
        if (!code) {
            json_t *added =
                json_pack ("{s:s, s:I}", member, number, "amount_minor", (json_int_t)amount);
            assert (added);
            json_array_append_new (lines, added);
        }
        cursor = next;
    }
    free (copy);
    return code;
}

static int s_prepare_selection (const s_args_t *args, json_t *request);

//  No option of the command may hold what looks like a card number. Returns 0 or the usage
//  exit code (said).
static int s_no_card_in_options (s_cli_t *cli, const s_args_t *args)
{
    const s_command_t *command = args->command;
    //  A card typed as an option has reached ps and the shell's history already; at least
    //  it goes no further, and the message says where a card belongs.
    const char *carded = cli->staff && s_digit_run (cli->staff) >= S_CARD_DIGITS ? "--staff" : NULL;
    for (size_t slot = 0; !carded && command->options[slot]; slot++) {
        char number[32];
        const char *text = json_string_value (args->values[slot]);
        if (json_is_integer (args->values[slot]))
            text = s_integer_text (args->values[slot], number, sizeof number);
        if (text && s_digit_run (text) >= S_CARD_DIGITS)
            carded = command->options[slot]->name;
    }
    if (carded) {
        s_usage_error (command,
                       "%s looks like it holds a card number. A card never goes on the command "
                       "line, where ps and the shell's history show it: give it with --card-stdin",
                       carded);
        return S_EXIT_USAGE;
    }
    return 0;
}

//  The checks of a charge that need several options, and the request members they make:
//  the card and who pays, then what to pay (s_prepare_selection).
static int s_prepare_charge (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    int refused = s_no_card_in_options (cli, args);
    if (refused)
        return refused;
    const s_command_t *command = args->command;
    bool payer = s_arg (args, "--payer"), method = s_arg (args, "--method");
    bool card = s_arg (args, "--card-stdin"), save = s_arg (args, "--save-method");
    bool named = s_arg (args, "--payer-name") || s_arg (args, "--payer-email");
    const char *problem = NULL;
    if (payer && named)
        problem = "give --payer PAYER_ID, or --payer-name and --payer-email, not both";
    else if (!payer && !(s_arg (args, "--payer-name") && s_arg (args, "--payer-email")))
        problem = "say who pays: --payer PAYER_ID, or --payer-name N and --payer-email E";
    else if (method && card)
        problem = "give --method or --card-stdin, not both";
    else if (method && !payer)
        problem = "--method names a saved card of --payer PAYER_ID";
    else if (!method && !card)
        problem = "say how to pay: --method METHOD_ID (a saved card of --payer) or --card-stdin "
                  "(the card on standard input)";
    else if (s_arg (args, "--save-payer") && payer)
        problem = "--save-payer saves a new payer: give --payer-name and --payer-email";
    else if (save && !(card && (payer || s_arg (args, "--save-payer"))))
        problem = "--save-method saves the card given with --card-stdin for --payer PAYER_ID "
                  "(or with --save-payer)";
    if (problem) {
        s_usage_error (command, "%s", problem);
        return S_EXIT_USAGE;
    }
    return s_prepare_selection (args, request);
}

//  What to pay, for charge and link create: "auto" from --client or --matter with --amount,
//  "lines" from --invoice and --trust, amounts read in --currency (default USD).
static int s_prepare_selection (const s_args_t *args, json_t *request)
{
    const s_command_t *command = args->command;
    const char *problem = NULL;
    if (s_arg (args, "--selection")) {
        //  The selection's lines are the core's: nothing else says what to pay.
        if (s_arg (args, "--client") || s_arg (args, "--matter") || s_arg (args, "--amount") ||
            s_arg (args, "--invoice") || s_arg (args, "--trust")) {
            s_usage_error (command, "pay --selection, or name what to pay, not both");
            return S_EXIT_USAGE;
        }
        return 0;
    }
    const char *client = s_arg_text (args, "--client"), *matter = s_arg_text (args, "--matter");
    const char *amount = s_arg_text (args, "--amount");
    const char *invoices = s_arg_text (args, "--invoice"), *trust = s_arg_text (args, "--trust");
    if (client && matter)
        problem = "give --client or --matter, not both";
    else if ((client || matter) && !amount)
        problem = "--client and --matter need --amount: what to pay over their invoices";
    else if (amount && !client && !matter)
        problem = "--amount is paid over the invoices of --client C or --matter M: give one (or "
                  "name invoices with --invoice NUMBER=AMOUNT)";
    else if (!amount && !invoices && !trust)
        problem = "say what to pay: --client or --matter with --amount, --invoice NUMBER=AMOUNT, "
                  "or --trust MATTER=AMOUNT";
    if (problem) {
        s_usage_error (command, "%s", problem);
        return S_EXIT_USAGE;
    }
    const char *currency = s_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    //  The amounts were read in this currency: the core checks every line is in it.
    json_object_set_new (request, "currency", json_string (currency));
    if (amount) {
        int64_t minor = 0;
        const char *wrong = NULL;
        if (ml_money_parse (amount, currency, &minor, &wrong) == 0 && minor <= 0)
            wrong = "not above zero";
        if (wrong) {
            s_usage_error (command, "--amount '%s' is not an amount in %s (like 250.00): %s",
                           amount, currency, wrong);
            return S_EXIT_USAGE;
        }
        json_object_set_new (request, "auto",
                             json_pack ("{s:s, s:s, s:s}", client ? "client" : "matter",
                                        client ? client : matter, "amount", amount, "currency",
                                        currency));
    }
    json_t *lines = json_array ();
    int code =
        invoices ? s_add_lines (command, "--invoice", "invoice", invoices, currency, lines) : 0;
    if (!code && trust)
        code = s_add_lines (command, "--trust", "trust", trust, currency, lines);
    if (!code && json_array_size (lines) > ML_MAX_LINES) {
        s_usage_error (command, "a payment has at most %d lines (--invoice and --trust)",
                       ML_MAX_LINES);
        code = S_EXIT_USAGE;
    }
    if (!code && json_array_size (lines))
        json_object_set (request, "lines", lines);
    json_decref (lines);
    return code;
}

//  Read one line from standard input into line (size bytes, without the newline), a byte at
//  a time so that no stdio buffer keeps a copy; at a terminal, after a prompt and without
//  echo. Returns 0, or 2 after saying what is wrong (never what was read).
static int s_card_read (const s_command_t *command, char *line, size_t size)
{
    struct termios saved;
    bool terminal = isatty (STDIN_FILENO) && tcgetattr (STDIN_FILENO, &saved) == 0;
    if (terminal) {
        struct termios quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        fputs ("Card (NUMBER MM/YYYY CVC, not shown): ", stderr);
        fflush (stderr);
        tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    size_t used = 0;
    bool ended = false, too_long = false;
    char byte = 0;
    while (!ended && !too_long) {
        ssize_t got = read (STDIN_FILENO, &byte, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (byte == '\n')
            ended = true;
        else if (used + 1 < size)
            line[used++] = byte;
        else
            too_long = true;
    }
    explicit_bzero (&byte, sizeof byte);
    line[used] = 0;
    if (terminal) {
        tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved);
        fputc ('\n', stderr);
    }
    if (too_long)
        s_usage_error (command, "the card line on standard input is longer than %zu bytes",
                       size - 1);
    else if (!ended && used == 0)
        s_usage_error (command, "nothing on standard input: --card-stdin reads one line, "
                                "NUMBER MM/YYYY CVC");
    return too_long || (!ended && used == 0) ? S_EXIT_USAGE : 0;
}

//  Read "NUMBER MM/YYYY CVC" in line: the last two words are the expiry and the CVC, the
//  words before them the number (in groups, with spaces or dashes). Fills number with its
//  digits (20 bytes), *month, *year and cvc (5 bytes). Returns 0, or 2 after saying what is
//  wrong (never what was read). Cuts line into words.
static int s_card_parse (const s_command_t *command, char *line, char *number, int *month,
                         int *year, char *cvc)
{
    char *words[S_CARD_LINE_MAX / 2 + 1];
    size_t count = 0;
    for (char *cursor = line; *cursor;) {
        size_t gap = strspn (cursor, " \t\r");
        cursor += gap;
        if (!*cursor)
            break;
        words[count++] = cursor;
        cursor += strcspn (cursor, " \t\r");
        if (*cursor)
            *cursor++ = 0;
    }
    const char *problem = NULL;
    size_t digits = 0;
    bool other = false;
    for (size_t word = 0; count >= 3 && word < count - 2; word++)
        for (const char *cursor = words[word]; *cursor; cursor++) {
            if (*cursor >= '0' && *cursor <= '9') {
                if (digits < 19)
                    number[digits] = *cursor;
                digits++;
            } else
                other |= *cursor != '-';
        }
    if (count < 3)
        problem = "the card on standard input is one line: the card number, its expiry as "
                  "MM/YYYY and the CVC, separated by spaces";
    else if (other || digits < 12 || digits > 19)
        problem = "the card number on standard input must be 12 to 19 digits (spaces or dashes "
                  "between groups are allowed)";
    else if (!s_is_expiry (words[count - 2]))
        problem = "the card's expiry must be MM/YYYY, like 04/2031";
    else if (!s_is_digits (words[count - 1], 3, 4))
        problem = "the card's CVC must be 3 or 4 digits";
    if (problem) {
        s_usage_error (command, "%s", problem);
        return S_EXIT_USAGE;
    }
    number[digits] = 0;
    *month = atoi (words[count - 2]);
    *year = atoi (strchr (words[count - 2], '/') + 1);
    snprintf (cvc, 5, "%s", words[count - 1]);
    return 0;
}

//  The text of request with the card read from standard input. The card goes into this
//  text only, never into a JSON value (whose copies could not be wiped), and every buffer
//  that held it here is wiped. Sets *text (new: for s_ask_text). Returns 0 or the exit code.
static int s_card_text (const s_command_t *command, json_t *request, char **text)
{
    char line[S_CARD_LINE_MAX + 1], number[20] = "", cvc[5] = "", card[128] = "";
    int month = 0, year = 0;
    *text = NULL;
    int code = s_card_read (command, line, sizeof line);
    if (!code)
        code = s_card_parse (command, line, number, &month, &year, cvc);
    if (!code) {
        char *rest = json_dumps (request, JSON_COMPACT);
        assert (rest && rest[0] == '{' && rest[1] != '}');
        int length = snprintf (card, sizeof card,
                               "{\"card\":{\"number\":\"%s\",\"exp_month\":%d,\"exp_year\":%d,"
                               "\"cvc\":\"%s\"},",
                               number, month, year, cvc);
        assert (length > 0 && (size_t)length < sizeof card);
        size_t rest_size = strlen (rest + 1) + 1;
        *text = malloc ((size_t)length + rest_size);
        assert (*text);
        memcpy (*text, card, (size_t)length);
        memcpy (*text + length, rest + 1, rest_size);
        free (rest);
    }
    explicit_bzero (line, sizeof line);
    explicit_bzero (number, sizeof number);
    explicit_bzero (cvc, sizeof cvc);
    explicit_bzero (card, sizeof card);
    return code;
}

static void s_print_payment (json_t *payment)
{
    printf ("Payment %s: %s\n", s_text (payment, "payment_uuid"), s_text (payment, "status"));
    printf ("  firm / client:   %s / %s\n", s_text (payment, "firm_id"),
            s_text (payment, "client_number"));
    printf ("  payer:           ");
    s_put_clean (stdout, s_text (payment, "payer_name"), SIZE_MAX);
    printf (" ");
    s_put_clean (stdout, s_text (payment, "payer_email"), SIZE_MAX);
    if (s_integer (payment, "payer_id") > 0)
        printf (" (payer %lld)", s_integer (payment, "payer_id"));
    printf ("\n");
    if (!streq (s_text (payment, "receipt_email"), s_text (payment, "payer_email"))) {
        printf ("  receipt to:      ");
        s_put_clean (stdout, s_text (payment, "receipt_email"), SIZE_MAX);
        printf ("\n");
    }
    printf ("  card:            %s ending %s\n", s_text (payment, "brand"),
            s_text (payment, "last4"));
    printf ("  taken:           %s%s", s_text (payment, "created_at"),
            *s_text (payment, "staff") ? " by " : "");
    s_put_clean (stdout, s_text (payment, "staff"), SIZE_MAX);
    printf ("\n  charges:\n");
    json_t *rows = json_array ();
    bool posted = false;
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        json_t *row = json_copy (charge);
        bool approved = streq (s_text (charge, "status"), "approved");
        const char *reason = s_text (charge, "reason");
        json_object_set_new (
            row, "outcome",
            json_string (approved || !*reason ? s_text (charge, "processor_txn") : reason));
        json_object_set_new (row, "posting",
                             json_string (approved ? s_text (charge, "posting_uuid") : ""));
        json_array_append_new (rows, row);
        posted |= approved;
    }
    S_TABLE (rows, s_charge_columns, 4);
    json_decref (rows);
    if (posted)
        printf ("An approved charge's posting goes to the matter system: follow it with "
                "'matterlink posting UUID'.\n");
}

//  The exit code of a payment, with what went wrong said on standard error: 0 every charge
//  approved; 5 the outcome of one is not known yet, even beside a declined one (nothing
//  may be charged again until the core has settled it); 1 otherwise.
static int s_payment_outcome (json_t *payment)
{
    bool approved = false, failed = false, unknown = false;
    size_t index;
    json_t *charge;
    json_t *charges = json_object_get (payment, "charges");
    json_array_foreach (charges, index, charge)
    {
        const char *status = s_text (charge, "status"), *reason = s_text (charge, "reason");
        char money[64];
        s_money (charge, "amount_minor", s_text (charge, "currency"), money, sizeof money);
        if (streq (status, "approved"))
            approved = true;
        else if (streq (status, "declined") || streq (status, "error")) {
            failed = true;
            s_error ("the %s charge of %s into %s was %s%s%s", s_text (charge, "account_type"),
                     money, s_text (charge, "account_number"), status, *reason ? ": " : "", reason);
        } else {
            //  Unknown, or pending (a core that stopped mid-call): the core settles both.
            unknown = true;
            s_error ("the outcome of the %s charge of %s into %s is not known yet%s%s%s",
                     s_text (charge, "account_type"), money, s_text (charge, "account_number"),
                     *reason ? " (" : "", reason, *reason ? ")" : "");
        }
    }
    if (unknown)
        s_error ("the core settles it with the processor, which never charges twice: check with "
                 "'matterlink payment show %s', and do not charge again meanwhile",
                 s_text (payment, "payment_uuid"));
    if (failed && approved)
        s_error ("the approved charges stand, and their postings go to the matter system");
    if (json_array_size (charges) == 0)
        failed = true;
    return unknown ? S_EXIT_UNKNOWN : failed ? S_EXIT_REFUSED : 0;
}

//  Print a payment reply and return its exit code. Destroys reply.
static int s_finish_payment (s_cli_t *cli, json_t *reply)
{
    json_t *payment = json_object_get (reply, "payment");
    if (cli->json)
        s_print_json (reply);
    else
        s_print_payment (payment);
    int code = s_payment_outcome (payment);
    json_decref (reply);
    return code;
}

static int s_run_charge (s_cli_t *cli, const s_args_t *args)
{
    json_t *request = NULL, *reply = NULL;
    char *text = NULL;
    int code = s_request_build (cli, args, &request);
    //  The card is read last, once everything else is known to be right.
    if (!code && s_arg (args, "--card-stdin"))
        code = s_card_text (args->command, request, &text);
    else if (!code)
        text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    if (!code)
        code = s_ask_text (cli, text, s_core_wait (args), NULL, &reply);
    if (code == S_EXIT_UNREACHABLE && cli->sent)
        s_error ("the request reached the core, which may have charged the card all the same: "
                 "check 'matterlink postings' before charging again");
    return code ? code : s_finish_payment (cli, reply);
}

//  One line of the selection: --invoice NUMBER[=AMOUNT] or --trust MATTER=AMOUNT.
static int s_prepare_select (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    const s_command_t *command = args->command;
    const char *invoice = s_arg_text (args, "--invoice"), *trust = s_arg_text (args, "--trust");
    bool adding = streq (command->op, "selection-add");
    if (!invoice == !trust) {
        s_usage_error (command, "name one --invoice or one --trust");
        return S_EXIT_USAGE;
    }
    char number[121];
    snprintf (number, sizeof number, "%s", invoice ? invoice : trust);
    char *equals = strchr (number, '=');
    if (equals)
        *equals = 0;
    if (!*number || strlen (number) > 63 || (equals && !adding) || (trust && adding && !equals)) {
        s_usage_error (command, adding ? "--invoice NUMBER[=AMOUNT] or --trust MATTER=AMOUNT "
                                         "(trust is allocated by hand)"
                                       : "--invoice NUMBER or --trust MATTER");
        return S_EXIT_USAGE;
    }
    json_object_set_new (request, invoice ? "invoice" : "trust", json_string (number));
    if (equals) {
        const char *currency = s_arg_text (args, "--currency");
        int64_t amount = 0;
        const char *wrong = NULL;
        if (ml_money_parse (equals + 1, currency ? currency : "USD", &amount, &wrong) != 0 ||
            amount <= 0) {
            s_usage_error (command, "'%s' is not an amount in %s (like 250.00)", equals + 1,
                           currency ? currency : "USD");
            return S_EXIT_USAGE;
        }
        json_object_set_new (request, "amount_minor", json_integer (amount));
    }
    return 0;
}

static const s_column_t s_selection_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Number", "number", 0, 0, 0},
    {"Amount (minor units)", "amount_minor", S_RIGHT, 12, 0},
};

static int s_print_selection (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *selection = json_object_get (reply, "selection"), *rows = json_array ();
    size_t index;
    json_t *item;
    json_array_foreach (selection, index, item)
    {
        bool invoice = json_object_get (item, "invoice") != NULL;
        json_array_append_new (
            rows, json_pack ("{s:s, s:O, s:O}", "kind", invoice ? "invoice" : "trust", "number",
                             json_object_get (item, invoice ? "invoice" : "trust"), "amount_minor",
                             json_object_get (item, "amount_minor")));
    }
    if (json_array_size (rows) == 0)
        printf ("Your selection is empty.\n");
    else {
        printf ("Your selection (kept until paid or cleared, whatever you search next):\n");
        S_TABLE (rows, s_selection_columns, 2);
    }
    json_decref (rows);
    return 0;
}

//  A rejected posting's new lines.
static int s_prepare_reallocate (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    return s_prepare_selection (args, request);
}

//  A payment link: who pays, what, and until when; no card.
static int s_prepare_link (s_cli_t *cli, const s_args_t *args, json_t *request)
{
    int refused = s_no_card_in_options (cli, args);
    if (refused)
        return refused;
    bool payer = s_arg (args, "--payer");
    bool named = s_arg (args, "--payer-name") && s_arg (args, "--payer-email");
    if (payer == named) {
        s_usage_error (args->command,
                       "say who pays: --payer PAYER_ID, or --payer-name N and --payer-email E");
        return S_EXIT_USAGE;
    }
    return s_prepare_selection (args, request);
}

static const s_column_t s_link_columns[] = {
    {"Link", "link_id", 0, 0, 0},       {"State", "state", 0, 0, 0},
    {"Payer", "payer_name", 0, 0, 24},  {"Created", "created_at", 0, 0, 0},
    {"Expires", "expires_at", 0, 0, 0}, {"Payment", "payment_uuid", 0, 0, 0},
};

static int s_print_links (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *links = json_object_get (reply, "links");
    if (json_array_size (links) == 0)
        printf ("No payment links.\n");
    else
        S_TABLE (links, s_link_columns, 0);
    return 0;
}

static int s_print_link (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *link = json_object_get (reply, "link");
    printf ("Payment link %s: %s, valid until %s\n", s_text (link, "link_id"),
            s_text (link, "state"), s_text (link, "expires_at"));
    printf ("  payer:           ");
    s_put_clean (stdout, s_text (link, "payer_name"), SIZE_MAX);
    printf (" ");
    s_put_clean (stdout, s_text (link, "payer_email"), SIZE_MAX);
    printf ("\n  lines:           ");
    s_put_clean (stdout, s_text (link, "lines"), SIZE_MAX);
    printf ("\n");
    if (*s_text (link, "token"))
        printf (
            "  token:           %s\n"
            "Send the payer their link with this token; it is shown only now (the core keeps\n"
            "only its digest). It can be paid once, within 24 hours, and cancelled until then.\n",
            s_text (link, "token"));
    return 0;
}

static int s_run_payment_show (s_cli_t *cli, const s_args_t *args)
{
    json_t *reply = NULL;
    int code = s_request (cli, args, &reply);
    return code ? code : s_finish_payment (cli, reply);
}

//  Auto-Pay.
static const s_column_t s_schedule_columns[] = {
    {"ID", "schedule_id", S_RIGHT, 0, 0},   {"Name", "name", 0, 0, 24},
    {"Payer", "payer_id", S_RIGHT, 0, 0},   {"Frequency", "frequency", 0, 0, 0},
    {"First", "first_date", 0, 0, 0},       {"Up to", "amount_minor", S_MONEY, 0, 0},
    {"Account", "account_number", 0, 0, 0}, {"On", "enabled", S_RIGHT, 0, 0},
};

static const s_column_t s_run_columns[] = {
    {"Due", "due_date", 0, 0, 0},
    {"Try", "attempt", S_RIGHT, 0, 0},
    {"Ran", "run_on", 0, 0, 0},
    {"Outcome", "status", 0, 0, 0},
    {"Amount", "amount_minor", S_MONEY, 0, 0},
    {"Reason", "reason", 0, 0, 0},
    {"Payment", "payment_uuid", 0, 0, 0},
};

static const s_column_t s_enrollment_columns[] = {
    {"Association", "association_id", S_RIGHT, 0, 0},
    {"Level", "level", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Matter", "matter_number", 0, 0, 0},
    {"Invoice", "invoice_number", 0, 0, 0},
    {"Ended", "ended_at", 0, 0, 0},
    {"Why", "end_reason", 0, 0, 0},
};

static int s_print_schedules (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *schedules = json_object_get (reply, "schedules");
    if (json_array_size (schedules) == 0)
        printf ("No Auto-Pay schedules.\n");
    else
        S_TABLE (schedules, s_schedule_columns, 0);
    return 0;
}

static int s_print_schedule (s_cli_t *cli, const s_args_t *args, json_t *reply)
{
    json_t *schedule = json_object_get (reply, "schedule");
    if (!json_is_object (schedule)) {
        printf ("Done.\n");
        return 0;
    }
    json_t *one = json_pack ("[O]", schedule);
    S_TABLE (one, s_schedule_columns, 0);
    json_decref (one);
    printf ("(Up to 0 means: pay all outstanding.) A/R message: ");
    s_put_clean (stdout, s_text (schedule, "ar_message"), SIZE_MAX);
    printf ("\n");
    json_t *enrollments = json_object_get (schedule, "enrollments");
    json_t *runs = json_object_get (schedule, "runs");
    if (enrollments) {
        printf ("\nEnrolled associations:\n");
        if (json_array_size (enrollments) == 0)
            printf ("  none (enroll with 'matterlink autopay enroll')\n");
        else
            S_TABLE (enrollments, s_enrollment_columns, 2);
    }
    if (runs) {
        printf ("\nRuns:\n");
        if (json_array_size (runs) == 0)
            printf ("  none yet\n");
        else
            S_TABLE (runs, s_run_columns, 2);
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  The commands

static const s_command_t s_commands[] = {
    {.name = "status",
     .op = "status",
     .synopsis = "",
     .summary = "firms, their agents and replicas",
     .print = s_print_status},
    {.name = "open-items",
     .op = "open-items",
     .synopsis = "[--firm F] [--client C] [--matter M]",
     .summary = "open invoices, oldest first",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_client, &o_matter},
     .print = s_print_open_items},
    {.name = "pay",
     .op = "pay",
     .synopsis = "[--firm F] (--client C | --matter M) --amount A [--currency CUR]\n"
                 "      [--payer-name N] [--payer-email E] [--message TEXT] [--account NUMBER]\n"
                 "      [--wait SECONDS]",
     .summary = "pay oldest invoices first and post it",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_client, &o_matter, &o_amount, &o_currency, &o_payer_name,
                 &o_payer_email, &o_message, &o_account, &o_wait},
     .run = s_run_pay},
    {.name = "postings",
     .op = "postings",
     .synopsis = "[--firm F] [--status S] [--limit N]",
     .summary = "postings, newest first",
     .options = {&o_firm, &o_posting_status, &o_posting_limit},
     .print = s_print_postings},
    {.name = "posting",
     .op = "posting",
     .synopsis = "UUID",
     .summary = "one posting, its lines and history",
     .bare = {&o_uuid},
     .bare_required = 1,
     .print = s_print_posting},
    {.name = "resend",
     .op = "resend",
     .synopsis = "UUID",
     .summary = "deliver a posting again",
     .bare = {&o_uuid},
     .bare_required = 1,
     .print = s_print_posting},
    {.name = "account add",
     .op = "account-add",
     .synopsis = "[--firm F] --number N --type TRUST|OPERATING --currency CUR\n"
                 "      --merchant-account M",
     .summary = "add a deposit account, typed for good",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_account_number, &o_account_type, &o_account_currency, &o_merchant},
     .required = "--number --type --currency --merchant-account",
     .print = s_print_account},
    {.name = "account list",
     .op = "account-list",
     .synopsis = "[--firm F]",
     .summary = "a firm's deposit accounts",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm},
     .print = s_print_account_list},
    {.name = "charge",
     .op = "payment",
     .synopsis = "[--firm F] [--client C | --matter M] [--amount A]\n"
                 "      [--invoice NUMBER=AMOUNT[,...]] [--trust MATTER=AMOUNT[,...]]\n"
                 "      [--currency CUR] (--payer PAYER_ID [--method METHOD_ID] |\n"
                 "      --payer-name N --payer-email E) [--card-stdin] [--save-method]\n"
                 "      [--save-payer] [--receipt-email E] [--message TEXT] [--selection]",
     .summary = "charge a card, one charge per account",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF | S_CALLS_PROCESSOR,
     .options = {&o_firm, &o_charge_client, &o_charge_matter, &o_charge_amount, &o_charge_invoice,
                 &o_charge_trust, &o_charge_currency, &o_payer, &o_method, &o_charge_payer_name,
                 &o_charge_payer_email, &o_card_stdin, &o_save_method, &o_receipt_email, &o_message,
                 &o_selection, &o_save_payer},
     .prepare = s_prepare_charge,
     .run = s_run_charge},
    {.name = "select add",
     .op = "selection-add",
     .synopsis = "(--invoice NUMBER[=AMOUNT] | --trust MATTER=AMOUNT) [--currency CUR]",
     .summary = "add to your selection (several searches, one payment)",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF,
     .options = {&o_firm, &o_select_invoice, &o_select_trust, &o_charge_currency},
     .prepare = s_prepare_select,
     .print = s_print_selection},
    {.name = "select list",
     .op = "selection",
     .synopsis = "",
     .summary = "your selection, with amounts as of now",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF,
     .options = {&o_firm},
     .print = s_print_selection},
    {.name = "select remove",
     .op = "selection-remove",
     .synopsis = "(--invoice NUMBER | --trust MATTER)",
     .summary = "take a line out of your selection",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF,
     .options = {&o_firm, &o_select_invoice, &o_select_trust},
     .prepare = s_prepare_select,
     .print = s_print_selection},
    {.name = "select clear",
     .op = "selection-clear",
     .synopsis = "",
     .summary = "empty your selection",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF,
     .options = {&o_firm},
     .print = s_print_selection},
    {.name = "reallocate",
     .op = "reallocate",
     .synopsis = "UUID (--invoice NUMBER=AMOUNT[,...] | --trust MATTER=AMOUNT[,...])\n"
                 "      [--currency CUR]",
     .summary = "put a rejected posting's money on other lines",
     .flags = S_SENDS_STAFF,
     .options = {&o_charge_invoice, &o_charge_trust, &o_charge_currency},
     .bare = {&o_uuid},
     .bare_required = 1,
     .prepare = s_prepare_reallocate,
     .print = s_print_posting},
    {.name = "refund",
     .op = "refund",
     .synopsis = "CHARGE_KEY [--amount A]",
     .summary = "refund a charge; a reversing posting follows",
     .flags = S_SENDS_STAFF | S_CALLS_PROCESSOR,
     .options = {&o_reverse_amount},
     .bare = {&o_charge_key},
     .bare_required = 1},
    {.name = "void",
     .op = "void",
     .synopsis = "CHARGE_KEY",
     .summary = "void a whole charge before it settles",
     .flags = S_SENDS_STAFF | S_CALLS_PROCESSOR,
     .bare = {&o_charge_key},
     .bare_required = 1},
    {.name = "chargeback",
     .op = "chargeback",
     .synopsis = "CHARGE_KEY [--amount A]",
     .summary = "record a chargeback the processor decided",
     .flags = S_SENDS_STAFF,
     .options = {&o_reverse_amount},
     .bare = {&o_charge_key},
     .bare_required = 1},
    {.name = "firm contact",
     .op = "firm-contact",
     .synopsis = "[--firm F] --email E",
     .summary = "where the firm gets notices by e-mail",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_notify_email},
     .required = "--email"},
    {.name = "link create",
     .op = "link-create",
     .synopsis = "[--firm F] [--client C | --matter M] [--amount A]\n"
                 "      [--invoice NUMBER=AMOUNT[,...]] [--trust MATTER=AMOUNT[,...]]\n"
                 "      [--currency CUR] (--payer PAYER_ID | --payer-name N --payer-email E)\n"
                 "      [--receipt-email E] [--message TEXT] [--selection]",
     .summary = "send for payment: a link (24 hours, single use)",
     .flags = S_NEEDS_FIRM | S_SENDS_STAFF,
     .options = {&o_firm, &o_charge_client, &o_charge_matter, &o_charge_amount, &o_charge_invoice,
                 &o_charge_trust, &o_charge_currency, &o_payer, &o_charge_payer_name,
                 &o_charge_payer_email, &o_receipt_email, &o_message, &o_selection},
     .prepare = s_prepare_link,
     .print = s_print_link},
    {.name = "autopay add",
     .op = "autopay-add",
     .synopsis = "--payer P --method M --name N --account NUMBER --frequency F --first DATE\n"
                 "      [--amount A|all] [--day-rule last|next] [--message TEXT]",
     .summary = "add an Auto-Pay schedule for a payer",
     .flags = S_SENDS_STAFF,
     .options = {&o_schedule_payer, &o_schedule_method, &o_schedule_name, &o_account, &o_frequency,
                 &o_first_date, &o_schedule_amount, &o_day_rule, &o_message},
     .required = "--payer --method --name --account --frequency --first",
     .print = s_print_schedule},
    {.name = "autopay edit",
     .op = "autopay-edit",
     .synopsis = "SCHEDULE_ID [--method M] [--name N] [--account NUMBER] [--frequency F]\n"
                 "      [--first DATE] [--amount A|all] [--day-rule last|next] [--message TEXT]",
     .summary = "change a schedule (it then runs from today on)",
     .options = {&o_schedule_method, &o_schedule_name, &o_account, &o_frequency, &o_first_date,
                 &o_schedule_amount, &o_day_rule, &o_message},
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule},
    {.name = "autopay enable",
     .op = "autopay-enable",
     .synopsis = "SCHEDULE_ID",
     .summary = "turn a schedule on (it runs from today on)",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule},
    {.name = "autopay disable",
     .op = "autopay-disable",
     .synopsis = "SCHEDULE_ID",
     .summary = "turn a schedule off",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule},
    {.name = "autopay delete",
     .op = "autopay-delete",
     .synopsis = "SCHEDULE_ID",
     .summary = "delete a schedule (its runs are kept)",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule},
    {.name = "autopay enroll",
     .op = "autopay-enroll",
     .synopsis = "SCHEDULE_ID ASSOCIATION_ID",
     .summary = "enroll one of the payer's associations",
     .bare = {&o_schedule_id, &o_association_id},
     .bare_required = 2,
     .print = s_print_schedule},
    {.name = "autopay unenroll",
     .op = "autopay-unenroll",
     .synopsis = "SCHEDULE_ID ASSOCIATION_ID",
     .summary = "end an enrollment",
     .bare = {&o_schedule_id, &o_association_id},
     .bare_required = 2,
     .print = s_print_schedule},
    {.name = "autopay list",
     .op = "autopay-list",
     .synopsis = "[--firm F] [--payer P]",
     .summary = "a firm's Auto-Pay schedules",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_schedule_payer},
     .print = s_print_schedules},
    {.name = "autopay show",
     .op = "autopay-show",
     .synopsis = "SCHEDULE_ID",
     .summary = "a schedule, its enrollments and its runs",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule},
    {.name = "autopay clock",
     .op = "autopay-clock",
     .synopsis = "DATE",
     .summary = "TEST ONLY: set the scheduler's today (core with MATTERLINK_TEST_CLOCK=1)",
     .flags = S_CALLS_PROCESSOR,
     .bare = {&o_today},
     .bare_required = 1},
    {.name = "link list",
     .op = "link-list",
     .synopsis = "[--firm F] [--state outstanding|paid|cancelled|expired]",
     .summary = "payment links and their states",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_link_state},
     .print = s_print_links},
    {.name = "link cancel",
     .op = "link-cancel",
     .synopsis = "LINK_ID",
     .summary = "cancel an outstanding payment link",
     .bare = {&o_link_id},
     .bare_required = 1,
     .print = s_print_link},
    {.name = "link pay",
     .op = "link-pay",
     .synopsis = "TOKEN --card-stdin",
     .summary = "pay a link as its payer does",
     .flags = S_CALLS_PROCESSOR,
     .options = {&o_card_stdin},
     .bare = {&o_link_token},
     .bare_required = 1,
     .required = "--card-stdin",
     .run = s_run_charge},
    {.name = "payment show",
     .op = "payment-show",
     .synopsis = "PAYMENT_UUID",
     .summary = "a card payment and its charges",
     .bare = {&o_payment_uuid},
     .bare_required = 1,
     .run = s_run_payment_show},
    {.name = "search",
     .op = "search",
     .synopsis = "[--firm F] [--by FIELD] [--match exact|prefix|contains] [--trust]\n"
                 "      [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--min AMOUNT] [--max AMOUNT]\n"
                 "      [--currency CUR] [--status any|overdue|current] [--limit N]\n"
                 "      [--after CURSOR] [--deadline MS] [--remember] [--as-payer PAYER_ID]\n"
                 "      [TEXT]",
     .summary = "search the firm's matter database",
     .flags = S_SENDS_STAFF | S_WAITS,
     .options = {&o_firm, S_CRITERIA, &o_search_limit, &o_after, &o_remember, &o_as_payer},
     .bare = {&o_text},
     .prepare = s_prepare_search,
     .print = s_print_search},
    {.name = "view-as",
     .op = "payer-view",
     .synopsis = "PAYER_ID [--trust] [search options] [TEXT]",
     .summary = "search as a payer sees it",
     .flags = S_SENDS_STAFF | S_WAITS,
     .options = {S_CRITERIA, &o_search_limit, &o_after},
     .bare = {&o_payer_id, &o_text},
     .bare_required = 1,
     .prepare = s_prepare_criteria,
     .print = s_print_search},
    {.name = "default-field",
     .op = "staff-default",
     .synopsis = "[FIELD]",
     .summary = "show or set your default search field",
     .bare = {&o_field},
     .prepare = s_prepare_default_field,
     .print = s_print_default_field},
    {.name = "payer add",
     .op = "payer-add",
     .synopsis = "[--firm F] --name N --email E [--phone P]",
     .summary = "add a payer",
     .flags = S_NEEDS_FIRM,
     .options = {&o_firm, &o_name, &o_email, &o_phone},
     .required = "--name --email",
     .print = s_print_payer},
    {.name = "payer edit",
     .op = "payer-edit",
     .synopsis = "PAYER_ID [--name N] [--email E] [--phone P]",
     .summary = "change a payer's profile",
     .options = {&o_name, &o_email, &o_phone},
     .bare = {&o_payer_id},
     .bare_required = 1,
     .prepare = s_prepare_payer_edit,
     .print = s_print_payer},
    {.name = "payer list",
     .op = "payer-list",
     .synopsis = "[--firm F] [--text T] [--limit N]",
     .summary = "payers; --text finds names, e-mails",
     .options = {&o_firm, &o_list_text, &o_list_limit},
     .print = s_print_payer_list},
    {.name = "payer show",
     .op = "payer-show",
     .synopsis = "PAYER_ID",
     .summary = "a payer, its methods and associations",
     .bare = {&o_payer_id},
     .bare_required = 1,
     .print = s_print_payer_show},
    {.name = "method add",
     .op = "method-add",
     .synopsis = "PAYER_ID --token T --brand B --last4 NNNN --expiry MM/YYYY",
     .summary = "save a card as the processor's token",
     .options = {&o_token, &o_brand, &o_last4, &o_expiry},
     .bare = {&o_payer_id},
     .bare_required = 1,
     .required = "--token --brand --last4 --expiry",
     .prepare = s_prepare_method_add,
     .print = s_print_method},
    {.name = "method remove",
     .op = "method-remove",
     .synopsis = "METHOD_ID",
     .summary = "remove a saved payment method",
     .bare = {&o_method_id},
     .bare_required = 1,
     .print = s_print_removed},
    {.name = "association add",
     .op = "association-add",
     .synopsis = "PAYER_ID (--client C | --matter M | --invoice I)\n"
                 "  association add PAYER_ID --level client|matter|invoice [--by FIELD]\n"
                 "      [--match M] [search filters] [--pick 1,3,... | --all] TEXT",
     .summary = "associate a payer: what it may see",
     .flags = S_SENDS_STAFF | S_WAITS_TWICE,
     .options = {&o_association_client, &o_association_matter, &o_association_invoice, &o_level,
                 S_CRITERIA, &o_pick, &o_all},
     .bare = {&o_payer_id, &o_text},
     .bare_required = 1,
     .run = s_run_association_add},
    {.name = "association list",
     .op = "association-list",
     .synopsis = "PAYER_ID",
     .summary = "what a payer may see and pay",
     .bare = {&o_payer_id},
     .bare_required = 1,
     .print = s_print_association_list},
    {.name = "association remove",
     .op = "association-remove",
     .synopsis = "ASSOCIATION_ID",
     .summary = "remove an association",
     .bare = {&o_association_id},
     .bare_required = 1,
     .print = s_print_removed},
    {.name = NULL}};

static void s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: matterlink [--config FILE | --admin ENDPOINT] [--json] [--timeout MS]\n"
             "                  [--staff NAME] COMMAND [OPTIONS]\n"
             "\n"
             "commands:\n");
    for (const s_command_t *command = s_commands; command->name; command++)
        s_print_synopsis (stream, command);
    fprintf (stream,
             "\n"
             "--firm may be left out when the core has only one firm. The admin endpoint\n"
             "comes from --admin, or admin/endpoint in --config FILE (default:\n"
             "$MATTERLINK_CORE_CONFIG, else /etc/matterlink/core.cfg). --staff defaults to\n"
             "$MATTERLINK_STAFF, else $SUDO_USER, else the login name. Put -- before a TEXT\n"
             "that starts with '-'. A card number is never an argument: 'charge --card-stdin'\n"
             "reads it from standard input. 'matterlink COMMAND --help' shows one command.\n");
}

//  The command named by argv[*index] (and argv[*index + 1] for a group such as "payer"),
//  moving *index past its words; NULL (said) if there is none.
static const s_command_t *s_command_find (int argc, char **argv, int *index)
{
    const char *word = argv[*index];
    const char *next = *index + 1 < argc ? argv[*index + 1] : "";
    size_t length = strlen (word);
    char subcommands[200] = "";
    for (const s_command_t *command = s_commands; command->name; command++) {
        if (streq (command->name, word)) {
            *index += 1;
            return command;
        }
        if (strncmp (command->name, word, length) == 0 && command->name[length] == ' ') {
            const char *subcommand = command->name + length + 1;
            if (streq (subcommand, next)) {
                *index += 2;
                return command;
            }
            size_t used = strlen (subcommands);
            snprintf (subcommands + used, sizeof subcommands - used, "%s%s", used ? ", " : "",
                      subcommand);
        }
    }
    if (*subcommands)
        s_usage_error (NULL, "'%.64s' needs one of: %s", word, subcommands);
    else
        s_usage_error (NULL, "unknown command '%.64s'", word);
    return NULL;
}

#define S_GLOBALS (sizeof s_global_options / sizeof s_global_options[0])

int main (int argc, char *argv[])
{
    s_cli_t cli = {NULL};
    cli.config_path = getenv ("MATTERLINK_CORE_CONFIG");
    if (!cli.config_path)
        cli.config_path = "/etc/matterlink/core.cfg";
    //  The global options' values, in the order of s_global_options.
    json_t *globals[S_GLOBALS] = {NULL};
    int code = 0, index = 1;
    for (; !code && index < argc && argv[index][0] == '-'; index++) {
        if (streq (argv[index], "-h") || streq (argv[index], "--help")) {
            s_usage (stdout);
            code = -1;
            break;
        }
        int taken = s_take_option (NULL, s_global_options, globals, argc, argv, &index);
        if (taken == 0)
            s_usage_error (NULL,
                           "unknown option '%.64s' (options go after the command they "
                           "belong to)",
                           argv[index]);
        code = taken <= 0 ? S_EXIT_USAGE : 0;
    }
    const s_command_t *command = NULL;
    if (!code && index >= argc) {
        s_usage (stderr);
        code = S_EXIT_USAGE;
    } else if (!code && !(command = s_command_find (argc, argv, &index)))
        code = S_EXIT_USAGE;
    s_args_t args = {NULL};
    if (!code)
        code = s_parse (command, argc - index, argv + index, &args, globals);
    if (!code) {
        //  Borrowed from globals, which live until the end.
        if (globals[0])
            cli.config_path = json_string_value (globals[0]);
        cli.admin = json_string_value (globals[1]);
        cli.json = globals[2] != NULL;
        cli.timeout_ms = (int)json_integer_value (globals[3]);
        cli.staff = json_string_value (globals[4]);
        code = command->run ? command->run (&cli, &args) : s_run_usual (&cli, &args);
    }
    s_args_clear (&args);
    zsock_destroy (&cli.socket);
    ml_config_destroy (&cli.config);
    for (size_t slot = 0; slot < S_GLOBALS; slot++)
        json_decref (globals[slot]);
    return code < 0 ? 0 : code; //  -1: only help was printed
}
