/*  ml_autopay: recurring postable payments (Auto-Pay). See include/ml_autopay.h. The
    schedules and their ops are here; the runs in ml_autopay_runs.c, the calendar in
    ml_autopay_dates.c. */
#include "ml_autopay_internal.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_notify.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Schedules and enrollments are kept when deleted or ended (history); runs are a journal
//  keyed by (schedule, due date, attempt), stored before money moves. An enrollment names
//  an association of the payer's; an association removed later simply stops being paid.
static const char *const s_schema[] = {
    //  amount_minor 0 means "pay all outstanding" on each run.
    "CREATE TABLE IF NOT EXISTS autopay_schedule ("
    " schedule_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), payer_id INTEGER NOT NULL,"
    " method_id INTEGER NOT NULL, name TEXT NOT NULL, account_number TEXT NOT NULL,"
    " currency TEXT NOT NULL, ar_message TEXT NOT NULL,"
    " frequency TEXT NOT NULL CHECK (frequency IN ('weekly', 'biweekly', 'monthly',"
    " 'quarterly')), day_rule TEXT NOT NULL CHECK (day_rule IN ('last', 'next')),"
    " first_date TEXT NOT NULL, amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),"
    " enabled INTEGER NOT NULL, runs_from TEXT NOT NULL, deleted_at TEXT,"
    " created_by TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS autopay_schedule_payer ON autopay_schedule (firm_id, payer_id)",
    "CREATE TABLE IF NOT EXISTS autopay_enrollment ("
    " schedule_id INTEGER NOT NULL REFERENCES autopay_schedule (schedule_id),"
    " association_id INTEGER NOT NULL, enrolled_at TEXT NOT NULL, ended_at TEXT,"
    " end_reason TEXT, PRIMARY KEY (schedule_id, association_id))",
    "CREATE TABLE IF NOT EXISTS autopay_run ("
    " schedule_id INTEGER NOT NULL REFERENCES autopay_schedule (schedule_id),"
    " due_date TEXT NOT NULL, attempt INTEGER NOT NULL CHECK (attempt IN (1, 2)),"
    " run_on TEXT NOT NULL, payment_uuid TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL CHECK (status IN ('scheduled', 'started', 'pending', 'paid',"
    " 'nothing_due', 'declined', 'error')), amount_minor INTEGER NOT NULL DEFAULT 0,"
    " currency TEXT NOT NULL, lines TEXT NOT NULL, reason TEXT, note TEXT,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY (schedule_id, due_date, attempt))",
    "CREATE INDEX IF NOT EXISTS autopay_run_open ON autopay_run (status)",
    "CREATE TRIGGER IF NOT EXISTS autopay_run_kept BEFORE DELETE ON autopay_run"
    " BEGIN SELECT RAISE (ABORT, 'Auto-Pay runs are never removed'); END",
};

//  zhashx destructor for the JSON entries of the live-balance table.
static void s_json_destroy (void **item)
{
    json_decref ((json_t *)*item);
    *item = NULL;
}

ml_autopay_t *ml_autopay_new (ml_store_t *store, ml_payers_t *payers, ml_payments_t *payments,
                              ml_mailer_t *mailer, char *error, size_t error_size)
{
    assert (store && payers && payments);
    ml_db_t *db = ml_store_db (store);
    if (ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "Auto-Pay tables",
                         error, error_size) != 0)
        return NULL;
    ml_autopay_t *self = calloc (1, sizeof (ml_autopay_t));
    assert (self);
    self->store = store;
    self->db = db;
    self->payers = payers;
    self->payments = payments;
    self->mailer = mailer;
    self->ended = zhashx_new ();
    self->live = zhashx_new ();
    zhashx_set_destructor (self->live, s_json_destroy);
    self->wait_ms = (int64_t)ML_AUTOPAY_WAIT_MINUTES * 60000;
    self->alert_ms = 10000;
    return self;
}

void ml_autopay_destroy (ml_autopay_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->ended);
        zhashx_destroy (&(*self_p)->live);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The scheduler's "today": the test clock's day when set, else today in UTC.
void ml_autopay_today (ml_autopay_t *self, char *today, size_t size)
{
    if (*self->today) {
        snprintf (today, size, "%s", self->today);
        return;
    }
    char now[32];
    ml_store_now (now, sizeof now);
    snprintf (today, size, "%.10s", now);
}

//  Helpers ----------------------------------------------------------------------------------

