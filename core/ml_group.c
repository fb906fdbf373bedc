/*  ml_group: group commit for the core's thread (see include/ml_group.h). */
#include "ml_group.h"
#include "ml_log.h"
#include "ml_selftest_support.h"

#include <assert.h>

struct _ml_group_t {
    ml_db_t *db;    //  borrowed
    bool active;    //  a round is on
    zlistx_t *held; //  s_held_t, in the order they were sent
    zlistx_t *sent; //  notes of messages that went (char *, owned)
};

typedef struct {
    zsock_t *socket; //  borrowed: the core's sockets outlive the group
    zmsg_t *message;
    char *note; //  or NULL
} s_held_t;

static void s_held_destroy (s_held_t **self_p)
{
    if (*self_p) {
        zmsg_destroy (&(*self_p)->message);
        zstr_free (&(*self_p)->note);
        free (*self_p);
        *self_p = NULL;
    }
}

ml_group_t *ml_group_new (ml_db_t *db)
{
    assert (db);
    ml_group_t *self = calloc (1, sizeof (ml_group_t));
    assert (self);
    self->db = db;
    self->held = zlistx_new ();
    zlistx_set_destructor (self->held, (zlistx_destructor_fn *)s_held_destroy);
    self->sent = zlistx_new ();
    zlistx_set_destructor (self->sent, (zlistx_destructor_fn *)zstr_free);
    return self;
}

void ml_group_destroy (ml_group_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zlistx_destroy (&(*self_p)->held);
        zlistx_destroy (&(*self_p)->sent);
        free (*self_p);
        *self_p = NULL;
    }
}

void ml_group_begin (ml_group_t *self)
{
    assert (self);
    if (self->active)
        return;
    self->active = true;
    ml_db_group_begin (self->db);
}

bool ml_group_active (ml_group_t *self)
{
    assert (self);
    return self->active;
}

static int s_send (ml_group_t *self, zsock_t *socket, zmsg_t **message_p, const char *note)
{
    if (zmsg_send (message_p, socket) != 0) {
        zmsg_destroy (message_p);
        return -1;
    }
    if (note)
        zlistx_add_end (self->sent, strdup (note));
    return 0;
}

int ml_group_send_now (ml_group_t *self, zsock_t *socket, zmsg_t **message_p, const char *note)
{
    assert (self && socket && message_p && *message_p);
    return s_send (self, socket, message_p, note);
}

int ml_group_send (ml_group_t *self, zsock_t *socket, zmsg_t **message_p, const char *note)
{
    assert (self && socket && message_p && *message_p);
    if (!self->active)
        return s_send (self, socket, message_p, note);
    s_held_t *held = calloc (1, sizeof (s_held_t));
    assert (held);
    held->socket = socket;
    held->message = *message_p;
    held->note = note ? strdup (note) : NULL;
    *message_p = NULL;
    zlistx_add_end (self->held, held);
    return 0;
}

int ml_group_end (ml_group_t *self)
{
    assert (self);
    if (!self->active)
        return 0;
    self->active = false;
    int rc = ml_db_group_end (self->db);
    if (rc != 0)
        ml_log (ML_LOG_ERROR,
                "core store: committing a round of %zu message(s) failed (%s): its writes are "
                "undone and its messages dropped",
                zlistx_size (self->held), ml_db_error (self->db)->message);
    s_held_t *held;
    while ((held = (s_held_t *)zlistx_first (self->held))) {
        //  A reply to a client or agent that went away is lost, as it would be unheld.
        if (rc == 0)
            s_send (self, held->socket, &held->message, held->note);
        zlistx_delete (self->held, zlistx_cursor (self->held));
    }
    return rc;
}

char *ml_group_sent (ml_group_t *self)
{
    assert (self);
    char *note = (char *)zlistx_first (self->sent);
    if (note)
        zlistx_detach_cur (self->sent);
    return note;
}

//  Whether socket has a message waiting, within timeout_ms.
static bool s_waiting (zsock_t *socket, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (socket, NULL);
    bool waiting = zpoller_wait (poller, timeout_ms) == socket;
    zpoller_destroy (&poller);
    return waiting;
}

static int64_t s_count (ml_db_t *db)
{
    int64_t value = -1;
    ml_db_query_t *query = ml_db_query (db, "SELECT COUNT(*) FROM g_row", NULL);
    assert (query && ml_db_fetch (query) == 1 && ml_db_int64 (query, 0, &value) == 0);
    ml_db_query_destroy (&query);
    return value;
}

