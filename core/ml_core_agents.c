/*  ml_core_agents: the core's agent sessions (HELLO, the agents' messages, delivering the
    postings outbox, one route per firm). Part of the core actor (ml_core_internal.h). */
#include "ml_core_internal.h"

void ml_core_session_destroy (ml_core_session_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->routing);
        zhashx_destroy (&(*self_p)->in_flight);
        free (*self_p);
        *self_p = NULL;
    }
}

ml_core_session_t *ml_core_session_new (const char *firm_id)
{
    ml_core_session_t *self = calloc (1, sizeof (ml_core_session_t));
    assert (self);
    snprintf (self->firm_id, sizeof self->firm_id, "%s", firm_id);
    snprintf (self->label, sizeof self->label, "firm %s", firm_id);
    self->in_flight = zhashx_new ();
    zhashx_set_destructor (self->in_flight, (zhashx_destructor_fn *)zstr_free);
    return self;
}

//  Sending ---------------------------------------------------------------------------------

//  Send a message to an agent through its current routing id (note: see ml_group_send).
//  Returns 0 or -1 (agent gone).
static int s_send (ml_core_t *self, zframe_t *routing, ml_msg_t *message, const char *note)
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
    //  A search or a heartbeat promises nothing the round wrote: it goes now, so a search
    //  of an agent that went away fails at once. The rest waits for the round's commit.
    bool now =
        message->id == ML_MSG_SEARCH || message->id == ML_MSG_PING || message->id == ML_MSG_PONG;
    //  ROUTER_MANDATORY makes a send to a vanished agent fail here instead of silently.
    if ((now ? ml_group_send_now : ml_group_send) (self->group, self->router, &out, note) != 0) {
        //  A peer that sends and goes away makes these: one bucket for them all.
        ml_log_peer (ML_LOG_INFO, "replies to agents that went away",
                     "%s not sent: agent unreachable", ml_msg_name (message->id));
        return -1;
    }
    return 0;
}

void ml_core_send_error (ml_core_t *self, zframe_t *routing, uint16_t code, const char *reason)
{
    ml_msg_t *error = ml_msg_new (ML_MSG_ERROR);
    error->code = code;
    snprintf (error->reason, sizeof error->reason, "%s", reason);
    ml_core_send_to (self, routing, error);
    ml_msg_destroy (&error);
}

//  Tell an agent that another node owns its firm (ERROR 307, docs/multinode.md): endpoint is
//  where that node said agents reach it, "" when unknown (the agent tries its next core).
static void s_send_moved (ml_core_t *self, zframe_t *routing, const char *firm_id,
                          const char *endpoint)
{
    ml_msg_t *error = ml_msg_new (ML_MSG_ERROR);
    error->code = ML_ERROR_MOVED;
    ml_msg_moved_format (error, endpoint, firm_id);
    ml_core_send_to (self, routing, error);
    ml_msg_destroy (&error);
}

//  This node no longer holds a firm it served: the agent goes to the owner (from the store).
void ml_core_session_moved (ml_core_t *self, ml_core_session_t *session)
{
    char endpoint[256] = "";
    ml_lease_owner (ml_store_db (self->store), session->firm_id, NULL, 0, endpoint,
                    sizeof endpoint);
    ml_log (ML_LOG_NOTICE, "firm %s: served by another node now; agent sent to %s",
            session->firm_id, *endpoint ? endpoint : "its next core");
    if (session->routing)
        s_send_moved (self, session->routing, session->firm_id, endpoint);
    session->state = ML_CORE_NONE;
    session->batch = 0;
    zhashx_purge (session->in_flight);
}

static void s_ack (ml_core_t *self, ml_core_session_t *session, uint64_t batch, uint64_t cursor)
{
    ml_msg_t *ack = ml_msg_new (ML_MSG_ACK);
    ack->batch = batch;
    ack->cursor = cursor;
    ml_core_send_to (self, session->routing, ack);
    ml_msg_destroy (&ack);
}

int ml_core_send_to (ml_core_t *self, zframe_t *routing, ml_msg_t *message)
{
    return s_send (self, routing, message, NULL);
}

//  Postings outbox ---------------------------------------------------------------------------

