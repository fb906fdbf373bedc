/*  ml_contract: dialect adapters for the SQL contract. See include/ml_contract.h and
    docs/contract.md. The dialects' statements are in ml_contract_dialects.c, search in
    ml_contract_search.c. */
#include "ml_contract_internal.h"
#include "ml_log.h"

#include <assert.h>
#include <jansson.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Set a connection's statement time limit (0: none). Returns 0 or -1.
int ml_contract_limit_time_to (ml_contract_t *self, ml_odbc_t *odbc, int timeout_ms)
{
    char sql[96];
    if (self->dialect->time_limit == ML_CONTRACT_NO_LIMIT)
        return 0;
    if (self->dialect->time_limit == ML_CONTRACT_POSTGRESQL_LIMIT)
        snprintf (sql, sizeof sql, "SET statement_timeout = %d", timeout_ms);
    else if (self->dialect->time_limit == ML_CONTRACT_SQLSERVER_LIMIT)
        snprintf (sql, sizeof sql, "SET LOCK_TIMEOUT %d", timeout_ms ? timeout_ms : -1);
    else
        snprintf (sql, sizeof sql, "SET SESSION max_statement_time = %d.%03d", timeout_ms / 1000,
                  timeout_ms % 1000);
    return ml_odbc_execute (odbc, sql, NULL) < 0 ? -1 : 0;
}

//  Apply the configured statement time limit to a connection. Returns 0 or -1.
static int s_limit_time (ml_contract_t *self, ml_odbc_t *odbc)
{
    return self->timeout_ms ? ml_contract_limit_time_to (self, odbc, self->timeout_ms) : 0;
}

bool ml_contract_dialect_known (const char *dialect)
{
    for (size_t index = 0; index < ml_contract_dialect_count; index++)
        if (dialect && strcmp (ml_contract_dialects[index].name, dialect) == 0)
            return true;
    return false;
}

ml_contract_t *ml_contract_new (const char *dialect, const char *connection_string,
                                ml_odbc_error_t *error)
{
    const ml_contract_dialect_t *found = NULL;
    for (size_t index = 0; index < ml_contract_dialect_count; index++)
        if (dialect && strcmp (ml_contract_dialects[index].name, dialect) == 0)
            found = &ml_contract_dialects[index];
    if (!found) {
        memset (error, 0, sizeof *error);
        error->kind = ML_ODBC_OTHER;
        snprintf (error->message, sizeof error->message,
                  "database dialect '%.32s' is not supported (supported: sqlite, postgresql, "
                  "mariadb, sqlserver)",
                  dialect ? dialect : "");
        return NULL;
    }
    ml_odbc_t *odbc = ml_odbc_new_existing (connection_string, error);
    if (!odbc)
        return NULL;
    ml_contract_t *self = calloc (1, sizeof (ml_contract_t));
    assert (self);
    self->dialect = found;
    self->odbc = odbc;
    self->connection_string = strdup (connection_string);
    self->phase = 2;
    self->utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    return self;
}

void ml_contract_destroy (ml_contract_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_contract_snapshot_end (*self_p);
        ml_odbc_destroy (&(*self_p)->odbc);
        free ((*self_p)->connection_string);
        if ((*self_p)->utf8)
            freelocale ((*self_p)->utf8);
        free (*self_p);
        *self_p = NULL;
    }
}

int ml_contract_set_timeout (ml_contract_t *self, int timeout_ms)
{
    assert (self && timeout_ms >= 0);
    self->timeout_ms = timeout_ms;
    return s_limit_time (self, self->odbc);
}

const ml_odbc_error_t *ml_contract_error (ml_contract_t *self)
{
    assert (self);
    return self->stream_failed && self->stream_odbc ? ml_odbc_error (self->stream_odbc)
                                                    : ml_odbc_error (self->odbc);
}

int ml_contract_version (ml_contract_t *self, int *version, char *epoch, size_t epoch_size)
{
    assert (self);
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->version, NULL);
    if (!query)
        return -1;
    int rc = ml_query_fetch (query);
    int64_t number = 0;
    const char *text = rc == 1 ? ml_query_text (query, 1) : NULL;
    if (rc != 1 || ml_query_int64 (query, 0, &number) != 0 || !text) {
        ml_query_destroy (&query);
        return -1;
    }
    *version = (int)number;
    snprintf (epoch, epoch_size, "%s", text);
    ml_query_destroy (&query);
    return 0;
}

