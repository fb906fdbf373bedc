/*  ml_web_staff_payment: a card payment's page in the staff app (docs/web.md "Manage
    Postings"): its charges (operating and trust apart) with their postings, and refund, void
    and chargeback of a charge. The core's ops decide: what can be given back (the charge's
    lines, last first, never more than is left), the trust cap (never more than the matter's
    trust balance), a void only before anything was reversed; the page shows each refusal in
    the core's words, and a read-only member sees no buttons (the core would refuse them too).
*/
#include "ml_web_staff.h"

#include <stdio.h>
#include <string.h>

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

static const char *s_kind_name (const char *kind)
{
    return strcmp (kind, "refund") == 0       ? "Refund"
           : strcmp (kind, "void") == 0       ? "Void"
           : strcmp (kind, "chargeback") == 0 ? "Chargeback"
                                              : NULL;
}

//  One charge's actions: refund (an amount, or all that is left), void, chargeback.
static void s_actions (ml_web_exchange_t *exchange, json_t *session, const char *payment,
                       const char *key, const char *label)
{
    const char *csrf = ml_web_staff_csrf (session);
    static const char *const kinds[] = {"refund", "chargeback"};
    for (size_t index = 0; index < 2; index++)
        ml_web_page_add (
            exchange,
            "<form method=\"post\" action=\"/staff/payments/{}\" class=\"inline reverse {}\">"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
            "<input type=\"hidden\" name=\"action\" value=\"{}\">"
            "<input type=\"hidden\" name=\"charge_key\" value=\"{}\">"
            "<label for=\"{}-{}\">{} amount ({} charge; empty: all that is left)</label>"
            "<input id=\"{}-{}\" name=\"amount\" type=\"text\" inputmode=\"decimal\" "
            "maxlength=\"24\"><button type=\"submit\">{}</button></form>\n",
            payment, kinds[index], csrf, kinds[index], key, kinds[index], label,
            s_kind_name (kinds[index]), label, kinds[index], label, s_kind_name (kinds[index]));
    ml_web_page_add (exchange,
                     "<form method=\"post\" action=\"/staff/payments/{}\" class=\"inline reverse "
                     "void\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                     "<input type=\"hidden\" name=\"action\" value=\"void\">"
                     "<input type=\"hidden\" name=\"charge_key\" value=\"{}\">"
                     "<button type=\"submit\" aria-label=\"Void the {} charge\">Void the whole "
                     "charge</button></form>\n",
                     payment, csrf, key, label);
}

static void s_payment_page (ml_web_exchange_t *exchange, const char *token, json_t *session,
                            const char *uuid, const char *error, const char *notice,
                            const char *reversal_posting)
{
    json_t *reply = ml_web_staff_call (
        exchange, token, json_pack ("{s:s, s:s}", "op", "payment-show", "payment_uuid", uuid));
    if (!reply)
        return;
    if (!s_ok (reply)) {
        if (strncmp (ml_web_staff_text (reply, "error"), "no payment", 10) == 0)
            ml_web_staff_not_found (exchange);
        else
            ml_web_staff_refused (exchange, reply);
        json_decref (reply);
        return;
    }
    json_t *payment = json_object_get (reply, "payment");
    bool billing = ml_web_staff_role_allows (session, "billing");
    char when[40], money[64];
    ml_web_staff_begin (exchange, "Card payment", session);
    ml_web_page_add (exchange, "<p><a href=\"/staff/postings\">All postings</a></p>\n");
    ml_web_page_message (exchange, "error", error);
    if (notice) {
        ml_web_page_add (exchange, "<p class=\"notice\" role=\"status\">{}", notice);
        if (reversal_posting && ml_web_staff_uuid_shape (reversal_posting))
            ml_web_page_add (exchange,
                             " Its reversing posting: <a href=\"/staff/postings/{}\" "
                             "class=\"reversal-link\">{}</a>.",
                             reversal_posting, reversal_posting);
        ml_web_page_add (exchange, "</p>\n");
    }
    const char *status = ml_web_staff_text (payment, "status");
    ml_web_page_add (
        exchange,
        "<dl class=\"receipt payment\"><dt>State</dt><dd><span class=\"status "
        "state-{}\">{}</span></dd><dt>Date</dt><dd>{}</dd><dt>Payer</dt><dd>{} {}</dd>"
        "<dt>Card</dt><dd>{} ending {}</dd><dt>Taken by</dt><dd>{}</dd>"
        "<dt>Payment ID</dt><dd><code>{}</code></dd></dl>\n"
        "<h2>Charges</h2>\n",
        status, ml_web_staff_state_name (status),
        ml_web_staff_when (ml_web_staff_text (payment, "created_at"), when, sizeof when),
        ml_web_staff_text (payment, "payer_name"), ml_web_staff_text (payment, "payer_email"),
        ml_web_staff_text (payment, "brand"), ml_web_staff_text (payment, "last4"),
        ml_web_staff_text (payment, "staff"), uuid);
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        const char *type = ml_web_staff_text (charge, "account_type");
        const char *label = strcmp (type, "TRUST") == 0 ? "trust" : "operating";
        const char *charge_status = ml_web_staff_text (charge, "status");
        const char *posting = ml_web_staff_text (charge, "posting_uuid");
        ml_web_page_add (
            exchange,
            "<section class=\"charge\" data-account-type=\"{}\" aria-labelledby=\"charge-{}\">\n"
            "<h3 id=\"charge-{}\">{} charge</h3>\n<dl class=\"receipt\"><dt>Amount</dt>"
            "<dd class=\"amount\">{}</dd><dt>Deposit account</dt><dd>{}</dd><dt>State</dt>"
            "<dd>{}{}{}</dd><dt>Processor transaction</dt><dd>{}</dd>",
            label, label, label, strcmp (type, "TRUST") == 0 ? "Trust" : "Operating",
            ml_web_page_money (charge, "amount_minor", ml_web_staff_text (charge, "currency"),
                               money, sizeof money),
            ml_web_staff_text (charge, "account_number"), ml_web_staff_state_name (charge_status),
            *ml_web_staff_text (charge, "reason") ? ": " : "", ml_web_staff_text (charge, "reason"),
            *ml_web_staff_text (charge, "processor_txn")
                ? ml_web_staff_text (charge, "processor_txn")
                : "-");
        //  A posting exists once the charge is approved.
        if (strcmp (charge_status, "approved") == 0 && ml_web_staff_uuid_shape (posting))
            ml_web_page_add (exchange,
                             "<dt>Posting</dt><dd><a href=\"/staff/postings/{}\">{}</a></dd>",
                             posting, posting);
        ml_web_page_add (exchange, "</dl>\n");
        if (billing && strcmp (charge_status, "approved") == 0)
            s_actions (exchange, session, uuid, ml_web_staff_text (charge, "charge_key"), label);
        ml_web_page_add (exchange, "</section>\n");
    }
    ml_web_staff_end (exchange);
    json_decref (reply);
}

