/*  ml_lease: which core node owns a firm, with a fencing token (docs/multinode.md).

    Several core nodes share one store. Each firm is owned by at most one node at a time
    through a row in firm_lease: the owner's node id, an epoch and an expiry. A node takes a
    firm's lease when it is free or expired (the epoch goes up by one), renews it while it
    serves the firm, and gives it up when it stops cleanly. The expiry only keeps work
    moving when a node dies; what stops two nodes writing the same firm is the epoch: every
    write of a firm's data calls ml_lease_check (or ml_lease_fence) inside its own
    transaction, so a node that was paused past its lease, and lost it, cannot write once
    another node took it.

    Plain SQL that both SQLite and PostgreSQL run: the take-over is a compare-and-set on the
    epoch, and the check is an UPDATE of the lease row that matches only the current owner
    and epoch (on PostgreSQL it locks the row until the writer's commit, so a take-over
    waits for the writes checked under the old epoch; on SQLite BEGIN IMMEDIATE already
    makes the check and the write one step).

    A lease belongs to the thread of the connection it was made with; ml_lease_fence may be
    called from other threads with their own connections (it reads the epochs under a lock).
*/
#ifndef ML_LEASE_H_INCLUDED
#define ML_LEASE_H_INCLUDED

#include "ml_db.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _ml_lease_t ml_lease_t;

//  Whether this node runs a firm's jobs now (Auto-Pay runs, charge resolution): given to the
//  classes that claim jobs, so each firm's are claimed on its owner only (docs/multinode.md).
typedef bool (ml_firm_owned_fn) (void *arg, const char *firm_id);

//  Create the lease table if needed. node: this node's id (core/node); endpoint: where
//  agents reach this node (core/advertise, "" if none: redirects then name no endpoint);
//  lease_ms: how long a lease lasts without renewal. db is borrowed and outlives the lease.
//  Returns NULL with a message in error.
ml_lease_t *ml_lease_new (ml_db_t *db, const char *node, const char *endpoint, int64_t lease_ms,
                          char *error, size_t error_size);

//  Give up every lease held (a clean stop, so another node takes the firms at once), then
//  destroy. Idempotent.
void ml_lease_destroy (ml_lease_t **self_p);

//  This node's id (borrowed).
const char *ml_lease_node (ml_lease_t *self);

//  Take the firm's lease if it is free, expired or ours (renewing it). Returns 1 when this
//  node owns the firm now, 0 when another node holds a live lease (its endpoint, maybe "",
//  copied into owner_endpoint), -1 on a store error. Runs its own transaction.
int ml_lease_acquire (ml_lease_t *self, const char *firm_id, char *owner_endpoint, size_t size);

//  True while this node holds the firm's lease (as it last knew; no store access).
bool ml_lease_owns (ml_lease_t *self, const char *firm_id);

//  Renew every lease this node holds, each only if its epoch is still ours. Returns the
//  firms whose lease was lost (list of strings, caller destroys), or NULL on a store error
//  (the leases are then forgotten once their own expiry passes).
zlistx_t *ml_lease_renew (ml_lease_t *self);

//  Give up one firm's lease (its agent left cleanly). Returns 0 or -1.
int ml_lease_release (ml_lease_t *self, const char *firm_id);

//  Who owns a firm, from the store: 1 a live lease (owner's node and endpoint copied),
//  0 none or expired, -1 error.
int ml_lease_owner (ml_db_t *db, const char *firm_id, char *node, size_t node_size, char *endpoint,
                    size_t endpoint_size);

//  Several nodes forward staff and web requests to a firm's owner (docs/multinode.md): record
//  where this node takes them (core/forward_advertise; "" none) and its CURVE public key
//  (which it serves them under over TCP, and forwards its own under). Returns 0 or -1.
int ml_lease_advertise_forward (ml_lease_t *self, const char *endpoint, const char *public_key);

//  Where node takes forwarded requests, from the store: 1 (endpoint and its key, maybe "",
//  copied), 0 when the node advertises none, -1 on a store error.
int ml_lease_node_forward (ml_db_t *db, const char *node, char *endpoint, size_t endpoint_size,
                           char *public_key, size_t key_size);

//  Whether public_key (Z85) is a core node's forwarding key: 1 (its node id copied when node
//  is not NULL), 0 no, -1 on a store error. The forward socket's handshake handler asks it.
int ml_lease_node_key (ml_db_t *db, const char *public_key, char *node, size_t node_size);

//  Whether this node runs a firm's jobs now (an ml_firm_owned_fn; arg is the lease): true
//  for a firm it owns, and for one that no node serves (its agent is offline everywhere),
//  whose lease it then takes, so that firm's Auto-Pay runs still defer and fail as with one
//  node, its charges still resolve, and its agent, when it comes, is sent here. Another
//  node's live lease is seen by a read, without a write transaction.
bool ml_lease_runs_jobs (void *lease, const char *firm_id);

//  Append to firms (a list that duplicates its strings) each firm whose live lease another
//  node holds: that node, not this one, judges whether the firm's agent is connected.
//  Returns 0 or -1.
int ml_lease_others (ml_lease_t *self, zlistx_t *firms);

//  The fence, inside the caller's transaction (after ml_db_begin, before the firm's writes):
//  1 when node still holds the firm at epoch, 0 when it does not (the caller rolls back and
//  writes nothing), -1 on a store error.
int ml_lease_check (ml_db_t *db, const char *firm_id, const char *node, int64_t epoch);

//  ml_lease_check with this node's id and the epoch it holds for the firm (0 when it holds
//  none), on any connection: for classes and threads writing a firm's data. Thread-safe.
int ml_lease_fence (ml_lease_t *self, ml_db_t *db, const char *firm_id);

void ml_lease_test (bool verbose);

#endif