int ml_contract_check (ml_contract_t *self, char *text, size_t text_size, char *epoch,
                       size_t epoch_size)
{
    int version = 0;
    if (ml_contract_version (self, &version, epoch, epoch_size) != 0) {
        snprintf (text, text_size,
                  "the matterlink contract is not installed in this database (%s). Install it "
                  "with sql/%s/contract.sql (after sql/%s/schema.sql for the reference schema)",
                  ml_contract_error (self)->message, self->dialect->name, self->dialect->name);
        return -1;
    }
    if (version != ML_CONTRACT_VERSION) {
        snprintf (text, text_size,
                  "the matter database has contract version %d but this agent speaks version "
                  "%d. Run sql/%s/contract.sql from this agent's release to %s the contract",
                  version, ML_CONTRACT_VERSION, self->dialect->name,
                  version < ML_CONTRACT_VERSION ? "upgrade" : "match");
        return -1;
    }
    return 0;
}

//  Read the high-water inside the caller's transaction.
static int s_high_water (ml_contract_t *self, uint64_t *high_water)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->high_water, NULL);
    if (!query)
        return -1;
    int64_t value = 0;
    int rc = ml_query_fetch (query) == 1 && ml_query_int64 (query, 0, &value) == 0 && value >= 0
                 ? 0
                 : -1;
    ml_query_destroy (&query);
    if (rc == 0)
        *high_water = (uint64_t)value;
    return rc;
}

int ml_contract_high_water (ml_contract_t *self, uint64_t *high_water)
{
    //  On the server dialects reading the high-water stamps committed changes with their
    //  change ids (docs/contract.md, "stamp on read"): a write, so it gets its own
    //  transaction and is committed before any change is read.
    if (ml_odbc_begin (self->odbc) != 0)
        return -1;
    if (s_high_water (self, high_water) != 0) {
        ml_odbc_rollback (self->odbc);
        return -1;
    }
    return ml_odbc_commit (self->odbc);
}

//  Copy a column into a field. Descriptive text longer than the field is cut at a UTF-8
//  character boundary; an identifier that does not fit returns false (cutting it would
//  name a different invoice).
static bool s_copy (char *field, size_t size, const char *value, bool may_cut)
{
    if (!value) {
        *field = 0;
        return true;
    }
    size_t length = strlen (value);
    if (length >= size) {
        if (!may_cut)
            return false;
        length = size - 1;
        while (length > 0 && ((unsigned char)value[length] & 0xC0) == 0x80)
            length--;
    }
    memcpy (field, value, length);
    field[length] = 0;
    return true;
}

#define S_COPY(field, column, may_cut)                                                             \
    s_copy ((field), sizeof (field), ml_query_text (query, (column)), (may_cut))

