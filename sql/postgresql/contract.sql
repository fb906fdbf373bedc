-- matterlink SQL contract, version 4, PostgreSQL dialect (PostgreSQL 13+; tested on 15.x with psqlODBC 13).
--
-- What the matterlink agent reads and writes in the firm's matter database, installed on top of the
-- matter tables (sql/postgresql/schema.sql or the firm's own). docs/contract.md is the specification;
-- this script behaves as sql/sqlite/contract.sql does, with functions and procedures in place of views
-- and INSTEAD OF triggers, and with a change cursor that stays safe with concurrent writers.
--
-- Run (as the owner of the matter tables, or a superuser):
--   psql -h HOST -p PORT -U USER -d FIRM -v ON_ERROR_STOP=1 -q -f sql/postgresql/contract.sql
--
-- Safe to run again, also over another version: tables are created IF NOT EXISTS and keep their rows
-- (ml_change, ml_posting_rejection), ml_contract keeps its db_epoch, functions, procedures and views are
-- replaced in place (CREATE OR REPLACE keeps the grants IT gave them) and the triggers are dropped and
-- created again. One transaction: with ON_ERROR_STOP=1 a failed run changes nothing.
--
-- How the agent calls it (docs/contract.md, section 5; parameters bound as BIGINT or VARCHAR):
--   SELECT contract_version, db_epoch FROM ml_contract
--   SELECT * FROM ml_open_items(?, ?)              -- after_source_id, page_limit
--   SELECT * FROM ml_trust_balances(?, ?)          -- after_source_id, page_limit
--   SELECT ml_change_high_water()
--   SELECT * FROM ml_changes_since(?, ?, ?)        -- since, upto, page_limit
--   CALL ml_apply_posting(?)                       -- the posting, JSON text
--   CALL ml_reject_posting(?, ?)                   -- posting_uuid, reason ('ML001 <code>')
--   SELECT * FROM ml_posting_result(?)             -- posting_uuid
--   CALL ml_apply_postings(?)                      -- up to 1000 postings, a JSON array (or ML002)
--   SELECT * FROM ml_posting_results(?)            -- their posting_uuids, a JSON array
-- Reads are LANGUAGE sql STABLE functions: PostgreSQL inlines them into the caller's query, so psqlODBC
-- (UseDeclareFetch=1) streams them through a cursor. Writes are procedures, run with CALL: a volatile
-- function selected inside such a cursor would only run when the cursor is fetched.
--
-- Version 2 added reversing postings (refunds, voids, chargebacks): ml_apply_posting takes "reverses" and
-- writes the matter tables receipt_reversal and receipt_reversal_line (schema.sql makes them), and the
-- results answer for reversals too. Version 3 added the search index ml_search_item (kept by triggers)
-- and the views searches read (ml_search_keys, ml_search_clients, ml_search_matters, ml_search_invoices).
-- Version 4 changes nothing on PostgreSQL: it added SQLite's and MariaDB's search views, and every
-- dialect carries the same number because the agent and the core accept one.
-- This script upgrades a version 1, 2 or 3 install in place (see "Upgrades").
--
-- Privileges. The routines that write (ml_change_high_water, ml_apply_posting, ml_apply_postings,
-- ml_reject_posting and the change triggers) are SECURITY DEFINER with a fixed search_path: the firm's
-- own applications keep working with no rights on the ml_ tables, and the agent can write only through
-- the contract. EXECUTE on the four writing routines is revoked from PUBLIC. An agent that connects as
-- its own role needs:
--   GRANT SELECT ON ml_contract, ml_open_items, ml_trust_balances, ml_changes, ml_posting_result,
--       ml_search_keys, ml_search_clients, ml_search_matters, ml_search_invoices TO agent;
--   GRANT EXECUTE ON FUNCTION ml_change_high_water() TO agent;
--   GRANT EXECUTE ON PROCEDURE ml_apply_posting(text), ml_apply_postings(text),
--       ml_reject_posting(text, text) TO agent;
-- and a search_path that finds these objects (the read functions run with the caller's search_path,
-- because a function with its own SET clause cannot be inlined).
--
-- ===================================================================================================
-- Change capture: "stamp on read"
-- ===================================================================================================
-- The agent must never miss a committed change, and must never hold up the firm's own writers.
--
-- Why not timestamps: "modified since T" misses rows. A transaction that started before T but commits
-- after the agent read up to T carries a timestamp below T (now() is the transaction start); rows
-- written in one statement share a timestamp; clocks move and precision is lost.
--
-- Why not a sequence number taken when the change is written: PostgreSQL runs writers concurrently.
-- Transaction A takes change number 5, transaction B takes 6 and commits; a reader sees 6, records
-- "read up to 6", and A commits 5 afterwards, below the cursor: missed for good. (SQLite escapes this
-- because it has one writer at a time.) Recording each change's transaction id and reading only below
-- the oldest transaction still running (pg_current_snapshot()) would be safe, but then one long
-- transaction anywhere in the cluster, even a report that writes nothing we watch, holds back every
-- change committed after it started, and the cursor is tied to transaction ids and their wraparound.
--
-- What we do instead: the change triggers append (entity, entity_id) to ml_change with change_id NULL,
-- in the writer's transaction (seq_id, from a sequence, only orders the rows). ml_change_high_water(),
-- which the agent calls before each read pass, gives every committed row that has no change_id yet the
-- next numbers of ml_change_id_seq, in seq_id order, and returns the highest change_id. ml_changes
-- reads only rows that have a change_id. So:
--   - Rows of a transaction still in progress are invisible to the stamping UPDATE, so they get no
--     number; once it commits, the next call numbers them above everything numbered so far. A late
--     commit always lands above the agent's cursor, never below it.
--   - Stamping is itself a write that commits, so stampers must not overlap either: if stamper A
--     numbered rows 101..200 and had not committed yet, stamper B (skipping A's locked rows) could
--     number new rows 201..210 and commit, a reader could move its cursor to 210, and A's rows would
--     then commit below it. So a stamper first takes a transaction-level advisory lock
--     (pg_try_advisory_xact_lock(1835819880, 0)), held until it commits: numbers become visible in the
--     order they were handed out. A caller that finds the lock taken does not wait: it stamps nothing
--     and returns the highest number already committed, which is safe, as the other stamper's numbers
--     are all higher. The row selection also uses FOR UPDATE SKIP LOCKED, so a stamper never waits on
--     a row lock either.
--   - ml_change_id_seq must keep CACHE 1 (the default): with a cache, each session would hand out
--     numbers from its own block, out of order.
--   - The firm's writers never wait for the agent and the agent never waits for them: writers only
--     INSERT into ml_change, the stamper only UPDATEs committed rows (which no writer touches), and
--     rows that writers have not committed yet are invisible to it, not locked against it.
--   - One call numbers at most 100,000 rows (the next call numbers the rest), so a bulk update of the
--     firm's data never turns one call into a long transaction.
--   - Everything ml_changes_since returns is committed and final: a change_id is never reused, and no
--     row can appear later at or below a change_id the agent has seen.
-- A row carries no state: ml_changes joins each entity's current state when it is read, so applying a
-- row twice, or after a snapshot that already saw it, changes nothing. written_at is informational.
--
-- Advisory locks used (key pairs, transaction level): (1835819880, 0) change stamping;
-- (1835823215, hashtext(posting_uuid)) one posting at a time per posting_uuid.
-- TRUNCATE of a matter table fires no row triggers and is not captured: resync the agent after one.

BEGIN;

-- No "already exists, skipping" notices on a re-run.
SET LOCAL client_min_messages = warning;

-- The SECURITY DEFINER routines below take this search_path (SET search_path FROM CURRENT): the
-- schemas where this script finds and creates its tables, then pg_temp last, so a temporary table can
-- never stand in for one of ours. set_config(..., true) lasts until this transaction ends.
DO $$
BEGIN
    PERFORM set_config('search_path',
                       (SELECT COALESCE(string_agg(quote_ident(s.name), ', ' ORDER BY s.pos) || ', ', '')
                        FROM unnest(current_schemas(false)) WITH ORDINALITY AS s(name, pos)) || 'pg_temp',
                       true);
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- ml_contract: one row saying which contract is installed.
-- The agent refuses any contract_version other than the one it speaks. db_epoch is made once, at the
-- first install, and never changes afterwards: it names this database's change sequence, so the payment
-- core can tell that it is talking to a different database (a copy installed fresh) and resync.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_contract (
    contract_version INTEGER NOT NULL CHECK (contract_version > 0),
    db_epoch         TEXT NOT NULL
                     CHECK (db_epoch ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    installed_at     TIMESTAMPTZ NOT NULL
);

-- A unique index on a constant allows a single row.
CREATE UNIQUE INDEX IF NOT EXISTS ml_contract_singleton ON ml_contract ((true));

-- A random (version 4) UUID, lower case 8-4-4-4-12.
INSERT INTO ml_contract (contract_version, db_epoch, installed_at)
SELECT 4, gen_random_uuid()::text, now()
WHERE NOT EXISTS (SELECT 1 FROM ml_contract);

-- Upgrades. The script that installs version N also upgrades any earlier install in place: each
-- migration step is guarded by the version found and runs here, before the objects below are created
-- or replaced; the whole script is one transaction, so the version number and the objects change
-- together or not at all. A step looks like:
--     IF installed < 4 THEN
--         ALTER TABLE ml_change ADD COLUMN IF NOT EXISTS ...;
--         -- CREATE OR REPLACE cannot change a function's result columns: drop it, it is made again below.
--         DROP FUNCTION IF EXISTS ml_changes_since(bigint, bigint, bigint);
--     END IF;
-- Version 1 to 2 changes no ml_ table and no routine's parameters or result columns: the routines and
-- views below are replaced in place (ml_apply_posting, ml_apply_postings, ml_reject_posting, the
-- rejection trigger and ml_posting_result learn reversals). What version 2 needs besides is in the
-- matter schema: receipt_reversal and receipt_reversal_line, checked first of all. Version 2 to 3 adds the
-- search index (ml_search_item, its triggers and the ml_search_ views), which this script creates and
-- fills below whatever the version found. installed_at records when this version was installed; a
-- plain re-run keeps it.
DO $$
DECLARE
    installed integer := (SELECT contract_version FROM ml_contract);
BEGIN
    IF to_regclass('receipt_reversal') IS NULL OR to_regclass('receipt_reversal_line') IS NULL THEN
        RAISE EXCEPTION 'matterlink contract: receipt_reversal and receipt_reversal_line are missing: run sql/postgresql/schema.sql first (it adds only what is missing), or adapt the contract to the firm''s reversal tables';
    END IF;
    IF installed > 4 THEN
        RAISE WARNING 'matterlink contract: version % was installed; this script puts version 4 back',
            installed;
    END IF;
    UPDATE ml_contract
    SET installed_at = CASE WHEN contract_version = 4 THEN installed_at ELSE now() END,
        contract_version = 4;
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- ml_change: the change log (see "Change capture" above).
-- seq_id orders rows as they were written; change_id is the commit-safe cursor, NULL until
-- ml_change_high_water() stamps the row. Rows at or below the agent's acknowledged cursor may be
-- deleted: DELETE FROM ml_change WHERE change_id <= <acknowledged cursor>.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_change (
    seq_id     BIGSERIAL PRIMARY KEY,
    change_id  BIGINT UNIQUE,
    entity     TEXT NOT NULL CHECK (entity IN ('invoice', 'trust')),
    entity_id  BIGINT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS ml_change_id_seq AS BIGINT OWNED BY ml_change.change_id;

-- The rows still waiting for a change_id, in seq_id order: what the stamper reads.
CREATE INDEX IF NOT EXISTS ml_change_unstamped ON ml_change (seq_id) WHERE change_id IS NULL;

-- ---------------------------------------------------------------------------------------------------
-- ml_posting_rejection: postings the agent rejected for a business reason (a final answer, not a retry).
-- The agent writes it with CALL ml_reject_posting(?, ?) after rolling back the failed apply.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_posting_rejection (
    posting_uuid TEXT NOT NULL PRIMARY KEY,
    reason       TEXT NOT NULL,
    rejected_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A posting that did land (as a receipt, or as a reversal) is never also recorded as rejected, so
-- ml_posting_result has one answer.
CREATE OR REPLACE FUNCTION ml_posting_rejection_posted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM receipt WHERE posting_uuid = NEW.posting_uuid)
       OR EXISTS (SELECT 1 FROM receipt_reversal WHERE posting_uuid = NEW.posting_uuid) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS ml_posting_rejection_posted ON ml_posting_rejection;
CREATE TRIGGER ml_posting_rejection_posted
    BEFORE INSERT ON ml_posting_rejection
    FOR EACH ROW
    EXECUTE FUNCTION ml_posting_rejection_posted();

-- ---------------------------------------------------------------------------------------------------
-- Change triggers: the rules of sql/sqlite/contract.sql (docs/contract.md, section 6.1). They only
-- INSERT into ml_change. The UPDATE triggers fire only when a column the payment core sees changes
-- (the WHEN clause is checked without calling the function), so bookkeeping updates (reminder dates,
-- e-mail addresses) add no noise. Matter and client changes list only the invoices that are open items
-- right now: the others are not in the core's replica, and renaming a client does not change that.
-- SECURITY DEFINER: the firm's applications need no rights on ml_change for their writes to work.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ml_invoice_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.invoice_id <> NEW.invoice_id THEN
            INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', OLD.invoice_id);
        END IF;
        INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', NEW.invoice_id);
    ELSE
        INSERT INTO ml_change (entity, entity_id) VALUES ('invoice', OLD.invoice_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_invoice_insert ON invoice;
CREATE TRIGGER ml_invoice_insert
    AFTER INSERT ON invoice
    FOR EACH ROW
    EXECUTE FUNCTION ml_invoice_change();

DROP TRIGGER IF EXISTS ml_invoice_update ON invoice;
CREATE TRIGGER ml_invoice_update
    AFTER UPDATE ON invoice
    FOR EACH ROW
    WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id
          OR OLD.invoice_number IS DISTINCT FROM NEW.invoice_number
          OR OLD.matter_id IS DISTINCT FROM NEW.matter_id
          OR OLD.invoice_date IS DISTINCT FROM NEW.invoice_date
          OR OLD.due_date IS DISTINCT FROM NEW.due_date
          OR OLD.currency IS DISTINCT FROM NEW.currency
          OR OLD.total_minor IS DISTINCT FROM NEW.total_minor
          OR OLD.balance_minor IS DISTINCT FROM NEW.balance_minor
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ml_invoice_change();

DROP TRIGGER IF EXISTS ml_invoice_delete ON invoice;
CREATE TRIGGER ml_invoice_delete
    AFTER DELETE ON invoice
    FOR EACH ROW
    EXECUTE FUNCTION ml_invoice_change();

-- Moving an entry to another matter changes both matters' balances.
CREATE OR REPLACE FUNCTION ml_trust_entry_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ml_change (entity, entity_id) VALUES ('trust', NEW.matter_id);
    ELSE
        INSERT INTO ml_change (entity, entity_id) VALUES ('trust', OLD.matter_id);
        IF TG_OP = 'UPDATE' AND NEW.matter_id <> OLD.matter_id THEN
            INSERT INTO ml_change (entity, entity_id) VALUES ('trust', NEW.matter_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_trust_entry_insert ON trust_entry;
CREATE TRIGGER ml_trust_entry_insert
    AFTER INSERT ON trust_entry
    FOR EACH ROW
    EXECUTE FUNCTION ml_trust_entry_change();

DROP TRIGGER IF EXISTS ml_trust_entry_update ON trust_entry;
CREATE TRIGGER ml_trust_entry_update
    AFTER UPDATE ON trust_entry
    FOR EACH ROW
    WHEN (OLD.matter_id IS DISTINCT FROM NEW.matter_id
          OR OLD.amount_minor IS DISTINCT FROM NEW.amount_minor
          OR OLD.currency IS DISTINCT FROM NEW.currency)
    EXECUTE FUNCTION ml_trust_entry_change();

DROP TRIGGER IF EXISTS ml_trust_entry_delete ON trust_entry;
CREATE TRIGGER ml_trust_entry_delete
    AFTER DELETE ON trust_entry
    FOR EACH ROW
    EXECUTE FUNCTION ml_trust_entry_change();

-- Matter number, description, client and status appear in (or decide) every item of the matter.
-- Foreign keys normally forbid deleting a matter or client that still has invoices or trust entries;
-- where the firm's schema does not enforce them, the orphaned items must still leave the core's replica.
CREATE OR REPLACE FUNCTION ml_matter_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'invoice', i.invoice_id FROM invoice AS i
        WHERE i.matter_id IN (OLD.matter_id, NEW.matter_id) AND i.status = 'open' AND i.balance_minor > 0
        ORDER BY i.invoice_id;
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'trust', OLD.matter_id
        WHERE OLD.matter_id <> NEW.matter_id
           OR EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = OLD.matter_id);
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'trust', NEW.matter_id
        WHERE NEW.matter_id <> OLD.matter_id
          AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = NEW.matter_id);
    ELSE
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'invoice', i.invoice_id FROM invoice AS i
        WHERE i.matter_id = OLD.matter_id AND i.status = 'open' AND i.balance_minor > 0
        ORDER BY i.invoice_id;
        INSERT INTO ml_change (entity, entity_id)
        SELECT 'trust', OLD.matter_id
        WHERE EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = OLD.matter_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_matter_update ON matter;
CREATE TRIGGER ml_matter_update
    AFTER UPDATE ON matter
    FOR EACH ROW
    WHEN (OLD.matter_id IS DISTINCT FROM NEW.matter_id
          OR OLD.matter_number IS DISTINCT FROM NEW.matter_number
          OR OLD.client_id IS DISTINCT FROM NEW.client_id
          OR OLD.description IS DISTINCT FROM NEW.description
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ml_matter_change();

DROP TRIGGER IF EXISTS ml_matter_delete ON matter;
CREATE TRIGGER ml_matter_delete
    AFTER DELETE ON matter
    FOR EACH ROW
    EXECUTE FUNCTION ml_matter_change();

-- Client number and name appear in every item of every matter of the client.
CREATE OR REPLACE FUNCTION ml_client_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    clients bigint[] := CASE TG_OP WHEN 'UPDATE' THEN ARRAY[OLD.client_id, NEW.client_id]
                                   ELSE ARRAY[OLD.client_id] END;
BEGIN
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'invoice', i.invoice_id
    FROM matter AS m
    JOIN invoice AS i ON i.matter_id = m.matter_id
    WHERE m.client_id = ANY (clients) AND i.status = 'open' AND i.balance_minor > 0
    ORDER BY i.invoice_id;
    INSERT INTO ml_change (entity, entity_id)
    SELECT 'trust', m.matter_id
    FROM matter AS m
    WHERE m.client_id = ANY (clients)
      AND EXISTS (SELECT 1 FROM trust_entry AS t WHERE t.matter_id = m.matter_id)
    ORDER BY m.matter_id;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_client_update ON client;
CREATE TRIGGER ml_client_update
    AFTER UPDATE ON client
    FOR EACH ROW
    WHEN (OLD.client_id IS DISTINCT FROM NEW.client_id
          OR OLD.client_number IS DISTINCT FROM NEW.client_number
          OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION ml_client_change();

DROP TRIGGER IF EXISTS ml_client_delete ON client;
CREATE TRIGGER ml_client_delete
    AFTER DELETE ON client
    FOR EACH ROW
    EXECUTE FUNCTION ml_client_change();

-- ---------------------------------------------------------------------------------------------------
-- ml_search_item: the search index of the open invoices (docs/contract.md 5.8), one row per invoice that
-- ml_open_items shows, with its client and matter and their name and description in lower case. Why: a
-- search orders its rows by invoice id (keyset paging), and without this table PostgreSQL can only walk
-- the open invoices in id order, joining each to its matter and client, until enough rows match; when
-- the matches sit late in id order (numbers are handed out in time order, so a client-number prefix of
-- recent clients matches only recent invoices) that walk reads most of the table, and where they are
-- common it still pays two joins per invoice. With the ids and texts beside the invoice id, a search
-- either fetches exactly the invoices of the matching clients, matters or invoices and sorts them, or
-- walks this narrow table in id order testing the text of each row (5.8).
--
-- The triggers below keep it exact in the writer's own transaction. They fire only when an invoice
-- opens or closes or moves to another matter, or a matter or client changes its id, client, name or
-- description: a payment that leaves an invoice open changes nothing here. Whoever copies a client's
-- name or a matter's description or client reads that row FOR SHARE, so a concurrent change of it
-- either waits for the copy's transaction or is waited for, and the later writer's value stays. The
-- install script rebuilds whatever is missing or wrong (below, at the end), so a rerun also repairs
-- the table.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ml_search_item (
    source_id                BIGINT PRIMARY KEY,   -- invoice_id of an open invoice
    client_id                BIGINT NOT NULL,
    matter_id                BIGINT NOT NULL,
    client_name_lower        TEXT,                 -- lower(client.name)
    matter_description_lower TEXT                  -- lower(matter.description)
);

CREATE INDEX IF NOT EXISTS ml_search_item_client ON ml_search_item (client_id, source_id);
CREATE INDEX IF NOT EXISTS ml_search_item_matter ON ml_search_item (matter_id, source_id);

CREATE OR REPLACE FUNCTION ml_search_invoice_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM ml_search_item WHERE source_id = OLD.invoice_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'open' AND NEW.balance_minor > 0 THEN
        INSERT INTO ml_search_item (source_id, client_id, matter_id, client_name_lower, matter_description_lower)
        SELECT NEW.invoice_id, m.client_id, m.matter_id, lower(c.name), lower(m.description)
        FROM matter AS m
        JOIN client AS c ON c.client_id = m.client_id
        WHERE m.matter_id = NEW.matter_id
        FOR SHARE OF m, c;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_search_invoice_insert ON invoice;
CREATE TRIGGER ml_search_invoice_insert
    AFTER INSERT ON invoice
    FOR EACH ROW
    WHEN (NEW.status = 'open' AND NEW.balance_minor > 0)
    EXECUTE FUNCTION ml_search_invoice_sync();

-- Opens, closes (paid, void, closed, balance 0) or moves: the WHEN clause keeps every other update,
-- payments that leave a balance among them, away from the function.
DROP TRIGGER IF EXISTS ml_search_invoice_update ON invoice;
CREATE TRIGGER ml_search_invoice_update
    AFTER UPDATE ON invoice
    FOR EACH ROW
    WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id
          OR OLD.matter_id IS DISTINCT FROM NEW.matter_id
          OR (OLD.status = 'open' AND OLD.balance_minor > 0)
             IS DISTINCT FROM (NEW.status = 'open' AND NEW.balance_minor > 0))
    EXECUTE FUNCTION ml_search_invoice_sync();

DROP TRIGGER IF EXISTS ml_search_invoice_delete ON invoice;
CREATE TRIGGER ml_search_invoice_delete
    AFTER DELETE ON invoice
    FOR EACH ROW
    EXECUTE FUNCTION ml_search_invoice_sync();

-- A matter or client that changes (id, client, name, description) carries its invoices' rows along; a
-- deleted matter or client takes them away (where foreign keys do not already forbid it).
CREATE OR REPLACE FUNCTION ml_search_owner_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_TABLE_NAME = 'matter' THEN
        IF TG_OP = 'UPDATE' THEN
            PERFORM 1 FROM client AS c WHERE c.client_id = NEW.client_id FOR SHARE;
            UPDATE ml_search_item
            SET client_id = NEW.client_id, matter_id = NEW.matter_id,
                matter_description_lower = lower(NEW.description),
                client_name_lower = (SELECT lower(c.name) FROM client AS c WHERE c.client_id = NEW.client_id)
            WHERE matter_id = OLD.matter_id;
        ELSE
            DELETE FROM ml_search_item WHERE matter_id = OLD.matter_id;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE ml_search_item SET client_id = NEW.client_id, client_name_lower = lower(NEW.name)
        WHERE client_id = OLD.client_id;
    ELSE
        DELETE FROM ml_search_item WHERE client_id = OLD.client_id;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS ml_search_matter_update ON matter;
CREATE TRIGGER ml_search_matter_update
    AFTER UPDATE ON matter
    FOR EACH ROW
    WHEN (OLD.matter_id IS DISTINCT FROM NEW.matter_id OR OLD.client_id IS DISTINCT FROM NEW.client_id
          OR OLD.description IS DISTINCT FROM NEW.description)
    EXECUTE FUNCTION ml_search_owner_sync();

DROP TRIGGER IF EXISTS ml_search_matter_delete ON matter;
CREATE TRIGGER ml_search_matter_delete
    AFTER DELETE ON matter
    FOR EACH ROW
    EXECUTE FUNCTION ml_search_owner_sync();

DROP TRIGGER IF EXISTS ml_search_client_update ON client;
CREATE TRIGGER ml_search_client_update
    AFTER UPDATE ON client
    FOR EACH ROW
    WHEN (OLD.client_id IS DISTINCT FROM NEW.client_id OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION ml_search_owner_sync();

DROP TRIGGER IF EXISTS ml_search_client_delete ON client;
CREATE TRIGGER ml_search_client_delete
    AFTER DELETE ON client
    FOR EACH ROW
    EXECUTE FUNCTION ml_search_owner_sync();

-- ---------------------------------------------------------------------------------------------------
-- Item views. All three return the same item columns, in this order and with these types:
--   item_kind text, source_id bigint, invoice_number text, invoice_date text, due_date text,
--   client_number text, client_name text, matter_number text, matter_description text, currency text,
--   total_minor bigint, balance_minor bigint, status text
-- Dates come back as text 'YYYY-MM-DD' (to_char, whatever the session's DateStyle; a date outside
-- the years 0001 to 9999 as the server writes it, which the agent skips with its reason: to_char would
-- write 4713 BC as 4713, and fail the whole read on a year past 294276), money as BIGINT
-- minor units. An invoice item is keyed ('invoice', invoice_id), a trust item ('trust', matter_id).
-- The agent pages them through the functions further down; the views are there for IT and tests, and
-- they keep one definition of each item. A view runs with its owner's rights on the tables below it.
-- ---------------------------------------------------------------------------------------------------

-- Open invoices: status 'open' with something still owed.
CREATE OR REPLACE VIEW ml_open_items AS
SELECT 'invoice'::text                          AS item_kind,
       i.invoice_id::bigint                     AS source_id,
       i.invoice_number::text                   AS invoice_number,
       CASE WHEN i.invoice_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'
            THEN to_char(i.invoice_date, 'YYYY-MM-DD') ELSE i.invoice_date::text END AS invoice_date,
       CASE WHEN i.due_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'
            THEN to_char(i.due_date, 'YYYY-MM-DD') ELSE i.due_date::text END AS due_date,
       c.client_number::text                    AS client_number,
       c.name::text                             AS client_name,
       m.matter_number::text                    AS matter_number,
       m.description::text                      AS matter_description,
       i.currency::text                         AS currency,
       i.total_minor::bigint                    AS total_minor,
       i.balance_minor::bigint                  AS balance_minor,
       i.status::text                           AS status
FROM invoice AS i
JOIN matter AS m ON m.matter_id = i.matter_id
JOIN client AS c ON c.client_id = m.client_id
WHERE i.status = 'open' AND i.balance_minor > 0;

-- One row per matter with at least one trust entry; the balance is the sum of its entries (may be 0).
-- A matter's trust entries share one currency (schema.sql enforces it), so min() picks that currency.
-- sum() of BIGINT is NUMERIC in PostgreSQL: cast back, money stays BIGINT.
CREATE OR REPLACE VIEW ml_trust_balances AS
SELECT 'trust'::text                            AS item_kind,
       m.matter_id::bigint                      AS source_id,
       NULL::text                               AS invoice_number,
       NULL::text                               AS invoice_date,
       NULL::text                               AS due_date,
       c.client_number::text                    AS client_number,
       c.name::text                             AS client_name,
       m.matter_number::text                    AS matter_number,
       m.description::text                      AS matter_description,
       t.currency::text                         AS currency,
       NULL::bigint                             AS total_minor,
       t.balance_minor::bigint                  AS balance_minor,
       'trust'::text                            AS status
FROM matter AS m
JOIN client AS c ON c.client_id = m.client_id
JOIN LATERAL (SELECT min(e.currency) AS currency, sum(e.amount_minor) AS balance_minor, count(*) AS entries
              FROM trust_entry AS e
              WHERE e.matter_id = m.matter_id) AS t ON t.entries > 0;

-- One row per stamped ml_change row, with the entity's state as it is now. op is 'upsert' when the
-- entity is an item now (it would appear in ml_open_items or ml_trust_balances), else 'remove' (deleted,
-- paid, void, closed, zero balance, no trust entries left, matter or client gone); a 'remove' row
-- carries only change_id, op, item_kind and source_id, every other column is NULL. Rows not yet stamped
-- by ml_change_high_water() are not here: they may still belong to an uncommitted transaction's future.
CREATE OR REPLACE VIEW ml_changes AS
SELECT ch.change_id                                                 AS change_id,
       CASE WHEN it.source_id IS NULL THEN 'remove' ELSE 'upsert' END AS op,
       ch.entity                                                    AS item_kind,
       ch.entity_id                                                 AS source_id,
       it.invoice_number                                            AS invoice_number,
       it.invoice_date                                              AS invoice_date,
       it.due_date                                                  AS due_date,
       it.client_number                                             AS client_number,
       it.client_name                                               AS client_name,
       it.matter_number                                             AS matter_number,
       it.matter_description                                        AS matter_description,
       it.currency                                                  AS currency,
       it.total_minor                                               AS total_minor,
       it.balance_minor                                             AS balance_minor,
       it.status                                                    AS status
FROM ml_change AS ch
LEFT JOIN LATERAL (
    SELECT o.source_id, o.invoice_number, o.invoice_date, o.due_date, o.client_number, o.client_name,
           o.matter_number, o.matter_description, o.currency, o.total_minor, o.balance_minor, o.status
    FROM ml_open_items AS o
    WHERE ch.entity = 'invoice' AND o.source_id = ch.entity_id
    UNION ALL
    SELECT t.source_id, t.invoice_number, t.invoice_date, t.due_date, t.client_number, t.client_name,
           t.matter_number, t.matter_description, t.currency, t.total_minor, t.balance_minor, t.status
    FROM ml_trust_balances AS t
    WHERE ch.entity = 'trust' AND t.source_id = ch.entity_id
) AS it ON true
WHERE ch.change_id IS NOT NULL;

-- The outcome of every posting this database has seen. receipt_id is text, as the agent reads it: the
-- receipt's id, or for a reversal 'R-' and the receipt_reversal_id, so a reversal is never taken for a
-- receipt.
CREATE OR REPLACE VIEW ml_posting_result AS
SELECT r.posting_uuid::text     AS posting_uuid,
       'posted'::text           AS status,
       r.receipt_id::text       AS receipt_id,
       NULL::text               AS reason
FROM receipt AS r
UNION ALL
SELECT v.posting_uuid::text     AS posting_uuid,
       'posted'::text           AS status,
       'R-' || v.receipt_reversal_id::text AS receipt_id,
       NULL::text               AS reason
FROM receipt_reversal AS v
UNION ALL
SELECT x.posting_uuid           AS posting_uuid,
       'rejected'::text         AS status,
       NULL::text               AS receipt_id,
       x.reason                 AS reason
FROM ml_posting_rejection AS x
WHERE NOT EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = x.posting_uuid)
  AND NOT EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = x.posting_uuid);

-- ---------------------------------------------------------------------------------------------------
-- Read operations. Each is one SELECT in a LANGUAGE sql STABLE function, neither STRICT nor SECURITY
-- DEFINER nor with a SET clause: PostgreSQL then inlines it into the calling query, the keyset
-- condition and LIMIT reach the index, and a cursor streams the rows. (A PL/pgSQL RETURN QUERY would
-- build the whole result before the first row.) Pages: source_id > after ORDER BY source_id LIMIT n.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ml_open_items(after_source_id bigint, page_limit bigint)
RETURNS TABLE (item_kind text, source_id bigint, invoice_number text, invoice_date text, due_date text,
               client_number text, client_name text, matter_number text, matter_description text,
               currency text, total_minor bigint, balance_minor bigint, status text)
LANGUAGE sql STABLE AS $$
    SELECT o.item_kind, o.source_id, o.invoice_number, o.invoice_date, o.due_date, o.client_number,
           o.client_name, o.matter_number, o.matter_description, o.currency, o.total_minor,
           o.balance_minor, o.status
    FROM ml_open_items AS o
    WHERE o.source_id > after_source_id
    ORDER BY o.source_id
    LIMIT page_limit
$$;

CREATE OR REPLACE FUNCTION ml_trust_balances(after_source_id bigint, page_limit bigint)
RETURNS TABLE (item_kind text, source_id bigint, invoice_number text, invoice_date text, due_date text,
               client_number text, client_name text, matter_number text, matter_description text,
               currency text, total_minor bigint, balance_minor bigint, status text)
LANGUAGE sql STABLE AS $$
    SELECT t.item_kind, t.source_id, t.invoice_number, t.invoice_date, t.due_date, t.client_number,
           t.client_name, t.matter_number, t.matter_description, t.currency, t.total_minor,
           t.balance_minor, t.status
    FROM ml_trust_balances AS t
    WHERE t.source_id > after_source_id
    ORDER BY t.source_id
    LIMIT page_limit
$$;

-- Changes with since < change_id <= upto, where upto is a value ml_change_high_water() returned.
CREATE OR REPLACE FUNCTION ml_changes_since(since bigint, upto bigint, page_limit bigint)
RETURNS TABLE (change_id bigint, op text, item_kind text, source_id bigint, invoice_number text,
               invoice_date text, due_date text, client_number text, client_name text,
               matter_number text, matter_description text, currency text, total_minor bigint,
               balance_minor bigint, status text)
LANGUAGE sql STABLE AS $$
    SELECT c.change_id, c.op, c.item_kind, c.source_id, c.invoice_number, c.invoice_date, c.due_date,
           c.client_number, c.client_name, c.matter_number, c.matter_description, c.currency,
           c.total_minor, c.balance_minor, c.status
    FROM ml_changes AS c
    WHERE c.change_id > since AND c.change_id <= upto
    ORDER BY c.change_id
    LIMIT page_limit
$$;

-- One row, or none when the database has never seen the posting.
CREATE OR REPLACE FUNCTION ml_posting_result(wanted_uuid text)
RETURNS TABLE (posting_uuid text, status text, receipt_id text, reason text)
LANGUAGE sql STABLE AS $$
    SELECT r.posting_uuid, r.status, r.receipt_id, r.reason
    FROM ml_posting_result AS r
    WHERE r.posting_uuid = wanted_uuid
$$;

-- ---------------------------------------------------------------------------------------------------
-- ml_change_high_water(): stamp the committed changes that have no change_id yet, in seq_id order,
-- at most 100,000 per call, and return the highest change_id (0 when there is none). See "Change
-- capture" at the top. VOLATILE, so each statement inside sees every transaction committed before it.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ml_change_high_water() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF pg_try_advisory_xact_lock(1835819880, 0) THEN
        -- The inner SELECT picks and locks the rows in seq_id order; nextval() runs in the middle
        -- level, row by row in that order, so change_id rises with seq_id.
        UPDATE ml_change AS ch
        SET change_id = s.change_id
        FROM (SELECT p.seq_id, nextval('ml_change_id_seq') AS change_id
              FROM (SELECT u.seq_id
                    FROM ml_change AS u
                    WHERE u.change_id IS NULL
                    ORDER BY u.seq_id
                    LIMIT 100000
                    FOR UPDATE SKIP LOCKED) AS p
              ORDER BY p.seq_id) AS s
        WHERE ch.seq_id = s.seq_id;
    END IF;
    RETURN COALESCE((SELECT max(x.change_id) FROM ml_change AS x), 0);
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Validation helpers (pure, inlined into the callers).
-- ---------------------------------------------------------------------------------------------------

-- A real calendar date written exactly as YYYY-MM-DD (2026-02-30 is not). Year 0000 does not exist in
-- PostgreSQL's calendar, so it is not a date here either.
CREATE OR REPLACE FUNCTION ml_is_date(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN value ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' AND substr(value, 1, 4) <> '0000'
        THEN substr(value, 9, 2)::integer
             <= extract(day FROM make_date(substr(value, 1, 4)::integer, substr(value, 6, 2)::integer, 1)
                                 + interval '1 month' - interval '1 day')
        ELSE false
    END
$$;

-- An amount: a JSON integer (no fraction, no exponent, not a string) from 1 to 999 999 999 999 999.
-- It takes json, not jsonb, because jsonb would read 1e2 as 100; the json type keeps the number as
-- written, so 100.00 and 1e2 are refused as SQLite's json_type() refuses them.
CREATE OR REPLACE FUNCTION ml_is_amount(value json) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN json_typeof(value) = 'number' AND value::text ~ '^-?[0-9]+$'
        THEN value::text::numeric BETWEEN 1 AND 999999999999999
        ELSE false
    END
$$;

-- ---------------------------------------------------------------------------------------------------
-- ml_apply_posting(posting): apply one posting, exactly once, in the caller's transaction.
--
--   CALL ml_apply_posting(?)                         -- inside the agent's transaction
--   SELECT * FROM ml_posting_result(?)
--
-- The posting is one JSON object (docs/contract.md, "apply_posting"). The procedure:
--   a) does nothing at all when the posting_uuid is already posted or rejected (replay); concurrent
--      calls with one posting_uuid queue on an advisory lock, so the second sees the first's outcome;
--   b) checks everything, in the order listed in docs/contract.md, and stops at the first problem with
--      RAISE EXCEPTION 'ML001 <code>' USING ERRCODE = 'ML001', before anything is written;
--   c) writes the receipt, one receipt_allocation per line, pays down the invoices and books trust
--      deposits; or, for a reversal (a posting whose "reverses" names the posting it gives money back
--      from), one receipt_reversal, one receipt_reversal_line per line, gives the amounts back to the
--      invoices (a paid one is open again) and withdraws them from the trust ledgers. The change
--      triggers record the invoice and trust changes in ml_change.
-- A reversal runs checks 1 to 8, 17 to 20, 11 (duplicate_line) and 21 to 26 of
-- docs/contract.md section 7 in place of 9 to 16. It locks the original receipt (FOR NO KEY UPDATE) before
-- it reads what earlier reversals took back, so two reversals of one posting take turns, then the
-- invoices and matters of its lines, in the order ml_apply_posting always uses.
-- The invoices it pays are locked (FOR NO KEY UPDATE, in invoice_id order, so two postings never
-- deadlock on each other) before their status, currency and balance are checked, and the matters of
-- trust lines likewise before their ledger currency is: nothing checked can change before it is written.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_apply_posting(posting text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    raw             json;       -- the posting as written (numbers exactly as sent)
    doc             jsonb;
    v_uuid          text;
    v_account_id    bigint;
    v_account_type  text;
    v_account_cur   text;
    v_client_id     bigint;
    v_receipt_id    bigint;
    v_reverses      text;       -- the posting a reversal gives money back from; NULL: not a reversal
    v_original      receipt%ROWTYPE;
    v_reversal_id   bigint;
    -- A reversal's lines, in its order: the original's allocation line each takes back from (NULL when
    -- there is none), the amount, and that line's kind, invoice or matter and amount.
    l_allocation    bigint[];
    l_amount        bigint[];
    l_given         bigint[];
    l_invoice_id    bigint[];
    l_matter_id     bigint[];
BEGIN
    -- The posting must at least be a JSON object with a text posting_uuid to be looked up.
    BEGIN
        raw := posting::json;
        doc := raw::jsonb;
    EXCEPTION WHEN data_exception THEN
        doc := NULL;
    END;
    IF doc IS NULL OR jsonb_typeof(doc) <> 'object'
       OR jsonb_typeof(doc -> 'posting_uuid') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'ML001 %', 'bad_posting' USING ERRCODE = 'ML001';
    END IF;
    v_uuid := doc ->> 'posting_uuid';

    -- a) Replay: the first answer stands, whatever this copy of the posting says.
    PERFORM pg_advisory_xact_lock(1835823215, hashtext(v_uuid));
    IF EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = v_uuid)
       OR EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = v_uuid)
       OR EXISTS (SELECT 1 FROM ml_posting_rejection AS x WHERE x.posting_uuid = v_uuid) THEN
        RETURN;
    END IF;

    -- b) Validation. Shape first: a canonical lower-case UUID (so one posting cannot arrive under two
    -- spellings), a real date, text fields, 1 to 1000 allocation lines each naming what it pays.
    -- (Separate IFs: SQL does not promise to evaluate OR from left to right, and the array functions
    -- fail on anything but an array.)
    IF v_uuid !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       OR jsonb_typeof(doc -> 'received_on') IS DISTINCT FROM 'string'
       OR NOT ml_is_date(doc ->> 'received_on')
       OR jsonb_typeof(doc -> 'account_number') IS DISTINCT FROM 'string'
       OR jsonb_typeof(doc -> 'client_number') IS DISTINCT FROM 'string'
       OR jsonb_typeof(doc -> 'currency') IS DISTINCT FROM 'string'
       OR (doc ->> 'currency') !~ '^[A-Z]{3}$'
       OR COALESCE(jsonb_typeof(doc -> 'payer_name'), 'null') NOT IN ('string', 'null')
       OR COALESCE(jsonb_typeof(doc -> 'payer_email'), 'null') NOT IN ('string', 'null')
       OR COALESCE(jsonb_typeof(doc -> 'ar_message'), 'null') NOT IN ('string', 'null')
       OR COALESCE(jsonb_typeof(doc -> 'processor_txn'), 'null') NOT IN ('string', 'null')
       OR COALESCE(jsonb_typeof(doc -> 'reverses'), 'null') NOT IN ('string', 'null')
       OR jsonb_typeof(doc -> 'allocations') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'ML001 %', 'bad_posting' USING ERRCODE = 'ML001';
    END IF;
    -- "reverses": null or missing, or the canonical UUID of another posting.
    v_reverses := doc ->> 'reverses';
    IF v_reverses !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' OR v_reverses = v_uuid THEN
        RAISE EXCEPTION 'ML001 %', 'bad_posting' USING ERRCODE = 'ML001';
    END IF;
    IF jsonb_array_length(doc -> 'allocations') NOT BETWEEN 1 AND 1000
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                  WHERE jsonb_typeof(a.line) <> 'object'
                     OR NOT ((a.line ->> 'kind' IS NOT DISTINCT FROM 'invoice'
                              AND jsonb_typeof(a.line -> 'invoice_number') IS NOT DISTINCT FROM 'string')
                          OR (a.line ->> 'kind' IS NOT DISTINCT FROM 'trust'
                              AND jsonb_typeof(a.line -> 'matter_number') IS NOT DISTINCT FROM 'string')))
    THEN
        RAISE EXCEPTION 'ML001 %', 'bad_posting' USING ERRCODE = 'ML001';
    END IF;

    SELECT b.bank_account_id, b.account_type, b.currency
    INTO v_account_id, v_account_type, v_account_cur
    FROM bank_account AS b
    WHERE b.account_number = doc ->> 'account_number';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ML001 %', 'unknown_account' USING ERRCODE = 'ML001';
    END IF;

    SELECT c.client_id INTO v_client_id
    FROM client AS c
    WHERE c.client_number = doc ->> 'client_number';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ML001 %', 'client_not_found' USING ERRCODE = 'ML001';
    END IF;

    -- Amounts are JSON integers (never 250.00 or "25000") from 1 to 999 999 999 999 999. The cap keeps
    -- the sum of up to 1000 lines far from BIGINT overflow, which would be an SQL error, not an answer.
    IF NOT ml_is_amount(raw -> 'amount_minor')
       OR EXISTS (SELECT 1 FROM json_array_elements(raw -> 'allocations') AS a(line)
                  WHERE NOT ml_is_amount(a.line -> 'amount_minor')) THEN
        RAISE EXCEPTION 'ML001 %', 'bad_amount' USING ERRCODE = 'ML001';
    END IF;

    IF (SELECT sum((a.line ->> 'amount_minor')::bigint)
        FROM jsonb_array_elements(doc -> 'allocations') AS a(line)) <> (doc ->> 'amount_minor')::bigint THEN
        RAISE EXCEPTION 'ML001 %', 'allocation_sum_mismatch' USING ERRCODE = 'ML001';
    END IF;

    IF v_account_cur IS DISTINCT FROM doc ->> 'currency' THEN
        RAISE EXCEPTION 'ML001 %', 'currency_mismatch' USING ERRCODE = 'ML001';
    END IF;

    -- Invoices are paid into OPERATING accounts and trust deposits go to TRUST accounts; one posting is
    -- one deposit into one account, so it never mixes the two.
    IF v_account_type IS DISTINCT FROM 'OPERATING'
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                   WHERE a.line ->> 'kind' = 'invoice') THEN
        RAISE EXCEPTION 'ML001 %', 'operating_account_required' USING ERRCODE = 'ML001';
    END IF;

    IF v_account_type IS DISTINCT FROM 'TRUST'
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                   WHERE a.line ->> 'kind' = 'trust') THEN
        RAISE EXCEPTION 'ML001 %', 'trust_account_required' USING ERRCODE = 'ML001';
    END IF;

    IF v_reverses IS NOT NULL THEN
        -- A reversal. 17 original_not_posted: the original is a receipt; a posting that was rejected,
        -- never arrived, or is itself a reversal has none. Locked, so reversals of it take turns.
        SELECT r.* INTO v_original
        FROM receipt AS r
        WHERE r.posting_uuid = v_reverses
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ML001 %', 'original_not_posted' USING ERRCODE = 'ML001';
        END IF;

        -- 18-20: the money goes back out of the account it came into, for the client that paid, in
        -- its currency.
        IF v_original.bank_account_id <> v_account_id THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_account_mismatch' USING ERRCODE = 'ML001';
        END IF;
        IF v_original.client_id <> v_client_id THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_client_mismatch' USING ERRCODE = 'ML001';
        END IF;
        IF v_original.currency IS DISTINCT FROM doc ->> 'currency' THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_currency_mismatch' USING ERRCODE = 'ML001';
        END IF;

        -- 11 duplicate_line
        IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                   GROUP BY a.line ->> 'kind',
                            CASE a.line ->> 'kind' WHEN 'invoice' THEN a.line ->> 'invoice_number'
                                                   ELSE a.line ->> 'matter_number' END
                   HAVING count(*) > 1) THEN
            RAISE EXCEPTION 'ML001 %', 'duplicate_line' USING ERRCODE = 'ML001';
        END IF;

        -- 21 reversal_line_not_in_original: each line takes back from the original's line of the
        -- same kind and invoice or matter number.
        SELECT array_agg(o.receipt_allocation_id ORDER BY a.n),
               array_agg((a.line ->> 'amount_minor')::bigint ORDER BY a.n),
               array_agg(o.amount_minor ORDER BY a.n),
               array_agg(o.invoice_id ORDER BY a.n),
               array_agg(o.matter_id ORDER BY a.n)
        INTO l_allocation, l_amount, l_given, l_invoice_id, l_matter_id
        FROM jsonb_array_elements(doc -> 'allocations') WITH ORDINALITY AS a(line, n)
        LEFT JOIN LATERAL (
            SELECT ra.receipt_allocation_id, ra.amount_minor, ra.invoice_id, ra.matter_id
            FROM receipt_allocation AS ra
            LEFT JOIN invoice AS i ON i.invoice_id = ra.invoice_id
            LEFT JOIN matter AS m ON m.matter_id = ra.matter_id
            WHERE ra.receipt_id = v_original.receipt_id
              AND ra.kind = a.line ->> 'kind'
              AND CASE ra.kind WHEN 'invoice' THEN i.invoice_number ELSE m.matter_number END
                  = CASE ra.kind WHEN 'invoice' THEN a.line ->> 'invoice_number' ELSE a.line ->> 'matter_number' END
            LIMIT 1) AS o ON true;
        IF array_position(l_allocation, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_line_not_in_original' USING ERRCODE = 'ML001';
        END IF;

        -- What the checks below read, and the writes change: the invoices, then the matters, each in
        -- id order, as ml_apply_posting locks them.
        PERFORM 1 FROM invoice AS i WHERE i.invoice_id = ANY (l_invoice_id) ORDER BY i.invoice_id FOR NO KEY UPDATE;
        PERFORM 1 FROM matter AS m WHERE m.matter_id = ANY (l_matter_id) ORDER BY m.matter_id FOR NO KEY UPDATE;

        -- 22 reversal_exceeds_original: this reversal and the earlier ones never take back more than
        -- a line gave.
        IF EXISTS (SELECT 1 FROM unnest(l_allocation, l_amount, l_given) AS u(allocation, amount, given)
                   WHERE u.amount + COALESCE((SELECT sum(l.amount_minor) FROM receipt_reversal_line AS l
                                              WHERE l.receipt_allocation_id = u.allocation), 0) > u.given) THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_exceeds_original' USING ERRCODE = 'ML001';
        END IF;

        -- 23 reversal_invoice_closed: a void or closed invoice takes nothing back (a paid one opens
        -- again); 24 reversal_currency_mismatch: nor one whose currency changed since; 25
        -- reversal_exceeds_invoice_total: a balance never grows above the invoice's total.
        IF EXISTS (SELECT 1 FROM unnest(l_invoice_id) AS u(invoice_id)
                   JOIN invoice AS i ON i.invoice_id = u.invoice_id
                   WHERE i.status NOT IN ('open', 'paid')) THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_invoice_closed' USING ERRCODE = 'ML001';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(l_invoice_id) AS u(invoice_id)
                   JOIN invoice AS i ON i.invoice_id = u.invoice_id
                   WHERE i.currency IS DISTINCT FROM doc ->> 'currency') THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_currency_mismatch' USING ERRCODE = 'ML001';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(l_invoice_id, l_amount) AS u(invoice_id, amount)
                   JOIN invoice AS i ON i.invoice_id = u.invoice_id
                   WHERE i.balance_minor + u.amount > i.total_minor) THEN
            RAISE EXCEPTION 'ML001 %', 'reversal_exceeds_invoice_total' USING ERRCODE = 'ML001';
        END IF;

        -- 26 trust_balance_insufficient: a withdrawal never takes a matter's trust balance below zero
        -- (DESIGN.md, money rule 5). The matters are locked, and trust_entry writers lock them too.
        IF EXISTS (SELECT 1 FROM unnest(l_matter_id, l_amount) AS u(matter_id, amount)
                   WHERE u.matter_id IS NOT NULL
                     AND COALESCE((SELECT sum(t.amount_minor) FROM trust_entry AS t
                                   WHERE t.matter_id = u.matter_id), 0) < u.amount) THEN
            RAISE EXCEPTION 'ML001 %', 'trust_balance_insufficient' USING ERRCODE = 'ML001';
        END IF;

        -- c') Apply: the reversal of the original receipt, dated the day of the refund, its lines in
        -- the reversal's order, the invoices given their amounts back (a paid one is open again), and
        -- the trust withdrawals: negative entries in the original's (TRUST) account that point at the
        -- receipt whose money they take back, so that receipt's entries net out.
        INSERT INTO receipt_reversal (posting_uuid, receipt_id, reversed_on, amount_minor, currency, ar_message,
                                      processor_txn)
        VALUES (v_uuid, v_original.receipt_id, (doc ->> 'received_on')::date, (doc ->> 'amount_minor')::bigint,
                doc ->> 'currency', doc ->> 'ar_message', doc ->> 'processor_txn')
        RETURNING receipt_reversal_id INTO v_reversal_id;

        INSERT INTO receipt_reversal_line (receipt_reversal_id, receipt_allocation_id, amount_minor)
        SELECT v_reversal_id, u.allocation, u.amount
        FROM unnest(l_allocation, l_amount) WITH ORDINALITY AS u(allocation, amount, n)
        ORDER BY u.n;

        UPDATE invoice AS i
        SET balance_minor = i.balance_minor + u.amount,
            status = CASE WHEN i.status = 'paid' THEN 'open' ELSE i.status END
        FROM unnest(l_invoice_id, l_amount) AS u(invoice_id, amount)
        WHERE i.invoice_id = u.invoice_id;

        INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
        SELECT u.matter_id, v_original.bank_account_id, (doc ->> 'received_on')::date, -u.amount,
               v_original.currency, 'reversal of ' || v_reverses, v_original.receipt_id
        FROM unnest(l_matter_id, l_amount) WITH ORDINALITY AS u(matter_id, amount, n)
        WHERE u.matter_id IS NOT NULL
        ORDER BY u.n;
        RETURN;
    END IF;

    -- From here on the checks read rows this posting will write: lock them first.
    PERFORM 1
    FROM invoice AS i
    WHERE i.invoice_number IN (SELECT a.line ->> 'invoice_number'
                               FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                               WHERE a.line ->> 'kind' = 'invoice')
    ORDER BY i.invoice_id
    FOR NO KEY UPDATE;
    PERFORM 1
    FROM matter AS m
    WHERE m.matter_number IN (SELECT a.line ->> 'matter_number'
                              FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                              WHERE a.line ->> 'kind' = 'trust')
    ORDER BY m.matter_id
    FOR NO KEY UPDATE;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               WHERE a.line ->> 'kind' = 'invoice'
                 AND NOT EXISTS (SELECT 1 FROM invoice AS i
                                 WHERE i.invoice_number = a.line ->> 'invoice_number')) THEN
        RAISE EXCEPTION 'ML001 %', 'invoice_not_found' USING ERRCODE = 'ML001';
    END IF;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               WHERE a.line ->> 'kind' = 'trust'
                 AND NOT EXISTS (SELECT 1 FROM matter AS m
                                 WHERE m.matter_number = a.line ->> 'matter_number')) THEN
        RAISE EXCEPTION 'ML001 %', 'matter_not_found' USING ERRCODE = 'ML001';
    END IF;

    -- One line per invoice and per matter: the balance check below is per line.
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               GROUP BY a.line ->> 'kind',
                        CASE a.line ->> 'kind' WHEN 'invoice' THEN a.line ->> 'invoice_number'
                                               ELSE a.line ->> 'matter_number' END
               HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'ML001 %', 'duplicate_line' USING ERRCODE = 'ML001';
    END IF;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               JOIN invoice AS i ON i.invoice_number = a.line ->> 'invoice_number'
               JOIN matter AS m ON m.matter_id = i.matter_id
               JOIN client AS c ON c.client_id = m.client_id
               WHERE a.line ->> 'kind' = 'invoice'
                 AND c.client_number IS DISTINCT FROM doc ->> 'client_number') THEN
        RAISE EXCEPTION 'ML001 %', 'invoice_client_mismatch' USING ERRCODE = 'ML001';
    END IF;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               JOIN matter AS m ON m.matter_number = a.line ->> 'matter_number'
               JOIN client AS c ON c.client_id = m.client_id
               WHERE a.line ->> 'kind' = 'trust'
                 AND c.client_number IS DISTINCT FROM doc ->> 'client_number') THEN
        RAISE EXCEPTION 'ML001 %', 'matter_client_mismatch' USING ERRCODE = 'ML001';
    END IF;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               JOIN invoice AS i ON i.invoice_number = a.line ->> 'invoice_number'
               WHERE a.line ->> 'kind' = 'invoice' AND i.status IS DISTINCT FROM 'open') THEN
        RAISE EXCEPTION 'ML001 %', 'invoice_not_open' USING ERRCODE = 'ML001';
    END IF;

    -- Invoice currency, and a matter's trust ledger currency when it already has entries.
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               JOIN invoice AS i ON i.invoice_number = a.line ->> 'invoice_number'
               WHERE a.line ->> 'kind' = 'invoice'
                 AND i.currency IS DISTINCT FROM doc ->> 'currency')
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
                  JOIN matter AS m ON m.matter_number = a.line ->> 'matter_number'
                  JOIN trust_entry AS t ON t.matter_id = m.matter_id
                  WHERE a.line ->> 'kind' = 'trust'
                    AND t.currency IS DISTINCT FROM doc ->> 'currency') THEN
        RAISE EXCEPTION 'ML001 %', 'currency_mismatch' USING ERRCODE = 'ML001';
    END IF;

    IF EXISTS (SELECT 1 FROM jsonb_array_elements(doc -> 'allocations') AS a(line)
               JOIN invoice AS i ON i.invoice_number = a.line ->> 'invoice_number'
               WHERE a.line ->> 'kind' = 'invoice'
                 AND (a.line ->> 'amount_minor')::bigint > i.balance_minor) THEN
        RAISE EXCEPTION 'ML001 %', 'amount_over_balance' USING ERRCODE = 'ML001';
    END IF;

    -- c) Apply.
    INSERT INTO receipt (posting_uuid, received_on, bank_account_id, client_id, payer_name, payer_email,
                         amount_minor, currency, ar_message, processor_txn)
    VALUES (v_uuid,
            (doc ->> 'received_on')::date,
            v_account_id,
            v_client_id,
            doc ->> 'payer_name',
            doc ->> 'payer_email',
            (doc ->> 'amount_minor')::bigint,
            doc ->> 'currency',
            doc ->> 'ar_message',
            doc ->> 'processor_txn')
    RETURNING receipt_id INTO v_receipt_id;

    -- Lines keep the posting's order. The lookups are scalar subqueries on the unique
    -- numbers: a join condition that also tests the line's kind would keep the planner from
    -- the index and scan every invoice for each posting.
    INSERT INTO receipt_allocation (receipt_id, kind, invoice_id, matter_id, amount_minor)
    SELECT v_receipt_id,
           a.line ->> 'kind',
           CASE WHEN a.line ->> 'kind' = 'invoice' THEN
               (SELECT i.invoice_id FROM invoice AS i WHERE i.invoice_number = a.line ->> 'invoice_number')
           END,
           CASE WHEN a.line ->> 'kind' = 'trust' THEN
               (SELECT m.matter_id FROM matter AS m WHERE m.matter_number = a.line ->> 'matter_number')
           END,
           (a.line ->> 'amount_minor')::bigint
    FROM jsonb_array_elements(doc -> 'allocations') WITH ORDINALITY AS a(line, n)
    ORDER BY a.n;

    -- SET expressions all see the row as it was, so both use the old balance.
    UPDATE invoice AS i
    SET balance_minor = i.balance_minor - ra.amount_minor,
        status = CASE WHEN i.balance_minor = ra.amount_minor THEN 'paid' ELSE i.status END
    FROM receipt_allocation AS ra
    WHERE ra.receipt_id = v_receipt_id AND ra.kind = 'invoice' AND i.invoice_id = ra.invoice_id;

    -- Trust deposits land in the posting's (TRUST) account, dated the day the money was received.
    INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
    SELECT ra.matter_id, r.bank_account_id, r.received_on, ra.amount_minor, r.currency,
           'matterlink receipt', r.receipt_id
    FROM receipt AS r
    JOIN receipt_allocation AS ra ON ra.receipt_id = r.receipt_id AND ra.kind = 'trust'
    WHERE r.receipt_id = v_receipt_id
    ORDER BY ra.receipt_allocation_id;
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- ml_reject_posting(posting_uuid, reason): record a business rejection after the failed apply was
-- rolled back. Idempotent: an existing rejection keeps its first reason, and a posted UUID is never
-- also recorded as rejected (the trigger above). The agent then reads ml_posting_result.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_reject_posting(rejected_uuid text, rejection_reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1835823215, hashtext(rejected_uuid));
    INSERT INTO ml_posting_rejection (posting_uuid, reason)
    SELECT rejected_uuid, rejection_reason
    WHERE NOT EXISTS (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = rejected_uuid)
      AND NOT EXISTS (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = rejected_uuid)
    ON CONFLICT (posting_uuid) DO NOTHING;
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Batches: many postings in one call, set-based.
--
--   CALL ml_apply_postings(?)                        -- a JSON array of postings, inside the transaction
--   SELECT posting_uuid, status, receipt_id, reason FROM ml_posting_results(?)   -- a JSON array of uuids
--
-- ml_apply_postings writes what CALL ml_apply_posting would write for each posting of the array, in the
-- array's order, in one transaction: receipts in that order (receipt_id rising with it), allocations in
-- (posting, line) order, each invoice paid down by the sum of its lines (one UPDATE of the row, so one
-- ml_change row per invoice where one-by-one gives one per payment), trust deposits in (posting, line)
-- order. Postings already posted or rejected are replays and are skipped, as ml_apply_posting skips
-- them. A reversal that is not a replay sends the batch to one by one (ML002, below). It never rejects
-- a posting itself: if any posting would be rejected (any ML001 check, counting
-- the earlier postings of the batch against an invoice's balance and a matter's trust currency), or the
-- batch is malformed (not a JSON array of at most 1000 objects with text posting_uuids, all different),
-- it raises 'ML002 batch_needs_one_by_one' (SQLSTATE ML002) before writing anything. The agent then
-- rolls back and applies the postings one at a time with ml_apply_posting, which names each rejection.
--
-- About fifteen statements per batch, whatever its size: the documents are parsed once into arrays,
-- each group of checks is one query over the whole batch, and the writes are one INSERT or UPDATE per
-- table. The locks are those of ml_apply_posting, taken batch-wide in one global order: the posting
-- advisory locks in hashtext order, then the invoices in invoice_id order, then the trust lines'
-- matters in matter_id order. So no posting lands twice (a batch and a single delivery of one of its
-- postings queue on its advisory lock, and the second sees the first's outcome), and a batch never
-- deadlocks with another batch or with a transaction that applies one posting. (A transaction that
-- applies several postings one by one locks their invoices posting by posting, so it can deadlock with
-- a batch, or with another such transaction, over the same invoices: PostgreSQL then aborts one with
-- 40P01, a technical failure that the agent retries.) A batch of n postings holds n advisory locks
-- until it commits; the server's lock table has room for max_locks_per_transaction x max_connections
-- (6,400 by default), ample for one agent's batches of 1000.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE PROCEDURE ml_apply_postings(postings text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET jit = off AS $$
DECLARE
    docs            jsonb;      -- the batch
    todo            jsonb;      -- its postings that are not replays, in its order
    uuids           text[];     -- the batch's posting_uuids, in its order
    replays         integer[];  -- ordinals (in the batch) of the replays
    ok              boolean;
    any_trust       boolean;
    -- One element per posting of todo, in its order.
    p_uuid          text[];
    p_received_on   date[];
    p_account_id    bigint[];
    p_client_id     bigint[];
    p_payer_name    text[];
    p_payer_email   text[];
    p_amount        bigint[];
    p_currency      text[];
    p_ar_message    text[];
    p_processor_txn text[];
    p_receipt_id    bigint[];
    -- One element per allocation line, in (posting, line) order. l_n is the posting's ordinal in todo,
    -- l_key the invoice_number or matter_number; l_invoice_id and l_matter_id are NULL for the other kind.
    l_n             integer[];
    l_kind          text[];
    l_key           text[];
    l_amount        bigint[];
    l_currency      text[];
    l_invoice_id    bigint[];
    l_matter_id     bigint[];
BEGIN
    -- A JSON array of at most 1000 objects, each with a text posting_uuid, no posting_uuid twice.
    BEGIN
        docs := postings::jsonb;
    EXCEPTION WHEN data_exception THEN
        docs := NULL;
    END;
    IF docs IS NULL OR jsonb_typeof(docs) <> 'array' OR jsonb_array_length(docs) > 1000 THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;
    IF jsonb_array_length(docs) = 0 THEN
        RETURN;
    END IF;
    SELECT bool_and(jsonb_typeof(d.doc) = 'object' AND jsonb_typeof(d.doc -> 'posting_uuid') = 'string')
               AND count(DISTINCT d.doc ->> 'posting_uuid') = count(*),
           array_agg(d.doc ->> 'posting_uuid' ORDER BY d.n)
    INTO ok, uuids
    FROM jsonb_array_elements(docs) WITH ORDINALITY AS d(doc, n);
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- a) Replays: each posting's advisory lock (that of ml_apply_posting), taken in one order by every
    -- caller, then the postings already posted or rejected drop out, whatever their copy here says.
    -- (Scalar subqueries: one index probe per posting, never a scan of all receipts.)
    PERFORM pg_advisory_xact_lock(1835823215, s.h)
    FROM (SELECT DISTINCT hashtext(u.uuid) AS h FROM unnest(uuids) AS u(uuid) ORDER BY 1) AS s;
    SELECT array_agg(u.n) INTO replays
    FROM unnest(uuids) WITH ORDINALITY AS u(uuid, n)
    WHERE (SELECT 1 FROM receipt AS r WHERE r.posting_uuid = u.uuid) IS NOT NULL
       OR (SELECT 1 FROM receipt_reversal AS v WHERE v.posting_uuid = u.uuid) IS NOT NULL
       OR (SELECT 1 FROM ml_posting_rejection AS x WHERE x.posting_uuid = u.uuid) IS NOT NULL;
    IF replays IS NULL THEN
        todo := docs;
    ELSIF cardinality(replays) = cardinality(uuids) THEN
        RETURN;
    ELSE
        todo := (SELECT jsonb_agg(d.doc ORDER BY d.n) FROM jsonb_array_elements(docs) WITH ORDINALITY AS d(doc, n)
                 WHERE d.n <> ALL (replays));
    END IF;

    -- Reversals (a "reverses" that is not null) are rare and checked against their originals:
    -- ml_apply_posting applies them, one at a time.
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(todo) AS d(doc)
               WHERE COALESCE(jsonb_typeof(d.doc -> 'reverses'), 'null') <> 'null') THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- b) The checks that read no table: bad_posting, bad_amount, allocation_sum_mismatch and
    -- duplicate_line. Nothing here raises an SQL error: CASE runs its tests in order, so no function
    -- meets a value of the wrong type. An amount is a JSON number with no fraction, 1 to
    -- 999 999 999 999 999 (numeric keeps the scale of 100.00; exponents are dealt with below).
    WITH p AS (
        SELECT d.n, d.doc,
               CASE
                   WHEN jsonb_typeof(d.doc -> 'received_on') IS DISTINCT FROM 'string'
                     OR jsonb_typeof(d.doc -> 'account_number') IS DISTINCT FROM 'string'
                     OR jsonb_typeof(d.doc -> 'client_number') IS DISTINCT FROM 'string'
                     OR jsonb_typeof(d.doc -> 'currency') IS DISTINCT FROM 'string'
                     OR COALESCE(jsonb_typeof(d.doc -> 'payer_name'), 'null') NOT IN ('string', 'null')
                     OR COALESCE(jsonb_typeof(d.doc -> 'payer_email'), 'null') NOT IN ('string', 'null')
                     OR COALESCE(jsonb_typeof(d.doc -> 'ar_message'), 'null') NOT IN ('string', 'null')
                     OR COALESCE(jsonb_typeof(d.doc -> 'processor_txn'), 'null') NOT IN ('string', 'null')
                     OR jsonb_typeof(d.doc -> 'allocations') IS DISTINCT FROM 'array'
                     OR jsonb_typeof(d.doc -> 'amount_minor') IS DISTINCT FROM 'number' THEN false
                   WHEN (d.doc ->> 'posting_uuid') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                     OR NOT ml_is_date(d.doc ->> 'received_on')
                     OR (d.doc ->> 'currency') !~ '^[A-Z]{3}$'
                     OR jsonb_array_length(d.doc -> 'allocations') NOT BETWEEN 1 AND 1000
                     OR scale((d.doc -> 'amount_minor')::numeric) <> 0
                     OR (d.doc -> 'amount_minor')::numeric NOT BETWEEN 1 AND 999999999999999 THEN false
                   ELSE true
               END AS ok
        FROM jsonb_array_elements(todo) WITH ORDINALITY AS d(doc, n)),
    l AS (
        -- amount is NULL for a line that is not an object naming what it pays, with a valid amount.
        SELECT p.n, a.line ->> 'kind' AS kind,
               CASE a.line ->> 'kind' WHEN 'invoice' THEN a.line ->> 'invoice_number'
                                      ELSE a.line ->> 'matter_number' END AS key,
               CASE WHEN jsonb_typeof(a.line) = 'object'
                         AND ((a.line ->> 'kind' = 'invoice'
                               AND jsonb_typeof(a.line -> 'invoice_number') IS NOT DISTINCT FROM 'string')
                              OR (a.line ->> 'kind' = 'trust'
                                  AND jsonb_typeof(a.line -> 'matter_number') IS NOT DISTINCT FROM 'string'))
                         AND jsonb_typeof(a.line -> 'amount_minor') = 'number'
                    THEN CASE WHEN scale((a.line -> 'amount_minor')::numeric) = 0
                                   AND (a.line -> 'amount_minor')::numeric BETWEEN 1 AND 999999999999999
                              THEN (a.line -> 'amount_minor')::numeric
                         END
               END AS amount
        FROM p CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN p.ok THEN p.doc -> 'allocations' END) AS a(line))
    SELECT NOT EXISTS (SELECT 1 FROM p WHERE NOT p.ok)
           AND NOT EXISTS (SELECT 1 FROM l WHERE l.amount IS NULL)
           AND NOT EXISTS (SELECT 1 FROM l GROUP BY l.n, l.kind, l.key HAVING count(*) > 1)
           AND NOT EXISTS (SELECT 1
                           FROM (SELECT l.n, sum(l.amount) AS total FROM l GROUP BY l.n) AS s
                           JOIN p ON p.n = s.n
                           WHERE s.total <> (p.doc -> 'amount_minor')::numeric)
    INTO ok;
    -- jsonb reads 1e2 as 100, so an amount written with an exponent (which ml_apply_posting refuses)
    -- is looked for in the text: where a number with an exponent may be, the amounts are read again
    -- as written (json), as ml_apply_posting reads them.
    IF ok AND postings ~ '[,:[][[:space:]]*-?[0-9]+(\.[0-9]+)?[eE]' THEN
        ok := NOT EXISTS (
            SELECT 1
            FROM json_array_elements(postings::json) WITH ORDINALITY AS d(doc, n)
            WHERE CASE WHEN d.n = ANY (replays) THEN false
                       WHEN json_typeof(d.doc -> 'allocations') IS DISTINCT FROM 'array' THEN true
                       ELSE NOT ml_is_amount(d.doc -> 'amount_minor')
                            OR EXISTS (SELECT 1 FROM json_array_elements(d.doc -> 'allocations') AS a(line)
                                       WHERE NOT ml_is_amount(a.line -> 'amount_minor'))
                  END);
    END IF;
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- The postings, parsed (every value is now known to convert), with the checks on account and
    -- client: unknown_account, client_not_found, currency_mismatch (account), operating_account_required
    -- and trust_account_required. Look-ups by unique number, one index probe each: a LATERAL subquery
    -- with LIMIT is not flattened into a join, which the planner could run as a hash of the whole table.
    SELECT bool_and(COALESCE(b.bank_account_id IS NOT NULL
                             AND c.client_id IS NOT NULL
                             AND b.currency = d.doc ->> 'currency'
                             AND (b.account_type = 'OPERATING'
                                  OR NOT d.doc -> 'allocations' @> '[{"kind": "invoice"}]')
                             AND (b.account_type = 'TRUST'
                                  OR NOT d.doc -> 'allocations' @> '[{"kind": "trust"}]'),
                             false)),
           array_agg(d.doc ->> 'posting_uuid' ORDER BY d.n),
           array_agg((d.doc ->> 'received_on')::date ORDER BY d.n),
           array_agg(b.bank_account_id ORDER BY d.n),
           array_agg(c.client_id ORDER BY d.n),
           array_agg(d.doc ->> 'payer_name' ORDER BY d.n),
           array_agg(d.doc ->> 'payer_email' ORDER BY d.n),
           array_agg((d.doc ->> 'amount_minor')::bigint ORDER BY d.n),
           array_agg(d.doc ->> 'currency' ORDER BY d.n),
           array_agg(d.doc ->> 'ar_message' ORDER BY d.n),
           array_agg(d.doc ->> 'processor_txn' ORDER BY d.n)
    INTO ok, p_uuid, p_received_on, p_account_id, p_client_id, p_payer_name, p_payer_email, p_amount,
         p_currency, p_ar_message, p_processor_txn
    FROM jsonb_array_elements(todo) WITH ORDINALITY AS d(doc, n)
    LEFT JOIN LATERAL (SELECT ba.bank_account_id, ba.account_type, ba.currency FROM bank_account AS ba
                       WHERE ba.account_number = d.doc ->> 'account_number' LIMIT 1) AS b ON true
    LEFT JOIN LATERAL (SELECT cl.client_id FROM client AS cl
                       WHERE cl.client_number = d.doc ->> 'client_number' LIMIT 1) AS c ON true;
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- The lines.
    SELECT array_agg(d.n ORDER BY d.n, a.ln),
           array_agg(a.line ->> 'kind' ORDER BY d.n, a.ln),
           array_agg(CASE a.line ->> 'kind' WHEN 'invoice' THEN a.line ->> 'invoice_number'
                                            ELSE a.line ->> 'matter_number' END ORDER BY d.n, a.ln),
           array_agg((a.line ->> 'amount_minor')::bigint ORDER BY d.n, a.ln),
           array_agg(d.doc ->> 'currency' ORDER BY d.n, a.ln),
           bool_or(a.line ->> 'kind' = 'trust')
    INTO l_n, l_kind, l_key, l_amount, l_currency, any_trust
    FROM jsonb_array_elements(todo) WITH ORDINALITY AS d(doc, n)
    CROSS JOIN LATERAL jsonb_array_elements(d.doc -> 'allocations') WITH ORDINALITY AS a(line, ln);

    -- From here on the checks read rows the batch will write: lock them first, in one order.
    PERFORM 1
    FROM invoice AS i
    WHERE i.invoice_number = ANY (SELECT u.key FROM unnest(l_kind, l_key) AS u(kind, key) WHERE u.kind = 'invoice')
    ORDER BY i.invoice_id
    FOR NO KEY UPDATE;
    IF any_trust THEN
        PERFORM 1
        FROM matter AS m
        WHERE m.matter_number = ANY (SELECT u.key FROM unnest(l_kind, l_key) AS u(kind, key) WHERE u.kind = 'trust')
        ORDER BY m.matter_id
        FOR NO KEY UPDATE;
    END IF;

    -- Each line against its invoice or matter: invoice_not_found, matter_not_found,
    -- invoice_client_mismatch, matter_client_mismatch, invoice_not_open, currency_mismatch (invoice)
    -- and amount_over_balance, where the lines of the whole batch on one invoice must fit in its
    -- balance together (amounts are positive, so that is each posting fitting in turn).
    SELECT bool_and(r.ok), array_agg(r.invoice_id ORDER BY r.o), array_agg(r.matter_id ORDER BY r.o)
    INTO ok, l_invoice_id, l_matter_id
    FROM (SELECT l.o, x.invoice_id, y.matter_id,
                 COALESCE(CASE l.kind
                              WHEN 'invoice' THEN x.invoice_id IS NOT NULL
                                                  AND x.client_id = p_client_id[l.n]
                                                  AND x.status = 'open'
                                                  AND x.currency = l.currency
                                                  AND sum(l.amount) OVER (PARTITION BY x.invoice_id)
                                                      <= x.balance_minor
                              ELSE y.matter_id IS NOT NULL AND y.client_id = p_client_id[l.n]
                          END, false) AS ok
          FROM unnest(l_n, l_kind, l_key, l_amount, l_currency) WITH ORDINALITY AS l(n, kind, key, amount, currency, o)
          LEFT JOIN LATERAL (SELECT i.invoice_id, i.status, i.currency, i.balance_minor, m.client_id
                             FROM invoice AS i JOIN matter AS m ON m.matter_id = i.matter_id
                             WHERE l.kind = 'invoice' AND i.invoice_number = l.key
                             LIMIT 1) AS x ON true
          LEFT JOIN LATERAL (SELECT m.matter_id, m.client_id FROM matter AS m
                             WHERE l.kind = 'trust' AND m.matter_number = l.key
                             LIMIT 1) AS y ON true) AS r;
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- currency_mismatch (trust): a matter's ledger keeps one currency, counting the batch's deposits.
    IF any_trust AND EXISTS (
        SELECT 1
        FROM (SELECT u.matter_id, u.currency FROM unnest(l_matter_id, l_currency) AS u(matter_id, currency)
              WHERE u.matter_id IS NOT NULL
              UNION
              SELECT t.matter_id, t.currency FROM trust_entry AS t WHERE t.matter_id = ANY (l_matter_id)) AS c
        GROUP BY c.matter_id
        HAVING count(DISTINCT c.currency) > 1) THEN
        RAISE EXCEPTION 'ML002 batch_needs_one_by_one' USING ERRCODE = 'ML002';
    END IF;

    -- c) Apply: receipts in the batch's order, their lines, the invoices, the trust deposits.
    WITH written AS (
        INSERT INTO receipt (posting_uuid, received_on, bank_account_id, client_id, payer_name, payer_email,
                             amount_minor, currency, ar_message, processor_txn)
        SELECT p.uuid, p.received_on, p.account_id, p.client_id, p.payer_name, p.payer_email, p.amount,
               p.currency, p.ar_message, p.processor_txn
        FROM unnest(p_uuid, p_received_on, p_account_id, p_client_id, p_payer_name, p_payer_email, p_amount,
                    p_currency, p_ar_message, p_processor_txn) WITH ORDINALITY
             AS p(uuid, received_on, account_id, client_id, payer_name, payer_email, amount, currency,
                  ar_message, processor_txn, n)
        ORDER BY p.n
        RETURNING receipt_id, posting_uuid)
    SELECT array_agg(w.receipt_id ORDER BY u.n) INTO p_receipt_id
    FROM written AS w
    JOIN unnest(p_uuid) WITH ORDINALITY AS u(uuid, n) ON u.uuid = w.posting_uuid;

    INSERT INTO receipt_allocation (receipt_id, kind, invoice_id, matter_id, amount_minor)
    SELECT p_receipt_id[l.n], l.kind, l.invoice_id, l.matter_id, l.amount
    FROM unnest(l_n, l_kind, l_invoice_id, l_matter_id, l_amount) WITH ORDINALITY
         AS l(n, kind, invoice_id, matter_id, amount, o)
    ORDER BY l.o;

    -- One UPDATE per invoice, by its batch total. SET expressions all see the row as it was.
    UPDATE invoice AS i
    SET balance_minor = i.balance_minor - s.amount,
        status = CASE WHEN i.balance_minor = s.amount THEN 'paid' ELSE i.status END
    FROM (SELECT u.invoice_id, sum(u.amount)::bigint AS amount
          FROM unnest(l_invoice_id, l_amount) AS u(invoice_id, amount)
          WHERE u.invoice_id IS NOT NULL
          GROUP BY u.invoice_id) AS s
    WHERE i.invoice_id = s.invoice_id;

    IF any_trust THEN
        INSERT INTO trust_entry (matter_id, bank_account_id, entry_date, amount_minor, currency, memo, receipt_id)
        SELECT l.matter_id, p_account_id[l.n], p_received_on[l.n], l.amount, l.currency, 'matterlink receipt',
               p_receipt_id[l.n]
        FROM unnest(l_n, l_matter_id, l_amount, l_currency) WITH ORDINALITY AS l(n, matter_id, amount, currency, o)
        WHERE l.matter_id IS NOT NULL
        ORDER BY l.o;
    END IF;
