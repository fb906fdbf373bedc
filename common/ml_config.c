/*  ml_config: validated access to a ZPL file. See include/ml_config.h. */
#include "ml_config.h"
#include "ml_log.h"
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>

struct _ml_config_t {
    zconfig_t *root;
    char path[256];
    char error[512];
};

//  ZPL (rfc.zeromq.org/spec:4), read here rather than by czmq's zconfig_chunk_load, which
//  prints a line it cannot read, whole, on standard output: a password or a key on that line
//  would go to the service's log. The rules are czmq's, so a file it reads is read the same;
//  what it would cut silently (a line over 1024 bytes, a NUL byte) is refused here.
#define S_ZPL_LINE 1024

static bool s_name_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr ("$-_@.&+/", c) != NULL;
}

static bool s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n';
}

//  Whether only blanks, or a comment, follow.
static bool s_line_ends (const char *at)
{
    while (s_space (*at))
        at++;
    return !*at || *at == '#';
}

//  Read one line (NUL-terminated, trailing blanks trimmed) into root. Returns NULL, or why
//  it cannot be read.
static const char *s_zpl_line (zconfig_t *root, char *line)
{
    const char *at = line;
    while (*at == ' ')
        at++;
    size_t indent = (size_t)(at - line);
    if (indent % 4)
        return "is indented by a number of spaces that is not a multiple of 4 (4 a level: "
               "a key under its section)";
    const char *name_start = at;
    while (*at && s_name_char (*at))
        at++;
    size_t name_length = (size_t)(at - name_start);
    if (name_length == 0)
        return s_line_ends (at) ? NULL
                                : "is not 'name = value' (a name is letters, digits and "
                                  "$-_@.&+/; indent with spaces, not tabs)";
    if (name_start[0] == '/' || name_start[name_length - 1] == '/')
        return "has a name that starts or ends with '/'";
    while (s_space (*at))
        at++;
    char *value = NULL;
    if (*at == '=') {
        at++;
        while (s_space (*at))
            at++;
        if (*at == '"' || *at == '\'') {
            const char *close = strchr (at + 1, *at);
            if (!close)
                return *at == '"' ? "opens a quote (\") that it does not close"
                                  : "opens a quote (') that it does not close";
            if (!s_line_ends (close + 1))
                return "has more after its quoted value";
            value = strndup (at + 1, (size_t)(close - at - 1));
        } else {
            //  Up to a comment, without the blanks before it.
            const char *end = strchr (at, '#');
            if (!end)
                end = at + strlen (at);
            while (end > at && s_space (end[-1]))
                end--;
            value = strndup (at, (size_t)(end - at));
        }
    } else if (s_line_ends (at))
        value = strdup ("");
    else
        return "is not 'name = value' (a name is letters, digits and $-_@.&+/)";
    assert (value);
    //  Its parent: the last item at each level above it.
    zconfig_t *parent = root;
    for (size_t level = 0; parent && level < indent / 4; level++) {
        zconfig_t *child = zconfig_child (parent);
        while (child && zconfig_next (child))
            child = zconfig_next (child);
        parent = child;
    }
    if (!parent) {
        free (value);
        return "is indented deeper than the lines above it allow (4 spaces a level)";
    }
    char *name = strndup (name_start, name_length);
    assert (name);
    zconfig_t *item = zconfig_new (name, parent);
    assert (item);
    zconfig_set_value (item, "%s", value);
    free (name);
    free (value);
    return NULL;
}

