/*  ml_processor: what its files share (private to core/ml_processor*.c).
 */
#ifndef ML_PROCESSOR_INTERNAL_H_INCLUDED
#define ML_PROCESSOR_INTERNAL_H_INCLUDED

#include "ml_processor.h"

#include <stdbool.h>
#include <stddef.h>

//  The longest wait between two attempts, whatever the configured back-off.
#define ML_PROCESSOR_BACKOFF_MAX_MS 5000

//  The number of the built-in test processor's card at index (docs/processor.md), or NULL
//  past the last.
const char *ml_processor_test_card (size_t index);
//  Mask every run of card-number digits in text, in place. Returns true if something was.
bool ml_processor_mask_card_numbers (char *text);
//  The id the processors derive from an idempotency key: prefix, '_', 16 hex digits.
void ml_processor_derive_id (const char *prefix, const char *key, char *id, size_t size);

//  Whether the HTTP processor may call endpoint (https, or http to a loopback address only):
//  0, or -1 with why in error (core/ml_processor_settings.c).
int ml_processor_check_endpoint (const char *endpoint, char *error, size_t error_size);
//  Whether key is an API key: one line of printable ASCII without spaces.
bool ml_processor_valid_api_key (const char *key);

#endif
