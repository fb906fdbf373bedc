/*  ml_web_server: matterlink-web's HTTP server. See include/ml_web_server.h. */
#include "ml_web_server.h"
#include "ml_config.h"
#include "ml_log.h"
#include "ml_text.h"
#include "ml_web_pages.h"
#include "ml_web_staff_pay.h"
#include "ml_web_staff.h"
#include "ml_web_standin.h"
#include "ml_web_workers.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// clang-format off
static const char *const s_keys[] = {
    "web/listen", "web/tls_certificate", "web/tls_key", "web/proxy_https",
    "web/core_endpoint", "web/core_timeout_ms", "web/threads", "web/io_threads",
    "web/max_connections",
    "web/per_ip_connections", "web/connection_timeout_s", "web/connection_memory",
    "web/body_limit", "web/title", "web/form_key_file", "web/tokenize_url", NULL};
// clang-format on

const char *const *ml_web_settings_keys (void)
{
    return s_keys;
}

static int s_copy (char *target, size_t size, const char *value, const char *key, char *error,
                   size_t error_size)
{
    if (strlen (value) >= size) {
        snprintf (error, error_size, "%s: the value is longer than %zu bytes", key, size - 1);
        return -1;
    }
    strcpy (target, value);
    return 0;
}

int ml_web_settings_load (ml_web_settings_t *settings, const char *path, char *error,
                          size_t error_size)
{
    memset (settings, 0, sizeof *settings);
    ml_config_t *config = ml_config_load (path, error, error_size);
    if (!config)
        return -1;
    int rc = 0;
    rc |= s_copy (settings->listen, sizeof settings->listen,
                  ml_config_string (config, "web/listen", "127.0.0.1:8080"), "web/listen", error,
                  error_size);
    rc |= s_copy (settings->tls_certificate, sizeof settings->tls_certificate,
                  ml_config_string (config, "web/tls_certificate", ""), "web/tls_certificate",
                  error, error_size);
    rc |= s_copy (settings->tls_key, sizeof settings->tls_key,
                  ml_config_string (config, "web/tls_key", ""), "web/tls_key", error, error_size);
    settings->proxy_https = ml_config_int (config, "web/proxy_https", 0, 0, 1) == 1;
    const char *endpoint = ml_config_string (config, "web/core_endpoint", NULL);
    rc |= s_copy (settings->core_endpoint, sizeof settings->core_endpoint, endpoint ? endpoint : "",
                  "web/core_endpoint", error, error_size);
    settings->core_timeout_ms = ml_config_int (config, "web/core_timeout_ms", 5000, 100, 120000);
    settings->threads = ml_config_int (config, "web/threads", 8, 1, 256);
    settings->io_threads = ml_config_int (config, "web/io_threads", 2, 1, 64);
    settings->max_connections = ml_config_int (config, "web/max_connections", 256, 1, 65536);
    settings->per_ip_connections = ml_config_int (config, "web/per_ip_connections", 32, 1, 65536);
    settings->connection_timeout_s =
        ml_config_int (config, "web/connection_timeout_s", 30, 1, 3600);
    settings->connection_memory =
        ml_config_int (config, "web/connection_memory", 32768, 8192, 1024 * 1024);
    settings->body_limit = ml_config_int (config, "web/body_limit", 16384, 1024, 1024 * 1024);
    rc |= s_copy (settings->title, sizeof settings->title,
                  ml_config_string (config, "web/title", "Payer portal"), "web/title", error,
                  error_size);
    rc |= s_copy (settings->tokenize_url, sizeof settings->tokenize_url,
                  ml_config_string (config, "web/tokenize_url", ""), "web/tokenize_url", error,
                  error_size);
    rc |= s_copy (settings->form_key_file, sizeof settings->form_key_file,
                  ml_config_string (config, "web/form_key_file", ""), "web/form_key_file", error,
                  error_size);
    if (ml_config_error (config)) {
        snprintf (error, error_size, "%s", ml_config_error (config));
        rc = -1;
    }
    ml_config_destroy (&config);
    return rc == 0 ? 0 : -1;
}

//  A static asset compiled into the binary (web/ml_web_assets.c).
typedef struct {
    const char *path;
    const char *type;
    const char *data;
} ml_web_asset_t;
const ml_web_asset_t *ml_web_assets (void);

#define S_GET  1
#define S_POST 2

//  The route table: each path with its methods and what serves it. GET (and HEAD) never
//  change anything; every change is a POST with a CSRF token.
typedef struct {
    const char *path;
    int methods;
    ml_web_handler_fn *handler;
} s_route_t;

static const s_route_t s_routes[] = {
    {"/", S_GET, ml_web_page_root},
    {"/sign-in", S_GET | S_POST, ml_web_page_sign_in},
    {"/sign-out", S_POST, ml_web_page_sign_out},
    {"/set-password", S_GET | S_POST, ml_web_page_set_password},
    {"/forgot-password", S_GET | S_POST, ml_web_page_forgot},
    {"/confirm-email", S_GET | S_POST, ml_web_page_confirm_email},
    {"/invoices", S_GET, ml_web_page_invoices},
    {"/pay", S_GET | S_POST, ml_web_page_pay},
    {"/methods", S_GET, ml_web_page_methods},
    {"/methods/default", S_POST, ml_web_page_method_change},
    {"/methods/remove", S_POST, ml_web_page_method_change},
    {"/history", S_GET, ml_web_page_history},
    {"/history/", S_GET,
     ml_web_page_receipt}, //  /history/PAYMENT: a path ending in '/' is a prefix
    {"/autopay", S_GET, ml_web_page_autopay},
    {"/link", S_GET | S_POST, ml_web_page_link}, //  a payment link's page, no sign-in
    //  The staff app (web/staff/, include/ml_web_staff.h).
    {"/staff", S_GET, ml_web_staff_page_home},
    {"/staff/sign-in", S_GET | S_POST, ml_web_staff_page_sign_in},
    {"/staff/sign-out", S_POST, ml_web_staff_page_sign_out},
    {"/staff/accept", S_GET | S_POST, ml_web_staff_page_accept},
    {"/staff/reset", S_GET | S_POST, ml_web_staff_page_accept},
    {"/staff/forgot", S_GET | S_POST, ml_web_staff_page_forgot},
    {"/staff/account", S_GET | S_POST, ml_web_staff_page_account},
    {"/staff/users", S_GET | S_POST, ml_web_staff_page_users},
    {"/staff/audit", S_GET, ml_web_staff_page_audit},
    {"/staff/payers", S_GET | S_POST, ml_web_staff_page_payers},
    {"/staff/payers/", S_GET | S_POST, ml_web_staff_page_payer},
    {"/staff/payer-associations/", S_GET | S_POST, ml_web_staff_page_payer_associations},
    {"/staff/payer-view/", S_GET, ml_web_staff_page_payer_view},
    {"/staff/pay", S_GET, ml_web_staff_pay}, //  Make a Payment (web/staff/)
    {"/staff/pay/", S_GET | S_POST, ml_web_staff_pay},
    {"/staff/postings", S_GET, ml_web_staff_page_postings},
    {"/staff/postings/", S_GET | S_POST, ml_web_staff_page_posting}, //  /staff/postings/UUID
    {"/staff/payments/", S_GET | S_POST, ml_web_staff_page_payment}, //  /staff/payments/UUID
    {"/staff/autopay", S_GET, ml_web_staff_page_autopay},
    {"/staff/autopay/form", S_GET | S_POST, ml_web_staff_page_autopay_form},
    {"/staff/autopay/enroll", S_GET | S_POST, ml_web_staff_page_autopay_enroll},
    {"/staff/autopay/schedule", S_GET | S_POST, ml_web_staff_page_autopay_schedule},
    {"/staff/notifications", S_GET | S_POST, ml_web_staff_page_notifications},
};

