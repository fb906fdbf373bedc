/*  ml_admin: the core's admin API. See include/ml_admin.h and docs/admin-api.md. */
#include "ml_admin.h"
#include "ml_portal_account.h"
#include "ml_finder.h"
#include "ml_notify.h"
#include "ml_payments.h"
#include "ml_staff_postings.h"
#include "ml_selftest_support.h"
#include "ml_alloc.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_text.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>

json_t *ml_admin_error (const char *format, ...)
{
    char text[512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    //  An error may quote what the request held (the id it did not find): a card number
    //  typed into the wrong field is not sent back, nor shown on a page or logged from it.
    ml_text_mask_card_numbers (text);
    return json_pack ("{s:b, s:s}", "ok", 0, "error", text);
}

json_t *ml_admin_store_failed (ml_db_t *db, const char *who, const char *what)
{
    char escaped[600];
    ml_log (ML_LOG_ERROR, "%s: %s failed: %s", who, what,
            ml_log_escape (ml_db_error (db)->message, escaped, sizeof escaped));
    return ml_admin_error ("the core store failed; see the core's log");
}

json_t *ml_admin_unknown_firm (ml_store_t *store, const char *firm)
{
    if (ml_store_firm_failed (store))
        return ml_admin_error ("the core store failed; see the core's log");
    return ml_admin_error ("unknown firm '%s'", firm);
}

json_t *ml_admin_commit (ml_db_t *db, const char *who, json_t *reply)
{
    if (json_is_true (json_object_get (reply, "ok"))) {
        if (ml_db_commit (db) == 0)
            return reply;
        json_decref (reply);
        reply = ml_admin_store_failed (db, who, "commit");
    }
    ml_db_rollback (db);
    return reply;
}

json_t *ml_admin_ok (json_t *body)
{
    json_t *reply = body ? body : json_object ();
    json_object_set_new (reply, "ok", json_true ());
    return reply;
}

//  The members that carry free text, whatever the op: people type into these.
//  What a person types and the store keeps, mails or logs: names and messages, and the
//  addresses and phone numbers (a card number typed into the phone field was stored and
//  listed: e2e_api_fuzz). Not identifiers of the matter database (a client number may be
//  any digits) nor secrets that are never kept as typed (passwords, codes).
static bool s_free_text (const char *key)
{
    const char *keys[] = {"ar_message",  "payer_name",    "name",    "text",       "note",
                          "memo",        "description",   "message", "staff",      "email",
                          "payer_email", "receipt_email", "phone",   "recipients", NULL};
    for (size_t index = 0; keys[index]; index++)
        if (streq (key, keys[index]))
            return true;
    return false;
}

const char *ml_admin_argument (const json_t *request, const char *key, size_t max, char *problem,
                               size_t size)
{
    json_t *value = json_object_get (request, key);
    if (!value || json_is_null (value) || *problem)
        return NULL; //  absent, or an earlier argument was already wrong: report the first
    if (!json_is_string (value)) {
        snprintf (problem, size, "'%s' must be a string", key);
        return NULL;
    }
    if (json_string_length (value) > max) {
        snprintf (problem, size, "'%s' is longer than %zu bytes", key, max);
        return NULL;
    }
    if (strlen (json_string_value (value)) != json_string_length (value)) {
        snprintf (problem, size, "'%s' holds a NUL byte", key);
        return NULL;
    }
    //  Free text is stored, mailed or logged: no card number may ride in it (ml_text.h).
    if (s_free_text (key) && ml_text_has_card_number (json_string_value (value))) {
        snprintf (problem, size, "'%s' " ML_TEXT_CARD_REFUSAL, key);
        return NULL;
    }
    return json_string_value (value);
}

json_t *ml_admin_members (const json_t *object, const char *members, const char *what)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)object, key, value)
    {
        size_t length = strlen (key);
        bool known = streq (key, "op") || streq (key, "staff");
        for (const char *cursor = members; !known && *cursor;) {
            size_t word = strcspn (cursor, " ");
            known = word == length && strncmp (cursor, key, length) == 0;
            cursor += word + (cursor[word] == ' ');
        }
        if (!known) {
            char shown[72];
            ml_log_escape (key, shown, sizeof shown);
            return ml_admin_error ("'%s' is not a member of %s (it takes: %s)", shown, what,
                                   *members ? members : "no members");
        }
    }
    return NULL;
}

//  Every column of the account table is text.
static bool s_text_columns (const char *name)
{
    (void)name;
    return false;
}

json_t *ml_admin_client_matter_check (ml_store_t *store, const char *firm, const char *client,
                                      const char *matter)
{
    if (!firm || !client || !matter)
        return NULL;
    json_t *found = ml_store_matter (store, firm, matter);
    if (!found)
        return ml_admin_error ("the core store failed; see the core's log");
    const char *owner = json_string_value (json_object_get (found, "client_number"));
    json_t *reply = owner && !streq (owner, client)
                        ? ml_admin_error ("matter %s belongs to client %s, not to client %s",
                                          matter, owner, client)
                        : NULL;
    json_decref (found);
    return reply;
}

//  The deposit account a staff payment of invoices goes into, checked before anything is
//  recorded, as the matter system would check it later: invoices are paid into OPERATING,
//  never TRUST (DESIGN.md rules 2 and 3), in a currency the account holds. With the firm's
//  accounts on record (account-add), the account must be one of them: the one named, or else
//  the registered operating account, or else the firm's OPERATING account in the currency.
//  A firm with no accounts on record keeps its registered operating account unchecked.
//  Fills account. Returns NULL or the error reply.
static json_t *s_pay_account (ml_store_t *store, const char *firm_id, const char *named,
                              const char *registered, const char *currency, char *account,
                              size_t size)
{
    json_t *rows = ml_store_rows (ml_db_query (ml_store_db (store),
                                               "SELECT account_number, account_type, currency"
                                               " FROM account WHERE firm_id = ?",
                                               "s", firm_id),
                                  s_text_columns);
    snprintf (account, size, "%s", named ? named : registered);
    json_t *reply = NULL;
    if (json_array_size (rows) > 0) {
        json_t *found = NULL, *fallback = NULL;
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            const char *number = json_string_value (json_object_get (row, "account_number"));
            if (streq (number, account))
                found = row;
            if (streq (json_string_value (json_object_get (row, "account_type")), "OPERATING") &&
                streq (json_string_value (json_object_get (row, "currency")), currency))
                fallback = row;
        }
        if (!found && !named && fallback) {
            found = fallback;
            snprintf (account, size, "%s",
                      json_string_value (json_object_get (found, "account_number")));
        }
        if (!found)
            reply = named ? ml_admin_error ("firm %s has no account %s on record (matterlink "
                                            "account list); nothing was posted",
                                            firm_id, named)
                          : ml_admin_error ("firm %s has no OPERATING account in %s (add one "
                                            "with 'matterlink account add'); nothing was posted",
                                            firm_id, currency);
        else if (!streq (json_string_value (json_object_get (found, "account_type")), "OPERATING"))
            reply = ml_admin_error ("account %s is a %s account: invoices are paid into an "
                                    "OPERATING account, trust deposits are made with a trust "
                                    "line of a payment; nothing was posted",
                                    account,
                                    json_string_value (json_object_get (found, "account_type")));
        else if (!streq (json_string_value (json_object_get (found, "currency")), currency))
            reply = ml_admin_error (
                "account %s holds %s, not %s: the invoices are paid into an "
                "account in their currency; nothing was posted",
                account, json_string_value (json_object_get (found, "currency")), currency);
    }
    json_decref (rows);
    return reply;
}

