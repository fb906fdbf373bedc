/*  ml_staff: the administrators' ops on their firm's accounts, and each staff member's own
    account (second factor, recovery codes, password). See include/ml_staff.h. */
#include "ml_staff_internal.h"

#include <assert.h>
#include <czmq.h>

//  ---------------------------------------------------------------------------------------
//  Administrators (and, for a firm's first administrator, the operator).

static json_t *s_staff_invite (ml_staff_t *self, const json_t *request, const ml_actor_t *actor)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    const char *name = ml_admin_argument (request, "name", 200, problem, sizeof problem);
    const char *role = ml_admin_argument (request, "role", 16, problem, sizeof problem);
    //  Who invites: the staff member (set by the core) or the operator's --staff.
    const char *by = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm)
        return ml_admin_error ("'firm' is required");
    if (!email || !strchr (email, '@') || strpbrk (email, " \t\r\n<>,;\"") || email[0] == '@' ||
        !strchr (strchr (email, '@'), '.'))
        return ml_admin_error ("'email' must be an e-mail address, like pat@example.com");
    if (!name || !*name || strpbrk (name, "\r\n"))
        return ml_admin_error ("'name' is required (the person's name, on one line)");
    if (ml_staff_role (role) == ML_ROLE_NONE)
        return ml_admin_error ("'role' must be admin, billing or read");
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_unknown_firm (self->store, firm);
    json_decref (known);
    bool failed = false;
    json_t *existing = ml_staff_row (
        self,
        ml_db_query (self->db,
                     "SELECT staff_id, state FROM staff_user WHERE firm_id = ? AND email = ?"
                     " COLLATE NOCASE",
                     "ss", firm, email),
        &failed);
    if (failed)
        return ml_staff_store_failed (self, "staff-invite");
    if (existing && !streq (ml_staff_text (existing, "state"), "invited")) {
        json_decref (existing);
        return ml_admin_error ("%s already has an account at this firm (staff-enable or "
                               "staff-reset it instead)",
                               email);
    }
    if (ml_db_begin (self->db) != 0) {
        json_decref (existing);
        return ml_staff_store_failed (self, "begin");
    }
    int64_t now = ml_staff_now (self);
    int64_t staff_id = existing ? ml_staff_int (existing, "staff_id") : 0;
    json_decref (existing);
    json_t *reply = NULL;
    //  Invited again: the same account, its name and role as now asked, a new link.
    int64_t done = staff_id
                       ? ml_db_execute (self->db,
                                        "UPDATE staff_user SET name = ?, role = ?, invited_at = ?,"
                                        " updated_at = ? WHERE staff_id = ?",
                                        "ssiii", name, role, now, now, staff_id)
                       : ml_db_execute (self->db,
                                        "INSERT INTO staff_user (firm_id, email, name, role, state,"
                                        " invited_at, created_at, created_by, updated_at)"
                                        " VALUES (?, ?, ?, ?, 'invited', ?, ?, ?, ?)",
                                        "ssssiisi", firm, email, name, role, now, now,
                                        by ? by : "operator", now);
    json_t *row = NULL;
    if (done == 1 && !staff_id) {
        row = ml_staff_row (self,
                            ml_db_query (self->db,
                                         "SELECT staff_id FROM staff_user WHERE firm_id = ?"
                                         " AND email = ? COLLATE NOCASE",
                                         "ss", firm, email),
                            &failed);
        staff_id = row ? ml_staff_int (row, "staff_id") : 0;
        json_decref (row);
    }
    json_t *user = done == 1 && staff_id ? ml_staff_user (self, staff_id, &failed) : NULL;
    int64_t mail_id = user ? ml_staff_link_mail (self, user, "invite", &reply) : -1;
    if (mail_id >= 0) {
        reply = ml_admin_ok (json_pack ("{s:I, s:I}", "staff_id", (json_int_t)staff_id, "mail_id",
                                        (json_int_t)mail_id));
        //  The operator's invitations are recorded here; a staff member's by ml_admin.
        if (actor->kind == ML_ACTOR_OPERATOR) {
            char object[64], detail[300];
            snprintf (object, sizeof object, "staff_id=%lld", (long long)staff_id);
            snprintf (detail, sizeof detail, "%s as %s%s%s", email, role, by ? ", by " : "",
                      by ? by : "");
            ml_staff_audit (self, actor, firm, "staff-invite", object, detail);
        } else
            json_object_set_new (reply, "audit_detail", json_sprintf ("%s as %s", email, role));
    } else if (!reply)
        reply = ml_staff_store_failed (self, "staff-invite");
    json_decref (user);
    return ml_staff_finish (self, reply);
}

