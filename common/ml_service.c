/*  ml_service: actors that report their start. See include/ml_service.h. */
#include "ml_service.h"

#include <openssl/crypto.h>

typedef struct {
    zactor_fn *actor;
    void *args;
} s_shim_t;

//  Runs the service, then frees what OpenSSL (under libcurl's SMTP and HTTPS) keeps for this
//  thread, while the thread still runs: left to OpenSSL's exit handler, that state is freed
//  by the main thread and again by this thread's own exit, a race ASan catches.
static void s_shim (zsock_t *pipe, void *args)
{
    s_shim_t shim = *(s_shim_t *)args;
    free (args);
    shim.actor (pipe, shim.args);
    OPENSSL_thread_stop ();
}

zactor_t *ml_service_start (zactor_fn *actor, void *args)
{
    s_shim_t *shim = malloc (sizeof (s_shim_t));
    assert (shim);
    shim->actor = actor;
    shim->args = args;
    zactor_t *service = zactor_new (s_shim, shim);
    if (!service) {
        free (shim);
        return NULL;
    }
    char *report = zstr_recv (service);
    bool started = report && streq (report, "STARTED");
    zstr_free (&report);
    if (!started)
        zactor_destroy (&service);
    return service;
}

void ml_service_ready (zsock_t *pipe, bool started)
{
    zsock_signal (pipe, 0);
    zstr_send (pipe, started ? "STARTED" : "FAILED");
    if (!started) {
        char *command = zstr_recv (pipe);
        zstr_free (&command);
    }
}

static void s_test_service (zsock_t *pipe, void *args)
{
    bool started = *(bool *)args;
    ml_service_ready (pipe, started);
    if (!started)
        return;
    char *command = zstr_recv (pipe);
    zstr_free (&command);
}

void ml_service_test (bool verbose)
{
    printf (" * ml_service: ");
    bool started = true;
    zactor_t *service = ml_service_start (s_test_service, &started);
    assert (service);
    zactor_destroy (&service);
    started = false;
    service = ml_service_start (s_test_service, &started);
    assert (service == NULL);
    zactor_destroy (&service);
    printf ("OK\n");
}
