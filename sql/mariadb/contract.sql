-- matterlink SQL contract, version 4, MariaDB dialect (MariaDB 10.6+; tested on 10.11 with MariaDB
-- Connector/ODBC 3.1.15).
--
-- What the matterlink agent reads and writes in the firm's matter database, installed on top of the
-- matter tables (sql/mariadb/schema.sql or the firm's own). docs/contract.md is the specification; this
-- script behaves as sql/sqlite/contract.sql does, with stored procedures in place of the agent's
-- SELECTs and of the INSTEAD OF trigger, and with a change cursor that stays safe with concurrent
-- writers.
--
-- Run (as an account that may create tables, views, triggers and routines):
--   mariadb -h HOST -P PORT -u USER FIRM < sql/mariadb/contract.sql
--
-- Safe to run again, also over another version: tables are created IF NOT EXISTS and keep their rows
-- (ml_change, ml_change_stamp, ml_posting_rejection), ml_contract keeps its db_epoch, and every view,
-- trigger and procedure is replaced in place (CREATE OR REPLACE). MariaDB commits each DDL statement on
-- its own, so the script cannot be one transaction; it sets contract_version = 4 only as its very last
-- statement, so an agent never accepts a half-installed contract. After a failed run, fix the cause
-- and run it again. The mariadb client stops at the first error.
--
-- Version 2 added reversing postings (refunds, voids, chargebacks): ml_apply_posting takes "reverses"
-- and writes the matter tables receipt_reversal and receipt_reversal_line (schema.sql makes them), and
-- ml_posting_result answers for reversals too. Version 4 added the search index (ml_search_*, "Search
-- index" below). This script upgrades a version 1, 2 or 3 install in place (see "Upgrades", which
-- also says why version 3 changes nothing here); it stops first of all,
-- changing nothing, while the reversal tables are missing.
--
-- How the agent calls it (docs/contract.md, section 5). Parameters are bound as BIGINT or VARCHAR;
-- every call runs in the agent's own transaction (autocommit off), which it commits; after each CALL
-- it drains SQLMoreResults, because a CALL always ends with a status result.
--   SELECT contract_version, db_epoch FROM ml_contract
--   CALL ml_open_items(?, ?)           -- after_source_id, page_limit  -> item rows
--   CALL ml_trust_balances(?, ?)       -- after_source_id, page_limit  -> item rows
--   CALL ml_change_high_water()        --                              -> one row: high_water
--   CALL ml_changes_since(?, ?, ?)     -- since, upto, page_limit      -> change_id, op, item columns
--   CALL ml_apply_posting(?)           -- the posting, JSON text       -> no result set
--   CALL ml_reject_posting(?, ?)       -- posting_uuid, reason         -> no result set
--   CALL ml_posting_result(?)          -- posting_uuid                 -> posting_uuid, status, receipt_id, reason
-- The connector cannot stream a result, so every read is a keyset page (10,000 to 50,000 rows).
-- A business rejection is SIGNAL SQLSTATE '45001' with MESSAGE_TEXT 'ML001 <code>' (native error 1644).
--
-- Privileges. Views, triggers and procedures run as their DEFINER (the account that ran this script),
-- so the agent's account needs only:
--   GRANT SELECT ON FIRM.ml_contract TO agent;
--   GRANT EXECUTE ON PROCEDURE FIRM.ml_open_items TO agent;   -- and likewise for the other six
-- The DEFINER account must keep its rights on the matter tables and CREATE TEMPORARY TABLES.
--
-- ===================================================================================================
-- Change capture: "stamp on read"
-- ===================================================================================================
-- The agent must never miss a committed change, and must never hold up the firm's own writers.
--
-- Why not timestamps: "modified since T" misses rows. A transaction that wrote before T but commits
-- after the agent read up to T carries a timestamp below T; rows written in one statement share a
-- timestamp; clocks move and precision is lost.
--
-- Why not an AUTO_INCREMENT id taken when the change is written: InnoDB runs writers concurrently.
-- Transaction A takes id 5, transaction B takes 6 and commits; a reader sees 6, records "read up to
-- 6", and A commits 5 afterwards, below the cursor: missed for good. (SQLite escapes this because it
-- has one writer at a time.)
--
-- What we do instead: the change triggers append (entity, entity_id) to ml_change with change_id NULL,
-- inside the writer's transaction; seq_id (AUTO_INCREMENT) only orders the rows. ml_change_high_water(),
-- which the agent calls before each read pass, gives the committed rows that have no change_id yet
-- the next numbers, in seq_id order, and returns the highest number handed out. ml_changes (and so
-- ml_changes_since) reads only rows that have a change_id. So:
--   - A row of a transaction still in progress gets no number now; once it commits, a later call
--     numbers it above everything numbered so far. A late commit always lands above the agent's
--     cursor, never below it, and the stamper never waits for it.
--   - Stampers take turns: each locks the one row of ml_change_stamp (which holds the last number
--     handed out) until its transaction ends, so numbers become visible in the order they were handed
--     out. The lock is taken with SKIP LOCKED: a caller that finds another stamper at work stamps
--     nothing and returns the highest number already committed, which is safe, because the other
--     stamper's numbers are all higher. The counter, not MAX(change_id), is what carries on, so
--     deleting acknowledged ml_change rows never makes a number come round again.
--   - How the rows are picked, so that nobody waits (measured on 10.11, tests/contract_mariadb.sh):
--       1. a consistent (non-locking) read lists up to 100,000 unstamped rows in seq_id order. MVCC
--          never shows another transaction's uncommitted rows, and a plain read takes no locks;
--       2. SELECT ... FOR UPDATE SKIP LOCKED locks those rows by primary key, one point each, and skips
--          any row another transaction holds (an uncommitted insert holds its row lock; SKIP LOCKED
--          really skips it on 10.11, and the test proves it);
--       3. an UPDATE by primary key writes the numbers.
--     Steps 2 and 3 say FORCE INDEX (PRIMARY): left to itself the optimizer reads ml_change through
--     the change_id index ("change_id IS NULL"), a range scan that locks every unstamped row and the
--     gap after them, and a writer's next insert waits for the agent's commit (measured).
--     The obvious single statement, SELECT ... WHERE change_id IS NULL ORDER BY seq_id LIMIT 100000
--     FOR UPDATE SKIP LOCKED, does skip uncommitted rows too, but under REPEATABLE READ (the InnoDB
--     default) a locking range scan also takes next-key (gap) locks, and a firm's writer inserting its
--     next ml_change row then waits until the agent commits (measured: 2.5 s behind a 3 s transaction).
--     READ COMMITTED takes no gap locks, but a procedure cannot switch its caller's transaction to it:
--     SET TRANSACTION ISOLATION LEVEL fails with error 1568 once a transaction has started (it works
--     only as the first statement after SET autocommit = 0), SET SESSION TRANSACTION ... is accepted
--     but applies from the next transaction, and SET STATEMENT tx_isolation is refused (error 1971).
--     Point locks by primary key take no gap locks under either level, so this design needs neither.
--   - The firm's writers never wait for the agent and the agent never waits for them: writers only
--     INSERT into ml_change, the stamper only locks and updates committed rows, which no writer
--     touches, and its own inserts of numbers go to the far end of the change_id index, away from the
--     NULL entries that writers add.
--   - One call numbers at most 100,000 rows (the next call numbers the rest), so a bulk update of the
--     firm's data never turns one call into a long transaction.
--   - Called with autocommit on (by hand, from the mariadb client), the procedure runs in a transaction
--     of its own; otherwise it runs in the caller's, and its numbers become visible when the caller
--     commits. A caller that rolls back hands its numbers back unused: the next stamper takes them
--     again for the same rows, which nobody can have seen.
--   - Everything ml_changes_since returns is committed and final: a change_id is never reused, and no
--     row can appear later at or below a change_id the agent has seen.
-- A row carries no state: ml_changes joins each entity's current state when it is read, so applying a
-- row twice, or after a snapshot that already saw it, changes nothing. written_at is informational.
-- TRUNCATE of a matter table fires no triggers and is not captured: resync the agent after one.
-- ===================================================================================================

SET NAMES utf8mb4;
-- Views, triggers and procedures keep the sql_mode they were created under, so the contract behaves
-- the same whatever the caller's session uses: strict, no zero dates, and neither ANSI_QUOTES nor
-- PIPES_AS_CONCAT.
SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';

-- Version 2 writes reversals into the matter tables receipt_reversal and receipt_reversal_line: stop
-- here, before anything is created, while they are missing.
DELIMITER //
BEGIN NOT ATOMIC
    IF (SELECT COUNT(*) FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('receipt_reversal', 'receipt_reversal_line')) < 2 THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'receipt_reversal tables are missing: run sql/mariadb/schema.sql first, or adapt the contract';
    END IF;
END//
DELIMITER ;

