/*  ml_core_requests: the core's admin and API sockets (routing requests to the reader threads
    or the admin ops), the searches relayed to agents, and the requests waiting for the
    processor's worker. Part of the core actor (ml_core_internal.h). */
#include "ml_core_internal.h"

void ml_core_pending_destroy (ml_core_pending_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->client);
        json_decref ((*self_p)->context);
        free (*self_p);
        *self_p = NULL;
    }
}

ml_core_waiter_t *ml_core_waiter_new (zsock_t *socket, zframe_t *client)
{
    ml_core_waiter_t *self = calloc (1, sizeof (ml_core_waiter_t));
    assert (self);
    self->socket = socket;
    self->client = zframe_dup (client);
    return self;
}

void ml_core_waiter_destroy (ml_core_waiter_t **self_p)
{
    if (*self_p) {
        zframe_destroy (&(*self_p)->client);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Admin API ---------------------------------------------------------------------------------

//  Reply to a client of socket (admin or API: routing id, empty delimiter, body).
void ml_core_socket_reply (ml_core_t *self, zsock_t *socket, zframe_t *client, json_t *reply)
{
    char *text = json_dumps (reply, JSON_COMPACT);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &(zframe_t *){zframe_dup (client)});
    zmsg_addstr (out, "");
    zmsg_addstr (out, text ? text : "{\"ok\":false,\"error\":\"reply too large\"}");
    free (text);
    ml_group_send (self->group, socket, &out, NULL); //  lost if the client went away
}

//  Send a search to a firm's agent and remember who waits for it. Returns NULL when sent,
//  else the error reply to give at once: an agent that is not connected makes no one wait.
static json_t *s_search_send (ml_core_t *self, zsock_t *socket, zframe_t *client,
                              const char *firm_id, ml_msg_t *search, json_t *context)
{
    ml_core_session_t *session = zhashx_lookup (self->sessions, firm_id);
    char node[64] = "", endpoint[256] = "";
    if ((!session || session->state == ML_CORE_NONE) && self->lease &&
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
    if (!session || session->state == ML_CORE_NONE) {
        json_decref (context);
        return ml_admin_error ("firm %s's agent is not connected, so its matter database cannot "
                               "be searched now (see 'matterlink status')",
                               firm_id);
    }
    search->request_id = ++self->next_request_id;
    if (ml_core_send_to (self, session->routing, search) != 0) {
        json_decref (context);
        return ml_admin_error ("firm %s's agent cannot be reached now; try again shortly", firm_id);
    }
    ml_core_pending_t *pending = calloc (1, sizeof (ml_core_pending_t));
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
void ml_core_search_answered (ml_core_t *self, ml_core_session_t *session, ml_msg_t *answer)
{
    char key[24];
    snprintf (key, sizeof key, "%llu", (unsigned long long)answer->request_id);
    ml_core_pending_t *pending = zhashx_lookup (self->pending, key);
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
        ml_core_pending_destroy (&pending);
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
        ml_core_socket_reply (self, pending->socket, pending->client, reply);
        json_decref (reply);
    }
    ml_core_pending_destroy (&pending);
}

//  Give up on searches whose deadline passed, or whose firm's session ended (firm_id set).
void ml_core_search_expire (ml_core_t *self, const char *firm_id)
{
    int64_t now = zclock_mono ();
    zlistx_t *keys = zhashx_keys (self->pending);
    for (const char *key = zlistx_first (keys); key; key = zlistx_next (keys)) {
        ml_core_pending_t *pending = zhashx_lookup (self->pending, key);
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
            ml_core_socket_reply (self, pending->socket, pending->client, reply);
        json_decref (reply);
        zhashx_delete (self->pending, key);
        ml_core_pending_destroy (&pending);
    }
    zlistx_destroy (&keys);
}

//  Auto-Pay's question for a firm's live balances (ml_autopay_ask_fn): a search like an
//  admin client's, whose answer goes to ml_autopay_live. Returns -1 if the agent is offline.
int ml_core_autopay_ask (void *arg, const char *firm_id, ml_msg_t *search, const json_t *context)
{
    ml_core_t *self = (ml_core_t *)arg;
    ml_core_session_t *session = zhashx_lookup (self->sessions, firm_id);
    if (!session || session->state == ML_CORE_NONE)
        return -1;
    search->request_id = ++self->next_request_id;
    if (ml_core_send_to (self, session->routing, search) != 0)
        return -1;
    ml_core_pending_t *pending = calloc (1, sizeof (ml_core_pending_t));
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
int64_t ml_core_search_next_expiry (ml_core_t *self, int64_t fallback)
{
    for (ml_core_pending_t *pending = zhashx_first (self->pending); pending;
         pending = zhashx_next (self->pending))
        if (pending->expires < fallback)
            fallback = pending->expires;
    return fallback;
}

//  Send the replies made for requests that waited for the processor's worker, each on the
//  socket its request came from. A payer (the API socket) sees only what a payer may see of
//  a payment.
void ml_core_send_ready (ml_core_t *self)
{
    char id[160];
    json_t *reply;
    //  A portal payment that waited for its card's token goes on: it may now wait for its
    //  charges (the same client, under the payment's id), or be answered.
    while ((reply = ml_portal_pay_ready (self->portal_pay, id, sizeof id))) {
        ml_core_waiter_t *waiter = zhashx_lookup (self->waiting, id);
        const char *next = json_string_value (json_object_get (reply, "waiting_for"));
        if (waiter && next) {
            ml_core_waiter_t *again = ml_core_waiter_new (waiter->socket, waiter->client);
            again->payer = waiter->payer;
            zhashx_update (self->waiting, next, again);
        } else if (waiter)
            ml_core_socket_reply (self, waiter->socket, waiter->client, reply);
        zhashx_delete (self->waiting, id);
        json_decref (reply);
    }
    while ((reply = ml_payments_ready (self->payments, id, sizeof id))) {
        ml_core_waiter_t *waiter = zhashx_lookup (self->waiting, id);
        if (waiter && waiter->payer)
            reply = ml_portal_pay_public (reply);
        if (waiter)
            ml_core_socket_reply (self, waiter->socket, waiter->client, reply);
        zhashx_delete (self->waiting, id);
        json_decref (reply);
    }
}

//  socket: the admin socket, or the API socket (the request then runs as a payer or
//  anonymous).
//  api: it came on the API socket (or was forwarded from another node's); forwarded: it came
//  from another node, which did not serve the firm (docs/multinode.md).
static json_t *s_admin_request (ml_core_t *self, zsock_t *socket, zframe_t *client, zframe_t *frame,
                                bool api, bool forwarded)
{
    if (zframe_size (frame) > ML_ADMIN_MAX_REQUEST)
        return json_pack ("{s:b, s:s}", "ok", 0, "error",
                          "a request is one JSON frame of at most 64 KiB");
    json_error_t parse_error;
    json_t *parsed = json_loadb ((const char *)zframe_data (frame), zframe_size (frame),
                                 JSON_REJECT_DUPLICATES, &parse_error);
    if (!parsed) {
        //  (jansson's text may quote the input: ml_admin_error masks a card number in it.)
        return ml_admin_error ("request is not JSON: %s (at byte %d)", parse_error.text,
                               parse_error.position);
    }
    ml_admin_effects_t effects;
    ml_admin_parts_t parts = {self->store,   self->payers, self->payments,   self->mailer,
                              self->autopay, self->logins, self->portal_pay, self->staff};
    json_t *reply = !api        ? ml_admin_execute (&parts, parsed, &effects)
                    : forwarded ? ml_admin_api_execute_forwarded (&parts, parsed, &effects)
                                : ml_admin_api_execute (&parts, parsed, &effects);
    //  A request may have queued mail (a payment link): the sender looks now.
    ml_core_poke_mail (self);
    json_t *op = json_object_get (parsed, "op");
    //  Add what only the running core knows: which agents are connected now.
    if (reply && json_is_string (op) && streq (json_string_value (op), "status")) {
        size_t index;
        json_t *firm;
        json_array_foreach (json_object_get (reply, "firms"), index, firm)
        {
            ml_core_session_t *session = zhashx_lookup (
                self->sessions, json_string_value (json_object_get (firm, "firm_id")));
            json_object_set_new (firm, "agent_online",
                                 json_boolean (session && session->state != ML_CORE_NONE));
            if (session)
                json_object_set_new (firm, "snapshot_rows",
                                     json_integer ((json_int_t)session->snapshot_rows));
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
        ml_core_session_t *session = zhashx_lookup (self->sessions, effects.deliver_firm);
        if (session)
            ml_core_deliver (self, session);
    }
    char owner[64];
    if (effects.search && !forwarded &&
        ml_core_forward_owner (self, effects.search_firm, owner, sizeof owner)) {
        //  Another node serves the firm: the request goes there as it came, and the owner
        //  checks its actor and runs it (its reply is relayed by ml_core_forward_receive).
        reply =
            ml_core_forward (self, socket, client, frame, api, effects.search_firm, owner,
                             json_integer_value (json_object_get (effects.context, "deadline_ms")));
        json_decref (effects.context);
        ml_msg_destroy (&effects.search);
    } else if (effects.search) {
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
        ml_core_send_ready (self);
        ml_core_session_t *paid = zhashx_lookup (self->sessions, effects.deliver_firm);
        if (paid)
            ml_core_deliver (self, paid);
    }
    //  A request waiting for the processor's worker is answered on its own socket when its
    //  reply is made (ml_core_send_ready).
    const char *waiting = json_string_value (json_object_get (reply, "waiting_for"));
    if (waiting) {
        //  Staff on the API socket (a refund, a payment) get the whole reply, as the operator.
        ml_core_waiter_t *waiter = ml_core_waiter_new (socket, client);
        waiter->payer = api && !json_object_get (parsed, "staff_session");
        zhashx_update (self->waiting, waiting, waiter);
        json_decref (reply);
        reply = NULL;
    }
    json_decref (parsed);
    return reply;
}

//  Answers taken from the processor's worker at a time.
#define S_ANSWERS 64

//  The processor's worker answered calls (those waiting, up to S_ANSWERS): what recording
//  them reads is read for all at once (ml_payments_prepare); then each is recorded, a
//  posting it made delivered, and the replies of requests that were waiting for it sent.
void ml_core_receive_processor (ml_core_t *self)
{
    ml_processor_call_t *calls[S_ANSWERS];
    size_t count = 0;
    while (count < S_ANSWERS && (zsock_events (self->processor_worker) & ZMQ_POLLIN)) {
        char *command = NULL;
        void *call = NULL;
        if (zsock_recv (self->processor_worker, "sp", &command, &call) != 0)
            break;
        if (command && streq (command, "DONE") && call)
            calls[count++] = (ml_processor_call_t *)call;
        zstr_free (&command);
    }
    ml_payments_prepare (self->payments, calls, count);
    for (size_t index = 0; index < count; index++) {
        char firm_id[64] = "";
        if (ml_portal_pay_owns (self->portal_pay, calls[index]))
            ml_portal_pay_completed (self->portal_pay, calls[index], firm_id, sizeof firm_id);
        else
            ml_payments_completed (self->payments, calls[index], firm_id, sizeof firm_id);
        ml_core_session_t *paid = *firm_id ? zhashx_lookup (self->sessions, firm_id) : NULL;
        if (paid)
            ml_core_deliver (self, paid);
        ml_core_send_ready (self);
    }
}

//  True when a request (on the admin or the API socket) is a reading op that a reader
//  thread answers: then it has been handed over (client and frame are taken).
static bool s_hand_to_reader (ml_core_t *self, zsock_t *socket, zframe_t **client, zframe_t **frame)
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
        ml_core_socket_reply (self, socket, kept, busy);
        json_decref (busy);
    }
    zframe_destroy (&kept);
    return true;
}

//  A reader answered: the reply goes to the socket the request came on.
void ml_core_receive_reader (ml_core_t *self)
{
    zmsg_t *reply = ml_readers_receive (self->readers);
    char *route = reply ? zmsg_popstr (reply) : NULL;
    zsock_t *socket = route && streq (route, "admin") ? self->admin : self->api;
    zstr_free (&route);
    if (reply && socket && zmsg_send (&reply, socket) != 0)
        zmsg_destroy (&reply); //  the client went away
    zmsg_destroy (&reply);
}

void ml_core_receive_admin (ml_core_t *self, zsock_t *socket)
{
    zmsg_t *request = zmsg_recv (socket);
    if (!request)
        return;
    //  From a REQ client: routing id, empty delimiter, then the request.
    zframe_t *client = zmsg_pop (request);
    zframe_t *delimiter = zmsg_pop (request);
    //  From another node (the forward socket): which of its sockets the request came to
    //  ("admin" or "api") before the request. It runs here as it would have there, and is
    //  never forwarded again.
    bool forwarded = socket == self->forward;
    bool api = socket == self->api;
    if (forwarded) {
        char *kind = zmsg_popstr (request);
        api = kind && streq (kind, "api");
        if (!kind || (!api && !streq (kind, "admin")))
            zmsg_destroy (&request); //  answered as a malformed request below
        zstr_free (&kind);
        if (!request)
            request = zmsg_new ();
    }
    if (!forwarded && client && delimiter && zframe_size (delimiter) == 0 &&
        zmsg_size (request) == 1) {
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
            reply = s_admin_request (self, socket, client, zmsg_first (request), api, forwarded);
        //  No reply yet means a search is on its way to an agent (or to the firm's owner).
        if (reply) {
            ml_core_socket_reply (self, socket, client, reply);
            json_decref (reply);
        }
    }
    zframe_destroy (&client);
    zframe_destroy (&delimiter);
    zmsg_destroy (&request);
}
