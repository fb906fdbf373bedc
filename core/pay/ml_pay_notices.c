/*  ml_payments, part of the class (see include/ml_payments.h): receipts to payers and "posting
 * rejected" notices to the firm (ml_payments_notify, firm-contact). */
#include "ml_pay_internal.h"
#include "ml_notify.h"

//  Queue one approved charge's receipt (and the firm's notices of it) and mark the charge,
//  inside the caller's transaction. Returns 0, or -1 with *error set when the outbox refused
//  a message (left empty on a store error).
static int s_queue_receipt (ml_payments_t *self, json_t *row, char *error, size_t error_size)
{
#define S_TEXT(key) json_string_value (json_object_get (row, key))
    char money[64], head[1024], subject[200], dedupe[128];
    ml_money_format (json_integer_value (json_object_get (row, "amount_minor")),
                     S_TEXT ("currency"), money, sizeof money);
    snprintf (subject, sizeof subject, "%s: receipt for your payment of %s", S_TEXT ("firm_name"),
              money);
    snprintf (head, sizeof head,
              "Dear %s,\n\nThank you. %s received your payment of %s on %.10s,\n"
              "paid with %s ending %s (reference %s), for:\n\n",
              S_TEXT ("payer_name"), S_TEXT ("firm_name"), money, S_TEXT ("updated_at"),
              S_TEXT ("brand"), S_TEXT ("last4"), S_TEXT ("processor_txn"));
    zchunk_t *text = zchunk_new (head, strlen (head));
    json_t *lines = json_loads (S_TEXT ("lines"), 0, NULL);
    ml_pay_lines_text (text, lines, S_TEXT ("currency"));
    json_decref (lines);
    const char *tail = "\nKeep this message for your records.\n";
    zchunk_extend (text, tail, strlen (tail));
    char *body = ml_pay_chunk_text (text);
    snprintf (dedupe, sizeof dedupe, "receipt:%s", S_TEXT ("charge_key"));
    //  The firm's own notices of it, when it asked for them (ml_notify): after the receipt,
    //  so a refused receipt address still marks the charge once.
    char firm_subject[300], firm_body[1024], firm_dedupe[128], link_dedupe[128];
    snprintf (firm_subject, sizeof firm_subject, "Payment received: %s from %.120s", money,
              S_TEXT ("payer_name"));
    snprintf (firm_body, sizeof firm_body,
              "%s received %s from %s into its %s account (%s ending %s, reference %s)%s%s."
              "\nThe charge is %s; its posting goes to the matter system.\n",
              S_TEXT ("firm_name"), money, S_TEXT ("payer_name"), S_TEXT ("account_type"),
              S_TEXT ("brand"), S_TEXT ("last4"), S_TEXT ("processor_txn"),
              S_TEXT ("link_id") ? ", through payment link " : "",
              S_TEXT ("link_id") ? S_TEXT ("link_id") : "", S_TEXT ("charge_key"));
    snprintf (firm_dedupe, sizeof firm_dedupe, "payment-received:%s", S_TEXT ("charge_key"));
    snprintf (link_dedupe, sizeof link_dedupe, "link-paid:%s",
              S_TEXT ("link_id") ? S_TEXT ("link_id") : "");
    //  The dedupe keys keep a repeat harmless.
    *error = 0;
    bool ok =
        ml_mailer_enqueue (self->mailer, "receipt", dedupe, S_TEXT ("firm_id"),
                           S_TEXT ("receipt_email"), subject, body, error, error_size) >= 0 &&
        ml_notify_enqueue (self->mailer, self->db, "payment_received", firm_dedupe,
                           S_TEXT ("firm_id"), firm_subject, firm_body, error, error_size) >= 0 &&
        (!S_TEXT ("link_id") ||
         ml_notify_enqueue (self->mailer, self->db, "link_paid", link_dedupe, S_TEXT ("firm_id"),
                            "Payment link paid", firm_body, error, error_size) >= 0) &&
        ml_db_defer (self->db, "UPDATE charge SET receipt_queued = 1 WHERE charge_key = ?", "s",
                     S_TEXT ("charge_key")) == 0;
    free (body);
#undef S_TEXT
    return ok ? 0 : -1;
}

