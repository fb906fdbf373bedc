/*  matterlink CLI: what the command's files share (private to cli/).

    Each command group (cli/ml_cli_payments.c, ..._charges.c, ..._search.c, ..._payers.c,
    ..._autopay.c) holds its commands' rows, their options and how they print; the parser
    (ml_cli_options.c), the table printer (ml_cli_table.c) and the exchange with the core
    (ml_cli_request.c) serve them all. ml_cli_main.c reads the command line.
*/
#ifndef ML_CLI_H_INCLUDED
#define ML_CLI_H_INCLUDED

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
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>
#include <locale.h>
#include <wchar.h>

//  Exit codes (documented in docs/admin-api.md).
#define ML_CLI_EXIT_REFUSED     1
#define ML_CLI_EXIT_USAGE       2
#define ML_CLI_EXIT_UNREACHABLE 3
#define ML_CLI_EXIT_WAIT        4
#define ML_CLI_EXIT_UNKNOWN     5
#define ML_CLI_EXIT_NO_ANSWER   6 //  a request that changes something got no answer

#define ML_CLI_MAX_OPTIONS 24
#define ML_CLI_MAX_BARE    2

//  ---------------------------------------------------------------------------------------
//  Options and bare arguments

typedef enum { ML_CLI_TEXT, ML_CLI_NUMBER, ML_CLI_FLAG } ml_cli_kind_t;

typedef struct {
    const char *name;             //  "--by"; for a bare argument its placeholder, "PAYER_ID"
    const char *meta;             //  the value's placeholder in usage text; NULL for a flag
    ml_cli_kind_t kind;           //  text, whole number, or a flag without a value
    int64_t low, high;            //  ML_CLI_NUMBER: the range; ML_CLI_TEXT: high is the most bytes
    const char *key;              //  the request member it becomes, or NULL if the command reads it
    const char *choices;          //  ML_CLI_TEXT: the values allowed, "a|b|c", or NULL
    bool (*valid) (const char *); //  ML_CLI_TEXT: a further check, or NULL
    const char *expect;           //  what valid wants, for the message
    bool rest;                    //  a bare TEXT: every remaining word, joined by spaces
    bool repeat;                  //  an option's TEXT: given again, adds ",value" (a list)
    const char *help;             //  what it is for, in --help
} ml_cli_option_t;

//  What one search can ask: search, view-as and "association add --level" share them.
#define ML_CLI_CRITERIA                                                                            \
    &ml_cli_opt_by, &ml_cli_opt_match, &ml_cli_opt_trust, &ml_cli_opt_from, &ml_cli_opt_to,        \
        &ml_cli_opt_min, &ml_cli_opt_max, &ml_cli_opt_amount_currency, &ml_cli_opt_search_status,  \
        &ml_cli_opt_deadline

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
    zsock_t *monitor;  //  the admin socket's disconnections (the core went away)
    const struct _ml_cli_command_t *command; //  the command being run
    //  What a request of the command that got no answer may have done, and how to find out,
    //  when the command knows better than its row (pay names its pay key); else "".
    char unanswered[400];
} ml_cli_t;

typedef struct _ml_cli_command_t ml_cli_command_t;

//  A parsed command line: values[i] is the value of command->options[i] (new reference, NULL
//  when not given), values[ML_CLI_MAX_OPTIONS + i] that of command->bare[i].
typedef struct {
    const ml_cli_command_t *command;
    json_t *values[ML_CLI_MAX_OPTIONS + ML_CLI_MAX_BARE];
} ml_cli_args_t;

//  Command flags.
#define ML_CLI_NEEDS_FIRM  1 //  --firm may be left out when the core has only one firm
#define ML_CLI_SENDS_STAFF 2 //  the request names the staff user
#define ML_CLI_WAITS       4 //  the core waits for the agent, up to the deadline
#define ML_CLI_WAITS_TWICE 8 //  ... up to twice (a second search may follow the first)

typedef int (ml_cli_step_fn) (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request);
typedef int (ml_cli_print_fn) (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply);
typedef int (ml_cli_run_fn) (ml_cli_t *cli, const ml_cli_args_t *args);

