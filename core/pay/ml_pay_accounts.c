/*  ml_payments, part of the class (see include/ml_payments.h): the firm's deposit accounts
 * (account-add), each TRUST or OPERATING for good. */
#include "ml_pay_internal.h"

json_t *ml_pay_account_add (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *number = ml_admin_argument (request, "number", 63, problem, sizeof problem);
    const char *type = ml_admin_argument (request, "type", 16, problem, sizeof problem);
    const char *currency = ml_admin_argument (request, "currency", 3, problem, sizeof problem);
    const char *merchant =
        ml_admin_argument (request, "merchant_account", 64, problem, sizeof problem);
    if (!*problem && (!firm || !number || !*number || !type || !currency || !merchant))
        snprintf (problem, sizeof problem,
                  "'firm', 'number', 'type', 'currency' and 'merchant_account' are required");
    if (!*problem && !streq (type, "TRUST") && !streq (type, "OPERATING"))
        snprintf (problem, sizeof problem, "'type' must be TRUST or OPERATING");
    if (!*problem && ml_money_exponent (currency) < 0)
        snprintf (problem, sizeof problem, "'%s' is not a currency code", currency);
    if (*problem)
        return ml_admin_error ("%s", problem);
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_unknown_firm (self->store, firm);
    json_decref (known);
    char now[32];
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0)
        return ml_pay_store_failed (self, "account-add");
    int64_t added = ml_db_execute (
        self->db,
        "INSERT INTO account (firm_id, account_number, account_type, currency, merchant_account,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        "ssssss", firm, number, type, currency, merchant, now);
    if (added != 1) {
        ml_db_rollback (self->db);
        return ml_admin_error ("firm %s already has account %s, or a %s account in %s (accounts "
                               "are never changed or removed)",
                               firm, number, type, currency);
    }
    if (ml_db_commit (self->db) != 0)
        return ml_pay_store_failed (self, "account-add");
    ml_log (ML_LOG_NOTICE, "payments: firm %s: %s account %s (%s) added", firm, type, number,
            currency);
    return ml_admin_ok (json_pack ("{s:{s:s, s:s, s:s, s:s, s:s}}", "account", "firm_id", firm,
                                   "account_number", number, "account_type", type, "currency",
                                   currency, "merchant_account", merchant));
}

//  The firm's account of a type in a currency, as a JSON object (new), or NULL if none.
//  The firm's accounts are few (one per type and currency): all of them are read, so the
//  read can be asked ahead (ml_pay_accounts_prefetch) before the currency is known.
#define S_ACCOUNTS_SQL                                                                             \
    "SELECT account_number, account_type, currency, merchant_account FROM account"                 \
    " WHERE firm_id = ? ORDER BY account_number"

void ml_pay_accounts_prefetch (ml_payments_t *self, const char *firm)
{
    ml_db_prefetch (self->db, S_ACCOUNTS_SQL, "s", firm);
}

json_t *ml_pay_account (ml_payments_t *self, const char *firm, const char *type,
                        const char *currency)
{
    json_t *rows =
        ml_store_rows (ml_db_query (self->db, S_ACCOUNTS_SQL, "s", firm), ml_pay_integer_column);
    json_t *account = NULL;
    size_t index;
    json_t *row;
    json_array_foreach (rows, index, row)
    {
        if (!account && streq (json_string_value (json_object_get (row, "account_type")), type) &&
            streq (json_string_value (json_object_get (row, "currency")), currency))
            account = json_incref (row);
    }
    json_decref (rows);
    return account;
}
