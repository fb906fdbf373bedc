/*  ml_finder: searches of the firm's matter database, as the admin API asks for them.

    Staff search by client name, client number, matter number, matter description or
    invoice number, over open invoices or trust ledgers, with filters and paging; a payer's
    view is the same search limited to what the payer's associations allow. Searches run
    in the firm's own database, through the agent's outbound link: this class turns an
    admin request into a SEARCH message, and the agent's SEARCH-RESULT into the reply. A
    payer's scope is sent with the search (the agent's SQL applies it) and every row that
    comes back is checked against it again here, so a row outside the scope never reaches
    a payer whatever the agent says.

    Ops: "search", "payer-view" and "association-add" (docs/admin-api.md).
*/
#ifndef ML_FINDER_H_INCLUDED
#define ML_FINDER_H_INCLUDED

#include "ml_msg.h"
#include "ml_payers.h"

#include <jansson.h>
#include <stdbool.h>

//  Default and largest wait for an answer, in milliseconds.
#define ML_FINDER_DEADLINE_MS 5000

//  True if op is one of this class's ops.
bool ml_finder_handles (const char *op);

//  Build the SEARCH for an admin request. Returns the message (caller owns it; its request
//  id is 0 for the caller to set), with *context (new reference) saying what the reply
//  needs and firm_id filled with the firm whose agent must run it. On bad input or an
//  unknown payer returns NULL with *reply set to the error reply (new reference), and
//  nothing is changed. A payer with no associations gets an empty view at once: NULL
//  with *reply holding it.
ml_msg_t *ml_finder_request (ml_payers_t *payers, const json_t *request, char *firm_id,
                             size_t firm_size, json_t **context, json_t **reply);

//  Turn the agent's answer into the reply (new reference). When the op needs another
//  search first (association-add looks for a client or matter in the trust ledgers when
//  no open invoice names it), returns NULL with *follow_up set to the next SEARCH (caller
//  owns it) and context updated; the caller sends it and calls again with its answer.
json_t *ml_finder_reply (ml_payers_t *payers, json_t *context, const ml_msg_t *answer,
                         ml_msg_t **follow_up);

//  An item row as JSON (new reference), as the admin API shows it.
json_t *ml_finder_item_json (const ml_item_t *item);

void ml_finder_test (bool verbose);

#endif
