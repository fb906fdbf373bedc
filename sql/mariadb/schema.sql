-- matterlink reference matter-management schema, MariaDB dialect (MariaDB 10.6+; tested on 10.11).
--
-- A stand-in for a law firm's time & billing database: clients, matters, bank accounts, invoices,
-- trust (IOLTA) ledgers, the receipts that pay them and the reversals (refunds, voids, chargebacks)
-- that give receipts' money back. The matterlink contract (contract.sql) is installed on top of it;
-- a firm's real system has its own tables and gets the contract adapted.
-- The tables, columns and rules are those of sql/sqlite/schema.sql.
--
-- Run:    mariadb -h HOST -P PORT -u USER FIRM < sql/mariadb/schema.sql
-- Or all: sql/sample.sh --dialect mariadb ...
--
-- Safe to run again: tables and indexes are created IF NOT EXISTS and nothing is dropped; the rule
-- triggers are replaced in place. MariaDB commits DDL statement by statement, so a failed run is not
-- rolled back: fix the cause and run the script again. The mariadb client stops at the first error.
--
-- Types. Money is BIGINT minor units (cents) with an ISO 4217 currency code; never DECIMAL or a float.
-- Dates are DATE; the CHECKs refuse the zero dates and zero months or days that MariaDB accepts unless
-- the writer's sql_mode says NO_ZERO_DATE and NO_ZERO_IN_DATE. Every table is InnoDB, utf8mb4, with the
-- utf8mb4_nopad_bin collation: identifiers compare byte for byte, case and trailing spaces included,
-- exactly as SQLite compares them, and a posting can name an invoice only by its exact number.
-- Foreign keys are table constraints: InnoDB enforces them on every connection (a column-level
-- REFERENCES clause would be parsed and ignored).

SET NAMES utf8mb4;
-- The rule triggers keep the sql_mode they were created under, whatever the writer's session uses.
SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';

