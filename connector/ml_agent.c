/*  ml_agent: the agent service. See include/ml_agent.h and docs/protocol.md. */
#include "ml_agent.h"
#include "ml_selftest_support.h"
#include "ml_config.h"
#include "ml_contract.h"
#include "ml_keygen.h"
#include "ml_log.h"
#include "ml_msg.h"
#include "ml_service.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

typedef enum {
    S_CONNECTING, //  waiting for the database, or to send HELLO
    S_GREETING,   //  HELLO sent, waiting for WELCOME
    S_SNAPSHOT,   //  sending the snapshot
    S_STREAMING   //  sending changes
} s_state_t;

#define S_HELLO_HEARTBEAT_MS  2000 //  liveness before WELCOME tells the real interval
#define S_DB_BACKOFF_MIN_MS   500
#define S_DB_BACKOFF_MAX_MS   30000
#define S_CORE_FAILURE_MIN_MS 1000 //  after ERROR 500: first wait, doubled up to the max
#define S_CORE_FAILURE_MAX_MS 30000
//  After ERROR 413 (the firm's replica would pass the core's limit): an operator must act,
//  and each try may stream the whole snapshot again, so the waits grow to a quarter hour.
#define S_TOO_LARGE_MIN_MS 30000
#define S_TOO_LARGE_MAX_MS 900000
#define S_POSTING_BATCH    256 //  postings applied in one matter-database transaction

//  The next wait of a backoff: twice this one, at most max.
static int s_doubled (int wait_ms, int max_ms)
{
    return wait_ms > max_ms / 2 ? max_ms : wait_ms * 2;
}

typedef struct {
    ml_agent_settings_t settings;
    zsock_t *pipe;
    zsock_t *dealer;
    zcert_t *certificate;
    ml_contract_t *contract;
    int64_t db_retry_at;
    int db_backoff_ms;
    int core_failure_backoff_ms; //  wait before HELLO after the next ERROR 500
    int too_large_backoff_ms;    //  wait before HELLO after the next ERROR 413
    char epoch[64];
    s_state_t state;
    int64_t hello_at;      //  when the next HELLO may go out
    int64_t last_received; //  any message from the core
    int64_t last_sent;
    uint32_t heartbeat_ms;
    uint32_t window;
    uint64_t batch;        //  last batch number sent in this session
    uint64_t acked_batch;  //  last batch number acknowledged
    uint64_t sent_cursor;  //  change id up to which changes were sent
    uint64_t acked_cursor; //  the core's cursor from its last ACK
    //  Snapshot progress
    uint64_t snapshot_high_water;
    uint64_t snapshot_count;
    int64_t snapshot_paced_from; //  monotonic ms, for database/snapshot_rows_per_second
    int64_t poll_at;             //  next look for changes
    int64_t unreachable_since;   //  first failed HELLO of the current outage, or 0
    int64_t unreachable_logged;
    ml_msg_t *postings[S_POSTING_BATCH]; //  POSTINGs received, waiting to be applied
    size_t posting_count;
    //  Several core nodes (docs/multinode.md): the one talked to now (0 core/endpoint, then
    //  core/others in order), and when the agent last left each for silence (monotonic ms).
    size_t current;
    int64_t left_at[ML_AGENT_MAX_CORES];
    bool terminated;
} s_agent_t;

//  Parse core/others: "ENDPOINT KEY" entries separated by ','. Returns 0, or -1 with error.
static int s_others_parse (ml_agent_settings_t *settings, const char *text, const char *path,
                           char *error, size_t error_size)
{
    char copy[1024];
    if (strlen (text) >= sizeof copy) {
        snprintf (error, error_size, "%s: core/others is longer than %zu bytes", path,
                  sizeof copy - 1);
        return -1;
    }
    snprintf (copy, sizeof copy, "%s", text);
    char *rest = copy;
    size_t number = 0;
    for (char *entry = strsep (&rest, ","); entry; entry = strsep (&rest, ",")) {
        number++;
        char endpoint[257] = "", key[42] = "", extra[8] = "";
        uint8_t decoded[32];
        int fields = sscanf (entry, " %256s %41s %7s", endpoint, key, extra);
        if (fields == EOF && !rest)
            break; //  none at all, or a trailing comma
        if (fields != 2 || strlen (endpoint) >= sizeof settings->others[0].endpoint ||
            strlen (key) != 40 || !zmq_z85_decode (decoded, key)) {
            snprintf (error, error_size,
                      "%s: core/others entry %zu must be 'ENDPOINT KEY' with a 40-character Z85 "
                      "key",
                      path, number);
            return -1;
        }
        if (settings->other_count == ML_AGENT_MAX_CORES - 1) {
            snprintf (error, error_size, "%s: core/others names more than %d cores", path,
                      ML_AGENT_MAX_CORES - 1);
            return -1;
        }
        ml_agent_core_t *core = &settings->others[settings->other_count++];
        memcpy (core->endpoint, endpoint, strlen (endpoint) + 1); //  lengths checked above
        memcpy (core->public_key, key, 41);
    }
    return 0;
}

