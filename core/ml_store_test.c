/*  ml_store's selftest (include/ml_store.h), kept apart from the class: it is as long. */
#include "ml_store.h"
#include "ml_store_internal.h"
#include "ml_lease.h"
#include "ml_alloc.h"
#include "ml_selftest_support.h"
#include "ml_log.h"
#include "ml_money.h"
#include "store/ml_store_pg.h"
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>

//  The totals the triggers keep equal what counting the tables gives.
static void s_test_totals (ml_store_t *store)
{
    static const char *const pairs[][2] = {
        {"SELECT firm_id, kind, currency, item_count, balance_billions, balance_rest"
         " FROM replica_total WHERE item_count <> 0",
         "SELECT firm_id, kind, currency, COUNT (*), SUM (balance_minor / 1000000000),"
         " SUM (balance_minor % 1000000000) FROM open_item GROUP BY 1, 2, 3"},
        {"SELECT firm_id, status, posting_count FROM posting_total WHERE posting_count <> 0",
         "SELECT firm_id, status, COUNT (*) FROM posting GROUP BY 1, 2"}};
    for (size_t pair = 0; pair < 2; pair++) {
        char sql[1200];
        snprintf (sql, sizeof sql,
                  "SELECT (SELECT COUNT (*) FROM (%s EXCEPT %s) AS one) + (SELECT COUNT (*)"
                  " FROM (%s EXCEPT %s) AS other)",
                  pairs[pair][0], pairs[pair][1], pairs[pair][1], pairs[pair][0]);
        ml_db_query_t *query = ml_db_query (ml_store_db (store), sql, NULL);
        int64_t differences = -1;
        assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &differences) == 0);
        ml_db_query_destroy (&query);
        assert (differences == 0);
    }
}

static ml_msg_t *s_test_snapshot_batch (size_t count, const char *prefix)
{
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    for (size_t index = 0; index < count; index++) {
        ml_item_t *item = ml_msg_add_item (batch);
        item->kind = 'I';
        item->op = 'U';
        item->source_id = index + 1;
        snprintf (item->invoice_number, sizeof item->invoice_number, "%s-%zu", prefix, index + 1);
        strcpy (item->client_number, "C-1");
        strcpy (item->currency, "USD");
        item->total_minor = item->balance_minor = (int64_t)(100 * (index + 1));
    }
    return batch;
}

static int64_t s_test_int (ml_store_t *store, const char *sql, const char *firm_id)
{
    ml_db_query_t *query = ml_db_query (ml_store_db (store), sql, "s", firm_id);
    int64_t value = -1;
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0);
    ml_db_query_destroy (&query);
    return value;
}

//  Acme's first session (epoch e1, high-water 10: a snapshot is asked) and its replica of
//  count items of prefix, complete at cursor 10. Returns the HELLO, and the items in *batch
//  (the caller destroys both).
static ml_msg_t *s_test_first_replica (ml_store_t *store, size_t count, const char *prefix,
                                       ml_msg_t **batch)
{
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    strcpy (hello->epoch, "e1");
    hello->high_water = 10;
    bool resync = false;
    uint64_t cursor = 0;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    *batch = s_test_snapshot_batch (count, prefix);
    assert (ml_store_snapshot_rows (store, "acme", *batch) == 0);
    assert (ml_store_snapshot_end (store, "acme", 10) == 0);
    return hello;
}

//  New sessions (epoch) of acme and beta, and their snapshots of batch's 5 items at once,
//  complete at cursor 7: acme's rows before and after beta's. On PostgreSQL acme's first
//  rows go to its load table when beta's come, so its end takes the load table's path, with
//  every row (a new table swapped in under the partition's name); beta's end the small one.
static void s_test_two_snapshots (ml_store_t *store, ml_msg_t *hello, const char *epoch,
                                  const ml_msg_t *batch)
{
    bool resync = false;
    uint64_t cursor = 0;
    strcpy (hello->epoch, epoch);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    assert (ml_store_session_open (store, "beta", hello, &resync, &cursor) == 0 && resync);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", batch->items, 2) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_rows (store, "beta", batch) == 0);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", batch->items + 2, 3) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_end (store, "acme", 7) == 0);
    assert (ml_store_snapshot_end (store, "beta", 7) == 0);
}

