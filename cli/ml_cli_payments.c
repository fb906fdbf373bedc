/*  matterlink CLI: firms, open items, staff payments and postings.
 */
#include "ml_cli.h"

//  Options of these commands.
static const ml_cli_option_t o_client =
    ML_CLI_STRING ("--client", "C", 63, "client", "a client number");
static const ml_cli_option_t o_matter =
    ML_CLI_STRING ("--matter", "M", 63, "matter", "a matter number");
static const ml_cli_option_t o_amount =
    ML_CLI_STRING ("--amount", "A", 40, "amount", "the amount, like 1,250.00");
static const ml_cli_option_t o_currency =
    ML_CLI_STRING ("--currency", "CUR", 3, "currency", "the currency to pay in, like USD");
static const ml_cli_option_t o_payer_name =
    ML_CLI_STRING ("--payer-name", "N", 255, "payer_name", "who paid, for the receipt");
static const ml_cli_option_t o_payer_email =
    ML_CLI_STRING ("--payer-email", "E", 255, "payer_email", "their e-mail, for the receipt");
static const ml_cli_option_t o_pay_key = ML_CLI_CHECKED (
    "--pay-key", "PAY_KEY", 80, "pay_key", ml_cli_is_key,
    "1 to 80 letters, digits, '-', '_', '.' or ':', starting with a letter or digit",
    "this payment's idempotency key (default: a new one)");
static const ml_cli_option_t o_wait = ML_CLI_WHOLE ("--wait", "SECONDS", 1, 86400, NULL,
                                                    "wait until the posting is final, 1 to 86400");
static const ml_cli_option_t o_posting_status = ML_CLI_CHOICE (
    "--status", "S", 16, "status", ML_CLI_POSTING_STATUSES, "only postings in this status");
static const ml_cli_option_t o_posting_limit =
    ML_CLI_WHOLE ("--limit", "N", 1, 10000, "limit", "at most this many, 1 to 10000 (default 50)");
static const ml_cli_option_t o_notify_email =
    ML_CLI_STRING ("--email", "E", 254, "email", "where the firm gets notices (posting rejected)");

//  ---------------------------------------------------------------------------------------
//  Firms, open items, payments and postings

