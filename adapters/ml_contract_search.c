/*  ml_contract's search (docs/contract.md 5.8): one statement per search, built from
    constant fragments and bound values, per dialect. */
#include "ml_contract_internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

//  Search ------------------------------------------------------------------------------------

//  The LIKE pattern for text: '!' escapes the characters LIKE (and SQL Server's brackets)
//  would read as wildcards, so a search for "%" or "_" finds those characters and nothing
//  else. Prefix adds a trailing '%', contains one at each end.
static void s_like_pattern (const char *text, char match, char *pattern, size_t size)
{
    size_t used = 0;
    if (match == 'C')
        pattern[used++] = '%';
    for (const char *cursor = text; *cursor && used + 3 < size; cursor++) {
        if (*cursor == '!' || *cursor == '%' || *cursor == '_' || *cursor == '[')
            pattern[used++] = '!';
        pattern[used++] = *cursor;
    }
    if (match != 'E')
        pattern[used++] = '%';
    pattern[used] = 0;
}

//  Reads one UTF-8 code point at *cursor and advances it; a byte that starts no valid
//  sequence is returned as itself (the codec admits only valid UTF-8, so this is a guard).
static uint32_t s_utf8_next (const char **cursor)
{
    const unsigned char *bytes = (const unsigned char *)*cursor;
    int length = bytes[0] < 0x80         ? 1
                 : (bytes[0] >> 5) == 6  ? 2
                 : (bytes[0] >> 4) == 14 ? 3
                 : (bytes[0] >> 3) == 30 ? 4
                                         : 1;
    uint32_t point = length == 1 ? bytes[0] : bytes[0] & (0x7F >> length);
    for (int index = 1; index < length; index++) {
        if ((bytes[index] & 0xC0) != 0x80) {
            *cursor += 1;
            return bytes[0];
        }
        point = (point << 6) | (bytes[index] & 0x3F);
    }
    *cursor += length;
    return point;
}

