/*  ml_core: the payment core service. See include/ml_core.h and docs/protocol.md. */
#include "ml_core.h"
#include "ml_selftest_support.h"
#include "ml_admin.h"
#include "ml_finder.h"
#include "ml_payers.h"
#include "ml_autopay.h"
#include "ml_notify.h"
#include "ml_payments.h"
#include "ml_ingest.h"
#include "ml_readers.h"
#include "ml_config.h"
#include "ml_contacts.h"
#include "ml_contract.h"
#include "ml_keygen.h"
#include "ml_lease.h"
#include "ml_logins.h"
#include "ml_log.h"
#include "ml_msg.h"
#include "ml_service.h"
#include "ml_store.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#define S_ZAP_DOMAIN "matterlink"

typedef enum { S_NONE, S_SNAPSHOT, S_LIVE } s_session_state_t;

//  One agent session, per firm. Lives in memory only: after a core restart every agent
//  is told to greet again (ERROR 409) and the store says where to resume.
typedef struct {
    char firm_id[64];
    char label[80]; //  "firm ID": the peer's name for ml_log_peer
    zframe_t *routing;
    char peer[64]; //  the connection's peer address (for log lines naming it)
    s_session_state_t state;
    uint64_t batch;      //  last batch number received
    int64_t last_seen;   //  monotonic ms
    zhashx_t *in_flight; //  posting uuid -> monotonic ms it was sent (int64_t *)
} s_session_t;

//  An admin request waiting for an agent's SEARCH-RESULT.
typedef struct {
    zsock_t *socket;  //  the socket the request came in on (admin or API): the reply goes there
    zframe_t *client; //  the client's routing id, to reply to
    char firm_id[64]; //  only this firm's agent may answer
    int64_t expires;  //  monotonic ms: past it the client gets "did not answer in time"
    json_t *context;  //  what ml_finder_reply needs
} s_pending_t;

typedef struct {
    ml_core_settings_t settings;
    zsock_t *pipe;
    zsock_t *router;
    zsock_t *admin;
    zsock_t *api;          //  matterlink-web's API socket (api/endpoint), or NULL
    ml_readers_t *readers; //  answer the reading ops of both sockets (core/readers), or NULL
    ml_ingest_t *ingest;   //  writes the agents' SNAPSHOT, SNAPSHOT-END and CHANGES
    zactor_t *auth;
    zactor_t *monitor;           //  the router's connection events, to log who was refused
    zhashx_t *connections;       //  descriptor (decimal text) -> peer address, from ACCEPTED
    char handshake_failure[300]; //  why the handshake now failing failed, until DISCONNECTED
    zcert_t *certificate;
    ml_store_t *store;
    ml_lease_t *lease; //  the firms this node owns, when it shares the store (core/node)
    int64_t renew_at;  //  monotonic ms of the next lease renewal
    ml_payers_t *payers;
    ml_processor_t *processor;
    ml_mailer_t *mailer;
    zactor_t *mail_sender; //  the mailer's actor, when mail is configured
    ml_payments_t *payments;
    zactor_t *processor_worker; //  makes the processor calls, so this thread never waits
    zhashx_t *waiting;          //  payment request id -> s_waiter_t waiting for it
    ml_autopay_t *autopay;
    ml_logins_t *logins;
    ml_portal_pay_t *portal_pay;
    ml_staff_t *staff;       //  staff accounts (docs/staff-api.md)
    zhashx_t *sessions;      //  firm id -> s_session_t
    ml_contacts_t *contacts; //  each agent's last contact and cursor (status)
    zhashx_t *pending;       //  search request id (decimal text) -> s_pending_t
    uint64_t next_request_id;
    zhashx_t *firms; //  agent public key -> firm id (cache of the store)
    int64_t tick_at;
    bool terminated;
} s_core_t;

int ml_core_settings_load (ml_core_settings_t *settings, const char *path, char *error,
                           size_t error_size)
{
    memset (settings, 0, sizeof *settings);
    ml_config_t *config = ml_config_load (path, error, error_size);
    if (!config)
        return -1;
#define S_TEXT(field, key, fallback)                                                               \
    snprintf (settings->field, sizeof settings->field, "%s",                                       \
              ml_config_string (config, key, fallback))
    S_TEXT (endpoint, "core/endpoint", "tcp://*:7800");
    S_TEXT (certificate, "core/certificate", NULL);
    S_TEXT (agents, "core/agents", NULL);
    S_TEXT (store, "store/connection", NULL);
    S_TEXT (admin_endpoint, "admin/endpoint", NULL);
    S_TEXT (api_endpoint, "api/endpoint", "");
    S_TEXT (node, "core/node", "");
    S_TEXT (advertise, "core/advertise", "");
#undef S_TEXT
    settings->lease_seconds = ml_config_int (config, "core/lease_seconds", 10, 2, 3600);
    settings->readers = ml_config_int (config, "core/readers", 2, 0, 16);
    settings->heartbeat_ms = ml_config_int (config, "core/heartbeat_ms", 5000, 100, 600000);
    settings->window = ml_config_int (config, "core/window", 8, 1, 1000);
    settings->redelivery_ms = ml_config_int (config, "core/redelivery_ms", 10000, 100, 3600000);
    settings->autopay_wait_minutes =
        ml_config_int (config, "autopay/agent_wait_minutes", ML_AUTOPAY_WAIT_MINUTES, 1, 43200);
    int rc = 0;
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        rc = -1;
    } else if (strspn (settings->node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-_") != strlen (settings->node) ||
               strlen (ml_config_string (config, "core/node", "")) >= sizeof settings->node) {
        snprintf (error, error_size,
                  "%s: core/node must be letters, digits, '-' and '_', at most 63 of them", path);
        rc = -1;
    }
    if (rc == 0 && ml_logins_settings_load (&settings->portal, config, error, error_size) != 0)
        rc = -1;
    settings->has_processor = *ml_config_string (config, "processor/kind", "") != 0;
    if (rc == 0 && settings->has_processor &&
        ml_processor_settings_load (&settings->processor, config, error, error_size) != 0)
        rc = -1;
    settings->has_mail = *ml_config_string (config, "mail/smtp_url", "") != 0;
    if (rc == 0 &&
        (settings->has_mail ? ml_mailer_settings_load (&settings->mail, config, error, error_size)
                            : ml_mailer_outbox_key_path (config, settings->mail.outbox_key,
                                                         sizeof settings->mail.outbox_key, error,
                                                         error_size)) != 0)
        rc = -1;
    ml_config_destroy (&config);
    return rc;
}

static void s_session_destroy (s_session_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->routing);
        zhashx_destroy (&(*self_p)->in_flight);
        free (*self_p);
        *self_p = NULL;
    }
}

static s_session_t *s_session_new (const char *firm_id)
{
    s_session_t *self = calloc (1, sizeof (s_session_t));
    assert (self);
    snprintf (self->firm_id, sizeof self->firm_id, "%s", firm_id);
    snprintf (self->label, sizeof self->label, "firm %s", firm_id);
    self->in_flight = zhashx_new ();
    zhashx_set_destructor (self->in_flight, (zhashx_destructor_fn *)zstr_free);
    return self;
}

static void s_pending_destroy (s_pending_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->client);
        json_decref ((*self_p)->context);
        free (*self_p);
        *self_p = NULL;
    }
}

//  A client whose request waits for the processor's worker: where its reply goes.
typedef struct {
    zsock_t *socket; //  the socket the request came in on (admin or API)
    zframe_t *client;
    bool payer; //  a payer's (the API socket without a staff session): the payer's view only
} s_waiter_t;

static s_waiter_t *s_waiter_new (zsock_t *socket, zframe_t *client)
{
    s_waiter_t *self = calloc (1, sizeof (s_waiter_t));
    assert (self);
    self->socket = socket;
    self->client = zframe_dup (client);
    return self;
}

static void s_waiter_destroy (s_waiter_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->client);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Sending ---------------------------------------------------------------------------------

//  Send a message to an agent through its current routing id. Returns 0 or -1 (agent gone).
static int s_send_to (s_core_t *self, zframe_t *routing, ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (ml_msg_encode (message, &data, &size) != 0) {
        ml_log (ML_LOG_ERROR, "cannot encode %s", ml_msg_name (message->id));
        return -1;
    }
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &(zframe_t *){zframe_dup (routing)});
    zmsg_addmem (out, data, size);
    free (data);
    //  ROUTER_MANDATORY makes a send to a vanished agent fail here instead of silently.
    if (zmsg_send (&out, self->router) != 0) {
        zmsg_destroy (&out);
        //  A peer that sends and goes away makes these: one bucket for them all.
        ml_log_peer (ML_LOG_INFO, "replies to agents that went away",
                     "%s not sent: agent unreachable", ml_msg_name (message->id));
        return -1;
    }
    return 0;
}

