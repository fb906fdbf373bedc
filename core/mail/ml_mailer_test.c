/*  ml_mailer's selftest: against tests/smtp_server.py, a real SMTP server (aiosmtpd) on
    127.0.0.1, and a real store. */
#include "ml_mail_internal.h"
#include "ml_log.h"
#include "ml_selftest_support.h"
#include "ml_service.h"
#include "ml_store.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  Debian's python3-aiosmtpd serves Debian's interpreter, which may not be the first
//  python3 on the PATH (pyenv, a venv).
static const char *s_python (void)
{
    return access ("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

//  Start the server with extra arguments (NULL-terminated); port 0 takes a free one. Its
//  stderr goes to log_path. Returns its pid; *port is where it listens.
static pid_t s_server_start (const char *maildir, int *port, const char *log_path,
                             const char **extra)
{
    char script[600], port_text[16];
    snprintf (script, sizeof script, "%s/tests/smtp_server.py", ML_SOURCE_DIR);
    snprintf (port_text, sizeof port_text, "%d", *port);
    const char *argv[40] = {s_python (), script, "--dir", maildir, "--port", port_text};
    size_t count = 6;
    for (size_t index = 0; extra && extra[index] && count < 39; index++)
        argv[count++] = extra[index];
    argv[count] = NULL;
    pid_t pid = ml_selftest_server (argv, log_path, port);
    if (*port <= 0) {
        fprintf (stdout,
                 "\ntests/smtp_server.py did not start (is python3-aiosmtpd installed? "
                 "see scripts/deps.sh; its log: %s)\n",
                 log_path);
        fflush (stdout);
    }
    assert (*port > 0);
    return pid;
}

static void s_server_stop (pid_t *pid)
{
    if (*pid > 0) {
        kill (*pid, SIGTERM);
        int status;
        assert (waitpid (*pid, &status, 0) == *pid);
        *pid = 0;
    }
}

//  What the server kept with this Message-ID: an array of its JSON records (new reference).
static json_t *s_received (const char *maildir, const char *message_id)
{
    json_t *found = json_array ();
    DIR *directory = opendir (maildir);
    assert (directory);
    struct dirent *entry;
    while ((entry = readdir (directory))) {
        size_t length = strlen (entry->d_name);
        if (length < 6 || strcmp (entry->d_name + length - 5, ".json") != 0)
            continue;
        char path[600];
        snprintf (path, sizeof path, "%s/%s", maildir, entry->d_name);
        json_t *record = json_load_file (path, 0, NULL);
        assert (record);
        const char *id =
            json_string_value (json_object_get (json_object_get (record, "headers"), "message-id"));
        if (id && streq (id, message_id))
            json_array_append (found, record);
        json_decref (record);
    }
    closedir (directory);
    return found;
}

//  The server writes a message before it answers, but a second copy (after a timeout) may
//  still be on its way: wait for count copies, with a deadline.
static json_t *s_wait_received (const char *maildir, const char *message_id, size_t count)
{
    int64_t deadline = zclock_mono () + 10000;
    json_t *found = s_received (maildir, message_id);
    while (json_array_size (found) < count && zclock_mono () < deadline) {
        zclock_sleep (20);
        json_decref (found);
        found = s_received (maildir, message_id);
    }
    return found;
}

typedef struct {
    int64_t mail_id, attempts;
    char state[16], message_id[80], last_error[ML_MAIL_ERROR_MAX + 1], next_attempt_at[32];
} s_row_t;

static bool s_row (ml_db_t *db, const char *key, s_row_t *row)
{
    ml_db_query_t *query = ml_db_query (db,
                                        "SELECT mail_id, attempts, state, message_id, last_error,"
                                        " next_attempt_at FROM mail WHERE dedupe_key = ?",
                                        "s", key);
    assert (query);
    bool found = ml_db_fetch (query) == 1;
    if (found) {
        assert (ml_db_int64 (query, 0, &row->mail_id) == 0);
        assert (ml_db_int64 (query, 1, &row->attempts) == 0);
        snprintf (row->state, sizeof row->state, "%s", ml_db_text (query, 2));
        snprintf (row->message_id, sizeof row->message_id, "%s", ml_db_text (query, 3));
        const char *error = ml_db_text (query, 4), *next = ml_db_text (query, 5);
        snprintf (row->last_error, sizeof row->last_error, "%s", error ? error : "");
        snprintf (row->next_attempt_at, sizeof row->next_attempt_at, "%s", next ? next : "");
    }
    ml_db_query_destroy (&query);
    return found;
}

//  Wait until the mail is in state with at least min_attempts attempts and, unless
//  error_part is NULL, a last_error holding error_part (a pending mail's attempts count
//  from its claim, so that is how to wait for the end of a failed attempt).
static void s_wait_state (ml_db_t *db, const char *key, const char *state, int64_t min_attempts,
                          const char *error_part, s_row_t *row)
{
    int64_t deadline = zclock_mono () + 10000;
    while (true) {
        assert (s_row (db, key, row));
        if (streq (row->state, state) && row->attempts >= min_attempts &&
            (!error_part || strstr (row->last_error, error_part)))
            return;
        if (zclock_mono () > deadline) {
            printf ("\nmail %s: state %s, %lld attempts, last error '%s'; wanted %s\n", key,
                    row->state, (long long)row->attempts, row->last_error, state);
            fflush (stdout);
            assert (false);
        }
        zclock_sleep (20);
    }
}

static int s_enqueue (ml_mailer_t *mailer, const char *key, const char *recipient,
                      const char *subject, const char *body)
{
    char error[300];
    int rc = ml_mailer_enqueue (mailer, "receipt", key, "acme", recipient, subject, body, error,
                                sizeof error);
    if (rc < 0) {
        printf ("\nenqueue %s: %s\n", key, error);
        fflush (stdout);
    }
    return rc;
}

//  Write a configuration and load the mail settings from it.
static int s_load_settings (const char *directory, const char *mail_section,
                            ml_mailer_settings_t *settings, char *error, size_t error_size)
{
    char path[200], text[2048];
    snprintf (path, sizeof path, "%s/core.cfg", directory);
    snprintf (text, sizeof text,
              "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\nmail\n"
              "    outbox_key = %s/outbox.key\n%s",
              directory, directory, mail_section);
    ml_selftest_write (path, text, 0600);
    ml_config_t *config = ml_config_load (path, error, error_size);
    assert (config);
    int rc = ml_mailer_settings_load (settings, config, error, error_size);
    ml_config_destroy (&config);
    return rc;
}

//  Pure functions: addresses, UTF-8, encodings, back-off, dates.
static void s_test_encoding (void)
{
    assert (ml_mail_is_address ("pat@example.com"));
    assert (ml_mail_is_address ("pat.doe+receipts@mail.example.co.uk"));
    const char *bad_addresses[] = {"pat",
                                   "@example.com",
                                   "pat@localhost",
                                   "pat@example.com, ann@example.com",
                                   "pat@example.com\r\nBcc: spy@example.com",
                                   "Pat <pat@example.com>",
                                   "pat..doe@example.com",
                                   ".pat@example.com",
                                   "pat@-example.com",
                                   "pat@example-.com",
                                   "pat@example..com",
                                   "p\xc3\xa4t@example.com",
                                   "\"pat\"@example.com",
                                   "pat@exa_mple.com"};
    for (size_t index = 0; index < sizeof bad_addresses / sizeof bad_addresses[0]; index++)
        assert (!ml_mail_is_address (bad_addresses[index]));
    assert (ml_mail_utf8_valid ("plain \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert (!ml_mail_utf8_valid ("\xc0\xaf"));         //  overlong '/'
    assert (!ml_mail_utf8_valid ("\xed\xa0\x80"));     //  a surrogate
    assert (!ml_mail_utf8_valid ("\xf4\x90\x80\x80")); //  above U+10FFFF
    assert (!ml_mail_utf8_valid ("\xe2\x82"));         //  cut short
    assert (ml_mail_utf8_chars ("a\xc3\xa9\xe2\x82\xac") == 3);

    ml_mail_text_t text = {0};
    ml_mail_quoted_printable (&text, "a=b\ntrail \nend\t");
    assert (streq (text.data, "a=3Db\r\ntrail=20\r\nend=09\r\n"));
    text.size = 0;
    ml_mail_quoted_printable (&text, "\xc3\xa9t\xc3\xa9\r\n.\r\n");
    assert (streq (text.data, "=C3=A9t=C3=A9\r\n.\r\n"));
    text.size = 0;
    char line[201];
    memset (line, 'x', 200);
    line[200] = 0;
    ml_mail_quoted_printable (&text, line);
    assert (strncmp (text.data + 75, "=\r\n", 3) == 0 && strlen (text.data) == 200 + 2 * 3 + 2);
    text.size = 0;
    ml_mail_header_words (&text, "Receipt 42");
    assert (streq (text.data, "Receipt 42"));
    text.size = 0;
    ml_mail_header_words (&text, "Re\xc3\xa7u");
    assert (streq (text.data, "=?UTF-8?B?UmXDp3U=?="));
    text.size = 0;
    ml_mail_header_words (&text, "looks =?like?= a word");
    assert (strncmp (text.data, "=?UTF-8?B?", 10) == 0);
    //  30 two-byte characters: 44 bytes fill the first word (a 45th would cut a character).
    text.size = 0;
    char accents[101] = "";
    for (int index = 0; index < 30; index++)
        strcat (accents, "\xc3\xa9");
    ml_mail_header_words (&text, accents);
    char *fold = strstr (text.data, "?=\r\n =?UTF-8?B?");
    assert (fold && fold - text.data == 10 + 60 && !strstr (fold + 4, "\r\n"));
    text.size = 0;
    ml_mail_display_name (&text, "Acme \"Pay\" LLP");
    assert (streq (text.data, "\"Acme \\\"Pay\\\" LLP\""));
    free (text.data);

    ml_mailer_settings_t settings;
    ml_mailer_settings_defaults (&settings);
    settings.retry_base_ms = 100;
    settings.retry_max_ms = 400;
    assert (ml_mail_backoff_ms (&settings, 1) == 100 && ml_mail_backoff_ms (&settings, 2) == 200);
    assert (ml_mail_backoff_ms (&settings, 3) == 400 &&
            ml_mail_backoff_ms (&settings, 1000) == 400);
    ml_mailer_settings_defaults (&settings);
    assert (ml_mail_backoff_ms (&settings, 1) == 30000 &&
            ml_mail_backoff_ms (&settings, 30) == 3600000);
    struct {
        const char *url, *host;
        bool implicit_tls;
    } urls[] = {{"smtp://mail.example.com", "mail.example.com", false},
                {"smtp://mail.example.com:587/client.example", "mail.example.com", false},
                {"smtps://10.0.0.5:465", "10.0.0.5", true},
                {"smtp://[::1]:2525", "[::1]", false},
                {"smtp://mail.example.com:", NULL, false},
                {"smtp://[::1", NULL, false},
                {"smtp://[::1]x", NULL, false},
                {"smtp://mail.example.com:0", NULL, false},
                {"smtp://mail.example.com:25x", NULL, false},
                {"smtp:///path", NULL, false},
                {"smtp://u@mail.example.com", NULL, false},
                {"smtp://mail.example.com/?x", NULL, false},
                {"SMTP://mail.example.com", NULL, false}};
    for (size_t index = 0; index < sizeof urls / sizeof urls[0]; index++) {
        char host[64] = "", problem[200] = "";
        bool implicit_tls = false;
        int rc = ml_mail_parse_url (urls[index].url, &implicit_tls, host, sizeof host, problem,
                                    sizeof problem);
        if (urls[index].host)
            assert (rc == 0 && streq (host, urls[index].host) &&
                    implicit_tls == urls[index].implicit_tls);
        else
            assert (rc == -1 && *problem);
    }
    assert (ml_mail_is_loopback ("127.0.0.1") && ml_mail_is_loopback ("[::1]") &&
            !ml_mail_is_loopback ("10.0.0.1"));
    char date[64];
    ml_mail_date ("2024-03-05T07:08:09.123Z", date, sizeof date);
    assert (streq (date, "Tue, 05 Mar 2024 07:08:09 +0000"));
}

//  What enqueue refuses, and that it joins the caller's transaction.
static void s_test_enqueue (ml_mailer_t *mailer, ml_db_t *db)
{
    char error[300], big[ML_MAILER_BODY_MAX + 2], subject[ML_MAILER_SUBJECT_MAX + 2];
    const char *ok = "Your receipt";
    struct {
        const char *kind, *key, *firm, *recipient, *subject, *body, *expect;
    } refused[] = {
        {"receipt", "k1", "acme", "pat@example.com", "Receipt\r\nBcc: spy@example.com", "x",
         "line break"},
        {"receipt", "k1", "acme", "pat@example.com", "Receipt\nBcc: spy@example.com", "x",
         "line break"},
        {"receipt", "k1", "acme", "pat@example.com\r\nBcc: spy@example.com", ok, "x", "line break"},
        {"receipt", "k1", "acme", "pat@example.com, spy@example.com", ok, "x", "one e-mail"},
        {"receipt", "k1", "acme", "Pat <pat@example.com>", ok, "x", "one e-mail"},
        {"receipt", "k1", "acme", "pat@example.com", "", "x", "subject must be"},
        {"receipt", "k1", "acme", "pat@example.com", "bad \xc0\xaf utf-8", "x", "subject must"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "", "body must be"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "bare\rreturn", "control characters"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "bell\a", "control characters"},
        {"Receipt", "k1", "acme", "pat@example.com", ok, "x", "kind must"},
        {"receipt", "with space", "acme", "pat@example.com", ok, "x", "dedupe_key must"},
        {"receipt", "k1", "", "pat@example.com", ok, "x", "firm_id must"},
        {"receipt", "k1", "nosuchfirm", "pat@example.com", ok, "x", "store refused"},
    };
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        int rc =
            ml_mailer_enqueue (mailer, refused[index].kind, refused[index].key, refused[index].firm,
                               refused[index].recipient, refused[index].subject,
                               refused[index].body, error, sizeof error);
        if (rc != -1 || !strstr (error, refused[index].expect)) {
            printf ("\ncase %zu: rc %d, error '%s'\n", index, rc, error);
            fflush (stdout);
        }
        assert (rc == -1 && strstr (error, refused[index].expect));
        assert (!strstr (error, "spy@"));
    }
    memset (subject, 's', sizeof subject - 1);
    subject[sizeof subject - 1] = 0;
    assert (ml_mailer_enqueue (mailer, "receipt", "k1", "acme", "pat@example.com", subject, "x",
                               error, sizeof error) == -1);
    subject[ML_MAILER_SUBJECT_MAX] = 0;
    memset (big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert (ml_mailer_enqueue (mailer, "receipt", "k1", "acme", "pat@example.com", ok, big, error,
                               sizeof error) == -1);
    assert (strstr (error, "64 KiB"));
    s_row_t row;
    assert (!s_row (db, "k1", &row));

    //  A mail enqueued in a transaction that rolls back was never there.
    assert (ml_db_begin (db) == 0);
    assert (ml_mailer_enqueue (mailer, "receipt", "rolled-back", "acme", "pat@example.com", ok, "x",
                               error, sizeof error) == 1);
    assert (ml_db_rollback (db) == 0);
    assert (!s_row (db, "rolled-back", &row));
}

static void s_test_settings (const char *directory)
{
    char error[600], section[1024], password_file[200];
    ml_mailer_settings_t settings;
    const char *password = "pw-Zq8v R2mN";
    snprintf (password_file, sizeof password_file, "%s/smtp.password", directory);
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0600);
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://mail.example.com:587\"\n"
              "    from = payments@matterlink.example\n    from_name = \"Acme LLP\"\n"
              "    username = matterlink\n    password_file = \"%s\"\n    retry_base_ms = 100\n"
              "    max_attempts = 4\n",
              password_file);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == 0);
    assert (streq (settings.password, password) && streq (settings.username, "matterlink"));
    assert (settings.starttls && settings.retry_base_ms == 100 && settings.max_attempts == 4);
    assert (settings.timeout_ms == 60000 && settings.poll_ms == 5000);
    assert (strstr (settings.store, "core.db"));
    ml_mailer_settings_wipe (&settings);
    assert (!*settings.password);

    //  A password file others can read is refused, and the message holds no password.
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0644);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == -1);
    assert (strstr (error, "chmod 600") && !strstr (error, "Zq8v"));
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0600);

    struct {
        const char *section, *expect;
    } bad[] = {
        {"    smtp_url = \"http://mail.example.com\"\n    from = a@example.com\n", "smtp://"},
        {"    smtp_url = \"smtp://user:secret@mail.example.com\"\n    from = a@example.com\n",
         "must not hold a user"},
        {"    smtp_url = \"smtp://mail.example.com:99999\"\n    from = a@example.com\n", "port"},
        {"    smtp_url = \"smtp://:25\"\n    from = a@example.com\n", "needs a host"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = \"Pay <a@example.com>\"\n",
         "mail/from"},
        {"    smtp_url = \"smtp://mail.example.com\"\n", "mail/from"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    starttls = try\n",
         "no 'try'"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    starttls = no\n    username = u\n    password_file = \"PASSWORD_FILE\"\n",
         "clear text"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    username = u\n",
         "needs mail/password_file"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    connect_timeout_ms = 5000\n    timeout_ms = 1000\n",
         "timeout_ms"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    retry_base_ms = 5000\n    retry_max_ms = 1000\n",
         "retry_max_ms"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    max_attempts = 0\n",
         "max_attempts"},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        char text[1024];
        const char *marker = strstr (bad[index].section, "PASSWORD_FILE");
        if (marker)
            snprintf (text, sizeof text, "%.*s%s%s", (int)(marker - bad[index].section),
                      bad[index].section, password_file, marker + strlen ("PASSWORD_FILE"));
        else
            snprintf (text, sizeof text, "%s", bad[index].section);
        int rc = s_load_settings (directory, text, &settings, error, sizeof error);
        if (rc != -1 || !strstr (error, bad[index].expect)) {
            printf ("\nsettings case %zu: rc %d, error '%s'\n", index, rc, error);
            fflush (stdout);
        }
        assert (rc == -1 && strstr (error, bad[index].expect));
        assert (!strstr (error, "secret") && !strstr (error, "Zq8v"));
        ml_mailer_settings_wipe (&settings);
    }
    //  Clear text to this machine is fine (the tests' server).
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://127.0.0.1:2525\"\n    from = a@example.com\n"
              "    starttls = no\n    username = u\n    password_file = \"%s\"\n",
              password_file);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == 0);
    assert (!settings.starttls);
    ml_mailer_settings_wipe (&settings);
}

