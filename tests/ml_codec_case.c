/*  ml_codec_case: runs one data-driven codec case, a folder holding
      input.hex  the message bytes in hex ('#' starts a comment, whitespace is ignored)
      expected   "ok MESSAGE-NAME", or "error " and a fragment of the expected error text
    Exit 0 when the decoder's verdict matches. */
#include "ml_msg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_slurp (const char *directory, const char *name, size_t *size)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", directory, name);
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    fseek (file, 0, SEEK_END);
    long length = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *data = malloc ((size_t)length + 1);
    if (data && fread (data, 1, (size_t)length, file) != (size_t)length) {
        free (data);
        data = NULL;
    }
    fclose (file);
    if (data) {
        data[length] = 0;
        *size = (size_t)length;
    }
    return data;
}

int main (int argc, char *argv[])
{
    if (argc != 2) {
        fprintf (stderr, "usage: ml_codec_case CASE-DIRECTORY\n");
        return 2;
    }
    size_t text_size = 0, expected_size = 0;
    char *text = s_slurp (argv[1], "input.hex", &text_size);
    char *expected = s_slurp (argv[1], "expected", &expected_size);
    if (!text || !expected) {
        fprintf (stderr, "%s: needs input.hex and expected\n", argv[1]);
        return 2;
    }
    while (expected_size > 0 && isspace ((unsigned char)expected[expected_size - 1]))
        expected[--expected_size] = 0;
    uint8_t *bytes = malloc (text_size / 2 + 1);
    size_t count = 0;
    int high = -1;
    for (size_t index = 0; index < text_size; index++) {
        char c = text[index];
        if (c == '#') {
            while (index < text_size && text[index] != '\n')
                index++;
            continue;
        }
        if (isspace ((unsigned char)c))
            continue;
        if (!isxdigit ((unsigned char)c)) {
            fprintf (stderr, "%s: input.hex holds '%c'\n", argv[1], c);
            return 2;
        }
        int nibble = isdigit ((unsigned char)c) ? c - '0' : tolower ((unsigned char)c) - 'a' + 10;
        if (high < 0)
            high = nibble;
        else {
            bytes[count++] = (uint8_t)(high << 4 | nibble);
            high = -1;
        }
    }
    const char *error = NULL;
    ml_msg_t *message = ml_msg_decode (bytes, count, &error);
    int rc = 1;
    if (strncmp (expected, "ok ", 3) == 0)
        rc = message && strcmp (ml_msg_name (message->id), expected + 3) == 0 ? 0 : 1;
    else if (strncmp (expected, "error ", 6) == 0)
        rc = !message && strstr (error, expected + 6) ? 0 : 1;
    printf ("%s: %s (%s)\n", argv[1], rc == 0 ? "as expected" : "UNEXPECTED",
            message ? ml_msg_name (message->id) : error);
    ml_msg_destroy (&message);
    free (bytes);
    free (text);
    free (expected);
    return rc;
}