//  Snapshots on either engine (on PostgreSQL, store version 5's bulk load: COPY into a load
//  table, indexes built at SNAPSHOT-END, the firm's partition swapped in). A resync replaces
//  the replica whole; an item carried twice keeps its last copy; text with the characters
//  COPY escapes comes back as sent; the totals stay the last complete replica's until the
//  end; an abandoned snapshot leaves nothing behind.
static void s_test_snapshots (void)
{
    char directory[128];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    bool postgresql = ml_db_dialect (ml_store_db (store)) == ML_DB_POSTGRESQL;
    ml_msg_t *first = NULL;
    ml_msg_t *hello = s_test_first_replica (store, 30, "OLD", &first);
    bool resync = false;
    uint64_t cursor = 0;

    //  An abandoned snapshot (its session replaced before SNAPSHOT-END).
    hello->high_water = 5;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    ml_msg_t *stray = s_test_snapshot_batch (40, "STRAY");
    assert (ml_store_snapshot_rows (store, "acme", stray) == 0);

    //  The snapshot that stays: 20 items, item 3 twice (the second copy wins), odd text.
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    json_t *before = ml_store_status (store); //  (the session's state is in it)
    ml_msg_t *second = s_test_snapshot_batch (20, "NEW");
    strcpy (second->items[0].client_name, "Tab\there, new\nline, back\\slash \"quoted\" 'single'");
    ml_item_t *again = ml_msg_add_item (second);
    *again = second->items[2];
    again->balance_minor = 7;
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", second->items, 10) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", second->items + 10, 11) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    json_t *during = ml_store_status (store);
    assert (before && during && json_equal (before, during));
    if (postgresql) {
        //  A newer session's load table (another node's, say): the end leaves it alone.
        assert (s_test_int (store,
                            "SELECT COUNT (ml_replica_load (firm_id, generation + 1))"
                            " FROM replica_state WHERE firm_id = ?",
                            "acme") == 1);
        //  Readers see the last complete replica until the swap.
        json_t *items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
        assert (json_array_size (items) == 30);
        json_decref (items);
    }
    assert (ml_store_snapshot_end (store, "acme", 5) == 0);
    json_t *items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    assert (json_array_size (items) == 20);
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        const char *number = json_string_value (json_object_get (item, "invoice_number"));
        assert (strncmp (number, "NEW-", 4) == 0);
        if (streq (number, "NEW-3"))
            assert (json_integer_value (json_object_get (item, "balance_minor")) == 7);
        if (streq (number, "NEW-1"))
            assert (streq (json_string_value (json_object_get (item, "client_name")),
                           second->items[0].client_name));
    }
    json_decref (items);
    s_test_totals (store);
    assert (s_test_int (store, "SELECT item_count FROM replica_total WHERE firm_id = ?", "acme") ==
            20);
    assert (s_test_int (store, "SELECT complete FROM replica_state WHERE firm_id = ?", "acme") ==
            1);
    if (postgresql)
        //  The abandoned snapshot's load table went with the end; the partition and the
        //  newer session's load table are left.
        assert (s_test_int (store,
                            "SELECT COUNT (*) FROM pg_tables WHERE schemaname = current_schema ()"
                            " AND tablename LIKE 'open_item_' || md5 (?) || '%'",
                            "acme") == 2);
    if (postgresql)
        //  The partition swapped in was vacuumed and analyzed: the planner knows its rows.
        assert (s_test_int (store,
                            "SELECT reltuples::BIGINT FROM pg_class"
                            " WHERE relname = 'open_item_' || md5 (?)",
                            "acme") == 20);
    //  A small snapshot (on PostgreSQL held whole in memory: the firm's rows replaced in its
    //  partition, no table made or swapped), with a transaction that failed half way: its
    //  rows do not count, those committed before it do.
    int64_t partition = postgresql ? s_test_int (store,
                                                 "SELECT oid::BIGINT FROM pg_class"
                                                 " WHERE relname = 'open_item_' || md5 (?)",
                                                 "acme")
                                   : 0;
    strcpy (hello->epoch, "e2"); //  a restored matter database: a resync
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    ml_msg_t *small = s_test_snapshot_batch (5, "SMALL");
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", small->items, 3) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "acme", small->items + 3, 2) == 0);
    assert (ml_store_snapshot_commit (store, false) == -1);
    assert (ml_store_snapshot_end (store, "acme", 6) == 0);
    items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    assert (json_array_size (items) == 3);
    json_decref (items);
    s_test_totals (store);
    assert (s_test_int (store, "SELECT item_count FROM replica_total WHERE firm_id = ?", "acme") ==
            3);
    if (postgresql)
        assert (
            s_test_int (store,
                        "SELECT oid::BIGINT FROM pg_class WHERE relname = 'open_item_' || md5 (?)",
                        "acme") == partition);
    //  Two firms' snapshots at once (acme's by the load table on PostgreSQL).
    assert (ml_store_firm_add (store, "beta", "Beta LLP", "key-beta", "OP-001") == 0);
    s_test_two_snapshots (store, hello, "e3", small);
    const char *firms[] = {"acme", "beta"};
    for (size_t firm = 0; firm < 2; firm++) {
        items = ml_store_open_items (store, firms[firm], NULL, NULL, NULL);
        assert (json_array_size (items) == 5);
        json_decref (items);
    }
    s_test_totals (store);
    ml_msg_destroy (&small);
    json_decref (before);
    json_decref (during);
    ml_msg_destroy (&first);
    ml_msg_destroy (&stray);
    ml_msg_destroy (&second);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
}

