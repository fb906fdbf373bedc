/*  matterlink CLI: deposit accounts, card payments, selections, reversals and payment links.
 */
#include "ml_cli.h"

//  Options of these commands.
static const ml_cli_option_t o_account_number =
    ML_CLI_CHECKED ("--number", "N", 63, "number", ml_cli_is_printable, "printable text",
                    "the account's number in the matter system");
static const ml_cli_option_t o_account_type =
    ML_CLI_CHOICE ("--type", "TYPE", 16, "type", "TRUST|OPERATING", "what it holds, for good");
static const ml_cli_option_t o_account_currency =
    ML_CLI_CHECKED ("--currency", "CUR", 3, "currency", ml_cli_is_currency,
                    "a currency code in capitals, like USD", "the account's currency");
static const ml_cli_option_t o_merchant =
    ML_CLI_CHECKED ("--merchant-account", "M", 64, "merchant_account", ml_cli_is_printable,
                    "printable text", "the processor's account the money goes to");
static const ml_cli_option_t o_charge_client =
    ML_CLI_STRING ("--client", "C", 63, NULL, "pay its invoices, oldest first (with --amount)");
static const ml_cli_option_t o_charge_matter =
    ML_CLI_STRING ("--matter", "M", 63, NULL, "pay its invoices, oldest first (with --amount)");
static const ml_cli_option_t o_charge_amount =
    ML_CLI_STRING ("--amount", "A", 40, NULL, "what --client or --matter pays, like 1,250.00");
static const ml_cli_option_t o_charge_invoice = {
    .name = "--invoice",
    .meta = "NUMBER=AMOUNT",
    .kind = ML_CLI_TEXT,
    .high = 16000,
    .repeat = true,
    .help = "pay the invoice this much; repeat, or join with ,"};
static const ml_cli_option_t o_charge_trust = {.name = "--trust",
                                               .meta = "MATTER=AMOUNT",
                                               .kind = ML_CLI_TEXT,
                                               .high = 16000,
                                               .repeat = true,
                                               .help = "deposit into the matter's trust; likewise"};
static const ml_cli_option_t o_charge_currency = ML_CLI_CHECKED (
    "--currency", "CUR", 3, NULL, ml_cli_is_currency, "a currency code in capitals, like USD",
    "the currency of the amounts (default USD)");
static const ml_cli_option_t o_payer =
    ML_CLI_WHOLE ("--payer", "PAYER_ID", 1, INT64_MAX, "payer_id", "a saved payer pays");
static const ml_cli_option_t o_method = ML_CLI_WHOLE (
    "--method", "METHOD_ID", 1, INT64_MAX, "method_id", "pay with this saved card of --payer");
static const ml_cli_option_t o_charge_payer_name =
    ML_CLI_STRING ("--payer-name", "N", 200, "payer_name", "who pays, without --payer");
static const ml_cli_option_t o_charge_payer_email =
    ML_CLI_STRING ("--payer-email", "E", 254, "payer_email", "their e-mail, without --payer");
static const ml_cli_option_t o_card_stdin =
    ML_CLI_SWITCH ("--card-stdin", NULL, "read NUMBER MM/YYYY CVC from standard input");
static const ml_cli_option_t o_save_method =
    ML_CLI_SWITCH ("--save-method", "save_method", "save that card for --payer");
static const ml_cli_option_t o_receipt_email = ML_CLI_STRING (
    "--receipt-email", "E", 254, "receipt_email", "send the receipt here, not the payer");
static const ml_cli_option_t o_save_payer =
    ML_CLI_SWITCH ("--save-payer", "save_payer", "save --payer-name and --payer-email as a payer");
static const ml_cli_option_t o_selection =
    ML_CLI_SWITCH ("--selection", "selection", "pay what you selected ('matterlink select add')");
static const ml_cli_option_t o_select_invoice =
    ML_CLI_STRING ("--invoice", "NUMBER[=AMOUNT]", 120, NULL,
                   "an invoice; without an amount, its whole balance when paid");
static const ml_cli_option_t o_select_trust =
    ML_CLI_STRING ("--trust", "MATTER=AMOUNT", 120, NULL, "a deposit to a matter's trust ledger");
