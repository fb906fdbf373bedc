/*  ml_staff_postings: the postings op's filters and pages. See include/ml_staff_postings.h.

    The statement is assembled from the filters given, each a plain "column = ?" (never
    "? IS NULL OR ..."), so SQLite walks the index that fits: (firm, status, seq), (firm,
    client, seq), (firm, source, seq) or (firm, seq), backwards from the page's start, and stops
    after limit + 1 rows. Dates are days (UTC) of created_at: posting numbers grow with it (one
    writer, the core thread, stamps both), so a range of days becomes a range of posting
    numbers, each end found with one seek in (firm, created_at, seq); the created_at test stays
    in the statement, so a row is never listed outside its day.
*/
#include "ml_staff_postings.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_msg.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>
#include <time.h>

static const char *const s_schema[] = {
    "CREATE INDEX IF NOT EXISTS posting_firm_seq ON posting (firm_id, posting_seq)",
    "CREATE INDEX IF NOT EXISTS posting_firm_client ON posting (firm_id, client_number, "
    "posting_seq)",
    "CREATE INDEX IF NOT EXISTS posting_firm_source ON posting (firm_id, source, posting_seq)",
    "CREATE INDEX IF NOT EXISTS posting_firm_created ON posting (firm_id, created_at, "
    "posting_seq)",
};

int ml_staff_postings_schema (ml_store_t *store, char *error, size_t error_size)
{
    return ml_store_schema (ml_store_db (store), s_schema, sizeof s_schema / sizeof s_schema[0],
                            "postings indexes", error, error_size);
}

static const char *const s_filters[] = {"client",  "source",           "date_from",
                                        "date_to", "amount_min_minor", "amount_max_minor",
                                        "before",  "posting_uuid"};

bool ml_staff_postings_wanted (const json_t *request)
{
    for (size_t index = 0; index < sizeof s_filters / sizeof s_filters[0]; index++)
        if (json_object_get (request, s_filters[index]))
            return true;
    const char *status = json_string_value (json_object_get (request, "status"));
    return status && (streq (status, "waiting") || streq (status, "unresolved"));
}

//  A rejected posting is dealt with once reallocated (its history says so) or once its money
//  was given back (a reversal of its charge that did not fail): each a seek by posting.
#define S_REALLOCATED                                                                              \
    "EXISTS (SELECT 1 FROM posting_event e WHERE e.posting_uuid = p.posting_uuid"                  \
    " AND e.status = 'reallocated')"
#define S_REFUNDED                                                                                 \
    "EXISTS (SELECT 1 FROM charge c JOIN reversal v ON v.charge_key = c.charge_key"                \
    " WHERE c.posting_uuid = p.posting_uuid AND v.status NOT IN ('declined', 'error'))"

static bool s_integer_column (const char *name)
{
    size_t length = strlen (name);
    return (length > 6 && streq (name + length - 6, "_minor")) || streq (name, "posting_seq") ||
           streq (name, "attempts");
}

//  A day as YYYY-MM-DD that exists (2026-02-30 does not); the next day into next.
static bool s_day (const char *text, char *next, size_t size)
{
    if (!*text || !ml_msg_valid_date (text))
        return false;
    struct tm parts = {0};
    parts.tm_year = atoi (text) - 1900;
    parts.tm_mon = atoi (text + 5) - 1;
    parts.tm_mday = atoi (text + 8);
    time_t seconds = timegm (&parts);
    seconds += 86400;
    struct tm after;
    gmtime_r (&seconds, &after);
    //  Four digits of year always, as the text it is compared with (strftime's %Y writes
    //  year 1 as "1"); after 9999-12-31 comes what sorts after any time of that day.
    if (after.tm_year + 1900 > 9999)
        snprintf (next, size, "9999-12-32");
    else
        //  (The year is 1 to 9999 here, the month and day a calendar's: the casts tell the
        //  compiler, which otherwise warns the text might not fit.)
        snprintf (next, size, "%04u-%02u-%02u", (unsigned)(after.tm_year + 1900) % 10000u,
                  (unsigned)(after.tm_mon + 1) % 100u, (unsigned)after.tm_mday % 100u);
    return true;
}