static void s_send_error (s_core_t *self, zframe_t *routing, uint16_t code, const char *reason)
{
    ml_msg_t *error = ml_msg_new (ML_MSG_ERROR);
    error->code = code;
    snprintf (error->reason, sizeof error->reason, "%s", reason);
    s_send_to (self, routing, error);
    ml_msg_destroy (&error);
}

//  Tell an agent that another node owns its firm (ERROR 307, docs/multinode.md): endpoint is
//  where that node said agents reach it, "" when unknown (the agent tries its next core).
static void s_send_moved (s_core_t *self, zframe_t *routing, const char *firm_id,
                          const char *endpoint)
{
    ml_msg_t *error = ml_msg_new (ML_MSG_ERROR);
    error->code = ML_ERROR_MOVED;
    ml_msg_moved_format (error, endpoint, firm_id);
    s_send_to (self, routing, error);
    ml_msg_destroy (&error);
}

//  This node no longer holds a firm it served: the agent goes to the owner (from the store).
static void s_session_moved (s_core_t *self, s_session_t *session)
{
    char endpoint[256] = "";
    ml_lease_owner (ml_store_db (self->store), session->firm_id, NULL, 0, endpoint,
                    sizeof endpoint);
    ml_log (ML_LOG_NOTICE, "firm %s: served by another node now; agent sent to %s",
            session->firm_id, *endpoint ? endpoint : "its next core");
    if (session->routing)
        s_send_moved (self, session->routing, session->firm_id, endpoint);
    session->state = S_NONE;
    session->batch = 0;
    zhashx_purge (session->in_flight);
}

static void s_ack (s_core_t *self, s_session_t *session, uint64_t batch, uint64_t cursor)
{
    ml_msg_t *ack = ml_msg_new (ML_MSG_ACK);
    ack->batch = batch;
    ack->cursor = cursor;
    s_send_to (self, session->routing, ack);
    ml_msg_destroy (&ack);
}

//  Postings outbox ---------------------------------------------------------------------------

//  Send the firm's unanswered postings, at most window in flight, sending again those that
//  waited longer than the redelivery interval.
static void s_deliver (s_core_t *self, s_session_t *session)
{
    if (session->state == S_NONE)
        return;
    //  A node that was paused past its lease sends nothing before it renews (s_tick).
    if (self->lease && !ml_lease_owns (self->lease, session->firm_id))
        return;
    int64_t now = zclock_mono ();
    zlistx_t *expired = zhashx_keys (session->in_flight);
    for (const char *uuid = zlistx_first (expired); uuid; uuid = zlistx_next (expired)) {
        int64_t *sent = zhashx_lookup (session->in_flight, uuid);
        if (now - *sent >= self->settings.redelivery_ms) {
            ml_log (ML_LOG_INFO, "posting %s: no result after %d ms, sending again", uuid,
                    self->settings.redelivery_ms);
            zhashx_delete (session->in_flight, uuid);
        }
    }
    zlistx_destroy (&expired);
    size_t window = (size_t)self->settings.window;
    if (zhashx_size (session->in_flight) >= window)
        return;
    zlistx_t *due = ml_store_postings_unanswered (self->store, session->firm_id,
                                                  window + zhashx_size (session->in_flight));
    for (const char *uuid = due ? zlistx_first (due) : NULL;
         uuid && zhashx_size (session->in_flight) < window; uuid = zlistx_next (due)) {
        if (zhashx_lookup (session->in_flight, uuid))
            continue;
        ml_msg_t *posting = ml_store_posting_load (self->store, uuid);
        if (!posting) {
            ml_log (ML_LOG_ERROR, "posting %s cannot be loaded from the store", uuid);
            continue;
        }
        if (s_send_to (self, session->routing, posting) == 0) {
            ml_store_posting_sent (self->store, uuid);
            int64_t *sent = malloc (sizeof (int64_t));
            assert (sent);
            *sent = now;
            zhashx_insert (session->in_flight, uuid, sent);
            ml_log (ML_LOG_INFO, "posting %s sent to firm %s", uuid, session->firm_id);
        }
        ml_msg_destroy (&posting);
    }
    zlistx_destroy (&due);
}

//  Agent messages --------------------------------------------------------------------------

static void s_handle_hello (s_core_t *self, s_session_t *session, ml_msg_t *hello)
{
    if (hello->protocol != ML_PROTOCOL_VERSION) {
        s_send_error (self, session->routing, ML_ERROR_VERSION,
                      "this core speaks MLP/1 only: upgrade the agent");
        return;
    }
    if (hello->contract_version != ML_CONTRACT_VERSION) {
        char reason[200];
        snprintf (reason, sizeof reason,
                  "matter database contract version %u is not supported by this core (it "
                  "speaks version %d)",
                  hello->contract_version, ML_CONTRACT_VERSION);
        s_send_error (self, session->routing, ML_ERROR_VERSION, reason);
        return;
    }
    //  Several nodes: serve the firm only under its lease, else send the agent to its owner.
    char owner[256] = "";
    int leased =
        self->lease ? ml_lease_acquire (self->lease, session->firm_id, owner, sizeof owner) : 1;
    if (leased < 0) {
        s_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure");
        return;
    }
    if (leased == 0) {
        ml_log (ML_LOG_INFO, "firm %s: owned by another node; agent sent to %s", session->firm_id,
                *owner ? owner : "its next core");
        s_send_moved (self, session->routing, session->firm_id, owner);
        session->state = S_NONE;
        return;
    }
    bool resync = false;
    uint64_t cursor = 0;
    ml_ingest_session (self->ingest, session->firm_id); //  the earlier session's work is void
    if (ml_store_session_open (self->store, session->firm_id, hello, &resync, &cursor) != 0) {
        s_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure");
        return;
    }
    ml_msg_t *welcome = ml_msg_new (ML_MSG_WELCOME);
    welcome->heartbeat_ms = (uint32_t)self->settings.heartbeat_ms;
    welcome->window = (uint32_t)self->settings.window;
    welcome->resync = resync ? 1 : 0;
    welcome->cursor = cursor;
    s_send_to (self, session->routing, welcome);
    ml_msg_destroy (&welcome);
    session->state = resync ? S_SNAPSHOT : S_LIVE;
    session->batch = 0;
    zhashx_purge (session->in_flight);
    char agent_version[200];
    ml_log (ML_LOG_NOTICE, "firm %s: agent %s connected; %s", session->firm_id,
            ml_log_escape (hello->agent_version, agent_version, sizeof agent_version),
            resync ? "snapshot requested" : "resuming changes");
    s_deliver (self, session);
}

//  Check that a batch continues the session's sequence in the expected state.
static bool s_batch_in_order (s_core_t *self, s_session_t *session, ml_msg_t *message,
                              s_session_state_t expected)
{
    if (session->state != expected || message->batch != session->batch + 1) {
        char reason[200];
        snprintf (reason, sizeof reason, "%s batch %llu out of state or sequence; send HELLO",
                  ml_msg_name (message->id), (unsigned long long)message->batch);
        ml_log_peer (ML_LOG_INFO, session->label, "firm %s: %s", session->firm_id, reason);
        s_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE, reason);
        session->state = S_NONE;
        return false;
    }
    session->batch = message->batch;
    return true;
}

static void s_store_failed (s_core_t *self, s_session_t *session, const char *doing)
{
    //  Refused by the fence: another node took the firm while this one was away.
    if (self->lease && ml_lease_acquire (self->lease, session->firm_id, NULL, 0) == 0) {
        s_session_moved (self, session);
        return;
    }
    ml_log (ML_LOG_ERROR, "firm %s: core store failed while %s: %s", session->firm_id, doing,
            ml_store_error (self->store)->message);
    s_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure; send HELLO");
    session->state = S_NONE;
}

static void s_search_answered (s_core_t *self, s_session_t *session, ml_msg_t *answer);

