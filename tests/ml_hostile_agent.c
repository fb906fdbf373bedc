/*  ml_hostile_agent: a registered agent gone bad, for tests/e2e_agent_fuzz.sh. It connects to
    a core with the agent's own certificate (CURVE, so the core knows it as the firm's agent),
    greets it, and then sends COUNT messages the codec accepts but a sound agent would never
    send: snapshot and change batches with items of every odd value (balances above totals,
    negative or past the amount limit, unknown currencies, empty or long numbers, dates of
    every shape, one source id twice, removals of what is not there), batches out of order or
    beyond the window, SNAPSHOT-END with the wrong count or cursor, changes whose cursors run
    backwards, results for postings never sent, messages that go the other way, a second
    HELLO. Replies are read as they come. At the end it pings: the core must still answer.

    With --flood SESSIONS --rows N it sends sound items instead, N new ones a session, in
    snapshots it never ends: what an agent that starts a snapshot and goes away, again and
    again, leaves in the store. With --grow N: one sound session, its snapshot of N items
    ended, then change batches of 20 new items each until the core refuses one (or 500).

    usage: ml_hostile_agent --endpoint E --server-key KEY --cert SECRET-CERT --seed N
               (--count N | --flood SESSIONS --rows N | --grow N)
    Prints one line of counts; exit 0 when the core answered the last ping, 1 when not, 2 on
    a usage error. */
#include "ml_contract.h"
#include "ml_msg.h"

#include <czmq.h>

static uint64_t s_state = 1;

static uint64_t s_random (void)
{
    //  xorshift64*: the same seed, the same run.
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 2685821657736338717ULL;
}

static size_t s_pick (size_t count)
{
    return (size_t)(s_random () % count);
}

static const char *s_choose (const char *const *values, size_t count)
{
    return values[s_pick (count)];
}

#define S_CHOOSE(values) s_choose (values, sizeof values / sizeof values[0])

static int64_t s_amount (void)
{
    static const int64_t amounts[] = {0,         1,         -1,         100,
                                      250000,    999999999, 1000000000, 100000000000000LL,
                                      INT64_MAX, INT64_MIN, -250000,    1000000000000001LL};
    return amounts[s_pick (sizeof amounts / sizeof amounts[0])];
}

static void s_item (ml_item_t *item, uint64_t change_id)
{
    if (s_pick (4)) {
        //  Mostly an item a sound agent sends: the odd one among them is what is tested.
        item->kind = s_pick (6) ? 'I' : 'T';
        item->op = s_pick (8) ? 'U' : 'R';
        item->change_id = change_id;
        item->source_id = 1 + s_pick (12);
        snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%04" PRIu64,
                  item->source_id);
        snprintf (item->invoice_date, sizeof item->invoice_date, "2026-0%zu-1%zu", 1 + s_pick (9),
                  s_pick (10));
        snprintf (item->client_number, sizeof item->client_number, "C-%05zu", s_pick (4));
        snprintf (item->client_name, sizeof item->client_name, "Client");
        snprintf (item->matter_number, sizeof item->matter_number, "M-%06zu", s_pick (4));
        snprintf (item->currency, sizeof item->currency, "USD");
        item->total_minor = 1000 + (int64_t)s_pick (100000);
        item->balance_minor = 1 + (int64_t)s_pick ((size_t)item->total_minor);
        snprintf (item->status, sizeof item->status, "open");
        if (item->kind == 'T') {
            item->invoice_number[0] = item->invoice_date[0] = 0;
            snprintf (item->status, sizeof item->status, "trust");
        }
        return;
    }
    static const char *const numbers[] = {"INV-1",
                                          "INV-2",
                                          "INV-0000001",
                                          "",
                                          "inv-1",
                                          "x",
                                          "INV-\xc3\xa9",
                                          "'; DROP TABLE open_item; --",
                                          "4242424242424242",
                                          "%s%n"};
    static const char *const dates[] = {"2026-01-31", "2026-02-30", "0000-00-00",
                                        "",           "9999-12-31", "2026-13-01",
                                        "26-1-1",     "2026-02-29", "2028-02-29"};
    static const char *const currencies[] = {"USD", "USD", "EUR", "JPY", "XXX", "usd", "", "US"};
    static const char *const statuses[] = {"open", "open", "paid", "", "void", "OPEN"};
    item->kind = s_pick (8) ? 'I' : (s_pick (2) ? 'T' : 'X');
    item->op = s_pick (5) ? 'U' : (s_pick (2) ? 'R' : 'Z');
    item->change_id = change_id;
    item->source_id = s_pick (4) ? 1 + s_pick (12) : s_random ();
    snprintf (item->invoice_number, sizeof item->invoice_number, "%s", S_CHOOSE (numbers));
    if (!s_pick (10))
        memset (item->invoice_number, 'N', sizeof item->invoice_number - 1);
    snprintf (item->invoice_date, sizeof item->invoice_date, "%s", S_CHOOSE (dates));
    snprintf (item->due_date, sizeof item->due_date, "%s", S_CHOOSE (dates));
    snprintf (item->client_number, sizeof item->client_number, "C-%05zu", s_pick (4));
    snprintf (item->client_name, sizeof item->client_name, "%s",
              s_pick (3) ? "Hostile Client" : "\xe2\x80\xae\x01<script>");
    snprintf (item->matter_number, sizeof item->matter_number, "M-%06zu", s_pick (4));
    snprintf (item->matter_description, sizeof item->matter_description, "Matter");
    snprintf (item->currency, sizeof item->currency, "%s", S_CHOOSE (currencies));
    item->total_minor = s_amount ();
    item->balance_minor = s_pick (3) ? s_amount () : item->total_minor;
    snprintf (item->status, sizeof item->status, "%s", S_CHOOSE (statuses));
}

