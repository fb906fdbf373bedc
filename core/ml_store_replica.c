/*  ml_store's replica writes (core/ml_store_internal.h): sessions' snapshots (on PostgreSQL
    held, copied and swapped or replaced: store version 5) and changes, and the cursor. Moved
    out of ml_store.c as it grew; see include/ml_store.h for the calls.
*/
#include "ml_store_internal.h"
#include "ml_log.h"

#include <assert.h>
#include <czmq.h>
#include <string.h>

#define S_UPSERT_COLUMNS 16
#define S_UPSERT_ROWS    128 //  rows bound per call into the one reused statement

//  Insert or replace items[0 .. count) under a generation. A replica row is always written
//  whole, so replacing it is an upsert. One single-row statement, prepared once per
//  connection and run for every row (ml_db caches it): a statement of 50 rows had to be
//  built as text for each group and bound 800 parameters at a time for nothing. The values
//  point into the items (no copy). Each run is checked; a failure fails the caller's
//  transaction.
static bool s_upsert_items (ml_store_t *self, const char *firm_id, const ml_item_t *items,
                            size_t count, int64_t generation)
{
    //  On PostgreSQL the rows go by arrays, a few statements for any count
    //  (core/store/ml_store_pg.c): there every statement is a round trip to the server.
    if (ml_db_dialect (self->db) == ML_DB_POSTGRESQL)
        return ml_store_pg_upsert_items (self->db, firm_id, items, count, generation);
    //  An upsert, not INSERT OR REPLACE: a replacement deletes the old row without firing
    //  the delete trigger, and the totals would count it twice.
    static const char *sql =
        "INSERT INTO open_item (firm_id, kind, source_id, invoice_number,"
        " invoice_date, due_date, client_number, client_name, matter_number,"
        " matter_description, currency, total_minor, balance_minor, status, generation,"
        " change_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (firm_id, kind, source_id) DO UPDATE SET"
        " invoice_number = excluded.invoice_number, invoice_date = excluded.invoice_date,"
        " due_date = excluded.due_date, client_number = excluded.client_number,"
        " client_name = excluded.client_name, matter_number = excluded.matter_number,"
        " matter_description = excluded.matter_description,"
        " currency = excluded.currency, total_minor = excluded.total_minor,"
        " balance_minor = excluded.balance_minor, status = excluded.status,"
        " generation = excluded.generation, change_id = excluded.change_id";
    ml_db_value_t values[S_UPSERT_ROWS * S_UPSERT_COLUMNS];
    char kinds[S_UPSERT_ROWS][2];
    bool ok = true;
    for (size_t first = 0; ok && first < count; first += S_UPSERT_ROWS) {
        size_t rows = count - first < S_UPSERT_ROWS ? count - first : S_UPSERT_ROWS;
        for (size_t row = 0; row < rows; row++) {
            const ml_item_t *item = &items[first + row];
            ml_db_value_t *value = values + row * S_UPSERT_COLUMNS;
            kinds[row][0] = item->kind;
            kinds[row][1] = 0;
            value[0] = (ml_db_value_t){.text = firm_id};
            value[1] = (ml_db_value_t){.text = kinds[row]};
            value[2] = (ml_db_value_t){.number = (int64_t)item->source_id};
            value[3] = (ml_db_value_t){.text = item->invoice_number};
            value[4] = (ml_db_value_t){.text = item->invoice_date};
            value[5] = (ml_db_value_t){.text = item->due_date};
            value[6] = (ml_db_value_t){.text = item->client_number};
            value[7] = (ml_db_value_t){.text = item->client_name};
            value[8] = (ml_db_value_t){.text = item->matter_number};
            value[9] = (ml_db_value_t){.text = item->matter_description};
            value[10] = (ml_db_value_t){.text = item->currency};
            value[11] = (ml_db_value_t){.number = item->total_minor};
            value[12] = (ml_db_value_t){.number = item->balance_minor};
            value[13] = (ml_db_value_t){.text = item->status};
            value[14] = (ml_db_value_t){.number = generation};
            value[15] = (ml_db_value_t){.number = (int64_t)item->change_id};
        }
        ok = ml_db_execute_many (self->db, sql, "ssissssssssiisii", rows, values) == 0;
    }
    return ok;
}

