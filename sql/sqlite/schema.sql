-- matterlink reference matter-management schema (SQLite 3.40+).
--
-- A stand-in for a law firm's time & billing database: clients, matters, bank accounts, invoices,
-- trust (IOLTA) ledgers, the receipts that pay them and the reversals (refunds, voids, chargebacks)
-- that give receipts' money back. The matterlink contract (contract.sql) is installed on top of it;
-- a firm's real system has its own tables and gets the contract adapted.
--
-- Run:    sqlite3 -bail FIRM.db < sql/sqlite/schema.sql
-- Or all: sql/sample.sh --dialect sqlite --db FIRM.db
--
-- Safe to run again: every object is created IF NOT EXISTS and nothing is dropped.
-- Money is INTEGER minor units (cents) with an ISO 4217 currency code; never REAL or DECIMAL, because
-- SQLite stores a DECIMAL value with a fraction as a binary float. The typeof() checks keep floats and
-- non-numeric text out of money columns, which type affinity alone would let through.
-- Dates are TEXT 'YYYY-MM-DD'. "x IS date(x, '+0 days')" rejects bad formats and impossible dates:
-- the modifier makes date() normalise 2026-02-30 to 2026-03-02, so the comparison fails.
-- Foreign keys are enforced only on connections that enable them (PRAGMA foreign_keys = ON; the
-- SQLite ODBC driver: FKSupport=1).

-- One transaction: a failed run (with -bail) leaves the database as it was.
BEGIN;

CREATE TABLE IF NOT EXISTS client (
    client_id       INTEGER PRIMARY KEY,
    client_number   TEXT NOT NULL UNIQUE CHECK (length(client_number) BETWEEN 1 AND 32),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email           TEXT CHECK (email IS NULL OR email LIKE '_%@_%'),
    created_on      TEXT CHECK (created_on IS NULL OR created_on IS date(created_on, '+0 days'))
);

-- Staff search clients by name.
CREATE INDEX IF NOT EXISTS client_name ON client (name);

CREATE TABLE IF NOT EXISTS matter (
    matter_id       INTEGER PRIMARY KEY,
    matter_number   TEXT NOT NULL UNIQUE CHECK (length(matter_number) BETWEEN 1 AND 32),
    client_id       INTEGER NOT NULL REFERENCES client (client_id),
    description     TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 400),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_on       TEXT CHECK (opened_on IS NULL OR opened_on IS date(opened_on, '+0 days'))
);

CREATE INDEX IF NOT EXISTS matter_client ON matter (client_id);

-- Each account is TRUST (client money, IOLTA) or OPERATING (the firm's money) for good: the type
-- decides which postings may land in it, so it never changes once set (trigger below).
CREATE TABLE IF NOT EXISTS bank_account (
    bank_account_id INTEGER PRIMARY KEY,
    account_number  TEXT NOT NULL UNIQUE CHECK (length(account_number) BETWEEN 1 AND 32),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    account_type    TEXT NOT NULL CHECK (account_type IN ('TRUST', 'OPERATING')),
    currency        TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]')
);

CREATE TRIGGER IF NOT EXISTS bank_account_type_fixed
BEFORE UPDATE OF account_type ON bank_account
WHEN NEW.account_type IS NOT OLD.account_type
BEGIN
    SELECT RAISE(ABORT, 'bank_account: account_type cannot change (TRUST and OPERATING money never mix)');
END;

-- balance_minor is what is still owed; status 'paid' means nothing is.
CREATE TABLE IF NOT EXISTS invoice (
    invoice_id      INTEGER PRIMARY KEY,
    invoice_number  TEXT NOT NULL UNIQUE CHECK (length(invoice_number) BETWEEN 1 AND 32),
    matter_id       INTEGER NOT NULL REFERENCES matter (matter_id),
    invoice_date    TEXT NOT NULL CHECK (invoice_date IS date(invoice_date, '+0 days')),
    due_date        TEXT CHECK (due_date IS NULL OR (due_date IS date(due_date, '+0 days') AND due_date >= invoice_date)),
    currency        TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    total_minor     INTEGER NOT NULL CHECK (typeof(total_minor) = 'integer' AND total_minor >= 0),
    balance_minor   INTEGER NOT NULL CHECK (typeof(balance_minor) = 'integer' AND balance_minor >= 0
                                            AND balance_minor <= total_minor),
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void', 'closed')),
    CHECK (status <> 'paid' OR balance_minor = 0)
);

