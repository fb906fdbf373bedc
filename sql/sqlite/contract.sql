-- matterlink SQL contract, version 4, SQLite dialect (SQLite 3.38+ with JSON functions; tested on 3.40.1).
--
-- What the matterlink agent reads and writes in the firm's matter database, installed on top of the
-- matter tables (sql/sqlite/schema.sql or the firm's own). docs/contract.md is the specification.
--
-- Run:  sqlite3 -bail FIRM.db < sql/sqlite/contract.sql
--
-- Safe to run again, including on a newer or older install: tables are created IF NOT EXISTS and keep
-- their rows (ml_change, ml_posting_rejection), ml_contract keeps its db_epoch, and every view and
-- trigger is dropped and created again so the installed definitions are exactly these.
-- Use -bail: without it the sqlite3 shell carries on after an error and would COMMIT half an install.
--
-- Versions. Version 2 added reversing postings (refunds, voids, chargebacks): apply_posting takes
-- "reverses" and writes receipt_reversal and receipt_reversal_line, and ml_posting_result answers for
-- reversals too. Version 2 to 3 changes nothing on SQLite: version 3 added PostgreSQL's search index
-- (docs/contract.md 5.8), and every dialect carries the same number because the agent and the core
-- accept one. Version 4 added the search views and number indexes (ml_search_*, at the end), which
-- searches on SQLite read. Running this script over version 1, 2 or 3 upgrades it in place: the ml_
-- tables are the same, every view and trigger is made again, the indexes are built (about a second
-- at a million invoices), and contract_version becomes 4. The reversal tables
-- belong to the matter schema, so run schema.sql first on the reference schema (it adds only what is
-- missing); the check below stops the install, changing nothing, while they are missing.

BEGIN;

-- Version 2 writes reversals into the matter tables receipt_reversal and receipt_reversal_line. The
-- CHECK fails, and -bail stops the install, when they are missing; its name is the message IT reads.
CREATE TEMP TABLE ml_install_check (
    ok INTEGER CONSTRAINT "receipt_reversal and receipt_reversal_line are missing: run sql/sqlite/schema.sql first (it adds only what is missing), or adapt the contract to the firm's reversal tables"
        CHECK (ok = 1)
);
INSERT INTO ml_install_check (ok)
SELECT count(*) = 2 FROM sqlite_master
WHERE type = 'table' AND name IN ('receipt_reversal', 'receipt_reversal_line');
DROP TABLE ml_install_check;

-- ---------------------------------------------------------------------------------------------------
-- ml_contract: one row saying which contract is installed.
-- The agent refuses any contract_version other than the one it speaks. db_epoch is made once, at the
-- first install, and never changes afterwards: it names this database's change sequence, so the payment
-- core can tell that it is talking to a different database (a copy installed fresh) and resync.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_contract (
    contract_version INTEGER NOT NULL CHECK (typeof(contract_version) = 'integer' AND contract_version > 0),
    db_epoch         TEXT NOT NULL CHECK (length(db_epoch) = 36),
    installed_at     TEXT NOT NULL
);

-- An index on a constant allows a single row.
CREATE UNIQUE INDEX IF NOT EXISTS ml_contract_singleton ON ml_contract ((1));

-- A random (version 4) UUID, lower case 8-4-4-4-12.
INSERT INTO ml_contract (contract_version, db_epoch, installed_at)
SELECT 4,
       substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
           || substr('89ab89ab89ab89ab', instr('0123456789abcdef', substr(h, 17, 1)), 1)
           || substr(h, 18, 3) || '-' || substr(h, 21, 12),
       strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM (SELECT lower(hex(randomblob(16))) AS h)
WHERE NOT EXISTS (SELECT 1 FROM ml_contract);

-- installed_at records when this version was installed; a plain re-run keeps it.
UPDATE ml_contract
SET installed_at = CASE WHEN contract_version = 4 THEN installed_at
                        ELSE strftime('%Y-%m-%dT%H:%M:%SZ', 'now') END,
    contract_version = 4;

-- ---------------------------------------------------------------------------------------------------
-- ml_change: the commit-safe change cursor.
--
-- Every change to something the payment core replicates appends (entity, entity_id) here, from the
-- triggers below, inside the transaction that made the change. The agent reads changes by change_id,
-- never by timestamp: wall clocks miss rows (late commits with early timestamps, equal timestamps).
--
-- Why an AUTOINCREMENT counter is commit-safe in SQLite: SQLite has one writer at a time, from its first
-- write to COMMIT, so change_ids are handed out in commit order. A reader therefore never sees id N+1
-- while id N is still uncommitted; ids of a rolled-back transaction were never visible (and may be
-- handed out again, which is harmless). Nothing can appear later below the agent's cursor.
-- AUTOINCREMENT (rather than a plain rowid) guarantees that ids are never reused after the highest rows
-- are deleted, so pruning acknowledged rows can never make a new change hide below the cursor.
--
-- A row carries no state: ml_changes joins the entity's current state when it is read.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_change (
    change_id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity    TEXT NOT NULL CHECK (entity IN ('invoice', 'trust')),
    entity_id INTEGER NOT NULL
);

