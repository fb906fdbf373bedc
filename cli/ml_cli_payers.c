/*  matterlink CLI: payers, their payment methods and associations.
 */
#include "ml_cli.h"

//  Options of these commands.
static const ml_cli_option_t o_method_id =
    ML_CLI_WHOLE ("METHOD_ID", "METHOD_ID", 1, INT64_MAX, "method_id", "a payment method's ID");
static const ml_cli_option_t o_name =
    ML_CLI_STRING ("--name", "N", 200, "name", "the payer's name");
static const ml_cli_option_t o_email =
    ML_CLI_STRING ("--email", "E", 254, "email", "the payer's e-mail");
static const ml_cli_option_t o_phone =
    ML_CLI_STRING ("--phone", "P", 40, "phone", "the payer's phone (\"\" removes it)");
static const ml_cli_option_t o_list_text =
    ML_CLI_STRING ("--text", "T", 200, "text", "only payers with this in their name or e-mail");
static const ml_cli_option_t o_list_limit =
    ML_CLI_WHOLE ("--limit", "N", 1, 1000, "limit", "at most this many, 1 to 1000 (default 100)");
static const ml_cli_option_t o_token =
    ML_CLI_STRING ("--token", "T", 128, "token", "the payment processor's token for the card");
static const ml_cli_option_t o_brand = ML_CLI_CHOICE (
    "--brand", "B", 16, "brand", "visa|mastercard|amex|discover|other", "the card's brand");
static const ml_cli_option_t o_last4 =
    ML_CLI_CHECKED ("--last4", "NNNN", 4, "last4", ml_cli_is_last4, "exactly 4 digits",
                    "the card number's last 4 digits");
static const ml_cli_option_t o_expiry =
    ML_CLI_CHECKED ("--expiry", "MM/YYYY", 7, NULL, ml_cli_is_expiry,
                    "a month as MM/YYYY, like 04/2030", "the card's expiry month");
static const ml_cli_option_t o_association_client =
    ML_CLI_STRING ("--client", "NUMBER", 63, NULL, "associate this client");
static const ml_cli_option_t o_association_matter =
    ML_CLI_STRING ("--matter", "NUMBER", 63, NULL, "associate this matter");
static const ml_cli_option_t o_association_invoice =
    ML_CLI_STRING ("--invoice", "NUMBER", 63, NULL, "associate this invoice");
static const ml_cli_option_t o_level = ML_CLI_CHOICE (
    "--level", "L", 16, NULL, "client|matter|invoice", "what the search finds to associate");
static const ml_cli_option_t o_pick =
    ML_CLI_CHECKED ("--pick", "1,3,...", 200, NULL, ml_cli_is_pick,
                    "numbers from the list, like 1,3", "associate these of the numbered list");
static const ml_cli_option_t o_access_action =
    ML_CLI_CHOICE ("ACTION", "on|off|reset|delete", 8, "action", "on|off|reset|delete",
                   "on: welcome mail with a set-password link; off: sign-in refused, sessions "
                   "ended; reset: a reset link; delete: the login goes, the payer stays");
static const ml_cli_option_t o_audit_limit =
    ML_CLI_WHOLE ("--limit", "N", 1, 1000, "limit", "at most this many, 1 to 1000 (default 100)");
static const ml_cli_option_t o_all =
    ML_CLI_SWITCH ("--all", NULL, "associate every one the search found");

//  "association add --level" reads the whole search in pages of this many rows, and stops
//  (asking for a narrower search) after this many pages.
#define S_PICK_PAGE_ROWS ML_MAX_SEARCH_ROWS
#define S_PICK_PAGES     20

//  ---------------------------------------------------------------------------------------
//  Payers and payment methods

static const ml_cli_column_t s_payer_columns[] = {
    {"Payer", "payer_id", ML_CLI_RIGHT, 0, 0},
    {"Firm", "firm_id", 0, 0, 0},
    {"Name", "name", 0, 0, 32},
    {"E-mail", "email", 0, 0, 40},
    {"Phone", "phone", 0, 0, 0},
};

