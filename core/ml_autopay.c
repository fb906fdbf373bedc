/*  ml_autopay: recurring postable payments (Auto-Pay). See include/ml_autopay.h. */
#include "ml_autopay_internal.h"
#include "ml_admin.h"
#include "ml_alloc.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_notify.h"

#include "ml_store.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <czmq.h>

//  How many due dates one schedule may look back over: a weekly schedule's year is 53, so
//  this is only a guard against a broken first date, never a limit a real schedule meets.
#define S_MAX_DUE 1000

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
static void s_today (ml_autopay_t *self, char *today, size_t size)
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

static bool s_integer_column (const char *name)
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

#define S_ROWS(sql, ...) ml_store_rows (ml_db_query (self->db, sql, __VA_ARGS__), s_integer_column)

static json_t *s_store_failed (ml_autopay_t *self, const char *doing)
{
    ml_log (ML_LOG_ERROR, "autopay: %s failed: %s", doing, ml_db_error (self->db)->message);
    ml_db_rollback (self->db);
    return ml_admin_error ("the core store failed; see the core's log");
}

#define S_SCHEDULE_SQL                                                                             \
    "SELECT schedule_id, firm_id, payer_id, method_id, name, account_number, currency,"            \
    " ar_message, frequency, day_rule, first_date, amount_minor, enabled, runs_from,"              \
    " deleted_at, created_by, created_at, updated_at FROM autopay_schedule"

