/*  ml_web_selftest: runs the selftest of one web class (-t NAME) or of all of them. The
    web's classes have their own runner so that the core's programs never link
    libmicrohttpd. */
#include "ml_html.h"
#include "ml_log.h"
#include "ml_web_core.h"
#include "ml_web_form.h"
#include "ml_web_pages.h"
#include "ml_web_server.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} s_test_t;

static const s_test_t s_tests[] = {
    {"ml_html", ml_html_test},
    {"ml_web_form", ml_web_form_test},
    {"ml_web_core", ml_web_core_test},
    {"ml_web_pages", ml_web_pages_test},
    {"ml_web_server", ml_web_server_test},
};

int main (int argc, char *argv[])
{
    bool verbose = false;
    const char *only = NULL;
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv[index], "-v") == 0)
            verbose = true;
        else if (strcmp (argv[index], "-t") == 0 && index + 1 < argc)
            only = argv[++index];
        else {
            fprintf (stderr, "usage: ml_web_selftest [-v] [-t CLASS]\n");
            return 2;
        }
    }
    ml_log_setup ("selftest", verbose ? ML_LOG_DEBUG : ML_LOG_WARNING);
    bool found = false;
    for (size_t index = 0; index < sizeof s_tests / sizeof s_tests[0]; index++)
        if (!only || strcmp (only, s_tests[index].name) == 0) {
            s_tests[index].test (verbose);
            found = true;
        }
    if (!found) {
        fprintf (stderr, "ml_web_selftest: no class %s\n", only);
        return 2;
    }
    return 0;
}
