/*  ml_odbc: ODBC connection and statements. See include/ml_odbc.h. */
#include "ml_odbc.h"
#include "ml_selftest_support.h"
#include "ml_log.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/stat.h>
#include <sql.h>
#include <sqlext.h>

//  Rows fetched per round trip, and the cap on one text column. Values longer than the cap
//  are cut and flagged (ml_query_truncated); callers decide whether that is acceptable.
#define S_ROW_ARRAY        256
#define S_COLUMN_CAP       1024
#define S_MAX_PARAMS       32
#define S_MAX_ARRAY_PARAMS 2048 //  ml_odbc_execute_many: parameters per row
#define S_MAX_COLUMNS      64

#define S_CACHE_SIZE 32

//  A prepared statement kept for the next call with the same SQL text. Preparing costs as
//  much as running for small statements (SQLite compiles a whole trigger program into an
//  INSERT on a view), and the agent and core run the same few statements all day.
typedef struct {
    char *sql;
    SQLHSTMT statement;
    bool busy; //  lent to a query that is still open
    uint64_t used;
} s_cached_t;

struct _ml_odbc_t {
    SQLHENV environment;
    SQLHDBC connection;
    bool in_transaction;
    ml_odbc_error_t error;
    s_cached_t cache[S_CACHE_SIZE];
    uint64_t clock;
};

typedef struct {
    char type; //  's' or 'i'
    char *text;
    int64_t number;
    SQLLEN indicator;
} s_param_t;

struct _ml_query_t {
    ml_odbc_t *owner;
    SQLHSTMT statement;
    s_cached_t *slot; //  where the statement came from
    s_param_t params[S_MAX_PARAMS];
    int param_count;
    int columns;
    size_t width[S_MAX_COLUMNS];
    char name[S_MAX_COLUMNS][64];
    char *buffer[S_MAX_COLUMNS];
    SQLLEN *indicator[S_MAX_COLUMNS];
    SQLULEN rows_fetched;
    SQLUSMALLINT row_status[S_ROW_ARRAY];
    SQLULEN row; //  current row within the fetched array
    bool started;
    bool exhausted;
};

ml_odbc_class_t ml_odbc_classify (const char *sqlstate, long native, const char *message)
{
    if (message && strstr (message, "ML001"))
        return ML_ODBC_BUSINESS;
    //  MariaDB's max_statement_time (native 1969) arrives under HY018, which otherwise
    //  means the connection is gone: it is a timeout, and the connection still works.
    if (native == 1969)
        return ML_ODBC_TIMEOUT;
    if (strncmp (sqlstate, "08", 2) == 0 || strcmp (sqlstate, "57P01") == 0 ||
        strcmp (sqlstate, "57P02") == 0 || strcmp (sqlstate, "57P03") == 0 ||
        strcmp (sqlstate, "HY018") == 0 || native == 2002 || native == 2003 || native == 2006 ||
        native == 2013 || native == 1927)
        return ML_ODBC_LOST;
    if (strcmp (sqlstate, "40001") == 0 || strcmp (sqlstate, "40P01") == 0 || native == 1205 ||
        native == 1213)
        return ML_ODBC_RETRY;
    if (strcmp (sqlstate, "57014") == 0 || strcmp (sqlstate, "HYT00") == 0 ||
        strcmp (sqlstate, "HYT01") == 0)
        return ML_ODBC_TIMEOUT;
    //  SQLite reports SQLITE_BUSY / SQLITE_LOCKED (5, 6) as HY000: another writer holds
    //  the database; the transaction can run again.
    if (strcmp (sqlstate, "HY000") == 0 && (native == 5 || native == 6))
        return ML_ODBC_RETRY;
    if (strncmp (sqlstate, "22", 2) == 0 || strncmp (sqlstate, "23", 2) == 0 ||
        (strcmp (sqlstate, "HY000") == 0 && native == 19))
        return ML_ODBC_DATA;
    return ML_ODBC_OTHER;
}

const char *ml_odbc_class_name (ml_odbc_class_t kind)
{
    static const char *names[] = {"ok",   "connection lost", "retry", "timeout",
                                  "data", "business",        "other"};
    return names[kind];
}

//  Read every diagnostic record of a handle into the connection's error.
static void s_collect (ml_odbc_t *self, SQLSMALLINT handle_type, SQLHANDLE handle)
{
    ml_odbc_error_t *error = &self->error;
    memset (error, 0, sizeof *error);
    size_t used = 0;
    for (SQLSMALLINT record = 1;; record++) {
        SQLCHAR state[6] = "";
        SQLINTEGER native = 0;
        SQLCHAR text[512] = "";
        SQLSMALLINT length = 0;
        SQLRETURN rc =
            SQLGetDiagRec (handle_type, handle, record, state, &native, text, sizeof text, &length);
        if (!SQL_SUCCEEDED (rc))
            break;
        if (record == 1) {
            snprintf (error->sqlstate, sizeof error->sqlstate, "%s", (char *)state);
            error->native = native;
        }
        int wrote = snprintf (error->message + used, sizeof error->message - used, "%s%s",
                              used ? " | " : "", (char *)text);
        if (wrote > 0)
            used += (size_t)wrote;
        if (used >= sizeof error->message - 1)
            break;
    }
    if (!*error->sqlstate)
        snprintf (error->sqlstate, sizeof error->sqlstate, "HY000");
    error->kind = ml_odbc_classify (error->sqlstate, error->native, error->message);
    //  A dead connection is not always reported as class 08 (the driver may say HY000).
    if (error->kind == ML_ODBC_OTHER && self->connection) {
        SQLUINTEGER dead = SQL_CD_FALSE;
        if (SQL_SUCCEEDED (
                SQLGetConnectAttr (self->connection, SQL_ATTR_CONNECTION_DEAD, &dead, 0, NULL)) &&
            dead == SQL_CD_TRUE)
            error->kind = ML_ODBC_LOST;
    }
}

