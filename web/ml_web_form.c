/*  ml_web_form: form fields and cookies, read strictly. See include/ml_web_form.h. */
#include "ml_web_form.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char *value;
} s_field_t;

struct _ml_web_form_t {
    s_field_t fields[ML_WEB_FORM_MAX_FIELDS];
    size_t count;
};

bool ml_web_utf8_valid (const char *bytes, size_t length)
{
    const unsigned char *text = (const unsigned char *)bytes;
    size_t index = 0;
    while (index < length) {
        unsigned char lead = text[index];
        if (lead < 0x80) {
            if ((lead < 0x20 && lead != '\t' && lead != '\r' && lead != '\n') || lead == 0x7f)
                return false;
            index++;
            continue;
        }
        size_t count;
        uint32_t code, minimum;
        if (lead >= 0xc2 && lead <= 0xdf)
            count = 2, code = lead & 0x1f, minimum = 0x80;
        else if (lead >= 0xe0 && lead <= 0xef)
            count = 3, code = lead & 0x0f, minimum = 0x800;
        else if (lead >= 0xf0 && lead <= 0xf4)
            count = 4, code = lead & 0x07, minimum = 0x10000;
        else
            return false; //  a continuation byte, an overlong lead (C0, C1) or F5..FF
        if (length - index < count)
            return false;
        for (size_t next = 1; next < count; next++) {
            if ((text[index + next] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (text[index + next] & 0x3f);
        }
        if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        //  C1 control characters are as invisible as C0 ones.
        if (code >= 0x80 && code <= 0x9f)
            return false;
        index += count;
    }
    return true;
}

static int s_hex (char character)
{
    if (character >= '0' && character <= '9')
        return character - '0';
    if (character >= 'a' && character <= 'f')
        return character - 'a' + 10;
    if (character >= 'A' && character <= 'F')
        return character - 'A' + 10;
    return -1;
}

//  Decode length bytes of one name or value into a new string of at most limit bytes.
//  Returns it, or NULL with *error set.
static char *s_decode (const char *text, size_t length, size_t limit, const char **error)
{
    char *out = malloc (length + 1);
    if (!out) {
        *error = "out of memory";
        return NULL;
    }
    size_t used = 0;
    for (size_t index = 0; index < length; index++) {
        char character = text[index];
        if (character == '+')
            character = ' ';
        else if (character == '%') {
            int high = index + 2 < length ? s_hex (text[index + 1]) : -1;
            int low = high < 0 ? -1 : s_hex (text[index + 2]);
            if (low < 0) {
                free (out);
                *error = "a '%' in the form is not followed by two hexadecimal digits";
                return NULL;
            }
            character = (char)(high * 16 + low);
            index += 2;
        } else if ((unsigned char)character <= 0x20 || (unsigned char)character >= 0x7f) {
            //  A browser percent-encodes everything outside printable ASCII.
            free (out);
            *error = "the form holds a byte that is not encoded";
            return NULL;
        }
        out[used++] = character;
    }
    out[used] = 0;
    if (used > limit) {
        free (out);
        *error = "a form field is too long";
        return NULL;
    }
    if (!ml_web_utf8_valid (out, used)) {
        free (out);
        *error = "a form field is not valid UTF-8 text";
        return NULL;
    }
    return out;
}

static bool s_valid_name (const char *name)
{
    if (!*name)
        return false;
    for (const char *cursor = name; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z') || (*cursor >= 'A' && *cursor <= 'Z') ||
              (*cursor >= '0' && *cursor <= '9') || *cursor == '-' || *cursor == '_'))
            return false;
    return true;
}

ml_web_form_t *ml_web_form_parse (const char *text, size_t length, const char **error)
{
    assert (error);
    *error = NULL;
    ml_web_form_t *self = calloc (1, sizeof (ml_web_form_t));
    if (!self) {
        *error = "out of memory";
        return NULL;
    }
    size_t start = 0;
    while (start < length) {
        const char *pair = text + start;
        const char *amp = memchr (pair, '&', length - start);
        size_t pair_length = amp ? (size_t)(amp - pair) : length - start;
        start += pair_length + 1;
        if (pair_length == 0) {
            //  "a=1&&b=2" or a trailing '&': nothing a browser sends, but harmless.
            continue;
        }
        if (self->count == ML_WEB_FORM_MAX_FIELDS) {
            *error = "the form has too many fields";
            ml_web_form_destroy (&self);
            return NULL;
        }
        const char *equals = memchr (pair, '=', pair_length);
        size_t name_length = equals ? (size_t)(equals - pair) : pair_length;
        char *name = s_decode (pair, name_length, ML_WEB_FORM_MAX_NAME, error);
        char *value = NULL;
        if (name && !s_valid_name (name)) {
            *error = "a form field has a name that no page uses";
            free (name);
            name = NULL;
        }
        if (name)
            value = equals ? s_decode (equals + 1, pair_length - name_length - 1,
                                       ML_WEB_FORM_MAX_VALUE, error)
                           : strdup ("");
        if (name && value && ml_web_form_get (self, name)) {
            *error = "a form field is given twice";
            free (value);
            value = NULL;
        }
        if (!name || !value) {
            if (name && !value && !*error)
                *error = "out of memory";
            free (name);
            ml_web_form_destroy (&self);
            return NULL;
        }
        self->fields[self->count].name = name;
        self->fields[self->count].value = value;
        self->count++;
    }
    return self;
}

void ml_web_form_destroy (ml_web_form_t **self_p)
{
    assert (self_p);
    ml_web_form_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->count; index++) {
        free (self->fields[index].name);
        //  Values may be passwords: wipe them before the memory goes back.
        explicit_bzero (self->fields[index].value, strlen (self->fields[index].value));
        free (self->fields[index].value);
    }
    free (self);
    *self_p = NULL;
}