-- ---------------------------------------------------------------------------------------------------
-- ml_contract: one row saying which contract is installed.
-- The agent refuses any contract_version other than the one it speaks. db_epoch is made once, at the
-- first install, and never changes afterwards: it names this database's change sequence, so the payment
-- core can tell that it is talking to a different database (a copy installed fresh) and resync.
-- The invisible primary key column (not returned by SELECT *) allows a single row.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_contract (
    contract_version INT NOT NULL CHECK (contract_version > 0),
    db_epoch         VARCHAR(36) NOT NULL
                     CHECK (db_epoch REGEXP '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    installed_at     DATETIME(3) NOT NULL,
    ml_singleton     TINYINT NOT NULL INVISIBLE DEFAULT 1 CHECK (ml_singleton = 1),
    PRIMARY KEY (ml_singleton)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- ---------------------------------------------------------------------------------------------------
-- ml_change: the change log. change_id is NULL until ml_change_high_water() stamps the row (see the
-- design notes at the top). The unique key on change_id is also the index that finds the unstamped
-- rows (NULLs first, in seq_id order) and pages through the stamped ones.
-- ROW_FORMAT = REDUNDANT keeps the 8 bytes of a NULL change_id in the row, so stamping updates the row
-- in place; in the compact formats the row grows and InnoDB moves it, which made stamping twice as
-- slow (measured on 10.11: 300,000 rows in 3.6 s instead of 7.0 s).
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_change (
    seq_id     BIGINT NOT NULL AUTO_INCREMENT,
    change_id  BIGINT NULL,
    entity     VARCHAR(8) NOT NULL CHECK (entity IN ('invoice', 'trust')),
    entity_id  BIGINT NOT NULL,
    written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (seq_id),
    UNIQUE KEY ml_change_change_id (change_id)
) ENGINE = InnoDB ROW_FORMAT = REDUNDANT DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The last change_id handed out; its one row is also the stampers' lock.
CREATE TABLE IF NOT EXISTS ml_change_stamp (
    last_change_id BIGINT NOT NULL CHECK (last_change_id >= 0),
    ml_singleton   TINYINT NOT NULL INVISIBLE DEFAULT 1 CHECK (ml_singleton = 1),
    PRIMARY KEY (ml_singleton)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

INSERT INTO ml_change_stamp (last_change_id)
SELECT s.last_change_id
FROM (SELECT COALESCE(MAX(change_id), 0) AS last_change_id FROM ml_change) AS s
WHERE NOT EXISTS (SELECT 1 FROM ml_change_stamp);

-- ---------------------------------------------------------------------------------------------------
-- ml_posting_rejection: postings the agent rejected for a business reason (a final answer, not a retry).
-- The agent writes it through ml_reject_posting after rolling back the failed apply.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_posting_rejection (
    posting_uuid VARCHAR(64) NOT NULL PRIMARY KEY,
    reason       VARCHAR(1000) NOT NULL,
    rejected_at  DATETIME(3) NOT NULL DEFAULT (UTC_TIMESTAMP(3))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- ---------------------------------------------------------------------------------------------------
-- Upgrades. ml_contract_migrate() looks at the installed contract_version and brings the ml_ tables
-- from it to this version, one version at a time, before the views and procedures below are replaced.
-- A step that changes a table looks like:
--     IF v_version = 4 THEN
--         ALTER TABLE ml_change ADD COLUMN IF NOT EXISTS source VARCHAR(16) NULL;
--         SET v_version = 5;
--     END IF;
-- and the script sets contract_version in its last statement, so an agent sees the new number only
-- once everything is in place. Version 1 to 2 changes no ml_ table: the views, triggers and
-- procedures below are replaced (apply, reject, result and the rejection trigger learn reversals), and
-- the reversal tables it needs in the matter schema were checked at the top. Version 2 to 3 changes
-- nothing on MariaDB: version 3 added PostgreSQL's search index (docs/contract.md 5.8), and every
-- dialect carries the same number because the agent and the core accept one. The procedure exists
-- only while this script runs.
-- ---------------------------------------------------------------------------------------------------

DELIMITER //

CREATE OR REPLACE PROCEDURE ml_contract_migrate()
    MODIFIES SQL DATA
migrate: BEGIN
    DECLARE v_version INT;
    SELECT MAX(contract_version) INTO v_version FROM ml_contract;
    IF v_version IS NULL THEN
        -- A first install: nothing to migrate; the last statements of this script make the row.
        LEAVE migrate;
    END IF;
    -- Steps from older versions go here, oldest first.
    IF v_version = 1 THEN
        -- Nothing in the ml_ tables changes.
        SET v_version = 2;
    END IF;
    IF v_version = 2 THEN
        -- Nothing changes on MariaDB (version 3 added PostgreSQL's search index).
        SET v_version = 3;
    END IF;
    IF v_version = 3 THEN
        -- Version 4 adds the search index (ml_search_client, ml_search_matter, ml_search_invoice),
        -- which the section "Search index" below creates and fills.
        SET v_version = 4;
    END IF;
    IF v_version > 4 THEN
        -- A newer contract is installed and this older script puts version 4's views, triggers and
        -- procedures back; columns a newer version added are left alone, and the agent of that
        -- newer version will ask for its own script again.
        SET v_version = 4;
    END IF;
END//

DELIMITER ;

CALL ml_contract_migrate();
DROP PROCEDURE ml_contract_migrate;

-- ---------------------------------------------------------------------------------------------------
-- ml_posting_rejection_posted: a posting that did land (as a receipt, or as a reversal) is never also
-- recorded as rejected, so ml_posting_result has one answer. ml_reject_posting never tries; this stops
-- anyone else.
-- ---------------------------------------------------------------------------------------------------

DELIMITER //

CREATE OR REPLACE TRIGGER ml_posting_rejection_posted
BEFORE INSERT ON ml_posting_rejection
FOR EACH ROW
BEGIN
    DECLARE v_posted BIGINT;
    SELECT COUNT(*) INTO v_posted FROM receipt WHERE posting_uuid = NEW.posting_uuid;
    IF v_posted = 0 THEN
        SELECT COUNT(*) INTO v_posted FROM receipt_reversal WHERE posting_uuid = NEW.posting_uuid;
    END IF;
    IF v_posted > 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ml_posting_rejection: this posting is already posted';
    END IF;
END//

-- ---------------------------------------------------------------------------------------------------
-- Change triggers. They write ml_change only; the UPDATE triggers write only when a column the payment
-- core sees changes, so bookkeeping updates (reminder dates, e-mail addresses) add no noise. Text is
-- compared as BINARY, so a change of case or of trailing spaces counts even under a _ci collation.
-- Matter and client changes list only the invoices that are open items right now: the others are not
-- in the core's replica, and renaming a client does not change that.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE TRIGGER ml_invoice_insert
AFTER INSERT ON invoice
FOR EACH ROW
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
END//

CREATE OR REPLACE TRIGGER ml_invoice_update
AFTER UPDATE ON invoice
FOR EACH ROW
BEGIN
    IF NOT (OLD.invoice_id <=> NEW.invoice_id)
        OR NOT (BINARY OLD.invoice_number <=> BINARY NEW.invoice_number)
        OR NOT (OLD.matter_id <=> NEW.matter_id)
        OR NOT (OLD.invoice_date <=> NEW.invoice_date)
        OR NOT (OLD.due_date <=> NEW.due_date)
        OR NOT (BINARY OLD.currency <=> BINARY NEW.currency)
        OR NOT (OLD.total_minor <=> NEW.total_minor)
        OR NOT (OLD.balance_minor <=> NEW.balance_minor)
        OR NOT (BINARY OLD.status <=> BINARY NEW.status) THEN
        IF OLD.invoice_id <> NEW.invoice_id THEN
            INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', OLD.invoice_id);
        END IF;
        INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_invoice_delete
AFTER DELETE ON invoice
FOR EACH ROW
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', OLD.invoice_id);
END//

CREATE OR REPLACE TRIGGER ml_trust_entry_insert
AFTER INSERT ON trust_entry
FOR EACH ROW
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('trust', NEW.matter_id);
END//

-- Moving an entry to another matter changes both matters' balances.
CREATE OR REPLACE TRIGGER ml_trust_entry_update
AFTER UPDATE ON trust_entry
FOR EACH ROW
BEGIN
    IF NOT (OLD.matter_id <=> NEW.matter_id)
        OR NOT (OLD.amount_minor <=> NEW.amount_minor)
        OR NOT (BINARY OLD.currency <=> BINARY NEW.currency) THEN
        INSERT INTO ml_change (entity, entity_id) VALUES ('trust', OLD.matter_id);
        IF NEW.matter_id <> OLD.matter_id THEN
            INSERT INTO ml_change (entity, entity_id) VALUES ('trust', NEW.matter_id);
        END IF;
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_trust_entry_delete
AFTER DELETE ON trust_entry
FOR EACH ROW
BEGIN
    INSERT INTO ml_change (entity, entity_id) VALUES ('trust', OLD.matter_id);
END//

-- Matter number, description and client appear in every item of the matter.
CREATE OR REPLACE TRIGGER ml_matter_update
AFTER UPDATE ON matter
FOR EACH ROW
BEGIN
    IF NOT (OLD.matter_id <=> NEW.matter_id)
        OR NOT (BINARY OLD.matter_number <=> BINARY NEW.matter_number)
        OR NOT (OLD.client_id <=> NEW.client_id)
        OR NOT (BINARY OLD.description <=> BINARY NEW.description)
        OR NOT (BINARY OLD.status <=> BINARY NEW.status) THEN
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'invoice', invoice_id FROM invoice
        WHERE matter_id IN (OLD.matter_id, NEW.matter_id) AND status = 'open' AND balance_minor > 0
        ORDER BY invoice_id;
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'trust', OLD.matter_id FROM DUAL
        WHERE OLD.matter_id <> NEW.matter_id
            OR EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = OLD.matter_id);
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'trust', NEW.matter_id FROM DUAL
        WHERE NEW.matter_id <> OLD.matter_id
            AND EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = NEW.matter_id);
    END IF;
END//

-- Foreign keys normally forbid deleting a matter or client that still has invoices or trust entries;
-- where they are switched off (foreign_key_checks = 0), the orphaned items must still leave the core.
CREATE OR REPLACE TRIGGER ml_matter_delete
AFTER DELETE ON matter
FOR EACH ROW
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', invoice_id FROM invoice
    WHERE matter_id = OLD.matter_id AND status = 'open' AND balance_minor > 0
    ORDER BY invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', OLD.matter_id FROM DUAL
    WHERE EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = OLD.matter_id);
END//

-- Client number and name appear in every item of every matter of the client.
CREATE OR REPLACE TRIGGER ml_client_update
AFTER UPDATE ON client
FOR EACH ROW
BEGIN
    IF NOT (OLD.client_id <=> NEW.client_id)
        OR NOT (BINARY OLD.client_number <=> BINARY NEW.client_number)
        OR NOT (BINARY OLD.name <=> BINARY NEW.name) THEN
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
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_client_delete
AFTER DELETE ON client
FOR EACH ROW
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
END//

DELIMITER ;

-- ---------------------------------------------------------------------------------------------------
-- Item views. All three return the same item columns, in this order and with these types:
--   item_kind VARCHAR, source_id BIGINT, invoice_number VARCHAR, invoice_date VARCHAR 'YYYY-MM-DD',
--   due_date VARCHAR, client_number VARCHAR, client_name VARCHAR, matter_number VARCHAR,
--   matter_description VARCHAR, currency VARCHAR, total_minor BIGINT, balance_minor BIGINT,
--   status VARCHAR
-- An invoice item is keyed ('invoice', invoice_id), a trust item ('trust', matter_id). NULLs are cast
-- to the column's type and SUM() back to BIGINT (it returns DECIMAL), so the ODBC driver describes
-- every column the same way in every view; CHAR columns are cast to VARCHAR. (A BIGINT NULL is written
-- IF(FALSE, <BIGINT column>, NULL): CAST(NULL AS SIGNED) would be a 32-bit INT.)
-- ALGORITHM = MERGE folds each view into the procedure's query, and STRAIGHT_JOIN keeps the keyed
-- table first, so "source_id > ? ORDER BY source_id LIMIT ?" reads the primary key in order and stops
-- after the page. Left to itself, with statistics not yet updated after a bulk load, the optimizer
-- started from client and sorted every open invoice for each page (measured: 6 s for a 50,000-row page
-- of 1,000,000 invoices, instead of a fraction of a second).
-- ---------------------------------------------------------------------------------------------------

-- Open invoices: status 'open' with something still owed.
CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_open_items AS
SELECT 'invoice'                                AS item_kind,
       i.invoice_id                             AS source_id,
       i.invoice_number                         AS invoice_number,
       DATE_FORMAT(i.invoice_date, '%Y-%m-%d')  AS invoice_date,
       DATE_FORMAT(i.due_date, '%Y-%m-%d')      AS due_date,
       c.client_number                          AS client_number,
       c.name                                   AS client_name,
       m.matter_number                          AS matter_number,
       m.description                            AS matter_description,
       CAST(i.currency AS CHAR(3))              AS currency,
       i.total_minor                            AS total_minor,
       i.balance_minor                          AS balance_minor,
       i.status                                 AS status
FROM invoice AS i
STRAIGHT_JOIN matter AS m ON m.matter_id = i.matter_id
STRAIGHT_JOIN client AS c ON c.client_id = m.client_id
WHERE i.status = 'open' AND i.balance_minor > 0;

-- One row per matter with at least one trust entry; the balance is the sum of its entries (may be 0).
-- A matter's trust entries share one currency (schema.sql enforces it), so MIN() picks that currency.
CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_trust_balances AS
SELECT 'trust'                                  AS item_kind,
       m.matter_id                              AS source_id,
       CAST(NULL AS CHAR(32))                   AS invoice_number,
       CAST(NULL AS CHAR(10))                   AS invoice_date,
       CAST(NULL AS CHAR(10))                   AS due_date,
       c.client_number                          AS client_number,
       c.name                                   AS client_name,
       m.matter_number                          AS matter_number,
       m.description                            AS matter_description,
       CAST((SELECT MIN(t.currency) FROM trust_entry AS t WHERE t.matter_id = m.matter_id) AS CHAR(3))   AS currency,
       IF(FALSE, m.matter_id, NULL)             AS total_minor,
       CAST((SELECT SUM(t.amount_minor) FROM trust_entry AS t WHERE t.matter_id = m.matter_id) AS SIGNED) AS balance_minor,
       'trust'                                  AS status
FROM matter AS m
STRAIGHT_JOIN client AS c ON c.client_id = m.client_id
WHERE EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id);

-- One row per stamped ml_change row, with the entity's state as it is now. op is 'upsert' when the
-- entity is an item now (it would appear in ml_open_items or ml_trust_balances), else 'remove'
-- (deleted, paid, void, closed, zero balance, no trust entries left); a 'remove' row carries only
-- change_id, op, item_kind and source_id, every other column is NULL. Because a row is the current
-- state, applying it twice, or after a snapshot that already saw it, changes nothing. Unstamped rows
-- (change_id NULL) are not changes yet.
CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_changes AS
SELECT ch.change_id                                                        AS change_id,
       CASE WHEN c.client_id IS NULL THEN 'remove' ELSE 'upsert' END       AS op,
       ch.entity                                                           AS item_kind,
       ch.entity_id                                                        AS source_id,
       CASE WHEN c.client_id IS NOT NULL THEN i.invoice_number END         AS invoice_number,
       CASE WHEN c.client_id IS NOT NULL THEN DATE_FORMAT(i.invoice_date, '%Y-%m-%d') END AS invoice_date,
       CASE WHEN c.client_id IS NOT NULL THEN DATE_FORMAT(i.due_date, '%Y-%m-%d') END     AS due_date,
       c.client_number                                                     AS client_number,
       c.name                                                              AS client_name,
       CASE WHEN c.client_id IS NOT NULL THEN m.matter_number END          AS matter_number,
       CASE WHEN c.client_id IS NOT NULL THEN m.description END            AS matter_description,
       CAST(CASE WHEN c.client_id IS NULL THEN NULL
                 WHEN ch.entity = 'invoice' THEN i.currency
                 ELSE (SELECT MIN(t.currency) FROM trust_entry AS t WHERE t.matter_id = ch.entity_id)
            END AS CHAR(3))                                                AS currency,
       CASE WHEN c.client_id IS NOT NULL THEN i.total_minor END            AS total_minor,
       CAST(CASE WHEN c.client_id IS NULL THEN NULL
                 WHEN ch.entity = 'invoice' THEN i.balance_minor
                 ELSE (SELECT SUM(t.amount_minor) FROM trust_entry AS t WHERE t.matter_id = ch.entity_id)
            END AS SIGNED)                                                 AS balance_minor,
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
    ON c.client_id = m.client_id
WHERE ch.change_id IS NOT NULL;

-- The outcome of every posting this database has seen, by posting_uuid. receipt_id is text, as the
-- payment service carries it: the receipt's id, or for a reversal 'R-' and the receipt_reversal_id, so
-- a reversal is never taken for a receipt.
CREATE OR REPLACE VIEW ml_posting_result AS
SELECT r.posting_uuid                           AS posting_uuid,
       'posted'                                 AS status,
       CAST(r.receipt_id AS CHAR(22))           AS receipt_id,
       CAST(NULL AS CHAR(1000))                 AS reason
FROM receipt AS r
UNION ALL
SELECT v.posting_uuid                           AS posting_uuid,
       'posted'                                 AS status,
       CAST(CONCAT('R-', v.receipt_reversal_id) AS CHAR(22)) AS receipt_id,
       CAST(NULL AS CHAR(1000))                 AS reason
FROM receipt_reversal AS v
UNION ALL
SELECT x.posting_uuid                           AS posting_uuid,
       'rejected'                               AS status,
       CAST(NULL AS CHAR(22))                   AS receipt_id,
       x.reason                                 AS reason
FROM ml_posting_rejection AS x
WHERE NOT EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = x.posting_uuid)
  AND NOT EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = x.posting_uuid);

