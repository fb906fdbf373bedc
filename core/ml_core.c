/*  ml_core: the payment core service. See include/ml_core.h and docs/protocol.md.
    This file: settings, the actor's init, destroy and loop, and the once-a-second tick; the
    jobs are in ml_core_agents.c, ml_core_zap.c and ml_core_requests.c (ml_core_internal.h). */
#include "ml_core_internal.h"

int ml_core_settings_load (ml_core_settings_t *settings, const char *path, char *error,
                           size_t error_size)
{
    memset (settings, 0, sizeof *settings);
    ml_config_t *config = ml_config_load (path, error, error_size);
    if (!config)
        return -1;
//  Messages of each socket a round of the loop serves at most (ml_group).
#define S_ROUND 64

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
    S_TEXT (forward, "core/forward", "");
    S_TEXT (forward_advertise, "core/forward_advertise", "");
#undef S_TEXT
    settings->lease_seconds = ml_config_int (config, "core/lease_seconds", 10, 2, 3600);
    settings->readers = ml_config_int (config, "core/readers", 2, 0, 16);
    settings->heartbeat_ms = ml_config_int (config, "core/heartbeat_ms", 5000, 100, 600000);
    settings->window = ml_config_int (config, "core/window", 8, 1, 1000);
    settings->redelivery_ms = ml_config_int (config, "core/redelivery_ms", 10000, 100, 3600000);
    settings->max_firm_items =
        ml_config_int (config, "core/max_firm_items", ML_STORE_MAX_FIRM_ITEMS, 1, 1000000000);
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
    if (rc == 0 && *settings->forward && !*settings->node) {
        snprintf (error, error_size,
                  "%s: core/forward needs core/node (only nodes sharing a store forward requests)",
                  path);
        rc = -1;
    } else if (rc == 0 && *settings->forward && strncmp (settings->forward, "tcp://", 6) != 0 &&
               strncmp (settings->forward, "ipc://", 6) != 0) {
        snprintf (error, error_size,
                  "%s: core/forward '%s' must be a tcp:// endpoint (CURVE, other nodes' keys "
                  "only) or an ipc:// socket file",
                  path, settings->forward);
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

//  their new owners.
static void s_lease_tick (ml_core_t *self, int64_t now)
{
    if (!self->lease || now < self->renew_at)
        return;
    self->renew_at = now + (int64_t)self->settings.lease_seconds * 1000 / 3;
    zlistx_t *lost = ml_lease_renew (self->lease);
    for (const char *firm = lost ? zlistx_first (lost) : NULL; firm; firm = zlistx_next (lost)) {
        ml_core_session_t *session = zhashx_lookup (self->sessions, firm);
        if (session) {
            ml_core_search_expire (self, firm);
            ml_core_session_moved (self, session);
        }
    }
    zlistx_destroy (&lost);
}

//  Once a second: forget silent agents, send postings again that waited too long.
static void s_tick (ml_core_t *self)
{
    s_lease_tick (self, zclock_mono ());
    //  Charges whose outcome is unknown are settled by asking the processor again.
    char firm_id[64] = "";
    if (ml_payments_resolve (self->payments, firm_id, sizeof firm_id) > 0 && *firm_id) {
        ml_core_session_t *paid = zhashx_lookup (self->sessions, firm_id);
        if (paid)
            ml_core_deliver (self, paid);
    }
    //  Auto-Pay runs that came due (a run that charged may owe a posting and a mail).
    *firm_id = 0;
    int runs = ml_autopay_tick (self->autopay, firm_id, sizeof firm_id);
    if (*firm_id) {
        ml_core_session_t *paid = zhashx_lookup (self->sessions, firm_id);
        if (paid)
            ml_core_deliver (self, paid);
    }
    if (runs > 0)
        ml_core_poke_mail (self);
    //  Receipts and notices owed for what happened (a sweep, so none is ever lost).
    if (ml_payments_notify (self->payments) > 0)
        ml_core_poke_mail (self);
    //  Counts of log lines that peers caused over their limit.
    ml_log_peer_flush ();
    int64_t now = zclock_mono ();
    //  Postings are delivered (and sent again) only to the firms that have some waiting:
    //  one small read for all of them, not a query per connected firm (1,000 firms cost
    //  the core's thread up to 25 ms a tick, bench/scale.sh). Every firm if it fails.
    zhashx_t *waiting = ml_store_firms_unanswered (self->store);
    zlistx_t *firms = zhashx_keys (self->sessions);
    for (const char *firm = zlistx_first (firms); firm; firm = zlistx_next (firms)) {
        ml_core_session_t *session = zhashx_lookup (self->sessions, firm);
        if (now - session->last_seen > 3 * (int64_t)self->settings.heartbeat_ms) {
            ml_log (ML_LOG_WARNING, "firm %s: agent silent for %lld ms; session closed", firm,
                    (long long)(now - session->last_seen));
            ml_core_search_expire (self, firm);
            if (self->lease) //  the agent went elsewhere, or will greet whoever takes the firm
                ml_lease_release (self->lease, firm);
            zhashx_delete (self->sessions, firm);
        } else if (!waiting || zhashx_lookup (waiting, firm))
            ml_core_deliver (self, session);
    }
    zlistx_destroy (&firms);
    zhashx_destroy (&waiting);
    //  Firms that asked to hear when their agent is away too long (ml_notify). With several
    //  nodes, a firm another node serves is that node's to judge.
    firms = zhashx_keys (self->sessions);
    if (self->lease)
        ml_lease_others (self->lease, firms);
    if (ml_notify_agents (self->store, self->mailer, firms) > 0)
        ml_core_poke_mail (self);
    zlistx_destroy (&firms);
}

void ml_core_poke_mail (ml_core_t *self)
{
    if (!self->mail_sender)
        return;
    zmsg_t *poke = zmsg_new ();
    zmsg_addstr (poke, "SEND");
    ml_group_send (self->group, zactor_sock (self->mail_sender), &poke, NULL);
}

static int s_core_init (ml_core_t *self, zsock_t *pipe, const ml_core_settings_t *settings)
{
    memset (self, 0, sizeof *self);
    self->settings = *settings;
    self->pipe = pipe;
    self->sessions = zhashx_new ();
    self->contacts = ml_contacts_new ();
    zhashx_set_destructor (self->sessions, (zhashx_destructor_fn *)ml_core_session_destroy);
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
    //  The core thread runs a few statements over and over, for every firm (ml_db.h).
    if (ml_store_generic_plans (self->store) != 0) {
        ml_log (ML_LOG_ERROR, "core store: %s", ml_db_error (ml_store_db (self->store))->message);
        return -1;
    }
    self->group = ml_group_new (ml_store_db (self->store));
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
    self->ingest =
        ml_ingest_new (settings->store, self->lease, settings->max_firm_items, error, sizeof error);
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
    self->firms_connected = zlistx_new ();
    zlistx_set_destructor (self->firms_connected, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator (self->firms_connected, (zlistx_duplicator_fn *)strdup);
    zhashx_set_destructor (self->waiting, (zhashx_destructor_fn *)ml_core_waiter_destroy);
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
    ml_autopay_set_asker (self->autopay, ml_core_autopay_ask, self,
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
    ml_core_zap_t zap = {zsock_new (ZMQ_REP), ml_agent_keys_new (settings->agents),
                         settings->store};
    if (!zap.handler || zsock_bind (zap.handler, "inproc://zeromq.zap.01") != 0) {
        ml_log (ML_LOG_ERROR, "cannot start the handshake handler over %s: %s", settings->agents,
                zmq_strerror (errno));
        zsock_destroy (&zap.handler);
        ml_agent_keys_destroy (&zap.keys);
        return -1;
    }
    self->auth = zactor_new (ml_core_zap_actor, &zap);
    assert (self->auth);
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    zsock_set_zap_domain (self->router, ML_CORE_ZAP_DOMAIN);
    zsock_set_curve_server (self->router, 1);
    zcert_apply (self->certificate, self->router);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_maxmsgsize (self->router, ML_MAX_MESSAGE_SIZE);
    zsock_set_linger (self->router, 0);
    zsock_set_sndtimeo (self->router, 0);
    //  Who was refused before the ZAP handler could see them (ml_core_receive_monitor).
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
    if (ml_core_forward_start (self) != 0)
        return -1;
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

static void s_core_destroy (ml_core_t *self)
{
    ml_readers_destroy (&self->readers);
    ml_ingest_destroy (&self->ingest);
    ml_core_forward_stop (self);
    zsock_destroy (&self->api);
    zsock_destroy (&self->admin);
    zactor_destroy (&self->monitor);
    zhashx_destroy (&self->connections);
    zsock_destroy (&self->router);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->certificate);
    if (self->pending) {
        for (ml_core_pending_t *pending = zhashx_first (self->pending); pending;
             pending = zhashx_next (self->pending))
            ml_core_pending_destroy (&pending);
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
    zlistx_destroy (&self->firms_connected);
    ml_payments_destroy (&self->payments);
    zactor_destroy (&self->mail_sender);
    ml_mailer_destroy (&self->mailer);
    ml_processor_destroy (&self->processor);
    ml_payers_destroy (&self->payers);
    ml_lease_destroy (&self->lease); //  a clean stop: other nodes take the firms at once
    ml_group_destroy (&self->group);
    ml_store_destroy (&self->store);
}

void ml_core_actor (zsock_t *pipe, void *args)
{
    ml_core_t core;
    ml_core_t *self = &core;
    if (s_core_init (self, pipe, (const ml_core_settings_t *)args) != 0) {
        s_core_destroy (self);
        ml_service_ready (pipe, false);
        return;
    }
    ml_log (ML_LOG_NOTICE, "core listening for agents on %s, admin on %s", self->settings.endpoint,
            self->settings.admin_endpoint);
    ml_service_ready (pipe, true);
    zpoller_t *poller = zpoller_new (pipe, self->router, self->admin, self->monitor, NULL);
    self->poller = poller;
    if (self->processor_worker)
        zpoller_add (poller, self->processor_worker);
    if (self->readers)
        zpoller_add (poller, ml_readers_socket (self->readers));
    zpoller_add (poller, ml_ingest_socket (self->ingest));
    if (self->api) {
        zpoller_add (poller, self->api);
        ml_log (ML_LOG_NOTICE, "core serving the web API on %s", self->settings.api_endpoint);
    }
    if (self->forward)
        zpoller_add (poller, self->forward);
    self->tick_at = zclock_mono () + 1000;
    while (!self->terminated) {
        int64_t wait =
            ml_core_forward_next_expiry (self, ml_core_search_next_expiry (self, self->tick_at)) -
            zclock_mono ();
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
        //  A round takes up to S_ROUND messages of each, commits their writes at once and
        //  then sends what they answered (ml_group: one fsync for them all).
        ml_group_begin (self->group);
        //  The postings the last round sent are marked delivered in this one.
        for (char *uuid; (uuid = ml_group_sent (self->group)); zstr_free (&uuid))
            ml_store_posting_sent (self->store, uuid);
        for (int count = 0; count < S_ROUND && (zsock_events (self->router) & ZMQ_POLLIN); count++)
            ml_core_receive_agent (self);
        for (int count = 0; count < S_ROUND && (zsock_events (self->admin) & ZMQ_POLLIN); count++)
            ml_core_receive_admin (self, self->admin);
        for (int count = 0; count < S_ROUND && self->api && (zsock_events (self->api) & ZMQ_POLLIN);
             count++)
            ml_core_receive_admin (self, self->api);
        if (self->forward && (zsock_events (self->forward) & ZMQ_POLLIN))
            ml_core_receive_admin (self, self->forward);
        ml_core_forward_receive (self);
        while (self->readers && (zsock_events (ml_readers_socket (self->readers)) & ZMQ_POLLIN))
            ml_core_receive_reader (self);
        while (zsock_events (ml_ingest_socket (self->ingest)) & ZMQ_POLLIN)
            ml_core_receive_ingest (self);
        if (zsock_events (self->monitor) & ZMQ_POLLIN)
            ml_core_receive_monitor (self);
        while (self->processor_worker &&
               (zsock_events (zactor_sock (self->processor_worker)) & ZMQ_POLLIN))
            ml_core_receive_processor (self);
        ml_core_search_expire (self, NULL);
        if (zclock_mono () >= self->tick_at) {
            s_tick (self);
            self->tick_at = zclock_mono () + 1000;
        }
        //  The processor calls of the round go after its commit too (nothing is charged
        //  before the charge is stored).
        ml_payments_release (self->payments, ml_group_end (self->group) == 0);
        //  After the round, outside its transaction and the store's lock, which others
        //  (a snapshot's end) wait for: the statements of the firms that connected.
        for (char *firm; (firm = (char *)zlistx_first (self->firms_connected));
             zlistx_delete (self->firms_connected, zlistx_cursor (self->firms_connected)))
            ml_store_prepare_firm (self->store, firm);
    }
    zpoller_destroy (&poller);
    self->poller = NULL;
    s_core_destroy (self);
    ml_log (ML_LOG_NOTICE, "core stopped");
}

//  Write a core.cfg at path with the required settings and extra lines of the core section.
static void s_test_config (const char *path, const char *directory, const char *extra)
{
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file,
             "core\n    certificate = %s/none\n    agents = %s\n%s"
             "store\n    connection = \"Driver=SQLite3;Database=%s/core.db\"\n"
             "admin\n    endpoint = ipc://%s/admin\n",
             directory, directory, extra, directory, directory);
    fclose (file);
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
    //  Each refused setting, with a message that names it.
    const char *refused[][2] = {
        {"    window = 0\n", "core/window must be"},
        {"    max_firm_items = 0\n", "core/max_firm_items must be"},
        {"    node = \"a b\"\n", "core/node must be"},
        {"    forward = \"tcp://*:7801\"\n", "core/forward needs core/node"},
        {"    node = n-1\n    forward = \"udp://127.0.0.1:7801\"\n", "must be a tcp:// endpoint"}};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        s_test_config (path, directory, refused[index][0]);
        assert (ml_core_settings_load (&settings, path, error, sizeof error) == -1);
        assert (strstr (error, refused[index][1]));
    }
    s_test_config (path, directory, "");
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == 0);
    assert (settings.window == 8 && settings.heartbeat_ms == 5000);
    assert (settings.max_firm_items == ML_STORE_MAX_FIRM_ITEMS);
    assert (!*settings.node && settings.lease_seconds == 10);
    s_test_config (path, directory,
                   "    node = n-1\n    lease_seconds = 3\n    advertise = tcp://127.0.0.1:7800\n"
                   "    forward = \"ipc:///tmp/forward.sock\"\n    max_firm_items = 1000\n");
    assert (ml_core_settings_load (&settings, path, error, sizeof error) == 0);
    assert (streq (settings.node, "n-1") && settings.lease_seconds == 3);
    assert (streq (settings.advertise, "tcp://127.0.0.1:7800"));
    assert (streq (settings.forward, "ipc:///tmp/forward.sock") && !*settings.forward_advertise);
    assert (settings.max_firm_items == 1000);
    //  A core without its certificate refuses to start.
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    zactor_t *actor = ml_service_start (ml_core_actor, &settings);
    assert (actor == NULL);
    ml_log_setup (NULL, saved);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
