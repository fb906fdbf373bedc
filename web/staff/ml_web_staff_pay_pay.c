/*  ml_web_staff_pay_pay: step 4 of "Make a Payment" (docs/web.md), /staff/pay/pay.

    Who pays: a saved payer (found by name or e-mail, "Choose a different payer") with one
    of their saved methods or a new card, or a new payer (name and e-mail, "Save payer" to
    keep them) with a new card. A new card goes through the processor's hosted fields
    (/static/pay.js): its inputs have no name, the browser gets a token from the processor,
    and only the token reaches matterlink; the core asks the processor what card it names
    (payment's card_token). The receipt goes to the Receipts address; the custom A/R
    message goes to the matter system with the postings and is never shown to the payer.
    "Send for Payment" sends the payer the link e-mail instead (link-create, 24 hours).
    Both pay the staff user's selection as allocated in step 3; the core empties it once
    money moved or the link was made. The pay form carries a key drawn when it was made
    (pay_key): the same form sent twice, even at once, names one payment and pays once.
    The result page shows each charge, operating and trust apart, with its posting.
*/
#include "ml_web_staff_pay_internal.h"
#include "ml_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *s_ok_or_answer (ml_wsp_t *self, json_t *reply)
{
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        ml_wsp_refused (self, reply);
        json_decref (reply);
        return NULL;
    }
    return reply;
}

//  A payer_id typed in a query or form: digits only, else 0.
static long long s_payer_id (const char *text)
{
    if (!*text || strlen (text) > 15 || strspn (text, "0123456789") != strlen (text))
        return 0;
    return strtoll (text, NULL, 10);
}

//  What will be paid: the selection's lines with their amounts, and a total per account.
static void s_summary (ml_wsp_t *self, json_t *items)
{
    ml_web_exchange_t *exchange = self->exchange;
    ml_web_page_add (exchange, "<h2>What is paid</h2>\n<table id=\"summary\"><caption "
                               "class=\"visually-hidden\">Lines to pay</caption><thead><tr>"
                               "<th scope=\"col\">Line</th><th scope=\"col\">Client</th>"
                               "<th scope=\"col\">Paid into</th>"
                               "<th scope=\"col\" class=\"num\">Amount</th></tr></thead><tbody>\n");
    int64_t operating = 0, trust_total = 0;
    const char *currency = "USD";
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        bool trust = strcmp (ml_wsp_text (item, "kind"), "trust") == 0;
        json_t *amount = json_object_get (item, "amount_minor");
        int64_t minor = json_is_integer (amount)
                            ? json_integer_value (amount)
                            : json_integer_value (json_object_get (item, "available_minor"));
        if (*ml_wsp_text (item, "currency"))
            currency = ml_wsp_text (item, "currency");
        const char *problem = NULL;
        ml_money_add (trust ? &trust_total : &operating, minor, &problem);
        char shown[64], line[140];
        ml_money_format (minor, ml_wsp_text (item, "currency"), shown, sizeof shown);
        snprintf (line, sizeof line, "%s %s", trust ? "Trust deposit, matter" : "Invoice",
                  ml_wsp_text (item, "number"));
        ml_web_page_add (exchange,
                         "<tr><th scope=\"row\" data-label=\"Line\">{}</th>"
                         "<td data-label=\"Client\">{}</td><td data-label=\"Paid into\">{}</td>"
                         "<td class=\"num\" data-label=\"Amount\">{}{}</td></tr>\n",
                         line, ml_wsp_text (item, "client_number"),
                         trust ? "Trust account" : "Operating account", shown,
                         json_is_integer (amount) || trust ? "" : " (in full)");
    }
    char operating_text[64], trust_text[64];
    ml_money_format (operating, currency, operating_text, sizeof operating_text);
    ml_money_format (trust_total, currency, trust_text, sizeof trust_text);
    ml_web_page_add (exchange,
                     "</tbody></table>\n<p id=\"summary-totals\">Operating: <strong>{}</strong>. "
                     "Trust: <strong>{}</strong>. <a href=\"/staff/pay/allocate\">Change the "
                     "amounts</a></p>\n",
                     operating_text, trust_text);
}

