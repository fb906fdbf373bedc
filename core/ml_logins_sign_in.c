/*  ml_logins' anonymous ops: a link's state, setting a password with it, sign-in with its
    throttling, forgotten passwords, and e-mail changes with their confirmation links. */
#include "ml_logins_internal.h"
#include "ml_admin.h"
#include "ml_credentials.h"
#include "ml_log.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FORGOT_GAP  60 //  at most one reset mail per account in this many seconds
#define S_EMAIL_HOURS 72 //  an e-mail confirmation link's life

//  ---------------------------------------------------------------------------------------
//  Anonymous ops.

json_t *ml_logins_portal_token (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    bool failed = false;
    json_t *found = ml_logins_token_find (self, token, &failed);
    if (failed)
        return ml_logins_store_failed (self, "portal-token");
    if (!found)
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    json_t *payer = ml_logins_payer (self, ml_logins_int (found, "payer_id"), &failed);
    //  Opening does not use the link up: mail scanners fetch links before people do.
    ml_db_execute (self->db,
                   "UPDATE portal_token SET opened_at = ? WHERE token_id = ?"
                   " AND opened_at IS NULL",
                   "ii", ml_logins_now (self), ml_logins_int (found, "token_id"));
    char hint[300];
    const char *purpose = ml_logins_text (found, "purpose");
    ml_logins_email_hint (streq (purpose, "email") ? ml_logins_text (found, "email")
                                                   : ml_logins_text (payer, "email"),
                          hint, sizeof hint);
    json_t *reply =
        payer ? ml_admin_ok (json_pack ("{s:s, s:s, s:s}", "purpose", purpose, "firm_name",
                                        ml_logins_text (payer, "firm_name"), "email_hint", hint))
              : ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    json_decref (payer);
    json_decref (found);
    return reply;
}

json_t *ml_logins_portal_password_set (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    const char *password = ml_admin_argument (request, "password", ML_CREDENTIALS_PASSWORD_BYTES,
                                              problem, sizeof problem);
    if (*problem && strstr (problem, "'password'"))
        return ml_admin_error ("the password may have at most 128 characters");
    if (*problem || !token)
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    if (!password)
        return ml_admin_error ("choose a password");
    bool failed = false;
    json_t *found = ml_logins_token_find (self, token, &failed);
    if (failed)
        return ml_logins_store_failed (self, "portal-password-set");
    const char *purpose = found ? ml_logins_text (found, "purpose") : "";
    if (!found || (!streq (purpose, "welcome") && !streq (purpose, "reset"))) {
        json_decref (found);
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    }
    int64_t payer_id = ml_logins_int (found, "payer_id"),
            token_id = ml_logins_int (found, "token_id");
    json_t *payer = ml_logins_payer (self, payer_id, &failed);
    const char *why =
        payer ? ml_credentials_password_problem (password, ml_logins_text (payer, "email")) : NULL;
    char hash[crypto_pwhash_STRBYTES];
    json_t *reply = NULL;
    if (!payer)
        reply = ml_logins_store_failed (self, "portal-password-set");
    else if (why)
        reply = ml_admin_error ("%s", why);
    else if (ml_credentials_hash (password, hash) != 0)
        reply = ml_admin_error ("the core is out of memory; try again shortly");
    else if (ml_db_begin (self->db) != 0)
        reply = ml_logins_store_failed (self, "begin");
    else {
        int64_t now = ml_logins_now (self);
        //  Used once: the UPDATE that marks it counts, so two submits cannot both set it.
        int64_t used = ml_db_execute (self->db,
                                      "UPDATE portal_token SET used_at = ? WHERE token_id = ?"
                                      " AND used_at IS NULL AND invalidated_at IS NULL",
                                      "ii", now, token_id);
        if (used == 0)
            reply = ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
        else if (used < 0 ||
                 ml_logins_tokens_invalidate (self, payer_id, "welcome", "reset", NULL) < 0 ||
                 ml_db_execute (self->db,
                                "UPDATE portal_login SET password_hash = ?, password_set_at = ?,"
                                " failures = 0, last_failure_at = NULL, updated_at = ?"
                                " WHERE payer_id = ?",
                                "siii", hash, now, now, payer_id) != 1 ||
                 ml_logins_sessions_end (self, payer_id, "password set") < 0)
            reply = ml_logins_store_failed (self, "portal-password-set");
        else {
            ml_logins_audit (self, payer_id, ml_logins_text (payer, "firm_id"), "password set",
                             NULL, purpose);
            reply = ml_admin_ok (NULL);
        }
        reply = ml_logins_finish (self, reply);
    }
    sodium_memzero (hash, sizeof hash);
    json_decref (payer);
    json_decref (found);
    return reply;
}

