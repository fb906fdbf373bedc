/*  matterlink: the staff command line. Talks to the core's admin API (docs/admin-api.md)
    and prints tables for people or JSON for scripts.

    Exit codes: 0 done; 1 the core refused the request (the message says why); 2 usage
    error; 3 the core did not answer; 4 --wait ran out before the posting was final.
*/
#include "ml_config.h"
#include "ml_log.h"
#include "ml_money.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>

#define S_EXIT_REFUSED     1
#define S_EXIT_USAGE       2
#define S_EXIT_UNREACHABLE 3
#define S_EXIT_WAIT        4

typedef struct {
    const char *admin;
    bool json;
    int timeout_ms;
    zsock_t *socket;
} s_cli_t;

//  A whole number from minimum to maximum, or -1 (after saying why) for anything else.
static int s_number (const char *option, const char *text, int minimum, int maximum)
{
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    if (errno || end == text || *end || value < minimum || value > maximum) {
        fprintf (stderr, "matterlink: %s must be a whole number from %d to %d\n", option, minimum,
                 maximum);
        return -1;
    }
    return (int)value;
}

static void s_usage (FILE *stream)
{
    fprintf (
        stream,
        "usage: matterlink [--config FILE | --admin ENDPOINT] [--json] [--timeout MS] COMMAND\n"
        "\n"
        "commands:\n"
        "  status                                  firms, their agents and replicas\n"
        "  open-items --firm F [--client C] [--matter M]\n"
        "                                          open invoices, oldest first\n"
        "  pay --firm F (--client C | --matter M) --amount A [--currency CUR]\n"
        "      [--payer-name N] [--payer-email E] [--message TEXT] [--account NUMBER]\n"
        "      [--wait SECONDS]                    pay oldest invoices first and post it\n"
        "  postings [--firm F] [--status S] [--limit N]\n"
        "  posting UUID                            one posting, its lines and history\n"
        "  resend UUID                             deliver a posting again\n"
        "\n"
        "The admin endpoint comes from --admin, or admin/endpoint in --config FILE\n"
        "(default: $MATTERLINK_CORE_CONFIG, else /etc/matterlink/core.cfg).\n");
}

//  Send one request and wait for the reply. Returns the reply (new), or NULL after
//  printing why.
static json_t *s_call (s_cli_t *self, json_t *request)
{
    char *text = json_dumps (request, JSON_COMPACT);
    zstr_send (self->socket, text);
    free (text);
    char *answer = zstr_recv (self->socket);
    if (!answer) {
        fprintf (stderr,
                 "matterlink: the core does not answer at %s within %d ms (is matterlink-core "
                 "running?)\n",
                 self->admin, self->timeout_ms);
        return NULL;
    }
    json_t *reply = json_loads (answer, 0, NULL);
    zstr_free (&answer);
    if (!reply)
        fprintf (stderr, "matterlink: the core's reply is not JSON\n");
    return reply;
}

static const char *s_text (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value ? value : "";
}

static const char *s_money (json_t *object, const char *key, const char *currency, char *buf,
                            size_t size)
{
    return ml_money_format (json_integer_value (json_object_get (object, key)), currency, buf,
                            size);
}

static void s_print_status (json_t *reply)
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
                json_integer_value (json_object_get (firm, "complete")) ? "complete"
                                                                        : "waiting for snapshot",
                (long long)json_integer_value (json_object_get (firm, "cursor")));
        const char *currency = s_text (firm, "open_balance_currency");
        if (streq (currency, "mixed") || !*currency)
            printf ("  open invoices:   %lld%s\n",
                    (long long)json_integer_value (json_object_get (firm, "invoice_count")),
                    *currency ? " (in several currencies)" : "");
        else
            printf ("  open invoices:   %lld, %s outstanding\n",
                    (long long)json_integer_value (json_object_get (firm, "invoice_count")),
                    s_money (firm, "open_balance_minor", currency, money, sizeof money));
        printf ("  trust ledgers:   %lld\n",
                (long long)json_integer_value (json_object_get (firm, "trust_ledger_count")));
        printf ("  postings:        %lld posted, %lld waiting, %lld rejected\n",
                (long long)json_integer_value (json_object_get (firm, "posted_posting_count")),
                (long long)json_integer_value (json_object_get (firm, "unanswered_posting_count")),
                (long long)json_integer_value (json_object_get (firm, "rejected_posting_count")));
    }
}