//  Read the item columns starting at column first into a new item of batch. Returns 1 for
//  an item, 0 for a row that was skipped (logged), -1 if the batch is full.
int ml_contract_read_item (ml_query_t *query, int first, char op, uint64_t change_id,
                           ml_msg_t *batch)
{
    ml_item_t *item = ml_msg_add_item (batch);
    if (!item)
        return -1;
    const char *kind = ml_query_text (query, first);
    int64_t source_id = 0;
    item->op = op;
    item->change_id = change_id;
    item->kind = kind && strcmp (kind, "trust") == 0 ? 'T' : 'I';
    bool ok = kind && (strcmp (kind, "trust") == 0 || strcmp (kind, "invoice") == 0) &&
              ml_query_int64 (query, first + 1, &source_id) == 0 && source_id > 0;
    item->source_id = (uint64_t)source_id;
    if (ok && op == 'U') {
        int64_t total = 0, balance = 0;
        ok = S_COPY (item->invoice_number, first + 2, false) &&
             S_COPY (item->invoice_date, first + 3, false) &&
             S_COPY (item->due_date, first + 4, false) &&
             S_COPY (item->client_number, first + 5, false) &&
             S_COPY (item->client_name, first + 6, true) &&
             S_COPY (item->matter_number, first + 7, false) &&
             S_COPY (item->matter_description, first + 8, true) &&
             S_COPY (item->currency, first + 9, false) && S_COPY (item->status, first + 12, true) &&
             ml_query_int64 (query, first + 11, &balance) == 0;
        if (ok && item->kind == 'I')
            ok = ml_query_int64 (query, first + 10, &total) == 0;
        item->total_minor = total;
        item->balance_minor = balance;
    }
    const char *why = "an identifier is missing or longer than 63 bytes, or an amount is not an "
                      "integer";
    //  The link's own rules (ISO currency, real dates), checked here too: the core refuses
    //  a whole batch that breaks them, and the same row would come again in every snapshot.
    const char *problem = ok ? ml_msg_item_problem (item) : NULL;
    if (problem) {
        ok = false;
        why = problem;
    }
    const char *what = kind && strcmp (kind, "trust") == 0 ? "matter" : "invoice";
    bool kind_known = kind && (strcmp (kind, "trust") == 0 || strcmp (kind, "invoice") == 0);
    if (!ok && op == 'U' && change_id != 0 && kind_known && source_id > 0) {
        //  A change the link cannot carry: the replica must not keep the row's last good
        //  version, which could be paid against. It goes as a removal until it is readable.
        char item_kind = item->kind;
        memset (item, 0, sizeof *item);
        item->kind = item_kind;
        item->op = 'R';
        item->change_id = change_id;
        item->source_id = (uint64_t)source_id;
        ml_log (ML_LOG_ERROR,
                "a changed matter-database row the link cannot carry (%s id %lld: %s) is removed "
                "from the replica until it is fixed",
                what, (long long)source_id, why);
        return 1;
    }
    if (!ok) {
        ml_log (ML_LOG_ERROR,
                "skipped a matter-database row the link cannot carry (%s id %lld): %s", what,
                (long long)source_id, why);
        batch->item_count--;
        return 0;
    }
    return 1;
}

static int s_page (ml_contract_t *self, const char *sql, uint64_t *after, size_t limit,
                   ml_msg_t *batch)
{
    ml_query_t *query = ml_odbc_query (self->odbc, sql, "ii", (int64_t)*after, (int64_t)limit);
    if (!query)
        return -1;
    int rows = 0, rc;
    while ((rc = ml_query_fetch (query)) == 1) {
        int64_t source_id = 0;
        if (ml_query_int64 (query, 1, &source_id) == 0 && (uint64_t)source_id > *after)
            *after = (uint64_t)source_id;
        if (ml_contract_read_item (query, 0, 'U', 0, batch) < 0)
            break;
        rows++;
    }
    ml_query_destroy (&query);
    return rc < 0 ? -1 : rows;
}

int ml_contract_open_items (ml_contract_t *self, uint64_t *after, size_t limit, ml_msg_t *batch)
{
    return s_page (self, self->dialect->open_items, after, limit, batch);
}

int ml_contract_trust_balances (ml_contract_t *self, uint64_t *after, size_t limit, ml_msg_t *batch)
{
    return s_page (self, self->dialect->trust_balances, after, limit, batch);
}

int ml_contract_snapshot_begin (ml_contract_t *self)
{
    assert (self);
    ml_contract_snapshot_end (self);
    self->phase = 0;
    self->after = 0;
    if (self->dialect->stream_open_items) {
        ml_odbc_error_t error;
        self->stream_odbc = ml_odbc_new_existing (self->connection_string, &error);
        if (self->stream_odbc && s_limit_time (self, self->stream_odbc) != 0)
            ml_odbc_destroy (&self->stream_odbc);
        if (!self->stream_odbc) {
            ml_log (ML_LOG_WARNING, "cannot open the snapshot connection: %s", error.message);
            self->phase = 2;
            return -1;
        }
    }
    return 0;
}

