/*  ml_store's schema and its ordered migrations (core/ml_store_internal.h): what each store
    version added, and why, on SQLite and PostgreSQL. ml_store_new runs them.
*/
#include "ml_store_internal.h"

#include <string.h>

//  The schema, one statement per entry. Journal tables refuse updates and deletes:
//  corrections are new entries (DESIGN.md, rule 6).
static const char *s_schema[] = {
    "CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS firm ("
    " firm_id TEXT PRIMARY KEY, name TEXT NOT NULL, public_key TEXT NOT NULL UNIQUE,"
    " operating_account TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS replica_state ("
    " firm_id TEXT PRIMARY KEY REFERENCES firm (firm_id), epoch TEXT NOT NULL DEFAULT '',"
    " contract_version INTEGER NOT NULL DEFAULT 0, cursor INTEGER NOT NULL DEFAULT 0,"
    " complete INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0,"
    " snapshot_started_at TEXT, snapshot_completed_at TEXT, last_hello_at TEXT)",
    "CREATE TABLE IF NOT EXISTS open_item ("
    " firm_id TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('I', 'T')),"
    " source_id INTEGER NOT NULL, invoice_number TEXT, invoice_date TEXT, due_date TEXT,"
    " client_number TEXT, client_name TEXT, matter_number TEXT, matter_description TEXT,"
    " currency TEXT NOT NULL, total_minor INTEGER, balance_minor INTEGER NOT NULL,"
    " status TEXT, generation INTEGER NOT NULL, change_id INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (firm_id, kind, source_id))",
    "CREATE INDEX IF NOT EXISTS open_item_client ON open_item (firm_id, client_number)",
    "CREATE INDEX IF NOT EXISTS open_item_matter ON open_item (firm_id, matter_number)",
    "CREATE INDEX IF NOT EXISTS open_item_invoice ON open_item (firm_id, invoice_number)",
    "CREATE TABLE IF NOT EXISTS posting ("
    " posting_seq INTEGER PRIMARY KEY AUTOINCREMENT, posting_uuid TEXT NOT NULL UNIQUE,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), source TEXT NOT NULL,"
    " created_at TEXT NOT NULL, received_on TEXT NOT NULL, account_number TEXT NOT NULL,"
    " client_number TEXT NOT NULL, payer_name TEXT NOT NULL, payer_email TEXT NOT NULL,"
    " currency TEXT NOT NULL, amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),"
    " ar_message TEXT NOT NULL, processor_txn TEXT NOT NULL, reverses TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'posted', 'rejected',"
    " 'reversed')), receipt_id TEXT, reason TEXT, result_cursor INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, last_sent_at TEXT, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS posting_firm_status ON posting (firm_id, status, posting_seq)",
    "CREATE TABLE IF NOT EXISTS posting_line ("
    " posting_uuid TEXT NOT NULL REFERENCES posting (posting_uuid), line_no INTEGER NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('I', 'T')), reference TEXT NOT NULL,"
    " amount_minor INTEGER NOT NULL CHECK (amount_minor > 0), PRIMARY KEY (posting_uuid, line_no))",
    "CREATE INDEX IF NOT EXISTS posting_line_reference ON posting_line (reference)",
    "CREATE TABLE IF NOT EXISTS posting_event ("
    " event_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " posting_uuid TEXT NOT NULL REFERENCES posting (posting_uuid), at TEXT NOT NULL,"
    " status TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS posting_event_posting ON posting_event (posting_uuid)",
    "CREATE TRIGGER IF NOT EXISTS posting_line_no_update BEFORE UPDATE ON posting_line"
    " BEGIN SELECT RAISE (ABORT, 'posting lines are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS posting_line_no_delete BEFORE DELETE ON posting_line"
    " BEGIN SELECT RAISE (ABORT, 'posting lines are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS posting_event_no_update BEFORE UPDATE ON posting_event"
    " BEGIN SELECT RAISE (ABORT, 'posting history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS posting_event_no_delete BEFORE DELETE ON posting_event"
    " BEGIN SELECT RAISE (ABORT, 'posting history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS posting_no_delete BEFORE DELETE ON posting"
    " BEGIN SELECT RAISE (ABORT, 'postings are never deleted'); END",
    "CREATE TRIGGER IF NOT EXISTS posting_money_fixed BEFORE UPDATE OF amount_minor, currency, "
    "reverses,"
    " client_number, account_number, firm_id, posting_uuid ON posting"
    " BEGIN SELECT RAISE (ABORT, 'a posting''s money is fixed; reverse it instead'); END",
    //  Lines promised to a card charge whose outcome is not final yet (pending or unknown):
    //  they count against the balance like a posting's, so no other payment takes them
    //  meanwhile. Removed when the charge is final, in the transaction that records it.
    "CREATE TABLE IF NOT EXISTS balance_hold ("
    " hold_key TEXT NOT NULL, line_no INTEGER NOT NULL, firm_id TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('I', 'T')), reference TEXT NOT NULL,"
    " amount_minor INTEGER NOT NULL CHECK (amount_minor > 0), PRIMARY KEY (hold_key, line_no))",
    "CREATE INDEX IF NOT EXISTS balance_hold_reference ON balance_hold (firm_id, reference)",
};

