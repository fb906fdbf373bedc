/*  ml_keygen: certificate generation. See include/ml_keygen.h. */
#include "ml_keygen.h"
#include "ml_config.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <czmq.h>
#include <sys/wait.h>

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

zcert_t *ml_keygen_load_secret (const char *key, const char *path, const char *role, char *error,
                                size_t error_size)
{
    bool core = streq (role, "core");
    char shown[600];
    ml_log_escape (path, shown, sizeof shown);
    struct stat status;
    if (stat (path, &status) != 0 && errno == ENOENT) {
        //  Only here may the hint mention keygen: a new key is refused by the other side
        //  until it is registered (an agent's) or pinned by every agent (the core's).
        char public_path[600];
        snprintf (public_path, sizeof public_path, "%s", shown);
        size_t length = strlen (public_path);
        if (length > 7 && streq (public_path + length - 7, "_secret"))
            public_path[length - 7] = 0;
        snprintf (error, error_size,
                  "%s: the %s's secret certificate %s does not exist. If the path is wrong, fix "
                  "%s (it names the PATH_secret file that 'keygen --out PATH' wrote). Only if "
                  "this %s never had a key: 'matterlink-%s keygen --out %s', then %s",
                  key, role, shown, key, role, role, public_path,
                  core ? "give the public key it prints to every agent (core/public_key): "
                         "agents refuse the core until they pin it"
                       : "register the public half at the core ('matterlink-core register-agent'): "
                         "the core refuses this agent until then");
        return NULL;
    }
    //  The public half named by mistake: its own mode does not matter, the setting does.
    //  (zcert_load is not used: it would read PATH_secret when given PATH, a file this
    //  function has not checked. ml_config_load reads a regular file, capped.)
    char ignored[600];
    ml_config_t *peek = ml_config_load (path, ignored, sizeof ignored);
    bool public_only = peek && !*ml_config_string (peek, "curve/secret-key", "");
    ml_config_destroy (&peek);
    if (public_only) {
        snprintf (error, error_size,
                  "%s: %s holds no secret key: it must name the PATH_secret file that "
                  "'keygen --out PATH' wrote, not the public certificate PATH",
                  key, shown);
        return NULL;
    }
    char problem[900];
    int fd = ml_config_open_private (key, path, "secret key", problem, sizeof problem);
    if (fd < 0) {
        //  The key in the file is the registered one: fix the file, do not replace the key.
        snprintf (error, error_size,
                  "%s (the %s's secret certificate: fix this file and keep its key, a new key "
                  "would not be %s)",
                  problem, role, core ? "pinned by the agents" : "registered at the core");
        return NULL;
    }
    //  Read from the descriptor just checked, so the file judged is the file used.
    char text[4096];
    ssize_t length = read (fd, text, sizeof text - 1);
    close (fd);
    zconfig_t *root = NULL;
    if (length > 0) {
        text[length] = 0;
        root = ml_config_parse (text, (size_t)length, NULL, NULL);
    }
    explicit_bzero (text, sizeof text);
    const char *public_txt = root ? zconfig_get (root, "curve/public-key", "") : "";
    const char *secret_txt = root ? zconfig_get (root, "curve/secret-key", "") : "";
    uint8_t public_key[32], secret_key[32];
    char derived[41] = "";
    zcert_t *certificate = NULL;
    if (strlen (public_txt) == 40 && strlen (secret_txt) == 40 &&
        zmq_z85_decode (public_key, public_txt) && zmq_z85_decode (secret_key, secret_txt) &&
        zmq_curve_public (derived, secret_txt) == 0 && streq (derived, public_txt) &&
        !streq (secret_txt, "0000000000000000000000000000000000000000"))
        certificate = zcert_new_from (public_key, secret_key);
    explicit_bzero (secret_key, sizeof secret_key);
    zconfig_destroy (&root);
    if (!certificate)
        snprintf (error, error_size,
                  "%s: %s is not a valid secret certificate (no matching public and secret "
                  "key: is it damaged?)",
                  key, shown);
    return certificate;
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

    //  Loading a secret certificate: only an owner-only file of this user's.
    char message[1200];
    loaded = ml_keygen_load_secret ("agent/certificate", secret, "agent", message, sizeof message);
    assert (loaded && streq (zcert_public_txt (loaded), key));
    zcert_destroy (&loaded);
    int modes[] = {0640, 0604, 0644};
    for (size_t index = 0; index < sizeof modes / sizeof modes[0]; index++) {
        assert (chmod (secret, (mode_t)modes[index]) == 0);
        assert (
            !ml_keygen_load_secret ("agent/certificate", secret, "agent", message, sizeof message));
        if (verbose)
            printf ("\n    %s", message);
        assert (strstr (message, "lets other users read the secret key: chmod 600"));
        assert (!strstr (message, "keygen"));
    }
    assert (chmod (secret, 0400) == 0);
    loaded = ml_keygen_load_secret ("core/certificate", secret, "core", message, sizeof message);
    assert (loaded);
    zcert_destroy (&loaded);
    assert (chmod (secret, 0600) == 0);
    //  An unreadable path says why, in the system's words, and suggests no new key.
    char unreadable[300];
    snprintf (unreadable, sizeof unreadable, "%s/x_secret", secret);
    assert (
        !ml_keygen_load_secret ("agent/certificate", unreadable, "agent", message, sizeof message));
    if (verbose)
        printf ("\n    %s", message);
    assert (strstr (message, strerror (ENOTDIR)) && !strstr (message, "keygen"));
    //  The public half is not a secret certificate.
    assert (!ml_keygen_load_secret ("agent/certificate", path, "agent", message, sizeof message));
    if (verbose)
        printf ("\n    %s", message);
    assert (strstr (message, "holds no secret key"));
    //  A FIFO (or any file that is not a regular one) is refused at once, not waited on.
    snprintf (unreadable, sizeof unreadable, "%s/fifo_secret", directory);
    assert (mkfifo (unreadable, 0600) == 0);
    assert (
        !ml_keygen_load_secret ("agent/certificate", unreadable, "agent", message, sizeof message));
    if (verbose)
        printf ("\n    %s", message);
    assert (strstr (message, "is not a regular file"));
    unlink (unreadable);
    //  A missing file is the one case that may say how to make and register a key.
    snprintf (unreadable, sizeof unreadable, "%s/typo.cert_secret", directory);
    assert (
        !ml_keygen_load_secret ("agent/certificate", unreadable, "agent", message, sizeof message));
    if (verbose)
        printf ("\n    %s", message);
    assert (strstr (message, "does not exist") && strstr (message, "register-agent"));
    assert (strstr (message, "keygen --out ") && !strstr (message, "typo.cert_secret', then"));
    //  As another user (root can read anything, so the test drops to nobody): a file that
    //  user may not read gets the system's reason.
    if (geteuid () == 0) {
        assert (chmod (directory, 0711) == 0);
        assert (chown (secret, 65534, 65534) == 0 && chmod (secret, 0) == 0);
        pid_t child = fork ();
        assert (child >= 0);
        if (child == 0) {
            bool denied = setgid (65534) == 0 && setuid (65534) == 0 &&
                          !ml_keygen_load_secret ("agent/certificate", secret, "agent", message,
                                                  sizeof message) &&
                          strstr (message, strerror (EACCES)) && !strstr (message, "keygen");
            _exit (denied ? 0 : 1);
        }
        int child_status = 0;
        assert (waitpid (child, &child_status, 0) == child);
        assert (WIFEXITED (child_status) && WEXITSTATUS (child_status) == 0);
        //  Someone else's file, however private, is refused with the chown that fixes it.
        assert (chmod (secret, 0600) == 0);
        assert (
            !ml_keygen_load_secret ("agent/certificate", secret, "agent", message, sizeof message));
        assert (strstr (message, "belongs to user id 65534") && strstr (message, "chown 0 "));
    }
    if (verbose)
        printf ("\n");
    unlink (path);
    unlink (secret);
    rmdir (directory);
    printf ("OK\n");
}
