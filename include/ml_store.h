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

//  The store's schema version: the number of its ordered migrations (core/ml_store_schema.c).
#define ML_STORE_VERSION 6
#include <stdint.h>

typedef struct _ml_store_t ml_store_t;
typedef struct _ml_lease_t ml_lease_t;

//  Open the store and create or upgrade its schema. Returns NULL with a message in error.
ml_store_t *ml_store_new (const char *connection_string, char *error, size_t error_size);

//  Close. Idempotent.
void ml_store_destroy (ml_store_t **self_p);

//  The store's connection (borrowed), for classes that keep their own tables in the store.
ml_db_t *ml_store_db (ml_store_t *self);

//  The core thread's store, which runs a few statements over and over for every firm: on
//  PostgreSQL its prepared statements run by their generic plans (ml_db_generic_plans), and
//  a firm's open items are read from the firm's own partition of the replica, whose name
//  the store learns from the firm's row once (a generic plan of a read of the partitioned
//  table locks every partition at each run: bench/RESULTS.md, session 10). Nothing on
//  SQLite. Returns 0 or -1.
int ml_store_generic_plans (ml_store_t *self);

//  A firm's agent connected: on the core thread's connection (after ml_store_generic_plans),
//  learn the firm's partition and prepare the read of its invoices now, so that its first
//  payment does not wait for that (1.5 ms and three round trips, measured at 1,000 firms).
//  Nothing otherwise; a failure only leaves it to the first payment.
void ml_store_prepare_firm (ml_store_t *self, const char *firm_id);

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

//  A firm's row (firm_id, name, operating_account) as JSON (new), or NULL if unknown or
//  the store failed (ml_store_firm_failed tells which: a store that cannot be reached, as
//  a PostgreSQL store during a restart, must not make a firm "unknown").
json_t *ml_store_firm (ml_store_t *self, const char *firm_id);
bool ml_store_firm_failed (ml_store_t *self);

//  Find the firm of an agent key. Returns 1 found, 0 unknown, -1 error.
int ml_store_firm_by_key (ml_store_t *self, const char *public_key, char *firm_id, size_t size);

//  Start a session for a firm after HELLO. Decides whether a snapshot is needed (no
//  complete replica, another epoch, or a cursor above the agent's high-water), and if so
//  starts a new snapshot generation. Returns 0 or -1.
int ml_store_session_open (ml_store_t *self, const char *firm_id, const ml_msg_t *hello,
                           bool *resync, uint64_t *cursor);

//  Writing a snapshot (the core's ingest thread does it, core/ml_ingest.c): begin a
//  transaction whose commit does not wait for the disk (the replica is not complete until
//  ml_store_snapshot_end commits synchronously), write rows of one or more firms into it,
//  commit (ok) or roll back. The rows are written under the firm's current generation,
//  and the firm's totals are counted once when its snapshot ends. Each returns 0 or -1;
//  ml_store_snapshot_write also -3 when the guard refuses the firm (nothing written).
//  On PostgreSQL (store version 5) there is no transaction: the rows are held and COPYed
//  into the firm's load table (at commit, or every 10,000 rows), which no reader sees;
//  a commit that is not ok drops the rows held.
int ml_store_snapshot_begin (ml_store_t *self);
int ml_store_snapshot_write (ml_store_t *self, const char *firm_id, const ml_item_t *items,
                             size_t count);
int ml_store_snapshot_commit (ml_store_t *self, bool ok);

//  Before a session's first snapshot rows: what snapshots abandoned earlier left is dropped,
//  so that a firm's rows stay within two limits' worth however often its agent starts a
//  snapshot and goes away (an agent is outside input; the store is every firm's). On
//  PostgreSQL the load tables of the firm's earlier generations (each at most a limit's
//  rows, the core's count); on SQLite, where a snapshot writes into the replica, rows of
//  earlier generations once the firm holds more than the limit (the last complete
//  replica's then go too: the snapshot brings them back), in short transactions.
//  Returns 0, -1, or -3 when the guard refuses the firm.
int ml_store_snapshot_prepare (ml_store_t *self, const char *firm_id);

//  The three above for one batch. Returns 0, -1 or -3.
int ml_store_snapshot_rows (ml_store_t *self, const char *firm_id, const ml_msg_t *batch);

