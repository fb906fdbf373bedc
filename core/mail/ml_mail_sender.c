/*  ml_mailer_actor: sends what is due in the outbox, one mail at a time, over SMTP with
    libcurl, on a connection of its own; records each outcome and backs off. */
#include "ml_mail_internal.h"
#include "ml_log.h"
#include "ml_service.h"
#include "ml_store.h"

#include <assert.h>
#include <curl/curl.h>
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BATCH      16 //  due mails read per query
#define S_UNRECORDED 64 //  sent mails whose row could not be updated yet
//  A claimed mail is not due again for the longest an attempt may take plus this margin,
//  so a core that dies while sending leaves the mail due again, later.
#define S_LEASE_MARGIN_MS 60000

//  ---------------------------------------------------------------------------------------
//  The actor: sends what is due, one mail at a time

//  Where in the SMTP dialogue an attempt was: it decides whether a 5xx is about this mail
//  (the recipient or the message: final) or about the session (our settings, the server's
//  state: worth retrying, as every other mail would meet it too).
typedef enum {
    S_STAGE_CONNECT = 0, //  connecting, TLS, the greeting
    S_STAGE_EHLO,
    S_STAGE_STARTTLS,
    S_STAGE_AUTH,
    S_STAGE_MAIL,
    S_STAGE_RCPT,
    S_STAGE_DATA,    //  the DATA command itself
    S_STAGE_MESSAGE, //  the message sent, waiting for the answer to its end
    S_STAGE_QUIT
} s_stage_t;

static const char *s_stage_names[] = {"connecting",   "EHLO",           "STARTTLS",
                                      "login (AUTH)", "MAIL FROM",      "RCPT TO",
                                      "DATA",         "end of message", "QUIT"};

typedef enum { S_SENT, S_TEMPORARY, S_PERMANENT, S_ABORTED } s_outcome_t;

typedef struct {
    zsock_t *pipe;
    ml_mailer_settings_t settings;
    ml_db_t *db;
    unsigned char key[ML_MAIL_KEY_BYTES]; //  the outbox key, to open bodies just before sending
    CURL *curl;
    bool curl_ready; //  curl_global_init done
    bool terminated;
    bool poked;
    //  The attempt in flight.
    s_stage_t stage;
    bool quitting; //  QUIT sent: later answers are not about the mail
    curl_socket_t socket;
    int reply_code;
    char reply[160];
    char curl_error[CURL_ERROR_SIZE];
    const char *upload;
    size_t upload_left;
    //  Mails the server accepted whose row could not be marked sent yet: never sent again
    //  while this actor lives.
    int64_t unrecorded[S_UNRECORDED];
    size_t unrecorded_count;
} s_actor_t;

//  Keep printable ASCII only, so server text is safe in the store, the admin API and logs.
static void s_clean (char *text)
{
    for (unsigned char *cursor = (unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor >= 0x7f)
            *cursor = '?';
}

//  Commands that arrive while a mail is in flight. $TERM ends the actor; SEND is moot.
static void s_actor_commands (s_actor_t *self)
{
    while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
        char *command = zstr_recv (self->pipe);
        if (!command || streq (command, "$TERM"))
            self->terminated = true;
        else if (streq (command, "SEND"))
            self->poked = true;
        else {
            char shown[64];
            ml_log (ML_LOG_WARNING, "mail: unknown command %s",
                    ml_log_escape (command, shown, sizeof shown));
        }
        zstr_free (&command);
    }
}

static size_t s_curl_read (char *buffer, size_t size, size_t count, void *argument)
{
    s_actor_t *self = (s_actor_t *)argument;
    size_t length = size * count < self->upload_left ? size * count : self->upload_left;
    memcpy (buffer, self->upload, length);
    self->upload += length;
    self->upload_left -= length;
    return length;
}

