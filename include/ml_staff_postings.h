/*  ml_staff_postings: the postings op's filters and pages for Manage Postings (the staff app's
    /staff/postings, docs/admin-api.md "postings").

    The plain op (firm, status, limit) stays ml_store_postings'. A request that also names a
    client, a source, dates, amounts, a page (before), one posting (posting_uuid: its row with
    its payment) or the "waiting" state comes here: one
    firm's postings, newest first, each row also with the payment it belongs to (a card
    charge's, or a refund's, void's or chargeback's), at most limit a page, and next_before
    for the next page. Every filter is an index walk, not a scan, however many postings the
    store holds: the firm, then the state, client or source, in posting order; dates become
    a range of posting numbers (found through an index on the creation time); amounts narrow
    what those walks find.
*/
#ifndef ML_STAFF_POSTINGS_H_INCLUDED
#define ML_STAFF_POSTINGS_H_INCLUDED

#include "ml_store.h"

#include <jansson.h>
#include <stdbool.h>

//  The indexes the filters walk (CREATE INDEX IF NOT EXISTS). 0, or -1 with error set.
int ml_staff_postings_schema (ml_store_t *store, char *error, size_t error_size);

//  Whether a postings request needs this class (a filter beyond firm, status and limit).
bool ml_staff_postings_wanted (const json_t *request);

//  The reply to such a request: {ok, postings: [...], next_before?}, or an error reply
//  naming the first bad member (new reference).
json_t *ml_staff_postings (ml_store_t *store, const json_t *request);

void ml_staff_postings_test (bool verbose);

#endif
