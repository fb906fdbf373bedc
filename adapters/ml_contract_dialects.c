/*  ml_contract's dialects: how each one calls every operation of the SQL contract
    (docs/contract.md). */
#include "ml_contract_internal.h"

const ml_contract_dialect_t ml_contract_dialects[] = {
    {"sqlite", "SELECT contract_version, db_epoch FROM ml_contract",
     "SELECT " ML_CONTRACT_ITEM_COLUMNS
     " FROM ml_open_items WHERE item_kind = 'invoice' AND source_id > ? "
     "ORDER BY source_id LIMIT ?",
     "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM ml_trust_balances WHERE source_id > ? "
     "ORDER BY source_id LIMIT ?",
     //  SQLite serializes writers and the change id is written inside the writing
     //  transaction, so everything up to the maximum visible id has committed.
     "SELECT COALESCE(MAX(change_id), 0) FROM ml_change",
     "SELECT change_id, op, " ML_CONTRACT_ITEM_COLUMNS " FROM ml_changes "
     "WHERE change_id > ? AND change_id <= ? ORDER BY change_id LIMIT ?",
     "INSERT INTO ml_apply_posting (posting) VALUES (?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_result "
     "WHERE posting_uuid = ?",
     "INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES (?, ?) "
     "ON CONFLICT (posting_uuid) DO NOTHING",
     NULL, NULL, ML_CONTRACT_NO_LIMIT, NULL, NULL, "%s IN (SELECT value FROM json_each(?))",
     "LIMIT ?", NULL, NULL, NULL, true, ML_CONTRACT_VIEWS_IN},
    //  Reads are SQL functions that psqlODBC streams through a cursor (UseDeclareFetch=1);
    //  writes are procedures, because a volatile function inside such a cursor would only
    //  run when fetched.
    {"postgresql", "SELECT contract_version, db_epoch FROM ml_contract",
     "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM ml_open_items(?, ?)",
     "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM ml_trust_balances(?, ?)",
     "SELECT ml_change_high_water()",
     "SELECT change_id, op, " ML_CONTRACT_ITEM_COLUMNS " FROM ml_changes_since(?, ?, ?)",
     "CALL ml_apply_posting(?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_result(?)",
     "CALL ml_reject_posting(?, ?)", "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM ml_open_items",
     "SELECT " ML_CONTRACT_ITEM_COLUMNS " FROM ml_trust_balances", ML_CONTRACT_POSTGRESQL_LIMIT,
     "CALL ml_apply_postings(?)",
     "SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_results(?)",
     //  = ANY of an array reaches the number indexes, where IN (SELECT ...) joined under an OR
     //  walked every open invoice.
     "%s = ANY (ARRAY(SELECT json_array_elements_text(CAST(? AS json))))", "LIMIT ?",
     //  psqlODBC runs reads as cursors (UseDeclareFetch), which PostgreSQL plans for the
     //  first 10% of rows: a prefix search of trust ledgers would walk them in id order
     //  instead of using the number and trigram indexes. A search reads all its (few) rows.
     "SET cursor_tuple_fraction = 1", "RESET cursor_tuple_fraction", "ml_search_keys", false,
     ML_CONTRACT_NO_VIEWS},
    //  MariaDB's driver cannot stream, so every read is a keyset page from a procedure.
    {"mariadb", "SELECT contract_version, db_epoch FROM ml_contract", "CALL ml_open_items(?, ?)",
     "CALL ml_trust_balances(?, ?)", "CALL ml_change_high_water()",
     "CALL ml_changes_since(?, ?, ?)", "CALL ml_apply_posting(?)", "CALL ml_posting_result(?)",
     "CALL ml_reject_posting(?, ?)", NULL, NULL,
     //  MariaDB's driver ignores SQL_ATTR_QUERY_TIMEOUT; the server's own limit works.
     ML_CONTRACT_MARIADB_LIMIT, NULL, NULL,
     "%s IN (SELECT j.v FROM JSON_TABLE(?, '$[*]' COLUMNS (v VARCHAR(64) PATH '$')) AS j)",
     "LIMIT ?", NULL, NULL, NULL, false, ML_CONTRACT_VIEWS_HITS},
    //  SQL Server through FreeTDS: ODBC call escapes, keyset pages. Written to sql/sqlserver/
    //  and docs/contract.md, but never run against a server here (see its README).
    {"sqlserver", "SELECT contract_version, db_epoch FROM ml_contract",
     "{CALL ml_open_items(?, ?)}", "{CALL ml_trust_balances(?, ?)}", "{CALL ml_change_high_water}",
     "{CALL ml_changes_since(?, ?, ?)}", "{CALL ml_apply_posting(?)}",
     "{CALL ml_posting_result(?)}", "{CALL ml_reject_posting(?, ?)}", NULL, NULL,
     //  Bounds how long a statement waits for a lock, the usual way it gets stuck.
     ML_CONTRACT_SQLSERVER_LIMIT, NULL, NULL, "%s IN (SELECT value FROM OPENJSON(?))",
     "OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY", NULL, NULL, NULL, false, ML_CONTRACT_NO_VIEWS},
};

const size_t ml_contract_dialect_count =
    sizeof ml_contract_dialects / sizeof ml_contract_dialects[0];
