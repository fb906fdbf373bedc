/*  ml_autopay: recurring postable payments tied to a payer's associations (Auto-Pay).

    A schedule belongs to a payer: one of the payer's saved methods, a name, the firm's
    OPERATING account that receives the money (trust is never paid by Auto-Pay), an A/R
    message, a frequency (weekly, biweekly, monthly, quarterly) with a rule for months that
    lack the first run's day, the first run date, and "pay all" or "up to an amount" per run.
    Associations of the payer are enrolled in it. Each due date makes one run, keyed by
    (schedule, due date, attempt) and stored before any money moves, so a core that stops
    between charge and record settles the same run when it comes back, and a core that was
    down makes the due dates it missed one run (logged, noted on the run, and told to the
    firm). A schedule with nothing left to pay for (every enrollment ended) makes no runs and
    says so. A run pays the enrolled invoices
    oldest first, each at most its available balance (balance minus postings not yet
    applied), through ml_payments_autopay, and never more than the balances the firm's matter
    database has now: before a run charges, they are asked for live through the agent (a
    search, as staff searches are), and without an answer the run waits, the firm is told,
    and after a limit the run fails. A declined run queues an "Error-Failed AutoPay"
    mail to the firm's contact; a soft decline (insufficient funds) is retried once the next
    day. docs/autopay.md says it all for people.

    Admin ops: autopay-add, autopay-edit, autopay-enable, autopay-disable, autopay-delete,
    autopay-enroll, autopay-unenroll, autopay-list, autopay-show, autopay-clock (a test
    facility, refused unless the core runs with MATTERLINK_TEST_CLOCK=1).
*/
#ifndef ML_AUTOPAY_H_INCLUDED
#define ML_AUTOPAY_H_INCLUDED

#include "ml_mailer.h"
#include "ml_msg.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_lease.h"
#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct _ml_autopay_t ml_autopay_t;

//  Create the tables if needed. store, payers and payments are borrowed; mailer is
//  borrowed and may be NULL (no alert mail is queued then, the failure is still recorded).
ml_autopay_t *ml_autopay_new (ml_store_t *store, ml_payers_t *payers, ml_payments_t *payments,
                              ml_mailer_t *mailer, char *error, size_t error_size);

//  Destroy. Idempotent; nulls the caller's pointer.
void ml_autopay_destroy (ml_autopay_t **self_p);

//  Run what is due today (the dates missed while the core was down as one run), settle runs left
//  open by a stop, and retries whose day has come. deliver_firm is set to the firm of the
//  last posting made. Returns the number of runs that reached an outcome.
int ml_autopay_tick (ml_autopay_t *self, char *deliver_firm, size_t size);

//  Run one admin op of this class. Returns the reply (new reference), or NULL when op is
//  not one of this class's.
json_t *ml_autopay_execute (ml_autopay_t *self, const char *op, const json_t *request,
                            char *deliver_firm, size_t size);

//  The payer's schedules that are not deleted, for the payer portal (new reference; NULL on
//  a store error): schedule_id, name, frequency, day_rule, first_date, amount_minor (0: all
//  outstanding), currency, the card's brand and last4, state (active, off, ended), next_run
//  (YYYY-MM-DD, null unless active), next_is_retry, covers ([{level, number}] enrolled).
//  Never the A/R message.
json_t *ml_autopay_payer_schedules (ml_autopay_t *self, int64_t payer_id);

//  The index-th due date (0 = first_date) of a schedule, as YYYY-MM-DD in due (11 bytes).
//  frequency is weekly, biweekly, monthly or quarterly; day_rule says what a monthly or
//  quarterly run does in a month without first_date's day: "last" (the month's last day)
//  or "next" (the 1st of the following month). Returns 0, or -1 on a bad argument.
int ml_autopay_due_date (const char *first_date, const char *frequency, const char *day_rule,
                         int index, char *due, size_t size);

//  How the core asks a firm's agent for live balances before a run charges: send search
//  (borrowed; the callee sends a copy or encodes it at once) to firm_id's agent, and when
//  the answer comes call ml_autopay_live with context. Returns 0 when sent, -1 when the
//  firm's agent is not connected. context is borrowed.
typedef int (ml_autopay_ask_fn) (void *arg, const char *firm_id, ml_msg_t *search,
                                 const json_t *context);

//  Set how live balances are asked for, how long a run waits for them before it fails
//  (wait_ms), and after how long waiting the firm is told the run is deferred (alert_ms).
//  Without an asker no run charges: balances are never confirmed.
void ml_autopay_set_asker (ml_autopay_t *self, ml_autopay_ask_fn *ask, void *arg, int64_t wait_ms,
                           int64_t alert_ms);

//  Several nodes (docs/multinode.md): carry runs only of firms for which owned (arg, firm_id)
//  is true, i.e. this node owns the firm, whose agent it alone talks to. Without it, every
//  firm's. A run's charge is made under the run's own payment UUID, so a run carried by a
//  former owner that wakes up cannot charge twice either.
void ml_autopay_set_owner (ml_autopay_t *self, ml_firm_owned_fn *owned, void *arg);

//  The agent's answer to a live-balance search (context as given to the asker).
void ml_autopay_live (ml_autopay_t *self, const json_t *context, const ml_msg_t *answer);

//  Default wait for live balances, in minutes (config key autopay/agent_wait_minutes).
#define ML_AUTOPAY_WAIT_MINUTES 1440

void ml_autopay_test (bool verbose);

#endif
