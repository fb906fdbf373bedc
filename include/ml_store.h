/*  ml_store: the core's own store (an SQLite file, reached natively through ml_db).

    It holds the firms and their agents' keys, the replica of each firm's open items and
    trust balances with the change cursor it was built to, and the postings outbox with
    each posting's lines and its append-only history. Every method that writes does so in
    one transaction: either all of it is stored or none of it.
*/
#ifndef ML_STORE_H_INCLUDED
#define ML_STORE_H_INCLUDED

#include "ml_msg.h"
#include "ml_db.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _ml_store_t ml_store_t;
typedef struct _ml_lease_t ml_lease_t;

//  Open the store and create or upgrade its schema. Returns NULL with a message in error.
ml_store_t *ml_store_new (const char *connection_string, char *error, size_t error_size);

//  Close. Idempotent.
void ml_store_destroy (ml_store_t **self_p);

//  The store's connection (borrowed), for classes that keep their own tables in the store.
ml_db_t *ml_store_db (ml_store_t *self);

//  Several nodes on one store (docs/multinode.md): from now on every write of a firm's replica,
//  session or posting results checks inside its transaction that this node holds the firm's
//  lease (ml_lease_fence), and writes nothing when it does not. lease is borrowed (NULL: one
//  node, no check).
void ml_store_set_lease (ml_store_t *self, ml_lease_t *lease);

//  The fence for other classes' firm-scoped write transactions on the store's connection:
//  call it right after ml_db_begin. Returns 1 go on (also with no lease set), 0 this node
//  does not hold the firm (roll back, write nothing), -1 store error.
int ml_store_fence (ml_store_t *self, const char *firm_id);

//  The last database error (borrowed).
const ml_db_error_t *ml_store_error (ml_store_t *self);

//  Register a firm and its agent's public key (Z85). Returns 0, or -1 (duplicate firm or
//  key, or a database error).
int ml_store_firm_add (ml_store_t *self, const char *firm_id, const char *name,
                       const char *public_key, const char *operating_account);

//  A firm's row (firm_id, name, operating_account) as JSON (new), or NULL if unknown.
json_t *ml_store_firm (ml_store_t *self, const char *firm_id);

//  Find the firm of an agent key. Returns 1 found, 0 unknown, -1 error.
int ml_store_firm_by_key (ml_store_t *self, const char *public_key, char *firm_id, size_t size);

//  Start a session for a firm after HELLO. Decides whether a snapshot is needed (no
//  complete replica, another epoch, or a cursor above the agent's high-water), and if so
//  starts a new snapshot generation. Returns 0 or -1.
int ml_store_session_open (ml_store_t *self, const char *firm_id, const ml_msg_t *hello,
                           bool *resync, uint64_t *cursor);

//  Take a snapshot batch for the current generation. The rows are kept and written 10,000
//  at a time, and the last of them by ml_store_snapshot_end, so they are durable when the
//  snapshot ends (a snapshot that does not end is sent again whole). Returns 0 or -1.
int ml_store_snapshot_rows (ml_store_t *self, const char *firm_id, const ml_msg_t *batch);

//  Write the snapshot rows kept so far now. Returns 0 or -1.
int ml_store_snapshot_flush (ml_store_t *self);

//  Forget the rows kept of firm_id's snapshot (its session ended before SNAPSHOT-END).
void ml_store_snapshot_drop (ml_store_t *self, const char *firm_id);

//  Finish the snapshot: drop what the snapshot did not carry, set the cursor. 0 or -1.
int ml_store_snapshot_end (ml_store_t *self, const char *firm_id, uint64_t cursor);

//  Apply a CHANGES batch. Returns 0, -1 on a database error, or -2 when the batch's
//  since is not the stored cursor (nothing changed).
int ml_store_changes (ml_store_t *self, const char *firm_id, const ml_msg_t *batch);

//  The firm's replica cursor. Returns 0 or -1.
int ml_store_cursor (ml_store_t *self, const char *firm_id, uint64_t *cursor);

//  Open invoices of a firm for allocation, filtered by client, matter and/or invoice number
//  (NULL for any), as a JSON array of objects with balance_minor, pending_minor and
//  available_minor, oldest first (new reference), or NULL on error.
json_t *ml_store_open_items (ml_store_t *self, const char *firm_id, const char *client,
                             const char *matter, const char *invoice);

