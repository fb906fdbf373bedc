/*  ml_web_link: a payment link's page (/link). See docs/web.md, "Payment links".

    The link's e-mail carries PUBLIC_URL/link?token=T. GET asks the core's link-view for
    what the link pays (firm, payer, lines, total, expiry; never the A/R message) and shows
    it with a card form: the card goes to the processor's tokenization URL through
    /static/pay.js, never to matterlink. POST sends the link's token (a hidden field, so it
    does not have to stay in the URL), the card's token and the form's pay_key to the core's
    link-pay-page: a double submit pays once. No sign-in: the link's token is the credential.
    An unknown, expired, cancelled or used token gets one page that does not say which.
*/
#include "ml_web_pages.h"
#include "ml_money.h"

#include <stdio.h>
#include <string.h>

#define S_LINK_GONE_TEXT                                                                           \
    "This payment link has expired or was already used. If you still need to pay, ask the "        \
    "firm for a new link."

static const char *s_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

static void s_gone (ml_web_exchange_t *exchange)
{
    exchange->status = 410;
    ml_web_page_begin (exchange, "This payment link cannot be used", NULL);
    ml_web_page_add (exchange, "<p id=\"link-gone\">{}</p>\n", S_LINK_GONE_TEXT);
    ml_web_page_end (exchange);
}

