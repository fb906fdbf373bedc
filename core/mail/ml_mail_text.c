/*  ml_mailer's text: what may go into a mail (UTF-8, addresses, header values), the time
    as the outbox stores it, and writing a message (RFC 5322, MIME, quoted-printable). */
#include "ml_mail_internal.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  ---------------------------------------------------------------------------------------
//  Checking what goes into a mail

//  Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool ml_mail_utf8_valid (const char *text)
{
    const unsigned char *cursor = (const unsigned char *)text;
    while (*cursor) {
        unsigned char lead = *cursor;
        size_t length;
        uint32_t point;
        if (lead < 0x80) {
            cursor++;
            continue;
        } else if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
            point = lead & 0x1f;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            point = lead & 0x0f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            point = lead & 0x07;
        } else
            return false;
        for (size_t index = 1; index < length; index++) {
            if ((cursor[index] & 0xc0) != 0x80)
                return false;
            point = (point << 6) | (cursor[index] & 0x3f);
        }
        if ((length == 3 && point < 0x800) || (length == 4 && point < 0x10000) ||
            (point >= 0xd800 && point <= 0xdfff) || point > 0x10ffff)
            return false;
        cursor += length;
    }
    return true;
}

//  Any C0 control character or DEL: in a header value a CR or LF would end the header and
//  let the value add others (header injection); the rest garble what people read.
bool ml_mail_has_control (const char *text)
{
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor == 0x7f)
            return true;
    return false;
}

//  One addr-spec in its plain form: a dot-atom local part (no quoting), '@', and a domain
//  of two or more labels of letters, digits and hyphens. Nothing else: no display name, no
//  second address, no spaces or control characters, ASCII only.
bool ml_mail_is_address (const char *address)
{
    static const char *atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "!#$%&'*+-/=?^_`{|}~";
    size_t length = strlen (address);
    const char *at = strchr (address, '@');
    if (length > ML_MAILER_ADDRESS_MAX || !at || strchr (at + 1, '@') || at == address ||
        at - address > 64)
        return false;
    for (const char *cursor = address; cursor < at; cursor++) {
        if (*cursor == '.') {
            if (cursor == address || cursor + 1 == at || cursor[1] == '.')
                return false;
        } else if (!strchr (atext, *cursor))
            return false;
    }
    size_t labels = 0, label = 0;
    for (const char *cursor = at + 1;; cursor++) {
        if (*cursor == '.' || *cursor == 0) {
            if (label == 0 || label > 63 || cursor[-1] == '-')
                return false;
            labels++;
            label = 0;
            if (*cursor == 0)
                break;
        } else if ((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
                   (*cursor >= '0' && *cursor <= '9') || (*cursor == '-' && label > 0))
            label++;
        else
            return false;
    }
    return labels >= 2;
}

bool ml_mail_is_kind (const char *kind)
{
    size_t length = strlen (kind);
    if (length == 0 || length > ML_MAILER_KIND_MAX)
        return false;
    for (const char *cursor = kind; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= '0' && *cursor <= '9') ||
              *cursor == '_' || *cursor == '-'))
            return false;
    return true;
}

bool ml_mail_is_key (const char *key)
{
    size_t length = strlen (key);
    if (length == 0 || length > ML_MAILER_KEY_MAX)
        return false;
    for (const unsigned char *cursor = (const unsigned char *)key; *cursor; cursor++)
        if (*cursor <= 0x20 || *cursor >= 0x7f)
            return false;
    return true;
}

//  A body is UTF-8 text: tabs and line breaks (LF or CRLF) are its only control characters.
bool ml_mail_is_body_text (const char *body)
{
    for (const unsigned char *cursor = (const unsigned char *)body; *cursor; cursor++) {
        if (*cursor == '\r' && cursor[1] != '\n')
            return false;
        if ((*cursor < 0x20 && *cursor != '\t' && *cursor != '\n' && *cursor != '\r') ||
            *cursor == 0x7f)
            return false;
    }
    return true;
}

