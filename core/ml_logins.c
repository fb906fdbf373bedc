/*  ml_logins: payers' login access, links, sessions and the audit. See include/ml_logins.h. */
#include "ml_logins_internal.h"
#include "ml_admin.h"
#include "ml_alloc.h"
#include "ml_credentials.h"
#include "ml_log.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <time.h>

//  Tokens, digests, CSRF, passwords and throttling: ml_credentials, shared with staff.
#define S_FORGOT_GAP  60 //  at most one reset mail per account in this many seconds
#define S_EMAIL_HOURS 72 //  an e-mail confirmation link's life
#define S_CSRF_LABEL  "matterlink portal csrf"

static const char *const s_schema[] = {
    //  One login per payer, whatever the payer's e-mail address is now.
    "CREATE TABLE IF NOT EXISTS portal_login ("
    " payer_id INTEGER PRIMARY KEY REFERENCES payer (payer_id),"
    " state TEXT NOT NULL CHECK (state IN ('on', 'off', 'deleted')),"
    " password_hash TEXT, password_set_at INTEGER, pending_email TEXT,"
    " failures INTEGER NOT NULL DEFAULT 0, last_failure_at INTEGER, last_sign_in_at INTEGER,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
    //  Links by the digest of their token: the token itself is only in the mail.
    "CREATE TABLE IF NOT EXISTS portal_token ("
    " token_id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE,"
    " payer_id INTEGER NOT NULL REFERENCES payer (payer_id),"
    " purpose TEXT NOT NULL CHECK (purpose IN ('welcome', 'reset', 'email')), email TEXT,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, opened_at INTEGER,"
    " used_at INTEGER, invalidated_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS portal_token_payer ON portal_token (payer_id, purpose)",
    "CREATE TABLE IF NOT EXISTS portal_session ("
    " session_id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE,"
    " payer_id INTEGER NOT NULL REFERENCES payer (payer_id), client TEXT,"
    " created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, ended_at INTEGER,"
    " ended_why TEXT)",
    "CREATE INDEX IF NOT EXISTS portal_session_payer ON portal_session (payer_id, ended_at)",
    "CREATE TABLE IF NOT EXISTS portal_audit ("
    " audit_id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, payer_id INTEGER,"
    " firm_id TEXT, event TEXT NOT NULL, client TEXT, detail TEXT)",
    "CREATE INDEX IF NOT EXISTS portal_audit_payer ON portal_audit (payer_id, audit_id)",
    "CREATE TRIGGER IF NOT EXISTS portal_audit_no_update BEFORE UPDATE ON portal_audit"
    " BEGIN SELECT RAISE (ABORT, 'the portal audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS portal_audit_no_delete BEFORE DELETE ON portal_audit"
    " BEGIN SELECT RAISE (ABORT, 'the portal audit is append-only'); END",
};

static const char *const s_generic_failure = ML_LOGINS_GENERIC_FAILURE;
static const char *const s_link_failure = ML_LOGINS_LINK_FAILURE;

//  ---------------------------------------------------------------------------------------
//  Settings.

void ml_logins_settings_defaults (ml_logins_settings_t *settings)
{
    memset (settings, 0, sizeof *settings);
    settings->welcome_hours = 72;
    settings->reset_hours = 1;
    settings->session_idle_minutes = 30;
    settings->session_absolute_hours = 12;
}

int ml_logins_settings_load (ml_logins_settings_t *settings, ml_config_t *config, char *error,
                             size_t error_size)
{
    ml_logins_settings_defaults (settings);
    const char *url = ml_config_string (config, "portal/public_url", "");
    settings->welcome_hours = ml_config_int (config, "portal/welcome_hours", 72, 1, 720);
    settings->reset_hours = ml_config_int (config, "portal/reset_hours", 1, 1, 72);
    settings->session_idle_minutes =
        ml_config_int (config, "portal/session_idle_minutes", 30, 1, 1440);
    settings->session_absolute_hours =
        ml_config_int (config, "portal/session_absolute_hours", 12, 1, 720);
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        return -1;
    }
    //  Links in mails are built only from this address, never from a request's Host.
    size_t length = strlen (url);
    bool https = strncmp (url, "https://", 8) == 0, http = strncmp (url, "http://", 7) == 0;
    if (length && (length >= sizeof settings->public_url || (!https && !http) ||
                   strpbrk (url, " \t\r\n\"'<>?#"))) {
        snprintf (error, error_size,
                  "portal/public_url must be the portal's address, https://host[:port][/path]"
                  " (no query, no spaces; up to %zu bytes)",
                  sizeof settings->public_url - 1);
        return -1;
    }
    snprintf (settings->public_url, sizeof settings->public_url, "%.*s",
              (int)(length && url[length - 1] == '/' ? length - 1 : length), url);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Small helpers.

static int64_t s_now (ml_logins_t *self)
{
    return self->clock ? self->clock : (int64_t)time (NULL);
}

