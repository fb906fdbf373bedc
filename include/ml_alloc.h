/*  ml_alloc: auto-apply allocation of a payment over open invoices.

    Oldest first: by invoice date, then by invoice number in natural order (INV-9 before
    INV-10). A line never receives more than the invoice's available balance (the matter
    system's balance minus postings not yet reflected in it). Trust is never auto-applied:
    callers pass invoices only.
*/
#ifndef ML_ALLOC_H_INCLUDED
#define ML_ALLOC_H_INCLUDED

#include "ml_msg.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char invoice_number[64];
    char invoice_date[11];
    int64_t available_minor;
} ml_alloc_item_t;

//  An open-item row of the store (invoice_number, invoice_date, available_minor) as the
//  allocator sees it.
void ml_alloc_item_from_json (const json_t *row, ml_alloc_item_t *item);

//  Order two items oldest first: the one invoice order of docs/contract.md ("Invoice
//  order"), which open-items, pay and Auto-Pay all use. Returns <0, 0 or >0 like strcmp.
int ml_alloc_compare (const ml_alloc_item_t *left, const ml_alloc_item_t *right);

//  Sort a JSON array of open-item rows (invoice_number, invoice_date) oldest first, in place.
void ml_alloc_sort_rows (json_t *rows);

//  The same order for rows that are JSON arrays (ml_store_table's), given the columns of the
//  invoice number and date.
void ml_alloc_sort_table (json_t *rows, size_t number_column, size_t date_column);

//  Sort items oldest first and pay amount over them, writing at most max_lines invoice
//  lines. Items with nothing available are skipped. *unapplied receives what could not be
//  allocated (0 when the amount was fully allocated). Returns the number of lines.
size_t ml_alloc_oldest_first (ml_alloc_item_t *items, size_t count, int64_t amount,
                              ml_line_t *lines, size_t max_lines, int64_t *unapplied);

void ml_alloc_test (bool verbose);

#endif
