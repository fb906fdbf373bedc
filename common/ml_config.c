/*  ml_config: validated access to a ZPL file. See include/ml_config.h. */
#include "ml_config.h"
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
