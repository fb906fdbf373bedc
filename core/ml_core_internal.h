/*  ml_core_internal: what the core actor's files share (core/ml_core*.c), not a public API.

    The core is one actor (ml_core.c: settings, init, destroy, the loop and the tick) whose
    work is split by job: agent sessions (ml_core_agents.c), the handshake handler and the
    router's monitor (ml_core_zap.c), and the admin and API requests with the searches and
    processor calls they wait for (ml_core_requests.c). All run on the actor's one thread.
*/
#ifndef ML_CORE_INTERNAL_H_INCLUDED
#define ML_CORE_INTERNAL_H_INCLUDED

#include "ml_agent_keys.h"
#include "ml_group.h"
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

#define ML_CORE_ZAP_DOMAIN "matterlink"
//  The forward socket's handshakes: other core nodes' keys (ml_core_forward.c).
#define ML_CORE_ZAP_NODES "matterlink-nodes"

typedef enum { ML_CORE_NONE, ML_CORE_SNAPSHOT, ML_CORE_LIVE } ml_core_session_state_t;

//  One agent session, per firm. Lives in memory only: after a core restart every agent
//  is told to greet again (ERROR 409) and the store says where to resume.
typedef struct {
    char firm_id[64];
    char label[80]; //  "firm ID": the peer's name for ml_log_peer
    zframe_t *routing;
    char peer[64]; //  the connection's peer address (for log lines naming it)
    ml_core_session_state_t state;
    uint64_t batch;      //  last batch number received
    int64_t last_seen;   //  monotonic ms
    zhashx_t *in_flight; //  posting uuid -> monotonic ms it was sent (int64_t *)
    bool backlog;        //  postings may wait unsent (the window was full): a result reads
    //  Rows of the session's snapshot received so far (status shows a first snapshot's
    //  progress: its totals count only at SNAPSHOT-END); kept once it ends, 0 for a session
    //  that resumed changes.
    uint64_t snapshot_rows;
} ml_core_session_t;

//  An admin request waiting for an agent's SEARCH-RESULT.
typedef struct {
    zsock_t *socket;  //  the socket the request came in on (admin or API): the reply goes there
    zframe_t *client; //  the client's routing id, to reply to
    char firm_id[64]; //  only this firm's agent may answer
    int64_t expires;  //  monotonic ms: past it the client gets "did not answer in time"
    json_t *context;  //  what ml_finder_reply needs
} ml_core_pending_t;

//  A request forwarded to its firm's owner node, waiting for the reply (ml_core_forward.c).
typedef struct {
    zsock_t *dealer;  //  connected to the owner's forward socket, for this request only
    zsock_t *socket;  //  the socket the request came in on: the reply goes there
    zframe_t *client; //  the client's routing id
    char firm_id[64];
    char node[64];   //  the owner it went to
    int64_t wait_ms; //  how long the client waits for it
    int64_t expires; //  monotonic ms
} ml_core_forwarded_t;

typedef struct {
    ml_core_settings_t settings;
    zsock_t *pipe;
    zsock_t *router;
    zsock_t *admin;
    zsock_t *api;          //  matterlink-web's API socket (api/endpoint), or NULL
    zsock_t *forward;      //  where other nodes forward requests to this one (core/forward)
    zlistx_t *forwards;    //  ml_core_forwarded_t: this node's requests waiting for owners
    zpoller_t *poller;     //  the loop's poller (forwarded requests' DEALERs join it)
    ml_readers_t *readers; //  answer the reading ops of both sockets (core/readers), or NULL
    ml_ingest_t *ingest;   //  writes the agents' SNAPSHOT, SNAPSHOT-END and CHANGES
    zactor_t *auth;
    zactor_t *monitor;           //  the router's connection events, to log who was refused
    zhashx_t *connections;       //  descriptor (decimal text) -> peer address, from ACCEPTED
    char handshake_failure[300]; //  why the handshake now failing failed, until DISCONNECTED
    zcert_t *certificate;
    ml_store_t *store;
    ml_group_t *group; //  a round's store writes commit at once, then its messages go
    ml_lease_t *lease; //  the firms this node owns, when it shares the store (core/node)
    int64_t renew_at;  //  monotonic ms of the next lease renewal
    ml_payers_t *payers;
    ml_processor_t *processor;
    ml_mailer_t *mailer;
    zactor_t *mail_sender; //  the mailer's actor, when mail is configured
    ml_payments_t *payments;
    zactor_t *processor_worker; //  makes the processor calls, so this thread never waits
    zhashx_t *waiting;          //  payment request id -> ml_core_waiter_t waiting for it
    zlistx_t *firms_connected;  //  firms whose agent said HELLO in this round (strings)
    ml_autopay_t *autopay;
    ml_logins_t *logins;
    ml_portal_pay_t *portal_pay;
    ml_staff_t *staff;       //  staff accounts (docs/staff-api.md)
    zhashx_t *sessions;      //  firm id -> ml_core_session_t
    ml_contacts_t *contacts; //  each agent's last contact and cursor (status)
    zhashx_t *pending;       //  search request id (decimal text) -> ml_core_pending_t
    uint64_t next_request_id;
    zhashx_t *firms; //  agent public key -> firm id (cache of the store)
    int64_t tick_at;
    bool terminated;
} ml_core_t;

