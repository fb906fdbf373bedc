/*  ml_web_standin: what the web selftests share. See include/ml_web_standin.h. */
#include "ml_web_standin.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct _ml_web_standin_t {
    ml_web_standin_fn *answer;
    zactor_t *core;
    ml_web_server_t *server;
    char endpoint[128];
};

static void s_core (zsock_t *pipe, void *args)
{
    ml_web_standin_t *self = (ml_web_standin_t *)args;
    zsock_t *router = zsock_new_router (self->endpoint);
    assert (router);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zmsg_t *message = zmsg_recv (router);
        if (!message)
            break;
        zframe_t *identity = zmsg_pop (message);
        zframe_t *empty = zmsg_pop (message);
        char *text = zmsg_popstr (message);
        json_t *request = json_loads (text, 0, NULL);
        json_t *reply = self->answer (request);
        char *reply_text = json_dumps (reply, JSON_COMPACT);
        zmsg_t *answer = zmsg_new ();
        zmsg_append (answer, &identity);
        zmsg_append (answer, &empty);
        zmsg_addstr (answer, reply_text);
        zmsg_send (&answer, router);
        free (reply_text);
        json_decref (reply);
        json_decref (request);
        zstr_free (&text);
        zmsg_destroy (&message);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

void ml_web_standin_settings (ml_web_settings_t *settings, const char *core_endpoint)
{
    memset (settings, 0, sizeof *settings);
    strcpy (settings->listen, "127.0.0.1:0");
    snprintf (settings->core_endpoint, sizeof settings->core_endpoint, "%s", core_endpoint);
    settings->core_timeout_ms = 2000;
    settings->threads = 2;
    settings->max_connections = 8;
    settings->per_ip_connections = 8;
    settings->connection_timeout_s = 5;
    settings->connection_memory = 32768;
    settings->body_limit = 16384;
    strcpy (settings->title, "Portal");
}

ml_web_standin_t *ml_web_standin_new (const char *name, ml_web_standin_fn *answer)
{
    ml_web_standin_t *self = calloc (1, sizeof (ml_web_standin_t));
    assert (self);
    self->answer = answer;
    snprintf (self->endpoint, sizeof self->endpoint, "ipc:///tmp/%s_%d.sock", name, getpid ());
    self->core = zactor_new (s_core, self);
    assert (self->core);
    ml_web_settings_t settings;
    ml_web_standin_settings (&settings, self->endpoint);
    char error[400];
    self->server = ml_web_server_new (&settings, error, sizeof error);
    assert (self->server);
    return self;
}

int ml_web_standin_port (ml_web_standin_t *self)
{
    return ml_web_server_port (self->server);
}

const char *ml_web_standin_endpoint (ml_web_standin_t *self)
{
    return self->endpoint;
}

void ml_web_standin_destroy (ml_web_standin_t **self_p)
{
    assert (self_p);
    ml_web_standin_t *self = *self_p;
    if (!self)
        return;
    ml_web_server_destroy (&self->server);
    zactor_destroy (&self->core);
    free (self);
    *self_p = NULL;
}

int ml_web_standin_http (int port, const char *request, char *response, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    if (fd < 0 || connect (fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    size_t length = strlen (request), sent = 0;
    while (sent < length) {
        ssize_t rc = send (fd, request + sent, length - sent, MSG_NOSIGNAL);
        if (rc <= 0)
            break;
        sent += (size_t)rc;
    }
    size_t used = 0;
    ssize_t rc;
    while (used + 1 < size && (rc = recv (fd, response + used, size - used - 1, 0)) > 0)
        used += (size_t)rc;
    response[used] = 0;
    close (fd);
    int status = -1;
    sscanf (response, "HTTP/1.1 %d", &status);
    return status;
}

int ml_web_standin_request (int port, const char *method, const char *path, const char *cookie,
                            const char *body, char *response, size_t size)
{
    char request[8192];
    snprintf (request, sizeof request,
              "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
              "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
              method, path, cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "",
              body ? strlen (body) : 0, body ? body : "");
    return ml_web_standin_http (port, request, response, size);
}

void ml_web_standin_field (const char *page, const char *name, char *value, size_t size)
{
    char marker[100];
    snprintf (marker, sizeof marker, "name=\"%s\" value=\"", name);
    const char *start = strstr (page, marker);
    assert (start);
    start += strlen (marker);
    size_t length = strcspn (start, "\"");
    assert (length < size);
    memcpy (value, start, length);
    value[length] = 0;
}
