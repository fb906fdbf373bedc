/*  ml_log: leveled logging to stderr, shared by every matterlink program.

    The level check happens before any formatting (ml_log macro), so a debug line costs
    nothing when debug is off. Text that came from outside (the network, a database, a
    config file) goes through ml_log_escape first. Never pass a secret to these calls.
*/
#ifndef ML_LOG_H_INCLUDED
#define ML_LOG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    ML_LOG_ERROR = 0,
    ML_LOG_WARNING = 1,
    ML_LOG_NOTICE = 2,
    ML_LOG_INFO = 3,
    ML_LOG_DEBUG = 4
} ml_log_level_t;

//  Set the process-wide level and the program name printed on each line.
void ml_log_setup (const char *ident, ml_log_level_t level);

//  Parse "error", "warning", "notice", "info" or "debug". Returns 0, or -1 if unknown.
int ml_log_level_parse (const char *text, ml_log_level_t *level);

//  Current level.
ml_log_level_t ml_log_level (void);

//  Format and write one line. Use the ml_log macro, which checks the level first.
void ml_log_write (ml_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#define ml_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= ml_log_level ())                                                            \
            ml_log_write ((level), __VA_ARGS__);                                                   \
    } while (0)

//  Copy untrusted text into buf, replacing control and non-ASCII bytes with \xNN and
//  cutting it at size - 1 bytes. Returns buf, so it can be used inside a log call.
const char *ml_log_escape (const char *untrusted, char *buf, size_t size);

void ml_log_test (bool verbose);

#endif