static const ml_cli_option_t o_charge_key =
    ML_CLI_STRING ("CHARGE_KEY", "CHARGE_KEY", 80, "charge_key",
                   "a charge, as 'payment show' lists it (PAYMENT_UUID:operating or :trust)");
static const ml_cli_option_t o_reverse_amount =
    ML_CLI_STRING ("--amount", "A", 40, "amount",
                   "how much to take back, in the charge's currency (default: all)");
static const ml_cli_option_t o_link_state = ML_CLI_CHOICE (
    "--state", "S", 16, "state", "outstanding|paid|cancelled|expired", "only links in this state");
static const ml_cli_option_t o_link_id =
    ML_CLI_STRING ("LINK_ID", "LINK_ID", 36, "link_id", "a payment link's ID");
static const ml_cli_option_t o_link_token =
    ML_CLI_STRING ("TOKEN", "TOKEN", 64, "token", "the link's token, as sent to the payer");
static const ml_cli_option_t o_payment_uuid =
    ML_CLI_STRING ("PAYMENT_UUID", "PAYMENT_UUID", 36, "payment_uuid", "a payment's ID");

//  A run of this many digits (spaces and '-' between them allowed) is taken for a card
//  number, as the core takes it (method-add, the processor's descriptions).
#define S_CARD_DIGITS 12
//  The card line "NUMBER MM/YYYY CVC" on standard input is at most this long.
#define S_CARD_LINE_MAX 100

//  ---------------------------------------------------------------------------------------
//  Deposit accounts and card payments

static const ml_cli_column_t s_account_columns[] = {
    {"Account", "account_number", 0, 0, 0}, {"Type", "account_type", 0, 0, 0},
    {"Currency", "currency", 0, 0, 0},      {"Merchant account", "merchant_account", 0, 0, 0},
    {"Added", "created_at", 0, 0, 10},
};

