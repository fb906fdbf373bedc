/*  ml_store: the core's store. See include/ml_store.h. */
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

static json_t *s_rows (ml_store_t *self, const char *purpose, ml_db_query_t *query);

//  UTC timestamps as text with milliseconds, and today's date. strftime keeps the
//  compiler's format-truncation analysis quiet where snprintf of tm fields would not.
void ml_store_now (char *buf, size_t size)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char seconds[24];
    strftime (seconds, sizeof seconds, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buf, size, "%s.%03dZ", seconds, (int)(now.tv_nsec / 1000000) % 1000);
}

static void s_today (char *buf, size_t size)
{
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    strftime (buf, size, "%Y-%m-%d", &utc);
}

ml_store_t *ml_store_new (const char *connection_string, char *error, size_t error_size)
{
    ml_db_error_t db_error;
    ml_db_t *db = ml_db_new (connection_string, &db_error);
    if (!db) {
        snprintf (error, error_size, "cannot open the core store: %s", db_error.message);
        return NULL;
    }
    ml_store_t *self = calloc (1, sizeof (ml_store_t));
    assert (self);
    self->db = db;
    self->max_firm_items = ML_STORE_MAX_FIRM_ITEMS;
    if (ml_db_dialect (db) == ML_DB_POSTGRESQL)
        self->load = ml_store_pg_load_new ();
    //  On SQLite: write-ahead logging, so the staff CLI and register-agent can read while
    //  the core writes; synchronous stays FULL, because a posting the core said it recorded
    //  must survive a power cut; and a 64 MB page cache, since replica indexes over a
    //  million invoices thrash the 2 MB default; and reads through a memory map of up to
    //  1 GB (a page already in the OS's cache costs no read call and no copy: the payer's
    //  pages at 1,000,000 invoices cost the core 10% less, bench/web.sh). Only SQLite gets
    //  these statements.
    if (ml_db_dialect (db) == ML_DB_SQLITE) {
        ml_db_query_t *mode = ml_db_query (db, "PRAGMA journal_mode = WAL", NULL);
        if (!mode || ml_db_fetch (mode) != 1 || !ml_db_text (mode, 0) ||
            strcmp (ml_db_text (mode, 0), "wal") != 0)
            ml_log (ML_LOG_WARNING, "core store: write-ahead logging could not be switched on; "
                                    "readers will wait for the core's writes");
        ml_db_query_destroy (&mode);
        ml_db_execute (db, "PRAGMA synchronous = FULL", NULL);
        ml_db_execute (db, "PRAGMA cache_size = -65536", NULL);
        ml_db_query_t *mapped = ml_db_query (db, "PRAGMA mmap_size = 1073741824", NULL);
        if (mapped)
            ml_db_fetch (mapped);
        ml_db_query_destroy (&mapped);
    }
    bool ok =
        ml_db_begin (db) == 0 &&
        ml_db_execute (db, "CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL)",
                       NULL) >= 0;
    if (ok) {
        ml_db_query_t *query = ml_db_query (db, "SELECT MAX(version) FROM store_version", NULL);
        int64_t version = 0;
        ok = query && ml_db_fetch (query) >= 0;
        if (ok && ml_db_int64 (query, 0, &version) != 0)
            version = 0; //  a new store, or one made before versions were recorded
        ml_db_query_destroy (&query);
        //  Each migration the store has not had, in order, in this one transaction.
        if (ok && version < ML_STORE_VERSION)
            ok = ml_store_migrate (db, version) == 0;
        if (ok && version > ML_STORE_VERSION) {
            snprintf (error, error_size,
                      "the core store has schema version %lld, newer than this core (%d)",
                      (long long)version, ML_STORE_VERSION);
            ml_db_rollback (db);
            ml_store_destroy (&self);
            return NULL;
        }
        if (ok && version < ML_STORE_VERSION)
            ok = ml_db_execute (db, "INSERT INTO store_version (version) VALUES (?)", "i",
                                (int64_t)ML_STORE_VERSION) == 1;
    }
    if (!ok || ml_db_commit (db) != 0) {
        snprintf (error, error_size, "cannot create the core store schema: %s",
                  ml_db_error (db)->message);
        ml_db_rollback (db);
        ml_store_destroy (&self);
        return NULL;
    }
    return self;
}

void ml_store_destroy (ml_store_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_db_destroy (&(*self_p)->db);
        ml_store_pg_load_destroy (&(*self_p)->load);
        zhashx_destroy (&(*self_p)->partitions);
        free (*self_p);
        *self_p = NULL;
    }
}

int ml_store_generic_plans (ml_store_t *self)
{
    assert (self);
    if (ml_db_generic_plans (self->db) != 0)
        return -1;
    if (ml_db_dialect (self->db) == ML_DB_POSTGRESQL && !self->partitions) {
        self->partitions = zhashx_new ();
        assert (self->partitions);
        zhashx_set_duplicator (self->partitions, (zhashx_duplicator_fn *)strdup);
        zhashx_set_destructor (self->partitions, (zhashx_destructor_fn *)zstr_free);
    }
    return 0;
}

int ml_store_schema (ml_db_t *db, const char *const *statements, size_t count, const char *what,
                     char *error, size_t error_size)
{
    bool ok = ml_db_begin (db) == 0;
    for (size_t index = 0; ok && index < count; index++)
        ok = ml_db_execute (db, statements[index], NULL) >= 0;
    if (ok && ml_db_commit (db) == 0)
        return 0;
    snprintf (error, error_size, "cannot create the %s: %s", what, ml_db_error (db)->message);
    ml_db_rollback (db);
    return -1;
}