//  The body of the first test mail: UTF-8, a line that is only ".", one that starts with
//  dots, a long line, trailing spaces, '=' and a "From " line.
#define S_TEST_BODY                                                                                \
    "Dear Zo\xc3\xab,\n\nWe received your payment of \xe2\x82\xac"                                 \
    "125.00 for matter "                                                                           \
    "2024-0042 (M\xc3\xbcller v. \xc3\x85str\xc3\xb6m).\n.\n..leading dots\n"                      \
    "A = B, and a line long enough to need a soft break in quoted-printable: "                     \
    "lorem ipsum dolor sit amet, consectetur adipiscing elit.   \n"                                \
    "From the firm, with thanks \xf0\x9f\x99\x8f\n\tIndented.\n"

static void s_check_first_mail (json_t *record, const char *subject, const char *recipient)
{
    json_t *headers = json_object_get (record, "headers");
    assert (streq (json_string_value (json_object_get (record, "mail_from")),
                   "payments@matterlink.example"));
    json_t *rcpt = json_object_get (record, "rcpt_tos");
    assert (json_array_size (rcpt) == 1 &&
            streq (json_string_value (json_array_get (rcpt, 0)), recipient));
    assert (streq (json_string_value (json_object_get (headers, "subject")), subject));
    assert (streq (json_string_value (json_object_get (headers, "to")), recipient));
    const char *from = json_string_value (json_object_get (headers, "from"));
    assert (strstr (from, "M\xc3\xbcller & Partner") &&
            strstr (from, "<payments@matterlink.example>"));
    assert (streq (json_string_value (json_object_get (headers, "mime-version")), "1.0"));
    assert (strstr (json_string_value (json_object_get (headers, "content-type")), "text/plain"));
    const char *content_type = json_string_value (json_object_get (headers, "content-type"));
    char lowered[128];
    snprintf (lowered, sizeof lowered, "%s", content_type);
    for (char *cursor = lowered; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    assert (strstr (lowered, "charset=utf-8") || strstr (lowered, "charset=\"utf-8\""));
    assert (streq (json_string_value (json_object_get (headers, "content-transfer-encoding")),
                   "quoted-printable"));
    assert (
        streq (json_string_value (json_object_get (headers, "auto-submitted")), "auto-generated"));
    assert (json_string_length (json_object_get (headers, "date")) > 20);
    //  Every header once: nothing was added by a value.
    const char *key;
    json_t *value;
    json_object_foreach (json_object_get (record, "header_count"), key, value)
        assert (json_integer_value (value) == 1);
    assert (json_object_size (json_object_get (record, "header_count")) == 9);
    //  The body as Python decodes it, line ends aside.
    const char *body = json_string_value (json_object_get (record, "body"));
    assert (body);
    ml_mail_text_t plain = {0};
    for (const char *cursor = body; *cursor; cursor++)
        if (*cursor != '\r')
            ml_mail_text_add (&plain, cursor, 1);
    assert (streq (plain.data, S_TEST_BODY));
    free (plain.data);
    //  The raw message: 7-bit, CRLF only, short lines, no defects found by Python's parser.
    assert (json_array_size (json_object_get (record, "defects")) == 0);
    assert (json_is_false (json_object_get (record, "eight_bit")));
    assert (json_is_false (json_object_get (record, "bare_lf")));
    assert (json_is_false (json_object_get (record, "bare_cr")));
    assert (json_integer_value (json_object_get (record, "max_line")) <= 78);
}

static zactor_t *s_actor_start (ml_mailer_settings_t *settings);

//  True if the file holds the bytes of needle anywhere (false when there is no file).
static bool s_file_holds (const char *path, const char *needle)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return false;
    size_t size = 0, capacity = 1 << 20;
    char *data = malloc (capacity);
    assert (data);
    size_t got;
    while ((got = fread (data + size, 1, capacity - size, file)) > 0) {
        size += got;
        if (size == capacity) {
            data = realloc (data, capacity *= 2);
            assert (data);
        }
    }
    fclose (file);
    size_t length = strlen (needle);
    bool found = false;
    for (size_t at = 0; !found && length && at + length <= size; at++)
        found = memcmp (data + at, needle, length) == 0;
    free (data);
    return found;
}