static size_t s_utf8_put (uint32_t point, char *out)
{
    if (point < 0x80) {
        out[0] = (char)point;
        return 1;
    }
    if (point < 0x800) {
        out[0] = (char)(0xC0 | (point >> 6));
        out[1] = (char)(0x80 | (point & 0x3F));
        return 2;
    }
    if (point < 0x10000) {
        out[0] = (char)(0xE0 | (point >> 12));
        out[1] = (char)(0x80 | ((point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (point >> 18));
    out[1] = (char)(0x80 | ((point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (point & 0x3F));
    return 4;
}

//  The GLOB pattern for text (dialects with search_by_glob): every letter becomes the class
//  of its case forms (Unicode simple case mapping, from the C.UTF-8 locale whatever the
//  process's own locale), GLOB's own '*', '?' and '[' become one-character classes, prefix
//  adds a trailing '*', contains one at each end. size must be at least
//  S_GLOB_PER_BYTE * strlen (text) + 3: a byte of text never costs more than that.
#define S_GLOB_PER_BYTE 14
static void s_glob_pattern (locale_t utf8, const char *text, char match, char *pattern, size_t size)
{
    size_t used = 0;
    if (match == 'C')
        pattern[used++] = '*';
    const char *cursor = text;
    while (*cursor && used + S_GLOB_PER_BYTE + 2 < size) {
        uint32_t point = s_utf8_next (&cursor);
        uint32_t forms[3] = {point, point, point};
        if (utf8) {
            forms[1] = (uint32_t)towlower_l ((wint_t)point, utf8);
            forms[2] = (uint32_t)towupper_l ((wint_t)point, utf8);
        } else if (point < 0x80) { //  no C.UTF-8 here: at least what LIKE folded before
            forms[1] = (uint32_t)tolower ((int)point);
            forms[2] = (uint32_t)toupper ((int)point);
        }
        bool special = point == '*' || point == '?' || point == '[';
        bool cased = forms[1] != point || forms[2] != point;
        if (special || cased)
            pattern[used++] = '[';
        used += s_utf8_put (point, pattern + used);
        if (forms[1] != point)
            used += s_utf8_put (forms[1], pattern + used);
        if (forms[2] != point && forms[2] != forms[1])
            used += s_utf8_put (forms[2], pattern + used);
        if (special || cased)
            pattern[used++] = ']';
    }
    if (match != 'E')
        pattern[used++] = '*';
    pattern[used] = 0;
}

//  A scope list as a JSON array of strings (caller frees), ASCII-only so every driver
//  passes it through unchanged.
static char *s_scope_json (const ml_search_t *search, int list)
{
    json_t *array = json_array ();
    for (size_t index = 0; index < search->scope_count[list]; index++)
        json_array_append_new (array, json_string (search->scope[list][index]));
    char *text = json_dumps (array, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref (array);
    return text;
}

//  Append fixed SQL text, with column (if given) in place of the fragment's one "%s".
//  Only this file's constant fragments and column names ever reach it: values go through
//  s_bind_*, never into the text.
static void s_text (ml_contract_statement_t *statement, const char *fragment, const char *column)
{
    const char *hole = column ? strstr (fragment, "%s") : NULL;
    size_t head = hole ? (size_t)(hole - fragment) : strlen (fragment);
    size_t middle = hole ? strlen (column) : 0;
    size_t tail = hole ? strlen (hole + 2) : 0;
    assert (statement->length + head + middle + tail < sizeof statement->sql);
    char *end = statement->sql + statement->length;
    memcpy (end, fragment, head);
    if (hole) {
        memcpy (end + head, column, middle);
        memcpy (end + head + middle, hole + 2, tail);
    }
    statement->length += head + middle + tail;
    statement->sql[statement->length] = 0;
}

static void s_bind_text (ml_contract_statement_t *statement, const char *text)
{
    assert (statement->count < sizeof statement->picture - 1);
    statement->picture[statement->count] = 's';
    statement->values[statement->count++].text = text;
}

static void s_bind_number (ml_contract_statement_t *statement, int64_t number)
{
    assert (statement->count < sizeof statement->picture - 1);
    statement->picture[statement->count] = 'i';
    statement->values[statement->count++].number = number;
}

static void s_search_fail (ml_msg_t *answer, uint16_t code, const char *reason)
{
    ml_msg_clear_items (answer);
    answer->next = 0;
    answer->code = code;
    snprintf (answer->reason, sizeof answer->reason, "%.255s", reason);
}

//  The columns a criterion tests, by ml_field_t.
static const char *s_field_columns[] = {
    NULL, "client_name", "client_number", "matter_number", "matter_description", "invoice_number"};

//  With a search index (docs/contract.md 5.8): for each field, the index's id column that a
//  match decides and the view that maps the field's text to that id.
static const struct {
    const char *key;
    const char *view;
} s_index_lookups[] = {{NULL, NULL},
                       {"client_id", "ml_search_clients"},
                       {"client_id", "ml_search_clients"},
                       {"matter_id", "ml_search_matters"},
                       {"matter_id", "ml_search_matters"},
                       {"source_id", "ml_search_invoices"}};

//  Scope lists (ML_SCOPE_*) name clients, matters and invoices by number.
static const ml_field_t s_scope_fields[] = {ML_FIELD_CLIENT_NUMBER, ML_FIELD_MATTER_NUMBER,
                                            ML_FIELD_INVOICE_NUMBER};

//  How many rows of the search index a walk reads at most (docs/contract.md 5.8): where a name
//  or description is common (1 open invoice in 100 or more), a page of matches is met within
//  them; where it is rarer, the search fetches the matches instead.
#define S_WALK_ROWS "5000"

//  A criterion (test: a fragment with one '?' about the field's column) through the search
//  index: "<key> = ANY (ARRAY (SELECT <key> FROM <view> WHERE <test>))" makes PostgreSQL
//  fetch exactly the matching ids' rows through the key's index and sort them.
static void s_index_match (ml_contract_statement_t *statement, ml_field_t field, const char *test)
{
    s_text (statement, "%s = ANY (ARRAY (SELECT ", s_index_lookups[field].key);
    s_text (statement, "%s FROM ", s_index_lookups[field].key);
    s_text (statement, "%s WHERE ", s_index_lookups[field].view);
    s_text (statement, test, s_field_columns[field]);
    s_text (statement, "))", NULL);
}

#define S_LIKE "LOWER(%s) LIKE LOWER(?) ESCAPE '!'"

//  The range of SQLite's lower() of a number (it folds ASCII letters only) that holds every
//  exact or prefix match of text: from the text's leading ASCII run with its letters in lower
//  case, to the same run with its last byte one higher. A match begins with case forms of the
//  text's characters (section 5.8), an ASCII character's case forms are ASCII, and lower()
//  maps them all to the run's; GLOB then decides. Folded by hand: tolower() follows the
//  process's locale, and a Turkish one folds 'I' to a dotless i.
static void s_key_bounds (const char *text, char *from, char *to, size_t size)
{
    size_t used = 0;
    for (; text[used] && (unsigned char)text[used] < 0x7F && used + 1 < size; used++)
        from[used] = text[used] >= 'A' && text[used] <= 'Z' ? (char)(text[used] + 32) : text[used];
    from[used] = 0;
    memcpy (to, from, used + 1);
    if (used)
        to[used - 1]++;
}

static bool s_number_field (ml_field_t field)
{
    return field == ML_FIELD_CLIENT_NUMBER || field == ML_FIELD_MATTER_NUMBER ||
           field == ML_FIELD_INVOICE_NUMBER;
}

//  Through the search views (docs/contract.md 5.8): "source_id IN (...)", or with hits the
//  derived table "(SELECT DISTINCT ... AS hit_id ...)", down to the view that holds field,
//  ending in "WHERE " for the field's test. Returns the parentheses to close.
static int s_view_open (ml_contract_statement_t *statement, char target, ml_field_t field,
                        bool hits)
{
    const char *head =
        hits ? "(SELECT DISTINCT %s AS hit_id FROM " : "source_id IN (SELECT %s FROM ";
    if (field == ML_FIELD_INVOICE_NUMBER) {
        s_text (statement, head, "source_id");
        s_text (statement, "ml_search_invoices WHERE ", NULL);
        return 1;
    }
    int open = 1;
    if (target == 'T') {
        s_text (statement, head, "matter_id");
        s_text (statement, "ml_search_matters WHERE ", NULL);
    } else {
        s_text (statement, head, "source_id");
        s_text (statement,
                "ml_search_invoices WHERE matter_id IN "
                "(SELECT matter_id FROM ml_search_matters WHERE ",
                NULL);
        open++;
    }
    if (field == ML_FIELD_CLIENT_NAME || field == ML_FIELD_CLIENT_NUMBER) {
        s_text (statement, "client_id IN (SELECT client_id FROM ml_search_clients WHERE ", NULL);
        open++;
    }
    return open;
}

static void s_view_close (ml_contract_statement_t *statement, int open)
{
    while (open-- > 0)
        s_text (statement, ")", NULL);
}

//  A search's criterion through the search views. The test is the one the item views are
//  searched with (GLOB on SQLite, LOWER() LIKE LOWER() elsewhere) on the same columns, so it
//  finds the same rows; SQLite first bounds a number's key, MariaDB tests the stored key,
//  which is LOWER() of the number, with the same LIKE.
static void s_view_match (ml_contract_statement_t *statement, const ml_contract_dialect_t *dialect,
                          const ml_search_t *search, const ml_contract_search_values_t *values,
                          bool hits)
{
    ml_field_t field = (ml_field_t)search->field;
    //  The codec refuses it: a trust ledger has no invoice number, so nothing matches.
    bool none = search->target == 'T' && field == ML_FIELD_INVOICE_NUMBER;
    int open = s_view_open (statement, search->target, none ? ML_FIELD_MATTER_NUMBER : field, hits);
    if (none) {
        s_text (statement, "1 = 0", NULL);
        s_view_close (statement, open);
        return;
    }
    const char *column = s_field_columns[field];
    if (dialect->search_by_glob && s_number_field (field) && *values->key_from) {
        s_text (statement, "%s_key >= ? AND ", column);
        s_bind_text (statement, values->key_from);
        s_text (statement, "%s_key < ? AND ", column);
        s_bind_text (statement, values->key_to);
    }
    if (dialect->search_by_glob)
        s_text (statement, "%s GLOB ?", column);
    else if (s_number_field (field))
        s_text (statement, "%s_key LIKE LOWER(?) ESCAPE '!'", column);
    else
        s_text (statement, S_LIKE, column);
    s_bind_text (statement, values->pattern);
    s_view_close (statement, open);
}

//  A scope list's test through the search views (the list, a JSON array, bound once).
static void s_view_scope (ml_contract_statement_t *statement, const ml_contract_dialect_t *dialect,
                          const ml_search_t *search, int list, const char *scope_json, bool hits)
{
    int open = s_view_open (statement, search->target, s_scope_fields[list], hits);
    s_text (statement, dialect->search_in_list, s_field_columns[s_scope_fields[list]]);
    s_bind_text (statement, scope_json);
    s_view_close (statement, open);
}

//  The rows of one search's view that match its criteria and filters: "SELECT ... FROM view
//  WHERE ..." with every value bound. Through a search index (keys: its view), only their
//  source ids; walking, from the index's next S_WALK_ROWS rows, testing the lower-case text.
static void s_search_select (ml_contract_statement_t *statement,
                             const ml_contract_dialect_t *dialect, const ml_search_t *search,
                             const ml_contract_search_values_t *values, const char *keys, bool walk,
                             int list, const char *scope_json)
{
    const char *view = search->target == 'T' ? "ml_trust_balances" : "ml_open_items";
    bool field = search->field != ML_FIELD_NONE && search->field <= ML_FIELD_LAST;
    bool views = dialect->search_views != ML_CONTRACT_NO_VIEWS && !walk;
    //  MariaDB: the ids of the scope list's items, or else of the field's matches, come first.
    bool hits = views && dialect->search_views == ML_CONTRACT_VIEWS_HITS && (field || list >= 0);
    //  MariaDB's walk: the matching ids among the next rows' ids and tested column only, then
    //  their rows (materializing whole item rows cost twice as much).
    bool walk_hits = walk && !keys && dialect->search_views == ML_CONTRACT_VIEWS_HITS;
    if (walk_hits) {
        s_text (statement,
                "SELECT STRAIGHT_JOIN " ML_CONTRACT_ITEM_COLUMNS
                " FROM (SELECT source_id AS hit_id FROM "
                "(SELECT source_id, %s",
                s_field_columns[search->field]);
        s_text (statement, " FROM %s WHERE source_id > ?", view);
        s_bind_number (statement, (int64_t)search->after);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked WHERE ", NULL);
        s_text (statement, S_LIKE, s_field_columns[search->field]);
        s_bind_text (statement, values->pattern);
        s_text (statement, ") AS hits JOIN %s ON source_id = hits.hit_id WHERE source_id > ?",
                view);
    } else if (hits) {
        s_text (statement, "SELECT STRAIGHT_JOIN " ML_CONTRACT_ITEM_COLUMNS " FROM ", NULL);
        if (list >= 0)
            s_view_scope (statement, dialect, search, list, scope_json, true);
        else
            s_view_match (statement, dialect, search, values, true);
        s_text (statement, " AS hits JOIN %s ON source_id = hits.hit_id WHERE source_id > ?", view);
    } else if (walk && !keys) {
        s_text (statement,
                "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM (SELECT " ML_CONTRACT_ITEM_COLUMNS
                " FROM %s WHERE source_id > ?",
                view);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked", NULL);
    } else if (walk) {
        s_text (statement, "SELECT source_id FROM (SELECT * FROM %s WHERE source_id > ?", keys);
        s_text (statement, " ORDER BY source_id LIMIT " S_WALK_ROWS ") AS walked", NULL);
    } else if (keys)
        s_text (statement, "SELECT source_id FROM %s WHERE source_id > ?", keys);
    else
        s_text (statement, "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM %s WHERE source_id > ?", view);
    s_bind_number (statement, (int64_t)search->after);
    if (field && !(hits && list < 0) && !walk_hits) {
        //  Case-insensitive everywhere: staff type "smith" for "Smith & Co".
        s_text (statement, walk ? " WHERE " : " AND ", NULL);
        if (views)
            s_view_match (statement, dialect, search, values, false); //  binds its own values
        else {
            if (walk && keys)
                s_text (statement, "%s_lower LIKE LOWER(?) ESCAPE '!'",
                        s_field_columns[search->field]);
            else if (keys)
                s_index_match (statement, search->field, S_LIKE);
            else
                s_text (statement, dialect->search_by_glob ? "%s GLOB ?" : S_LIKE,
                        s_field_columns[search->field]);
            s_bind_text (statement, values->pattern);
        }
    }
    if (list >= 0 && !hits) {
        s_text (statement, " AND ", NULL);
        if (keys) {
            s_index_match (statement, s_scope_fields[list], dialect->search_in_list);
            s_bind_text (statement, scope_json);
        } else if (views)
            s_view_scope (statement, dialect, search, list, scope_json, false);
        else {
            s_text (statement, dialect->search_in_list, s_field_columns[s_scope_fields[list]]);
            s_bind_text (statement, scope_json);
        }
    }
    //  Dates are 'YYYY-MM-DD' text in every dialect's item row, so text order is date order.
    if (*search->date_from) {
        s_text (statement, " AND invoice_date >= ?", NULL);
        s_bind_text (statement, search->date_from);
    }
    if (*search->date_to) {
        s_text (statement, " AND invoice_date <= ?", NULL);
        s_bind_text (statement, search->date_to);
    }
    if (search->amount_filter & ML_AMOUNT_MIN) {
        s_text (statement, " AND balance_minor >= ?", NULL);
        s_bind_number (statement, search->amount_min);
    }
    if (search->amount_filter & ML_AMOUNT_MAX) {
        s_text (statement, " AND balance_minor <= ?", NULL);
        s_bind_number (statement, search->amount_max);
    }
    //  Minor units mean nothing without their currency: 100.00 USD is 10000, 100 JPY is 100.
    if (search->amount_filter & ML_AMOUNT_CURRENCY) {
        s_text (statement, " AND currency = ?", NULL);
        s_bind_text (statement, search->amount_currency);
    }
    if (search->status == ML_STATUS_OVERDUE) {
        s_text (statement, " AND due_date < ?", NULL);
        s_bind_text (statement, search->as_of);
    } else if (search->status == ML_STATUS_CURRENT) {
        s_text (statement, " AND (due_date IS NULL OR due_date >= ?)", NULL);
        s_bind_text (statement, search->as_of);
    }
}

//  Reads a search's rows into answer, at most its limit, with the next page's start when one
//  row more came. Returns 1 when it did (or the answer is full), 0 when the rows ended first,
//  -1 on an error.
static int s_search_rows (ml_query_t *query, const ml_search_t *search, ml_msg_t *answer)
{
    int fetched;
    uint64_t last_source = 0;
    while ((fetched = ml_query_fetch (query)) == 1) {
        if (answer->item_count == search->limit) {
            answer->next = last_source;
            return 1;
        }
        int64_t source_id = 0;
        if (ml_query_int64 (query, 1, &source_id) == 0 && source_id > 0)
            last_source = (uint64_t)source_id;
        if (ml_contract_read_item (query, 0, 'U', 0, answer) < 0)
            return 1; //  the answer is full: keep what it holds
    }
    return fetched;
}

//  The search's statement. A payer's view (scoped) selects only rows a scope list names,
//  each list its own select (its number index finds the payer's few rows), united and then
//  ordered; an empty scope shows nothing, never everything. Invoice-level associations show
//  that invoice, never a trust ledger. Through a search index (keys), those selects give
//  source ids, and the page's rows are read by id from ml_open_items.
void ml_contract_search_statement (ml_contract_statement_t *statement,
                                   const ml_contract_dialect_t *dialect, const ml_search_t *search,
                                   const ml_contract_search_values_t *values, const char *keys,
                                   bool walk, char *scope_json[3])
{
    if (keys)
        s_text (statement,
                "SELECT " ML_CONTRACT_ITEM_COLUMNS
                " FROM ml_open_items WHERE source_id = ANY (ARRAY (",
                NULL);
    int lists = 0;
    for (int list = 0; search->scoped && list < 3; list++) {
        if (search->scope_count[list] == 0 || (list == ML_SCOPE_INVOICES && search->target == 'T'))
            continue;
        scope_json[list] = s_scope_json (search, list);
        s_text (statement, lists++ ? " UNION " : "SELECT * FROM (", NULL);
        s_search_select (statement, dialect, search, values, keys, walk, list, scope_json[list]);
    }
    if (lists)
        s_text (statement, ") scoped", NULL);
    else {
        s_search_select (statement, dialect, search, values, keys, walk, -1, NULL);
        if (search->scoped)
            s_text (statement, " AND 1 = 0", NULL);
    }
    s_text (statement, " ORDER BY source_id ", NULL);
    s_text (statement, dialect->search_limit, NULL);
    //  One row more than asked says whether another page follows.
    s_bind_number (statement, (int64_t)search->limit + 1);
    if (keys)
        s_text (statement, ")) ORDER BY source_id", NULL);
    statement->picture[statement->count] = 0;
}

int ml_contract_search (ml_contract_t *self, const ml_search_t *search, ml_msg_t *answer)
{
    assert (self && search && answer);
    const ml_contract_dialect_t *dialect = self->dialect;
    ml_contract_statement_t statement = {.length = 0};
    char pattern[S_GLOB_PER_BYTE * sizeof search->text + 3];
    ml_contract_search_values_t values = {.pattern = pattern};
    char *scope_json[3] = {NULL, NULL, NULL};
    ml_msg_clear_items (answer);
    answer->code = ML_SEARCH_OK;
    answer->next = 0;
    *answer->reason = 0;
    if (search->field != ML_FIELD_NONE && dialect->search_by_glob)
        s_glob_pattern (self->utf8, search->text, search->match, pattern, sizeof pattern);
    else if (search->field != ML_FIELD_NONE)
        s_like_pattern (search->text, search->match, pattern, sizeof pattern);
    if (search->match != 'C')
        s_key_bounds (search->text, values.key_from, values.key_to, sizeof values.key_from);
    //  Invoice searches through the dialect's search index, if it has one.
    const char *keys = search->target == 'I' ? dialect->search_keys : NULL;

    //  The answer is worthless after the deadline: stop the statements there.
    bool limited = search->deadline_ms > 0 &&
                   (!self->timeout_ms || (int)search->deadline_ms < self->timeout_ms) &&
                   dialect->time_limit != ML_CONTRACT_NO_LIMIT;
    int rc = 0;
    if (limited && ml_contract_limit_time_to (self, self->odbc, (int)search->deadline_ms) != 0)
        rc = -1;
    //  The session settings serve the view's plans; through the search index every plan is
    //  fixed by the statement's shape (its ids come from a subquery with its own limit).
    const char *search_begin = keys ? NULL : dialect->search_begin;
    const char *search_end = keys ? NULL : dialect->search_end;
    if (rc == 0 && search_begin && ml_odbc_execute (self->odbc, search_begin, NULL) < 0)
        rc = -1;
    //  A name or description walks the search index (or the item view) first; if the walk
    //  meets no full page within its rows, the matches are rare and the search fetches them
    //  instead. Both give the same rows: the walk only ever saves time.
    bool walk =
        (keys || dialect->search_views != ML_CONTRACT_NO_VIEWS) && !search->scoped &&
        (search->field == ML_FIELD_CLIENT_NAME || search->field == ML_FIELD_MATTER_DESCRIPTION);
    ml_query_t *query = NULL;
    int fetched = 0;
    while (rc == 0) {
        statement.length = statement.count = 0;
        ml_contract_search_statement (&statement, dialect, search, &values, keys, walk, scope_json);
        query =
            ml_odbc_query_values (self->odbc, statement.sql, statement.picture, statement.values);
        fetched = query ? s_search_rows (query, search, answer) : -1;
        if (fetched != 0 || !walk)
            break;
        ml_query_destroy (&query);
        ml_msg_clear_items (answer);
        walk = false;
    }
    if (rc != 0 || fetched < 0) {
        const ml_odbc_error_t *error = ml_odbc_error (self->odbc);
        char reason[300];
        snprintf (reason, sizeof reason, "the matter database %s: %.200s",
                  error->kind == ML_ODBC_TIMEOUT ? "did not answer in time" : "failed",
                  error->message);
        s_search_fail (answer,
                       error->kind == ML_ODBC_TIMEOUT ? ML_SEARCH_TIMEOUT
                       : error->kind == ML_ODBC_LOST  ? ML_SEARCH_UNAVAILABLE
                                                      : ML_SEARCH_FAILED,
                       reason);
        rc = error->kind == ML_ODBC_LOST ? -1 : 0;
    }
    ml_query_destroy (&query);
    if (rc == 0 && search_end && ml_odbc_execute (self->odbc, search_end, NULL) < 0)
        rc = -1;
    if (limited && rc == 0 && ml_contract_limit_time_to (self, self->odbc, self->timeout_ms) != 0)
        rc = -1;
    for (int list = 0; list < 3; list++)
        free (scope_json[list]);
    return rc;
}