bool ml_autopay_integer_column (const char *name)
{
    static const char *integers[] = {"schedule_id",    "payer_id",        "method_id",
                                     "amount_minor",   "enabled",         "attempt",
                                     "association_id", "available_minor", "balance_minor",
                                     "pending_minor",  "open_count"};
    for (size_t index = 0; index < sizeof integers / sizeof integers[0]; index++)
        if (streq (name, integers[index]))
            return true;
    return false;
}

json_t *ml_autopay_store_failed (ml_autopay_t *self, const char *doing)
{
    ml_log (ML_LOG_ERROR, "autopay: %s failed: %s", doing, ml_db_error (self->db)->message);
    ml_db_rollback (self->db);
    return ml_admin_error ("the core store failed; see the core's log");
}

//  A schedule's row (new reference) or NULL when there is none.
json_t *ml_autopay_schedule (ml_autopay_t *self, int64_t schedule_id)
{
    json_t *rows =
        ML_AUTOPAY_ROWS (ML_AUTOPAY_SCHEDULE_SQL " WHERE schedule_id = ?", "i", schedule_id);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

//  The schedule a request names, not deleted (new reference), or NULL with *reply set.
static json_t *s_schedule_of (ml_autopay_t *self, const json_t *request, json_t **reply)
{
    json_t *value = json_object_get (request, "schedule_id");
    *reply = NULL;
    if (!json_is_integer (value)) {
        *reply = ml_admin_error ("'schedule_id' is required (a number)");
        return NULL;
    }
    json_t *schedule = ml_autopay_schedule (self, json_integer_value (value));
    if (!schedule || !json_is_null (json_object_get (schedule, "deleted_at"))) {
        *reply =
            ml_admin_error ("no Auto-Pay schedule %lld", (long long)json_integer_value (value));
        json_decref (schedule);
        return NULL;
    }
    return schedule;
}

//  The payer as payer-show gives it (new reference), or NULL with *reply set.
static json_t *s_payer (ml_autopay_t *self, int64_t payer_id, json_t **reply)
{
    json_t *show = json_pack ("{s:I}", "payer_id", (json_int_t)payer_id);
    json_t *shown = ml_payers_execute (self->payers, "payer-show", show);
    json_decref (show);
    if (!json_is_true (json_object_get (shown, "ok"))) {
        *reply = shown;
        return NULL;
    }
    json_t *payer = json_incref (json_object_get (shown, "payer"));
    json_decref (shown);
    return payer;
}

static bool s_payer_has (const json_t *payer, const char *list, const char *key, int64_t id)
{
    size_t index;
    json_t *entry;
    json_array_foreach (json_object_get (payer, list), index, entry)
    {
        if (ML_AUTOPAY_INT (entry, key) == id)
            return true;
    }
    return false;
}

//  Schedules --------------------------------------------------------------------------------

//  Check the schedule fields a request sets (all of them for add, some for edit) against
//  the payer and the firm, filling fields with the values to store. Returns NULL or an
//  error reply.
static json_t *s_schedule_fields (ml_autopay_t *self, const json_t *request, const json_t *old,
                                  json_t *fields)
{
    char problem[256] = "";
    const char *name = ml_admin_argument (request, "name", 200, problem, sizeof problem);
    const char *account = ml_admin_argument (request, "account", 63, problem, sizeof problem);
    const char *ar_message =
        ml_admin_argument (request, "ar_message", 1000, problem, sizeof problem);
    const char *frequency = ml_admin_argument (request, "frequency", 16, problem, sizeof problem);
    const char *day_rule = ml_admin_argument (request, "day_rule", 8, problem, sizeof problem);
    const char *first_date = ml_admin_argument (request, "first_date", 10, problem, sizeof problem);
    const char *amount = ml_admin_argument (request, "amount", 40, problem, sizeof problem);
    json_t *method = json_object_get (request, "method_id");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!old && (!name || !*name || !account || !frequency || !first_date || !method))
        return ml_admin_error ("an Auto-Pay schedule needs 'payer_id', 'method_id', 'name', "
                               "'account', 'frequency' and 'first_date'");
    if (method && !json_is_integer (method))
        return ml_admin_error ("'method_id' must be a saved method's number");
    if (name && !*name)
        return ml_admin_error ("'name' must not be empty");
    if (frequency && !streq (frequency, "weekly") && !streq (frequency, "biweekly") &&
        !streq (frequency, "monthly") && !streq (frequency, "quarterly"))
        return ml_admin_error ("'frequency' is weekly, biweekly, monthly or quarterly");
    if (day_rule && !streq (day_rule, "last") && !streq (day_rule, "next"))
        return ml_admin_error ("'day_rule' is last (the month's last day) or next (the 1st of "
                               "the next month)");
    int year, month, day;
    char today[11];
    ml_autopay_today (self, today, sizeof today);
    if (first_date && ml_autopay_date_parse (first_date, &year, &month, &day) != 0)
        return ml_admin_error ("'first_date' is a date, YYYY-MM-DD");
    //  Money is never taken for a past date on a schedule made today.
    if (first_date && strcmp (first_date, today) < 0)
        return ml_admin_error ("'first_date' %s is in the past (today is %s)", first_date, today);
    const char *firm = ML_AUTOPAY_TEXT (fields, "firm_id");
    int64_t payer_id = ML_AUTOPAY_INT (fields, "payer_id");
    json_t *reply = NULL;
    if (method) {
        json_t *payer = s_payer (self, payer_id, &reply);
        if (!payer)
            return reply;
        bool known = s_payer_has (payer, "methods", "method_id", json_integer_value (method));
        json_decref (payer);
        if (!known)
            return ml_admin_error ("payer %lld has no saved method %lld", (long long)payer_id,
                                   (long long)json_integer_value (method));
        json_object_set (fields, "method_id", method);
    }
    if (account) {
        json_t *rows =
            ML_AUTOPAY_ROWS ("SELECT account_type, currency FROM account WHERE firm_id = ?"
                             " AND account_number = ?",
                             "ss", firm, account);
        json_t *row = json_array_get (rows, 0);
        //  Trust is never paid by Auto-Pay (DESIGN.md rule 3: trust only by hand).
        if (!row || !streq (ML_AUTOPAY_TEXT (row, "account_type"), "OPERATING")) {
            json_decref (rows);
            return ml_admin_error ("firm %s has no OPERATING account %s (Auto-Pay never pays "
                                   "into trust)",
                                   firm, account);
        }
        json_object_set_new (fields, "account_number", json_string (account));
        json_object_set_new (fields, "currency", json_string (ML_AUTOPAY_TEXT (row, "currency")));
        json_decref (rows);
    }
    if (amount) {
        int64_t minor = 0;
        const char *parse_error = NULL;
        if (streq (amount, "all"))
            json_object_set_new (fields, "amount_minor", json_integer (0));
        else if (ml_money_parse (amount, ML_AUTOPAY_TEXT (fields, "currency"), &minor,
                                 &parse_error) != 0 ||
                 minor <= 0)
            return ml_admin_error ("'amount' is \"all\" or a positive %s amount%s%s",
                                   ML_AUTOPAY_TEXT (fields, "currency"), parse_error ? ": " : "",
                                   parse_error ? parse_error : "");
        else
            json_object_set_new (fields, "amount_minor", json_integer (minor));
    }
#define S_SET(key, value)                                                                          \
    if (value)                                                                                     \
    json_object_set_new (fields, key, json_string (value))
    S_SET ("name", name);
    S_SET ("ar_message", ar_message);
    S_SET ("frequency", frequency);
    S_SET ("day_rule", day_rule);
    S_SET ("first_date", first_date);
#undef S_SET
    return NULL;
}

