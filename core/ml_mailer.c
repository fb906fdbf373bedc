/*  ml_mailer: e-mail through a durable outbox, sent over SMTP with libcurl.
    See include/ml_mailer.h and docs/mail.md. */
#include "ml_mailer.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_selftest_support.h"
#include "ml_service.h"
#include "ml_store.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_FIRM_MAX    63
#define S_ERROR_MAX   300 //  last_error as stored: enough for a server's reply line
#define S_BATCH       16  //  due mails read per query
#define S_UNRECORDED  64  //  sent mails whose row could not be updated yet
#define S_LIST_MAX    1000
#define S_MESSAGE_MAX (512 * 1024) //  a whole message: headers + a 64 KiB body in QP
//  The body is read back in pieces of this many characters. The ODBC layer gives a computed
//  column at least 255 bytes, and 64 characters of UTF-8 take at most 256.
#define S_PART_CHARS 64
//  A claimed mail is not due again for the longest an attempt may take plus this margin,
//  so a core that dies while sending leaves the mail due again, later.
#define S_LEASE_MARGIN_MS 60000
//  A sealed body: this prefix, then base64 of nonce || XSalsa20-Poly1305 box. The box holds
//  "<message-id>\n<recipient>\n" before the body, so a body is opened only for the row it
//  was sealed for: someone who can write the store but has no key cannot move a link's
//  e-mail to another recipient.
#define S_SEALED    "sealed1:"
#define S_KEY_BYTES crypto_secretbox_KEYBYTES
#define S_NONCE     crypto_secretbox_NONCEBYTES
#define S_BOX_MAC   crypto_secretbox_MACBYTES
#define S_KEY_FILE  "outbox.key" //  next to the core's certificate, unless mail/outbox_key

static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS mail ("
    " mail_id INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key TEXT NOT NULL UNIQUE,"
    " message_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), recipient TEXT NOT NULL,"
    " subject TEXT NOT NULL, body TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0), next_attempt_at TEXT,"
    " last_error TEXT, created_at TEXT NOT NULL, sent_at TEXT, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mail_due ON mail (state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS mail_firm ON mail (firm_id, state, mail_id)",
};

#define S_LIST_SQL                                                                                 \
    "SELECT mail_id, kind, dedupe_key, message_id, firm_id, recipient, subject, state,"            \
    " attempts, last_error, created_at, next_attempt_at, sent_at, updated_at FROM mail"

struct _ml_mailer_t {
    ml_db_t *db;                    //  borrowed from the store
    unsigned char key[S_KEY_BYTES]; //  the outbox key: seals bodies before they are stored
};

//  ---------------------------------------------------------------------------------------
//  Checking what goes into a mail

//  Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
static bool s_utf8_valid (const char *text)
{
    const unsigned char *cursor = (const unsigned char *)text;
    while (*cursor) {
        unsigned char lead = *cursor;
        size_t length;
        uint32_t point;
        if (lead < 0x80) {
            cursor++;
            continue;
        } else if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
            point = lead & 0x1f;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            point = lead & 0x0f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            point = lead & 0x07;
        } else
            return false;
        for (size_t index = 1; index < length; index++) {
            if ((cursor[index] & 0xc0) != 0x80)
                return false;
            point = (point << 6) | (cursor[index] & 0x3f);
        }
        if ((length == 3 && point < 0x800) || (length == 4 && point < 0x10000) ||
            (point >= 0xd800 && point <= 0xdfff) || point > 0x10ffff)
            return false;
        cursor += length;
    }
    return true;
}

//  Any C0 control character or DEL: in a header value a CR or LF would end the header and
//  let the value add others (header injection); the rest garble what people read.
static bool s_has_control (const char *text)
{
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor == 0x7f)
            return true;
    return false;
}

//  One addr-spec in its plain form: a dot-atom local part (no quoting), '@', and a domain
//  of two or more labels of letters, digits and hyphens. Nothing else: no display name, no
//  second address, no spaces or control characters, ASCII only.
static bool s_is_address (const char *address)
{
    static const char *atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "!#$%&'*+-/=?^_`{|}~";
    size_t length = strlen (address);
    const char *at = strchr (address, '@');
    if (length > ML_MAILER_ADDRESS_MAX || !at || strchr (at + 1, '@') || at == address ||
        at - address > 64)
        return false;
    for (const char *cursor = address; cursor < at; cursor++) {
        if (*cursor == '.') {
            if (cursor == address || cursor + 1 == at || cursor[1] == '.')
                return false;
        } else if (!strchr (atext, *cursor))
            return false;
    }
    size_t labels = 0, label = 0;
    for (const char *cursor = at + 1;; cursor++) {
        if (*cursor == '.' || *cursor == 0) {
            if (label == 0 || label > 63 || cursor[-1] == '-')
                return false;
            labels++;
            label = 0;
            if (*cursor == 0)
                break;
        } else if ((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
                   (*cursor >= '0' && *cursor <= '9') || (*cursor == '-' && label > 0))
            label++;
        else
            return false;
    }
    return labels >= 2;
}

static bool s_is_kind (const char *kind)
{
    size_t length = strlen (kind);
    if (length == 0 || length > ML_MAILER_KIND_MAX)
        return false;
    for (const char *cursor = kind; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= '0' && *cursor <= '9') ||
              *cursor == '_' || *cursor == '-'))
            return false;
    return true;
}

static bool s_is_key (const char *key)
{
    size_t length = strlen (key);
    if (length == 0 || length > ML_MAILER_KEY_MAX)
        return false;
    for (const unsigned char *cursor = (const unsigned char *)key; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f)
            return false;
    return true;
}

//  A body is UTF-8 text: tabs and line breaks (LF or CRLF) are its only control characters.
static bool s_is_body_text (const char *body)
{
    for (const unsigned char *cursor = (const unsigned char *)body; *cursor; cursor++) {
        if (*cursor == '\r' && cursor[1] != '\n')
            return false;
        if ((*cursor < 0x20 && *cursor != '\t' && *cursor != '\n' && *cursor != '\r') ||
            *cursor == 0x7f)
            return false;
    }
    return true;
}

//  Characters (not bytes) of valid UTF-8, as SQL's length() counts them.
static size_t s_utf8_chars (const char *text)
{
    size_t count = 0;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        count += (*cursor & 0xc0) != 0x80;
    return count;
}

//  ---------------------------------------------------------------------------------------
//  Time, as the store writes it (YYYY-MM-DDTHH:MM:SS.mmmZ, UTC): text that sorts in time
//  order, so "due" is a string comparison in SQL.

static int64_t s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void s_timestamp (int64_t ms, char *buf, size_t size)
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    char whole[24];
    strftime (whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buf, size, "%s.%03dZ", whole, (int)(ms % 1000));
}

//  The Date header (RFC 5322) for a stored timestamp. English names whatever the locale.
static void s_mail_date (const char *stored, char *buf, size_t size)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm utc = {0};
    time_t seconds = time (NULL);
    if (stored && sscanf (stored, "%4d-%2d-%2dT%2d:%2d:%2d", &utc.tm_year, &utc.tm_mon,
                          &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec) == 6) {
        utc.tm_year -= 1900;
        utc.tm_mon -= 1;
        seconds = timegm (&utc);
    }
    gmtime_r (&seconds, &utc);
    snprintf (buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[utc.tm_wday % 7],
              utc.tm_mday, months[utc.tm_mon % 12], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
              utc.tm_sec);
}

//  ---------------------------------------------------------------------------------------
//  The outbox key and sealed bodies

int ml_mailer_outbox_key_path (ml_config_t *config, char *path, size_t size, char *error,
                               size_t error_size)
{
    assert (config && path);
    const char *value = ml_config_string (config, "mail/outbox_key", "");
    const char *certificate = ml_config_string (config, "core/certificate", "");
    int written;
    if (*value)
        written = snprintf (path, size, "%s", value);
    else if (*certificate) {
        const char *slash = strrchr (certificate, '/');
        written = slash ? snprintf (path, size, "%.*s/%s", (int)(slash - certificate), certificate,
                                    S_KEY_FILE)
                        : snprintf (path, size, "%s", S_KEY_FILE);
    } else {
        snprintf (error, error_size,
                  "mail/outbox_key is required (by default it is %s next to core/certificate, "
                  "which is not set either)",
                  S_KEY_FILE);
        return -1;
    }
    if (written < 0 || (size_t)written >= size) {
        snprintf (error, error_size, "mail/outbox_key is longer than %zu bytes", size - 1);
        return -1;
    }
    return 0;
}

//  Read the key: a regular file of this user's that nobody else may read, of exactly
//  S_KEY_BYTES bytes. Returns 0, or -1 with a message that names the file and the fix.
static int s_key_read (const char *path, unsigned char *key, char *error, size_t error_size)
{
    int fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf (error, error_size, "mail/outbox_key: cannot read %s: %s", path, strerror (errno));
        return -1;
    }
    struct stat info;
    int rc = -1;
    if (fstat (fd, &info) != 0 || !S_ISREG (info.st_mode))
        snprintf (error, error_size, "mail/outbox_key: %s is not a regular file", path);
    else if (info.st_uid != geteuid ())
        snprintf (error, error_size,
                  "mail/outbox_key: %s belongs to user %u, not to the user the core runs as "
                  "(%u): chown it to that user",
                  path, (unsigned)info.st_uid, (unsigned)geteuid ());
    else if (info.st_mode & 077)
        snprintf (error, error_size,
                  "mail/outbox_key: %s has mode %04o, which lets other users read the outbox "
                  "key: chmod 600 %s",
                  path, (unsigned)(info.st_mode & 07777), path);
    else if (info.st_size != S_KEY_BYTES)
        snprintf (error, error_size,
                  "mail/outbox_key: %s holds %lld bytes, not the %d of an outbox key: restore "
                  "it from the backup kept with the core's certificate (a new key cannot open "
                  "the mail already waiting)",
                  path, (long long)info.st_size, S_KEY_BYTES);
    else if (read (fd, key, S_KEY_BYTES) != S_KEY_BYTES)
        snprintf (error, error_size, "mail/outbox_key: cannot read %s: %s", path, strerror (errno));
    else
        rc = 0;
    close (fd);
    if (rc != 0)
        sodium_memzero (key, S_KEY_BYTES);
    return rc;
}

int ml_mailer_outbox_key_make (const char *path, char *error, size_t error_size)
{
    assert (path);
    if (sodium_init () < 0) {
        snprintf (error, error_size, "cannot initialise libsodium");
        return -1;
    }
    //  O_EXCL: a key is never replaced, as mail sealed under it could not be sent any more.
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf (error, error_size, "cannot create the outbox key %s: %s", path, strerror (errno));
        return -1;
    }
    unsigned char key[S_KEY_BYTES];
    randombytes_buf (key, sizeof key);
    bool ok = fchmod (fd, 0600) == 0 && write (fd, key, sizeof key) == (ssize_t)sizeof key &&
              fsync (fd) == 0;
    int saved = errno;
    sodium_memzero (key, sizeof key);
    if (close (fd) != 0)
        ok = false;
    if (!ok) {
        unlink (path);
        snprintf (error, error_size, "cannot write the outbox key %s: %s", path, strerror (saved));
        return -1;
    }
    return 0;
}

//  Seal a body for its row. Returns the text to store (caller frees).
static char *s_seal (const unsigned char *key, const char *message_id, const char *recipient,
                     const char *body)
{
    size_t length = strlen (message_id) + strlen (recipient) + strlen (body) + 2;
    unsigned char *plain = malloc (length + 1);
    unsigned char *box = malloc (S_NONCE + S_BOX_MAC + length);
    assert (plain && box);
    snprintf ((char *)plain, length + 1, "%s\n%s\n%s", message_id, recipient, body);
    randombytes_buf (box, S_NONCE);
    crypto_secretbox_easy (box + S_NONCE, plain, length, box, key);
    sodium_memzero (plain, length);
    free (plain);
    size_t box_size = S_NONCE + S_BOX_MAC + length;
    size_t size =
        strlen (S_SEALED) + sodium_base64_ENCODED_LEN (box_size, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc (size);
    assert (text);
    memcpy (text, S_SEALED, strlen (S_SEALED));
    sodium_bin2base64 (text + strlen (S_SEALED), size - strlen (S_SEALED), box, box_size,
                       sodium_base64_VARIANT_ORIGINAL);
    free (box);
    return text;
}

//  Open a sealed body of the row (message_id, recipient). Returns the body (caller wipes
//  and frees) or NULL: not sealed, damaged, sealed for another row, or under another key.
static char *s_open (const unsigned char *key, const char *message_id, const char *recipient,
                     const char *sealed)
{
    if (strncmp (sealed, S_SEALED, strlen (S_SEALED)) != 0)
        return NULL;
    const char *text = sealed + strlen (S_SEALED);
    size_t text_length = strlen (text), box_size = 0;
    unsigned char *box = malloc (text_length / 4 * 3 + 3);
    assert (box);
    if (sodium_base642bin (box, text_length / 4 * 3 + 3, text, text_length, NULL, &box_size, NULL,
                           sodium_base64_VARIANT_ORIGINAL) != 0 ||
        box_size < S_NONCE + S_BOX_MAC) {
        free (box);
        return NULL;
    }
    size_t length = box_size - S_NONCE - S_BOX_MAC;
    char *plain = malloc (length + 1);
    assert (plain);
    int opened = crypto_secretbox_open_easy ((unsigned char *)plain, box + S_NONCE,
                                             box_size - S_NONCE, box, key);
    free (box);
    plain[opened == 0 ? length : 0] = 0;
    size_t id_length = strlen (message_id), recipient_length = strlen (recipient);
    if (opened != 0 || length < id_length + recipient_length + 2 ||
        memcmp (plain, message_id, id_length) != 0 || plain[id_length] != '\n' ||
        memcmp (plain + id_length + 1, recipient, recipient_length) != 0 ||
        plain[id_length + 1 + recipient_length] != '\n') {
        sodium_memzero (plain, length);
        free (plain);
        return NULL;
    }
    size_t skip = id_length + recipient_length + 2;
    memmove (plain, plain + skip, length - skip + 1);
    sodium_memzero (plain + length - skip + 1, skip);
    return plain;
}

static char *s_load_body (ml_db_t *db, int64_t mail_id, int64_t characters);

static bool s_old_body_integer (const char *name)
{
    return streq (name, "mail_id") || streq (name, "characters");
}

//  Seal the bodies an older release stored in clear text (sent ones too: history must not
//  keep a token either). SQLite's secure_delete overwrites the old text in the file as the
//  rows are rewritten. Returns 0, or -1 with a message.
static int s_seal_old_bodies (ml_mailer_t *self, char *error, size_t error_size)
{
    ml_db_query_t *query = ml_db_query (self->db,
                                        "SELECT mail_id, message_id, recipient,"
                                        " length (body) AS characters FROM mail"
                                        " WHERE substr (body, 1, 8) <> ?",
                                        "s", S_SEALED);
    json_t *rows = ml_store_rows (query, s_old_body_integer);
    if (!rows) {
        snprintf (error, error_size, "cannot read the outbox: %s", ml_db_error (self->db)->message);
        return -1;
    }
    if (json_array_size (rows) == 0) {
        json_decref (rows);
        return 0;
    }
    ml_db_execute (self->db, "PRAGMA secure_delete = ON", NULL);
    bool ok = ml_db_begin (self->db) == 0;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (!ok)
            break;
        int64_t mail_id = json_integer_value (json_object_get (row, "mail_id"));
        char *body = s_load_body (self->db, mail_id,
                                  json_integer_value (json_object_get (row, "characters")));
        const char *message_id = json_string_value (json_object_get (row, "message_id"));
        const char *recipient = json_string_value (json_object_get (row, "recipient"));
        ok = body && message_id && recipient;
        char *sealed = ok ? s_seal (self->key, message_id, recipient, body) : NULL;
        ok = ok && ml_db_execute (self->db, "UPDATE mail SET body = ? WHERE mail_id = ?", "si",
                                  sealed, mail_id) == 1;
        if (body)
            sodium_memzero (body, strlen (body));
        free (body);
        free (sealed);
    }
    ok = ok && ml_db_commit (self->db) == 0;
    if (!ok) {
        snprintf (error, error_size, "cannot seal the outbox's older mails: %s",
                  ml_db_error (self->db)->message);
        ml_db_rollback (self->db);
    } else
        ml_log (ML_LOG_NOTICE, "mail: sealed %zu mails an older release kept in clear text",
                json_array_size (rows));
    ml_db_execute (self->db, "PRAGMA secure_delete = OFF", NULL);
    json_decref (rows);
    return ok ? 0 : -1;
}