CREATE INDEX IF NOT EXISTS invoice_matter ON invoice (matter_id);

-- Receipts come before trust_entry because trust deposits point at the receipt that brought the money.
-- posting_uuid is the payment service's posting id: the UNIQUE constraint is what makes a posting
-- land at most once, whatever happens to the connection.
CREATE TABLE IF NOT EXISTS receipt (
    receipt_id      INTEGER PRIMARY KEY,
    posting_uuid    TEXT NOT NULL UNIQUE CHECK (length(posting_uuid) BETWEEN 1 AND 64),
    received_on     TEXT NOT NULL CHECK (received_on IS date(received_on, '+0 days')),
    bank_account_id INTEGER NOT NULL REFERENCES bank_account (bank_account_id),
    client_id       INTEGER NOT NULL REFERENCES client (client_id),
    payer_name      TEXT,
    payer_email     TEXT,
    amount_minor    INTEGER NOT NULL CHECK (typeof(amount_minor) = 'integer' AND amount_minor > 0),
    currency        TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    ar_message      TEXT,
    processor_txn   TEXT,
    posted_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS receipt_bank_account ON receipt (bank_account_id);
CREATE INDEX IF NOT EXISTS receipt_client ON receipt (client_id);

-- One line of a receipt: an invoice payment or a trust deposit to a matter, never both.
CREATE TABLE IF NOT EXISTS receipt_allocation (
    receipt_allocation_id INTEGER PRIMARY KEY,
    receipt_id      INTEGER NOT NULL REFERENCES receipt (receipt_id),
    kind            TEXT NOT NULL CHECK (kind IN ('invoice', 'trust')),
    invoice_id      INTEGER REFERENCES invoice (invoice_id),
    matter_id       INTEGER REFERENCES matter (matter_id),
    amount_minor    INTEGER NOT NULL CHECK (typeof(amount_minor) = 'integer' AND amount_minor > 0),
    CHECK ((kind = 'invoice' AND invoice_id IS NOT NULL AND matter_id IS NULL)
        OR (kind = 'trust' AND matter_id IS NOT NULL AND invoice_id IS NULL))
);

CREATE INDEX IF NOT EXISTS receipt_allocation_receipt ON receipt_allocation (receipt_id);
CREATE INDEX IF NOT EXISTS receipt_allocation_invoice ON receipt_allocation (invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS receipt_allocation_matter ON receipt_allocation (matter_id) WHERE matter_id IS NOT NULL;

-- A reversal gives money of a receipt back: a refund, void or chargeback at the payment processor.
-- The receipt is never edited. Each reversal is a row of its own, keyed by the posting_uuid of the
-- reversing posting (UNIQUE, as a receipt's is), and its lines say how much each allocation line of
-- the receipt gave back. A receipt's net is its amount minus its reversals' amounts, and an
-- allocation line's net is its amount minus its reversal lines' amounts. reversed_on is the day of
-- the refund, void or chargeback; the money leaves the receipt's own bank account, in its currency.
CREATE TABLE IF NOT EXISTS receipt_reversal (
    receipt_reversal_id INTEGER PRIMARY KEY,
    posting_uuid    TEXT NOT NULL UNIQUE CHECK (length(posting_uuid) BETWEEN 1 AND 64),
    receipt_id      INTEGER NOT NULL REFERENCES receipt (receipt_id),
    reversed_on     TEXT NOT NULL CHECK (reversed_on IS date(reversed_on, '+0 days')),
    amount_minor    INTEGER NOT NULL CHECK (typeof(amount_minor) = 'integer' AND amount_minor > 0),
    currency        TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    ar_message      TEXT,
    processor_txn   TEXT,
    posted_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS receipt_reversal_receipt ON receipt_reversal (receipt_id);

-- One line of a reversal: what it takes back from one allocation line of the reversed receipt (an
-- invoice payment given back to the invoice's balance, or a trust deposit withdrawn from the ledger).
CREATE TABLE IF NOT EXISTS receipt_reversal_line (
    receipt_reversal_line_id INTEGER PRIMARY KEY,
    receipt_reversal_id   INTEGER NOT NULL REFERENCES receipt_reversal (receipt_reversal_id),
    receipt_allocation_id INTEGER NOT NULL REFERENCES receipt_allocation (receipt_allocation_id),
    amount_minor          INTEGER NOT NULL CHECK (typeof(amount_minor) = 'integer' AND amount_minor > 0)
);

CREATE INDEX IF NOT EXISTS receipt_reversal_line_reversal ON receipt_reversal_line (receipt_reversal_id);
CREATE INDEX IF NOT EXISTS receipt_reversal_line_allocation ON receipt_reversal_line (receipt_allocation_id);

-- The trust ledger: deposits are positive, disbursements negative, a zero entry means nothing.
-- A matter's trust balance is the sum of its entries.
CREATE TABLE IF NOT EXISTS trust_entry (
    trust_entry_id  INTEGER PRIMARY KEY,
    matter_id       INTEGER NOT NULL REFERENCES matter (matter_id),
    bank_account_id INTEGER NOT NULL REFERENCES bank_account (bank_account_id),
    entry_date      TEXT NOT NULL CHECK (entry_date IS date(entry_date, '+0 days')),
    amount_minor    INTEGER NOT NULL CHECK (typeof(amount_minor) = 'integer' AND amount_minor <> 0),
    currency        TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    memo            TEXT,
    receipt_id      INTEGER REFERENCES receipt (receipt_id)
);

-- Covers the per-matter balance (SUM) and currency look-ups, so they never touch the table.
CREATE INDEX IF NOT EXISTS trust_entry_matter ON trust_entry (matter_id, currency, amount_minor);
CREATE INDEX IF NOT EXISTS trust_entry_bank_account ON trust_entry (bank_account_id);
CREATE INDEX IF NOT EXISTS trust_entry_receipt ON trust_entry (receipt_id) WHERE receipt_id IS NOT NULL;

-- Trust money only ever sits in a TRUST account of the entry's currency, and one matter's trust
-- ledger has one currency (otherwise its balance would add dollars to euros).
CREATE TRIGGER IF NOT EXISTS trust_entry_rules_insert
BEFORE INSERT ON trust_entry
BEGIN
    SELECT RAISE(ABORT, 'trust_entry: bank account is not a TRUST account')
    WHERE (SELECT account_type FROM bank_account WHERE bank_account_id = NEW.bank_account_id) IS NOT 'TRUST';
    SELECT RAISE(ABORT, 'trust_entry: currency differs from the bank account currency')
    WHERE (SELECT currency FROM bank_account WHERE bank_account_id = NEW.bank_account_id) IS NOT NEW.currency;
    SELECT RAISE(ABORT, 'trust_entry: the matter already has trust entries in another currency')
    WHERE EXISTS (SELECT 1 FROM trust_entry WHERE matter_id = NEW.matter_id AND currency <> NEW.currency);
END;

CREATE TRIGGER IF NOT EXISTS trust_entry_rules_update
BEFORE UPDATE OF matter_id, bank_account_id, currency ON trust_entry
BEGIN
    SELECT RAISE(ABORT, 'trust_entry: bank account is not a TRUST account')
    WHERE (SELECT account_type FROM bank_account WHERE bank_account_id = NEW.bank_account_id) IS NOT 'TRUST';
    SELECT RAISE(ABORT, 'trust_entry: currency differs from the bank account currency')
    WHERE (SELECT currency FROM bank_account WHERE bank_account_id = NEW.bank_account_id) IS NOT NEW.currency;
    SELECT RAISE(ABORT, 'trust_entry: the matter already has trust entries in another currency')
    WHERE EXISTS (SELECT 1 FROM trust_entry
                  WHERE matter_id = NEW.matter_id AND currency <> NEW.currency
                    AND trust_entry_id <> OLD.trust_entry_id);
END;

COMMIT;
