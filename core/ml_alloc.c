/*  ml_alloc: oldest-first allocation. See include/ml_alloc.h. */
#include "ml_alloc.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Natural order: runs of digits compare by value, everything else byte by byte.
static int s_natural_compare (const char *left, const char *right)
{
    while (*left && *right) {
        if (isdigit ((unsigned char)*left) && isdigit ((unsigned char)*right)) {
            while (*left == '0')
                left++;
            while (*right == '0')
                right++;
            size_t left_digits = 0, right_digits = 0;
            while (isdigit ((unsigned char)left[left_digits]))
                left_digits++;
            while (isdigit ((unsigned char)right[right_digits]))
                right_digits++;
            if (left_digits != right_digits)
                return left_digits < right_digits ? -1 : 1;
            int order = strncmp (left, right, left_digits);
            if (order)
                return order;
            left += left_digits;
            right += right_digits;
        } else {
            if (*left != *right)
                return (unsigned char)*left < (unsigned char)*right ? -1 : 1;
            left++;
            right++;
        }
    }
    return *left ? 1 : *right ? -1 : 0;
}

void ml_alloc_item_from_json (const json_t *row, ml_alloc_item_t *item)
{
    const char *number = json_string_value (json_object_get (row, "invoice_number"));
    const char *date = json_string_value (json_object_get (row, "invoice_date"));
    snprintf (item->invoice_number, sizeof item->invoice_number, "%s", number ? number : "");
    snprintf (item->invoice_date, sizeof item->invoice_date, "%s", date ? date : "");
    item->available_minor = json_integer_value (json_object_get (row, "available_minor"));
}

int ml_alloc_compare (const ml_alloc_item_t *left, const ml_alloc_item_t *right)
{
    //  ISO dates order as text. An invoice without a date sorts last: never pay an
    //  undated invoice before a dated one.
    if (!*left->invoice_date != !*right->invoice_date)
        return *left->invoice_date ? -1 : 1;
    int order = strcmp (left->invoice_date, right->invoice_date);
    if (order)
        return order;
    order = s_natural_compare (left->invoice_number, right->invoice_number);
    return order ? order : strcmp (left->invoice_number, right->invoice_number);
}

static int s_compare (const void *left, const void *right)
{
    return ml_alloc_compare (left, right);
}

typedef struct {
    ml_alloc_item_t item;
    json_t *row; //  borrowed
} s_sortable_row_t;

static int s_compare_rows (const void *left, const void *right)
{
    return ml_alloc_compare (&((const s_sortable_row_t *)left)->item,
                             &((const s_sortable_row_t *)right)->item);
}

//  Sort rows in place by the allocator's order, each row's sort key read by item_of.
static void s_sort (json_t *rows,
                    void (*item_of) (const json_t *row, const size_t *columns,
                                     ml_alloc_item_t *item),
                    const size_t *columns)
{
    size_t count = json_array_size (rows);
    if (count < 2)
        return;
    s_sortable_row_t *sortable = calloc (count, sizeof (s_sortable_row_t));
    assert (sortable);
    for (size_t index = 0; index < count; index++) {
        sortable[index].row = json_incref (json_array_get (rows, index));
        item_of (sortable[index].row, columns, &sortable[index].item);
    }
    qsort (sortable, count, sizeof (s_sortable_row_t), s_compare_rows);
    json_array_clear (rows);
    for (size_t index = 0; index < count; index++)
        json_array_append_new (rows, sortable[index].row);
    free (sortable);
}

static void s_item_of_object (const json_t *row, const size_t *columns, ml_alloc_item_t *item)
{
    (void)columns;
    ml_alloc_item_from_json (row, item);
}

//  columns: the invoice number's and the invoice date's positions in the row.
static void s_item_of_array (const json_t *row, const size_t *columns, ml_alloc_item_t *item)
{
    const char *number = json_string_value (json_array_get (row, columns[0]));
    const char *date = json_string_value (json_array_get (row, columns[1]));
    snprintf (item->invoice_number, sizeof item->invoice_number, "%s", number ? number : "");
    snprintf (item->invoice_date, sizeof item->invoice_date, "%s", date ? date : "");
    item->available_minor = 0;
}

void ml_alloc_sort_rows (json_t *rows)
{
    s_sort (rows, s_item_of_object, NULL);
}

void ml_alloc_sort_table (json_t *rows, size_t number_column, size_t date_column)
{
    const size_t columns[2] = {number_column, date_column};
    s_sort (rows, s_item_of_array, columns);
}

