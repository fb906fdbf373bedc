/*  ml_notify: which events e-mail whom, per firm. See include/ml_notify.h. */
#include "ml_notify.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

//  One row per firm and event that staff have set; an event without a row has its default.
//  recipients: addresses separated by ", " ("" = the firm's contact address). offline_since:
//  for agent_offline, when the core first saw the agent away (seconds), NULL while online.
static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS notify_setting ("
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), event TEXT NOT NULL,"
    " enabled INTEGER NOT NULL, recipients TEXT NOT NULL, minutes INTEGER NOT NULL DEFAULT 0,"
    " offline_since INTEGER, updated_by TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY (firm_id, event))",
};

//  The events, their default, and what staff read about them.
static const struct {
    const char *event;
    bool on; //  by default
    const char *label;
} s_events[] = {
    {"autopay_failed", true, "Error-Failed AutoPay: an Auto-Pay run was declined or failed"},
    {"posting_rejected", true, "Posting rejected: the matter system refused a posting"},
    {"link_paid", false, "Link paid: a payer paid a payment link"},
    {"payment_received", false, "Payment received: a card charge was approved"},
    {"agent_offline", false, "Agent offline: the firm's agent has been away for a while"},
};
#define S_EVENTS (sizeof s_events / sizeof s_events[0])

//  How long the agent may be away before agent_offline mails, by default and at most.
#define S_MINUTES_DEFAULT 15
#define S_MINUTES_MAX     10080

static int s_event (const char *event)
{
    for (size_t index = 0; event && index < S_EVENTS; index++)
        if (streq (s_events[index].event, event))
            return (int)index;
    return -1;
}

static bool s_integer_column (const char *name)
{
    return streq (name, "enabled") || streq (name, "minutes") || streq (name, "offline_since");
}

static bool s_no_integer (const char *name)
{
    (void)name;
    return false;
}

int ml_notify_schema (ml_db_t *db, char *error, size_t error_size)
{
    return ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0],
                            "notification settings", error, error_size);
}

//  One address as the outbox takes it: ASCII local@domain, no spaces, at most 254 bytes.
static bool s_address_ok (const char *address, size_t length)
{
    if (length == 0 || length > 254)
        return false;
    size_t at = 0, ats = 0;
    for (size_t index = 0; index < length; index++) {
        unsigned char c = (unsigned char)address[index];
        if (c <= ' ' || c >= 127 || strchr ("<>()[],;:\\\"", c))
            return false;
        if (c == '@')
            ats++, at = index;
    }
    return ats == 1 && at > 0 && at + 1 < length && strchr (address + at, '.') &&
           address[length - 1] != '.';
}

//  Split text (addresses separated by commas, semicolons, spaces or line breaks) into a
//  JSON array. NULL with problem set when an address is not one or there are too many.
static json_t *s_split (const char *text, char *problem, size_t size)
{
    json_t *list = json_array ();
    const char *separators = ",; \t\r\n";
    for (const char *cursor = text; *cursor;) {
        cursor += strspn (cursor, separators);
        size_t length = strcspn (cursor, separators);
        if (!length)
            break;
        if (!s_address_ok (cursor, length)) {
            snprintf (problem, size, "'%.*s' is not an e-mail address",
                      (int)(length > 80 ? 80 : length), cursor);
            json_decref (list);
            return NULL;
        }
        //  The same address twice would get the mail twice.
        bool seen = false;
        size_t index;
        json_t *entry;
        json_array_foreach (list, index, entry)
        {
            const char *known = json_string_value (entry);
            seen = seen || (strlen (known) == length && strncasecmp (known, cursor, length) == 0);
        }
        if (!seen)
            json_array_append_new (list, json_stringn (cursor, length));
        cursor += length;
    }
    if (json_array_size (list) > ML_NOTIFY_RECIPIENTS_MAX) {
        snprintf (problem, size, "at most %d addresses per event", ML_NOTIFY_RECIPIENTS_MAX);
        json_decref (list);
        return NULL;
    }
    return list;
}