//  An optional whole-number member in [low, high]: 0 absent, 1 read, -1 wrong.
static int s_integer (const json_t *request, const char *key, int64_t low, int64_t high,
                      int64_t *value)
{
    json_t *member = json_object_get (request, key);
    if (!member)
        return 0;
    if (!json_is_integer (member) || json_integer_value (member) < low ||
        json_integer_value (member) > high)
        return -1;
    *value = json_integer_value (member);
    return 1;
}

typedef struct {
    char sql[2048];
    char picture[32];
    ml_db_value_t values[32];
    size_t count;
} s_statement_t;

static void s_add (s_statement_t *self, const char *clause, char kind, const char *text,
                   int64_t number)
{
    strncat (self->sql, clause, sizeof self->sql - strlen (self->sql) - 1);
    if (kind) {
        assert (self->count < sizeof self->values / sizeof self->values[0] - 1);
        self->picture[self->count] = kind;
        self->values[self->count].text = text;
        self->values[self->count].number = number;
        self->count++;
    }
}

//  The first posting number at or after the start of day (up: true), or the last one before
//  the start of day (up: false); 0 when there is none. -1 on a store error.
static int64_t s_seq_at (ml_db_t *db, const char *firm, const char *day, bool up)
{
    ml_db_query_t *query =
        ml_db_query (db,
                     up ? "SELECT posting_seq FROM posting WHERE firm_id = ? AND created_at >= ?"
                          " ORDER BY firm_id, created_at, posting_seq LIMIT 1"
                        : "SELECT posting_seq FROM posting WHERE firm_id = ? AND created_at < ?"
                          " ORDER BY firm_id DESC, created_at DESC, posting_seq DESC LIMIT 1",
                     "ss", firm, day);
    if (!query)
        return -1;
    int64_t seq = 0;
    int rc = ml_db_fetch (query);
    if (rc == 1 && ml_db_int64 (query, 0, &seq) != 0)
        rc = -1;
    ml_db_query_destroy (&query);
    return rc < 0 ? -1 : seq;
}

static json_t *s_store_failed (ml_db_t *db)
{
    return ml_admin_store_failed (db, "core store", "listing postings (filtered)");
}

