/*  ml_contacts: what the core knows of each firm's agent beyond its store, for the status op
    (docs/admin-api.md "status") and the staff dashboard: the agent's last contact and how far
    the replica is behind what the agent reported.

    The agent reports the change ids it can read in HELLO (high-water) and the cursors of
    SNAPSHOT-END, CHANGES and POSTING-RESULT; the replica's cursor is the store's. The
    difference is the changes the replica still lacks; the seconds behind run from the last
    batch the replica took. Kept in memory, per firm, after a session ends (so an offline
    agent's last contact still shows); empty when the core starts.
*/
#ifndef ML_CONTACTS_H_INCLUDED
#define ML_CONTACTS_H_INCLUDED

#include "ml_msg.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _ml_contacts_t ml_contacts_t;

ml_contacts_t *ml_contacts_new (void);
void ml_contacts_destroy (ml_contacts_t **self_p);

//  The firm's agent sent message at now_ms (wall clock), after the core handled it.
void ml_contacts_note (ml_contacts_t *self, const char *firm, const ml_msg_t *message,
                       int64_t now_ms);

//  The core refused a batch of the firm's agent because the firm's replica would pass
//  core/max_firm_items (ERROR 413), for reason, at now_ms; reason NULL: the replica took a
//  snapshot's end or changes since, and the refusal is over.
void ml_contacts_refused (ml_contacts_t *self, const char *firm, const char *reason,
                          int64_t now_ms);

//  Add to a status firm object (firm_id, cursor) last_contact_at, agent_cursor,
//  behind_changes, behind_seconds, last_change_at, refused_at and refused as of now_ms.
void ml_contacts_status (ml_contacts_t *self, json_t *firm, int64_t now_ms);

void ml_contacts_test (bool verbose);

#endif