//  An item a sound agent sends: an open invoice of source, owing balance.
static void s_sound_item (ml_item_t *item, const char *prefix, uint64_t source, int64_t balance)
{
    item->kind = 'I';
    item->op = 'U';
    item->source_id = source;
    snprintf (item->invoice_number, sizeof item->invoice_number, "%s-%" PRIu64, prefix, source);
    snprintf (item->invoice_date, sizeof item->invoice_date, "2026-02-01");
    snprintf (item->client_number, sizeof item->client_number, "C-00001");
    snprintf (item->currency, sizeof item->currency, "USD");
    item->total_minor = 100000;
    item->balance_minor = balance;
    snprintf (item->status, sizeof item->status, "open");
}

static int s_send (zsock_t *dealer, ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (ml_msg_encode (message, &data, &size) != 0)
        return -1; //  the codec refuses it: the core would never see it
    int rc = zmq_send (zsock_resolve (dealer), data, size, ZMQ_DONTWAIT);
    free (data);
    return rc < 0 ? -1 : 0;
}

//  Greet the core as an agent of this epoch whose database is at high_water.
static void s_hello (zsock_t *dealer, const char *epoch, uint64_t high_water)
{
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    hello->protocol = ML_PROTOCOL_VERSION;
    snprintf (hello->agent_version, sizeof hello->agent_version, "ml_hostile_agent");
    hello->contract_version = ML_CONTRACT_VERSION;
    snprintf (hello->epoch, sizeof hello->epoch, "%s", epoch);
    hello->high_water = high_water;
    s_send (dealer, hello);
    ml_msg_destroy (&hello);
}

static size_t s_replies[ML_MSG_SEARCH_RESULT + 2];
static zhashx_t *s_reasons; //  ERROR reasons (their first words) -> count
static bool s_session_lost; //  an ERROR that ends the session came: greet again
static bool s_tell_errors;  //  print each ERROR (the sound session's, which should have none)

