/*  ml_mailer's outbox key and sealed bodies: a body is sealed (XSalsa20-Poly1305) for its
    Message-ID and recipient before it is stored, and opened just before it is sent. */
#include "ml_mail_internal.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NONCE    crypto_secretbox_NONCEBYTES
#define S_BOX_MAC  crypto_secretbox_MACBYTES
#define S_KEY_FILE "outbox.key" //  next to the core's certificate, unless mail/outbox_key

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
//  ML_MAIL_KEY_BYTES bytes. Returns 0, or -1 with a message that names the file and the fix.
int ml_mail_key_read (const char *path, unsigned char *key, char *error, size_t error_size)
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
    else if (info.st_size != ML_MAIL_KEY_BYTES)
        snprintf (error, error_size,
                  "mail/outbox_key: %s holds %lld bytes, not the %d of an outbox key: restore "
                  "it from the backup kept with the core's certificate (a new key cannot open "
                  "the mail already waiting)",
                  path, (long long)info.st_size, ML_MAIL_KEY_BYTES);
    else if (read (fd, key, ML_MAIL_KEY_BYTES) != ML_MAIL_KEY_BYTES)
        snprintf (error, error_size, "mail/outbox_key: cannot read %s: %s", path, strerror (errno));
    else
        rc = 0;
    close (fd);
    if (rc != 0)
        sodium_memzero (key, ML_MAIL_KEY_BYTES);
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
    unsigned char key[ML_MAIL_KEY_BYTES];
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
char *ml_mail_seal (const unsigned char *key, const char *message_id, const char *recipient,
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
    size_t size = strlen (ML_MAIL_SEALED) +
                  sodium_base64_ENCODED_LEN (box_size, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc (size);
    assert (text);
    memcpy (text, ML_MAIL_SEALED, strlen (ML_MAIL_SEALED));
    sodium_bin2base64 (text + strlen (ML_MAIL_SEALED), size - strlen (ML_MAIL_SEALED), box,
                       box_size, sodium_base64_VARIANT_ORIGINAL);
    free (box);
    return text;
}

//  Open a sealed body of the row (message_id, recipient). Returns the body (caller wipes
//  and frees) or NULL: not sealed, damaged, sealed for another row, or under another key.
char *ml_mail_open (const unsigned char *key, const char *message_id, const char *recipient,
                    const char *sealed)
{
    if (strncmp (sealed, ML_MAIL_SEALED, strlen (ML_MAIL_SEALED)) != 0)
        return NULL;
    const char *text = sealed + strlen (ML_MAIL_SEALED);
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
