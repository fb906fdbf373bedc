/*  ml_web_staff_pay_allocate: step 3 of "Make a Payment" (docs/web.md), /staff/pay/allocate.

    The selection's lines with what the core knows of them now: each invoice's balance, what
    postings not yet applied take from it (pending) and what is left to pay (available).
    Either an amount per line, or one total applied to the selected invoices oldest first
    (the core's order: by invoice date, then number), never more than an invoice's available
    balance. Trust deposits are always typed by hand. A total above what the invoices have
    available is refused and the page says so; nothing is changed then. The amounts are kept
    in the core's selection (selection-add with amount_minor), which step 4 pays.
*/
#include "ml_web_staff_pay_internal.h"
#include "ml_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The selection (the core's reply), or NULL after it answered.
static json_t *s_selection (ml_wsp_t *self)
{
    json_t *reply = ml_wsp_call (self, "selection", NULL);
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        ml_wsp_refused (self, reply);
        json_decref (reply);
        return NULL;
    }
    return reply;
}

static bool s_trust (json_t *item)
{
    return strcmp (ml_wsp_text (item, "kind"), "trust") == 0;
}

//  The currency of the invoices (the first one's), for the total.
static const char *s_invoice_currency (json_t *items)
{
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        if (!s_trust (item) && *ml_wsp_text (item, "currency"))
            return ml_wsp_text (item, "currency");
    }
    return "USD";
}

static void s_form (ml_wsp_t *self, json_t *selection, const char *error)
{
    ml_web_exchange_t *exchange = self->exchange;
    bool posted = strcmp (exchange->method, "POST") == 0;
    json_t *items = json_object_get (selection, "items");
    ml_wsp_begin (self, "Make a Payment: allocate", 3);
    if (error)
        ml_web_page_message (exchange, "error", error);
    if (json_array_size (items) == 0) {
        ml_web_page_add (exchange, "<p class=\"empty\">Nothing is selected. <a "
                                   "href=\"/staff/pay/search\">Search and select</a> the "
                                   "invoices or trust ledgers to pay first.</p>\n");
        ml_wsp_end (self);
        return;
    }
    bool total_mode = posted && strcmp (ml_wsp_field (exchange, "mode"), "total") == 0;
    char lines[ML_WEB_FORM_MAX_VALUE] = "";
    ml_web_page_add (
        exchange,
        "<form method=\"post\" action=\"/staff/pay/allocate\" id=\"allocate-form\">\n"
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
        "<fieldset><legend>How to allocate</legend>\n"
        "<p><input type=\"radio\" name=\"mode\" id=\"mode-each\" value=\"each\"{}>"
        "<label for=\"mode-each\">An amount for each line</label></p>\n"
        "<p><input type=\"radio\" name=\"mode\" id=\"mode-total\" value=\"total\"{}>"
        "<label for=\"mode-total\">One total, applied to the selected invoices oldest first"
        "</label></p>\n"
        "<label for=\"total\">Amount to pay on the invoices ({})</label>\n"
        "<input type=\"text\" inputmode=\"decimal\" id=\"total\" name=\"total\" value=\"{}\">\n"
        "<p class=\"hint\">Trust deposits are never part of the total: give each its amount "
        "below.</p>\n</fieldset>\n"
        "<table id=\"allocation\"><caption class=\"visually-hidden\">Selected lines, oldest "
        "invoice first</caption><thead><tr><th scope=\"col\">Line</th>"
        "<th scope=\"col\">Client</th><th scope=\"col\">Invoice date</th>"
        "<th scope=\"col\" class=\"num\">Balance</th><th scope=\"col\" class=\"num\">Pending"
        "</th><th scope=\"col\" class=\"num\">Available</th><th scope=\"col\">Amount</th>"
        "</tr></thead><tbody>\n",
        ml_wsp_csrf (self), total_mode ? "" : " checked", total_mode ? " checked" : "",
        s_invoice_currency (items), posted ? ml_wsp_field (exchange, "total") : "");
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        if (index >= ML_WSP_MAX_ROWS)
            break;
        bool trust = s_trust (item);
        const char *currency = ml_wsp_text (item, "currency");
        const char *number = ml_wsp_text (item, "number");
        char line[140], name[32], balance[64], pending[64], available[64], shown[64] = "";
        snprintf (line, sizeof line, "%s %s", trust ? "Trust deposit, matter" : "Invoice", number);
        snprintf (name, sizeof name, "amount_%zu", index);
        char entry[100];
        snprintf (entry, sizeof entry, "%c%s", trust ? 't' : 'i', number);
        if (strlen (lines) + strlen (entry) + 2 < sizeof lines)
            strcat (strcat (lines, *lines ? "\n" : ""), entry);
        ml_web_page_money (item, "balance_minor", currency, balance, sizeof balance);
        ml_web_page_money (item, "pending_minor", currency, pending, sizeof pending);
        ml_web_page_money (item, "available_minor", currency, available, sizeof available);
        json_t *amount = json_object_get (item, "amount_minor");
        int exponent = ml_money_exponent (*currency ? currency : "USD");
        if (json_is_integer (amount))
            ml_money_decimal (json_integer_value (amount), exponent, shown, sizeof shown);
        else if (!trust)
            ml_money_decimal (json_integer_value (json_object_get (item, "available_minor")),
                              exponent, shown, sizeof shown);
        const char *closed = !trust && !json_is_true (json_object_get (item, "open"))
                                 ? " (no longer open: remove it)"
                                 : "";
        ml_web_page_add (
            exchange,
            "<tr><th scope=\"row\" data-label=\"Line\">{}{}<span class=\"small\">{}</span></th>"
            "<td data-label=\"Client\">{} {}</td><td data-label=\"Invoice date\">{}</td>"
            "<td class=\"num\" data-label=\"{}\">{}</td><td class=\"num\" data-label=\"Pending\">"
            "{}</td><td class=\"num\" data-label=\"Available\">{}</td>"
            "<td data-label=\"Amount\"><label for=\"{}\" class=\"visually-hidden\">Amount for "
            "{} ({})</label><input type=\"text\" inputmode=\"decimal\" id=\"{}\" name=\"{}\" "
            "value=\"{}\"></td></tr>\n",
            line, closed, ml_wsp_text (item, "matter_description"),
            ml_wsp_text (item, "client_number"), ml_wsp_text (item, "client_name"),
            ml_wsp_text (item, "invoice_date"), trust ? "In trust" : "Balance", balance,
            trust ? "-" : pending, trust ? "-" : available, name, line, currency, name, name,
            posted ? ml_wsp_field (exchange, name) : shown);
    }
    ml_web_page_add (
        exchange, "</tbody></table>\n<input type=\"hidden\" name=\"lines\" value=\"{}\">\n", lines);
    if (json_array_size (items) > ML_WSP_MAX_ROWS)
        ml_web_page_add (exchange, "<p class=\"notice\">Only the first lines are shown; the "
                                   "others are paid in full. Pay a large selection in parts, or "
                                   "use one total.</p>\n");
    ml_web_page_add (exchange,
                     "<p><button type=\"submit\" id=\"to-pay\">Continue to step 4: Pay</button> "
                     "<a href=\"/staff/pay/search?view=selected\">Back to step 2</a></p>\n"
                     "</form>\n");
    ml_wsp_end (self);
}

