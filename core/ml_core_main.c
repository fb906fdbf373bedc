/*  matterlink-core: the payment core daemon and its set-up commands. */
#include "ml_agent_keys.h"
#include "ml_config.h"
#include "ml_core.h"
#include "ml_keygen.h"
#include "ml_log.h"
#include "ml_service.h"
#include "ml_store.h"

#include <ctype.h>

//  Every key core.cfg may hold (docs/config.md, processor.md, mail.md): any other is a
//  misspelling to report, never a setting silently left at its default.
// clang-format off
static const char *const s_known_keys[] = {
    "core/endpoint", "core/certificate", "core/agents", "core/heartbeat_ms", "core/window",
    "core/redelivery_ms", "core/max_firm_items", "store/connection", "admin/endpoint",
    "admin/allow_tcp", "admin/group", "api/endpoint", "api/allow_tcp", "api/group", "core/readers",
    "portal/public_url", "portal/welcome_hours", "portal/reset_hours",
    "portal/session_idle_minutes", "portal/session_absolute_hours",
    "processor/kind", "processor/endpoint", "processor/api_key_file", "processor/timeout_ms",
    "processor/connect_timeout_ms", "processor/retries", "processor/retry_backoff_ms",
    "mail/smtp_url", "mail/from", "mail/from_name", "mail/starttls", "mail/ca_file",
    "mail/username", "mail/password_file", "mail/connect_timeout_ms", "mail/timeout_ms",
    "mail/retry_base_ms", "mail/retry_max_ms", "mail/max_attempts", "mail/poll_ms",
    "mail/outbox_key", "autopay/agent_wait_minutes",
    "core/node", "core/advertise", "core/lease_seconds", "core/forward", "core/forward_advertise",
    NULL};
// clang-format on

static void s_usage (FILE *stream)
{
    fprintf (stream,
             "usage: matterlink-core run -c FILE [--log-level LEVEL]\n"
             "       matterlink-core keygen --out PATH\n"
             "       matterlink-core register-agent -c FILE --firm ID --name NAME --cert PATH\n"
             "                                      [--operating-account NUMBER]\n"
             "       matterlink-core --help | --version\n"
             "\n"
             "  run             run the core (stops on SIGINT or SIGTERM)\n"
             "  keygen          make the core's certificate: PATH (public) and PATH_secret;\n"
             "                  agents pin the public key it prints\n"
             "  register-agent  let the agent whose public certificate is PATH connect for\n"
             "                  firm ID (letters, digits, '-' and '_'); postings go to the\n"
             "                  firm's operating account NUMBER (default OP-001)\n");
}

static bool s_valid_firm_id (const char *firm_id)
{
    size_t length = strlen (firm_id);
    if (length == 0 || length > 63)
        return false;
    for (size_t index = 0; index < length; index++)
        if (!isalnum ((unsigned char)firm_id[index]) && firm_id[index] != '-' &&
            firm_id[index] != '_')
            return false;
    return true;
}

static int s_register (ml_core_settings_t *settings, const char *firm_id, const char *name,
                       const char *cert_path, const char *account)
{
    if (!firm_id || !name || !cert_path) {
        fprintf (stderr, "matterlink-core: register-agent needs --firm, --name and --cert\n");
        return 2;
    }
    if (!s_valid_firm_id (firm_id)) {
        fprintf (stderr,
                 "matterlink-core: firm ID '%s' must be 1 to 63 letters, digits, '-' "
                 "or '_'\n",
                 firm_id);
        return 2;
    }
    char key[41], error[1400];
    if (ml_agent_keys_read (cert_path, key, error, sizeof error) != 0) {
        fprintf (stderr, "matterlink-core: %s\n", error);
        return 1;
    }
    //  One key, one firm: the session of a key is its firm's (the store refuses a key twice
    //  too, but another store, or a file copied in by hand, would not be seen there).
    ml_agent_keys_t *keys = ml_agent_keys_new (settings->agents);
    const char *holder = ml_agent_keys_file (keys, key);
    if (holder) {
        char shown[600];
        ml_log_escape (holder, shown, sizeof shown);
        fprintf (stderr,
                 "matterlink-core: the agent key %s is registered already (%s/%s): an agent "
                 "serves one firm, so each firm's agent needs its own key (matterlink-agent "
                 "keygen)\n",
                 key, settings->agents, shown);
        ml_agent_keys_destroy (&keys);
        return 1;
    }
    ml_agent_keys_destroy (&keys);
    uint8_t public_key[32], no_secret[32] = {0};
    zmq_z85_decode (public_key, key);
    zcert_t *certificate = zcert_new_from (public_key, no_secret);
    ml_store_t *store = ml_store_new (settings->store, error, sizeof error);
    if (!store) {
        fprintf (stderr, "matterlink-core: %s\n", error);
        zcert_destroy (&certificate);
        return 1;
    }
    //  The certificate first: if the store refuses the firm, the certificate is removed
    //  again, so a failed registration leaves nothing behind and can simply be retried.
    char path[1100];
    snprintf (path, sizeof path, "%s/%s.cert", settings->agents, firm_id);
    int rc = -1;
    if (zsys_file_exists (path))
        fprintf (stderr, "matterlink-core: %s exists: firm %s is registered already\n", path,
                 firm_id);
    else if (zcert_save_public (certificate, path) != 0)
        fprintf (stderr, "matterlink-core: cannot write %s (does the agents directory exist?)\n",
                 path);
    else if (ml_store_firm_add (store, firm_id, name, zcert_public_txt (certificate), account) !=
             0) {
        fprintf (stderr, "matterlink-core: cannot register firm %s: %s\n", firm_id,
                 ml_store_error (store)->message);
        unlink (path);
    } else {
        printf ("firm %s (%s) registered; its agent's key %s may connect\n", firm_id, name,
                zcert_public_txt (certificate));
        rc = 0;
    }
    ml_store_destroy (&store);
    zcert_destroy (&certificate);
    return rc == 0 ? 0 : 1;
}

