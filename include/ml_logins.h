/*  ml_logins: payers' login access to the portal: passwords, links, sessions, the audit.

    A login belongs to a payer's stable identity (payer_id), never to an e-mail address, so
    staff can correct an address without breaking it: the new address is confirmed by a link
    sent to it and the old one is told. Staff turn access on (a welcome mail with a
    single-use set-password link), off, reset (a reset link) or delete it; they never see or
    choose a password. Passwords are Argon2id hashes (libsodium, at least OWASP's minimum
    cost). Links and sessions are 32 random bytes shown as 43 base64url characters; the store
    keeps only their BLAKE2b digests, so a copy of the store alone lets nobody sign in. The
    CSRF token of a session is derived from the session token (keyed BLAKE2b), so it is not
    stored either. Failed sign-ins are throttled per account with a delay that grows, never a
    lockout; every failure gets the same answer and about the same time, known e-mail or
    not (the password is verified against a dummy hash when there is nothing to verify).
    Logins, failures, resets and e-mail changes go to the append-only table portal_audit.

    Ops (docs/portal-api.md): payer-access and portal-audit (operator), portal-token,
    portal-password-set, portal-sign-in, portal-forgot, portal-email-confirm (anonymous),
    portal-session, portal-sign-out, portal-invoices (payer). ml_admin decides who may call
    them; this class trusts the actor it is given.
*/
#ifndef ML_LOGINS_H_INCLUDED
#define ML_LOGINS_H_INCLUDED

#include "ml_config.h"
#include "ml_credentials.h"
#include "ml_mailer.h"
#include "ml_payers.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  Who asks: set by the core from the socket a request came in on and, on the API socket,
//  from the session the core found; never from the request itself.
typedef enum {
    ML_ACTOR_OPERATOR = 1,  //  the admin socket: the staff CLI, a trusted local operator
    ML_ACTOR_PAYER = 2,     //  the API socket with a live session
    ML_ACTOR_ANONYMOUS = 4, //  the API socket without one
    ML_ACTOR_STAFF = 8      //  the API socket with a live staff session (ml_staff)
} ml_actor_kind_t;

//  A staff member's role; each can do everything the ones before it can.
typedef enum {
    ML_ROLE_NONE = 0,
    ML_ROLE_READ = 1,
    ML_ROLE_BILLING = 2,
    ML_ROLE_ADMIN = 3
} ml_role_t;

typedef struct {
    ml_actor_kind_t kind;
    int64_t payer_id; //  payer: whose session it is
    char firm_id[64]; //  payer and staff: the firm
    char session[48]; //  payer and staff: the session token (to end it, to check its CSRF token)
    int64_t staff_id; //  staff: who
    ml_role_t role;   //  staff: the role
    char name[256];   //  staff: "NAME (#STAFF_ID)", what histories record
} ml_actor_t;

//  Length of a token as text (32 bytes, base64url without padding): ml_credentials'.
#define ML_LOGINS_TOKEN_LENGTH ML_CREDENTIALS_TOKEN_LENGTH

typedef struct {
    char public_url[512];       //  portal/public_url: the portal's address in mails ("" = none)
    int welcome_hours;          //  portal/welcome_hours, default 72
    int reset_hours;            //  portal/reset_hours, default 1
    int session_idle_minutes;   //  portal/session_idle_minutes, default 30
    int session_absolute_hours; //  portal/session_absolute_hours, default 12
} ml_logins_settings_t;

void ml_logins_settings_defaults (ml_logins_settings_t *settings);

//  Read the section "portal" of the core's configuration. Returns 0, or -1 + error.
int ml_logins_settings_load (ml_logins_settings_t *settings, ml_config_t *config, char *error,
                             size_t error_size);

typedef struct _ml_logins_t ml_logins_t;

//  Create the tables if needed. store, payers and mailer are borrowed and outlive this
//  object. Computes the dummy password hash (a fraction of a second). NULL + error on failure.
ml_logins_t *ml_logins_new (ml_store_t *store, ml_payers_t *payers, ml_mailer_t *mailer,
                            const ml_logins_settings_t *settings, char *error, size_t error_size);

//  Destroy the object (the tables stay). Idempotent; nulls the caller's pointer.
void ml_logins_destroy (ml_logins_t **self_p);

//  Use now (seconds since the epoch) as the time from here on; 0 goes back to the system
//  clock. For tests of expiry and throttling.
void ml_logins_set_clock (ml_logins_t *self, int64_t now);

//  Find a live session by its token: 1 live (actor becomes the payer, and the session's idle
//  clock starts again), 0 unknown, ended or expired (an expired one is ended now), -1 store
//  error. The token is never logged.
int ml_logins_session (ml_logins_t *self, const char *token, ml_actor_t *actor);

//  True if csrf is the CSRF token of the payer actor's session (constant-time compare).
bool ml_logins_csrf_ok (ml_logins_t *self, const ml_actor_t *actor, const char *csrf);

//  Run one of this class's ops for actor (already allowed by ml_admin). Returns the reply
//  (new reference), or NULL when op is not one of this class's.
json_t *ml_logins_execute (ml_logins_t *self, const char *op, const json_t *request,
                           const ml_actor_t *actor);

//  The payer's access state for payer-show: {"state": "off"|"invited"|"active"|"deleted",
//  "invitation": "sent"|"link used"|"password set"|null, and times}. New reference; NULL on
//  a store error.
json_t *ml_logins_access (ml_logins_t *self, int64_t payer_id);

//  For payer-list: set "login_access" on each payer of payers (objects with "payer_id") to
//  its access state as ml_logins_access names it ("active": the payer can sign in to the
//  portal; "invited", "off", "deleted"; no login at all is "off"), with one query per 16
//  payers. Returns 0, or -1 on a store error (logged).
int ml_logins_mark_access (ml_logins_t *self, json_t *payers);

//  1 if the payer has a login (access on or off, not deleted), 0 if not, -1 store error.
int ml_logins_has_login (ml_logins_t *self, int64_t payer_id);

//  Staff changed the e-mail of a payer who has a login (email already checked by
//  ml_payers_email_check): the login keeps the payer; a confirmation link goes to the new
//  address, a notice to the old one, and sign-in keeps the old address until the link is
//  used. Returns {"ok": true, "email_change": {...}} or an error reply (new reference).
json_t *ml_logins_email_change (ml_logins_t *self, int64_t payer_id, const char *email,
                                const char *staff);

void ml_logins_test (bool verbose);

#endif
