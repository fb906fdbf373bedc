/*  ml_contract: dialect adapters for the SQL contract. See include/ml_contract.h and
    docs/contract.md. */
#include "ml_contract.h"
#include "ml_log.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wctype.h>

//  How one dialect calls each operation. Every statement returns the columns that
//  docs/contract.md gives for the operation, in that order.
typedef struct {
    const char *name;
    const char *version;        //  () -> contract_version, db_epoch
    const char *open_items;     //  (after, limit) -> item columns
    const char *trust_balances; //  (after, limit) -> item columns
    const char *high_water;     //  () -> high_water
    const char *changes;        //  (since, upto, limit) -> change_id, op, item columns
    const char *apply;          //  (posting json)
    const char *result;         //  (posting uuid) -> posting_uuid, status, receipt_id, reason
    const char *reject;         //  (posting uuid, reason)
    //  Where the driver streams a whole result, the snapshot reads each kind with one query
    //  (no order needed, so the server may hash-join); NULL where it must page.
    const char *stream_open_items;
    const char *stream_trust_balances;
    //  How the session's statement time limit is set (SQLite has none: its busy Timeout
    //  lives in the connection string).
    enum { S_NO_LIMIT, S_POSTGRESQL_LIMIT, S_MARIADB_LIMIT, S_SQLSERVER_LIMIT } time_limit;
    //  Set-based batch apply where the contract has it, NULL elsewhere: (JSON array of
    //  postings) and (JSON array of uuids) -> posting_uuid, status, receipt_id, reason.
    const char *apply_many;
    const char *results_many;
    //  Search (docs/contract.md 5.8): a scope list membership test of a column against a
    //  JSON array parameter, and the row limit clause.
    const char *search_in_list;
    const char *search_limit;
    //  Session settings for the length of one search, and how to undo them (NULL: none).
    const char *search_begin;
    const char *search_end;
    //  Where the contract keeps a search index of the open invoices (docs/contract.md 5.8),
    //  the view that invoice searches select their ids from; NULL: they read ml_open_items.
    const char *search_keys;
    //  SQLite's LOWER() and LIKE fold ASCII letters only, so "MÜLLER" would not find
    //  "Müller": there the search text becomes a GLOB pattern with each letter's case forms
    //  as a class ("[mM][üÜ]..."), which compares whole code points (docs/contract.md 5.8).
    bool search_by_glob;
    //  Where the contract has the search views of version 4 (docs/contract.md 5.8: SQLite,
    //  MariaDB), a criterion first finds the matching clients, matters or invoices there and
    //  the search reads only their items by id: as "source_id IN (...)" (SQLite's planner
    //  reads the ids in order), or as a derived table of ids joined first (MariaDB's would
    //  walk the item view in id order, probing the subquery, when it misjudges a LIKE).
    //  Case-folded number keys (*_number_key) make exact and prefix number searches index
    //  ranges.
    enum { S_NO_VIEWS, S_VIEWS_IN, S_VIEWS_HITS } search_views;
} s_dialect_t;

#define S_ITEM_COLUMNS                                                                             \
    "item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name, "   \
    "matter_number, matter_description, currency, total_minor, balance_minor, status"

static const s_dialect_t s_dialects[] = {
    {"sqlite", "SELECT contract_version, db_epoch FROM ml_contract",
     "SELECT " S_ITEM_COLUMNS " FROM ml_open_items WHERE item_kind = 'invoice' AND source_id > ? "
     "ORDER BY source_id LIMIT ?",
     "SELECT " S_ITEM_COLUMNS " FROM ml_trust_balances WHERE source_id > ? "
     "ORDER BY source_id LIMIT ?",
     //  SQLite serializes writers and the change id is written inside the writing
     //  transaction, so everything up to the maximum visible id has committed.
     "SELECT COALESCE(MAX(change_id), 0) FROM ml_change",
     "SELECT change_id, op, " S_ITEM_COLUMNS " FROM ml_changes "
     "WHERE change_id > ? AND change_id <= ? ORDER BY change_id LIMIT ?",
     "INSERT INTO ml_apply_posting (posting) VALUES (?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_result "
     "WHERE posting_uuid = ?",
     "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES (?, ?) "
     "ON CONFLICT (posting_uuid) DO NOTHING",
     NULL, NULL, S_NO_LIMIT, NULL, NULL, "%s IN (SELECT value FROM json_each(?))", "LIMIT ?", NULL,
     NULL, NULL, true, S_VIEWS_IN},
    //  Reads are SQL functions that psqlODBC streams through a cursor (UseDeclareFetch=1);
    //  writes are procedures, because a volatile function inside such a cursor would only
    //  run when fetched.
    {"postgresql", "SELECT contract_version, db_epoch FROM ml_contract",
     "SELECT " S_ITEM_COLUMNS " FROM ml_open_items(?, ?)",
     "SELECT " S_ITEM_COLUMNS " FROM ml_trust_balances(?, ?)", "SELECT ml_change_high_water()",
     "SELECT change_id, op, " S_ITEM_COLUMNS " FROM ml_changes_since(?, ?, ?)",
     "CALL ml_apply_posting(?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_result(?)",
     "CALL ml_reject_posting(?, ?)", "SELECT " S_ITEM_COLUMNS " FROM ml_open_items",
     "SELECT " S_ITEM_COLUMNS " FROM ml_trust_balances", S_POSTGRESQL_LIMIT,
     "CALL ml_apply_postings(?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_results(?)",
     //  = ANY of an array reaches the number indexes, where IN (SELECT ...) joined under an OR
     //  walked every open invoice.
     "%s = ANY (ARRAY(SELECT json_array_elements_text(CAST(? AS json))))", "LIMIT ?",
     //  psqlODBC runs reads as cursors (UseDeclareFetch), which PostgreSQL plans for the
     //  first 10% of rows: a prefix search of trust ledgers would walk them in id order
     //  instead of using the number and trigram indexes. A search reads all its (few) rows.
     "SET cursor_tuple_fraction = 1", "RESET cursor_tuple_fraction", "ml_search_keys", false,
     S_NO_VIEWS},
    //  MariaDB's driver cannot stream, so every read is a keyset page from a procedure.
    {"mariadb", "SELECT contract_version, db_epoch FROM ml_contract", "CALL ml_open_items(?, ?)",
     "CALL ml_trust_balances(?, ?)", "CALL ml_change_high_water()",
     "CALL ml_changes_since(?, ?, ?)", "CALL ml_apply_posting(?)", "CALL ml_posting_result(?)",
     "CALL ml_reject_posting(?, ?)", NULL, NULL,
     //  MariaDB's driver ignores SQL_ATTR_QUERY_TIMEOUT; the server's own limit works.
     S_MARIADB_LIMIT, NULL, NULL,
     "%s IN (SELECT j.v FROM JSON_TABLE(?, '$[*]' COLUMNS (v VARCHAR(64) PATH '$')) AS j)",
     "LIMIT ?", NULL, NULL, NULL, false, S_VIEWS_HITS},
    //  SQL Server through FreeTDS: ODBC call escapes, keyset pages. Written to sql/sqlserver/
    //  and docs/contract.md, but never run against a server here (see its README).
    {"sqlserver", "SELECT contract_version, db_epoch FROM ml_contract",
     "{CALL ml_open_items(?, ?)}", "{CALL ml_trust_balances(?, ?)}", "{CALL ml_change_high_water}",
     "{CALL ml_changes_since(?, ?, ?)}", "{CALL ml_apply_posting(?)}",
     "{CALL ml_posting_result(?)}", "{CALL ml_reject_posting(?, ?)}", NULL, NULL,
     //  Bounds how long a statement waits for a lock, the usual way it gets stuck.
     S_SQLSERVER_LIMIT, NULL, NULL, "%s IN (SELECT value FROM OPENJSON(?))",
     "OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY", NULL, NULL, NULL, false, S_NO_VIEWS},
};

struct _ml_contract_t {
    const s_dialect_t *dialect;
    ml_odbc_t *odbc;
    char *connection_string; //  kept to open the snapshot stream's own connection
    //  Snapshot reader: phase 0 invoices, 1 trust balances, 2 done.
    int phase;
    uint64_t after;         //  keyset position when paging
    ml_odbc_t *stream_odbc; //  streaming: its own connection, so posting transactions on the
    ml_query_t *stream;     //  main one never end the stream's implicit transaction
    bool stream_failed;     //  the last error came from the stream connection
    int timeout_ms;         //  statement time limit, 0 for none
    locale_t utf8;          //  C.UTF-8's case tables, for search patterns (search_by_glob)
};