static void s_handle_message (s_core_t *self, s_session_t *session, ml_msg_t *message)
{
    if (message->id == ML_MSG_HELLO) {
        s_handle_hello (self, session, message);
        return;
    }
    if (message->id == ML_MSG_ERROR) {
        char reason[300];
        ml_log_peer (ML_LOG_WARNING, session->label, "firm %s: agent reports %u: %s",
                     session->firm_id, message->code,
                     ml_log_escape (message->reason, reason, sizeof reason));
        return;
    }
    if (message->id == ML_MSG_PONG)
        return;
    if (message->id == ML_MSG_WELCOME || message->id == ML_MSG_ACK ||
        message->id == ML_MSG_POSTING || message->id == ML_MSG_SEARCH) {
        s_send_error (self, session->routing, ML_ERROR_MALFORMED,
                      "that message goes from the core to an agent, not back");
        return;
    }
    if (session->state == S_NONE) {
        s_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE, "no session; send HELLO");
        return;
    }
    switch (message->id) {
        //  Written by the ingest thread (core/ml_ingest.c); acknowledged in s_receive_ingest.
        //  After SNAPSHOT-END the session is live at once: the agent may send CHANGES before
        //  its ACK, and the thread applies them after the snapshot's end, in order.
        case ML_MSG_SNAPSHOT:
        case ML_MSG_SNAPSHOT_END:
        case ML_MSG_CHANGES:
            if (!s_batch_in_order (self, session, message,
                                   message->id == ML_MSG_CHANGES ? S_LIVE : S_SNAPSHOT))
                return;
            if (ml_ingest_send (self->ingest, session->firm_id, message) != 0)
                s_store_failed (self, session, "handing a batch to the ingest thread");
            else if (message->id == ML_MSG_SNAPSHOT_END)
                session->state = S_LIVE;
            break;
        case ML_MSG_POSTING_RESULT: {
            int rc = ml_store_posting_result (self->store, session->firm_id, message);
            if (rc < 0) {
                s_store_failed (self, session, "recording a posting result");
                return;
            }
            zhashx_delete (session->in_flight, message->posting_uuid);
            char reason[300];
            if (rc == 1)
                ml_log (ML_LOG_NOTICE, "posting %s %s by firm %s%s%s", message->posting_uuid,
                        message->status, session->firm_id, *message->reason ? ": " : "",
                        ml_log_escape (message->reason, reason, sizeof reason));
            else
                ml_log_peer (ML_LOG_INFO, session->label, "posting %s: repeated result ignored",
                             message->posting_uuid);
            s_deliver (self, session);
            break;
        }
        case ML_MSG_SEARCH_RESULT:
            s_search_answered (self, session, message);
            break;
        case ML_MSG_PING: {
            ml_msg_t *pong = ml_msg_new (ML_MSG_PONG);
            s_send_to (self, session->routing, pong);
            ml_msg_destroy (&pong);
            break;
        }
        default:
            break;
    }
}

//  An answer of the ingest thread: acknowledge the batch it took or committed, or end the
//  session it could not store. Answers of a session that a HELLO replaced are dropped.
static void s_receive_ingest (s_core_t *self)
{
    ml_ingest_answer_t answer;
    if (ml_ingest_receive (self->ingest, &answer) != 0 || !answer.current || answer.rc == -3)
        return;
    s_session_t *session = zhashx_lookup (self->sessions, answer.firm_id);
    if (!session || session->state == S_NONE)
        return;
    if (answer.rc == -2) {
        s_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE,
                      "changes do not start at the core's cursor; send HELLO");
        session->state = S_NONE;
    } else if (answer.rc != 0) {
        ml_log (ML_LOG_ERROR, "firm %s: core store failed while storing its replica: %s",
                session->firm_id, answer.error);
        s_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure; send HELLO");
        session->state = S_NONE;
    } else if (answer.kind == 'R')
        s_ack (self, session, answer.batch, 0);
    else {
        s_ack (self, session, answer.batch, answer.cursor);
        if (answer.kind == 'E')
            ml_log (ML_LOG_NOTICE, "firm %s: replica complete at change %llu", session->firm_id,
                    (unsigned long long)answer.cursor);
        else
            ml_log (ML_LOG_INFO, "firm %s: changes applied, cursor %llu", session->firm_id,
                    (unsigned long long)answer.cursor);
    }
}

//  Which firm owns an authenticated key: the cache first, then the store.
static const char *s_firm_of (s_core_t *self, const char *key)
{
    const char *firm = zhashx_lookup (self->firms, key);
    if (firm)
        return firm;
    char found[64];
    if (ml_store_firm_by_key (self->store, key, found, sizeof found) != 1)
        return NULL;
    zhashx_insert (self->firms, key, strdup (found));
    return zhashx_lookup (self->firms, key);
}

//  The peer address libzmq gives a message (the IP address of the TCP connection).
static void s_peer_address (zframe_t *frame, char *peer, size_t size)
{
    const char *address = zframe_meta (frame, "Peer-Address");
    char escaped[64];
    snprintf (peer, size, "%s", address ? ml_log_escape (address, escaped, sizeof escaped) : "?");
}

static void s_search_expire (s_core_t *self, const char *firm_id);

//  A connection with a firm's key that is not the one holding the firm's route. One route per
//  firm: the first connection keeps it while it is alive (heard from within the window s_tick
//  allows, and its connection open), so a second agent with a copied key cannot take a firm's
//  postings and searches; a silent or closed first connection hands over, so a restarted agent
//  is not locked out. Returns true when the newcomer now holds the route (its session starts
//  with no state: it must send HELLO).
static bool s_route_handover (s_core_t *self, s_session_t *session, zframe_t *routing,
                              const char *peer)
{
    int64_t silent = zclock_mono () - session->last_seen;
    char *old_id = zframe_strhex (session->routing);
    char *new_id = zframe_strhex (routing);
    //  ROUTER_MANDATORY makes a send to a closed connection fail at once: a PING tells a
    //  connection that is gone (an agent killed and restarted) from one that lives.
    bool open = false;
    if (silent <= 3 * (int64_t)self->settings.heartbeat_ms) {
        ml_msg_t *ping = ml_msg_new (ML_MSG_PING);
        open = s_send_to (self, session->routing, ping) == 0;
        ml_msg_destroy (&ping);
    }
    if (open) {
        ml_log_peer (
            ML_LOG_WARNING, session->label,
            "firm %s: second connection with the firm's agent key refused (peer %s, routing "
            "id %s): the firm's agent at %s (routing id %s) is connected and was heard from "
            "%lld ms ago; is the agent's key installed twice?",
            session->firm_id, peer, new_id, session->peer, old_id, (long long)silent);
        s_send_error (self, routing, ML_ERROR_KEY_IN_USE,
                      "another connection with this agent's key is live at the core; this one is "
                      "refused while it lasts");
    } else {
        //  Its own budget: the refusals of a copied key must not hide a handover.
        char label[96];
        snprintf (label, sizeof label, "%s (handovers)", session->label);
        ml_log_peer (ML_LOG_WARNING, label,
                     "firm %s: agent at %s (routing id %s) takes over the firm's route from %s "
                     "(routing id %s), %s %lld ms",
                     session->firm_id, peer, new_id, session->peer, old_id,
                     silent <= 3 * (int64_t)self->settings.heartbeat_ms
                         ? "whose connection closed; last heard from it"
                         : "silent for",
                     (long long)silent);
        s_search_expire (self, session->firm_id);
        session->state = S_NONE;
        session->batch = 0;
        zhashx_purge (session->in_flight);
    }
    zstr_free (&old_id);
    zstr_free (&new_id);
    return !open;
}

static void s_receive_agent (s_core_t *self)
{
    zmsg_t *incoming = zmsg_recv (self->router);
    if (!incoming)
        return;
    zframe_t *routing = zmsg_pop (incoming);
    zframe_t *body = zmsg_pop (incoming);
    bool extra = zmsg_size (incoming) > 0;
    zmsg_destroy (&incoming);
    if (!routing || !body) {
        zframe_destroy (&routing);
        zframe_destroy (&body);
        return;
    }
    //  The key proven in the CURVE handshake, never anything the message says.
    const char *key = zframe_meta (body, "User-Id");
    const char *firm = key ? s_firm_of (self, key) : NULL;
    if (!firm) {
        char label[64];
        snprintf (label, sizeof label, "agent key %.8s...", key ? key : "none");
        ml_log_peer (ML_LOG_WARNING, label,
                     "message from an agent key registered to no firm (%.8s...) "
                     "refused",
                     key ? key : "none");
        s_send_error (self, routing, ML_ERROR_UNAUTHORIZED,
                      "this agent's key is not registered to a firm");
        zframe_destroy (&routing);
        zframe_destroy (&body);
        return;
    }
    char peer[64];
    s_peer_address (body, peer, sizeof peer);
    const char *error = NULL;
    ml_msg_t *message =
        extra ? NULL : ml_msg_decode (zframe_data (body), zframe_size (body), &error);
    if (extra)
        error = "an MLP message is one frame";
    zframe_destroy (&body);
    if (!message) {
        char label[80];
        snprintf (label, sizeof label, "firm %s", firm);
        ml_log_peer (ML_LOG_WARNING, label, "firm %s: malformed message refused: %s", firm, error);
        s_send_error (self, routing, ML_ERROR_MALFORMED, error);
        zframe_destroy (&routing);
        return;
    }
    s_session_t *session = zhashx_lookup (self->sessions, firm);
    if (session && session->routing && !zframe_eq (session->routing, routing) &&
        !s_route_handover (self, session, routing, peer)) {
        zframe_destroy (&routing);
        ml_msg_destroy (&message);
        return;
    }
    if (!session) {
        session = s_session_new (firm);
        zhashx_insert (self->sessions, firm, session);
    }
    zframe_destroy (&session->routing);
    session->routing = routing;
    snprintf (session->peer, sizeof session->peer, "%s", peer);
    session->last_seen = zclock_mono ();
    ml_log (ML_LOG_DEBUG, "firm %s: %s", firm, ml_msg_name (message->id));
    s_handle_message (self, session, message);
    ml_contacts_note (self->contacts, firm, message, zclock_time ());
    ml_msg_destroy (&message);
}