//  libcurl's protocol trace, used only to know the stage and the server's last answer. It
//  is never printed or stored: what we send includes the AUTH exchange.
static int s_curl_trace (CURL *curl, curl_infotype type, char *data, size_t size, void *argument)
{
    s_actor_t *self = (s_actor_t *)argument;
    if (type == CURLINFO_HEADER_OUT) {
        //  A command: its verb names the stage. Lines without a known verb are AUTH's
        //  continuation (base64 credentials) and change nothing.
        static const struct {
            const char *verb;
            s_stage_t stage;
        } verbs[] = {{"EHLO", S_STAGE_EHLO}, {"HELO", S_STAGE_EHLO}, {"STARTTLS", S_STAGE_STARTTLS},
                     {"AUTH", S_STAGE_AUTH}, {"MAIL", S_STAGE_MAIL}, {"RCPT", S_STAGE_RCPT},
                     {"DATA", S_STAGE_DATA}, {"QUIT", S_STAGE_QUIT}};
        if (self->stage == S_STAGE_AUTH && self->reply_code == 334)
            return 0; //  an answer to the server's challenge, maybe the password
        for (size_t index = 0; index < sizeof verbs / sizeof verbs[0]; index++) {
            size_t length = strlen (verbs[index].verb);
            if (size > length && memcmp (data, verbs[index].verb, length) == 0 &&
                (data[length] == ' ' || data[length] == '\r')) {
                //  libcurl says QUIT after a failure too: the stage and answer that matter
                //  are the ones before it.
                if (verbs[index].stage == S_STAGE_QUIT) {
                    //  The outcome is known before QUIT, and libcurl waits for its answer
                    //  outside CURLOPT_TIMEOUT: a stalled server would hold us long after
                    //  the timeout. With the read side shut, that wait ends at once.
                    self->quitting = true;
                    if (self->socket != CURL_SOCKET_BAD)
                        shutdown (self->socket, SHUT_RD);
                } else {
                    self->stage = verbs[index].stage;
                    self->reply_code = 0;
                    self->reply[0] = 0;
                }
            }
        }
    } else if (type == CURLINFO_HEADER_IN && !self->quitting && size >= 3 && data[0] >= '2' &&
               data[0] <= '5' && data[1] >= '0' && data[1] <= '9' && data[2] >= '0' &&
               data[2] <= '9') {
        self->reply_code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
        //  During AUTH, only the code: a server's text there might echo what we sent.
        size_t length = self->stage == S_STAGE_AUTH ? 3 : size;
        if (length >= sizeof self->reply)
            length = sizeof self->reply - 1;
        memcpy (self->reply, data, length);
        self->reply[length] = 0;
        self->reply[strcspn (self->reply, "\r\n")] = 0;
        s_clean (self->reply);
    } else if (type == CURLINFO_DATA_OUT && self->stage == S_STAGE_DATA)
        self->stage = S_STAGE_MESSAGE;
    return 0;
}

//  Called by libcurl at least once a second, also while it waits for an answer: a $TERM
//  abandons the mail in flight.
static int s_curl_progress (void *argument, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
    s_actor_t *self = (s_actor_t *)argument;
    s_actor_commands (self);
    if (!self->terminated)
        return 0;
    //  After an abort libcurl still says QUIT and waits for the answer, which a server busy
    //  with our message gives late: with the socket shut, that wait ends at once.
    if (self->socket != CURL_SOCKET_BAD)
        shutdown (self->socket, SHUT_RDWR);
    return 1;
}

//  libcurl's new socket, kept for s_curl_progress (libcurl closes it).
static int s_curl_socket (void *argument, curl_socket_t socket, curlsocktype purpose)
{
    ((s_actor_t *)argument)->socket = socket;
    return CURL_SOCKOPT_OK;
}