static json_t *s_pay (ml_store_t *store, const json_t *request, char *deliver_firm, size_t size)
{
    char problem[256] = "";
    const char *firm_id = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *client = ml_admin_argument (request, "client", 63, problem, sizeof problem);
    const char *matter = ml_admin_argument (request, "matter", 63, problem, sizeof problem);
    const char *amount_text = ml_admin_argument (request, "amount", 40, problem, sizeof problem);
    const char *currency = ml_admin_argument (request, "currency", 3, problem, sizeof problem);
    const char *payer_name =
        ml_admin_argument (request, "payer_name", 255, problem, sizeof problem);
    const char *payer_email =
        ml_admin_argument (request, "payer_email", 255, problem, sizeof problem);
    const char *ar_message =
        ml_admin_argument (request, "ar_message", 1000, problem, sizeof problem);
    const char *account = ml_admin_argument (request, "account", 63, problem, sizeof problem);
    if (*problem)
        return ml_admin_error ("%s", problem);
    if (!firm_id)
        return ml_admin_error ("'firm' is required");
    if (!client && !matter)
        return ml_admin_error ("say whose invoices to pay: 'client' (client number) or 'matter' "
                               "(matter number)");
    if (!amount_text)
        return ml_admin_error ("'amount' is required (for example \"250.00\")");
    if (currency && ml_money_exponent (currency) < 0)
        return ml_admin_error ("'%s' is not a currency code (three upper-case letters, like USD)",
                               currency);
    json_t *firm = ml_store_firm (store, firm_id);
    if (!firm)
        return ml_admin_unknown_firm (store, firm_id);
    char operating_account[64];
    snprintf (operating_account, sizeof operating_account, "%s",
              json_string_value (json_object_get (firm, "operating_account")));
    json_decref (firm);

    //  With a pay_key, a repeat returns the first result and posts nothing more.
    char keyed_uuid[37];
    json_t *repeated = ml_payments_pay_once (store, firm_id, request, keyed_uuid);
    if (repeated)
        return repeated;
    ml_line_t *lines = calloc (ML_MAX_LINES, sizeof (ml_line_t));
    assert (lines);
    size_t line_count = 0;
    int64_t amount = 0;
    char client_number[64] = "", chosen[4] = "";
    json_t *reply = ml_payments_allocate (store, firm_id, client, matter, amount_text, currency,
                                          lines, &line_count, &amount, client_number, chosen);
    char deposit_account[64];
    if (!reply)
        reply = s_pay_account (store, firm_id, account, operating_account, chosen, deposit_account,
                               sizeof deposit_account);
    if (!reply) {
        ml_msg_t *message = ml_msg_new (ML_MSG_POSTING);
        ml_posting_t *posting = &message->posting;
        snprintf (posting->posting_uuid, sizeof posting->posting_uuid, "%s", keyed_uuid);
        snprintf (posting->account_number, sizeof posting->account_number, "%s", deposit_account);
        snprintf (posting->client_number, sizeof posting->client_number, "%s",
                  client ? client : client_number);
        snprintf (posting->payer_name, sizeof posting->payer_name, "%s",
                  payer_name ? payer_name : "");
        snprintf (posting->payer_email, sizeof posting->payer_email, "%s",
                  payer_email ? payer_email : "");
        snprintf (posting->ar_message, sizeof posting->ar_message, "%s",
                  ar_message ? ar_message : "");
        snprintf (posting->currency, sizeof posting->currency, "%s", chosen);
        posting->amount_minor = amount;
        ml_msg_set_lines (message, lines, line_count);
        if (ml_store_posting_create (store, firm_id, posting, "staff") != 0)
            reply = ml_admin_error ("the core store failed to record the posting; nothing was "
                                    "posted");
        else {
            json_t *reply_lines = json_array ();
            for (size_t line = 0; line < line_count; line++)
                json_array_append_new (
                    reply_lines, json_pack ("{s:s, s:I}", "invoice_number", lines[line].reference,
                                            "amount_minor", (json_int_t)lines[line].amount_minor));
            reply = ml_admin_ok (
                json_pack ("{s:s, s:s, s:s, s:s, s:I, s:o}", "posting_uuid", posting->posting_uuid,
                           "firm_id", firm_id, "client_number", posting->client_number, "currency",
                           chosen, "amount_minor", (json_int_t)amount, "lines", reply_lines));
            snprintf (deliver_firm, size, "%s", firm_id);
            ml_log (ML_LOG_NOTICE,
                    "posting %s created for firm %s: %lld minor units over %zu "
                    "invoices",
                    posting->posting_uuid, firm_id, (long long)amount, line_count);
        }
        ml_msg_destroy (&message);
    }
    free (lines);
    return reply;
}

//  ---------------------------------------------------------------------------------------
//  The ops of the core itself.