//  ---------------------------------------------------------------------------------------
//  The outbox, on the core's connection

ml_mailer_t *ml_mailer_new (ml_db_t *db, const char *outbox_key, char *error, size_t error_size)
{
    assert (db);
    if (!outbox_key || !*outbox_key) {
        snprintf (error, error_size, "mail/outbox_key: no outbox key file is configured");
        return NULL;
    }
    if (sodium_init () < 0) {
        snprintf (error, error_size, "cannot initialise libsodium");
        return NULL;
    }
    //  First start: make the key. Only when there is no file at all (lstat, so a dangling
    //  link is not followed): a key that exists but cannot be read is an error, never
    //  replaced.
    struct stat info;
    if (lstat (outbox_key, &info) != 0 && errno == ENOENT) {
        if (ml_mailer_outbox_key_make (outbox_key, error, error_size) != 0)
            return NULL;
        ml_log (ML_LOG_NOTICE,
                "mail: made a new outbox key %s: back it up with the core's certificate (mail "
                "waiting in the outbox can be sent only with it)",
                outbox_key);
    }
    ml_mailer_t *self = calloc (1, sizeof (ml_mailer_t));
    assert (self);
    self->db = db;
    if (s_key_read (outbox_key, self->key, error, error_size) != 0 ||
        ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "mail table", error,
                         error_size) != 0 ||
        s_seal_old_bodies (self, error, error_size) != 0)
        ml_mailer_destroy (&self);
    return self;
}

void ml_mailer_subkey (ml_mailer_t *self, const char *label, unsigned char key[32])
{
    assert (self && label);
    //  Keyed BLAKE2b of the label under the outbox key: one-way, so the subkey never opens mail.
    crypto_generichash (key, 32, (const unsigned char *)label, strlen (label), self->key,
                        sizeof self->key);
}

