/*  ml_store: what its files share (private to core/ml_store*.c).
 */
#ifndef ML_STORE_INTERNAL_H_INCLUDED
#define ML_STORE_INTERNAL_H_INCLUDED

#include "ml_db.h"
#include "ml_store.h"

#include "ml_lease.h"
#include "store/ml_store_pg.h"

#include <stdbool.h>
#include <stdint.h>

struct _ml_store_t {
    ml_db_t *db;
    bool firm_failed; //  the last ml_store_firm could not read the store
    //  Asked inside every replica write transaction (ml_store_set_guard), or NULL.
    ml_store_guard_fn *guard;
    void *guard_arg;
    ml_lease_t *lease; //  the fence of a node sharing the store (ml_store_set_lease), or NULL
    ml_store_pg_load_t *load; //  PostgreSQL: snapshot rows taken and not yet copied
    size_t unanswered_limit;  //  the limit of the last ml_store_postings_unanswered
    int64_t max_firm_items;   //  ml_store_set_max_firm_items
    //  PostgreSQL, after ml_store_generic_plans: firm id -> the name of its partition of
    //  the replica, for the firms whose row this connection has seen; else NULL.
    zhashx_t *partitions;
};

//  Firms whose partition the core thread's connection reads by name, at most: each has
//  prepared statements of its own there (within ml_db's cache; the others read open_item).
#define ML_STORE_PARTITIONS_MAX 2000

//  PostgreSQL: the name of a firm's partition of the replica, as an SQL expression of the
//  firm's id (store version 5: open_item_ and the MD5 of the id, in hexadecimal).
#define ML_STORE_PG_PARTITION(firm) "'open_item_' || md5 (" firm ")"

//  Shared by ml_store.c and ml_store_replica.c (each described where it is defined).
void ml_store_failed (ml_store_t *self, const char *purpose);
int ml_store_begin (ml_store_t *self);
int ml_store_begin_firm (ml_store_t *self, const char *firm_id);
int ml_store_finish (ml_store_t *self, const char *purpose, bool ok);
int ml_store_query_int (ml_store_t *self, int64_t *value, const char *sql, const char *picture,
                        const char *text);

//  Run the migrations from store version `version` up to ML_STORE_VERSION on db, in the
//  caller's transaction (core/ml_store_schema.c). Returns 0 or -1 (db's error says why).
int ml_store_migrate (ml_db_t *db, int64_t version);

#endif