//  Version 2: totals kept as the replica and the outbox change, so status reads a few rows
//  instead of summing the whole replica (430 to 570 ms at 1,000,000 invoices). The triggers
//  run inside the statement that changes a row, so the totals are exact in every committed
//  state, whichever path (snapshot, changes, a reallocation) wrote it. Balances are kept in
//  two parts (billions and the rest) so no sum overflows 64 bits (status adds them in 128).
#define S_TOTAL_ADD(row, sign)                                                                     \
    "INSERT INTO replica_total (firm_id, kind, currency, item_count, balance_billions,"            \
    " balance_rest) VALUES (" row ".firm_id, " row ".kind, " row ".currency, " sign "1, " sign     \
    "(" row ".balance_minor / 1000000000), " sign "(" row ".balance_minor % 1000000000))"          \
    " ON CONFLICT (firm_id, kind, currency) DO UPDATE SET"                                         \
    " item_count = replica_total.item_count + excluded.item_count,"                                \
    " balance_billions = replica_total.balance_billions + excluded.balance_billions,"              \
    " balance_rest = replica_total.balance_rest + excluded.balance_rest;"
#define S_POSTING_COUNT(row, sign)                                                                 \
    "INSERT INTO posting_total (firm_id, status, posting_count) VALUES (" row ".firm_id, " row     \
    ".status, " sign "1) ON CONFLICT (firm_id, status) DO UPDATE SET"                              \
    " posting_count = posting_total.posting_count + excluded.posting_count;"
//  The totals' tables, the same on both engines.
#define S_TOTAL_TABLES                                                                             \
    "CREATE TABLE IF NOT EXISTS replica_total ("                                                   \
    " firm_id TEXT NOT NULL, kind TEXT NOT NULL, currency TEXT NOT NULL,"                          \
    " item_count INTEGER NOT NULL, balance_billions INTEGER NOT NULL,"                             \
    " balance_rest INTEGER NOT NULL, PRIMARY KEY (firm_id, kind, currency))",                      \
        "CREATE TABLE IF NOT EXISTS posting_total ("                                               \
        " firm_id TEXT NOT NULL, status TEXT NOT NULL, posting_count INTEGER NOT NULL,"            \
        " PRIMARY KEY (firm_id, status))"
