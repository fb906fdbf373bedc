/*  ml_contract: the agent's calls into the matter database, one dialect adapter each.

    Each operation of docs/contract.md is one method here. How an operation is called
    (a view with keyset paging on SQLite, a function or procedure on the servers) is the
    adapter's business; what comes back is always the same: items for the link, a posting
    result, a version. Money arrives as integer minor units or exact decimals and never
    passes through a float.
*/
#ifndef ML_CONTRACT_H_INCLUDED
#define ML_CONTRACT_H_INCLUDED

#include "ml_msg.h"
#include "ml_odbc.h"

#include <stdbool.h>
#include <stdint.h>

//  The contract version this agent speaks. Version 2 added reversing postings
//  (docs/contract.md 5.6): "reverses" in apply_posting; version 3 PostgreSQL's search
//  index (5.8), which invoice searches on that dialect read.
#define ML_CONTRACT_VERSION 4

typedef struct _ml_contract_t ml_contract_t;

//  True if the dialect name is one this agent has an adapter for.
bool ml_contract_dialect_known (const char *dialect);

//  Connect to a matter database of the given dialect ("sqlite"). Returns NULL with error
//  filled if the dialect is unknown or the connection fails.
ml_contract_t *ml_contract_new (const char *dialect, const char *connection_string,
                                ml_odbc_error_t *error);

//  Limit how long one statement may run (milliseconds, 0 for no limit), on this
//  connection and on those the contract opens later. A statement over the limit fails
//  with a timeout error. Returns 0 or -1.
int ml_contract_set_timeout (ml_contract_t *self, int timeout_ms);

//  Disconnect and destroy. Idempotent.
void ml_contract_destroy (ml_contract_t **self_p);

//  The last database error (borrowed).
const ml_odbc_error_t *ml_contract_error (ml_contract_t *self);

//  Read the installed contract version and the database's epoch. Returns 0 or -1.
int ml_contract_version (ml_contract_t *self, int *version, char *epoch, size_t epoch_size);

//  If the installed version is not ML_CONTRACT_VERSION, write a message for IT (what to
//  run) into text and return -1; else 0. A database error also returns -1 with its text.
int ml_contract_check (ml_contract_t *self, char *text, size_t text_size, char *epoch,
                       size_t epoch_size);

//  Highest change id now safe to read (commit-safe). Returns 0 or -1.
int ml_contract_high_water (ml_contract_t *self, uint64_t *high_water);

//  Read up to limit open invoices with source id above *after, in source-id order, append
//  them to batch and move *after to the last one. Returns the number of rows read, or -1.
//  A row the link cannot carry (an identifier over 63 bytes) is read, logged and skipped,
//  so batch may grow by fewer than the rows read.
int ml_contract_open_items (ml_contract_t *self, uint64_t *after, size_t limit, ml_msg_t *batch);

//  The same for trust balances (source id is the matter id).
int ml_contract_trust_balances (ml_contract_t *self, uint64_t *after, size_t limit,
                                ml_msg_t *batch);

//  Snapshot reader: every open invoice, then every trust balance, as items. Where the
//  driver streams (PostgreSQL), one query per kind runs on a connection of its own, so its
//  cursor's transaction never meets the postings applied meanwhile; elsewhere (SQLite,
//  MariaDB) it reads short keyset pages. Memory stays bounded either way. Returns 0 or -1.
int ml_contract_snapshot_begin (ml_contract_t *self);

//  Append up to limit items to batch. Returns the rows read (rows the link cannot carry are
//  read, logged and skipped), 0 when the snapshot is complete, or -1 on a database error.
int ml_contract_snapshot_next (ml_contract_t *self, size_t limit, ml_msg_t *batch);

//  Close the snapshot reader (idempotent; also done by begin and destroy).
void ml_contract_snapshot_end (ml_contract_t *self);

//  Read up to limit changes with ids in (since, upto], in id order, appending them to
//  batch. *last is set to the last change id read. Returns the rows read, or -1.
int ml_contract_changes (ml_contract_t *self, uint64_t since, uint64_t upto, size_t limit,
                         ml_msg_t *batch, uint64_t *last);

//  Apply a posting in one transaction keyed by its UUID and fill result (a
//  POSTING-RESULT: status, receipt id, reason, change high-water after commit). A posting
//  applied or rejected before returns its first result and writes nothing. A business
//  rejection is recorded and returned as status "rejected". Returns 0 when result holds a
//  final answer, -1 when the database failed (nothing committed; try again later).
int ml_contract_apply (ml_contract_t *self, const ml_posting_t *posting, ml_msg_t *result);

//  Apply count postings in one transaction, filling results[i] (POSTING-RESULT messages
//  the caller created) for each. Every statement's outcome is checked; if any posting
//  fails (a rejection or an error), the whole transaction is rolled back, so a batch is
//  never half-committed, and the postings are applied again one at a time, each in its own
//  transaction: a bad posting is isolated and rejected with its reason while the rest
//  post. Returns the number of postings with a final answer in results (from the start;
//  fewer than count when the database failed part way: try the rest later).
size_t ml_contract_apply_batch (ml_contract_t *self, ml_posting_t *const *postings, size_t count,
                                ml_msg_t **results);

//  Run a SEARCH (docs/contract.md 5.8) and fill answer, a SEARCH-RESULT the caller made:
//  code, reason, rows in source-id order, and next (where the next page starts, 0 for the
//  last page). Every value is a bound parameter; the SQL text is built only from fixed
//  fragments. The statement may run until the search's deadline at most. Returns 0 when
//  answer holds the answer to send (rows, or a 500/504 failure), -1 when the connection
//  was lost (answer says 503; reconnect).
int ml_contract_search (ml_contract_t *self, const ml_search_t *search, ml_msg_t *answer);

void ml_contract_test (bool verbose);

#endif
