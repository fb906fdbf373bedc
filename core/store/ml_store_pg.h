/*  ml_store's PostgreSQL-only writes (core/store/ml_store_pg.c). Not a public header. */
#ifndef ML_STORE_PG_H_INCLUDED
#define ML_STORE_PG_H_INCLUDED

#include "ml_db.h"
#include "ml_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Upsert items[0 .. count) of firm_id's replica under generation, inside the caller's
//  transaction, a few statements for any count: each column goes as one array parameter
//  (INSERT ... SELECT FROM unnest), so 10,000 rows take one round trip, not 200. Returns
//  true, or false with the connection's error set (the caller rolls back).
bool ml_store_pg_upsert_items (ml_db_t *db, const char *firm_id, const ml_item_t *items,
                               size_t count, int64_t generation);

//  Selftest on an open PostgreSQL connection (from ml_db's PostgreSQL selftest).
void ml_store_pg_test (ml_db_t *db);

#endif