//  A firm's replica stays within core/max_firm_items (here 40): a change batch that could
//  take it past is refused whole; snapshots started and never ended, each with new items,
//  leave at most two limits' worth of rows (SQLite) or no load table but the newest
//  (PostgreSQL), however many there were; a snapshot that ends brings the replica and its
//  totals back.
static void s_test_firm_item_limit (void)
{
    char directory[128];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    bool postgresql = ml_db_dialect (ml_store_db (store)) == ML_DB_POSTGRESQL;
    assert (ml_store_firm_add (store, "beta", "Beta LLP", "key-beta", "OP-001") == 0);
    ml_store_set_max_firm_items (store, 40);
    ml_msg_t *first = NULL;
    ml_msg_t *hello = s_test_first_replica (store, 30, "OLD", &first);
    const char *count_sql = "SELECT COUNT (*) FROM open_item WHERE firm_id = ?";
    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    changes->since = 10;
    changes->cursor = 21;
    for (uint64_t index = 1; index <= 11; index++) {
        ml_item_t *item = ml_msg_add_item (changes);
        *item = first->items[0];
        item->change_id = 10 + index;
        item->source_id = 100 + index;
    }
    assert (ml_store_changes (store, "acme", changes) == -4);
    uint64_t cursor = 0;
    assert (ml_store_cursor (store, "acme", &cursor) == 0 && cursor == 10);
    assert (s_test_int (store, count_sql, "acme") == 30);
    changes->items[10].op = 'R'; //  ten upserts and a removal: 40 at most, taken
    assert (ml_store_changes (store, "acme", changes) == 0);
    assert (s_test_int (store, count_sql, "acme") == 40);
    //  At the limit: updates of its items are taken, a new item is not, unless one goes.
    ml_msg_clear_items (changes);
    changes->since = 21;
    changes->cursor = 24;
    for (uint64_t index = 1; index <= 3; index++) {
        ml_item_t *item = ml_msg_add_item (changes);
        *item = first->items[0];
        item->change_id = 21 + index;
        item->source_id = index < 3 ? 100 + index : 500; //  two updates, then a new item
        item->balance_minor = 77;
    }
    assert (ml_store_changes (store, "acme", changes) == -4);
    assert (ml_store_cursor (store, "acme", &cursor) == 0 && cursor == 21);
    changes->item_count = 2;
    changes->cursor = 23;
    assert (ml_store_changes (store, "acme", changes) == 0);
    changes->since = 23;
    changes->cursor = 25;
    changes->items[0] = changes->items[1];
    changes->items[0].op = 'R';
    changes->items[0].change_id = 24;
    changes->items[1].source_id = 500;
    changes->items[1].change_id = 25;
    assert (ml_store_changes (store, "acme", changes) == 0);
    assert (s_test_int (store, count_sql, "acme") == 40);
    assert (s_test_int (store,
                        "SELECT COUNT (*) FROM open_item WHERE firm_id = ? AND balance_minor = 77",
                        "acme") == 2);
    s_test_totals (store);
    //  Snapshots started again and again, each with 35 new items, never ended.
    const char *tables_sql = "SELECT COUNT (*) FROM pg_tables WHERE schemaname = current_schema ()"
                             " AND tablename LIKE 'open_item_' || md5 (?) || '\\_%'";
    ml_msg_t *other = s_test_snapshot_batch (1, "BETA");
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_ERROR);
    for (int round = 1; round <= 5; round++) {
        bool resync = false;
        snprintf (hello->epoch, sizeof hello->epoch, "stray-%d", round);
        assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
        assert (ml_store_snapshot_prepare (store, "acme") == 0);
        ml_msg_t *stray = s_test_snapshot_batch (35, "STRAY");
        for (size_t index = 0; index < stray->item_count; index++)
            stray->items[index].source_id += 1000 * (uint64_t)round;
        //  Another firm's rows between: on PostgreSQL acme's go to a load table.
        assert (ml_store_snapshot_begin (store) == 0);
        assert (ml_store_snapshot_write (store, "acme", stray->items, 35) == 0);
        assert (ml_store_snapshot_write (store, "beta", other->items, 1) == 0);
        assert (ml_store_snapshot_commit (store, true) == 0);
        ml_msg_destroy (&stray);
        if (postgresql)
            assert (s_test_int (store, tables_sql, "acme") == 1);
        else
            assert (s_test_int (store, count_sql, "acme") <= 80);
    }
    //  A sound snapshot ends it: the replica is its own, and the totals its sums.
    bool resync = false;
    strcpy (hello->epoch, "sound");
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    assert (ml_store_snapshot_prepare (store, "acme") == 0);
    ml_log_setup (NULL, saved);
    assert (ml_store_snapshot_rows (store, "acme", first) == 0);
    assert (ml_store_snapshot_end (store, "acme", 10) == 0);
    assert (ml_store_snapshot_end (store, "beta", 1) == 0);
    assert (s_test_int (store, count_sql, "acme") == 30);
    if (postgresql)
        assert (s_test_int (store, tables_sql, "acme") == 0);
    s_test_totals (store);
    ml_msg_destroy (&other);
    ml_msg_destroy (&changes);
    ml_msg_destroy (&first);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
}

//  On PostgreSQL a change batch runs beside a transaction that holds the store's lock (the
//  core thread's round of payments), so neither waits for the other (ml_db_begin_rows); it
//  still waits for one that holds its firm's replica_state row (a new session's HELLO).
static void s_test_changes_beside (void)
{
    char directory[128];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_msg_t *batch = NULL;
    ml_msg_t *hello = s_test_first_replica (store, 3, "INV", &batch);
    uint64_t cursor = 0;
    ml_db_error_t db_error;
    ml_db_t *other = ml_db_new (ml_selftest_store_connection (directory), &db_error);
    assert (other);
    bool postgresql = ml_db_dialect (other) == ML_DB_POSTGRESQL;
    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    changes->since = 10;
    changes->cursor = 20;
    ml_item_t *item = ml_msg_add_item (changes);
    *item = batch->items[0];
    item->op = 'U';
    item->change_id = 15;
    item->balance_minor = 4242;
    //  SQLite has one writer at a time: there the store's lock is let go first.
    assert (ml_db_begin (other) == 0);
    if (!postgresql)
        assert (ml_db_commit (other) == 0);
    assert (ml_store_changes (store, "acme", changes) == 0); //  waited 5 s and failed, before
    if (postgresql)
        assert (ml_db_commit (other) == 0);
    assert (ml_store_cursor (store, "acme", &cursor) == 0 && cursor == 20);
    json_t *items = ml_store_open_items (store, "acme", NULL, NULL, batch->items[0].invoice_number);
    assert (json_integer_value (json_object_get (json_array_get (items, 0), "balance_minor")) ==
            4242);
    json_decref (items);
    //  A batch whose since is no longer the cursor (a new session's came first) changes
    //  nothing.
    assert (ml_store_changes (store, "acme", changes) == -2);
    ml_db_destroy (&other);
    ml_msg_destroy (&changes);
    ml_msg_destroy (&batch);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
}

