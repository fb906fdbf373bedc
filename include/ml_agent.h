/*  ml_agent: the agent service, an actor.

    It connects out to the core (DEALER, CURVE), replicates the matter database's open
    invoices and trust balances (snapshot, then changes above a commit-safe cursor), and
    applies postings through the contract, answering only after commit. Protocol:
    docs/protocol.md. Start it with zactor_new (ml_agent_actor, &settings); it signals when
    ready and ends on "$TERM".
*/
#ifndef ML_AGENT_H_INCLUDED
#define ML_AGENT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#define ML_AGENT_VERSION "0.1.0"

typedef struct {
    char dialect[16];
    char connection[1024]; //  ODBC connection string; may hold a password, never logged
    char core_endpoint[256];
    char core_public_key[41];
    char certificate[512]; //  path of the agent's secret certificate file
    int batch_rows;
    int poll_interval_ms;
    int statement_timeout_ms;
} ml_agent_settings_t;

//  Read settings from a configuration file (config/agent.cfg documents each key).
//  Returns 0, or -1 with a message for the person who wrote the file.
int ml_agent_settings_load (ml_agent_settings_t *settings, const char *path, char *error,
                            size_t error_size);

//  The actor. args is an ml_agent_settings_t *, copied before the actor signals.
void ml_agent_actor (zsock_t *pipe, void *args);

void ml_agent_test (bool verbose);

#endif