//  A payment's charges, with what the command adds to each row: the processor's
//  transaction (or, unless approved, the reason) and the posting (an approved charge's).
static const ml_cli_column_t s_charge_columns[] = {
    {"Account", "account_number", 0, 0, 0},
    {"Type", "account_type", 0, 0, 0},
    {"Amount", "amount_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 12, 0},
    {"Status", "status", 0, 0, 0},
    {"Transaction / reason", "outcome", 0, 0, 0},
    {"Posting", "posting", 0, 0, 0},
};

static int s_print_account (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *account = json_object_get (reply, "account");
    printf ("Added %s account %s in %s for firm %s (merchant account %s).\n",
            ml_cli_text (account, "account_type"), ml_cli_text (account, "account_number"),
            ml_cli_text (account, "currency"), ml_cli_text (account, "firm_id"),
            ml_cli_text (account, "merchant_account"));
    return 0;
}

static int s_print_account_list (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *accounts = json_object_get (reply, "accounts");
    size_t count = json_array_size (accounts);
    if (count == 0) {
        printf ("No deposit accounts: card payments need them (matterlink account add).\n");
        return 0;
    }
    ML_CLI_TABLE (accounts, s_account_columns, 0);
    printf ("%zu account%s\n", count, count == 1 ? "" : "s");
    return 0;
}

//  Add the lines of --invoice or --trust ("NUMBER=AMOUNT,NUMBER=AMOUNT") to lines as
//  {member: NUMBER, "amount_minor": N}, each amount typed in currency. An amount may have
//  thousands separators, so a comma ends a line only when an '=' comes before the next one.
//  Returns 0, or 2 after saying what is wrong.
static int s_add_lines (const ml_cli_command_t *command, const char *option, const char *member,
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
            !ml_cli_is_printable (number)) {
            ml_cli_usage_error (
                command,
                "%s takes NUMBER=AMOUNT pairs separated by commas (numbers of 1 to 63 "
                "bytes), like %s=250.00,%s=40.00",
                option, streq (member, "invoice") ? "INV-1" : "M-1",
                streq (member, "invoice") ? "INV-2" : "M-2");
            code = ML_CLI_EXIT_USAGE;
        } else if (ml_money_parse (amount_text, currency, &amount, &problem) != 0 || amount <= 0) {
            ml_cli_usage_error (command, "%s %s: '%s' is not an amount in %s (like 250.00): %s",
                                option, number, amount_text, currency,
                                problem ? problem : "not above zero");
            code = ML_CLI_EXIT_USAGE;
        }
        size_t index;
        json_t *line;
        json_array_foreach (lines, index, line)
        {
            if (!code && streq (ml_cli_text (line, member), number)) {
                ml_cli_usage_error (command, "%s names %s twice", option, number);
                code = ML_CLI_EXIT_USAGE;
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

static int s_prepare_selection (const ml_cli_args_t *args, json_t *request);

//  No option of the command may hold what looks like a card number. Returns 0 or the usage
//  exit code (said).
static int s_no_card_in_options (ml_cli_t *cli, const ml_cli_args_t *args)
{
    const ml_cli_command_t *command = args->command;
    //  A card typed as an option has reached ps and the shell's history already; at least
    //  it goes no further, and the message says where a card belongs.
    const char *carded =
        cli->staff && ml_cli_digit_run (cli->staff) >= S_CARD_DIGITS ? "--staff" : NULL;
    for (size_t slot = 0; !carded && command->options[slot]; slot++) {
        char number[32];
        const char *text = json_string_value (args->values[slot]);
        if (json_is_integer (args->values[slot]))
            text = ml_cli_integer_text (args->values[slot], number, sizeof number);
        if (text && ml_cli_digit_run (text) >= S_CARD_DIGITS)
            carded = command->options[slot]->name;
    }
    if (carded) {
        ml_cli_usage_error (
            command,
            "%s looks like it holds a card number. A card never goes on the command "
            "line, where ps and the shell's history show it: give it with --card-stdin",
            carded);
        return ML_CLI_EXIT_USAGE;
    }
    return 0;
}

//  The checks of a charge that need several options, and the request members they make:
//  the card and who pays, then what to pay (s_prepare_selection).
static int s_prepare_charge (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    int refused = s_no_card_in_options (cli, args);
    if (refused)
        return refused;
    const ml_cli_command_t *command = args->command;
    bool payer = ml_cli_arg (args, "--payer"), method = ml_cli_arg (args, "--method");
    bool card = ml_cli_arg (args, "--card-stdin"), save = ml_cli_arg (args, "--save-method");
    bool named = ml_cli_arg (args, "--payer-name") || ml_cli_arg (args, "--payer-email");
    const char *problem = NULL;
    if (payer && named)
        problem = "give --payer PAYER_ID, or --payer-name and --payer-email, not both";
    else if (!payer && !(ml_cli_arg (args, "--payer-name") && ml_cli_arg (args, "--payer-email")))
        problem = "say who pays: --payer PAYER_ID, or --payer-name N and --payer-email E";
    else if (method && card)
        problem = "give --method or --card-stdin, not both";
    else if (method && !payer)
        problem = "--method names a saved card of --payer PAYER_ID";
    else if (!method && !card)
        problem = "say how to pay: --method METHOD_ID (a saved card of --payer) or --card-stdin "
                  "(the card on standard input)";
    else if (ml_cli_arg (args, "--save-payer") && payer)
        problem = "--save-payer saves a new payer: give --payer-name and --payer-email";
    else if (save && !(card && (payer || ml_cli_arg (args, "--save-payer"))))
        problem = "--save-method saves the card given with --card-stdin for --payer PAYER_ID "
                  "(or with --save-payer)";
    if (problem) {
        ml_cli_usage_error (command, "%s", problem);
        return ML_CLI_EXIT_USAGE;
    }
    return s_prepare_selection (args, request);
}

//  What to pay, for charge and link create: "auto" from --client or --matter with --amount,
//  "lines" from --invoice and --trust, amounts read in --currency (default USD).
static int s_prepare_selection (const ml_cli_args_t *args, json_t *request)
{
    const ml_cli_command_t *command = args->command;
    const char *problem = NULL;
    if (ml_cli_arg (args, "--selection")) {
        //  The selection's lines are the core's: nothing else says what to pay.
        if (ml_cli_arg (args, "--client") || ml_cli_arg (args, "--matter") ||
            ml_cli_arg (args, "--amount") || ml_cli_arg (args, "--invoice") ||
            ml_cli_arg (args, "--trust")) {
            ml_cli_usage_error (command, "pay --selection, or name what to pay, not both");
            return ML_CLI_EXIT_USAGE;
        }
        return 0;
    }
    const char *client = ml_cli_arg_text (args, "--client"),
               *matter = ml_cli_arg_text (args, "--matter");
    const char *amount = ml_cli_arg_text (args, "--amount");
    const char *invoices = ml_cli_arg_text (args, "--invoice"),
               *trust = ml_cli_arg_text (args, "--trust");
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
        ml_cli_usage_error (command, "%s", problem);
        return ML_CLI_EXIT_USAGE;
    }
    const char *currency = ml_cli_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    //  The amounts were read in this currency: the core checks every line is in it.
    json_object_set_new (request, "currency", json_string (currency));
    if (amount) {
        int64_t minor = 0;
        const char *wrong = NULL;
        if (ml_money_parse (amount, currency, &minor, &wrong) == 0 && minor <= 0)
            wrong = "not above zero";
        if (wrong) {
            ml_cli_usage_error (command, "--amount '%s' is not an amount in %s (like 250.00): %s",
                                amount, currency, wrong);
            return ML_CLI_EXIT_USAGE;
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
        ml_cli_usage_error (command, "a payment has at most %d lines (--invoice and --trust)",
                            ML_MAX_LINES);
        code = ML_CLI_EXIT_USAGE;
    }
    if (!code && json_array_size (lines))
        json_object_set (request, "lines", lines);
    json_decref (lines);
    return code;
}

//  Read one line from standard input into line (size bytes, without the newline), a byte at
//  a time so that no stdio buffer keeps a copy; at a terminal, after a prompt and without
//  echo. Returns 0, or 2 after saying what is wrong (never what was read).
static int s_card_read (const ml_cli_command_t *command, char *line, size_t size)
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
        ml_cli_usage_error (command, "the card line on standard input is longer than %zu bytes",
                            size - 1);
    else if (!ended && used == 0)
        ml_cli_usage_error (command, "nothing on standard input: --card-stdin reads one line, "
                                     "NUMBER MM/YYYY CVC");
    return too_long || (!ended && used == 0) ? ML_CLI_EXIT_USAGE : 0;
}

//  Read "NUMBER MM/YYYY CVC" in line: the last two words are the expiry and the CVC, the
//  words before them the number (in groups, with spaces or dashes). Fills number with its
//  digits (20 bytes), *month, *year and cvc (5 bytes). Returns 0, or 2 after saying what is
//  wrong (never what was read). Cuts line into words.
static int s_card_parse (const ml_cli_command_t *command, char *line, char *number, int *month,
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
    else if (!ml_cli_is_expiry (words[count - 2]))
        problem = "the card's expiry must be MM/YYYY, like 04/2031";
    else if (!ml_cli_is_digits (words[count - 1], 3, 4))
        problem = "the card's CVC must be 3 or 4 digits";
    if (problem) {
        ml_cli_usage_error (command, "%s", problem);
        return ML_CLI_EXIT_USAGE;
    }
    number[digits] = 0;
    *month = atoi (words[count - 2]);
    *year = atoi (strchr (words[count - 2], '/') + 1);
    snprintf (cvc, 5, "%s", words[count - 1]);
    return 0;
}

//  The text of request with the card read from standard input. The card goes into this
//  text only, never into a JSON value (whose copies could not be wiped), and every buffer
//  that held it here is wiped. Sets *text (new: for ml_cli_ask_text). Returns 0 or the exit code.
static int s_card_text (const ml_cli_command_t *command, json_t *request, char **text)
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
    printf ("Payment %s: %s\n", ml_cli_text (payment, "payment_uuid"),
            ml_cli_text (payment, "status"));
    printf ("  firm / client:   %s / %s\n", ml_cli_text (payment, "firm_id"),
            ml_cli_text (payment, "client_number"));
    printf ("  payer:           ");
    ml_cli_put_clean (stdout, ml_cli_text (payment, "payer_name"), SIZE_MAX);
    printf (" ");
    ml_cli_put_clean (stdout, ml_cli_text (payment, "payer_email"), SIZE_MAX);
    if (ml_cli_integer (payment, "payer_id") > 0)
        printf (" (payer %lld)", ml_cli_integer (payment, "payer_id"));
    printf ("\n");
    if (!streq (ml_cli_text (payment, "receipt_email"), ml_cli_text (payment, "payer_email"))) {
        printf ("  receipt to:      ");
        ml_cli_put_clean (stdout, ml_cli_text (payment, "receipt_email"), SIZE_MAX);
        printf ("\n");
    }
    printf ("  card:            %s ending %s\n", ml_cli_text (payment, "brand"),
            ml_cli_text (payment, "last4"));
    printf ("  taken:           %s%s", ml_cli_text (payment, "created_at"),
            *ml_cli_text (payment, "staff") ? " by " : "");
    ml_cli_put_clean (stdout, ml_cli_text (payment, "staff"), SIZE_MAX);
    printf ("\n  charges:\n");
    json_t *rows = json_array ();
    bool posted = false;
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        json_t *row = json_copy (charge);
        bool approved = streq (ml_cli_text (charge, "status"), "approved");
        const char *reason = ml_cli_text (charge, "reason");
        json_object_set_new (
            row, "outcome",
            json_string (approved || !*reason ? ml_cli_text (charge, "processor_txn") : reason));
        json_object_set_new (row, "posting",
                             json_string (approved ? ml_cli_text (charge, "posting_uuid") : ""));
        json_array_append_new (rows, row);
        posted |= approved;
    }
    ML_CLI_TABLE (rows, s_charge_columns, 4);
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
        const char *status = ml_cli_text (charge, "status"),
                   *reason = ml_cli_text (charge, "reason");
        char money[64];
        ml_cli_money (charge, "amount_minor", ml_cli_text (charge, "currency"), money,
                      sizeof money);
        if (streq (status, "approved"))
            approved = true;
        else if (streq (status, "declined") || streq (status, "error")) {
            failed = true;
            ml_cli_error (
                "the %s charge of %s into %s was %s%s%s", ml_cli_text (charge, "account_type"),
                money, ml_cli_text (charge, "account_number"), status, *reason ? ": " : "", reason);
        } else {
            //  Unknown, or pending (a core that stopped mid-call): the core settles both.
            unknown = true;
            ml_cli_error ("the outcome of the %s charge of %s into %s is not known yet%s%s%s",
                          ml_cli_text (charge, "account_type"), money,
                          ml_cli_text (charge, "account_number"), *reason ? " (" : "", reason,
                          *reason ? ")" : "");
        }
    }
    if (unknown)
        ml_cli_error (
            "the core settles it with the processor, which never charges twice: check with "
            "'matterlink payment show %s', and do not charge again meanwhile",
            ml_cli_text (payment, "payment_uuid"));
    if (failed && approved)
        ml_cli_error ("the approved charges stand, and their postings go to the matter system");
    if (json_array_size (charges) == 0)
        failed = true;
    return unknown ? ML_CLI_EXIT_UNKNOWN : failed ? ML_CLI_EXIT_REFUSED : 0;
}

