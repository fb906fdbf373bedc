/*  ml_api_client: send one JSON request to the core's admin or API socket and print the
    reply, for the end-to-end tests (python3-zmq is not needed). The socket is a REQ, so the
    frames are those matterlink-web's DEALER sends: an empty delimiter and the request.

    usage: ml_api_client ENDPOINT JSON [KIND]     exit 0 with the reply on stdout, 1 without one
           ml_api_client ENDPOINT -                 one request a line from stdin, one reply a
                                                    line on stdout ("!no reply" when none came)

    KIND (admin or api) sends the request as another core node forwards it to a node's forward
    socket (core/forward, docs/multinode.md): that frame, then the request.
    ML_API_CLIENT_SERVER_KEY=KEY connects over CURVE with a new key of its own, pinning KEY (a
    forward socket must refuse it); ML_API_CLIENT_TIMEOUT_MS waits that long (10000).
*/
#include <czmq.h>

//  Requests from stdin, a line each (at most 4 MB), for tests/api_fuzz.py: one process for
//  thousands of requests. A request without a reply within the timeout leaves the REQ socket
//  waiting, so a new socket takes the next one.
static int s_lines (const char *endpoint)
{
    const char *timeout_text = getenv ("ML_API_CLIENT_TIMEOUT_MS");
    int timeout_ms = timeout_text ? atoi (timeout_text) : 10000;
    size_t size = 4 * 1024 * 1024 + 2;
    char *line = malloc (size);
    assert (line);
    zsock_t *socket = NULL;
    int rc = 0;
    while (fgets (line, (int)size, stdin)) {
        line[strcspn (line, "\n")] = 0;
        if (!socket) {
            socket = zsock_new (ZMQ_REQ);
            assert (socket);
            zsock_set_linger (socket, 0);
            zsock_set_sndtimeo (socket, timeout_ms);
            if (zsock_connect (socket, "%s", endpoint) != 0) {
                fprintf (stderr, "ml_api_client: cannot connect to %s\n", endpoint);
                rc = 1;
                break;
            }
        }
        char *reply = NULL;
        if (zstr_send (socket, line) == 0) {
            zpoller_t *poller = zpoller_new (socket, NULL);
            reply = zpoller_wait (poller, timeout_ms) == socket ? zstr_recv (socket) : NULL;
            zpoller_destroy (&poller);
        }
        if (reply)
            printf ("%s\n", reply);
        else {
            printf ("!no reply\n");
            zsock_destroy (&socket);
        }
        fflush (stdout);
        zstr_free (&reply);
    }
    zsock_destroy (&socket);
    free (line);
    return rc;
}

int main (int argc, char *argv[])
{
    if (argc != 3 && argc != 4) {
        fprintf (stderr, "usage: ml_api_client ENDPOINT JSON [KIND]\n");
        return 2;
    }
    if (argc == 3 && streq (argv[2], "-"))
        return s_lines (argv[1]);
    zsock_t *socket = zsock_new (ZMQ_REQ);
    assert (socket);
    zsock_set_linger (socket, 0);
    const char *server_key = getenv ("ML_API_CLIENT_SERVER_KEY");
    const char *timeout_text = getenv ("ML_API_CLIENT_TIMEOUT_MS");
    int timeout_ms = timeout_text ? atoi (timeout_text) : 10000;
    zcert_t *certificate = NULL;
    if (server_key && strlen (server_key) == 40) {
        certificate = zcert_new ();
        zcert_apply (certificate, socket);
        zsock_set_curve_serverkey (socket, server_key);
    }
    if (zsock_connect (socket, "%s", argv[1]) != 0) {
        fprintf (stderr, "ml_api_client: cannot connect to %s\n", argv[1]);
        zsock_destroy (&socket);
        return 1;
    }
    if (argc == 4)
        zstr_sendx (socket, argv[3], argv[2], NULL);
    else
        zstr_send (socket, argv[2]);
    zpoller_t *poller = zpoller_new (socket, NULL);
    char *reply = zpoller_wait (poller, timeout_ms) == socket ? zstr_recv (socket) : NULL;
    int rc = reply ? 0 : 1;
    if (reply)
        printf ("%s\n", reply);
    else
        fprintf (stderr, "ml_api_client: no reply from %s within %d ms\n", argv[1], timeout_ms);
    zstr_free (&reply);
    zpoller_destroy (&poller);
    zsock_destroy (&socket);
    zcert_destroy (&certificate);
    return rc;
}