//  A client whose request waits for the processor's worker: where its reply goes.
typedef struct {
    zsock_t *socket; //  the socket the request came in on (admin or API)
    zframe_t *client;
    bool payer; //  a payer's (the API socket without a staff session): the payer's view only
} ml_core_waiter_t;

//  The ZAP handler (ZeroMQ RFC 27), in place of czmq's zauth: it allows a CURVE client whose
//  public key has a certificate in the agents' directory, as zauth does, and also logs each
//  refusal with the peer's address and key (zauth refuses silently, and its verbose mode logs
//  every allowed handshake too). The certificate store reloads the directory when it changes,
//  so a newly registered agent is accepted without a restart.
typedef struct {
    zsock_t *handler;      //  REP bound to the ZAP endpoint, handed to the actor
    ml_agent_keys_t *keys; //  the agents' certificates
    //  The core's store (store/connection), where the forward socket's handshakes find the
    //  nodes' keys (core_node); the handler opens its own connection when first asked.
    const char *connection;
} ml_core_zap_t;

//  Agent sessions (ml_core_agents.c).
ml_core_session_t *ml_core_session_new (const char *firm_id);
void ml_core_session_destroy (ml_core_session_t **self_p);
//  Send a message to an agent through its current routing id. Returns 0 or -1 (agent gone).
int ml_core_send_to (ml_core_t *self, zframe_t *routing, ml_msg_t *message);
void ml_core_send_error (ml_core_t *self, zframe_t *routing, uint16_t code, const char *reason);
//  This node no longer holds a firm it served: the agent goes to the owner.
void ml_core_session_moved (ml_core_t *self, ml_core_session_t *session);
//  Send the firm's unanswered postings (at most window in flight).
void ml_core_deliver (ml_core_t *self, ml_core_session_t *session);
void ml_core_receive_agent (ml_core_t *self);
void ml_core_receive_ingest (ml_core_t *self);

//  The handshake handler and the router's monitor (ml_core_zap.c).
void ml_core_zap_actor (zsock_t *pipe, void *args);
void ml_core_receive_monitor (ml_core_t *self);

//  Admin and API requests, searches, processor calls (ml_core_requests.c).
void ml_core_pending_destroy (ml_core_pending_t **self_p);
ml_core_waiter_t *ml_core_waiter_new (zsock_t *socket, zframe_t *client);
void ml_core_waiter_destroy (ml_core_waiter_t **self_p);
void ml_core_socket_reply (ml_core_t *self, zsock_t *socket, zframe_t *client, json_t *reply);
//  Tell the mail sender to look at the outbox (after the round's commit).
void ml_core_poke_mail (ml_core_t *self);
void ml_core_search_answered (ml_core_t *self, ml_core_session_t *session, ml_msg_t *answer);
//  Give up on searches whose deadline passed, or whose firm's session ended (firm_id set).
void ml_core_search_expire (ml_core_t *self, const char *firm_id);
int ml_core_autopay_ask (void *arg, const char *firm_id, ml_msg_t *search, const json_t *context);
int64_t ml_core_search_next_expiry (ml_core_t *self, int64_t fallback);
void ml_core_send_ready (ml_core_t *self);
void ml_core_receive_processor (ml_core_t *self);
void ml_core_receive_reader (ml_core_t *self);
void ml_core_receive_admin (ml_core_t *self, zsock_t *socket);

//  Forwarding to a firm's owner node (ml_core_forward.c).
//  Bind the forward socket (core/forward) and advertise it; 0 or -1.
int ml_core_forward_start (ml_core_t *self);
void ml_core_forward_stop (ml_core_t *self);
//  True when another node serves firm_id now (its id copied into node): a request needing the
//  firm's agent goes there.
bool ml_core_forward_owner (ml_core_t *self, const char *firm_id, char *node, size_t size);
//  Forward a request (frame, as it came on socket from client; api: it came on the API
//  socket) to node. Returns NULL when sent (the reply is relayed later), else the error reply.
json_t *ml_core_forward (ml_core_t *self, zsock_t *socket, zframe_t *client, zframe_t *frame,
                         bool api, const char *firm_id, const char *node, int64_t deadline_ms);
//  Relay the owners' replies that came, and answer those past their deadline.
void ml_core_forward_receive (ml_core_t *self);
int64_t ml_core_forward_next_expiry (ml_core_t *self, int64_t fallback);

#endif