json_t *ml_logins_portal_sign_in (ml_logins_t *self, const json_t *request)
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
            ? ml_logins_rows (ml_db_query (
                  self->db,
                  "SELECT l.payer_id, l.password_hash, l.failures, l.last_failure_at,"
                  " p.firm_id, p.name, f.name AS firm_name FROM portal_login l"
                  " JOIN payer p ON p.payer_id = l.payer_id JOIN firm f ON f.firm_id = p.firm_id"
                  " WHERE p.email = ? COLLATE NOCASE AND l.state = 'on'"
                  " AND l.password_hash IS NOT NULL ORDER BY l.payer_id LIMIT 5",
                  "s", email))
            : json_array ();
    if (!candidates)
        return ml_logins_store_failed (self, "portal-sign-in");
    const char *typed = password ? password : "";
    int64_t now = ml_logins_now (self);
    json_t *winner = NULL;
    size_t index;
    json_t *candidate;
    json_array_foreach (candidates, index, candidate)
    {
        int64_t failures = ml_logins_int (candidate, "failures");
        int64_t payer_id = ml_logins_int (candidate, "payer_id");
        const char *firm_id = ml_logins_text (candidate, "firm_id");
        if (ml_credentials_throttled (failures, ml_logins_int (candidate, "last_failure_at"),
                                      now)) {
            //  Inside the wait: the same work and the same answer, the password unchecked.
            ml_credentials_verify (self->dummy_hash, typed);
            ml_logins_audit (self, payer_id, firm_id, "sign-in throttled", client, NULL);
            continue;
        }
        if (ml_credentials_verify (ml_logins_text (candidate, "password_hash"), typed)) {
            winner = candidate;
            break;
        }
        ml_db_execute (self->db,
                       "UPDATE portal_login SET failures = failures + 1, last_failure_at = ?"
                       " WHERE payer_id = ?",
                       "ii", now, payer_id);
        ml_logins_audit (self, payer_id, firm_id, "sign-in failed", client, NULL);
    }
    if (json_array_size (candidates) == 0) {
        //  Nobody to check: as long as a check would take, and the same answer.
        ml_credentials_verify (self->dummy_hash, typed);
        ml_logins_audit (self, 0, NULL, "sign-in failed", client, "no login with that address");
    }
    json_t *reply = NULL;
    if (!winner)
        reply = ml_admin_error ("%s", ML_LOGINS_GENERIC_FAILURE);
    else {
        int64_t payer_id = ml_logins_int (winner, "payer_id");
        char session[ML_LOGINS_TOKEN_LENGTH + 1], digest[65], csrf[ML_LOGINS_TOKEN_LENGTH + 1];
        ml_credentials_token_new (session, digest);
        ml_credentials_csrf (ML_LOGINS_CSRF_LABEL, session, csrf);
        char hash[crypto_pwhash_STRBYTES];
        bool rehash = ml_credentials_needs_rehash (ml_logins_text (winner, "password_hash")) &&
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
            reply = ml_logins_store_failed (self, "portal-sign-in");
        else {
            ml_logins_audit (self, payer_id, ml_logins_text (winner, "firm_id"), "sign-in", client,
                             NULL);
            reply = ml_admin_ok (json_pack ("{s:s, s:s, s:{s:I, s:s, s:s}}", "session", session,
                                            "csrf", csrf, "payer", "payer_id", (json_int_t)payer_id,
                                            "name", ml_logins_text (winner, "name"), "firm_name",
                                            ml_logins_text (winner, "firm_name")));
        }
        sodium_memzero (session, sizeof session);
        sodium_memzero (hash, sizeof hash);
    }
    json_decref (candidates);
    return reply;
}

