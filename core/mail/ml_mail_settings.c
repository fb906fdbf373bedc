/*  ml_mailer's settings: defaults, the section "mail" of the core's configuration, and the
    checks that refuse a bad SMTP URL, sender or password file. */
#include "ml_mail_internal.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------------------
//  Settings

void ml_mailer_settings_defaults (ml_mailer_settings_t *settings)
{
    assert (settings);
    memset (settings, 0, sizeof *settings);
    settings->starttls = true;
    settings->connect_timeout_ms = 10000;
    settings->timeout_ms = 60000;
    settings->retry_base_ms = 30000;
    settings->retry_max_ms = 3600000;
    settings->max_attempts = 30;
    settings->poll_ms = 5000;
}

void ml_mailer_settings_wipe (ml_mailer_settings_t *settings)
{
    assert (settings);
    explicit_bzero (settings->password, sizeof settings->password);
}

//  Split smtp_url into its parts. Returns 0, or -1 with a message. The URL may hold no user
//  or password: those live in username and password_file, so the URL can be logged.
int ml_mail_parse_url (const char *url, bool *implicit_tls, char *host, size_t host_size,
                       char *error, size_t error_size)
{
    const char *rest;
    if (strncmp (url, "smtp://", 7) == 0) {
        *implicit_tls = false;
        rest = url + 7;
    } else if (strncmp (url, "smtps://", 8) == 0) {
        *implicit_tls = true;
        rest = url + 8;
    } else {
        snprintf (error, error_size,
                  "mail/smtp_url must start with smtp:// (STARTTLS) or smtps:// (TLS)");
        return -1;
    }
    for (const unsigned char *cursor = (const unsigned char *)url; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f || *cursor == '?' || *cursor == '#') {
            snprintf (error, error_size,
                      "mail/smtp_url may hold no spaces, control characters, non-ASCII, '?' "
                      "or '#'");
            return -1;
        }
    size_t authority = strcspn (rest, "/");
    if (memchr (rest, '@', authority)) {
        snprintf (error, error_size,
                  "mail/smtp_url must not hold a user or password: use mail/username and "
                  "mail/password_file");
        return -1;
    }
    //  host: a name, an IPv4 address, or an IPv6 address in brackets; then ":port" or nothing.
    const char *end = rest + authority;
    const char *host_end = rest[0] == '[' ? memchr (rest, ']', authority) : NULL;
    host_end = host_end ? host_end + 1 : rest[0] == '[' ? rest : memchr (rest, ':', authority);
    if (!host_end)
        host_end = end;
    const char *port = host_end < end && *host_end == ':' ? host_end + 1 : NULL;
    size_t host_length = (size_t)(host_end - rest);
    if (host_length == 0 || host_length >= host_size || (host_end < end && !port)) {
        snprintf (error, error_size, "mail/smtp_url needs a host: smtp://host[:port][/ehlo-name]");
        return -1;
    }
    memcpy (host, rest, host_length);
    host[host_length] = 0;
    if (port) {
        long number = 0;
        const char *cursor = port;
        while (cursor < end && *cursor >= '0' && *cursor <= '9' && number <= 65535)
            number = number * 10 + (*cursor++ - '0');
        if (cursor != end || cursor == port || number < 1 || number > 65535) {
            snprintf (error, error_size, "mail/smtp_url has a bad port (1 to 65535)");
            return -1;
        }
    }
    return 0;
}

bool ml_mail_is_loopback (const char *host)
{
    return streq (host, "localhost") || strncmp (host, "127.", 4) == 0 || streq (host, "[::1]");
}

int ml_mailer_settings_check (const ml_mailer_settings_t *settings, char *error, size_t error_size)
{
    assert (settings);
    bool implicit_tls = false;
    char host[256];
    if (!*settings->store) {
        snprintf (error, error_size,
                  "store/connection is required: the mailer reads the outbox "
                  "there");
        return -1;
    }
    if (!*settings->outbox_key) {
        snprintf (error, error_size,
                  "mail/outbox_key is required: the mailer opens the outbox's mails with it");
        return -1;
    }
    if (ml_mail_parse_url (settings->smtp_url, &implicit_tls, host, sizeof host, error,
                           error_size) != 0)
        return -1;
    if (!ml_mail_is_address (settings->from)) {
        snprintf (error, error_size,
                  "mail/from must be one e-mail address, local@domain (ASCII): the sender of "
                  "every mail");
        return -1;
    }
    if (ml_mail_has_control (settings->from_name) || !ml_mail_utf8_valid (settings->from_name) ||
        strlen (settings->from_name) > 128) {
        snprintf (error, error_size,
                  "mail/from_name must be up to 128 bytes of UTF-8 without control characters");
        return -1;
    }
    if (ml_mail_has_control (settings->username) || !ml_mail_utf8_valid (settings->username)) {
        snprintf (error, error_size, "mail/username may hold no control characters");
        return -1;
    }
    if (*settings->username && !*settings->password) {
        snprintf (error, error_size, "mail/username needs mail/password_file");
        return -1;
    }
    if (!*settings->username && *settings->password) {
        snprintf (error, error_size, "mail/password_file needs mail/username");
        return -1;
    }
    //  A password is never sent in clear text, except to this machine.
    if (*settings->username && !implicit_tls && !settings->starttls &&
        !ml_mail_is_loopback (host)) {
        snprintf (error, error_size,
                  "mail/starttls = no would send the password in clear text to %s: use "
                  "starttls = required or an smtps:// URL",
                  host);
        return -1;
    }
    if (settings->connect_timeout_ms < 100 || settings->timeout_ms < 100 ||
        settings->timeout_ms < settings->connect_timeout_ms) {
        snprintf (error, error_size,
                  "mail/timeout_ms (%d) must be at least mail/connect_timeout_ms (%d), both at "
                  "least 100",
                  settings->timeout_ms, settings->connect_timeout_ms);
        return -1;
    }
    if (settings->retry_base_ms < 10 || settings->retry_max_ms < settings->retry_base_ms) {
        snprintf (error, error_size,
                  "mail/retry_max_ms (%d) must be at least mail/retry_base_ms (%d), at least 10",
                  settings->retry_max_ms, settings->retry_base_ms);
        return -1;
    }
    if (settings->max_attempts < 1 || settings->poll_ms < 10) {
        snprintf (error, error_size,
                  "mail/max_attempts must be at least 1 and mail/poll_ms at least 10");
        return -1;
    }
    return 0;
}

