-- matterlink sample data for the reference schema (SQLite): a law firm's clients, matters, invoices and
-- trust ledgers, generated deterministically (same parameters, same rows, on every machine).
--
-- Run after schema.sql and contract.sql (sql/sample.sh does all three):
--   sqlite3 -bail FIRM.db ".parameter init" ".parameter set @clients 300" ".parameter set @invoices 3000" \
--       ".read sql/sqlite/sample.sql"
-- Both parameters are optional (defaults 300 clients, 3000 invoices); the shell binds unset ones as NULL.
-- The shell binds @clients and @invoices everywhere, recursive CTEs included; they are copied once into a
-- temporary table so the checks on them live in one place.
--
-- Inserts only into an empty database: when client, matter, invoice or trust_entry has rows it prints a
-- notice and changes nothing. One transaction; 1,000,000 invoices take about 10 seconds on a 2-core
-- machine. The invoice and trust inserts fire the matterlink change triggers, so ml_change
-- gets one row per invoice and trust entry; the agent starts from a snapshot, so they do no harm.
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
-- keeping the high bits); random() would make every run different. All products stay below 2^63.

-- Before BEGIN, because PRAGMA foreign_keys is a no-op inside a transaction. All three last for this
-- connection only. synchronous = OFF skips the fsyncs of this bulk load: if the program dies the load
-- is rolled back as usual, but a power cut during it can corrupt the file, which is acceptable for
-- sample data only. Never add PRAGMA temp_store here: changing it drops every temporary table,
-- including the shell's temp.sqlite_parameters, so @clients and @invoices would silently fall back to
-- their defaults.
PRAGMA foreign_keys = ON;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;

BEGIN;

-- ---------------------------------------------------------------------------------------------------
-- Parameters and the empty-database check.
-- ---------------------------------------------------------------------------------------------------

DROP TABLE IF EXISTS temp.ml_sample_conf;
CREATE TEMP TABLE ml_sample_conf (
    clients  INTEGER NOT NULL CHECK (typeof(clients) = 'integer' AND clients BETWEEN 1 AND 1000000),
    invoices INTEGER NOT NULL CHECK (typeof(invoices) = 'integer' AND invoices BETWEEN 0 AND 9999999)
);

-- A bad parameter fails the CHECK: with -bail the script stops; without it the table stays empty and
-- every insert below, which joins it, inserts nothing.
INSERT INTO ml_sample_conf (clients, invoices)
SELECT coalesce(@clients, 300), coalesce(@invoices, 3000)
WHERE NOT EXISTS (SELECT 1 FROM main.client)
  AND NOT EXISTS (SELECT 1 FROM main.matter)
  AND NOT EXISTS (SELECT 1 FROM main.invoice)
  AND NOT EXISTS (SELECT 1 FROM main.trust_entry);

SELECT 'sample.sql: the database already has data; nothing inserted'
WHERE NOT EXISTS (SELECT 1 FROM ml_sample_conf);

-- ---------------------------------------------------------------------------------------------------
-- Word lists.
-- ---------------------------------------------------------------------------------------------------

DROP TABLE IF EXISTS temp.ml_sample_word;
CREATE TEMP TABLE ml_sample_word (
    list TEXT NOT NULL,
    idx  INTEGER NOT NULL,
    word TEXT NOT NULL,
    PRIMARY KEY (list, idx)
);

