/*  ml_staff: staff accounts, links, sign-in, second factor and sessions. See include/ml_staff.h. */
#include "ml_staff_internal.h"
#include "ml_staff_postings.h"

#include <assert.h>
#include <czmq.h>

//  Each kind of session has its own CSRF label: a payer's token is never a staff one's.
#define S_CSRF_LABEL  "matterlink staff csrf"
#define S_FORGOT_GAP  60 //  at most one reset mail per account in this many seconds
#define S_CODE_COUNT  10 //  recovery codes in a set
#define S_CODE_LENGTH 10 //  base32 characters in a recovery code (50 bits)
#define S_SEALED      "sealed1:"

static const char *const s_schema[] = {
    //  One account per firm and e-mail address (compared without case).
    "CREATE TABLE IF NOT EXISTS staff_user ("
    " staff_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), email TEXT NOT NULL COLLATE NOCASE,"
    " name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('admin', 'billing', 'read')),"
    " state TEXT NOT NULL CHECK (state IN ('invited', 'active', 'disabled')),"
    " password_hash TEXT, password_set_at INTEGER,"
    " totp_sealed TEXT, totp_enabled INTEGER NOT NULL DEFAULT 0,"
    " totp_last_step INTEGER NOT NULL DEFAULT 0, totp_pending TEXT,"
    " failures INTEGER NOT NULL DEFAULT 0, last_failure_at INTEGER, last_sign_in_at INTEGER,"
    " invited_at INTEGER, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL, UNIQUE (firm_id, email))",
    "CREATE INDEX IF NOT EXISTS staff_user_email ON staff_user (email)",
    //  Links by the digest of their token; an invitation may carry a proposed TOTP secret.
    "CREATE TABLE IF NOT EXISTS staff_token ("
    " token_id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE,"
    " staff_id INTEGER NOT NULL REFERENCES staff_user (staff_id),"
    " purpose TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')), totp_sealed TEXT,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, opened_at INTEGER,"
    " used_at INTEGER, invalidated_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS staff_token_user ON staff_token (staff_id, purpose)",
    "CREATE TABLE IF NOT EXISTS staff_recovery_code ("
    " code_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " staff_id INTEGER NOT NULL REFERENCES staff_user (staff_id), digest TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, used_at INTEGER, ended_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS staff_recovery_user ON staff_recovery_code (staff_id, digest)",
    "CREATE TABLE IF NOT EXISTS staff_session ("
    " session_id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE,"
    " staff_id INTEGER NOT NULL REFERENCES staff_user (staff_id),"
    " created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, ended_at INTEGER,"
    " ended_why TEXT)",
    "CREATE INDEX IF NOT EXISTS staff_session_user ON staff_session (staff_id, ended_at)",
    "CREATE TABLE IF NOT EXISTS staff_audit ("
    " audit_id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, firm_id TEXT,"
    " staff_id INTEGER, staff_name TEXT NOT NULL, op TEXT NOT NULL, object TEXT, detail TEXT)",
    "CREATE INDEX IF NOT EXISTS staff_audit_firm ON staff_audit (firm_id, audit_id)",
    "CREATE TRIGGER IF NOT EXISTS staff_audit_no_update BEFORE UPDATE ON staff_audit"
    " BEGIN SELECT RAISE (ABORT, 'the staff audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS staff_audit_no_delete BEFORE DELETE ON staff_audit"
    " BEGIN SELECT RAISE (ABORT, 'the staff audit is append-only'); END",
};

static const char *const s_generic_failure = "the e-mail or password is wrong";
static const char *const s_link_failure =
    "this link has expired or was already used; ask your administrator for a new one";
static const char *const s_code_needed = "enter the code from your authenticator app";
static const char *const s_code_wrong =
    "that code is not right; enter the current code from your authenticator app, or an unused "
    "recovery code";

//  ---------------------------------------------------------------------------------------
//  Small helpers (shared with ml_staff_admin.c through ml_staff_internal.h).

int64_t ml_staff_now (ml_staff_t *self)
{
    return self->clock ? self->clock : (int64_t)time (NULL);
}

static bool s_integer_column (const char *name)
{
    size_t length = strlen (name);
    return (length > 3 && streq (name + length - 3, "_at")) || streq (name, "staff_id") ||
           streq (name, "token_id") || streq (name, "session_id") || streq (name, "audit_id") ||
           streq (name, "failures") || streq (name, "totp_enabled") ||
           streq (name, "totp_last_step") || streq (name, "code_id") || streq (name, "mail_id") ||
           streq (name, "n");
}

json_t *ml_staff_rows (ml_staff_t *self, ml_db_query_t *query)
{
    (void)self;
    return ml_store_rows (query, s_integer_column);
}

json_t *ml_staff_row (ml_staff_t *self, ml_db_query_t *query, bool *failed)
{
    (void)self;
    return ml_store_row (query, s_integer_column, failed);
}

const char *ml_staff_text (const json_t *row, const char *key)
{
    return json_string_value (json_object_get (row, key));
}

int64_t ml_staff_int (const json_t *row, const char *key)
{
    return json_integer_value (json_object_get (row, key));
}

json_t *ml_staff_store_failed (ml_staff_t *self, const char *what)
{
    return ml_admin_store_failed (self->db, "staff", what);
}

json_t *ml_staff_finish (ml_staff_t *self, json_t *reply)
{
    return ml_admin_commit (self->db, "staff", reply);
}

ml_role_t ml_staff_role (const char *text)
{
    return !text                     ? ML_ROLE_NONE
           : streq (text, "admin")   ? ML_ROLE_ADMIN
           : streq (text, "billing") ? ML_ROLE_BILLING
           : streq (text, "read")    ? ML_ROLE_READ
                                     : ML_ROLE_NONE;
}