//  The firm's contact address (new string reference), or NULL.
static json_t *s_contact (ml_db_t *db, const char *firm)
{
    json_t *rows = ml_store_rows (
        ml_db_query (db, "SELECT notify_email FROM firm_contact WHERE firm_id = ?", "s", firm),
        s_no_integer);
    json_t *contact = json_incref (json_object_get (json_array_get (rows, 0), "notify_email"));
    json_decref (rows);
    return json_is_string (contact) ? contact : (json_decref (contact), NULL);
}

//  The rows the firm has set (new reference), or NULL on a store error.
static json_t *s_rows (ml_db_t *db, const char *firm)
{
    return ml_store_rows (ml_db_query (db,
                                       "SELECT event, enabled, recipients, minutes, updated_by,"
                                       " updated_at FROM notify_setting WHERE firm_id = ?",
                                       "s", firm),
                          s_integer_column);
}

static json_t *s_row_of (json_t *rows, const char *event)
{
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (streq (json_string_value (json_object_get (row, "event")), event))
            return row;
    }
    return NULL;
}

json_t *ml_notify_recipients (ml_db_t *db, const char *firm, const char *event)
{
    assert (db);
    int which = s_event (event);
    if (which < 0 || !firm)
        return json_array ();
    json_t *rows = ml_store_rows (ml_db_query (db,
                                               "SELECT enabled, recipients FROM notify_setting"
                                               " WHERE firm_id = ? AND event = ?",
                                               "ss", firm, event),
                                  s_integer_column);
    if (!rows)
        return NULL;
    json_t *row = json_array_get (rows, 0);
    bool on = row ? json_integer_value (json_object_get (row, "enabled")) != 0 : s_events[which].on;
    const char *text = row ? json_string_value (json_object_get (row, "recipients")) : "";
    char problem[160];
    json_t *list = on ? s_split (text ? text : "", problem, sizeof problem) : json_array ();
    json_decref (rows);
    if (!list)
        list = json_array (); //  stored only after the same check: cannot happen
    if (on && json_array_size (list) == 0) {
        json_t *contact = s_contact (db, firm);
        if (contact)
            json_array_append_new (list, contact);
    }
    return list;
}

int ml_notify_enqueue (ml_mailer_t *mailer, ml_db_t *db, const char *event, const char *dedupe_key,
                       const char *firm, const char *subject, const char *body, char *error,
                       size_t error_size)
{
    assert (db);
    if (!mailer)
        return 0;
    json_t *list = ml_notify_recipients (db, firm, event);
    if (!list) {
        snprintf (error, error_size, "the core store failed reading the notification settings");
        return -1;
    }
    int queued = 0;
    size_t index;
    json_t *entry;
    json_array_foreach (list, index, entry)
    {
        char dedupe[220];
        if (index == 0)
            snprintf (dedupe, sizeof dedupe, "%s", dedupe_key);
        else
            snprintf (dedupe, sizeof dedupe, "%s#%zu", dedupe_key, index + 1);
        if (ml_mailer_enqueue (mailer, event, dedupe, firm, json_string_value (entry), subject,
                               body, error, error_size) < 0) {
            queued = -1;
            break;
        }
        queued++;
    }
    json_decref (list);
    return queued;
}