//  What staff should know about a schedule they just saved, as sentences (new reference):
//  a firm without a contact address never gets the "Error-Failed AutoPay" alert, and a
//  monthly "next" on a day some month lacks behaves like "last". Each is logged too.
static json_t *s_warnings (ml_autopay_t *self, const json_t *fields, int64_t schedule_id)
{
    json_t *warnings = json_array ();
    const char *firm = ML_AUTOPAY_TEXT (fields, "firm_id");
    json_t *contact = ml_notify_recipients (self->db, firm, "autopay_failed");
    if (contact && json_array_size (contact) == 0) {
        char text[400];
        snprintf (text, sizeof text,
                  "firm %s has no contact address (or its Error-Failed AutoPay notification is "
                  "off), so a failed run's \"Error-Failed AutoPay\" alert cannot be sent (set "
                  "one: matterlink firm contact --firm %s --email ADDRESS)",
                  firm, firm);
        ml_log (ML_LOG_WARNING, "autopay: schedule %lld: %s", (long long)schedule_id, text);
        json_array_append_new (warnings, json_string (text));
    }
    json_decref (contact);
    int year, month, day;
    if (streq (ML_AUTOPAY_TEXT (fields, "frequency"), "monthly") &&
        streq (ML_AUTOPAY_TEXT (fields, "day_rule"), "next") &&
        ml_autopay_date_parse (ML_AUTOPAY_TEXT (fields, "first_date"), &year, &month, &day) == 0 &&
        day > 28) {
        char text[300];
        snprintf (text, sizeof text,
                  "a monthly schedule is charged once a month: a month without day %d is "
                  "charged on its last day ('next' applies to quarterly schedules only)",
                  day);
        json_array_append_new (warnings, json_string (text));
    }
    return warnings;
}

