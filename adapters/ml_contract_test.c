/*  ml_contract's selftest: every operation against a reference matter database (SQLite),
    and every dialect's longest search statement. */
#include "ml_contract_internal.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Make a small reference matter database with the repository's scripts. Shared with the
//  other selftests through ml_selftest_support.
extern int ml_selftest_matter_db (char *path, size_t size, int clients, int invoices);

void ml_contract_test (bool verbose)
{
    printf (" * ml_contract: ");
    char path[256];
    assert (ml_selftest_matter_db (path, sizeof path, 20, 200) == 0);
    char connection_string[512];
    snprintf (connection_string, sizeof connection_string,
              "Driver=SQLite3;Database=%s;StepAPI=1;FKSupport=1;Timeout=5000", path);
    ml_odbc_error_t error;
    assert (ml_contract_new ("oracle", connection_string, &error) == NULL);
    assert (strstr (error.message, "not supported"));
    ml_contract_t *contract = ml_contract_new ("sqlite", connection_string, &error);
    assert (contract);
    char text[512], epoch[64];
    assert (ml_contract_check (contract, text, sizeof text, epoch, sizeof epoch) == 0);
    assert (strlen (epoch) == 36);

    //  Page through every open invoice in small pages.
    ml_msg_t *batch = ml_msg_new (ML_MSG_SNAPSHOT);
    uint64_t after = 0;
    int total = 0, got;
    while ((got = ml_contract_open_items (contract, &after, 7, batch)) > 0)
        total += got;
    assert (got == 0 && total > 50 && (size_t)total == batch->item_count);
    for (size_t index = 0; index < batch->item_count; index++) {
        ml_item_t *item = &batch->items[index];
        assert (item->kind == 'I' && item->balance_minor > 0);
        assert (item->balance_minor <= item->total_minor);
        assert (strcmp (item->currency, "USD") == 0 && *item->invoice_number);
    }
    //  The snapshot reader returns every open invoice and then every trust balance.
    uint64_t trust_after = 0;
    ml_msg_t *trust = ml_msg_new (ML_MSG_SNAPSHOT);
    while (ml_contract_trust_balances (contract, &trust_after, 1000, trust) > 0)
        ;
    ml_msg_t *snapshot = ml_msg_new (ML_MSG_SNAPSHOT);
    assert (ml_contract_snapshot_begin (contract) == 0);
    int read;
    while ((read = ml_contract_snapshot_next (contract, 9, snapshot)) > 0)
        assert (read <= 9);
    assert (read == 0);
    assert (snapshot->item_count == batch->item_count + trust->item_count);
    assert (snapshot->items[batch->item_count].kind == 'T');
    ml_contract_snapshot_end (contract);
    ml_msg_destroy (&snapshot);
    ml_msg_destroy (&trust);

    //  Searches: each criterion finds what it should; hostile text finds nothing.
    ml_msg_t *request = ml_msg_new (ML_MSG_SEARCH);
    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    ml_search_t *search = &request->search;
    search->target = 'I';
    search->match = 'E';
    search->field = ML_FIELD_INVOICE_NUMBER;
    search->limit = 500;
    search->deadline_ms = 2000;
    snprintf (search->text, sizeof search->text, "%s", batch->items[3].invoice_number);
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    assert (answer->item_count == 1 && answer->items[0].source_id == batch->items[3].source_id);
    //  Client number, exact, in lower case, pages of 2 that end with next = 0.
    search->field = ML_FIELD_CLIENT_NUMBER;
    snprintf (search->text, sizeof search->text, "%s", batch->items[0].client_number);
    for (char *cursor = search->text; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    size_t expected = 0;
    for (size_t index = 0; index < batch->item_count; index++)
        expected += strcmp (batch->items[index].client_number, batch->items[0].client_number) == 0;
    search->limit = 2;
    size_t found = 0;
    do {
        assert (ml_contract_search (contract, search, answer) == 0);
        assert (answer->code == ML_SEARCH_OK && answer->item_count <= 2);
        found += answer->item_count;
        search->after = answer->next;
    } while (answer->next);
    assert (found == expected);
    search->after = 0;
    search->limit = 500;
    const char *hostile[] = {"'; DROP TABLE invoice; --", "%", "_", "!%", "["};
    for (size_t index = 0; index < sizeof hostile / sizeof hostile[0]; index++) {
        search->field = ML_FIELD_CLIENT_NAME;
        search->match = 'C';
        snprintf (search->text, sizeof search->text, "%s", hostile[index]);
        assert (ml_contract_search (contract, search, answer) == 0);
        assert (answer->code == ML_SEARCH_OK && answer->item_count == 0);
    }
    memset (search->text, 'x', sizeof search->text - 1);
    search->text[sizeof search->text - 1] = 0;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    //  A scoped search with an empty scope shows nothing; an invoice scope shows only it.
    search->field = ML_FIELD_NONE;
    *search->text = 0;
    search->scoped = 1;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    assert (ml_msg_add_scope (request, ML_SCOPE_INVOICES, batch->items[5].invoice_number) == 0);
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 1);
    assert (answer->items[0].source_id == batch->items[5].source_id);
    search->target = 'T';
    assert (ml_contract_search (contract, search, answer) == 0 && answer->item_count == 0);
    search->target = 'I';
    //  The longest statement: three scope lists, a field and every filter (the payer's view
    //  of one client's invoices by name), through the search views.
    assert (ml_msg_add_scope (request, ML_SCOPE_CLIENTS, batch->items[5].client_number) == 0);
    assert (ml_msg_add_scope (request, ML_SCOPE_MATTERS, batch->items[5].matter_number) == 0);
    search->field = ML_FIELD_CLIENT_NAME;
    search->match = 'E';
    snprintf (search->text, sizeof search->text, "%s", batch->items[5].client_name);
    strcpy (search->date_from, "2000-01-01");
    strcpy (search->date_to, "2100-01-01");
    search->amount_filter = ML_AMOUNT_MIN | ML_AMOUNT_MAX | ML_AMOUNT_CURRENCY;
    search->amount_min = 1;
    search->amount_max = INT64_MAX;
    strcpy (search->amount_currency, "USD");
    search->status = ML_STATUS_CURRENT;
    strcpy (search->as_of, "2000-01-01");
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    assert (answer->item_count >= 1 && answer->items[0].source_id <= batch->items[5].source_id);
    //  Each dialect's longest statement fits its buffer with room to spare.
    for (size_t index = 0; index < ml_contract_dialect_count; index++) {
        ml_contract_statement_t statement = {.length = 0};
        ml_contract_search_values_t values = {.pattern = "x"};
        char *scope_json[3] = {NULL, NULL, NULL};
        ml_contract_search_statement (&statement, &ml_contract_dialects[index], search, &values,
                                      ml_contract_dialects[index].search_keys, false, scope_json);
        if (verbose)
            printf ("%s: longest search statement %zu bytes\n", ml_contract_dialects[index].name,
                    statement.length);
        assert (statement.length < sizeof statement.sql * 3 / 4);
        for (int list = 0; list < 3; list++)
            free (scope_json[list]);
    }
    search->target = 'T';
    search->field = ML_FIELD_NONE;
    *search->text = *search->date_from = *search->date_to = 0;
    search->amount_filter = 0;
    search->status = ML_STATUS_ANY;
    assert (ml_contract_search (contract, search, answer) == 0 && answer->code == ML_SEARCH_OK);
    ml_msg_destroy (&answer);
    ml_msg_destroy (&request);

    //  Pay the first open invoice in part and see the change.
    ml_item_t first = batch->items[0];
    uint64_t high_water = 0;
    assert (ml_contract_high_water (contract, &high_water) == 0);
    ml_msg_t *posting = ml_msg_new (ML_MSG_POSTING);
    strcpy (posting->posting.posting_uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.received_on, "2026-11-22");
    strcpy (posting->posting.account_number, "OP-001");
    strcpy (posting->posting.client_number, first.client_number);
    strcpy (posting->posting.currency, "USD");
    strcpy (posting->posting.payer_name, "Pat O'Brien");
    strcpy (posting->posting.ar_message, "front desk; \"cash\"");
    posting->posting.amount_minor = 1;
    ml_line_t line = {'I', "", 1};
    strcpy (line.reference, first.invoice_number);
    assert (ml_msg_set_lines (posting, &line, 1) == 0);
    ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "posted") == 0 && *result->receipt_id);
    assert (result->cursor > high_water);
    char receipt[64];
    strcpy (receipt, result->receipt_id);
    //  The same posting again returns the same receipt and writes nothing.
    uint64_t before = result->cursor;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->receipt_id, receipt) == 0 && result->cursor == before);
    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    uint64_t last = 0;
    assert (ml_contract_changes (contract, high_water, before, 100, changes, &last) >= 1);
    assert (last == before);
    bool seen = false;
    for (size_t index = 0; index < changes->item_count; index++)
        if (changes->items[index].source_id == first.source_id) {
            assert (changes->items[index].balance_minor == first.balance_minor - 1);
            seen = true;
        }
    assert (seen);

    //  Over the balance: a recorded business rejection, returned again on replay.
    strcpy (posting->posting.posting_uuid, "1f8fad5b-d9cb-469f-a165-70867728950e");
    posting->posting.amount_minor = first.total_minor + 1;
    posting->posting.lines[0].amount_minor = first.total_minor + 1;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "amount_over_balance") == 0);
    posting->posting.lines[0].amount_minor = 1;
    posting->posting.amount_minor = 1;
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "amount_over_balance") == 0);

    //  A reversal of the first posting gives the amount back: a result of its own, "R-" and
    //  the reversal's id, and the invoice's balance restored; a second one would exceed it.
    strcpy (posting->posting.posting_uuid, "3f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.reverses, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.processor_txn, "re_1");
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "posted") == 0 && strncmp (result->receipt_id, "R-", 2) == 0);
    ml_msg_clear_items (changes);
    assert (ml_contract_changes (contract, before, result->cursor, 100, changes, &last) >= 1);
    assert (changes->items[changes->item_count - 1].source_id == first.source_id);
    assert (changes->items[changes->item_count - 1].balance_minor == first.balance_minor);
    strcpy (posting->posting.posting_uuid, "4f8fad5b-d9cb-469f-a165-70867728950e");
    assert (ml_contract_apply (contract, &posting->posting, result) == 0);
    assert (strcmp (result->status, "rejected") == 0);
    assert (strcmp (result->reason, "reversal_exceeds_original") == 0);
    *posting->posting.reverses = 0;

    //  A batch of three where the middle one is over its balance: rolled back as a whole,
    //  then applied one by one, so the other two post and the bad one is rejected.
    ml_msg_t *batch_postings[3], *batch_results[3];
    ml_posting_t *batch_view[3];
    for (int index = 0; index < 3; index++) {
        ml_item_t *item = &batch->items[index + 1];
        batch_postings[index] = ml_msg_new (ML_MSG_POSTING);
        ml_posting_t *entry = &batch_postings[index]->posting;
        snprintf (entry->posting_uuid, sizeof entry->posting_uuid,
                  "2f8fad5b-d9cb-469f-a165-70867728950%d", index);
        strcpy (entry->received_on, "2026-11-22");
        strcpy (entry->account_number, "OP-001");
        strcpy (entry->client_number, item->client_number);
        strcpy (entry->currency, "USD");
        entry->amount_minor = index == 1 ? item->balance_minor + 1 : 100;
        ml_line_t entry_line = {'I', "", entry->amount_minor};
        strcpy (entry_line.reference, item->invoice_number);
        assert (ml_msg_set_lines (batch_postings[index], &entry_line, 1) == 0);
        batch_view[index] = entry;
        batch_results[index] = ml_msg_new (ML_MSG_POSTING_RESULT);
    }
    assert (ml_contract_apply_batch (contract, batch_view, 3, batch_results) == 3);
    assert (strcmp (batch_results[0]->status, "posted") == 0);
    assert (strcmp (batch_results[1]->status, "rejected") == 0);
    assert (strcmp (batch_results[1]->reason, "amount_over_balance") == 0);
    assert (strcmp (batch_results[2]->status, "posted") == 0);
    //  Replayed as a batch: the same answers, nothing new written.
    assert (ml_contract_apply_batch (contract, batch_view, 3, batch_results) == 3);
    assert (strcmp (batch_results[0]->status, "posted") == 0 &&
            strcmp (batch_results[1]->status, "rejected") == 0);
    for (int index = 0; index < 3; index++) {
        ml_msg_destroy (&batch_postings[index]);
        ml_msg_destroy (&batch_results[index]);
    }

    ml_msg_destroy (&changes);
    ml_msg_destroy (&result);
    ml_msg_destroy (&posting);
    ml_msg_destroy (&batch);
    ml_contract_destroy (&contract);
    ml_contract_destroy (&contract);
    unlink (path);
    printf ("OK\n");
}
