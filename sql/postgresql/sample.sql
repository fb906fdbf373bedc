-- matterlink sample data for the reference schema (PostgreSQL): a law firm's clients, matters, invoices and
-- trust ledgers, generated deterministically (same parameters, same rows, on every machine). The rules
-- and the arithmetic are those of sql/sqlite/sample.sql, so both dialects get the same rows.
--
-- Run after schema.sql and contract.sql, with psql (it uses psql variables and \if):
--   psql -h HOST -p PORT -U USER -d FIRM -v ON_ERROR_STOP=1 -q -v clients=300 -v invoices=3000 \
--       -f sql/postgresql/schema.sql -f sql/postgresql/contract.sql -f sql/postgresql/sample.sql
-- Both variables are optional (defaults 300 clients, 3000 invoices): clients 1..1000000, invoices
-- 0..9999999; anything else stops the script (with ON_ERROR_STOP=1) before it inserts a row.
--
-- Inserts only into an empty database: when client, matter, invoice or trust_entry has rows it prints a
-- notice and changes nothing. One transaction; 1,000,000 invoices take about 13 seconds on a 2-core
-- machine with 300 clients, about 25 with 100,000. Needs contract.sql installed first, and ownership of
-- the tables (for its bulk inserts it sets indexes, foreign keys and triggers aside; see "Bulk loading"
-- below). As with SQLite, ml_change gets one row per invoice and trust entry; all of them are stamped
-- before COMMIT (as ml_change_high_water() would stamp them), so the agent's first high-water mark
-- covers the whole load: its snapshot, not a change stream, carries it.
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
-- Dates are fixed (day 0 is 2021-11-01), never now().

\if :{?clients}
\else
\set clients 300
\endif
\if :{?invoices}
\else
\set invoices 3000
\endif

BEGIN;

SET LOCAL client_min_messages = warning;
-- A bulk load: a crash before COMMIT rolls it back as usual; this only skips waiting for the WAL flush.
SET LOCAL synchronous_commit = off;
SET LOCAL work_mem = '256MB';
SET LOCAL maintenance_work_mem = '256MB';
-- Compiling these one-off statements costs more than it saves.
SET LOCAL jit = off;

-- ---------------------------------------------------------------------------------------------------
-- Parameters and the empty-database check.
-- ---------------------------------------------------------------------------------------------------

CREATE TEMP TABLE ml_sample_conf (
    clients  BIGINT NOT NULL CHECK (clients BETWEEN 1 AND 1000000),
    invoices BIGINT NOT NULL CHECK (invoices BETWEEN 0 AND 9999999)
) ON COMMIT DROP;

-- A bad parameter fails the cast or the CHECK, and ON_ERROR_STOP ends the script. Every insert below
-- joins this table, so nothing is inserted when it is empty.
INSERT INTO ml_sample_conf (clients, invoices)
SELECT :'clients'::bigint, :'invoices'::bigint
WHERE NOT EXISTS (SELECT 1 FROM client)
  AND NOT EXISTS (SELECT 1 FROM matter)
  AND NOT EXISTS (SELECT 1 FROM invoice)
  AND NOT EXISTS (SELECT 1 FROM trust_entry);

SELECT EXISTS (SELECT 1 FROM ml_sample_conf) AS ml_sample_go \gset
\if :ml_sample_go
\else
\echo 'sample.sql: the database already has data; nothing inserted'
\endif

-- Everything from here to COMMIT runs only for an empty database.
\if :ml_sample_go

