-- matterlink sample data for the reference schema (MariaDB): a law firm's clients, matters, invoices and
-- trust ledgers, generated deterministically (same parameters, same rows, on every machine). The rules
-- and the arithmetic are those of sql/sqlite/sample.sql, so both dialects get the same firm.
--
-- Run after schema.sql and contract.sql (sql/sample.sh does all three):
--   mariadb --abort-source-on-error -h HOST -P PORT -u USER \
--       -e "SET @clients = 300, @invoices = 3000; SOURCE sql/mariadb/sample.sql;" FIRM
-- Both parameters are optional (defaults 300 clients, 3000 invoices): an unset user variable is NULL.
-- Without --abort-source-on-error the client reports an error inside SOURCE but exits with status 0;
-- piping "SET ...;" and this file into the client's standard input also stops with status 1.
--
-- Inserts only into an empty database: when client, matter, invoice or trust_entry has rows it prints a
-- notice and changes nothing. The load is one compound statement and one transaction, so an error
-- anywhere rolls all of it back. Rows are made set-based from the Sequence engine's seq_1_to_N tables
-- (built into MariaDB). 1,000,000 invoices take about 40 s on a 2-core machine, most of it InnoDB and
-- the change triggers (about 30 s for the invoices, 9 s to stamp the change rows). The invoice and trust
-- inserts fire the matterlink change triggers, so ml_change gets one row per invoice and trust entry;
-- the script stamps them with change ids before it commits, so the agent's first high-water covers them
-- and its first pass of changes does not replay the whole load. The agent starts from a snapshot, so
-- they do no harm.
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
-- keeping the high bits); RAND() would make every run different. All products stay below 2^63, and
-- every row number is cast to SIGNED first (seq is BIGINT UNSIGNED, and a negative unsigned result
-- is an error). Integer division is DIV, as SQLite's / on integers.

SET NAMES utf8mb4;
SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
-- The working tables are MEMORY tables; the server's default cap (16 MB) is too small for a large
-- firm (20,000 clients, 1,000,000 invoices), so this session may use up to 2 GB for them.
SET SESSION max_heap_table_size = 2147483648;

-- The whole load is one compound statement and one transaction: any error rolls it all back and is
-- reported. (The client does not stop by itself inside "SOURCE file" unless it is given
-- --abort-source-on-error, so the script must not rely on stopping.)

DELIMITER //