//  A password for SMTP: one line of UTF-8 without control characters.
static bool s_valid_password (const char *password)
{
    return !ml_mail_has_control (password) && ml_mail_utf8_valid (password);
}

//  Copy a setting, refusing one too long for its field rather than cutting it.
static int s_copy (char *target, size_t size, const char *value, const char *key, char *error,
                   size_t error_size)
{
    if (strlen (value) >= size) {
        snprintf (error, error_size, "%s is longer than %zu bytes", key, size - 1);
        return -1;
    }
    memcpy (target, value, strlen (value) + 1);
    return 0;
}

int ml_mailer_settings_load (ml_mailer_settings_t *settings, ml_config_t *config, char *error,
                             size_t error_size)
{
    assert (settings && config);
    ml_mailer_settings_defaults (settings);
    const char *store = ml_config_string (config, "store/connection", NULL);
    const char *url = ml_config_string (config, "mail/smtp_url", NULL);
    const char *from = ml_config_string (config, "mail/from", NULL);
    const char *from_name = ml_config_string (config, "mail/from_name", "");
    const char *starttls = ml_config_string (config, "mail/starttls", "required");
    const char *ca_file = ml_config_string (config, "mail/ca_file", "");
    const char *username = ml_config_string (config, "mail/username", "");
    const char *password_file = ml_config_string (config, "mail/password_file", "");
    settings->connect_timeout_ms =
        ml_config_int (config, "mail/connect_timeout_ms", 10000, 100, 120000);
    settings->timeout_ms = ml_config_int (config, "mail/timeout_ms", 60000, 100, 600000);
    settings->retry_base_ms = ml_config_int (config, "mail/retry_base_ms", 30000, 10, 3600000);
    settings->retry_max_ms = ml_config_int (config, "mail/retry_max_ms", 3600000, 10, 86400000);
    settings->max_attempts = ml_config_int (config, "mail/max_attempts", 30, 1, 1000);
    settings->poll_ms = ml_config_int (config, "mail/poll_ms", 5000, 10, 600000);
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        return -1;
    }
    if (!streq (starttls, "required") && !streq (starttls, "no")) {
        snprintf (error, error_size,
                  "mail/starttls must be required or no (there is no 'try': a server that "
                  "does not offer STARTTLS would get the mail in clear text)");
        return -1;
    }
    settings->starttls = streq (starttls, "required");
    if (s_copy (settings->store, sizeof settings->store, store, "store/connection", error,
                error_size) != 0 ||
        s_copy (settings->smtp_url, sizeof settings->smtp_url, url, "mail/smtp_url", error,
                error_size) != 0 ||
        s_copy (settings->from, sizeof settings->from, from, "mail/from", error, error_size) != 0 ||
        s_copy (settings->from_name, sizeof settings->from_name, from_name, "mail/from_name", error,
                error_size) != 0 ||
        s_copy (settings->ca_file, sizeof settings->ca_file, ca_file, "mail/ca_file", error,
                error_size) != 0 ||
        s_copy (settings->username, sizeof settings->username, username, "mail/username", error,
                error_size) != 0)
        return -1;
    if (ml_mailer_outbox_key_path (config, settings->outbox_key, sizeof settings->outbox_key, error,
                                   error_size) != 0)
        return -1;
    if (*password_file &&
        ml_config_read_secret ("mail/password_file", password_file, "password", settings->password,
                               sizeof settings->password, s_valid_password,
                               "without control characters", error, error_size) != 0)
        return -1;
    if (ml_mailer_settings_check (settings, error, error_size) != 0) {
        ml_mailer_settings_wipe (settings);
        return -1;
    }
    return 0;
}