//  Paths ending in '/' that are pages of their own, not prefixes: matched exactly.
static const s_route_t s_exact_routes[] = {
    {"/staff/", S_GET, ml_web_staff_page_home},
};

//  Whether path is served by a route's path: the same, or for a route ending in '/', that
//  prefix followed by one more segment (letters, digits and '-' only).
static bool s_path_match (const char *route, const char *path)
{
    size_t length = strlen (route);
    if (length < 2 || route[length - 1] != '/')
        return strcmp (route, path) == 0;
    const char *rest = path + length;
    return strncmp (route, path, length) == 0 && *rest &&
           strspn (rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
               strlen (rest);
}

static int s_method_bit (const char *method)
{
    if (strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0)
        return S_GET;
    if (strcmp (method, "POST") == 0)
        return S_POST;
    return 0;
}

//  Route a request: 200 with *route or *asset set, 404 for an unknown path, 405 for a
//  method the path does not take (allow then says which it takes).
static int s_route (const char *path, const char *method, const s_route_t **route,
                    const ml_web_asset_t **asset, const char **allow)
{
    *route = NULL;
    *asset = NULL;
    *allow = NULL;
    int bit = s_method_bit (method);
    size_t exact_count = sizeof s_exact_routes / sizeof s_exact_routes[0];
    size_t count = exact_count + sizeof s_routes / sizeof s_routes[0];
    for (size_t index = 0; index < count; index++) {
        const s_route_t *candidate =
            index < exact_count ? &s_exact_routes[index] : &s_routes[index - exact_count];
        if (index < exact_count ? strcmp (candidate->path, path) == 0
                                : s_path_match (candidate->path, path)) {
            int methods = candidate->methods;
            *allow = methods == S_GET    ? "GET, HEAD"
                     : methods == S_POST ? "POST"
                                         : "GET, HEAD, POST";
            if (!(bit & methods))
                return 405;
            *route = candidate;
            return 200;
        }
    }
    for (const ml_web_asset_t *item = ml_web_assets (); item->path; item++)
        if (strcmp (item->path, path) == 0) {
            *allow = "GET, HEAD";
            if (bit != S_GET)
                return 405;
            *asset = item;
            return 200;
        }
    return 404;
}

//  The headers of every response. dynamic pages are never cached (they hold a payer's
//  data and CSRF tokens); HSTS only where the browser reached us over HTTPS.
typedef struct {
    const char *name;
    const char *value;
} s_header_t;

#define S_CSP                                                                                      \
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "             \
    "form-action 'self'"

static size_t s_security_headers (bool secure, bool dynamic, s_header_t *headers, const char *csp)
{
    size_t count = 0;
    headers[count++] = (s_header_t){"Content-Security-Policy", csp ? csp : S_CSP};
    headers[count++] = (s_header_t){"X-Content-Type-Options", "nosniff"};
    headers[count++] = (s_header_t){"Referrer-Policy", "no-referrer"};
    headers[count++] = (s_header_t){"X-Frame-Options", "DENY"};
    headers[count++] = (s_header_t){"Cross-Origin-Opener-Policy", "same-origin"};
    headers[count++] = (s_header_t){"Cache-Control", dynamic ? "no-store" : "public, max-age=3600"};
    if (secure)
        headers[count++] = (s_header_t){"Strict-Transport-Security", "max-age=31536000"};
    return count;
}

struct _ml_web_server_t {
    ml_web_settings_t settings;
    struct MHD_Daemon *daemon;
    ml_web_workers_t *workers; //  make the pages (web/threads), first come, first served
    ml_web_core_t *core;
    unsigned char form_key[crypto_auth_KEYBYTES];
    bool secure;
    int port;
};

//  One request's state, from its first line to its completion.
typedef struct {
    char *uri; //  raw: path and query, percent escapes untouched
    bool started;
    char *body;
    size_t body_size;
    bool too_big;
    //  A page handed to the workers: its connection is suspended meanwhile, and what the
    //  page needs lives here (MHD's strings, method and cookie, stay valid until the
    //  request completes).
    ml_web_server_t *server;
    struct MHD_Connection *connection;
    const s_route_t *route;
    ml_web_exchange_t exchange;
    ml_web_form_t *query_form, *body_form;
    char path[256];
    char client[INET6_ADDRSTRLEN + 1];
    bool queued; //  handed to the workers (or refused: busy)
    bool made;   //  the page is made: send it
    bool busy;   //  the workers' queue was full: answer 503
} s_request_t;

static void s_request_destroy (s_request_t **self_p)
{
    s_request_t *request = *self_p;
    if (!request)
        return;
    //  A page made for a client that went away, or never made (the server stopped).
    ml_web_form_destroy (&request->query_form);
    ml_web_form_destroy (&request->body_form);
    ml_html_destroy (&request->exchange.page);
    if (request->body) {
        //  A body may hold a password: wipe it.
        explicit_bzero (request->body, request->body_size);
        free (request->body);
    }
    free (request->uri);
    free (request);
    *self_p = NULL;
}

//  Each connection's own state (MHD_OPTION_NOTIFY_CONNECTION): the request whose URI MHD
//  showed s_uri_seen but which has not reached s_handle. MHD calls s_completed only for a
//  request that reached the handler, so one it refused itself (a header too large, a
//  malformed line: 400, 431) would leak what s_uri_seen made, a request's worth each time
//  (found by tests/web_fuzz.py). The connection frees it when its next request comes or
//  when it closes.
typedef struct {
    s_request_t *unclaimed;
} s_connection_t;

static s_connection_t *s_connection_of (struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? (s_connection_t *)info->socket_context : NULL;
}

static void s_connection_notified (void *cls, struct MHD_Connection *connection,
                                   void **socket_context, enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = calloc (1, sizeof (s_connection_t)); //  NULL: nothing kept, as before
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        s_connection_t *state = *socket_context;
        s_request_destroy (&state->unclaimed);
        free (state);
        *socket_context = NULL;
    }
}