static json_t *s_staff_list (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm)
        return ml_admin_error ("'firm' is required");
    json_t *rows = ml_staff_rows (
        self, ml_db_query (self->db,
                           "SELECT staff_id, name, email, role, state, totp_enabled,"
                           " invited_at, last_sign_in_at FROM staff_user WHERE firm_id = ?"
                           " ORDER BY name, staff_id",
                           "s", firm));
    if (!rows)
        return ml_staff_store_failed (self, "staff-list");
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        json_object_set_new (row, "totp_enabled",
                             json_boolean (ml_staff_int (row, "totp_enabled")));
        const char *times[] = {"invited_at", "last_sign_in_at"};
        for (int which = 0; which < 2; which++) {
            json_t *value = json_object_get (row, times[which]);
            if (json_is_integer (value)) {
                char at[32];
                time_t seconds = (time_t)json_integer_value (value);
                struct tm parts;
                gmtime_r (&seconds, &parts);
                strftime (at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &parts);
                json_object_set_new (row, times[which], json_string (at));
            }
        }
    }
    return ml_admin_ok (json_pack ("{s:o}", "staff", rows));
}

static json_t *s_staff_audit_op (ml_staff_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    json_t *staff_id = json_object_get (request, "staff_id");
    json_t *limit = json_object_get (request, "limit");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm)
        return ml_admin_error ("'firm' is required");
    if (staff_id && !json_is_integer (staff_id))
        return ml_admin_error ("'staff_id' must be a whole number");
    if (limit && (!json_is_integer (limit) || json_integer_value (limit) < 1 ||
                  json_integer_value (limit) > 1000))
        return ml_admin_error ("'limit' must be a whole number from 1 to 1000");
    json_t *rows = ml_staff_rows (
        self, ml_db_query (self->db,
                           "SELECT at, staff_id, staff_name AS name, op, object, detail"
                           " FROM staff_audit WHERE firm_id = ? AND (? = 0 OR staff_id = ?)"
                           " ORDER BY audit_id DESC LIMIT ?",
                           "siii", firm, staff_id ? (int64_t)json_integer_value (staff_id) : 0,
                           staff_id ? (int64_t)json_integer_value (staff_id) : 0,
                           limit ? (int64_t)json_integer_value (limit) : 100));
    return rows ? ml_admin_ok (json_pack ("{s:o}", "entries", rows))
                : ml_staff_store_failed (self, "staff-audit");
}

//  The account a request names (staff_id), already known to be of the actor's firm.
static json_t *s_target (ml_staff_t *self, const json_t *request, json_t **reply)
{
    json_t *id = json_object_get (request, "staff_id");
    if (!json_is_integer (id)) {
        *reply = ml_admin_error ("'staff_id' is required (a whole number)");
        return NULL;
    }
    bool failed = false;
    json_t *user = ml_staff_user (self, json_integer_value (id), &failed);
    if (!user)
        *reply = failed ? ml_staff_store_failed (self, "staff") : ml_admin_error ("not found");
    return user;
}

//  Would the firm be left without an active administrator if user stopped being one?
static bool s_last_admin (ml_staff_t *self, const json_t *user)
{
    if (ml_staff_role (ml_staff_text (user, "role")) != ML_ROLE_ADMIN ||
        !streq (ml_staff_text (user, "state"), "active"))
        return false;
    bool failed = false;
    json_t *row = ml_staff_row (
        self,
        ml_db_query (self->db,
                     "SELECT COUNT(*) AS n FROM staff_user WHERE firm_id = ? AND role = 'admin'"
                     " AND state = 'active' AND staff_id <> ?",
                     "si", ml_staff_text (user, "firm_id"), ml_staff_int (user, "staff_id")),
        &failed);
    bool last = failed || !row || ml_staff_int (row, "n") == 0;
    json_decref (row);
    return last;
}