//  Print a payment reply and return its exit code. Destroys reply.
static int s_finish_payment (ml_cli_t *cli, json_t *reply)
{
    json_t *payment = json_object_get (reply, "payment");
    if (cli->json)
        ml_cli_print_json (reply);
    else {
        json_t *shown = ml_cli_display (payment);
        s_print_payment (shown);
        json_decref (shown);
    }
    //  --save-method: the payment went on, but the card was not saved.
    const char *unsaved = json_string_value (json_object_get (reply, "method_not_saved"));
    if (unsaved)
        ml_cli_error ("the card was not saved for the payer: %s", unsaved);
    int code = s_payment_outcome (payment);
    json_decref (reply);
    return code;
}

static int s_run_charge (ml_cli_t *cli, const ml_cli_args_t *args)
{
    json_t *request = NULL, *reply = NULL;
    char *text = NULL;
    int code = ml_cli_request_build (cli, args, &request);
    //  The card is read last, once everything else is known to be right.
    if (!code && ml_cli_arg (args, "--card-stdin"))
        code = s_card_text (args->command, request, &text);
    else if (!code)
        text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    if (!code)
        code =
            ml_cli_ask_text (cli, text, args->command->op, ml_cli_core_wait (args), NULL, &reply);
    return code ? code : s_finish_payment (cli, reply);
}

