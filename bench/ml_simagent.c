/*  ml_simagent: a light simulated agent for the scale benchmark (bench/scale.sh). One process
    plays many firms, each with its own CURVE key pair and its own DEALER, speaking MLP/1
    (docs/protocol.md) through the one codec (bus/ml_msg.c). Its matter database is in memory:
    ITEMS open invoices per firm, a change counter, and the postings it applied, so a POSTING is
    applied exactly once by its posting-uuid and a repeat gets the first result back, as the
    contract does (docs/contract.md). Each posted posting lowers its invoices' balances and
    becomes a CHANGES item, as a real matter database's change log would.

    ml_simagent keygen DIR COUNT
        write DIR/fNNNN.cert and DIR/fNNNN.cert_secret for firms f0001 .. fCOUNT (kept if present)
    ml_simagent run ENDPOINT[,ENDPOINT...] CORE_PUBLIC_KEY CERT_DIR COUNT ITEMS   (env
   SIM_SNAPSHOTS=N: at most N firms greet or snapshot at once; default no limit, as independent
   agents would; SIM_POLL_MS: changes are sent at most this often per firm, default 500 as the
   agent's poll_interval_ms) connect COUNT firms (f0001 ...) to the core (firm i to the (i mod N)th
   of N core nodes sharing one store and one key pair), send HELLO and a snapshot of ITEMS invoices
        each, print "replicas_complete seconds=S" once every SNAPSHOT-END is acknowledged (the
        core has committed every replica), then stay connected (heartbeats), apply postings and
        send their changes until SIGTERM; then print the posting counts
    ml_simagent standin ENDPOINT CORE_CERT_SECRET FIRMS SECONDS WINDOW [RATE]
        a stand-in core (no store, any client key): acknowledges every batch on receipt, prints
        "standin_complete seconds=S" once FIRMS snapshots ended, then sends postings to the firms
        round-robin for SECONDS with WINDOW in flight in all (at RATE per second, default as fast
        as they are answered), and prints their rate and round trip percentiles: the simulated
        agent's own ceiling, beside the real core's figures

    Invoice i (1 .. ITEMS) of every firm is INV-00000i of client C-(i/10), balance 100,000.00 USD,
    so a load client can name what to pay without asking.
*/
#include "ml_contract.h"
#include "ml_msg.h"

#include <czmq.h>
#include <time.h>

#define S_BALANCE    INT64_C (10000000) //  100,000.00: room for many small payments
#define S_BATCH_ROWS 1000

typedef enum { S_CONNECTING, S_GREETING, S_SNAPSHOT, S_LIVE } s_state_t;

typedef struct {
    char id[24];
    zsock_t *dealer;
    s_state_t state;
    uint64_t batch, acked_batch, end_batch;
    uint32_t window, heartbeat_ms;
    int64_t last_sent, last_received, retry_at, changes_at;
    uint64_t high_water, snapshot_high_water, sent_cursor, receipts;
    size_t snapshot_next; //  next item to send in the snapshot
    int64_t *balance;
    uint64_t *change_id;
    bool *pending;
    size_t *changed; //  items with a change not yet sent
    size_t changed_count;
    zhashx_t *applied; //  posting-uuid -> its first result's receipt ("" rejected)
    bool complete;
} s_firm_t;

static size_t s_items;
static size_t s_max_greeting;   //  firms greeting or snapshotting at once (0: no limit)
static int64_t s_poll_ms = 500; //  the agent's default poll_interval_ms (docs/config.md)
static uint64_t s_postings, s_repeats, s_rejected;