static void s_form (ml_wsp_t *self, json_t *items, json_t *payer, const char *error)
{
    ml_web_exchange_t *exchange = self->exchange;
    bool posted = strcmp (exchange->method, "POST") == 0;
    ml_wsp_begin (self, "Make a Payment: pay", 4);
    if (error)
        ml_web_page_message (exchange, "error", error);
    if (json_array_size (items) == 0) {
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing is selected. <a "
                                   "href=\"/staff/pay/search\">Search and select</a> what to "
                                   "pay first.</p>\n");
        ml_wsp_end (self);
        return;
    }
    s_summary (self, items);
    //  Choose a different payer: a GET form, then a link per payer found.
    const char *wanted = ml_wsp_query (exchange, "payer_text");
    ml_web_page_add (exchange,
                     "<h2>Payer</h2>\n<form method=\"get\" action=\"/staff/pay/pay\" "
                     "class=\"stack\" id=\"payer-find\">\n<label for=\"payer_text\">Choose a "
                     "different payer: name or e-mail</label>\n<input type=\"text\" "
                     "id=\"payer_text\" name=\"payer_text\" maxlength=\"200\" value=\"{}\">\n"
                     "<button type=\"submit\">Find saved payers</button>\n</form>\n",
                     wanted);
    if (*wanted) {
        json_t *found =
            ml_wsp_call (self, "payer-list", json_pack ("{s:s, s:i}", "text", wanted, "limit", 20));
        json_t *payers = json_object_get (found, "payers");
        if (json_array_size (payers) == 0)
            ml_web_page_add (exchange, "<p class=\"empty\">No saved payer matches.</p>\n");
        else
            ml_web_page_add (exchange, "<ul id=\"payers-found\">\n");
        size_t index;
        json_t *one;
        json_array_foreach (payers, index, one)
        {
            char id[32];
            snprintf (id, sizeof id, "%lld",
                      (long long)json_integer_value (json_object_get (one, "payer_id")));
            ml_web_page_add (exchange,
                             "<li><a href=\"/staff/pay/pay?payer_id={}\">{} &lt;{}&gt;</a></li>\n",
                             id, ml_wsp_text (one, "name"), ml_wsp_text (one, "email"));
        }
        if (json_array_size (payers) > 0)
            ml_web_page_add (exchange, "</ul>\n");
        json_decref (found);
    }
    char key[64];
    ml_wsp_form_key (key, sizeof key);
    ml_web_page_add (exchange,
                     "<form class=\"stack pay\" method=\"post\" action=\"/staff/pay/pay\" "
                     "id=\"pay-form\" data-tokenize-url=\"{}\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"pay_key\" value=\"{}\">\n",
                     exchange->tokenize_url, ml_wsp_csrf (self), key);
    const char *method = posted ? ml_wsp_field (exchange, "method") : "";
    bool any = false;
    if (payer) {
        char id[32];
        snprintf (id, sizeof id, "%lld",
                  (long long)json_integer_value (json_object_get (payer, "payer_id")));
        ml_web_page_add (exchange,
                         "<input type=\"hidden\" name=\"payer_id\" value=\"{}\">\n"
                         "<p id=\"payer-chosen\">Paid by <strong>{}</strong> ({}). <a "
                         "href=\"/staff/pay/pay\">A new payer instead</a></p>\n"
                         "<fieldset><legend>Payment method</legend>\n",
                         id, ml_wsp_text (payer, "name"), ml_wsp_text (payer, "email"));
        size_t index;
        json_t *saved;
        json_array_foreach (json_object_get (payer, "methods"), index, saved)
        {
            char method_id[32], label[48], expiry[16];
            snprintf (method_id, sizeof method_id, "%lld",
                      (long long)json_integer_value (json_object_get (saved, "method_id")));
            snprintf (label, sizeof label, "method-%s", method_id);
            snprintf (expiry, sizeof expiry, "%02lld/%lld",
                      (long long)json_integer_value (json_object_get (saved, "exp_month")),
                      (long long)json_integer_value (json_object_get (saved, "exp_year")));
            bool checked = posted ? strcmp (method, method_id) == 0 : !any;
            ml_web_page_add (exchange,
                             "<p><input type=\"radio\" name=\"method\" id=\"{}\" value=\"{}\"{}>"
                             "<label for=\"{}\">{} ending in {}, expires {}</label></p>\n",
                             label, method_id, checked ? " checked" : "", label,
                             ml_wsp_text (saved, "brand"), ml_wsp_text (saved, "last4"), expiry);
            any = true;
        }
    } else
        ml_web_page_add (
            exchange,
            "<fieldset><legend>A new payer</legend>\n"
            "<label for=\"payer_name\">Name</label>\n"
            "<input type=\"text\" id=\"payer_name\" name=\"payer_name\" maxlength=\"200\" "
            "autocomplete=\"name\" value=\"{}\">\n"
            "<label for=\"payer_email\">E-mail</label>\n"
            "<input type=\"email\" id=\"payer_email\" name=\"payer_email\" maxlength=\"254\" "
            "value=\"{}\">\n"
            "<p><input type=\"checkbox\" id=\"save_payer\" name=\"save_payer\" value=\"1\"{}>"
            "<label for=\"save_payer\">Save payer (for next time, with the card if it is "
            "saved)</label></p>\n</fieldset>\n"
            "<fieldset><legend>Payment method</legend>\n",
            ml_wsp_field (exchange, "payer_name"), ml_wsp_field (exchange, "payer_email"),
            *ml_wsp_field (exchange, "save_payer") ? " checked" : "");
    bool new_checked = posted ? strcmp (method, "new") == 0 || !*method : !any;
    ml_web_pay_new_card (exchange, new_checked, true, *ml_wsp_field (exchange, "save_method"));
    const char *receipt = posted  ? ml_wsp_field (exchange, "receipt_email")
                          : payer ? ml_wsp_text (payer, "email")
                                  : "";
    ml_web_page_add (
        exchange,
        "</fieldset>\n<label for=\"receipt_email\">Receipts: e-mail the receipt to</label>\n"
        "<input type=\"email\" id=\"receipt_email\" name=\"receipt_email\" maxlength=\"254\" "
        "value=\"{}\">\n"
        "<label for=\"ar_message\">Custom A/R message (goes to the matter system with the "
        "posting; never shown to the payer)</label>\n"
        "<textarea id=\"ar_message\" name=\"ar_message\" maxlength=\"1000\" rows=\"3\">{}"
        "</textarea>\n"
        "<button type=\"submit\" id=\"pay-now\">Pay</button>\n"
        "<p class=\"hint\">Or send the payer a secure link to pay privately within 24 hours, "
        "without sharing card details with the firm:</p>\n"
        "<button type=\"submit\" name=\"action\" value=\"send\" data-no-card=\"1\" "
        "id=\"send-link\">Send for Payment</button>\n</form>\n"
        "<script src=\"/static/pay.js\"></script>\n",
        receipt, ml_wsp_field (exchange, "ar_message"));
    ml_wsp_end (self);
}

