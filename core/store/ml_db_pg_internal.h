/*  ml_db's PostgreSQL backend, its parts: the connection (ml_db_pg.c), the round-trip tally
    (ml_db_pg_tally.c) and the pipeline of what a connection owes the server
    (ml_db_pg_pipeline.c). Not a public header.
*/
#ifndef ML_DB_PG_INTERNAL_H_INCLUDED
#define ML_DB_PG_INTERNAL_H_INCLUDED

#include "ml_db_internal.h"

#include <czmq.h>
#include <libpq-fe.h>

typedef struct {
    char name[16]; //  the prepared statement's name on the server
    int parameters;
} ml_db_pg_cached_t;

//  A command owed to the server, sent with the connection's next round trip: a savepoint
//  command of group commit (plain: static text), or a write its caller deferred
//  (ml_db_defer: a prepared statement, its parameters' texts, and its SQL for errors).
typedef struct {
    const char *plain;
    char name[16];
    int parameters;
    char **texts; //  one block: the pointers, then the texts, then the SQL (sql points there)
    const char *sql;
    char *fetch_key; //  a read asked ahead (ml_db_prefetch): its key (ml_db_pg_fetch_key)
} ml_db_pg_owed_t;

//  A read asked ahead, answered, and kept until its query asks for it.
typedef struct {
    char *key;
    PGresult *result;
} ml_db_pg_fetched_t;

//  Deferred writes a connection keeps before it sends them on its own.
#define ML_DB_PG_OWED_MAX 64

typedef struct {
    PGconn *conn;
    zhashx_t *cache;    //  SQL text -> ml_db_pg_cached_t
    unsigned next_name; //  prepared statements are named s1, s2, ...
    bool spare_live;    //  "u", the statement of one use past the cache's size, exists
    bool in_transaction;
    bool lost_in_transaction; //  the connection dropped inside a transaction: refuse until rollback
    char xid[24];             //  the open transaction's id (pg_current_xact_id), for a lost COMMIT
    zhashx_t *tally;          //  ML_DB_PG_TALLY set: statement text -> round trips (size_t *)
    bool plan_auto;           //  the session's plan_cache_mode is the default, auto
    bool generic_plans;       //  ml_db_generic_plans: force_generic_plan on this connection
    //  Deferred writes and the savepoint commands owed among them, in order (at most two
    //  savepoint commands before a write and two after the last).
    ml_db_pg_owed_t owed[ML_DB_PG_OWED_MAX + 4];
    size_t owed_count;
    //  Reads asked ahead and answered, not yet asked for (ml_db_prefetch).
    ml_db_pg_fetched_t fetched[ML_DB_PG_OWED_MAX];
    size_t fetched_count;
} ml_db_pg_conn_t;

#define ML_DB_PG_CONN(db) ((ml_db_pg_conn_t *)(db)->backend)

//  Record the error of result (NULL: of the connection) in self->error.
void ml_db_pg_collect (ml_db_t *self, const PGresult *result);

//  The tally (ml_db_pg_tally.c): with ML_DB_PG_TALLY set (a file name), each connection
//  counts its round trips by statement, and the writes that rode with them, and appends
//  them to that file when it closes (those of 1,000 round trips or more): where a payment's
//  time goes (bench/RESULTS.md). Counts a round trip unless riding.
void ml_db_pg_tally (ml_db_t *self, const char *sql, bool riding);
void ml_db_pg_tally_close (zhashx_t **tally_p);

//  The pipeline (ml_db_pg_pipeline.c).
//  Run sql (no parameters) by the simple protocol, alone. 0 or -1 with the error set.
int ml_db_pg_exec (ml_db_t *self, const char *sql);
//  Send what the connection owes (savepoint commands, deferred writes), then final: a
//  prepared statement (name, its parameters' texts) or plain commands (plain: "A; B", our
//  own text) or nothing (both NULL), in one round trip, and read every answer. Returns
//  final's result (the caller clears it; a COMMAND_OK one for nothing), or NULL with the
//  error set when anything failed: the first failure's (a command that fails aborts those
//  after it). A deferred write's failure is reported as such, never as the final
//  statement's own (a constraint there is not one of the caller's statement), and sets
//  self->deferred_failed.
PGresult *ml_db_pg_pipeline (ml_db_t *self, const char *name, int parameters,
                             const char *const *texts, const char *plain);
//  Owe a prepared statement's run (a deferred write), its parameters copied. 0, or -1 with
//  the error set (then nothing is owed, and whatever was owed has gone, or failed).
int ml_db_pg_owe (ml_db_t *self, const char *sql, const ml_db_pg_cached_t *statement,
                  const char *const *texts);
//  Forget what is owed (the transaction ends without it: rolled back, or its connection lost).
void ml_db_pg_owed_clear (ml_db_t *self);

//  Reads asked ahead (ml_db_prefetch), in the same pipeline.
//  The key of a read: its SQL and its parameters' values (a new string).
char *ml_db_pg_fetch_key (const char *sql, const char *picture, const ml_db_value_t *values);
//  Owe a prepared read whose answer is kept under key (taken). 0, or -1 with the error set.
int ml_db_pg_owe_read (ml_db_t *self, const char *sql, const ml_db_pg_cached_t *statement,
                       const char *const *texts, char *key);
//  Whether a read of this key is owed or kept.
bool ml_db_pg_fetch_known (ml_db_t *self, const char *key);
//  The kept answer of the read of key (the caller clears it), sending what is owed first
//  when the read is still owed; NULL when there is none, or with the error set (*failed)
//  when sending failed.
PGresult *ml_db_pg_fetched_take (ml_db_t *self, const char *key, bool *failed);
//  Drop the reads asked ahead, owed or kept: the connection is about to write (or end a
//  transaction, or roll one back), after which their answers may no longer be true.
void ml_db_pg_forget (ml_db_t *self);

//  The parameters of a statement as libpq takes them (caller frees the block): the
//  pointers, then the decimal texts of its 'i' values; its 's' values are borrowed.
char **ml_db_pg_texts (const char *picture, const ml_db_value_t *values, int parameters);

#endif