-- ---------------------------------------------------------------------------------------------------
-- Read procedures: one keyset page each. A NULL or negative limit reads nothing.
-- ---------------------------------------------------------------------------------------------------

DELIMITER //

CREATE OR REPLACE PROCEDURE ml_open_items(IN p_after BIGINT, IN p_limit BIGINT)
    READS SQL DATA
BEGIN
    DECLARE v_limit BIGINT UNSIGNED DEFAULT GREATEST(COALESCE(p_limit, 0), 0);
    SELECT item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name,
           matter_number, matter_description, currency, total_minor, balance_minor, status
    FROM ml_open_items
    WHERE source_id > COALESCE(p_after, 0)
    ORDER BY source_id
    LIMIT v_limit;
END//

CREATE OR REPLACE PROCEDURE ml_trust_balances(IN p_after BIGINT, IN p_limit BIGINT)
    READS SQL DATA
BEGIN
    DECLARE v_limit BIGINT UNSIGNED DEFAULT GREATEST(COALESCE(p_limit, 0), 0);
    SELECT item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name,
           matter_number, matter_description, currency, total_minor, balance_minor, status
    FROM ml_trust_balances
    WHERE source_id > COALESCE(p_after, 0)
    ORDER BY source_id
    LIMIT v_limit;
END//