void ml_store_uuid (char *buf, size_t size)
{
    zuuid_t *uuid = zuuid_new ();
    snprintf (buf, size, "%s", zuuid_str_canonical (uuid));
    zuuid_destroy (&uuid);
    for (char *cursor = buf; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
}

ml_db_t *ml_store_db (ml_store_t *self)
{
    assert (self);
    return self->db;
}

const ml_db_error_t *ml_store_error (ml_store_t *self)
{
    return ml_db_error (self->db);
}

//  The one place a store failure reaches the core's log, with what the statement was for:
//  every public function of the store ends a write in ml_store_finish and a read in s_rows (or
//  calls this itself), so no caller needs to log it again and none can forget to.
void ml_store_failed (ml_store_t *self, const char *purpose)
{
    const ml_db_error_t *error = ml_db_error (self->db);
    ml_log (ML_LOG_ERROR, "core store: %s failed: %s (%s, SQLSTATE %s)", purpose,
            *error->message ? error->message : "no database error reported",
            ml_db_class_name (error->kind), error->sqlstate);
}

int ml_store_begin (ml_store_t *self)
{
    if (ml_db_begin (self->db) == 0)
        return 0;
    ml_store_failed (self, "starting a transaction");
    return -1;
}

int ml_store_fence (ml_store_t *self, const char *firm_id)
{
    assert (self);
    return self->lease ? ml_lease_fence (self->lease, self->db, firm_id) : 1;
}

void ml_store_set_lease (ml_store_t *self, ml_lease_t *lease)
{
    assert (self);
    self->lease = lease;
}

//  Start a transaction that writes firm_id's data: with several nodes, only while this node
//  holds the firm's lease at the epoch it works under, checked inside the transaction.
int ml_store_begin_firm (ml_store_t *self, const char *firm_id)
{
    if (ml_store_begin (self) != 0)
        return -1;
    int fenced = ml_store_fence (self, firm_id);
    if (fenced == 1)
        return 0;
    if (fenced < 0)
        ml_store_failed (self, "checking the firm's lease");
    ml_db_rollback (self->db);
    return -1;
}

//  Commit if ok, else roll back; a failure (a statement's or the commit's) is logged with
//  purpose. Returns 0 or -1.
int ml_store_finish (ml_store_t *self, const char *purpose, bool ok)
{
    if (ok && ml_db_commit (self->db) == 0)
        return 0;
    ml_store_failed (self, ok ? "committing" : purpose);
    if (ok)
        ml_log (ML_LOG_ERROR, "core store: the commit was for %s", purpose);
    ml_db_rollback (self->db);
    return -1;
}

//  Run a query that returns one integer. Returns 1 found, 0 no row, -1 error.
int ml_store_query_int (ml_store_t *self, int64_t *value, const char *sql, const char *picture,
                        const char *text)
{
    ml_db_query_t *query = ml_db_query (self->db, sql, picture, text);
    if (!query)
        return -1;
    int rc = ml_db_fetch (query);
    if (rc == 1 && ml_db_int64 (query, 0, value) != 0)
        rc = -1;
    ml_db_query_destroy (&query);
    return rc;
}

int ml_store_firm_add (ml_store_t *self, const char *firm_id, const char *name,
                       const char *public_key, const char *operating_account)
{
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_store_begin (self) != 0)
        return -1;
    bool ok = ml_db_execute (self->db,
                             "INSERT INTO firm (firm_id, name, public_key, operating_account, "
                             "created_at) VALUES (?, ?, ?, ?, ?)",
                             "sssss", firm_id, name, public_key, operating_account, now) == 1 &&
              ml_db_execute (self->db, "INSERT INTO replica_state (firm_id) VALUES (?)", "s",
                             firm_id) == 1;
    //  PostgreSQL: the firm's partition of the replica (store version 5).
    if (ok && ml_db_dialect (self->db) == ML_DB_POSTGRESQL)
        ok = ml_db_execute (self->db, "SELECT ml_replica_partition (?)", "s", firm_id) >= 0;
    return ml_store_finish (self, "adding a firm", ok);
}

json_t *ml_store_firm (ml_store_t *self, const char *firm_id)
{
    json_t *rows =
        s_rows (self, "reading firm",
                ml_db_query (self->db,
                             "SELECT firm_id, name, operating_account FROM firm WHERE firm_id = ?",
                             "s", firm_id));
    self->firm_failed = rows == NULL;
    json_t *firm = json_array_size (rows) == 1 ? json_incref (json_array_get (rows, 0)) : NULL;
    json_decref (rows);
    return firm;
}

bool ml_store_firm_failed (ml_store_t *self)
{
    assert (self);
    return self->firm_failed;
}

int ml_store_firm_by_key (ml_store_t *self, const char *public_key, char *firm_id, size_t size)
{
    ml_db_query_t *query =
        ml_db_query (self->db, "SELECT firm_id FROM firm WHERE public_key = ?", "s", public_key);
    int rc = query ? ml_db_fetch (query) : -1;
    if (rc == 1)
        snprintf (firm_id, size, "%s", ml_db_text (query, 0));
    if (rc < 0)
        ml_store_failed (self, "finding a firm by its key");
    ml_db_query_destroy (&query);
    return rc;
}