//  Seconds since the epoch as ISO 8601 UTC text.
static const char *s_iso (int64_t seconds, char *buf, size_t size)
{
    time_t value = (time_t)seconds;
    struct tm parts;
    gmtime_r (&value, &parts);
    strftime (buf, size, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return buf;
}

static bool s_integer_column (const char *name)
{
    size_t length = strlen (name);
    return (length > 3 && streq (name + length - 3, "_at")) ||
           (length > 6 && streq (name + length - 6, "_minor")) || streq (name, "payer_id") ||
           streq (name, "token_id") || streq (name, "session_id") || streq (name, "audit_id") ||
           streq (name, "failures") || streq (name, "mail_id") || streq (name, "n") ||
           streq (name, "password_set");
}

static json_t *s_rows (ml_db_query_t *query)
{
    return ml_store_rows (query, s_integer_column);
}

//  The first row of a query (new reference), or NULL when none; *failed on a store error.
static json_t *s_row (ml_db_query_t *query, bool *failed)
{
    return ml_store_row (query, s_integer_column, failed);
}

static const char *s_text (const json_t *row, const char *key)
{
    return json_string_value (json_object_get (row, key));
}

static int64_t s_int (const json_t *row, const char *key)
{
    return json_integer_value (json_object_get (row, key));
}

static json_t *s_store_failed (ml_logins_t *self, const char *what)
{
    return ml_admin_store_failed (self->db, "logins", what);
}

//  Commit a success, roll back anything else.
static json_t *s_finish (ml_logins_t *self, json_t *reply)
{
    return ml_admin_commit (self->db, "logins", reply);
}

//  "p***@example.com": enough for a payer to recognise the address, little for anyone else.
static void s_email_hint (const char *email, char *hint, size_t size)
{
    const char *at = email ? strchr (email, '@') : NULL;
    if (!at || at == email)
        snprintf (hint, size, "***");
    else
        snprintf (hint, size, "%c***%s", email[0], at);
}

static void s_audit (ml_logins_t *self, int64_t payer_id, const char *firm_id, const char *event,
                     const char *client, const char *detail)
{
    char at[32];
    s_iso (s_now (self), at, sizeof at);
    //  A missed audit row is logged, never a reason to refuse the payer.
    if (ml_db_execute (self->db,
                       "INSERT INTO portal_audit (at, payer_id, firm_id, event, client, detail)"
                       " VALUES (?, CASE WHEN ? = 0 THEN NULL ELSE ? END, ?, ?, ?, ?)",
                       "siissss", at, payer_id, payer_id, firm_id, event, client, detail) != 1)
        json_decref (s_store_failed (self, "audit"));
}

//  The payer's firm, name, e-mail and firm name (new reference), NULL when unknown.
static json_t *s_payer (ml_logins_t *self, int64_t payer_id, bool *failed)
{
    return s_row (ml_db_query (self->db,
                               "SELECT p.payer_id, p.firm_id, p.name, p.email, f.name AS firm_name"
                               " FROM payer p JOIN firm f ON f.firm_id = p.firm_id"
                               " WHERE p.payer_id = ?",
                               "i", payer_id),
                  failed);
}

json_t *ml_logins_login (ml_logins_t *self, int64_t payer_id, bool *failed)
{
    return s_row (ml_db_query (self->db,
                               "SELECT payer_id, state, password_hash, password_set_at,"
                               " pending_email, failures, last_failure_at, last_sign_in_at"
                               " FROM portal_login WHERE payer_id = ?",
                               "i", payer_id),
                  failed);
}

//  End every live session of a payer. Returns the number ended, -1 on error.
static int64_t s_sessions_end (ml_logins_t *self, int64_t payer_id, const char *why)
{
    return ml_db_execute (self->db,
                          "UPDATE portal_session SET ended_at = ?, ended_why = ?"
                          " WHERE payer_id = ? AND ended_at IS NULL",
                          "isi", s_now (self), why, payer_id);
}

//  Invalidate the live links of a payer for purposes ("welcome reset" etc. as an SQL IN list
//  of up to three). Returns how many, -1 on error.
static int64_t s_tokens_invalidate (ml_logins_t *self, int64_t payer_id, const char *first,
                                    const char *second, const char *third)
{
    int64_t now = s_now (self);
    return ml_db_execute (self->db,
                          "UPDATE portal_token SET invalidated_at = ? WHERE payer_id = ?"
                          " AND purpose IN (?, ?, ?) AND used_at IS NULL"
                          " AND invalidated_at IS NULL AND expires_at > ?",
                          "iisssi", now, payer_id, first, second ? second : first,
                          third ? third : first, now);
}

//  Make a link and mail it. kind is the mail's kind; path the portal page it opens. Returns
//  the mail id, or -1 with the reply to give in *reply.
static int64_t s_link_mail (ml_logins_t *self, const json_t *payer, const char *purpose,
                            const char *email, int hours, const char *kind, const char *path,
                            const char *subject, const char *opening, json_t **reply)
{
    char token[ML_LOGINS_TOKEN_LENGTH + 1], digest[65];
    ml_credentials_token_new (token, digest);
    int64_t now = s_now (self), token_id = 0, payer_id = s_int (payer, "payer_id");
    bool failed = false;
    json_t *row = NULL;
    if (ml_db_execute (self->db,
                       "INSERT INTO portal_token (digest, payer_id, purpose, email, created_at,"
                       " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                       "sissii", digest, payer_id, purpose, email, now,
                       now + (int64_t)hours * 3600) != 1 ||
        !(row = s_row (ml_db_query (self->db, "SELECT token_id FROM portal_token WHERE digest = ?",
                                    "s", digest),
                       &failed))) {
        sodium_memzero (token, sizeof token);
        *reply = s_store_failed (self, "link");
        return -1;
    }
    token_id = s_int (row, "token_id");
    json_decref (row);
    const char *firm_name = s_text (payer, "firm_name");
    char body[4096], key[64], error[300];
    snprintf (body, sizeof body,
              "Hello %s,\n\n%s\n\n  %s/%s?token=%s\n\nThe link works once and for %d hour%s. "
              "The portal: %s\n\nIf you did not expect this e-mail, you can ignore it; nothing "
              "changes until the link is used.\n\n%s\n",
              s_text (payer, "name"), opening, self->settings.public_url, path, token, hours,
              hours == 1 ? "" : "s", self->settings.public_url, firm_name);
    if (self->testing)
        snprintf (self->test_token, sizeof self->test_token, "%s", token);
    sodium_memzero (token, sizeof token);
    snprintf (key, sizeof key, "%s:%lld", kind, (long long)token_id);
    const char *recipient = email ? email : s_text (payer, "email");
    int queued = ml_mailer_enqueue (self->mailer, kind, key, s_text (payer, "firm_id"), recipient,
                                    subject, body, error, sizeof error);
    sodium_memzero (body, sizeof body);
    if (queued != 1) {
        ml_log (ML_LOG_ERROR, "logins: the %s mail for payer %lld was not queued: %s", kind,
                (long long)payer_id, error);
        *reply = ml_admin_error ("the mail could not be queued: %s", error);
        return -1;
    }
    row = s_row (ml_db_query (self->db, "SELECT mail_id FROM mail WHERE dedupe_key = ?", "s", key),
                 &failed);
    int64_t mail_id = row ? s_int (row, "mail_id") : 0;
    json_decref (row);
    return mail_id;
}

//  A live link by its token (new reference, with the payer's login state), or NULL.
static json_t *s_token_find (ml_logins_t *self, const char *token, bool *failed)
{
    char digest[65];
    if (!ml_credentials_token_digest (token, digest))
        return NULL;
    json_t *row = s_row (
        ml_db_query (self->db,
                     "SELECT t.token_id, t.digest, t.payer_id, t.purpose, t.email, t.expires_at,"
                     " t.used_at, t.invalidated_at, l.state FROM portal_token t"
                     " JOIN portal_login l ON l.payer_id = t.payer_id WHERE t.digest = ?",
                     "s", digest),
        failed);
    if (!row)
        return NULL;
    const char *stored = s_text (row, "digest");
    bool live = ml_credentials_digest_equal (stored, digest) &&
                json_is_null (json_object_get (row, "used_at")) &&
                json_is_null (json_object_get (row, "invalidated_at")) &&
                s_int (row, "expires_at") > s_now (self);
    const char *state = s_text (row, "state");
    //  Welcome and reset links need access on; an e-mail change needs a login at all.
    if (streq (s_text (row, "purpose"), "email") ? streq (state, "deleted") : !streq (state, "on"))
        live = false;
    if (!live)
        json_decref (row);
    return live ? row : NULL;
}

//  ---------------------------------------------------------------------------------------
//  The access state.

json_t *ml_logins_access (ml_logins_t *self, int64_t payer_id)
{
    bool failed = false;
    json_t *login = ml_logins_login (self, payer_id, &failed);
    json_t *welcome =
        s_row (ml_db_query (self->db,
                            "SELECT created_at, expires_at, opened_at, used_at, invalidated_at"
                            " FROM portal_token WHERE payer_id = ? AND purpose = 'welcome'"
                            " ORDER BY token_id DESC LIMIT 1",
                            "i", payer_id),
               &failed);
    if (failed) {
        json_decref (login);
        json_decref (welcome);
        s_store_failed (self, "access state");
        return NULL;
    }
    const char *state = login ? s_text (login, "state") : "off";
    bool password = login && json_is_string (json_object_get (login, "password_hash"));
    json_t *access = json_pack ("{s:s}", "state",
                                streq (state, "on") ? (password ? "active" : "invited") : state);
    char when[32];
    const char *invitation = NULL;
    if (welcome && login && !streq (state, "deleted")) {
        invitation = !json_is_null (json_object_get (welcome, "used_at"))     ? "password set"
                     : !json_is_null (json_object_get (welcome, "opened_at")) ? "link used"
                                                                              : "sent";
        json_object_set_new (
            access, "invited_at",
            json_string (s_iso (s_int (welcome, "created_at"), when, sizeof when)));
        json_object_set_new (
            access, "invitation_expires_at",
            json_string (s_iso (s_int (welcome, "expires_at"), when, sizeof when)));
        bool live = json_is_null (json_object_get (welcome, "used_at")) &&
                    json_is_null (json_object_get (welcome, "invalidated_at")) &&
                    s_int (welcome, "expires_at") > s_now (self);
        if (!live && streq (invitation, "sent"))
            invitation = "expired";
    }
    json_object_set_new (access, "invitation",
                         invitation ? json_string (invitation) : json_null ());
    const char *times[] = {"password_set_at", "last_sign_in_at", NULL};
    for (size_t index = 0; times[index]; index++) {
        json_t *value = login ? json_object_get (login, times[index]) : NULL;
        json_object_set_new (
            access, times[index],
            json_is_integer (value)
                ? json_string (s_iso (json_integer_value (value), when, sizeof when))
                : json_null ());
    }
    json_t *pending = login ? json_object_get (login, "pending_email") : NULL;
    json_object_set_new (access, "pending_email",
                         json_is_string (pending) ? json_incref (pending) : json_null ());
    json_decref (login);
    json_decref (welcome);
    return access;
}

#define S_MARK_BATCH 16

int ml_logins_mark_access (ml_logins_t *self, json_t *payers)
{
    assert (self);
    size_t count = json_array_size (payers);
    for (size_t first = 0; first < count; first += S_MARK_BATCH) {
        //  A fixed number of parameters, so the statement is prepared once: ids past the
        //  end are 0, which no payer has.
        int64_t ids[S_MARK_BATCH] = {0};
        for (size_t index = 0; index < S_MARK_BATCH && first + index < count; index++) {
            json_t *payer = json_array_get (payers, first + index);
            ids[index] = s_int (payer, "payer_id");
            json_object_set_new (payer, "login_access", json_string ("off"));
        }
        json_t *rows = s_rows (ml_db_query (
            self->db,
            "SELECT payer_id, state, CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS"
            " password_set FROM portal_login WHERE payer_id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            "iiiiiiiiiiiiiiii", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7],
            ids[8], ids[9], ids[10], ids[11], ids[12], ids[13], ids[14], ids[15]));
        if (!rows) {
            json_decref (s_store_failed (self, "login access of a list"));
            return -1;
        }
        size_t row_index;
        json_t *row;
        json_array_foreach (rows, row_index, row)
        {
            const char *state = s_text (row, "state");
            for (size_t index = 0; index < S_MARK_BATCH && first + index < count; index++) {
                json_t *payer = json_array_get (payers, first + index);
                if (ids[index] == s_int (row, "payer_id"))
                    json_object_set_new (
                        payer, "login_access",
                        json_string (streq (state, "on")
                                         ? (s_int (row, "password_set") ? "active" : "invited")
                                         : state));
            }
        }
        json_decref (rows);
    }
    return 0;
}

int ml_logins_has_login (ml_logins_t *self, int64_t payer_id)
{
    bool failed = false;
    json_t *login = ml_logins_login (self, payer_id, &failed);
    int rc = failed ? -1 : login && !streq (s_text (login, "state"), "deleted") ? 1 : 0;
    json_decref (login);
    return rc;
}

//  ---------------------------------------------------------------------------------------
//  Operator ops.

static json_t *s_payer_access (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *action = ml_admin_argument (request, "action", 16, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    json_t *id = json_object_get (request, "payer_id");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!json_is_integer (id) || json_integer_value (id) < 1)
        return ml_admin_error ("'payer_id' is required (a whole number)");
    if (!action || (!streq (action, "on") && !streq (action, "off") && !streq (action, "reset") &&
                    !streq (action, "delete")))
        return ml_admin_error ("'action' must be on, off, reset or delete");
    bool mails = streq (action, "on") || streq (action, "reset");
    if (mails && !*self->settings.public_url)
        return ml_admin_error ("portal/public_url is not set in the core's configuration: the "
                               "welcome and reset e-mails need the portal's address");
    int64_t payer_id = json_integer_value (id);
    if (ml_db_begin (self->db) != 0)
        return s_store_failed (self, "begin");
    bool failed = false;
    json_t *payer = s_payer (self, payer_id, &failed);
    json_t *login = payer ? ml_logins_login (self, payer_id, &failed) : NULL;
    if (failed || !payer) {
        json_decref (payer);
        json_decref (login);
        return s_finish (self, failed ? s_store_failed (self, "payer-access")
                                      : ml_admin_error ("unknown payer %lld", (long long)payer_id));
    }
    const char *state = login ? s_text (login, "state") : "none";
    bool password = login && json_is_string (json_object_get (login, "password_hash"));
    const char *firm_id = s_text (payer, "firm_id");
    char detail[128];
    snprintf (detail, sizeof detail, "by %s", staff && *staff ? staff : "staff");
    int64_t now = s_now (self), invalidated = 0, mail_id = 0;
    json_t *reply = NULL;
    bool ok = true;
    if (streq (action, "on")) {
        ok = ml_db_execute (self->db,
                            "INSERT INTO portal_login (payer_id, state, created_at, updated_at)"
                            " VALUES (?, 'on', ?, ?) ON CONFLICT (payer_id) DO UPDATE"
                            " SET state = 'on', updated_at = excluded.updated_at",
                            "iii", payer_id, now, now) == 1;
        //  A payer who has a password just gets access back; anyone else a new link, and
        //  the earlier links die so no old welcome mail stays usable.
        if (ok && !password) {
            invalidated = s_tokens_invalidate (self, payer_id, "welcome", NULL, NULL);
            ok = invalidated >= 0;
            if (ok)
                mail_id = s_link_mail (
                    self, payer, "welcome", NULL, self->settings.welcome_hours, "portal-welcome",
                    "set-password", "Your payment portal: set your password",
                    "You can now see and pay your invoices online. Set your password here:",
                    &reply);
        }
    } else if (streq (action, "reset")) {
        if (!streq (state, "on"))
            reply = ml_admin_error ("payer %lld has no login access on (turn it on first: "
                                    "matterlink payer access on %lld)",
                                    (long long)payer_id, (long long)payer_id);
        else {
            invalidated = s_tokens_invalidate (self, payer_id, "reset", NULL, NULL);
            ok = invalidated >= 0;
            if (ok)
                mail_id = s_link_mail (
                    self, payer, "reset", NULL, self->settings.reset_hours, "portal-reset",
                    "set-password", "Your payment portal: reset your password",
                    "The firm sent you a link to choose a new password:", &reply);
        }
    } else if (streq (action, "off")) {
        if (!streq (state, "on") && !streq (state, "off"))
            reply = ml_admin_error ("payer %lld has no login to turn off", (long long)payer_id);
        else
            ok = ml_db_execute (self->db,
                                "UPDATE portal_login SET state = 'off', updated_at = ?"
                                " WHERE payer_id = ?",
                                "ii", now, payer_id) == 1 &&
                 s_sessions_end (self, payer_id, "access off") >= 0;
    } else {
        if (!streq (state, "on") && !streq (state, "off"))
            reply = ml_admin_error ("payer %lld has no login to delete", (long long)payer_id);
        else {
            invalidated = s_tokens_invalidate (self, payer_id, "welcome", "reset", "email");
            ok = invalidated >= 0 &&
                 ml_db_execute (self->db,
                                "UPDATE portal_login SET state = 'deleted', password_hash = NULL,"
                                " password_set_at = NULL, pending_email = NULL, failures = 0,"
                                " last_failure_at = NULL, updated_at = ? WHERE payer_id = ?",
                                "ii", now, payer_id) == 1 &&
                 s_sessions_end (self, payer_id, "login deleted") >= 0;
        }
    }
    if (!reply && (!ok || mail_id < 0))
        reply = s_store_failed (self, "payer-access");
    if (!reply) {
        char event[32];
        snprintf (event, sizeof event, "access %s", action);
        s_audit (self, payer_id, firm_id, event, NULL, detail);
        reply =
            ml_admin_ok (json_pack ("{s:I, s:o}", "invalidated", (json_int_t)invalidated, "mail_id",
                                    mail_id > 0 ? json_integer (mail_id) : json_null ()));
        ml_log (ML_LOG_NOTICE, "logins: payer %lld access %s (%s)", (long long)payer_id, action,
                detail);
    }
    json_decref (payer);
    json_decref (login);
    reply = s_finish (self, reply);
    if (json_is_true (json_object_get (reply, "ok"))) {
        json_t *access = ml_logins_access (self, payer_id);
        json_object_set_new (reply, "access", access ? access : json_null ());
    }
    return reply;
}

static json_t *s_portal_audit (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    json_t *id = json_object_get (request, "payer_id");
    json_t *limit = json_object_get (request, "limit");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (id && (!json_is_integer (id) || json_integer_value (id) < 1))
        return ml_admin_error ("'payer_id' must be a whole number");
    if (limit && (!json_is_integer (limit) || json_integer_value (limit) < 1 ||
                  json_integer_value (limit) > 1000))
        return ml_admin_error ("'limit' must be a whole number from 1 to 1000");
    json_t *events = s_rows (ml_db_query (
        self->db,
        "SELECT audit_id, at, payer_id, firm_id, event, client, detail FROM portal_audit"
        " WHERE (? IS NULL OR firm_id = ?) AND (? = 0 OR payer_id = ?)"
        " ORDER BY audit_id DESC LIMIT ?",
        "ssiii", firm, firm, (int64_t)(id ? json_integer_value (id) : 0),
        (int64_t)(id ? json_integer_value (id) : 0),
        (int64_t)(limit ? json_integer_value (limit) : 100)));
    return events ? ml_admin_ok (json_pack ("{s:o}", "events", events))
                  : s_store_failed (self, "portal-audit");
}

//  ---------------------------------------------------------------------------------------
//  Anonymous ops.

static json_t *s_portal_token (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("%s", s_link_failure);
    bool failed = false;
    json_t *found = s_token_find (self, token, &failed);
    if (failed)
        return s_store_failed (self, "portal-token");
    if (!found)
        return ml_admin_error ("%s", s_link_failure);
    json_t *payer = s_payer (self, s_int (found, "payer_id"), &failed);
    //  Opening does not use the link up: mail scanners fetch links before people do.
    ml_db_execute (self->db,
                   "UPDATE portal_token SET opened_at = ? WHERE token_id = ?"
                   " AND opened_at IS NULL",
                   "ii", s_now (self), s_int (found, "token_id"));
    char hint[300];
    const char *purpose = s_text (found, "purpose");
    s_email_hint (streq (purpose, "email") ? s_text (found, "email") : s_text (payer, "email"),
                  hint, sizeof hint);
    json_t *reply =
        payer ? ml_admin_ok (json_pack ("{s:s, s:s, s:s}", "purpose", purpose, "firm_name",
                                        s_text (payer, "firm_name"), "email_hint", hint))
              : ml_admin_error ("%s", s_link_failure);
    json_decref (payer);
    json_decref (found);
    return reply;
}

static json_t *s_portal_password_set (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    if (*problem && strstr (problem, "'password'"))
        return ml_admin_error ("the password may have at most 128 characters");
    if (*problem || !token)
        return ml_admin_error ("%s", s_link_failure);
    if (!password)
        return ml_admin_error ("choose a password");
    bool failed = false;
    json_t *found = s_token_find (self, token, &failed);
    if (failed)
        return s_store_failed (self, "portal-password-set");
    const char *purpose = found ? s_text (found, "purpose") : "";
    if (!found || (!streq (purpose, "welcome") && !streq (purpose, "reset"))) {
        json_decref (found);
        return ml_admin_error ("%s", s_link_failure);
    }
    int64_t payer_id = s_int (found, "payer_id"), token_id = s_int (found, "token_id");
    json_t *payer = s_payer (self, payer_id, &failed);
    const char *why =
        payer ? ml_credentials_password_problem (password, s_text (payer, "email")) : NULL;
    char hash[crypto_pwhash_STRBYTES];
    json_t *reply = NULL;
    if (!payer)
        reply = s_store_failed (self, "portal-password-set");
    else if (why)
        reply = ml_admin_error ("%s", why);
    else if (ml_credentials_hash (password, hash) != 0)
        reply = ml_admin_error ("the core is out of memory; try again shortly");
    else if (ml_db_begin (self->db) != 0)
        reply = s_store_failed (self, "begin");
    else {
        int64_t now = s_now (self);
        //  Used once: the UPDATE that marks it counts, so two submits cannot both set it.
        int64_t used = ml_db_execute (self->db,
                                      "UPDATE portal_token SET used_at = ? WHERE token_id = ?"
                                      " AND used_at IS NULL AND invalidated_at IS NULL",
                                      "ii", now, token_id);
        if (used == 0)
            reply = ml_admin_error ("%s", s_link_failure);
        else if (used < 0 || s_tokens_invalidate (self, payer_id, "welcome", "reset", NULL) < 0 ||
                 ml_db_execute (self->db,
                                "UPDATE portal_login SET password_hash = ?, password_set_at = ?,"
                                " failures = 0, last_failure_at = NULL, updated_at = ?"
                                " WHERE payer_id = ?",
                                "siii", hash, now, now, payer_id) != 1 ||
                 s_sessions_end (self, payer_id, "password set") < 0)
            reply = s_store_failed (self, "portal-password-set");
        else {
            s_audit (self, payer_id, s_text (payer, "firm_id"), "password set", NULL, purpose);
            reply = ml_admin_ok (NULL);
        }
        reply = s_finish (self, reply);
    }
    sodium_memzero (hash, sizeof hash);
    json_decref (payer);
    json_decref (found);
    return reply;
}

static json_t *s_portal_sign_in (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 100, problem, sizeof problem);
    *problem = 0;
    //  Candidates: logins with access on and a password, by the payer's current address (a
    //  pending new address counts only once confirmed). An address may be a payer's at
    //  several firms; each has its own login.
    json_t *candidates =
        email && password
            ? s_rows (ml_db_query (
                  self->db,
                  "SELECT l.payer_id, l.password_hash, l.failures, l.last_failure_at,"
                  " p.firm_id, p.name, f.name AS firm_name FROM portal_login l"
                  " JOIN payer p ON p.payer_id = l.payer_id JOIN firm f ON f.firm_id = p.firm_id"
                  " WHERE p.email = ? COLLATE NOCASE AND l.state = 'on'"
                  " AND l.password_hash IS NOT NULL ORDER BY l.payer_id LIMIT 5",
                  "s", email))
            : json_array ();
    if (!candidates)
        return s_store_failed (self, "portal-sign-in");
    const char *typed = password ? password : "";
    int64_t now = s_now (self);
    json_t *winner = NULL;
    size_t index;
    json_t *candidate;
    json_array_foreach (candidates, index, candidate)
    {
        int64_t failures = s_int (candidate, "failures");
        int64_t payer_id = s_int (candidate, "payer_id");
        const char *firm_id = s_text (candidate, "firm_id");
        if (ml_credentials_throttled (failures, s_int (candidate, "last_failure_at"), now)) {
            //  Inside the wait: the same work and the same answer, the password unchecked.
            ml_credentials_verify (self->dummy_hash, typed);
            s_audit (self, payer_id, firm_id, "sign-in throttled", client, NULL);
            continue;
        }
        if (ml_credentials_verify (s_text (candidate, "password_hash"), typed)) {
            winner = candidate;
            break;
        }
        ml_db_execute (self->db,
                       "UPDATE portal_login SET failures = failures + 1, last_failure_at = ?"
                       " WHERE payer_id = ?",
                       "ii", now, payer_id);
        s_audit (self, payer_id, firm_id, "sign-in failed", client, NULL);
    }
    if (json_array_size (candidates) == 0) {
        //  Nobody to check: as long as a check would take, and the same answer.
        ml_credentials_verify (self->dummy_hash, typed);
        s_audit (self, 0, NULL, "sign-in failed", client, "no login with that address");
    }
    json_t *reply = NULL;
    if (!winner)
        reply = ml_admin_error ("%s", s_generic_failure);
    else {
        int64_t payer_id = s_int (winner, "payer_id");
        char session[ML_LOGINS_TOKEN_LENGTH + 1], digest[65], csrf[ML_LOGINS_TOKEN_LENGTH + 1];
        ml_credentials_token_new (session, digest);
        ml_credentials_csrf (S_CSRF_LABEL, session, csrf);
        char hash[crypto_pwhash_STRBYTES];
        bool rehash = ml_credentials_needs_rehash (s_text (winner, "password_hash")) &&
                      ml_credentials_hash (typed, hash) == 0;
        if (ml_db_execute (self->db,
                           "INSERT INTO portal_session (digest, payer_id, client, created_at,"
                           " last_seen_at) VALUES (?, ?, ?, ?, ?)",
                           "sisii", digest, payer_id, client, now, now) != 1 ||
            ml_db_execute (self->db,
                           "UPDATE portal_login SET failures = 0, last_failure_at = NULL,"
                           " last_sign_in_at = ?, password_hash = CASE WHEN ? = 1 THEN ? ELSE"
                           " password_hash END WHERE payer_id = ?",
                           "iisi", now, (int64_t)(rehash ? 1 : 0), rehash ? hash : NULL,
                           payer_id) != 1)
            reply = s_store_failed (self, "portal-sign-in");
        else {
            s_audit (self, payer_id, s_text (winner, "firm_id"), "sign-in", client, NULL);
            reply = ml_admin_ok (json_pack ("{s:s, s:s, s:{s:I, s:s, s:s}}", "session", session,
                                            "csrf", csrf, "payer", "payer_id", (json_int_t)payer_id,
                                            "name", s_text (winner, "name"), "firm_name",
                                            s_text (winner, "firm_name")));
        }
        sodium_memzero (session, sizeof session);
        sodium_memzero (hash, sizeof hash);
    }
    json_decref (candidates);
    return reply;
}