//  The reply; with explain, the store's plan of the page's statement in place of its rows
//  (the selftest checks every filter walks an index).
static json_t *s_postings (ml_store_t *store, const json_t *request, bool explain)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *status = ml_admin_argument (request, "status", 16, problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 63, problem, sizeof problem);
    const char *source = ml_admin_argument (request, "source", 32, problem, sizeof problem);
    const char *from = ml_admin_argument (request, "date_from", 10, problem, sizeof problem);
    const char *to = ml_admin_argument (request, "date_to", 10, problem, sizeof problem);
    const char *uuid = ml_admin_argument (request, "posting_uuid", 36, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm)
        return ml_admin_error ("'firm' is required with filters or pages");
    const char *statuses[] = {"pending",  "delivered", "posted",    "rejected",
                              "reversed", "waiting",   "unresolved"};
    size_t known = 0;
    while (status && known < 7 && !streq (status, statuses[known]))
        known++;
    if (known == 7)
        return ml_admin_error ("'status' must be pending, delivered, posted, rejected, reversed, "
                               "waiting or unresolved, not '%s'",
                               status);
    char from_next[16], to_next[16];
    if (from && !s_day (from, from_next, sizeof from_next))
        return ml_admin_error ("'date_from' must be a day as YYYY-MM-DD, not '%s'", from);
    if (to && !s_day (to, to_next, sizeof to_next))
        return ml_admin_error ("'date_to' must be a day as YYYY-MM-DD, not '%s'", to);
    if (from && to && strcmp (from, to) > 0)
        return ml_admin_error ("'date_from' (%s) is after 'date_to' (%s)", from, to);
    int64_t low = 0, high = 0, before = 0, limit = 50;
    int has_low = s_integer (request, "amount_min_minor", 0, INT64_MAX, &low);
    int has_high = s_integer (request, "amount_max_minor", 0, INT64_MAX, &high);
    if (has_low < 0 || has_high < 0)
        return ml_admin_error ("'amount_min_minor' and 'amount_max_minor' must be whole numbers "
                               "of minor units, 0 or more");
    if (has_low && has_high && low > high)
        return ml_admin_error ("the smallest amount is above the largest");
    if (s_integer (request, "before", 1, INT64_MAX, &before) < 0)
        return ml_admin_error ("'before' must be a posting number (a whole number above 0)");
    if (s_integer (request, "limit", 1, 1000, &limit) < 0)
        return ml_admin_error ("'limit' must be a whole number from 1 to 1000 with filters");

    ml_db_t *db = ml_store_db (store);
    //  Days become posting numbers: the page starts below the day after date_to.
    if (to) {
        int64_t last = s_seq_at (db, firm, to_next, false);
        if (last < 0)
            return s_store_failed (db);
        if (last == 0)
            return ml_admin_ok (json_pack ("{s:[]}", "postings"));
        if (!before || before > last + 1)
            before = last + 1;
    }
    int64_t first = 0;
    if (from) {
        first = s_seq_at (db, firm, from, true);
        if (first < 0)
            return s_store_failed (db);
        if (first == 0)
            return ml_admin_ok (json_pack ("{s:[]}", "postings"));
    }
    s_statement_t statement;
    memset (&statement, 0, sizeof statement);
    //  The payment a posting belongs to: its card charge's, or its refund's, void's or
    //  chargeback's (each posting_uuid is unique in those tables, so one seek each).
    s_add (&statement,
           "SELECT p.posting_seq, p.posting_uuid, p.firm_id, p.source, p.created_at,"
           " p.received_on, p.client_number, p.payer_name, p.currency, p.amount_minor, p.status,"
           " p.receipt_id, p.reason, p.attempts, p.reverses,"
           " COALESCE ((SELECT c.payment_uuid FROM charge c WHERE c.posting_uuid = p.posting_uuid),"
           "  (SELECT c.payment_uuid FROM reversal r JOIN charge c ON c.charge_key = r.charge_key"
           "   WHERE r.posting_uuid = p.posting_uuid)) AS payment_uuid,"
           " CASE WHEN p.status <> 'rejected' THEN NULL WHEN " S_REALLOCATED " THEN 'reallocated'"
           "  WHEN " S_REFUNDED " THEN 'refunded' END AS settled"
           " FROM posting p WHERE p.firm_id = ?",
           's', firm, 0);
    if (status && streq (status, "waiting"))
        s_add (&statement, " AND p.status IN ('pending', 'delivered')", 0, NULL, 0);
    else if (status && streq (status, "unresolved"))
        s_add (&statement,
               " AND p.status = 'rejected' AND NOT " S_REALLOCATED " AND NOT " S_REFUNDED, 0, NULL,
               0);
    else if (status)
        s_add (&statement, " AND p.status = ?", 's', status, 0);
    if (uuid)
        s_add (&statement, " AND p.posting_uuid = ?", 's', uuid, 0);
    if (client)
        s_add (&statement, " AND p.client_number = ?", 's', client, 0);
    if (source)
        s_add (&statement, " AND p.source = ?", 's', source, 0);
    if (before)
        s_add (&statement, " AND p.posting_seq < ?", 'i', NULL, before);
    if (first)
        s_add (&statement, " AND p.posting_seq >= ?", 'i', NULL, first);
    if (from)
        s_add (&statement, " AND p.created_at >= ?", 's', from, 0);
    if (to)
        s_add (&statement, " AND p.created_at < ?", 's', to_next, 0);
    if (has_low)
        s_add (&statement, " AND p.amount_minor >= ?", 'i', NULL, low);
    if (has_high)
        s_add (&statement, " AND p.amount_minor <= ?", 'i', NULL, high);
    //  One row more than the page says whether there is a next one. Waiting postings are few
    //  among millions: found through (firm, status, seq) for each of the two states and then
    //  sorted ("+" keeps SQLite from walking every posting in order to skip the rest).
    s_add (&statement,
           status && streq (status, "waiting") ? " ORDER BY +p.posting_seq DESC LIMIT ?"
                                               : " ORDER BY p.posting_seq DESC LIMIT ?",
           'i', NULL, limit + 1);
    char sql[sizeof statement.sql + 32];
    snprintf (sql, sizeof sql, "%s%s", explain ? "EXPLAIN QUERY PLAN " : "", statement.sql);
    json_t *rows = ml_store_rows (ml_db_query_values (db, sql, statement.picture, statement.values),
                                  s_integer_column);
    if (!rows)
        return s_store_failed (db);
    json_t *reply = json_pack ("{s:o}", "postings", rows);
    if ((int64_t)json_array_size (rows) > limit) {
        json_array_remove (rows, (size_t)limit);
        json_object_set_new (reply, "next_before",
                             json_integer (json_integer_value (json_object_get (
                                 json_array_get (rows, (size_t)limit - 1), "posting_seq"))));
    }
    return ml_admin_ok (reply);
}