BEGIN NOT ATOMIC
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        DROP TEMPORARY TABLE IF EXISTS ml_sample_trust, ml_sample_day, ml_sample_matter, ml_sample_client,
                                       ml_sample_list, ml_sample_word, ml_sample_conf;
        RESIGNAL;
    END;

    START TRANSACTION;

    -- ---------------------------------------------------------------------------------------------------
    -- Parameters and the empty-database check.
    -- ---------------------------------------------------------------------------------------------------

    DROP TEMPORARY TABLE IF EXISTS ml_sample_conf;
    CREATE TEMPORARY TABLE ml_sample_conf (
        clients  BIGINT NOT NULL CHECK (clients BETWEEN 1 AND 1000000),
        invoices BIGINT NOT NULL CHECK (invoices BETWEEN 0 AND 9999999)
    ) ENGINE = MEMORY;

    -- A bad parameter fails the CHECK, and the client stops.
    INSERT INTO ml_sample_conf (clients, invoices)
    SELECT COALESCE(@clients, 300), COALESCE(@invoices, 3000) FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM client)
      AND NOT EXISTS (SELECT 1 FROM matter)
      AND NOT EXISTS (SELECT 1 FROM invoice)
      AND NOT EXISTS (SELECT 1 FROM trust_entry);

    SELECT 'sample.sql: the database already has data; nothing inserted' AS notice FROM DUAL
    WHERE NOT EXISTS (SELECT 1 FROM ml_sample_conf);

    -- Where this load's change rows will start.
    SET @ml_seq_before = (SELECT COALESCE(MAX(seq_id), 0) FROM ml_change);

    -- Constants for the statements below; 0 clients and 0 invoices when nothing may be inserted, so every
    -- insert below inserts nothing.
    SET @ml_clients = COALESCE((SELECT clients FROM ml_sample_conf), 0),
        @ml_invoices = COALESCE((SELECT invoices FROM ml_sample_conf), 0);

    -- ---------------------------------------------------------------------------------------------------
    -- Word lists; idx counts from 0.
    -- ---------------------------------------------------------------------------------------------------

    DROP TEMPORARY TABLE IF EXISTS ml_sample_word;
    CREATE TEMPORARY TABLE ml_sample_word (
        list VARCHAR(20) NOT NULL,
        idx  BIGINT NOT NULL,
        word VARCHAR(100) NOT NULL,
        PRIMARY KEY (list, idx)
    ) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

    INSERT INTO ml_sample_word (list, idx, word)
    SELECT lists.list, w.idx - 1, w.word
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
         ) AS lists
    CROSS JOIN JSON_TABLE(lists.words, '$[*]' COLUMNS (idx FOR ORDINALITY, word VARCHAR(100) PATH '$')) AS w
    WHERE @ml_clients > 0;

    -- How many words each list has.
    DROP TEMPORARY TABLE IF EXISTS ml_sample_list;
    CREATE TEMPORARY TABLE ml_sample_list (
        list VARCHAR(20) NOT NULL PRIMARY KEY,
        n    BIGINT NOT NULL
    ) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

    INSERT INTO ml_sample_list (list, n)
    SELECT list, COUNT(*) FROM ml_sample_word GROUP BY list;

    SET @ml_n_first = (SELECT n FROM ml_sample_list WHERE list = 'first'),
        @ml_n_last = (SELECT n FROM ml_sample_list WHERE list = 'last'),
        @ml_n_business = (SELECT n FROM ml_sample_list WHERE list = 'business'),
        @ml_n_suffix = (SELECT n FROM ml_sample_list WHERE list = 'suffix'),
        @ml_n_street = (SELECT n FROM ml_sample_list WHERE list = 'street');

    -- ---------------------------------------------------------------------------------------------------
    -- Bank accounts.
    -- ---------------------------------------------------------------------------------------------------

    INSERT INTO bank_account (account_number, name, account_type, currency)
    SELECT a.account_number, a.name, a.account_type, a.currency
    FROM (SELECT 'OP-001' AS account_number, 'Operating Account' AS name, 'OPERATING' AS account_type, 'USD' AS currency
          UNION ALL
          SELECT 'TR-001', 'IOLTA Client Trust Account', 'TRUST', 'USD') AS a
    CROSS JOIN ml_sample_conf
    WHERE NOT EXISTS (SELECT 1 FROM bank_account AS b WHERE b.account_number = a.account_number);

    -- ---------------------------------------------------------------------------------------------------
    -- Clients: client i became a client on day (i-1)*1765/clients after 2021-11-01 (day 0); the day range
    -- ends 2026-08-31, before the last invoices, so every client has had time to be billed.
    -- ---------------------------------------------------------------------------------------------------

    DROP TEMPORARY TABLE IF EXISTS ml_sample_client;
    CREATE TEMPORARY TABLE ml_sample_client (
        client_id BIGINT NOT NULL PRIMARY KEY,
        kind      VARCHAR(8) NOT NULL,      -- 'business', 'person' or 'estate'
        day       BIGINT NOT NULL,          -- days after 2021-11-01
        first     VARCHAR(100) NOT NULL,
        last      VARCHAR(100) NOT NULL,
        last2     VARCHAR(100) NOT NULL,
        business  VARCHAR(100) NOT NULL,
        suffix    VARCHAR(100) NOT NULL,
        h         BIGINT NOT NULL,
        matters   BIGINT NOT NULL
    ) ENGINE = MEMORY DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

    INSERT INTO ml_sample_client (client_id, kind, day, first, last, last2, business, suffix, h, matters)
    SELECT r.i,
           CASE WHEN r.h1 % 100 < 50 THEN 'business' WHEN r.h1 % 100 < 90 THEN 'person' ELSE 'estate' END,
           (r.i - 1) * 1765 DIV @ml_clients,
           w_first.word, w_last.word, w_last2.word, w_business.word, w_suffix.word,
           r.h7,
           1 + r.h7 % 5
    FROM (SELECT n.i,
                 ((((n.i * 2654435761 + 1 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h1,
                 ((((n.i * 2654435761 + 2 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h2,
                 ((((n.i * 2654435761 + 3 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h3,
                 ((((n.i * 2654435761 + 4 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h4,
                 ((((n.i * 2654435761 + 5 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h5,
                 ((((n.i * 2654435761 + 6 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h6,
                 ((((n.i * 2654435761 + 7 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h7
          FROM (SELECT CAST(seq AS SIGNED) AS i FROM seq_1_to_1000000 WHERE seq <= @ml_clients) AS n) AS r
    JOIN ml_sample_word AS w_first ON w_first.list = 'first' AND w_first.idx = r.h2 % @ml_n_first
    JOIN ml_sample_word AS w_last ON w_last.list = 'last' AND w_last.idx = r.h3 % @ml_n_last
    JOIN ml_sample_word AS w_last2 ON w_last2.list = 'last' AND w_last2.idx = r.h4 % @ml_n_last
    JOIN ml_sample_word AS w_business ON w_business.list = 'business' AND w_business.idx = r.h5 % @ml_n_business
    JOIN ml_sample_word AS w_suffix ON w_suffix.list = 'suffix' AND w_suffix.idx = r.h6 % @ml_n_suffix;

    INSERT INTO client (client_id, client_number, name, email, created_on)
    SELECT client_id,
           CONCAT('C-', IF(client_id < 100000, LPAD(client_id, 5, '0'), client_id)),
           CASE
               WHEN kind = 'business' AND h % 3 = 0 THEN CONCAT(last, ' & ', last2, ' ', suffix)
               WHEN kind = 'business' THEN CONCAT(last, ' ', business, ' ', suffix)
               WHEN kind = 'person' THEN CONCAT(first, ' ', last)
               WHEN h % 2 = 0 THEN CONCAT('Estate of ', first, ' ', last)
               ELSE CONCAT('The ', last, ' Family Trust')
           END,
           -- About one client in ten has no e-mail on file. Addresses are under example.com (RFC 2606).
           CASE
               WHEN h % 10 = 9 THEN NULL
               WHEN kind = 'business' THEN
                   CONCAT('accounts@',
                          LOWER(REPLACE(REPLACE(CONCAT(last, '-', CASE WHEN h % 3 = 0 THEN last2 ELSE business END),
                                                ' ', '-'), '''', '')),
                          '.example.com')
               ELSE CONCAT(LOWER(REPLACE(CONCAT(first, '.', last), '''', '')), client_id % 100, '@example.com')
           END,
           DATE_ADD('2021-11-01', INTERVAL day DAY)
    FROM ml_sample_client
    ORDER BY client_id;

    -- ---------------------------------------------------------------------------------------------------
    -- Matters: a client's first matter opens the day it became a client, the others later; matters are
    -- numbered in opening order. About one in eight matters opened before 2025 is closed.
    -- ---------------------------------------------------------------------------------------------------

    DROP TEMPORARY TABLE IF EXISTS ml_sample_matter;
    CREATE TEMPORARY TABLE ml_sample_matter (
        matter_id BIGINT NOT NULL PRIMARY KEY,
        client_id BIGINT NOT NULL,
        day       BIGINT NOT NULL,          -- opened, days after 2021-11-01
        h         BIGINT NOT NULL,
        KEY ml_sample_matter_day (day, matter_id)
    ) ENGINE = MEMORY;

    INSERT INTO ml_sample_matter (matter_id, client_id, day, h)
    SELECT ROW_NUMBER() OVER (ORDER BY m.day, m.client_id, m.n), m.client_id, m.day, m.h
    FROM (SELECT c.client_id, k.n,
                 CASE WHEN k.n = 1 THEN c.day
                      ELSE c.day + ((((((c.client_id * 8 + k.n) * 2654435761 + 11 * 1013904223) % 4294967296)
                                     * 1103515245 + 12345) % 4294967296) DIV 4096) % (1797 - c.day) END AS day,
                 ((((((c.client_id * 8 + k.n) * 2654435761 + 12 * 1013904223) % 4294967296)
                   * 1103515245 + 12345) % 4294967296) DIV 4096) AS h
          FROM ml_sample_client AS c
          JOIN (SELECT CAST(seq AS SIGNED) AS n FROM seq_1_to_5) AS k ON k.n <= c.matters) AS m;

    INSERT INTO matter (matter_id, matter_number, client_id, description, status, opened_on)
    SELECT m.matter_id,
           CONCAT('M-', IF(m.matter_id < 1000000, LPAD(m.matter_id, 6, '0'), m.matter_id)),
           m.client_id,
           REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
               w_tmpl.word,
               '{F}', w_first.word),
               '{L}', w_last.word),
               '{B}', w_business.word),
               '{S}', w_suffix.word),
               '{ST}', w_street.word),
               '{N}', 10 + (m.h DIV 23) % 990),
           CASE WHEN m.day < 1157 AND m.h % 8 = 0 THEN 'closed' ELSE 'open' END,
           DATE_ADD('2021-11-01', INTERVAL m.day DAY)
    FROM ml_sample_matter AS m
    JOIN ml_sample_client AS c ON c.client_id = m.client_id
    JOIN ml_sample_list AS l ON l.list = CONCAT('matter_', c.kind)
    JOIN ml_sample_word AS w_tmpl ON w_tmpl.list = l.list AND w_tmpl.idx = m.h % l.n
    JOIN ml_sample_word AS w_first ON w_first.list = 'first' AND w_first.idx = (m.h DIV 7) % @ml_n_first
    JOIN ml_sample_word AS w_last ON w_last.list = 'last' AND w_last.idx = (m.h DIV 11) % @ml_n_last
    JOIN ml_sample_word AS w_business ON w_business.list = 'business' AND w_business.idx = (m.h DIV 13) % @ml_n_business
    JOIN ml_sample_word AS w_suffix ON w_suffix.list = 'suffix' AND w_suffix.idx = (m.h DIV 17) % @ml_n_suffix
    JOIN ml_sample_word AS w_street ON w_street.list = 'street' AND w_street.idx = (m.h DIV 19) % @ml_n_street
    ORDER BY m.matter_id;

    -- For each invoice day: how many matters are open by then (matters are numbered in opening order, so
    -- an invoice on day d may go to any matter_id from 1 to this count), and the day's date and due date,
    -- computed once per day instead of once per invoice.
    DROP TEMPORARY TABLE IF EXISTS ml_sample_day;
    CREATE TEMPORARY TABLE ml_sample_day (
        day      BIGINT NOT NULL PRIMARY KEY,
        matters  BIGINT NOT NULL,
        on_date  DATE NOT NULL,
        due_date DATE NOT NULL
    ) ENGINE = MEMORY;

    INSERT INTO ml_sample_day (day, matters, on_date, due_date)
    SELECT d.day,
           (SELECT MAX(m.matter_id) FROM ml_sample_matter AS m WHERE m.day <= d.day),
           DATE_ADD('2021-11-01', INTERVAL d.day DAY),
           DATE_ADD('2021-11-01', INTERVAL d.day + 30 DAY)
    FROM (SELECT CAST(seq AS SIGNED) AS day FROM seq_731_to_1826) AS d
    WHERE @ml_invoices > 0;

    -- ---------------------------------------------------------------------------------------------------
    -- Invoices: invoice i is dated (invoices-i)*1095/invoices days before 2026-11-01.
    -- Total = hourly rate x tenths of hours, plus costs on one invoice in three, clamped to $50..$25,000.
    -- ---------------------------------------------------------------------------------------------------

    INSERT INTO invoice (invoice_id, invoice_number, matter_id, invoice_date, due_date, currency,
                         total_minor, balance_minor, status)
    SELECT t.i,
           CONCAT('INV-', LPAD(t.i, 7, '0')),
           t.matter_id,
           t.on_date,
           t.due_date,
           'USD',
           t.total,
           CASE WHEN t.h4 % 100 < 70 THEN t.total
                WHEN t.h4 % 100 < 80 THEN t.total - t.total * (10 + (t.h4 DIV 100) % 81) DIV 100
                ELSE 0 END,
           CASE WHEN t.h4 % 100 < 80 THEN 'open' ELSE 'paid' END
    FROM (SELECT r.i, d.on_date, d.due_date, r.h3, r.h4,
                 1 + r.h1 % d.matters AS matter_id,
                 LEAST(2500000, GREATEST(5000,
                     -- $250..$750 an hour, 0.2 to 40.8 hours, skewed towards short bills
                     (250 + 50 * (r.h2 % 11)) * (2 + (r.h2 DIV 11) % 60 * (1 + (r.h2 DIV 660) % 7)) * 10
                     + CASE WHEN r.h3 % 3 = 0 THEN (r.h3 DIV 3) % 50000 ELSE 0 END)) AS total
          FROM (SELECT n.i,
                       1826 - (@ml_invoices - n.i) * 1095 DIV @ml_invoices AS day,
                       ((((n.i * 2654435761 + 21 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h1,
                       ((((n.i * 2654435761 + 22 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h2,
                       ((((n.i * 2654435761 + 23 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h3,
                       ((((n.i * 2654435761 + 24 * 1013904223) % 4294967296) * 1103515245 + 12345) % 4294967296) DIV 4096 AS h4
                FROM (SELECT CAST(seq AS SIGNED) AS i FROM seq_1_to_9999999 WHERE seq <= @ml_invoices) AS n) AS r
          JOIN ml_sample_day AS d ON d.day = r.day) AS t
    ORDER BY t.i;

    -- ---------------------------------------------------------------------------------------------------
    -- Trust ledgers for about 30% of matters, all in TR-001. By the matter's hash: a retainer only; a
    -- retainer and a transfer of 10-60% of it to pay fees; that plus a top-up; or a retainer refunded in
    -- full (zero balance). Dates never pass 2026-11-01.
    -- ---------------------------------------------------------------------------------------------------

    DROP TEMPORARY TABLE IF EXISTS ml_sample_trust;
    CREATE TEMPORARY TABLE ml_sample_trust (
        matter_id BIGINT NOT NULL PRIMARY KEY,
        day       BIGINT NOT NULL,
        h         BIGINT NOT NULL,
        retainer  BIGINT NOT NULL,
        plan      BIGINT NOT NULL,
        day2      BIGINT NOT NULL,
        day3      BIGINT NOT NULL
    ) ENGINE = MEMORY;

    INSERT INTO ml_sample_trust (matter_id, day, h, retainer, plan, day2, day3)
    SELECT m.matter_id, m.day, m.h,
           -- $500 to $25,000 in steps of $500; one retainer in ten is ten times larger
           (1 + (m.h DIV 100) % 50) * 50000 * CASE WHEN (m.h DIV 5000) % 10 = 0 THEN 10 ELSE 1 END,
           (m.h DIV 7) % 10,
           LEAST(1826, m.day + 20 + (m.h DIV 3) % 200),
           LEAST(1826, m.day + 60 + (m.h DIV 13) % 400)
    FROM ml_sample_matter AS m
    WHERE m.h % 100 < 30;

    SET @ml_trust_account = (SELECT bank_account_id FROM bank_account WHERE account_number = 'TR-001');

    INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo)
    SELECT e.matter_id,
           @ml_trust_account,
           DATE_ADD('2021-11-01', INTERVAL e.day DAY),
           e.amount,
           'USD',
           e.memo
    FROM (SELECT matter_id, 1 AS seq, day, retainer AS amount, 'Retainer deposit' AS memo FROM ml_sample_trust
          UNION ALL
          SELECT matter_id, 2, day2, -(retainer * (10 + (h DIV 17) % 51) DIV 100), 'Transfer to operating: fees earned'
          FROM ml_sample_trust WHERE plan BETWEEN 1 AND 7
          UNION ALL
          SELECT matter_id, 3, GREATEST(day2, day3), retainer DIV 2, 'Replenishment of retainer'
          FROM ml_sample_trust WHERE plan BETWEEN 6 AND 7
          UNION ALL
          SELECT matter_id, 2, day2, -retainer, 'Refund of unused retainer to client'
          FROM ml_sample_trust WHERE plan >= 8 AND h % 2 = 0) AS e
    ORDER BY e.day, e.matter_id, e.seq;

    -- ---------------------------------------------------------------------------------------------------
    -- Stamp the change rows of this load, so the agent's first high-water covers them. This is what
    -- ml_change_high_water() does, in one set-based UPDATE instead of batches of 100,000: this transaction
    -- wrote the rows, and the sample goes only into an empty database, where nobody else is writing.
    -- The stamp row is locked first, as every stamper does; seq_id keeps the order (gaps are allowed).
    -- ---------------------------------------------------------------------------------------------------

    SELECT last_change_id INTO @ml_last FROM ml_change_stamp FOR UPDATE;
    SET @ml_last = GREATEST(@ml_last, (SELECT COALESCE(MAX(change_id), 0) FROM ml_change));

    UPDATE ml_change
    SET change_id = @ml_last + seq_id - @ml_seq_before
    WHERE seq_id > @ml_seq_before AND change_id IS NULL AND @ml_clients > 0;

    UPDATE ml_change_stamp
    SET last_change_id = (SELECT COALESCE(MAX(change_id), 0) FROM ml_change)
    WHERE @ml_clients > 0;

    DROP TEMPORARY TABLE ml_sample_trust;
    DROP TEMPORARY TABLE ml_sample_day;
    DROP TEMPORARY TABLE ml_sample_matter;
    DROP TEMPORARY TABLE ml_sample_client;
    DROP TEMPORARY TABLE ml_sample_list;
    DROP TEMPORARY TABLE ml_sample_word;
    DROP TEMPORARY TABLE ml_sample_conf;

    COMMIT;
END//

DELIMITER ;
