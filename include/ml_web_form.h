/*  ml_web_form: what a browser sends, read strictly: form fields and cookies.

    A form body (application/x-www-form-urlencoded) and a query string are parsed the same
    way: "name=value" pairs joined by '&', '+' for a space and %XX for any byte. Everything
    a person or a script could send is checked here, once, before a page sees it: at most
    ML_WEB_FORM_MAX_FIELDS fields, names of ASCII letters, digits, '-' and '_' up to
    ML_WEB_FORM_MAX_NAME bytes, values up to ML_WEB_FORM_MAX_VALUE bytes of well-formed
    UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF) without NUL or control
    characters other than tab, CR and LF; a field given twice, a '%' not followed by two
    hex digits, or anything else malformed refuses the whole form.
*/
#ifndef ML_WEB_FORM_H_INCLUDED
#define ML_WEB_FORM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_web_form_t ml_web_form_t;

#define ML_WEB_FORM_MAX_FIELDS 32
#define ML_WEB_FORM_MAX_NAME   64
#define ML_WEB_FORM_MAX_VALUE  4096

//  Parse length bytes of urlencoded text (need not be NUL-terminated; may be empty).
//  Returns a new form (caller destroys it), or NULL with *error set to a static message
//  for the person (a malformed form, or out of memory).
ml_web_form_t *ml_web_form_parse (const char *text, size_t length, const char **error);

//  Destroy. Idempotent.
void ml_web_form_destroy (ml_web_form_t **self_p);

//  The decoded value of the field name (borrowed), or NULL when the form has no such field.
const char *ml_web_form_get (ml_web_form_t *self, const char *name);

//  Number of fields.
size_t ml_web_form_size (ml_web_form_t *self);

//  The decoded value of the index-th field (borrowed), or NULL past the last.
const char *ml_web_form_value_at (ml_web_form_t *self, size_t index);

//  Whether length bytes are well-formed UTF-8 text as above (no NUL, no control
//  characters but tab, CR and LF).
bool ml_web_utf8_valid (const char *bytes, size_t length);

//  Find the cookie name in a Cookie header ("a=1; b=2") and copy its value (quotes
//  removed) into value. The first cookie of that name counts. Returns 0, or -1 when the
//  header is NULL, has no such cookie, or its value does not fit or holds bytes that no
//  cookie of ours would (our values are base64url and '.').
int ml_web_cookie_get (const char *header, const char *name, char *value, size_t size);

void ml_web_form_test (bool verbose);

#endif