struct _ml_cli_command_t {
    const char *name;     //  "payer add"
    const char *op;       //  the admin op it sends
    const char *synopsis; //  what follows the name in usage text
    const char *summary;
    unsigned flags;
    const ml_cli_option_t *options[ML_CLI_MAX_OPTIONS]; //  NULL-terminated
    const ml_cli_option_t *bare[ML_CLI_MAX_BARE + 1];   //  bare arguments in order, NULL-terminated
    int bare_required;                                  //  how many of them must be given
    const char *required;    //  options that must be given, space-separated
    ml_cli_step_fn *prepare; //  more checks and members before sending, or NULL
    ml_cli_print_fn *print;  //  the reply for people (without --json), or NULL
    ml_cli_run_fn *run;      //  the whole command instead of the usual steps, or NULL
    //  For a command that changes something: what its request may have done when no answer
    //  came, and how to find out ("the account may have been added: check with ..."). NULL
    //  for a command that changes nothing (its missing answer is only said).
    const char *unanswered;
};

//  The checks of option values (ml_cli_options.c).
bool ml_cli_is_date (const char *text);
bool ml_cli_is_currency (const char *text);
bool ml_cli_is_printable (const char *text);
bool ml_cli_is_last4 (const char *text);
bool ml_cli_is_expiry (const char *text);
bool ml_cli_is_pick (const char *text);
bool ml_cli_is_key (const char *text);

//  A posting's statuses (docs/admin-api.md, postings).
#define ML_CLI_POSTING_STATUSES "pending|delivered|posted|rejected|reversed"

#define ML_CLI_FIELDS "client-name|client-number|matter-number|matter-description|invoice-number"

//  Text of at most bytes, sent as member (NULL: the command reads it).
#define ML_CLI_STRING(option, placeholder, bytes, member, about)                                   \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = ML_CLI_TEXT, .high = bytes, .key = member,    \
        .help = about                                                                              \
    }
//  One of the values in list ("a|b|c").
#define ML_CLI_CHOICE(option, placeholder, bytes, member, list, about)                             \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = ML_CLI_TEXT, .high = bytes, .key = member,    \
        .choices = list, .help = about                                                             \
    }
//  Text that check accepts; wants says what it wants.
#define ML_CLI_CHECKED(option, placeholder, bytes, member, check, wants, about)                    \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = ML_CLI_TEXT, .high = bytes, .key = member,    \
        .valid = check, .expect = wants, .help = about                                             \
    }
//  A whole number from lowest to highest.
#define ML_CLI_WHOLE(option, placeholder, lowest, highest, member, about)                          \
    {                                                                                              \
        .name = option, .meta = placeholder, .kind = ML_CLI_NUMBER, .low = lowest,                 \
        .high = highest, .key = member, .help = about                                              \
    }
//  A flag, sent as member: true.
#define ML_CLI_SWITCH(option, member, about)                                                       \
    {                                                                                              \
        .name = option, .kind = ML_CLI_FLAG, .key = member, .help = about                          \
    }

//  Options more than one command group uses (ml_cli_options.c).
extern const ml_cli_option_t ml_cli_opt_account;
extern const ml_cli_option_t ml_cli_opt_amount_currency;
extern const ml_cli_option_t ml_cli_opt_association_id;
extern const ml_cli_option_t ml_cli_opt_by;
extern const ml_cli_option_t ml_cli_opt_deadline;
extern const ml_cli_option_t ml_cli_opt_firm;
extern const ml_cli_option_t ml_cli_opt_from;
extern const ml_cli_option_t ml_cli_opt_match;
extern const ml_cli_option_t ml_cli_opt_max;
extern const ml_cli_option_t ml_cli_opt_message;
extern const ml_cli_option_t ml_cli_opt_min;
extern const ml_cli_option_t ml_cli_opt_payer_id;
extern const ml_cli_option_t ml_cli_opt_search_status;
extern const ml_cli_option_t ml_cli_opt_text;
extern const ml_cli_option_t ml_cli_opt_to;
extern const ml_cli_option_t ml_cli_opt_trust;
extern const ml_cli_option_t ml_cli_opt_uuid;
//  The options before the command (or after it): --config, --admin, --json, --timeout,
//  --staff, in this order, then NULL.
#define ML_CLI_GLOBALS 5
extern const ml_cli_option_t *ml_cli_global_options[ML_CLI_GLOBALS + 1];

//  ---------------------------------------------------------------------------------------
//  Tables

#define ML_CLI_RIGHT 1 //  right-aligned
#define ML_CLI_MONEY 2 //  an amount in minor units of the row's "currency"
#define ML_CLI_FILL  4 //  takes the rest of the terminal's width (40 when not a terminal)

