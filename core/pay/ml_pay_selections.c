/*  ml_payments, part of the class (see include/ml_payments.h): each staff user's selection, and
 * paying it (selection ops). */
#include "ml_pay_internal.h"

//  Selections -------------------------------------------------------------------------------

#define S_SELECTION_MAX 500

//  The staff user's selection as the lines of a payment ({invoice|trust, amount_minor}),
//  whole available balances filled in for invoices without an amount. NULL on a store error.
static json_t *s_selection_lines (ml_payments_t *self, const char *firm, const char *staff)
{
    json_t *items = ml_store_rows (
        ml_db_query (self->db,
                     "SELECT kind, number, amount_minor FROM selection_item WHERE firm_id = ?"
                     " AND staff = ? ORDER BY added_at, number",
                     "ss", firm, staff),
        ml_pay_integer_column);
    if (!items)
        return NULL;
    json_t *lines = json_array ();
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        const char *kind = json_string_value (json_object_get (item, "kind"));
        const char *number = json_string_value (json_object_get (item, "number"));
        json_t *amount = json_object_get (item, "amount_minor");
        json_int_t minor = json_integer_value (amount);
        if (json_is_null (amount) || !amount) {
            json_t *open = ml_store_open_items (self->store, firm, NULL, NULL, number);
            minor =
                json_integer_value (json_object_get (json_array_get (open, 0), "available_minor"));
            json_decref (open);
        }
        json_array_append_new (lines,
                               json_pack ("{s:s, s:I}", kind, number, "amount_minor", minor));
    }
    json_decref (items);
    return lines;
}

//  The selection's lines as staff see them at "Allocate": each with what the replica knows of
//  it (client, matter, dates, currency, balance, pending and available; for trust, the ledger's
//  balance), invoices oldest first (the order "one total" is applied in, ml_alloc), then trust.
//  amount_minor is null for an invoice paid in full. An invoice no longer open has "open":
//  false and nothing available. NULL on a store error.
static json_t *s_selection_items (ml_payments_t *self, const char *firm, const char *staff)
{
    json_t *rows = ml_store_rows (
        ml_db_query (self->db,
                     "SELECT kind, number, amount_minor FROM selection_item WHERE firm_id = ?"
                     " AND staff = ? ORDER BY added_at, number",
                     "ss", firm, staff),
        ml_pay_integer_column);
    if (!rows)
        return NULL;
    json_t *invoices = json_array (), *trust = json_array ();
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        const char *kind = json_string_value (json_object_get (row, "kind"));
        const char *number = json_string_value (json_object_get (row, "number"));
        json_t *amount = json_object_get (row, "amount_minor");
        json_t *item = NULL;
        if (streq (kind, "invoice")) {
            json_t *open = ml_store_open_items (self->store, firm, NULL, NULL, number);
            item = json_deep_copy (json_array_get (open, 0));
            json_decref (open);
            if (item)
                json_object_set_new (item, "open", json_true ());
            else
                item = json_pack ("{s:s, s:b, s:I, s:I}", "invoice_number", number, "open", 0,
                                  "available_minor", (json_int_t)0, "balance_minor", (json_int_t)0);
        } else {
            json_t *matter = ml_store_matter (self->store, firm, number);
            item = json_pack ("{s:s, s:O, s:O, s:O}", "matter_number", number, "client_number",
                              json_object_get (matter, "client_number")
                                  ? json_object_get (matter, "client_number")
                                  : json_null (),
                              "currency",
                              json_object_get (matter, "trust_currency")
                                  ? json_object_get (matter, "trust_currency")
                                  : json_null (),
                              "balance_minor",
                              json_object_get (matter, "trust_balance_minor")
                                  ? json_object_get (matter, "trust_balance_minor")
                                  : json_null ());
            json_decref (matter);
        }
        json_object_set_new (item, "kind", json_string (kind));
        json_object_set_new (item, "number", json_string (number));
        json_object_set (item, "amount_minor", amount ? amount : json_null ());
        json_array_append_new (streq (kind, "invoice") ? invoices : trust, item);
    }
    json_decref (rows);
    ml_alloc_sort_rows (invoices);
    json_array_extend (invoices, trust);
    json_decref (trust);
    return invoices;
}

