/*  ml_readers: the web API's reading requests on threads of their own (include/ml_readers.h). */
#include "ml_readers.h"

#include "ml_admin.h"
#include "ml_autopay.h"
#include "ml_log.h"
#include "ml_mailer.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_portal_pay.h"
#include "ml_staff.h"
#include "ml_store.h"

#include <assert.h>
#include <sodium.h>

#define S_READERS_MAX 16
//  Requests waiting for a free reader, at most: past it the web is told the core is busy
//  (matterlink-web has a few threads and a timeout, so only a flood gets here).
#define S_QUEUE_MAX 2000

struct _ml_readers_t {
    zsock_t *requests; //  ROUTER: each reader's DEALER connects and says READY when free
    zactor_t *threads[S_READERS_MAX];
    size_t count;
    zlistx_t *idle;    //  routing ids (zframe_t) of readers waiting for work
    zlistx_t *waiting; //  requests (zmsg_t: client, empty, request) for the next free reader
};

//  What one reader thread reads with: its own connection and classes.
typedef struct {
    ml_store_t *store;
    ml_payers_t *payers;
    ml_mailer_t *mailer;
    ml_payments_t *payments;
    ml_autopay_t *autopay;
    ml_logins_t *logins;
    ml_portal_pay_t *portal_pay;
    ml_staff_t *staff;
} s_reader_t;

typedef struct {
    const ml_readers_settings_t *settings;
    char endpoint[64];
    char *error; //  where a thread that cannot start says why (before it signals)
    size_t error_size;
    bool failed;
} s_start_t;

static void s_reader_close (s_reader_t *self)
{
    ml_staff_destroy (&self->staff);
    ml_portal_pay_destroy (&self->portal_pay);
    ml_logins_destroy (&self->logins);
    ml_autopay_destroy (&self->autopay);
    ml_payments_destroy (&self->payments);
    ml_mailer_destroy (&self->mailer);
    ml_payers_destroy (&self->payers);
    ml_store_destroy (&self->store);
}

static int s_reader_open (s_reader_t *self, const ml_readers_settings_t *settings, char *error,
                          size_t error_size)
{
    memset (self, 0, sizeof *self);
    self->store = ml_store_new (settings->store, error, error_size);
    if (self->store)
        self->payers = ml_payers_new (ml_store_db (self->store), error, error_size);
    if (self->payers)
        self->mailer =
            ml_mailer_new (ml_store_db (self->store), settings->outbox_key, error, error_size);
    //  No processor: a reader never charges a card.
    if (self->mailer)
        self->payments =
            ml_payments_new (self->store, self->payers, NULL, self->mailer, error, error_size);
    if (self->payments) {
        ml_payments_set_public_url (self->payments, settings->public_url);
        self->autopay = ml_autopay_new (self->store, self->payers, self->payments, self->mailer,
                                        error, error_size);
    }
    if (self->autopay)
        self->logins = ml_logins_new (self->store, self->payers, self->mailer, &settings->portal,
                                      error, error_size);
    if (self->logins)
        self->portal_pay = ml_portal_pay_new (self->store, self->payers, self->payments,
                                              self->logins, NULL, error, error_size);
    //  Staff sessions are checked here too, so a request answers the same wherever it runs.
    if (self->portal_pay)
        self->staff =
            ml_staff_new (self->store, self->mailer, &settings->portal, error, error_size);
    if (!self->staff) {
        s_reader_close (self);
        return -1;
    }
    return 0;
}

//  Answer one request (the core checked its size and that it is a reading op).
static char *s_answer (s_reader_t *self, bool operator, zframe_t * frame)
{
    json_error_t parse_error;
    json_t *request = json_loadb ((const char *)zframe_data (frame), zframe_size (frame),
                                  JSON_REJECT_DUPLICATES, &parse_error);
    json_t *reply;
    if (!request)
        reply = ml_admin_error ("request is not JSON: %s", parse_error.text);
    else {
        ml_admin_parts_t parts = {self->store,   self->payers, self->payments,   self->mailer,
                                  self->autopay, self->logins, self->portal_pay, self->staff};
        ml_admin_effects_t effects;
        reply = operator? ml_admin_execute (&parts, request, &effects)
                        : ml_admin_api_execute (&parts, request, &effects);
        //  A reading op has no effects for the core's thread; were one ever to ask for
        //  one, its request must not run here.
        if (*effects.deliver_firm || effects.search || json_object_get (reply, "waiting_for")) {
            ml_log (ML_LOG_ERROR, "core readers: an op asked for the core's thread (a bug)");
            ml_msg_destroy (&effects.search);
            json_decref (effects.context);
            json_decref (reply);
            reply = ml_admin_error ("the core could not answer; see its log");
        }
    }
    json_decref (request);
    char *text = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    return text;
}