//  An account with its firm's name (new reference), or NULL.
json_t *ml_staff_user (ml_staff_t *self, int64_t staff_id, bool *failed)
{
    return ml_staff_row (
        self,
        ml_db_query (self->db,
                     "SELECT s.staff_id, s.firm_id, s.email, s.name, s.role, s.state,"
                     " s.password_hash, s.totp_sealed, s.totp_enabled, s.totp_last_step,"
                     " s.totp_pending, s.failures, s.last_failure_at, s.last_sign_in_at,"
                     " s.invited_at, f.name AS firm_name FROM staff_user s"
                     " JOIN firm f ON f.firm_id = s.firm_id WHERE s.staff_id = ?",
                     "i", staff_id),
        failed);
}

//  What a page shows of an account.
json_t *ml_staff_public (const json_t *user)
{
    return json_pack ("{s:I, s:s, s:s, s:s, s:s, s:s, s:b}", "staff_id",
                      (json_int_t)ml_staff_int (user, "staff_id"), "name",
                      ml_staff_text (user, "name"), "email", ml_staff_text (user, "email"), "role",
                      ml_staff_text (user, "role"), "firm", ml_staff_text (user, "firm_id"),
                      "firm_name", ml_staff_text (user, "firm_name"), "totp_enabled",
                      ml_staff_int (user, "totp_enabled") != 0);
}

void ml_staff_audit (ml_staff_t *self, const ml_actor_t *actor, const char *firm_id, const char *op,
                     const char *object, const char *detail)
{
    assert (self && actor && op);
    char at[32];
    time_t value = (time_t)ml_staff_now (self);
    struct tm parts;
    gmtime_r (&value, &parts);
    strftime (at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &parts);
    bool staff = actor->kind == ML_ACTOR_STAFF;
    const char *name = staff                              ? actor->name
                       : actor->kind == ML_ACTOR_OPERATOR ? "operator"
                                                          : "anonymous";
    //  A missed audit row is logged, never a reason to refuse what was done.
    if (ml_db_execute (self->db,
                       "INSERT INTO staff_audit (at, firm_id, staff_id, staff_name, op, object,"
                       " detail) VALUES (?, ?, CASE WHEN ? = 0 THEN NULL ELSE ? END, ?, ?, ?, ?)",
                       "ssiissss", at, firm_id, staff ? actor->staff_id : 0,
                       staff ? actor->staff_id : 0, name, op, object, detail) != 1)
        json_decref (ml_staff_store_failed (self, "audit"));
}

//  The actor a staff member is when not signed in yet (sign-in, accepting a link): the audit
//  names them all the same.
void ml_staff_actor_of (const json_t *user, ml_actor_t *actor)
{
    memset (actor, 0, sizeof *actor);
    actor->kind = ML_ACTOR_STAFF;
    actor->staff_id = ml_staff_int (user, "staff_id");
    actor->role = ml_staff_role (ml_staff_text (user, "role"));
    snprintf (actor->firm_id, sizeof actor->firm_id, "%s", ml_staff_text (user, "firm_id"));
    //  What histories record fits in their 64 bytes: a long name is cut (at a character's
    //  start), never the id that says who it is.
    char suffix[32];
    snprintf (suffix, sizeof suffix, " (#%lld)", (long long)actor->staff_id);
    const char *name = ml_staff_text (user, "name") ? ml_staff_text (user, "name") : "";
    size_t room = ML_STAFF_NAME_MAX - strlen (suffix), length = strlen (name);
    if (length > room) {
        length = room;
        while (length > 0 && ((unsigned char)name[length] & 0xC0) == 0x80)
            length--;
    }
    snprintf (actor->name, sizeof actor->name, "%.*s%s", (int)length, name, suffix);
}

//  ---------------------------------------------------------------------------------------
//  Sealed secrets and recovery codes.

