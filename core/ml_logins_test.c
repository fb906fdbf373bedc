/*  ml_logins' selftest (include/ml_logins.h): access, links, sign-in, throttling, sessions,
    e-mail changes and the audit, against a real store and outbox. */
#include "ml_logins_internal.h"
#include "ml_admin.h"
#include "ml_selftest_support.h"
#include "ml_table.h"

#include <assert.h>
#include <czmq.h>

static bool s_count_column (const char *name)
{
    return streq (name, "n");
}

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
    json_t *rows = ml_store_rows (ml_db_query (self->db, sql, "s", text), s_count_column);
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
    assert (streq (ml_logins_text (json_object_get (reply, "access"), "state"), "invited"));
    assert (streq (ml_logins_text (json_object_get (reply, "access"), "invitation"), "sent"));
    json_decref (reply);
    //  payer-list's Login Access column: invited is not yet able to sign in.
    json_t *marked = json_pack ("[{s:I}]", "payer_id", (json_int_t)pat);
    assert (ml_logins_mark_access (self, marked) == 0);
    assert (streq (ml_logins_text (json_array_get (marked, 0), "login_access"), "invited"));
    json_decref (marked);
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
                   ML_LOGINS_LINK_FAILURE));
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
        assert (streq (ml_logins_text (reply, "purpose"), "welcome"));
        assert (streq (ml_logins_text (reply, "firm_name"), "Acme LLP"));
        assert (streq (ml_logins_text (reply, "email_hint"), "p***@example.com"));
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
                   ML_LOGINS_LINK_FAILURE));
    //  Argon2id at OWASP's minimum cost at least.
    json_t *login = ml_logins_login (self, pat, &(bool){false});
    assert (strncmp (ml_logins_text (login, "password_hash"), "$argon2id$v=19$m=19456,t=2,p=1$",
                     31) == 0);
    json_decref (login);
    json_t *access = ml_logins_access (self, pat);
    assert (streq (ml_logins_text (access, "state"), "active"));
    assert (streq (ml_logins_text (access, "invitation"), "password set"));
    json_decref (access);
    //  The column again, over more than one batch of 16: Pat can sign in, the rest (no
    //  login, or no such payer) cannot.
    marked = json_array ();
    for (int64_t id = 1000; id < 1020; id++)
        json_array_append_new (
            marked, json_pack ("{s:I}", "payer_id", (json_int_t)(id == 1017 ? pat : id)));
    assert (ml_logins_mark_access (self, marked) == 0);
    for (size_t index = 0; index < 20; index++)
        assert (streq (ml_logins_text (json_array_get (marked, index), "login_access"),
                       index == 17 ? "active" : "off"));
    json_decref (marked);

    //  Sign-in: one answer for every failure.
    char session[ML_LOGINS_TOKEN_LENGTH + 1], csrf[ML_LOGINS_TOKEN_LENGTH + 1];
    reply = s_test_call (self, &anonymous,
                         "{\"op\": \"portal-sign-in\", \"email\": \"nobody@example.com\","
                         " \"password\": \"correct horse\"}");
    assert (streq (s_test_error (reply, buf, sizeof buf), ML_LOGINS_GENERIC_FAILURE));
    reply = s_test_call (self, &anonymous,
                         "{\"op\": \"portal-sign-in\", \"email\": \"sam@example.com\","
                         " \"password\": \"correct horse\"}");
    assert (streq (s_test_error (reply, buf, sizeof buf), ML_LOGINS_GENERIC_FAILURE));
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
    login = ml_logins_login (self, pat, &(bool){false});
    assert (ml_logins_int (login, "failures") == 0);
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
    assert (streq (ml_logins_text (json_array_get (listed, 0), "invoice_number"), "INV-1"));
    assert (streq (ml_logins_text (json_array_get (listed, 1), "invoice_number"), "INV-9"));
    assert (streq (ml_logins_text (json_array_get (listed, 2), "invoice_number"), "INV-2"));
    assert (!json_object_get (json_array_get (listed, 0), "source_id"));
    assert (json_integer_value (json_object_get (json_array_get (listed, 0), "available_minor")) ==
            10000);
    assert (json_array_size (ledgers) == 1);
    assert (streq (ml_logins_text (json_array_get (ledgers, 0), "matter_number"), "M-1"));
    //  Money is a JSON integer here as everywhere in the API, trust balances included.
    assert (json_is_integer (json_object_get (json_array_get (ledgers, 0), "balance_minor")));
    assert (streq (ml_logins_text (reply, "firm_name"), "Acme LLP"));
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
    assert (streq (ml_logins_text (reply, "csrf"), csrf));
    assert (streq (ml_logins_text (json_object_get (reply, "payer"), "email"), "pat@example.com"));
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
                   ML_LOGINS_LINK_FAILURE));
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
                   ML_LOGINS_LINK_FAILURE));
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
    assert (streq (ml_logins_text (json_object_get (reply, "email_change"), "pending_email"),
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
    assert (streq (ml_logins_text (access, "state"), "deleted"));
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
    //  A payer that is not there is unknown, not a payer without events.
    reply = s_test_call (self, &operator, "{\"op\": \"portal-audit\", \"payer_id\": 99999}");
    assert (json_is_false (json_object_get (reply, "ok")) &&
            streq (json_string_value (json_object_get (reply, "error")), "unknown payer 99999"));
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