void ml_mailer_destroy (ml_mailer_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_memzero ((*self_p)->key, sizeof (*self_p)->key);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The first problem with a mail's fields, or NULL. Messages name the field, never quote it:
//  a subject or body may hold personal data, and a refused value may be an attack.
static const char *s_refusal (const char *kind, const char *dedupe_key, const char *firm_id,
                              const char *recipient, const char *subject, const char *body)
{
    if (!kind || !s_is_kind (kind))
        return "kind must be 1 to 32 characters of a-z, 0-9, '_' and '-'";
    if (!dedupe_key || !s_is_key (dedupe_key))
        return "dedupe_key must be 1 to 200 bytes of printable ASCII without spaces";
    if (!firm_id || !*firm_id || strlen (firm_id) > S_FIRM_MAX || s_has_control (firm_id))
        return "firm_id must be 1 to 63 bytes without control characters";
    if (!recipient || s_has_control (recipient))
        return "the recipient holds a line break or another control character (refused: it "
               "could add headers)";
    if (!s_is_address (recipient))
        return "the recipient must be one e-mail address, local@domain, ASCII, at most 254 "
               "bytes";
    if (!subject || s_has_control (subject))
        return "the subject holds a line break or another control character (refused: it "
               "could add headers)";
    if (!*subject || strlen (subject) > ML_MAILER_SUBJECT_MAX || !s_utf8_valid (subject))
        return "the subject must be 1 to 200 bytes of UTF-8";
    if (!body || !*body || strlen (body) > ML_MAILER_BODY_MAX || !s_utf8_valid (body))
        return "the body must be 1 byte to 64 KiB of UTF-8";
    if (!s_is_body_text (body))
        return "the body may hold no control characters but tabs and line breaks (LF or CRLF)";
    return NULL;
}

int ml_mailer_enqueue (ml_mailer_t *self, const char *kind, const char *dedupe_key,
                       const char *firm_id, const char *recipient, const char *subject,
                       const char *body, char *error, size_t error_size)
{
    assert (self);
    const char *refusal = s_refusal (kind, dedupe_key, firm_id, recipient, subject, body);
    if (refusal) {
        snprintf (error, error_size, "mail refused: %s", refusal);
        return -1;
    }
    //  Fixed now, so every attempt, and a resend after a crash, carries the same Message-ID.
    zuuid_t *uuid = zuuid_new ();
    assert (uuid);
    char message_id[80], now[32];
    snprintf (message_id, sizeof message_id, "<%s@matterlink.invalid>", zuuid_str_canonical (uuid));
    zuuid_destroy (&uuid);
    s_timestamp (s_now_ms (), now, sizeof now);
    //  The store never sees the body in clear text: it may hold a link's token.
    char *sealed = s_seal (self->key, message_id, recipient, body);
    //  ON CONFLICT names the dedupe key only: any other failure (an unknown firm) stays an
    //  error. Neither begin nor commit: this row belongs to the caller's transaction.
    int64_t rows = ml_db_execute (
        self->db,
        "INSERT INTO mail (dedupe_key, message_id, kind, firm_id, recipient, subject, body,"
        " state, attempts, next_attempt_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
        "ssssssssss", dedupe_key, message_id, kind, firm_id, recipient, subject, sealed, now, now,
        now);
    free (sealed);
    if (rows < 0) {
        snprintf (error, error_size, "the store refused the mail: %s",
                  ml_db_error (self->db)->message);
        return -1;
    }
    return rows > 0 ? 1 : 0;
}

static bool s_integer_column (const char *name)
{
    return streq (name, "mail_id") || streq (name, "attempts");
}

json_t *ml_mailer_list (ml_mailer_t *self, const char *state, const char *firm_id, int limit)
{
    assert (self);
    if (limit < 1 || limit > S_LIST_MAX)
        limit = S_LIST_MAX;
    char sql[512];
    ml_db_value_t values[3] = {{0}};
    char picture[4] = "";
    size_t count = 0;
    snprintf (sql, sizeof sql, "%s WHERE 1 = 1", S_LIST_SQL);
    if (state) {
        strcat (sql, " AND state = ?");
        values[count++].text = state;
        strcat (picture, "s");
    }
    if (firm_id) {
        strcat (sql, " AND firm_id = ?");
        values[count++].text = firm_id;
        strcat (picture, "s");
    }
    strcat (sql, " ORDER BY mail_id DESC LIMIT ?");
    values[count++].number = limit;
    strcat (picture, "i");
    return ml_store_rows (ml_db_query_values (self->db, sql, picture, values), s_integer_column);
}

int ml_mailer_retry (ml_mailer_t *self, int64_t mail_id)
{
    assert (self);
    char now[32];
    s_timestamp (s_now_ms (), now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return -1;
    int64_t rows = ml_db_execute (self->db,
                                  "UPDATE mail SET state = 'pending', attempts = 0,"
                                  " next_attempt_at = ?, updated_at = ?"
                                  " WHERE mail_id = ? AND state = 'failed'",
                                  "ssi", now, now, mail_id);
    if (rows < 0 || ml_db_commit (self->db) != 0) {
        ml_db_rollback (self->db);
        return -1;
    }
    return rows > 0 ? 1 : 0;
}

//  Admin ops

static json_t *s_store_failed (ml_mailer_t *self)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "mail: store failed: %s",
            ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
    return ml_admin_error ("the core store failed; see the core's log");
}

static json_t *s_op_list (ml_mailer_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *state = ml_admin_argument (request, "state", 16, problem, sizeof problem);
    const char *firm = ml_admin_argument (request, "firm", S_FIRM_MAX, problem, sizeof problem);
    json_t *limit_value = json_object_get (request, "limit");
    json_int_t limit = 100;
    if (!*problem && state && !streq (state, "pending") && !streq (state, "sent") &&
        !streq (state, "failed"))
        snprintf (problem, sizeof problem, "'state' must be pending, sent or failed");
    if (!*problem && limit_value && !json_is_null (limit_value)) {
        limit = json_is_integer (limit_value) ? json_integer_value (limit_value) : 0;
        if (limit < 1 || limit > S_LIST_MAX)
            snprintf (problem, sizeof problem, "'limit' must be a whole number from 1 to %d",
                      S_LIST_MAX);
    }
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *mails = ml_mailer_list (self, state, firm, (int)limit);
    return mails ? ml_admin_ok (json_pack ("{s:o}", "mails", mails)) : s_store_failed (self);
}

static json_t *s_op_retry (ml_mailer_t *self, const json_t *request)
{
    json_t *id = json_object_get (request, "mail_id");
    if (!json_is_integer (id) || json_integer_value (id) < 1)
        return ml_admin_error ("'mail_id' is required: a whole number of at least 1");
    int rc = ml_mailer_retry (self, (int64_t)json_integer_value (id));
    if (rc < 0)
        return s_store_failed (self);
    if (rc == 0)
        return ml_admin_error ("no failed mail %lld (only a failed mail can be retried)",
                               (long long)json_integer_value (id));
    char sql[300];
    snprintf (sql, sizeof sql, "%s WHERE mail_id = ?", S_LIST_SQL);
    json_t *rows = ml_store_rows (
        ml_db_query (self->db, sql, "i", (int64_t)json_integer_value (id)), s_integer_column);
    if (json_array_size (rows) != 1) {
        json_decref (rows);
        return s_store_failed (self);
    }
    json_t *mail = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return ml_admin_ok (json_pack ("{s:o}", "mail", mail));
}

json_t *ml_mailer_execute (ml_mailer_t *self, const char *op, const json_t *request)
{
    assert (self);
    if (!op || (!streq (op, "mail-list") && !streq (op, "mail-retry")))
        return NULL;
    if (!json_is_object (request))
        return ml_admin_error ("a request is a JSON object");
    return streq (op, "mail-list") ? s_op_list (self, request) : s_op_retry (self, request);
}

//  ---------------------------------------------------------------------------------------
//  Settings

void ml_mailer_settings_defaults (ml_mailer_settings_t *settings)
{
    assert (settings);
    memset (settings, 0, sizeof *settings);
    settings->starttls = true;
    settings->connect_timeout_ms = 10000;
    settings->timeout_ms = 60000;
    settings->retry_base_ms = 30000;
    settings->retry_max_ms = 3600000;
    settings->max_attempts = 30;
    settings->poll_ms = 5000;
}

void ml_mailer_settings_wipe (ml_mailer_settings_t *settings)
{
    assert (settings);
    explicit_bzero (settings->password, sizeof settings->password);
}

//  Split smtp_url into its parts. Returns 0, or -1 with a message. The URL may hold no user
//  or password: those live in username and password_file, so the URL can be logged.
static int s_parse_url (const char *url, bool *implicit_tls, char *host, size_t host_size,
                        char *error, size_t error_size)
{
    const char *rest;
    if (strncmp (url, "smtp://", 7) == 0) {
        *implicit_tls = false;
        rest = url + 7;
    } else if (strncmp (url, "smtps://", 8) == 0) {
        *implicit_tls = true;
        rest = url + 8;
    } else {
        snprintf (error, error_size,
                  "mail/smtp_url must start with smtp:// (STARTTLS) or smtps:// (TLS)");
        return -1;
    }
    for (const unsigned char *cursor = (const unsigned char *)url; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f || *cursor == '?' || *cursor == '#') {
            snprintf (error, error_size,
                      "mail/smtp_url may hold no spaces, control characters, non-ASCII, '?' "
                      "or '#'");
            return -1;
        }
    size_t authority = strcspn (rest, "/");
    if (memchr (rest, '@', authority)) {
        snprintf (error, error_size,
                  "mail/smtp_url must not hold a user or password: use mail/username and "
                  "mail/password_file");
        return -1;
    }
    //  host: a name, an IPv4 address, or an IPv6 address in brackets; then ":port" or nothing.
    const char *end = rest + authority;
    const char *host_end = rest[0] == '[' ? memchr (rest, ']', authority) : NULL;
    host_end = host_end ? host_end + 1 : rest[0] == '[' ? rest : memchr (rest, ':', authority);
    if (!host_end)
        host_end = end;
    const char *port = host_end < end && *host_end == ':' ? host_end + 1 : NULL;
    size_t host_length = (size_t)(host_end - rest);
    if (host_length == 0 || host_length >= host_size || (host_end < end && !port)) {
        snprintf (error, error_size, "mail/smtp_url needs a host: smtp://host[:port][/ehlo-name]");
        return -1;
    }
    memcpy (host, rest, host_length);
    host[host_length] = 0;
    if (port) {
        long number = 0;
        const char *cursor = port;
        while (cursor < end && *cursor >= '0' && *cursor <= '9' && number <= 65535)
            number = number * 10 + (*cursor++ - '0');
        if (cursor != end || cursor == port || number < 1 || number > 65535) {
            snprintf (error, error_size, "mail/smtp_url has a bad port (1 to 65535)");
            return -1;
        }
    }
    return 0;
}

static bool s_is_loopback (const char *host)
{
    return streq (host, "localhost") || strncmp (host, "127.", 4) == 0 || streq (host, "[::1]");
}

int ml_mailer_settings_check (const ml_mailer_settings_t *settings, char *error, size_t error_size)
{
    assert (settings);
    bool implicit_tls = false;
    char host[256];
    if (!*settings->store) {
        snprintf (error, error_size,
                  "store/connection is required: the mailer reads the outbox "
                  "there");
        return -1;
    }
    if (!*settings->outbox_key) {
        snprintf (error, error_size,
                  "mail/outbox_key is required: the mailer opens the outbox's mails with it");
        return -1;
    }
    if (s_parse_url (settings->smtp_url, &implicit_tls, host, sizeof host, error, error_size) != 0)
        return -1;
    if (!s_is_address (settings->from)) {
        snprintf (error, error_size,
                  "mail/from must be one e-mail address, local@domain (ASCII): the sender of "
                  "every mail");
        return -1;
    }
    if (s_has_control (settings->from_name) || !s_utf8_valid (settings->from_name) ||
        strlen (settings->from_name) > 128) {
        snprintf (error, error_size,
                  "mail/from_name must be up to 128 bytes of UTF-8 without control characters");
        return -1;
    }
    if (s_has_control (settings->username) || !s_utf8_valid (settings->username)) {
        snprintf (error, error_size, "mail/username may hold no control characters");
        return -1;
    }
    if (*settings->username && !*settings->password) {
        snprintf (error, error_size, "mail/username needs mail/password_file");
        return -1;
    }
    if (!*settings->username && *settings->password) {
        snprintf (error, error_size, "mail/password_file needs mail/username");
        return -1;
    }
    //  A password is never sent in clear text, except to this machine.
    if (*settings->username && !implicit_tls && !settings->starttls && !s_is_loopback (host)) {
        snprintf (error, error_size,
                  "mail/starttls = no would send the password in clear text to %s: use "
                  "starttls = required or an smtps:// URL",
                  host);
        return -1;
    }
    if (settings->connect_timeout_ms < 100 || settings->timeout_ms < 100 ||
        settings->timeout_ms < settings->connect_timeout_ms) {
        snprintf (error, error_size,
                  "mail/timeout_ms (%d) must be at least mail/connect_timeout_ms (%d), both at "
                  "least 100",
                  settings->timeout_ms, settings->connect_timeout_ms);
        return -1;
    }
    if (settings->retry_base_ms < 10 || settings->retry_max_ms < settings->retry_base_ms) {
        snprintf (error, error_size,
                  "mail/retry_max_ms (%d) must be at least mail/retry_base_ms (%d), at least 10",
                  settings->retry_max_ms, settings->retry_base_ms);
        return -1;
    }
    if (settings->max_attempts < 1 || settings->poll_ms < 10) {
        snprintf (error, error_size,
                  "mail/max_attempts must be at least 1 and mail/poll_ms at least 10");
        return -1;
    }
    return 0;
}

//  A password for SMTP: one line of UTF-8 without control characters.
static bool s_valid_password (const char *password)
{
    return !s_has_control (password) && s_utf8_valid (password);
}

//  Copy a setting, refusing one too long for its field rather than cutting it.
static int s_copy (char *target, size_t size, const char *value, const char *key, char *error,
                   size_t error_size)
{
    if (strlen (value) >= size) {
        snprintf (error, error_size, "%s is longer than %zu bytes", key, size - 1);
        return -1;
    }
    memcpy (target, value, strlen (value) + 1);
    return 0;
}

int ml_mailer_settings_load (ml_mailer_settings_t *settings, ml_config_t *config, char *error,
                             size_t error_size)
{
    assert (settings && config);
    ml_mailer_settings_defaults (settings);
    const char *store = ml_config_string (config, "store/connection", NULL);
    const char *url = ml_config_string (config, "mail/smtp_url", NULL);
    const char *from = ml_config_string (config, "mail/from", NULL);
    const char *from_name = ml_config_string (config, "mail/from_name", "");
    const char *starttls = ml_config_string (config, "mail/starttls", "required");
    const char *ca_file = ml_config_string (config, "mail/ca_file", "");
    const char *username = ml_config_string (config, "mail/username", "");
    const char *password_file = ml_config_string (config, "mail/password_file", "");
    settings->connect_timeout_ms =
        ml_config_int (config, "mail/connect_timeout_ms", 10000, 100, 120000);
    settings->timeout_ms = ml_config_int (config, "mail/timeout_ms", 60000, 100, 600000);
    settings->retry_base_ms = ml_config_int (config, "mail/retry_base_ms", 30000, 10, 3600000);
    settings->retry_max_ms = ml_config_int (config, "mail/retry_max_ms", 3600000, 10, 86400000);
    settings->max_attempts = ml_config_int (config, "mail/max_attempts", 30, 1, 1000);
    settings->poll_ms = ml_config_int (config, "mail/poll_ms", 5000, 10, 600000);
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        return -1;
    }
    if (!streq (starttls, "required") && !streq (starttls, "no")) {
        snprintf (error, error_size,
                  "mail/starttls must be required or no (there is no 'try': a server that "
                  "does not offer STARTTLS would get the mail in clear text)");
        return -1;
    }
    settings->starttls = streq (starttls, "required");
    if (s_copy (settings->store, sizeof settings->store, store, "store/connection", error,
                error_size) != 0 ||
        s_copy (settings->smtp_url, sizeof settings->smtp_url, url, "mail/smtp_url", error,
                error_size) != 0 ||
        s_copy (settings->from, sizeof settings->from, from, "mail/from", error, error_size) != 0 ||
        s_copy (settings->from_name, sizeof settings->from_name, from_name, "mail/from_name", error,
                error_size) != 0 ||
        s_copy (settings->ca_file, sizeof settings->ca_file, ca_file, "mail/ca_file", error,
                error_size) != 0 ||
        s_copy (settings->username, sizeof settings->username, username, "mail/username", error,
                error_size) != 0)
        return -1;
    if (ml_mailer_outbox_key_path (config, settings->outbox_key, sizeof settings->outbox_key, error,
                                   error_size) != 0)
        return -1;
    if (*password_file &&
        ml_config_read_secret ("mail/password_file", password_file, "password", settings->password,
                               sizeof settings->password, s_valid_password,
                               "without control characters", error, error_size) != 0)
        return -1;
    if (ml_mailer_settings_check (settings, error, error_size) != 0) {
        ml_mailer_settings_wipe (settings);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Writing a message (RFC 5322, MIME text/plain in UTF-8, quoted-printable)

typedef struct {
    char *data;
    size_t size, capacity;
    bool full; //  something did not fit in S_MESSAGE_MAX
} s_text_t;

static void s_add (s_text_t *text, const char *bytes, size_t length)
{
    if (text->full || text->size + length + 1 > S_MESSAGE_MAX) {
        text->full = true;
        return;
    }
    if (text->size + length + 1 > text->capacity) {
        size_t capacity = text->capacity ? text->capacity : 4096;
        while (capacity < text->size + length + 1)
            capacity *= 2;
        char *data = realloc (text->data, capacity);
        assert (data);
        text->data = data;
        text->capacity = capacity;
    }
    memcpy (text->data + text->size, bytes, length);
    text->size += length;
    text->data[text->size] = 0;
}

static void s_adds (s_text_t *text, const char *string)
{
    s_add (text, string, strlen (string));
}

static void s_base64 (s_text_t *text, const unsigned char *bytes, size_t length)
{
    static const char *alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t index = 0; index < length; index += 3) {
        uint32_t group = (uint32_t)bytes[index] << 16;
        if (index + 1 < length)
            group |= (uint32_t)bytes[index + 1] << 8;
        if (index + 2 < length)
            group |= bytes[index + 2];
        char out[4] = {alphabet[(group >> 18) & 63], alphabet[(group >> 12) & 63],
                       index + 1 < length ? alphabet[(group >> 6) & 63] : '=',
                       index + 2 < length ? alphabet[group & 63] : '='};
        s_add (text, out, 4);
    }
}

//  Header text: as is when it is printable ASCII that cannot be mistaken for an encoded
//  word, else RFC 2047 encoded words ("=?UTF-8?B?...?="), each at most 75 characters and
//  holding whole characters, folded onto continuation lines.
static void s_header_words (s_text_t *text, const char *value)
{
    bool plain = !strstr (value, "=?");
    for (const unsigned char *cursor = (const unsigned char *)value; plain && *cursor; cursor++)
        plain = *cursor >= 0x20 && *cursor < 0x7f;
    if (plain) {
        s_adds (text, value);
        return;
    }
    //  75 = 12 of "=?UTF-8?B?" and "?=" + 60 of base64, which is 45 bytes of text.
    const unsigned char *cursor = (const unsigned char *)value;
    bool first = true;
    while (*cursor) {
        size_t take = 0;
        while (cursor[take]) {
            size_t length = 1;
            while ((cursor[take + length] & 0xc0) == 0x80)
                length++;
            if (take + length > 45)
                break;
            take += length;
        }
        s_adds (text, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        s_base64 (text, cursor, take);
        s_adds (text, "?=");
        cursor += take;
        first = false;
    }
}

//  The From display name: a quoted string when ASCII, encoded words otherwise.
static void s_display_name (s_text_t *text, const char *name)
{
    bool ascii = true;
    for (const unsigned char *cursor = (const unsigned char *)name; *cursor; cursor++)
        ascii = ascii && *cursor < 0x80;
    if (!ascii) {
        s_header_words (text, name);
        return;
    }
    s_adds (text, "\"");
    for (const char *cursor = name; *cursor; cursor++) {
        if (*cursor == '"' || *cursor == '\\')
            s_adds (text, "\\");
        s_add (text, cursor, 1);
    }
    s_adds (text, "\"");
}

//  The body in quoted-printable (RFC 2045 6.7): any UTF-8, any line length, survives every
//  relay (8bit would need 8BITMIME and lines under 998 bytes). Line breaks become CRLF, and
//  the message ends with one. Lines that start with '.' are left alone: libcurl doubles the
//  dot on the wire (SMTP transparency) and the server removes it, as the selftest checks.
static void s_quoted_printable (s_text_t *text, const char *body)
{
    size_t column = 0;
    bool at_break = true;
    for (const unsigned char *cursor = (const unsigned char *)body; *cursor; cursor++) {
        if (*cursor == '\r' && cursor[1] == '\n')
            continue; //  the LF that follows makes the break
        if (*cursor == '\n') {
            s_adds (text, "\r\n");
            column = 0;
            at_break = true;
            continue;
        }
        //  Spaces and tabs at the end of a line would be lost in transit: encode them.
        bool line_end =
            cursor[1] == 0 || cursor[1] == '\n' || (cursor[1] == '\r' && cursor[2] == '\n');
        char token[4];
        size_t length = 1;
        if ((*cursor >= 33 && *cursor <= 126 && *cursor != '=') ||
            ((*cursor == ' ' || *cursor == '\t') && !line_end))
            token[0] = (char)*cursor;
        else {
            snprintf (token, sizeof token, "=%02X", *cursor);
            length = 3;
        }
        //  At most 76 characters a line, counting the '=' of a soft break.
        if (column + length > 75) {
            s_adds (text, "=\r\n");
            column = 0;
        }
        s_add (text, token, length);
        column += length;
        at_break = false;
    }
    if (!at_break)
        s_adds (text, "\r\n");
}

//  The whole message. Everything in it comes from the row, so an attempt after a crash
//  sends the same bytes (the Date is the time of enqueue).
static void s_message (s_text_t *text, const ml_mailer_settings_t *settings, const char *message_id,
                       const char *recipient, const char *subject, const char *created_at,
                       const char *body)
{
    char date[64];
    s_mail_date (created_at, date, sizeof date);
    s_adds (text, "Date: ");
    s_adds (text, date);
    s_adds (text, "\r\nFrom: ");
    if (*settings->from_name) {
        s_display_name (text, settings->from_name);
        s_adds (text, " <");
        s_adds (text, settings->from);
        s_adds (text, ">");
    } else
        s_adds (text, settings->from);
    s_adds (text, "\r\nTo: ");
    s_adds (text, recipient);
    s_adds (text, "\r\nSubject: ");
    s_header_words (text, subject);
    s_adds (text, "\r\nMessage-ID: ");
    s_adds (text, message_id);
    //  Auto-Submitted keeps out-of-office robots from answering (RFC 3834).
    s_adds (text, "\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=UTF-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n"
                  "Auto-Submitted: auto-generated\r\n\r\n");
    s_quoted_printable (text, body);
}

//  ---------------------------------------------------------------------------------------
//  The actor: sends what is due, one mail at a time

//  Where in the SMTP dialogue an attempt was: it decides whether a 5xx is about this mail
//  (the recipient or the message: final) or about the session (our settings, the server's
//  state: worth retrying, as every other mail would meet it too).
typedef enum {
    S_STAGE_CONNECT = 0, //  connecting, TLS, the greeting
    S_STAGE_EHLO,
    S_STAGE_STARTTLS,
    S_STAGE_AUTH,
    S_STAGE_MAIL,
    S_STAGE_RCPT,
    S_STAGE_DATA,    //  the DATA command itself
    S_STAGE_MESSAGE, //  the message sent, waiting for the answer to its end
    S_STAGE_QUIT
} s_stage_t;

static const char *s_stage_names[] = {"connecting",   "EHLO",           "STARTTLS",
                                      "login (AUTH)", "MAIL FROM",      "RCPT TO",
                                      "DATA",         "end of message", "QUIT"};

typedef enum { S_SENT, S_TEMPORARY, S_PERMANENT, S_ABORTED } s_outcome_t;

typedef struct {
    zsock_t *pipe;
    ml_mailer_settings_t settings;
    ml_db_t *db;
    unsigned char key[S_KEY_BYTES]; //  the outbox key, to open bodies just before sending
    CURL *curl;
    bool curl_ready; //  curl_global_init done
    bool terminated;
    bool poked;
    //  The attempt in flight.
    s_stage_t stage;
    bool quitting; //  QUIT sent: later answers are not about the mail
    curl_socket_t socket;
    int reply_code;
    char reply[160];
    char curl_error[CURL_ERROR_SIZE];
    const char *upload;
    size_t upload_left;
    //  Mails the server accepted whose row could not be marked sent yet: never sent again
    //  while this actor lives.
    int64_t unrecorded[S_UNRECORDED];
    size_t unrecorded_count;
} s_actor_t;

//  Keep printable ASCII only, so server text is safe in the store, the admin API and logs.
static void s_clean (char *text)
{
    for (unsigned char *cursor = (unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor >= 0x7f)
            *cursor = '?';
}

//  Commands that arrive while a mail is in flight. $TERM ends the actor; SEND is moot.
static void s_actor_commands (s_actor_t *self)
{
    while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
        char *command = zstr_recv (self->pipe);
        if (!command || streq (command, "$TERM"))
            self->terminated = true;
        else if (streq (command, "SEND"))
            self->poked = true;
        else {
            char shown[64];
            ml_log (ML_LOG_WARNING, "mail: unknown command %s",
                    ml_log_escape (command, shown, sizeof shown));
        }
        zstr_free (&command);
    }
}

static size_t s_curl_read (char *buffer, size_t size, size_t count, void *argument)
{
    s_actor_t *self = (s_actor_t *)argument;
    size_t length = size * count < self->upload_left ? size * count : self->upload_left;
    memcpy (buffer, self->upload, length);
    self->upload += length;
    self->upload_left -= length;
    return length;
}

//  libcurl's protocol trace, used only to know the stage and the server's last answer. It
//  is never printed or stored: what we send includes the AUTH exchange.
static int s_curl_trace (CURL *curl, curl_infotype type, char *data, size_t size, void *argument)
{
    s_actor_t *self = (s_actor_t *)argument;
    if (type == CURLINFO_HEADER_OUT) {
        //  A command: its verb names the stage. Lines without a known verb are AUTH's
        //  continuation (base64 credentials) and change nothing.
        static const struct {
            const char *verb;
            s_stage_t stage;
        } verbs[] = {{"EHLO", S_STAGE_EHLO}, {"HELO", S_STAGE_EHLO}, {"STARTTLS", S_STAGE_STARTTLS},
                     {"AUTH", S_STAGE_AUTH}, {"MAIL", S_STAGE_MAIL}, {"RCPT", S_STAGE_RCPT},
                     {"DATA", S_STAGE_DATA}, {"QUIT", S_STAGE_QUIT}};
        if (self->stage == S_STAGE_AUTH && self->reply_code == 334)
            return 0; //  an answer to the server's challenge, maybe the password
        for (size_t index = 0; index < sizeof verbs / sizeof verbs[0]; index++) {
            size_t length = strlen (verbs[index].verb);
            if (size > length && memcmp (data, verbs[index].verb, length) == 0 &&
                (data[length] == ' ' || data[length] == '\r')) {
                //  libcurl says QUIT after a failure too: the stage and answer that matter
                //  are the ones before it.
                if (verbs[index].stage == S_STAGE_QUIT) {
                    //  The outcome is known before QUIT, and libcurl waits for its answer
                    //  outside CURLOPT_TIMEOUT: a stalled server would hold us long after
                    //  the timeout. With the read side shut, that wait ends at once.
                    self->quitting = true;
                    if (self->socket != CURL_SOCKET_BAD)
                        shutdown (self->socket, SHUT_RD);
                } else {
                    self->stage = verbs[index].stage;
                    self->reply_code = 0;
                    self->reply[0] = 0;
                }
            }
        }
    } else if (type == CURLINFO_HEADER_IN && !self->quitting && size >= 3 && data[0] >= '2' &&
               data[0] <= '5' && data[1] >= '0' && data[1] <= '9' && data[2] >= '0' &&
               data[2] <= '9') {
        self->reply_code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
        //  During AUTH, only the code: a server's text there might echo what we sent.
        size_t length = self->stage == S_STAGE_AUTH ? 3 : size;
        if (length >= sizeof self->reply)
            length = sizeof self->reply - 1;
        memcpy (self->reply, data, length);
        self->reply[length] = 0;
        self->reply[strcspn (self->reply, "\r\n")] = 0;
        s_clean (self->reply);
    } else if (type == CURLINFO_DATA_OUT && self->stage == S_STAGE_DATA)
        self->stage = S_STAGE_MESSAGE;
    return 0;
}

//  Called by libcurl at least once a second, also while it waits for an answer: a $TERM
//  abandons the mail in flight.
static int s_curl_progress (void *argument, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
    s_actor_t *self = (s_actor_t *)argument;
    s_actor_commands (self);
    if (!self->terminated)
        return 0;
    //  After an abort libcurl still says QUIT and waits for the answer, which a server busy
    //  with our message gives late: with the socket shut, that wait ends at once.
    if (self->socket != CURL_SOCKET_BAD)
        shutdown (self->socket, SHUT_RDWR);
    return 1;
}

//  libcurl's new socket, kept for s_curl_progress (libcurl closes it).
static int s_curl_socket (void *argument, curl_socket_t socket, curlsocktype purpose)
{
    ((s_actor_t *)argument)->socket = socket;
    return CURL_SOCKOPT_OK;
}

//  One SMTP session for one message. Fills error (for last_error) unless it was sent.
static s_outcome_t s_smtp_send (s_actor_t *self, const char *recipient, const s_text_t *message,
                                char *error, size_t error_size)
{
    const ml_mailer_settings_t *settings = &self->settings;
    CURL *curl = self->curl;
    curl_easy_reset (curl);
    char from[ML_MAILER_ADDRESS_MAX + 3], to[ML_MAILER_ADDRESS_MAX + 3];
    snprintf (from, sizeof from, "<%s>", settings->from);
    snprintf (to, sizeof to, "<%s>", recipient);
    struct curl_slist *recipients = curl_slist_append (NULL, to);
    assert (recipients);
    self->stage = S_STAGE_CONNECT;
    self->quitting = false;
    self->socket = CURL_SOCKET_BAD;
    self->reply_code = 0;
    self->reply[0] = 0;
    self->curl_error[0] = 0;
    self->upload = message->data;
    self->upload_left = message->size;
    curl_easy_setopt (curl, CURLOPT_URL, settings->smtp_url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    //  STARTTLS or nothing: CURLUSESSL_TRY would go on in clear text when it is not offered.
    if (settings->starttls)
        curl_easy_setopt (curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (*settings->ca_file)
        curl_easy_setopt (curl, CURLOPT_CAINFO, settings->ca_file);
    if (*settings->username) {
        curl_easy_setopt (curl, CURLOPT_USERNAME, settings->username);
        curl_easy_setopt (curl, CURLOPT_PASSWORD, settings->password);
    }
    curl_easy_setopt (curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, recipients);
    curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (curl, CURLOPT_READFUNCTION, s_curl_read);
    curl_easy_setopt (curl, CURLOPT_READDATA, self);
    curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message->size);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long)settings->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long)settings->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    //  A session per mail: after a failure, the next mail never inherits a confused one.
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, self->curl_error);
    //  VERBOSE only feeds s_curl_trace: with a debug function set, libcurl prints nothing.
    curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, s_curl_trace);
    curl_easy_setopt (curl, CURLOPT_DEBUGDATA, self);
    curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, s_curl_progress);
    curl_easy_setopt (curl, CURLOPT_XFERINFODATA, self);
    curl_easy_setopt (curl, CURLOPT_SOCKOPTFUNCTION, s_curl_socket);
    curl_easy_setopt (curl, CURLOPT_SOCKOPTDATA, self);
    CURLcode rc = curl_easy_perform (curl);
    self->socket = CURL_SOCKET_BAD;
    curl_slist_free_all (recipients);
    //  Drop the copies of the password and the addresses the handle holds.
    curl_easy_reset (curl);
    if (rc == CURLE_OK)
        return S_SENT;
    if (rc == CURLE_ABORTED_BY_CALLBACK && self->terminated) {
        snprintf (error, error_size, "abandoned: the mailer was stopped");
        return S_ABORTED;
    }
    const char *stage = s_stage_names[self->stage];
    if (self->reply_code >= 400) {
        snprintf (error, error_size, "%s: the server answered %s", stage, self->reply);
        //  A 5xx to the recipient or to this message is final; one to the session is not.
        bool about_this_mail = self->stage == S_STAGE_RCPT || self->stage == S_STAGE_DATA ||
                               self->stage == S_STAGE_MESSAGE;
        if (self->reply_code >= 500 && about_this_mail)
            return S_PERMANENT;
    } else {
        s_clean (self->curl_error);
        snprintf (error, error_size, "%s: %s%s%s", stage, curl_easy_strerror (rc),
                  *self->curl_error ? ": " : "", self->curl_error);
    }
    if (self->stage == S_STAGE_AUTH && (rc == CURLE_LOGIN_DENIED || self->reply_code >= 500))
        ml_log (ML_LOG_ERROR,
                "mail: the SMTP server refused our login (%s): check mail/username "
                "and mail/password_file",
                self->reply_code ? self->reply : curl_easy_strerror (rc));
    return S_TEMPORARY;
}