//  One SMTP session for one message. Fills error (for last_error) unless it was sent.
static s_outcome_t s_smtp_send (s_actor_t *self, const char *recipient,
                                const ml_mail_text_t *message, char *error, size_t error_size)
{
    const ml_mailer_settings_t *settings = &self->settings;
    CURL *curl = self->curl;
    curl_easy_reset (curl);
    char from[ML_MAILER_ADDRESS_MAX + 3], to[ML_MAILER_ADDRESS_MAX + 3];
    snprintf (from, sizeof from, "<%s>", settings->from);
    snprintf (to, sizeof to, "<%s>", recipient);
    struct curl_slist *recipients = curl_slist_append (NULL, to);
    assert (recipients);
    self->stage = S_STAGE_CONNECT;
    self->quitting = false;
    self->socket = CURL_SOCKET_BAD;
    self->reply_code = 0;
    self->reply[0] = 0;
    self->curl_error[0] = 0;
    self->upload = message->data;
    self->upload_left = message->size;
    curl_easy_setopt (curl, CURLOPT_URL, settings->smtp_url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    //  STARTTLS or nothing: CURLUSESSL_TRY would go on in clear text when it is not offered.
    if (settings->starttls)
        curl_easy_setopt (curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (*settings->ca_file)
        curl_easy_setopt (curl, CURLOPT_CAINFO, settings->ca_file);
    if (*settings->username) {
        curl_easy_setopt (curl, CURLOPT_USERNAME, settings->username);
        curl_easy_setopt (curl, CURLOPT_PASSWORD, settings->password);
    }
    curl_easy_setopt (curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, recipients);
    curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (curl, CURLOPT_READFUNCTION, s_curl_read);
    curl_easy_setopt (curl, CURLOPT_READDATA, self);
    curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message->size);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long)settings->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long)settings->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    //  A session per mail: after a failure, the next mail never inherits a confused one.
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, self->curl_error);
    //  VERBOSE only feeds s_curl_trace: with a debug function set, libcurl prints nothing.
    curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, s_curl_trace);
    curl_easy_setopt (curl, CURLOPT_DEBUGDATA, self);
    curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, s_curl_progress);
    curl_easy_setopt (curl, CURLOPT_XFERINFODATA, self);
    curl_easy_setopt (curl, CURLOPT_SOCKOPTFUNCTION, s_curl_socket);
    curl_easy_setopt (curl, CURLOPT_SOCKOPTDATA, self);
    CURLcode rc = curl_easy_perform (curl);
    self->socket = CURL_SOCKET_BAD;
    curl_slist_free_all (recipients);
    //  Drop the copies of the password and the addresses the handle holds.
    curl_easy_reset (curl);
    if (rc == CURLE_OK)
        return S_SENT;
    if (rc == CURLE_ABORTED_BY_CALLBACK && self->terminated) {
        snprintf (error, error_size, "abandoned: the mailer was stopped");
        return S_ABORTED;
    }
    const char *stage = s_stage_names[self->stage];
    if (self->reply_code >= 400) {
        snprintf (error, error_size, "%s: the server answered %s", stage, self->reply);
        //  A 5xx to the recipient or to this message is final; one to the session is not.
        bool about_this_mail = self->stage == S_STAGE_RCPT || self->stage == S_STAGE_DATA ||
                               self->stage == S_STAGE_MESSAGE;
        if (self->reply_code >= 500 && about_this_mail)
            return S_PERMANENT;
    } else {
        s_clean (self->curl_error);
        snprintf (error, error_size, "%s: %s%s%s", stage, curl_easy_strerror (rc),
                  *self->curl_error ? ": " : "", self->curl_error);
    }
    if (self->stage == S_STAGE_AUTH && (rc == CURLE_LOGIN_DENIED || self->reply_code >= 500))
        ml_log (ML_LOG_ERROR,
                "mail: the SMTP server refused our login (%s): check mail/username "
                "and mail/password_file",
                self->reply_code ? self->reply : curl_easy_strerror (rc));
    return S_TEMPORARY;
}

//  Wait after the attempts-th failed attempt: retry_base_ms doubling, capped.
int64_t ml_mail_backoff_ms (const ml_mailer_settings_t *settings, int64_t attempts)
{
    int64_t wait = settings->retry_base_ms;
    for (int64_t index = 1; index < attempts && wait < settings->retry_max_ms; index++)
        wait *= 2;
    return wait < settings->retry_max_ms ? wait : settings->retry_max_ms;
}

static bool s_is_unrecorded (s_actor_t *self, int64_t mail_id)
{
    for (size_t index = 0; index < self->unrecorded_count; index++)
        if (self->unrecorded[index] == mail_id)
            return true;
    return false;
}

static void s_store_problem (s_actor_t *self, const char *what)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "mail: %s failed: %s", what,
            ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
}

static int s_record_sent (s_actor_t *self, int64_t mail_id)
{
    char now[32];
    ml_mail_timestamp (ml_mail_now_ms (), now, sizeof now);
    //  One statement in autocommit: its own transaction, committed before anything else.
    return ml_db_execute (self->db,
                          "UPDATE mail SET state = 'sent', sent_at = ?, updated_at = ?,"
                          " next_attempt_at = NULL, last_error = NULL WHERE mail_id = ?",
                          "ssi", now, now, mail_id) < 0
               ? -1
               : 0;
}