//  Read what the core says for up to timeout_ms; returns the last message id read (0: none).
static int s_drain (zsock_t *dealer, int timeout_ms, char *posting, size_t size)
{
    int last = 0;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    while (zpoller_wait (poller, timeout_ms) == dealer) {
        zframe_t *frame = zframe_recv (dealer);
        if (!frame)
            break;
        const char *error = NULL;
        ml_msg_t *message = ml_msg_decode (zframe_data (frame), zframe_size (frame), &error);
        zframe_destroy (&frame);
        int id = message ? message->id : ML_MSG_SEARCH_RESULT + 1;
        s_replies[id]++;
        if (message && id == ML_MSG_POSTING && posting)
            snprintf (posting, size, "%s", message->posting.posting_uuid);
        if (message && id == ML_MSG_ERROR) {
            char key[48];
            snprintf (key, sizeof key, "%u %.40s", message->code, message->reason);
            size_t seen = (size_t)zhashx_lookup (s_reasons, key);
            zhashx_update (s_reasons, key, (void *)(seen + 1));
            if (s_tell_errors)
                printf ("ml_hostile_agent: the sound session got ERROR %u %s\n", message->code,
                        message->reason);
            //  Whatever the error, greet again: a new session from batch 1.
            s_session_lost = true;
        }
        last = id;
        ml_msg_destroy (&message);
        timeout_ms = 0;
    }
    zpoller_destroy (&poller);
    return last;
}

//  Read until an answer to a batch or a greeting (ACK, WELCOME or ERROR) comes, for up to
//  timeout_ms; returns its id, or 0.
static int s_await (zsock_t *dealer, int timeout_ms, char *posting, size_t size)
{
    int64_t until = zclock_mono () + timeout_ms;
    while (zclock_mono () < until) {
        int id = s_drain (dealer, (int)(until - zclock_mono ()), posting, size);
        if (id == ML_MSG_ACK || id == ML_MSG_WELCOME || id == ML_MSG_ERROR)
            return id;
    }
    return 0;
}

#define S_SOUND_BATCH 50 //  items a batch of --flood and --grow's snapshots

//  Send a snapshot batch of sound items first .. first + count - 1 and wait for its answer.
//  Returns whether it was acknowledged.
static bool s_sound_batch (zsock_t *dealer, uint64_t batch, const char *prefix, uint64_t first,
                           size_t count)
{
    ml_msg_t *message = ml_msg_new (ML_MSG_SNAPSHOT);
    message->batch = batch;
    for (size_t index = 0; index < count; index++)
        s_sound_item (ml_msg_add_item (message), prefix, first + index, 100 + (int64_t)index);
    s_send (dealer, message);
    ml_msg_destroy (&message);
    return s_await (dealer, 10000, NULL, 0) == ML_MSG_ACK;
}

//  Greet the core with a new epoch (a snapshot is asked). Returns whether it welcomed us.
static bool s_new_session (zsock_t *dealer, const char *name)
{
    char epoch[64];
    snprintf (epoch, sizeof epoch, "%s-%" PRIu64, name, s_random () % 1000000000);
    s_hello (dealer, epoch, 0);
    return s_await (dealer, 10000, NULL, 0) == ML_MSG_WELCOME;
}

//  A snapshot's rows, sound items first .. first + rows - 1, in batches after *batch, each
//  waited for. Returns the batches acked, or -1 when one was refused (the rest not sent).
static long s_sound_snapshot (zsock_t *dealer, uint64_t *batch, const char *prefix, uint64_t first,
                              long rows)
{
    long acked = 0;
    for (long sent = 0; sent < rows; sent += S_SOUND_BATCH, acked++) {
        long count = rows - sent < S_SOUND_BATCH ? rows - sent : S_SOUND_BATCH;
        if (!s_sound_batch (dealer, ++*batch, prefix, first + (uint64_t)sent, (size_t)count))
            return -1;
    }
    return acked;
}

static void s_flood (zsock_t *dealer, long sessions, long rows)
{
    size_t acked = 0, refused = 0;
    for (long session = 1; session <= sessions; session++) {
        if (!s_new_session (dealer, "flood")) {
            refused++;
            continue;
        }
        uint64_t batch = 0;
        long taken =
            s_sound_snapshot (dealer, &batch, "FLOOD", (uint64_t)session * 1000000 + 1, rows);
        //  Refused: the batches before the refused one were acked.
        acked += taken >= 0 ? (size_t)taken : batch - 1;
        refused += taken < 0;
    }
    printf ("ml_hostile_agent: flood: %ld sessions of %ld items never ended; %zu batches acked, "
            "%zu refused\n",
            sessions, rows, acked, refused);
}