static void s_set_error (ml_odbc_error_t *error, ml_odbc_class_t kind, const char *message)
{
    memset (error, 0, sizeof *error);
    error->kind = kind;
    snprintf (error->sqlstate, sizeof error->sqlstate, "HY000");
    //  Cut to the field, as meant (the result is read: no warning of it).
    if (snprintf (error->message, sizeof error->message, "%s", message) < 0)
        *error->message = 0;
}

ml_odbc_t *ml_odbc_new (const char *connection_string, ml_odbc_error_t *error)
{
    assert (error);
    ml_odbc_t *self = calloc (1, sizeof (ml_odbc_t));
    if (!self) {
        s_set_error (error, ML_ODBC_OTHER, "out of memory");
        return NULL;
    }
    if (!SQL_SUCCEEDED (SQLAllocHandle (SQL_HANDLE_ENV, SQL_NULL_HANDLE, &self->environment)) ||
        !SQL_SUCCEEDED (SQLSetEnvAttr (self->environment, SQL_ATTR_ODBC_VERSION,
                                       (SQLPOINTER)SQL_OV_ODBC3, 0)) ||
        !SQL_SUCCEEDED (SQLAllocHandle (SQL_HANDLE_DBC, self->environment, &self->connection))) {
        s_set_error (error, ML_ODBC_OTHER, "cannot allocate ODBC handles");
        ml_odbc_destroy (&self);
        return NULL;
    }
    SQLRETURN rc = SQLDriverConnect (self->connection, NULL, (SQLCHAR *)connection_string, SQL_NTS,
                                     NULL, 0, NULL, SQL_DRIVER_NOPROMPT);
    if (!SQL_SUCCEEDED (rc)) {
        s_collect (self, SQL_HANDLE_DBC, self->connection);
        //  A failed connect is a lost connection as far as callers go: try again later.
        if (self->error.kind == ML_ODBC_OTHER)
            self->error.kind = ML_ODBC_LOST;
        *error = self->error;
        SQLFreeHandle (SQL_HANDLE_DBC, self->connection);
        self->connection = NULL;
        ml_odbc_destroy (&self);
        return NULL;
    }
    return self;
}

//  One "key=value" attribute of a connection string, as unixODBC splits them: attributes end
//  at ';', and a value in braces may hold ';'. Returns where the next attribute starts.
static const char *s_attribute (const char *cursor, const char **key, size_t *key_length,
                                const char **value, size_t *value_length)
{
    while (*cursor == ' ' || *cursor == ';')
        cursor++;
    *key = cursor;
    while (*cursor && *cursor != '=' && *cursor != ';')
        cursor++;
    *key_length = (size_t)(cursor - *key);
    while (*key_length && (*key)[*key_length - 1] == ' ')
        (*key_length)--;
    *value = cursor;
    *value_length = 0;
    if (*cursor != '=')
        return cursor;
    cursor++;
    while (*cursor == ' ')
        cursor++;
    *value = cursor;
    if (*cursor == '{') {
        *value = ++cursor;
        while (*cursor && *cursor != '}')
            cursor++;
        *value_length = (size_t)(cursor - *value);
        if (*cursor)
            cursor++;
        while (*cursor && *cursor != ';')
            cursor++;
    } else {
        while (*cursor && *cursor != ';')
            cursor++;
        *value_length = (size_t)(cursor - *value);
        while (*value_length && (*value)[*value_length - 1] == ' ')
            (*value_length)--;
    }
    return cursor;
}

static bool s_key_is (const char *key, size_t length, const char *name)
{
    return length == strlen (name) && strncasecmp (key, name, length) == 0;
}

static bool s_contains_nocase (const char *text, size_t length, const char *needle)
{
    size_t needle_length = strlen (needle);
    for (size_t index = 0; index + needle_length <= length; index++)
        if (strncasecmp (text + index, needle, needle_length) == 0)
            return true;
    return false;
}

