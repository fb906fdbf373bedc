/*  ml_html: pages whose values are escaped in one place. See include/ml_html.h. */
#include "ml_html.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ml_html_t {
    char *data;
    size_t size;     //  bytes used, without the terminating NUL
    size_t capacity; //  bytes allocated
    bool failed;     //  the cap was reached or memory ran out: the page is worthless
};

ml_html_t *ml_html_new (void)
{
    ml_html_t *self = calloc (1, sizeof (ml_html_t));
    if (!self)
        return NULL;
    //  Room for a typical page (an invoice list of 40 is about 20 KB): growing by halves
    //  from 4 KB took four large reallocations per page, each making malloc sweep the
    //  small blocks that parsing the core's reply freed (malloc_consolidate: 6% of the
    //  web's time, bench/web.sh).
    self->capacity = 32768;
    self->data = malloc (self->capacity);
    if (!self->data) {
        free (self);
        return NULL;
    }
    *self->data = 0;
    return self;
}

void ml_html_destroy (ml_html_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->data);
        free (*self_p);
        *self_p = NULL;
    }
}

static int s_append (ml_html_t *self, const char *bytes, size_t length)
{
    if (self->failed)
        return -1;
    if (self->size + length + 1 > ML_HTML_MAX_PAGE) {
        self->failed = true;
        return -1;
    }
    if (self->size + length + 1 > self->capacity) {
        size_t capacity = self->capacity;
        while (capacity < self->size + length + 1)
            capacity *= 2;
        char *grown = realloc (self->data, capacity);
        if (!grown) {
            self->failed = true;
            return -1;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    memcpy (self->data + self->size, bytes, length);
    self->size += length;
    self->data[self->size] = 0;
    return 0;
}

//  The entity for a character that markup would read, or NULL.
static const char *s_entity (char character)
{
    switch (character) {
        case '&':
            return "&amp;";
        case '<':
            return "&lt;";
        case '>':
            return "&gt;";
        case '"':
            return "&quot;";
        case '\'':
            return "&#39;";
        default:
            return NULL;
    }
}

static int s_append_escaped (ml_html_t *self, const char *text)
{
    const char *run = text;
    for (const char *cursor = text; *cursor; cursor++) {
        const char *entity = s_entity (*cursor);
        if (!entity)
            continue;
        if (s_append (self, run, (size_t)(cursor - run)) != 0 ||
            s_append (self, entity, strlen (entity)) != 0)
            return -1;
        run = cursor + 1;
    }
    return s_append (self, run, strlen (run));
}

int ml_html_vadd (ml_html_t *self, const char *template, va_list args)
{
    assert (self && template);
    const char *run = template;
    for (const char *cursor = template; *cursor; cursor++) {
        if (cursor[0] == '{' && cursor[1] == '{') {
            if (s_append (self, run, (size_t)(cursor - run) + 1) != 0)
                return -1;
            run = ++cursor + 1;
        } else if (cursor[0] == '{' && cursor[1] == '}') {
            if (s_append (self, run, (size_t)(cursor - run)) != 0)
                return -1;
            const char *value = va_arg (args, const char *);
            if (value && s_append_escaped (self, value) != 0)
                return -1;
            run = ++cursor + 1;
        }
    }
    return s_append (self, run, strlen (run));
}

int ml_html_add (ml_html_t *self, const char *template, ...)
{
    va_list args;
    va_start (args, template);
    int rc = ml_html_vadd (self, template, args);
    va_end (args);
    return rc;
}

const char *ml_html_escape (const char *text, char *buf, size_t size)
{
    assert (buf && size > 0);
    size_t used = 0;
    for (const char *cursor = text ? text : ""; *cursor; cursor++) {
        const char *entity = s_entity (*cursor);
        size_t length = entity ? strlen (entity) : 1;
        //  Never cut inside a UTF-8 sequence: stop before a lead byte that does not fit
        //  with its continuation bytes.
        size_t needed = length;
        unsigned char byte = (unsigned char)*cursor;
        if (byte >= 0xC0)
            needed = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2;
        if (used + needed + 1 > size)
            break;
        memcpy (buf + used, entity ? entity : cursor, length);
        used += length;
    }
    buf[used] = 0;
    return buf;
}

void ml_html_hide (ml_html_t *self, const char *text, size_t length)
{
    assert (self && text);
    if (self->failed || !self->data || length == 0)
        return;
    for (size_t at = 0; at + length <= self->size;)
        if (memcmp (self->data + at, text, length) == 0) {
            memset (self->data + at, '*', length);
            at += length;
        } else
            at++;
}

const char *ml_html_data (ml_html_t *self)
{
    assert (self);
    return self->failed ? NULL : self->data;
}

char *ml_html_take (ml_html_t *self, size_t *size)
{
    assert (self && size);
    *size = 0;
    if (self->failed)
        return NULL;
    char *data = self->data;
    *size = self->size;
    //  The page goes on empty, with a small buffer of its own (or failed, out of memory).
    self->capacity = 256;
    self->size = 0;
    self->data = malloc (self->capacity);
    if (self->data)
        *self->data = 0;
    else
        self->failed = true;
    return data;
}

size_t ml_html_size (ml_html_t *self)
{
    assert (self);
    return self->failed ? 0 : self->size;
}

void ml_html_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_html: ");
    //  A typed card number is hidden wherever it is, in any value; the rest stays.
    {
        ml_html_t *page = ml_html_new ();
        assert (ml_html_add (page, "<input value=\"{}\"><p>{} and {}</p>", "4242 4242 4242 4242",
                             "4242 4242 4242 4242", "4242") == 0);
        ml_html_hide (page, "4242 4242 4242 4242", 19);
        ml_html_hide (page, "x", 0);
        assert (strcmp (ml_html_data (page), "<input value=\"*******************\"><p>"
                                             "******************* and 4242</p>") == 0);
        ml_html_destroy (&page);
    }
    ml_html_t *page = ml_html_new ();
    assert (page);
    assert (ml_html_add (page, "<p title=\"{}\">{}</p>", "a\"b", "<script>&'") == 0);
    assert (strcmp (ml_html_data (page), "<p title=\"a&quot;b\">&lt;script&gt;&amp;&#39;</p>") ==
            0);
    {
        //  Taken whole; the page goes on empty.
        ml_html_t *taken = ml_html_new ();
        assert (taken && ml_html_add (taken, "<b>{}</b>", "x&y") == 0);
        size_t size;
        char *text = ml_html_take (taken, &size);
        assert (text && size == strlen ("<b>x&amp;y</b>") && strcmp (text, "<b>x&amp;y</b>") == 0);
        free (text);
        assert (ml_html_size (taken) == 0 && strcmp (ml_html_data (taken), "") == 0);
        assert (ml_html_add (taken, "{}", "again") == 0 &&
                strcmp (ml_html_data (taken), "again") == 0);
        ml_html_destroy (&taken);
    }
    assert (ml_html_add (page, "{{}}{}", NULL) == 0);
    assert (
        strcmp (ml_html_data (page) + strlen ("<p title=\"a&quot;b\">&lt;script&gt;&amp;&#39;</p>"),
                "{}}") == 0);
    ml_html_destroy (&page);
    ml_html_destroy (&page);

    //  The cap fails the page, and stays failed.
    page = ml_html_new ();
    //  Each '<' becomes four bytes: this many pass the cap only once escaped.
    char *big = malloc (ML_HTML_MAX_PAGE / 4 + 1);
    assert (big);
    memset (big, '<', ML_HTML_MAX_PAGE / 4);
    big[ML_HTML_MAX_PAGE / 4] = 0;
    assert (ml_html_add (page, "{}", big) == -1);
    assert (ml_html_data (page) == NULL && ml_html_size (page) == 0);
    size_t taken_size;
    assert (ml_html_take (page, &taken_size) == NULL && taken_size == 0);
    assert (ml_html_add (page, "<p>") == -1);
    free (big);
    ml_html_destroy (&page);

    char buf[12];
    assert (strcmp (ml_html_escape ("a<b", buf, sizeof buf), "a&lt;b") == 0);
    assert (strcmp (ml_html_escape ("<<<", buf, sizeof buf), "&lt;&lt;") == 0);
    assert (strcmp (ml_html_escape ("abcdefghij\xc3\xa9", buf, sizeof buf), "abcdefghij") == 0);
    printf ("OK\n");
}