const char *ml_web_form_get (ml_web_form_t *self, const char *name)
{
    assert (self && name);
    for (size_t index = 0; index < self->count; index++)
        if (strcmp (self->fields[index].name, name) == 0)
            return self->fields[index].value;
    return NULL;
}

size_t ml_web_form_size (ml_web_form_t *self)
{
    assert (self);
    return self->count;
}

const char *ml_web_form_value_at (ml_web_form_t *self, size_t index)
{
    assert (self);
    return index < self->count ? self->fields[index].value : NULL;
}

int ml_web_cookie_get (const char *header, const char *name, char *value, size_t size)
{
    assert (name && value && size > 0);
    *value = 0;
    if (!header)
        return -1;
    size_t name_length = strlen (name);
    const char *cursor = header;
    while (*cursor) {
        while (*cursor == ' ' || *cursor == ';' || *cursor == '\t')
            cursor++;
        const char *end = strchr (cursor, ';');
        size_t length = end ? (size_t)(end - cursor) : strlen (cursor);
        if (length > name_length && strncmp (cursor, name, name_length) == 0 &&
            cursor[name_length] == '=') {
            const char *start = cursor + name_length + 1;
            size_t value_length = length - name_length - 1;
            while (value_length > 0 &&
                   (start[value_length - 1] == ' ' || start[value_length - 1] == '\t'))
                value_length--;
            if (value_length >= 2 && start[0] == '"' && start[value_length - 1] == '"') {
                start++;
                value_length -= 2;
            }
            if (value_length >= size)
                return -1;
            for (size_t index = 0; index < value_length; index++) {
                char character = start[index];
                if (!((character >= 'a' && character <= 'z') ||
                      (character >= 'A' && character <= 'Z') ||
                      (character >= '0' && character <= '9') || character == '-' ||
                      character == '_' || character == '.'))
                    return -1;
            }
            memcpy (value, start, value_length);
            value[value_length] = 0;
            return 0;
        }
        cursor += length;
    }
    return -1;
}

