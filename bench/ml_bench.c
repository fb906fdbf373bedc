/*  ml_bench: the measurements behind bench/run.sh. Each subcommand prints one line of
    figures ("key=value ...") for the table; nothing here is a pass/fail test.

    ml_bench fetch DIALECT CONNECTION PAGE
        raw ODBC rate of the agent's own snapshot reader (the same queries), without the link
    ml_bench apply DIALECT CONNECTION COUNT BATCH
        raw rate of the contract's apply operation called directly, BATCH per transaction
    ml_bench core ENDPOINT AGENTS_DIR CORE_CERT MODE [COUNT WINDOW]
        a stand-in core for the real agent over real CURVE sockets: MODE snapshot acknowledges
        every batch on receipt and reports rows/s until SNAPSHOT-END; MODE postings sends
        COUNT postings (1 cent on successive open invoices) with WINDOW in flight and reports
        results/s
    ml_bench search ADMIN_ENDPOINT FIRM COUNT [CLIENTS INVOICES]
        COUNT staff searches one after another through the real core's admin API (REQ, one
        JSON frame each way), so over CURVE to the real agent and its matter database and
        back: a fixed mix of search kinds whose values follow the sample data's numbering
        (sql/sample.sh with CLIENTS clients and INVOICES invoices, default 20000 and
        1000000). Prints the round trips' percentiles; each kind's go to stderr.
    ml_bench ops ADMIN_ENDPOINT FIRM COUNT CLIENTS [pay]
        status and one client's open-items, COUNT of each, one after another (percentiles);
        with pay, each client found with open items also paid 0.01 through the admin API
    ml_bench ingest STORE ROWS CLIENTS [TRANSACTION_MS]
        the core store's side of a snapshot alone: ROWS rows shaped like the sample data's
        (CLIENTS clients, their matters, invoices in date order) written into a new SQLite
        store the way the ingest thread writes them (transactions of at most TRANSACTION_MS,
        default 20, then SNAPSHOT-END); prints rows/s and the transactions' p99 and longest.
*/
#include "ml_contract.h"
#include "ml_log.h"
#include "ml_store.h"
#include "ml_msg.h"
#include "ml_odbc.h"

#include <assert.h>
#include <czmq.h>
#include <jansson.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double s_seconds (int64_t start)
{
    return (double)(zclock_usecs () - start) / 1e6;
}

static int s_fetch (const char *dialect, const char *connection, int page)
{
    ml_odbc_error_t error;
    ml_contract_t *contract = ml_contract_new (dialect, connection, &error);
    if (!contract) {
        fprintf (stderr, "ml_bench: %s\n", error.message);
        return 1;
    }
    //  The agent's own snapshot reader, the same queries the agent runs, without the link.
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    uint64_t rows = 0;
    int64_t start = zclock_usecs ();
    int got = ml_contract_snapshot_begin (contract);
    while (got == 0 && (got = ml_contract_snapshot_next (contract, (size_t)page, batch)) > 0) {
        rows += (uint64_t)got;
        ml_msg_clear_items (batch);
        got = 0;
    }
    double elapsed = s_seconds (start);
    printf ("rows=%llu seconds=%.2f rows_per_second=%.0f\n", (unsigned long long)rows, elapsed,
            rows / elapsed);
    ml_msg_destroy (&batch);
    ml_contract_destroy (&contract);
    return got < 0 ? 1 : 0;
}

//  Postings of one cent each on successive open invoices (one line each), read from the
//  open-items operation so every one is valid. Caller destroys the messages.
static size_t s_make_postings (ml_contract_t *contract, ml_msg_t **postings, size_t count)
{
    ml_msg_t *page = ml_msg_new (ML_MSG_SNAPSHOT);
    uint64_t after = 0;
    size_t made = 0;
    while (made < count) {
        ml_msg_clear_items (page);
        if (ml_contract_open_items (contract, &after, 5000, page) <= 0)
            break;
        for (size_t index = 0; index < page->item_count && made < count; index++) {
            ml_item_t *item = &page->items[index];
            ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
            ml_posting_t *posting = &message->posting;
            zuuid_t *uuid = zuuid_new ();
            snprintf (posting->posting_uuid, sizeof posting->posting_uuid, "%s",
                      zuuid_str_canonical (uuid));
            zuuid_destroy (&uuid);
            strcpy (posting->received_on, "2026-11-22");
            strcpy (posting->account_number, "OP-001");
            snprintf (posting->client_number, sizeof posting->client_number, "%s",
                      item->client_number);
            snprintf (posting->currency, sizeof posting->currency, "%s", item->currency);
            posting->amount_minor = 1;
            ml_line_t line = {'I', "", 1};
            snprintf (line.reference, sizeof line.reference, "%s", item->invoice_number);
            ml_msg_set_lines (message, &line, 1);
            postings[made++] = message;
        }
    }
    ml_msg_destroy (&page);
    return made;
}