CREATE TABLE IF NOT EXISTS client (
    client_id       BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    client_number   VARCHAR(32) NOT NULL CHECK (CHAR_LENGTH(client_number) BETWEEN 1 AND 32),
    name            VARCHAR(200) NOT NULL CHECK (CHAR_LENGTH(name) BETWEEN 1 AND 200),
    email           VARCHAR(254) NULL CHECK (email LIKE '_%@_%'),
    created_on      DATE NULL CHECK (MONTH(created_on) > 0 AND DAYOFMONTH(created_on) > 0),
    UNIQUE KEY client_number (client_number),
    -- Staff search clients by name.
    KEY client_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS matter (
    matter_id       BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    matter_number   VARCHAR(32) NOT NULL CHECK (CHAR_LENGTH(matter_number) BETWEEN 1 AND 32),
    client_id       BIGINT NOT NULL,
    description     VARCHAR(400) NOT NULL CHECK (CHAR_LENGTH(description) BETWEEN 1 AND 400),
    status          VARCHAR(8) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_on       DATE NULL CHECK (MONTH(opened_on) > 0 AND DAYOFMONTH(opened_on) > 0),
    UNIQUE KEY matter_number (matter_number),
    KEY matter_client (client_id),
    CONSTRAINT matter_client_fk FOREIGN KEY (client_id) REFERENCES client (client_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Each account is TRUST (client money, IOLTA) or OPERATING (the firm's money) for good: the type
-- decides which postings may land in it, so it never changes once set (trigger below).
CREATE TABLE IF NOT EXISTS bank_account (
    bank_account_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account_number  VARCHAR(32) NOT NULL CHECK (CHAR_LENGTH(account_number) BETWEEN 1 AND 32),
    name            VARCHAR(200) NOT NULL CHECK (CHAR_LENGTH(name) BETWEEN 1 AND 200),
    account_type    VARCHAR(9) NOT NULL CHECK (account_type IN ('TRUST', 'OPERATING')),
    currency        CHAR(3) NOT NULL CHECK (currency REGEXP '^[A-Z]{3}$'),
    UNIQUE KEY account_number (account_number)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

DELIMITER //

CREATE OR REPLACE TRIGGER bank_account_type_fixed
BEFORE UPDATE ON bank_account
FOR EACH ROW
BEGIN
    IF NOT (NEW.account_type <=> OLD.account_type) THEN
        SIGNAL SQLSTATE '45000'
            SET MESSAGE_TEXT = 'bank_account: account_type cannot change (TRUST and OPERATING money never mix)';
    END IF;
END//

DELIMITER ;

-- balance_minor is what is still owed; status 'paid' means nothing is.
CREATE TABLE IF NOT EXISTS invoice (
    invoice_id      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    invoice_number  VARCHAR(32) NOT NULL CHECK (CHAR_LENGTH(invoice_number) BETWEEN 1 AND 32),
    matter_id       BIGINT NOT NULL,
    invoice_date    DATE NOT NULL CHECK (MONTH(invoice_date) > 0 AND DAYOFMONTH(invoice_date) > 0),
    due_date        DATE NULL CHECK (MONTH(due_date) > 0 AND DAYOFMONTH(due_date) > 0),
    currency        CHAR(3) NOT NULL CHECK (currency REGEXP '^[A-Z]{3}$'),
    total_minor     BIGINT NOT NULL CHECK (total_minor >= 0),
    balance_minor   BIGINT NOT NULL CHECK (balance_minor >= 0),
    status          VARCHAR(8) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void', 'closed')),
    CONSTRAINT invoice_due_after_date CHECK (due_date >= invoice_date),
    CONSTRAINT invoice_balance_within_total CHECK (balance_minor <= total_minor),
    CONSTRAINT invoice_paid_means_zero CHECK (status <> 'paid' OR balance_minor = 0),
    UNIQUE KEY invoice_number (invoice_number),
    KEY invoice_matter (matter_id),
    CONSTRAINT invoice_matter_fk FOREIGN KEY (matter_id) REFERENCES matter (matter_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Receipts come before trust_entry because trust deposits point at the receipt that brought the money.
-- posting_uuid is the payment service's posting id: the UNIQUE constraint is what makes a posting
-- land at most once, whatever happens to the connection. The text columns are at least as wide as the
-- payment service's caps (docs/protocol.md), so no posting fails on length. posted_at is UTC.
CREATE TABLE IF NOT EXISTS receipt (
    receipt_id      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    posting_uuid    VARCHAR(64) NOT NULL CHECK (CHAR_LENGTH(posting_uuid) BETWEEN 1 AND 64),
    received_on     DATE NOT NULL CHECK (MONTH(received_on) > 0 AND DAYOFMONTH(received_on) > 0),
    bank_account_id BIGINT NOT NULL,
    client_id       BIGINT NOT NULL,
    payer_name      VARCHAR(255) NULL,
    payer_email     VARCHAR(255) NULL,
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        CHAR(3) NOT NULL CHECK (currency REGEXP '^[A-Z]{3}$'),
    ar_message      VARCHAR(1000) NULL,
    processor_txn   VARCHAR(255) NULL,
    posted_at       DATETIME(3) NOT NULL DEFAULT (UTC_TIMESTAMP(3)),
    UNIQUE KEY posting_uuid (posting_uuid),
    KEY receipt_bank_account (bank_account_id),
    KEY receipt_client (client_id),
    CONSTRAINT receipt_bank_account_fk FOREIGN KEY (bank_account_id) REFERENCES bank_account (bank_account_id),
    CONSTRAINT receipt_client_fk FOREIGN KEY (client_id) REFERENCES client (client_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- One line of a receipt: an invoice payment or a trust deposit to a matter, never both.
CREATE TABLE IF NOT EXISTS receipt_allocation (
    receipt_allocation_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    receipt_id      BIGINT NOT NULL,
    kind            VARCHAR(8) NOT NULL CHECK (kind IN ('invoice', 'trust')),
    invoice_id      BIGINT NULL,
    matter_id       BIGINT NULL,
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    CONSTRAINT receipt_allocation_one_target
        CHECK ((kind = 'invoice' AND invoice_id IS NOT NULL AND matter_id IS NULL)
            OR (kind = 'trust' AND matter_id IS NOT NULL AND invoice_id IS NULL)),
    KEY receipt_allocation_receipt (receipt_id),
    KEY receipt_allocation_invoice (invoice_id),
    KEY receipt_allocation_matter (matter_id),
    CONSTRAINT receipt_allocation_receipt_fk FOREIGN KEY (receipt_id) REFERENCES receipt (receipt_id),
    CONSTRAINT receipt_allocation_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoice (invoice_id),
    CONSTRAINT receipt_allocation_matter_fk FOREIGN KEY (matter_id) REFERENCES matter (matter_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- A reversal gives money of a receipt back: a refund, void or chargeback at the payment processor.
-- The receipt is never edited. Each reversal is a row of its own, keyed by the posting_uuid of the
-- reversing posting (UNIQUE, as a receipt's is), and its lines say how much each allocation line of
-- the receipt gave back. A receipt's net is its amount minus its reversals' amounts, and an
-- allocation line's net is its amount minus its reversal lines' amounts. reversed_on is the day of
-- the refund, void or chargeback; the money leaves the receipt's own bank account, in its currency.
CREATE TABLE IF NOT EXISTS receipt_reversal (
    receipt_reversal_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    posting_uuid    VARCHAR(64) NOT NULL CHECK (CHAR_LENGTH(posting_uuid) BETWEEN 1 AND 64),
    receipt_id      BIGINT NOT NULL,
    reversed_on     DATE NOT NULL CHECK (MONTH(reversed_on) > 0 AND DAYOFMONTH(reversed_on) > 0),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        CHAR(3) NOT NULL CHECK (currency REGEXP '^[A-Z]{3}$'),
    ar_message      VARCHAR(1000) NULL,
    processor_txn   VARCHAR(255) NULL,
    posted_at       DATETIME(3) NOT NULL DEFAULT (UTC_TIMESTAMP(3)),
    UNIQUE KEY posting_uuid (posting_uuid),
    KEY receipt_reversal_receipt (receipt_id),
    CONSTRAINT receipt_reversal_receipt_fk FOREIGN KEY (receipt_id) REFERENCES receipt (receipt_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- One line of a reversal: what it takes back from one allocation line of the reversed receipt (an
-- invoice payment given back to the invoice's balance, or a trust deposit withdrawn from the ledger).
CREATE TABLE IF NOT EXISTS receipt_reversal_line (
    receipt_reversal_line_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    receipt_reversal_id   BIGINT NOT NULL,
    receipt_allocation_id BIGINT NOT NULL,
    amount_minor          BIGINT NOT NULL CHECK (amount_minor > 0),
    KEY receipt_reversal_line_reversal (receipt_reversal_id),
    KEY receipt_reversal_line_allocation (receipt_allocation_id),
    CONSTRAINT receipt_reversal_line_reversal_fk FOREIGN KEY (receipt_reversal_id)
        REFERENCES receipt_reversal (receipt_reversal_id),
    CONSTRAINT receipt_reversal_line_allocation_fk FOREIGN KEY (receipt_allocation_id)
        REFERENCES receipt_allocation (receipt_allocation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The trust ledger: deposits are positive, disbursements negative, a zero entry means nothing.
-- A matter's trust balance is the sum of its entries.
CREATE TABLE IF NOT EXISTS trust_entry (
    trust_entry_id  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    matter_id       BIGINT NOT NULL,
    bank_account_id BIGINT NOT NULL,
    entry_date      DATE NOT NULL CHECK (MONTH(entry_date) > 0 AND DAYOFMONTH(entry_date) > 0),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor <> 0),
    currency        CHAR(3) NOT NULL CHECK (currency REGEXP '^[A-Z]{3}$'),
    memo            VARCHAR(400) NULL,
    receipt_id      BIGINT NULL,
    -- Covers the per-matter balance (SUM) and currency look-ups, so they never touch the table.
    KEY trust_entry_matter (matter_id, currency, amount_minor),
    KEY trust_entry_bank_account (bank_account_id),
    KEY trust_entry_receipt (receipt_id),
    CONSTRAINT trust_entry_matter_fk FOREIGN KEY (matter_id) REFERENCES matter (matter_id),
    CONSTRAINT trust_entry_bank_account_fk FOREIGN KEY (bank_account_id) REFERENCES bank_account (bank_account_id),
    CONSTRAINT trust_entry_receipt_fk FOREIGN KEY (receipt_id) REFERENCES receipt (receipt_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Trust money only ever sits in a TRUST account of the entry's currency, and one matter's trust
-- ledger has one currency (otherwise its balance would add dollars to euros). The aggregates always
-- return one row, so a missing account reads as NULL (and fails the check) instead of raising "no
-- data". Inside an INSERT or UPDATE the trigger's read of trust_entry is a locking read of the
-- matter's entries; under REPEATABLE READ that includes the gap where a concurrent writer would add
-- an entry for the same matter, so two first entries in different currencies cannot both commit.
-- (A trigger cannot lock the matter row itself: SELECT ... FOR UPDATE on matter would fail with error
-- 1442 in any INSERT ... SELECT that reads matter. ml_apply_posting locks the matter before it writes.)

DELIMITER //

CREATE OR REPLACE TRIGGER trust_entry_rules_insert
BEFORE INSERT ON trust_entry
FOR EACH ROW
BEGIN
    DECLARE v_type VARCHAR(9);
    DECLARE v_currency CHAR(3);
    DECLARE v_other BIGINT;
    SELECT MAX(account_type), MAX(currency) INTO v_type, v_currency
    FROM bank_account WHERE bank_account_id = NEW.bank_account_id;
    IF NOT (v_type <=> 'TRUST') THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: bank account is not a TRUST account';
    END IF;
    IF NOT (v_currency <=> NEW.currency) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: currency differs from the bank account currency';
    END IF;
    SELECT COUNT(*) INTO v_other FROM trust_entry
    WHERE matter_id = NEW.matter_id AND currency <> NEW.currency;
    IF v_other > 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: the matter already has trust entries in another currency';
    END IF;
END//

CREATE OR REPLACE TRIGGER trust_entry_rules_update
BEFORE UPDATE ON trust_entry
FOR EACH ROW
BEGIN
    DECLARE v_type VARCHAR(9);
    DECLARE v_currency CHAR(3);
    DECLARE v_other BIGINT;
    IF NOT (NEW.matter_id <=> OLD.matter_id)
        OR NOT (NEW.bank_account_id <=> OLD.bank_account_id)
        OR NOT (BINARY NEW.currency <=> BINARY OLD.currency) THEN
        SELECT MAX(account_type), MAX(currency) INTO v_type, v_currency
        FROM bank_account WHERE bank_account_id = NEW.bank_account_id;
        IF NOT (v_type <=> 'TRUST') THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: bank account is not a TRUST account';
        END IF;
        IF NOT (v_currency <=> NEW.currency) THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: currency differs from the bank account currency';
        END IF;
            SELECT COUNT(*) INTO v_other FROM trust_entry
        WHERE matter_id = NEW.matter_id AND currency <> NEW.currency
          AND trust_entry_id <> OLD.trust_entry_id;
        IF v_other > 0 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trust_entry: the matter already has trust entries in another currency';
        END IF;
    END IF;
END//

DELIMITER ;
