/*  ml_autopay's selftest (include/ml_autopay.h): due dates, schedules, enrollments and runs
    against a real store, processor test server and an agent that answers from the replica. */
#include "ml_autopay_internal.h"
#include "ml_msg.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>

static bool s_count_column (const char *name)
{
    return streq (name, "open_count");
}

static json_t *s_test_call (ml_autopay_t *self, const char *op, json_t *request)
{
    char deliver[64] = "";
    json_t *reply = ml_autopay_execute (self, op, request, deliver, sizeof deliver);
    json_decref (request);
    assert (reply);
    return reply;
}

static int64_t s_test_count (ml_store_t *store, const char *sql)
{
    json_t *rows = ml_store_rows (ml_db_query (ml_store_db (store), sql, NULL), s_count_column);
    int64_t count = ML_AUTOPAY_INT (json_array_get (rows, 0), "open_count");
    json_decref (rows);
    return count;
}

//  The selftest's agent: offline, or answering at once from the replica, with balances
//  the test sets ({invoice: balance_minor}) standing for what the matter database has now.
typedef struct {
    ml_autopay_t *autopay;
    ml_store_t *store;
    bool offline;
    json_t *live; //  balances that differ from the replica's
    int asked;
} s_test_agent_t;

static int s_test_ask (void *arg, const char *firm_id, ml_msg_t *search, const json_t *context)
{
    s_test_agent_t *agent = (s_test_agent_t *)arg;
    assert (search->id == ML_MSG_SEARCH && search->search.scoped);
    agent->asked++;
    if (agent->offline)
        return -1;
    json_t *items = ml_store_open_items (agent->store, firm_id, NULL, NULL, NULL);
    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    answer->code = ML_SEARCH_OK;
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        ml_item_t *row = ml_msg_add_item (answer);
        row->kind = 'I';
        snprintf (row->invoice_number, sizeof row->invoice_number, "%s",
                  ML_AUTOPAY_TEXT (item, "invoice_number"));
        snprintf (row->currency, sizeof row->currency, "%s", ML_AUTOPAY_TEXT (item, "currency"));
        json_t *live = json_object_get (agent->live, row->invoice_number);
        row->balance_minor =
            live ? json_integer_value (live) : ML_AUTOPAY_INT (item, "balance_minor");
    }
    json_decref (items);
    ml_autopay_live (agent->autopay, context, answer);
    ml_msg_destroy (&answer);
    return 0;
}

//  Set the test clock and run what is due; returns the number of runs that ended.
static int s_test_day (ml_autopay_t *self, const char *today)
{
    char deliver[64];
    snprintf (self->today, sizeof self->today, "%s", today);
    return ml_autopay_tick (self, deliver, sizeof deliver);
}

//  A payer of firm acme with a saved card and an association; returns the payer's id and
//  sets *method_id and *association_id.
static int64_t s_test_payer (ml_payers_t *payers, ml_processor_t *processor, const char *email,
                             const char *card, const char *level, const ml_item_t *item,
                             int64_t *method_id, int64_t *association_id)
{
    json_t *request = json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", email, "email", email);
    json_t *reply = ml_payers_execute (payers, "payer-add", request);
    json_decref (request);
    int64_t payer_id = ML_AUTOPAY_INT (json_object_get (reply, "payer"), "payer_id");
    json_decref (reply);
    assert (payer_id > 0);
    ml_processor_result_t result;
    char key[64];
    snprintf (key, sizeof key, "autopay-test-%lld", (long long)payer_id);
    int rc = ml_processor_tokenize (processor, key, card, 12, 2099, "123", &result);
    assert (rc == ML_PROCESSOR_APPROVED);
    request = json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", (json_int_t)payer_id,
                         "token", result.token, "brand", result.brand, "last4", result.last4,
                         "exp_month", 12, "exp_year", 2099);
    reply = ml_payers_execute (payers, "method-add", request);
    json_decref (request);
    *method_id = ML_AUTOPAY_INT (json_object_get (reply, "method"), "method_id");
    json_decref (reply);
    reply = ml_payers_association_record (payers, payer_id, level, item, "alice");
    *association_id = ML_AUTOPAY_INT (json_object_get (reply, "association"), "association_id");
    json_decref (reply);
    assert (*method_id > 0 && *association_id > 0);
    return payer_id;
}