//  Store fields as the schedule's row: a new one (schedule_id 0) or an update. Returns the
//  reply with the schedule.
static json_t *s_save (ml_autopay_t *self, int64_t schedule_id, const json_t *fields,
                       const char *staff, const char *doing)
{
    char now[32], today[11];
    ml_store_now (now, sizeof now);
    ml_autopay_today (self, today, sizeof today);
    if (ml_db_begin (self->db) != 0)
        return ml_autopay_store_failed (self, doing);
    //  After an edit the schedule runs from today on: a changed first date or frequency never
    //  makes past due dates run.
    int64_t changed =
        schedule_id
            ? ml_db_execute (
                  self->db,
                  "UPDATE autopay_schedule SET method_id = ?, name = ?, account_number = ?,"
                  " currency = ?, ar_message = ?, frequency = ?, day_rule = ?, first_date = ?,"
                  " amount_minor = ?, runs_from = ?, updated_at = ? WHERE schedule_id = ?",
                  "isssssssissi", ML_AUTOPAY_INT (fields, "method_id"),
                  ML_AUTOPAY_TEXT (fields, "name"), ML_AUTOPAY_TEXT (fields, "account_number"),
                  ML_AUTOPAY_TEXT (fields, "currency"), ML_AUTOPAY_TEXT (fields, "ar_message"),
                  ML_AUTOPAY_TEXT (fields, "frequency"), ML_AUTOPAY_TEXT (fields, "day_rule"),
                  ML_AUTOPAY_TEXT (fields, "first_date"), ML_AUTOPAY_INT (fields, "amount_minor"),
                  today, now, schedule_id)
            : ml_db_execute (
                  self->db,
                  "INSERT INTO autopay_schedule (firm_id, payer_id, method_id, name,"
                  " account_number, currency, ar_message, frequency, day_rule, first_date,"
                  " amount_minor, enabled, runs_from, created_by, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                  "siisssssssissss", ML_AUTOPAY_TEXT (fields, "firm_id"),
                  ML_AUTOPAY_INT (fields, "payer_id"), ML_AUTOPAY_INT (fields, "method_id"),
                  ML_AUTOPAY_TEXT (fields, "name"), ML_AUTOPAY_TEXT (fields, "account_number"),
                  ML_AUTOPAY_TEXT (fields, "currency"), ML_AUTOPAY_TEXT (fields, "ar_message"),
                  ML_AUTOPAY_TEXT (fields, "frequency"), ML_AUTOPAY_TEXT (fields, "day_rule"),
                  ML_AUTOPAY_TEXT (fields, "first_date"), ML_AUTOPAY_INT (fields, "amount_minor"),
                  today, staff ? staff : "", now, now);
    if (changed != 1)
        return ml_autopay_store_failed (self, doing);
    if (!schedule_id) {
        json_t *rows = ML_AUTOPAY_ROWS ("SELECT last_insert_rowid () AS schedule_id", NULL, NULL);
        schedule_id = ML_AUTOPAY_INT (json_array_get (rows, 0), "schedule_id");
        json_decref (rows);
    }
    if (!schedule_id || ml_db_commit (self->db) != 0)
        return ml_autopay_store_failed (self, doing);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld (%s): %s", (long long)schedule_id,
            ML_AUTOPAY_TEXT (fields, "firm_id"), doing);
    json_t *schedule = ml_autopay_schedule (self, schedule_id);
    if (!schedule)
        return ml_autopay_store_failed (self, doing);
    return ml_admin_ok (json_pack ("{s:o, s:o}", "schedule", schedule, "warnings",
                                   s_warnings (self, fields, schedule_id)));
}

static json_t *s_add (ml_autopay_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    json_t *payer_value = json_object_get (request, "payer_id");
    if (!json_is_integer (payer_value))
        return ml_admin_error ("'payer_id' is required (a number)");
    json_t *reply = NULL;
    json_t *payer = s_payer (self, json_integer_value (payer_value), &reply);
    if (!payer)
        return reply;
    json_t *fields = json_pack ("{s:O, s:O, s:s, s:s, s:i}", "firm_id",
                                json_object_get (payer, "firm_id"), "payer_id", payer_value,
                                "ar_message", "", "day_rule", "last", "amount_minor", 0);
    json_decref (payer);
    reply = s_schedule_fields (self, request, NULL, fields);
    if (!reply)
        reply = s_save (self, 0, fields, staff, "autopay-add");
    json_decref (fields);
    return reply;
}