//  Characters (not bytes) of valid UTF-8, as SQL's length() counts them.
size_t ml_mail_utf8_chars (const char *text)
{
    size_t count = 0;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++)
        count += (*cursor & 0xc0) != 0x80;
    return count;
}

//  ---------------------------------------------------------------------------------------
//  Time, as the store writes it (YYYY-MM-DDTHH:MM:SS.mmmZ, UTC): text that sorts in time
//  order, so "due" is a string comparison in SQL.

int64_t ml_mail_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void ml_mail_timestamp (int64_t ms, char *buf, size_t size)
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    char whole[24];
    strftime (whole, sizeof whole, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buf, size, "%s.%03dZ", whole, (int)(ms % 1000));
}

//  The Date header (RFC 5322) for a stored timestamp. English names whatever the locale.
void ml_mail_date (const char *stored, char *buf, size_t size)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm utc = {0};
    time_t seconds = time (NULL);
    if (stored && sscanf (stored, "%4d-%2d-%2dT%2d:%2d:%2d", &utc.tm_year, &utc.tm_mon,
                          &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec) == 6) {
        utc.tm_year -= 1900;
        utc.tm_mon -= 1;
        seconds = timegm (&utc);
    }
    gmtime_r (&seconds, &utc);
    snprintf (buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[utc.tm_wday % 7],
              utc.tm_mday, months[utc.tm_mon % 12], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
              utc.tm_sec);
}

//  ---------------------------------------------------------------------------------------
//  Writing a message (RFC 5322, MIME text/plain in UTF-8, quoted-printable)

void ml_mail_text_add (ml_mail_text_t *text, const char *bytes, size_t length)
{
    if (text->full || text->size + length + 1 > ML_MAIL_MESSAGE_MAX) {
        text->full = true;
        return;
    }
    if (text->size + length + 1 > text->capacity) {
        size_t capacity = text->capacity ? text->capacity : 4096;
        while (capacity < text->size + length + 1)
            capacity *= 2;
        char *data = realloc (text->data, capacity);
        assert (data);
        text->data = data;
        text->capacity = capacity;
    }
    memcpy (text->data + text->size, bytes, length);
    text->size += length;
    text->data[text->size] = 0;
}

void ml_mail_text_adds (ml_mail_text_t *text, const char *string)
{
    ml_mail_text_add (text, string, strlen (string));
}

void ml_mail_base64 (ml_mail_text_t *text, const unsigned char *bytes, size_t length)
{
    static const char *alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t index = 0; index < length; index += 3) {
        uint32_t group = (uint32_t)bytes[index] << 16;
        if (index + 1 < length)
            group |= (uint32_t)bytes[index + 1] << 8;
        if (index + 2 < length)
            group |= bytes[index + 2];
        char out[4] = {alphabet[(group >> 18) & 63], alphabet[(group >> 12) & 63],
                       index + 1 < length ? alphabet[(group >> 6) & 63] : '=',
                       index + 2 < length ? alphabet[group & 63] : '='};
        ml_mail_text_add (text, out, 4);
    }
}