//  Seal a TOTP secret for the account staff_id (the account's id is bound in: a sealed secret
//  copied to another row does not open). Returns new text (caller frees) or NULL.
char *ml_staff_seal (ml_staff_t *self, int64_t staff_id, const unsigned char *secret)
{
    char bound[32];
    snprintf (bound, sizeof bound, "staff:%lld", (long long)staff_id);
    unsigned char box[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + ML_TOTP_SECRET_BYTES +
                      crypto_aead_xchacha20poly1305_ietf_ABYTES];
    randombytes_buf (box, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long length = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt (
        box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &length, secret, ML_TOTP_SECRET_BYTES,
        (const unsigned char *)bound, strlen (bound), NULL, box, self->totp_key);
    size_t size =
        strlen (S_SEALED) + sodium_base64_ENCODED_LEN (sizeof box, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc (size);
    assert (text);
    strcpy (text, S_SEALED);
    sodium_bin2base64 (text + strlen (S_SEALED), size - strlen (S_SEALED), box, sizeof box,
                       sodium_base64_VARIANT_ORIGINAL);
    return text;
}

//  Open a sealed TOTP secret of the account staff_id. Returns true and fills secret.
bool ml_staff_open (ml_staff_t *self, int64_t staff_id, const char *sealed, unsigned char *secret)
{
    if (!sealed || strncmp (sealed, S_SEALED, strlen (S_SEALED)) != 0)
        return false;
    unsigned char box[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + ML_TOTP_SECRET_BYTES +
                      crypto_aead_xchacha20poly1305_ietf_ABYTES];
    size_t length = 0;
    if (sodium_base642bin (box, sizeof box, sealed + strlen (S_SEALED),
                           strlen (sealed + strlen (S_SEALED)), NULL, &length, NULL,
                           sodium_base64_VARIANT_ORIGINAL) != 0 ||
        length != sizeof box)
        return false;
    char bound[32];
    snprintf (bound, sizeof bound, "staff:%lld", (long long)staff_id);
    unsigned long long opened = 0;
    return crypto_aead_xchacha20poly1305_ietf_decrypt (
               secret, &opened, NULL, box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               sizeof box - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               (const unsigned char *)bound, strlen (bound), box, self->totp_key) == 0 &&
           opened == ML_TOTP_SECRET_BYTES;
}

//  The keyed digest of a recovery code as typed (case, spaces and dashes ignored); false
//  when it cannot be one.
static bool s_code_digest (ml_staff_t *self, const char *typed, char digest[65])
{
    char code[S_CODE_LENGTH + 1];
    size_t length = 0;
    for (const char *cursor = typed; cursor && *cursor; cursor++) {
        if (*cursor == ' ' || *cursor == '-')
            continue;
        char upper = (char)toupper ((unsigned char)*cursor);
        if (!strchr ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", upper) || length == S_CODE_LENGTH)
            return false;
        code[length++] = upper;
    }
    if (length != S_CODE_LENGTH)
        return false;
    code[length] = 0;
    unsigned char hash[32];
    crypto_generichash (hash, sizeof hash, (const unsigned char *)code, length, self->code_key,
                        sizeof self->code_key);
    sodium_bin2hex (digest, 65, hash, sizeof hash);
    return true;
}

//  A new set of recovery codes for staff_id (the earlier ones end). Returns the codes to
//  show once (new reference), or NULL on a store error. Runs in the caller's transaction.
json_t *ml_staff_codes_new (ml_staff_t *self, int64_t staff_id)
{
    int64_t now = ml_staff_now (self);
    if (ml_db_execute (self->db,
                       "UPDATE staff_recovery_code SET ended_at = ? WHERE staff_id = ?"
                       " AND used_at IS NULL AND ended_at IS NULL",
                       "ii", now, staff_id) < 0)
        return NULL;
    json_t *codes = json_array ();
    for (int index = 0; index < S_CODE_COUNT; index++) {
        unsigned char bytes[7];
        randombytes_buf (bytes, sizeof bytes);
        char text[16], digest[65];
        ml_totp_base32 (bytes, sizeof bytes, text, sizeof text);
        text[S_CODE_LENGTH] = 0;
        s_code_digest (self, text, digest);
        if (ml_db_execute (self->db,
                           "INSERT INTO staff_recovery_code (staff_id, digest, created_at)"
                           " VALUES (?, ?, ?)",
                           "isi", staff_id, digest, now) != 1) {
            json_decref (codes);
            return NULL;
        }
        //  Shown as two groups of five, easier to copy by hand.
        char shown[16];
        snprintf (shown, sizeof shown, "%.5s-%.5s", text, text + 5);
        json_array_append_new (codes, json_string (shown));
        sodium_memzero (text, sizeof text);
    }
    return codes;
}

//  Check a second-factor code of a user row: a TOTP code (its step is used up) or, when
//  recovery, an unused recovery code (used up). 1 accepted, 0 not, -1 store error.
int ml_staff_code_check (ml_staff_t *self, const json_t *user, const char *code, bool recovery)
{
    if (!code)
        return 0;
    int64_t staff_id = ml_staff_int (user, "staff_id");
    unsigned char secret[ML_TOTP_SECRET_BYTES];
    if (ml_staff_int (user, "totp_enabled") &&
        ml_staff_open (self, staff_id, ml_staff_text (user, "totp_sealed"), secret)) {
        uint64_t step = ml_totp_check (secret, sizeof secret, code, ml_staff_now (self),
                                       (uint64_t)ml_staff_int (user, "totp_last_step"));
        sodium_memzero (secret, sizeof secret);
        if (step) {
            //  The UPDATE that moves the last step counts: two requests with one code, one wins.
            int64_t moved = ml_db_execute (self->db,
                                           "UPDATE staff_user SET totp_last_step = ?"
                                           " WHERE staff_id = ? AND totp_last_step < ?",
                                           "iii", (int64_t)step, staff_id, (int64_t)step);
            return moved < 0 ? -1 : moved == 1 ? 1 : 0;
        }
    }
    char digest[65];
    if (!recovery || !s_code_digest (self, code, digest))
        return 0;
    int64_t used = ml_db_execute (self->db,
                                  "UPDATE staff_recovery_code SET used_at = ? WHERE staff_id = ?"
                                  " AND digest = ? AND used_at IS NULL AND ended_at IS NULL",
                                  "iis", ml_staff_now (self), staff_id, digest);
    return used < 0 ? -1 : used >= 1 ? 1 : 0;
}

//  ---------------------------------------------------------------------------------------
//  Links.

//  End the live links of staff_id for purpose (NULL: every purpose). -1 on error.
int64_t ml_staff_tokens_invalidate (ml_staff_t *self, int64_t staff_id, const char *purpose)
{
    int64_t now = ml_staff_now (self);
    return ml_db_execute (self->db,
                          "UPDATE staff_token SET invalidated_at = ? WHERE staff_id = ?"
                          " AND (? = '' OR purpose = ?) AND used_at IS NULL"
                          " AND invalidated_at IS NULL AND expires_at > ?",
                          "iissi", now, staff_id, purpose ? purpose : "", purpose ? purpose : "",
                          now);
}

int64_t ml_staff_sessions_end (ml_staff_t *self, int64_t staff_id, const char *why,
                               const char *except_digest)
{
    return ml_db_execute (self->db,
                          "UPDATE staff_session SET ended_at = ?, ended_why = ?"
                          " WHERE staff_id = ? AND ended_at IS NULL AND digest <> ?",
                          "isis", ml_staff_now (self), why, staff_id,
                          except_digest ? except_digest : "");
}

int64_t ml_staff_link_mail (ml_staff_t *self, const json_t *user, const char *purpose,
                            json_t **reply)
{
    if (!*self->settings.public_url) {
        *reply = ml_admin_error ("staff links are mailed with the portal's address, but "
                                 "portal/public_url is not set in the core's configuration; "
                                 "nothing was sent");
        return -1;
    }
    bool invite = streq (purpose, "invite");
    int hours = invite ? self->settings.welcome_hours : self->settings.reset_hours;
    char token[ML_CREDENTIALS_TOKEN_LENGTH + 1], digest[ML_CREDENTIALS_DIGEST_SIZE];
    ml_credentials_token_new (token, digest);
    int64_t now = ml_staff_now (self), staff_id = ml_staff_int (user, "staff_id");
    bool failed = false;
    json_t *row = NULL;
    if (ml_staff_tokens_invalidate (self, staff_id, purpose) < 0 ||
        ml_db_execute (self->db,
                       "INSERT INTO staff_token (digest, staff_id, purpose, created_at,"
                       " expires_at) VALUES (?, ?, ?, ?, ?)",
                       "sisii", digest, staff_id, purpose, now, now + (int64_t)hours * 3600) != 1 ||
        !(row = ml_staff_row (self,
                              ml_db_query (self->db,
                                           "SELECT token_id FROM staff_token WHERE digest = ?", "s",
                                           digest),
                              &failed))) {
        sodium_memzero (token, sizeof token);
        *reply = ml_staff_store_failed (self, "staff link");
        return -1;
    }
    int64_t token_id = ml_staff_int (row, "token_id");
    json_decref (row);
    const char *firm_name = ml_staff_text (user, "firm_name");
    char body[4096], key[64], error[300], subject[300];
    snprintf (body, sizeof body,
              "Hello %s,\n\n%s\n\n  %s/staff/%s?token=%s\n\nThe link works once and for %d "
              "hour%s.\n\nIf you did not expect this e-mail, you can ignore it; nothing changes "
              "until the link is used.\n\n%s\n",
              ml_staff_text (user, "name"),
              invite ? "You are invited to your firm's payments app. Choose your password here:"
                     : "Someone (we hope you) asked to reset your password. Choose a new one "
                       "here:",
              self->settings.public_url, invite ? "accept" : "reset", token, hours,
              hours == 1 ? "" : "s", firm_name);
    snprintf (subject, sizeof subject, "%s: %s", firm_name,
              invite ? "your invitation to the payments app" : "reset your password");
    if (self->testing)
        snprintf (self->test_token, sizeof self->test_token, "%s", token);
    sodium_memzero (token, sizeof token);
    snprintf (key, sizeof key, "staff-%s:%lld", purpose, (long long)token_id);
    int queued = ml_mailer_enqueue (self->mailer, invite ? "staff-invite" : "staff-reset", key,
                                    ml_staff_text (user, "firm_id"), ml_staff_text (user, "email"),
                                    subject, body, error, sizeof error);
    sodium_memzero (body, sizeof body);
    if (queued != 1) {
        ml_log (ML_LOG_ERROR, "staff: the %s mail for staff %lld was not queued: %s", purpose,
                (long long)staff_id, error);
        *reply = ml_admin_error ("the mail could not be queued: %s", error);
        return -1;
    }
    row = ml_staff_row (
        self, ml_db_query (self->db, "SELECT mail_id FROM mail WHERE dedupe_key = ?", "s", key),
        &failed);
    int64_t mail_id = row ? ml_staff_int (row, "mail_id") : 0;
    json_decref (row);
    return mail_id;
}

//  A live link by its token (new reference, with its account), or NULL.
static json_t *s_token_find (ml_staff_t *self, const char *token, bool *failed)
{
    char digest[ML_CREDENTIALS_DIGEST_SIZE];
    if (!ml_credentials_token_digest (token, digest))
        return NULL;
    json_t *row = ml_staff_row (
        self,
        ml_db_query (self->db,
                     "SELECT t.token_id, t.digest, t.staff_id, t.purpose, t.totp_sealed AS"
                     " proposed, t.expires_at, t.used_at, t.invalidated_at, s.state"
                     " FROM staff_token t JOIN staff_user s ON s.staff_id = t.staff_id"
                     " WHERE t.digest = ?",
                     "s", digest),
        failed);
    if (!row)
        return NULL;
    const char *purpose = ml_staff_text (row, "purpose"), *state = ml_staff_text (row, "state");
    bool live = ml_credentials_digest_equal (ml_staff_text (row, "digest"), digest) &&
                json_is_null (json_object_get (row, "used_at")) &&
                json_is_null (json_object_get (row, "invalidated_at")) &&
                ml_staff_int (row, "expires_at") > ml_staff_now (self) &&
                (streq (purpose, "invite") ? streq (state, "invited") : streq (state, "active"));
    if (!live)
        json_decref (row);
    return live ? row : NULL;
}

//  Whether a link's account needs a second factor to finish: admins always, others who have
//  one on.
static bool s_totp_required (const json_t *user)
{
    return ml_staff_role (ml_staff_text (user, "role")) == ML_ROLE_ADMIN ||
           ml_staff_int (user, "totp_enabled");
}

//  ---------------------------------------------------------------------------------------
//  Anonymous ops.

static json_t *s_staff_token (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("%s", s_link_failure);
    bool failed = false;
    json_t *found = s_token_find (self, token, &failed);
    if (failed)
        return ml_staff_store_failed (self, "staff-token");
    if (!found)
        return ml_admin_error ("%s", s_link_failure);
    int64_t staff_id = ml_staff_int (found, "staff_id");
    json_t *user = ml_staff_user (self, staff_id, &failed);
    if (!user) {
        json_decref (found);
        return ml_staff_store_failed (self, "staff-token");
    }
    //  Opening does not use the link up: mail scanners fetch links before people do.
    ml_db_execute (self->db,
                   "UPDATE staff_token SET opened_at = ? WHERE token_id = ? AND opened_at IS NULL",
                   "ii", ml_staff_now (self), ml_staff_int (found, "token_id"));
    bool required = s_totp_required (user);
    json_t *reply = ml_admin_ok (
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:b}", "purpose", ml_staff_text (found, "purpose"),
                   "email", ml_staff_text (user, "email"), "name", ml_staff_text (user, "name"),
                   "role", ml_staff_text (user, "role"), "firm_name",
                   ml_staff_text (user, "firm_name"), "totp_required", required));
    //  A secret to enrol: proposed once per link and kept sealed beside it until accepted.
    if (required && !ml_staff_int (user, "totp_enabled")) {
        unsigned char secret[ML_TOTP_SECRET_BYTES];
        const char *proposed = ml_staff_text (found, "proposed");
        if (!ml_staff_open (self, staff_id, proposed, secret)) {
            randombytes_buf (secret, sizeof secret);
            char *sealed = ml_staff_seal (self, staff_id, secret);
            if (ml_db_execute (self->db,
                               "UPDATE staff_token SET totp_sealed = ? WHERE token_id = ?", "si",
                               sealed, ml_staff_int (found, "token_id")) != 1) {
                json_decref (reply);
                reply = ml_staff_store_failed (self, "staff-token");
            }
            free (sealed);
        }
        if (json_is_true (json_object_get (reply, "ok"))) {
            char text[ML_TOTP_SECRET_TEXT + 8], uri[600];
            ml_totp_base32 (secret, sizeof secret, text, sizeof text);
            ml_totp_uri (text, ml_staff_text (user, "email"), uri, sizeof uri);
            json_object_set_new (reply, "totp_secret", json_string (text));
            json_object_set_new (reply, "totp_uri", json_string (uri));
            sodium_memzero (text, sizeof text);
        }
        sodium_memzero (secret, sizeof secret);
    }
    json_decref (user);
    json_decref (found);
    return reply;
}

static json_t *s_staff_accept (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    const char *confirm = ml_admin_argument (request, "confirm", ML_CREDENTIALS_PASSWORD_BYTES,
                                             problem, sizeof problem);
    const char *code = ml_admin_argument (request, "totp_code", 32, problem, sizeof problem);
    if (*problem && (strstr (problem, "'password'") || strstr (problem, "'confirm'")))
        return ml_admin_error ("the password may have at most 128 characters");
    if (*problem || !token)
        return ml_admin_error ("%s", s_link_failure);
    if (!password)
        return ml_admin_error ("choose a password");
    if (confirm && !streq (confirm, password))
        return ml_admin_error ("the two passwords are not the same");
    bool failed = false;
    json_t *found = s_token_find (self, token, &failed);
    if (!found)
        return failed ? ml_staff_store_failed (self, "staff-accept")
                      : ml_admin_error ("%s", s_link_failure);
    int64_t staff_id = ml_staff_int (found, "staff_id"),
            token_id = ml_staff_int (found, "token_id");
    json_t *user = ml_staff_user (self, staff_id, &failed);
    const char *why =
        user ? ml_credentials_password_problem (password, ml_staff_text (user, "email")) : NULL;
    bool required = user && s_totp_required (user);
    bool enrol = required && !ml_staff_int (user, "totp_enabled");
    unsigned char secret[ML_TOTP_SECRET_BYTES];
    uint64_t step = 0;
    if (enrol && ml_staff_open (self, staff_id, ml_staff_text (found, "proposed"), secret)) {
        step = ml_totp_check (secret, sizeof secret, code, ml_staff_now (self), 0);
        sodium_memzero (secret, sizeof secret);
    }
    char hash[crypto_pwhash_STRBYTES];
    json_t *reply = NULL;
    if (!user)
        reply = ml_staff_store_failed (self, "staff-accept");
    else if (why)
        reply = ml_admin_error ("%s", why);
    else if (required && !code)
        reply = json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", s_code_needed, "totp_required", 1);
    else if (enrol && !step)
        reply = json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", s_code_wrong, "totp_required", 1);
    else if (ml_credentials_hash (password, hash) != 0)
        reply = ml_admin_error ("the core is out of memory; try again shortly");
    else if (ml_db_begin (self->db) != 0)
        reply = ml_staff_store_failed (self, "begin");
    else {
        int64_t now = ml_staff_now (self);
        //  A user who has a second factor proves it on a reset link too.
        int checked = required && !enrol ? ml_staff_code_check (self, user, code, true) : 1;
        //  Used once: the UPDATE that marks it counts, so two submits cannot both use it.
        int64_t used = checked == 1 ? ml_db_execute (self->db,
                                                     "UPDATE staff_token SET used_at = ?"
                                                     " WHERE token_id = ? AND used_at IS NULL"
                                                     " AND invalidated_at IS NULL",
                                                     "ii", now, token_id)
                                    : 0;
        json_t *codes = NULL;
        if (checked == 0)
            reply =
                json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", s_code_wrong, "totp_required", 1);
        else if (used == 0)
            reply = ml_admin_error ("%s", s_link_failure);
        else if (checked < 0 || used < 0 || ml_staff_tokens_invalidate (self, staff_id, NULL) < 0 ||
                 ml_db_execute (self->db,
                                "UPDATE staff_user SET password_hash = ?, password_set_at = ?,"
                                " state = 'active', failures = 0, last_failure_at = NULL,"
                                " updated_at = ? WHERE staff_id = ?",
                                "siii", hash, now, now, staff_id) != 1 ||
                 (enrol && (ml_db_execute (self->db,
                                           "UPDATE staff_user SET totp_sealed = ?,"
                                           " totp_enabled = 1, totp_last_step = ?,"
                                           " totp_pending = NULL WHERE staff_id = ?",
                                           "sii", ml_staff_text (found, "proposed"), (int64_t)step,
                                           staff_id) != 1 ||
                            !(codes = ml_staff_codes_new (self, staff_id)))) ||
                 ml_staff_sessions_end (self, staff_id, "password set", NULL) < 0)
            reply = ml_staff_store_failed (self, "staff-accept");
        else {
            ml_actor_t actor;
            ml_staff_actor_of (user, &actor);
            char object[64];
            snprintf (object, sizeof object, "staff_id=%lld", (long long)staff_id);
            ml_staff_audit (self, &actor, ml_staff_text (user, "firm_id"), "staff-accept", object,
                            ml_staff_text (found, "purpose"));
            reply = ml_admin_ok (codes ? json_pack ("{s:O}", "recovery_codes", codes) : NULL);
        }
        json_decref (codes);
        reply = ml_staff_finish (self, reply);
    }
    sodium_memzero (hash, sizeof hash);
    json_decref (user);
    json_decref (found);
    return reply;
}

//  A failed sign-in of an account, for its administrators to see in the audit.
//  client: where the attempt came from (the web's word for the browser's address), or NULL.
static void s_sign_in_audit (ml_staff_t *self, const json_t *account, const char *op,
                             const char *why, const char *client)
{
    ml_actor_t actor;
    ml_staff_actor_of (account, &actor);
    char detail[200];
    snprintf (detail, sizeof detail, "%s%s%s", why ? why : "",
              client ? (why ? ", from " : "from ") : "", client ? client : "");
    ml_staff_audit (self, &actor, actor.firm_id, op, NULL, *detail ? detail : NULL);
}

static json_t *s_staff_sign_in (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    const char *code = ml_admin_argument (request, "code", 32, problem, sizeof problem);
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 100, problem, sizeof problem);
    *problem = 0;
    //  Candidates: active accounts with a password at that address, in one firm or several.
    json_t *candidates =
        email && password
            ? ml_staff_rows (
                  self, ml_db_query (self->db,
                                     "SELECT staff_id, firm_id, name, role, password_hash,"
                                     " failures, last_failure_at FROM staff_user WHERE email = ?"
                                     " COLLATE NOCASE AND state = 'active'"
                                     " AND password_hash IS NOT NULL AND (? = '' OR firm_id = ?)"
                                     " ORDER BY staff_id LIMIT 5",
                                     "sss", email, firm ? firm : "", firm ? firm : ""))
            : json_array ();
    if (!candidates)
        return ml_staff_store_failed (self, "staff-sign-in");
    const char *typed = password ? password : "";
    int64_t now = ml_staff_now (self);
    json_t *matched = json_array ();
    size_t index;
    json_t *candidate;
    json_array_foreach (candidates, index, candidate)
    {
        int64_t staff_id = ml_staff_int (candidate, "staff_id");
        if (ml_credentials_throttled (ml_staff_int (candidate, "failures"),
                                      ml_staff_int (candidate, "last_failure_at"), now)) {
            //  Inside the wait: the same work and the same answer, the password unchecked.
            ml_credentials_verify (self->dummy_hash, typed);
            s_sign_in_audit (self, candidate, "staff-sign-in failed", "throttled", client);
            continue;
        }
        if (ml_credentials_verify (ml_staff_text (candidate, "password_hash"), typed))
            json_array_append (matched, candidate);
        else {
            ml_db_execute (self->db,
                           "UPDATE staff_user SET failures = failures + 1, last_failure_at = ?"
                           " WHERE staff_id = ?",
                           "ii", now, staff_id);
            s_sign_in_audit (self, candidate, "staff-sign-in failed", "wrong password", client);
        }
    }
    if (json_array_size (candidates) == 0)
        //  Nobody to check: as long as a check would take, and the same answer.
        ml_credentials_verify (self->dummy_hash, typed);
    json_decref (candidates);
    json_t *reply = NULL;
    bool failed = false;
    if (json_array_size (matched) == 0)
        reply = ml_admin_error ("%s", s_generic_failure);
    else if (json_array_size (matched) > 1) {
        //  The same address and password at several firms: the person says which.
        json_t *firms = json_array ();
        json_array_foreach (matched, index, candidate)
        {
            json_t *user = ml_staff_user (self, ml_staff_int (candidate, "staff_id"), &failed);
            if (user)
                json_array_append_new (
                    firms, json_pack ("{s:s, s:s}", "firm", ml_staff_text (user, "firm_id"),
                                      "firm_name", ml_staff_text (user, "firm_name")));
            json_decref (user);
        }
        reply = json_pack ("{s:b, s:s, s:o}", "ok", 0, "error",
                           "this address has an account at several firms: choose one",
                           "choose_firm", firms);
    }
    json_t *user =
        reply
            ? NULL
            : ml_staff_user (self, ml_staff_int (json_array_get (matched, 0), "staff_id"), &failed);
    json_decref (matched);
    if (reply)
        return reply;
    if (!user)
        return ml_staff_store_failed (self, "staff-sign-in");
    int64_t staff_id = ml_staff_int (user, "staff_id");
    ml_actor_t actor;
    ml_staff_actor_of (user, &actor);
    bool admin = actor.role == ML_ROLE_ADMIN, totp = ml_staff_int (user, "totp_enabled") != 0;
    int checked = 1;
    if (admin && !totp)
        reply = ml_admin_error ("an administrator signs in with a second factor, and this "
                                "account has none: ask another administrator (or the service's "
                                "operator) for a reset link, which sets one up");
    else if (totp && !code)
        reply = json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", s_code_needed, "second_factor", 1);
    else if (totp && (checked = ml_staff_code_check (self, user, code, true)) != 1) {
        if (checked < 0)
            reply = ml_staff_store_failed (self, "staff-sign-in");
        else {
            //  A wrong code counts as a failure: guessing codes is throttled like passwords.
            ml_db_execute (self->db,
                           "UPDATE staff_user SET failures = failures + 1, last_failure_at = ?"
                           " WHERE staff_id = ?",
                           "ii", now, staff_id);
            s_sign_in_audit (self, user, "staff-sign-in failed", "wrong second factor", client);
            reply =
                json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", s_code_wrong, "second_factor", 1);
        }
    }
    if (reply) {
        json_decref (user);
        return reply;
    }
    char session[ML_CREDENTIALS_TOKEN_LENGTH + 1], digest[ML_CREDENTIALS_DIGEST_SIZE],
        csrf[ML_CREDENTIALS_TOKEN_LENGTH + 1], hash[crypto_pwhash_STRBYTES];
    ml_credentials_token_new (session, digest);
    ml_credentials_csrf (S_CSRF_LABEL, session, csrf);
    bool rehash = ml_credentials_needs_rehash (ml_staff_text (user, "password_hash")) &&
                  ml_credentials_hash (typed, hash) == 0;
    if (ml_db_execute (self->db,
                       "INSERT INTO staff_session (digest, staff_id, created_at, last_seen_at)"
                       " VALUES (?, ?, ?, ?)",
                       "siii", digest, staff_id, now, now) != 1 ||
        ml_db_execute (self->db,
                       "UPDATE staff_user SET failures = 0, last_failure_at = NULL,"
                       " last_sign_in_at = ?, password_hash = CASE WHEN ? = 1 THEN ? ELSE"
                       " password_hash END WHERE staff_id = ?",
                       "iisi", now, (int64_t)(rehash ? 1 : 0), rehash ? hash : NULL, staff_id) != 1)
        reply = ml_staff_store_failed (self, "staff-sign-in");
    else {
        s_sign_in_audit (self, user, "staff-sign-in", totp ? "with a second factor" : NULL, client);
        json_t *shown = ml_staff_public (user);
        json_object_set_new (shown, "totp_enabled", json_boolean (totp));
        reply = ml_admin_ok (
            json_pack ("{s:s, s:s, s:o}", "staff_session", session, "csrf", csrf, "staff", shown));
    }
    sodium_memzero (session, sizeof session);
    sodium_memzero (hash, sizeof hash);
    json_decref (user);
    return reply;
}