static json_t *s_core_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                          const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor;
    ml_store_t *store = parts->store;
    char *deliver_firm = effects->deliver_firm;
    size_t size = sizeof effects->deliver_firm;
    char problem[256] = "";
    if (streq (op, "status")) {
        json_t *firms = ml_store_status (store);
        return firms ? ml_admin_ok (json_pack ("{s:o}", "firms", firms))
                     : ml_admin_error ("the core store failed; see the core's log");
    }
    if (streq (op, "open-items")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        const char *client = ml_admin_argument (request, "client", 63, problem, sizeof problem);
        const char *matter = ml_admin_argument (request, "matter", 63, problem, sizeof problem);
        if (*problem)
            return ml_admin_error ("%s", problem);
        if (!firm)
            return ml_admin_error ("'firm' is required");
        json_t *mismatch = ml_admin_client_matter_check (store, firm, client, matter);
        if (mismatch)
            return mismatch;
        json_t *items = ml_store_open_items (store, firm, client, matter, NULL);
        return items ? ml_admin_ok (json_pack ("{s:o}", "items", items))
                     : ml_admin_error ("the core store failed; see the core's log");
    }
    if (streq (op, "pay"))
        return s_pay (store, request, deliver_firm, size);
    //  Filters and pages (Manage Postings): ml_staff_postings.
    if (streq (op, "postings") && ml_staff_postings_wanted (request))
        return ml_staff_postings (store, request);
    if (streq (op, "postings")) {
        const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
        const char *status = ml_admin_argument (request, "status", 16, problem, sizeof problem);
        json_t *limit = json_object_get (request, "limit");
        if (*problem)
            return ml_admin_error ("%s", problem);
        //  A status that no posting can have would list nothing, as if there were none.
        const char *statuses[] = {"pending", "delivered", "posted", "rejected", "reversed"};
        size_t known = 0;
        while (status && known < 5 && !streq (status, statuses[known]))
            known++;
        if (known == 5)
            return ml_admin_error ("'status' must be pending, delivered, posted, rejected or "
                                   "reversed, not '%s'",
                                   status);
        if (limit && (!json_is_integer (limit) || json_integer_value (limit) < 1 ||
                      json_integer_value (limit) > 10000))
            return ml_admin_error ("'limit' must be a whole number from 1 to 10000");
        json_t *postings =
            ml_store_postings (store, firm, status, limit ? (int)json_integer_value (limit) : 50);
        return postings ? ml_admin_ok (json_pack ("{s:o}", "postings", postings))
                        : ml_admin_error ("the core store failed; see the core's log");
    }
    //  "posting" and "resend"
    const char *uuid = ml_admin_argument (request, "posting_uuid", 36, problem, sizeof problem);
    if (*problem || !uuid)
        return ml_admin_error ("'posting_uuid' is required%s%s", *problem ? ": " : "", problem);
    json_t *posting = ml_store_posting (store, uuid);
    if (!posting)
        return ml_admin_error ("no posting %s", uuid);
    if (streq (op, "resend")) {
        snprintf (deliver_firm, size, "%s",
                  json_string_value (json_object_get (posting, "firm_id")));
        json_decref (posting);
        int resent = ml_store_posting_resend (store, uuid);
        if (resent < 0)
            return ml_admin_error ("the core store failed; see the core's log");
        if (resent == 0)
            return ml_admin_error ("posting %s cannot be sent again in its state", uuid);
        posting = ml_store_posting (store, uuid);
    }
    return ml_admin_ok (json_pack ("{s:o}", "posting", posting));
}

//  ---------------------------------------------------------------------------------------
//  Handlers that hand an op to its class.

static json_t *s_unknown_op (const char *op)
{
    return ml_admin_error ("unknown op '%.32s' (docs/admin-api.md lists the ops: status, search, "
                           "payer-add, payment, link-create, postings, ...)",
                           op);
}

static json_t *s_payers_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                            const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor, (void)effects;
    return ml_payers_execute (parts->payers, op, request);
}

static json_t *s_payments_op (const ml_admin_parts_t *parts, const ml_actor_t *actor,
                              const char *op, const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor;
    return parts->payments
               ? ml_payments_execute (parts->payments, op, request, effects->deliver_firm,
                                      sizeof effects->deliver_firm)
               : s_unknown_op (op);
}

static json_t *s_mailer_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                            const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor, (void)effects;
    return parts->mailer ? ml_mailer_execute (parts->mailer, op, request) : s_unknown_op (op);
}

static json_t *s_autopay_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                             const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor;
    return parts->autopay ? ml_autopay_execute (parts->autopay, op, request, effects->deliver_firm,
                                                sizeof effects->deliver_firm)
                          : s_unknown_op (op);
}

//  Which events e-mail whom (ml_notify).
static json_t *s_notify_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                            const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor, (void)effects;
    json_t *reply = ml_notify_execute (parts->store, op, request);
    return reply ? reply : s_unknown_op (op);
}

//  A search waits for the firm's agent: the reply comes later (NULL), or an error now.
static json_t *s_finder_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                            const json_t *request, ml_admin_effects_t *effects)
{
    (void)actor, (void)op;
    json_t *reply = NULL;
    effects->search = ml_finder_request (parts->payers, request, effects->search_firm,
                                         sizeof effects->search_firm, &effects->context, &reply);
    return reply;
}

//  Staff accounts, sessions and the staff audit (ml_staff).
static json_t *s_staff_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                           const json_t *request, ml_admin_effects_t *effects)
{
    (void)effects;
    json_t *reply = parts->staff ? ml_staff_execute (parts->staff, op, request, actor) : NULL;
    return reply ? reply : ml_admin_error ("staff accounts are not available in this core");
}

static json_t *s_logins_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                            const json_t *request, ml_admin_effects_t *effects)
{
    (void)effects;
    json_t *reply = parts->logins ? ml_logins_execute (parts->logins, op, request, actor) : NULL;
    return reply ? reply : ml_admin_error ("the portal is not available in this core");
}

//  Paying from the portal: the reply may wait for the processor's worker, like a staff
//  payment's (the core sends it on the socket the request came from).
static json_t *s_portal_pay_op (const ml_admin_parts_t *parts, const ml_actor_t *actor,
                                const char *op, const json_t *request, ml_admin_effects_t *effects)
{
    json_t *reply = parts->portal_pay ? ml_portal_pay_execute (parts->portal_pay, op, request,
                                                               actor, effects->deliver_firm,
                                                               sizeof effects->deliver_firm)
                                      : NULL;
    return reply ? reply : ml_admin_error ("paying from the portal is not available in this core");
}

//  The payer's own account in the portal (ml_portal_account).
static json_t *s_account_op (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                             const json_t *request, ml_admin_effects_t *effects)
{
    (void)effects;
    json_t *reply = ml_portal_account_execute (parts->store, parts->autopay, op, request, actor);
    return reply ? reply : s_unknown_op (op);
}

//  payer-list also says whether each payer can sign in to the portal (login_access).
static json_t *s_payer_list (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                             const json_t *request, ml_admin_effects_t *effects)
{
    json_t *reply = s_payers_op (parts, actor, op, request, effects);
    json_t *payers = json_object_get (reply, "payers");
    if (parts->logins && payers && ml_logins_mark_access (parts->logins, payers) != 0) {
        json_decref (reply);
        return ml_admin_error ("the core store failed; see the core's log");
    }
    return reply;
}

//  payer-show also says where the payer's login access stands.
static json_t *s_payer_show (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                             const json_t *request, ml_admin_effects_t *effects)
{
    json_t *reply = s_payers_op (parts, actor, op, request, effects);
    json_t *payer = json_object_get (reply, "payer");
    if (parts->logins && payer) {
        json_t *access = ml_logins_access (
            parts->logins, json_integer_value (json_object_get (payer, "payer_id")));
        json_object_set_new (payer, "access", access ? access : json_null ());
    }
    //  A card's processor token can charge it: only the operator's tools get it, never a
    //  staff member's browser (the web shows brand, last four digits and expiry).
    if (actor->kind != ML_ACTOR_OPERATOR && payer) {
        size_t index;
        json_t *method;
        json_array_foreach (json_object_get (payer, "methods"), index, method)
            json_object_del (method, "processor_token");
    }
    return reply;
}