//  Wait after the attempts-th failed attempt: retry_base_ms doubling, capped.
static int64_t s_backoff_ms (const ml_mailer_settings_t *settings, int64_t attempts)
{
    int64_t wait = settings->retry_base_ms;
    for (int64_t index = 1; index < attempts && wait < settings->retry_max_ms; index++)
        wait *= 2;
    return wait < settings->retry_max_ms ? wait : settings->retry_max_ms;
}

static bool s_is_unrecorded (s_actor_t *self, int64_t mail_id)
{
    for (size_t index = 0; index < self->unrecorded_count; index++)
        if (self->unrecorded[index] == mail_id)
            return true;
    return false;
}

static void s_store_problem (s_actor_t *self, const char *what)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "mail: %s failed: %s", what,
            ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
}

static int s_record_sent (s_actor_t *self, int64_t mail_id)
{
    char now[32];
    s_timestamp (s_now_ms (), now, sizeof now);
    //  One statement in autocommit: its own transaction, committed before anything else.
    return ml_db_execute (self->db,
                          "UPDATE mail SET state = 'sent', sent_at = ?, updated_at = ?,"
                          " next_attempt_at = NULL, last_error = NULL WHERE mail_id = ?",
                          "ssi", now, now, mail_id) < 0
               ? -1
               : 0;
}

//  Record sent mails whose row could not be updated earlier. Returns 0 when none is left.
static int s_record_unrecorded (s_actor_t *self)
{
    while (self->unrecorded_count > 0) {
        if (s_record_sent (self, self->unrecorded[self->unrecorded_count - 1]) != 0) {
            s_store_problem (self, "recording a sent mail");
            return -1;
        }
        self->unrecorded_count--;
    }
    return 0;
}

//  Read a mail's body back, in pieces that fit the ODBC layer's columns, in one query.
//  Returns the body (caller frees) or NULL.
static char *s_load_body (ml_db_t *db, int64_t mail_id, int64_t characters)
{
    ml_db_query_t *query = ml_db_query (
        db,
        "WITH RECURSIVE part (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM part"
        " WHERE (n + 1) * 64 < ?)"
        " SELECT substr (body, n * 64 + 1, 64) FROM part, mail WHERE mail_id = ? ORDER BY n",
        "ii", characters, mail_id);
    if (!query)
        return NULL;
    s_text_t body = {0};
    int rc;
    while ((rc = ml_db_fetch (query)) == 1) {
        const char *part = ml_db_text (query, 0);
        if (!part || ml_db_truncated (query, 0)) {
            rc = -1;
            break;
        }
        s_adds (&body, part);
    }
    ml_db_query_destroy (&query);
    //  A body that does not come back whole is never sent in part.
    if (rc < 0 || body.full || !body.data || (int64_t)s_utf8_chars (body.data) != characters) {
        free (body.data);
        return NULL;
    }
    return body.data;
}

typedef enum { S_NEXT, S_STOP } s_pass_t;

