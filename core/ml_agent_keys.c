/*  ml_agent_keys: the registered agents' public keys (see include/ml_agent_keys.h). */
#include "ml_agent_keys.h"
#include "ml_config.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <sys/stat.h>

//  Read the whole directory again at least this often while lookups come.
#define S_RESCAN_MS 2000
//  Files of the directory read at most: a firm has one.
#define S_MAX_FILES 100000

struct _ml_agent_keys_t {
    char *directory;
    zhashx_t *files;      //  key -> file name (char *, owned)
    struct timespec seen; //  the directory's modification time when last read
    bool read;            //  read at least once
    int64_t read_at;      //  zclock_mono of the last reading
    zhashx_t *warned;     //  the last reading's warnings: a reading logs only new ones
};

ml_agent_keys_t *ml_agent_keys_new (const char *directory)
{
    assert (directory);
    ml_agent_keys_t *self = calloc (1, sizeof (ml_agent_keys_t));
    assert (self);
    self->directory = strdup (directory);
    self->files = zhashx_new ();
    zhashx_set_destructor (self->files, (zhashx_destructor_fn *)zstr_free);
    self->warned = zhashx_new ();
    return self;
}

void ml_agent_keys_destroy (ml_agent_keys_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->files);
        zhashx_destroy (&(*self_p)->warned);
        free ((*self_p)->directory);
        free (*self_p);
        *self_p = NULL;
    }
}

int ml_agent_keys_read (const char *path, char key[41], char *error, size_t error_size)
{
    ml_config_t *certificate = ml_config_load_as (path, "the certificate", error, error_size);
    if (!certificate)
        return -1;
    const char *text = ml_config_string (certificate, "curve/public-key", "");
    uint8_t decoded[32];
    bool valid = strlen (text) == 40 && zmq_z85_decode (decoded, text);
    if (valid)
        snprintf (key, 41, "%s", text);
    else {
        char shown[600];
        snprintf (error, error_size,
                  "%s is not a public certificate: it has no valid curve/public-key (40 "
                  "characters of Z85)",
                  ml_log_escape (path, shown, sizeof shown));
    }
    ml_config_destroy (&certificate);
    return valid ? 0 : -1;
}

static bool s_certificate_name (const char *name)
{
    size_t length = strlen (name);
    return name[0] != '.' && length > 5 && streq (name + length - 5, ".cert");
}

//  Log a warning of this reading, unless the last reading logged it (the directory is read
//  every few seconds: a bad file is told once, not every time).
static void s_warn (ml_agent_keys_t *self, zhashx_t *warnings, const char *text)
{
    if (!zhashx_lookup (self->warned, text))
        ml_log (ML_LOG_WARNING, "agents' certificate directory: %s", text);
    zhashx_insert (warnings, text, (void *)"");
}

//  Read every certificate of the directory again.
static void s_read (ml_agent_keys_t *self, const struct timespec *modified)
{
    zhashx_purge (self->files);
    self->seen = *modified;
    self->read = true;
    self->read_at = zclock_mono ();
    DIR *directory = opendir (self->directory);
    if (!directory)
        return; //  no key: the handshake refusal logs the key, the start checked the path
    size_t files = 0;
    zhashx_t *warnings = zhashx_new ();
    for (struct dirent *entry; (entry = readdir (directory)) && files < S_MAX_FILES;) {
        if (!s_certificate_name (entry->d_name))
            continue;
        files++;
        char path[4200], key[41], error[1400], text[2000];
        snprintf (path, sizeof path, "%s/%s", self->directory, entry->d_name);
        if (ml_agent_keys_read (path, key, error, sizeof error) != 0) {
            snprintf (text, sizeof text, "%s, so it lets no agent in", error);
            s_warn (self, warnings, text);
            continue;
        }
        const char *other = (const char *)zhashx_lookup (self->files, key);
        if (other) {
            char shown[600], other_shown[600];
            ml_log_escape (entry->d_name, shown, sizeof shown);
            ml_log_escape (other, other_shown, sizeof other_shown);
            snprintf (text, sizeof text,
                      "%s and %s hold the same key %s (an agent serves one firm: remove the "
                      "copy)",
                      other_shown, shown, key);
            s_warn (self, warnings, text);
            continue;
        }
        zhashx_insert (self->files, key, strdup (entry->d_name));
    }
    closedir (directory);
    zhashx_destroy (&self->warned);
    self->warned = warnings;
}

const char *ml_agent_keys_file (ml_agent_keys_t *self, const char *key)
{
    assert (self && key);
    struct stat status;
    struct timespec modified = {0, 0};
    if (stat (self->directory, &status) == 0)
        modified = status.st_mtim;
    if (!self->read || modified.tv_sec != self->seen.tv_sec ||
        modified.tv_nsec != self->seen.tv_nsec || zclock_mono () - self->read_at >= S_RESCAN_MS)
        s_read (self, &modified);
    return (const char *)zhashx_lookup (self->files, key);
}