static int s_apply (const char *dialect, const char *connection, size_t count, size_t batch)
{
    ml_odbc_error_t error;
    ml_contract_t *contract = ml_contract_new (dialect, connection, &error);
    if (!contract) {
        fprintf (stderr, "ml_bench: %s\n", error.message);
        return 1;
    }
    ml_msg_t **postings = calloc (count, sizeof (ml_msg_t *));
    count = s_make_postings (contract, postings, count);
    ml_posting_t **views = calloc (batch, sizeof (ml_posting_t *));
    ml_msg_t **results = calloc (batch, sizeof (ml_msg_t *));
    for (size_t index = 0; index < batch; index++)
        results[index] = ml_msg_new (ML_MSG_POSTING_RESULT);
    size_t posted = 0;
    int64_t start = zclock_usecs ();
    for (size_t first = 0; first < count; first += batch) {
        size_t size = count - first < batch ? count - first : batch;
        for (size_t index = 0; index < size; index++)
            views[index] = &postings[first + index]->posting;
        size_t answered = ml_contract_apply_batch (contract, views, size, results);
        for (size_t index = 0; index < answered; index++)
            posted += strcmp (results[index]->status, "posted") == 0;
    }
    double elapsed = s_seconds (start);
    printf ("postings=%zu posted=%zu seconds=%.2f postings_per_second=%.0f\n", count, posted,
            elapsed, posted / elapsed);
    for (size_t index = 0; index < count; index++)
        ml_msg_destroy (&postings[index]);
    for (size_t index = 0; index < batch; index++)
        ml_msg_destroy (&results[index]);
    free (postings);
    free (views);
    free (results);
    ml_contract_destroy (&contract);
    return 0;
}

static void s_send (zsock_t *router, zframe_t *routing, ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (ml_msg_encode (message, &data, &size) != 0)
        return;
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &(zframe_t *){zframe_dup (routing)});
    zmsg_addmem (out, data, size);
    free (data);
    zmsg_send (&out, router);
}

//  A stand-in core: it speaks MLP/1 to the real agent over CURVE and measures.
static int s_core (const char *endpoint, const char *agents, const char *certificate_path,
                   const char *mode, size_t count, size_t window, const char *dialect,
                   const char *connection)
{
    zactor_t *auth = zactor_new (zauth, NULL);
    zstr_sendx (auth, "CURVE", agents, NULL);
    zsock_wait (auth);
    zcert_t *certificate = zcert_load (certificate_path);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_zap_domain (router, "matterlink");
    zsock_set_curve_server (router, 1);
    zcert_apply (certificate, router);
    zsock_set_maxmsgsize (router, ML_MAX_MESSAGE_SIZE);
    zsock_set_rcvhwm (router, 100000);
    zsock_set_sndhwm (router, 100000);
    if (zsock_bind (router, "%s", endpoint) < 0) {
        fprintf (stderr, "ml_bench: cannot bind %s\n", endpoint);
        return 1;
    }
    bool snapshot = streq (mode, "snapshot");
    ml_msg_t **postings = NULL;
    if (!snapshot) {
        ml_odbc_error_t error;
        ml_contract_t *contract = ml_contract_new (dialect, connection, &error);
        if (!contract) {
            fprintf (stderr, "ml_bench: %s\n", error.message);
            return 1;
        }
        postings = calloc (count, sizeof (ml_msg_t *));
        count = s_make_postings (contract, postings, count);
        ml_contract_destroy (&contract);
    }
    uint64_t rows = 0, batches = 0;
    size_t sent = 0, answered = 0, posted = 0;
    int64_t start = 0;
    bool done = false;
    zframe_t *routing = NULL;
    while (!done && !zsys_interrupted) {
        zmsg_t *incoming = zmsg_recv (router);
        if (!incoming)
            break;
        zframe_destroy (&routing);
        routing = zmsg_pop (incoming);
        zframe_t *body = zmsg_pop (incoming);
        const char *error = NULL;
        ml_msg_t *message = ml_msg_decode (zframe_data (body), zframe_size (body), &error);
        zframe_destroy (&body);
        zmsg_destroy (&incoming);
        if (!message)
            continue;
        if (message->id == ML_MSG_HELLO) {
            ml_msg_t *welcome = ml_msg_new (ML_MSG_WELCOME);
            welcome->heartbeat_ms = 5000;
            welcome->window = snapshot ? 16 : (uint32_t)window;
            //  Postings are measured alone: resume at the agent's high-water, no snapshot.
            welcome->resync = snapshot ? 1 : 0;
            welcome->cursor = snapshot ? 0 : message->high_water;
            s_send (router, routing, welcome);
            ml_msg_destroy (&welcome);
            start = zclock_usecs ();
            for (; !snapshot && sent < count && sent < window; sent++)
                s_send (router, routing, postings[sent]);
        } else if (message->id == ML_MSG_SNAPSHOT || message->id == ML_MSG_SNAPSHOT_END) {
            rows += message->item_count;
            batches++;
            ml_msg_t *ack = ml_msg_new (ML_MSG_ACK);
            ack->batch = message->batch;
            s_send (router, routing, ack);
            ml_msg_destroy (&ack);
            if (message->id == ML_MSG_SNAPSHOT_END && snapshot)
                done = true;
        } else if (message->id == ML_MSG_POSTING_RESULT) {
            answered++;
            posted += streq (message->status, "posted");
            if (sent < count)
                s_send (router, routing, postings[sent++]);
            done = answered == count;
        } else if (message->id == ML_MSG_PING) {
            ml_msg_t *pong = ml_msg_new (ML_MSG_PONG);
            s_send (router, routing, pong);
            ml_msg_destroy (&pong);
        }
        ml_msg_destroy (&message);
    }
    double elapsed = s_seconds (start);
    if (snapshot)
        printf ("rows=%llu batches=%llu seconds=%.2f rows_per_second=%.0f\n",
                (unsigned long long)rows, (unsigned long long)batches, elapsed, rows / elapsed);
    else
        printf ("postings=%zu posted=%zu seconds=%.2f postings_per_second=%.0f\n", answered, posted,
                elapsed, answered / elapsed);
    for (size_t index = 0; postings && index < count; index++)
        ml_msg_destroy (&postings[index]);
    free (postings);
    zframe_destroy (&routing);
    zsock_destroy (&router);
    zcert_destroy (&certificate);
    zactor_destroy (&auth);
    return 0;
}