//  The ZAP handler (ZeroMQ RFC 27), in place of czmq's zauth: it allows a CURVE client whose
//  public key has a certificate in the agents' directory, as zauth does, and also logs each
//  refusal with the peer's address and key (zauth refuses silently, and its verbose mode logs
//  every allowed handshake too). The certificate store reloads the directory when it changes,
//  so a newly registered agent is accepted without a restart.
typedef struct {
    zsock_t *handler;    //  REP bound to the ZAP endpoint, handed to the actor
    zcertstore_t *store; //  the agents' certificates
} s_zap_t;

static void s_zap_actor (zsock_t *pipe, void *args)
{
    //  The core bound the handler before starting this actor (a core that could not must not
    //  start: libzmq without a ZAP handler would accept any key). It is ours from now on.
    s_zap_t zap = *(s_zap_t *)args;
    zsock_t *handler = zap.handler;
    zcertstore_t *store = zap.store;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, handler, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != handler)
            break; //  $TERM, or interrupted
        zmsg_t *request = zmsg_recv (handler);
        if (!request)
            break;
        char *version = zmsg_popstr (request);
        char *sequence = zmsg_popstr (request);
        char *domain = zmsg_popstr (request);
        char *address = zmsg_popstr (request);
        zframe_t *identity = zmsg_pop (request);
        char *mechanism = zmsg_popstr (request);
        zframe_t *credentials = zmsg_pop (request);
        char key[41] = "";
        if (mechanism && streq (mechanism, "CURVE") && credentials &&
            zframe_size (credentials) == 32)
            zmq_z85_encode (key, zframe_data (credentials), 32);
        bool allowed = *key && zcertstore_lookup (store, key);
        char peer[64];
        ml_log_escape (address ? address : "?", peer, sizeof peer);
        if (allowed)
            ml_log (ML_LOG_DEBUG, "handshake from %s allowed (key %.8s...)", peer, key);
        else if (*key)
            ml_log_peer (
                ML_LOG_WARNING, peer,
                "handshake refused from %s: CURVE key %s is not in the agents' certificate "
                "directory (an unregistered agent: see 'matterlink-core register-agent')",
                peer, key);
        else
            ml_log_peer (ML_LOG_WARNING, peer, "handshake refused from %s: it does not use CURVE",
                         peer);
        zmsg_t *reply = zmsg_new ();
        zmsg_addstr (reply, "1.0");
        zmsg_addstr (reply, sequence ? sequence : "");
        zmsg_addstr (reply, allowed ? "200" : "400");
        zmsg_addstr (reply, allowed ? "OK" : "unknown key");
        zmsg_addstr (reply, allowed ? key : "");
        zmsg_addmem (reply, NULL, 0);
        zmsg_send (&reply, handler);
        zstr_free (&version);
        zstr_free (&sequence);
        zstr_free (&domain);
        zstr_free (&address);
        zstr_free (&mechanism);
        zframe_destroy (&identity);
        zframe_destroy (&credentials);
        zmsg_destroy (&request);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
    zcertstore_destroy (&store);
}

//  The router's connection events (from its monitor: event name, value, endpoint). A client
//  that speaks NULL or PLAIN to the CURVE router never reaches the ZAP handler: the mechanisms
//  differ, one side closes, and libzmq reports a failed handshake followed by the connection's
//  DISCONNECTED. The monitor gives only the router's own endpoint, so the peer's address is
//  read from the connection's descriptor when it is accepted (when the peer closed before that,
//  it is unknown).
static void s_receive_monitor (s_core_t *self)
{
    zmsg_t *event = zmsg_recv (self->monitor);
    if (!event)
        return;
    char *name = zmsg_popstr (event);
    char *value_text = zmsg_popstr (event);
    long long value = value_text ? strtoll (value_text, NULL, 10) : 0;
    if (name && streq (name, "ACCEPTED")) {
        struct sockaddr_storage address;
        socklen_t length = sizeof address;
        char host[INET6_ADDRSTRLEN] = "an unknown peer";
        if (getpeername ((int)value, (struct sockaddr *)&address, &length) == 0) {
            if (address.ss_family == AF_INET)
                inet_ntop (AF_INET, &((struct sockaddr_in *)&address)->sin_addr, host, sizeof host);
            else if (address.ss_family == AF_INET6)
                inet_ntop (AF_INET6, &((struct sockaddr_in6 *)&address)->sin6_addr, host,
                           sizeof host);
        }
        zhashx_update (self->connections, value_text, strdup (host));
    } else if (name && streq (name, "HANDSHAKE_FAILED_PROTOCOL")) {
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            snprintf (self->handshake_failure, sizeof self->handshake_failure,
                      "it does not use CURVE (a NULL or PLAIN client)");
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            snprintf (self->handshake_failure, sizeof self->handshake_failure,
                      "its CURVE handshake does not decrypt (it pins another core key?)");
        else
            snprintf (self->handshake_failure, sizeof self->handshake_failure,
                      "ZeroMQ protocol error 0x%llx", value);
    } else if (name && streq (name, "HANDSHAKE_FAILED_NO_DETAIL"))
        snprintf (self->handshake_failure, sizeof self->handshake_failure,
                  "it closed the connection during the handshake (%s): a client that does not "
                  "use CURVE (NULL or PLAIN), that pins another core key, or no ZeroMQ client",
                  zmq_strerror ((int)value));
    else if (name && streq (name, "DISCONNECTED")) {
        //  libzmq reports a failed handshake and then, at once, its connection's DISCONNECTED.
        if (*self->handshake_failure) {
            const char *peer = zhashx_lookup (self->connections, value_text);
            ml_log_peer (ML_LOG_WARNING, peer ? peer : "an unknown peer",
                         "handshake refused from %s: %s", peer ? peer : "an unknown peer",
                         self->handshake_failure);
        }
        *self->handshake_failure = 0;
        zhashx_delete (self->connections, value_text);
    }
    zstr_free (&name);
    zstr_free (&value_text);
    zmsg_destroy (&event);
}

//  Admin API ---------------------------------------------------------------------------------

//  Reply to a client of socket (admin or API: routing id, empty delimiter, body).
static void s_socket_reply (zsock_t *socket, zframe_t *client, json_t *reply)
{
    char *text = json_dumps (reply, JSON_COMPACT);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &(zframe_t *){zframe_dup (client)});
    zmsg_addstr (out, "");
    zmsg_addstr (out, text ? text : "{\"ok\":false,\"error\":\"reply too large\"}");
    free (text);
    if (zmsg_send (&out, socket) != 0)
        zmsg_destroy (&out); //  the client went away
}