//  Set a connection's statement time limit (0: none). Returns 0 or -1.
static int s_limit_time_to (ml_contract_t *self, ml_odbc_t *odbc, int timeout_ms)
{
    char sql[96];
    if (self->dialect->time_limit == S_NO_LIMIT)
        return 0;
    if (self->dialect->time_limit == S_POSTGRESQL_LIMIT)
        snprintf (sql, sizeof sql, "SET statement_timeout = %d", timeout_ms);
    else if (self->dialect->time_limit == S_SQLSERVER_LIMIT)
        snprintf (sql, sizeof sql, "SET LOCK_TIMEOUT %d", timeout_ms ? timeout_ms : -1);
    else
        snprintf (sql, sizeof sql, "SET SESSION max_statement_time = %d.%03d", timeout_ms / 1000,
                  timeout_ms % 1000);
    return ml_odbc_execute (odbc, sql, NULL) < 0 ? -1 : 0;
}

//  Apply the configured statement time limit to a connection. Returns 0 or -1.
static int s_limit_time (ml_contract_t *self, ml_odbc_t *odbc)
{
    return self->timeout_ms ? s_limit_time_to (self, odbc, self->timeout_ms) : 0;
}

bool ml_contract_dialect_known (const char *dialect)
{
    for (size_t index = 0; index < sizeof s_dialects / sizeof s_dialects[0]; index++)
        if (dialect && strcmp (s_dialects[index].name, dialect) == 0)
            return true;
    return false;
}

ml_contract_t *ml_contract_new (const char *dialect, const char *connection_string,
                                ml_odbc_error_t *error)
{
    const s_dialect_t *found = NULL;
    for (size_t index = 0; index < sizeof s_dialects / sizeof s_dialects[0]; index++)
        if (dialect && strcmp (s_dialects[index].name, dialect) == 0)
            found = &s_dialects[index];
    if (!found) {
        memset (error, 0, sizeof *error);
        error->kind = ML_ODBC_OTHER;
        snprintf (error->message, sizeof error->message,
                  "database dialect '%.32s' is not supported (supported: sqlite, postgresql, "
                  "mariadb, sqlserver)",
                  dialect ? dialect : "");
        return NULL;
    }
    ml_odbc_t *odbc = ml_odbc_new_existing (connection_string, error);
    if (!odbc)
        return NULL;
    ml_contract_t *self = calloc (1, sizeof (ml_contract_t));
    assert (self);
    self->dialect = found;
    self->odbc = odbc;
    self->connection_string = strdup (connection_string);
    self->phase = 2;
    self->utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    return self;
}

void ml_contract_destroy (ml_contract_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_contract_snapshot_end (*self_p);
        ml_odbc_destroy (&(*self_p)->odbc);
        free ((*self_p)->connection_string);
        if ((*self_p)->utf8)
            freelocale ((*self_p)->utf8);
        free (*self_p);
        *self_p = NULL;
    }
}

int ml_contract_set_timeout (ml_contract_t *self, int timeout_ms)
{
    assert (self && timeout_ms >= 0);
    self->timeout_ms = timeout_ms;
    return s_limit_time (self, self->odbc);
}

const ml_odbc_error_t *ml_contract_error (ml_contract_t *self)
{
    assert (self);
    return self->stream_failed && self->stream_odbc ? ml_odbc_error (self->stream_odbc)
                                                    : ml_odbc_error (self->odbc);
}

int ml_contract_version (ml_contract_t *self, int *version, char *epoch, size_t epoch_size)
{
    assert (self);
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->version, NULL);
    if (!query)
        return -1;
    int rc = ml_query_fetch (query);
    int64_t number = 0;
    const char *text = rc == 1 ? ml_query_text (query, 1) : NULL;
    if (rc != 1 || ml_query_int64 (query, 0, &number) != 0 || !text) {
        ml_query_destroy (&query);
        return -1;
    }
    *version = (int)number;
    snprintf (epoch, epoch_size, "%s", text);
    ml_query_destroy (&query);
    return 0;
}

int ml_contract_check (ml_contract_t *self, char *text, size_t text_size, char *epoch,
                       size_t epoch_size)
{
    int version = 0;
    if (ml_contract_version (self, &version, epoch, epoch_size) != 0) {
        snprintf (text, text_size,
                  "the matterlink contract is not installed in this database (%s). Install it "
                  "with sql/%s/contract.sql (after sql/%s/schema.sql for the reference schema)",
                  ml_contract_error (self)->message, self->dialect->name, self->dialect->name);
        return -1;
    }
    if (version != ML_CONTRACT_VERSION) {
        snprintf (text, text_size,
                  "the matter database has contract version %d but this agent speaks version "
                  "%d. Run sql/%s/contract.sql from this agent's release to %s the contract",
                  version, ML_CONTRACT_VERSION, self->dialect->name,
                  version < ML_CONTRACT_VERSION ? "upgrade" : "match");
        return -1;
    }
    return 0;
}

//  Read the high-water inside the caller's transaction.
static int s_high_water (ml_contract_t *self, uint64_t *high_water)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->high_water, NULL);
    if (!query)
        return -1;
    int64_t value = 0;
    int rc = ml_query_fetch (query) == 1 && ml_query_int64 (query, 0, &value) == 0 && value >= 0
                 ? 0
                 : -1;
    ml_query_destroy (&query);
    if (rc == 0)
        *high_water = (uint64_t)value;
    return rc;
}

int ml_contract_high_water (ml_contract_t *self, uint64_t *high_water)
{
    //  On the server dialects reading the high-water stamps committed changes with their
    //  change ids (docs/contract.md, "stamp on read"): a write, so it gets its own
    //  transaction and is committed before any change is read.
    if (ml_odbc_begin (self->odbc) != 0)
        return -1;
    if (s_high_water (self, high_water) != 0) {
        ml_odbc_rollback (self->odbc);
        return -1;
    }
    return ml_odbc_commit (self->odbc);
}

//  Copy a column into a field. Descriptive text longer than the field is cut at a UTF-8
//  character boundary; an identifier that does not fit returns false (cutting it would
//  name a different invoice).
static bool s_copy (char *field, size_t size, const char *value, bool may_cut)
{
    if (!value) {
        *field = 0;
        return true;
    }
    size_t length = strlen (value);
    if (length >= size) {
        if (!may_cut)
            return false;
        length = size - 1;
        while (length > 0 && ((unsigned char)value[length] & 0xC0) == 0x80)
            length--;
    }
    memcpy (field, value, length);
    field[length] = 0;
    return true;
}

#define S_COPY(field, column, may_cut)                                                             \
    s_copy ((field), sizeof (field), ml_query_text (query, (column)), (may_cut))

//  Read the item columns starting at column first into a new item of batch. Returns 1 for
//  an item, 0 for a row that was skipped (logged), -1 if the batch is full.
static int s_read_item (ml_query_t *query, int first, char op, uint64_t change_id, ml_msg_t *batch)
{
    ml_item_t *item = ml_msg_add_item (batch);
    if (!item)
        return -1;
    const char *kind = ml_query_text (query, first);
    int64_t source_id = 0;
    item->op = op;
    item->change_id = change_id;
    item->kind = kind && strcmp (kind, "trust") == 0 ? 'T' : 'I';
    bool ok = kind && (strcmp (kind, "trust") == 0 || strcmp (kind, "invoice") == 0) &&
              ml_query_int64 (query, first + 1, &source_id) == 0 && source_id > 0;
    item->source_id = (uint64_t)source_id;
    if (ok && op == 'U') {
        int64_t total = 0, balance = 0;
        ok = S_COPY (item->invoice_number, first + 2, false) &&
             S_COPY (item->invoice_date, first + 3, false) &&
             S_COPY (item->due_date, first + 4, false) &&
             S_COPY (item->client_number, first + 5, false) &&
             S_COPY (item->client_name, first + 6, true) &&
             S_COPY (item->matter_number, first + 7, false) &&
             S_COPY (item->matter_description, first + 8, true) &&
             S_COPY (item->currency, first + 9, false) && S_COPY (item->status, first + 12, true) &&
             ml_query_int64 (query, first + 11, &balance) == 0;
        if (ok && item->kind == 'I')
            ok = ml_query_int64 (query, first + 10, &total) == 0;
        item->total_minor = total;
        item->balance_minor = balance;
        ok = ok && strlen (item->currency) == 3;
    }
    if (!ok) {
        ml_log (ML_LOG_ERROR,
                "skipped a matter-database row the link cannot carry (%s id %lld): an "
                "identifier is missing or longer than 63 bytes, or an amount is not an integer",
                kind && strcmp (kind, "trust") == 0 ? "matter" : "invoice", (long long)source_id);
        batch->item_count--;
        return 0;
    }
    return 1;
}