//  Search round trips ------------------------------------------------------------------------

//  The kinds of search a staff user makes, each timed on its own as well as together.
typedef enum {
    S_CLIENT_NUMBER_EXACT,
    S_CLIENT_NUMBER_PREFIX,
    S_MATTER_NUMBER_EXACT,
    S_MATTER_NUMBER_PREFIX,
    S_INVOICE_NUMBER_EXACT,
    S_INVOICE_NUMBER_PREFIX,
    S_CLIENT_NAME_COMMON,
    S_CLIENT_NAME_RARE,
    S_CLIENT_NAME_NONE,
    S_MATTER_DESCRIPTION,
    S_TRUST,
    S_PAYER_VIEW,
    S_KINDS
} s_kind_t;

static const char *s_kind_names[S_KINDS] = {
    "client-number-exact",  "client-number-prefix",  "matter-number-exact", "matter-number-prefix",
    "invoice-number-exact", "invoice-number-prefix", "client-name-common",  "client-name-rare",
    "client-name-none",     "matter-description",    "trust-client-number", "payer-view"};

//  One cycle of the mix: look-ups by number and common names come twice as often as the
//  rest, interleaved so that no kind runs in a burst.
static const s_kind_t s_cycle[] = {S_CLIENT_NUMBER_EXACT,
                                   S_CLIENT_NAME_COMMON,
                                   S_INVOICE_NUMBER_EXACT,
                                   S_MATTER_NUMBER_EXACT,
                                   S_CLIENT_NUMBER_PREFIX,
                                   S_CLIENT_NAME_RARE,
                                   S_INVOICE_NUMBER_PREFIX,
                                   S_MATTER_DESCRIPTION,
                                   S_CLIENT_NUMBER_EXACT,
                                   S_CLIENT_NAME_COMMON,
                                   S_INVOICE_NUMBER_EXACT,
                                   S_MATTER_NUMBER_EXACT,
                                   S_MATTER_NUMBER_PREFIX,
                                   S_CLIENT_NAME_NONE,
                                   S_TRUST,
                                   S_PAYER_VIEW};
#define S_CYCLE_LENGTH (sizeof s_cycle / sizeof s_cycle[0])

//  Fragments of the sample scripts' word lists (sql/*/sample.sql). With 20,000 clients the
//  common ones match 250 to 2,500 clients, the rare ones 1 to 10, the last list nothing.
static const char *s_names_common[] = {"smith",     "son",      "llc",
                                       "estate of", "holdings", "family trust"};
