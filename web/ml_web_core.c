/*  ml_web_core: the core's API client with a socket pool. See include/ml_web_core.h. */
#include "ml_web_core.h"
#include "ml_log.h"
#include "ml_web_standin.h"

#include <czmq.h>
#include <pthread.h>

struct _ml_web_core_t {
    char *endpoint;
    int timeout_ms;
    pthread_mutex_t mutex; //  guards idle and idle_count
    zsock_t **idle;
    size_t idle_count;
    size_t pool_size;
};

ml_web_core_t *ml_web_core_new (const char *endpoint, int timeout_ms, size_t pool_size)
{
    assert (endpoint && pool_size > 0);
    ml_web_core_t *self = calloc (1, sizeof (ml_web_core_t));
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    self->idle = calloc (pool_size, sizeof (zsock_t *));
    if (!self->endpoint || !self->idle) {
        free (self->endpoint);
        free (self->idle);
        free (self);
        return NULL;
    }
    self->timeout_ms = timeout_ms;
    self->pool_size = pool_size;
    pthread_mutex_init (&self->mutex, NULL);
    return self;
}

void ml_web_core_destroy (ml_web_core_t **self_p)
{
    assert (self_p);
    ml_web_core_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->idle_count; index++)
        zsock_destroy (&self->idle[index]);
    pthread_mutex_destroy (&self->mutex);
    free (self->idle);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

//  A socket from the pool, or a new one connected to the core.
static zsock_t *s_take (ml_web_core_t *self)
{
    zsock_t *socket = NULL;
    pthread_mutex_lock (&self->mutex);
    if (self->idle_count > 0)
        socket = self->idle[--self->idle_count];
    pthread_mutex_unlock (&self->mutex);
    if (socket)
        return socket;
    socket = zsock_new (ZMQ_DEALER);
    if (!socket)
        return NULL;
    zsock_set_linger (socket, 0);
    zsock_set_sndtimeo (socket, self->timeout_ms);
    zsock_set_rcvtimeo (socket, self->timeout_ms);
    zsock_set_rcvhwm (socket, 16);
    if (zsock_connect (socket, "%s", self->endpoint) != 0) {
        zsock_destroy (&socket);
        return NULL;
    }
    return socket;
}

//  Back to the pool after a complete exchange; destroyed when the pool is full.
static void s_give (ml_web_core_t *self, zsock_t **socket_p)
{
    pthread_mutex_lock (&self->mutex);
    if (self->idle_count < self->pool_size) {
        self->idle[self->idle_count++] = *socket_p;
        *socket_p = NULL;
    }
    pthread_mutex_unlock (&self->mutex);
    zsock_destroy (socket_p);
}

json_t *ml_web_core_call (ml_web_core_t *self, json_t *request)
{
    assert (self && request);
    char *text = json_dumps (request, JSON_COMPACT);
    if (!text)
        return NULL;
    zsock_t *socket = s_take (self);
    if (!socket) {
        explicit_bzero (text, strlen (text));
        free (text);
        ml_log (ML_LOG_ERROR, "cannot make a socket to the core");
        return NULL;
    }
    zmsg_t *message = zmsg_new ();
    zmsg_addmem (message, NULL, 0);
    zmsg_addstr (message, text);
    //  Requests carry passwords and session tokens: no copy stays in this process's heap.
    explicit_bzero (text, strlen (text));
    free (text);
    json_t *reply = NULL;
    if (zmsg_send (&message, socket) != 0) {
        zmsg_destroy (&message);
        ml_log (ML_LOG_WARNING, "the core did not take a request within %d ms", self->timeout_ms);
    } else {
        zmsg_t *answer = zmsg_recv (socket);
        if (!answer)
            ml_log (ML_LOG_WARNING, "the core did not answer within %d ms", self->timeout_ms);
        else {
            zframe_t *empty = zmsg_first (answer);
            zframe_t *body = zmsg_next (answer);
            if (zmsg_size (answer) == 2 && zframe_size (empty) == 0 &&
                zframe_size (body) <= ML_WEB_CORE_MAX_REPLY) {
                json_error_t error;
                reply =
                    json_loadb ((const char *)zframe_data (body), zframe_size (body), 0, &error);
                if (reply && !json_is_object (reply))
                    json_decref (reply), reply = NULL;
            }
            if (!reply)
                ml_log (ML_LOG_WARNING, "the core's reply is malformed");
            zmsg_destroy (&answer);
        }
    }
    if (reply)
        s_give (self, &socket);
    else
        zsock_destroy (&socket); //  a late reply must never answer the next request
    return reply;
}

size_t ml_web_core_idle (ml_web_core_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    size_t count = self->idle_count;
    pthread_mutex_unlock (&self->mutex);
    return count;
}

//  The stand-in core's answers (ml_web_standin): its "op" echoed; after a pause that passes
//  the client's timeout when the op is "slow" (a late, stale reply); an array, not an
//  object, when it is "garbage".
static json_t *s_answer (json_t *request)
{
    const char *op = json_string_value (json_object_get (request, "op"));
    if (op && streq (op, "slow"))
        zclock_sleep (400);
    if (op && streq (op, "garbage"))
        return json_pack ("[i, i]", 1, 2);
    return json_pack ("{s:b, s:s}", "ok", 1, "op", op ? op : "");
}

void ml_web_core_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_core: ");
    ml_web_standin_t *core = ml_web_standin_new ("ml_web_core_test", s_answer);
    ml_web_core_t *client = ml_web_core_new (ml_web_standin_endpoint (core), 200, 2);
    assert (client);
    json_t *request = json_pack ("{s:s}", "op", "first");
    json_t *reply = ml_web_core_call (client, request);
    assert (reply && streq (json_string_value (json_object_get (reply, "op")), "first"));
    assert (ml_web_core_idle (client) == 1);
    json_decref (reply);
    json_decref (request);

    //  A timed-out socket is destroyed: its late reply never answers the next request.
    request = json_pack ("{s:s}", "op", "slow");
    assert (ml_web_core_call (client, request) == NULL);
    assert (ml_web_core_idle (client) == 0);
    json_decref (request);
    zclock_sleep (300); //  the fake core sends its late reply now, to a socket that is gone
    request = json_pack ("{s:s}", "op", "next");
    reply = ml_web_core_call (client, request);
    assert (reply && streq (json_string_value (json_object_get (reply, "op")), "next"));
    json_decref (reply);
    json_decref (request);

    //  A reply that is not an object counts as no reply.
    request = json_pack ("{s:s}", "op", "garbage");
    assert (ml_web_core_call (client, request) == NULL);
    json_decref (request);
    ml_web_core_destroy (&client);
    ml_web_core_destroy (&client);

    //  Nothing behind the endpoint: NULL after the timeout, not a hang.
    char nobody[128];
    snprintf (nobody, sizeof nobody, "ipc:///tmp/ml_web_core_nobody_%d.sock", getpid ());
    client = ml_web_core_new (nobody, 100, 2);
    request = json_pack ("{s:s}", "op", "x");
    int64_t start = zclock_mono ();
    assert (ml_web_core_call (client, request) == NULL);
    assert (zclock_mono () - start < 2000);
    json_decref (request);
    ml_web_core_destroy (&client);
    ml_web_standin_destroy (&core);
    printf ("OK\n");
}
