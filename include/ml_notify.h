/*  ml_notify: which events e-mail whom, per firm (issue 13 point 6; docs/mail.md
    "Notifications").

    A firm's staff choose, per event, whether it mails and to which addresses (none given:
    the firm's contact address, `matterlink firm contact`). The events:

        autopay_failed     an Auto-Pay run declined or failed ("Error-Failed AutoPay"): on
                           by default, as the seed advises
        posting_rejected   the matter system rejected a posting: on by default
        link_paid          a payment link was paid: off by default
        payment_received   a charge was approved (any source): off by default
        agent_offline      the firm's agent has been away more than N minutes: off by default

    The settings live in the store (table notify_setting); the classes that know an event
    (ml_autopay, the payments' notice sweep, the core's tick for the agent) ask for its
    recipients and queue one mail per address through the outbox, in their own transaction.
    Not a class with state: every function works on the store's connection.
*/
#ifndef ML_NOTIFY_H_INCLUDED
#define ML_NOTIFY_H_INCLUDED

#include "ml_mailer.h"
#include "ml_store.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  At most this many addresses per event.
#define ML_NOTIFY_RECIPIENTS_MAX 10

//  Create the settings table (CREATE ... IF NOT EXISTS). Returns 0, or -1 with error set.
int ml_notify_schema (ml_db_t *db, char *error, size_t error_size);

//  The ops "notify-settings" ({firm}: every event with its state) and "notify-set" ({firm,
//  event, enabled, recipients, minutes, staff}). NULL for another op.
json_t *ml_notify_execute (ml_store_t *store, const char *op, const json_t *request);

//  The addresses event mails at firm, as a JSON array of strings (new reference): empty when
//  the event is off or nobody is set and the firm has no contact address; NULL on a store
//  error.
json_t *ml_notify_recipients (ml_db_t *db, const char *firm, const char *event);

//  Queue the event's mail to each of its recipients (kind = event; dedupe_key for the first,
//  "dedupe_key#N" for the Nth), inside the caller's transaction (neither begins nor commits).
//  Returns how many were queued (0: the event is off or has nobody), or -1 with error set.
int ml_notify_enqueue (ml_mailer_t *mailer, ml_db_t *db, const char *event, const char *dedupe_key,
                       const char *firm, const char *subject, const char *body, char *error,
                       size_t error_size);

//  The core's tick: online is the firms whose agent is connected now (firm ids). A firm
//  with agent_offline on whose agent has been away for more than its minutes gets one mail
//  per absence. Returns the mails queued (0 or more), or -1 on a store error.
int ml_notify_agents (ml_store_t *store, ml_mailer_t *mailer, zlistx_t *online);

//  An SQL condition: whether EVENT (an SQL string literal, such as "'posting_rejected'")
//  mails anyone at the firm named by the SQL expression FIRM, as ml_notify_recipients
//  decides, for sweeps that should skip what nobody is to hear of.
#define ML_NOTIFY_ON_SQL(FIRM, EVENT)                                                              \
    "(EXISTS (SELECT 1 FROM notify_setting n_s WHERE n_s.firm_id = " FIRM                          \
    " AND n_s.event = " EVENT " AND n_s.enabled = 1 AND (n_s.recipients <> '' OR EXISTS"           \
    " (SELECT 1 FROM firm_contact n_c WHERE n_c.firm_id = " FIRM "))) OR (" EVENT                  \
    " IN ('autopay_failed', 'posting_rejected') AND NOT EXISTS (SELECT 1 FROM notify_setting"      \
    " n_s WHERE n_s.firm_id = " FIRM " AND n_s.event = " EVENT ") AND EXISTS (SELECT 1 FROM"       \
    " firm_contact n_c WHERE n_c.firm_id = " FIRM ")))"

void ml_notify_test (bool verbose);

#endif