-- since < change_id <= upto, where upto is a high-water mark the agent read before its first page.
CREATE OR REPLACE PROCEDURE ml_changes_since(IN p_since BIGINT, IN p_upto BIGINT, IN p_limit BIGINT)
    READS SQL DATA
BEGIN
    DECLARE v_limit BIGINT UNSIGNED DEFAULT GREATEST(COALESCE(p_limit, 0), 0);
    SELECT change_id, op, item_kind, source_id, invoice_number, invoice_date, due_date, client_number,
           client_name, matter_number, matter_description, currency, total_minor, balance_minor, status
    FROM ml_changes
    WHERE change_id > COALESCE(p_since, 0) AND change_id <= COALESCE(p_upto, 0)
    ORDER BY change_id
    LIMIT v_limit;
END//

CREATE OR REPLACE PROCEDURE ml_posting_result(IN p_uuid VARCHAR(255) CHARACTER SET utf8mb4)
    READS SQL DATA
BEGIN
    -- The view's branches written out, so each is one index look-up however many receipts exist.
    SELECT r.posting_uuid                       AS posting_uuid,
           'posted'                             AS status,
           CAST(r.receipt_id AS CHAR(22))       AS receipt_id,
           CAST(NULL AS CHAR(1000))             AS reason
    FROM receipt AS r
    WHERE r.posting_uuid = p_uuid
    UNION ALL
    SELECT v.posting_uuid, 'posted', CAST(CONCAT('R-', v.receipt_reversal_id) AS CHAR(22)), CAST(NULL AS CHAR(1000))
    FROM receipt_reversal AS v
    WHERE v.posting_uuid = p_uuid
    UNION ALL
    SELECT x.posting_uuid, 'rejected', CAST(NULL AS CHAR(22)), x.reason
    FROM ml_posting_rejection AS x
    WHERE x.posting_uuid = p_uuid
      AND NOT EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = x.posting_uuid)
      AND NOT EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = x.posting_uuid);
END//

-- ---------------------------------------------------------------------------------------------------
-- ml_change_high_water(): stamp committed changes, return the highest change_id handed out.
-- One result set, one row, one BIGINT column: high_water. See the design notes at the top.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_change_high_water()
    MODIFIES SQL DATA
BEGIN
    -- With autocommit on and no transaction open, every statement below would commit on its own and
    -- the stamp lock would be gone after the first one: run in a transaction of our own instead.
    DECLARE v_own BOOLEAN DEFAULT @@autocommit = 1 AND @@in_transaction = 0;
    DECLARE v_last BIGINT DEFAULT NULL;
    DECLARE v_max BIGINT DEFAULT 0;
    DECLARE v_rows BIGINT DEFAULT 0;
    DECLARE v_pending LONGTEXT DEFAULT NULL;
    DECLARE v_locked LONGTEXT DEFAULT NULL;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        IF v_own THEN
            ROLLBACK;
        END IF;
        RESIGNAL;
    END;

    IF v_own THEN
        START TRANSACTION;
    END IF;

    -- The stamp lock. An aggregate always returns a row: NULL means another stamper holds the lock.
    SELECT MAX(last_change_id) INTO v_last FROM ml_change_stamp FOR UPDATE SKIP LOCKED;

    IF v_last IS NULL THEN
        SELECT COUNT(*) INTO v_rows FROM ml_change_stamp;
        IF v_rows = 0 THEN
            SIGNAL SQLSTATE '45000'
                SET MESSAGE_TEXT = 'ml_change_stamp has no row: run sql/mariadb/contract.sql again';
        END IF;
        -- Another stamper is at work: everything it hands out will be above what is committed now.
        SELECT GREATEST((SELECT COALESCE(MAX(last_change_id), 0) FROM ml_change_stamp),
                        (SELECT COALESCE(MAX(change_id), 0) FROM ml_change))
        INTO v_last;
    ELSE
        -- Numbers never go below a change_id already in the table (for example one written by hand).
        SELECT COALESCE(MAX(change_id), 0) INTO v_max FROM ml_change;
        SET v_last = GREATEST(v_last, v_max);

        -- 1. Committed rows without a number, oldest first: a consistent read, no locks.
        SET STATEMENT group_concat_max_len = 67108864 FOR
        SELECT JSON_ARRAYAGG(pending.seq_id ORDER BY pending.seq_id) INTO v_pending
        FROM (SELECT seq_id FROM ml_change WHERE change_id IS NULL ORDER BY seq_id LIMIT 100000) AS pending;

        IF v_pending IS NOT NULL THEN
            -- 2. Lock them one primary key at a time, skipping any row another transaction holds.
            SET v_rows = 0;
            SET STATEMENT group_concat_max_len = 67108864 FOR
            SELECT JSON_ARRAYAGG(c.seq_id ORDER BY c.seq_id), COUNT(*) INTO v_locked, v_rows
            FROM JSON_TABLE(v_pending, '$[*]' COLUMNS (seq_id BIGINT PATH '$')) AS p
            STRAIGHT_JOIN ml_change AS c FORCE INDEX (PRIMARY) ON c.seq_id = p.seq_id
            WHERE c.change_id IS NULL
            FOR UPDATE SKIP LOCKED;

            -- 3. Number them in seq_id order, after the last number handed out.
            IF v_rows > 0 THEN
                UPDATE JSON_TABLE(v_locked, '$[*]' COLUMNS (n FOR ORDINALITY, seq_id BIGINT PATH '$')) AS b
                STRAIGHT_JOIN ml_change AS c FORCE INDEX (PRIMARY) ON c.seq_id = b.seq_id
                SET c.change_id = v_last + b.n;
                SET v_last = v_last + v_rows;
            END IF;
        END IF;

        UPDATE ml_change_stamp SET last_change_id = v_last WHERE last_change_id <> v_last;
    END IF;

    IF v_own THEN
        COMMIT;
    END IF;
    SELECT v_last AS high_water;
END//

-- ---------------------------------------------------------------------------------------------------
-- ml_apply_posting(posting): apply one posting, exactly once, in the caller's transaction.
--
--   CALL ml_apply_posting(?)          -- inside the agent's transaction
--   CALL ml_posting_result(?)         -- same transaction; the agent commits, then acknowledges
--
-- The posting is one JSON object (docs/contract.md, "apply_posting"). The procedure:
--   a) does nothing at all when the posting_uuid is already posted or rejected (replay);
--   b) checks everything, in the order listed in docs/contract.md, and stops at the first problem with
--      SIGNAL SQLSTATE '45001' SET MESSAGE_TEXT = 'ML001 <code>', before anything is written;
--   c) writes the receipt, one receipt_allocation per line, pays down the invoices and books trust
--      deposits; or, for a reversal (a posting whose "reverses" names the posting it gives money back
--      from), one receipt_reversal, one receipt_reversal_line per line, gives the amounts back to the
--      invoices (a paid one is open again) and withdraws them from the trust ledgers. The change
--      triggers record the invoice and trust changes in ml_change.
-- A reversal runs checks 1 to 8, 17 to 20, 11 (duplicate_line) and 21 to 26 of
-- docs/contract.md section 7 in place of 9 to 16. It locks the original receipt (FOR UPDATE) first,
-- so two reversals of one posting take turns, then its invoices and matters as below, and reads what
-- earlier reversals took back and the trust balances with locking reads (the latest committed rows).
-- Every invoice it pays is locked (SELECT ... FOR UPDATE, in invoice_id order) before its status,
-- currency and balance are checked, and every trust line's matter likewise (in matter_id order), so
-- what was checked is what is written, whatever the isolation level: the checks read the locked rows,
-- never an older snapshot. Text from the posting is held in utf8mb4_nopad_bin, so it matches names
-- byte for byte. With autocommit on (a call by hand) it runs in a transaction of its own.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_apply_posting(IN p_posting LONGTEXT CHARACTER SET utf8mb4)
    MODIFIES SQL DATA