static int s_generation (ml_store_t *self, const char *firm_id, int64_t *generation)
{
    return ml_store_query_int (self, generation,
                               "SELECT generation FROM replica_state WHERE firm_id = ?", "s",
                               firm_id) == 1
               ? 0
               : -1;
}

void ml_store_set_guard (ml_store_t *self, ml_store_guard_fn *guard, void *arg)
{
    self->guard = guard;
    self->guard_arg = arg;
}

//  Asked after the transaction took the write lock: whoever could make the answer false
//  (a new session of the firm, on another connection) has to take the lock after it.
//  With several nodes it is also where the firm's lease is checked (ml_store_fence): a node
//  that lost the firm writes none of its replica.
static bool s_guarded (ml_store_t *self, const char *firm_id)
{
    if (self->guard && !self->guard (self->guard_arg, firm_id))
        return false;
    int fenced = ml_store_fence (self, firm_id);
    if (fenced < 0)
        ml_store_failed (self, "checking the firm's lease");
    return fenced == 1;
}

//  Snapshot rows are written without waiting for the disk (synchronous NORMAL: in
//  write-ahead logging a commit then only appends to the log; the log is synced when it is
//  checkpointed). Nothing acknowledged as stored is lost by it: the replica is not complete
//  until SNAPSHOT-END, whose transaction commits synchronously (FULL), which makes every
//  frame before it in the log durable too; a crash before that leaves the replica
//  incomplete, and the agent's next HELLO is answered with a new snapshot. So a SNAPSHOT
//  batch's ACK says the core has it, and SNAPSHOT-END's ACK that the replica is stored
//  (docs/protocol.md, docs/architecture.md). Every other write stays synchronous FULL.
//
//  On PostgreSQL (store version 5) the rows go by COPY to the firm's load table, outside any
//  write transaction: nothing a reader or a payment sees changes until SNAPSHOT-END swaps
//  the load table in, in a synchronous transaction, so the meaning of each ACK is the same.
int ml_store_snapshot_begin (ml_store_t *self)
{
    if (self->load)
        return 0;
    if (ml_db_execute (self->db, "PRAGMA synchronous = NORMAL", NULL) < 0) {
        ml_store_failed (self, "making snapshot commits asynchronous");
        return -1;
    }
    if (ml_store_begin (self) == 0)
        return 0;
    ml_db_execute (self->db, "PRAGMA synchronous = FULL", NULL);
    return -1;
}

int ml_store_snapshot_write (ml_store_t *self, const char *firm_id, const ml_item_t *items,
                             size_t count)
{
    if (!s_guarded (self, firm_id))
        return -3;
    int64_t generation = 0;
    if (self->load) {
        if (s_generation (self, firm_id, &generation) == 0 &&
            ml_store_pg_load_add (self->load, self->db, firm_id, generation, items, count) == 0)
            return 0;
        ml_store_failed (self, "storing snapshot rows");
        return -1;
    }
    //  The firm's totals are counted once at SNAPSHOT-END (s_loading_schema).
    bool ok = ml_db_execute (self->db,
                             "INSERT INTO replica_loading (firm_id) VALUES (?)"
                             " ON CONFLICT (firm_id) DO NOTHING",
                             "s", firm_id) >= 0 &&
              s_generation (self, firm_id, &generation) == 0 &&
              s_upsert_items (self, firm_id, items, count, generation);
    if (!ok)
        ml_store_failed (self, "storing snapshot rows");
    return ok ? 0 : -1;
}

