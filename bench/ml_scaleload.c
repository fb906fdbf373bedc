/*  ml_scaleload: the load client of the scale benchmark (bench/scale.sh). It speaks the admin
    API (docs/admin-api.md) as the operator, over WINDOW DEALER sockets that each hold one
    request at a time (a REQ socket's framing), so many requests are in flight at once without
    one process per payment.

    ADMIN may list several core nodes' admin endpoints, separated by commas: the payments of
    firm i go to the (i mod N)th, the node its simulated agent greets (ml_simagent).

    ml_scaleload setup ADMIN FIRMS OUT
        for firms f0001 .. fFIRMS: an OPERATING USD account, a payer and a saved card (a token of
        the core's test processor, docs/processor.md); writes "firm payer_id method_id" lines
    ml_scaleload pay ADMIN FIRMS_FILE ITEMS RATE SECONDS WINDOW
        card payments (op `payment`, one invoice line of 1.00 USD each) across the firms,
        round-robin, at RATE per second for SECONDS (open loop: a payment is due at its time
        whether or not the earlier ones were answered; at most WINDOW in flight), then asks the
        core (op `posting`) when each approved payment's posting was recorded "posted" and
        prints the payments' rate and the percentiles of payment to posted, from the moment
        the request was sent to the posted entry of the posting's history (the core's clock,
        the same machine's)
*/
#include <czmq.h>
#include <jansson.h>
#include <time.h>

typedef struct {
    zsock_t *dealer;
    bool busy;
    int64_t sent_us; //  wall clock, to compare with the core's timestamps
    size_t job;      //  the payment, or the firm during setup
    int step;
} s_slot_t;

typedef struct {
    char firm[24];
    long long payer_id, method_id;
} s_firm_t;

typedef struct {
    int64_t sent_us, replied_us, posted_us;
    char posting_uuid[37];
    bool approved;
} s_payment_t;

static int64_t s_wall_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static size_t s_nodes = 1; //  admin endpoints given (core nodes sharing one store)

//  Slot k talks to the (k mod N)th of the N comma-separated admin endpoints.
static s_slot_t *s_slots_new (const char *endpoints, size_t window)
{
    s_slot_t *slots = calloc (window, sizeof (s_slot_t));
    assert (slots);
    char *list = strdup (endpoints);
    char *node[64];
    s_nodes = 0;
    for (char *save = NULL, *one = strtok_r (list, ",", &save); one && s_nodes < 64;
         one = strtok_r (NULL, ",", &save))
        node[s_nodes++] = one;
    for (size_t index = 0; index < window; index++) {
        slots[index].dealer = zsock_new (ZMQ_DEALER);
        zsock_set_linger (slots[index].dealer, 0);
        zsock_set_sndhwm (slots[index].dealer, 0);
        if (zsock_connect (slots[index].dealer, "%s", node[index % s_nodes]) != 0) {
            fprintf (stderr, "ml_scaleload: cannot connect to %s\n", node[index % s_nodes]);
            exit (1);
        }
    }
    free (list);
    return slots;
}

static void s_slots_destroy (s_slot_t **slots_p, size_t window)
{
    for (size_t index = 0; index < window; index++)
        zsock_destroy (&(*slots_p)[index].dealer);
    free (*slots_p);
    *slots_p = NULL;
}

static void s_request (s_slot_t *slot, json_t *request)
{
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    zmq_send (zsock_resolve (slot->dealer), "", 0, ZMQ_SNDMORE);
    zmq_send (zsock_resolve (slot->dealer), text, strlen (text), 0);
    free (text);
    slot->busy = true;
    slot->sent_us = s_wall_us ();
}

//  Wait up to timeout_ms for replies; call back for each (slot index, parsed reply).
typedef void (s_reply_fn) (void *state, size_t slot, json_t *reply);

static void s_poll (s_slot_t *slots, size_t window, int timeout_ms, s_reply_fn *fn, void *state)
{
    zmq_pollitem_t items[window];
    for (size_t index = 0; index < window; index++)
        items[index] = (zmq_pollitem_t){zsock_resolve (slots[index].dealer), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (items, (int)window, timeout_ms) <= 0)
        return;
    for (size_t index = 0; index < window; index++) {
        if (!(items[index].revents & ZMQ_POLLIN))
            continue;
        zmsg_t *reply = zmsg_recv (slots[index].dealer);
        zframe_t *body = zmsg_last (reply);
        json_t *json =
            body ? json_loadb ((const char *)zframe_data (body), zframe_size (body), 0, NULL)
                 : NULL;
        slots[index].busy = false;
        fn (state, index, json);
        json_decref (json);
        zmsg_destroy (&reply);
    }
}