static json_t *s_staff_change (ml_staff_t *self, const char *op, const json_t *request)
{
    json_t *reply = NULL;
    json_t *user = s_target (self, request, &reply);
    if (!user)
        return reply;
    int64_t staff_id = ml_staff_int (user, "staff_id"), now = ml_staff_now (self);
    const char *state = ml_staff_text (user, "state");
    char problem[256] = "";
    if (streq (op, "staff-edit")) {
        const char *name = ml_admin_argument (request, "name", 200, problem, sizeof problem);
        const char *role = ml_admin_argument (request, "role", 16, problem, sizeof problem);
        if (*problem)
            reply = ml_admin_error ("%s", problem);
        else if (name && (!*name || strpbrk (name, "\r\n")))
            reply = ml_admin_error ("'name' must be the person's name, on one line");
        else if (role && ml_staff_role (role) == ML_ROLE_NONE)
            reply = ml_admin_error ("'role' must be admin, billing or read");
        else if (role && !streq (role, "admin") && s_last_admin (self, user))
            reply = ml_admin_error ("this is the firm's last active administrator: make "
                                    "someone else an administrator first");
        else if (ml_db_execute (self->db,
                                "UPDATE staff_user SET name = COALESCE (?, name),"
                                " role = COALESCE (?, role), updated_at = ? WHERE staff_id = ?",
                                "ssii", name, role, now, staff_id) != 1)
            reply = ml_staff_store_failed (self, "staff-edit");
        else {
            reply = ml_admin_ok (NULL);
            json_object_set_new (reply, "audit_detail",
                                 json_sprintf ("%s%s%s%s", name ? "name " : "", name ? name : "",
                                               role ? (name ? ", role " : "role ") : "",
                                               role ? role : ""));
        }
    } else if (streq (op, "staff-disable")) {
        if (s_last_admin (self, user))
            reply = ml_admin_error ("this is the firm's last active administrator: it cannot be "
                                    "disabled");
        else if (ml_db_execute (self->db,
                                "UPDATE staff_user SET state = 'disabled', updated_at = ?"
                                " WHERE staff_id = ?",
                                "ii", now, staff_id) != 1 ||
                 ml_staff_sessions_end (self, staff_id, "disabled", NULL) < 0 ||
                 ml_staff_tokens_invalidate (self, staff_id, NULL) < 0)
            reply = ml_staff_store_failed (self, "staff-disable");
        else
            reply = ml_admin_ok (NULL);
    } else if (streq (op, "staff-enable")) {
        if (!streq (state, "disabled"))
            reply = ml_admin_error ("this account is not disabled");
        else if (ml_db_execute (self->db,
                                "UPDATE staff_user SET state = CASE WHEN password_hash IS NULL"
                                " THEN 'invited' ELSE 'active' END, failures = 0,"
                                " updated_at = ? WHERE staff_id = ?",
                                "ii", now, staff_id) != 1)
            reply = ml_staff_store_failed (self, "staff-enable");
        else
            reply = ml_admin_ok (NULL);
    } else if (streq (op, "staff-reset") || streq (op, "staff-totp-reset")) {
        bool totp = streq (op, "staff-totp-reset");
        bool admin = ml_staff_role (ml_staff_text (user, "role")) == ML_ROLE_ADMIN;
        if (!streq (state, "active"))
            reply = ml_admin_error ("this account is %s, not active", state);
        else if (ml_db_begin (self->db) != 0)
            reply = ml_staff_store_failed (self, "begin");
        else {
            int64_t mail_id = 0;
            //  Off: the secret and the codes go; an administrator enrols again through a reset
            //  link (a sign-in needs a second factor it no longer has).
            if (totp && (ml_db_execute (self->db,
                                        "UPDATE staff_user SET totp_enabled = 0,"
                                        " totp_sealed = NULL, totp_pending = NULL,"
                                        " updated_at = ? WHERE staff_id = ?",
                                        "ii", now, staff_id) != 1 ||
                         ml_db_execute (self->db,
                                        "UPDATE staff_recovery_code SET ended_at = ?"
                                        " WHERE staff_id = ? AND ended_at IS NULL",
                                        "ii", now, staff_id) < 0 ||
                         ml_staff_sessions_end (self, staff_id, "second factor reset", NULL) < 0))
                reply = ml_staff_store_failed (self, op);
            else if (!totp || admin) {
                json_decref (user);
                bool failed = false;
                user = ml_staff_user (self, staff_id, &failed);
                mail_id = user ? ml_staff_link_mail (self, user, "reset", &reply) : -1;
            }
            if (!reply && mail_id >= 0)
                reply = ml_admin_ok (mail_id ? json_pack ("{s:I}", "mail_id", (json_int_t)mail_id)
                                             : NULL);
            else if (!reply)
                reply = ml_staff_store_failed (self, op);
            reply = ml_staff_finish (self, reply);
        }
    } else
        reply = NULL;
    json_decref (user);
    return reply;
}

