/*  ml_db: the core's store connection, native SQLite (see include/ml_db.h). */
#include "ml_db.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  More distinct statements than this (the store's SQL is ours and finite; a few are built
//  from the filters given) and new ones run without being kept.
#define S_CACHE_MAX      512
#define S_PARAMETERS_MAX 2048

typedef struct {
    sqlite3_stmt *statement;
    bool busy; //  an open query is reading it
} s_cached_t;

struct _ml_db_t {
    sqlite3 *handle;
    int timeout_ms;     //  how long a statement waits for another connection's write lock
    int64_t busy_since; //  monotonic ms the current wait began
    zhashx_t *cache;    //  SQL text -> s_cached_t
    ml_db_error_t error;
    size_t prepared, reused;
};

struct _ml_db_query_t {
    ml_db_t *db;
    sqlite3_stmt *statement;
    s_cached_t *cached; //  NULL: a statement of its own, finalized on destroy
};

static void s_set_error (ml_db_error_t *error, ml_db_class_t kind, long native, const char *message)
{
    memset (error, 0, sizeof *error);
    error->kind = kind;
    error->native = native;
    snprintf (error->sqlstate, sizeof error->sqlstate, "%s",
              kind == ML_DB_DATA ? "23000" : "HY000");
    snprintf (error->message, sizeof error->message, "%s", message);
}

static ml_db_class_t s_classify (int code)
{
    switch (code & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return ML_DB_RETRY;
        case SQLITE_INTERRUPT:
            return ML_DB_TIMEOUT;
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_TOOBIG:
        case SQLITE_RANGE:
            return ML_DB_DATA;
        case SQLITE_CANTOPEN:
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT:
        case SQLITE_IOERR:
            return ML_DB_LOST;
        default:
            return ML_DB_OTHER;
    }
}

//  Record the connection's last error.
static void s_collect (ml_db_t *self)
{
    int code = sqlite3_extended_errcode (self->handle);
    s_set_error (&self->error, s_classify (code), code, sqlite3_errmsg (self->handle));
}

static void s_cached_destroy (void **item)
{
    s_cached_t *cached = (s_cached_t *)*item;
    if (cached) {
        sqlite3_finalize (cached->statement);
        free (cached);
        *item = NULL;
    }
}