static json_t *s_staff_forgot (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    if (*problem || !email)
        return ml_admin_ok (NULL);
    json_t *users = ml_staff_rows (
        self, ml_db_query (self->db,
                           "SELECT staff_id FROM staff_user WHERE email = ? COLLATE NOCASE"
                           " AND state = 'active' ORDER BY staff_id LIMIT 5",
                           "s", email));
    size_t index;
    json_t *row;
    json_array_foreach (users, index, row)
    {
        int64_t staff_id = ml_staff_int (row, "staff_id");
        bool failed = false;
        //  One reset mail a minute per account at most: the form cannot flood a mailbox.
        json_t *recent =
            ml_staff_row (self,
                          ml_db_query (self->db,
                                       "SELECT token_id FROM staff_token WHERE staff_id = ?"
                                       " AND purpose = 'reset' AND created_at > ?",
                                       "ii", staff_id, ml_staff_now (self) - S_FORGOT_GAP),
                          &failed);
        json_t *user = recent || failed ? NULL : ml_staff_user (self, staff_id, &failed);
        json_decref (recent);
        if (!user || ml_db_begin (self->db) != 0) {
            json_decref (user);
            continue;
        }
        json_t *reply = NULL;
        if (ml_staff_link_mail (self, user, "reset", &reply) < 0)
            ml_db_rollback (self->db);
        else {
            ml_actor_t actor;
            ml_staff_actor_of (user, &actor);
            ml_staff_audit (self, &actor, actor.firm_id, "staff-forgot", NULL, "reset link sent");
            if (ml_db_commit (self->db) != 0)
                ml_db_rollback (self->db);
        }
        json_decref (reply);
        json_decref (user);
    }
    json_decref (users);
    return ml_admin_ok (NULL);
}