ml_odbc_t *ml_odbc_new_existing (const char *connection_string, ml_odbc_error_t *error)
{
    assert (connection_string && error);
    size_t length = strlen (connection_string);
    bool sqlite = false;
    const char *database = NULL;
    size_t database_length = 0;
    for (const char *cursor = connection_string; *cursor;) {
        const char *key, *value;
        size_t key_length, value_length;
        cursor = s_attribute (cursor, &key, &key_length, &value, &value_length);
        if (s_key_is (key, key_length, "Driver") &&
            s_contains_nocase (value, value_length, "sqlite"))
            sqlite = true;
        else if (s_key_is (key, key_length, "Database") && !database) {
            database = value;
            database_length = value_length;
        }
    }
    if (!sqlite)
        return ml_odbc_new (connection_string, error);
    //  The path is not secret (a password would be in PWD=), so the message may show it.
    char path[1024], shown[1100], message[1300];
    snprintf (path, sizeof path, "%.*s", (int)database_length, database ? database : "");
    ml_log_escape (path, shown, sizeof shown);
    struct stat status;
    if (!*path) {
        s_set_error (error, ML_ODBC_OTHER,
                     "the connection string names no SQLite database file (Database=)");
        return NULL;
    }
    if (stat (path, &status) != 0) {
        if (errno == ENOENT)
            snprintf (message, sizeof message,
                      "the SQLite database file %s does not exist (matterlink never creates a "
                      "matter database: check the path in Database=)",
                      shown);
        else
            snprintf (message, sizeof message, "cannot use the SQLite database file %s: %s", shown,
                      strerror (errno));
        s_set_error (error, ML_ODBC_OTHER, message);
        return NULL;
    }
    if (!S_ISREG (status.st_mode)) {
        snprintf (message, sizeof message, "the SQLite database file %s is not a regular file",
                  shown);
        s_set_error (error, ML_ODBC_OTHER, message);
        return NULL;
    }
    //  Also tell the driver not to create it, should the file go between the check and
    //  the open: every NoCreat attribute given is replaced by NoCreat=1.
    char *forbidding = malloc (length + 16);
    if (!forbidding) {
        s_set_error (error, ML_ODBC_OTHER, "out of memory");
        return NULL;
    }
    size_t used = 0;
    for (const char *cursor = connection_string; *cursor;) {
        const char *start = cursor;
        while (*start == ' ' || *start == ';')
            start++;
        const char *key, *value;
        size_t key_length, value_length;
        cursor = s_attribute (cursor, &key, &key_length, &value, &value_length);
        if (cursor > start && !s_key_is (key, key_length, "NoCreat")) {
            memcpy (forbidding + used, start, (size_t)(cursor - start));
            used += (size_t)(cursor - start);
            forbidding[used++] = ';';
        }
    }
    memcpy (forbidding + used, "NoCreat=1", sizeof "NoCreat=1");
    ml_odbc_t *self = ml_odbc_new (forbidding, error);
    explicit_bzero (forbidding, length + 16);
    free (forbidding);
    return self;
}

void ml_odbc_destroy (ml_odbc_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_odbc_t *self = *self_p;
        for (int index = 0; index < S_CACHE_SIZE; index++) {
            if (self->cache[index].statement)
                SQLFreeHandle (SQL_HANDLE_STMT, self->cache[index].statement);
            free (self->cache[index].sql);
        }
        if (self->connection) {
            if (self->in_transaction)
                ml_odbc_rollback (self);
            SQLDisconnect (self->connection);
            SQLFreeHandle (SQL_HANDLE_DBC, self->connection);
        }
        if (self->environment)
            SQLFreeHandle (SQL_HANDLE_ENV, self->environment);
        free (self);
        *self_p = NULL;
    }
}

const ml_odbc_error_t *ml_odbc_error (ml_odbc_t *self)
{
    assert (self);
    return &self->error;
}

