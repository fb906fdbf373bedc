/*  ml_mailer: e-mail through a durable outbox, sent over SMTP with libcurl.
    See include/ml_mailer.h and docs/mail.md. The outbox lives here; its pieces are in
    core/mail/ (ml_mail_internal.h). */
#include "ml_mail_internal.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_FIRM_MAX 63
#define S_LIST_MAX 1000
//  The body is read back in pieces of this many characters. The ODBC layer gives a computed
//  column at least 255 bytes, and 64 characters of UTF-8 take at most 256.
#define S_PART_CHARS 64

static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS mail ("
    " mail_id INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key TEXT NOT NULL UNIQUE,"
    " message_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), recipient TEXT NOT NULL,"
    " subject TEXT NOT NULL, body TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0), next_attempt_at TEXT,"
    " last_error TEXT, created_at TEXT NOT NULL, sent_at TEXT, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mail_due ON mail (state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS mail_firm ON mail (firm_id, state, mail_id)",
};

int ml_mail_schema (ml_db_t *db, char *error, size_t error_size)
{
    return ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "mail table", error,
                            error_size);
}

#define S_LIST_SQL                                                                                 \
    "SELECT mail_id, kind, dedupe_key, message_id, firm_id, recipient, subject, state,"            \
    " attempts, last_error, created_at, next_attempt_at, sent_at, updated_at FROM mail"

struct _ml_mailer_t {
    ml_db_t *db;                          //  borrowed from the store
    unsigned char key[ML_MAIL_KEY_BYTES]; //  the outbox key: seals bodies before they are stored
};

//  Read a mail's body back, in pieces that fit the ODBC layer's columns, in one query.
//  Returns the body (caller frees) or NULL.
char *ml_mail_load_body (ml_db_t *db, int64_t mail_id, int64_t characters)
{
    ml_db_query_t *query = ml_db_query (
        db,
        "WITH RECURSIVE part (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM part"
        " WHERE (n + 1) * 64 < ?)"
        " SELECT substr (body, n * 64 + 1, 64) FROM part, mail WHERE mail_id = ? ORDER BY n",
        "ii", characters, mail_id);
    if (!query)
        return NULL;
    ml_mail_text_t body = {0};
    int rc;
    while ((rc = ml_db_fetch (query)) == 1) {
        const char *part = ml_db_text (query, 0);
        if (!part || ml_db_truncated (query, 0)) {
            rc = -1;
            break;
        }
        ml_mail_text_adds (&body, part);
    }
    ml_db_query_destroy (&query);
    //  A body that does not come back whole is never sent in part.
    if (rc < 0 || body.full || !body.data ||
        (int64_t)ml_mail_utf8_chars (body.data) != characters) {
        free (body.data);
        return NULL;
    }
    return body.data;
}

static bool s_old_body_integer (const char *name)
{
    return streq (name, "mail_id") || streq (name, "characters");
}

//  Seal the bodies an older release stored in clear text (sent ones too: history must not
//  keep a token either). SQLite's secure_delete overwrites the old text in the file as the
//  rows are rewritten. Returns 0, or -1 with a message.
static int s_seal_old_bodies (ml_mailer_t *self, char *error, size_t error_size)
{
    ml_db_query_t *query = ml_db_query (self->db,
                                        "SELECT mail_id, message_id, recipient,"
                                        " length (body) AS characters FROM mail"
                                        " WHERE substr (body, 1, 8) <> ?",
                                        "s", ML_MAIL_SEALED);
    json_t *rows = ml_store_rows (query, s_old_body_integer);
    if (!rows) {
        snprintf (error, error_size, "cannot read the outbox: %s", ml_db_error (self->db)->message);
        return -1;
    }
    if (json_array_size (rows) == 0) {
        json_decref (rows);
        return 0;
    }
    ml_db_execute (self->db, "PRAGMA secure_delete = ON", NULL);
    bool ok = ml_db_begin (self->db) == 0;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (!ok)
            break;
        int64_t mail_id = json_integer_value (json_object_get (row, "mail_id"));
        char *body = ml_mail_load_body (self->db, mail_id,
                                        json_integer_value (json_object_get (row, "characters")));
        const char *message_id = json_string_value (json_object_get (row, "message_id"));
        const char *recipient = json_string_value (json_object_get (row, "recipient"));
        ok = body && message_id && recipient;
        char *sealed = ok ? ml_mail_seal (self->key, message_id, recipient, body) : NULL;
        ok = ok && ml_db_execute (self->db, "UPDATE mail SET body = ? WHERE mail_id = ?", "si",
                                  sealed, mail_id) == 1;
        if (body)
            sodium_memzero (body, strlen (body));
        free (body);
        free (sealed);
    }
    ok = ok && ml_db_commit (self->db) == 0;
    if (!ok) {
        snprintf (error, error_size, "cannot seal the outbox's older mails: %s",
                  ml_db_error (self->db)->message);
        ml_db_rollback (self->db);
    } else
        ml_log (ML_LOG_NOTICE, "mail: sealed %zu mails an older release kept in clear text",
                json_array_size (rows));
    ml_db_execute (self->db, "PRAGMA secure_delete = OFF", NULL);
    json_decref (rows);
    return ok ? 0 : -1;
}