static void s_grow (zsock_t *dealer, long rows)
{
    uint64_t batch = 0;
    bool ok =
        s_new_session (dealer, "grow") && s_sound_snapshot (dealer, &batch, "GROW", 1, rows) >= 0;
    ml_msg_t *end = ml_msg_new (ML_MSG_SNAPSHOT_END);
    end->batch = ++batch;
    end->cursor = 1000;
    end->count = (uint64_t)rows;
    if (ok)
        s_send (dealer, end);
    ml_msg_destroy (&end);
    ok = ok && s_await (dealer, 10000, NULL, 0) == ML_MSG_ACK;
    bool ended = ok;
    size_t acked = 0;
    for (uint64_t round = 0; ok && round < 500; round++) {
        ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
        changes->batch = ++batch;
        changes->since = 1000 + 20 * round;
        changes->cursor = changes->since + 20;
        for (uint64_t index = 1; index <= 20; index++) {
            ml_item_t *item = ml_msg_add_item (changes);
            s_sound_item (item, "GROW", (uint64_t)rows + 20 * round + index, 100);
            item->change_id = changes->since + index;
        }
        s_send (dealer, changes);
        ml_msg_destroy (&changes);
        ok = s_await (dealer, 10000, NULL, 0) == ML_MSG_ACK;
        acked += ok;
    }
    printf ("ml_hostile_agent: grow: snapshot of %ld items %s, then %zu change batches of 20 new "
            "items acked%s\n",
            rows, ended ? "ended" : "refused", acked, ok ? "" : ", the next one refused");
}