//  Send a search to a firm's agent and remember who waits for it. Returns NULL when sent,
//  else the error reply to give at once: an agent that is not connected makes no one wait.
static json_t *s_search_send (s_core_t *self, zsock_t *socket, zframe_t *client,
                              const char *firm_id, ml_msg_t *search, json_t *context)
{
    s_session_t *session = zhashx_lookup (self->sessions, firm_id);
    char node[64] = "", endpoint[256] = "";
    if ((!session || session->state == S_NONE) && self->lease &&
        ml_lease_owner (ml_store_db (self->store), firm_id, node, sizeof node, endpoint,
                        sizeof endpoint) == 1 &&
        !streq (node, ml_lease_node (self->lease))) {
        //  Several nodes: the firm's agent talks to its owner (docs/multinode.md).
        json_decref (context);
        return ml_admin_error ("firm %s is served by core node %s (its agent is connected there), "
                               "so only that node can search its matter database: send this "
                               "request to node %s's admin socket",
                               firm_id, node, node);
    }
    if (!session || session->state == S_NONE) {
        json_decref (context);
        return ml_admin_error ("firm %s's agent is not connected, so its matter database cannot "
                               "be searched now (see 'matterlink status')",
                               firm_id);
    }
    search->request_id = ++self->next_request_id;
    if (s_send_to (self, session->routing, search) != 0) {
        json_decref (context);
        return ml_admin_error ("firm %s's agent cannot be reached now; try again shortly", firm_id);
    }
    s_pending_t *pending = calloc (1, sizeof (s_pending_t));
    assert (pending);
    pending->socket = socket;
    pending->client = zframe_dup (client);
    snprintf (pending->firm_id, sizeof pending->firm_id, "%s", firm_id);
    pending->expires =
        zclock_mono () + json_integer_value (json_object_get (context, "deadline_ms"));
    pending->context = context;
    char key[24];
    snprintf (key, sizeof key, "%llu", (unsigned long long)search->request_id);
    zhashx_update (self->pending, key, pending);
    return NULL;
}

//  A SEARCH-RESULT from a firm's agent: complete the admin request that waits for it.
static void s_search_answered (s_core_t *self, s_session_t *session, ml_msg_t *answer)
{
    char key[24];
    snprintf (key, sizeof key, "%llu", (unsigned long long)answer->request_id);
    s_pending_t *pending = zhashx_lookup (self->pending, key);
    if (!pending || !streq (pending->firm_id, session->firm_id)) {
        //  Late (the client was already told it timed out), or not this firm's to answer.
        ml_log_peer (ML_LOG_INFO, session->label,
                     "firm %s: answer to search %s ignored (late or unknown)", session->firm_id,
                     key);
        return;
    }
    //  No admin client: Auto-Pay asked for live balances before a run charges.
    if (!pending->client) {
        ml_autopay_live (self->autopay, pending->context, answer);
        self->tick_at = zclock_mono (); //  the run that waited for it charges now
        zhashx_delete (self->pending, key);
        s_pending_destroy (&pending);
        return;
    }
    ml_msg_t *follow_up = NULL;
    json_t *reply = ml_finder_reply (self->payers, pending->context, answer, &follow_up);
    zhashx_delete (self->pending, key);
    if (follow_up) {
        json_t *context = pending->context;
        pending->context = NULL;
        reply = s_search_send (self, pending->socket, pending->client, pending->firm_id, follow_up,
                               context);
        ml_msg_destroy (&follow_up);
    }
    if (reply) {
        s_socket_reply (pending->socket, pending->client, reply);
        json_decref (reply);
    }
    s_pending_destroy (&pending);
}

//  Give up on searches whose deadline passed, or whose firm's session ended (firm_id set).
static void s_search_expire (s_core_t *self, const char *firm_id)
{
    int64_t now = zclock_mono ();
    zlistx_t *keys = zhashx_keys (self->pending);
    for (const char *key = zlistx_first (keys); key; key = zlistx_next (keys)) {
        s_pending_t *pending = zhashx_lookup (self->pending, key);
        bool ended = firm_id && streq (firm_id, pending->firm_id);
        if (!ended && now < pending->expires)
            continue;
        json_t *reply =
            ended ? ml_admin_error ("firm %s's agent disconnected before it answered the search",
                                    pending->firm_id)
                  : ml_admin_error ("firm %s's agent did not answer the search within %lld ms",
                                    pending->firm_id,
                                    (long long)json_integer_value (
                                        json_object_get (pending->context, "deadline_ms")));
        if (pending->client) //  Auto-Pay's questions just lapse: it asks again
            s_socket_reply (pending->socket, pending->client, reply);
        json_decref (reply);
        zhashx_delete (self->pending, key);
        s_pending_destroy (&pending);
    }
    zlistx_destroy (&keys);
}

//  Auto-Pay's question for a firm's live balances (ml_autopay_ask_fn): a search like an
//  admin client's, whose answer goes to ml_autopay_live. Returns -1 if the agent is offline.
static int s_autopay_ask (void *arg, const char *firm_id, ml_msg_t *search, const json_t *context)
{
    s_core_t *self = (s_core_t *)arg;
    s_session_t *session = zhashx_lookup (self->sessions, firm_id);
    if (!session || session->state == S_NONE)
        return -1;
    search->request_id = ++self->next_request_id;
    if (s_send_to (self, session->routing, search) != 0)
        return -1;
    s_pending_t *pending = calloc (1, sizeof (s_pending_t));
    assert (pending);
    snprintf (pending->firm_id, sizeof pending->firm_id, "%s", firm_id);
    pending->expires =
        zclock_mono () + json_integer_value (json_object_get (context, "deadline_ms"));
    pending->context = json_deep_copy (context);
    char key[24];
    snprintf (key, sizeof key, "%llu", (unsigned long long)search->request_id);
    zhashx_update (self->pending, key, pending);
    return 0;
}

//  The nearest search deadline, or fallback if none is sooner.
static int64_t s_search_next_expiry (s_core_t *self, int64_t fallback)
{
    for (s_pending_t *pending = zhashx_first (self->pending); pending;
         pending = zhashx_next (self->pending))
        if (pending->expires < fallback)
            fallback = pending->expires;
    return fallback;
}

//  Send the replies made for requests that waited for the processor's worker, each on the
//  socket its request came from. A payer (the API socket) sees only what a payer may see of
//  a payment.
static void s_send_ready (s_core_t *self)
{
    char id[160];
    json_t *reply;
    //  A portal payment that waited for its card's token goes on: it may now wait for its
    //  charges (the same client, under the payment's id), or be answered.
    while ((reply = ml_portal_pay_ready (self->portal_pay, id, sizeof id))) {
        s_waiter_t *waiter = zhashx_lookup (self->waiting, id);
        const char *next = json_string_value (json_object_get (reply, "waiting_for"));
        if (waiter && next) {
            s_waiter_t *again = s_waiter_new (waiter->socket, waiter->client);
            again->payer = waiter->payer;
            zhashx_update (self->waiting, next, again);
        } else if (waiter)
            s_socket_reply (waiter->socket, waiter->client, reply);
        zhashx_delete (self->waiting, id);
        json_decref (reply);
    }
    while ((reply = ml_payments_ready (self->payments, id, sizeof id))) {
        s_waiter_t *waiter = zhashx_lookup (self->waiting, id);
        if (waiter && waiter->payer)
            reply = ml_portal_pay_public (reply);
        if (waiter)
            s_socket_reply (waiter->socket, waiter->client, reply);
        zhashx_delete (self->waiting, id);
        json_decref (reply);
    }
}

