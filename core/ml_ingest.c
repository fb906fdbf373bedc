/*  ml_ingest: the replica's writer, a thread beside the core's (include/ml_ingest.h). */
#include "ml_ingest.h"
#include "ml_db.h"
#include "ml_log.h"
#include "ml_selftest_support.h"
#include "ml_store.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

//  Set when a connection of this process waits for the write lock (ml_db_set_waiting_hook).
static atomic_bool s_writer_waiting;

static void s_waiting (void)
{
    atomic_store (&s_writer_waiting, true);
}

//  A transaction of snapshot rows ends after this many rows or milliseconds, whichever
//  comes first, or as soon as another connection waits for the write lock (ml_db's
//  waiting hook): the core's own writes (payments) then wait for one chunk and the
//  commit, which writes every page the transaction dirtied into the log. Larger
//  transactions cost less CPU (the replica's indexes by client and matter take rows in
//  random order, so a short transaction writes about a page per row per index: at 400,000
//  rows, 20 ms transactions cost 6.4 s of CPU, 100 ms ones 4.6 s, 250 ms ones 4.0 s;
//  ml_bench ingest), but their commit is longer, and a payment waiting for it holds the
//  core's thread: at 1,000,000 rows, 250 ms transactions made status p99 240 ms while
//  payments were made, 50 ms ones 135 ms, 25 ms ones 79 ms (bench/RESULTS.md).
#define S_TRANSACTION_ROWS 5000
#define S_TRANSACTION_MS   25
//  (The selftest makes it longer, to see that a waiting writer does not wait for it.)
static int64_t s_transaction_ms = S_TRANSACTION_MS;
//  Rows written in the snapshot transaction now open (the selftest waits for some).
static atomic_size_t s_rows_in_transaction;
//  Rows written between two looks at the clock and the waiting flag. On PostgreSQL snapshot
//  rows take no lock (they are COPYed into a load table, store version 5), so no writer
//  waits for them: a batch goes whole, and each call's checks (the guard, the lease, the
//  generation: a round trip each) are paid once per batch, not per 100 rows.
#define S_CHUNK_ROWS 100
//  After committing early for a waiting writer, the thread lets it take the lock first.
#define S_YIELD_MS 2
//  Rows taken (acknowledged) and not yet written, at most: past it the thread reads no
//  more, and the agents' windows (unacknowledged batches) hold the rest back.
#define S_BUFFER_ROWS 40000

//  The firms' session serials: advanced by the core's thread at each HELLO, checked by
//  the ingest thread inside its write transactions.
typedef struct {
    pthread_mutex_t lock;
    zhashx_t *serials; //  firm id -> uint64_t *
} s_shared_t;

struct _ml_ingest_t {
    zactor_t *actor;
    zsock_t *front; //  the core's end: work out, answers in
    s_shared_t shared;
};

//  One piece of work: a SNAPSHOT batch, a SNAPSHOT-END or a CHANGES batch.
typedef struct {
    char kind; //  'R', 'E', 'C'
    char firm_id[64];
    uint64_t serial;
    ml_msg_t *message; //  owned
    size_t offset;     //  'R': rows of it written (or skipped) so far
    bool prepared;     //  'R' of batch 1: ml_store_snapshot_prepare was run for it
} s_entry_t;

typedef struct {
    s_shared_t *shared;
    zsock_t *back;
    ml_store_t *store;
    zlistx_t *queue;   //  s_entry_t *, in arrival order
    size_t buffered;   //  rows in the queue
    uint64_t checking; //  the serial of the session being written (the guard's question)
    zhashx_t *failed;  //  firm id -> serial (uint64_t *) of a session whose write failed
} s_thread_t;

typedef struct {
    const char *store;
    ml_lease_t *lease; //  this node's, with several nodes, or NULL
    int max_firm_items;
    s_shared_t *shared;
    char endpoint[64];
    char *error;
    size_t error_size;
    bool failed;
} s_start_t;

