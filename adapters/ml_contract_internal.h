/*  ml_contract's pieces share these (adapters only): the dialect table's shape, the object,
    and the helpers one piece keeps and another uses. */
#ifndef ML_CONTRACT_INTERNAL_H_INCLUDED
#define ML_CONTRACT_INTERNAL_H_INCLUDED

#include "ml_contract.h"

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  How one dialect calls each operation. Every statement returns the columns that
//  docs/contract.md gives for the operation, in that order.
typedef struct {
    const char *name;
    const char *version;        //  () -> contract_version, db_epoch
    const char *open_items;     //  (after, limit) -> item columns
    const char *trust_balances; //  (after, limit) -> item columns
    const char *high_water;     //  () -> high_water
    const char *changes;        //  (since, upto, limit) -> change_id, op, item columns
    const char *apply;          //  (posting json)
    const char *result;         //  (posting uuid) -> posting_uuid, status, receipt_id, reason
    const char *reject;         //  (posting uuid, reason)
    //  Where the driver streams a whole result, the snapshot reads each kind with one query
    //  (no order needed, so the server may hash-join); NULL where it must page.
    const char *stream_open_items;
    const char *stream_trust_balances;
    //  How the session's statement time limit is set (SQLite has none: its busy Timeout
    //  lives in the connection string).
    enum {
        ML_CONTRACT_NO_LIMIT,
        ML_CONTRACT_POSTGRESQL_LIMIT,
        ML_CONTRACT_MARIADB_LIMIT,
        ML_CONTRACT_SQLSERVER_LIMIT
    } time_limit;
    //  Set-based batch apply where the contract has it, NULL elsewhere: (JSON array of
    //  postings) and (JSON array of uuids) -> posting_uuid, status, receipt_id, reason.
    const char *apply_many;
    const char *results_many;
    //  Search (docs/contract.md 5.8): a scope list membership test of a column against a
    //  JSON array parameter, and the row limit clause.
    const char *search_in_list;
    const char *search_limit;
    //  Session settings for the length of one search, and how to undo them (NULL: none).
    const char *search_begin;
    const char *search_end;
    //  Where the contract keeps a search index of the open invoices (docs/contract.md 5.8),
    //  the view that invoice searches select their ids from; NULL: they read ml_open_items.
    const char *search_keys;
    //  SQLite's LOWER() and LIKE fold ASCII letters only, so "MÜLLER" would not find
    //  "Müller": there the search text becomes a GLOB pattern with each letter's case forms
    //  as a class ("[mM][üÜ]..."), which compares whole code points (docs/contract.md 5.8).
    bool search_by_glob;
    //  Where the contract has the search views of version 4 (docs/contract.md 5.8: SQLite,
    //  MariaDB), a criterion first finds the matching clients, matters or invoices there and
    //  the search reads only their items by id: as "source_id IN (...)" (SQLite's planner
    //  reads the ids in order), or as a derived table of ids joined first (MariaDB's would
    //  walk the item view in id order, probing the subquery, when it misjudges a LIKE).
    //  Case-folded number keys (*_number_key) make exact and prefix number searches index
    //  ranges.
    enum { ML_CONTRACT_NO_VIEWS, ML_CONTRACT_VIEWS_IN, ML_CONTRACT_VIEWS_HITS } search_views;
} ml_contract_dialect_t;

#define ML_CONTRACT_ITEM_COLUMNS                                                                   \
    "item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name, "   \
    "matter_number, matter_description, currency, total_minor, balance_minor, status"

struct _ml_contract_t {
    const ml_contract_dialect_t *dialect;
    ml_odbc_t *odbc;
    char *connection_string; //  kept to open the snapshot stream's own connection
    //  Snapshot reader: phase 0 invoices, 1 trust balances, 2 done.
    int phase;
    uint64_t after;         //  keyset position when paging
    ml_odbc_t *stream_odbc; //  streaming: its own connection, so posting transactions on the
    ml_query_t *stream;     //  main one never end the stream's implicit transaction
    bool stream_failed;     //  the last error came from the stream connection
    int timeout_ms;         //  statement time limit, 0 for none
    locale_t utf8;          //  C.UTF-8's case tables, for search patterns (search_by_glob)
};

//  A statement being built: its SQL text and the values bound to its parameters.
typedef struct {
    char sql[8192]; //  a payer's three scope lists, a field and every filter fit
    size_t length;
    char picture[33]; //  ml_odbc takes at most 32 parameters
    ml_odbc_value_t values[32];
    size_t count;
} ml_contract_statement_t;

//  What a search binds for its field: the pattern and, for an exact or prefix number search
//  through SQLite's search views, the bounds of the number's case-folded key (empty: none).
typedef struct {
    const char *pattern;
    char key_from[sizeof ((ml_search_t *)0)->text];
    char key_to[sizeof ((ml_search_t *)0)->text];
} ml_contract_search_values_t;

//  ml_contract.c -------------------------------------------------------------------------

//  Set a connection's statement time limit (0: none). Returns 0 or -1.
int ml_contract_limit_time_to (ml_contract_t *self, ml_odbc_t *odbc, int timeout_ms);

//  Read the item columns starting at column first into a new item of batch. Returns 1 for
//  an item, 0 for a row that was skipped (logged), -1 if the batch is full.
int ml_contract_read_item (ml_query_t *query, int first, char op, uint64_t change_id,
                           ml_msg_t *batch);

//  ml_contract_search.c ------------------------------------------------------------------

//  The search's statement. A payer's view (scoped) selects only rows a scope list names,
//  each list its own select (its number index finds the payer's few rows), united and then
//  ordered; an empty scope shows nothing, never everything. Invoice-level associations show
//  that invoice, never a trust ledger. Through a search index (keys), those selects give
//  source ids, and the page's rows are read by id from ml_open_items.
void ml_contract_search_statement (ml_contract_statement_t *statement,
                                   const ml_contract_dialect_t *dialect, const ml_search_t *search,
                                   const ml_contract_search_values_t *values, const char *keys,
                                   bool walk, char *scope_json[3]);

//  ml_contract_dialects.c ------------------------------------------------------------------

//  Every dialect the adapter knows, and how many.
extern const ml_contract_dialect_t ml_contract_dialects[];
extern const size_t ml_contract_dialect_count;

#endif
