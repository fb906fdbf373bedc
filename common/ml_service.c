/*  ml_service: actors that report their start. See include/ml_service.h. */
#include "ml_service.h"
#include "ml_config.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <grp.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

typedef struct {
    zactor_fn *actor;
    void *args;
} s_shim_t;

//  Runs the service, then frees what OpenSSL (under libcurl's SMTP and HTTPS) keeps for this
//  thread, while the thread still runs: left to OpenSSL's exit handler, that state is freed
//  by the main thread and again by this thread's own exit, a race ASan catches.
static void s_shim (zsock_t *pipe, void *args)
{
    s_shim_t shim = *(s_shim_t *)args;
    free (args);
    shim.actor (pipe, shim.args);
    OPENSSL_thread_stop ();
}

zactor_t *ml_service_start (zactor_fn *actor, void *args)
{
    s_shim_t *shim = malloc (sizeof (s_shim_t));
    assert (shim);
    shim->actor = actor;
    shim->args = args;
    zactor_t *service = zactor_new (s_shim, shim);
    if (!service) {
        free (shim);
        return NULL;
    }
    char *report = zstr_recv (service);
    bool started = report && streq (report, "STARTED");
    zstr_free (&report);
    if (!started)
        zactor_destroy (&service);
    return service;
}

void ml_service_ready (zsock_t *pipe, bool started)
{
    zsock_signal (pipe, 0);
    zstr_send (pipe, started ? "STARTED" : "FAILED");
    if (!started) {
        char *command = zstr_recv (pipe);
        zstr_free (&command);
    }
}

void ml_service_private_files (void)
{
    umask (077);
}

int ml_service_admin_load (ml_service_admin_t *admin, const char *path, char *error,
                           size_t error_size)
{
    return ml_service_socket_load (admin, path, "admin", true, error, error_size);
}

int ml_service_socket_load (ml_service_admin_t *admin, const char *path, const char *section,
                            bool required, char *error, size_t error_size)
{
    memset (admin, 0, sizeof *admin);
    snprintf (admin->section, sizeof admin->section, "%s", section);
    ml_config_t *config = ml_config_load (path, error, error_size);
    if (!config)
        return -1;
    char key[64];
    snprintf (key, sizeof key, "%s/endpoint", section);
    snprintf (admin->endpoint, sizeof admin->endpoint, "%s",
              ml_config_string (config, key, required ? NULL : ""));
    snprintf (key, sizeof key, "%s/allow_tcp", section);
    admin->allow_network = ml_config_int (config, key, 0, 0, 1) == 1;
    snprintf (key, sizeof key, "%s/group", section);
    snprintf (admin->group, sizeof admin->group, "%s", ml_config_string (config, key, ""));
    if (!required && !*admin->endpoint && !ml_config_error (config)) {
        ml_config_destroy (&config);
        return 0; //  an optional socket that is not configured
    }
    int rc = -1;
    char shown[600];
    ml_log_escape (admin->endpoint, shown, sizeof shown);
    //  An ipc socket is guarded by its file's permissions; an abstract one (ipc://@name)
    //  has no file, so anyone on the host could connect to it, like to a tcp port.
    bool guarded = strncmp (admin->endpoint, "ipc://", 6) == 0 && admin->endpoint[6] != '@' &&
                   admin->endpoint[6] != 0;
    if (ml_config_error (config))
        snprintf (error, error_size, "%s", ml_config_error (config));
    else if (!guarded && !admin->allow_network)
        snprintf (error, error_size,
                  "%s: %s/endpoint '%s' is not an ipc:// socket file: the %s API has no "
                  "authentication of its own, so anyone who can reach it could %s. "
                  "Use ipc://PATH, or set %s/allow_tcp = 1 if the network path to it is "
                  "protected otherwise",
                  path, section, shown, section,
                  streq (section, "admin") ? "take payments" : "act for the portal's payers",
                  section);
    else if (*admin->group && !guarded)
        snprintf (error, error_size,
                  "%s: %s/group applies only to an ipc:// socket file, not to '%s'", path, section,
                  shown);
    else if (*admin->group) {
        struct group entry, *found = NULL;
        char buffer[4096];
        ml_log_escape (admin->group, shown, sizeof shown);
        if (getgrnam_r (admin->group, &entry, buffer, sizeof buffer, &found) != 0 || !found)
            snprintf (error, error_size, "%s: %s/group '%s' is not a group on this system", path,
                      section, shown);
        else {
            admin->gid = (unsigned)found->gr_gid;
            rc = 0;
        }
    } else
        rc = 0;
    ml_config_destroy (&config);
    return rc;
}

