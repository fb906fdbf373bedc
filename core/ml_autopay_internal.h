/*  ml_autopay's pieces share these (core only): the object, the calendar, and the helpers one
    piece keeps and another uses (ml_autopay.c, ml_autopay_runs.c, ml_autopay_dates.c,
    ml_autopay_test.c). */
#ifndef ML_AUTOPAY_INTERNAL_H_INCLUDED
#define ML_AUTOPAY_INTERNAL_H_INCLUDED

#include "ml_autopay.h"

struct _ml_autopay_t {
    ml_store_t *store;       //  borrowed
    ml_db_t *db;             //  the store's connection
    ml_payers_t *payers;     //  borrowed
    ml_payments_t *payments; //  borrowed
    ml_mailer_t *mailer;     //  borrowed, may be NULL
    char today[11];          //  the test clock's day, "" for the real one
    zhashx_t *ended;         //  schedules already logged as ended (schedule id text)
    ml_autopay_ask_fn *ask;  //  asks a firm's agent for live balances; NULL: never confirmed
    void *ask_arg;
    int64_t wait_ms;         //  how long a run waits for live balances before it fails
    int64_t alert_ms;        //  how long it waits before the firm is told it is deferred
    zhashx_t *live;          //  run key -> {asked_at, since, answered_at, balances, complete}
    ml_firm_owned_fn *owned; //  several nodes: which firms' runs this node carries (or NULL)
    void *owned_arg;
};

//  A question for live balances is asked again after this long without an answer (it is
//  the agent's search deadline), and an answer is used only this fresh.
#define S_LIVE_ASK_MS   5000
#define S_LIVE_FRESH_MS 30000

//  The calendar (core/ml_autopay_dates.c); ml_autopay_due_date is in ml_autopay.h.

//  The number of days in a month of a year (month 1 to 12).

//  A strict YYYY-MM-DD that names a real day. Returns 0 or -1.
int ml_autopay_date_parse (const char *text, int *year, int *month, int *day);

//  The first day client- and matter-level enrollments no longer run: one year after the
//  schedule's first run (first_date must be valid).
void ml_autopay_year_end (const char *first_date, char *end, size_t size);

//  A date plus some days, as text (11 bytes). date must be valid.
void ml_autopay_date_add (const char *date, int days, char *text, size_t size);

//  How many due dates one schedule may look back over: a weekly schedule's year is 53, so
//  this is only a guard against a broken first date, never a limit a real schedule meets.
#define ML_AUTOPAY_MAX_DUE 1000

//  Every row of a query on the store (in a method: self is the object), typed by
//  ml_autopay_integer_column.
#define ML_AUTOPAY_ROWS(sql, ...)                                                                  \
    ml_store_rows (ml_db_query (self->db, sql, __VA_ARGS__), ml_autopay_integer_column)

//  A schedule, an enrollment (with its association) and a run, as the ops show them.
#define ML_AUTOPAY_SCHEDULE_SQL                                                                    \
    "SELECT schedule_id, firm_id, payer_id, method_id, name, account_number, currency,"            \
    " ar_message, frequency, day_rule, first_date, amount_minor, enabled, runs_from,"              \
    " deleted_at, created_by, created_at, updated_at FROM autopay_schedule"

//  A row's text and integer members.
#define ML_AUTOPAY_TEXT(row, key) json_string_value (json_object_get (row, key))
#define ML_AUTOPAY_INT(row, key)  json_integer_value (json_object_get (row, key))

#define ML_AUTOPAY_ENROLLMENT_SQL                                                                  \
    "SELECT e.association_id, a.level, a.client_number, a.matter_number, a.invoice_number,"        \
    " e.enrolled_at, e.ended_at, e.end_reason FROM autopay_enrollment e JOIN association a"        \
    " ON a.association_id = e.association_id WHERE e.schedule_id = ?"

#define ML_AUTOPAY_RUN_SQL                                                                         \
    "SELECT schedule_id, due_date, attempt, run_on, payment_uuid, status, amount_minor,"           \
    " currency, lines, reason, note, created_at, updated_at FROM autopay_run"

//  ml_autopay.c --------------------------------------------------------------------------

//  The scheduler's "today": the test clock's day when set, else today in UTC.
void ml_autopay_today (ml_autopay_t *self, char *today, size_t size);

//  The columns of this class's rows that are integers, for ml_store_rows.
bool ml_autopay_integer_column (const char *name);

//  A store failure while doing: logged, rolled back, and the reply to give.
json_t *ml_autopay_store_failed (ml_autopay_t *self, const char *doing);

//  A schedule's row (new reference) or NULL when there is none.
json_t *ml_autopay_schedule (ml_autopay_t *self, int64_t schedule_id);

//  Why a schedule makes no run due on due, given its enrollments (rows of
//  ML_AUTOPAY_ENROLLMENT_SQL): none is active (every one ended, or none was ever enrolled), or only
//  client and matter enrollments are left and they ran their year. NULL when it still runs.
const char *ml_autopay_ended (const json_t *enrollments, const char *due, const char *year_end);

#endif