-- ---------------------------------------------------------------------------------------------------
-- ml_posting_rejection: postings the agent rejected for a business reason (a final answer, not a retry).
-- The agent writes it after rolling back the failed apply:
--   INSERT INTO ml_posting_rejection (posting_uuid, reason) VALUES (?, ?) ON CONFLICT (posting_uuid) DO NOTHING
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_posting_rejection (
    posting_uuid TEXT NOT NULL PRIMARY KEY,
    reason       TEXT NOT NULL,
    rejected_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A posting that did land (as a receipt, or as a reversal) is never also recorded as rejected, so
-- ml_posting_result has one answer.
DROP TRIGGER IF EXISTS ml_posting_rejection_posted;
CREATE TRIGGER ml_posting_rejection_posted
BEFORE INSERT ON ml_posting_rejection
WHEN EXISTS (SELECT 1 FROM receipt WHERE posting_uuid = NEW.posting_uuid)
  OR EXISTS (SELECT 1 FROM receipt_reversal WHERE posting_uuid = NEW.posting_uuid)
BEGIN
    SELECT RAISE(IGNORE);
END;

-- ---------------------------------------------------------------------------------------------------
-- Change triggers. They write ml_change only; the UPDATE triggers fire only when a column the payment
-- core sees changes, so bookkeeping updates (reminder dates, e-mail addresses) add no noise.
-- Matter and client changes list only the invoices that are open items right now: the others are not
-- in the core's replica, and renaming a client does not change that.
-- ---------------------------------------------------------------------------------------------------

DROP TRIGGER IF EXISTS ml_invoice_insert;
CREATE TRIGGER ml_invoice_insert
AFTER INSERT ON invoice
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
END;

DROP TRIGGER IF EXISTS ml_invoice_update;
CREATE TRIGGER ml_invoice_update
AFTER UPDATE ON invoice
WHEN OLD.invoice_id IS NOT NEW.invoice_id
    OR OLD.invoice_number IS NOT NEW.invoice_number
    OR OLD.matter_id IS NOT NEW.matter_id
    OR OLD.invoice_date IS NOT NEW.invoice_date
    OR OLD.due_date IS NOT NEW.due_date
    OR OLD.currency IS NOT NEW.currency
    OR OLD.total_minor IS NOT NEW.total_minor
    OR OLD.balance_minor IS NOT NEW.balance_minor
    OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', OLD.invoice_id WHERE OLD.invoice_id <> NEW.invoice_id;
    INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
END;

DROP TRIGGER IF EXISTS ml_invoice_delete;
CREATE TRIGGER ml_invoice_delete
AFTER DELETE ON invoice
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', OLD.invoice_id);
END;

DROP TRIGGER IF EXISTS ml_trust_entry_insert;
CREATE TRIGGER ml_trust_entry_insert
AFTER INSERT ON trust_entry
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('trust', NEW.matter_id);
END;

-- Moving an entry to another matter changes both matters' balances.
DROP TRIGGER IF EXISTS ml_trust_entry_update;
CREATE TRIGGER ml_trust_entry_update
AFTER UPDATE ON trust_entry
WHEN OLD.matter_id IS NOT NEW.matter_id
    OR OLD.amount_minor IS NOT NEW.amount_minor
    OR OLD.currency IS NOT NEW.currency
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('trust', OLD.matter_id);
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', NEW.matter_id WHERE NEW.matter_id <> OLD.matter_id;
END;

DROP TRIGGER IF EXISTS ml_trust_entry_delete;
CREATE TRIGGER ml_trust_entry_delete
AFTER DELETE ON trust_entry
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('trust', OLD.matter_id);
END;

-- Matter number, description and client appear in every item of the matter.
DROP TRIGGER IF EXISTS ml_matter_update;
CREATE TRIGGER ml_matter_update
AFTER UPDATE ON matter
WHEN OLD.matter_id IS NOT NEW.matter_id
    OR OLD.matter_number IS NOT NEW.matter_number
    OR OLD.client_id IS NOT NEW.client_id
    OR OLD.description IS NOT NEW.description
    OR OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', invoice_id FROM invoice
    WHERE matter_id IN (OLD.matter_id, NEW.matter_id) AND status = 'open' AND balance_minor > 0
    ORDER BY invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', OLD.matter_id
    WHERE OLD.matter_id <> NEW.matter_id
        OR EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = OLD.matter_id);
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', NEW.matter_id
    WHERE NEW.matter_id <> OLD.matter_id
        AND EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = NEW.matter_id);
END;

-- Foreign keys normally forbid deleting a matter or client that still has invoices or trust entries;
-- where they are not enforced, the orphaned items must still leave the core's replica.
DROP TRIGGER IF EXISTS ml_matter_delete;
CREATE TRIGGER ml_matter_delete
AFTER DELETE ON matter
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', invoice_id FROM invoice
    WHERE matter_id = OLD.matter_id AND status = 'open' AND balance_minor > 0
    ORDER BY invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', OLD.matter_id
    WHERE EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = OLD.matter_id);
END;

-- Client number and name appear in every item of every matter of the client.
DROP TRIGGER IF EXISTS ml_client_update;
CREATE TRIGGER ml_client_update
AFTER UPDATE ON client
WHEN OLD.client_id IS NOT NEW.client_id
    OR OLD.client_number IS NOT NEW.client_number
    OR OLD.name IS NOT NEW.name
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', i.invoice_id
    FROM matter AS m
    JOIN invoice AS i ON i.matter_id = m.matter_id
    WHERE m.client_id IN (OLD.client_id, NEW.client_id) AND i.status = 'open' AND i.balance_minor > 0
    ORDER BY i.invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', m.matter_id
    FROM matter AS m
    WHERE m.client_id IN (OLD.client_id, NEW.client_id)
        AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)
    ORDER BY m.matter_id;
END;

