/*  ml_lease: firm leases with a fencing epoch. See include/ml_lease.h and docs/multinode.md. */
#include "ml_lease.h"
#include "ml_log.h"
#include "ml_msg.h"
#include "ml_selftest_support.h"
#include "ml_store.h"

#include <pthread.h>

//  One row per firm that a node ever served. expires_at is wall-clock ms (the nodes' clocks
//  must agree to well within a lease: docs/multinode.md). A released lease keeps its owner
//  and epoch with expires_at 0, so the next owner still counts on from its epoch.
static const char *const s_schema[] = {
    "CREATE TABLE IF NOT EXISTS firm_lease (firm_id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " epoch BIGINT NOT NULL, expires_at BIGINT NOT NULL, endpoint TEXT NOT NULL DEFAULT '')",
    //  Where each node takes the staff and web requests other nodes forward to it (core/forward)
    //  and, over TCP, the CURVE public key it serves them under.
    "CREATE TABLE IF NOT EXISTS core_node (node TEXT PRIMARY KEY, forward TEXT NOT NULL,"
    " public_key TEXT NOT NULL DEFAULT '')",
};

//  A lease this node holds, as it last knew it.
typedef struct {
    int64_t epoch;
    int64_t until; //  monotonic ms past which this node no longer counts on it
} s_held_t;

struct _ml_lease_t {
    ml_db_t *db; //  borrowed: the owning thread's connection
    char node[64];
    char endpoint[256];
    int64_t lease_ms;
    pthread_mutex_t lock; //  guards held: ml_lease_fence runs on other threads
    zhashx_t *held;       //  firm id -> s_held_t
};

ml_lease_t *ml_lease_new (ml_db_t *db, const char *node, const char *endpoint, int64_t lease_ms,
                          char *error, size_t error_size)
{
    assert (db && node && endpoint);
    if (!*node || strlen (node) >= 64 || strlen (endpoint) >= 256 || lease_ms < 1000) {
        snprintf (error, error_size,
                  "a lease needs a node id of 1 to 63 bytes, an endpoint of at most 255 bytes and "
                  "at least one second");
        return NULL;
    }
    if (ml_store_schema (db, s_schema, sizeof s_schema / sizeof s_schema[0], "firm lease table",
                         error, error_size) != 0)
        return NULL;
    //  A node stopped inside a transaction (SIGSTOP, a frozen VM) would hold its row locks,
    //  the fence's lease row among them, and so keep other nodes from taking its firms: the
    //  server ends such a session after half a lease. (SQLite has no such remedy: a process
    //  stopped inside a write transaction holds the whole file; docs/multinode.md.)
    if (ml_db_dialect (db) == ML_DB_POSTGRESQL) {
        char sql[96];
        snprintf (sql, sizeof sql, "SET idle_in_transaction_session_timeout = %lld",
                  (long long)(lease_ms / 2));
        if (ml_db_execute (db, sql, NULL) < 0) {
            snprintf (error, error_size, "cannot set idle_in_transaction_session_timeout: %s",
                      ml_db_error (db)->message);
            return NULL;
        }
    }
    ml_lease_t *self = calloc (1, sizeof (ml_lease_t));
    assert (self);
    self->db = db;
    snprintf (self->node, sizeof self->node, "%s", node);
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->lease_ms = lease_ms;
    pthread_mutex_init (&self->lock, NULL);
    self->held = zhashx_new ();
    zhashx_set_destructor (self->held, (zhashx_destructor_fn *)zstr_free);
    return self;
}