//  Header text: as is when it is printable ASCII that cannot be mistaken for an encoded
//  word, else RFC 2047 encoded words ("=?UTF-8?B?...?="), each at most 75 characters and
//  holding whole characters, folded onto continuation lines.
void ml_mail_header_words (ml_mail_text_t *text, const char *value)
{
    bool plain = !strstr (value, "=?");
    for (const unsigned char *cursor = (const unsigned char *)value; plain && *cursor; cursor++)
        plain = *cursor >= 0x20 && *cursor < 0x7f;
    if (plain) {
        ml_mail_text_adds (text, value);
        return;
    }
    //  75 = 12 of "=?UTF-8?B?" and "?=" + 60 of base64, which is 45 bytes of text.
    const unsigned char *cursor = (const unsigned char *)value;
    bool first = true;
    while (*cursor) {
        size_t take = 0;
        while (cursor[take]) {
            size_t length = 1;
            while ((cursor[take + length] & 0xc0) == 0x80)
                length++;
            if (take + length > 45)
                break;
            take += length;
        }
        ml_mail_text_adds (text, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        ml_mail_base64 (text, cursor, take);
        ml_mail_text_adds (text, "?=");
        cursor += take;
        first = false;
    }
}

//  The From display name: a quoted string when ASCII, encoded words otherwise.
void ml_mail_display_name (ml_mail_text_t *text, const char *name)
{
    bool ascii = true;
    for (const unsigned char *cursor = (const unsigned char *)name; *cursor; cursor++)
        ascii = ascii && *cursor < 0x80;
    if (!ascii) {
        ml_mail_header_words (text, name);
        return;
    }
    ml_mail_text_adds (text, "\"");
    for (const char *cursor = name; *cursor; cursor++) {
        if (*cursor == '"' || *cursor == '\\')
            ml_mail_text_adds (text, "\\");
        ml_mail_text_add (text, cursor, 1);
    }
    ml_mail_text_adds (text, "\"");
}

//  The body in quoted-printable (RFC 2045 6.7): any UTF-8, any line length, survives every
//  relay (8bit would need 8BITMIME and lines under 998 bytes). Line breaks become CRLF, and
//  the message ends with one. Lines that start with '.' are left alone: libcurl doubles the
//  dot on the wire (SMTP transparency) and the server removes it, as the selftest checks.
void ml_mail_quoted_printable (ml_mail_text_t *text, const char *body)
{
    size_t column = 0;
    bool at_break = true;
    for (const unsigned char *cursor = (const unsigned char *)body; *cursor; cursor++) {
        if (*cursor == '\r' && cursor[1] == '\n')
            continue; //  the LF that follows makes the break
        if (*cursor == '\n') {
            ml_mail_text_adds (text, "\r\n");
            column = 0;
            at_break = true;
            continue;
        }
        //  Spaces and tabs at the end of a line would be lost in transit: encode them.
        bool line_end =
            cursor[1] == 0 || cursor[1] == '\n' || (cursor[1] == '\r' && cursor[2] == '\n');
        char token[4];
        size_t length = 1;
        if ((*cursor >= 33 && *cursor <= 126 && *cursor != '=') ||
            ((*cursor == ' ' || *cursor == '\t') && !line_end))
            token[0] = (char)*cursor;
        else {
            snprintf (token, sizeof token, "=%02X", *cursor);
            length = 3;
        }
        //  At most 76 characters a line, counting the '=' of a soft break.
        if (column + length > 75) {
            ml_mail_text_adds (text, "=\r\n");
            column = 0;
        }
        ml_mail_text_add (text, token, length);
        column += length;
        at_break = false;
    }
    if (!at_break)
        ml_mail_text_adds (text, "\r\n");
}

//  The whole message. Everything in it comes from the row, so an attempt after a crash
//  sends the same bytes (the Date is the time of enqueue).
void ml_mail_message (ml_mail_text_t *text, const ml_mailer_settings_t *settings,
                      const char *message_id, const char *recipient, const char *subject,
                      const char *created_at, const char *body)
{
    char date[64];
    ml_mail_date (created_at, date, sizeof date);
    ml_mail_text_adds (text, "Date: ");
    ml_mail_text_adds (text, date);
    ml_mail_text_adds (text, "\r\nFrom: ");
    if (*settings->from_name) {
        ml_mail_display_name (text, settings->from_name);
        ml_mail_text_adds (text, " <");
        ml_mail_text_adds (text, settings->from);
        ml_mail_text_adds (text, ">");
    } else
        ml_mail_text_adds (text, settings->from);
    ml_mail_text_adds (text, "\r\nTo: ");
    ml_mail_text_adds (text, recipient);
    ml_mail_text_adds (text, "\r\nSubject: ");
    ml_mail_header_words (text, subject);
    ml_mail_text_adds (text, "\r\nMessage-ID: ");
    ml_mail_text_adds (text, message_id);
    //  Auto-Submitted keeps out-of-office robots from answering (RFC 3834).
    ml_mail_text_adds (text, "\r\nMIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=UTF-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "Auto-Submitted: auto-generated\r\n\r\n");
    ml_mail_quoted_printable (text, body);
}