END;
$$;

-- The stored result of each posting_uuid of a JSON array that has one (no row for the others), in no
-- particular order. Inlined like ml_posting_result: = ANY of an array reaches the unique indexes.
CREATE OR REPLACE FUNCTION ml_posting_results(uuids text)
RETURNS TABLE (posting_uuid text, status text, receipt_id text, reason text)
LANGUAGE sql STABLE AS $$
    SELECT r.posting_uuid, r.status, r.receipt_id, r.reason
    FROM ml_posting_result AS r
    WHERE r.posting_uuid = ANY (ARRAY(SELECT jsonb_array_elements_text(uuids::jsonb)))
$$;

-- ---------------------------------------------------------------------------------------------------
-- Search indexes (docs/contract.md 5.8). A search compares LOWER(column) LIKE LOWER(pattern): exact and
-- prefix matches on numbers use the case-folded text_pattern_ops indexes; "contains" on client names and
-- matter descriptions uses trigram indexes when the pg_trgm extension can be created (it ships with
-- PostgreSQL and is trusted from 13 on, so the database owner may create it). Without it those searches
-- read the client and matter tables, which still works, more slowly.
-- ---------------------------------------------------------------------------------------------------

CREATE INDEX IF NOT EXISTS ml_search_invoice_number ON invoice (lower(invoice_number) text_pattern_ops);
CREATE INDEX IF NOT EXISTS ml_search_client_number ON client (lower(client_number) text_pattern_ops);
CREATE INDEX IF NOT EXISTS ml_search_matter_number ON matter (lower(matter_number) text_pattern_ops);

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): name and description searches read whole tables', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX IF NOT EXISTS ml_search_client_name ON client USING gin (lower(name) gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS ml_search_matter_description
            ON matter USING gin (lower(description) gin_trgm_ops);
    END IF;