//  Open items of the core's replica: the order pay allocates in.
static const ml_cli_column_t s_open_item_columns[] = {
    {"Invoice", "invoice_number", 0, 14, 0},
    {"Date", "invoice_date", 0, 10, 0},
    {"Client", "client_number", 0, 10, 0},
    {"Matter", "matter_number", 0, 12, 0},
    {"Client name", "client_name", 0, 28, 28},
    {"Balance", "balance_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 16, 0},
    {"Available", "available_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 16, 0},
};

//  Minor units written as decimal digits ("-123456"), of any length, as major units with
//  exponent decimals ("-1234.56"), into buf. Returns buf.
static const char *s_minor_text_as_major (const char *digits, int exponent, char *buf, size_t size)
{
    bool negative = *digits == '-';
    digits += negative;
    int length = (int)strlen (digits);
    if (exponent == 0)
        snprintf (buf, size, "%s%s", negative ? "-" : "", digits);
    else if (length <= exponent)
        snprintf (buf, size, "%s0.%.*s%s", negative ? "-" : "", exponent - length, "000000000",
                  digits);
    else
        snprintf (buf, size, "%s%.*s.%s", negative ? "-" : "", length - exponent, digits,
                  digits + length - exponent);
    return buf;
}

static int s_print_status (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    size_t index;
    json_t *firm;
    json_t *firms = json_object_get (reply, "firms");
    if (json_array_size (firms) == 0)
        printf ("No firms registered (matterlink-core register-agent).\n");
    json_array_foreach (firms, index, firm)
    {
        char money[64];
        printf ("Firm %s (%s)\n", ml_cli_text (firm, "firm_id"), ml_cli_text (firm, "name"));
        printf ("  agent:           %s\n",
                json_is_true (json_object_get (firm, "agent_online")) ? "online" : "offline");
        if (ml_cli_integer (firm, "complete"))
            printf ("  replica:         complete, at change %lld\n",
                    ml_cli_integer (firm, "cursor"));
        else if (json_object_get (firm, "snapshot_rows"))
            //  A first snapshot counts in the totals only at its end: its progress meanwhile.
            printf ("  replica:         waiting for snapshot, %lld rows received so far\n",
                    ml_cli_integer (firm, "snapshot_rows"));
        else
            printf ("  replica:         waiting for snapshot\n");
        //  The agent's batches are refused by the firm's limit: the operator must act.
        if (json_is_string (json_object_get (firm, "refused")))
            printf ("  refused:         since %s: %s\n", ml_cli_text (firm, "refused_at"),
                    ml_cli_text (firm, "refused"));
        const char *currency = ml_cli_text (firm, "open_balance_currency");
        if (json_is_true (json_object_get (firm, "open_balance_over_64_bits")) &&
            ml_money_exponent (currency) >= 0)
            //  The exact sum, as the core wrote it in minor units: it does not fit the 64 bits
            //  amounts have here, so the decimal point goes in by text.
            printf ("  open invoices:   %lld, %s %s outstanding (beyond 64 bits)\n",
                    ml_cli_integer (firm, "invoice_count"),
                    s_minor_text_as_major (ml_cli_text (firm, "open_balance_text"),
                                           ml_money_exponent (currency), money, sizeof money),
                    currency);
        else if (streq (currency, "mixed") || !*currency)
            printf ("  open invoices:   %lld%s\n", ml_cli_integer (firm, "invoice_count"),
                    *currency ? " (in several currencies)" : "");
        else
            printf ("  open invoices:   %lld, %s outstanding\n",
                    ml_cli_integer (firm, "invoice_count"),
                    ml_cli_money (firm, "open_balance_minor", currency, money, sizeof money));
        printf ("  trust ledgers:   %lld\n", ml_cli_integer (firm, "trust_ledger_count"));
        printf ("  postings:        %lld posted, %lld waiting, %lld rejected\n",
                ml_cli_integer (firm, "posted_posting_count"),
                ml_cli_integer (firm, "unanswered_posting_count"),
                ml_cli_integer (firm, "rejected_posting_count"));
    }
    return 0;
}

static int s_print_open_items (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *items = json_object_get (reply, "items");
    ML_CLI_TABLE (items, s_open_item_columns, 0);
    printf ("%zu open invoice%s\n", json_array_size (items),
            json_array_size (items) == 1 ? "" : "s");
    return 0;
}

//  Postings; "outcome" is added to each row: its receipt, or the reason it was rejected.
static const ml_cli_column_t s_posting_columns[] = {
    {"Posting", "posting_uuid", 0, 36, 0},
    {"Received", "received_on", 0, 10, 0},
    {"Client", "client_number", 0, 10, 0},
    {"Amount", "amount_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 16, 0},
    {"Status", "status", 0, 10, 0},
    {"Receipt / reason", "outcome", 0, 0, 0},
};

//  A posting's lines; "kind_name" and "currency" are added to each row.
static const ml_cli_column_t s_posting_line_columns[] = {
    {"Kind", "kind_name", 0, 6, 0},
    {"Reference", "reference", 0, 16, 0},
    {"Amount", "amount_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 16, 0},
};

//  What a pay applied to each invoice; "currency" is added to each row.
static const ml_cli_column_t s_applied_columns[] = {
    {"Invoice", "invoice_number", 0, 16, 0},
    {"Applied", "amount_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 16, 0},
};

//  Set member of every row of rows to the string value (a row's own, for money columns).
static void s_rows_set (json_t *rows, const char *member, const char *value)
{
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row) json_object_set_new (row, member, json_string (value));
}

static int s_print_postings (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *postings = json_object_get (reply, "postings");
    size_t index;
    json_t *posting;
    json_array_foreach (postings, index, posting)
    {
        const char *receipt = ml_cli_text (posting, "receipt_id");
        json_object_set_new (posting, "outcome",
                             json_string (*receipt ? receipt : ml_cli_text (posting, "reason")));
    }
    ML_CLI_TABLE (postings, s_posting_columns, 0);
    return 0;
}

int ml_cli_print_posting (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *posting = json_object_get (reply, "posting");
    char money[64];
    const char *currency = ml_cli_text (posting, "currency");
    printf ("Posting %s\n", ml_cli_text (posting, "posting_uuid"));
    printf ("  status:          %s%s%s\n", ml_cli_text (posting, "status"),
            *ml_cli_text (posting, "reason") ? ": " : "", ml_cli_text (posting, "reason"));
    if (*ml_cli_text (posting, "receipt_id"))
        printf ("  receipt:         %s (in the matter system)\n",
                ml_cli_text (posting, "receipt_id"));
    printf ("  firm / client:   %s / %s\n", ml_cli_text (posting, "firm_id"),
            ml_cli_text (posting, "client_number"));
    printf ("  amount:          %s into account %s, received %s\n",
            ml_cli_money (posting, "amount_minor", currency, money, sizeof money),
            ml_cli_text (posting, "account_number"), ml_cli_text (posting, "received_on"));
    if (*ml_cli_text (posting, "payer_name") || *ml_cli_text (posting, "payer_email"))
        printf ("  payer:           %s %s\n", ml_cli_text (posting, "payer_name"),
                ml_cli_text (posting, "payer_email"));
    if (*ml_cli_text (posting, "ar_message"))
        printf ("  A/R message:     %s\n", ml_cli_text (posting, "ar_message"));
    printf ("  allocation:\n");
    size_t index;
    json_t *line, *lines = json_object_get (posting, "lines");
    s_rows_set (lines, "currency", currency);
    json_array_foreach (lines, index, line) json_object_set_new (
        line, "kind_name",
        json_string (streq (ml_cli_text (line, "kind"), "T") ? "trust" : "invoice"));
    ML_CLI_TABLE (lines, s_posting_line_columns, 4);
    printf ("  history:\n");
    json_t *event;
    json_array_foreach (json_object_get (posting, "history"), index, event)
    {
        printf ("    %s  %-10s %s\n", ml_cli_text (event, "at"), ml_cli_text (event, "status"),
                ml_cli_text (event, "detail"));
    }
    return 0;
}

//  Poll a posting until it is posted or rejected. Returns an exit code.
static int s_wait (ml_cli_t *cli, const char *uuid, int seconds)
{
    int64_t deadline = zclock_mono () + (int64_t)seconds * 1000;
    int code = ML_CLI_EXIT_WAIT;
    while (zclock_mono () < deadline) {
        json_t *reply = NULL;
        int rc = ml_cli_exchange (
            cli, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid), 0, &reply);
        if (rc) {
            //  The payment itself was recorded: only its outcome is not known here.
            ml_cli_error ("the payment was recorded as posting %s; whether the matter system "
                          "took it is not known: check with 'matterlink posting %s'",
                          uuid, uuid);
            return ML_CLI_EXIT_WAIT;
        }
        json_t *posting = json_object_get (reply, "posting");
        const char *status = ml_cli_text (posting, "status");
        if (streq (status, "posted") || streq (status, "rejected")) {
            if (cli->json)
                ml_cli_print_json (reply);
            else {
                fputs (streq (status, "posted") ? "Posted: the matter system recorded receipt "
                                                : "Rejected by the matter system: ",
                       stdout);
                ml_cli_put_clean (
                    stdout,
                    ml_cli_text (posting, streq (status, "posted") ? "receipt_id" : "reason"),
                    SIZE_MAX);
                puts (streq (status, "posted") ? "." : "");
            }
            code = streq (status, "posted") ? 0 : ML_CLI_EXIT_REFUSED;
            json_decref (reply);
            break;
        }
        json_decref (reply);
        zclock_sleep (200);
    }
    if (code == ML_CLI_EXIT_WAIT)
        ml_cli_error (
            "posting %s is not final after %d s (it stays queued and is delivered when the "
            "agent is reachable)",
            uuid, seconds);
    return code;
}

//  pay always sends a pay_key, --pay-key or a new one, so that a payment whose answer was lost
//  can be asked for again without paying twice; the message for a lost answer names it.
static int s_run_pay (ml_cli_t *cli, const ml_cli_args_t *args)
{
    json_t *request = NULL, *reply = NULL;
    int code = ml_cli_request_build (cli, args, &request);
    if (code)
        return code;
    if (!json_object_get (request, "pay_key")) {
        zuuid_t *uuid = zuuid_new ();
        assert (uuid);
        char key[64];
        snprintf (key, sizeof key, "cli-%s", zuuid_str_canonical (uuid));
        json_object_set_new (request, "pay_key", json_string (key));
        zuuid_destroy (&uuid);
    }
    snprintf (cli->unanswered, sizeof cli->unanswered,
              "the payment may have been recorded. Run the same command again with --pay-key %s "
              "(it never pays twice for one key), or check with 'matterlink postings --firm %s'",
              json_string_value (json_object_get (request, "pay_key")),
              json_string_value (json_object_get (request, "firm")));
    code = ml_cli_ask (cli, request, ml_cli_core_wait (args), NULL, &reply);
    if (code)
        return code;
    int wait_seconds = (int)json_integer_value (ml_cli_arg (args, "--wait"));
    if (!cli->json) {
        char money[64];
        json_t *shown = ml_cli_display (reply);
        const char *currency = ml_cli_text (shown, "currency");
        printf ("Payment of %s for client %s recorded as posting %s\n",
                ml_cli_money (shown, "amount_minor", currency, money, sizeof money),
                ml_cli_text (shown, "client_number"), ml_cli_text (shown, "posting_uuid"));
        if (json_is_true (json_object_get (reply, "repeated")))
            printf ("  (recorded before, with this --pay-key: nothing more was paid now)\n");
        json_t *lines = json_object_get (shown, "lines");
        s_rows_set (lines, "currency", currency);
        ML_CLI_TABLE (lines, s_applied_columns, 2);
        json_decref (shown);
    } else if (!wait_seconds)
        ml_cli_print_json (reply);
    if (wait_seconds)
        code = s_wait (cli, ml_cli_text (reply, "posting_uuid"), wait_seconds);
    json_decref (reply);
    return code;
}

const ml_cli_command_t ml_cli_payments_commands[] = {
    {.name = "status",
     .op = "status",
     .synopsis = "",
     .summary = "firms, their agents and replicas",
     .print = s_print_status},
    {.name = "open-items",
     .op = "open-items",
     .synopsis = "[--firm F] [--client C] [--matter M]",
     .summary = "open invoices, oldest first",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_client, &o_matter},
     .print = s_print_open_items},
    {.name = "pay",
     .op = "pay",
     .synopsis = "[--firm F] (--client C | --matter M) --amount A [--currency CUR]\n"
                 "      [--payer-name N] [--payer-email E] [--message TEXT] [--account NUMBER]\n"
                 "      [--pay-key PAY_KEY] [--wait SECONDS]",
     .summary = "pay oldest invoices first and post it",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_client, &o_matter, &o_amount, &o_currency, &o_payer_name,
                 &o_payer_email, &ml_cli_opt_message, &ml_cli_opt_account, &o_pay_key, &o_wait},
     .run = s_run_pay,
     .unanswered = "the payment may have been recorded: run the same command again with --pay-key "
                   "(it never pays twice for one key), or check with 'matterlink postings'"},
    {.name = "postings",
     .op = "postings",
     .synopsis = "[--firm F] [--status S] [--limit N]",
     .summary = "postings, newest first",
     .options = {&ml_cli_opt_firm, &o_posting_status, &o_posting_limit},
     .print = s_print_postings},
    {.name = "posting",
     .op = "posting",
     .synopsis = "UUID",
     .summary = "one posting, its lines and history",
     .bare = {&ml_cli_opt_uuid},
     .bare_required = 1,
     .print = ml_cli_print_posting},
    {.name = "resend",
     .op = "resend",
     .synopsis = "UUID",
     .summary = "deliver a posting again",
     .bare = {&ml_cli_opt_uuid},
     .bare_required = 1,
     .print = ml_cli_print_posting,
     .unanswered = "the posting may have been sent again (the agent applies a posting once): check "
                   "with 'matterlink posting UUID'"},
    {.name = "firm contact",
     .op = "firm-contact",
     .synopsis = "[--firm F] --email E",
     .summary = "where the firm gets notices by e-mail",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_notify_email},
     .required = "--email",
     .unanswered = "the address may have been saved (running the command again is harmless)"},
    {.name = NULL}};