//  Streaming: fetch from one open query per phase, whatever the table size.
static int s_stream_next (ml_contract_t *self, size_t limit, ml_msg_t *batch)
{
    int rows = 0;
    while ((size_t)rows < limit && self->phase < 2) {
        if (!self->stream) {
            const char *sql = self->phase == 0 ? self->dialect->stream_open_items
                                               : self->dialect->stream_trust_balances;
            self->stream = ml_odbc_query (self->stream_odbc, sql, NULL);
            if (!self->stream) {
                self->stream_failed = true;
                return -1;
            }
        }
        int rc = ml_query_fetch (self->stream);
        if (rc < 0) {
            self->stream_failed = true;
            return -1;
        }
        if (rc == 0) {
            ml_query_destroy (&self->stream);
            self->phase++;
            continue;
        }
        if (ml_contract_read_item (self->stream, 0, 'U', 0, batch) < 0)
            break;
        rows++;
    }
    return rows;
}

int ml_contract_snapshot_next (ml_contract_t *self, size_t limit, ml_msg_t *batch)
{
    assert (self && batch);
    self->stream_failed = false;
    if (self->dialect->stream_open_items)
        return s_stream_next (self, limit, batch);
    //  Paging: short keyset pages, each its own short read.
    while (self->phase < 2) {
        int rows = s_page (
            self, self->phase == 0 ? self->dialect->open_items : self->dialect->trust_balances,
            &self->after, limit, batch);
        if (rows != 0)
            return rows;
        self->phase++;
        self->after = 0;
    }
    return 0;
}

void ml_contract_snapshot_end (ml_contract_t *self)
{
    assert (self);
    ml_query_destroy (&self->stream);
    ml_odbc_destroy (&self->stream_odbc);
    self->stream_failed = false;
    self->phase = 2;
}

int ml_contract_changes (ml_contract_t *self, uint64_t since, uint64_t upto, size_t limit,
                         ml_msg_t *batch, uint64_t *last)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->changes, "iii", (int64_t)since,
                                       (int64_t)upto, (int64_t)limit);
    if (!query)
        return -1;
    int rows = 0, rc;
    *last = since;
    while ((rc = ml_query_fetch (query)) == 1) {
        int64_t change_id = 0;
        const char *op = ml_query_text (query, 1);
        if (ml_query_int64 (query, 0, &change_id) != 0 || change_id <= 0 || !op) {
            rc = -1;
            break;
        }
        *last = (uint64_t)change_id;
        if (ml_contract_read_item (query, 2, strcmp (op, "upsert") == 0 ? 'U' : 'R',
                                   (uint64_t)change_id, batch) < 0)
            break;
        rows++;
    }
    ml_query_destroy (&query);
    return rc < 0 ? -1 : rows;
}

//  The posting as the JSON document the contract's apply operation takes (new reference).
//  "reverses" is the UUID of the posting a reversal gives money back from, or null.
static json_t *s_posting_document (const ml_posting_t *posting)
{
    json_t *lines = json_array ();
    for (size_t index = 0; index < posting->line_count; index++) {
        const ml_line_t *line = &posting->lines[index];
        json_array_append_new (
            lines, json_pack ("{s:s, s:s, s:I}", "kind", line->kind == 'T' ? "trust" : "invoice",
                              line->kind == 'T' ? "matter_number" : "invoice_number",
                              line->reference, "amount_minor", (json_int_t)line->amount_minor));
    }
    json_t *reverses = *posting->reverses ? json_string (posting->reverses) : json_null ();
    return json_pack (
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "posting_uuid",
        posting->posting_uuid, "received_on", posting->received_on, "account_number",
        posting->account_number, "client_number", posting->client_number, "payer_name",
        posting->payer_name, "payer_email", posting->payer_email, "currency", posting->currency,
        "amount_minor", (json_int_t)posting->amount_minor, "ar_message", posting->ar_message,
        "processor_txn", posting->processor_txn, "reverses", reverses, "allocations", lines);
}