json_t *ml_pay_selection (ml_payments_t *self, const char *op, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    const char *invoice = ml_admin_argument (request, "invoice", 63, problem, sizeof problem);
    const char *matter = ml_admin_argument (request, "trust", 63, problem, sizeof problem);
    json_t *amount = json_object_get (request, "amount_minor");
    if (*problem || !firm || !staff || !*staff)
        return ml_admin_error ("'firm' and 'staff' are required%s%s", *problem ? ": " : "",
                               problem);
    //  A firm that does not exist has no selections: said, not answered with an empty one.
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_unknown_firm (self->store, firm);
    json_decref (known);
    ml_store_now (now, sizeof now);
    if (streq (op, "selection-add") || streq (op, "selection-remove")) {
        if (!invoice == !matter)
            return ml_admin_error ("name one 'invoice' or one 'trust' (a matter number)");
        if (amount && (!json_is_integer (amount) || json_integer_value (amount) < 1))
            return ml_admin_error ("'amount_minor' must be a whole number above 0");
    }
    const char *kind = invoice ? "invoice" : "trust";
    const char *number = invoice ? invoice : matter;
    if (streq (op, "selection-add")) {
        //  The same checks a payment makes, so the selection never holds what cannot be paid.
        json_t *line = json_pack ("{s:s, s:I}", kind, number, "amount_minor",
                                  amount ? json_integer_value (amount) : (json_int_t)1);
        if (matter && !amount) {
            json_decref (line);
            return ml_admin_error ("trust is allocated by hand: give 'amount_minor'");
        }
        ml_pay_group_t groups[2] = {{"OPERATING", "", 0, json_array ()},
                                    {"TRUST", "", 0, json_array ()}};
        char client[64] = "";
        json_t *refused = ml_pay_explicit_line (self, firm, line, &groups[0], &groups[1], client);
        json_decref (line);
        json_decref (groups[0].lines);
        json_decref (groups[1].lines);
        if (refused)
            return refused;
        json_t *count = ml_pay_rows (self,
                                     "SELECT COUNT (*) AS attempts FROM selection_item WHERE"
                                     " firm_id = ?",
                                     "s", firm);
        bool full = json_integer_value (json_object_get (json_array_get (count, 0), "attempts")) >=
                    S_SELECTION_MAX * 20;
        json_decref (count);
        if (full)
            return ml_admin_error ("too many selections are open at this firm; pay or clear some");
        //  Without an amount the invoice's whole available balance is paid, as it is then.
        bool stored = ml_db_begin (self->db) == 0;
        const char *insert = "INSERT INTO selection_item (firm_id, staff, kind, number,"
                             " amount_minor, added_at) VALUES (?, ?, ?, ?, ?, ?)"
                             " ON CONFLICT (firm_id, staff, kind, number) DO UPDATE SET"
                             " amount_minor = excluded.amount_minor,"
                             " added_at = excluded.added_at";
        if (stored && amount)
            stored = ml_db_execute (self->db, insert, "ssssis", firm, staff, kind, number,
                                    (int64_t)json_integer_value (amount), now) == 1;
        else if (stored)
            stored = ml_db_execute (self->db, insert, "ssssss", firm, staff, kind, number, NULL,
                                    now) == 1;
        if (!stored || ml_db_commit (self->db) != 0)
            return ml_pay_store_failed (self, "selection-add");
    } else if (streq (op, "selection-remove")) {
        if (ml_db_execute (self->db,
                           "DELETE FROM selection_item WHERE firm_id = ? AND staff = ? AND"
                           " kind = ? AND number = ?",
                           "ssss", firm, staff, kind, number) < 0)
            return ml_pay_store_failed (self, "selection-remove");
    } else if (streq (op, "selection-clear")) {
        if (ml_db_execute (self->db, "DELETE FROM selection_item WHERE firm_id = ? AND staff = ?",
                           "ss", firm, staff) < 0)
            return ml_pay_store_failed (self, "selection-clear");
    }
    json_t *lines = s_selection_lines (self, firm, staff);
    json_t *items = lines ? s_selection_items (self, firm, staff) : NULL;
    if (!items) {
        json_decref (lines);
        return ml_pay_store_failed (self, "selection");
    }
    return ml_admin_ok (json_pack ("{s:s, s:s, s:o, s:o}", "firm", firm, "staff", staff,
                                   "selection", lines, "items", items));
}

//  Paying a selection -------------------------------------------------------------------

//  With "selection": true, the request's lines are the staff user's selection. Returns the
//  request to use (new reference; the same one without a selection), or NULL with *reply set.
json_t *ml_pay_with_selection (ml_payments_t *self, const json_t *request, json_t **reply)
{
    *reply = NULL;
    if (!json_is_true (json_object_get (request, "selection")))
        return json_incref ((json_t *)request);
    const char *firm = json_string_value (json_object_get (request, "firm"));
    const char *staff = json_string_value (json_object_get (request, "staff"));
    if (json_object_get (request, "lines") || json_object_get (request, "auto"))
        *reply = ml_admin_error ("pay the selection, or 'lines' and 'auto', not both");
    else if (!firm || !staff)
        *reply = ml_admin_error ("a selection belongs to a 'firm' and a 'staff' user");
    if (*reply)
        return NULL;
    json_t *lines = s_selection_lines (self, firm, staff);
    if (!lines || json_array_size (lines) == 0) {
        json_decref (lines);
        *reply = ml_admin_error ("your selection is empty: add to it from searches first");
        return NULL;
    }
    json_t *copy = json_deep_copy (request);
    json_object_set_new (copy, "lines", lines);
    return copy;
}

//  Once a selection was paid (or sent as a link), it is done with.
void ml_pay_selection_done (ml_payments_t *self, const json_t *request)
{
    if (!json_is_true (json_object_get (request, "selection")))
        return;
    ml_db_execute (self->db, "DELETE FROM selection_item WHERE firm_id = ? AND staff = ?", "ss",
                   json_string_value (json_object_get (request, "firm")),
                   json_string_value (json_object_get (request, "staff")));
}
