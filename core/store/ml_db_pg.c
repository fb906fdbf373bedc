/*  ml_db's PostgreSQL backend: libpq, each statement translated from the store's SQLite
    dialect and prepared once per connection (see include/ml_db.h).

    Results are read whole (PQexecPrepared), so queries may nest as they do on SQLite, and
    every value crosses as text: int64 parameters are sent as decimal text typed int8, text
    parameters untyped (the server infers their type from where they stand).
*/
#include "ml_db_pg_internal.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  The store-wide advisory lock every writing transaction takes ("mlstore"): it makes
//  ml_db_begin what BEGIN IMMEDIATE is on SQLite. Several core nodes will lock per firm.
#define S_STORE_LOCK "7308339910637610341"

#define S_INT8_OID 20
#define S_TEXT_OID 25
#define S_BOOL_OID 16

typedef struct {
    PGresult *result;
    int row; //  -1 before the first fetch
} s_query_t;

#define S_CONN(db) ML_DB_PG_CONN (db)

static void s_cached_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

//  ---------------------------------------------------------------------------------------
//  Translation from the store's SQLite dialect

typedef struct {
    char *text;
    size_t length, size;
} s_buffer_t;

static void s_append (s_buffer_t *buffer, const char *text, size_t length)
{
    if (buffer->length + length + 1 > buffer->size) {
        buffer->size = (buffer->length + length + 1) * 2;
        buffer->text = realloc (buffer->text, buffer->size);
        assert (buffer->text);
    }
    memcpy (buffer->text + buffer->length, text, length);
    buffer->length += length;
    buffer->text[buffer->length] = 0;
}

static void s_appends (s_buffer_t *buffer, const char *text)
{
    s_append (buffer, text, strlen (text));
}

//  Length of the quoted token at text ('...' with '' inside, or "..."), or of the comment.
//  The length of a dollar-quote's tag at text ("$$", "$ml$"), or 0 if there is none.
static size_t s_dollar_tag (const char *text)
{
    if (text[0] != '$' || isdigit ((unsigned char)text[1]))
        return 0;
    size_t length = 1;
    while (isalnum ((unsigned char)text[length]) || text[length] == '_')
        length++;
    return text[length] == '$' ? length + 1 : 0;
}

static size_t s_skip_quoted (const char *text)
{
    char quote = text[0];
    size_t tag = s_dollar_tag (text);
    if (tag) {
        //  A dollar-quoted body (a function's, written per dialect) is copied untouched.
        for (const char *end = text + tag; (end = strchr (end, '$')); end++)
            if (strncmp (end, text, tag) == 0)
                return (size_t)(end - text) + tag;
        return strlen (text);
    }
    if (quote == '-' && text[1] == '-') {
        const char *end = strchr (text, '\n');
        return end ? (size_t)(end - text) : strlen (text);
    }
    if (quote == '/' && text[1] == '*') {
        const char *end = strstr (text + 2, "*/");
        return end ? (size_t)(end - text) + 2 : strlen (text);
    }
    size_t index = 1;
    while (text[index]) {
        if (text[index] == quote) {
            if (text[index + 1] == quote)
                index += 2;
            else
                return index + 1;
        } else
            index++;
    }
    return index;
}

static bool s_word_is (const char *word, size_t length, const char *expected)
{
    return strlen (expected) == length && strncasecmp (word, expected, length) == 0;
}

//  The next word after text (skipping blanks): its start and length (0: none).
static const char *s_next_word (const char *text, size_t *length)
{
    while (isspace ((unsigned char)*text))
        text++;
    size_t count = 0;
    while (isalnum ((unsigned char)text[count]) || text[count] == '_')
        count++;
    *length = count;
    return text;
}