static json_t *s_portal_forgot (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 100, problem, sizeof problem);
    if (*problem || !email || !*self->settings.public_url) {
        if (!*self->settings.public_url)
            ml_log (ML_LOG_WARNING, "logins: a reset was asked, but portal/public_url is not set");
        return ml_admin_ok (NULL);
    }
    json_t *payers = s_rows (ml_db_query (
        self->db,
        "SELECT p.payer_id, p.firm_id, p.name, p.email, f.name AS firm_name FROM portal_login l"
        " JOIN payer p ON p.payer_id = l.payer_id JOIN firm f ON f.firm_id = p.firm_id"
        " WHERE p.email = ? COLLATE NOCASE AND l.state = 'on' ORDER BY p.payer_id LIMIT 5",
        "s", email));
    size_t index;
    json_t *payer;
    json_array_foreach (payers, index, payer)
    {
        int64_t payer_id = s_int (payer, "payer_id");
        bool failed = false;
        //  One reset mail a minute per account at most: the form cannot flood a mailbox.
        json_t *recent = s_row (ml_db_query (self->db,
                                             "SELECT token_id FROM portal_token WHERE payer_id = ?"
                                             " AND purpose = 'reset' AND created_at > ?",
                                             "ii", payer_id, s_now (self) - S_FORGOT_GAP),
                                &failed);
        if (recent || failed) {
            json_decref (recent);
            continue;
        }
        json_t *reply = NULL;
        if (ml_db_begin (self->db) != 0)
            continue;
        if (s_tokens_invalidate (self, payer_id, "reset", NULL, NULL) < 0 ||
            s_link_mail (self, payer, "reset", NULL, self->settings.reset_hours, "portal-reset",
                         "set-password", "Your payment portal: reset your password",
                         "Someone (we hope you) asked to reset your password. Choose a new one "
                         "here:",
                         &reply) < 0)
            ml_db_rollback (self->db);
        else {
            s_audit (self, payer_id, s_text (payer, "firm_id"), "reset asked", client, NULL);
            if (ml_db_commit (self->db) != 0)
                ml_db_rollback (self->db);
        }
        json_decref (reply);
    }
    json_decref (payers);
    return ml_admin_ok (NULL);
}