size_t ml_alloc_oldest_first (ml_alloc_item_t *items, size_t count, int64_t amount,
                              ml_line_t *lines, size_t max_lines, int64_t *unapplied)
{
    assert (amount >= 0 && unapplied);
    qsort (items, count, sizeof (ml_alloc_item_t), s_compare);
    size_t line_count = 0;
    int64_t left = amount;
    for (size_t index = 0; index < count && left > 0 && line_count < max_lines; index++) {
        if (items[index].available_minor <= 0)
            continue;
        int64_t pay = items[index].available_minor < left ? items[index].available_minor : left;
        ml_line_t *line = &lines[line_count++];
        memset (line, 0, sizeof *line);
        line->kind = 'I';
        snprintf (line->reference, sizeof line->reference, "%s", items[index].invoice_number);
        line->amount_minor = pay;
        left -= pay;
    }
    *unapplied = left;
    return line_count;
}

//  Property test: for random invoices and random amounts, the allocation sums exactly to the
//  amount (minus what is reported unapplied), never exceeds a balance, pays in oldest-first
//  order, and pays an invoice only after every older one is paid in full.
static void s_property_test (void)
{
    enum { S_ROUNDS = 3000, S_MOST = 60 };
    unsigned seed = 20261122;
    ml_alloc_item_t items[S_MOST], sorted[S_MOST];
    ml_line_t lines[S_MOST];
    for (int round = 0; round < S_ROUNDS; round++) {
        size_t count = 1 + (size_t)(rand_r (&seed) % S_MOST);
        int64_t total = 0;
        for (size_t index = 0; index < count; index++) {
            //  Few distinct dates, so number order decides often; some nothing available.
            snprintf (items[index].invoice_number, sizeof items[index].invoice_number, "INV-%zu",
                      index * 7 % count);
            static const char *dates[] = {"2026-01-10", "2026-01-11", "2026-02-10", ""};
            snprintf (items[index].invoice_date, sizeof items[index].invoice_date, "%s",
                      dates[rand_r (&seed) % 4]);
            items[index].available_minor =
                rand_r (&seed) % 5 == 0 ? 0 : 1 + (int64_t)(rand_r (&seed) % 2000000);
            total += items[index].available_minor;
        }
        int64_t amount = 1 + (int64_t)(rand_r (&seed) % (uint64_t)(total + total / 4 + 2));
        size_t max_lines = 1 + (size_t)(rand_r (&seed) % S_MOST);
        int64_t unapplied = -1;
        memcpy (sorted, items, sizeof items);
        size_t made = ml_alloc_oldest_first (sorted, count, amount, lines, max_lines, &unapplied);
        int64_t sum = 0;
        size_t item = 0;
        for (size_t line = 0; line < made; line++) {
            //  The next invoice with something available, in order: every one before it was
            //  paid in full by the previous line.
            while (item < count && sorted[item].available_minor <= 0)
                item++;
            assert (item < count);
            assert (strcmp (lines[line].reference, sorted[item].invoice_number) == 0);
            assert (lines[line].amount_minor > 0);
            assert (lines[line].amount_minor <= sorted[item].available_minor);
            if (line + 1 < made)
                assert (lines[line].amount_minor == sorted[item].available_minor);
            if (item > 0)
                assert (ml_alloc_compare (&sorted[item - 1], &sorted[item]) <= 0);
            sum += lines[line].amount_minor;
            item++;
        }
        assert (unapplied >= 0 && sum + unapplied == amount);
        //  Something is left unapplied only when the invoices (or the lines) ran out.
        if (unapplied > 0)
            assert (amount > total || made == max_lines);
    }
}