int ml_odbc_begin (ml_odbc_t *self)
{
    assert (self);
    assert (!self->in_transaction);
    SQLRETURN rc = SQLSetConnectAttr (self->connection, SQL_ATTR_AUTOCOMMIT,
                                      (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0);
    if (!SQL_SUCCEEDED (rc)) {
        s_collect (self, SQL_HANDLE_DBC, self->connection);
        return -1;
    }
    self->in_transaction = true;
    return 0;
}

static int s_end (ml_odbc_t *self, SQLSMALLINT completion)
{
    assert (self);
    int result = 0;
    if (!SQL_SUCCEEDED (SQLEndTran (SQL_HANDLE_DBC, self->connection, completion))) {
        s_collect (self, SQL_HANDLE_DBC, self->connection);
        result = -1;
    }
    //  Back to autocommit, so reads outside a transaction hold no locks between calls.
    if (!SQL_SUCCEEDED (SQLSetConnectAttr (self->connection, SQL_ATTR_AUTOCOMMIT,
                                           (SQLPOINTER)SQL_AUTOCOMMIT_ON, 0)) &&
        result == 0) {
        s_collect (self, SQL_HANDLE_DBC, self->connection);
        result = -1;
    }
    self->in_transaction = false;
    return result;
}

int ml_odbc_commit (ml_odbc_t *self)
{
    return s_end (self, SQL_COMMIT);
}

int ml_odbc_rollback (ml_odbc_t *self)
{
    return s_end (self, SQL_ROLLBACK);
}

//  Forget a cached statement (after an error its state cannot be trusted).
static void s_discard (s_cached_t *slot)
{
    if (slot->statement)
        SQLFreeHandle (SQL_HANDLE_STMT, slot->statement);
    free (slot->sql);
    memset (slot, 0, sizeof *slot);
}

//  A prepared statement for sql: the cached one if it is free, else a new one in the least
//  recently used free slot. Returns NULL with the error set.
static s_cached_t *s_acquire (ml_odbc_t *self, const char *sql)
{
    s_cached_t *victim = NULL;
    for (int index = 0; index < S_CACHE_SIZE; index++) {
        s_cached_t *slot = &self->cache[index];
        if (slot->busy)
            continue;
        if (slot->sql && strcmp (slot->sql, sql) == 0) {
            slot->busy = true;
            slot->used = ++self->clock;
            return slot;
        }
        if (!victim || !slot->sql || (victim->sql && slot->used < victim->used))
            victim = slot;
    }
    if (!victim) {
        s_set_error (&self->error, ML_ODBC_OTHER, "too many open statements");
        return NULL;
    }
    s_discard (victim);
    if (!SQL_SUCCEEDED (SQLAllocHandle (SQL_HANDLE_STMT, self->connection, &victim->statement))) {
        s_collect (self, SQL_HANDLE_DBC, self->connection);
        victim->statement = NULL;
        return NULL;
    }
    if (!SQL_SUCCEEDED (SQLPrepare (victim->statement, (SQLCHAR *)sql, SQL_NTS))) {
        s_collect (self, SQL_HANDLE_STMT, victim->statement);
        s_discard (victim);
        return NULL;
    }
    victim->sql = strdup (sql);
    victim->busy = true;
    victim->used = ++self->clock;
    return victim;
}

//  Give the statement back to the cache, closed and unbound, or drop it after an error.
static void s_query_free (ml_query_t *self)
{
    if (self->slot) {
        if (self->statement) {
            SQLFreeStmt (self->statement, SQL_CLOSE);
            SQLFreeStmt (self->statement, SQL_UNBIND);
            SQLFreeStmt (self->statement, SQL_RESET_PARAMS);
            //  The fetch pointers pointed into this query: never leave them dangling.
            SQLSetStmtAttr (self->statement, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)1, 0);
            SQLSetStmtAttr (self->statement, SQL_ATTR_ROW_STATUS_PTR, NULL, 0);
            SQLSetStmtAttr (self->statement, SQL_ATTR_ROWS_FETCHED_PTR, NULL, 0);
            self->slot->busy = false;
        } else
            s_discard (self->slot);
    }
    for (int index = 0; index < self->param_count; index++)
        free (self->params[index].text);
    for (int index = 0; index < self->columns; index++) {
        free (self->buffer[index]);
        free (self->indicator[index]);
    }
    free (self);
}

//  The query failed: drop its statement from the cache rather than reuse it.
static void s_query_fail (ml_query_t *self)
{
    if (self->slot) {
        s_discard (self->slot);
        self->slot = NULL;
        self->statement = NULL;
    }
    s_query_free (self);
}

//  Prepare, bind parameters from the picture and execute. Returns the statement wrapper or
//  NULL with the connection's error set.
//  Gather the parameters a picture names from a va_list into values (S_MAX_PARAMS room).
static void s_gather (const char *picture, va_list args, ml_odbc_value_t *values)
{
    size_t count = picture ? strlen (picture) : 0;
    assert (count <= S_MAX_PARAMS);
    for (size_t index = 0; index < count; index++) {
        if (picture[index] == 's')
            values[index].text = va_arg (args, const char *);
        else {
            assert (picture[index] == 'i');
            values[index].number = va_arg (args, int64_t);
        }
    }
}

static ml_query_t *s_run (ml_odbc_t *self, const char *sql, const char *picture,
                          const ml_odbc_value_t *values)
{
    ml_query_t *query = calloc (1, sizeof (ml_query_t));
    if (!query) {
        s_set_error (&self->error, ML_ODBC_OTHER, "out of memory");
        return NULL;
    }
    query->owner = self;
    query->slot = s_acquire (self, sql);
    if (!query->slot) {
        free (query);
        return NULL;
    }
    query->statement = query->slot->statement;
    size_t count = picture ? strlen (picture) : 0;
    assert (count <= S_MAX_PARAMS);
    //  A picture that does not match the statement's markers is a programmer error that
    //  would read the wrong arguments: stop at once. (No statement here has a '?' inside
    //  a literal.)
    size_t markers = 0;
    for (const char *cursor = sql; *cursor; cursor++)
        markers += *cursor == '?';
    assert (markers == count);
    for (size_t index = 0; index < count; index++) {
        s_param_t *param = &query->params[index];
        param->type = picture[index];
        SQLRETURN rc;
        if (param->type == 's') {
            const char *text = values[index].text;
            if (text) {
                param->text = strdup (text);
                param->indicator = (SQLLEN)strlen (text);
            } else
                param->indicator = SQL_NULL_DATA;
            query->param_count = (int)index + 1;
            SQLULEN size = param->text && param->indicator > 0 ? (SQLULEN)param->indicator : 1;
            rc = SQLBindParameter (query->statement, (SQLUSMALLINT)(index + 1), SQL_PARAM_INPUT,
                                   SQL_C_CHAR, SQL_VARCHAR, size, 0, param->text,
                                   param->indicator > 0 ? param->indicator : 0, &param->indicator);
        } else {
            assert (param->type == 'i');
            param->number = values[index].number;
            param->indicator = 0;
            query->param_count = (int)index + 1;
            rc = SQLBindParameter (query->statement, (SQLUSMALLINT)(index + 1), SQL_PARAM_INPUT,
                                   SQL_C_SBIGINT, SQL_BIGINT, 0, 0, &param->number, 0,
                                   &param->indicator);
        }
        if (!SQL_SUCCEEDED (rc)) {
            s_collect (self, SQL_HANDLE_STMT, query->statement);
            s_query_fail (query);
            return NULL;
        }
    }
    SQLRETURN rc = SQLExecute (query->statement);
    if (!SQL_SUCCEEDED (rc) && rc != SQL_NO_DATA) {
        s_collect (self, SQL_HANDLE_STMT, query->statement);
        s_query_fail (query);
        return NULL;
    }
    return query;
}

