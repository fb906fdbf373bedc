-- matterlink sample data for the reference schema (SQL Server): a law firm's clients, matters,
-- invoices and trust ledgers, generated deterministically (same parameters, same rows, on every
-- machine). It follows sql/sqlite/sample.sql formula for formula, so the same parameters give the
-- same clients, matters, invoices and trust entries as the SQLite sample.
--
-- Run after schema.sql and contract.sql, with both parameters (sqlcmd has no default values):
--   sqlcmd -S HOST -d FIRM -b -I -v clients=300 invoices=3000 -i sql/sqlserver/sample.sql
-- clients: 1 to 1000000; invoices: 0 to 9999999. (In SSMS: SQLCMD mode, and :setvar lines.)
--
-- UNTESTED: written without a SQL Server to run it on. sql/sqlserver/README.md lists what to check.
--
-- Inserts only into an empty database: when client, matter, invoice or trust_entry has rows it prints
-- a notice and changes nothing. One transaction (an error stops sqlcmd and rolls it all back). The
-- invoice and trust inserts fire the matterlink change triggers; at the end the script stamps those
-- changes (dbo.ml_change_stamp), as the agent's first change_high_water would, so that the agent's
-- first snapshot covers them, as with SQLite.
--
-- Shape of the data: clients numbered C-00001.. in the order they became clients (2021-11 to 2026-08),
-- half businesses, the rest people and estates; 1 to 5 matters each (M-000001.. in opening order);
-- invoices INV-0000001.. evenly dated over the three years to 2026-11-01, due 30 days later, each on a
-- matter already open that day, $50 to $25,000 (hours at an hourly rate, plus costs); about 70% open
-- and unpaid, 10% partly paid, 20% paid. Bank accounts OP-001 (OPERATING, USD) and TR-001 (TRUST, USD).
-- About 30% of matters have a trust ledger: a retainer, often a transfer out to pay fees, sometimes a
-- top-up, and about one in ten refunded to zero.
--
-- Pseudo-random choices use a hash of the row number and a salt (two multiplicative rounds modulo 2^32,
-- keeping the high bits), computed in BIGINT: every product stays below 2^63. The constants are BIGINT
-- variables because a T-SQL literal above 2^31 is NUMERIC, whose division is not integer division.
-- Row numbers come from a cross-joined tally CTE (GENERATE_SERIES needs SQL Server 2022).
-- Every date is fixed (day numbers after 2021-11-01); nothing depends on the clock.

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

-- One batch from here on: the variables live for one batch, and RETURN ends it.

-- ---------------------------------------------------------------------------------------------------
-- Parameters and the empty-database check.
-- ---------------------------------------------------------------------------------------------------

DECLARE @clients_text NVARCHAR(100) = N'$(clients)';
DECLARE @invoices_text NVARCHAR(100) = N'$(invoices)';
DECLARE @clients BIGINT =
    CASE WHEN LEN(@clients_text) BETWEEN 1 AND 7
              AND @clients_text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
         THEN TRY_CONVERT(BIGINT, @clients_text) END;
DECLARE @invoices BIGINT =
    CASE WHEN LEN(@invoices_text) BETWEEN 1 AND 7
              AND @invoices_text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
         THEN TRY_CONVERT(BIGINT, @invoices_text) END;

IF CASE WHEN @clients BETWEEN 1 AND 1000000 THEN 0 ELSE 1 END = 1
    THROW 50200, N'sample.sql: clients must be a whole number from 1 to 1000000 (sqlcmd -v clients=300 invoices=3000)', 1;
IF CASE WHEN @invoices BETWEEN 0 AND 9999999 THEN 0 ELSE 1 END = 1
    THROW 50200, N'sample.sql: invoices must be a whole number from 0 to 9999999 (sqlcmd -v clients=300 invoices=3000)', 1;
IF OBJECT_ID(N'dbo.ml_change_stamp', N'P') IS NULL
    THROW 50200, N'sample.sql: run sql/sqlserver/schema.sql and sql/sqlserver/contract.sql first', 1;

IF EXISTS (SELECT 1 FROM dbo.client) OR EXISTS (SELECT 1 FROM dbo.matter)
   OR EXISTS (SELECT 1 FROM dbo.invoice) OR EXISTS (SELECT 1 FROM dbo.trust_entry)
BEGIN
    PRINT N'sample.sql: the database already has data; nothing inserted';
    RETURN;
