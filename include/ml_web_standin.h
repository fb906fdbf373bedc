/*  ml_web_standin: what the web selftests share (test code only). A stand-in for the core's
    api socket, a ROUTER on a new ipc endpoint that gives each request the answer of the
    test's own function, with a matterlink-web server in front of it on a free port of
    127.0.0.1; and HTTP exchanges with that server, one connection each.
*/
#ifndef ML_WEB_STANDIN_H_INCLUDED
#define ML_WEB_STANDIN_H_INCLUDED

#include "ml_web_server.h"

#include <jansson.h>
#include <stddef.h>

//  The stand-in core's answer to one request (new reference).
typedef json_t *(ml_web_standin_fn)(json_t *request);

typedef struct _ml_web_standin_t ml_web_standin_t;

//  Start the stand-in core, answering with answer, at an ipc endpoint named after name and
//  this process, and a server in front of it with ml_web_standin_settings. Asserts that
//  both started (test code).
ml_web_standin_t *ml_web_standin_new (const char *name, ml_web_standin_fn *answer);

//  The server's port.
int ml_web_standin_port (ml_web_standin_t *self);

//  The stand-in core's endpoint (for a client of the core's api socket of its own).
const char *ml_web_standin_endpoint (ml_web_standin_t *self);

//  Stop the server, then the core. Idempotent; nulls the pointer.
void ml_web_standin_destroy (ml_web_standin_t **self_p);

//  The settings of the selftests' servers: plain HTTP on 127.0.0.1, a free port, two page
//  threads, small limits, core_endpoint as given.
void ml_web_standin_settings (ml_web_settings_t *settings, const char *core_endpoint);

//  One HTTP exchange on a new connection to 127.0.0.1:port: request as it goes on the wire,
//  the whole answer into response. Returns the status, or -1.
int ml_web_standin_http (int port, const char *request, char *response, size_t size);

//  The same for method and path, with a Cookie header (cookie, e.g. "ml_staff=X") and a
//  form body when not NULL; the connection is closed after the answer.
int ml_web_standin_request (int port, const char *method, const char *path, const char *cookie,
                            const char *body, char *response, size_t size);

//  The value of a hidden field of a page (asserts it is there), into value.
void ml_web_standin_field (const char *page, const char *name, char *value, size_t size);

#endif