//  socket: the admin socket, or the API socket (the request then runs as a payer or
//  anonymous).
static json_t *s_admin_request (s_core_t *self, zsock_t *socket, zframe_t *client, zframe_t *frame)
{
    bool api = socket == self->api;
    if (zframe_size (frame) > ML_ADMIN_MAX_REQUEST)
        return json_pack ("{s:b, s:s}", "ok", 0, "error",
                          "a request is one JSON frame of at most 64 KiB");
    json_error_t parse_error;
    json_t *parsed = json_loadb ((const char *)zframe_data (frame), zframe_size (frame),
                                 JSON_REJECT_DUPLICATES, &parse_error);
    if (!parsed) {
        char text[300];
        snprintf (text, sizeof text, "request is not JSON: %s (at byte %d)", parse_error.text,
                  parse_error.position);
        return json_pack ("{s:b, s:s}", "ok", 0, "error", text);
    }
    ml_admin_effects_t effects;
    ml_admin_parts_t parts = {self->store,   self->payers, self->payments,   self->mailer,
                              self->autopay, self->logins, self->portal_pay, self->staff};
    json_t *reply = api ? ml_admin_api_execute (&parts, parsed, &effects)
                        : ml_admin_execute (&parts, parsed, &effects);
    //  A request may have queued mail (a payment link): the sender looks now.
    if (self->mail_sender)
        zstr_send (self->mail_sender, "SEND");
    json_t *op = json_object_get (parsed, "op");
    //  Add what only the running core knows: which agents are connected now.
    if (reply && json_is_string (op) && streq (json_string_value (op), "status")) {
        size_t index;
        json_t *firm;
        json_array_foreach (json_object_get (reply, "firms"), index, firm)
        {
            s_session_t *session = zhashx_lookup (
                self->sessions, json_string_value (json_object_get (firm, "firm_id")));
            json_object_set_new (firm, "agent_online",
                                 json_boolean (session && session->state != S_NONE));
            //  Several nodes: which one serves the firm (its agent is online there, not here).
            char node[64];
            if (self->lease &&
                ml_lease_owner (ml_store_db (self->store),
                                json_string_value (json_object_get (firm, "firm_id")), node,
                                sizeof node, NULL, 0) == 1)
                json_object_set_new (firm, "served_by", json_string (node));
            ml_contacts_status (self->contacts, firm, zclock_time ());
        }
    }
    if (*effects.deliver_firm) {
        s_session_t *session = zhashx_lookup (self->sessions, effects.deliver_firm);
        if (session)
            s_deliver (self, session);
    }
    if (effects.search) {
        reply = s_search_send (self, socket, client, effects.search_firm, effects.search,
                               effects.context);
        ml_msg_destroy (&effects.search);
    }
    //  The Auto-Pay test clock runs what came due at once, and its charges with it, so a test
    //  sees the runs' outcomes after it (a test-only op: it blocks this thread meanwhile).
    if (json_is_string (op) && streq (json_string_value (op), "autopay-clock") &&
        json_is_true (json_object_get (reply, "ok"))) {
        for (int round = 0; round < 10; round++) {
            ml_payments_resolve (self->payments, effects.deliver_firm, sizeof effects.deliver_firm);
            if (ml_payments_drain (self->payments, 60000, effects.deliver_firm,
                                   sizeof effects.deliver_firm) <= 0)
                break;
            ml_autopay_tick (self->autopay, effects.deliver_firm, sizeof effects.deliver_firm);
        }
        s_send_ready (self);
        s_session_t *paid = zhashx_lookup (self->sessions, effects.deliver_firm);
        if (paid)
            s_deliver (self, paid);
    }
    //  A request waiting for the processor's worker is answered on its own socket when its
    //  reply is made (s_send_ready).
    const char *waiting = json_string_value (json_object_get (reply, "waiting_for"));
    if (waiting) {
        //  Staff on the API socket (a refund, a payment) get the whole reply, as the operator.
        s_waiter_t *waiter = s_waiter_new (socket, client);
        waiter->payer = api && !json_object_get (parsed, "staff_session");
        zhashx_update (self->waiting, waiting, waiter);
        json_decref (reply);
        reply = NULL;
    }
    json_decref (parsed);
    return reply;
}

//  The processor's worker answered a call: record it, deliver a posting it made, and send
//  the replies of requests that were waiting for it.
static void s_receive_processor (s_core_t *self)
{
    char *command = NULL;
    void *call = NULL;
    if (zsock_recv (self->processor_worker, "sp", &command, &call) != 0)
        return;
    char firm_id[64] = "";
    if (command && streq (command, "DONE") && call) {
        if (ml_portal_pay_owns (self->portal_pay, (ml_processor_call_t *)call))
            ml_portal_pay_completed (self->portal_pay, (ml_processor_call_t *)call, firm_id,
                                     sizeof firm_id);
        else
            ml_payments_completed (self->payments, (ml_processor_call_t *)call, firm_id,
                                   sizeof firm_id);
    }
    zstr_free (&command);
    s_session_t *paid = *firm_id ? zhashx_lookup (self->sessions, firm_id) : NULL;
    if (paid)
        s_deliver (self, paid);
    s_send_ready (self);
}

//  True when a request (on the admin or the API socket) is a reading op that a reader
//  thread answers: then it has been handed over (client and frame are taken).
static bool s_hand_to_reader (s_core_t *self, zsock_t *socket, zframe_t **client, zframe_t **frame)
{
    if (!self->readers || zframe_size (*frame) > ML_ADMIN_MAX_REQUEST)
        return false;
    json_t *parsed = json_loadb ((const char *)zframe_data (*frame), zframe_size (*frame),
                                 JSON_REJECT_DUPLICATES, NULL);
    bool reads = json_is_object (parsed) &&
                 ml_admin_op_reads (json_string_value (json_object_get (parsed, "op")));
    json_decref (parsed);
    if (!reads)
        return false;
    zframe_t *kept = zframe_dup (*client);
    if (ml_readers_send (self->readers, socket == self->admin, client, frame) != 0) {
        json_t *busy = ml_admin_error ("the core is busy; try again in a moment");
        s_socket_reply (socket, kept, busy);
        json_decref (busy);
    }
    zframe_destroy (&kept);
    return true;
}

//  A reader answered: the reply goes to the socket the request came on.
static void s_receive_reader (s_core_t *self)
{
    zmsg_t *reply = ml_readers_receive (self->readers);
    char *route = reply ? zmsg_popstr (reply) : NULL;
    zsock_t *socket = route && streq (route, "admin") ? self->admin : self->api;
    zstr_free (&route);
    if (reply && socket && zmsg_send (&reply, socket) != 0)
        zmsg_destroy (&reply); //  the client went away
    zmsg_destroy (&reply);
}

static void s_receive_admin (s_core_t *self, zsock_t *socket)
{
    zmsg_t *request = zmsg_recv (socket);
    if (!request)
        return;
    //  From a REQ client: routing id, empty delimiter, then the request.
    zframe_t *client = zmsg_pop (request);
    zframe_t *delimiter = zmsg_pop (request);
    if (client && delimiter && zframe_size (delimiter) == 0 && zmsg_size (request) == 1) {
        zframe_t *frame = zmsg_pop (request);
        if (s_hand_to_reader (self, socket, &client, &frame)) {
            zframe_destroy (&delimiter);
            zmsg_destroy (&request);
            return;
        }
        zmsg_prepend (request, &frame);
    }
    if (client && delimiter && zframe_size (delimiter) == 0) {
        json_t *reply = NULL;
        if (zmsg_size (request) != 1)
            reply = json_pack ("{s:b, s:s}", "ok", 0, "error",
                               "a request is one JSON frame of at most 64 KiB");
        else
            reply = s_admin_request (self, socket, client, zmsg_first (request));
        //  No reply yet means a search is on its way to an agent.
        if (reply) {
            s_socket_reply (socket, client, reply);
            json_decref (reply);
        }
    }
    zframe_destroy (&client);
    zframe_destroy (&delimiter);
    zmsg_destroy (&request);
}

//  Renew this node's leases (a third of a lease apart); the agents of firms it lost go to
//  their new owners.
static void s_lease_tick (s_core_t *self, int64_t now)
{
    if (!self->lease || now < self->renew_at)
        return;
    self->renew_at = now + (int64_t)self->settings.lease_seconds * 1000 / 3;
    zlistx_t *lost = ml_lease_renew (self->lease);
    for (const char *firm = lost ? zlistx_first (lost) : NULL; firm; firm = zlistx_next (lost)) {
        s_session_t *session = zhashx_lookup (self->sessions, firm);
        if (session) {
            s_search_expire (self, firm);
            s_session_moved (self, session);
        }
    }
    zlistx_destroy (&lost);
}

//  Once a second: forget silent agents, send postings again that waited too long.
static void s_tick (s_core_t *self)
{
    s_lease_tick (self, zclock_mono ());
    //  Charges whose outcome is unknown are settled by asking the processor again.
    char firm_id[64] = "";
    if (ml_payments_resolve (self->payments, firm_id, sizeof firm_id) > 0 && *firm_id) {
        s_session_t *paid = zhashx_lookup (self->sessions, firm_id);
        if (paid)
            s_deliver (self, paid);
    }
    //  Auto-Pay runs that came due (a run that charged may owe a posting and a mail).
    *firm_id = 0;
    int runs = ml_autopay_tick (self->autopay, firm_id, sizeof firm_id);
    if (*firm_id) {
        s_session_t *paid = zhashx_lookup (self->sessions, firm_id);
        if (paid)
            s_deliver (self, paid);
    }
    if (runs > 0 && self->mail_sender)
        zstr_send (self->mail_sender, "SEND");
    //  Receipts and notices owed for what happened (a sweep, so none is ever lost).
    if (ml_payments_notify (self->payments) > 0 && self->mail_sender)
        zstr_send (self->mail_sender, "SEND");
    //  Counts of log lines that peers caused over their limit.
    ml_log_peer_flush ();
    int64_t now = zclock_mono ();
    //  Postings are delivered (and sent again) only to the firms that have some waiting:
    //  one small read for all of them, not a query per connected firm (1,000 firms cost
    //  the core's thread up to 25 ms a tick, bench/scale.sh). Every firm if it fails.
    zhashx_t *waiting = ml_store_firms_unanswered (self->store);
    zlistx_t *firms = zhashx_keys (self->sessions);
    for (const char *firm = zlistx_first (firms); firm; firm = zlistx_next (firms)) {
        s_session_t *session = zhashx_lookup (self->sessions, firm);
        if (now - session->last_seen > 3 * (int64_t)self->settings.heartbeat_ms) {
            ml_log (ML_LOG_WARNING, "firm %s: agent silent for %lld ms; session closed", firm,
                    (long long)(now - session->last_seen));
            s_search_expire (self, firm);
            if (self->lease) //  the agent went elsewhere, or will greet whoever takes the firm
                ml_lease_release (self->lease, firm);
            zhashx_delete (self->sessions, firm);
        } else if (!waiting || zhashx_lookup (waiting, firm))
            s_deliver (self, session);
    }
    zlistx_destroy (&firms);
    zhashx_destroy (&waiting);
    //  Firms that asked to hear when their agent is away too long (ml_notify). With several
    //  nodes, a firm another node serves is that node's to judge.
    firms = zhashx_keys (self->sessions);
    if (self->lease)
        ml_lease_others (self->lease, firms);
    if (ml_notify_agents (self->store, self->mailer, firms) > 0 && self->mail_sender)
        zstr_send (self->mail_sender, "SEND");
    zlistx_destroy (&firms);
}