//  Record sent mails whose row could not be updated earlier. Returns 0 when none is left.
static int s_record_unrecorded (s_actor_t *self)
{
    while (self->unrecorded_count > 0) {
        if (s_record_sent (self, self->unrecorded[self->unrecorded_count - 1]) != 0) {
            s_store_problem (self, "recording a sent mail");
            return -1;
        }
        self->unrecorded_count--;
    }
    return 0;
}

typedef enum { S_NEXT, S_STOP } s_pass_t;

//  Claim one due mail, send it, record the outcome.
static s_pass_t s_attempt (s_actor_t *self, int64_t mail_id)
{
    const ml_mailer_settings_t *settings = &self->settings;
    int64_t now_ms = ml_mail_now_ms ();
    char now[32], lease[32];
    ml_mail_timestamp (now_ms, now, sizeof now);
    ml_mail_timestamp (now_ms + settings->timeout_ms + S_LEASE_MARGIN_MS, lease, sizeof lease);
    //  The claim counts the attempt and moves the mail out of the due set for the lease:
    //  another mailer on the same store skips it, and if this core dies while sending, the
    //  mail is due again once the lease ends.
    int64_t claimed = ml_db_execute (self->db,
                                     "UPDATE mail SET attempts = attempts + 1,"
                                     " next_attempt_at = ?, updated_at = ? WHERE mail_id = ?"
                                     " AND state = 'pending' AND next_attempt_at <= ?",
                                     "ssis", lease, now, mail_id, now);
    if (claimed < 0) {
        s_store_problem (self, "claiming a mail");
        return S_STOP;
    }
    if (claimed == 0)
        return S_NEXT;
    char kind[ML_MAILER_KIND_MAX + 1] = "", message_id[80] = "", created_at[32] = "";
    char recipient[ML_MAILER_ADDRESS_MAX + 1] = "", subject[ML_MAILER_SUBJECT_MAX + 1] = "";
    int64_t attempts = 0, characters = 0;
    ml_db_query_t *query =
        ml_db_query (self->db,
                     "SELECT kind, message_id, recipient, subject, created_at, attempts,"
                     " length (body) FROM mail WHERE mail_id = ?",
                     "i", mail_id);
    bool loaded = query && ml_db_fetch (query) == 1;
    for (int column = 0; loaded && column < 5; column++)
        loaded = ml_db_text (query, column) && !ml_db_truncated (query, column);
    if (loaded) {
        snprintf (kind, sizeof kind, "%s", ml_db_text (query, 0));
        snprintf (message_id, sizeof message_id, "%s", ml_db_text (query, 1));
        snprintf (recipient, sizeof recipient, "%s", ml_db_text (query, 2));
        snprintf (subject, sizeof subject, "%s", ml_db_text (query, 3));
        snprintf (created_at, sizeof created_at, "%s", ml_db_text (query, 4));
        loaded = ml_db_int64 (query, 5, &attempts) == 0 && ml_db_int64 (query, 6, &characters) == 0;
    }
    ml_db_query_destroy (&query);
    char *sealed = loaded ? ml_mail_load_body (self->db, mail_id, characters) : NULL;
    ml_mail_text_t message = {0};
    char error[ML_MAIL_ERROR_MAX + 1] = "";
    s_outcome_t outcome;
    char *body = sealed ? ml_mail_open (self->key, message_id, recipient, sealed) : NULL;
    bool unopened = sealed && !body;
    free (sealed);
    if (unopened) {
        //  Sending later would not help: the mail fails, for staff to see (mail-list).
        snprintf (error, sizeof error,
                  "the body cannot be opened with this core's outbox key (mail/outbox_key): "
                  "it was sealed under another key, or the row was altered");
        ml_log (ML_LOG_ERROR, "mail: mail %lld: %s", (long long)mail_id, error);
        if (ml_db_execute (self->db,
                           "UPDATE mail SET state = 'failed', last_error = ?,"
                           " next_attempt_at = NULL, updated_at = ? WHERE mail_id = ?",
                           "ssi", error, now, mail_id) < 0) {
            s_store_problem (self, "recording a failed attempt");
            return S_STOP;
        }
        return S_NEXT;
    }
    if (!body) {
        //  The lease keeps it from being tried again at once.
        char escaped[600];
        ml_log (ML_LOG_ERROR, "mail: cannot read mail %lld back from the store: %s",
                (long long)mail_id,
                ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
        return S_STOP;
    }
    ml_mail_message (&message, settings, message_id, recipient, subject, created_at, body);
    sodium_memzero (body, strlen (body));
    free (body);
    if (message.full) {
        snprintf (error, sizeof error, "the message would exceed %d bytes", ML_MAIL_MESSAGE_MAX);
        outcome = S_PERMANENT;
    } else
        outcome = s_smtp_send (self, recipient, &message, error, sizeof error);
    if (message.data)
        sodium_memzero (message.data, message.capacity);
    free (message.data);

    now_ms = ml_mail_now_ms ();
    ml_mail_timestamp (now_ms, now, sizeof now);
    char escaped[ML_MAIL_ERROR_MAX * 4 + 1];
    ml_log_escape (error, escaped, sizeof escaped);
    if (outcome == S_SENT) {
        ml_log (ML_LOG_INFO, "mail: sent mail %lld (%s) %s, attempt %lld", (long long)mail_id, kind,
                message_id, (long long)attempts);
        if (s_record_sent (self, mail_id) == 0)
            return S_NEXT;
        //  The server has it: remember, so it is not sent again while we live (if the list
        //  is full, the store has been failing for a while: the lease still holds it back).
        s_store_problem (self, "recording a sent mail");
        if (self->unrecorded_count < S_UNRECORDED)
            self->unrecorded[self->unrecorded_count++] = mail_id;
        return S_STOP;
    }
    int64_t rows;
    if (outcome == S_ABORTED) {
        //  Not the mail's fault: the attempt does not count, and it is due at once.
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET attempts = attempts - 1, next_attempt_at = ?,"
                              " updated_at = ? WHERE mail_id = ? AND state = 'pending'",
                              "ssi", now, now, mail_id);
        ml_log (ML_LOG_NOTICE, "mail: mail %lld abandoned: the mailer is stopping",
                (long long)mail_id);
    } else if (outcome == S_PERMANENT || attempts >= settings->max_attempts) {
        if (outcome == S_TEMPORARY) {
            char last[ML_MAIL_ERROR_MAX + 1];
            //  The reason is cut so the words before it always fit.
            snprintf (last, sizeof last, "gave up after %lld attempts: %.*s", (long long)attempts,
                      (int)(sizeof last - 48), error);
            memcpy (error, last, sizeof error);
            ml_log_escape (error, escaped, sizeof escaped);
        }
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET state = 'failed', last_error = ?,"
                              " next_attempt_at = NULL, updated_at = ? WHERE mail_id = ?",
                              "ssi", error, now, mail_id);
        ml_log (ML_LOG_WARNING, "mail: mail %lld (%s) failed for good: %s", (long long)mail_id,
                kind, escaped);
    } else {
        int64_t wait = ml_mail_backoff_ms (settings, attempts);
        char next[32];
        ml_mail_timestamp (now_ms + wait, next, sizeof next);
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET last_error = ?, next_attempt_at = ?,"
                              " updated_at = ? WHERE mail_id = ? AND state = 'pending'",
                              "sssi", error, next, now, mail_id);
        ml_log (ML_LOG_WARNING,
                "mail: mail %lld (%s) not sent, attempt %lld of %d, next in %lld ms: %s",
                (long long)mail_id, kind, (long long)attempts, settings->max_attempts,
                (long long)wait, escaped);
    }
    if (rows < 0)
        s_store_problem (self, "recording a failed attempt");
    //  After a temporary failure the server is likely to fail the next mail too: stop the
    //  pass, the back-off and the next poll pace the retries.
    return outcome == S_PERMANENT && rows >= 0 ? S_NEXT : S_STOP;
}