static void *s_uri_seen (void *cls, const char *uri, struct MHD_Connection *connection)
{
    s_request_t *request = calloc (1, sizeof (s_request_t));
    if (request)
        request->uri = strdup (uri ? uri : "");
    s_connection_t *state = s_connection_of (connection);
    if (state) {
        s_request_destroy (&state->unclaimed); //  the last one never reached the handler
        state->unclaimed = request;
    }
    return request;
}

static void s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    s_request_t *request = *con_cls;
    s_connection_t *state = s_connection_of (connection);
    if (state && state->unclaimed == request)
        state->unclaimed = NULL;
    s_request_destroy (&request);
    *con_cls = NULL;
}

//  Send a response. body is copied (MHD_RESPMEM_MUST_COPY), or kept as it is for as long as
//  it is sent (PERSISTENT: the assets compiled in), or handed over and freed when sent
//  (MUST_FREE: a page's own buffer, also freed here when no response can be made).
static enum MHD_Result s_send (ml_web_server_t *self, struct MHD_Connection *connection, int status,
                               const char *type, const char *body, size_t size,
                               enum MHD_ResponseMemoryMode mode, bool dynamic,
                               ml_web_exchange_t *exchange, const char *allow)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (size, (void *)body, mode);
    if (!response) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free ((void *)body);
        return MHD_NO;
    }
    s_header_t headers[8];
    //  A page that lets the browser reach the processor's tokenization endpoint (the pay
    //  page) names that origin in connect-src; every other page keeps default-src 'self'.
    char csp[sizeof S_CSP + 400];
    if (exchange && *exchange->connect_origin)
        snprintf (csp, sizeof csp, "%s; connect-src 'self' %s", S_CSP, exchange->connect_origin);
    size_t count = s_security_headers (self->secure, dynamic, headers,
                                       exchange && *exchange->connect_origin ? csp : NULL);
    for (size_t index = 0; index < count; index++)
        MHD_add_response_header (response, headers[index].name, headers[index].value);
    MHD_add_response_header (response, "Content-Type", type);
    if (allow)
        MHD_add_response_header (response, "Allow", allow);
    if (exchange) {
        if (*exchange->location)
            MHD_add_response_header (response, "Location", exchange->location);
        for (size_t index = 0; index < exchange->cookie_count; index++)
            MHD_add_response_header (response, "Set-Cookie", exchange->cookies[index]);
    }
    enum MHD_Result result = MHD_queue_response (connection, (unsigned)status, response);
    MHD_destroy_response (response);
    return result;
}

//  An exchange made ready for a handler or an error page.
static void s_exchange_init (ml_web_server_t *self, ml_web_exchange_t *exchange)
{
    memset (exchange, 0, sizeof *exchange);
    exchange->status = 200;
    exchange->secure = self->secure;
    exchange->core = self->core;
    exchange->form_key = self->form_key;
    exchange->title = self->settings.title;
    exchange->tokenize_url = self->settings.tokenize_url;
}

static enum MHD_Result s_send_exchange (ml_web_server_t *self, struct MHD_Connection *connection,
                                        ml_web_exchange_t *exchange, const char *allow)
{
    size_t size = 0;
    char *body = exchange->page ? ml_html_take (exchange->page, &size) : NULL;
    if (exchange->page && !body) {
        //  The page passed its cap: say so rather than send half a page.
        ml_html_destroy (&exchange->page);
        exchange->cookie_count = 0;
        *exchange->location = 0;
        ml_web_page_error (exchange, 500, "This page is too large to show.");
        body = exchange->page ? ml_html_take (exchange->page, &size) : NULL;
    }
    ml_html_destroy (&exchange->page);
    //  The page's own buffer goes to the server as it is: no copy of every page.
    return body ? s_send (self, connection, exchange->status, "text/html; charset=utf-8", body,
                          size, MHD_RESPMEM_MUST_FREE, true, exchange, allow)
                : s_send (self, connection, exchange->status, "text/html; charset=utf-8", "", 0,
                          MHD_RESPMEM_PERSISTENT, true, exchange, allow);
}

static enum MHD_Result s_error (ml_web_server_t *self, struct MHD_Connection *connection,
                                int status, const char *message, const char *allow)
{
    ml_web_exchange_t exchange;
    s_exchange_init (self, &exchange);
    ml_web_page_error (&exchange, status, message);
    return s_send_exchange (self, connection, &exchange, allow);
}

//  The peer's address: the connection's, or behind our own TLS proxy the X-Real-IP it sets.
static void s_client (ml_web_server_t *self, struct MHD_Connection *connection, char *buf,
                      size_t size)
{
    snprintf (buf, size, "unknown");
    const char *forwarded =
        self->settings.proxy_https
            ? MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "X-Real-IP")
            : NULL;
    if (forwarded && strlen (forwarded) < size &&
        strspn (forwarded, "0123456789abcdefABCDEF.:") == strlen (forwarded)) {
        snprintf (buf, size, "%s", forwarded);
        return;
    }
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *address = info->client_addr;
    if (address->sa_family == AF_INET)
        inet_ntop (AF_INET, &((const struct sockaddr_in *)address)->sin_addr, buf, (socklen_t)size);
    else if (address->sa_family == AF_INET6)
        inet_ntop (AF_INET6, &((const struct sockaddr_in6 *)address)->sin6_addr, buf,
                   (socklen_t)size);
}

//  A worker makes a page (the handler may wait for the core), then wakes its connection,
//  which sends it. The request is not touched after the resume: the connection may
//  complete (and free it) at once.
//  What the person typed goes back into a page's fields when it is refused: a card number
//  typed into the wrong field (a card goes from the browser to the processor, never here)
//  is hidden wherever the page holds it, as the core's errors hide one (ml_text.h).
typedef struct {
    ml_html_t *page;
    const char *value;
} s_typed_t;

