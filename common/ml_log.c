/*  ml_log: leveled logging to stderr. See include/ml_log.h. */
#include "ml_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <assert.h>

//  The level and ident are the only process-wide state in matterlink: every actor of a
//  process logs to the same stream with the same threshold. Atomic, so threads may read it.
static _Atomic int s_level = ML_LOG_NOTICE;
static char s_ident[32] = "matterlink";

static const char *s_level_names[] = {"error", "warning", "notice", "info", "debug"};

void ml_log_setup (const char *ident, ml_log_level_t level)
{
    if (ident)
        snprintf (s_ident, sizeof s_ident, "%s", ident);
    atomic_store (&s_level, (int)level);
}

int ml_log_level_parse (const char *text, ml_log_level_t *level)
{
    for (int index = 0; index <= ML_LOG_DEBUG; index++)
        if (text && strcmp (text, s_level_names[index]) == 0) {
            *level = (ml_log_level_t)index;
            return 0;
        }
    return -1;
}

ml_log_level_t ml_log_level (void)
{
    return (ml_log_level_t)atomic_load (&s_level);
}

void ml_log_write (ml_log_level_t level, const char *format, ...)
{
    char line[2048];
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    int prefix = snprintf (line, sizeof line,
                           "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", utc.tm_year + 1900,
                           utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                           now.tv_nsec / 1000000, s_ident, s_level_names[level]);
    va_list args;
    va_start (args, format);
    vsnprintf (line + prefix, sizeof line - (size_t)prefix, format, args);
    va_end (args);
    //  One fputs per line keeps lines from different threads whole.
    size_t length = strlen (line);
    if (length < sizeof line - 1) {
        line[length] = '\n';
        line[length + 1] = 0;
    } else
        line[sizeof line - 2] = '\n';
    fputs (line, stderr);
}

const char *ml_log_escape (const char *untrusted, char *buf, size_t size)
{
    assert (buf && size > 0);
    size_t out = 0;
    for (const unsigned char *in = (const unsigned char *)(untrusted ? untrusted : "(null)"); *in;
         in++) {
        if (*in >= 0x20 && *in < 0x7f && *in != '\\') {
            if (out + 1 >= size)
                break;
            buf[out++] = (char)*in;
        } else {
            if (out + 4 >= size)
                break;
            snprintf (buf + out, 5, "\\x%02x", *in);
            out += 4;
        }
    }
    buf[out] = 0;
    return buf;
}

void ml_log_test (bool verbose)
{
    printf (" * ml_log: ");
    char buf[16];
    assert (strcmp (ml_log_escape ("ab\ncd", buf, sizeof buf), "ab\\x0acd") == 0);
    assert (strcmp (ml_log_escape ("0123456789abcdefghij", buf, sizeof buf), "0123456789abcde") ==
            0);
    assert (strcmp (ml_log_escape (NULL, buf, sizeof buf), "(null)") == 0);
    ml_log_level_t level;
    assert (ml_log_level_parse ("debug", &level) == 0 && level == ML_LOG_DEBUG);
    assert (ml_log_level_parse ("loud", &level) == -1);
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_ERROR);
    ml_log (ML_LOG_DEBUG, "not formatted: %s", buf);
    ml_log_setup (NULL, saved);
    printf ("OK\n");
}
