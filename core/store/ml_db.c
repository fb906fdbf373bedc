/*  ml_db: the core's store connection (see include/ml_db.h). This file dispatches to the
    engine's backend (ml_db_sqlite.c, ml_db_pg.c) and holds what both share: parameters,
    error classes, integer columns and the selftest.
*/
#include "ml_db_internal.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_PG(db) ((db)->dialect == ML_DB_POSTGRESQL)

void ml_db_set_error (ml_db_error_t *error, ml_db_class_t kind, const char *sqlstate, long native,
                      const char *message)
{
    memset (error, 0, sizeof *error);
    error->kind = kind;
    error->native = native;
    snprintf (error->sqlstate, sizeof error->sqlstate, "%s", sqlstate);
    snprintf (error->message, sizeof error->message, "%s", message);
}

int ml_db_parse_int64 (const char *text, int64_t *value)
{
    if (!text)
        return -1;
    char *stop = NULL;
    errno = 0;
    long long number = strtoll (text, &stop, 10);
    if (!*text || errno || *stop)
        return -1;
    *value = number;
    return 0;
}

//  "postgresql://...", "postgres://..." (libpq URIs) and "postgresql:" followed by libpq's
//  KEY=VALUE conninfo name a PostgreSQL store; anything else is SQLite's.
static bool s_is_postgresql (const char *connection)
{
    return strncasecmp (connection, "postgresql:", 11) == 0 ||
           strncasecmp (connection, "postgres:", 9) == 0;
}

ml_db_t *ml_db_new (const char *connection, ml_db_error_t *error)
{
    assert (connection && error);
    ml_db_t *self = calloc (1, sizeof (ml_db_t));
    assert (self);
    self->dialect = s_is_postgresql (connection) ? ML_DB_POSTGRESQL : ML_DB_SQLITE;
    int rc = S_PG (self) ? ml_db_pg_open (self, connection, error)
                         : ml_db_sqlite_open (self, connection, error);
    if (rc != 0) {
        free (self);
        return NULL;
    }
    return self;
}

void ml_db_destroy (ml_db_t **self_p)
{
    assert (self_p);
    ml_db_t *self = *self_p;
    if (self) {
        if (S_PG (self))
            ml_db_pg_close (self);
        else
            ml_db_sqlite_close (self);
        free (self);
        *self_p = NULL;
    }
}

ml_db_dialect_t ml_db_dialect (ml_db_t *self)
{
    assert (self);
    return self->dialect;
}