static json_t *s_portal_email_confirm (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("%s", s_link_failure);
    bool failed = false;
    json_t *found = s_token_find (self, token, &failed);
    if (failed)
        return s_store_failed (self, "portal-email-confirm");
    if (!found || !streq (s_text (found, "purpose"), "email")) {
        json_decref (found);
        return ml_admin_error ("%s", s_link_failure);
    }
    int64_t payer_id = s_int (found, "payer_id");
    char email[300];
    snprintf (email, sizeof email, "%s", s_text (found, "email"));
    json_t *taken = ml_payers_email_check (self->payers, payer_id, email);
    if (taken) {
        json_decref (taken);
        json_decref (found);
        return ml_admin_error ("this address is now used by another payer of the firm; ask the "
                               "firm to change your e-mail address");
    }
    json_t *reply = NULL;
    if (ml_db_begin (self->db) != 0) {
        json_decref (found);
        return s_store_failed (self, "begin");
    }
    int64_t now = s_now (self);
    char now_text[32];
    ml_store_now (now_text, sizeof now_text);
    int64_t used = ml_db_execute (self->db,
                                  "UPDATE portal_token SET used_at = ? WHERE token_id = ?"
                                  " AND used_at IS NULL AND invalidated_at IS NULL",
                                  "ii", now, s_int (found, "token_id"));
    if (used == 0)
        reply = ml_admin_error ("%s", s_link_failure);
    else if (used < 0 ||
             ml_db_execute (self->db,
                            "UPDATE payer SET email = ?, updated_at = ? WHERE payer_id = ?", "ssi",
                            email, now_text, payer_id) != 1 ||
             ml_db_execute (self->db,
                            "UPDATE portal_login SET pending_email = NULL, updated_at = ?"
                            " WHERE payer_id = ?",
                            "ii", now, payer_id) != 1 ||
             s_tokens_invalidate (self, payer_id, "email", NULL, NULL) < 0 ||
             s_sessions_end (self, payer_id, "e-mail changed") < 0)
        reply = s_store_failed (self, "portal-email-confirm");
    else {
        json_t *payer = s_payer (self, payer_id, &failed);
        s_audit (self, payer_id, payer ? s_text (payer, "firm_id") : NULL,
                 "e-mail change confirmed", NULL, NULL);
        json_decref (payer);
        reply = ml_admin_ok (NULL);
    }
    json_decref (found);
    return s_finish (self, reply);
}