//  ---------------------------------------------------------------------------------------
//  Sessions.

int ml_staff_session (ml_staff_t *self, const char *token, ml_actor_t *actor)
{
    assert (self && actor);
    char digest[ML_CREDENTIALS_DIGEST_SIZE];
    if (!ml_credentials_token_digest (token, digest))
        return 0;
    bool failed = false;
    json_t *row = ml_staff_row (
        self,
        ml_db_query (self->db,
                     "SELECT s.session_id, s.digest, s.staff_id, s.created_at, s.last_seen_at,"
                     " s.ended_at, u.firm_id, u.name, u.role, u.state FROM staff_session s"
                     " JOIN staff_user u ON u.staff_id = s.staff_id WHERE s.digest = ?",
                     "s", digest),
        &failed);
    if (failed) {
        json_decref (ml_staff_store_failed (self, "staff session lookup"));
        return -1;
    }
    if (!row)
        return 0;
    int64_t now = ml_staff_now (self);
    const char *why = NULL;
    if (now - ml_staff_int (row, "created_at") >
        (int64_t)self->settings.session_absolute_hours * 3600)
        why = "absolute timeout";
    else if (now - ml_staff_int (row, "last_seen_at") >
             (int64_t)self->settings.session_idle_minutes * 60)
        why = "idle timeout";
    bool open = json_is_null (json_object_get (row, "ended_at"));
    bool live = ml_credentials_digest_equal (ml_staff_text (row, "digest"), digest) && open &&
                streq (ml_staff_text (row, "state"), "active") && !why;
    int64_t session_id = ml_staff_int (row, "session_id");
    if (!live && why && open)
        ml_db_execute (self->db,
                       "UPDATE staff_session SET ended_at = ?, ended_why = ? WHERE session_id = ?",
                       "isi", now, why, session_id);
    else if (live)
        ml_db_execute (self->db, "UPDATE staff_session SET last_seen_at = ? WHERE session_id = ?",
                       "ii", now, session_id);
    if (live) {
        ml_staff_actor_of (row, actor);
        snprintf (actor->session, sizeof actor->session, "%s", token);
    }
    json_decref (row);
    return live ? 1 : 0;
}

