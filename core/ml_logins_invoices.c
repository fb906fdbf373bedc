/*  ml_logins' portal-invoices: the payer's open invoices and trust ledgers, kept to what
    the payer's associations name, grouped and sorted as the portal shows them. */
#include "ml_logins_internal.h"
#include "ml_admin.h"
#include "ml_alloc.h"
#include "ml_log.h"
#include "ml_store.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_listed (const json_t *list, const char *number)
{
    size_t index;
    json_t *value;
    json_array_foreach (list, index, value)
    {
        if (number && *number && streq (json_string_value (value), number))
            return true;
    }
    return false;
}

//  The columns of the trust ledgers of a listing (portal-invoices "trust_columns").
static const char *const s_ledger_columns[] = {
    "client_number", "client_name", "matter_number", "matter_description", "currency",
    "balance_minor", NULL};
enum { S_ITEM_NUMBER = 0, S_ITEM_DATE = 1, S_ITEM_CLIENT = 3, S_ITEM_MATTER = 5 };
enum { S_LEDGER_CLIENT = 0, S_LEDGER_MATTER = 2 };

//  A text cell of a listing row, "" when null (for ordering and keys).
static const char *s_cell (const json_t *row, size_t column)
{
    const char *text = json_string_value (json_array_get (row, column));
    return text ? text : "";
}

static int s_ledger_compare (const void *a, const void *b)
{
    const json_t *left = *(const json_t *const *)a, *right = *(const json_t *const *)b;
    int order = strcmp (s_cell (left, S_LEDGER_CLIENT), s_cell (right, S_LEDGER_CLIENT));
    return order ? order : strcmp (s_cell (left, S_LEDGER_MATTER), s_cell (right, S_LEDGER_MATTER));
}

//  Trust ledgers by client, then matter.
static void s_sort_ledgers (json_t *ledgers)
{
    size_t size = json_array_size (ledgers);
    if (size < 2)
        return;
    json_t **rows = calloc (size, sizeof (json_t *));
    assert (rows);
    for (size_t index = 0; index < size; index++)
        rows[index] = json_incref (json_array_get (ledgers, index));
    qsort (rows, size, sizeof (json_t *), s_ledger_compare);
    json_array_clear (ledgers);
    for (size_t index = 0; index < size; index++)
        json_array_append_new (ledgers, rows[index]);
    free (rows);
}

//  Drop the rows that equal the row before them in both key columns (a sorted listing that
//  two associations reach lists an invoice or a ledger once), and every row that none of
//  the payer's associations reaches (what the queries asked for, checked again here: the
//  replica holds the whole firm, the payer sees only what the firm associated).
static void s_keep_listed (json_t *rows, size_t first_key, size_t second_key, const json_t *clients,
                           const json_t *matters, const json_t *invoices, size_t client_column,
                           size_t matter_column, size_t invoice_column)
{
    json_t *kept = json_array ();
    json_t *previous = NULL;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (previous && streq (s_cell (row, first_key), s_cell (previous, first_key)) &&
            streq (s_cell (row, second_key), s_cell (previous, second_key)))
            continue;
        if (!s_listed (clients, s_cell (row, client_column)) &&
            !s_listed (matters, s_cell (row, matter_column)) &&
            (invoice_column == SIZE_MAX || !s_listed (invoices, s_cell (row, invoice_column))))
            continue;
        json_array_append (kept, row);
        previous = row;
    }
    json_array_clear (rows);
    json_array_extend (rows, kept);
    json_decref (kept);
}

static json_t *s_column_names (const char *const *names)
{
    json_t *columns = json_array ();
    for (size_t index = 0; names[index]; index++)
        json_array_append_new (columns, json_string (names[index]));
    return columns;
}

