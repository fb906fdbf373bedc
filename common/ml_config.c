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

ml_config_t *ml_config_load (const char *path, char *error, size_t error_size)
{
    if (!path || !*path) {
        snprintf (error, error_size, "no configuration file given");
        return NULL;
    }
    //  Read here, at most ML_CONFIG_MAX_FILE bytes of a regular file, and parsed from
    //  memory: czmq's zconfig_load reads a file of any size (or a FIFO, forever) and leaks
    //  its zfile when the text is not valid ZPL (found by tests/fuzz/ml_config_fuzz.c).
    //  O_NONBLOCK: opening a FIFO would wait for a writer; it is refused below instead.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat status;
    if (fd < 0 || fstat (fd, &status) != 0) {
        snprintf (error, error_size, "cannot read configuration file %s: %s", path,
                  strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    if (!S_ISREG (status.st_mode) || status.st_size > ML_CONFIG_MAX_FILE) {
        snprintf (error, error_size,
                  S_ISREG (status.st_mode)
                      ? "configuration file %s is larger than %d bytes: is it the right file?"
                      : "configuration file %s is not a regular file",
                  path, ML_CONFIG_MAX_FILE);
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
        snprintf (error, error_size, "cannot read configuration file %s: %s", path,
                  strerror (read_errno));
        zchunk_destroy (&chunk);
        return NULL;
    }
    zconfig_t *root = zconfig_chunk_load (chunk);
    zchunk_destroy (&chunk);
    if (!root) {
        snprintf (error, error_size,
                  "configuration file %s is not valid ZPL (indent with 4 spaces, "
                  "'key = value', quote values that hold spaces or '#')",
                  path);
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
    assert (strstr (error, "is not valid ZPL"));
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