//  Mark a schedule's retries due before today as not run: the schedule was off (or edited)
//  on their day, and dates passed then are not run. Returns 0 or -1 (store failed).
static int s_skip_retries (ml_autopay_t *self, int64_t schedule_id, const char *today)
{
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t skipped = ml_db_execute (
        self->db,
        "UPDATE autopay_run SET status = 'error', reason = 'not_run_while_off', note = 'not"
        " run: the schedule was off on the day this retry was due', updated_at = ? WHERE"
        " schedule_id = ? AND status = 'scheduled' AND run_on < ?",
        "sis", now, schedule_id, today);
    if (skipped > 0)
        ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: %lld %s fell due while it was off: not run",
                (long long)schedule_id, (long long)skipped, skipped == 1 ? "retry" : "retries");
    return skipped < 0 ? -1 : 0;
}

static json_t *s_edit (ml_autopay_t *self, const json_t *request)
{
    json_t *reply = NULL;
    json_t *fields = s_schedule_of (self, request, &reply);
    if (!fields)
        return reply;
    reply = s_schedule_fields (self, request, fields, fields);
    char today[11];
    ml_autopay_today (self, today, sizeof today);
    //  An edited schedule runs from today on, its pending retries included.
    if (!reply && s_skip_retries (self, ML_AUTOPAY_INT (fields, "schedule_id"), today) != 0)
        reply = ml_autopay_store_failed (self, "autopay-edit");
    if (!reply)
        reply = s_save (self, ML_AUTOPAY_INT (fields, "schedule_id"), fields, NULL, "autopay-edit");
    json_decref (fields);
    return reply;
}

//  Enable, disable, delete: a schedule turned back on runs from today, not from the due
//  dates it had while off; a deleted one is kept (its runs are history) and never runs.
static json_t *s_switch (ml_autopay_t *self, const char *op, const json_t *request)
{
    json_t *reply = NULL;
    json_t *schedule = s_schedule_of (self, request, &reply);
    if (!schedule)
        return reply;
    int64_t schedule_id = ML_AUTOPAY_INT (schedule, "schedule_id");
    json_decref (schedule);
    char now[32], today[11];
    ml_store_now (now, sizeof now);
    ml_autopay_today (self, today, sizeof today);
    //  A retry whose day passed while the schedule was off is a date passed while off: it
    //  is not run (recorded as such, so it never runs later either).
    if (streq (op, "autopay-enable") && s_skip_retries (self, schedule_id, today) != 0)
        return ml_autopay_store_failed (self, op);
    int64_t changed =
        streq (op, "autopay-enable")
            ? ml_db_execute (self->db,
                             "UPDATE autopay_schedule SET enabled = 1, runs_from = ?,"
                             " updated_at = ? WHERE schedule_id = ? AND enabled = 0",
                             "ssi", today, now, schedule_id)
        : streq (op, "autopay-disable")
            ? ml_db_execute (self->db,
                             "UPDATE autopay_schedule SET enabled = 0, updated_at = ?"
                             " WHERE schedule_id = ?",
                             "si", now, schedule_id)
            : ml_db_execute (self->db,
                             "UPDATE autopay_schedule SET enabled = 0, deleted_at = ?,"
                             " updated_at = ? WHERE schedule_id = ?",
                             "ssi", now, now, schedule_id);
    if (changed < 0)
        return ml_autopay_store_failed (self, op);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: %s", (long long)schedule_id, op + 8);
    schedule = ml_autopay_schedule (self, schedule_id);
    return ml_admin_ok (json_pack ("{s:o}", "schedule", schedule ? schedule : json_null ()));
}

