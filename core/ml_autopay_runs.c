/*  ml_autopay's runs: what each due date pays (the enrollments' open invoices, checked
    against the matter database's live balances), the charge through ml_payments, retries,
    deferrals and their notices, and the tick that starts what is due. */
#include "ml_autopay_internal.h"
#include "ml_alloc.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_notify.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Runs -------------------------------------------------------------------------------------

//  Add the open invoices an enrollment covers (in currency) to candidates, skipping those
//  already there. An invoice-level enrollment whose invoice is paid (no longer open, or
//  nothing left on it) ends here. Returns 0 or -1 (store failed).
static int s_enrollment_items (ml_autopay_t *self, const json_t *schedule, const json_t *enrollment,
                               const char *due, const char *year_end, const json_t *live,
                               zlistx_t *candidates)
{
    const char *level = ML_AUTOPAY_TEXT (enrollment, "level");
    bool invoice_level = streq (level, "invoice");
    if (!invoice_level && strcmp (due, year_end) >= 0)
        return 0;
    json_t *items = ml_store_open_items (
        self->store, ML_AUTOPAY_TEXT (schedule, "firm_id"),
        streq (level, "client") ? ML_AUTOPAY_TEXT (enrollment, "client_number") : NULL,
        streq (level, "matter") ? ML_AUTOPAY_TEXT (enrollment, "matter_number") : NULL,
        invoice_level ? ML_AUTOPAY_TEXT (enrollment, "invoice_number") : NULL);
    if (!items)
        return -1;
    json_t *first = json_array_get (items, 0);
    if (invoice_level && (!first || ML_AUTOPAY_INT (first, "balance_minor") <= 0)) {
        char now[32];
        ml_store_now (now, sizeof now);
        ml_db_execute (self->db,
                       "UPDATE autopay_enrollment SET ended_at = ?, end_reason = 'paid'"
                       " WHERE schedule_id = ? AND association_id = ? AND ended_at IS NULL",
                       "sii", now, ML_AUTOPAY_INT (schedule, "schedule_id"),
                       ML_AUTOPAY_INT (enrollment, "association_id"));
        ml_log (ML_LOG_NOTICE, "autopay: schedule %lld: invoice %s is paid; its enrollment ends",
                (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                ML_AUTOPAY_TEXT (enrollment, "invoice_number"));
    }
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        if (!streq (ML_AUTOPAY_TEXT (item, "currency"), ML_AUTOPAY_TEXT (schedule, "currency")))
            continue;
        //  With live balances: never more than the matter database's balance now, less
        //  what is on its way to it (postings not yet applied); an invoice it no longer
        //  has open, or did not confirm, is not paid.
        if (live) {
            json_t *confirmed = json_object_get (live, ML_AUTOPAY_TEXT (item, "invoice_number"));
            int64_t pending =
                ML_AUTOPAY_INT (item, "balance_minor") - ML_AUTOPAY_INT (item, "available_minor");
            int64_t cap = confirmed && streq (ML_AUTOPAY_TEXT (confirmed, "currency"),
                                              ML_AUTOPAY_TEXT (schedule, "currency"))
                              ? ML_AUTOPAY_INT (confirmed, "balance_minor") - pending
                              : 0;
            if (cap < ML_AUTOPAY_INT (item, "available_minor"))
                json_object_set_new (item, "available_minor", json_integer (cap));
        }
        if (ML_AUTOPAY_INT (item, "available_minor") <= 0)
            continue;
        bool seen = false;
        for (ml_alloc_item_t *known = zlistx_first (candidates); known && !seen;
             known = zlistx_next (candidates))
            seen = streq (known->invoice_number, ML_AUTOPAY_TEXT (item, "invoice_number"));
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
    ml_autopay_year_end (ML_AUTOPAY_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    json_t *enrollments = ML_AUTOPAY_ROWS (ML_AUTOPAY_ENROLLMENT_SQL " AND e.ended_at IS NULL"
                                                                     " ORDER BY e.association_id",
                                           "i", ML_AUTOPAY_INT (schedule, "schedule_id"));
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
    int64_t wanted = ML_AUTOPAY_INT (schedule, "amount_minor");
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
    bool soft =
        reason && streq (reason, "insufficient_funds") && ML_AUTOPAY_INT (run, "attempt") == 1;
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
                            "issssss", ML_AUTOPAY_INT (run, "schedule_id"),
                            ML_AUTOPAY_TEXT (run, "due_date"), tomorrow, uuid,
                            ML_AUTOPAY_TEXT (schedule, "currency"), now, now) == 1;
    //  Who hears of it is the firm's choice (ml_notify: "Error-Failed AutoPay", on by
    //  default, to the contact address unless the firm named others).
    json_t *contact =
        ml_notify_recipients (self->db, ML_AUTOPAY_TEXT (schedule, "firm_id"), "autopay_failed");
    bool row = json_array_size (contact) > 0;
    if (ok && self->mailer && row) {
        char subject[300], body[2048], dedupe[128], error[256] = "", money[64];
        ml_money_format (ML_AUTOPAY_INT (run, "amount_minor"),
                         ML_AUTOPAY_TEXT (schedule, "currency"), money, sizeof money);
        snprintf (subject, sizeof subject, "Error-Failed AutoPay: %.200s",
                  ML_AUTOPAY_TEXT (schedule, "name"));
        snprintf (body, sizeof body,
                  "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) failed its run due %s "
                  "(attempt %lld).\nAmount: %s\nOutcome: %s\nReason: %.300s\n\n%s\n"
                  "See 'matterlink autopay show %lld'.\n",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                  ML_AUTOPAY_TEXT (schedule, "name"),
                  (long long)ML_AUTOPAY_INT (schedule, "payer_id"),
                  ML_AUTOPAY_TEXT (run, "due_date"), (long long)ML_AUTOPAY_INT (run, "attempt"),
                  money, status, reason ? reason : "(none given)",
                  soft ? "The card was declined for insufficient funds: the run is tried once "
                         "more tomorrow."
                       : "This run is not retried: update the payer's payment method, then pay "
                         "by hand or wait for the next run.",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-failed:%lld:%s:%lld",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                  ML_AUTOPAY_TEXT (run, "due_date"), (long long)ML_AUTOPAY_INT (run, "attempt"));
        if (ml_notify_enqueue (self->mailer, self->db, "autopay_failed", dedupe,
                               ML_AUTOPAY_TEXT (schedule, "firm_id"), subject, body, error,
                               sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no failure alert for schedule %lld: %s",
                    (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), error);
    }
    //  The payer hears of it too (without the firm's A/R message), so they can fix the card.
    json_t *payers =
        ML_AUTOPAY_ROWS ("SELECT p.email, p.name, f.name AS firm_name FROM payer p JOIN firm f"
                         " ON f.firm_id = p.firm_id WHERE p.payer_id = ?",
                         "i", ML_AUTOPAY_INT (schedule, "payer_id"));
    json_t *payer = json_array_get (payers, 0);
    if (ok && self->mailer && payer) {
        char subject[300], body[1024], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "%.200s: your automatic payment did not go through",
                  ML_AUTOPAY_TEXT (payer, "firm_name"));
        snprintf (body, sizeof body,
                  "Dear %.200s,\n\nYour automatic payment \"%.200s\" due %s could not be "
                  "taken from your card.\n%s\n",
                  ML_AUTOPAY_TEXT (payer, "name"), ML_AUTOPAY_TEXT (schedule, "name"),
                  ML_AUTOPAY_TEXT (run, "due_date"),
                  soft ? "We will try once more tomorrow."
                       : "Please contact us to update your "
                         "payment method.");
        snprintf (dedupe, sizeof dedupe, "autopay-failed-payer:%lld:%s:%lld",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                  ML_AUTOPAY_TEXT (run, "due_date"), (long long)ML_AUTOPAY_INT (run, "attempt"));
        if (ml_mailer_enqueue (
                self->mailer, "autopay_failed_payer", dedupe, ML_AUTOPAY_TEXT (schedule, "firm_id"),
                ML_AUTOPAY_TEXT (payer, "email"), subject, body, error, sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no failure notice to payer %lld: %s",
                    (long long)ML_AUTOPAY_INT (schedule, "payer_id"), error);
    }
    json_decref (payers);
    if (ok && !row)
        ml_log (ML_LOG_WARNING,
                "autopay: firm %s has no contact address (or its Error-Failed AutoPay "
                "notification is off), so the failure of schedule %lld is only recorded (set "
                "one: matterlink firm contact --firm %s --email ADDRESS)",
                ML_AUTOPAY_TEXT (schedule, "firm_id"),
                (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                ML_AUTOPAY_TEXT (schedule, "firm_id"));
    json_decref (contact);
    ml_log (ML_LOG_WARNING, "autopay: schedule %lld run due %s attempt %lld %s: %s%s",
            (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), ML_AUTOPAY_TEXT (run, "due_date"),
            (long long)ML_AUTOPAY_INT (run, "attempt"), status, reason ? reason : "",
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
                             ML_AUTOPAY_INT (run, "schedule_id"), ML_AUTOPAY_TEXT (run, "due_date"),
                             ML_AUTOPAY_INT (run, "attempt")) == 1;
    free (lines_text);
    if (ok && (streq (status, "declined") || streq (status, "error")))
        ok = s_failed (self, schedule, run, status, reason, today);
    if (!ok || ml_db_commit (self->db) != 0) {
        ml_autopay_store_failed (self, "recording a run");
        return -1;
    }
    if (streq (status, "paid") || streq (status, "nothing_due"))
        ml_log (ML_LOG_NOTICE, "autopay: schedule %lld run due %s: %s (%lld minor units)",
                (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                ML_AUTOPAY_TEXT (run, "due_date"), status, (long long)amount);
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
    snprintf (key, size, "%lld:%s:%lld", (long long)ML_AUTOPAY_INT (run, "schedule_id"),
              ML_AUTOPAY_TEXT (run, "due_date"), (long long)ML_AUTOPAY_INT (run, "attempt"));
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
    json_t *enrollments = ML_AUTOPAY_ROWS (ML_AUTOPAY_ENROLLMENT_SQL " AND e.ended_at IS NULL", "i",
                                           ML_AUTOPAY_INT (schedule, "schedule_id"));
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
        const char *level = ML_AUTOPAY_TEXT (enrollment, "level");
        int list = streq (level, "client")   ? ML_SCOPE_CLIENTS
                   : streq (level, "matter") ? ML_SCOPE_MATTERS
                                             : ML_SCOPE_INVOICES;
        const char *number =
            ML_AUTOPAY_TEXT (enrollment, list == ML_SCOPE_CLIENTS   ? "client_number"
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
    const char *note = ML_AUTOPAY_TEXT (run, "note");
    if (note && strstr (note, "deferred:"))
        return;
    char now[32], until[64];
    ml_store_now (now, sizeof now);
    int64_t left_minutes = (self->wait_ms - waited_ms) / 60000;
    snprintf (until, sizeof until, "%lld more minutes", (long long)left_minutes);
    if (ml_db_begin (self->db) != 0) {
        ml_autopay_store_failed (self, "deferring a run");
        return;
    }
    bool ok =
        ml_db_execute (self->db,
                       "UPDATE autopay_run SET note = CASE WHEN note IS NULL THEN '' ELSE note"
                       " || '; ' END || 'deferred: the firm''s agent is offline, so the"
                       " balances cannot be confirmed live', updated_at = ? WHERE schedule_id ="
                       " ? AND due_date = ? AND attempt = ?",
                       "sisi", now, ML_AUTOPAY_INT (run, "schedule_id"),
                       ML_AUTOPAY_TEXT (run, "due_date"), ML_AUTOPAY_INT (run, "attempt")) == 1;
    json_t *contact = ML_AUTOPAY_ROWS ("SELECT notify_email FROM firm_contact WHERE firm_id = ?",
                                       "s", ML_AUTOPAY_TEXT (schedule, "firm_id"));
    const char *address = ML_AUTOPAY_TEXT (json_array_get (contact, 0), "notify_email");
    if (ok && self->mailer && address && *address) {
        char subject[300], body[2048], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "AutoPay deferred: %.200s",
                  ML_AUTOPAY_TEXT (schedule, "name"));
        snprintf (
            body, sizeof body,
            "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) has a run due %s "
            "(attempt %lld) that is deferred: the firm's matterlink agent is offline (or does "
            "not answer), so "
            "the invoices' balances cannot be confirmed with the matter database, and "
            "nothing is charged until they are.\n\nStart the agent (see 'matterlink "
            "status'). The run waits %s; then it fails and is not retried.\n"
            "See 'matterlink autopay show %lld'.\n",
            (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), ML_AUTOPAY_TEXT (schedule, "name"),
            (long long)ML_AUTOPAY_INT (schedule, "payer_id"), ML_AUTOPAY_TEXT (run, "due_date"),
            (long long)ML_AUTOPAY_INT (run, "attempt"), until,
            (long long)ML_AUTOPAY_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-deferred:%lld:%s:%lld",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                  ML_AUTOPAY_TEXT (run, "due_date"), (long long)ML_AUTOPAY_INT (run, "attempt"));
        if (ml_mailer_enqueue (self->mailer, "autopay_deferred", dedupe,
                               ML_AUTOPAY_TEXT (schedule, "firm_id"), address, subject, body, error,
                               sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no deferral notice for schedule %lld: %s",
                    (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), error);
    }
    json_decref (contact);
    if (!ok || ml_db_commit (self->db) != 0) {
        ml_autopay_store_failed (self, "deferring a run");
        return;
    }
    ml_log (ML_LOG_WARNING,
            "autopay: schedule %lld run due %s is deferred: firm %s's agent is offline, so its "
            "balances cannot be confirmed live (it waits %s, then fails)",
            (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), ML_AUTOPAY_TEXT (run, "due_date"),
            ML_AUTOPAY_TEXT (schedule, "firm_id"), until);
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
        if (pass || now - ML_AUTOPAY_INT (entry, "asked_at") < S_LIVE_ASK_MS)
            break;
        //  Ask (again); an asker may answer at once.
        json_object_set_new (entry, "asked_at", json_integer (now));
        json_object_del (entry, "answered_at");
        ml_msg_t *search = s_live_search (self, schedule);
        json_t *context = json_pack ("{s:s, s:s, s:I}", "op", "autopay-live", "run", key,
                                     "deadline_ms", (json_int_t)S_LIVE_ASK_MS);
        int sent =
            search && self->ask
                ? self->ask (self->ask_arg, ML_AUTOPAY_TEXT (schedule, "firm_id"), search, context)
                : -1;
        json_decref (context);
        ml_msg_destroy (&search);
        json_object_set_new (entry, "offline", json_boolean (sent != 0));
    }
    int64_t waited = now - ML_AUTOPAY_INT (entry, "since");
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
    json_t *schedule = ml_autopay_schedule (self, ML_AUTOPAY_INT (run, "schedule_id"));
    if (!schedule)
        return 0;
    //  Another node's firm: its owner carries the run (it alone talks to the firm's agent).
    if (self->owned && !self->owned (self->owned_arg, ML_AUTOPAY_TEXT (schedule, "firm_id"))) {
        json_decref (schedule);
        return 0;
    }
    json_t *lines = NULL;
    int64_t amount = 0;
    json_t *show = json_pack ("{s:s}", "payment_uuid", ML_AUTOPAY_TEXT (run, "payment_uuid"));
    json_t *reply = ml_payments_execute (self->payments, "payment-show", show, deliver_firm, size);
    json_decref (show);
    if (!json_is_true (json_object_get (reply, "ok"))) {
        json_decref (reply);
        reply = NULL;
        lines = s_run_lines (self, schedule, ML_AUTOPAY_TEXT (run, "due_date"), NULL, &amount);
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
            lines = s_run_lines (self, schedule, ML_AUTOPAY_TEXT (run, "due_date"), live, &amount);
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
        reply = ml_payments_autopay (self->payments, ML_AUTOPAY_TEXT (schedule, "firm_id"),
                                     ML_AUTOPAY_INT (schedule, "payer_id"),
                                     ML_AUTOPAY_INT (schedule, "method_id"),
                                     ML_AUTOPAY_TEXT (schedule, "account_number"), lines,
                                     ML_AUTOPAY_TEXT (schedule, "ar_message"),
                                     ML_AUTOPAY_TEXT (run, "payment_uuid"), deliver_firm, size);
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
        amount = ML_AUTOPAY_INT (charge, "amount_minor");
        json_decref (lines);
        lines = json_array ();
        json_t *rows = ML_AUTOPAY_ROWS ("SELECT lines FROM charge WHERE charge_key = ?", "s",
                                        ML_AUTOPAY_TEXT (charge, "charge_key"));
        json_t *stored = json_loads (ML_AUTOPAY_TEXT (json_array_get (rows, 0), "lines"), 0, NULL);
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
        done = s_outcome (self, schedule, run, state, ML_AUTOPAY_TEXT (charge, "reason"), lines,
                          amount, today);
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
    json_t *contact = ML_AUTOPAY_ROWS ("SELECT notify_email FROM firm_contact WHERE firm_id = ?",
                                       "s", ML_AUTOPAY_TEXT (schedule, "firm_id"));
    const char *address = ML_AUTOPAY_TEXT (json_array_get (contact, 0), "notify_email");
    if (self->mailer && address && *address) {
        char subject[300], body[2048], dedupe[128], error[256] = "";
        snprintf (subject, sizeof subject, "AutoPay caught up: %.200s",
                  ML_AUTOPAY_TEXT (schedule, "name"));
        snprintf (body, sizeof body,
                  "The Auto-Pay schedule %lld \"%.200s\" (payer %lld) was not run on %d due "
                  "dates while the payment core was down: %.900s.\nThey were made into one run, "
                  "due %s, which pays as one run does (up to the schedule's amount once, or "
                  "everything outstanding with 'all').\nSee 'matterlink autopay show %lld'.\n",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"),
                  ML_AUTOPAY_TEXT (schedule, "name"),
                  (long long)ML_AUTOPAY_INT (schedule, "payer_id"), count, missed, due,
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"));
        snprintf (dedupe, sizeof dedupe, "autopay-missed:%lld:%s",
                  (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), due);
        if (ml_mailer_enqueue (self->mailer, "autopay_missed", dedupe,
                               ML_AUTOPAY_TEXT (schedule, "firm_id"), address, subject, body, error,
                               sizeof error) < 0)
            ml_log (ML_LOG_WARNING, "autopay: no catch-up notice for schedule %lld: %s",
                    (long long)ML_AUTOPAY_INT (schedule, "schedule_id"), error);
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
    int64_t schedule_id = ML_AUTOPAY_INT (schedule, "schedule_id");
    char year_end[11], latest[11] = "", due[11], key[24];
    ml_autopay_year_end (ML_AUTOPAY_TEXT (schedule, "first_date"), year_end, sizeof year_end);
    json_t *rows =
        ML_AUTOPAY_ROWS ("SELECT MAX (due_date) AS due_date FROM autopay_run WHERE schedule_id = ?",
                         "i", schedule_id);
    const char *last_run = ML_AUTOPAY_TEXT (json_array_get (rows, 0), "due_date");
    snprintf (latest, sizeof latest, "%s", last_run ? last_run : "");
    json_decref (rows);
    json_t *enrollments = ML_AUTOPAY_ROWS (ML_AUTOPAY_ENROLLMENT_SQL, "i", schedule_id);
    if (!enrollments)
        return;
    char missed[1000] = "";
    char run_due[11] = "";
    int count = 0;
    const char *why = NULL;
    for (int number = 0; number < ML_AUTOPAY_MAX_DUE; number++) {
        if (ml_autopay_due_date (
                ML_AUTOPAY_TEXT (schedule, "first_date"), ML_AUTOPAY_TEXT (schedule, "frequency"),
                ML_AUTOPAY_TEXT (schedule, "day_rule"), number, due, sizeof due) != 0 ||
            strcmp (due, today) > 0)
            break;
        if (strcmp (due, ML_AUTOPAY_TEXT (schedule, "runs_from")) < 0 || strcmp (due, latest) <= 0)
            continue;
        why = ml_autopay_ended (enrollments, due, year_end);
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
        ml_autopay_store_failed (self, "starting a run");
        return;
    }
    int64_t added = ml_db_execute (
        self->db,
        "INSERT INTO autopay_run (schedule_id, due_date, attempt, run_on, payment_uuid, status,"
        " currency, lines, note, created_at, updated_at) SELECT ?, ?, 1, ?, ?, 'started', ?,"
        " '[]', ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM autopay_run WHERE schedule_id = ? AND"
        " due_date = ?)",
        "isssssssis", schedule_id, run_due, today, uuid, ML_AUTOPAY_TEXT (schedule, "currency"),
        *note ? note : NULL, now, now, schedule_id, run_due);
    if (added == 1 && count > 1)
        s_tell_missed (self, schedule, run_due, missed, count - 1);
    if (added < 0 || ml_db_commit (self->db) != 0) {
        ml_autopay_store_failed (self, "starting a run");
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
    json_t *schedules = ML_AUTOPAY_ROWS (
        ML_AUTOPAY_SCHEDULE_SQL " WHERE enabled = 1 AND deleted_at IS NULL ORDER BY schedule_id",
        NULL, NULL);
    size_t index;
    json_t *schedule;
    json_array_foreach (schedules, index, schedule)
    {
        if (!self->owned || self->owned (self->owned_arg, ML_AUTOPAY_TEXT (schedule, "firm_id")))
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
    ml_autopay_today (self, today, sizeof today);
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
    json_t *open =
        ML_AUTOPAY_ROWS (ML_AUTOPAY_RUN_SQL " WHERE status IN ('started', 'pending')"
                                            " ORDER BY due_date, schedule_id, attempt LIMIT 50",
                         NULL, NULL);
    int done = 0;
    size_t index;
    json_t *run;
    json_array_foreach (open, index, run) done += s_carry (self, run, today, deliver_firm, size);
    json_decref (open);
    return done;
}