static const char *s_totals_schema[] = {
    S_TOTAL_TABLES,
    "CREATE TRIGGER IF NOT EXISTS open_item_total_insert AFTER INSERT ON open_item"
    " BEGIN " S_TOTAL_ADD ("NEW", "") " END",
    "CREATE TRIGGER IF NOT EXISTS open_item_total_delete AFTER DELETE ON open_item"
    " BEGIN " S_TOTAL_ADD ("OLD", "-") " END",
    "CREATE TRIGGER IF NOT EXISTS open_item_total_update AFTER UPDATE OF firm_id, kind,"
    " currency, balance_minor ON open_item"
    " BEGIN " S_TOTAL_ADD ("OLD", "-") " " S_TOTAL_ADD ("NEW", "") " END",
    "CREATE TRIGGER IF NOT EXISTS posting_total_insert AFTER INSERT ON posting"
    " BEGIN " S_POSTING_COUNT ("NEW", "") " END",
    "CREATE TRIGGER IF NOT EXISTS posting_total_update AFTER UPDATE OF status ON posting"
    " WHEN OLD.status <> NEW.status"
    " BEGIN " S_POSTING_COUNT ("OLD", "-") " " S_POSTING_COUNT ("NEW", "") " END",
    //  A store of version 1 has its replica and outbox already: count them once.
    "DELETE FROM replica_total",
    "INSERT INTO replica_total (firm_id, kind, currency, item_count, balance_billions,"
    " balance_rest) SELECT firm_id, kind, currency, COUNT (*),"
    " SUM (balance_minor / 1000000000), SUM (balance_minor % 1000000000)"
    " FROM open_item GROUP BY firm_id, kind, currency",
    "DELETE FROM posting_total",
    "INSERT INTO posting_total (firm_id, status, posting_count)"
    " SELECT firm_id, status, COUNT (*) FROM posting GROUP BY firm_id, status",
};

//  Version 2 on PostgreSQL: the replica's totals are kept by statement triggers that add
//  up each statement's rows (transition tables) and change a total once. Row triggers, as
//  on SQLite, update one hot total row per replica row: every update leaves a row version
//  behind until the transaction ends, so a 100,000-row snapshot took two minutes (0.8 s
//  without). The postings' counts stay per row (a few rows per transaction).
#define S_PG_TOTALS(name, event, tables, rows)                                                     \
    "CREATE OR REPLACE FUNCTION " name "_fn () RETURNS trigger LANGUAGE plpgsql AS $ml$ BEGIN"     \
    " INSERT INTO replica_total (firm_id, kind, currency, item_count, balance_billions,"           \
    " balance_rest) SELECT firm_id, kind, currency, SUM (sign),"                                   \
    " SUM (sign * (balance_minor / 1000000000)), SUM (sign * (balance_minor % 1000000000))"        \
    " FROM (" rows ") AS changed GROUP BY firm_id, kind, currency"                                 \
    " ON CONFLICT (firm_id, kind, currency) DO UPDATE SET"                                         \
    " item_count = replica_total.item_count + excluded.item_count,"                                \
    " balance_billions = replica_total.balance_billions + excluded.balance_billions,"              \
    " balance_rest = replica_total.balance_rest + excluded.balance_rest;"                          \
    " RETURN NULL; END $ml$; CREATE OR REPLACE TRIGGER " name " AFTER " event " ON open_item"      \
    " REFERENCING " tables " FOR EACH STATEMENT EXECUTE FUNCTION " name "_fn ()"
#define S_PG_ROWS(table, sign)                                                                     \
    "SELECT firm_id, kind, currency, balance_minor, " sign " AS sign FROM " table
static const char *s_totals_schema_postgresql[] = {
    S_TOTAL_TABLES,
    S_PG_TOTALS ("open_item_total_insert", "INSERT", "NEW TABLE AS new_rows",
                 S_PG_ROWS ("new_rows", "1")),
    S_PG_TOTALS ("open_item_total_delete", "DELETE", "OLD TABLE AS old_rows",
                 S_PG_ROWS ("old_rows", "-1")),
    S_PG_TOTALS ("open_item_total_update", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                 S_PG_ROWS ("old_rows", "-1") " UNION ALL " S_PG_ROWS ("new_rows", "1")),
    "CREATE TRIGGER IF NOT EXISTS posting_total_insert AFTER INSERT ON posting"
    " BEGIN " S_POSTING_COUNT ("NEW", "") " END",
    "CREATE TRIGGER IF NOT EXISTS posting_total_update AFTER UPDATE OF status ON posting"
    " WHEN OLD.status <> NEW.status"
    " BEGIN " S_POSTING_COUNT ("OLD", "-") " " S_POSTING_COUNT ("NEW", "") " END",
};