static json_t *s_enroll (ml_autopay_t *self, const char *op, const json_t *request)
{
    json_t *reply = NULL;
    json_t *schedule = s_schedule_of (self, request, &reply);
    if (!schedule)
        return reply;
    json_t *association = json_object_get (request, "association_id");
    json_t *payer = json_is_integer (association)
                        ? s_payer (self, ML_AUTOPAY_INT (schedule, "payer_id"), &reply)
                        : NULL;
    if (!json_is_integer (association))
        reply = ml_admin_error ("'association_id' is required (a number)");
    //  Only the payer's own associations: a schedule never pays what its payer may not see.
    else if (payer && !s_payer_has (payer, "associations", "association_id",
                                    json_integer_value (association)))
        reply = ml_admin_error ("association %lld is not one of payer %lld's",
                                (long long)json_integer_value (association),
                                (long long)ML_AUTOPAY_INT (schedule, "payer_id"));
    int64_t schedule_id = ML_AUTOPAY_INT (schedule, "schedule_id");
    json_decref (payer);
    json_decref (schedule);
    if (reply)
        return reply;
    int64_t association_id = json_integer_value (association);
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return ml_autopay_store_failed (self, op);
    bool ok = true;
    if (streq (op, "autopay-enroll")) {
        //  A schedule that had ended (no active enrollment) starts again from today: the
        //  dates it passed with nothing enrolled are not run.
        char today[11];
        ml_autopay_today (self, today, sizeof today);
        ok = ml_db_execute (self->db,
                            "UPDATE autopay_schedule SET runs_from = ? WHERE schedule_id = ?"
                            " AND runs_from < ? AND NOT EXISTS (SELECT 1 FROM"
                            " autopay_enrollment WHERE schedule_id = ? AND ended_at IS NULL)",
                            "sisi", today, schedule_id, today, schedule_id) >= 0;
        char key[24];
        snprintf (key, sizeof key, "%lld", (long long)schedule_id);
        zhashx_delete (self->ended, key);
        //  Enrolling again restarts an ended enrollment.
        ok =
            ok && ml_db_execute (self->db,
                                 "UPDATE autopay_enrollment SET ended_at = NULL, end_reason = NULL,"
                                 " enrolled_at = ? WHERE schedule_id = ? AND association_id = ?",
                                 "sii", now, schedule_id, association_id) >= 0;
        ok = ok && ml_db_execute (self->db,
                                  "INSERT INTO autopay_enrollment (schedule_id,"
                                  " association_id, enrolled_at) SELECT ?, ?, ? WHERE NOT"
                                  " EXISTS (SELECT 1 FROM autopay_enrollment WHERE"
                                  " schedule_id = ? AND association_id = ?)",
                                  "iisii", schedule_id, association_id, now, schedule_id,
                                  association_id) >= 0;
    } else
        ok = ml_db_execute (self->db,
                            "UPDATE autopay_enrollment SET ended_at = ?, end_reason ="
                            " 'unenrolled' WHERE schedule_id = ? AND association_id = ? AND"
                            " ended_at IS NULL",
                            "sii", now, schedule_id, association_id) >= 0;
    if (!ok || ml_db_commit (self->db) != 0)
        return ml_autopay_store_failed (self, op);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: association %lld %s", (long long)schedule_id,
            (long long)association_id, op + 8);
    return ml_admin_ok (NULL);
}

//  Why a schedule makes no run due on due, given its enrollments (rows of
//  ML_AUTOPAY_ENROLLMENT_SQL): none is active (every one ended, or none was ever enrolled), or only
//  client and matter enrollments are left and they ran their year. NULL when it still runs.
const char *ml_autopay_ended (const json_t *enrollments, const char *due, const char *year_end)
{
    bool active = false, invoice = false;
    size_t index;
    json_t *enrollment;
    json_array_foreach (enrollments, index, enrollment)
    {
        if (!json_is_null (json_object_get (enrollment, "ended_at")))
            continue;
        active = true;
        invoice = invoice || streq (ML_AUTOPAY_TEXT (enrollment, "level"), "invoice");
    }
    if (!active)
        return json_array_size (enrollments) ? "every enrollment has ended" : "nothing is enrolled";
    if (!invoice && strcmp (due, year_end) >= 0)
        return "its client and matter enrollments ran their year";
    return NULL;
}