DROP TRIGGER IF EXISTS ml_client_delete;
CREATE TRIGGER ml_client_delete
AFTER DELETE ON client
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', i.invoice_id
    FROM matter AS m
    JOIN invoice AS i ON i.matter_id = m.matter_id
    WHERE m.client_id = OLD.client_id AND i.status = 'open' AND i.balance_minor > 0
    ORDER BY i.invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', m.matter_id
    FROM matter AS m
    WHERE m.client_id = OLD.client_id
        AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)
    ORDER BY m.matter_id;
END;

-- ---------------------------------------------------------------------------------------------------
-- Item views. All three return the same item columns, in this order:
--   item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name,
--   matter_number, matter_description, currency, total_minor, balance_minor, status
-- An invoice item is keyed ('invoice', invoice_id), a trust item ('trust', matter_id).
-- The definitions join the base tables directly (no view inside a view) so SQLite pages them by
-- primary key: "source_id > ? ORDER BY source_id LIMIT ?" reads only the rows it returns.
-- ---------------------------------------------------------------------------------------------------

-- Open invoices: status 'open' with something still owed.
DROP VIEW IF EXISTS ml_open_items;
CREATE VIEW ml_open_items AS
SELECT 'invoice'            AS item_kind,
       i.invoice_id         AS source_id,
       i.invoice_number     AS invoice_number,
       i.invoice_date       AS invoice_date,
       i.due_date           AS due_date,
       c.client_number      AS client_number,
       c.name               AS client_name,
       m.matter_number      AS matter_number,
       m.description        AS matter_description,
       i.currency           AS currency,
       i.total_minor        AS total_minor,
       i.balance_minor      AS balance_minor,
       i.status             AS status
FROM invoice AS i
JOIN matter AS m ON m.matter_id = i.matter_id
JOIN client AS c ON c.client_id = m.client_id
WHERE i.status = 'open' AND i.balance_minor > 0;

-- One row per matter with at least one trust entry; the balance is the sum of its entries (may be 0).
-- A matter's trust entries share one currency (schema.sql enforces it), so MIN() picks that currency.
DROP VIEW IF EXISTS ml_trust_balances;
CREATE VIEW ml_trust_balances AS
SELECT 'trust'              AS item_kind,
       m.matter_id          AS source_id,
       NULL                 AS invoice_number,
       NULL                 AS invoice_date,
       NULL                 AS due_date,
       c.client_number      AS client_number,
       c.name               AS client_name,
       m.matter_number      AS matter_number,
       m.description        AS matter_description,
       (SELECT min(t.currency) FROM trust_entry AS t WHERE t.matter_id = m.matter_id)     AS currency,
       NULL                 AS total_minor,
       (SELECT sum(t.amount_minor) FROM trust_entry AS t WHERE t.matter_id = m.matter_id) AS balance_minor,
       'trust'              AS status
FROM matter AS m
JOIN client AS c ON c.client_id = m.client_id
WHERE EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id);

-- One row per ml_change row, with the entity's state as it is now. op is 'upsert' when the entity is an
-- item now (it would appear in ml_open_items or ml_trust_balances), else 'remove' (deleted, paid, void,
-- closed, zero balance, no trust entries left); a 'remove' row carries only change_id, op, item_kind and
-- source_id, every other column is NULL. Because a row is the current state, applying it twice, or
-- after a snapshot that already saw it, changes nothing.
DROP VIEW IF EXISTS ml_changes;
CREATE VIEW ml_changes AS
SELECT ch.change_id                                                        AS change_id,
       CASE WHEN c.client_id IS NULL THEN 'remove' ELSE 'upsert' END       AS op,
       ch.entity                                                           AS item_kind,
       ch.entity_id                                                        AS source_id,
       CASE WHEN c.client_id IS NOT NULL THEN i.invoice_number END         AS invoice_number,
       CASE WHEN c.client_id IS NOT NULL THEN i.invoice_date END           AS invoice_date,
       CASE WHEN c.client_id IS NOT NULL THEN i.due_date END               AS due_date,
       c.client_number                                                     AS client_number,
       c.name                                                              AS client_name,
       CASE WHEN c.client_id IS NOT NULL THEN m.matter_number END          AS matter_number,
       CASE WHEN c.client_id IS NOT NULL THEN m.description END            AS matter_description,
       CASE WHEN c.client_id IS NULL THEN NULL
            WHEN ch.entity = 'invoice' THEN i.currency
            ELSE (SELECT min(t.currency) FROM trust_entry AS t WHERE t.matter_id = ch.entity_id)
       END                                                                 AS currency,
       CASE WHEN c.client_id IS NOT NULL THEN i.total_minor END            AS total_minor,
       CASE WHEN c.client_id IS NULL THEN NULL
            WHEN ch.entity = 'invoice' THEN i.balance_minor
            ELSE (SELECT sum(t.amount_minor) FROM trust_entry AS t WHERE t.matter_id = ch.entity_id)
       END                                                                 AS balance_minor,
       CASE WHEN c.client_id IS NULL THEN NULL
            WHEN ch.entity = 'invoice' THEN i.status
            ELSE 'trust'
       END                                                                 AS status
FROM ml_change AS ch
LEFT JOIN invoice AS i
    ON ch.entity = 'invoice' AND i.invoice_id = ch.entity_id
    AND i.status = 'open' AND i.balance_minor > 0
LEFT JOIN matter AS m
    ON m.matter_id = CASE ch.entity WHEN 'invoice' THEN i.matter_id ELSE ch.entity_id END
    AND (ch.entity = 'invoice' OR EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = ch.entity_id))
