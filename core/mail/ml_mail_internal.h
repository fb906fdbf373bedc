/*  ml_mailer's pieces share these (core/mail only): limits, the outbox key, and the
    helpers one piece keeps and another uses. */
#ifndef ML_MAIL_INTERNAL_H_INCLUDED
#define ML_MAIL_INTERNAL_H_INCLUDED

#include "ml_mailer.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_MAIL_ERROR_MAX   300          //  last_error as stored: enough for a server's reply line
#define ML_MAIL_MESSAGE_MAX (512 * 1024) //  a whole message: headers + a 64 KiB body in QP
//  A sealed body: this prefix, then base64 of nonce || XSalsa20-Poly1305 box. The box holds
//  "<message-id>\n<recipient>\n" before the body, so a body is opened only for the row it
//  was sealed for: someone who can write the store but has no key cannot move a link's
//  e-mail to another recipient.
#define ML_MAIL_SEALED    "sealed1:"
#define ML_MAIL_KEY_BYTES crypto_secretbox_KEYBYTES

//  ml_mail_text.c ------------------------------------------------------------------------

//  A message being written: bytes with a terminating zero, capped at ML_MAIL_MESSAGE_MAX.
typedef struct {
    char *data;
    size_t size, capacity;
    bool full; //  something did not fit in ML_MAIL_MESSAGE_MAX
} ml_mail_text_t;

//  Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool ml_mail_utf8_valid (const char *text);

//  Any C0 control character or DEL: in a header value a CR or LF would end the header and
//  let the value add others (header injection); the rest garble what people read.
bool ml_mail_has_control (const char *text);

//  One addr-spec in its plain form: a dot-atom local part (no quoting), '@', and a domain
//  of two or more labels of letters, digits and hyphens. Nothing else: no display name, no
//  second address, no spaces or control characters, ASCII only.
bool ml_mail_is_address (const char *address);

//  A mail kind: 1 to ML_MAILER_KIND_MAX lower-case letters, digits, "_" and "-".
bool ml_mail_is_kind (const char *kind);

//  A dedupe key: 1 to ML_MAILER_KEY_MAX printable ASCII characters, no space.
bool ml_mail_is_key (const char *key);

//  A body is UTF-8 text: tabs and line breaks (LF or CRLF) are its only control characters.
bool ml_mail_is_body_text (const char *body);

//  Characters (not bytes) of valid UTF-8, as SQL's length() counts them.
size_t ml_mail_utf8_chars (const char *text);

//  Milliseconds since the epoch (UTC).
int64_t ml_mail_now_ms (void);

//  A time as the store writes it: text that sorts in time order.
void ml_mail_timestamp (int64_t ms, char *buf, size_t size);

//  The Date header (RFC 5322) for a stored timestamp. English names whatever the locale.
void ml_mail_date (const char *stored, char *buf, size_t size);

//  Append bytes to a message being written; sets full, and adds nothing more, past
//  ML_MAIL_MESSAGE_MAX.
void ml_mail_text_add (ml_mail_text_t *text, const char *bytes, size_t length);

//  Append a string.
void ml_mail_text_adds (ml_mail_text_t *text, const char *string);

//  Append bytes in base64 (RFC 4648, with padding).
void ml_mail_base64 (ml_mail_text_t *text, const unsigned char *bytes, size_t length);

//  Header text: as is when it is printable ASCII that cannot be mistaken for an encoded
//  word, else RFC 2047 encoded words ("=?UTF-8?B?...?="), each at most 75 characters and
//  holding whole characters, folded onto continuation lines.
void ml_mail_header_words (ml_mail_text_t *text, const char *value);

//  The From display name: a quoted string when ASCII, encoded words otherwise.
void ml_mail_display_name (ml_mail_text_t *text, const char *name);

//  The body in quoted-printable (RFC 2045 6.7): any UTF-8, any line length, survives every
//  relay (8bit would need 8BITMIME and lines under 998 bytes). Line breaks become CRLF, and
//  the message ends with one. Lines that start with '.' are left alone: libcurl doubles the
//  dot on the wire (SMTP transparency) and the server removes it, as the selftest checks.
void ml_mail_quoted_printable (ml_mail_text_t *text, const char *body);

//  The whole message. Everything in it comes from the row, so an attempt after a crash
//  sends the same bytes (the Date is the time of enqueue).
void ml_mail_message (ml_mail_text_t *text, const ml_mailer_settings_t *settings,
                      const char *message_id, const char *recipient, const char *subject,
                      const char *created_at, const char *body);

//  ml_mail_seal.c ------------------------------------------------------------------------

//  Read the key: a regular file of this user's that nobody else may read, of exactly
//  ML_MAIL_KEY_BYTES bytes. Returns 0, or -1 with a message that names the file and the fix.
int ml_mail_key_read (const char *path, unsigned char *key, char *error, size_t error_size);

//  Seal a body for its row. Returns the text to store (caller frees).
char *ml_mail_seal (const unsigned char *key, const char *message_id, const char *recipient,
                    const char *body);

//  Open a sealed body of the row (message_id, recipient). Returns the body (caller wipes
//  and frees) or NULL: not sealed, damaged, sealed for another row, or under another key.
char *ml_mail_open (const unsigned char *key, const char *message_id, const char *recipient,
                    const char *sealed);

//  ml_mail_settings.c --------------------------------------------------------------------

//  Split smtp_url into its parts. Returns 0, or -1 with a message. The URL may hold no user
//  or password: those live in username and password_file, so the URL can be logged.
int ml_mail_parse_url (const char *url, bool *implicit_tls, char *host, size_t host_size,
                       char *error, size_t error_size);

//  A host on this machine, where a password may travel without TLS.
bool ml_mail_is_loopback (const char *host);

//  ml_mailer.c ---------------------------------------------------------------------------

//  Create the outbox table if needed, on db (the core's connection or the sender's own).
//  Returns 0, or -1 + error.
int ml_mail_schema (ml_db_t *db, char *error, size_t error_size);

//  Read a mail's body back, in pieces that fit the ODBC layer's columns, in one query.
//  Returns the body (caller frees) or NULL.
char *ml_mail_load_body (ml_db_t *db, int64_t mail_id, int64_t characters);

//  The outbox's integer columns, for ml_store_rows.
bool ml_mail_integer_column (const char *name);

//  ml_mail_sender.c ----------------------------------------------------------------------

//  Wait after the attempts-th failed attempt: retry_base_ms doubling, capped.
int64_t ml_mail_backoff_ms (const ml_mailer_settings_t *settings, int64_t attempts);

#endif
