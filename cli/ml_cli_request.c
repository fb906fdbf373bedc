/*  matterlink CLI: talking to the core: the admin socket, one request and its reply, and the usual
   steps of a command (build the request, fill in the firm and staff, ask, print).
*/
#include "ml_cli.h"

//  Without --timeout, how long to wait for a reply: this long, or, for an op that makes the
//  core wait for the firm's agent longer, that wait and S_TIMEOUT_SLACK_MS more, so the
//  core's own error ("did not answer within N ms") arrives before the command gives up. A
//  core that goes away (stopped, killed, restarted) mid-request is seen at once: its
//  connection closes.
#define S_TIMEOUT_MS       30000
#define S_TIMEOUT_SLACK_MS 2000
//  A running core takes a request at once (its I/O thread does, however busy the core is):
//  a connection not made within this long (or --timeout, if shorter) means nothing was sent.
#define S_SEND_TIMEOUT_MS 5000

//  ---------------------------------------------------------------------------------------
//  Talking to the core

//  For an ipc:// endpoint, whether this user can reach the socket file at all: a plain
//  connect, closed at once, tells apart what ZeroMQ would only show as a core that does not
//  answer (it retries a refused connection silently). Returns 0 (or an endpoint of another
//  kind: nothing to check), or ML_CLI_EXIT_UNREACHABLE after saying why.
static int s_probe_ipc (const char *endpoint)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    const char *path = strncmp (endpoint, "ipc://", 6) == 0 ? endpoint + 6 : NULL;
    //  An abstract socket ("@name") has no file; a path too long for sun_path is left to
    //  ZeroMQ's own error.
    if (!path || !*path || *path == '@' || strlen (path) >= sizeof address.sun_path)
        return 0;
    memcpy (address.sun_path, path, strlen (path) + 1);
    int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect (fd, (struct sockaddr *)&address, sizeof address);
    int error = errno;
    close (fd);
    if (rc == 0)
        return 0;
    struct passwd *user = getpwuid (geteuid ());
    if (error == EACCES || error == EPERM)
        ml_cli_error ("permission denied: %s may not use the core's admin socket %s (it belongs "
                      "to the core's user: run the command as that user, e.g. 'sudo -u "
                      "matterlink matterlink ...')",
                      user && user->pw_name ? user->pw_name : "this user", path);
    else if (error == ENOENT)
        ml_cli_error ("the core's admin socket %s does not exist (is matterlink-core running, "
                      "and is this its admin endpoint?)",
                      path);
    else if (error == ECONNREFUSED)
        ml_cli_error ("nothing listens on the core's admin socket %s (is matterlink-core "
                      "running?)",
                      path);
    else
        ml_cli_error ("cannot reach the core's admin socket %s: %s", path, strerror (error));
    return ML_CLI_EXIT_UNREACHABLE;
}

//  Close the admin socket, if open.
void ml_cli_close (ml_cli_t *cli)
{
    zsock_destroy (&cli->monitor);
    zsock_destroy (&cli->socket);
}

static int s_connect (ml_cli_t *cli)
{
    if (cli->socket)
        return 0;
    if (!cli->admin) {
        char error[600];
        cli->config = ml_config_load (cli->config_path, error, sizeof error);
        if (!cli->config) {
            ml_cli_error ("%s (or give --admin ENDPOINT)", error);
            return ML_CLI_EXIT_USAGE;
        }
        cli->admin = ml_config_string (cli->config, "admin/endpoint", NULL);
        if (ml_config_error (cli->config)) {
            ml_cli_error ("%s", ml_config_error (cli->config));
            return ML_CLI_EXIT_USAGE;
        }
    }
    int code = s_probe_ipc (cli->admin);
    if (code)
        return code;
    cli->socket = zsock_new (ZMQ_REQ);
    assert (cli->socket);
    zsock_set_linger (cli->socket, 0);
    //  Watch the connection: a core that dies after taking the request closes it, and no
    //  answer can come any more.
    char monitor[64];
    snprintf (monitor, sizeof monitor, "inproc://ml-cli-monitor-%p", (void *)cli);
    int rc = zmq_socket_monitor (zsock_resolve (cli->socket), monitor, ZMQ_EVENT_DISCONNECTED);
    assert (rc == 0);
    cli->monitor = zsock_new (ZMQ_PAIR);
    assert (cli->monitor);
    rc = zsock_connect (cli->monitor, "%s", monitor);
    assert (rc == 0);
    //  Only a connection made takes a request, so with no core to connect to the send fails
    //  and the request has certainly gone nowhere (which matters for a card payment).
    zsock_set_immediate (cli->socket, 1);
    if (zsock_connect (cli->socket, "%s", cli->admin) != 0) {
        ml_cli_error ("'%s' is not a valid admin endpoint", cli->admin);
        ml_cli_close (cli);
        return ML_CLI_EXIT_USAGE;
    }
    return 0;
}

