/*  ml_db: one connection to the core's own store, native (libsqlite3 or libpq), and the
    statements run on it.

    ODBC is for the firms' matter databases (ml_odbc); the core's store is ours, so it is
    reached through its engine's own library: no driver manager, no driver copying every
    row, and every statement prepared once per connection and reused (a cache keyed by the
    SQL text). The calls have the shape of ml_odbc's so the store's classes read alike:
    values cross as text or int64, parameters are always bound, never spliced into SQL.

    A connection belongs to one thread at a time (the core gives each thread its own).

    SQL is written in SQLite's dialect. On PostgreSQL each statement is translated once, when
    it is prepared, in one place (ml_db_pg.c): '?' becomes $1..$n, INTEGER becomes BIGINT
    (money is int64), INTEGER PRIMARY KEY [AUTOINCREMENT] an identity column, INSERT OR
    IGNORE an ON CONFLICT DO NOTHING, group_concat string_agg, last_insert_rowid () lastval
    (), and CREATE TRIGGER ... BEGIN ... END a plpgsql function and its trigger (RAISE
    (ABORT, 'm') raises 'm'). COLLATE NOCASE is a case-insensitive ICU collation named
    nocase, and instr () a function, both created in the store on first connection. Where
    the dialects differ beyond that (INSERT OR REPLACE, JSON) a class asks ml_db_dialect and
    writes each dialect's statement itself. PRAGMA does nothing on PostgreSQL, except
    "synchronous", which sets synchronous_commit (FULL: on; NORMAL or OFF: off).
*/
#ifndef ML_DB_H_INCLUDED
#define ML_DB_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _ml_db_t ml_db_t;
typedef struct _ml_db_query_t ml_db_query_t;

typedef enum {
    ML_DB_OK = 0,
    ML_DB_LOST,    //  the connection or its file is gone
    ML_DB_RETRY,   //  another writer holds the store (busy past the timeout): run it again
    ML_DB_TIMEOUT, //  the statement was interrupted
    ML_DB_DATA,    //  constraint or data error: this input will never succeed
    ML_DB_OTHER
} ml_db_class_t;

typedef enum { ML_DB_SQLITE = 0, ML_DB_POSTGRESQL } ml_db_dialect_t;

typedef struct {
    ml_db_class_t kind;
    char sqlstate[6]; //  SQLite: "23000" for a constraint, "HY000" otherwise (as ODBC would
                      //  say); PostgreSQL: the server's SQLSTATE ("08006" when the connection
                      //  is lost)
    long native;      //  SQLite's extended result code (0 on PostgreSQL)
    char message[512];
} ml_db_error_t;

//  Open the store named by connection:
//    - "sqlite:PATH", or a path (no '=' in it), or, as the core's configuration has always
//      written it, "Driver=SQLite3;Database=PATH;Timeout=MS;FKSupport=1;StepAPI=1"
//      (Timeout: how long a statement waits for another writer, default 5000 ms;
//      FKSupport=1: foreign keys enforced). The file is created when missing (owner-only
//      under the daemons' umask).
//    - "postgresql://USER@HOST:PORT/DATABASE?..." (a libpq URI), or "postgresql:" followed
//      by libpq's conninfo ("host=... port=... dbname=... user=..."); a password is best
//      kept in ~/.pgpass or PGPASSFILE, and is never copied into an error or a log. Each
//      connection gives up connecting after 10 s (unless connect_timeout says otherwise),
//      and sets time zone UTC, UTF-8, and lock_timeout 5 s unless the connection
//      string sets it (options='-c lock_timeout=...'): how long ml_db_begin waits for the
//      store's write lock before giving up as ML_DB_RETRY. Errors are classed from the
//      SQLSTATE: 22xxx, 23xxx and a trigger's refusal are data; 40001, 40P01 and 55P03
//      retry; 57014 timeout; a lost connection (08xxx, 57P0x) is lost, and the next call
//      reconnects (never inside a transaction: that stays failed until rolled back). A
//      connection lost during COMMIT is not left in doubt where the server can tell: the
//      core asks it, on a new connection, whether the transaction committed (by its id);
//      committed is success, otherwise the commit failed as lost.
//  Returns the connection, or NULL with *error filled (an unknown key or an unsupported
//  engine is named; the connection string is never copied into an error).
ml_db_t *ml_db_new (const char *connection, ml_db_error_t *error);