//  The outbox key's rules, on its own (no store needed).
static void s_test_outbox_key (const char *directory)
{
    char path[200], error[600];
    unsigned char key[ML_MAIL_KEY_BYTES];
    snprintf (path, sizeof path, "%s/key-rules.key", directory);
    assert (ml_mailer_outbox_key_make (path, error, sizeof error) == 0);
    struct stat info;
    assert (stat (path, &info) == 0 && (info.st_mode & 0777) == 0600 &&
            info.st_size == ML_MAIL_KEY_BYTES);
    assert (ml_mail_key_read (path, key, error, sizeof error) == 0);
    //  Never replaced.
    assert (ml_mailer_outbox_key_make (path, error, sizeof error) == -1);
    assert (strstr (error, "File exists"));
    //  Readable by others: refused, with the fix.
    assert (chmod (path, 0640) == 0);
    assert (ml_mail_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "chmod 600") && strstr (error, path));
    //  Unreadable: says why.
    assert (chmod (path, 0600) == 0);
    snprintf (path, sizeof path, "%s/no-such.key", directory);
    assert (ml_mail_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "No such file"));
    //  The wrong size.
    snprintf (path, sizeof path, "%s/short.key", directory);
    ml_selftest_write (path, "0123456789", 0600);
    assert (ml_mail_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "not the 32"));
    //  Sealed for one row under one key: opened only for that row, under that key.
    unsigned char other[ML_MAIL_KEY_BYTES];
    randombytes_buf (key, sizeof key);
    randombytes_buf (other, sizeof other);
    char *sealed = ml_mail_seal (key, "<m-1@x>", "pat@example.com", "code 1234");
    assert (strncmp (sealed, ML_MAIL_SEALED, strlen (ML_MAIL_SEALED)) == 0 &&
            !strstr (sealed, "1234"));
    char *body = ml_mail_open (key, "<m-1@x>", "pat@example.com", sealed);
    assert (body && streq (body, "code 1234"));
    free (body);
    assert (!ml_mail_open (other, "<m-1@x>", "pat@example.com", sealed));
    assert (!ml_mail_open (key, "<m-2@x>", "pat@example.com", sealed));
    assert (!ml_mail_open (key, "<m-1@x>", "thief@example.com", sealed));
    assert (!ml_mail_open (key, "<m-1@x>", "pat@example.com", "code 1234"));
    sealed[strlen (sealed) - 3] ^= 1;
    assert (!ml_mail_open (key, "<m-1@x>", "pat@example.com", sealed));
    free (sealed);
}

