/*  ml_autopay's object and calendar, shared with its selftest (core/ml_autopay_test.c). */
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
int ml_autopay_month_days (int year, int month);

//  A strict YYYY-MM-DD that names a real day. Returns 0 or -1.
int ml_autopay_date_parse (const char *text, int *year, int *month, int *day);

//  The first day client- and matter-level enrollments no longer run: one year after the
//  schedule's first run (first_date must be valid).
void ml_autopay_year_end (const char *first_date, char *end, size_t size);

//  A date plus some days, as text (11 bytes). date must be valid.
void ml_autopay_date_add (const char *date, int days, char *text, size_t size);

#endif