//  ---------------------------------------------------------------------------------------
//  The outbox, on the core's connection

ml_mailer_t *ml_mailer_new (ml_db_t *db, const char *outbox_key, char *error, size_t error_size)
{
    assert (db);
    if (!outbox_key || !*outbox_key) {
        snprintf (error, error_size, "mail/outbox_key: no outbox key file is configured");
        return NULL;
    }
    if (sodium_init () < 0) {
        snprintf (error, error_size, "cannot initialise libsodium");
        return NULL;
    }
    //  First start: make the key. Only when there is no file at all (lstat, so a dangling
    //  link is not followed): a key that exists but cannot be read is an error, never
    //  replaced.
    struct stat info;
    if (lstat (outbox_key, &info) != 0 && errno == ENOENT) {
        if (ml_mailer_outbox_key_make (outbox_key, error, error_size) != 0)
            return NULL;
        ml_log (ML_LOG_NOTICE,
                "mail: made a new outbox key %s: back it up with the core's certificate (mail "
                "waiting in the outbox can be sent only with it)",
                outbox_key);
    }
    ml_mailer_t *self = calloc (1, sizeof (ml_mailer_t));
    assert (self);
    self->db = db;
    if (ml_mail_key_read (outbox_key, self->key, error, error_size) != 0 ||
        ml_mail_schema (db, error, error_size) != 0 ||
        s_seal_old_bodies (self, error, error_size) != 0)
        ml_mailer_destroy (&self);
    return self;
}

void ml_mailer_subkey (ml_mailer_t *self, const char *label, unsigned char key[32])
{
    assert (self && label);
    //  Keyed BLAKE2b of the label under the outbox key: one-way, so the subkey never opens mail.
    crypto_generichash (key, 32, (const unsigned char *)label, strlen (label), self->key,
                        sizeof self->key);
}