//  Version 3: a client's open items are read from the index alone. Its rows lie scattered
//  over the table (in the order the firm made them), so listing a payer's 40 invoices at
//  1,000,000 read 40 table pages besides the index; with every column the listings read in
//  the index, they are one run of it (the payer's pages at 1,000,000 invoices: bench/web.sh).
//  Same leading columns as the index it replaces, so lookups by client use it as before.
static const char *s_client_listing_schema[] = {
    "DROP INDEX IF EXISTS open_item_client",
    "CREATE INDEX open_item_client ON open_item (firm_id, client_number, kind, invoice_number,"
    " invoice_date, due_date, client_name, matter_number, matter_description, currency,"
    " total_minor, balance_minor, source_id)",
};

//  Version 4: a snapshot is stored without per-row totals. While a firm's snapshot is being
//  written its firm_id is in replica_loading, and the totals triggers skip its rows (the
//  upsert into replica_total cost a B-tree write per row, a third of the ingest's time);
//  SNAPSHOT-END counts the firm's totals once from the replica and removes the mark, in the
//  transaction that makes the replica complete. So the totals stay exact in every committed
//  state of a complete replica, and while a snapshot is stored they are those of the
//  firm's last complete replica (the snapshot's rows count when it ends).
#define S_LOADING(row)                                                                             \
    " WHEN NOT EXISTS (SELECT 1 FROM replica_loading WHERE firm_id = " row ".firm_id)"
static const char *s_loading_schema[] = {
    "CREATE TABLE IF NOT EXISTS replica_loading (firm_id TEXT PRIMARY KEY)",
    "DROP TRIGGER IF EXISTS open_item_total_insert",
    "DROP TRIGGER IF EXISTS open_item_total_delete",
    "DROP TRIGGER IF EXISTS open_item_total_update",
    "CREATE TRIGGER open_item_total_insert AFTER INSERT ON open_item" S_LOADING (
        "NEW") " BEGIN " S_TOTAL_ADD ("NEW", "") " END",
    "CREATE TRIGGER open_item_total_delete AFTER DELETE ON open_item" S_LOADING (
        "OLD") " BEGIN " S_TOTAL_ADD ("OLD", "-") " END",
    "CREATE TRIGGER open_item_total_update AFTER UPDATE OF firm_id, kind,"
    " currency, balance_minor ON open_item" S_LOADING ("NEW") " BEGIN " S_TOTAL_ADD (
        "OLD", "-") " " S_TOTAL_ADD ("NEW", "") " END",
};

//  Version 4 on PostgreSQL: the statement triggers of version 2 leave out the rows of a
//  firm whose snapshot is loading, as the row triggers do on SQLite.
#define S_PG_LOADING_ROWS(table, sign)                                                             \
    S_PG_ROWS (table, sign)                                                                        \
    " WHERE NOT EXISTS (SELECT 1 FROM replica_loading l"                                           \
    " WHERE l.firm_id = " table ".firm_id)"
//  The three statement triggers (insert, delete, update), as one list of statements.
#define S_PG_LOADING_TOTALS                                                                        \
    S_PG_TOTALS ("open_item_total_insert", "INSERT", "NEW TABLE AS new_rows",                      \
                 S_PG_LOADING_ROWS ("new_rows", "1")),                                             \
        S_PG_TOTALS ("open_item_total_delete", "DELETE", "OLD TABLE AS old_rows",                  \
                     S_PG_LOADING_ROWS ("old_rows", "-1")),                                        \
        S_PG_TOTALS ("open_item_total_update", "UPDATE",                                           \
                     "OLD TABLE AS old_rows NEW TABLE AS new_rows",                                \
                     S_PG_LOADING_ROWS ("old_rows",                                                \
                                        "-1") " UNION ALL " S_PG_LOADING_ROWS ("new_rows", "1"))
static const char *s_loading_schema_postgresql[] = {
    "CREATE TABLE IF NOT EXISTS replica_loading (firm_id TEXT PRIMARY KEY)",
    S_PG_LOADING_TOTALS,
};