END;

-- The hash: h(x, salt) = ((((x * @a + salt * @b) % @m) * @c + 12345) % @m) / 4096
DECLARE @a BIGINT = 2654435761, @b BIGINT = 1013904223, @c BIGINT = 1103515245, @m BIGINT = 4294967296;
-- Day 0.
DECLARE @base DATE = DATEFROMPARTS(2021, 11, 1);

BEGIN TRANSACTION;

-- ---------------------------------------------------------------------------------------------------
-- Word lists (the same lists, in the same order, as the SQLite sample).
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE #word (
    list NVARCHAR(20)  COLLATE DATABASE_DEFAULT NOT NULL,
    idx  INT           NOT NULL,
    word NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    PRIMARY KEY (list, idx)
);

INSERT INTO #word (list, idx, word)
SELECT l.list, CONVERT(INT, j.[key]), j.[value]
FROM (VALUES
     (N'first', N'["James","Mary","Robert","Patricia","John","Jennifer","Michael","Linda",
            "David","Elizabeth","William","Barbara","Richard","Susan","Joseph","Jessica","Thomas",
            "Sarah","Charles","Karen","Daniel","Lisa","Matthew","Nancy","Anthony","Margaret",
            "Mark","Sandra","Steven","Ashley","Andrew","Emily","Kenneth","Donna","Paul","Michelle",
            "Joshua","Carol","Kevin","Amanda","Brian","Melissa","George","Deborah","Edward",
            "Rebecca","Ronald","Laura","Timothy","Helen","Rosa","Ahmed","Mei","Rajesh","Sofia",
            "Hiroshi","Fatima","Lucas","Olga","Tomasz"]'),
     (N'last', N'["Smith","Johnson","Williams","Brown","Jones","Garcia","Miller","Davis",
            "Rodriguez","Martinez","Hernandez","Lopez","Gonzalez","Wilson","Anderson","Thomas",
            "Taylor","Moore","Jackson","Martin","Lee","Perez","Thompson","White","Harris",
            "Sanchez","Clark","Ramirez","Lewis","Robinson","Walker","Young","Allen","King",
            "Wright","Scott","Torres","Nguyen","Hill","Flores","Green","Adams","Nelson","Baker",
            "Hall","Rivera","Campbell","Mitchell","Carter","Roberts","Patel","Kowalski","Okafor",
            "Fischer","Novak","Haddad","Chen","Yamamoto","O''Brien","Sullivan","Whitfield",
            "Ashworth","Pemberton","Caldwell"]'),
     (N'business', N'["Logistics","Holdings","Construction","Capital","Dental Group",
            "Medical Associates","Realty","Manufacturing","Foods","Software","Engineering",
            "Hospitality","Energy","Design Studio","Motors","Transport","Pharmaceuticals",
            "Properties","Ventures","Consulting","Farms","Textiles","Marine","Analytics",
            "Brewing Company","Architects"]'),
     (N'suffix', N'["LLC","Inc.","Corp.","LLP","Ltd.","Co.","Group, Inc.","Partners LP"]'),
     (N'street', N'["Main Street","Oak Avenue","Harbor Drive","Elm Street","Maple Lane",
            "Lakeview Road","Cedar Court","Washington Boulevard","Park Place","Mill Road",
            "Ridge Avenue","Commerce Street","Riverside Drive","Church Street","Market Street",
            "Highland Avenue"]'),
     -- Matter descriptions; {F} {L} {B} {S} {N} {ST} are filled in per matter.
     (N'matter_business', N'["General corporate matters","Commercial lease - {N} {ST}",
            "Acquisition of {L} {B} {S}","Employment dispute - {F} {L}",
            "Breach of contract claim against {L} {B} {S}","Trademark registration",
            "Supplier agreement review","Regulatory compliance review","Collections - {L} {B}",
            "Shareholder agreement","Annual report and board minutes","Data privacy audit",
            "Construction lien - {N} {ST}","Insurance coverage dispute","Sale of assets to {L} {B} {S}",
            "Patent licensing agreement"]'),
     (N'matter_person', N'["Estate planning","Purchase of residence - {N} {ST}",
            "Sale of residence - {N} {ST}","Divorce proceedings","Child custody modification",
            "Personal injury claim - auto accident","Will and powers of attorney",
            "Landlord-tenant dispute - {N} {ST}","Traffic citation defense","Immigration visa petition",
            "Employment discrimination claim","Workers compensation claim","Name change petition",
            "Boundary dispute with neighbor"]'),
     (N'matter_estate', N'["Probate administration","Estate tax return","Trust administration",
            "Sale of estate property - {N} {ST}","Will contest","Final accounting to beneficiaries"]')
     ) AS l (list, words)