json_t *ml_logins_email_change (ml_logins_t *self, int64_t payer_id, const char *email,
                                const char *staff)
{
    assert (self && email);
    if (!*self->settings.public_url)
        return ml_admin_error ("this payer has a portal login, so a new address is confirmed by "
                               "a link, but portal/public_url is not set in the core's "
                               "configuration; nothing was changed");
    if (ml_db_begin (self->db) != 0)
        return s_store_failed (self, "begin");
    bool failed = false;
    json_t *payer = s_payer (self, payer_id, &failed);
    json_t *reply = NULL;
    int64_t mail_id = -1, notice_id = 0;
    if (!payer)
        reply = failed ? s_store_failed (self, "e-mail change")
                       : ml_admin_error ("unknown payer %lld", (long long)payer_id);
    else if (s_tokens_invalidate (self, payer_id, "email", NULL, NULL) < 0 ||
             ml_db_execute (self->db,
                            "UPDATE portal_login SET pending_email = ?, updated_at = ?"
                            " WHERE payer_id = ?",
                            "sii", email, s_now (self), payer_id) != 1)
        reply = s_store_failed (self, "e-mail change");
    else
        mail_id = s_link_mail (self, payer, "email", email, S_EMAIL_HOURS, "portal-email-confirm",
                               "confirm-email", "Your payment portal: confirm your new address",
                               "The firm changed the e-mail address of your payment portal login "
                               "to this one. Confirm it with this link; until then you sign in "
                               "with your earlier address:",
                               &reply);
    if (mail_id > 0) {
        //  The old address hears of it, so a change nobody asked for does not go unseen.
        char body[2048], key[64], error[300], hint[300];
        s_email_hint (email, hint, sizeof hint);
        snprintf (body, sizeof body,
                  "Hello %s,\n\nThe e-mail address of your payment portal login at %s is being "
                  "changed to %s. A confirmation link went to the new address; you keep signing "
                  "in with this address until it is used.\n\nIf you did not ask for this, please "
                  "contact %s.\n",
                  s_text (payer, "name"), s_text (payer, "firm_name"), hint,
                  s_text (payer, "firm_name"));
        snprintf (key, sizeof key, "portal-email-notice:%lld", (long long)mail_id);
        if (ml_mailer_enqueue (self->mailer, "portal-email-notice", key, s_text (payer, "firm_id"),
                               s_text (payer, "email"), "Your payment portal: e-mail change", body,
                               error, sizeof error) != 1)
            reply = ml_admin_error ("the mail could not be queued: %s", error);
        else {
            json_t *row = s_row (
                ml_db_query (self->db, "SELECT mail_id FROM mail WHERE dedupe_key = ?", "s", key),
                &failed);
            notice_id = row ? s_int (row, "mail_id") : 0;
            json_decref (row);
            char detail[128];
            snprintf (detail, sizeof detail, "by %s", staff && *staff ? staff : "staff");
            s_audit (self, payer_id, s_text (payer, "firm_id"), "e-mail change asked", NULL,
                     detail);
            reply = ml_admin_ok (json_pack ("{s:{s:s, s:I, s:I}}", "email_change", "pending_email",
                                            email, "confirmation_mail_id", (json_int_t)mail_id,
                                            "notice_mail_id", (json_int_t)notice_id));
        }
    } else if (!reply)
        reply = s_store_failed (self, "e-mail change");
    json_decref (payer);
    return s_finish (self, reply);
}

