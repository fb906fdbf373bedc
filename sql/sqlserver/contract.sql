-- matterlink SQL contract, version 4, SQL Server dialect (SQL Server 2016 SP1 and later, database
-- compatibility level 130 or higher; Azure SQL Database and Managed Instance).
--
-- What the matterlink agent reads and writes in the firm's matter database, installed on top of the
-- matter tables (sql/sqlserver/schema.sql or the firm's own). docs/contract.md is the specification;
-- sql/sqlite/contract.sql is the reference implementation this file mirrors: same tables, same
-- columns, same item row, same rejection codes checked in the same order.
--
-- Run with sqlcmd (":on error exit" below is a sqlcmd command; in SSMS use SQLCMD mode):
--   sqlcmd -S HOST -d FIRM -b -I -i sql/sqlserver/contract.sql
--
-- UNTESTED: written without a SQL Server to run it on. sql/sqlserver/README.md lists what to verify
-- first on a real server.
--
-- Safe to run again, including over an older or newer install: tables are created only if missing
-- and keep their rows (ml_change, ml_posting_rejection, ml_change_counter), ml_contract keeps its
-- db_epoch, and every procedure, view and trigger is CREATE OR ALTER, so the installed definitions
-- are exactly these. The whole script is one transaction: an error stops sqlcmd, the connection
-- closes, SQL Server rolls the install back, and the agent never sees half a contract.
--
-- How the agent calls it (ODBC, FreeTDS; each call inside the agent's transaction, every result set
-- drained; no procedure here returns output parameters to the client):
--   SELECT contract_version, db_epoch FROM ml_contract
--   {CALL ml_open_items(?, ?)}             after_source_id, page_limit      -> item columns
--   {CALL ml_trust_balances(?, ?)}         after_source_id, page_limit      -> item columns
--   {CALL ml_change_high_water}                                             -> high_water
--   {CALL ml_changes_since(?, ?, ?)}       since, upto, page_limit          -> change_id, op, item columns
--   {CALL ml_apply_posting(?)}             posting JSON                     -> no result set
--   {CALL ml_reject_posting(?, ?)}         posting_uuid, reason             -> no result set
--   {CALL ml_posting_result(?)}            posting_uuid                     -> posting_uuid, status, receipt_id, reason
-- A business rejection is THROW 50001 with the message 'ML001 <code>'.
--
-- Version 2 added reversing postings (refunds, voids, chargebacks): ml_apply_posting takes "reverses"
-- and writes the matter tables receipt_reversal and receipt_reversal_line (schema.sql makes them), and
-- ml_posting_result answers for reversals too. Version 2 to 3 changes nothing on SQL Server: version 3
-- added PostgreSQL's search index (docs/contract.md 5.8), and every dialect carries the same number
-- because the agent and the core accept one; so does version 4 (SQLite's and MariaDB's search
-- views). Running this script over version 1, 2 or 3 upgrades it in place: no ml_ table changes,
-- every procedure, view and trigger is CREATE OR ALTER, and contract_version becomes 4. It stops before anything is written while the reversal tables are
-- missing.
--
-- ===================================================================================================
-- CHANGE CAPTURE: "stamp on read"
-- ===================================================================================================
-- The agent must never miss a change (docs/contract.md, section 6). It reads changes above a cursor
-- it keeps, so every change must get an id above every id the agent may already have passed.
--
-- SQLite gets this for free: one writer at a time, so ids are handed out in commit order. SQL Server
-- runs writers concurrently, and an id taken at INSERT time (IDENTITY, SEQUENCE, MAX()+1) is not
-- commit-safe: transaction A takes id 10 and commits late, transaction B takes id 11 and commits at
-- once; a reader sees 11, moves its cursor past 10, and A's change is lost for good.
--
-- So ids are given when the changes are read, not when they are written:
--   1. The change triggers append rows to ml_change with change_id NULL ("unstamped"), in the
--      writer's own transaction. seq_id (IDENTITY) only orders them; it is never a cursor.
--   2. ml_change_high_water (through ml_change_stamp) first locks the one row of ml_change_counter,
--      which holds the highest change_id ever handed out. That lock is held until the stamping
--      transaction ends, so stamping is serialized: a second caller waits for the first to commit.
--   3. It then picks the unstamped rows of committed transactions, in seq_id order, at most 100,000
--      a call, with WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK):
--        READPAST          skips rows locked by transactions still in progress, without waiting
--                          for them; those rows are stamped by a later call, with higher ids;
--        UPDLOCK           keeps the picked rows until they are stamped;
--        ROWLOCK           row locks, because READPAST skips row locks only, never page locks;
--        READCOMMITTEDLOCK READPAST is refused under READ_COMMITTED_SNAPSHOT (RCSI) unless the
--                          read is a locking read; this makes it one whatever the database option.
--      The procedure also sets READ COMMITTED for itself (READPAST is refused under SNAPSHOT or
--      SERIALIZABLE isolation); SET inside a procedure ends with the procedure.
--   4. It gives them counter+1, counter+2, ... in seq_id order, moves the counter on, and returns
--      the counter as high_water.
-- Why that is commit-safe: a stamped row is always a committed row (or a row of the caller's own
-- transaction, for example the posting it has just applied), ids are handed out by one stamping
-- transaction at a time, and the next stamper only starts after the previous one committed. A row
-- of a transaction still in progress is invisible to stamping; when that transaction commits, the
-- row gets an id above every id already returned. If a stamping transaction rolls back, its ids were
-- never visible and are handed out again. So no row can ever appear at or below a high_water the
-- agent has been given: exactly the guarantee the SQLite contract relies on.
--
-- The counter (rather than MAX(change_id)+1) means pruning never brings ids back: IT may delete the
-- rows at or below the agent's acknowledged cursor (docs/contract.md, 6.5), even all of them, and
-- the next id is still above the cursor (SQLite's AUTOINCREMENT gives the same guarantee).
-- A call never waits for writers; it waits only for another stamping transaction (the lock on
-- the counter row), or when a writer holds a page or table lock on ml_change (lock escalation of a
-- very large write), which READPAST cannot skip.
--
-- The triggers fire once per statement (T-SQL has no FOR EACH ROW), so they are set-based over the
-- inserted and deleted tables and write the same rows as the SQLite triggers, once per entity per
-- statement.
--
-- ml_change has two filtered indexes. SQL Server refuses any INSERT/UPDATE/DELETE on a table with a
-- filtered index from a session whose SET options are not the standard ones (error 1934). Because a
-- firm's own programs write invoices, and the triggers then write ml_change, every trigger and
-- procedure here sets those options for itself (a SET in a trigger or procedure lasts until it
-- returns), and this script is run with QUOTED_IDENTIFIER and ANSI_NULLS ON, which are stored with
-- each trigger and procedure.
--
-- ===================================================================================================
-- UPGRADES: the pattern for a future contract version
-- ===================================================================================================
-- Contract version N is a new contract.sql. Like this one it runs in one transaction, so the agent
-- sees the old contract or the new one, never a mix; and it must run on a fresh database, on every
-- older version, and on itself:
--   * new table:    IF OBJECT_ID(N'dbo.ml_x', N'U') IS NULL CREATE TABLE dbo.ml_x (...);
--   * new column:   IF COL_LENGTH(N'dbo.ml_change', N'y') IS NULL ALTER TABLE dbo.ml_change ADD y ...;
--                   (in its own batch, before any batch whose code uses the column)
--   * new index:    IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.t')
--                                  AND name = N'i') CREATE INDEX i ON dbo.t (...);
--   * gone object:  DROP PROCEDURE IF EXISTS dbo.ml_old; DROP TRIGGER IF EXISTS dbo.ml_old_trigger;
--   * data moves:   written so that a second run changes nothing;
--   * code:         CREATE OR ALTER for every procedure, view and trigger;
--   * last:         UPDATE dbo.ml_contract SET contract_version = N (and installed_at, as below).
-- ml_contract, db_epoch and the rows of ml_change, ml_change_counter and ml_posting_rejection are
-- never dropped or rewritten: a new epoch would make every agent resync for nothing.

:on error exit

SET NOCOUNT ON;
SET XACT_ABORT ON;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET ANSI_PADDING ON;
SET ANSI_WARNINGS ON;
SET ARITHABORT ON;
SET CONCAT_NULL_YIELDS_NULL ON;
SET NUMERIC_ROUNDABORT OFF;
GO

-- Prerequisites, checked before anything is written.
-- SQL Server 2016 SP1 (13.0.4001) for CREATE OR ALTER; Azure SQL Database and Managed Instance
-- (engine editions 5 and 8) report other version numbers but have everything.
IF CONVERT(INT, SERVERPROPERTY('EngineEdition')) NOT IN (5, 8)
   AND (CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 4)) < 13
        OR (CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 4)) = 13
            AND CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 2)) < 4001))
    THROW 50005, N'contract.sql needs SQL Server 2016 SP1 (13.0.4001) or later', 1;
-- OPENJSON (used to read postings) exists only at compatibility level 130 and above.
IF (SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()) < 130
    THROW 50005, N'contract.sql needs database compatibility level 130 or higher for OPENJSON (ALTER DATABASE CURRENT SET COMPATIBILITY_LEVEL = 130, after checking the firm''s own software with it)', 1;
-- The reference schema (schema.sql) or the firm's own tables with the same names and columns.
IF OBJECT_ID(N'dbo.client', N'U') IS NULL OR OBJECT_ID(N'dbo.matter', N'U') IS NULL
   OR OBJECT_ID(N'dbo.bank_account', N'U') IS NULL OR OBJECT_ID(N'dbo.invoice', N'U') IS NULL
   OR OBJECT_ID(N'dbo.receipt', N'U') IS NULL OR OBJECT_ID(N'dbo.receipt_allocation', N'U') IS NULL
   OR OBJECT_ID(N'dbo.trust_entry', N'U') IS NULL
    THROW 50005, N'contract.sql: the matter tables are missing (run sql/sqlserver/schema.sql first, or adapt the contract to the firm''s tables)', 1;
-- Version 2 writes reversals (an upgrade from version 1 needs schema.sql run again first).
IF OBJECT_ID(N'dbo.receipt_reversal', N'U') IS NULL OR OBJECT_ID(N'dbo.receipt_reversal_line', N'U') IS NULL
    THROW 50005, N'contract.sql: receipt_reversal and receipt_reversal_line are missing: run sql/sqlserver/schema.sql first (it adds only what is missing), or adapt the contract to the firm''s reversal tables', 1;