//  The posted line index of item (kind letter and number in the form's "lines"), or -1.
static int s_posted_index (ml_web_exchange_t *exchange, json_t *item)
{
    char lines[ML_WEB_FORM_MAX_VALUE], wanted[100];
    snprintf (lines, sizeof lines, "%s", ml_wsp_field (exchange, "lines"));
    snprintf (wanted, sizeof wanted, "%c%s", s_trust (item) ? 't' : 'i',
              ml_wsp_text (item, "number"));
    char *save = NULL;
    int index = 0;
    for (char *line = strtok_r (lines, "\r\n", &save); line && index < ML_WSP_MAX_ROWS;
         line = strtok_r (NULL, "\r\n", &save), index++)
        if (strcmp (line, wanted) == 0)
            return index;
    return -1;
}

//  Append a sentence to why.
static void s_why (char *why, size_t size, const char *sentence)
{
    size_t used = strlen (why);
    snprintf (why + used, size - used, "%s%s", used ? " " : "", sentence);
}

//  The amounts to keep, one per item (0: remove the line), or false with why.
static bool s_amounts (ml_web_exchange_t *exchange, json_t *items, int64_t *amounts, char *why,
                       size_t size)
{
    bool total_mode = strcmp (ml_wsp_field (exchange, "mode"), "total") == 0;
    size_t index;
    json_t *item;
    //  Lines typed by hand: every line in "each", trust in "total".
    json_array_foreach (items, index, item)
    {
        amounts[index] = json_integer_value (json_object_get (item, "amount_minor"));
        bool trust = s_trust (item);
        const char *currency = ml_wsp_text (item, "currency");
        int posted = s_posted_index (exchange, item);
        if ((total_mode && !trust) || posted < 0) {
            if (!trust && !total_mode)
                amounts[index] = json_integer_value (json_object_get (item, "available_minor"));
            continue;
        }
        char name[32], sentence[400];
        snprintf (name, sizeof name, "amount_%d", posted);
        const char *problem = NULL;
        int64_t amount =
            ml_wsp_typed (ml_wsp_field (exchange, name), *currency ? currency : "USD", &problem);
        int64_t available = json_integer_value (json_object_get (item, "available_minor"));
        if (amount < 0) {
            snprintf (sentence, sizeof sentence, "The amount for %s %s %s.",
                      trust ? "the trust deposit to matter" : "invoice",
                      ml_wsp_text (item, "number"), problem);
            s_why (why, size, sentence);
        } else if (!trust && amount > available) {
            char typed[64], left[64];
            ml_money_format (amount, currency, typed, sizeof typed);
            ml_money_format (available, currency, left, sizeof left);
            snprintf (sentence, sizeof sentence,
                      "%s is more than the %s available on invoice %s (its balance minus "
                      "postings not yet applied); a surplus cannot be paid.",
                      typed, left, ml_wsp_text (item, "number"));
            s_why (why, size, sentence);
        }
        amounts[index] = amount;
    }
    if (*why || !total_mode)
        return !*why;
    //  One total over the invoices, oldest first: the core gives them in that order.
    const char *currency = s_invoice_currency (items);
    const char *problem = NULL;
    int64_t total = ml_wsp_typed (ml_wsp_field (exchange, "total"), currency, &problem);
    if (total < 0) {
        char sentence[200];
        snprintf (sentence, sizeof sentence, "The amount to pay %s.", problem);
        s_why (why, size, sentence);
        return false;
    }
    int64_t open = 0;
    json_array_foreach (items, index, item)
    {
        if (!s_trust (item) &&
            ml_money_add (&open, json_integer_value (json_object_get (item, "available_minor")),
                          &problem) != 0) {
            s_why (why, size, "The selected invoices' balances are too large to add up.");
            return false;
        }
    }
    if (total > open) {
        char typed[64], left[64], surplus[64], sentence[500];
        ml_money_format (total, currency, typed, sizeof typed);
        ml_money_format (open, currency, left, sizeof left);
        ml_money_format (total - open, currency, surplus, sizeof surplus);
        snprintf (sentence, sizeof sentence,
                  "%s is more than the %s available on the selected invoices (their balances "
                  "minus postings not yet applied), so %s would be a surplus. Nothing was "
                  "allocated: lower the amount, or select more invoices. Trust deposits are "
                  "allocated by hand, on their own lines.",
                  typed, left, surplus);
        s_why (why, size, sentence);
        return false;
    }
    int64_t left = total;
    json_array_foreach (items, index, item)
    {
        if (s_trust (item))
            continue;
        int64_t available = json_integer_value (json_object_get (item, "available_minor"));
        amounts[index] = left < available ? left : available;
        left -= amounts[index];
    }
    return true;
}

