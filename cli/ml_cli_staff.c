/*  matterlink CLI: a firm's staff accounts, for the service's operators (docs/staff-api.md).
    The first administrator of a firm is invited here; administrators invite the others from
    the staff web app.
 */
#include "ml_cli.h"

static const ml_cli_option_t o_email = ML_CLI_STRING (
    "--email", "E", 254, "email", "the person's e-mail address (the link goes there)");
static const ml_cli_option_t o_name =
    ML_CLI_STRING ("--name", "N", 200, "name", "the person's name");
static const ml_cli_option_t o_role =
    ML_CLI_CHOICE ("--role", "R", 16, "role", "admin|billing|read",
                   "the role: admin (users, settings), billing (payments, payers), read (looks)");
static const ml_cli_option_t o_staff_id =
    ML_CLI_WHOLE ("--user", "STAFF_ID", 1, INT64_MAX, "staff_id", "only this staff member's rows");
static const ml_cli_option_t o_limit =
    ML_CLI_WHOLE ("--limit", "N", 1, 1000, "limit", "at most this many rows (default 100)");

static const ml_cli_column_t s_staff_columns[] = {{"ID", "staff_id", ML_CLI_RIGHT, 0, 0},
                                                  {"Name", "name", 0, 0, 28},
                                                  {"E-mail", "email", 0, 0, 36},
                                                  {"Role", "role", 0, 0, 0},
                                                  {"State", "state", 0, 0, 0},
                                                  {"2FA", "totp_enabled", 0, 0, 0},
                                                  {"Last sign-in", "last_sign_in_at", 0, 0, 0}};

static const ml_cli_column_t s_audit_columns[] = {{"At", "at", 0, 0, 0},
                                                  {"Who", "name", 0, 0, 32},
                                                  {"Op", "op", 0, 0, 0},
                                                  {"Object", "object", 0, 0, 40},
                                                  {"Detail", "detail", ML_CLI_FILL, 0, 0}};

static int s_print_invited (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    printf ("Invited: staff ID %lld; the invitation (a link for 72 hours) is mail %lld.\n",
            ml_cli_integer (reply, "staff_id"), ml_cli_integer (reply, "mail_id"));
    return 0;
}

static int s_print_staff (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *rows = json_object_get (reply, "staff");
    if (json_array_size (rows) == 0) {
        printf ("No staff accounts (invite the first administrator with 'matterlink staff "
                "invite').\n");
        return 0;
    }
    //  The table shows text: the second factor as yes or no.
    json_t *shown = json_deep_copy (rows);
    size_t index;
    json_t *row;
    json_array_foreach (shown, index, row) json_object_set_new (
        row, "totp_enabled",
        json_string (json_is_true (json_object_get (row, "totp_enabled")) ? "yes" : "no"));
    ML_CLI_TABLE (shown, s_staff_columns, 0);
    json_decref (shown);
    return 0;
}

static int s_print_audit (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *rows = json_object_get (reply, "entries");
    if (json_array_size (rows) == 0)
        printf ("Nothing recorded yet.\n");
    else
        ML_CLI_TABLE (rows, s_audit_columns, 0);
    return 0;
}

const ml_cli_command_t ml_cli_staff_commands[] = {
    {.name = "staff invite",
     .op = "staff-invite",
     .synopsis = "[--firm F] --email E --name N --role admin|billing|read",
     .summary = "invite a staff member of a firm (mails a single-use link)",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_email, &o_name, &o_role},
     .required = "--email --name --role",
     .print = s_print_invited,
     .unanswered = "the invitation may have been sent: check with 'matterlink staff list' "
                   "before inviting again"},
    {.name = "staff list",
     .op = "staff-list",
     .synopsis = "[--firm F]",
     .summary = "list a firm's staff accounts",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm},
     .print = s_print_staff},
    {.name = "staff audit",
     .op = "staff-audit",
     .synopsis = "[--firm F] [--user STAFF_ID] [--limit N]",
     .summary = "what a firm's staff did, newest first",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_staff_id, &o_limit},
     .print = s_print_audit},
    {.name = NULL},
};