int ml_store_snapshot_commit (ml_store_t *self, bool ok)
{
    if (self->load) {
        if (ml_store_pg_load_commit (self->load, self->db, ok) == 0)
            return ok ? 0 : -1;
        ml_store_failed (self, "storing snapshot rows");
        return -1;
    }
    int rc = ml_store_finish (self, "storing snapshot rows", ok);
    if (ml_db_execute (self->db, "PRAGMA synchronous = FULL", NULL) < 0) {
        ml_store_failed (self, "making commits synchronous again");
        rc = -1;
    }
    return rc;
}

void ml_store_set_max_firm_items (ml_store_t *self, int64_t max_items)
{
    self->max_firm_items = max_items > 0 ? max_items : ML_STORE_MAX_FIRM_ITEMS;
}

#define S_PREPARE_DELETE_ROWS 2000 //  rows of unfinished snapshots deleted per transaction

int ml_store_snapshot_prepare (ml_store_t *self, const char *firm_id)
{
    int64_t generation = 0, rows = 0;
    if (self->guard && !self->guard (self->guard_arg, firm_id))
        return -3;
    if (s_generation (self, firm_id, &generation) != 0) {
        ml_store_failed (self, "reading the firm's snapshot generation");
        return -1;
    }
    if (self->load) {
        //  Each dropped if it can be at once: a former owner still writing one keeps it.
        ml_store_pg_load_tidy (self->db, firm_id, generation);
        return 0;
    }
    if (ml_store_query_int (self, &rows, "SELECT COUNT (*) FROM open_item WHERE firm_id = ?", "s",
                            firm_id) != 1) {
        ml_store_failed (self, "counting the firm's replica");
        return -1;
    }
    if (rows <= self->max_firm_items)
        return 0;
    ml_log (ML_LOG_WARNING,
            "firm %s: its replica holds %lld items, more than core/max_firm_items (%lld), most "
            "of them left by snapshots that never ended: they are dropped, and the new snapshot "
            "brings the firm's items back",
            firm_id, (long long)rows, (long long)self->max_firm_items);
    //  The firm is marked loading first, so that the totals (status) stay those of its last
    //  complete replica until the snapshot ends and counts them again.
    int64_t deleted = 0;
    do {
        if (ml_store_begin (self) != 0)
            return -1;
        if (!s_guarded (self, firm_id)) {
            ml_db_rollback (self->db);
            return -3;
        }
        deleted = ml_db_execute (self->db,
                                 "INSERT INTO replica_loading (firm_id) VALUES (?)"
                                 " ON CONFLICT (firm_id) DO NOTHING",
                                 "s", firm_id) >= 0
                      ? ml_db_execute (self->db,
                                       "DELETE FROM open_item WHERE rowid IN (SELECT rowid"
                                       " FROM open_item WHERE firm_id = ? AND generation <> ?"
                                       " LIMIT ?)",
                                       "sii", firm_id, generation, (int64_t)S_PREPARE_DELETE_ROWS)
                      : -1;
        if (ml_store_finish (self, "dropping rows of unfinished snapshots", deleted >= 0) != 0)
            return -1;
    } while (deleted == S_PREPARE_DELETE_ROWS);
    return 0;
}

int ml_store_snapshot_rows (ml_store_t *self, const char *firm_id, const ml_msg_t *batch)
{
    if (ml_store_snapshot_begin (self) != 0)
        return -1;
    int rc = ml_store_snapshot_write (self, firm_id, batch->items, batch->item_count);
    if (ml_store_snapshot_commit (self, rc == 0) != 0 && rc == 0)
        rc = -1;
    return rc;
}

//  Read a query's integer columns, columns at a time, into a growing array. Returns the
//  number of rows read, or -1.
static int64_t s_read_integers (ml_db_query_t *query, int columns, int64_t **values)
{
    size_t count = 0, capacity = 0;
    int rc = query ? 1 : -1;
    while (rc == 1 && (rc = ml_db_fetch (query)) == 1) {
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            *values = realloc (*values, capacity * (size_t)columns * sizeof (int64_t));
            assert (*values);
        }
        for (int column = 0; rc == 1 && column < columns; column++)
            if (ml_db_int64 (query, column, &(*values)[count * (size_t)columns + (size_t)column]))
                rc = -1;
        count += rc == 1;
    }
    ml_db_query_destroy (&query);
    return rc == 0 ? (int64_t)count : -1;
}

