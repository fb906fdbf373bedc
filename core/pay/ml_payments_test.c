/*  ml_payments, part of the class (see include/ml_payments.h): the selftest of the payments class.
 */
#include "ml_pay_internal.h"

//  Selftest -------------------------------------------------------------------------------------

static json_t *s_run (ml_payments_t *self, const char *text, char *deliver)
{
    json_t *request = json_loads (text, 0, NULL);
    assert (request);
    const char *op = json_string_value (json_object_get (request, "op"));
    json_t *reply = ml_payments_execute (self, op, request, deliver, 64);
    json_decref (request);
    assert (reply);
    return reply;
}

static int64_t s_count (ml_store_t *store, const char *sql)
{
    ml_db_query_t *query = ml_db_query (ml_store_db (store), sql, NULL);
    int64_t value = -1;
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0);
    ml_db_query_destroy (&query);
    return value;
}

//  What a payment can still apply to an invoice now.
static int64_t s_available (ml_store_t *store, const char *invoice)
{
    json_t *items = ml_store_open_items (store, "acme", NULL, NULL, invoice);
    int64_t available =
        json_integer_value (json_object_get (json_array_get (items, 0), "available_minor"));
    json_decref (items);
    return available;
}

//  Run a request that waits for the processor: its waiter id into waiter.
static void s_waiting (ml_payments_t *self, const char *text, char *deliver, char *waiter,
                       size_t size)
{
    json_t *reply = s_run (self, text, deliver);
    snprintf (waiter, size, "%s", json_string_value (json_object_get (reply, "waiting_for")));
    assert (*waiter);
    json_decref (reply);
}

//  The reply made for waiter, once answered: a payment approved.
static void s_approved (ml_payments_t *self, const char *waiter)
{
    char show[ML_PROCESSOR_KEY_MAX + 1];
    json_t *reply = ml_payments_ready (self, show, sizeof show);
    assert (reply && streq (show, waiter));
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);
}

static bool s_owned_none (void *arg, const char *firm_id)
{
    return false;
}

static bool s_owned_all (void *arg, const char *firm_id)
{
    return true;
}

//  Which processor answers settle an operation: a lookup only approved or declined (a lookup
//  the processor refuses says nothing of whether the refund happened), an operation's own
//  answer always (its refusal, ERROR, is final).
static void s_test_records (void)
{
    const ml_pay_operation_t *operation = NULL;
    ml_processor_status_t statuses[] = {ML_PROCESSOR_APPROVED, ML_PROCESSOR_DECLINED,
                                        ML_PROCESSOR_UNKNOWN, ML_PROCESSOR_ERROR,
                                        ML_PROCESSOR_NOT_FOUND};
    for (int purpose = ML_PAY_FOR_CHARGE; purpose <= ML_PAY_FOR_REVERSAL; purpose++)
        for (size_t index = 0; index < sizeof statuses / sizeof statuses[0]; index++)
            for (int lookup = 0; lookup < 2; lookup++) {
                ml_pay_call_t *call = ml_pay_call_new ((ml_pay_purpose_t)purpose, "k", NULL);
                call->call.lookup = lookup;
                call->call.status = statuses[index];
                bool final = statuses[index] == ML_PROCESSOR_APPROVED ||
                             statuses[index] == ML_PROCESSOR_DECLINED;
                bool expected = lookup ? final : true;
                assert (ml_pay_records (call, &operation) == expected);
                free (call);
            }
}