json_t *ml_staff_admin_execute (ml_staff_t *self, const char *op, const json_t *request,
                                const ml_actor_t *actor)
{
    if (streq (op, "staff-invite"))
        return s_staff_invite (self, request, actor);
    if (streq (op, "staff-list"))
        return s_staff_list (self, request);
    if (streq (op, "staff-audit"))
        return s_staff_audit_op (self, request);
    if (streq (op, "staff-edit") || streq (op, "staff-disable") || streq (op, "staff-enable") ||
        streq (op, "staff-reset") || streq (op, "staff-totp-reset"))
        return s_staff_change (self, op, request);
    return NULL;
}

//  ---------------------------------------------------------------------------------------
//  A staff member's own account.

static json_t *s_totp_begin (ml_staff_t *self, const json_t *user)
{
    unsigned char secret[ML_TOTP_SECRET_BYTES];
    randombytes_buf (secret, sizeof secret);
    int64_t staff_id = ml_staff_int (user, "staff_id");
    char *sealed = ml_staff_seal (self, staff_id, secret);
    json_t *reply = NULL;
    if (ml_db_execute (self->db, "UPDATE staff_user SET totp_pending = ? WHERE staff_id = ?", "si",
                       sealed, staff_id) != 1)
        reply = ml_staff_store_failed (self, "staff-totp-begin");
    else {
        char text[ML_TOTP_SECRET_TEXT + 8], uri[600];
        ml_totp_base32 (secret, sizeof secret, text, sizeof text);
        ml_totp_uri (text, ml_staff_text (user, "email"), uri, sizeof uri);
        reply = ml_admin_ok (json_pack ("{s:s, s:s}", "totp_secret", text, "totp_uri", uri));
        sodium_memzero (text, sizeof text);
    }
    free (sealed);
    sodium_memzero (secret, sizeof secret);
    return reply;
}

static json_t *s_totp_confirm (ml_staff_t *self, const json_t *user, const char *code)
{
    int64_t staff_id = ml_staff_int (user, "staff_id");
    unsigned char secret[ML_TOTP_SECRET_BYTES];
    if (!ml_staff_open (self, staff_id, ml_staff_text (user, "totp_pending"), secret))
        return ml_admin_error ("start again: set up the authenticator app first");
    uint64_t step = ml_totp_check (secret, sizeof secret, code, ml_staff_now (self),
                                   (uint64_t)ml_staff_int (user, "totp_last_step"));
    sodium_memzero (secret, sizeof secret);
    if (!step)
        return ml_admin_error ("that code is not right; enter the current code from your "
                               "authenticator app");
    if (ml_db_begin (self->db) != 0)
        return ml_staff_store_failed (self, "begin");
    json_t *codes = NULL, *reply = NULL;
    if (ml_db_execute (self->db,
                       "UPDATE staff_user SET totp_sealed = totp_pending, totp_pending = NULL,"
                       " totp_enabled = 1, totp_last_step = ?, updated_at = ?"
                       " WHERE staff_id = ? AND totp_pending IS NOT NULL",
                       "iii", (int64_t)step, ml_staff_now (self), staff_id) != 1 ||
        !(codes = ml_staff_codes_new (self, staff_id)))
        reply = ml_staff_store_failed (self, "staff-totp-confirm");
    else
        reply = ml_admin_ok (json_pack ("{s:o}", "recovery_codes", codes));
    return ml_staff_finish (self, reply);
}