GO

BEGIN TRANSACTION;
GO

-- ---------------------------------------------------------------------------------------------------
-- ml_contract: one row saying which contract is installed.
-- The agent refuses any contract_version other than the one it speaks. db_epoch is made once, at the
-- first install, and never changes afterwards: it names this database's change sequence, so the
-- payment core can tell that it is talking to a different database (a copy installed fresh) and
-- resync. installed_at is UTC.
-- ---------------------------------------------------------------------------------------------------

IF OBJECT_ID(N'dbo.ml_contract', N'U') IS NULL
CREATE TABLE dbo.ml_contract (
    contract_version INT          NOT NULL,
    db_epoch         NVARCHAR(36) NOT NULL,
    installed_at     DATETIME2(0) NOT NULL,
    CONSTRAINT ml_contract_version_positive CHECK (contract_version > 0),
    CONSTRAINT ml_contract_epoch_uuid CHECK (DATALENGTH(db_epoch) = 72)
);

-- ml_change: the change log (see CHANGE CAPTURE above). change_id is NULL until stamped.
-- written_at is for people reading the table; nothing orders by it.
IF OBJECT_ID(N'dbo.ml_change', N'U') IS NULL
CREATE TABLE dbo.ml_change (
    seq_id     BIGINT IDENTITY(1, 1) NOT NULL,
    change_id  BIGINT       NULL,
    entity     NVARCHAR(7)  COLLATE Latin1_General_BIN2 NOT NULL,
    entity_id  BIGINT       NOT NULL,
    written_at DATETIME2(3) NOT NULL CONSTRAINT ml_change_written_at_default DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT ml_change_pk PRIMARY KEY CLUSTERED (seq_id),
    CONSTRAINT ml_change_entity_valid CHECK (entity IN (N'invoice', N'trust'))
);

-- Stamped rows by change_id: the agent's reads (ml_changes_since) and the uniqueness of ids.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.ml_change') AND name = N'ml_change_change_id')
CREATE UNIQUE NONCLUSTERED INDEX ml_change_change_id
    ON dbo.ml_change (change_id) INCLUDE (entity, entity_id)
    WHERE change_id IS NOT NULL;

-- Unstamped rows in write order: what ml_change_stamp picks up.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.ml_change') AND name = N'ml_change_unstamped')
CREATE NONCLUSTERED INDEX ml_change_unstamped
    ON dbo.ml_change (seq_id)
    WHERE change_id IS NULL;

-- ml_change_counter: the highest change_id ever handed out (one row). Its row lock serializes
-- stamping; it survives pruning of ml_change, so ids are never handed out twice once committed.
IF OBJECT_ID(N'dbo.ml_change_counter', N'U') IS NULL
CREATE TABLE dbo.ml_change_counter (
    singleton      TINYINT NOT NULL,
    last_change_id BIGINT  NOT NULL,
    CONSTRAINT ml_change_counter_pk PRIMARY KEY CLUSTERED (singleton),
    CONSTRAINT ml_change_counter_one_row CHECK (singleton = 1),
    CONSTRAINT ml_change_counter_nonnegative CHECK (last_change_id >= 0)
);

-- ml_posting_rejection: postings rejected for a business reason (a final answer, not a retry),
-- recorded by the agent with ml_reject_posting after rolling back the failed apply. posting_uuid
-- uses a binary collation so that, as in SQLite, two spellings are two keys.
IF OBJECT_ID(N'dbo.ml_posting_rejection', N'U') IS NULL
CREATE TABLE dbo.ml_posting_rejection (
    posting_uuid NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL,
    reason       NVARCHAR(MAX) NOT NULL,
    rejected_at  DATETIME2(3)  NOT NULL CONSTRAINT ml_posting_rejection_rejected_at_default DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT ml_posting_rejection_pk PRIMARY KEY CLUSTERED (posting_uuid)
);
GO

-- A second row in ml_contract is refused (SQLite uses a unique index on a constant for this).
CREATE OR ALTER TRIGGER dbo.ml_contract_singleton
ON dbo.ml_contract
AFTER INSERT
AS
BEGIN
    SET NOCOUNT ON;
    IF (SELECT COUNT(*) FROM dbo.ml_contract) > 1
        THROW 50004, N'ml_contract holds exactly one row', 1;
END;
GO

-- The first install makes the epoch: a random (version 4) UUID from NEWID(), lower case 8-4-4-4-12.
INSERT INTO dbo.ml_contract (contract_version, db_epoch, installed_at)
SELECT 4, LOWER(CONVERT(NVARCHAR(36), NEWID())), SYSUTCDATETIME()
WHERE NOT EXISTS (SELECT 1 FROM dbo.ml_contract WITH (UPDLOCK, HOLDLOCK));

-- installed_at records when this version was installed; a plain re-run keeps it. Both SET
-- expressions see the row as it was.
UPDATE dbo.ml_contract
SET installed_at = CASE WHEN contract_version = 4 THEN installed_at ELSE CONVERT(DATETIME2(0), SYSUTCDATETIME()) END,
    contract_version = 4;

-- The counter starts at the highest id in use (0 on a new install), and is moved up if someone
-- restored ml_change without it; it never moves down.
INSERT INTO dbo.ml_change_counter (singleton, last_change_id)
SELECT 1, COALESCE((SELECT MAX(change_id) FROM dbo.ml_change WHERE change_id IS NOT NULL), 0)
WHERE NOT EXISTS (SELECT 1 FROM dbo.ml_change_counter WITH (UPDLOCK, HOLDLOCK));

UPDATE dbo.ml_change_counter
SET last_change_id = (SELECT MAX(change_id) FROM dbo.ml_change WHERE change_id IS NOT NULL)
WHERE singleton = 1
  AND last_change_id < (SELECT MAX(change_id) FROM dbo.ml_change WHERE change_id IS NOT NULL);
GO

-- A posting that did land (as a receipt, or as a reversal) is never also recorded as rejected, so
-- ml_posting_result has one answer (SQLite: RAISE(IGNORE) in a BEFORE INSERT trigger; here the rows
-- are taken out again after the INSERT, in the same transaction).
CREATE OR ALTER TRIGGER dbo.ml_posting_rejection_posted
ON dbo.ml_posting_rejection
AFTER INSERT
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;
    DELETE x
    FROM dbo.ml_posting_rejection AS x
    JOIN inserted AS n ON n.posting_uuid = x.posting_uuid
    WHERE EXISTS (SELECT 1
                  FROM dbo.receipt AS r
                  WHERE r.posting_uuid = x.posting_uuid COLLATE DATABASE_DEFAULT
                    AND r.posting_uuid COLLATE Latin1_General_BIN2 = x.posting_uuid
                    AND LEN(r.posting_uuid + N'.') = LEN(x.posting_uuid + N'.'))
       OR EXISTS (SELECT 1
                  FROM dbo.receipt_reversal AS v
                  WHERE v.posting_uuid = x.posting_uuid COLLATE DATABASE_DEFAULT
                    AND v.posting_uuid COLLATE Latin1_General_BIN2 = x.posting_uuid
                    AND LEN(v.posting_uuid + N'.') = LEN(x.posting_uuid + N'.'));
END;
GO

-- ---------------------------------------------------------------------------------------------------
-- Change triggers. They write ml_change only. The UPDATE triggers add rows only for rows whose
-- replicated columns really changed (compared exactly: case and trailing spaces count, as in
-- SQLite), so bookkeeping updates (reminder dates, e-mail addresses) add no noise. Matter and client
-- changes list only the invoices that are open items right now: the others are not in the core's
-- replica, and renaming a client does not change that.
-- Rows of one statement go in ordered by entity_id (one row per entity per statement); the order
-- only matters to people reading the table.
-- Each trigger starts with the SET options that ml_change's filtered indexes require (see above).
-- TRUNCATE TABLE fires no trigger; foreign keys forbid it on these tables anyway.
-- ---------------------------------------------------------------------------------------------------

CREATE OR ALTER TRIGGER dbo.ml_invoice_insert
ON dbo.invoice
AFTER INSERT
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'invoice', n.invoice_id
    FROM inserted AS n
    ORDER BY n.invoice_id;
END;
GO

-- An UPDATE of an item column (number, matter, dates, currency, total, balance, status) adds the
-- invoice; an UPDATE that changes invoice_id (possible where it is not an IDENTITY) adds the old id
-- and the new one. A statement's rows cannot be paired across a changed key, so ids found on one
-- side only are all added, which is what SQLite adds for them.
CREATE OR ALTER TRIGGER dbo.ml_invoice_update
ON dbo.invoice
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'invoice', x.invoice_id
    FROM (
        SELECT n.invoice_id
        FROM inserted AS n
        JOIN deleted AS o ON o.invoice_id = n.invoice_id
        WHERE EXISTS (SELECT n.invoice_number COLLATE Latin1_General_BIN2, DATALENGTH(n.invoice_number),
                             n.matter_id, n.invoice_date, n.due_date,
                             n.currency COLLATE Latin1_General_BIN2, DATALENGTH(n.currency),
                             n.total_minor, n.balance_minor,
                             n.status COLLATE Latin1_General_BIN2, DATALENGTH(n.status)
                      EXCEPT
                      SELECT o.invoice_number COLLATE Latin1_General_BIN2, DATALENGTH(o.invoice_number),
                             o.matter_id, o.invoice_date, o.due_date,
                             o.currency COLLATE Latin1_General_BIN2, DATALENGTH(o.currency),
                             o.total_minor, o.balance_minor,
                             o.status COLLATE Latin1_General_BIN2, DATALENGTH(o.status))
        UNION
        SELECT o.invoice_id
        FROM deleted AS o
        WHERE NOT EXISTS (SELECT 1 FROM inserted AS n WHERE n.invoice_id = o.invoice_id)
        UNION
        SELECT n.invoice_id
        FROM inserted AS n
        WHERE NOT EXISTS (SELECT 1 FROM deleted AS o WHERE o.invoice_id = n.invoice_id)
    ) AS x
    ORDER BY x.invoice_id;
END;
GO

CREATE OR ALTER TRIGGER dbo.ml_invoice_delete
ON dbo.invoice
AFTER DELETE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'invoice', o.invoice_id
    FROM deleted AS o
    ORDER BY o.invoice_id;
END;
GO