int64_t ml_odbc_execute (ml_odbc_t *self, const char *sql, const char *picture, ...)
{
    assert (self);
    ml_odbc_value_t values[S_MAX_PARAMS];
    va_list args;
    va_start (args, picture);
    s_gather (picture, args, values);
    va_end (args);
    ml_query_t *query = s_run (self, sql, picture, values);
    if (!query)
        return -1;
    SQLLEN affected = 0;
    if (!SQL_SUCCEEDED (SQLRowCount (query->statement, &affected)) || affected < 0)
        affected = 0;
    //  Drain further results (a CALL's trailing status on some drivers) so the next
    //  statement on this connection does not fail with "commands out of sync".
    while (SQL_SUCCEEDED (SQLMoreResults (query->statement)))
        ;
    s_query_free (query);
    return (int64_t)affected;
}

int ml_odbc_execute_many (ml_odbc_t *self, const char *sql, const char *picture, size_t rows,
                          const ml_odbc_value_t *values)
{
    assert (self && sql && picture && values);
    size_t columns = strlen (picture);
    assert (columns > 0 && columns <= S_MAX_ARRAY_PARAMS);
    if (rows == 0)
        return 0;
    ml_query_t *query = calloc (1, sizeof (ml_query_t));
    if (!query) {
        s_set_error (&self->error, ML_ODBC_OTHER, "out of memory");
        return -1;
    }
    query->owner = self;
    query->slot = s_acquire (self, sql);
    if (!query->slot) {
        free (query);
        return -1;
    }
    query->statement = query->slot->statement;
    //  Column-wise arrays: one buffer per parameter holding that parameter for every row.
    void **buffers = calloc (columns, sizeof (void *));
    SQLLEN **indicators = calloc (columns, sizeof (SQLLEN *));
    SQLUSMALLINT *status = calloc (rows, sizeof (SQLUSMALLINT));
    SQLULEN processed = 0;
    bool ok = status && buffers && indicators;
    for (size_t column = 0; ok && column < columns; column++) {
        indicators[column] = calloc (rows, sizeof (SQLLEN));
        ok = indicators[column] != NULL;
        if (!ok)
            break;
        if (picture[column] == 'i') {
            int64_t *numbers = calloc (rows, sizeof (int64_t));
            ok = numbers != NULL;
            for (size_t row = 0; ok && row < rows; row++)
                numbers[row] = values[row * columns + column].number;
            buffers[column] = numbers;
            ok = ok && SQL_SUCCEEDED (SQLBindParameter (
                           query->statement, (SQLUSMALLINT)(column + 1), SQL_PARAM_INPUT,
                           SQL_C_SBIGINT, SQL_BIGINT, 0, 0, numbers, 0, indicators[column]));
        } else {
            assert (picture[column] == 's');
            size_t width = 1;
            for (size_t row = 0; row < rows; row++) {
                const char *text = values[row * columns + column].text;
                if (text && strlen (text) + 1 > width)
                    width = strlen (text) + 1;
            }
            char *texts = calloc (rows, width);
            ok = texts != NULL;
            for (size_t row = 0; ok && row < rows; row++) {
                const char *text = values[row * columns + column].text;
                if (text) {
                    memcpy (texts + row * width, text, strlen (text));
                    indicators[column][row] = (SQLLEN)strlen (text);
                } else
                    indicators[column][row] = SQL_NULL_DATA;
            }
            buffers[column] = texts;
            ok = ok && SQL_SUCCEEDED (SQLBindParameter (
                           query->statement, (SQLUSMALLINT)(column + 1), SQL_PARAM_INPUT,
                           SQL_C_CHAR, SQL_VARCHAR, width - 1 ? width - 1 : 1, 0, texts,
                           (SQLLEN)width, indicators[column]));
        }
    }
    if (ok) {
        //  A sentinel in every status: a row the driver never reports on is not a success.
        for (size_t row = 0; row < rows; row++)
            status[row] = SQL_PARAM_UNUSED;
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAM_BIND_TYPE,
                        (SQLPOINTER)SQL_PARAM_BIND_BY_COLUMN, 0);
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER)rows, 0);
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAM_STATUS_PTR, status, 0);
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAMS_PROCESSED_PTR, &processed, 0);
        SQLRETURN rc = SQLExecute (query->statement);
        ok = (SQL_SUCCEEDED (rc) || rc == SQL_NO_DATA) && processed == rows;
        //  Every row the driver reports on must have succeeded. A driver that reports on
        //  no row at all (SQLite's leaves every sentinel) is judged by its return code and
        //  the processed count alone.
        bool reported = false;
        for (size_t row = 0; row < rows; row++)
            if (status[row] != SQL_PARAM_UNUSED)
                reported = true;
        for (size_t row = 0; ok && reported && row < rows; row++)
            ok = status[row] == SQL_PARAM_SUCCESS || status[row] == SQL_PARAM_SUCCESS_WITH_INFO;
        if (!ok) {
            s_collect (self, SQL_HANDLE_STMT, query->statement);
            if (!*self->error.message)
                snprintf (self->error.message, sizeof self->error.message,
                          "a batch of %zu rows was not applied in full (%zu processed)", rows,
                          (size_t)processed);
        }
        while (SQL_SUCCEEDED (SQLMoreResults (query->statement)))
            ;
        //  Back to one parameter set, and no pointers into this function's memory.
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER)1, 0);
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAM_STATUS_PTR, NULL, 0);
        SQLSetStmtAttr (query->statement, SQL_ATTR_PARAMS_PROCESSED_PTR, NULL, 0);
    } else
        s_collect (self, SQL_HANDLE_STMT, query->statement);
    for (size_t column = 0; buffers && indicators && column < columns; column++) {
        free (buffers[column]);
        free (indicators[column]);
    }
    free (buffers);
    free (indicators);
    free (status);
    if (ok)
        s_query_free (query);
    else
        s_query_fail (query);
    return ok ? 0 : -1;
}

