/*  ml_web_core: matterlink-web's client of the core's API (docs/web.md, the api socket).

    A pool of ZeroMQ DEALER sockets connected to the core's api endpoint. A request takes a
    socket from the pool, so each socket serves one request at a time (ZeroMQ sockets are
    not thread-safe, but may move between threads: the pool's mutex is the memory barrier),
    sends [empty][JSON] and waits for [empty][JSON] at most timeout_ms. A socket whose
    request timed out or got a malformed reply is destroyed, never put back: a late reply
    would otherwise answer the next request on it. Thread-safe.
*/
#ifndef ML_WEB_CORE_H_INCLUDED
#define ML_WEB_CORE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _ml_web_core_t ml_web_core_t;

//  The most a reply may hold; a larger one is refused as malformed.
#define ML_WEB_CORE_MAX_REPLY (4 * 1024 * 1024)

//  A client of the core at endpoint that keeps at most pool_size idle sockets. Returns
//  NULL if out of memory.
ml_web_core_t *ml_web_core_new (const char *endpoint, int timeout_ms, size_t pool_size);

//  Destroy, closing every socket. Idempotent. No request may be running.
void ml_web_core_destroy (ml_web_core_t **self_p);

//  Send request (borrowed) and wait for the reply. Returns the reply object (new
//  reference: {"ok": true, ...} or {"ok": false, "error": ...}), or NULL when the core did
//  not answer in time or answered something that is not a JSON object.
json_t *ml_web_core_call (ml_web_core_t *self, json_t *request);

//  Sockets idle in the pool (for tests).
size_t ml_web_core_idle (ml_web_core_t *self);

void ml_web_core_test (bool verbose);

#endif