//  Version 5: on PostgreSQL the replica is partitioned by firm, so that a snapshot is stored
//  without index maintenance and without the store's write lock: its rows go by COPY into a
//  load table of the firm's own (ml_replica_load), SNAPSHOT-END builds the load table's
//  indexes in bulk (ml_replica_index) and then, in one small transaction under the lock,
//  swaps it in for the firm's partition (ml_replica_swap). Upserting 1,000,000 rows into
//  the indexed table cost about 20 s of the server's time; the load and the bulk build a
//  fraction of it (bench/RESULTS.md). Attaching and detaching fire no triggers: the swap's
//  transaction writes the firm's totals itself, as SNAPSHOT-END did. SQLite has no
//  partitions: there the version changes nothing.
#define S_PG_ITEM_COLUMNS                                                                          \
    " (firm_id TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('I', 'T')),"                      \
    " source_id INTEGER NOT NULL, invoice_number TEXT, invoice_date TEXT, due_date TEXT,"          \
    " client_number TEXT, client_name TEXT, matter_number TEXT, matter_description TEXT,"          \
    " currency TEXT NOT NULL, total_minor INTEGER, balance_minor INTEGER NOT NULL,"                \
    " status TEXT, generation INTEGER NOT NULL, change_id INTEGER NOT NULL DEFAULT 0,"             \
    " PRIMARY KEY (firm_id, kind, source_id))"