int ml_agent_settings_load (ml_agent_settings_t *settings, const char *path, char *error,
                            size_t error_size)
{
    memset (settings, 0, sizeof *settings);
    ml_config_t *config = ml_config_load (path, error, error_size);
    if (!config)
        return -1;
    snprintf (settings->dialect, sizeof settings->dialect, "%s",
              ml_config_string (config, "database/dialect", "sqlite"));
    const char *connection = ml_config_string (config, "database/connection", NULL);
    snprintf (settings->connection, sizeof settings->connection, "%s", connection);
    settings->batch_rows = ml_config_int (config, "database/batch_rows", 1000, 1, ML_MAX_ITEMS);
    settings->statement_timeout_ms =
        ml_config_int (config, "database/statement_timeout_ms", 60000, 0, 3600000);
    settings->poll_interval_ms =
        ml_config_int (config, "database/poll_interval_ms", 500, 10, 600000);
    settings->snapshot_rows_per_second =
        ml_config_int (config, "database/snapshot_rows_per_second", 0, 0, 1000000);
    snprintf (settings->core_endpoint, sizeof settings->core_endpoint, "%s",
              ml_config_string (config, "core/endpoint", NULL));
    const char *key = ml_config_string (config, "core/public_key", NULL);
    snprintf (settings->certificate, sizeof settings->certificate, "%s",
              ml_config_string (config, "agent/certificate", NULL));
    int rc = 0;
    const char *problem = ml_config_error (config);
    uint8_t decoded[32];
    if (problem) {
        snprintf (error, error_size, "%s", problem);
        rc = -1;
    } else if (strlen (key) != 40 || !zmq_z85_decode (decoded, key)) {
        snprintf (error, error_size,
                  "%s: core/public_key must be the core's 40-character Z85 public key "
                  "(printed by 'matterlink-core keygen')",
                  path);
        rc = -1;
    } else if (!ml_contract_dialect_known (settings->dialect)) {
        snprintf (error, error_size,
                  "%s: database/dialect '%s' is not one of sqlite, postgresql, mariadb, sqlserver",
                  path, settings->dialect);
        rc = -1;
    } else if (strlen (connection) >= sizeof settings->connection) {
        snprintf (error, error_size, "%s: database/connection is longer than %zu bytes", path,
                  sizeof settings->connection - 1);
        rc = -1;
    } else if (s_others_parse (settings, ml_config_string (config, "core/others", ""), path, error,
                               error_size) != 0)
        rc = -1;
    else
        snprintf (settings->core_public_key, sizeof settings->core_public_key, "%s", key);
    ml_config_destroy (&config);
    return rc;
}

//  Core nodes --------------------------------------------------------------------------------

static size_t s_core_count (s_agent_t *self)
{
    return 1 + self->settings.other_count;
}

static const char *s_core_endpoint (s_agent_t *self, size_t index)
{
    return index == 0 ? self->settings.core_endpoint : self->settings.others[index - 1].endpoint;
}

static const char *s_core_key (s_agent_t *self, size_t index)
{
    return index == 0 ? self->settings.core_public_key
                      : self->settings.others[index - 1].public_key;
}

//  A new DEALER to the current core, pinning that core's key. One connection at a time: a
//  DEALER connected to several endpoints would spread the session's messages over them.
static int s_connect (s_agent_t *self)
{
    zsock_destroy (&self->dealer);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zcert_apply (self->certificate, self->dealer);
    zsock_set_curve_serverkey (self->dealer, s_core_key (self, self->current));
    zsock_set_maxmsgsize (self->dealer, ML_MAX_MESSAGE_SIZE);
    zsock_set_immediate (self->dealer, 1);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 5000);
    zsock_set_linger (self->dealer, 0);
    if (zsock_connect (self->dealer, "%s", s_core_endpoint (self, self->current)) != 0) {
        ml_log (ML_LOG_ERROR, "cannot connect to core endpoint '%s'",
                s_core_endpoint (self, self->current));
        return -1;
    }
    return 0;
}

//  Talk to core index from now on (zguide "Freelance", model 1): what was in flight with the
//  last one is sent again by the new one (postings) or by this agent (unacknowledged batches,
//  after the new session's WELCOME).
static void s_switch (s_agent_t *self, size_t index, const char *why)
{
    int64_t now = zclock_mono ();
    ml_log (ML_LOG_NOTICE, "leaving the core at %s (%s) for %s",
            s_core_endpoint (self, self->current), why, s_core_endpoint (self, index));
    self->current = index;
    if (s_connect (self) != 0)
        self->hello_at = now + 1000;
    else
        self->hello_at = now;
    self->state = S_CONNECTING;
    self->last_received = now;
    self->unreachable_since = 0;
}

//  The next core to try after the current one: the first not left within the last 10 s (a node
//  found dead or paused is not tried again at once, while others may answer), else simply the
//  next.
static size_t s_next_core (s_agent_t *self)
{
    int64_t now = zclock_mono ();
    size_t count = s_core_count (self);
    for (size_t step = 1; step < count; step++) {
        size_t index = (self->current + step) % count;
        if (!self->left_at[index] || now - self->left_at[index] >= 10000)
            return index;
    }
    return (self->current + 1) % count;
}

//  The core says another node owns the firm (ERROR 307): go there when it is one of ours and
//  was not just left for silence (a dead owner's lease still runs: stay, and greet this core
//  again shortly, which takes the firm once the lease expires); an unknown owner: next core.
static void s_moved (s_agent_t *self, const ml_msg_t *error)
{
    int64_t now = zclock_mono ();
    char endpoint[256];
    int named = ml_msg_moved_endpoint (error, endpoint, sizeof endpoint);
    size_t target = self->current;
    for (size_t index = 0; named == 1 && index < s_core_count (self); index++)
        if (streq (s_core_endpoint (self, index), endpoint))
            target = index;
    if (named == 1 && target == self->current && !streq (endpoint, s_core_endpoint (self, target)))
        ml_log (ML_LOG_WARNING,
                "the core sends this agent to %s, which is not in core/endpoint or core/others",
                endpoint);
    bool recent = self->left_at[target] && now - self->left_at[target] < 10000;
    if (target != self->current && !recent)
        s_switch (self, target, "another node owns the firm");
    else if (named != 1 && s_core_count (self) > 1)
        s_switch (self, s_next_core (self), "another node owns the firm");
    else {
        self->state = S_CONNECTING;
        self->hello_at = now + 1000;
    }
}

//  Sending -----------------------------------------------------------------------------------

static int s_send (s_agent_t *self, ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (ml_msg_encode (message, &data, &size) != 0) {
        ml_log (ML_LOG_ERROR, "cannot encode %s (a field breaks a protocol limit)",
                ml_msg_name (message->id));
        return -1;
    }
    //  Never block: with ZMQ_IMMEDIATE the send fails while the core is unreachable, and
    //  the state machine sends again when it has something to say.
    int rc = zmq_send (zsock_resolve (self->dealer), data, size, ZMQ_DONTWAIT);
    free (data);
    if (rc < 0) {
        ml_log (ML_LOG_DEBUG, "%s not sent: %s", ml_msg_name (message->id), zmq_strerror (errno));
        return -1;
    }
    self->last_sent = zclock_mono ();
    ml_log (ML_LOG_DEBUG, "sent %s", ml_msg_name (message->id));
    return 0;
}

