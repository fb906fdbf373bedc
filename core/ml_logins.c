/*  ml_logins: payers' login access, links, sessions and the audit. See include/ml_logins.h.
    Sign-in and links are in ml_logins_sign_in.c, the payer's invoice list in
    ml_logins_invoices.c. */
#include "ml_logins_internal.h"
#include "ml_admin.h"
#include "ml_credentials.h"
#include "ml_log.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Tokens, digests, CSRF, passwords and throttling: ml_credentials, shared with staff.

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

int64_t ml_logins_now (ml_logins_t *self)
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

bool ml_logins_integer_column (const char *name)
{
    size_t length = strlen (name);
    return (length > 3 && streq (name + length - 3, "_at")) ||
           (length > 6 && streq (name + length - 6, "_minor")) || streq (name, "payer_id") ||
           streq (name, "token_id") || streq (name, "session_id") || streq (name, "audit_id") ||
           streq (name, "failures") || streq (name, "mail_id") || streq (name, "n") ||
           streq (name, "password_set");
}

json_t *ml_logins_rows (ml_db_query_t *query)
{
    return ml_store_rows (query, ml_logins_integer_column);
}

//  The first row of a query (new reference), or NULL when none; *failed on a store error.
json_t *ml_logins_row (ml_db_query_t *query, bool *failed)
{
    return ml_store_row (query, ml_logins_integer_column, failed);
}

const char *ml_logins_text (const json_t *row, const char *key)
{
    return json_string_value (json_object_get (row, key));
}

int64_t ml_logins_int (const json_t *row, const char *key)
{
    return json_integer_value (json_object_get (row, key));
}

json_t *ml_logins_store_failed (ml_logins_t *self, const char *what)
{
    return ml_admin_store_failed (self->db, "logins", what);
}

//  Commit a success, roll back anything else.
json_t *ml_logins_finish (ml_logins_t *self, json_t *reply)
{
    return ml_admin_commit (self->db, "logins", reply);
}

//  "p***@example.com": enough for a payer to recognise the address, little for anyone else.
void ml_logins_email_hint (const char *email, char *hint, size_t size)
{
    const char *at = email ? strchr (email, '@') : NULL;
    if (!at || at == email)
        snprintf (hint, size, "***");
    else
        snprintf (hint, size, "%c***%s", email[0], at);
}

void ml_logins_audit (ml_logins_t *self, int64_t payer_id, const char *firm_id, const char *event,
                      const char *client, const char *detail)
{
    char at[32];
    s_iso (ml_logins_now (self), at, sizeof at);
    //  A missed audit row is logged, never a reason to refuse the payer.
    if (ml_db_execute (self->db,
                       "INSERT INTO portal_audit (at, payer_id, firm_id, event, client, detail)"
                       " VALUES (?, CASE WHEN ? = 0 THEN NULL ELSE ? END, ?, ?, ?, ?)",
                       "siissss", at, payer_id, payer_id, firm_id, event, client, detail) != 1)
        json_decref (ml_logins_store_failed (self, "audit"));
}

//  The payer's firm, name, e-mail and firm name (new reference), NULL when unknown.
json_t *ml_logins_payer (ml_logins_t *self, int64_t payer_id, bool *failed)
{
    return ml_logins_row (
        ml_db_query (self->db,
                     "SELECT p.payer_id, p.firm_id, p.name, p.email, f.name AS firm_name"
                     " FROM payer p JOIN firm f ON f.firm_id = p.firm_id"
                     " WHERE p.payer_id = ?",
                     "i", payer_id),
        failed);
}

json_t *ml_logins_login (ml_logins_t *self, int64_t payer_id, bool *failed)
{
    return ml_logins_row (ml_db_query (self->db,
                                       "SELECT payer_id, state, password_hash, password_set_at,"
                                       " pending_email, failures, last_failure_at, last_sign_in_at"
                                       " FROM portal_login WHERE payer_id = ?",
                                       "i", payer_id),
                          failed);
}