void ml_group_test (bool verbose)
{
    printf (" * ml_group: ");
    ml_log_level_t saved = ml_log_level ();
    ml_log_setup (NULL, verbose ? ML_LOG_DEBUG : ML_LOG_ERROR);
    char directory[128];
    ml_store_t *store = ml_selftest_store (directory, sizeof directory);
    assert (store);
    ml_db_t *db = ml_store_db (store);
    ml_db_error_t error;
    ml_db_t *other = ml_db_new (ml_selftest_store_connection (directory), &error);
    assert (other);
    assert (ml_db_execute (db, "CREATE TABLE g_parent (id BIGINT PRIMARY KEY)", NULL) >= 0);
    assert (ml_db_execute (db,
                           "CREATE TABLE g_row (name TEXT PRIMARY KEY, parent BIGINT REFERENCES"
                           " g_parent (id) DEFERRABLE INITIALLY DEFERRED)",
                           NULL) >= 0);
    zsock_t *out = zsock_new_pair ("@inproc://ml_group_test");
    zsock_t *in = zsock_new_pair (">inproc://ml_group_test");
    assert (out && in);
    ml_group_t *group = ml_group_new (db);

    //  Outside a round a message goes at once.
    zmsg_t *message = zmsg_new ();
    zmsg_addstr (message, "now");
    assert (ml_group_send (group, out, &message, "n0") == 0 && !message);
    char *text = zstr_recv (in);
    assert (text && streq (text, "now"));
    zstr_free (&text);
    text = ml_group_sent (group);
    assert (text && streq (text, "n0") && !ml_group_sent (group));
    zstr_free (&text);

    //  In a round: the write is not seen and the message not sent before the round ends;
    //  then both, the messages in their order.
    ml_group_begin (group);
    assert (ml_group_active (group) && ml_db_grouping (db));
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_row (name) VALUES ('one')", NULL) == 1);
    assert (ml_db_commit (db) == 0);
    for (int index = 0; index < 2; index++) {
        message = zmsg_new ();
        zmsg_addstr (message, index ? "second" : "first");
        assert (ml_group_send (group, out, &message, index ? "n2" : "n1") == 0);
    }
    //  A message the socket refuses (an agent gone: ROUTER_MANDATORY) leaves no note.
    zsock_t *router = zsock_new_router ("inproc://ml_group_router");
    assert (router);
    zsock_set_router_mandatory (router, 1);
    message = zmsg_new ();
    zmsg_addstr (message, "nobody");
    zmsg_addstr (message, "lost");
    assert (ml_group_send (group, router, &message, "lost") == 0);
    assert (!s_waiting (in, 50) && s_count (other) == 0 && !ml_group_sent (group));
    //  What depends on nothing written goes at once, in a round too.
    message = zmsg_new ();
    zmsg_addstr (message, "at once");
    assert (ml_group_send_now (group, out, &message, NULL) == 0);
    text = zstr_recv (in);
    assert (text && streq (text, "at once"));
    zstr_free (&text);
    assert (ml_group_end (group) == 0);
    assert (!ml_group_active (group) && !ml_db_grouping (db));
    assert (s_count (other) == 1);
    text = zstr_recv (in);
    assert (text && streq (text, "first"));
    zstr_free (&text);
    text = zstr_recv (in);
    assert (text && streq (text, "second"));
    zstr_free (&text);
    for (int index = 0; index < 2; index++) {
        text = ml_group_sent (group);
        assert (text && streq (text, index ? "n2" : "n1"));
        zstr_free (&text);
    }
    assert (!ml_group_sent (group));
    zsock_destroy (&router);

    //  A round whose commit fails: its writes undone, its messages never sent.
    ml_group_begin (group);
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_row (name) VALUES ('two')", NULL) == 1);
    assert (ml_db_commit (db) == 0);
    assert (ml_db_begin (db) == 0);
    assert (ml_db_execute (db, "INSERT INTO g_row (name, parent) VALUES ('orphan', 9)", NULL) == 1);
    assert (ml_db_commit (db) == 0);
    message = zmsg_new ();
    zmsg_addstr (message, "never");
    assert (ml_group_send (group, out, &message, "never") == 0);
    assert (ml_group_end (group) == -1);
    assert (!s_waiting (in, 50) && s_count (other) == 1 && s_count (db) == 1);
    assert (!ml_group_sent (group));
    assert (ml_group_end (group) == 0); //  no round: nothing to do

    //  Held messages of a group destroyed mid-round are dropped.
    ml_group_begin (group);
    message = zmsg_new ();
    zmsg_addstr (message, "dropped");
    assert (ml_group_send (group, out, &message, NULL) == 0);
    ml_db_group_end (db);
    ml_group_destroy (&group);
    ml_group_destroy (&group);
    assert (!s_waiting (in, 50));

    zsock_destroy (&in);
    zsock_destroy (&out);
    ml_db_destroy (&other);
    ml_store_destroy (&store);
    ml_selftest_remove (directory);
    ml_log_setup (NULL, saved);
    printf ("OK\n");
}