//  Claim one due mail, send it, record the outcome.
static s_pass_t s_attempt (s_actor_t *self, int64_t mail_id)
{
    const ml_mailer_settings_t *settings = &self->settings;
    int64_t now_ms = s_now_ms ();
    char now[32], lease[32];
    s_timestamp (now_ms, now, sizeof now);
    s_timestamp (now_ms + settings->timeout_ms + S_LEASE_MARGIN_MS, lease, sizeof lease);
    //  The claim counts the attempt and moves the mail out of the due set for the lease:
    //  another mailer on the same store skips it, and if this core dies while sending, the
    //  mail is due again once the lease ends.
    int64_t claimed = ml_db_execute (self->db,
                                     "UPDATE mail SET attempts = attempts + 1,"
                                     " next_attempt_at = ?, updated_at = ? WHERE mail_id = ?"
                                     " AND state = 'pending' AND next_attempt_at <= ?",
                                     "ssis", lease, now, mail_id, now);
    if (claimed < 0) {
        s_store_problem (self, "claiming a mail");
        return S_STOP;
    }
    if (claimed == 0)
        return S_NEXT;
    char kind[ML_MAILER_KIND_MAX + 1] = "", message_id[80] = "", created_at[32] = "";
    char recipient[ML_MAILER_ADDRESS_MAX + 1] = "", subject[ML_MAILER_SUBJECT_MAX + 1] = "";
    int64_t attempts = 0, characters = 0;
    ml_db_query_t *query =
        ml_db_query (self->db,
                     "SELECT kind, message_id, recipient, subject, created_at, attempts,"
                     " length (body) FROM mail WHERE mail_id = ?",
                     "i", mail_id);
    bool loaded = query && ml_db_fetch (query) == 1;
    for (int column = 0; loaded && column < 5; column++)
        loaded = ml_db_text (query, column) && !ml_db_truncated (query, column);
    if (loaded) {
        snprintf (kind, sizeof kind, "%s", ml_db_text (query, 0));
        snprintf (message_id, sizeof message_id, "%s", ml_db_text (query, 1));
        snprintf (recipient, sizeof recipient, "%s", ml_db_text (query, 2));
        snprintf (subject, sizeof subject, "%s", ml_db_text (query, 3));
        snprintf (created_at, sizeof created_at, "%s", ml_db_text (query, 4));
        loaded = ml_db_int64 (query, 5, &attempts) == 0 && ml_db_int64 (query, 6, &characters) == 0;
    }
    ml_db_query_destroy (&query);
    char *sealed = loaded ? s_load_body (self->db, mail_id, characters) : NULL;
    s_text_t message = {0};
    char error[S_ERROR_MAX + 1] = "";
    s_outcome_t outcome;
    char *body = sealed ? s_open (self->key, message_id, recipient, sealed) : NULL;
    bool unopened = sealed && !body;
    free (sealed);
    if (unopened) {
        //  Sending later would not help: the mail fails, for staff to see (mail-list).
        snprintf (error, sizeof error,
                  "the body cannot be opened with this core's outbox key (mail/outbox_key): "
                  "it was sealed under another key, or the row was altered");
        ml_log (ML_LOG_ERROR, "mail: mail %lld: %s", (long long)mail_id, error);
        if (ml_db_execute (self->db,
                           "UPDATE mail SET state = 'failed', last_error = ?,"
                           " next_attempt_at = NULL, updated_at = ? WHERE mail_id = ?",
                           "ssi", error, now, mail_id) < 0) {
            s_store_problem (self, "recording a failed attempt");
            return S_STOP;
        }
        return S_NEXT;
    }
    if (!body) {
        //  The lease keeps it from being tried again at once.
        char escaped[600];
        ml_log (ML_LOG_ERROR, "mail: cannot read mail %lld back from the store: %s",
                (long long)mail_id,
                ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
        return S_STOP;
    }
    s_message (&message, settings, message_id, recipient, subject, created_at, body);
    sodium_memzero (body, strlen (body));
    free (body);
    if (message.full) {
        snprintf (error, sizeof error, "the message would exceed %d bytes", S_MESSAGE_MAX);
        outcome = S_PERMANENT;
    } else
        outcome = s_smtp_send (self, recipient, &message, error, sizeof error);
    if (message.data)
        sodium_memzero (message.data, message.capacity);
    free (message.data);

    now_ms = s_now_ms ();
    s_timestamp (now_ms, now, sizeof now);
    char escaped[S_ERROR_MAX * 4 + 1];
    ml_log_escape (error, escaped, sizeof escaped);
    if (outcome == S_SENT) {
        ml_log (ML_LOG_INFO, "mail: sent mail %lld (%s) %s, attempt %lld", (long long)mail_id, kind,
                message_id, (long long)attempts);
        if (s_record_sent (self, mail_id) == 0)
            return S_NEXT;
        //  The server has it: remember, so it is not sent again while we live (if the list
        //  is full, the store has been failing for a while: the lease still holds it back).
        s_store_problem (self, "recording a sent mail");
        if (self->unrecorded_count < S_UNRECORDED)
            self->unrecorded[self->unrecorded_count++] = mail_id;
        return S_STOP;
    }
    int64_t rows;
    if (outcome == S_ABORTED) {
        //  Not the mail's fault: the attempt does not count, and it is due at once.
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET attempts = attempts - 1, next_attempt_at = ?,"
                              " updated_at = ? WHERE mail_id = ? AND state = 'pending'",
                              "ssi", now, now, mail_id);
        ml_log (ML_LOG_NOTICE, "mail: mail %lld abandoned: the mailer is stopping",
                (long long)mail_id);
    } else if (outcome == S_PERMANENT || attempts >= settings->max_attempts) {
        if (outcome == S_TEMPORARY) {
            char last[S_ERROR_MAX + 1];
            //  The reason is cut so the words before it always fit.
            snprintf (last, sizeof last, "gave up after %lld attempts: %.*s", (long long)attempts,
                      (int)(sizeof last - 48), error);
            memcpy (error, last, sizeof error);
            ml_log_escape (error, escaped, sizeof escaped);
        }
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET state = 'failed', last_error = ?,"
                              " next_attempt_at = NULL, updated_at = ? WHERE mail_id = ?",
                              "ssi", error, now, mail_id);
        ml_log (ML_LOG_WARNING, "mail: mail %lld (%s) failed for good: %s", (long long)mail_id,
                kind, escaped);
    } else {
        int64_t wait = s_backoff_ms (settings, attempts);
        char next[32];
        s_timestamp (now_ms + wait, next, sizeof next);
        rows = ml_db_execute (self->db,
                              "UPDATE mail SET last_error = ?, next_attempt_at = ?,"
                              " updated_at = ? WHERE mail_id = ? AND state = 'pending'",
                              "sssi", error, next, now, mail_id);
        ml_log (ML_LOG_WARNING,
                "mail: mail %lld (%s) not sent, attempt %lld of %d, next in %lld ms: %s",
                (long long)mail_id, kind, (long long)attempts, settings->max_attempts,
                (long long)wait, escaped);
    }
    if (rows < 0)
        s_store_problem (self, "recording a failed attempt");
    //  After a temporary failure the server is likely to fail the next mail too: stop the
    //  pass, the back-off and the next poll pace the retries.
    return outcome == S_PERMANENT && rows >= 0 ? S_NEXT : S_STOP;
}

//  Send every due mail, oldest due first, until none is left, one fails for a reason that
//  would fail the others too, or $TERM arrives.
static void s_pass (s_actor_t *self)
{
    if (s_record_unrecorded (self) != 0)
        return;
    while (!self->terminated) {
        char now[32];
        s_timestamp (s_now_ms (), now, sizeof now);
        int64_t due[S_BATCH];
        size_t count = 0;
        ml_db_query_t *query =
            ml_db_query (self->db,
                         "SELECT mail_id FROM mail WHERE state = 'pending' AND next_attempt_at <= ?"
                         " ORDER BY next_attempt_at, mail_id LIMIT ?",
                         "si", now, (int64_t)S_BATCH);
        int rc = query ? 1 : -1;
        while (count < S_BATCH && (rc = ml_db_fetch (query)) == 1)
            if (ml_db_int64 (query, 0, &due[count]) == 0)
                count++;
        ml_db_query_destroy (&query);
        if (rc < 0) {
            s_store_problem (self, "reading the outbox");
            return;
        }
        for (size_t index = 0; index < count; index++) {
            s_actor_commands (self);
            if (self->terminated)
                return;
            if (!s_is_unrecorded (self, due[index]) && s_attempt (self, due[index]) == S_STOP)
                return;
        }
        if (count < S_BATCH)
            return;
    }
}

static void s_actor_destroy (s_actor_t *self)
{
    if (self->curl)
        curl_easy_cleanup (self->curl);
    if (self->curl_ready)
        curl_global_cleanup ();
    ml_db_destroy (&self->db);
    ml_mailer_settings_wipe (&self->settings);
    sodium_memzero (self->key, sizeof self->key);
}