bool ml_agent_keys_allowed (ml_agent_keys_t *self, const char *key)
{
    return *key && ml_agent_keys_file (self, key) != NULL;
}

void ml_agent_keys_test (bool verbose)
{
    printf (" * ml_agent_keys: ");
    char directory[128], path[300], error[1400], key[41];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    zcert_t *first = zcert_new (), *second = zcert_new ();
    snprintf (path, sizeof path, "%s/acme.cert", directory);
    assert (zcert_save_public (first, path) == 0);
    assert (ml_agent_keys_read (path, key, error, sizeof error) == 0);
    assert (streq (key, zcert_public_txt (first)));
    ml_agent_keys_t *keys = ml_agent_keys_new (directory);
    assert (ml_agent_keys_allowed (keys, zcert_public_txt (first)));
    assert (!ml_agent_keys_allowed (keys, zcert_public_txt (second)));
    assert (!ml_agent_keys_allowed (keys, ""));
    assert (streq (ml_agent_keys_file (keys, zcert_public_txt (first)), "acme.cert"));

    //  The same key in a second file (a copy, or one agent registered for two firms): the
    //  directory is read again at once (it changed), the key counts once, nothing ends.
    snprintf (path, sizeof path, "%s/copy.cert", directory);
    assert (zcert_save_public (first, path) == 0);
    //  A second registered agent, files that are no certificates, a FIFO, a hidden file and
    //  one of another name: read or skipped, and none of them hangs or ends the reading.
    snprintf (path, sizeof path, "%s/beta.cert", directory);
    assert (zcert_save_public (second, path) == 0);
    snprintf (path, sizeof path, "%s/junk.cert", directory);
    FILE *file = fopen (path, "w");
    fprintf (file, "curve\n    public-key = \"short\"\n");
    fclose (file);
    snprintf (path, sizeof path, "%s/binary.cert", directory);
    file = fopen (path, "w");
    fwrite ("\0\xff\n    \x01", 1, 7, file);
    fclose (file);
    snprintf (path, sizeof path, "%s/fifo.cert", directory);
    assert (mkfifo (path, 0600) == 0);
    assert (ml_agent_keys_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "is not a regular file"));
    snprintf (path, sizeof path, "%s/big.cert", directory);
    file = fopen (path, "w");
    for (int line = 0; line < 10000; line++)
        fprintf (file, "#   padding padding padding padding\n");
    fclose (file);
    assert (ml_agent_keys_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "is larger than"));
    snprintf (path, sizeof path, "%s/junk.cert", directory);
    assert (ml_agent_keys_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "no valid curve/public-key"));
    zcert_t *hidden = zcert_new ();
    snprintf (path, sizeof path, "%s/.hidden.cert", directory);
    assert (zcert_save_public (hidden, path) == 0);
    snprintf (path, sizeof path, "%s/acme.cert.bak", directory);
    zcert_t *backup = zcert_new ();
    assert (zcert_save_public (backup, path) == 0);
    assert (ml_agent_keys_allowed (keys, zcert_public_txt (first)));
    assert (ml_agent_keys_allowed (keys, zcert_public_txt (second)));
    assert (!ml_agent_keys_allowed (keys, zcert_public_txt (hidden)));
    assert (!ml_agent_keys_allowed (keys, zcert_public_txt (backup)));
    const char *holder = ml_agent_keys_file (keys, zcert_public_txt (first));
    assert (streq (holder, "acme.cert") || streq (holder, "copy.cert"));

    //  A certificate removed lets its agent in no more.
    snprintf (path, sizeof path, "%s/beta.cert", directory);
    assert (unlink (path) == 0);
    assert (!ml_agent_keys_allowed (keys, zcert_public_txt (second)));
    ml_agent_keys_destroy (&keys);
    ml_agent_keys_destroy (&keys);

    //  A directory that is not there (yet): no key.
    snprintf (path, sizeof path, "%s/none", directory);
    keys = ml_agent_keys_new (path);
    assert (!ml_agent_keys_allowed (keys, zcert_public_txt (first)));
    ml_agent_keys_destroy (&keys);
    snprintf (path, sizeof path, "%s/none.cert", directory);
    assert (ml_agent_keys_read (path, key, error, sizeof error) == -1);
    assert (strstr (error, "cannot read the certificate") && strstr (error, "No such file"));
    zcert_destroy (&first);
    zcert_destroy (&second);
    zcert_destroy (&hidden);
    zcert_destroy (&backup);
    ml_selftest_remove (directory);
    if (verbose)
        printf ("(directory reading checked) ");
    printf ("OK\n");
}
