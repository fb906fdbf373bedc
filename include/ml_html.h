/*  ml_html: builds HTML pages where every value is escaped in one place.

    A page is made of templates (string literals of trusted markup) whose "{}" holes are
    filled with values, each escaped (& < > " ' to entities) before it lands in the page.
    Nothing else adds text to a page, so no page can build markup from an unescaped value.
    The page's size is capped: a value that would pass the cap fails the page, not the
    server.
*/
#ifndef ML_HTML_H_INCLUDED
#define ML_HTML_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_html_t ml_html_t;

#define ML_HTML_MAX_PAGE (1024 * 1024)

//  A new, empty page. Returns NULL if out of memory.
ml_html_t *ml_html_new (void);

void ml_html_destroy (ml_html_t **self_p);

//  Append template, replacing each "{}" by the next argument (const char *, escaped; NULL
//  adds nothing). The arguments must be as many as the holes. "{{" is a literal "{".
//  Returns 0, or -1 when the page would pass ML_HTML_MAX_PAGE (the page is then failed and
//  every later call returns -1).
int ml_html_add (ml_html_t *self, const char *template, ...);
int ml_html_vadd (ml_html_t *self, const char *template, va_list args);

//  Escape text into buf (& < > " ' to entities), cut at a character boundary to fit.
//  Returns buf.
const char *ml_html_escape (const char *text, char *buf, size_t size);

//  Turn every copy of the length bytes of text in the page so far into as many '*'. For
//  what must not be shown back (a card number someone typed into a form field, sent back
//  in that field). length 0 does nothing.
void ml_html_hide (ml_html_t *self, const char *text, size_t length);

//  The page so far (borrowed, NUL-terminated) and its length; NULL once failed.
const char *ml_html_data (ml_html_t *self);
size_t ml_html_size (ml_html_t *self);

//  Take the page's text (the caller frees it; NUL-terminated, *size bytes before the NUL),
//  leaving the page empty: a page handed to the HTTP server whole, without a copy. NULL
//  (and *size 0) once failed.
char *ml_html_take (ml_html_t *self, size_t *size);

void ml_html_test (bool verbose);

#endif