LEFT JOIN client AS c
    ON c.client_id = m.client_id;

-- ---------------------------------------------------------------------------------------------------
-- ml_posting_result: the outcome of every posting this database has seen, by posting_uuid.
-- receipt_id is the receipt's id, or for a reversal 'R-' and the receipt_reversal_id, so a reversal
-- is never taken for a receipt.
-- ---------------------------------------------------------------------------------------------------

DROP VIEW IF EXISTS ml_posting_result;
CREATE VIEW ml_posting_result AS
SELECT r.posting_uuid       AS posting_uuid,
       'posted'             AS status,
       CAST(r.receipt_id AS TEXT) AS receipt_id,
       NULL                 AS reason
FROM receipt AS r
UNION ALL
SELECT v.posting_uuid       AS posting_uuid,
       'posted'             AS status,
       'R-' || v.receipt_reversal_id AS receipt_id,
       NULL                 AS reason
FROM receipt_reversal AS v
UNION ALL
SELECT x.posting_uuid       AS posting_uuid,
       'rejected'           AS status,
       NULL                 AS receipt_id,
       x.reason             AS reason
FROM ml_posting_rejection AS x
WHERE NOT EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = x.posting_uuid)
  AND NOT EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = x.posting_uuid);

-- ---------------------------------------------------------------------------------------------------
-- ml_apply_posting: apply one posting, exactly once.
--
--   INSERT INTO ml_apply_posting (posting) VALUES (?)      -- inside the agent's transaction
--   SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_result WHERE posting_uuid = ?
--
-- SQLite has no stored procedures; an INSTEAD OF INSERT trigger on a view is the closest thing: the
-- statement is atomic (any error undoes all of it) and it runs in the caller's transaction.
-- The posting is one JSON object (docs/contract.md, "apply_posting"). The trigger:
--   a) does nothing at all when the posting_uuid is already posted (as a receipt or as a reversal) or
--      rejected (replay);
--   b) checks everything, in the order listed in docs/contract.md, and stops at the first problem with
--      RAISE(ABORT, 'ML001 <reason>'), before anything is written;
--   c) writes the receipt, one receipt_allocation per line, pays down the invoices and books trust
--      deposits; or, for a reversal (a posting whose "reverses" names the posting it gives money back
--      from), one receipt_reversal, one receipt_reversal_line per line, gives the amounts back to the
--      invoices (a paid one is open again) and withdraws them from the trust ledgers. The change
--      triggers record the invoice and trust changes in ml_change.
-- A reversal runs checks 1 to 8 of docs/contract.md section 7, then the reversal checks 17 to 20, 11
-- (duplicate_line) and 21 to 26 in place of 9 to 16: each statement below that belongs to one kind
-- of posting only says so with "reverses" (null or missing: an ordinary posting).
-- RAISE() takes only a literal, hence one statement per reason.
-- ---------------------------------------------------------------------------------------------------

DROP VIEW IF EXISTS ml_apply_posting;
CREATE VIEW ml_apply_posting AS
SELECT CAST(NULL AS TEXT) AS posting
WHERE 0;

