/*  matterlink CLI: auto-Pay schedules.
 */
#include "ml_cli.h"

//  Options of these commands.
static const ml_cli_option_t o_schedule_id = ML_CLI_WHOLE (
    "SCHEDULE_ID", "SCHEDULE_ID", 1, INT64_MAX, "schedule_id", "an Auto-Pay schedule's ID");
static const ml_cli_option_t o_schedule_name =
    ML_CLI_STRING ("--name", "N", 200, "name", "what the schedule is called");
static const ml_cli_option_t o_frequency = ML_CLI_CHOICE (
    "--frequency", "F", 16, "frequency", "weekly|biweekly|monthly|quarterly", "how often");
static const ml_cli_option_t o_day_rule =
    ML_CLI_CHOICE ("--day-rule", "R", 8, "day_rule", "last|next",
                   "months without the first date's day: their last day, or the 1st after");
static const ml_cli_option_t o_first_date =
    ML_CLI_CHECKED ("--first", "YYYY-MM-DD", 10, "first_date", ml_cli_is_date, "a date, YYYY-MM-DD",
                    "the first run");
static const ml_cli_option_t o_schedule_amount =
    ML_CLI_STRING ("--amount", "A|all", 40, "amount", "pay up to this much each run, or all");
static const ml_cli_option_t o_schedule_payer =
    ML_CLI_WHOLE ("--payer", "PAYER_ID", 1, INT64_MAX, "payer_id", "the payer");
static const ml_cli_option_t o_schedule_method = ML_CLI_WHOLE (
    "--method", "METHOD_ID", 1, INT64_MAX, "method_id", "the payer's saved card to charge");
static const ml_cli_option_t o_today = ML_CLI_STRING (
    "DATE", "YYYY-MM-DD", 10, "today", "the scheduler's today (\"\" for the real one)");

//  Auto-Pay.
static const ml_cli_column_t s_schedule_columns[] = {
    {"ID", "schedule_id", ML_CLI_RIGHT, 0, 0},
    {"Name", "name", 0, 0, 24},
    {"Payer", "payer_id", ML_CLI_RIGHT, 0, 0},
    {"Frequency", "frequency", 0, 0, 0},
    {"First", "first_date", 0, 0, 0},
    {"Up to", "amount_minor", ML_CLI_MONEY, 0, 0},
    {"Account", "account_number", 0, 0, 0},
    {"On", "enabled", ML_CLI_RIGHT, 0, 0},
    {"State", "state", 0, 0, 0},
};

static const ml_cli_column_t s_run_columns[] = {
    {"Due", "due_date", 0, 0, 0},
    {"Try", "attempt", ML_CLI_RIGHT, 0, 0},
    {"Ran", "run_on", 0, 0, 0},
    {"Outcome", "status", 0, 0, 0},
    {"Amount", "amount_minor", ML_CLI_MONEY, 0, 0},
    {"Reason", "reason", 0, 0, 0},
    {"Payment", "payment_uuid", 0, 0, 0},
};

static const ml_cli_column_t s_enrollment_columns[] = {
    {"Association", "association_id", ML_CLI_RIGHT, 0, 0},
    {"Level", "level", 0, 0, 0},
    {"Client", "client_number", 0, 0, 0},
    {"Matter", "matter_number", 0, 0, 0},
    {"Invoice", "invoice_number", 0, 0, 0},
    {"Ended", "ended_at", 0, 0, 0},
    {"Why", "end_reason", 0, 0, 0},
};

static int s_print_schedules (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *schedules = json_object_get (reply, "schedules");
    if (json_array_size (schedules) == 0)
        printf ("No Auto-Pay schedules.\n");
    else
        ML_CLI_TABLE (schedules, s_schedule_columns, 0);
    return 0;
}

static int s_print_schedule (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *schedule = json_object_get (reply, "schedule");
    if (!json_is_object (schedule)) {
        printf ("Done.\n");
        return 0;
    }
    json_t *one = json_pack ("[O]", schedule);
    ML_CLI_TABLE (one, s_schedule_columns, 0);
    json_decref (one);
    if (*ml_cli_text (schedule, "state_reason")) {
        printf ("State: %s: ", ml_cli_text (schedule, "state"));
        ml_cli_put_clean (stdout, ml_cli_text (schedule, "state_reason"), SIZE_MAX);
        printf ("\n");
    }
    printf ("(Up to 0 means: pay all outstanding.) A/R message: ");
    ml_cli_put_clean (stdout, ml_cli_text (schedule, "ar_message"), SIZE_MAX);
    printf ("\n");
    json_t *enrollments = json_object_get (schedule, "enrollments");
    json_t *runs = json_object_get (schedule, "runs");
    if (enrollments) {
        printf ("\nEnrolled associations:\n");
        if (json_array_size (enrollments) == 0)
            printf ("  none (enroll with 'matterlink autopay enroll')\n");
        else
            ML_CLI_TABLE (enrollments, s_enrollment_columns, 2);
    }
    if (runs) {
        printf ("\nRuns:\n");
        if (json_array_size (runs) == 0)
            printf ("  none yet\n");
        else
            ML_CLI_TABLE (runs, s_run_columns, 2);
    }
    return 0;
}

