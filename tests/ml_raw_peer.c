/*  ml_raw_peer: a test peer that connects to a core like an agent (CURVE with the given
    certificate), sends the raw bytes given in hex, and prints the reply it gets:
      "REPLY ERROR 400 <reason>", "REPLY WELCOME", ... or "NO REPLY" after the timeout.
    Exit 0 on a reply, 1 on none, 2 on a usage error. For tests of hostile input. */
#include "ml_msg.h"

#include <czmq.h>

int main (int argc, char *argv[])
{
    const char *endpoint = NULL, *server_key = NULL, *certificate_path = NULL, *hex = NULL;
    int timeout = 2000;
    for (int index = 1; index + 1 < argc; index += 2) {
        if (streq (argv[index], "--endpoint"))
            endpoint = argv[index + 1];
        else if (streq (argv[index], "--server-key"))
            server_key = argv[index + 1];
        else if (streq (argv[index], "--cert"))
            certificate_path = argv[index + 1];
        else if (streq (argv[index], "--send"))
            hex = argv[index + 1];
        else if (streq (argv[index], "--timeout"))
            timeout = atoi (argv[index + 1]);
    }
    if (!endpoint || !server_key || !certificate_path || !hex) {
        fprintf (stderr, "usage: ml_raw_peer --endpoint E --server-key KEY --cert SECRET-CERT "
                         "--send HEX [--timeout MS]\n");
        return 2;
    }
    zcert_t *certificate = zcert_load (certificate_path);
    if (!certificate) {
        fprintf (stderr, "ml_raw_peer: cannot load %s\n", certificate_path);
        return 2;
    }
    size_t length = strlen (hex) / 2;
    uint8_t *bytes = malloc (length + 1);
    for (size_t index = 0; index < length; index++) {
        unsigned int value = 0;
        sscanf (hex + 2 * index, "%2x", &value);
        bytes[index] = (uint8_t)value;
    }
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zcert_apply (certificate, dealer);
    zsock_set_curve_serverkey (dealer, server_key);
    zsock_set_rcvtimeo (dealer, timeout);
    zsock_set_sndtimeo (dealer, timeout);
    zsock_set_linger (dealer, 0);
    zsock_connect (dealer, "%s", endpoint);
    zframe_t *frame = zframe_new (bytes, length);
    int rc = 1;
    if (zframe_send (&frame, dealer, 0) == 0) {
        zframe_t *reply = zframe_recv (dealer);
        if (reply) {
            const char *error = NULL;
            ml_msg_t *message = ml_msg_decode (zframe_data (reply), zframe_size (reply), &error);
            if (message && message->id == ML_MSG_ERROR)
                printf ("REPLY ERROR %u %s\n", message->code, message->reason);
            else if (message)
                printf ("REPLY %s\n", ml_msg_name (message->id));
            else
                printf ("REPLY MALFORMED %s\n", error);
            ml_msg_destroy (&message);
            zframe_destroy (&reply);
            rc = 0;
        }
    }
    zframe_destroy (&frame);
    if (rc)
        printf ("NO REPLY\n");
    zsock_destroy (&dealer);
    zcert_destroy (&certificate);
    free (bytes);
    return rc;
}