//  A firm's partition is open_item_ and the MD5 of its id; a load table that and _generation.
#define S_PG_PARTITION_NAME ML_STORE_PG_PARTITION ("p_firm")
static const char *s_partition_schema_postgresql[] = {
    "ALTER TABLE open_item RENAME TO open_item_v4",
    "ALTER TABLE open_item_v4 RENAME CONSTRAINT open_item_pkey TO open_item_v4_pkey",
    "ALTER INDEX open_item_client RENAME TO open_item_v4_client",
    "ALTER INDEX open_item_matter RENAME TO open_item_v4_matter",
    "ALTER INDEX open_item_invoice RENAME TO open_item_v4_invoice",
    "CREATE TABLE open_item" S_PG_ITEM_COLUMNS " PARTITION BY LIST (firm_id)",
    "CREATE INDEX open_item_client ON open_item (firm_id, client_number, kind, invoice_number,"
    " invoice_date, due_date, client_name, matter_number, matter_description, currency,"
    " total_minor, balance_minor, source_id)",
    "CREATE INDEX open_item_matter ON open_item (firm_id, matter_number)",
    "CREATE INDEX open_item_invoice ON open_item (firm_id, invoice_number)",
    //  Every firm has its partition from ml_store_firm_add on.
    "CREATE OR REPLACE FUNCTION ml_replica_partition (p_firm TEXT) RETURNS TEXT LANGUAGE plpgsql"
    " AS $ml$ DECLARE live TEXT := " S_PG_PARTITION_NAME "; BEGIN"
    " EXECUTE format ('CREATE TABLE IF NOT EXISTS %I PARTITION OF open_item FOR VALUES IN (%L)',"
    " live, p_firm); RETURN live; END $ml$",
    "CREATE OR REPLACE FUNCTION ml_replica_load (p_firm TEXT, p_generation BIGINT) RETURNS TEXT"
    " LANGUAGE plpgsql AS $ml$ DECLARE load TEXT := " S_PG_PARTITION_NAME " || '_' || p_generation;"
    " BEGIN EXECUTE format ('CREATE TABLE IF NOT EXISTS %I (LIKE open_item INCLUDING DEFAULTS"
    " INCLUDING CONSTRAINTS)', load); RETURN load; END $ml$",
    //  The indexes of the partitioned table, built in bulk; an item carried twice keeps its
    //  last copy (a fresh table's rows lie in the order they came); the check constraint
    //  lets ATTACH skip its scan. A table that has its key already is left as it is.
    "CREATE OR REPLACE FUNCTION ml_replica_index (p_firm TEXT, p_generation BIGINT) RETURNS VOID"
    " LANGUAGE plpgsql AS $ml$ DECLARE load TEXT := " S_PG_PARTITION_NAME " || '_' || p_generation;"
    " BEGIN"
    " IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = load::regclass AND contype = 'p')"
    " THEN RETURN; END IF;"
    " PERFORM set_config ('maintenance_work_mem', '256MB', true);"
    " BEGIN EXECUTE format ('ALTER TABLE %I ADD PRIMARY KEY (firm_id, kind, source_id)', load);"
    " EXCEPTION WHEN unique_violation THEN"
    " EXECUTE format ('DELETE FROM %I a USING %I b WHERE a.kind = b.kind"
    " AND a.source_id = b.source_id AND a.ctid < b.ctid', load, load);"
    " EXECUTE format ('ALTER TABLE %I ADD PRIMARY KEY (firm_id, kind, source_id)', load); END;"
    " EXECUTE format ('CREATE INDEX ON %I (firm_id, client_number, kind, invoice_number,"
    " invoice_date, due_date, client_name, matter_number, matter_description, currency,"
    " total_minor, balance_minor, source_id)', load);"
    " EXECUTE format ('CREATE INDEX ON %I (firm_id, matter_number)', load);"
    " EXECUTE format ('CREATE INDEX ON %I (firm_id, invoice_number)', load);"
    " EXECUTE format ('ALTER TABLE %I ADD CONSTRAINT ml_firm CHECK (firm_id = %L)', load, p_firm);"
    " END $ml$",
    "CREATE OR REPLACE FUNCTION ml_replica_swap (p_firm TEXT, p_generation BIGINT) RETURNS VOID"
    " LANGUAGE plpgsql AS $ml$ DECLARE live TEXT := " S_PG_PARTITION_NAME ";"
    " load TEXT := live || '_' || p_generation; BEGIN"
    " IF to_regclass (live) IS NOT NULL THEN"
    " EXECUTE format ('ALTER TABLE open_item DETACH PARTITION %I', live);"
    " EXECUTE format ('DROP TABLE %I', live); END IF;"
    " EXECUTE format ('ALTER TABLE open_item ATTACH PARTITION %I FOR VALUES IN (%L)', load,"
    " p_firm);"
    " EXECUTE format ('ALTER TABLE %I RENAME TO %I', load, live); END $ml$",
    //  Load tables of abandoned snapshots, of generations before the one swapped in (a
    //  later one is a newer session's, perhaps on another node): each dropped if it can be
    //  at once (a connection still writing one keeps it until the next time).
    "CREATE OR REPLACE FUNCTION ml_replica_tidy (p_firm TEXT, p_generation BIGINT) RETURNS VOID"
    " LANGUAGE plpgsql AS $ml$ DECLARE prefix TEXT := " S_PG_PARTITION_NAME " || '_';"
    " stale TEXT; BEGIN PERFORM set_config ('lock_timeout', '100', true);"
    " FOR stale IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema ()"
    " AND left (tablename, length (prefix)) = prefix"
    " AND substr (tablename, length (prefix) + 1) ~ '^[0-9]+$'"
    " AND substr (tablename, length (prefix) + 1)::BIGINT < p_generation LOOP"
    " BEGIN EXECUTE format ('DROP TABLE %I', stale);"
    " EXCEPTION WHEN lock_not_available THEN NULL; END; END LOOP; END $ml$",
    "SELECT ml_replica_partition (firm_id) FROM firm",
    "INSERT INTO open_item SELECT * FROM open_item_v4 WHERE firm_id IN (SELECT firm_id FROM firm)",
    "DROP TABLE open_item_v4",
    //  The totals triggers of version 4, on the new table (they went with the old one).
    S_PG_LOADING_TOTALS,
};

//  Version 6: a posting's lines carry its firm, indexed with the line's reference. What is pending
//  on an invoice is read per open item, and it found the lines by reference alone: every firm's
//  lines of that invoice number, in every posting ever made (firms number their invoices alike:
//  INV-000001 at 1,000 firms was 43% of the core thread at 1,000 payments/s, bench/scale.sh), then
//  their postings to see the firm. The lines are append-only: the migration lifts that only to fill
//  the new column.
#define S_LINE_FIRM_INDEX                                                                          \
    "CREATE INDEX posting_line_firm_reference ON posting_line (firm_id, kind, reference)"