proc: BEGIN
    DECLARE v_own BOOLEAN DEFAULT @@autocommit = 1 AND @@in_transaction = 0;
    DECLARE v_code VARCHAR(64) DEFAULT NULL;
    DECLARE v_message VARCHAR(128);
    DECLARE v_seen BIGINT DEFAULT 0;
    DECLARE v_count BIGINT DEFAULT 0;
    DECLARE v_done BOOLEAN DEFAULT FALSE;
    DECLARE v_id BIGINT;
    DECLARE v_number VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_status VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_line_currency VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_balance BIGINT;
    DECLARE v_matter_id BIGINT;
    DECLARE v_owner BIGINT;
    DECLARE v_other_currency BIGINT;
    DECLARE v_uuid LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_received_text LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_received_on DATE;
    DECLARE v_account_number LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_client_number LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_currency LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_amount_text LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_amount BIGINT;
    DECLARE v_sum DECIMAL(24, 0);
    DECLARE v_account_id BIGINT;
    DECLARE v_account_type VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_account_currency VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_client_id BIGINT;
    DECLARE v_receipt_id BIGINT;
    DECLARE v_total BIGINT;
    -- A reversal: the posting it gives money back from (NULL: not a reversal), and that receipt.
    DECLARE v_reverses VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT NULL;
    DECLARE v_original_id BIGINT;
    DECLARE v_original_account BIGINT;
    DECLARE v_original_client BIGINT;
    DECLARE v_original_currency VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin;
    DECLARE v_reversal_id BIGINT;
    DECLARE v_line INT;
    DECLARE v_allocation BIGINT;
    DECLARE v_given BIGINT;
    DECLARE v_taken BIGINT;
    DECLARE v_trust BIGINT;
    -- Invoices and trust-line matters named by the posting, in id order (a consistent read; each id
    -- is then locked and read again by primary key).
    DECLARE c_invoices CURSOR FOR
        SELECT DISTINCT i.invoice_id
        FROM ml_posting_line AS l
        JOIN invoice AS i ON i.invoice_number = l.reference
        WHERE l.kind = 'invoice'
        ORDER BY i.invoice_id;
    DECLARE c_matters CURSOR FOR
        SELECT DISTINCT m.matter_id
        FROM ml_posting_line AS l
        JOIN matter AS m ON m.matter_number = l.reference
        WHERE l.kind = 'trust'
        ORDER BY m.matter_id;
    -- A reversal's lines and the allocation line of the original receipt each takes back from: the
    -- same kind and invoice or matter number (a consistent read: allocation lines never change).
    DECLARE c_reversed CURSOR FOR
        SELECT l.line_no, ra.receipt_allocation_id, ra.amount_minor
        FROM ml_posting_line AS l
        JOIN receipt_allocation AS ra ON ra.receipt_id = v_original_id AND ra.kind = l.kind
        LEFT JOIN invoice AS i ON i.invoice_id = ra.invoice_id
        LEFT JOIN matter AS m ON m.matter_id = ra.matter_id
        WHERE CASE ra.kind WHEN 'invoice' THEN i.invoice_number ELSE m.matter_number END = l.reference
        ORDER BY l.line_no;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        DROP TEMPORARY TABLE IF EXISTS ml_posting_line;
        IF v_own THEN
            ROLLBACK;
        END IF;
        RESIGNAL;
    END;

    DROP TEMPORARY TABLE IF EXISTS ml_posting_line;

    -- The posting must at least be a JSON object with a text posting_uuid to be looked up.
    IF COALESCE(JSON_VALID(p_posting), 0) = 0 THEN
        SIGNAL SQLSTATE '45001' SET MESSAGE_TEXT = 'ML001 bad_posting';
    END IF;
    IF NOT (JSON_TYPE(p_posting) <=> 'OBJECT')
        OR NOT (JSON_TYPE(JSON_EXTRACT(p_posting, '$.posting_uuid')) <=> 'STRING') THEN
        SIGNAL SQLSTATE '45001' SET MESSAGE_TEXT = 'ML001 bad_posting';
    END IF;
    SET v_uuid = JSON_VALUE(p_posting, '$.posting_uuid');

    -- a) Replay: the first answer stands, whatever this copy of the posting says. Locking reads see
    -- the latest committed rows, and wait for a transaction that is writing this very uuid.
    SELECT COUNT(*) INTO v_seen FROM receipt WHERE posting_uuid = v_uuid LOCK IN SHARE MODE;
    IF v_seen = 0 THEN
        SELECT COUNT(*) INTO v_seen FROM receipt_reversal WHERE posting_uuid = v_uuid LOCK IN SHARE MODE;
    END IF;
    IF v_seen = 0 THEN
        SELECT COUNT(*) INTO v_seen FROM ml_posting_rejection WHERE posting_uuid = v_uuid LOCK IN SHARE MODE;
    END IF;
    IF v_seen > 0 THEN
        LEAVE proc;
    END IF;

    IF v_own THEN
        START TRANSACTION;
    END IF;

    -- The lines, one row each, in the posting's order. Text is cut to a length no real number reaches,
    -- so an over-long value can only fail to match; kind and reference are kept only when they are
    -- JSON strings; amount_text is the amount as written in the JSON (1e3 and 100.0 stay visible).
    CREATE TEMPORARY TABLE ml_posting_line (
        line_no      INT NOT NULL PRIMARY KEY,
        line_type    VARCHAR(16) NULL,
        kind         VARCHAR(16) NULL,
        ref_type     VARCHAR(16) NULL,
        reference    VARCHAR(255) NULL,
        amount_text  VARCHAR(64) NULL,
        amount_minor BIGINT NULL,
        target_id    BIGINT NULL,
        status       VARCHAR(16) NULL,
        currency     VARCHAR(16) NULL,
        balance      BIGINT NULL,
        owner_id     BIGINT NULL,
        other_currency BIGINT NULL,
        total        BIGINT NULL,          -- the invoice's total (reversals)
        trust_balance BIGINT NULL,         -- the matter's trust balance (reversals)
        allocation_id BIGINT NULL,         -- the original's allocation line it takes back from (reversals)
        given        BIGINT NULL,          -- what that line gave
        taken        BIGINT NULL,          -- what earlier reversals took back from it
        KEY ml_posting_line_reference (kind, reference)
    ) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

    -- b) Validation, in the order of docs/contract.md section 7; the first failure wins.
    validate: BEGIN
        -- 1 bad_posting: shape. A canonical lower-case UUID (so one posting cannot arrive under two
        -- spellings), a real date, text fields, 1 to 1000 allocation lines each naming what it pays.
        SET v_received_text = IF(JSON_TYPE(JSON_EXTRACT(p_posting, '$.received_on')) <=> 'STRING',
                                 JSON_VALUE(p_posting, '$.received_on'), NULL);
        SET v_account_number = IF(JSON_TYPE(JSON_EXTRACT(p_posting, '$.account_number')) <=> 'STRING',
                                  JSON_VALUE(p_posting, '$.account_number'), NULL);
        SET v_client_number = IF(JSON_TYPE(JSON_EXTRACT(p_posting, '$.client_number')) <=> 'STRING',
                                 JSON_VALUE(p_posting, '$.client_number'), NULL);
        SET v_currency = IF(JSON_TYPE(JSON_EXTRACT(p_posting, '$.currency')) <=> 'STRING',
                            JSON_VALUE(p_posting, '$.currency'), NULL);
        -- (REGEXP's $ also matches before a final newline, hence the length checks.)
        IF CHAR_LENGTH(v_uuid) <> 36
            OR NOT (v_uuid REGEXP '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
            OR v_received_text IS NULL
            OR NOT (v_received_text REGEXP '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')
            OR NOT (DATE_FORMAT(CAST(v_received_text AS DATE), '%Y-%m-%d') <=> v_received_text)
            OR v_account_number IS NULL
            OR v_client_number IS NULL
            OR v_currency IS NULL
            OR CHAR_LENGTH(v_currency) <> 3
            OR NOT (v_currency REGEXP '^[A-Z]{3}$')
            OR COALESCE(JSON_TYPE(JSON_EXTRACT(p_posting, '$.payer_name')), 'NULL') NOT IN ('STRING', 'NULL')
            OR COALESCE(JSON_TYPE(JSON_EXTRACT(p_posting, '$.payer_email')), 'NULL') NOT IN ('STRING', 'NULL')
            OR COALESCE(JSON_TYPE(JSON_EXTRACT(p_posting, '$.ar_message')), 'NULL') NOT IN ('STRING', 'NULL')
            OR COALESCE(JSON_TYPE(JSON_EXTRACT(p_posting, '$.processor_txn')), 'NULL') NOT IN ('STRING', 'NULL')
            OR COALESCE(JSON_TYPE(JSON_EXTRACT(p_posting, '$.reverses')), 'NULL') NOT IN ('STRING', 'NULL')
            OR NOT (JSON_TYPE(JSON_EXTRACT(p_posting, '$.allocations')) <=> 'ARRAY')
            OR NOT (JSON_LENGTH(p_posting, '$.allocations') BETWEEN 1 AND 1000) THEN
            SET v_code = 'bad_posting';
            LEAVE validate;
        END IF;
        SET v_received_on = CAST(v_received_text AS DATE);
        -- "reverses": null or missing, or the canonical UUID of another posting.
        IF JSON_TYPE(JSON_EXTRACT(p_posting, '$.reverses')) <=> 'STRING' THEN
            SET v_reverses = LEFT(JSON_VALUE(p_posting, '$.reverses'), 64);
            IF CHAR_LENGTH(v_reverses) <> 36
                OR NOT (v_reverses REGEXP '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
                OR v_reverses = v_uuid THEN
                SET v_code = 'bad_posting';
                LEAVE validate;
            END IF;
        END IF;

        -- BINARY: a kind of "Invoice" is not "invoice".
        INSERT INTO ml_posting_line (line_no, line_type, kind, ref_type, reference, amount_text)
        SELECT x.line_no, x.line_type, x.kind, JSON_TYPE(x.ref), LEFT(JSON_UNQUOTE(x.ref), 255), x.amount_text
        FROM (SELECT a.line_no AS line_no,
                     JSON_TYPE(a.line) AS line_type,
                     IF(JSON_TYPE(JSON_EXTRACT(a.line, '$.kind')) <=> 'STRING',
                        LEFT(JSON_VALUE(a.line, '$.kind'), 16), NULL) AS kind,
                     CASE BINARY JSON_VALUE(a.line, '$.kind')
                         WHEN 'invoice' THEN JSON_EXTRACT(a.line, '$.invoice_number')
                         WHEN 'trust' THEN JSON_EXTRACT(a.line, '$.matter_number')
                     END AS ref,
                     LEFT(JSON_EXTRACT(a.line, '$.amount_minor'), 64) AS amount_text
              FROM JSON_TABLE(p_posting, '$.allocations[*]'
                              COLUMNS (line_no FOR ORDINALITY, line JSON PATH '$')) AS a) AS x;
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE NOT (line_type <=> 'OBJECT')
           OR NOT (kind <=> 'invoice' OR kind <=> 'trust')
           OR NOT (ref_type <=> 'STRING');
        IF v_count > 0 THEN
            SET v_code = 'bad_posting';
            LEAVE validate;
        END IF;

        -- 2 unknown_account, 3 client_not_found. (Aggregates always return a row.)
        SELECT MAX(bank_account_id), MAX(account_type), MAX(currency)
        INTO v_account_id, v_account_type, v_account_currency
        FROM bank_account WHERE account_number = v_account_number;
        IF v_account_id IS NULL THEN
            SET v_code = 'unknown_account';
            LEAVE validate;
        END IF;
        SELECT MAX(client_id) INTO v_client_id FROM client WHERE client_number = v_client_number;
        IF v_client_id IS NULL THEN
            SET v_code = 'client_not_found';
            LEAVE validate;
        END IF;

        -- 4 bad_amount: JSON integers (never 250.00, 1e3 or "25000") from 1 to 999 999 999 999 999.
        -- The cap keeps the sum of up to 1000 lines far from BIGINT overflow, which would be an SQL
        -- error, not an answer.
        SET v_amount_text = LEFT(JSON_EXTRACT(p_posting, '$.amount_minor'), 64);
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE NOT COALESCE(amount_text REGEXP '^[0-9]{1,15}$'
                           AND CAST(amount_text AS UNSIGNED) BETWEEN 1 AND 999999999999999, FALSE);
        IF v_count > 0
            OR NOT COALESCE(v_amount_text REGEXP '^[0-9]{1,15}$'
                            AND CAST(v_amount_text AS UNSIGNED) BETWEEN 1 AND 999999999999999, FALSE) THEN
            SET v_code = 'bad_amount';
            LEAVE validate;
        END IF;
        SET v_amount = CAST(v_amount_text AS SIGNED);
        UPDATE ml_posting_line SET amount_minor = CAST(amount_text AS SIGNED);

        -- 5 allocation_sum_mismatch
        SELECT COALESCE(SUM(amount_minor), 0) INTO v_sum FROM ml_posting_line;
        IF v_sum <> v_amount THEN
            SET v_code = 'allocation_sum_mismatch';
            LEAVE validate;
        END IF;

        -- 6 currency_mismatch: the account's currency.
        IF NOT (v_account_currency <=> v_currency) THEN
            SET v_code = 'currency_mismatch';
            LEAVE validate;
        END IF;

        -- 7, 8: invoices are paid into OPERATING accounts and trust deposits go to TRUST accounts; one
        -- posting is one deposit into one account, so it never mixes the two.
        SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE kind = 'invoice';
        IF v_count > 0 AND NOT (v_account_type <=> 'OPERATING') THEN
            SET v_code = 'operating_account_required';
            LEAVE validate;
        END IF;
        SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE kind = 'trust';
        IF v_count > 0 AND NOT (v_account_type <=> 'TRUST') THEN
            SET v_code = 'trust_account_required';
            LEAVE validate;
        END IF;

        IF v_reverses IS NOT NULL THEN
            -- 17 original_not_posted: the original is a receipt; a posting that was rejected, never
            -- arrived, or is itself a reversal has none. Locked, so reversals of it take turns.
            SELECT MAX(receipt_id), MAX(bank_account_id), MAX(client_id), MAX(currency)
            INTO v_original_id, v_original_account, v_original_client, v_original_currency
            FROM receipt WHERE posting_uuid = v_reverses FOR UPDATE;
            IF v_original_id IS NULL THEN
                SET v_code = 'original_not_posted';
                LEAVE validate;
            END IF;
            -- 18-20: the money goes back out of the account it came into, for the client that paid,
            -- in its currency.
            IF NOT (v_original_account <=> v_account_id) THEN
                SET v_code = 'reversal_account_mismatch';
                LEAVE validate;
            END IF;
            IF NOT (v_original_client <=> v_client_id) THEN
                SET v_code = 'reversal_client_mismatch';
                LEAVE validate;
            END IF;
            IF NOT (v_original_currency <=> v_currency) THEN
                SET v_code = 'reversal_currency_mismatch';
                LEAVE validate;
            END IF;
            -- 11 duplicate_line
            SELECT COUNT(*) INTO v_count
            FROM (SELECT 1 FROM ml_posting_line GROUP BY kind, reference HAVING COUNT(*) > 1) AS d;
            IF v_count > 0 THEN
                SET v_code = 'duplicate_line';
                LEAVE validate;
            END IF;
        END IF;

        -- Lock every invoice the posting names, in invoice_id order, and read it as locked.
        SET v_done = FALSE;
        OPEN c_invoices;
        lock_invoices: LOOP
            FETCH c_invoices INTO v_id;
            IF v_done THEN
                LEAVE lock_invoices;
            END IF;
            SET v_number = NULL;
            SELECT MAX(invoice_number), MAX(status), MAX(currency), MAX(balance_minor), MAX(matter_id),
                   MAX(total_minor)
            INTO v_number, v_status, v_line_currency, v_balance, v_matter_id, v_total
            FROM invoice WHERE invoice_id = v_id FOR UPDATE;
            SELECT MAX(client_id) INTO v_owner FROM matter WHERE matter_id = v_matter_id LOCK IN SHARE MODE;
            UPDATE ml_posting_line
            SET target_id = v_id, status = v_status, currency = v_line_currency, balance = v_balance,
                owner_id = v_owner, total = v_total
            WHERE kind = 'invoice' AND reference = v_number;
            IF ROW_COUNT() = 0 THEN
                -- Renumbered or deleted since the cursor read it: not a business answer, try again.
                SIGNAL SQLSTATE '40001'
                    SET MESSAGE_TEXT = 'ml_apply_posting: an invoice changed while it was being locked; try again';
            END IF;
        END LOOP;
        CLOSE c_invoices;

        -- Lock every trust line's matter, in matter_id order: trust_entry writers lock it too.
        SET v_done = FALSE;
        OPEN c_matters;
        lock_matters: LOOP
            FETCH c_matters INTO v_id;
            IF v_done THEN
                LEAVE lock_matters;
            END IF;
            SET v_number = NULL;
            SELECT MAX(matter_number), MAX(client_id) INTO v_number, v_owner
            FROM matter WHERE matter_id = v_id FOR UPDATE;
            SELECT COUNT(*) INTO v_other_currency FROM trust_entry
            WHERE matter_id = v_id AND currency <> v_currency LOCK IN SHARE MODE;
            SET v_trust = NULL;
            IF v_reverses IS NOT NULL THEN
                SELECT COALESCE(SUM(amount_minor), 0) INTO v_trust FROM trust_entry
                WHERE matter_id = v_id LOCK IN SHARE MODE;
            END IF;
            UPDATE ml_posting_line
            SET target_id = v_id, owner_id = v_owner, other_currency = v_other_currency, trust_balance = v_trust
            WHERE kind = 'trust' AND reference = v_number;
            IF ROW_COUNT() = 0 THEN
                SIGNAL SQLSTATE '40001'
                    SET MESSAGE_TEXT = 'ml_apply_posting: a matter changed while it was being locked; try again';
            END IF;
        END LOOP;
        CLOSE c_matters;

        IF v_reverses IS NOT NULL THEN
            -- 21 reversal_line_not_in_original: each line takes back from the original's line of the
            -- same kind and invoice or matter number; with what earlier reversals took back from it
            -- (a locking read: the latest committed reversals; the original receipt is locked).
            SET v_done = FALSE;
            OPEN c_reversed;
            match_lines: LOOP
                FETCH c_reversed INTO v_line, v_allocation, v_given;
                IF v_done THEN
                    LEAVE match_lines;
                END IF;
                SELECT COALESCE(SUM(amount_minor), 0) INTO v_taken FROM receipt_reversal_line
                WHERE receipt_allocation_id = v_allocation LOCK IN SHARE MODE;
                UPDATE ml_posting_line SET allocation_id = v_allocation, given = v_given, taken = v_taken
                WHERE line_no = v_line;
            END LOOP;
            CLOSE c_reversed;
            SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE allocation_id IS NULL;
            IF v_count > 0 THEN
                SET v_code = 'reversal_line_not_in_original';
                LEAVE validate;
            END IF;
            -- 22 reversal_exceeds_original: this reversal and the earlier ones never take back more
            -- than a line gave.
            SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE amount_minor + taken > given;
            IF v_count > 0 THEN
                SET v_code = 'reversal_exceeds_original';
                LEAVE validate;
            END IF;
            -- 23 reversal_invoice_closed: a void or closed invoice takes nothing back (a paid one
            -- opens again); 24 reversal_currency_mismatch: nor one whose currency changed since;
            -- 25 reversal_exceeds_invoice_total: a balance never grows above the invoice's total.
            SELECT COUNT(*) INTO v_count FROM ml_posting_line
            WHERE kind = 'invoice' AND NOT (status <=> 'open' OR status <=> 'paid');
            IF v_count > 0 THEN
                SET v_code = 'reversal_invoice_closed';
                LEAVE validate;
            END IF;
            SELECT COUNT(*) INTO v_count FROM ml_posting_line
            WHERE kind = 'invoice' AND NOT (currency <=> v_currency);
            IF v_count > 0 THEN
                SET v_code = 'reversal_currency_mismatch';
                LEAVE validate;
            END IF;
            SELECT COUNT(*) INTO v_count FROM ml_posting_line
            WHERE kind = 'invoice' AND balance + amount_minor > total;
            IF v_count > 0 THEN
                SET v_code = 'reversal_exceeds_invoice_total';
                LEAVE validate;
            END IF;
            -- 26 trust_balance_insufficient: a withdrawal never takes a matter's trust balance below
            -- zero (DESIGN.md, money rule 5).
            SELECT COUNT(*) INTO v_count FROM ml_posting_line
            WHERE kind = 'trust' AND trust_balance < amount_minor;
            IF v_count > 0 THEN
                SET v_code = 'trust_balance_insufficient';
            END IF;
            -- Checks 9 to 16 are for ordinary postings.
            LEAVE validate;
        END IF;

        -- 9 invoice_not_found, 10 matter_not_found
        SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE kind = 'invoice' AND target_id IS NULL;
        IF v_count > 0 THEN
            SET v_code = 'invoice_not_found';
            LEAVE validate;
        END IF;
        SELECT COUNT(*) INTO v_count FROM ml_posting_line WHERE kind = 'trust' AND target_id IS NULL;
        IF v_count > 0 THEN
            SET v_code = 'matter_not_found';
            LEAVE validate;
        END IF;

        -- 11 duplicate_line: one line per invoice and per matter; the balance check below is per line.
        SELECT COUNT(*) INTO v_count
        FROM (SELECT 1 FROM ml_posting_line GROUP BY kind, reference HAVING COUNT(*) > 1) AS d;
        IF v_count > 0 THEN
            SET v_code = 'duplicate_line';
            LEAVE validate;
        END IF;

        -- 12 invoice_client_mismatch, 13 matter_client_mismatch
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE kind = 'invoice' AND NOT (owner_id <=> v_client_id);
        IF v_count > 0 THEN
            SET v_code = 'invoice_client_mismatch';
            LEAVE validate;
        END IF;
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE kind = 'trust' AND NOT (owner_id <=> v_client_id);
        IF v_count > 0 THEN
            SET v_code = 'matter_client_mismatch';
            LEAVE validate;
        END IF;

        -- 14 invoice_not_open: paid, void or closed.
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE kind = 'invoice' AND NOT (status <=> 'open');
        IF v_count > 0 THEN
            SET v_code = 'invoice_not_open';
            LEAVE validate;
        END IF;

        -- 15 currency_mismatch: invoice currency, and a matter's trust ledger currency when it
        -- already has entries.
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE (kind = 'invoice' AND NOT (currency <=> v_currency))
           OR (kind = 'trust' AND other_currency > 0);
        IF v_count > 0 THEN
            SET v_code = 'currency_mismatch';
            LEAVE validate;
        END IF;

        -- 16 amount_over_balance
        SELECT COUNT(*) INTO v_count FROM ml_posting_line
        WHERE kind = 'invoice' AND amount_minor > balance;
        IF v_count > 0 THEN
            SET v_code = 'amount_over_balance';
            LEAVE validate;
        END IF;
    END validate;

    IF v_code IS NOT NULL THEN
        SET v_message = CONCAT('ML001 ', v_code);
        SIGNAL SQLSTATE '45001' SET MESSAGE_TEXT = v_message;
    END IF;

    IF v_reverses IS NOT NULL THEN
        -- c') Apply a reversal: the reversal of the original receipt, dated the day of the refund, its
        -- lines in the reversal's order, the invoices given their amounts back (a paid one is open
        -- again; status is decided from the status read under the lock), and the trust withdrawals:
        -- negative entries in the original's (TRUST) account that point at the receipt whose money
        -- they take back, so that receipt's entries net out.
        INSERT INTO receipt_reversal (posting_uuid, receipt_id, reversed_on, amount_minor, currency, ar_message,
                                      processor_txn)
        VALUES (v_uuid, v_original_id, v_received_on, v_amount, v_currency,
                JSON_VALUE(p_posting, '$.ar_message'), JSON_VALUE(p_posting, '$.processor_txn'));
        SELECT receipt_reversal_id INTO v_reversal_id FROM receipt_reversal WHERE posting_uuid = v_uuid;
        INSERT INTO receipt_reversal_line (receipt_reversal_id, receipt_allocation_id, amount_minor)
        SELECT v_reversal_id, allocation_id, amount_minor
        FROM ml_posting_line
        ORDER BY line_no;
        UPDATE invoice AS i
        JOIN ml_posting_line AS l ON l.kind = 'invoice' AND l.target_id = i.invoice_id
        SET i.balance_minor = i.balance_minor + l.amount_minor,
            i.status = IF(l.status = 'paid', 'open', i.status);
        INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
        SELECT target_id, v_original_account, v_received_on, -amount_minor, v_currency,
               CONCAT('reversal of ', v_reverses), v_original_id
        FROM ml_posting_line
        WHERE kind = 'trust'
        ORDER BY line_no;
        DROP TEMPORARY TABLE ml_posting_line;
        IF v_own THEN
            COMMIT;
        END IF;
        LEAVE proc;
    END IF;

    -- c) Apply.
    INSERT INTO receipt (posting_uuid, received_on, bank_account_id, client_id, payer_name, payer_email,
                         amount_minor, currency, ar_message, processor_txn)
    VALUES (v_uuid, v_received_on, v_account_id, v_client_id,
            JSON_VALUE(p_posting, '$.payer_name'), JSON_VALUE(p_posting, '$.payer_email'),
            v_amount, v_currency,
            JSON_VALUE(p_posting, '$.ar_message'), JSON_VALUE(p_posting, '$.processor_txn'));
    SELECT receipt_id INTO v_receipt_id FROM receipt WHERE posting_uuid = v_uuid;

    -- Lines keep the posting's order.
    INSERT INTO receipt_allocation (receipt_id, kind, invoice_id, matter_id, amount_minor)
    SELECT v_receipt_id,
           kind,
           IF(kind = 'invoice', target_id, NULL),
           IF(kind = 'trust', target_id, NULL),
           amount_minor
    FROM ml_posting_line
    ORDER BY line_no;

    -- A multi-table UPDATE assigns in no set order, so status is decided from the balance read under
    -- the lock (l.balance), which is the invoice's balance until this statement.
    UPDATE invoice AS i
    JOIN ml_posting_line AS l ON l.kind = 'invoice' AND l.target_id = i.invoice_id
    SET i.balance_minor = i.balance_minor - l.amount_minor,
        i.status = IF(l.balance = l.amount_minor, 'paid', i.status);

    -- Trust deposits land in the posting's (TRUST) account, dated the day the money was received.
    INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
    SELECT target_id, v_account_id, v_received_on, amount_minor, v_currency, 'matterlink receipt', v_receipt_id
    FROM ml_posting_line
    WHERE kind = 'trust'
    ORDER BY line_no;

    DROP TEMPORARY TABLE ml_posting_line;
    IF v_own THEN
        COMMIT;
    END IF;
END//

-- ---------------------------------------------------------------------------------------------------
-- ml_reject_posting(uuid, reason): record a business rejection, after the agent rolled back the apply.
-- Idempotent: the first reason stays, and a posted uuid is never recorded as rejected.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_reject_posting(IN p_uuid VARCHAR(64) CHARACTER SET utf8mb4,
                                              IN p_reason VARCHAR(1000) CHARACTER SET utf8mb4)
    MODIFIES SQL DATA
BEGIN
    INSERT INTO ml_posting_rejection (posting_uuid, reason)
    SELECT p_uuid, p_reason FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM receipt WHERE posting_uuid = p_uuid)
      AND NOT EXISTS (SELECT 1 FROM receipt_reversal WHERE posting_uuid = p_uuid)
    ON DUPLICATE KEY UPDATE posting_uuid = ml_posting_rejection.posting_uuid;