//  Send the firm's unanswered postings, at most window in flight, sending again those that
//  waited longer than the redelivery interval.
void ml_core_deliver (ml_core_t *self, ml_core_session_t *session)
{
    if (session->state == ML_CORE_NONE)
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
    session->backlog = true;
    if (zhashx_size (session->in_flight) >= window)
        return;
    //  Twice the window: those in flight (at most the window) and as many to send. One
    //  limit for every call lets the listing be asked ahead where a posting is made
    //  (ml_pay_record).
    size_t limit = 2 * window;
    zlistx_t *due = ml_store_postings_unanswered (self->store, session->firm_id, limit);
    const char *uuid = due ? zlistx_first (due) : NULL;
    for (; uuid && zhashx_size (session->in_flight) < window; uuid = zlistx_next (due)) {
        if (zhashx_lookup (session->in_flight, uuid))
            continue;
        ml_msg_t *posting = ml_store_posting_load (self->store, uuid);
        if (!posting) {
            ml_log (ML_LOG_ERROR, "posting %s cannot be loaded from the store", uuid);
            continue;
        }
        //  Marked delivered once it has really gone, after the round's commit (the loop).
        if (s_send (self, session->routing, posting, uuid) == 0) {
            int64_t *sent = malloc (sizeof (int64_t));
            assert (sent);
            *sent = now;
            zhashx_insert (session->in_flight, uuid, sent);
            ml_log (ML_LOG_INFO, "posting %s sent to firm %s", uuid, session->firm_id);
        }
        ml_msg_destroy (&posting);
    }
    //  Every unanswered posting went (or is in flight): a result need not look again (the
    //  tick still does, once a second, for any firm with postings waiting).
    session->backlog = !due || uuid || zlistx_size (due) >= limit;
    zlistx_destroy (&due);
}

//  Agent messages --------------------------------------------------------------------------

static void s_handle_hello (ml_core_t *self, ml_core_session_t *session, ml_msg_t *hello)
{
    if (hello->protocol != ML_PROTOCOL_VERSION) {
        ml_core_send_error (self, session->routing, ML_ERROR_VERSION,
                            "this core speaks MLP/1 only: upgrade the agent");
        return;
    }
    if (hello->contract_version != ML_CONTRACT_VERSION) {
        char reason[200];
        snprintf (reason, sizeof reason,
                  "matter database contract version %u is not supported by this core (it "
                  "speaks version %d)",
                  hello->contract_version, ML_CONTRACT_VERSION);
        ml_core_send_error (self, session->routing, ML_ERROR_VERSION, reason);
        return;
    }
    //  Several nodes: serve the firm only under its lease, else send the agent to its owner.
    char owner[256] = "";
    int leased =
        self->lease ? ml_lease_acquire (self->lease, session->firm_id, owner, sizeof owner) : 1;
    if (leased < 0) {
        ml_core_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure");
        return;
    }
    if (leased == 0) {
        ml_log (ML_LOG_INFO, "firm %s: owned by another node; agent sent to %s", session->firm_id,
                *owner ? owner : "its next core");
        s_send_moved (self, session->routing, session->firm_id, owner);
        session->state = ML_CORE_NONE;
        return;
    }
    bool resync = false;
    uint64_t cursor = 0;
    ml_ingest_session (self->ingest, session->firm_id); //  the earlier session's work is void
    if (ml_store_session_open (self->store, session->firm_id, hello, &resync, &cursor) != 0) {
        ml_core_send_error (self, session->routing, ML_ERROR_INTERNAL, "core store failure");
        return;
    }
    ml_msg_t *welcome = ml_msg_new (ML_MSG_WELCOME);
    welcome->heartbeat_ms = (uint32_t)self->settings.heartbeat_ms;
    welcome->window = (uint32_t)self->settings.window;
    welcome->resync = resync ? 1 : 0;
    welcome->cursor = cursor;
    ml_core_send_to (self, session->routing, welcome);
    ml_msg_destroy (&welcome);
    session->state = resync ? ML_CORE_SNAPSHOT : ML_CORE_LIVE;
    zlistx_add_end (self->firms_connected, session->firm_id);
    session->snapshot_rows = 0;
    session->batch = 0;
    zhashx_purge (session->in_flight);
    char agent_version[200];
    ml_log (ML_LOG_NOTICE, "firm %s: agent %s connected; %s", session->firm_id,
            ml_log_escape (hello->agent_version, agent_version, sizeof agent_version),
            resync ? "snapshot requested" : "resuming changes");
    ml_core_deliver (self, session);
}

