/*  ml_logins: payers' login access, links, sessions and the audit. See include/ml_logins.h. */
#include "ml_logins.h"
#include "ml_admin.h"
#include "ml_alloc.h"
#include "ml_table.h"
#include "ml_credentials.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <time.h>

//  Tokens, digests, CSRF, passwords and throttling: ml_credentials, shared with staff.
#define S_FORGOT_GAP  60 //  at most one reset mail per account in this many seconds
#define S_EMAIL_HOURS 72 //  an e-mail confirmation link's life
#define S_CSRF_LABEL  "matterlink portal csrf"

struct _ml_logins_t {
    ml_store_t *store;
    ml_db_t *db;
    ml_payers_t *payers;
    ml_mailer_t *mailer;
    ml_logins_settings_t settings;
    int64_t clock; //  0: the system clock
    char dummy_hash[crypto_pwhash_STRBYTES];
    bool testing;                                //  the selftest reads the last token mailed
    char test_token[ML_LOGINS_TOKEN_LENGTH + 1]; //  (only when testing)
};

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

static const char *const s_generic_failure = "the e-mail address or the password is not right";
static const char *const s_link_failure = "this link has expired or was already used";

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
           streq (name, "failures") || streq (name, "mail_id") || streq (name, "n");
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

static json_t *s_login (ml_logins_t *self, int64_t payer_id, bool *failed)
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
    json_t *login = s_login (self, payer_id, &failed);
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

int ml_logins_has_login (ml_logins_t *self, int64_t payer_id)
{
    bool failed = false;
    json_t *login = s_login (self, payer_id, &failed);
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
    json_t *login = payer ? s_login (self, payer_id, &failed) : NULL;
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

//  ---------------------------------------------------------------------------------------
//  Selftest.

static json_t *s_test_call (ml_logins_t *self, const ml_actor_t *actor, const char *text)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    json_t *reply = ml_logins_execute (self, json_string_value (json_object_get (request, "op")),
                                       request, actor);
    json_decref (request);
    assert (reply);
    return reply;
}

static bool s_test_ok (json_t *reply)
{
    bool ok = json_is_true (json_object_get (reply, "ok"));
    json_decref (reply);
    return ok;
}

//  An op through the table, as the API socket runs it (session and csrf in the request).
static json_t *s_test_api (const ml_admin_parts_t *parts, const char *text)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    ml_admin_effects_t effects;
    json_t *reply = ml_admin_api_execute (parts, request, &effects);
    json_decref (request);
    assert (reply);
    return reply;
}

static const char *s_test_error (json_t *reply, char *buf, size_t size)
{
    snprintf (buf, size, "%s", json_string_value (json_object_get (reply, "error")) ?: "");
    json_decref (reply);
    return buf;
}

//  Sign in; returns the session token into session (or "" on failure).
static void s_test_sign_in (ml_logins_t *self, const ml_actor_t *anonymous, const char *email,
                            const char *password, char *session, char *csrf)
{
    char text[512];
    snprintf (text, sizeof text,
              "{\"op\": \"portal-sign-in\", \"email\": \"%s\", \"password\": \"%s\","
              " \"client\": \"127.0.0.1\"}",
              email, password);
    json_t *reply = s_test_call (self, anonymous, text);
    snprintf (session, ML_LOGINS_TOKEN_LENGTH + 1, "%s",
              json_string_value (json_object_get (reply, "session")) ?: "");
    if (csrf)
        snprintf (csrf, ML_LOGINS_TOKEN_LENGTH + 1, "%s",
                  json_string_value (json_object_get (reply, "csrf")) ?: "");
    json_decref (reply);
}

static int64_t s_test_count (ml_logins_t *self, const char *sql, const char *text)
{
    json_t *rows = s_rows (ml_db_query (self->db, sql, "s", text));
    assert (rows);
    int64_t count = json_integer_value (json_object_get (json_array_get (rows, 0), "n"));
    json_decref (rows);
    return count;
}