int ml_store_session_open (ml_store_t *self, const char *firm_id, const ml_msg_t *hello,
                           bool *resync, uint64_t *cursor)
{
    if (ml_store_begin_firm (self, firm_id) != 0)
        return -1;
    ml_db_query_t *query = ml_db_query (
        self->db, "SELECT epoch, cursor, complete FROM replica_state WHERE firm_id = ?", "s",
        firm_id);
    bool ok = query && ml_db_fetch (query) == 1;
    int64_t stored_cursor = 0, complete = 0;
    char epoch[64] = "";
    if (ok) {
        snprintf (epoch, sizeof epoch, "%s", ml_db_text (query, 0));
        ok = ml_db_int64 (query, 1, &stored_cursor) == 0 && ml_db_int64 (query, 2, &complete) == 0;
    }
    ml_db_query_destroy (&query);
    if (!ok)
        return ml_store_finish (self, "opening an agent session", false);
    char now[32];
    ml_store_now (now, sizeof now);
    *resync = !complete || strcmp (epoch, hello->epoch) != 0 ||
              (uint64_t)stored_cursor > hello->high_water;
    if (*resync) {
        if (complete)
            ml_log (ML_LOG_NOTICE, "firm %s: %s; asking for a snapshot", firm_id,
                    strcmp (epoch, hello->epoch) != 0
                        ? "the matter database has a new epoch"
                        : "the matter database is behind the replica (restored from backup?)");
        *cursor = 0;
        ok = ml_db_execute (self->db,
                            "UPDATE replica_state SET generation = generation + 1, complete = 0,"
                            " epoch = ?, contract_version = ?, snapshot_started_at = ?,"
                            " last_hello_at = ? WHERE firm_id = ?",
                            "sisss", hello->epoch, (int64_t)hello->contract_version, now, now,
                            firm_id) == 1;
    } else {
        *cursor = (uint64_t)stored_cursor;
        ok = ml_db_execute (self->db,
                            "UPDATE replica_state SET contract_version = ?, last_hello_at = ?"
                            " WHERE firm_id = ?",
                            "iss", (int64_t)hello->contract_version, now, firm_id) == 1;
    }
    return ml_store_finish (self, "opening an agent session", ok);
}

//  Columns whose values are integers in JSON output; every other column is text.
static bool s_integer_column (const char *name)
{
    static const char *suffixes[] = {"_minor",   "_count",     "cursor",  "_seq",     "attempts",
                                     "complete", "generation", "line_no", "event_id", "source_id"};
    size_t length = strlen (name);
    for (size_t index = 0; index < sizeof suffixes / sizeof suffixes[0]; index++) {
        size_t suffix = strlen (suffixes[index]);
        if (length >= suffix && strcmp (name + length - suffix, suffixes[index]) == 0)
            return true;
    }
    return false;
}

//  Which columns of a query are integers, asked once per query, not once per cell (a
//  listing of 40 rows asked 600 times). Columns past the first 64 are asked per cell.
#define S_TYPED_COLUMNS 64
static void s_integer_columns (ml_db_query_t *query, bool (*integer_column) (const char *name),
                               bool *integers, int columns)
{
    for (int column = 0; column < columns && column < S_TYPED_COLUMNS; column++)
        integers[column] = integer_column (ml_db_column_name (query, column));
}

//  A cell as JSON: an integer where the column is one, else text; SQL NULL, and text that is
//  not UTF-8 (which cannot go into JSON), as null: never crash.
static json_t *s_cell (ml_db_query_t *query, int column, bool integer)
{
    const char *text = ml_db_text (query, column);
    int64_t number = 0;
    json_t *value = NULL;
    if (!text)
        value = json_null ();
    else if (integer && ml_db_int64 (query, column, &number) == 0)
        value = json_integer ((json_int_t)number);
    else
        value = json_string (text);
    return value ? value : json_null ();
}

//  Every row of a query, each an object by column name, or (as_arrays) an array in column
//  order. Destroys the query.
static json_t *s_read_rows (ml_db_query_t *query, bool (*integer_column) (const char *name),
                            bool as_arrays)
{
    if (!query)
        return NULL;
    json_t *rows = json_array ();
    int columns = ml_db_columns (query);
    bool integers[S_TYPED_COLUMNS];
    s_integer_columns (query, integer_column, integers, columns);
    int rc;
    while ((rc = ml_db_fetch (query)) == 1) {
        json_t *row = as_arrays ? json_array () : json_object ();
        for (int column = 0; column < columns; column++) {
            const char *name = ml_db_column_name (query, column);
            bool integer = column < S_TYPED_COLUMNS ? integers[column] : integer_column (name);
            json_t *value = s_cell (query, column, integer);
            if (as_arrays)
                json_array_append_new (row, value);
            else
                json_object_set_new (row, name, value);
        }
        json_array_append_new (rows, row);
    }
    ml_db_query_destroy (&query);
    if (rc < 0)
        json_decref (rows);
    return rc < 0 ? NULL : rows;
}

json_t *ml_store_rows (ml_db_query_t *query, bool (*integer_column) (const char *name))
{
    return s_read_rows (query, integer_column, false);
}

json_t *ml_store_table (ml_db_query_t *query, bool (*integer_column) (const char *name))
{
    return s_read_rows (query, integer_column, true);
}