//  notify-settings: every event, its state and who gets it.
static json_t *s_settings (ml_store_t *store, const json_t *request)
{
    ml_db_t *db = ml_store_db (store);
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    if (*problem || !firm)
        return ml_admin_error ("%s", *problem ? problem : "'firm' is required");
    json_t *known = ml_store_firm (store, firm);
    if (!known)
        return ml_admin_unknown_firm (store, firm);
    json_decref (known);
    json_t *rows = s_rows (db, firm);
    if (!rows)
        return ml_admin_error ("the core store failed; see the core's log");
    json_t *contact = s_contact (db, firm);
    json_t *events = json_array ();
    for (size_t index = 0; index < S_EVENTS; index++) {
        json_t *row = s_row_of (rows, s_events[index].event);
        bool on =
            row ? json_integer_value (json_object_get (row, "enabled")) != 0 : s_events[index].on;
        char problem_split[160];
        const char *text = row ? json_string_value (json_object_get (row, "recipients")) : "";
        json_t *recipients = s_split (text ? text : "", problem_split, sizeof problem_split);
        json_t *entry =
            json_pack ("{s:s, s:s, s:b, s:b, s:o, s:o}", "event", s_events[index].event, "label",
                       s_events[index].label, "enabled", on, "default", s_events[index].on,
                       "recipients", recipients ? recipients : json_array (), "sends_to",
                       on ? ml_notify_recipients (db, firm, s_events[index].event) : json_array ());
        if (streq (s_events[index].event, "agent_offline"))
            json_object_set_new (
                entry, "minutes",
                json_integer (row && json_integer_value (json_object_get (row, "minutes")) > 0
                                  ? json_integer_value (json_object_get (row, "minutes"))
                                  : S_MINUTES_DEFAULT));
        if (row)
            json_object_set (entry, "updated_by", json_object_get (row, "updated_by")),
                json_object_set (entry, "updated_at", json_object_get (row, "updated_at"));
        json_array_append_new (events, entry);
    }
    json_decref (rows);
    return ml_admin_ok (json_pack ("{s:s, s:o, s:o}", "firm", firm, "contact",
                                   contact ? contact : json_null (), "events", events));
}

//  notify-set: one event's state, recipients and (agent_offline) minutes.
static json_t *s_set (ml_store_t *store, const json_t *request)
{
    ml_db_t *db = ml_store_db (store);
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *event = ml_admin_argument (request, "event", 32, problem, sizeof problem);
    const char *text = ml_admin_argument (request, "recipients", 4000, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    json_t *enabled = json_object_get (request, "enabled");
    json_t *minutes = json_object_get (request, "minutes");
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm || !event)
        return ml_admin_error ("'firm' and 'event' are required");
    if (s_event (event) < 0)
        return ml_admin_error ("'event' is autopay_failed, posting_rejected, link_paid, "
                               "payment_received or agent_offline");
    if (!json_is_boolean (enabled))
        return ml_admin_error ("'enabled' is true or false");
    if (minutes && (!json_is_integer (minutes) || json_integer_value (minutes) < 1 ||
                    json_integer_value (minutes) > S_MINUTES_MAX))
        return ml_admin_error ("'minutes' is a whole number of minutes, 1 to %d", S_MINUTES_MAX);
    if (minutes && !streq (event, "agent_offline"))
        return ml_admin_error ("'minutes' applies to agent_offline only");
    json_t *known = ml_store_firm (store, firm);
    if (!known)
        return ml_admin_unknown_firm (store, firm);
    json_decref (known);
    json_t *list = s_split (text ? text : "", problem, sizeof problem);
    if (!list)
        return ml_admin_error ("%s", problem);
    //  Kept as the checked list, one way of writing it.
    char joined[4000] = "";
    size_t index;
    json_t *entry;
    json_array_foreach (list, index, entry)
    {
        size_t used = strlen (joined);
        snprintf (joined + used, sizeof joined - used, "%s%s", index ? ", " : "",
                  json_string_value (entry));
    }
    json_decref (list);
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t wait = minutes ? json_integer_value (minutes) : S_MINUTES_DEFAULT;
    //  An unchanged minutes keeps the stored one when the request leaves it out.
    if (ml_db_begin (db) != 0 ||
        ml_db_execute (
            db,
            "INSERT INTO notify_setting (firm_id, event, enabled, recipients,"
            " minutes, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (firm_id, event) DO UPDATE SET enabled = excluded.enabled,"
            " recipients = excluded.recipients, offline_since = NULL, minutes = CASE WHEN ? THEN"
            " excluded.minutes ELSE notify_setting.minutes END, updated_by ="
            " excluded.updated_by, updated_at = excluded.updated_at",
            "ssisissi", firm, event, json_is_true (enabled) ? 1 : 0, joined, wait,
            staff ? staff : "operator", now, minutes ? 1 : 0) != 1 ||
        ml_db_commit (db) != 0) {
        json_t *reply = ml_admin_store_failed (db, "notify", "notify-set");
        ml_db_rollback (db);
        return reply;
    }
    ml_log (ML_LOG_NOTICE, "notify: firm %s: %s %s (%s)", firm, event,
            json_is_true (enabled) ? "on" : "off", *joined ? joined : "the contact address");
    json_t *reply = s_settings (store, request);
    if (reply)
        json_object_set_new (reply, "audit_detail",
                             json_sprintf ("%s %s", event, json_is_true (enabled) ? "on" : "off"));
    return reply;
}