CREATE TRIGGER ml_apply_posting_insert
INSTEAD OF INSERT ON ml_apply_posting
BEGIN
    -- The posting must at least be a JSON object with a text posting_uuid to be looked up. CASE keeps
    -- json_type() away from text that is not JSON (it would raise "malformed JSON").
    SELECT RAISE(ABORT, 'ML001 bad_posting')
    WHERE CASE WHEN json_valid(NEW.posting) IS 1
               THEN json_type(NEW.posting) IS NOT 'object'
                    OR json_type(NEW.posting, '$.posting_uuid') IS NOT 'text'
               ELSE 1 END;

    -- a) Replay: the first answer stands, whatever this copy of the posting says.
    SELECT RAISE(IGNORE)
    WHERE EXISTS (SELECT 1 FROM receipt
                  WHERE posting_uuid = json_extract(NEW.posting, '$.posting_uuid'))
       OR EXISTS (SELECT 1 FROM receipt_reversal
                  WHERE posting_uuid = json_extract(NEW.posting, '$.posting_uuid'))
       OR EXISTS (SELECT 1 FROM ml_posting_rejection
                  WHERE posting_uuid = json_extract(NEW.posting, '$.posting_uuid'));

    -- b) Validation. Shape first: a canonical lower-case UUID (so one posting cannot arrive under two
    -- spellings), a real date, text fields, 1 to 1000 allocation lines each naming what it pays, and
    -- "reverses" null, missing, or the canonical UUID of another posting.
    SELECT RAISE(ABORT, 'ML001 bad_posting')
    WHERE json_extract(NEW.posting, '$.posting_uuid') NOT GLOB
              replace('HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH', 'H', '[0-9a-f]')
       OR json_type(NEW.posting, '$.received_on') IS NOT 'text'
       OR json_extract(NEW.posting, '$.received_on')
              IS NOT date(json_extract(NEW.posting, '$.received_on'), '+0 days')
       OR json_type(NEW.posting, '$.account_number') IS NOT 'text'
       OR json_type(NEW.posting, '$.client_number') IS NOT 'text'
       OR json_type(NEW.posting, '$.currency') IS NOT 'text'
       OR json_extract(NEW.posting, '$.currency') NOT GLOB '[A-Z][A-Z][A-Z]'
       OR coalesce(json_type(NEW.posting, '$.payer_name'), 'null') NOT IN ('text', 'null')
       OR coalesce(json_type(NEW.posting, '$.payer_email'), 'null') NOT IN ('text', 'null')
       OR coalesce(json_type(NEW.posting, '$.ar_message'), 'null') NOT IN ('text', 'null')
       OR coalesce(json_type(NEW.posting, '$.processor_txn'), 'null') NOT IN ('text', 'null')
       OR coalesce(json_type(NEW.posting, '$.reverses'), 'null') NOT IN ('text', 'null')
       OR (json_type(NEW.posting, '$.reverses') IS 'text'
           AND (json_extract(NEW.posting, '$.reverses') NOT GLOB
                    replace('HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH', 'H', '[0-9a-f]')
                OR json_extract(NEW.posting, '$.reverses') = json_extract(NEW.posting, '$.posting_uuid')))
       OR json_type(NEW.posting, '$.allocations') IS NOT 'array'
       OR json_array_length(NEW.posting, '$.allocations') NOT BETWEEN 1 AND 1000
       OR EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE a.type IS NOT 'object'
                     OR NOT ((json_extract(a.value, '$.kind') IS 'invoice'
                              AND json_type(a.value, '$.invoice_number') IS 'text')
                          OR (json_extract(a.value, '$.kind') IS 'trust'
                              AND json_type(a.value, '$.matter_number') IS 'text')));

    SELECT RAISE(ABORT, 'ML001 unknown_account')
    WHERE NOT EXISTS (SELECT 1 FROM bank_account
                      WHERE account_number = json_extract(NEW.posting, '$.account_number'));

    SELECT RAISE(ABORT, 'ML001 client_not_found')
    WHERE NOT EXISTS (SELECT 1 FROM client
                      WHERE client_number = json_extract(NEW.posting, '$.client_number'));

    -- Amounts are JSON integers (never 250.00 or "25000") from 1 to 999 999 999 999 999. The cap keeps
    -- the sum of up to 1000 lines far from int64 overflow, which would be an SQL error, not an answer.
    SELECT RAISE(ABORT, 'ML001 bad_amount')
    WHERE json_type(NEW.posting, '$.amount_minor') IS NOT 'integer'
       OR json_extract(NEW.posting, '$.amount_minor') NOT BETWEEN 1 AND 999999999999999
       OR EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE json_type(a.value, '$.amount_minor') IS NOT 'integer'
                     OR json_extract(a.value, '$.amount_minor') NOT BETWEEN 1 AND 999999999999999);

    SELECT RAISE(ABORT, 'ML001 allocation_sum_mismatch')
    WHERE (SELECT sum(json_extract(a.value, '$.amount_minor'))
           FROM json_each(NEW.posting, '$.allocations') AS a)
          IS NOT json_extract(NEW.posting, '$.amount_minor');

    SELECT RAISE(ABORT, 'ML001 currency_mismatch')
    WHERE (SELECT currency FROM bank_account
           WHERE account_number = json_extract(NEW.posting, '$.account_number'))
          IS NOT json_extract(NEW.posting, '$.currency');

    -- Invoices are paid into OPERATING accounts and trust deposits go to TRUST accounts; one posting is
    -- one deposit into one account, so it never mixes the two.
    SELECT RAISE(ABORT, 'ML001 operating_account_required')
    WHERE (SELECT account_type FROM bank_account
           WHERE account_number = json_extract(NEW.posting, '$.account_number')) IS NOT 'OPERATING'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE json_extract(a.value, '$.kind') = 'invoice');

    SELECT RAISE(ABORT, 'ML001 trust_account_required')
    WHERE (SELECT account_type FROM bank_account
           WHERE account_number = json_extract(NEW.posting, '$.account_number')) IS NOT 'TRUST'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE json_extract(a.value, '$.kind') = 'trust');

    SELECT RAISE(ABORT, 'ML001 invoice_not_found')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE json_extract(a.value, '$.kind') = 'invoice'
                    AND NOT EXISTS (SELECT 1 FROM invoice AS i
                                    WHERE i.invoice_number = json_extract(a.value, '$.invoice_number')));

    SELECT RAISE(ABORT, 'ML001 matter_not_found')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE json_extract(a.value, '$.kind') = 'trust'
                    AND NOT EXISTS (SELECT 1 FROM matter AS m
                                    WHERE m.matter_number = json_extract(a.value, '$.matter_number')));

    -- One line per invoice and per matter: the balance checks below are per line. (A reversal checks
    -- it after its original, below.)
    SELECT RAISE(ABORT, 'ML001 duplicate_line')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  GROUP BY json_extract(a.value, '$.kind'),
                           CASE json_extract(a.value, '$.kind')
                               WHEN 'invoice' THEN json_extract(a.value, '$.invoice_number')
                               ELSE json_extract(a.value, '$.matter_number') END
                  HAVING count(*) > 1);

    SELECT RAISE(ABORT, 'ML001 invoice_client_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  JOIN matter AS m ON m.matter_id = i.matter_id
                  JOIN client AS c ON c.client_id = m.client_id
                  WHERE json_extract(a.value, '$.kind') = 'invoice'
                    AND c.client_number IS NOT json_extract(NEW.posting, '$.client_number'));

    SELECT RAISE(ABORT, 'ML001 matter_client_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN matter AS m ON m.matter_number = json_extract(a.value, '$.matter_number')
                  JOIN client AS c ON c.client_id = m.client_id
                  WHERE json_extract(a.value, '$.kind') = 'trust'
                    AND c.client_number IS NOT json_extract(NEW.posting, '$.client_number'));

    SELECT RAISE(ABORT, 'ML001 invoice_not_open')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  WHERE json_extract(a.value, '$.kind') = 'invoice' AND i.status IS NOT 'open');

    -- Invoice currency, and a matter's trust ledger currency when it already has entries.
    SELECT RAISE(ABORT, 'ML001 currency_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND (EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                   JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                   WHERE json_extract(a.value, '$.kind') = 'invoice'
                     AND i.currency IS NOT json_extract(NEW.posting, '$.currency'))
           OR EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                      JOIN matter AS m ON m.matter_number = json_extract(a.value, '$.matter_number')
                      JOIN trust_entry AS t ON t.matter_id = m.matter_id
                      WHERE json_extract(a.value, '$.kind') = 'trust'
                        AND t.currency IS NOT json_extract(NEW.posting, '$.currency')));

    SELECT RAISE(ABORT, 'ML001 amount_over_balance')
    WHERE json_type(NEW.posting, '$.reverses') IS NOT 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  WHERE json_extract(a.value, '$.kind') = 'invoice'
                    AND json_extract(a.value, '$.amount_minor') > i.balance_minor);

    -- Reversals. The original is the receipt whose posting_uuid the reversal names: a posting that
    -- was rejected, never arrived, or is itself a reversal has none.
    SELECT RAISE(ABORT, 'ML001 original_not_posted')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND NOT EXISTS (SELECT 1 FROM receipt WHERE posting_uuid = json_extract(NEW.posting, '$.reverses'));

    -- The money goes back out of the account it came into, for the client that paid, in its currency.
    SELECT RAISE(ABORT, 'ML001 reversal_account_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM receipt AS r
                  JOIN bank_account AS b ON b.bank_account_id = r.bank_account_id
                  WHERE r.posting_uuid = json_extract(NEW.posting, '$.reverses')
                    AND b.account_number IS NOT json_extract(NEW.posting, '$.account_number'));

    SELECT RAISE(ABORT, 'ML001 reversal_client_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM receipt AS r
                  JOIN client AS c ON c.client_id = r.client_id
                  WHERE r.posting_uuid = json_extract(NEW.posting, '$.reverses')
                    AND c.client_number IS NOT json_extract(NEW.posting, '$.client_number'));

    SELECT RAISE(ABORT, 'ML001 reversal_currency_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM receipt AS r
                  WHERE r.posting_uuid = json_extract(NEW.posting, '$.reverses')
                    AND r.currency IS NOT json_extract(NEW.posting, '$.currency'));

    SELECT RAISE(ABORT, 'ML001 duplicate_line')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  GROUP BY json_extract(a.value, '$.kind'),
                           CASE json_extract(a.value, '$.kind')
                               WHEN 'invoice' THEN json_extract(a.value, '$.invoice_number')
                               ELSE json_extract(a.value, '$.matter_number') END
                  HAVING count(*) > 1);

    -- Each line takes back from the original's line of the same kind and invoice or matter number.
    SELECT RAISE(ABORT, 'ML001 reversal_line_not_in_original')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  WHERE NOT EXISTS (
                      SELECT 1
                      FROM receipt AS r
                      JOIN receipt_allocation AS ra ON ra.receipt_id = r.receipt_id
                      LEFT JOIN invoice AS i ON i.invoice_id = ra.invoice_id
                      LEFT JOIN matter AS m ON m.matter_id = ra.matter_id
                      WHERE r.posting_uuid = json_extract(NEW.posting, '$.reverses')
                        AND ra.kind = json_extract(a.value, '$.kind')
                        AND CASE ra.kind WHEN 'invoice' THEN i.invoice_number ELSE m.matter_number END
                            = CASE ra.kind WHEN 'invoice' THEN json_extract(a.value, '$.invoice_number')
                                           ELSE json_extract(a.value, '$.matter_number') END));

    -- What this reversal and the earlier ones take back from a line never exceeds what the line gave.
    SELECT RAISE(ABORT, 'ML001 reversal_exceeds_original')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1
                  FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN receipt AS r ON r.posting_uuid = json_extract(NEW.posting, '$.reverses')
                  JOIN receipt_allocation AS ra
                      ON ra.receipt_id = r.receipt_id AND ra.kind = json_extract(a.value, '$.kind')
                  LEFT JOIN invoice AS i ON i.invoice_id = ra.invoice_id
                  LEFT JOIN matter AS m ON m.matter_id = ra.matter_id
                  WHERE CASE ra.kind WHEN 'invoice' THEN i.invoice_number ELSE m.matter_number END
                        = CASE ra.kind WHEN 'invoice' THEN json_extract(a.value, '$.invoice_number')
                                       ELSE json_extract(a.value, '$.matter_number') END
                    AND json_extract(a.value, '$.amount_minor')
                        + (SELECT coalesce(sum(l.amount_minor), 0) FROM receipt_reversal_line AS l
                           WHERE l.receipt_allocation_id = ra.receipt_allocation_id)
                        > ra.amount_minor);

    -- An invoice takes money back while it is open or paid (a paid one opens again), never once it is
    -- void or closed: the firm settled it otherwise, and staff decide what the refund means for it.
    SELECT RAISE(ABORT, 'ML001 reversal_invoice_closed')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  WHERE json_extract(a.value, '$.kind') = 'invoice' AND i.status NOT IN ('open', 'paid'));

    SELECT RAISE(ABORT, 'ML001 reversal_currency_mismatch')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  WHERE json_extract(a.value, '$.kind') = 'invoice'
                    AND i.currency IS NOT json_extract(NEW.posting, '$.currency'));

    -- A balance never grows above the invoice's total (the firm may have lowered the total since).
    SELECT RAISE(ABORT, 'ML001 reversal_exceeds_invoice_total')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN invoice AS i ON i.invoice_number = json_extract(a.value, '$.invoice_number')
                  WHERE json_extract(a.value, '$.kind') = 'invoice'
                    AND i.balance_minor + json_extract(a.value, '$.amount_minor') > i.total_minor);

    -- A withdrawal never takes a matter's trust balance below zero (DESIGN.md, money rule 5): money
    -- already disbursed from trust cannot be given back from it.
    SELECT RAISE(ABORT, 'ML001 trust_balance_insufficient')
    WHERE json_type(NEW.posting, '$.reverses') IS 'text'
      AND EXISTS (SELECT 1 FROM json_each(NEW.posting, '$.allocations') AS a
                  JOIN matter AS m ON m.matter_number = json_extract(a.value, '$.matter_number')
                  WHERE json_extract(a.value, '$.kind') = 'trust'
                    AND (SELECT coalesce(sum(t.amount_minor), 0) FROM trust_entry AS t
                         WHERE t.matter_id = m.matter_id)
                        < json_extract(a.value, '$.amount_minor'));

    -- c) Apply an ordinary posting. (For a reversal nothing below matches until its own statements.)
    INSERT INTO receipt (posting_uuid, received_on, bank_account_id, client_id, payer_name, payer_email,
                         amount_minor, currency, ar_message, processor_txn)
    SELECT json_extract(NEW.posting, '$.posting_uuid'),
           json_extract(NEW.posting, '$.received_on'),
           b.bank_account_id,
           c.client_id,
           json_extract(NEW.posting, '$.payer_name'),
           json_extract(NEW.posting, '$.payer_email'),
           json_extract(NEW.posting, '$.amount_minor'),
           json_extract(NEW.posting, '$.currency'),
           json_extract(NEW.posting, '$.ar_message'),
           json_extract(NEW.posting, '$.processor_txn')
    FROM bank_account AS b, client AS c
    WHERE b.account_number = json_extract(NEW.posting, '$.account_number')
      AND c.client_number = json_extract(NEW.posting, '$.client_number')
      AND json_type(NEW.posting, '$.reverses') IS NOT 'text';

    -- Lines keep the posting's order.
    INSERT INTO receipt_allocation (receipt_id, kind, invoice_id, matter_id, amount_minor)
    SELECT r.receipt_id,
           json_extract(a.value, '$.kind'),
           i.invoice_id,
           m.matter_id,
           json_extract(a.value, '$.amount_minor')
    FROM receipt AS r
    JOIN json_each(NEW.posting, '$.allocations') AS a
    LEFT JOIN invoice AS i
        ON json_extract(a.value, '$.kind') = 'invoice'
        AND i.invoice_number = json_extract(a.value, '$.invoice_number')
    LEFT JOIN matter AS m
        ON json_extract(a.value, '$.kind') = 'trust'
        AND m.matter_number = json_extract(a.value, '$.matter_number')
    WHERE r.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
    ORDER BY a.key;

    -- SET expressions all see the row as it was, so both use the old balance.
    UPDATE invoice
    SET balance_minor = balance_minor - (SELECT sum(ra.amount_minor) FROM receipt_allocation AS ra
                                         JOIN receipt AS r ON r.receipt_id = ra.receipt_id
                                         WHERE r.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
                                           AND ra.invoice_id = invoice.invoice_id),
        status = CASE WHEN balance_minor = (SELECT sum(ra.amount_minor) FROM receipt_allocation AS ra
                                            JOIN receipt AS r ON r.receipt_id = ra.receipt_id
                                            WHERE r.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
                                              AND ra.invoice_id = invoice.invoice_id)
                      THEN 'paid' ELSE status END
    WHERE invoice_id IN (SELECT ra.invoice_id FROM receipt_allocation AS ra
                         JOIN receipt AS r ON r.receipt_id = ra.receipt_id
                         WHERE r.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
                           AND ra.kind = 'invoice');

    -- Trust deposits land in the posting's (TRUST) account, dated the day the money was received.
    INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
    SELECT ra.matter_id, r.bank_account_id, r.received_on, ra.amount_minor, r.currency,
           'matterlink receipt', r.receipt_id
    FROM receipt AS r
    JOIN receipt_allocation AS ra ON ra.receipt_id = r.receipt_id AND ra.kind = 'trust'
    WHERE r.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
    ORDER BY ra.receipt_allocation_id;

    -- c') Apply a reversal: the reversal of the original receipt, dated the day of the refund.
    INSERT INTO receipt_reversal (posting_uuid, receipt_id, reversed_on, amount_minor, currency, ar_message,
                                  processor_txn)
    SELECT json_extract(NEW.posting, '$.posting_uuid'),
           r.receipt_id,
           json_extract(NEW.posting, '$.received_on'),
           json_extract(NEW.posting, '$.amount_minor'),
           json_extract(NEW.posting, '$.currency'),
           json_extract(NEW.posting, '$.ar_message'),
           json_extract(NEW.posting, '$.processor_txn')
    FROM receipt AS r
    WHERE r.posting_uuid = json_extract(NEW.posting, '$.reverses')
      AND json_type(NEW.posting, '$.reverses') IS 'text';

    -- One line per line of the reversal, in its order, each naming the original's allocation line.
    INSERT INTO receipt_reversal_line (receipt_reversal_id, receipt_allocation_id, amount_minor)
    SELECT v.receipt_reversal_id, ra.receipt_allocation_id, json_extract(a.value, '$.amount_minor')
    FROM receipt_reversal AS v
    JOIN json_each(NEW.posting, '$.allocations') AS a
    JOIN receipt_allocation AS ra ON ra.receipt_id = v.receipt_id AND ra.kind = json_extract(a.value, '$.kind')
    LEFT JOIN invoice AS i ON i.invoice_id = ra.invoice_id
    LEFT JOIN matter AS m ON m.matter_id = ra.matter_id
    WHERE v.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
      AND CASE ra.kind WHEN 'invoice' THEN i.invoice_number ELSE m.matter_number END
          = CASE ra.kind WHEN 'invoice' THEN json_extract(a.value, '$.invoice_number')
                         ELSE json_extract(a.value, '$.matter_number') END
    ORDER BY a.key;

    -- The invoices take the amounts back; a paid one is open again.
    UPDATE invoice
    SET balance_minor = balance_minor + (SELECT sum(l.amount_minor) FROM receipt_reversal_line AS l
                                         JOIN receipt_reversal AS v ON v.receipt_reversal_id = l.receipt_reversal_id
                                         JOIN receipt_allocation AS ra ON ra.receipt_allocation_id = l.receipt_allocation_id
                                         WHERE v.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
                                           AND ra.invoice_id = invoice.invoice_id),
        status = CASE WHEN status = 'paid' THEN 'open' ELSE status END
    WHERE invoice_id IN (SELECT ra.invoice_id FROM receipt_reversal_line AS l
                         JOIN receipt_reversal AS v ON v.receipt_reversal_id = l.receipt_reversal_id
                         JOIN receipt_allocation AS ra ON ra.receipt_allocation_id = l.receipt_allocation_id
                         WHERE v.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
                           AND ra.kind = 'invoice');

    -- Trust withdrawals: a negative entry in the original's (TRUST) account, dated the day of the
    -- refund, pointing at the receipt whose money it takes back, so that receipt's entries net out.
    INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
    SELECT ra.matter_id, r.bank_account_id, v.reversed_on, -l.amount_minor, v.currency,
           'reversal of ' || r.posting_uuid, r.receipt_id
    FROM receipt_reversal AS v
    JOIN receipt_reversal_line AS l ON l.receipt_reversal_id = v.receipt_reversal_id
    JOIN receipt_allocation AS ra ON ra.receipt_allocation_id = l.receipt_allocation_id AND ra.kind = 'trust'
    JOIN receipt AS r ON r.receipt_id = v.receipt_id
    WHERE v.posting_uuid = json_extract(NEW.posting, '$.posting_uuid')
    ORDER BY l.receipt_reversal_line_id;
