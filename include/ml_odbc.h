/*  ml_odbc: one ODBC connection (unixODBC) and the statements run on it.

    Every value crosses as text (SQL_C_CHAR) or int64 (SQL_C_SBIGINT): money read as text is
    parsed exactly by ml_money, never through a float. Parameters are always bound, never
    spliced into SQL. Results are fetched with bound columns in row arrays, so memory stays
    bounded whatever the result size (with a streaming driver setting: StepAPI=1 on SQLite,
    UseDeclareFetch=1 on PostgreSQL). Every diagnostic record is read and the first one is
    classified so callers know whether to reconnect, retry, or give up with a reason.
*/
#ifndef ML_ODBC_H_INCLUDED
#define ML_ODBC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _ml_odbc_t ml_odbc_t;
typedef struct _ml_query_t ml_query_t;

typedef enum {
    ML_ODBC_OK = 0,
    ML_ODBC_LOST,     //  the connection is gone: reconnect
    ML_ODBC_RETRY,    //  deadlock or serialization failure: run the transaction again
    ML_ODBC_TIMEOUT,  //  statement or lock timeout
    ML_ODBC_DATA,     //  constraint or data error: this input will never succeed
    ML_ODBC_BUSINESS, //  a rejection raised by a contract procedure (ML001)
    ML_ODBC_OTHER
} ml_odbc_class_t;

typedef struct {
    ml_odbc_class_t kind;
    char sqlstate[6];
    long native;
    char message[512]; //  all diagnostic records, joined with " | ", cut to fit
} ml_odbc_error_t;

//  Connect with an ODBC connection string. Returns the connection, or NULL with *error
//  filled. The connection string is never logged or copied into an error (it may hold a
//  password).
ml_odbc_t *ml_odbc_new (const char *connection_string, ml_odbc_error_t *error);

//  Connect, like ml_odbc_new, to a database that must exist already: a matter database is
//  IT's, and a mistyped SQLite path must be reported as such, not become a new empty file
//  that then fails the contract check. For the SQLite driver the file named by Database=
//  must exist ("the SQLite database file X does not exist") and the driver is told never
//  to create one (NoCreat=1). Other drivers never create a database anyway.
ml_odbc_t *ml_odbc_new_existing (const char *connection_string, ml_odbc_error_t *error);

//  Disconnect and destroy. Idempotent; rolls back an open transaction.
void ml_odbc_destroy (ml_odbc_t **self_p);

//  The last error on this connection (borrowed).
const ml_odbc_error_t *ml_odbc_error (ml_odbc_t *self);

//  Name of an error class, for logs.
const char *ml_odbc_class_name (ml_odbc_class_t kind);

//  Start a transaction (autocommit off until commit or rollback). Returns 0 or -1.
int ml_odbc_begin (ml_odbc_t *self);
int ml_odbc_commit (ml_odbc_t *self);
int ml_odbc_rollback (ml_odbc_t *self);

//  Run a statement that returns no rows. picture names the parameters that follow, one
//  character each: 's' const char * (NULL binds SQL NULL), 'i' int64_t. Returns the number
//  of rows affected (0 if the driver does not say), or -1 on error.
int64_t ml_odbc_execute (ml_odbc_t *self, const char *sql, const char *picture, ...);

//  One parameter value for ml_odbc_execute_many: text for 's' (NULL binds SQL NULL), number
//  for 'i'.
typedef struct {
    const char *text;
    int64_t number;
} ml_odbc_value_t;

//  Run a statement once for each of rows rows of parameters, in one call (ODBC parameter
//  arrays). values holds rows * strlen (picture) values, row after row; a row may have up
//  to 2048 parameters (a statement inserting several rows at once). The batch counts
//  only if the driver says it succeeded, processed every row and every row's status is a
//  success (drivers differ on partial failures); otherwise it returns -1 and the caller
//  must roll back its transaction. Returns 0 or -1.
int ml_odbc_execute_many (ml_odbc_t *self, const char *sql, const char *picture, size_t rows,
                          const ml_odbc_value_t *values);

//  Run a statement that returns rows, with parameters as for ml_odbc_execute. Returns a
//  new query positioned before the first row (caller owns it), or NULL on error.
ml_query_t *ml_odbc_query (ml_odbc_t *self, const char *sql, const char *picture, ...);

//  The same with the parameters in an array (one per picture character), for statements
//  whose parameters are assembled at run time.
ml_query_t *ml_odbc_query_values (ml_odbc_t *self, const char *sql, const char *picture,
                                  const ml_odbc_value_t *values);

//  Advance to the next row: 1 a row, 0 no more rows, -1 error (see ml_odbc_error).
int ml_query_fetch (ml_query_t *self);

//  Number of result columns.
int ml_query_columns (ml_query_t *self);

//  Name of a result column (borrowed).
const char *ml_query_name (ml_query_t *self, int column);

//  Value of a column of the current row as text (borrowed, valid until the next fetch),
//  or NULL when the value is SQL NULL. Columns count from 0.
const char *ml_query_text (ml_query_t *self, int column);

//  True if the column's value was longer than the column buffer and was cut.
bool ml_query_truncated (ml_query_t *self, int column);

//  Value of an integer column. Returns 0, or -1 if NULL or not an integer.
int ml_query_int64 (ml_query_t *self, int column, int64_t *value);

//  Close and destroy the query. Idempotent.
void ml_query_destroy (ml_query_t **self_p);

//  Classify a diagnostic (exposed for tests).
ml_odbc_class_t ml_odbc_classify (const char *sqlstate, long native, const char *message);

void ml_odbc_test (bool verbose);

#endif
