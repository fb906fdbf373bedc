/*  ml_core_forward: staff and web requests for a firm reach its owner node (docs/multinode.md).

    A request that needs the firm's agent (a search of its matter database) and comes to a node
    that does not serve the firm is forwarded, as it came, to the owner's forward socket
    (core/forward, advertised in the store's core_node table) over a DEALER of its own; the
    owner's reply is relayed to the client. The owner runs the request exactly as if it had
    come to its own admin or API socket (so it checks the actor, per object, itself), and
    never forwards it again. Over TCP the forward socket is CURVE with the node's own
    certificate, and its handshake handler allows only keys that nodes advertise in the store;
    over ipc the socket file is for the core's user only, as the admin socket. Part of the core
    actor (ml_core_internal.h).
*/
#include "ml_core_internal.h"

//  How long past the search's own deadline the forwarding node waits for the owner's reply:
//  the owner answers "did not answer in time" itself first.
#define S_FORWARD_MARGIN_MS 3000

static void s_forwarded_destroy (ml_core_forwarded_t **self_p)
{
    if (*self_p) {
        zsock_destroy (&(*self_p)->dealer);
        zframe_destroy (&(*self_p)->client);
        free (*self_p);
        *self_p = NULL;
    }
}

int ml_core_forward_start (ml_core_t *self)
{
    self->forwards = zlistx_new ();
    if (!self->lease)
        return 0;
    const char *advertise = "";
    bool tcp = false;
    if (*self->settings.forward) {
        tcp = strncmp (self->settings.forward, "tcp://", 6) == 0;
        self->forward = zsock_new (ZMQ_ROUTER);
        assert (self->forward);
        zsock_set_maxmsgsize (self->forward, 1024 * 1024);
        zsock_set_linger (self->forward, 0);
        if (tcp) {
            //  Only other nodes' keys (the handshake handler reads them from the store).
            zsock_set_zap_domain (self->forward, ML_CORE_ZAP_NODES);
            zsock_set_curve_server (self->forward, 1);
            zcert_apply (self->certificate, self->forward);
        }
        mode_t saved_mask = umask (0077);
        int bound = zsock_bind (self->forward, "%s", self->settings.forward);
        umask (saved_mask);
        if (bound < 0) {
            ml_log (ML_LOG_ERROR, "cannot bind forward endpoint %s: %s", self->settings.forward,
                    zmq_strerror (errno));
            return -1;
        }
        advertise = *self->settings.forward_advertise ? self->settings.forward_advertise
                                                      : self->settings.forward;
    }
    //  Every node records its key, also one that takes no forwarded requests: the owners'
    //  handshake handlers know the requests it forwards by that key.
    if (ml_lease_advertise_forward (self->lease, advertise, zcert_public_txt (self->certificate)) !=
        0)
        return -1;
    if (self->forward)
        ml_log (ML_LOG_NOTICE, "core node %s takes requests forwarded by other nodes on %s (%s)",
                self->settings.node, self->settings.forward,
                tcp ? "CURVE, other nodes' keys only" : "a socket file for this user");
    return 0;
}

void ml_core_forward_stop (ml_core_t *self)
{
    if (self->forwards) {
        for (ml_core_forwarded_t *forwarded = zlistx_first (self->forwards); forwarded;
             forwarded = zlistx_next (self->forwards))
            s_forwarded_destroy (&forwarded);
        zlistx_destroy (&self->forwards);
    }
    zsock_destroy (&self->forward);
}

bool ml_core_forward_owner (ml_core_t *self, const char *firm_id, char *node, size_t size)
{
    if (!self->lease)
        return false;
    ml_core_session_t *session = zhashx_lookup (self->sessions, firm_id);
    if (session && session->state != ML_CORE_NONE)
        return false;
    return ml_lease_owner (ml_store_db (self->store), firm_id, node, size, NULL, 0) == 1 &&
           !streq (node, ml_lease_node (self->lease));
}