//  payer-edit: a payer with a portal login keeps it when the address changes. The new
//  address waits for its confirmation link (ml_logins_email_change); the other members
//  change at once, as they do for every payer.
static json_t *s_payer_edit (const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                             const json_t *request, ml_admin_effects_t *effects)
{
    json_t *email = json_object_get (request, "email");
    json_t *id = json_object_get (request, "payer_id");
    if (!parts->logins || !json_is_string (email) || !json_is_integer (id))
        return s_payers_op (parts, actor, op, request, effects);
    int64_t payer_id = json_integer_value (id);
    int has = ml_logins_has_login (parts->logins, payer_id);
    if (has < 0)
        return ml_admin_error ("the core store failed; see the core's log");
    json_t *current = NULL;
    if (has == 1) {
        json_t *asked = json_pack ("{s:I}", "payer_id", (json_int_t)payer_id);
        json_t *show = ml_payers_execute (parts->payers, "payer-show", asked);
        json_decref (asked);
        current = json_incref (json_object_get (json_object_get (show, "payer"), "email"));
        json_decref (show);
    }
    //  No login, or the same address: an ordinary edit.
    if (has == 0 || !current ||
        strcasecmp (json_string_value (current), json_string_value (email)) == 0) {
        json_decref (current);
        return s_payers_op (parts, actor, op, request, effects);
    }
    json_decref (current);
    json_t *refused = ml_payers_email_check (parts->payers, payer_id, json_string_value (email));
    if (refused)
        return refused;
    json_t *rest = json_deep_copy (request);
    json_object_del (rest, "email");
    json_t *reply = NULL;
    if (json_object_get (rest, "name") || json_object_get (rest, "phone")) {
        reply = ml_payers_execute (parts->payers, op, rest);
        if (!json_is_true (json_object_get (reply, "ok"))) {
            json_decref (rest);
            return reply;
        }
    }
    json_decref (rest);
    char problem[256] = "";
    const char *staff = ml_admin_argument (request, "staff", 64, problem, sizeof problem);
    json_t *change =
        ml_logins_email_change (parts->logins, payer_id, json_string_value (email), staff);
    if (!json_is_true (json_object_get (change, "ok"))) {
        json_decref (reply);
        return change;
    }
    if (!reply) {
        json_t *asked = json_pack ("{s:I}", "payer_id", (json_int_t)payer_id);
        reply = ml_payers_execute (parts->payers, "payer-show", asked);
        json_decref (asked);
    }
    json_object_set (reply, "email_change", json_object_get (change, "email_change"));
    json_decref (change);
    return reply;
}

//  ---------------------------------------------------------------------------------------
//  The table of ops: who may call each, what members it takes, and its handler. The
//  table decides before any handler runs; a handler trusts the actor it is given.

typedef json_t *(s_op_fn)(const ml_admin_parts_t *parts, const ml_actor_t *actor, const char *op,
                          const json_t *request, ml_admin_effects_t *effects);

#define S_OPERATOR  ML_ACTOR_OPERATOR
#define S_PAYER     ML_ACTOR_PAYER
#define S_ANONYMOUS ML_ACTOR_ANONYMOUS
#define S_STAFF     ML_ACTOR_STAFF //  any staff member, whatever the role (and no firm scoping)
#define S_CSRF      1 //  a state change by a payer or staff: the session's CSRF token is required
//  The least staff role that may call an op (roles nest: admin > billing > read). A staff
//  member's request to such an op is kept inside the member's firm (ml_staff_scope) and,
//  when it changes state (S_CSRF), recorded in staff_audit.
#define S_READ    2
#define S_BILLING 4
#define S_ADMIN   8
//  Reads the store only and needs nothing of the running core (no agent, no processor, no
//  reply that waits, nothing the core thread adds to the reply): the admin and API sockets
//  answer it on a reader thread (ml_readers).
#define S_READS 16