const char *ml_db_dialect_name (ml_db_t *self)
{
    assert (self);
    return S_PG (self) ? "postgresql" : "sqlite";
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

//  Fill values from the variable arguments of picture.
static void s_values (const char *picture, va_list arguments, ml_db_value_t *values,
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
}

static int s_group_open (ml_db_t *self);
static int s_plain (ml_db_t *self, const char *sql);

static int64_t s_execute_values (ml_db_t *self, const char *sql, const char *picture,
                                 const ml_db_value_t *values)
{
    //  While grouping, a write outside the caller's transactions joins the group's too. On
    //  PostgreSQL a failed statement would abort the group's transaction: it runs in a
    //  savepoint of its own there (SQLite undoes only the failed statement).
    if (self->grouping && !self->in_savepoint) {
        if (s_group_open (self) != 0)
            return -1;
        if (S_PG (self)) {
            //  The SAVEPOINT goes with the statement (ml_db_pg.c), in one round trip.
            self->savepoint_owed = "SAVEPOINT ml_statement";
            int64_t rc = ml_db_pg_execute (self, sql, picture, values);
            if (rc < 0 && self->savepoint_owed) {
                self->savepoint_owed = NULL; //  nothing was sent
                return rc;
            }
            if (rc >= 0) {
                //  Released with the group's next savepoint command, or by its COMMIT.
                self->release_owed = "RELEASE SAVEPOINT ml_statement";
                return rc;
            }
            ml_db_error_t kept = self->error;
            if (s_plain (self, "ROLLBACK TO SAVEPOINT ml_statement;"
                               " RELEASE SAVEPOINT ml_statement") != 0)
                self->group_failed = true;
            self->error = kept;
            return rc;
        }
    }
    return S_PG (self) ? ml_db_pg_execute (self, sql, picture, values)
                       : ml_db_sqlite_execute (self, sql, picture, values);
}

int64_t ml_db_execute (ml_db_t *self, const char *sql, const char *picture, ...)
{
    assert (self && sql);
    ml_db_value_t values[64] = {{0}};
    va_list arguments;
    va_start (arguments, picture);
    s_values (picture, arguments, values, 64);
    va_end (arguments);
    return s_execute_values (self, sql, picture, values);
}

int ml_db_defer (ml_db_t *self, const char *sql, const char *picture, ...)
{
    assert (self && sql);
    ml_db_value_t values[64] = {{0}};
    va_list arguments;
    va_start (arguments, picture);
    s_values (picture, arguments, values, 64);
    va_end (arguments);
    return ml_db_defer_values (self, sql, picture, values);
}

int ml_db_defer_values (ml_db_t *self, const char *sql, const char *picture,
                        const ml_db_value_t *values)
{
    assert (self && sql);
    //  Deferred only inside the caller's transaction (while grouping, its savepoint), and
    //  not in the round after one that a deferred write failed.
    if (S_PG (self) && !self->defer_paused && (!self->grouping || self->in_savepoint))
        return ml_db_pg_defer (self, sql, picture, values);
    return s_execute_values (self, sql, picture, values) < 0 ? -1 : 0;
}

int ml_db_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                        const ml_db_value_t *values)
{
    assert (self && sql && picture);
    size_t width = strlen (picture);
    if (width == 0 || width > ML_DB_PARAMETERS_MAX) {
        ml_db_set_error (&self->error, ML_DB_OTHER, "HY000", 0,
                         "a batch's picture is empty or too wide (a bug)");
        return -1;
    }
    return S_PG (self) ? ml_db_pg_execute_many (self, sql, picture, rows, values)
                       : ml_db_sqlite_execute_many (self, sql, picture, rows, values);
}

ml_db_query_t *ml_db_query_values (ml_db_t *self, const char *sql, const char *picture,
                                   const ml_db_value_t *values)
{
    assert (self && sql);
    void *backend = S_PG (self) ? ml_db_pg_query (self, sql, picture, values)
                                : ml_db_sqlite_query (self, sql, picture, values);
    if (!backend)
        return NULL;
    ml_db_query_t *query = calloc (1, sizeof (ml_db_query_t));
    assert (query);
    query->db = self;
    query->backend = backend;
    return query;
}

int ml_db_generic_plans (ml_db_t *self)
{
    assert (self);
    return S_PG (self) ? ml_db_pg_generic_plans (self) : 0;
}

void ml_db_prefetch_values (ml_db_t *self, const char *sql, const char *picture,
                            const ml_db_value_t *values)
{
    assert (self && sql);
    //  While grouping, the reads go in the group's transaction, which the step asking them
    //  ahead is about to open anyway (its BEGIN would drop them).
    if (S_PG (self) && s_group_open (self) == 0)
        ml_db_pg_prefetch (self, sql, picture, values);
}

void ml_db_prefetch (ml_db_t *self, const char *sql, const char *picture, ...)
{
    ml_db_value_t values[64] = {{0}};
    va_list arguments;
    va_start (arguments, picture);
    s_values (picture, arguments, values, 64);
    va_end (arguments);
    ml_db_prefetch_values (self, sql, picture, values);
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
    return S_PG (self->db) ? ml_db_pg_fetch (self) : ml_db_sqlite_fetch (self);
}

int ml_db_columns (ml_db_query_t *self)
{
    assert (self);
    return S_PG (self->db) ? ml_db_pg_columns (self) : ml_db_sqlite_columns (self);
}

const char *ml_db_column_name (ml_db_query_t *self, int column)
{
    assert (self);
    return S_PG (self->db) ? ml_db_pg_column_name (self, column)
                           : ml_db_sqlite_column_name (self, column);
}