//  Free a request's text, wiped first: it may hold a card. hint is its size.
static void s_wipe_free (void *data, void *hint)
{
    explicit_bzero (data, (size_t)(uintptr_t)hint);
    free (data);
}

//  Whether the monitor reported that the connection to the core closed; reads what it has.
static bool s_disconnected (ml_cli_t *cli)
{
    bool closed = false;
    while (zsock_events (cli->monitor) & ZMQ_POLLIN) {
        zmsg_t *event = zmsg_recv (cli->monitor);
        zframe_t *frame = zmsg_first (event);
        uint16_t kind = 0;
        if (frame && zframe_size (frame) >= sizeof kind)
            memcpy (&kind, zframe_data (frame), sizeof kind);
        closed |= kind == ZMQ_EVENT_DISCONNECTED;
        zmsg_destroy (&event);
    }
    return closed;
}

//  Say that the request op got no (usable) answer: why, in what (what has happened), and,
//  for the command's own request when the command changes something, that the request may
//  have taken effect and how to find out. Returns the exit code: 6 for such a request, else 3.
static int s_unanswered (ml_cli_t *cli, const char *op, const char *what)
{
    const ml_cli_command_t *command = cli->command;
    bool writes = command && command->unanswered && op && streq (op, command->op);
    if (!writes) {
        ml_cli_error ("%s (is matterlink-core running?)", what);
        return ML_CLI_EXIT_UNREACHABLE;
    }
    ml_cli_error ("%s: the request reached the core, so %s", what,
                  *cli->unanswered ? cli->unanswered : command->unanswered);
    return ML_CLI_EXIT_NO_ANSWER;
}