//  Send every due mail, oldest due first, until none is left, one fails for a reason that
//  would fail the others too, or $TERM arrives.
static void s_pass (s_actor_t *self)
{
    if (s_record_unrecorded (self) != 0)
        return;
    while (!self->terminated) {
        char now[32];
        ml_mail_timestamp (ml_mail_now_ms (), now, sizeof now);
        int64_t due[S_BATCH];
        size_t count = 0;
        ml_db_query_t *query =
            ml_db_query (self->db,
                         "SELECT mail_id FROM mail WHERE state = 'pending' AND next_attempt_at <= ?"
                         " ORDER BY next_attempt_at, mail_id LIMIT ?",
                         "si", now, (int64_t)S_BATCH);
        int rc = query ? 1 : -1;
        while (count < S_BATCH && (rc = ml_db_fetch (query)) == 1)
            if (ml_db_int64 (query, 0, &due[count]) == 0)
                count++;
        ml_db_query_destroy (&query);
        if (rc < 0) {
            s_store_problem (self, "reading the outbox");
            return;
        }
        for (size_t index = 0; index < count; index++) {
            s_actor_commands (self);
            if (self->terminated)
                return;
            if (!s_is_unrecorded (self, due[index]) && s_attempt (self, due[index]) == S_STOP)
                return;
        }
        if (count < S_BATCH)
            return;
    }
}

