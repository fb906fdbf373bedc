/*  ml_store's PostgreSQL-only writes: the replica's upsert by arrays (see ml_store_pg.h).

    On SQLite a reused statement per 50 rows is as fast as it gets; on PostgreSQL every
    statement is a round trip to the server, so a snapshot's 10,000-row flush goes in one
    statement: each column an array literal, unnested into rows server-side
    (justin0u0/pginsert-bench measured unnest at about 2.3 times batched INSERTs).
*/
#include "ml_store_pg.h"
#include "ml_db_internal.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TEXT_COLUMNS 10
#define S_INT_COLUMNS  4

//  One statement for any number of rows. The replica row is written whole, so replacing it
//  is an upsert (never a delete and insert: the totals triggers count every change).
static const char *s_upsert_sql =
    "INSERT INTO open_item (firm_id, kind, source_id, invoice_number, invoice_date, due_date,"
    " client_number, client_name, matter_number, matter_description, currency, total_minor,"
    " balance_minor, status, generation, change_id)"
    " SELECT ?, u.kind, u.source_id, u.invoice_number, u.invoice_date, u.due_date,"
    " u.client_number, u.client_name, u.matter_number, u.matter_description, u.currency,"
    " u.total_minor, u.balance_minor, u.status, ?, u.change_id"
    " FROM unnest (?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
    " ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])"
    " AS u (kind, invoice_number, invoice_date, due_date, client_number, client_name,"
    " matter_number, matter_description, currency, status, source_id, total_minor,"
    " balance_minor, change_id)"
    " ON CONFLICT (firm_id, kind, source_id) DO UPDATE SET"
    " invoice_number = excluded.invoice_number, invoice_date = excluded.invoice_date,"
    " due_date = excluded.due_date, client_number = excluded.client_number,"
    " client_name = excluded.client_name, matter_number = excluded.matter_number,"
    " matter_description = excluded.matter_description, currency = excluded.currency,"
    " total_minor = excluded.total_minor, balance_minor = excluded.balance_minor,"
    " status = excluded.status, generation = excluded.generation,"
    " change_id = excluded.change_id";

typedef struct {
    char *text;
    size_t length, size;
} s_array_t;

static void s_reserve (s_array_t *array, size_t more)
{
    if (array->length + more + 2 > array->size) {
        array->size = (array->length + more + 2) * 2;
        array->text = realloc (array->text, array->size);
        assert (array->text);
    }
}

//  Add one element to an array literal: quoted, with '"' and '\' escaped (every element is
//  quoted, so no text can end the literal or read as NULL).
static void s_add_text (s_array_t *array, const char *value)
{
    size_t length = strlen (value);
    s_reserve (array, 2 * length + 4);
    if (array->length > 1)
        array->text[array->length++] = ',';
    array->text[array->length++] = '"';
    for (const char *cursor = value; *cursor; cursor++) {
        if (*cursor == '"' || *cursor == '\\')
            array->text[array->length++] = '\\';
        array->text[array->length++] = *cursor;
    }
    array->text[array->length++] = '"';
    array->text[array->length] = 0;
}

static void s_add_number (s_array_t *array, int64_t value)
{
    s_reserve (array, 24);
    if (array->length > 1)
        array->text[array->length++] = ',';
    array->length += (size_t)snprintf (array->text + array->length, 24, "%" PRId64, value);
}

//  Start every array empty ("{" so far; s_add_* put ',' between elements).
static void s_start (s_array_t *arrays, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        s_reserve (&arrays[index], 1);
        arrays[index].length = 1;
        arrays[index].text[0] = '{';
        arrays[index].text[1] = 0;
    }
}

