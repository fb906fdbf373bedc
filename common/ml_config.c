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
    if (access (path, R_OK) != 0) {
        snprintf (error, error_size, "cannot read configuration file %s: %s", path,
                  strerror (errno));
        return NULL;
    }
    zconfig_t *root = zconfig_load (path);
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
    if (!*self->error)
        snprintf (self->error, sizeof self->error, "%s: %s %s", self->path, key, problem);
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
    unlink (path);
    rmdir (directory);
    assert (ml_config_load ("/nonexistent/matterlink.cfg", error, sizeof error) == NULL);
    assert (strstr (error, "cannot read"));
    printf ("OK\n");
}

int ml_config_read_secret (const char *key, const char *path, const char *what, char *secret,
                           size_t size, bool (*valid) (const char *), const char *rule, char *error,
                           size_t error_size)
{
    char shown[300];
    ml_log_escape (path, shown, sizeof shown);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf (error, error_size, "%s: cannot open %s: %s", key, shown, strerror (errno));
        return -1;
    }
    struct stat status;
    char buffer[1024];
    ssize_t length = 0;
    int rc = -1;
    if (fstat (fd, &status) != 0 || !S_ISREG (status.st_mode))
        snprintf (error, error_size, "%s: %s is not a regular file", key, shown);
    else if (status.st_uid != geteuid ())
        snprintf (error, error_size,
                  "%s: %s belongs to user id %u, not to the user matterlink runs as (%u): "
                  "chown it",
                  key, shown, (unsigned)status.st_uid, (unsigned)geteuid ());
    else if (status.st_mode & 077)
        snprintf (error, error_size,
                  "%s: %s has mode %04o, which lets other users read the %s: chmod 600 %s", key,
                  shown, (unsigned)(status.st_mode & 07777), what, shown);
    else if ((length = read (fd, buffer, sizeof buffer)) < 0)
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