json_t *ml_store_row (ml_db_query_t *query, bool (*integer_column) (const char *name), bool *failed)
{
    json_t *rows = ml_store_rows (query, integer_column);
    if (!rows)
        *failed = true;
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

//  The store's own tables, with their integer columns. A failed query (or fetch) is logged
//  with purpose.
static json_t *s_rows (ml_store_t *self, const char *purpose, ml_db_query_t *query)
{
    json_t *rows = ml_store_rows (query, s_integer_column);
    if (!rows)
        ml_store_failed (self, purpose);
    return rows;
}

//  What postings not yet reflected in the replica take from each invoice: postings still
//  waiting for an answer, and posted ones whose change the replica has not reached yet.
//  Reversing postings give back, so they are not counted until the replica shows them.
//  Card charges not final yet hold their lines too (balance_hold): every path that pays
//  (pay, payment, links, Auto-Pay) reads this one sum, so none promises a balance twice.
#define S_PENDING_SQL                                                                              \
    "COALESCE ((SELECT SUM (l.amount_minor) FROM posting_line l"                                   \
    " JOIN posting p ON p.posting_uuid = l.posting_uuid"                                           \
    " WHERE l.firm_id = o.firm_id AND l.kind = 'I' AND l.reference = o.invoice_number"             \
    " AND p.reverses = ''"                                                                         \
    " AND (p.status IN ('pending', 'delivered')"                                                   \
    " OR (p.status = 'posted' AND p.result_cursor > r.cursor))), 0)"                               \
    " + COALESCE ((SELECT SUM (h.amount_minor) FROM balance_hold h"                                \
    " WHERE h.firm_id = o.firm_id AND h.kind = 'I' AND h.reference = o.invoice_number), 0)"

//  The table to read a firm's open items from: open_item, or on the core thread's
//  connection (ml_store_generic_plans) the firm's own partition. Its generic plan then
//  locks that one table, not every firm's (at 1,000 firms those locks were 13% of the
//  connection's server time, and payments 20% slower: bench/RESULTS.md, session 10). The
//  name is learnt from the firm's row: a firm has its partition from ml_store_firm_add on,
//  and none is dropped; a firm not found yet is read through open_item. NULL when the store
//  failed (its error is the one to report).
static const char *s_replica_of (ml_store_t *self, const char *firm_id)
{
    if (!self->partitions)
        return "open_item";
    const char *known = (const char *)zhashx_lookup (self->partitions, firm_id);
    if (known)
        return known;
    ml_db_query_t *query = ml_db_query (
        self->db, "SELECT " ML_STORE_PG_PARTITION ("firm_id") " FROM firm WHERE firm_id = ?", "s",
        firm_id);
    int fetched = query ? ml_db_fetch (query) : -1;
    if (fetched < 0) {
        ml_db_query_destroy (&query);
        return NULL;
    }
    const char *name = fetched == 1 ? ml_db_text (query, 0) : NULL;
    //  Spliced into SQL: only open_item_ and 32 hexadecimal digits, whatever the store says.
    bool usable = name && strlen (name) == 42 && strncmp (name, "open_item_", 10) == 0 &&
                  strspn (name + 10, "0123456789abcdef") == 32;
    if (usable && zhashx_size (self->partitions) < ML_STORE_PARTITIONS_MAX)
        zhashx_insert (self->partitions, firm_id, (void *)name);
    ml_db_query_destroy (&query);
    known = (const char *)zhashx_lookup (self->partitions, firm_id);
    return known ? known : "open_item";
}

//  A read of a firm's open items failed: its partition is looked up again next time (a
//  firm added in a transaction that was then undone has none).
static void s_replica_failed (ml_store_t *self, const char *firm_id)
{
    if (self->partitions)
        zhashx_delete (self->partitions, firm_id);
}

//  The open invoices of a firm, of one client, matter or invoice when given: source_id, then
//  ml_store_item_columns less available_minor (which the callers work out: see s_available).
static ml_db_query_t *s_open_items_query (ml_store_t *self, const char *firm_id, const char *client,
                                          const char *matter, const char *invoice, bool ahead)
{
    //  Only the filters given are in the SQL, so that SQLite reads through the index of the
    //  one asked for ("? IS NULL OR column = ?" made it read every item of the firm).
    const char *table = s_replica_of (self, firm_id);
    if (!table)
        return NULL;
    char sql[2048], picture[5] = "s";
    ml_db_value_t values[4] = {{.text = firm_id}};
    size_t count = 1;
    snprintf (sql, sizeof sql,
              "SELECT o.source_id, o.invoice_number, o.invoice_date, o.due_date, o.client_number,"
              " o.client_name, o.matter_number, o.matter_description, o.currency, o.total_minor,"
              " o.balance_minor, " S_PENDING_SQL " AS pending_minor"
              " FROM %s o JOIN replica_state r ON r.firm_id = o.firm_id"
              " WHERE o.firm_id = ? AND o.kind = 'I'",
              table);
    const char *columns[3] = {"client_number", "matter_number", "invoice_number"};
    const char *filters[3] = {client, matter, invoice};
    for (size_t filter = 0; filter < 3; filter++)
        if (filters[filter]) {
            size_t length = strlen (sql);
            snprintf (sql + length, sizeof sql - length, " AND o.%s = ?", columns[filter]);
            values[count++].text = filters[filter];
            strcat (picture, "s");
        }
    if (ahead) {
        ml_db_prefetch_values (self->db, sql, picture, values);
        return NULL;
    }
    return ml_db_query_values (self->db, sql, picture, values);
}

void ml_store_prepare_firm (ml_store_t *self, const char *firm_id)
{
    assert (self && firm_id);
    if (self->partitions)
        json_decref (ml_store_open_items (self, firm_id, NULL, NULL, ""));
}

void ml_store_open_items_prefetch (ml_store_t *self, const char *firm_id, const char *client,
                                   const char *matter, const char *invoice)
{
    assert (self && firm_id);
    s_open_items_query (self, firm_id, client, matter, invoice, true);
}

//  What can be paid of an invoice: its balance less what is pending, never below zero. A
//  credit near INT64_MIN less what is pending would overflow: it has nothing available
//  either way.
static json_int_t s_available (json_int_t balance, json_int_t pending)
{
    json_int_t available = 0;
    if (__builtin_sub_overflow (balance, pending, &available))
        available = 0;
    return available > 0 ? available : 0;
}

json_t *ml_store_open_items (ml_store_t *self, const char *firm_id, const char *client,
                             const char *matter, const char *invoice)
{
    json_t *rows = s_rows (self, "reading open items",
                           s_open_items_query (self, firm_id, client, matter, invoice, false));
    if (!rows)
        s_replica_failed (self, firm_id);
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        json_object_set_new (row, "available_minor",
                             json_integer (s_available (
                                 json_integer_value (json_object_get (row, "balance_minor")),
                                 json_integer_value (json_object_get (row, "pending_minor")))));
    }
    //  One invoice order for every reader (open-items, pay, Auto-Pay): the allocator's.
    ml_alloc_sort_rows (rows);
    return rows;
}

const char *const ml_store_item_columns[] = {
    "invoice_number", "invoice_date",       "due_date", "client_number", "client_name",
    "matter_number",  "matter_description", "currency", "total_minor",   "balance_minor",
    "pending_minor",  "available_minor",    NULL};

