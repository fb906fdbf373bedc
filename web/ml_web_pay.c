/*  ml_web_pay: the pay page (/pay) and its confirmation. See docs/web.md, "Paying".

    GET shows the invoices chosen on /invoices (pick_N fields) with an amount each (their
    full available balance), or one total applied oldest first; a trust deposit where the
    firm takes them; a saved card or a new one. A new card is never sent to matterlink: the
    card inputs have no name, and /static/pay.js posts them to the processor's tokenization
    URL (web/tokenize_url) and puts only the token in the form. POST relays the form to the
    core's portal-pay with the session's CSRF token and the form's pay_key (drawn when the
    page was made), so a double submit pays once; an error shows the form again with the
    values kept.
*/
#include "ml_web_pages.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_table.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CHOSEN 16 //  invoices on one pay form (a form holds at most 32 fields)

static const char *s_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

//  The invoice called invoice of the pay form (an object by column name), or NULL when the
//  payer may not pay it. The form's rows are arrays (item_columns): they are made objects
//  once, the first time one is asked for (a page that shows no invoice never needs them).
static json_t *s_item (json_t *form, const char *invoice)
{
    json_t *objects = json_object_get (form, "item_objects");
    if (!objects) {
        objects = ml_table_objects (json_object_get (form, "item_columns"),
                                    json_object_get (form, "items"));
        json_object_set_new (form, "item_objects", objects);
    }
    size_t index;
    json_t *item;
    json_array_foreach (objects, index, item)
    {
        if (strcmp (s_text (item, "invoice_number"), invoice) == 0)
            return item;
    }
    return NULL;
}

//  The origin (scheme://host[:port]) of url, for connect-src. "" when url is not http(s).
static void s_origin (const char *url, char *origin, size_t size)
{
    *origin = 0;
    const char *rest = strncmp (url, "https://", 8) == 0  ? url + 8
                       : strncmp (url, "http://", 7) == 0 ? url + 7
                                                          : NULL;
    if (!rest)
        return;
    //  host[:port] only: letters, digits, '.', '-', ':' and IPv6 brackets, so nothing the
    //  operator wrote can add a directive to the header.
    size_t host =
        strspn (rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]");
    size_t length = (size_t)(rest - url) + host;
    if (host == 0 || length >= size || (rest[host] && !strchr ("/?#", rest[host])))
        return;
    memcpy (origin, url, length);
    origin[length] = 0;
}

//  The invoices chosen: a space-separated list (the POST's "invoices"), or the GET's pick_N
//  fields. Only invoices the core lists for this payer are kept.
static size_t s_chosen (ml_web_exchange_t *exchange, json_t *form, const char **chosen)
{
    size_t count = 0;
    const char *list = ml_web_form_get (exchange->form, "invoices");
    if (list) {
        static __thread char copy[4096];
        snprintf (copy, sizeof copy, "%s", list);
        char *save = NULL;
        for (char *word = strtok_r (copy, " ", &save); word && count < S_MAX_CHOSEN;
             word = strtok_r (NULL, " ", &save))
            if (s_item (form, word))
                chosen[count++] = word;
        return count;
    }
    for (size_t index = 0; index < 32 && count < S_MAX_CHOSEN; index++) {
        char name[32];
        snprintf (name, sizeof name, "pick_%zu", index);
        const char *invoice = ml_web_form_get (exchange->query, name);
        if (invoice && s_item (form, invoice))
            chosen[count++] = invoice;
    }
    return count;
}

static const char *s_field (ml_web_exchange_t *exchange, const char *name)
{
    const char *value = ml_web_form_get (exchange->form, name);
    return value ? value : "";
}

