/*  ml_config_fuzz: libFuzzer target for configuration files (common/ml_config.c on czmq's
    ZPL reader): what an operator writes in agent.cfg, core.cfg or web.cfg.

    Each input is written to a file and loaded. A refusal must carry a message. A loaded file
    answers every kind of lookup: a string (NULL only for a required key that is missing, and
    then the file says why), a number within its bounds or the fallback, and the check of its
    keys against a list; destroying it twice is harmless.

    Build and run: see tests/fuzz/README.md.
*/
#include "ml_config.h"

#include <czmq.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  ml_config.c's selftest uses the test support library, which needs the whole core; the
//  selftest is never called here, so its one helper is left out.
int ml_selftest_tmpdir (char *path, size_t size)
{
    (void)path;
    (void)size;
    abort ();
}

static void s_fail (const char *what)
{
    fprintf (stderr, "ml_config_fuzz: %s\n", what);
    abort ();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static char path[64];
    if (!*path)
        snprintf (path, sizeof path, "/tmp/ml_config_fuzz.%d.cfg", (int)getpid ());
    FILE *file = fopen (path, "wb");
    if (!file)
        return 0;
    fwrite (data, 1, size, file);
    fclose (file);
    //  ml_config_parse reads what czmq's reader reads, the same way, except what czmq would cut
    //  (a NUL, a line over 1024 bytes) and a value that is only a comment (czmq keeps the
    //  comment as the value).
    zchunk_t *chunk = zchunk_new (data, size);
    zconfig_t *theirs = zconfig_chunk_load (chunk);
    zchunk_destroy (&chunk);
    zconfig_t *ours = ml_config_parse ((const char *)data, size, NULL, NULL);
    bool comparable =
        !memchr (data, 0, size) && !(size >= 3 && memcmp (data, "\xef\xbb\xbf", 3) == 0);
    for (size_t at = 0, line = 0; at < size && comparable; at++, line++) {
        if (data[at] == '\n')
            line = (size_t)-1;
        else if (line >= 1024 || (data[at] == '=' && memchr (data + at, '#', size - at)))
            comparable = false;
    }
    if (comparable && theirs && !ours)
        s_fail ("a file czmq reads is refused");
    if (comparable && theirs && ours) {
        zconfig_set_comment (theirs, NULL); //  czmq keeps the file's comments: not settings
        char *their_text = zconfig_str_save (theirs), *our_text = zconfig_str_save (ours);
        if (strcmp (their_text, our_text) != 0)
            s_fail ("a file czmq reads is read otherwise");
        free (their_text);
        free (our_text);
    }
    if (!theirs && ours && comparable)
        s_fail ("a file czmq refuses is read");
    zconfig_destroy (&theirs);
    zconfig_destroy (&ours);
    char error[512] = "";
    ml_config_t *config = ml_config_load (path, error, sizeof error);
    if (!config) {
        if (!*error)
            s_fail ("refused without a message");
        return 0;
    }
    ml_config_string (config, "database/connection", "");
    ml_config_string (config, "core/endpoint", "tcp://*:7800");
    int number = ml_config_int (config, "database/batch_rows", 1000, 1, 5000);
    if (number < 1 || number > 5000)
        s_fail ("a number outside its bounds");
    const char *required = ml_config_string (config, "store/connection", NULL);
    if (!required && !ml_config_error (config))
        s_fail ("a required key missing without a message");
    static const char *const known[] = {"database/connection", "database/batch_rows",
                                        "core/endpoint", "store/connection", NULL};
    ml_config_check_keys (config, known);
    ml_config_destroy (&config);
    ml_config_destroy (&config);
    return 0;
}
