/*  ml_msg_fuzz: libFuzzer target for the MLP/1 codec (bus/ml_msg.c, docs/protocol.md section 3).

    Decodes each input. A refusal must come with an error text. When decoding succeeds, the
    message must encode again, and because the codec is canonical (every field has exactly one
    width and the decoder refuses bytes left over) that encoding must be the input, byte for
    byte. The encoding must decode again, and encoding that copy must give the same bytes.
    Any mismatch aborts, which libFuzzer reports as a crash with a reproducer.

    Build and run: see tests/fuzz/README.md.
*/
#include "ml_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_fail (const char *what, const uint8_t *data, size_t size)
{
    fprintf (stderr, "ml_msg_fuzz: %s (input of %zu bytes:", what, size);
    for (size_t index = 0; index < size && index < 256; index++)
        fprintf (stderr, " %02x", data[index]);
    fprintf (stderr, "%s)\n", size > 256 ? " ..." : "");
    abort ();
}

//  Encode a message, aborting if the codec refuses what it decoded itself.
static uint8_t *s_encode (const ml_msg_t *message, size_t *size, const uint8_t *input,
                          size_t input_size)
{
    uint8_t *encoded = NULL;
    if (ml_msg_encode (message, &encoded, size) != 0)
        s_fail ("a decoded message does not encode", input, input_size);
    return encoded;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *error = NULL;
    ml_msg_t *message = ml_msg_decode (data, size, &error);
    if (!message) {
        if (!error || !*error)
            s_fail ("decode refused the input without an error text", data, size);
        return 0;
    }
    size_t encoded_size = 0;
    uint8_t *encoded = s_encode (message, &encoded_size, data, size);
    if (encoded_size != size || memcmp (encoded, data, size) != 0)
        s_fail ("encoding a decoded message does not give the input back", data, size);

    ml_msg_t *copy = ml_msg_decode (encoded, encoded_size, &error);
    if (!copy)
        s_fail ("the encoding of a decoded message does not decode", data, size);
    if (copy->id != message->id || copy->item_count != message->item_count ||
        copy->posting.line_count != message->posting.line_count)
        s_fail ("decoding the encoding gives a different message", data, size);
    size_t again_size = 0;
    uint8_t *again = s_encode (copy, &again_size, data, size);
    if (again_size != encoded_size || memcmp (again, encoded, encoded_size) != 0)
        s_fail ("re-encoding the decoded encoding gives different bytes", data, size);

    free (again);
    free (encoded);
    ml_msg_destroy (&copy);
    ml_msg_destroy (&message);
    return 0;
}