//  A copy of the store alone cannot read a mail: the body's secret is in none of the store's
//  files, another key cannot open it, nor can the right key once the row was redirected. A
//  body an older release left in clear text is sealed when the outbox opens. No actor may
//  run on the store when this is called.
static void s_test_sealed (ml_mailer_t *mailer, ml_db_t *db, const char *directory,
                           const char *maildir, ml_mailer_settings_t *settings)
{
    const char *secret = "7f3a9c2e51b84d06a1e9c3f5b7d20486";
    char body[200], path[200], error[600];
    snprintf (body, sizeof body, "Your payment code: %s\n", secret);
    assert (s_enqueue (mailer, "link:sealed", "pat@example.com", "Your link", body) == 1);
    const char *suffixes[] = {"", "-wal", "-journal"};
    for (size_t index = 0; index < 3; index++) {
        snprintf (path, sizeof path, "%s/core.db%s", directory, suffixes[index]);
        assert (!s_file_holds (path, secret) && !s_file_holds (path, "payment code"));
    }
    //  Another key: the mail fails for good, with why, and nothing is sent.
    ml_mailer_settings_t other = *settings;
    snprintf (other.outbox_key, sizeof other.outbox_key, "%s/other.key", directory);
    assert (ml_mailer_outbox_key_make (other.outbox_key, error, sizeof error) == 0);
    zactor_t *actor = s_actor_start (&other);
    zstr_send (actor, "SEND");
    s_row_t row;
    s_wait_state (db, "link:sealed", "failed", 1, "outbox key", &row);
    zactor_destroy (&actor);
    //  The right key, but the row was redirected in the store: not opened either.
    assert (ml_mailer_retry (mailer, row.mail_id) == 1);
    assert (ml_db_execute (db, "UPDATE mail SET recipient = 'thief@example.com' WHERE mail_id = ?",
                           "i", row.mail_id) == 1);
    actor = s_actor_start (settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:sealed", "failed", 1, "outbox key", &row);
    json_t *received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    //  Put back: sent, and the payer gets the secret.
    assert (ml_db_execute (db, "UPDATE mail SET recipient = 'pat@example.com' WHERE mail_id = ?",
                           "i", row.mail_id) == 1);
    assert (ml_mailer_retry (mailer, row.mail_id) == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:sealed", "sent", 1, NULL, &row);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    assert (strstr (json_string_value (json_object_get (json_array_get (received, 0), "body")),
                    secret));
    json_decref (received);
    zactor_destroy (&actor);
    //  A body from before sealing: sealed when the outbox opens, then sent as it was.
    assert (ml_db_execute (db,
                           "INSERT INTO mail (dedupe_key, message_id, kind, firm_id, recipient,"
                           " subject, body, state, attempts, next_attempt_at, created_at,"
                           " updated_at) VALUES ('link:old', '<old-1@matterlink.invalid>',"
                           " 'payment_link', 'acme', 'pat@example.com', 'Old', ?, 'pending', 0,"
                           " '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z',"
                           " '2020-01-01T00:00:00.000Z')",
                           "s", "old code 5be0c1d2e3f4a5b6c7d8e9f0a1b2c3d4\n") == 1);
    ml_mailer_t *reopened = ml_mailer_new (db, settings->outbox_key, error, sizeof error);
    assert (reopened);
    ml_mailer_destroy (&reopened);
    ml_db_query_t *query =
        ml_db_query (db, "SELECT body FROM mail WHERE dedupe_key = 'link:old'", NULL);
    assert (query && ml_db_fetch (query) == 1);
    assert (strncmp (ml_db_text (query, 0), ML_MAIL_SEALED, strlen (ML_MAIL_SEALED)) == 0);
    ml_db_query_destroy (&query);
    actor = s_actor_start (settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:old", "sent", 1, NULL, &row);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    assert (strstr (json_string_value (json_object_get (json_array_get (received, 0), "body")),
                    "old code 5be0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"));
    json_decref (received);
    zactor_destroy (&actor);
}