static void s_actor_destroy (s_actor_t *self)
{
    if (self->curl)
        curl_easy_cleanup (self->curl);
    if (self->curl_ready)
        curl_global_cleanup ();
    ml_db_destroy (&self->db);
    ml_mailer_settings_wipe (&self->settings);
    sodium_memzero (self->key, sizeof self->key);
}

static int s_actor_init (s_actor_t *self)
{
    char error[600];
    if (ml_mailer_settings_check (&self->settings, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    //  The core made the key when it opened the outbox; the actor only reads it.
    if (sodium_init () < 0 ||
        ml_mail_key_read (self->settings.outbox_key, self->key, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    ml_db_error_t db_error;
    self->db = ml_db_new (self->settings.store, &db_error);
    if (!self->db) {
        char escaped[600];
        ml_log (ML_LOG_ERROR, "mail: cannot open the core store: %s",
                ml_log_escape (db_error.message, escaped, sizeof escaped));
        return -1;
    }
    //  A sent mail recorded must stay recorded, as the store's own connection does it.
    if (strstr (self->settings.store, "SQLite"))
        ml_db_execute (self->db, "PRAGMA synchronous = FULL", NULL);
    if (ml_mail_schema (self->db, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    //  Thread-safe and reference-counted since curl 7.84.
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ml_log (ML_LOG_ERROR, "mail: cannot initialise libcurl");
        return -1;
    }
    self->curl_ready = true;
    self->curl = curl_easy_init ();
    if (!self->curl) {
        ml_log (ML_LOG_ERROR, "mail: cannot create a libcurl handle");
        return -1;
    }
    return 0;
}

void ml_mailer_actor (zsock_t *pipe, void *args)
{
    s_actor_t actor = {0};
    s_actor_t *self = &actor;
    self->pipe = pipe;
    memcpy (&self->settings, args, sizeof self->settings);
    if (s_actor_init (self) != 0) {
        s_actor_destroy (self);
        ml_service_ready (pipe, false);
        return;
    }
    //  The URL holds no secret (settings refuse user info in it).
    ml_log (ML_LOG_NOTICE, "mail: sending through %s as %s%s", self->settings.smtp_url,
            self->settings.from, *self->settings.username ? " with a login" : "");
    ml_service_ready (pipe, true);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    assert (poller);
    int64_t next_pass = zclock_mono ();
    while (!self->terminated) {
        int64_t wait = next_pass - zclock_mono ();
        if (wait > 0 && zpoller_wait (poller, (int)wait) == NULL && zpoller_terminated (poller))
            self->terminated = true;
        s_actor_commands (self);
        if (self->poked)
            next_pass = zclock_mono ();
        if (!self->terminated && zclock_mono () >= next_pass) {
            self->poked = false;
            s_pass (self);
            //  A SEND during the pass may be about a mail committed after its query.
            next_pass = self->poked ? zclock_mono () : zclock_mono () + self->settings.poll_ms;
        }
    }
    zpoller_destroy (&poller);
    s_actor_destroy (self);
    ml_log (ML_LOG_NOTICE, "mail: stopped");
}
