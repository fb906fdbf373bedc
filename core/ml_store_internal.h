/*  ml_store: what its files share (private to core/ml_store*.c).
 */
#ifndef ML_STORE_INTERNAL_H_INCLUDED
#define ML_STORE_INTERNAL_H_INCLUDED

#include "ml_db.h"
#include "ml_store.h"

#include <stdint.h>

//  Run the migrations from store version `version` up to ML_STORE_VERSION on db, in the
//  caller's transaction (core/ml_store_schema.c). Returns 0 or -1 (db's error says why).
int ml_store_migrate (ml_db_t *db, int64_t version);

#endif
