/*  ml_payments, part of the class (see include/ml_payments.h): payment links (link-create,
 * link-pay, link-list, link-cancel), and the payer's page of a link (link-view, link-pay-page:
 * anonymous ops of the API socket, docs/portal-api.md). */
#include "ml_pay_internal.h"
#include "ml_portal_pay.h"

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
        ml_store_rows (ml_db_query (self->db, sql, "ss", now, value), ml_pay_integer_column);
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

static void s_link_body (const ml_pay_order_t *order, const char *public_url, const char *token,
                         const char *expires, char **body)
{
    zchunk_t *text = zchunk_new (NULL, 0);
    char head[1024];
    snprintf (head, sizeof head,
              "Dear %s,\n\nYou can pay the following online, once, until %s (UTC):\n\n",
              order->payer_name, expires);
    zchunk_extend (text, head, strlen (head));
    for (int group = 0; group < 2; group++)
        ml_pay_lines_text (text, order->groups[group].lines, order->groups[group].currency);
    //  With a portal, the payer's page; without one, a code for the firm's staff to use.
    if (*public_url)
        snprintf (head, sizeof head,
                  "\nPay here: %s/link?token=%s\n\nIf you did not expect this message, ignore "
                  "it.\n",
                  public_url, token);
    else
        snprintf (head, sizeof head,
                  "\nYour payment code: %s\n\nIf you did not expect this message, ignore it.\n",
                  token);
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
    s_link_body (&order, self->public_url, token, expires, &body);
    snprintf (dedupe, sizeof dedupe, "link:%s", link_id);
    bool ok = ml_db_begin (self->db) == 0 &&
              ml_db_execute (
                  self->db,
                  "INSERT INTO payment_link (link_id, token_digest, firm_id, payer_id, payer_name,"
                  " payer_email, receipt_email, ar_message, lines, created_by, created_at,"
                  " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  "sssissssssss", link_id, digest, order.firm, order.payer_id, order.payer_name,
                  order.payer_email, order.receipt_email, order.ar_message, lines_text, order.staff,
                  now, expires) == 1 &&
              (!self->mailer || ml_mailer_enqueue (self->mailer, "payment_link", dedupe, order.firm,
                                                   order.receipt_email, subject, body, mail_error,
                                                   sizeof mail_error) >= 0) &&
              ml_db_commit (self->db) == 0;
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
    json_t *rows = ml_store_rows (ml_db_query (self->db,
                                               "SELECT * FROM (" S_LINK_SQL
                                               " WHERE firm_id = ?) AS link WHERE (? IS NULL OR"
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
    else if (ml_db_execute (self->db,
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

void ml_payments_set_public_url (ml_payments_t *self, const char *url)
{
    assert (self);
    snprintf (self->public_url, sizeof self->public_url, "%s", url ? url : "");
}

//  The payer's page of a link ---------------------------------------------------------------

//  One answer for a token that is unknown, expired, cancelled or used: whoever holds a
//  token learns nothing about links from it but that it cannot be paid.
#define S_LINK_GONE "this payment link has expired or was already used"

static json_t *s_link_gone (void)
{
    return json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", S_LINK_GONE, "gone", 1);
}

//  The link a request's token names (new reference), or NULL with *reply set.
static json_t *s_link_by_token (ml_payments_t *self, const json_t *request, json_t **reply)
{
    char problem[256] = "", digest[64];
    const char *token = ml_admin_argument (request, "token", 64, problem, sizeof problem);
    if (*problem || !token || !*token) {
        *reply = s_link_gone ();
        return NULL;
    }
    s_link_digest (token, digest, sizeof digest);
    json_t *link = ml_pay_link_row (self, "token_digest", digest);
    if (!link)
        *reply = s_link_gone ();
    return link;
}

//  The request a link is paid with: its selection as made, checked again against today's
//  balances by ml_pay_order_parse.
static json_t *s_link_again (const json_t *link)
{
    json_t *again = json_pack (
        "{s:O, s:O, s:O, s:O, s:O, s:o, s:s}", "firm", json_object_get (link, "firm_id"),
        "payer_name", json_object_get (link, "payer_name"), "payer_email",
        json_object_get (link, "payer_email"), "receipt_email",
        json_object_get (link, "receipt_email"), "ar_message", json_object_get (link, "ar_message"),
        "lines", json_loads (json_string_value (json_object_get (link, "lines")), 0, NULL), "staff",
        "payment link");
    return again;
}

static bool s_link_outstanding (const json_t *link)
{
    const char *state = json_string_value (json_object_get (link, "state"));
    return state && streq (state, "outstanding");
}

json_t *ml_pay_link_view (ml_payments_t *self, const json_t *request)
{
    json_t *reply = NULL;
    json_t *link = s_link_by_token (self, request, &reply);
    if (!link)
        return reply;
    if (!s_link_outstanding (link)) {
        json_decref (link);
        return s_link_gone ();
    }
    ml_pay_order_t order;
    ml_pay_order_init (&order);
    json_t *again = s_link_again (link);
    reply = ml_pay_order_parse (self, again, &order);
    json_decref (again);
    if (reply) {
        //  The firm's words about why (an invoice paid meanwhile) are for the firm.
        json_decref (reply);
        ml_pay_order_free (&order);
        json_decref (link);
        return ml_admin_error ("the amounts of this link are no longer due; ask the firm for a "
                               "new link");
    }
    //  What the payer sees: never the A/R message, the e-mail addresses or the link's id.
    json_t *lines = json_array (), *totals = json_array ();
    for (int group = 0; group < 2; group++) {
        size_t index;
        json_t *line;
        json_array_foreach (order.groups[group].lines, index, line)
        {
            json_array_append_new (lines, json_pack ("{s:s, s:O, s:O, s:s}", "kind",
                                                     group ? "trust" : "invoice", "reference",
                                                     json_array_get (line, 1), "amount_minor",
                                                     json_array_get (line, 2), "currency",
                                                     order.groups[group].currency));
        }
        if (json_array_size (order.groups[group].lines) == 0)
            continue;
        //  One total per currency.
        json_t *total = NULL;
        json_array_foreach (totals, index, line)
        {
            if (streq (json_string_value (json_object_get (line, "currency")),
                       order.groups[group].currency))
                total = line;
        }
        if (total)
            json_object_set_new (
                total, "amount_minor",
                json_integer (json_integer_value (json_object_get (total, "amount_minor")) +
                              order.groups[group].amount));
        else
            json_array_append_new (totals, json_pack ("{s:s, s:I}", "currency",
                                                      order.groups[group].currency, "amount_minor",
                                                      (json_int_t)order.groups[group].amount));
    }
    json_t *firm = ml_store_firm (self->store, order.firm);
    const char *firm_name = firm ? json_string_value (json_object_get (firm, "name")) : NULL;
    reply = ml_admin_ok (json_pack ("{s:{s:s, s:s, s:o, s:o, s:O, s:O}}", "link", "firm_name",
                                    firm_name ? firm_name : order.firm, "payer_name",
                                    order.payer_name, "lines", lines, "totals", totals,
                                    "expires_at", json_object_get (link, "expires_at"), "state",
                                    json_object_get (link, "state")));
    json_decref (firm);
    ml_pay_order_free (&order);
    json_decref (link);
    return reply;
}

//  pay_key: 16 to 80 letters, digits, '-' or '_' (the web draws 32 random bytes).
static bool s_key_ok (const char *key, size_t least)
{
    return key && strlen (key) >= least && strlen (key) <= 80 &&
           strspn (key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
               strlen (key);
}

//  The payment a link's form key makes: its UUID follows from the link and the key, so a
//  form sent twice names the same payment, and no table has to remember keys.
static void s_key_uuid (const char *link_id, const char *key, char *uuid, size_t size)
{
    zdigest_t *hash = zdigest_new ();
    zdigest_update (hash, (const byte *)"link-pay-page:", 14);
    zdigest_update (hash, (const byte *)link_id, strlen (link_id));
    zdigest_update (hash, (const byte *)":", 1);
    zdigest_update (hash, (const byte *)key, strlen (key));
    char hex[41];
    snprintf (hex, sizeof hex, "%s", zdigest_string (hash));
    zdigest_destroy (&hash);
    for (char *cursor = hex; *cursor; cursor++)
        *cursor = (char)tolower ((unsigned char)*cursor);
    snprintf (uuid, size, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

json_t *ml_pay_link_pay_page (ml_payments_t *self, const json_t *request, char *deliver_firm,
                              size_t size)
{
    char problem[256] = "";
    const char *key = ml_admin_argument (request, "pay_key", 80, problem, sizeof problem);
    const char *card =
        ml_admin_argument (request, "card_token", ML_PROCESSOR_ID_MAX, problem, sizeof problem);
    if (*problem || !s_key_ok (key, 16))
        return ml_admin_error ("'pay_key' is required: 16 to 80 letters, digits, '-' or '_'");
    if (!s_key_ok (card, 1))
        return ml_admin_error ("'card_token' is required: the card's token from the card "
                               "processor");
    json_t *reply = NULL;
    json_t *link = s_link_by_token (self, request, &reply);
    if (!link)
        return reply;
    const char *link_id = json_string_value (json_object_get (link, "link_id"));
    char uuid[37];
    s_key_uuid (link_id, key, uuid, sizeof uuid);
    //  This form was sent before: its payment as it stands (paid once, or declined).
    json_t *known = ml_pay_payment_json (self, uuid);
    if (known) {
        json_decref (link);
        return ml_portal_pay_public (
            json_pack ("{s:b, s:o, s:b}", "ok", 1, "payment", known, "repeated", 1));
    }
    //  One payment of a link at a time; the same form again while it waits pays nothing.
    for (ml_pay_flow_t *other = (ml_pay_flow_t *)zhashx_first (self->flows); other;
         other = (ml_pay_flow_t *)zhashx_next (self->flows))
        if (other->kind == ML_PAY_FLOW_LINK && streq (other->link_id, link_id)) {
            bool same = streq (other->payment_uuid, uuid);
            json_decref (link);
            return same
                       ? json_pack ("{s:b, s:b, s:{s:s, s:s, s:[]}}", "ok", 1, "repeated", 1,
                                    "payment", "payment_uuid", uuid, "status", "pending", "charges")
                       : ml_admin_error ("this payment link is being paid right now; if that "
                                         "payment is declined, try again in a minute");
        }
    if (!s_link_outstanding (link)) {
        json_decref (link);
        return s_link_gone ();
    }
    if (!self->processor) {
        json_decref (link);
        return ml_admin_error ("card payments are not available");
    }
    ml_pay_flow_t *flow = ml_pay_flow_new (ML_PAY_FLOW_LINK);
    flow->request = s_link_again (link);
    snprintf (flow->link_id, sizeof flow->link_id, "%s", link_id);
    json_decref (link);
    reply = ml_pay_order_parse (self, flow->request, &flow->order);
    if (reply) {
        json_decref (reply);
        ml_pay_flow_destroy (&flow);
        return ml_admin_error ("the amounts of this link are no longer due; ask the firm for a "
                               "new link");
    }
    snprintf (flow->payment_uuid, sizeof flow->payment_uuid, "%s", uuid);
    snprintf (flow->id, sizeof flow->id, "%s", uuid);
    //  What card the token names is the processor's word, not the browser's: looked up
    //  first (the worker's call), then charged as a link's payment (ml_pay_flow_tokenized).
    char call_key[ML_PROCESSOR_KEY_MAX + 1];
    snprintf (call_key, sizeof call_key, "%s:token", uuid);
    ml_pay_call_t *call = ml_pay_call_new (ML_PAY_FOR_TOKEN, call_key, flow->id);
    call->call.token_lookup = true;
    snprintf (call->call.token, sizeof call->call.token, "%s", card);
    zhashx_insert (self->flows, flow->id, flow);
    ml_pay_submit (self, call, deliver_firm, size);
    reply = ml_pay_flow_answer (self, flow);
    //  Answered later (waiting_for): the core shows the payer only ml_portal_pay_public's part.
    return json_object_get (reply, "waiting_for") ? reply : ml_portal_pay_public (reply);
}