json_t *ml_store_open_item_table (ml_store_t *self, const char *firm_id, const char *client,
                                  const char *matter, const char *invoice)
{
    json_t *rows = ml_store_table (
        s_open_items_query (self, firm_id, client, matter, invoice, false), s_integer_column);
    if (!rows) {
        ml_store_failed (self, "reading open items");
        s_replica_failed (self, firm_id);
        return NULL;
    }
    //  source_id out, available_minor in: the rows have ml_store_item_columns.
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        json_array_remove (row, 0);
        json_array_append_new (
            row, json_integer (s_available (json_integer_value (json_array_get (row, 9)),
                                            json_integer_value (json_array_get (row, 10)))));
    }
    return rows;
}

json_t *ml_store_matter (ml_store_t *self, const char *firm_id, const char *matter_number)
{
    json_t *rows = s_rows (
        self, "reading a matter",
        ml_db_query (
            self->db,
            "SELECT client_number, MAX (CASE WHEN kind = 'T' THEN currency END) AS trust_currency,"
            " MAX (CASE WHEN kind = 'T' THEN balance_minor END) AS trust_balance_minor"
            " FROM open_item WHERE firm_id = ? AND matter_number = ? GROUP BY client_number",
            "ss", firm_id, matter_number));
    if (!rows)
        return NULL;
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row ? row : json_object ();
}

static bool s_event (ml_store_t *self, const char *posting_uuid, const char *status,
                     const char *detail)
{
    char now[32];
    ml_store_now (now, sizeof now);
    return ml_db_defer (self->db,
                        "INSERT INTO posting_event (posting_uuid, at, status, detail)"
                        " VALUES (?, ?, ?, ?)",
                        "ssss", posting_uuid, now, status, detail) == 0;
}

int ml_store_posting_note (ml_store_t *self, const char *posting_uuid, const char *status,
                           const char *detail)
{
    return s_event (self, posting_uuid, status, detail) ? 0 : -1;
}

int ml_store_posting_insert (ml_store_t *self, const char *firm_id, ml_posting_t *posting,
                             const char *source)
{
    if (!*posting->posting_uuid)
        ml_store_uuid (posting->posting_uuid, sizeof posting->posting_uuid);
    ml_store_now (posting->created_at, sizeof posting->created_at);
    if (!*posting->received_on)
        s_today (posting->received_on, sizeof posting->received_on);
    bool ok =
        ml_db_defer (self->db,
                     "INSERT INTO posting (posting_uuid, firm_id, source, created_at, received_on,"
                     " account_number, client_number, payer_name, payer_email, currency,"
                     " amount_minor, ar_message, processor_txn, reverses, status, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                     "ssssssssssissss", posting->posting_uuid, firm_id, source, posting->created_at,
                     posting->received_on, posting->account_number, posting->client_number,
                     posting->payer_name, posting->payer_email, posting->currency,
                     posting->amount_minor, posting->ar_message, posting->processor_txn,
                     posting->reverses, posting->created_at) == 0;
    for (size_t index = 0; ok && index < posting->line_count; index++) {
        const ml_line_t *line = &posting->lines[index];
        char kind[2] = {line->kind, 0};
        ok = ml_db_defer (self->db,
                          "INSERT INTO posting_line (posting_uuid, line_no, kind, reference,"
                          " amount_minor, firm_id) VALUES (?, ?, ?, ?, ?, ?)",
                          "sissis", posting->posting_uuid, (int64_t)index + 1, kind,
                          line->reference, line->amount_minor, firm_id) == 0;
    }
    ok = ok && s_event (self, posting->posting_uuid, "pending", source);
    return ok ? 0 : -1;
}

int ml_store_hold_add (ml_store_t *self, const char *firm_id, const char *hold_key,
                       const ml_line_t *lines, size_t count)
{
    bool ok = true;
    for (size_t index = 0; ok && index < count; index++) {
        char kind[2] = {lines[index].kind, 0};
        ok = ml_db_defer (self->db,
                          "INSERT INTO balance_hold (hold_key, line_no, firm_id, kind,"
                          " reference, amount_minor) VALUES (?, ?, ?, ?, ?, ?)",
                          "sisssi", hold_key, (int64_t)index + 1, firm_id, kind,
                          lines[index].reference, lines[index].amount_minor) == 0;
    }
    return ok ? 0 : -1;
}

int ml_store_hold_release (ml_store_t *self, const char *hold_key)
{
    return ml_db_defer (self->db, "DELETE FROM balance_hold WHERE hold_key = ?", "s", hold_key) == 0
               ? 0
               : -1;
}

int ml_store_posting_create (ml_store_t *self, const char *firm_id, ml_posting_t *posting,
                             const char *source)
{
    if (ml_store_begin (self) != 0)
        return -1;
    return ml_store_finish (self, "recording a posting",
                            ml_store_posting_insert (self, firm_id, posting, source) == 0);
}

#define S_UNANSWERED_SQL                                                                           \
    "SELECT posting_uuid FROM posting WHERE firm_id = ? AND status IN ('pending', 'delivered')"    \
    " ORDER BY posting_seq LIMIT ?"

void ml_store_postings_unanswered_prefetch (ml_store_t *self, const char *firm_id)
{
    assert (self);
    if (firm_id && self->unanswered_limit)
        ml_db_prefetch (self->db, S_UNANSWERED_SQL, "si", firm_id, (int64_t)self->unanswered_limit);
}

