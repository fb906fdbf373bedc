/*  matterlink-agent: the agent daemon. Parses arguments, loads the configuration, starts
    the agent actor and waits for a signal. */
#include "ml_agent.h"
#include "ml_config.h"
#include "ml_contract.h"
#include "ml_keygen.h"
#include "ml_log.h"
#include "ml_service.h"

#include <sodium.h>

//  Every key agent.cfg may hold (docs/config.md): any other is a misspelling to report.
static const char *const s_known_keys[] = {"agent/certificate",
                                           "database/dialect",
                                           "database/connection",
                                           "database/batch_rows",
                                           "database/poll_interval_ms",
                                           "database/snapshot_rows_per_second",
                                           "database/statement_timeout_ms",
                                           "core/endpoint",
                                           "core/public_key",
                                           "core/others",
                                           NULL};

static void s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: matterlink-agent run -c FILE [--log-level LEVEL]\n"
             "       matterlink-agent check -c FILE [--timeout SECONDS]\n"
             "       matterlink-agent keygen --out PATH\n"
             "       matterlink-agent --help | --version\n"
             "\n"
             "  run     run the agent: replicate the matter database to the core and apply\n"
             "          postings (stops on SIGINT or SIGTERM)\n"
             "  check   connect to the matter database and check the installed contract, then\n"
             "          reach the core: CURVE handshake and HELLO within SECONDS (default 5)\n"
             "  keygen  make the agent's certificate: PATH (public, give it to the core's\n"
             "          operator) and PATH_secret (keep it here; agent/certificate points at it)\n"
             "  LEVEL   error, warning, notice (default), info or debug\n");
}

//  check: the matter database and its contract, then the core (handshake and HELLO). Both are
//  checked and reported, so one run tells IT everything that is wrong. Exit 0 when both are
//  right, else 1.
static int s_check (const ml_agent_settings_t *settings, ml_contract_t *contract,
                    const ml_odbc_error_t *odbc_error, int timeout_ms)
{
    bool database_ok = false;
    char text[800], epoch[64] = "";
    uint64_t high_water = 0;
    if (!contract) {
        char escaped[600];
        fprintf (stderr, "matterlink-agent: cannot connect to the matter database: %s\n",
                 ml_log_escape (odbc_error->message, escaped, sizeof escaped));
    } else if (ml_contract_check (contract, text, sizeof text, epoch, sizeof epoch) != 0)
        fprintf (stderr, "matterlink-agent: %s\n", text);
    else if (ml_contract_high_water (contract, &high_water) != 0)
        fprintf (stderr, "matterlink-agent: cannot read the matter database's change high-water\n");
    else {
        printf ("matter database OK: contract version %d, epoch %s\n", ML_CONTRACT_VERSION, epoch);
        database_ok = true;
    }
    ml_contract_destroy (&contract);
    fflush (stdout);
    //  The public certificate keygen wrote beside the secret one: what register-agent takes.
    char public_path[600];
    snprintf (public_path, sizeof public_path, "%s", settings->certificate);
    size_t length = strlen (public_path);
    if (length > 7 && streq (public_path + length - 7, "_secret"))
        public_path[length - 7] = 0;
    //  Every core node the agent may talk to (core/endpoint, then core/others), each with the
    //  key pinned for it: a failover goes only to a node that accepts this agent.
    size_t nodes = 1 + settings->other_count, accepted = 0;
    for (size_t index = 0; index < nodes; index++) {
        ml_agent_settings_t node = *settings;
        if (index > 0) {
            snprintf (node.core_endpoint, sizeof node.core_endpoint, "%s",
                      settings->others[index - 1].endpoint);
            snprintf (node.core_public_key, sizeof node.core_public_key, "%s",
                      settings->others[index - 1].public_key);
        }
        ml_check_result_t result =
            ml_agent_check_core (&node, public_path, database_ok ? epoch : NULL,
                                 database_ok ? &high_water : NULL, timeout_ms, text, sizeof text);
        sodium_memzero (node.connection, sizeof node.connection);
        if (result == ML_CHECK_OK) {
            accepted++;
            printf ("%s\n", text);
        } else if (nodes > 1)
            fprintf (stderr, "matterlink-agent: core node %s: %s\n", node.core_endpoint, text);
        else
            fprintf (stderr, "matterlink-agent: %s\n", text);
        fflush (stdout);
    }
    if (nodes > 1) {
        FILE *stream = accepted == nodes ? stdout : stderr;
        fprintf (stream, "%score nodes: %zu of %zu accepted this agent\n",
                 accepted == nodes ? "" : "matterlink-agent: ", accepted, nodes);
    }
    return database_ok && accepted == nodes ? 0 : 1;
}