static int s_actor_init (s_actor_t *self)
{
    char error[600];
    if (ml_mailer_settings_check (&self->settings, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    //  The core made the key when it opened the outbox; the actor only reads it.
    if (sodium_init () < 0 ||
        s_key_read (self->settings.outbox_key, self->key, error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    ml_db_error_t db_error;
    self->db = ml_db_new (self->settings.store, &db_error);
    if (!self->db) {
        char escaped[600];
        ml_log (ML_LOG_ERROR, "mail: cannot open the core store: %s",
                ml_log_escape (db_error.message, escaped, sizeof escaped));
        return -1;
    }
    //  A sent mail recorded must stay recorded, as the store's own connection does it.
    if (strstr (self->settings.store, "SQLite"))
        ml_db_execute (self->db, "PRAGMA synchronous = FULL", NULL);
    if (ml_store_schema (self->db, s_schema, sizeof s_schema / sizeof s_schema[0], "mail table",
                         error, sizeof error) != 0) {
        ml_log (ML_LOG_ERROR, "mail: %s", error);
        return -1;
    }
    //  Thread-safe and reference-counted since curl 7.84.
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ml_log (ML_LOG_ERROR, "mail: cannot initialise libcurl");
        return -1;
    }
    self->curl_ready = true;
    self->curl = curl_easy_init ();
    if (!self->curl) {
        ml_log (ML_LOG_ERROR, "mail: cannot create a libcurl handle");
        return -1;
    }
    return 0;
}

void ml_mailer_actor (zsock_t *pipe, void *args)
{
    s_actor_t actor = {0};
    s_actor_t *self = &actor;
    self->pipe = pipe;
    memcpy (&self->settings, args, sizeof self->settings);
    if (s_actor_init (self) != 0) {
        s_actor_destroy (self);
        ml_service_ready (pipe, false);
        return;
    }
    //  The URL holds no secret (settings refuse user info in it).
    ml_log (ML_LOG_NOTICE, "mail: sending through %s as %s%s", self->settings.smtp_url,
            self->settings.from, *self->settings.username ? " with a login" : "");
    ml_service_ready (pipe, true);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    assert (poller);
    int64_t next_pass = zclock_mono ();
    while (!self->terminated) {
        int64_t wait = next_pass - zclock_mono ();
        if (wait > 0 && zpoller_wait (poller, (int)wait) == NULL && zpoller_terminated (poller))
            self->terminated = true;
        s_actor_commands (self);
        if (self->poked)
            next_pass = zclock_mono ();
        if (!self->terminated && zclock_mono () >= next_pass) {
            self->poked = false;
            s_pass (self);
            //  A SEND during the pass may be about a mail committed after its query.
            next_pass = self->poked ? zclock_mono () : zclock_mono () + self->settings.poll_ms;
        }
    }
    zpoller_destroy (&poller);
    s_actor_destroy (self);
    ml_log (ML_LOG_NOTICE, "mail: stopped");
}

//  ---------------------------------------------------------------------------------------
//  Selftest: against tests/smtp_server.py, a real SMTP server (aiosmtpd) on 127.0.0.1

//  Debian's python3-aiosmtpd serves Debian's interpreter, which may not be the first
//  python3 on the PATH (pyenv, a venv).
static const char *s_python (void)
{
    return access ("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

//  Start the server with extra arguments (NULL-terminated); port 0 takes a free one. Its
//  stderr goes to log_path. Returns its pid; *port is where it listens.
static pid_t s_server_start (const char *maildir, int *port, const char *log_path,
                             const char **extra)
{
    char script[600], port_text[16];
    snprintf (script, sizeof script, "%s/tests/smtp_server.py", ML_SOURCE_DIR);
    snprintf (port_text, sizeof port_text, "%d", *port);
    const char *argv[40] = {s_python (), script, "--dir", maildir, "--port", port_text};
    size_t count = 6;
    for (size_t index = 0; extra && extra[index] && count < 39; index++)
        argv[count++] = extra[index];
    argv[count] = NULL;
    pid_t pid = ml_selftest_server (argv, log_path, port);
    if (*port <= 0) {
        fprintf (stdout,
                 "\ntests/smtp_server.py did not start (is python3-aiosmtpd installed? "
                 "see scripts/deps.sh; its log: %s)\n",
                 log_path);
        fflush (stdout);
    }
    assert (*port > 0);
    return pid;
}

static void s_server_stop (pid_t *pid)
{
    if (*pid > 0) {
        kill (*pid, SIGTERM);
        int status;
        assert (waitpid (*pid, &status, 0) == *pid);
        *pid = 0;
    }
}

//  What the server kept with this Message-ID: an array of its JSON records (new reference).
static json_t *s_received (const char *maildir, const char *message_id)
{
    json_t *found = json_array ();
    DIR *directory = opendir (maildir);
    assert (directory);
    struct dirent *entry;
    while ((entry = readdir (directory))) {
        size_t length = strlen (entry->d_name);
        if (length < 6 || strcmp (entry->d_name + length - 5, ".json") != 0)
            continue;
        char path[600];
        snprintf (path, sizeof path, "%s/%s", maildir, entry->d_name);
        json_t *record = json_load_file (path, 0, NULL);
        assert (record);
        const char *id =
            json_string_value (json_object_get (json_object_get (record, "headers"), "message-id"));
        if (id && streq (id, message_id))
            json_array_append (found, record);
        json_decref (record);
    }
    closedir (directory);
    return found;
}

//  The server writes a message before it answers, but a second copy (after a timeout) may
//  still be on its way: wait for count copies, with a deadline.
static json_t *s_wait_received (const char *maildir, const char *message_id, size_t count)
{
    int64_t deadline = zclock_mono () + 10000;
    json_t *found = s_received (maildir, message_id);
    while (json_array_size (found) < count && zclock_mono () < deadline) {
        zclock_sleep (20);
        json_decref (found);
        found = s_received (maildir, message_id);
    }
    return found;
}

typedef struct {
    int64_t mail_id, attempts;
    char state[16], message_id[80], last_error[S_ERROR_MAX + 1], next_attempt_at[32];
} s_row_t;

static bool s_row (ml_db_t *db, const char *key, s_row_t *row)
{
    ml_db_query_t *query = ml_db_query (db,
                                        "SELECT mail_id, attempts, state, message_id, last_error,"
                                        " next_attempt_at FROM mail WHERE dedupe_key = ?",
                                        "s", key);
    assert (query);
    bool found = ml_db_fetch (query) == 1;
    if (found) {
        assert (ml_db_int64 (query, 0, &row->mail_id) == 0);
        assert (ml_db_int64 (query, 1, &row->attempts) == 0);
        snprintf (row->state, sizeof row->state, "%s", ml_db_text (query, 2));
        snprintf (row->message_id, sizeof row->message_id, "%s", ml_db_text (query, 3));
        const char *error = ml_db_text (query, 4), *next = ml_db_text (query, 5);
        snprintf (row->last_error, sizeof row->last_error, "%s", error ? error : "");
        snprintf (row->next_attempt_at, sizeof row->next_attempt_at, "%s", next ? next : "");
    }
    ml_db_query_destroy (&query);
    return found;
}

//  Wait until the mail is in state with at least min_attempts attempts and, unless
//  error_part is NULL, a last_error holding error_part (a pending mail's attempts count
//  from its claim, so that is how to wait for the end of a failed attempt).
static void s_wait_state (ml_db_t *db, const char *key, const char *state, int64_t min_attempts,
                          const char *error_part, s_row_t *row)
{
    int64_t deadline = zclock_mono () + 10000;
    while (true) {
        assert (s_row (db, key, row));
        if (streq (row->state, state) && row->attempts >= min_attempts &&
            (!error_part || strstr (row->last_error, error_part)))
            return;
        if (zclock_mono () > deadline) {
            printf ("\nmail %s: state %s, %lld attempts, last error '%s'; wanted %s\n", key,
                    row->state, (long long)row->attempts, row->last_error, state);
            fflush (stdout);
            assert (false);
        }
        zclock_sleep (20);
    }
}

static int s_enqueue (ml_mailer_t *mailer, const char *key, const char *recipient,
                      const char *subject, const char *body)
{
    char error[300];
    int rc = ml_mailer_enqueue (mailer, "receipt", key, "acme", recipient, subject, body, error,
                                sizeof error);
    if (rc < 0) {
        printf ("\nenqueue %s: %s\n", key, error);
        fflush (stdout);
    }
    return rc;
}

//  Write a configuration and load the mail settings from it.
static int s_load_settings (const char *directory, const char *mail_section,
                            ml_mailer_settings_t *settings, char *error, size_t error_size)
{
    char path[200], text[2048];
    snprintf (path, sizeof path, "%s/core.cfg", directory);
    snprintf (text, sizeof text,
              "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\nmail\n"
              "    outbox_key = %s/outbox.key\n%s",
              directory, directory, mail_section);
    ml_selftest_write (path, text, 0600);
    ml_config_t *config = ml_config_load (path, error, error_size);
    assert (config);
    int rc = ml_mailer_settings_load (settings, config, error, error_size);
    ml_config_destroy (&config);
    return rc;
}

//  Pure functions: addresses, UTF-8, encodings, back-off, dates.
static void s_test_encoding (void)
{
    assert (s_is_address ("pat@example.com"));
    assert (s_is_address ("pat.doe+receipts@mail.example.co.uk"));
    const char *bad_addresses[] = {"pat",
                                   "@example.com",
                                   "pat@localhost",
                                   "pat@example.com, ann@example.com",
                                   "pat@example.com\r\nBcc: spy@example.com",
                                   "Pat <pat@example.com>",
                                   "pat..doe@example.com",
                                   ".pat@example.com",
                                   "pat@-example.com",
                                   "pat@example-.com",
                                   "pat@example..com",
                                   "p\xc3\xa4t@example.com",
                                   "\"pat\"@example.com",
                                   "pat@exa_mple.com"};
    for (size_t index = 0; index < sizeof bad_addresses / sizeof bad_addresses[0]; index++)
        assert (!s_is_address (bad_addresses[index]));
    assert (s_utf8_valid ("plain \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert (!s_utf8_valid ("\xc0\xaf"));         //  overlong '/'
    assert (!s_utf8_valid ("\xed\xa0\x80"));     //  a surrogate
    assert (!s_utf8_valid ("\xf4\x90\x80\x80")); //  above U+10FFFF
    assert (!s_utf8_valid ("\xe2\x82"));         //  cut short
    assert (s_utf8_chars ("a\xc3\xa9\xe2\x82\xac") == 3);

    s_text_t text = {0};
    s_quoted_printable (&text, "a=b\ntrail \nend\t");
    assert (streq (text.data, "a=3Db\r\ntrail=20\r\nend=09\r\n"));
    text.size = 0;
    s_quoted_printable (&text, "\xc3\xa9t\xc3\xa9\r\n.\r\n");
    assert (streq (text.data, "=C3=A9t=C3=A9\r\n.\r\n"));
    text.size = 0;
    char line[201];
    memset (line, 'x', 200);
    line[200] = 0;
    s_quoted_printable (&text, line);
    assert (strncmp (text.data + 75, "=\r\n", 3) == 0 && strlen (text.data) == 200 + 2 * 3 + 2);
    text.size = 0;
    s_header_words (&text, "Receipt 42");
    assert (streq (text.data, "Receipt 42"));
    text.size = 0;
    s_header_words (&text, "Re\xc3\xa7u");
    assert (streq (text.data, "=?UTF-8?B?UmXDp3U=?="));
    text.size = 0;
    s_header_words (&text, "looks =?like?= a word");
    assert (strncmp (text.data, "=?UTF-8?B?", 10) == 0);
    //  30 two-byte characters: 44 bytes fill the first word (a 45th would cut a character).
    text.size = 0;
    char accents[101] = "";
    for (int index = 0; index < 30; index++)
        strcat (accents, "\xc3\xa9");
    s_header_words (&text, accents);
    char *fold = strstr (text.data, "?=\r\n =?UTF-8?B?");
    assert (fold && fold - text.data == 10 + 60 && !strstr (fold + 4, "\r\n"));
    text.size = 0;
    s_display_name (&text, "Acme \"Pay\" LLP");
    assert (streq (text.data, "\"Acme \\\"Pay\\\" LLP\""));
    free (text.data);

    ml_mailer_settings_t settings;
    ml_mailer_settings_defaults (&settings);
    settings.retry_base_ms = 100;
    settings.retry_max_ms = 400;
    assert (s_backoff_ms (&settings, 1) == 100 && s_backoff_ms (&settings, 2) == 200);
    assert (s_backoff_ms (&settings, 3) == 400 && s_backoff_ms (&settings, 1000) == 400);
    ml_mailer_settings_defaults (&settings);
    assert (s_backoff_ms (&settings, 1) == 30000 && s_backoff_ms (&settings, 30) == 3600000);
    struct {
        const char *url, *host;
        bool implicit_tls;
    } urls[] = {{"smtp://mail.example.com", "mail.example.com", false},
                {"smtp://mail.example.com:587/client.example", "mail.example.com", false},
                {"smtps://10.0.0.5:465", "10.0.0.5", true},
                {"smtp://[::1]:2525", "[::1]", false},
                {"smtp://mail.example.com:", NULL, false},
                {"smtp://[::1", NULL, false},
                {"smtp://[::1]x", NULL, false},
                {"smtp://mail.example.com:0", NULL, false},
                {"smtp://mail.example.com:25x", NULL, false},
                {"smtp:///path", NULL, false},
                {"smtp://u@mail.example.com", NULL, false},
                {"smtp://mail.example.com/?x", NULL, false},
                {"SMTP://mail.example.com", NULL, false}};
    for (size_t index = 0; index < sizeof urls / sizeof urls[0]; index++) {
        char host[64] = "", problem[200] = "";
        bool implicit_tls = false;
        int rc = s_parse_url (urls[index].url, &implicit_tls, host, sizeof host, problem,
                              sizeof problem);
        if (urls[index].host)
            assert (rc == 0 && streq (host, urls[index].host) &&
                    implicit_tls == urls[index].implicit_tls);
        else
            assert (rc == -1 && *problem);
    }
    assert (s_is_loopback ("127.0.0.1") && s_is_loopback ("[::1]") && !s_is_loopback ("10.0.0.1"));
    char date[64];
    s_mail_date ("2024-03-05T07:08:09.123Z", date, sizeof date);
    assert (streq (date, "Tue, 05 Mar 2024 07:08:09 +0000"));
}

//  What enqueue refuses, and that it joins the caller's transaction.
static void s_test_enqueue (ml_mailer_t *mailer, ml_db_t *db)
{
    char error[300], big[ML_MAILER_BODY_MAX + 2], subject[ML_MAILER_SUBJECT_MAX + 2];
    const char *ok = "Your receipt";
    struct {
        const char *kind, *key, *firm, *recipient, *subject, *body, *expect;
    } refused[] = {
        {"receipt", "k1", "acme", "pat@example.com", "Receipt\r\nBcc: spy@example.com", "x",
         "line break"},
        {"receipt", "k1", "acme", "pat@example.com", "Receipt\nBcc: spy@example.com", "x",
         "line break"},
        {"receipt", "k1", "acme", "pat@example.com\r\nBcc: spy@example.com", ok, "x", "line break"},
        {"receipt", "k1", "acme", "pat@example.com, spy@example.com", ok, "x", "one e-mail"},
        {"receipt", "k1", "acme", "Pat <pat@example.com>", ok, "x", "one e-mail"},
        {"receipt", "k1", "acme", "pat@example.com", "", "x", "subject must be"},
        {"receipt", "k1", "acme", "pat@example.com", "bad \xc0\xaf utf-8", "x", "subject must"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "", "body must be"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "bare\rreturn", "control characters"},
        {"receipt", "k1", "acme", "pat@example.com", ok, "bell\a", "control characters"},
        {"Receipt", "k1", "acme", "pat@example.com", ok, "x", "kind must"},
        {"receipt", "with space", "acme", "pat@example.com", ok, "x", "dedupe_key must"},
        {"receipt", "k1", "", "pat@example.com", ok, "x", "firm_id must"},
        {"receipt", "k1", "nosuchfirm", "pat@example.com", ok, "x", "store refused"},
    };
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        int rc =
            ml_mailer_enqueue (mailer, refused[index].kind, refused[index].key, refused[index].firm,
                               refused[index].recipient, refused[index].subject,
                               refused[index].body, error, sizeof error);
        if (rc != -1 || !strstr (error, refused[index].expect)) {
            printf ("\ncase %zu: rc %d, error '%s'\n", index, rc, error);
            fflush (stdout);
        }
        assert (rc == -1 && strstr (error, refused[index].expect));
        assert (!strstr (error, "spy@"));
    }
    memset (subject, 's', sizeof subject - 1);
    subject[sizeof subject - 1] = 0;
    assert (ml_mailer_enqueue (mailer, "receipt", "k1", "acme", "pat@example.com", subject, "x",
                               error, sizeof error) == -1);
    subject[ML_MAILER_SUBJECT_MAX] = 0;
    memset (big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert (ml_mailer_enqueue (mailer, "receipt", "k1", "acme", "pat@example.com", ok, big, error,
                               sizeof error) == -1);
    assert (strstr (error, "64 KiB"));
    s_row_t row;
    assert (!s_row (db, "k1", &row));

    //  A mail enqueued in a transaction that rolls back was never there.
    assert (ml_db_begin (db) == 0);
    assert (ml_mailer_enqueue (mailer, "receipt", "rolled-back", "acme", "pat@example.com", ok, "x",
                               error, sizeof error) == 1);
    assert (ml_db_rollback (db) == 0);
    assert (!s_row (db, "rolled-back", &row));
}

static void s_test_settings (const char *directory)
{
    char error[600], section[1024], password_file[200];
    ml_mailer_settings_t settings;
    const char *password = "pw-Zq8v R2mN";
    snprintf (password_file, sizeof password_file, "%s/smtp.password", directory);
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0600);
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://mail.example.com:587\"\n"
              "    from = payments@matterlink.example\n    from_name = \"Acme LLP\"\n"
              "    username = matterlink\n    password_file = \"%s\"\n    retry_base_ms = 100\n"
              "    max_attempts = 4\n",
              password_file);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == 0);
    assert (streq (settings.password, password) && streq (settings.username, "matterlink"));
    assert (settings.starttls && settings.retry_base_ms == 100 && settings.max_attempts == 4);
    assert (settings.timeout_ms == 60000 && settings.poll_ms == 5000);
    assert (strstr (settings.store, "core.db"));
    ml_mailer_settings_wipe (&settings);
    assert (!*settings.password);

    //  A password file others can read is refused, and the message holds no password.
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0644);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == -1);
    assert (strstr (error, "chmod 600") && !strstr (error, "Zq8v"));
    ml_selftest_write (password_file, "pw-Zq8v R2mN\n", 0600);

    struct {
        const char *section, *expect;
    } bad[] = {
        {"    smtp_url = \"http://mail.example.com\"\n    from = a@example.com\n", "smtp://"},
        {"    smtp_url = \"smtp://user:secret@mail.example.com\"\n    from = a@example.com\n",
         "must not hold a user"},
        {"    smtp_url = \"smtp://mail.example.com:99999\"\n    from = a@example.com\n", "port"},
        {"    smtp_url = \"smtp://:25\"\n    from = a@example.com\n", "needs a host"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = \"Pay <a@example.com>\"\n",
         "mail/from"},
        {"    smtp_url = \"smtp://mail.example.com\"\n", "mail/from"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    starttls = try\n",
         "no 'try'"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    starttls = no\n    username = u\n    password_file = \"PASSWORD_FILE\"\n",
         "clear text"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    username = u\n",
         "needs mail/password_file"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    connect_timeout_ms = 5000\n    timeout_ms = 1000\n",
         "timeout_ms"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    retry_base_ms = 5000\n    retry_max_ms = 1000\n",
         "retry_max_ms"},
        {"    smtp_url = \"smtp://mail.example.com\"\n    from = a@example.com\n"
         "    max_attempts = 0\n",
         "max_attempts"},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        char text[1024];
        const char *marker = strstr (bad[index].section, "PASSWORD_FILE");
        if (marker)
            snprintf (text, sizeof text, "%.*s%s%s", (int)(marker - bad[index].section),
                      bad[index].section, password_file, marker + strlen ("PASSWORD_FILE"));
        else
            snprintf (text, sizeof text, "%s", bad[index].section);
        int rc = s_load_settings (directory, text, &settings, error, sizeof error);
        if (rc != -1 || !strstr (error, bad[index].expect)) {
            printf ("\nsettings case %zu: rc %d, error '%s'\n", index, rc, error);
            fflush (stdout);
        }
        assert (rc == -1 && strstr (error, bad[index].expect));
        assert (!strstr (error, "secret") && !strstr (error, "Zq8v"));
        ml_mailer_settings_wipe (&settings);
    }
    //  Clear text to this machine is fine (the tests' server).
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://127.0.0.1:2525\"\n    from = a@example.com\n"
              "    starttls = no\n    username = u\n    password_file = \"%s\"\n",
              password_file);
    assert (s_load_settings (directory, section, &settings, error, sizeof error) == 0);
    assert (!settings.starttls);
    ml_mailer_settings_wipe (&settings);
}

//  The body of the first test mail: UTF-8, a line that is only ".", one that starts with
//  dots, a long line, trailing spaces, '=' and a "From " line.
#define S_TEST_BODY                                                                                \
    "Dear Zo\xc3\xab,\n\nWe received your payment of \xe2\x82\xac"                                 \
    "125.00 for matter "                                                                           \
    "2024-0042 (M\xc3\xbcller v. \xc3\x85str\xc3\xb6m).\n.\n..leading dots\n"                      \
    "A = B, and a line long enough to need a soft break in quoted-printable: "                     \
    "lorem ipsum dolor sit amet, consectetur adipiscing elit.   \n"                                \
    "From the firm, with thanks \xf0\x9f\x99\x8f\n\tIndented.\n"

static void s_check_first_mail (json_t *record, const char *subject, const char *recipient)
{
    json_t *headers = json_object_get (record, "headers");
    assert (streq (json_string_value (json_object_get (record, "mail_from")),
                   "payments@matterlink.example"));
    json_t *rcpt = json_object_get (record, "rcpt_tos");
    assert (json_array_size (rcpt) == 1 &&
            streq (json_string_value (json_array_get (rcpt, 0)), recipient));
    assert (streq (json_string_value (json_object_get (headers, "subject")), subject));
    assert (streq (json_string_value (json_object_get (headers, "to")), recipient));
    const char *from = json_string_value (json_object_get (headers, "from"));
    assert (strstr (from, "M\xc3\xbcller & Partner") &&
            strstr (from, "<payments@matterlink.example>"));
    assert (streq (json_string_value (json_object_get (headers, "mime-version")), "1.0"));
    assert (strstr (json_string_value (json_object_get (headers, "content-type")), "text/plain"));
    const char *content_type = json_string_value (json_object_get (headers, "content-type"));
    char lowered[128];
    snprintf (lowered, sizeof lowered, "%s", content_type);
    for (char *cursor = lowered; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    assert (strstr (lowered, "charset=utf-8") || strstr (lowered, "charset=\"utf-8\""));
    assert (streq (json_string_value (json_object_get (headers, "content-transfer-encoding")),
                   "quoted-printable"));
    assert (
        streq (json_string_value (json_object_get (headers, "auto-submitted")), "auto-generated"));
    assert (json_string_length (json_object_get (headers, "date")) > 20);
    //  Every header once: nothing was added by a value.
    const char *key;
    json_t *value;
    json_object_foreach (json_object_get (record, "header_count"), key, value)
        assert (json_integer_value (value) == 1);
    assert (json_object_size (json_object_get (record, "header_count")) == 9);
    //  The body as Python decodes it, line ends aside.
    const char *body = json_string_value (json_object_get (record, "body"));
    assert (body);
    s_text_t plain = {0};
    for (const char *cursor = body; *cursor; cursor++)
        if (*cursor != '\r')
            s_add (&plain, cursor, 1);
    assert (streq (plain.data, S_TEST_BODY));
    free (plain.data);
    //  The raw message: 7-bit, CRLF only, short lines, no defects found by Python's parser.
    assert (json_array_size (json_object_get (record, "defects")) == 0);
    assert (json_is_false (json_object_get (record, "eight_bit")));
    assert (json_is_false (json_object_get (record, "bare_lf")));
    assert (json_is_false (json_object_get (record, "bare_cr")));
    assert (json_integer_value (json_object_get (record, "max_line")) <= 78);
}

static zactor_t *s_actor_start (ml_mailer_settings_t *settings);

//  True if the file holds the bytes of needle anywhere (false when there is no file).
static bool s_file_holds (const char *path, const char *needle)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return false;
    size_t size = 0, capacity = 1 << 20;
    char *data = malloc (capacity);
    assert (data);
    size_t got;
    while ((got = fread (data + size, 1, capacity - size, file)) > 0) {
        size += got;
        if (size == capacity) {
            data = realloc (data, capacity *= 2);
            assert (data);
        }
    }
    fclose (file);
    size_t length = strlen (needle);
    bool found = false;
    for (size_t at = 0; !found && length && at + length <= size; at++)
        found = memcmp (data + at, needle, length) == 0;
    free (data);
    return found;
}

//  The outbox key's rules, on its own (no store needed).
static void s_test_outbox_key (const char *directory)
{
    char path[200], error[600];
    unsigned char key[S_KEY_BYTES];
    snprintf (path, sizeof path, "%s/key-rules.key", directory);
    assert (ml_mailer_outbox_key_make (path, error, sizeof error) == 0);
    struct stat info;
    assert (stat (path, &info) == 0 && (info.st_mode & 0777) == 0600 &&
            info.st_size == S_KEY_BYTES);
    assert (s_key_read (path, key, error, sizeof error) == 0);
    //  Never replaced.
    assert (ml_mailer_outbox_key_make (path, error, sizeof error) == -1);
    assert (strstr (error, "File exists"));
    //  Readable by others: refused, with the fix.
    assert (chmod (path, 0640) == 0);
    assert (s_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "chmod 600") && strstr (error, path));
    //  Unreadable: says why.
    assert (chmod (path, 0600) == 0);
    snprintf (path, sizeof path, "%s/no-such.key", directory);
    assert (s_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "No such file"));
    //  The wrong size.
    snprintf (path, sizeof path, "%s/short.key", directory);
    ml_selftest_write (path, "0123456789", 0600);
    assert (s_key_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "not the 32"));
    //  Sealed for one row under one key: opened only for that row, under that key.
    unsigned char other[S_KEY_BYTES];
    randombytes_buf (key, sizeof key);
    randombytes_buf (other, sizeof other);
    char *sealed = s_seal (key, "<m-1@x>", "pat@example.com", "code 1234");
    assert (strncmp (sealed, S_SEALED, strlen (S_SEALED)) == 0 && !strstr (sealed, "1234"));
    char *body = s_open (key, "<m-1@x>", "pat@example.com", sealed);
    assert (body && streq (body, "code 1234"));
    free (body);
    assert (!s_open (other, "<m-1@x>", "pat@example.com", sealed));
    assert (!s_open (key, "<m-2@x>", "pat@example.com", sealed));
    assert (!s_open (key, "<m-1@x>", "thief@example.com", sealed));
    assert (!s_open (key, "<m-1@x>", "pat@example.com", "code 1234"));
    sealed[strlen (sealed) - 3] ^= 1;
    assert (!s_open (key, "<m-1@x>", "pat@example.com", sealed));
    free (sealed);
}