END;

-- ---------------------------------------------------------------------------------------------------
-- Search index (version 4; docs/contract.md 5.8). A search orders its rows by source id for keyset
-- paging, and without these the only way to that order was to walk every open invoice testing its
-- client, matter and number (0.5 to 2.5 s at a million invoices for a search that matches few rows).
-- The agent now first finds the clients, matters or invoices whose field matches, through these
-- views, and reads only their open invoices (or trust ledgers) by id: ml_search_invoices by
-- (matter_id) reaches a matter's invoices through the matter's index, ml_search_matters by
-- (client_id) a client's matters. The match itself is the one it always was (GLOB with each
-- letter's case forms, section 5.8), made on the same columns, so the rows are the same.
-- The *_number_key columns are the numbers with ASCII letters lower-cased (SQLite's lower()), and
-- the expression indexes below make them B-tree ranges: for an exact or prefix search the agent
-- also bounds the key by the lower-cased run of the search text that is ASCII or has no case
-- (a letter that can only match itself or its ASCII case forms), which every match satisfies, and
-- GLOB then decides. The indexes are kept by SQLite itself, so nothing here runs on a firm's write
-- but three index entries per row; they need invoice (matter_id) and matter (client_id) indexes,
-- which the reference schema has (schema.sql) and a firm's foreign keys normally do.
-- ---------------------------------------------------------------------------------------------------

CREATE INDEX IF NOT EXISTS ml_search_client_number ON client (lower(client_number));
CREATE INDEX IF NOT EXISTS ml_search_matter_number ON matter (lower(matter_number));
CREATE INDEX IF NOT EXISTS ml_search_invoice_number ON invoice (lower(invoice_number));

DROP VIEW IF EXISTS ml_search_clients;
CREATE VIEW ml_search_clients AS
SELECT c.client_id            AS client_id,
       c.client_number        AS client_number,
       c.name                 AS client_name,
       lower(c.client_number) AS client_number_key
FROM client AS c;

DROP VIEW IF EXISTS ml_search_matters;
CREATE VIEW ml_search_matters AS
SELECT m.matter_id            AS matter_id,
       m.client_id            AS client_id,
       m.matter_number        AS matter_number,
       m.description          AS matter_description,
       lower(m.matter_number) AS matter_number_key
FROM matter AS m;

DROP VIEW IF EXISTS ml_search_invoices;
CREATE VIEW ml_search_invoices AS
SELECT i.invoice_id            AS source_id,
       i.matter_id             AS matter_id,
       i.invoice_number        AS invoice_number,
       lower(i.invoice_number) AS invoice_number_key
FROM invoice AS i;

COMMIT;
