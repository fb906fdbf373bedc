/*  ml_contacts: each firm's agent as the core last heard it. See include/ml_contacts.h. */
#include "ml_contacts.h"

#include <assert.h>
#include <czmq.h>
#include <time.h>

typedef struct {
    int64_t contact_at; //  wall-clock ms of the agent's last message
    uint64_t agent_cursor;
    int64_t change_at;  //  the replica last took a batch of changes (or a snapshot's end)
    int64_t refused_at; //  the last batch refused by the firm's limit, while it lasts
    char refused[200];  //  why
} s_contact_t;

struct _ml_contacts_t {
    zhashx_t *firms; //  firm id -> s_contact_t
};

ml_contacts_t *ml_contacts_new (void)
{
    ml_contacts_t *self = calloc (1, sizeof (ml_contacts_t));
    assert (self);
    self->firms = zhashx_new ();
    zhashx_set_destructor (self->firms, (zhashx_destructor_fn *)zstr_free);
    return self;
}

void ml_contacts_destroy (ml_contacts_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->firms);
        free (*self_p);
        *self_p = NULL;
    }
}

static s_contact_t *s_contact (ml_contacts_t *self, const char *firm)
{
    s_contact_t *contact = zhashx_lookup (self->firms, firm);
    if (!contact) {
        contact = calloc (1, sizeof (s_contact_t));
        assert (contact);
        zhashx_insert (self->firms, firm, contact);
    }
    return contact;
}

void ml_contacts_note (ml_contacts_t *self, const char *firm, const ml_msg_t *message,
                       int64_t now_ms)
{
    s_contact_t *contact = s_contact (self, firm);
    contact->contact_at = now_ms;
    bool batch = message->id == ML_MSG_SNAPSHOT_END || message->id == ML_MSG_CHANGES;
    uint64_t reported = message->id == ML_MSG_HELLO                     ? message->high_water
                        : batch || message->id == ML_MSG_POSTING_RESULT ? message->cursor
                                                                        : 0;
    //  A new HELLO may report less (a database restored from backup): it is the truth now.
    if (message->id == ML_MSG_HELLO || reported > contact->agent_cursor)
        contact->agent_cursor = reported;
    if (batch)
        contact->change_at = now_ms;
}

void ml_contacts_refused (ml_contacts_t *self, const char *firm, const char *reason, int64_t now_ms)
{
    //  Cleared after every batch the replica takes: a lookup, nothing made or written.
    s_contact_t *contact = reason ? s_contact (self, firm) : zhashx_lookup (self->firms, firm);
    if (contact && (reason || contact->refused_at)) {
        contact->refused_at = reason ? now_ms : 0;
        snprintf (contact->refused, sizeof contact->refused, "%s", reason ? reason : "");
    }
}

static json_t *s_wall_time (int64_t ms)
{
    if (ms <= 0)
        return json_null ();
    time_t seconds = (time_t)(ms / 1000);
    struct tm parts;
    char text[40], buf[48];
    if (!gmtime_r (&seconds, &parts))
        return json_null ();
    strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%S", &parts);
    snprintf (buf, sizeof buf, "%s.%03dZ", text, (int)(ms % 1000));
    return json_string (buf);
}

void ml_contacts_status (ml_contacts_t *self, json_t *firm, int64_t now_ms)
{
    s_contact_t *contact =
        zhashx_lookup (self->firms, json_string_value (json_object_get (firm, "firm_id")) ?: "");
    json_int_t cursor = json_integer_value (json_object_get (firm, "cursor"));
    json_int_t behind = contact && (json_int_t)contact->agent_cursor > cursor
                            ? (json_int_t)contact->agent_cursor - cursor
                            : 0;
    //  Behind since the replica last moved, or (nothing taken since the core started) since
    //  the agent's contact.
    int64_t since = contact ? (contact->change_at ? contact->change_at : contact->contact_at) : 0;
    json_object_set_new (firm, "last_contact_at", s_wall_time (contact ? contact->contact_at : 0));
    json_object_set_new (firm, "agent_cursor",
                         contact ? json_integer ((json_int_t)contact->agent_cursor) : json_null ());
    json_object_set_new (firm, "behind_changes", json_integer (behind));
    json_object_set_new (
        firm, "behind_seconds",
        json_integer (behind && since && now_ms > since ? (now_ms - since) / 1000 : 0));
    json_object_set_new (firm, "last_change_at", s_wall_time (contact ? contact->change_at : 0));
    bool refused = contact && contact->refused_at;
    json_object_set_new (firm, "refused_at", s_wall_time (refused ? contact->refused_at : 0));
    json_object_set_new (firm, "refused", refused ? json_string (contact->refused) : json_null ());
}

