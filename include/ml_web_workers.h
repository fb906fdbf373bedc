/*  ml_web_workers: the threads that make matterlink-web's pages, fed in arrival order.

    A page waits for the core (ml_web_core), so the thread that makes it is busy for the
    whole round trip. libmicrohttpd's own threads each own the connections they accepted;
    were pages made there, a thread that happened to accept 40 connections would serve each
    a fifth as often as one that accepted 8 (measured: p99 six times p50 at 200 busy
    connections, bench/RESULTS.md). So libmicrohttpd's threads only read and write sockets:
    a request for a page suspends its connection and joins one queue, and these threads take
    requests from it first come, first served, whatever connection they came on.
*/
#ifndef ML_WEB_WORKERS_H_INCLUDED
#define ML_WEB_WORKERS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_web_workers_t ml_web_workers_t;

//  A job: run with its argument on one of the threads.
typedef void (ml_web_job_fn) (void *arg);

//  Start count threads (1 to 256) with room for at most max_waiting jobs that no thread has
//  taken yet. Returns NULL when the threads cannot start.
ml_web_workers_t *ml_web_workers_new (size_t count, size_t max_waiting);

//  Queue a job. Returns 0, or -1 (nothing queued: the caller answers the request itself)
//  when max_waiting jobs wait already, memory is short, or the workers are stopping.
int ml_web_workers_submit (ml_web_workers_t *self, ml_web_job_fn *job, void *arg);

//  Jobs queued and not yet taken (for tests).
size_t ml_web_workers_waiting (ml_web_workers_t *self);

//  Refuse new jobs, run every job already queued, join the threads, destroy. Idempotent.
void ml_web_workers_destroy (ml_web_workers_t **self_p);

void ml_web_workers_test (bool verbose);

#endif
