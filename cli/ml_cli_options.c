/*  matterlink CLI: the option table and the parser: every command line is read against its
   command's row, so a usage error is explained before anything is sent.
*/
#include "ml_cli.h"

//  Before the command (or after it).
static const ml_cli_option_t o_config =
    ML_CLI_STRING ("--config", "FILE", 4096, NULL, "the core's configuration file");
static const ml_cli_option_t o_admin =
    ML_CLI_STRING ("--admin", "ENDPOINT", 4096, NULL, "the core's admin endpoint");
static const ml_cli_option_t o_json = ML_CLI_SWITCH ("--json", NULL, "print the reply as JSON");
static const ml_cli_option_t o_timeout =
    ML_CLI_WHOLE ("--timeout", "MS", 1, 3600000, NULL,
                  "how long to wait for each reply, 1 to 3600000 (default 30000)");
static const ml_cli_option_t o_staff =
    ML_CLI_CHECKED ("--staff", "NAME", 64, NULL, ml_cli_is_printable, "printable text",
                    "who you are, for the core");
const ml_cli_option_t *ml_cli_global_options[ML_CLI_GLOBALS + 1] = {&o_config,  &o_admin, &o_json,
                                                                    &o_timeout, &o_staff, NULL};

//  Firms, payments and postings.
const ml_cli_option_t ml_cli_opt_firm = ML_CLI_STRING ("--firm", "F", 63, "firm", "the firm's ID");
const ml_cli_option_t ml_cli_opt_message =
    ML_CLI_STRING ("--message", "TEXT", 1000, "ar_message", "a note for the receivables ledger");
const ml_cli_option_t ml_cli_opt_account =
    ML_CLI_STRING ("--account", "NUMBER", 63, "account", "the account the money goes into");
const ml_cli_option_t ml_cli_opt_uuid =
    ML_CLI_STRING ("UUID", "UUID", 36, "posting_uuid", "a posting's ID");

//  Searches.
const ml_cli_option_t ml_cli_opt_text = {.name = "TEXT",
                                         .meta = "TEXT",
                                         .kind = ML_CLI_TEXT,
                                         .high = 255,
                                         .key = "text",
                                         .rest = true,
                                         .help = "what to look for (several words are one text)"};
const ml_cli_option_t ml_cli_opt_by = ML_CLI_CHOICE ("--by", "FIELD", 32, "by", ML_CLI_FIELDS,
                                                     "where to look for TEXT (default: yours)");
const ml_cli_option_t ml_cli_opt_match =
    ML_CLI_CHOICE ("--match", "M", 16, "match", "exact|prefix|contains",
                   "how TEXT must match (default: by field)");
const ml_cli_option_t ml_cli_opt_trust =
    ML_CLI_SWITCH ("--trust", NULL, "search trust ledgers, not open invoices");
const ml_cli_option_t ml_cli_opt_from =
    ML_CLI_CHECKED ("--from", "YYYY-MM-DD", 10, "date_from", ml_cli_is_date, "a date as YYYY-MM-DD",
                    "invoices dated from this day");
const ml_cli_option_t ml_cli_opt_to =
    ML_CLI_CHECKED ("--to", "YYYY-MM-DD", 10, "date_to", ml_cli_is_date, "a date as YYYY-MM-DD",
                    "invoices dated up to this day");
const ml_cli_option_t ml_cli_opt_min =
    ML_CLI_STRING ("--min", "AMOUNT", 40, NULL, "a balance of at least this, like 250.00");
const ml_cli_option_t ml_cli_opt_max =
    ML_CLI_STRING ("--max", "AMOUNT", 40, NULL, "a balance of at most this, like 5,000.00");
const ml_cli_option_t ml_cli_opt_amount_currency = ML_CLI_CHECKED (
    "--currency", "CUR", 3, NULL, ml_cli_is_currency, "a currency code in capitals, like USD",
    "the currency of --min and --max (default USD)");
const ml_cli_option_t ml_cli_opt_search_status =
    ML_CLI_CHOICE ("--status", "S", 16, "status", "any|overdue|current", "which invoices");
const ml_cli_option_t ml_cli_opt_deadline =
    ML_CLI_WHOLE ("--deadline", "MS", 100, ML_MAX_DEADLINE_MS, "deadline_ms",
                  "the wait for the agent, 100 to 60000 (default 5000)");

//  Payers, their payment methods and associations.
const ml_cli_option_t ml_cli_opt_payer_id =
    ML_CLI_WHOLE ("PAYER_ID", "PAYER_ID", 1, INT64_MAX, "payer_id", "a payer's ID");
const ml_cli_option_t ml_cli_opt_association_id = ML_CLI_WHOLE (
    "ASSOCIATION_ID", "ASSOCIATION_ID", 1, INT64_MAX, "association_id", "an association's ID");

//  Deposit accounts and card payments.
//  Auto-Pay schedules.

//  ---------------------------------------------------------------------------------------
//  Small helpers