int main (int argc, char *argv[])
{
    const char *command = NULL, *config_path = NULL, *out = NULL, *level_text = "notice";
    const char *timeout_text = "5";
    ml_service_option_t options[] = {{"--config", "-c", &config_path},
                                     {"--out", NULL, &out},
                                     {"--log-level", NULL, &level_text},
                                     {"--timeout", NULL, &timeout_text},
                                     {NULL, NULL, NULL}};
    int ended = ml_service_command_line ("matterlink-agent", s_usage, argc, argv,
                                         "run check keygen", options, &command);
    if (ended >= 0)
        return ended;
    ml_log_level_t level;
    if (ml_log_level_parse (level_text, &level) != 0) {
        fprintf (stderr, "matterlink-agent: unknown log level '%s'\n", level_text);
        return 2;
    }
    char *end = NULL;
    long timeout = strtol (timeout_text, &end, 10);
    if (*end || timeout < 1 || timeout > 600) {
        fprintf (stderr, "matterlink-agent: --timeout is whole seconds, 1 to 600, not '%s'\n",
                 timeout_text);
        return 2;
    }
    ml_log_setup ("agent", level);
    if (streq (command, "keygen")) {
        char key[41], error[600];
        if (ml_keygen (out, "agent", key, error, sizeof error) != 0) {
            fprintf (stderr, "matterlink-agent: %s\n", error);
            return 1;
        }
        printf ("agent certificate written: %s (public) and %s_secret (secret, mode 0600)\n"
                "agent public key: %s\n",
                out, out, key);
        return 0;
    }
    //  From here on every file made (the store, its -wal and -shm, registered agents'
    //  certificates) is this user's only, whatever umask the service was started with.
    ml_service_private_files ();
    ml_agent_settings_t settings;
    char error[600];
    if (ml_config_check_file (config_path, s_known_keys, error, sizeof error) != 0 ||
        ml_agent_settings_load (&settings, config_path, error, sizeof error) != 0) {
        fprintf (stderr, "matterlink-agent: %s\n", error);
        return 2;
    }
    //  Both commands start by checking the database: a daemon that would only log a
    //  contract mismatch forever is worse than one that refuses to start and says why.
    ml_odbc_error_t odbc_error;
    ml_contract_t *contract = ml_contract_new (settings.dialect, settings.connection, &odbc_error);
    if (streq (command, "check"))
        return s_check (&settings, contract, &odbc_error, (int)timeout * 1000);
    if (contract) {
        char text[800], epoch[64];
        int rc = ml_contract_check (contract, text, sizeof text, epoch, sizeof epoch);
        ml_contract_destroy (&contract);
        if (rc != 0) {
            fprintf (stderr, "matterlink-agent: %s\n", text);
            return 1;
        }
    } else
        ml_log (ML_LOG_WARNING, "matter database not reachable yet; the agent keeps trying");
    zactor_t *agent = ml_service_start (ml_agent_actor, &settings);
    if (!agent)
        return 1;
    //  czmq's signal handler sets zsys_interrupted; the poller returns on it.
    zpoller_t *poller = zpoller_new (agent, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, 1000);
        if (which == agent || zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zactor_destroy (&agent);
    return 0;
}