zlistx_t *ml_store_postings_unanswered (ml_store_t *self, const char *firm_id, size_t limit)
{
    self->unanswered_limit = limit;
    ml_db_query_t *query = ml_db_query (self->db, S_UNANSWERED_SQL, "si", firm_id, (int64_t)limit);
    if (!query) {
        ml_store_failed (self, "listing unanswered postings");
        return NULL;
    }
    zlistx_t *list = zlistx_new ();
    zlistx_set_destructor (list, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator (list, (zlistx_duplicator_fn *)strdup);
    int rc;
    while ((rc = ml_db_fetch (query)) == 1)
        zlistx_add_end (list, (void *)ml_db_text (query, 0));
    if (rc < 0)
        ml_store_failed (self, "listing unanswered postings");
    ml_db_query_destroy (&query);
    return list;
}

zhashx_t *ml_store_firms_unanswered (ml_store_t *self)
{
    ml_db_query_t *query = ml_db_query (self->db,
                                        "SELECT DISTINCT firm_id FROM posting_total"
                                        " WHERE status IN ('pending', 'delivered')"
                                        " AND posting_count > 0",
                                        NULL);
    if (!query) {
        ml_store_failed (self, "listing firms with unanswered postings");
        return NULL;
    }
    zhashx_t *firms = zhashx_new ();
    int rc;
    while ((rc = ml_db_fetch (query)) == 1)
        if (ml_db_text (query, 0))
            zhashx_update (firms, ml_db_text (query, 0), (void *)1);
    ml_db_query_destroy (&query);
    if (rc < 0) {
        ml_store_failed (self, "listing firms with unanswered postings");
        zhashx_destroy (&firms);
    }
    return firms;
}

//  The posting and its lines in one query (one round trip on PostgreSQL): a row per line,
//  the posting's columns repeated.
#define S_POSTING_LOAD_SQL                                                                         \
    "SELECT p.posting_uuid, p.created_at, p.received_on, p.account_number, p.client_number,"       \
    " p.payer_name, p.payer_email, p.currency, p.amount_minor, p.ar_message,"                      \
    " p.processor_txn, p.reverses, l.kind, l.reference, l.amount_minor"                            \
    " FROM posting p LEFT JOIN posting_line l ON l.posting_uuid = p.posting_uuid"                  \
    " WHERE p.posting_uuid = ? ORDER BY l.line_no"

void ml_store_posting_load_prefetch (ml_store_t *self, const char *posting_uuid)
{
    assert (self);
    if (posting_uuid)
        ml_db_prefetch (self->db, S_POSTING_LOAD_SQL, "s", posting_uuid);
}

ml_msg_t *ml_store_posting_load (ml_store_t *self, const char *posting_uuid)
{
    ml_db_query_t *query = ml_db_query (self->db, S_POSTING_LOAD_SQL, "s", posting_uuid);
    if (!query) {
        ml_store_failed (self, "loading a posting to send");
        return NULL;
    }
    if (ml_db_fetch (query) != 1) {
        ml_db_query_destroy (&query);
        return NULL;
    }
    ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
    ml_posting_t *posting = &message->posting;
#define S_FIELD(field, column)                                                                     \
    snprintf (posting->field, sizeof posting->field, "%s",                                         \
              ml_db_text (query, column) ? ml_db_text (query, column) : "")
    S_FIELD (posting_uuid, 0);
    S_FIELD (created_at, 1);
    S_FIELD (received_on, 2);
    S_FIELD (account_number, 3);
    S_FIELD (client_number, 4);
    S_FIELD (payer_name, 5);
    S_FIELD (payer_email, 6);
    S_FIELD (currency, 7);
    S_FIELD (ar_message, 9);
    S_FIELD (processor_txn, 10);
    S_FIELD (reverses, 11);
#undef S_FIELD
    bool ok = ml_db_int64 (query, 8, &posting->amount_minor) == 0;
    ml_line_t lines[ML_MAX_LINES];
    size_t count = 0;
    //  A posting without lines has one row whose line columns are NULL.
    bool more = ok && ml_db_text (query, 12);
    while (more && count < ML_MAX_LINES) {
        const char *kind = ml_db_text (query, 12);
        lines[count].kind = kind ? kind[0] : 0;
        snprintf (lines[count].reference, sizeof lines[count].reference, "%s",
                  ml_db_text (query, 13) ? ml_db_text (query, 13) : "");
        ok = ok && kind && ml_db_int64 (query, 14, &lines[count].amount_minor) == 0;
        count++;
        more = ml_db_fetch (query) == 1;
    }
    ml_db_query_destroy (&query);
    if (!ok || ml_msg_set_lines (message, lines, count) != 0)
        ml_msg_destroy (&message);
    //  A posting above the amount limit (stored before the core checked it) would be dropped
    //  by the agent's decoder and sent again for ever: the core rejects it itself, as the
    //  contract would, so its money can be refunded or reallocated.
    const char *over = NULL;
    bool too_large = message && ml_money_check (message->posting.amount_minor, &over) != 0;
    for (size_t index = 0; message && !too_large && index < message->posting.line_count; index++)
        too_large = ml_money_check (message->posting.lines[index].amount_minor, &over) != 0;
    if (too_large) {
        ml_log (ML_LOG_ERROR, "posting %s: %s: rejected by the core, never sent", posting_uuid,
                over);
        char now[32], reason[200];
        ml_store_now (now, sizeof now);
        snprintf (reason, sizeof reason, "bad_amount: %s (refused by the core)", over);
        bool rejected = ml_store_begin (self) == 0 &&
                        ml_db_execute (self->db,
                                       "UPDATE posting SET status = 'rejected', reason = ?,"
                                       " updated_at = ? WHERE posting_uuid = ?"
                                       " AND status IN ('pending', 'delivered')",
                                       "sss", reason, now, posting_uuid) == 1 &&
                        s_event (self, posting_uuid, "rejected", reason);
        ml_store_finish (self, "rejecting a posting above the amount limit", rejected);
        ml_msg_destroy (&message);
    }
    return message;
}

int ml_store_posting_sent (ml_store_t *self, const char *posting_uuid)
{
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_store_begin (self) != 0)
        return -1;
    //  Two writes whose outcome nothing here waits for (they ride with the store's next
    //  round trip on PostgreSQL): the event first, while the posting is still pending; then
    //  a pending posting becomes delivered, and every one counts the attempt.
    bool ok = ml_db_defer (self->db,
                           "INSERT INTO posting_event (posting_uuid, at, status, detail)"
                           " SELECT posting_uuid, ?, 'delivered', 'sent to the agent' FROM posting"
                           " WHERE posting_uuid = ? AND status = 'pending'",
                           "ss", now, posting_uuid) == 0 &&
              ml_db_defer (self->db,
                           "UPDATE posting SET status = CASE status WHEN 'pending' THEN"
                           " 'delivered' ELSE status END, updated_at = CASE status WHEN 'pending'"
                           " THEN ? ELSE updated_at END, attempts = attempts + 1, last_sent_at = ?"
                           " WHERE posting_uuid = ?",
                           "sss", now, now, posting_uuid) == 0;
    return ml_store_finish (self, "marking a posting sent", ok);
}