void ml_payments_test (bool verbose)
{
    printf (" * ml_payments: ");
    s_test_records ();
    char directory[128], error[512], deliver[64];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    ml_processor_settings_t settings;
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    assert (processor);
    ml_payments_t *payments = ml_payments_new (store, payers, processor, NULL, error, sizeof error);
    if (!payments)
        fprintf (stderr, "%s\n", error);
    assert (payments);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);

    //  A replica: client C-1 with three invoices on matter M-1 (which has a trust ledger),
    //  client C-2 with one invoice.
    const ml_selftest_item_t items[] = {{'I', "INV-12", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-9", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-50", "2026-05-01", "C-1", "M-1", 10000},
                                        {'I', "INV-77", "2025-12-01", "C-2", "M-2", 10000},
                                        {'T', "", "", "C-1", "M-1", 70000},
                                        {'I', "INV-88", "2026-06-01", "C-1", "M-1", 10000},
                                        {'I', "BIG-1", "2026-02-01", "C-3", "M-3", 600000000000000},
                                        {'I', "BIG-2", "2026-02-02", "C-3", "M-3", 600000000000000},
                                        {'I', "BIG-3", "2026-02-03", "C-3", "M-3", INT64_MAX}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);

    //  Accounts: typed for good, one per type and currency.
    json_t *reply = s_run (payments,
                           "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"OP-001\","
                           " \"type\": \"OPERATING\", \"currency\": \"USD\", \"merchant_account\":"
                           " \"acct_operating\"}",
                           deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    const char *refused[] = {
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"OP-002\", \"type\": "
        "\"OPERATING\", \"currency\": \"USD\", \"merchant_account\": \"x\"}",
        "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"X\", \"type\": \"SAVINGS\", "
        "\"currency\": \"USD\", \"merchant_account\": \"x\"}",
        "{\"op\": \"account-add\", \"firm\": \"nope\", \"number\": \"X\", \"type\": \"TRUST\", "
        "\"currency\": \"USD\", \"merchant_account\": \"x\"}"};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        reply = s_run (payments, refused[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        json_decref (reply);
    }
    //  Empty lines say nothing to pay: refused at once, the card not even tokenized (such a
    //  payment once waited for charges it never made, and got no answer).
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242 4242 4242 4242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
                   " \"123\"}, \"lines\": []}",
                   deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "say what to pay"));
    json_decref (reply);
    //  Without a trust account, a trust deposit is refused before any money moves.
    const char *mixed = "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                        " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                        " \"4242 4242 4242 4242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
                        " \"123\"}, \"lines\": [{\"invoice\": \"INV-9\", \"amount_minor\": 5000},"
                        " {\"trust\": \"M-1\", \"amount_minor\": 20000}]}";
    reply = s_run (payments, mixed, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "TRUST account"));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == 0);
    reply = s_run (payments,
                   "{\"op\": \"account-add\", \"firm\": \"acme\", \"number\": \"TR-001\","
                   " \"type\": \"TRUST\", \"currency\": \"USD\", \"merchant_account\":"
                   " \"acct_trust\"}",
                   deliver);
    json_decref (reply);
    ml_db_t *db = ml_store_db (store);
    assert (ml_db_execute (db, "UPDATE account SET account_type = 'OPERATING'", NULL) < 0);
    assert (ml_db_execute (db, "DELETE FROM account", NULL) < 0);

    //  Invoices and trust in one selection: two charges into the right accounts, two
    //  postings, each carrying its processor transaction. The card number appears nowhere.
    *deliver = 0;
    reply = s_run (payments, mixed, deliver);
    assert (json_is_true (json_object_get (reply, "ok")) && streq (deliver, "acme"));
    char *text = json_dumps (reply, 0);
    assert (!strstr (text, "4242 4242") && !strstr (text, "4242424242424242"));
    free (text);
    json_t *payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "approved"));
    json_t *charges = json_object_get (payment, "charges");
    assert (json_array_size (charges) == 2);
    json_t *operating = json_array_get (charges, 0), *trust = json_array_get (charges, 1);
    assert (streq (json_string_value (json_object_get (operating, "account_type")), "OPERATING"));
    assert (streq (json_string_value (json_object_get (operating, "merchant_account")),
                   "acct_operating"));
    assert (json_integer_value (json_object_get (operating, "amount_minor")) == 5000);
    assert (streq (json_string_value (json_object_get (trust, "account_number")), "TR-001"));
    assert (json_integer_value (json_object_get (trust, "amount_minor")) == 20000);
    assert (json_integer_value (json_object_get (trust, "fee_minor")) == 0);
    json_t *posted =
        ml_store_posting (store, json_string_value (json_object_get (trust, "posting_uuid")));
    assert (posted);
    assert (streq (json_string_value (json_object_get (posted, "account_number")), "TR-001"));
    assert (*json_string_value (json_object_get (posted, "processor_txn")));
    json_decref (posted);
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting WHERE source = 'payment'") == 2);
    //  No fee is ever netted from a trust deposit, and a charge's money and final status
    //  never change.
    assert (ml_db_execute (db,
                           "INSERT INTO charge (charge_key, payment_uuid, account_number,"
                           " account_type, merchant_account, currency, amount_minor, fee_minor,"
                           " lines, posting_uuid, status, created_at, updated_at) SELECT 'x',"
                           " payment_uuid, 'TR-001', 'TRUST', 'acct_trust', 'USD', 100, 1, '[]',"
                           " 'y', 'pending', '', '' FROM payment LIMIT 1",
                           NULL) < 0);
    assert (ml_db_execute (db, "UPDATE charge SET amount_minor = 1", NULL) < 0);
    assert (ml_db_execute (db, "UPDATE charge SET status = 'pending'", NULL) < 0);

    //  Auto-apply pays invoices oldest first and never touches trust; the pending posting
    //  counts, so INV-9's remaining 50.00 goes first.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"auto\": {\"client\": \"C-1\", \"amount\": \"80.00\"}}",
                   deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    charges = json_object_get (json_object_get (reply, "payment"), "charges");
    assert (json_array_size (charges) == 1);
    posted = ml_store_posting (
        store, json_string_value (json_object_get (json_array_get (charges, 0), "posting_uuid")));
    json_t *lines = json_object_get (posted, "lines");
    assert (json_array_size (lines) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 0), "reference")),
                   "INV-9"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 0), "amount_minor")) ==
            5000);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 1), "reference")),
                   "INV-12"));
    json_decref (posted);
    json_decref (reply);

    //  Refusals, each before any money moves: more than available, two clients, a
    //  declined card (charged, refused, no posting).
    int64_t charges_before = s_count (store, "SELECT COUNT (*) FROM charge");
    const char *bad[] = {
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 10001}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 1}, {\"invoice\": \"INV-77\", \"amount_minor\": 1}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"card\": {\"number\": \"4242424242424241\", \"exp_month\": 4,"
        " \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\": \"INV-50\","
        " \"amount_minor\": 1}]}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"lines\": []}",
        "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
        " \"pat@example.com\", \"currency\": \"JPY\", \"card\": {\"number\": \"4242424242424242\","
        " \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}, \"lines\": [{\"invoice\":"
        " \"INV-50\", \"amount_minor\": 500}]}"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        reply = s_run (payments, bad[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        text = json_dumps (reply, 0);
        assert (!strstr (text, "4242424242424241"));
        free (text);
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == charges_before);
    //  The one money limit (ml_money.h), before any charge: a line above it, lines each
    //  under it whose sum is above it, an auto amount above it.
#define S_CARD_PAYMENT                                                                             \
    "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"          \
    " \"pat@example.com\", \"card\": {\"number\": \"4242424242424242\", \"exp_month\": 4,"         \
    " \"exp_year\": 2031, \"cvc\": \"123\"}, "
    const char *over[] = {
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-3\", \"amount_minor\": 1000000000000000}]}",
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-1\", \"amount_minor\": 600000000000000},"
                       " {\"invoice\": \"BIG-2\", \"amount_minor\": 400000000000000}]}",
        S_CARD_PAYMENT "\"lines\": [{\"invoice\": \"BIG-1\", \"amount_minor\": 600000000000000},"
                       " {\"invoice\": \"BIG-3\", \"amount_minor\": 9223372036854775807}]}",
        S_CARD_PAYMENT "\"auto\": {\"client\": \"C-3\", \"amount\": \"10,000,000,000,000.00\"}}",
        S_CARD_PAYMENT
        "\"auto\": {\"client\": \"C-3\", \"amount\": \"6,000,000,000,000.00\"},"
        " \"lines\": [{\"invoice\": \"BIG-3\", \"amount_minor\": 400000000000000}]}"};
#undef S_CARD_PAYMENT
    for (size_t index = 0; index < sizeof over / sizeof over[0]; index++) {
        reply = s_run (payments, over[index], deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        if (!strstr (json_string_value (json_object_get (reply, "error")), "999,999,999,999,999")) {
            fprintf (stderr, "%s\n", json_string_value (json_object_get (reply, "error")));
            assert (false);
        }
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM charge") == charges_before);
    int64_t postings_before = s_count (store, "SELECT COUNT (*) FROM posting");
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4000000000000002\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 100}]}",
                   deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "declined"));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before);
    //  A declined charge is final: it holds nothing.
    assert (s_count (store, "SELECT COUNT (*) FROM balance_hold") == 0);
    int64_t available_before = s_available (store, "INV-50");

    //  A timeout leaves the charge unknown, never failed; resolving asks the processor with
    //  the same key and makes the one posting.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4000000000003006\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 300}]}",
                   deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "unknown"));
    char payment_uuid[37], show[512];
    snprintf (payment_uuid, sizeof payment_uuid, "%s",
              json_string_value (json_object_get (payment, "payment_uuid")));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before);
    //  Until it is final, its lines are held: no other payment gets INV-50's whole balance.
    assert (s_available (store, "INV-50") == available_before - 300);
    snprintf (show, sizeof show,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
              " \"123\"}, \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": %lld}]}",
              (long long)available_before);
    reply = s_run (payments, show, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "available"));
    json_decref (reply);
    //  A store from before holds gets them for its open charges when opened.
    assert (ml_db_execute (db, "DELETE FROM balance_hold", NULL) == 1);
    ml_payments_t *reopened = ml_payments_new (store, payers, processor, NULL, error, sizeof error);
    assert (reopened && s_available (store, "INV-50") == available_before - 300);
    ml_payments_destroy (&reopened);
    *deliver = 0;
    //  Several nodes (docs/multinode.md): another node's firm is not resolved here; a charge
    //  left pending is another node's call in progress until it is older than the longest call.
    ml_payments_set_owner (payments, s_owned_none, NULL, 60000);
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 0);
    ml_payments_set_owner (payments, s_owned_all, NULL, 60000);
    char now[32];
    ml_store_now (now, sizeof now);
    assert (ml_db_execute (db,
                           "UPDATE charge SET status = 'pending', updated_at = ? WHERE status"
                           " = 'unknown'",
                           "s", now) == 1);
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 0);
    assert (ml_db_execute (db,
                           "UPDATE charge SET updated_at = '2000-01-01T00:00:00.000Z' WHERE"
                           " status = 'pending'",
                           NULL) == 1);
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 1);
    ml_payments_set_owner (payments, NULL, NULL, 0);
    //  Final: the hold is gone and the posting takes over, the balance never free between.
    assert (s_count (store, "SELECT COUNT (*) FROM balance_hold") == 0);
    assert (s_available (store, "INV-50") == available_before - 300);
    assert (streq (deliver, "acme"));
    assert (ml_payments_resolve (payments, deliver, sizeof deliver) == 0);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_before + 1);
    snprintf (show, sizeof show, "{\"op\": \"payment-show\", \"payment_uuid\": \"%s\"}",
              payment_uuid);
    reply = s_run (payments, show, deliver);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);

    char request[512];
    //  Reversals: a refund takes back from the last lines first, never more than was
    //  charged; a trust refund never exceeds the ledger's balance minus what is pending; a
    //  void takes all or nothing; a chargeback is recorded as the processor decided.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 700}, {\"invoice\":"
                   " \"INV-12\", \"amount_minor\": 300}, {\"trust\": \"M-1\", \"amount_minor\":"
                   " 80000}]}",
                   deliver);
    charges = json_object_get (json_object_get (reply, "payment"), "charges");
    char operating_key[96], trust_key[96];
    snprintf (operating_key, sizeof operating_key, "%s",
              json_string_value (json_object_get (json_array_get (charges, 0), "charge_key")));
    snprintf (trust_key, sizeof trust_key, "%s",
              json_string_value (json_object_get (json_array_get (charges, 1), "charge_key")));
    //  Not before the matter system has the posting.
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              operating_key);
    json_t *refused_reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (refused_reply, "error")), "not posted"));
    json_decref (refused_reply);
    for (size_t index = 0; index < 2; index++) {
        ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
        snprintf (
            result->posting_uuid, sizeof result->posting_uuid, "%s",
            json_string_value (json_object_get (json_array_get (charges, index), "posting_uuid")));
        strcpy (result->status, "posted");
        strcpy (result->receipt_id, "9");
        assert (ml_store_posting_result (store, "acme", result) == 1);
        ml_msg_destroy (&result);
    }
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 400}", operating_key);
    reply = s_run (payments, request, deliver);
    json_t *reversal = json_object_get (reply, "reversal");
    assert (streq (json_string_value (json_object_get (reversal, "status")), "approved"));
    posted =
        ml_store_posting (store, json_string_value (json_object_get (reversal, "posting_uuid")));
    lines = json_object_get (posted, "lines");
    //  INV-12's 300 first (the last line), then 100 of INV-50.
    assert (json_array_size (lines) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (lines, 0), "reference")),
                   "INV-12"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 1), "amount_minor")) ==
            100);
    assert (*json_string_value (json_object_get (posted, "reverses")));
    json_decref (posted);
    json_decref (reply);
    //  600 are left: 601 is refused, and a void after a refund too.
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 601}", operating_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "at most 6.00"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"void\", \"charge_key\": \"%s\"}", operating_key);
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    //  The replica says M-1 holds 700.00 in trust: 800.00 cannot go back, 700.00 can, and
    //  then nothing more while that reversal is pending.
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "trust balance"));
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 70000}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    snprintf (request, sizeof request,
              "{\"op\": \"chargeback\", \"charge_key\": \"%s\", \"amount_minor\": 1}", trust_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "trust balance"));
    json_decref (reply);
    //  A chargeback of what is left of the operating charge is recorded as decided.
    snprintf (request, sizeof request, "{\"op\": \"chargeback\", \"charge_key\": \"%s\"}",
              operating_key);
    reply = s_run (payments, request, deliver);
    assert (json_integer_value (
                json_object_get (json_object_get (reply, "reversal"), "amount_minor")) == 600);
    json_decref (reply);
    assert (ml_db_execute (db, "UPDATE reversal SET amount_minor = 1", NULL) < 0);
    assert (ml_db_execute (db, "DELETE FROM reversal", NULL) < 0);

    //  A rejected posting's money goes on other lines, once, same account, same amount.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"invoice\": \"INV-77\", \"amount_minor\": 100}]}",
                   deliver);
    char rejected_uuid[37];
    snprintf (
        rejected_uuid, sizeof rejected_uuid, "%s",
        json_string_value (json_object_get (
            json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0),
            "posting_uuid")));
    json_decref (reply);
    ml_msg_t *rejection = ml_msg_new (ML_MSG_POSTING_RESULT);
    snprintf (rejection->posting_uuid, sizeof rejection->posting_uuid, "%s", rejected_uuid);
    strcpy (rejection->status, "rejected");
    strcpy (rejection->reason, "ML001 invoice_not_open");
    assert (ml_store_posting_result (store, "acme", rejection) == 1);
    ml_msg_destroy (&rejection);
    const char *reallocations[] = {
        "{\"op\": \"reallocate\", \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 99}]}",
        "{\"op\": \"reallocate\", \"lines\": [{\"trust\": \"M-1\", \"amount_minor\": 100}]}",
        "{\"op\": \"reallocate\", \"staff\": \"alice\", \"lines\": [{\"invoice\":"
        " \"INV-50\", \"amount_minor\": 100}]}"};
    for (size_t index = 0; index < 4; index++) {
        json_t *move = json_loads (reallocations[index < 3 ? index : 2], 0, NULL);
        json_object_set_new (move, "posting_uuid", json_string (rejected_uuid));
        reply = ml_payments_execute (payments, "reallocate", move, deliver, sizeof deliver);
        json_decref (move);
        //  Only the third succeeds; the fourth repeats it and is refused.
        assert (json_is_true (json_object_get (reply, "ok")) == (index == 2));
        if (index == 2) {
            json_t *moved = json_object_get (reply, "posting");
            assert (streq (json_string_value (json_object_get (moved, "source")), "reallocation"));
            assert (json_integer_value (json_object_get (moved, "amount_minor")) == 100);
        }
        json_decref (reply);
    }

    //  A rejected posting's charge is refunded instead, with no reversing posting (the books
    //  never had the money, and no trust balance limits it); then it is not reallocated.
    //  One whose money was reallocated is in the books there, and is not refunded here.
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
                   " \"lines\": [{\"trust\": \"M-1\", \"amount_minor\": 90000000}]}",
                   deliver);
    json_t *unbooked =
        json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0);
    assert (unbooked);
    char unbooked_uuid[37], unbooked_key[80];
    snprintf (unbooked_uuid, sizeof unbooked_uuid, "%s",
              json_string_value (json_object_get (unbooked, "posting_uuid")));
    snprintf (unbooked_key, sizeof unbooked_key, "%s",
              json_string_value (json_object_get (unbooked, "charge_key")));
    json_decref (reply);
    rejection = ml_msg_new (ML_MSG_POSTING_RESULT);
    snprintf (rejection->posting_uuid, sizeof rejection->posting_uuid, "%s", unbooked_uuid);
    strcpy (rejection->status, "rejected");
    strcpy (rejection->reason, "ML001 matter_closed");
    assert (ml_store_posting_result (store, "acme", rejection) == 1);
    ml_msg_destroy (&rejection);
    int64_t postings_now = s_count (store, "SELECT COUNT (*) FROM posting");
    snprintf (request, sizeof request,
              "{\"op\": \"refund\", \"charge_key\": \"%s\", \"amount_minor\": 1000000000000000}",
              unbooked_key);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "999,999,999,999,999"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              unbooked_key);
    reply = s_run (payments, request, deliver);
    reversal = json_object_get (reply, "reversal");
    assert (streq (json_string_value (json_object_get (reversal, "status")), "approved"));
    assert (json_integer_value (json_object_get (reversal, "amount_minor")) == 90000000);
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == postings_now);
    json_t *again = json_pack ("{s:s, s:s, s:[{s:s, s:i}]}", "op", "reallocate", "posting_uuid",
                               unbooked_uuid, "lines", "trust", "M-1", "amount_minor", 90000000);
    reply = ml_payments_execute (payments, "reallocate", again, deliver, sizeof deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "refunded"));
    json_decref (reply);
    json_decref (again);
    json_t *charge_rows = ml_pay_rows (
        payments, "SELECT charge_key FROM charge WHERE posting_uuid = ?", "s", rejected_uuid);
    snprintf (request, sizeof request, "{\"op\": \"refund\", \"charge_key\": \"%s\"}",
              json_string_value (json_object_get (json_array_get (charge_rows, 0), "charge_key")));
    json_decref (charge_rows);
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "reallocated"));
    json_decref (reply);

    //  Payment links: 24 hours, single use, revocable, balances checked again when paid.
    reply = s_run (payments,
                   "{\"op\": \"link-create\", \"firm\": \"acme\", \"staff\": \"alice\","
                   " \"payer_name\": \"Pat\", \"payer_email\": \"pat@example.com\","
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 1000},"
                   " {\"trust\": \"M-1\", \"amount_minor\": 500}]}",
                   deliver);
    json_t *link = json_object_get (reply, "link");
    assert (streq (json_string_value (json_object_get (link, "state")), "outstanding"));
    char token[64], link_id[40];
    snprintf (token, sizeof token, "%s", json_string_value (json_object_get (link, "token")));
    snprintf (link_id, sizeof link_id, "%s", json_string_value (json_object_get (link, "link_id")));
    json_decref (reply);