static int s_send (zsock_t *socket, zframe_t *routing, ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (ml_msg_encode (message, &data, &size) != 0)
        return -1;
    if (routing && zmq_send (zsock_resolve (socket), zframe_data (routing), zframe_size (routing),
                             ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        free (data);
        return -1;
    }
    int rc = zmq_send (zsock_resolve (socket), data, size, ZMQ_DONTWAIT);
    free (data);
    return rc < 0 ? -1 : 0;
}

static int s_firm_send (s_firm_t *firm, ml_msg_t *message)
{
    int rc = s_send (firm->dealer, NULL, message);
    if (rc == 0)
        firm->last_sent = zclock_mono ();
    return rc;
}

static void s_send_simple (s_firm_t *firm, int id)
{
    ml_msg_t *message = ml_msg_new (id);
    s_firm_send (firm, message);
    ml_msg_destroy (&message);
}

static void s_fill_item (s_firm_t *firm, size_t index, ml_item_t *item)
{
    item->kind = 'I';
    item->op = firm->balance[index] > 0 ? 'U' : 'R';
    item->change_id = firm->change_id[index];
    item->source_id = index + 1;
    snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%06zu", index + 1);
    strcpy (item->invoice_date, "2026-10-01");
    strcpy (item->due_date, "2026-10-31");
    snprintf (item->client_number, sizeof item->client_number, "C-%04zu", index / 10);
    snprintf (item->client_name, sizeof item->client_name, "Client %zu of %s", index / 10,
              firm->id);
    snprintf (item->matter_number, sizeof item->matter_number, "M-%05zu", index / 2);
    strcpy (item->matter_description, "Simulated matter");
    strcpy (item->currency, "USD");
    item->total_minor = S_BALANCE;
    item->balance_minor = firm->balance[index];
    strcpy (item->status, "open");
}

static void s_hello (s_firm_t *firm)
{
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    hello->protocol = ML_PROTOCOL_VERSION;
    strcpy (hello->agent_version, "ml_simagent");
    hello->contract_version = ML_CONTRACT_VERSION;
    snprintf (hello->epoch, sizeof hello->epoch, "sim-%s", firm->id);
    hello->high_water = firm->high_water;
    //  With ZMQ_IMMEDIATE the send fails until the CURVE handshake is done: try again soon.
    if (s_firm_send (firm, hello) == 0) {
        firm->state = S_GREETING;
        firm->last_received = zclock_mono ();
    }
    firm->retry_at = zclock_mono () + (firm->state == S_GREETING ? 15000 : 100);
    ml_msg_destroy (&hello);
}

static bool s_credit (s_firm_t *firm)
{
    return firm->batch - firm->acked_batch < firm->window;
}

//  Send what the session allows: snapshot batches, SNAPSHOT-END, then batches of changes.
static void s_progress (s_firm_t *firm)
{
    while (firm->state == S_SNAPSHOT && firm->end_batch == 0 && s_credit (firm)) {
        bool end = firm->snapshot_next >= s_items;
        ml_msg_t *message = ml_msg_new (end ? ML_MSG_SNAPSHOT_END : ML_MSG_SNAPSHOT);
        message->batch = firm->batch + 1;
        if (end) {
            message->cursor = firm->snapshot_high_water;
            message->count = s_items;
        } else
            for (; firm->snapshot_next < s_items && message->item_count < S_BATCH_ROWS;
                 firm->snapshot_next++) {
                s_fill_item (firm, firm->snapshot_next, ml_msg_add_item (message));
                message->items[message->item_count - 1].change_id = 0;
                message->items[message->item_count - 1].op = 'U';
            }
        int rc = s_firm_send (firm, message);
        ml_msg_destroy (&message);
        if (rc != 0) {
            firm->state = S_CONNECTING; //  the link dropped: a new session, a new snapshot
            return;
        }
        firm->batch++;
        if (end) {
            firm->end_batch = firm->batch;
            firm->sent_cursor = firm->snapshot_high_water; //  later changes follow as CHANGES
        }
    }
    //  Changes go as the real agent's poll finds them: at most once per poll interval.
    if (firm->state == S_LIVE && firm->changed_count > 0 && s_credit (firm) &&
        zclock_mono () >= firm->changes_at) {
        firm->changes_at = zclock_mono () + s_poll_ms;
        ml_msg_t *message = ml_msg_new (ML_MSG_CHANGES);
        message->batch = firm->batch + 1;
        message->since = firm->sent_cursor;
        message->cursor = firm->high_water;
        //  Change ids of distinct items are distinct; the codec wants them in order.
        size_t count = firm->changed_count;
        for (size_t a = 1; a < count; a++)
            for (size_t b = a;
                 b > 0 && firm->change_id[firm->changed[b - 1]] > firm->change_id[firm->changed[b]];
                 b--) {
                size_t swap = firm->changed[b];
                firm->changed[b] = firm->changed[b - 1];
                firm->changed[b - 1] = swap;
            }
        for (size_t index = 0; index < count; index++)
            s_fill_item (firm, firm->changed[index], ml_msg_add_item (message));
        int rc = s_firm_send (firm, message);
        ml_msg_destroy (&message);
        if (rc != 0) {
            firm->state = S_CONNECTING;
            return;
        }
        firm->batch++;
        firm->sent_cursor = firm->high_water;
        for (size_t index = 0; index < count; index++)
            firm->pending[firm->changed[index]] = false;
        firm->changed_count = 0;
    }
}

//  The contract's apply, in memory: every 'I' line needs an open invoice with the balance.
static void s_apply (s_firm_t *firm, ml_posting_t *posting, ml_msg_t *result)
{
    snprintf (result->posting_uuid, sizeof result->posting_uuid, "%s", posting->posting_uuid);
    const char *receipt = (const char *)zhashx_lookup (firm->applied, posting->posting_uuid);
    if (receipt) {
        s_repeats++;
        snprintf (result->status, sizeof result->status, "%s", *receipt ? "posted" : "rejected");
        snprintf (result->receipt_id, sizeof result->receipt_id, "%s", receipt);
        if (!*receipt)
            strcpy (result->reason, "rejected before");
        result->cursor = firm->high_water;
        return;
    }
    const char *reason = NULL;
    for (size_t index = 0; index < posting->line_count && !reason; index++) {
        ml_line_t *line = &posting->lines[index];
        size_t number = 0;
        if (line->kind != 'I')
            continue; //  a trust deposit: no ledger kept here
        if (sscanf (line->reference, "INV-%zu", &number) != 1 || number < 1 || number > s_items)
            reason = "unknown_invoice";
        else if (posting->reverses[0] == 0 && firm->balance[number - 1] < line->amount_minor)
            reason = "overpayment";
    }
    if (reason) {
        s_rejected++;
        strcpy (result->status, "rejected");
        snprintf (result->reason, sizeof result->reason, "%s", reason);
        zhashx_insert (firm->applied, posting->posting_uuid, (void *)"");
        result->cursor = firm->high_water;
        return;
    }
    for (size_t index = 0; index < posting->line_count; index++) {
        ml_line_t *line = &posting->lines[index];
        size_t number = 0;
        if (line->kind != 'I' || sscanf (line->reference, "INV-%zu", &number) != 1)
            continue;
        size_t item = number - 1;
        firm->balance[item] += posting->reverses[0] ? line->amount_minor : -line->amount_minor;
        firm->change_id[item] = ++firm->high_water;
        if (!firm->pending[item]) {
            firm->pending[item] = true;
            firm->changed[firm->changed_count++] = item;
        }
    }
    s_postings++;
    snprintf (result->receipt_id, sizeof result->receipt_id, "%llu",
              (unsigned long long)++firm->receipts);
    strcpy (result->status, "posted");
    result->cursor = firm->high_water;
    zhashx_insert (firm->applied, posting->posting_uuid, result->receipt_id);
}

static void s_receive (s_firm_t *firm, ml_msg_t *message, size_t *complete)
{
    firm->last_received = zclock_mono ();
    switch (message->id) {
        case ML_MSG_WELCOME:
            firm->window = message->window;
            firm->heartbeat_ms = message->heartbeat_ms;
            firm->batch = firm->acked_batch = firm->end_batch = 0;
            if (message->resync) {
                firm->state = S_SNAPSHOT;
                firm->snapshot_next = 0;
                firm->snapshot_high_water = firm->high_water; //  H, read before the first row
                for (size_t index = 0; index < firm->changed_count; index++)
                    firm->pending[firm->changed[index]] = false;
                firm->changed_count = 0; //  the snapshot carries every item's state
            } else {
                firm->state = S_LIVE;
                firm->sent_cursor = message->cursor;
                if (!firm->complete) { //  the core kept a complete replica from before
                    firm->complete = true;
                    ++*complete;
                }
                //  Resuming: changes after the core's cursor are sent again.
                for (size_t index = 0; index < s_items; index++)
                    if (firm->change_id[index] > message->cursor && !firm->pending[index]) {
                        firm->pending[index] = true;
                        firm->changed[firm->changed_count++] = index;
                    }
            }
            break;
        case ML_MSG_ACK:
            if (message->batch > firm->acked_batch)
                firm->acked_batch = message->batch;
            if (firm->state == S_SNAPSHOT && firm->end_batch &&
                firm->acked_batch >= firm->end_batch) {
                firm->state = S_LIVE;
                if (!firm->complete) {
                    firm->complete = true;
                    ++*complete;
                }
            }
            break;
        case ML_MSG_POSTING: {
            ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
            s_apply (firm, &message->posting, result);
            s_firm_send (firm, result);
            ml_msg_destroy (&result);
            break;
        }
        case ML_MSG_PING:
            s_send_simple (firm, ML_MSG_PONG);
            break;
        case ML_MSG_ERROR:
            fprintf (stderr, "ml_simagent: firm %s: core says %u %s\n", firm->id, message->code,
                     message->reason);
            firm->state = S_CONNECTING;
            //  As the real agent does (connector/ml_agent.c): greet again at once after 409,
            //  after 5 s when the key is in use, after 30 s for anything else (500 included).
            firm->retry_at = zclock_mono () + (message->code == ML_ERROR_OUT_OF_STATE ? 0
                                               : message->code == ML_ERROR_KEY_IN_USE ? 5000
                                                                                      : 30000);
            break;
        case ML_MSG_SEARCH: {
            ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
            answer->request_id = message->request_id;
            answer->code = ML_SEARCH_BAD_REQUEST;
            strcpy (answer->reason, "the simulated agent does not search");
            s_firm_send (firm, answer);
            ml_msg_destroy (&answer);
            break;
        }
        default:
            break;
    }
}

static int s_keygen (const char *dir, int count)
{
    zsys_dir_create ("%s", dir);
    for (int index = 1; index <= count; index++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/f%04d.cert", dir, index);
        if (zsys_file_exists (path))
            continue;
        zcert_t *certificate = zcert_new ();
        if (zcert_save (certificate, path) != 0) {
            fprintf (stderr, "ml_simagent: cannot write %s\n", path);
            zcert_destroy (&certificate);
            return 1;
        }
        zcert_destroy (&certificate);
    }
    return 0;
}

//  Greet for the firms that are due, keeping at most s_max_greeting greeting or snapshotting.
static void s_greet (s_firm_t *firms, size_t count, int64_t now)
{
    size_t greeting = 0;
    for (size_t index = 0; index < count; index++)
        greeting += firms[index].state == S_GREETING || firms[index].state == S_SNAPSHOT;
    for (size_t index = 0; index < count; index++) {
        s_firm_t *firm = &firms[index];
        if (s_max_greeting && greeting >= s_max_greeting)
            break;
        if (firm->state == S_CONNECTING && now >= firm->retry_at) {
            s_hello (firm);
            greeting += firm->state == S_GREETING;
        }
    }
}

static int s_run (const char *endpoints, const char *core_key, const char *dir, size_t count)
{
    //  Several core nodes: firm i connects to the (i mod N)th endpoint, so each node takes the
    //  leases of its share (docs/multinode.md); an agent of a firm another node owns is told
    //  where to go (ERROR 307), logged here.
    zlist_t *nodes = zlist_new ();
    zlist_autofree (nodes);
    char *list = strdup (endpoints);
    for (char *save = NULL, *one = strtok_r (list, ",", &save); one;
         one = strtok_r (NULL, ",", &save))
        zlist_append (nodes, one);
    free (list);
    size_t node_count = zlist_size (nodes);
    char **node = calloc (node_count + 1, sizeof (char *));
    size_t at = 0;
    for (char *one = (char *)zlist_first (nodes); one; one = (char *)zlist_next (nodes))
        node[at++] = one;
    s_firm_t *firms = calloc (count, sizeof (s_firm_t));
    zmq_pollitem_t *items = calloc (count, sizeof (zmq_pollitem_t));
    assert (firms && items);
    for (size_t index = 0; index < count; index++) {
        s_firm_t *firm = &firms[index];
        snprintf (firm->id, sizeof firm->id, "f%04zu", index + 1);
        char path[1024];
        snprintf (path, sizeof path, "%s/%s.cert_secret", dir, firm->id);
        zcert_t *certificate = zcert_load (path);
        if (!certificate) {
            fprintf (stderr, "ml_simagent: cannot read %s\n", path);
            return 1;
        }
        //  The connector's own settings (connector/ml_agent.c, s_agent_init).
        firm->dealer = zsock_new (ZMQ_DEALER);
        assert (firm->dealer);
        zcert_apply (certificate, firm->dealer);
        zcert_destroy (&certificate);
        zsock_set_curve_serverkey (firm->dealer, core_key);
        zsock_set_maxmsgsize (firm->dealer, ML_MAX_MESSAGE_SIZE);
        zsock_set_immediate (firm->dealer, 1);
        zsock_set_reconnect_ivl (firm->dealer, 100);
        zsock_set_reconnect_ivl_max (firm->dealer, 5000);
        zsock_set_linger (firm->dealer, 0);
        const char *endpoint = node[index % node_count];
        if (zsock_connect (firm->dealer, "%s", endpoint) != 0) {
            fprintf (stderr, "ml_simagent: cannot connect to %s\n", endpoint);
            return 1;
        }
        items[index].socket = zsock_resolve (firm->dealer);
        items[index].events = ZMQ_POLLIN;
        firm->balance = malloc (s_items * sizeof (int64_t));
        firm->change_id = calloc (s_items, sizeof (uint64_t));
        firm->pending = calloc (s_items, sizeof (bool));
        firm->changed = calloc (s_items, sizeof (size_t));
        assert (firm->balance && firm->change_id && firm->pending && firm->changed);
        for (size_t item = 0; item < s_items; item++)
            firm->balance[item] = S_BALANCE;
        firm->high_water = 1;
        firm->window = 8;
        firm->heartbeat_ms = 5000;
        firm->applied = zhashx_new ();
        zhashx_set_destructor (firm->applied, (zhashx_destructor_fn *)zstr_free);
        zhashx_set_duplicator (firm->applied, (zhashx_duplicator_fn *)strdup);
    }
    int64_t start = zclock_usecs ();
    size_t complete = 0, greeted_at = 0;
    bool reported = false;
    int64_t sweep_at = 0;
    while (!zsys_interrupted) {
        int ready = zmq_poll (items, (int)count, 20);
        if (ready < 0)
            break;
        for (size_t index = 0; ready > 0 && index < count; index++) {
            if (!(items[index].revents & ZMQ_POLLIN))
                continue;
            s_firm_t *firm = &firms[index];
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            while (zmq_msg_recv (&frame, items[index].socket, ZMQ_DONTWAIT) >= 0) {
                const char *error = NULL;
                ml_msg_t *message = ml_msg_decode ((const uint8_t *)zmq_msg_data (&frame),
                                                   zmq_msg_size (&frame), &error);
                if (message) {
                    s_receive (firm, message, &complete);
                    ml_msg_destroy (&message);
                } else
                    fprintf (stderr, "ml_simagent: firm %s: malformed: %s\n", firm->id, error);
            }
            zmq_msg_close (&frame);
            s_progress (firm);
        }
        if (s_max_greeting && complete != greeted_at) {
            greeted_at = complete; //  a snapshot ended: the next firm greets now
            s_greet (firms, count, zclock_mono ());
        }
        if (!reported && complete == count) {
            printf ("replicas_complete seconds=%.3f firms=%zu items=%zu\n",
                    (double)(zclock_usecs () - start) / 1e6, count, s_items);
            fflush (stdout);
            reported = true;
        }
        int64_t now = zclock_mono ();
        if (now < sweep_at)
            continue;
        sweep_at = now + 50;
        s_greet (firms, count, now);
        for (size_t index = 0; index < count; index++) {
            s_firm_t *firm = &firms[index];
            if (firm->state == S_CONNECTING)
                continue;
            if (now - firm->last_received > 3 * (int64_t)firm->heartbeat_ms ||
                (firm->state == S_GREETING && now >= firm->retry_at)) {
                firm->state = S_CONNECTING; //  three heartbeats of silence: greet again
                firm->retry_at = now;
                continue;
            }
            if (now - firm->last_sent >= firm->heartbeat_ms)
                s_send_simple (firm, ML_MSG_PING);
            s_progress (firm);
        }
    }
    printf ("simagent postings=%llu repeats=%llu rejected=%llu complete=%zu\n",
            (unsigned long long)s_postings, (unsigned long long)s_repeats,
            (unsigned long long)s_rejected, complete);
    for (size_t index = 0; index < count; index++) {
        zsock_destroy (&firms[index].dealer);
        zhashx_destroy (&firms[index].applied);
        free (firms[index].balance);
        free (firms[index].change_id);
        free (firms[index].pending);
        free (firms[index].changed);
    }
    free (firms);
    free (items);
    free (node);
    zlist_destroy (&nodes);
    return 0;
}

static int s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  Stand-in core: per peer (by routing id) the batch sequence it acknowledges, postings out.
typedef struct {
    zframe_t *routing;
    bool complete;
    size_t next_invoice;
} s_peer_t;

static void s_peer_destroy (s_peer_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->routing);
        free (*self_p);
        *self_p = NULL;
    }
}