static void s_print_items (json_t *reply)
{
    json_t *items = json_object_get (reply, "items");
    printf ("%-14s %-10s %-10s %-12s %-28s %16s %16s\n", "Invoice", "Date", "Client", "Matter",
            "Client name", "Balance", "Available");
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        char balance[64], available[64];
        printf ("%-14s %-10s %-10s %-12s %-28.28s %16s %16s\n", s_text (item, "invoice_number"),
                s_text (item, "invoice_date"), s_text (item, "client_number"),
                s_text (item, "matter_number"), s_text (item, "client_name"),
                s_money (item, "balance_minor", s_text (item, "currency"), balance, sizeof balance),
                s_money (item, "available_minor", s_text (item, "currency"), available,
                         sizeof available));
    }
    printf ("%zu open invoice%s\n", json_array_size (items),
            json_array_size (items) == 1 ? "" : "s");
}

static void s_print_postings (json_t *reply)
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
}

static void s_print_posting (json_t *posting)
{
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
}

//  Poll a posting until it is posted or rejected. Returns an exit code.
static int s_wait (s_cli_t *self, const char *uuid, int seconds)
{
    int64_t deadline = zclock_mono () + (int64_t)seconds * 1000;
    json_t *request = json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid", uuid);
    int code = S_EXIT_WAIT;
    while (zclock_mono () < deadline) {
        json_t *reply = s_call (self, request);
        if (!reply) {
            code = S_EXIT_UNREACHABLE;
            break;
        }
        json_t *posting = json_object_get (reply, "posting");
        const char *status = s_text (posting, "status");
        if (streq (status, "posted") || streq (status, "rejected")) {
            if (self->json) {
                json_object_del (reply, "ok");
                char *text = json_dumps (reply, JSON_INDENT (2) | JSON_SORT_KEYS);
                printf ("%s\n", text);
                free (text);
            } else if (streq (status, "posted"))
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
        fprintf (stderr,
                 "matterlink: posting %s is not final after %d s (it stays queued and "
                 "is delivered when the agent is reachable)\n",
                 uuid, seconds);
    json_decref (request);
    return code;
}

int main (int argc, char *argv[])
{
    s_cli_t cli = {NULL, false, 5000, NULL};
    const char *config_path = getenv ("MATTERLINK_CORE_CONFIG");
    if (!config_path)
        config_path = "/etc/matterlink/core.cfg";
    int index = 1;
    for (; index < argc && argv[index][0] == '-'; index++) {
        if (streq (argv[index], "--json"))
            cli.json = true;
        else if (streq (argv[index], "--config") && index + 1 < argc)
            config_path = argv[++index];
        else if (streq (argv[index], "--admin") && index + 1 < argc)
            cli.admin = argv[++index];
        else if (streq (argv[index], "--timeout") && index + 1 < argc) {
            cli.timeout_ms = s_number ("--timeout", argv[++index], 1, 3600000);
            if (cli.timeout_ms < 0)
                return S_EXIT_USAGE;
        } else if (streq (argv[index], "-h") || streq (argv[index], "--help")) {
            s_usage (stdout);
            return 0;
        } else {
            fprintf (stderr, "matterlink: unknown option '%s'\n", argv[index]);
            s_usage (stderr);
            return S_EXIT_USAGE;
        }
    }
    if (index >= argc) {
        s_usage (stderr);
        return S_EXIT_USAGE;
    }
    const char *command = argv[index++];
    json_t *request = json_object ();
    json_object_set_new (request, "op", json_string (command));
    int wait_seconds = 0;
    //  Command options map to request fields; a bare argument is the posting UUID.
    static const char *options[][2] = {{"--firm", "firm"},
                                       {"--client", "client"},
                                       {"--matter", "matter"},
                                       {"--amount", "amount"},
                                       {"--currency", "currency"},
                                       {"--payer-name", "payer_name"},
                                       {"--payer-email", "payer_email"},
                                       {"--message", "ar_message"},
                                       {"--account", "account"},
                                       {"--status", "status"}};
    for (; index < argc; index++) {
        bool matched = false;
        for (size_t option = 0; option < sizeof options / sizeof options[0]; option++)
            if (streq (argv[index], options[option][0]) && index + 1 < argc) {
                json_t *value = json_string (argv[++index]);
                if (!value) {
                    fprintf (stderr, "matterlink: %s must be UTF-8 text\n", options[option][0]);
                    return S_EXIT_USAGE;
                }
                json_object_set_new (request, options[option][1], value);
                matched = true;
            }
        if (matched)
            continue;
        if (streq (argv[index], "--limit") && index + 1 < argc) {
            int limit = s_number ("--limit", argv[++index], 1, 10000);
            if (limit < 0)
                return S_EXIT_USAGE;
            json_object_set_new (request, "limit", json_integer (limit));
        } else if (streq (argv[index], "--wait") && index + 1 < argc) {
            wait_seconds = s_number ("--wait", argv[++index], 1, 86400);
            if (wait_seconds < 0)
                return S_EXIT_USAGE;
        } else if (argv[index][0] != '-' && !json_object_get (request, "posting_uuid"))
            json_object_set_new (request, "posting_uuid", json_string (argv[index]));
        else {
            fprintf (stderr, "matterlink: unknown or incomplete argument '%s'\n", argv[index]);
            s_usage (stderr);
            return S_EXIT_USAGE;
        }
    }
    ml_config_t *config = NULL;
    if (!cli.admin) {
        char error[600];
        config = ml_config_load (config_path, error, sizeof error);
        if (!config) {
            fprintf (stderr, "matterlink: %s (or give --admin ENDPOINT)\n", error);
            return S_EXIT_USAGE;
        }
        cli.admin = ml_config_string (config, "admin/endpoint", NULL);
        if (ml_config_error (config)) {
            fprintf (stderr, "matterlink: %s\n", ml_config_error (config));
            return S_EXIT_USAGE;
        }
    }
    cli.socket = zsock_new (ZMQ_REQ);
    zsock_set_rcvtimeo (cli.socket, cli.timeout_ms);
    zsock_set_sndtimeo (cli.socket, cli.timeout_ms);
    zsock_set_linger (cli.socket, 0);
    int code = 0;
    if (zsock_connect (cli.socket, "%s", cli.admin) != 0) {
        fprintf (stderr, "matterlink: '%s' is not a valid admin endpoint\n", cli.admin);
        code = S_EXIT_USAGE;
    }
    json_t *reply = code ? NULL : s_call (&cli, request);
    if (!code && !reply)
        code = S_EXIT_UNREACHABLE;
    else if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        fprintf (stderr, "matterlink: %s\n", s_text (reply, "error"));
        code = S_EXIT_REFUSED;
    } else if (reply) {
        if (cli.json && !(streq (command, "pay") && wait_seconds > 0)) {
            json_object_del (reply, "ok");
            char *text = json_dumps (reply, JSON_INDENT (2) | JSON_SORT_KEYS);
            printf ("%s\n", text);
            free (text);
        } else if (streq (command, "status"))
            s_print_status (reply);
        else if (streq (command, "open-items"))
            s_print_items (reply);
        else if (streq (command, "postings"))
            s_print_postings (reply);
        else if (streq (command, "posting") || streq (command, "resend"))
            s_print_posting (json_object_get (reply, "posting"));
        else if (streq (command, "pay")) {
            char money[64];
            const char *currency = s_text (reply, "currency");
            if (!cli.json) {
                printf ("Payment of %s for client %s recorded as posting %s\n",
                        s_money (reply, "amount_minor", currency, money, sizeof money),
                        s_text (reply, "client_number"), s_text (reply, "posting_uuid"));
                printf ("  %-16s %16s\n", "Invoice", "Applied");
                size_t line_index;
                json_t *line;
                json_array_foreach (json_object_get (reply, "lines"), line_index, line)
                {
                    printf ("  %-16s %16s\n", s_text (line, "invoice_number"),
                            s_money (line, "amount_minor", currency, money, sizeof money));
                }
            }
            if (wait_seconds > 0)
                code = s_wait (&cli, s_text (reply, "posting_uuid"), wait_seconds);
        }
    }
    json_decref (reply);
    json_decref (request);
    zsock_destroy (&cli.socket);
    ml_config_destroy (&config);
    return code;
}