//  The new card's choice and its hosted fields (for /pay and /link, in a form with id
//  "pay-form" and data-tokenize-url): inputs without names, and the hidden fields pay.js
//  fills with the processor's token. Lets the page's script reach the tokenization URL.
void ml_web_pay_new_card (ml_web_exchange_t *exchange, bool checked, bool save_offer,
                          bool save_checked)
{
    s_origin (exchange->tokenize_url, exchange->connect_origin, sizeof exchange->connect_origin);
    ml_web_page_add (
        exchange,
        "<p><input type=\"radio\" name=\"method\" id=\"method-new\" value=\"new\"{}>"
        "<label for=\"method-new\">A new card</label></p>\n"
        "<div id=\"new-card\" class=\"stack\">\n"
        "<p class=\"hint\" id=\"card-js-note\">A new card needs JavaScript in your browser: the "
        "card goes straight to the card processor, never to us.{}</p>\n"
        "<label for=\"card-number\">Card number</label>\n"
        "<input type=\"text\" id=\"card-number\" inputmode=\"numeric\" "
        "autocomplete=\"cc-number\">\n"
        "<label for=\"card-exp-month\">Expiry month (MM)</label>\n"
        "<input type=\"text\" id=\"card-exp-month\" inputmode=\"numeric\" "
        "autocomplete=\"cc-exp-month\">\n"
        "<label for=\"card-exp-year\">Expiry year (YYYY)</label>\n"
        "<input type=\"text\" id=\"card-exp-year\" inputmode=\"numeric\" "
        "autocomplete=\"cc-exp-year\">\n"
        "<label for=\"card-cvc\">Security code</label>\n"
        "<input type=\"text\" id=\"card-cvc\" inputmode=\"numeric\" autocomplete=\"cc-csc\">\n",
        checked ? " checked" : "", save_offer ? " Saved cards work without it." : "");
    if (save_offer)
        ml_web_page_add (exchange,
                         "<p><input type=\"checkbox\" id=\"save_method\" name=\"save_method\" "
                         "value=\"1\"{}><label for=\"save_method\">Save this card for next "
                         "time</label></p>\n",
                         save_checked ? " checked" : "");
    ml_web_page_add (exchange, "<p class=\"error\" id=\"card-error\" role=\"alert\" hidden></p>\n"
                               "<input type=\"hidden\" name=\"token\" value=\"\">\n"
                               "<input type=\"hidden\" name=\"card_brand\" value=\"\">\n"
                               "<input type=\"hidden\" name=\"card_last4\" value=\"\">\n"
                               "<input type=\"hidden\" name=\"card_exp_month\" value=\"\">\n"
                               "<input type=\"hidden\" name=\"card_exp_year\" value=\"\">\n"
                               "</div>\n");
}

