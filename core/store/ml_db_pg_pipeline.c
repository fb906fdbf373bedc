/*  ml_db_pg_pipeline: what a PostgreSQL connection owes the server, sent with its next round
    trip (core/store/ml_db_pg_internal.h).

    Two kinds of command wait to ride with the next statement that needs an answer: the
    savepoint commands of group commit (a RELEASE, a SAVEPOINT: core/store/ml_db.c) and the
    writes their callers deferred (ml_db_defer), whose outcome they do not need at once.
    They go, in the order they were owed, in one libpq pipeline with that statement (a
    query, a write whose count is read, a COMMIT), so a transaction of six writes and two
    reads costs two round trips, not eight: a payment's time on a PostgreSQL store is
    mostly round trips (bench/RESULTS.md). A command that fails aborts those after it, and
    its error is the one reported, by the call that sent it; the transaction cannot commit.
*/
#include "ml_db_pg_internal.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ml_db_pg_exec (ml_db_t *self, const char *sql)
{
    ml_db_pg_tally (self, sql, false);
    PGresult *result = PQexec (ML_DB_PG_CONN (self)->conn, sql);
    ExecStatusType status = PQresultStatus (result);
    int rc = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        ml_db_pg_collect (self, result);
    PQclear (result);
    return rc;
}

char **ml_db_pg_texts (const char *picture, const ml_db_value_t *values, int parameters)
{
    size_t count = parameters > 0 ? (size_t)parameters : 0;
    char **texts = malloc (count * (sizeof (char *) + 24) + 1);
    assert (texts);
    char *digits = (char *)(texts + count);
    for (size_t index = 0; index < count; index++) {
        if (picture[index] == 'i') {
            snprintf (digits + index * 24, 24, "%" PRId64, values[index].number);
            texts[index] = digits + index * 24;
        } else
            texts[index] = (char *)values[index].text;
    }
    return texts;
}

//  The savepoint commands ml_db.c owes (a RELEASE, then a SAVEPOINT) join the queue, after
//  the writes owed before them: what is owed is then all in the queue, in order.
static void s_queue_savepoints (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    const char *commands[2] = {self->release_owed, self->savepoint_owed};
    for (size_t index = 0; index < 2; index++)
        if (commands[index]) {
            assert (conn->owed_count < ML_DB_PG_OWED_MAX + 4);
            ml_db_pg_owed_t *owed = &conn->owed[conn->owed_count++];
            memset (owed, 0, sizeof *owed);
            owed->plain = commands[index];
        }
    self->release_owed = self->savepoint_owed = NULL;
}

static void s_owed_free (ml_db_pg_owed_t *owed)
{
    free (owed->texts);
    free (owed->fetch_key);
}

//  Forget what is owed from index first on.
static void s_owed_truncate (ml_db_pg_conn_t *conn, size_t first)
{
    for (size_t index = first; index < conn->owed_count; index++)
        s_owed_free (&conn->owed[index]);
    conn->owed_count = first;
}

void ml_db_pg_owed_clear (ml_db_t *self)
{
    s_owed_truncate (ML_DB_PG_CONN (self), 0);
}

bool ml_db_pg_owed_drop_from (ml_db_t *self, const char *savepoint)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    ml_db_pg_forget (self); //  what they read may have been the rolled back writes'
    size_t index = conn->owed_count;
    while (index > 0 &&
           !(conn->owed[index - 1].plain && streq (conn->owed[index - 1].plain, savepoint)))
        index--;
    if (index == 0) {
        //  The savepoint went with an earlier round trip, and what was owed before it: all
        //  that is owed is the transaction's own, which its ROLLBACK TO undoes anyway.
        ml_db_pg_owed_clear (self);
        return false;
    }
    s_owed_truncate (conn, index - 1);
    return true;
}

//  One command of a pipeline: an owed one, or the final statement.
typedef struct {
    const char *plain;
    const char *name;
    int parameters;
    const char *const *texts;
    bool deferred; //  a write its caller deferred, or a read asked ahead
    const char *sql;
    PGresult **keep; //  a read asked ahead: where its answer goes
} s_command_t;