static const char *s_names_rare[] = {"olga okafor", "hiroshi okafor", "ashworth marine",
                                     "okafor brewing", "kowalski analytics"};
static const char *s_names_none[] = {"xylophone", "zzqx", "quetzal"};
static const char *s_descriptions[] = {"probate", "trademark",        "harbor drive",
                                       "divorce", "boundary dispute", "acquisition of"};
#define S_PICK(list, n) ((list)[s_hash ((n), 3) % (sizeof (list) / sizeof ((list)[0]))])

//  The searches may be slow on dialects without search indexes: measure them rather than
//  let the core's default deadline (ML_FINDER_DEADLINE_MS) turn them into errors.
#define S_SEARCH_DEADLINE_MS ML_MAX_DEADLINE_MS

//  A well-mixed 64-bit hash of a search's position (splitmix64), so the values are the same
//  on every run.
static uint64_t s_hash (uint64_t n, uint64_t salt)
{
    uint64_t z = n * 0x9E3779B97F4A7C15ULL + salt * 0xBF58476D1CE4E5B9ULL + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  A number from 1 to top, as text, drawn for search n.
static void s_number (char *buffer, size_t size, const char *prefix, int width, uint64_t top,
                      uint64_t n)
{
    snprintf (buffer, size, "%s%0*llu", prefix, width,
              (unsigned long long)(1 + s_hash (n, 1) % (top ? top : 1)));
}

//  The same number with its last one or two digits left off, as staff type a prefix.
static void s_prefix (char *buffer, size_t size, const char *prefix, int width, uint64_t top,
                      uint64_t n)
{
    s_number (buffer, size, prefix, width, top, n);
    size_t length = strlen (buffer);
    buffer[length - 1 - s_hash (n, 2) % 2] = 0;
}

//  The admin request for search n of a kind (new reference).
static json_t *s_search_request (s_kind_t kind, uint64_t n, const char *firm, int64_t payer_id,
                                 uint64_t clients, uint64_t invoices)
{
    char text[64];
    const char *by = NULL, *match = NULL, *value = text;
    //  Every client has at least one matter and on average three (matters are numbered in
    //  opening order): twice the clients stays within the matters that exist.
    uint64_t matters = 2 * clients;
    switch (kind) {
        case S_CLIENT_NUMBER_EXACT:
            s_number (text, sizeof text, "C-", 5, clients, n);
            by = "client-number", match = "exact";
            break;
        case S_CLIENT_NUMBER_PREFIX:
            s_prefix (text, sizeof text, "C-", 5, clients, n);
            by = "client-number", match = "prefix";
            break;
        case S_MATTER_NUMBER_EXACT:
            s_number (text, sizeof text, "M-", 6, matters, n);
            by = "matter-number", match = "exact";
            break;
        case S_MATTER_NUMBER_PREFIX:
            s_prefix (text, sizeof text, "M-", 6, matters, n);
            by = "matter-number", match = "prefix";
            break;
        case S_INVOICE_NUMBER_EXACT:
            s_number (text, sizeof text, "INV-", 7, invoices, n);
            by = "invoice-number", match = "exact";
            break;
        case S_INVOICE_NUMBER_PREFIX:
            s_prefix (text, sizeof text, "INV-", 7, invoices, n);
            by = "invoice-number", match = "prefix";
            break;
        case S_CLIENT_NAME_COMMON:
            value = S_PICK (s_names_common, n), by = "client-name", match = "contains";
            break;
        case S_CLIENT_NAME_RARE:
            value = S_PICK (s_names_rare, n), by = "client-name", match = "contains";
            break;
        case S_CLIENT_NAME_NONE:
            value = S_PICK (s_names_none, n), by = "client-name", match = "contains";
            break;
        case S_MATTER_DESCRIPTION:
            value = S_PICK (s_descriptions, n), by = "matter-description", match = "contains";
            break;
        case S_TRUST:
            s_number (text, sizeof text, "C-", 5, clients, n);
            by = "client-number", match = "exact";
            break;
        case S_PAYER_VIEW:
        case S_KINDS:
            break;
    }
    json_t *request =
        kind == S_PAYER_VIEW
            ? json_pack ("{s:s, s:I}", "op", "payer-view", "payer_id", (json_int_t)payer_id)
            : json_pack ("{s:s, s:s, s:s, s:s, s:s}", "op", "search", "firm", firm, "by", by,
                         "text", value, "match", match);
    assert (request);
    if (kind == S_TRUST)
        json_object_set_new (request, "target", json_string ("trust"));
    json_object_set_new (request, "limit", json_integer (50));
    json_object_set_new (request, "deadline_ms", json_integer (S_SEARCH_DEADLINE_MS));
    return request;
}

//  One admin request and its reply. Returns the reply (new reference) if it is ok, else
//  NULL after saying what was asked and what came back. Sets *elapsed_us to the round trip.
static json_t *s_admin_call (zsock_t *socket, json_t *request, int64_t *elapsed_us)
{
    char *text = json_dumps (request, JSON_COMPACT);
    assert (text);
    struct timespec sent, received;
    clock_gettime (CLOCK_MONOTONIC, &sent);
    int rc = zstr_send (socket, text);
    char *answer = rc == 0 ? zstr_recv (socket) : NULL;
    clock_gettime (CLOCK_MONOTONIC, &received);
    if (elapsed_us)
        *elapsed_us = (int64_t)(received.tv_sec - sent.tv_sec) * 1000000 +
                      (received.tv_nsec - sent.tv_nsec) / 1000;
    json_t *reply = answer ? json_loads (answer, 0, NULL) : NULL;
    if (!reply || !json_is_true (json_object_get (reply, "ok"))) {
        fprintf (stderr, "ml_bench: %s\n  request: %s\n  reply: %s\n",
                 !answer ? "no reply from the core's admin API"
                 : reply ? "the core refused a request"
                         : "the reply is not JSON",
                 text, answer ? answer : "(none)");
        json_decref (reply);
        reply = NULL;
    }
    zstr_free (&answer);
    free (text);
    return reply;
}

//  The first open item after a source id: a client, matter and invoice that exist and have
//  something open, as associations need. Returns 0 or -1.
static int s_first_item (zsock_t *socket, const char *firm, uint64_t after, const char *field,
                         char *number, size_t size)
{
    json_t *request =
        json_pack ("{s:s, s:s, s:I, s:i, s:i}", "op", "search", "firm", firm, "after",
                   (json_int_t)after, "limit", 1, "deadline_ms", S_SEARCH_DEADLINE_MS);
    json_t *reply = s_admin_call (socket, request, NULL);
    json_decref (request);
    const char *value = reply ? json_string_value (json_object_get (
                                    json_array_get (json_object_get (reply, "items"), 0), field))
                              : NULL;
    if (value)
        snprintf (number, size, "%s", value);
    else if (reply)
        fprintf (stderr, "ml_bench: no open item after source id %llu\n",
                 (unsigned long long)after);
    json_decref (reply);
    return value ? 0 : -1;
}

//  A payer with a client-, a matter- and an invoice-level association (from three different
//  parts of the invoice range). Returns the payer's id, or 0.
static int64_t s_make_payer (zsock_t *socket, const char *firm, uint64_t invoices)
{
    static const char *levels[] = {"client", "matter", "invoice"};
    static const char *fields[] = {"client_number", "matter_number", "invoice_number"};
    char email[64];
    snprintf (email, sizeof email, "bench-payer-%d@example.com", (int)getpid ());
    json_t *request = json_pack ("{s:s, s:s, s:s, s:s}", "op", "payer-add", "firm", firm, "name",
                                 "Bench Payer", "email", email);
    json_t *reply = s_admin_call (socket, request, NULL);
    json_decref (request);
    int64_t payer_id =
        reply ? json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"))
              : 0;
    json_decref (reply);
    for (int level = 0; level < 3 && payer_id; level++) {
        char number[64];
        if (s_first_item (socket, firm, invoices * (uint64_t)(level + 1) / 4, fields[level], number,
                          sizeof number) != 0)
            return 0;
        request = json_pack ("{s:s, s:I, s:s, s:s, s:i}", "op", "association-add", "payer_id",
                             (json_int_t)payer_id, "level", levels[level], "number", number,
                             "deadline_ms", S_SEARCH_DEADLINE_MS);
        reply = s_admin_call (socket, request, NULL);
        json_decref (request);
        if (!reply)
            return 0;
        json_decref (reply);
    }
    return payer_id;
}

static int s_compare_times (const void *left, const void *right)
{
    int64_t a = *(const int64_t *)left, b = *(const int64_t *)right;
    return (a > b) - (a < b);
}

//  The percent-th percentile (nearest rank) of sorted round trips, in milliseconds.
static double s_percentile (const int64_t *sorted, size_t count, size_t percent)
{
    if (count == 0)
        return 0;
    size_t rank = (percent * count + 99) / 100;
    return (double)sorted[rank ? rank - 1 : 0] / 1000;
}

//  Round trips in microseconds, all of them in order and each kind's apart, and the rows
//  the replies held.
typedef struct {
    int64_t *all;
    int64_t *kind[S_KINDS];
    size_t kind_count[S_KINDS];
    uint64_t kind_rows[S_KINDS];
    uint64_t rows;
    double seconds;
} s_timings_t;

//  The timed searches, after a warm-up that is not counted. Returns 0 or -1 (said why).
static int s_search_measure (zsock_t *socket, const char *firm, size_t count, uint64_t clients,
                             uint64_t invoices, int64_t payer_id, s_timings_t *timings)
{
    for (size_t index = 0; index < S_CYCLE_LENGTH; index++) {
        //  Values of its own, away from those of the timed searches.
        json_t *request = s_search_request (s_cycle[index], UINT32_MAX + (uint64_t)index, firm,
                                            payer_id, clients, invoices);
        json_t *reply = s_admin_call (socket, request, NULL);
        json_decref (request);
        if (!reply)
            return -1;
        json_decref (reply);
    }
    int64_t start = zclock_usecs ();
    for (size_t index = 0; index < count; index++) {
        if (zsys_interrupted)
            return -1;
        s_kind_t kind = s_cycle[index % S_CYCLE_LENGTH];
        json_t *request =
            s_search_request (kind, (uint64_t)index, firm, payer_id, clients, invoices);
        int64_t elapsed_us = 0;
        json_t *reply = s_admin_call (socket, request, &elapsed_us);
        json_decref (request);
        if (!reply)
            return -1;
        size_t found = json_array_size (json_object_get (reply, "items"));
        json_decref (reply);
        timings->all[index] = elapsed_us;
        timings->kind[kind][timings->kind_count[kind]++] = elapsed_us;
        timings->kind_rows[kind] += found;
        timings->rows += found;
    }
    timings->seconds = s_seconds (start);
    return 0;
}

//  Staff searches one after another through the core's admin API, over the link to the
//  real agent and its matter database.
static int s_search (const char *endpoint, const char *firm, size_t count, uint64_t clients,
                     uint64_t invoices)
{
    zsock_t *socket = zsock_new (ZMQ_REQ);
    assert (socket);
    zsock_set_rcvtimeo (socket, S_SEARCH_DEADLINE_MS + 10000);
    zsock_set_linger (socket, 0);
    if (zsock_connect (socket, "%s", endpoint) != 0) {
        fprintf (stderr, "ml_bench: '%s' is not a valid admin endpoint\n", endpoint);
        zsock_destroy (&socket);
        return 1;
    }
    s_timings_t timings = {.all = calloc (count + 1, sizeof (int64_t))};
    assert (timings.all);
    for (int kind = 0; kind < S_KINDS; kind++) {
        timings.kind[kind] = calloc (count + 1, sizeof (int64_t));
        assert (timings.kind[kind]);
    }
    int64_t payer_id = s_make_payer (socket, firm, invoices);
    int rc = payer_id
                 ? s_search_measure (socket, firm, count, clients, invoices, payer_id, &timings)
                 : -1;
    if (rc == 0) {
        qsort (timings.all, count, sizeof (int64_t), s_compare_times);
        printf ("search count=%zu p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f seconds=%.2f "
                "rows_per_search=%.1f\n",
                count, s_percentile (timings.all, count, 50), s_percentile (timings.all, count, 90),
                s_percentile (timings.all, count, 99), s_percentile (timings.all, count, 100),
                timings.seconds, count ? (double)timings.rows / (double)count : 0);
        //  The breakdown goes to stderr, so that stdout stays one line of figures.
        for (int kind = 0; kind < S_KINDS; kind++) {
            size_t samples = timings.kind_count[kind];
            qsort (timings.kind[kind], samples, sizeof (int64_t), s_compare_times);
            fprintf (stderr,
                     "search kind=%s count=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
                     "rows_per_search=%.1f\n",
                     s_kind_names[kind], samples, s_percentile (timings.kind[kind], samples, 50),
                     s_percentile (timings.kind[kind], samples, 99),
                     s_percentile (timings.kind[kind], samples, 100),
                     samples ? (double)timings.kind_rows[kind] / (double)samples : 0);
        }
    }
    for (int kind = 0; kind < S_KINDS; kind++)
        free (timings.kind[kind]);
    free (timings.all);
    zsock_destroy (&socket);
    return rc == 0 ? 0 : 1;
}

//  The core's answers to status and one client's open-items, one after another (issue 14
//  point 3: p99 at most 10 ms each when the core is idle, 50 ms while it stores a snapshot
//  and takes payments). With pay, each client that has open items is also paid 0.01 (a
//  payment on the core's thread: it writes the outbox, so it waits for the store's write
//  lock while a snapshot is written). Prints one line of figures.
static int s_ops (const char *endpoint, const char *firm, size_t count, uint64_t clients, bool pay)
{
    zsock_t *socket = zsock_new (ZMQ_REQ);
    assert (socket);
    zsock_set_rcvtimeo (socket, 60000);
    zsock_set_linger (socket, 0);
    if (zsock_connect (socket, "%s", endpoint) != 0) {
        fprintf (stderr, "ml_bench: '%s' is not a valid admin endpoint\n", endpoint);
        zsock_destroy (&socket);
        return 1;
    }
    int64_t *status = calloc (count, sizeof (int64_t)), *items = calloc (count, sizeof (int64_t));
    int64_t *pays = calloc (count, sizeof (int64_t));
    assert (status && items && pays);
    uint64_t rows = 0;
    size_t paid = 0;
    int rc = 0;
    for (size_t index = 0; index < count && rc == 0; index++) {
        json_t *request = json_pack ("{s:s}", "op", "status");
        json_t *reply = s_admin_call (socket, request, &status[index]);
        json_decref (request);
        json_decref (reply);
        char client[32];
        s_number (client, sizeof client, "C-", 5, clients, (uint64_t)index);
        request = json_pack ("{s:s, s:s, s:s}", "op", "open-items", "firm", firm, "client", client);
        json_t *open = s_admin_call (socket, request, &items[index]);
        json_decref (request);
        size_t found = json_array_size (json_object_get (open, "items"));
        rows += found;
        if (!reply || !open)
            rc = 1;
        json_decref (open);
        if (rc == 0 && pay && found > 0) {
            request = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "pay", "firm", firm,
                                 "client", client, "amount", "0.01", "ar_message", "bench",
                                 "payer_name", "Bench Payer");
            json_t *receipt = s_admin_call (socket, request, &pays[paid]);
            json_decref (request);
            //  A refusal (nothing available: every cent already promised) is not a failure.
            paid += receipt != NULL;
            json_decref (receipt);
        }
    }
    if (rc == 0) {
        qsort (status, count, sizeof (int64_t), s_compare_times);
        qsort (items, count, sizeof (int64_t), s_compare_times);
        qsort (pays, paid, sizeof (int64_t), s_compare_times);
        printf ("requests=%zu status_p50_ms=%.2f status_p99_ms=%.2f open_items_p50_ms=%.2f "
                "open_items_p99_ms=%.2f rows_per_client=%.1f payments=%zu pay_p50_ms=%.2f "
                "pay_p99_ms=%.2f\n",
                count, s_percentile (status, count, 50), s_percentile (status, count, 99),
                s_percentile (items, count, 50), s_percentile (items, count, 99),
                (double)rows / (double)count, paid, s_percentile (pays, paid, 50),
                s_percentile (pays, paid, 99));
    }
    free (status);
    free (items);
    free (pays);
    zsock_destroy (&socket);
    return rc;
}