static json_t *s_show (ml_autopay_t *self, const json_t *request)
{
    json_t *reply = NULL;
    json_t *schedule = s_schedule_of (self, request, &reply);
    if (!schedule)
        return reply;
    int64_t schedule_id = ML_AUTOPAY_INT (schedule, "schedule_id");
    json_t *enrollments =
        ML_AUTOPAY_ROWS (ML_AUTOPAY_ENROLLMENT_SQL " ORDER BY e.association_id", "i", schedule_id);
    //  A run shows its payment only when one was made: the UUID is reserved for every run
    //  before anything is charged, but a run that charged nothing has no payment to show.
    json_t *runs = ML_AUTOPAY_ROWS (
        "SELECT r.schedule_id, r.due_date, r.attempt, r.run_on, CASE WHEN EXISTS (SELECT 1"
        " FROM payment p WHERE p.payment_uuid = r.payment_uuid) THEN r.payment_uuid END AS"
        " payment_uuid, r.status, r.amount_minor, r.currency, r.lines, r.reason, r.note,"
        " r.created_at, r.updated_at FROM autopay_run r WHERE r.schedule_id = ? ORDER BY"
        " r.due_date, r.attempt",
        "i", schedule_id);
    if (!enrollments || !runs) {
        json_decref (schedule);
        json_decref (enrollments);
        json_decref (runs);
        return ml_autopay_store_failed (self, "autopay-show");
    }
    //  The lines of a run are kept as text; shown as what they are.
    size_t index;
    json_t *run;
    json_array_foreach (runs, index, run)
    {
        json_t *lines = json_loads (ML_AUTOPAY_TEXT (run, "lines"), 0, NULL);
        json_object_set_new (run, "lines", lines ? lines : json_array ());
    }
    //  Whether it still makes runs, and if not why, in words.
    char today[11], year_end[11];
    ml_autopay_today (self, today, sizeof today);
    ml_autopay_year_end (ML_AUTOPAY_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    const char *why = ml_autopay_ended (enrollments, today, year_end);
    json_object_set_new (schedule, "state",
                         json_string (!ML_AUTOPAY_INT (schedule, "enabled") ? "off"
                                      : why                                 ? "ended"
                                                                            : "active"));
    json_object_set_new (schedule, "state_reason", why ? json_string (why) : json_null ());
    json_object_set_new (schedule, "enrollments", enrollments);
    json_object_set_new (schedule, "runs", runs);
    return ml_admin_ok (json_pack ("{s:o}", "schedule", schedule));
}

static json_t *s_list (ml_autopay_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    json_t *payer = json_object_get (request, "payer_id");
    if (*problem || !firm || (payer && !json_is_integer (payer)))
        return ml_admin_error ("'firm' is required; 'payer_id' (a number) is optional");
    json_t *rows =
        payer ? ML_AUTOPAY_ROWS (ML_AUTOPAY_SCHEDULE_SQL " WHERE firm_id = ? AND payer_id = ? AND"
                                                         " deleted_at IS NULL ORDER BY schedule_id",
                                 "si", firm, json_integer_value (payer))
              : ML_AUTOPAY_ROWS (ML_AUTOPAY_SCHEDULE_SQL " WHERE firm_id = ? AND deleted_at IS NULL"
                                                         " ORDER BY schedule_id",
                                 "s", firm);
    return rows ? ml_admin_ok (json_pack ("{s:o}", "schedules", rows))
                : ml_autopay_store_failed (self, "autopay-list");
}

//  The test clock: sets the scheduler's today and runs what is due at once.
static json_t *s_clock (ml_autopay_t *self, const json_t *request, char *deliver_firm, size_t size)
{
    const char *enabled = getenv ("MATTERLINK_TEST_CLOCK");
    if (!enabled || !streq (enabled, "1"))
        return ml_admin_error ("the Auto-Pay test clock is off (a test facility: start the "
                               "core with MATTERLINK_TEST_CLOCK=1)");
    char problem[256] = "";
    const char *today = ml_admin_argument (request, "today", 10, problem, sizeof problem);
    int year, month, day;
    if (*problem || (today && *today && ml_autopay_date_parse (today, &year, &month, &day) != 0))
        return ml_admin_error ("'today' is a date, YYYY-MM-DD, or \"\" for the real clock");
    if (today)
        snprintf (self->today, sizeof self->today, "%s", today);
    ml_log (ML_LOG_NOTICE, "autopay: TEST CLOCK: today is %s", *self->today ? self->today : "real");
    int runs = ml_autopay_tick (self, deliver_firm, size);
    char shown[11];
    ml_autopay_today (self, shown, sizeof shown);
    return ml_admin_ok (json_pack ("{s:s, s:i}", "today", shown, "runs", runs));
}

//  The payer's schedules for the portal (ml_portal_account): what each pays, with which
//  card, and its next run as the scheduler will make it. Never the A/R message.
json_t *ml_autopay_payer_schedules (ml_autopay_t *self, int64_t payer_id)
{
    assert (self);
    json_t *schedules =
        ML_AUTOPAY_ROWS ("SELECT s.schedule_id, s.name, s.frequency, s.day_rule,"
                         " s.first_date, s.amount_minor, s.currency, s.enabled, s.runs_from,"
                         " m.brand, m.last4 FROM autopay_schedule s LEFT JOIN payment_method"
                         " m ON m.method_id = s.method_id WHERE s.payer_id = ? AND"
                         " s.deleted_at IS NULL ORDER BY s.schedule_id",
                         "i", payer_id);
    if (!schedules)
        return NULL;
    char today[11];
    ml_autopay_today (self, today, sizeof today);
    size_t index;
    json_t *schedule;
    json_array_foreach (schedules, index, schedule)
    {
        int64_t schedule_id = ML_AUTOPAY_INT (schedule, "schedule_id");
        json_t *rows = ML_AUTOPAY_ROWS ("SELECT MAX (due_date) AS due_date FROM autopay_run WHERE"
                                        " schedule_id = ?",
                                        "i", schedule_id);
        char latest[11] = "", next[11] = "", due[11], year_end[11];
        snprintf (latest, sizeof latest, "%s",
                  ML_AUTOPAY_TEXT (json_array_get (rows, 0), "due_date") ?: "");
        json_decref (rows);
        //  The first due date not run yet, from today on (what the tick starts next).
        for (int number = 0; number < ML_AUTOPAY_MAX_DUE && !*next; number++) {
            if (ml_autopay_due_date (ML_AUTOPAY_TEXT (schedule, "first_date"),
                                     ML_AUTOPAY_TEXT (schedule, "frequency"),
                                     ML_AUTOPAY_TEXT (schedule, "day_rule"), number, due,
                                     sizeof due) != 0)
                break;
            if (strcmp (due, ML_AUTOPAY_TEXT (schedule, "runs_from")) >= 0 &&
                strcmp (due, latest) > 0 && strcmp (due, today) >= 0)
                snprintf (next, sizeof next, "%s", due);
        }
        //  A soft decline's retry may come first.
        rows = ML_AUTOPAY_ROWS (
            "SELECT MIN (run_on) AS run_on FROM autopay_run WHERE schedule_id = ? AND"
            " status = 'scheduled'",
            "i", schedule_id);
        const char *retry = ML_AUTOPAY_TEXT (json_array_get (rows, 0), "run_on");
        bool retrying = retry && (!*next || strcmp (retry, next) < 0);
        if (retrying)
            snprintf (next, sizeof next, "%.10s", retry);
        json_decref (rows);
        json_t *enrollments = ML_AUTOPAY_ROWS (
            ML_AUTOPAY_ENROLLMENT_SQL " ORDER BY e.association_id", "i", schedule_id);
        if (!enrollments) {
            json_decref (schedules);
            return NULL;
        }
        ml_autopay_year_end (ML_AUTOPAY_TEXT (schedule, "first_date"), year_end, sizeof year_end);
        const char *why =
            *next ? ml_autopay_ended (enrollments, next, year_end) : "nothing is due any more";
        const char *state = !ML_AUTOPAY_INT (schedule, "enabled") ? "off"
                            : why                                 ? "ended"
                                                                  : "active";
        json_object_set_new (schedule, "state", json_string (state));
        json_object_set_new (schedule, "next_run",
                             streq (state, "active") ? json_string (next) : json_null ());
        json_object_set_new (schedule, "next_is_retry", json_boolean (retrying && !why));
        //  What it pays for, as the payer knows it (client, matter or invoice numbers).
        json_t *covers = json_array ();
        size_t item;
        json_t *enrollment;
        json_array_foreach (enrollments, item, enrollment)
        {
            if (!json_is_null (json_object_get (enrollment, "ended_at")))
                continue;
            const char *level = ML_AUTOPAY_TEXT (enrollment, "level");
            const char *number =
                streq (level, "client")   ? ML_AUTOPAY_TEXT (enrollment, "client_number")
                : streq (level, "matter") ? ML_AUTOPAY_TEXT (enrollment, "matter_number")
                                          : ML_AUTOPAY_TEXT (enrollment, "invoice_number");
            json_array_append_new (
                covers, json_pack ("{s:s, s:s}", "level", level, "number", number ? number : ""));
        }
        json_decref (enrollments);
        json_object_set_new (schedule, "covers", covers);
        json_object_del (schedule, "runs_from");
        json_object_del (schedule, "enabled");
    }
    return schedules;
}

json_t *ml_autopay_execute (ml_autopay_t *self, const char *op, const json_t *request,
                            char *deliver_firm, size_t size)
{
    assert (self && op);
    if (strncmp (op, "autopay-", 8) != 0)
        return NULL;
    if (streq (op, "autopay-add"))
        return s_add (self, request);
    if (streq (op, "autopay-edit"))
        return s_edit (self, request);
    if (streq (op, "autopay-enable") || streq (op, "autopay-disable") ||
        streq (op, "autopay-delete"))
        return s_switch (self, op, request);
    if (streq (op, "autopay-enroll") || streq (op, "autopay-unenroll"))
        return s_enroll (self, op, request);
    if (streq (op, "autopay-list"))
        return s_list (self, request);
    if (streq (op, "autopay-show"))
        return s_show (self, request);
    if (streq (op, "autopay-clock"))
        return s_clock (self, request, deliver_firm, size);
    return NULL;
}