//  Pass one: placeholders, types and the functions that only differ by name. Sets
//  *ignore when the statement was INSERT OR IGNORE (it ends in ON CONFLICT DO NOTHING).
static int s_translate_words (const char *sql, s_buffer_t *out, int *parameters, bool *ignore,
                              ml_db_error_t *error)
{
    const char *cursor = sql;
    while (*cursor) {
        char c = *cursor;
        if (c == '\'' || c == '"' || (c == '-' && cursor[1] == '-') ||
            (c == '/' && cursor[1] == '*') || s_dollar_tag (cursor)) {
            size_t length = s_skip_quoted (cursor);
            s_append (out, cursor, length);
            cursor += length;
        } else if (c == '?') {
            char number[16];
            snprintf (number, sizeof number, "$%d", ++*parameters);
            s_appends (out, number);
            cursor++;
        } else if (isalpha ((unsigned char)c) || c == '_') {
            size_t length = 0;
            while (isalnum ((unsigned char)cursor[length]) || cursor[length] == '_')
                length++;
            size_t next_length, after_length;
            const char *next = s_next_word (cursor + length, &next_length);
            const char *after = s_next_word (next + next_length, &after_length);
            if (s_word_is (cursor, length, "INTEGER") && s_word_is (next, next_length, "PRIMARY") &&
                s_word_is (after, after_length, "KEY")) {
                //  SQLite fills an INTEGER PRIMARY KEY left out of an INSERT: an identity.
                s_appends (out, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
                cursor = after + after_length;
                size_t auto_length;
                const char *automatic = s_next_word (cursor, &auto_length);
                if (s_word_is (automatic, auto_length, "AUTOINCREMENT"))
                    cursor = automatic + auto_length;
                continue;
            }
            if (s_word_is (cursor, length, "INTEGER"))
                s_appends (out, "BIGINT");
            else if (s_word_is (cursor, length, "group_concat"))
                s_appends (out, "string_agg");
            else if (s_word_is (cursor, length, "last_insert_rowid"))
                s_appends (out, "lastval");
            else if (s_word_is (cursor, length, "INSERT") && s_word_is (next, next_length, "OR")) {
                if (s_word_is (after, after_length, "IGNORE")) {
                    s_appends (out, "INSERT");
                    *ignore = true;
                    cursor = after + after_length;
                    continue;
                }
                ml_db_set_error (error, ML_DB_OTHER, "42601", 0,
                                 "INSERT OR REPLACE has no PostgreSQL form without its conflict "
                                 "target: write the statement per dialect (a bug)");
                return -1;
            } else
                s_append (out, cursor, length);
            cursor += length;
        } else {
            s_append (out, cursor, 1);
            cursor++;
        }
    }
    if (*ignore)
        s_appends (out, " ON CONFLICT DO NOTHING");
    return 0;
}

//  Where word occurs first at top level (outside quotes) in text, or NULL.
static const char *s_find_word (const char *text, const char *word)
{
    size_t word_length = strlen (word);
    const char *cursor = text;
    while (*cursor) {
        char c = *cursor;
        if (c == '\'' || c == '"' || (c == '-' && cursor[1] == '-') ||
            (c == '/' && cursor[1] == '*') || s_dollar_tag (cursor))
            cursor += s_skip_quoted (cursor);
        else if (isalpha ((unsigned char)c) || c == '_') {
            size_t length = 0;
            while (isalnum ((unsigned char)cursor[length]) || cursor[length] == '_')
                length++;
            if (length == word_length && strncasecmp (cursor, word, length) == 0)
                return cursor;
            cursor += length;
        } else
            cursor++;
    }
    return NULL;
}

//  One statement of a trigger's body, as plpgsql: SELECT RAISE (ABORT, 'm') raises m as a
//  constraint violation (SQLite reports it as one too); any other statement stays.
static void s_trigger_statement (s_buffer_t *out, const char *statement, size_t length)
{
    char *text = strndup (statement, length);
    assert (text);
    const char *raise = s_find_word (text, "RAISE");
    const char *quote = raise ? strchr (raise, '\'') : NULL;
    if (raise && quote) {
        size_t literal = s_skip_quoted (quote);
        s_appends (out, " RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',"
                        " MESSAGE = ");
        s_append (out, quote, literal);
        s_appends (out, ";");
    } else {
        s_append (out, text, length);
        s_appends (out, ";");
    }
    free (text);
}

//  CREATE TRIGGER [IF NOT EXISTS] name timing event ON table [WHEN cond] BEGIN body END
//  becomes a plpgsql function name_fn and CREATE OR REPLACE TRIGGER ... EXECUTE FUNCTION.
static int s_translate_trigger (const char *sql, s_buffer_t *out, ml_db_error_t *error)
{
    const char *cursor = s_find_word (sql, "TRIGGER") + strlen ("TRIGGER");
    size_t length;
    const char *word = s_next_word (cursor, &length);
    if (s_word_is (word, length, "IF")) {
        word = s_next_word (word + length, &length); //  NOT
        word = s_next_word (word + length, &length); //  EXISTS
        word = s_next_word (word + length, &length);
    }
    const char *begin = s_find_word (word + length, "BEGIN");
    const char *end = NULL;
    for (const char *search = begin; search && (search = s_find_word (search + 1, "END"));)
        end = search;
    if (!length || length > 60 || !begin || !end) {
        ml_db_set_error (error, ML_DB_OTHER, "42601", 0,
                         "a trigger is not CREATE TRIGGER name ... BEGIN ... END (a bug)");
        return -1;
    }
    char name[64];
    snprintf (name, sizeof name, "%.*s", (int)length, word);
    const char *header = word + length;
    const char *when = s_find_word (header, "WHEN");
    if (when && when > begin)
        when = NULL;
    char line[256];
    snprintf (line, sizeof line,
              "CREATE OR REPLACE FUNCTION %s_fn () RETURNS trigger LANGUAGE plpgsql AS $ml$"
              " BEGIN",
              name);
    s_appends (out, line);
    //  The body's statements end with ';' at top level.
    const char *statement = begin + strlen ("BEGIN");
    const char *scan = statement;
    while (scan < end) {
        if (*scan == '\'' || *scan == '"')
            scan += s_skip_quoted (scan);
        else if (*scan == ';') {
            s_trigger_statement (out, statement, (size_t)(scan - statement));
            statement = ++scan;
        } else
            scan++;
    }
    while (statement < end && isspace ((unsigned char)*statement))
        statement++;
    if (statement < end)
        s_trigger_statement (out, statement, (size_t)(end - statement));
    s_appends (out, " IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $ml$;"
                    " CREATE OR REPLACE TRIGGER ");
    s_appends (out, name);
    s_append (out, header, (size_t)((when ? when : begin) - header));
    s_appends (out, " FOR EACH ROW");
    if (when) {
        s_appends (out, " WHEN (");
        s_append (out, when + 4, (size_t)(begin - when - 4));
        s_appends (out, ")");
    }
    snprintf (line, sizeof line, " EXECUTE FUNCTION %s_fn ()", name);
    s_appends (out, line);
    return 0;
}

char *ml_db_pg_translate (const char *sql, int *parameters, ml_db_error_t *error)
{
    s_buffer_t words = {0};
    bool ignore = false;
    *parameters = 0;
    s_appends (&words, "");
    if (s_translate_words (sql, &words, parameters, &ignore, error) != 0) {
        free (words.text);
        return NULL;
    }
    size_t length;
    const char *first = s_next_word (words.text, &length);
    const char *second = s_next_word (first + length, &length);
    if (s_word_is (first, 6, "CREATE") && s_word_is (second, length, "TRIGGER")) {
        s_buffer_t trigger = {0};
        s_appends (&trigger, "");
        int rc = s_translate_trigger (words.text, &trigger, error);
        free (words.text);
        if (rc != 0) {
            free (trigger.text);
            return NULL;
        }
        return trigger.text;
    }
    return words.text;
}

//  ---------------------------------------------------------------------------------------
//  Errors

static ml_db_class_t s_classify (const char *sqlstate)
{
    if (strncmp (sqlstate, "23", 2) == 0 || strncmp (sqlstate, "22", 2) == 0)
        return ML_DB_DATA;
    if (streq (sqlstate, "40001") || streq (sqlstate, "40P01") || streq (sqlstate, "55P03"))
        return ML_DB_RETRY;
    if (streq (sqlstate, "57014"))
        return ML_DB_TIMEOUT;
    if (strncmp (sqlstate, "08", 2) == 0 || strncmp (sqlstate, "57P0", 4) == 0)
        return ML_DB_LOST;
    return ML_DB_OTHER;
}

//  Record the error of result (NULL: of the connection).
void ml_db_pg_collect (ml_db_t *self, const PGresult *result)
{
    PGconn *conn = S_CONN (self)->conn;
    const char *sqlstate = result ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;
    const char *message = result ? PQresultErrorField (result, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (PQstatus (conn) == CONNECTION_BAD) {
        sqlstate = "08006";
        if (S_CONN (self)->in_transaction)
            S_CONN (self)->lost_in_transaction = true;
    }
    if (!message || !*message)
        message = PQerrorMessage (conn);
    char text[512];
    snprintf (text, sizeof text, "%s", message && *message ? message : "no error reported");
    size_t length = strlen (text);
    while (length && (text[length - 1] == '\n' || text[length - 1] == ' '))
        text[--length] = 0;
    if (!sqlstate || strlen (sqlstate) != 5)
        sqlstate = "HY000";
    ml_db_set_error (&self->error, s_classify (sqlstate), sqlstate, 0, text);
}

//  ---------------------------------------------------------------------------------------
//  Connection

static void s_quiet (void *argument, const char *message)
{
    //  Notices (an object that exists already...) are not errors; the log stays clean.
    (void)argument;
    (void)message;
}

//  What every connection needs before the store's SQL runs on it: UTC, a wait limit for
//  the store's write lock, and the nocase collation and instr () the SQL names (made once
//  per database, under the store's lock so two first connections do not race).
static int s_session (ml_db_t *self)
{
    PGconn *conn = S_CONN (self)->conn;
    PQsetNoticeProcessor (conn, s_quiet, NULL);
    if (PQsetClientEncoding (conn, "UTF8") != 0 || ml_db_pg_exec (self, "SET TIME ZONE 'UTC'") != 0)
        return -1;
    PGresult *result = PQexec (conn, "SELECT current_setting ('lock_timeout'),"
                                     " to_regcollation ('nocase') IS NULL,"
                                     " to_regprocedure ('instr(text,text)') IS NULL,"
                                     " current_setting ('plan_cache_mode') = 'auto'");
    if (PQresultStatus (result) != PGRES_TUPLES_OK || PQntuples (result) != 1) {
        ml_db_pg_collect (self, result);
        PQclear (result);
        return -1;
    }
    bool no_timeout = streq (PQgetvalue (result, 0, 0), "0");
    bool missing = streq (PQgetvalue (result, 0, 1), "t") || streq (PQgetvalue (result, 0, 2), "t");
    S_CONN (self)->plan_auto = streq (PQgetvalue (result, 0, 3), "t");
    PQclear (result);
    if (no_timeout && ml_db_pg_exec (self, "SET lock_timeout = '5s'") != 0)
        return -1;
    if (S_CONN (self)->generic_plans && ml_db_pg_generic_plans (self) != 0)
        return -1;
    if (missing &&
        ml_db_pg_exec (
            self, "BEGIN; SELECT pg_advisory_xact_lock (" S_STORE_LOCK ");"
                  " CREATE COLLATION IF NOT EXISTS nocase (provider = icu,"
                  " locale = 'und-u-ks-level2', deterministic = false);"
                  " CREATE OR REPLACE FUNCTION instr (haystack text, needle text) RETURNS integer"
                  " LANGUAGE sql IMMUTABLE AS"
                  " 'SELECT strpos (haystack COLLATE \"C\", needle COLLATE \"C\")'; COMMIT") != 0) {
        ml_db_pg_exec (self, "ROLLBACK");
        return -1;
    }
    return 0;
}

//  Copy message into error with every occurrence of secret replaced.
static void s_redacted_error (ml_db_error_t *error, const char *message, const char *secret)
{
    char text[512];
    size_t length = 0;
    const char *cursor = message;
    while (*cursor && length < sizeof text - 8) {
        if (secret && *secret && strncmp (cursor, secret, strlen (secret)) == 0) {
            memcpy (text + length, "***", 3);
            length += 3;
            cursor += strlen (secret);
        } else
            text[length++] = *cursor++;
    }
    while (length && (text[length - 1] == '\n' || text[length - 1] == ' '))
        length--;
    text[length] = 0;
    char full[600];
    snprintf (full, sizeof full, "cannot connect to the PostgreSQL store: %s", text);
    ml_db_set_error (error, ML_DB_LOST, "08001", 0, full);
}

int ml_db_pg_open (ml_db_t *self, const char *connection, ml_db_error_t *error)
{
    //  "postgresql:KEY=VALUE ..." is conninfo after the prefix; a URI goes whole to libpq.
    const char *conninfo = connection;
    if (strncasecmp (connection, "postgresql:", 11) == 0 && strncmp (connection + 11, "//", 2) != 0)
        conninfo = connection + 11;
    else if (strncasecmp (connection, "postgres:", 9) == 0 &&
             strncmp (connection + 9, "//", 2) != 0)
        conninfo = connection + 9;
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse (conninfo, &parse_error);
    if (!options) {
        //  libpq's message names the fault; it may quote the string, so it is not shown.
        PQfreemem (parse_error);
        ml_db_set_error (error, ML_DB_OTHER, "HY000", 0,
                         "the store's PostgreSQL connection string is not valid (libpq "
                         "conninfo or a postgresql:// URI)");
        return -1;
    }
    char *password = NULL;
    for (PQconninfoOption *option = options; option->keyword; option++)
        if (streq (option->keyword, "password") && option->val)
            password = strdup (option->val);
    PQconninfoFree (options);
    ml_db_pg_conn_t *conn = calloc (1, sizeof (ml_db_pg_conn_t));
    assert (conn);
    //  A server that does not answer (a host down, not a port closed) would hold the core
    //  for the kernel's TCP timeout: 10 s unless the connection string says otherwise (its
    //  own connect_timeout comes later, so it wins). Reconnecting uses the same.
    const char *const keywords[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {"10", conninfo, NULL};
    conn->conn = PQconnectdbParams (keywords, values, 1);
    if (!conn->conn || PQstatus (conn->conn) != CONNECTION_OK) {
        s_redacted_error (error, conn->conn ? PQerrorMessage (conn->conn) : "out of memory",
                          password);
        PQfinish (conn->conn);
        free (conn);
        free (password);
        return -1;
    }
    free (password);
    conn->cache = zhashx_new ();
    assert (conn->cache);
    zhashx_set_destructor (conn->cache, s_cached_destroy);
    if (getenv ("ML_DB_PG_TALLY")) {
        conn->tally = zhashx_new ();
        assert (conn->tally);
        zhashx_set_destructor (conn->tally, (zhashx_destructor_fn *)zstr_free);
    }
    self->backend = conn;
    if (s_session (self) != 0) {
        *error = self->error;
        ml_db_pg_close (self);
        return -1;
    }
    return 0;
}

void ml_db_pg_close (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    if (conn) {
        //  Closing the connection rolls back an open transaction.
        PQfinish (conn->conn);
        ml_db_pg_forget (self);
        ml_db_pg_owed_clear (self);
        ml_db_pg_tally_close (&conn->tally);
        zhashx_destroy (&conn->cache);
        free (conn);
        self->backend = NULL;
    }
}

int ml_db_pg_generic_plans (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    conn->generic_plans = true;
    //  Left as the connection string or the server set it, unless that is the default.
    if (!conn->plan_auto || PQstatus (conn->conn) != CONNECTION_OK)
        return 0;
    return ml_db_pg_exec (self, "SET plan_cache_mode = force_generic_plan");
}

//  Before each call: a connection that dropped is opened again (its statements are gone
//  with it), except inside a transaction, which stays failed until it is rolled back.
static int s_ready (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    if (conn->lost_in_transaction) {
        ml_db_set_error (&self->error, ML_DB_LOST, "08006", 0,
                         "the store's connection was lost inside a transaction");
        return -1;
    }
    if (PQstatus (conn->conn) == CONNECTION_OK)
        return 0;
    PQreset (conn->conn);
    zhashx_purge (conn->cache);
    ml_db_pg_forget (self);
    ml_db_pg_owed_clear (self); //  gone with the transaction they belonged to
    conn->spare_live = false;
    if (PQstatus (conn->conn) != CONNECTION_OK) {
        ml_db_set_error (&self->error, ML_DB_LOST, "08006", 0,
                         "the store's PostgreSQL server cannot be reached");
        return -1;
    }
    return s_session (self);
}

//  Send what the connection owes (ml_db_pg_pipeline.c) and wait for it: 0 or -1.
static int s_flush (ml_db_t *self)
{
    PGresult *result = ml_db_pg_pipeline (self, NULL, 0, NULL, NULL);
    PQclear (result);
    return result ? 0 : -1;
}

//  COPY ... FROM STDIN of data (text format, whole rows) on this connection, in its open
//  transaction or on its own. Returns 0 or -1 with the error set. (The replica's bulk load:
//  core/store/ml_store_pg.c.)
int ml_db_pg_copy (ml_db_t *self, const char *sql, const char *data, size_t length)
{
    ml_db_pg_forget (self);
    if (s_ready (self) != 0 || s_flush (self) != 0)
        return -1;
    PGconn *conn = S_CONN (self)->conn;
    PGresult *result = PQexec (conn, sql);
    bool ok = PQresultStatus (result) == PGRES_COPY_IN;
    if (!ok)
        ml_db_pg_collect (self, result);
    PQclear (result);
    if (!ok)
        return -1;
    //  The data goes in pieces of at most 1 MB (PQputCopyData takes an int length).
    for (size_t sent = 0; ok && sent < length;) {
        size_t piece = length - sent < 1048576 ? length - sent : 1048576;
        ok = PQputCopyData (conn, data + sent, (int)piece) == 1;
        sent += piece;
    }
    ok = PQputCopyEnd (conn, ok ? NULL : "the copy could not be sent") == 1 && ok;
    bool collected = false;
    if (!ok) {
        ml_db_pg_collect (self, NULL);
        collected = true;
    }
    //  The COPY's own result, then the end of the command's results.
    while ((result = PQgetResult (conn))) {
        if (PQresultStatus (result) != PGRES_COMMAND_OK) {
            if (!collected)
                ml_db_pg_collect (self, result);
            collected = true;
            ok = false;
        }
        PQclear (result);
    }
    return ok ? 0 : -1;
}

//  ---------------------------------------------------------------------------------------
//  Statements

//  Prepare text with parameter types from picture (each 's' as types_s). Returns the
//  result's status; the error is collected on failure.
static bool s_prepare_as (ml_db_t *self, const char *name, const char *text, int parameters,
                          const char *picture, Oid type_i, Oid type_s)
{
    Oid types[ML_DB_PARAMETERS_MAX];
    for (int index = 0; index < parameters; index++)
        types[index] = picture[index] == 'i' ? type_i : type_s;
    ml_db_pg_tally (self, "(prepare)", false);
    PGresult *result = PQprepare (S_CONN (self)->conn, name, text, parameters, types);
    bool ok = PQresultStatus (result) == PGRES_COMMAND_OK;
    if (!ok)
        ml_db_pg_collect (self, result);
    PQclear (result);
    return ok;
}

//  The prepared statement for sql (translated and prepared on first use) into *statement.
//  Returns 0, or -1 with the error set.
static int s_statement (ml_db_t *self, const char *sql, const char *picture,
                        ml_db_pg_cached_t *statement)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    ml_db_pg_cached_t *cached = (ml_db_pg_cached_t *)zhashx_lookup (conn->cache, sql);
    if (cached) {
        self->reused++;
        *statement = *cached;
        return 0;
    }
    int parameters;
    char *text = ml_db_pg_translate (sql, &parameters, &self->error);
    if (!text)
        return -1;
    size_t count = picture ? strlen (picture) : 0;
    if ((size_t)parameters != count || count > ML_DB_PARAMETERS_MAX) {
        free (text);
        ml_db_set_error (&self->error, ML_DB_OTHER, "HY000", 0,
                         "a statement's parameters do not match its picture (a bug)");
        return -1;
    }
    //  Past ML_DB_CACHE_MAX statements, new ones are prepared as "u" (replaced by the next
    //  such one), so the server does not keep them either. Not the unnamed statement: the
    //  simple queries sent around it (savepoints) would destroy that one before it ran.
    bool keep = zhashx_size (conn->cache) < ML_DB_CACHE_MAX;
    memset (statement, 0, sizeof *statement);
    if (keep)
        snprintf (statement->name, sizeof statement->name, "s%u", ++conn->next_name);
    else
        snprintf (statement->name, sizeof statement->name, "u");
    statement->parameters = parameters;
    //  int64 values are typed int8 and text left to the server to infer; where it cannot
    //  (a text "? IS NULL") text is typed text, and where int8 fits no function or operator
    //  (pg_terminate_backend (integer)) both are inferred. A failed prepare inside a
    //  transaction would fail the transaction, so a savepoint keeps the caller's work.
    bool savepoint = conn->in_transaction;
    bool saved = !savepoint || ml_db_pg_exec (self, "SAVEPOINT ml_prepare") == 0;
    bool ok = saved;
    if (ok && !keep && conn->spare_live) {
        ok = ml_db_pg_exec (self, "DEALLOCATE u") == 0;
        conn->spare_live = !ok;
    }
    bool prepared =
        ok && s_prepare_as (self, statement->name, text, parameters, picture, S_INT8_OID, 0);
    for (int attempt = 0; ok && !prepared && attempt < 2; attempt++) {
        const char *sqlstate = self->error.sqlstate;
        Oid type_i = S_INT8_OID, type_s = S_TEXT_OID;
        if (streq (sqlstate, "42883") || streq (sqlstate, "42804"))
            type_i = type_s = 0;
        else if (!streq (sqlstate, "42P18"))
            break;
        if (savepoint)
            ml_db_pg_exec (self, "ROLLBACK TO SAVEPOINT ml_prepare");
        prepared = s_prepare_as (self, statement->name, text, parameters, picture, type_i, type_s);
    }
    if (savepoint && saved) {
        ml_db_error_t kept = self->error;
        ml_db_pg_exec (self, prepared ? "RELEASE SAVEPOINT ml_prepare"
                                      : "ROLLBACK TO SAVEPOINT ml_prepare");
        self->error = kept;
    }
    free (text);
    if (!prepared)
        return -1;
    self->prepared++;
    if (!keep)
        conn->spare_live = true;
    if (keep) {
        cached = malloc (sizeof (ml_db_pg_cached_t));
        assert (cached);
        *cached = *statement;
        zhashx_insert (conn->cache, sql, cached);
    }
    return 0;
}

//  The prepared statement for sql, prepared first if it is not yet: what the connection
//  owes goes first then, so that every command runs in the order it was asked for.
static int s_prepared (ml_db_t *self, const char *sql, const char *picture,
                       ml_db_pg_cached_t *statement)
{
    if (!zhashx_lookup (S_CONN (self)->cache, sql) && s_flush (self) != 0)
        return -1;
    return s_statement (self, sql, picture, statement);
}

//  Run a statement. Returns its result (caller clears it), or NULL with the error set.
static PGresult *s_run (ml_db_t *self, const char *sql, const char *picture,
                        const ml_db_value_t *values, bool read)
{
    size_t length;
    const char *first = s_next_word (sql, &length);
    //  A write drops the reads asked ahead: their answers may no longer be true. A SELECT
    //  run as a query is taken for a read (a function that writes is not called so).
    if (!read || !s_word_is (first, length, "SELECT"))
        ml_db_pg_forget (self);
    if (s_ready (self) != 0)
        return NULL;
    //  DDL runs by the simple protocol: a trigger is two statements, and none has
    //  parameters; nothing is gained by preparing what runs once. (VACUUM cannot run in
    //  the extended protocol's implicit transaction.)
    if ((s_word_is (first, length, "CREATE") || s_word_is (first, length, "ALTER") ||
         s_word_is (first, length, "DROP") || s_word_is (first, length, "VACUUM") ||
         s_word_is (first, length, "PRAGMA")) &&
        s_flush (self) != 0)
        return NULL;
    if ((s_word_is (first, length, "CREATE") || s_word_is (first, length, "ALTER") ||
         s_word_is (first, length, "DROP") || s_word_is (first, length, "VACUUM")) &&
        (!picture || !*picture)) {
        int parameters;
        char *text = ml_db_pg_translate (sql, &parameters, &self->error);
        if (!text)
            return NULL;
        PGresult *result = PQexec (S_CONN (self)->conn, text);
        free (text);
        if (PQresultStatus (result) != PGRES_COMMAND_OK) {
            ml_db_pg_collect (self, result);
            PQclear (result);
            return NULL;
        }
        return result;
    }
    //  PRAGMA tunes SQLite: here it does nothing and returns no row, except "synchronous",
    //  whose meaning PostgreSQL has as synchronous_commit (NORMAL or OFF: a commit does not
    //  wait for the disk, so a crash may lose the last commits, never corrupt the store).
    if (s_word_is (first, length, "PRAGMA")) {
        size_t name_length, value_length;
        const char *name = s_next_word (first + length, &name_length);
        const char *equals = name + name_length;
        while (*equals == ' ')
            equals++;
        const char *value = s_next_word (*equals == '=' ? equals + 1 : equals, &value_length);
        if (s_word_is (name, name_length, "synchronous") && value_length) {
            bool wait =
                s_word_is (value, value_length, "FULL") || s_word_is (value, value_length, "EXTRA");
            if (ml_db_pg_exec (self, wait ? "SET synchronous_commit = on"
                                          : "SET synchronous_commit = off") != 0)
                return NULL;
        }
        return PQmakeEmptyPGresult (S_CONN (self)->conn, PGRES_COMMAND_OK);
    }
    ml_db_pg_cached_t statement;
    if (s_prepared (self, sql, picture, &statement) != 0)
        return NULL;
    char **texts = ml_db_pg_texts (picture, values, statement.parameters);
    ml_db_pg_tally (self, sql, false);
    PGresult *result = ml_db_pg_pipeline (self, statement.name, statement.parameters,
                                          (const char *const *)texts, NULL);
    free (texts);
    return result;
}

int ml_db_pg_defer (ml_db_t *self, const char *sql, const char *picture,
                    const ml_db_value_t *values)
{
    ml_db_pg_forget (self);
    //  Outside a transaction, or past the cache's size ("u" would be replaced before it
    //  ran), a write runs at once.
    ml_db_pg_conn_t *conn = S_CONN (self);
    if (!conn->in_transaction || conn->lost_in_transaction ||
        (!zhashx_lookup (conn->cache, sql) && zhashx_size (conn->cache) >= ML_DB_CACHE_MAX))
        return ml_db_pg_execute (self, sql, picture, values) < 0 ? -1 : 0;
    if (s_ready (self) != 0)
        return -1;
    ml_db_pg_cached_t statement;
    if (s_prepared (self, sql, picture, &statement) != 0)
        return -1;
    char **texts = ml_db_pg_texts (picture, values, statement.parameters);
    int rc = ml_db_pg_owe (self, sql, &statement, (const char *const *)texts);
    free (texts);
    return rc;
}

void ml_db_pg_prefetch (ml_db_t *self, const char *sql, const char *picture,
                        const ml_db_value_t *values)
{
    //  Advice only: whatever stands in the way, the query runs when it is asked for.
    //  A statement not yet prepared is not: preparing it would send what is owed now, and
    //  a failure there would be nobody's to report.
    ml_db_pg_conn_t *conn = S_CONN (self);
    if (conn->lost_in_transaction || PQstatus (conn->conn) != CONNECTION_OK ||
        conn->owed_count >= ML_DB_PG_OWED_MAX || conn->fetched_count >= ML_DB_PG_OWED_MAX ||
        !zhashx_lookup (conn->cache, sql))
        return;
    char *key = ml_db_pg_fetch_key (sql, picture, values);
    if (ml_db_pg_fetch_known (self, key)) {
        free (key);
        return;
    }
    ml_db_pg_cached_t statement;
    if (s_prepared (self, sql, picture, &statement) != 0) {
        free (key);
        return;
    }
    char **texts = ml_db_pg_texts (picture, values, statement.parameters);
    ml_db_pg_owe_read (self, sql, &statement, (const char *const *)texts, key);
    free (texts);
}

int64_t ml_db_pg_execute (ml_db_t *self, const char *sql, const char *picture,
                          const ml_db_value_t *values)
{
    PGresult *result = s_run (self, sql, picture, values, false);
    if (!result)
        return -1;
    const char *tuples = PQcmdTuples (result);
    int64_t changed = 0;
    if (*tuples)
        ml_db_parse_int64 (tuples, &changed);
    PQclear (result);
    return changed;
}

int ml_db_pg_execute_many (ml_db_t *self, const char *sql, const char *picture, size_t rows,
                           const ml_db_value_t *values)
{
    size_t width = strlen (picture);
    for (size_t row = 0; row < rows; row++)
        if (ml_db_pg_execute (self, sql, picture, values + row * width) < 0)
            return -1;
    return 0;
}

void *ml_db_pg_query (ml_db_t *self, const char *sql, const char *picture,
                      const ml_db_value_t *values)
{
    PGresult *result = NULL;
    if (S_CONN (self)->fetched_count || S_CONN (self)->owed_count) {
        //  Asked ahead: its answer, without a round trip of its own.
        char *key = ml_db_pg_fetch_key (sql, picture, values);
        bool failed = false;
        result = ml_db_pg_fetched_take (self, key, &failed);
        free (key);
        if (failed)
            return NULL;
    }
    if (!result)
        result = s_run (self, sql, picture, values, true);
    if (!result)
        return NULL;
    s_query_t *query = calloc (1, sizeof (s_query_t));
    assert (query);
    query->result = result;
    query->row = -1;
    return query;
}

#define S_QUERY(query) ((s_query_t *)(query)->backend)

int ml_db_pg_fetch (ml_db_query_t *self)
{
    s_query_t *query = S_QUERY (self);
    if (query->row + 1 >= PQntuples (query->result)) {
        query->row = PQntuples (query->result);
        return 0;
    }
    query->row++;
    return 1;
}

int ml_db_pg_columns (ml_db_query_t *self)
{
    return PQnfields (S_QUERY (self)->result);
}

const char *ml_db_pg_column_name (ml_db_query_t *self, int column)
{
    const char *name = PQfname (S_QUERY (self)->result, column);
    return name ? name : "";
}

const char *ml_db_pg_text (ml_db_query_t *self, int column)
{
    s_query_t *query = S_QUERY (self);
    if (column < 0 || column >= PQnfields (query->result) || query->row < 0 ||
        query->row >= PQntuples (query->result) || PQgetisnull (query->result, query->row, column))
        return NULL;
    const char *value = PQgetvalue (query->result, query->row, column);
    //  A comparison reads 1 or 0, as on SQLite (which has no booleans).
    if (PQftype (query->result, column) == S_BOOL_OID)
        return streq (value, "t") ? "1" : "0";
    return value;
}

void ml_db_pg_query_close (ml_db_query_t *self)
{
    s_query_t *query = S_QUERY (self);
    if (query) {
        PQclear (query->result);
        free (query);
        self->backend = NULL;
    }
}

//  ---------------------------------------------------------------------------------------
//  Transactions

int ml_db_pg_begin (ml_db_t *self, bool store_lock)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    ml_db_pg_forget (self);
    if (s_ready (self) != 0)
        return -1;
    if (conn->in_transaction) {
        ml_db_set_error (&self->error, ML_DB_OTHER, "25001", 0,
                         "a transaction is already open on this connection (a bug)");
        return -1;
    }
    conn->in_transaction = true;
    //  BEGIN, the lock, and the transaction's id, in one round trip (a simple query of two
    //  statements returns the last one's result; a failure stops it): should the
    //  connection drop during COMMIT, the id tells afterwards whether it committed.
    ml_db_pg_tally (self, store_lock ? "BEGIN; (the store's lock)" : "BEGIN;", false);
    PGresult *result =
        PQexec (conn->conn, store_lock ? "BEGIN; SELECT pg_advisory_xact_lock (" S_STORE_LOCK "),"
                                         " pg_current_xact_id ()::text"
                                       : "BEGIN; SELECT 0, pg_current_xact_id ()::text");
    if (PQresultStatus (result) != PGRES_TUPLES_OK || PQntuples (result) != 1) {
        ml_db_pg_collect (self, result);
        PQclear (result);
        ml_db_error_t kept = self->error;
        ml_db_pg_rollback (self);
        self->error = kept;
        return -1;
    }
    snprintf (conn->xid, sizeof conn->xid, "%s", PQgetvalue (result, 0, 1));
    PQclear (result);
    return 0;
}

int ml_db_pg_plain (ml_db_t *self, const char *sql)
{
    ml_db_pg_forget (self);
    if (s_ready (self) != 0)
        return -1;
    ml_db_pg_tally (self, sql, false);
    PGresult *result = ml_db_pg_pipeline (self, NULL, 0, NULL, sql);
    PQclear (result);
    return result ? 0 : -1;
}

int ml_db_pg_outcome (ml_db_t *self, const char *xid)
{
    if (s_ready (self) != 0)
        return -1;
    const char *values[1] = {xid};
    PGresult *result = PQexecParams (S_CONN (self)->conn, "SELECT pg_xact_status ($1::xid8)", 1,
                                     NULL, values, NULL, NULL, 0);
    int outcome = -1;
    if (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) == 1 &&
        !PQgetisnull (result, 0, 0))
        outcome = streq (PQgetvalue (result, 0, 0), "committed") ? 1
                  : streq (PQgetvalue (result, 0, 0), "aborted") ? 0
                                                                 : -1;
    PQclear (result);
    return outcome;
}

