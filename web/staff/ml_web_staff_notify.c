/*  ml_web_staff_notify: the administrator's Notifications page: per event, whether it
    e-mails and whom (docs/web.md "The staff app", docs/mail.md "Notifications"). The core
    keeps the settings (notify-settings, notify-set) and sends the mails; other roles get 404.
*/
#include "ml_web_staff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_ok (json_t *reply)
{
    return json_is_true (json_object_get (reply, "ok"));
}

//  The addresses of a JSON array, joined with ", ", cut to fit buf.
static const char *s_joined (json_t *list, char *buf, size_t size)
{
    *buf = 0;
    size_t index;
    json_t *entry;
    json_array_foreach (list, index, entry)
    {
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%s%s", index ? ", " : "", json_string_value (entry));
    }
    return buf;
}

static void s_page (ml_web_exchange_t *exchange, const char *token, json_t *session,
                    const char *notice, const char *error, const char *failed_event)
{
    json_t *reply =
        ml_web_staff_call (exchange, token, json_pack ("{s:s}", "op", "notify-settings"));
    if (!reply)
        return;
    if (!s_ok (reply)) {
        ml_web_staff_refused (exchange, reply);
        json_decref (reply);
        return;
    }
    ml_web_staff_begin (exchange, "Notifications", session);
    ml_web_page_message (exchange, "notice", notice);
    json_t *contact = json_object_get (reply, "contact");
    ml_web_page_add (exchange,
                     "<p class=\"hint\">Choose which events e-mail whom. With no address "
                     "given, an event goes to the firm's contact address ({}).</p>\n",
                     json_is_string (contact) ? json_string_value (contact) : "none is set");
    size_t index;
    json_t *event;
    json_array_foreach (json_object_get (reply, "events"), index, event)
    {
        const char *name = ml_web_staff_text (event, "event");
        bool on = json_is_true (json_object_get (event, "enabled"));
        char recipients[2000], joined[2000], sends[2100], minutes[32] = "";
        s_joined (json_object_get (event, "recipients"), recipients, sizeof recipients);
        s_joined (json_object_get (event, "sends_to"), joined, sizeof joined);
        snprintf (sends, sizeof sends, "On: e-mails %s", joined);
        if (json_is_integer (json_object_get (event, "minutes")))
            snprintf (minutes, sizeof minutes, "%lld",
                      (long long)json_integer_value (json_object_get (event, "minutes")));
        ml_web_page_add (exchange, "<section class=\"notify\" id=\"notify-{}\">\n<h2>{}</h2>\n",
                         name, ml_web_staff_text (event, "label"));
        if (failed_event && strcmp (failed_event, name) == 0)
            ml_web_page_message (exchange, "error", error);
        ml_web_page_add (
            exchange,
            "<p class=\"state\">{}</p>\n"
            "<form method=\"post\" action=\"/staff/notifications\" class=\"stack\">\n"
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n"
            "<input type=\"hidden\" name=\"event\" value=\"{}\">\n"
            "<div class=\"check\"><input type=\"checkbox\" id=\"{}-on\" name=\"enabled\" "
            "value=\"on\"{}><label for=\"{}-on\">E-mail when this happens</label></div>\n"
            "<label for=\"{}-to\">Send to (addresses separated by commas; empty: the contact "
            "address)</label>\n<textarea id=\"{}-to\" name=\"recipients\" rows=\"2\" "
            "maxlength=\"3000\">{}</textarea>\n",
            on ? (*joined ? sends : "On, but nobody gets it: no address and no contact address")
               : "Off",
            ml_web_staff_csrf (session), name, name, on ? " checked" : "", name, name, name,
            recipients);
        if (*minutes)
            ml_web_page_add (exchange,
                             "<label for=\"{}-minutes\">After how many minutes away</label>\n"
                             "<input id=\"{}-minutes\" name=\"minutes\" type=\"number\" "
                             "min=\"1\" max=\"10080\" required value=\"{}\">\n",
                             name, name, minutes);
        ml_web_page_add (exchange,
                         "<button type=\"submit\" aria-label=\"Save: {}\">Save</button>\n"
                         "</form>\n</section>\n",
                         ml_web_staff_text (event, "label"));
    }
    ml_web_staff_end (exchange);
    json_decref (reply);
}

void ml_web_staff_page_notifications (ml_web_exchange_t *exchange)
{
    char token[ML_WEB_STAFF_TOKEN_MAX + 1];
    json_t *session = ml_web_staff_session (exchange, token, sizeof token);
    if (!session)
        return;
    if (!ml_web_staff_role_allows (session, "admin")) {
        ml_web_staff_not_found (exchange);
        json_decref (session);
        return;
    }
    if (strcmp (exchange->method, "POST") != 0) {
        const char *done = ml_web_form_get (exchange->query, "done");
        s_page (exchange, token, session, done ? "The notification is saved." : NULL, NULL, NULL);
        json_decref (session);
        return;
    }
    const char *event = ml_web_form_get (exchange->form, "event");
    const char *csrf = ml_web_form_get (exchange->form, "csrf");
    const char *recipients = ml_web_form_get (exchange->form, "recipients");
    const char *minutes = ml_web_form_get (exchange->form, "minutes");
    json_t *request = json_pack ("{s:s, s:s, s:s, s:b, s:s}", "op", "notify-set", "csrf",
                                 csrf ? csrf : "", "event", event ? event : "", "enabled",
                                 ml_web_form_get (exchange->form, "enabled") != NULL, "recipients",
                                 recipients ? recipients : "");
    if (minutes && *minutes) {
        char *end = NULL;
        long long value = strtoll (minutes, &end, 10);
        //  Not a number: the core says what minutes must be.
        json_object_set_new (request, "minutes",
                             end && !*end ? json_integer (value) : json_string (minutes));
    }
    json_t *reply = ml_web_staff_call (exchange, token, request);
    if (!reply || ml_web_staff_answered (exchange, reply)) {
        json_decref (reply);
        json_decref (session);
        return;
    }
    if (s_ok (reply)) {
        ml_web_page_redirect (exchange, "/staff/notifications?done=1");
    } else {
        s_page (exchange, token, session, NULL, ml_web_staff_text (reply, "error"), event);
        exchange->status = 400;
    }
    json_decref (reply);
    json_decref (session);
}