//  members: the names an op takes besides "op" and "staff" (and, on the API socket,
//  "session", "staff_session" and "csrf"); NULL where the class still checks them itself.
static const struct {
    const char *op;
    const char *members;
    unsigned actors;
    unsigned flags;
    s_op_fn *handler;
} s_ops[] = {
    {"status", "", S_OPERATOR, S_READ, s_core_op},
    {"open-items", "firm client matter", S_OPERATOR, S_READ | S_READS, s_core_op},
    {"pay", "firm client matter amount currency payer_name payer_email ar_message account pay_key",
     S_OPERATOR, S_BILLING | S_CSRF, s_core_op},
    {"postings",
     "firm status limit client source date_from date_to amount_min_minor amount_max_minor before "
     "posting_uuid",
     S_OPERATOR, S_READ | S_READS, s_core_op},
    {"posting", "posting_uuid", S_OPERATOR, S_READ | S_READS, s_core_op},
    {"resend", "posting_uuid", S_OPERATOR, S_BILLING | S_CSRF, s_core_op},
    {"search",
     "firm as_payer remember text by match target date_from date_to status amount_min amount_max "
     "amount_currency after limit deadline_ms",
     S_OPERATOR, S_READ, s_finder_op},
    {"payer-view",
     "firm payer_id text by match target date_from date_to status amount_min amount_max "
     "amount_currency after limit deadline_ms",
     S_OPERATOR, S_READ, s_finder_op},
    {"association-add", "payer_id level number deadline_ms", S_OPERATOR, S_BILLING | S_CSRF,
     s_finder_op},
    {"account-add", "firm number type currency merchant_account", S_OPERATOR, S_ADMIN | S_CSRF,
     s_payments_op},
    {"account-list", "firm", S_OPERATOR, S_READ, s_payments_op},
    {"payment",
     "firm payer_id payer_name payer_email receipt_email ar_message currency lines auto "
     "selection method_id card card_token save_method save_payer pay_key",
     S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"link-create",
     "firm payer_id payer_name payer_email receipt_email ar_message currency lines auto "
     "selection",
     S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"link-pay", "token card method_id", S_OPERATOR, 0, s_payments_op},
    {"link-list", "firm state", S_OPERATOR, S_READ | S_READS, s_payments_op},
    {"link-cancel", "firm link_id", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"firm-contact", "firm email", S_OPERATOR, S_ADMIN | S_CSRF, s_payments_op},
    {"payments", "firm", S_OPERATOR, S_READ | S_READS, s_payments_op},
    {"payment-show", "payment_uuid", S_OPERATOR, S_READ, s_payments_op},
    {"selection", "firm", S_OPERATOR, S_BILLING, s_payments_op},
    {"selection-add", "firm invoice trust amount_minor", S_OPERATOR, S_BILLING | S_CSRF,
     s_payments_op},
    {"selection-remove", "firm invoice trust", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"selection-clear", "firm", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"refund", "charge_key amount amount_minor", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"void", "charge_key amount amount_minor", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"chargeback", "charge_key amount amount_minor", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"reallocate", "posting_uuid lines currency", S_OPERATOR, S_BILLING | S_CSRF, s_payments_op},
    {"payer-add", "firm name email phone", S_OPERATOR, S_BILLING | S_CSRF, s_payers_op},
    {"payer-edit", "payer_id name email phone", S_OPERATOR, S_BILLING | S_CSRF, s_payer_edit},
    {"payer-list", "firm text limit", S_OPERATOR, S_READ | S_READS, s_payer_list},
    {"payer-show", "payer_id", S_OPERATOR, S_READ | S_READS, s_payer_show},
    {"method-add", "payer_id token brand last4 exp_month exp_year", S_OPERATOR, S_BILLING | S_CSRF,
     s_payers_op},
    {"method-remove", "method_id", S_OPERATOR, S_BILLING | S_CSRF, s_payers_op},
    {"association-list", "payer_id", S_OPERATOR, S_READ | S_READS, s_payers_op},
    {"association-remove", "association_id", S_OPERATOR, S_BILLING | S_CSRF, s_payers_op},
    {"staff-default", "field", S_OPERATOR, S_BILLING | S_CSRF, s_payers_op},
    {"mail-list", "firm state limit", S_OPERATOR, S_READ | S_READS, s_mailer_op},
    {"mail-retry", "mail_id", S_OPERATOR, S_BILLING | S_CSRF, s_mailer_op},
    {"autopay-add",
     "payer_id method_id name account frequency day_rule first_date amount ar_message", S_OPERATOR,
     S_BILLING | S_CSRF, s_autopay_op},
    {"autopay-edit",
     "schedule_id method_id name account frequency day_rule first_date amount ar_message",
     S_OPERATOR, S_BILLING | S_CSRF, s_autopay_op},
    //  Not S_READS: a schedule's state and next run are judged on the scheduler's day, which
    //  the core thread's Auto-Pay keeps (the test clock moves it).
    {"autopay-list", "firm payer_id", S_OPERATOR, S_READ, s_autopay_op},
    {"autopay-show", "schedule_id", S_OPERATOR, S_READ, s_autopay_op},
    {"autopay-enable", "schedule_id", S_OPERATOR, S_BILLING | S_CSRF, s_autopay_op},
    {"autopay-disable", "schedule_id", S_OPERATOR, S_BILLING | S_CSRF, s_autopay_op},
    {"autopay-delete", "schedule_id", S_OPERATOR, S_BILLING | S_CSRF, s_autopay_op},
    {"autopay-enroll", "schedule_id association_id", S_OPERATOR, S_BILLING | S_CSRF, s_autopay_op},
    {"autopay-unenroll", "schedule_id association_id", S_OPERATOR, S_BILLING | S_CSRF,
     s_autopay_op},
    {"autopay-clock", "today", S_OPERATOR, 0, s_autopay_op},
    {"notify-settings", "firm", S_OPERATOR, S_READ, s_notify_op},
    {"notify-set", "firm event enabled recipients minutes", S_OPERATOR, S_ADMIN | S_CSRF,
     s_notify_op},
    {"payer-access", "payer_id action", S_OPERATOR, S_BILLING | S_CSRF, s_logins_op},
    {"portal-audit", "firm payer_id limit", S_OPERATOR, S_BILLING | S_READS, s_logins_op},
    {"payer-portal-invoices", "payer_id", S_OPERATOR, S_READ | S_READS,
     s_logins_op}, //  "View as payer"
    //  A signed-in payer may open a link or sign in again too.
    {"portal-token", "token", S_ANONYMOUS | S_PAYER, 0, s_logins_op},
    {"portal-password-set", "token password", S_ANONYMOUS | S_PAYER, 0, s_logins_op},
    {"portal-sign-in", "email password client", S_ANONYMOUS | S_PAYER, 0, s_logins_op},
    {"portal-forgot", "email client", S_ANONYMOUS | S_PAYER, 0, s_logins_op},
    {"portal-email-confirm", "token", S_ANONYMOUS | S_PAYER, 0, s_logins_op},
    //  A payment link's page: the link's token is its only credential (no session, no CSRF).
    {"link-view", "token", S_ANONYMOUS | S_PAYER, S_READS, s_payments_op},
    {"link-pay-page", "token card_token pay_key", S_ANONYMOUS | S_PAYER, 0, s_payments_op},
    {"portal-session", "", S_PAYER, S_READS, s_logins_op},
    {"portal-sign-out", "", S_PAYER, S_CSRF, s_logins_op},
    {"portal-invoices", "", S_PAYER, S_READS, s_logins_op},
    {"portal-pay-form", "", S_PAYER, S_READS, s_portal_pay_op},
    {"portal-pay", "pay_key lines auto trust method_id token save_method", S_PAYER, S_CSRF,
     s_portal_pay_op},
    {"firm-portal", "firm trust_deposits", S_OPERATOR, S_ADMIN | S_CSRF, s_portal_pay_op},
    {"portal-methods", "", S_PAYER, S_READS, s_account_op},
    {"portal-method-remove", "method_id", S_PAYER, S_CSRF, s_account_op},
    {"portal-method-default", "method_id", S_PAYER, S_CSRF, s_account_op},
    {"portal-history", "", S_PAYER, S_READS, s_account_op},
    {"portal-receipt", "payment", S_PAYER, S_READS, s_account_op},
    {"portal-autopay", "", S_PAYER, 0, s_account_op}, //  the scheduler's day, as autopay-show
    //  Staff accounts (docs/staff-api.md): links and sign-in are anonymous; the operator
    //  invites a firm's first administrator and reads its users and audit.
    {"staff-token", "token", S_ANONYMOUS | S_PAYER | S_STAFF, 0, s_staff_op},
    {"staff-accept", "token password confirm totp_code", S_ANONYMOUS | S_PAYER | S_STAFF, 0,
     s_staff_op},
    {"staff-sign-in", "email password code firm client", S_ANONYMOUS | S_PAYER | S_STAFF, 0,
     s_staff_op},
    {"staff-forgot", "email", S_ANONYMOUS | S_PAYER | S_STAFF, 0, s_staff_op},
    {"staff-session", "", 0, S_READ, s_staff_op},
    {"staff-sign-out", "", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-totp-begin", "", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-totp-confirm", "code", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-totp-off", "password code", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-recovery-codes", "code", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-password", "password new_password", 0, S_READ | S_CSRF, s_staff_op},
    {"staff-list", "firm", S_OPERATOR, S_ADMIN | S_READS, s_staff_op},
    {"staff-invite", "firm email name role", S_OPERATOR, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-edit", "staff_id name role", 0, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-disable", "staff_id", 0, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-enable", "staff_id", 0, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-reset", "staff_id", 0, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-totp-reset", "staff_id", 0, S_ADMIN | S_CSRF, s_staff_op},
    {"staff-audit", "firm staff_id limit", S_OPERATOR, S_ADMIN | S_READS, s_staff_op},
};

static json_t *s_not_found (void)
{
    return ml_admin_error ("not found");
}

//  The least role that may call the op at index (ML_ROLE_NONE: staff roles do not apply).
static ml_role_t s_role_needed (size_t index)
{
    unsigned flags = s_ops[index].flags;
    return (flags & S_READ)      ? ML_ROLE_READ
           : (flags & S_BILLING) ? ML_ROLE_BILLING
           : (flags & S_ADMIN)   ? ML_ROLE_ADMIN
                                 : ML_ROLE_NONE;
}

//  Whether the op's members include word.
static bool s_takes (size_t index, const char *word)
{
    const char *members = s_ops[index].members ? s_ops[index].members : "";
    size_t length = strlen (word);
    for (const char *cursor = members; *cursor;) {
        size_t size = strcspn (cursor, " ");
        if (size == length && strncmp (cursor, word, length) == 0)
            return true;
        cursor += size + (cursor[size] == ' ');
    }
    return false;
}

static json_t *s_csrf_refused (void)
{
    return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error",
                      "the form expired; reload the page and try again", "csrf", 0);
}

//  A staff member's request to an op of a role: kept inside the firm, run, and recorded.
static json_t *s_execute_staff (const ml_admin_parts_t *parts, const ml_actor_t *actor,
                                size_t index, const char *op, const json_t *request,
                                ml_admin_effects_t *effects)
{
    char problem[256] = "";
    if (s_ops[index].flags & S_CSRF) {
        const char *csrf = ml_admin_argument (request, "csrf", 64, problem, sizeof problem);
        if (!ml_staff_csrf_ok (actor, csrf))
            return s_csrf_refused ();
    }
    json_t *scoped = NULL;
    json_t *refused =
        ml_staff_scope (parts->staff, actor, s_takes (index, "firm"), request, &scoped);
    if (refused)
        return refused;
    json_t *reply = s_ops[index].handler (parts, actor, op, scoped, effects);
    ml_staff_scope_reply (actor, op, reply);
    //  A state change that happened (or waits for the processor) names who did it.
    json_t *detail = json_incref (json_object_get (reply, "audit_detail"));
    json_object_del (reply, "audit_detail");
    //  One that waits for the agent (association-add) is recorded as asked.
    bool waits = !reply && effects->search;
    if ((s_ops[index].flags & S_CSRF) && !(waits && effects->forwarded) &&
        (json_is_true (json_object_get (reply, "ok")) || json_object_get (reply, "waiting_for") ||
         waits)) {
        char object[400];
        ml_staff_scope_object (scoped, reply, object, sizeof object);
        ml_staff_audit (parts->staff, actor, actor->firm_id, op, *object ? object : NULL,
                        waits ? "asked; the firm's agent answers" : json_string_value (detail));
    }
    json_decref (detail);
    json_decref (scoped);
    return reply;
}

//  Run a request for actor. session_ended: the request named a session that is not live.
static json_t *s_execute (const ml_admin_parts_t *parts, const ml_actor_t *actor,
                          bool session_ended, const json_t *request, ml_admin_effects_t *effects)
{
    assert (parts && parts->store && parts->payers && actor && effects);
    bool operator= actor->kind == ML_ACTOR_OPERATOR;
    bool staff = actor->kind == ML_ACTOR_STAFF;
    if (!json_is_object (request))
        return ml_admin_error ("a request is a JSON object with an \"op\"");
    char problem[256] = "";
    const char *op = ml_admin_argument (request, "op", 32, problem, sizeof problem);
    if (*problem || !op)
        return ml_admin_error ("a request needs an \"op\" string");
    size_t index = 0, count = sizeof s_ops / sizeof s_ops[0];
    while (index < count && !streq (op, s_ops[index].op))
        index++;
    //  Who may call it comes first, so nobody learns from an error what an op takes.
    if (index == count)
        return operator? s_unknown_op (op) : s_not_found ();
    ml_role_t needed = s_role_needed (index);
    //  Staff: an op of a role theirs includes, or one open to any staff member.
    bool by_role = staff && needed != ML_ROLE_NONE && actor->role >= needed &&
                   !(s_ops[index].actors & ML_ACTOR_STAFF);
    if (!(s_ops[index].actors & actor->kind) && !by_role) {
        if (session_ended && ((s_ops[index].actors & ML_ACTOR_PAYER) || needed != ML_ROLE_NONE))
            return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "session ended", "session_ended",
                              1);
        return operator? ml_admin_error ("'%s' is not an op of the admin API (it is the web "
                                         "portal's)",
                                         op)
                       : s_not_found ();
    }
    if (by_role && !parts->staff)
        return s_not_found ();
    char what[64];
    snprintf (what, sizeof what, "%s '%s' request", strchr ("aeiou", *op) ? "an" : "a", op);
    //  Who did it is the core's to say: the operator's CLI names its user, the web never.
    if (!operator&& json_object_get (request, "staff"))
        return ml_admin_error ("'staff' is not a member of %s", what);
    if (s_ops[index].members) {
        char members[600];
        snprintf (members, sizeof members, "%s%s%s",
                  s_ops[index].members,
                  operator                 ? ""
                  : * s_ops[index].members ? " "
                                           : "",
                  operator? "" : "session staff_session csrf with_session");
        json_t *unknown = ml_admin_members (request, members, what);
        if (unknown)
            return unknown;
    }
    if (by_role)
        return s_execute_staff (parts, actor, index, op, request, effects);
    if ((s_ops[index].flags & S_CSRF) && actor->kind == ML_ACTOR_PAYER) {
        const char *csrf = ml_admin_argument (request, "csrf", 64, problem, sizeof problem);
        if (!parts->logins || !ml_logins_csrf_ok (parts->logins, actor, csrf))
            return s_csrf_refused ();
    }
    return s_ops[index].handler (parts, actor, op, request, effects);
}