//  The payer chosen by id (payer-show's payer), NULL for none; *answered after it answered.
static json_t *s_payer (ml_wsp_t *self, long long payer_id, bool *answered)
{
    *answered = false;
    if (payer_id <= 0)
        return NULL;
    json_t *reply =
        ml_wsp_call (self, "payer-show", json_pack ("{s:I}", "payer_id", (json_int_t)payer_id));
    if (!reply || !json_is_true (json_object_get (reply, "ok"))) {
        if (reply)
            ml_wsp_refused (self, reply);
        json_decref (reply);
        *answered = true;
        return NULL;
    }
    json_t *payer = json_incref (json_object_get (reply, "payer"));
    json_decref (reply);
    return payer;
}

//  The result of a payment: each charge with its posting, operating and trust apart.
//  not_saved: why the card the staff asked to save was not (the payment went on), or "".
static void s_result (ml_wsp_t *self, json_t *payment, const char *not_saved)
{
    ml_web_exchange_t *exchange = self->exchange;
    const char *status = ml_wsp_text (payment, "status");
    ml_wsp_begin (self, "Payment made", 0);
    ml_web_page_add (exchange,
                     "<dl class=\"receipt\" id=\"payment\"><dt>Payment</dt><dd>{}</dd>"
                     "<dt>Status</dt><dd class=\"status\" id=\"payment-status\">{}</dd>"
                     "<dt>Payer</dt><dd>{} ({})</dd><dt>Card</dt><dd>{} ending in {}</dd>"
                     "<dt>Receipt to</dt><dd>{}</dd></dl>\n"
                     "<table id=\"charges\"><caption class=\"visually-hidden\">Charges and their "
                     "postings</caption><thead><tr><th scope=\"col\">Charge</th>"
                     "<th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Status</th>"
                     "<th scope=\"col\">Posting</th></tr></thead><tbody>\n",
                     ml_wsp_text (payment, "payment_uuid"), status,
                     ml_wsp_text (payment, "payer_name"), ml_wsp_text (payment, "payer_email"),
                     ml_wsp_text (payment, "brand"), ml_wsp_text (payment, "last4"),
                     ml_wsp_text (payment, "receipt_email"));
    if (*not_saved)
        ml_web_page_add (exchange,
                         "<p class=\"notice\" id=\"method-not-saved\" role=\"status\">The card "
                         "was charged but not saved for the payer: {}.</p>\n",
                         not_saved);
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        bool trust = strcmp (ml_wsp_text (charge, "account_type"), "TRUST") == 0;
        char amount[64], state[160], what[160];
        ml_web_page_money (charge, "amount_minor", ml_wsp_text (charge, "currency"), amount,
                           sizeof amount);
        const char *reason = ml_wsp_text (charge, "reason");
        snprintf (state, sizeof state, "%s%s%s%s", ml_wsp_text (charge, "status"),
                  *reason ? " (" : "", reason, *reason ? ")" : "");
        snprintf (what, sizeof what, "%s, account %s", trust ? "Trust deposit" : "Operating",
                  ml_wsp_text (charge, "account_number"));
        //  The posting as it stands now (pending, delivered, posted...), with its lines.
        const char *uuid = ml_wsp_text (charge, "posting_uuid");
        json_t *posting = NULL;
        if (strcmp (ml_wsp_text (charge, "status"), "approved") == 0 && *uuid) {
            json_t *reply =
                ml_wsp_call (self, "posting", json_pack ("{s:s}", "posting_uuid", uuid));
            if (!reply)
                return;
            posting = json_incref (json_object_get (reply, "posting"));
            json_decref (reply);
        }
        ml_web_page_add (exchange,
                         "<tr class=\"charge {}\"><th scope=\"row\" data-label=\"Charge\">{}"
                         "<span class=\"small\">{}</span></th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td>"
                         "<td data-label=\"Status\">{}</td><td data-label=\"Posting\">",
                         trust ? "trust" : "operating", what, ml_wsp_text (charge, "processor_txn"),
                         amount, state);
        if (posting) {
            ml_web_page_add (exchange,
                             "<span class=\"posting\">{}</span> <span class=\"badge "
                             "posting-status\">{}</span><ul class=\"small\">",
                             uuid, ml_wsp_text (posting, "status"));
            size_t at;
            json_t *line;
            json_array_foreach (json_object_get (posting, "lines"), at, line)
            {
                char part[64];
                ml_web_page_money (line, "amount_minor", ml_wsp_text (posting, "currency"), part,
                                   sizeof part);
                ml_web_page_add (exchange, "<li>{} {}: {}</li>",
                                 strcmp (ml_wsp_text (line, "kind"), "T") == 0 ? "Trust, matter"
                                                                               : "Invoice",
                                 ml_wsp_text (line, "reference"), part);
            }
            ml_web_page_add (exchange, "</ul>");
        } else
            ml_web_page_add (exchange, "No posting: no money moved.");
        ml_web_page_add (exchange, "</td></tr>\n");
        json_decref (posting);
    }
    ml_web_page_add (exchange,
                     "</tbody></table>\n<p>The receipt is e-mailed to {}. The postings go to the "
                     "matter system; <a href=\"/staff/pay\">make another payment</a>.</p>\n",
                     ml_wsp_text (payment, "receipt_email"));
    ml_wsp_end (self);
}

