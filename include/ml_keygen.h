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

void ml_keygen_test (bool verbose);

#endif