static int s_core_init (s_core_t *self, zsock_t *pipe, const ml_core_settings_t *settings)
{
    memset (self, 0, sizeof *self);
    self->settings = *settings;
    self->pipe = pipe;
    self->sessions = zhashx_new ();
    self->contacts = ml_contacts_new ();
    zhashx_set_destructor (self->sessions, (zhashx_destructor_fn *)s_session_destroy);
    self->firms = zhashx_new ();
    zhashx_set_destructor (self->firms, (zhashx_destructor_fn *)zstr_free);
    //  Entries are destroyed by whoever takes them out (no destructor): an answered search
    //  outlives its removal while its reply is made.
    self->pending = zhashx_new ();
    //  Request ids start from the clock, so an answer meant for a core before a restart
    //  cannot complete a request of this one.
    self->next_request_id = (uint64_t)zclock_time () * 1000;
    char error[600];
    self->store = ml_store_new (settings->store, error, sizeof error);
    if (!self->store) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    if (*settings->node) {
        self->lease = ml_lease_new (ml_store_db (self->store), settings->node, settings->advertise,
                                    (int64_t)settings->lease_seconds * 1000, error, sizeof error);
        if (!self->lease) {
            ml_log (ML_LOG_ERROR, "core/node %s: %s", settings->node, error);
            return -1;
        }
        ml_store_set_lease (self->store, self->lease);
        ml_log (ML_LOG_NOTICE,
                "core node %s shares the store (leases of %d s, agents reach it at %s)",
                settings->node, settings->lease_seconds,
                *settings->advertise ? settings->advertise : "no advertised endpoint");
    }
    self->ingest = ml_ingest_new (settings->store, self->lease, error, sizeof error);
    if (!self->ingest) {
        ml_log (ML_LOG_ERROR, "cannot start the ingest thread: %s", error);
        return -1;
    }
    self->payers = ml_payers_new (ml_store_db (self->store), error, sizeof error);
    if (!self->payers) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    if (settings->has_processor) {
        self->processor = ml_processor_new (&settings->processor, error, sizeof error);
        ml_processor_settings_wipe (&self->settings.processor);
        if (!self->processor) {
            ml_log (ML_LOG_ERROR, "%s", error);
            return -1;
        }
        if (streq (ml_processor_kind (self->processor), "test"))
            ml_log (ML_LOG_NOTICE, "card payments go to the TEST processor (no real money)");
    }
    self->mailer = ml_mailer_new (ml_store_db (self->store), self->settings.mail.outbox_key, error,
                                  sizeof error);
    if (!self->mailer) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    if (settings->has_mail) {
        self->mail_sender = ml_service_start (ml_mailer_actor, &self->settings.mail);
        ml_mailer_settings_wipe (&self->settings.mail);
        if (!self->mail_sender)
            return -1;
    }
    self->payments = ml_payments_new (self->store, self->payers, self->processor, self->mailer,
                                      error, sizeof error);
    if (!self->payments) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    self->waiting = zhashx_new ();
    zhashx_set_destructor (self->waiting, (zhashx_destructor_fn *)s_waiter_destroy);
    if (self->processor) {
        //  From here on only the worker uses the processor (docs/processor.md, "Threads").
        self->processor_worker = ml_service_start (ml_processor_actor, self->processor);
        if (!self->processor_worker)
            return -1;
        ml_payments_set_worker (self->payments, self->processor_worker);
    }
    ml_payments_set_public_url (self->payments, settings->portal.public_url);
    self->autopay = ml_autopay_new (self->store, self->payers, self->payments, self->mailer, error,
                                    sizeof error);
    if (!self->autopay) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    self->logins = ml_logins_new (self->store, self->payers, self->mailer, &settings->portal, error,
                                  sizeof error);
    if (!self->logins) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    self->staff = ml_staff_new (self->store, self->mailer, &settings->portal, error, sizeof error);
    if (!self->staff) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    self->portal_pay = ml_portal_pay_new (self->store, self->payers, self->payments, self->logins,
                                          self->processor, error, sizeof error);
    if (!self->portal_pay) {
        ml_log (ML_LOG_ERROR, "%s", error);
        return -1;
    }
    if (self->processor_worker)
        ml_portal_pay_set_worker (self->portal_pay, self->processor_worker);
    if (self->lease) {
        //  A charge left pending is another node's call in progress until it is older than
        //  the longest call (every attempt, every back-off), with a margin.
        const ml_processor_settings_t *processor = &settings->processor;
        int64_t pending_ms = settings->has_processor
                                 ? (int64_t)(processor->retries + 1) *
                                           (processor->timeout_ms + processor->connect_timeout_ms) +
                                       (int64_t)processor->retries * 5000 + 10000
                                 : 0;
        ml_payments_set_owner (self->payments, ml_lease_runs_jobs, self->lease, pending_ms);
        ml_autopay_set_owner (self->autopay, ml_lease_runs_jobs, self->lease);
    }
    ml_autopay_set_asker (self->autopay, s_autopay_ask, self,
                          (int64_t)settings->autopay_wait_minutes * 60000, 10000);
    if (getenv ("MATTERLINK_TEST_CLOCK"))
        ml_log (ML_LOG_WARNING, "the Auto-Pay TEST CLOCK may be set (MATTERLINK_TEST_CLOCK)");
    char certificate_error[1200];
    self->certificate = ml_keygen_load_secret ("core/certificate", settings->certificate, "core",
                                               certificate_error, sizeof certificate_error);
    if (!self->certificate) {
        ml_log (ML_LOG_ERROR, "%s", certificate_error);
        return -1;
    }
    if (!zsys_file_exists (settings->agents)) {
        ml_log (ML_LOG_ERROR, "the agents' certificate directory %s does not exist",
                settings->agents);
        return -1;
    }
    //  Without a ZAP handler libzmq would accept any client key: ours checks each key
    //  against the agents' certificate directory.
    s_zap_t zap = {zsock_new (ZMQ_REP), zcertstore_new (settings->agents)};
    if (!zap.handler || !zap.store || zsock_bind (zap.handler, "inproc://zeromq.zap.01") != 0) {
        ml_log (ML_LOG_ERROR, "cannot start the handshake handler over %s: %s", settings->agents,
                zmq_strerror (errno));
        zsock_destroy (&zap.handler);
        zcertstore_destroy (&zap.store);
        return -1;
    }
    self->auth = zactor_new (s_zap_actor, &zap);
    assert (self->auth);
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    zsock_set_zap_domain (self->router, S_ZAP_DOMAIN);
    zsock_set_curve_server (self->router, 1);
    zcert_apply (self->certificate, self->router);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_maxmsgsize (self->router, ML_MAX_MESSAGE_SIZE);
    zsock_set_linger (self->router, 0);
    zsock_set_sndtimeo (self->router, 0);
    //  Who was refused before the ZAP handler could see them (s_receive_monitor).
    self->connections = zhashx_new ();
    zhashx_set_destructor (self->connections, (zhashx_destructor_fn *)zstr_free);
    self->monitor = zactor_new (zmonitor, self->router);
    assert (self->monitor);
    zstr_sendx (self->monitor, "LISTEN", "ACCEPTED", "DISCONNECTED", "HANDSHAKE_FAILED_NO_DETAIL",
                "HANDSHAKE_FAILED_PROTOCOL", NULL);
    zstr_sendx (self->monitor, "START", NULL);
    zsock_wait (self->monitor);
    if (zsock_bind (self->router, "%s", settings->endpoint) < 0) {
        ml_log (ML_LOG_ERROR, "cannot bind agent endpoint %s: %s", settings->endpoint,
                zmq_strerror (errno));
        return -1;
    }
    //  A ROUTER, so a search waiting for an agent holds up no other admin client.
    self->admin = zsock_new (ZMQ_ROUTER);
    assert (self->admin);
    //  Requests up to 1 MiB reach the handler, which refuses those over the documented
    //  64 KiB with a reply; larger ones close the connection.
    zsock_set_maxmsgsize (self->admin, 1024 * 1024);
    zsock_set_linger (self->admin, 0);
    //  The admin API has no authentication of its own: an ipc socket is guarded by file
    //  permissions, so it is created readable and writable by its owner only.
    mode_t saved_mask = umask (0077);
    int bound = zsock_bind (self->admin, "%s", settings->admin_endpoint);
    umask (saved_mask);
    if (bound < 0) {
        ml_log (ML_LOG_ERROR, "cannot bind admin endpoint %s: %s", settings->admin_endpoint,
                zmq_strerror (errno));
        return -1;
    }
    //  matterlink-web's socket: the same framing and file rules; its requests run as a
    //  payer (a live session) or anonymous, never as the operator.
    if (*settings->api_endpoint) {
        self->api = zsock_new (ZMQ_ROUTER);
        assert (self->api);
        zsock_set_maxmsgsize (self->api, 1024 * 1024);
        zsock_set_linger (self->api, 0);
        saved_mask = umask (0077);
        bound = zsock_bind (self->api, "%s", settings->api_endpoint);
        umask (saved_mask);
        if (bound < 0) {
            ml_log (ML_LOG_ERROR, "cannot bind API endpoint %s: %s", settings->api_endpoint,
                    zmq_strerror (errno));
            return -1;
        }
    }
    if (settings->readers > 0) {
        ml_readers_settings_t readers = {.portal = settings->portal};
        snprintf (readers.store, sizeof readers.store, "%s", settings->store);
        snprintf (readers.outbox_key, sizeof readers.outbox_key, "%s",
                  self->settings.mail.outbox_key);
        snprintf (readers.public_url, sizeof readers.public_url, "%s", settings->portal.public_url);
        char why[600];
        self->readers = ml_readers_new (&readers, (size_t)settings->readers, why, sizeof why);
        if (!self->readers) {
            ml_log (ML_LOG_ERROR, "cannot start the store readers: %s", why);
            return -1;
        }
    }
    return 0;
}