//  Send text (a request for op; steals it) and wait for the reply: up to --timeout, else
//  30 s or long enough for the core to wait wait_ms for the firm's agent, unless the core
//  goes away first. libzmq sends text itself, not a copy, and wipes it when done. Returns 0 with
//  *reply set (new reference, ok or not), or the exit code after saying why: 2 no usable endpoint,
//  3 the core could not be reached (nothing was sent) or did not answer a request that changes
//  nothing, 6 it did not answer one that may have changed something.
static int s_exchange_text (ml_cli_t *cli, char *text, const char *op, int wait_ms, json_t **reply)
{
    *reply = NULL;
    assert (text);
    size_t size = strlen (text);
    int code = s_connect (cli);
    if (code) {
        s_wipe_free (text, (void *)(uintptr_t)(size + 1));
        return code;
    }
    int timeout = cli->timeout_ms;
    if (!timeout)
        timeout = wait_ms + S_TIMEOUT_SLACK_MS > S_TIMEOUT_MS ? wait_ms + S_TIMEOUT_SLACK_MS
                                                              : S_TIMEOUT_MS;
    int send_timeout = timeout < S_SEND_TIMEOUT_MS ? timeout : S_SEND_TIMEOUT_MS;
    zsock_set_sndtimeo (cli->socket, send_timeout);
    //  What happened to connections before this request does not concern it.
    s_disconnected (cli);
    zmq_msg_t message;
    int rc = zmq_msg_init_data (&message, text, size, s_wipe_free, (void *)(uintptr_t)(size + 1));
    assert (rc == 0);
    rc = zmq_msg_send (&message, zsock_resolve (cli->socket), 0);
    if (rc < 0) {
        zmq_msg_close (&message);
        ml_cli_error ("the core at %s did not take the request within %d ms, so nothing was "
                      "sent (is matterlink-core running, or stopped?)",
                      cli->admin, send_timeout);
        return ML_CLI_EXIT_UNREACHABLE;
    }
    char *answer = NULL;
    bool closed = false;
    zpoller_t *poller = zpoller_new (cli->socket, cli->monitor, NULL);
    assert (poller);
    int64_t deadline = zclock_mono () + timeout;
    while (!answer && !closed && !zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        void *ready = zpoller_wait (poller, (int)left);
        if (ready == cli->socket)
            answer = zstr_recv (cli->socket);
        else if (ready == cli->monitor)
            closed = s_disconnected (cli);
        else if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    char what[300];
    if (!answer) {
        if (closed)
            snprintf (what, sizeof what,
                      "the core at %s closed the connection before answering (it stopped or "
                      "restarted)",
                      cli->admin);
        else if (zsys_interrupted)
            snprintf (what, sizeof what, "interrupted before the core at %s answered", cli->admin);
        else
            snprintf (what, sizeof what, "no answer from the core at %s within %d %s", cli->admin,
                      timeout % 1000 ? timeout : timeout / 1000, timeout % 1000 ? "ms" : "s");
        return s_unanswered (cli, op, what);
    }
    *reply = json_loads (answer, 0, NULL);
    zstr_free (&answer);
    if (!*reply || !json_is_object (*reply)) {
        json_decref (*reply);
        *reply = NULL;
        snprintf (what, sizeof what, "the reply of the core at %s is not JSON", cli->admin);
        return s_unanswered (cli, op, what);
    }
    return 0;
}

//  The op of request, into op (size bytes; "" if it has none).
static void s_op (json_t *request, char *op, size_t size)
{
    const char *name = json_string_value (json_object_get (request, "op"));
    snprintf (op, size, "%s", name ? name : "");
}

//  As s_exchange_text, with request as JSON (steals it).
int ml_cli_exchange (ml_cli_t *cli, json_t *request, int wait_ms, json_t **reply)
{
    char op[64];
    s_op (request, op, sizeof op);
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    return s_exchange_text (cli, text, op, wait_ms, reply);
}

//  As s_exchange_text, but a refusal is said (prefixed with context when not NULL) and
//  returns 1; *reply is set only on success.
int ml_cli_ask_text (ml_cli_t *cli, char *text, const char *op, int wait_ms, const char *context,
                     json_t **reply)
{
    int code = s_exchange_text (cli, text, op, wait_ms, reply);
    if (code == 0 && !json_is_true (json_object_get (*reply, "ok"))) {
        ml_cli_error ("%s%s%s", context ? context : "", context ? ": " : "",
                      ml_cli_text (*reply, "error"));
        json_decref (*reply);
        *reply = NULL;
        code = ML_CLI_EXIT_REFUSED;
    }
    return code;
}

//  As ml_cli_ask_text, with request as JSON (steals it).
int ml_cli_ask (ml_cli_t *cli, json_t *request, int wait_ms, const char *context, json_t **reply)
{
    char op[64];
    s_op (request, op, sizeof op);
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    return ml_cli_ask_text (cli, text, op, wait_ms, context, reply);
}

//  How long the core waits for the agent's answer to one search, in ms.
int ml_cli_deadline (const ml_cli_args_t *args)
{
    json_t *deadline = ml_cli_arg (args, "--deadline");
    return deadline ? (int)json_integer_value (deadline) : ML_FINDER_DEADLINE_MS;
}

//  How long the core may wait on this command's request, for the firm's agent or the card
//  processor, in ms.
int ml_cli_core_wait (const ml_cli_args_t *args)
{
    unsigned flags = args->command->flags;
    return flags & ML_CLI_WAITS_TWICE ? 2 * ml_cli_deadline (args)
           : flags & ML_CLI_WAITS     ? ml_cli_deadline (args)
                                      : 0;
}

//  The staff user: --staff, else $MATTERLINK_STAFF, else $SUDO_USER (whoever ran sudo -u
//  matterlink), else the login name. NULL when there is none.
static const char *s_staff (ml_cli_t *cli)
{
    if (cli->staff)
        return cli->staff;
    const char *sources[] = {getenv ("MATTERLINK_STAFF"), getenv ("SUDO_USER")};
    for (size_t index = 0; index < 2; index++)
        if (sources[index] && *sources[index])
            return sources[index];
    struct passwd *entry = getpwuid (getuid ());
    return entry && entry->pw_name && *entry->pw_name ? entry->pw_name : NULL;
}

//  Add "staff" to request. With required, no usable name is a usage error (2).
int ml_cli_add_staff (ml_cli_t *cli, const ml_cli_command_t *command, json_t *request,
                      bool required)
{
    const char *staff = s_staff (cli);
    json_t *name =
        staff && strlen (staff) <= 64 && ml_cli_is_printable (staff) ? json_string (staff) : NULL;
    if (name)
        json_object_set_new (request, "staff", name);
    else if (required) {
        ml_cli_usage_error (command,
                            "no usable staff name (1 to 64 bytes of printable UTF-8): give --staff "
                            "NAME or set MATTERLINK_STAFF");
        return ML_CLI_EXIT_USAGE;
    }
    return 0;
}

//  Without --firm, the core's only firm: asks status. Several firms are a usage error.
int ml_cli_fill_firm (ml_cli_t *cli, const ml_cli_command_t *command, json_t *request)
{
    if (json_object_get (request, "firm"))
        return 0;
    json_t *reply = NULL;
    int code = ml_cli_ask (cli, json_pack ("{s:s}", "op", "status"), 0, NULL, &reply);
    if (code)
        return code;
    json_t *firms = json_object_get (reply, "firms");
    if (json_array_size (firms) == 1)
        json_object_set (request, "firm", json_object_get (json_array_get (firms, 0), "firm_id"));
    else if (json_array_size (firms) == 0) {
        ml_cli_error ("the core has no firms registered yet (matterlink-core register-agent)");
        code = ML_CLI_EXIT_REFUSED;
    } else {
        char list[512] = "";
        size_t index;
        json_t *firm;
        json_array_foreach (firms, index, firm)
        {
            size_t used = strlen (list);
            snprintf (list + used, sizeof list - used, "%s%s", index ? ", " : "",
                      ml_cli_text (firm, "firm_id"));
        }
        ml_cli_usage_error (command, "say which firm with --firm: the core has %s", list);
        code = ML_CLI_EXIT_USAGE;
    }
    json_decref (reply);
    return code;
}

//  The usual request: built from the command line, prepared, and completed with the firm
//  and staff. Returns 0 with *request (new reference) or the exit code.
int ml_cli_request_build (ml_cli_t *cli, const ml_cli_args_t *args, json_t **request)
{
    const ml_cli_command_t *command = args->command;
    *request = ml_cli_request_new (args);
    int code =
        command->flags & ML_CLI_SENDS_STAFF ? ml_cli_add_staff (cli, command, *request, false) : 0;
    if (!code && command->prepare)
        code = command->prepare (cli, args, *request);
    if (!code && command->flags & ML_CLI_NEEDS_FIRM)
        code = ml_cli_fill_firm (cli, command, *request);
    if (code) {
        json_decref (*request);
        *request = NULL;
    }
    return code;
}

//  The usual steps: build the request and ask. Returns 0 with *reply (new reference) or the
//  exit code.
int ml_cli_request (ml_cli_t *cli, const ml_cli_args_t *args, json_t **reply)
{
    *reply = NULL;
    json_t *request = NULL;
    int code = ml_cli_request_build (cli, args, &request);
    return code ? code : ml_cli_ask (cli, request, ml_cli_core_wait (args), NULL, reply);
}

int ml_cli_run_usual (ml_cli_t *cli, const ml_cli_args_t *args)
{
    json_t *reply = NULL;
    int code = ml_cli_request (cli, args, &reply);
    if (code)
        return code;
    //  Any op may warn (a schedule whose failure alert has nobody to reach, ...): the
    //  warnings go to standard error whatever the output, so scripts see them too.
    size_t index;
    json_t *warning;
    json_array_foreach (json_object_get (reply, "warnings"), index, warning)
    {
        if (!json_is_string (warning))
            continue;
        fprintf (stderr, "matterlink: warning: ");
        ml_cli_put_clean (stderr, json_string_value (warning), SIZE_MAX);
        fprintf (stderr, "\n");
    }
    if (cli->json || !args->command->print)
        ml_cli_print_json (reply);
    else {
        //  For people: what the core sent, with what a terminal must not get escaped.
        json_t *shown = ml_cli_display (reply);
        code = args->command->print (cli, args, shown);
        json_decref (shown);
    }
    json_decref (reply);
    return code;
}