const ml_cli_command_t ml_cli_autopay_commands[] = {
    {.name = "autopay add",
     .op = "autopay-add",
     .synopsis = "--payer P --method M --name N --account NUMBER --frequency F --first DATE\n"
                 "      [--amount A|all] [--day-rule last|next] [--message TEXT]",
     .summary = "add an Auto-Pay schedule for a payer",
     .flags = ML_CLI_SENDS_STAFF,
     .options = {&o_schedule_payer, &o_schedule_method, &o_schedule_name, &ml_cli_opt_account,
                 &o_frequency, &o_first_date, &o_schedule_amount, &o_day_rule, &ml_cli_opt_message},
     .required = "--payer --method --name --account --frequency --first",
     .print = s_print_schedule,
     .unanswered = "the schedule may have been added: check with 'matterlink autopay list' before "
                   "adding it again"},
    {.name = "autopay edit",
     .op = "autopay-edit",
     .synopsis = "SCHEDULE_ID [--method M] [--name N] [--account NUMBER] [--frequency F]\n"
                 "      [--first DATE] [--amount A|all] [--day-rule last|next] [--message TEXT]",
     .summary = "change a schedule (it then runs from today on)",
     .options = {&o_schedule_method, &o_schedule_name, &ml_cli_opt_account, &o_frequency,
                 &o_first_date, &o_schedule_amount, &o_day_rule, &ml_cli_opt_message},
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule,
     .unanswered =
         "the schedule may have been changed: check with 'matterlink autopay show SCHEDULE_ID'"},
    {.name = "autopay enable",
     .op = "autopay-enable",
     .synopsis = "SCHEDULE_ID",
     .summary = "turn a schedule on (it runs from today on)",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule,
     .unanswered =
         "the schedule may have been turned on: check with 'matterlink autopay show SCHEDULE_ID'"},
    {.name = "autopay disable",
     .op = "autopay-disable",
     .synopsis = "SCHEDULE_ID",
     .summary = "turn a schedule off",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule,
     .unanswered =
         "the schedule may have been turned off: check with 'matterlink autopay show SCHEDULE_ID'"},
    {.name = "autopay delete",
     .op = "autopay-delete",
     .synopsis = "SCHEDULE_ID",
     .summary = "delete a schedule (its runs are kept)",
     .bare = {&o_schedule_id},
     .bare_required = 1,
     .print = s_print_schedule,
     .unanswered = "the schedule may have been deleted: check with 'matterlink autopay list'"},
    {.name = "autopay enroll",
     .op = "autopay-enroll",
     .synopsis = "SCHEDULE_ID ASSOCIATION_ID",
     .summary = "enroll one of the payer's associations",
     .bare = {&o_schedule_id, &ml_cli_opt_association_id},
     .bare_required = 2,
     .print = s_print_schedule,
     .unanswered = "the association may have been enrolled: check with 'matterlink autopay show "
                   "SCHEDULE_ID'"},
    {.name = "autopay unenroll",
     .op = "autopay-unenroll",
     .synopsis = "SCHEDULE_ID ASSOCIATION_ID",
     .summary = "end an enrollment",
     .bare = {&o_schedule_id, &ml_cli_opt_association_id},
     .bare_required = 2,
     .print = s_print_schedule,
     .unanswered =
         "the enrollment may have ended: check with 'matterlink autopay show SCHEDULE_ID'"},
    {.name = "autopay list",
     .op = "autopay-list",
     .synopsis = "[--firm F] [--payer P]",
     .summary = "a firm's Auto-Pay schedules",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm, &o_schedule_payer},
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
     .bare = {&o_today},
     .bare_required = 1,
     .unanswered = "the scheduler's day may have been set and its runs made: check with "
                   "'matterlink autopay list'"},
    {.name = NULL}};
