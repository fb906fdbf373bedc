/*  matterlink-web: the payer portal's HTTP server (docs/web.md). */
#include "ml_config.h"
#include "ml_log.h"
#include "ml_service.h"
#include "ml_web_server.h"

#include <czmq.h>

static void s_usage (FILE *stream)
{
    fprintf (stream, "usage: matterlink-web run -c FILE [--log-level LEVEL]\n"
                     "       matterlink-web --help | --version\n"
                     "\n"
                     "  run  serve the payer portal (stops on SIGINT or SIGTERM)\n");
}

int main (int argc, char *argv[])
{
    const char *command = NULL, *config_path = NULL, *level_text = "notice";
    ml_service_option_t options[] = {
        {"--config", "-c", &config_path}, {"--log-level", NULL, &level_text}, {NULL, NULL, NULL}};
    int ended =
        ml_service_command_line ("matterlink-web", s_usage, argc, argv, "run", options, &command);
    if (ended >= 0)
        return ended;
    ml_log_level_t level;
    if (ml_log_level_parse (level_text, &level) != 0) {
        fprintf (stderr, "matterlink-web: unknown log level '%s'\n", level_text);
        return 2;
    }
    ml_log_setup ("web", level);
    ml_service_private_files ();
    ml_web_settings_t settings;
    char error[800];
    if (ml_config_check_file (config_path, ml_web_settings_keys (), error, sizeof error) != 0 ||
        ml_web_settings_load (&settings, config_path, error, sizeof error) != 0) {
        fprintf (stderr, "matterlink-web: %s\n", error);
        return 2;
    }
    //  czmq's signal handling sets zsys_interrupted; start it before the server's threads.
    zsys_init ();
    ml_web_server_t *server = ml_web_server_new (&settings, error, sizeof error);
    if (!server) {
        fprintf (stderr, "matterlink-web: %s\n", error);
        return 1;
    }
    ml_log (ML_LOG_NOTICE, "serving the payer portal on %s (port %d, %s)", settings.listen,
            ml_web_server_port (server),
            *settings.tls_certificate ? "HTTPS"
            : settings.proxy_https    ? "HTTP behind a TLS proxy"
                                      : "plain HTTP on loopback");
    if (strncmp (settings.core_endpoint, "ipc://", 6) != 0)
        ml_log (ML_LOG_WARNING,
                "web/core_endpoint is not an ipc:// socket: requests to the core (passwords, "
                "session tokens) cross the network unencrypted; protect that path (docs/web.md)");
    while (!zsys_interrupted)
        zclock_sleep (200);
    ml_log (ML_LOG_NOTICE, "stopping");
    ml_web_server_destroy (&server);
    return 0;
}