void ml_mailer_destroy (ml_mailer_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_memzero ((*self_p)->key, sizeof (*self_p)->key);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The first problem with a mail's fields, or NULL. Messages name the field, never quote it:
//  a subject or body may hold personal data, and a refused value may be an attack.
static const char *s_refusal (const char *kind, const char *dedupe_key, const char *firm_id,
                              const char *recipient, const char *subject, const char *body)
{
    if (!kind || !ml_mail_is_kind (kind))
        return "kind must be 1 to 32 characters of a-z, 0-9, '_' and '-'";
    if (!dedupe_key || !ml_mail_is_key (dedupe_key))
        return "dedupe_key must be 1 to 200 bytes of printable ASCII without spaces";
    if (!firm_id || !*firm_id || strlen (firm_id) > S_FIRM_MAX || ml_mail_has_control (firm_id))
        return "firm_id must be 1 to 63 bytes without control characters";
    if (!recipient || ml_mail_has_control (recipient))
        return "the recipient holds a line break or another control character (refused: it "
               "could add headers)";
    if (!ml_mail_is_address (recipient))
        return "the recipient must be one e-mail address, local@domain, ASCII, at most 254 "
               "bytes";
    if (!subject || ml_mail_has_control (subject))
        return "the subject holds a line break or another control character (refused: it "
               "could add headers)";
    if (!*subject || strlen (subject) > ML_MAILER_SUBJECT_MAX || !ml_mail_utf8_valid (subject))
        return "the subject must be 1 to 200 bytes of UTF-8";
    if (!body || !*body || strlen (body) > ML_MAILER_BODY_MAX || !ml_mail_utf8_valid (body))
        return "the body must be 1 byte to 64 KiB of UTF-8";
    if (!ml_mail_is_body_text (body))
        return "the body may hold no control characters but tabs and line breaks (LF or CRLF)";
    return NULL;
}

int ml_mailer_enqueue (ml_mailer_t *self, const char *kind, const char *dedupe_key,
                       const char *firm_id, const char *recipient, const char *subject,
                       const char *body, char *error, size_t error_size)
{
    assert (self);
    const char *refusal = s_refusal (kind, dedupe_key, firm_id, recipient, subject, body);
    if (refusal) {
        snprintf (error, error_size, "mail refused: %s", refusal);
        return -1;
    }
    //  Fixed now, so every attempt, and a resend after a crash, carries the same Message-ID.
    zuuid_t *uuid = zuuid_new ();
    assert (uuid);
    char message_id[80], now[32];
    snprintf (message_id, sizeof message_id, "<%s@matterlink.invalid>", zuuid_str_canonical (uuid));
    zuuid_destroy (&uuid);
    ml_mail_timestamp (ml_mail_now_ms (), now, sizeof now);
    //  The store never sees the body in clear text: it may hold a link's token.
    char *sealed = ml_mail_seal (self->key, message_id, recipient, body);
    //  ON CONFLICT names the dedupe key only: any other failure (an unknown firm) stays an
    //  error. Neither begin nor commit: this row belongs to the caller's transaction.
    int64_t rows = ml_db_execute (
        self->db,
        "INSERT INTO mail (dedupe_key, message_id, kind, firm_id, recipient, subject, body,"
        " state, attempts, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
        "ssssssssss", dedupe_key, message_id, kind, firm_id, recipient, subject, sealed, now, now,
        now);
    free (sealed);
    if (rows < 0) {
        snprintf (error, error_size, "the store refused the mail: %s",
                  ml_db_error (self->db)->message);
        return -1;
    }
    return rows > 0 ? 1 : 0;
}

bool ml_mail_integer_column (const char *name)
{
    return streq (name, "mail_id") || streq (name, "attempts");
}

json_t *ml_mailer_list (ml_mailer_t *self, const char *state, const char *firm_id, int limit)
{
    assert (self);
    if (limit < 1 || limit > S_LIST_MAX)
        limit = S_LIST_MAX;
    char sql[512];
    ml_db_value_t values[3] = {{0}};
    char picture[4] = "";
    size_t count = 0;
    snprintf (sql, sizeof sql, "%s WHERE 1 = 1", S_LIST_SQL);
    if (state) {
        strcat (sql, " AND state = ?");
        values[count++].text = state;
        strcat (picture, "s");
    }
    if (firm_id) {
        strcat (sql, " AND firm_id = ?");
        values[count++].text = firm_id;
        strcat (picture, "s");
    }
    strcat (sql, " ORDER BY mail_id DESC LIMIT ?");
    values[count++].number = limit;
    strcat (picture, "i");
    return ml_store_rows (ml_db_query_values (self->db, sql, picture, values),
                          ml_mail_integer_column);
}

int ml_mailer_retry (ml_mailer_t *self, int64_t mail_id)
{
    assert (self);
    char now[32];
    ml_mail_timestamp (ml_mail_now_ms (), now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return -1;
    int64_t rows = ml_db_execute (self->db,
                                  "UPDATE mail SET state = 'pending', attempts = 0,"
                                  " next_attempt_at = ?, updated_at = ?"
                                  " WHERE mail_id = ? AND state = 'failed'",
                                  "ssi", now, now, mail_id);
    if (rows < 0 || ml_db_commit (self->db) != 0) {
        ml_db_rollback (self->db);
        return -1;
    }
    return rows > 0 ? 1 : 0;
}

//  Admin ops

static json_t *s_store_failed (ml_mailer_t *self)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "mail: store failed: %s",
            ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
    return ml_admin_error ("the core store failed; see the core's log");
}

static json_t *s_op_list (ml_mailer_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *state = ml_admin_argument (request, "state", 16, problem, sizeof problem);
    const char *firm = ml_admin_argument (request, "firm", S_FIRM_MAX, problem, sizeof problem);
    json_t *limit_value = json_object_get (request, "limit");
    json_int_t limit = 100;
    if (!*problem && state && !streq (state, "pending") && !streq (state, "sent") &&
        !streq (state, "failed"))
        snprintf (problem, sizeof problem, "'state' must be pending, sent or failed");
    if (!*problem && limit_value && !json_is_null (limit_value)) {
        limit = json_is_integer (limit_value) ? json_integer_value (limit_value) : 0;
        if (limit < 1 || limit > S_LIST_MAX)
            snprintf (problem, sizeof problem, "'limit' must be a whole number from 1 to %d",
                      S_LIST_MAX);
    }
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *mails = ml_mailer_list (self, state, firm, (int)limit);
    return mails ? ml_admin_ok (json_pack ("{s:o}", "mails", mails)) : s_store_failed (self);
}

static json_t *s_op_retry (ml_mailer_t *self, const json_t *request)
{
    json_t *id = json_object_get (request, "mail_id");
    if (!json_is_integer (id) || json_integer_value (id) < 1)
        return ml_admin_error ("'mail_id' is required: a whole number of at least 1");
    int rc = ml_mailer_retry (self, (int64_t)json_integer_value (id));
    if (rc < 0)
        return s_store_failed (self);
    if (rc == 0)
        return ml_admin_error ("no failed mail %lld (only a failed mail can be retried)",
                               (long long)json_integer_value (id));
    char sql[300];
    snprintf (sql, sizeof sql, "%s WHERE mail_id = ?", S_LIST_SQL);
    json_t *rows = ml_store_rows (
        ml_db_query (self->db, sql, "i", (int64_t)json_integer_value (id)), ml_mail_integer_column);
    if (json_array_size (rows) != 1) {
        json_decref (rows);
        return s_store_failed (self);
    }
    json_t *mail = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return ml_admin_ok (json_pack ("{s:o}", "mail", mail));
}

json_t *ml_mailer_execute (ml_mailer_t *self, const char *op, const json_t *request)
{
    assert (self);
    if (!op || (!streq (op, "mail-list") && !streq (op, "mail-retry")))
        return NULL;
    if (!json_is_object (request))
        return ml_admin_error ("a request is a JSON object");
    return streq (op, "mail-list") ? s_op_list (self, request) : s_op_retry (self, request);
}