void ml_logins_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_logins: ");
    char directory[128], error[600], key_path[200], text[1024], buf[300];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    snprintf (key_path, sizeof key_path, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (ml_store_db (store), key_path, error, sizeof error);
    assert (mailer);
    const ml_selftest_item_t items[] = {{'I', "INV-1", "2026-01-05", "C-1", "M-1", 10000},
                                        {'I', "INV-2", "2026-02-05", "C-1", "M-2", 20000},
                                        {'I', "INV-9", "2026-01-09", "C-2", "M-3", 30000},
                                        {'I', "INV-7", "2025-12-01", "C-2", "M-4", 40000},
                                        {'T', "", "", "C-1", "M-1", 50000},
                                        {'T', "", "", "C-2", "M-4", 60000}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);
    ml_logins_settings_t settings;
    ml_logins_settings_defaults (&settings);
    ml_logins_t *self = ml_logins_new (store, payers, mailer, &settings, error, sizeof error);
    assert (self);
    self->testing = true;
    int64_t now = 1800000000;
    ml_logins_set_clock (self, now);
    ml_actor_t operator= {.kind = ML_ACTOR_OPERATOR}, anonymous = {.kind = ML_ACTOR_ANONYMOUS};
    ml_admin_parts_t parts = {store, payers, NULL, mailer, NULL, self, NULL, NULL};

    //  Two payers of the firm: Pat (client C-1 and invoice INV-9), Sam (matter M-4).
    json_t *request = json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Pat Doe", "email",
                                 "pat@example.com");
    json_t *reply = ml_payers_execute (payers, "payer-add", request);
    int64_t pat =
        json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
    json_decref (reply);
    json_object_set_new (request, "name", json_string ("Sam Roe"));
    json_object_set_new (request, "email", json_string ("sam@example.com"));
    reply = ml_payers_execute (payers, "payer-add", request);
    int64_t sam =
        json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
    json_decref (reply);
    json_decref (request);
    assert (pat > 0 && sam > 0);
    ml_item_t found = {.kind = 'I'};
    strcpy (found.client_number, "C-1");
    assert (s_test_ok (ml_payers_association_record (payers, pat, "client", &found, "t")));
    strcpy (found.client_number, "C-2");
    strcpy (found.matter_number, "M-3");
    strcpy (found.invoice_number, "INV-9");
    assert (s_test_ok (ml_payers_association_record (payers, pat, "invoice", &found, "t")));
    strcpy (found.matter_number, "M-4");
    assert (s_test_ok (ml_payers_association_record (payers, sam, "matter", &found, "t")));
    //  Associations that overlap (an invoice and a matter of Pat's client): each invoice and
    //  ledger is listed once all the same.
    ml_item_t overlap = {.kind = 'I'};
    strcpy (overlap.client_number, "C-1");
    strcpy (overlap.matter_number, "M-1");
    strcpy (overlap.invoice_number, "INV-1");
    assert (s_test_ok (ml_payers_association_record (payers, pat, "invoice", &overlap, "t")));
    assert (s_test_ok (ml_payers_association_record (payers, pat, "matter", &overlap, "t")));

    //  Access on needs the portal's address for the mail.
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"on\"}", (long long)pat);
    assert (strstr (s_test_error (s_test_call (self, &operator, text), buf, sizeof buf),
                    "portal/public_url"));
    snprintf (self->settings.public_url, sizeof self->settings.public_url,
              "https://pay.example.com");
    reply = s_test_call (self, &operator, text);
    assert (json_is_true (json_object_get (reply, "ok")));
    assert (json_integer_value (json_object_get (reply, "invalidated")) == 0);
    assert (json_integer_value (json_object_get (reply, "mail_id")) > 0);
    assert (streq (s_text (json_object_get (reply, "access"), "state"), "invited"));
    assert (streq (s_text (json_object_get (reply, "access"), "invitation"), "sent"));
    json_decref (reply);
    char first[ML_LOGINS_TOKEN_LENGTH + 1], welcome[ML_LOGINS_TOKEN_LENGTH + 1];
    snprintf (first, sizeof first, "%s", self->test_token);
    assert (strlen (first) == ML_LOGINS_TOKEN_LENGTH);
    //  Pressed again: a new link, and the earlier one is dead.
    reply = s_test_call (self, &operator, text);
    assert (json_integer_value (json_object_get (reply, "invalidated")) == 1);
    json_decref (reply);
    snprintf (welcome, sizeof welcome, "%s", self->test_token);
    assert (!streq (first, welcome));
    snprintf (text, sizeof text, "{\"op\": \"portal-token\", \"token\": \"%s\"}", first);
    assert (streq (s_test_error (s_test_call (self, &anonymous, text), buf, sizeof buf),
                   s_link_failure));
    //  Only digests are stored: the token is in no column of the store.
    assert (s_test_count (self, "SELECT COUNT (*) AS n FROM portal_token WHERE digest = ?",
                          welcome) == 0);
    char digest[65];
    assert (ml_credentials_token_digest (welcome, digest));
    assert (s_test_count (self, "SELECT COUNT (*) AS n FROM portal_token WHERE digest = ?",
                          digest) == 1);
    //  Looking at a link does not use it up (mail scanners open links).
    snprintf (text, sizeof text, "{\"op\": \"portal-token\", \"token\": \"%s\"}", welcome);
    for (int round = 0; round < 2; round++) {
        reply = s_test_call (self, &anonymous, text);
        assert (streq (s_text (reply, "purpose"), "welcome"));
        assert (streq (s_text (reply, "firm_name"), "Acme LLP"));
        assert (streq (s_text (reply, "email_hint"), "p***@example.com"));
        json_decref (reply);
    }
    //  Weak passwords say why and leave the link usable.
    const char *weak[][2] = {{"short", "at least 8"}, {"pat@example.com", "e-mail address"}};
    for (size_t index = 0; index < 2; index++) {
        snprintf (text, sizeof text,
                  "{\"op\": \"portal-password-set\", \"token\": \"%s\", \"password\": \"%s\"}",
                  welcome, weak[index][0]);
        assert (strstr (s_test_error (s_test_call (self, &anonymous, text), buf, sizeof buf),
                        weak[index][1]));
    }
    snprintf (
        text, sizeof text,
        "{\"op\": \"portal-password-set\", \"token\": \"%s\", \"password\": \"correct horse\"}",
        welcome);
    assert (s_test_ok (s_test_call (self, &anonymous, text)));
    //  Single use: the same link again is refused.
    assert (streq (s_test_error (s_test_call (self, &anonymous, text), buf, sizeof buf),
                   s_link_failure));
    //  Argon2id at OWASP's minimum cost at least.
    json_t *login = s_login (self, pat, &(bool){false});
    assert (strncmp (s_text (login, "password_hash"), "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    json_decref (login);
    json_t *access = ml_logins_access (self, pat);
    assert (streq (s_text (access, "state"), "active"));
    assert (streq (s_text (access, "invitation"), "password set"));
    json_decref (access);

    //  Sign-in: one answer for every failure.
    char session[ML_LOGINS_TOKEN_LENGTH + 1], csrf[ML_LOGINS_TOKEN_LENGTH + 1];
    reply = s_test_call (self, &anonymous,
                         "{\"op\": \"portal-sign-in\", \"email\": \"nobody@example.com\","
                         " \"password\": \"correct horse\"}");
    assert (streq (s_test_error (reply, buf, sizeof buf), s_generic_failure));
    reply = s_test_call (self, &anonymous,
                         "{\"op\": \"portal-sign-in\", \"email\": \"sam@example.com\","
                         " \"password\": \"correct horse\"}");
    assert (streq (s_test_error (reply, buf, sizeof buf), s_generic_failure));
    s_test_sign_in (self, &anonymous, "PAT@example.com", "correct horse", session, csrf);
    assert (strlen (session) == ML_LOGINS_TOKEN_LENGTH && strlen (csrf) == ML_LOGINS_TOKEN_LENGTH);
    assert (s_test_count (self, "SELECT COUNT (*) AS n FROM portal_session WHERE digest = ?",
                          session) == 0);
    //  A new session at every sign-in.
    char second[ML_LOGINS_TOKEN_LENGTH + 1];
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", second, NULL);
    assert (*second && !streq (second, session));

    //  About the same time for an unknown address as for a known one with a wrong password:
    //  both verify one Argon2id hash (the fastest of three each, against scheduling noise).
    int64_t fastest[2] = {INT64_MAX, INT64_MAX};
    const char *addresses[2] = {"sam@example.com", "pat@example.com"};
    for (int round = 0; round < 6; round++) {
        int64_t started = zclock_usecs ();
        s_test_sign_in (self, &anonymous, addresses[round % 2], "not the password", buf, NULL);
        int64_t took = zclock_usecs () - started;
        if (took < fastest[round % 2])
            fastest[round % 2] = took;
    }
    assert (fastest[0] * 3 > fastest[1] && fastest[1] * 3 > fastest[0]);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", buf, NULL);
    assert (*buf); //  the three failures above are forgotten

    //  Throttling: after 5 failures in a row, attempts wait 1, 2, 4 ... seconds, and an
    //  attempt inside the wait fails even with the right password; a success resets.
    for (int attempt = 0; attempt < 5; attempt++)
        s_test_sign_in (self, &anonymous, "pat@example.com", "wrong password", buf, NULL),
            assert (!*buf);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", buf, NULL);
    assert (!*buf);
    ml_logins_set_clock (self, now += 2);
    s_test_sign_in (self, &anonymous, "pat@example.com", "wrong password", buf, NULL);
    assert (!*buf);
    ml_logins_set_clock (self, now += 1);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", buf, NULL);
    assert (!*buf); //  6 failures: 2 seconds to wait, 1 passed
    ml_logins_set_clock (self, now += 1);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", buf, NULL);
    assert (!*buf); //  2 whole seconds on the clock may be only just over 1 s: still waits
    ml_logins_set_clock (self, now += 1);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", buf, NULL);
    assert (*buf);
    login = s_login (self, pat, &(bool){false});
    assert (s_int (login, "failures") == 0);
    json_decref (login);

    //  Sessions: live, then ended by idleness or age.
    ml_actor_t actor;
    assert (ml_logins_session (self, session, &actor) == 1);
    assert (actor.kind == ML_ACTOR_PAYER && actor.payer_id == pat && streq (actor.firm_id, "acme"));
    assert (ml_logins_csrf_ok (self, &actor, csrf));
    assert (!ml_logins_csrf_ok (self, &actor, second));
    assert (!ml_logins_csrf_ok (self, &actor, NULL));
    assert (ml_logins_session (self, "not-a-token", &actor) == 0);
    ml_logins_set_clock (self, now += 29 * 60);
    assert (ml_logins_session (self, session, &actor) == 1);
    ml_logins_set_clock (self, now += 31 * 60);
    assert (ml_logins_session (self, session, &actor) == 0);
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", session, csrf);
    for (int hour = 0; hour < 12 * 3; hour++) { //  active every 20 minutes for 12 hours
        ml_logins_set_clock (self, now += 20 * 60);
        assert (ml_logins_session (self, session, &actor) == 1);
    }
    ml_logins_set_clock (self, now += 20 * 60);
    assert (ml_logins_session (self, session, &actor) == 0);

    //  The table: a payer's session reaches only payer ops and its own invoices.
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", session, csrf);
    snprintf (text, sizeof text, "{\"op\": \"portal-invoices\", \"session\": \"%s\"}", session);
    reply = s_test_api (&parts, text);
    //  Rows are arrays of the columns named beside them: read here by name.
    json_t *listed = ml_table_objects (json_object_get (reply, "item_columns"),
                                       json_object_get (reply, "items"));
    json_t *ledgers = ml_table_objects (json_object_get (reply, "trust_columns"),
                                        json_object_get (reply, "trust"));
    assert (json_array_size (json_array_get (json_object_get (reply, "items"), 0)) == 12);
    assert (json_array_size (listed) == 3);
    //  One invoice order (oldest first); the A/R message and source ids never appear.
    assert (streq (s_text (json_array_get (listed, 0), "invoice_number"), "INV-1"));
    assert (streq (s_text (json_array_get (listed, 1), "invoice_number"), "INV-9"));
    assert (streq (s_text (json_array_get (listed, 2), "invoice_number"), "INV-2"));
    assert (!json_object_get (json_array_get (listed, 0), "source_id"));
    assert (json_integer_value (json_object_get (json_array_get (listed, 0), "available_minor")) ==
            10000);
    assert (json_array_size (ledgers) == 1);
    assert (streq (s_text (json_array_get (ledgers, 0), "matter_number"), "M-1"));
    //  Money is a JSON integer here as everywhere in the API, trust balances included.
    assert (json_is_integer (json_object_get (json_array_get (ledgers, 0), "balance_minor")));
    assert (streq (s_text (reply, "firm_name"), "Acme LLP"));
    json_decref (listed);
    json_decref (ledgers);
    json_decref (reply);
    const char *refused[] = {"{\"op\": \"payer-list\"}", "{\"op\": \"status\"}",
                             "{\"op\": \"payer-access\", \"payer_id\": 2, \"action\": \"off\"}",
                             "{\"op\": \"open-items\", \"firm\": \"acme\"}",
                             "{\"op\": \"no-such-op\"}"};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        request = json_loads (refused[index], 0, NULL);
        json_object_set_new (request, "session", json_string (session));
        ml_admin_effects_t effects;
        reply = ml_admin_api_execute (&parts, request, &effects);
        assert (streq (s_test_error (reply, buf, sizeof buf), "not found"));
        json_decref (request);
    }
    //  Anonymous: no payer ops; a dead session says so.
    assert (
        streq (s_test_error (s_test_api (&parts, "{\"op\": \"portal-invoices\"}"), buf, sizeof buf),
               "not found"));
    reply = s_test_api (&parts, "{\"op\": \"portal-invoices\", \"session\": "
                                "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
    assert (json_is_true (json_object_get (reply, "session_ended")));
    json_decref (reply);
    //  The payer may not name a staff user, and a state change needs the CSRF token.
    snprintf (text, sizeof text,
              "{\"op\": \"portal-session\", \"session\": \"%s\", \"staff\": \"x\"}", session);
    assert (strstr (s_test_error (s_test_api (&parts, text), buf, sizeof buf), "'staff'"));
    snprintf (text, sizeof text, "{\"op\": \"portal-sign-out\", \"session\": \"%s\"}", session);
    reply = s_test_api (&parts, text);
    assert (json_is_false (json_object_get (reply, "csrf")));
    json_decref (reply);
    snprintf (text, sizeof text,
              "{\"op\": \"portal-sign-out\", \"session\": \"%s\", \"csrf\": \"%s\"}", session,
              second);
    reply = s_test_api (&parts, text);
    assert (json_is_false (json_object_get (reply, "csrf")));
    json_decref (reply);
    snprintf (text, sizeof text, "{\"op\": \"portal-session\", \"session\": \"%s\"}", session);
    reply = s_test_api (&parts, text);
    assert (streq (s_text (reply, "csrf"), csrf));
    assert (streq (s_text (json_object_get (reply, "payer"), "email"), "pat@example.com"));
    json_decref (reply);
    snprintf (text, sizeof text,
              "{\"op\": \"portal-sign-out\", \"session\": \"%s\", \"csrf\": \"%s\"}", session,
              csrf);
    assert (s_test_ok (s_test_api (&parts, text)));
    assert (ml_logins_session (self, session, &actor) == 0);
    //  The operator cannot act as a payer through the admin socket.
    ml_admin_effects_t effects;
    request = json_pack ("{s:s, s:s}", "op", "portal-invoices", "session", session);
    reply = ml_admin_execute (&parts, request, &effects);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);

    //  Sam sees only Sam's matter.
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"on\"}", (long long)sam);
    assert (s_test_ok (s_test_call (self, &operator, text)));
    snprintf (text, sizeof text,
              "{\"op\": \"portal-password-set\", \"token\": \"%s\", \"password\": \"sams secret\"}",
              self->test_token);
    assert (s_test_ok (s_test_call (self, &anonymous, text)));
    char sam_session[ML_LOGINS_TOKEN_LENGTH + 1];
    s_test_sign_in (self, &anonymous, "sam@example.com", "sams secret", sam_session, NULL);
    snprintf (text, sizeof text, "{\"op\": \"portal-invoices\", \"session\": \"%s\"}", sam_session);
    reply = s_test_api (&parts, text);
    listed = json_object_get (reply, "items");
    assert (json_array_size (listed) == 1 &&
            streq (ml_table_text (json_array_get (listed, 0), 0), "INV-7"));
    assert (json_array_size (json_object_get (reply, "trust")) == 1);
    //  "View as payer": the operator (and a firm's staff, ml_staff's selftest) get exactly
    //  the listing the payer gets, and nothing for a payer that does not exist.
    snprintf (text, sizeof text, "{\"op\": \"payer-portal-invoices\", \"payer_id\": %lld}",
              (long long)sam);
    request = json_loads (text, 0, NULL);
    json_t *as_staff = ml_admin_execute (&parts, request, &effects);
    json_decref (request);
    assert (json_integer_value (json_object_get (as_staff, "payer_id")) == sam);
    json_object_del (as_staff, "payer_id");
    assert (json_equal (as_staff, reply));
    json_decref (as_staff);
    json_decref (reply);
    request = json_pack ("{s:s, s:i}", "op", "payer-portal-invoices", "payer_id", 999999);
    reply = ml_admin_execute (&parts, request, &effects);
    assert (streq (s_test_error (reply, buf, sizeof buf), "not found"));
    json_decref (request);
    request = json_pack ("{s:s, s:s}", "op", "payer-portal-invoices", "payer_id", "1");
    reply = ml_admin_execute (&parts, request, &effects);
    assert (strstr (s_test_error (reply, buf, sizeof buf), "payer_id"));
    json_decref (request);

    //  Reset: a new link kills the earlier reset link; setting the password ends sessions.
    s_test_sign_in (self, &anonymous, "pat@example.com", "correct horse", session, NULL);
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"reset\"}",
              (long long)pat);
    assert (s_test_ok (s_test_call (self, &operator, text)));
    snprintf (first, sizeof first, "%s", self->test_token);
    reply = s_test_call (self, &operator, text);
    assert (json_integer_value (json_object_get (reply, "invalidated")) == 1);
    json_decref (reply);
    snprintf (text, sizeof text,
              "{\"op\": \"portal-password-set\", \"token\": \"%s\", \"password\": \"new horse 1\"}",
              first);
    assert (streq (s_test_error (s_test_call (self, &anonymous, text), buf, sizeof buf),
                   s_link_failure));
    snprintf (text, sizeof text,
              "{\"op\": \"portal-password-set\", \"token\": \"%s\", \"password\": \"new horse 1\"}",
              self->test_token);
    assert (s_test_ok (s_test_call (self, &anonymous, text)));
    assert (ml_logins_session (self, session, &actor) == 0);
    //  Expired links are refused.
    snprintf (text, sizeof text, "{\"op\": \"portal-forgot\", \"email\": \"pat@example.com\"}");
    assert (s_test_ok (s_test_call (self, &anonymous, text)));
    snprintf (first, sizeof first, "%s", self->test_token);
    ml_logins_set_clock (self, now += 3601);
    snprintf (text, sizeof text, "{\"op\": \"portal-token\", \"token\": \"%s\"}", first);
    assert (streq (s_test_error (s_test_call (self, &anonymous, text), buf, sizeof buf),
                   s_link_failure));
    //  Forgot for an unknown address answers the same and mails nothing.
    *self->test_token = 0;
    assert (s_test_ok (s_test_call (self, &anonymous,
                                    "{\"op\": \"portal-forgot\", \"email\": \"x@example.com\"}")));
    assert (!*self->test_token);

    //  Off: sessions end, sign-in refused, the password kept; on again needs no mail.
    s_test_sign_in (self, &anonymous, "pat@example.com", "new horse 1", session, NULL);
    assert (*session);
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"off\"}",
              (long long)pat);
    assert (s_test_ok (s_test_call (self, &operator, text)));
    assert (ml_logins_session (self, session, &actor) == 0);
    s_test_sign_in (self, &anonymous, "pat@example.com", "new horse 1", buf, NULL);
    assert (!*buf);
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"on\"}", (long long)pat);
    reply = s_test_call (self, &operator, text);
    assert (json_is_null (json_object_get (reply, "mail_id")));
    json_decref (reply);
    s_test_sign_in (self, &anonymous, "pat@example.com", "new horse 1", session, NULL);
    assert (*session);

    //  An e-mail change keeps the login: the old address works until the new one is confirmed.
    reply = ml_logins_email_change (self, pat, "pat.new@example.com", "alice");
    assert (streq (s_text (json_object_get (reply, "email_change"), "pending_email"),
                   "pat.new@example.com"));
    json_decref (reply);
    char confirm[ML_LOGINS_TOKEN_LENGTH + 1];
    snprintf (confirm, sizeof confirm, "%s", self->test_token);
    s_test_sign_in (self, &anonymous, "pat.new@example.com", "new horse 1", buf, NULL);
    assert (!*buf);
    s_test_sign_in (self, &anonymous, "pat@example.com", "new horse 1", buf, NULL);
    assert (*buf);
    snprintf (text, sizeof text, "{\"op\": \"portal-email-confirm\", \"token\": \"%s\"}", confirm);
    assert (s_test_ok (s_test_call (self, &anonymous, text)));
    assert (ml_logins_session (self, session, &actor) == 0);
    s_test_sign_in (self, &anonymous, "pat.new@example.com", "new horse 1", session, NULL);
    assert (*session);
    s_test_sign_in (self, &anonymous, "pat@example.com", "new horse 1", buf, NULL);
    assert (!*buf);

    //  Delete: the login goes, the payer and associations stay; on starts over with a mail.
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"delete\"}",
              (long long)pat);
    assert (s_test_ok (s_test_call (self, &operator, text)));
    assert (ml_logins_session (self, session, &actor) == 0);
    access = ml_logins_access (self, pat);
    assert (streq (s_text (access, "state"), "deleted"));
    json_decref (access);
    json_t *scope = NULL;
    char firm_id[64];
    assert (ml_payers_scope (payers, pat, firm_id, sizeof firm_id, &scope) == 1);
    assert (json_array_size (json_object_get (scope, "clients")) == 1);
    json_decref (scope);
    snprintf (text, sizeof text,
              "{\"op\": \"payer-access\", \"payer_id\": %lld, \"action\": \"on\"}", (long long)pat);
    reply = s_test_call (self, &operator, text);
    assert (json_integer_value (json_object_get (reply, "mail_id")) > 0);
    json_decref (reply);

    //  The audit holds what happened and never a token or a password.
    reply = s_test_call (self, &operator, "{\"op\": \"portal-audit\", \"limit\": 1000}");
    json_t *events = json_object_get (reply, "events");
    assert (json_array_size (events) > 20);
    char *dump = json_dumps (events, 0);
    assert (strstr (dump, "sign-in throttled") && strstr (dump, "e-mail change confirmed") &&
            strstr (dump, "access delete") && strstr (dump, "password set"));
    assert (!strstr (dump, "horse") && !strstr (dump, session) && !strstr (dump, confirm));
    free (dump);
    json_decref (reply);
    assert (ml_db_execute (self->db, "DELETE FROM portal_audit", NULL) == -1);

    ml_logins_destroy (&self);
    ml_logins_destroy (&self);
    ml_mailer_destroy (&mailer);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