const char *ml_db_text (ml_db_query_t *self, int column)
{
    assert (self);
    return S_PG (self->db) ? ml_db_pg_text (self, column) : ml_db_sqlite_text (self, column);
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
    if (S_PG (self->db))
        return ml_db_parse_int64 (ml_db_pg_text (self, column), value);
    return ml_db_sqlite_int64 (self, column, value);
}

void ml_db_query_destroy (ml_db_query_t **self_p)
{
    assert (self_p);
    ml_db_query_t *self = *self_p;
    if (self) {
        if (S_PG (self->db))
            ml_db_pg_query_close (self);
        else
            ml_db_sqlite_query_close (self);
        free (self);
        *self_p = NULL;
    }
}

static int s_engine_begin (ml_db_t *self)
{
    if (S_PG (self))
        return ml_db_pg_begin (self, true);
    return ml_db_sqlite_execute (self, "BEGIN IMMEDIATE", NULL, NULL) < 0 ? -1 : 0;
}

static int s_engine_commit (ml_db_t *self)
{
    if (S_PG (self))
        return ml_db_pg_commit (self);
    return ml_db_sqlite_execute (self, "COMMIT", NULL, NULL) < 0 ? -1 : 0;
}

static int s_engine_rollback (ml_db_t *self)
{
    if (S_PG (self))
        return ml_db_pg_rollback (self);
    if (!ml_db_sqlite_in_transaction (self))
        return 0;
    return ml_db_sqlite_execute (self, "ROLLBACK", NULL, NULL) < 0 ? -1 : 0;
}

//  A statement of the group's own (SAVEPOINT, RELEASE, ROLLBACK TO): 0 or -1. On
//  PostgreSQL the savepoint commands owed go first in the same round trip (ml_db_pg_plain).
//  Any failure there leaves the group's transaction aborted, so the group cannot commit.
static int s_plain (ml_db_t *self, const char *sql)
{
    if (!S_PG (self))
        return ml_db_sqlite_execute (self, sql, NULL, NULL) < 0 ? -1 : 0;
    int rc = ml_db_pg_plain (self, sql);
    if (rc != 0 && self->group_open)
        self->group_failed = true;
    return rc;
}

//  While grouping, the group's transaction is opened by its first write.
static int s_group_open (ml_db_t *self)
{
    if (!self->grouping || self->group_open)
        return 0;
    if (s_engine_begin (self) != 0)
        return -1;
    self->group_open = true;
    return 0;
}

int ml_db_begin (ml_db_t *self)
{
    assert (self);
    if (!self->grouping) {
        self->deferred_failed = false;
        return s_engine_begin (self);
    }
    if (self->in_savepoint) {
        ml_db_set_error (&self->error, ML_DB_OTHER, "25001", 0,
                         "a transaction is already open on this connection (a bug)");
        return -1;
    }
    if (s_group_open (self) != 0)
        return -1;
    if (S_PG (self))
        self->savepoint_owed = "SAVEPOINT ml_group"; //  sent with the first statement
    else if (s_plain (self, "SAVEPOINT ml_group") != 0)
        return -1;
    self->in_savepoint = true;
    return 0;
}

int ml_db_begin_rows (ml_db_t *self)
{
    assert (self);
    if (!S_PG (self) || self->grouping)
        return ml_db_begin (self);
    self->deferred_failed = false;
    return ml_db_pg_begin (self, false);
}

int ml_db_commit (ml_db_t *self)
{
    assert (self);
    if (!self->grouping)
        return s_engine_commit (self);
    //  Inside the group, the transaction's writes join the group's, committed by
    //  ml_db_group_commit or ml_db_group_end. On PostgreSQL the RELEASE is owed: it goes
    //  with the next savepoint command (one round trip a transaction, not two) or is done
    //  by the group's COMMIT; should it fail, the group fails whole, and nothing of the
    //  round has left the core (ml_group holds it until the round commits).
    if (!self->in_savepoint)
        return -1;
    self->in_savepoint = false;
    if (S_PG (self)) {
        if (self->savepoint_owed)
            self->savepoint_owed = NULL; //  nothing ran: nothing to release
        else
            self->release_owed = "RELEASE SAVEPOINT ml_group";
        return 0;
    }
    return s_plain (self, "RELEASE SAVEPOINT ml_group");
}

