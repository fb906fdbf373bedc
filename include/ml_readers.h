/*  ml_readers: threads that answer the web API's reading requests beside the core's thread.

    The core's one thread speaks to the agents, writes the replica and the outbox, and runs
    payments. A payer's page (their invoices, the payment form, history, receipts, a link's
    page) only reads the store: it is answered by one of these threads, each with its own
    store connection and its own instances of the classes that read (SQLite in write-ahead
    logging lets readers run beside the writer). The core's thread only looks at the op and
    hands the request over, so a page neither waits for an agent's batch nor delays one.
    Which ops may run here is a column of the ops table (ml_admin_op_reads).

    Each request goes to a reader that said it is free (the load-balancing broker of the
    ZeroMQ guide), so none waits behind a slow one; while all are busy requests wait here
    in order (at most 2,000). The core polls ml_readers_socket and calls ml_readers_receive;
    a reply comes out as [route][client][empty][reply], route "admin" or "api" saying which
    socket the rest goes to.
*/
#ifndef ML_READERS_H_INCLUDED
#define ML_READERS_H_INCLUDED

#include "ml_logins.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct _ml_readers_t ml_readers_t;

typedef struct {
    char store[1024];     //  the store's connection string
    char outbox_key[512]; //  the mail outbox key file (the classes open it)
    char public_url[512]; //  the portal's public URL (links' pages)
    ml_logins_settings_t portal;
} ml_readers_settings_t;

//  Start count reader threads. Returns NULL with a message in error when one cannot open
//  the store.
ml_readers_t *ml_readers_new (const ml_readers_settings_t *settings, size_t count, char *error,
                              size_t error_size);

//  Stop the threads (each finishes the request it is answering). Idempotent.
void ml_readers_destroy (ml_readers_t **self_p);

//  The socket to poll for the readers' messages (borrowed).
zsock_t *ml_readers_socket (ml_readers_t *self);

//  Hand a request over: client (the socket's routing frame) and request are taken. admin:
//  it came on the admin socket and runs as the operator; else on the API socket, as the
//  actor of its session. Returns 0, or -1 when too many wait already (nothing was kept:
//  answer that the core is busy).
int ml_readers_send (ml_readers_t *self, bool admin, zframe_t **client, zframe_t **request);

//  Read one message of a reader (when its socket is readable): a reply to forward to the
//  socket its route names (new; [route][client][empty][reply]), or NULL (a reader said it
//  is free).
zmsg_t *ml_readers_receive (ml_readers_t *self);

void ml_readers_test (bool verbose);

#endif