CREATE OR ALTER TRIGGER dbo.ml_trust_entry_insert
ON dbo.trust_entry
AFTER INSERT
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'trust', x.matter_id
    FROM (SELECT DISTINCT n.matter_id FROM inserted AS n) AS x
    ORDER BY x.matter_id;
END;
GO

-- An UPDATE of matter, amount or currency changes the old matter's balance; moving an entry to
-- another matter changes both matters' balances.
CREATE OR ALTER TRIGGER dbo.ml_trust_entry_update
ON dbo.trust_entry
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'trust', x.matter_id
    FROM (
        SELECT o.matter_id
        FROM inserted AS n
        JOIN deleted AS o ON o.trust_entry_id = n.trust_entry_id
        WHERE EXISTS (SELECT n.matter_id, n.amount_minor,
                             n.currency COLLATE Latin1_General_BIN2, DATALENGTH(n.currency)
                      EXCEPT
                      SELECT o.matter_id, o.amount_minor,
                             o.currency COLLATE Latin1_General_BIN2, DATALENGTH(o.currency))
        UNION
        SELECT n.matter_id
        FROM inserted AS n
        JOIN deleted AS o ON o.trust_entry_id = n.trust_entry_id
        WHERE n.matter_id <> o.matter_id
        UNION
        SELECT o.matter_id
        FROM deleted AS o
        WHERE NOT EXISTS (SELECT 1 FROM inserted AS n WHERE n.trust_entry_id = o.trust_entry_id)
        UNION
        SELECT n.matter_id
        FROM inserted AS n
        WHERE NOT EXISTS (SELECT 1 FROM deleted AS o WHERE o.trust_entry_id = n.trust_entry_id)
    ) AS x
    ORDER BY x.matter_id;
END;
GO

CREATE OR ALTER TRIGGER dbo.ml_trust_entry_delete
ON dbo.trust_entry
AFTER DELETE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT N'trust', x.matter_id
    FROM (SELECT DISTINCT o.matter_id FROM deleted AS o) AS x
    ORDER BY x.matter_id;
END;
GO

-- Matter number, description, client and status appear in (or decide) every item of the matter.
-- For each changed matter: its invoices that are items now, and its trust ledger if it has entries.
-- A matter whose id went away (deleted side only) always gets a trust row, as in SQLite, so the
-- core drops it.
CREATE OR ALTER TRIGGER dbo.ml_matter_update
ON dbo.matter
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    WITH changed (matter_id, gone) AS (
        SELECT n.matter_id, 0
        FROM inserted AS n
        JOIN deleted AS o ON o.matter_id = n.matter_id
        WHERE EXISTS (SELECT n.matter_number COLLATE Latin1_General_BIN2, DATALENGTH(n.matter_number),
                             n.client_id,
                             n.description COLLATE Latin1_General_BIN2, DATALENGTH(n.description),
                             n.status COLLATE Latin1_General_BIN2, DATALENGTH(n.status)
                      EXCEPT
                      SELECT o.matter_number COLLATE Latin1_General_BIN2, DATALENGTH(o.matter_number),
                             o.client_id,
                             o.description COLLATE Latin1_General_BIN2, DATALENGTH(o.description),
                             o.status COLLATE Latin1_General_BIN2, DATALENGTH(o.status))
        UNION ALL
        SELECT o.matter_id, 1
        FROM deleted AS o
        WHERE NOT EXISTS (SELECT 1 FROM inserted AS n WHERE n.matter_id = o.matter_id)
        UNION ALL
        SELECT n.matter_id, 0
        FROM inserted AS n
        WHERE NOT EXISTS (SELECT 1 FROM deleted AS o WHERE o.matter_id = n.matter_id)
    )
    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT x.entity, x.entity_id
    FROM (
        SELECT N'invoice' AS entity, i.invoice_id AS entity_id, 1 AS part
        FROM changed AS c
        JOIN dbo.invoice AS i ON i.matter_id = c.matter_id
        WHERE i.status COLLATE Latin1_General_BIN2 = N'open' AND i.balance_minor > 0
        UNION
        SELECT N'trust', c.matter_id, 2
        FROM changed AS c
        WHERE c.gone = 1
           OR EXISTS (SELECT 1 FROM dbo.trust_entry AS t WHERE t.matter_id = c.matter_id)
    ) AS x
    ORDER BY x.part, x.entity_id;
END;
GO

-- Foreign keys normally forbid deleting a matter or client that still has invoices or trust entries;
-- where they are not enforced, the orphaned items must still leave the core's replica.
CREATE OR ALTER TRIGGER dbo.ml_matter_delete
ON dbo.matter
AFTER DELETE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT x.entity, x.entity_id
    FROM (
        SELECT N'invoice' AS entity, i.invoice_id AS entity_id, 1 AS part
        FROM deleted AS o
        JOIN dbo.invoice AS i ON i.matter_id = o.matter_id
        WHERE i.status COLLATE Latin1_General_BIN2 = N'open' AND i.balance_minor > 0
        UNION
        SELECT N'trust', o.matter_id, 2
        FROM deleted AS o
        WHERE EXISTS (SELECT 1 FROM dbo.trust_entry AS t WHERE t.matter_id = o.matter_id)
    ) AS x
    ORDER BY x.part, x.entity_id;
END;
GO

-- Client number and name appear in every item of every matter of the client.
CREATE OR ALTER TRIGGER dbo.ml_client_update
ON dbo.client
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    WITH changed (client_id) AS (
        SELECT n.client_id
        FROM inserted AS n
        JOIN deleted AS o ON o.client_id = n.client_id
        WHERE EXISTS (SELECT n.client_number COLLATE Latin1_General_BIN2, DATALENGTH(n.client_number),
                             n.name COLLATE Latin1_General_BIN2, DATALENGTH(n.name)
                      EXCEPT
                      SELECT o.client_number COLLATE Latin1_General_BIN2, DATALENGTH(o.client_number),
                             o.name COLLATE Latin1_General_BIN2, DATALENGTH(o.name))
        UNION ALL
        SELECT o.client_id
        FROM deleted AS o
        WHERE NOT EXISTS (SELECT 1 FROM inserted AS n WHERE n.client_id = o.client_id)
        UNION ALL
        SELECT n.client_id
        FROM inserted AS n
        WHERE NOT EXISTS (SELECT 1 FROM deleted AS o WHERE o.client_id = n.client_id)
    )
    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT x.entity, x.entity_id
    FROM (
        SELECT N'invoice' AS entity, i.invoice_id AS entity_id, 1 AS part
        FROM changed AS c
        JOIN dbo.matter AS m ON m.client_id = c.client_id
        JOIN dbo.invoice AS i ON i.matter_id = m.matter_id
        WHERE i.status COLLATE Latin1_General_BIN2 = N'open' AND i.balance_minor > 0
        UNION
        SELECT N'trust', m.matter_id, 2
        FROM changed AS c
        JOIN dbo.matter AS m ON m.client_id = c.client_id
        WHERE EXISTS (SELECT 1 FROM dbo.trust_entry AS t WHERE t.matter_id = m.matter_id)
    ) AS x
    ORDER BY x.part, x.entity_id;
END;
GO

CREATE OR ALTER TRIGGER dbo.ml_client_delete
ON dbo.client
AFTER DELETE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM deleted) RETURN;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;

    INSERT INTO dbo.ml_change (entity, entity_id)
    SELECT x.entity, x.entity_id
    FROM (
        SELECT N'invoice' AS entity, i.invoice_id AS entity_id, 1 AS part
        FROM deleted AS o
        JOIN dbo.matter AS m ON m.client_id = o.client_id
        JOIN dbo.invoice AS i ON i.matter_id = m.matter_id
        WHERE i.status COLLATE Latin1_General_BIN2 = N'open' AND i.balance_minor > 0
        UNION
        SELECT N'trust', m.matter_id, 2
        FROM deleted AS o
        JOIN dbo.matter AS m ON m.client_id = o.client_id
        WHERE EXISTS (SELECT 1 FROM dbo.trust_entry AS t WHERE t.matter_id = m.matter_id)
    ) AS x
    ORDER BY x.part, x.entity_id;
END;
GO

-- ---------------------------------------------------------------------------------------------------
-- The item row. ml_open_items, ml_trust_balances and ml_changes return these columns, in this order:
--   item_kind, source_id, invoice_number, invoice_date, due_date, client_number, client_name,
--   matter_number, matter_description, currency, total_minor, balance_minor, status
-- Text is NVARCHAR, dates are NVARCHAR 'YYYY-MM-DD' (style 23), ids and money are BIGINT.
-- An invoice item is keyed ('invoice', invoice_id), a trust item ('trust', matter_id). An invoice is
-- an item while its status is 'open' and its balance is above 0; a matter is a trust item while it
-- has at least one trust entry (its balance may then be 0).
-- SQL Server has no view and procedure of one name, so the pages are procedures (the names the
-- agent calls) and ml_changes is a view, as in SQLite.
-- ---------------------------------------------------------------------------------------------------

-- One page of open invoices: source_id > @after_source_id, ascending, at most @page_limit rows
-- (keyset paging: every page costs the same, nothing is skipped or repeated).
CREATE OR ALTER PROCEDURE dbo.ml_open_items
    @after_source_id BIGINT,
    @page_limit      BIGINT
AS
BEGIN
    SET NOCOUNT ON;
    SELECT TOP (CASE WHEN @page_limit > 0 THEN @page_limit ELSE 0 END)
           CONVERT(NVARCHAR(7), N'invoice')           AS item_kind,
           CONVERT(BIGINT, i.invoice_id)               AS source_id,
           CONVERT(NVARCHAR(400), i.invoice_number)    AS invoice_number,
           CONVERT(NVARCHAR(10), i.invoice_date, 23)   AS invoice_date,
           CONVERT(NVARCHAR(10), i.due_date, 23)       AS due_date,
           CONVERT(NVARCHAR(400), c.client_number)     AS client_number,
           CONVERT(NVARCHAR(4000), c.name)             AS client_name,
           CONVERT(NVARCHAR(400), m.matter_number)     AS matter_number,
           CONVERT(NVARCHAR(4000), m.description)      AS matter_description,
           CONVERT(NVARCHAR(3), i.currency)            AS currency,
           CONVERT(BIGINT, i.total_minor)              AS total_minor,
           CONVERT(BIGINT, i.balance_minor)            AS balance_minor,
           CONVERT(NVARCHAR(40), i.status)             AS status
    FROM dbo.invoice AS i
    JOIN dbo.matter AS m ON m.matter_id = i.matter_id
    JOIN dbo.client AS c ON c.client_id = m.client_id
    WHERE i.invoice_id > @after_source_id
      AND i.status COLLATE Latin1_General_BIN2 = N'open'
      AND i.balance_minor > 0
    ORDER BY i.invoice_id;