//  Read "key=value;key=value" (values may be in braces). Returns 0, or -1 with error set.
static int s_parse (const char *connection, char *path, size_t path_size, int *timeout_ms,
                    bool *foreign_keys, ml_db_error_t *error)
{
    *path = 0;
    *timeout_ms = 5000;
    *foreign_keys = true;
    if (strncmp (connection, "sqlite:", 7) == 0 || !strchr (connection, '=')) {
        const char *file = strncmp (connection, "sqlite:", 7) == 0 ? connection + 7 : connection;
        if (!*file || strlen (file) >= path_size) {
            s_set_error (error, ML_DB_OTHER, 0, "the store's path is empty or too long");
            return -1;
        }
        snprintf (path, path_size, "%s", file);
        return 0;
    }
    const char *cursor = connection;
    bool sqlite = false;
    while (*cursor) {
        const char *equals = strchr (cursor, '=');
        if (!equals) {
            s_set_error (error, ML_DB_OTHER, 0,
                         "the store's connection is KEY=VALUE pairs separated by ';'");
            return -1;
        }
        char key[32];
        size_t key_length = (size_t)(equals - cursor);
        while (key_length && cursor[key_length - 1] == ' ')
            key_length--;
        while (*cursor == ' ' && key_length) {
            cursor++;
            key_length--;
        }
        if (key_length == 0 || key_length >= sizeof key) {
            s_set_error (error, ML_DB_OTHER, 0, "the store's connection has an empty or long key");
            return -1;
        }
        memcpy (key, cursor, key_length);
        key[key_length] = 0;
        const char *value = equals + 1, *end;
        size_t length;
        if (*value == '{') {
            end = strchr (value, '}');
            if (!end) {
                s_set_error (error, ML_DB_OTHER, 0, "the store's connection has an unclosed '{'");
                return -1;
            }
            value++;
            length = (size_t)(end - value);
            end++;
        } else {
            end = strchr (value, ';');
            if (!end)
                end = value + strlen (value);
            length = (size_t)(end - value);
        }
        char text[4096];
        if (length >= sizeof text) {
            s_set_error (error, ML_DB_OTHER, 0, "the store's connection has a value too long");
            return -1;
        }
        memcpy (text, value, length);
        text[length] = 0;
        if (strcasecmp (key, "Driver") == 0) {
            if (strcasecmp (text, "SQLite3") != 0 && strcasecmp (text, "SQLite") != 0) {
                s_set_error (error, ML_DB_OTHER, 0,
                             "the core's store is SQLite (Driver=SQLite3 or a file path); "
                             "another engine is not supported by this core");
                return -1;
            }
            sqlite = true;
        } else if (strcasecmp (key, "Database") == 0) {
            if (!*text || length >= path_size) {
                s_set_error (error, ML_DB_OTHER, 0, "the store's Database= is empty or too long");
                return -1;
            }
            snprintf (path, path_size, "%s", text);
        } else if (strcasecmp (key, "Timeout") == 0) {
            char *stop = NULL;
            errno = 0;
            long value_ms = strtol (text, &stop, 10);
            if (errno || stop == text || *stop || value_ms < 0 || value_ms > 3600000) {
                s_set_error (error, ML_DB_OTHER, 0,
                             "the store's Timeout= is milliseconds from 0 to 3600000");
                return -1;
            }
            *timeout_ms = (int)value_ms;
        } else if (strcasecmp (key, "FKSupport") == 0)
            *foreign_keys = strcmp (text, "0") != 0;
        else if (strcasecmp (key, "StepAPI") != 0 && strcasecmp (key, "SyncPragma") != 0 &&
                 strcasecmp (key, "NoWCHAR") != 0 && strcasecmp (key, "BigInt") != 0 &&
                 strcasecmp (key, "LongNames") != 0) {
            //  Settings of the old ODBC driver that mean nothing here are accepted; any other
            //  key is a mistake that must not pass silently.
            char message[128];
            snprintf (message, sizeof message, "the store's connection has an unknown key '%s'",
                      key);
            s_set_error (error, ML_DB_OTHER, 0, message);
            return -1;
        }
        cursor = *end == ';' ? end + 1 : end;
    }
    if (!sqlite || !*path) {
        s_set_error (error, ML_DB_OTHER, 0,
                     "the store's connection needs Driver=SQLite3 and Database=PATH");
        return -1;
    }
    return 0;
}

//  Called while any connection waits for another's write lock (ml_db_set_waiting_hook).
static _Atomic (ml_db_waiting_fn *) s_waiting_hook;

void ml_db_set_waiting_hook (ml_db_waiting_fn *hook)
{
    s_waiting_hook = hook;
}

//  SQLite's busy handler: tell the hook (the ingest thread commits its transaction early),
//  and try again every millisecond up to the timeout. (SQLite's own handler backs off to
//  100 ms between tries: a lock freed in 5 ms was then taken up to 100 ms late.)
static int s_busy (void *arg, int count)
{
    ml_db_t *self = (ml_db_t *)arg;
    int64_t now = zclock_mono ();
    if (count == 0)
        self->busy_since = now;
    if (now - self->busy_since >= self->timeout_ms)
        return 0;
    ml_db_waiting_fn *hook = s_waiting_hook;
    if (hook)
        hook ();
    zclock_sleep (1);
    return 1;
}