void ml_alloc_test (bool verbose)
{
    printf (" * ml_alloc: ");
    s_property_test ();
    ml_alloc_item_t items[] = {
        {"INV-10", "2026-03-01", 5000}, {"INV-9", "2026-03-01", 2500},
        {"INV-2", "2026-04-01", 100},   {"INV-1", "", 700},
        {"INV-3", "2025-12-31", 0},     {"INV-4", "2026-01-15", 1},
    };
    ml_line_t lines[10];
    int64_t unapplied = -1;
    size_t count = ml_alloc_oldest_first (items, 6, 7000, lines, 10, &unapplied);
    //  INV-3 has nothing available; INV-4 (January) first, then INV-9 before INV-10.
    assert (count == 3 && unapplied == 0);
    assert (strcmp (lines[0].reference, "INV-4") == 0 && lines[0].amount_minor == 1);
    assert (strcmp (lines[1].reference, "INV-9") == 0 && lines[1].amount_minor == 2500);
    assert (strcmp (lines[2].reference, "INV-10") == 0 && lines[2].amount_minor == 4499);
    //  More than everything: every balance paid in full, the rest reported, undated last.
    count = ml_alloc_oldest_first (items, 6, 10000, lines, 10, &unapplied);
    assert (count == 5 && unapplied == 10000 - 8301);
    assert (strcmp (lines[4].reference, "INV-1") == 0 && lines[4].amount_minor == 700);
    //  The line cap holds.
    count = ml_alloc_oldest_first (items, 6, 10000, lines, 2, &unapplied);
    assert (count == 2 && unapplied == 10000 - 2501);
    //  The invoice order of docs/contract.md, rule by rule: a date first, undated last; digit
    //  runs by value, whatever their length or leading zeros; equal values by their text
    //  ("07" before "7"); other characters by their bytes, so digits come before letters and
    //  capitals before small letters.
    const char *ordered[][2] = {
        {"2026-01-02", "Z-1"},
        {"2026-01-03", "A-1"},
        {"2026-01-03", "A-1b"},
        {"2026-01-03", "A-2"},
        {"2026-01-03", "A-07"},
        {"2026-01-03", "A-7"},
        {"2026-01-03", "A-10"},
        {"2026-01-03", "A-99"},
        {"2026-01-03", "A-0100"},
        {"2026-01-03", "A-100a"},
        {"2026-01-03", "A1"},
        {"2026-01-03", "AB"},
        {"2026-01-03", "a-1"},
        {"", "A-1"},
        {"", "B-1"},
    };
    size_t ordered_count = sizeof ordered / sizeof ordered[0];
    json_t *rows = json_array ();
    for (size_t index = ordered_count; index-- > 0;)
        json_array_append_new (rows, json_pack ("{s:s, s:s, s:I}", "invoice_date",
                                                ordered[index][0], "invoice_number",
                                                ordered[index][1], "available_minor", 1));
    ml_alloc_sort_rows (rows);
    for (size_t index = 0; index < ordered_count; index++) {
        json_t *row = json_array_get (rows, index);
        if (verbose || strcmp (json_string_value (json_object_get (row, "invoice_number")),
                               ordered[index][1]) != 0)
            printf ("\n   %zu: %s %s", index,
                    json_string_value (json_object_get (row, "invoice_date")),
                    json_string_value (json_object_get (row, "invoice_number")));
        assert (strcmp (json_string_value (json_object_get (row, "invoice_number")),
                        ordered[index][1]) == 0);
        assert (strcmp (json_string_value (json_object_get (row, "invoice_date")),
                        ordered[index][0]) == 0);
    }
    json_decref (rows);
    //  Random property: lines sum to amount minus unapplied, never above a balance,
    //  in non-decreasing order.
    unsigned int seed = 11;
    for (int round = 0; round < 500; round++) {
        ml_alloc_item_t random_items[40];
        size_t item_count = 1 + (size_t)rand_r (&seed) % 40;
        int64_t total = 0;
        for (size_t index = 0; index < item_count; index++) {
            snprintf (random_items[index].invoice_number, 64, "INV-%d", rand_r (&seed) % 1000);
            int month = 1 + rand_r (&seed) % 12, day = 1 + rand_r (&seed) % 28;
            char date[32];
            snprintf (date, sizeof date, "2026-%02d-%02d", month, day);
            memcpy (random_items[index].invoice_date, date, 11);
            random_items[index].available_minor = rand_r (&seed) % 100000;
            total += random_items[index].available_minor;
        }
        int64_t amount = rand_r (&seed) % (total + 2);
        ml_line_t random_lines[40];
        count =
            ml_alloc_oldest_first (random_items, item_count, amount, random_lines, 40, &unapplied);
        int64_t sum = 0;
        for (size_t index = 0; index < count; index++) {
            assert (random_lines[index].amount_minor > 0);
            sum += random_lines[index].amount_minor;
        }
        assert (sum + unapplied == amount);
        assert (unapplied == (amount > total ? amount - total : 0));
        for (size_t index = 1; index < item_count; index++)
            assert (ml_alloc_compare (&random_items[index - 1], &random_items[index]) <= 0);
    }
    printf ("OK\n");
}