json_t *ml_staff_postings (ml_store_t *store, const json_t *request)
{
    return s_postings (store, request, false);
}

//  ---------------------------------------------------------------------------------------
//  Selftest.

static void s_posting (ml_db_t *db, const char *firm, int seq, const char *created,
                       const char *client, const char *source, const char *status, int64_t amount)
{
    char uuid[40];
    snprintf (uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", seq);
    assert (ml_db_execute (db,
                           "INSERT INTO posting (posting_seq, posting_uuid, firm_id, source,"
                           " created_at, received_on, account_number, client_number,"
                           " payer_name, payer_email, currency, amount_minor, ar_message,"
                           " processor_txn, status, updated_at) VALUES (?, ?, ?, ?, ?,"
                           " substr (?, 1, 10), 'OP-1', ?, '', '', 'USD', ?, '', '', ?, ?)",
                           "issssssiss", (int64_t)seq, uuid, firm, source, created, created, client,
                           amount, status, created) == 1);
}

static json_t *s_list (ml_store_t *store, const char *text)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    assert (ml_staff_postings_wanted (request) || !json_object_get (request, "client"));
    json_t *reply = ml_staff_postings (store, request);
    json_decref (request);
    return reply;
}

//  The posting numbers of a reply, as "5 3 1", or its error.
static const char *s_seqs (json_t *reply, char *buf, size_t size)
{
    *buf = 0;
    if (!json_is_true (json_object_get (reply, "ok"))) {
        snprintf (buf, size, "error: %s", json_string_value (json_object_get (reply, "error")));
        return buf;
    }
    size_t index;
    json_t *row;
    json_array_foreach (json_object_get (reply, "postings"), index, row)
        snprintf (buf + strlen (buf), size - strlen (buf), "%s%lld", index ? " " : "",
                  (long long)json_integer_value (json_object_get (row, "posting_seq")));
    return buf;
}

static void s_expect (ml_store_t *store, const char *text, const char *expected)
{
    char seqs[256];
    json_t *reply = s_list (store, text);
    s_seqs (reply, seqs, sizeof seqs);
    if (!streq (seqs, expected))
        fprintf (stderr, "\n%s: got '%s', expected '%s'\n", text, seqs, expected);
    assert (streq (seqs, expected));
    json_decref (reply);
}