//  The portal's invoice listing of one payer: what portal-invoices answers the payer, and
//  payer-portal-invoices a firm's staff ("View as payer"), from this one function so the two
//  can never differ. Rows are arrays of the columns named beside them (item_columns,
//  trust_columns): the payer's pages are the core's most frequent requests, and a listing
//  as arrays is a third of the size and far cheaper to build and to read than as objects.
json_t *ml_logins_portal_invoices (ml_logins_t *self, int64_t payer_id)
{
    char firm_id[64];
    json_t *scope = NULL;
    int found = ml_payers_scope (self->payers, payer_id, firm_id, sizeof firm_id, &scope);
    if (found <= 0)
        return found < 0 ? ml_logins_store_failed (self, "portal-invoices")
                         : ml_admin_error ("not found");
    json_t *clients = json_object_get (scope, "clients"),
           *matters = json_object_get (scope, "matters"),
           *invoices = json_object_get (scope, "invoices");
    bool failed = false;
    json_t *firm = ml_logins_row (
        ml_db_query (self->db, "SELECT name FROM firm WHERE firm_id = ?", "s", firm_id), &failed);
    //  Each association is read through its own index: reading the whole firm's replica for
    //  each page took the core 200 ms at 16,000 invoices (bench/web.sh).
    json_t *open = json_array (), *trust = json_array ();
    const char *kinds[3] = {"clients", "matters", "invoices"};
    for (size_t kind = 0; kind < 3 && open && trust; kind++) {
        size_t index;
        json_t *entry;
        json_array_foreach (json_object_get (scope, kinds[kind]), index, entry)
        {
            const char *value = json_string_value (entry);
            json_t *rows =
                ml_store_open_item_table (self->store, firm_id, kind == 0 ? value : NULL,
                                          kind == 1 ? value : NULL, kind == 2 ? value : NULL);
            json_t *ledgers =
                kind == 2
                    ? json_array ()
                    : ml_store_table (
                          ml_db_query (self->db,
                                       kind == 0
                                           ? "SELECT client_number, client_name, matter_number,"
                                             " matter_description, currency, balance_minor"
                                             " FROM open_item WHERE firm_id = ? AND kind = 'T'"
                                             " AND client_number = ?"
                                           : "SELECT client_number, client_name, matter_number,"
                                             " matter_description, currency, balance_minor"
                                             " FROM open_item WHERE firm_id = ? AND kind = 'T'"
                                             " AND matter_number = ?",
                                       "ss", firm_id, value),
                          ml_logins_integer_column);
            if (!rows || !ledgers) {
                json_decref (rows);
                json_decref (ledgers);
                json_decref (open);
                json_decref (trust);
                open = trust = NULL;
                break;
            }
            json_array_extend (open, rows);
            json_array_extend (trust, ledgers);
            json_decref (rows);
            json_decref (ledgers);
        }
    }
    json_t *reply = NULL;
    if (!firm || !open || !trust)
        reply = ml_logins_store_failed (self, "portal-invoices");
    else {
        ml_alloc_sort_table (open, S_ITEM_NUMBER, S_ITEM_DATE);
        s_sort_ledgers (trust);
        //  The same invoice sorts next to itself (number, then date, is one key); the same
        //  ledger too (client, matter).
        s_keep_listed (open, S_ITEM_NUMBER, S_ITEM_DATE, clients, matters, invoices, S_ITEM_CLIENT,
                       S_ITEM_MATTER, S_ITEM_NUMBER);
        s_keep_listed (trust, S_LEDGER_CLIENT, S_LEDGER_MATTER, clients, matters, NULL,
                       S_LEDGER_CLIENT, S_LEDGER_MATTER, SIZE_MAX);
        reply = ml_admin_ok (
            json_pack ("{s:s, s:o, s:O, s:o, s:O}", "firm_name", ml_logins_text (firm, "name"),
                       "item_columns", s_column_names (ml_store_item_columns), "items", open,
                       "trust_columns", s_column_names (s_ledger_columns), "trust", trust));
    }
    json_decref (firm);
    json_decref (open);
    json_decref (trust);
    json_decref (scope);
    return reply;
}