#define S_END_DELETE_ROWS 2000 //  rows of earlier generations deleted per transaction

//  The heavy part of ending a snapshot, reading the firm's replica (its totals, the rows
//  of earlier generations), is done before the write lock is taken, so the core's writes
//  do not wait for it: only this connection writes the firm's replica rows while its
//  snapshot is stored (the ingest thread; the guard and the session states keep every
//  other write out), so what it reads is what the transactions below commit over. Rows of
//  earlier generations go in short transactions of their own, and the last transaction
//  writes the totals and marks the replica complete: a few rows.
//  A snapshot's totals by kind and currency (kind, currency, count, billions, rest) from
//  query, into growing arrays. Returns their number, or -1 (the query destroyed either way).
//  The columns s_read_totals reads, from the rows of a replica (the FROM and WHERE follow),
//  balances in two parts as replica_total keeps them (store version 2).
#define S_TOTALS_SELECT                                                                            \
    "SELECT kind, currency, COUNT (*), SUM (balance_minor / 1000000000),"                          \
    " SUM (balance_minor % 1000000000)"
typedef char s_kind_currency_t[2][4];
static int64_t s_read_totals (ml_db_query_t *query, s_kind_currency_t **kinds, int64_t **totals)
{
    int64_t count = 0;
    size_t capacity = 0;
    bool ok = query != NULL;
    int rc = 0;
    while (ok && (rc = ml_db_fetch (query)) == 1) {
        if ((size_t)count == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            *totals = realloc (*totals, capacity * 3 * sizeof (int64_t));
            *kinds = realloc (*kinds, capacity * sizeof **kinds);
            assert (*totals && *kinds);
        }
        snprintf ((*kinds)[count][0], 4, "%s", ml_db_text (query, 0));
        snprintf ((*kinds)[count][1], 4, "%s", ml_db_text (query, 1));
        for (int column = 0; ok && column < 3; column++)
            ok = ml_db_int64 (query, 2 + column, &(*totals)[count * 3 + column]) == 0;
        count++;
    }
    ml_db_query_destroy (&query);
    return ok && rc == 0 ? count : -1;
}

//  In the transaction that ends a snapshot: the firm's totals replaced by the snapshot's,
//  and the replica marked complete at cursor. Returns whether every statement ran.
static bool s_complete (ml_store_t *self, const char *firm_id, uint64_t cursor,
                        s_kind_currency_t *kinds, const int64_t *totals, int64_t total_count)
{
    char now[32];
    ml_store_now (now, sizeof now);
    bool ok =
        ml_db_execute (self->db, "DELETE FROM replica_total WHERE firm_id = ?", "s", firm_id) >= 0;
    for (int64_t index = 0; ok && index < total_count; index++)
        ok = ml_db_execute (self->db,
                            "INSERT INTO replica_total (firm_id, kind, currency, item_count,"
                            " balance_billions, balance_rest) VALUES (?, ?, ?, ?, ?, ?)",
                            "sssiii", firm_id, kinds[index][0], kinds[index][1], totals[index * 3],
                            totals[index * 3 + 1], totals[index * 3 + 2]) == 1;
    return ok &&
           ml_db_execute (self->db, "DELETE FROM replica_loading WHERE firm_id = ?", "s",
                          firm_id) >= 0 &&
           ml_db_execute (self->db,
                          "UPDATE replica_state SET cursor = ?, complete = 1,"
                          " snapshot_completed_at = ? WHERE firm_id = ?",
                          "iss", (int64_t)cursor, now, firm_id) == 1;
}