static void s_send_simple (s_agent_t *self, int id)
{
    ml_msg_t *message = ml_msg_new (id);
    s_send (self, message);
    ml_msg_destroy (&message);
}

//  Database ------------------------------------------------------------------------------------

static void s_database_lost (s_agent_t *self, const char *doing)
{
    const ml_odbc_error_t *error = ml_contract_error (self->contract);
    char escaped[600];
    ml_log (ML_LOG_WARNING, "matter database error while %s: %s [%s, %s]; reconnecting", doing,
            ml_log_escape (error->message, escaped, sizeof escaped), error->sqlstate,
            ml_odbc_class_name (error->kind));
    ml_contract_destroy (&self->contract);
    self->db_retry_at = zclock_mono () + self->db_backoff_ms;
    //  The session continues once the database is back: HELLO again so the core tells us
    //  where to resume, and nothing read half-way is trusted.
    self->state = S_CONNECTING;
}

static bool s_database_ready (s_agent_t *self)
{
    if (self->contract)
        return true;
    if (zclock_mono () < self->db_retry_at)
        return false;
    ml_odbc_error_t error;
    self->contract = ml_contract_new (self->settings.dialect, self->settings.connection, &error);
    if (self->contract &&
        ml_contract_set_timeout (self->contract, self->settings.statement_timeout_ms) != 0) {
        error = *ml_contract_error (self->contract);
        ml_contract_destroy (&self->contract);
    }
    char text[600];
    if (self->contract && ml_contract_check (self->contract, text, sizeof text, self->epoch,
                                             sizeof self->epoch) != 0) {
        ml_log (ML_LOG_ERROR, "%s", text);
        ml_contract_destroy (&self->contract);
        error.kind = ML_ODBC_OTHER;
        snprintf (error.message, sizeof error.message, "contract check failed");
    }
    if (!self->contract) {
        char escaped[600];
        ml_log (ML_LOG_WARNING, "cannot use the matter database: %s; retrying in %d ms",
                ml_log_escape (error.message, escaped, sizeof escaped), self->db_backoff_ms);
        self->db_retry_at = zclock_mono () + self->db_backoff_ms;
        self->db_backoff_ms = s_doubled (self->db_backoff_ms, S_DB_BACKOFF_MAX_MS);
        return false;
    }
    self->db_backoff_ms = S_DB_BACKOFF_MIN_MS;
    ml_log (ML_LOG_NOTICE, "matter database connected (contract version %d, epoch %s)",
            ML_CONTRACT_VERSION, self->epoch);
    return true;
}

//  Session ---------------------------------------------------------------------------------

static void s_send_hello (s_agent_t *self)
{
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    hello->protocol = ML_PROTOCOL_VERSION;
    snprintf (hello->agent_version, sizeof hello->agent_version, "%s", ML_AGENT_VERSION);
    hello->contract_version = ML_CONTRACT_VERSION;
    snprintf (hello->epoch, sizeof hello->epoch, "%s", self->epoch);
    if (ml_contract_high_water (self->contract, &hello->high_water) != 0) {
        ml_msg_destroy (&hello);
        s_database_lost (self, "reading the change high-water");
        return;
    }
    if (s_send (self, hello) == 0) {
        self->state = S_GREETING;
        self->last_received = zclock_mono ();
        ml_log (ML_LOG_INFO, "HELLO sent to the core (high-water %llu)",
                (unsigned long long)hello->high_water);
        self->hello_at = zclock_mono () + 3 * S_HELLO_HEARTBEAT_MS;
        self->unreachable_since = 0;
    } else {
        //  Not connected: libzmq is (re)connecting, or the core refused the CURVE handshake.
        //  Try again shortly, and tell the operator now and then, not on every attempt.
        int64_t now = zclock_mono ();
        if (!self->unreachable_since)
            self->unreachable_since = now;
        if (now - self->unreachable_since >= 3 * S_HELLO_HEARTBEAT_MS &&
            now - self->unreachable_logged >= 60000) {
            ml_log (ML_LOG_WARNING,
                    "cannot reach the core at %s for %lld s: it is down or unreachable, or it "
                    "refused this agent's key (is this agent's key registered with the core?)",
                    s_core_endpoint (self, self->current),
                    (long long)(now - self->unreachable_since) / 1000);
            self->unreachable_logged = now;
        }
        self->hello_at = now + 100;
    }
    ml_msg_destroy (&hello);
}

static bool s_has_credit (s_agent_t *self)
{
    return self->batch - self->acked_batch < self->window;
}

//  How long the snapshot must wait at NOW before its next batch so that the COUNT rows
//  sent since *PACED_FROM stay within RATE rows a second (0: no limit). Kept from a start
//  rather than per batch, so rounding never adds up. When the snapshot is behind (a slow
//  database), the start moves up: no credit is saved for a burst afterwards.
static int64_t s_snapshot_pause_ms (uint64_t count, int rate, int64_t *paced_from, int64_t now)
{
    if (rate <= 0)
        return 0;
    int64_t due = (int64_t)(count * 1000 / (uint64_t)rate);
    if (due > now - *paced_from)
        return due - (now - *paced_from);
    *paced_from = now - due;
    return 0;
}

//  Send the next snapshot batch: open invoices first, then trust balances, then
//  SNAPSHOT-END when a page comes back empty in the trust phase.
static void s_snapshot_step (s_agent_t *self)
{
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    size_t limit = (size_t)self->settings.batch_rows;
    int rows = ml_contract_snapshot_next (self->contract, limit, batch);
    if (rows < 0) {
        ml_msg_destroy (&batch);
        s_database_lost (self, "reading the snapshot");
        return;
    }
    if (rows == 0) {
        ml_contract_snapshot_end (self->contract);
        ml_msg_t *end = ml_msg_new (ML_MSG_SNAPSHOT_END);
        end->batch = ++self->batch;
        end->cursor = self->snapshot_high_water;
        end->count = self->snapshot_count;
        if (s_send (self, end) == 0) {
            ml_log (ML_LOG_NOTICE, "snapshot sent: %llu items, cursor %llu",
                    (unsigned long long)self->snapshot_count,
                    (unsigned long long)self->snapshot_high_water);
            self->state = S_STREAMING;
            self->sent_cursor = self->snapshot_high_water;
            self->poll_at = 0;
        } else
            self->state = S_CONNECTING; //  the link dropped: start a new session
        ml_msg_destroy (&end);
    } else if (batch->item_count > 0) {
        batch->batch = ++self->batch;
        self->snapshot_count += batch->item_count;
        if (s_send (self, batch) != 0)
            self->state = S_CONNECTING;
    }
    ml_msg_destroy (&batch);
}

