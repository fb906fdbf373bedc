/*  ml_log: leveled logging to stderr. See include/ml_log.h. */
#include "ml_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <assert.h>
#include <pthread.h>
#include <stdint.h>

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

//  Per-peer limits ---------------------------------------------------------------------------

typedef struct {
    char peer[100];      //  empty: a free slot
    int tokens;          //  lines the peer may still write now
    int64_t refilled_at; //  when the last token was added (monotonic ms)
    int64_t seen_at;     //  last line about the peer, written or not
    int64_t suppressed;  //  lines counted since the last summary
    int64_t summary_at;  //  when the count is due to be written
    int level;           //  the most severe level suppressed
} s_peer_t;

static s_peer_t s_peers[ML_LOG_PEER_SLOTS];
static pthread_mutex_t s_peers_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void s_peer_summary (s_peer_t *entry)
{
    if (entry->suppressed > 0 && entry->level <= (int)ml_log_level ())
        ml_log_write ((ml_log_level_t)entry->level,
                      "%s: %lld more like this suppressed (a peer may cause %d log lines, then one "
                      "per %d s)",
                      entry->peer, (long long)entry->suppressed, ML_LOG_PEER_BURST,
                      ML_LOG_PEER_REFILL_MS / 1000);
    entry->suppressed = 0;
}

bool ml_log_peer_allow (ml_log_level_t level, const char *peer)
{
    char name[sizeof s_peers[0].peer];
    snprintf (name, sizeof name, "%s", peer ? peer : "an unknown peer");
    int64_t now = s_now_ms ();
    pthread_mutex_lock (&s_peers_lock);
    s_peer_t *entry = NULL, *oldest = &s_peers[0];
    for (size_t index = 0; index < ML_LOG_PEER_SLOTS && !entry; index++) {
        s_peer_t *slot = &s_peers[index];
        if (strcmp (slot->peer, name) == 0 && *slot->peer)
            entry = slot;
        else if (!*oldest->peer)
            continue; //  a free slot is already chosen
        else if (!*slot->peer || slot->seen_at < oldest->seen_at)
            oldest = slot;
    }
    if (!entry) {
        //  A new peer takes a free slot, else the least recently seen one's (whose count is
        //  written first, so no suppressed line goes unreported).
        entry = oldest;
        if (*entry->peer)
            s_peer_summary (entry);
        memset (entry, 0, sizeof *entry);
        snprintf (entry->peer, sizeof entry->peer, "%s", name);
        entry->tokens = ML_LOG_PEER_BURST;
        entry->refilled_at = now;
    }
    entry->seen_at = now;
    if (entry->tokens < ML_LOG_PEER_BURST && now - entry->refilled_at >= ML_LOG_PEER_REFILL_MS) {
        int64_t added = (now - entry->refilled_at) / ML_LOG_PEER_REFILL_MS;
        entry->tokens = added >= ML_LOG_PEER_BURST - entry->tokens ? ML_LOG_PEER_BURST
                                                                   : entry->tokens + (int)added;
        entry->refilled_at += added * ML_LOG_PEER_REFILL_MS;
    }
    bool allowed = entry->tokens > 0;
    if (allowed) {
        if (entry->tokens-- == ML_LOG_PEER_BURST)
            entry->refilled_at = now;
        //  The count of what was suppressed comes before the next line written.
        s_peer_summary (entry);
    } else {
        if (entry->suppressed++ == 0) {
            entry->summary_at = now + ML_LOG_PEER_SUMMARY_MS;
            entry->level = (int)level;
        } else if ((int)level < entry->level)
            entry->level = (int)level;
    }
    pthread_mutex_unlock (&s_peers_lock);
    return allowed;
}

int ml_log_peer_flush (void)
{
    int written = 0;
    int64_t now = s_now_ms ();
    pthread_mutex_lock (&s_peers_lock);
    for (size_t index = 0; index < ML_LOG_PEER_SLOTS; index++) {
        s_peer_t *entry = &s_peers[index];
        if (*entry->peer && entry->suppressed > 0 && now >= entry->summary_at) {
            s_peer_summary (entry);
            written++;
        }
    }
    pthread_mutex_unlock (&s_peers_lock);
    return written;
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
    //  A peer gets its burst of lines, then is counted; other peers are not affected, and
    //  a table full of peers makes room for a new one.
    for (int line = 0; line < ML_LOG_PEER_BURST; line++)
        assert (ml_log_peer_allow (ML_LOG_WARNING, "selftest flooder"));
    assert (!ml_log_peer_allow (ML_LOG_WARNING, "selftest flooder"));
    assert (ml_log_peer_allow (ML_LOG_WARNING, "selftest other"));
    for (int peer = 0; peer < 2 * ML_LOG_PEER_SLOTS; peer++) {
        char name[32];
        snprintf (name, sizeof name, "selftest peer %d", peer);
        assert (ml_log_peer_allow (ML_LOG_WARNING, name));
    }
    assert (ml_log_peer_allow (ML_LOG_WARNING, "selftest flooder")); //  evicted, so new
    assert (ml_log_peer_flush () == 0);                              //  no count is due yet
    ml_log_setup (NULL, saved);
    printf ("OK\n");
}
