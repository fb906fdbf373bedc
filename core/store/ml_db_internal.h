/*  ml_db's backends: what ml_db.c (the dispatch and the parts every engine shares) needs
    from ml_db_sqlite.c and ml_db_pg.c. Not a public header.
*/
#ifndef ML_DB_INTERNAL_H_INCLUDED
#define ML_DB_INTERNAL_H_INCLUDED

#include "ml_db.h"

//  More distinct statements than this (the store's SQL is ours and finite; a few are built
//  from the filters given, and on the core thread's connection a firm's open items are
//  read from its own partition, ML_STORE_PARTITIONS_MAX) and new ones run without being
//  kept.
#define ML_DB_CACHE_MAX      4096
#define ML_DB_PARAMETERS_MAX 2048

struct _ml_db_t {
    ml_db_dialect_t dialect;
    ml_db_error_t error;
    size_t prepared, reused, round_trips;
    //  Group commit (ml_db_group_begin): grouping asked, its transaction open, one of the
    //  caller's transactions open inside it (a savepoint), a commit of the group failed.
    bool grouping, group_open, in_savepoint, group_failed;
    //  On PostgreSQL, savepoint commands owed (NULL or the statement): a RELEASE goes with
    //  the group's next savepoint command in one round trip, or is left to the group's
    //  COMMIT; both go with the next statement the connection runs (ml_db_pg.c).
    const char *release_owed, *savepoint_owed;
    //  A deferred write (ml_db_defer) failed when it was sent: the transaction it belonged
    //  to cannot commit; and after a round that failed so, the next round defers nothing,
    //  so a write that fails every time fails only its own transaction there.
    bool deferred_failed, defer_paused;
    void *backend; //  the engine's connection state (ml_db_sqlite.c or ml_db_pg.c)
};

struct _ml_db_query_t {
    ml_db_t *db;
    void *backend; //  the engine's statement or result
};

void ml_db_set_error (ml_db_error_t *error, ml_db_class_t kind, const char *sqlstate, long native,
                      const char *message);

//  Each backend: open fills self->backend (0, or -1 with *error set and nothing to free);
//  close frees it. execute returns rows changed or -1; query returns the backend's query
//  state or NULL; the rest mirror the public calls. Errors go to self->error.
int ml_db_sqlite_open (ml_db_t *self, const char *connection, ml_db_error_t *error);
void ml_db_sqlite_close (ml_db_t *self);
int64_t ml_db_sqlite_execute (ml_db_t *self, const char *sql, const char *picture,
                              const ml_db_value_t *values);
int ml_db_sqlite_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                               const ml_db_value_t *values);
void *ml_db_sqlite_query (ml_db_t *self, const char *sql, const char *picture,
                          const ml_db_value_t *values);
int ml_db_sqlite_fetch (ml_db_query_t *query);
int ml_db_sqlite_columns (ml_db_query_t *query);
const char *ml_db_sqlite_column_name (ml_db_query_t *query, int column);
const char *ml_db_sqlite_text (ml_db_query_t *query, int column);
int ml_db_sqlite_int64 (ml_db_query_t *query, int column, int64_t *value);
void ml_db_sqlite_query_close (ml_db_query_t *query);
bool ml_db_sqlite_in_transaction (ml_db_t *self);

int ml_db_pg_open (ml_db_t *self, const char *connection, ml_db_error_t *error);
void ml_db_pg_close (ml_db_t *self);
int64_t ml_db_pg_execute (ml_db_t *self, const char *sql, const char *picture,
                          const ml_db_value_t *values);
//  A grouped transaction rolled back: when its savepoint command (the text) is still owed,
//  not sent, drop it and everything owed after it and return true (nothing to undo); else
//  drop what is owed (all of it the transaction's own, after its savepoint went) and return
//  false (the ROLLBACK TO undoes what went).
bool ml_db_pg_owed_drop_from (ml_db_t *self, const char *savepoint);
//  Owe a write to the next round trip, inside a transaction (ml_db_defer): 0 or -1.
int ml_db_pg_defer (ml_db_t *self, const char *sql, const char *picture,
                    const ml_db_value_t *values);
//  ml_db_generic_plans: 0 or -1.
int ml_db_pg_generic_plans (ml_db_t *self);
//  Ask for a read ahead, to ride with the next round trip (ml_db_prefetch).
void ml_db_pg_prefetch (ml_db_t *self, const char *sql, const char *picture,
                        const ml_db_value_t *values);
int ml_db_pg_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                           const ml_db_value_t *values);
void *ml_db_pg_query (ml_db_t *self, const char *sql, const char *picture,
                      const ml_db_value_t *values);
int ml_db_pg_fetch (ml_db_query_t *query);
int ml_db_pg_columns (ml_db_query_t *query);
const char *ml_db_pg_column_name (ml_db_query_t *query, int column);
const char *ml_db_pg_text (ml_db_query_t *query, int column);
void ml_db_pg_query_close (ml_db_query_t *query);
//  BEGIN, with the store-wide lock or (store_lock false) without.
int ml_db_pg_begin (ml_db_t *self, bool store_lock);
int ml_db_pg_commit (ml_db_t *self);
int ml_db_pg_rollback (ml_db_t *self);
//  Run one statement of the simple protocol (SAVEPOINT and its kin): 0 or -1.
int ml_db_pg_plain (ml_db_t *self, const char *sql);
//  COPY (sql: COPY ... FROM STDIN) of data, rows in COPY's text format. 0 or -1.
int ml_db_pg_copy (ml_db_t *self, const char *sql, const char *data, size_t length);
//  Whether transaction xid (pg_current_xact_id's text) committed: 1 yes, 0 no (aborted),
//  -1 not known (still running, too old, or the server cannot be reached).
int ml_db_pg_outcome (ml_db_t *self, const char *xid);

//  The PostgreSQL text of one SQLite-dialect statement (see ml_db_pg.c: placeholders,
//  types, triggers). Returns a new string (caller frees), or NULL with error set.
char *ml_db_pg_translate (const char *sql, int *parameters, ml_db_error_t *error);

//  Parse an integer column's text: 0, or -1 when it is not exactly an integer.
int ml_db_parse_int64 (const char *text, int64_t *value);

void ml_db_pg_test (bool verbose, const char *connection);
//  Group commit's test, on two connections to one store of either engine.
void ml_db_group_test (ml_db_t *db, ml_db_t *other);

#endif
