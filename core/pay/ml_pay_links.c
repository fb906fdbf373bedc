/*  ml_payments, part of the class (see include/ml_payments.h): payment links (link-create,
 * link-pay, link-list, link-cancel). */
#include "ml_pay_internal.h"

//  Payment links ------------------------------------------------------------------------------

#define S_LINK_HOURS 24

//  A link's secret is its token; the store keeps only its digest, so a copy of the store
//  cannot pay anything.
static void s_link_digest (const char *token, char *digest, size_t size)
{
    zdigest_t *hash = zdigest_new ();
    zdigest_update (hash, (const byte *)token, strlen (token));
    snprintf (digest, size, "%s", zdigest_string (hash));
    zdigest_destroy (&hash);
}

#define S_LINK_SQL                                                                                 \
    "SELECT link_id, firm_id, payer_id, payer_name, payer_email, receipt_email, ar_message,"       \
    " lines, created_by, created_at, expires_at, cancelled_at, payment_uuid,"                      \
    " CASE WHEN payment_uuid IS NOT NULL THEN 'paid' WHEN cancelled_at IS NOT NULL"                \
    " THEN 'cancelled' WHEN expires_at <= ? THEN 'expired' ELSE 'outstanding' END AS state"        \
    " FROM payment_link"

json_t *ml_pay_link_row (ml_payments_t *self, const char *column, const char *value)
{
    char sql[512], now[32];
    ml_store_now (now, sizeof now);
    snprintf (sql, sizeof sql, S_LINK_SQL " WHERE %s = ?", column);
    json_t *rows =
        ml_store_rows (ml_odbc_query (self->odbc, sql, "ss", now, value), ml_pay_integer_column);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

//  A selection's lines for people: "Invoice INV-1: 12.34 USD" / "Trust deposit, matter M-1".
void ml_pay_lines_text (zchunk_t *text, const json_t *lines, const char *currency)
{
    size_t index;
    json_t *line;
    json_array_foreach (lines, index, line)
    {
        //  Either form: [kind, reference, amount] (a charge) or {invoice|trust: n, amount_minor}.
        bool trust = json_is_array (line)
                         ? streq (json_string_value (json_array_get (line, 0)), "T")
                         : json_object_get (line, "trust") != NULL;
        const char *reference =
            json_is_array (line)
                ? json_string_value (json_array_get (line, 1))
                : json_string_value (json_object_get (line, trust ? "trust" : "invoice"));
        int64_t amount = json_is_array (line)
                             ? json_integer_value (json_array_get (line, 2))
                             : json_integer_value (json_object_get (line, "amount_minor"));
        char money[64];
        ml_money_format (amount, currency, money, sizeof money);
        zchunk_extend (text, "  ", 2);
        const char *label = trust ? "Trust deposit, matter " : "Invoice ";
        zchunk_extend (text, label, strlen (label));
        zchunk_extend (text, reference, strlen (reference));
        zchunk_extend (text, ": ", 2);
        zchunk_extend (text, money, strlen (money)); //  "12.34 USD": it names the currency
        zchunk_extend (text, "\n", 1);
    }
}

char *ml_pay_chunk_text (zchunk_t *chunk)
{
    zchunk_extend (chunk, "", 1);
    char *text = strdup ((const char *)zchunk_data (chunk));
    zchunk_destroy (&chunk);
    return text;
}

static void s_link_body (const ml_pay_order_t *order, const char *token, const char *expires,
                         char **body)
{
    zchunk_t *text = zchunk_new (NULL, 0);
    char head[512];
    snprintf (head, sizeof head,
              "Dear %s,\n\nYou can pay the following online, once, until %s (UTC):\n\n",
              order->payer_name, expires);
    zchunk_extend (text, head, strlen (head));
    for (int group = 0; group < 2; group++)
        ml_pay_lines_text (text, order->groups[group].lines, order->groups[group].currency);
    snprintf (head, sizeof head,
              "\nYour payment code: %s\n\nIf you did not expect this message, ignore it.\n", token);
    zchunk_extend (text, head, strlen (head));
    *body = ml_pay_chunk_text (text);
    explicit_bzero (head, sizeof head);
}

json_t *ml_pay_link_create (ml_payments_t *self, const json_t *original)
{
    json_t *reply = NULL;
    json_t *request = ml_pay_with_selection (self, original, &reply);
    if (!request)
        return reply;
    ml_pay_order_t order;
    ml_pay_order_init (&order);
    reply = ml_pay_order_parse (self, request, &order);
    if (reply) {
        ml_pay_order_free (&order);
        json_decref (request);
        return reply;
    }
    //  128 random bits: the token is the link's only credential.
    zuuid_t *random = zuuid_new ();
    char token[33], digest[64], link_id[37], now[32], expires[32];
    snprintf (token, sizeof token, "%s", zuuid_str (random));
    zuuid_destroy (&random);
    for (char *cursor = token; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    s_link_digest (token, digest, sizeof digest);
    ml_store_uuid (link_id, sizeof link_id);
    ml_store_now (now, sizeof now);
    time_t later = time (NULL) + S_LINK_HOURS * 3600;
    struct tm utc;
    gmtime_r (&later, &utc);
    strftime (expires, sizeof expires, "%Y-%m-%dT%H:%M:%S.000Z", &utc);
    json_t *lines = ml_pay_order_lines (&order);
    char *lines_text = json_dumps (lines, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref (lines);
    //  The payer's e-mail carries the token: the only moment it exists outside the payer.
    char *body = NULL, subject[160], dedupe[64], mail_error[256] = "";
    json_t *firm = ml_store_firm (self->store, order.firm);
    snprintf (subject, sizeof subject, "%s: your payment link",
              firm ? json_string_value (json_object_get (firm, "name")) : order.firm);
    json_decref (firm);
    s_link_body (&order, token, expires, &body);
    snprintf (dedupe, sizeof dedupe, "link:%s", link_id);
    bool ok = ml_odbc_begin (self->odbc) == 0 &&
              ml_odbc_execute (
                  self->odbc,
                  "INSERT INTO payment_link (link_id, token_digest, firm_id, payer_id, payer_name,"
                  " payer_email, receipt_email, ar_message, lines, created_by, created_at,"
                  " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  "sssissssssss", link_id, digest, order.firm, order.payer_id, order.payer_name,
                  order.payer_email, order.receipt_email, order.ar_message, lines_text, order.staff,
                  now, expires) == 1 &&
              (!self->mailer || ml_mailer_enqueue (self->mailer, "payment_link", dedupe, order.firm,
                                                   order.receipt_email, subject, body, mail_error,
                                                   sizeof mail_error) >= 0) &&
              ml_odbc_commit (self->odbc) == 0;
    if (!ok && self->mailer && *mail_error)
        ml_log (ML_LOG_WARNING, "payments: payment link e-mail refused: %s", mail_error);
    explicit_bzero (body, strlen (body));
    free (body);
    free (lines_text);
    ml_pay_order_free (&order);
    if (ok)
        ml_pay_selection_done (self, request);
    json_decref (request);
    if (!ok)
        return ml_pay_store_failed (self, "link-create");
    ml_log (ML_LOG_NOTICE, "payments: payment link %s created, valid until %s", link_id, expires);
    json_t *link = ml_pay_link_row (self, "link_id", link_id);
    //  The token is shown once, to be sent to the payer; it is not kept.
    json_object_set_new (link, "token", json_string (token));
    return ml_admin_ok (json_pack ("{s:o}", "link", link));
}

json_t *ml_pay_link_pay (ml_payments_t *self, const json_t *request, char *deliver_firm,
                         size_t size)
{
    char problem[256] = "", digest[64];
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token)
        return ml_admin_error ("'token' is required");
    if (!self->processor)
        return ml_admin_error ("no card processor is configured");
    s_link_digest (token, digest, sizeof digest);
    json_t *link = ml_pay_link_row (self, "token_digest", digest);
    if (!link)
        return ml_admin_error ("no such payment link");
    const char *state = json_string_value (json_object_get (link, "state"));
    if (!streq (state, "outstanding")) {
        json_t *reply = ml_admin_error ("this payment link is %s", state);
        json_decref (link);
        return reply;
    }
    //  The link's selection, checked again against today's balances.
    json_t *again = json_pack (
        "{s:O, s:O, s:O, s:O, s:O, s:o}", "firm", json_object_get (link, "firm_id"), "payer_name",
        json_object_get (link, "payer_name"), "payer_email", json_object_get (link, "payer_email"),
        "receipt_email", json_object_get (link, "receipt_email"), "ar_message",
        json_object_get (link, "ar_message"), "lines",
        json_loads (json_string_value (json_object_get (link, "lines")), 0, NULL));
    json_object_set_new (again, "staff", json_string ("payment link"));
    //  One payment of a link at a time: while one waits for the processor, another could
    //  otherwise pay the same link again (a link is spent only once its charge is answered).
    for (ml_pay_flow_t *other = (ml_pay_flow_t *)zhashx_first (self->flows); other;
         other = (ml_pay_flow_t *)zhashx_next (self->flows))
        if (other->kind == ML_PAY_FLOW_LINK &&
            streq (other->link_id, json_string_value (json_object_get (link, "link_id")))) {
            json_decref (again);
            json_decref (link);
            return ml_admin_error ("this payment link is being paid right now; if that payment "
                                   "is declined, try again in a minute");
        }
    ml_pay_flow_t *flow = ml_pay_flow_new (ML_PAY_FLOW_LINK);
    flow->request = again;
    snprintf (flow->link_id, sizeof flow->link_id, "%s",
              json_string_value (json_object_get (link, "link_id")));
    json_decref (link);
    json_t *reply = ml_pay_order_parse (self, again, &flow->order);
    if (reply) {
        const char *why = json_string_value (json_object_get (reply, "error"));
        json_t *changed = ml_admin_error ("the amounts of this link are no longer due (%s); ask "
                                          "the firm for a new link",
                                          why ? why : "");
        json_decref (reply);
        reply = changed;
    }
    ml_store_uuid (flow->payment_uuid, sizeof flow->payment_uuid);
    snprintf (flow->id, sizeof flow->id, "%s", flow->payment_uuid);
    if (!reply && json_object_get (request, "method_id"))
        reply = ml_admin_error ("a payment link is paid with a card");
    if (reply) {
        ml_pay_flow_destroy (&flow);
        return reply;
    }
    //  Single use: once money moved, or may have (an unknown outcome), the link is spent
    //  (ml_pay_flow_done). A declined card leaves it outstanding for another try.
    return ml_pay_flow_start (self, flow, request, deliver_firm, size);
}

json_t *ml_pay_links (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "", now[32];
    const char *firm = ml_admin_argument (request, "firm", 63, problem, sizeof problem);
    const char *state = ml_admin_argument (request, "state", 16, problem, sizeof problem);
    if (*problem || !firm)
        return ml_admin_error ("'firm' is required");
    if (state && !streq (state, "outstanding") && !streq (state, "paid") &&
        !streq (state, "cancelled") && !streq (state, "expired"))
        return ml_admin_error ("'state' must be outstanding, paid, cancelled or expired");
    ml_store_now (now, sizeof now);
    json_t *rows = ml_store_rows (ml_odbc_query (self->odbc,
                                                 "SELECT * FROM (" S_LINK_SQL
                                                 " WHERE firm_id = ?) WHERE (? IS NULL OR"
                                                 " state = ?) ORDER BY created_at DESC LIMIT 1000",
                                                 "ssss", now, firm, state, state),
                                  ml_pay_integer_column);
    return rows ? ml_admin_ok (json_pack ("{s:o}", "links", rows))
                : ml_pay_store_failed (self, "link-list");
}

json_t *ml_pay_link_cancel (ml_payments_t *self, const json_t *request)
{
    char problem[256] = "";
    const char *link_id = ml_admin_argument (request, "link_id", 36, problem, sizeof problem);
    if (*problem || !link_id)
        return ml_admin_error ("'link_id' is required");
    json_t *link = ml_pay_link_row (self, "link_id", link_id);
    if (!link)
        return ml_admin_error ("no payment link %s", link_id);
    const char *state = json_string_value (json_object_get (link, "state"));
    json_t *reply = NULL;
    char now[32];
    ml_store_now (now, sizeof now);
    if (!streq (state, "outstanding"))
        reply = ml_admin_error ("payment link %s is %s already", link_id, state);
    else if (ml_odbc_execute (self->odbc,
                              "UPDATE payment_link SET cancelled_at = ? WHERE link_id = ? AND"
                              " payment_uuid IS NULL AND cancelled_at IS NULL",
                              "ss", now, link_id) != 1)
        reply = ml_pay_store_failed (self, "link-cancel");
    json_decref (link);
    if (reply)
        return reply;
    ml_log (ML_LOG_NOTICE, "payments: payment link %s cancelled", link_id);
    return ml_admin_ok (json_pack ("{s:o}", "link", ml_pay_link_row (self, "link_id", link_id)));
}
