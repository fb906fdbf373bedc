/*  matterlink: the staff command line. Talks to the core's admin API (docs/admin-api.md)
    and prints tables for people or JSON for scripts.

    Each command is one row of a command group's table (cli/ml_cli_*.c, listed in s_groups):
    its options and bare arguments, the admin op it sends, and how it prints the reply. One parser
   reads every command line against that row, so a usage error (unknown option, missing value, bad
   number, date or amount) is explained before anything is sent.

    A card number is never a command-line argument, where ps and the shell's history would
    show it: "charge --card-stdin" reads the card from standard input, sends it only in the
    request's text, and wipes every buffer that held it.

    Exit codes: 0 done; 1 the core refused the request (the message says why), or not all
    of what was asked could be done (a card charge declined); 2 usage error; 3 the core could
    not be reached (nothing was sent), or did not answer a request that changes nothing;
    4 --wait ran out before the posting was final; 5 a card charge's outcome is not known yet
    (the core settles it with the processor: see "matterlink payment show"); 6 a request that
    changes something reached the core and got no answer (within --timeout, default 30 s, or
    the core went away): it may have taken effect, and the message says how to find out.
*/
#include "ml_cli.h"
#include "ml_service.h"

//  The command groups, in the order usage lists them.
static const ml_cli_command_t *s_groups[] = {ml_cli_payments_commands, ml_cli_charges_commands,
                                             ml_cli_search_commands,   ml_cli_payers_commands,
                                             ml_cli_autopay_commands,  ml_cli_staff_commands,
                                             ml_cli_notify_commands,   NULL};

static void s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: matterlink [--config FILE | --admin ENDPOINT] [--json] [--timeout MS]\n"
             "                  [--staff NAME] COMMAND [OPTIONS]\n"
             "\n"
             "commands:\n");
    for (size_t group = 0; s_groups[group]; group++)
        for (const ml_cli_command_t *command = s_groups[group]; command->name; command++)
            ml_cli_print_synopsis (stream, command);
    fprintf (stream,
             "\n"
             "--firm may be left out when the core has only one firm. The admin endpoint\n"
             "comes from --admin, or admin/endpoint in --config FILE (default:\n"
             "$MATTERLINK_CORE_CONFIG, else /etc/matterlink/core.cfg). --staff defaults to\n"
             "$MATTERLINK_STAFF, else $SUDO_USER, else the login name. Put -- before a TEXT\n"
             "that starts with '-'. A card number is never an argument: 'charge --card-stdin'\n"
             "reads it from standard input. 'matterlink COMMAND --help' shows one command;\n"
             "'matterlink --version' the version.\n"
             "Each reply is awaited up to 30 s (--timeout MS). Exit codes: 0 done, 1 refused,\n"
             "2 usage, 3 core not reached (nothing sent) or a read unanswered, 4 --wait ran\n"
             "out, 5 a charge's outcome not known yet, 6 a change sent but unanswered (it may\n"
             "have taken effect: the message says how to check). See docs/admin-api.md.\n");
}

//  The command named by argv[*index] (and argv[*index + 1] for a group such as "payer"),
//  moving *index past its words; NULL (said) if there is none.
static const ml_cli_command_t *s_command_find (int argc, char **argv, int *index)
{
    const char *word = argv[*index];
    const char *next = *index + 1 < argc ? argv[*index + 1] : "";
    size_t length = strlen (word);
    char subcommands[200] = "";
    for (size_t group = 0; s_groups[group]; group++)
        for (const ml_cli_command_t *command = s_groups[group]; command->name; command++) {
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
        ml_cli_usage_error (NULL, "'%.64s' needs one of: %s", word, subcommands);
    else
        ml_cli_usage_error (NULL, "unknown command '%.64s'", word);
    return NULL;
}

#define S_GLOBALS (ML_CLI_GLOBALS + 1)

int main (int argc, char *argv[])
{
    ml_cli_t cli = {NULL};
    //  Tables measure text in terminal columns (wcwidth): a CJK character takes two, a
    //  combining mark none. Without this locale a small table of our own does it.
    setlocale (LC_CTYPE, "C.UTF-8");
    cli.config_path = getenv ("MATTERLINK_CORE_CONFIG");
    if (!cli.config_path)
        cli.config_path = "/etc/matterlink/core.cfg";
    //  The global options' values, in the order of ml_cli_global_options.
    json_t *globals[S_GLOBALS] = {NULL};
    int code = 0, index = 1;
    for (; !code && index < argc && argv[index][0] == '-'; index++) {
        if (streq (argv[index], "-h") || streq (argv[index], "--help")) {
            s_usage (stdout);
            code = -1;
            break;
        }
        if (streq (argv[index], "--version")) {
            printf ("matterlink %s\n", ML_VERSION);
            code = -1;
            break;
        }
        int taken = ml_cli_take_option (NULL, ml_cli_global_options, globals, argc, argv, &index);
        if (taken == 0)
            ml_cli_usage_error (NULL,
                                "unknown option '%.64s' (options go after the command they "
                                "belong to)",
                                argv[index]);
        code = taken <= 0 ? ML_CLI_EXIT_USAGE : 0;
    }
    const ml_cli_command_t *command = NULL;
    if (!code && index >= argc) {
        s_usage (stderr);
        code = ML_CLI_EXIT_USAGE;
    } else if (!code && !(command = s_command_find (argc, argv, &index)))
        code = ML_CLI_EXIT_USAGE;
    ml_cli_args_t args = {NULL};
    if (!code)
        code = ml_cli_parse (command, argc - index, argv + index, &args, globals);
    if (!code) {
        //  Borrowed from globals, which live until the end.
        if (globals[0])
            cli.config_path = json_string_value (globals[0]);
        cli.admin = json_string_value (globals[1]);
        cli.json = globals[2] != NULL;
        cli.timeout_ms = (int)json_integer_value (globals[3]);
        cli.staff = json_string_value (globals[4]);
        cli.command = command;
        code = command->run ? command->run (&cli, &args) : ml_cli_run_usual (&cli, &args);
    }
    ml_cli_args_clear (&args);
    ml_cli_close (&cli);
    ml_config_destroy (&cli.config);
    for (size_t slot = 0; slot < S_GLOBALS; slot++)
        json_decref (globals[slot]);
    return code < 0 ? 0 : code; //  -1: only help was printed
}