static int s_standin (const char *endpoint, const char *cert_path, size_t firms, int seconds,
                      size_t window, double rate)
{
    zcert_t *certificate = zcert_load (cert_path);
    if (!certificate) {
        fprintf (stderr, "ml_simagent: cannot read %s\n", cert_path);
        return 1;
    }
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_curve_server (router, 1);
    zcert_apply (certificate, router);
    zcert_destroy (&certificate);
    zsock_set_maxmsgsize (router, ML_MAX_MESSAGE_SIZE);
    zsock_set_sndhwm (router, 100000);
    zsock_set_rcvhwm (router, 100000);
    if (zsock_bind (router, "%s", endpoint) < 0) {
        fprintf (stderr, "ml_simagent: cannot bind %s\n", endpoint);
        return 1;
    }
    zhashx_t *peers = zhashx_new ();
    zhashx_set_destructor (peers, (zhashx_destructor_fn *)s_peer_destroy);
    zlistx_t *live = zlistx_new ();    //  completed peers, round-robin for postings
    zhashx_t *sent_at = zhashx_new (); //  posting-uuid -> send time (usecs), boxed
    zhashx_set_destructor (sent_at, (zhashx_destructor_fn *)zstr_free);
    size_t complete = 0, in_flight = 0, latency_count = 0, latency_size = 1 << 16;
    int64_t *latency = malloc (latency_size * sizeof (int64_t));
    int64_t first = 0, post_start = 0, post_end = 0;
    size_t posted_count = 0; //  postings sent, paced at rate per second (0: as fast as it can)
    while (!zsys_interrupted) {
        int64_t now = zclock_usecs ();
        if (post_start && now >= post_end && in_flight == 0)
            break;
        //  Postings phase: keep WINDOW in flight across the firms.
        while (post_start && now < post_end && in_flight < window && zlistx_size (live) > 0 &&
               (rate <= 0 || posted_count < (size_t)((now - post_start) / 1e6 * rate) + 1)) {
            posted_count++;
            s_peer_t *peer = (s_peer_t *)zlistx_next (live);
            if (!peer)
                peer = (s_peer_t *)zlistx_first (live);
            ml_msg_t *posting = ml_msg_new (ML_MSG_POSTING);
            zuuid_t *uuid = zuuid_new ();
            snprintf (posting->posting.posting_uuid, sizeof posting->posting.posting_uuid, "%s",
                      zuuid_str_canonical (uuid));
            zuuid_destroy (&uuid);
            strcpy (posting->posting.received_on, "2026-11-22");
            strcpy (posting->posting.account_number, "OP-001");
            strcpy (posting->posting.client_number, "C-0000");
            strcpy (posting->posting.currency, "USD");
            posting->posting.amount_minor = 100;
            ml_line_t line = {'I', "", 100};
            snprintf (line.reference, sizeof line.reference, "INV-%06zu",
                      peer->next_invoice++ % s_items + 1);
            ml_msg_set_lines (posting, &line, 1);
            if (s_send (router, peer->routing, posting) == 0) {
                zhashx_insert (sent_at, posting->posting.posting_uuid,
                               zsys_sprintf ("%lld", (long long)zclock_usecs ()));
                in_flight++;
            }
            ml_msg_destroy (&posting);
        }
        zmq_pollitem_t item = {zsock_resolve (router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 10) <= 0)
            continue;
        zmsg_t *incoming = zmsg_recv (router);
        if (!incoming)
            break;
        zframe_t *routing = zmsg_pop (incoming);
        zframe_t *body = zmsg_pop (incoming);
        zmsg_destroy (&incoming);
        const char *error = NULL;
        ml_msg_t *message =
            body ? ml_msg_decode (zframe_data (body), zframe_size (body), &error) : NULL;
        zframe_destroy (&body);
        char *key = zframe_strhex (routing);
        s_peer_t *peer = (s_peer_t *)zhashx_lookup (peers, key);
        if (!peer) {
            peer = calloc (1, sizeof (s_peer_t));
            peer->routing = zframe_dup (routing);
            zhashx_insert (peers, key, peer);
        }
        zstr_free (&key);
        if (message && message->id == ML_MSG_HELLO) {
            if (!first)
                first = zclock_usecs ();
            ml_msg_t *welcome = ml_msg_new (ML_MSG_WELCOME);
            welcome->heartbeat_ms = 5000;
            welcome->window = 8;
            welcome->resync = 1;
            s_send (router, routing, welcome);
            ml_msg_destroy (&welcome);
        } else if (message && (message->id == ML_MSG_SNAPSHOT || message->id == ML_MSG_CHANGES ||
                               message->id == ML_MSG_SNAPSHOT_END)) {
            ml_msg_t *ack = ml_msg_new (ML_MSG_ACK);
            ack->batch = message->batch;
            ack->cursor = message->cursor;
            s_send (router, routing, ack);
            ml_msg_destroy (&ack);
            if (message->id == ML_MSG_SNAPSHOT_END && !peer->complete) {
                peer->complete = true;
                zlistx_add_end (live, peer);
                if (++complete == firms) {
                    printf ("standin_complete seconds=%.3f firms=%zu\n",
                            (double)(zclock_usecs () - first) / 1e6, firms);
                    fflush (stdout);
                    post_start = zclock_usecs ();
                    post_end = post_start + (int64_t)seconds * 1000000;
                }
            }
        } else if (message && message->id == ML_MSG_POSTING_RESULT) {
            char *when = (char *)zhashx_lookup (sent_at, message->posting_uuid);
            if (when) {
                if (latency_count == latency_size) {
                    latency_size *= 2;
                    latency = realloc (latency, latency_size * sizeof (int64_t));
                    assert (latency);
                }
                latency[latency_count++] = zclock_usecs () - atoll (when);
                zhashx_delete (sent_at, message->posting_uuid);
                in_flight--;
            }
        } else if (message && message->id == ML_MSG_PING) {
            ml_msg_t *pong = ml_msg_new (ML_MSG_PONG);
            s_send (router, routing, pong);
            ml_msg_destroy (&pong);
        }
        ml_msg_destroy (&message);
        zframe_destroy (&routing);
    }
    double elapsed = post_start ? (double)(zclock_usecs () - post_start) / 1e6 : 0;
    qsort (latency, latency_count, sizeof (int64_t), s_compare);
    printf ("standin postings=%zu seconds=%.2f postings_per_second=%.0f p50_ms=%.2f "
            "p99_ms=%.2f window=%zu rate=%.0f\n",
            latency_count, elapsed, elapsed > 0 ? latency_count / elapsed : 0,
            latency_count ? latency[latency_count / 2] / 1e3 : 0,
            latency_count ? latency[latency_count * 99 / 100] / 1e3 : 0, window, rate);
    free (latency);
    zhashx_destroy (&sent_at);
    zlistx_destroy (&live);
    zhashx_destroy (&peers);
    zsock_destroy (&router);
    return 0;
}

