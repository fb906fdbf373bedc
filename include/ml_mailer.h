/*  ml_mailer: e-mail from the core (receipts, payment links, notices), through a durable outbox.

    Two halves share the table "mail" in the core's store:

    - ml_mailer_t, on the core's own connection, puts mails in the outbox. ml_mailer_enqueue
      writes one row and neither begins nor commits: the caller makes it part of the
      transaction that records the event, so a posting result and its notice are stored
      together or not at all. A dedupe key ("receipt:<posting uuid>") makes a second enqueue
      of the same notice a no-op, and the Message-ID is fixed at enqueue.
    - ml_mailer_actor, a service with its own connection to the store, sends what is due over
      SMTP with libcurl, one mail at a time, so the core's thread never waits for a mail
      server. After a 2xx at the end of DATA the row becomes "sent" at once; a temporary
      failure is retried with an exponential back-off; a permanent rejection (5xx to the
      recipient or the message), or too many attempts, makes it "failed", for staff to see.

    Delivery is at least once, and only once except in one window: when the server has
    accepted a message but the row could not be marked sent (the core died, or the answer
    was lost on the way back), the mail is sent again, byte for byte the same, with the same
    Message-ID, so receivers can recognise the repeat. docs/mail.md has the details.

    The store never holds a body in clear text: enqueue seals it (libsodium secretbox, a
    random nonce per mail, bound to the mail's Message-ID and recipient) under the outbox
    key, a file beside the core's certificate, and the actor opens it only to send. A copy
    of the store alone cannot read a payment link's token (docs/mail.md, "Secrets in the
    outbox").

    Addresses are plain ASCII addr-specs (local@domain); subjects and bodies are UTF-8 text.
*/
#ifndef ML_MAILER_H_INCLUDED
#define ML_MAILER_H_INCLUDED

#include "ml_config.h"
#include "ml_odbc.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Limits of what the outbox takes, in bytes (without a terminating zero).
#define ML_MAILER_ADDRESS_MAX 254   //  RFC 5321 path limit
#define ML_MAILER_SUBJECT_MAX 200   //  UTF-8, one line
#define ML_MAILER_BODY_MAX    65536 //  UTF-8 text/plain
#define ML_MAILER_KEY_MAX     200   //  dedupe key: printable ASCII without spaces
#define ML_MAILER_KIND_MAX                                                                         \
    32 //  a-z, 0-9, '_' and '-': "receipt", "payment_link",
       //  "posting_rejected", "autopay_failed"

typedef struct _ml_mailer_t ml_mailer_t;

//  Create the outbox table if needed, on a borrowed connection (the store outlives this
//  object; call it outside a transaction, it commits its own). outbox_key is the path of the
//  outbox key (ml_mailer_outbox_key_path): 32 random bytes in a file of this user's that
//  nobody else may read, made here (mode 0600) when there is no file at all; it seals every
//  body before it is stored (docs/mail.md, "Secrets in the outbox"). Bodies an older release
//  stored in clear text are sealed now. NULL + error on failure (the key unreadable,
//  readable by others, of the wrong size: the message names the file and the fix).
ml_mailer_t *ml_mailer_new (ml_odbc_t *odbc, const char *outbox_key, char *error,
                            size_t error_size);

//  Where the outbox key lives: mail/outbox_key, or else outbox.key in the directory of
//  core/certificate. Returns 0 with the path, or -1 + error (neither key set, too long).
int ml_mailer_outbox_key_path (ml_config_t *config, char *path, size_t size, char *error,
                               size_t error_size);

//  Make a new outbox key at path (mode 0600, 32 bytes from the system's CSPRNG); refuses
//  to replace an existing file, as mail sealed under it could not be sent any more.
//  Returns 0, or -1 + error.
int ml_mailer_outbox_key_make (const char *path, char *error, size_t error_size);

//  A key of 32 bytes for another secret kept in the store (a staff member's TOTP secret),
//  derived from the outbox key under label: it lives outside the store as the outbox key
//  does, and is never the key that seals mail.
void ml_mailer_subkey (ml_mailer_t *self, const char *label, unsigned char key[32]);

//  Destroy the object (the table and the connection stay). Idempotent; nulls the pointer.
void ml_mailer_destroy (ml_mailer_t **self_p);

//  Put a mail in the outbox, due now. kind names what it is (ML_MAILER_KIND_MAX), dedupe_key
//  the event it is about (one mail per key, ever), firm_id an existing firm, recipient one
//  address. Header values may not hold CR, LF or any other control character (a line break
//  would let the value add headers); the body may hold tabs and line breaks (LF or CRLF).
//  Runs in the caller's transaction if one is open (it never begins, commits or rolls back).
//  Returns 1 queued, 0 already queued (a mail with that dedupe key exists, whatever it says:
//  the first one stays), -1 refused or a store error, with a message in error (which never
//  quotes the subject or body). After committing, poke the actor with "SEND".
int ml_mailer_enqueue (ml_mailer_t *self, const char *kind, const char *dedupe_key,
                       const char *firm_id, const char *recipient, const char *subject,
                       const char *body, char *error, size_t error_size);