ml_query_t *ml_odbc_query (ml_odbc_t *self, const char *sql, const char *picture, ...)
{
    assert (self);
    ml_odbc_value_t values[S_MAX_PARAMS];
    va_list args;
    va_start (args, picture);
    s_gather (picture, args, values);
    va_end (args);
    return ml_odbc_query_values (self, sql, picture, values);
}

ml_query_t *ml_odbc_query_values (ml_odbc_t *self, const char *sql, const char *picture,
                                  const ml_odbc_value_t *values)
{
    assert (self);
    ml_query_t *query = s_run (self, sql, picture, values);
    if (!query)
        return NULL;
    SQLSMALLINT columns = 0;
    if (!SQL_SUCCEEDED (SQLNumResultCols (query->statement, &columns)) || columns > S_MAX_COLUMNS) {
        if (columns > S_MAX_COLUMNS)
            s_set_error (&self->error, ML_ODBC_OTHER, "too many result columns");
        else
            s_collect (self, SQL_HANDLE_STMT, query->statement);
        s_query_fail (query);
        return NULL;
    }
    query->columns = columns;
    SQLSetStmtAttr (query->statement, SQL_ATTR_ROW_BIND_TYPE, (SQLPOINTER)SQL_BIND_BY_COLUMN, 0);
    SQLSetStmtAttr (query->statement, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)S_ROW_ARRAY, 0);
    SQLSetStmtAttr (query->statement, SQL_ATTR_ROW_STATUS_PTR, query->row_status, 0);
    SQLSetStmtAttr (query->statement, SQL_ATTR_ROWS_FETCHED_PTR, &query->rows_fetched, 0);
    for (int column = 0; column < columns; column++) {
        SQLULEN size = 0;
        SQLSMALLINT type = 0, digits = 0, nullable = 0, name_length = 0;
        SQLDescribeCol (query->statement, (SQLUSMALLINT)(column + 1),
                        (SQLCHAR *)query->name[column], sizeof query->name[column], &name_length,
                        &type, &size, &digits, &nullable);
        //  Room in bytes, not characters: drivers report a text column's size in characters
        //  (MariaDB's VARCHAR(200) holds up to 800 bytes of UTF-8), so ask for its octet
        //  length. At least room for any number with its sign and point; text up to the cap.
        SQLLEN octets = 0;
        if (!SQL_SUCCEEDED (SQLColAttribute (query->statement, (SQLUSMALLINT)(column + 1),
                                             SQL_DESC_OCTET_LENGTH, NULL, 0, NULL, &octets)) ||
            octets < 0)
            octets = 0;
        size_t bytes = (size_t)octets > size ? (size_t)octets : size;
        size_t width = bytes + 3 > 40 ? bytes + 3 : 40;
        if (width > S_COLUMN_CAP)
            width = S_COLUMN_CAP;
        query->width[column] = width;
        query->buffer[column] = malloc (width * S_ROW_ARRAY);
        query->indicator[column] = malloc (sizeof (SQLLEN) * S_ROW_ARRAY);
        if (!query->buffer[column] || !query->indicator[column] ||
            !SQL_SUCCEEDED (SQLBindCol (query->statement, (SQLUSMALLINT)(column + 1), SQL_C_CHAR,
                                        query->buffer[column], (SQLLEN)width,
                                        query->indicator[column]))) {
            s_collect (self, SQL_HANDLE_STMT, query->statement);
            query->columns = column + 1;
            s_query_fail (query);
            return NULL;
        }
    }
    return query;
}

