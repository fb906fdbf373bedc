/*  matterlink CLI: searches of a firm's matter database and what a payer sees.
 */
#include "ml_cli.h"

//  Options of these commands.
static const ml_cli_option_t o_search_limit = ML_CLI_WHOLE (
    "--limit", "N", 1, ML_MAX_SEARCH_ROWS, "limit", "rows per page, 1 to 500 (default 50)");
static const ml_cli_option_t o_after = ML_CLI_WHOLE ("--after", "CURSOR", 0, INT64_MAX, "after",
                                                     "the next page, as the last one said");
static const ml_cli_option_t o_remember =
    ML_CLI_SWITCH ("--remember", "remember", "save --by as your default search field");
static const ml_cli_option_t o_as_payer = ML_CLI_WHOLE ("--as-payer", "PAYER_ID", 1, INT64_MAX,
                                                        "as_payer", "only what this payer may see");
static const ml_cli_option_t o_field =
    ML_CLI_CHOICE ("FIELD", "FIELD", 32, "field", ML_CLI_FIELDS, "the field to search by default");

//  ---------------------------------------------------------------------------------------
//  Searches and what a payer sees

//  Rows a search of the firm's matter database found.
static const ml_cli_column_t s_found_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Invoice", "invoice_number", 0, 0, 0},
    {"Date", "invoice_date", 0, 10, 0},
    {"Due", "due_date", 0, 10, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},
    {"Description", "matter_description", ML_CLI_FILL, 0, 0},
    {"Balance", "balance_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 12, 0},
};

static const ml_cli_column_t s_trust_columns[] = {
    {"Kind", "kind", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},
    {"Description", "matter_description", ML_CLI_FILL, 0, 0},
    {"Balance", "balance_minor", ML_CLI_RIGHT | ML_CLI_MONEY, 12, 0},
};

//  The search criteria members the options cannot give directly: the target, the amounts
//  in minor units; and the checks that need several options. Shared by search, view-as
//  and "association add --level".
int ml_cli_prepare_criteria (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    const ml_cli_command_t *command = args->command;
    const char *currency = ml_cli_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    const char *bounds[][2] = {{"--min", "amount_min"}, {"--max", "amount_max"}};
    int64_t amounts[2] = {-1, -1};
    for (size_t bound = 0; bound < 2; bound++) {
        const char *text = ml_cli_arg_text (args, bounds[bound][0]);
        const char *problem = NULL;
        if (!text)
            continue;
        if (ml_money_parse (text, currency, &amounts[bound], &problem) == 0 && amounts[bound] < 0)
            problem = "below zero";
        if (problem) {
            ml_cli_usage_error (command, "%s '%s' is not an amount in %s (like 250.00): %s",
                                bounds[bound][0], text, currency, problem);
            return ML_CLI_EXIT_USAGE;
        }
        json_object_set_new (request, bounds[bound][1], json_integer (amounts[bound]));
        json_object_set_new (request, "amount_currency", json_string (currency));
    }
    if (amounts[0] >= 0 && amounts[1] >= 0 && amounts[0] > amounts[1]) {
        ml_cli_usage_error (command, "--min is above --max");
        return ML_CLI_EXIT_USAGE;
    }
    const char *from = ml_cli_arg_text (args, "--from"), *to = ml_cli_arg_text (args, "--to");
    if (from && to && strcmp (from, to) > 0) {
        ml_cli_usage_error (command, "--from is after --to");
        return ML_CLI_EXIT_USAGE;
    }
    const char *by = ml_cli_arg_text (args, "--by"), *status = ml_cli_arg_text (args, "--status");
    if (by && !ml_cli_arg (args, "TEXT")) {
        ml_cli_usage_error (command, "--by %s needs TEXT to look for", by);
        return ML_CLI_EXIT_USAGE;
    }
    if (ml_cli_arg (args, "--remember") && !by) {
        ml_cli_usage_error (command, "--remember saves the --by field: give --by FIELD");
        return ML_CLI_EXIT_USAGE;
    }
    if (ml_cli_arg (args, "--remember") && ml_cli_add_staff (cli, command, request, true) != 0)
        return ML_CLI_EXIT_USAGE;
    if (ml_cli_arg (args, "--trust")) {
        if ((by && streq (by, "invoice-number")) || from || to ||
            (status && !streq (status, "any"))) {
            ml_cli_usage_error (command,
                                "trust ledgers have no invoice number, invoice date or due "
                                "date: --trust cannot go with --by invoice-number, --from, "
                                "--to or --status");
            return ML_CLI_EXIT_USAGE;
        }
        json_object_set_new (request, "target", json_string ("trust"));
    }
    return 0;
}

static int s_prepare_search (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    int code = ml_cli_prepare_criteria (cli, args, request);
    //  A payer's view searches the payer's firm.
    if (!code && !ml_cli_arg (args, "--as-payer"))
        code = ml_cli_fill_firm (cli, args->command, request);
    return code;
}

