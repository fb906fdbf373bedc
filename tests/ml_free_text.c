/*  ml_free_text: every free-text member of the admin API (ml_admin_argument's list, ml_text.h)
    refuses a card-like number, written plain or with spaces or dashes, through the real
    handlers of every op that takes one, and nothing is stored. */
#include "ml_admin.h"
#include "ml_autopay.h"
#include "ml_log.h"
#include "ml_payers.h"
#include "ml_payments.h"
#include "ml_processor.h"
#include "ml_selftest_support.h"
#include "ml_store.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

//  Rows in every table free text could reach, as one string to compare.
static void s_counts (ml_store_t *store, char *counts, size_t size)
{
    const char *tables[] = {"posting", "payment",          "charge",         "payment_link",
                            "payer",   "autopay_schedule", "selection_item", "staff_preference",
                            NULL};
    size_t used = 0;
    for (size_t index = 0; tables[index]; index++) {
        char sql[100];
        snprintf (sql, sizeof sql, "SELECT COUNT(*) FROM %s", tables[index]);
        ml_query_t *query = ml_odbc_query (ml_store_odbc (store), sql, NULL);
        int64_t rows = -1;
        assert (query && ml_query_fetch (query) == 1 && ml_query_int64 (query, 0, &rows) == 0);
        ml_query_destroy (&query);
        used += (size_t)snprintf (counts + used, size - used, "%s=%lld ", tables[index],
                                  (long long)rows);
    }
}