CROSS APPLY OPENJSON(l.words) AS j;

DECLARE @n_first BIGINT = (SELECT COUNT(*) FROM #word WHERE list = N'first');
DECLARE @n_last BIGINT = (SELECT COUNT(*) FROM #word WHERE list = N'last');
DECLARE @n_business BIGINT = (SELECT COUNT(*) FROM #word WHERE list = N'business');
DECLARE @n_suffix BIGINT = (SELECT COUNT(*) FROM #word WHERE list = N'suffix');
DECLARE @n_street BIGINT = (SELECT COUNT(*) FROM #word WHERE list = N'street');

-- ---------------------------------------------------------------------------------------------------
-- Bank accounts.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO dbo.bank_account (account_number, name, account_type, currency)
SELECT v.account_number, v.name, v.account_type, v.currency
FROM (VALUES (N'OP-001', N'Operating Account', N'OPERATING', N'USD'),
             (N'TR-001', N'IOLTA Client Trust Account', N'TRUST', N'USD'))
     AS v (account_number, name, account_type, currency)
WHERE NOT EXISTS (SELECT 1 FROM dbo.bank_account AS b WHERE b.account_number = v.account_number)
ORDER BY v.account_number;

DECLARE @trust_account_id BIGINT =
    (SELECT bank_account_id FROM dbo.bank_account WHERE account_number = N'TR-001');

-- ---------------------------------------------------------------------------------------------------
-- Clients: client i became a client on day (i-1)*1765/clients after 2021-11-01 (day 0); the day range
-- ends 2026-08-31, before the last invoices, so every client has had time to be billed.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE #client (
    client_id BIGINT        NOT NULL PRIMARY KEY,
    kind      NVARCHAR(10)  COLLATE DATABASE_DEFAULT NOT NULL,   -- 'business', 'person' or 'estate'
    day       INT           NOT NULL,                            -- days after 2021-11-01
    first     NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    last      NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    last2     NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    business  NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    suffix    NVARCHAR(100) COLLATE DATABASE_DEFAULT NOT NULL,
    h         BIGINT        NOT NULL,
    matters   INT           NOT NULL
);

WITH e1 (n) AS (SELECT 1 FROM (VALUES (1), (1), (1), (1), (1), (1), (1), (1), (1), (1)) AS v (n)),
e2 (n) AS (SELECT 1 FROM e1 AS x CROSS JOIN e1 AS y),
e4 (n) AS (SELECT 1 FROM e2 AS x CROSS JOIN e2 AS y),
e8 (n) AS (SELECT 1 FROM e4 AS x CROSS JOIN e4 AS y),
n (i) AS (SELECT TOP (@clients) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) FROM e8),
r AS (
    SELECT i,
           ((((i * @a + 1 * @b) % @m) * @c + 12345) % @m) / 4096 AS h1,
           ((((i * @a + 2 * @b) % @m) * @c + 12345) % @m) / 4096 AS h2,
           ((((i * @a + 3 * @b) % @m) * @c + 12345) % @m) / 4096 AS h3,
           ((((i * @a + 4 * @b) % @m) * @c + 12345) % @m) / 4096 AS h4,
           ((((i * @a + 5 * @b) % @m) * @c + 12345) % @m) / 4096 AS h5,
           ((((i * @a + 6 * @b) % @m) * @c + 12345) % @m) / 4096 AS h6,
           ((((i * @a + 7 * @b) % @m) * @c + 12345) % @m) / 4096 AS h7
    FROM n
)
INSERT INTO #client (client_id, kind, day, first, last, last2, business, suffix, h, matters)
SELECT r.i,
       CASE WHEN r.h1 % 100 < 50 THEN N'business' WHEN r.h1 % 100 < 90 THEN N'person' ELSE N'estate' END,
       (r.i - 1) * 1765 / @clients,
       wf.word, wl.word, wl2.word, wb.word, ws.word,
       r.h7,
       1 + r.h7 % 5
FROM r
JOIN #word AS wf ON wf.list = N'first' AND wf.idx = r.h2 % @n_first
JOIN #word AS wl ON wl.list = N'last' AND wl.idx = r.h3 % @n_last
JOIN #word AS wl2 ON wl2.list = N'last' AND wl2.idx = r.h4 % @n_last
JOIN #word AS wb ON wb.list = N'business' AND wb.idx = r.h5 % @n_business
JOIN #word AS ws ON ws.list = N'suffix' AND ws.idx = r.h6 % @n_suffix;

SET IDENTITY_INSERT dbo.client ON;

INSERT INTO dbo.client (client_id, client_number, name, email, created_on)
SELECT c.client_id,
       N'C-' + CASE WHEN c.client_id < 100000 THEN RIGHT(N'0000' + CONVERT(NVARCHAR(20), c.client_id), 5)
                    ELSE CONVERT(NVARCHAR(20), c.client_id) END,
       CASE
           WHEN c.kind = N'business' AND c.h % 3 = 0 THEN c.last + N' & ' + c.last2 + N' ' + c.suffix
           WHEN c.kind = N'business' THEN c.last + N' ' + c.business + N' ' + c.suffix
           WHEN c.kind = N'person' THEN c.first + N' ' + c.last
           WHEN c.h % 2 = 0 THEN N'Estate of ' + c.first + N' ' + c.last
           ELSE N'The ' + c.last + N' Family Trust'
       END,
       -- About one client in ten has no e-mail on file. Addresses are under example.com (RFC 2606).
       CASE
           WHEN c.h % 10 = 9 THEN NULL
           WHEN c.kind = N'business' THEN
               N'accounts@'
               + LOWER(REPLACE(REPLACE(c.last + N'-' + CASE WHEN c.h % 3 = 0 THEN c.last2 ELSE c.business END,
                                       N' ', N'-'), N'''', N''))
               + N'.example.com'
           ELSE LOWER(REPLACE(c.first + N'.' + c.last, N'''', N''))
                + CONVERT(NVARCHAR(20), c.client_id % 100) + N'@example.com'
       END,
       DATEADD(DAY, c.day, @base)
FROM #client AS c
ORDER BY c.client_id;

SET IDENTITY_INSERT dbo.client OFF;

-- ---------------------------------------------------------------------------------------------------
-- Matters: a client's first matter opens the day it became a client, the others later; matters are
-- numbered in opening order. About one in eight matters opened before 2025 is closed.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE #matter (
    matter_id BIGINT NOT NULL PRIMARY KEY,
    client_id BIGINT NOT NULL,
    day       INT    NOT NULL,     -- opened, days after 2021-11-01
    h         BIGINT NOT NULL
);

WITH k (n) AS (SELECT n FROM (VALUES (1), (2), (3), (4), (5)) AS v (n)),
m AS (
    SELECT c.client_id, k.n,
           CASE WHEN k.n = 1 THEN c.day
                ELSE c.day + (((((c.client_id * 8 + k.n) * @a + 11 * @b) % @m) * @c + 12345) % @m) / 4096
                             % (1797 - c.day) END AS day,
           (((((c.client_id * 8 + k.n) * @a + 12 * @b) % @m) * @c + 12345) % @m) / 4096 AS h
    FROM #client AS c
    JOIN k ON k.n <= c.matters
)
INSERT INTO #matter (matter_id, client_id, day, h)
SELECT ROW_NUMBER() OVER (ORDER BY m.day, m.client_id, m.n), m.client_id, m.day, m.h
FROM m;

CREATE INDEX matter_day ON #matter (day, matter_id);

SET IDENTITY_INSERT dbo.matter ON;

INSERT INTO dbo.matter (matter_id, matter_number, client_id, description, status, opened_on)
SELECT m.matter_id,
       N'M-' + CASE WHEN m.matter_id < 1000000 THEN RIGHT(N'00000' + CONVERT(NVARCHAR(20), m.matter_id), 6)
                    ELSE CONVERT(NVARCHAR(20), m.matter_id) END,
       m.client_id,
       REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
           wt.word,
           N'{F}', wf.word),
           N'{L}', wl.word),
           N'{B}', wb.word),
           N'{S}', ws.word),
           N'{ST}', wst.word),
           N'{N}', CONVERT(NVARCHAR(20), 10 + (m.h / 23) % 990)),
       CASE WHEN m.day < 1157 AND m.h % 8 = 0 THEN N'closed' ELSE N'open' END,
       DATEADD(DAY, m.day, @base)
