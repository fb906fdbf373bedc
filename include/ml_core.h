/*  ml_core: the payment core service, an actor.

    It binds a ROUTER for agents (CURVE, with a ZAP handler over a certificate store so an
    unknown key is refused, and logged with the peer's address), attributes each message to a firm
   by its authenticated key, keeps the firm's replica in the store, and delivers the postings outbox
   until each posting has a result. It also serves the admin API (JSON over a REP socket) used by
   the staff CLI. Start it with zactor_new (ml_core_actor, &settings); it ends on "$TERM".
*/
#ifndef ML_CORE_H_INCLUDED
#define ML_CORE_H_INCLUDED

#include "ml_logins.h"
#include "ml_mailer.h"
#include "ml_processor.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct {
    char endpoint[256];          //  where agents connect, e.g. tcp://*:7800
    char certificate[512];       //  the core's secret certificate file
    char agents[512];            //  directory of registered agents' public certificates
    char store[1024];            //  connection string of the core's store (ml_db)
    char admin_endpoint[512];    //  admin API, e.g. ipc:///var/lib/matterlink/admin.sock
    char api_endpoint[512];      //  matterlink-web's API ("" = none), e.g. ipc://.../api.sock
    int readers;                 //  threads answering reading ops of both sockets (core/readers)
    ml_logins_settings_t portal; //  the portal's links and sessions (section "portal")
    int heartbeat_ms;
    int window;
    int redelivery_ms;
    //  The most replica rows a firm may have (core/max_firm_items): an agent is outside input,
    //  and the store is shared by every firm.
    int max_firm_items;
    int autopay_wait_minutes; //  how long an Auto-Pay run waits for its agent (docs/config.md)
    //  Card payments need a processor: only a configuration with a "processor" section has
    //  one (its API key is a secret: ml_processor_settings_wipe once the core has started).
    bool has_processor;
    ml_processor_settings_t processor;
    //  E-mail (receipts, payment links, notices) goes out when there is a "mail" section
    //  (docs/mail.md); its password is a secret like the processor's key.
    bool has_mail;
    ml_mailer_settings_t mail;
    //  Several nodes on one store (docs/multinode.md): this node's id ("" = the only node, no
    //  leases), where agents reach it (redirects name it), and how long a firm's lease lasts.
    char node[64];
    char advertise[256];
    int lease_seconds;
    //  Where this node takes requests other nodes forward to it ("" = none) and the endpoint
    //  they connect to ("" = forward itself): core/forward, core/forward_advertise.
    char forward[256];
    char forward_advertise[256];
} ml_core_settings_t;

//  Read settings from a configuration file (config/core.cfg documents each key).
int ml_core_settings_load (ml_core_settings_t *settings, const char *path, char *error,
                           size_t error_size);

//  The actor. args is an ml_core_settings_t *, copied before the actor signals.
void ml_core_actor (zsock_t *pipe, void *args);

void ml_core_test (bool verbose);

#endif
