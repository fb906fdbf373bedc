/*  ml_payers: payers, their payment methods and associations. See include/ml_payers.h. */
#include "ml_payers.h"
#include "ml_admin.h"
#include "ml_log.h"
#include "ml_selftest_support.h"
#include "ml_store.h"
#include "ml_text.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Field sizes, in bytes. Outside input is refused beyond them.
#define S_FIRM_MAX        63
#define S_NAME_MAX        200
#define S_EMAIL_MAX       254
#define S_PHONE_MAX       40
#define S_TOKEN_MAX       128
#define S_STAFF_MAX       64
#define S_FIELD_MAX       32
#define S_SEARCH_MAX      200
#define S_CARD_DIGITS_MIN 13 //  card numbers have 13 to 19 digits (ml_text.h)
#define S_CARD_DIGITS_MAX 19

//  Caps on what one payer can accumulate, so no payer grows without bound.
#define S_MAX_METHODS      20
#define S_MAX_ASSOCIATIONS 1000
#define S_LIST_DEFAULT     100
#define S_LIST_MAX         1000

struct _ml_payers_t {
    ml_db_t *db;                       //  borrowed from the store
    char staff_field[S_FIELD_MAX + 1]; //  ml_payers_staff_default's answer
};

//  The number an association is about: the one its level names. The unique index, the
//  duplicate check and the ordering all use this one expression.
#define S_TARGET_SQL                                                                               \
    "CASE level WHEN 'client' THEN client_number WHEN 'matter' THEN matter_number"                 \
    " ELSE invoice_number END"

static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS payer ("
    " payer_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " firm_id TEXT NOT NULL REFERENCES firm (firm_id), name TEXT NOT NULL,"
    " email TEXT NOT NULL, phone TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    //  The e-mail is not a key, but two payers of a firm never share one (any case).
    "CREATE UNIQUE INDEX IF NOT EXISTS payer_email ON payer (firm_id, email COLLATE NOCASE)",
    "CREATE INDEX IF NOT EXISTS payer_name ON payer (firm_id, name)",
    "CREATE TABLE IF NOT EXISTS payment_method ("
    " method_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " payer_id INTEGER NOT NULL REFERENCES payer (payer_id),"
    " processor_token TEXT NOT NULL,"
    " brand TEXT NOT NULL CHECK (brand IN ('visa', 'mastercard', 'amex', 'discover', 'other')),"
    " last4 TEXT NOT NULL CHECK (length (last4) = 4),"
    " exp_month INTEGER NOT NULL CHECK (exp_month BETWEEN 1 AND 12),"
    " exp_year INTEGER NOT NULL CHECK (exp_year BETWEEN 2000 AND 2099),"
    " created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS payment_method_payer ON payment_method (payer_id)",
    //  The method a payer chose as the default in the portal (at most one per payer). A table
    //  of its own, so a store made before it gets it by CREATE TABLE IF NOT EXISTS.
    "CREATE TABLE IF NOT EXISTS payment_method_default ("
    " payer_id INTEGER PRIMARY KEY REFERENCES payer (payer_id),"
    " method_id INTEGER NOT NULL UNIQUE REFERENCES payment_method (method_id),"
    " updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS association ("
    " association_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " payer_id INTEGER NOT NULL REFERENCES payer (payer_id),"
    " level TEXT NOT NULL CHECK (level IN ('client', 'matter', 'invoice')),"
    " client_number TEXT, client_name TEXT, matter_number TEXT, matter_description TEXT,"
    " invoice_number TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL,"
    " CHECK (" S_TARGET_SQL " IS NOT NULL))",
    "CREATE UNIQUE INDEX IF NOT EXISTS association_target ON association"
    " (payer_id, level, (" S_TARGET_SQL "))",
    "CREATE TABLE IF NOT EXISTS staff_preference ("
    " staff TEXT PRIMARY KEY, default_field TEXT NOT NULL CHECK (default_field IN"
    " ('client-name', 'client-number', 'matter-number', 'matter-description',"
    " 'invoice-number')), updated_at TEXT NOT NULL)",
};

//  The columns of each reply shape, so every op answers with the same objects.
#define S_PAYER_SQL                                                                                \
    "SELECT payer_id, firm_id, name, email, phone, created_at, updated_at FROM payer"
#define S_METHOD_SQL                                                                               \
    "SELECT method_id, payer_id, processor_token, brand, last4, exp_month, exp_year,"              \
    " created_at FROM payment_method"
#define S_ASSOCIATION_SQL                                                                          \
    "SELECT association_id, payer_id, level, client_number, client_name, matter_number,"           \
    " matter_description, invoice_number, created_at, created_by FROM association"
#define S_ASSOCIATION_ORDER                                                                        \
    " ORDER BY CASE level WHEN 'client' THEN 0 WHEN 'matter' THEN 1 ELSE 2 END, " S_TARGET_SQL     \
    ", association_id"
//  What payer-show reads (s_row's text for the payer), also asked ahead by ml_payers_prefetch_show.
#define S_PAYER_BY_ID_SQL           S_PAYER_SQL " WHERE payer_id = ?"
#define S_METHODS_OF_PAYER_SQL      S_METHOD_SQL " WHERE payer_id = ? ORDER BY method_id"
#define S_ASSOCIATIONS_OF_PAYER_SQL S_ASSOCIATION_SQL " WHERE payer_id = ?" S_ASSOCIATION_ORDER

static const char *s_brands[] = {"visa", "mastercard", "amex", "discover", "other", NULL};
//  Association levels, narrowest last: a level keeps its own number and those above it.
static const char *s_levels[] = {"client", "matter", "invoice", NULL};

//  ---------------------------------------------------------------------------------------
//  Checking outside input. Each check sets problem only if no earlier one did, so a
//  handler runs them all and reports the first.

static void s_check (char *problem, size_t size, bool ok, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void s_check (char *problem, size_t size, bool ok, const char *format, ...)
{
    if (ok || *problem)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (problem, size, format, args);
    va_end (args);
}

static void s_require (char *problem, size_t size, const char *key, bool present)
{
    s_check (problem, size, present, "'%s' is required", key);
}

//  An integer argument from low to high, or 0 when absent (every caller's range excludes
//  0). Ids are JSON integers: "12" or 12.0 is refused, not converted.
static int64_t s_integer_argument (const json_t *request, const char *key, int64_t low,
                                   int64_t high, char *problem, size_t size)
{
    json_t *value = json_object_get (request, key);
    if (!value || json_is_null (value) || *problem)
        return 0;
    bool ok = json_is_integer (value) && json_integer_value (value) >= low &&
              json_integer_value (value) <= high;
    if (high == INT64_MAX)
        s_check (problem, size, ok, "'%s' must be a whole number of at least %lld", key,
                 (long long)low);
    else
        s_check (problem, size, ok, "'%s' must be a whole number from %lld to %lld", key,
                 (long long)low, (long long)high);
    return ok ? (int64_t)json_integer_value (value) : 0;
}

static int64_t s_id_argument (const json_t *request, const char *key, char *problem, size_t size)
{
    int64_t id = s_integer_argument (request, key, 1, INT64_MAX, problem, size);
    s_require (problem, size, key, id > 0);
    return id;
}

//  Printable text with something in it: no control bytes (they would garble logs and
//  screens), not only spaces.
static bool s_is_text (const char *text)
{
    bool visible = false;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++) {
        if (*cursor < 0x20 || *cursor == 0x7f)
            return false;
        visible = visible || *cursor != ' ';
    }
    return visible;
}