//  ---------------------------------------------------------------------------------------
//  Payer ops.

//  How stale the idle clock may get before a request moves it: a tenth of the idle timeout.
//  Writing it at every request made each page a durable write (two, with the session
//  check); now a session ends between 90% and 100% of the idle timeout after its last use,
//  never later.
static int64_t s_touch_seconds (ml_logins_t *self)
{
    int64_t seconds = (int64_t)self->settings.session_idle_minutes * 6;
    return seconds > 0 ? seconds : 1;
}

int ml_logins_session (ml_logins_t *self, const char *token, ml_actor_t *actor)
{
    assert (self && actor);
    char digest[65];
    if (!ml_credentials_token_digest (token, digest))
        return 0;
    bool failed = false;
    json_t *row = s_row (
        ml_db_query (self->db,
                     "SELECT s.session_id, s.digest, s.payer_id, s.created_at, s.last_seen_at,"
                     " s.ended_at, p.firm_id, l.state FROM portal_session s"
                     " JOIN payer p ON p.payer_id = s.payer_id"
                     " JOIN portal_login l ON l.payer_id = s.payer_id WHERE s.digest = ?",
                     "s", digest),
        &failed);
    if (failed) {
        s_store_failed (self, "session lookup");
        return -1;
    }
    if (!row)
        return 0;
    int64_t now = s_now (self);
    const char *stored = s_text (row, "digest");
    const char *why = NULL;
    if (now - s_int (row, "created_at") > (int64_t)self->settings.session_absolute_hours * 3600)
        why = "absolute timeout";
    else if (now - s_int (row, "last_seen_at") > (int64_t)self->settings.session_idle_minutes * 60)
        why = "idle timeout";
    bool live = ml_credentials_digest_equal (stored, digest) &&
                json_is_null (json_object_get (row, "ended_at")) &&
                streq (s_text (row, "state"), "on") && !why;
    int64_t session_id = s_int (row, "session_id");
    if (!live && why && json_is_null (json_object_get (row, "ended_at")))
        ml_db_execute (self->db,
                       "UPDATE portal_session SET ended_at = ?, ended_why = ?"
                       " WHERE session_id = ?",
                       "isi", now, why, session_id);
    else if (live && now - s_int (row, "last_seen_at") >= s_touch_seconds (self))
        ml_db_execute (self->db, "UPDATE portal_session SET last_seen_at = ? WHERE session_id = ?",
                       "ii", now, session_id);
    if (live) {
        memset (actor, 0, sizeof *actor);
        actor->kind = ML_ACTOR_PAYER;
        actor->payer_id = s_int (row, "payer_id");
        snprintf (actor->firm_id, sizeof actor->firm_id, "%s", s_text (row, "firm_id"));
        snprintf (actor->session, sizeof actor->session, "%s", token);
    }
    json_decref (row);
    return live ? 1 : 0;
}

