-- matterlink reference matter-management schema (SQL Server 2016 SP1 and later, Azure SQL).
--
-- A stand-in for a law firm's time & billing database: clients, matters, bank accounts, invoices,
-- trust (IOLTA) ledgers, the receipts that pay them and the reversals (refunds, voids, chargebacks)
-- that give receipts' money back. The matterlink contract (contract.sql) is installed on top of it;
-- a firm's real system has its own tables and gets the contract adapted.
-- It mirrors sql/sqlite/schema.sql table for table and column for column.
--
-- Run with sqlcmd (the ":on error exit" line below is a sqlcmd command; in SSMS use SQLCMD mode):
--   sqlcmd -S HOST -d FIRM -b -I -i sql/sqlserver/schema.sql
--
-- UNTESTED: written without a SQL Server to run it on. sql/sqlserver/README.md lists what to check.
--
-- Safe to run again: every table and index is created only if it is missing and nothing is dropped;
-- the two rule triggers are CREATE OR ALTER, so they always match this script.
-- The whole script is one transaction: an error stops sqlcmd (":on error exit"), the connection
-- closes and SQL Server rolls everything back.
--
-- Types: ids are BIGINT IDENTITY; money is BIGINT minor units (cents) with an ISO 4217 currency code,
-- never MONEY, DECIMAL or FLOAT; dates are DATE; timestamps DATETIME2 in UTC; text is NVARCHAR
-- (the agent reads it as UTF-8 through FreeTDS).
-- Code values (currency, status, kind, account type) are checked with a binary collation, so
-- 'usd' or 'Open' are refused even where the database collation is case-insensitive.
-- Plain (not filtered) indexes only: a filtered index makes every INSERT/UPDATE/DELETE on its table
-- fail with error 1934 in a session with non-standard SET options (ANSI_WARNINGS OFF, for example),
-- and these are the tables a firm's own programs write.

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

-- SQL Server 2016 SP1 (13.0.4001) or later: CREATE OR ALTER appeared there. Azure SQL Database and
-- Managed Instance (engine editions 5 and 8) report other version numbers but have everything.
IF CONVERT(INT, SERVERPROPERTY('EngineEdition')) NOT IN (5, 8)
   AND (CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 4)) < 13
        OR (CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 4)) = 13
            AND CONVERT(INT, PARSENAME(CONVERT(NVARCHAR(128), SERVERPROPERTY('ProductVersion')), 2)) < 4001))
    THROW 50100, N'schema.sql needs SQL Server 2016 SP1 (13.0.4001) or later', 1;
GO

BEGIN TRANSACTION;
GO

IF OBJECT_ID(N'dbo.client', N'U') IS NULL
CREATE TABLE dbo.client (
    client_id       BIGINT IDENTITY(1, 1) NOT NULL,
    client_number   NVARCHAR(32)  NOT NULL,
    name            NVARCHAR(200) NOT NULL,
    email           NVARCHAR(320) NULL,
    created_on      DATE          NULL,
    CONSTRAINT client_pk PRIMARY KEY CLUSTERED (client_id),
    CONSTRAINT client_number_unique UNIQUE (client_number),
    CONSTRAINT client_number_not_empty CHECK (DATALENGTH(client_number) > 0),
    CONSTRAINT client_name_not_empty CHECK (DATALENGTH(name) > 0),
    CONSTRAINT client_email_shape CHECK (email IS NULL OR email LIKE N'_%@_%')
);

-- Staff search clients by name.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.client') AND name = N'client_name')
CREATE NONCLUSTERED INDEX client_name ON dbo.client (name);