END
$$;

-- What searches read besides the item views (docs/contract.md 5.8): the search index with the columns
-- that criteria and filters test (the join to invoice is left out of a search that tests none of its
-- columns), and the
-- numbers, names and descriptions a criterion matches, each with its id. Views, so that a firm's
-- adapted contract maps its own columns here, and the agent needs only SELECT on them.
CREATE OR REPLACE VIEW ml_search_keys AS
SELECT s.source_id                              AS source_id,
       s.client_id                              AS client_id,
       s.matter_id                              AS matter_id,
       s.client_name_lower                      AS client_name_lower,
       s.matter_description_lower               AS matter_description_lower,
       CASE WHEN i.invoice_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'
            THEN to_char(i.invoice_date, 'YYYY-MM-DD') ELSE i.invoice_date::text END AS invoice_date,
       CASE WHEN i.due_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'
            THEN to_char(i.due_date, 'YYYY-MM-DD') ELSE i.due_date::text END AS due_date,
       i.balance_minor::bigint                  AS balance_minor
FROM ml_search_item AS s
LEFT JOIN invoice AS i ON i.invoice_id = s.source_id;

CREATE OR REPLACE VIEW ml_search_clients AS
SELECT c.client_id::bigint AS client_id, c.client_number::text AS client_number, c.name::text AS client_name
FROM client AS c;

