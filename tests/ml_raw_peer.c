/*  ml_raw_peer: a test peer that connects to a core like an agent (CURVE with the given
    certificate), sends the raw bytes given in hex, and prints the reply it gets:
      "REPLY ERROR 400 <reason>", "REPLY WELCOME", ... or "NO REPLY" after the timeout.
    --count N sends the message N times and then prints "REPLIES K" (how many answers came
    back). --mechanism null or plain connects without CURVE (the core must refuse the
    handshake; --cert and --server-key are then not needed).
    Exit 0 on a reply, 1 on none, 2 on a usage error. For tests of hostile input. */
#include "ml_msg.h"

#include <czmq.h>

int main (int argc, char *argv[])
{
    const char *endpoint = NULL, *server_key = NULL, *certificate_path = NULL, *hex = NULL;
    const char *mechanism = "curve";
    int timeout = 2000, count = 1;
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
        else if (streq (argv[index], "--count"))
            count = atoi (argv[index + 1]);
        else if (streq (argv[index], "--mechanism"))
            mechanism = argv[index + 1];
    }
    bool curve = streq (mechanism, "curve");
    if (!endpoint || !hex || count < 1 || (curve && (!server_key || !certificate_path)) ||
        (!curve && !streq (mechanism, "null") && !streq (mechanism, "plain"))) {
        fprintf (stderr, "usage: ml_raw_peer --endpoint E --server-key KEY --cert SECRET-CERT "
                         "--send HEX [--timeout MS] [--count N] [--mechanism curve|null|plain]\n");
        return 2;
    }
    zcert_t *certificate = NULL;
    if (curve) {
        certificate = zcert_load (certificate_path);
        if (!certificate) {
            fprintf (stderr, "ml_raw_peer: cannot load %s\n", certificate_path);
            return 2;
        }
    }
    size_t length = strlen (hex) / 2;
    uint8_t *bytes = malloc (length + 1);
    for (size_t index = 0; index < length; index++) {
        unsigned int value = 0;
        sscanf (hex + 2 * index, "%2x", &value);
        bytes[index] = (uint8_t)value;
    }
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (curve) {
        zcert_apply (certificate, dealer);
        zsock_set_curve_serverkey (dealer, server_key);
    } else if (streq (mechanism, "plain")) {
        zsock_set_plain_username (dealer, "admin");
        zsock_set_plain_password (dealer, "secret");
    }
    zsock_set_rcvtimeo (dealer, timeout);
    zsock_set_sndtimeo (dealer, timeout);
    zsock_set_linger (dealer, 0);
    //  One connection per run: a refused handshake is not tried again within the timeout.
    zsock_set_reconnect_ivl (dealer, 60000);
    zsock_connect (dealer, "%s", endpoint);
    int sent = 0, replies = 0;
    for (; sent < count; sent++) {
        zframe_t *frame = zframe_new (bytes, length);
        if (zframe_send (&frame, dealer, 0) != 0) {
            zframe_destroy (&frame);
            break;
        }
    }
    while (replies < sent) {
        zframe_t *reply = zframe_recv (dealer);
        if (!reply)
            break;
        if (replies++ == 0) {
            const char *error = NULL;
            ml_msg_t *message = ml_msg_decode (zframe_data (reply), zframe_size (reply), &error);
            if (message && message->id == ML_MSG_ERROR)
                printf ("REPLY ERROR %u %s\n", message->code, message->reason);
            else if (message)
                printf ("REPLY %s\n", ml_msg_name (message->id));
            else
                printf ("REPLY MALFORMED %s\n", error);
            ml_msg_destroy (&message);
        }
        zframe_destroy (&reply);
    }
    if (replies == 0)
        printf ("NO REPLY\n");
    if (count > 1)
        printf ("REPLIES %d\n", replies);
    zsock_destroy (&dealer);
    zcert_destroy (&certificate);
    free (bytes);
    return replies > 0 ? 0 : 1;
}