json_t *ml_core_forward (ml_core_t *self, zsock_t *socket, zframe_t *client, zframe_t *frame,
                         bool api, const char *firm_id, const char *node, int64_t deadline_ms)
{
    if (deadline_ms <= 0)
        deadline_ms = 10000;
    char endpoint[256] = "", key[64] = "";
    int found = ml_lease_node_forward (ml_store_db (self->store), node, endpoint, sizeof endpoint,
                                       key, sizeof key);
    if (found < 0)
        return ml_admin_store_failed (ml_store_db (self->store), "forward",
                                      "reading the owner's forward endpoint");
    if (found == 0)
        return ml_admin_error (
            "firm %s is served by core node %s (its agent is connected there), so only that node "
            "can search its matter database, and node %s takes no forwarded requests (no "
            "core/forward): send this request to node %s's %s socket",
            firm_id, node, node, node, api ? "API" : "admin");
    bool tcp = strncmp (endpoint, "tcp://", 6) == 0;
    uint8_t decoded[32];
    if (tcp && (strlen (key) != 40 || !zmq_z85_decode (decoded, key)))
        return ml_admin_error ("firm %s is served by core node %s, whose advertised public key "
                               "in the store (core_node) is not a CURVE key: check that node",
                               firm_id, node);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_sndtimeo (dealer, 0);
    zsock_set_maxmsgsize (dealer, ML_MAX_MESSAGE_SIZE);
    //  Over TCP, CURVE with this node's certificate, pinning the owner's advertised key; an
    //  ipc:// socket file is guarded by its permissions.
    if (tcp) {
        zcert_apply (self->certificate, dealer);
        zsock_set_curve_serverkey (dealer, key);
    }
    //  As a REQ client frames it (an empty delimiter), then which socket it came to, then the
    //  request itself: the owner reads it as its own socket's request.
    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, "");
    zmsg_addstr (out, api ? "api" : "admin");
    zmsg_append (out, &(zframe_t *){zframe_dup (frame)});
    if (zsock_connect (dealer, "%s", endpoint) != 0 || zmsg_send (&out, dealer) != 0) {
        zmsg_destroy (&out);
        zsock_destroy (&dealer);
        return ml_admin_error ("firm %s is served by core node %s, whose forward endpoint %s "
                               "cannot be reached: try again shortly",
                               firm_id, node, endpoint);
    }
    ml_core_forwarded_t *forwarded = calloc (1, sizeof (ml_core_forwarded_t));
    assert (forwarded);
    forwarded->dealer = dealer;
    forwarded->socket = socket;
    forwarded->client = zframe_dup (client);
    snprintf (forwarded->firm_id, sizeof forwarded->firm_id, "%s", firm_id);
    snprintf (forwarded->node, sizeof forwarded->node, "%s", node);
    forwarded->wait_ms = deadline_ms + S_FORWARD_MARGIN_MS;
    forwarded->expires = zclock_mono () + forwarded->wait_ms;
    zlistx_add_end (self->forwards, forwarded);
    zpoller_add (self->poller, dealer);
    ml_log (ML_LOG_INFO, "firm %s: request forwarded to its owner, node %s (%s)", firm_id, node,
            endpoint);
    return NULL;
}

//  Relay the owner's reply (empty delimiter, then the reply) to the client it came for.
static void s_forward_relay (ml_core_t *self, ml_core_forwarded_t *forwarded)
{
    zmsg_t *reply = zmsg_recv (forwarded->dealer);
    zframe_t *delimiter = reply ? zmsg_pop (reply) : NULL;
    if (delimiter && zframe_size (delimiter) == 0 && zmsg_size (reply) == 1) {
        zmsg_prepend (reply, &delimiter);
        zmsg_prepend (reply, &(zframe_t *){zframe_dup (forwarded->client)});
        if (zmsg_send (&reply, forwarded->socket) != 0)
            zmsg_destroy (&reply); //  the client went away
    } else {
        json_t *error = ml_admin_error ("core node %s answered a forwarded request for firm %s "
                                        "with a malformed reply",
                                        forwarded->node, forwarded->firm_id);
        ml_core_socket_reply (self, forwarded->socket, forwarded->client, error);
        json_decref (error);
    }
    zframe_destroy (&delimiter);
    zmsg_destroy (&reply);
}

void ml_core_forward_receive (ml_core_t *self)
{
    int64_t now = zclock_mono ();
    ml_core_forwarded_t *forwarded = zlistx_first (self->forwards);
    while (forwarded) {
        bool done = true;
        if (zsock_events (forwarded->dealer) & ZMQ_POLLIN)
            s_forward_relay (self, forwarded);
        else if (now >= forwarded->expires) {
            json_t *error = ml_admin_error (
                "firm %s is served by core node %s, which did not answer the forwarded request "
                "within %lld ms: try again shortly (if that node is down, another takes the firm "
                "within core/lease_seconds)",
                forwarded->firm_id, forwarded->node, (long long)forwarded->wait_ms);
            ml_core_socket_reply (self, forwarded->socket, forwarded->client, error);
            json_decref (error);
            ml_log (ML_LOG_WARNING, "firm %s: node %s did not answer a forwarded request in time",
                    forwarded->firm_id, forwarded->node);
        } else
            done = false;
        if (done) {
            zpoller_remove (self->poller, forwarded->dealer);
            zlistx_delete (self->forwards, zlistx_cursor (self->forwards));
            s_forwarded_destroy (&forwarded);
            //  The cursor went with the item: start over (the list is short, and what was
            //  left is only checked again).
            forwarded = zlistx_first (self->forwards);
            continue;
        }
        forwarded = zlistx_next (self->forwards);
    }
}

int64_t ml_core_forward_next_expiry (ml_core_t *self, int64_t fallback)
{
    for (ml_core_forwarded_t *forwarded = zlistx_first (self->forwards); forwarded;
         forwarded = zlistx_next (self->forwards))
        if (forwarded->expires < fallback)
            fallback = forwarded->expires;
    return fallback;
}