//  Settings for the actors of this test: fast, and against the local server.
static void s_test_settings_for (ml_mailer_settings_t *settings, const char *directory, int port)
{
    ml_mailer_settings_defaults (settings);
    snprintf (settings->store, sizeof settings->store, "%s",
              ml_selftest_store_connection (directory));
    snprintf (settings->outbox_key, sizeof settings->outbox_key, "%s/outbox.key", directory);
    snprintf (settings->smtp_url, sizeof settings->smtp_url, "smtp://127.0.0.1:%d", port);
    settings->starttls = false;
    snprintf (settings->from, sizeof settings->from, "payments@matterlink.example");
    snprintf (settings->from_name, sizeof settings->from_name, "M\xc3\xbcller & Partner");
    settings->connect_timeout_ms = 1000;
    settings->timeout_ms = 1000;
    settings->retry_base_ms = 100;
    settings->retry_max_ms = 400;
    settings->max_attempts = 5;
    settings->poll_ms = 100;
}

static zactor_t *s_actor_start (ml_mailer_settings_t *settings)
{
    zactor_t *actor = ml_service_start (ml_mailer_actor, settings);
    assert (actor);
    return actor;
}

void ml_mailer_test (bool verbose)
{
    printf (" * ml_mailer: ");
    fflush (stdout);
    s_test_encoding ();

    char directory[128], maildir[200], log_path[200], server_log[200], error[600];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_db_t *db = ml_store_db (store);
    snprintf (maildir, sizeof maildir, "%s/received", directory);
    snprintf (log_path, sizeof log_path, "%s/ml_log.txt", directory);
    snprintf (server_log, sizeof server_log, "%s/smtp_server.txt", directory);
    assert (mkdir (maildir, 0700) == 0);

    //  Every log line of this test goes to a file, at debug level, to be searched for the
    //  password at the end.
    ml_log_level_t saved_level = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_DEBUG);
    int saved_stderr = ml_selftest_stderr_to (log_path);

    s_test_outbox_key (directory);
    char outbox_key[200];
    snprintf (outbox_key, sizeof outbox_key, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (db, outbox_key, error, sizeof error);
    assert (mailer);
    s_test_enqueue (mailer, db);
    s_test_settings (directory);

    //  One server plays every scenario, one recipient each: it refuses bounce@, answers 451
    //  twice to t451@ and always to busy@, drops the connection once for drop@, keeps then
    //  drops once for window@, and is slow (2.5 s) once for slow@ and stop@.
    int port = 0;
    const char *server_args[] = {"--reject",
                                 "bounce@example.com",
                                 "--tempfail",
                                 "2:t451@example.com",
                                 "--drop",
                                 "1:drop@example.com",
                                 "--accept-drop",
                                 "1:window@example.com",
                                 "--slow",
                                 "1:slow@example.com",
                                 "--slow",
                                 "1:stop@example.com",
                                 "--delay-ms",
                                 "2500",
                                 "--tempfail",
                                 "9:busy@example.com",
                                 NULL};
    pid_t server = s_server_start (maildir, &port, server_log, server_args);
    ml_mailer_settings_t settings;
    s_test_settings_for (&settings, directory, port);
    //  Settings made by hand are checked again: the service does not start on bad ones.
    snprintf (settings.from, sizeof settings.from, "not an address");
    assert (ml_service_start (ml_mailer_actor, &settings) == NULL);
    s_test_settings_for (&settings, directory, port);
    zactor_t *actor = s_actor_start (&settings);

    //  A receipt arrives once, with its headers and body intact, though enqueued twice.
    const char *subject = "Re\xc3\xa7u de paiement \xe2\x80\x94 \xe2\x82\xac"
                          "125.00, merci";
    //  As the core does it: the mail in the transaction of the event, SEND after commit.
    assert (ml_db_begin (db) == 0);
    assert (s_enqueue (mailer, "receipt:p-1", "zoe@example.com", subject, S_TEST_BODY) == 1);
    assert (s_enqueue (mailer, "receipt:p-1", "zoe@example.com", subject, S_TEST_BODY) == 0);
    assert (ml_db_commit (db) == 0);
    zstr_send (actor, "SEND");
    s_row_t row;
    s_wait_state (db, "receipt:p-1", "sent", 1, NULL, &row);
    assert (row.attempts == 1 && !*row.last_error && !*row.next_attempt_at);
    assert (strncmp (row.message_id, "<", 1) == 0 &&
            strstr (row.message_id, "@matterlink.invalid>"));
    json_t *received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    s_check_first_mail (json_array_get (received, 0), subject, "zoe@example.com");
    json_decref (received);
    zactor_destroy (&actor);
    s_test_sealed (mailer, db, directory, maildir, &settings);
    actor = s_actor_start (&settings);

    //  The largest body, with multi-byte characters across the store's read pieces.
    char *large = malloc (ML_MAILER_BODY_MAX + 1);
    assert (large);
    const char *pattern[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n"};
    size_t used = 0;
    for (size_t index = 0; used + 4 <= ML_MAILER_BODY_MAX; index++) {
        const char *piece = pattern[(index * 7 + index / 3) % 5];
        memcpy (large + used, piece, strlen (piece));
        used += strlen (piece);
    }
    while (used < ML_MAILER_BODY_MAX)
        large[used++] = 'z';
    large[used] = 0;
    assert (s_enqueue (mailer, "receipt:large", "zoe@example.com", "Large", large) == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:large", "sent", 1, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    const char *got = json_string_value (json_object_get (json_array_get (received, 0), "body"));
    ml_mail_text_t plain = {0};
    for (const char *cursor = got; *cursor; cursor++)
        if (*cursor != '\r')
            ml_mail_text_add (&plain, cursor, 1);
    assert (plain.size == ML_MAILER_BODY_MAX + 1 && strncmp (plain.data, large, used) == 0);
    free (plain.data);
    free (large);
    json_decref (received);

    //  A 550 to the recipient: failed at once, with the server's reason, nothing received.
    assert (s_enqueue (mailer, "receipt:bounce", "bounce@example.com", "Receipt", "Thanks.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:bounce", "failed", 1, "550", &row);
    assert (row.attempts == 1 && strstr (row.last_error, "RCPT TO") &&
            strstr (row.last_error, "550"));
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    //  Staff see it, and can try again (it fails again: the address is still refused).
    json_t *request = json_pack ("{s:s, s:s}", "state", "failed", "firm", "acme");
    json_t *reply = ml_mailer_execute (mailer, "mail-list", request);
    json_decref (request);
    json_t *mails = json_object_get (reply, "mails");
    assert (json_is_true (json_object_get (reply, "ok")) && json_array_size (mails) == 1);
    json_t *listed = json_array_get (mails, 0);
    assert (
        streq (json_string_value (json_object_get (listed, "recipient")), "bounce@example.com"));
    assert (json_integer_value (json_object_get (listed, "attempts")) == 1);
    assert (strstr (json_string_value (json_object_get (listed, "last_error")), "550"));
    assert (!json_object_get (listed, "body"));
    json_decref (reply);
    request = json_pack ("{s:I}", "mail_id", (json_int_t)row.mail_id);
    reply = ml_mailer_execute (mailer, "mail-retry", request);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    reply = ml_mailer_execute (mailer, "mail-retry", request); //  pending now: refused
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:bounce", "failed", 1, "550", &row);
    request = json_pack ("{s:s}", "state", "lost");
    reply = ml_mailer_execute (mailer, "mail-list", request);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);
    assert (ml_mailer_execute (mailer, "status", NULL) == NULL);
    json_t *all = ml_mailer_list (mailer, NULL, "acme", 10);
    assert (json_array_size (all) == 5); //  with the two of s_test_sealed
    json_decref (all);

    //  451 twice, then accepted: one message, three attempts.
    assert (s_enqueue (mailer, "receipt:451", "t451@example.com", "Tempfail", "Three tries.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:451", "sent", 3, NULL, &row);
    assert (row.attempts == 3);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  The connection drops before the answer (nothing kept): sent again, received once.
    assert (s_enqueue (mailer, "receipt:drop", "drop@example.com", "Drop", "Two tries.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:drop", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  The at-least-once window: the server kept the message but its answer was lost. It
    //  arrives twice, byte for byte the same, with the same Message-ID.
    assert (s_enqueue (mailer, "receipt:window", "window@example.com", "Window", "Twice.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:window", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    received = s_wait_received (maildir, row.message_id, 2);
    assert (json_array_size (received) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (received, 0), "sha256")),
                   json_string_value (json_object_get (json_array_get (received, 1), "sha256"))));
    json_decref (received);
    //  A server slower than timeout_ms: the attempt times out and is retried. The server
    //  drops the message whose client left before the answer (checked again at the end).
    assert (s_enqueue (mailer, "receipt:slow", "slow@example.com", "Slow", "Late.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:slow", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    char slow_id[80];
    snprintf (slow_id, sizeof slow_id, "%s", row.message_id);
    received = s_wait_received (maildir, slow_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  A server that never stops answering 451: after max_attempts, failed, with the reason.
    assert (s_enqueue (mailer, "receipt:busy", "busy@example.com", "Busy", "Never.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:busy", "failed", 5, "gave up after 5 attempts", &row);
    assert (row.attempts == 5 && strstr (row.last_error, "451"));
    zactor_destroy (&actor);

    //  Stopping while a mail is in flight (the server is slow) takes less than a second, and
    //  the attempt does not count.
    settings.timeout_ms = 10000;
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:stop", "stop@example.com", "Stop", "Abandoned.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:stop", "pending", 1, NULL, &row);
    zclock_sleep (200); //  into the server's delay of 2.5 s
    int64_t stop_started = zclock_mono ();
    zactor_destroy (&actor);
    assert (zclock_mono () - stop_started < 2000);
    assert (s_row (db, "receipt:stop", &row));
    assert (streq (row.state, "pending") && row.attempts == 0);
    settings.timeout_ms = 1000;

    //  The server goes away: the mail stays pending, with the reason and a back-off.
    s_server_stop (&server);
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:down-1", "zoe@example.com", "Down 1", "One.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:down-1", "pending", 1, "connecting", &row);
    assert (strstr (row.last_error, "connecting") && *row.next_attempt_at);
    //  A restart: the actor goes, a mail is enqueued meanwhile, a new actor sends both when
    //  the server is back, and the mail abandoned above.
    zactor_destroy (&actor);
    assert (s_enqueue (mailer, "receipt:down-2", "zoe@example.com", "Down 2", "Two.") == 1);
    server = s_server_start (maildir, &port, server_log, server_args + 10); //  slow stop@ only
    actor = s_actor_start (&settings);
    s_wait_state (db, "receipt:down-1", "sent", 2, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    s_wait_state (db, "receipt:down-2", "sent", 1, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    s_wait_state (db, "receipt:stop", "sent", 1, NULL, &row);
    char stop_id[80];
    snprintf (stop_id, sizeof stop_id, "%s", row.message_id);
    zactor_destroy (&actor);

    //  STARTTLS required, and this server does not offer it: never sent in clear text.
    settings.starttls = true;
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:tls", "zoe@example.com", "TLS", "Secret.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "pending", 1, "STARTTLS", &row);
    assert (strstr (row.last_error, "STARTTLS"));
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    zactor_destroy (&actor);
    s_server_stop (&server);

    //  STARTTLS with a certificate we trust, and a login.
    char certificate[200], key[200], password_file[200], server_password[200], command[1200];
    snprintf (certificate, sizeof certificate, "%s/server.crt", directory);
    snprintf (key, sizeof key, "%s/server.key", directory);
    snprintf (password_file, sizeof password_file, "%s/smtp.password", directory);
    snprintf (server_password, sizeof server_password, "%s/server.password", directory);
    snprintf (command, sizeof command,
              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout '%s' -out '%s' -days 2 -subj /CN=127.0.0.1 "
              "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
              key, certificate);
    assert (system (command) == 0);
    const char *password = "s3cr3t-SMTP-pw";
    ml_selftest_write (server_password, "s3cr3t-SMTP-pw\n", 0600);
    ml_selftest_write (password_file, "wrong-SMTP-pw\n", 0600);
    const char *tls_args[] = {
        "--tls-cert",           certificate,     "--tls-key", key, "--auth-user", "matterlink",
        "--auth-password-file", server_password, NULL};
    server = s_server_start (maildir, &port, server_log, tls_args);
    char section[1024];
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://127.0.0.1:%d\"\n    from = payments@matterlink.example\n"
              "    ca_file = \"%s\"\n    username = matterlink\n    password_file = \"%s\"\n"
              "    connect_timeout_ms = 1000\n    timeout_ms = 2000\n    retry_base_ms = 100\n"
              "    retry_max_ms = 400\n    poll_ms = 100\n",
              port, certificate, password_file);
    ml_mailer_settings_t tls_settings;
    assert (s_load_settings (directory, section, &tls_settings, error, sizeof error) == 0);
    snprintf (tls_settings.store, sizeof tls_settings.store, "%s", settings.store);
    //  A wrong password: refused, kept pending (a settings problem, not the mail's).
    actor = s_actor_start (&tls_settings);
    ml_mailer_settings_wipe (&tls_settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "pending", 2, "535", &row);
    assert (strstr (row.last_error, "login") && strstr (row.last_error, "535"));
    zactor_destroy (&actor);
    ml_selftest_write (password_file, "s3cr3t-SMTP-pw\n", 0600);
    assert (s_load_settings (directory, section, &tls_settings, error, sizeof error) == 0);
    snprintf (tls_settings.store, sizeof tls_settings.store, "%s", settings.store);
    actor = s_actor_start (&tls_settings);
    ml_mailer_settings_wipe (&tls_settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "sent", 3, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_t *record = json_array_get (received, 0);
    assert (json_is_true (json_object_get (record, "tls")));
    assert (streq (json_string_value (json_object_get (record, "auth")), "matterlink"));
    json_decref (received);
    zactor_destroy (&actor);
    s_server_stop (&server);
    //  Long after the slow server's delay: the attempts that timed out or were abandoned left
    //  no copy behind.
    received = s_received (maildir, slow_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    received = s_received (maildir, stop_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    ml_mailer_destroy (&mailer);
    ml_mailer_destroy (&mailer);

    //  Back to stderr; then search what was logged, ours and the server's, and the store.
    ml_selftest_stderr_back (saved_stderr);
    ml_log_setup (NULL, saved_level);
    char *logged = ml_selftest_read (log_path);
    char *server_logged = ml_selftest_read (server_log);
    if (verbose)
        printf ("\n%s%s", logged, server_logged);
    assert (strstr (logged, "mail: sent mail"));
    assert (strstr (logged, "refused our login"));
    assert (strstr (logged, "failed for good"));
    //  AUTH PLAIN's base64 of "\0matterlink\0password" too, in case a trace leaked.
    ml_mail_text_t plain_auth = {0};
    ml_mail_base64 (&plain_auth, (const unsigned char *)"\0matterlink\0s3cr3t-SMTP-pw", 26);
    const char *secrets[] = {password, "wrong-SMTP-pw", "Zq8v", plain_auth.data};
    all = ml_store_rows (ml_db_query (db, "SELECT last_error FROM mail", NULL),
                         ml_mail_integer_column);
    char *rows_text = json_dumps (all, 0);
    for (size_t index = 0; index < sizeof secrets / sizeof secrets[0]; index++)
        assert (!strstr (logged, secrets[index]) && !strstr (server_logged, secrets[index]) &&
                !strstr (rows_text, secrets[index]));
    free (rows_text);
    json_decref (all);
    free (plain_auth.data);
    free (logged);
    free (server_logged);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