static void s_link_sent (ml_wsp_t *self, json_t *link)
{
    ml_wsp_begin (self, "Payment link sent", 0);
    ml_web_page_add (self->exchange,
                     "<p class=\"notice\" id=\"link-sent\">The payment link was e-mailed to {}. "
                     "It can be paid once, within 24 hours (until {}).</p>\n"
                     "<dl class=\"receipt\"><dt>Link</dt><dd>{}</dd><dt>Payer</dt><dd>{}</dd>"
                     "<dt>State</dt><dd>{}</dd></dl>\n"
                     "<p><a href=\"/staff/pay\">Make another payment</a></p>\n",
                     ml_wsp_text (link, "receipt_email"), ml_wsp_text (link, "expires_at"),
                     ml_wsp_text (link, "link_id"), ml_wsp_text (link, "payer_name"),
                     ml_wsp_text (link, "state"));
    ml_wsp_end (self);
}

//  The payment's or the link's request from the form; NULL with why.
static json_t *s_request (ml_wsp_t *self, bool send, char *why, size_t size)
{
    ml_web_exchange_t *exchange = self->exchange;
    json_t *request =
        json_pack ("{s:b, s:s}", "selection", 1, "csrf", ml_wsp_field (exchange, "csrf"));
    long long payer_id = s_payer_id (ml_wsp_field (exchange, "payer_id"));
    const char *receipt = ml_wsp_field (exchange, "receipt_email");
    const char *message = ml_wsp_field (exchange, "ar_message");
    if (payer_id > 0)
        json_object_set_new (request, "payer_id", json_integer (payer_id));
    else {
        const char *name = ml_wsp_field (exchange, "payer_name");
        const char *email = ml_wsp_field (exchange, "payer_email");
        if (!*name || !*email) {
            snprintf (why, size, "Give the new payer's name and e-mail, or choose a saved payer.");
            json_decref (request);
            return NULL;
        }
        json_object_set_new (request, "payer_name", json_string (name));
        json_object_set_new (request, "payer_email", json_string (email));
        if (*ml_wsp_field (exchange, "save_payer") && !send)
            json_object_set_new (request, "save_payer", json_true ());
    }
    if (*receipt)
        json_object_set_new (request, "receipt_email", json_string (receipt));
    if (*message)
        json_object_set_new (request, "ar_message", json_string (message));
    if (send)
        return request;
    //  The form's own key (drawn when it was made): sent twice, it pays once.
    json_object_set_new (request, "pay_key", json_string (ml_wsp_field (exchange, "pay_key")));
    const char *method = ml_wsp_field (exchange, "method");
    if (strcmp (method, "new") != 0 && s_payer_id (method) > 0)
        json_object_set_new (request, "method_id", json_integer (s_payer_id (method)));
    else if (*ml_wsp_field (exchange, "token")) {
        json_object_set_new (request, "card_token", json_string (ml_wsp_field (exchange, "token")));
        if (*ml_wsp_field (exchange, "save_method"))
            json_object_set_new (request, "save_method", json_true ());
    } else {
        snprintf (why, size,
                  "Enter the card (the page needs JavaScript for a new card) or choose a saved "
                  "one.");
        json_decref (request);
        return NULL;
    }
    return request;
}