//  What the replica knows of a matter: {"client_number", "trust_currency",
//  "trust_balance_minor"} (the trust fields null when it has no trust ledger), an empty
//  object when the replica does not know the matter, NULL on error. New reference.
json_t *ml_store_matter (ml_store_t *self, const char *firm_id, const char *matter_number);

//  Write a new posting to the outbox (state pending) with its lines and a history entry.
//  Fills created_at, and posting_uuid unless the caller chose one (a caller that must
//  create a posting at most once chooses and stores its UUID first). Returns 0 or -1.
int ml_store_posting_create (ml_store_t *self, const char *firm_id, ml_posting_t *posting,
                             const char *source);

//  The same inside the caller's transaction (no begin, no commit), for a caller that
//  records the posting together with what caused it. Returns 0 or -1.
int ml_store_posting_insert (ml_store_t *self, const char *firm_id, ml_posting_t *posting,
                             const char *source);

//  Hold lines against the balance (inside the caller's transaction) for a payment whose
//  outcome is not final yet, such as a card charge: held invoice lines count in
//  pending_minor (ml_store_open_items) until released. hold_key names the holder (a
//  charge's key). Returns 0 or -1.
int ml_store_hold_add (ml_store_t *self, const char *firm_id, const char *hold_key,
                       const ml_line_t *lines, size_t count);

//  Release every line held under hold_key, inside the caller's transaction (the one that
//  records the outcome, so the balance is never free between the two). Returns 0 or -1.
int ml_store_hold_release (ml_store_t *self, const char *hold_key);

//  Append an entry to a posting's history, inside the caller's transaction. Returns 0 or -1.
int ml_store_posting_note (ml_store_t *self, const char *posting_uuid, const char *status,
                           const char *detail);

//  Postings of a firm waiting for a result (pending or delivered), oldest first, at most
//  limit, as a list of UUID strings (caller destroys the list).
zlistx_t *ml_store_postings_unanswered (ml_store_t *self, const char *firm_id, size_t limit);

//  Load a posting as a POSTING message (new), or NULL if unknown.
ml_msg_t *ml_store_posting_load (ml_store_t *self, const char *posting_uuid);

//  Record that a posting was sent (pending becomes delivered). Returns 0 or -1.
int ml_store_posting_sent (ml_store_t *self, const char *posting_uuid);

//  Record a POSTING-RESULT from firm_id's agent. Returns 1 recorded, 0 ignored (unknown
//  posting, another firm's, or already final), -1 on error.
int ml_store_posting_result (ml_store_t *self, const char *firm_id, const ml_msg_t *result);

//  Put a final posting back to be delivered again (the agent answers with the stored
//  result). Returns 1 done, 0 unknown, -1 error.
int ml_store_posting_resend (ml_store_t *self, const char *posting_uuid);

//  Reports as JSON (new references), or NULL on error.
json_t *ml_store_status (ml_store_t *self);
json_t *ml_store_postings (ml_store_t *self, const char *firm_id, const char *status, int limit);
json_t *ml_store_posting (ml_store_t *self, const char *posting_uuid);

//  Helpers for classes that keep tables in the store.
//  Create a class's tables in the store: run statements (CREATE ... IF NOT EXISTS) in one
//  transaction. Returns 0, or -1 with "cannot create the WHAT: reason" in error.
int ml_store_schema (ml_db_t *db, const char *const *statements, size_t count, const char *what,
                     char *error, size_t error_size);

//  A new random UUID, lower-case canonical text (37 bytes with the terminator).
void ml_store_uuid (char *buf, size_t size);

//  The current UTC time as the store writes it: YYYY-MM-DDTHH:MM:SS.mmmZ.
void ml_store_now (char *buf, size_t size);

//  Every row of a query as a JSON array of objects named by column (new reference), or
//  NULL on error; destroys the query (NULL in gives NULL out). Columns for which
//  integer_column (name) is true become JSON integers, the rest text; SQL NULL is null.
json_t *ml_store_rows (ml_db_query_t *query, bool (*integer_column) (const char *name));

//  The first row of a query as ml_store_rows makes it (new reference), or NULL when there is
//  none; sets *failed on a store error.
json_t *ml_store_row (ml_db_query_t *query, bool (*integer_column) (const char *name),
                      bool *failed);

void ml_store_test (bool verbose);

#endif