//  On PostgreSQL the end of a small snapshot whose rows are all held in memory
//  (ml_store_pg_load_small): one transaction deletes the firm's replica rows and copies the
//  snapshot's in their place, counts them, writes the totals and marks the replica complete.
//  No DDL: the partition stays. While in replica_loading the firm's rows do not move the
//  totals (the triggers of store version 4); s_complete writes them. Returns 0, -1 or -3.
static int s_snapshot_end_small (ml_store_t *self, const char *firm_id, int64_t generation,
                                 uint64_t cursor)
{
    if (ml_store_begin (self) != 0)
        return -1;
    if (!s_guarded (self, firm_id)) {
        ml_db_rollback (self->db);
        return -3;
    }
    int64_t current = 0, *totals = NULL, total_count = -1;
    s_kind_currency_t *kinds = NULL;
    bool ok = s_generation (self, firm_id, &current) == 0 && current == generation &&
              ml_db_execute (self->db,
                             "INSERT INTO replica_loading (firm_id) VALUES (?)"
                             " ON CONFLICT (firm_id) DO NOTHING",
                             "s", firm_id) >= 0 &&
              ml_store_pg_load_replace (self->load, self->db, firm_id) == 0 &&
              (total_count =
                   s_read_totals (ml_db_query (self->db,
                                               S_TOTALS_SELECT " FROM open_item WHERE firm_id = ?"
                                                               " GROUP BY kind, currency",
                                               "s", firm_id),
                                  &kinds, &totals)) >= 0 &&
              s_complete (self, firm_id, cursor, kinds, totals, total_count);
    free (totals);
    free (kinds);
    int rc = ml_store_finish (self, "ending a snapshot", ok);
    if (rc == 0)
        ml_store_pg_load_tidy (self->db, firm_id, generation + 1);
    return rc;
}

//  On PostgreSQL the end of a snapshot: the load table's indexes and totals before the write
//  lock, then one small transaction that swaps it in for the firm's partition (the rows of
//  earlier generations go with the partition it replaces), writes the totals and marks the
//  replica complete. Returns 0, -1 or -3 (the guard refused: nothing changed).
static int s_snapshot_end_pg (ml_store_t *self, const char *firm_id, uint64_t cursor)
{
    int64_t generation = 0, *totals = NULL, total_count = -1;
    s_kind_currency_t *kinds = NULL;
    char table[64] = "", sql[512];
    int64_t started = zclock_mono ();
    if (s_generation (self, firm_id, &generation) != 0) {
        ml_store_failed (self, "ending a snapshot");
        return -1;
    }
    if (ml_store_pg_load_small (self->load, firm_id, generation))
        return s_snapshot_end_small (self, firm_id, generation, cursor);
    if (ml_store_pg_load_finish (self->load, self->db, firm_id, generation) == 0 &&
        ml_store_pg_load_table (self->db, firm_id, generation, table, sizeof table) == 0 &&
        ml_store_pg_load_vacuum (self->db, table) == 0 &&
        ml_store_pg_load_index (self->db, firm_id, generation) == 0) {
        //  (The table's name is ml_replica_load's: letters, digits and _.)
        snprintf (sql, sizeof sql, "%s FROM %s GROUP BY kind, currency", S_TOTALS_SELECT, table);
        total_count = s_read_totals (ml_db_query (self->db, sql, NULL), &kinds, &totals);
    }
    int rc = total_count >= 0 ? 0 : -1;
    int64_t indexed = zclock_mono ();
    if (rc != 0)
        ml_store_failed (self, "indexing and counting a snapshot");
    else if (ml_store_begin (self) != 0)
        rc = -1;
    else if (!s_guarded (self, firm_id)) {
        ml_db_rollback (self->db);
        rc = -3;
    } else {
        int64_t current = 0;
        bool ok = s_generation (self, firm_id, &current) == 0 && current == generation &&
                  ml_store_pg_load_swap (self->db, firm_id, generation) == 0 &&
                  s_complete (self, firm_id, cursor, kinds, totals, total_count);
        rc = ml_store_finish (self, "ending a snapshot", ok);
    }
    free (totals);
    free (kinds);
    if (rc == 0) {
        //  What a snapshot's end costs, for whoever sizes the store (bench/RESULTS.md).
        ml_log (ML_LOG_INFO, "firm %s: snapshot indexed and counted in %lld ms, swapped in %lld ms",
                firm_id, (long long)(indexed - started), (long long)(zclock_mono () - indexed));
        ml_store_pg_load_tidy (self->db, firm_id, generation);
    }
    return rc;
}