void ml_autopay_test (bool verbose)
{
    printf (" * ml_autopay: ");
    //  Due dates: monthly on the 31st lands on each short month's last day and comes back
    //  to the 31st; "next" moves to the 1st; quarterly and biweekly count from the first.
    const char *monthly[] = {"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31",
                             "2026-06-30", "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31",
                             "2026-11-30", "2026-12-31", "2027-01-31"};
    char due[11];
    for (int index = 0; index < 13; index++) {
        assert (ml_autopay_due_date ("2026-01-31", "monthly", "last", index, due, sizeof due) == 0);
        assert (streq (due, monthly[index]));
    }
    assert (ml_autopay_due_date ("2028-01-31", "monthly", "last", 1, due, sizeof due) == 0);
    assert (streq (due, "2028-02-29"));
    //  One run per period (a month, or a quarter's three months), whatever the day and the
    //  rule, across years with and without Feb 29.
    const char *frequencies[] = {"monthly", "quarterly"};
    const char *rules[] = {"last", "next"};
    const char *starts[] = {"2027-01", "2027-11", "2028-01", "2027-12"};
    for (int start = 0; start < 4; start++)
        for (int first_day = 1; first_day <= 31; first_day++) {
            char first[16];
            snprintf (first, sizeof first, "%s-%02d", starts[start], first_day);
            int y0, m0, d0;
            if (ml_autopay_date_parse (first, &y0, &m0, &d0) != 0)
                continue;
            for (int f = 0; f < 2; f++)
                for (int r = 0; r < 2; r++) {
                    int step = f == 0 ? 1 : 3;
                    for (int index = 0; index < 14; index++) {
                        assert (ml_autopay_due_date (first, frequencies[f], rules[r], index, due,
                                                     sizeof due) == 0);
                        int y, m, d;
                        assert (ml_autopay_date_parse (due, &y, &m, &d) == 0);
                        //  The period is the step months from the index-th month on.
                        int period = (y - y0) * 12 + (m - m0);
                        assert (period >= step * index && period < step * (index + 1));
                        assert (d == first_day ||
                                (d == ml_msg_month_days (y, m) && d < first_day) ||
                                (d == 1 && step > 1 && streq (rules[r], "next")));
                    }
                }
        }
    assert (ml_autopay_due_date ("2026-01-31", "monthly", "next", 1, due, sizeof due) == 0);
    assert (streq (due, "2026-02-28"));
    assert (ml_autopay_due_date ("2028-02-29", "monthly", "next", 12, due, sizeof due) == 0);
    assert (streq (due, "2029-02-28"));
    assert (ml_autopay_due_date ("2026-11-30", "quarterly", "next", 1, due, sizeof due) == 0);
    assert (streq (due, "2027-03-01"));
    assert (ml_autopay_due_date ("2027-11-30", "quarterly", "last", 1, due, sizeof due) == 0);
    assert (streq (due, "2028-02-29"));
    assert (ml_autopay_due_date ("2026-11-30", "quarterly", "last", 1, due, sizeof due) == 0);
    assert (streq (due, "2027-02-28"));
    assert (ml_autopay_due_date ("2026-11-30", "quarterly", "last", 2, due, sizeof due) == 0);
    assert (streq (due, "2027-05-30"));
    assert (ml_autopay_due_date ("2026-12-25", "biweekly", "last", 1, due, sizeof due) == 0);
    assert (streq (due, "2027-01-08"));
    assert (ml_autopay_due_date ("2026-12-25", "weekly", "last", 52, due, sizeof due) == 0);
    assert (streq (due, "2027-12-24"));
    assert (ml_autopay_due_date ("2026-02-30", "weekly", "last", 0, due, sizeof due) == -1);
    assert (ml_autopay_due_date ("2026-02-01", "daily", "last", 0, due, sizeof due) == -1);
    char year_end[11];
    ml_autopay_year_end ("2028-02-29", year_end, sizeof year_end);
    assert (streq (year_end, "2029-02-28"));

    //  Runs against the test processor, over a replica with client C-1's three invoices of
    //  100.00 and client C-2's one.
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    ml_processor_settings_t settings;
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    char outbox_key[160];
    snprintf (outbox_key, sizeof outbox_key, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (ml_store_db (store), outbox_key, error, sizeof error);
    assert (payers && processor && mailer);
    ml_payments_t *payments =
        ml_payments_new (store, payers, processor, mailer, error, sizeof error);
    ml_autopay_t *self = ml_autopay_new (store, payers, payments, mailer, error, sizeof error);
    assert (payments && self);
    s_test_agent_t agent = {self, store, false, json_object (), 0};
    ml_autopay_set_asker (self, s_test_ask, &agent, 3600000, 0);
    const ml_selftest_item_t items[] = {{'I', "INV-2", "2026-02-10", "C-1", "M-1", 10000},
                                        {'I', "INV-1", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-3", "2026-03-01", "C-1", "M-1", 10000},
                                        {'I', "INV-9", "2026-01-05", "C-2", "M-2", 10000}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);
    char deliver[64];
    json_t *request = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "firm", "acme", "number", "OP-001",
                                 "type", "OPERATING", "currency", "USD", "merchant_account", "op");
    json_t *reply = ml_payments_execute (payments, "account-add", request, deliver, sizeof deliver);
    json_decref (request);
    json_decref (reply);

    ml_item_t client = {0};
    client.kind = 'I';
    strcpy (client.client_number, "C-1");
    strcpy (client.matter_number, "M-1");
    strcpy (client.invoice_number, "INV-1");
    int64_t method_id, association_id;
    int64_t pat = s_test_payer (payers, processor, "pat@example.com", "4242424242424242", "client",
                                &client, &method_id, &association_id);
    snprintf (self->today, sizeof self->today, "2026-07-01");
    //  Refusals: a trust account, a past first date, a method of someone else.
    reply =
        s_test_call (self, "autopay-add",
                     json_pack ("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "payer_id", pat, "method_id",
                                method_id, "name", "Monthly", "account", "OP-001", "frequency",
                                "monthly", "first_date", "2026-06-30", "amount", "150.00"));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "in the past"));
    json_decref (reply);
    reply = s_test_call (self, "autopay-add",
                         json_pack ("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "payer_id", pat,
                                    "method_id", method_id, "name", "Monthly", "account", "OP-001",
                                    "frequency", "monthly", "first_date", "2026-07-15", "amount",
                                    "150.00", "ar_message", "AutoPay July"));
    assert (json_is_true (json_object_get (reply, "ok")));
    int64_t schedule = ML_AUTOPAY_INT (json_object_get (reply, "schedule"), "schedule_id");
    //  No firm contact yet: the reply warns, naming the command that sets one.
    json_t *warnings = json_object_get (reply, "warnings");
    assert (json_array_size (warnings) == 1);
    assert (strstr (json_string_value (json_array_get (warnings, 0)),
                    "matterlink firm contact --firm acme --email"));
    json_decref (reply);
    request = json_pack ("{s:s, s:s}", "firm", "acme", "email", "billing@acme.example");
    reply = ml_payments_execute (payments, "firm-contact", request, deliver, sizeof deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (request);
    json_decref (reply);
    //  With one, no warning; a monthly "next" on a day some month lacks is one.
    reply = s_test_call (self, "autopay-edit",
                         json_pack ("{s:I, s:s}", "schedule_id", schedule, "day_rule", "last"));
    assert (json_array_size (json_object_get (reply, "warnings")) == 0);
    json_decref (reply);
    reply = s_test_call (self, "autopay-edit",
                         json_pack ("{s:I, s:s, s:s}", "schedule_id", schedule, "day_rule", "next",
                                    "first_date", "2026-07-31"));
    warnings = json_object_get (reply, "warnings");
    assert (json_array_size (warnings) == 1);
    assert (strstr (json_string_value (json_array_get (warnings, 0)), "quarterly schedules only"));
    json_decref (reply);
    reply = s_test_call (self, "autopay-edit",
                         json_pack ("{s:I, s:s, s:s}", "schedule_id", schedule, "day_rule", "last",
                                    "first_date", "2026-07-15"));
    json_decref (reply);
    reply = s_test_call (
        self, "autopay-enroll",
        json_pack ("{s:I, s:I}", "schedule_id", schedule, "association_id", association_id));
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);

    //  Nothing before the first date; then 150.00 oldest first: INV-1 whole, INV-2 half.
    assert (s_test_day (self, "2026-07-14") == 0);
    assert (s_test_day (self, "2026-07-15") == 1);
    assert (s_test_day (self, "2026-07-15") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM posting WHERE source ="
                                 " 'autopay' AND ar_message = 'AutoPay July'") == 1);
    //  The next month counts the pending postings: INV-2's other half, then INV-3.
    assert (s_test_day (self, "2026-08-15") == 1);
    reply = s_test_call (self, "autopay-show", json_pack ("{s:I}", "schedule_id", schedule));
    json_t *runs = json_object_get (json_object_get (reply, "schedule"), "runs");
    assert (json_array_size (runs) == 2);
    json_t *first = json_array_get (runs, 0), *second = json_array_get (runs, 1);
    assert (streq (ML_AUTOPAY_TEXT (first, "status"), "paid") &&
            ML_AUTOPAY_INT (first, "amount_minor") == 15000);
    json_t *lines = json_object_get (first, "lines");
    assert (streq (ML_AUTOPAY_TEXT (json_array_get (lines, 0), "invoice"), "INV-1"));
    assert (ML_AUTOPAY_INT (json_array_get (lines, 1), "amount_minor") == 5000);
    lines = json_object_get (second, "lines");
    assert (streq (ML_AUTOPAY_TEXT (json_array_get (lines, 0), "invoice"), "INV-2"));
    assert (ML_AUTOPAY_INT (json_array_get (lines, 0), "amount_minor") == 5000);
    assert (streq (ML_AUTOPAY_TEXT (json_array_get (lines, 1), "invoice"), "INV-3"));
    json_decref (reply);
    //  Down for three months: the missed dates become one run on the latest of them (the
    //  note and a notice to the firm say which), and nothing is due any more.
    assert (s_test_day (self, "2026-11-20") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " status = 'nothing_due' AND due_date = '2026-11-15' AND note ="
                                 " 'one run for 3 missed due dates (also 2026-09-15,"
                                 " 2026-10-15)'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_missed'") == 1);
    //  Past one year from the first run, a client enrollment no longer runs: the seven
    //  dates before it are one run, and the schedule says it has ended.
    s_test_day (self, "2027-09-01");
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " due_date >= '2027-07-15'") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " due_date = '2027-06-15' AND note LIKE 'one run for 7 %'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run") == 4);
    reply = s_test_call (self, "autopay-show", json_pack ("{s:I}", "schedule_id", schedule));
    json_t *shown = json_object_get (reply, "schedule");
    assert (streq (ML_AUTOPAY_TEXT (shown, "state"), "ended"));
    assert (strstr (ML_AUTOPAY_TEXT (shown, "state_reason"), "ran their year"));
    //  Only runs that made a payment show one.
    size_t run_index;
    json_t *run;
    json_array_foreach (json_object_get (shown, "runs"), run_index, run)
    {
        bool paid = streq (ML_AUTOPAY_TEXT (run, "status"), "paid");
        assert (paid == json_is_string (json_object_get (run, "payment_uuid")));
    }
    json_decref (reply);

    //  A soft decline: recorded, alerted, retried once the next day, and alerted again.
    ml_item_t invoice = {0};
    invoice.kind = 'I';
    strcpy (invoice.client_number, "C-2");
    strcpy (invoice.matter_number, "M-2");
    strcpy (invoice.invoice_number, "INV-9");
    int64_t poor = s_test_payer (payers, processor, "poor@example.com", "4000000000009995",
                                 "invoice", &invoice, &method_id, &association_id);
    reply = s_test_call (self, "autopay-add",
                         json_pack ("{s:I, s:I, s:s, s:s, s:s, s:s}", "payer_id", poor, "method_id",
                                    method_id, "name", "Plan", "account", "OP-001", "frequency",
                                    "weekly", "first_date", "2027-09-02"));
    int64_t plan = ML_AUTOPAY_INT (json_object_get (reply, "schedule"), "schedule_id");
    json_decref (reply);
    reply = s_test_call (
        self, "autopay-enroll",
        json_pack ("{s:I, s:I}", "schedule_id", plan, "association_id", association_id));
    json_decref (reply);
    assert (s_test_day (self, "2027-09-02") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_failed'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " status = 'scheduled'") == 1);
    assert (s_test_day (self, "2027-09-03") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_failed'") == 2);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_failed_payer'") == 2);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " schedule_id = 2 AND status = 'declined'") == 2);
    assert (s_test_day (self, "2027-09-04") == 0);
    //  Turned off, it does not run; turned on, it runs from today, not the dates it missed.
    reply = s_test_call (self, "autopay-disable", json_pack ("{s:I}", "schedule_id", plan));
    json_decref (reply);
    assert (s_test_day (self, "2027-09-20") == 0);
    reply = s_test_call (self, "autopay-enable", json_pack ("{s:I}", "schedule_id", plan));
    json_decref (reply);
    assert (s_test_day (self, "2027-09-23") == 1);
    //  Declined again, so retried tomorrow; but the schedule is off tomorrow: turned on
    //  after that, the retry is not run (a date passed while off), and says so.
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " status = 'scheduled' AND run_on = '2027-09-24'") == 1);
    reply = s_test_call (self, "autopay-disable", json_pack ("{s:I}", "schedule_id", plan));
    json_decref (reply);
    assert (s_test_day (self, "2027-09-25") == 0);
    reply = s_test_call (self, "autopay-enable", json_pack ("{s:I}", "schedule_id", plan));
    json_decref (reply);
    assert (s_test_day (self, "2027-09-26") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " run_on = '2027-09-24' AND status = 'error' AND reason ="
                                 " 'not_run_while_off'") == 1);
    //  Its one enrollment ended, the plan makes no more runs (no monthly "nothing due").
    reply = s_test_call (
        self, "autopay-unenroll",
        json_pack ("{s:I, s:I}", "schedule_id", plan, "association_id", association_id));
    json_decref (reply);
    int64_t plan_runs = s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run");
    assert (s_test_day (self, "2027-10-30") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run") == plan_runs);
    reply = s_test_call (self, "autopay-show", json_pack ("{s:I}", "schedule_id", plan));
    shown = json_object_get (reply, "schedule");
    assert (streq (ML_AUTOPAY_TEXT (shown, "state"), "ended"));
    assert (streq (ML_AUTOPAY_TEXT (shown, "state_reason"), "every enrollment has ended"));
    json_decref (reply);
    //  Live balances. A payer pays INV-9 weekly. With the agent offline nothing is charged:
    //  the run waits and the firm is told once.
    int64_t sam = s_test_payer (payers, processor, "sam@example.com", "4242424242424242", "invoice",
                                &invoice, &method_id, &association_id);
    reply = s_test_call (self, "autopay-add",
                         json_pack ("{s:I, s:I, s:s, s:s, s:s, s:s}", "payer_id", sam, "method_id",
                                    method_id, "name", "Live", "account", "OP-001", "frequency",
                                    "weekly", "first_date", "2027-11-01"));
    int64_t live_plan = ML_AUTOPAY_INT (json_object_get (reply, "schedule"), "schedule_id");
    json_decref (reply);
    reply = s_test_call (
        self, "autopay-enroll",
        json_pack ("{s:I, s:I}", "schedule_id", live_plan, "association_id", association_id));
    json_decref (reply);
    agent.offline = true;
    int64_t payments_before = s_test_count (store, "SELECT COUNT (*) AS open_count FROM payment");
    assert (s_test_day (self, "2027-11-01") == 0);
    assert (s_test_day (self, "2027-11-01") == 0);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM payment") == payments_before);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_deferred'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " status = 'started' AND note LIKE 'deferred:%'") == 1);
    //  The agent is back, and the matter database has 40.00 left on INV-9 (the replica still
    //  says 100.00): the run charges the live balance, not more.
    agent.offline = false;
    json_object_set_new (agent.live, "INV-9", json_integer (4000));
    zhashx_purge (self->live); //  ask now, not after S_LIVE_ASK_MS
    assert (s_test_day (self, "2027-11-01") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " due_date = '2027-11-01' AND status = 'paid' AND"
                                 " amount_minor = 4000") == 1);
    //  The firm settled the rest itself; the replica, stale, still shows it open: nothing
    //  is charged.
    json_object_set_new (agent.live, "INV-9", json_integer (0));
    assert (s_test_day (self, "2027-11-08") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " due_date = '2027-11-08' AND status = 'nothing_due'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM payment") ==
            payments_before + 1);
    //  Offline past the limit: the run fails (and the firm gets the failure alert).
    agent.offline = true;
    self->wait_ms = 0;
    int64_t alerts = s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                          " 'autopay_failed'");
    assert (s_test_day (self, "2027-11-15") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM autopay_run WHERE"
                                 " due_date = '2027-11-15' AND status = 'error' AND reason ="
                                 " 'agent_offline'") == 1);
    assert (s_test_count (store, "SELECT COUNT (*) AS open_count FROM mail WHERE kind ="
                                 " 'autopay_failed'") == alerts + 1);
    json_decref (agent.live);

    //  The test clock is refused without MATTERLINK_TEST_CLOCK=1.
    if (!getenv ("MATTERLINK_TEST_CLOCK")) {
        reply = s_test_call (self, "autopay-clock", json_pack ("{s:s}", "today", "2030-01-01"));
        assert (json_is_false (json_object_get (reply, "ok")));
        json_decref (reply);
    }
    reply = s_test_call (self, "autopay-delete", json_pack ("{s:I}", "schedule_id", plan));
    json_decref (reply);
    reply = s_test_call (self, "autopay-list", json_pack ("{s:s}", "firm", "acme"));
    assert (json_array_size (json_object_get (reply, "schedules")) == 2);
    json_decref (reply);

    ml_autopay_destroy (&self);
    ml_autopay_destroy (&self);
    ml_payments_destroy (&payments);
    ml_mailer_destroy (&mailer);
    ml_processor_destroy (&processor);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    ml_selftest_remove (directory);
    ml_log_setup (NULL, saved);
    printf ("OK\n");
}