void ml_contacts_test (bool verbose)
{
    (void)verbose;
    printf (" * ml_contacts: ");
    ml_contacts_t *contacts = ml_contacts_new ();
    //  Unknown since the core started: nulls, nothing behind.
    json_t *firm = json_pack ("{s:s, s:i}", "firm_id", "acme", "cursor", 10);
    ml_contacts_status (contacts, firm, 1764936000000);
    assert (json_is_null (json_object_get (firm, "last_contact_at")) &&
            json_is_null (json_object_get (firm, "agent_cursor")) &&
            json_integer_value (json_object_get (firm, "behind_changes")) == 0);

    //  HELLO says the agent can read up to 25: 15 changes behind, since the contact.
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    hello->high_water = 25;
    ml_contacts_note (contacts, "acme", hello, 1764936000000);
    ml_contacts_status (contacts, firm, 1764936004500);
    assert (json_integer_value (json_object_get (firm, "agent_cursor")) == 25);
    assert (json_integer_value (json_object_get (firm, "behind_changes")) == 15);
    assert (json_integer_value (json_object_get (firm, "behind_seconds")) == 4);
    assert (streq (json_string_value (json_object_get (firm, "last_contact_at")),
                   "2025-12-05T12:00:00.000Z"));
    assert (json_is_null (json_object_get (firm, "last_change_at")));

    //  CHANGES up to 20 taken (the store's cursor follows): 5 behind, since that batch.
    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    changes->cursor = 20;
    ml_contacts_note (contacts, "acme", changes, 1764936010000);
    json_object_set_new (firm, "cursor", json_integer (20));
    ml_contacts_status (contacts, firm, 1764936012000);
    assert (json_integer_value (json_object_get (firm, "behind_changes")) == 5);
    assert (json_integer_value (json_object_get (firm, "behind_seconds")) == 2);
    assert (streq (json_string_value (json_object_get (firm, "last_change_at")),
                   "2025-12-05T12:00:10.000Z"));

    //  A POSTING-RESULT reports 30, a PING nothing new; then CHANGES to 30: up to date.
    ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
    result->cursor = 30;
    ml_contacts_note (contacts, "acme", result, 1764936013000);
    ml_msg_t *ping = ml_msg_new (ML_MSG_PING);
    ml_contacts_note (contacts, "acme", ping, 1764936014000);
    ml_contacts_status (contacts, firm, 1764936014000);
    assert (json_integer_value (json_object_get (firm, "agent_cursor")) == 30 &&
            json_integer_value (json_object_get (firm, "behind_changes")) == 10);
    changes->cursor = 30;
    ml_contacts_note (contacts, "acme", changes, 1764936015000);
    json_object_set_new (firm, "cursor", json_integer (30));
    ml_contacts_status (contacts, firm, 1764936020000);
    assert (json_integer_value (json_object_get (firm, "behind_changes")) == 0 &&
            json_integer_value (json_object_get (firm, "behind_seconds")) == 0);

    //  A database restored from backup: HELLO reports less, and that is the truth now.
    hello->high_water = 12;
    ml_contacts_note (contacts, "acme", hello, 1764936030000);
    ml_contacts_status (contacts, firm, 1764936030000);
    assert (json_integer_value (json_object_get (firm, "agent_cursor")) == 12 &&
            json_integer_value (json_object_get (firm, "behind_changes")) == 0);
    //  Another firm is apart.
    json_t *other = json_pack ("{s:s, s:i}", "firm_id", "beta", "cursor", 0);
    ml_contacts_status (contacts, other, 1764936030000);
    assert (json_is_null (json_object_get (other, "last_contact_at")));
    //  A batch refused by the firm's limit shows until the replica takes one again.
    assert (json_is_null (json_object_get (firm, "refused")) &&
            json_is_null (json_object_get (firm, "refused_at")));
    ml_contacts_refused (contacts, "acme", "a change batch would take the replica past 5",
                         1764936040000);
    ml_contacts_status (contacts, firm, 1764936041000);
    ml_contacts_status (contacts, other, 1764936041000);
    assert (streq (json_string_value (json_object_get (firm, "refused")),
                   "a change batch would take the replica past 5"));
    assert (streq (json_string_value (json_object_get (firm, "refused_at")),
                   "2025-12-05T12:00:40.000Z"));
    assert (json_is_null (json_object_get (other, "refused")));
    ml_contacts_refused (contacts, "acme", NULL, 0);
    ml_contacts_status (contacts, firm, 1764936042000);
    assert (json_is_null (json_object_get (firm, "refused")));
    json_decref (other);
    ml_msg_destroy (&hello);
    ml_msg_destroy (&changes);
    ml_msg_destroy (&result);
    ml_msg_destroy (&ping);
    json_decref (firm);
    ml_contacts_destroy (&contacts);
    ml_contacts_destroy (&contacts);
    printf ("OK\n");
}