int ml_db_rollback (ml_db_t *self)
{
    assert (self);
    if (!self->grouping)
        return s_engine_rollback (self);
    //  Only this transaction's writes are undone; the group's others stay.
    if (!self->in_savepoint)
        return 0;
    self->in_savepoint = false;
    if (self->savepoint_owed) {
        self->savepoint_owed = NULL; //  nothing ran: nothing to undo
        return 0;
    }
    //  On PostgreSQL this transaction's deferred writes are dropped, not sent to be undone
    //  (one that would fail would fail the round); when its savepoint has not gone either,
    //  nothing needs undoing.
    if (S_PG (self) && ml_db_pg_owed_drop_from (self, "SAVEPOINT ml_group"))
        return 0;
    int rc = S_PG (self)
                 ? s_plain (self, "ROLLBACK TO SAVEPOINT ml_group; RELEASE SAVEPOINT ml_group")
             : s_plain (self, "ROLLBACK TO SAVEPOINT ml_group") == 0 &&
                     s_plain (self, "RELEASE SAVEPOINT ml_group") == 0
                 ? 0
                 : -1;
    if (rc != 0)
        self->group_failed = true; //  the group's transaction is broken: it cannot commit
    return rc;
}

void ml_db_group_begin (ml_db_t *self)
{
    assert (self);
    self->grouping = true;
}

bool ml_db_grouping (ml_db_t *self)
{
    assert (self);
    return self->grouping;
}

int ml_db_group_commit (ml_db_t *self)
{
    assert (self);
    if (self->in_savepoint) {
        //  A transaction left open by its caller (a bug): it does not join the group.
        ml_db_rollback (self);
        self->group_failed = true;
    }
    self->release_owed = self->savepoint_owed = NULL; //  COMMIT or ROLLBACK ends every savepoint
    //  A deferred write that failed may have been one of a transaction that ended before
    //  its error was seen: the round cannot commit. The next defers nothing, so should that
    //  write fail again, it fails only its own transaction.
    bool deferred_failed = self->deferred_failed;
    self->defer_paused = deferred_failed;
    self->deferred_failed = false;
    if (deferred_failed)
        self->group_failed = true;
    if (!self->group_open)
        return self->group_failed ? -1 : 0;
    self->group_open = false;
    int rc = self->group_failed ? -1 : s_engine_commit (self);
    if (rc != 0) {
        ml_db_error_t kept = self->error;
        s_engine_rollback (self);
        self->error = kept;
        self->group_failed = true;
    }
    if (self->deferred_failed) { //  sent with the COMMIT
        self->defer_paused = true;
        self->deferred_failed = false;
    }
    return rc;
}

int ml_db_group_end (ml_db_t *self)
{
    assert (self);
    int rc = ml_db_group_commit (self) == 0 && !self->group_failed ? 0 : -1;
    self->grouping = false;
    self->group_failed = false;
    return rc;
}

void ml_db_statement_counts (ml_db_t *self, size_t *prepared, size_t *reused)
{
    assert (self);
    if (prepared)
        *prepared = self->prepared;
    if (reused)
        *reused = self->reused;
}

size_t ml_db_round_trips (ml_db_t *self)
{
    assert (self);
    return self->round_trips;
}

static int64_t s_count (ml_db_t *db, const char *sql)
{
    int64_t value = -1;
    ml_db_query_t *query = ml_db_query (db, sql, NULL);
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0);
    ml_db_query_destroy (&query);
    return value;
}