bool ml_staff_csrf_ok (const ml_actor_t *actor, const char *csrf)
{
    assert (actor);
    return actor->kind == ML_ACTOR_STAFF &&
           ml_credentials_csrf_ok (S_CSRF_LABEL, actor->session, csrf);
}

static json_t *s_staff_session_op (ml_staff_t *self, const ml_actor_t *actor)
{
    bool failed = false;
    json_t *user = ml_staff_user (self, actor->staff_id, &failed);
    if (!user)
        return failed ? ml_staff_store_failed (self, "staff-session")
                      : ml_admin_error ("not found");
    char csrf[ML_CREDENTIALS_TOKEN_LENGTH + 1];
    ml_credentials_csrf (S_CSRF_LABEL, actor->session, csrf);
    json_t *reply =
        ml_admin_ok (json_pack ("{s:s, s:o}", "csrf", csrf, "staff", ml_staff_public (user)));
    json_decref (user);
    return reply;
}

static json_t *s_staff_sign_out (ml_staff_t *self, const ml_actor_t *actor)
{
    char digest[ML_CREDENTIALS_DIGEST_SIZE];
    if (!ml_credentials_token_digest (actor->session, digest))
        return ml_admin_error ("not found");
    if (ml_db_execute (self->db,
                       "UPDATE staff_session SET ended_at = ?, ended_why = 'sign-out'"
                       " WHERE digest = ? AND ended_at IS NULL",
                       "is", ml_staff_now (self), digest) < 0)
        return ml_staff_store_failed (self, "staff-sign-out");
    return ml_admin_ok (NULL);
}