static void s_hide_run (void *arg, size_t offset, size_t length)
{
    s_typed_t *typed = arg;
    ml_html_hide (typed->page, typed->value + offset, length);
}

static void s_hide_typed_cards (ml_web_exchange_t *exchange, ml_web_form_t *form)
{
    const char *value;
    for (size_t index = 0; exchange->page && form && (value = ml_web_form_value_at (form, index));
         index++) {
        s_typed_t typed = {exchange->page, value};
        ml_text_card_runs (value, s_hide_run, &typed);
    }
}

static void s_make_page (void *arg)
{
    s_request_t *request = arg;
    request->route->handler (&request->exchange);
    s_hide_typed_cards (&request->exchange, request->query_form);
    s_hide_typed_cards (&request->exchange, request->body_form);
    ml_web_form_destroy (&request->query_form);
    ml_web_form_destroy (&request->body_form);
    request->exchange.query = request->exchange.form = NULL;
    request->made = true;
    MHD_resume_connection (request->connection);
}

static enum MHD_Result s_handle (void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    ml_web_server_t *self = cls;
    s_request_t *request = *con_cls;
    //  The handler has it: s_completed frees it now, not the connection.
    s_connection_t *state = request ? s_connection_of (connection) : NULL;
    if (state && state->unclaimed == request)
        state->unclaimed = NULL;
    if (!request || !request->uri)
        return s_error (self, connection, 500, "The server is out of memory.", NULL);
    char *query = strchr (request->uri, '?');
    size_t path_length = query ? (size_t)(query - request->uri) : strlen (request->uri);
    char path[256];
    if (path_length >= sizeof path)
        path_length = sizeof path - 1; //  no route is that long: it stays unknown
    memcpy (path, request->uri, path_length);
    path[path_length] = 0;
    const s_route_t *route;
    const ml_web_asset_t *asset;
    const char *allow;
    int routed = s_route (path, method, &route, &asset, &allow);

    if (!request->started) {
        //  The headers are in; the body (if any) is not. Refuse what we can now, before
        //  reading a body that would be refused anyway.
        request->started = true;
        if (routed == 404)
            return s_error (self, connection, 404, "There is no such page.", NULL);
        if (routed == 405)
            return s_error (self, connection, 405, "This page does not take that method.", allow);
        const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                          MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull (length, NULL, 10) > (unsigned long long)self->settings.body_limit)
            return s_error (self, connection, 413, "The form sent is too large.", NULL);
        if (strcmp (method, "POST") == 0) {
            const char *type = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_CONTENT_TYPE);
            const char *form_type = "application/x-www-form-urlencoded";
            if (!type || strncasecmp (type, form_type, strlen (form_type)) != 0 ||
                (type[strlen (form_type)] != 0 && type[strlen (form_type)] != ';'))
                return s_error (self, connection, 415, "The form was not sent as a form.", NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        //  A chunked body has no length to check first: count it as it comes, and keep
        //  none of it past the cap.
        if (!request->too_big) {
            size_t size = request->body_size + *upload_data_size;
            if (size > (size_t)self->settings.body_limit)
                request->too_big = true;
            else {
                char *grown = realloc (request->body, size + 1);
                if (!grown)
                    request->too_big = true;
                else {
                    memcpy (grown + request->body_size, upload_data, *upload_data_size);
                    request->body = grown;
                    request->body_size = size;
                    grown[size] = 0;
                }
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (request->too_big)
        return s_error (self, connection, 413, "The form sent is too large.", NULL);
    if (asset)
        return s_send (self, connection, 200, asset->type, asset->data, strlen (asset->data),
                       MHD_RESPMEM_PERSISTENT, false, NULL, NULL);

    if (request->queued) {
        //  Back from the workers (MHD calls again once the connection is resumed).
        if (request->busy)
            return s_error (self, connection, 503,
                            "The portal is very busy. Please try again in a moment.", NULL);
        if (!request->made)
            return MHD_YES; //  not ours to answer yet (cannot happen while suspended)
        return s_send_exchange (self, connection, &request->exchange, NULL);
    }
    s_exchange_init (self, &request->exchange);
    const char *problem = NULL;
    const char *query_text = query ? query + 1 : "";
    ml_web_form_t *query_form = ml_web_form_parse (query_text, strlen (query_text), &problem);
    ml_web_form_t *body_form =
        query_form && strcmp (method, "POST") == 0
            ? ml_web_form_parse (request->body ? request->body : "", request->body_size, &problem)
        : query_form ? ml_web_form_parse ("", 0, &problem)
                     : NULL;
    const char *cookie = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Cookie");
    if (!query_form || !body_form) {
        ml_web_form_destroy (&query_form);
        ml_web_form_destroy (&body_form);
        char message[200];
        snprintf (message, sizeof message, "The request is malformed: %s.",
                  problem ? problem : "unreadable");
        return s_error (self, connection, 400, message, NULL);
    }
    if (cookie && !ml_web_utf8_valid (cookie, strlen (cookie))) {
        ml_web_form_destroy (&query_form);
        ml_web_form_destroy (&body_form);
        return s_error (self, connection, 400, "The request is malformed: a bad cookie.", NULL);
    }
    s_client (self, connection, request->client, sizeof request->client);
    snprintf (request->path, sizeof request->path, "%s", path);
    request->query_form = query_form;
    request->body_form = body_form;
    request->exchange.method = method;
    //  The request's path (a prefix route's handler reads its last segment).
    request->exchange.path = request->path;
    request->exchange.query = query_form;
    request->exchange.form = body_form;
    request->exchange.cookie_header = cookie;
    request->exchange.client = request->client;
    request->server = self;
    request->connection = connection;
    request->route = route;
    request->queued = true;
    //  Suspended before it is queued: a worker may finish and resume it at once.
    MHD_suspend_connection (connection);
    if (ml_web_workers_submit (self->workers, s_make_page, request) != 0) {
        request->busy = true;
        MHD_resume_connection (connection);
    }
    return MHD_YES;
}

static void s_mhd_log (void *cls, const char *format, va_list args)
{
    char line[600];
    vsnprintf (line, sizeof line, format, args);
    size_t length = strlen (line);
    while (length > 0 && line[length - 1] == '\n')
        line[--length] = 0;
    char shown[600];
    ml_log (ML_LOG_INFO, "http: %s", ml_log_escape (line, shown, sizeof shown));
}

bool ml_web_host_is_loopback (const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton (AF_INET, host, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    if (inet_pton (AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK (&v6);
    return false;
}

//  Parse "host:port" or "[v6]:port" into address. Returns 0, or -1 with error.
static int s_listen_address (const char *listen, struct sockaddr_storage *address, char *host,
                             size_t host_size, char *error, size_t error_size)
{
    const char *colon = strrchr (listen, ':');
    const char *start = listen, *end = colon;
    if (colon && listen[0] == '[') {
        start = listen + 1;
        end = colon > listen && colon[-1] == ']' ? colon - 1 : NULL;
    }
    char *rest = NULL;
    long port = colon ? strtol (colon + 1, &rest, 10) : -1;
    if (!colon || !end || end <= start || (size_t)(end - start) >= host_size || !*(colon + 1) ||
        *rest || port < 0 || port > 65535) {
        snprintf (error, error_size,
                  "web/listen: '%s' is not HOST:PORT (an IP address and a port, e.g. "
                  "127.0.0.1:8080 or [::1]:8080)",
                  listen);
        return -1;
    }
    memcpy (host, start, (size_t)(end - start));
    host[end - start] = 0;
    memset (address, 0, sizeof *address);
    struct sockaddr_in *v4 = (struct sockaddr_in *)address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    if (inet_pton (AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t)port);
    } else if (inet_pton (AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons ((uint16_t)port);
    } else {
        snprintf (error, error_size,
                  "web/listen: '%s' is not an IP address (names are not resolved: give the "
                  "address)",
                  host);
        return -1;
    }
    return 0;
}

//  Read a PEM file of at most 64 KiB into a new string; private files must be owner-only.
static char *s_read_pem (const char *key, const char *path, bool private, char *error,
                         size_t error_size)
{
    int fd = private ? ml_config_open_private (key, path, "TLS private key", error, error_size)
                     : open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!private)
            snprintf (error, error_size, "%s: cannot open %s: %s", key, path, strerror (errno));
        return NULL;
    }
    size_t capacity = 64 * 1024;
    char *text = calloc (1, capacity + 1);
    ssize_t length = text ? read (fd, text, capacity + 1) : -1;
    close (fd);
    if (length <= 0 || (size_t)length > capacity || !strstr (text, "-----BEGIN ")) {
        snprintf (error, error_size, "%s: %s is not a PEM file of at most 64 KiB", key, path);
        if (text)
            explicit_bzero (text, capacity + 1);
        free (text);
        return NULL;
    }
    return text;
}

static bool s_hex_key (const char *text)
{
    return strlen (text) == crypto_auth_KEYBYTES * 2 &&
           strspn (text, "0123456789abcdefABCDEF") == crypto_auth_KEYBYTES * 2;
}

//  Read the shared form key: 64 hexadecimal digits in an owner-only file.
static int s_load_form_key (const char *path, unsigned char *key, char *error, size_t error_size)
{
    char text[crypto_auth_KEYBYTES * 2 + 2];
    if (ml_config_read_secret ("web/form_key_file", path, "form key", text, sizeof text, s_hex_key,
                               "64 hexadecimal digits (make it with: head -c 32 /dev/urandom | "
                               "od -An -tx1 | tr -d ' \\n')",
                               error, error_size) != 0)
        return -1;
    int rc = sodium_hex2bin (key, crypto_auth_KEYBYTES, text, strlen (text), NULL, NULL, NULL);
    sodium_memzero (text, sizeof text);
    if (rc != 0)
        snprintf (error, error_size, "web/form_key_file: %s does not hold 64 hexadecimal digits",
                  path);
    return rc == 0 ? 0 : -1;
}

ml_web_server_t *ml_web_server_new (const ml_web_settings_t *settings, char *error,
                                    size_t error_size)
{
    assert (settings && error);
    if (sodium_init () < 0) {
        snprintf (error, error_size, "libsodium cannot start");
        return NULL;
    }
    struct sockaddr_storage address;
    char host[300];
    if (s_listen_address (settings->listen, &address, host, sizeof host, error, error_size) != 0)
        return NULL;
    bool tls = *settings->tls_certificate || *settings->tls_key;
    if (tls && !MHD_is_feature_supported (MHD_FEATURE_TLS)) {
        snprintf (error, error_size,
                  "this libmicrohttpd was built without TLS: serve plain HTTP on loopback "
                  "behind a TLS reverse proxy instead (docs/web.md)");
        return NULL;
    }
    if (tls && (!*settings->tls_certificate || !*settings->tls_key)) {
        snprintf (error, error_size,
                  "web/tls_certificate and web/tls_key go together: set both for HTTPS, or "
                  "neither");
        return NULL;
    }
    if (!tls && !ml_web_host_is_loopback (host)) {
        snprintf (error, error_size,
                  "web/listen: %s is not a loopback address, and plain HTTP is served only on "
                  "loopback: set web/tls_certificate and web/tls_key to serve HTTPS, or listen "
                  "on 127.0.0.1 behind a TLS reverse proxy on the same host (docs/web.md)",
                  host);
        return NULL;
    }
    ml_web_server_t *self = calloc (1, sizeof (ml_web_server_t));
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    self->settings = *settings;
    self->secure = tls || settings->proxy_https;
    //  The key of pre-session form tokens: shared by every web process from a file, or
    //  this process's own, drawn now (docs/web.md, "CSRF").
    if (*settings->form_key_file) {
        if (s_load_form_key (settings->form_key_file, self->form_key, error, error_size) != 0) {
            ml_web_server_destroy (&self);
            return NULL;
        }
    } else
        crypto_auth_keygen (self->form_key);
    char *certificate = NULL, *key = NULL;
    if (tls) {
        certificate =
            s_read_pem ("web/tls_certificate", settings->tls_certificate, false, error, error_size);
        key = certificate ? s_read_pem ("web/tls_key", settings->tls_key, true, error, error_size)
                          : NULL;
        if (!key) {
            free (certificate);
            ml_web_server_destroy (&self);
            return NULL;
        }
    }
    self->core = ml_web_core_new (settings->core_endpoint, settings->core_timeout_ms,
                                  (size_t)settings->threads * 2);
    //  At most one page waits per connection: more than max_connections cannot queue.
    self->workers =
        ml_web_workers_new ((size_t)settings->threads, (size_t)settings->max_connections);
    unsigned int flags =
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (address.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem options[16];
    size_t count = 0;
    //  The logger first: MHD reads its options in order, and what it says about the later
    //  ones must go to the web's log, not to standard error.
    options[count++] =
        (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)s_mhd_log, NULL};
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &address};
    //  One socket thread is MHD's internal thread itself: a pool of one is no pool (MHD
    //  warns that it ignores it).
    if (settings->io_threads > 1)
        options[count++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, settings->io_threads, NULL};
    options[count++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, settings->max_connections, NULL};
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                               settings->per_ip_connections, NULL};
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                               settings->connection_timeout_s, NULL};
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                               settings->connection_memory, NULL};
    options[count++] =
        (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)s_uri_seen, self};
    options[count++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)s_completed, self};
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                               (intptr_t)s_connection_notified, self};
    if (tls) {
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, certificate};
    }
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (self->core && self->workers)
        self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_ARRAY,
                                         options, MHD_OPTION_END);
    if (key) {
        explicit_bzero (key, strlen (key));
        free (key);
    }
    free (certificate);
    if (!self->daemon) {
        snprintf (error, error_size,
                  "cannot serve on %s (is the address this host's and the port free?)",
                  settings->listen);
        ml_web_server_destroy (&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    return self;
}

int ml_web_server_port (ml_web_server_t *self)
{
    assert (self);
    return self->port;
}

void ml_web_server_destroy (ml_web_server_t **self_p)
{
    assert (self_p);
    ml_web_server_t *self = *self_p;
    if (!self)
        return;
    //  The pages under way are made and their connections resumed first: MHD must not
    //  stop with a connection suspended. Requests that come meanwhile are told "busy".
    ml_web_workers_destroy (&self->workers);
    if (self->daemon)
        MHD_stop_daemon (self->daemon);
    ml_web_core_destroy (&self->core);
    sodium_memzero (self->form_key, sizeof self->form_key);
    free (self);
    *self_p = NULL;
}

//  The stand-in core's canned answers for the pages' ops (ml_web_standin): one payer
//  (payer@example.com, password "right-password") and three invoices in two matters.
static json_t *s_answer (json_t *request)
{
    const char *session = "SESSIONtoken_123";
    const char *op = json_string_value (json_object_get (request, "op"));
    const char *given = json_string_value (json_object_get (request, "session"));
    bool live = given && streq (given, session);
    json_t *reply = NULL;
    if (given && streq (given, "FAILING"))
        reply = json_pack ("{s:b, s:s}", "ok", 0, "error", "the core store failed");
    else if (streq (op, "portal-sign-in")) {
        const char *email = json_string_value (json_object_get (request, "email"));
        const char *password = json_string_value (json_object_get (request, "password"));
        const char *client = json_string_value (json_object_get (request, "client"));
        if (streq (email, "payer@example.com") && streq (password, "right-password") && client &&
            streq (client, "127.0.0.1"))
            reply = json_pack ("{s:b, s:s, s:s}", "ok", 1, "session", session, "csrf", "CSRFtoken");
        else
            reply = json_pack ("{s:b, s:s}", "ok", 0, "error", "no: unknown e-mail");
    } else if (streq (op, "portal-session") && live)
        reply = json_pack ("{s:b, s:s, s:{s:i, s:s, s:s}}", "ok", 1, "csrf", "CSRFtoken", "payer",
                           "payer_id", 7, "name", "Pat <Payer>", "firm_name", "Smith & Jones");
    else if (streq (op, "portal-invoices") && live)
        //  Rows as arrays of item_columns, as the core sends them (ml_table).
        reply = json_loads (
            "{\"ok\": true, \"firm_name\": \"Smith & Jones\", \"item_columns\":"
            " [\"invoice_number\", \"invoice_date\", \"due_date\", \"client_number\","
            " \"client_name\", \"matter_number\", \"matter_description\", \"currency\","
            " \"total_minor\", \"balance_minor\", \"pending_minor\", \"available_minor\"],"
            " \"items\": ["
            "[\"INV-A\", \"2026-01-05\", \"2026-02-04\", \"C1\", \"<script>x</script>\","
            " \"M1\", \"Estate\", \"USD\", 123456, 123456, 1000, 122456],"
            "[\"INV-B\", \"2026-02-01\", \"2026-03-03\", \"C1\", \"<script>x</script>\","
            " \"M2\", \"Lease\", \"USD\", 5000, 5000, 0, 5000],"
            "[\"INV-C\", \"2026-03-01\", \"2026-03-31\", \"C1\", \"<script>x</script>\","
            " \"M1\", \"Estate\", \"USD\", 99, 99, 0, 99]],"
            " \"trust_columns\": [\"matter_number\", \"matter_description\", \"currency\","
            " \"balance_minor\"],"
            " \"trust\": [[\"M1\", \"Estate\", \"USD\", 250000]]}",
            0, NULL);
    else if (streq (op, "portal-sign-out") && live) {
        const char *csrf = json_string_value (json_object_get (request, "csrf"));
        reply = csrf && streq (csrf, "CSRFtoken") ? json_pack ("{s:b}", "ok", 1)
                                                  : json_pack ("{s:b, s:s, s:b}", "ok", 0, "error",
                                                               "the form expired", "csrf", 0);
    } else
        reply =
            json_pack ("{s:b, s:s, s:b}", "ok", 0, "error", "session ended", "session_ended", 1);
    //  As the core does: a payer op asked "with_session" carries the session's part.
    if (live && json_is_true (json_object_get (request, "with_session")) &&
        json_is_true (json_object_get (reply, "ok")))
        json_object_set_new (reply, "session",
                             json_pack ("{s:s, s:{s:i, s:s, s:s}}", "csrf", "CSRFtoken", "payer",
                                        "payer_id", 7, "name", "Pat <Payer>", "firm_name",
                                        "Smith & Jones"));
    return reply;
}

typedef struct {
    int port;
    int failures; //  atomic: requests that did not get the payer's own page
} s_client_args_t;

static void *s_client_thread (void *arg)
{
    s_client_args_t *args = arg;
    char *response = malloc (64 * 1024);
    assert (response);
    for (int round = 0; round < 15; round++) {
        const char *request = "GET /invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                              "close\r\nCookie: ml_session=SESSIONtoken_123\r\n\r\n";
        if (ml_web_standin_http (args->port, request, response, 64 * 1024) != 200 ||
            !strstr (response, "INV-C") || !strstr (response, "value=\"CSRFtoken\""))
            __atomic_add_fetch (&args->failures, 1, __ATOMIC_SEQ_CST);
    }
    free (response);
    return NULL;
}

//  The pages against the stand-in core, over HTTP: sign-in (a failure in the generic
//  words, then a session cookie), the invoices grouped and escaped, sign-out with the
//  session's CSRF token relayed, and an ended session sent to /sign-in.
static void s_pages_test (void)
{
    ml_web_standin_t *standin = ml_web_standin_new ("ml_web_server_test", s_answer);
    int port = ml_web_standin_port (standin);
    size_t size = 256 * 1024;
    char *response = malloc (size), *request = malloc (4096);
    assert (response && request);
    const char *close_it = "Host: 127.0.0.1\r\nConnection: close\r\n";

    snprintf (request, 4096, "GET /sign-in HTTP/1.1\r\n%s\r\n", close_it);
    assert (ml_web_standin_http (port, request, response, size) == 200);
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_standin_field (response, "form_token", token, sizeof token);
    const char *body = "email=payer%40example.com&password=wrong";
    snprintf (request, 4096,
              "POST /sign-in HTTP/1.1\r\n%sCookie: ml_form=%s\r\nContent-Type: "
              "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\nform_token=%s&%s",
              close_it, token, strlen (body) + strlen (token) + 12, token, body);
    assert (ml_web_standin_http (port, request, response, size) == 200);
    assert (strstr (response, "The e-mail address or the password is not right."));
    assert (!strstr (response, "unknown e-mail") && !strstr (response, "ml_session="));
    assert (strstr (response, "value=\"payer@example.com\""));
    body = "email=payer%40example.com&password=right-password";
    snprintf (request, 4096,
              "POST /sign-in HTTP/1.1\r\n%sCookie: ml_form=%s\r\nContent-Type: "
              "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\nform_token=%s&%s",
              close_it, token, strlen (body) + strlen (token) + 12, token, body);
    assert (ml_web_standin_http (port, request, response, size) == 303);
    assert (strstr (response, "\r\nLocation: /invoices\r\n"));
    assert (
        strstr (response,
                "Set-Cookie: ml_session=SESSIONtoken_123; Path=/; HttpOnly; SameSite=Strict\r\n"));

    snprintf (request, 4096,
              "GET /invoices HTTP/1.1\r\n%sCookie: ml_session=SESSIONtoken_123\r\n\r\n", close_it);
    assert (ml_web_standin_http (port, request, response, size) == 200);
    assert (strstr (response, "<p class=\"firm\">Smith &amp; Jones</p>"));
    assert (strstr (response, "&lt;script&gt;x&lt;/script&gt;") && !strstr (response, "<script>"));
    assert (strstr (response, "Pat &lt;Payer&gt;"));
    assert (strstr (response, "1,234.56 USD") && strstr (response, "1,224.56 USD") &&
            strstr (response, "10.00 USD pending") && strstr (response, "0.99 USD"));
    assert (strstr (response, "2,500.00 USD")); //  the trust ledger
    char *matter_1 = strstr (response, "Matter M1: Estate");
    char *matter_2 = strstr (response, "Matter M2: Lease");
    char *invoice_a = strstr (response, "INV-A"), *invoice_b = strstr (response, "INV-B");
    char *invoice_c = strstr (response, "INV-C");
    assert (matter_1 && matter_2 && invoice_a && invoice_b && invoice_c);
    assert (matter_1 < invoice_a && invoice_a < invoice_c && invoice_c < matter_2 &&
            matter_2 < invoice_b);
    char csrf[100];
    ml_web_standin_field (response, "csrf", csrf, sizeof csrf);
    assert (streq (csrf, "CSRFtoken"));

    //  Sign-out relays the form's token: a wrong one is refused by the core.
    snprintf (request, 4096,
              "POST /sign-out HTTP/1.1\r\n%sCookie: ml_session=SESSIONtoken_123\r\nContent-Type: "
              "application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\ncsrf=wrong",
              close_it);
    assert (ml_web_standin_http (port, request, response, size) == 403);
    assert (!strstr (response, "Set-Cookie"));
    snprintf (request, 4096,
              "POST /sign-out HTTP/1.1\r\n%sCookie: ml_session=SESSIONtoken_123\r\nContent-Type: "
              "application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\r\ncsrf=CSRFtoken",
              close_it);
    assert (ml_web_standin_http (port, request, response, size) == 303);
    assert (strstr (response, "\r\nLocation: /sign-in\r\n") &&
            strstr (response, "Set-Cookie: ml_session=; Path=/; HttpOnly; SameSite=Strict; "
                              "Max-Age=0\r\n"));

    //  An ended session goes to /sign-in, and its cookie goes.
    snprintf (request, 4096, "GET /invoices HTTP/1.1\r\n%sCookie: ml_session=ENDED\r\n\r\n",
              close_it);
    assert (ml_web_standin_http (port, request, response, size) == 303);
    assert (strstr (response, "\r\nLocation: /sign-in\r\n") && strstr (response, "Max-Age=0"));

    //  A core that fails keeps the session: 503, and the cookie stays.
    snprintf (request, 4096, "GET /invoices HTTP/1.1\r\n%sCookie: ml_session=FAILING\r\n\r\n",
              close_it);
    assert (ml_web_standin_http (port, request, response, size) == 503);
    assert (!strstr (response, "Set-Cookie") && strstr (response, "could not answer"));

    //  Concurrent requests share the pool of sockets to the core: each gets its own answer.
    pthread_t threads[6];
    s_client_args_t args = {port, 0};
    for (size_t index = 0; index < 6; index++)
        assert (pthread_create (&threads[index], NULL, s_client_thread, &args) == 0);
    for (size_t index = 0; index < 6; index++)
        pthread_join (threads[index], NULL);
    assert (args.failures == 0);

    free (request);
    free (response);
    ml_web_standin_destroy (&standin);
}

void ml_web_server_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_web_server: ");
    //  The router: paths, methods, 404 and 405 with Allow.
    const s_route_t *route;
    const ml_web_asset_t *asset;
    const char *allow;
    assert (s_route ("/sign-in", "GET", &route, &asset, &allow) == 200 &&
            route->handler == ml_web_page_sign_in);
    assert (s_route ("/sign-in", "POST", &route, &asset, &allow) == 200);
    assert (s_route ("/sign-in", "HEAD", &route, &asset, &allow) == 200);
    assert (s_route ("/sign-in", "PUT", &route, &asset, &allow) == 405 &&
            strcmp (allow, "GET, HEAD, POST") == 0);
    assert (s_route ("/invoices", "POST", &route, &asset, &allow) == 405 &&
            strcmp (allow, "GET, HEAD") == 0);
    assert (s_route ("/sign-out", "GET", &route, &asset, &allow) == 405 &&
            strcmp (allow, "POST") == 0);
    assert (s_route ("/static/portal.css", "GET", &route, &asset, &allow) == 200 && asset &&
            strcmp (asset->type, "text/css; charset=utf-8") == 0);
    assert (s_route ("/static/portal.css", "POST", &route, &asset, &allow) == 405);
    assert (s_route ("/nowhere", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/sign-in/", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/%73ign-in", "GET", &route, &asset, &allow) == 404);
    //  A prefix route takes one more plain segment, nothing else.
    assert (s_route ("/history/0b9e-4f", "GET", &route, &asset, &allow) == 200 &&
            route->handler == ml_web_page_receipt);
    assert (s_route ("/history", "GET", &route, &asset, &allow) == 200 &&
            route->handler == ml_web_page_history);
    assert (s_route ("/history/", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/history/a/b", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/history/a.b", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/history/x", "POST", &route, &asset, &allow) == 405);
    //  The staff app's home is "/staff/" itself, not a prefix.
    assert (s_route ("/staff/", "GET", &route, &asset, &allow) == 200 &&
            route->handler == ml_web_staff_page_home);
    assert (s_route ("/staff/x", "GET", &route, &asset, &allow) == 404);
    assert (s_route ("/staff/users", "GET", &route, &asset, &allow) == 200 &&
            route->handler == ml_web_staff_page_users);
    //  No GET route is a state change: every route that takes POST is a form page.
    for (size_t index = 0; index < sizeof s_routes / sizeof s_routes[0]; index++)
        assert (s_routes[index].methods & (S_GET | S_POST));

    //  The security headers, with HSTS only over HTTPS.
    s_header_t headers[8];
    size_t count = s_security_headers (false, true, headers, NULL);
    bool csp = false, nosniff = false, referrer = false, no_store = false;
    for (size_t index = 0; index < count; index++) {
        assert (strcmp (headers[index].name, "Strict-Transport-Security") != 0);
        csp |= strcmp (headers[index].name, "Content-Security-Policy") == 0 &&
               strstr (headers[index].value, "frame-ancestors 'none'") &&
               !strstr (headers[index].value, "unsafe-inline");
        nosniff |= strcmp (headers[index].value, "nosniff") == 0;
        referrer |= strcmp (headers[index].name, "Referrer-Policy") == 0 &&
                    strcmp (headers[index].value, "no-referrer") == 0;
        no_store |= strcmp (headers[index].value, "no-store") == 0;
    }
    assert (csp && nosniff && referrer && no_store);
    count = s_security_headers (true, false, headers, NULL);
    assert (strcmp (headers[count - 1].name, "Strict-Transport-Security") == 0);
    for (size_t index = 0; index < count; index++)
        assert (strcmp (headers[index].value, "no-store") != 0);

    //  Loopback only for plain HTTP.
    assert (ml_web_host_is_loopback ("127.0.0.1") && ml_web_host_is_loopback ("127.8.9.1"));
    assert (ml_web_host_is_loopback ("::1"));
    assert (!ml_web_host_is_loopback ("0.0.0.0") && !ml_web_host_is_loopback ("::"));
    assert (!ml_web_host_is_loopback ("10.0.0.1") && !ml_web_host_is_loopback ("localhost"));
    struct sockaddr_storage address;
    char host[64], error[400];
    assert (s_listen_address ("127.0.0.1:8080", &address, host, sizeof host, error, sizeof error) ==
                0 &&
            strcmp (host, "127.0.0.1") == 0);
    assert (s_listen_address ("[::1]:0", &address, host, sizeof host, error, sizeof error) == 0 &&
            strcmp (host, "::1") == 0 && address.ss_family == AF_INET6);
    assert (s_listen_address ("127.0.0.1", &address, host, sizeof host, error, sizeof error) == -1);
    assert (s_listen_address ("127.0.0.1:99999", &address, host, sizeof host, error,
                              sizeof error) == -1);
    assert (s_listen_address ("example.com:80", &address, host, sizeof host, error, sizeof error) ==
            -1);

    ml_web_settings_t settings;
    ml_web_standin_settings (&settings, "ipc:///tmp/ml_web_server_test_nobody.sock");
    strcpy (settings.listen, "0.0.0.0:0");
    settings.core_timeout_ms = 100;
    assert (ml_web_server_new (&settings, error, sizeof error) == NULL &&
            strstr (error, "loopback") && strstr (error, "reverse proxy"));
    strcpy (settings.listen, "127.0.0.1:0");
    ml_web_server_t *server = ml_web_server_new (&settings, error, sizeof error);
    assert (server && ml_web_server_port (server) > 0);
    ml_web_server_destroy (&server);
    ml_web_server_destroy (&server);

    //  Two servers with one form key file take each other's form tokens; a file others
    //  may read, or one that is not a key, is refused.
    char key_path[128];
    snprintf (key_path, sizeof key_path, "/tmp/ml_web_server_test_%d.key", getpid ());
    FILE *file = fopen (key_path, "w");
    assert (file);
    fprintf (file, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    fclose (file);
    chmod (key_path, 0644);
    strcpy (settings.form_key_file, key_path);
    assert (ml_web_server_new (&settings, error, sizeof error) == NULL &&
            strstr (error, "chmod 600"));
    chmod (key_path, 0600);
    ml_web_server_t *first = ml_web_server_new (&settings, error, sizeof error);
    ml_web_server_t *second = ml_web_server_new (&settings, error, sizeof error);
    assert (first && second);
    assert (sodium_memcmp (first->form_key, second->form_key, sizeof first->form_key) == 0);
    char token[ML_WEB_FORM_TOKEN_SIZE];
    ml_web_form_token_make (first->form_key, token, sizeof token);
    assert (ml_web_form_token_valid (second->form_key, token));
    ml_web_server_destroy (&first);
    ml_web_server_destroy (&second);
    file = fopen (key_path, "w");
    fprintf (file, "not a key\n");
    fclose (file);
    assert (ml_web_server_new (&settings, error, sizeof error) == NULL &&
            strstr (error, "64 hexadecimal digits"));
    unlink (key_path);
    *settings.form_key_file = 0;
    s_pages_test ();
    printf ("OK\n");
}
