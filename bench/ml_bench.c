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
*/
#include "ml_contract.h"
#include "ml_log.h"
#include "ml_msg.h"
#include "ml_odbc.h"

#include <czmq.h>

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
    fprintf (stderr, "usage: ml_bench fetch DIALECT CONNECTION PAGE\n"
                     "       ml_bench apply DIALECT CONNECTION COUNT BATCH\n"
                     "       ml_bench core ENDPOINT AGENTS_DIR CORE_CERT snapshot\n"
                     "       ml_bench core ENDPOINT AGENTS_DIR CORE_CERT postings COUNT WINDOW "
                     "DIALECT CONNECTION\n");
    return 2;
}