json_t *ml_admin_execute (const ml_admin_parts_t *parts, const json_t *request,
                          ml_admin_effects_t *effects)
{
    assert (effects);
    memset (effects, 0, sizeof *effects);
    ml_actor_t actor = {.kind = ML_ACTOR_OPERATOR};
    return s_execute (parts, &actor, false, request, effects);
}

bool ml_admin_op_reads (const char *op)
{
    for (size_t index = 0; op && index < sizeof s_ops / sizeof s_ops[0]; index++)
        if (streq (op, s_ops[index].op))
            return (s_ops[index].flags & S_READS) != 0;
    return false;
}

static json_t *s_api_execute (const ml_admin_parts_t *parts, const json_t *request,
                              ml_admin_effects_t *effects, bool forwarded)
{
    assert (effects);
    memset (effects, 0, sizeof *effects);
    effects->forwarded = forwarded;
    //  The actor comes from the core's own lookup of the session, never from the request.
    ml_actor_t actor = {.kind = ML_ACTOR_ANONYMOUS};
    bool ended = false;
    json_t *session = json_is_object (request) ? json_object_get (request, "session") : NULL;
    json_t *staff = json_is_object (request) ? json_object_get (request, "staff_session") : NULL;
    if (session && staff)
        return s_not_found (); //  one actor per request
    if (session || staff) {
        int live = 0;
        if (session && json_is_string (session) && parts->logins)
            live = ml_logins_session (parts->logins, json_string_value (session), &actor);
        else if (staff && json_is_string (staff) && parts->staff)
            live = ml_staff_session (parts->staff, json_string_value (staff), &actor);
        if (live < 0)
            return ml_admin_error ("the core store failed; see the core's log");
        ended = live == 0;
    }
    json_t *reply = s_execute (parts, &actor, ended, request, effects);
    //  "with_session": true on a payer's request: the reply carries what portal-session
    //  would say (the CSRF token, the payer's name and firm), so a page needs one call to
    //  the core, not two.
    if (actor.kind == ML_ACTOR_PAYER && json_is_true (json_object_get (request, "with_session")) &&
        json_is_true (json_object_get (reply, "ok")) && parts->logins) {
        json_t *about = ml_logins_execute (parts->logins, "portal-session", request, &actor);
        if (json_is_true (json_object_get (about, "ok"))) {
            json_object_del (about, "ok");
            json_object_set (reply, "session", about);
        }
        json_decref (about);
    }
    sodium_memzero (actor.session, sizeof actor.session);
    //  A staff member's search waits for the firm's agent as the operator's does (the core
    //  answers on this socket); no other actor's request ever starts one: should an op ask,
    //  it is refused rather than run with the operator's reach.
    if (effects->search && actor.kind != ML_ACTOR_STAFF) {
        ml_msg_destroy (&effects->search);
        json_decref (effects->context);
        effects->context = NULL;
        json_decref (reply);
        reply = s_not_found ();
    }
    return reply;
}