//  The core thread's store (ml_store_generic_plans) reads a firm's open items from the
//  firm's own partition on PostgreSQL, its name learnt from the firm's row: the same rows as
//  through open_item, also after another connection swapped a new partition in; a firm not
//  in the store reads nothing and is not remembered; a remembered name whose table is gone
//  fails one read, and the next looks it up again. On SQLite it reads open_item.
static void s_test_partition_reads (void)
{
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    bool postgresql = ml_db_dialect (ml_store_db (store)) == ML_DB_POSTGRESQL;
    ml_msg_t *first = NULL;
    ml_msg_t *hello = s_test_first_replica (store, 30, "OLD", &first);
    ml_store_t *core = ml_store_new (ml_selftest_store_connection (directory), error, sizeof error);
    assert (core && ml_store_generic_plans (core) == 0);
    assert ((core->partitions != NULL) == postgresql);
    json_t *expected = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    json_t *items = ml_store_open_items (core, "acme", NULL, NULL, NULL);
    assert (json_array_size (items) == 30 && json_equal (items, expected));
    json_decref (items);
    json_decref (expected);
    items = ml_store_open_items (core, "acme", NULL, NULL, "OLD-2");
    assert (json_array_size (items) == 1);
    json_decref (items);
    if (postgresql) {
        ml_db_query_t *query =
            ml_db_query (ml_store_db (store), "SELECT 'open_item_' || md5 (?)", "s", "acme");
        assert (query && ml_db_fetch (query) == 1);
        assert (
            streq ((const char *)zhashx_lookup (core->partitions, "acme"), ml_db_text (query, 0)));
        ml_db_query_destroy (&query);
    }
    //  A new replica swapped in by the other connection (acme's by the load table on
    //  PostgreSQL: a new table under the partition's name).
    assert (ml_store_firm_add (store, "beta", "Beta LLP", "key-beta", "OP-001") == 0);
    ml_msg_t *second = s_test_snapshot_batch (5, "NEW");
    s_test_two_snapshots (store, hello, "e2", second);
    const char *firms[] = {"acme", "beta"};
    for (size_t firm = 0; firm < 2; firm++) {
        items = ml_store_open_items (core, firms[firm], NULL, NULL, NULL);
        assert (json_array_size (items) == 5);
        assert (strncmp (json_string_value (
                             json_object_get (json_array_get (items, 0), "invoice_number")),
                         "NEW-", 4) == 0);
        json_decref (items);
    }
    //  No such firm: nothing, and nothing remembered.
    items = ml_store_open_items (core, "nobody", NULL, NULL, NULL);
    assert (items && json_array_size (items) == 0);
    json_decref (items);
    if (postgresql) {
        assert (!zhashx_lookup (core->partitions, "nobody"));
        //  A name remembered for a table that is not there (a firm added in a transaction
        //  that was undone): one read fails, the next finds the firm's partition again.
        zhashx_update (core->partitions, "beta", "open_item_00000000000000000000000000000000");
        assert (ml_store_open_items (core, "beta", NULL, NULL, NULL) == NULL);
        items = ml_store_open_items (core, "beta", NULL, NULL, NULL);
        assert (json_array_size (items) == 5);
        json_decref (items);
    }
    ml_store_destroy (&core);
    ml_msg_destroy (&second);
    ml_msg_destroy (&first);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
}

