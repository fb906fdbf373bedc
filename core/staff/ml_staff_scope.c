/*  ml_staff_scope: a staff member sees only their own firm. Every object id a request names
    is checked here, in one table of member -> query, before any handler runs; another firm's
    id gets the same "not found" as an id that does not exist. See include/ml_staff.h. */
#include "ml_staff_internal.h"

#include <assert.h>
#include <czmq.h>

//  Each member that names an object, and the query that finds the object's firm.
static const struct {
    const char *member;
    bool integer; //  a whole number, else text
    const char *query;
} s_members[] = {
    {"payer_id", true, "SELECT firm_id FROM payer WHERE payer_id = ?"},
    {"as_payer", true, "SELECT firm_id FROM payer WHERE payer_id = ?"}, //  search as a payer
    {"method_id", true,
     "SELECT p.firm_id FROM payment_method m JOIN payer p ON p.payer_id = m.payer_id"
     " WHERE m.method_id = ?"},
    {"association_id", true,
     "SELECT p.firm_id FROM association a JOIN payer p ON p.payer_id = a.payer_id"
     " WHERE a.association_id = ?"},
    {"schedule_id", true, "SELECT firm_id FROM autopay_schedule WHERE schedule_id = ?"},
    {"posting_uuid", false, "SELECT firm_id FROM posting WHERE posting_uuid = ?"},
    {"charge_key", false,
     "SELECT p.firm_id FROM charge c JOIN payment p ON p.payment_uuid = c.payment_uuid"
     " WHERE c.charge_key = ?"},
    {"payment_uuid", false, "SELECT firm_id FROM payment WHERE payment_uuid = ?"},
    {"mail_id", true, "SELECT firm_id FROM mail WHERE mail_id = ?"},
    {"link_id", false, "SELECT firm_id FROM payment_link WHERE link_id = ?"},
    {"staff_id", true, "SELECT firm_id FROM staff_user WHERE staff_id = ?"},
};

static json_t *s_not_found (void)
{
    return ml_admin_error ("not found");
}

json_t *ml_staff_scope (ml_staff_t *self, const ml_actor_t *actor, bool takes_firm,
                        const json_t *request, json_t **scoped)
{
    assert (self && actor && scoped);
    *scoped = NULL;
    if (actor->kind != ML_ACTOR_STAFF || !*actor->firm_id)
        return s_not_found ();
    json_t *firm = json_object_get (request, "firm");
    if (firm && !(json_is_string (firm) && streq (json_string_value (firm), actor->firm_id)))
        return s_not_found ();
    for (size_t index = 0; index < sizeof s_members / sizeof s_members[0]; index++) {
        json_t *value = json_object_get (request, s_members[index].member);
        if (!value || json_is_null (value))
            continue;
        if (s_members[index].integer ? !json_is_integer (value) : !json_is_string (value))
            return ml_admin_error ("'%s' must be %s", s_members[index].member,
                                   s_members[index].integer ? "a whole number" : "a string");
        bool failed = false;
        json_t *row = s_members[index].integer
                          ? ml_staff_row (self,
                                          ml_odbc_query (self->odbc, s_members[index].query, "i",
                                                         (int64_t)json_integer_value (value)),
                                          &failed)
                          : ml_staff_row (self,
                                          ml_odbc_query (self->odbc, s_members[index].query, "s",
                                                         json_string_value (value)),
                                          &failed);
        if (failed)
            return ml_staff_store_failed (self, "scope");
        bool ours = row && streq (ml_staff_text (row, "firm_id") ?: "", actor->firm_id);
        json_decref (row);
        if (!ours)
            return s_not_found ();
    }
    json_t *copy = json_deep_copy (request);
    json_object_del (copy, "staff_session");
    json_object_del (copy, "csrf");
    if (takes_firm)
        json_object_set_new (copy, "firm", json_string (actor->firm_id));
    //  Who did it: every history, selection and posting source records the staff member.
    json_object_set_new (copy, "staff", json_string (actor->name));
    *scoped = copy;
    return NULL;
}

void ml_staff_scope_object (const json_t *request, const json_t *reply, char *object, size_t size)
{
    size_t used = 0;
    *object = 0;
    const json_t *sources[] = {request, reply};
    for (int source = 0; source < 2; source++)
        for (size_t index = 0; index < sizeof s_members / sizeof s_members[0]; index++) {
            json_t *value = json_object_get (sources[source], s_members[index].member);
            //  The request's ids first; the reply adds a new object's id.
            if (!value || (source == 1 && json_object_get (request, s_members[index].member)))
                continue;
            char text[80];
            if (json_is_integer (value))
                snprintf (text, sizeof text, "%lld", (long long)json_integer_value (value));
            else if (json_is_string (value))
                snprintf (text, sizeof text, "%.64s", json_string_value (value));
            else
                continue;
            if (used < size)
                used += (size_t)snprintf (object + used, size - used, "%s%s=%s", used ? " " : "",
                                          s_members[index].member, text);
        }
    //  A new payer or posting comes back inside an object of the reply.
    const char *nested[] = {"payer", "posting", "schedule", NULL};
    for (int which = 0; nested[which] && reply; which++) {
        json_t *inner = json_object_get (reply, nested[which]);
        const char *ids[] = {"payer_id", "posting_uuid", "schedule_id"};
        json_t *value = json_object_get (inner, ids[which]);
        if (value && !json_object_get (request, ids[which]) && used < size) {
            if (json_is_integer (value))
                used += (size_t)snprintf (object + used, size - used, "%s%s=%lld", used ? " " : "",
                                          ids[which], (long long)json_integer_value (value));
            else if (json_is_string (value))
                used += (size_t)snprintf (object + used, size - used, "%s%s=%.64s", used ? " " : "",
                                          ids[which], json_string_value (value));
        }
    }
}

void ml_staff_scope_reply (const ml_actor_t *actor, const char *op, json_t *reply)
{
    if (actor->kind != ML_ACTOR_STAFF || !json_is_object (reply))
        return;
    //  status lists every firm: a staff member sees their own.
    if (streq (op, "status")) {
        json_t *firms = json_object_get (reply, "firms");
        for (size_t index = json_array_size (firms); index > 0; index--) {
            const char *firm =
                json_string_value (json_object_get (json_array_get (firms, index - 1), "firm_id"));
            if (!firm || !streq (firm, actor->firm_id))
                json_array_remove (firms, index - 1);
        }
    }
}