void ml_db_group_test (ml_db_t *db, ml_db_t *other)
{
    assert (ml_db_execute (db, "CREATE TABLE g_parent (id BIGINT PRIMARY KEY)", NULL) == 0);
    assert (ml_db_execute (db,
                           "CREATE TABLE g_child (name TEXT PRIMARY KEY, parent BIGINT REFERENCES"
                           " g_parent (id) DEFERRABLE INITIALLY DEFERRED)",
                           NULL) == 0);
    const char *count = "SELECT COUNT(*) FROM g_child";
    //  Transactions are savepoints of the group's; another connection sees none of them
    //  before the group commits; one rolled back is undone alone.
    ml_db_group_begin (db);
    assert (ml_db_grouping (db));
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('kept')", NULL) == 1);
    assert (ml_db_commit (db) == 0);
    assert (ml_db_begin (db) == 0);
    assert (ml_db_begin (db) == -1); //  no nesting, as without a group
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('undone')", NULL) == 1);
    assert (ml_db_rollback (db) == 0);
    assert (ml_db_rollback (db) == 0);
    //  A failed statement outside a transaction fails alone; a good one joins the group.
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('kept')", NULL) == -1);
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('alone')", NULL) == 1);
    assert (s_count (db, count) == 2 && s_count (other, count) == 0);
    //  On PostgreSQL a transaction's savepoint commands cost no round trip of their own:
    //  they go with its first statement (the RELEASE of the one before too).
    const char *insert = "INSERT INTO g_child (name) VALUES (?)";
    assert (ml_db_begin (db) == 0 && ml_db_execute (db, insert, "s", "first") == 1);
    assert (ml_db_commit (db) == 0);
    size_t trips = ml_db_round_trips (db);
    assert (ml_db_begin (db) == 0 && ml_db_execute (db, insert, "s", "second") == 1);
    assert (ml_db_execute (db, insert, "s", "third") == 1 && ml_db_commit (db) == 0);
    assert (ml_db_begin (db) == 0 && ml_db_commit (db) == 0); //  nothing: nothing sent
    assert (ml_db_begin (db) == 0 && ml_db_execute (db, insert, "s", "fourth") == 1);
    assert (ml_db_execute (db, insert, "s", "second") == -1); //  fails alone
    assert (ml_db_rollback (db) == 0);
    assert (ml_db_round_trips (db) - trips == (S_PG (db) ? 5u : 0u));
    assert (s_count (db, count) == 5 && s_count (other, count) == 0);
    assert (ml_db_execute (db, "DELETE FROM g_child WHERE name IN ('first', 'second', 'third')",
                           NULL) == 3);
    assert (ml_db_group_commit (db) == 0);
    assert (ml_db_grouping (db) && s_count (other, count) == 2);
    //  A group whose commit fails (a deferred constraint) is undone whole, and so is what
    //  is grouped after it until the group ends, which says so.
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_child (name, parent) VALUES ('orphan', 7)", NULL) ==
            1);
    assert (ml_db_commit (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('lost')", NULL) == 1);
    assert (ml_db_group_commit (db) == -1);
    assert (s_count (db, count) == 2 && s_count (other, count) == 2);
    assert (ml_db_execute (db, "INSERT INTO g_child (name) VALUES ('after')", NULL) == 1);
    assert (ml_db_group_end (db) == -1);
    assert (!ml_db_grouping (db) && s_count (other, count) == 2);
    //  Ended, transactions are the engine's again.
    assert (ml_db_begin (db) == 0 && ml_db_begin (other) == -1);
    assert (ml_db_rollback (db) == 0);
    ml_db_group_begin (db);
    assert (ml_db_group_end (db) == 0); //  nothing grouped: nothing to commit
    assert (ml_db_execute (db, "DROP TABLE g_child", NULL) == 0);
    assert (ml_db_execute (db, "DROP TABLE g_parent", NULL) == 0);
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
    assert (db && ml_db_dialect (db) == ML_DB_SQLITE);

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
    ml_db_group_test (db, other);
    ml_db_destroy (&other);

    query = ml_db_query (db, "SELECT COUNT(*) FROM t", NULL);
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0 && value == 2);
    ml_db_query_destroy (&query);
    ml_db_destroy (&db);
    ml_db_destroy (&db);

    char command[512];
    snprintf (command, sizeof command, "rm -rf %s", directory);
    assert (system (command) == 0);

    //  The same on PostgreSQL when a test server is given (selftest_ml_db_postgresql).
    const char *postgresql = getenv ("ML_DB_TEST_POSTGRESQL");
    if (postgresql && *postgresql)
        ml_db_pg_test (verbose, postgresql);
    if (verbose)
        printf ("OK\n");
}