//  End every live session of a payer. Returns the number ended, -1 on error.
int64_t ml_logins_sessions_end (ml_logins_t *self, int64_t payer_id, const char *why)
{
    return ml_db_execute (self->db,
                          "UPDATE portal_session SET ended_at = ?, ended_why = ?"
                          " WHERE payer_id = ? AND ended_at IS NULL",
                          "isi", ml_logins_now (self), why, payer_id);
}

//  Invalidate the live links of a payer for purposes ("welcome reset" etc. as an SQL IN list
//  of up to three). Returns how many, -1 on error.
int64_t ml_logins_tokens_invalidate (ml_logins_t *self, int64_t payer_id, const char *first,
                                     const char *second, const char *third)
{
    int64_t now = ml_logins_now (self);
    return ml_db_execute (self->db,
                          "UPDATE portal_token SET invalidated_at = ? WHERE payer_id = ?"
                          " AND purpose IN (?, ?, ?) AND used_at IS NULL"
                          " AND invalidated_at IS NULL AND expires_at > ?",
                          "iisssi", now, payer_id, first, second ? second : first,
                          third ? third : first, now);
}

//  Make a link and mail it. kind is the mail's kind; path the portal page it opens. Returns
//  the mail id, or -1 with the reply to give in *reply.
int64_t ml_logins_link_mail (ml_logins_t *self, const json_t *payer, const char *purpose,
                             const char *email, int hours, const char *kind, const char *path,
                             const char *subject, const char *opening, json_t **reply)
{
    char token[ML_LOGINS_TOKEN_LENGTH + 1], digest[65];
    ml_credentials_token_new (token, digest);
    int64_t now = ml_logins_now (self), token_id = 0, payer_id = ml_logins_int (payer, "payer_id");
    bool failed = false;
    json_t *row = NULL;
    if (ml_db_execute (self->db,
                       "INSERT INTO portal_token (digest, payer_id, purpose, email, created_at,"
                       " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                       "sissii", digest, payer_id, purpose, email, now,
                       now + (int64_t)hours * 3600) != 1 ||
        !(row = ml_logins_row (ml_db_query (self->db,
                                            "SELECT token_id FROM portal_token WHERE digest = ?",
                                            "s", digest),
                               &failed))) {
        sodium_memzero (token, sizeof token);
        *reply = ml_logins_store_failed (self, "link");
        return -1;
    }
    token_id = ml_logins_int (row, "token_id");
    json_decref (row);
    const char *firm_name = ml_logins_text (payer, "firm_name");
    char body[4096], key[64], error[300];
    snprintf (body, sizeof body,
              "Hello %s,\n\n%s\n\n  %s/%s?token=%s\n\nThe link works once and for %d hour%s. "
              "The portal: %s\n\nIf you did not expect this e-mail, you can ignore it; nothing "
              "changes until the link is used.\n\n%s\n",
              ml_logins_text (payer, "name"), opening, self->settings.public_url, path, token,
              hours, hours == 1 ? "" : "s", self->settings.public_url, firm_name);
    if (self->testing)
        snprintf (self->test_token, sizeof self->test_token, "%s", token);
    sodium_memzero (token, sizeof token);
    snprintf (key, sizeof key, "%s:%lld", kind, (long long)token_id);
    const char *recipient = email ? email : ml_logins_text (payer, "email");
    int queued = ml_mailer_enqueue (self->mailer, kind, key, ml_logins_text (payer, "firm_id"),
                                    recipient, subject, body, error, sizeof error);
    sodium_memzero (body, sizeof body);
    if (queued != 1) {
        ml_log (ML_LOG_ERROR, "logins: the %s mail for payer %lld was not queued: %s", kind,
                (long long)payer_id, error);
        *reply = ml_admin_error ("the mail could not be queued: %s", error);
        return -1;
    }
    row = ml_logins_row (
        ml_db_query (self->db, "SELECT mail_id FROM mail WHERE dedupe_key = ?", "s", key), &failed);
    int64_t mail_id = row ? ml_logins_int (row, "mail_id") : 0;
    json_decref (row);
    return mail_id;
}