static bool s_send (PGconn *conn, const s_command_t *command)
{
    if (command->plain)
        return PQsendQueryParams (conn, command->plain, 0, NULL, NULL, NULL, NULL, 0) == 1;
    return PQsendQueryPrepared (conn, command->name, command->parameters, command->texts, NULL,
                                NULL, 0) == 1;
}

static PGresult *s_run_alone (PGconn *conn, const s_command_t *command)
{
    if (command->plain)
        return PQexec (conn, command->plain);
    return PQexecPrepared (conn, command->name, command->parameters, command->texts, NULL, NULL, 0);
}

//  A failed command's error into self->error; a deferred write's named as such, and never
//  classed as data (the caller's statement did not break a constraint: an earlier write did).
static void s_failed (ml_db_t *self, const s_command_t *command, const PGresult *result)
{
    ml_db_pg_collect (self, result);
    if (!command || !command->deferred)
        return;
    self->deferred_failed = true;
    if (self->error.kind == ML_DB_DATA)
        self->error.kind = ML_DB_OTHER;
    char message[sizeof self->error.message + 128];
    snprintf (message, sizeof message, "an earlier %s of this transaction failed (%.60s...): %s",
              command->keep ? "read" : "write", command->sql ? command->sql : "",
              self->error.message);
    size_t length = strnlen (message, sizeof self->error.message - 1);
    memcpy (self->error.message, message, length);
    self->error.message[length] = 0;
}

//  Commands in one pipeline: each one's result, the first failure's error. Returns the last
//  command's result, or NULL with the error set.
static PGresult *s_pipeline (ml_db_t *self, const s_command_t *commands, size_t count)
{
    PGconn *conn = ML_DB_PG_CONN (self)->conn;
    if (count == 1 || PQenterPipelineMode (conn) != 1) {
        //  Alone, or (not expected: the connection is idle between calls) one at a time.
        PGresult *result = NULL;
        for (size_t index = 0; index < count; index++) {
            PQclear (result);
            result = s_run_alone (conn, &commands[index]);
            ExecStatusType status = PQresultStatus (result);
            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
                s_failed (self, &commands[index], result);
                PQclear (result);
                return NULL;
            }
            if (commands[index].keep) {
                *commands[index].keep = result;
                result = NULL;
            }
        }
        return result ? result : PQmakeEmptyPGresult (conn, PGRES_COMMAND_OK);
    }
    bool sent = true;
    for (size_t index = 0; sent && index < count; index++)
        sent = s_send (conn, &commands[index]);
    sent = sent && PQpipelineSync (conn) == 1;
    PGresult *last = NULL;
    bool failed = false;
    if (!sent) {
        s_failed (self, NULL, NULL);
        failed = true;
    }
    //  Each command's result then a NULL (an aborted one's PIPELINE_ABORTED); then the sync's.
    for (size_t index = 0; sent && index < count; index++) {
        PGresult *result = PQgetResult (conn);
        if (!result) {
            if (!failed)
                s_failed (self, NULL, NULL); //  the connection dropped
            failed = true;
            break;
        }
        ExecStatusType status = PQresultStatus (result);
        if (!failed && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            s_failed (self, &commands[index], result);
            failed = true;
        }
        if (commands[index].keep && !failed)
            *commands[index].keep = result;
        else if (index + 1 == count && !failed)
            last = result;
        else
            PQclear (result);
        while ((result = PQgetResult (conn)))
            PQclear (result);
    }
    PGresult *result;
    while (sent && (result = PQgetResult (conn))) {
        ExecStatusType status = PQresultStatus (result);
        PQclear (result);
        if (status == PGRES_PIPELINE_SYNC)
            break;
    }
    PQexitPipelineMode (conn);
    if (failed) {
        PQclear (last);
        return NULL;
    }
    return last ? last : PQmakeEmptyPGresult (conn, PGRES_COMMAND_OK);
}