FROM #matter AS m
JOIN #client AS c ON c.client_id = m.client_id
CROSS APPLY (SELECT COUNT(*) AS n FROM #word AS x WHERE x.list = N'matter_' + c.kind) AS nt
JOIN #word AS wt ON wt.list = N'matter_' + c.kind AND wt.idx = m.h % nt.n
JOIN #word AS wf ON wf.list = N'first' AND wf.idx = (m.h / 7) % @n_first
JOIN #word AS wl ON wl.list = N'last' AND wl.idx = (m.h / 11) % @n_last
JOIN #word AS wb ON wb.list = N'business' AND wb.idx = (m.h / 13) % @n_business
JOIN #word AS ws ON ws.list = N'suffix' AND ws.idx = (m.h / 17) % @n_suffix
JOIN #word AS wst ON wst.list = N'street' AND wst.idx = (m.h / 19) % @n_street
ORDER BY m.matter_id;

SET IDENTITY_INSERT dbo.matter OFF;

-- For each invoice day: how many matters are open by then (matters are numbered in opening order, so
-- an invoice on day d may go to any matter_id from 1 to this count), and the day's date and due date.
CREATE TABLE #day (
    day      INT    NOT NULL PRIMARY KEY,
    matters  BIGINT NOT NULL,
    on_date  DATE   NOT NULL,
    due_date DATE   NOT NULL
);