json_t *ml_logins_portal_forgot (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 100, problem, sizeof problem);
    if (*problem || !email || !*self->settings.public_url) {
        if (!*self->settings.public_url)
            ml_log (ML_LOG_WARNING, "logins: a reset was asked, but portal/public_url is not set");
        return ml_admin_ok (NULL);
    }
    json_t *payers = ml_logins_rows (ml_db_query (
        self->db,
        "SELECT p.payer_id, p.firm_id, p.name, p.email, f.name AS firm_name FROM portal_login l"
        " JOIN payer p ON p.payer_id = l.payer_id JOIN firm f ON f.firm_id = p.firm_id"
        " WHERE p.email = ? COLLATE NOCASE AND l.state = 'on' ORDER BY p.payer_id LIMIT 5",
        "s", email));
    size_t index;
    json_t *payer;
    json_array_foreach (payers, index, payer)
    {
        int64_t payer_id = ml_logins_int (payer, "payer_id");
        bool failed = false;
        //  One reset mail a minute per account at most: the form cannot flood a mailbox.
        json_t *recent =
            ml_logins_row (ml_db_query (self->db,
                                        "SELECT token_id FROM portal_token WHERE payer_id = ?"
                                        " AND purpose = 'reset' AND created_at > ?",
                                        "ii", payer_id, ml_logins_now (self) - S_FORGOT_GAP),
                           &failed);
        if (recent || failed) {
            json_decref (recent);
            continue;
        }
        json_t *reply = NULL;
        if (ml_db_begin (self->db) != 0)
            continue;
        if (ml_logins_tokens_invalidate (self, payer_id, "reset", NULL, NULL) < 0 ||
            ml_logins_link_mail (
                self, payer, "reset", NULL, self->settings.reset_hours, "portal-reset",
                "set-password", "Your payment portal: reset your password",
                "Someone (we hope you) asked to reset your password. Choose a new one "
                "here:",
                &reply) < 0)
            ml_db_rollback (self->db);
        else {
            ml_logins_audit (self, payer_id, ml_logins_text (payer, "firm_id"), "reset asked",
                             client, NULL);
            if (ml_db_commit (self->db) != 0)
                ml_db_rollback (self->db);
        }
        json_decref (reply);
    }
    json_decref (payers);
    return ml_admin_ok (NULL);
}