PGresult *ml_db_pg_pipeline (ml_db_t *self, const char *name, int parameters,
                             const char *const *texts, const char *plain)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    s_queue_savepoints (self);
    //  The owed commands, then plain's commands one by one (the extended protocol takes
    //  one statement a message) or the prepared statement; at most ML_DB_PG_OWED_MAX + 4
    //  owed, and plain is our own text of a few commands.
    s_command_t commands[ML_DB_PG_OWED_MAX + 4 + 4];
    PGresult *kept[ML_DB_PG_OWED_MAX + 4] = {NULL};
    char copy[256] = "";
    size_t count = 0;
    for (size_t index = 0; index < conn->owed_count; index++) {
        const ml_db_pg_owed_t *owed = &conn->owed[index];
        commands[count++] = (s_command_t){owed->plain,
                                          owed->name,
                                          owed->parameters,
                                          (const char *const *)owed->texts,
                                          !owed->plain,
                                          owed->sql,
                                          owed->fetch_key ? &kept[index] : NULL};
        if (!owed->plain)
            ml_db_pg_tally (self, owed->sql, true);
    }
    size_t owed_count = conn->owed_count;
    if (name)
        commands[count++] = (s_command_t){NULL, name, parameters, texts, false, NULL, NULL};
    else if (plain && !conn->owed_count) {
        //  Nothing owed: plain goes whole by the simple protocol.
        PGresult *result = PQexec (conn->conn, plain);
        ExecStatusType status = PQresultStatus (result);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            ml_db_pg_collect (self, result);
            PQclear (result);
            return NULL;
        }
        return result;
    } else if (plain) {
        assert (strlen (plain) < sizeof copy);
        snprintf (copy, sizeof copy, "%s", plain);
        char *next = copy;
        while (next && count < sizeof commands / sizeof commands[0]) {
            char *end = strstr (next, "; ");
            if (end)
                *end = 0;
            commands[count++] = (s_command_t){next, NULL, 0, NULL, false, NULL, NULL};
            next = end ? end + 2 : NULL;
        }
    }
    if (!count)
        return PQmakeEmptyPGresult (conn->conn, PGRES_COMMAND_OK);
    if (!name && !plain)
        ml_db_pg_tally (self, "(what is owed, alone)", false);
    PGresult *result = s_pipeline (self, commands, count);
    //  The answers of the reads asked ahead are kept (when all went well), under their keys.
    for (size_t index = 0; index < owed_count; index++) {
        ml_db_pg_owed_t *owed = &conn->owed[index];
        if (kept[index] && result && conn->fetched_count < ML_DB_PG_OWED_MAX) {
            conn->fetched[conn->fetched_count++] =
                (ml_db_pg_fetched_t){owed->fetch_key, kept[index]};
            owed->fetch_key = NULL;
        } else
            PQclear (kept[index]);
    }
    ml_db_pg_owed_clear (self);
    if (!result && PQstatus (conn->conn) == CONNECTION_BAD)
        ml_db_pg_collect (self, NULL);
    return result;
}

//  Owe a prepared statement's run, its parameters copied. 0, or -1 with the error set.
static int s_owe (ml_db_t *self, const char *sql, const ml_db_pg_cached_t *statement,
                  const char *const *texts, char *fetch_key)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    if (conn->owed_count >= ML_DB_PG_OWED_MAX) {
        //  Enough waiting: they go now, on their own.
        PGresult *result = ml_db_pg_pipeline (self, NULL, 0, NULL, NULL);
        if (!result)
            return -1;
        PQclear (result);
    }
    s_queue_savepoints (self);
    size_t count = statement->parameters > 0 ? (size_t)statement->parameters : 0;
    size_t length = sizeof (char *) * count + strlen (sql) + 1;
    for (size_t index = 0; index < count; index++)
        length += texts[index] ? strlen (texts[index]) + 1 : 0;
    char **copy = malloc (length);
    assert (copy);
    char *next = (char *)(copy + count);
    for (size_t index = 0; index < count; index++) {
        copy[index] = NULL;
        if (texts[index]) {
            size_t size = strlen (texts[index]) + 1;
            memcpy (next, texts[index], size);
            copy[index] = next;
            next += size;
        }
    }
    memcpy (next, sql, strlen (sql) + 1);
    ml_db_pg_owed_t *owed = &conn->owed[conn->owed_count++];
    memset (owed, 0, sizeof *owed);
    snprintf (owed->name, sizeof owed->name, "%s", statement->name);
    owed->parameters = statement->parameters;
    owed->texts = copy;
    owed->sql = next;
    owed->fetch_key = fetch_key;
    return 0;
}