//  A copy of the store alone cannot read a mail: the body's secret is in none of the store's
//  files, another key cannot open it, nor can the right key once the row was redirected. A
//  body an older release left in clear text is sealed when the outbox opens. No actor may
//  run on the store when this is called.
static void s_test_sealed (ml_mailer_t *mailer, ml_db_t *db, const char *directory,
                           const char *maildir, ml_mailer_settings_t *settings)
{
    const char *secret = "7f3a9c2e51b84d06a1e9c3f5b7d20486";
    char body[200], path[200], error[600];
    snprintf (body, sizeof body, "Your payment code: %s\n", secret);
    assert (s_enqueue (mailer, "link:sealed", "pat@example.com", "Your link", body) == 1);
    const char *suffixes[] = {"", "-wal", "-journal"};
    for (size_t index = 0; index < 3; index++) {
        snprintf (path, sizeof path, "%s/core.db%s", directory, suffixes[index]);
        assert (!s_file_holds (path, secret) && !s_file_holds (path, "payment code"));
    }
    //  Another key: the mail fails for good, with why, and nothing is sent.
    ml_mailer_settings_t other = *settings;
    snprintf (other.outbox_key, sizeof other.outbox_key, "%s/other.key", directory);
    assert (ml_mailer_outbox_key_make (other.outbox_key, error, sizeof error) == 0);
    zactor_t *actor = s_actor_start (&other);
    zstr_send (actor, "SEND");
    s_row_t row;
    s_wait_state (db, "link:sealed", "failed", 1, "outbox key", &row);
    zactor_destroy (&actor);
    //  The right key, but the row was redirected in the store: not opened either.
    assert (ml_mailer_retry (mailer, row.mail_id) == 1);
    assert (ml_db_execute (db, "UPDATE mail SET recipient = 'thief@example.com' WHERE mail_id = ?",
                           "i", row.mail_id) == 1);
    actor = s_actor_start (settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:sealed", "failed", 1, "outbox key", &row);
    json_t *received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    //  Put back: sent, and the payer gets the secret.
    assert (ml_db_execute (db, "UPDATE mail SET recipient = 'pat@example.com' WHERE mail_id = ?",
                           "i", row.mail_id) == 1);
    assert (ml_mailer_retry (mailer, row.mail_id) == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:sealed", "sent", 1, NULL, &row);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    assert (strstr (json_string_value (json_object_get (json_array_get (received, 0), "body")),
                    secret));
    json_decref (received);
    zactor_destroy (&actor);
    //  A body from before sealing: sealed when the outbox opens, then sent as it was.
    assert (ml_db_execute (db,
                           "INSERT INTO mail (dedupe_key, message_id, kind, firm_id, recipient,"
                           " subject, body, state, attempts, next_attempt_at, created_at,"
                           " updated_at) VALUES ('link:old', '<old-1@matterlink.invalid>',"
                           " 'payment_link', 'acme', 'pat@example.com', 'Old', ?, 'pending', 0,"
                           " '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z',"
                           " '2020-01-01T00:00:00.000Z')",
                           "s", "old code 5be0c1d2e3f4a5b6c7d8e9f0a1b2c3d4\n") == 1);
    ml_mailer_t *reopened = ml_mailer_new (db, settings->outbox_key, error, sizeof error);
    assert (reopened);
    ml_mailer_destroy (&reopened);
    ml_db_query_t *query =
        ml_db_query (db, "SELECT body FROM mail WHERE dedupe_key = 'link:old'", NULL);
    assert (query && ml_db_fetch (query) == 1);
    assert (strncmp (ml_db_text (query, 0), S_SEALED, strlen (S_SEALED)) == 0);
    ml_db_query_destroy (&query);
    actor = s_actor_start (settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "link:old", "sent", 1, NULL, &row);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    assert (strstr (json_string_value (json_object_get (json_array_get (received, 0), "body")),
                    "old code 5be0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"));
    json_decref (received);
    zactor_destroy (&actor);
}

//  Settings for the actors of this test: fast, and against the local server.
static void s_test_settings_for (ml_mailer_settings_t *settings, const char *directory, int port)
{
    ml_mailer_settings_defaults (settings);
    snprintf (settings->store, sizeof settings->store, "%s",
              ml_selftest_store_connection (directory));
    snprintf (settings->outbox_key, sizeof settings->outbox_key, "%s/outbox.key", directory);
    snprintf (settings->smtp_url, sizeof settings->smtp_url, "smtp://127.0.0.1:%d", port);
    settings->starttls = false;
    snprintf (settings->from, sizeof settings->from, "payments@matterlink.example");
    snprintf (settings->from_name, sizeof settings->from_name, "M\xc3\xbcller & Partner");
    settings->connect_timeout_ms = 1000;
    settings->timeout_ms = 1000;
    settings->retry_base_ms = 100;
    settings->retry_max_ms = 400;
    settings->max_attempts = 5;
    settings->poll_ms = 100;
}

static zactor_t *s_actor_start (ml_mailer_settings_t *settings)
{
    zactor_t *actor = ml_service_start (ml_mailer_actor, settings);
    assert (actor);
    return actor;
}