//  What the search looked for, from the reply: 'open invoices, client-name contains "x"'.
static void s_print_criteria (const ml_cli_args_t *args, json_t *reply)
{
    printf ("%s",
            streq (ml_cli_text (reply, "target"), "trust") ? "trust ledgers" : "open invoices");
    if (*ml_cli_text (reply, "by")) {
        const char *match = ml_cli_text (reply, "match");
        printf (", %s %s \"", ml_cli_text (reply, "by"),
                streq (match, "exact")    ? "is"
                : streq (match, "prefix") ? "starts with"
                                          : "contains");
        ml_cli_put_clean (stdout, ml_cli_text (reply, "text"), SIZE_MAX);
        printf ("\"");
    }
    //  The filters, as typed (the reply does not repeat them).
    const char *status = ml_cli_arg_text (args, "--status");
    if (status && !streq (status, "any"))
        printf (", %s", status);
    const char *currency = ml_cli_arg_text (args, "--currency");
    currency = currency ? currency : "USD";
    const char *filters[][2] = {{"--from", "dated from"},
                                {"--to", "dated up to"},
                                {"--min", "balance from"},
                                {"--max", "balance up to"}};
    for (size_t filter = 0; filter < 4; filter++) {
        const char *text = ml_cli_arg_text (args, filters[filter][0]), *problem = NULL;
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
    bool trust = streq (ml_cli_text (reply, "target"), "trust");
    size_t count = json_array_size (items);
    if (count && trust)
        ML_CLI_TABLE (items, s_trust_columns, 0);
    else if (count)
        ML_CLI_TABLE (items, s_found_columns, 0);
    printf ("%zu %s%s\n", count, trust ? "trust ledger" : "open invoice", count == 1 ? "" : "s");
    if (json_is_integer (json_object_get (reply, "next")))
        printf ("More rows match: run the same command with --after %lld for the next page.\n",
                ml_cli_integer (reply, "next"));
}

//  A payer's view: the heading names the payer; a payer with no associations sees nothing.
static int s_print_payer_view (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    long long payer_id = ml_cli_integer (reply, "payer_id");
    json_t *shown = NULL;
    int code = ml_cli_ask (cli, json_pack ("{s:s, s:I}", "op", "payer-show", "payer_id", payer_id),
                           0, NULL, &shown);
    if (code)
        return code;
    json_t *payer = json_object_get (shown, "payer");
    printf ("As payer %lld (", payer_id);
    ml_cli_put_clean (stdout, ml_cli_text (payer, "name"), SIZE_MAX);
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
static int s_print_search (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    if (json_object_get (reply, "payer_id"))
        return s_print_payer_view (cli, args, reply);
    printf ("Firm %s: ", ml_cli_text (reply, "firm"));
    s_print_criteria (args, reply);
    printf ("\n");
    s_print_found_rows (reply);
    return 0;
}

static int s_prepare_default_field (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    return ml_cli_add_staff (cli, args->command, request, true);
}

static int s_print_default_field (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    const char *staff = ml_cli_text (reply, "staff");
    if (ml_cli_arg (args, "FIELD"))
        printf ("%s now searches by %s when no --by is given.\n", staff,
                ml_cli_text (reply, "field"));
    else if (json_is_string (json_object_get (reply, "field")))
        printf ("%s searches by %s when no --by is given.\n", staff, ml_cli_text (reply, "field"));
    else
        printf ("%s has no default search field: searches without --by look in client-name.\n",
                staff);
    return 0;
}

const ml_cli_command_t ml_cli_search_commands[] = {
    {.name = "search",
     .op = "search",
     .synopsis = "[--firm F] [--by FIELD] [--match exact|prefix|contains] [--trust]\n"
                 "      [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--min AMOUNT] [--max AMOUNT]\n"
                 "      [--currency CUR] [--status any|overdue|current] [--limit N]\n"
                 "      [--after CURSOR] [--deadline MS] [--remember] [--as-payer PAYER_ID]\n"
                 "      [TEXT]",
     .summary = "search the firm's matter database",
     .flags = ML_CLI_SENDS_STAFF | ML_CLI_WAITS,
     .options = {&ml_cli_opt_firm, ML_CLI_CRITERIA, &o_search_limit, &o_after, &o_remember,
                 &o_as_payer},
     .bare = {&ml_cli_opt_text},
     .prepare = s_prepare_search,
     .print = s_print_search},
    {.name = "view-as",
     .op = "payer-view",
     .synopsis = "PAYER_ID [--trust] [search options] [TEXT]",
     .summary = "search as a payer sees it",
     .flags = ML_CLI_SENDS_STAFF | ML_CLI_WAITS,
     .options = {ML_CLI_CRITERIA, &o_search_limit, &o_after},
     .bare = {&ml_cli_opt_payer_id, &ml_cli_opt_text},
     .bare_required = 1,
     .prepare = ml_cli_prepare_criteria,
     .print = s_print_search},
    {.name = "default-field",
     .op = "staff-default",
     .synopsis = "[FIELD]",
     .summary = "show or set your default search field",
     .bare = {&o_field},
     .prepare = s_prepare_default_field,
     .print = s_print_default_field,
     .unanswered = "your default field may have been saved: check with 'matterlink default-field'"},
    {.name = NULL}};