static void s_reader_actor (zsock_t *pipe, void *args)
{
    s_start_t *start = (s_start_t *)args;
    s_reader_t reader;
    if (s_reader_open (&reader, start->settings, start->error, start->error_size) != 0) {
        start->failed = true;
        zsock_signal (pipe, 1);
        return;
    }
    zsock_t *requests = zsock_new (ZMQ_DEALER);
    assert (requests);
    int connected = zsock_connect (requests, "%s", start->endpoint);
    assert (connected == 0);
    zsock_signal (pipe, 0);
    //  A request goes to a reader that said it is free: none waits behind a slow one.
    zstr_send (requests, "READY");
    zpoller_t *poller = zpoller_new (pipe, requests, NULL);
    assert (poller);
    while (true) {
        zsock_t *which = (zsock_t *)zpoller_wait (poller, -1);
        if (which == pipe || !which)
            break; //  $TERM, or interrupted
        //  client, empty, request: the reply goes back with the same client and empty frame.
        zmsg_t *message = zmsg_recv (requests);
        if (!message)
            continue;
        //  route (admin or API), client, empty, request.
        zframe_t *frame = zmsg_last (message);
        char *text = zmsg_size (message) == 4
                         ? s_answer (&reader, zframe_streq (zmsg_first (message), "admin"), frame)
                         : NULL;
        zmsg_remove (message, frame);
        zframe_destroy (&frame);
        zmsg_addstr (message,
                     text ? text : "{\"ok\":false,\"error\":\"the core could not answer\"}");
        free (text);
        if (zmsg_send (&message, requests) != 0)
            zmsg_destroy (&message);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&requests);
    s_reader_close (&reader);
}

ml_readers_t *ml_readers_new (const ml_readers_settings_t *settings, size_t count, char *error,
                              size_t error_size)
{
    assert (settings && count > 0);
    if (count > S_READERS_MAX)
        count = S_READERS_MAX;
    ml_readers_t *self = calloc (1, sizeof (ml_readers_t));
    assert (self);
    s_start_t start = {settings, "", error, error_size, false};
    snprintf (start.endpoint, sizeof start.endpoint, "inproc://ml-readers-%p", (void *)self);
    self->requests = zsock_new (ZMQ_ROUTER);
    assert (self->requests);
    zsock_set_sndhwm (self->requests, 0);
    zsock_set_rcvhwm (self->requests, 0);
    self->idle = zlistx_new ();
    zlistx_set_destructor (self->idle, (zlistx_destructor_fn *)zframe_destroy);
    self->waiting = zlistx_new ();
    zlistx_set_destructor (self->waiting, (zlistx_destructor_fn *)zmsg_destroy);
    int bound = zsock_bind (self->requests, "%s", start.endpoint);
    assert (bound == 0);
    for (size_t index = 0; index < count; index++) {
        //  zactor_new waits for the thread's signal: by then it has opened its store or
        //  said why not.
        self->threads[index] = zactor_new (s_reader_actor, &start);
        if (!self->threads[index] || start.failed) {
            zactor_destroy (&self->threads[index]);
            ml_readers_destroy (&self);
            return NULL;
        }
        self->count++;
    }
    return self;
}

void ml_readers_destroy (ml_readers_t **self_p)
{
    assert (self_p);
    ml_readers_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->count; index++)
            zactor_destroy (&self->threads[index]);
        zsock_destroy (&self->requests);
        zlistx_destroy (&self->idle);
        zlistx_destroy (&self->waiting);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *ml_readers_socket (ml_readers_t *self)
{
    assert (self);
    return self->requests;
}

//  Give message to a free reader (it takes the message).
static void s_dispatch (ml_readers_t *self, zmsg_t **message)
{
    zframe_t *reader = (zframe_t *)zlistx_detach (self->idle, NULL);
    zmsg_prepend (*message, &reader);
    if (zmsg_send (message, self->requests) != 0)
        zmsg_destroy (message);
}

int ml_readers_send (ml_readers_t *self, bool admin, zframe_t **client, zframe_t **request)
{
    assert (self && client && request);
    if (zlistx_size (self->idle) == 0 && zlistx_size (self->waiting) >= S_QUEUE_MAX) {
        zframe_destroy (client);
        zframe_destroy (request);
        return -1;
    }
    zmsg_t *message = zmsg_new ();
    zmsg_addstr (message, admin ? "admin" : "api");
    zmsg_append (message, client);
    zmsg_addstr (message, "");
    zmsg_append (message, request);
    if (zlistx_size (self->idle))
        s_dispatch (self, &message);
    else
        zlistx_add_end (self->waiting, message);
    return 0;
}

zmsg_t *ml_readers_receive (ml_readers_t *self)
{
    assert (self);
    zmsg_t *message = zmsg_recv (self->requests);
    if (!message)
        return NULL;
    //  The reader is free again: the oldest waiting request goes to it.
    zframe_t *reader = zmsg_pop (message);
    zlistx_add_end (self->idle, reader);
    zmsg_t *next = (zmsg_t *)zlistx_detach (self->waiting, NULL);
    if (next)
        s_dispatch (self, &next);
    if (zmsg_size (message) != 4) { //  READY
        zmsg_destroy (&message);
        return NULL;
    }
    return message;
}