//  Looks like an e-mail: one @ with something before it, a dot inside the domain (not at
//  its ends, never two in a row), no spaces or control bytes anywhere.
static bool s_is_email (const char *email)
{
    for (const unsigned char *cursor = (const unsigned char *)email; *cursor; cursor++)
        if (*cursor <= ' ' || *cursor == 0x7f)
            return false;
    const char *at = strchr (email, '@');
    if (!at || at == email || strchr (at + 1, '@'))
        return false;
    const char *domain = at + 1;
    return strchr (domain, '.') && domain[0] != '.' && domain[strlen (domain) - 1] != '.' &&
           !strstr (domain, "..");
}

//  Only characters from allowed, and at least minimum digits among them.
static bool s_made_of (const char *text, const char *allowed, size_t minimum_digits)
{
    size_t digits = 0;
    for (const char *cursor = text; *cursor; cursor++) {
        if (!strchr (allowed, *cursor))
            return false;
        digits += isdigit ((unsigned char)*cursor) ? 1 : 0;
    }
    return digits >= minimum_digits;
}

#define S_DIGITS      "0123456789"
#define S_TOKEN_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" S_DIGITS "_-:."
#define S_PHONE_CHARS S_DIGITS " +-()."

//  Index of text in a NULL-terminated list, or -1 (also for a NULL text).
static int s_index (const char *text, const char **list)
{
    for (int index = 0; text && list[index]; index++)
        if (strcmp (text, list[index]) == 0)
            return index;
    return -1;
}

static bool s_listed (const char *text, const char **list)
{
    return s_index (text, list) >= 0;
}

//  The checks a payer's fields share between payer-add and payer-edit (NULL: not given).
static void s_check_payer (char *problem, size_t size, const char *name, const char *email,
                           const char *phone)
{
    s_check (problem, size, !name || s_is_text (name),
             "'name' must be 1 to %d bytes of printable text", S_NAME_MAX);
    s_check (problem, size, !email || s_is_email (email),
             "'email' must look like an e-mail address (one @, a dot in the domain, no spaces)");
    s_check (problem, size, !phone || !*phone || s_made_of (phone, S_PHONE_CHARS, 1),
             "'phone' may hold only digits, spaces and + - ( ) . (up to %d)", S_PHONE_MAX);
}

//  ---------------------------------------------------------------------------------------
//  Talking to the store.

//  Log what failed. Never a value: the diagnostic holds no parameters, so no token or
//  card data can reach the log this way.
static void s_log_failure (ml_payers_t *self, const char *what)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "payers: %s failed: %s", what,
            ml_log_escape (ml_db_error (self->db)->message, escaped, sizeof escaped));
}

//  Log a store failure and give the operator's answer.
static json_t *s_store_failed (ml_payers_t *self, const char *what)
{
    s_log_failure (self, what);
    return ml_admin_error ("the core store failed; see the core's log");
}

//  End an op's transaction: commit a success, roll back anything else, so a refused
//  request leaves nothing behind. Returns the reply, or a store error if commit failed.
static json_t *s_finish (ml_payers_t *self, json_t *reply)
{
    if (json_is_true (json_object_get (reply, "ok"))) {
        if (ml_db_commit (self->db) == 0)
            return reply;
        json_decref (reply);
        reply = s_store_failed (self, "commit");
    }
    ml_db_rollback (self->db);
    return reply;
}

//  The first column of the first row of a query, as an integer; destroys the query.
//  Returns 1 found, 0 no row, -1 error (a NULL query is an error).
static int s_first_int (ml_db_query_t *query, int64_t *value)
{
    if (!query)
        return -1;
    int rc = ml_db_fetch (query);
    if (rc == 1 && ml_db_int64 (query, 0, value) != 0)
        rc = -1;
    ml_db_query_destroy (&query);
    return rc;
}

//  Columns that are integers in JSON; every other column is text.
static bool s_integer_column (const char *name)
{
    static const char *integers[] = {"payer_id",  "method_id", "association_id",
                                     "exp_month", "exp_year",  NULL};
    return s_listed (name, integers);
}

//  Rows of this class's tables as JSON (ml_store_rows), with their integer columns.
static json_t *s_rows (ml_db_query_t *query)
{
    return ml_store_rows (query, s_integer_column);
}

//  One row by id: select is one of the S_*_SQL shapes, the WHERE clause names the id.
//  Returns 1 found (*row is a new reference), 0 unknown, -1 error.
static int s_row (ml_payers_t *self, json_t **row, const char *select, const char *id_column,
                  int64_t id)
{
    char sql[512];
    snprintf (sql, sizeof sql, "%s WHERE %s = ?", select, id_column);
    json_t *rows = s_rows (ml_db_query (self->db, sql, "i", id));
    *row = json_array_size (rows) == 1 ? json_incref (json_array_get (rows, 0)) : NULL;
    int rc = rows ? (*row ? 1 : 0) : -1;
    json_decref (rows);
    return rc;
}

static json_t *s_unknown (const char *what, int64_t id)
{
    return ml_admin_error ("unknown %s %lld", what, (long long)id);
}

//  Load one row by id into *row (new reference, NULL on failure). Returns NULL, or the
//  reply to give instead: the id is unknown, or the store failed.
static json_t *s_load (ml_payers_t *self, json_t **row, const char *select, const char *id_column,
                       int64_t id, const char *what)
{
    int found = s_row (self, row, select, id_column, id);
    if (found < 0)
        return s_store_failed (self, what);
    return found == 0 ? s_unknown (what, id) : NULL;
}

//  A success reply {key: the row}, for the row an op just wrote.
static json_t *s_reply_row (ml_payers_t *self, const char *key, const char *select,
                            const char *id_column, int64_t id)
{
    json_t *row = NULL;
    json_t *refused = s_load (self, &row, select, id_column, id, key);
    return refused ? refused : ml_admin_ok (json_pack ("{s:o}", key, row));
}

//  Returns NULL when the payer exists, else the reply to give.
static json_t *s_payer_missing (ml_payers_t *self, int64_t payer_id)
{
    json_t *payer = NULL;
    json_t *refused = s_load (self, &payer, S_PAYER_SQL, "payer_id", payer_id, "payer");
    json_decref (payer);
    return refused;
}

//  Returns NULL when the payer has room for one more row of a kind, else the reply.
static json_t *s_limit_reached (ml_payers_t *self, int64_t payer_id, const char *table,
                                int64_t limit, const char *what)
{
    char sql[128];
    snprintf (sql, sizeof sql, "SELECT COUNT (*) FROM %s WHERE payer_id = ?", table);
    int64_t count = 0;
    if (s_first_int (ml_db_query (self->db, sql, "i", payer_id), &count) != 1)
        return s_store_failed (self, "count");
    if (count < limit)
        return NULL;
    return ml_admin_error ("payer %lld already has %lld %s, the most allowed; remove one first",
                           (long long)payer_id, (long long)limit, what);
}

//  The id the last INSERT gave its row.
static int s_last_id (ml_payers_t *self, int64_t *id)
{
    return s_first_int (ml_db_query (self->db, "SELECT last_insert_rowid ()", NULL), id) == 1 ? 0
                                                                                              : -1;
}

//  Returns NULL when no other payer of the firm has the e-mail (any case), else the reply.
static json_t *s_email_taken (ml_payers_t *self, const char *firm_id, const char *email,
                              int64_t payer_id)
{
    int64_t other = 0;
    int rc = s_first_int (ml_db_query (self->db,
                                       "SELECT payer_id FROM payer WHERE firm_id = ?"
                                       " AND email = ? COLLATE NOCASE AND payer_id <> ?",
                                       "ssi", firm_id, email, payer_id),
                          &other);
    if (rc < 0)
        return s_store_failed (self, "e-mail lookup");
    if (rc == 0)
        return NULL;
    return ml_admin_error ("payer %lld of firm '%s' already uses the e-mail '%s'; two payers of "
                           "a firm cannot share one",
                           (long long)other, firm_id, email);
}