json_t *ml_admin_api_execute (const ml_admin_parts_t *parts, const json_t *request,
                              ml_admin_effects_t *effects)
{
    return s_api_execute (parts, request, effects, false);
}

json_t *ml_admin_api_execute_forwarded (const ml_admin_parts_t *parts, const json_t *request,
                                        ml_admin_effects_t *effects)
{
    return s_api_execute (parts, request, effects, true);
}

void ml_admin_test (bool verbose)
{
    printf (" * ml_admin: ");
    char directory[128], error[512];
    ml_admin_effects_t effects;
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_payers_t *payers = ml_payers_new (ml_store_db (store), error, sizeof error);
    assert (payers);
    ml_admin_parts_t parts = {store, payers, NULL, NULL, NULL, NULL, NULL, NULL};
    const ml_selftest_item_t items[] = {{'I', "INV-50", "2026-05-01", "C-1", "M-1", 10000},
                                        {'I', "INV-12", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-9", "2026-01-10", "C-1", "M-1", 10000},
                                        {'I', "INV-77", "2025-12-01", "C-2", "M-2", 10000}};
    assert (ml_selftest_replica (store, items, sizeof items / sizeof items[0]) == 0);

    json_t *request = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "op", "pay", "firm", "acme", "client",
                                 "C-1", "amount", "150.00", "ar_message", "desk");
    json_t *reply = ml_admin_execute (&parts, request, &effects);
    assert (json_is_true (json_object_get (reply, "ok")));
    assert (streq (effects.deliver_firm, "acme"));
    json_t *lines = json_object_get (reply, "lines");
    //  Oldest first: the two January invoices (INV-9 before INV-12), never above a balance.
    assert (json_array_size (lines) == 2);
    assert (
        streq (json_string_value (json_object_get (json_array_get (lines, 0), "invoice_number")),
               "INV-9"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 0), "amount_minor")) ==
            10000);
    assert (json_integer_value (json_object_get (json_array_get (lines, 1), "amount_minor")) ==
            5000);
    json_decref (reply);
    //  The pending posting counts: 150.00 more leaves 50.00 on INV-12, then INV-50.
    reply = ml_admin_execute (&parts, request, &effects);
    lines = json_object_get (reply, "lines");
    assert (
        streq (json_string_value (json_object_get (json_array_get (lines, 0), "invoice_number")),
               "INV-12"));
    assert (json_integer_value (json_object_get (json_array_get (lines, 0), "amount_minor")) ==
            5000);
    json_decref (reply);
    //  A client and a matter that do not belong together say so, for open-items and pay alike.
    const char *mismatched[] = {"open-items", "pay"};
    for (size_t index = 0; index < 2; index++) {
        json_t *mixed = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "op", mismatched[index], "firm",
                                   "acme", "client", "C-1", "matter", "M-2", "amount", "1.00");
        if (index == 0)
            json_object_del (mixed, "amount");
        reply = ml_admin_execute (&parts, mixed, &effects);
        const char *text = json_string_value (json_object_get (reply, "error"));
        assert (text && streq (text, "matter M-2 belongs to client C-2, not to client C-1"));
        json_decref (reply);
        json_decref (mixed);
    }
    //  A surplus is refused and nothing is recorded.
    json_object_set_new (request, "amount", json_string ("1,000.00"));
    reply = ml_admin_execute (&parts, request, &effects);
    assert (json_is_false (json_object_get (reply, "ok")));
    assert (strstr (json_string_value (json_object_get (reply, "error")), "more than"));
    assert (*effects.deliver_firm == 0 && !effects.search);
    json_decref (reply);
    //  Bad input: clear errors, nothing changes.
    const char *bad[] = {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", "
                         "\"amount\": \"1.234\"}",
                         "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-1\", "
                         "\"amount\": 5}",
                         "{\"op\": \"pay\", \"firm\": \"nope\", \"client\": \"C-1\", "
                         "\"amount\": \"5\"}",
                         "{\"op\": \"pay\", \"firm\": \"acme\", \"amount\": \"5\"}",
                         "{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"'; DROP TABLE "
                         "posting; --\", \"amount\": \"5\"}",
                         "{\"op\": \"explode\"}",
                         "[1, 2]",
                         "{\"op\": \"postings\", \"limit\": -1}",
                         "{\"op\": \"postings\", \"status\": \"reject\"}"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        json_t *hostile = json_loads (bad[index], 0, NULL);
        assert (hostile);
        reply = ml_admin_execute (&parts, hostile, &effects);
        assert (json_is_false (json_object_get (reply, "ok")));
        assert (json_string_length (json_object_get (reply, "error")) > 0);
        json_decref (reply);
        json_decref (hostile);
    }
    json_t *list = json_pack ("{s:s}", "op", "postings");
    reply = ml_admin_execute (&parts, list, &effects);
    assert (json_array_size (json_object_get (reply, "postings")) == 2);
    json_decref (reply);
    json_decref (request);

    //  Refused at the core, as the matter system would refuse later, with nothing recorded:
    //  a member the op does not know, invoices into a TRUST account or into an account in
    //  another currency, a trust member in an auto-apply request.
    ml_payments_t *payments = ml_payments_new (store, payers, NULL, NULL, error, sizeof error);
    assert (payments);
    parts.payments = payments;
    const char *accounts[][3] = {
        {"OP-001", "OPERATING", "USD"}, {"TR-001", "TRUST", "USD"}, {"OP-EUR", "OPERATING", "EUR"}};
    for (size_t index = 0; index < 3; index++) {
        json_t *add = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "account-add", "firm",
                                 "acme", "number", accounts[index][0], "type", accounts[index][1],
                                 "currency", accounts[index][2], "merchant_account", "m");
        reply = ml_admin_execute (&parts, add, &effects);
        assert (json_is_true (json_object_get (reply, "ok")));
        json_decref (reply);
        json_decref (add);
    }
    const char *refusals[][2] = {
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-2\", \"amount\": \"5\","
         " \"acount\": \"OP-001\"}",
         "'acount' is not a member of a 'pay' request"},
        {"{\"op\": \"status\", \"firm\": \"acme\"}", "'firm' is not a member"},
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-2\", \"amount\": \"5\","
         " \"account\": \"TR-001\"}",
         "is a TRUST account"},
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-2\", \"amount\": \"5\","
         " \"account\": \"OP-EUR\"}",
         "holds EUR, not USD"},
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-2\", \"amount\": \"5\","
         " \"account\": \"OP-404\"}",
         "no account OP-404"},
        {"{\"op\": \"pay\", \"firm\": \"acme\", \"client\": \"C-2\", \"amount\": \"+5\"}",
         "no '+' sign"},
        {"{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
         " \"pat@example.com\", \"auto\": {\"client\": \"C-2\", \"amount\": \"5\", \"trust\":"
         " \"M-1\"}}",
         "trust is never auto-applied"},
        {"{\"op\": \"link-create\", \"firm\": \"acme\", \"payer_name\": \"Pat\", \"payer_email\":"
         " \"pat@example.com\", \"auto\": {\"client\": \"C-2\", \"amount\": \"5\", \"curency\":"
         " \"USD\"}}",
         "'curency' is not a member of 'auto'"},
        //  Searches and Auto-Pay check their members in the same table, before they run.
        {"{\"op\": \"search\", \"firm\": \"acme\", \"txt\": \"smith\"}",
         "'txt' is not a member of a 'search' request"},
        {"{\"op\": \"payer-view\", \"payer_id\": 1, \"scope\": \"all\"}",
         "'scope' is not a member of a 'payer-view' request"},
        {"{\"op\": \"association-add\", \"payer_id\": 1, \"level\": \"client\", \"number\":"
         " \"C-1\", \"firm\": \"acme\"}",
         "'firm' is not a member of an 'association-add' request"},
        {"{\"op\": \"autopay-add\", \"payer_id\": 1, \"method_id\": 1, \"name\": \"M\","
         " \"account\": \"OP-001\", \"frequency\": \"monthly\", \"first_date\": \"2099-01-01\","
         " \"day\": \"last\"}",
         "'day' is not a member of an 'autopay-add' request"}};
    for (size_t index = 0; index < sizeof refusals / sizeof refusals[0]; index++) {
        json_t *refused = json_loads (refusals[index][0], 0, NULL);
        assert (refused);
        reply = ml_admin_execute (&parts, refused, &effects);
        const char *text = json_string_value (json_object_get (reply, "error"));
        if (!text || !strstr (text, refusals[index][1])) {
            fprintf (stderr, "%s: %s\n", refusals[index][0], text ? text : "accepted");
            assert (false);
        }
        json_decref (reply);
        json_decref (refused);
    }
    //  A payment link's page is anonymous: its ops answer without a session (one answer for
    //  a token that pays nothing), take only their members, and are not the operator's; the
    //  staff's link ops are not anonymous.
    const char *anonymous[][3] = {
        {"{\"op\": \"link-view\", \"token\": \"0123456789abcdef\"}", "api",
         "this payment link has expired or was already used"},
        {"{\"op\": \"link-pay-page\", \"token\": \"0123456789abcdef\", \"card_token\": \"t\","
         " \"pay_key\": \"k-0123456789abcdef\"}",
         "api", "this payment link has expired or was already used"},
        {"{\"op\": \"link-view\", \"token\": \"0123\", \"firm\": \"acme\"}", "api",
         "'firm' is not a member"},
        {"{\"op\": \"link-create\", \"firm\": \"acme\"}", "api", "not found"},
        {"{\"op\": \"link-view\", \"token\": \"0123\"}", "admin", "it is the web portal's"}};
    for (size_t index = 0; index < sizeof anonymous / sizeof anonymous[0]; index++) {
        json_t *asked = json_loads (anonymous[index][0], 0, NULL);
        reply = streq (anonymous[index][1], "api") ? ml_admin_api_execute (&parts, asked, &effects)
                                                   : ml_admin_execute (&parts, asked, &effects);
        const char *text = json_string_value (json_object_get (reply, "error"));
        if (!text || !strstr (text, anonymous[index][2])) {
            fprintf (stderr, "%s: %s\n", anonymous[index][0], text ? text : "accepted");
            assert (false);
        }
        json_decref (reply);
        json_decref (asked);
    }
    reply = ml_admin_execute (&parts, list, &effects);
    assert (json_array_size (json_object_get (reply, "postings")) == 2);
    json_decref (reply);
    //  The operating account in the invoices' currency takes the payment.
    json_t *right = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "op", "pay", "firm", "acme", "client",
                               "C-2", "amount", "5", "account", "OP-001");
    reply = ml_admin_execute (&parts, right, &effects);
    assert (json_is_true (json_object_get (reply, "ok")));
    json_decref (reply);
    json_decref (right);
    json_decref (list);
    parts.payments = NULL;
    ml_payments_destroy (&payments);
    //  Payer ops and searches are dispatched to their classes; a search waits for an agent.
    json_t *payer_add = json_pack ("{s:s, s:s, s:s, s:s}", "op", "payer-add", "firm", "acme",
                                   "name", "Pat", "email", "pat@example.com");
    reply = ml_admin_execute (&parts, payer_add, &effects);
    assert (json_is_true (json_object_get (reply, "ok")) && !effects.search);
    json_decref (reply);
    json_decref (payer_add);
    json_t *search = json_pack ("{s:s, s:s, s:s}", "op", "search", "firm", "acme", "text", "x");
    reply = ml_admin_execute (&parts, search, &effects);
    assert (!reply && effects.search && effects.context && streq (effects.search_firm, "acme"));
    ml_msg_destroy (&effects.search);
    json_decref (effects.context);
    json_decref (search);
    ml_payers_destroy (&payers);
    ml_store_destroy (&store);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
