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

//  Lines that a peer causes (a bad message, a refused handshake, a key used twice) go through
//  ml_log_peer, so that no peer can flood the log: each peer (an agent's firm, or a network
//  address before authentication) may write ML_LOG_PEER_BURST lines, then one more every
//  ML_LOG_PEER_REFILL_MS; lines over that are counted, and ml_log_peer_flush, called about once
//  a second, writes "PEER: N more like this suppressed" at most every ML_LOG_PEER_SUMMARY_MS
//  per peer. The table of peers is bounded (ML_LOG_PEER_SLOTS, the least recently seen peer
//  makes room, its count written first). Thread-safe.
#define ML_LOG_PEER_BURST      5
#define ML_LOG_PEER_REFILL_MS  10000
#define ML_LOG_PEER_SUMMARY_MS 10000
#define ML_LOG_PEER_SLOTS      256

#define ml_log_peer(level, peer, ...)                                                              \
    do {                                                                                           \
        if ((level) <= ml_log_level () && ml_log_peer_allow ((level), (peer)))                     \
            ml_log_write ((level), __VA_ARGS__);                                                   \
    } while (0)

//  Whether a line about this peer may be written now (it is counted if not). Use ml_log_peer.
bool ml_log_peer_allow (ml_log_level_t level, const char *peer);

//  Write the counts of suppressed lines that are due. Returns the number of lines written.
int ml_log_peer_flush (void);

//  Copy untrusted text into buf, replacing control and non-ASCII bytes with \xNN and
//  cutting it at size - 1 bytes. Returns buf, so it can be used inside a log call.
const char *ml_log_escape (const char *untrusted, char *buf, size_t size);

void ml_log_test (bool verbose);

#endif