int main (int argc, char *argv[])
{
    const char *endpoint = NULL, *server_key = NULL, *certificate_path = NULL;
    long count = 200, flood = 0, rows = 0, grow = 0;
    for (int index = 1; index + 1 < argc; index += 2) {
        if (streq (argv[index], "--endpoint"))
            endpoint = argv[index + 1];
        else if (streq (argv[index], "--server-key"))
            server_key = argv[index + 1];
        else if (streq (argv[index], "--cert"))
            certificate_path = argv[index + 1];
        else if (streq (argv[index], "--seed"))
            s_state = strtoull (argv[index + 1], NULL, 10) * 2 + 1;
        else if (streq (argv[index], "--count"))
            count = atol (argv[index + 1]);
        else if (streq (argv[index], "--flood"))
            flood = atol (argv[index + 1]);
        else if (streq (argv[index], "--rows"))
            rows = atol (argv[index + 1]);
        else if (streq (argv[index], "--grow"))
            grow = atol (argv[index + 1]);
    }
    if (!endpoint || !server_key || !certificate_path || count < 1 || flood < 0 || grow < 0 ||
        (flood && rows < 1)) {
        fprintf (stderr, "usage: ml_hostile_agent --endpoint E --server-key KEY --cert "
                         "SECRET-CERT --seed N (--count N | --flood SESSIONS --rows N | "
                         "--grow N)\n");
        return 2;
    }
    zcert_t *certificate = zcert_load (certificate_path);
    if (!certificate) {
        fprintf (stderr, "ml_hostile_agent: cannot read %s\n", certificate_path);
        return 2;
    }
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zcert_apply (certificate, dealer);
    zcert_destroy (&certificate);
    zsock_set_curve_serverkey (dealer, server_key);
    zsock_set_sndtimeo (dealer, 1000);
    zsock_connect (dealer, "%s", endpoint);

    s_reasons = zhashx_new ();
    char epoch[64];
    snprintf (epoch, sizeof epoch, "hostile-%" PRIu64, s_random () % 1000);
    char posting[37] = "";
    if (flood || grow) {
        if (flood)
            s_flood (dealer, flood, rows);
        else
            s_grow (dealer, grow);
        for (void *seen = zhashx_first (s_reasons); seen; seen = zhashx_next (s_reasons))
            printf ("    ERROR %s: %zu\n", (const char *)zhashx_cursor (s_reasons), (size_t)seen);
        zhashx_destroy (&s_reasons);
        zsock_destroy (&dealer);
        return 0;
    }
    int greeted = 0;
    uint64_t batch = 0, cursor = 0;
    size_t sent = 0, refused = 0, greetings = 0;
    s_session_lost = true;
    for (long step = 0; step < count; step++) {
        if (s_session_lost) {
            //  As the agent does after an ERROR: greet again, a new session from batch 1.
            s_session_lost = false;
            s_hello (dealer, epoch, cursor);
            int answer = s_drain (dealer, 3000, posting, sizeof posting);
            greeted = greeted ? greeted : answer;
            greetings++;
            batch = 0;
            s_session_lost = false;
        }
        ml_msg_t *message = NULL;
        size_t kind = s_pick (20);
        if (batch == 0 && s_pick (2))
            kind = 0; //  a session mostly starts with its snapshot
        if (kind < 8 || kind == 19) {
            message = ml_msg_new (kind == 19 ? ML_MSG_SNAPSHOT_END : ML_MSG_SNAPSHOT);
            //  Mostly the next batch; now and then one again, one skipped, or far ahead.
            message->batch = s_pick (6) ? ++batch : s_pick (2) ? batch : batch + 1 + s_pick (100);
            if (kind == 19) {
                message->cursor = s_pick (2) ? cursor + s_pick (50) : s_random ();
                message->count = s_pick (3) ? s_pick (40) : s_random ();
            } else
                for (size_t item = s_pick (30); item > 0; item--)
                    s_item (ml_msg_add_item (message), 0);
        } else if (kind < 14) {
            message = ml_msg_new (ML_MSG_CHANGES);
            message->batch = s_pick (6) ? ++batch : batch + s_pick (3);
            message->since = s_pick (4) ? cursor : s_random () % (cursor + 10);
            uint64_t next = message->since + s_pick (40);
            message->cursor = s_pick (8) ? next : s_pick (2) ? 0 : UINT64_MAX - s_pick (2);
            //  Change ids in (since, cursor], in order, as the codec wants them.
            uint64_t change_id = message->since;
            for (size_t item = s_pick (20); item > 0 && change_id < message->cursor; item--)
                s_item (ml_msg_add_item (message), ++change_id);
            if (s_pick (2))
                cursor = message->cursor;
        } else if (kind < 16) {
            message = ml_msg_new (ML_MSG_POSTING_RESULT);
            static const char *const results[] = {"posted", "rejected", "duplicate",
                                                  "",       "POSTED",   "unknown"};
            if (*posting && s_pick (2))
                snprintf (message->posting_uuid, sizeof message->posting_uuid, "%s", posting);
            else
                snprintf (message->posting_uuid, sizeof message->posting_uuid,
                          "%08" PRIx64 "-0000-4000-8000-%012" PRIx64, s_random () & 0xffffffff,
                          (uint64_t)(s_random () & 0xffffffffffffULL));
            snprintf (message->status, sizeof message->status, "%s", S_CHOOSE (results));
            snprintf (message->receipt_id, sizeof message->receipt_id, "R-%zu", s_pick (1000));
            snprintf (message->reason, sizeof message->reason, "hostile");
            message->cursor = s_random () % (cursor + 10);
        } else {
            static const int others[] = {ML_MSG_PING,  ML_MSG_HELLO,   ML_MSG_ACK,
                                         ML_MSG_PONG,  ML_MSG_WELCOME, ML_MSG_SEARCH_RESULT,
                                         ML_MSG_ERROR, ML_MSG_POSTING};
            message = ml_msg_new (others[s_pick (sizeof others / sizeof others[0])]);
            message->protocol = ML_PROTOCOL_VERSION;
            message->contract_version = ML_CONTRACT_VERSION;
            snprintf (message->epoch, sizeof message->epoch, "hostile-again");
            message->batch = batch;
            message->request_id = s_random ();
            message->code = 500;
            message->window = 8;
            message->heartbeat_ms = 1000;
        }
        if (s_send (dealer, message) == 0)
            sent++;
        else
            refused++;
        ml_msg_destroy (&message);
        s_drain (dealer, 20, posting, sizeof posting);
    }
    //  Last, a session a sound agent would have, with one bad item in its last change batch:
    //  the replica ends complete, the bad batch refused whole. What the hostile messages
    //  still have in flight is answered first.
    while (s_drain (dealer, 500, posting, sizeof posting))
        ;
    s_session_lost = false;
    s_tell_errors = true;
    snprintf (epoch, sizeof epoch, "hostile-clean-%" PRIu64, s_random () % 1000);
    s_hello (dealer, epoch, 0);
    s_await (dealer, 3000, posting, sizeof posting);
    size_t acks = s_replies[ML_MSG_ACK];
    ml_msg_t *clean = ml_msg_new (ML_MSG_SNAPSHOT);
    clean->batch = 1;
    for (uint64_t source = 1; source <= 10; source++)
        s_sound_item (ml_msg_add_item (clean), "CLEAN", source, 500 * (int64_t)source);
    s_send (dealer, clean);
    ml_msg_destroy (&clean);
    s_await (dealer, 3000, posting, sizeof posting);
    clean = ml_msg_new (ML_MSG_SNAPSHOT_END);
    clean->batch = 2;
    clean->cursor = 100;
    clean->count = 10;
    s_send (dealer, clean);
    ml_msg_destroy (&clean);
    s_await (dealer, 3000, posting, sizeof posting);
    for (uint64_t round = 0; round < 3; round++) {
        clean = ml_msg_new (ML_MSG_CHANGES);
        clean->batch = 3 + round;
        clean->since = 100 + round * 10;
        clean->cursor = clean->since + 10;
        for (uint64_t source = 1; source <= 4; source++) {
            ml_item_t *item = ml_msg_add_item (clean);
            s_sound_item (item, "CLEAN", source + round, 1000 * (int64_t)(source + round));
            item->op = source == 4 ? 'R' : 'U';
            item->change_id = clean->since + source;
            //  The last batch: one open invoice of it owes a negative amount.
            if (round == 2 && source == 2)
                item->balance_minor = -item->balance_minor;
        }
        s_send (dealer, clean);
        ml_msg_destroy (&clean);
        s_await (dealer, 3000, posting, sizeof posting);
    }
    acks = s_replies[ML_MSG_ACK] - acks;
    s_tell_errors = false;

    //  Still answering? A PING gets a PONG in a session, an ERROR without one.
    ml_msg_t *ping = ml_msg_new (ML_MSG_PING);
    s_send (dealer, ping);
    ml_msg_destroy (&ping);
    int last = s_drain (dealer, 5000, posting, sizeof posting);
    printf ("ml_hostile_agent: greeted %zu times, first %s; %zu sent, %zu the codec refused; "
            "the clean session: %zu batches acked of 5 (the last one bad); replies: ack %zu, error "
            "%zu, posting %zu, "
            "pong %zu, welcome %zu, other %zu\n",
            greetings, greeted == ML_MSG_WELCOME ? "with WELCOME" : "without WELCOME", sent,
            refused, acks, s_replies[ML_MSG_ACK], s_replies[ML_MSG_ERROR],
            s_replies[ML_MSG_POSTING], s_replies[ML_MSG_PONG], s_replies[ML_MSG_WELCOME],
            s_replies[ML_MSG_SEARCH] + s_replies[ML_MSG_SEARCH_RESULT + 1]);
    for (void *seen = zhashx_first (s_reasons); seen; seen = zhashx_next (s_reasons))
        printf ("    ERROR %s: %zu\n", (const char *)zhashx_cursor (s_reasons), (size_t)seen);
    zhashx_destroy (&s_reasons);
    zsock_destroy (&dealer);
    return last ? 0 : 1;
}
