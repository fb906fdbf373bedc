/*  ml_web_server: matterlink-web, the payer portal's HTTP server (docs/web.md).

    libmicrohttpd's threads read and write the sockets and serve the static assets; the
    pages are made by a pool of page threads, first come, first served (ml_web_workers). It
    keeps no state of its own: sessions, credentials and tokens live in the core, reached
    through its api socket (ml_web_core). Every request is bounded (connections, memory
    per connection, header sizes, body size, time) and routed through one table of paths
    with their methods; every response carries the security headers. It serves HTTPS
    itself with a certificate and key from its configuration, or plain HTTP only on a
    loopback address (for a reverse proxy on the same host, or for tests).
*/
#ifndef ML_WEB_SERVER_H_INCLUDED
#define ML_WEB_SERVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  The settings of web.cfg (docs/config.md, "web.cfg").
typedef struct {
    char listen[300];          //  web/listen: host:port, [v6]:port
    char tls_certificate[512]; //  web/tls_certificate: PEM file, or empty
    char tls_key[512];         //  web/tls_key: PEM file (owner-only), or empty
    bool proxy_https;          //  web/proxy_https: a TLS proxy on this host fronts us
    char core_endpoint[512];   //  web/core_endpoint: the core's api/endpoint
    int core_timeout_ms;       //  web/core_timeout_ms
    int threads;               //  web/threads: threads that make pages (ml_web_workers)
    int io_threads;            //  web/io_threads: libmicrohttpd's threads (sockets only)
    int max_connections;       //  web/max_connections
    int per_ip_connections;    //  web/per_ip_connections
    int connection_timeout_s;  //  web/connection_timeout_s
    int connection_memory;     //  web/connection_memory: bytes per connection (headers)
    int body_limit;            //  web/body_limit: bytes of a request body
    char title[128];           //  web/title: shown where no firm's name is known yet
    char form_key_file[512];   //  web/form_key_file: shared key of pre-session form tokens
    char tokenize_url[512];    //  web/tokenize_url: the processor's browser tokenization URL
} ml_web_settings_t;

//  Every key web.cfg may hold, NULL-terminated (for ml_config_check_file).
const char *const *ml_web_settings_keys (void);

//  Read the settings from the file at path with defaults. Returns 0, or -1 with error.
int ml_web_settings_load (ml_web_settings_t *settings, const char *path, char *error,
                          size_t error_size);

typedef struct _ml_web_server_t ml_web_server_t;

//  Start serving: check the settings (TLS files owner-only, plain HTTP only on loopback),
//  bind and start the threads. Returns the server, or NULL with the reason in error.
ml_web_server_t *ml_web_server_new (const ml_web_settings_t *settings, char *error,
                                    size_t error_size);

//  The port bound (useful with port 0).
int ml_web_server_port (ml_web_server_t *self);

//  Stop serving and destroy. Idempotent.
void ml_web_server_destroy (ml_web_server_t **self_p);

//  Whether host (an IP literal, IPv6 without brackets) is a loopback address.
bool ml_web_host_is_loopback (const char *host);

void ml_web_server_test (bool verbose);

#endif