bool ml_store_pg_upsert_items (ml_db_t *db, const char *firm_id, const ml_item_t *items,
                               size_t count, int64_t generation)
{
    s_array_t arrays[S_TEXT_COLUMNS + S_INT_COLUMNS] = {{0}};
    //  An item twice in one statement is refused by PostgreSQL (ON CONFLICT cannot touch a
    //  row twice): the second starts the next statement, so the last one still wins.
    zhashx_t *seen = zhashx_new ();
    assert (seen);
    bool ok = true;
    size_t first = 0;
    while (ok && first < count) {
        s_start (arrays, S_TEXT_COLUMNS + S_INT_COLUMNS);
        zhashx_purge (seen);
        size_t row = first;
        for (; row < count; row++) {
            const ml_item_t *item = &items[row];
            char key[32];
            snprintf (key, sizeof key, "%c%" PRIu64, item->kind, item->source_id);
            if (zhashx_insert (seen, key, (void *)1) != 0)
                break;
            char kind[2] = {item->kind, 0};
            const char *texts[S_TEXT_COLUMNS] = {kind,
                                                 item->invoice_number,
                                                 item->invoice_date,
                                                 item->due_date,
                                                 item->client_number,
                                                 item->client_name,
                                                 item->matter_number,
                                                 item->matter_description,
                                                 item->currency,
                                                 item->status};
            for (size_t column = 0; column < S_TEXT_COLUMNS; column++)
                s_add_text (&arrays[column], texts[column]);
            int64_t numbers[S_INT_COLUMNS] = {(int64_t)item->source_id, item->total_minor,
                                              item->balance_minor, (int64_t)item->change_id};
            for (size_t column = 0; column < S_INT_COLUMNS; column++)
                s_add_number (&arrays[S_TEXT_COLUMNS + column], numbers[column]);
        }
        for (size_t column = 0; column < S_TEXT_COLUMNS + S_INT_COLUMNS; column++) {
            s_reserve (&arrays[column], 1);
            arrays[column].text[arrays[column].length++] = '}';
            arrays[column].text[arrays[column].length] = 0;
        }
        ml_db_value_t values[2 + S_TEXT_COLUMNS + S_INT_COLUMNS] = {{0}};
        values[0].text = firm_id;
        values[1].number = generation;
        for (size_t column = 0; column < S_TEXT_COLUMNS + S_INT_COLUMNS; column++)
            values[2 + column].text = arrays[column].text;
        //  Deferred: it rides with the transaction's next round trip (a change batch's
        //  COMMIT), and should it fail, that fails.
        ok = ml_db_defer_values (db, s_upsert_sql, "sissssssssssssss", values) == 0;
        first = row;
    }
    for (size_t column = 0; column < S_TEXT_COLUMNS + S_INT_COLUMNS; column++)
        free (arrays[column].text);
    zhashx_destroy (&seen);
    return ok;
}

//  ---------------------------------------------------------------------------------------
//  The snapshot's bulk load (store version 5)

//  Rows per COPY, at most: a COPY is a round trip, and its rows wait in memory meanwhile.
#define S_LOAD_ROWS 10000

struct _ml_store_pg_load_t {
    char firm_id[64];
    int64_t generation;
    char table[64]; //  the load table of the rows held ("" while none was needed)
    s_array_t data; //  rows in COPY's text format
    size_t rows;
    //  Rows held without a table, up to the last commit that wrote some (the rest are the
    //  open transaction's, dropped if it fails); their kinds and source ids while few
    //  enough for the small path, and whether the snapshot carried one twice.
    size_t kept_length, kept_rows;
    zhashx_t *keys;
    bool duplicate;
    //  The snapshots ("firm generation") whose load table this connection made: their rows
    //  may be there as well as held, when another firm's came in between.
    zhashx_t *tabled;
};

static void s_snapshot_key (char *key, size_t size, const char *firm_id, int64_t generation)
{
    snprintf (key, size, "%s %" PRId64, firm_id, generation);
}

ml_store_pg_load_t *ml_store_pg_load_new (void)
{
    ml_store_pg_load_t *self = calloc (1, sizeof (ml_store_pg_load_t));
    assert (self);
    self->keys = zhashx_new ();
    self->tabled = zhashx_new ();
    assert (self->keys && self->tabled);
    return self;
}

void ml_store_pg_load_destroy (ml_store_pg_load_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->data.text);
        zhashx_destroy (&(*self_p)->keys);
        zhashx_destroy (&(*self_p)->tabled);
        free (*self_p);
        *self_p = NULL;
    }
}

//  One text field of COPY's text format: backslash, tab, newline and carriage return
//  escaped, so no value can end the field or the row; never NULL (\N), as the upsert wrote ''.
static void s_copy_text (s_array_t *data, const char *value, char end)
{
    size_t length = strlen (value);
    s_reserve (data, 2 * length + 2);
    for (const char *cursor = value; *cursor; cursor++) {
        char c = *cursor;
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            data->text[data->length++] = '\\';
            c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
        }
        data->text[data->length++] = c;
    }
    data->text[data->length++] = end;
    data->text[data->length] = 0;
}

static void s_copy_number (s_array_t *data, int64_t value, char end)
{
    s_reserve (data, 24);
    data->length += (size_t)snprintf (data->text + data->length, 22, "%" PRId64, value);
    data->text[data->length++] = end;
    data->text[data->length] = 0;
}

int ml_store_pg_load_table (ml_db_t *db, const char *firm_id, int64_t generation, char *name,
                            size_t size)
{
    ml_db_query_t *query =
        ml_db_query (db, "SELECT ml_replica_load (?, ?)", "si", firm_id, generation);
    int rc = query && ml_db_fetch (query) == 1 && ml_db_text (query, 0) ? 0 : -1;
    if (rc == 0)
        snprintf (name, size, "%s", ml_db_text (query, 0));
    ml_db_query_destroy (&query);
    return rc;
}