void ml_store_test (bool verbose)
{
    printf (" * ml_store: ");
    char directory[128], connection_string[300], error[512];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s/core.db;StepAPI=1;FKSupport=1;Timeout=5000", directory);
    ml_store_t *store = ml_store_new (connection_string, error, sizeof error);
    assert (store);
    ml_store_destroy (&store);
    //  Opening again keeps the schema (idempotent), in write-ahead logging.
    store = ml_store_new (connection_string, error, sizeof error);
    assert (store);
    ml_db_query_t *journal = ml_db_query (ml_store_db (store), "PRAGMA journal_mode", NULL);
    assert (journal && ml_db_fetch (journal) == 1 && streq (ml_db_text (journal, 0), "wal"));
    ml_db_query_destroy (&journal);
    const char *key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    assert (ml_store_firm_add (store, "acme", "Acme LLP", key, "OP-001") == 0);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_ERROR);
    assert (ml_store_firm_add (store, "acme2", "Acme again", key, "OP-001") == -1);
    char firm[64];
    assert (ml_store_firm_by_key (store, key, firm, sizeof firm) == 1 && streq (firm, "acme"));
    assert (ml_store_firm_by_key (store, "unknown", firm, sizeof firm) == 0);

    //  Session, snapshot, changes.
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    strcpy (hello->epoch, "epoch-1");
    hello->high_water = 100;
    bool resync = false;
    uint64_t cursor = 99;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0);
    assert (resync && cursor == 0);
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    for (int index = 1; index <= 3; index++) {
        ml_item_t *item = ml_msg_add_item (batch);
        item->kind = 'I';
        item->op = 'U';
        item->source_id = (uint64_t)index;
        snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%d", index);
        snprintf (item->invoice_date, sizeof item->invoice_date, "2026-0%d-01", 4 - index);
        strcpy (item->client_number, "C-1");
        strcpy (item->currency, "USD");
        item->total_minor = item->balance_minor = 1000 * index;
    }
    assert (ml_store_snapshot_rows (store, "acme", batch) == 0);
    assert (ml_store_snapshot_end (store, "acme", 100) == 0);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0);
    assert (!resync && cursor == 100);
    //  A restored database (high-water below the cursor) forces a resync.
    hello->high_water = 50;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    hello->high_water = 100;
    //  A snapshot whose session ends before SNAPSHOT-END leaves nothing: its kept rows are
    //  dropped when the next session opens, and that session's snapshot is what stays.
    ml_msg_t *abandoned = ml_msg_new (ML_MSG_SNAPSHOT);
    ml_item_t *stray = ml_msg_add_item (abandoned);
    *stray = batch->items[0];
    stray->source_id = 99;
    strcpy (stray->invoice_number, "INV-STRAY");
    assert (ml_store_snapshot_rows (store, "acme", abandoned) == 0);
    ml_msg_destroy (&abandoned);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    assert (ml_store_snapshot_rows (store, "acme", batch) == 0);
    assert (ml_store_snapshot_end (store, "acme", 100) == 0);
    json_t *kept = ml_store_open_items (store, "acme", NULL, NULL, "INV-STRAY");
    assert (kept && json_array_size (kept) == 0);
    json_decref (kept);
    //  Many batches; while they are stored the firm's totals stay those of its last
    //  complete replica (its rows are marked loading), and SNAPSHOT-END counts them.
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && !resync);
    hello->high_water = 50;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    hello->high_water = 100;
    ml_msg_t *large = ml_msg_new (ML_MSG_SNAPSHOT);
    json_t *before = ml_store_status (store);
    for (int index = 0; index < 2507; index++) {
        ml_item_t *item = ml_msg_add_item (large);
        assert (item);
        *item = batch->items[0];
        item->source_id = (uint64_t)(1000 + index);
        snprintf (item->invoice_number, sizeof item->invoice_number, "BULK-%d", index);
        strcpy (item->client_number, "C-BULK");
        if (large->item_count == 1000 || index == 2506) {
            assert (ml_store_snapshot_rows (store, "acme", large) == 0);
            ml_msg_clear_items (large);
        }
    }
    json_t *during = ml_store_status (store);
    assert (before && during && json_equal (before, during));
    json_decref (before);
    json_decref (during);
    assert (ml_store_snapshot_rows (store, "acme", batch) == 0);
    assert (ml_store_snapshot_end (store, "acme", 100) == 0);
    ml_msg_destroy (&large);
    kept = ml_store_open_items (store, "acme", "C-BULK", NULL, NULL);
    assert (kept && json_array_size (kept) == 2507);
    json_decref (kept);
    s_test_totals (store);
    //  And back to the three rows the tests below expect.
    hello->high_water = 50;
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    hello->high_water = 100;
    assert (ml_store_snapshot_rows (store, "acme", batch) == 0);
    assert (ml_store_snapshot_end (store, "acme", 100) == 0);

    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    changes->since = 90; //  not the cursor: refused, nothing changed
    changes->cursor = 120;
    assert (ml_store_changes (store, "acme", changes) == -2);
    changes->since = 100;
    ml_item_t *removal = ml_msg_add_item (changes);
    removal->kind = 'I';
    removal->op = 'R';
    removal->change_id = 110;
    removal->source_id = 2;
    assert (ml_store_changes (store, "acme", changes) == 0);
    assert (ml_store_cursor (store, "acme", &cursor) == 0 && cursor == 120);
    json_t *items = ml_store_open_items (store, "acme", "C-1", NULL, NULL);
    assert (json_array_size (items) == 2);
    assert (
        streq (json_string_value (json_object_get (json_array_get (items, 0), "invoice_number")),
               "INV-3"));
    json_decref (items);

    //  A posting: created pending, its amount subtracted until the replica catches up.
    ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
    strcpy (message->posting.account_number, "OP-001");
    strcpy (message->posting.client_number, "C-1");
    strcpy (message->posting.currency, "USD");
    message->posting.amount_minor = 500;
    ml_line_t line = {'I', "INV-3", 500};
    ml_msg_set_lines (message, &line, 1);
    assert (ml_store_posting_create (store, "acme", &message->posting, "staff") == 0);
    items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    json_t *first = json_array_get (items, 0);
    assert (json_integer_value (json_object_get (first, "pending_minor")) == 500);
    assert (json_integer_value (json_object_get (first, "available_minor")) == 2500);
    json_decref (items);
    zlistx_t *due = ml_store_postings_unanswered (store, "acme", 10);
    assert (zlistx_size (due) == 1 && streq (zlistx_first (due), message->posting.posting_uuid));
    zlistx_destroy (&due);
    zhashx_t *waiting = ml_store_firms_unanswered (store);
    assert (waiting && zhashx_size (waiting) == 1 && zhashx_lookup (waiting, "acme"));
    zhashx_destroy (&waiting);
    ml_msg_t *loaded = ml_store_posting_load (store, message->posting.posting_uuid);
    assert (loaded && loaded->posting.line_count == 1 && loaded->posting.amount_minor == 500);
    ml_msg_destroy (&loaded);
    assert (ml_store_posting_sent (store, message->posting.posting_uuid) == 0);
    ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
    strcpy (result->posting_uuid, message->posting.posting_uuid);
    strcpy (result->status, "posted");
    strcpy (result->receipt_id, "77");
    result->cursor = 130;
    assert (ml_store_posting_result (store, "other", result) == 0);
    assert (ml_store_posting_result (store, "acme", result) == 1);
    assert (ml_store_posting_result (store, "acme", result) == 0);
    waiting = ml_store_firms_unanswered (store); //  answered: none waits
    assert (waiting && zhashx_size (waiting) == 0);
    zhashx_destroy (&waiting);
    items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    assert (json_integer_value (json_object_get (json_array_get (items, 0), "pending_minor")) ==
            500);
    json_decref (items);
    changes->since = 120;
    changes->cursor = 130;
    ml_msg_clear_items (changes);
    assert (ml_store_changes (store, "acme", changes) == 0);
    items = ml_store_open_items (store, "acme", NULL, NULL, NULL);
    assert (json_integer_value (json_object_get (json_array_get (items, 0), "pending_minor")) == 0);
    json_decref (items);
    json_t *posting = ml_store_posting (store, message->posting.posting_uuid);
    assert (posting && streq (json_string_value (json_object_get (posting, "status")), "posted"));
    assert (json_array_size (json_object_get (posting, "history")) == 3);
    json_decref (posting);
    //  Read again (its statements prepared now): the posting, its lines and its history in
    //  one round trip on PostgreSQL; a posting not there leaves no answer behind.
    bool on_postgresql = ml_db_dialect (ml_store_db (store)) == ML_DB_POSTGRESQL;
    size_t reads = ml_db_round_trips (ml_store_db (store));
    posting = ml_store_posting (store, message->posting.posting_uuid);
    assert (json_array_size (json_object_get (posting, "lines")) == 1);
    assert (json_array_size (json_object_get (posting, "history")) == 3);
    assert (ml_db_round_trips (ml_store_db (store)) - reads == (on_postgresql ? 1u : 0u));
    json_decref (posting);
    assert (ml_store_posting (store, "no-such-posting") == NULL);
    reads = ml_db_round_trips (ml_store_db (store));
    posting = ml_store_posting (store, message->posting.posting_uuid);
    assert (json_array_size (json_object_get (posting, "history")) == 3);
    assert (ml_db_round_trips (ml_store_db (store)) - reads == (on_postgresql ? 1u : 0u));
    json_decref (posting);
    //  The journal is append-only: the store refuses to change or delete it.
    assert (ml_db_execute (ml_store_db (store), "DELETE FROM posting_event", NULL) == -1);
    assert (ml_db_execute (ml_store_db (store), "UPDATE posting SET amount_minor = 1", NULL) == -1);
    assert (ml_db_execute (ml_store_db (store), "DELETE FROM posting", NULL) == -1);
    s_test_totals (store);
    json_t *status = ml_store_status (store);
    assert (json_integer_value (json_object_get (json_array_get (status, 0), "invoice_count")) ==
            2);
    json_decref (status);
    //  A reversing posting keeps the UUID of the posting it reverses.
    ml_msg_t *reversal = ml_msg_new (ML_MSG_POSTING);
    reversal->posting = message->posting;
    reversal->posting.lines = NULL;
    *reversal->posting.posting_uuid = 0;
    strcpy (reversal->posting.reverses, message->posting.posting_uuid);
    reversal->posting.amount_minor = 200;
    line.amount_minor = 200;
    ml_msg_set_lines (reversal, &line, 1);
    assert (ml_store_posting_create (store, "acme", &reversal->posting, "refund") == 0);
    loaded = ml_store_posting_load (store, reversal->posting.posting_uuid);
    assert (loaded && streq (loaded->posting.reverses, message->posting.posting_uuid));
    ml_msg_destroy (&loaded);
    //  A posting and its lines are one query: one round trip on PostgreSQL.
    size_t trips = ml_db_round_trips (ml_store_db (store));
    loaded = ml_store_posting_load (store, message->posting.posting_uuid);
    assert (loaded && *loaded->posting.reverses == 0 && loaded->posting.line_count == 1);
    assert (loaded->posting.lines[0].amount_minor == 500);
    assert (ml_db_round_trips (ml_store_db (store)) - trips ==
            (ml_db_dialect (ml_store_db (store)) == ML_DB_POSTGRESQL ? 1u : 0u));
    ml_msg_destroy (&loaded);
    posting = ml_store_posting (store, reversal->posting.posting_uuid);
    assert (posting && streq (json_string_value (json_object_get (posting, "reverses")),
                              message->posting.posting_uuid));
    json_decref (posting);
    ml_msg_destroy (&reversal);
    //  Open items come in the one invoice order that pay allocates by (docs/contract.md),
    //  not in SQL's text order: INV-9 before INV-10, an undated invoice last.
    changes->since = 130;
    changes->cursor = 140;
    ml_msg_clear_items (changes);
    const char *numbers[] = {"INV-8", "INV-10", "INV-9"};
    for (int index = 0; index < 3; index++) {
        ml_item_t *item = ml_msg_add_item (changes);
        item->kind = 'I';
        item->op = 'U';
        item->change_id = (uint64_t)(131 + index);
        item->source_id = (uint64_t)(8 + index);
        strcpy (item->invoice_number, numbers[index]);
        strcpy (item->invoice_date, index ? "2026-05-01" : "");
        strcpy (item->client_number, "C-9");
        strcpy (item->currency, "USD");
        item->total_minor = item->balance_minor = 100;
    }
    assert (ml_store_changes (store, "acme", changes) == 0);
    s_test_totals (store);
    items = ml_store_open_items (store, "acme", "C-9", NULL, NULL);
    assert (json_array_size (items) == 3);
    for (int index = 0; index < 3; index++)
        assert (streq (
            json_string_value (json_object_get (json_array_get (items, index), "invoice_number")),
            numbers[2 - index]));
    json_decref (items);
    //  Two firms' snapshots at once on one core: the other firm's kept rows are written
    //  before a snapshot ends (they used to fail the end, and the agent waited 30 s).
    assert (ml_store_firm_add (store, "beta", "Beta LLP", "key-beta", "OP-001") == 0);
    assert (ml_store_firm_add (store, "gamma", "Gamma LLP", "key-gamma", "OP-001") == 0);
    assert (ml_store_session_open (store, "beta", hello, &resync, &cursor) == 0 && resync);
    assert (ml_store_session_open (store, "gamma", hello, &resync, &cursor) == 0 && resync);
    //  Beta's rows before and after gamma's: on PostgreSQL beta's first ones went to its
    //  load table when gamma's came, so its end takes that table's path, with every row.
    size_t half = batch->item_count / 2;
    assert (half > 0);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "beta", batch->items, half) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_rows (store, "gamma", batch) == 0);
    assert (ml_store_snapshot_begin (store) == 0);
    assert (ml_store_snapshot_write (store, "beta", batch->items + half,
                                     batch->item_count - half) == 0);
    assert (ml_store_snapshot_commit (store, true) == 0);
    assert (ml_store_snapshot_end (store, "beta", 100) == 0);
    assert (ml_store_snapshot_end (store, "gamma", 100) == 0);
    items = ml_store_open_items (store, "beta", NULL, NULL, NULL);
    assert (json_array_size (items) == batch->item_count);
    json_decref (items);
    items = ml_store_open_items (store, "gamma", NULL, NULL, NULL);
    assert (json_array_size (items) == batch->item_count);
    json_decref (items);
    s_test_totals (store);
    ml_log_setup (NULL, saved);
    ml_msg_destroy (&result);
    ml_msg_destroy (&message);
    ml_msg_destroy (&changes);
    ml_msg_destroy (&batch);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    ml_store_destroy (&store);

    s_test_snapshots ();
    s_test_changes_beside ();
    s_test_firm_item_limit ();
    s_test_partition_reads ();

    //  Open balances past 64 bits (the reference schema allows BIGINT balances near
    //  INT64_MAX): status stays exact and says the sum does not fit, instead of failing.
    char firm_directory[128];
    store = ml_selftest_store (firm_directory, sizeof firm_directory);
    assert (store);
    const ml_selftest_item_t huge[] = {{'I', "INV-1", "2026-01-01", "C-1", "M-1", INT64_MAX},
                                       {'I', "INV-2", "2026-01-02", "C-1", "M-1", INT64_MAX},
                                       {'I', "INV-3", "2026-01-03", "C-1", "M-1", -7},
                                       {'I', "INV-4", "2026-01-04", "C-1", "M-1", 1999999999}};
    assert (ml_selftest_replica (store, huge, 3) == 0);
    s_test_totals (store);
    json_t *firms = ml_store_status (store);
    assert (firms && json_array_size (firms) == 1);
    json_t *row = json_array_get (firms, 0);
    assert (json_is_null (json_object_get (row, "open_balance_minor")));
    assert (json_is_true (json_object_get (row, "open_balance_over_64_bits")));
    assert (streq (json_string_value (json_object_get (row, "open_balance_text")),
                   "18446744073709551607"));
    assert (!json_object_get (row, "open_balance_rest_minor"));
    json_decref (firms);
    //  Within 64 bits it is an exact integer, negative balances (credits) included.
    assert (ml_selftest_replica (store, huge + 2, 2) == 0);
    s_test_totals (store);
    firms = ml_store_status (store);
    row = json_array_get (firms, 0);
    assert (json_integer_value (json_object_get (row, "open_balance_minor")) == 1999999992);
    assert (json_is_false (json_object_get (row, "open_balance_over_64_bits")));
    json_decref (firms);
    //  A store failure reaches the log once, with what the statement was for.
    char log_path[200];
    snprintf (log_path, sizeof log_path, "%s/stderr.log", firm_directory);
    int saved_stderr = ml_selftest_stderr_to (log_path);
    ml_log_level_t level = ml_log_level ();
    ml_log_setup ("selftest", ML_LOG_ERROR);
    assert (ml_db_execute (ml_store_db (store), "DROP TABLE replica_state", NULL) >= 0);
    assert (ml_store_status (store) == NULL);
    ml_selftest_stderr_back (saved_stderr);
    ml_log_setup ("selftest", level);
    FILE *logged = fopen (log_path, "r");
    assert (logged);
    char text[1024];
    int lines = 0;
    while (fgets (text, sizeof text, logged)) {
        assert (strstr (text, "core store: status (sums of open balances) failed: "));
        assert (strstr (text, "replica_state"));
        lines++;
    }
    fclose (logged);
    assert (lines == 1);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (firm_directory) == 0);

    //  A posting above the amount limit, stored before the core checked amounts, is
    //  rejected by the core when it would be sent (the agent's decoder drops it).
    char limit_directory[128];
    store = ml_selftest_store (limit_directory, sizeof limit_directory);
    assert (store);
    ml_msg_t *big = ml_msg_new (ML_MSG_POSTING);
    strcpy (big->posting.account_number, "OP-001");
    strcpy (big->posting.client_number, "C-1");
    strcpy (big->posting.currency, "USD");
    big->posting.amount_minor = ML_MONEY_MAX_MINOR + 1;
    ml_line_t big_line = {'I', "INV-1", ML_MONEY_MAX_MINOR + 1};
    assert (ml_msg_set_lines (big, &big_line, 1) == 0);
    assert (ml_store_posting_create (store, "acme", &big->posting, "payment") == 0);
    assert (ml_store_posting_load (store, big->posting.posting_uuid) == NULL);
    json_t *refused = ml_store_posting (store, big->posting.posting_uuid);
    assert (streq (json_string_value (json_object_get (refused, "status")), "rejected"));
    assert (strstr (json_string_value (json_object_get (refused, "reason")), "bad_amount"));
    json_decref (refused);
    ml_msg_destroy (&big);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (limit_directory) == 0);

    //  A store made before reversing postings gets the reverses column when it is opened.
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s/old.db;StepAPI=1;FKSupport=1;Timeout=5000", directory);
    ml_db_error_t db_error;
    ml_db_t *old = ml_db_new (connection_string, &db_error);
    assert (old);
    assert (ml_db_execute (
                old,
                "CREATE TABLE posting (posting_seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " posting_uuid TEXT NOT NULL UNIQUE, firm_id TEXT NOT NULL, source TEXT NOT NULL,"
                " created_at TEXT NOT NULL, received_on TEXT NOT NULL,"
                " account_number TEXT NOT NULL, client_number TEXT NOT NULL,"
                " payer_name TEXT NOT NULL, payer_email TEXT NOT NULL, currency TEXT NOT NULL,"
                " amount_minor INTEGER NOT NULL, ar_message TEXT NOT NULL,"
                " processor_txn TEXT NOT NULL, status TEXT NOT NULL, receipt_id TEXT,"
                " reason TEXT, result_cursor INTEGER NOT NULL DEFAULT 0,"
                " attempts INTEGER NOT NULL DEFAULT 0, last_sent_at TEXT,"
                " updated_at TEXT NOT NULL)",
                NULL) >= 0);
    assert (ml_db_execute (old,
                           "INSERT INTO posting VALUES (NULL, 'u-1', 'acme', 'staff', 'now',"
                           " '2026-01-01', 'OP-001', 'C-1', '', '', 'USD', 5, '', '',"
                           " 'posted', '1', NULL, 0, 1, NULL, 'now')",
                           NULL) == 1);
    //  A line as version 1 kept it, without its firm.
    assert (ml_db_execute (old,
                           "CREATE TABLE posting_line (posting_uuid TEXT NOT NULL, line_no"
                           " INTEGER NOT NULL, kind TEXT NOT NULL, reference TEXT NOT NULL,"
                           " amount_minor INTEGER NOT NULL, PRIMARY KEY (posting_uuid, line_no))",
                           NULL) >= 0);
    assert (ml_db_execute (old, "INSERT INTO posting_line VALUES ('u-1', 1, 'I', 'INV-1', 5)",
                           NULL) == 1);
    ml_db_destroy (&old);
    store = ml_store_new (connection_string, error, sizeof error);
    assert (store);
    ml_db_query_t *query = ml_db_query (
        ml_store_db (store), "SELECT reverses FROM posting WHERE posting_uuid = 'u-1'", NULL);
    assert (query && ml_db_fetch (query) == 1 && streq (ml_db_text (query, 0), ""));
    ml_db_query_destroy (&query);
    //  Version 6 gave the line its posting's firm, and the lines stay append-only.
    query = ml_db_query (ml_store_db (store),
                         "SELECT firm_id FROM posting_line WHERE posting_uuid = 'u-1'", NULL);
    assert (query && ml_db_fetch (query) == 1 && streq (ml_db_text (query, 0), "acme"));
    ml_db_query_destroy (&query);
    assert (ml_db_execute (ml_store_db (store), "UPDATE posting_line SET amount_minor = 6", NULL) <
            0);
    //  Every migration ran, in order: the totals count the posting the old store had.
    s_test_totals (store);
    query = ml_db_query (ml_store_db (store), "SELECT MAX (version) FROM store_version", NULL);
    int64_t version = 0;
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &version) == 0);
    assert (version == ML_STORE_VERSION);
    ml_db_query_destroy (&query);
    ml_store_destroy (&store);
    store = ml_store_new (connection_string, error, sizeof error);
    assert (store);
    //  A store a newer core has migrated is refused, and left as it is.
    assert (ml_db_execute (ml_store_db (store), "INSERT INTO store_version (version) VALUES (?)",
                           "i", (int64_t)ML_STORE_VERSION + 1) == 1);
    ml_store_destroy (&store);
    assert (!ml_store_new (connection_string, error, sizeof error));
    assert (strstr (error, "newer than this core"));
    assert (!ml_store_new (connection_string, error, sizeof error));
    assert (ml_selftest_remove (directory) == 0);
    //  The same on the selftest store's engine (PostgreSQL in selftest_ml_store_postgresql).
    char newer[128];
    store = ml_selftest_store (newer, sizeof newer);
    assert (store);
    assert (ml_db_execute (ml_store_db (store), "INSERT INTO store_version (version) VALUES (?)",
                           "i", (int64_t)ML_STORE_VERSION + 1) == 1);
    ml_store_destroy (&store);
    assert (!ml_store_new (ml_selftest_store_connection (newer), error, sizeof error));
    assert (strstr (error, "newer than this core"));
    assert (ml_selftest_remove (newer) == 0);
    printf ("OK\n");
}