static const ml_cli_column_t s_association_columns[] = {
    {"ID", "association_id", ML_CLI_RIGHT, 0, 0},
    {"Level", "level", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Client name", "client_name", 0, 0, 26},
    {"Matter", "matter_number", 0, 0, 0},
    {"Description", "matter_description", 0, 0, 30},
    {"Invoice", "invoice_number", 0, 0, 0},
    {"Added", "created_at", 0, 0, 10},
    {"By", "created_by", 0, 0, 16},
};

static const char *s_method_text (json_t *method, char *buf, size_t size)
{
    snprintf (buf, size, "%s ending %s, expires %02lld/%lld", ml_cli_text (method, "brand"),
              ml_cli_text (method, "last4"), ml_cli_integer (method, "exp_month"),
              ml_cli_integer (method, "exp_year"));
    return buf;
}

static void s_print_profile (json_t *payer)
{
    printf ("Payer %lld: ", ml_cli_integer (payer, "payer_id"));
    ml_cli_put_clean (stdout, ml_cli_text (payer, "name"), SIZE_MAX);
    printf ("\n  firm:            %s\n  e-mail:          ", ml_cli_text (payer, "firm_id"));
    ml_cli_put_clean (stdout, ml_cli_text (payer, "email"), SIZE_MAX);
    printf ("\n  phone:           %s\n",
            *ml_cli_text (payer, "phone") ? ml_cli_text (payer, "phone") : "-");
    printf ("  added:           %s (changed %s)\n", ml_cli_text (payer, "created_at"),
            ml_cli_text (payer, "updated_at"));
}

static int s_print_payer (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *payer = json_object_get (reply, "payer");
    if (streq (args->command->name, "payer add"))
        printf ("Added payer %lld.\n", ml_cli_integer (payer, "payer_id"));
    else if (streq (args->command->name, "payer edit"))
        printf ("Changed payer %lld.\n", ml_cli_integer (payer, "payer_id"));
    s_print_profile (payer);
    return 0;
}

static int s_prepare_payer_edit (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    if (!ml_cli_arg (args, "--name") && !ml_cli_arg (args, "--email") &&
        !ml_cli_arg (args, "--phone")) {
        ml_cli_usage_error (args->command,
                            "say what to change: --name, --email or --phone (--phone "
                            "\"\" removes the phone number)");
        return ML_CLI_EXIT_USAGE;
    }
    return 0;
}

static int s_print_payer_list (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *payers = json_object_get (reply, "payers");
    size_t count = json_array_size (payers);
    if (count)
        ML_CLI_TABLE (payers, s_payer_columns, 0);
    json_t *limit = ml_cli_arg (args, "--limit");
    printf ("%zu payer%s%s\n", count, count == 1 ? "" : "s",
            count == (size_t)(limit ? json_integer_value (limit) : 100)
                ? " (the first ones: narrow with --text, or raise --limit)"
                : "");
    return 0;
}

//  The portal login's state, as payer show and payer access say it.
static void s_print_access (json_t *access)
{
    if (!json_is_object (access))
        return;
    static const char *const meanings[][2] = {
        {"off", "off (no sign-in)"},
        {"invited", "invited (a set-password link was sent, no password yet)"},
        {"active", "active (the payer can sign in)"},
        {"deleted", "deleted (no login; 'payer access on' starts over)"}};
    const char *state = ml_cli_text (access, "state");
    for (size_t index = 0; index < 4; index++)
        if (streq (state, meanings[index][0]))
            state = meanings[index][1];
    printf ("  portal login:    %s\n", state);
    if (*ml_cli_text (access, "invitation"))
        printf ("  invitation:      %s (sent %s, link valid until %s)\n",
                ml_cli_text (access, "invitation"), ml_cli_text (access, "invited_at"),
                ml_cli_text (access, "invitation_expires_at"));
    if (*ml_cli_text (access, "last_sign_in_at"))
        printf ("  last sign-in:    %s\n", ml_cli_text (access, "last_sign_in_at"));
    if (*ml_cli_text (access, "pending_email")) {
        printf ("  new e-mail:      ");
        ml_cli_put_clean (stdout, ml_cli_text (access, "pending_email"), SIZE_MAX);
        printf (" (waits for its confirmation link)\n");
    }
}

static int s_print_access_change (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    const char *action = ml_cli_arg_text (args, "ACTION");
    long long payer_id = (long long)json_integer_value (ml_cli_arg (args, "PAYER_ID"));
    long long invalidated = ml_cli_integer (reply, "invalidated");
    json_t *mail = json_object_get (reply, "mail_id");
    if (streq (action, "on"))
        printf (json_is_integer (mail)
                    ? "Login access on for payer %lld: a welcome e-mail with a set-password link "
                      "is on its way (mail %lld).\n"
                    : "Login access on for payer %lld: the payer signs in with the password "
                      "already set (no e-mail).\n",
                payer_id, json_is_integer (mail) ? (long long)json_integer_value (mail) : 0LL);
    else if (streq (action, "reset"))
        printf ("A reset link is on its way to payer %lld (mail %lld).\n", payer_id,
                (long long)json_integer_value (mail));
    else if (streq (action, "off"))
        printf ("Login access off for payer %lld: sign-in refused, sessions ended; the password "
                "is kept.\n",
                payer_id);
    else
        printf ("Login of payer %lld deleted: password, links and sessions are gone; the payer, "
                "the associations and the history stay.\n",
                payer_id);
    if (invalidated > 0)
        printf ("%lld earlier link%s no longer work%s.\n", invalidated, invalidated == 1 ? "" : "s",
                invalidated == 1 ? "s" : "");
    s_print_access (json_object_get (reply, "access"));
    return 0;
}

static const ml_cli_column_t s_audit_columns[] = {
    {"When", "at", 0, 0, 0},
    {"Event", "event", 0, 0, 0},
    {"From", "client", 0, 0, 40},
    {"Detail", "detail", 0, 0, 40},
};

static int s_print_audit (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *events = json_object_get (reply, "events");
    long long payer_id = (long long)json_integer_value (ml_cli_arg (args, "PAYER_ID"));
    if (json_array_size (events) == 0)
        printf ("No portal events for payer %lld.\n", payer_id);
    else {
        printf ("Portal events of payer %lld, newest first:\n", payer_id);
        ML_CLI_TABLE (events, s_audit_columns, 0);
    }
    return 0;
}

static int s_print_payer_show (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *payer = json_object_get (reply, "payer");
    s_print_profile (payer);
    s_print_access (json_object_get (payer, "access"));
    json_t *methods = json_object_get (payer, "methods");
    printf ("  payment methods:%s\n", json_array_size (methods) ? "" : " none");
    size_t index;
    json_t *method;
    json_array_foreach (methods, index, method)
    {
        char text[128];
        printf ("    method %lld: ", ml_cli_integer (method, "method_id"));
        ml_cli_put_clean (stdout, s_method_text (method, text, sizeof text), SIZE_MAX);
        printf ("\n");
    }
    json_t *associations = json_object_get (payer, "associations");
    if (json_array_size (associations) == 0)
        printf ("  associations:    none, so the payer sees nothing\n");
    else {
        printf ("  associations (what the payer may see and pay):\n");
        ML_CLI_TABLE (associations, s_association_columns, 4);
    }
    return 0;
}

static int s_prepare_method_add (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    const char *expiry = ml_cli_arg_text (args, "--expiry");
    json_object_set_new (request, "exp_month", json_integer (atoi (expiry)));
    json_object_set_new (request, "exp_year", json_integer (atoi (strchr (expiry, '/') + 1)));
    return 0;
}

static int s_print_method (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *method = json_object_get (reply, "method");
    char text[128];
    printf ("Saved payment method %lld for payer %lld: ", ml_cli_integer (method, "method_id"),
            ml_cli_integer (method, "payer_id"));
    ml_cli_put_clean (stdout, s_method_text (method, text, sizeof text), SIZE_MAX);
    printf ("\n");
    return 0;
}

static int s_print_removed (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    printf ("Removed %s %lld.\n",
            streq (args->command->name, "method remove") ? "payment method" : "association",
            ml_cli_integer (reply, "removed"));
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Associations

//  The number of a row at a level: its client, matter or invoice number.
static const char *s_level_number (json_t *row, const char *level)
{
    return ml_cli_text (row, streq (level, "client")   ? "client_number"
                             : streq (level, "matter") ? "matter_number"
                                                       : "invoice_number");
}

//  What a row (a search row or an association) names at a level, for people:
//  "client C-1 (Smith & Co)", "matter M-7 (Lease; client C-1 Smith & Co)".
static const char *s_describe (json_t *row, const char *level, char *buf, size_t size)
{
    if (streq (level, "client"))
        snprintf (buf, size, "client %s (%s)", ml_cli_text (row, "client_number"),
                  ml_cli_text (row, "client_name"));
    else if (streq (level, "matter"))
        snprintf (buf, size, "matter %s (%s; client %s %s)", ml_cli_text (row, "matter_number"),
                  ml_cli_text (row, "matter_description"), ml_cli_text (row, "client_number"),
                  ml_cli_text (row, "client_name"));
    else {
        //  A search row also says when the invoice was sent and what is left to pay.
        char money[64], balance[80] = "";
        if (json_object_get (row, "balance_minor"))
            snprintf (balance, sizeof balance, ", %s open",
                      ml_cli_money (row, "balance_minor", ml_cli_text (row, "currency"), money,
                                    sizeof money));
        snprintf (buf, size, "invoice %s%s%s%s (client %s %s, matter %s)",
                  ml_cli_text (row, "invoice_number"),
                  *ml_cli_text (row, "invoice_date") ? " of " : "",
                  ml_cli_text (row, "invoice_date"), balance, ml_cli_text (row, "client_number"),
                  ml_cli_text (row, "client_name"), ml_cli_text (row, "matter_number"));
    }
    return buf;
}

static void s_print_association_added (json_t *association)
{
    char text[700];
    printf ("Added association %lld: payer %lld may see ",
            ml_cli_integer (association, "association_id"),
            ml_cli_integer (association, "payer_id"));
    ml_cli_put_clean (
        stdout, s_describe (association, ml_cli_text (association, "level"), text, sizeof text),
        SIZE_MAX);
    printf ("\n");
}

static int s_print_association_list (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *associations = json_object_get (reply, "associations");
    long long payer_id = (long long)json_integer_value (ml_cli_arg (args, "PAYER_ID"));
    if (json_array_size (associations) == 0)
        printf ("Payer %lld has no associations, so it sees nothing.\n", payer_id);
    else {
        printf ("Payer %lld may see and pay:\n", payer_id);
        ML_CLI_TABLE (associations, s_association_columns, 0);
    }
    return 0;
}

//  Create one association by level and number, reported in created, or in refused with
//  the core's reason (said with the level and number when say_which). Returns 0, 1 refused (said),
//  or the exit code of a failed exchange.
static int s_associate (ml_cli_t *cli, const ml_cli_args_t *args, const char *level,
                        const char *number, bool say_which, json_t *created, json_t *refused)
{
    json_t *request = json_pack ("{s:s, s:O, s:s, s:s}", "op", "association-add", "payer_id",
                                 ml_cli_arg (args, "PAYER_ID"), "level", level, "number", number);
    if (ml_cli_arg (args, "--deadline"))
        json_object_set (request, "deadline_ms", ml_cli_arg (args, "--deadline"));
    ml_cli_add_staff (cli, args->command, request, false);
    json_t *reply = NULL;
    int code = ml_cli_exchange (cli, request, ml_cli_core_wait (args), &reply);
    if (code)
        return code;
    if (json_is_true (json_object_get (reply, "ok"))) {
        json_t *association = json_object_get (reply, "association");
        if (!cli->json)
            s_print_association_added (association);
        json_array_append (created, association);
    } else {
        if (say_which)
            ml_cli_error ("%s %s: %s", level, number, ml_cli_text (reply, "error"));
        else
            ml_cli_error ("%s", ml_cli_text (reply, "error"));
        json_array_append_new (refused,
                               json_pack ("{s:s, s:s, s:O}", "level", level, "number", number,
                                          "error", json_object_get (reply, "error")));
        code = ML_CLI_EXIT_REFUSED;
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
static int s_collect (ml_cli_t *cli, const ml_cli_args_t *args, json_t *search, const char *level,
                      json_t *candidates, json_t **first_reply)
{
    json_int_t after = 0;
    for (int page = 0; page < S_PICK_PAGES; page++) {
        json_t *request = json_deep_copy (search);
        json_object_set_new (request, "after", json_integer (after));
        json_t *reply = NULL;
        int code = ml_cli_ask (cli, request, ml_cli_deadline (args), NULL, &reply);
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
    ml_cli_error ("the search matches more than %d rows; narrow it (--match exact, more TEXT, or "
                  "filters)",
                  S_PICK_PAGES * S_PICK_PAGE_ROWS);
    return ML_CLI_EXIT_REFUSED;
}

//  The distinct clients (matters, invoices) a search finds, sorted by number so the same
//  search numbers them the same way: *listed (new reference) holds one row for each.
static int s_find_candidates (ml_cli_t *cli, const ml_cli_args_t *args, const char *level,
                              json_t **listed)
{
    *listed = json_array ();
    json_t *search = ml_cli_request_new (args);
    json_object_set_new (search, "op", json_string ("search"));
    json_object_del (search, "payer_id");
    json_object_set_new (search, "limit", json_integer (S_PICK_PAGE_ROWS));
    ml_cli_add_staff (cli, args->command, search, false);
    int code = ml_cli_prepare_criteria (cli, args, search);
    //  The payer's firm is the one to search.
    json_t *shown = NULL;
    if (!code)
        code = ml_cli_ask (
            cli,
            json_pack ("{s:s, s:O}", "op", "payer-show", "payer_id", ml_cli_arg (args, "PAYER_ID")),
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
    const char *by = first_reply ? ml_cli_text (first_reply, "by") : "";
    const char *status = ml_cli_arg_text (args, "--status");
    if (!code && !streq (level, "invoice") && !ml_cli_arg (args, "--trust") &&
        !streq (by, "invoice-number") && !ml_cli_arg (args, "--from") &&
        !ml_cli_arg (args, "--to") && !(status && !streq (status, "any"))) {
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
static int s_choose (ml_cli_t *cli, const ml_cli_args_t *args, const char *level, json_t *listed,
                     char *chosen)
{
    size_t count = json_array_size (listed);
    const char *pick = ml_cli_arg_text (args, "--pick");
    if (count == 0) {
        ml_cli_error ("the search found no %s to associate", level);
        return ML_CLI_EXIT_REFUSED;
    }
    if (pick) {
        for (const char *cursor = pick; *cursor;) {
            int choice = atoi (cursor);
            cursor += strspn (cursor, "0123456789");
            cursor += *cursor == ',';
            if ((size_t)choice > count) {
                ml_cli_usage_error (args->command, "--pick %d: the search found %zu %s%s", choice,
                                    count, level, count == 1 ? "" : "s");
                return ML_CLI_EXIT_USAGE;
            }
            chosen[choice - 1] = 1;
        }
        return 0;
    }
    if (count == 1 || ml_cli_arg (args, "--all")) {
        memset (chosen, 1, count);
        return 0;
    }
    if (cli->json) {
        json_t *out = json_pack ("{s:O}", "candidates", listed);
        ml_cli_print_json (out);
        json_decref (out);
    } else
        for (size_t index = 0; index < count; index++) {
            char text[700];
            printf ("%3zu. ", index + 1);
            ml_cli_put_clean (stdout,
                              s_describe (json_array_get (listed, index), level, text, sizeof text),
                              SIZE_MAX);
            printf ("\n");
        }
    ml_cli_error ("the search found %zu %ss: choose with --pick (like --pick 1,3), or --all", count,
                  level);
    return ML_CLI_EXIT_REFUSED;
}

//  "association add PAYER_ID --level L [criteria] TEXT": search, number the distinct
//  clients (matters, invoices) found, and associate the one found or those chosen.
static int s_associate_found (ml_cli_t *cli, const ml_cli_args_t *args, const char *level)
{
    if (!ml_cli_arg (args, "TEXT")) {
        ml_cli_usage_error (args->command, "--level needs TEXT to search for (with --by FIELD, or "
                                           "your default search field)");
        return ML_CLI_EXIT_USAGE;
    }
    if (ml_cli_arg (args, "--pick") && ml_cli_arg (args, "--all")) {
        ml_cli_usage_error (args->command, "give --pick or --all, not both");
        return ML_CLI_EXIT_USAGE;
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
        if (rc && rc != ML_CLI_EXIT_REFUSED)
            code = rc;
    }
    if (!code && json_array_size (refused))
        code = ML_CLI_EXIT_REFUSED;
    if (cli->json && (json_array_size (created) || json_array_size (refused))) {
        json_t *out = json_pack ("{s:O, s:O, s:O}", "candidates", listed, "created", created,
                                 "refused", refused);
        ml_cli_print_json (out);
        json_decref (out);
    }
    json_decref (created);
    json_decref (refused);
    json_decref (listed);
    free (chosen);
    return code;
}

static int s_run_association_add (ml_cli_t *cli, const ml_cli_args_t *args)
{
    const ml_cli_command_t *command = args->command;
    const ml_cli_option_t *direct[] = {&o_association_client, &o_association_matter,
                                       &o_association_invoice};
    const char *level = NULL, *number = NULL;
    for (size_t index = 0; index < 3; index++)
        if (ml_cli_arg (args, direct[index]->name)) {
            if (level) {
                ml_cli_usage_error (command, "give one of --client, --matter or --invoice");
                return ML_CLI_EXIT_USAGE;
            }
            level = direct[index]->name + 2;
            number = ml_cli_arg_text (args, direct[index]->name);
        }
    if (!level && !ml_cli_arg (args, "--level")) {
        ml_cli_usage_error (command,
                            "say what to associate: --client, --matter or --invoice NUMBER, "
                            "or --level L with a search (--by FIELD TEXT)");
        return ML_CLI_EXIT_USAGE;
    }
    if (!level)
        return s_associate_found (cli, args, ml_cli_arg_text (args, "--level"));
    //  A number given directly: the options of a search do not go with it.
    for (size_t slot = 0; command->options[slot]; slot++) {
        const ml_cli_option_t *option = command->options[slot];
        if (args->values[slot] && option != direct[0] && option != direct[1] &&
            option != direct[2] && option != &ml_cli_opt_deadline) {
            ml_cli_usage_error (command,
                                "--%s NUMBER names what to associate: %s is for adding from "
                                "a search (--level)",
                                level, option->name);
            return ML_CLI_EXIT_USAGE;
        }
    }
    if (ml_cli_arg (args, "TEXT")) {
        ml_cli_usage_error (command,
                            "--%s NUMBER names what to associate: TEXT is for adding from a "
                            "search (--level)",
                            level);
        return ML_CLI_EXIT_USAGE;
    }
    json_t *created = json_array (), *refused = json_array ();
    int code = s_associate (cli, args, level, number, false, created, refused);
    if (!code && cli->json) {
        json_t *out = json_pack ("{s:O}", "association", json_array_get (created, 0));
        ml_cli_print_json (out);
        json_decref (out);
    }
    json_decref (created);
    json_decref (refused);
    return code;
}

const ml_cli_command_t ml_cli_payers_commands[] = {
    {.name = "payer add",
     .op = "payer-add",
     .synopsis = "[--firm F] --name N --email E [--phone P]",
     .summary = "add a payer",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_name, &o_email, &o_phone},
     .required = "--name --email",
     .print = s_print_payer,
     .unanswered = "the payer may have been added: check with 'matterlink payer list --text NAME' "
                   "before adding it again"},
    {.name = "payer edit",
     .op = "payer-edit",
     .synopsis = "PAYER_ID [--name N] [--email E] [--phone P]",
     .summary = "change a payer's profile",
     .options = {&o_name, &o_email, &o_phone},
     .bare = {&ml_cli_opt_payer_id},
     .bare_required = 1,
     .prepare = s_prepare_payer_edit,
     .print = s_print_payer,
     .unanswered = "the payer may have been changed: check with 'matterlink payer show PAYER_ID'"},
    {.name = "payer list",
     .op = "payer-list",
     .synopsis = "[--firm F] [--text T] [--limit N]",
     .summary = "payers; --text finds names, e-mails",
     .options = {&ml_cli_opt_firm, &o_list_text, &o_list_limit},
     .print = s_print_payer_list},
    {.name = "payer show",
     .op = "payer-show",
     .synopsis = "PAYER_ID",
     .summary = "a payer, its methods and associations",
     .bare = {&ml_cli_opt_payer_id},
     .bare_required = 1,
     .print = s_print_payer_show},
    {.name = "payer access",
     .op = "payer-access",
     .synopsis = "on|off|reset|delete PAYER_ID",
     .summary = "a payer's portal login: on, off, reset, delete",
     .flags = ML_CLI_SENDS_STAFF,
     .bare = {&o_access_action, &ml_cli_opt_payer_id},
     .bare_required = 2,
     .print = s_print_access_change,
     .unanswered = "the login may have changed and a mail may be on its way: check with "
                   "'matterlink payer show PAYER_ID'"},
    {.name = "payer audit",
     .op = "portal-audit",
     .synopsis = "PAYER_ID [--limit N]",
     .summary = "a payer's portal events: access, sign-ins, resets",
     .options = {&o_audit_limit},
     .bare = {&ml_cli_opt_payer_id},
     .bare_required = 1,
     .print = s_print_audit},
    {.name = "method add",
     .op = "method-add",
     .synopsis = "PAYER_ID --token T --brand B --last4 NNNN --expiry MM/YYYY",
     .summary = "save a card as the processor's token",
     .options = {&o_token, &o_brand, &o_last4, &o_expiry},
     .bare = {&ml_cli_opt_payer_id},
     .bare_required = 1,
     .required = "--token --brand --last4 --expiry",
     .prepare = s_prepare_method_add,
     .print = s_print_method,
     .unanswered = "the method may have been saved: check with 'matterlink payer show PAYER_ID' "
                   "before saving it again"},
    {.name = "method remove",
     .op = "method-remove",
     .synopsis = "METHOD_ID",
     .summary = "remove a saved payment method",
     .bare = {&o_method_id},
     .bare_required = 1,
     .print = s_print_removed,
     .unanswered = "the method may have been removed: check with 'matterlink payer show PAYER_ID'"},
    {.name = "association add",
     .op = "association-add",
     .synopsis = "PAYER_ID (--client C | --matter M | --invoice I)\n"
                 "  association add PAYER_ID --level client|matter|invoice [--by FIELD]\n"
                 "      [--match M] [search filters] [--pick 1,3,... | --all] TEXT",
     .summary = "associate a payer: what it may see",
     .flags = ML_CLI_SENDS_STAFF | ML_CLI_WAITS_TWICE,
     .options = {&o_association_client, &o_association_matter, &o_association_invoice, &o_level,
                 ML_CLI_CRITERIA, &o_pick, &o_all},
     .bare = {&ml_cli_opt_payer_id, &ml_cli_opt_text},
     .bare_required = 1,
     .run = s_run_association_add,
     .unanswered =
         "associations may have been added: check with 'matterlink association list PAYER_ID'"},
    {.name = "association list",
     .op = "association-list",
     .synopsis = "PAYER_ID",
     .summary = "what a payer may see and pay",
     .bare = {&ml_cli_opt_payer_id},
     .bare_required = 1,
     .print = s_print_association_list},
    {.name = "association remove",
     .op = "association-remove",
     .synopsis = "ASSOCIATION_ID",
     .summary = "remove an association",
     .bare = {&ml_cli_opt_association_id},
     .bare_required = 1,
     .print = s_print_removed,
     .unanswered = "the association may have been removed: check with 'matterlink association list "
                   "PAYER_ID'"},
    {.name = NULL}};