//  Selftest --------------------------------------------------------------------------------

static json_t *s_test_ask_on (ml_readers_t *self, bool admin, const char *request)
{
    zframe_t *client = zframe_new ("client-1", 8), *frame = zframe_new (request, strlen (request));
    assert (ml_readers_send (self, admin, &client, &frame) == 0);
    assert (!client && !frame);
    zpoller_t *poller = zpoller_new (ml_readers_socket (self), NULL);
    zmsg_t *reply = NULL;
    while (!reply) { //  READY messages come first, and give no reply
        assert (zpoller_wait (poller, 10000) == ml_readers_socket (self));
        reply = ml_readers_receive (self);
    }
    zpoller_destroy (&poller);
    assert (zmsg_size (reply) == 4);
    char *route = zmsg_popstr (reply);
    assert (streq (route, admin ? "admin" : "api"));
    zstr_free (&route);
    char *identity = zmsg_popstr (reply), *empty = zmsg_popstr (reply), *text = zmsg_popstr (reply);
    assert (streq (identity, "client-1") && streq (empty, ""));
    json_t *parsed = json_loads (text, 0, NULL);
    assert (parsed);
    zstr_free (&identity);
    zstr_free (&empty);
    zstr_free (&text);
    zmsg_destroy (&reply);
    return parsed;
}

static json_t *s_test_ask (ml_readers_t *self, const char *request)
{
    return s_test_ask_on (self, false, request);
}

void ml_readers_test (bool verbose)
{
    if (verbose)
        printf (" * ml_readers: ");
    char directory[] = "/tmp/ml_readers_test_XXXXXX";
    assert (mkdtemp (directory));
    ml_readers_settings_t settings;
    memset (&settings, 0, sizeof settings);
    ml_logins_settings_defaults (&settings.portal);
    snprintf (settings.store, sizeof settings.store, "sqlite:%s/core.db", directory);
    snprintf (settings.outbox_key, sizeof settings.outbox_key, "%s/outbox.key", directory);
    snprintf (settings.public_url, sizeof settings.public_url, "http://127.0.0.1:1");
    char error[600] = "";
    //  A store that cannot be opened: no readers, and the reason.
    ml_readers_settings_t broken = settings;
    snprintf (broken.store, sizeof broken.store, "sqlite:%s/missing/core.db", directory);
    assert (!ml_readers_new (&broken, 2, error, sizeof error));
    assert (strstr (error, "cannot open"));

    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    ml_readers_t *readers = ml_readers_new (&settings, 3, error, sizeof error);
    if (!readers)
        fprintf (stderr, "ml_readers: %s\n", error);
    assert (readers);
    //  A reading op with a session that is not live, and a link nobody made: the same
    //  answers the core thread gives (the ops table decides, wherever it runs).
    json_t *reply = s_test_ask (readers, "{\"op\": \"portal-invoices\", \"session\": "
                                         "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
    assert (json_is_true (json_object_get (reply, "session_ended")));
    json_decref (reply);
    reply = s_test_ask (readers, "{\"op\": \"link-view\", \"token\": \"0123456789abcdef\"}");
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    //  Many at once are all answered, each to its client.
    for (int round = 0; round < 20; round++) {
        reply = s_test_ask (readers, "{\"op\": \"portal-session\"}");
        assert (streq (json_string_value (json_object_get (reply, "error")), "not found"));
        json_decref (reply);
    }
    //  From the admin socket a request runs as the operator, and its reply says so.
    reply = s_test_ask_on (readers, true, "{\"op\": \"postings\"}");
    assert (json_is_true (json_object_get (reply, "ok")) &&
            json_array_size (json_object_get (reply, "postings")) == 0);
    json_decref (reply);
    reply = s_test_ask (readers, "{\"op\": \"postings\"}");
    assert (streq (json_string_value (json_object_get (reply, "error")), "not found"));
    json_decref (reply);
    //  Bad JSON (the core never hands it over, but a reader must not trip on it).
    reply = s_test_ask (readers, "{\"op\": ");
    assert (strstr (json_string_value (json_object_get (reply, "error")), "not JSON"));
    json_decref (reply);
    ml_readers_destroy (&readers);
    ml_readers_destroy (&readers);
    ml_log_setup (NULL, saved);

    //  Which ops read: the table says so.
    assert (ml_admin_op_reads ("portal-invoices") && ml_admin_op_reads ("link-view"));
    assert (!ml_admin_op_reads ("portal-pay") && !ml_admin_op_reads ("link-pay-page"));
    assert (!ml_admin_op_reads ("status") && !ml_admin_op_reads (NULL));
    assert (!ml_admin_op_reads ("no-such-op"));

    char command[512];
    snprintf (command, sizeof command, "rm -rf %s", directory);
    assert (system (command) == 0);
    if (verbose)
        printf ("OK\n");
}