//  Look for changes above what was sent and send one batch of them.
static void s_changes_step (s_agent_t *self)
{
    uint64_t high_water = 0;
    if (ml_contract_high_water (self->contract, &high_water) != 0) {
        s_database_lost (self, "reading the change high-water");
        return;
    }
    if (high_water <= self->sent_cursor) {
        self->poll_at = zclock_mono () + self->settings.poll_interval_ms;
        return;
    }
    ml_msg_t *batch = ml_msg_new (ML_MSG_CHANGES);
    uint64_t last = 0;
    size_t limit = (size_t)self->settings.batch_rows;
    int got =
        ml_contract_changes (self->contract, self->sent_cursor, high_water, limit, batch, &last);
    if (got < 0) {
        ml_msg_destroy (&batch);
        s_database_lost (self, "reading changes");
        return;
    }
    batch->batch = ++self->batch;
    batch->since = self->sent_cursor;
    //  A short page read every change up to the high-water (ids may have gaps); a full
    //  page stops at its last row and the next batch continues from there.
    bool full = (size_t)got >= limit;
    batch->cursor = full ? last : high_water;
    if (s_send (self, batch) == 0) {
        ml_log (ML_LOG_INFO, "sent %zu changes (%llu..%llu]", batch->item_count,
                (unsigned long long)batch->since, (unsigned long long)batch->cursor);
        self->sent_cursor = batch->cursor;
        if (!full)
            self->poll_at = zclock_mono () + self->settings.poll_interval_ms;
    } else
        self->state = S_CONNECTING;
    ml_msg_destroy (&batch);
}

//  Apply the POSTINGs received so far in one transaction (ml_contract_apply_batch isolates
//  a bad one) and answer each, only after its commit.
static void s_flush_postings (s_agent_t *self)
{
    size_t count = self->posting_count;
    if (count == 0)
        return;
    self->posting_count = 0;
    size_t answered = 0;
    ml_msg_t *results[S_POSTING_BATCH];
    ml_posting_t *postings[S_POSTING_BATCH];
    for (size_t index = 0; index < count; index++) {
        postings[index] = &self->postings[index]->posting;
        results[index] = ml_msg_new (ML_MSG_POSTING_RESULT);
    }
    if (self->contract)
        answered = ml_contract_apply_batch (self->contract, postings, count, results);
    //  Test hook: die between the commit and the acknowledgement, the one place where a
    //  crash could lose or repeat a posting if the design were wrong.
    const char *crash = getenv ("MATTERLINK_TEST_CRASH");
    if (answered > 0 && crash && streq (crash, "after-commit"))
        raise (SIGKILL);
    for (size_t index = 0; index < answered; index++) {
        ml_msg_t *result = results[index];
        char reason[300];
        ml_log (ML_LOG_NOTICE, "posting %s %s%s%s%s%s", result->posting_uuid, result->status,
                *result->receipt_id ? " as receipt " : "", result->receipt_id,
                *result->reason ? ": " : "", ml_log_escape (result->reason, reason, sizeof reason));
        s_send (self, result);
    }
    if (answered < count) {
        ml_log (ML_LOG_WARNING, "%zu postings not applied now; the core will deliver them again",
                count - answered);
        if (self->contract)
            s_database_lost (self, "applying postings");
    }
    for (size_t index = 0; index < count; index++) {
        ml_msg_destroy (&results[index]);
        ml_msg_destroy (&self->postings[index]);
    }
}

//  Answer a SEARCH at once: from the matter database, or with why it cannot be (503 while
//  the database is unreachable), so the core never waits out its deadline for nothing.
static void s_search (s_agent_t *self, const ml_msg_t *request)
{
    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    answer->request_id = request->request_id;
    int64_t started = zclock_mono ();
    if (!self->contract) {
        answer->code = ML_SEARCH_UNAVAILABLE;
        snprintf (answer->reason, sizeof answer->reason,
                  "the agent cannot reach the matter database now; it keeps trying");
    } else if (ml_contract_search (self->contract, &request->search, answer) != 0)
        s_database_lost (self, "searching");
    char reason[300];
    ml_log (answer->code == ML_SEARCH_OK ? ML_LOG_DEBUG : ML_LOG_WARNING,
            "search %llu (%s): %u, %zu rows in %lld ms%s%s",
            (unsigned long long)request->request_id, ml_field_name (request->search.field),
            answer->code, answer->item_count, (long long)(zclock_mono () - started),
            *answer->reason ? ": " : "", ml_log_escape (answer->reason, reason, sizeof reason));
    s_send (self, answer);
    ml_msg_destroy (&answer);
}