int main (int argc, char *argv[])
{
    const char *command = NULL, *config_path = NULL, *out = NULL, *level_text = "notice";
    const char *firm_id = NULL, *name = NULL, *cert_path = NULL, *account = "OP-001";
    ml_service_option_t options[] = {{"--config", "-c", &config_path},
                                     {"--out", NULL, &out},
                                     {"--log-level", NULL, &level_text},
                                     {"--firm", NULL, &firm_id},
                                     {"--name", NULL, &name},
                                     {"--cert", NULL, &cert_path},
                                     {"--operating-account", NULL, &account},
                                     {NULL, NULL, NULL}};
    int ended = ml_service_command_line ("matterlink-core", s_usage, argc, argv,
                                         "run keygen register-agent", options, &command);
    if (ended >= 0)
        return ended;
    ml_log_level_t level;
    if (ml_log_level_parse (level_text, &level) != 0) {
        fprintf (stderr, "matterlink-core: unknown log level '%s'\n", level_text);
        return 2;
    }
    ml_log_setup ("core", level);
    if (streq (command, "keygen")) {
        char key[41], error[600];
        if (ml_keygen (out, "core", key, error, sizeof error) != 0) {
            fprintf (stderr, "matterlink-core: %s\n", error);
            return 1;
        }
        printf ("core certificate written: %s (public) and %s_secret (secret, mode 0600)\n"
                "core public key (agents pin it as core/public_key): %s\n",
                out, out, key);
        //  The outbox key's default place (mail/outbox_key): next to the certificate.
        char outbox_key[1100];
        const char *slash = strrchr (out, '/');
        snprintf (outbox_key, sizeof outbox_key, "%.*s%soutbox.key", slash ? (int)(slash - out) : 0,
                  out, slash ? "/" : "");
        if (zsys_file_exists (outbox_key))
            printf ("outbox key %s exists: kept\n", outbox_key);
        else if (ml_mailer_outbox_key_make (outbox_key, error, sizeof error) != 0) {
            fprintf (stderr, "matterlink-core: %s\n", error);
            return 1;
        } else
            printf ("outbox key written: %s (secret, mode 0600; keep it with the certificate)\n",
                    outbox_key);
        return 0;
    }
    //  From here on every file made (the store, its -wal and -shm, registered agents'
    //  certificates) is this user's only, whatever umask the service was started with.
    ml_service_private_files ();
    ml_core_settings_t settings;
    ml_service_admin_t admin, api;
    char error[800];
    if (ml_config_check_file (config_path, s_known_keys, error, sizeof error) != 0 ||
        ml_service_admin_load (&admin, config_path, error, sizeof error) != 0 ||
        ml_service_socket_load (&api, config_path, "api", false, error, sizeof error) != 0 ||
        ml_core_settings_load (&settings, config_path, error, sizeof error) != 0) {
        fprintf (stderr, "matterlink-core: %s\n", error);
        return 2;
    }
    if (streq (command, "register-agent")) {
        ml_processor_settings_wipe (&settings.processor);
        ml_mailer_settings_wipe (&settings.mail);
        return s_register (&settings, firm_id, name, cert_path, account);
    }
    zactor_t *core = ml_service_start (ml_core_actor, &settings);
    //  The actor made its processor from its own copy: this one's API key goes now.
    ml_processor_settings_wipe (&settings.processor);
    ml_mailer_settings_wipe (&settings.mail);
    if (!core)
        return 1;
    if (ml_service_admin_grant (&admin, error, sizeof error) != 0 ||
        ml_service_admin_grant (&api, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "%s", error);
        zactor_destroy (&core);
        return 1;
    }
    if (admin.allow_network)
        ml_log (ML_LOG_WARNING,
                "the admin API listens on %s (admin/allow_tcp = 1): it has no authentication, "
                "so anyone who can reach it can take payments",
                ml_log_escape (admin.endpoint, error, sizeof error));
    if (api.allow_network)
        ml_log (ML_LOG_WARNING,
                "the web API listens on %s (api/allow_tcp = 1): keep the network path to it "
                "between the core and matterlink-web protected",
                ml_log_escape (api.endpoint, error, sizeof error));
    zpoller_t *poller = zpoller_new (core, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, 1000);
        if (which == core || zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zactor_destroy (&core);
    return 0;
}