int ml_query_fetch (ml_query_t *self)
{
    assert (self);
    while (true) {
        if (self->started && self->row + 1 < self->rows_fetched) {
            self->row++;
            if (self->row_status[self->row] == SQL_ROW_ERROR) {
                s_set_error (&self->owner->error, ML_ODBC_DATA, "a row could not be read");
                return -1;
            }
            return 1;
        }
        if (self->exhausted || self->columns == 0)
            return 0;
        self->rows_fetched = 0;
        SQLRETURN rc = SQLFetch (self->statement);
        if (rc == SQL_NO_DATA) {
            self->exhausted = true;
            return 0;
        }
        if (!SQL_SUCCEEDED (rc)) {
            s_collect (self->owner, SQL_HANDLE_STMT, self->statement);
            return -1;
        }
        self->started = true;
        if (self->rows_fetched == 0)
            continue;
        self->row = 0;
        if (self->row_status[0] == SQL_ROW_ERROR) {
            s_set_error (&self->owner->error, ML_ODBC_DATA, "a row could not be read");
            return -1;
        }
        return 1;
    }
}

int ml_query_columns (ml_query_t *self)
{
    assert (self);
    return self->columns;
}

const char *ml_query_name (ml_query_t *self, int column)
{
    assert (self && column >= 0 && column < self->columns);
    return self->name[column];
}

const char *ml_query_text (ml_query_t *self, int column)
{
    assert (self && column >= 0 && column < self->columns);
    SQLLEN indicator = self->indicator[column][self->row];
    if (indicator == SQL_NULL_DATA)
        return NULL;
    return self->buffer[column] + self->width[column] * self->row;
}

bool ml_query_truncated (ml_query_t *self, int column)
{
    assert (self && column >= 0 && column < self->columns);
    SQLLEN indicator = self->indicator[column][self->row];
    return indicator == SQL_NO_TOTAL ||
           (indicator >= 0 && (size_t)indicator >= self->width[column]);
}

int ml_query_int64 (ml_query_t *self, int column, int64_t *value)
{
    const char *text = ml_query_text (self, column);
    if (!text || !*text || ml_query_truncated (self, column))
        return -1;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || *end)
        return -1;
    *value = parsed;
    return 0;
}

void ml_query_destroy (ml_query_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        //  Drain what is left (a CALL's trailing status result on MariaDB) so the next
        //  statement on this connection does not fail with "commands out of sync".
        while (SQL_SUCCEEDED (SQLMoreResults ((*self_p)->statement)))
            ;
        SQLCloseCursor ((*self_p)->statement);
        s_query_free (*self_p);
        *self_p = NULL;
    }
}