WITH e1 (n) AS (SELECT 1 FROM (VALUES (1), (1), (1), (1), (1), (1), (1), (1), (1), (1)) AS v (n)),
e2 (n) AS (SELECT 1 FROM e1 AS x CROSS JOIN e1 AS y),
e4 (n) AS (SELECT 1 FROM e2 AS x CROSS JOIN e2 AS y),
d (day) AS (SELECT TOP (1826 - 731 + 1) 730 + CONVERT(INT, ROW_NUMBER() OVER (ORDER BY (SELECT NULL))) FROM e4)
INSERT INTO #day (day, matters, on_date, due_date)
SELECT d.day,
       (SELECT MAX(m.matter_id) FROM #matter AS m WHERE m.day <= d.day),
       DATEADD(DAY, d.day, @base),
       DATEADD(DAY, d.day + 30, @base)
FROM d;

-- ---------------------------------------------------------------------------------------------------
-- Invoices: invoice i is dated (invoices-i)*1095/invoices days before 2026-11-01.
-- Total = hourly rate x tenths of hours, plus costs on one invoice in three, clamped to $50..$25,000.
-- ---------------------------------------------------------------------------------------------------

IF @invoices > 0
BEGIN
    SET IDENTITY_INSERT dbo.invoice ON;

    WITH e1 (n) AS (SELECT 1 FROM (VALUES (1), (1), (1), (1), (1), (1), (1), (1), (1), (1)) AS v (n)),
    e2 (n) AS (SELECT 1 FROM e1 AS x CROSS JOIN e1 AS y),
    e4 (n) AS (SELECT 1 FROM e2 AS x CROSS JOIN e2 AS y),
    e8 (n) AS (SELECT 1 FROM e4 AS x CROSS JOIN e4 AS y),
    n (i) AS (SELECT TOP (@invoices) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) FROM e8),
    r AS (
        SELECT i,
               1826 - (@invoices - i) * 1095 / @invoices AS day,
               ((((i * @a + 21 * @b) % @m) * @c + 12345) % @m) / 4096 AS h1,
               ((((i * @a + 22 * @b) % @m) * @c + 12345) % @m) / 4096 AS h2,
               ((((i * @a + 23 * @b) % @m) * @c + 12345) % @m) / 4096 AS h3,
               ((((i * @a + 24 * @b) % @m) * @c + 12345) % @m) / 4096 AS h4
        FROM n
    ),
    u AS (
        SELECT r.i, d.on_date, d.due_date, r.h4,
               1 + r.h1 % d.matters AS matter_id,
               -- $250..$750 an hour, 0.2 to 40.8 hours, skewed towards short bills
               (250 + 50 * (r.h2 % 11)) * (2 + (r.h2 / 11) % 60 * (1 + (r.h2 / 660) % 7)) * 10
               + CASE WHEN r.h3 % 3 = 0 THEN (r.h3 / 3) % 50000 ELSE 0 END AS raw_total
        FROM r
        JOIN #day AS d ON d.day = r.day
    ),
    t AS (
        SELECT u.i, u.on_date, u.due_date, u.h4, u.matter_id,
               CASE WHEN u.raw_total < 5000 THEN 5000
                    WHEN u.raw_total > 2500000 THEN 2500000
                    ELSE u.raw_total END AS total
        FROM u
    )
    INSERT INTO dbo.invoice (invoice_id, invoice_number, matter_id, invoice_date, due_date, currency,
                             total_minor, balance_minor, status)
    SELECT t.i,
           N'INV-' + RIGHT(N'000000' + CONVERT(NVARCHAR(20), t.i), 7),
           t.matter_id,
           t.on_date,
           t.due_date,
           N'USD',
           t.total,
           CASE WHEN t.h4 % 100 < 70 THEN t.total
                WHEN t.h4 % 100 < 80 THEN t.total - t.total * (10 + (t.h4 / 100) % 81) / 100
                ELSE 0 END,
           CASE WHEN t.h4 % 100 < 80 THEN N'open' ELSE N'paid' END
    FROM t
    ORDER BY t.i;

    SET IDENTITY_INSERT dbo.invoice OFF;