static void s_handle (s_agent_t *self, ml_msg_t *message)
{
    self->last_received = zclock_mono ();
    switch (message->id) {
        case ML_MSG_WELCOME:
            if (self->state != S_GREETING) {
                ml_log (ML_LOG_DEBUG, "WELCOME out of turn ignored");
                break;
            }
            self->heartbeat_ms = message->heartbeat_ms;
            self->window = message->window;
            self->core_failure_backoff_ms = S_CORE_FAILURE_MIN_MS;
            self->batch = self->acked_batch = 0;
            if (message->resync) {
                if (ml_contract_high_water (self->contract, &self->snapshot_high_water) != 0) {
                    s_database_lost (self, "starting the snapshot");
                    break;
                }
                if (ml_contract_snapshot_begin (self->contract) != 0) {
                    s_database_lost (self, "starting the snapshot");
                    break;
                }
                self->snapshot_count = 0;
                self->snapshot_paced_from = zclock_mono ();
                self->state = S_SNAPSHOT;
                ml_log (ML_LOG_NOTICE, "core asked for a snapshot (high-water %llu)%s",
                        (unsigned long long)self->snapshot_high_water,
                        self->settings.snapshot_rows_per_second
                            ? " (paced by database/snapshot_rows_per_second)"
                            : "");
            } else {
                self->sent_cursor = self->acked_cursor = message->cursor;
                self->state = S_STREAMING;
                self->poll_at = 0;
                ml_log (ML_LOG_NOTICE, "session resumed at change %llu",
                        (unsigned long long)message->cursor);
            }
            break;
        case ML_MSG_ACK:
            if ((self->state == S_SNAPSHOT || self->state == S_STREAMING) &&
                message->batch > self->acked_batch && message->batch <= self->batch) {
                self->acked_batch = message->batch;
                self->acked_cursor = message->cursor;
                //  A snapshot's end or changes were stored: the replica is within the limit.
                if (message->cursor)
                    self->too_large_backoff_ms = S_TOO_LARGE_MIN_MS;
            }
            break;
        case ML_MSG_PING:
            s_send_simple (self, ML_MSG_PONG);
            break;
        case ML_MSG_PONG:
            break;
        case ML_MSG_SEARCH:
            s_search (self, message);
            break;
        case ML_MSG_ERROR: {
            if (message->code == ML_ERROR_MOVED) {
                s_moved (self, message);
                break;
            }
            char reason[300];
            ml_log (message->code == ML_ERROR_OUT_OF_STATE ? ML_LOG_INFO : ML_LOG_ERROR,
                    "core says %u: %s", message->code,
                    ml_log_escape (message->reason, reason, sizeof reason));
            //  Already waiting after an error: the batches that were in flight come back as
            //  409s, and must not turn that wait into a greeting now (a refused batch would
            //  otherwise start the snapshot again at once, again and again).
            int64_t waiting_until = self->state == S_CONNECTING ? self->hello_at : 0;
            self->state = S_CONNECTING;
            //  Out of state: greet again now. Key in use: another connection with this key
            //  holds the route (this agent's own, not yet seen closed, after a restart, or a
            //  copy of the key): try again within a core's liveness window. The core failed
            //  (its store is restarting or failing over): 1 s, then longer while it lasts,
            //  so that a short outage costs seconds, not a fixed 30 s. Anything else
            //  (unknown key, version): the operator must act, so do not hammer the core.
            int64_t wait = 30000;
            if (message->code == ML_ERROR_OUT_OF_STATE)
                wait = 0;
            else if (message->code == ML_ERROR_KEY_IN_USE)
                wait = 5000;
            else if (message->code == ML_ERROR_TOO_LARGE) {
                wait = self->too_large_backoff_ms;
                self->too_large_backoff_ms =
                    s_doubled (self->too_large_backoff_ms, S_TOO_LARGE_MAX_MS);
            } else if (message->code == ML_ERROR_INTERNAL) {
                wait = self->core_failure_backoff_ms;
                self->core_failure_backoff_ms =
                    s_doubled (self->core_failure_backoff_ms, S_CORE_FAILURE_MAX_MS);
            }
            self->hello_at = zclock_mono () + wait;
            if (waiting_until > self->hello_at)
                self->hello_at = waiting_until;
            break;
        }
        default:
            ml_log (ML_LOG_WARNING, "unexpected %s from the core ignored",
                    ml_msg_name (message->id));
    }
}

//  Read what the core sent. Consecutive POSTINGs are gathered (up to a batch) and applied
//  together; any other message first flushes the postings before it, keeping the order.
static void s_receive (s_agent_t *self)
{
    do {
        zframe_t *frame = zframe_recv (self->dealer);
        if (!frame)
            break;
        const char *error = NULL;
        ml_msg_t *message = ml_msg_decode (zframe_data (frame), zframe_size (frame), &error);
        zframe_destroy (&frame);
        if (!message) {
            ml_log (ML_LOG_WARNING, "malformed message from the core dropped: %s", error);
            continue;
        }
        ml_log (ML_LOG_DEBUG, "received %s", ml_msg_name (message->id));
        self->last_received = zclock_mono ();
        if (message->id == ML_MSG_POSTING) {
            self->postings[self->posting_count++] = message;
            continue;
        }
        s_flush_postings (self);
        s_handle (self, message);
        ml_msg_destroy (&message);
    } while (self->posting_count < S_POSTING_BATCH && (zsock_events (self->dealer) & ZMQ_POLLIN));
    s_flush_postings (self);
}

//  One turn of the state machine: do at most one unit of work. Returns the time in ms to
//  wait for messages before the next turn (0 when more work is ready).
static int s_step (s_agent_t *self)
{
    int64_t now = zclock_mono ();
    if (!s_database_ready (self))
        return (int)(self->db_retry_at - now > 0 ? self->db_retry_at - now : 10);
    uint32_t heartbeat = self->state == S_GREETING || self->state == S_CONNECTING
                             ? S_HELLO_HEARTBEAT_MS
                             : self->heartbeat_ms;
    //  Silence for three heartbeats: the core restarted or the link dropped messages.
    if (self->state != S_CONNECTING && now - self->last_received > 3 * (int64_t)heartbeat) {
        ml_log (ML_LOG_WARNING, "no word from the core for %d ms; greeting it again%s",
                (int)(now - self->last_received),
                self->state == S_GREETING ? " (is this agent's key registered with the core?)"
                                          : "");
        self->state = S_CONNECTING;
        if (s_core_count (self) > 1) {
            self->left_at[self->current] = now;
            s_switch (self, s_next_core (self), "silent");
        }
    }
    //  Unreachable (down, or refusing the handshake): the next core, if there is one.
    if (self->state == S_CONNECTING && s_core_count (self) > 1 && self->unreachable_since &&
        now - self->unreachable_since >= S_HELLO_HEARTBEAT_MS) {
        self->left_at[self->current] = now;
        s_switch (self, s_next_core (self), "unreachable");
    }
    if (self->state == S_CONNECTING) {
        if (now >= self->hello_at)
            s_send_hello (self);
        return 100;
    }
    bool in_session = self->state == S_SNAPSHOT || self->state == S_STREAMING;
    //  The heartbeat comes first: however busy or idle the agent is, the core hears from it
    //  at least once per interval.
    if (in_session && now - self->last_sent >= (int64_t)heartbeat)
        s_send_simple (self, ML_MSG_PING);
    int64_t pause =
        self->state == S_SNAPSHOT
            ? s_snapshot_pause_ms (self->snapshot_count, self->settings.snapshot_rows_per_second,
                                   &self->snapshot_paced_from, now)
            : 0;
    if (self->state == S_SNAPSHOT && s_has_credit (self) && pause == 0) {
        s_snapshot_step (self);
        return 0;
    }
    if (self->state == S_STREAMING && s_has_credit (self) && now >= self->poll_at)
        s_changes_step (self);
    now = zclock_mono ();
    int64_t wait = in_session ? (int64_t)heartbeat - (now - self->last_sent) : (int64_t)heartbeat;
    if (self->state == S_SNAPSHOT && s_has_credit (self) && pause < wait)
        wait = pause;
    if (self->state == S_STREAMING && s_has_credit (self) && self->poll_at - now < wait)
        wait = self->poll_at - now;
    return wait > 0 ? (int)wait : 0;
}