void ml_mailer_test (bool verbose)
{
    printf (" * ml_mailer: ");
    fflush (stdout);
    s_test_encoding ();

    char directory[128], maildir[200], log_path[200], server_log[200], error[600];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_db_t *db = ml_store_db (store);
    snprintf (maildir, sizeof maildir, "%s/received", directory);
    snprintf (log_path, sizeof log_path, "%s/ml_log.txt", directory);
    snprintf (server_log, sizeof server_log, "%s/smtp_server.txt", directory);
    assert (mkdir (maildir, 0700) == 0);

    //  Every log line of this test goes to a file, at debug level, to be searched for the
    //  password at the end.
    ml_log_level_t saved_level = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_DEBUG);
    fflush (stderr);
    int saved_stderr = dup (STDERR_FILENO);
    int log_fd = open (log_path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert (saved_stderr >= 0 && log_fd >= 0);
    dup2 (log_fd, STDERR_FILENO);
    close (log_fd);

    s_test_outbox_key (directory);
    char outbox_key[200];
    snprintf (outbox_key, sizeof outbox_key, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (db, outbox_key, error, sizeof error);
    assert (mailer);
    s_test_enqueue (mailer, db);
    s_test_settings (directory);

    //  One server plays every scenario, one recipient each: it refuses bounce@, answers 451
    //  twice to t451@ and always to busy@, drops the connection once for drop@, keeps then
    //  drops once for window@, and is slow (2.5 s) once for slow@ and stop@.
    int port = 0;
    const char *server_args[] = {"--reject",
                                 "bounce@example.com",
                                 "--tempfail",
                                 "2:t451@example.com",
                                 "--drop",
                                 "1:drop@example.com",
                                 "--accept-drop",
                                 "1:window@example.com",
                                 "--slow",
                                 "1:slow@example.com",
                                 "--slow",
                                 "1:stop@example.com",
                                 "--delay-ms",
                                 "2500",
                                 "--tempfail",
                                 "9:busy@example.com",
                                 NULL};
    pid_t server = s_server_start (maildir, &port, server_log, server_args);
    ml_mailer_settings_t settings;
    s_test_settings_for (&settings, directory, port);
    //  Settings made by hand are checked again: the service does not start on bad ones.
    snprintf (settings.from, sizeof settings.from, "not an address");
    assert (ml_service_start (ml_mailer_actor, &settings) == NULL);
    s_test_settings_for (&settings, directory, port);
    zactor_t *actor = s_actor_start (&settings);

    //  A receipt arrives once, with its headers and body intact, though enqueued twice.
    const char *subject = "Re\xc3\xa7u de paiement \xe2\x80\x94 \xe2\x82\xac"
                          "125.00, merci";
    //  As the core does it: the mail in the transaction of the event, SEND after commit.
    assert (ml_db_begin (db) == 0);
    assert (s_enqueue (mailer, "receipt:p-1", "zoe@example.com", subject, S_TEST_BODY) == 1);
    assert (s_enqueue (mailer, "receipt:p-1", "zoe@example.com", subject, S_TEST_BODY) == 0);
    assert (ml_db_commit (db) == 0);
    zstr_send (actor, "SEND");
    s_row_t row;
    s_wait_state (db, "receipt:p-1", "sent", 1, NULL, &row);
    assert (row.attempts == 1 && !*row.last_error && !*row.next_attempt_at);
    assert (strncmp (row.message_id, "<", 1) == 0 &&
            strstr (row.message_id, "@matterlink.invalid>"));
    json_t *received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    s_check_first_mail (json_array_get (received, 0), subject, "zoe@example.com");
    json_decref (received);
    zactor_destroy (&actor);
    s_test_sealed (mailer, db, directory, maildir, &settings);
    actor = s_actor_start (&settings);

    //  The largest body, with multi-byte characters across the store's read pieces.
    char *large = malloc (ML_MAILER_BODY_MAX + 1);
    assert (large);
    const char *pattern[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n"};
    size_t used = 0;
    for (size_t index = 0; used + 4 <= ML_MAILER_BODY_MAX; index++) {
        const char *piece = pattern[(index * 7 + index / 3) % 5];
        memcpy (large + used, piece, strlen (piece));
        used += strlen (piece);
    }
    while (used < ML_MAILER_BODY_MAX)
        large[used++] = 'z';
    large[used] = 0;
    assert (s_enqueue (mailer, "receipt:large", "zoe@example.com", "Large", large) == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:large", "sent", 1, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    const char *got = json_string_value (json_object_get (json_array_get (received, 0), "body"));
    s_text_t plain = {0};
    for (const char *cursor = got; *cursor; cursor++)
        if (*cursor != '\r')
            s_add (&plain, cursor, 1);
    assert (plain.size == ML_MAILER_BODY_MAX + 1 && strncmp (plain.data, large, used) == 0);
    free (plain.data);
    free (large);
    json_decref (received);

    //  A 550 to the recipient: failed at once, with the server's reason, nothing received.
    assert (s_enqueue (mailer, "receipt:bounce", "bounce@example.com", "Receipt", "Thanks.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:bounce", "failed", 1, "550", &row);
    assert (row.attempts == 1 && strstr (row.last_error, "RCPT TO") &&
            strstr (row.last_error, "550"));
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    //  Staff see it, and can try again (it fails again: the address is still refused).
    json_t *request = json_pack ("{s:s, s:s}", "state", "failed", "firm", "acme");
    json_t *reply = ml_mailer_execute (mailer, "mail-list", request);
    json_decref (request);
    json_t *mails = json_object_get (reply, "mails");
    assert (json_is_true (json_object_get (reply, "ok")) && json_array_size (mails) == 1);
    json_t *listed = json_array_get (mails, 0);
    assert (
        streq (json_string_value (json_object_get (listed, "recipient")), "bounce@example.com"));
    assert (json_integer_value (json_object_get (listed, "attempts")) == 1);
    assert (strstr (json_string_value (json_object_get (listed, "last_error")), "550"));
    assert (!json_object_get (listed, "body"));
    json_decref (reply);
    request = json_pack ("{s:I}", "mail_id", (json_int_t)row.mail_id);
    reply = ml_mailer_execute (mailer, "mail-retry", request);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    reply = ml_mailer_execute (mailer, "mail-retry", request); //  pending now: refused
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:bounce", "failed", 1, "550", &row);
    request = json_pack ("{s:s}", "state", "lost");
    reply = ml_mailer_execute (mailer, "mail-list", request);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (request);
    assert (ml_mailer_execute (mailer, "status", NULL) == NULL);
    json_t *all = ml_mailer_list (mailer, NULL, "acme", 10);
    assert (json_array_size (all) == 5); //  with the two of s_test_sealed
    json_decref (all);

    //  451 twice, then accepted: one message, three attempts.
    assert (s_enqueue (mailer, "receipt:451", "t451@example.com", "Tempfail", "Three tries.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:451", "sent", 3, NULL, &row);
    assert (row.attempts == 3);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  The connection drops before the answer (nothing kept): sent again, received once.
    assert (s_enqueue (mailer, "receipt:drop", "drop@example.com", "Drop", "Two tries.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:drop", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    received = s_wait_received (maildir, row.message_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  The at-least-once window: the server kept the message but its answer was lost. It
    //  arrives twice, byte for byte the same, with the same Message-ID.
    assert (s_enqueue (mailer, "receipt:window", "window@example.com", "Window", "Twice.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:window", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    received = s_wait_received (maildir, row.message_id, 2);
    assert (json_array_size (received) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (received, 0), "sha256")),
                   json_string_value (json_object_get (json_array_get (received, 1), "sha256"))));
    json_decref (received);
    //  A server slower than timeout_ms: the attempt times out and is retried. The server
    //  drops the message whose client left before the answer (checked again at the end).
    assert (s_enqueue (mailer, "receipt:slow", "slow@example.com", "Slow", "Late.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:slow", "sent", 2, NULL, &row);
    assert (row.attempts == 2);
    char slow_id[80];
    snprintf (slow_id, sizeof slow_id, "%s", row.message_id);
    received = s_wait_received (maildir, slow_id, 1);
    assert (json_array_size (received) == 1);
    json_decref (received);
    //  A server that never stops answering 451: after max_attempts, failed, with the reason.
    assert (s_enqueue (mailer, "receipt:busy", "busy@example.com", "Busy", "Never.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:busy", "failed", 5, "gave up after 5 attempts", &row);
    assert (row.attempts == 5 && strstr (row.last_error, "451"));
    zactor_destroy (&actor);

    //  Stopping while a mail is in flight (the server is slow) takes less than a second, and
    //  the attempt does not count.
    settings.timeout_ms = 10000;
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:stop", "stop@example.com", "Stop", "Abandoned.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:stop", "pending", 1, NULL, &row);
    zclock_sleep (200); //  into the server's delay of 2.5 s
    int64_t stop_started = zclock_mono ();
    zactor_destroy (&actor);
    assert (zclock_mono () - stop_started < 2000);
    assert (s_row (db, "receipt:stop", &row));
    assert (streq (row.state, "pending") && row.attempts == 0);
    settings.timeout_ms = 1000;

    //  The server goes away: the mail stays pending, with the reason and a back-off.
    s_server_stop (&server);
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:down-1", "zoe@example.com", "Down 1", "One.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:down-1", "pending", 1, "connecting", &row);
    assert (strstr (row.last_error, "connecting") && *row.next_attempt_at);
    //  A restart: the actor goes, a mail is enqueued meanwhile, a new actor sends both when
    //  the server is back, and the mail abandoned above.
    zactor_destroy (&actor);
    assert (s_enqueue (mailer, "receipt:down-2", "zoe@example.com", "Down 2", "Two.") == 1);
    server = s_server_start (maildir, &port, server_log, server_args + 10); //  slow stop@ only
    actor = s_actor_start (&settings);
    s_wait_state (db, "receipt:down-1", "sent", 2, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    s_wait_state (db, "receipt:down-2", "sent", 1, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    s_wait_state (db, "receipt:stop", "sent", 1, NULL, &row);
    char stop_id[80];
    snprintf (stop_id, sizeof stop_id, "%s", row.message_id);
    zactor_destroy (&actor);

    //  STARTTLS required, and this server does not offer it: never sent in clear text.
    settings.starttls = true;
    actor = s_actor_start (&settings);
    assert (s_enqueue (mailer, "receipt:tls", "zoe@example.com", "TLS", "Secret.") == 1);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "pending", 1, "STARTTLS", &row);
    assert (strstr (row.last_error, "STARTTLS"));
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 0);
    json_decref (received);
    zactor_destroy (&actor);
    s_server_stop (&server);

    //  STARTTLS with a certificate we trust, and a login.
    char certificate[200], key[200], password_file[200], server_password[200], command[1200];
    snprintf (certificate, sizeof certificate, "%s/server.crt", directory);
    snprintf (key, sizeof key, "%s/server.key", directory);
    snprintf (password_file, sizeof password_file, "%s/smtp.password", directory);
    snprintf (server_password, sizeof server_password, "%s/server.password", directory);
    snprintf (command, sizeof command,
              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout '%s' -out '%s' -days 2 -subj /CN=127.0.0.1 "
              "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
              key, certificate);
    assert (system (command) == 0);
    const char *password = "s3cr3t-SMTP-pw";
    ml_selftest_write (server_password, "s3cr3t-SMTP-pw\n", 0600);
    ml_selftest_write (password_file, "wrong-SMTP-pw\n", 0600);
    const char *tls_args[] = {
        "--tls-cert",           certificate,     "--tls-key", key, "--auth-user", "matterlink",
        "--auth-password-file", server_password, NULL};
    server = s_server_start (maildir, &port, server_log, tls_args);
    char section[1024];
    snprintf (section, sizeof section,
              "    smtp_url = \"smtp://127.0.0.1:%d\"\n    from = payments@matterlink.example\n"
              "    ca_file = \"%s\"\n    username = matterlink\n    password_file = \"%s\"\n"
              "    connect_timeout_ms = 1000\n    timeout_ms = 2000\n    retry_base_ms = 100\n"
              "    retry_max_ms = 400\n    poll_ms = 100\n",
              port, certificate, password_file);
    ml_mailer_settings_t tls_settings;
    assert (s_load_settings (directory, section, &tls_settings, error, sizeof error) == 0);
    snprintf (tls_settings.store, sizeof tls_settings.store, "%s", settings.store);
    //  A wrong password: refused, kept pending (a settings problem, not the mail's).
    actor = s_actor_start (&tls_settings);
    ml_mailer_settings_wipe (&tls_settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "pending", 2, "535", &row);
    assert (strstr (row.last_error, "login") && strstr (row.last_error, "535"));
    zactor_destroy (&actor);
    ml_selftest_write (password_file, "s3cr3t-SMTP-pw\n", 0600);
    assert (s_load_settings (directory, section, &tls_settings, error, sizeof error) == 0);
    snprintf (tls_settings.store, sizeof tls_settings.store, "%s", settings.store);
    actor = s_actor_start (&tls_settings);
    ml_mailer_settings_wipe (&tls_settings);
    zstr_send (actor, "SEND");
    s_wait_state (db, "receipt:tls", "sent", 3, NULL, &row);
    received = s_received (maildir, row.message_id);
    assert (json_array_size (received) == 1);
    json_t *record = json_array_get (received, 0);
    assert (json_is_true (json_object_get (record, "tls")));
    assert (streq (json_string_value (json_object_get (record, "auth")), "matterlink"));
    json_decref (received);
    zactor_destroy (&actor);
    s_server_stop (&server);
    //  Long after the slow server's delay: the attempts that timed out or were abandoned left
    //  no copy behind.
    received = s_received (maildir, slow_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    received = s_received (maildir, stop_id);
    assert (json_array_size (received) == 1);
    json_decref (received);
    ml_mailer_destroy (&mailer);
    ml_mailer_destroy (&mailer);

    //  Back to stderr; then search what was logged, ours and the server's, and the store.
    fflush (stderr);
    dup2 (saved_stderr, STDERR_FILENO);
    close (saved_stderr);
    ml_log_setup (NULL, saved_level);
    char *logged = ml_selftest_read (log_path);
    char *server_logged = ml_selftest_read (server_log);
    if (verbose)
        printf ("\n%s%s", logged, server_logged);
    assert (strstr (logged, "mail: sent mail"));
    assert (strstr (logged, "refused our login"));
    assert (strstr (logged, "failed for good"));
    //  AUTH PLAIN's base64 of "\0matterlink\0password" too, in case a trace leaked.
    s_text_t plain_auth = {0};
    s_base64 (&plain_auth, (const unsigned char *)"\0matterlink\0s3cr3t-SMTP-pw", 26);
    const char *secrets[] = {password, "wrong-SMTP-pw", "Zq8v", plain_auth.data};
    all = ml_store_rows (ml_db_query (db, "SELECT last_error FROM mail", NULL), s_integer_column);
    char *rows_text = json_dumps (all, 0);
    for (size_t index = 0; index < sizeof secrets / sizeof secrets[0]; index++)
        assert (!strstr (logged, secrets[index]) && !strstr (server_logged, secrets[index]) &&
                !strstr (rows_text, secrets[index]));
    free (rows_text);
    json_decref (all);
    free (plain_auth.data);
    free (logged);
    free (server_logged);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