END;
GO

-- One page of trust ledgers: one row per matter with at least one trust entry; the balance is the
-- sum of its entries (may be 0). A matter's entries share one currency (schema.sql enforces it),
-- so MIN() picks that currency.
CREATE OR ALTER PROCEDURE dbo.ml_trust_balances
    @after_source_id BIGINT,
    @page_limit      BIGINT
AS
BEGIN
    SET NOCOUNT ON;
    SELECT TOP (CASE WHEN @page_limit > 0 THEN @page_limit ELSE 0 END)
           CONVERT(NVARCHAR(7), N'trust')              AS item_kind,
           CONVERT(BIGINT, m.matter_id)                AS source_id,
           CONVERT(NVARCHAR(400), NULL)                AS invoice_number,
           CONVERT(NVARCHAR(10), NULL)                 AS invoice_date,
           CONVERT(NVARCHAR(10), NULL)                 AS due_date,
           CONVERT(NVARCHAR(400), c.client_number)     AS client_number,
           CONVERT(NVARCHAR(4000), c.name)             AS client_name,
           CONVERT(NVARCHAR(400), m.matter_number)     AS matter_number,
           CONVERT(NVARCHAR(4000), m.description)      AS matter_description,
           CONVERT(NVARCHAR(3), t.currency)            AS currency,
           CONVERT(BIGINT, NULL)                       AS total_minor,
           CONVERT(BIGINT, t.balance_minor)            AS balance_minor,
           CONVERT(NVARCHAR(40), N'trust')             AS status
    FROM dbo.matter AS m
    JOIN dbo.client AS c ON c.client_id = m.client_id
    CROSS APPLY (SELECT MIN(e.currency) AS currency,
                        SUM(e.amount_minor) AS balance_minor,
                        COUNT_BIG(*) AS entries
                 FROM dbo.trust_entry AS e
                 WHERE e.matter_id = m.matter_id) AS t
    WHERE m.matter_id > @after_source_id
      AND t.entries > 0
    ORDER BY m.matter_id;
END;
GO

-- One row per stamped ml_change row, with the entity's state as it is now. op is 'upsert' when the
-- entity is an item now (it would appear in ml_open_items or ml_trust_balances), else 'remove'
-- (deleted, paid, void, closed, zero balance, no trust entries left, matter or client gone); a
-- 'remove' row carries only change_id, op, item_kind and source_id, every other column is NULL.
-- Because a row is the current state, applying it twice, or after a snapshot that already saw it,
-- changes nothing. Unstamped rows (change_id NULL) are not changes yet.
CREATE OR ALTER VIEW dbo.ml_changes
AS
SELECT ch.change_id                                                              AS change_id,
       CONVERT(NVARCHAR(6), CASE WHEN c.client_id IS NULL THEN N'remove' ELSE N'upsert' END) AS op,
       CONVERT(NVARCHAR(7), ch.entity) COLLATE DATABASE_DEFAULT                  AS item_kind,
       CONVERT(BIGINT, ch.entity_id)                                             AS source_id,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(NVARCHAR(400), i.invoice_number) END AS invoice_number,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(NVARCHAR(10), i.invoice_date, 23) END AS invoice_date,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(NVARCHAR(10), i.due_date, 23) END AS due_date,
       CONVERT(NVARCHAR(400), c.client_number)                                   AS client_number,
       CONVERT(NVARCHAR(4000), c.name)                                           AS client_name,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(NVARCHAR(400), m.matter_number) END AS matter_number,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(NVARCHAR(4000), m.description) END AS matter_description,
       CONVERT(NVARCHAR(3), CASE WHEN c.client_id IS NULL THEN NULL
                                 WHEN ch.entity = N'invoice' THEN i.currency
                                 ELSE t.currency END)                            AS currency,
       CASE WHEN c.client_id IS NOT NULL THEN CONVERT(BIGINT, i.total_minor) END AS total_minor,
       CONVERT(BIGINT, CASE WHEN c.client_id IS NULL THEN NULL
                            WHEN ch.entity = N'invoice' THEN i.balance_minor
                            ELSE t.balance_minor END)                            AS balance_minor,
       CONVERT(NVARCHAR(40), CASE WHEN c.client_id IS NULL THEN NULL
                                  WHEN ch.entity = N'invoice' THEN i.status
                                  ELSE N'trust' END)                             AS status
FROM dbo.ml_change AS ch
LEFT JOIN dbo.invoice AS i
    ON ch.entity = N'invoice'
   AND i.invoice_id = ch.entity_id
   AND i.status COLLATE Latin1_General_BIN2 = N'open'
   AND i.balance_minor > 0
OUTER APPLY (SELECT MIN(e.currency) AS currency,
                    SUM(e.amount_minor) AS balance_minor,
                    COUNT_BIG(*) AS entries
             FROM dbo.trust_entry AS e
             WHERE ch.entity = N'trust'
               AND e.matter_id = ch.entity_id) AS t
LEFT JOIN dbo.matter AS m
    ON m.matter_id = CASE WHEN ch.entity = N'invoice' THEN i.matter_id ELSE ch.entity_id END
   AND (ch.entity = N'invoice' OR t.entries > 0)
LEFT JOIN dbo.client AS c
    ON c.client_id = m.client_id
WHERE ch.change_id IS NOT NULL;
GO

-- ---------------------------------------------------------------------------------------------------
-- Change cursor procedures.
-- ---------------------------------------------------------------------------------------------------

-- Stamp committed unstamped changes (see CHANGE CAPTURE at the top). Internal: the agent calls
-- ml_change_high_water; sample.sql calls this to stamp its own load. Runs in the caller's
-- transaction when there is one, else in its own.
CREATE OR ALTER PROCEDURE dbo.ml_change_stamp
    @stamped    INT    = NULL OUTPUT,
    @high_water BIGINT = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;
    -- READPAST needs READ COMMITTED or REPEATABLE READ; this lasts until the procedure returns.
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    -- Own transaction only when the caller has none (and is not in implicit-transaction mode,
    -- where the first statement below opens one that the caller commits).
    DECLARE @own_transaction BIT = CASE WHEN @@TRANCOUNT = 0 AND (@@OPTIONS & 2) = 0 THEN 1 ELSE 0 END;
    DECLARE @last BIGINT, @count INT;
    DECLARE @batch TABLE (
        seq_id BIGINT NOT NULL PRIMARY KEY,
        rn     BIGINT NOT NULL
    );

    IF @own_transaction = 1
    BEGIN
        BEGIN TRANSACTION;
    END;

    -- 1. One stamper at a time: the counter row stays locked until this transaction ends.
    SELECT @last = k.last_change_id
    FROM dbo.ml_change_counter AS k WITH (UPDLOCK, ROWLOCK)
    WHERE k.singleton = 1;
    IF @last IS NULL
        THROW 50003, N'ml_change_counter has no row: run sql/sqlserver/contract.sql again', 1;

    -- 2. Unstamped rows of committed transactions (and of this one), oldest first; rows of
    -- transactions still in progress are skipped, not waited for.
    INSERT INTO @batch (seq_id, rn)
    SELECT TOP (100000) ch.seq_id, ROW_NUMBER() OVER (ORDER BY ch.seq_id)
    FROM dbo.ml_change AS ch WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
    WHERE ch.change_id IS NULL
    ORDER BY ch.seq_id;
    SET @count = @@ROWCOUNT;

    -- 3. Ids counter+1 .. counter+count in seq_id order; the counter moves on.
    IF @count > 0
    BEGIN
        UPDATE ch
        SET change_id = @last + b.rn
        FROM dbo.ml_change AS ch
        JOIN @batch AS b ON b.seq_id = ch.seq_id;

        SET @last = @last + @count;

        UPDATE dbo.ml_change_counter
        SET last_change_id = @last
        WHERE singleton = 1;
    END;

    IF @own_transaction = 1 COMMIT TRANSACTION;

    SET @stamped = @count;
    SET @high_water = @last;
END;
GO