bool ml_cli_is_printable (const char *text)
{
    if (!*text)
        return false;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor == 0x7f)
            return false;
    return true;
}

//  A real calendar date as YYYY-MM-DD.
bool ml_cli_is_date (const char *text)
{
    return *text && ml_msg_valid_date (text);
}

bool ml_cli_is_currency (const char *text)
{
    return ml_money_exponent (text) >= 0;
}

bool ml_cli_is_digits (const char *text, size_t low, size_t high)
{
    size_t length = strspn (text, "0123456789");
    return !text[length] && length >= low && length <= high;
}

bool ml_cli_is_last4 (const char *text)
{
    return ml_cli_is_digits (text, 4, 4);
}

//  The longest run of digits, read through the spaces and dashes people put between a
//  card number's groups, so "4111-1111-1111-1111" counts as one run of 16.
size_t ml_cli_digit_run (const char *text)
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
bool ml_cli_is_expiry (const char *text)
{
    const char *slash = strchr (text, '/');
    if (!slash || slash == text || slash - text > 2 || !ml_cli_is_digits (slash + 1, 4, 4))
        return false;
    for (const char *cursor = text; cursor < slash; cursor++)
        if (*cursor < '0' || *cursor > '9')
            return false;
    int month = atoi (text), year = atoi (slash + 1);
    return month >= 1 && month <= 12 && year >= 2000 && year <= 2099;
}

//  "1,3,7": numbers from 1, separated by single commas.
bool ml_cli_is_pick (const char *text)
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

