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

//  Start an actor and wait for its report. Returns the actor, or NULL if it failed.
zactor_t *ml_service_start (zactor_fn *actor, void *args);

//  Called by the actor once, after its initialization. If started is false, it waits for
//  $TERM and the actor must return right after this call.
void ml_service_ready (zsock_t *pipe, bool started);

void ml_service_test (bool verbose);

#endif