//  The connection's SQL dialect, for the few statements written per dialect, and its name
//  ("sqlite", "postgresql").
ml_db_dialect_t ml_db_dialect (ml_db_t *self);
const char *ml_db_dialect_name (ml_db_t *self);

//  Close (rolls back an open transaction, finalizes every cached statement). Idempotent.
void ml_db_destroy (ml_db_t **self_p);

//  The last error on this connection (borrowed).
const ml_db_error_t *ml_db_error (ml_db_t *self);

//  Name of an error class, for logs.
const char *ml_db_class_name (ml_db_class_t kind);

//  Start a transaction. It takes the store's write lock at once (SQLite: BEGIN IMMEDIATE;
//  PostgreSQL: BEGIN and a transaction-scoped advisory lock on one store-wide key), waiting
//  up to the timeout, so a transaction that reads and then writes never fails half way
//  because another connection wrote in between. On both engines this serializes the
//  store's writing transactions, as SQLite always did; reads (and statements run outside
//  ml_db_begin) do not wait, nor, on PostgreSQL, transactions that lock their own rows
//  (ml_db_begin_rows). Returns 0 or -1.
int ml_db_begin (ml_db_t *self);
//  Start a transaction that locks the rows it writes instead of the store: on PostgreSQL
//  it takes no store-wide lock, so it runs beside the ml_db_begin transactions (SQLite, or
//  while grouping: ml_db_begin). For a transaction whose every write is of rows that any
//  other writer of them locks first, in the same order (the caller locks them: an UPDATE,
//  or SELECT ... FOR UPDATE, at its start): the replica's changes of one firm
//  (ml_store_changes), which the core thread's rounds then no longer wait for. 0 or -1.
int ml_db_begin_rows (ml_db_t *self);
int ml_db_commit (ml_db_t *self);
//  Roll back; 0 also when no transaction was open.
int ml_db_rollback (ml_db_t *self);

//  Group commit: from ml_db_group_begin on, the transactions of this connection
//  (ml_db_begin .. ml_db_commit) and its writes outside them are parts of one transaction,
//  opened by the first of them and committed by ml_db_group_commit or ml_db_group_end. Each
//  still fails alone (a savepoint: ml_db_rollback undoes its writes only), but none is
//  committed, durable or seen by other connections before the group is: the caller holds
//  back every effect of a commit (a reply, a message, a processor call) until the group
//  commit returns 0, and drops them when it fails (then everything grouped is undone).
//  One commit (one fsync, each page written once) then carries many transactions.
void ml_db_group_begin (ml_db_t *self);
//  Whether grouping is on.
bool ml_db_grouping (ml_db_t *self);
//  Commit what is grouped so far and go on grouping: 0, or -1 (undone; and what is grouped
//  after it is undone too, until ml_db_group_end, since its effects are dropped with theirs).
int ml_db_group_commit (ml_db_t *self);
//  Commit what is grouped and stop grouping: 0 when this and every ml_db_group_commit since
//  ml_db_group_begin succeeded, else -1.
int ml_db_group_end (ml_db_t *self);

//  Run a statement that returns no rows. picture names the parameters that follow, one
//  character each: 's' const char * (NULL binds SQL NULL), 'i' int64_t. Returns the number
//  of rows changed, or -1 on error.
int64_t ml_db_execute (ml_db_t *self, const char *sql, const char *picture, ...);

//  Run a write whose outcome the caller does not need at once (no count read, no failure
//  it would handle): inside a transaction on PostgreSQL it is sent with the connection's
//  next round trip (the next statement that answers, or the COMMIT) in one pipeline, so a
//  transaction's writes do not each wait for the server. Should it fail, the call that
//  sent it fails with its error (classed ML_DB_OTHER, never DATA: that call's own
//  statement broke nothing), and the transaction cannot commit; while grouping, the whole
//  round fails (ml_db_group_commit), and the next round defers nothing. Elsewhere (SQLite,
//  outside a transaction) it runs at once. Returns 0, or -1 on a failure known now.
int ml_db_defer (ml_db_t *self, const char *sql, const char *picture, ...);

//  One parameter value: text for 's' (NULL binds SQL NULL), number for 'i'.
typedef struct {
    const char *text;
    int64_t number;
} ml_db_value_t;