//  Finish the snapshot: drop what the snapshot did not carry (rows of earlier generations,
//  among them those of a snapshot whose session ended before SNAPSHOT-END), count the
//  firm's totals, set the cursor, mark the replica complete. The counting is read before
//  the write lock is taken (only the caller writes the firm's replica meanwhile); old rows
//  go in short transactions, and the last, synchronous, transaction writes a few rows.
//  On PostgreSQL: the load table's indexes are built and its totals counted before the lock,
//  and one transaction swaps it in for the firm's partition (the old rows go with it).
//  Returns 0, -1, or -3 when the guard refuses the firm (the replica stays incomplete).
int ml_store_snapshot_end (ml_store_t *self, const char *firm_id, uint64_t cursor);

//  A check run inside every replica write transaction (snapshot rows, snapshot end,
//  changes) once it holds the write lock: false refuses the write (-3). The ingest thread
//  uses it to drop what it still holds of a session that a new HELLO replaced.
typedef bool ml_store_guard_fn (void *arg, const char *firm_id);
void ml_store_set_guard (ml_store_t *self, ml_store_guard_fn *guard, void *arg);

//  The most replica rows (open items) one firm may have, core/max_firm_items: a snapshot
//  carries at most this many (the core counts them), and a change batch that would take
//  the firm past it is refused (counted again after it, in its transaction, only when its
//  upserts could: a firm at its limit still takes updates of what it has). The default, for every
//  store connection until set.
#define ML_STORE_MAX_FIRM_ITEMS 5000000
void ml_store_set_max_firm_items (ml_store_t *self, int64_t max_items);

//  Apply a CHANGES batch. Returns 0, -1 on a database error, -2 when the batch's since is
//  not the stored cursor, -3 when the guard refuses the firm, or -4 when the batch would
//  take the firm's items past the limit above (nothing changed on -2 to -4).
int ml_store_changes (ml_store_t *self, const char *firm_id, const ml_msg_t *batch);

//  The firm's replica cursor. Returns 0 or -1.
int ml_store_cursor (ml_store_t *self, const char *firm_id, uint64_t *cursor);

//  Open invoices of a firm for allocation, filtered by client, matter and/or invoice number
//  (NULL for any), as a JSON array of objects with balance_minor, pending_minor and
//  available_minor, oldest first (new reference), or NULL on error.
json_t *ml_store_open_items (ml_store_t *self, const char *firm_id, const char *client,
                             const char *matter, const char *invoice);
//  Ask ahead (ml_db_prefetch) for what ml_store_open_items with these filters reads.
void ml_store_open_items_prefetch (ml_store_t *self, const char *firm_id, const char *client,
                                   const char *matter, const char *invoice);

//  The same invoices as rows (JSON arrays) of the columns ml_store_item_columns names, in
//  no particular order (sort them with ml_alloc_sort_table), or NULL on error: the form of
//  the payer's listings, which are read far more often than anything else.
extern const char *const ml_store_item_columns[]; //  NULL-terminated
json_t *ml_store_open_item_table (ml_store_t *self, const char *firm_id, const char *client,
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
//  Ask ahead (ml_db_prefetch) for that list of firm_id, with the limit the last listing used
//  (nothing before the first): where a posting is made, for the delivery that follows.
void ml_store_postings_unanswered_prefetch (ml_store_t *self, const char *firm_id);

//  The firms that have postings waiting for a result, read from the postings' counts (a few
//  rows, whatever the number of firms or postings), as a set of firm ids (keys of a new
//  zhashx_t, caller destroys), or NULL on error.
zhashx_t *ml_store_firms_unanswered (ml_store_t *self);

//  Load a posting as a POSTING message (new), or NULL if unknown.
ml_msg_t *ml_store_posting_load (ml_store_t *self, const char *posting_uuid);
//  Ask ahead (ml_db_prefetch) for what ml_store_posting_load of posting_uuid reads.
void ml_store_posting_load_prefetch (ml_store_t *self, const char *posting_uuid);

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

//  Every row of a query as a JSON array of arrays, the values in the query's column order
//  and typed as ml_store_rows types them (new reference), or NULL on error; destroys the
//  query. A listing of many rows is a third of the size and far cheaper to make and to read
//  than the same as objects. The caller names the columns (it wrote the SELECT).
json_t *ml_store_table (ml_db_query_t *query, bool (*integer_column) (const char *name));

//  The first row of a query as ml_store_rows makes it (new reference), or NULL when there is
//  none; sets *failed on a store error.
json_t *ml_store_row (ml_db_query_t *query, bool (*integer_column) (const char *name),
                      bool *failed);

void ml_store_test (bool verbose);

#endif