END;

-- ---------------------------------------------------------------------------------------------------
-- Trust ledgers for about 30% of matters, all in TR-001. By the matter's hash: a retainer only; a
-- retainer and a transfer of 10-60% of it to pay fees; that plus a top-up; or a retainer refunded in
-- full (zero balance). Dates never pass 2026-11-01 (day 1826).
-- ---------------------------------------------------------------------------------------------------

WITH tm AS (
    SELECT m.matter_id, m.day, m.h,
           -- $500 to $25,000 in steps of $500; one retainer in ten is ten times larger
           (1 + (m.h / 100) % 50) * 50000 * CASE WHEN (m.h / 5000) % 10 = 0 THEN 10 ELSE 1 END AS retainer,
           (m.h / 7) % 10 AS trust_plan,
           CASE WHEN m.day + 20 + (m.h / 3) % 200 < 1826 THEN m.day + 20 + (m.h / 3) % 200 ELSE 1826 END AS day2,
           CASE WHEN m.day + 60 + (m.h / 13) % 400 < 1826 THEN m.day + 60 + (m.h / 13) % 400 ELSE 1826 END AS day3
    FROM #matter AS m
    WHERE m.h % 100 < 30
),
e AS (
    SELECT matter_id, 1 AS seq, day, retainer AS amount, N'Retainer deposit' AS memo FROM tm
    UNION ALL
    SELECT matter_id, 2, day2, -(retainer * (10 + (h / 17) % 51) / 100), N'Transfer to operating: fees earned'
    FROM tm WHERE trust_plan BETWEEN 1 AND 7
    UNION ALL
    SELECT matter_id, 3, CASE WHEN day2 > day3 THEN day2 ELSE day3 END, retainer / 2, N'Replenishment of retainer'
    FROM tm WHERE trust_plan BETWEEN 6 AND 7
    UNION ALL
    SELECT matter_id, 2, day2, -retainer, N'Refund of unused retainer to client'
    FROM tm WHERE trust_plan >= 8 AND h % 2 = 0
)
INSERT INTO dbo.trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
SELECT e.matter_id, @trust_account_id, DATEADD(DAY, CONVERT(INT, e.day), @base), e.amount, N'USD', e.memo
FROM e
ORDER BY e.day, e.matter_id, e.seq;

-- ---------------------------------------------------------------------------------------------------
-- Stamp the load's change rows (100,000 per call), inside this transaction.
-- ---------------------------------------------------------------------------------------------------

DECLARE @stamped INT = 1, @high_water BIGINT;
WHILE @stamped > 0
    EXEC dbo.ml_change_stamp @stamped = @stamped OUTPUT, @high_water = @high_water OUTPUT;

DROP TABLE #day;
DROP TABLE #matter;
DROP TABLE #client;
DROP TABLE #word;

COMMIT TRANSACTION;

DECLARE @summary NVARCHAR(400) =
    CONCAT(N'sample.sql: ', (SELECT COUNT(*) FROM dbo.client), N' clients, ',
           (SELECT COUNT(*) FROM dbo.matter), N' matters, ',
           (SELECT COUNT(*) FROM dbo.invoice), N' invoices, ',
           (SELECT COUNT(*) FROM dbo.trust_entry), N' trust entries; change high water ',
           @high_water);
PRINT @summary;
GO