zconfig_t *ml_config_parse (const char *text, size_t size, int *bad_line, const char **why)
{
    //  A byte order mark (an editor's "UTF-8 with BOM") is no part of the text.
    if (size >= 3 && memcmp (text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        size -= 3;
    }
    zconfig_t *root = zconfig_new ("root", NULL);
    assert (root);
    const char *problem = NULL;
    int number = 0;
    for (size_t at = 0; at < size && !problem;) {
        const char *end = (const char *)memchr (text + at, '\n', size - at);
        size_t length = end ? (size_t)(end - (text + at)) : size - at;
        number++;
        if (length > S_ZPL_LINE)
            problem = "is longer than 1024 bytes";
        else if (memchr (text + at, 0, length))
            problem = "holds a NUL byte";
        else {
            char line[S_ZPL_LINE + 1];
            memcpy (line, text + at, length);
            line[length] = 0;
            while (length && s_space (line[length - 1]))
                line[--length] = 0;
            problem = s_zpl_line (root, line);
        }
        at = end ? (size_t)(end - text) + 1 : size;
    }
    if (problem) {
        zconfig_destroy (&root);
        if (bad_line)
            *bad_line = number;
        if (why)
            *why = problem;
    }
    return root;
}

ml_config_t *ml_config_load (const char *path, char *error, size_t error_size)
{
    return ml_config_load_as (path, "configuration file", error, error_size);
}

ml_config_t *ml_config_load_as (const char *path, const char *what, char *error, size_t error_size)
{
    if (!path || !*path) {
        snprintf (error, error_size, "no %s given", what);
        return NULL;
    }
    char shown[600]; //  the path as messages show it (a name may hold control characters)
    ml_log_escape (path, shown, sizeof shown);
    //  Read here, at most ML_CONFIG_MAX_FILE bytes of a regular file, and parsed from
    //  memory: czmq's zconfig_load reads a file of any size (or a FIFO, forever) and leaks
    //  its zfile when the text is not valid ZPL (found by tests/fuzz/ml_config_fuzz.c).
    //  O_NONBLOCK: opening a FIFO would wait for a writer; it is refused below instead.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat status;
    if (fd < 0 || fstat (fd, &status) != 0) {
        snprintf (error, error_size, "cannot read %s %s: %s", what, shown, strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    if (!S_ISREG (status.st_mode) || status.st_size > ML_CONFIG_MAX_FILE) {
        snprintf (error, error_size,
                  S_ISREG (status.st_mode) ? "%s %s is larger than %d bytes: is it the right file?"
                                           : "%s %s is not a regular file",
                  what, shown, ML_CONFIG_MAX_FILE);
        close (fd);
        return NULL;
    }
    //  Read into the chunk the parser takes (the file may have grown since fstat: the cap
    //  holds still).
    FILE *file = fdopen (fd, "r");
    zchunk_t *chunk = file ? zchunk_read (file, ML_CONFIG_MAX_FILE) : NULL;
    int read_errno = errno;
    bool failed = !chunk || ferror (file);
    if (file)
        fclose (file);
    else
        close (fd);
    if (failed) {
        snprintf (error, error_size, "cannot read %s %s: %s", what, shown, strerror (read_errno));
        zchunk_destroy (&chunk);
        return NULL;
    }
    int bad_line = 0;
    const char *why = "";
    zconfig_t *root =
        ml_config_parse ((const char *)zchunk_data (chunk), zchunk_size (chunk), &bad_line, &why);
    zchunk_destroy (&chunk);
    if (!root) {
        //  The line is not quoted: it may hold a password.
        snprintf (error, error_size, "%s %s: line %d %s", what, shown, bad_line, why);
        return NULL;
    }
    ml_config_t *self = calloc (1, sizeof (ml_config_t));
    assert (self);
    self->root = root;
    snprintf (self->path, sizeof self->path, "%s", path);
    return self;
}

void ml_config_destroy (ml_config_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zconfig_destroy (&(*self_p)->root);
        free (*self_p);
        *self_p = NULL;
    }
}

static void s_fail (ml_config_t *self, const char *key, const char *problem)
{
    //  Each part cut to a length the message holds whole (512 bytes).
    if (!*self->error)
        snprintf (self->error, sizeof self->error, "%.200s: %.60s %.240s", self->path, key,
                  problem);
}

const char *ml_config_string (ml_config_t *self, const char *path, const char *fallback)
{
    assert (self);
    const char *value = zconfig_get (self->root, path, NULL);
    if (value && *value)
        return value;
    if (!fallback) {
        s_fail (self, path, "is required but missing");
        return "";
    }
    return fallback;
}

int ml_config_int (ml_config_t *self, const char *path, int fallback, int minimum, int maximum)
{
    assert (self);
    const char *value = zconfig_get (self->root, path, NULL);
    if (!value || !*value)
        return fallback;
    char *end = NULL;
    errno = 0;
    long parsed = strtol (value, &end, 10);
    if (errno || *end || parsed < minimum || parsed > maximum) {
        char problem[128];
        snprintf (problem, sizeof problem, "must be a whole number from %d to %d", minimum,
                  maximum);
        s_fail (self, path, problem);
        return fallback;
    }
    return (int)parsed;
}

const char *ml_config_error (ml_config_t *self)
{
    assert (self);
    return *self->error ? self->error : NULL;
}

//  Levenshtein distance, for suggesting the known key nearest a misspelled one. Keys are
//  short (a section and a key), so two rows on the stack do.
static size_t s_distance (const char *left, const char *right)
{
    size_t left_length = strlen (left), right_length = strlen (right);
    if (right_length > 127)
        right_length = 127;
    size_t row[128], next[128];
    for (size_t column = 0; column <= right_length; column++)
        row[column] = column;
    for (size_t line = 1; line <= left_length; line++) {
        next[0] = line;
        for (size_t column = 1; column <= right_length; column++) {
            size_t cost = left[line - 1] == right[column - 1] ? 0 : 1;
            size_t best = row[column - 1] + cost;
            if (row[column] + 1 < best)
                best = row[column] + 1;
            if (next[column - 1] + 1 < best)
                best = next[column - 1] + 1;
            next[column] = best;
        }
        memcpy (row, next, (right_length + 1) * sizeof row[0]);
    }
    return row[right_length];
}

//  The known path (or, with sections set, the known section) nearest to path.
static const char *s_nearest (const char *path, const char *const *known, bool sections)
{
    const char *nearest = NULL;
    size_t nearest_distance = SIZE_MAX;
    char candidate[128];
    for (size_t index = 0; known[index]; index++) {
        snprintf (candidate, sizeof candidate, "%s", known[index]);
        if (sections) {
            char *slash = strchr (candidate, '/');
            if (slash)
                *slash = 0;
        }
        size_t distance = s_distance (path, candidate);
        if (distance < nearest_distance) {
            nearest_distance = distance;
            nearest = known[index];
        }
    }
    return nearest;
}

static bool s_known (const char *path, const char *const *known, bool section)
{
    size_t length = strlen (path);
    for (size_t index = 0; known[index]; index++)
        if (section ? strncmp (known[index], path, length) == 0 &&
                          (known[index][length] == '/' || known[index][length] == 0)
                    : streq (known[index], path))
            return true;
    return false;
}

//  Reports an unknown path, with the nearest known one (a section's name alone when the
//  section itself is unknown).
static void s_unknown (ml_config_t *self, const char *what, const char *path,
                       const char *const *known, bool section)
{
    char shown[200], problem[400];
    ml_log_escape (path, shown, sizeof shown);
    const char *nearest = s_nearest (path, known, section);
    if (!nearest)
        snprintf (problem, sizeof problem, "unknown %s '%s'", what, shown);
    else if (section)
        snprintf (problem, sizeof problem, "unknown %s '%s' (did you mean '%.*s'?)", what, shown,
                  (int)strcspn (nearest, "/"), nearest);
    else
        snprintf (problem, sizeof problem, "unknown %s '%s' (did you mean '%s'?)", what, shown,
                  nearest);
    if (!*self->error)
        snprintf (self->error, sizeof self->error, "%.255s: %.250s", self->path, problem);
}

int ml_config_check_keys (ml_config_t *self, const char *const *known)
{
    assert (self && known);
    for (zconfig_t *section = zconfig_child (self->root); section && !*self->error;
         section = zconfig_next (section)) {
        const char *name = zconfig_name (section);
        if (!s_known (name, known, true)) {
            s_unknown (self, "section", name, known, true);
            break;
        }
        //  zconfig finds the first of two same-named entries: a second one would be ignored.
        for (zconfig_t *earlier = zconfig_child (self->root); earlier != section;
             earlier = zconfig_next (earlier))
            if (streq (zconfig_name (earlier), name)) {
                char shown[200];
                s_fail (self, ml_log_escape (name, shown, sizeof shown),
                        "appears twice as a section (the second would be ignored): merge them");
                break;
            }
        for (zconfig_t *key = zconfig_child (section); key && !*self->error;
             key = zconfig_next (key)) {
            char path[300];
            snprintf (path, sizeof path, "%s/%s", name, zconfig_name (key));
            if (zconfig_child (key)) {
                s_fail (self, path,
                        "has lines indented under it: a key is one 'key = value' line, indented "
                        "by 4 spaces under its section");
                break;
            }
            if (!s_known (path, known, false)) {
                s_unknown (self, "key", path, known, false);
                break;
            }
            for (zconfig_t *earlier = zconfig_child (section); earlier != key;
                 earlier = zconfig_next (earlier))
                if (streq (zconfig_name (earlier), zconfig_name (key))) {
                    s_fail (self, path, "appears twice (the second would be ignored)");
                    break;
                }
        }
    }
    return *self->error ? -1 : 0;
}

int ml_config_check_file (const char *path, const char *const *known, char *error,
                          size_t error_size)
{
    ml_config_t *self = ml_config_load (path, error, error_size);
    if (!self)
        return -1;
    int rc = ml_config_check_keys (self, known);
    //  Cut to the caller's buffer, as meant (the result is read: no warning of it).
    if (rc != 0 && snprintf (error, error_size, "%s", self->error) < 0)
        *error = 0;
    ml_config_destroy (&self);
    return rc;
}

void ml_config_test (bool verbose)
{
    printf (" * ml_config: ");
    char directory[128], path[160];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (path, sizeof path, "%s/test.cfg", directory);
    int fd = open (path, O_CREAT | O_WRONLY, 0600);
    assert (fd >= 0);
    const char *text = "database\n"
                       "    connection = \"Driver=SQLite3;Database=/tmp/x.db\"\n"
                       "    batch_rows = 500\n"
                       "    poll_interval_ms = lots\n";
    assert (write (fd, text, strlen (text)) == (ssize_t)strlen (text));
    close (fd);
    char error[256];
    ml_config_t *config = ml_config_load (path, error, sizeof error);
    assert (config);
    assert (streq (ml_config_string (config, "database/connection", NULL),
                   "Driver=SQLite3;Database=/tmp/x.db"));
    assert (ml_config_int (config, "database/batch_rows", 1000, 1, 5000) == 500);
    assert (ml_config_error (config) == NULL);
    assert (ml_config_int (config, "database/poll_interval_ms", 250, 10, 60000) == 250);
    assert (strstr (ml_config_error (config), "poll_interval_ms"));
    ml_config_string (config, "core/endpoint", NULL);
    //  The first error stays.
    assert (strstr (ml_config_error (config), "poll_interval_ms"));
    ml_config_destroy (&config);
    ml_config_destroy (&config);
    assert (ml_config_load ("/nonexistent/matterlink.cfg", error, sizeof error) == NULL);
    assert (strstr (error, "cannot read"));

    //  Every key must be known: a misspelled one is named with the nearest known key.
    static const char *const known[] = {"core/endpoint",  "core/window",     "store/connection",
                                        "admin/endpoint", "admin/allow_tcp", NULL};
    struct {
        const char *text, *expected;
    } cases[] = {
        {"core\n    endpoint = tcp://127.0.0.1:1\n    window = 3\nadmin\n    endpoint = x\n", NULL},
        {"core\n    endpiont = tcp://127.0.0.1:1\n",
         "unknown key 'core/endpiont' (did you mean 'core/endpoint'?)"},
        {"core\n    window = 3\nstroe\n    connection = x\n",
         "unknown section 'stroe' (did you mean 'store'?)"},
        {"admin\n    allow_tpc = 1\n",
         "unknown key 'admin/allow_tpc' (did you mean 'admin/allow_tcp'?)"},
        {"core\n    window = 3\n    window = 4\n", "core/window appears twice"},
        {"core\n    window = 3\nadmin\n    endpoint = x\ncore\n    endpoint = y\n",
         "core appears twice as a section"},
        {"core\n    endpoint = x\n        nested = y\n",
         "core/endpoint has lines indented under it"},
        {"processor\n    kind = test\n", "unknown section 'processor' (did you mean"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        assert (fd >= 0);
        assert (write (fd, cases[index].text, strlen (cases[index].text)) ==
                (ssize_t)strlen (cases[index].text));
        close (fd);
        int rc = ml_config_check_file (path, known, error, sizeof error);
        if (verbose)
            printf ("\n    %s", rc ? error : "(accepted)");
        if (cases[index].expected)
            assert (rc == -1 && strstr (error, cases[index].expected) && strstr (error, path));
        else
            assert (rc == 0);
    }
    assert (ml_config_check_file ("/nonexistent/matterlink.cfg", known, error, sizeof error) == -1);
    assert (strstr (error, "cannot read"));
    //  Not ZPL: refused with nothing left behind (ASan's leak check runs on the selftests).
    fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert (write (fd, "core\n    endpoint = \"x\n", 23) == 23);
    close (fd);
    assert (ml_config_load (path, error, sizeof error) == NULL);
    assert (strstr (error, ": line 2 opens a quote (\") that it does not close"));
    //  The line that cannot be read is named, never quoted (it may hold a password), with
    //  lines before it that are fine, and after it that are not; on the last line too.
    struct {
        const char *text;
        int line;
    } bad[] = {{"core\n    endpoint = x\n\tpassword = \"Secret99\n    a = 1\n", 3},
               {"core\n    endpoint = x\ndatabase\n    connection = \"PWD=Secret99", 4},
               {"core\n  endpoint = Secret99\n", 2},
               {"core\n        endpoint = Secret99\n", 2},
               {"\tSecret99\n", 1}};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        int line = -1;
        const char *why = NULL;
        assert (!ml_config_parse (bad[index].text, strlen (bad[index].text), &line, &why));
        assert (line == bad[index].line && why);
        fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        assert (write (fd, bad[index].text, strlen (bad[index].text)) ==
                (ssize_t)strlen (bad[index].text));
        close (fd);
        assert (ml_config_load (path, error, sizeof error) == NULL);
        char expected[64];
        snprintf (expected, sizeof expected, ": line %d ", bad[index].line);
        assert (strstr (error, expected) && !strstr (error, "Secret99"));
    }
    //  A byte order mark before the text (an editor's "UTF-8 with BOM") is read past.
    fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert (write (fd,
                   "\xef\xbb\xbf"
                   "core\n    endpoint = x\n",
                   25) == 25);
    close (fd);
    config = ml_config_load (path, error, sizeof error);
    assert (config && streq (ml_config_string (config, "core/endpoint", NULL), "x"));
    ml_config_destroy (&config);
    //  An empty file is read as no keys: a required one is then named.
    fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    close (fd);
    config = ml_config_load (path, error, sizeof error);
    assert (config);
    ml_config_string (config, "core/endpoint", NULL);
    assert (strstr (ml_config_error (config), "core/endpoint is required"));
    ml_config_destroy (&config);
    //  Larger than the cap, or not a regular file: refused before it is read.
    fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    char *big = calloc (1, ML_CONFIG_MAX_FILE + 1);
    assert (big);
    memset (big, '#', ML_CONFIG_MAX_FILE);
    big[ML_CONFIG_MAX_FILE] = '\n';
    assert (write (fd, big, ML_CONFIG_MAX_FILE + 1) == ML_CONFIG_MAX_FILE + 1);
    close (fd);
    free (big);
    assert (ml_config_load (path, error, sizeof error) == NULL);
    assert (strstr (error, "is larger than 65536 bytes"));
    assert (ml_config_load (directory, error, sizeof error) == NULL);
    assert (strstr (error, "is not a regular file"));
    unlink (path);
    rmdir (directory);
    printf ("%sOK\n", verbose ? "\n" : "");
}

int ml_config_open_private (const char *key, const char *path, const char *what, char *error,
                            size_t error_size)
{
    char shown[300];
    ml_log_escape (path, shown, sizeof shown);
    //  O_NONBLOCK: a FIFO would wait for a writer; it is refused as not a regular file.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf (error, error_size, "%s: cannot open %s: %s", key, shown, strerror (errno));
        return -1;
    }
    struct stat status;
    if (fstat (fd, &status) != 0 || !S_ISREG (status.st_mode))
        snprintf (error, error_size, "%s: %s is not a regular file", key, shown);
    else if (status.st_uid != geteuid ())
        snprintf (error, error_size,
                  "%s: %s belongs to user id %u, not to the user matterlink runs as (%u): "
                  "chown %u %s",
                  key, shown, (unsigned)status.st_uid, (unsigned)geteuid (), (unsigned)geteuid (),
                  shown);
    else if (status.st_mode & 077)
        snprintf (error, error_size,
                  "%s: %s has mode %04o, which lets other users read the %s: chmod 600 %s", key,
                  shown, (unsigned)(status.st_mode & 07777), what, shown);
    else
        return fd;
    close (fd);
    return -1;
}

int ml_config_read_secret (const char *key, const char *path, const char *what, char *secret,
                           size_t size, bool (*valid) (const char *), const char *rule, char *error,
                           size_t error_size)
{
    char shown[300];
    ml_log_escape (path, shown, sizeof shown);
    int fd = ml_config_open_private (key, path, what, error, error_size);
    if (fd < 0)
        return -1;
    char buffer[1024];
    ssize_t length = 0;
    int rc = -1;
    if ((length = read (fd, buffer, sizeof buffer)) < 0)
        snprintf (error, error_size, "%s: cannot read %s: %s", key, shown, strerror (errno));
    else {
        //  One line; the newline editors and echo add is not part of the secret.
        while (length > 0 && (buffer[length - 1] == '\n' || buffer[length - 1] == '\r'))
            length--;
        if (length == 0)
            snprintf (error, error_size, "%s: %s is empty", key, shown);
        else if ((size_t)length >= size)
            snprintf (error, error_size, "%s: %s holds more than %zu bytes: is it the %s?", key,
                      shown, size - 1, what);
        else {
            memcpy (secret, buffer, (size_t)length);
            secret[length] = 0;
            if (!valid || valid (secret))
                rc = 0;
            else {
                explicit_bzero (secret, size);
                snprintf (error, error_size, "%s: %s must hold the %s on one line, %s", key, shown,
                          what, rule);
            }
        }
    }
    explicit_bzero (buffer, sizeof buffer);
    close (fd);
    return rc;
}
