/*  ml_readers: threads that answer the web API's reading requests beside the core's thread.

    The core's one thread speaks to the agents, writes the replica and the outbox, and runs
    payments. A payer's page (their invoices, the payment form, history, receipts, a link's
    page) only reads the store: it is answered by one of these threads, each with its own
    store connection and its own instances of the classes that read (SQLite in write-ahead
    logging lets readers run beside the writer). The core's thread only looks at the op and
    hands the request over, so a page neither waits for an agent's batch nor delays one.
    Which ops may run here is a column of the ops table (ml_admin_op_reads).

    Framing: the core sends [client][empty][request] on the socket of ml_readers_socket and
    gets back [client][empty][reply], which it forwards to the API socket unchanged.
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

//  The socket to send requests on and to poll for replies (borrowed).
zsock_t *ml_readers_socket (ml_readers_t *self);

//  Hand a request over: client (the API socket's routing frame) and request are sent,
//  both destroyed. Returns 0 or -1.
int ml_readers_send (ml_readers_t *self, zframe_t **client, zframe_t **request);

void ml_readers_test (bool verbose);

#endif