static size_t s_busy (s_slot_t *slots, size_t window)
{
    size_t busy = 0;
    for (size_t index = 0; index < window; index++)
        busy += slots[index].busy;
    return busy;
}

//  Setup ------------------------------------------------------------------------------------

typedef struct {
    s_slot_t *slots;
    s_firm_t *firms;
    size_t count, next, done, failed;
} s_setup_t;

static void s_setup_step (s_setup_t *self, size_t index)
{
    s_slot_t *slot = &self->slots[index];
    s_firm_t *firm = &self->firms[slot->job];
    if (slot->step == 0)
        s_request (slot, json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "account-add", "firm",
                                    firm->firm, "number", "OP-001", "type", "OPERATING", "currency",
                                    "USD", "merchant_account", "acct_operating"));
    else if (slot->step == 1) {
        char email[64];
        snprintf (email, sizeof email, "payer@%s.example", firm->firm);
        s_request (slot, json_pack ("{s:s, s:s, s:s, s:s}", "op", "payer-add", "firm", firm->firm,
                                    "name", "Bench Payer", "email", email));
    } else
        s_request (slot, json_pack ("{s:s, s:I, s:s, s:s, s:s, s:i, s:i}", "op", "method-add",
                                    "payer_id", (json_int_t)firm->payer_id, "token",
                                    "tok_visa_4242_122099_0123456789abcdef", "brand", "visa",
                                    "last4", "4242", "exp_month", 12, "exp_year", 2099));
}

static void s_setup_reply (void *state, size_t index, json_t *reply)
{
    s_setup_t *self = (s_setup_t *)state;
    s_slot_t *slot = &self->slots[index];
    s_firm_t *firm = &self->firms[slot->job];
    bool ok = reply && json_is_true (json_object_get (reply, "ok"));
    const char *error = reply ? json_string_value (json_object_get (reply, "error")) : NULL;
    //  An account made by an earlier run of the same store is fine.
    if (!ok && slot->step == 0 && error && strstr (error, "already has"))
        ok = true;
    if (!ok) {
        fprintf (stderr, "ml_scaleload: setup of %s, step %d: %s\n", firm->firm, slot->step,
                 error ? error : "no reply");
        self->failed++;
        slot->step = 3;
    } else if (slot->step == 1)
        firm->payer_id =
            json_integer_value (json_object_get (json_object_get (reply, "payer"), "payer_id"));
    else if (slot->step == 2)
        firm->method_id =
            json_integer_value (json_object_get (json_object_get (reply, "method"), "method_id"));
    if (++slot->step < 3)
        s_setup_step (self, index);
    else
        self->done++;
}

static int s_setup (const char *endpoint, size_t count, const char *out)
{
    size_t window = 16;
    s_setup_t self = {.slots = s_slots_new (endpoint, window),
                      .firms = calloc (count, sizeof (s_firm_t)),
                      .count = count};
    for (size_t index = 0; index < count; index++)
        snprintf (self.firms[index].firm, sizeof self.firms[index].firm, "f%04zu", index + 1);
    int64_t deadline = zclock_mono () + 120000;
    while (self.done < count && zclock_mono () < deadline && !zsys_interrupted) {
        for (size_t index = 0; index < window && self.next < count; index++)
            if (!self.slots[index].busy) {
                self.slots[index].job = self.next++;
                self.slots[index].step = 0;
                s_setup_step (&self, index);
            }
        s_poll (self.slots, window, 100, s_setup_reply, &self);
    }
    FILE *file = fopen (out, "w");
    for (size_t index = 0; file && index < count; index++)
        if (self.firms[index].method_id > 0)
            fprintf (file, "%s %lld %lld\n", self.firms[index].firm, self.firms[index].payer_id,
                     self.firms[index].method_id);
    if (file)
        fclose (file);
    s_slots_destroy (&self.slots, window);
    free (self.firms);
    if (self.done < count || self.failed)
        fprintf (stderr, "ml_scaleload: setup: %zu of %zu firms done, %zu failed\n", self.done,
                 count, self.failed);
    return self.done == count && self.failed == 0 && file ? 0 : 1;
}

//  Payments ---------------------------------------------------------------------------------

typedef struct {
    s_slot_t *slots;
    s_payment_t *payments;
    size_t answered, approved, refused, checked, posted;
    size_t *queue; //  payments whose posting is still to be confirmed
    size_t queue_head, queue_tail, queue_size;
    char last_error[300];
} s_pay_t;