//  The pay form; error (or NULL) above it, the POST's values kept when posted.
static void s_pay_form (ml_web_exchange_t *exchange, json_t *session, json_t *form,
                        const char **chosen, size_t count, const char *error)
{
    bool posted = strcmp (exchange->method, "POST") == 0;
    const char *firm = s_text (form, "firm_name");
    ml_web_page_begin (exchange, "Pay", firm);
    ml_web_page_signed_in_bar (exchange, session);
    if (error)
        ml_web_page_add (exchange, "<p class=\"error\" role=\"alert\">{}</p>\n", error);
    //  A new key each time the form is made: a resubmit of this form pays once.
    unsigned char random[32];
    char pay_key[64];
    randombytes_buf (random, sizeof random);
    sodium_bin2base64 (pay_key, sizeof pay_key, random, sizeof random,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char list[4096] = "";
    for (size_t index = 0; index < count; index++)
        if (strlen (list) + strlen (chosen[index]) + 2 < sizeof list)
            strcat (strcat (list, *list ? " " : ""), chosen[index]);
    ml_web_page_add (exchange,
                     "<form class=\"stack pay\" method=\"post\" action=\"/pay\" id=\"pay-form\" "
                     "data-tokenize-url=\"{}\">\n"
                     "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"pay_key\" value=\"{}\">\n"
                     "<input type=\"hidden\" name=\"invoices\" value=\"{}\">\n",
                     exchange->tokenize_url, s_text (session, "csrf"), pay_key, list);
    const char *mode = posted ? s_field (exchange, "mode") : "each";
    bool total_mode = strcmp (mode, "total") == 0;
    if (count > 0) {
        ml_web_page_add (exchange,
                         "<fieldset><legend>Invoices</legend>\n"
                         "<p><input type=\"radio\" name=\"mode\" id=\"mode-each\" value=\"each\"{}>"
                         "<label for=\"mode-each\">An amount for each invoice</label></p>\n",
                         total_mode ? "" : " checked");
        for (size_t index = 0; index < count; index++) {
            json_t *item = s_item (form, chosen[index]);
            const char *currency = s_text (item, "currency");
            char available[64], name[32], shown[64];
            ml_web_page_money (item, "available_minor", currency, available, sizeof available);
            snprintf (name, sizeof name, "amount_%zu", index);
            int64_t minor = json_integer_value (json_object_get (item, "available_minor"));
            const char *value = posted ? s_field (exchange, name)
                                       : ml_money_decimal (minor, ml_money_exponent (currency),
                                                           shown, sizeof shown);
            ml_web_page_add (exchange,
                             "<label for=\"{}\">Invoice {} ({} available)</label>\n"
                             "<input type=\"text\" inputmode=\"decimal\" id=\"{}\" name=\"{}\" "
                             "value=\"{}\">\n",
                             name, chosen[index], available, name, name, value);
        }
        ml_web_page_add (
            exchange,
            "<p><input type=\"radio\" name=\"mode\" id=\"mode-total\" value=\"total\"{}>"
            "<label for=\"mode-total\">One total, applied to the oldest invoice first</label></p>\n"
            "<label for=\"total\">Total</label>\n"
            "<input type=\"text\" inputmode=\"decimal\" id=\"total\" name=\"total\" value=\"{}\">\n"
            "</fieldset>\n",
            total_mode ? " checked" : "", s_field (exchange, "total"));
    } else
        ml_web_page_add (exchange, "<p class=\"empty\">No invoice is chosen. Choose invoices on "
                                   "<a href=\"/invoices\">your invoices</a>.</p>\n");
    json_t *matters = json_object_get (form, "deposit_matters");
    if (json_is_true (json_object_get (form, "trust_deposits")) && json_array_size (matters) > 0) {
        ml_web_page_add (exchange, "<fieldset><legend>Trust deposit (optional)</legend>\n"
                                   "<label for=\"trust_matter\">Matter</label>\n"
                                   "<select id=\"trust_matter\" name=\"trust_matter\">"
                                   "<option value=\"\">No deposit</option>\n");
        size_t index;
        json_t *matter;
        json_array_foreach (matters, index, matter)
        {
            const char *number = s_text (matter, "matter_number");
            ml_web_page_add (exchange, "<option value=\"{}\"{}>{}: {}</option>\n", number,
                             strcmp (s_field (exchange, "trust_matter"), number) == 0 ? " selected"
                                                                                      : "",
                             number, s_text (matter, "matter_description"));
        }
        ml_web_page_add (exchange,
                         "</select>\n<label for=\"trust_amount\">Deposit amount</label>\n"
                         "<input type=\"text\" inputmode=\"decimal\" id=\"trust_amount\" "
                         "name=\"trust_amount\" value=\"{}\">\n</fieldset>\n",
                         s_field (exchange, "trust_amount"));
    }
    //  The card: a saved one, or a new one through the processor's hosted fields.
    const char *method = posted ? s_field (exchange, "method") : "";
    ml_web_page_add (exchange, "<fieldset><legend>Card</legend>\n");
    size_t index;
    json_t *saved;
    bool any = false;
    json_array_foreach (json_object_get (form, "methods"), index, saved)
    {
        if (json_is_true (json_object_get (saved, "expired")))
            continue;
        char id[32], label[48];
        snprintf (id, sizeof id, "%lld",
                  (long long)json_integer_value (json_object_get (saved, "method_id")));
        snprintf (label, sizeof label, "method-%s", id);
        bool checked = posted ? strcmp (method, id) == 0 : !any;
        char expiry[16];
        snprintf (expiry, sizeof expiry, "%02lld/%lld",
                  (long long)json_integer_value (json_object_get (saved, "exp_month")),
                  (long long)json_integer_value (json_object_get (saved, "exp_year")));
        ml_web_page_add (exchange,
                         "<p><input type=\"radio\" name=\"method\" id=\"{}\" value=\"{}\"{}>"
                         "<label for=\"{}\">{} ending in {}, expires {}</label></p>\n",
                         label, id, checked ? " checked" : "", label, s_text (saved, "brand"),
                         s_text (saved, "last4"), expiry);
        any = true;
    }
    bool new_checked = posted ? strcmp (method, "new") == 0 : !any;
    ml_web_pay_new_card (exchange, new_checked, true, *s_field (exchange, "save_method"));
    ml_web_page_add (exchange, "</fieldset>\n<button type=\"submit\">Pay</button>\n</form>\n"
                               "<script src=\"/static/pay.js\"></script>\n");
    ml_web_page_end (exchange);
}

//  An amount typed by the payer in the currency: minor units, or -1 with why.
static int64_t s_typed (const char *text, const char *currency, const char **why)
{
    int64_t minor = 0;
    if (!text || !*text) {
        *why = "is empty";
        return -1;
    }
    if (ml_money_parse (text, currency, &minor, why) != 0)
        return -1;
    if (minor <= 0) {
        *why = "must be more than zero";
        return -1;
    }
    return minor;
}

//  Build portal-pay's request from the POST. Returns NULL with error filled.
static json_t *s_request (ml_web_exchange_t *exchange, const char *session, json_t *form,
                          const char **chosen, size_t count, char *error, size_t size)
{
    json_t *request =
        json_pack ("{s:s, s:s, s:s, s:s}", "op", "portal-pay", "session", session, "csrf",
                   s_field (exchange, "csrf"), "pay_key", s_field (exchange, "pay_key"));
    const char *why = NULL;
    const char *currency = count ? s_text (s_item (form, chosen[0]), "currency") : "USD";
    if (count && strcmp (s_field (exchange, "mode"), "total") == 0) {
        int64_t total = s_typed (s_field (exchange, "total"), currency, &why);
        if (total < 0) {
            snprintf (error, size, "The total %s.", why);
            json_decref (request);
            return NULL;
        }
        json_t *invoices = json_array ();
        for (size_t index = 0; index < count; index++)
            json_array_append_new (invoices, json_string (chosen[index]));
        json_object_set_new (
            request, "auto",
            json_pack ("{s:o, s:I}", "invoices", invoices, "amount_minor", (json_int_t)total));
    } else if (count) {
        json_t *lines = json_array ();
        for (size_t index = 0; index < count; index++) {
            char name[32];
            snprintf (name, sizeof name, "amount_%zu", index);
            const char *typed = s_field (exchange, name);
            int64_t zero = -1;
            if (!*typed || (ml_money_parse (typed, currency, &zero, &why) == 0 && zero == 0))
                continue; //  an invoice left at nothing is not paid now
            int64_t amount = s_typed (typed, currency, &why);
            if (amount < 0) {
                snprintf (error, size, "The amount for invoice %s %s.", chosen[index], why);
                json_decref (lines);
                json_decref (request);
                return NULL;
            }
            json_array_append_new (lines, json_pack ("{s:s, s:I}", "invoice", chosen[index],
                                                     "amount_minor", (json_int_t)amount));
        }
        json_object_set_new (request, "lines", lines);
    }
    const char *matter = s_field (exchange, "trust_matter");
    if (*matter) {
        int64_t amount = s_typed (s_field (exchange, "trust_amount"), currency, &why);
        if (amount < 0) {
            snprintf (error, size, "The trust deposit %s.", why);
            json_decref (request);
            return NULL;
        }
        json_object_set_new (
            request, "trust",
            json_pack ("{s:s, s:I}", "matter", matter, "amount_minor", (json_int_t)amount));
    }
    const char *method = s_field (exchange, "method");
    if (strcmp (method, "new") == 0) {
        const char *token = s_field (exchange, "token");
        if (!*token) {
            snprintf (error, size,
                      "A new card needs JavaScript in your browser (the card goes "
                      "straight to the card processor). Choose a saved card, or "
                      "turn JavaScript on.");
            json_decref (request);
            return NULL;
        }
        json_object_set_new (request, "token",
                             json_pack ("{s:s, s:s, s:s, s:i, s:i}", "token", token, "brand",
                                        s_field (exchange, "card_brand"), "last4",
                                        s_field (exchange, "card_last4"), "exp_month",
                                        atoi (s_field (exchange, "card_exp_month")), "exp_year",
                                        atoi (s_field (exchange, "card_exp_year"))));
        json_object_set_new (request, "save_method",
                             json_boolean (*s_field (exchange, "save_method")));
    } else if (*method && strspn (method, "0123456789") == strlen (method) && strlen (method) < 12)
        json_object_set_new (request, "method_id", json_integer (atoll (method)));
    else {
        snprintf (error, size, "Choose a card.");
        json_decref (request);
        return NULL;
    }
    return request;
}

//  The confirmation: each charge apart (operating and trust), the card, the receipt number.
static void s_confirmation (ml_web_exchange_t *exchange, json_t *session, json_t *form,
                            json_t *reply)
{
    json_t *payment = json_object_get (reply, "payment");
    const char *status = s_text (payment, "status");
    bool approved = strcmp (status, "approved") == 0;
    ml_web_page_begin (exchange,
                       approved                           ? "Thank you: your payment is made"
                       : strcmp (status, "declined") == 0 ? "The card was declined"
                                                          : "Your payment is being processed",
                       s_text (form, "firm_name"));
    ml_web_page_signed_in_bar (exchange, session);
    if (json_is_true (json_object_get (reply, "repeated")))
        ml_web_page_add (exchange, "<p class=\"hint\">This form was already sent: it was paid "
                                   "once, as shown here.</p>\n");
    ml_web_page_add (exchange,
                     "<p>Receipt number <strong id=\"receipt\">{}</strong>, paid with {} ending "
                     "in {}.</p>\n<table>\n<thead><tr><th scope=\"col\">Paid into</th>"
                     "<th scope=\"col\" class=\"num\">Amount</th><th scope=\"col\">Status</th>"
                     "<th scope=\"col\">Posting</th></tr></thead>\n<tbody>\n",
                     s_text (payment, "payment_uuid"), s_text (payment, "brand"),
                     s_text (payment, "last4"));
    size_t index;
    json_t *charge;
    json_array_foreach (json_object_get (payment, "charges"), index, charge)
    {
        char amount[64];
        ml_web_page_money (charge, "amount_minor", s_text (charge, "currency"), amount,
                           sizeof amount);
        const char *type = s_text (charge, "account_type");
        const char *reason = s_text (charge, "reason");
        char state[128];
        snprintf (state, sizeof state, "%s%s%s%s", s_text (charge, "status"), *reason ? " (" : "",
                  reason, *reason ? ")" : "");
        ml_web_page_add (exchange,
                         "<tr class=\"charge\"><th scope=\"row\" data-label=\"Paid into\">{}</th>"
                         "<td class=\"num\" data-label=\"Amount\">{}</td>"
                         "<td data-label=\"Status\">{}</td>"
                         "<td data-label=\"Posting\" class=\"posting\">{}</td></tr>\n",
                         strcmp (type, "TRUST") == 0 ? "Trust deposit" : "Invoices", amount, state,
                         s_text (charge, "posting_uuid"));
    }
    ml_web_page_add (exchange, "</tbody>\n</table>\n<p>A receipt is on its way by e-mail.</p>\n"
                               "<p><a href=\"/invoices\">Back to your invoices</a></p>\n");
    ml_web_page_end (exchange);
}

void ml_web_page_pay (ml_web_exchange_t *exchange)
{
    char token[256];
    json_t *session = NULL;
    json_t *form = ml_web_page_session_call (exchange, json_pack ("{s:s}", "op", "portal-pay-form"),
                                             &session, token, sizeof token);
    if (!form)
        return;
    const char *chosen[S_MAX_CHOSEN];
    size_t count = s_chosen (exchange, form, chosen);
    if (strcmp (exchange->method, "POST") != 0) {
        s_pay_form (exchange, session, form, chosen, count, NULL);
        json_decref (form);
        json_decref (session);
        return;
    }
    char error[400] = "";
    json_t *request = s_request (exchange, token, form, chosen, count, error, sizeof error);
    json_t *reply = request ? ml_web_page_call (exchange, request) : NULL;
    if (request && !reply) {
        //  The core did not answer in time: the payment may still be made (the processor
        //  was slow). Say so, so the payer looks before paying again with a new form.
        ml_web_page_error (exchange, 503,
                           "We could not confirm your payment in time. It may still go "
                           "through: please check your invoices and your e-mail for a receipt "
                           "before you pay again.");
        json_decref (form);
        json_decref (session);
        return;
    }
    const char *status = s_text (json_object_get (reply, "payment"), "status");
    if (reply && json_is_true (json_object_get (reply, "ok")) &&
        (strcmp (status, "declined") == 0 || strcmp (status, "error") == 0)) {
        //  Nothing was charged: the form again, with the processor's reason.
        const char *reason = s_text (
            json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0),
            "reason");
        snprintf (error, sizeof error, "The card was declined%s%s%s; nothing was charged.",
                  *reason ? " (" : "", reason, *reason ? ")" : "");
        exchange->status = 402;
        s_pay_form (exchange, session, form, chosen, count, error);
    } else if (reply && json_is_true (json_object_get (reply, "ok")))
        s_confirmation (exchange, session, form, reply);
    else if (reply && json_is_true (json_object_get (reply, "session_ended")))
        ml_web_page_refused (exchange, reply);
    else {
        //  The core's reason (the amount over what is available, "not found", the form
        //  expired) or ours; the form again with what was typed.
        const char *why = reply ? s_text (reply, "error") : error;
        char shown[400];
        snprintf (shown, sizeof shown, "%s%s", why, reply && *why ? "." : "");
        if (*shown >= 'a' && *shown <= 'z')
            *shown = (char)(*shown - 'a' + 'A');
        exchange->status = json_object_get (reply, "csrf") ? 403 : 400;
        s_pay_form (exchange, session, form, chosen, count, shown);
    }
    json_decref (reply);
    json_decref (form);
    json_decref (session);
}

