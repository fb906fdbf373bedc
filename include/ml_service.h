/*  ml_service: starting an actor that may fail to initialize.

    zactor_new returns an actor even when its initialization failed (the signal's status is
    not checked), so matterlink's services report their start explicitly: the actor calls
    ml_service_ready with the outcome, and ml_service_start returns NULL for a service that
    could not start. A failed service still waits for $TERM, so destruction stays normal.
*/
#ifndef ML_SERVICE_H_INCLUDED
#define ML_SERVICE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

//  matterlink's version: what --version prints and the agent sends in HELLO.
#define ML_VERSION "0.1.0"

//  One option of a daemon's command line: its name ("--config"), another spelling or NULL
//  ("-c"), and where its value goes (every option takes one).
typedef struct {
    const char *name;
    const char *alias;
    const char **value;
} ml_service_option_t;

//  Read a daemon's command line, one way for the three daemons: argv[1] is the command, one
//  of commands (space-separated), then options as --name VALUE (options ends with a {NULL}
//  row); "keygen" needs --out, every other command --config. Returns -1 with *command set
//  when the daemon goes on; else the exit code it ends with now: 0 after -h or --help (the
//  usage on standard output) or --version ("PROGRAM 0.1.0"), 2 after a usage error, said on
//  standard error ("PROGRAM: what is wrong", then the usage): no command, a command or
//  option that is not one, an option without its value, a needed option left out. What was
//  typed is quoted with control characters escaped, at most 64 bytes of it.
typedef void (ml_service_usage_fn) (FILE *stream);
int ml_service_command_line (const char *program, ml_service_usage_fn *usage, int argc,
                             char *argv[], const char *commands, ml_service_option_t *options,
                             const char **command);

//  Start an actor and wait for its report. Returns the actor, or NULL if it failed.
zactor_t *ml_service_start (zactor_fn *actor, void *args);

//  Called by the actor once, after its initialization. If started is false, it waits for
//  $TERM and the actor must return right after this call.
void ml_service_ready (zsock_t *pipe, bool started);

//  Makes every file this process creates from now on private to its user (umask 077): the
//  store and its -wal, -shm and journal files, and anything else a daemon writes, hold
//  payment data. Called by the daemons' mains before they open anything.
void ml_service_private_files (void);

//  The core's admin API endpoint and who may use it. The API has no authentication of its
//  own: its only guard is the ipc socket file's permissions, so any other endpoint (tcp,
//  or an abstract ipc://@name, which has no file) needs allow_network, and the socket is
//  made for its owner only, or its owner and one group.
typedef struct {
    char section[16]; //  "admin" or "api": the configuration section it was read from
    char endpoint[512];
    bool allow_network; //  admin/allow_tcp = 1
    char group[64];     //  admin/group, or empty
    unsigned gid;
} ml_service_admin_t;

//  Read and check admin/endpoint, admin/allow_tcp and admin/group from the configuration
//  file at path. Returns 0, or -1 with the problem in error (a configuration error).
int ml_service_admin_load (ml_service_admin_t *admin, const char *path, char *error,
                           size_t error_size);

//  The same for another socket with the same rules (section "api": matterlink-web's API).
//  When not required and section/endpoint is absent, returns 0 with an empty endpoint.
int ml_service_socket_load (ml_service_admin_t *admin, const char *path, const char *section,
                            bool required, char *error, size_t error_size);

//  Once the socket is bound (owner only): with a group, give the socket file to that group
//  with mode 0660. Returns 0, or -1 with error set.
int ml_service_admin_grant (const ml_service_admin_t *admin, char *error, size_t error_size);

void ml_service_test (bool verbose);

#endif