#define S_PAY_LINK                                                                                 \
    "{\"op\": \"link-pay\", \"token\": \"%s\", \"card\": {\"number\":"                             \
    " \"%s\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}}"
    snprintf (request, sizeof request, S_PAY_LINK, token, "4000000000000002");
    reply = s_run (payments, request, deliver);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "declined"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, token, "4242424242424242");
    reply = s_run (payments, request, deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "approved"));
    assert (json_array_size (json_object_get (payment, "charges")) == 2);
    json_decref (reply);
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "is paid"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, "0123456789abcdef0123456789abcdef",
              "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    //  A link whose invoice was paid meanwhile is refused; cancelled and expired ones too.
#define S_CREATE_LINK                                                                              \
    "{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\":"                                \
    " \"Pat\", \"payer_email\": \"pat@example.com\", \"lines\":"                                   \
    " [{\"invoice\": \"INV-77\", \"amount_minor\": %d}]}"
    char tokens[3][64], ids[3][40];
    for (int index = 0; index < 3; index++) {
        snprintf (request, sizeof request, S_CREATE_LINK, index == 0 ? 10000 : 100);
        reply = s_run (payments, request, deliver);
        link = json_object_get (reply, "link");
        snprintf (tokens[index], sizeof tokens[index], "%s",
                  json_string_value (json_object_get (link, "token")));
        snprintf (ids[index], sizeof ids[index], "%s",
                  json_string_value (json_object_get (link, "link_id")));
        json_decref (reply);
    }
    reply = s_run (payments,
                   "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
                   " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\":"
                   " \"123\"}, \"lines\": [{\"invoice\": \"INV-77\", \"amount_minor\":"
                   " 500}]}",
                   deliver);
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[0], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "no longer due"));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"link-cancel\", \"link_id\": \"%s\"}", ids[1]);
    reply = s_run (payments, request, deliver);
    assert (streq (json_string_value (json_object_get (json_object_get (reply, "link"), "state")),
                   "cancelled"));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[1], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "cancelled"));
    json_decref (reply);
    assert (ml_db_execute (db,
                           "UPDATE payment_link SET expires_at = '2000-01-01' WHERE link_id = ?",
                           "s", ids[2]) == 1);
    snprintf (request, sizeof request, S_PAY_LINK, tokens[2], "4242424242424242");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "expired"));
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"link-list\", \"firm\": \"acme\", \"state\": \"paid\"}",
                   deliver);
    assert (json_array_size (json_object_get (reply, "links")) == 1);
    assert (streq (json_string_value (json_object_get (
                       json_array_get (json_object_get (reply, "links"), 0), "link_id")),
                   link_id));
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"payments\", \"firm\": \"acme\"}", deliver);
    assert (json_array_size (json_object_get (reply, "payments")) >= 5);
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"link-list\", \"firm\": \"acme\"}", deliver);
    assert (json_array_size (json_object_get (reply, "links")) == 4);
    json_decref (reply);
    assert (ml_db_execute (db, "UPDATE payment_link SET payment_uuid = NULL WHERE link_id = ?", "s",
                           link_id) < 0);

    //  A link's page (link-view, link-pay-page): unknown, expired, cancelled and used tokens
    //  all get the same answer; the A/R message never shows; a card token is paid once.
    const char *gone[] = {token, tokens[1], tokens[2], "0123456789abcdef0123456789abcdef", ""};
    for (size_t index = 0; index < sizeof gone / sizeof gone[0]; index++) {
        snprintf (request, sizeof request, "{\"op\": \"link-view\", \"token\": \"%s\"}",
                  gone[index]);
        reply = s_run (payments, request, deliver);
        assert (json_is_false (json_object_get (reply, "ok")));
        assert (streq (json_string_value (json_object_get (reply, "error")),
                       "this payment link has expired or was already used"));
        json_decref (reply);
        snprintf (request, sizeof request,
                  "{\"op\": \"link-pay-page\", \"token\": \"%s\", \"card_token\": \"tok\","
                  " \"pay_key\": \"k-0123456789abcdef\"}",
                  gone[index]);
        reply = s_run (payments, request, deliver);
        assert (streq (json_string_value (json_object_get (reply, "error")),
                       "this payment link has expired or was already used"));
        json_decref (reply);
    }
    reply = s_run (payments,
                   "{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
                   " \"payer_email\": \"pat@example.com\", \"ar_message\": \"SECRET-AR-NOTE\","
                   " \"lines\": [{\"invoice\": \"INV-50\", \"amount_minor\": 700},"
                   " {\"trust\": \"M-1\", \"amount_minor\": 300}]}",
                   deliver);
    if (verbose && !json_object_get (reply, "link"))
        fprintf (stderr, "link-create: %s\n", json_string_value (json_object_get (reply, "error")));
    char page_token[64];
    snprintf (page_token, sizeof page_token, "%s",
              json_string_value (json_object_get (json_object_get (reply, "link"), "token")));
    json_decref (reply);
    snprintf (request, sizeof request, "{\"op\": \"link-view\", \"token\": \"%s\"}", page_token);
    reply = s_run (payments, request, deliver);
    char *shown = json_dumps (reply, 0);
    if (verbose)
        fprintf (stderr, "link-view: %s\n", shown);
    assert (json_is_true (json_object_get (reply, "ok")) && !strstr (shown, "SECRET-AR-NOTE") &&
            !strstr (shown, "pat@example.com") && !strstr (shown, "link_id"));
    free (shown);
    link = json_object_get (reply, "link");
    assert (json_array_size (json_object_get (link, "lines")) == 2);
    assert (json_integer_value (json_object_get (
                json_array_get (json_object_get (link, "totals"), 0), "amount_minor")) == 1000);
    assert (streq (json_string_value (json_object_get (link, "state")), "outstanding"));
    json_decref (reply);
    ml_processor_result_t card;
    assert (ml_processor_tokenize (processor, "link-page-card", "4242424242424242", 4, 2031, "123",
                                   &card) == ML_PROCESSOR_APPROVED);
