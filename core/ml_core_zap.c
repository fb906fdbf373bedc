/*  ml_core_zap: the core's handshake handler (ZAP) and the agent router's monitor, which log
    who was refused and why. Part of the core actor (ml_core_internal.h). */
#include "ml_core_internal.h"

#include <arpa/inet.h>
#include <sys/socket.h>

void ml_core_zap_actor (zsock_t *pipe, void *args)
{
    //  The core bound the handler before starting this actor (a core that could not must not
    //  start: libzmq without a ZAP handler would accept any key). It is ours from now on.
    ml_core_zap_t zap = *(ml_core_zap_t *)args;
    zsock_t *handler = zap.handler;
    ml_agent_keys_t *keys = zap.keys;
    char connection[1024];
    snprintf (connection, sizeof connection, "%s", zap.connection ? zap.connection : "");
    ml_db_t *nodes = NULL; //  for the forward socket's handshakes (ML_CORE_ZAP_NODES)
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
        char peer[64];
        ml_log_escape (address ? address : "?", peer, sizeof peer);
        bool node_domain = domain && streq (domain, ML_CORE_ZAP_NODES);
        bool allowed = false;
        if (node_domain && *key) {
            //  Another node forwarding a request: its key must be one a node advertised.
            ml_db_error_t db_error;
            if (!nodes)
                nodes = ml_db_new (connection, &db_error);
            int known = nodes ? ml_lease_node_key (nodes, key, NULL, 0) : -1;
            if (known < 0) {
                ml_log (ML_LOG_ERROR, "forward handshake from %s: the store cannot be read", peer);
                ml_db_destroy (&nodes); //  opened again at the next handshake
            }
            allowed = known == 1;
            if (!allowed)
                ml_log_peer (ML_LOG_WARNING, peer,
                             "forward handshake refused from %s: CURVE key %s is no core node's "
                             "(core_node)",
                             peer, key);
        } else
            allowed = !node_domain && ml_agent_keys_allowed (keys, key);
        if (allowed)
            ml_log (ML_LOG_DEBUG, "handshake from %s allowed (key %.8s...)", peer, key);
        else if (node_domain && *key)
            ; //  logged above
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
    ml_agent_keys_destroy (&keys);
    ml_db_destroy (&nodes);
}

//  The router's connection events (from its monitor: event name, value, endpoint). A client
//  that speaks NULL or PLAIN to the CURVE router never reaches the ZAP handler: the mechanisms
//  differ, one side closes, and libzmq reports a failed handshake followed by the connection's
//  DISCONNECTED. The monitor gives only the router's own endpoint, so the peer's address is
//  read from the connection's descriptor when it is accepted (when the peer closed before that,
//  it is unknown).
void ml_core_receive_monitor (ml_core_t *self)
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