static int s_page (ml_contract_t *self, const char *sql, uint64_t *after, size_t limit,
                   ml_msg_t *batch)
{
    ml_query_t *query = ml_odbc_query (self->odbc, sql, "ii", (int64_t)*after, (int64_t)limit);
    if (!query)
        return -1;
    int rows = 0, rc;
    while ((rc = ml_query_fetch (query)) == 1) {
        int64_t source_id = 0;
        if (ml_query_int64 (query, 1, &source_id) == 0 && (uint64_t)source_id > *after)
            *after = (uint64_t)source_id;
        if (s_read_item (query, 0, 'U', 0, batch) < 0)
            break;
        rows++;
    }
    ml_query_destroy (&query);
    return rc < 0 ? -1 : rows;
}

int ml_contract_open_items (ml_contract_t *self, uint64_t *after, size_t limit, ml_msg_t *batch)
{
    return s_page (self, self->dialect->open_items, after, limit, batch);
}

int ml_contract_trust_balances (ml_contract_t *self, uint64_t *after, size_t limit, ml_msg_t *batch)
{
    return s_page (self, self->dialect->trust_balances, after, limit, batch);
}

int ml_contract_snapshot_begin (ml_contract_t *self)
{
    assert (self);
    ml_contract_snapshot_end (self);
    self->phase = 0;
    self->after = 0;
    if (self->dialect->stream_open_items) {
        ml_odbc_error_t error;
        self->stream_odbc = ml_odbc_new_existing (self->connection_string, &error);
        if (self->stream_odbc && s_limit_time (self, self->stream_odbc) != 0)
            ml_odbc_destroy (&self->stream_odbc);
        if (!self->stream_odbc) {
            ml_log (ML_LOG_WARNING, "cannot open the snapshot connection: %s", error.message);
            self->phase = 2;
            return -1;
        }
    }
    return 0;
}

//  Streaming: fetch from one open query per phase, whatever the table size.
static int s_stream_next (ml_contract_t *self, size_t limit, ml_msg_t *batch)
{
    int rows = 0;
    while ((size_t)rows < limit && self->phase < 2) {
        if (!self->stream) {
            const char *sql = self->phase == 0 ? self->dialect->stream_open_items
                                               : self->dialect->stream_trust_balances;
            self->stream = ml_odbc_query (self->stream_odbc, sql, NULL);
            if (!self->stream) {
                self->stream_failed = true;
                return -1;
            }
        }
        int rc = ml_query_fetch (self->stream);
        if (rc < 0) {
            self->stream_failed = true;
            return -1;
        }
        if (rc == 0) {
            ml_query_destroy (&self->stream);
            self->phase++;
            continue;
        }
        if (s_read_item (self->stream, 0, 'U', 0, batch) < 0)
            break;
        rows++;
    }
    return rows;
}

int ml_contract_snapshot_next (ml_contract_t *self, size_t limit, ml_msg_t *batch)
{
    assert (self && batch);
    self->stream_failed = false;
    if (self->dialect->stream_open_items)
        return s_stream_next (self, limit, batch);
    //  Paging: short keyset pages, each its own short read.
    while (self->phase < 2) {
        int rows = s_page (
            self, self->phase == 0 ? self->dialect->open_items : self->dialect->trust_balances,
            &self->after, limit, batch);
        if (rows != 0)
            return rows;
        self->phase++;
        self->after = 0;
    }
    return 0;
}

//  Search ------------------------------------------------------------------------------------

//  The LIKE pattern for text: '!' escapes the characters LIKE (and SQL Server's brackets)
//  would read as wildcards, so a search for "%" or "_" finds those characters and nothing
//  else. Prefix adds a trailing '%', contains one at each end.
static void s_like_pattern (const char *text, char match, char *pattern, size_t size)
{
    size_t used = 0;
    if (match == 'C')
        pattern[used++] = '%';
    for (const char *cursor = text; *cursor && used + 3 < size; cursor++) {
        if (*cursor == '!' || *cursor == '%' || *cursor == '_' || *cursor == '[')
            pattern[used++] = '!';
        pattern[used++] = *cursor;
    }
    if (match != 'E')
        pattern[used++] = '%';
    pattern[used] = 0;
}

//  Reads one UTF-8 code point at *cursor and advances it; a byte that starts no valid
//  sequence is returned as itself (the codec admits only valid UTF-8, so this is a guard).
static uint32_t s_utf8_next (const char **cursor)
{
    const unsigned char *bytes = (const unsigned char *)*cursor;
    int length = bytes[0] < 0x80         ? 1
                 : (bytes[0] >> 5) == 6  ? 2
                 : (bytes[0] >> 4) == 14 ? 3
                 : (bytes[0] >> 3) == 30 ? 4
                                         : 1;
    uint32_t point = length == 1 ? bytes[0] : bytes[0] & (0x7F >> length);
    for (int index = 1; index < length; index++) {
        if ((bytes[index] & 0xC0) != 0x80) {
            *cursor += 1;
            return bytes[0];
        }
        point = (point << 6) | (bytes[index] & 0x3F);
    }
    *cursor += length;
    return point;
}