#define S_PAY_PAGE                                                                                 \
    "{\"op\": \"link-pay-page\", \"token\": \"%s\", \"card_token\": \"%s\", \"pay_key\":"          \
    " \"%s\"}"
    snprintf (request, sizeof request, S_PAY_PAGE, page_token, "unknown-card",
              "k-first-0123456789");
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_PAGE, page_token, card.token, "k-second-0123456789");
    reply = s_run (payments, request, deliver);
    payment = json_object_get (reply, "payment");
    assert (streq (json_string_value (json_object_get (payment, "status")), "approved"));
    assert (json_array_size (json_object_get (payment, "charges")) == 2);
    shown = json_dumps (reply, 0);
    assert (!strstr (shown, "SECRET-AR-NOTE") && !strstr (shown, card.token));
    free (shown);
    char page_payment[40];
    snprintf (page_payment, sizeof page_payment, "%s",
              json_string_value (json_object_get (payment, "payment_uuid")));
    json_decref (reply);
    //  The same form again: the same payment, not a second one; another form: gone.
    int64_t payments_before = s_count (store, "SELECT COUNT(*) FROM payment");
    reply = s_run (payments, request, deliver);
    assert (json_is_true (json_object_get (reply, "repeated")));
    assert (streq (
        json_string_value (json_object_get (json_object_get (reply, "payment"), "payment_uuid")),
        page_payment));
    json_decref (reply);
    snprintf (request, sizeof request, S_PAY_PAGE, page_token, card.token, "k-third-0123456789");
    reply = s_run (payments, request, deliver);
    assert (json_object_get (reply, "gone"));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT(*) FROM payment") == payments_before);
    snprintf (request, sizeof request, "{\"op\": \"link-view\", \"token\": \"%s\"}", page_token);
    reply = s_run (payments, request, deliver);
    assert (json_object_get (reply, "gone"));
    json_decref (reply);

    //  A selection gathers lines from several searches and is paid at once, then emptied.
    reply = s_run (payments,
                   "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\": \"alice\","
                   " \"trust\": \"M-1\"}",
                   deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "by hand"));
    json_decref (reply);
    json_decref (s_run (payments,
                        "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\":"
                        " \"alice\", \"invoice\": \"INV-88\"}",
                        deliver));
    json_decref (s_run (payments,
                        "{\"op\": \"selection-add\", \"firm\": \"acme\", \"staff\":"
                        " \"alice\", \"trust\": \"M-1\", \"amount_minor\": 100}",
                        deliver));
    reply = s_run (payments, "{\"op\": \"selection\", \"firm\": \"acme\", \"staff\": \"alice\"}",
                   deliver);
    json_t *selection = json_object_get (reply, "selection");
    assert (json_array_size (selection) == 2);
    assert (json_integer_value (json_object_get (json_array_get (selection, 0), "amount_minor")) >
            0);
    //  Staff's "Allocate" sees each line with what the replica knows: invoices, then trust.
    json_t *shown_items = json_object_get (reply, "items");
    assert (json_array_size (shown_items) == 2);
    assert (streq (json_string_value (json_object_get (json_array_get (shown_items, 0), "kind")),
                   "invoice"));
    assert (json_is_true (json_object_get (json_array_get (shown_items, 0), "open")));
    assert (json_is_null (json_object_get (json_array_get (shown_items, 0), "amount_minor")));
    assert (json_integer_value (
                json_object_get (json_array_get (shown_items, 0), "available_minor")) > 0);
    assert (json_object_get (json_array_get (shown_items, 0), "client_number"));
    assert (streq (json_string_value (json_object_get (json_array_get (shown_items, 1), "kind")),
                   "trust"));
    assert (json_integer_value (
                json_object_get (json_array_get (shown_items, 1), "amount_minor")) == 100);
    json_decref (reply);
    //  A card the browser tokenized (staff's hosted fields): the token is looked up at the
    //  processor; one it does not know pays nothing and keeps the selection.