static bool s_reversal_posted (ml_store_t *self, const char *reversal_uuid)
{
    //  Inside the posting result's transaction: its ml_store_finish logs a failure.
    json_t *rows = ml_store_rows (
        ml_db_query (self->db,
                     "SELECT o.posting_uuid, o.amount_minor, o.status, (SELECT COALESCE (SUM "
                     "(r.amount_minor), 0)"
                     " FROM posting r WHERE r.reverses = o.posting_uuid AND r.status = 'posted')"
                     " AS reversed_minor FROM posting o WHERE o.posting_uuid ="
                     " (SELECT reverses FROM posting WHERE posting_uuid = ?)",
                     "s", reversal_uuid),
        s_integer_column);
    json_t *original = json_array_get (rows, 0);
    bool ok = rows != NULL;
    if (original) {
        const char *uuid = json_string_value (json_object_get (original, "posting_uuid"));
        bool whole = json_integer_value (json_object_get (original, "reversed_minor")) >=
                     json_integer_value (json_object_get (original, "amount_minor"));
        char detail[128];
        snprintf (detail, sizeof detail, "%s by %s", whole ? "reversed" : "partly reversed",
                  reversal_uuid);
        ok = s_event (self, uuid, whole ? "reversed" : "posted", detail);
        if (ok && whole &&
            streq (json_string_value (json_object_get (original, "status")), "posted")) {
            char now[32];
            ml_store_now (now, sizeof now);
            ok = ml_db_execute (self->db,
                                "UPDATE posting SET status = 'reversed', updated_at = ?"
                                " WHERE posting_uuid = ?",
                                "ss", now, uuid) == 1;
        }
    }
    json_decref (rows);
    return ok;
}

int ml_store_posting_result (ml_store_t *self, const char *firm_id, const ml_msg_t *result)
{
    char now[32];
    ml_store_now (now, sizeof now);
    bool posted = strcmp (result->status, "posted") == 0;
    if (ml_store_begin_firm (self, firm_id) != 0)
        return -1;
    //  RETURNING says whether it reverses another posting, so only a reversal reads more.
    ml_db_query_t *query =
        ml_db_query (self->db,
                     "UPDATE posting SET status = ?, receipt_id = ?, reason = ?, result_cursor = ?,"
                     " updated_at = ? WHERE posting_uuid = ? AND firm_id = ?"
                     " AND status IN ('pending', 'delivered') RETURNING reverses",
                     "sssisss", posted ? "posted" : "rejected", posted ? result->receipt_id : NULL,
                     posted ? NULL : result->reason, (int64_t)result->cursor, now,
                     result->posting_uuid, firm_id);
    int64_t changed = query ? 0 : -1;
    bool reversal = false;
    int fetched;
    while (query && (fetched = ml_db_fetch (query)) != 0) {
        if (fetched < 0) {
            changed = -1;
            break;
        }
        changed++;
        reversal = ml_db_text (query, 0) && *ml_db_text (query, 0);
    }
    ml_db_query_destroy (&query);
    bool ok = changed >= 0;
    if (ok && changed == 1) {
        char detail[400];
        if (posted)
            snprintf (detail, sizeof detail, "matter system receipt %s", result->receipt_id);
        else
            snprintf (detail, sizeof detail, "matter system refused: %s", result->reason);
        ok = s_event (self, result->posting_uuid, posted ? "posted" : "rejected", detail);
        //  A posted reversal shows on the posting it reverses, which becomes "reversed" once
        //  reversals have taken all of it back.
        if (ok && posted && reversal)
            ok = s_reversal_posted (self, result->posting_uuid);
    }
    if (ml_store_finish (self, "recording a posting result", ok) != 0)
        return -1;
    return changed == 1 ? 1 : 0;
}

int ml_store_posting_resend (ml_store_t *self, const char *posting_uuid)
{
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_store_begin (self) != 0)
        return -1;
    int64_t changed = ml_db_execute (self->db,
                                     "UPDATE posting SET status = 'delivered', updated_at = ?"
                                     " WHERE posting_uuid = ? AND status IN ('posted', "
                                     "'rejected', 'delivered', 'pending')",
                                     "ss", now, posting_uuid);
    bool ok = changed >= 0;
    if (ok && changed == 1)
        ok = s_event (self, posting_uuid, "delivered",
                      "resend requested; the matter system answers with its stored result");
    if (ml_store_finish (self, "marking a posting for resending", ok) != 0)
        return -1;
    return changed == 1 ? 1 : 0;
}

//  Split an open-balance sum, so SQL never adds past 64 bits (SQLite raises "integer
//  overflow", and the reference schema allows balances near INT64_MAX): the database sums the
//  billions and the rest of each balance apart (each sum fits for up to a billion rows), and C
//  puts them together in 128 bits.
#define S_BILLION "1000000000"

//  Turn a status row's two partial sums into open_balance_minor, or, past 64 bits, into
//  open_balance_minor null with open_balance_over_64_bits true and the exact sum as text.
static void s_status_sum (json_t *firm)
{
    __int128 sum =
        (__int128)json_integer_value (json_object_get (firm, "open_balance_billions_minor")) *
            1000000000 +
        json_integer_value (json_object_get (firm, "open_balance_rest_minor"));
    json_object_del (firm, "open_balance_billions_minor");
    json_object_del (firm, "open_balance_rest_minor");
    bool fits = sum <= INT64_MAX && sum >= INT64_MIN;
    json_object_set_new (firm, "open_balance_minor",
                         fits ? json_integer ((json_int_t)sum) : json_null ());
    json_object_set_new (firm, "open_balance_over_64_bits", json_boolean (!fits));
    //  The exact sum in decimal, whatever its size.
    char digits[48], *cursor = digits + sizeof digits - 1;
    *cursor = 0;
    unsigned __int128 magnitude = sum < 0 ? -(unsigned __int128)sum : (unsigned __int128)sum;
    do {
        *--cursor = (char)('0' + (int)(magnitude % 10));
        magnitude /= 10;
    } while (magnitude);
    if (sum < 0)
        *--cursor = '-';
    json_object_set_new (firm, "open_balance_text", json_string (cursor));
}