static void s_pay_reply (void *state, size_t index, json_t *reply)
{
    s_pay_t *self = (s_pay_t *)state;
    s_payment_t *payment = &self->payments[self->slots[index].job];
    payment->replied_us = s_wall_us ();
    self->answered++;
    json_t *charge =
        json_array_get (json_object_get (json_object_get (reply, "payment"), "charges"), 0);
    const char *status = json_string_value (json_object_get (charge, "status"));
    const char *uuid = json_string_value (json_object_get (charge, "posting_uuid"));
    if (status && streq (status, "approved") && uuid) {
        payment->approved = true;
        snprintf (payment->posting_uuid, sizeof payment->posting_uuid, "%s", uuid);
        self->approved++;
    } else {
        self->refused++;
        const char *error = reply ? json_string_value (json_object_get (reply, "error")) : NULL;
        snprintf (self->last_error, sizeof self->last_error, "%s",
                  error    ? error
                  : status ? status
                           : "no reply");
    }
}

static int64_t s_parse_at (const char *text)
{
    struct tm tm = {0};
    int ms = 0;
    if (!text || sscanf (text, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm (&tm) * 1000000 + (int64_t)ms * 1000;
}

static void s_posting_reply (void *state, size_t index, json_t *reply)
{
    s_pay_t *self = (s_pay_t *)state;
    size_t job = self->slots[index].job;
    s_payment_t *payment = &self->payments[job];
    json_t *posting = json_object_get (reply, "posting");
    const char *status = json_string_value (json_object_get (posting, "status"));
    if (status && streq (status, "posted")) {
        json_t *history = json_object_get (posting, "history");
        for (size_t entry = 0; entry < json_array_size (history); entry++) {
            json_t *event = json_array_get (history, entry);
            const char *event_status = json_string_value (json_object_get (event, "status"));
            if (event_status && streq (event_status, "posted")) {
                payment->posted_us = s_parse_at (json_string_value (json_object_get (event, "at")));
                break;
            }
        }
        self->posted++;
    } else //  not yet: ask again later
        self->queue[self->queue_tail++ % self->queue_size] = job;
    self->checked++;
}

static int s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  Nearest rank: the smallest value with at least percent of them at or below it, in ms.
static double s_percentile (int64_t *values, size_t count, int percent)
{
    return count ? values[(count * (size_t)percent + 99) / 100 - 1] / 1e3 : 0;
}

static int s_pay (const char *endpoint, const char *firms_path, size_t items, double rate,
                  double seconds, size_t window)
{
    FILE *file = fopen (firms_path, "r");
    if (!file) {
        fprintf (stderr, "ml_scaleload: cannot read %s\n", firms_path);
        return 1;
    }
    size_t count = 0, capacity = 1024;
    s_firm_t *firms = calloc (capacity, sizeof (s_firm_t));
    while (fscanf (file, "%23s %lld %lld", firms[count].firm, &firms[count].payer_id,
                   &firms[count].method_id) == 3)
        if (++count == capacity)
            firms = realloc (firms, (capacity *= 2) * sizeof (s_firm_t));
    fclose (file);
    if (count == 0) {
        fprintf (stderr, "ml_scaleload: no firms in %s\n", firms_path);
        return 1;
    }
    size_t total = (size_t)(rate * seconds);
    s_pay_t self = {.slots = s_slots_new (endpoint, window),
                    .payments = calloc (total + 1, sizeof (s_payment_t))};
    size_t *next_invoice = calloc (count, sizeof (size_t));
    size_t sent = 0, behind = 0;
    int64_t start = zclock_usecs ();
    while (sent < total && !zsys_interrupted) {
        double elapsed = (double)(zclock_usecs () - start) / 1e6;
        size_t due = (size_t)(elapsed * rate) + 1;
        if (due > total)
            due = total;
        //  A payment goes to the node that owns its firm (firm i: node i mod N), which
        //  delivers its posting at once; another node's would wait for the owner's tick.
        while (sent < due) {
            s_slot_t *slot = NULL;
            for (size_t index = (sent % count) % s_nodes; index < window && !slot; index += s_nodes)
                if (!self.slots[index].busy)
                    slot = &self.slots[index];
            if (!slot)
                break; //  every slot of this payment's node is busy
            s_firm_t *firm = &firms[sent % count];
            char invoice[32];
            snprintf (invoice, sizeof invoice, "INV-%06zu",
                      next_invoice[sent % count]++ % items + 1);
            slot->job = sent;
            s_request (slot,
                       json_pack ("{s:s, s:s, s:I, s:I, s:s, s:[{s:s, s:i}]}", "op", "payment",
                                  "firm", firm->firm, "payer_id", (json_int_t)firm->payer_id,
                                  "method_id", (json_int_t)firm->method_id, "ar_message",
                                  "scale bench", "lines", "invoice", invoice, "amount_minor", 100));
            self.payments[sent++].sent_us = slot->sent_us;
        }
        if (sent < due)
            behind++; //  every slot busy while payments were due: the core is the limit
        s_poll (self.slots, window, 1, s_pay_reply, &self);
    }
    int64_t deadline = zclock_mono () + 60000;
    while (s_busy (self.slots, window) > 0 && zclock_mono () < deadline)
        s_poll (self.slots, window, 100, s_pay_reply, &self);
    double elapsed = (double)(zclock_usecs () - start) / 1e6;
    //  When was each approved payment's posting recorded "posted"? Ask the core.
    self.queue_size = self.approved + 1;
    self.queue = calloc (self.queue_size, sizeof (size_t));
    for (size_t index = 0; index < sent; index++)
        if (self.payments[index].approved)
            self.queue[self.queue_tail++] = index;
    deadline = zclock_mono () + 60000;
    while ((self.queue_head < self.queue_tail || s_busy (self.slots, window) > 0) &&
           zclock_mono () < deadline && !zsys_interrupted) {
        for (size_t index = 0; index < window && self.queue_head < self.queue_tail; index++) {
            s_slot_t *slot = &self.slots[index];
            if (slot->busy)
                continue;
            slot->job = self.queue[self.queue_head++ % self.queue_size];
            s_request (slot, json_pack ("{s:s, s:s}", "op", "posting", "posting_uuid",
                                        self.payments[slot->job].posting_uuid));
        }
        s_poll (self.slots, window, 100, s_posting_reply, &self);
    }
    int64_t *reply_us = calloc (sent + 1, sizeof (int64_t));
    int64_t *posted_us = calloc (sent + 1, sizeof (int64_t));
    size_t replies = 0, posteds = 0;
    for (size_t index = 0; index < sent; index++) {
        s_payment_t *payment = &self.payments[index];
        if (payment->replied_us)
            reply_us[replies++] = payment->replied_us - payment->sent_us;
        if (payment->posted_us)
            posted_us[posteds++] = payment->posted_us - payment->sent_us;
    }
    qsort (reply_us, replies, sizeof (int64_t), s_compare);
    qsort (posted_us, posteds, sizeof (int64_t), s_compare);
    printf ("pay firms=%zu offered_per_second=%.0f seconds=%.2f sent=%zu approved=%zu "
            "refused=%zu payments_per_second=%.0f reply_p50_ms=%.1f reply_p99_ms=%.1f "
            "posted=%zu posted_p50_ms=%.1f posted_p99_ms=%.1f posted_max_ms=%.1f "
            "window_full=%zu\n",
            count, rate, elapsed, sent, self.approved, self.refused, self.approved / elapsed,
            s_percentile (reply_us, replies, 50), s_percentile (reply_us, replies, 99), posteds,
            s_percentile (posted_us, posteds, 50), s_percentile (posted_us, posteds, 99),
            posteds ? posted_us[posteds - 1] / 1e3 : 0, behind);
    if (self.refused)
        fprintf (stderr, "ml_scaleload: %zu payments not approved; last: %s\n", self.refused,
                 self.last_error);
    s_slots_destroy (&self.slots, window);
    free (self.payments);
    free (self.queue);
    free (reply_us);
    free (posted_us);
    free (next_invoice);
    free (firms);
    return self.approved == sent && posteds == self.approved ? 0 : 1;
}

int main (int argc, char *argv[])
{
    const char *command = argc > 1 ? argv[1] : "";
    if (streq (command, "setup") && argc == 5)
        return s_setup (argv[2], (size_t)atoi (argv[3]), argv[4]);
    if (streq (command, "pay") && argc == 8)
        return s_pay (argv[2], argv[3], (size_t)atoi (argv[4]), atof (argv[5]), atof (argv[6]),
                      (size_t)atoi (argv[7]));
    fprintf (stderr, "usage: ml_scaleload setup ADMIN FIRMS OUT\n"
                     "       ml_scaleload pay ADMIN FIRMS_FILE ITEMS RATE SECONDS WINDOW\n");
    return 2;
}