typedef struct {
    const char *header;
    const char *key; //  the row member shown
    unsigned flags;
    int width; //  at least this wide
    int cap;   //  at most this wide (longer values are cut), or 0
} ml_cli_column_t;

#define ML_CLI_TABLE(rows, columns, indent)                                                        \
    ml_cli_print_table (rows, columns, sizeof columns / sizeof columns[0], indent)

//  Each command group's rows, ended by a row without a name.
extern const ml_cli_command_t ml_cli_payments_commands[];
extern const ml_cli_command_t ml_cli_charges_commands[];
extern const ml_cli_command_t ml_cli_autopay_commands[];
extern const ml_cli_command_t ml_cli_search_commands[];
extern const ml_cli_command_t ml_cli_payers_commands[];
extern const ml_cli_command_t ml_cli_staff_commands[];
extern const ml_cli_command_t ml_cli_notify_commands[];

void ml_cli_print_table (json_t *rows, const ml_cli_column_t *columns, size_t count, int indent);

//  ---------------------------------------------------------------------------------------
//  Parsing and usage (ml_cli_options.c)

bool ml_cli_is_digits (const char *text, size_t low, size_t high);
size_t ml_cli_digit_run (const char *text);
void ml_cli_print_synopsis (FILE *stream, const ml_cli_command_t *command);
void ml_cli_usage_error (const ml_cli_command_t *command, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
int ml_cli_take_option (const ml_cli_command_t *command, const ml_cli_option_t *const *options,
                        json_t **values, int argc, char **argv, int *index);
void ml_cli_args_clear (ml_cli_args_t *args);
int ml_cli_parse (const ml_cli_command_t *command, int argc, char **argv, ml_cli_args_t *args,
                  json_t **globals);
json_t *ml_cli_arg (const ml_cli_args_t *args, const char *name);
const char *ml_cli_arg_text (const ml_cli_args_t *args, const char *name);
json_t *ml_cli_request_new (const ml_cli_args_t *args);

//  ---------------------------------------------------------------------------------------
//  Output (ml_cli_table.c). Text borrowed from a reply; "" for a member that is not a string.

const char *ml_cli_text (json_t *object, const char *key);
const char *ml_cli_integer_text (json_t *value, char *buf, size_t size);
long long ml_cli_integer (json_t *object, const char *key);
const char *ml_cli_money (json_t *object, const char *key, const char *currency, char *buf,
                          size_t size);
//  Print text as a terminal may show it (controls and bidi controls as \uXXXX).
void ml_cli_put_clean (FILE *stream, const char *text, size_t bytes);
//  The terminal columns text takes, as ml_cli_put_clean prints it.
size_t ml_cli_width (const char *text);
//  A copy of a reply (new reference) whose strings are as ml_cli_put_clean prints them.
json_t *ml_cli_display (json_t *value);
void ml_cli_error (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
void ml_cli_print_json (json_t *reply);

//  ---------------------------------------------------------------------------------------
//  Talking to the core (ml_cli_request.c). Each returns 0 or the exit code, said.

int ml_cli_exchange (ml_cli_t *cli, json_t *request, int wait_ms, json_t **reply);
int ml_cli_ask_text (ml_cli_t *cli, char *text, const char *op, int wait_ms, const char *context,
                     json_t **reply);
void ml_cli_close (ml_cli_t *cli);
int ml_cli_ask (ml_cli_t *cli, json_t *request, int wait_ms, const char *context, json_t **reply);
int ml_cli_deadline (const ml_cli_args_t *args);
int ml_cli_core_wait (const ml_cli_args_t *args);
int ml_cli_add_staff (ml_cli_t *cli, const ml_cli_command_t *command, json_t *request,
                      bool required);
int ml_cli_fill_firm (ml_cli_t *cli, const ml_cli_command_t *command, json_t *request);
int ml_cli_request_build (ml_cli_t *cli, const ml_cli_args_t *args, json_t **request);
int ml_cli_request (ml_cli_t *cli, const ml_cli_args_t *args, json_t **reply);
int ml_cli_run_usual (ml_cli_t *cli, const ml_cli_args_t *args);

//  Shared by command groups.
int ml_cli_print_posting (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply);
int ml_cli_prepare_criteria (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request);

#endif