//  One line of the selection: --invoice NUMBER[=AMOUNT] or --trust MATTER=AMOUNT.
static int s_prepare_select (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    const ml_cli_command_t *command = args->command;
    const char *invoice = ml_cli_arg_text (args, "--invoice"),
               *trust = ml_cli_arg_text (args, "--trust");
    bool adding = streq (command->op, "selection-add");
    if (!invoice == !trust) {
        ml_cli_usage_error (command, "name one --invoice or one --trust");
        return ML_CLI_EXIT_USAGE;
    }
    char number[121];
    snprintf (number, sizeof number, "%s", invoice ? invoice : trust);
    char *equals = strchr (number, '=');
    if (equals)
        *equals = 0;
    if (!*number || strlen (number) > 63 || (equals && !adding) || (trust && adding && !equals)) {
        ml_cli_usage_error (command, adding ? "--invoice NUMBER[=AMOUNT] or --trust MATTER=AMOUNT "
                                              "(trust is allocated by hand)"
                                            : "--invoice NUMBER or --trust MATTER");
        return ML_CLI_EXIT_USAGE;
    }
    json_object_set_new (request, invoice ? "invoice" : "trust", json_string (number));
    if (equals) {
        const char *currency = ml_cli_arg_text (args, "--currency");
        int64_t amount = 0;
        const char *wrong = NULL;
        if (ml_money_parse (equals + 1, currency ? currency : "USD", &amount, &wrong) != 0 ||
            amount <= 0) {
            ml_cli_usage_error (command, "'%s' is not an amount in %s (like 250.00)", equals + 1,
                                currency ? currency : "USD");
            return ML_CLI_EXIT_USAGE;
        }
        json_object_set_new (request, "amount_minor", json_integer (amount));
    }
    return 0;
}

