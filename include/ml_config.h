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

//  Load a file. Returns the config, or NULL with a message in error.
ml_config_t *ml_config_load (const char *path, char *error, size_t error_size);

//  Destroy. Idempotent.
void ml_config_destroy (ml_config_t **self_p);

//  Value at path ("database/connection"), or fallback when absent or empty (borrowed).
//  With fallback NULL the key is required: its absence becomes the error.
const char *ml_config_string (ml_config_t *self, const char *path, const char *fallback);

//  Integer at path within [minimum, maximum]; fallback when absent.
int ml_config_int (ml_config_t *self, const char *path, int fallback, int minimum, int maximum);

//  The first problem met, or NULL (borrowed).
const char *ml_config_error (ml_config_t *self);

void ml_config_test (bool verbose);

#endif