//  An idempotency key (pay_key, charge_key): 1 to 80 letters, digits, '-', '_', '.' or ':',
//  starting with a letter or digit.
bool ml_cli_is_key (const char *text)
{
    size_t length =
        strspn (text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:");
    return length >= 1 && length <= 80 && !text[length] && isalnum ((unsigned char)*text);
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

//  ---------------------------------------------------------------------------------------
//  Usage

void ml_cli_print_synopsis (FILE *stream, const ml_cli_command_t *command)
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

//  A usage error: what is wrong, then how the command is used.
void ml_cli_usage_error (const ml_cli_command_t *command, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    ml_cli_error ("%s", text);
    fprintf (stderr, "Try 'matterlink %s%s--help'.\n", command ? command->name : "",
             command ? " " : "");
}

//  ---------------------------------------------------------------------------------------
//  The parser: one option (or bare argument) value at a time, checked against its row.

//  Check text as the value of option and set *value to it (new reference; a value given
//  before is dropped: the last one counts). Returns 0, or -1 after saying what is wrong.
static int s_value (const ml_cli_command_t *command, const ml_cli_option_t *option,
                    const char *text, json_t **value)
{
    json_t *parsed = NULL;
    char choices[200];
    //  A list option given again adds to its list.
    char *joined = option->repeat && json_is_string (*value)
                       ? zsys_sprintf ("%s,%s", json_string_value (*value), text)
                       : NULL;
    text = joined ? joined : text;
    if (option->kind == ML_CLI_NUMBER) {
        int64_t number = 0;
        if (s_parse_number (text, option->low, option->high, &number) == 0)
            parsed = json_integer (number);
        else if (option->high == INT64_MAX)
            ml_cli_usage_error (command, "%s must be a whole number of at least %lld", option->name,
                                (long long)option->low);
        else
            ml_cli_usage_error (command, "%s must be a whole number from %lld to %lld",
                                option->name, (long long)option->low, (long long)option->high);
    } else if (strlen (text) > (size_t)option->high)
        ml_cli_usage_error (command, "%s is longer than %lld bytes", option->name,
                            (long long)option->high);
    else if (!(parsed = json_string (text)))
        ml_cli_usage_error (command, "%s must be UTF-8 text", option->name);
    else if (option->choices && !s_choice (option->choices, text)) {
        ml_cli_usage_error (command, "%s must be %s, not '%.64s'", option->name,
                            s_choices_text (option->choices, choices, sizeof choices), text);
        json_decref (parsed);
        parsed = NULL;
    } else if (option->valid && !option->valid (text)) {
        ml_cli_usage_error (command, "%s must be %s", option->name, option->expect);
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
int ml_cli_take_option (const ml_cli_command_t *command, const ml_cli_option_t *const *options,
                        json_t **values, int argc, char **argv, int *index)
{
    for (size_t slot = 0; options[slot]; slot++) {
        const ml_cli_option_t *option = options[slot];
        if (!streq (argv[*index], option->name))
            continue;
        if (option->kind == ML_CLI_FLAG) {
            json_decref (values[slot]);
            values[slot] = json_true ();
            return 1;
        }
        if (*index + 1 >= argc) {
            char choices[200];
            ml_cli_usage_error (
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

void ml_cli_args_clear (ml_cli_args_t *args)
{
    for (size_t slot = 0; slot < ML_CLI_MAX_OPTIONS + ML_CLI_MAX_BARE; slot++)
        json_decref (args->values[slot]);
    memset (args, 0, sizeof *args);
}

//  One line of a command's help: the option and what it is for.
static void s_option_help (const ml_cli_option_t *option)
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

static void s_command_help (const ml_cli_command_t *command)
{
    printf ("usage: matterlink [global options] COMMAND, where COMMAND is\n");
    ml_cli_print_synopsis (stdout, command);
    for (size_t slot = 0; command->options[slot]; slot++)
        s_option_help (command->options[slot]);
    for (size_t slot = 0; command->bare[slot]; slot++)
        s_option_help (command->bare[slot]);
    printf ("Global options: see 'matterlink --help'. More in docs/admin-api.md.\n");
}

//  Read a command's arguments against its row (global options into globals). Returns 0, or the exit
//  code (after saying why): 2 for a usage error, or -1 when it only printed help.
int ml_cli_parse (const ml_cli_command_t *command, int argc, char **argv, ml_cli_args_t *args,
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
            int taken =
                ml_cli_take_option (command, command->options, args->values, argc, argv, &index);
            //  The options before the command may come after it too.
            if (taken == 0)
                taken = ml_cli_take_option (command, ml_cli_global_options, globals, argc, argv,
                                            &index);
            if (taken < 0)
                return ML_CLI_EXIT_USAGE;
            if (taken == 0) {
                ml_cli_usage_error (command, "%s: unknown option '%.64s'", command->name, word);
                return ML_CLI_EXIT_USAGE;
            }
        } else if (bare_count < sizeof bare / sizeof bare[0])
            bare[bare_count++] = word;
        else {
            ml_cli_usage_error (command, "too many arguments");
            return ML_CLI_EXIT_USAGE;
        }
    }
    size_t used = 0;
    for (size_t slot = 0; command->bare[slot] && used < bare_count; slot++) {
        const ml_cli_option_t *option = command->bare[slot];
        int rc = 0;
        if (option->rest) {
            //  Every remaining word, so "search king motors" needs no quotes.
            zchunk_t *joined = zchunk_new (NULL, 0);
            for (; used < bare_count; used++)
                zchunk_extend (joined, bare[used], strlen (bare[used]) + 1);
            char *text = (char *)zchunk_data (joined);
            for (size_t byte = 0; byte + 1 < zchunk_size (joined); byte++)
                text[byte] = text[byte] ? text[byte] : ' ';
            rc = s_value (command, option, text, &args->values[ML_CLI_MAX_OPTIONS + slot]);
            zchunk_destroy (&joined);
        } else
            rc = s_value (command, option, bare[used++], &args->values[ML_CLI_MAX_OPTIONS + slot]);
        if (rc != 0)
            return ML_CLI_EXIT_USAGE;
    }
    if (used < bare_count) {
        ml_cli_usage_error (command, "unexpected argument '%.64s'", bare[used]);
        return ML_CLI_EXIT_USAGE;
    }
    for (int slot = 0; slot < command->bare_required; slot++)
        if (!args->values[ML_CLI_MAX_OPTIONS + slot]) {
            ml_cli_usage_error (command, "%s needs %s", command->name, command->bare[slot]->name);
            return ML_CLI_EXIT_USAGE;
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
            ml_cli_usage_error (command, "%s needs %.*s", command->name, (int)length, cursor);
            return ML_CLI_EXIT_USAGE;
        }
        cursor += length + (cursor[length] == ' ');
    }
    return 0;
}

//  The value of an option or bare argument by name (borrowed), or NULL if not given.
json_t *ml_cli_arg (const ml_cli_args_t *args, const char *name)
{
    const ml_cli_command_t *command = args->command;
    for (size_t slot = 0; command->options[slot]; slot++)
        if (streq (command->options[slot]->name, name))
            return args->values[slot];
    for (size_t slot = 0; command->bare[slot]; slot++)
        if (streq (command->bare[slot]->name, name))
            return args->values[ML_CLI_MAX_OPTIONS + slot];
    return NULL;
}

const char *ml_cli_arg_text (const ml_cli_args_t *args, const char *name)
{
    return json_string_value (ml_cli_arg (args, name));
}

//  The request the command line describes: the op, and every option and bare argument
//  that names a request member (new reference).
json_t *ml_cli_request_new (const ml_cli_args_t *args)
{
    const ml_cli_command_t *command = args->command;
    json_t *request = json_pack ("{s:s}", "op", command->op);
    for (size_t slot = 0; command->options[slot]; slot++)
        if (command->options[slot]->key && args->values[slot])
            json_object_set (request, command->options[slot]->key, args->values[slot]);
    for (size_t slot = 0; command->bare[slot]; slot++)
        if (command->bare[slot]->key && args->values[ML_CLI_MAX_OPTIONS + slot])
            json_object_set (request, command->bare[slot]->key,
                             args->values[ML_CLI_MAX_OPTIONS + slot]);
    return request;
}
