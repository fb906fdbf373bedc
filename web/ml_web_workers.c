/*  ml_web_workers: page threads fed from one queue. See include/ml_web_workers.h. */
#include "ml_web_workers.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define S_MAX_THREADS 256

typedef struct s_job_t {
    ml_web_job_fn *run;
    void *arg;
    struct s_job_t *next;
} s_job_t;

struct _ml_web_workers_t {
    pthread_mutex_t mutex;
    pthread_cond_t ready; //  a job was queued, or stopping was set
    s_job_t *head, *tail; //  first come, first served
    size_t waiting, max_waiting;
    bool stopping;
    pthread_t threads[S_MAX_THREADS];
    size_t count;
};

static void *s_worker (void *arg)
{
    ml_web_workers_t *self = arg;
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (!self->head && !self->stopping)
            pthread_cond_wait (&self->ready, &self->mutex);
        s_job_t *job = self->head;
        if (!job)
            break; //  stopping, and nothing is left to run
        self->head = job->next;
        if (!self->head)
            self->tail = NULL;
        self->waiting--;
        pthread_mutex_unlock (&self->mutex);
        job->run (job->arg);
        free (job);
        pthread_mutex_lock (&self->mutex);
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

ml_web_workers_t *ml_web_workers_new (size_t count, size_t max_waiting)
{
    if (count < 1 || count > S_MAX_THREADS || max_waiting < 1)
        return NULL;
    ml_web_workers_t *self = calloc (1, sizeof (ml_web_workers_t));
    if (!self)
        return NULL;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->ready, NULL);
    self->max_waiting = max_waiting;
    for (; self->count < count; self->count++)
        if (pthread_create (&self->threads[self->count], NULL, s_worker, self) != 0)
            break;
    if (self->count < count) {
        ml_web_workers_destroy (&self);
        return NULL;
    }
    return self;
}

int ml_web_workers_submit (ml_web_workers_t *self, ml_web_job_fn *run, void *arg)
{
    assert (self && run);
    s_job_t *job = calloc (1, sizeof (s_job_t));
    if (!job)
        return -1;
    job->run = run;
    job->arg = arg;
    pthread_mutex_lock (&self->mutex);
    bool queued = !self->stopping && self->waiting < self->max_waiting;
    if (queued) {
        if (self->tail)
            self->tail->next = job;
        else
            self->head = job;
        self->tail = job;
        self->waiting++;
        pthread_cond_signal (&self->ready);
    }
    pthread_mutex_unlock (&self->mutex);
    if (!queued)
        free (job);
    return queued ? 0 : -1;
}

size_t ml_web_workers_waiting (ml_web_workers_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    size_t waiting = self->waiting;
    pthread_mutex_unlock (&self->mutex);
    return waiting;
}

void ml_web_workers_destroy (ml_web_workers_t **self_p)
{
    assert (self_p);
    ml_web_workers_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    self->stopping = true;
    pthread_cond_broadcast (&self->ready);
    pthread_mutex_unlock (&self->mutex);
    for (size_t index = 0; index < self->count; index++)
        pthread_join (self->threads[index], NULL);
    assert (!self->head); //  the threads ran every job before they ended
    pthread_cond_destroy (&self->ready);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

//  Selftest.
typedef struct {
    pthread_mutex_t mutex;
    size_t order[64];
    size_t done;
    volatile bool release;
} s_test_log_t;

typedef struct {
    s_test_log_t *log;
    size_t number;
} s_test_job_t;

static void s_test_job (void *arg)
{
    s_test_job_t *job = arg;
    while (job->number == 0 && !job->log->release)
        usleep (1000); //  the first job holds the only thread until released
    pthread_mutex_lock (&job->log->mutex);
    job->log->order[job->log->done++] = job->number;
    pthread_mutex_unlock (&job->log->mutex);
}

void ml_web_workers_test (bool verbose)
{
    if (verbose)
        printf (" * ml_web_workers: ");
    assert (!ml_web_workers_new (0, 10));
    assert (!ml_web_workers_new (S_MAX_THREADS + 1, 10));
    assert (!ml_web_workers_new (1, 0));
    //  One thread: jobs run in the order they came; past max_waiting a job is refused.
    s_test_log_t log = {.done = 0};
    pthread_mutex_init (&log.mutex, NULL);
    s_test_job_t jobs[8];
    ml_web_workers_t *workers = ml_web_workers_new (1, 5);
    assert (workers);
    for (size_t index = 0; index < 8; index++)
        jobs[index] = (s_test_job_t){&log, index};
    assert (ml_web_workers_submit (workers, s_test_job, &jobs[0]) == 0);
    while (ml_web_workers_waiting (workers) > 0)
        usleep (1000); //  the thread took job 0 and holds it
    for (size_t index = 1; index <= 5; index++)
        assert (ml_web_workers_submit (workers, s_test_job, &jobs[index]) == 0);
    assert (ml_web_workers_submit (workers, s_test_job, &jobs[6]) == -1);
    assert (ml_web_workers_waiting (workers) == 5);
    log.release = true;
    //  Destroy runs what was queued before the threads end.
    ml_web_workers_destroy (&workers);
    ml_web_workers_destroy (&workers);
    assert (log.done == 6);
    for (size_t index = 0; index < 6; index++)
        assert (log.order[index] == index);
    //  Many threads: every job runs once.
    workers = ml_web_workers_new (8, 64);
    assert (workers);
    log.done = 0;
    for (size_t round = 0; round < 7; round++)
        assert (ml_web_workers_submit (workers, s_test_job, &jobs[1 + round % 7]) == 0);
    ml_web_workers_destroy (&workers);
    assert (log.done == 7);
    pthread_mutex_destroy (&log.mutex);
    if (verbose)
        printf ("OK\n");
}