static const ml_cli_column_t s_selection_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Number", "number", 0, 0, 0},
    {"Amount (minor units)", "amount_minor", ML_CLI_RIGHT, 12, 0},
};

static int s_print_selection (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
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
        ML_CLI_TABLE (rows, s_selection_columns, 2);
    }
    json_decref (rows);
    return 0;
}

//  A rejected posting's new lines.
static int s_prepare_reallocate (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    return s_prepare_selection (args, request);
}

//  A payment link: who pays, what, and until when; no card.
static int s_prepare_link (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    int refused = s_no_card_in_options (cli, args);
    if (refused)
        return refused;
    bool payer = ml_cli_arg (args, "--payer");
    bool named = ml_cli_arg (args, "--payer-name") && ml_cli_arg (args, "--payer-email");
    if (payer == named) {
        ml_cli_usage_error (
            args->command, "say who pays: --payer PAYER_ID, or --payer-name N and --payer-email E");
        return ML_CLI_EXIT_USAGE;
    }
    return s_prepare_selection (args, request);
}

static const ml_cli_column_t s_link_columns[] = {
    {"Link", "link_id", 0, 0, 0},       {"State", "state", 0, 0, 0},
    {"Payer", "payer_name", 0, 0, 24},  {"Created", "created_at", 0, 0, 0},
    {"Expires", "expires_at", 0, 0, 0}, {"Payment", "payment_uuid", 0, 0, 0},
};

static int s_print_links (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *links = json_object_get (reply, "links");
    if (json_array_size (links) == 0)
        printf ("No payment links.\n");
    else
        ML_CLI_TABLE (links, s_link_columns, 0);
    return 0;
}

