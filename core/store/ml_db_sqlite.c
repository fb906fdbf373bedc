/*  ml_db's SQLite backend: libsqlite3, statements prepared once per connection (see
    include/ml_db.h). ml_db.c dispatches here for "sqlite:" and "Driver=SQLite3" stores.
*/
#include "ml_db_internal.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    sqlite3_stmt *statement;
    bool busy; //  an open query is reading it
} s_cached_t;

typedef struct {
    sqlite3 *handle;
    zhashx_t *cache; //  SQL text -> s_cached_t
} s_conn_t;

typedef struct {
    sqlite3_stmt *statement;
    s_cached_t *cached; //  NULL: a statement of its own, finalized on destroy
} s_query_t;

#define S_CONN(db)   ((s_conn_t *)(db)->backend)
#define S_HANDLE(db) (S_CONN (db)->handle)

static void s_set_error (ml_db_error_t *error, ml_db_class_t kind, long native, const char *message)
{
    ml_db_set_error (error, kind, kind == ML_DB_DATA ? "23000" : "HY000", native, message);
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
    int code = sqlite3_extended_errcode (S_HANDLE (self));
    s_set_error (&self->error, s_classify (code), code, sqlite3_errmsg (S_HANDLE (self)));
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
                             "the core's store is SQLite (Driver=SQLite3 or a file path) or "
                             "PostgreSQL (postgresql://...); another engine is not supported");
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

int ml_db_sqlite_open (ml_db_t *self, const char *connection, ml_db_error_t *error)
{
    char path[4096];
    int timeout_ms;
    bool foreign_keys;
    if (s_parse (connection, path, sizeof path, &timeout_ms, &foreign_keys, error) != 0)
        return -1;
    s_conn_t *conn = calloc (1, sizeof (s_conn_t));
    assert (conn);
    int rc =
        sqlite3_open_v2 (path, &conn->handle,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        char message[512];
        snprintf (message, sizeof message, "cannot open the store file: %s",
                  conn->handle ? sqlite3_errmsg (conn->handle) : sqlite3_errstr (rc));
        s_set_error (error, s_classify (rc), rc, message);
        sqlite3_close (conn->handle);
        free (conn);
        return -1;
    }
    sqlite3_extended_result_codes (conn->handle, 1);
    sqlite3_busy_timeout (conn->handle, timeout_ms);
    conn->cache = zhashx_new ();
    assert (conn->cache);
    zhashx_set_destructor (conn->cache, s_cached_destroy);
    self->backend = conn;
    if (ml_db_sqlite_execute (
            self, foreign_keys ? "PRAGMA foreign_keys = ON" : "PRAGMA foreign_keys = OFF", NULL,
            NULL) < 0) {
        *error = self->error;
        ml_db_sqlite_close (self);
        return -1;
    }
    return 0;
}

void ml_db_sqlite_close (ml_db_t *self)
{
    s_conn_t *conn = S_CONN (self);
    if (conn) {
        if (conn->handle && !sqlite3_get_autocommit (conn->handle))
            sqlite3_exec (conn->handle, "ROLLBACK", NULL, NULL, NULL);
        zhashx_destroy (&conn->cache);
        sqlite3_close (conn->handle);
        free (conn);
        self->backend = NULL;
    }
}

bool ml_db_sqlite_in_transaction (ml_db_t *self)
{
    return !sqlite3_get_autocommit (S_HANDLE (self));
}

//  A statement for sql: the cached one when it is free, else a new one (kept in the cache
//  when there is room). Returns the statement, or NULL with the error set.
static sqlite3_stmt *s_statement (ml_db_t *self, const char *sql, s_cached_t **cached_p)
{
    *cached_p = NULL;
    s_cached_t *cached = (s_cached_t *)zhashx_lookup (S_CONN (self)->cache, sql);
    if (cached && !cached->busy) {
        cached->busy = true;
        *cached_p = cached;
        self->reused++;
        return cached->statement;
    }
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v3 (S_HANDLE (self), sql, -1, SQLITE_PREPARE_PERSISTENT, &statement,
                            NULL) != SQLITE_OK) {
        s_collect (self);
        return NULL;
    }
    self->prepared++;
    if (!cached && zhashx_size (S_CONN (self)->cache) < ML_DB_CACHE_MAX) {
        cached = calloc (1, sizeof (s_cached_t));
        assert (cached);
        cached->statement = statement;
        cached->busy = true;
        zhashx_insert (S_CONN (self)->cache, sql, cached);
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
    return sqlite3_changes64 (S_HANDLE (self));
}

int64_t ml_db_sqlite_execute (ml_db_t *self, const char *sql, const char *picture,
                              const ml_db_value_t *values)
{
    s_cached_t *cached;
    sqlite3_stmt *statement = s_statement (self, sql, &cached);
    if (!statement)
        return -1;
    int64_t changed = s_bind (self, statement, picture, values) == 0 ? s_run (self, statement) : -1;
    s_release (statement, cached);
    return changed;
}

int ml_db_sqlite_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                               const ml_db_value_t *values)
{
    size_t width = strlen (picture);
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

void *ml_db_sqlite_query (ml_db_t *self, const char *sql, const char *picture,
                          const ml_db_value_t *values)
{
    s_cached_t *cached;
    sqlite3_stmt *statement = s_statement (self, sql, &cached);
    if (!statement)
        return NULL;
    if (s_bind (self, statement, picture, values) != 0) {
        s_release (statement, cached);
        return NULL;
    }
    s_query_t *query = calloc (1, sizeof (s_query_t));
    assert (query);
    query->statement = statement;
    query->cached = cached;
    return query;
}

#define S_STATEMENT(query) (((s_query_t *)(query)->backend)->statement)

int ml_db_sqlite_fetch (ml_db_query_t *self)
{
    int rc = sqlite3_step (S_STATEMENT (self));
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    s_collect (self->db);
    return -1;
}

int ml_db_sqlite_columns (ml_db_query_t *self)
{
    return sqlite3_column_count (S_STATEMENT (self));
}

const char *ml_db_sqlite_column_name (ml_db_query_t *self, int column)
{
    const char *name = sqlite3_column_name (S_STATEMENT (self), column);
    return name ? name : "";
}

const char *ml_db_sqlite_text (ml_db_query_t *self, int column)
{
    sqlite3_stmt *statement = S_STATEMENT (self);
    if (column < 0 || column >= sqlite3_column_count (statement) ||
        sqlite3_column_type (statement, column) == SQLITE_NULL)
        return NULL;
    return (const char *)sqlite3_column_text (statement, column);
}

int ml_db_sqlite_int64 (ml_db_query_t *self, int column, int64_t *value)
{
    sqlite3_stmt *statement = S_STATEMENT (self);
    if (column < 0 || column >= sqlite3_column_count (statement))
        return -1;
    int type = sqlite3_column_type (statement, column);
    if (type == SQLITE_INTEGER) {
        *value = sqlite3_column_int64 (statement, column);
        return 0;
    }
    if (type != SQLITE_TEXT)
        return -1;
    //  A number stored as text reads as one only when it is exactly an integer.
    return ml_db_parse_int64 ((const char *)sqlite3_column_text (statement, column), value);
}

void ml_db_sqlite_query_close (ml_db_query_t *self)
{
    s_query_t *query = (s_query_t *)self->backend;
    if (query) {
        s_release (query->statement, query->cached);
        free (query);
        self->backend = NULL;
    }
}