//  The link's page: what it pays and the card form; error (or NULL) above the form.
static void s_link_page (ml_web_exchange_t *exchange, const char *token, json_t *link,
                         const char *error)
{
    ml_web_page_begin (exchange, "Pay your invoices", s_text (link, "firm_name"));
    ml_web_page_add (exchange,
                     "<p>{} asks {} to pay the following. This link can be used once, until {} "
                     "(UTC).</p>\n",
                     s_text (link, "firm_name"), s_text (link, "payer_name"),
                     s_text (link, "expires_at"));
    if (error)
        ml_web_page_add (exchange, "<p class=\"error\" role=\"alert\">{}</p>\n", error);
    ml_web_page_add (exchange,
                     "<table id=\"link-lines\">\n<thead><tr><th scope=\"col\">For</th>"
                     "<th scope=\"col\" class=\"num\">Amount</th></tr></thead>\n<tbody>\n");
    size_t index;
    json_t *line;
    json_array_foreach (json_object_get (link, "lines"), index, line)
    {
        char amount[64], what[160];
        ml_web_page_money (line, "amount_minor", s_text (line, "currency"), amount, sizeof amount);
        bool trust = strcmp (s_text (line, "kind"), "trust") == 0;
        snprintf (what, sizeof what, "%s %s", trust ? "Trust deposit, matter" : "Invoice",
                  s_text (line, "reference"));
        ml_web_page_add (exchange,
                         "<tr class=\"line\"><th scope=\"row\" data-label=\"For\">{}</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td></tr>\n",
                         what, amount);
    }
    json_array_foreach (json_object_get (link, "totals"), index, line)
    {
        char amount[64];
        ml_web_page_money (line, "amount_minor", s_text (line, "currency"), amount, sizeof amount);
        ml_web_page_add (exchange,
                         "<tr class=\"total\"><th scope=\"row\" data-label=\"For\">Total</th>"
                         "<td class=\"num\" data-label=\"Amount\" id=\"link-total\">{}</td></tr>\n",
                         amount);
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n");
    //  A new key each time the form is made: a resubmit of this form pays once.
    unsigned char random[32];
    char pay_key[64];
    randombytes_buf (random, sizeof random);
    sodium_bin2base64 (pay_key, sizeof pay_key, random, sizeof random,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    ml_web_page_add (exchange,
                     "<form class=\"stack pay\" method=\"post\" action=\"/link\" id=\"pay-form\" "
                     "data-tokenize-url=\"{}\">\n"
                     "<input type=\"hidden\" name=\"link\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"pay_key\" value=\"{}\">\n"
                     "<fieldset><legend>Card</legend>\n",
                     exchange->tokenize_url, token, pay_key);
    ml_web_pay_new_card (exchange, true, false, false);
    ml_web_page_add (exchange, "</fieldset>\n<button type=\"submit\">Pay</button>\n</form>\n"
                               "<script src=\"/static/pay.js\"></script>\n");
    ml_web_page_end (exchange);
}

//  The confirmation: each charge apart (operating and trust), the card, the receipt number.
static void s_confirmation (ml_web_exchange_t *exchange, const char *firm, json_t *reply)
{
    json_t *payment = json_object_get (reply, "payment");
    const char *status = s_text (payment, "status");
    bool approved = strcmp (status, "approved") == 0;
    ml_web_page_begin (
        exchange, approved ? "Thank you: your payment is made" : "Your payment is being processed",
        firm);
    if (json_is_true (json_object_get (reply, "repeated")))
        ml_web_page_add (exchange, "<p class=\"hint\">This form was already sent: it was paid "
                                   "once, as shown here.</p>\n");
    ml_web_page_add (exchange, "<p>Receipt number <strong id=\"receipt\">{}</strong>{}{}{}.</p>\n",
                     s_text (payment, "payment_uuid"),
                     *s_text (payment, "last4") ? ", paid with " : "", s_text (payment, "brand"),
                     *s_text (payment, "last4") ? " card" : "");
    ml_web_page_add (exchange,
                     "<table>\n<thead><tr><th scope=\"col\">Paid into</th>"
                     "<th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Status</th>"
                     "<th scope=\"col\">Posting</th></tr></thead>\n<tbody>\n");
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        char amount[64], state[128];
        ml_web_page_money (charge, "amount_minor", s_text (charge, "currency"), amount,
                           sizeof amount);
        const char *reason = s_text (charge, "reason");
        snprintf (state, sizeof state, "%s%s%s%s", s_text (charge, "status"), *reason ? " (" : "",
                  reason, *reason ? ")" : "");
        ml_web_page_add (exchange,
                         "<tr class=\"charge\"><th scope=\"row\" data-label=\"Paid into\">{}</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td>"
                         "<td data-label=\"Status\">{}</td>"
                         "<td data-label=\"Posting\" class=\"posting\">{}</td></tr>\n",
                         strcmp (s_text (charge, "account_type"), "TRUST") == 0 ? "Trust deposit"
                                                                                : "Invoices",
                         amount, state, s_text (charge, "posting_uuid"));
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n<p>A receipt is on its way by e-mail.</p>\n");
    ml_web_page_end (exchange);
}

//  link-view for token: the link (new reference), or NULL after the page was written (the
//  generic page for a link that cannot be paid, or the core's refusal).
static json_t *s_view (ml_web_exchange_t *exchange, const char *token)
{
    json_t *reply =
        ml_web_page_call (exchange, json_pack ("{s:s, s:s}", "op", "link-view", "token", token));
    if (!reply)
        return NULL;
    json_t *link = json_incref (json_object_get (reply, "link"));
    if (!json_is_true (json_object_get (reply, "ok")) || !link) {
        if (json_is_true (json_object_get (reply, "gone")) ||
            !json_is_string (json_object_get (reply, "error")))
            s_gone (exchange);
        else {
            //  The amounts are no longer due: the core's words, which name no secret.
            exchange->status = 409;
            ml_web_page_begin (exchange, "This payment link cannot be used", NULL);
            ml_web_page_add (exchange, "<p>{}.</p>\n", s_text (reply, "error"));
            ml_web_page_end (exchange);
        }
        json_decref (link);
        link = NULL;
    }
    json_decref (reply);
    return link;
}

void ml_web_page_link (ml_web_exchange_t *exchange)
{
    bool posted = strcmp (exchange->method, "POST") == 0;
    const char *token =
        ml_web_form_get (posted ? exchange->form : exchange->query, posted ? "link" : "token");
    if (!token || !*token || strlen (token) > 64) {
        s_gone (exchange);
        return;
    }
    if (!posted) {
        json_t *link = s_view (exchange, token);
        if (link)
            s_link_page (exchange, token, link, NULL);
        json_decref (link);
        return;
    }
    //  The firm's name for the pages that follow; a link already paid (a form sent twice)
    //  has none to show, and its payment is still shown below.
    json_t *view =
        ml_web_page_call (exchange, json_pack ("{s:s, s:s}", "op", "link-view", "token", token));
    if (!view)
        return;
    json_t *link = json_object_get (view, "link");
    const char *card = ml_web_form_get (exchange->form, "token");
    const char *pay_key = ml_web_form_get (exchange->form, "pay_key");
    if (link && (!card || !*card)) {
        exchange->status = 400;
        s_link_page (exchange, token, link,
                     "A card needs JavaScript in your browser (the card goes straight to the "
                     "card processor). Please turn JavaScript on and try again.");
        json_decref (view);
        return;
    }
    json_t *reply = ml_web_page_call (
        exchange, json_pack ("{s:s, s:s, s:s, s:s}", "op", "link-pay-page", "token", token,
                             "card_token", card ? card : "", "pay_key", pay_key ? pay_key : ""));
    if (!reply) {
        json_decref (view);
        return;
    }
    const char *status = s_text (json_object_get (reply, "payment"), "status");
    const char *firm = link ? s_text (link, "firm_name") : NULL;
    if (json_is_true (json_object_get (reply, "ok")) &&
        (strcmp (status, "declined") == 0 || strcmp (status, "error") == 0)) {
        //  Nothing was charged: the form again (a new key), with the processor's reason.
        const char *reason = s_text (
            json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0),
            "reason");
        char error[300];
        snprintf (error, sizeof error, "The card was declined%s%s%s; nothing was charged.",
                  *reason ? " (" : "", reason, *reason ? ")" : "");
        exchange->status = 402;
        if (link)
            s_link_page (exchange, token, link, error);
        else
            s_gone (exchange);
    } else if (json_is_true (json_object_get (reply, "ok")))
        s_confirmation (exchange, firm, reply);
    else if (json_is_true (json_object_get (reply, "gone")) || !link)
        s_gone (exchange);
    else {
        const char *why = s_text (reply, "error");
        char shown[400];
        snprintf (shown, sizeof shown, "%s%s", *why ? why : "the payment failed", ".");
        if (*shown >= 'a' && *shown <= 'z')
            *shown = (char)(*shown - 'a' + 'A');
        exchange->status = 400;
        s_link_page (exchange, token, link, shown);
    }
    json_decref (reply);
    json_decref (view);
}
