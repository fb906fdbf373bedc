/*  ml_ingest: the replica's writer, a thread beside the core's.

    The core's one thread routes every request (agents, admin and API sockets, the
    readers' replies, the processor) and makes payments. Writing a snapshot there held it
    inside each transaction of thousands of rows, so status and open-items waited up to
    190 ms behind an agent's snapshot. Now the core's thread only decodes an agent's
    SNAPSHOT, SNAPSHOT-END and CHANGES and hands their items over (no copy: the item array
    moves) to this thread, which has its own store connection and writes them:

      - SNAPSHOT rows are taken into a queue and acknowledged at once ("the core has
        them", docs/protocol.md), up to 40,000 rows not yet written; past that the thread
        stops reading, so the agents' windows hold the rest back. The queue is written in
        transactions of up to 25 ms (5,000 rows), commits not waiting for the disk,
        ended early as soon as another connection waits for the write lock;
      - SNAPSHOT-END and CHANGES are answered after their own synchronous commit, in the
        order they came, so their ACKs keep the commit-safe cursor semantics;
      - a HELLO advances the firm's session serial (ml_ingest_session): whatever the thread
        still holds of the earlier session is dropped, checked inside the write transaction
        (ml_store_set_guard), so a new session never sees an old session's write land after
        its own start. After a failure the rest of that session is skipped, not written.

    Writes of the core's thread (payments, sessions) wait for the write lock at most one
    chunk of 100 rows and a commit (ml_db_set_waiting_hook), and SNAPSHOT-END's transaction;
    reads (the reader threads) never wait, in write-ahead logging.
    The core polls ml_ingest_socket and calls ml_ingest_receive for each answer.
*/
#ifndef ML_INGEST_H_INCLUDED
#define ML_INGEST_H_INCLUDED

#include "ml_lease.h"
#include "ml_msg.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _ml_ingest_t ml_ingest_t;

typedef struct {
    char kind;        //  'R' rows taken, 'E' snapshot ended, 'C' changes applied, 'F' failed
    char firm_id[64]; //  whose
    uint64_t batch;   //  the agent's batch number answered ('R', 'E', 'C')
    uint64_t cursor;  //  'E', 'C': the cursor stored
    int rc;           //  0 done; -1 store failure; -2 changes not at the cursor; -3 skipped;
                      //  -4 changes that would take the firm past max_firm_items
    bool current;     //  false: a newer session of the firm began since (ignore the answer)
    char error[256];  //  why, on failure
} ml_ingest_answer_t;

//  Start the thread on its own connection to store (a connection string). With several
//  core nodes, lease is this node's (ml_lease_fence is safe from this thread): every replica
//  write then checks the firm's lease in its transaction; NULL with one node. A change batch
//  that would take a firm past max_firm_items replica rows is refused (-4), and a session's
//  first snapshot batch first drops what the firm's unfinished snapshots left
//  (ml_store_snapshot_prepare). Returns NULL with a message in error when it cannot open the
//  store.
ml_ingest_t *ml_ingest_new (const char *store, ml_lease_t *lease, int max_firm_items, char *error,
                            size_t error_size);

//  Stop the thread after its transaction in progress; what it held unwritten is dropped
//  (the replica is incomplete; the agent sends the snapshot again). Idempotent.
void ml_ingest_destroy (ml_ingest_t **self_p);

//  The socket to poll for answers (borrowed).
zsock_t *ml_ingest_socket (ml_ingest_t *self);

//  A new session of firm_id begins (HELLO): what is queued of its earlier one is dropped.
//  Call before the session is opened in the store.
void ml_ingest_session (ml_ingest_t *self, const char *firm_id);

//  Hand over a SNAPSHOT batch, a SNAPSHOT-END or a CHANGES batch of firm_id's current
//  session. The items move to the thread (message keeps its other fields, no items).
//  Returns 0, or -1 if the thread is gone.
int ml_ingest_send (ml_ingest_t *self, const char *firm_id, ml_msg_t *message);

//  Read one answer (when the socket is readable). Returns 0, or -1 when interrupted.
int ml_ingest_receive (ml_ingest_t *self, ml_ingest_answer_t *answer);

void ml_ingest_test (bool verbose);

#endif