//  ---------------------------------------------------------------------------------------
//  Public methods.

ml_staff_t *ml_staff_new (ml_store_t *store, ml_mailer_t *mailer,
                          const ml_logins_settings_t *settings, char *error, size_t error_size)
{
    assert (store && mailer && settings);
    if (sodium_init () < 0) {
        snprintf (error, error_size, "libsodium cannot start");
        return NULL;
    }
    if (ml_store_schema (ml_store_db (store), s_schema, sizeof s_schema / sizeof s_schema[0],
                         "staff tables", error, error_size) != 0 ||
        ml_staff_postings_schema (store, error, error_size) != 0)
        return NULL;
    ml_staff_t *self = calloc (1, sizeof (ml_staff_t));
    assert (self);
    self->store = store;
    self->db = ml_store_db (store);
    self->mailer = mailer;
    self->settings = *settings;
    ml_mailer_subkey (mailer, "matterlink staff totp", self->totp_key);
    ml_mailer_subkey (mailer, "matterlink staff recovery codes", self->code_key);
    //  What an unknown e-mail is checked against.
    if (ml_credentials_dummy_hash (self->dummy_hash) != 0) {
        snprintf (error, error_size, "cannot compute a password hash (out of memory?)");
        free (self);
        return NULL;
    }
    return self;
}