//  The outbox for the admin API, newest first: mail_id, kind, dedupe_key, message_id,
//  firm_id, recipient, subject, state, attempts, last_error, created_at, next_attempt_at,
//  sent_at, updated_at (never the body). state ("pending", "sent", "failed") and firm_id
//  filter when not NULL; limit is 1 to 1000. Returns a JSON array (new reference), or NULL
//  on a store error.
json_t *ml_mailer_list (ml_mailer_t *self, const char *state, const char *firm_id, int limit);

//  Give a failed mail another round of attempts (after staff fixed the address or the mail
//  settings): it becomes pending, due now, with its attempts reset. Same Message-ID. Commits
//  its own transaction. Returns 1 done, 0 no failed mail with that id, -1 store error.
int ml_mailer_retry (ml_mailer_t *self, int64_t mail_id);

//  Admin ops of this class: "mail-list" (optional "state", "firm", "limit") answers
//  {"ok": true, "mails": [...]}; "mail-retry" ("mail_id") answers {"ok": true, "mail": {...}}.
//  Returns the reply (new reference), or NULL when op is not one of these, as
//  ml_payers_execute does.
json_t *ml_mailer_execute (ml_mailer_t *self, const char *op, const json_t *request);

//  How the actor sends. password is a secret: wipe settings with ml_mailer_settings_wipe
//  once the actor has started (it keeps its own copy and wipes that when it ends).
typedef struct {
    char store[1024];     //  ODBC connection string of the core's store (its own connection)
    char outbox_key[512]; //  the outbox key's file (ml_mailer_outbox_key_path)
    char smtp_url[256];   //  smtp://host[:port][/ehlo-name] (STARTTLS) or smtps://... (TLS)
    bool starttls;        //  smtp:// only: require STARTTLS (never fall back to clear text)
    char ca_file[512];    //  CA certificates to verify the server with ("" = the system's)
    char from[ML_MAILER_ADDRESS_MAX + 1]; //  envelope sender and From address
    char from_name[129];                  //  From display name, UTF-8 ("" = none)
    char username[256];                   //  AUTH user ("" = no AUTH)
    char password[256];                   //  AUTH password, from password_file; never logged
    int connect_timeout_ms;               //  longest wait for a connection, per attempt
    int timeout_ms;                       //  longest a whole attempt may take
    int retry_base_ms;                    //  wait after the first failed attempt; doubles
    int retry_max_ms;                     //  the longest wait between two attempts
    int max_attempts;                     //  then a mail that still fails becomes "failed"
    int poll_ms;                          //  how often the outbox is looked at without "SEND"
} ml_mailer_settings_t;

//  Defaults: starttls on, connect 10 s, attempt 60 s, back-off 30 s doubling to 1 h, 30
//  attempts (about a day), poll every 5 s. store, smtp_url and from are empty.
void ml_mailer_settings_defaults (ml_mailer_settings_t *settings);

//  Read the section "mail" of the core's configuration (docs/mail.md): smtp_url, from,
//  from_name, starttls (required or no), ca_file, username, password_file, connect_timeout_ms,
//  timeout_ms, retry_base_ms, retry_max_ms, max_attempts, poll_ms, outbox_key (the path, with
//  ml_mailer_outbox_key_path's default); and the store's connection from store/connection. The
//  password comes from password_file, a regular file of this user's that nobody else may read (mode
//  0600 or 0400). Returns 0, or -1 with a message for the person who wrote the file in error (never
//  the password).
int ml_mailer_settings_load (ml_mailer_settings_t *settings, ml_config_t *config, char *error,
                             size_t error_size);

//  Check settings made by hand (the actor checks them again). Returns 0, or -1 + error.
int ml_mailer_settings_check (const ml_mailer_settings_t *settings, char *error, size_t error_size);

//  Overwrite the password held in settings.
void ml_mailer_settings_wipe (ml_mailer_settings_t *settings);

//  The sending service. Start it with ml_service_start (ml_mailer_actor, &settings): args is
//  an ml_mailer_settings_t *, copied before the actor reports; NULL when the settings are
//  invalid or the store cannot be opened (logged). Commands on its pipe: "SEND" (look at the
//  outbox now, e.g. after committing a transaction that enqueued mail) and "$TERM" (a mail
//  in flight is abandoned within about a second and stays due, without counting an attempt).
void ml_mailer_actor (zsock_t *pipe, void *args);

void ml_mailer_test (bool verbose);

#endif