void ml_free_text_test (bool verbose)
{
    printf (" * ml_free_text: ");
    char directory[128], error[512];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    ml_payers_t *payers = ml_payers_new (ml_store_odbc (store), error, sizeof error);
    ml_processor_settings_t settings;
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    assert (payers && processor);
    //  No mailer: the refusals come before anything would be mailed.
    ml_payments_t *payments = ml_payments_new (store, payers, processor, NULL, error, sizeof error);
    ml_autopay_t *autopay = ml_autopay_new (store, payers, payments, NULL, error, sizeof error);
    assert (payments && autopay);
    ml_admin_parts_t parts = {store, payers, payments, NULL, autopay, NULL, NULL, NULL};
    const ml_selftest_item_t items[] = {{'I', "INV-1", "2026-01-10", "C-1", "M-1", 10000}};
    assert (ml_selftest_replica (store, items, 1) == 0);
    ml_admin_effects_t effects;
    json_t *account =
        json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "account-add", "firm", "acme", "number",
                   "OP-001", "type", "OPERATING", "currency", "USD", "merchant_account", "op");
    json_t *reply = ml_admin_execute (&parts, account, &effects);
    json_decref (reply);
    json_decref (account);
    //  A payer with a saved method and a schedule, for the ops that change them.
    const char *setup[] = {
        "{\"op\": \"payer-add\", \"firm\": \"acme\", \"name\": \"Pat\", \"email\":"
        " \"pat@example.com\"}",
        "{\"op\": \"method-add\", \"payer_id\": 1, \"token\": \"tok_test_1\", \"brand\":"
        " \"visa\", \"last4\": \"4242\", \"exp_month\": 12, \"exp_year\": 2099}",
        "{\"op\": \"autopay-add\", \"payer_id\": 1, \"method_id\": 1, \"name\": \"Monthly\","
        " \"account\": \"OP-001\", \"frequency\": \"monthly\", \"first_date\": \"2099-08-01\"}",
        NULL};
    for (size_t index = 0; setup[index]; index++) {
        json_t *request = json_loads (setup[index], 0, NULL);
        reply = ml_admin_execute (&parts, request, &effects);
        if (!json_is_true (json_object_get (reply, "ok"))) {
            char *shown = json_dumps (reply, 0);
            printf ("\n%s: %s\n", setup[index], shown);
            fflush (stdout);
            free (shown);
        }
        assert (json_is_true (json_object_get (reply, "ok")));
        json_decref (reply);
        json_decref (request);
    }

    //  Each op with what it needs besides the free text, and its free-text members.
    struct {
        const char *request, *members[3];
    } ops[] = {
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", \"amount\": \"10.00\"}",
         {"ar_message", "payer_name", NULL}},
        {"{\"op\": \"payment\", \"firm\": \"acme\", \"auto\": {\"client\": \"C-1\", \"amount\": "
         "\"10.00\"},"
         " \"payer_name\": \"Pat\", \"payer_email\": \"pat@example.com\", \"card\": {\"number\":"
         " \"4242424242424242\", \"exp_month\": 4, \"exp_year\": 2031, \"cvc\": \"123\"}}",
         {"ar_message", "payer_name", NULL}},
        {"{\"op\": \"link-create\", \"firm\": \"acme\", \"auto\": {\"client\": \"C-1\", "
         "\"amount\": \"10.00\"},"
         " \"payer_name\": \"Pat\", \"payer_email\": \"pat@example.com\"}",
         {"ar_message", "payer_name", NULL}},
        {"{\"op\": \"payer-add\", \"firm\": \"acme\", \"name\": \"Pat\", \"email\":"
         " \"pat@example.com\"}",
         {"name", NULL}},
        {"{\"op\": \"payer-edit\", \"payer_id\": 1}", {"name", NULL}},
        {"{\"op\": \"payer-list\", \"firm\": \"acme\"}", {"text", NULL}},
        {"{\"op\": \"search\", \"firm\": \"acme\", \"by\": \"client-name\", \"staff\": \"alice\"}",
         {"text", "staff", NULL}},
        {"{\"op\": \"autopay-add\", \"payer_id\": 1, \"method_id\": 1, \"name\": \"Monthly\","
         " \"account\": \"OP-001\", \"frequency\": \"monthly\", \"first_date\": \"2099-09-01\"}",
         {"name", "ar_message", NULL}},
        {"{\"op\": \"autopay-edit\", \"schedule_id\": 1}", {"name", "ar_message", NULL}},
        {"{\"op\": \"selection-add\", \"firm\": \"acme\", \"invoice\": \"INV-1\"}",
         {"staff", NULL}},
    };
    const char *cards[] = {"4111111111111111", "Pat 4111 1111 1111 1111",
                           "card 4111-1111-1111-1111 thanks", "5555 5555 5555 4444"};
    char before[400], after[400];
    s_counts (store, before, sizeof before);
    for (size_t op = 0; op < sizeof ops / sizeof ops[0]; op++)
        for (size_t member = 0; member < 3 && ops[op].members[member]; member++)
            for (size_t card = 0; card < sizeof cards / sizeof cards[0]; card++) {
                json_t *request = json_loads (ops[op].request, 0, NULL);
                assert (request);
                json_object_set_new (request, ops[op].members[member], json_string (cards[card]));
                memset (&effects, 0, sizeof effects);
                reply = ml_admin_execute (&parts, request, &effects);
                const char *text = json_string_value (json_object_get (reply, "error"));
                bool refused = reply && json_is_false (json_object_get (reply, "ok")) && text &&
                               strstr (text, "looks like a card number") &&
                               strstr (text, ops[op].members[member]) && !strstr (text, "1111") &&
                               !strstr (text, "4444");
                if (!refused || effects.search || *effects.deliver_firm) {
                    char *shown = json_dumps (reply, 0);
                    printf ("\n%s with %s = '%s': %s (search %p, deliver '%s')\n", ops[op].request,
                            ops[op].members[member], cards[card], shown ? shown : "no reply",
                            (void *)effects.search, effects.deliver_firm);
                    free (shown);
                    fflush (stdout);
                }
                assert (refused && !effects.search && !*effects.deliver_firm);
                json_decref (reply);
                json_decref (request);
            }
    s_counts (store, after, sizeof after);
    assert (streq (before, after));
    //  The same ops take ordinary text, numbers and dates included.
    json_t *plain =
        json_pack ("{s:s, s:s, s:s, s:s}", "op", "payer-add", "firm", "acme", "name",
                   "Pat Doe, client 2026-0042, tel. 555 0100", "email", "pat.doe@example.com");
    reply = ml_admin_execute (&parts, plain, &effects);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (plain);

    ml_autopay_destroy (&autopay);
    ml_payments_destroy (&payments);
    ml_processor_destroy (&processor);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    ml_log_setup (NULL, saved);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
