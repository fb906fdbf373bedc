/*  matterlink CLI: output: text from the core made safe for a terminal, errors, JSON and tables.
 */
#include "ml_cli.h"

#define S_MAX_COLUMNS 12

const char *ml_cli_text (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value ? value : "";
}

const char *ml_cli_integer_text (json_t *value, char *buf, size_t size)
{
    snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    return buf;
}

long long ml_cli_integer (json_t *object, const char *key)
{
    return (long long)json_integer_value (json_object_get (object, key));
}

const char *ml_cli_money (json_t *object, const char *key, const char *currency, char *buf,
                          size_t size)
{
    return ml_money_format (json_integer_value (json_object_get (object, key)), currency, buf,
                            size);
}

//  Print text from the core or the firm's database with control bytes shown as '?', so no
//  row can move the cursor or change the terminal.
void ml_cli_put_clean (FILE *stream, const char *text, size_t bytes)
{
    for (size_t index = 0; index < bytes && text[index]; index++) {
        unsigned char byte = (unsigned char)text[index];
        fputc (byte < 0x20 || byte == 0x7f ? '?' : byte, stream);
    }
}

//  An error for the person at the terminal, on standard error.
void ml_cli_error (const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    fputs ("matterlink: ", stderr);
    ml_cli_put_clean (stderr, text, sizeof text);
    fputc ('\n', stderr);
}

void ml_cli_print_json (json_t *reply)
{
    json_object_del (reply, "ok");
    char *text = json_dumps (reply, JSON_INDENT (2) | JSON_SORT_KEYS);
    printf ("%s\n", text ? text : "{}");
    free (text);
}

//  ---------------------------------------------------------------------------------------
//  Tables

//  Width in characters of UTF-8 text (every character one column).
static size_t s_chars (const char *text)
{
    size_t count = 0;
    for (; *text; text++)
        count += ((unsigned char)*text & 0xc0) != 0x80;
    return count;
}

static const char *s_cell (json_t *row, const ml_cli_column_t *column, char *buf, size_t size)
{
    json_t *value = json_object_get (row, column->key);
    if (column->flags & ML_CLI_MONEY)
        return value ? ml_money_format (json_integer_value (value), ml_cli_text (row, "currency"),
                                        buf, size)
                     : "";
    if (json_is_integer (value))
        snprintf (buf, size, "%lld", (long long)json_integer_value (value));
    else
        snprintf (buf, size, "%s", json_is_string (value) ? json_string_value (value) : "");
    return buf;
}

//  One cell: cut to width characters and padded.
static void s_put_cell (FILE *stream, const char *text, size_t width, bool right)
{
    size_t bytes = 0, chars = 0;
    while (text[bytes] && chars < width) {
        chars++;
        bytes++;
        while (((unsigned char)text[bytes] & 0xc0) == 0x80)
            bytes++;
    }
    if (right)
        fprintf (stream, "%*s", (int)(width - chars), "");
    ml_cli_put_clean (stream, text, bytes);
    if (!right)
        fprintf (stream, "%*s", (int)(width - chars), "");
}

static int s_terminal_width (void)
{
    struct winsize size;
    if (isatty (STDOUT_FILENO) && ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col)
        return size.ws_col;
    return 0;
}

//  Rows (an array of objects) as a table with a header, each line indented.
void ml_cli_print_table (json_t *rows, const ml_cli_column_t *columns, size_t count, int indent)
{
    assert (count <= S_MAX_COLUMNS);
    size_t widths[S_MAX_COLUMNS];
    char buf[512];
    int others = 0;
    size_t fill = count;
    for (size_t column = 0; column < count; column++) {
        size_t width = s_chars (columns[column].header);
        if ((size_t)columns[column].width > width)
            width = (size_t)columns[column].width;
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            size_t chars = s_chars (s_cell (row, &columns[column], buf, sizeof buf));
            width = chars > width ? chars : width;
        }
        if (columns[column].cap && width > (size_t)columns[column].cap)
            width = (size_t)columns[column].cap;
        widths[column] = width;
        if (columns[column].flags & ML_CLI_FILL)
            fill = column;
        else
            others += (int)width + 1;
    }
    if (fill < count) {
        int terminal = s_terminal_width ();
        int room = terminal ? terminal - indent - others : 40;
        room = room < 16 ? 16 : room;
        if (widths[fill] > (size_t)room)
            widths[fill] = (size_t)room;
    }
    for (size_t index = 0; index <= json_array_size (rows); index++) {
        json_t *row = index ? json_array_get (rows, index - 1) : NULL;
        char *line = NULL;
        size_t size = 0;
        FILE *stream = open_memstream (&line, &size);
        assert (stream);
        fprintf (stream, "%*s", indent, "");
        for (size_t column = 0; column < count; column++) {
            const char *text =
                row ? s_cell (row, &columns[column], buf, sizeof buf) : columns[column].header;
            fprintf (stream, "%s", column ? " " : "");
            s_put_cell (stream, text, widths[column], columns[column].flags & ML_CLI_RIGHT);
        }
        fclose (stream);
        while (size > 0 && line[size - 1] == ' ')
            size--;
        printf ("%.*s\n", (int)size, line);
        free (line);
    }
}