//  Check that a batch continues the session's sequence in the expected state.
static bool s_batch_in_order (ml_core_t *self, ml_core_session_t *session, ml_msg_t *message,
                              ml_core_session_state_t expected)
{
    if (session->state != expected || message->batch != session->batch + 1) {
        char reason[200];
        snprintf (reason, sizeof reason, "%s batch %llu out of state or sequence; send HELLO",
                  ml_msg_name (message->id), (unsigned long long)message->batch);
        ml_log_peer (ML_LOG_INFO, session->label, "firm %s: %s", session->firm_id, reason);
        ml_core_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE, reason);
        session->state = ML_CORE_NONE;
        return false;
    }
    session->batch = message->batch;
    return true;
}

static void s_store_failed (ml_core_t *self, ml_core_session_t *session, const char *doing)
{
    //  Refused by the fence: another node took the firm while this one was away.
    if (self->lease && ml_lease_acquire (self->lease, session->firm_id, NULL, 0) == 0) {
        ml_core_session_moved (self, session);
        return;
    }
    ml_log (ML_LOG_ERROR, "firm %s: core store failed while %s: %s", session->firm_id, doing,
            ml_store_error (self->store)->message);
    ml_core_send_error (self, session->routing, ML_ERROR_INTERNAL,
                        "core store failure; send HELLO");
    session->state = ML_CORE_NONE;
}

//  A snapshot with more rows than core/max_firm_items, or a change batch that would take the
//  firm's replica past it: refused, and the session ends (nothing of the batch is stored).
//  The agent sends HELLO again later (docs/protocol.md, ERROR 413): the operator raises the
//  limit, or the firm's database holds fewer open items.
static void s_too_large (ml_core_t *self, ml_core_session_t *session, const char *what)
{
    char reason[200];
    snprintf (reason, sizeof reason,
              "%s would take the firm's replica past the core's limit of %d items"
              " (core/max_firm_items); send HELLO",
              what, self->settings.max_firm_items);
    ml_log_peer (ML_LOG_WARNING, session->label, "firm %s: %s", session->firm_id, reason);
    ml_contacts_refused (self->contacts, session->firm_id, reason, zclock_time ());
    ml_core_send_error (self, session->routing, ML_ERROR_TOO_LARGE, reason);
    session->state = ML_CORE_NONE;
}

static void s_handle_message (ml_core_t *self, ml_core_session_t *session, ml_msg_t *message)
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
        ml_core_send_error (self, session->routing, ML_ERROR_MALFORMED,
                            "that message goes from the core to an agent, not back");
        return;
    }
    if (session->state == ML_CORE_NONE) {
        ml_core_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE,
                            "no session; send HELLO");
        return;
    }
    switch (message->id) {
        //  Written by the ingest thread (core/ml_ingest.c); acknowledged in ml_core_receive_ingest.
        //  After SNAPSHOT-END the session is live at once: the agent may send CHANGES before
        //  its ACK, and the thread applies them after the snapshot's end, in order.
        case ML_MSG_SNAPSHOT:
        case ML_MSG_SNAPSHOT_END:
        case ML_MSG_CHANGES:
            if (!s_batch_in_order (self, session, message,
                                   message->id == ML_MSG_CHANGES ? ML_CORE_LIVE : ML_CORE_SNAPSHOT))
                return;
            //  The ingest thread's own connection checks what this round wrote (the lease
            //  taken at HELLO): it is committed first.
            ml_db_group_commit (ml_store_db (self->store));
            if (message->id == ML_MSG_SNAPSHOT && session->snapshot_rows + message->item_count >
                                                      (uint64_t)self->settings.max_firm_items) {
                s_too_large (self, session, "the snapshot");
                return;
            }
            if (message->id == ML_MSG_SNAPSHOT)
                session->snapshot_rows += message->item_count; //  (the items move on)
            if (ml_ingest_send (self->ingest, session->firm_id, message) != 0)
                s_store_failed (self, session, "handing a batch to the ingest thread");
            else if (message->id == ML_MSG_SNAPSHOT_END)
                session->state = ML_CORE_LIVE;
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
            //  Unless postings wait behind a full window, every one has gone already: no
            //  read (one round trip on PostgreSQL) per result.
            if (session->backlog)
                ml_core_deliver (self, session);
            break;
        }
        case ML_MSG_SEARCH_RESULT:
            ml_core_search_answered (self, session, message);
            break;
        case ML_MSG_PING: {
            ml_msg_t *pong = ml_msg_new (ML_MSG_PONG);
            ml_core_send_to (self, session->routing, pong);
            ml_msg_destroy (&pong);
            break;
        }
        default:
            break;
    }
}