static int s_agent_init (s_agent_t *self, zsock_t *pipe, const ml_agent_settings_t *settings)
{
    memset (self, 0, sizeof *self);
    self->settings = *settings;
    self->pipe = pipe;
    self->db_backoff_ms = S_DB_BACKOFF_MIN_MS;
    self->core_failure_backoff_ms = S_CORE_FAILURE_MIN_MS;
    self->too_large_backoff_ms = S_TOO_LARGE_MIN_MS;
    self->window = 1;
    char certificate_error[1200];
    self->certificate = ml_keygen_load_secret ("agent/certificate", settings->certificate, "agent",
                                               certificate_error, sizeof certificate_error);
    if (!self->certificate) {
        ml_log (ML_LOG_ERROR, "%s", certificate_error);
        return -1;
    }
    return s_connect (self);
}

void ml_agent_actor (zsock_t *pipe, void *args)
{
    s_agent_t agent;
    s_agent_t *self = &agent;
    if (s_agent_init (self, pipe, (const ml_agent_settings_t *)args) != 0) {
        zsock_destroy (&self->dealer);
        zcert_destroy (&self->certificate);
        ml_service_ready (pipe, false);
        return;
    }
    ml_log (ML_LOG_NOTICE, "agent %s started; core at %s", ML_AGENT_VERSION,
            self->settings.core_endpoint);
    ml_service_ready (pipe, true);
    zpoller_t *poller = zpoller_new (pipe, self->dealer, NULL);
    zsock_t *polled = self->dealer;
    while (!self->terminated) {
        int timeout = s_step (self);
        if (polled != self->dealer) { //  s_switch made a new connection
            zpoller_destroy (&poller);
            poller = zpoller_new (pipe, self->dealer, NULL);
            polled = self->dealer;
        }
        void *which = zpoller_wait (poller, timeout);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            zstr_free (&command);
        } else if (which == self->dealer)
            s_receive (self);
        else if (zpoller_terminated (poller))
            self->terminated = true;
    }
    zpoller_destroy (&poller);
    ml_contract_destroy (&self->contract);
    zsock_destroy (&self->dealer);
    zcert_destroy (&self->certificate);
    ml_log (ML_LOG_NOTICE, "agent stopped");
}

//  Check -------------------------------------------------------------------------------------

//  A plain TCP connection first, so "unreachable" carries the system's reason (libzmq only
//  retries silently). Returns 0, or -1 with the reason in text. Endpoints other than tcp://
//  are left to libzmq.
static int s_check_tcp (const char *endpoint, int timeout_ms, char *text, size_t size)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return 0;
    char host[256];
    snprintf (host, sizeof host, "%s", endpoint + 6);
    char *colon = strrchr (host, ':');
    if (!colon) {
        snprintf (text, size, "core/endpoint %s has no port", endpoint);
        return -1;
    }
    *colon = 0;
    const char *port = colon + 1;
    //  [::1]:7800
    char *name = host;
    if (*name == '[' && name[strlen (name) - 1] == ']') {
        name[strlen (name) - 1] = 0;
        name++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
    int rc = getaddrinfo (name, port, &hints, &found);
    if (rc != 0) {
        snprintf (text, size, "unreachable: cannot resolve %s: %s", name, gai_strerror (rc));
        return -1;
    }
    int error = ETIMEDOUT;
    for (struct addrinfo *address = found; address; address = address->ai_next) {
        int fd = socket (address->ai_family, address->ai_socktype | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            error = errno;
            continue;
        }
        error = 0;
        if (connect (fd, address->ai_addr, address->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                struct pollfd wait = {.fd = fd, .events = POLLOUT};
                if (poll (&wait, 1, timeout_ms) == 1) {
                    socklen_t length = sizeof error;
                    getsockopt (fd, SOL_SOCKET, SO_ERROR, &error, &length);
                } else
                    error = ETIMEDOUT;
            }
        }
        close (fd);
        if (error == 0)
            break;
    }
    freeaddrinfo (found);
    if (error == 0)
        return 0;
    snprintf (text, size, "unreachable: cannot connect to %s: %s%s", endpoint, strerror (error),
              error == ECONNREFUSED ? " (nothing listens there: is the core running, and is "
                                      "core/endpoint its address and port?)"
              : error == ETIMEDOUT  ? " (no answer: a firewall, or a wrong address?)"
                                    : "");
    return -1;
}