json_t *ml_logins_portal_email_confirm (ml_logins_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    bool failed = false;
    json_t *found = ml_logins_token_find (self, token, &failed);
    if (failed)
        return ml_logins_store_failed (self, "portal-email-confirm");
    if (!found || !streq (ml_logins_text (found, "purpose"), "email")) {
        json_decref (found);
        return ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    }
    int64_t payer_id = ml_logins_int (found, "payer_id");
    char email[300];
    snprintf (email, sizeof email, "%s", ml_logins_text (found, "email"));
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
        return ml_logins_store_failed (self, "begin");
    }
    int64_t now = ml_logins_now (self);
    char now_text[32];
    ml_store_now (now_text, sizeof now_text);
    int64_t used = ml_db_execute (self->db,
                                  "UPDATE portal_token SET used_at = ? WHERE token_id = ?"
                                  " AND used_at IS NULL AND invalidated_at IS NULL",
                                  "ii", now, ml_logins_int (found, "token_id"));
    if (used == 0)
        reply = ml_admin_error ("%s", ML_LOGINS_LINK_FAILURE);
    else if (used < 0 ||
             ml_db_execute (self->db,
                            "UPDATE payer SET email = ?, updated_at = ? WHERE payer_id = ?", "ssi",
                            email, now_text, payer_id) != 1 ||
             ml_db_execute (self->db,
                            "UPDATE portal_login SET pending_email = NULL, updated_at = ?"
                            " WHERE payer_id = ?",
                            "ii", now, payer_id) != 1 ||
             ml_logins_tokens_invalidate (self, payer_id, "email", NULL, NULL) < 0 ||
             ml_logins_sessions_end (self, payer_id, "e-mail changed") < 0)
        reply = ml_logins_store_failed (self, "portal-email-confirm");
    else {
        json_t *payer = ml_logins_payer (self, payer_id, &failed);
        ml_logins_audit (self, payer_id, payer ? ml_logins_text (payer, "firm_id") : NULL,
                         "e-mail change confirmed", NULL, NULL);
        json_decref (payer);
        reply = ml_admin_ok (NULL);
    }
    json_decref (found);
    return ml_logins_finish (self, reply);
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
        return ml_logins_store_failed (self, "begin");
    bool failed = false;
    json_t *payer = ml_logins_payer (self, payer_id, &failed);
    json_t *reply = NULL;
    int64_t mail_id = -1, notice_id = 0;
    if (!payer)
        reply = failed ? ml_logins_store_failed (self, "e-mail change")
                       : ml_admin_error ("unknown payer %lld", (long long)payer_id);
    else if (ml_logins_tokens_invalidate (self, payer_id, "email", NULL, NULL) < 0 ||
             ml_db_execute (self->db,
                            "UPDATE portal_login SET pending_email = ?, updated_at = ?"
                            " WHERE payer_id = ?",
                            "sii", email, ml_logins_now (self), payer_id) != 1)
        reply = ml_logins_store_failed (self, "e-mail change");
    else
        mail_id =
            ml_logins_link_mail (self, payer, "email", email, S_EMAIL_HOURS, "portal-email-confirm",
                                 "confirm-email", "Your payment portal: confirm your new address",
                                 "The firm changed the e-mail address of your payment portal login "
                                 "to this one. Confirm it with this link; until then you sign in "
                                 "with your earlier address:",
                                 &reply);
    if (mail_id > 0) {
        //  The old address hears of it, so a change nobody asked for does not go unseen.
        char body[2048], key[64], error[300], hint[300];
        ml_logins_email_hint (email, hint, sizeof hint);
        snprintf (body, sizeof body,
                  "Hello %s,\n\nThe e-mail address of your payment portal login at %s is being "
                  "changed to %s. A confirmation link went to the new address; you keep signing "
                  "in with this address until it is used.\n\nIf you did not ask for this, please "
                  "contact %s.\n",
                  ml_logins_text (payer, "name"), ml_logins_text (payer, "firm_name"), hint,
                  ml_logins_text (payer, "firm_name"));
        snprintf (key, sizeof key, "portal-email-notice:%lld", (long long)mail_id);
        if (ml_mailer_enqueue (self->mailer, "portal-email-notice", key,
                               ml_logins_text (payer, "firm_id"), ml_logins_text (payer, "email"),
                               "Your payment portal: e-mail change", body, error,
                               sizeof error) != 1)
            reply = ml_admin_error ("the mail could not be queued: %s", error);
        else {
            json_t *row = ml_logins_row (
                ml_db_query (self->db, "SELECT mail_id FROM mail WHERE dedupe_key = ?", "s", key),
                &failed);
            notice_id = row ? ml_logins_int (row, "mail_id") : 0;
            json_decref (row);
            char detail[128];
            snprintf (detail, sizeof detail, "by %s", staff && *staff ? staff : "staff");
            ml_logins_audit (self, payer_id, ml_logins_text (payer, "firm_id"),
                             "e-mail change asked", NULL, detail);
            reply = ml_admin_ok (json_pack ("{s:{s:s, s:I, s:I}}", "email_change", "pending_email",
                                            email, "confirmation_mail_id", (json_int_t)mail_id,
                                            "notice_mail_id", (json_int_t)notice_id));
        }
    } else if (!reply)
        reply = ml_logins_store_failed (self, "e-mail change");
    json_decref (payer);
    return ml_logins_finish (self, reply);
}