int ml_payments_notify (ml_payments_t *self)
{
    assert (self);
    if (!self->mailer)
        return 0;
    int queued = 0;
    //  Receipts: one per approved charge, to the payment's receipt address.
    json_t *due = ml_pay_rows (
        self,
        "SELECT c.charge_key, c.account_type, c.currency, c.amount_minor, c.lines,"
        " c.processor_txn, c.updated_at, p.firm_id, p.payer_name, p.receipt_email, p.brand,"
        " p.last4, f.name AS firm_name, (SELECT l.link_id FROM payment_link l WHERE"
        " l.payment_uuid = p.payment_uuid) AS link_id FROM charge c JOIN payment p ON "
        "p.payment_uuid ="
        " c.payment_uuid JOIN firm f ON f.firm_id = p.firm_id WHERE c.status = 'approved'"
        " AND c.receipt_queued = 0 ORDER BY c.updated_at LIMIT 50",
        NULL, NULL);
    size_t index;
    json_t *row;
    char error[256];
    //  All of them in one transaction: this runs on the core's thread once a second, and a
    //  transaction each, each waiting for the disk, held that thread up to 150 ms at 50
    //  receipts (bench/scale.sh). Should any fail, they are done again one at a time below,
    //  so one refused address holds up no other receipt.
    bool together = json_array_size (due) > 0 && ml_db_begin (self->db) == 0;
    json_array_foreach (due, index, row)
    {
        if (together)
            together = s_queue_receipt (self, row, error, sizeof error) == 0;
    }
    if (together && ml_db_commit (self->db) == 0)
        queued += (int)json_array_size (due);
    else if (json_array_size (due) > 0) {
        ml_db_rollback (self->db);
        json_array_foreach (due, index, row)
        {
            const char *charge = json_string_value (json_object_get (row, "charge_key"));
            if (ml_db_begin (self->db) == 0 &&
                s_queue_receipt (self, row, error, sizeof error) == 0 &&
                ml_db_commit (self->db) == 0) {
                queued++;
                continue;
            }
            ml_db_rollback (self->db);
            //  A receipt the outbox refuses (a bad address) is logged once and not tried
            //  again; a store error is tried again at the next sweep.
            ml_log (ML_LOG_WARNING, "payments: no receipt for charge %s: %s", charge,
                    *error ? error : "the core store failed");
            if (*error)
                ml_db_execute (self->db,
                               "UPDATE charge SET receipt_queued = 2 WHERE charge_key = ?", "s",
                               charge);
        }
    }
    json_decref (due);
    //  Rejected postings: the firm learns at once, with the matter system's reason.
    due = ml_pay_rows (
        self,
        "SELECT p.posting_uuid, p.firm_id, p.client_number, p.currency, p.amount_minor,"
        " p.reason, p.source FROM posting p WHERE p.status = 'rejected' AND NOT EXISTS"
        " (SELECT 1 FROM mail m WHERE m.dedupe_key = 'rejected:' || p.posting_uuid) "
        "AND " ML_NOTIFY_ON_SQL ("p.firm_id", "'posting_rejected'") " LIMIT 50",
        NULL, NULL);
    json_array_foreach (due, index, row)
    {
#define S_TEXT(key) json_string_value (json_object_get (row, key))
        char money[64], body[1024], subject[200], dedupe[128];
        ml_money_format (json_integer_value (json_object_get (row, "amount_minor")),
                         S_TEXT ("currency"), money, sizeof money);
        snprintf (subject, sizeof subject, "Posting rejected: %s for client %s", money,
                  S_TEXT ("client_number"));
        snprintf (body, sizeof body,
                  "The matter system rejected posting %s (%s for client %s, from a %s "
                  "payment).\nReason: %s\n\nThe money was received; the posting needs your "
                  "attention: see 'matterlink posting %s', then reallocate or resend it.\n",
                  S_TEXT ("posting_uuid"), money, S_TEXT ("client_number"), S_TEXT ("source"),
                  S_TEXT ("reason") ? S_TEXT ("reason") : "(none given)", S_TEXT ("posting_uuid"));
        snprintf (dedupe, sizeof dedupe, "rejected:%s", S_TEXT ("posting_uuid"));
        if (ml_db_begin (self->db) == 0 &&
            ml_notify_enqueue (self->mailer, self->db, "posting_rejected", dedupe,
                               S_TEXT ("firm_id"), subject, body, error, sizeof error) > 0 &&
            ml_db_commit (self->db) == 0)
            queued++;
        else {
            ml_db_rollback (self->db);
            ml_log (ML_LOG_WARNING, "payments: no rejection notice for posting %s: %s",
                    S_TEXT ("posting_uuid"), error);
        }
#undef S_TEXT
    }
    json_decref (due);
    return queued;
}

json_t *ml_pay_firm_contact (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *email = ml_admin_argument (request, "email", 254, problem, sizeof problem);
    if (*problem || !firm || !email || !strchr (email, '@') || strpbrk (email, " \r\n"))
        return ml_admin_error ("'firm' and 'email' (one address) are required");
    json_t *known = ml_store_firm (self->store, firm);
    if (!known)
        return ml_admin_unknown_firm (self->store, firm);
    json_decref (known);
    ml_store_now (now, sizeof now);
    if (ml_db_begin (self->db) != 0 ||
        ml_db_execute (self->db,
                       "INSERT INTO firm_contact (firm_id, notify_email, updated_at)"
                       " VALUES (?, ?, ?) ON CONFLICT (firm_id) DO UPDATE SET"
                       " notify_email = excluded.notify_email, updated_at = excluded.updated_at",
                       "sss", firm, email, now) != 1 ||
        ml_db_commit (self->db) != 0)
        return ml_pay_store_failed (self, "firm-contact");
    return ml_admin_ok (json_pack ("{s:s, s:s}", "firm", firm, "notify_email", email));
}
