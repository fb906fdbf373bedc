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

//  A snapshot's rows on PostgreSQL go to a load table of their own, one per firm and
//  generation, by COPY, with no index and without the store's write lock; SNAPSHOT-END builds
//  the load table's indexes in bulk and swaps it in for the firm's partition of open_item in
//  one small transaction (store version 5, ml_store_replica.c). The rows one store connection has
//  taken and not yet sent (a COPY per flush, not per call):
typedef struct _ml_store_pg_load_t ml_store_pg_load_t;

ml_store_pg_load_t *ml_store_pg_load_new (void);
void ml_store_pg_load_destroy (ml_store_pg_load_t **self_p);

//  A snapshot of at most this many rows, held in memory whole until its end, skips the load
//  table: SNAPSHOT-END replaces the firm's rows in its partition in one transaction
//  (ml_store_pg_load_replace), with no DDL. A small firm's snapshot then costs a few round
//  trips instead of a table made, vacuumed, indexed and swapped in; and a swap, which
//  changes the partitioned table, makes every connection reload its 1,000 partitions'
//  descriptions (bench/RESULTS.md).
#define ML_STORE_PG_SMALL_ROWS 2000

//  Add items[0 .. count) of firm_id's snapshot under generation. The rows are held; they go
//  to the snapshot's load table (made then) when they are many (a COPY of 10,000) or when
//  another firm's rows come (an earlier generation's are an abandoned session's: dropped).
//  Returns 0 or -1 (the connection's error set).
int ml_store_pg_load_add (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id,
                          int64_t generation, const ml_item_t *items, size_t count);

//  At the commit of the transaction that added rows: ok, the rows held go to their load
//  table if it exists, else stay held; not ok, the transaction's rows are dropped. 0 or -1.
int ml_store_pg_load_commit (ml_store_pg_load_t *self, ml_db_t *db, bool ok);

//  At SNAPSHOT-END: whether every row of firm_id's snapshot under generation is held here
//  (no load table), at most ML_STORE_PG_SMALL_ROWS, none twice.
bool ml_store_pg_load_small (ml_store_pg_load_t *self, const char *firm_id, int64_t generation);

//  The small path, inside the caller's write transaction: the firm's replica rows deleted and
//  the rows held copied in their place (the held rows are then gone). 0 or -1.
int ml_store_pg_load_replace (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id);

//  The load table's path: the rows of firm_id's snapshot still held go to its load table.
int ml_store_pg_load_finish (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id,
                             int64_t generation);

//  The load table of firm_id's snapshot under generation, made if missing (a snapshot of no
//  rows has one too), into name. Then its indexes, built in bulk (an item the snapshot
//  carried twice keeps its last copy, as the upsert did). Neither takes the write lock.
//  Returns 0 or -1.
int ml_store_pg_load_table (ml_db_t *db, const char *firm_id, int64_t generation, char *name,
                            size_t size);
int ml_store_pg_load_index (ml_db_t *db, const char *firm_id, int64_t generation);

//  Before the indexes: VACUUM (ANALYZE) the load table (name from ml_store_pg_load_table),
//  so the partition it becomes has statistics for the planner and its rows' visibility
//  already settled: the first readers after the swap neither plan blind nor set every
//  row's hint bits, and the covering client index serves index-only scans at once (about
//  0.3 s at 1,000,000 rows, without indexes to scan). Returns 0 or -1.
int ml_store_pg_load_vacuum (ml_db_t *db, const char *table);

//  Inside the caller's write transaction: the load table becomes firm_id's partition of
//  open_item, and the partition it replaces is dropped. Returns 0 or -1.
int ml_store_pg_load_swap (ml_db_t *db, const char *firm_id, int64_t generation);

//  After the swap of generation, on its own: drop load tables of firm_id's abandoned
//  snapshots, of earlier generations only (a later one is a newer session's); best effort,
//  a table another connection still writes is left for the next time.
void ml_store_pg_load_tidy (ml_db_t *db, const char *firm_id, int64_t generation);

//  Selftest on an open PostgreSQL connection (from ml_db's PostgreSQL selftest).
void ml_store_pg_test (ml_db_t *db);

#endif