static void s_core_destroy (s_core_t *self)
{
    ml_readers_destroy (&self->readers);
    ml_ingest_destroy (&self->ingest);
    zsock_destroy (&self->api);
    zsock_destroy (&self->admin);
    zactor_destroy (&self->monitor);
    zhashx_destroy (&self->connections);
    zsock_destroy (&self->router);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->certificate);
    if (self->pending) {
        for (s_pending_t *pending = zhashx_first (self->pending); pending;
             pending = zhashx_next (self->pending))
            s_pending_destroy (&pending);
        zhashx_destroy (&self->pending);
    }
    zhashx_destroy (&self->sessions);
    ml_contacts_destroy (&self->contacts);
    zhashx_destroy (&self->firms);
    ml_staff_destroy (&self->staff);
    ml_logins_destroy (&self->logins);
    ml_autopay_destroy (&self->autopay);
    //  The worker first: it ends after the call in progress, then nothing uses the calls.
    zactor_destroy (&self->processor_worker);
    ml_portal_pay_destroy (&self->portal_pay);
    zhashx_destroy (&self->waiting);
    ml_payments_destroy (&self->payments);
    zactor_destroy (&self->mail_sender);
    ml_mailer_destroy (&self->mailer);
    ml_processor_destroy (&self->processor);
    ml_payers_destroy (&self->payers);
    ml_lease_destroy (&self->lease); //  a clean stop: other nodes take the firms at once
    ml_store_destroy (&self->store);
}

void ml_core_actor (zsock_t *pipe, void *args)
{
    s_core_t core;
    s_core_t *self = &core;
    if (s_core_init (self, pipe, (const ml_core_settings_t *)args) != 0) {
        s_core_destroy (self);
        ml_service_ready (pipe, false);
        return;
    }
    ml_log (ML_LOG_NOTICE, "core listening for agents on %s, admin on %s", self->settings.endpoint,
            self->settings.admin_endpoint);
    ml_service_ready (pipe, true);
    zpoller_t *poller = zpoller_new (pipe, self->router, self->admin, self->monitor, NULL);
    if (self->processor_worker)
        zpoller_add (poller, self->processor_worker);
    if (self->readers)
        zpoller_add (poller, ml_readers_socket (self->readers));
    zpoller_add (poller, ml_ingest_socket (self->ingest));
    if (self->api) {
        zpoller_add (poller, self->api);
        ml_log (ML_LOG_NOTICE, "core serving the web API on %s", self->settings.api_endpoint);
    }
    self->tick_at = zclock_mono () + 1000;
    while (!self->terminated) {
        int64_t wait = s_search_next_expiry (self, self->tick_at) - zclock_mono ();
        void *which = zpoller_wait (poller, wait > 0 ? (int)wait : 0);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            zstr_free (&command);
        } else if (!which && zpoller_terminated (poller))
            self->terminated = true;
        //  Serve every socket that is ready, not only the one the poller named first: an
        //  agent streaming a snapshot keeps the router busy and must not starve the admin API.
        if (zsock_events (self->router) & ZMQ_POLLIN)
            s_receive_agent (self);
        if (zsock_events (self->admin) & ZMQ_POLLIN)
            s_receive_admin (self, self->admin);
        if (self->api && (zsock_events (self->api) & ZMQ_POLLIN))
            s_receive_admin (self, self->api);
        while (self->readers && (zsock_events (ml_readers_socket (self->readers)) & ZMQ_POLLIN))
            s_receive_reader (self);
        while (zsock_events (ml_ingest_socket (self->ingest)) & ZMQ_POLLIN)
            s_receive_ingest (self);
        if (zsock_events (self->monitor) & ZMQ_POLLIN)
            s_receive_monitor (self);
        while (self->processor_worker &&
               (zsock_events (zactor_sock (self->processor_worker)) & ZMQ_POLLIN))
            s_receive_processor (self);
        s_search_expire (self, NULL);
        if (zclock_mono () >= self->tick_at) {
            s_tick (self);
            self->tick_at = zclock_mono () + 1000;
        }
    }
    zpoller_destroy (&poller);
    s_core_destroy (self);
    ml_log (ML_LOG_NOTICE, "core stopped");
}

void ml_core_test (bool verbose)
{
    printf (" * ml_core: ");
    //  Settings validation here; the service is tested end to end by tests/e2e_*.sh.
    char directory[128], path[200], error[512];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (path, sizeof path, "%s/core.cfg", directory);
    FILE *file = fopen (path, "w");
    fprintf (file, "core\n    window = 0\n");
    fclose (file);
    ml_core_settings_t settings;
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "core/certificate is required"));
    file = fopen (path, "w");
    fprintf (file,
             "core\n    certificate = %s/none\n    agents = %s\n    window = 0\n"
             "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\n"
             "admin\n    endpoint = ipc://%s/admin\n",
             directory, directory, directory, directory);
    fclose (file);
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "core/window must be"));
    file = fopen (path, "w");
    fprintf (file,
             "core\n    certificate = %s/none\n    agents = %s\n"
             "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\n"
             "admin\n    endpoint = ipc://%s/admin\n",
             directory, directory, directory, directory);
    fclose (file);
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == 0);
    assert (settings.window == 8 && settings.heartbeat_ms == 5000);
    assert (!*settings.node && settings.lease_seconds == 10);
    file = fopen (path, "w");
    fprintf (file,
             "core\n    certificate = %s/none\n    agents = %s\n    node = \"a b\"\n"
             "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\n"
             "admin\n    endpoint = ipc://%s/admin\n",
             directory, directory, directory, directory);
    fclose (file);
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == -1);
    assert (strstr (error, "core/node must be"));
    file = fopen (path, "w");
    fprintf (file,
             "core\n    certificate = %s/none\n    agents = %s\n    node = n-1\n"
             "    lease_seconds = 3\n    advertise = tcp://127.0.0.1:7800\n"
             "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\n"
             "admin\n    endpoint = ipc://%s/admin\n",
             directory, directory, directory, directory);
    fclose (file);
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == 0);
    assert (streq (settings.node, "n-1") && settings.lease_seconds == 3);
    assert (streq (settings.advertise, "tcp://127.0.0.1:7800"));
    //  A core without its certificate refuses to start.
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    zactor_t *actor = ml_service_start (ml_core_actor, &settings);
    assert (actor == NULL);
    ml_log_setup (NULL, saved);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