//  A schedule's row (new reference) or NULL when there is none.
static json_t *s_schedule (ml_autopay_t *self, int64_t schedule_id)
{
    json_t *rows = S_ROWS (S_SCHEDULE_SQL " WHERE schedule_id = ?", "i", schedule_id);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

#define S_TEXT(row, key) json_string_value (json_object_get (row, key))
#define S_INT(row, key)  json_integer_value (json_object_get (row, key))

//  The schedule a request names, not deleted (new reference), or NULL with *reply set.
static json_t *s_schedule_of (ml_autopay_t *self, const json_t *request, json_t **reply)
{
    json_t *value = json_object_get (request, "schedule_id");
    *reply = NULL;
    if (!json_is_integer (value)) {
        *reply = ml_admin_error ("'schedule_id' is required (a number)");
        return NULL;
    }
    json_t *schedule = s_schedule (self, json_integer_value (value));
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
        if (S_INT (entry, key) == id)
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
    s_today (self, today, sizeof today);
    if (first_date && ml_autopay_date_parse (first_date, &year, &month, &day) != 0)
        return ml_admin_error ("'first_date' is a date, YYYY-MM-DD");
    //  Money is never taken for a past date on a schedule made today.
    if (first_date && strcmp (first_date, today) < 0)
        return ml_admin_error ("'first_date' %s is in the past (today is %s)", first_date, today);
    const char *firm = S_TEXT (fields, "firm_id");
    int64_t payer_id = S_INT (fields, "payer_id");
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
        json_t *rows = S_ROWS ("SELECT account_type, currency FROM account WHERE firm_id = ?"
                               " AND account_number = ?",
                               "ss", firm, account);
        json_t *row = json_array_get (rows, 0);
        //  Trust is never paid by Auto-Pay (DESIGN.md rule 3: trust only by hand).
        if (!row || !streq (S_TEXT (row, "account_type"), "OPERATING")) {
            json_decref (rows);
            return ml_admin_error ("firm %s has no OPERATING account %s (Auto-Pay never pays "
                                   "into trust)",
                                   firm, account);
        }
        json_object_set_new (fields, "account_number", json_string (account));
        json_object_set_new (fields, "currency", json_string (S_TEXT (row, "currency")));
        json_decref (rows);
    }
    if (amount) {
        int64_t minor = 0;
        const char *parse_error = NULL;
        if (streq (amount, "all"))
            json_object_set_new (fields, "amount_minor", json_integer (0));
        else if (ml_money_parse (amount, S_TEXT (fields, "currency"), &minor, &parse_error) != 0 ||
                 minor <= 0)
            return ml_admin_error ("'amount' is \"all\" or a positive %s amount%s%s",
                                   S_TEXT (fields, "currency"), parse_error ? ": " : "",
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
    const char *firm = S_TEXT (fields, "firm_id");
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
    if (streq (S_TEXT (fields, "frequency"), "monthly") &&
        streq (S_TEXT (fields, "day_rule"), "next") &&
        ml_autopay_date_parse (S_TEXT (fields, "first_date"), &year, &month, &day) == 0 &&
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
    s_today (self, today, sizeof today);
    if (ml_db_begin (self->db) != 0)
        return s_store_failed (self, doing);
    //  After an edit the schedule runs from today on: a changed first date or frequency never
    //  makes past due dates run.
    int64_t changed =
        schedule_id
            ? ml_db_execute (
                  self->db,
                  "UPDATE autopay_schedule SET method_id = ?, name = ?, account_number = ?,"
                  " currency = ?, ar_message = ?, frequency = ?, day_rule = ?, first_date = ?,"
                  " amount_minor = ?, runs_from = ?, updated_at = ? WHERE schedule_id = ?",
                  "isssssssissi", S_INT (fields, "method_id"), S_TEXT (fields, "name"),
                  S_TEXT (fields, "account_number"), S_TEXT (fields, "currency"),
                  S_TEXT (fields, "ar_message"), S_TEXT (fields, "frequency"),
                  S_TEXT (fields, "day_rule"), S_TEXT (fields, "first_date"),
                  S_INT (fields, "amount_minor"), today, now, schedule_id)
            : ml_db_execute (
                  self->db,
                  "INSERT INTO autopay_schedule (firm_id, payer_id, method_id, name,"
                  " account_number, currency, ar_message, frequency, day_rule, first_date,"
                  " amount_minor, enabled, runs_from, created_by, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                  "siisssssssissss", S_TEXT (fields, "firm_id"), S_INT (fields, "payer_id"),
                  S_INT (fields, "method_id"), S_TEXT (fields, "name"),
                  S_TEXT (fields, "account_number"), S_TEXT (fields, "currency"),
                  S_TEXT (fields, "ar_message"), S_TEXT (fields, "frequency"),
                  S_TEXT (fields, "day_rule"), S_TEXT (fields, "first_date"),
                  S_INT (fields, "amount_minor"), today, staff ? staff : "", now, now);
    if (changed != 1)
        return s_store_failed (self, doing);
    if (!schedule_id) {
        json_t *rows = S_ROWS ("SELECT last_insert_rowid () AS schedule_id", NULL, NULL);
        schedule_id = S_INT (json_array_get (rows, 0), "schedule_id");
        json_decref (rows);
    }
    if (!schedule_id || ml_db_commit (self->db) != 0)
        return s_store_failed (self, doing);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld (%s): %s", (long long)schedule_id,
            S_TEXT (fields, "firm_id"), doing);
    json_t *schedule = s_schedule (self, schedule_id);
    if (!schedule)
        return s_store_failed (self, doing);
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
    s_today (self, today, sizeof today);
    //  An edited schedule runs from today on, its pending retries included.
    if (!reply && s_skip_retries (self, S_INT (fields, "schedule_id"), today) != 0)
        reply = s_store_failed (self, "autopay-edit");
    if (!reply)
        reply = s_save (self, S_INT (fields, "schedule_id"), fields, NULL, "autopay-edit");
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
    int64_t schedule_id = S_INT (schedule, "schedule_id");
    json_decref (schedule);
    char now[32], today[11];
    ml_store_now (now, sizeof now);
    s_today (self, today, sizeof today);
    //  A retry whose day passed while the schedule was off is a date passed while off: it
    //  is not run (recorded as such, so it never runs later either).
    if (streq (op, "autopay-enable") && s_skip_retries (self, schedule_id, today) != 0)
        return s_store_failed (self, op);
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
        return s_store_failed (self, op);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: %s", (long long)schedule_id, op + 8);
    schedule = s_schedule (self, schedule_id);
    return ml_admin_ok (json_pack ("{s:o}", "schedule", schedule ? schedule : json_null ()));
}

static json_t *s_enroll (ml_autopay_t *self, const char *op, const json_t *request)
{
    json_t *reply = NULL;
    json_t *schedule = s_schedule_of (self, request, &reply);
    if (!schedule)
        return reply;
    json_t *association = json_object_get (request, "association_id");
    json_t *payer =
        json_is_integer (association) ? s_payer (self, S_INT (schedule, "payer_id"), &reply) : NULL;
    if (!json_is_integer (association))
        reply = ml_admin_error ("'association_id' is required (a number)");
    //  Only the payer's own associations: a schedule never pays what its payer may not see.
    else if (payer && !s_payer_has (payer, "associations", "association_id",
                                    json_integer_value (association)))
        reply = ml_admin_error ("association %lld is not one of payer %lld's",
                                (long long)json_integer_value (association),
                                (long long)S_INT (schedule, "payer_id"));
    int64_t schedule_id = S_INT (schedule, "schedule_id");
    json_decref (payer);
    json_decref (schedule);
    if (reply)
        return reply;
    int64_t association_id = json_integer_value (association);
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return s_store_failed (self, op);
    bool ok = true;
    if (streq (op, "autopay-enroll")) {
        //  A schedule that had ended (no active enrollment) starts again from today: the
        //  dates it passed with nothing enrolled are not run.
        char today[11];
        s_today (self, today, sizeof today);
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
        return s_store_failed (self, op);
    ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: association %lld %s", (long long)schedule_id,
            (long long)association_id, op + 8);
    return ml_admin_ok (NULL);
}

//  Why a schedule makes no run due on due, given its enrollments (rows of S_ENROLLMENT_SQL):
//  none is active (every one ended, or none was ever enrolled), or only client and matter
//  enrollments are left and they ran their year. NULL when it still runs.
static const char *s_ended (const json_t *enrollments, const char *due, const char *year_end)
{
    bool active = false, invoice = false;
    size_t index;
    json_t *enrollment;
    json_array_foreach (enrollments, index, enrollment)
    {
        if (!json_is_null (json_object_get (enrollment, "ended_at")))
            continue;
        active = true;
        invoice = invoice || streq (S_TEXT (enrollment, "level"), "invoice");
    }
    if (!active)
        return json_array_size (enrollments) ? "every enrollment has ended" : "nothing is enrolled";
    if (!invoice && strcmp (due, year_end) >= 0)
        return "its client and matter enrollments ran their year";
    return NULL;
}

#define S_ENROLLMENT_SQL                                                                           \
    "SELECT e.association_id, a.level, a.client_number, a.matter_number, a.invoice_number,"        \
    " e.enrolled_at, e.ended_at, e.end_reason FROM autopay_enrollment e JOIN association a"        \
    " ON a.association_id = e.association_id WHERE e.schedule_id = ?"

#define S_RUN_SQL                                                                                  \
    "SELECT schedule_id, due_date, attempt, run_on, payment_uuid, status, amount_minor,"           \
    " currency, lines, reason, note, created_at, updated_at FROM autopay_run"

static json_t *s_show (ml_autopay_t *self, const json_t *request)
{
    json_t *reply = NULL;
    json_t *schedule = s_schedule_of (self, request, &reply);
    if (!schedule)
        return reply;
    int64_t schedule_id = S_INT (schedule, "schedule_id");
    json_t *enrollments = S_ROWS (S_ENROLLMENT_SQL " ORDER BY e.association_id", "i", schedule_id);
    //  A run shows its payment only when one was made: the UUID is reserved for every run
    //  before anything is charged, but a run that charged nothing has no payment to show.
    json_t *runs =
        S_ROWS ("SELECT r.schedule_id, r.due_date, r.attempt, r.run_on, CASE WHEN EXISTS (SELECT 1"
                " FROM payment p WHERE p.payment_uuid = r.payment_uuid) THEN r.payment_uuid END AS"
                " payment_uuid, r.status, r.amount_minor, r.currency, r.lines, r.reason, r.note,"
                " r.created_at, r.updated_at FROM autopay_run r WHERE r.schedule_id = ? ORDER BY"
                " r.due_date, r.attempt",
                "i", schedule_id);
    if (!enrollments || !runs) {
        json_decref (schedule);
        json_decref (enrollments);
        json_decref (runs);
        return s_store_failed (self, "autopay-show");
    }
    //  The lines of a run are kept as text; shown as what they are.
    size_t index;
    json_t *run;
    json_array_foreach (runs, index, run)
    {
        json_t *lines = json_loads (S_TEXT (run, "lines"), 0, NULL);
        json_object_set_new (run, "lines", lines ? lines : json_array ());
    }
    //  Whether it still makes runs, and if not why, in words.
    char today[11], year_end[11];
    s_today (self, today, sizeof today);
    ml_autopay_year_end (S_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    const char *why = s_ended (enrollments, today, year_end);
    json_object_set_new (schedule, "state",
                         json_string (!S_INT (schedule, "enabled") ? "off"
                                      : why                        ? "ended"
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
    json_t *rows = payer ? S_ROWS (S_SCHEDULE_SQL " WHERE firm_id = ? AND payer_id = ? AND"
                                                  " deleted_at IS NULL ORDER BY schedule_id",
                                   "si", firm, json_integer_value (payer))
                         : S_ROWS (S_SCHEDULE_SQL " WHERE firm_id = ? AND deleted_at IS NULL"
                                                  " ORDER BY schedule_id",
                                   "s", firm);
    return rows ? ml_admin_ok (json_pack ("{s:o}", "schedules", rows))
                : s_store_failed (self, "autopay-list");
}

//  Runs -------------------------------------------------------------------------------------

//  Add the open invoices an enrollment covers (in currency) to candidates, skipping those
//  already there. An invoice-level enrollment whose invoice is paid (no longer open, or
//  nothing left on it) ends here. Returns 0 or -1 (store failed).
static int s_enrollment_items (ml_autopay_t *self, const json_t *schedule, const json_t *enrollment,
                               const char *due, const char *year_end, const json_t *live,
                               zlistx_t *candidates)
{
    const char *level = S_TEXT (enrollment, "level");
    bool invoice_level = streq (level, "invoice");
    if (!invoice_level && strcmp (due, year_end) >= 0)
        return 0;
    json_t *items =
        ml_store_open_items (self->store, S_TEXT (schedule, "firm_id"),
                             streq (level, "client") ? S_TEXT (enrollment, "client_number") : NULL,
                             streq (level, "matter") ? S_TEXT (enrollment, "matter_number") : NULL,
                             invoice_level ? S_TEXT (enrollment, "invoice_number") : NULL);
    if (!items)
        return -1;
    json_t *first = json_array_get (items, 0);
    if (invoice_level && (!first || S_INT (first, "balance_minor") <= 0)) {
        char now[32];
        ml_store_now (now, sizeof now);
        ml_db_execute (self->db,
                       "UPDATE autopay_enrollment SET ended_at = ?, end_reason = 'paid'"
                       " WHERE schedule_id = ? AND association_id = ? AND ended_at IS NULL",
                       "sii", now, S_INT (schedule, "schedule_id"),
                       S_INT (enrollment, "association_id"));
        ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: invoice %s is paid; its enrollment ends",
                (long long)S_INT (schedule, "schedule_id"), S_TEXT (enrollment, "invoice_number"));
    }
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        if (!streq (S_TEXT (item, "currency"), S_TEXT (schedule, "currency")))
            continue;
        //  With live balances: never more than the matter database's balance now, less
        //  what is on its way to it (postings not yet applied); an invoice it no longer
        //  has open, or did not confirm, is not paid.
        if (live) {
            json_t *confirmed = json_object_get (live, S_TEXT (item, "invoice_number"));
            int64_t pending = S_INT (item, "balance_minor") - S_INT (item, "available_minor");
            int64_t cap =
                confirmed && streq (S_TEXT (confirmed, "currency"), S_TEXT (schedule, "currency"))
                    ? S_INT (confirmed, "balance_minor") - pending
                    : 0;
            if (cap < S_INT (item, "available_minor"))
                json_object_set_new (item, "available_minor", json_integer (cap));
        }
        if (S_INT (item, "available_minor") <= 0)
            continue;
        bool seen = false;
        for (ml_alloc_item_t *known = zlistx_first (candidates); known && !seen;
             known = zlistx_next (candidates))
            seen = streq (known->invoice_number, S_TEXT (item, "invoice_number"));
        if (seen)
            continue;
        ml_alloc_item_t *candidate = calloc (1, sizeof (ml_alloc_item_t));
        assert (candidate);
        ml_alloc_item_from_json (item, candidate);
        zlistx_add_end (candidates, candidate);
    }
    json_decref (items);
    return 0;
}

//  What a run pays: the enrolled invoices, oldest first, up to the schedule's amount (or
//  all of it), each at most its available balance (and, given live balances, {invoice:
//  {balance_minor, currency}}, at most what the matter database confirmed). Returns the lines
//  ([{"invoice", "amount_minor"}], new reference; empty when nothing is due) or NULL (store
//  failed).
static json_t *s_run_lines (ml_autopay_t *self, const json_t *schedule, const char *due,
                            const json_t *live, int64_t *total)
{
    char year_end[11];
    ml_autopay_year_end (S_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    json_t *enrollments = S_ROWS (S_ENROLLMENT_SQL " AND e.ended_at IS NULL"
                                                   " ORDER BY e.association_id",
                                  "i", S_INT (schedule, "schedule_id"));
    if (!enrollments)
        return NULL;
    zlistx_t *candidates = zlistx_new ();
    //  zstr_free frees any heap block and nulls the pointer, which is all an item needs.
    zlistx_set_destructor (candidates, (zlistx_destructor_fn *)zstr_free);
    bool ok = true;
    size_t index;
    json_t *enrollment;
    json_array_foreach (enrollments, index, enrollment)
    {
        if (ok)
            ok = s_enrollment_items (self, schedule, enrollment, due, year_end, live, candidates) ==
                 0;
    }
    json_decref (enrollments);
    size_t count = zlistx_size (candidates);
    ml_alloc_item_t *items = calloc (count ? count : 1, sizeof (ml_alloc_item_t));
    ml_line_t *lines = calloc (ML_MAX_LINES, sizeof (ml_line_t));
    assert (items && lines);
    int64_t available = 0;
    index = 0;
    for (ml_alloc_item_t *item = zlistx_first (candidates); item; item = zlistx_next (candidates)) {
        items[index++] = *item;
        //  Saturates: balances may sum past 64 bits; the payment's limit check refuses it.
        if (__builtin_add_overflow (available, item->available_minor, &available))
            available = INT64_MAX;
    }
    int64_t wanted = S_INT (schedule, "amount_minor");
    wanted = wanted == 0 || wanted > available ? available : wanted;
    int64_t unapplied = 0;
    size_t used =
        wanted > 0 ? ml_alloc_oldest_first (items, count, wanted, lines, ML_MAX_LINES, &unapplied)
                   : 0;
    json_t *result = ok ? json_array () : NULL;
    *total = 0;
    for (index = 0; result && index < used; index++) {
        json_array_append_new (result,
                               json_pack ("{s:s, s:I}", "invoice", lines[index].reference,
                                          "amount_minor", (json_int_t)lines[index].amount_minor));
        *total += lines[index].amount_minor;
    }
    free (lines);
    free (items);
    zlistx_destroy (&candidates);
    return result;
}

//  A failed run: the alert to the firm, and a soft decline's one retry the next day, in the
//  same transaction as the run's outcome, so neither is lost nor doubled.
static bool s_failed (ml_autopay_t *self, const json_t *schedule, const json_t *run,
                      const char *status, const char *reason, const char *today)
{
    bool soft = reason && streq (reason, "insufficient_funds") && S_INT (run, "attempt") == 1;
    char now[32], tomorrow[11], uuid[37];
    ml_store_now (now, sizeof now);
    ml_autopay_date_add (today, 1, tomorrow, sizeof tomorrow);
    ml_store_uuid (uuid, sizeof uuid);
    bool ok = true;
    if (soft)
        ok = ml_db_execute (self->db,
                            "INSERT INTO autopay_run (schedule_id, due_date, attempt, run_on,"
                            " payment_uuid, status, currency, lines, note, created_at,"
                            " updated_at) VALUES (?, ?, 2, ?, ?, 'scheduled', ?, '[]',"
                            " 'retry of a soft decline', ?, ?)",
                            "issssss", S_INT (run, "schedule_id"), S_TEXT (run, "due_date"),
                            tomorrow, uuid, S_TEXT (schedule, "currency"), now, now) == 1;
    //  Who hears of it is the firm's choice (ml_notify: "Error-Failed AutoPay", on by
    //  default, to the contact address unless the firm named others).
    json_t *contact =
        ml_notify_recipients (self->db, S_TEXT (schedule, "firm_id"), "autopay_failed");
    bool row = json_array_size (contact) > 0;
    if (ok && self->mailer && row) {
        char subject[300], body[2048], dedupe[128], error[256] = "", money[64];
        ml_money_format (S_INT (run, "amount_minor"), S_TEXT (schedule, "currency"), money,
                         sizeof money);
        snprintf (subject, sizeof subject, "Error-Failed AutoPay: %.200s",
                  S_TEXT (schedule, "name"));
        snprintf (body, sizeof body,
                  "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) failed its run due %s "
                  "(attempt %lld).\nAmount: %s\nOutcome: %s\nReason: %.300s\n\n%s\n"
                  "See 'matterlink autopay show %lld'.\n",
                  (long long)S_INT (schedule, "schedule_id"), S_TEXT (schedule, "name"),
                  (long long)S_INT (schedule, "payer_id"), S_TEXT (run, "due_date"),
                  (long long)S_INT (run, "attempt"), money, status,
                  reason ? reason : "(none given)",
                  soft ? "The card was declined for insufficient funds: the run is tried once "
                         "more tomorrow."
                       : "This run is not retried: update the payer's payment method, then pay "
                         "by hand or wait for the next run.",
                  (long long)S_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-failed:%lld:%s:%lld",
                  (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"),
                  (long long)S_INT (run, "attempt"));
        if (ml_notify_enqueue (self->mailer, self->db, "autopay_failed", dedupe,
                               S_TEXT (schedule, "firm_id"), subject, body, error,
                               sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no failure alert for schedule %lld: %s",
                    (long long)S_INT (schedule, "schedule_id"), error);
    }
    //  The payer hears of it too (without the firm's A/R message), so they can fix the card.
    json_t *payers = S_ROWS ("SELECT p.email, p.name, f.name AS firm_name FROM payer p JOIN firm f"
                             " ON f.firm_id = p.firm_id WHERE p.payer_id = ?",
                             "i", S_INT (schedule, "payer_id"));
    json_t *payer = json_array_get (payers, 0);
    if (ok && self->mailer && payer) {
        char subject[300], body[1024], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "%.200s: your automatic payment did not go through",
                  S_TEXT (payer, "firm_name"));
        snprintf (body, sizeof body,
                  "Dear %.200s,\n\nYour automatic payment \"%.200s\" due %s could not be "
                  "taken from your card.\n%s\n",
                  S_TEXT (payer, "name"), S_TEXT (schedule, "name"), S_TEXT (run, "due_date"),
                  soft ? "We will try once more tomorrow."
                       : "Please contact us to update your "
                         "payment method.");
        snprintf (dedupe, sizeof dedupe, "autopay-failed-payer:%lld:%s:%lld",
                  (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"),
                  (long long)S_INT (run, "attempt"));
        if (ml_mailer_enqueue (self->mailer, "autopay_failed_payer", dedupe,
                               S_TEXT (schedule, "firm_id"), S_TEXT (payer, "email"), subject, body,
                               error, sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no failure notice to payer %lld: %s",
                    (long long)S_INT (schedule, "payer_id"), error);
    }
    json_decref (payers);
    if (ok && !row)
        ml_log (ML_LOG_WARNING,
                "autopay: firm %s has no contact address (or its Error-Failed AutoPay "
                "notification is off), so the failure of schedule %lld is only recorded (set "
                "one: matterlink firm contact --firm %s --email ADDRESS)",
                S_TEXT (schedule, "firm_id"), (long long)S_INT (schedule, "schedule_id"),
                S_TEXT (schedule, "firm_id"));
    json_decref (contact);
    ml_log (ML_LOG_WARNING, "autopay: schedule %lld run due %s attempt %lld %s: %s%s",
            (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"),
            (long long)S_INT (run, "attempt"), status, reason ? reason : "",
            soft ? " (retried tomorrow)" : "");
    return ok;
}

//  Record a run's outcome (one transaction). Returns 1 final, 0 still open, -1 failed.
static int s_outcome (ml_autopay_t *self, const json_t *schedule, json_t *run, const char *status,
                      const char *reason, const json_t *lines, int64_t amount, const char *today)
{
    char now[32];
    ml_store_now (now, sizeof now);
    char *lines_text = lines ? json_dumps (lines, JSON_COMPACT) : strdup ("[]");
    json_object_set_new (run, "amount_minor", json_integer (amount));
    if (ml_db_begin (self->db) != 0) {
        free (lines_text);
        return -1;
    }
    bool ok = ml_db_execute (self->db,
                             "UPDATE autopay_run SET status = ?, reason = ?, amount_minor = ?,"
                             " lines = ?, updated_at = ? WHERE schedule_id = ? AND due_date = ?"
                             " AND attempt = ? AND status IN ('started', 'pending')",
                             "ssissisi", status, reason, amount, lines_text, now,
                             S_INT (run, "schedule_id"), S_TEXT (run, "due_date"),
                             S_INT (run, "attempt")) == 1;
    free (lines_text);
    if (ok && (streq (status, "declined") || streq (status, "error")))
        ok = s_failed (self, schedule, run, status, reason, today);
    if (!ok || ml_db_commit (self->db) != 0) {
        s_store_failed (self, "recording a run");
        return -1;
    }
    if (streq (status, "paid") || streq (status, "nothing_due"))
        ml_log (ML_LOG_NOTICE, "autopay: schedule %lld run due %s: %s (%lld minor units)",
                (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"), status,
                (long long)amount);
    return streq (status, "pending") ? 0 : 1;
}

//  Live balances --------------------------------------------------------------------------

void ml_autopay_set_asker (ml_autopay_t *self, ml_autopay_ask_fn *ask, void *arg, int64_t wait_ms,
                           int64_t alert_ms)
{
    assert (self);
    self->ask = ask;
    self->ask_arg = arg;
    self->wait_ms = wait_ms;
    self->alert_ms = alert_ms;
}

static void s_run_key (const json_t *run, char *key, size_t size)
{
    snprintf (key, size, "%lld:%s:%lld", (long long)S_INT (run, "schedule_id"),
              S_TEXT (run, "due_date"), (long long)S_INT (run, "attempt"));
}

void ml_autopay_live (ml_autopay_t *self, const json_t *context, const ml_msg_t *answer)
{
    assert (self && context && answer);
    const char *key = json_string_value (json_object_get (context, "run"));
    json_t *entry = key ? zhashx_lookup (self->live, key) : NULL;
    if (!entry)
        return; //  a run settled meanwhile, or a core restarted: nobody waits for it
    if (answer->code != ML_SEARCH_OK) {
        ml_log (ML_LOG_WARNING, "autopay: run %s: the agent could not give live balances (%u: %s)",
                key, answer->code, answer->reason);
        return; //  asked again after S_LIVE_ASK_MS
    }
    json_t *balances = json_object ();
    for (size_t index = 0; index < answer->item_count; index++) {
        const ml_item_t *item = &answer->items[index];
        if (item->kind == 'I' && *item->invoice_number)
            json_object_set_new (balances, item->invoice_number,
                                 json_pack ("{s:I, s:s}", "balance_minor",
                                            (json_int_t)item->balance_minor, "currency",
                                            item->currency));
    }
    json_object_set_new (entry, "balances", balances);
    json_object_set_new (entry, "answered_at", json_integer (zclock_mono ()));
    //  A partial answer (more pages) confirms only the invoices it holds: the others are not
    //  paid by this run.
    json_object_set_new (entry, "complete", json_boolean (answer->next == 0));
}

//  The SEARCH that gives a schedule's enrolled invoices live: a payer-scope search over the
//  active enrollments' clients, matters and invoices. NULL if the scope does not fit.
static ml_msg_t *s_live_search (ml_autopay_t *self, const json_t *schedule)
{
    json_t *enrollments =
        S_ROWS (S_ENROLLMENT_SQL " AND e.ended_at IS NULL", "i", S_INT (schedule, "schedule_id"));
    ml_msg_t *search = ml_msg_new (ML_MSG_SEARCH);
    assert (search);
    search->search.deadline_ms = S_LIVE_ASK_MS - 100;
    search->search.target = 'I';
    search->search.field = ML_FIELD_NONE;
    search->search.match = 'E';
    search->search.status = ML_STATUS_ANY;
    search->search.limit = ML_MAX_SEARCH_ROWS;
    search->search.scoped = 1;
    bool ok = enrollments != NULL;
    size_t index;
    json_t *enrollment;
    json_array_foreach (enrollments, index, enrollment)
    {
        const char *level = S_TEXT (enrollment, "level");
        int list = streq (level, "client")   ? ML_SCOPE_CLIENTS
                   : streq (level, "matter") ? ML_SCOPE_MATTERS
                                             : ML_SCOPE_INVOICES;
        const char *number = S_TEXT (enrollment, list == ML_SCOPE_CLIENTS   ? "client_number"
                                                 : list == ML_SCOPE_MATTERS ? "matter_number"
                                                                            : "invoice_number");
        if (ok && number)
            ok = ml_msg_add_scope (search, list, number) == 0;
    }
    json_decref (enrollments);
    if (!ok)
        ml_msg_destroy (&search);
    return search;
}

//  Tell the firm (once per run: the mail's key and the run's note say it was done) that a
//  run waits for its agent.
static void s_deferred (ml_autopay_t *self, const json_t *schedule, const json_t *run,
                        int64_t waited_ms)
{
    const char *note = S_TEXT (run, "note");
    if (note && strstr (note, "deferred:"))
        return;
    char now[32], until[64];
    ml_store_now (now, sizeof now);
    int64_t left_minutes = (self->wait_ms - waited_ms) / 60000;
    snprintf (until, sizeof until, "%lld more minutes", (long long)left_minutes);
    if (ml_db_begin (self->db) != 0) {
        s_store_failed (self, "deferring a run");
        return;
    }
    bool ok =
        ml_db_execute (self->db,
                       "UPDATE autopay_run SET note = CASE WHEN note IS NULL THEN '' ELSE note"
                       " || '; ' END || 'deferred: the firm''s agent is offline, so the"
                       " balances cannot be confirmed live', updated_at = ? WHERE schedule_id ="
                       " ? AND due_date = ? AND attempt = ?",
                       "sisi", now, S_INT (run, "schedule_id"), S_TEXT (run, "due_date"),
                       S_INT (run, "attempt")) == 1;
    json_t *contact = S_ROWS ("SELECT notify_email FROM firm_contact WHERE firm_id = ?", "s",
                              S_TEXT (schedule, "firm_id"));
    const char *address = S_TEXT (json_array_get (contact, 0), "notify_email");
    if (ok && self->mailer && address && *address) {
        char subject[300], body[2048], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "AutoPay deferred: %.200s", S_TEXT (schedule, "name"));
        snprintf (
            body, sizeof body,
            "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) has a run due %s "
            "(attempt %lld) that is deferred: the firm's matterlink agent is offline (or does "
            "not answer), so "
            "the invoices' balances cannot be confirmed with the matter database, and "
            "nothing is charged until they are.\n\nStart the agent (see 'matterlink "
            "status'). The run waits %s; then it fails and is not retried.\n"
            "See 'matterlink autopay show %lld'.\n",
            (long long)S_INT (schedule, "schedule_id"), S_TEXT (schedule, "name"),
            (long long)S_INT (schedule, "payer_id"), S_TEXT (run, "due_date"),
            (long long)S_INT (run, "attempt"), until, (long long)S_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-deferred:%lld:%s:%lld",
                  (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"),
                  (long long)S_INT (run, "attempt"));
        if (ml_mailer_enqueue (self->mailer, "autopay_deferred", dedupe,
                               S_TEXT (schedule, "firm_id"), address, subject, body, error,
                               sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no deferral notice for schedule %lld: %s",
                    (long long)S_INT (schedule, "schedule_id"), error);
    }
    json_decref (contact);
    if (!ok || ml_db_commit (self->db) != 0) {
        s_store_failed (self, "deferring a run");
        return;
    }
    ml_log (ML_LOG_WARNING,
            "autopay: schedule %lld run due %s is deferred: firm %s's agent is offline, so its "
            "balances cannot be confirmed live (it waits %s, then fails)",
            (long long)S_INT (schedule, "schedule_id"), S_TEXT (run, "due_date"),
            S_TEXT (schedule, "firm_id"), until);
}

//  Whether a run may charge: 1 with *live set (new reference: the confirmed balances), 0 to
//  wait (asked, no answer yet), -1 when it waited its limit. The wait counts from when this
//  core first asked: a core that just started gives its agents time to connect.
static int s_live (ml_autopay_t *self, const json_t *schedule, const json_t *run, json_t **live)
{
    char key[128];
    s_run_key (run, key, sizeof key);
    int64_t now = zclock_mono ();
    json_t *entry = zhashx_lookup (self->live, key);
    if (!entry) {
        entry = json_pack ("{s:I, s:I}", "since", (json_int_t)now, "asked_at", (json_int_t)0);
        zhashx_insert (self->live, key, entry);
    }
    for (int pass = 0; pass < 2; pass++) {
        json_t *answered = json_object_get (entry, "answered_at");
        if (answered && now - json_integer_value (answered) < S_LIVE_FRESH_MS) {
            *live = json_incref (json_object_get (entry, "balances"));
            zhashx_delete (self->live, key);
            return 1;
        }
        if (pass || now - S_INT (entry, "asked_at") < S_LIVE_ASK_MS)
            break;
        //  Ask (again); an asker may answer at once.
        json_object_set_new (entry, "asked_at", json_integer (now));
        json_object_del (entry, "answered_at");
        ml_msg_t *search = s_live_search (self, schedule);
        json_t *context = json_pack ("{s:s, s:s, s:I}", "op", "autopay-live", "run", key,
                                     "deadline_ms", (json_int_t)S_LIVE_ASK_MS);
        int sent = search && self->ask
                       ? self->ask (self->ask_arg, S_TEXT (schedule, "firm_id"), search, context)
                       : -1;
        json_decref (context);
        ml_msg_destroy (&search);
        json_object_set_new (entry, "offline", json_boolean (sent != 0));
    }
    int64_t waited = now - S_INT (entry, "since");
    if (waited >= self->wait_ms) {
        zhashx_delete (self->live, key);
        return -1;
    }
    if (waited >= self->alert_ms)
        s_deferred (self, schedule, run, waited);
    return 0;
}

//  Carry one open run forward: settle it from its payment when there is one, else work out
//  what it pays and charge it under the run's own payment UUID. Returns 1 when the run
//  reached an outcome.
static int s_carry (ml_autopay_t *self, json_t *run, const char *today, char *deliver_firm,
                    size_t size)
{
    json_t *schedule = s_schedule (self, S_INT (run, "schedule_id"));
    if (!schedule)
        return 0;
    //  Another node's firm: its owner carries the run (it alone talks to the firm's agent).
    if (self->owned && !self->owned (self->owned_arg, S_TEXT (schedule, "firm_id"))) {
        json_decref (schedule);
        return 0;
    }
    json_t *lines = NULL;
    int64_t amount = 0;
    json_t *show = json_pack ("{s:s}", "payment_uuid", S_TEXT (run, "payment_uuid"));
    json_t *reply = ml_payments_execute (self->payments, "payment-show", show, deliver_firm, size);
    json_decref (show);
    if (!json_is_true (json_object_get (reply, "ok"))) {
        json_decref (reply);
        reply = NULL;
        lines = s_run_lines (self, schedule, S_TEXT (run, "due_date"), NULL, &amount);
        if (!lines) {
            json_decref (schedule);
            return 0;
        }
        //  Something is due by the replica: confirm it live before charging. The replica
        //  may be stale (the agent offline while the firm settled an invoice).
        json_t *live = NULL;
        int confirmed = json_array_size (lines) ? s_live (self, schedule, run, &live) : 1;
        if (confirmed == 0) {
            json_decref (lines);
            json_decref (schedule);
            return 0;
        }
        if (confirmed < 0) {
            int done = s_outcome (self, schedule, run, "error", "agent_offline", NULL, 0, today);
            json_decref (lines);
            json_decref (schedule);
            return done == 1;
        }
        if (live) {
            json_decref (lines);
            lines = s_run_lines (self, schedule, S_TEXT (run, "due_date"), live, &amount);
            json_decref (live);
            if (!lines) {
                json_decref (schedule);
                return 0;
            }
        }
        if (json_array_size (lines) == 0) {
            int done = s_outcome (self, schedule, run, "nothing_due", NULL, lines, 0, today);
            json_decref (lines);
            json_decref (schedule);
            return done == 1;
        }
        reply = ml_payments_autopay (
            self->payments, S_TEXT (schedule, "firm_id"), S_INT (schedule, "payer_id"),
            S_INT (schedule, "method_id"), S_TEXT (schedule, "account_number"), lines,
            S_TEXT (schedule, "ar_message"), S_TEXT (run, "payment_uuid"), deliver_firm, size);
        //  A test hook: die the hardest way right after the charge, before the run's outcome
        //  is recorded, to prove the next start neither charges again nor loses the run.
        const char *crash = getenv ("MATTERLINK_TEST_CRASH");
        const char *charged =
            json_string_value (json_object_get (json_object_get (reply, "payment"), "status"));
        //  Not while the processor's worker charges it: ml_payments fires then, once recorded.
        if (crash && streq (crash, "autopay-after-charge") && charged &&
            !streq (charged, "pending"))
            raise (SIGKILL);
    }
    json_t *payment = json_object_get (reply, "payment");
    const char *state = json_string_value (json_object_get (payment, "status"));
    json_t *charge = json_array_get (json_object_get (payment, "charges"), 0);
    if (payment) {
        //  The lines and amount are what was charged, whoever charged them (a run resumed
        //  after a stop knows them only from its charge).
        amount = S_INT (charge, "amount_minor");
        json_decref (lines);
        lines = json_array ();
        json_t *rows = S_ROWS ("SELECT lines FROM charge WHERE charge_key = ?", "s",
                               S_TEXT (charge, "charge_key"));
        json_t *stored = json_loads (S_TEXT (json_array_get (rows, 0), "lines"), 0, NULL);
        json_decref (rows);
        size_t index;
        json_t *line;
        json_array_foreach (stored, index, line)
        {
            json_array_append_new (lines,
                                   json_pack ("{s:O, s:O}", "invoice", json_array_get (line, 1),
                                              "amount_minor", json_array_get (line, 2)));
        }
        json_decref (stored);
    }
    int done;
    if (!payment)
        done =
            s_outcome (self, schedule, run, "error",
                       json_string_value (json_object_get (reply, "error")), lines, amount, today);
    else if (streq (state, "approved"))
        done = s_outcome (self, schedule, run, "paid", NULL, lines, amount, today);
    else if (streq (state, "declined") || streq (state, "error"))
        done =
            s_outcome (self, schedule, run, state, S_TEXT (charge, "reason"), lines, amount, today);
    else
        done = s_outcome (self, schedule, run, "pending", NULL, lines, amount, today);
    json_decref (reply);
    json_decref (lines);
    json_decref (schedule);
    return done == 1;
}

//  Tell the firm that a schedule's missed due dates became one run (queued in the caller's
//  transaction). Without a contact address the log line is all staff get.
static void s_tell_missed (ml_autopay_t *self, const json_t *schedule, const char *due,
                           const char *missed, int count)
{
    json_t *contact = S_ROWS ("SELECT notify_email FROM firm_contact WHERE firm_id = ?", "s",
                              S_TEXT (schedule, "firm_id"));
    const char *address = S_TEXT (json_array_get (contact, 0), "notify_email");
    if (self->mailer && address && *address) {
        char subject[300], body[2048], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "AutoPay caught up: %.200s", S_TEXT (schedule, "name"));
        snprintf (body, sizeof body,
                  "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) was not run on %d due "
                  "dates while the payment core was down: %.900s.\nThey were made into one run, "
                  "due %s, which pays as one run does (up to the schedule's amount once, or "
                  "everything outstanding with 'all').\nSee 'matterlink autopay show %lld'.\n",
                  (long long)S_INT (schedule, "schedule_id"), S_TEXT (schedule, "name"),
                  (long long)S_INT (schedule, "payer_id"), count, missed, due,
                  (long long)S_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-missed:%lld:%s",
                  (long long)S_INT (schedule, "schedule_id"), due);
        if (ml_mailer_enqueue (self->mailer, "autopay_missed", dedupe, S_TEXT (schedule, "firm_id"),
                               address, subject, body, error, sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no catch-up notice for schedule %lld: %s",
                    (long long)S_INT (schedule, "schedule_id"), error);
    }
    json_decref (contact);
}

//  Start what one schedule has due. The due dates from the day it runs from up to today,
//  after its latest run, make ONE run: normally just today's, but a core that was down
//  misses several, and they become one run on the latest of them (a payer is never charged
//  a year's dates on one day); the run's note, the log and a notice to the firm say which
//  dates it stands for. A schedule with nothing left to pay for (every enrollment ended, or
//  its client and matter enrollments ran their year) makes no run and says so once.
static void s_start_schedule (ml_autopay_t *self, const json_t *schedule, const char *today)
{
    int64_t schedule_id = S_INT (schedule, "schedule_id");
    char year_end[11], latest[11] = "", due[11], key[24];
    ml_autopay_year_end (S_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    json_t *rows =
        S_ROWS ("SELECT MAX (due_date) AS due_date FROM autopay_run WHERE schedule_id = ?", "i",
                schedule_id);
    const char *last_run = S_TEXT (json_array_get (rows, 0), "due_date");
    snprintf (latest, sizeof latest, "%s", last_run ? last_run : "");
    json_decref (rows);
    json_t *enrollments = S_ROWS (S_ENROLLMENT_SQL, "i", schedule_id);
    if (!enrollments)
        return;
    char missed[1000] = "";
    char run_due[11] = "";
    int count = 0;
    const char *why = NULL;
    for (int number = 0; number < S_MAX_DUE; number++) {
        if (ml_autopay_due_date (S_TEXT (schedule, "first_date"), S_TEXT (schedule, "frequency"),
                                 S_TEXT (schedule, "day_rule"), number, due, sizeof due) != 0 ||
            strcmp (due, today) > 0)
            break;
        if (strcmp (due, S_TEXT (schedule, "runs_from")) < 0 || strcmp (due, latest) <= 0)
            continue;
        why = s_ended (enrollments, due, year_end);
        if (why)
            break;
        if (*run_due) {
            size_t used = strlen (missed);
            snprintf (missed + used, sizeof missed - used, "%s%s", used ? ", " : "", run_due);
        }
        snprintf (run_due, sizeof run_due, "%s", due);
        count++;
    }
    json_decref (enrollments);
    snprintf (key, sizeof key, "%lld", (long long)schedule_id);
    if (why && !zhashx_lookup (self->ended, key)) {
        ml_log (ML_LOG_NOTICE,
                "autopay: schedule %lld makes no more runs: %s (enroll an association to "
                "start it again)",
                (long long)schedule_id, why);
        zhashx_insert (self->ended, key, "1");
    }
    if (!count)
        return;
    char now[32], uuid[37], note[1100] = "";
    ml_store_now (now, sizeof now);
    ml_store_uuid (uuid, sizeof uuid);
    if (count > 1)
        snprintf (note, sizeof note, "one run for %d missed due dates (also %s)", count, missed);
    if (ml_db_begin (self->db) != 0) {
        s_store_failed (self, "starting a run");
        return;
    }
    int64_t added = ml_db_execute (
        self->db,
        "INSERT INTO autopay_run (schedule_id, due_date, attempt, run_on, payment_uuid, status,"
        " currency, lines, note, created_at, updated_at) SELECT ?, ?, 1, ?, ?, 'started', ?,"
        " '[]', ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM autopay_run WHERE schedule_id = ? AND"
        " due_date = ?)",
        "isssssssis", schedule_id, run_due, today, uuid, S_TEXT (schedule, "currency"),
        *note ? note : NULL, now, now, schedule_id, run_due);
    if (added == 1 && count > 1)
        s_tell_missed (self, schedule, run_due, missed, count - 1);
    if (added < 0 || ml_db_commit (self->db) != 0) {
        s_store_failed (self, "starting a run");
        return;
    }
    if (added == 1 && count > 1)
        ml_log (ML_LOG_WARNING,
                "autopay: catching up: schedule %lld missed %d due dates (%s) while the core was "
                "down; they become one run, due %s, starting today (%s)",
                (long long)schedule_id, count - 1, missed, run_due, today);
    else if (added == 1 && strcmp (run_due, today) < 0)
        ml_log (ML_LOG_NOTICE, "autopay: catching up: schedule %lld's run due %s starts today (%s)",
                (long long)schedule_id, run_due, today);
}

//  Start the runs that came due, one per enabled schedule at most.
static void s_start_due (ml_autopay_t *self, const char *today)
{
    json_t *schedules =
        S_ROWS (S_SCHEDULE_SQL " WHERE enabled = 1 AND deleted_at IS NULL ORDER BY schedule_id",
                NULL, NULL);
    size_t index;
    json_t *schedule;
    json_array_foreach (schedules, index, schedule)
    {
        if (!self->owned || self->owned (self->owned_arg, S_TEXT (schedule, "firm_id")))
            s_start_schedule (self, schedule, today);
    }
    json_decref (schedules);
}

void ml_autopay_set_owner (ml_autopay_t *self, ml_firm_owned_fn *owned, void *arg)
{
    assert (self);
    self->owned = owned;
    self->owned_arg = arg;
}

int ml_autopay_tick (ml_autopay_t *self, char *deliver_firm, size_t size)
{
    assert (self);
    char today[11];
    s_today (self, today, sizeof today);
    s_start_due (self, today);
    //  Retries whose day has come become open runs like any other, unless their schedule
    //  is off or deleted (they wait; enabling it marks those whose day passed as not run),
    //  or their day came before the schedule last started again (never run).
    ml_db_execute (self->db,
                   "UPDATE autopay_run SET status = 'started' WHERE status = 'scheduled' AND"
                   " run_on <= ? AND schedule_id IN (SELECT schedule_id FROM autopay_schedule"
                   " s WHERE enabled = 1 AND deleted_at IS NULL AND s.runs_from <="
                   " autopay_run.run_on)",
                   "s", today);
    //  Open runs, oldest due date first: new ones, and those a stop or an unknown charge
    //  outcome left open.
    json_t *open = S_ROWS (S_RUN_SQL " WHERE status IN ('started', 'pending')"
                                     " ORDER BY due_date, schedule_id, attempt LIMIT 50",
                           NULL, NULL);
    int done = 0;
    size_t index;
    json_t *run;
    json_array_foreach (open, index, run) done += s_carry (self, run, today, deliver_firm, size);
    json_decref (open);
    return done;
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
    s_today (self, shown, sizeof shown);
    return ml_admin_ok (json_pack ("{s:s, s:i}", "today", shown, "runs", runs));
}

//  The payer's schedules for the portal (ml_portal_account): what each pays, with which
//  card, and its next run as the scheduler will make it. Never the A/R message.
json_t *ml_autopay_payer_schedules (ml_autopay_t *self, int64_t payer_id)
{
    assert (self);
    json_t *schedules = S_ROWS ("SELECT s.schedule_id, s.name, s.frequency, s.day_rule,"
                                " s.first_date, s.amount_minor, s.currency, s.enabled, s.runs_from,"
                                " m.brand, m.last4 FROM autopay_schedule s LEFT JOIN payment_method"
                                " m ON m.method_id = s.method_id WHERE s.payer_id = ? AND"
                                " s.deleted_at IS NULL ORDER BY s.schedule_id",
                                "i", payer_id);
    if (!schedules)
        return NULL;
    char today[11];
    s_today (self, today, sizeof today);
    size_t index;
    json_t *schedule;
    json_array_foreach (schedules, index, schedule)
    {
        int64_t schedule_id = S_INT (schedule, "schedule_id");
        json_t *rows = S_ROWS ("SELECT MAX (due_date) AS due_date FROM autopay_run WHERE"
                               " schedule_id = ?",
                               "i", schedule_id);
        char latest[11] = "", next[11] = "", due[11], year_end[11];
        snprintf (latest, sizeof latest, "%s", S_TEXT (json_array_get (rows, 0), "due_date") ?: "");
        json_decref (rows);
        //  The first due date not run yet, from today on (what the tick starts next).
        for (int number = 0; number < S_MAX_DUE && !*next; number++) {
            if (ml_autopay_due_date (S_TEXT (schedule, "first_date"),
                                     S_TEXT (schedule, "frequency"), S_TEXT (schedule, "day_rule"),
                                     number, due, sizeof due) != 0)
                break;
            if (strcmp (due, S_TEXT (schedule, "runs_from")) >= 0 && strcmp (due, latest) > 0 &&
                strcmp (due, today) >= 0)
                snprintf (next, sizeof next, "%s", due);
        }
        //  A soft decline's retry may come first.
        rows = S_ROWS ("SELECT MIN (run_on) AS run_on FROM autopay_run WHERE schedule_id = ? AND"
                       " status = 'scheduled'",
                       "i", schedule_id);
        const char *retry = S_TEXT (json_array_get (rows, 0), "run_on");
        bool retrying = retry && (!*next || strcmp (retry, next) < 0);
        if (retrying)
            snprintf (next, sizeof next, "%.10s", retry);
        json_decref (rows);
        json_t *enrollments =
            S_ROWS (S_ENROLLMENT_SQL " ORDER BY e.association_id", "i", schedule_id);
        if (!enrollments) {
            json_decref (schedules);
            return NULL;
        }
        ml_autopay_year_end (S_TEXT (schedule, "first_date"), year_end, sizeof year_end);
        const char *why = *next ? s_ended (enrollments, next, year_end) : "nothing is due any more";
        const char *state = !S_INT (schedule, "enabled") ? "off" : why ? "ended" : "active";
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
            const char *level = S_TEXT (enrollment, "level");
            const char *number = streq (level, "client")   ? S_TEXT (enrollment, "client_number")
                                 : streq (level, "matter") ? S_TEXT (enrollment, "matter_number")
                                                           : S_TEXT (enrollment, "invoice_number");
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