int main (int argc, char *argv[])
{
    const char *command = argc > 1 ? argv[1] : "";
    //  One DEALER per firm: raise czmq's default limit of 1024 sockets before the first one.
    if (streq (command, "run") && argc == 7)
        zsys_set_max_sockets ((size_t)atoi (argv[5]) + 64);
    zsys_init ();
    if (streq (command, "keygen") && argc == 4)
        return s_keygen (argv[2], atoi (argv[3]));
    if (streq (command, "run") && argc == 7) {
        s_items = (size_t)atoi (argv[6]);
        //  SIM_SNAPSHOTS=N: at most N firms greet or send their snapshot at once.
        s_max_greeting = getenv ("SIM_SNAPSHOTS") ? (size_t)atoi (getenv ("SIM_SNAPSHOTS")) : 0;
        if (getenv ("SIM_POLL_MS"))
            s_poll_ms = atoi (getenv ("SIM_POLL_MS"));
        if (s_items < 1 || s_items > ML_MAX_ITEMS) {
            fprintf (stderr, "ml_simagent: ITEMS must be 1 to %d (one CHANGES batch)\n",
                     ML_MAX_ITEMS);
            return 2;
        }
        return s_run (argv[2], argv[3], argv[4], (size_t)atoi (argv[5]));
    }
    if (streq (command, "standin") && (argc == 7 || argc == 8)) {
        s_items = 200;
        return s_standin (argv[2], argv[3], (size_t)atoi (argv[4]), atoi (argv[5]),
                          (size_t)atoi (argv[6]), argc == 8 ? atof (argv[7]) : 0);
    }
    fprintf (stderr,
             "usage: ml_simagent keygen DIR COUNT\n"
             "       ml_simagent run ENDPOINT[,ENDPOINT...] CORE_PUBLIC_KEY CERT_DIR COUNT ITEMS\n"
             "       ml_simagent standin ENDPOINT CORE_CERT_SECRET FIRMS SECONDS WINDOW "
             "[RATE]\n");
    return 2;
}