void ml_web_pay_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_pay: ");
    //  connect-src gets the tokenization URL's origin, or nothing when it is not one.
    char origin[64];
    s_origin ("https://processor.example/api/v1/public/tokens", origin, sizeof origin);
    assert (strcmp (origin, "https://processor.example") == 0);
    s_origin ("http://127.0.0.1:8123/v1/public/tokens", origin, sizeof origin);
    assert (strcmp (origin, "http://127.0.0.1:8123") == 0);
    const char *refused[] = {"",
                             "javascript:alert(1)",
                             "https://",
                             "https://a.example; script-src *",
                             "https://a.example 'unsafe-inline'/x",
                             "ftp://a.example/",
                             "https://a\r\nSet-Cookie: x=1/",
                             "https://a-very-long-host-name-that-does-not-fit-in-sixty-four-bytes."
                             "example.com/x"};
    for (size_t index = 0; index < sizeof refused / sizeof refused[0]; index++) {
        s_origin (refused[index], origin, sizeof origin);
        assert (*origin == 0);
    }
    //  Amounts typed by the payer: decimal text in the currency, more than zero.
    const char *why = NULL;
    assert (s_typed ("1,234.56", "USD", &why) == 123456);
    assert (s_typed ("0.00", "USD", &why) == -1 && why);
    assert (s_typed ("", "USD", &why) == -1 && why);
    assert (s_typed ("1.234", "USD", &why) == -1);
    assert (s_typed ("-5", "USD", &why) == -1);
    assert (s_typed ("12abc", "USD", &why) == -1);
    printf ("OK\n");
}