void ml_odbc_test (bool verbose)
{
    printf (" * ml_odbc: ");
    char directory[128], path[160];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (path, sizeof path, "%s/test.db", directory);
    char connection_string[256];
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s;StepAPI=1;FKSupport=1;Timeout=5000", path);
    ml_odbc_error_t error;
    ml_odbc_t *odbc = ml_odbc_new (connection_string, &error);
    assert (odbc);
    assert (ml_odbc_execute (odbc,
                             "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                             "amount INTEGER, note TEXT, UNIQUE (name))",
                             NULL) == 0);
    //  A transaction of bound inserts, including quotes that splicing would break on.
    assert (ml_odbc_begin (odbc) == 0);
    for (int64_t index = 1; index <= 1000; index++) {
        char name[32];
        snprintf (name, sizeof name, "n'%lld\"", (long long)index);
        assert (ml_odbc_execute (odbc, "INSERT INTO t (id, name, amount, note) VALUES (?,?,?,?)",
                                 "isis", index, name, index * 100 - 1,
                                 index % 2 ? NULL : "even") == 1);
    }
    assert (ml_odbc_commit (odbc) == 0);
    //  Fetch across several row arrays.
    ml_query_t *query = ml_odbc_query (
        odbc, "SELECT id, name, amount, note FROM t WHERE id > ? ORDER BY id", "i", (int64_t)10);
    assert (query && ml_query_columns (query) == 4);
    int64_t expected = 11, sum = 0;
    int rc;
    while ((rc = ml_query_fetch (query)) == 1) {
        int64_t id = 0, amount = 0;
        assert (ml_query_int64 (query, 0, &id) == 0 && id == expected);
        assert (ml_query_int64 (query, 2, &amount) == 0);
        sum += amount;
        assert ((ml_query_text (query, 3) == NULL) == (id % 2 == 1));
        expected++;
    }
    assert (rc == 0 && expected == 1001);
    assert (sum == 100 * (1000 * 1001 / 2 - 55) - 990);
    ml_query_destroy (&query);
    ml_query_destroy (&query);

    //  Parameter arrays: many rows in one execute, all or nothing.
    ml_odbc_value_t rows[3 * 3] = {{NULL, 2001}, {"array one", 0}, {NULL, 7},
                                   {NULL, 2002}, {"array two", 0}, {NULL, 8},
                                   {NULL, 2003}, {NULL, 0},        {NULL, 9}};
    assert (ml_odbc_begin (odbc) == 0);
    assert (ml_odbc_execute_many (odbc, "INSERT INTO t (id, name, amount) VALUES (?, ?, ?)", "isi",
                                  2, rows) == 0);
    assert (ml_odbc_commit (odbc) == 0);
    //  The third row breaks NOT NULL: the batch fails and the rollback leaves nothing of it.
    rows[0].number = 2004;
    rows[3].number = 2005;
    assert (ml_odbc_begin (odbc) == 0);
    assert (ml_odbc_execute_many (odbc, "INSERT INTO t (id, name, amount) VALUES (?, ?, ?)", "isi",
                                  3, rows) == -1);
    assert (ml_odbc_rollback (odbc) == 0);
    query = ml_odbc_query (odbc, "SELECT COUNT(*), SUM(amount) FROM t WHERE id > 2000", NULL);
    assert (query && ml_query_fetch (query) == 1);
    int64_t array_count = 0, array_sum = 0;
    assert (ml_query_int64 (query, 0, &array_count) == 0 && array_count == 2);
    assert (ml_query_int64 (query, 1, &array_sum) == 0 && array_sum == 15);
    ml_query_destroy (&query);

    //  A constraint error is classified as data, and the rollback leaves nothing.
    assert (ml_odbc_begin (odbc) == 0);
    assert (ml_odbc_execute (odbc, "INSERT INTO t (id, name) VALUES (?, ?)", "is", (int64_t)5001,
                             "fresh") == 1);
    assert (ml_odbc_execute (odbc, "INSERT INTO t (id, name) VALUES (?, ?)", "is", (int64_t)5002,
                             "n'1\"") == -1);
    assert (ml_odbc_error (odbc)->kind == ML_ODBC_DATA);
    assert (ml_odbc_rollback (odbc) == 0);
    query = ml_odbc_query (odbc, "SELECT COUNT(*) FROM t WHERE id > 5000", NULL);
    assert (query && ml_query_fetch (query) == 1);
    int64_t count = -1;
    assert (ml_query_int64 (query, 0, &count) == 0 && count == 0);
    ml_query_destroy (&query);

    //  Errors name the state and say what went wrong, without the connection string.
    assert (ml_odbc_query (odbc, "SELECT * FROM no_such_table", NULL) == NULL);
    assert (strstr (ml_odbc_error (odbc)->message, "no_such_table"));
    ml_odbc_destroy (&odbc);
    ml_odbc_destroy (&odbc);

    //  A matter database is opened, never created: a mistyped path says so and leaves
    //  no file behind, whatever NoCreat the connection string says.
    char missing[200], missing_string[300];
    snprintf (missing, sizeof missing, "%s/typo.db", directory);
    snprintf (missing_string, sizeof missing_string,
              "Driver=SQLite3; Database = %s ;NoCreat=0;StepAPI=1", missing);
    assert (ml_odbc_new_existing (missing_string, &error) == NULL);
    assert (strstr (error.message, "does not exist") && strstr (error.message, missing));
    assert (access (missing, F_OK) != 0);
    snprintf (missing_string, sizeof missing_string, "Driver={SQLite3};Database={%s}", directory);
    assert (ml_odbc_new_existing (missing_string, &error) == NULL);
    assert (strstr (error.message, "not a regular file"));
    assert (ml_odbc_new_existing ("Driver=SQLite3;StepAPI=1", &error) == NULL);
    assert (strstr (error.message, "names no SQLite database file"));
    snprintf (missing_string, sizeof missing_string, "Driver=SQLite3;NoCreat=0;Database=%s;", path);
    odbc = ml_odbc_new_existing (missing_string, &error);
    assert (odbc);
    query = ml_odbc_query (odbc, "SELECT COUNT(*) FROM t", NULL);
    assert (query && ml_query_fetch (query) == 1);
    ml_query_destroy (&query);
    ml_odbc_destroy (&odbc);

    //  A driver that does not exist fails cleanly.
    assert (ml_odbc_new ("Driver=NoSuchDriver;Database=x", &error) == NULL);
    assert (error.kind != ML_ODBC_OK && *error.message);

    assert (ml_odbc_classify ("08S01", 0, "") == ML_ODBC_LOST);
    assert (ml_odbc_classify ("40P01", 0, "") == ML_ODBC_RETRY);
    assert (ml_odbc_classify ("HY000", 2006, "") == ML_ODBC_LOST);
    assert (ml_odbc_classify ("P0001", 0, "ERROR: ML001 invoice_not_open") == ML_ODBC_BUSINESS);
    assert (ml_odbc_classify ("23505", 0, "") == ML_ODBC_DATA);
    assert (ml_odbc_classify ("HY018", 1969, "max_statement_time exceeded") == ML_ODBC_TIMEOUT);
    assert (ml_odbc_classify ("HYT00", 0, "") == ML_ODBC_TIMEOUT);
    unlink (path);
    rmdir (directory);
    printf ("OK\n");
}