int ml_store_snapshot_end (ml_store_t *self, const char *firm_id, uint64_t cursor)
{
    if (self->load)
        return s_snapshot_end_pg (self, firm_id, cursor);
    int64_t generation = 0, *old = NULL, *totals = NULL, old_count = 0, total_count = 0;
    s_kind_currency_t *kinds = NULL; //  each total's kind and currency
    bool ok = s_generation (self, firm_id, &generation) == 0;
    if (ok)
        //  By the primary key (kind as 1 for 'T', 0 for 'I', and source id), which every
        //  engine has (SQLite's rowid is its own).
        old_count = s_read_integers (
            ml_db_query (self->db,
                         "SELECT CASE WHEN kind = 'T' THEN 1 ELSE 0 END, source_id FROM open_item"
                         " WHERE firm_id = ? AND generation <> ?",
                         "si", firm_id, generation),
            2, &old);
    if (ok && old_count >= 0)
        total_count = s_read_totals (
            ml_db_query (self->db,
                         S_TOTALS_SELECT
                         " FROM open_item"
                         " WHERE firm_id = ? AND generation = ? GROUP BY kind, currency",
                         "si", firm_id, generation),
            &kinds, &totals);
    ok = ok && old_count >= 0 && total_count >= 0;
    if (!ok)
        ml_store_failed (self, "counting a snapshot");
    int rc = ok ? 0 : -1;
    for (int64_t first = 0; rc == 0 && first < old_count; first += S_END_DELETE_ROWS) {
        if (ml_store_begin (self) != 0) {
            rc = -1;
            break;
        }
        if (!s_guarded (self, firm_id)) {
            ml_db_rollback (self->db);
            rc = -3;
            break;
        }
        bool deleted = true;
        for (int64_t index = first;
             deleted && index < old_count && index < first + S_END_DELETE_ROWS; index++)
            deleted =
                ml_db_execute (self->db,
                               "DELETE FROM open_item WHERE firm_id = ? AND kind = ?"
                               " AND source_id = ?",
                               "ssi", firm_id, old[index * 2] ? "T" : "I", old[index * 2 + 1]) >= 0;
        rc = ml_store_finish (self, "dropping rows the snapshot did not carry", deleted);
    }
    if (rc == 0 && ml_store_begin (self) != 0)
        rc = -1;
    else if (rc == 0 && !s_guarded (self, firm_id)) {
        ml_db_rollback (self->db);
        rc = -3;
    } else if (rc == 0) {
        int64_t current = 0;
        ok = s_generation (self, firm_id, &current) == 0 && current == generation &&
             s_complete (self, firm_id, cursor, kinds, totals, total_count);
        rc = ml_store_finish (self, "ending a snapshot", ok);
    }
    free (old);
    free (totals);
    free (kinds);
    return rc;
}

//  The firm's cursor and generation, and its items as the totals count them (exact for a
//  complete replica, which is when changes come: store version 4), in one round trip.
#define S_CHANGES_STATE                                                                            \
    "SELECT cursor, generation, (SELECT COALESCE (SUM (item_count), 0) FROM replica_total t"       \
    " WHERE t.firm_id = replica_state.firm_id) FROM replica_state WHERE firm_id = ?"