-- change_high_water: stamps what has committed, then returns the highest change id handed out.
-- Every change at or below it is committed (or belongs to the caller's own transaction), and no
-- change can later appear at or below it. 0 before any change. One row, one column: high_water.
CREATE OR ALTER PROCEDURE dbo.ml_change_high_water
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @high_water BIGINT;
    EXEC dbo.ml_change_stamp @high_water = @high_water OUTPUT;
    SELECT CONVERT(BIGINT, @high_water) AS high_water;
END;
GO

-- One page of changes: since < change_id <= upto (upto is a high_water read before the first page),
-- ascending, at most @page_limit rows. Columns: change_id, op, then the item columns.
CREATE OR ALTER PROCEDURE dbo.ml_changes_since
    @since      BIGINT,
    @upto       BIGINT,
    @page_limit BIGINT
AS
BEGIN
    SET NOCOUNT ON;
    SELECT TOP (CASE WHEN @page_limit > 0 THEN @page_limit ELSE 0 END)
           change_id, op, item_kind, source_id, invoice_number, invoice_date, due_date,
           client_number, client_name, matter_number, matter_description, currency,
           total_minor, balance_minor, status
    FROM dbo.ml_changes
    WHERE change_id > @since
      AND change_id <= @upto
    ORDER BY change_id;
END;
GO

-- ---------------------------------------------------------------------------------------------------
-- Postings.
-- ---------------------------------------------------------------------------------------------------

-- The outcome of a posting: one row ('posted' with its receipt_id, or 'rejected' with the reason),
-- or no row when the database has never seen it. receipt_id is text, as the agent reads it: the
-- receipt's id, or for a reversal 'R-' and the receipt_reversal_id, so a reversal is never taken for
-- a receipt.
-- posting_uuid is matched exactly (case and trailing spaces count), as in SQLite.
CREATE OR ALTER PROCEDURE dbo.ml_posting_result
    @posting_uuid NVARCHAR(MAX)
AS
BEGIN
    SET NOCOUNT ON;
    -- Longer than any stored key: matches nothing (and the look-up stays an index seek).
    DECLARE @key NVARCHAR(64) = CASE WHEN LEN(@posting_uuid + N'.') <= 65 THEN @posting_uuid END;

    SELECT CONVERT(NVARCHAR(64), r.posting_uuid)      AS posting_uuid,
           CONVERT(NVARCHAR(8), N'posted')             AS status,
           CONVERT(NVARCHAR(22), r.receipt_id)         AS receipt_id,
           CONVERT(NVARCHAR(1000), NULL)               AS reason
    FROM dbo.receipt AS r
    WHERE r.posting_uuid = @key
      AND r.posting_uuid = @key COLLATE Latin1_General_BIN2
      AND LEN(r.posting_uuid + N'.') = LEN(@key + N'.')
    UNION ALL
    SELECT CONVERT(NVARCHAR(64), v.posting_uuid),
           CONVERT(NVARCHAR(8), N'posted'),
           CONVERT(NVARCHAR(22), N'R-' + CONVERT(NVARCHAR(20), v.receipt_reversal_id)),
           CONVERT(NVARCHAR(1000), NULL)
    FROM dbo.receipt_reversal AS v
    WHERE v.posting_uuid = @key
      AND v.posting_uuid = @key COLLATE Latin1_General_BIN2
      AND LEN(v.posting_uuid + N'.') = LEN(@key + N'.')
    UNION ALL
    SELECT CONVERT(NVARCHAR(64), x.posting_uuid) COLLATE DATABASE_DEFAULT,
           CONVERT(NVARCHAR(8), N'rejected'),
           CONVERT(NVARCHAR(22), NULL),
           CONVERT(NVARCHAR(1000), x.reason)
    FROM dbo.ml_posting_rejection AS x
    WHERE x.posting_uuid = @key
      AND LEN(x.posting_uuid + N'.') = LEN(@key + N'.')
      AND NOT EXISTS (SELECT 1
                      FROM dbo.receipt AS r
                      WHERE r.posting_uuid = @key
                        AND r.posting_uuid = @key COLLATE Latin1_General_BIN2
                        AND LEN(r.posting_uuid + N'.') = LEN(@key + N'.'))
      AND NOT EXISTS (SELECT 1
                      FROM dbo.receipt_reversal AS v
                      WHERE v.posting_uuid = @key
                        AND v.posting_uuid = @key COLLATE Latin1_General_BIN2
                        AND LEN(v.posting_uuid + N'.') = LEN(@key + N'.'));
END;
GO

-- reject_posting: after an ML001 error the agent rolls back, then records the answer in a
-- transaction of its own. Idempotent: an existing rejection keeps its first reason, and a posted
-- UUID is never recorded as rejected (ml_posting_result keeps saying 'posted').
-- Locks are taken in the same order as in ml_apply_posting (receipt, receipt_reversal, then
-- ml_posting_rejection).
CREATE OR ALTER PROCEDURE dbo.ml_reject_posting
    @posting_uuid NVARCHAR(MAX),
    @reason       NVARCHAR(MAX)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    -- ANSI_WARNINGS ON: a posting_uuid too long for the column is an error, never cut short.
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
    DECLARE @own_transaction BIT = CASE WHEN @@TRANCOUNT = 0 AND (@@OPTIONS & 2) = 0 THEN 1 ELSE 0 END;
    DECLARE @key NVARCHAR(64) = CASE WHEN LEN(@posting_uuid + N'.') <= 65 THEN @posting_uuid END;

    IF @own_transaction = 1
    BEGIN
        BEGIN TRANSACTION;
    END;

    IF NOT EXISTS (SELECT 1
                   FROM dbo.receipt AS r WITH (UPDLOCK, HOLDLOCK)
                   WHERE r.posting_uuid = @key
                     AND r.posting_uuid = @key COLLATE Latin1_General_BIN2
                     AND LEN(r.posting_uuid + N'.') = LEN(@key + N'.'))
       AND NOT EXISTS (SELECT 1
                       FROM dbo.receipt_reversal AS v WITH (UPDLOCK, HOLDLOCK)
                       WHERE v.posting_uuid = @key
                         AND v.posting_uuid = @key COLLATE Latin1_General_BIN2
                         AND LEN(v.posting_uuid + N'.') = LEN(@key + N'.'))
        -- A UUID longer than 64 characters fails here with a truncation error, as it must: it can
        -- be neither stored nor matched.
        INSERT INTO dbo.ml_posting_rejection (posting_uuid, reason)
        SELECT @posting_uuid, @reason
        WHERE NOT EXISTS (SELECT 1
                          FROM dbo.ml_posting_rejection AS x WITH (UPDLOCK, HOLDLOCK)
                          WHERE x.posting_uuid = @key
                            AND LEN(x.posting_uuid + N'.') = LEN(@key + N'.'));

    IF @own_transaction = 1 COMMIT TRANSACTION;
END;
GO

-- apply_posting: apply one posting, exactly once.
--
--   {CALL ml_apply_posting(?)}     -- the posting, a JSON object; inside the agent's transaction
--   {CALL ml_posting_result(?)}    -- then read the outcome; commit; only then acknowledge
--
-- The posting is the JSON document of docs/contract.md, section 5.6. The procedure:
--   a) does nothing at all when the posting_uuid is already posted or rejected (replay): the first
--      answer stands, whatever this copy of the posting says;
--   b) checks everything, in the order of docs/contract.md section 7 (the order of the SQLite
--      trigger), and stops at the first problem with THROW 50001, 'ML001 <code>', before anything is
--      written;
--   c) writes the receipt, one receipt_allocation per line in the posting's order, pays down the
--      invoices and books trust deposits; or, for a reversal (a posting whose "reverses" names the
--      posting it gives money back from), one receipt_reversal, one receipt_reversal_line per line,
--      gives the amounts back to the invoices (a paid one is open again) and withdraws them from the
--      trust ledgers. The change triggers record them in ml_change.
-- A reversal runs checks 1 to 8, 17 to 20, 11 (duplicate_line) and 21 to 26 of
-- docs/contract.md section 7 in place of 9 to 16. It locks the original receipt first (UPDLOCK), so
-- two reversals of one posting take turns, then its invoices as below, and takes a key-range update
-- lock on the trust entries of each matter it withdraws from.
--
-- Exactness, as in SQLite: keys of the JSON object are matched case-sensitively (OPENJSON's key
-- column is binary); account, client, invoice and matter numbers and the posting_uuid are matched
-- exactly (binary, trailing spaces count), whatever the database collation; codes (currency,
-- status, account type, line kind) are compared in a binary collation.
-- One difference: a posting that repeats one of the fields this procedure reads (two
-- "amount_minor" keys, say) is bad_posting; SQLite would take one of the two.
-- Amounts are JSON integers, never 250.00, 2.5e4 or "25000", from 1 to 999 999 999 999 999, so the
-- sum of up to 1000 lines stays far from BIGINT overflow (which would be an SQL error, not an
-- answer). Conversions use TRY_CONVERT: no input can raise a conversion error, which the agent
-- would record as a final data_error instead of bad_posting.
--
-- Concurrency: the replay look-ups take key-range locks (UPDLOCK, HOLDLOCK), so two deliveries of one
-- posting at once are applied once: the second waits, then sees the first and replays. The invoices
-- a posting pays are locked WITH (UPDLOCK, ROWLOCK) in invoice_id order before their status,
-- currency and balance are checked, so nothing can change between the checks and the writes; a
-- rejection still writes nothing, and its rollback releases the locks.
CREATE OR ALTER PROCEDURE dbo.ml_apply_posting
    @posting NVARCHAR(MAX)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON; SET NUMERIC_ROUNDABORT OFF;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @own_transaction BIT = CASE WHEN @@TRANCOUNT = 0 AND (@@OPTIONS & 2) = 0 THEN 1 ELSE 0 END;

    -- The fields this procedure reads, with OPENJSON types: 0 null, 1 string, 2 number,
    -- 3 true/false, 4 array, 5 object; NULL type means the field is missing.
    DECLARE @uuid NVARCHAR(MAX),           @uuid_type TINYINT,
            @received_on NVARCHAR(MAX),    @received_on_type TINYINT,
            @account_number NVARCHAR(MAX), @account_number_type TINYINT,
            @client_number NVARCHAR(MAX),  @client_number_type TINYINT,
            @currency NVARCHAR(MAX),       @currency_type TINYINT,
            @amount NVARCHAR(MAX),         @amount_type TINYINT,
            @payer_name NVARCHAR(MAX),     @payer_name_type TINYINT,
            @payer_email NVARCHAR(MAX),    @payer_email_type TINYINT,
            @ar_message NVARCHAR(MAX),     @ar_message_type TINYINT,
            @processor_txn NVARCHAR(MAX),  @processor_txn_type TINYINT,
            @reverses NVARCHAR(MAX),       @reverses_type TINYINT,
            @allocations NVARCHAR(MAX),    @allocations_type TINYINT;
    DECLARE @uuid_key NVARCHAR(64), @account_key NVARCHAR(400), @client_key NVARCHAR(400);
    DECLARE @received_on_date DATE, @amount_minor BIGINT, @line_count INT;
    DECLARE @bank_account_id BIGINT, @account_type NVARCHAR(100), @account_currency NVARCHAR(100);
    DECLARE @client_id BIGINT, @receipt_id BIGINT;
    DECLARE @first_char NVARCHAR(1);
    -- A reversal: the posting it gives money back from, and that receipt.
    DECLARE @reverses_key NVARCHAR(64), @original_id BIGINT, @original_account BIGINT,
            @original_client BIGINT, @original_currency NVARCHAR(100), @reversal_id BIGINT;

    -- The fields of the posting object that this procedure reads, one row per occurrence.
    DECLARE @field TABLE (
        [key]   NVARCHAR(20)  COLLATE Latin1_General_BIN2 NOT NULL,
        [value] NVARCHAR(MAX) COLLATE DATABASE_DEFAULT NULL,
        [type]  TINYINT       NOT NULL
    );

    -- One row per allocation line. number_key is the invoice or matter number when it is short
    -- enough to name a row (a longer one names nothing).
    DECLARE @line TABLE (
        line_no             INT           NOT NULL PRIMARY KEY,
        line_type           TINYINT       NOT NULL,
        key_count           INT           NOT NULL,
        key_distinct        INT           NOT NULL,
        kind                NVARCHAR(MAX) COLLATE DATABASE_DEFAULT NULL,
        kind_type           TINYINT       NULL,
        invoice_number      NVARCHAR(MAX) COLLATE DATABASE_DEFAULT NULL,
        invoice_number_type TINYINT       NULL,
        matter_number       NVARCHAR(MAX) COLLATE DATABASE_DEFAULT NULL,
        matter_number_type  TINYINT       NULL,
        amount              NVARCHAR(MAX) COLLATE DATABASE_DEFAULT NULL,
        amount_type         TINYINT       NULL,
        is_invoice          BIT           NOT NULL DEFAULT (0),
        is_trust            BIT           NOT NULL DEFAULT (0),
        number_key          NVARCHAR(400) COLLATE DATABASE_DEFAULT NULL,
        amount_minor        BIGINT        NULL,
        invoice_id          BIGINT        NULL,
        matter_id           BIGINT        NULL,
        allocation_id       BIGINT        NULL,     -- reversals: the original's line it takes back from
        given               BIGINT        NULL      -- reversals: what that line gave
    );

    -- The invoices the posting pays, as read under lock.
    DECLARE @invoice TABLE (
        invoice_id     BIGINT        NOT NULL PRIMARY KEY,
        found          BIT           NOT NULL DEFAULT (0),
        invoice_number NVARCHAR(400) COLLATE DATABASE_DEFAULT NULL,
        matter_id      BIGINT        NULL,
        currency       NVARCHAR(100) COLLATE DATABASE_DEFAULT NULL,
        balance_minor  BIGINT        NULL,
        total_minor    BIGINT        NULL,
        status         NVARCHAR(100) COLLATE DATABASE_DEFAULT NULL
    );

    IF @own_transaction = 1
    BEGIN
        BEGIN TRANSACTION;
    END;

    -- The posting must at least be a JSON object with one text posting_uuid to be looked up.
    -- Nothing reaches OPENJSON unless ISJSON accepted it (OPENJSON raises an error on bad JSON).
    SET @first_char = SUBSTRING(@posting,
                                PATINDEX(N'%[^' + NCHAR(32) + NCHAR(9) + NCHAR(10) + NCHAR(13) + N']%',
                                         @posting COLLATE Latin1_General_BIN2),
                                1);
    IF CASE WHEN @posting IS NOT NULL AND ISJSON(@posting) = 1 AND @first_char = N'{' THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 bad_posting', 1;

    INSERT INTO @field ([key], [value], [type])
    SELECT j.[key], j.[value], j.[type]
    FROM OPENJSON(@posting) AS j
    WHERE j.[key] IN (N'posting_uuid', N'received_on', N'account_number', N'client_number',
                      N'currency', N'amount_minor', N'payer_name', N'payer_email', N'ar_message',
                      N'processor_txn', N'reverses', N'allocations');

    IF CASE WHEN (SELECT COUNT(*) FROM @field WHERE [key] = N'posting_uuid' AND [type] = 1) = 1
             AND (SELECT COUNT(*) FROM @field WHERE [key] = N'posting_uuid') = 1
            THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 bad_posting', 1;

    SELECT @uuid = [value], @uuid_type = [type] FROM @field WHERE [key] = N'posting_uuid';
    SET @uuid_key = CASE WHEN LEN(@uuid + N'.') <= 65 THEN @uuid END;

    -- a) Replay: the first answer stands, whatever this copy of the posting says.
    IF EXISTS (SELECT 1
               FROM dbo.receipt AS r WITH (UPDLOCK, HOLDLOCK)
               WHERE r.posting_uuid = @uuid_key
                 AND r.posting_uuid = @uuid_key COLLATE Latin1_General_BIN2
                 AND LEN(r.posting_uuid + N'.') = LEN(@uuid_key + N'.'))
       OR EXISTS (SELECT 1
                  FROM dbo.receipt_reversal AS v WITH (UPDLOCK, HOLDLOCK)
                  WHERE v.posting_uuid = @uuid_key
                    AND v.posting_uuid = @uuid_key COLLATE Latin1_General_BIN2
                    AND LEN(v.posting_uuid + N'.') = LEN(@uuid_key + N'.'))
       OR EXISTS (SELECT 1
                  FROM dbo.ml_posting_rejection AS x WITH (UPDLOCK, HOLDLOCK)
                  WHERE x.posting_uuid = @uuid_key
                    AND LEN(x.posting_uuid + N'.') = LEN(@uuid_key + N'.'))
    BEGIN
        IF @own_transaction = 1 COMMIT TRANSACTION;
        RETURN;
    END;

    -- b) Validation, in the order of docs/contract.md section 7.
    SELECT @received_on = [value], @received_on_type = [type] FROM @field WHERE [key] = N'received_on';
    SELECT @account_number = [value], @account_number_type = [type] FROM @field WHERE [key] = N'account_number';
    SELECT @client_number = [value], @client_number_type = [type] FROM @field WHERE [key] = N'client_number';
    SELECT @currency = [value], @currency_type = [type] FROM @field WHERE [key] = N'currency';
    SELECT @amount = [value], @amount_type = [type] FROM @field WHERE [key] = N'amount_minor';
    SELECT @payer_name = [value], @payer_name_type = [type] FROM @field WHERE [key] = N'payer_name';
    SELECT @payer_email = [value], @payer_email_type = [type] FROM @field WHERE [key] = N'payer_email';
    SELECT @ar_message = [value], @ar_message_type = [type] FROM @field WHERE [key] = N'ar_message';
    SELECT @processor_txn = [value], @processor_txn_type = [type] FROM @field WHERE [key] = N'processor_txn';
    SELECT @reverses = [value], @reverses_type = [type] FROM @field WHERE [key] = N'reverses';
    SELECT @allocations = [value], @allocations_type = [type] FROM @field WHERE [key] = N'allocations';

    -- A real date written YYYY-MM-DD (TRY_CONVERT refuses 2026-02-30; the round trip refuses any
    -- other spelling).
    IF @received_on_type = 1
       AND DATALENGTH(@received_on) = 20
       AND @received_on COLLATE Latin1_General_BIN2 LIKE N'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
        SET @received_on_date = TRY_CONVERT(DATE, @received_on, 23);

    -- Lines are read only when there are 1 to 1000 of them.
    IF @allocations_type = 4
        SELECT @line_count = COUNT(*) FROM OPENJSON(@allocations);

    IF @line_count BETWEEN 1 AND 1000
    BEGIN
        INSERT INTO @line (line_no, line_type, key_count, key_distinct, kind, kind_type,
                           invoice_number, invoice_number_type, matter_number, matter_number_type,
                           amount, amount_type)
        SELECT TRY_CONVERT(INT, a.[key]), a.[type], d.key_count, d.key_distinct,
               k.[value], k.[type], inv.[value], inv.[type], mat.[value], mat.[type],
               amt.[value], amt.[type]
        FROM OPENJSON(@allocations) AS a
        CROSS APPLY (SELECT COUNT(*) AS key_count, COUNT(DISTINCT b.[key]) AS key_distinct
                     FROM OPENJSON(CASE WHEN a.[type] = 5 THEN a.[value] ELSE N'{}' END) AS b
                     WHERE b.[key] IN (N'kind', N'invoice_number', N'matter_number', N'amount_minor')) AS d
        OUTER APPLY (SELECT TOP (1) b.[value], b.[type]
                     FROM OPENJSON(CASE WHEN a.[type] = 5 THEN a.[value] ELSE N'{}' END) AS b
                     WHERE b.[key] = N'kind') AS k
        OUTER APPLY (SELECT TOP (1) b.[value], b.[type]
                     FROM OPENJSON(CASE WHEN a.[type] = 5 THEN a.[value] ELSE N'{}' END) AS b
                     WHERE b.[key] = N'invoice_number') AS inv
        OUTER APPLY (SELECT TOP (1) b.[value], b.[type]
                     FROM OPENJSON(CASE WHEN a.[type] = 5 THEN a.[value] ELSE N'{}' END) AS b
                     WHERE b.[key] = N'matter_number') AS mat
        OUTER APPLY (SELECT TOP (1) b.[value], b.[type]
                     FROM OPENJSON(CASE WHEN a.[type] = 5 THEN a.[value] ELSE N'{}' END) AS b
                     WHERE b.[key] = N'amount_minor') AS amt;

        -- A line names what it pays: kind "invoice" with a text invoice_number, or kind "trust"
        -- with a text matter_number.
        UPDATE @line
        SET is_invoice = CASE WHEN line_type = 5 AND kind_type = 1
                                   AND kind COLLATE Latin1_General_BIN2 = N'invoice'
                                   AND DATALENGTH(kind) = 14
                                   AND invoice_number_type = 1
                              THEN 1 ELSE 0 END,
            is_trust = CASE WHEN line_type = 5 AND kind_type = 1
                                 AND kind COLLATE Latin1_General_BIN2 = N'trust'
                                 AND DATALENGTH(kind) = 10
                                 AND matter_number_type = 1
                            THEN 1 ELSE 0 END;

        UPDATE @line
        SET number_key = CASE WHEN is_invoice = 1 AND LEN(invoice_number + N'.') <= 401 THEN invoice_number
                              WHEN is_trust = 1 AND LEN(matter_number + N'.') <= 401 THEN matter_number
                         END,
            -- A JSON integer: digits only (no sign, point, exponent), 15 at most.
            amount_minor = CASE WHEN amount_type = 2
                                     AND DATALENGTH(amount) BETWEEN 2 AND 30
                                     AND amount COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
                                THEN TRY_CONVERT(BIGINT, amount) END;
    END;

    -- 1. bad_posting: shape. A canonical lower-case UUID (so one posting cannot arrive under two
    -- spellings), a real date, text fields, 1 to 1000 allocation lines each naming what it pays.
    IF CASE WHEN DATALENGTH(@uuid) = 72
             AND @uuid COLLATE Latin1_General_BIN2 LIKE
                 REPLACE(N'HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH', N'H', N'[0-9a-f]')
             AND @received_on_date IS NOT NULL
             AND CONVERT(NVARCHAR(10), @received_on_date, 23) = @received_on COLLATE Latin1_General_BIN2
             AND @account_number_type = 1
             AND @client_number_type = 1
             AND @currency_type = 1
             AND DATALENGTH(@currency) = 6
             AND @currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]'
             AND COALESCE(@payer_name_type, 0) IN (0, 1)
             AND COALESCE(@payer_email_type, 0) IN (0, 1)
             AND COALESCE(@ar_message_type, 0) IN (0, 1)
             AND COALESCE(@processor_txn_type, 0) IN (0, 1)
             -- "reverses": null or missing, or the canonical UUID of another posting.
             AND COALESCE(@reverses_type, 0) IN (0, 1)
             AND (COALESCE(@reverses_type, 0) = 0
                  OR (DATALENGTH(@reverses) = 72
                      AND @reverses COLLATE Latin1_General_BIN2 LIKE
                          REPLACE(N'HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH', N'H', N'[0-9a-f]')
                      AND @reverses COLLATE Latin1_General_BIN2 <> @uuid))
             AND @allocations_type = 4
             AND @line_count BETWEEN 1 AND 1000
             AND NOT EXISTS (SELECT 1 FROM @line
                             WHERE key_count <> key_distinct
                                OR (is_invoice = 0 AND is_trust = 0))
             AND NOT EXISTS (SELECT [key] FROM @field GROUP BY [key] HAVING COUNT(*) > 1)
            THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 bad_posting', 1;

    -- 2. unknown_account
    SET @account_key = CASE WHEN LEN(@account_number + N'.') <= 401 THEN @account_number END;
    SELECT @bank_account_id = b.bank_account_id,
           @account_type = b.account_type,
           @account_currency = b.currency
    FROM dbo.bank_account AS b
    WHERE b.account_number = @account_key
      AND b.account_number = @account_key COLLATE Latin1_General_BIN2
      AND LEN(b.account_number + N'.') = LEN(@account_key + N'.');
    IF @bank_account_id IS NULL
        THROW 50001, N'ML001 unknown_account', 1;

    -- 3. client_not_found
    SET @client_key = CASE WHEN LEN(@client_number + N'.') <= 401 THEN @client_number END;
    SELECT @client_id = c.client_id
    FROM dbo.client AS c
    WHERE c.client_number = @client_key
      AND c.client_number = @client_key COLLATE Latin1_General_BIN2
      AND LEN(c.client_number + N'.') = LEN(@client_key + N'.');
    IF @client_id IS NULL
        THROW 50001, N'ML001 client_not_found', 1;

    -- 4. bad_amount: JSON integers from 1 to 999 999 999 999 999, on the posting and on every line.
    SET @amount_minor = CASE WHEN @amount_type = 2
                                  AND DATALENGTH(@amount) BETWEEN 2 AND 30
                                  AND @amount COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
                             THEN TRY_CONVERT(BIGINT, @amount) END;
    IF CASE WHEN @amount_minor BETWEEN 1 AND 999999999999999
             AND NOT EXISTS (SELECT 1 FROM @line
                             WHERE COALESCE(amount_minor, 0) NOT BETWEEN 1 AND 999999999999999)
            THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 bad_amount', 1;

    -- 5. allocation_sum_mismatch
    IF CASE WHEN (SELECT SUM(amount_minor) FROM @line) = @amount_minor THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 allocation_sum_mismatch', 1;

    -- 6. currency_mismatch: the posting's currency is the account's.
    IF CASE WHEN @account_currency COLLATE Latin1_General_BIN2 = @currency THEN 0 ELSE 1 END = 1
        THROW 50001, N'ML001 currency_mismatch', 1;

    -- 7, 8. Invoices are paid into OPERATING accounts and trust deposits go to TRUST accounts; one
    -- posting is one deposit into one account, so it never mixes the two.
    IF CASE WHEN @account_type COLLATE Latin1_General_BIN2 = N'OPERATING' THEN 0 ELSE 1 END = 1
       AND EXISTS (SELECT 1 FROM @line WHERE is_invoice = 1)
        THROW 50001, N'ML001 operating_account_required', 1;

    IF CASE WHEN @account_type COLLATE Latin1_General_BIN2 = N'TRUST' THEN 0 ELSE 1 END = 1
       AND EXISTS (SELECT 1 FROM @line WHERE is_trust = 1)
        THROW 50001, N'ML001 trust_account_required', 1;

    -- Reversals (a "reverses" that is not null) are checked against the original receipt in place of
    -- checks 9 to 16, and written to receipt_reversal.
    IF @reverses_type = 1
    BEGIN
        SET @reverses_key = @reverses;

        -- 17. original_not_posted: the original is a receipt; a posting that was rejected, never
        -- arrived, or is itself a reversal has none. Its row is locked, so reversals of it take turns.
        SELECT @original_id = r.receipt_id,
               @original_account = r.bank_account_id,
               @original_client = r.client_id,
               @original_currency = r.currency
        FROM dbo.receipt AS r WITH (UPDLOCK, ROWLOCK)
        WHERE r.posting_uuid = @reverses_key
          AND r.posting_uuid = @reverses_key COLLATE Latin1_General_BIN2
          AND LEN(r.posting_uuid + N'.') = LEN(@reverses_key + N'.');
        IF @original_id IS NULL
            THROW 50001, N'ML001 original_not_posted', 1;

        -- 18-20. The money goes back out of the account it came into, for the client that paid, in
        -- its currency.
        IF CASE WHEN @original_account = @bank_account_id THEN 0 ELSE 1 END = 1
            THROW 50001, N'ML001 reversal_account_mismatch', 1;
        IF CASE WHEN @original_client = @client_id THEN 0 ELSE 1 END = 1
            THROW 50001, N'ML001 reversal_client_mismatch', 1;
        IF CASE WHEN @original_currency COLLATE Latin1_General_BIN2 = @currency THEN 0 ELSE 1 END = 1
            THROW 50001, N'ML001 reversal_currency_mismatch', 1;

        -- 11. duplicate_line: two lines of one kind naming the same number exactly.
        IF EXISTS (SELECT 1
                   FROM @line AS a
                   JOIN @line AS b
                     ON b.line_no > a.line_no
                    AND b.is_invoice = a.is_invoice
                    AND b.number_key = a.number_key COLLATE Latin1_General_BIN2
                    AND LEN(b.number_key + N'.') = LEN(a.number_key + N'.'))
            THROW 50001, N'ML001 duplicate_line', 1;

        -- 21. reversal_line_not_in_original: each line takes back from the original's allocation line
        -- of the same kind and invoice or matter number (allocation lines never change).
        UPDATE l
        SET allocation_id = ra.receipt_allocation_id,
            given = ra.amount_minor,
            invoice_id = ra.invoice_id,
            matter_id = ra.matter_id
        FROM @line AS l
        JOIN dbo.receipt_allocation AS ra ON ra.receipt_id = @original_id
        LEFT JOIN dbo.invoice AS i ON i.invoice_id = ra.invoice_id
        LEFT JOIN dbo.matter AS m ON m.matter_id = ra.matter_id
        WHERE (l.is_invoice = 1
               AND ra.kind COLLATE Latin1_General_BIN2 = N'invoice'
               AND i.invoice_number = l.number_key
               AND i.invoice_number = l.number_key COLLATE Latin1_General_BIN2
               AND LEN(i.invoice_number + N'.') = LEN(l.number_key + N'.'))
           OR (l.is_trust = 1
               AND ra.kind COLLATE Latin1_General_BIN2 = N'trust'
               AND m.matter_number = l.number_key
               AND m.matter_number = l.number_key COLLATE Latin1_General_BIN2
               AND LEN(m.matter_number + N'.') = LEN(l.number_key + N'.'));
        IF EXISTS (SELECT 1 FROM @line WHERE allocation_id IS NULL)
            THROW 50001, N'ML001 reversal_line_not_in_original', 1;

        -- Lock the invoices, in invoice_id order, and read them under the lock.
        INSERT INTO @invoice (invoice_id)
        SELECT DISTINCT invoice_id FROM @line WHERE invoice_id IS NOT NULL;

        UPDATE v
        SET found = 1,
            invoice_number = i.invoice_number,
            matter_id = i.matter_id,
            currency = i.currency,
            balance_minor = i.balance_minor,
            total_minor = i.total_minor,
            status = i.status
        FROM @invoice AS v
        JOIN dbo.invoice AS i WITH (UPDLOCK, ROWLOCK)
          ON i.invoice_id = v.invoice_id
        OPTION (LOOP JOIN, FORCE ORDER, MAXDOP 1);

        -- 22. reversal_exceeds_original: this reversal and the earlier ones (committed: the original
        -- receipt is locked) never take back more than a line gave.
        IF EXISTS (SELECT 1
                   FROM @line AS l
                   WHERE CASE WHEN l.amount_minor + COALESCE((SELECT SUM(x.amount_minor)
                                                              FROM dbo.receipt_reversal_line AS x
                                                              WHERE x.receipt_allocation_id = l.allocation_id), 0)
                                   <= l.given
                              THEN 0 ELSE 1 END = 1)
            THROW 50001, N'ML001 reversal_exceeds_original', 1;

        -- 23. reversal_invoice_closed: a void or closed invoice takes nothing back (a paid one opens
        -- again). 24. reversal_currency_mismatch: nor one whose currency changed since. 25.
        -- reversal_exceeds_invoice_total: a balance never grows above the invoice's total.
        IF EXISTS (SELECT 1
                   FROM @invoice AS v
                   WHERE CASE WHEN v.status COLLATE Latin1_General_BIN2 IN (N'open', N'paid') THEN 0 ELSE 1 END = 1)
            THROW 50001, N'ML001 reversal_invoice_closed', 1;
        IF EXISTS (SELECT 1
                   FROM @invoice AS v
                   WHERE CASE WHEN v.currency COLLATE Latin1_General_BIN2 = @currency THEN 0 ELSE 1 END = 1)
            THROW 50001, N'ML001 reversal_currency_mismatch', 1;
        IF EXISTS (SELECT 1
                   FROM @line AS l
                   JOIN @invoice AS v ON v.invoice_id = l.invoice_id
                   WHERE CASE WHEN v.balance_minor + l.amount_minor <= v.total_minor THEN 0 ELSE 1 END = 1)
            THROW 50001, N'ML001 reversal_exceeds_invoice_total', 1;

        -- 26. trust_balance_insufficient: a withdrawal never takes a matter's trust balance below zero
        -- (DESIGN.md, money rule 5). The key-range update lock on the matter's entries keeps anyone
        -- from adding an entry for it until this transaction ends, and makes a second reversal on the
        -- same matter wait here instead of deadlocking.
        IF EXISTS (SELECT 1
                   FROM @line AS l
                   WHERE l.matter_id IS NOT NULL
                     AND CASE WHEN COALESCE((SELECT SUM(t.amount_minor)
                                             FROM dbo.trust_entry AS t WITH (UPDLOCK, HOLDLOCK)
                                             WHERE t.matter_id = l.matter_id), 0) >= l.amount_minor
                              THEN 0 ELSE 1 END = 1)
            THROW 50001, N'ML001 trust_balance_insufficient', 1;

        -- c') Apply: the reversal of the original receipt, dated the day of the refund, its lines in
        -- the reversal's order, the invoices given their amounts back (a paid one is open again), and
        -- the trust withdrawals: negative entries in the original's (TRUST) account that point at the
        -- receipt whose money they take back, so that receipt's entries net out.
        INSERT INTO dbo.receipt_reversal (posting_uuid, receipt_id, reversed_on, amount_minor, currency,
                                          ar_message, processor_txn)
        VALUES (@uuid, @original_id, @received_on_date, @amount_minor, @currency,
                CASE WHEN @ar_message_type = 1 THEN @ar_message END,
                CASE WHEN @processor_txn_type = 1 THEN @processor_txn END);
        SET @reversal_id = CONVERT(BIGINT, SCOPE_IDENTITY());

        INSERT INTO dbo.receipt_reversal_line (receipt_reversal_id, receipt_allocation_id, amount_minor)
        SELECT @reversal_id, l.allocation_id, l.amount_minor
        FROM @line AS l
        ORDER BY l.line_no;

        UPDATE i
        SET balance_minor = i.balance_minor + l.amount_minor,
            status = CASE WHEN i.status COLLATE Latin1_General_BIN2 = N'paid' THEN N'open' ELSE i.status END
        FROM dbo.invoice AS i
        JOIN @line AS l ON l.invoice_id = i.invoice_id;

        INSERT INTO dbo.trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
        SELECT l.matter_id, @original_account, @received_on_date, -l.amount_minor, @currency,
               N'reversal of ' + @reverses_key, @original_id
        FROM @line AS l
        WHERE l.matter_id IS NOT NULL
        ORDER BY l.line_no;

        IF @own_transaction = 1 COMMIT TRANSACTION;
        RETURN;
    END;


    -- 9. invoice_not_found
    UPDATE l
    SET invoice_id = i.invoice_id
    FROM @line AS l
    JOIN dbo.invoice AS i
      ON i.invoice_number = l.number_key
     AND i.invoice_number = l.number_key COLLATE Latin1_General_BIN2
     AND LEN(i.invoice_number + N'.') = LEN(l.number_key + N'.')
    WHERE l.is_invoice = 1;

    IF EXISTS (SELECT 1 FROM @line WHERE is_invoice = 1 AND invoice_id IS NULL)
        THROW 50001, N'ML001 invoice_not_found', 1;

    -- Lock the invoices, in invoice_id order, and read them under the lock. Every later check
    -- and the writes use these values.
    INSERT INTO @invoice (invoice_id)
    SELECT DISTINCT invoice_id FROM @line WHERE is_invoice = 1;

    UPDATE v
    SET found = 1,
        invoice_number = i.invoice_number,
        matter_id = i.matter_id,
        currency = i.currency,
        balance_minor = i.balance_minor,
        total_minor = i.total_minor,
        status = i.status
    FROM @invoice AS v
    JOIN dbo.invoice AS i WITH (UPDLOCK, ROWLOCK)
      ON i.invoice_id = v.invoice_id
    OPTION (LOOP JOIN, FORCE ORDER, MAXDOP 1);

    -- An invoice deleted or renumbered between the look-up and the lock: a technical error (not a
    -- business answer), so the agent rolls back and tries again later.
    IF EXISTS (SELECT 1
               FROM @line AS l
               JOIN @invoice AS v ON v.invoice_id = l.invoice_id
               WHERE v.found = 0
                  OR CASE WHEN v.invoice_number = l.number_key COLLATE Latin1_General_BIN2
                               AND LEN(v.invoice_number + N'.') = LEN(l.number_key + N'.')
                          THEN 0 ELSE 1 END = 1)
        THROW 50002, N'ml_apply_posting: an invoice changed while the posting was checked; try again', 1;

    -- 10. matter_not_found
    UPDATE l
    SET matter_id = m.matter_id
    FROM @line AS l
    JOIN dbo.matter AS m
      ON m.matter_number = l.number_key
     AND m.matter_number = l.number_key COLLATE Latin1_General_BIN2
     AND LEN(m.matter_number + N'.') = LEN(l.number_key + N'.')
    WHERE l.is_trust = 1;

    IF EXISTS (SELECT 1 FROM @line WHERE is_trust = 1 AND matter_id IS NULL)
        THROW 50001, N'ML001 matter_not_found', 1;

    -- 11. duplicate_line: one line per invoice and per matter (the balance check is per line).
    IF EXISTS (SELECT invoice_id FROM @line WHERE is_invoice = 1 GROUP BY invoice_id HAVING COUNT(*) > 1)
       OR EXISTS (SELECT matter_id FROM @line WHERE is_trust = 1 GROUP BY matter_id HAVING COUNT(*) > 1)
        THROW 50001, N'ML001 duplicate_line', 1;

    -- 12. invoice_client_mismatch: an invoice of another client's matter.
    IF EXISTS (SELECT 1
               FROM @invoice AS v
               JOIN dbo.matter AS m ON m.matter_id = v.matter_id
               JOIN dbo.client AS c ON c.client_id = m.client_id
               WHERE c.client_id <> @client_id)
        THROW 50001, N'ML001 invoice_client_mismatch', 1;

    -- 13. matter_client_mismatch: a trust deposit to another client's matter.
    IF EXISTS (SELECT 1
               FROM @line AS l
               JOIN dbo.matter AS m ON m.matter_id = l.matter_id
               JOIN dbo.client AS c ON c.client_id = m.client_id
               WHERE l.is_trust = 1 AND c.client_id <> @client_id)
        THROW 50001, N'ML001 matter_client_mismatch', 1;

    -- 14. invoice_not_open: paid, void, closed.
    IF EXISTS (SELECT 1
               FROM @invoice AS v
               WHERE CASE WHEN v.status COLLATE Latin1_General_BIN2 = N'open' THEN 0 ELSE 1 END = 1)
        THROW 50001, N'ML001 invoice_not_open', 1;

    -- 15. currency_mismatch: an invoice's currency, or the currency of a matter's existing trust
    -- entries.
    IF EXISTS (SELECT 1
               FROM @invoice AS v
               WHERE CASE WHEN v.currency COLLATE Latin1_General_BIN2 = @currency THEN 0 ELSE 1 END = 1)
       OR EXISTS (SELECT 1
                  FROM @line AS l
                  JOIN dbo.trust_entry AS t ON t.matter_id = l.matter_id
                  WHERE l.is_trust = 1
                    AND CASE WHEN t.currency COLLATE Latin1_General_BIN2 = @currency THEN 0 ELSE 1 END = 1)
        THROW 50001, N'ML001 currency_mismatch', 1;

    -- 16. amount_over_balance
    IF EXISTS (SELECT 1
               FROM @line AS l
               JOIN @invoice AS v ON v.invoice_id = l.invoice_id
               WHERE l.is_invoice = 1
                 AND CASE WHEN l.amount_minor <= v.balance_minor THEN 0 ELSE 1 END = 1)
        THROW 50001, N'ML001 amount_over_balance', 1;

    -- c) Apply. posted_at defaults to UTC now.
    INSERT INTO dbo.receipt (posting_uuid, received_on, bank_account_id, client_id, payer_name,
                             payer_email, amount_minor, currency, ar_message, processor_txn)
    VALUES (@uuid, @received_on_date, @bank_account_id, @client_id,
            CASE WHEN @payer_name_type = 1 THEN @payer_name END,
            CASE WHEN @payer_email_type = 1 THEN @payer_email END,
            @amount_minor, @currency,
            CASE WHEN @ar_message_type = 1 THEN @ar_message END,
            CASE WHEN @processor_txn_type = 1 THEN @processor_txn END);
    SET @receipt_id = CONVERT(BIGINT, SCOPE_IDENTITY());

    -- Lines keep the posting's order (IDENTITY values follow the ORDER BY of INSERT ... SELECT).
    INSERT INTO dbo.receipt_allocation (receipt_id, kind, invoice_id, matter_id, amount_minor)
    SELECT @receipt_id,
           CASE WHEN l.is_invoice = 1 THEN N'invoice' ELSE N'trust' END,
           CASE WHEN l.is_invoice = 1 THEN l.invoice_id END,
           CASE WHEN l.is_trust = 1 THEN l.matter_id END,
           l.amount_minor
    FROM @line AS l
    ORDER BY l.line_no;

    -- SET expressions all see the row as it was, so both use the old balance.
    UPDATE i
    SET balance_minor = i.balance_minor - l.amount_minor,
        status = CASE WHEN i.balance_minor = l.amount_minor THEN N'paid' ELSE i.status END
    FROM dbo.invoice AS i
    JOIN @line AS l ON l.invoice_id = i.invoice_id AND l.is_invoice = 1;

    -- Trust deposits land in the posting's (TRUST) account, dated the day the money was received.
    INSERT INTO dbo.trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
    SELECT l.matter_id, @bank_account_id, @received_on_date, l.amount_minor, @currency,
           N'matterlink receipt', @receipt_id
    FROM @line AS l
    WHERE l.is_trust = 1
    ORDER BY l.line_no;

    IF @own_transaction = 1 COMMIT TRANSACTION;
END;
GO

-- ---------------------------------------------------------------------------------------------------
-- Permissions: the agent's database user needs only this role (ALTER ROLE ml_agent ADD MEMBER ...).
-- The procedures reach the tables through ownership chaining (all objects are dbo's).
-- ---------------------------------------------------------------------------------------------------

IF DATABASE_PRINCIPAL_ID(N'ml_agent') IS NULL
    CREATE ROLE ml_agent AUTHORIZATION dbo;
GRANT SELECT ON dbo.ml_contract TO ml_agent;
GRANT EXECUTE ON dbo.ml_open_items TO ml_agent;
GRANT EXECUTE ON dbo.ml_trust_balances TO ml_agent;
GRANT EXECUTE ON dbo.ml_change_high_water TO ml_agent;
GRANT EXECUTE ON dbo.ml_changes_since TO ml_agent;
GRANT EXECUTE ON dbo.ml_apply_posting TO ml_agent;
GRANT EXECUTE ON dbo.ml_reject_posting TO ml_agent;
GRANT EXECUTE ON dbo.ml_posting_result TO ml_agent;
GO

COMMIT TRANSACTION;
GO