int ml_service_admin_grant (const ml_service_admin_t *admin, char *error, size_t error_size)
{
    if (!*admin->group || !*admin->endpoint)
        return 0;
    //  The socket was bound under umask 077, so it was never open to anyone else; now the
    //  group gets read and write (connecting to a Unix socket needs write permission).
    const char *path = admin->endpoint + 6;
    char shown[600];
    ml_log_escape (path, shown, sizeof shown);
    if (chown (path, (uid_t)-1, (gid_t)admin->gid) != 0 || chmod (path, 0660) != 0) {
        snprintf (error, error_size, "cannot give the %s socket %s to group %s: %s",
                  *admin->section ? admin->section : "admin", shown, admin->group,
                  strerror (errno));
        return -1;
    }
    return 0;
}

static void s_test_service (zsock_t *pipe, void *args)
{
    bool started = *(bool *)args;
    ml_service_ready (pipe, started);
    if (!started)
        return;
    char *command = zstr_recv (pipe);
    zstr_free (&command);
}

//  What a person typed, for a message: control characters escaped, at most 64 bytes.
static const char *s_typed (const char *text, char *buf, size_t size)
{
    char cut[65];
    snprintf (cut, sizeof cut, "%s", text);
    return ml_log_escape (cut, buf, size);
}

static bool s_is_word (const char *words, const char *word)
{
    size_t length = strlen (word);
    for (const char *cursor = words; length && (cursor = strstr (cursor, word)); cursor++)
        if ((cursor == words || cursor[-1] == ' ') && (cursor[length] == ' ' || !cursor[length]))
            return true;
    return false;
}

static const char **s_option (ml_service_option_t *options, const char *name)
{
    for (ml_service_option_t *option = options; option->name; option++)
        if (streq (option->name, name))
            return option->value;
    return NULL;
}

//  The reading itself: 0 go on, 1 help, 2 version, -1 wrong (why in error).
static int s_args (int argc, char *argv[], const char *commands, ml_service_option_t *options,
                   const char **command, char *error, size_t error_size)
{
    char typed[300];
    *command = argc > 1 ? argv[1] : NULL;
    if (*command && (streq (*command, "-h") || streq (*command, "--help")))
        return 1;
    if (*command && streq (*command, "--version"))
        return 2;
    if (!*command) {
        snprintf (error, error_size, "say what to do: one of %s", commands);
        return -1;
    }
    if (!s_is_word (commands, *command)) {
        snprintf (error, error_size, "'%s' is not a command; the commands are %s%s",
                  s_typed (*command, typed, sizeof typed), commands,
                  **command == '-' ? " (a command comes before its options)" : "");
        return -1;
    }
    for (int index = 2; index < argc; index++) {
        ml_service_option_t *option = options;
        while (option->name && !streq (argv[index], option->name) &&
               !(option->alias && streq (argv[index], option->alias)))
            option++;
        if (!option->name) {
            snprintf (error, error_size, "'%s' is not an option of %s",
                      s_typed (argv[index], typed, sizeof typed), *command);
            return -1;
        }
        if (index + 1 >= argc) {
            snprintf (error, error_size, "%s needs a value", option->name);
            return -1;
        }
        *option->value = argv[++index];
    }
    bool keygen = streq (*command, "keygen");
    const char **needed = s_option (options, keygen ? "--out" : "--config");
    if (needed && !*needed) {
        if (keygen)
            snprintf (error, error_size, "keygen needs --out PATH (where the certificate goes)");
        else
            snprintf (error, error_size, "%s needs -c FILE (the configuration file)", *command);
        return -1;
    }
    return 0;
}