IF OBJECT_ID(N'dbo.matter', N'U') IS NULL
CREATE TABLE dbo.matter (
    matter_id       BIGINT IDENTITY(1, 1) NOT NULL,
    matter_number   NVARCHAR(32)  NOT NULL,
    client_id       BIGINT        NOT NULL,
    description     NVARCHAR(400) NOT NULL,
    status          NVARCHAR(6)   NOT NULL CONSTRAINT matter_status_default DEFAULT (N'open'),
    opened_on       DATE          NULL,
    CONSTRAINT matter_pk PRIMARY KEY CLUSTERED (matter_id),
    CONSTRAINT matter_number_unique UNIQUE (matter_number),
    CONSTRAINT matter_client_fk FOREIGN KEY (client_id) REFERENCES dbo.client (client_id),
    CONSTRAINT matter_number_not_empty CHECK (DATALENGTH(matter_number) > 0),
    CONSTRAINT matter_description_not_empty CHECK (DATALENGTH(description) > 0),
    CONSTRAINT matter_status_valid CHECK (status COLLATE Latin1_General_BIN2 IN (N'open', N'closed'))
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.matter') AND name = N'matter_client')
CREATE NONCLUSTERED INDEX matter_client ON dbo.matter (client_id);

-- Each account is TRUST (client money, IOLTA) or OPERATING (the firm's money) for good: the type
-- decides which postings may land in it, so it never changes once set (trigger below).
IF OBJECT_ID(N'dbo.bank_account', N'U') IS NULL
CREATE TABLE dbo.bank_account (
    bank_account_id BIGINT IDENTITY(1, 1) NOT NULL,
    account_number  NVARCHAR(32)  NOT NULL,
    name            NVARCHAR(200) NOT NULL,
    account_type    NVARCHAR(9)   NOT NULL,
    currency        NVARCHAR(3)   NOT NULL,
    CONSTRAINT bank_account_pk PRIMARY KEY CLUSTERED (bank_account_id),
    CONSTRAINT bank_account_number_unique UNIQUE (account_number),
    CONSTRAINT bank_account_number_not_empty CHECK (DATALENGTH(account_number) > 0),
    CONSTRAINT bank_account_name_not_empty CHECK (DATALENGTH(name) > 0),
    CONSTRAINT bank_account_type_valid CHECK (account_type COLLATE Latin1_General_BIN2 IN (N'TRUST', N'OPERATING')),
    CONSTRAINT bank_account_currency_iso CHECK (currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]')
);

-- balance_minor is what is still owed; status 'paid' means nothing is.
IF OBJECT_ID(N'dbo.invoice', N'U') IS NULL
CREATE TABLE dbo.invoice (
    invoice_id      BIGINT IDENTITY(1, 1) NOT NULL,
    invoice_number  NVARCHAR(32)  NOT NULL,
    matter_id       BIGINT        NOT NULL,
    invoice_date    DATE          NOT NULL,
    due_date        DATE          NULL,
    currency        NVARCHAR(3)   NOT NULL,
    total_minor     BIGINT        NOT NULL,
    balance_minor   BIGINT        NOT NULL,
    status          NVARCHAR(6)   NOT NULL CONSTRAINT invoice_status_default DEFAULT (N'open'),
    CONSTRAINT invoice_pk PRIMARY KEY CLUSTERED (invoice_id),
    CONSTRAINT invoice_number_unique UNIQUE (invoice_number),
    CONSTRAINT invoice_matter_fk FOREIGN KEY (matter_id) REFERENCES dbo.matter (matter_id),
    CONSTRAINT invoice_number_not_empty CHECK (DATALENGTH(invoice_number) > 0),
    CONSTRAINT invoice_due_after_date CHECK (due_date IS NULL OR due_date >= invoice_date),
    CONSTRAINT invoice_currency_iso CHECK (currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]'),
    CONSTRAINT invoice_total_nonnegative CHECK (total_minor >= 0),
    CONSTRAINT invoice_balance_range CHECK (balance_minor >= 0 AND balance_minor <= total_minor),
    CONSTRAINT invoice_status_valid CHECK (status COLLATE Latin1_General_BIN2 IN (N'open', N'paid', N'void', N'closed')),
    CONSTRAINT invoice_paid_means_zero CHECK (status COLLATE Latin1_General_BIN2 <> N'paid' OR balance_minor = 0)
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.invoice') AND name = N'invoice_matter')
CREATE NONCLUSTERED INDEX invoice_matter ON dbo.invoice (matter_id);

-- Receipts come before trust_entry because trust deposits point at the receipt that brought the money.
-- posting_uuid is the payment service's posting id: the UNIQUE constraint is what makes a posting
-- land at most once, whatever happens to the connection.
IF OBJECT_ID(N'dbo.receipt', N'U') IS NULL
CREATE TABLE dbo.receipt (
    receipt_id      BIGINT IDENTITY(1, 1) NOT NULL,
    posting_uuid    NVARCHAR(64)  NOT NULL,
    received_on     DATE          NOT NULL,
    bank_account_id BIGINT        NOT NULL,
    client_id       BIGINT        NOT NULL,
    payer_name      NVARCHAR(MAX) NULL,
    payer_email     NVARCHAR(MAX) NULL,
    amount_minor    BIGINT        NOT NULL,
    currency        NVARCHAR(3)   NOT NULL,
    ar_message      NVARCHAR(MAX) NULL,
    processor_txn   NVARCHAR(MAX) NULL,
    posted_at       DATETIME2(3)  NOT NULL CONSTRAINT receipt_posted_at_default DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT receipt_pk PRIMARY KEY CLUSTERED (receipt_id),
    CONSTRAINT receipt_posting_uuid_unique UNIQUE (posting_uuid),
    CONSTRAINT receipt_bank_account_fk FOREIGN KEY (bank_account_id) REFERENCES dbo.bank_account (bank_account_id),
    CONSTRAINT receipt_client_fk FOREIGN KEY (client_id) REFERENCES dbo.client (client_id),
    CONSTRAINT receipt_posting_uuid_not_empty CHECK (DATALENGTH(posting_uuid) > 0),
    CONSTRAINT receipt_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT receipt_currency_iso CHECK (currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]')
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt') AND name = N'receipt_bank_account')
CREATE NONCLUSTERED INDEX receipt_bank_account ON dbo.receipt (bank_account_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt') AND name = N'receipt_client')
CREATE NONCLUSTERED INDEX receipt_client ON dbo.receipt (client_id);

-- One line of a receipt: an invoice payment or a trust deposit to a matter, never both.
IF OBJECT_ID(N'dbo.receipt_allocation', N'U') IS NULL
CREATE TABLE dbo.receipt_allocation (
    receipt_allocation_id BIGINT IDENTITY(1, 1) NOT NULL,
    receipt_id      BIGINT        NOT NULL,
    kind            NVARCHAR(7)   NOT NULL,
    invoice_id      BIGINT        NULL,
    matter_id       BIGINT        NULL,
    amount_minor    BIGINT        NOT NULL,
    CONSTRAINT receipt_allocation_pk PRIMARY KEY CLUSTERED (receipt_allocation_id),
    CONSTRAINT receipt_allocation_receipt_fk FOREIGN KEY (receipt_id) REFERENCES dbo.receipt (receipt_id),
    CONSTRAINT receipt_allocation_invoice_fk FOREIGN KEY (invoice_id) REFERENCES dbo.invoice (invoice_id),
    CONSTRAINT receipt_allocation_matter_fk FOREIGN KEY (matter_id) REFERENCES dbo.matter (matter_id),
    CONSTRAINT receipt_allocation_kind_valid CHECK (kind COLLATE Latin1_General_BIN2 IN (N'invoice', N'trust')),
    CONSTRAINT receipt_allocation_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT receipt_allocation_one_target CHECK (
        (kind COLLATE Latin1_General_BIN2 = N'invoice' AND invoice_id IS NOT NULL AND matter_id IS NULL)
        OR (kind COLLATE Latin1_General_BIN2 = N'trust' AND matter_id IS NOT NULL AND invoice_id IS NULL))
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_allocation') AND name = N'receipt_allocation_receipt')
CREATE NONCLUSTERED INDEX receipt_allocation_receipt ON dbo.receipt_allocation (receipt_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_allocation') AND name = N'receipt_allocation_invoice')
CREATE NONCLUSTERED INDEX receipt_allocation_invoice ON dbo.receipt_allocation (invoice_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_allocation') AND name = N'receipt_allocation_matter')
CREATE NONCLUSTERED INDEX receipt_allocation_matter ON dbo.receipt_allocation (matter_id);

-- A reversal gives money of a receipt back: a refund, void or chargeback at the payment processor.
-- The receipt is never edited. Each reversal is a row of its own, keyed by the posting_uuid of the
-- reversing posting (UNIQUE, as a receipt's is), and its lines say how much each allocation line of
-- the receipt gave back. A receipt's net is its amount minus its reversals' amounts, and an
-- allocation line's net is its amount minus its reversal lines' amounts. reversed_on is the day of
-- the refund, void or chargeback; the money leaves the receipt's own bank account, in its currency.
IF OBJECT_ID(N'dbo.receipt_reversal', N'U') IS NULL
CREATE TABLE dbo.receipt_reversal (
    receipt_reversal_id BIGINT IDENTITY(1, 1) NOT NULL,
    posting_uuid    NVARCHAR(64)  NOT NULL,
    receipt_id      BIGINT        NOT NULL,
    reversed_on     DATE          NOT NULL,
    amount_minor    BIGINT        NOT NULL,
    currency        NVARCHAR(3)   NOT NULL,
    ar_message      NVARCHAR(MAX) NULL,
    processor_txn   NVARCHAR(MAX) NULL,
    posted_at       DATETIME2(3)  NOT NULL CONSTRAINT receipt_reversal_posted_at_default DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT receipt_reversal_pk PRIMARY KEY CLUSTERED (receipt_reversal_id),
    CONSTRAINT receipt_reversal_posting_uuid_unique UNIQUE (posting_uuid),
    CONSTRAINT receipt_reversal_receipt_fk FOREIGN KEY (receipt_id) REFERENCES dbo.receipt (receipt_id),
    CONSTRAINT receipt_reversal_posting_uuid_not_empty CHECK (DATALENGTH(posting_uuid) > 0),
    CONSTRAINT receipt_reversal_amount_positive CHECK (amount_minor > 0),
    CONSTRAINT receipt_reversal_currency_iso CHECK (currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]')
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_reversal') AND name = N'receipt_reversal_receipt')
CREATE NONCLUSTERED INDEX receipt_reversal_receipt ON dbo.receipt_reversal (receipt_id);

-- One line of a reversal: what it takes back from one allocation line of the reversed receipt (an
-- invoice payment given back to the invoice's balance, or a trust deposit withdrawn from the ledger).
IF OBJECT_ID(N'dbo.receipt_reversal_line', N'U') IS NULL
CREATE TABLE dbo.receipt_reversal_line (
    receipt_reversal_line_id BIGINT IDENTITY(1, 1) NOT NULL,
    receipt_reversal_id   BIGINT NOT NULL,
    receipt_allocation_id BIGINT NOT NULL,
    amount_minor          BIGINT NOT NULL,
    CONSTRAINT receipt_reversal_line_pk PRIMARY KEY CLUSTERED (receipt_reversal_line_id),
    CONSTRAINT receipt_reversal_line_reversal_fk FOREIGN KEY (receipt_reversal_id)
        REFERENCES dbo.receipt_reversal (receipt_reversal_id),
    CONSTRAINT receipt_reversal_line_allocation_fk FOREIGN KEY (receipt_allocation_id)
        REFERENCES dbo.receipt_allocation (receipt_allocation_id),
    CONSTRAINT receipt_reversal_line_amount_positive CHECK (amount_minor > 0)
);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_reversal_line') AND name = N'receipt_reversal_line_reversal')
CREATE NONCLUSTERED INDEX receipt_reversal_line_reversal ON dbo.receipt_reversal_line (receipt_reversal_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.receipt_reversal_line') AND name = N'receipt_reversal_line_allocation')
CREATE NONCLUSTERED INDEX receipt_reversal_line_allocation ON dbo.receipt_reversal_line (receipt_allocation_id) INCLUDE (amount_minor);

-- The trust ledger: deposits are positive, disbursements negative, a zero entry means nothing.
-- A matter's trust balance is the sum of its entries.
IF OBJECT_ID(N'dbo.trust_entry', N'U') IS NULL
CREATE TABLE dbo.trust_entry (
    trust_entry_id  BIGINT IDENTITY(1, 1) NOT NULL,
    matter_id       BIGINT        NOT NULL,
    bank_account_id BIGINT        NOT NULL,
    entry_date      DATE          NOT NULL,
    amount_minor    BIGINT        NOT NULL,
    currency        NVARCHAR(3)   NOT NULL,
    memo            NVARCHAR(MAX) NULL,
    receipt_id      BIGINT        NULL,
    CONSTRAINT trust_entry_pk PRIMARY KEY CLUSTERED (trust_entry_id),
    CONSTRAINT trust_entry_matter_fk FOREIGN KEY (matter_id) REFERENCES dbo.matter (matter_id),
    CONSTRAINT trust_entry_bank_account_fk FOREIGN KEY (bank_account_id) REFERENCES dbo.bank_account (bank_account_id),
    CONSTRAINT trust_entry_receipt_fk FOREIGN KEY (receipt_id) REFERENCES dbo.receipt (receipt_id),
    CONSTRAINT trust_entry_amount_nonzero CHECK (amount_minor <> 0),
    CONSTRAINT trust_entry_currency_iso CHECK (currency COLLATE Latin1_General_BIN2 LIKE N'[A-Z][A-Z][A-Z]')
);

-- Covers the per-matter balance (SUM) and currency look-ups, so they never touch the table.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.trust_entry') AND name = N'trust_entry_matter')
CREATE NONCLUSTERED INDEX trust_entry_matter ON dbo.trust_entry (matter_id, currency, amount_minor);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.trust_entry') AND name = N'trust_entry_bank_account')
CREATE NONCLUSTERED INDEX trust_entry_bank_account ON dbo.trust_entry (bank_account_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.trust_entry') AND name = N'trust_entry_receipt')
CREATE NONCLUSTERED INDEX trust_entry_receipt ON dbo.trust_entry (receipt_id);
GO

-- An account's type never changes: TRUST and OPERATING money never mix.
-- T-SQL triggers fire once per statement, so every check here is over the whole inserted/deleted set.
CREATE OR ALTER TRIGGER dbo.bank_account_type_fixed
ON dbo.bank_account
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;
    IF EXISTS (SELECT 1
               FROM inserted AS n
               JOIN deleted AS o ON o.bank_account_id = n.bank_account_id
               WHERE n.account_type COLLATE Latin1_General_BIN2 <> o.account_type)
        THROW 50101, N'bank_account: account_type cannot change (TRUST and OPERATING money never mix)', 1;
END;
GO

-- Trust money only ever sits in a TRUST account of the entry's currency, and one matter's trust
-- ledger has one currency (otherwise its balance would add dollars to euros). This runs after the
-- statement, so the table already holds the new rows: a statement that inserts two currencies for
-- one matter is caught too.
CREATE OR ALTER TRIGGER dbo.trust_entry_rules
ON dbo.trust_entry
AFTER INSERT, UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    IF NOT EXISTS (SELECT 1 FROM inserted) RETURN;
    -- For an INSERT, UPDATE() is true for every column.
    IF NOT (UPDATE(matter_id) OR UPDATE(bank_account_id) OR UPDATE(currency)) RETURN;
    IF EXISTS (SELECT 1
               FROM inserted AS n
               LEFT JOIN dbo.bank_account AS b ON b.bank_account_id = n.bank_account_id
               WHERE b.bank_account_id IS NULL
                  OR b.account_type COLLATE Latin1_General_BIN2 <> N'TRUST')
        THROW 50102, N'trust_entry: bank account is not a TRUST account', 1;
    IF EXISTS (SELECT 1
               FROM inserted AS n
               LEFT JOIN dbo.bank_account AS b ON b.bank_account_id = n.bank_account_id
               WHERE b.bank_account_id IS NULL
                  OR b.currency COLLATE Latin1_General_BIN2 <> n.currency)
        THROW 50103, N'trust_entry: currency differs from the bank account currency', 1;
    IF EXISTS (SELECT 1
               FROM inserted AS n
               JOIN dbo.trust_entry AS t ON t.matter_id = n.matter_id
               WHERE t.currency COLLATE Latin1_General_BIN2 <> n.currency)
        THROW 50104, N'trust_entry: the matter already has trust entries in another currency', 1;
END;
GO

COMMIT TRANSACTION;
GO