static int s_print_link (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *link = json_object_get (reply, "link");
    printf ("Payment link %s: %s, valid until %s\n", ml_cli_text (link, "link_id"),
            ml_cli_text (link, "state"), ml_cli_text (link, "expires_at"));
    printf ("  payer:           ");
    ml_cli_put_clean (stdout, ml_cli_text (link, "payer_name"), SIZE_MAX);
    printf (" ");
    ml_cli_put_clean (stdout, ml_cli_text (link, "payer_email"), SIZE_MAX);
    printf ("\n  lines:           ");
    ml_cli_put_clean (stdout, ml_cli_text (link, "lines"), SIZE_MAX);
    printf ("\n");
    if (*ml_cli_text (link, "token"))
        printf (
            "  token:           %s\n"
            "Send the payer their link with this token; it is shown only now (the core keeps\n"
            "only its digest). It can be paid once, within 24 hours, and cancelled until then.\n",
            ml_cli_text (link, "token"));
    return 0;
}

static int s_run_payment_show (ml_cli_t *cli, const ml_cli_args_t *args)
{
    json_t *reply = NULL;
    int code = ml_cli_request (cli, args, &reply);
    return code ? code : s_finish_payment (cli, reply);
}

const ml_cli_command_t ml_cli_charges_commands[] = {
    {.name = "account add",
     .op = "account-add",
     .synopsis = "[--firm F] --number N --type TRUST|OPERATING --currency CUR\n"
                 "      --merchant-account M",
     .summary = "add a deposit account, typed for good",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_account_number, &o_account_type, &o_account_currency,
                 &o_merchant},
     .required = "--number --type --currency --merchant-account",
     .print = s_print_account,
     .unanswered = "the account may have been added: check with 'matterlink account list' before "
                   "adding it again"},
    {.name = "account list",
     .op = "account-list",
     .synopsis = "[--firm F]",
     .summary = "a firm's deposit accounts",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm},
     .print = s_print_account_list},
    {.name = "charge",
     .op = "payment",
     .synopsis = "[--firm F] [--client C | --matter M] [--amount A]\n"
                 "      [--invoice NUMBER=AMOUNT[,...]] [--trust MATTER=AMOUNT[,...]]\n"
                 "      [--currency CUR] (--payer PAYER_ID [--method METHOD_ID] |\n"
                 "      --payer-name N --payer-email E) [--card-stdin] [--save-method]\n"
                 "      [--save-payer] [--receipt-email E] [--message TEXT] [--selection]",
     .summary = "charge a card, one charge per account",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_charge_client, &o_charge_matter, &o_charge_amount,
                 &o_charge_invoice, &o_charge_trust, &o_charge_currency, &o_payer, &o_method,
                 &o_charge_payer_name, &o_charge_payer_email, &o_card_stdin, &o_save_method,
                 &o_receipt_email, &ml_cli_opt_message, &o_selection, &o_save_payer},
     .prepare = s_prepare_charge,
     .run = s_run_charge,
     .unanswered = "the card may have been charged: check 'matterlink postings' (and 'matterlink "
                   "payment show' of the payment) before charging again"},
    {.name = "select add",
     .op = "selection-add",
     .synopsis = "(--invoice NUMBER[=AMOUNT] | --trust MATTER=AMOUNT) [--currency CUR]",
     .summary = "add to your selection (several searches, one payment)",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_select_invoice, &o_select_trust, &o_charge_currency},
     .prepare = s_prepare_select,
     .print = s_print_selection,
     .unanswered = "your selection may have changed: check with 'matterlink select list'"},
    {.name = "select list",
     .op = "selection",
     .synopsis = "",
     .summary = "your selection, with amounts as of now",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm},
     .print = s_print_selection},
    {.name = "select remove",
     .op = "selection-remove",
     .synopsis = "(--invoice NUMBER | --trust MATTER)",
     .summary = "take a line out of your selection",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_select_invoice, &o_select_trust},
     .prepare = s_prepare_select,
     .print = s_print_selection,
     .unanswered = "your selection may have changed: check with 'matterlink select list'"},
    {.name = "select clear",
     .op = "selection-clear",
     .synopsis = "",
     .summary = "empty your selection",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm},
     .print = s_print_selection,
     .unanswered = "your selection may have been emptied: check with 'matterlink select list'"},
    {.name = "reallocate",
     .op = "reallocate",
     .synopsis = "UUID (--invoice NUMBER=AMOUNT[,...] | --trust MATTER=AMOUNT[,...])\n"
                 "      [--currency CUR]",
     .summary = "put a rejected posting's money on other lines",
     .flags = ML_CLI_SENDS_STAFF,
     .options = {&o_charge_invoice, &o_charge_trust, &o_charge_currency},
     .bare = {&ml_cli_opt_uuid},
     .bare_required = 1,
     .prepare = s_prepare_reallocate,
     .print = ml_cli_print_posting,
     .unanswered = "the posting may have been reallocated: check with 'matterlink posting UUID' "
                   "before trying again"},
    {.name = "refund",
     .op = "refund",
     .synopsis = "CHARGE_KEY [--amount A]",
     .summary = "refund a charge; a reversing posting follows",
     .flags = ML_CLI_SENDS_STAFF,
     .options = {&o_reverse_amount},
     .bare = {&o_charge_key},
     .bare_required = 1,
     .unanswered = "the refund may have been made: check with 'matterlink payment show "
                   "PAYMENT_UUID' (CHARGE_KEY before its ':') before trying again"},
    {.name = "void",
     .op = "void",
     .synopsis = "CHARGE_KEY",
     .summary = "void a whole charge before it settles",
     .flags = ML_CLI_SENDS_STAFF,
     .bare = {&o_charge_key},
     .bare_required = 1,
     .unanswered = "the charge may have been voided: check with 'matterlink payment show "
                   "PAYMENT_UUID' (CHARGE_KEY before its ':') before trying again"},
    {.name = "chargeback",
     .op = "chargeback",
     .synopsis = "CHARGE_KEY [--amount A]",
     .summary = "record a chargeback the processor decided",
     .flags = ML_CLI_SENDS_STAFF,
     .options = {&o_reverse_amount},
     .bare = {&o_charge_key},
     .bare_required = 1,
     .unanswered = "the chargeback may have been recorded: check with 'matterlink payment show "
                   "PAYMENT_UUID' (CHARGE_KEY before its ':') before recording it again"},
    {.name = "link create",
     .op = "link-create",
     .synopsis = "[--firm F] [--client C | --matter M] [--amount A]\n"
                 "      [--invoice NUMBER=AMOUNT[,...]] [--trust MATTER=AMOUNT[,...]]\n"
                 "      [--currency CUR] (--payer PAYER_ID | --payer-name N --payer-email E)\n"
                 "      [--receipt-email E] [--message TEXT] [--selection]",
     .summary = "send for payment: a link (24 hours, single use)",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_charge_client, &o_charge_matter, &o_charge_amount,
                 &o_charge_invoice, &o_charge_trust, &o_charge_currency, &o_payer,
                 &o_charge_payer_name, &o_charge_payer_email, &o_receipt_email, &ml_cli_opt_message,
                 &o_selection},
     .prepare = s_prepare_link,
     .print = s_print_link,
     .unanswered = "a link may have been created and sent to the payer: check with 'matterlink "
                   "link list' before creating another"},
    {.name = "link list",
     .op = "link-list",
     .synopsis = "[--firm F] [--state outstanding|paid|cancelled|expired]",
     .summary = "payment links and their states",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_link_state},
     .print = s_print_links},
    {.name = "link cancel",
     .op = "link-cancel",
     .synopsis = "LINK_ID",
     .summary = "cancel an outstanding payment link",
     .bare = {&o_link_id},
     .bare_required = 1,
     .print = s_print_link,
     .unanswered = "the link may have been cancelled: check with 'matterlink link list'"},
    {.name = "link pay",
     .op = "link-pay",
     .synopsis = "TOKEN --card-stdin",
     .summary = "pay a link as its payer does",
     .options = {&o_card_stdin},
     .bare = {&o_link_token},
     .bare_required = 1,
     .required = "--card-stdin",
     .run = s_run_charge,
     .unanswered = "the card may have been charged: check with 'matterlink link list' (a link is "
                   "paid once) before paying again"},
    {.name = "payment show",
     .op = "payment-show",
     .synopsis = "PAYMENT_UUID",
     .summary = "a card payment and its charges",
     .bare = {&o_payment_uuid},
     .bare_required = 1,
     .run = s_run_payment_show},
    {.name = NULL}};