json_t *ml_notify_execute (ml_store_t *store, const char *op, const json_t *request)
{
    assert (store);
    if (streq (op, "notify-settings"))
        return s_settings (store, request);
    if (streq (op, "notify-set"))
        return s_set (store, request);
    return NULL;
}

int ml_notify_agents (ml_store_t *store, ml_mailer_t *mailer, zlistx_t *online)
{
    assert (store);
    ml_db_t *db = ml_store_db (store);
    json_t *rows = ml_store_rows (
        ml_db_query (db,
                     "SELECT n.firm_id, n.minutes, n.offline_since, f.name FROM notify_setting"
                     " n JOIN firm f ON f.firm_id = n.firm_id WHERE n.event = 'agent_offline'"
                     " AND n.enabled = 1",
                     NULL, NULL),
        s_integer_column);
    if (!rows)
        return -1;
    int queued = 0;
    int64_t now = (int64_t)time (NULL);
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        const char *firm = json_string_value (json_object_get (row, "firm_id"));
        json_t *since = json_object_get (row, "offline_since");
        bool here = false;
        for (const char *id = online ? zlistx_first (online) : NULL; id && !here;
             id = zlistx_next (online))
            here = streq (id, firm);
        if (here) {
            //  Back: the next absence counts from zero and gets its own mail.
            if (!json_is_null (since))
                ml_db_execute (db,
                               "UPDATE notify_setting SET offline_since = NULL WHERE firm_id"
                               " = ? AND event = 'agent_offline'",
                               "s", firm);
            continue;
        }
        if (json_is_null (since)) {
            ml_db_execute (db,
                           "UPDATE notify_setting SET offline_since = ? WHERE firm_id = ? AND"
                           " event = 'agent_offline'",
                           "is", now, firm);
            continue;
        }
        int64_t minutes = json_integer_value (json_object_get (row, "minutes"));
        int64_t away = now - json_integer_value (since);
        if (away < minutes * 60)
            continue;
        char dedupe[128];
        snprintf (dedupe, sizeof dedupe, "agent-offline:%s:%lld", firm,
                  (long long)json_integer_value (since));
        json_t *sent = ml_store_rows (
            ml_db_query (db, "SELECT 1 AS sent FROM mail WHERE dedupe_key = ?", "s", dedupe),
            s_no_integer);
        bool already = json_array_size (sent) > 0;
        json_decref (sent);
        if (already || !sent)
            continue;
        char subject[200], body[1024], error[256] = "", when[32];
        time_t seconds = (time_t)json_integer_value (since);
        struct tm parts;
        gmtime_r (&seconds, &parts);
        strftime (when, sizeof when, "%Y-%m-%d %H:%M UTC", &parts);
        snprintf (subject, sizeof subject, "Agent offline: %.150s",
                  json_string_value (json_object_get (row, "name")));
        snprintf (body, sizeof body,
                  "The matterlink agent of %.150s (firm %s) has not been connected since %s "
                  "(%lld minutes).\nUntil it is back, payments are still taken, but postings wait "
                  "and Auto-Pay runs are deferred. Check the agent's host and its service.\nYou "
                  "get this once per absence; the setting is on the Notifications page.\n",
                  json_string_value (json_object_get (row, "name")), firm, when,
                  (long long)(away / 60));
        if (ml_db_begin (db) == 0) {
            int done = ml_notify_enqueue (mailer, db, "agent_offline", dedupe, firm, subject, body,
                                          error, sizeof error);
            if (done >= 0 && ml_db_commit (db) == 0) {
                queued += done;
                ml_log (ML_LOG_WARNING, "notify: firm %s: agent offline %lld minutes; %d mail(s)",
                        firm, (long long)(away / 60), done);
            } else {
                ml_db_rollback (db);
                ml_log (ML_LOG_WARNING, "notify: firm %s: no agent-offline mail: %s", firm,
                        *error ? error : "the core store failed");
            }
        }
    }
    json_decref (rows);
    return queued;
}