int ml_service_command_line (const char *program, ml_service_usage_fn *usage, int argc,
                             char *argv[], const char *commands, ml_service_option_t *options,
                             const char **command)
{
    char error[400];
    int read = s_args (argc, argv, commands, options, command, error, sizeof error);
    if (read == 1)
        usage (stdout);
    else if (read == 2)
        printf ("%s %s\n", program, ML_VERSION);
    else if (read == -1) {
        fprintf (stderr, "%s: %s\n", program, error);
        usage (stderr);
    }
    return read == 0 ? -1 : read == -1 ? 2 : 0;
}

void ml_service_test (bool verbose)
{
    printf (" * ml_service: ");
    //  A daemon's command line.
    {
        const char *config = NULL, *level = NULL, *command = NULL;
        ml_service_option_t options[] = {
            {"--config", "-c", &config}, {"--log-level", NULL, &level}, {NULL, NULL, NULL}};
        char error[200];
        char *good[] = {"x", "run", "-c", "a.cfg", "--log-level", "info"};
        assert (s_args (6, good, "run keygen", options, &command, error, sizeof error) == 0 &&
                streq (command, "run") && streq (config, "a.cfg") && streq (level, "info"));
        char *help[] = {"x", "--help"}, *version[] = {"x", "--version"};
        assert (s_args (2, help, "run", options, &command, error, sizeof error) == 1);
        assert (s_args (2, version, "run", options, &command, error, sizeof error) == 2);
        assert (s_args (1, help, "run keygen", options, &command, error, sizeof error) == -1 &&
                streq (error, "say what to do: one of run keygen"));
        char *first[] = {"x", "--config", "a.cfg"};
        assert (s_args (3, first, "run", options, &command, error, sizeof error) == -1 &&
                strstr (error, "'--config' is not a command") &&
                strstr (error, "a command comes before its options"));
        char *part[] = {"x", "ru", "-c", "a"};
        assert (s_args (4, part, "run", options, &command, error, sizeof error) == -1 &&
                strstr (error, "'ru' is not a command"));
        char *stranger[] = {"x", "run", "--out\x1b[31m", "a"};
        assert (s_args (4, stranger, "run", options, &command, error, sizeof error) == -1 &&
                strstr (error, "is not an option of run") && !strchr (error, '\x1b'));
        char *alone[] = {"x", "run"};
        config = NULL;
        assert (s_args (2, alone, "run", options, &command, error, sizeof error) == -1 &&
                streq (error, "run needs -c FILE (the configuration file)"));
        char *bare[] = {"x", "run", "-c"};
        assert (s_args (3, bare, "run", options, &command, error, sizeof error) == -1 &&
                streq (error, "--config needs a value"));
    }
    bool started = true;
    zactor_t *service = ml_service_start (s_test_service, &started);
    assert (service);
    zactor_destroy (&service);
    started = false;
    service = ml_service_start (s_test_service, &started);
    assert (service == NULL);
    zactor_destroy (&service);

    //  The admin endpoint: only an ipc socket file, unless the network is allowed.
    char directory[128], path[160], error[800];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (path, sizeof path, "%s/core.cfg", directory);
    struct group *own = getgrgid (getegid ());
    assert (own);
    char own_group[64];
    snprintf (own_group, sizeof own_group, "%s", own->gr_name);
    struct {
        const char *text, *expected;
    } cases[] = {
        {"admin\n    endpoint = ipc:///tmp/x.sock\n", NULL},
        {"admin\n    endpoint = tcp://127.0.0.1:7900\n", "is not an ipc:// socket file"},
        {"admin\n    endpoint = ipc://@matterlink\n", "is not an ipc:// socket file"},
        {"admin\n    endpoint = tcp://127.0.0.1:7900\n    allow_tcp = 1\n", NULL},
        {"admin\n    endpoint = tcp://127.0.0.1:7900\n    allow_tcp = yes\n",
         "admin/allow_tcp must be a whole number from 0 to 1"},
        {"admin\n    endpoint = ipc:///tmp/x.sock\n    group = no-such-group-ml\n",
         "admin/group 'no-such-group-ml' is not a group"},
        {"admin\n    endpoint = tcp://127.0.0.1:7900\n    allow_tcp = 1\n    group = root\n",
         "admin/group applies only to an ipc://"},
        {"core\n    window = 1\n", "admin/endpoint is required but missing"},
    };
    ml_service_admin_t admin;
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++) {
        ml_selftest_write (path, cases[index].text, 0600);
        int rc = ml_service_admin_load (&admin, path, error, sizeof error);
        if (verbose)
            printf ("\n    %s", rc ? error : "(accepted)");
        if (cases[index].expected)
            assert (rc == -1 && strstr (error, cases[index].expected));
        else
            assert (rc == 0);
    }
    //  The web API's socket: optional, with the same rules under its own section.
    struct {
        const char *text, *expected;
    } api_cases[] = {
        {"admin\n    endpoint = ipc:///tmp/x.sock\n", NULL},
        {"api\n    endpoint = ipc:///tmp/api.sock\n", NULL},
        {"api\n    endpoint = tcp://127.0.0.1:7901\n",
         "api/endpoint 'tcp://127.0.0.1:7901' is not"},
        {"api\n    endpoint = tcp://127.0.0.1:7901\n    allow_tcp = 1\n", NULL},
        {"api\n    endpoint = ipc:///tmp/api.sock\n    group = no-such-group-ml\n",
         "api/group 'no-such-group-ml' is not a group"},
    };
    for (size_t index = 0; index < sizeof api_cases / sizeof api_cases[0]; index++) {
        ml_selftest_write (path, api_cases[index].text, 0600);
        int rc = ml_service_socket_load (&admin, path, "api", false, error, sizeof error);
        if (api_cases[index].expected)
            assert (rc == -1 && strstr (error, api_cases[index].expected));
        else
            assert (rc == 0 && streq (admin.section, "api"));
    }
    assert (ml_service_socket_load (&admin, path, "api", false, error, sizeof error) == -1);
    ml_selftest_write (path, "admin\n    endpoint = ipc:///tmp/x.sock\n", 0600);
    assert (ml_service_socket_load (&admin, path, "api", false, error, sizeof error) == 0);
    assert (*admin.endpoint == 0 && ml_service_admin_grant (&admin, error, sizeof error) == 0);
    //  With a group, the socket file goes to that group, mode 0660; without, it stays.
    char text[400], socket_path[200];
    snprintf (socket_path, sizeof socket_path, "%s/admin.sock", directory);
    snprintf (text, sizeof text, "admin\n    endpoint = ipc://%s\n    group = %s\n", socket_path,
              own_group);
    ml_selftest_write (path, text, 0600);
    assert (ml_service_admin_load (&admin, path, error, sizeof error) == 0);
    assert (admin.gid == (unsigned)getegid ());
    mode_t saved_mask = umask (077);
    zsock_t *socket = zsock_new_rep (NULL);
    assert (zsock_bind (socket, "ipc://%s", socket_path) == 0);
    umask (saved_mask);
    struct stat status;
    //  A socket made under umask 077 is 0700: nobody but its owner may connect.
    assert (stat (socket_path, &status) == 0 && (status.st_mode & 077) == 0);
    assert (ml_service_admin_grant (&admin, error, sizeof error) == 0);
    assert (stat (socket_path, &status) == 0 && (status.st_mode & 0777) == 0660);
    assert (status.st_gid == getegid ());
    zsock_destroy (&socket);
    unlink (socket_path);
    unlink (path);
    rmdir (directory);
    printf ("%sOK\n", verbose ? "\n" : "");
}