int ml_db_pg_commit (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    ml_db_pg_forget (self);
    if (s_ready (self) != 0)
        return -1;
    //  COMMIT ends the savepoints owed; the writes owed go before it, in its round trip.
    self->release_owed = self->savepoint_owed = NULL;
    ml_db_pg_tally (self, "COMMIT", false);
    PGresult *result = ml_db_pg_pipeline (self, NULL, 0, NULL, "COMMIT");
    int rc = result ? 0 : -1;
    if (result && streq (PQcmdStatus (result), "ROLLBACK")) {
        //  A transaction that failed earlier ends in a rollback, which COMMIT reports as
        //  success: it is not one.
        ml_db_set_error (&self->error, ML_DB_OTHER, "25P02", 0,
                         "the transaction failed earlier and was rolled back");
        rc = -1;
    }
    PQclear (result);
    if (rc != 0 && PQstatus (conn->conn) == CONNECTION_OK &&
        PQtransactionStatus (conn->conn) != PQTRANS_IDLE) {
        //  An owed write failed, so COMMIT did not run: the transaction ends here.
        ml_db_error_t kept = self->error;
        ml_db_pg_exec (self, "ROLLBACK");
        self->error = kept;
    }
    conn->in_transaction = false;
    conn->lost_in_transaction = false;
    if (rc != 0 && PQstatus (conn->conn) == CONNECTION_BAD && *conn->xid) {
        //  The connection dropped during COMMIT: did it commit? Asked on a new connection,
        //  so a promise that depended on this commit is kept (committed: success) or not
        //  made (aborted). When the server cannot tell yet, it stays a failure, as lost.
        char xid[sizeof conn->xid];
        snprintf (xid, sizeof xid, "%s", conn->xid);
        ml_db_error_t lost = self->error;
        int outcome = ml_db_pg_outcome (self, xid);
        self->error = lost;
        if (outcome == 1)
            rc = 0;
        else if (outcome == 0)
            snprintf (self->error.message, sizeof self->error.message,
                      "the store's connection was lost during COMMIT; the transaction did not "
                      "commit");
        else
            snprintf (self->error.message, sizeof self->error.message,
                      "the store's connection was lost during COMMIT; whether it committed is "
                      "not known");
    }
    *conn->xid = 0;
    return rc;
}

int ml_db_pg_rollback (ml_db_t *self)
{
    ml_db_pg_conn_t *conn = S_CONN (self);
    ml_db_pg_forget (self);
    conn->lost_in_transaction = false;
    *conn->xid = 0;
    self->release_owed = self->savepoint_owed = NULL; //  the transaction's end ends them
    ml_db_pg_owed_clear (self);                       //  and what it owed
    if (PQstatus (conn->conn) != CONNECTION_OK) {
        //  The server rolled back what the lost connection had open.
        conn->in_transaction = false;
        return 0;
    }
    if (PQtransactionStatus (conn->conn) == PQTRANS_IDLE) {
        conn->in_transaction = false;
        return 0;
    }
    int rc = ml_db_pg_exec (self, "ROLLBACK");
    if (PQtransactionStatus (conn->conn) == PQTRANS_IDLE || PQstatus (conn->conn) != CONNECTION_OK)
        conn->in_transaction = false;
    return rc;
}