//  Selftest ------------------------------------------------------------------------------

static json_t *s_test_call (ml_store_t *store, const char *op, json_t *request)
{
    json_t *reply = ml_notify_execute (store, op, request);
    json_decref (request);
    assert (reply);
    return reply;
}

static size_t s_test_mails (ml_mailer_t *mailer, const char *kind)
{
    json_t *list = ml_mailer_list (mailer, NULL, "acme", 1000);
    size_t count = 0, index;
    json_t *mail;
    json_array_foreach (list, index, mail)
    {
        count += streq (json_string_value (json_object_get (mail, "kind")), kind);
    }
    json_decref (list);
    return count;
}

void ml_notify_test (bool verbose)
{
    printf (" * ml_notify: ");
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    ml_db_t *db = ml_store_db (store);
    char outbox_key[160];
    snprintf (outbox_key, sizeof outbox_key, "%s/outbox.key", directory);
    ml_mailer_t *mailer = ml_mailer_new (db, outbox_key, error, sizeof error);
    ml_payers_t *payers = ml_payers_new (db, error, sizeof error);
    //  The payments make firm_contact and (through ml_notify_schema) notify_setting.
    ml_payments_t *payments = ml_payments_new (store, payers, NULL, mailer, error, sizeof error);
    assert (mailer && payers && payments);

    //  Defaults: the failures on, to nobody until the firm has a contact address.
    json_t *reply = s_test_call (store, "notify-settings", json_pack ("{s:s}", "firm", "acme"));
    assert (json_is_true (json_object_get (reply, "ok")));
    json_t *events = json_object_get (reply, "events");
    assert (json_array_size (events) == S_EVENTS);
    assert (json_is_true (json_object_get (json_array_get (events, 0), "enabled")));
    assert (json_is_false (json_object_get (json_array_get (events, 2), "enabled")));
    assert (json_integer_value (json_object_get (json_array_get (events, 4), "minutes")) == 15);
    json_decref (reply);
    json_t *list = ml_notify_recipients (db, "acme", "autopay_failed");
    assert (list && json_array_size (list) == 0);
    json_decref (list);
    reply = s_test_call (store, "notify-settings", json_pack ("{s:s}", "firm", "nobody"));
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    reply = ml_notify_execute (store, "notify-other", NULL);
    assert (!reply);

    //  With a contact address, the defaults mail it.
    assert (ml_db_execute (db,
                           "INSERT INTO firm_contact (firm_id, notify_email, updated_at) VALUES"
                           " ('acme', 'office@acme.example', 'now')",
                           NULL) == 1);
    list = ml_notify_recipients (db, "acme", "posting_rejected");
    assert (json_array_size (list) == 1 &&
            streq (json_string_value (json_array_get (list, 0)), "office@acme.example"));
    json_decref (list);
    list = ml_notify_recipients (db, "acme", "link_paid");
    assert (json_array_size (list) == 0);
    json_decref (list);

    //  Bad input changes nothing.
    const char *bad[][2] = {
        {"{\"firm\": \"acme\", \"event\": \"lunch\", \"enabled\": true}", "'event' is"},
        {"{\"firm\": \"acme\", \"event\": \"link_paid\", \"enabled\": 1}", "'enabled'"},
        {"{\"firm\": \"acme\", \"event\": \"link_paid\", \"enabled\": true, \"recipients\": "
         "\"a@b.example, not an address\"}",
         "is not an e-mail address"},
        {"{\"firm\": \"acme\", \"event\": \"link_paid\", \"enabled\": true, \"recipients\": "
         "\"x@y.example\\r\\nBcc: z@y.example\"}",
         "is not an e-mail address"},
        {"{\"firm\": \"acme\", \"event\": \"link_paid\", \"enabled\": true, \"minutes\": 5}",
         "agent_offline only"},
        {"{\"firm\": \"acme\", \"event\": \"agent_offline\", \"enabled\": true, \"minutes\": 0}",
         "'minutes'"},
        {"{\"firm\": \"other\", \"event\": \"link_paid\", \"enabled\": true}", "unknown firm"},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        reply = s_test_call (store, "notify-set", json_loads (bad[index][0], 0, NULL));
        const char *text = json_string_value (json_object_get (reply, "error"));
        if (!text || !strstr (text, bad[index][1]))
            fprintf (stderr, "case %zu: %s\n", index, text ? text : "(ok)");
        assert (text && strstr (text, bad[index][1]));
        json_decref (reply);
    }
    json_t *rows = s_rows (db, "acme");
    assert (json_array_size (rows) == 0);
    json_decref (rows);

    //  Two addresses (the same one twice is one); each gets the mail, once.
    reply = s_test_call (store, "notify-set",
                         json_pack ("{s:s, s:s, s:b, s:s, s:s}", "firm", "acme", "event",
                                    "autopay_failed", "enabled", 1, "recipients",
                                    "ops@acme.example; Boss@acme.example\nops@acme.example",
                                    "staff", "Ann (#1)"));
    assert (json_is_true (json_object_get (reply, "ok")));
    assert (json_object_get (reply, "audit_detail"));
    json_decref (reply);
    list = ml_notify_recipients (db, "acme", "autopay_failed");
    assert (json_array_size (list) == 2 &&
            streq (json_string_value (json_array_get (list, 1)), "Boss@acme.example"));
    json_decref (list);
    for (int round = 0; round < 2; round++) {
        assert (ml_db_begin (db) == 0);
        assert (ml_notify_enqueue (mailer, db, "autopay_failed", "autopay-failed:1:x:1", "acme",
                                   "Error-Failed AutoPay: Rent", "body", error, sizeof error) == 2);
        assert (ml_db_commit (db) == 0);
    }
    assert (s_test_mails (mailer, "autopay_failed") == 2);

    //  Off: nobody, even with a contact address.
    reply = s_test_call (
        store, "notify-set",
        json_pack ("{s:s, s:s, s:b}", "firm", "acme", "event", "posting_rejected", "enabled", 0));
    json_decref (reply);
    list = ml_notify_recipients (db, "acme", "posting_rejected");
    assert (json_array_size (list) == 0);
    json_decref (list);
    //  The sweeps' SQL condition agrees.
    rows = ml_store_rows (
        ml_db_query (
            db,
            "SELECT " ML_NOTIFY_ON_SQL ("'acme'", "'posting_rejected'") " AS a, " ML_NOTIFY_ON_SQL (
                "'acme'", "'autopay_failed'") " AS b, " ML_NOTIFY_ON_SQL ("'acme'",
                                                                          "'link_paid'") " AS c",
            NULL, NULL),
        s_no_integer);
    json_t *row = json_array_get (rows, 0);
    assert (streq (json_string_value (json_object_get (row, "a")), "0"));
    assert (streq (json_string_value (json_object_get (row, "b")), "1"));
    assert (streq (json_string_value (json_object_get (row, "c")), "0"));
    json_decref (rows);

    //  The agent: away past its minutes mails once per absence.
    reply = s_test_call (store, "notify-set",
                         json_pack ("{s:s, s:s, s:b, s:s, s:i}", "firm", "acme", "event",
                                    "agent_offline", "enabled", 1, "recipients", "it@acme.example",
                                    "minutes", 1));
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    zlistx_t *online = zlistx_new ();
    zlistx_add_end (online, "acme");
    assert (ml_notify_agents (store, mailer, online) == 0);
    zlistx_purge (online);
    assert (ml_notify_agents (store, mailer, online) == 0); //  away from now on
    assert (ml_db_execute (db,
                           "UPDATE notify_setting SET offline_since = offline_since - 61"
                           " WHERE event = 'agent_offline'",
                           NULL) == 1);
    assert (ml_notify_agents (store, mailer, online) == 1);
    assert (ml_notify_agents (store, mailer, online) == 0);
    assert (s_test_mails (mailer, "agent_offline") == 1);
    zlistx_destroy (&online);

    ml_payments_destroy (&payments);
    ml_payers_destroy (&payers);
    ml_mailer_destroy (&mailer);
    ml_store_destroy (&store);
    ml_selftest_remove (directory);
    ml_log_setup (NULL, saved);
    printf ("OK\n");
}