//  An answer of the ingest thread: acknowledge the batch it took or committed, or end the
//  session it could not store. Answers of a session that a HELLO replaced are dropped.
void ml_core_receive_ingest (ml_core_t *self)
{
    ml_ingest_answer_t answer;
    if (ml_ingest_receive (self->ingest, &answer) != 0 || !answer.current || answer.rc == -3)
        return;
    ml_core_session_t *session = zhashx_lookup (self->sessions, answer.firm_id);
    if (!session || session->state == ML_CORE_NONE)
        return;
    if (answer.rc == -2) {
        ml_core_send_error (self, session->routing, ML_ERROR_OUT_OF_STATE,
                            "changes do not start at the core's cursor; send HELLO");
        session->state = ML_CORE_NONE;
    } else if (answer.rc == -4)
        s_too_large (self, session, "a change batch");
    else if (answer.rc != 0) {
        ml_log (ML_LOG_ERROR, "firm %s: core store failed while storing its replica: %s",
                session->firm_id, answer.error);
        ml_core_send_error (self, session->routing, ML_ERROR_INTERNAL,
                            "core store failure; send HELLO");
        session->state = ML_CORE_NONE;
    } else if (answer.kind == 'R')
        s_ack (self, session, answer.batch, 0);
    else {
        s_ack (self, session, answer.batch, answer.cursor);
        ml_contacts_refused (self->contacts, session->firm_id, NULL, 0);
        if (answer.kind == 'E')
            ml_log (ML_LOG_NOTICE, "firm %s: replica complete at change %llu", session->firm_id,
                    (unsigned long long)answer.cursor);
        else
            ml_log (ML_LOG_INFO, "firm %s: changes applied, cursor %llu", session->firm_id,
                    (unsigned long long)answer.cursor);
    }
}

//  Which firm owns an authenticated key: the cache first, then the store.
static const char *s_firm_of (ml_core_t *self, const char *key)
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

//  A connection with a firm's key that is not the one holding the firm's route. One route per
//  firm: the first connection keeps it while it is alive (heard from within the window s_tick
//  allows, and its connection open), so a second agent with a copied key cannot take a firm's
//  postings and searches; a silent or closed first connection hands over, so a restarted agent
//  is not locked out. Returns true when the newcomer now holds the route (its session starts
//  with no state: it must send HELLO).
static bool s_route_handover (ml_core_t *self, ml_core_session_t *session, zframe_t *routing,
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
        open = ml_core_send_to (self, session->routing, ping) == 0;
        ml_msg_destroy (&ping);
    }
    if (open) {
        ml_log_peer (
            ML_LOG_WARNING, session->label,
            "firm %s: second connection with the firm's agent key refused (peer %s, routing "
            "id %s): the firm's agent at %s (routing id %s) is connected and was heard from "
            "%lld ms ago; is the agent's key installed twice?",
            session->firm_id, peer, new_id, session->peer, old_id, (long long)silent);
        ml_core_send_error (
            self, routing, ML_ERROR_KEY_IN_USE,
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
        ml_core_search_expire (self, session->firm_id);
        session->state = ML_CORE_NONE;
        session->batch = 0;
        zhashx_purge (session->in_flight);
    }
    zstr_free (&old_id);
    zstr_free (&new_id);
    return !open;
}

void ml_core_receive_agent (ml_core_t *self)
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
        ml_core_send_error (self, routing, ML_ERROR_UNAUTHORIZED,
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
        ml_core_send_error (self, routing, ML_ERROR_MALFORMED, error);
        zframe_destroy (&routing);
        return;
    }
    ml_core_session_t *session = zhashx_lookup (self->sessions, firm);
    if (session && session->routing && !zframe_eq (session->routing, routing) &&
        !s_route_handover (self, session, routing, peer)) {
        zframe_destroy (&routing);
        ml_msg_destroy (&message);
        return;
    }
    if (!session) {
        session = ml_core_session_new (firm);
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