//  ml_db_defer with its parameters in values (strlen (picture) of them), as
//  ml_db_query_values.
int ml_db_defer_values (ml_db_t *self, const char *sql, const char *picture,
                        const ml_db_value_t *values);

//  Run a statement once for each of rows rows of parameters (values holds rows *
//  strlen (picture) values, row after row). Returns 0, or -1 on the first failure (the
//  caller rolls back its transaction).
int ml_db_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                        const ml_db_value_t *values);

//  Run a statement that returns rows. Returns a new query positioned before the first row
//  (caller owns it and destroys it before the connection), or NULL on error. On
//  PostgreSQL the whole result is read at once (so queries may nest, as on SQLite): keep
//  what a query returns bounded (LIMIT), as the store's readers do.
ml_db_query_t *ml_db_query (ml_db_t *self, const char *sql, const char *picture, ...);
ml_db_query_t *ml_db_query_values (ml_db_t *self, const char *sql, const char *picture,
                                   const ml_db_value_t *values);

//  On PostgreSQL, run this connection's prepared statements by their generic plans
//  (plan_cache_mode force_generic_plan, unless the connection string or the server sets a
//  mode other than the default), now and after a reconnection. For a connection that runs
//  the same statements over and over for many firms (the core thread's payments): planning
//  each run again for the replica's partitions, as the server does by default for those
//  statements, cost more there than the locks a generic plan takes on every partition
//  (bench/RESULTS.md, session 9; a read of one firm's rows is better aimed at its own
//  partition then: ml_store_generic_plans); a connection that replaces a firm's replica (the ingest
//  thread) is faster with plans that touch its one partition. Nothing on SQLite. 0 or -1.
int ml_db_generic_plans (ml_db_t *self);

//  Ask ahead for the rows of a SELECT that a later ml_db_query of the same SQL and values
//  will want: on PostgreSQL the read rides with the connection's next round trip (in one
//  pipeline with it), and that query then costs none; a step that reads several things it
//  knows at its start (a payment: the payer, their cards, the invoices, the accounts) reads
//  them in one round trip. Only while nothing is written: every write, deferred write,
//  rollback or end of a transaction drops the reads asked ahead (their answers may no
//  longer be true), and the query then runs as usual. Advice only: a read not asked for,
//  or a statement this connection has not prepared yet, costs nothing more than the query
//  itself. Nothing on SQLite (no round trips to save).
void ml_db_prefetch (ml_db_t *self, const char *sql, const char *picture, ...);
void ml_db_prefetch_values (ml_db_t *self, const char *sql, const char *picture,
                            const ml_db_value_t *values);

//  Advance to the next row: 1 a row, 0 no more rows, -1 error (see ml_db_error).
int ml_db_fetch (ml_db_query_t *self);

//  Number of result columns, and a column's name (borrowed).
int ml_db_columns (ml_db_query_t *self);
const char *ml_db_column_name (ml_db_query_t *self, int column);

//  A column of the current row as text (borrowed, valid until the next fetch), or NULL
//  when SQL NULL. Columns count from 0.
const char *ml_db_text (ml_db_query_t *self, int column);

//  True if a column's value was cut: never for these engines (values arrive whole); kept so
//  a reader that checks it reads the same on every store.
bool ml_db_truncated (ml_db_query_t *self, int column);

//  A column of the current row as an integer. Returns 0, or -1 if NULL or not an integer.
int ml_db_int64 (ml_db_query_t *self, int column, int64_t *value);

//  Close and destroy the query (its statement goes back to the cache). Idempotent.
void ml_db_query_destroy (ml_db_query_t **self_p);

//  How many statements this connection has prepared, and how many runs reused one (for
//  tests and the benchmark).
void ml_db_statement_counts (ml_db_t *self, size_t *prepared, size_t *reused);

//  How many round trips to the server this connection has made (PostgreSQL; 0 on SQLite,
//  which has none): for tests and the benchmark.
size_t ml_db_round_trips (ml_db_t *self);

//  A function every connection of the process calls while it waits for another
//  connection's write lock (SQLite), at most every millisecond: the ingest thread
//  (core/ml_ingest.c) then commits its long transaction early. NULL for none.
typedef void ml_db_waiting_fn (void);
void ml_db_set_waiting_hook (ml_db_waiting_fn *hook);

void ml_db_test (bool verbose);

#endif