static json_t *s_associations (ml_payers_t *self, int64_t payer_id)
{
    return s_rows (ml_db_query (self->db, S_ASSOCIATIONS_OF_PAYER_SQL, "i", payer_id));
}

//  NULL for an empty string, so absent values are SQL NULL and JSON null.
static const char *s_or_null (const char *text)
{
    return text && *text ? text : NULL;
}

//  ---------------------------------------------------------------------------------------
//  Ops. Each runs inside the transaction ml_payers_execute opened and returns its reply.

static json_t *s_payer_add (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", S_FIRM_MAX, problem, sizeof problem);
    const char *name = ml_admin_argument (request, "name", S_NAME_MAX, problem, sizeof problem);
    const char *email = ml_admin_argument (request, "email", S_EMAIL_MAX, problem, sizeof problem);
    const char *phone = ml_admin_argument (request, "phone", S_PHONE_MAX, problem, sizeof problem);
    s_require (problem, sizeof problem, "firm", firm && *firm);
    s_require (problem, sizeof problem, "name", name);
    s_require (problem, sizeof problem, "email", email);
    s_check_payer (problem, sizeof problem, name, email, phone);
    if (*problem)
        return ml_admin_error ("%s", problem);
    int64_t exists = 0;
    int rc = s_first_int (
        ml_db_query (self->db, "SELECT COUNT (*) FROM firm WHERE firm_id = ?", "s", firm), &exists);
    if (rc != 1)
        return s_store_failed (self, "firm lookup");
    if (exists == 0)
        return ml_admin_error ("unknown firm '%s'", firm);
    json_t *taken = s_email_taken (self, firm, email, 0);
    if (taken)
        return taken;
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t payer_id = 0;
    if (ml_db_execute (self->db,
                       "INSERT INTO payer (firm_id, name, email, phone, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       "ssssss", firm, name, email, s_or_null (phone), now, now) != 1 ||
        s_last_id (self, &payer_id) != 0)
        return s_store_failed (self, "payer-add");
    ml_log (ML_LOG_NOTICE, "payers: payer %lld added", (long long)payer_id);
    return s_reply_row (self, "payer", S_PAYER_SQL, "payer_id", payer_id);
}

static json_t *s_payer_edit (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    int64_t payer_id = s_id_argument (request, "payer_id", problem, sizeof problem);
    const char *name = ml_admin_argument (request, "name", S_NAME_MAX, problem, sizeof problem);
    const char *email = ml_admin_argument (request, "email", S_EMAIL_MAX, problem, sizeof problem);
    const char *phone = ml_admin_argument (request, "phone", S_PHONE_MAX, problem, sizeof problem);
    //  A phone given as null or "" clears it, so "phone" counts whenever the key is there.
    bool phone_given = json_object_get (request, "phone") != NULL;
    s_check (problem, sizeof problem, name || email || phone_given,
             "say what to change: 'name', 'email' or 'phone'");
    s_check_payer (problem, sizeof problem, name, email, phone);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *payer = NULL;
    json_t *refused = s_load (self, &payer, S_PAYER_SQL, "payer_id", payer_id, "payer");
    if (refused)
        return refused;
    char firm_id[S_FIRM_MAX + 1];
    snprintf (firm_id, sizeof firm_id, "%s",
              json_string_value (json_object_get (payer, "firm_id")));
    json_decref (payer);
    json_t *taken = email ? s_email_taken (self, firm_id, email, payer_id) : NULL;
    if (taken)
        return taken;
    char now[32];
    ml_store_now (now, sizeof now);
    //  The payer keeps its id whatever changes, so its methods and associations follow it.
    if (ml_db_execute (self->db,
                       "UPDATE payer SET name = COALESCE (?, name), email = COALESCE (?, email),"
                       " phone = CASE WHEN ? = 1 THEN ? ELSE phone END, updated_at = ?"
                       " WHERE payer_id = ?",
                       "ssissi", name, email, (int64_t)(phone_given ? 1 : 0), s_or_null (phone),
                       now, payer_id) != 1)
        return s_store_failed (self, "payer-edit");
    return s_reply_row (self, "payer", S_PAYER_SQL, "payer_id", payer_id);
}

json_t *ml_payers_email_check (ml_payers_t *self, int64_t payer_id, const char *email)
{
    assert (self);
    char problem[256] = "";
    s_check_payer (problem, sizeof problem, NULL, email, NULL);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *payer = NULL;
    json_t *refused = s_load (self, &payer, S_PAYER_SQL, "payer_id", payer_id, "payer");
    if (refused)
        return refused;
    char firm_id[S_FIRM_MAX + 1];
    snprintf (firm_id, sizeof firm_id, "%s",
              json_string_value (json_object_get (payer, "firm_id")));
    json_decref (payer);
    return s_email_taken (self, firm_id, email, payer_id);
}

static json_t *s_payer_list (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", S_FIRM_MAX, problem, sizeof problem);
    const char *text = ml_admin_argument (request, "text", S_SEARCH_MAX, problem, sizeof problem);
    int64_t limit = s_integer_argument (request, "limit", 1, S_LIST_MAX, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    //  instr, not LIKE: a % or _ typed by staff is text to find, not a wildcard.
    json_t *payers = s_rows (ml_db_query (
        self->db,
        S_PAYER_SQL
        " WHERE (? IS NULL OR firm_id = ?) AND (? IS NULL"
        " OR instr (lower (name), lower (?)) > 0 OR instr (lower (email), lower (?)) > 0)"
        " ORDER BY name COLLATE NOCASE, payer_id LIMIT ?",
        "sssssi", firm, firm, text, text, text, limit ? limit : (int64_t)S_LIST_DEFAULT));
    if (!payers)
        return s_store_failed (self, "payer-list");
    return ml_admin_ok (json_pack ("{s:o}", "payers", payers));
}

static json_t *s_payer_show (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    int64_t payer_id = s_id_argument (request, "payer_id", problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *payer = NULL;
    json_t *refused = s_load (self, &payer, S_PAYER_SQL, "payer_id", payer_id, "payer");
    if (refused)
        return refused;
    json_t *methods = s_rows (ml_db_query (self->db, S_METHODS_OF_PAYER_SQL, "i", payer_id));
    json_t *associations = s_associations (self, payer_id);
    if (!methods || !associations) {
        json_decref (payer);
        json_decref (methods);
        json_decref (associations);
        return s_store_failed (self, "payer-show");
    }
    json_object_set_new (payer, "methods", methods);
    json_object_set_new (payer, "associations", associations);
    return ml_admin_ok (json_pack ("{s:o}", "payer", payer));
}

//  method-add; limited: at most S_MAX_METHODS a payer (ml_payers_method_add_once is not).
static json_t *s_method_add_limited (ml_payers_t *self, const json_t *request, bool limited)
{
    char problem[256] = "";
    int64_t payer_id = s_id_argument (request, "payer_id", problem, sizeof problem);
    const char *token = ml_admin_argument (request, "token", S_TOKEN_MAX, problem, sizeof problem);
    const char *brand = ml_admin_argument (request, "brand", 16, problem, sizeof problem);
    const char *last4 = ml_admin_argument (request, "last4", 4, problem, sizeof problem);
    int64_t month = s_integer_argument (request, "exp_month", 1, 12, problem, sizeof problem);
    int64_t year = s_integer_argument (request, "exp_year", 2000, 2099, problem, sizeof problem);
    s_require (problem, sizeof problem, "token", token && *token);
    s_require (problem, sizeof problem, "brand", brand);
    s_require (problem, sizeof problem, "last4", last4);
    s_require (problem, sizeof problem, "exp_month", month);
    s_require (problem, sizeof problem, "exp_year", year);
    //  No message below quotes the token: a refused token may be card data.
    s_check (problem, sizeof problem, !token || !ml_text_has_card_number (token),
             "that looks like a card number; store only the processor's token");
    s_check (problem, sizeof problem, !token || s_made_of (token, S_TOKEN_CHARS, 0),
             "'token' may hold only letters, digits and _ - : .");
    s_check (problem, sizeof problem, s_listed (brand, s_brands),
             "'brand' must be visa, mastercard, amex, discover or other");
    s_check (problem, sizeof problem,
             last4 && strlen (last4) == 4 && s_made_of (last4, S_DIGITS, 4),
             "'last4' must be exactly 4 digits");
    time_t clock = time (NULL);
    struct tm utc;
    gmtime_r (&clock, &utc);
    //  A card is good through the end of its expiry month.
    s_check (problem, sizeof problem,
             year * 12 + month >= (utc.tm_year + 1900) * 12 + utc.tm_mon + 1,
             "the card expired at the end of %02lld/%lld; ask the payer for a current card",
             (long long)month, (long long)year);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *refused = s_payer_missing (self, payer_id);
    if (!refused && limited)
        refused =
            s_limit_reached (self, payer_id, "payment_method", S_MAX_METHODS, "payment methods");
    if (refused)
        return refused;
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t method_id = 0;
    if (ml_db_execute (self->db,
                       "INSERT INTO payment_method (payer_id, processor_token, brand, last4,"
                       " exp_month, exp_year, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       "isssiis", payer_id, token, brand, last4, month, year, now) != 1 ||
        s_last_id (self, &method_id) != 0)
        return s_store_failed (self, "method-add");
    ml_log (ML_LOG_NOTICE, "payers: payer %lld: payment method %lld added", (long long)payer_id,
            (long long)method_id);
    return s_reply_row (self, "method", S_METHOD_SQL, "method_id", method_id);
}

static json_t *s_method_add (ml_payers_t *self, const json_t *request)
{
    return s_method_add_limited (self, request, true);
}

json_t *ml_payers_method_add_once (ml_payers_t *self, const json_t *request)
{
    assert (self && request);
    return s_method_add_limited (self, request, false);
}

//  Delete one row by its id: the removals of methods and associations.
static json_t *s_remove (ml_payers_t *self, const json_t *request, const char *table,
                         const char *id_column, const char *what)
{
    char problem[256] = "";
    int64_t id = s_id_argument (request, id_column, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    char sql[128];
    snprintf (sql, sizeof sql, "DELETE FROM %s WHERE %s = ?", table, id_column);
    int64_t removed = ml_db_execute (self->db, sql, "i", id);
    if (removed < 0)
        return s_store_failed (self, table);
    if (removed == 0)
        return s_unknown (what, id);
    ml_log (ML_LOG_NOTICE, "payers: %s %lld removed", what, (long long)id);
    return ml_admin_ok (json_pack ("{s:I}", "removed", (json_int_t)id));
}

static json_t *s_method_remove (ml_payers_t *self, const json_t *request)
{
    //  A default choice goes with its method (in the op's one transaction).
    if (ml_db_execute (self->db, "DELETE FROM payment_method_default WHERE method_id = ?", "i",
                       (int64_t)json_integer_value (json_object_get (request, "method_id"))) < 0)
        return s_store_failed (self, "method-remove");
    return s_remove (self, request, "payment_method", "method_id", "payment method");
}

static json_t *s_association_remove (ml_payers_t *self, const json_t *request)
{
    return s_remove (self, request, "association", "association_id", "association");
}

static json_t *s_association_list (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    int64_t payer_id = s_id_argument (request, "payer_id", problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *refused = s_payer_missing (self, payer_id);
    if (refused)
        return refused;
    json_t *associations = s_associations (self, payer_id);
    if (!associations)
        return s_store_failed (self, "association-list");
    return ml_admin_ok (json_pack ("{s:o}", "associations", associations));
}

//  A staff user's default field into buf. Returns 1 set, 0 none, -1 error.
static int s_staff_field (ml_payers_t *self, const char *staff, char *buf, size_t size)
{
    ml_db_query_t *query = ml_db_query (
        self->db, "SELECT default_field FROM staff_preference WHERE staff = ?", "s", staff);
    if (!query)
        return -1;
    int rc = ml_db_fetch (query);
    if (rc == 1)
        snprintf (buf, size, "%s", ml_db_text (query, 0) ? ml_db_text (query, 0) : "");
    ml_db_query_destroy (&query);
    return rc;
}

static json_t *s_staff_default (ml_payers_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *staff = ml_admin_argument (request, "staff", S_STAFF_MAX, problem, sizeof problem);
    const char *field = ml_admin_argument (request, "field", S_FIELD_MAX, problem, sizeof problem);
    s_require (problem, sizeof problem, "staff", staff);
    s_check (problem, sizeof problem, !staff || s_is_text (staff),
             "'staff' must be 1 to %d bytes of printable text", S_STAFF_MAX);
    s_check (problem, sizeof problem, !field || !*field || ml_field_parse (field) > 0,
             "'field' must be client-name, client-number, matter-number, matter-description "
             "or invoice-number");
    if (*problem)
        return ml_admin_error ("%s", problem);
    char stored[S_FIELD_MAX + 1] = "";
    if (field && !*field) {
        //  "" forgets the default (staff unticked "use this every time").
        if (ml_db_execute (self->db, "DELETE FROM staff_preference WHERE staff = ?", "s", staff) <
            0)
            return s_store_failed (self, "staff-default");
    } else if (field) {
        char now[32];
        ml_store_now (now, sizeof now);
        if (ml_db_execute (self->db,
                           "INSERT INTO staff_preference (staff, default_field, updated_at)"
                           " VALUES (?, ?, ?) ON CONFLICT (staff) DO UPDATE SET"
                           " default_field = excluded.default_field,"
                           " updated_at = excluded.updated_at",
                           "sss", staff, field, now) != 1)
            return s_store_failed (self, "staff-default");
        snprintf (stored, sizeof stored, "%s", field);
    } else if (s_staff_field (self, staff, stored, sizeof stored) < 0)
        return s_store_failed (self, "staff-default");
    return ml_admin_ok (json_pack ("{s:s, s:o}", "staff", staff, "field",
                                   *stored ? json_string (stored) : json_null ()));
}

static json_t *s_association_record (ml_payers_t *self, int64_t payer_id, const char *level,
                                     const ml_item_t *found, const char *staff)
{
    int rank = s_index (level, s_levels);
    if (rank < 0)
        return ml_admin_error ("the level must be client, matter or invoice");
    if (strlen (staff) > S_STAFF_MAX)
        return ml_admin_error ("the staff name is longer than %d bytes", S_STAFF_MAX);
    if (rank == 2 && found->kind != 'I')
        return ml_admin_error ("a trust row has no invoice; associate its matter instead");
    const char *numbers[] = {found->client_number, found->matter_number, found->invoice_number};
    const char *target = numbers[rank];
    if (!*target)
        return ml_admin_error ("the row found has no %s number", level);
    json_t *refused = s_payer_missing (self, payer_id);
    if (refused)
        return refused;
    int64_t existing = 0;
    int rc = s_first_int (ml_db_query (self->db,
                                       "SELECT association_id FROM association WHERE payer_id = ?"
                                       " AND level = ? AND " S_TARGET_SQL " = ?",
                                       "iss", payer_id, level, target),
                          &existing);
    if (rc < 0)
        return s_store_failed (self, "association lookup");
    if (rc == 1)
        return ml_admin_error ("already associated: payer %lld and %s %s (association %lld)",
                               (long long)payer_id, level, target, (long long)existing);
    refused = s_limit_reached (self, payer_id, "association", S_MAX_ASSOCIATIONS, "associations");
    if (refused)
        return refused;
    char now[32];
    ml_store_now (now, sizeof now);
    int64_t association_id = 0;
    //  A level keeps its own number and those above it: a client association says
    //  nothing about a matter, so it stores none.
    if (ml_db_execute (self->db,
                       "INSERT INTO association (payer_id, level, client_number, client_name,"
                       " matter_number, matter_description, invoice_number, created_at,"
                       " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "issssssss", payer_id, level, s_or_null (found->client_number),
                       s_or_null (found->client_name),
                       rank >= 1 ? s_or_null (found->matter_number) : NULL,
                       rank >= 1 ? s_or_null (found->matter_description) : NULL,
                       rank == 2 ? s_or_null (found->invoice_number) : NULL, now, staff) != 1 ||
        s_last_id (self, &association_id) != 0)
        return s_store_failed (self, "association record");
    ml_log (ML_LOG_NOTICE, "payers: payer %lld: association %lld (%s level) added",
            (long long)payer_id, (long long)association_id, level);
    return s_reply_row (self, "association", S_ASSOCIATION_SQL, "association_id", association_id);
}

typedef json_t *(s_handler_fn)(ml_payers_t *self, const json_t *request);

static const struct {
    const char *op;
    s_handler_fn *handler;
} s_ops[] = {
    {"payer-add", s_payer_add},
    {"payer-edit", s_payer_edit},
    {"payer-list", s_payer_list},
    {"payer-show", s_payer_show},
    {"method-add", s_method_add},
    {"method-remove", s_method_remove},
    {"association-list", s_association_list},
    {"association-remove", s_association_remove},
    {"staff-default", s_staff_default},
};

//  ---------------------------------------------------------------------------------------
//  Public methods.

ml_payers_t *ml_payers_new (ml_db_t *db, char *error, size_t error_size)
{
    assert (db);
    if (ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "payers tables", error,
                         error_size) != 0)
        return NULL;
    ml_payers_t *self = calloc (1, sizeof (ml_payers_t));
    assert (self);
    self->db = db;
    return self;
}

void ml_payers_destroy (ml_payers_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

json_t *ml_payers_execute (ml_payers_t *self, const char *op, const json_t *request)
{
    assert (self);
    for (size_t index = 0; op && index < sizeof s_ops / sizeof s_ops[0]; index++) {
        if (strcmp (op, s_ops[index].op) != 0)
            continue;
        if (!json_is_object (request))
            return ml_admin_error ("a request is a JSON object");
        //  Every op runs in one transaction: a write is all or nothing, and a read that
        //  takes several queries (payer-show) sees one state of the store.
        if (ml_db_begin (self->db) != 0)
            return s_store_failed (self, "begin");
        return s_finish (self, s_ops[index].handler (self, request));
    }
    return NULL;
}

void ml_payers_prefetch_show (ml_payers_t *self, int64_t payer_id)
{
    assert (self);
    ml_db_prefetch (self->db, S_PAYER_BY_ID_SQL, "i", payer_id);
    ml_db_prefetch (self->db, S_METHODS_OF_PAYER_SQL, "i", payer_id);
    ml_db_prefetch (self->db, S_ASSOCIATIONS_OF_PAYER_SQL, "i", payer_id);
}

int ml_payers_scope (ml_payers_t *self, int64_t payer_id, char *firm_id, size_t firm_size,
                     json_t **scope)
{
    assert (self && firm_id && firm_size && scope);
    *scope = NULL;
    json_t *payer = NULL;
    int found = s_row (self, &payer, S_PAYER_SQL, "payer_id", payer_id);
    if (found < 0)
        s_log_failure (self, "scope");
    if (found <= 0)
        return found;
    snprintf (firm_id, firm_size, "%s", json_string_value (json_object_get (payer, "firm_id")));
    json_decref (payer);
    json_t *rows = s_rows (ml_db_query (self->db,
                                        "SELECT level, " S_TARGET_SQL " AS number FROM association"
                                        " WHERE payer_id = ?" S_ASSOCIATION_ORDER,
                                        "i", payer_id));
    if (!rows) {
        s_log_failure (self, "scope");
        return -1;
    }
    static const char *keys[] = {"clients", "matters", "invoices"};
    *scope = json_pack ("{s:[], s:[], s:[]}", keys[0], keys[1], keys[2]);
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        int rank = s_index (json_string_value (json_object_get (row, "level")), s_levels);
        if (rank >= 0)
            json_array_append (json_object_get (*scope, keys[rank]),
                               json_object_get (row, "number"));
    }
    json_decref (rows);
    return 1;
}

//  True if number is one of the strings of scope's list under key.
static bool s_in_scope (const json_t *scope, const char *key, const char *number)
{
    if (!*number)
        return false;
    size_t index;
    json_t *value;
    json_array_foreach (json_object_get (scope, key), index, value)
    {
        if (json_is_string (value) && strcmp (json_string_value (value), number) == 0)
            return true;
    }
    return false;
}

bool ml_payers_scope_allows (const json_t *scope, const ml_item_t *item)
{
    if (!scope || !item)
        return false;
    return s_in_scope (scope, "clients", item->client_number) ||
           s_in_scope (scope, "matters", item->matter_number) ||
           (item->kind == 'I' && s_in_scope (scope, "invoices", item->invoice_number));
}

json_t *ml_payers_association_record (ml_payers_t *self, int64_t payer_id, const char *level,
                                      const ml_item_t *found, const char *staff)
{
    assert (self && found);
    if (ml_db_begin (self->db) != 0)
        return s_store_failed (self, "begin");
    return s_finish (self, s_association_record (self, payer_id, level, found, staff ? staff : ""));
}

const char *ml_payers_staff_default (ml_payers_t *self, const char *staff)
{
    assert (self);
    if (!staff)
        return NULL;
    int rc = s_staff_field (self, staff, self->staff_field, sizeof self->staff_field);
    if (rc < 0)
        s_log_failure (self, "staff default");
    return rc == 1 ? self->staff_field : NULL;
}

//  ---------------------------------------------------------------------------------------
//  Selftest.

//  Run an op with a request (stolen) and return the reply.
static json_t *s_test_call (ml_payers_t *self, const char *op, json_t *request)
{
    assert (request);
    json_t *reply = ml_payers_execute (self, op, request);
    json_decref (request);
    assert (reply);
    return reply;
}

//  Run an op that must succeed; returns the reply's value under key (new reference).
static json_t *s_test_ok (ml_payers_t *self, const char *op, json_t *request, const char *key)
{
    json_t *reply = s_test_call (self, op, request);
    if (!json_is_true (json_object_get (reply, "ok")))
        printf ("\n%s: unexpected error: %s\n", op,
                json_string_value (json_object_get (reply, "error")));
    assert (json_is_true (json_object_get (reply, "ok")));
    json_t *value = json_incref (json_object_get (reply, key));
    assert (value);
    json_decref (reply);
    return value;
}

//  Check a reply is a refusal whose error holds fragment; steals the reply.
static void s_test_refused (json_t *reply, const char *fragment)
{
    const char *error = json_string_value (json_object_get (reply, "error"));
    if (!error || !strstr (error, fragment))
        printf ("\nexpected an error with '%s', got: %s\n", fragment, error ? error : "success");
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (error && strstr (error, fragment));
    json_decref (reply);
}

//  A search answer row.
static ml_item_t s_test_item (char kind, const char *client, const char *matter,
                              const char *invoice)
{
    ml_item_t item;
    memset (&item, 0, sizeof item);
    item.kind = kind;
    item.op = 'U';
    snprintf (item.client_number, sizeof item.client_number, "%s", client);
    snprintf (item.client_name, sizeof item.client_name, "Client %s", client);
    snprintf (item.matter_number, sizeof item.matter_number, "%s", matter);
    snprintf (item.matter_description, sizeof item.matter_description, "Matter %s", matter);
    snprintf (item.invoice_number, sizeof item.invoice_number, "%s", invoice);
    return item;
}

static json_int_t s_test_id (const json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    assert (json_is_integer (value));
    return json_integer_value (value);
}

static bool s_test_allows (const json_t *scope, char kind, const char *client, const char *matter,
                           const char *invoice)
{
    ml_item_t item = s_test_item (kind, client, matter, invoice);
    return ml_payers_scope_allows (scope, &item);
}

void ml_payers_test (bool verbose)
{
    printf (" * ml_payers: ");
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    assert (ml_store_firm_add (store, "brio", "Brio LLP", "key-brio", "OP-002") == 0);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    assert (ml_payers_execute (payers, "status", NULL) == NULL);
    assert (ml_payers_execute (payers, NULL, NULL) == NULL);
    s_test_refused (ml_payers_execute (payers, "payer-list", NULL), "JSON object");

    //  Add, edit, list, show.
    json_t *payer = s_test_ok (payers, "payer-add",
                               json_pack ("{s:s, s:s, s:s, s:s}", "firm", "acme", "name", "Pat Doe",
                                          "email", "pat@example.com", "phone", "+1 (555) 010-2000"),
                               "payer");
    json_int_t pat = s_test_id (payer, "payer_id");
    assert (streq (json_string_value (json_object_get (payer, "firm_id")), "acme"));
    assert (streq (json_string_value (json_object_get (payer, "phone")), "+1 (555) 010-2000"));
    assert (json_string_length (json_object_get (payer, "created_at")) > 0);
    json_decref (payer);
    payer = s_test_ok (payers, "payer-add",
                       json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Ann Lee", "email",
                                  "ann@lee.example.org"),
                       "payer");
    json_int_t ann = s_test_id (payer, "payer_id");
    assert (json_is_null (json_object_get (payer, "phone")));
    json_decref (payer);
    //  The same e-mail in another firm is another payer.
    payer = s_test_ok (payers, "payer-add",
                       json_pack ("{s:s, s:s, s:s}", "firm", "brio", "name", "Pat Doe", "email",
                                  "pat@example.com"),
                       "payer");
    json_decref (payer);
    //  Hostile text is stored as text; the table is still there.
    payer = s_test_ok (payers, "payer-add",
                       json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name",
                                  "'; DROP TABLE payer; --", "email", "drop@example.com"),
                       "payer");
    assert (streq (json_string_value (json_object_get (payer, "name")), "'; DROP TABLE payer; --"));
    json_decref (payer);
    json_t *list = s_test_ok (payers, "payer-list", json_pack ("{s:s}", "firm", "acme"), "payers");
    assert (json_array_size (list) == 3);
    //  Ordered by name: the quote sorts first, then Ann, then Pat.
    assert (s_test_id (json_array_get (list, 1), "payer_id") == ann);
    assert (s_test_id (json_array_get (list, 2), "payer_id") == pat);
    json_decref (list);
    list = s_test_ok (payers, "payer-list", json_pack ("{s:s}", "text", "EXAMPLE.COM"), "payers");
    assert (json_array_size (list) == 3); //  both Pats and the hostile one, any firm
    json_decref (list);
    list = s_test_ok (payers, "payer-list", json_pack ("{s:s, s:s}", "firm", "acme", "text", "%"),
                      "payers");
    assert (json_array_size (list) == 0); //  % is text, not a wildcard
    json_decref (list);
    list = s_test_ok (payers, "payer-list", json_pack ("{s:i}", "limit", 1), "payers");
    assert (json_array_size (list) == 1);
    json_decref (list);
    payer = s_test_ok (
        payers, "payer-edit",
        json_pack ("{s:I, s:s, s:n}", "payer_id", pat, "name", "Pat Q. Doe", "phone"), "payer");
    assert (streq (json_string_value (json_object_get (payer, "name")), "Pat Q. Doe"));
    assert (json_is_null (json_object_get (payer, "phone")));
    assert (streq (json_string_value (json_object_get (payer, "email")), "pat@example.com"));
    json_decref (payer);

    //  Duplicate e-mails within a firm, in any case, are refused on add and on edit.
    s_test_refused (s_test_call (payers, "payer-add",
                                 json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Other",
                                            "email", "PAT@Example.COM")),
                    "already uses the e-mail");
    s_test_refused (
        s_test_call (payers, "payer-edit",
                     json_pack ("{s:I, s:s}", "payer_id", ann, "email", "Pat@example.com")),
        "already uses the e-mail");

    //  Bad input: clear errors, nothing stored.
    struct {
        const char *op;
        const char *request;
        const char *error;
    } bad[] = {
        {"payer-add", "{\"firm\": \"nope\", \"name\": \"X\", \"email\": \"x@y.z\"}",
         "unknown firm 'nope'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": 5, \"email\": \"x@y.z\"}",
         "'name' must be a string"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\"}", "'email' is required"},
        {"payer-add", "{\"name\": \"X\", \"email\": \"x@y.z\"}", "'firm' is required"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"\", \"email\": \"x@y.z\"}", "'name'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"   \", \"email\": \"x@y.z\"}", "'name'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"A\\nB\", \"email\": \"x@y.z\"}", "'name'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"x@y\"}", "'email'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"@y.z\"}", "'email'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"a@b@y.z\"}", "'email'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"a b@y.z\"}", "'email'"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"a@y.\"}", "'email'"},
        {"payer-add",
         "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"x@y.z\", \"phone\": "
         "\"call me\"}",
         "'phone'"},
        //  A card number typed into the phone or e-mail field (e2e_api_fuzz stored one).
        {"payer-add",
         "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"x@y.z\", \"phone\": "
         "\"4242 4242 4242 4242\"}",
         "'phone' holds what looks like a card number"},
        {"payer-add", "{\"firm\": \"acme\", \"name\": \"X\", \"email\": \"4242424242424242@y.z\"}",
         "'email' holds what looks like a card number"},
        {"payer-edit", "{\"payer_id\": 1, \"phone\": \"4242424242424242\"}",
         "'phone' holds what looks like a card number"},
        {"payer-edit", "{\"payer_id\": 999}", "say what to change"},
        {"payer-edit", "{\"payer_id\": 999, \"name\": \"X\"}", "unknown payer 999"},
        {"payer-edit", "{\"payer_id\": \"1\", \"name\": \"X\"}", "'payer_id' must be a whole"},
        {"payer-edit", "{\"payer_id\": 0, \"name\": \"X\"}", "'payer_id' must be a whole"},
        {"payer-edit", "{\"payer_id\": 1.0, \"name\": \"X\"}", "'payer_id' must be a whole"},
        {"payer-edit", "{\"name\": \"X\"}", "'payer_id' is required"},
        {"payer-show", "{\"payer_id\": 999}", "unknown payer 999"},
        {"payer-list", "{\"limit\": 0}", "'limit' must be a whole number from 1 to 1000"},
        {"payer-list", "{\"limit\": 1001}", "'limit'"},
        {"payer-list", "{\"firm\": [1]}", "'firm' must be a string"},
        {"method-remove", "{\"method_id\": 999}", "unknown payment method 999"},
        {"association-remove", "{\"association_id\": 999}", "unknown association 999"},
        {"association-list", "{\"payer_id\": 999}", "unknown payer 999"},
        {"staff-default", "{}", "'staff' is required"},
        {"staff-default", "{\"staff\": \"alice\", \"field\": \"client-phone\"}", "'field'"},
        {"staff-default", "{\"staff\": \"alice\", \"field\": 3}", "'field' must be a string"},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++)
        s_test_refused (
            s_test_call (payers, bad[index].op, json_loads (bad[index].request, 0, NULL)),
            bad[index].error);
    char long_name[S_NAME_MAX + 2];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    s_test_refused (s_test_call (payers, "payer-add",
                                 json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", long_name,
                                            "email", "long@example.com")),
                    "longer than 200 bytes");
    long_name[S_NAME_MAX] = 0; //  exactly the maximum is fine
    payer = s_test_ok (payers, "payer-add",
                       json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", long_name, "email",
                                  "long@example.com"),
                       "payer");
    json_decref (payer);

    //  Payment methods: only tokens, never card numbers or expired cards.
    json_t *method = s_test_ok (payers, "method-add",
                                json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", pat,
                                           "token", "pm_1NXWPnLkdIwHu7ix", "brand", "visa", "last4",
                                           "4242", "exp_month", 12, "exp_year", 2099),
                                "method");
    json_int_t first_method = s_test_id (method, "method_id");
    assert (s_test_id (method, "exp_month") == 12 && s_test_id (method, "exp_year") == 2099);
    assert (s_test_id (method, "payer_id") == pat);
    assert (streq (json_string_value (json_object_get (method, "last4")), "4242"));
    json_decref (method);
    const char *cards[] = {"4111111111111111", "tok_4111111111111111", "4111-1111-1111-1111",
                           "4111 1111 1111 1111"};
    for (size_t index = 0; index < sizeof cards / sizeof cards[0]; index++) {
        json_t *reply = s_test_call (payers, "method-add",
                                     json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", pat,
                                                "token", cards[index], "brand", "visa", "last4",
                                                "1111", "exp_month", 1, "exp_year", 2099));
        char *text = json_dumps (reply, 0);
        assert (text && !strstr (text, "4111") && !strstr (text, "1111"));
        free (text);
        s_test_refused (reply, "that looks like a card number");
    }
    struct {
        const char *token, *brand, *last4;
        int month, year;
        const char *error;
    } bad_methods[] = {
        {"tok_ok", "visa", "4242", 1, 2000, "expired"},
        {"tok_ok", "diners", "4242", 1, 2099, "'brand'"},
        {"tok_ok", "visa", "42a2", 1, 2099, "'last4'"},
        {"tok_ok", "visa", "424", 1, 2099, "'last4'"},
        {"tok_ok", "visa", "42424", 1, 2099, "'last4' is longer"},
        {"tok_ok", "visa", "4242", 13, 2099, "'exp_month'"},
        {"tok_ok", "visa", "4242", 1, 2100, "'exp_year'"},
        {"tok ok", "visa", "4242", 1, 2099, "'token' may hold only"},
        {"", "visa", "4242", 1, 2099, "'token' is required"},
    };
    for (size_t index = 0; index < sizeof bad_methods / sizeof bad_methods[0]; index++)
        s_test_refused (
            s_test_call (payers, "method-add",
                         json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", pat, "token",
                                    bad_methods[index].token, "brand", bad_methods[index].brand,
                                    "last4", bad_methods[index].last4, "exp_month",
                                    bad_methods[index].month, "exp_year", bad_methods[index].year)),
            bad_methods[index].error);
    s_test_refused (s_test_call (payers, "method-add",
                                 json_pack ("{s:I, s:s, s:s, s:s, s:s, s:i}", "payer_id", pat,
                                            "token", "tok_ok", "brand", "visa", "last4", "4242",
                                            "exp_month", "12", "exp_year", 2099)),
                    "'exp_month' must be a whole number");
    s_test_refused (s_test_call (payers, "method-add",
                                 json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", 999,
                                            "token", "tok_ok", "brand", "visa", "last4", "4242",
                                            "exp_month", 12, "exp_year", 2099)),
                    "unknown payer 999");
    //  At most S_MAX_METHODS per payer.
    for (int index = 1; index < S_MAX_METHODS; index++)
        json_decref (s_test_ok (payers, "method-add",
                                json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", ann,
                                           "token", "tok_ann", "brand", "other", "last4", "0000",
                                           "exp_month", 1, "exp_year", 2099),
                                "method"));
    json_decref (
        s_test_ok (payers, "method-add",
                   json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", ann, "token", "tok_ann",
                              "brand", "amex", "last4", "0000", "exp_month", 1, "exp_year", 2099),
                   "method"));
    s_test_refused (s_test_call (payers, "method-add",
                                 json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", ann,
                                            "token", "tok_ann", "brand", "amex", "last4", "0000",
                                            "exp_month", 1, "exp_year", 2099)),
                    "already has 20 payment methods");

    //  Associations at each level, from rows a search returned.
    ml_item_t client = s_test_item ('I', "C-1", "M-1", "INV-1");
    ml_item_t matter = s_test_item ('T', "C-2", "M-2", "");
    ml_item_t invoice = s_test_item ('I', "C-3", "M-3", "INV-30");
    json_t *reply = ml_payers_association_record (payers, pat, "client", &client, "alice");
    json_t *association = json_object_get (reply, "association");
    assert (json_is_true (json_object_get (reply, "ok")));
    assert (streq (json_string_value (json_object_get (association, "client_name")), "Client C-1"));
    assert (json_is_null (json_object_get (association, "matter_number")));
    assert (json_is_null (json_object_get (association, "invoice_number")));
    assert (streq (json_string_value (json_object_get (association, "created_by")), "alice"));
    json_decref (reply);
    reply = ml_payers_association_record (payers, pat, "matter", &matter, NULL);
    association = json_object_get (reply, "association");
    assert (streq (json_string_value (json_object_get (association, "matter_number")), "M-2"));
    assert (json_is_null (json_object_get (association, "invoice_number")));
    assert (streq (json_string_value (json_object_get (association, "created_by")), ""));
    json_decref (reply);
    reply = ml_payers_association_record (payers, pat, "invoice", &invoice, "bob");
    json_int_t invoice_association =
        s_test_id (json_object_get (reply, "association"), "association_id");
    assert (streq (json_string_value (
                       json_object_get (json_object_get (reply, "association"), "invoice_number")),
                   "INV-30"));
    json_decref (reply);
    s_test_refused (ml_payers_association_record (payers, pat, "client", &client, "alice"),
                    "already associated");
    s_test_refused (ml_payers_association_record (payers, pat, "invoice", &matter, "alice"),
                    "trust row has no invoice");
    s_test_refused (ml_payers_association_record (payers, pat, "firm", &client, "alice"),
                    "client, matter or invoice");
    s_test_refused (ml_payers_association_record (payers, 999, "client", &client, "alice"),
                    "unknown payer 999");
    ml_item_t nameless = s_test_item ('I', "C-4", "", "INV-40");
    s_test_refused (ml_payers_association_record (payers, pat, "matter", &nameless, "alice"),
                    "no matter number");

    //  The e-mail is not a key: changing it keeps the payer and what it may see.
    payer = s_test_ok (payers, "payer-edit",
                       json_pack ("{s:I, s:s}", "payer_id", pat, "email", "pat.doe@new.example"),
                       "payer");
    assert (s_test_id (payer, "payer_id") == pat);
    json_decref (payer);
    payer = s_test_ok (payers, "payer-show", json_pack ("{s:I}", "payer_id", pat), "payer");
    assert (streq (json_string_value (json_object_get (payer, "email")), "pat.doe@new.example"));
    assert (json_array_size (json_object_get (payer, "methods")) == 1);
    json_t *associations = json_object_get (payer, "associations");
    assert (json_array_size (associations) == 3);
    const char *levels[] = {"client", "matter", "invoice"};
    for (size_t index = 0; index < 3; index++)
        assert (streq (
            json_string_value (json_object_get (json_array_get (associations, index), "level")),
            levels[index]));
    json_decref (payer);
    //  The old address is free again.
    payer = s_test_ok (payers, "payer-edit",
                       json_pack ("{s:I, s:s, s:s}", "payer_id", ann, "email", "PAT@example.com",
                                  "phone", "555 0100"),
                       "payer");
    assert (streq (json_string_value (json_object_get (payer, "phone")), "555 0100"));
    json_decref (payer);
    payer = s_test_ok (payers, "payer-edit", json_pack ("{s:I, s:s}", "payer_id", ann, "phone", ""),
                       "payer");
    assert (json_is_null (json_object_get (payer, "phone")));
    json_decref (payer);

    //  The scope, and what it lets through.
    char firm[64];
    json_t *scope = NULL;
    assert (ml_payers_scope (payers, 999, firm, sizeof firm, &scope) == 0 && !scope);
    assert (ml_payers_scope (payers, pat, firm, sizeof firm, &scope) == 1);
    assert (streq (firm, "acme"));
    json_t *expected = json_pack ("{s:[s], s:[s], s:[s]}", "clients", "C-1", "matters", "M-2",
                                  "invoices", "INV-30");
    assert (json_equal (scope, expected));
    json_decref (expected);
    //  Client level: any invoice of the client, and its trust rows.
    assert (s_test_allows (scope, 'I', "C-1", "M-1", "INV-1"));
    assert (s_test_allows (scope, 'I', "C-1", "M-7", "INV-99"));
    assert (s_test_allows (scope, 'T', "C-1", "M-7", ""));
    //  Matter level: that matter only.
    assert (s_test_allows (scope, 'I', "C-2", "M-2", "INV-20"));
    assert (s_test_allows (scope, 'T', "C-2", "M-2", ""));
    assert (!s_test_allows (scope, 'I', "C-2", "M-9", "INV-21"));
    //  Invoice level: that invoice only, never a trust row.
    assert (s_test_allows (scope, 'I', "C-3", "M-3", "INV-30"));
    assert (!s_test_allows (scope, 'I', "C-3", "M-3", "INV-31"));
    assert (!s_test_allows (scope, 'T', "C-3", "M-3", "INV-30"));
    assert (!s_test_allows (scope, 'T', "C-3", "M-3", ""));
    //  An unassociated client, and rows with empty numbers, are refused.
    assert (!s_test_allows (scope, 'I', "C-9", "M-9", "INV-90"));
    assert (!s_test_allows (scope, 'I', "", "", ""));
    assert (!s_test_allows (NULL, 'I', "C-1", "M-1", "INV-1"));
    json_decref (scope);

    //  Listing and removing associations.
    list = s_test_ok (payers, "association-list", json_pack ("{s:I}", "payer_id", pat),
                      "associations");
    assert (json_array_size (list) == 3);
    json_decref (list);
    json_t *removed =
        s_test_ok (payers, "association-remove",
                   json_pack ("{s:I}", "association_id", invoice_association), "removed");
    assert (json_integer_value (removed) == invoice_association);
    json_decref (removed);
    s_test_refused (s_test_call (payers, "association-remove",
                                 json_pack ("{s:I}", "association_id", invoice_association)),
                    "unknown association");
    assert (ml_payers_scope (payers, pat, firm, sizeof firm, &scope) == 1);
    assert (json_array_size (json_object_get (scope, "invoices")) == 0);
    assert (!s_test_allows (scope, 'I', "C-3", "M-3", "INV-30"));
    json_decref (scope);
    removed = s_test_ok (payers, "method-remove", json_pack ("{s:I}", "method_id", first_method),
                         "removed");
    json_decref (removed);
    s_test_refused (
        s_test_call (payers, "method-remove", json_pack ("{s:I}", "method_id", first_method)),
        "unknown payment method");

    //  At most S_MAX_ASSOCIATIONS per payer (filled directly, in one transaction).
    ml_db_t *db = ml_store_db (store);
    assert (ml_db_begin (db) == 0);
    for (int index = 0; index < S_MAX_ASSOCIATIONS; index++) {
        char number[32];
        snprintf (number, sizeof number, "C-%d", 1000 + index);
        assert (ml_db_execute (db,
                               "INSERT INTO association (payer_id, level, client_number,"
                               " created_at, created_by) VALUES (?, 'client', ?, 'now', '')",
                               "is", (int64_t)ann, number) == 1);
    }
    assert (ml_db_commit (db) == 0);
    s_test_refused (ml_payers_association_record (payers, ann, "client", &client, ""),
                    "already has 1000 associations");

    //  Staff defaults.
    assert (ml_payers_staff_default (payers, "alice") == NULL);
    json_t *field =
        s_test_ok (payers, "staff-default", json_pack ("{s:s}", "staff", "alice"), "field");
    assert (json_is_null (field));
    json_decref (field);
    field = s_test_ok (payers, "staff-default",
                       json_pack ("{s:s, s:s}", "staff", "alice", "field", "client-name"), "field");
    assert (streq (json_string_value (field), "client-name"));
    json_decref (field);
    assert (streq (ml_payers_staff_default (payers, "alice"), "client-name"));
    json_decref (s_test_ok (payers, "staff-default",
                            json_pack ("{s:s, s:s}", "staff", "alice", "field", "invoice-number"),
                            "field"));
    field = s_test_ok (payers, "staff-default", json_pack ("{s:s}", "staff", "alice"), "field");
    assert (streq (json_string_value (field), "invoice-number"));
    json_decref (field);
    assert (ml_payers_staff_default (payers, "bob") == NULL);
    //  "" forgets it: search falls back to client-name, the web's step 1 is shown again.
    field = s_test_ok (payers, "staff-default",
                       json_pack ("{s:s, s:s}", "staff", "alice", "field", ""), "field");
    assert (json_is_null (field));
    json_decref (field);
    assert (ml_payers_staff_default (payers, "alice") == NULL);
    json_decref (s_test_ok (payers, "staff-default",
                            json_pack ("{s:s, s:s}", "staff", "alice", "field", "invoice-number"),
                            "field"));

    //  Opening again on the same store is harmless and keeps everything.
    ml_payers_destroy (&payers);
    ml_payers_destroy (&payers);
    assert (payers == NULL);
    payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    assert (streq (ml_payers_staff_default (payers, "alice"), "invoice-number"));
    list = s_test_ok (payers, "association-list", json_pack ("{s:I}", "payer_id", pat),
                      "associations");
    assert (json_array_size (list) == 2);
    json_decref (list);
    if (verbose)
        printf ("(%d bad requests refused) ", (int)(sizeof bad / sizeof bad[0]));
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