void ml_web_form_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_form: ");
    const char *error = NULL;
    const char *body = "email=a%40b.example&password=p+w%26%3D&empty=&flag";
    ml_web_form_t *form = ml_web_form_parse (body, strlen (body), &error);
    assert (form && ml_web_form_size (form) == 4);
    assert (strcmp (ml_web_form_get (form, "email"), "a@b.example") == 0);
    assert (strcmp (ml_web_form_get (form, "password"), "p w&=") == 0);
    assert (strcmp (ml_web_form_get (form, "empty"), "") == 0);
    assert (strcmp (ml_web_form_get (form, "flag"), "") == 0);
    assert (ml_web_form_get (form, "missing") == NULL);
    ml_web_form_destroy (&form);
    ml_web_form_destroy (&form);

    //  The length counts, not a NUL: a body is not a C string.
    form = ml_web_form_parse ("a=1&b=2", 3, &error);
    assert (form && ml_web_form_size (form) == 1 && !ml_web_form_get (form, "b"));
    ml_web_form_destroy (&form);
    form = ml_web_form_parse ("", 0, &error);
    assert (form && ml_web_form_size (form) == 0);
    ml_web_form_destroy (&form);

    //  UTF-8 decoded from percent escapes is kept; every malformed input refuses the form.
    form = ml_web_form_parse ("n=%C3%A9%E2%82%AC", 17, &error);
    assert (form && strcmp (ml_web_form_get (form, "n"), "\xc3\xa9\xe2\x82\xac") == 0);
    ml_web_form_destroy (&form);
    const char *bad[] = {
        "a=%",         "a=%4",           "a=%zz", "a=%4g", "a=%00",    "a=%C3",   "a=%C0%AF",
        "a=%ED%A0%80", "a=%F4%90%80%80", "a=%FF", "a=%1B", "a=%C2%85", "a=1&a=2", "a b=1",
        "a=\xc3\xa9",  "%3Cx%3E=1",      "=1",    "a=1\n", NULL};
    for (size_t index = 0; bad[index]; index++) {
        error = NULL;
        form = ml_web_form_parse (bad[index], strlen (bad[index]), &error);
        if (form || !error)
            fprintf (stderr, "accepted: %s\n", bad[index]);
        assert (!form && error);
    }
    //  A NUL inside the body (not percent-encoded) is refused too.
    form = ml_web_form_parse ("a=1\0b", 5, &error);
    assert (!form);

    //  Caps: fields, name and value sizes.
    char big[ML_WEB_FORM_MAX_VALUE + 10];
    memcpy (big, "v=", 2);
    memset (big + 2, 'x', ML_WEB_FORM_MAX_VALUE);
    form = ml_web_form_parse (big, ML_WEB_FORM_MAX_VALUE + 2, &error);
    assert (form);
    ml_web_form_destroy (&form);
    memset (big + 2, 'x', ML_WEB_FORM_MAX_VALUE + 1);
    form = ml_web_form_parse (big, ML_WEB_FORM_MAX_VALUE + 3, &error);
    assert (!form);
    char many[ML_WEB_FORM_MAX_FIELDS * 8 + 16] = "";
    for (int index = 0; index <= ML_WEB_FORM_MAX_FIELDS; index++)
        sprintf (many + strlen (many), "%sf%d=1", index ? "&" : "", index);
    form = ml_web_form_parse (many, strlen (many), &error);
    assert (!form && strstr (error, "too many"));

    assert (ml_web_utf8_valid ("plain\ttext\r\n", 12));
    assert (!ml_web_utf8_valid ("a\0b", 3));
    assert (!ml_web_utf8_valid ("\xe2\x82", 2));
    assert (ml_web_utf8_valid ("\xf0\x9f\x98\x80", 4));

    //  Cookies.
    char value[64];
    assert (ml_web_cookie_get ("a=1; ml_session=abc_-.D; b=2", "ml_session", value, sizeof value) ==
                0 &&
            strcmp (value, "abc_-.D") == 0);
    assert (ml_web_cookie_get ("xml_session=1;ml_session=\"q\"", "ml_session", value,
                               sizeof value) == 0 &&
            strcmp (value, "q") == 0);
    assert (ml_web_cookie_get ("ml_session=first; ml_session=second", "ml_session", value,
                               sizeof value) == 0 &&
            strcmp (value, "first") == 0);
    assert (ml_web_cookie_get ("ml_session=<x>", "ml_session", value, sizeof value) == -1);
    assert (ml_web_cookie_get ("a=1", "ml_session", value, sizeof value) == -1);
    assert (ml_web_cookie_get (NULL, "ml_session", value, sizeof value) == -1);
    assert (ml_web_cookie_get ("ml_session=0123456789", "ml_session", value, 5) == -1);
    assert (ml_web_cookie_get ("ml_session=", "ml_session", value, sizeof value) == -1 ||
            *value == 0);
    printf ("OK\n");
}
