/*  ml_agent_keys: the registered agents' public keys, from the core's agents' certificate
    directory (core/agents), for the handshake handler and register-agent.

    czmq's zcertstore is not used: it asserts (ending the core) when two files of the
    directory hold one key, reads a file of any size (or a FIFO, forever) and walks
    subdirectories. Here each regular file of the directory whose name ends in ".cert" and
    does not start with '.' is read, capped as a configuration file is (ml_config_load); a
    file that holds no valid public key is skipped, and a key in two files counts once. Both
    are logged when the directory is read. The directory is read again when it changed (a
    certificate added or removed) and at least every two seconds while handshakes come (a
    certificate rewritten in place), so registering or removing an agent needs no restart.
*/
#ifndef ML_AGENT_KEYS_H_INCLUDED
#define ML_AGENT_KEYS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_agent_keys_t ml_agent_keys_t;

//  The keys of directory (copied). It need not exist yet; it is read at the first lookup.
ml_agent_keys_t *ml_agent_keys_new (const char *directory);
//  Destroy. Idempotent.
void ml_agent_keys_destroy (ml_agent_keys_t **self_p);

//  The name of the file (in the directory) that holds key (Z85, 40 characters), or NULL when
//  no certificate there holds it. Valid until the next call.
const char *ml_agent_keys_file (ml_agent_keys_t *self, const char *key);
//  Whether key is a registered agent's.
bool ml_agent_keys_allowed (ml_agent_keys_t *self, const char *key);

//  Read the public key (Z85, 40 characters and NUL) of the certificate at path into key.
//  Returns 0, or -1 with why in error (the path quoted with control characters escaped).
int ml_agent_keys_read (const char *path, char key[41], char *error, size_t error_size);

void ml_agent_keys_test (bool verbose);

#endif