static uint64_t s_serial (s_shared_t *shared, const char *firm_id)
{
    pthread_mutex_lock (&shared->lock);
    uint64_t *serial = zhashx_lookup (shared->serials, firm_id);
    uint64_t value = serial ? *serial : 0;
    pthread_mutex_unlock (&shared->lock);
    return value;
}

static bool s_guard (void *arg, const char *firm_id)
{
    s_thread_t *self = (s_thread_t *)arg;
    return s_serial (self->shared, firm_id) == self->checking;
}

static void s_entry_destroy (s_entry_t **self_p)
{
    if (*self_p) {
        ml_msg_destroy (&(*self_p)->message);
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_answer (s_thread_t *self, char kind, const s_entry_t *entry, int rc)
{
    const char *error = rc == -1   ? ml_store_error (self->store)->message
                        : rc == -2 ? "changes do not start at the core's cursor"
                        : rc == -4 ? "the batch would take the firm's replica past its limit"
                                   : "";
    zsock_send (self->back, "1s888is", (uint8_t)kind, entry->firm_id, entry->serial,
                entry->message->batch, entry->message->cursor, rc, error);
}

static bool s_session_failed (s_thread_t *self, const s_entry_t *entry)
{
    uint64_t *failed = zhashx_lookup (self->failed, entry->firm_id);
    return failed && *failed == entry->serial;
}

static void s_fail_session (s_thread_t *self, const s_entry_t *entry)
{
    uint64_t *failed = malloc (sizeof (uint64_t));
    assert (failed);
    *failed = entry->serial;
    zhashx_update (self->failed, entry->firm_id, failed);
}

//  Take one piece of work off the socket; SNAPSHOT rows are acknowledged now.
static void s_take (s_thread_t *self)
{
    uint8_t kind = 0;
    char *firm_id = NULL;
    uint64_t serial = 0;
    void *message = NULL;
    if (zsock_recv (self->back, "1s8p", &kind, &firm_id, &serial, &message) != 0 || !message) {
        zstr_free (&firm_id);
        return;
    }
    s_entry_t *entry = calloc (1, sizeof (s_entry_t));
    assert (entry);
    entry->kind = (char)kind;
    snprintf (entry->firm_id, sizeof entry->firm_id, "%s", firm_id);
    zstr_free (&firm_id);
    entry->serial = serial;
    entry->message = (ml_msg_t *)message;
    zlistx_add_end (self->queue, entry);
    if (entry->kind == 'R') {
        self->buffered += entry->message->item_count;
        s_answer (self, 'R', entry, 0);
    }
}

//  Write snapshot rows from the head of the queue in one transaction, up to the limits.
//  Returns true when it committed early because another connection waits for the lock.
static bool s_write_rows (s_thread_t *self)
{
    int64_t deadline = zclock_mono () + s_transaction_ms;
    size_t written = 0;
    bool ok = ml_store_snapshot_begin (self->store) == 0;
    atomic_store (&s_writer_waiting, false);
    s_entry_t *entry = zlistx_first (self->queue);
    //  The last entry the transaction wrote or tried (a failed begin fails the first).
    s_entry_t *reached = ok ? NULL : entry;
    bool yielded = false;
    size_t chunk =
        ml_db_dialect (ml_store_db (self->store)) == ML_DB_POSTGRESQL ? ML_MAX_ITEMS : S_CHUNK_ROWS;
    while (ok && entry && entry->kind == 'R' && written < S_TRANSACTION_ROWS &&
           zclock_mono () < deadline && !(yielded = atomic_load (&s_writer_waiting))) {
        size_t left = entry->message->item_count - entry->offset;
        size_t count = left < chunk ? left : chunk;
        int rc = 0;
        if (s_session_failed (self, entry))
            rc = -3;
        else if (count) {
            self->checking = entry->serial;
            rc = ml_store_snapshot_write (self->store, entry->firm_id,
                                          entry->message->items + entry->offset, count);
        }
        reached = entry;
        if (rc == -1)
            ok = false;
        else if (rc == -3) //  a newer session (or a failed one): none of these rows count
            entry->offset = entry->message->item_count;
        else {
            entry->offset += count;
            written += count;
            atomic_store (&s_rows_in_transaction, written);
        }
        if (ok && entry->offset == entry->message->item_count)
            entry = zlistx_next (self->queue);
    }
    atomic_store (&s_rows_in_transaction, 0);
    if (ml_store_snapshot_commit (self->store, ok) != 0)
        ok = false;
    //  Done entries leave the queue. On a failure, every session whose rows the transaction
    //  reached failed (what it wrote is rolled back): the core tells each agent, which
    //  starts again with HELLO.
    for (entry = zlistx_first (self->queue); entry && entry->kind == 'R';
         entry = zlistx_first (self->queue)) {
        bool last = entry == reached;
        if (!ok) {
            if (!reached)
                break;
            if (!s_session_failed (self, entry)) {
                s_fail_session (self, entry);
                s_answer (self, 'F', entry, -1);
            }
            if (last)
                reached = NULL;
        } else if (entry->offset < entry->message->item_count)
            break;
        self->buffered -= entry->message->item_count;
        zlistx_delete (self->queue, zlistx_cursor (self->queue));
    }
    return yielded;
}

//  Before the first rows of a session's snapshot (its batch 1): what the firm's unfinished
//  snapshots left is dropped (ml_store_snapshot_prepare). A failure fails the session.
static void s_prepare (s_thread_t *self, s_entry_t *entry)
{
    entry->prepared = true;
    if (s_session_failed (self, entry))
        return;
    self->checking = entry->serial;
    if (ml_store_snapshot_prepare (self->store, entry->firm_id) == -1) {
        s_fail_session (self, entry);
        s_answer (self, 'F', entry, -1);
    }
}

//  Run the SNAPSHOT-END or CHANGES at the head of the queue, and answer it.
static void s_write_batch (s_thread_t *self)
{
    s_entry_t *entry = zlistx_first (self->queue);
    int rc = -3;
    if (!s_session_failed (self, entry)) {
        self->checking = entry->serial;
        rc = entry->kind == 'E'
                 ? ml_store_snapshot_end (self->store, entry->firm_id, entry->message->cursor)
                 : ml_store_changes (self->store, entry->firm_id, entry->message);
        if (rc == -1 || rc == -2 || rc == -4)
            s_fail_session (self, entry);
    }
    s_answer (self, entry->kind, entry, rc);
    zlistx_delete (self->queue, zlistx_cursor (self->queue));
}

static void s_actor (zsock_t *pipe, void *args)
{
    s_start_t *start = (s_start_t *)args;
    s_thread_t self = {.shared = start->shared};
    self.store = ml_store_new (start->store, start->error, start->error_size);
    if (!self.store) {
        start->failed = true;
        zsock_signal (pipe, 1);
        return;
    }
    ml_store_set_guard (self.store, s_guard, &self);
    ml_store_set_max_firm_items (self.store, start->max_firm_items);
    if (start->lease)
        ml_store_set_lease (self.store, start->lease);
    //  The replica's index pages are read through a memory map, not copied by read calls
    //  into the 64 MB page cache, which a 1,000,000-row replica outgrows (10% less CPU at
    //  700,000 rows, ml_bench ingest). SQLite only; the map is the file system's cache.
    ml_db_query_t *map =
        ml_db_query (ml_store_db (self.store), "PRAGMA mmap_size = 1073741824", NULL);
    ml_db_query_destroy (&map);
    self.back = zsock_new (ZMQ_PAIR);
    assert (self.back);
    zsock_set_sndhwm (self.back, 0);
    zsock_set_rcvhwm (self.back, 0);
    int connected = zsock_connect (self.back, "%s", start->endpoint);
    assert (connected == 0);
    self.queue = zlistx_new ();
    zlistx_set_destructor (self.queue, (zlistx_destructor_fn *)s_entry_destroy);
    self.failed = zhashx_new ();
    zhashx_set_destructor (self.failed, (zhashx_destructor_fn *)zstr_free);
    zsock_signal (pipe, 0);
    //  zmq_poll, not zpoller: the thread ends on $TERM only, never on a signal, so the core
    //  thread can always hand work over until it stops (a PAIR without its peer would
    //  block the sender).
    zmq_pollitem_t items[] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                              {zsock_resolve (self.back), 0, ZMQ_POLLIN, 0}};
    while (true) {
        //  Work queued: look at the sockets without waiting, then write.
        if (zmq_poll (items, 2, zlistx_size (self.queue) ? 0 : -1) == -1 && errno != EINTR)
            break; //  the context is gone
        if (zsock_events (pipe) & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            bool stop = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (stop)
                break;
        }
        while (self.buffered < S_BUFFER_ROWS && (zsock_events (self.back) & ZMQ_POLLIN))
            s_take (&self);
        s_entry_t *head = zlistx_first (self.queue);
        if (head && head->kind == 'R' && head->message->batch == 1 && !head->prepared)
            s_prepare (&self, head);
        else if (head && head->kind == 'R') {
            if (s_write_rows (&self))
                zclock_sleep (S_YIELD_MS);
        } else if (head)
            s_write_batch (&self);
    }
    //  What was handed over and not written is dropped: the replica stays incomplete.
    while (zsock_events (self.back) & ZMQ_POLLIN)
        s_take (&self);
    zlistx_destroy (&self.queue);
    zhashx_destroy (&self.failed);
    zsock_destroy (&self.back);
    ml_store_destroy (&self.store);
}

ml_ingest_t *ml_ingest_new (const char *store, ml_lease_t *lease, int max_firm_items, char *error,
                            size_t error_size)
{
    ml_ingest_t *self = calloc (1, sizeof (ml_ingest_t));
    assert (self);
    pthread_mutex_init (&self->shared.lock, NULL);
    ml_db_set_waiting_hook (s_waiting);
    self->shared.serials = zhashx_new ();
    zhashx_set_destructor (self->shared.serials, (zhashx_destructor_fn *)zstr_free);
    s_start_t start = {store, lease, max_firm_items, &self->shared, "", error, error_size, false};
    snprintf (start.endpoint, sizeof start.endpoint, "inproc://ml-ingest-%p", (void *)self);
    //  No high-water mark: what waits is bounded by the agents' windows.
    self->front = zsock_new (ZMQ_PAIR);
    assert (self->front);
    zsock_set_sndhwm (self->front, 0);
    zsock_set_rcvhwm (self->front, 0);
    int bound = zsock_bind (self->front, "%s", start.endpoint);
    assert (bound == 0);
    self->actor = zactor_new (s_actor, &start);
    if (!self->actor || start.failed)
        ml_ingest_destroy (&self);
    return self;
}

void ml_ingest_destroy (ml_ingest_t **self_p)
{
    assert (self_p);
    ml_ingest_t *self = *self_p;
    if (self) {
        zactor_destroy (&self->actor);
        zsock_destroy (&self->front);
        zhashx_destroy (&self->shared.serials);
        pthread_mutex_destroy (&self->shared.lock);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *ml_ingest_socket (ml_ingest_t *self)
{
    assert (self);
    return self->front;
}

void ml_ingest_session (ml_ingest_t *self, const char *firm_id)
{
    pthread_mutex_lock (&self->shared.lock);
    uint64_t *serial = zhashx_lookup (self->shared.serials, firm_id);
    if (!serial) {
        serial = calloc (1, sizeof (uint64_t));
        assert (serial);
        zhashx_insert (self->shared.serials, firm_id, serial);
    }
    (*serial)++;
    pthread_mutex_unlock (&self->shared.lock);
}

int ml_ingest_send (ml_ingest_t *self, const char *firm_id, ml_msg_t *message)
{
    assert (self && firm_id && message);
    char kind = message->id == ML_MSG_SNAPSHOT       ? 'R'
                : message->id == ML_MSG_SNAPSHOT_END ? 'E'
                : message->id == ML_MSG_CHANGES      ? 'C'
                                                     : 0;
    assert (kind);
    //  The item array moves; the header fields the thread needs are copied.
    ml_msg_t *taken = ml_msg_new (message->id);
    taken->batch = message->batch;
    taken->since = message->since;
    taken->cursor = message->cursor;
    taken->count = message->count;
    taken->items = message->items;
    taken->item_count = message->item_count;
    taken->item_capacity = message->item_capacity;
    message->items = NULL;
    message->item_count = message->item_capacity = 0;
    if (zsock_send (self->front, "1s8p", (uint8_t)kind, firm_id, s_serial (&self->shared, firm_id),
                    (void *)taken) != 0) {
        ml_msg_destroy (&taken);
        return -1;
    }
    return 0;
}

int ml_ingest_receive (ml_ingest_t *self, ml_ingest_answer_t *answer)
{
    uint8_t kind = 0;
    char *firm_id = NULL, *error = NULL;
    uint64_t serial = 0;
    int rc = 0;
    memset (answer, 0, sizeof *answer);
    if (zsock_recv (self->front, "1s888is", &kind, &firm_id, &serial, &answer->batch,
                    &answer->cursor, &rc, &error) != 0) {
        zstr_free (&firm_id);
        zstr_free (&error);
        return -1;
    }
    answer->kind = (char)kind;
    answer->rc = rc;
    snprintf (answer->firm_id, sizeof answer->firm_id, "%s", firm_id ? firm_id : "");
    snprintf (answer->error, sizeof answer->error, "%s", error ? error : "");
    answer->current = s_serial (&self->shared, answer->firm_id) == serial;
    zstr_free (&firm_id);
    zstr_free (&error);
    return 0;
}

//  Selftest ------------------------------------------------------------------------------

static void s_test_answer (ml_ingest_t *ingest, char kind, uint64_t batch, int rc, bool current)
{
    zpoller_t *poller = zpoller_new (ml_ingest_socket (ingest), NULL);
    assert (zpoller_wait (poller, 10000) == ml_ingest_socket (ingest));
    zpoller_destroy (&poller);
    ml_ingest_answer_t answer;
    assert (ml_ingest_receive (ingest, &answer) == 0);
    assert (answer.kind == kind && answer.batch == batch && answer.rc == rc);
    assert (answer.current == current && streq (answer.firm_id, "acme"));
}

static ml_msg_t *s_test_batch (int id, uint64_t batch, uint64_t first, size_t count)
{
    ml_msg_t *message = ml_msg_new (id);
    message->batch = batch;
    for (size_t index = 0; index < count; index++) {
        ml_item_t *item = ml_msg_add_item (message);
        item->kind = 'I';
        item->op = 'U';
        item->source_id = first + index;
        snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%llu",
                  (unsigned long long)(first + index));
        strcpy (item->client_number, "C-1");
        strcpy (item->currency, "USD");
        item->total_minor = item->balance_minor = 100;
    }
    return message;
}

static int64_t s_test_count (ml_store_t *store, const char *sql)
{
    ml_db_query_t *query = ml_db_query (ml_store_db (store), sql, NULL);
    int64_t value = -1;
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0);
    ml_db_query_destroy (&query);
    return value;
}

void ml_ingest_test (bool verbose)
{
    printf (" * ml_ingest: ");
    char directory[128], connection[300], error[512];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (connection, sizeof connection, "Driver=SQLite3;Database=%s/core.db;Timeout=5000",
              directory);
    ml_store_t *store = ml_store_new (connection, error, sizeof error);
    assert (store);
    assert (ml_store_firm_add (store, "acme", "Acme LLP", "key", "OP-1") == 0);
    ml_ingest_t *ingest =
        ml_ingest_new (connection, NULL, ML_STORE_MAX_FIRM_ITEMS, error, sizeof error);
    assert (ingest);
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    strcpy (hello->epoch, "e1");
    hello->high_water = 500;
    bool resync = false;
    uint64_t cursor = 0;

    //  A session's snapshot of 5 batches, more than a transaction holds: each batch answered
    //  when taken, SNAPSHOT-END after its commit, and the replica holds all of it.
    ml_ingest_session (ingest, "acme");
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    for (uint64_t batch = 1; batch <= 5; batch++) {
        ml_msg_t *rows = s_test_batch (ML_MSG_SNAPSHOT, batch, batch * 10000, ML_MAX_ITEMS);
        assert (ml_ingest_send (ingest, "acme", rows) == 0);
        assert (rows->item_count == 0 && rows->items == NULL); //  the items moved
        ml_msg_destroy (&rows);
        s_test_answer (ingest, 'R', batch, 0, true);
    }
    ml_msg_t *end = ml_msg_new (ML_MSG_SNAPSHOT_END);
    end->batch = 6;
    end->cursor = 500;
    assert (ml_ingest_send (ingest, "acme", end) == 0);
    s_test_answer (ingest, 'E', 6, 0, true);
    assert (s_test_count (store, "SELECT COUNT (*) FROM open_item") == 25000);
    assert (s_test_count (store, "SELECT item_count FROM replica_total") == 25000);
    assert (s_test_count (store, "SELECT complete FROM replica_state") == 1);

    //  CHANGES after it: applied in order, answered after the commit; one that does not
    //  start at the cursor is refused and the rest of that session skipped.
    ml_msg_t *changes = s_test_batch (ML_MSG_CHANGES, 7, 1, 2);
    changes->since = 500;
    changes->cursor = 510;
    changes->items[0].change_id = 501;
    changes->items[1].change_id = 502;
    assert (ml_ingest_send (ingest, "acme", changes) == 0);
    ml_msg_destroy (&changes);
    s_test_answer (ingest, 'C', 7, 0, true);
    changes = s_test_batch (ML_MSG_CHANGES, 8, 3, 1);
    changes->since = 400;
    changes->cursor = 520;
    assert (ml_ingest_send (ingest, "acme", changes) == 0);
    ml_msg_destroy (&changes);
    s_test_answer (ingest, 'C', 8, -2, true);
    changes = s_test_batch (ML_MSG_CHANGES, 9, 3, 1);
    changes->since = 510;
    changes->cursor = 520;
    assert (ml_ingest_send (ingest, "acme", changes) == 0);
    ml_msg_destroy (&changes);
    s_test_answer (ingest, 'C', 9, -3, true);
    assert (ml_store_cursor (store, "acme", &cursor) == 0 && cursor == 510);
    assert (s_test_count (store, "SELECT item_count FROM replica_total") == 25002);

    //  An abandoned snapshot: a new session begins before its rows are written. None of
    //  them is written under the new session, and its answers are not current.
    hello->high_water = 100;
    ml_msg_t *stale = s_test_batch (ML_MSG_SNAPSHOT, 1, 900000, 5);
    assert (ml_ingest_send (ingest, "acme", stale) == 0);
    ml_ingest_session (ingest, "acme");
    s_test_answer (ingest, 'R', 1, 0, false);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    ml_msg_t *fresh = s_test_batch (ML_MSG_SNAPSHOT, 1, 1, 3);
    assert (ml_ingest_send (ingest, "acme", fresh) == 0);
    s_test_answer (ingest, 'R', 1, 0, true);
    end->batch = 2;
    end->cursor = 100;
    assert (ml_ingest_send (ingest, "acme", end) == 0);
    s_test_answer (ingest, 'E', 2, 0, true);
    assert (s_test_count (store, "SELECT COUNT (*) FROM open_item") == 3);
    assert (s_test_count (store, "SELECT item_count FROM replica_total") == 3);
    assert (s_test_count (store, "SELECT COUNT (*) FROM replica_loading") == 0);
    ml_msg_destroy (&stale);
    ml_msg_destroy (&fresh);

    //  Work of a session that a HELLO replaced while it waited is skipped, not written
    //  (the test holds the write lock meanwhile, so the thread cannot write before).
    assert (ml_db_begin (ml_store_db (store)) == 0);
    ml_msg_t *old = s_test_batch (ML_MSG_SNAPSHOT, 1, 700000, 4);
    assert (ml_ingest_send (ingest, "acme", old) == 0);
    end->batch = 2;
    assert (ml_ingest_send (ingest, "acme", end) == 0);
    ml_ingest_session (ingest, "acme");
    assert (ml_db_rollback (ml_store_db (store)) == 0);
    s_test_answer (ingest, 'R', 1, 0, false);
    s_test_answer (ingest, 'E', 2, -3, false);
    assert (s_test_count (store, "SELECT COUNT (*) FROM open_item") == 3);
    ml_msg_destroy (&old);

    //  A writer waiting for the lock gets it after one chunk of rows, not after the thread's
    //  transaction (made 10 s long here): the thread is writing 40,000 rows taken at once.
    ml_ingest_destroy (&ingest);
    s_transaction_ms = 10000;
    ingest = ml_ingest_new (connection, NULL, ML_STORE_MAX_FIRM_ITEMS, error, sizeof error);
    assert (ingest);
    hello->high_water = 50;
    ml_ingest_session (ingest, "acme");
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    for (uint64_t batch = 1; batch <= 20; batch++) {
        ml_msg_t *rows = s_test_batch (ML_MSG_SNAPSHOT, batch, batch * 10000, ML_MAX_ITEMS);
        assert (ml_ingest_send (ingest, "acme", rows) == 0);
        ml_msg_destroy (&rows);
    }
    for (uint64_t batch = 1; batch <= 8; batch++)
        s_test_answer (ingest, 'R', batch, 0, true);
    int64_t asked = zclock_mono ();
    while (atomic_load (&s_rows_in_transaction) == 0 && zclock_mono () - asked < 10000)
        zclock_sleep (1); //  until the thread is inside its transaction
    asked = zclock_mono ();
    assert (ml_db_begin (ml_store_db (store)) == 0);
    int64_t waited = zclock_mono () - asked;
    assert (ml_db_commit (ml_store_db (store)) == 0);
    if (verbose)
        printf ("(waited %lld ms for the write lock) ", (long long)waited);
    assert (waited < 250);
    for (uint64_t batch = 9; batch <= 20; batch++)
        s_test_answer (ingest, 'R', batch, 0, true);
    end->batch = 21;
    end->cursor = 50;
    assert (ml_ingest_send (ingest, "acme", end) == 0);
    s_test_answer (ingest, 'E', 21, 0, true);
    assert (s_test_count (store, "SELECT item_count FROM replica_total") == 100000);

    //  Stopping with work queued drops it (nothing leaks).
    ml_msg_t *left = s_test_batch (ML_MSG_SNAPSHOT, 1, 5, 2000);
    assert (ml_ingest_send (ingest, "acme", left) == 0);
    ml_msg_destroy (&left);
    ml_ingest_destroy (&ingest);
    ml_ingest_destroy (&ingest);
    s_transaction_ms = S_TRANSACTION_MS; //  (no thread reads it now)
    ml_msg_destroy (&end);
    ml_msg_destroy (&hello);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