-- The hash: a pseudo-random non-negative number below 2^20 for a row number and a salt. A plain SQL
-- expression, inlined where it is called.
CREATE FUNCTION pg_temp.ml_sample_hash(n bigint, salt bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT ((((n * 2654435761 + salt * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) / 4096
$$;

-- ---------------------------------------------------------------------------------------------------
-- Word lists (arrays index from 1: word number k of a list is list[1 + k]).
-- ---------------------------------------------------------------------------------------------------

CREATE TEMP TABLE ml_sample_word ON COMMIT DROP AS
SELECT ARRAY['James','Mary','Robert','Patricia','John','Jennifer','Michael','Linda',
             'David','Elizabeth','William','Barbara','Richard','Susan','Joseph','Jessica','Thomas',
             'Sarah','Charles','Karen','Daniel','Lisa','Matthew','Nancy','Anthony','Margaret',
             'Mark','Sandra','Steven','Ashley','Andrew','Emily','Kenneth','Donna','Paul','Michelle',
             'Joshua','Carol','Kevin','Amanda','Brian','Melissa','George','Deborah','Edward',
             'Rebecca','Ronald','Laura','Timothy','Helen','Rosa','Ahmed','Mei','Rajesh','Sofia',
             'Hiroshi','Fatima','Lucas','Olga','Tomasz'] AS first,
       ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis',
             'Rodriguez','Martinez','Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas',
             'Taylor','Moore','Jackson','Martin','Lee','Perez','Thompson','White','Harris',
             'Sanchez','Clark','Ramirez','Lewis','Robinson','Walker','Young','Allen','King',
             'Wright','Scott','Torres','Nguyen','Hill','Flores','Green','Adams','Nelson','Baker',
             'Hall','Rivera','Campbell','Mitchell','Carter','Roberts','Patel','Kowalski','Okafor',
             'Fischer','Novak','Haddad','Chen','Yamamoto','O''Brien','Sullivan','Whitfield',
             'Ashworth','Pemberton','Caldwell'] AS last,
       ARRAY['Logistics','Holdings','Construction','Capital','Dental Group',
             'Medical Associates','Realty','Manufacturing','Foods','Software','Engineering',
             'Hospitality','Energy','Design Studio','Motors','Transport','Pharmaceuticals',
             'Properties','Ventures','Consulting','Farms','Textiles','Marine','Analytics',
             'Brewing Company','Architects'] AS business,
       ARRAY['LLC','Inc.','Corp.','LLP','Ltd.','Co.','Group, Inc.','Partners LP'] AS suffix,
       ARRAY['Main Street','Oak Avenue','Harbor Drive','Elm Street','Maple Lane',
             'Lakeview Road','Cedar Court','Washington Boulevard','Park Place','Mill Road',
             'Ridge Avenue','Commerce Street','Riverside Drive','Church Street','Market Street',
             'Highland Avenue'] AS street,
       -- Matter descriptions; {F} {L} {B} {S} {N} {ST} are filled in per matter.
       ARRAY['General corporate matters','Commercial lease - {N} {ST}',
             'Acquisition of {L} {B} {S}','Employment dispute - {F} {L}',
             'Breach of contract claim against {L} {B} {S}','Trademark registration',
             'Supplier agreement review','Regulatory compliance review','Collections - {L} {B}',
             'Shareholder agreement','Annual report and board minutes','Data privacy audit',
             'Construction lien - {N} {ST}','Insurance coverage dispute','Sale of assets to {L} {B} {S}',
             'Patent licensing agreement'] AS matter_business,
       ARRAY['Estate planning','Purchase of residence - {N} {ST}',
             'Sale of residence - {N} {ST}','Divorce proceedings','Child custody modification',
             'Personal injury claim - auto accident','Will and powers of attorney',
             'Landlord-tenant dispute - {N} {ST}','Traffic citation defense','Immigration visa petition',
             'Employment discrimination claim','Workers compensation claim','Name change petition',
             'Boundary dispute with neighbor'] AS matter_person,
       ARRAY['Probate administration','Estate tax return','Trust administration',
             'Sale of estate property - {N} {ST}','Will contest',
             'Final accounting to beneficiaries'] AS matter_estate;

-- ---------------------------------------------------------------------------------------------------
-- Bank accounts.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO bank_account (account_number, name, account_type, currency)
SELECT 'OP-001', 'Operating Account', 'OPERATING', 'USD' FROM ml_sample_conf
UNION ALL
SELECT 'TR-001', 'IOLTA Client Trust Account', 'TRUST', 'USD' FROM ml_sample_conf
ON CONFLICT (account_number) DO NOTHING;

-- ---------------------------------------------------------------------------------------------------
-- Clients: client i became a client on day (i-1)*1765/clients after 2021-11-01 (day 0); the day range
-- ends 2026-08-31, before the last invoices, so every client has had time to be billed.
-- ---------------------------------------------------------------------------------------------------

CREATE TEMP TABLE ml_sample_client (
    client_id BIGINT PRIMARY KEY,
    kind      TEXT NOT NULL,        -- 'business', 'person' or 'estate'
    day       INTEGER NOT NULL,     -- days after 2021-11-01
    first     TEXT NOT NULL,
    last      TEXT NOT NULL,
    last2     TEXT NOT NULL,
    business  TEXT NOT NULL,
    suffix    TEXT NOT NULL,
    h         BIGINT NOT NULL,
    matters   INTEGER NOT NULL
) ON COMMIT DROP;

INSERT INTO ml_sample_client (client_id, kind, day, first, last, last2, business, suffix, h, matters)
SELECT r.i,
       CASE WHEN r.h1 % 100 < 50 THEN 'business' WHEN r.h1 % 100 < 90 THEN 'person' ELSE 'estate' END,
       (r.i - 1) * 1765 / c.clients,
       w.first[1 + r.h2 % cardinality(w.first)],
       w.last[1 + r.h3 % cardinality(w.last)],
       w.last[1 + r.h4 % cardinality(w.last)],
       w.business[1 + r.h5 % cardinality(w.business)],
       w.suffix[1 + r.h6 % cardinality(w.suffix)],
       r.h7,
       1 + r.h7 % 5
FROM ml_sample_conf AS c
CROSS JOIN ml_sample_word AS w
CROSS JOIN LATERAL (
    SELECT n.i,
           pg_temp.ml_sample_hash(n.i, 1) AS h1, pg_temp.ml_sample_hash(n.i, 2) AS h2,
           pg_temp.ml_sample_hash(n.i, 3) AS h3, pg_temp.ml_sample_hash(n.i, 4) AS h4,
           pg_temp.ml_sample_hash(n.i, 5) AS h5, pg_temp.ml_sample_hash(n.i, 6) AS h6,
           pg_temp.ml_sample_hash(n.i, 7) AS h7
    FROM generate_series(1::bigint, c.clients) AS n(i)
) AS r;

INSERT INTO client (client_id, client_number, name, email, created_on)
SELECT client_id,
       'C-' || lpad(client_id::text, greatest(5, length(client_id::text)), '0'),
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
       DATE '2021-11-01' + day
FROM ml_sample_client
ORDER BY client_id;

-- ---------------------------------------------------------------------------------------------------
-- Bulk loading. Up to millions of rows go into matter, invoice, trust_entry and ml_change, loaded the
-- standard bulk way, all inside this transaction (the locks taken keep every other session out until
-- COMMIT, and by then everything is as schema.sql and contract.sql made it):
--   - their foreign keys, their unique constraints that no foreign key needs and their other indexes
--     (all but the primary keys) are set aside here and made again at the end from their own catalog
--     definitions: one validating join and one sorted build each, instead of a look-up and an index
--     insertion per row;
--   - the row triggers on invoice and trust_entry inserts are off (the trust rules of schema.sql are
--     checked once, set-based, instead), and the change rows the matterlink triggers would have
--     written, one per invoice and one per trust entry in that order, are written in one statement each;
--   - those change rows are stamped as they are written, under the stamping lock of contract.sql, held
--     to COMMIT as any stamper holds it: no other session can hand out a change_id until these are
--     visible, so none can ever appear below an agent's cursor.
-- This roughly halves the load time (a million invoices: about a minute without it).
-- ---------------------------------------------------------------------------------------------------

DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(1835819880, 0);
END;
$$;

CREATE TEMP TABLE ml_sample_rebuild (
    pos SERIAL PRIMARY KEY,
    ddl TEXT NOT NULL
) ON COMMIT DROP;

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.conrelid::regclass AS tab, c.conname, pg_get_constraintdef(c.oid) AS def
             FROM pg_constraint AS c
             WHERE c.conrelid IN ('matter'::regclass, 'invoice'::regclass, 'trust_entry'::regclass,
                                  'ml_change'::regclass)
               AND (c.contype = 'f'
                    OR (c.contype = 'u' AND NOT EXISTS (SELECT 1 FROM pg_constraint AS f
                                                        WHERE f.contype = 'f' AND f.conindid = c.conindid)))
             ORDER BY c.contype, c.conrelid::regclass::text, c.conname LOOP
        INSERT INTO ml_sample_rebuild (ddl)
        VALUES (format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tab, r.conname, r.def));
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tab, r.conname);
    END LOOP;
    FOR r IN SELECT i.indexrelid::regclass AS name, pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index AS i
             WHERE i.indrelid IN ('matter'::regclass, 'invoice'::regclass, 'trust_entry'::regclass,
                                  'ml_change'::regclass)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
             ORDER BY 1 LOOP
        INSERT INTO ml_sample_rebuild (ddl) VALUES (r.def);
        EXECUTE format('DROP INDEX %s', r.name);
    END LOOP;
END;
$$;

ALTER TABLE invoice DISABLE TRIGGER ml_invoice_insert;
ALTER TABLE trust_entry DISABLE TRIGGER trust_entry_rules_insert;
ALTER TABLE trust_entry DISABLE TRIGGER ml_trust_entry_insert;

-- ---------------------------------------------------------------------------------------------------
-- Matters: a client's first matter opens the day it became a client, the others later; matters are
-- numbered in opening order. About one in eight matters opened before 2025 is closed.
-- ---------------------------------------------------------------------------------------------------

CREATE TEMP TABLE ml_sample_matter (
    matter_id BIGINT PRIMARY KEY,
    client_id BIGINT NOT NULL,
    day       INTEGER NOT NULL,     -- opened, days after 2021-11-01
    h         BIGINT NOT NULL
) ON COMMIT DROP;

INSERT INTO ml_sample_matter (matter_id, client_id, day, h)
SELECT row_number() OVER (ORDER BY m.day, m.client_id, m.n), m.client_id, m.day, m.h
FROM (SELECT c.client_id, k.n,
             CASE WHEN k.n = 1 THEN c.day
                  ELSE c.day + pg_temp.ml_sample_hash(c.client_id * 8 + k.n, 11) % (1797 - c.day) END AS day,
             pg_temp.ml_sample_hash(c.client_id * 8 + k.n, 12) AS h
      FROM ml_sample_client AS c
      JOIN generate_series(1, 5) AS k(n) ON k.n <= c.matters) AS m;

CREATE INDEX ml_sample_matter_day ON ml_sample_matter (day, matter_id);

INSERT INTO matter (matter_id, matter_number, client_id, description, status, opened_on)
SELECT m.matter_id,
       'M-' || lpad(m.matter_id::text, greatest(6, length(m.matter_id::text)), '0'),
       m.client_id,
       replace(replace(replace(replace(replace(replace(
           d.words[1 + m.h % cardinality(d.words)],
           '{F}', w.first[1 + (m.h / 7) % cardinality(w.first)]),
           '{L}', w.last[1 + (m.h / 11) % cardinality(w.last)]),
           '{B}', w.business[1 + (m.h / 13) % cardinality(w.business)]),
           '{S}', w.suffix[1 + (m.h / 17) % cardinality(w.suffix)]),
           '{ST}', w.street[1 + (m.h / 19) % cardinality(w.street)]),
           '{N}', (10 + (m.h / 23) % 990)::text),
       CASE WHEN m.day < 1157 AND m.h % 8 = 0 THEN 'closed' ELSE 'open' END,
       DATE '2021-11-01' + m.day
FROM ml_sample_matter AS m
JOIN ml_sample_client AS c ON c.client_id = m.client_id
CROSS JOIN ml_sample_word AS w
CROSS JOIN LATERAL (SELECT CASE c.kind WHEN 'business' THEN w.matter_business
                                       WHEN 'person' THEN w.matter_person
                                       ELSE w.matter_estate END AS words) AS d
ORDER BY m.matter_id;

-- For each invoice day: how many matters are open by then (matters are numbered in opening order, so
-- an invoice on day d may go to any matter_id from 1 to this count), and the day's date and due date.
CREATE TEMP TABLE ml_sample_day (
    day      INTEGER PRIMARY KEY,
    matters  BIGINT NOT NULL,
    on_date  DATE NOT NULL,
    due_date DATE NOT NULL
) ON COMMIT DROP;

INSERT INTO ml_sample_day (day, matters, on_date, due_date)
SELECT d.day,
       (SELECT m.matter_id FROM ml_sample_matter AS m
        WHERE m.day <= d.day ORDER BY m.day DESC, m.matter_id DESC LIMIT 1),
       DATE '2021-11-01' + d.day,
       DATE '2021-11-01' + d.day + 30
FROM generate_series(731, 1826) AS d(day)
WHERE EXISTS (SELECT 1 FROM ml_sample_conf);

-- ---------------------------------------------------------------------------------------------------
-- Invoices: invoice i is dated (invoices-i)*1095/invoices days before 2026-11-01.
-- Total = hourly rate x tenths of hours, plus costs on one invoice in three, clamped to $50..$25,000.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO invoice (invoice_id, invoice_number, matter_id, invoice_date, due_date, currency,
                     total_minor, balance_minor, status)
SELECT t.i,
       'INV-' || lpad(t.i::text, greatest(7, length(t.i::text)), '0'),
       t.matter_id,
       t.on_date,
       t.due_date,
       'USD',
       t.total,
       CASE WHEN t.h4 % 100 < 70 THEN t.total
            WHEN t.h4 % 100 < 80 THEN t.total - t.total * (10 + (t.h4 / 100) % 81) / 100
            ELSE 0 END,
       CASE WHEN t.h4 % 100 < 80 THEN 'open' ELSE 'paid' END
FROM (SELECT r.i, d.on_date, d.due_date, r.h4,
             1 + r.h1 % d.matters AS matter_id,
             least(2500000, greatest(5000,
                 -- $250..$750 an hour, 0.2 to 40.8 hours, skewed towards short bills
                 (250 + 50 * (r.h2 % 11)) * (2 + (r.h2 / 11) % 60 * (1 + (r.h2 / 660) % 7)) * 10
                 + CASE WHEN r.h3 % 3 = 0 THEN (r.h3 / 3) % 50000 ELSE 0 END)) AS total
      FROM (SELECT n.i,
                   1826 - (c.invoices - n.i) * 1095 / c.invoices AS day,
                   pg_temp.ml_sample_hash(n.i, 21) AS h1,
                   pg_temp.ml_sample_hash(n.i, 22) AS h2,
                   pg_temp.ml_sample_hash(n.i, 23) AS h3,
                   pg_temp.ml_sample_hash(n.i, 24) AS h4
            FROM ml_sample_conf AS c
            CROSS JOIN LATERAL generate_series(1::bigint, c.invoices) AS n(i)) AS r
      JOIN ml_sample_day AS d ON d.day = r.day) AS t;

-- The change rows the invoice insert trigger would have written, one per invoice, already stamped.
INSERT INTO ml_change (change_id, entity, entity_id)
SELECT nextval('ml_change_id_seq'), 'invoice', i.invoice_id
FROM invoice AS i
ORDER BY i.invoice_id;

-- ---------------------------------------------------------------------------------------------------
-- Trust ledgers for about 30% of matters, all in TR-001. By the matter's hash: a retainer only; a
-- retainer and a transfer of 10-60% of it to pay fees; that plus a top-up; or a retainer refunded in
-- full (zero balance). Dates never pass 2026-11-01. Entries are numbered in date order.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO trust_entry (trust_entry_id, matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
WITH tm AS (
    SELECT m.matter_id, m.day, m.h,
           -- $500 to $25,000 in steps of $500; one retainer in ten is ten times larger
           (1 + (m.h / 100) % 50) * 50000 * CASE WHEN (m.h / 5000) % 10 = 0 THEN 10 ELSE 1 END AS retainer,
           (m.h / 7) % 10 AS plan,
           least(1826, m.day + 20 + (m.h / 3) % 200)::integer AS day2,
           least(1826, m.day + 60 + (m.h / 13) % 400)::integer AS day3
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
    SELECT matter_id, 3, greatest(day2, day3), retainer / 2, 'Replenishment of retainer'
    FROM tm WHERE plan BETWEEN 6 AND 7
    UNION ALL
    SELECT matter_id, 2, day2, -retainer, 'Refund of unused retainer to client'
    FROM tm WHERE plan >= 8 AND h % 2 = 0
)
SELECT row_number() OVER (ORDER BY e.day, e.matter_id, e.seq),
       e.matter_id,
       (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001'),
       DATE '2021-11-01' + e.day,
       e.amount,
       'USD',
       e.memo
FROM e
ORDER BY 1;

INSERT INTO ml_change (change_id, entity, entity_id)
SELECT nextval('ml_change_id_seq'), 'trust', t.matter_id
FROM trust_entry AS t
ORDER BY t.trust_entry_id;

-- The rules trust_entry_rules() enforces row by row, checked once for the whole load.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM trust_entry AS t JOIN bank_account AS b USING (bank_account_id)
               WHERE b.account_type <> 'TRUST' OR b.currency <> t.currency)
       OR EXISTS (SELECT 1 FROM trust_entry GROUP BY matter_id HAVING count(DISTINCT currency) > 1) THEN
        RAISE EXCEPTION 'sample.sql: generated trust entries break the trust_entry rules';
    END IF;
END;
$$;

ALTER TABLE invoice ENABLE TRIGGER ml_invoice_insert;
ALTER TABLE trust_entry ENABLE TRIGGER trust_entry_rules_insert;
ALTER TABLE trust_entry ENABLE TRIGGER ml_trust_entry_insert;

-- Put back what was set aside, in the reverse of the order it was saved in: indexes, then unique
-- constraints, then foreign keys.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT ddl FROM ml_sample_rebuild ORDER BY pos DESC LOOP
        EXECUTE r.ddl;
    END LOOP;
END;
$$;

-- Explicit ids were given above: move each identity on past them.
DO $$
BEGIN
    PERFORM setval(pg_get_serial_sequence('client', 'client_id'), max(client_id)) FROM client;
    PERFORM setval(pg_get_serial_sequence('matter', 'matter_id'), max(matter_id)) FROM matter;
    PERFORM setval(pg_get_serial_sequence('invoice', 'invoice_id'), max(invoice_id)) FROM invoice;
    PERFORM setval(pg_get_serial_sequence('trust_entry', 'trust_entry_id'), max(trust_entry_id))
    FROM trust_entry;
END;
$$;

-- Every change row above was stamped as it was written; this stamps any a trigger wrote after all.
UPDATE ml_change AS ch
SET change_id = s.change_id
FROM (SELECT p.seq_id, nextval('ml_change_id_seq') AS change_id
      FROM (SELECT u.seq_id FROM ml_change AS u WHERE u.change_id IS NULL ORDER BY u.seq_id) AS p
      ORDER BY p.seq_id) AS s
WHERE ch.seq_id = s.seq_id;

ANALYZE client;
ANALYZE matter;
ANALYZE invoice;
ANALYZE trust_entry;
ANALYZE ml_change;

DROP FUNCTION pg_temp.ml_sample_hash(bigint, bigint);

\endif

COMMIT;
