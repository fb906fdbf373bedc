/*  ml_processor's settings (include/ml_processor.h): the [processor] section of core.cfg
    (docs/config.md, docs/processor.md), checked before the core starts.
*/
#include "ml_processor.h"
#include "ml_processor_internal.h"
#include "ml_processor_internal.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"
#include "ml_service.h"
#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void ml_processor_settings_defaults (ml_processor_settings_t *settings)
{
    assert (settings);
    memset (settings, 0, sizeof *settings);
    snprintf (settings->kind, sizeof settings->kind, "test");
    settings->connect_timeout_ms = 3000;
    settings->timeout_ms = 15000;
    settings->retries = 2;
    settings->retry_backoff_ms = 250;
}

void ml_processor_settings_wipe (ml_processor_settings_t *settings)
{
    if (settings)
        explicit_bzero (settings->api_key, sizeof settings->api_key);
}

//  An endpoint is https://HOST[:PORT][/PATH], or http:// to a loopback address only: a card
//  number and the API key never cross a network in clear. Returns 0 or -1 with error.
int ml_processor_check_endpoint (const char *endpoint, char *error, size_t error_size)
{
    char shown[300];
    ml_log_escape (endpoint, shown, sizeof shown);
    const char *authority = NULL;
    bool plain = false;
    if (strncmp (endpoint, "https://", 8) == 0)
        authority = endpoint + 8;
    else if (strncmp (endpoint, "http://", 7) == 0) {
        authority = endpoint + 7;
        plain = true;
    }
    if (!authority || !*authority || strlen (endpoint) > 250) {
        snprintf (error, error_size,
                  "processor/endpoint '%s' must be an https:// URL of up to 250 bytes", shown);
        return -1;
    }
    for (const char *cursor = endpoint; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f || *cursor == '?' || *cursor == '#') {
            snprintf (error, error_size,
                      "processor/endpoint '%s' may not hold spaces, control characters, '?' "
                      "or '#'",
                      shown);
            return -1;
        }
    size_t authority_length = strcspn (authority, "/");
    if (memchr (authority, '@', authority_length)) {
        snprintf (error, error_size,
                  "processor/endpoint may not hold a user name or password: put the key in "
                  "the file named by processor/api_key_file");
        return -1;
    }
    if (plain) {
        const char *loopback[] = {"127.0.0.1", "localhost", "[::1]"};
        bool local = false;
        for (size_t index = 0; index < 3; index++) {
            size_t length = strlen (loopback[index]);
            if (strncmp (authority, loopback[index], length) == 0 &&
                (authority[length] == ':' || authority[length] == '/' || !authority[length]))
                local = true;
        }
        if (!local) {
            snprintf (error, error_size,
                      "processor/endpoint '%s': plain http:// is allowed to a loopback address "
                      "only (card numbers and the API key would cross the network in clear); "
                      "use https://",
                      shown);
            return -1;
        }
    }
    return 0;
}

//  An API key goes into an HTTP header: printable ASCII without spaces, so it cannot end
//  the header or add one.
bool ml_processor_valid_api_key (const char *key)
{
    if (!key || !*key)
        return false;
    for (const char *cursor = key; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f)
            return false;
    return true;
}

int ml_processor_settings_load (ml_processor_settings_t *settings, ml_config_t *config, char *error,
                                size_t error_size)
{
    assert (settings && config);
    ml_processor_settings_defaults (settings);
    const char *kind = ml_config_string (config, "processor/kind", "test");
    bool http = streq (kind, "http");
    if (!http && !streq (kind, "test")) {
        char shown[64];
        snprintf (error, error_size, "processor/kind '%s' is not one of test, http",
                  ml_log_escape (kind, shown, sizeof shown));
        return -1;
    }
    snprintf (settings->kind, sizeof settings->kind, "%s", kind);
    settings->connect_timeout_ms =
        ml_config_int (config, "processor/connect_timeout_ms", 3000, 100, 60000);
    settings->timeout_ms = ml_config_int (config, "processor/timeout_ms", 15000, 100, 300000);
    settings->retries = ml_config_int (config, "processor/retries", 2, 0, 10);
    settings->retry_backoff_ms =
        ml_config_int (config, "processor/retry_backoff_ms", 250, 0, ML_PROCESSOR_BACKOFF_MAX_MS);
    const char *endpoint = http ? ml_config_string (config, "processor/endpoint", NULL) : "";
    const char *key_file = http ? ml_config_string (config, "processor/api_key_file", NULL) : "";
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        return -1;
    }
    if (!http)
        return 0;
    if (settings->timeout_ms < settings->connect_timeout_ms) {
        snprintf (error, error_size,
                  "processor/timeout_ms (%d) must be at least processor/connect_timeout_ms "
                  "(%d): it covers the connection too",
                  settings->timeout_ms, settings->connect_timeout_ms);
        return -1;
    }
    if (ml_processor_check_endpoint (endpoint, error, error_size) != 0)
        return -1;
    snprintf (settings->endpoint, sizeof settings->endpoint, "%s", endpoint);
    return ml_config_read_secret ("processor/api_key_file", key_file, "key", settings->api_key,
                                  sizeof settings->api_key, ml_processor_valid_api_key,
                                  "without spaces, control characters or non-ASCII bytes", error,
                                  error_size);
}