bool ml_logins_csrf_ok (ml_logins_t *self, const ml_actor_t *actor, const char *csrf)
{
    assert (self && actor);
    return actor->kind == ML_ACTOR_PAYER &&
           ml_credentials_csrf_ok (S_CSRF_LABEL, actor->session, csrf);
}

static json_t *s_portal_session (ml_logins_t *self, const ml_actor_t *actor)
{
    bool failed = false;
    json_t *payer = s_payer (self, actor->payer_id, &failed);
    if (!payer)
        return failed ? s_store_failed (self, "portal-session") : ml_admin_error ("not found");
    char csrf[ML_LOGINS_TOKEN_LENGTH + 1];
    ml_credentials_csrf (S_CSRF_LABEL, actor->session, csrf);
    json_t *reply = ml_admin_ok (
        json_pack ("{s:s, s:{s:I, s:s, s:s, s:s}}", "csrf", csrf, "payer", "payer_id",
                   (json_int_t)actor->payer_id, "name", s_text (payer, "name"), "email",
                   s_text (payer, "email"), "firm_name", s_text (payer, "firm_name")));
    json_decref (payer);
    return reply;
}

static json_t *s_portal_sign_out (ml_logins_t *self, const ml_actor_t *actor)
{
    char digest[65];
    if (!ml_credentials_token_digest (actor->session, digest))
        return ml_admin_error ("not found");
    if (ml_db_execute (self->db,
                       "UPDATE portal_session SET ended_at = ?, ended_why = 'sign-out'"
                       " WHERE digest = ? AND ended_at IS NULL",
                       "is", s_now (self), digest) < 0)
        return s_store_failed (self, "portal-sign-out");
    s_audit (self, actor->payer_id, actor->firm_id, "sign-out", NULL, NULL);
    return ml_admin_ok (NULL);
}

static bool s_listed (const json_t *list, const char *number)
{
    size_t index;
    json_t *value;
    json_array_foreach (list, index, value)
    {
        if (number && *number && streq (json_string_value (value), number))
            return true;
    }
    return false;
}

//  The columns of the trust ledgers of a listing (portal-invoices "trust_columns").
static const char *const s_ledger_columns[] = {
    "client_number", "client_name", "matter_number", "matter_description", "currency",
    "balance_minor", NULL};
enum { S_ITEM_NUMBER = 0, S_ITEM_DATE = 1, S_ITEM_CLIENT = 3, S_ITEM_MATTER = 5 };
enum { S_LEDGER_CLIENT = 0, S_LEDGER_MATTER = 2 };

//  A text cell of a listing row, "" when null (for ordering and keys).
static const char *s_cell (const json_t *row, size_t column)
{
    const char *text = json_string_value (json_array_get (row, column));
    return text ? text : "";
}

static int s_ledger_compare (const void *a, const void *b)
{
    const json_t *left = *(const json_t *const *)a, *right = *(const json_t *const *)b;
    int order = strcmp (s_cell (left, S_LEDGER_CLIENT), s_cell (right, S_LEDGER_CLIENT));
    return order ? order : strcmp (s_cell (left, S_LEDGER_MATTER), s_cell (right, S_LEDGER_MATTER));
}

//  Trust ledgers by client, then matter.
static void s_sort_ledgers (json_t *ledgers)
{
    size_t size = json_array_size (ledgers);
    if (size < 2)
        return;
    json_t **rows = calloc (size, sizeof (json_t *));
    assert (rows);
    for (size_t index = 0; index < size; index++)
        rows[index] = json_incref (json_array_get (ledgers, index));
    qsort (rows, size, sizeof (json_t *), s_ledger_compare);
    json_array_clear (ledgers);
    for (size_t index = 0; index < size; index++)
        json_array_append_new (ledgers, rows[index]);
    free (rows);
}

//  Drop the rows that equal the row before them in both key columns (a sorted listing that
//  two associations reach lists an invoice or a ledger once), and every row that none of
//  the payer's associations reaches (what the queries asked for, checked again here: the
//  replica holds the whole firm, the payer sees only what the firm associated).
static void s_keep_listed (json_t *rows, size_t first_key, size_t second_key, const json_t *clients,
                           const json_t *matters, const json_t *invoices, size_t client_column,
                           size_t matter_column, size_t invoice_column)
{
    json_t *kept = json_array ();
    json_t *previous = NULL;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (previous && streq (s_cell (row, first_key), s_cell (previous, first_key)) &&
            streq (s_cell (row, second_key), s_cell (previous, second_key)))
            continue;
        if (!s_listed (clients, s_cell (row, client_column)) &&
            !s_listed (matters, s_cell (row, matter_column)) &&
            (invoice_column == SIZE_MAX || !s_listed (invoices, s_cell (row, invoice_column))))
            continue;
        json_array_append (kept, row);
        previous = row;
    }
    json_array_clear (rows);
    json_array_extend (rows, kept);
    json_decref (kept);
}

static json_t *s_column_names (const char *const *names)
{
    json_t *columns = json_array ();
    for (size_t index = 0; names[index]; index++)
        json_array_append_new (columns, json_string (names[index]));
    return columns;
}