//  A JSON value as text, ASCII only (\u escapes): no driver code page can damage a payer's
//  name on the way. Steals value; caller frees the text.
static char *s_json_text (json_t *value)
{
    char *text = value ? json_dumps (value, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref (value);
    return text;
}

static char *s_posting_json (const ml_posting_t *posting)
{
    return s_json_text (s_posting_document (posting));
}

//  The reason code after "ML001 " in a database message ("invoice_not_open").
static void s_reason (const char *message, char *reason, size_t size)
{
    const char *start = strstr (message, "ML001 ");
    size_t length = 0;
    if (start) {
        start += 6;
        while (length + 1 < size &&
               ((start[length] >= 'a' && start[length] <= 'z') || start[length] == '_'))
            length++;
    }
    if (length == 0)
        snprintf (reason, size, "rejected");
    else {
        memcpy (reason, start, length);
        reason[length] = 0;
    }
}

//  Read the stored result of a posting into result. Returns 1 found, 0 not found, -1 error.
static int s_read_result (ml_contract_t *self, const char *uuid, ml_msg_t *result)
{
    ml_query_t *query = ml_odbc_query (self->odbc, self->dialect->result, "s", uuid);
    if (!query)
        return -1;
    int rc = ml_query_fetch (query);
    if (rc == 1) {
        const char *status = ml_query_text (query, 1);
        snprintf (result->posting_uuid, sizeof result->posting_uuid, "%s", uuid);
        snprintf (result->status, sizeof result->status, "%s", status ? status : "");
        s_copy (result->receipt_id, sizeof result->receipt_id, ml_query_text (query, 2), true);
        s_copy (result->reason, sizeof result->reason, ml_query_text (query, 3), true);
    }
    ml_query_destroy (&query);
    return rc;
}

//  After COMMIT, read each result again on the connection, outside any transaction: only a
//  result the database shows now is reported. A COMMIT can be taken for done when it was
//  not: PostgreSQL answers COMMIT in an aborted transaction with ROLLBACK and no error, and
//  an ODBC driver may report success for a COMMIT with no transaction open. The chaos suite
//  caught a posting reported "posted" as PostgreSQL stopped, whose receipt was not there
//  after the restart. A result that cannot be read back (the connection went too) is not
//  reported; the core delivers the posting again and the idempotent apply answers it.
//  Test hook: MATTERLINK_TEST_LOST_COMMITS=N makes the first N commits of postings roll
//  back while they report success, as a driver that takes a lost COMMIT for done would.
static int s_commit_postings (ml_contract_t *self)
{
    static int lost = -1;
    if (lost < 0) {
        const char *hook = getenv ("MATTERLINK_TEST_LOST_COMMITS");
        lost = hook ? atoi (hook) : 0;
    }
    if (lost > 0) {
        lost--;
        ml_log (ML_LOG_WARNING, "test hook: this commit is rolled back and reported done");
        ml_odbc_rollback (self->odbc);
        return 0;
    }
    return ml_odbc_commit (self->odbc);
}

static bool s_confirm (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                       ml_msg_t **results)
{
    for (size_t index = 0; index < count; index++) {
        ml_msg_t *seen = ml_msg_new (ML_MSG_POSTING_RESULT);
        bool same = s_read_result (self, postings[index]->posting_uuid, seen) == 1 &&
                    strcmp (seen->status, results[index]->status) == 0 &&
                    strcmp (seen->receipt_id, results[index]->receipt_id) == 0;
        ml_msg_destroy (&seen);
        if (!same) {
            ml_log (ML_LOG_WARNING,
                    "posting %s: its result could not be read back after the commit; not "
                    "answered now (the core delivers it again)",
                    postings[index]->posting_uuid);
            return false;
        }
    }
    return true;
}

int ml_contract_apply (ml_contract_t *self, const ml_posting_t *posting, ml_msg_t *result)
{
    assert (self && posting && result);
    char *document = s_posting_json (posting);
    if (!document)
        return -1;
    if (ml_odbc_begin (self->odbc) != 0) {
        free (document);
        return -1;
    }
    int64_t applied = ml_odbc_execute (self->odbc, self->dialect->apply, "s", document);
    free (document);
    if (applied < 0) {
        ml_odbc_error_t error = *ml_odbc_error (self->odbc);
        ml_odbc_rollback (self->odbc);
        if (error.kind != ML_ODBC_BUSINESS && error.kind != ML_ODBC_DATA)
            return -1;
        //  A final answer: record it, so a repeated delivery returns the same reason even
        //  if the invoice changes in the meantime.
        char reason[128];
        if (error.kind == ML_ODBC_BUSINESS)
            s_reason (error.message, reason, sizeof reason);
        else
            snprintf (reason, sizeof reason, "data_error (SQLSTATE %s)", error.sqlstate);
        if (ml_odbc_begin (self->odbc) != 0)
            return -1;
        if (ml_odbc_execute (self->odbc, self->dialect->reject, "ss", posting->posting_uuid,
                             reason) < 0) {
            ml_odbc_rollback (self->odbc);
            return -1;
        }
    }
    uint64_t high_water = 0;
    if (s_read_result (self, posting->posting_uuid, result) != 1 ||
        s_high_water (self, &high_water) != 0) {
        ml_odbc_rollback (self->odbc);
        return -1;
    }
    if (s_commit_postings (self) != 0)
        return -1;
    ml_posting_t *confirmed = (ml_posting_t *)posting;
    if (!s_confirm (self, &confirmed, 1, &result))
        return -1;
    result->id = ML_MSG_POSTING_RESULT;
    result->cursor = high_water;
    return 0;
}

//  The set-based path: one call applies the whole batch (it refuses, writing nothing, if
//  any posting would be rejected), one query reads every result back. Returns true when
//  every result was read.
static bool s_apply_many (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                          ml_msg_t **results)
{
    json_t *documents = json_array ();
    json_t *uuids = json_array ();
    for (size_t index = 0; index < count; index++) {
        json_array_append_new (documents, s_posting_document (postings[index]));
        json_array_append_new (uuids, json_string (postings[index]->posting_uuid));
    }
    char *documents_text = s_json_text (documents);
    char *uuids_text = s_json_text (uuids);
    bool ok = documents_text && uuids_text &&
              ml_odbc_execute (self->odbc, self->dialect->apply_many, "s", documents_text) >= 0;
    ml_query_t *query =
        ok ? ml_odbc_query (self->odbc, self->dialect->results_many, "s", uuids_text) : NULL;
    size_t found = 0;
    while (query && ml_query_fetch (query) == 1) {
        const char *uuid = ml_query_text (query, 0);
        for (size_t index = 0; uuid && index < count; index++) {
            if (strcmp (postings[index]->posting_uuid, uuid) != 0 || *results[index]->status)
                continue;
            ml_msg_t *result = results[index];
            snprintf (result->posting_uuid, sizeof result->posting_uuid, "%s", uuid);
            s_copy (result->status, sizeof result->status, ml_query_text (query, 1), true);
            s_copy (result->receipt_id, sizeof result->receipt_id, ml_query_text (query, 2), true);
            s_copy (result->reason, sizeof result->reason, ml_query_text (query, 3), true);
            found++;
            break;
        }
    }
    ml_query_destroy (&query);
    free (documents_text);
    free (uuids_text);
    return ok && found == count;
}

size_t ml_contract_apply_batch (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                                ml_msg_t **results)
{
    assert (self && postings && results);
    if (count == 0)
        return 0;
    for (size_t index = 0; index < count; index++)
        *results[index]->status = 0;
    bool ok = ml_odbc_begin (self->odbc) == 0;
    bool set_based = ok && self->dialect->apply_many && count > 1;
    if (set_based)
        ok = s_apply_many (self, postings, count, results);
    for (size_t index = 0; ok && !set_based && index < count; index++) {
        char *document = s_posting_json (postings[index]);
        ok = document && ml_odbc_execute (self->odbc, self->dialect->apply, "s", document) >= 0;
        free (document);
    }
    uint64_t high_water = 0;
    for (size_t index = 0; ok && !set_based && index < count; index++)
        ok = s_read_result (self, postings[index]->posting_uuid, results[index]) == 1;
    ok = ok && s_high_water (self, &high_water) == 0;
    if (ok && s_commit_postings (self) == 0) {
        if (!s_confirm (self, postings, count, results))
            return 0;
        for (size_t index = 0; index < count; index++) {
            results[index]->id = ML_MSG_POSTING_RESULT;
            results[index]->cursor = high_water;
        }
        return count;
    }
    ml_odbc_rollback (self->odbc);
    //  One at a time: the rejection of one posting must not hold back the others.
    size_t answered = 0;
    while (answered < count && ml_contract_apply (self, postings[answered], results[answered]) == 0)
        answered++;
    return answered;
}