ml_db_t *ml_db_new (const char *connection, ml_db_error_t *error)
{
    assert (connection && error);
    char path[4096];
    int timeout_ms;
    bool foreign_keys;
    if (s_parse (connection, path, sizeof path, &timeout_ms, &foreign_keys, error) != 0)
        return NULL;
    ml_db_t *self = calloc (1, sizeof (ml_db_t));
    assert (self);
    int rc =
        sqlite3_open_v2 (path, &self->handle,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        char message[512];
        snprintf (message, sizeof message, "cannot open the store file: %s",
                  self->handle ? sqlite3_errmsg (self->handle) : sqlite3_errstr (rc));
        s_set_error (error, s_classify (rc), rc, message);
        sqlite3_close (self->handle);
        free (self);
        return NULL;
    }
    sqlite3_extended_result_codes (self->handle, 1);
    self->timeout_ms = timeout_ms;
    sqlite3_busy_handler (self->handle, s_busy, self);
    self->cache = zhashx_new ();
    assert (self->cache);
    zhashx_set_destructor (self->cache, s_cached_destroy);
    if (ml_db_execute (self,
                       foreign_keys ? "PRAGMA foreign_keys = ON" : "PRAGMA foreign_keys = OFF",
                       NULL) < 0) {
        *error = self->error;
        ml_db_destroy (&self);
        return NULL;
    }
    return self;
}

void ml_db_destroy (ml_db_t **self_p)
{
    assert (self_p);
    ml_db_t *self = *self_p;
    if (self) {
        if (self->handle && !sqlite3_get_autocommit (self->handle))
            sqlite3_exec (self->handle, "ROLLBACK", NULL, NULL, NULL);
        zhashx_destroy (&self->cache);
        sqlite3_close (self->handle);
        free (self);
        *self_p = NULL;
    }
}

const ml_db_error_t *ml_db_error (ml_db_t *self)
{
    assert (self);
    return &self->error;
}

const char *ml_db_class_name (ml_db_class_t kind)
{
    static const char *names[] = {"ok", "connection lost", "retry", "timeout", "data", "other"};
    return kind <= ML_DB_OTHER ? names[kind] : "other";
}

//  A statement for sql: the cached one when it is free, else a new one (kept in the cache
//  when there is room). Returns the statement, or NULL with the error set.
static sqlite3_stmt *s_statement (ml_db_t *self, const char *sql, s_cached_t **cached_p)
{
    *cached_p = NULL;
    s_cached_t *cached = (s_cached_t *)zhashx_lookup (self->cache, sql);
    if (cached && !cached->busy) {
        cached->busy = true;
        *cached_p = cached;
        self->reused++;
        return cached->statement;
    }
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v3 (self->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, NULL) !=
        SQLITE_OK) {
        s_collect (self);
        return NULL;
    }
    self->prepared++;
    if (!cached && zhashx_size (self->cache) < S_CACHE_MAX) {
        cached = calloc (1, sizeof (s_cached_t));
        assert (cached);
        cached->statement = statement;
        cached->busy = true;
        zhashx_insert (self->cache, sql, cached);
        *cached_p = cached;
    }
    return statement;
}

static void s_release (sqlite3_stmt *statement, s_cached_t *cached)
{
    if (cached) {
        sqlite3_reset (statement);
        sqlite3_clear_bindings (statement);
        cached->busy = false;
    } else
        sqlite3_finalize (statement);
}

//  Bind picture's parameters from values. Returns 0 or -1 with the error set.
static int s_bind (ml_db_t *self, sqlite3_stmt *statement, const char *picture,
                   const ml_db_value_t *values)
{
    size_t count = picture ? strlen (picture) : 0;
    if ((int)count != sqlite3_bind_parameter_count (statement)) {
        s_set_error (&self->error, ML_DB_OTHER, 0,
                     "a statement's parameters do not match its picture (a bug)");
        return -1;
    }
    for (size_t index = 0; index < count; index++) {
        int rc;
        int position = (int)index + 1;
        if (picture[index] == 'i')
            rc = sqlite3_bind_int64 (statement, position, values[index].number);
        else if (picture[index] == 's')
            rc = values[index].text ? sqlite3_bind_text (statement, position, values[index].text,
                                                         -1, SQLITE_TRANSIENT)
                                    : sqlite3_bind_null (statement, position);
        else {
            s_set_error (&self->error, ML_DB_OTHER, 0, "a picture has an unknown letter (a bug)");
            return -1;
        }
        if (rc != SQLITE_OK) {
            s_collect (self);
            return -1;
        }
    }
    return 0;
}