END//

DELIMITER ;

-- ---------------------------------------------------------------------------------------------------
-- Search index (version 4; docs/contract.md 5.8). A search orders its rows by source id for keyset
-- paging, and without an index the only way to that order was to walk the open invoices testing
-- each one's client, matter and number (0.7 to 8 s at a million invoices for a search that matches
-- few rows). The agent now first finds the clients, matters or invoices whose field matches,
-- through the views ml_search_clients, ml_search_matters and ml_search_invoices, and reads only
-- their open invoices (or trust ledgers) by id. The test is the one it always was,
-- LOWER(column) LIKE LOWER(?) ESCAPE '!', so the rows are the same; for numbers it runs on a stored
-- copy of LOWER(number) (MariaDB indexes no expressions), in the number's own collation, whose
-- B-tree index serves exact and prefix patterns. ml_search_client, ml_search_matter and
-- ml_search_invoice hold those copies, one row per client, matter and invoice, kept by the triggers
-- below in the writer's transaction (they fire only when a row is added, deleted, or changes its id
-- or number). The fill after them repairs any row that is missing, stale or left over, so a re-run
-- (and the upgrade from version 3) makes the index exact: about 15 s at a million invoices, a few
-- seconds when nothing needs repair.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_search_client (
    client_id           BIGINT NOT NULL PRIMARY KEY,
    client_number_key   VARCHAR(255) NOT NULL,   -- LOWER(client.client_number)
    KEY ml_search_client_number (client_number_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS ml_search_matter (
    matter_id           BIGINT NOT NULL PRIMARY KEY,
    matter_number_key   VARCHAR(255) NOT NULL,   -- LOWER(matter.matter_number)
    KEY ml_search_matter_number (matter_number_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS ml_search_invoice (
    invoice_id          BIGINT NOT NULL PRIMARY KEY,
    invoice_number_key  VARCHAR(255) NOT NULL,   -- LOWER(invoice.invoice_number)
    KEY ml_search_invoice_number (invoice_number_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

DELIMITER //

CREATE OR REPLACE TRIGGER ml_search_client_insert
AFTER INSERT ON client
FOR EACH ROW
BEGIN
    INSERT INTO ml_search_client (client_id, client_number_key) VALUES (NEW.client_id, LOWER(NEW.client_number))
    ON DUPLICATE KEY UPDATE client_number_key = VALUES(client_number_key);
END//

CREATE OR REPLACE TRIGGER ml_search_client_update
AFTER UPDATE ON client
FOR EACH ROW
BEGIN
    IF NOT (OLD.client_id <=> NEW.client_id) OR NOT (BINARY OLD.client_number <=> BINARY NEW.client_number) THEN
        DELETE FROM ml_search_client WHERE client_id = OLD.client_id;
        INSERT INTO ml_search_client (client_id, client_number_key) VALUES (NEW.client_id, LOWER(NEW.client_number))
        ON DUPLICATE KEY UPDATE client_number_key = VALUES(client_number_key);
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_search_client_delete
AFTER DELETE ON client
FOR EACH ROW
BEGIN
    DELETE FROM ml_search_client WHERE client_id = OLD.client_id;
END//

CREATE OR REPLACE TRIGGER ml_search_matter_insert
AFTER INSERT ON matter
FOR EACH ROW
BEGIN
    INSERT INTO ml_search_matter (matter_id, matter_number_key) VALUES (NEW.matter_id, LOWER(NEW.matter_number))
    ON DUPLICATE KEY UPDATE matter_number_key = VALUES(matter_number_key);
END//

CREATE OR REPLACE TRIGGER ml_search_matter_update
AFTER UPDATE ON matter
FOR EACH ROW
BEGIN
    IF NOT (OLD.matter_id <=> NEW.matter_id) OR NOT (BINARY OLD.matter_number <=> BINARY NEW.matter_number) THEN
        DELETE FROM ml_search_matter WHERE matter_id = OLD.matter_id;
        INSERT INTO ml_search_matter (matter_id, matter_number_key) VALUES (NEW.matter_id, LOWER(NEW.matter_number))
        ON DUPLICATE KEY UPDATE matter_number_key = VALUES(matter_number_key);
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_search_matter_delete
AFTER DELETE ON matter
FOR EACH ROW
BEGIN
    DELETE FROM ml_search_matter WHERE matter_id = OLD.matter_id;
END//

CREATE OR REPLACE TRIGGER ml_search_invoice_insert
AFTER INSERT ON invoice
FOR EACH ROW
BEGIN
    INSERT INTO ml_search_invoice (invoice_id, invoice_number_key) VALUES (NEW.invoice_id, LOWER(NEW.invoice_number))
    ON DUPLICATE KEY UPDATE invoice_number_key = VALUES(invoice_number_key);
END//

CREATE OR REPLACE TRIGGER ml_search_invoice_update
AFTER UPDATE ON invoice
FOR EACH ROW
BEGIN
    IF NOT (OLD.invoice_id <=> NEW.invoice_id) OR NOT (BINARY OLD.invoice_number <=> BINARY NEW.invoice_number) THEN
        DELETE FROM ml_search_invoice WHERE invoice_id = OLD.invoice_id;
        INSERT INTO ml_search_invoice (invoice_id, invoice_number_key) VALUES (NEW.invoice_id, LOWER(NEW.invoice_number))
        ON DUPLICATE KEY UPDATE invoice_number_key = VALUES(invoice_number_key);
    END IF;
END//

CREATE OR REPLACE TRIGGER ml_search_invoice_delete
AFTER DELETE ON invoice
FOR EACH ROW
BEGIN
    DELETE FROM ml_search_invoice WHERE invoice_id = OLD.invoice_id;
END//

DELIMITER ;

-- The fill: missing or stale rows first, then rows whose client, matter or invoice is gone.
INSERT INTO ml_search_client (client_id, client_number_key)
SELECT x.client_id, LOWER(x.client_number) FROM client AS x
LEFT JOIN ml_search_client AS k ON k.client_id = x.client_id
WHERE k.client_id IS NULL OR NOT (BINARY k.client_number_key <=> BINARY LOWER(x.client_number))
ON DUPLICATE KEY UPDATE client_number_key = VALUES(client_number_key);
DELETE k FROM ml_search_client AS k LEFT JOIN client AS x ON x.client_id = k.client_id WHERE x.client_id IS NULL;

INSERT INTO ml_search_matter (matter_id, matter_number_key)
SELECT x.matter_id, LOWER(x.matter_number) FROM matter AS x
LEFT JOIN ml_search_matter AS k ON k.matter_id = x.matter_id
WHERE k.matter_id IS NULL OR NOT (BINARY k.matter_number_key <=> BINARY LOWER(x.matter_number))
ON DUPLICATE KEY UPDATE matter_number_key = VALUES(matter_number_key);
DELETE k FROM ml_search_matter AS k LEFT JOIN matter AS x ON x.matter_id = k.matter_id WHERE x.matter_id IS NULL;

INSERT INTO ml_search_invoice (invoice_id, invoice_number_key)
SELECT x.invoice_id, LOWER(x.invoice_number) FROM invoice AS x
LEFT JOIN ml_search_invoice AS k ON k.invoice_id = x.invoice_id
WHERE k.invoice_id IS NULL OR NOT (BINARY k.invoice_number_key <=> BINARY LOWER(x.invoice_number))
ON DUPLICATE KEY UPDATE invoice_number_key = VALUES(invoice_number_key);
DELETE k FROM ml_search_invoice AS k LEFT JOIN invoice AS x ON x.invoice_id = k.invoice_id WHERE x.invoice_id IS NULL;

-- What searches read: each row with its number's stored key. MERGE folds them into the search.
CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_search_clients AS
SELECT c.client_id          AS client_id,
       c.client_number      AS client_number,
       c.name               AS client_name,
       k.client_number_key  AS client_number_key
FROM client AS c
LEFT JOIN ml_search_client AS k ON k.client_id = c.client_id;

CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_search_matters AS
SELECT m.matter_id          AS matter_id,
       m.client_id          AS client_id,
       m.matter_number      AS matter_number,
       m.description        AS matter_description,
       k.matter_number_key  AS matter_number_key
FROM matter AS m
LEFT JOIN ml_search_matter AS k ON k.matter_id = m.matter_id;

CREATE OR REPLACE ALGORITHM = MERGE VIEW ml_search_invoices AS
SELECT i.invoice_id         AS source_id,
       i.matter_id          AS matter_id,
       i.invoice_number     AS invoice_number,
       k.invoice_number_key AS invoice_number_key
FROM invoice AS i
LEFT JOIN ml_search_invoice AS k ON k.invoice_id = i.invoice_id;

-- ---------------------------------------------------------------------------------------------------
-- Last: this version is installed. Everything above is in place when the agent can first see
-- contract_version 4, on a first install and on an upgrade alike.
-- A first install makes the row with a random (version 4) UUID as db_epoch, lower case 8-4-4-4-12;
-- a re-run keeps it. installed_at records when the version changed; a re-run keeps it too. MariaDB
-- assigns left to right, so installed_at is decided from the old contract_version.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO ml_contract (contract_version, db_epoch, installed_at)
SELECT 4,
       CONCAT(SUBSTR(h, 1, 8), '-', SUBSTR(h, 9, 4), '-4', SUBSTR(h, 14, 3), '-',
              SUBSTR('89ab', CONV(SUBSTR(h, 17, 1), 16, 10) % 4 + 1, 1), SUBSTR(h, 18, 3), '-',
              SUBSTR(h, 21, 12)),
       UTC_TIMESTAMP(3)
FROM (SELECT LOWER(HEX(RANDOM_BYTES(16))) AS h) AS r
WHERE NOT EXISTS (SELECT 1 FROM ml_contract);

UPDATE ml_contract
SET installed_at = IF(contract_version = 4, installed_at, UTC_TIMESTAMP(3)),
    contract_version = 4;