static json_t *s_password (ml_staff_t *self, const json_t *user, const ml_actor_t *actor,
                           const char *password, const char *new_password)
{
    if (!password || !ml_credentials_verify (ml_staff_text (user, "password_hash"), password))
        return ml_admin_error ("the current password is not right");
    if (!new_password)
        return ml_admin_error ("choose a new password");
    const char *why = ml_credentials_password_problem (new_password, ml_staff_text (user, "email"));
    if (why)
        return ml_admin_error ("%s", why);
    char hash[crypto_pwhash_STRBYTES], digest[ML_CREDENTIALS_DIGEST_SIZE];
    if (ml_credentials_hash (new_password, hash) != 0)
        return ml_admin_error ("the core is out of memory; try again shortly");
    ml_credentials_token_digest (actor->session, digest);
    int64_t now = ml_staff_now (self), staff_id = ml_staff_int (user, "staff_id");
    json_t *reply = NULL;
    if (ml_db_begin (self->db) != 0)
        reply = ml_staff_store_failed (self, "begin");
    else {
        //  The other sessions end: a password changed because it leaked shuts the door.
        if (ml_db_execute (self->db,
                           "UPDATE staff_user SET password_hash = ?, password_set_at = ?,"
                           " updated_at = ? WHERE staff_id = ?",
                           "siii", hash, now, now, staff_id) != 1 ||
            ml_staff_sessions_end (self, staff_id, "password changed", digest) < 0)
            reply = ml_staff_store_failed (self, "staff-password");
        else
            reply = ml_admin_ok (NULL);
        reply = ml_staff_finish (self, reply);
    }
    sodium_memzero (hash, sizeof hash);
    return reply;
}

json_t *ml_staff_account_execute (ml_staff_t *self, const char *op, const json_t *request,
                                  const ml_actor_t *actor)
{
    const char *ops[] = {"staff-totp-begin",     "staff-totp-confirm", "staff-totp-off",
                         "staff-recovery-codes", "staff-password",     NULL};
    size_t which = 0;
    while (ops[which] && !streq (op, ops[which]))
        which++;
    if (!ops[which])
        return NULL;
    char problem[256] = "";
    const char *code = ml_admin_argument (request, "code", 32, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    const char *new_password = ml_admin_argument (
        request, "new_password", ML_CREDENTIALS_PASSWORD_BYTES, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", strstr (problem, "password")
                                         ? "the password may have at most 128 characters"
                                         : problem);
    bool failed = false;
    json_t *user = ml_staff_user (self, actor->staff_id, &failed);
    if (!user)
        return failed ? ml_staff_store_failed (self, op) : ml_admin_error ("not found");
    bool enabled = ml_staff_int (user, "totp_enabled") != 0;
    json_t *reply = NULL;
    if (which == 0)
        reply = enabled ? ml_admin_error ("the second factor is on already (turn it off first, "
                                          "or make new recovery codes)")
                        : s_totp_begin (self, user);
    else if (which == 1)
        reply = enabled ? ml_admin_error ("the second factor is on already")
                        : s_totp_confirm (self, user, code);
    else if (which == 4)
        reply = s_password (self, user, actor, password, new_password);
    else if (!enabled)
        reply = ml_admin_error ("the second factor is not on");
    else if (which == 2 && actor->role == ML_ROLE_ADMIN)
        reply = ml_admin_error ("administrators keep their second factor on");
    else if (which == 2 && (!password || !ml_credentials_verify (
                                             ml_staff_text (user, "password_hash"), password)))
        reply = ml_admin_error ("the password is not right");
    else if (ml_db_begin (self->db) != 0)
        reply = ml_staff_store_failed (self, "begin");
    else {
        //  Off takes a recovery code too (the phone is lost); new codes take the app's code.
        int checked = ml_staff_code_check (self, user, code, which == 2);
        json_t *codes = NULL;
        int64_t now = ml_staff_now (self);
        if (checked == 0)
            reply = ml_admin_error ("that code is not right; enter the current code from your "
                                    "authenticator app");
        else if (checked < 0)
            reply = ml_staff_store_failed (self, op);
        else if (which == 2)
            reply = ml_db_execute (self->db,
                                   "UPDATE staff_user SET totp_enabled = 0, totp_sealed = NULL,"
                                   " updated_at = ? WHERE staff_id = ?",
                                   "ii", now, actor->staff_id) == 1 &&
                            ml_db_execute (self->db,
                                           "UPDATE staff_recovery_code SET ended_at = ?"
                                           " WHERE staff_id = ? AND ended_at IS NULL",
                                           "ii", now, actor->staff_id) >= 0
                        ? ml_admin_ok (NULL)
                        : ml_staff_store_failed (self, op);
        else
            reply = (codes = ml_staff_codes_new (self, actor->staff_id))
                        ? ml_admin_ok (json_pack ("{s:o}", "recovery_codes", codes))
                        : ml_staff_store_failed (self, op);
        reply = ml_staff_finish (self, reply);
    }
    json_decref (user);
    return reply;
}