json_t *ml_store_status (ml_store_t *self)
{
    json_t *firms = s_rows (
        self, "status (sums of open balances)",
        ml_db_query (
            self->db,
            //  From the totals the triggers keep (s_totals_schema): a few rows per firm,
            //  whatever the size of its replica.
            "SELECT f.firm_id, f.name, r.epoch, r.cursor, r.complete, r.last_hello_at,"
            " r.snapshot_completed_at,"
            " (SELECT COALESCE (SUM (t.item_count), 0) FROM replica_total t"
            "  WHERE t.firm_id = f.firm_id AND t.kind = 'I') AS invoice_count,"
            " (SELECT COALESCE (SUM (t.balance_billions), 0) FROM replica_total t"
            "  WHERE t.firm_id = f.firm_id AND t.kind = 'I') AS open_balance_billions_minor,"
            " (SELECT COALESCE (SUM (t.balance_rest), 0) FROM replica_total t"
            "  WHERE t.firm_id = f.firm_id AND t.kind = 'I') AS open_balance_rest_minor,"
            //  A sum over several currencies means nothing: say which one, or that it is mixed.
            " (SELECT CASE WHEN COUNT (DISTINCT t.currency) > 1 THEN 'mixed'"
            "  ELSE COALESCE (MIN (t.currency), '') END FROM replica_total t"
            "  WHERE t.firm_id = f.firm_id AND t.kind = 'I' AND t.item_count > 0)"
            "  AS open_balance_currency,"
            " (SELECT COALESCE (SUM (t.item_count), 0) FROM replica_total t"
            "  WHERE t.firm_id = f.firm_id AND t.kind = 'T') AS trust_ledger_count,"
            " (SELECT COALESCE (SUM (c.posting_count), 0) FROM posting_total c"
            "  WHERE c.firm_id = f.firm_id AND c.status IN ('pending', 'delivered'))"
            "  AS unanswered_posting_count,"
            " (SELECT COALESCE (SUM (c.posting_count), 0) FROM posting_total c"
            "  WHERE c.firm_id = f.firm_id AND c.status = 'posted') AS posted_posting_count,"
            " (SELECT COALESCE (SUM (c.posting_count), 0) FROM posting_total c"
            "  WHERE c.firm_id = f.firm_id AND c.status = 'rejected') AS rejected_posting_count"
            " FROM firm f JOIN replica_state r ON r.firm_id = f.firm_id ORDER BY f.firm_id",
            NULL));
    size_t index;
    json_t *firm;
    json_array_foreach (firms, index, firm) s_status_sum (firm);
    return firms;
}

json_t *ml_store_postings (ml_store_t *self, const char *firm_id, const char *status, int limit)
{
    return s_rows (
        self, "listing postings",
        ml_db_query (
            self->db,
            "SELECT posting_seq, posting_uuid, firm_id, source, created_at, received_on,"
            " client_number, payer_name, currency, amount_minor, status, receipt_id, reason,"
            " attempts FROM posting WHERE (? IS NULL OR firm_id = ?) AND (? IS NULL OR status = ?)"
            " ORDER BY posting_seq DESC LIMIT ?",
            "ssssi", firm_id, firm_id, status, status, (int64_t)limit));
}

#define S_POSTING_LINES_SQL                                                                        \
    "SELECT line_no, kind, reference, amount_minor FROM posting_line WHERE posting_uuid = ?"       \
    " ORDER BY line_no"
#define S_POSTING_EVENTS_SQL                                                                       \
    "SELECT event_id, at, status, detail FROM posting_event WHERE posting_uuid = ?"                \
    " ORDER BY event_id"

json_t *ml_store_posting (ml_store_t *self, const char *posting_uuid)
{
    //  The lines and the history ride with the posting's read (one round trip on
    //  PostgreSQL), and are read whether or not the posting is found, so that no answer
    //  asked ahead is left behind.
    ml_db_prefetch (self->db, S_POSTING_LINES_SQL, "s", posting_uuid);
    ml_db_prefetch (self->db, S_POSTING_EVENTS_SQL, "s", posting_uuid);
    json_t *rows = s_rows (
        self, "reading a posting",
        ml_db_query (
            self->db,
            "SELECT posting_seq, posting_uuid, firm_id, source, created_at, received_on,"
            " account_number, client_number, payer_name, payer_email, currency, amount_minor,"
            " ar_message, processor_txn, reverses, status, receipt_id, reason, result_cursor,"
            " attempts, last_sent_at, updated_at FROM posting WHERE posting_uuid = ?",
            "s", posting_uuid));
    //  (A failed read drops what rode with it: nothing is left, and nothing more is logged.)
    json_t *lines = rows ? s_rows (self, "reading a posting's lines",
                                   ml_db_query (self->db, S_POSTING_LINES_SQL, "s", posting_uuid))
                         : NULL;
    json_t *events = rows ? s_rows (self, "reading a posting's history",
                                    ml_db_query (self->db, S_POSTING_EVENTS_SQL, "s", posting_uuid))
                          : NULL;
    if (!rows || json_array_size (rows) != 1) {
        json_decref (rows);
        json_decref (lines);
        json_decref (events);
        return NULL;
    }
    json_t *posting = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    json_object_set_new (posting, "lines", lines ? lines : json_array ());
    json_object_set_new (posting, "history", events ? events : json_array ());
    return posting;
}