static void s_payment_post (ml_web_exchange_t *exchange, const char *token, json_t *session,
                            const char *uuid)
{
    const char *action = ml_web_form_get (exchange->form, "action");
    const char *key = ml_web_form_get (exchange->form, "charge_key");
    const char *amount = ml_web_form_get (exchange->form, "amount");
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    const char *kind = action ? s_kind_name (action) : NULL;
    //  The charge must be one of this payment's (the core checks the firm).
    if (!kind || !key || strncmp (key, uuid, 36) != 0 || key[36] != ':') {
        ml_web_page_error (exchange, 400, "That is not something this page does.");
        return;
    }
    json_t *request =
        json_pack ("{s:s, s:s, s:s}", "op", action, "charge_key", key, "csrf", csrf ? csrf : "");
    //  The amount as typed, in the charge's currency: the core reads and checks it.
    if (amount && *amount && strcmp (action, "void") != 0)
        json_object_set_new (request, "amount", json_string (amount));
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply)
        return;
    if (ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        return;
    }
    char text[600];
    if (s_ok (reply)) {
        //  After a POST, a GET (a reload must not give money back twice).
        json_t *reversal = json_object_get (reply, "reversal");
        const char *posting = ml_web_staff_text (reversal, "posting_uuid");
        const char *state = ml_web_staff_text (reversal, "status");
        char location[300];
        snprintf (location, sizeof location, "/staff/payments/%s?done=%s&result=%s%s%s", uuid,
                  action,
                  strspn (state, "abcdefghijklmnopqrstuvwxyz") == strlen (state) ? state : "",
                  ml_web_staff_uuid_shape (posting) ? "&posting=" : "",
                  ml_web_staff_uuid_shape (posting) ? posting : "");
        ml_web_page_redirect (exchange, location);
    } else {
        snprintf (text, sizeof text, "The %s was refused: %s", action,
                  ml_web_staff_text (reply, "error"));
        s_payment_page (exchange, token, session, uuid, text, NULL, NULL);
    }
    json_decref (reply);
}

void ml_web_staff_page_payment (ml_web_exchange_t *exchange)
{
    const char *uuid = exchange->path + strlen ("/staff/payments/");
    if (!ml_web_staff_uuid_shape (uuid)) {
        ml_web_staff_not_found (exchange);
        return;
    }
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (strcmp (exchange->method, "POST") == 0)
        s_payment_post (exchange, token, session, uuid);
    else {
        const char *done = ml_web_form_get (exchange->query, "done");
        const char *result = ml_web_form_get (exchange->query, "result");
        char notice[200] = "";
        if (done && s_kind_name (done))
            snprintf (notice, sizeof notice, "%s recorded; the processor's answer: %s.",
                      s_kind_name (done), ml_web_staff_state_name (result ? result : ""));
        s_payment_page (exchange, token, session, uuid, NULL, *notice ? notice : NULL,
                        ml_web_form_get (exchange->query, "posting"));
    }
    json_decref (session);
}