static const char *s_line_firm_schema[] = {
    "ALTER TABLE posting_line ADD COLUMN firm_id TEXT NOT NULL DEFAULT ''",
    "DROP TRIGGER IF EXISTS posting_line_no_update",
    "UPDATE posting_line SET firm_id = (SELECT p.firm_id FROM posting p"
    " WHERE p.posting_uuid = posting_line.posting_uuid)",
    "CREATE TRIGGER posting_line_no_update BEFORE UPDATE ON posting_line"
    " BEGIN SELECT RAISE (ABORT, 'posting lines are append-only'); END",
    "DROP INDEX IF EXISTS posting_line_reference",
    S_LINE_FIRM_INDEX,
};
static const char *s_line_firm_schema_postgresql[] = {
    "ALTER TABLE posting_line ADD COLUMN firm_id TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE posting_line DISABLE TRIGGER posting_line_no_update",
    "UPDATE posting_line SET firm_id = p.firm_id FROM posting p"
    " WHERE p.posting_uuid = posting_line.posting_uuid",
    "ALTER TABLE posting_line ENABLE TRIGGER posting_line_no_update",
    "DROP INDEX IF EXISTS posting_line_reference",
    S_LINE_FIRM_INDEX,
};

//  The store's own migrations, in order: version N is reached by running entry N - 1 on a
//  store of version N - 1, in the transaction that records N. (The classes that keep
//  tables in the store create them with ml_store_schema, idempotently.) A migration whose
//  PostgreSQL form differs has it beside (a PostgreSQL store starts empty at version 2, so
//  it needs no counting of an existing replica).
typedef struct {
    const char *const *statements;
    size_t count;
    const char *const *postgresql; //  NULL: the same statements
    size_t postgresql_count;
} s_migration_t;

#define S_STATEMENTS(array) array, sizeof array / sizeof array[0]
static const s_migration_t s_migrations[] = {
    {S_STATEMENTS (s_schema), NULL, 0},
    {S_STATEMENTS (s_totals_schema), S_STATEMENTS (s_totals_schema_postgresql)},
    {S_STATEMENTS (s_client_listing_schema), NULL, 0},
    {S_STATEMENTS (s_loading_schema), S_STATEMENTS (s_loading_schema_postgresql)},
    {NULL, 0, S_STATEMENTS (s_partition_schema_postgresql)},
    {S_STATEMENTS (s_line_firm_schema), S_STATEMENTS (s_line_firm_schema_postgresql)},
};
_Static_assert(sizeof s_migrations / sizeof s_migrations[0] == ML_STORE_VERSION,
               "ML_STORE_VERSION is the number of migrations");

//  Stores made before reversing postings have a posting table without reverses: CREATE TABLE
//  IF NOT EXISTS leaves such a table as it is, so the column is added when it is missing.
//  Returns 0 or -1.
static int s_posting_upgrade (ml_db_t *db)
{
    ml_db_query_t *query = ml_db_query (db, "SELECT * FROM posting WHERE 1 = 0", NULL);
    if (!query)
        return -1;
    bool found = false;
    for (int column = 0; column < ml_db_columns (query) && !found; column++) {
        const char *name = ml_db_column_name (query, column);
        found = name && strcmp (name, "reverses") == 0;
    }
    ml_db_query_destroy (&query);
    if (found)
        return 0;
    return ml_db_execute (db, "ALTER TABLE posting ADD COLUMN reverses TEXT NOT NULL DEFAULT ''",
                          NULL) >= 0
               ? 0
               : -1;
}

int ml_store_migrate (ml_db_t *db, int64_t version)
{
    bool ok = true;
    for (int64_t step = version; ok && step >= 0 && step < ML_STORE_VERSION; step++) {
        const s_migration_t *migration = &s_migrations[step];
        bool postgresql = ml_db_dialect (db) == ML_DB_POSTGRESQL && migration->postgresql;
        const char *const *statements = postgresql ? migration->postgresql : migration->statements;
        size_t count = postgresql ? migration->postgresql_count : migration->count;
        for (size_t index = 0; ok && index < count; index++)
            ok = ml_db_execute (db, statements[index], NULL) >= 0;
        if (ok && step == 0)
            ok = s_posting_upgrade (db) == 0;
    }
    return ok ? 0 : -1;
}