//  Fill values from the variable arguments of picture.
static size_t s_values (const char *picture, va_list arguments, ml_db_value_t *values,
                        size_t capacity)
{
    size_t count = picture ? strlen (picture) : 0;
    assert (count <= capacity);
    for (size_t index = 0; index < count; index++) {
        if (picture[index] == 'i')
            values[index].number = va_arg (arguments, int64_t);
        else
            values[index].text = va_arg (arguments, const char *);
    }
    return count;
}

//  Run statement to its end. Returns the rows changed, or -1.
static int64_t s_run (ml_db_t *self, sqlite3_stmt *statement)
{
    int rc;
    while ((rc = sqlite3_step (statement)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        s_collect (self);
        return -1;
    }
    return sqlite3_changes64 (self->handle);
}

int64_t ml_db_execute (ml_db_t *self, const char *sql, const char *picture, ...)
{
    assert (self && sql);
    ml_db_value_t values[64] = {{0}};
    va_list arguments;
    va_start (arguments, picture);
    s_values (picture, arguments, values, 64);
    va_end (arguments);
    s_cached_t *cached;
    sqlite3_stmt *statement = s_statement (self, sql, &cached);
    if (!statement)
        return -1;
    int64_t changed = s_bind (self, statement, picture, values) == 0 ? s_run (self, statement) : -1;
    s_release (statement, cached);
    return changed;
}

int ml_db_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                        const ml_db_value_t *values)
{
    assert (self && sql && picture);
    size_t width = strlen (picture);
    if (width == 0 || width > S_PARAMETERS_MAX) {
        s_set_error (&self->error, ML_DB_OTHER, 0,
                     "a batch's picture is empty or too wide (a bug)");
        return -1;
    }
    s_cached_t *cached;
    sqlite3_stmt *statement = s_statement (self, sql, &cached);
    if (!statement)
        return -1;
    int result = 0;
    for (size_t row = 0; row < rows && result == 0; row++) {
        if (s_bind (self, statement, picture, values + row * width) != 0 ||
            s_run (self, statement) < 0)
            result = -1;
        sqlite3_reset (statement);
    }
    s_release (statement, cached);
    return result;
}

ml_db_query_t *ml_db_query_values (ml_db_t *self, const char *sql, const char *picture,
                                   const ml_db_value_t *values)
{
    assert (self && sql);
    s_cached_t *cached;
    sqlite3_stmt *statement = s_statement (self, sql, &cached);
    if (!statement)
        return NULL;
    if (s_bind (self, statement, picture, values) != 0) {
        s_release (statement, cached);
        return NULL;
    }
    ml_db_query_t *query = calloc (1, sizeof (ml_db_query_t));
    assert (query);
    query->db = self;
    query->statement = statement;
    query->cached = cached;
    return query;
}

ml_db_query_t *ml_db_query (ml_db_t *self, const char *sql, const char *picture, ...)
{
    ml_db_value_t values[64] = {{0}};
    va_list arguments;
    va_start (arguments, picture);
    s_values (picture, arguments, values, 64);
    va_end (arguments);
    return ml_db_query_values (self, sql, picture, values);
}

int ml_db_fetch (ml_db_query_t *self)
{
    assert (self);
    int rc = sqlite3_step (self->statement);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    s_collect (self->db);
    return -1;
}

int ml_db_columns (ml_db_query_t *self)
{
    assert (self);
    return sqlite3_column_count (self->statement);
}

const char *ml_db_column_name (ml_db_query_t *self, int column)
{
    assert (self);
    const char *name = sqlite3_column_name (self->statement, column);
    return name ? name : "";
}

const char *ml_db_text (ml_db_query_t *self, int column)
{
    assert (self);
    if (column < 0 || column >= sqlite3_column_count (self->statement) ||
        sqlite3_column_type (self->statement, column) == SQLITE_NULL)
        return NULL;
    return (const char *)sqlite3_column_text (self->statement, column);
}

bool ml_db_truncated (ml_db_query_t *self, int column)
{
    (void)self;
    (void)column;
    return false;
}