void ml_lease_destroy (ml_lease_t **self_p)
{
    assert (self_p);
    ml_lease_t *self = *self_p;
    if (!self)
        return;
    zlistx_t *firms = zhashx_keys (self->held);
    for (const char *firm = zlistx_first (firms); firm; firm = zlistx_next (firms))
        ml_lease_release (self, firm);
    zlistx_destroy (&firms);
    zhashx_destroy (&self->held);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

const char *ml_lease_node (ml_lease_t *self)
{
    assert (self);
    return self->node;
}

//  The epoch held for a firm, 0 when none (or past its time).
static int64_t s_epoch (ml_lease_t *self, const char *firm_id)
{
    pthread_mutex_lock (&self->lock);
    s_held_t *held = zhashx_lookup (self->held, firm_id);
    int64_t epoch = held && zclock_mono () < held->until ? held->epoch : 0;
    pthread_mutex_unlock (&self->lock);
    return epoch;
}

static void s_hold (ml_lease_t *self, const char *firm_id, int64_t epoch, int64_t until)
{
    s_held_t *held = malloc (sizeof (s_held_t));
    assert (held);
    held->epoch = epoch;
    held->until = until;
    pthread_mutex_lock (&self->lock);
    zhashx_update (self->held, firm_id, held);
    pthread_mutex_unlock (&self->lock);
}

//  Forget a firm's lease. Returns whether it was held but had run out (the node did not
//  renew it in time: paused, or its store unreachable), so that another node may own it.
static bool s_forget (ml_lease_t *self, const char *firm_id)
{
    pthread_mutex_lock (&self->lock);
    s_held_t *held = zhashx_lookup (self->held, firm_id);
    bool ran_out = held && zclock_mono () >= held->until;
    zhashx_delete (self->held, firm_id);
    pthread_mutex_unlock (&self->lock);
    return ran_out;
}

static void s_failed (ml_lease_t *self, const char *firm_id, const char *doing)
{
    const ml_db_error_t *error = ml_db_error (self->db);
    ml_log (ML_LOG_ERROR, "lease of firm %s: %s failed: %s (%s)", firm_id, doing, error->message,
            ml_db_class_name (error->kind));
}

int ml_lease_acquire (ml_lease_t *self, const char *firm_id, char *owner_endpoint, size_t size)
{
    assert (self && firm_id);
    if (owner_endpoint && size)
        *owner_endpoint = 0;
    //  The local deadline is taken before the store's, so this node stops counting on the
    //  lease no later than the store says it ends.
    int64_t until = zclock_mono () + self->lease_ms;
    int64_t now = zclock_time ();
    int64_t expires = now + self->lease_ms;
    int64_t known = s_epoch (self, firm_id);
    if (ml_db_begin (self->db) != 0) {
        s_failed (self, firm_id, "starting a transaction");
        return -1;
    }
    ml_db_query_t *query = ml_db_query (
        self->db, "SELECT owner, epoch, expires_at, endpoint FROM firm_lease WHERE firm_id = ?",
        "s", firm_id);
    int found = query ? ml_db_fetch (query) : -1;
    char owner[64] = "", endpoint[256] = "";
    int64_t epoch = 0, expires_at = 0;
    if (found == 1) {
        snprintf (owner, sizeof owner, "%s", ml_db_text (query, 0));
        snprintf (endpoint, sizeof endpoint, "%s", ml_db_text (query, 3));
        if (ml_db_int64 (query, 1, &epoch) != 0 || ml_db_int64 (query, 2, &expires_at) != 0)
            found = -1;
    }
    ml_db_query_destroy (&query);
    int64_t changed = 0;
    int64_t taken = 0; //  the epoch this node holds if changed == 1
    int rc = 1;
    if (found < 0)
        rc = -1;
    else if (found == 0) {
        //  ON CONFLICT: on PostgreSQL two nodes may insert at once; the loser sees 0 rows.
        changed =
            ml_db_execute (self->db,
                           "INSERT INTO firm_lease (firm_id, owner, epoch, expires_at,"
                           " endpoint) VALUES (?, ?, 1, ?, ?) ON CONFLICT (firm_id) DO NOTHING",
                           "ssis", firm_id, self->node, expires, self->endpoint);
        taken = 1;
    } else if (streq (owner, self->node) && epoch == known && expires_at > now) {
        //  Ours, at the epoch this node works under: renew.
        changed = ml_db_execute (self->db,
                                 "UPDATE firm_lease SET expires_at = ?, endpoint = ? WHERE firm_id"
                                 " = ? AND owner = ? AND epoch = ?",
                                 "isssi", expires, self->endpoint, firm_id, self->node, epoch);
        taken = epoch;
    } else if (expires_at <= now || streq (owner, self->node)) {
        //  Expired, or this node's from before a restart: take it under the next epoch, a
        //  compare-and-set, so of two nodes taking it at once only one wins.
        changed = ml_db_execute (self->db,
                                 "UPDATE firm_lease SET owner = ?, epoch = epoch + 1, expires_at ="
                                 " ?, endpoint = ? WHERE firm_id = ? AND epoch = ?",
                                 "sissi", self->node, expires, self->endpoint, firm_id, epoch);
        taken = epoch + 1;
    } else {
        //  Another node's live lease.
        if (owner_endpoint && size)
            snprintf (owner_endpoint, size, "%s", endpoint);
        rc = 0;
    }
    if (changed < 0)
        rc = -1;
    else if (rc == 1 && changed == 0)
        rc = 0; //  another node won a race (PostgreSQL): the agent asks again
    if (rc < 0) {
        s_failed (self, firm_id, "taking the lease");
        ml_db_rollback (self->db);
        return -1;
    }
    if (ml_db_commit (self->db) != 0) {
        s_failed (self, firm_id, "committing the lease");
        ml_db_rollback (self->db);
        return -1;
    }
    if (rc == 1) {
        if (taken != known)
            ml_log (ML_LOG_NOTICE, "firm %s: node %s took the lease (epoch %lld%s%s)", firm_id,
                    self->node, (long long)taken,
                    *owner && !streq (owner, self->node) ? ", from " : "",
                    *owner && !streq (owner, self->node) ? owner : "");
        s_hold (self, firm_id, taken, until);
    } else
        s_forget (self, firm_id);
    return rc;
}

bool ml_lease_owns (ml_lease_t *self, const char *firm_id)
{
    assert (self);
    return s_epoch (self, firm_id) > 0;
}

zlistx_t *ml_lease_renew (ml_lease_t *self)
{
    assert (self);
    zlistx_t *lost = zlistx_new ();
    zlistx_set_destructor (lost, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator (lost, (zlistx_duplicator_fn *)strdup);
    pthread_mutex_lock (&self->lock);
    zlistx_t *firms = zhashx_keys (self->held);
    pthread_mutex_unlock (&self->lock);
    if (zlistx_size (firms) == 0) {
        zlistx_destroy (&firms);
        return lost;
    }
    int64_t until = zclock_mono () + self->lease_ms;
    int64_t expires = zclock_time () + self->lease_ms;
    //  One transaction for them all: a node with many firms renews in one commit.
    bool ok = ml_db_begin (self->db) == 0;
    zlistx_t *renewed = zlistx_new ();
    for (const char *firm = zlistx_first (firms); ok && firm; firm = zlistx_next (firms)) {
        int64_t epoch = s_epoch (self, firm);
        int64_t changed =
            epoch ? ml_db_execute (self->db,
                                   "UPDATE firm_lease SET expires_at = ? WHERE firm_id = ? AND"
                                   " owner = ? AND epoch = ?",
                                   "issi", expires, firm, self->node, epoch)
                  : 0;
        if (changed < 0)
            ok = false;
        else if (changed == 1)
            zlistx_add_end (renewed, (void *)firm);
        else
            zlistx_add_end (lost, (void *)firm);
    }
    if (ok && ml_db_commit (self->db) != 0)
        ok = false;
    if (!ok) {
        s_failed (self, "(all)", "renewing the leases");
        ml_db_rollback (self->db);
        zlistx_destroy (&lost);
    } else {
        for (const char *firm = zlistx_first (renewed); firm; firm = zlistx_next (renewed))
            s_hold (self, firm, s_epoch (self, firm), until);
        for (const char *firm = zlistx_first (lost); firm; firm = zlistx_next (lost)) {
            ml_log (ML_LOG_WARNING, "firm %s: node %s lost its lease (another node took it)", firm,
                    self->node);
            s_forget (self, firm);
        }
    }
    zlistx_destroy (&renewed);
    zlistx_destroy (&firms);
    return lost;
}

int ml_lease_release (ml_lease_t *self, const char *firm_id)
{
    assert (self);
    int64_t epoch = s_epoch (self, firm_id);
    //  A lease that ran out while the node could not renew it (a renewal failed on a store
    //  that had ended a paused node's connection, and then its agent's session closed) is
    //  said to be lost here, as ml_lease_renew says it: silently dropped, an operator could
    //  not tell why the firm moved.
    if (s_forget (self, firm_id))
        ml_log (ML_LOG_WARNING,
                "firm %s: node %s lost its lease (it ran out before the node "
                "could renew it)",
                firm_id, self->node);
    if (!epoch)
        return 0;
    int64_t changed = ml_db_execute (self->db,
                                     "UPDATE firm_lease SET expires_at = 0 WHERE firm_id = ? AND"
                                     " owner = ? AND epoch = ?",
                                     "ssi", firm_id, self->node, epoch);
    if (changed < 0) {
        s_failed (self, firm_id, "releasing the lease");
        return -1;
    }
    if (changed == 1)
        ml_log (ML_LOG_INFO, "firm %s: node %s released its lease", firm_id, self->node);
    return 0;
}

int ml_lease_owner (ml_db_t *db, const char *firm_id, char *node, size_t node_size, char *endpoint,
                    size_t endpoint_size)
{
    ml_db_query_t *query = ml_db_query (db,
                                        "SELECT owner, endpoint FROM firm_lease WHERE firm_id = ?"
                                        " AND expires_at > ?",
                                        "si", firm_id, zclock_time ());
    int rc = query ? ml_db_fetch (query) : -1;
    if (rc == 1) {
        if (node && node_size)
            snprintf (node, node_size, "%s", ml_db_text (query, 0));
        if (endpoint && endpoint_size)
            snprintf (endpoint, endpoint_size, "%s", ml_db_text (query, 1));
    }
    ml_db_query_destroy (&query);
    return rc;
}

int ml_lease_advertise_forward (ml_lease_t *self, const char *endpoint, const char *public_key)
{
    assert (self && endpoint && public_key);
    int64_t changed =
        ml_db_execute (self->db,
                       "INSERT INTO core_node (node, forward, public_key) VALUES (?, ?,"
                       " ?) ON CONFLICT (node) DO UPDATE SET forward = excluded.forward,"
                       " public_key = excluded.public_key",
                       "sss", self->node, endpoint, public_key);
    if (changed < 0) {
        s_failed (self, "(none)", "advertising the forward endpoint");
        return -1;
    }
    return 0;
}

int ml_lease_node_forward (ml_db_t *db, const char *node, char *endpoint, size_t endpoint_size,
                           char *public_key, size_t key_size)
{
    ml_db_query_t *query =
        ml_db_query (db, "SELECT forward, public_key FROM core_node WHERE node = ?", "s", node);
    int rc = query ? ml_db_fetch (query) : -1;
    if (rc == 1) {
        snprintf (endpoint, endpoint_size, "%s", ml_db_text (query, 0));
        snprintf (public_key, key_size, "%s", ml_db_text (query, 1));
        if (!*endpoint)
            rc = 0;
    }
    ml_db_query_destroy (&query);
    return rc;
}

int ml_lease_node_key (ml_db_t *db, const char *public_key, char *node, size_t node_size)
{
    if (!*public_key)
        return 0;
    ml_db_query_t *query =
        ml_db_query (db, "SELECT node FROM core_node WHERE public_key = ?", "s", public_key);
    int rc = query ? ml_db_fetch (query) : -1;
    if (rc == 1 && node && node_size)
        snprintf (node, node_size, "%s", ml_db_text (query, 0));
    ml_db_query_destroy (&query);
    return rc;
}

bool ml_lease_runs_jobs (void *lease, const char *firm_id)
{
    ml_lease_t *self = (ml_lease_t *)lease;
    assert (self && firm_id);
    if (ml_lease_owns (self, firm_id))
        return true;
    char node[64] = "";
    int owned = ml_lease_owner (self->db, firm_id, node, sizeof node, NULL, 0);
    if (owned != 0 && !(owned == 1 && streq (node, self->node)))
        return false;
    return ml_lease_acquire (self, firm_id, NULL, 0) == 1;
}

int ml_lease_others (ml_lease_t *self, zlistx_t *firms)
{
    assert (self && firms);
    ml_db_query_t *query =
        ml_db_query (self->db, "SELECT firm_id FROM firm_lease WHERE owner <> ? AND expires_at > ?",
                     "si", self->node, zclock_time ());
    int rc = query ? 1 : -1;
    while (query && (rc = ml_db_fetch (query)) == 1)
        zlistx_add_end (firms, (void *)ml_db_text (query, 0));
    ml_db_query_destroy (&query);
    return rc < 0 ? -1 : 0;
}

int ml_lease_check (ml_db_t *db, const char *firm_id, const char *node, int64_t epoch)
{
    if (epoch <= 0)
        return 0;
    //  An UPDATE, not a SELECT: on PostgreSQL it locks the lease row until this transaction
    //  ends, so a take-over (an UPDATE of the same row) waits for the writes checked here and
    //  then finds the epoch it must move past. SQLite's BEGIN IMMEDIATE already holds the
    //  whole store. (FOR SHARE would do on PostgreSQL only, and SQLite has no row locks.)
    int64_t changed = ml_db_execute (db,
                                     "UPDATE firm_lease SET epoch = epoch WHERE firm_id = ? AND"
                                     " owner = ? AND epoch = ?",
                                     "ssi", firm_id, node, epoch);
    return changed < 0 ? -1 : changed == 1 ? 1 : 0;
}

int ml_lease_fence (ml_lease_t *self, ml_db_t *db, const char *firm_id)
{
    assert (self && db && firm_id);
    int64_t epoch = s_epoch (self, firm_id);
    int rc = ml_lease_check (db, firm_id, self->node, epoch);
    if (rc == 0)
        ml_log (ML_LOG_WARNING,
                "firm %s: write refused: node %s does not hold the firm's lease (epoch %lld)",
                firm_id, self->node, (long long)epoch);
    return rc;
}

//  Self test ---------------------------------------------------------------------------------

void ml_lease_test (bool verbose)
{
    printf (" * ml_lease: ");
    char directory[128], error[512];
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    //  Two nodes, each with its own connection to one store (an SQLite file, or a PostgreSQL
    //  database with ML_SELFTEST_POSTGRESQL), as two processes would.
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_db_error_t db_error;
    ml_db_t *db_a = ml_store_db (store);
    ml_db_t *db_b = ml_db_new (ml_selftest_store_connection (directory), &db_error);
    assert (db_a && db_b);
    assert (!ml_lease_new (db_a, "", "", 5000, error, sizeof error));
    ml_lease_t *a = ml_lease_new (db_a, "a", "tcp://127.0.0.1:1", 1000, error, sizeof error);
    ml_lease_t *b = ml_lease_new (db_b, "b", "tcp://127.0.0.1:2", 5000, error, sizeof error);
    assert (a && b);
    assert (streq (ml_lease_node (a), "a"));
    //  A free firm: a takes it under epoch 1; b is sent to a.
    char endpoint[256];
    assert (ml_lease_acquire (a, "f1", endpoint, sizeof endpoint) == 1);
    assert (ml_lease_owns (a, "f1") && !ml_lease_owns (b, "f1"));
    assert (ml_lease_acquire (b, "f1", endpoint, sizeof endpoint) == 0);
    assert (streq (endpoint, "tcp://127.0.0.1:1"));
    char node[64];
    assert (ml_lease_owner (db_b, "f1", node, sizeof node, endpoint, sizeof endpoint) == 1);
    assert (streq (node, "a"));
    assert (ml_lease_owner (db_b, "nobody", node, sizeof node, NULL, 0) == 0);
    //  Each node advertises where other nodes forward requests to it, and its key.
    char forward[256], key[64];
    assert (ml_lease_node_forward (db_b, "a", forward, sizeof forward, key, sizeof key) == 0);
    assert (ml_lease_advertise_forward (a, "tcp://127.0.0.1:3", "") == 0);
    assert (ml_lease_advertise_forward (a, "tcp://127.0.0.1:4", "KEY-A") == 0);
    assert (ml_lease_node_forward (db_b, "a", forward, sizeof forward, key, sizeof key) == 1);
    assert (streq (forward, "tcp://127.0.0.1:4") && streq (key, "KEY-A"));
    assert (ml_lease_node_key (db_b, "KEY-A", node, sizeof node) == 1 && streq (node, "a"));
    assert (ml_lease_node_key (db_b, "KEY-B", node, sizeof node) == 0);
    assert (ml_lease_node_key (db_b, "", node, sizeof node) == 0);
    //  Jobs: a's firm is not b's to run; a firm no node serves is adopted by the first asker.
    assert (ml_lease_runs_jobs (a, "f1") && !ml_lease_runs_jobs (b, "f1"));
    assert (ml_lease_runs_jobs (b, "f9") && ml_lease_owns (b, "f9") &&
            !ml_lease_runs_jobs (a, "f9"));
    assert (ml_lease_release (b, "f9") == 0 && !ml_lease_owns (b, "f9"));
    zlistx_t *others = zlistx_new ();
    zlistx_set_duplicator (others, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor (others, (zlistx_destructor_fn *)zstr_free);
    assert (ml_lease_others (b, others) == 0 && zlistx_size (others) == 1);
    assert (streq (zlistx_first (others), "f1"));
    assert (ml_lease_others (a, others) == 0 && zlistx_size (others) == 1);
    zlistx_destroy (&others);
    //  The fence: a may write f1, b may not; a's write and check are one transaction.
    assert (ml_db_begin (db_a) == 0);
    assert (ml_lease_fence (a, db_a, "f1") == 1);
    assert (ml_db_commit (db_a) == 0);
    assert (ml_db_begin (db_b) == 0);
    assert (ml_lease_fence (b, db_b, "f1") == 0);
    assert (ml_lease_check (db_b, "f1", "a", 2) == 0); //  a future epoch is no one's
    assert (ml_db_rollback (db_b) == 0);
    //  Renewal keeps it; acquiring again renews under the same epoch.
    zlistx_t *lost = ml_lease_renew (a);
    assert (lost && zlistx_size (lost) == 0);
    zlistx_destroy (&lost);
    assert (ml_lease_acquire (a, "f1", NULL, 0) == 1);
    //  a is paused past its lease (1 s): b takes the firm under epoch 2.
    zclock_sleep (1100);
    assert (!ml_lease_owns (a, "f1"));
    assert (ml_lease_acquire (b, "f1", endpoint, sizeof endpoint) == 1);
    assert (ml_lease_check (db_b, "f1", "b", 2) == 1);
    //  The former owner wakes up: its write under epoch 1 is refused inside its transaction,
    //  and its renewal reports the firm lost.
    assert (ml_db_begin (db_a) == 0);
    assert (ml_lease_check (db_a, "f1", "a", 1) == 0);
    assert (ml_db_rollback (db_a) == 0);
    s_hold (a, "f1", 1, zclock_mono () + 1000); //  as if a still believed it held f1
    lost = ml_lease_renew (a);
    assert (lost && zlistx_size (lost) == 1 && streq (zlistx_first (lost), "f1"));
    zlistx_destroy (&lost);
    assert (!ml_lease_owns (a, "f1"));
    assert (ml_lease_acquire (a, "f1", endpoint, sizeof endpoint) == 0);
    assert (streq (endpoint, "tcp://127.0.0.1:2"));
    //  A clean stop releases: a takes the firm at once, under epoch 3.
    ml_lease_destroy (&b);
    ml_lease_destroy (&b);
    assert (ml_lease_acquire (a, "f1", NULL, 0) == 1);
    assert (ml_lease_check (db_a, "f1", "a", 3) == 1);
    //  A node restarted under the same id takes its firm back under a new epoch.
    ml_lease_t *a2 = ml_lease_new (db_b, "a", "tcp://127.0.0.1:1", 5000, error, sizeof error);
    assert (ml_lease_acquire (a2, "f1", NULL, 0) == 1);
    assert (ml_lease_check (db_b, "f1", "a", 4) == 1 && ml_lease_check (db_b, "f1", "a", 3) == 0);
    //  The store's own writes: once it knows the node's lease, a session started by a node
    //  that lost the firm (it was paused past its lease and another node took it) writes
    //  nothing, though the node still believes it owns the firm.
    ml_store_set_lease (store, a);
    assert (ml_lease_acquire (a, "acme", NULL, 0) == 1);
    int64_t taken = s_epoch (a, "acme");
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    strcpy (hello->epoch, "epoch-1");
    hello->high_water = 100;
    bool resync = false;
    uint64_t cursor = 0;
    assert (ml_store_fence (store, "acme") == 1);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == 0 && resync);
    zclock_sleep (1100);
    assert (ml_lease_acquire (a2, "acme", NULL, 0) == 1);
    s_hold (a, "acme", taken, zclock_mono () + 1000);
    assert (ml_lease_owns (a, "acme"));
    assert (ml_store_fence (store, "acme") == 0);
    assert (ml_store_session_open (store, "acme", hello, &resync, &cursor) == -1);
    ml_msg_destroy (&hello);
    ml_store_set_lease (store, NULL);
    ml_lease_destroy (&a2);
    ml_lease_destroy (&a);
    ml_db_destroy (&db_b);
    ml_store_destroy (&store);
    ml_log_setup (NULL, saved);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