CREATE OR REPLACE VIEW ml_search_matters AS
SELECT m.matter_id::bigint AS matter_id, m.matter_number::text AS matter_number,
       m.description::text AS matter_description
FROM matter AS m;

CREATE OR REPLACE VIEW ml_search_invoices AS
SELECT i.invoice_id::bigint AS source_id, i.invoice_number::text AS invoice_number
FROM invoice AS i;

-- Rebuild the search index where it is missing rows or holds wrong ones: on the first install of
-- version 3 it fills the table, on a rerun it finds nothing to do (or repairs). The triggers above
-- already hold their locks on invoice, matter and client, so no writer slips in between.
LOCK TABLE invoice, matter, client IN SHARE ROW EXCLUSIVE MODE;

DELETE FROM ml_search_item AS s
WHERE NOT EXISTS (SELECT 1
                  FROM invoice AS i
                  JOIN matter AS m ON m.matter_id = i.matter_id
                  JOIN client AS c ON c.client_id = m.client_id
                  WHERE i.invoice_id = s.source_id AND i.status = 'open' AND i.balance_minor > 0
                    AND m.matter_id = s.matter_id AND m.client_id = s.client_id
                    AND lower(c.name) IS NOT DISTINCT FROM s.client_name_lower
                    AND lower(m.description) IS NOT DISTINCT FROM s.matter_description_lower);

INSERT INTO ml_search_item (source_id, client_id, matter_id, client_name_lower, matter_description_lower)
SELECT i.invoice_id, m.client_id, m.matter_id, lower(c.name), lower(m.description)
FROM invoice AS i
JOIN matter AS m ON m.matter_id = i.matter_id
JOIN client AS c ON c.client_id = m.client_id
WHERE i.status = 'open' AND i.balance_minor > 0
ON CONFLICT (source_id) DO NOTHING;

ANALYZE ml_search_item;

-- ---------------------------------------------------------------------------------------------------
-- Privileges: the writing routines run with their owner's rights, so only those granted may call
-- them (see the header). Functions get EXECUTE for PUBLIC when created; REVOKE again on every run.
-- ---------------------------------------------------------------------------------------------------

REVOKE ALL ON FUNCTION ml_change_high_water() FROM PUBLIC;
REVOKE ALL ON PROCEDURE ml_apply_posting(text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE ml_reject_posting(text, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE ml_apply_postings(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION ml_invoice_change(), ml_trust_entry_change(), ml_matter_change(),
    ml_client_change(), ml_posting_rejection_posted(), ml_search_invoice_sync(), ml_search_owner_sync()
    FROM PUBLIC;

COMMIT;