int ml_db_int64 (ml_db_query_t *self, int column, int64_t *value)
{
    assert (self && value);
    if (column < 0 || column >= sqlite3_column_count (self->statement))
        return -1;
    int type = sqlite3_column_type (self->statement, column);
    if (type == SQLITE_INTEGER) {
        *value = sqlite3_column_int64 (self->statement, column);
        return 0;
    }
    if (type != SQLITE_TEXT)
        return -1;
    //  A number stored as text reads as one only when it is exactly an integer.
    const char *text = (const char *)sqlite3_column_text (self->statement, column);
    char *stop = NULL;
    errno = 0;
    long long number = strtoll (text, &stop, 10);
    if (!*text || errno || *stop)
        return -1;
    *value = number;
    return 0;
}

void ml_db_query_destroy (ml_db_query_t **self_p)
{
    assert (self_p);
    ml_db_query_t *self = *self_p;
    if (self) {
        s_release (self->statement, self->cached);
        free (self);
        *self_p = NULL;
    }
}

int ml_db_begin (ml_db_t *self)
{
    assert (self);
    return ml_db_execute (self, "BEGIN IMMEDIATE", NULL) < 0 ? -1 : 0;
}

int ml_db_commit (ml_db_t *self)
{
    assert (self);
    return ml_db_execute (self, "COMMIT", NULL) < 0 ? -1 : 0;
}

int ml_db_rollback (ml_db_t *self)
{
    assert (self);
    if (sqlite3_get_autocommit (self->handle))
        return 0;
    return ml_db_execute (self, "ROLLBACK", NULL) < 0 ? -1 : 0;
}

void ml_db_statement_counts (ml_db_t *self, size_t *prepared, size_t *reused)
{
    assert (self);
    if (prepared)
        *prepared = self->prepared;
    if (reused)
        *reused = self->reused;
}

