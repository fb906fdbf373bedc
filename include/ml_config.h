/*  ml_config: a ZPL configuration file (czmq zconfig) read with validation.

    Getters never abort: the first problem (a missing required key, a number out of range)
    is remembered with the key's path, later getters return their defaults, and the caller
    checks ml_config_error once at the end and prints it for the person who wrote the file.
*/
#ifndef ML_CONFIG_H_INCLUDED
#define ML_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_config_t ml_config_t;

//  The largest configuration file read: a real one is a few KB, and checking its keys takes
//  time that grows with the square of their number.
#define ML_CONFIG_MAX_FILE 65536

//  Load a file (a regular file of at most ML_CONFIG_MAX_FILE bytes). Returns the config,
//  or NULL with a message in error.
ml_config_t *ml_config_load (const char *path, char *error, size_t error_size);
//  The same for a file of another sort (a certificate, a key): what names it in messages
//  ("the certificate"), where ml_config_load says "configuration file".
ml_config_t *ml_config_load_as (const char *path, const char *what, char *error, size_t error_size);

//  Parse ZPL text of size bytes as czmq's zconfig does, without its printing the line it
//  cannot read (a leading UTF-8 byte order mark is skipped; a line over 1024 bytes or a NUL
//  byte is refused, where czmq cuts them). Returns the tree (caller destroys it), or NULL
//  with, when not NULL, the number of the first line that cannot be read in *bad_line and
//  why (a static text that quotes nothing of it) in *why.
typedef struct _zconfig_t zconfig_t;
zconfig_t *ml_config_parse (const char *text, size_t size, int *bad_line, const char **why);

//  Destroy. Idempotent.
void ml_config_destroy (ml_config_t **self_p);

//  Value at path ("database/connection"), or fallback when absent or empty (borrowed).
//  With fallback NULL the key is required: its absence becomes the error.
const char *ml_config_string (ml_config_t *self, const char *path, const char *fallback);

//  Integer at path within [minimum, maximum]; fallback when absent.
int ml_config_int (ml_config_t *self, const char *path, int fallback, int minimum, int maximum);

//  The first problem met, or NULL (borrowed).
const char *ml_config_error (ml_config_t *self);

//  Check that every key in the file is one of known (a NULL-terminated list of paths such as
//  "core/endpoint"), so that a misspelled key is an error rather than a setting silently
//  left at its default. The first unknown or repeated key or section becomes the error,
//  naming the nearest known one: "FILE: unknown key 'core/endpiont' (did you mean
//  'core/endpoint'?)". Returns 0, or -1 (see ml_config_error).
int ml_config_check_keys (ml_config_t *self, const char *const *known);

//  Load the file at path and check its keys against known, for a program's main before it
//  reads its settings. Returns 0, or -1 with the load or key error in error.
int ml_config_check_file (const char *path, const char *const *known, char *error,
                          size_t error_size);

//  Open a file that holds a secret, checking that only its owner, the user this runs as,
//  can read it: a regular file of this user's with no group or other permission bits.
//  key names the setting in messages, what names the secret ("secret key"). Returns an
//  open descriptor (caller closes it), or -1 with error set: an unreadable file with the
//  system's reason, a wrong mode with the chmod to run, a wrong owner with the chown.
int ml_config_open_private (const char *key, const char *path, const char *what, char *error,
                            size_t error_size);

//  Read a secret (an API key, a password) from a file that only its owner, the user this
//  runs as, may read: a regular file of this user's, mode 0600 or 0400, holding the secret
//  on one line (a trailing newline is dropped). key names the setting in messages
//  ("processor/api_key_file"), what names the secret ("key"); valid, when not NULL, must
//  accept it, else rule says what it must be. Messages name the file, never the contents.
//  Returns 0, or -1 with error set and secret wiped.
int ml_config_read_secret (const char *key, const char *path, const char *what, char *secret,
                           size_t size, bool (*valid) (const char *), const char *rule, char *error,
                           size_t error_size);

void ml_config_test (bool verbose);

#endif
