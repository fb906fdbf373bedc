/*  ml_web_form_fuzz: libFuzzer target for what a browser sends (web/ml_web_form.c).

    The input is parsed as a form body, and as a Cookie header. A refused form must carry a
    message; an accepted one holds at most ML_WEB_FORM_MAX_FIELDS fields, and every value it
    gives is well-formed UTF-8 within ML_WEB_FORM_MAX_VALUE bytes. A cookie value found is
    NUL-terminated within the buffer.

    Build and run: see tests/fuzz/README.md.
*/
#include "ml_web_form.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_fail (const char *what)
{
    fprintf (stderr, "ml_web_form_fuzz: %s\n", what);
    abort ();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *error = NULL;
    ml_web_form_t *form = ml_web_form_parse ((const char *)data, size, &error);
    if (!form) {
        if (!error || !*error)
            s_fail ("refused without a message");
    } else {
        if (ml_web_form_size (form) > ML_WEB_FORM_MAX_FIELDS)
            s_fail ("more fields than allowed");
        static const char *const names[] = {"csrf", "amount", "a", "email", "pick_0", ""};
        for (size_t index = 0; index < sizeof names / sizeof names[0]; index++) {
            const char *value = ml_web_form_get (form, names[index]);
            if (value && (strlen (value) > ML_WEB_FORM_MAX_VALUE ||
                          !ml_web_utf8_valid (value, strlen (value))))
                s_fail ("a value that is too long or not valid UTF-8");
        }
        ml_web_form_destroy (&form);
        ml_web_form_destroy (&form);
    }
    char *header = malloc (size + 1);
    memcpy (header, data, size);
    header[size] = 0;
    char value[64];
    memset (value, 'x', sizeof value);
    if (ml_web_cookie_get (header, "ml_staff", value, sizeof value) == 0 &&
        !memchr (value, 0, sizeof value))
        s_fail ("a cookie value without its NUL");
    free (header);
    return 0;
}
