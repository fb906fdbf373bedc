/*  matterlink CLI: output: text from the core made safe for a terminal, errors, JSON and tables.
 */
//  wcwidth () is an X/Open function.
#define _XOPEN_SOURCE 700
#include "ml_cli.h"
#include "ml_text.h"

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

//  One character of UTF-8 text: sets *code to its code point (-1 for a byte that does not
//  start a whole, shortest-form character) and returns its length in bytes (1 for such a
//  byte), reading at most bytes.
static size_t s_decode (const char *text, size_t bytes, int32_t *code)
{
    const unsigned char *at = (const unsigned char *)text;
    size_t length = at[0] < 0x80                    ? 1
                    : at[0] >= 0xc2 && at[0] < 0xe0 ? 2
                    : at[0] >= 0xe0 && at[0] < 0xf0 ? 3
                    : at[0] >= 0xf0 && at[0] < 0xf5 ? 4
                                                    : 0;
    *code = -1;
    if (length == 0 || length > bytes)
        return 1;
    int32_t value = length == 1 ? at[0] : at[0] & (0x7f >> length);
    for (size_t index = 1; index < length; index++) {
        if ((at[index] & 0xc0) != 0x80)
            return 1;
        value = (value << 6) | (at[index] & 0x3f);
    }
    static const int32_t lowest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (value < lowest[length] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 1;
    *code = value;
    return length;
}

//  What a terminal must not be given as is: C0 and C1 controls and DEL (they move the cursor
//  or change the terminal), the bidirectional controls (embeddings, overrides, isolates and
//  marks: they reorder what follows, so a name can make a row read differently), and the
//  line and paragraph separators. They are shown as \uXXXX.
static bool s_escaped (int32_t code)
{
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code == 0x61c || code == 0x200e ||
           code == 0x200f || (code >= 0x2028 && code <= 0x202e) ||
           (code >= 0x2066 && code <= 0x2069);
}

//  The columns of a character wcwidth () does not know (no UTF-8 locale, or a character too
//  new for the C library): 0 for the common combining marks, 2 for the East Asian wide and
//  full-width blocks and the emoji, else 1.
static int s_fallback_columns (int32_t code)
{
    static const int32_t combining[][2] = {{0x300, 0x36f},   {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff},
                                           {0x200b, 0x200d}, {0x20d0, 0x20ff}, {0xfe00, 0xfe0f},
                                           {0xfe20, 0xfe2f}};
    static const int32_t wide[][2] = {{0x1100, 0x115f},   {0x2e80, 0x303e},   {0x3041, 0x33ff},
                                      {0x3400, 0x4dbf},   {0x4e00, 0x9fff},   {0xa000, 0xa4cf},
                                      {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe30, 0xfe4f},
                                      {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f300, 0x1f64f},
                                      {0x1f900, 0x1f9ff}, {0x20000, 0x2fffd}, {0x30000, 0x3fffd}};
    for (size_t index = 0; index < sizeof combining / sizeof combining[0]; index++)
        if (code >= combining[index][0] && code <= combining[index][1])
            return 0;
    for (size_t index = 0; index < sizeof wide / sizeof wide[0]; index++)
        if (code >= wide[index][0] && code <= wide[index][1])
            return 2;
    return 1;
}

//  The columns a character takes: wcwidth () under the UTF-8 locale main () sets (2 for CJK
//  and other wide characters, 0 for combining marks), else the fallback above; 6 for an
//  escaped one ("\u202e"), and 1 for a byte that is not UTF-8 (shown as '?').
static int s_columns (int32_t code)
{
    if (code >= 0 && s_escaped (code))
        return 6;
    if (code < 0)
        return 1;
    int columns = wcwidth ((wchar_t)code);
    return columns >= 0 ? columns : s_fallback_columns (code);
}

//  Print text from the core or the firm's database (at most bytes of it) as a terminal may
//  show it: escaped characters as \uXXXX, a byte that is not UTF-8 as '?', so no row can move
//  the cursor, change the terminal or read in another order.
void ml_cli_put_clean (FILE *stream, const char *text, size_t bytes)
{
    for (size_t index = 0; index < bytes && text[index];) {
        int32_t code;
        size_t length = s_decode (text + index, strnlen (text + index, bytes - index), &code);
        if (code < 0)
            fputc ('?', stream);
        else if (s_escaped (code))
            fprintf (stream, "\\u%04x", (unsigned)code);
        else
            fwrite (text + index, 1, length, stream);
        index += length;
    }
}

//  The columns text takes on a terminal, printed by ml_cli_put_clean.
size_t ml_cli_width (const char *text)
{
    size_t width = 0, bytes = strlen (text);
    for (size_t index = 0; index < bytes;) {
        int32_t code;
        index += s_decode (text + index, bytes - index, &code);
        width += (size_t)s_columns (code);
    }
    return width;
}

//  A copy of value (new reference) whose strings are as ml_cli_put_clean prints them, for
//  printing with printf: members and array items are copied alike, other values shared.
json_t *ml_cli_display (json_t *value)
{
    if (json_is_string (value)) {
        const char *text = json_string_value (value);
        char *shown = NULL;
        size_t size = 0;
        FILE *stream = open_memstream (&shown, &size);
        assert (stream);
        ml_cli_put_clean (stream, text, strlen (text));
        fclose (stream);
        json_t *copy = json_stringn (shown, size);
        free (shown);
        return copy ? copy : json_string ("?");
    }
    if (json_is_object (value)) {
        json_t *copy = json_object ();
        const char *key;
        json_t *member;
        json_object_foreach (value, key, member)
            json_object_set_new (copy, key, ml_cli_display (member));
        return copy;
    }
    if (json_is_array (value)) {
        json_t *copy = json_array ();
        size_t index;
        json_t *item;
        json_array_foreach (value, index, item) json_array_append_new (copy, ml_cli_display (item));
        return copy;
    }
    return json_incref (value);
}

//  An error for the person at the terminal, on standard error.
void ml_cli_error (const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    //  A message may quote what was typed (an option's value): a card number typed where
    //  none belongs is not shown back (ml_text.h), as the core's errors do not.
    ml_text_mask_card_numbers (text);
    fputs ("matterlink: ", stderr);
    ml_cli_put_clean (stderr, text, sizeof text);
    fputc ('\n', stderr);
}

//  The reply as JSON, indented with sorted keys, without "ok". JSON escapes the C0 controls
//  itself; the other characters a terminal must not get (DEL, C1, the bidi controls) can only
//  be inside strings, where \uXXXX means the same, so they are escaped too.
void ml_cli_print_json (json_t *reply)
{
    json_object_del (reply, "ok");
    char *text = json_dumps (reply, JSON_INDENT (2) | JSON_SORT_KEYS);
    const char *json = text ? text : "{}";
    size_t bytes = strlen (json);
    for (size_t index = 0; index < bytes;) {
        int32_t code;
        size_t length = s_decode (json + index, bytes - index, &code);
        if (code >= 0x7f && s_escaped (code))
            printf ("\\u%04x", (unsigned)code);
        else
            fwrite (json + index, 1, length, stdout);
        index += length;
    }
    printf ("\n");
    free (text);
}

//  ---------------------------------------------------------------------------------------
//  Tables

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

//  One cell: cut to width columns (never inside a wide character or an escape; a combining
//  mark stays with its letter) and padded.
static void s_put_cell (FILE *stream, const char *text, size_t width, bool right)
{
    size_t bytes = 0, used = 0, total = strlen (text);
    while (bytes < total) {
        int32_t code;
        size_t length = s_decode (text + bytes, total - bytes, &code);
        size_t columns = (size_t)s_columns (code);
        if (used + columns > width)
            break;
        used += columns;
        bytes += length;
    }
    if (right)
        fprintf (stream, "%*s", (int)(width - used), "");
    ml_cli_put_clean (stream, text, bytes);
    if (!right)
        fprintf (stream, "%*s", (int)(width - used), "");
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
        size_t width = ml_cli_width (columns[column].header);
        if ((size_t)columns[column].width > width)
            width = (size_t)columns[column].width;
        size_t index;
        json_t *row;
        json_array_foreach (rows, index, row)
        {
            size_t chars = ml_cli_width (s_cell (row, &columns[column], buf, sizeof buf));
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