int ml_db_pg_owe (ml_db_t *self, const char *sql, const ml_db_pg_cached_t *statement,
                  const char *const *texts)
{
    return s_owe (self, sql, statement, texts, NULL);
}

//  ---------------------------------------------------------------------------------------
//  Reads asked ahead (ml_db_prefetch). A read's answer depends on what the transaction
//  wrote before it, so a kept answer is given only while nothing was written since it
//  was asked for: every write, end of a transaction and rollback drops them first
//  (ml_db_pg_forget, called by ml_db_pg.c).

char *ml_db_pg_fetch_key (const char *sql, const char *picture, const ml_db_value_t *values)
{
    //  The SQL, then each value after a separator no text of ours holds: 0x1F and the
    //  text, 0x1E for NULL, or 0x1D and the number.
    size_t count = picture ? strlen (picture) : 0, length = strlen (sql) + 1;
    for (size_t index = 0; index < count; index++)
        length += 1 + (picture[index] == 'i' ? 24
                       : values[index].text  ? strlen (values[index].text)
                                             : 0);
    char *key = malloc (length);
    assert (key);
    char *cursor = key + sprintf (key, "%s", sql);
    for (size_t index = 0; index < count; index++)
        if (picture[index] == 'i')
            cursor += sprintf (cursor, "\x1d%" PRId64, values[index].number);
        else if (values[index].text)
            cursor += sprintf (cursor, "\x1f%s", values[index].text);
        else
            cursor += sprintf (cursor, "\x1e");
    return key;
}

int ml_db_pg_owe_read (ml_db_t *self, const char *sql, const ml_db_pg_cached_t *statement,
                       const char *const *texts, char *key)
{
    int rc = s_owe (self, sql, statement, texts, key);
    if (rc != 0)
        free (key);
    return rc;
}

bool ml_db_pg_fetch_known (ml_db_t *self, const char *key)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    for (size_t index = 0; index < conn->fetched_count; index++)
        if (streq (conn->fetched[index].key, key))
            return true;
    for (size_t index = 0; index < conn->owed_count; index++)
        if (conn->owed[index].fetch_key && streq (conn->owed[index].fetch_key, key))
            return true;
    return false;
}

PGresult *ml_db_pg_fetched_take (ml_db_t *self, const char *key, bool *failed)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    *failed = false;
    for (size_t index = 0; index < conn->owed_count; index++)
        if (conn->owed[index].fetch_key && streq (conn->owed[index].fetch_key, key)) {
            //  Still owed: what is owed goes now, this read with it.
            PGresult *result = ml_db_pg_pipeline (self, NULL, 0, NULL, NULL);
            if (!result) {
                *failed = true;
                return NULL;
            }
            PQclear (result);
            break;
        }
    for (size_t index = 0; index < conn->fetched_count; index++)
        if (streq (conn->fetched[index].key, key)) {
            PGresult *result = conn->fetched[index].result;
            free (conn->fetched[index].key);
            conn->fetched[index] = conn->fetched[--conn->fetched_count];
            return result;
        }
    return NULL;
}

void ml_db_pg_forget (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = ML_DB_PG_CONN (self);
    for (size_t index = 0; index < conn->fetched_count; index++) {
        free (conn->fetched[index].key);
        PQclear (conn->fetched[index].result);
    }
    conn->fetched_count = 0;
    size_t kept = 0;
    for (size_t index = 0; index < conn->owed_count; index++) {
        ml_db_pg_owed_t *owed = &conn->owed[index];
        if (owed->fetch_key)
            s_owed_free (owed);
        else
            conn->owed[kept++] = *owed;
    }
    conn->owed_count = kept;
}