//  The rows held, of no firm yet.
static void s_load_reset (ml_store_pg_load_t *self)
{
    *self->firm_id = 0;
    *self->table = 0;
    self->generation = 0;
    self->data.length = self->rows = self->kept_length = self->kept_rows = 0;
    zhashx_purge (self->keys);
    self->duplicate = false;
}

//  The COPY of data into table (open_item_..., ml_replica_load's name, or open_item).
static int s_copy (ml_db_t *db, const char *table, const s_array_t *data)
{
    char sql[512];
    snprintf (sql, sizeof sql,
              "COPY %s (firm_id, kind, source_id, invoice_number, invoice_date, due_date,"
              " client_number, client_name, matter_number, matter_description, currency,"
              " total_minor, balance_minor, status, generation, change_id) FROM STDIN",
              table);
    return ml_db_pg_copy (db, sql, data->text, data->length);
}

//  The rows held go to their load table (made first if need be): from then on the snapshot
//  takes the load table's path at its end. Returns 0 or -1.
static int s_load_send (ml_store_pg_load_t *self, ml_db_t *db)
{
    if (!*self->table) {
        if (ml_store_pg_load_table (db, self->firm_id, self->generation, self->table,
                                    sizeof self->table) != 0)
            return -1;
        char key[96];
        s_snapshot_key (key, sizeof key, self->firm_id, self->generation);
        zhashx_update (self->tabled, key, (void *)1);
    }
    int rc = self->rows ? s_copy (db, self->table, &self->data) : 0;
    self->data.length = self->rows = self->kept_length = self->kept_rows = 0;
    zhashx_purge (self->keys);
    return rc;
}

int ml_store_pg_load_commit (ml_store_pg_load_t *self, ml_db_t *db, bool ok)
{
    if (!ok) {
        //  The failed transaction's rows: every one since the last send to a table, or
        //  since the last commit while none is needed.
        self->data.length = *self->table ? 0 : self->kept_length;
        self->rows = *self->table ? 0 : self->kept_rows;
        if (self->data.text)
            self->data.text[self->data.length] = 0;
        return 0;
    }
    if (*self->table)
        return s_load_send (self, db);
    self->kept_length = self->data.length;
    self->kept_rows = self->rows;
    return 0;
}

int ml_store_pg_load_add (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id,
                          int64_t generation, const ml_item_t *items, size_t count)
{
    if (strcmp (self->firm_id, firm_id) != 0 || self->generation != generation) {
        //  Another firm's rows go to their table first; an earlier generation of this firm
        //  is an abandoned session's, dropped.
        if (*self->firm_id && strcmp (self->firm_id, firm_id) != 0 && s_load_send (self, db) != 0)
            return -1;
        if (*self->firm_id && streq (self->firm_id, firm_id)) {
            char key[96];
            s_snapshot_key (key, sizeof key, self->firm_id, self->generation);
            zhashx_delete (self->tabled, key);
        }
        s_load_reset (self);
        snprintf (self->firm_id, sizeof self->firm_id, "%s", firm_id);
        self->generation = generation;
    }
    for (size_t index = 0; index < count; index++) {
        const ml_item_t *item = &items[index];
        if (!*self->table && !self->duplicate && self->rows < ML_STORE_PG_SMALL_ROWS) {
            char key[32];
            snprintf (key, sizeof key, "%c%" PRIu64, item->kind, item->source_id);
            self->duplicate = zhashx_insert (self->keys, key, (void *)1) != 0;
        }
        char kind[2] = {item->kind, 0};
        s_copy_text (&self->data, firm_id, '\t');
        s_copy_text (&self->data, kind, '\t');
        s_copy_number (&self->data, (int64_t)item->source_id, '\t');
        const char *texts[] = {item->invoice_number,     item->invoice_date, item->due_date,
                               item->client_number,      item->client_name,  item->matter_number,
                               item->matter_description, item->currency};
        for (size_t column = 0; column < sizeof texts / sizeof texts[0]; column++)
            s_copy_text (&self->data, texts[column], '\t');
        s_copy_number (&self->data, item->total_minor, '\t');
        s_copy_number (&self->data, item->balance_minor, '\t');
        s_copy_text (&self->data, item->status, '\t');
        s_copy_number (&self->data, generation, '\t');
        s_copy_number (&self->data, (int64_t)item->change_id, '\n');
        self->rows++;
    }
    return self->rows >= S_LOAD_ROWS ? s_load_send (self, db) : 0;
}

