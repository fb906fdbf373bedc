/*  ml_agent: the agent service, an actor.

    It connects out to the core (DEALER, CURVE), replicates the matter database's open
    invoices and trust balances (snapshot, then changes above a commit-safe cursor), and
    applies postings through the contract, answering only after commit. Protocol:
    docs/protocol.md. Start it with zactor_new (ml_agent_actor, &settings); it signals when
    ready and ends on "$TERM".
*/
#ifndef ML_AGENT_H_INCLUDED
#define ML_AGENT_H_INCLUDED

#include "ml_service.h"

#include <czmq.h>
#include <stdbool.h>

#define ML_AGENT_VERSION ML_VERSION

#define ML_AGENT_MAX_CORES 8 //  core/endpoint and up to seven core/others

//  One core node the agent may talk to, with the key it pins for it.
typedef struct {
    char endpoint[256];
    char public_key[41];
} ml_agent_core_t;

typedef struct {
    char dialect[16];
    char connection[1024]; //  ODBC connection string; may hold a password, never logged
    char core_endpoint[256];
    char core_public_key[41];
    char certificate[512]; //  path of the agent's secret certificate file
    int batch_rows;
    int poll_interval_ms;
    int snapshot_rows_per_second; //  0: the snapshot is not paced
    int statement_timeout_ms;
    //  More core nodes sharing the firms (core/others, docs/multinode.md), tried in turn.
    ml_agent_core_t others[ML_AGENT_MAX_CORES - 1];
    size_t other_count;
} ml_agent_settings_t;

//  Read settings from a configuration file (config/agent.cfg documents each key).
//  Returns 0, or -1 with a message for the person who wrote the file.
int ml_agent_settings_load (ml_agent_settings_t *settings, const char *path, char *error,
                            size_t error_size);

//  What 'matterlink-agent check' found at the core (ml_agent_check_core).
typedef enum {
    ML_CHECK_OK,          //  handshake and HELLO accepted (or the firm's agent holds the route)
    ML_CHECK_KEY_REFUSED, //  the core refused this agent's key: register it
    ML_CHECK_NO_ANSWER,   //  no answer to the handshake: wrong pinned core key, or not a core
    ML_CHECK_UNREACHABLE, //  connection refused, no route, name unknown, or no TCP answer
    ML_CHECK_REFUSED      //  the core answered HELLO with another error (version, store)
} ml_check_result_t;

//  Reach the core as the agent would: a TCP connection, the CURVE handshake, then HELLO (with
//  the matter database's epoch and high-water; hello NULL stops after the handshake, for a
//  database that cannot be read), all within timeout_ms. Writes one line for the operator
//  (what happened and what to do) into text.
ml_check_result_t ml_agent_check_core (const ml_agent_settings_t *settings,
                                       const char *certificate_public_path, const char *epoch,
                                       const uint64_t *high_water, int timeout_ms, char *text,
                                       size_t text_size);

//  The actor. args is an ml_agent_settings_t *, copied before the actor signals.
void ml_agent_actor (zsock_t *pipe, void *args);

void ml_agent_test (bool verbose);

#endif