ml_check_result_t ml_agent_check_core (const ml_agent_settings_t *settings,
                                       const char *certificate_public_path, const char *epoch,
                                       const uint64_t *high_water, int timeout_ms, char *text,
                                       size_t size)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    if (s_check_tcp (settings->core_endpoint, timeout_ms, text, size) != 0)
        return ML_CHECK_UNREACHABLE;
    //  The same checks as the running agent: mode, owner, the public half named by mistake.
    zcert_t *certificate =
        ml_keygen_load_secret ("agent/certificate", settings->certificate, "agent", text, size);
    if (!certificate)
        return ML_CHECK_REFUSED;
    char key[41];
    snprintf (key, sizeof key, "%s", zcert_public_txt (certificate));
    char register_hint[900];
    snprintf (register_hint, sizeof register_hint,
              "register it on the core: matterlink-core register-agent -c CORE.cfg --firm FIRM "
              "--name \"FIRM NAME\" --cert %s (this agent's public key is %s)",
              certificate_public_path, key);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zcert_apply (certificate, dealer);
    zsock_set_curve_serverkey (dealer, settings->core_public_key);
    zsock_set_maxmsgsize (dealer, ML_MAX_MESSAGE_SIZE);
    zsock_set_linger (dealer, 0);
    //  The monitor tells a refused key (the core's ZAP answer) from a handshake that never
    //  completes (the core cannot decrypt it: another core key) and from no connection at all.
    zactor_t *monitor = zactor_new (zmonitor, dealer);
    assert (monitor);
    zstr_sendx (monitor, "LISTEN", "CONNECTED", "HANDSHAKE_SUCCEEDED", "HANDSHAKE_FAILED_AUTH",
                "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_NO_DETAIL", NULL);
    zstr_sendx (monitor, "START", NULL);
    zsock_wait (monitor);
    ml_check_result_t result = ML_CHECK_UNREACHABLE;
    snprintf (text, size, "unreachable: no connection to %s within %d ms", settings->core_endpoint,
              timeout_ms);
    bool connected = false, handshaken = false, failed = false, hello_sent = false;
    if (zsock_connect (dealer, "%s", settings->core_endpoint) != 0) {
        snprintf (text, size, "cannot connect to core endpoint '%s'", settings->core_endpoint);
        result = ML_CHECK_REFUSED;
        goto done;
    }
    zpoller_t *poller = zpoller_new (monitor, dealer, NULL);
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        void *which = zpoller_wait (poller, (int)left);
        if (which == monitor) {
            char *name = NULL, *value = NULL;
            zstr_recvx (monitor, &name, &value, NULL);
            if (name && streq (name, "CONNECTED"))
                connected = true;
            else if (name && streq (name, "HANDSHAKE_SUCCEEDED"))
                handshaken = true;
            else if (name && streq (name, "HANDSHAKE_FAILED_AUTH")) {
                result = ML_CHECK_KEY_REFUSED;
                snprintf (text, size, "the core refused this agent's key (status %s): %s",
                          value ? value : "?", register_hint);
                failed = true;
            } else if (name && (streq (name, "HANDSHAKE_FAILED_PROTOCOL") ||
                                streq (name, "HANDSHAKE_FAILED_NO_DETAIL")))
                failed = true; //  the core closed the connection: see below
            zstr_free (&name);
            zstr_free (&value);
            if (failed)
                break;
        } else if (which == dealer) {
            zframe_t *frame = zframe_recv (dealer);
            const char *error = NULL;
            ml_msg_t *answer =
                frame ? ml_msg_decode (zframe_data (frame), zframe_size (frame), &error) : NULL;
            zframe_destroy (&frame);
            char reason[300] = "";
            if (answer && answer->id == ML_MSG_ERROR)
                ml_log_escape (answer->reason, reason, sizeof reason);
            if (!answer) {
                result = ML_CHECK_REFUSED;
                snprintf (text, size, "the core answered HELLO with a malformed message: %s",
                          error ? error : "empty");
            } else if (answer->id == ML_MSG_WELCOME) {
                result = ML_CHECK_OK;
                snprintf (text, size,
                          "core OK: %s accepted this agent's key and its HELLO (%s; heartbeat %u "
                          "ms)",
                          settings->core_endpoint,
                          answer->resync ? "the core will ask the agent for a snapshot"
                                         : "the agent will resume sending changes",
                          answer->heartbeat_ms);
            } else if (answer->id == ML_MSG_ERROR && answer->code == ML_ERROR_KEY_IN_USE) {
                result = ML_CHECK_OK;
                snprintf (text, size,
                          "core OK: %s accepted this agent's key; the firm's agent is connected "
                          "now, so the core refused this check's second connection, as it should",
                          settings->core_endpoint);
            } else if (answer->id == ML_MSG_ERROR && answer->code == ML_ERROR_MOVED) {
                //  Several core nodes (docs/multinode.md): this one knows the key, and another
                //  serves the firm now.
                char owner[256];
                result = ML_CHECK_OK;
                snprintf (text, size,
                          "core OK: %s accepted this agent's key; another core node serves the "
                          "firm now (%s)",
                          settings->core_endpoint,
                          ml_msg_moved_endpoint (answer, owner, sizeof owner) == 1 ? owner
                                                                                   : "unknown");
            } else if (answer->id == ML_MSG_ERROR && answer->code == ML_ERROR_UNAUTHORIZED) {
                result = ML_CHECK_KEY_REFUSED;
                snprintf (text, size,
                          "the core refused this agent's key: its certificate is in the core's "
                          "agents directory but no firm owns it (%s); %s",
                          reason, register_hint);
            } else if (answer->id == ML_MSG_ERROR) {
                result = ML_CHECK_REFUSED;
                snprintf (text, size, "the core refused the HELLO: %u %s", answer->code, reason);
            } else {
                result = ML_CHECK_REFUSED;
                snprintf (text, size, "the core answered HELLO with %s", ml_msg_name (answer->id));
            }
            ml_msg_destroy (&answer);
            break;
        } else if (zpoller_terminated (poller))
            break;
        if (handshaken && !hello_sent) {
            hello_sent = true;
            if (!epoch || !high_water) {
                result = ML_CHECK_OK;
                snprintf (text, size,
                          "core handshake OK: %s accepted this agent's key (HELLO not sent: the "
                          "matter database cannot be read)",
                          settings->core_endpoint);
                break;
            }
            ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
            hello->protocol = ML_PROTOCOL_VERSION;
            snprintf (hello->agent_version, sizeof hello->agent_version, "%s (check)",
                      ML_AGENT_VERSION);
            hello->contract_version = ML_CONTRACT_VERSION;
            snprintf (hello->epoch, sizeof hello->epoch, "%s", epoch);
            hello->high_water = *high_water;
            uint8_t *data = NULL;
            size_t length = 0;
            if (ml_msg_encode (hello, &data, &length) == 0)
                zmq_send (zsock_resolve (dealer), data, length, ZMQ_DONTWAIT);
            free (data);
            ml_msg_destroy (&hello);
        }
    }
    zpoller_destroy (&poller);
    if (result == ML_CHECK_UNREACHABLE && (connected || failed)) {
        result = ML_CHECK_NO_ANSWER;
        snprintf (text, size,
                  "no answer to the handshake from %s%s: the pinned core key (core/public_key) is "
                  "wrong, or this is not a matterlink core",
                  settings->core_endpoint, failed ? " (it closed the connection)" : "");
    } else if (result == ML_CHECK_UNREACHABLE && handshaken) {
        result = ML_CHECK_REFUSED;
        snprintf (text, size,
                  "the core accepted the handshake but did not answer HELLO within %d ms",
                  timeout_ms);
    }