bool ml_store_pg_load_small (ml_store_pg_load_t *self, const char *firm_id, int64_t generation)
{
    char key[96];
    s_snapshot_key (key, sizeof key, firm_id, generation);
    return streq (self->firm_id, firm_id) && self->generation == generation && !*self->table &&
           !zhashx_lookup (self->tabled, key) && !self->duplicate &&
           self->rows <= ML_STORE_PG_SMALL_ROWS;
}

int ml_store_pg_load_finish (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id,
                             int64_t generation)
{
    int rc = 0;
    if (streq (self->firm_id, firm_id) && self->generation == generation)
        rc = s_load_send (self, db);
    char key[96];
    s_snapshot_key (key, sizeof key, firm_id, generation);
    zhashx_delete (self->tabled, key);
    return rc;
}

int ml_store_pg_load_replace (ml_store_pg_load_t *self, ml_db_t *db, const char *firm_id)
{
    bool ok = ml_db_execute (db, "DELETE FROM open_item WHERE firm_id = ?", "s", firm_id) >= 0 &&
              (!self->rows || s_copy (db, "open_item", &self->data) == 0);
    s_load_reset (self);
    return ok ? 0 : -1;
}

int ml_store_pg_load_vacuum (ml_db_t *db, const char *table)
{
    char sql[128];
    snprintf (sql, sizeof sql, "VACUUM (ANALYZE) %s", table);
    return ml_db_execute (db, sql, NULL) >= 0 ? 0 : -1;
}

int ml_store_pg_load_index (ml_db_t *db, const char *firm_id, int64_t generation)
{
    return ml_db_execute (db, "SELECT ml_replica_index (?, ?)", "si", firm_id, generation) >= 0
               ? 0
               : -1;
}

int ml_store_pg_load_swap (ml_db_t *db, const char *firm_id, int64_t generation)
{
    return ml_db_execute (db, "SELECT ml_replica_swap (?, ?)", "si", firm_id, generation) >= 0 ? 0
                                                                                               : -1;
}

void ml_store_pg_load_tidy (ml_db_t *db, const char *firm_id, int64_t generation)
{
    ml_db_execute (db, "SELECT ml_replica_tidy (?, ?)", "si", firm_id, generation);
}

void ml_store_pg_test (ml_db_t *db)
{
    //  A replica table keyed as the store's (ml_store.c), without its triggers.
    ml_db_execute (db, "DROP TABLE IF EXISTS open_item", NULL);
    assert (ml_db_execute (db,
                           "CREATE TABLE open_item (firm_id TEXT NOT NULL, kind TEXT NOT NULL,"
                           " source_id INTEGER NOT NULL, invoice_number TEXT, invoice_date TEXT,"
                           " due_date TEXT, client_number TEXT, client_name TEXT,"
                           " matter_number TEXT, matter_description TEXT, currency TEXT NOT NULL,"
                           " total_minor INTEGER, balance_minor INTEGER NOT NULL, status TEXT,"
                           " generation INTEGER NOT NULL, change_id INTEGER NOT NULL,"
                           " PRIMARY KEY (firm_id, kind, source_id))",
                           NULL) == 0);
    ml_item_t items[5];
    memset (items, 0, sizeof items);
    const char *names[5] = {"Plain", "Quote \" and \\ back", "Comma, {brace}", "", "NULL"};
    for (size_t index = 0; index < 5; index++) {
        items[index].kind = index == 1 ? 'T' : 'I';
        items[index].source_id = index < 4 ? index + 1 : 1; //  the last changes item 1 again
        snprintf (items[index].client_name, sizeof items[index].client_name, "%s", names[index]);
        snprintf (items[index].currency, sizeof items[index].currency, "USD");
        items[index].balance_minor = index == 4 ? INT64_MAX : -(int64_t)index;
        items[index].change_id = index;
    }
    assert (ml_store_pg_upsert_items (db, "acme", items, 5, 7));
    ml_db_query_t *query =
        ml_db_query (db,
                     "SELECT kind, source_id, client_name, balance_minor, generation FROM open_item"
                     " ORDER BY source_id, kind",
                     NULL);
    assert (query);
    const char *expected[4][5] = {{"I", "1", "NULL", "9223372036854775807", "7"},
                                  {"T", "2", "Quote \" and \\ back", "-1", "7"},
                                  {"I", "3", "Comma, {brace}", "-2", "7"},
                                  {"I", "4", "", "-3", "7"}};
    for (size_t row = 0; row < 4; row++) {
        assert (ml_db_fetch (query) == 1);
        for (int column = 0; column < 5; column++)
            assert (streq (ml_db_text (query, column), expected[row][column]));
    }
    assert (ml_db_fetch (query) == 0);
    ml_db_query_destroy (&query);
    assert (ml_db_execute (db, "DROP TABLE open_item", NULL) == 0);
}
