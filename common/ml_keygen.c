/*  ml_keygen: certificate generation. See include/ml_keygen.h. */
#include "ml_keygen.h"
#include "ml_selftest_support.h"

#include <czmq.h>

int ml_keygen (const char *path, const char *role, char *public_key, char *error, size_t error_size)
{
    char secret_path[1024];
    snprintf (secret_path, sizeof secret_path, "%s_secret", path);
    if (zsys_file_exists (path) || zsys_file_exists (secret_path)) {
        snprintf (error, error_size,
                  "%s already exists; remove it (and its _secret file) to make a new key", path);
        return -1;
    }
    zcert_t *certificate = zcert_new ();
    if (!certificate) {
        snprintf (error, error_size, "cannot make a certificate");
        return -1;
    }
    zcert_set_meta (certificate, "role", "%s", role);
    zcert_set_meta (certificate, "created-by", "matterlink");
    //  The secret file is created private, never readable by others even for a moment.
    mode_t saved_mask = umask (0077);
    int rc = zcert_save_secret (certificate, secret_path);
    umask (saved_mask);
    if (rc == 0)
        rc = zcert_save_public (certificate, path);
    if (rc != 0)
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
    else
        snprintf (public_key, 41, "%s", zcert_public_txt (certificate));
    zcert_destroy (&certificate);
    return rc == 0 ? 0 : -1;
}

void ml_keygen_test (bool verbose)
{
    printf (" * ml_keygen: ");
    char directory[128];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    char path[200], secret[220], key[41], error[300];
    snprintf (path, sizeof path, "%s/agent.cert", directory);
    snprintf (secret, sizeof secret, "%s_secret", path);
    assert (ml_keygen (path, "agent", key, error, sizeof error) == 0);
    assert (strlen (key) == 40);
    struct stat info;
    assert (stat (secret, &info) == 0 && (info.st_mode & 0777) == 0600);
    zcert_t *loaded = zcert_load (secret);
    assert (loaded && streq (zcert_public_txt (loaded), key));
    zcert_destroy (&loaded);
    assert (ml_keygen (path, "agent", key, error, sizeof error) == -1);
    assert (strstr (error, "already exists"));
    unlink (path);
    unlink (secret);
    rmdir (directory);
    printf ("OK\n");
}