done:
    zactor_destroy (&monitor);
    zsock_destroy (&dealer);
    zcert_destroy (&certificate);
    return result;
}

//  A settings file of one core node and a certificate that does not exist.
static void s_test_settings (const char *path, const char *core_key, const char *directory)
{
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file,
             "database\n    connection = \"Driver=SQLite3;Database=/x.db\"\n"
             "core\n    endpoint = tcp://127.0.0.1:1\n    public_key = \"%s\"\n"
             "agent\n    certificate = %s/none\n",
             core_key, directory);
    fclose (file);
}

void ml_agent_test (bool verbose)
{
    printf (" * ml_agent: ");
    //  Settings are validated with clear messages; the link itself is tested end to end by
    //  tests/e2e_*.sh with real processes.
    char directory[256], path[300], error[512];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (path, sizeof path, "%s/agent.cfg", directory);
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file, "database\n    connection = \"Driver=SQLite3;Database=/x.db\"\n"
                   "core\n    endpoint = tcp://127.0.0.1:1\n    public_key = short\n"
                   "agent\n    certificate = /nonexistent\n");
    fclose (file);
    ml_agent_settings_t settings;
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "public_key"));
    file = fopen (path, "w");
    fprintf (file, "database\n    connection = \"Driver=SQLite3;Database=/x.db\"\n"
                   "core\n    endpoint = tcp://127.0.0.1:1\n");
    fclose (file);
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "core/public_key is required"));
    //  An agent whose certificate cannot be loaded refuses to start.
    zcert_t *core = zcert_new ();
    s_test_settings (path, zcert_public_txt (core), directory);
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == 0);
    assert (settings.other_count == 0);
    //  More core nodes, each with its key; a malformed entry is named.
    zcert_t *second = zcert_new ();
    file = fopen (path, "w");
    fprintf (file,
             "database\n    connection = \"Driver=SQLite3;Database=/x.db\"\n"
             "core\n    endpoint = tcp://127.0.0.1:1\n    public_key = \"%s\"\n"
             "    others = \"tcp://127.0.0.1:2 %s, tcp://127.0.0.1:3 %s,\"\n"
             "agent\n    certificate = %s/none\n",
             zcert_public_txt (core), zcert_public_txt (second), zcert_public_txt (core),
             directory);
    fclose (file);
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == 0);
    assert (settings.other_count == 2);
    assert (streq (settings.others[0].endpoint, "tcp://127.0.0.1:2"));
    assert (streq (settings.others[0].public_key, zcert_public_txt (second)));
    assert (streq (settings.others[1].endpoint, "tcp://127.0.0.1:3"));
    file = fopen (path, "w");
    fprintf (file,
             "database\n    connection = \"Driver=SQLite3;Database=/x.db\"\n"
             "core\n    endpoint = tcp://127.0.0.1:1\n    public_key = \"%s\"\n"
             "    others = \"tcp://127.0.0.1:2 %s, tcp://127.0.0.1:3\"\n"
             "agent\n    certificate = %s/none\n",
             zcert_public_txt (core), zcert_public_txt (second), directory);
    fclose (file);
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "core/others entry 2 must be 'ENDPOINT KEY'"));
    zcert_destroy (&second);
    s_test_settings (path, zcert_public_txt (core), directory);
    assert (ml_agent_settings_load (&settings, path, error, sizeof error) == 0);
    assert (settings.snapshot_rows_per_second == 0); //  no limit by default
    assert (s_doubled (500, 30000) == 1000 && s_doubled (16000, 30000) == 30000 &&
            s_doubled (30000, 30000) == 30000);
    //  The snapshot's pace: rows sent against time since its start, never ahead of the rate.
    int64_t from = 0;
    assert (s_snapshot_pause_ms (5000, 0, &from, 0) == 0);
    assert (s_snapshot_pause_ms (0, 1000, &from, 0) == 0);
    assert (s_snapshot_pause_ms (1000, 1000, &from, 0) == 1000);
    assert (s_snapshot_pause_ms (1000, 1000, &from, 400) == 600);
    assert (s_snapshot_pause_ms (3, 1000000, &from, 0) == 0);
    assert (s_snapshot_pause_ms (UINT64_C (4000000000), 1, &from, 0) == INT64_C (4000000000000));
    assert (from == 0);
    assert (s_snapshot_pause_ms (1000, 1000, &from, 1000) == 0);
    assert (from == 0);
    //  Behind (the database was slow until 5 s): no pause, and the pace starts again from
    //  here rather than owing 4 s of rows at once.
    assert (s_snapshot_pause_ms (1000, 1000, &from, 5000) == 0);
    assert (from == 4000);
    assert (s_snapshot_pause_ms (1500, 1000, &from, 5000) == 500);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    zactor_t *actor = ml_service_start (ml_agent_actor, &settings);
    assert (actor == NULL);
    ml_log_setup (NULL, saved);
    zcert_destroy (&core);
    unlink (path);
    rmdir (directory);
    printf ("OK\n");
}