//  A change batch runs beside the core thread's transactions (ml_db_begin_rows: on
//  PostgreSQL the core's rounds of payments do not wait for it, nor it for them). What
//  it writes is the firm's alone, and each of its writers locks it first, in one order:
//  the firm's lease (ml_store_fence, with several nodes), then its replica_state row (a new
//  session's HELLO updates it; here SELECT ... FOR UPDATE); only then is the session asked
//  (the guard), as s_guarded does after the store's lock.
int ml_store_changes (ml_store_t *self, const char *firm_id, const ml_msg_t *batch)
{
    if (ml_db_begin_rows (self->db) != 0) {
        ml_store_failed (self, "starting a transaction");
        return -1;
    }
    int fenced = ml_store_fence (self, firm_id);
    if (fenced < 0)
        ml_store_failed (self, "checking the firm's lease");
    ml_db_query_t *query = fenced == 1 ? ml_db_query (self->db,
                                                      ml_db_dialect (self->db) == ML_DB_POSTGRESQL
                                                          ? S_CHANGES_STATE " FOR UPDATE"
                                                          : S_CHANGES_STATE,
                                                      "s", firm_id)
                                       : NULL;
    int64_t cursor = 0, generation = 0, items = 0;
    bool ok = query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &cursor) == 0 &&
              ml_db_int64 (query, 1, &generation) == 0 && ml_db_int64 (query, 2, &items) == 0;
    ml_db_query_destroy (&query);
    if (fenced != 1 || (ok && self->guard && !self->guard (self->guard_arg, firm_id))) {
        ml_db_rollback (self->db);
        return -3;
    }
    if (ok && (uint64_t)cursor != batch->since) {
        ml_db_rollback (self->db);
        return -2;
    }
    //  Within the limit even if each upsert added a row: nothing more to check. Else the
    //  batch is applied and the firm's items counted again (the totals' triggers keep them in
    //  the transaction), so a firm at its limit still takes updates of what it has.
    int64_t upserts = 0;
    for (size_t index = 0; index < batch->item_count; index++)
        upserts += batch->items[index].op == 'U';
    bool near_limit = items + upserts > self->max_firm_items;
    //  In change order: runs of upserts go in one execute, each removal between them alone.
    size_t run = 0; //  first upsert of the pending run
    for (size_t index = 0; ok && index <= batch->item_count; index++) {
        const ml_item_t *item = index < batch->item_count ? &batch->items[index] : NULL;
        //  Changes at or below the cursor were applied already (Clone pattern).
        bool stale = item && item->change_id <= (uint64_t)cursor;
        bool upsert = item && !stale && item->op == 'U';
        if (upsert)
            continue;
        ok = s_upsert_items (self, firm_id, batch->items + run, index - run, generation);
        run = index + 1;
        if (ok && item && !stale) {
            char kind[2] = {item->kind, 0};
            ok = ml_db_execute (self->db,
                                "DELETE FROM open_item WHERE firm_id = ? AND kind = ?"
                                " AND source_id = ?",
                                "ssi", firm_id, kind, (int64_t)item->source_id) >= 0;
        }
    }
    if (ok && near_limit) {
        if (ml_store_query_int (self, &items,
                                "SELECT COALESCE (SUM (item_count), 0) FROM replica_total"
                                " WHERE firm_id = ?",
                                "s", firm_id) != 1) {
            ml_store_failed (self, "counting the firm's items");
            ml_db_rollback (self->db);
            return -1;
        }
        if (items > self->max_firm_items) {
            ml_db_rollback (self->db);
            return -4;
        }
    }
    //  The row is locked and was read: the update finds it (and rides with the COMMIT).
    ok = ok && ml_db_defer (self->db, "UPDATE replica_state SET cursor = ? WHERE firm_id = ?", "is",
                            (int64_t)batch->cursor, firm_id) == 0;
    return ml_store_finish (self, "applying changes", ok);
}

int ml_store_cursor (ml_store_t *self, const char *firm_id, uint64_t *cursor)
{
    int64_t value = 0;
    if (ml_store_query_int (self, &value, "SELECT cursor FROM replica_state WHERE firm_id = ?", "s",
                            firm_id) != 1) {
        ml_store_failed (self, "reading a firm's cursor");
        return -1;
    }
    *cursor = (uint64_t)value;
    return 0;
}
