/*  ml_group: group commit for the core's thread.

    Every write of the core's thread is a transaction that must be durable before what it
    promises leaves the thread: a reply to a client, a message to an agent (a POSTING, an
    ACK), a processor call. Committed one by one, each waits for its own fsync (about 5 a
    payment), and that, not the CPU, set the payments per second. A round of the core's loop
    serves everything that is waiting on its sockets; between ml_group_begin and ml_group_end
    the store's transactions are savepoints of one transaction (ml_db_group_begin: each still
    fails alone) and whatever the thread sends through ml_group_send is held back. At the end
    the group commits once and then the held messages go, in the order they were made; if the
    commit fails, everything of the round is undone and they are dropped, as if the core had
    stopped before it (the clients ask again, the agents' batches come again, postings are sent
    again by the outbox). Outside a round ml_group_send sends at once.
*/
#ifndef ML_GROUP_H_INCLUDED
#define ML_GROUP_H_INCLUDED

#include "ml_db.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct _ml_group_t ml_group_t;

//  A group over db (the core's store connection, borrowed).
ml_group_t *ml_group_new (ml_db_t *db);
//  Destroy (held messages are dropped). Idempotent.
void ml_group_destroy (ml_group_t **self_p);

//  Start a round: the store's writes are grouped, messages held back.
void ml_group_begin (ml_group_t *self);
//  Send message (taken) on socket: held back during a round, else sent now. Returns 0, or
//  -1 when sent now and the socket refused it (ROUTER_MANDATORY: the peer went away). A
//  note (copied; may be NULL) is kept once the message has really gone (ml_group_sent):
//  what was sent is known only then.
int ml_group_send (ml_group_t *self, zsock_t *socket, zmsg_t **message_p, const char *note);
//  Send message now, in a round too: for what depends on nothing the round wrote.
int ml_group_send_now (ml_group_t *self, zsock_t *socket, zmsg_t **message_p, const char *note);
//  The next note of a message that went (freshly allocated, caller frees), or NULL.
char *ml_group_sent (ml_group_t *self);
//  End the round: commit the group, then send what was held back (0), or drop it (-1: the
//  commit failed and the round's writes are undone).
int ml_group_end (ml_group_t *self);
//  Whether a round is on.
bool ml_group_active (ml_group_t *self);

void ml_group_test (bool verbose);

#endif