//  A new payer to keep before a link is sent ("Save payer"): their payer_id, 0 when not
//  asked, -1 with why when refused.
static long long s_save_payer (ml_wsp_t *self, char *why, size_t size)
{
    ml_web_exchange_t *exchange = self->exchange;
    if (!*ml_wsp_field (exchange, "save_payer") ||
        s_payer_id (ml_wsp_field (exchange, "payer_id")) > 0)
        return 0;
    json_t *reply =
        ml_wsp_call (self, "payer-add",
                     json_pack ("{s:s, s:s, s:s}", "name", ml_wsp_field (exchange, "payer_name"),
                                "email", ml_wsp_field (exchange, "payer_email"), "csrf",
                                ml_wsp_field (exchange, "csrf")));
    long long payer_id =
        json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
    if (!reply || !json_is_true (json_object_get (reply, "ok")) || payer_id <= 0) {
        ml_wsp_sentence (reply ? ml_wsp_text (reply, "error") : "the payer could not be saved", why,
                         size);
        json_decref (reply);
        return -1;
    }
    json_decref (reply);
    return payer_id;
}

void ml_wsp_pay (ml_wsp_t *self)
{
    ml_web_exchange_t *exchange = self->exchange;
    bool post = strcmp (exchange->method, "POST") == 0;
    bool answered = false;
    json_t *payer = s_payer (self,
                             s_payer_id (post ? ml_wsp_field (exchange, "payer_id")
                                              : ml_wsp_query (exchange, "payer_id")),
                             &answered);
    if (answered)
        return;
    json_t *selection = s_ok_or_answer (self, ml_wsp_call (self, "selection", NULL));
    if (!selection) {
        json_decref (payer);
        return;
    }
    json_t *items = json_object_get (selection, "items");
    if (!post) {
        s_form (self, items, payer, NULL);
        json_decref (selection);
        json_decref (payer);
        return;
    }
    bool send = strcmp (ml_wsp_field (exchange, "action"), "send") == 0;
    char why[600] = "";
    json_t *request = s_request (self, send, why, sizeof why);
    if (request && send) {
        long long saved = s_save_payer (self, why, sizeof why);
        if (saved < 0) {
            json_decref (request);
            request = NULL;
        } else if (saved > 0) {
            json_object_del (request, "payer_name");
            json_object_del (request, "payer_email");
            json_object_set_new (request, "payer_id", json_integer (saved));
        }
    }
    json_t *reply = request ? ml_wsp_call (self, send ? "link-create" : "payment", request) : NULL;
    if (request && !reply) {
        if (!send)
            //  The core did not answer in time: the payment may still be made.
            ml_web_page_error (exchange, 503,
                               "The payment could not be confirmed in time. It may still go "
                               "through: look at the postings and the selection before you "
                               "pay again.");
    } else if (reply && ml_web_staff_answered (exchange, reply))
        ; //  an ended session, an expired form, "not found": answered
    else if (reply && json_is_true (json_object_get (reply, "ok")) && send)
        s_link_sent (self, json_object_get (reply, "link"));
    else if (reply && json_is_true (json_object_get (reply, "ok"))) {
        //  A payment that waited for the processor is answered on the api socket in the
        //  payer's shape (no payer, accounts or transactions): staff read it whole.
        json_t *shown = ml_wsp_call (
            self, "payment-show",
            json_pack ("{s:s}", "payment_uuid",
                       ml_wsp_text (json_object_get (reply, "payment"), "payment_uuid")));
        if (!shown)
            exchange->status = 200; //  the payment was made: show what the reply says
        json_t *payment = json_is_true (json_object_get (shown, "ok"))
                              ? json_object_get (shown, "payment")
                              : json_object_get (reply, "payment");
        const char *status = ml_wsp_text (payment, "status");
        if (strcmp (status, "declined") == 0 || strcmp (status, "error") == 0) {
            //  Nothing was charged: the form again with the processor's reason.
            const char *reason =
                ml_wsp_text (json_array_get (json_object_get (payment, "charges"), 0), "reason");
            snprintf (why, sizeof why, "The card was declined%s%s%s; nothing was charged.",
                      *reason ? " (" : "", reason, *reason ? ")" : "");
            //  A new payer was saved before the card was tried ("Save payer"): the form
            //  again is theirs, so another card does not save them twice.
            long long saved = json_integer_value (json_object_get (payment, "payer_id"));
            if (!payer && saved > 0)
                payer = s_payer (self, saved, &answered);
            if (!answered) {
                exchange->status = 402;
                s_form (self, items, payer, why);
            }
        } else
            s_result (self, payment, ml_wsp_text (reply, "method_not_saved"));
        json_decref (shown);
    } else {
        if (reply)
            ml_wsp_sentence (ml_wsp_text (reply, "error"), why, sizeof why);
        exchange->status = json_object_get (reply, "csrf") ? 403 : 400;
        s_form (self, items, payer, why);
    }
    json_decref (reply);
    json_decref (selection);
    json_decref (payer);
}