//  A live link by its token (new reference, with the payer's login state), or NULL.
json_t *ml_logins_token_find (ml_logins_t *self, const char *token, bool *failed)
{
    char digest[65];
    if (!ml_credentials_token_digest (token, digest))
        return NULL;
    json_t *row = ml_logins_row (
        ml_db_query (self->db,
                     "SELECT t.token_id, t.digest, t.payer_id, t.purpose, t.email, t.expires_at,"
                     " t.used_at, t.invalidated_at, l.state FROM portal_token t"
                     " JOIN portal_login l ON l.payer_id = t.payer_id WHERE t.digest = ?",
                     "s", digest),
        failed);
    if (!row)
        return NULL;
    const char *stored = ml_logins_text (row, "digest");
    bool live = ml_credentials_digest_equal (stored, digest) &&
                json_is_null (json_object_get (row, "used_at")) &&
                json_is_null (json_object_get (row, "invalidated_at")) &&
                ml_logins_int (row, "expires_at") > ml_logins_now (self);
    const char *state = ml_logins_text (row, "state");
    //  Welcome and reset links need access on; an e-mail change needs a login at all.
    if (streq (ml_logins_text (row, "purpose"), "email") ? streq (state, "deleted")
                                                         : !streq (state, "on"))
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
    json_t *welcome = ml_logins_row (
        ml_db_query (self->db,
                     "SELECT created_at, expires_at, opened_at, used_at, invalidated_at"
                     " FROM portal_token WHERE payer_id = ? AND purpose = 'welcome'"
                     " ORDER BY token_id DESC LIMIT 1",
                     "i", payer_id),
        &failed);
    if (failed) {
        json_decref (login);
        json_decref (welcome);
        ml_logins_store_failed (self, "access state");
        return NULL;
    }
    const char *state = login ? ml_logins_text (login, "state") : "off";
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
            json_string (s_iso (ml_logins_int (welcome, "created_at"), when, sizeof when)));
        json_object_set_new (
            access, "invitation_expires_at",
            json_string (s_iso (ml_logins_int (welcome, "expires_at"), when, sizeof when)));
        bool live = json_is_null (json_object_get (welcome, "used_at")) &&
                    json_is_null (json_object_get (welcome, "invalidated_at")) &&
                    ml_logins_int (welcome, "expires_at") > ml_logins_now (self);
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
            ids[index] = ml_logins_int (payer, "payer_id");
            json_object_set_new (payer, "login_access", json_string ("off"));
        }
        json_t *rows = ml_logins_rows (ml_db_query (
            self->db,
            "SELECT payer_id, state, CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS"
            " password_set FROM portal_login WHERE payer_id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            "iiiiiiiiiiiiiiii", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7],
            ids[8], ids[9], ids[10], ids[11], ids[12], ids[13], ids[14], ids[15]));
        if (!rows) {
            json_decref (ml_logins_store_failed (self, "login access of a list"));
            return -1;
        }
        size_t row_index;
        json_t *row;
        json_array_foreach (rows, row_index, row)
        {
            const char *state = ml_logins_text (row, "state");
            for (size_t index = 0; index < S_MARK_BATCH && first + index < count; index++) {
                json_t *payer = json_array_get (payers, first + index);
                if (ids[index] == ml_logins_int (row, "payer_id"))
                    json_object_set_new (
                        payer, "login_access",
                        json_string (
                            streq (state, "on")
                                ? (ml_logins_int (row, "password_set") ? "active" : "invited")
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
    int rc = failed ? -1 : login && !streq (ml_logins_text (login, "state"), "deleted") ? 1 : 0;
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
        return ml_logins_store_failed (self, "begin");
    bool failed = false;
    json_t *payer = ml_logins_payer (self, payer_id, &failed);
    json_t *login = payer ? ml_logins_login (self, payer_id, &failed) : NULL;
    if (failed || !payer) {
        json_decref (payer);
        json_decref (login);
        return ml_logins_finish (
            self, failed ? ml_logins_store_failed (self, "payer-access")
                         : ml_admin_error ("unknown payer %lld", (long long)payer_id));
    }
    const char *state = login ? ml_logins_text (login, "state") : "none";
    bool password = login && json_is_string (json_object_get (login, "password_hash"));
    const char *firm_id = ml_logins_text (payer, "firm_id");
    char detail[128];
    snprintf (detail, sizeof detail, "by %s", staff && *staff ? staff : "staff");
    int64_t now = ml_logins_now (self), invalidated = 0, mail_id = 0;
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
            invalidated = ml_logins_tokens_invalidate (self, payer_id, "welcome", NULL, NULL);
            ok = invalidated >= 0;
            if (ok)
                mail_id = ml_logins_link_mail (
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
            invalidated = ml_logins_tokens_invalidate (self, payer_id, "reset", NULL, NULL);
            ok = invalidated >= 0;
            if (ok)
                mail_id = ml_logins_link_mail (
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
                 ml_logins_sessions_end (self, payer_id, "access off") >= 0;
    } else {
        if (!streq (state, "on") && !streq (state, "off"))
            reply = ml_admin_error ("payer %lld has no login to delete", (long long)payer_id);
        else {
            invalidated = ml_logins_tokens_invalidate (self, payer_id, "welcome", "reset", "email");
            ok = invalidated >= 0 &&
                 ml_db_execute (self->db,
                                "UPDATE portal_login SET state = 'deleted', password_hash = NULL,"
                                " password_set_at = NULL, pending_email = NULL, failures = 0,"
                                " last_failure_at = NULL, updated_at = ? WHERE payer_id = ?",
                                "ii", now, payer_id) == 1 &&
                 ml_logins_sessions_end (self, payer_id, "login deleted") >= 0;
        }
    }
    if (!reply && (!ok || mail_id < 0))
        reply = ml_logins_store_failed (self, "payer-access");
    if (!reply) {
        char event[32];
        snprintf (event, sizeof event, "access %s", action);
        ml_logins_audit (self, payer_id, firm_id, event, NULL, detail);
        reply =
            ml_admin_ok (json_pack ("{s:I, s:o}", "invalidated", (json_int_t)invalidated, "mail_id",
                                    mail_id > 0 ? json_integer (mail_id) : json_null ()));
        ml_log (ML_LOG_NOTICE, "logins: payer %lld access %s (%s)", (long long)payer_id, action,
                detail);
    }
    json_decref (payer);
    json_decref (login);
    reply = ml_logins_finish (self, reply);
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
    //  A payer that is not there (or not the firm's) is said to be unknown, as payer-show
    //  says: "no events" would read as a payer who never signed in.
    if (id) {
        bool failed = false;
        json_t *payer = ml_logins_payer (self, json_integer_value (id), &failed);
        bool known = payer && (!firm || streq (ml_logins_text (payer, "firm_id"), firm));
        json_decref (payer);
        if (failed)
            return ml_logins_store_failed (self, "portal-audit");
        if (!known)
            return ml_admin_error ("unknown payer %lld", (long long)json_integer_value (id));
    }
    json_t *events = ml_logins_rows (ml_db_query (
        self->db,
        "SELECT audit_id, at, payer_id, firm_id, event, client, detail FROM portal_audit"
        " WHERE (? IS NULL OR firm_id = ?) AND (? = 0 OR payer_id = ?)"
        " ORDER BY audit_id DESC LIMIT ?",
        "ssiii", firm, firm, (int64_t)(id ? json_integer_value (id) : 0),
        (int64_t)(id ? json_integer_value (id) : 0),
        (int64_t)(limit ? json_integer_value (limit) : 100)));
    return events ? ml_admin_ok (json_pack ("{s:o}", "events", events))
                  : ml_logins_store_failed (self, "portal-audit");
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
    json_t *row = ml_logins_row (
        ml_db_query (self->db,
                     "SELECT s.session_id, s.digest, s.payer_id, s.created_at, s.last_seen_at,"
                     " s.ended_at, p.firm_id, l.state FROM portal_session s"
                     " JOIN payer p ON p.payer_id = s.payer_id"
                     " JOIN portal_login l ON l.payer_id = s.payer_id WHERE s.digest = ?",
                     "s", digest),
        &failed);
    if (failed) {
        ml_logins_store_failed (self, "session lookup");
        return -1;
    }
    if (!row)
        return 0;
    int64_t now = ml_logins_now (self);
    const char *stored = ml_logins_text (row, "digest");
    const char *why = NULL;
    if (now - ml_logins_int (row, "created_at") >
        (int64_t)self->settings.session_absolute_hours * 3600)
        why = "absolute timeout";
    else if (now - ml_logins_int (row, "last_seen_at") >
             (int64_t)self->settings.session_idle_minutes * 60)
        why = "idle timeout";
    bool live = ml_credentials_digest_equal (stored, digest) &&
                json_is_null (json_object_get (row, "ended_at")) &&
                streq (ml_logins_text (row, "state"), "on") && !why;
    int64_t session_id = ml_logins_int (row, "session_id");
    if (!live && why && json_is_null (json_object_get (row, "ended_at")))
        ml_db_execute (self->db,
                       "UPDATE portal_session SET ended_at = ?, ended_why = ?"
                       " WHERE session_id = ?",
                       "isi", now, why, session_id);
    else if (live && now - ml_logins_int (row, "last_seen_at") >= s_touch_seconds (self))
        ml_db_execute (self->db, "UPDATE portal_session SET last_seen_at = ? WHERE session_id = ?",
                       "ii", now, session_id);
    if (live) {
        memset (actor, 0, sizeof *actor);
        actor->kind = ML_ACTOR_PAYER;
        actor->payer_id = ml_logins_int (row, "payer_id");
        snprintf (actor->firm_id, sizeof actor->firm_id, "%s", ml_logins_text (row, "firm_id"));
        snprintf (actor->session, sizeof actor->session, "%s", token);
    }
    json_decref (row);
    return live ? 1 : 0;
}

bool ml_logins_csrf_ok (ml_logins_t *self, const ml_actor_t *actor, const char *csrf)
{
    assert (self && actor);
    return actor->kind == ML_ACTOR_PAYER &&
           ml_credentials_csrf_ok (ML_LOGINS_CSRF_LABEL, actor->session, csrf);
}

static json_t *s_portal_session (ml_logins_t *self, const ml_actor_t *actor)
{
    bool failed = false;
    json_t *payer = ml_logins_payer (self, actor->payer_id, &failed);
    if (!payer)
        return failed ? ml_logins_store_failed (self, "portal-session")
                      : ml_admin_error ("not found");
    char csrf[ML_LOGINS_TOKEN_LENGTH + 1];
    ml_credentials_csrf (ML_LOGINS_CSRF_LABEL, actor->session, csrf);
    json_t *reply = ml_admin_ok (json_pack (
        "{s:s, s:{s:I, s:s, s:s, s:s}}", "csrf", csrf, "payer", "payer_id",
        (json_int_t)actor->payer_id, "name", ml_logins_text (payer, "name"), "email",
        ml_logins_text (payer, "email"), "firm_name", ml_logins_text (payer, "firm_name")));
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
                       "is", ml_logins_now (self), digest) < 0)
        return ml_logins_store_failed (self, "portal-sign-out");
    ml_logins_audit (self, actor->payer_id, actor->firm_id, "sign-out", NULL, NULL);
    return ml_admin_ok (NULL);
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
        return ml_logins_portal_token (self, request);
    if (streq (op, "portal-password-set"))
        return ml_logins_portal_password_set (self, request);
    if (streq (op, "portal-sign-in"))
        return ml_logins_portal_sign_in (self, request);
    if (streq (op, "portal-forgot"))
        return ml_logins_portal_forgot (self, request);
    if (streq (op, "portal-email-confirm"))
        return ml_logins_portal_email_confirm (self, request);
    //  Staff (firm-scoped by the table) and the operator: a payer's portal listing.
    if (streq (op, "payer-portal-invoices")) {
        json_t *id = json_object_get (request, "payer_id");
        if (!json_is_integer (id) || json_integer_value (id) < 1)
            return ml_admin_error ("'payer_id' is required (a whole number)");
        json_t *reply = ml_logins_portal_invoices (self, json_integer_value (id));
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
        return ml_logins_portal_invoices (self, actor->payer_id);
    return NULL;
}