static int s_ingest (const char *path, size_t rows, uint64_t clients, int64_t transaction_ms)
{
    char error[512];
    ml_store_t *store = ml_store_new (path, error, sizeof error);
    if (!store) {
        fprintf (stderr, "ml_bench: %s\n", error);
        return 1;
    }
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    strcpy (hello->epoch, "bench");
    bool resync = false;
    uint64_t cursor = 0;
    if (ml_store_firm_add (store, "bench", "Bench", "bench-key", "OP-1") != 0 ||
        ml_store_session_open (store, "bench", hello, &resync, &cursor) != 0) {
        fprintf (stderr, "ml_bench: the store could not start a session\n");
        return 1;
    }
    ml_item_t *items = calloc (rows, sizeof (ml_item_t));
    assert (items);
    for (size_t index = 0; index < rows; index++) {
        ml_item_t *item = &items[index];
        uint64_t client = s_hash (index, 1) % clients;
        item->kind = 'I';
        item->op = 'U';
        item->source_id = index + 1;
        snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%07zu", index + 1);
        snprintf (item->invoice_date, sizeof item->invoice_date, "2026-%02u-%02u",
                  (unsigned)(1 + index * 12 / rows % 12), (unsigned)(1 + index % 28));
        snprintf (item->client_number, sizeof item->client_number, "C-%05llu",
                  (unsigned long long)client + 1);
        snprintf (item->client_name, sizeof item->client_name, "Client %llu LLC",
                  (unsigned long long)client + 1);
        snprintf (item->matter_number, sizeof item->matter_number, "M-%06llu",
                  (unsigned long long)(client * 3 + s_hash (index, 2) % 3 + 1));
        snprintf (item->matter_description, sizeof item->matter_description,
                  "General corporate matters");
        strcpy (item->currency, "USD");
        item->total_minor = item->balance_minor = (int64_t)(s_hash (index, 3) % 2500000);
        strcpy (item->status, "open");
    }
    size_t transactions = 0, written = 0;
    int64_t *times = calloc (rows / 100 + 2, sizeof (int64_t));
    assert (times);
    int64_t start = zclock_usecs ();
    while (written < rows) {
        int64_t began = zclock_usecs ();
        int64_t deadline = zclock_mono () + transaction_ms;
        bool ok = ml_store_snapshot_begin (store) == 0;
        while (ok && written < rows && zclock_mono () < deadline) {
            size_t count = rows - written < 500 ? rows - written : 500;
            ok = ml_store_snapshot_write (store, "bench", items + written, count) == 0;
            written += count;
        }
        if (ml_store_snapshot_commit (store, ok) != 0)
            return 1;
        times[transactions++] = zclock_usecs () - began;
    }
    int64_t ended = zclock_usecs ();
    if (ml_store_snapshot_end (store, "bench", 1) != 0)
        return 1;
    double seconds = s_seconds (start);
    //  CPU time too: on a shared machine it varies less than the elapsed time.
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
                 (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
    qsort (times, transactions, sizeof (int64_t), s_compare_times);
    printf ("rows=%zu seconds=%.2f rows_per_second=%.0f cpu_seconds=%.2f transactions=%zu "
            "txn_p99_ms=%.1f txn_max_ms=%.1f end_ms=%.1f\n",
            rows, seconds, (double)rows / seconds, cpu, transactions,
            s_percentile (times, transactions, 99), (double)times[transactions - 1] / 1000,
            (double)(zclock_usecs () - ended) / 1000);
    free (times);
    free (items);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    return 0;
}

int main (int argc, char *argv[])
{
    ml_log_setup ("bench", ML_LOG_WARNING);
    if (argc == 5 && streq (argv[1], "fetch"))
        return s_fetch (argv[2], argv[3], atoi (argv[4]));
    if (argc == 6 && streq (argv[1], "apply"))
        return s_apply (argv[2], argv[3], (size_t)atol (argv[4]), (size_t)atol (argv[5]));
    if (argc == 6 && streq (argv[1], "core"))
        return s_core (argv[2], argv[3], argv[4], argv[5], 0, 0, NULL, NULL);
    if (argc == 10 && streq (argv[1], "core"))
        return s_core (argv[2], argv[3], argv[4], argv[5], (size_t)atol (argv[6]),
                       (size_t)atol (argv[7]), argv[8], argv[9]);
    if ((argc == 5 || argc == 7) && streq (argv[1], "search") && atol (argv[4]) > 0 &&
        (argc == 5 || (atoll (argv[5]) > 0 && atoll (argv[6]) > 0)))
        return s_search (argv[2], argv[3], (size_t)atol (argv[4]),
                         argc == 7 ? (uint64_t)atoll (argv[5]) : 20000,
                         argc == 7 ? (uint64_t)atoll (argv[6]) : 1000000);
    if ((argc == 5 || argc == 6) && streq (argv[1], "ingest") && atol (argv[3]) > 0 &&
        atoll (argv[4]) > 0)
        return s_ingest (argv[2], (size_t)atol (argv[3]), (uint64_t)atoll (argv[4]),
                         argc == 6 ? atoll (argv[5]) : 20);
    if ((argc == 6 || (argc == 7 && streq (argv[6], "pay"))) && streq (argv[1], "ops") &&
        atol (argv[4]) > 0 && atoll (argv[5]) > 0)
        return s_ops (argv[2], argv[3], (size_t)atol (argv[4]), (uint64_t)atoll (argv[5]),
                      argc == 7);
    fprintf (stderr, "usage: ml_bench fetch DIALECT CONNECTION PAGE\n"
                     "       ml_bench apply DIALECT CONNECTION COUNT BATCH\n"
                     "       ml_bench core ENDPOINT AGENTS_DIR CORE_CERT snapshot\n"
                     "       ml_bench core ENDPOINT AGENTS_DIR CORE_CERT postings COUNT WINDOW "
                     "DIALECT CONNECTION\n"
                     "       ml_bench search ADMIN_ENDPOINT FIRM COUNT [CLIENTS INVOICES]\n"
                     "       ml_bench ops ADMIN_ENDPOINT FIRM COUNT CLIENTS [pay]\n"
                     "       ml_bench ingest STORE ROWS CLIENTS [TRANSACTION_MS]\n");
    return 2;
}
