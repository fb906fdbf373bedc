/*  ml_keygen: make a CURVE certificate pair for an agent or the core.

    Writes path (public certificate, shareable) and path_secret (mode 0600). Refuses to
    overwrite an existing certificate: replacing a key cuts the link until the other side
    learns the new one, so it must be a deliberate act.
*/
#ifndef ML_KEYGEN_H_INCLUDED
#define ML_KEYGEN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Returns 0 and writes the public key (Z85, 40 chars + NUL) into public_key, or -1 with
//  a message in error.
int ml_keygen (const char *path, const char *role, char *public_key, char *error,
               size_t error_size);

typedef struct _zcert_t zcert_t;

//  Load this host's secret certificate for role ("core" or "agent"), named by the setting
//  key ("core/certificate"). Only its owner may read it: a file that is group- or
//  world-readable, or someone else's, is refused with the chmod or chown that fixes it; an
//  unreadable one says why (the system's reason). The hints fix the existing file and never
//  suggest a new key, which the other side would refuse until it is registered; only a
//  missing file says how to make and register one, if the host truly never had a key.
//  Returns a new certificate (caller destroys it), or NULL with error set.
zcert_t *ml_keygen_load_secret (const char *key, const char *path, const char *role, char *error,
                                size_t error_size);

void ml_keygen_test (bool verbose);

#endif