void ml_staff_postings_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_staff_postings: ");
    char directory[128], connection[300], error[512];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (connection, sizeof connection,
              "Driver=SQLite3;Database=%s/core.db;StepAPI=1;FKSupport=1;Timeout=5000", directory);
    ml_store_t *store = ml_store_new (connection, error, sizeof error);
    assert (store);
    assert (ml_staff_postings_schema (store, error, sizeof error) == 0);
    assert (ml_staff_postings_schema (store, error, sizeof error) == 0); //  idempotent
    ml_db_t *db = ml_store_db (store);
    //  The payments' tables as far as this class reads them (ml_payments makes the real ones).
    assert (ml_db_execute (db,
                           "CREATE TABLE charge (charge_key TEXT PRIMARY KEY, payment_uuid TEXT,"
                           " posting_uuid TEXT NOT NULL UNIQUE)",
                           NULL) >= 0);
    assert (ml_db_execute (db,
                           "CREATE TABLE reversal (reversal_key TEXT PRIMARY KEY, charge_key TEXT,"
                           " posting_uuid TEXT NOT NULL UNIQUE, status TEXT NOT NULL)",
                           NULL) >= 0);
    assert (ml_db_execute (db, "CREATE INDEX reversal_charge ON reversal (charge_key)", NULL) >= 0);
    assert (ml_db_execute (db,
                           "INSERT INTO charge VALUES ('P1:operating', 'P1',"
                           " '00000000-0000-4000-8000-000000000002')",
                           NULL) == 1);
    assert (ml_db_execute (db,
                           "INSERT INTO reversal VALUES ('P1:operating:refund:1', 'P1:operating',"
                           " '00000000-0000-4000-8000-000000000005', 'declined')",
                           NULL) == 1);
    assert (ml_store_firm_add (store, "acme", "Acme LLP", "k1", "OP-1") == 0);
    assert (ml_store_firm_add (store, "beta", "Beta LLP", "k2", "OP-1") == 0);
    s_posting (db, "acme", 1, "2026-11-01T10:00:00.000Z", "C-1", "staff", "posted", 1000);
    s_posting (db, "acme", 2, "2026-11-02T10:00:00.000Z", "C-2", "payment", "rejected", 2500);
    s_posting (db, "beta", 3, "2026-11-02T11:00:00.000Z", "C-1", "staff", "rejected", 1000);
    s_posting (db, "acme", 4, "2026-11-03T00:00:00.000Z", "C-1", "payment", "pending", 5000);
    s_posting (db, "acme", 5, "2026-11-03T23:59:59.999Z", "C-1", "refund", "delivered", 700);
    s_posting (db, "acme", 6, "2026-11-05T08:00:00.000Z", "C-2", "reallocation", "posted", 2500);

    //  Which requests come here: the plain op stays ml_store_postings'.
    json_t *plain = json_pack ("{s:s, s:s, s:i}", "firm", "acme", "status", "posted", "limit", 5);
    assert (!ml_staff_postings_wanted (plain));
    json_object_set_new (plain, "status", json_string ("waiting"));
    assert (ml_staff_postings_wanted (plain));
    json_decref (plain);

    //  One firm only, newest first; each filter narrows; the other firm's never shows.
    s_expect (store, "{\"firm\": \"acme\", \"before\": 100}", "6 5 4 2 1");
    s_expect (store, "{\"firm\": \"acme\", \"client\": \"C-1\"}", "5 4 1");
    s_expect (store, "{\"firm\": \"beta\", \"client\": \"C-1\"}", "3");
    s_expect (store, "{\"firm\": \"acme\", \"status\": \"waiting\"}", "5 4");
    //  Rejected and not dealt with: 2 (a card charge's posting, nothing reallocated or given
    //  back yet); then given back (a refund of its charge), it is settled.
    s_expect (store, "{\"firm\": \"acme\", \"status\": \"unresolved\"}", "2");
    s_expect (store, "{\"firm\": \"beta\", \"status\": \"unresolved\"}", "3");
    s_expect (store, "{\"firm\": \"acme\", \"status\": \"rejected\", \"client\": \"C-2\"}", "2");
    s_expect (store, "{\"firm\": \"acme\", \"source\": \"payment\"}", "4 2");
    //  The payment of a card charge's posting, and of a refund's.
    json_t *paid = s_list (store, "{\"firm\": \"acme\", \"amount_max_minor\": 2500}");
    json_t *rows = json_object_get (paid, "postings");
    assert (json_array_size (rows) == 4);
    assert (streq (json_string_value (json_object_get (json_array_get (rows, 1), "payment_uuid")),
                   "P1")); //  5, the refund
    assert (streq (json_string_value (json_object_get (json_array_get (rows, 2), "payment_uuid")),
                   "P1")); //  2, the charge
    json_decref (paid);
    s_expect (store,
              "{\"firm\": \"acme\", \"posting_uuid\": \"00000000-0000-4000-8000-000000000004\"}",
              "4");
    s_expect (store,
              "{\"firm\": \"beta\", \"posting_uuid\": \"00000000-0000-4000-8000-000000000004\"}",
              "");
    s_expect (store, "{\"firm\": \"acme\", \"amount_min_minor\": 1000, \"amount_max_minor\": 2500}",
              "6 2 1");
    //  Days are whole UTC days, both ends included.
    s_expect (store,
              "{\"firm\": \"acme\", \"date_from\": \"2026-11-02\", \"date_to\": \"2026-11-03\"}",
              "5 4 2");
    s_expect (store, "{\"firm\": \"acme\", \"date_from\": \"2026-11-03\"}", "6 5 4");
    s_expect (store, "{\"firm\": \"acme\", \"date_to\": \"2026-11-01\"}", "1");
    s_expect (store,
              "{\"firm\": \"acme\", \"date_from\": \"2026-11-04\", \"date_to\": \"2026-11-04\"}",
              "");
    s_expect (store, "{\"firm\": \"acme\", \"date_from\": \"2026-12-01\"}", "");
    s_expect (store, "{\"firm\": \"acme\", \"date_to\": \"2026-10-01\"}", "");
    s_expect (store,
              "{\"firm\": \"acme\", \"client\": \"C-1\", \"date_to\": \"2026-11-03\", "
              "\"status\": \"pending\"}",
              "4");

    //  Pages: next_before leads on, and the last page has none.
    json_t *page = s_list (store, "{\"firm\": \"acme\", \"limit\": 2, \"client\": \"C-1\"}");
    char seqs[64];
    assert (streq (s_seqs (page, seqs, sizeof seqs), "5 4"));
    assert (json_integer_value (json_object_get (page, "next_before")) == 4);
    json_decref (page);
    page = s_list (store, "{\"firm\": \"acme\", \"limit\": 2, \"client\": \"C-1\", \"before\": 4}");
    assert (streq (s_seqs (page, seqs, sizeof seqs), "1"));
    assert (!json_object_get (page, "next_before"));
    json_t *row = json_array_get (json_object_get (page, "postings"), 0);
    assert (streq (json_string_value (json_object_get (row, "client_number")), "C-1") &&
            json_integer_value (json_object_get (row, "amount_minor")) == 1000 &&
            json_is_null (json_object_get (row, "payment_uuid")));
    json_decref (page);

    //  Money given back (a refund that did not fail) or a reallocation settles a rejection.
    assert (ml_db_execute (db, "UPDATE reversal SET status = 'approved'", NULL) == 1);
    s_expect (store, "{\"firm\": \"acme\", \"status\": \"unresolved\"}", "");
    json_t *settled = s_list (store, "{\"firm\": \"acme\", \"status\": \"rejected\"}");
    assert (streq (json_string_value (json_object_get (
                       json_array_get (json_object_get (settled, "postings"), 0), "settled")),
                   "refunded"));
    json_decref (settled);
    assert (ml_db_execute (db,
                           "INSERT INTO posting_event (posting_uuid, at, status, detail) VALUES"
                           " ('00000000-0000-4000-8000-000000000003', '2026-11-03T00:00:00Z',"
                           " 'reallocated', 'as X by staff')",
                           NULL) == 1);
    s_expect (store, "{\"firm\": \"beta\", \"status\": \"unresolved\"}", "");
    settled = s_list (store, "{\"firm\": \"beta\", \"before\": 9}");
    assert (streq (json_string_value (json_object_get (
                       json_array_get (json_object_get (settled, "postings"), 0), "settled")),
                   "reallocated"));
    json_decref (settled);

    //  Bad members are refused with the reason, never read as "no filter".
    s_expect (store, "{\"client\": \"C-1\"}", "error: 'firm' is required with filters or pages");
    s_expect (store, "{\"firm\": \"acme\", \"status\": \"lost\", \"client\": \"C-1\"}",
              "error: 'status' must be pending, delivered, posted, rejected, reversed, waiting or "
              "unresolved, not 'lost'");
    s_expect (store, "{\"firm\": \"acme\", \"date_from\": \"2026-02-30\"}",
              "error: 'date_from' must be a day as YYYY-MM-DD, not '2026-02-30'");
    s_expect (store, "{\"firm\": \"acme\", \"date_to\": \"3 May\"}",
              "error: 'date_to' must be a day as YYYY-MM-DD, not '3 May'");
    s_expect (store,
              "{\"firm\": \"acme\", \"date_from\": \"2026-11-04\", \"date_to\": \"2026-11-01\"}",
              "error: 'date_from' (2026-11-04) is after 'date_to' (2026-11-01)");
    s_expect (store, "{\"firm\": \"acme\", \"amount_min_minor\": -1}",
              "error: 'amount_min_minor' and 'amount_max_minor' must be whole numbers of minor "
              "units, 0 or more");
    s_expect (store, "{\"firm\": \"acme\", \"amount_min_minor\": 9, \"amount_max_minor\": 8}",
              "error: the smallest amount is above the largest");
    s_expect (store, "{\"firm\": \"acme\", \"before\": \"x\"}",
              "error: 'before' must be a posting number (a whole number above 0)");
    s_expect (store, "{\"firm\": \"acme\", \"before\": 9, \"limit\": 0}",
              "error: 'limit' must be a whole number from 1 to 1000 with filters");

    //  Every filter walks an index: no plan reads the posting table in order to skip rows
    //  (a walk of the whole firm for a few waiting postings, say), none sorts what it walked,
    //  but the few waiting postings found through their states.
    const char *requests[] = {
        "{\"firm\": \"acme\", \"before\": 9}",
        "{\"firm\": \"acme\", \"client\": \"C-1\", \"before\": 9}",
        "{\"firm\": \"acme\", \"status\": \"rejected\"}",
        "{\"firm\": \"acme\", \"status\": \"waiting\"}",
        "{\"firm\": \"acme\", \"status\": \"unresolved\"}",
        "{\"firm\": \"acme\", \"source\": \"reversal\"}",
        "{\"firm\": \"acme\", \"posting_uuid\": \"00000000-0000-4000-8000-000000000004\"}",
        "{\"firm\": \"acme\", \"date_from\": \"2026-11-02\", \"date_to\": \"2026-11-03\"}",
    };
    for (size_t index = 0; index < sizeof requests / sizeof requests[0]; index++) {
        json_t *request = json_loads (requests[index], 0, NULL);
        json_t *plan = s_postings (store, request, true);
        assert (json_is_true (json_object_get (plan, "ok")));
        bool waiting = strstr (requests[index], "waiting") != NULL;
        size_t step;
        json_t *line;
        json_array_foreach (json_object_get (plan, "postings"), step, line)
        {
            const char *detail = json_string_value (json_object_get (line, "detail"));
            if (verbose)
                printf ("\n   %s: %s", requests[index], detail);
            //  The main walk is the first step; subqueries (the payment) follow.
            if (step == 0) {
                assert (strstr (detail, "SEARCH p USING") == detail);
                assert (!waiting || strstr (detail, "posting_firm_status"));
            }
            assert (!(strstr (detail, "SCAN ") == detail && !strstr (detail, "USING")));
            assert (waiting || !strstr (detail, "TEMP B-TREE"));
        }
        json_decref (plan);
        json_decref (request);
    }
    json_t *days = ml_store_rows (
        ml_db_query (db,
                     "EXPLAIN QUERY PLAN SELECT posting_seq FROM posting WHERE firm_id = 'acme'"
                     " AND created_at >= '2026-11-02' ORDER BY firm_id, created_at, posting_seq"
                     " LIMIT 1",
                     NULL),
        s_integer_column);
    assert (strstr (json_string_value (json_object_get (json_array_get (days, 0), "detail")),
                    "posting_firm_created"));
    json_decref (days);
    ml_store_destroy (&store);
    ml_selftest_remove (directory);
    printf ("OK\n");
}