void ml_wsp_allocate (ml_wsp_t *self)
{
    ml_web_exchange_t *exchange = self->exchange;
    json_t *selection = s_selection (self);
    if (!selection)
        return;
    if (strcmp (exchange->method, "POST") != 0) {
        s_form (self, selection, NULL);
        json_decref (selection);
        return;
    }
    json_t *items = json_object_get (selection, "items");
    size_t count = json_array_size (items);
    int64_t *amounts = calloc (count ? count : 1, sizeof (int64_t));
    char why[4000] = "";
    if (!amounts || !s_amounts (exchange, items, amounts, why, sizeof why)) {
        exchange->status = 400;
        s_form (self, selection, *why ? why : "Out of memory.");
        free (amounts);
        json_decref (selection);
        return;
    }
    //  Checked here first, kept in the core's selection now: each line checked again there.
    size_t index;
    json_t *item;
    json_array_foreach (items, index, item)
    {
        bool trust = s_trust (item);
        json_t *request =
            json_pack ("{s:s, s:s}", trust ? "trust" : "invoice", ml_wsp_text (item, "number"),
                       "csrf", ml_wsp_field (exchange, "csrf"));
        if (amounts[index] > 0)
            json_object_set_new (request, "amount_minor", json_integer (amounts[index]));
        //  An invoice the total does not reach leaves the selection.
        json_t *reply =
            ml_wsp_call (self, amounts[index] > 0 ? "selection-add" : "selection-remove", request);
        if (!reply) {
            free (amounts);
            json_decref (selection);
            return;
        }
        if (ml_web_staff_answered (exchange, reply)) {
            json_decref (reply);
            free (amounts);
            json_decref (selection);
            return;
        }
        if (!json_is_true (json_object_get (reply, "ok"))) {
            char sentence[400];
            s_why (why, sizeof why,
                   ml_wsp_sentence (ml_wsp_text (reply, "error"), sentence, sizeof sentence));
        }
        json_decref (reply);
    }
    free (amounts);
    if (*why) {
        json_decref (selection);
        selection = s_selection (self);
        if (selection) {
            exchange->status = 400;
            s_form (self, selection, why);
        }
    } else
        ml_web_page_redirect (exchange, "/staff/pay/pay");
    json_decref (selection);
}