void ml_db_test (bool verbose)
{
    if (verbose)
        printf (" * ml_db: ");
    char directory[] = "/tmp/ml_db_test_XXXXXX";
    assert (mkdtemp (directory));
    char connection[256];
    ml_db_error_t error;

    //  Connection strings: the old ODBC form, a path, and mistakes named.
    assert (!ml_db_new ("Driver=PostgreSQL;Database=x", &error));
    assert (strstr (error.message, "another engine"));
    assert (!ml_db_new ("Driver=SQLite3;Database=/tmp/x;Colour=blue", &error));
    assert (strstr (error.message, "unknown key 'Colour'"));
    assert (!ml_db_new ("Driver=SQLite3;Timeout=-1;Database=/tmp/x", &error));
    assert (strstr (error.message, "Timeout"));
    assert (!ml_db_new ("Driver=SQLite3", &error));
    assert (!ml_db_new ("sqlite:/nonexistent/dir/store.db", &error));
    assert (strstr (error.message, "cannot open"));
    snprintf (connection, sizeof connection,
              "Driver=SQLite3; Database={%s/store.db};StepAPI=1;FKSupport=1;Timeout=200",
              directory);
    ml_db_t *db = ml_db_new (connection, &error);
    assert (db);

    assert (ml_db_execute (db,
                           "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                           " amount INTEGER, note TEXT)",
                           NULL) == 0);
    assert (ml_db_execute (db, "INSERT INTO t (name, amount, note) VALUES (?, ?, ?)", "sis", "a",
                           (int64_t)INT64_MAX, NULL) == 1);
    assert (ml_db_execute (db, "INSERT INTO t (name, amount, note) VALUES (?, ?, ?)", "sis", "b",
                           (int64_t)INT64_MIN, "12") == 1);
    //  A constraint is data; the statement is reused afterwards all the same.
    assert (ml_db_execute (db, "INSERT INTO t (name, amount, note) VALUES (?, ?, ?)", "sis", NULL,
                           (int64_t)1, NULL) == -1);
    assert (ml_db_error (db)->kind == ML_DB_DATA);
    assert (streq (ml_db_error (db)->sqlstate, "23000"));
    //  A picture that does not match the statement is refused, not run.
    assert (ml_db_execute (db, "UPDATE t SET amount = ? WHERE name = ?", "i", (int64_t)1) == -1);
    assert (ml_db_execute (db, "SELECT nonsense FROM", NULL) == -1);
    assert (ml_db_error (db)->kind == ML_DB_OTHER);

    ml_db_query_t *query = ml_db_query (db, "SELECT name, amount, note FROM t ORDER BY id", NULL);
    assert (query && ml_db_columns (query) == 3);
    assert (streq (ml_db_column_name (query, 1), "amount"));
    assert (ml_db_fetch (query) == 1);
    int64_t value = 0;
    assert (ml_db_int64 (query, 1, &value) == 0 && value == INT64_MAX);
    assert (streq (ml_db_text (query, 1), "9223372036854775807"));
    assert (ml_db_text (query, 2) == NULL && ml_db_int64 (query, 2, &value) == -1);
    assert (ml_db_int64 (query, 0, &value) == -1); //  "a" is no number
    assert (!ml_db_truncated (query, 0));
    //  The same SQL while the first query is open runs on a statement of its own.
    ml_db_query_t *inner = ml_db_query (db, "SELECT name, amount, note FROM t ORDER BY id", NULL);
    assert (inner && ml_db_fetch (inner) == 1 && ml_db_fetch (inner) == 1);
    assert (ml_db_int64 (inner, 2, &value) == 0 && value == 12);
    ml_db_query_destroy (&inner);
    assert (ml_db_fetch (query) == 1);
    assert (ml_db_int64 (query, 1, &value) == 0 && value == INT64_MIN);
    assert (ml_db_fetch (query) == 0);
    ml_db_query_destroy (&query);
    ml_db_query_destroy (&query);

    //  Statements are prepared once and reused.
    size_t prepared, reused, prepared_after, reused_after;
    ml_db_statement_counts (db, &prepared, &reused);
    for (int round = 0; round < 5; round++) {
        query = ml_db_query (db, "SELECT COUNT(*) FROM t WHERE amount > ?", "i", (int64_t)0);
        assert (query && ml_db_fetch (query) == 1);
        assert (ml_db_int64 (query, 0, &value) == 0 && value == 1);
        ml_db_query_destroy (&query);
    }
    ml_db_statement_counts (db, &prepared_after, &reused_after);
    assert (prepared_after == prepared + 1 && reused_after == reused + 4);

    //  Transactions: a rollback undoes, and rolling back with none open is fine.
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "DELETE FROM t", NULL) == 2);
    assert (ml_db_rollback (db) == 0);
    assert (ml_db_rollback (db) == 0);
    ml_db_value_t rows[6] = {{.text = "c"}, {.number = 3},  {.text = "d"},
                             {.number = 4}, {.text = NULL}, {.number = 5}};
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute_many (db, "INSERT INTO t (name, amount) VALUES (?, ?)", "si", 2, rows) ==
            0);
    assert (ml_db_execute_many (db, "INSERT INTO t (name, amount) VALUES (?, ?)", "si", 3, rows) ==
            -1);
    assert (ml_db_rollback (db) == 0);

    //  A second connection waits for the first's write lock, then gives up as "retry".
    ml_db_t *other = ml_db_new (connection, &error);
    assert (other);
    assert (ml_db_begin (db) == 0);
    assert (ml_db_begin (other) == -1);
    assert (ml_db_error (other)->kind == ML_DB_RETRY);
    assert (ml_db_commit (db) == 0);
    assert (ml_db_begin (other) == 0 && ml_db_commit (other) == 0);
    ml_db_destroy (&other);

    query = ml_db_query (db, "SELECT COUNT(*) FROM t", NULL);
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0 && value == 2);
    ml_db_query_destroy (&query);
    ml_db_destroy (&db);
    ml_db_destroy (&db);

    char command[512];
    snprintf (command, sizeof command, "rm -rf %s", directory);
    assert (system (command) == 0);
    if (verbose)
        printf ("OK\n");
}