#define S_BY_TOKEN                                                                                 \
    "{\"op\": \"payment\", \"firm\": \"acme\", \"staff\": \"alice\","                              \
    " \"selection\": true, \"payer_name\": \"Pat\", \"payer_email\":"                              \
    " \"pat@example.com\", \"card_token\": \"%s\"}"
    snprintf (request, sizeof request, S_BY_TOKEN, "unknown-card");
    reply = s_run (payments, request, deliver);
    assert (json_is_false (json_object_get (reply, "ok")));
    json_decref (reply);
    snprintf (request, sizeof request, S_BY_TOKEN, "bad token!");
    reply = s_run (payments, request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "card_token"));
    json_decref (reply);
    reply = s_run (payments, "{\"op\": \"selection\", \"firm\": \"acme\", \"staff\": \"alice\"}",
                   deliver);
    assert (json_array_size (json_object_get (reply, "selection")) == 2);
    json_decref (reply);
    //  A staff form's pay_key: a malformed one is refused; the same form sent twice pays once.
    snprintf (request, sizeof request, S_BY_TOKEN, card.token);
    request[strlen (request) - 1] = 0;
    char form_request[1200];
    snprintf (form_request, sizeof form_request, "%s, \"pay_key\": \"short\"}", request);
    reply = s_run (payments, form_request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "pay_key"));
    json_decref (reply);
    snprintf (form_request, sizeof form_request, "%s, \"pay_key\": \"staff-form-0123456789\"}",
              request);
    reply = s_run (payments, form_request, deliver);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    assert (json_array_size (json_object_get (json_object_get (reply, "payment"), "charges")) == 2);
    char form_payment[40];
    snprintf (
        form_payment, sizeof form_payment, "%s",
        json_string_value (json_object_get (json_object_get (reply, "payment"), "payment_uuid")));
    json_decref (reply);
    int64_t form_before = s_count (store, "SELECT COUNT(*) FROM payment");
    reply = s_run (payments, form_request, deliver);
    assert (json_is_true (json_object_get (reply, "repeated")));
    assert (streq (
        json_string_value (json_object_get (json_object_get (reply, "payment"), "payment_uuid")),
        form_payment));
    json_decref (reply);
    assert (s_count (store, "SELECT COUNT(*) FROM payment") == form_before);
    reply = s_run (payments, "{\"op\": \"selection\", \"firm\": \"acme\", \"staff\": \"alice\"}",
                   deliver);
    assert (json_array_size (json_object_get (reply, "selection")) == 0);
    json_decref (reply);

    //  With the processor's worker: a payment is told to wait, is charged on the worker's
    //  thread, and its reply is ready once the answers are recorded.
    zactor_t *worker = ml_service_start (ml_processor_actor, processor);
    assert (worker);
    ml_payments_set_worker (payments, worker);
    char pay_request[512];
    const char *open_invoice = NULL;
    const char *candidates[] = {"INV-9", "INV-12", "INV-50", "INV-77", "INV-88"};
    for (size_t index = 0; !open_invoice && index < 5; index++)
        if (s_available (store, candidates[index]) >= 100)
            open_invoice = candidates[index];
    assert (open_invoice);
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
              " \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": 100}]}",
              open_invoice);
    char waiter[ML_PROCESSOR_KEY_MAX + 1];
    s_waiting (payments, pay_request, deliver, waiter, sizeof waiter);
    assert (ml_payments_ready (payments, show, sizeof show) == NULL);
    //  Two answers: the card's token, then the charge.
    assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 2);
    s_approved (payments, waiter);
    //  A link is paid once at a time: a second try while the first waits is refused.
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"lines\": [{\"invoice\": \"%s\","
              " \"amount_minor\": 1}]}",
              open_invoice);
    reply = s_run (payments, pay_request, deliver);
    char link_token[64];
    snprintf (link_token, sizeof link_token, "%s",
              json_string_value (json_object_get (json_object_get (reply, "link"), "token")));
    json_decref (reply);
    snprintf (pay_request, sizeof pay_request, S_PAY_LINK, link_token, "4242424242424242");
    reply = s_run (payments, pay_request, deliver);
    assert (json_object_get (reply, "waiting_for"));
    json_decref (reply);
    reply = s_run (payments, pay_request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "being paid"));
    json_decref (reply);
    assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 2);
    reply = ml_payments_ready (payments, show, sizeof show);
    assert (
        streq (json_string_value (json_object_get (json_object_get (reply, "payment"), "status")),
               "approved"));
    json_decref (reply);
    reply = s_run (payments, pay_request, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "is paid"));
    json_decref (reply);
    snprintf (pay_request, sizeof pay_request,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
              " \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": 100}]}",
              open_invoice);
    //  While the store groups its commits (the core's rounds, ml_group), processor calls
    //  wait for the group's commit: the worker is asked nothing before. When the commit
    //  failed they are never made, and their request hears so; once it succeeded they go.
    ml_db_t *grouped = ml_store_db (store);
    zpoller_t *answers = zpoller_new (worker, NULL);
    char small_request[512];
    snprintf (small_request, sizeof small_request,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_name\": \"Pat\","
              " \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
              " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"},"
              " \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": 1}]}",
              open_invoice);
    for (int round = 0; round < 2; round++) {
        ml_db_group_begin (grouped);
        s_waiting (payments, small_request, deliver, waiter, sizeof waiter);
        assert (zpoller_wait (answers, 200) == NULL); //  no call made, so no answer
        assert (ml_db_group_end (grouped) == 0);
        ml_payments_release (payments, round == 1);
        if (round == 0) {
            reply = ml_payments_ready (payments, show, sizeof show);
            assert (reply && streq (show, waiter));
            assert (strstr (json_string_value (json_object_get (reply, "error")), "store failed"));
            json_decref (reply);
            assert (ml_payments_drain (payments, 200, deliver, sizeof deliver) == 0);
        } else {
            assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 2);
            s_approved (payments, waiter);
        }
    }
    //  Two payments of most of one invoice's balance in one round, with a saved card
    //  (nothing to tokenize: each is checked and stored at once): the second finds the
    //  first's hold, so a balance is never promised twice. On PostgreSQL the second's reads are
    //  asked ahead (ml_db_prefetch) after the first's writes, in the round's one transaction.
    json_t *sam = json_pack ("{s:s, s:s, s:s}", "firm", "acme", "name", "Sam Saved", "email",
                             "sam@example.com");
    json_t *added = ml_payers_execute (payers, "payer-add", sam);
    json_decref (sam);
    json_int_t sam_id =
        json_integer_value (json_object_get (json_object_get (added, "payer"), "payer_id"));
    assert (sam_id > 0);
    json_decref (added);
    json_t *method = json_pack ("{s:I, s:s, s:s, s:s, s:i, s:i}", "payer_id", sam_id, "token",
                                "tok_visa_4242_042031_0123abcd_4567ef01", "brand", "visa", "last4",
                                "4242", "exp_month", 4, "exp_year", 2031);
    added = ml_payers_execute (payers, "method-add", method);
    json_decref (method);
    json_int_t sam_method =
        json_integer_value (json_object_get (json_object_get (added, "method"), "method_id"));
    assert (sam_method > 0);
    json_decref (added);
    int64_t most = s_available (store, open_invoice) - 100; //  100 left for the case below
    assert (most > 100);
    char twice[512];
    snprintf (twice, sizeof twice,
              "{\"op\": \"payment\", \"firm\": \"acme\", \"payer_id\": %lld,"
              " \"method_id\": %lld, \"lines\": [{\"invoice\": \"%s\", \"amount_minor\": %lld}]}",
              (long long)sam_id, (long long)sam_method, open_invoice, (long long)most);
    ml_db_group_begin (grouped);
    s_waiting (payments, twice, deliver, waiter, sizeof waiter);
    reply = s_run (payments, twice, deliver);
    assert (strstr (json_string_value (json_object_get (reply, "error")), "available"));
    json_decref (reply);
    assert (ml_db_group_end (grouped) == 0);
    ml_payments_release (payments, true);
    assert (ml_payments_drain (payments, 10000, deliver, sizeof deliver) == 1);
    s_approved (payments, waiter);
    assert (s_available (store, open_invoice) == 100);
    zpoller_destroy (&answers);
    //  A core stopped with a call in flight: the charge stays pending, found by lookup later.
    reply = s_run (payments, pay_request, deliver);
    assert (json_object_get (reply, "waiting_for"));
    json_decref (reply);
    zactor_destroy (&worker);
    ml_payments_set_worker (payments, NULL);

    //  pay with a pay_key: a repeat returns the first result and posts nothing more.
    ml_admin_parts_t parts = {.store = store, .payers = payers, .payments = payments};
    ml_admin_effects_t effects;
    const char *keyed[] = {
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.02\","
        " \"pay_key\": \"desk-1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk 1042\"}",
        "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"0.01\","
        " \"pay_key\": \"desk-1043\"}"};
    char first_uuid[37] = "";
    int64_t keyed_before = s_count (store, "SELECT COUNT (*) FROM posting");
    for (size_t index = 0; index < sizeof keyed / sizeof keyed[0]; index++) {
        json_t *keyed_request = json_loads (keyed[index], 0, NULL);
        reply = ml_admin_execute (&parts, keyed_request, &effects);
        json_decref (keyed_request);
        const char *uuid = json_string_value (json_object_get (reply, "posting_uuid"));
        //  Only the first and the last post; the second repeats the first.
        assert (json_is_true (json_object_get (reply, "ok")) == (index < 2 || index == 4));
        assert (json_is_true (json_object_get (reply, "repeated")) == (index == 1));
        if (index == 0)
            snprintf (first_uuid, sizeof first_uuid, "%s", uuid);
        if (index == 1)
            assert (streq (uuid, first_uuid) &&
                    json_array_size (json_object_get (reply, "lines")) == 1);
        if (index == 2)
            assert (strstr (json_string_value (json_object_get (reply, "error")), first_uuid));
        if (index == 4)
            assert (!streq (uuid, first_uuid));
        json_decref (reply);
    }
    assert (s_count (store, "SELECT COUNT (*) FROM posting") == keyed_before + 2);

    //  Receipts of approved charges are queued by one sweep in one transaction; one whose
    //  address the outbox refuses is marked and holds up no other (the sweep then goes one
    //  by one).
    {
        char outbox_key[160];
        snprintf (outbox_key, sizeof outbox_key, "%s/outbox.key", directory);
        ml_mailer_t *mailer = ml_mailer_new (ml_store_db (store), outbox_key, error, sizeof error);
        assert (mailer);
        ml_payments_t *mailing =
            ml_payments_new (store, payers, processor, mailer, error, sizeof error);
        assert (mailing);
        assert (ml_db_execute (ml_store_db (store),
                               "UPDATE payment SET receipt_email = 'payer@example.com'",
                               NULL) >= 0);
        int64_t due = s_count (store, "SELECT COUNT (*) FROM charge WHERE status = 'approved'"
                                      " AND receipt_queued = 0");
        assert (due >= 2);
        //  All at once.
        assert (ml_payments_notify (mailing) == due);
        assert (s_count (store, "SELECT COUNT (*) FROM mail WHERE kind = 'receipt'") == due);
        assert (ml_payments_notify (mailing) == 0);
        //  Again with one address refused (a line break could add a header).
        assert (ml_db_execute (ml_store_db (store), "UPDATE charge SET receipt_queued = 0", NULL) >
                0);
        assert (ml_db_execute (ml_store_db (store), "DELETE FROM mail", NULL) >= 0);
        assert (ml_db_execute (ml_store_db (store),
                               "UPDATE payment SET receipt_email = ?"
                               " WHERE payment_uuid = (SELECT MIN (payment_uuid) FROM charge"
                               " WHERE status = 'approved')",
                               "s", "bad\nx@y.z") == 1);
        int64_t refusals =
            s_count (store, "SELECT COUNT (*) FROM charge c JOIN payment p ON p.payment_uuid ="
                            " c.payment_uuid WHERE c.status = 'approved' AND p.receipt_email <> "
                            "'payer@example.com'");
        assert (refusals >= 1 && refusals < due);
        assert (ml_payments_notify (mailing) == due - refusals);
        assert (s_count (store, "SELECT COUNT (*) FROM charge WHERE receipt_queued = 2") ==
                refusals);
        assert (s_count (store, "SELECT COUNT (*) FROM mail WHERE kind = 'receipt'") ==
                due - refusals);
        assert (ml_payments_notify (mailing) == 0);
        ml_payments_destroy (&mailing);
        ml_mailer_destroy (&mailer);
    }

    ml_log_setup (NULL, saved);
    ml_payments_destroy (&payments);
    ml_processor_destroy (&processor);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