void ml_staff_destroy (ml_staff_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_memzero (*self_p, sizeof (ml_staff_t));
        free (*self_p);
        *self_p = NULL;
    }
}

void ml_staff_set_clock (ml_staff_t *self, int64_t now)
{
    assert (self);
    self->clock = now;
}

json_t *ml_staff_execute (ml_staff_t *self, const char *op, const json_t *request,
                          const ml_actor_t *actor)
{
    assert (self && actor);
    if (!op || !json_is_object (request) || strncmp (op, "staff-", 6) != 0)
        return NULL;
    if (streq (op, "staff-token"))
        return s_staff_token (self, request);
    if (streq (op, "staff-accept"))
        return s_staff_accept (self, request);
    if (streq (op, "staff-sign-in"))
        return s_staff_sign_in (self, request);
    if (streq (op, "staff-forgot"))
        return s_staff_forgot (self, request);
    json_t *reply = ml_staff_admin_execute (self, op, request, actor);
    if (reply)
        return reply;
    //  The account ops act for the session's staff member only.
    if (actor->kind != ML_ACTOR_STAFF)
        return NULL;
    if (streq (op, "staff-session"))
        return s_staff_session_op (self, actor);
    if (streq (op, "staff-sign-out"))
        return s_staff_sign_out (self, actor);
    return ml_staff_account_execute (self, op, request, actor);
}