//  The portal's invoice listing of one payer: what portal-invoices answers the payer, and
//  payer-portal-invoices a firm's staff ("View as payer"), from this one function so the two
//  can never differ. Rows are arrays of the columns named beside them (item_columns,
//  trust_columns): the payer's pages are the core's most frequent requests, and a listing
//  as arrays is a third of the size and far cheaper to build and to read than as objects.
static json_t *s_portal_invoices (ml_logins_t *self, int64_t payer_id)
{
    char firm_id[64];
    json_t *scope = NULL;
    int found = ml_payers_scope (self->payers, payer_id, firm_id, sizeof firm_id, &scope);
    if (found <= 0)
        return found < 0 ? s_store_failed (self, "portal-invoices") : ml_admin_error ("not found");
    json_t *clients = json_object_get (scope, "clients"),
           *matters = json_object_get (scope, "matters"),
           *invoices = json_object_get (scope, "invoices");
    bool failed = false;
    json_t *firm = s_row (
        ml_db_query (self->db, "SELECT name FROM firm WHERE firm_id = ?", "s", firm_id), &failed);
    //  Each association is read through its own index: reading the whole firm's replica for
    //  each page took the core 200 ms at 16,000 invoices (bench/web.sh).
    json_t *open = json_array (), *trust = json_array ();
    const char *kinds[3] = {"clients", "matters", "invoices"};
    for (size_t kind = 0; kind < 3 && open && trust; kind++) {
        size_t index;
        json_t *entry;
        json_array_foreach (json_object_get (scope, kinds[kind]), index, entry)
        {
            const char *value = json_string_value (entry);
            json_t *rows =
                ml_store_open_item_table (self->store, firm_id, kind == 0 ? value : NULL,
                                          kind == 1 ? value : NULL, kind == 2 ? value : NULL);
            json_t *ledgers =
                kind == 2
                    ? json_array ()
                    : ml_store_table (
                          ml_db_query (self->db,
                                       kind == 0
                                           ? "SELECT client_number, client_name, matter_number,"
                                             " matter_description, currency, balance_minor"
                                             " FROM open_item WHERE firm_id = ? AND kind = 'T'"
                                             " AND client_number = ?"
                                           : "SELECT client_number, client_name, matter_number,"
                                             " matter_description, currency, balance_minor"
                                             " FROM open_item WHERE firm_id = ? AND kind = 'T'"
                                             " AND matter_number = ?",
                                       "ss", firm_id, value),
                          s_integer_column);
            if (!rows || !ledgers) {
                json_decref (rows);
                json_decref (ledgers);
                json_decref (open);
                json_decref (trust);
                open = trust = NULL;
                break;
            }
            json_array_extend (open, rows);
            json_array_extend (trust, ledgers);
            json_decref (rows);
            json_decref (ledgers);
        }
    }
    json_t *reply = NULL;
    if (!firm || !open || !trust)
        reply = s_store_failed (self, "portal-invoices");
    else {
        ml_alloc_sort_table (open, S_ITEM_NUMBER, S_ITEM_DATE);
        s_sort_ledgers (trust);
        //  The same invoice sorts next to itself (number, then date, is one key); the same
        //  ledger too (client, matter).
        s_keep_listed (open, S_ITEM_NUMBER, S_ITEM_DATE, clients, matters, invoices, S_ITEM_CLIENT,
                       S_ITEM_MATTER, S_ITEM_NUMBER);
        s_keep_listed (trust, S_LEDGER_CLIENT, S_LEDGER_MATTER, clients, matters, NULL,
                       S_LEDGER_CLIENT, S_LEDGER_MATTER, SIZE_MAX);
        reply = ml_admin_ok (
            json_pack ("{s:s, s:o, s:O, s:o, s:O}", "firm_name", s_text (firm, "name"),
                       "item_columns", s_column_names (ml_store_item_columns), "items", open,
                       "trust_columns", s_column_names (s_ledger_columns), "trust", trust));
    }
    json_decref (firm);
    json_decref (open);
    json_decref (trust);
    json_decref (scope);
    return reply;
}

//  ---------------------------------------------------------------------------------------
//  Public methods.

ml_logins_t *ml_logins_new (ml_store_t *store, ml_payers_t *payers, ml_mailer_t *mailer,
                            const ml_logins_settings_t *settings, char *error, size_t error_size)
{
    assert (store && payers && mailer && settings);
    if (sodium_init () < 0) {
        snprintf (error, error_size, "libsodium cannot start");
        return NULL;
    }
    if (ml_store_schema (ml_store_db (store), s_schema, sizeof s_schema / sizeof s_schema[0],
                         "portal login tables", error, error_size) != 0)
        return NULL;
    ml_logins_t *self = calloc (1, sizeof (ml_logins_t));
    assert (self);
    self->store = store;
    self->db = ml_store_db (store);
    self->payers = payers;
    self->mailer = mailer;
    self->settings = *settings;
    //  What an unknown e-mail is checked against.
    if (ml_credentials_dummy_hash (self->dummy_hash) != 0) {
        snprintf (error, error_size, "cannot compute a password hash (out of memory?)");
        free (self);
        return NULL;
    }
    return self;
}

void ml_logins_destroy (ml_logins_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_memzero (*self_p, sizeof (ml_logins_t));
        free (*self_p);
        *self_p = NULL;
    }
}

void ml_logins_set_clock (ml_logins_t *self, int64_t now)
{
    assert (self);
    self->clock = now;
}

json_t *ml_logins_execute (ml_logins_t *self, const char *op, const json_t *request,
                           const ml_actor_t *actor)
{
    assert (self && actor);
    if (!op || !json_is_object (request))
        return NULL;
    if (streq (op, "payer-access"))
        return s_payer_access (self, request);
    if (streq (op, "portal-audit"))
        return s_portal_audit (self, request);
    if (streq (op, "portal-token"))
        return s_portal_token (self, request);
    if (streq (op, "portal-password-set"))
        return s_portal_password_set (self, request);
    if (streq (op, "portal-sign-in"))
        return s_portal_sign_in (self, request);
    if (streq (op, "portal-forgot"))
        return s_portal_forgot (self, request);
    if (streq (op, "portal-email-confirm"))
        return s_portal_email_confirm (self, request);
    //  Staff (firm-scoped by the table) and the operator: a payer's portal listing.
    if (streq (op, "payer-portal-invoices")) {
        json_t *id = json_object_get (request, "payer_id");
        if (!json_is_integer (id) || json_integer_value (id) < 1)
            return ml_admin_error ("'payer_id' is required (a whole number)");
        json_t *reply = s_portal_invoices (self, json_integer_value (id));
        if (json_is_true (json_object_get (reply, "ok")))
            json_object_set_new (reply, "payer_id", json_integer (json_integer_value (id)));
        return reply;
    }
    //  The payer ops act for the session's payer only.
    if (actor->kind != ML_ACTOR_PAYER)
        return streq (op, "portal-session") || streq (op, "portal-sign-out") ||
                       streq (op, "portal-invoices")
                   ? ml_admin_error ("not found")
                   : NULL;
    if (streq (op, "portal-session"))
        return s_portal_session (self, actor);
    if (streq (op, "portal-sign-out"))
        return s_portal_sign_out (self, actor);
    if (streq (op, "portal-invoices"))
        return s_portal_invoices (self, actor->payer_id);
    return NULL;
}