INSERT INTO ml_sample_word (list, idx, word)
SELECT list, row_number() OVER (PARTITION BY list ORDER BY seq) - 1, word
FROM (SELECT list, key AS seq, value AS word
      FROM (SELECT 'first' AS list, '["James","Mary","Robert","Patricia","John","Jennifer","Michael","Linda",
                   "David","Elizabeth","William","Barbara","Richard","Susan","Joseph","Jessica","Thomas",
                   "Sarah","Charles","Karen","Daniel","Lisa","Matthew","Nancy","Anthony","Margaret",
                   "Mark","Sandra","Steven","Ashley","Andrew","Emily","Kenneth","Donna","Paul","Michelle",
                   "Joshua","Carol","Kevin","Amanda","Brian","Melissa","George","Deborah","Edward",
                   "Rebecca","Ronald","Laura","Timothy","Helen","Rosa","Ahmed","Mei","Rajesh","Sofia",
                   "Hiroshi","Fatima","Lucas","Olga","Tomasz"]' AS words
            UNION ALL
            SELECT 'last', '["Smith","Johnson","Williams","Brown","Jones","Garcia","Miller","Davis",
                   "Rodriguez","Martinez","Hernandez","Lopez","Gonzalez","Wilson","Anderson","Thomas",
                   "Taylor","Moore","Jackson","Martin","Lee","Perez","Thompson","White","Harris",
                   "Sanchez","Clark","Ramirez","Lewis","Robinson","Walker","Young","Allen","King",
                   "Wright","Scott","Torres","Nguyen","Hill","Flores","Green","Adams","Nelson","Baker",
                   "Hall","Rivera","Campbell","Mitchell","Carter","Roberts","Patel","Kowalski","Okafor",
                   "Fischer","Novak","Haddad","Chen","Yamamoto","O''Brien","Sullivan","Whitfield",
                   "Ashworth","Pemberton","Caldwell"]'
            UNION ALL
            SELECT 'business', '["Logistics","Holdings","Construction","Capital","Dental Group",
                   "Medical Associates","Realty","Manufacturing","Foods","Software","Engineering",
                   "Hospitality","Energy","Design Studio","Motors","Transport","Pharmaceuticals",
                   "Properties","Ventures","Consulting","Farms","Textiles","Marine","Analytics",
                   "Brewing Company","Architects"]'
            UNION ALL
            SELECT 'suffix', '["LLC","Inc.","Corp.","LLP","Ltd.","Co.","Group, Inc.","Partners LP"]'
            UNION ALL
            SELECT 'street', '["Main Street","Oak Avenue","Harbor Drive","Elm Street","Maple Lane",
                   "Lakeview Road","Cedar Court","Washington Boulevard","Park Place","Mill Road",
                   "Ridge Avenue","Commerce Street","Riverside Drive","Church Street","Market Street",
                   "Highland Avenue"]'
            -- Matter descriptions; {F} {L} {B} {S} {N} {ST} are filled in per matter.
            UNION ALL
            SELECT 'matter_business', '["General corporate matters","Commercial lease - {N} {ST}",
                   "Acquisition of {L} {B} {S}","Employment dispute - {F} {L}",
                   "Breach of contract claim against {L} {B} {S}","Trademark registration",
                   "Supplier agreement review","Regulatory compliance review","Collections - {L} {B}",
                   "Shareholder agreement","Annual report and board minutes","Data privacy audit",
                   "Construction lien - {N} {ST}","Insurance coverage dispute","Sale of assets to {L} {B} {S}",
                   "Patent licensing agreement"]'
            UNION ALL
            SELECT 'matter_person', '["Estate planning","Purchase of residence - {N} {ST}",
                   "Sale of residence - {N} {ST}","Divorce proceedings","Child custody modification",
                   "Personal injury claim - auto accident","Will and powers of attorney",
                   "Landlord-tenant dispute - {N} {ST}","Traffic citation defense","Immigration visa petition",
                   "Employment discrimination claim","Workers compensation claim","Name change petition",
                   "Boundary dispute with neighbor"]'
            UNION ALL
            SELECT 'matter_estate', '["Probate administration","Estate tax return","Trust administration",
                   "Sale of estate property - {N} {ST}","Will contest","Final accounting to beneficiaries"]'
           ) AS lists, json_each(lists.words))
WHERE EXISTS (SELECT 1 FROM ml_sample_conf);

-- ---------------------------------------------------------------------------------------------------
-- Bank accounts.
-- ---------------------------------------------------------------------------------------------------

INSERT OR IGNORE INTO main.bank_account (account_number, name, account_type, currency)
SELECT 'OP-001', 'Operating Account', 'OPERATING', 'USD' FROM ml_sample_conf
UNION ALL
SELECT 'TR-001', 'IOLTA Client Trust Account', 'TRUST', 'USD' FROM ml_sample_conf;

-- ---------------------------------------------------------------------------------------------------
-- Clients: client i became a client on day (i-1)*1765/clients after 2021-11-01 (day 0); the day range
-- ends 2026-08-31, before the last invoices, so every client has had time to be billed.
-- ---------------------------------------------------------------------------------------------------