static size_t s_utf8_put (uint32_t point, char *out)
{
    if (point < 0x80) {
        out[0] = (char)point;
        return 1;
    }
    if (point < 0x800) {
        out[0] = (char)(0xC0 | (point >> 6));
        out[1] = (char)(0x80 | (point & 0x3F));
        return 2;
    }
    if (point < 0x10000) {
        out[0] = (char)(0xE0 | (point >> 12));
        out[1] = (char)(0x80 | ((point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (point >> 18));
    out[1] = (char)(0x80 | ((point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (point & 0x3F));
    return 4;
}

//  The GLOB pattern for text (dialects with search_by_glob): every letter becomes the class
//  of its case forms (Unicode simple case mapping, from the C.UTF-8 locale whatever the
//  process's own locale), GLOB's own '*', '?' and '[' become one-character classes, prefix
//  adds a trailing '*', contains one at each end. size must be at least
//  S_GLOB_PER_BYTE * strlen (text) + 3: a byte of text never costs more than that.
#define S_GLOB_PER_BYTE 14
static void s_glob_pattern (locale_t utf8, const char *text, char match, char *pattern, size_t size)
{
    size_t used = 0;
    if (match == 'C')
        pattern[used++] = '*';
    const char *cursor = text;
    while (*cursor && used + S_GLOB_PER_BYTE + 2 < size) {
        uint32_t point = s_utf8_next (&cursor);
        uint32_t forms[3] = {point, point, point};
        if (utf8) {
            forms[1] = (uint32_t)towlower_l ((wint_t)point, utf8);
            forms[2] = (uint32_t)towupper_l ((wint_t)point, utf8);
        } else if (point < 0x80) { //  no C.UTF-8 here: at least what LIKE folded before
            forms[1] = (uint32_t)tolower ((int)point);
            forms[2] = (uint32_t)toupper ((int)point);
        }
        bool special = point == '*' || point == '?' || point == '[';
        bool cased = forms[1] != point || forms[2] != point;
        if (special || cased)
            pattern[used++] = '[';
        used += s_utf8_put (point, pattern + used);
        if (forms[1] != point)
            used += s_utf8_put (forms[1], pattern + used);
        if (forms[2] != point && forms[2] != forms[1])
            used += s_utf8_put (forms[2], pattern + used);
        if (special || cased)
            pattern[used++] = ']';
    }
    if (match != 'E')
        pattern[used++] = '*';
    pattern[used] = 0;
}

//  A scope list as a JSON array of strings (caller frees), ASCII-only so every driver
//  passes it through unchanged.
static char *s_scope_json (const ml_search_t *search, int list)
{
    json_t *array = json_array ();
    for (size_t index = 0; index < search->scope_count[list]; index++)
        json_array_append_new (array, json_string (search->scope[list][index]));
    char *text = json_dumps (array, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref (array);
    return text;
}

typedef struct {
    char sql[8192]; //  a payer's three scope lists, a field and every filter fit
    size_t length;
    char picture[33]; //  ml_odbc takes at most 32 parameters
    ml_odbc_value_t values[32];
    size_t count;
} s_statement_t;

//  Append fixed SQL text, with column (if given) in place of the fragment's one "%s".
//  Only this file's constant fragments and column names ever reach it: values go through
//  s_bind_*, never into the text.
static void s_text (s_statement_t *statement, const char *fragment, const char *column)
{
    const char *hole = column ? strstr (fragment, "%s") : NULL;
    size_t head = hole ? (size_t)(hole - fragment) : strlen (fragment);
    size_t middle = hole ? strlen (column) : 0;
    size_t tail = hole ? strlen (hole + 2) : 0;
    assert (statement->length + head + middle + tail < sizeof statement->sql);
    char *end = statement->sql + statement->length;
    memcpy (end, fragment, head);
    if (hole) {
        memcpy (end + head, column, middle);
        memcpy (end + head + middle, hole + 2, tail);
    }
    statement->length += head + middle + tail;
    statement->sql[statement->length] = 0;
}

static void s_bind_text (s_statement_t *statement, const char *text)
{
    assert (statement->count < sizeof statement->picture - 1);
    statement->picture[statement->count] = 's';
    statement->values[statement->count++].text = text;
}

static void s_bind_number (s_statement_t *statement, int64_t number)
{
    assert (statement->count < sizeof statement->picture - 1);
    statement->picture[statement->count] = 'i';
    statement->values[statement->count++].number = number;
}

static void s_search_fail (ml_msg_t *answer, uint16_t code, const char *reason)
{
    ml_msg_clear_items (answer);
    answer->next = 0;
    answer->code = code;
    snprintf (answer->reason, sizeof answer->reason, "%.255s", reason);
}

//  The columns a criterion tests, by ml_field_t.
static const char *s_field_columns[] = {
    NULL, "client_name", "client_number", "matter_number", "matter_description", "invoice_number"};

//  With a search index (docs/contract.md 5.8): for each field, the index's id column that a
//  match decides and the view that maps the field's text to that id.
static const struct {
    const char *key;
    const char *view;
} s_index_lookups[] = {{NULL, NULL},
                       {"client_id", "ml_search_clients"},
                       {"client_id", "ml_search_clients"},
                       {"matter_id", "ml_search_matters"},
                       {"matter_id", "ml_search_matters"},
                       {"source_id", "ml_search_invoices"}};

//  Scope lists (ML_SCOPE_*) name clients, matters and invoices by number.
static const ml_field_t s_scope_fields[] = {ML_FIELD_CLIENT_NUMBER, ML_FIELD_MATTER_NUMBER,
                                            ML_FIELD_INVOICE_NUMBER};

//  How many rows of the search index a walk reads at most (docs/contract.md 5.8): where a name
//  or description is common (1 open invoice in 100 or more), a page of matches is met within
//  them; where it is rarer, the search fetches the matches instead.
#define S_WALK_ROWS "5000"

//  A criterion (test: a fragment with one '?' about the field's column) through the search
//  index: "<key> = ANY (ARRAY (SELECT <key> FROM <view> WHERE <test>))" makes PostgreSQL
//  fetch exactly the matching ids' rows through the key's index and sort them.
static void s_index_match (s_statement_t *statement, ml_field_t field, const char *test)
{
    s_text (statement, "%s = ANY (ARRAY (SELECT ", s_index_lookups[field].key);
    s_text (statement, "%s FROM ", s_index_lookups[field].key);
    s_text (statement, "%s WHERE ", s_index_lookups[field].view);
    s_text (statement, test, s_field_columns[field]);
    s_text (statement, "))", NULL);
}

#define S_LIKE "LOWER(%s) LIKE LOWER(?) ESCAPE '!'"

//  What a search binds for its field: the pattern and, for an exact or prefix number search
//  through SQLite's search views, the bounds of the number's case-folded key (empty: none).
typedef struct {
    const char *pattern;
    char key_from[sizeof ((ml_search_t *)0)->text];
    char key_to[sizeof ((ml_search_t *)0)->text];
} s_search_values_t;

//  The range of SQLite's lower() of a number (it folds ASCII letters only) that holds every
//  exact or prefix match of text: from the text's leading ASCII run with its letters in lower
//  case, to the same run with its last byte one higher. A match begins with case forms of the
//  text's characters (section 5.8), an ASCII character's case forms are ASCII, and lower()
//  maps them all to the run's; GLOB then decides. Folded by hand: tolower() follows the
//  process's locale, and a Turkish one folds 'I' to a dotless i.
static void s_key_bounds (const char *text, char *from, char *to, size_t size)
{
    size_t used = 0;
    for (; text[used] && (unsigned char)text[used] < 0x7F && used + 1 < size; used++)
        from[used] = text[used] >= 'A' && text[used] <= 'Z' ? (char)(text[used] + 32) : text[used];
    from[used] = 0;
    memcpy (to, from, used + 1);
    if (used)
        to[used - 1]++;
}

static bool s_number_field (ml_field_t field)
{
    return field == ML_FIELD_CLIENT_NUMBER || field == ML_FIELD_MATTER_NUMBER ||
           field == ML_FIELD_INVOICE_NUMBER;
}

//  Through the search views (docs/contract.md 5.8): "source_id IN (...)", or with hits the
//  derived table "(SELECT DISTINCT ... AS hit_id ...)", down to the view that holds field,
//  ending in "WHERE " for the field's test. Returns the parentheses to close.
static int s_view_open (s_statement_t *statement, char target, ml_field_t field, bool hits)
{
    const char *head =
        hits ? "(SELECT DISTINCT %s AS hit_id FROM " : "source_id IN (SELECT %s FROM ";
    if (field == ML_FIELD_INVOICE_NUMBER) {
        s_text (statement, head, "source_id");
        s_text (statement, "ml_search_invoices WHERE ", NULL);
        return 1;
    }
    int open = 1;
    if (target == 'T') {
        s_text (statement, head, "matter_id");
        s_text (statement, "ml_search_matters WHERE ", NULL);
    } else {
        s_text (statement, head, "source_id");
        s_text (statement,
                "ml_search_invoices WHERE matter_id IN "
                "(SELECT matter_id FROM ml_search_matters WHERE ",
                NULL);
        open++;
    }
    if (field == ML_FIELD_CLIENT_NAME || field == ML_FIELD_CLIENT_NUMBER) {
        s_text (statement, "client_id IN (SELECT client_id FROM ml_search_clients WHERE ", NULL);
        open++;
    }
    return open;
}

static void s_view_close (s_statement_t *statement, int open)
{
    while (open-- > 0)
        s_text (statement, ")", NULL);
}

//  A search's criterion through the search views. The test is the one the item views are
//  searched with (GLOB on SQLite, LOWER() LIKE LOWER() elsewhere) on the same columns, so it
//  finds the same rows; SQLite first bounds a number's key, MariaDB tests the stored key,
//  which is LOWER() of the number, with the same LIKE.
static void s_view_match (s_statement_t *statement, const s_dialect_t *dialect,
                          const ml_search_t *search, const s_search_values_t *values, bool hits)
{
    ml_field_t field = (ml_field_t)search->field;
    //  The codec refuses it: a trust ledger has no invoice number, so nothing matches.
    bool none = search->target == 'T' && field == ML_FIELD_INVOICE_NUMBER;
    int open = s_view_open (statement, search->target, none ? ML_FIELD_MATTER_NUMBER : field, hits);
    if (none) {
        s_text (statement, "1 = 0", NULL);
        s_view_close (statement, open);
        return;
    }
    const char *column = s_field_columns[field];
    if (dialect->search_by_glob && s_number_field (field) && *values->key_from) {
        s_text (statement, "%s_key >= ? AND ", column);
        s_bind_text (statement, values->key_from);
        s_text (statement, "%s_key < ? AND ", column);
        s_bind_text (statement, values->key_to);
    }
    if (dialect->search_by_glob)
        s_text (statement, "%s GLOB ?", column);
    else if (s_number_field (field))
        s_text (statement, "%s_key LIKE LOWER(?) ESCAPE '!'", column);
    else
        s_text (statement, S_LIKE, column);
    s_bind_text (statement, values->pattern);
    s_view_close (statement, open);
}

//  A scope list's test through the search views (the list, a JSON array, bound once).
static void s_view_scope (s_statement_t *statement, const s_dialect_t *dialect,
                          const ml_search_t *search, int list, const char *scope_json, bool hits)
{
    int open = s_view_open (statement, search->target, s_scope_fields[list], hits);
    s_text (statement, dialect->search_in_list, s_field_columns[s_scope_fields[list]]);
    s_bind_text (statement, scope_json);
    s_view_close (statement, open);
}

//  The rows of one search's view that match its criteria and filters: "SELECT ... FROM view
//  WHERE ..." with every value bound. Through a search index (keys: its view), only their
//  source ids; walking, from the index's next S_WALK_ROWS rows, testing the lower-case text.
static void s_search_select (s_statement_t *statement, const s_dialect_t *dialect,
                             const ml_search_t *search, const s_search_values_t *values,
                             const char *keys, bool walk, int list, const char *scope_json)
{
    const char *view = search->target == 'T' ? "ml_trust_balances" : "ml_open_items";
    bool field = search->field != ML_FIELD_NONE && search->field <= ML_FIELD_LAST;
    bool views = dialect->search_views != S_NO_VIEWS && !walk;
    //  MariaDB: the ids of the scope list's items, or else of the field's matches, come first.
    bool hits = views && dialect->search_views == S_VIEWS_HITS && (field || list >= 0);
    //  MariaDB's walk: the matching ids among the next rows' ids and tested column only, then
    //  their rows (materializing whole item rows cost twice as much).
    bool walk_hits = walk && !keys && dialect->search_views == S_VIEWS_HITS;
    if (walk_hits) {
        s_text (statement,
                "SELECT STRAIGHT_JOIN " S_ITEM_COLUMNS " FROM (SELECT source_id AS hit_id FROM "
                "(SELECT source_id, %s",
                s_field_columns[search->field]);
        s_text (statement, " FROM %s WHERE source_id > ?", view);
        s_bind_number (statement, (int64_t)search->after);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked WHERE ", NULL);
        s_text (statement, S_LIKE, s_field_columns[search->field]);
        s_bind_text (statement, values->pattern);
        s_text (statement, ") AS hits JOIN %s ON source_id = hits.hit_id WHERE source_id > ?",
                view);
    } else if (hits) {
        s_text (statement, "SELECT STRAIGHT_JOIN " S_ITEM_COLUMNS " FROM ", NULL);
        if (list >= 0)
            s_view_scope (statement, dialect, search, list, scope_json, true);
        else
            s_view_match (statement, dialect, search, values, true);
        s_text (statement, " AS hits JOIN %s ON source_id = hits.hit_id WHERE source_id > ?", view);
    } else if (walk && !keys) {
        s_text (statement,
                "SELECT " S_ITEM_COLUMNS " FROM (SELECT " S_ITEM_COLUMNS
                " FROM %s WHERE source_id > ?",
                view);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked", NULL);
    } else if (walk) {
        s_text (statement, "SELECT source_id FROM (SELECT * FROM %s WHERE source_id > ?", keys);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked", NULL);
    } else if (keys)
        s_text (statement, "SELECT source_id FROM %s WHERE source_id > ?", keys);
    else
        s_text (statement, "SELECT " S_ITEM_COLUMNS " FROM %s WHERE source_id > ?", view);
    s_bind_number (statement, (int64_t)search->after);
    if (field && !(hits && list < 0) && !walk_hits) {
        //  Case-insensitive everywhere: staff type "smith" for "Smith & Co".
        s_text (statement, walk ? " WHERE " : " AND ", NULL);
        if (views)
            s_view_match (statement, dialect, search, values, false); //  binds its own values
        else {
            if (walk && keys)
                s_text (statement, "%s_lower LIKE LOWER(?) ESCAPE '!'",
                        s_field_columns[search->field]);
            else if (keys)
                s_index_match (statement, search->field, S_LIKE);
            else
                s_text (statement, dialect->search_by_glob ? "%s GLOB ?" : S_LIKE,
                        s_field_columns[search->field]);
            s_bind_text (statement, values->pattern);
        }
    }
    if (list >= 0 && !hits) {
        s_text (statement, " AND ", NULL);
        if (keys) {
            s_index_match (statement, s_scope_fields[list], dialect->search_in_list);
            s_bind_text (statement, scope_json);
        } else if (views)
            s_view_scope (statement, dialect, search, list, scope_json, false);
        else {
            s_text (statement, dialect->search_in_list, s_field_columns[s_scope_fields[list]]);
            s_bind_text (statement, scope_json);
        }
    }
    //  Dates are 'YYYY-MM-DD' text in every dialect's item row, so text order is date order.
    if (*search->date_from) {
        s_text (statement, " AND invoice_date >= ?", NULL);
        s_bind_text (statement, search->date_from);
    }
    if (*search->date_to) {
        s_text (statement, " AND invoice_date <= ?", NULL);
        s_bind_text (statement, search->date_to);
    }
    if (search->amount_filter & ML_AMOUNT_MIN) {
        s_text (statement, " AND balance_minor >= ?", NULL);
        s_bind_number (statement, search->amount_min);
    }
    if (search->amount_filter & ML_AMOUNT_MAX) {
        s_text (statement, " AND balance_minor <= ?", NULL);
        s_bind_number (statement, search->amount_max);
    }
    //  Minor units mean nothing without their currency: 100.00 USD is 10000, 100 JPY is 100.
    if (search->amount_filter & ML_AMOUNT_CURRENCY) {
        s_text (statement, " AND currency = ?", NULL);
        s_bind_text (statement, search->amount_currency);
    }
    if (search->status == ML_STATUS_OVERDUE) {
        s_text (statement, " AND due_date < ?", NULL);
        s_bind_text (statement, search->as_of);
    } else if (search->status == ML_STATUS_CURRENT) {
        s_text (statement, " AND (due_date IS NULL OR due_date >= ?)", NULL);
        s_bind_text (statement, search->as_of);
    }
}

//  Reads a search's rows into answer, at most its limit, with the next page's start when one
//  row more came. Returns 1 when it did (or the answer is full), 0 when the rows ended first,
//  -1 on an error.
static int s_search_rows (ml_query_t *query, const ml_search_t *search, ml_msg_t *answer)
{
    int fetched;
    uint64_t last_source = 0;
    while ((fetched = ml_query_fetch (query)) == 1) {
        if (answer->item_count == search->limit) {
            answer->next = last_source;
            return 1;
        }
        int64_t source_id = 0;
        if (ml_query_int64 (query, 1, &source_id) == 0 && source_id > 0)
            last_source = (uint64_t)source_id;
        if (s_read_item (query, 0, 'U', 0, answer) < 0)
            return 1; //  the answer is full: keep what it holds
    }
    return fetched;
}

//  The search's statement. A payer's view (scoped) selects only rows a scope list names,
//  each list its own select (its number index finds the payer's few rows), united and then
//  ordered; an empty scope shows nothing, never everything. Invoice-level associations show
//  that invoice, never a trust ledger. Through a search index (keys), those selects give
//  source ids, and the page's rows are read by id from ml_open_items.
static void s_search_statement (s_statement_t *statement, const s_dialect_t *dialect,
                                const ml_search_t *search, const s_search_values_t *values,
                                const char *keys, bool walk, char *scope_json[3])
{
    if (keys)
        s_text (statement,
                "SELECT " S_ITEM_COLUMNS " FROM ml_open_items WHERE source_id = ANY (ARRAY (",
                NULL);
    int lists = 0;
    for (int list = 0; search->scoped && list < 3; list++) {
        if (search->scope_count[list] == 0 || (list == ML_SCOPE_INVOICES && search->target == 'T'))
            continue;
        scope_json[list] = s_scope_json (search, list);
        s_text (statement, lists++ ? " UNION " : "SELECT * FROM (", NULL);
        s_search_select (statement, dialect, search, values, keys, walk, list, scope_json[list]);
    }
    if (lists)
        s_text (statement, ") scoped", NULL);
    else {
        s_search_select (statement, dialect, search, values, keys, walk, -1, NULL);
        if (search->scoped)
            s_text (statement, " AND 1 = 0", NULL);
    }
    s_text (statement, " ORDER BY source_id ", NULL);
    s_text (statement, dialect->search_limit, NULL);
    //  One row more than asked says whether another page follows.
    s_bind_number (statement, (int64_t)search->limit + 1);
    if (keys)
        s_text (statement, ")) ORDER BY source_id", NULL);
    statement->picture[statement->count] = 0;
}

int ml_contract_search (ml_contract_t *self, const ml_search_t *search, ml_msg_t *answer)
{
    assert (self && search && answer);
    const s_dialect_t *dialect = self->dialect;
    s_statement_t statement = {.length = 0};
    char pattern[S_GLOB_PER_BYTE * sizeof search->text + 3];
    s_search_values_t values = {.pattern = pattern};
    char *scope_json[3] = {NULL, NULL, NULL};
    ml_msg_clear_items (answer);
    answer->code = ML_SEARCH_OK;
    answer->next = 0;
    *answer->reason = 0;
    if (search->field != ML_FIELD_NONE && dialect->search_by_glob)
        s_glob_pattern (self->utf8, search->text, search->match, pattern, sizeof pattern);
    else if (search->field != ML_FIELD_NONE)
        s_like_pattern (search->text, search->match, pattern, sizeof pattern);
    if (search->match != 'C')
        s_key_bounds (search->text, values.key_from, values.key_to, sizeof values.key_from);
    //  Invoice searches through the dialect's search index, if it has one.
    const char *keys = search->target == 'I' ? dialect->search_keys : NULL;

    //  The answer is worthless after the deadline: stop the statements there.
    bool limited = search->deadline_ms > 0 &&
                   (!self->timeout_ms || (int)search->deadline_ms < self->timeout_ms) &&
                   dialect->time_limit != S_NO_LIMIT;
    int rc = 0;
    if (limited && s_limit_time_to (self, self->odbc, (int)search->deadline_ms) != 0)
        rc = -1;
    //  The session settings serve the view's plans; through the search index every plan is
    //  fixed by the statement's shape (its ids come from a subquery with its own limit).
    const char *search_begin = keys ? NULL : dialect->search_begin;
    const char *search_end = keys ? NULL : dialect->search_end;
    if (rc == 0 && search_begin && ml_odbc_execute (self->odbc, search_begin, NULL) < 0)
        rc = -1;
    //  A name or description walks the search index (or the item view) first; if the walk
    //  meets no full page within its rows, the matches are rare and the search fetches them
    //  instead. Both give the same rows: the walk only ever saves time.
    bool walk =
        (keys || dialect->search_views != S_NO_VIEWS) && !search->scoped &&
        (search->field == ML_FIELD_CLIENT_NAME || search->field == ML_FIELD_MATTER_DESCRIPTION);
    ml_query_t *query = NULL;
    int fetched = 0;
    while (rc == 0) {
        statement.length = statement.count = 0;
        s_search_statement (&statement, dialect, search, &values, keys, walk, scope_json);
        query =
            ml_odbc_query_values (self->odbc, statement.sql, statement.picture, statement.values);
        fetched = query ? s_search_rows (query, search, answer) : -1;
        if (fetched != 0 || !walk)
            break;
        ml_query_destroy (&query);
        ml_msg_clear_items (answer);
        walk = false;
    }
    if (rc != 0 || fetched < 0) {
        const ml_odbc_error_t *error = ml_odbc_error (self->odbc);
        char reason[300];
        snprintf (reason, sizeof reason, "the matter database %s: %.200s",
                  error->kind == ML_ODBC_TIMEOUT ? "did not answer in time" : "failed",
                  error->message);
        s_search_fail (answer,
                       error->kind == ML_ODBC_TIMEOUT ? ML_SEARCH_TIMEOUT
                       : error->kind == ML_ODBC_LOST  ? ML_SEARCH_UNAVAILABLE
                                                      : ML_SEARCH_FAILED,
                       reason);
        rc = error->kind == ML_ODBC_LOST ? -1 : 0;
    }
    ml_query_destroy (&query);
    if (rc == 0 && search_end && ml_odbc_execute (self->odbc, search_end, NULL) < 0)
        rc = -1;
    if (limited && rc == 0 && s_limit_time_to (self, self->odbc, self->timeout_ms) != 0)
        rc = -1;
    for (int list = 0; list < 3; list++)
        free (scope_json[list]);
    return rc;
}

void ml_contract_snapshot_end (ml_contract_t *self)
{
    assert (self);
    ml_query_destroy (&self->stream);
    ml_odbc_destroy (&self->stream_odbc);
    self->stream_failed = false;
    self->phase = 2;
}

int ml_contract_changes (ml_contract_t *self, uint64_t since, uint64_t upto, size_t limit,
                         ml_msg_t *batch, uint64_t *last)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->changes, "iii", (int64_t)since,
                                       (int64_t)upto, (int64_t)limit);
    if (!query)
        return -1;
    int rows = 0, rc;
    *last = since;
    while ((rc = ml_query_fetch (query)) == 1) {
        int64_t change_id = 0;
        const char *op = ml_query_text (query, 1);
        if (ml_query_int64 (query, 0, &change_id) != 0 || change_id <= 0 || !op) {
            rc = -1;
            break;
        }
        *last = (uint64_t)change_id;
        if (s_read_item (query, 2, strcmp (op, "upsert") == 0 ? 'U' : 'R', (uint64_t)change_id,
                         batch) < 0)
            break;
        rows++;
    }
    ml_query_destroy (&query);
    return rc < 0 ? -1 : rows;
}

//  The posting as the JSON document the contract's apply operation takes (new reference).
//  "reverses" is the UUID of the posting a reversal gives money back from, or null.
static json_t *s_posting_document (const ml_posting_t *posting)
{
    json_t *lines = json_array ();
    for (size_t index = 0; index < posting->line_count; index++) {
        const ml_line_t *line = &posting->lines[index];
        json_array_append_new (
            lines, json_pack ("{s:s, s:s, s:I}", "kind", line->kind == 'T' ? "trust" : "invoice",
                              line->kind == 'T' ? "matter_number" : "invoice_number",
                              line->reference, "amount_minor", (json_int_t)line->amount_minor));
    }
    json_t *reverses = *posting->reverses ? json_string (posting->reverses) : json_null ();
    return json_pack (
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "posting_uuid",
        posting->posting_uuid, "received_on", posting->received_on, "account_number",
        posting->account_number, "client_number", posting->client_number, "payer_name",
        posting->payer_name, "payer_email", posting->payer_email, "currency", posting->currency,
        "amount_minor", (json_int_t)posting->amount_minor, "ar_message", posting->ar_message,
        "processor_txn", posting->processor_txn, "reverses", reverses, "allocations", lines);
}

//  A JSON value as text, ASCII only (\u escapes): no driver code page can damage a payer's
//  name on the way. Steals value; caller frees the text.
static char *s_json_text (json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref (value);
    return text;
}

static char *s_posting_json (const ml_posting_t *posting)
{
    return s_json_text (s_posting_document (posting));
}

//  The reason code after "ML001 " in a database message ("invoice_not_open").
static void s_reason (const char *message, char *reason, size_t size)
{
    const char *start = strstr (message, "ML001 ");
    size_t length = 0;
    if (start) {
        start += 6;
        while (length + 1 < size &&
               ((start[length] >= 'a' && start[length] <= 'z') || start[length] == '_'))
            length++;
    }
    if (length == 0)
        snprintf (reason, size, "rejected");
    else {
        memcpy (reason, start, length);
        reason[length] = 0;
    }
}

//  Read the stored result of a posting into result. Returns 1 found, 0 not found, -1 error.
static int s_read_result (ml_contract_t *self, const char *uuid, ml_msg_t *result)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->result, "s", uuid);
    if (!query)
        return -1;
    int rc = ml_query_fetch (query);
    if (rc == 1) {
        const char *status = ml_query_text (query, 1);
        snprintf (result->posting_uuid, sizeof result->posting_uuid, "%s", uuid);
        snprintf (result->status, sizeof result->status, "%s", status ? status : "");
        s_copy (result->receipt_id, sizeof result->receipt_id, ml_query_text (query, 2), true);
        s_copy (result->reason, sizeof result->reason, ml_query_text (query, 3), true);
    }
    ml_query_destroy (&query);
    return rc;
}

//  After COMMIT, read each result again on the connection, outside any transaction: only a
//  result the database shows now is reported. A COMMIT can be taken for done when it was
//  not: PostgreSQL answers COMMIT in an aborted transaction with ROLLBACK and no error, and
//  an ODBC driver may report success for a COMMIT with no transaction open. The chaos suite
//  caught a posting reported "posted" as PostgreSQL stopped, whose receipt was not there
//  after the restart. A result that cannot be read back (the connection went too) is not
//  reported; the core delivers the posting again and the idempotent apply answers it.
//  Test hook: MATTERLINK_TEST_LOST_COMMITS=N makes the first N commits of postings roll
//  back while they report success, as a driver that takes a lost COMMIT for done would.
static int s_commit_postings (ml_contract_t *self)
{
    static int lost = -1;
    if (lost < 0) {
        const char *hook = getenv ("MATTERLINK_TEST_LOST_COMMITS");
        lost = hook ? atoi (hook) : 0;
    }
    if (lost > 0) {
        lost--;
        ml_log (ML_LOG_WARNING, "test hook: this commit is rolled back and reported done");
        ml_odbc_rollback (self->odbc);
        return 0;
    }
    return ml_odbc_commit (self->odbc);
}

static bool s_confirm (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                       ml_msg_t **results)
{
    for (size_t index = 0; index < count; index++) {
        ml_msg_t *seen = ml_msg_new (ML_MSG_POSTING_RESULT);
        bool same = s_read_result (self, postings[index]->posting_uuid, seen) == 1 &&
                    strcmp (seen->status, results[index]->status) == 0 &&
                    strcmp (seen->receipt_id, results[index]->receipt_id) == 0;
        ml_msg_destroy (&seen);
        if (!same) {
            ml_log (ML_LOG_WARNING,
                    "posting %s: its result could not be read back after the commit; not "
                    "answered now (the core delivers it again)",
                    postings[index]->posting_uuid);
            return false;
        }
    }
    return true;
}

int ml_contract_apply (ml_contract_t *self, const ml_posting_t *posting, ml_msg_t *result)
{
    assert (self && posting && result);
    char *document = s_posting_json (posting);
    if (!document)
        return -1;
    if (ml_odbc_begin (self->odbc) != 0) {
        free (document);
        return -1;
    }
    int64_t applied = ml_odbc_execute (self->odbc, self->dialect->apply, "s", document);
    free (document);
    if (applied < 0) {
        ml_odbc_error_t error = *ml_odbc_error (self->odbc);
        ml_odbc_rollback (self->odbc);
        if (error.kind != ML_ODBC_BUSINESS && error.kind != ML_ODBC_DATA)
            return -1;
        //  A final answer: record it, so a repeated delivery returns the same reason even
        //  if the invoice changes in the meantime.
        char reason[128];
        if (error.kind == ML_ODBC_BUSINESS)
            s_reason (error.message, reason, sizeof reason);
        else
            snprintf (reason, sizeof reason, "data_error (SQLSTATE %s)", error.sqlstate);
        if (ml_odbc_begin (self->odbc) != 0)
            return -1;
        if (ml_odbc_execute (self->odbc, self->dialect->reject, "ss", posting->posting_uuid,
                             reason) < 0) {
            ml_odbc_rollback (self->odbc);
            return -1;
        }
    }
    uint64_t high_water = 0;
    if (s_read_result (self, posting->posting_uuid, result) != 1 ||
        s_high_water (self, &high_water) != 0) {
        ml_odbc_rollback (self->odbc);
        return -1;
    }
    if (s_commit_postings (self) != 0)
        return -1;
    ml_posting_t *confirmed = (ml_posting_t *)posting;
    if (!s_confirm (self, &confirmed, 1, &result))
        return -1;
    result->id = ML_MSG_POSTING_RESULT;
    result->cursor = high_water;
    return 0;
}

//  The set-based path: one call applies the whole batch (it refuses, writing nothing, if
//  any posting would be rejected), one query reads every result back. Returns true when
//  every result was read.
static bool s_apply_many (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                          ml_msg_t **results)
{
    json_t *documents = json_array ();
    json_t *uuids = json_array ();
    for (size_t index = 0; index < count; index++) {
        json_array_append_new (documents, s_posting_document (postings[index]));
        json_array_append_new (uuids, json_string (postings[index]->posting_uuid));
    }
    char *documents_text = s_json_text (documents);
    char *uuids_text = s_json_text (uuids);
    bool ok = documents_text && uuids_text &&
              ml_odbc_execute (self->odbc, self->dialect->apply_many, "s", documents_text) >= 0;
    ml_query_t *query =
        ok ? ml_odbc_query (self->odbc, self->dialect->results_many, "s", uuids_text) : NULL;
    size_t found = 0;
    while (query && ml_query_fetch (query) == 1) {
        const char *uuid = ml_query_text (query, 0);
        for (size_t index = 0; uuid && index < count; index++) {
            if (strcmp (postings[index]->posting_uuid, uuid) != 0 || *results[index]->status)
                continue;
            ml_msg_t *result = results[index];
            snprintf (result->posting_uuid, sizeof result->posting_uuid, "%s", uuid);
            s_copy (result->status, sizeof result->status, ml_query_text (query, 1), true);
            s_copy (result->receipt_id, sizeof result->receipt_id, ml_query_text (query, 2), true);
            s_copy (result->reason, sizeof result->reason, ml_query_text (query, 3), true);
            found++;
            break;
        }
    }
    ml_query_destroy (&query);
    free (documents_text);
    free (uuids_text);
    return ok && found == count;
}

size_t ml_contract_apply_batch (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                                ml_msg_t **results)
{
    assert (self && postings && results);
    if (count == 0)
        return 0;
    for (size_t index = 0; index < count; index++)
        *results[index]->status = 0;
    bool ok = ml_odbc_begin (self->odbc) == 0;
    bool set_based = ok && self->dialect->apply_many && count > 1;
    if (set_based)
        ok = s_apply_many (self, postings, count, results);
    for (size_t index = 0; ok && !set_based && index < count; index++) {
        char *document = s_posting_json (postings[index]);
        ok = document && ml_odbc_execute (self->odbc, self->dialect->apply, "s", document) >= 0;
        free (document);
    }
    uint64_t high_water = 0;
    for (size_t index = 0; ok && !set_based && index < count; index++)
        ok = s_read_result (self, postings[index]->posting_uuid, results[index]) == 1;
    ok = ok && s_high_water (self, &high_water) == 0;
    if (ok && s_commit_postings (self) == 0) {
        if (!s_confirm (self, postings, count, results))
            return 0;
        for (size_t index = 0; index < count; index++) {
            results[index]->id = ML_MSG_POSTING_RESULT;
            results[index]->cursor = high_water;
        }
        return count;
    }
    ml_odbc_rollback (self->odbc);
    //  One at a time: the rejection of one posting must not hold back the others.
    size_t answered = 0;
    while (answered < count && ml_contract_apply (self, postings[answered], results[answered]) == 0)
        answered++;
    return answered;
}

//  Selftest --------------------------------------------------------------------------------

//  Make a small reference matter database with the repository's scripts. Shared with the
//  other selftests through ml_selftest_support.
extern int ml_selftest_matter_db (char *path, size_t size, int clients, int invoices);

void ml_contract_test (bool verbose)
{
    printf (" * ml_contract: ");
    char path[256];
    assert (ml_selftest_matter_db (path, sizeof path, 20, 200) == 0);
    char connection_string[512];
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s;StepAPI=1;FKSupport=1;Timeout=5000", path);
    ml_odbc_error_t error;
    assert (ml_contract_new ("oracle", connection_string, &error) == NULL);
    assert (strstr (error.message, "not supported"));
    ml_contract_t *contract = ml_contract_new ("sqlite", connection_string, &error);
    assert (contract);
    char text[512], epoch[64];
    assert (ml_contract_check (contract, text, sizeof text, epoch, sizeof epoch) == 0);
    assert (strlen (epoch) == 36);

    //  Page through every open invoice in small pages.
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    uint64_t after = 0;
    int total = 0, got;
    while ((got = ml_contract_open_items (contract, &after, 7, batch)) > 0)
        total += got;
    assert (got == 0 && total > 50 && (size_t)total == batch->item_count);
    for (size_t index = 0; index < batch->item_count; index++) {
        ml_item_t *item = &batch->items[index];
        assert (item->kind == 'I' && item->balance_minor > 0);
        assert (item->balance_minor <= item->total_minor);
        assert (strcmp (item->currency, "USD") == 0 && *item->invoice_number);
    }
    //  The snapshot reader returns every open invoice and then every trust balance.
    uint64_t trust_after = 0;
    ml_msg_t *trust = ml_msg_new (ML_MSG_SNAPSHOT);
    while (ml_contract_trust_balances (contract, &trust_after, 1000, trust) > 0)
        ;
    ml_msg_t *snapshot = ml_msg_new (ML_MSG_SNAPSHOT);
    assert (ml_contract_snapshot_begin (contract) == 0);
    int read;
    while ((read = ml_contract_snapshot_next (contract, 9, snapshot)) > 0)
        assert (read <= 9);
    assert (read == 0);
    assert (snapshot->item_count == batch->item_count + trust->item_count);
    assert (snapshot->items[batch->item_count].kind == 'T');
    ml_contract_snapshot_end (contract);
    ml_msg_destroy (&snapshot);
    ml_msg_destroy (&trust);

    //  Searches: each criterion finds what it should; hostile text finds nothing.
    ml_msg_t *request = ml_msg_new (ML_MSG_SEARCH);
    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    ml_search_t *search = &request->search;
    search->target = 'I';
    search->match = 'E';
    search->field = ML_FIELD_INVOICE_NUMBER;
    search->limit = 500;
    search->deadline_ms = 2000;
    snprintf (search->text, sizeof search->text, "%s", batch->items[3].invoice_number);
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    assert (answer->item_count == 1 && answer->items[0].source_id == batch->items[3].source_id);
    //  Client number, exact, in lower case, pages of 2 that end with next = 0.
    search->field = ML_FIELD_CLIENT_NUMBER;
    snprintf (search->text, sizeof search->text, "%s", batch->items[0].client_number);
    for (char *cursor = search->text; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    size_t expected = 0;
    for (size_t index = 0; index < batch->item_count; index++)
        expected += strcmp (batch->items[index].client_number, batch->items[0].client_number) == 0;
    search->limit = 2;
    size_t found = 0;
    do {
        assert (ml_contract_search (contract, search, answer) == 0);
        assert (answer->code == ML_SEARCH_OK && answer->item_count <= 2);
        found += answer->item_count;
        search->after = answer->next;
    } while (answer->next);
    assert (found == expected);
    search->after = 0;
    search->limit = 500;
    const char *hostile[] = {"'; DROP TABLE invoice; --", "%", "_", "!%", "["};
    for (size_t index = 0; index < sizeof hostile / sizeof hostile[0]; index++) {
        search->field = ML_FIELD_CLIENT_NAME;
        search->match = 'C';
        snprintf (search->text, sizeof search->text, "%s", hostile[index]);
        assert (ml_contract_search (contract, search, answer) == 0);
        assert (answer->code == ML_SEARCH_OK && answer->item_count == 0);
    }
    memset (search->text, 'x', sizeof search->text - 1);
    search->text[sizeof search->text - 1] = 0;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    //  A scoped search with an empty scope shows nothing; an invoice scope shows only it.
    search->field = ML_FIELD_NONE;
    *search->text = 0;
    search->scoped = 1;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    assert (ml_msg_add_scope (request, ML_SCOPE_INVOICES, batch->items[5].invoice_number) == 0);
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 1);
    assert (answer->items[0].source_id == batch->items[5].source_id);
    search->target = 'T';
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    search->target = 'I';
    //  The longest statement: three scope lists, a field and every filter (the payer's view
    //  of one client's invoices by name), through the search views.
    assert (ml_msg_add_scope (request, ML_SCOPE_CLIENTS, batch->items[5].client_number) == 0);
    assert (ml_msg_add_scope (request, ML_SCOPE_MATTERS, batch->items[5].matter_number) == 0);
    search->field = ML_FIELD_CLIENT_NAME;
    search->match = 'E';
    snprintf (search->text, sizeof search->text, "%s", batch->items[5].client_name);
    strcpy (search->date_from, "2000-01-01");
    strcpy (search->date_to, "2100-01-01");
    search->amount_filter = ML_AMOUNT_MIN | ML_AMOUNT_MAX | ML_AMOUNT_CURRENCY;
    search->amount_min = 1;
    search->amount_max = INT64_MAX;
    strcpy (search->amount_currency, "USD");
    search->status = ML_STATUS_CURRENT;
    strcpy (search->as_of, "2000-01-01");
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    assert (answer->item_count >= 1 && answer->items[0].source_id <= batch->items[5].source_id);
    //  Each dialect's longest statement fits its buffer with room to spare.
    for (size_t index = 0; index < sizeof s_dialects / sizeof s_dialects[0]; index++) {
        s_statement_t statement = {.length = 0};
        s_search_values_t values = {.pattern = "x"};
        char *scope_json[3] = {NULL, NULL, NULL};
        s_search_statement (&statement, &s_dialects[index], search, &values,
                            s_dialects[index].search_keys, false, scope_json);
        if (verbose)
            printf ("%s: longest search statement %zu bytes\n", s_dialects[index].name,
                    statement.length);
        assert (statement.length < sizeof statement.sql * 3 / 4);
        for (int list = 0; list < 3; list++)
            free (scope_json[list]);
    }
    search->target = 'T';
    search->field = ML_FIELD_NONE;
    *search->text = *search->date_from = *search->date_to = 0;
    search->amount_filter = 0;
    search->status = ML_STATUS_ANY;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    ml_msg_destroy (&answer);
    ml_msg_destroy (&request);

    //  Pay the first open invoice in part and see the change.
    ml_item_t first = batch->items[0];
    uint64_t high_water = 0;
    assert (ml_contract_high_water (contract, &high_water) == 0);
    ml_msg_t *posting = ml_msg_new (ML_MSG_POSTING);
    strcpy (posting->posting.posting_uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.received_on, "2026-11-22");
    strcpy (posting->posting.account_number, "OP-001");
    strcpy (posting->posting.client_number, first.client_number);
    strcpy (posting->posting.currency, "USD");
    strcpy (posting->posting.payer_name, "Pat O'Brien");
    strcpy (posting->posting.ar_message, "front desk; \"cash\"");
    posting->posting.amount_minor = 1;
    ml_line_t line = {'I', "", 1};
    strcpy (line.reference, first.invoice_number);
    assert (ml_msg_set_lines (posting, &line, 1) == 0);
    ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "posted") == 0 && *result->receipt_id);
    assert (result->cursor > high_water);
    char receipt[64];
    strcpy (receipt, result->receipt_id);
    //  The same posting again returns the same receipt and writes nothing.
    uint64_t before = result->cursor;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->receipt_id, receipt) == 0 && result->cursor == before);
    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    uint64_t last = 0;
    assert (ml_contract_changes (contract, high_water, before, 100, changes, &last) >= 1);
    assert (last == before);
    bool seen = false;
    for (size_t index = 0; index < changes->item_count; index++)
        if (changes->items[index].source_id == first.source_id) {
            assert (changes->items[index].balance_minor == first.balance_minor - 1);
            seen = true;
        }
    assert (seen);

    //  Over the balance: a recorded business rejection, returned again on replay.
    strcpy (posting->posting.posting_uuid, "1f8fad5b-d9cb-469f-a165-70867728950e");
    posting->posting.amount_minor = first.total_minor + 1;
    posting->posting.lines[0].amount_minor = first.total_minor + 1;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "amount_over_balance") == 0);
    posting->posting.lines[0].amount_minor = 1;
    posting->posting.amount_minor = 1;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "amount_over_balance") == 0);

    //  A reversal of the first posting gives the amount back: a result of its own, "R-" and
    //  the reversal's id, and the invoice's balance restored; a second one would exceed it.
    strcpy (posting->posting.posting_uuid, "3f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.reverses, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.processor_txn, "re_1");
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "posted") == 0 && strncmp (result->receipt_id, "R-", 2) == 0);
    ml_msg_clear_items (changes);
    assert (ml_contract_changes (contract, before, result->cursor, 100, changes, &last) >= 1);
    assert (changes->items[changes->item_count - 1].source_id == first.source_id);
    assert (changes->items[changes->item_count - 1].balance_minor == first.balance_minor);
    strcpy (posting->posting.posting_uuid, "4f8fad5b-d9cb-469f-a165-70867728950e");
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "reversal_exceeds_original") == 0);
    *posting->posting.reverses = 0;

    //  A batch of three where the middle one is over its balance: rolled back as a whole,
    //  then applied one by one, so the other two post and the bad one is rejected.
    ml_msg_t *batch_postings[3], *batch_results[3];
    ml_posting_t *batch_view[3];
    for (int index = 0; index < 3; index++) {
        ml_item_t *item = &batch->items[index + 1];
        batch_postings[index] = ml_msg_new (ML_MSG_POSTING);
        ml_posting_t *entry = &batch_postings[index]->posting;
        snprintf (entry->posting_uuid, sizeof entry->posting_uuid,
                  "2f8fad5b-d9cb-469f-a165-70867728950%d", index);
        strcpy (entry->received_on, "2026-11-22");
        strcpy (entry->account_number, "OP-001");
        strcpy (entry->client_number, item->client_number);
        strcpy (entry->currency, "USD");
        entry->amount_minor = index == 1 ? item->balance_minor + 1 : 100;
        ml_line_t entry_line = {'I', "", entry->amount_minor};
        strcpy (entry_line.reference, item->invoice_number);
        assert (ml_msg_set_lines (batch_postings[index], &entry_line, 1) == 0);
        batch_view[index] = entry;
        batch_results[index] = ml_msg_new (ML_MSG_POSTING_RESULT);
    }
    assert (ml_contract_apply_batch (contract, batch_view, 3, batch_results) == 3);
    assert (strcmp (batch_results[0]->status, "posted") == 0);
    assert (strcmp (batch_results[1]->status, "rejected") == 0);
    assert (strcmp (batch_results[1]->reason, "amount_over_balance") == 0);
    assert (strcmp (batch_results[2]->status, "posted") == 0);
    //  Replayed as a batch: the same answers, nothing new written.
    assert (ml_contract_apply_batch (contract, batch_view, 3, batch_results) == 3);
    assert (strcmp (batch_results[0]->status, "posted") == 0 &&
            strcmp (batch_results[1]->status, "rejected") == 0);
    for (int index = 0; index < 3; index++) {
        ml_msg_destroy (&batch_postings[index]);
        ml_msg_destroy (&batch_results[index]);
    }

    ml_msg_destroy (&changes);
    ml_msg_destroy (&result);
    ml_msg_destroy (&posting);
    ml_msg_destroy (&batch);
    ml_contract_destroy (&contract);
    ml_contract_destroy (&contract);
    unlink (path);
    printf ("OK\n");
}