DROP TABLE IF EXISTS temp.ml_sample_client;
CREATE TEMP TABLE ml_sample_client (
    client_id INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,        -- 'business', 'person' or 'estate'
    day       INTEGER NOT NULL,     -- days after 2021-11-01
    first     TEXT NOT NULL,
    last      TEXT NOT NULL,
    last2     TEXT NOT NULL,
    business  TEXT NOT NULL,
    suffix    TEXT NOT NULL,
    h         INTEGER NOT NULL,
    matters   INTEGER NOT NULL
);

INSERT INTO ml_sample_client (client_id, kind, day, first, last, last2, business, suffix, h, matters)
WITH RECURSIVE n(i) AS (
    SELECT 1 FROM ml_sample_conf
    UNION ALL
    SELECT i + 1 FROM n WHERE i < (SELECT clients FROM ml_sample_conf)
),
r AS (
    SELECT i,
           ((((i * 2654435761 + 1 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h1,
           ((((i * 2654435761 + 2 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h2,
           ((((i * 2654435761 + 3 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h3,
           ((((i * 2654435761 + 4 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h4,
           ((((i * 2654435761 + 5 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h5,
           ((((i * 2654435761 + 6 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h6,
           ((((i * 2654435761 + 7 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h7
    FROM n
)
SELECT r.i,
       CASE WHEN r.h1 % 100 < 50 THEN 'business' WHEN r.h1 % 100 < 90 THEN 'person' ELSE 'estate' END,
       (r.i - 1) * 1765 / c.clients,
       (SELECT word FROM ml_sample_word WHERE list = 'first'
        AND idx = r.h2 % (SELECT count(*) FROM ml_sample_word WHERE list = 'first')),
       (SELECT word FROM ml_sample_word WHERE list = 'last'
        AND idx = r.h3 % (SELECT count(*) FROM ml_sample_word WHERE list = 'last')),
       (SELECT word FROM ml_sample_word WHERE list = 'last'
        AND idx = r.h4 % (SELECT count(*) FROM ml_sample_word WHERE list = 'last')),
       (SELECT word FROM ml_sample_word WHERE list = 'business'
        AND idx = r.h5 % (SELECT count(*) FROM ml_sample_word WHERE list = 'business')),
       (SELECT word FROM ml_sample_word WHERE list = 'suffix'
        AND idx = r.h6 % (SELECT count(*) FROM ml_sample_word WHERE list = 'suffix')),
       r.h7,
       1 + r.h7 % 5
FROM r, ml_sample_conf AS c;

INSERT INTO main.client (client_id, client_number, name, email, created_on)
SELECT client_id,
       printf('C-%05d', client_id),
       CASE
           WHEN kind = 'business' AND h % 3 = 0 THEN last || ' & ' || last2 || ' ' || suffix
           WHEN kind = 'business' THEN last || ' ' || business || ' ' || suffix
           WHEN kind = 'person' THEN first || ' ' || last
           WHEN h % 2 = 0 THEN 'Estate of ' || first || ' ' || last
           ELSE 'The ' || last || ' Family Trust'
       END,
       -- About one client in ten has no e-mail on file. Addresses are under example.com (RFC 2606).
       CASE
           WHEN h % 10 = 9 THEN NULL
           WHEN kind = 'business' THEN
               'accounts@'
               || lower(replace(replace(last || '-' || CASE WHEN h % 3 = 0 THEN last2 ELSE business END,
                                        ' ', '-'), '''', ''))
               || '.example.com'
           ELSE lower(replace(first || '.' || last, '''', '')) || (client_id % 100) || '@example.com'
       END,
       date('2021-11-01', '+' || day || ' days')
FROM ml_sample_client
ORDER BY client_id;

-- ---------------------------------------------------------------------------------------------------
-- Matters: a client's first matter opens the day it became a client, the others later; matters are
-- numbered in opening order. About one in eight matters opened before 2025 is closed.
-- ---------------------------------------------------------------------------------------------------

DROP TABLE IF EXISTS temp.ml_sample_matter;
CREATE TEMP TABLE ml_sample_matter (
    matter_id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL,
    day       INTEGER NOT NULL,     -- opened, days after 2021-11-01
    h         INTEGER NOT NULL
);

INSERT INTO ml_sample_matter (matter_id, client_id, day, h)
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 5),
m AS (
    SELECT c.client_id, k.n,
           CASE WHEN k.n = 1 THEN c.day
                ELSE c.day + ((((((c.client_id * 8 + k.n) * 2654435761 + 11 * 1013904223) % 4294967296)
                               * 1103515245 + 12345) % 4294967296) / 4096) % (1797 - c.day) END AS day,
           ((((((c.client_id * 8 + k.n) * 2654435761 + 12 * 1013904223) % 4294967296)
             * 1103515245 + 12345) % 4294967296) / 4096) AS h
    FROM ml_sample_client AS c
    JOIN k ON k.n <= c.matters
)
SELECT row_number() OVER (ORDER BY day, client_id, n), client_id, day, h
FROM m;

CREATE INDEX temp.ml_sample_matter_day ON ml_sample_matter (day, matter_id);

INSERT INTO main.matter (matter_id, matter_number, client_id, description, status, opened_on)
SELECT m.matter_id,
       printf('M-%06d', m.matter_id),
       m.client_id,
       replace(replace(replace(replace(replace(replace(
           (SELECT w.word FROM ml_sample_word AS w
            WHERE w.list = 'matter_' || c.kind
              AND w.idx = m.h % (SELECT count(*) FROM ml_sample_word AS x WHERE x.list = 'matter_' || c.kind)),
           '{F}', (SELECT word FROM ml_sample_word WHERE list = 'first'
                   AND idx = (m.h / 7) % (SELECT count(*) FROM ml_sample_word WHERE list = 'first'))),
           '{L}', (SELECT word FROM ml_sample_word WHERE list = 'last'
                   AND idx = (m.h / 11) % (SELECT count(*) FROM ml_sample_word WHERE list = 'last'))),
           '{B}', (SELECT word FROM ml_sample_word WHERE list = 'business'
                   AND idx = (m.h / 13) % (SELECT count(*) FROM ml_sample_word WHERE list = 'business'))),
           '{S}', (SELECT word FROM ml_sample_word WHERE list = 'suffix'
                   AND idx = (m.h / 17) % (SELECT count(*) FROM ml_sample_word WHERE list = 'suffix'))),
           '{ST}', (SELECT word FROM ml_sample_word WHERE list = 'street'
                    AND idx = (m.h / 19) % (SELECT count(*) FROM ml_sample_word WHERE list = 'street'))),
           '{N}', 10 + (m.h / 23) % 990),
       CASE WHEN m.day < 1157 AND m.h % 8 = 0 THEN 'closed' ELSE 'open' END,
       date('2021-11-01', '+' || m.day || ' days')
FROM ml_sample_matter AS m
JOIN ml_sample_client AS c ON c.client_id = m.client_id
ORDER BY m.matter_id;

-- For each invoice day: how many matters are open by then (matters are numbered in opening order, so
-- an invoice on day d may go to any matter_id from 1 to this count), and the day's date and due date
-- as text, computed once per day instead of once per invoice.
DROP TABLE IF EXISTS temp.ml_sample_day;
CREATE TEMP TABLE ml_sample_day (
    day      INTEGER PRIMARY KEY,
    matters  INTEGER NOT NULL,
    on_date  TEXT NOT NULL,
    due_date TEXT NOT NULL
);

INSERT INTO ml_sample_day (day, matters, on_date, due_date)
WITH RECURSIVE d(day) AS (
    SELECT 731 FROM ml_sample_conf
    UNION ALL
    SELECT day + 1 FROM d WHERE day < 1826
)
SELECT d.day,
       (SELECT m.matter_id FROM ml_sample_matter AS m
        WHERE m.day <= d.day ORDER BY m.day DESC, m.matter_id DESC LIMIT 1),
       date('2021-11-01', '+' || d.day || ' days'),
       date('2021-11-01', '+' || (d.day + 30) || ' days')
FROM d;

-- ---------------------------------------------------------------------------------------------------
-- Invoices: invoice i is dated (invoices-i)*1095/invoices days before 2026-11-01.
-- Total = hourly rate x tenths of hours, plus costs on one invoice in three, clamped to $50..$25,000.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO main.invoice (invoice_id, invoice_number, matter_id, invoice_date, due_date, currency,
                          total_minor, balance_minor, status)
WITH RECURSIVE n(i) AS (
    SELECT 1 FROM ml_sample_conf WHERE invoices > 0
    UNION ALL
    SELECT i + 1 FROM n WHERE i < (SELECT invoices FROM ml_sample_conf)
),
r AS (
    SELECT i,
           1826 - ((SELECT invoices FROM ml_sample_conf) - i) * 1095 / (SELECT invoices FROM ml_sample_conf) AS day,
           ((((i * 2654435761 + 21 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h1,
           ((((i * 2654435761 + 22 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h2,
           ((((i * 2654435761 + 23 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h3,
           ((((i * 2654435761 + 24 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096 AS h4
    FROM n
),
t AS (
    SELECT r.i, d.on_date, d.due_date, r.h3, r.h4,
           1 + r.h1 % d.matters AS matter_id,
           min(2500000, max(5000,
               -- $250..$750 an hour, 0.2 to 40.8 hours, skewed towards short bills
               (250 + 50 * (r.h2 % 11)) * (2 + (r.h2 / 11) % 60 * (1 + (r.h2 / 660) % 7)) * 10
               + CASE WHEN r.h3 % 3 = 0 THEN (r.h3 / 3) % 50000 ELSE 0 END)) AS total
    FROM r
    JOIN ml_sample_day AS d ON d.day = r.day
)
SELECT i,
       printf('INV-%07d', i),
       matter_id,
       on_date,
       due_date,
       'USD',
       total,
       CASE WHEN h4 % 100 < 70 THEN total
            WHEN h4 % 100 < 80 THEN total - total * (10 + (h4 / 100) % 81) / 100
            ELSE 0 END,
       CASE WHEN h4 % 100 < 80 THEN 'open' ELSE 'paid' END
FROM t
ORDER BY i;

-- ---------------------------------------------------------------------------------------------------
-- Trust ledgers for about 30% of matters, all in TR-001. By the matter's hash: a retainer only; a
-- retainer and a transfer of 10-60% of it to pay fees; that plus a top-up; or a retainer refunded in
-- full (zero balance). Dates never pass 2026-11-01.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO main.trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
WITH tm AS (
    SELECT m.matter_id, m.day, m.h,
           -- $500 to $25,000 in steps of $500; one retainer in ten is ten times larger
           (1 + (m.h / 100) % 50) * 50000 * CASE WHEN (m.h / 5000) % 10 = 0 THEN 10 ELSE 1 END AS retainer,
           (m.h / 7) % 10 AS plan,
           min(1826, m.day + 20 + (m.h / 3) % 200) AS day2,
           min(1826, m.day + 60 + (m.h / 13) % 400) AS day3
    FROM ml_sample_matter AS m
    WHERE m.h % 100 < 30
      AND EXISTS (SELECT 1 FROM ml_sample_conf)
),
e AS (
    SELECT matter_id, 1 AS seq, day, retainer AS amount, 'Retainer deposit' AS memo FROM tm
    UNION ALL
    SELECT matter_id, 2, day2, -(retainer * (10 + (h / 17) % 51) / 100), 'Transfer to operating: fees earned'
    FROM tm WHERE plan BETWEEN 1 AND 7
    UNION ALL
    SELECT matter_id, 3, max(day2, day3), retainer / 2, 'Replenishment of retainer'
    FROM tm WHERE plan BETWEEN 6 AND 7
    UNION ALL
    SELECT matter_id, 2, day2, -retainer, 'Refund of unused retainer to client'
    FROM tm WHERE plan >= 8 AND h % 2 = 0
)
SELECT e.matter_id,
       (SELECT bank_account_id FROM main.bank_account WHERE account_number = 'TR-001'),
       date('2021-11-01', '+' || e.day || ' days'),
       e.amount,
       'USD',
       e.memo
FROM e
ORDER BY e.day, e.matter_id, e.seq;

DROP TABLE temp.ml_sample_day;
DROP TABLE temp.ml_sample_matter;
DROP TABLE temp.ml_sample_client;
DROP TABLE temp.ml_sample_word;
DROP TABLE temp.ml_sample_conf;

COMMIT;
