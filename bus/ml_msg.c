/*  ml_msg: the MLP/1 codec. See include/ml_msg.h and docs/protocol.md. */
#include "ml_msg.h"
#include "ml_money.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Encoding ------------------------------------------------------------------------------

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    bool failed; //  a field broke a rule or the message outgrew ML_MAX_MESSAGE_SIZE
} s_writer_t;

static void s_reserve (s_writer_t *writer, size_t more)
{
    if (writer->failed)
        return;
    if (writer->size + more > ML_MAX_MESSAGE_SIZE) {
        writer->failed = true;
        return;
    }
    if (writer->size + more > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity * 2 : 256;
        while (capacity < writer->size + more)
            capacity *= 2;
        uint8_t *grown = realloc (writer->data, capacity);
        if (!grown) {
            writer->failed = true;
            return;
        }
        writer->data = grown;
        writer->capacity = capacity;
    }
}

static void s_put_number (s_writer_t *writer, uint64_t value, size_t width)
{
    s_reserve (writer, width);
    if (writer->failed)
        return;
    for (size_t index = 0; index < width; index++)
        writer->data[writer->size + index] = (uint8_t)(value >> (8 * (width - 1 - index)));
    writer->size += width;
}

//  buffer_size is the size of the field's buffer: the value must be shorter.
static void s_put_string (s_writer_t *writer, const char *value, size_t buffer_size)
{
    size_t length = strnlen (value, buffer_size);
    if (length >= buffer_size) {
        writer->failed = true;
        return;
    }
    s_put_number (writer, length, 2);
    s_reserve (writer, length);
    if (writer->failed)
        return;
    memcpy (writer->data + writer->size, value, length);
    writer->size += length;
}

#define S_PUT_STRING(writer, field) s_put_string ((writer), (field), sizeof (field))

static void s_put_item (s_writer_t *writer, const ml_item_t *item)
{
    s_put_number (writer, (uint8_t)item->kind, 1);
    s_put_number (writer, (uint8_t)item->op, 1);
    s_put_number (writer, item->change_id, 8);
    s_put_number (writer, item->source_id, 8);
    S_PUT_STRING (writer, item->invoice_number);
    S_PUT_STRING (writer, item->invoice_date);
    S_PUT_STRING (writer, item->due_date);
    S_PUT_STRING (writer, item->client_number);
    S_PUT_STRING (writer, item->client_name);
    S_PUT_STRING (writer, item->matter_number);
    S_PUT_STRING (writer, item->matter_description);
    S_PUT_STRING (writer, item->currency);
    s_put_number (writer, (uint64_t)item->total_minor, 8);
    s_put_number (writer, (uint64_t)item->balance_minor, 8);
    S_PUT_STRING (writer, item->status);
}

static void s_put_items (s_writer_t *writer, const ml_msg_t *self)
{
    if (self->item_count > ML_MAX_ITEMS)
        writer->failed = true;
    s_put_number (writer, self->item_count, 4);
    for (size_t index = 0; index < self->item_count; index++)
        s_put_item (writer, &self->items[index]);
}

static void s_put_posting (s_writer_t *writer, const ml_posting_t *posting)
{
    S_PUT_STRING (writer, posting->posting_uuid);
    S_PUT_STRING (writer, posting->created_at);
    S_PUT_STRING (writer, posting->received_on);
    S_PUT_STRING (writer, posting->account_number);
    S_PUT_STRING (writer, posting->client_number);
    S_PUT_STRING (writer, posting->payer_name);
    S_PUT_STRING (writer, posting->payer_email);
    S_PUT_STRING (writer, posting->currency);
    s_put_number (writer, (uint64_t)posting->amount_minor, 8);
    S_PUT_STRING (writer, posting->ar_message);
    S_PUT_STRING (writer, posting->processor_txn);
    S_PUT_STRING (writer, posting->reverses);
    if (posting->line_count == 0 || posting->line_count > ML_MAX_LINES)
        writer->failed = true;
    s_put_number (writer, posting->line_count, 2);
    for (size_t index = 0; index < posting->line_count; index++) {
        s_put_number (writer, (uint8_t)posting->lines[index].kind, 1);
        S_PUT_STRING (writer, posting->lines[index].reference);
        s_put_number (writer, (uint64_t)posting->lines[index].amount_minor, 8);
    }
}

static void s_put_search (s_writer_t *writer, const ml_search_t *search)
{
    s_put_number (writer, search->deadline_ms, 4);
    s_put_number (writer, (uint8_t)search->target, 1);
    s_put_number (writer, search->field, 1);
    s_put_number (writer, (uint8_t)search->match, 1);
    S_PUT_STRING (writer, search->text);
    S_PUT_STRING (writer, search->date_from);
    S_PUT_STRING (writer, search->date_to);
    s_put_number (writer, search->amount_filter, 1);
    s_put_number (writer, (uint64_t)search->amount_min, 8);
    s_put_number (writer, (uint64_t)search->amount_max, 8);
    if (search->amount_filter & ML_AMOUNT_CURRENCY)
        S_PUT_STRING (writer, search->amount_currency);
    s_put_number (writer, search->status, 1);
    S_PUT_STRING (writer, search->as_of);
    s_put_number (writer, search->scoped, 1);
    for (int list = 0; list < 3; list++) {
        if (search->scope_count[list] > ML_MAX_SCOPE)
            writer->failed = true;
        s_put_number (writer, search->scope_count[list], 2);
        for (size_t index = 0; index < search->scope_count[list]; index++)
            S_PUT_STRING (writer, search->scope[list][index]);
    }
    s_put_number (writer, search->after, 8);
    s_put_number (writer, search->limit, 2);
}

int ml_msg_encode (const ml_msg_t *self, uint8_t **data, size_t *size)
{
    assert (self && data && size);
    s_writer_t writer = {0};
    s_put_number (&writer, 0xAA, 1);
    s_put_number (&writer, 'M', 1);
    s_put_number (&writer, ML_PROTOCOL_VERSION, 1);
    s_put_number (&writer, (uint64_t)self->id, 1);
    switch (self->id) {
        case ML_MSG_HELLO:
            s_put_number (&writer, self->protocol, 2);
            S_PUT_STRING (&writer, self->agent_version);
            s_put_number (&writer, self->contract_version, 2);
            S_PUT_STRING (&writer, self->epoch);
            s_put_number (&writer, self->high_water, 8);
            break;
        case ML_MSG_WELCOME:
            s_put_number (&writer, self->heartbeat_ms, 4);
            s_put_number (&writer, self->window, 4);
            s_put_number (&writer, self->resync, 1);
            s_put_number (&writer, self->cursor, 8);
            break;
        case ML_MSG_SNAPSHOT:
            s_put_number (&writer, self->batch, 8);
            s_put_items (&writer, self);
            break;
        case ML_MSG_SNAPSHOT_END:
            s_put_number (&writer, self->batch, 8);
            s_put_number (&writer, self->cursor, 8);
            s_put_number (&writer, self->count, 8);
            break;
        case ML_MSG_CHANGES:
            s_put_number (&writer, self->batch, 8);
            s_put_number (&writer, self->since, 8);
            s_put_number (&writer, self->cursor, 8);
            s_put_items (&writer, self);
            break;
        case ML_MSG_ACK:
            s_put_number (&writer, self->batch, 8);
            s_put_number (&writer, self->cursor, 8);
            break;
        case ML_MSG_POSTING:
            s_put_posting (&writer, &self->posting);
            break;
        case ML_MSG_POSTING_RESULT:
            S_PUT_STRING (&writer, self->posting_uuid);
            S_PUT_STRING (&writer, self->status);
            S_PUT_STRING (&writer, self->receipt_id);
            S_PUT_STRING (&writer, self->reason);
            s_put_number (&writer, self->cursor, 8);
            break;
        case ML_MSG_PING:
        case ML_MSG_PONG:
            break;
        case ML_MSG_ERROR:
            s_put_number (&writer, self->code, 2);
            S_PUT_STRING (&writer, self->reason);
            break;
        case ML_MSG_SEARCH:
            s_put_number (&writer, self->request_id, 8);
            s_put_search (&writer, &self->search);
            break;
        case ML_MSG_SEARCH_RESULT:
            if (self->item_count > ML_MAX_SEARCH_ROWS)
                writer.failed = true;
            s_put_number (&writer, self->request_id, 8);
            s_put_number (&writer, self->code, 2);
            S_PUT_STRING (&writer, self->reason);
            s_put_number (&writer, self->next, 8);
            s_put_items (&writer, self);
            break;
        default:
            writer.failed = true;
    }
    if (writer.failed) {
        free (writer.data);
        return -1;
    }
    *data = writer.data;
    *size = writer.size;
    return 0;
}

//  Decoding ------------------------------------------------------------------------------

typedef struct {
    const uint8_t *cursor;
    const uint8_t *limit;
    const char *error; //  first error met; later reads do nothing
} s_reader_t;

static uint64_t s_get_number (s_reader_t *reader, size_t width)
{
    if (reader->error)
        return 0;
    if ((size_t)(reader->limit - reader->cursor) < width) {
        reader->error = "message is shorter than its fields";
        return 0;
    }
    uint64_t value = 0;
    for (size_t index = 0; index < width; index++)
        value = (value << 8) | reader->cursor[index];
    reader->cursor += width;
    return value;
}

//  True if the bytes are valid UTF-8 without NUL (no overlongs, no surrogates).
static bool s_valid_utf8 (const uint8_t *bytes, size_t length)
{
    size_t index = 0;
    while (index < length) {
        uint8_t lead = bytes[index];
        size_t extra;
        uint32_t point;
        if (lead == 0)
            return false;
        if (lead < 0x80) {
            index++;
            continue;
        } else if ((lead & 0xE0) == 0xC0) {
            extra = 1;
            point = lead & 0x1F;
        } else if ((lead & 0xF0) == 0xE0) {
            extra = 2;
            point = lead & 0x0F;
        } else if ((lead & 0xF8) == 0xF0) {
            extra = 3;
            point = lead & 0x07;
        } else
            return false;
        if (index + extra >= length)
            return false;
        for (size_t next = 1; next <= extra; next++) {
            if ((bytes[index + next] & 0xC0) != 0x80)
                return false;
            point = (point << 6) | (bytes[index + next] & 0x3F);
        }
        if ((extra == 1 && point < 0x80) || (extra == 2 && point < 0x800) ||
            (extra == 3 && point < 0x10000) || point > 0x10FFFF ||
            (point >= 0xD800 && point <= 0xDFFF))
            return false;
        index += extra + 1;
    }
    return true;
}

static void s_get_string (s_reader_t *reader, char *field, size_t buffer_size)
{
    size_t length = (size_t)s_get_number (reader, 2);
    if (reader->error)
        return;
    if (length >= buffer_size) {
        reader->error = "string longer than its field allows";
        return;
    }
    if ((size_t)(reader->limit - reader->cursor) < length) {
        reader->error = "message is shorter than its fields";
        return;
    }
    if (!s_valid_utf8 (reader->cursor, length)) {
        reader->error = "string is not valid UTF-8 or holds a NUL byte";
        return;
    }
    memcpy (field, reader->cursor, length);
    field[length] = 0;
    reader->cursor += length;
}

#define S_GET_STRING(reader, field) s_get_string ((reader), (field), sizeof (field))

static bool s_valid_currency (const char *currency)
{
    return strlen (currency) == 3 && currency[0] >= 'A' && currency[0] <= 'Z' &&
           currency[1] >= 'A' && currency[1] <= 'Z' && currency[2] >= 'A' && currency[2] <= 'Z';
}

const char *ml_msg_item_problem (const ml_item_t *item)
{
    if (item->kind != 'I' && item->kind != 'T')
        return "item kind is not 'I' or 'T'";
    if (item->op != 'U' && item->op != 'R')
        return "item op is not 'U' or 'R'";
    if (item->op == 'U' ? !s_valid_currency (item->currency)
                        : *item->currency && !s_valid_currency (item->currency))
        return "item currency is not three upper-case letters";
    if (!ml_msg_valid_date (item->invoice_date) || !ml_msg_valid_date (item->due_date))
        return "item date is not YYYY-MM-DD";
    //  An open invoice owes something: the contract sends one that owes nothing as a removal,
    //  and one owing a negative amount would be allocated as if it paid the payer. Balances
    //  are otherwise any 64-bit integer, as the reference schema allows (issue 11: status sums
    //  past 64 bits); payments are what the amount limit bounds. A trust ledger may be empty
    //  or overdrawn.
    if (item->op == 'U' && item->kind == 'I' && item->balance_minor < 1)
        return "item balance of an open invoice is below 1 minor unit";
    return NULL;
}

int ml_msg_month_days (int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

//  Empty, or a day of the calendar as YYYY-MM-DD, years 0001 to 9999. A day that does not
//  exist (2026-02-30, MariaDB's 0000-00-00) is nonsense the core could only misread: an
//  Auto-Pay due date, an oldest-first order.
bool ml_msg_valid_date (const char *date)
{
    if (!*date)
        return true;
    if (strlen (date) != 10 || date[4] != '-' || date[7] != '-')
        return false;
    for (int index = 0; index < 10; index++)
        if (index != 4 && index != 7 && (date[index] < '0' || date[index] > '9'))
            return false;
    int year = atoi (date);
    int month = (date[5] - '0') * 10 + (date[6] - '0');
    int day = (date[8] - '0') * 10 + (date[9] - '0');
    return year >= 1 && day >= 1 && day <= ml_msg_month_days (year, month);
}

static bool s_valid_uuid (const char *uuid)
{
    if (strlen (uuid) != 36)
        return false;
    for (int index = 0; index < 36; index++) {
        char c = uuid[index];
        if (index == 8 || index == 13 || index == 18 || index == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static void s_get_items (s_reader_t *reader, ml_msg_t *self)
{
    uint64_t count = s_get_number (reader, 4);
    if (reader->error)
        return;
    if (count > ML_MAX_ITEMS) {
        reader->error = "too many items in one batch";
        return;
    }
    //  Each item takes at least 52 bytes (2 + 8 + 8 + 9 string lengths + 8 + 8), so a count
    //  the message cannot hold is refused before anything is allocated for it.
    if (count * 52 > (uint64_t)(reader->limit - reader->cursor)) {
        reader->error = "message is shorter than its fields";
        return;
    }
    //  CHANGES items carry increasing change ids above since; the header was read first.
    uint64_t previous = self->since;
    for (uint64_t index = 0; index < count && !reader->error; index++) {
        ml_item_t *item = ml_msg_add_item (self);
        if (!item) {
            reader->error = "out of memory";
            return;
        }
        item->kind = (char)s_get_number (reader, 1);
        item->op = (char)s_get_number (reader, 1);
        item->change_id = s_get_number (reader, 8);
        item->source_id = s_get_number (reader, 8);
        S_GET_STRING (reader, item->invoice_number);
        S_GET_STRING (reader, item->invoice_date);
        S_GET_STRING (reader, item->due_date);
        S_GET_STRING (reader, item->client_number);
        S_GET_STRING (reader, item->client_name);
        S_GET_STRING (reader, item->matter_number);
        S_GET_STRING (reader, item->matter_description);
        S_GET_STRING (reader, item->currency);
        item->total_minor = (int64_t)s_get_number (reader, 8);
        item->balance_minor = (int64_t)s_get_number (reader, 8);
        S_GET_STRING (reader, item->status);
        if (reader->error)
            return;
        const char *problem = ml_msg_item_problem (item);
        if (problem)
            reader->error = problem;
        else if ((self->id == ML_MSG_SNAPSHOT || self->id == ML_MSG_SEARCH_RESULT) &&
                 (item->op != 'U' || item->change_id != 0))
            reader->error = self->id == ML_MSG_SNAPSHOT
                                ? "snapshot items must be upserts with change-id 0"
                                : "search rows must be upserts with change-id 0";
        else if (self->id == ML_MSG_CHANGES &&
                 (item->change_id <= previous || item->change_id > self->cursor))
            reader->error = "change ids must increase within (since, cursor]";
        previous = item->change_id;
    }
}

static void s_get_posting (s_reader_t *reader, ml_msg_t *self)
{
    ml_posting_t *posting = &self->posting;
    S_GET_STRING (reader, posting->posting_uuid);
    S_GET_STRING (reader, posting->created_at);
    S_GET_STRING (reader, posting->received_on);
    S_GET_STRING (reader, posting->account_number);
    S_GET_STRING (reader, posting->client_number);
    S_GET_STRING (reader, posting->payer_name);
    S_GET_STRING (reader, posting->payer_email);
    S_GET_STRING (reader, posting->currency);
    posting->amount_minor = (int64_t)s_get_number (reader, 8);
    S_GET_STRING (reader, posting->ar_message);
    S_GET_STRING (reader, posting->processor_txn);
    S_GET_STRING (reader, posting->reverses);
    uint64_t count = s_get_number (reader, 2);
    if (reader->error)
        return;
    if (!s_valid_uuid (posting->posting_uuid)) {
        reader->error = "posting-uuid is not a lower-case UUID";
        return;
    }
    if (*posting->reverses && !s_valid_uuid (posting->reverses)) {
        reader->error = "reverses is not a lower-case UUID";
        return;
    }
    if (strcmp (posting->reverses, posting->posting_uuid) == 0) {
        reader->error = "a posting cannot reverse itself";
        return;
    }
    if (!s_valid_currency (posting->currency)) {
        reader->error = "posting currency is not three upper-case letters";
        return;
    }
    if (!ml_msg_valid_date (posting->received_on)) {
        reader->error = "received-on is not YYYY-MM-DD";
        return;
    }
    if (posting->amount_minor <= 0) {
        reader->error = "posting amount is not positive";
        return;
    }
    //  The contract refuses more on every dialect: so does the link (ml_money.h).
    if (posting->amount_minor > ML_MONEY_MAX_MINOR) {
        reader->error = "posting amount is above the limit of 999999999999999 minor units";
        return;
    }
    if (count == 0 || count > ML_MAX_LINES) {
        reader->error = "posting must have 1 to 500 lines";
        return;
    }
    //  Each line takes at least 11 bytes: refuse a count the message cannot hold.
    if (count * 11 > (uint64_t)(reader->limit - reader->cursor)) {
        reader->error = "message is shorter than its fields";
        return;
    }
    posting->lines = calloc ((size_t)count, sizeof (ml_line_t));
    if (!posting->lines) {
        reader->error = "out of memory";
        return;
    }
    posting->line_count = (size_t)count;
    int64_t sum = 0;
    for (size_t index = 0; index < posting->line_count && !reader->error; index++) {
        ml_line_t *line = &posting->lines[index];
        line->kind = (char)s_get_number (reader, 1);
        S_GET_STRING (reader, line->reference);
        line->amount_minor = (int64_t)s_get_number (reader, 8);
        if (reader->error)
            return;
        if (line->kind != 'I' && line->kind != 'T')
            reader->error = "line kind is not 'I' or 'T'";
        else if (line->amount_minor <= 0)
            reader->error = "line amount is not positive";
        else if (line->amount_minor > ML_MONEY_MAX_MINOR)
            reader->error = "line amount is above the limit of 999999999999999 minor units";
        else if (!*line->reference)
            reader->error = "line reference is empty";
        else if (__builtin_add_overflow (sum, line->amount_minor, &sum))
            reader->error = "line amounts overflow";
    }
    if (!reader->error && sum != posting->amount_minor)
        reader->error = "posting lines do not sum to its amount";
}

//  A SEARCH the agent can run as asked: each rule here is one docs/protocol.md states.
static void s_get_search (s_reader_t *reader, ml_msg_t *self)
{
    ml_search_t *search = &self->search;
    search->deadline_ms = (uint32_t)s_get_number (reader, 4);
    search->target = (char)s_get_number (reader, 1);
    search->field = (uint8_t)s_get_number (reader, 1);
    search->match = (char)s_get_number (reader, 1);
    S_GET_STRING (reader, search->text);
    S_GET_STRING (reader, search->date_from);
    S_GET_STRING (reader, search->date_to);
    search->amount_filter = (uint8_t)s_get_number (reader, 1);
    search->amount_min = (int64_t)s_get_number (reader, 8);
    search->amount_max = (int64_t)s_get_number (reader, 8);
    if (search->amount_filter & ML_AMOUNT_CURRENCY)
        S_GET_STRING (reader, search->amount_currency);
    search->status = (uint8_t)s_get_number (reader, 1);
    S_GET_STRING (reader, search->as_of);
    search->scoped = (uint8_t)s_get_number (reader, 1);
    for (int list = 0; list < 3 && !reader->error; list++) {
        uint64_t count = s_get_number (reader, 2);
        if (reader->error)
            return;
        if (count > ML_MAX_SCOPE) {
            reader->error = "scope list longer than 1000 numbers";
            return;
        }
        //  Each number takes at least 3 bytes: refuse a count the message cannot hold.
        if (count * 3 > (uint64_t)(reader->limit - reader->cursor)) {
            reader->error = "message is shorter than its fields";
            return;
        }
        search->scope[list] = calloc (count ? count : 1, 64);
        if (!search->scope[list]) {
            reader->error = "out of memory";
            return;
        }
        for (size_t index = 0; index < count && !reader->error; index++) {
            S_GET_STRING (reader, search->scope[list][index]);
            search->scope_count[list]++;
            if (!reader->error && !*search->scope[list][index])
                reader->error = "scope number is empty";
        }
    }
    search->after = s_get_number (reader, 8);
    search->limit = (uint16_t)s_get_number (reader, 2);
    if (reader->error)
        return;
    bool any_scope = search->scope_count[0] || search->scope_count[1] || search->scope_count[2];
    if (search->deadline_ms == 0 || search->deadline_ms > ML_MAX_DEADLINE_MS)
        reader->error = "search deadline is not 1 to 60000 ms";
    else if (search->target != 'I' && search->target != 'T')
        reader->error = "search target is not 'I' or 'T'";
    else if (search->field > ML_FIELD_LAST)
        reader->error = "search field is unknown";
    else if (search->match != 'E' && search->match != 'P' && search->match != 'C')
        reader->error = "search match is not 'E', 'P' or 'C'";
    else if ((search->field == ML_FIELD_NONE) != (*search->text == 0))
        reader->error = "search text must be given with a field, and only with one";
    else if (search->target == 'T' && search->field == ML_FIELD_INVOICE_NUMBER)
        reader->error = "trust ledgers have no invoice numbers";
    else if (!ml_msg_valid_date (search->date_from) || !ml_msg_valid_date (search->date_to) ||
             !ml_msg_valid_date (search->as_of))
        reader->error = "search date is not YYYY-MM-DD";
    else if (search->target == 'T' && (*search->date_from || *search->date_to))
        reader->error = "trust ledgers have no invoice dates";
    else if (search->amount_filter > (ML_AMOUNT_MIN | ML_AMOUNT_MAX | ML_AMOUNT_CURRENCY))
        reader->error = "search amount filter is unknown";
    else if ((search->amount_filter & ML_AMOUNT_CURRENCY) &&
             (!(search->amount_filter & (ML_AMOUNT_MIN | ML_AMOUNT_MAX)) ||
              !s_valid_currency (search->amount_currency)))
        reader->error = "search amount currency is not three upper-case letters with a bound";
    else if (search->status > ML_STATUS_CURRENT || (search->status && !*search->as_of))
        reader->error = "search status is unknown, or given without as-of";
    else if (search->target == 'T' && search->status)
        reader->error = "trust ledgers have no due dates";
    else if (search->scoped > 1 || (!search->scoped && any_scope))
        reader->error = "scope lists need scoped 1";
    else if (search->limit == 0 || search->limit > ML_MAX_SEARCH_ROWS)
        reader->error = "search limit is not 1 to 500";
}

static void s_get_search_result (s_reader_t *reader, ml_msg_t *self)
{
    self->request_id = s_get_number (reader, 8);
    self->code = (uint16_t)s_get_number (reader, 2);
    S_GET_STRING (reader, self->reason);
    self->next = s_get_number (reader, 8);
    //  The rows are item rows as in a snapshot: upserts with change-id 0.
    s_get_items (reader, self);
    if (reader->error)
        return;
    if (self->code != ML_SEARCH_OK && self->code != ML_SEARCH_BAD_REQUEST &&
        self->code != ML_SEARCH_FAILED && self->code != ML_SEARCH_UNAVAILABLE &&
        self->code != ML_SEARCH_TIMEOUT)
        reader->error = "search result code is unknown";
    else if (self->item_count > ML_MAX_SEARCH_ROWS)
        reader->error = "search result holds more than 500 rows";
    else if (self->code != ML_SEARCH_OK && (self->item_count || self->next))
        reader->error = "a failed search carries no rows";
}

ml_msg_t *ml_msg_decode (const uint8_t *data, size_t size, const char **error)
{
    assert (error);
    s_reader_t reader = {data, data + size, NULL};
    if (!data || size < 4 || data[0] != 0xAA || data[1] != 'M') {
        *error = "not an MLP message (bad signature)";
        return NULL;
    }
    if (data[2] != ML_PROTOCOL_VERSION) {
        *error = "unsupported MLP version";
        return NULL;
    }
    if (size > ML_MAX_MESSAGE_SIZE) {
        *error = "message too large";
        return NULL;
    }
    reader.cursor += 3;
    int id = (int)s_get_number (&reader, 1);
    if (id < ML_MSG_HELLO || id > ML_MSG_SEARCH_RESULT) {
        *error = "unknown message id";
        return NULL;
    }
    ml_msg_t *self = ml_msg_new (id);
    if (!self) {
        *error = "out of memory";
        return NULL;
    }
    switch (id) {
        case ML_MSG_HELLO:
            self->protocol = (uint16_t)s_get_number (&reader, 2);
            S_GET_STRING (&reader, self->agent_version);
            self->contract_version = (uint16_t)s_get_number (&reader, 2);
            S_GET_STRING (&reader, self->epoch);
            self->high_water = s_get_number (&reader, 8);
            break;
        case ML_MSG_WELCOME:
            self->heartbeat_ms = (uint32_t)s_get_number (&reader, 4);
            self->window = (uint32_t)s_get_number (&reader, 4);
            self->resync = (uint8_t)s_get_number (&reader, 1);
            self->cursor = s_get_number (&reader, 8);
            if (!reader.error && (self->window == 0 || self->heartbeat_ms == 0))
                reader.error = "welcome with zero window or heartbeat";
            else if (!reader.error && (self->resync > 1 || (self->resync && self->cursor)))
                reader.error = "welcome resync must be 0, or 1 with cursor 0";
            break;
        case ML_MSG_SNAPSHOT:
            self->batch = s_get_number (&reader, 8);
            s_get_items (&reader, self);
            break;
        case ML_MSG_SNAPSHOT_END:
            self->batch = s_get_number (&reader, 8);
            self->cursor = s_get_number (&reader, 8);
            self->count = s_get_number (&reader, 8);
            break;
        case ML_MSG_CHANGES:
            self->batch = s_get_number (&reader, 8);
            self->since = s_get_number (&reader, 8);
            self->cursor = s_get_number (&reader, 8);
            s_get_items (&reader, self);
            if (!reader.error && self->cursor < self->since)
                reader.error = "changes cursor is below since";
            break;
        case ML_MSG_ACK:
            self->batch = s_get_number (&reader, 8);
            self->cursor = s_get_number (&reader, 8);
            break;
        case ML_MSG_POSTING:
            s_get_posting (&reader, self);
            break;
        case ML_MSG_POSTING_RESULT:
            S_GET_STRING (&reader, self->posting_uuid);
            S_GET_STRING (&reader, self->status);
            S_GET_STRING (&reader, self->receipt_id);
            S_GET_STRING (&reader, self->reason);
            self->cursor = s_get_number (&reader, 8);
            if (!reader.error && !s_valid_uuid (self->posting_uuid))
                reader.error = "posting-uuid is not a lower-case UUID";
            else if (!reader.error && strcmp (self->status, "posted") != 0 &&
                     strcmp (self->status, "rejected") != 0)
                reader.error = "status is not \"posted\" or \"rejected\"";
            else if (!reader.error && strcmp (self->status, "posted") == 0 && !*self->receipt_id)
                reader.error = "a posted result needs a receipt-id";
            break;
        case ML_MSG_ERROR:
            self->code = (uint16_t)s_get_number (&reader, 2);
            S_GET_STRING (&reader, self->reason);
            break;
        case ML_MSG_SEARCH:
            self->request_id = s_get_number (&reader, 8);
            s_get_search (&reader, self);
            break;
        case ML_MSG_SEARCH_RESULT:
            s_get_search_result (&reader, self);
            break;
        default:
            break;
    }
    if (!reader.error && reader.cursor != reader.limit)
        reader.error = "bytes left over after the last field";
    if (reader.error) {
        *error = reader.error;
        ml_msg_destroy (&self);
        return NULL;
    }
    return self;
}

//  The record ------------------------------------------------------------------------------

ml_msg_t *ml_msg_new (int id)
{
    ml_msg_t *self = calloc (1, sizeof (ml_msg_t));
    if (self)
        self->id = id;
    return self;
}

void ml_msg_destroy (ml_msg_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ml_msg_t *self = *self_p;
        free (self->items);
        free (self->posting.lines);
        for (int list = 0; list < 3; list++)
            free (self->search.scope[list]);
        free (self);
        *self_p = NULL;
    }
}

const char *ml_msg_name (int id)
{
    static const char *names[] = {"UNKNOWN", "HELLO", "WELCOME", "SNAPSHOT",       "SNAPSHOT-END",
                                  "CHANGES", "ACK",   "POSTING", "POSTING-RESULT", "PING",
                                  "PONG",    "ERROR", "SEARCH",  "SEARCH-RESULT"};
    return id >= ML_MSG_HELLO && id <= ML_MSG_SEARCH_RESULT ? names[id] : names[0];
}

static const char *s_field_names[] = {
    "", "client-name", "client-number", "matter-number", "matter-description", "invoice-number"};

const char *ml_field_name (int field)
{
    return field >= 0 && field <= ML_FIELD_LAST ? s_field_names[field] : NULL;
}

int ml_field_parse (const char *name)
{
    for (int field = 1; name && field <= ML_FIELD_LAST; field++)
        if (strcmp (s_field_names[field], name) == 0)
            return field;
    return -1;
}

int ml_msg_add_scope (ml_msg_t *self, int list, const char *number)
{
    assert (self && list >= 0 && list < 3 && number);
    ml_search_t *search = &self->search;
    size_t length = strlen (number);
    if (search->scope_count[list] >= ML_MAX_SCOPE || length == 0 || length > 63)
        return -1;
    if (!search->scope[list]) {
        search->scope[list] = calloc (ML_MAX_SCOPE, 64);
        if (!search->scope[list])
            return -1;
    }
    memcpy (search->scope[list][search->scope_count[list]++], number, length + 1);
    return 0;
}

ml_item_t *ml_msg_add_item (ml_msg_t *self)
{
    assert (self);
    if (self->item_count >= ML_MAX_ITEMS)
        return NULL;
    if (self->item_count == self->item_capacity) {
        size_t capacity = self->item_capacity ? self->item_capacity * 2 : 64;
        if (capacity > ML_MAX_ITEMS)
            capacity = ML_MAX_ITEMS;
        ml_item_t *grown = realloc (self->items, capacity * sizeof (ml_item_t));
        if (!grown)
            return NULL;
        self->items = grown;
        self->item_capacity = capacity;
    }
    ml_item_t *item = &self->items[self->item_count++];
    memset (item, 0, sizeof *item);
    return item;
}

void ml_msg_clear_items (ml_msg_t *self)
{
    assert (self);
    self->item_count = 0;
}

int ml_msg_set_lines (ml_msg_t *self, const ml_line_t *lines, size_t count)
{
    assert (self);
    if (count == 0 || count > ML_MAX_LINES)
        return -1;
    ml_line_t *copy = malloc (count * sizeof (ml_line_t));
    if (!copy)
        return -1;
    memcpy (copy, lines, count * sizeof (ml_line_t));
    free (self->posting.lines);
    self->posting.lines = copy;
    self->posting.line_count = count;
    return 0;
}

//  Selftest --------------------------------------------------------------------------------

static ml_msg_t *s_round_trip (const ml_msg_t *message)
{
    uint8_t *data = NULL;
    size_t size = 0;
    assert (ml_msg_encode (message, &data, &size) == 0);
    const char *error = NULL;
    ml_msg_t *copy = ml_msg_decode (data, size, &error);
    assert (copy);
    //  Every strict prefix of a valid message is malformed, never a crash.
    for (size_t cut = 0; cut < size; cut++) {
        ml_msg_t *partial = ml_msg_decode (data, cut, &error);
        assert (partial == NULL && error);
    }
    free (data);
    return copy;
}

void ml_msg_moved_format (ml_msg_t *error, const char *endpoint, const char *firm_id)
{
    assert (error && error->id == ML_MSG_ERROR);
    error->code = ML_ERROR_MOVED;
    snprintf (
        error->reason, sizeof error->reason, "moved %s firm %.64s is served by another core node",
        endpoint && *endpoint && !strchr (endpoint, ' ') ? endpoint : "-", firm_id ? firm_id : "?");
}

int ml_msg_moved_endpoint (const ml_msg_t *error, char *endpoint, size_t size)
{
    if (!error || error->id != ML_MSG_ERROR || error->code != ML_ERROR_MOVED ||
        strncmp (error->reason, "moved ", 6) != 0)
        return -1;
    const char *start = error->reason + 6;
    size_t length = strcspn (start, " ");
    if (length == 1 && *start == '-')
        return 0;
    if (length == 0 || length >= size ||
        (strncmp (start, "tcp://", 6) != 0 && strncmp (start, "ipc://", 6) != 0))
        return -1;
    memcpy (endpoint, start, length);
    endpoint[length] = 0;
    return 1;
}

void ml_msg_test (bool verbose)
{
    printf (" * ml_msg: ");
    //  Dates on the link are days of the calendar.
    const char *good_dates[] = {"",           "2026-01-31", "2028-02-29",
                                "2000-02-29", "0001-01-01", "9999-12-31"};
    const char *bad_dates[] = {"2026-02-29", "1900-02-29",  "2026-02-30",    "2026-04-31",
                               "0000-00-00", "0000-01-01",  "2026-13-01",    "2026-00-10",
                               "2026-01-00", "10000-01-01", "4713-01-01 BC", "2026/01/01",
                               "2026-1-01",  "+026-01-01"};
    for (size_t index = 0; index < sizeof good_dates / sizeof *good_dates; index++)
        assert (ml_msg_valid_date (good_dates[index]));
    for (size_t index = 0; index < sizeof bad_dates / sizeof *bad_dates; index++)
        assert (!ml_msg_valid_date (bad_dates[index]));
    assert (ml_msg_month_days (2024, 2) == 29 && ml_msg_month_days (2100, 2) == 28 &&
            ml_msg_month_days (2026, 12) == 31 && ml_msg_month_days (2026, 13) == 0);
    //  A redirect to the node that owns the firm, through the codec and back.
    ml_msg_t *moved = ml_msg_new (ML_MSG_ERROR);
    ml_msg_moved_format (moved, "tcp://10.0.0.2:7800", "acme");
    ml_msg_t *moved_copy = s_round_trip (moved);
    char where[64];
    assert (moved_copy->code == ML_ERROR_MOVED);
    assert (ml_msg_moved_endpoint (moved_copy, where, sizeof where) == 1);
    assert (strcmp (where, "tcp://10.0.0.2:7800") == 0);
    assert (ml_msg_moved_endpoint (moved_copy, where, 10) == -1); //  does not fit
    ml_msg_moved_format (moved, "", "acme");
    assert (ml_msg_moved_endpoint (moved, where, sizeof where) == 0);
    strcpy (moved->reason, "moved http://evil.example/ x");
    assert (ml_msg_moved_endpoint (moved, where, sizeof where) == -1);
    moved->code = ML_ERROR_INTERNAL;
    assert (ml_msg_moved_endpoint (moved, where, sizeof where) == -1);
    ml_msg_destroy (&moved_copy);
    ml_msg_destroy (&moved);
    ml_msg_t *hello = ml_msg_new (ML_MSG_HELLO);
    hello->protocol = ML_PROTOCOL_VERSION;
    strcpy (hello->agent_version, "0.1.0");
    hello->contract_version = 1;
    strcpy (hello->epoch, "5b1c8d9e-0000-4000-8000-000000000001");
    hello->high_water = 123456789012ULL;
    ml_msg_t *copy = s_round_trip (hello);
    assert (copy->id == ML_MSG_HELLO && copy->high_water == 123456789012ULL);
    assert (strcmp (copy->epoch, hello->epoch) == 0 && copy->contract_version == 1);
    ml_msg_destroy (&copy);
    ml_msg_destroy (&hello);

    ml_msg_t *changes = ml_msg_new (ML_MSG_CHANGES);
    changes->batch = 7;
    changes->since = 10;
    changes->cursor = 20;
    for (int index = 0; index < 3; index++) {
        ml_item_t *item = ml_msg_add_item (changes);
        item->kind = 'I';
        item->op = index == 2 ? 'R' : 'U';
        item->change_id = 11 + (uint64_t)index;
        item->source_id = 1000 + (uint64_t)index;
        snprintf (item->invoice_number, sizeof item->invoice_number, "INV-%d", index);
        strcpy (item->invoice_date, "2026-01-31");
        strcpy (item->client_name, "Müller & Söhne");
        strcpy (item->currency, index == 2 ? "" : "USD");
        item->total_minor = -5;
        item->balance_minor = INT64_MAX;
    }
    copy = s_round_trip (changes);
    assert (copy->item_count == 3 && copy->items[1].change_id == 12);
    assert (copy->items[0].total_minor == -5 && copy->items[0].balance_minor == INT64_MAX);
    //  An open invoice that owes nothing, or a negative amount, cannot go on the link; any
    //  other 64-bit amount can (the reference schema allows it), and a trust ledger's may be
    //  empty or overdrawn.
    ml_item_t bad = changes->items[0];
    int64_t balances[] = {0, -1, INT64_MIN};
    for (size_t index = 0; index < sizeof balances / sizeof balances[0]; index++) {
        bad.balance_minor = balances[index];
        assert (ml_msg_item_problem (&bad) != NULL);
    }
    bad.balance_minor = INT64_MAX;
    assert (ml_msg_item_problem (&bad) == NULL);
    bad.kind = 'T';
    bad.balance_minor = INT64_MIN;
    assert (ml_msg_item_problem (&bad) == NULL);
    bad.kind = 'I';
    bad.op = 'R'; //  a removal's amounts mean nothing
    bad.balance_minor = 0;
    assert (ml_msg_item_problem (&bad) == NULL);
    assert (strcmp (copy->items[0].client_name, "Müller & Söhne") == 0);
    assert (copy->items[2].op == 'R');
    ml_msg_destroy (&copy);

    //  A string over its field's size cannot be encoded.
    memset (changes->items[0].currency, 'X', sizeof changes->items[0].currency);
    uint8_t *data = NULL;
    size_t size = 0;
    assert (ml_msg_encode (changes, &data, &size) == -1);
    ml_msg_destroy (&changes);

    ml_msg_t *posting = ml_msg_new (ML_MSG_POSTING);
    strcpy (posting->posting.posting_uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (posting->posting.currency, "USD");
    strcpy (posting->posting.ar_message, "Paid at front desk");
    posting->posting.amount_minor = 15000;
    ml_line_t lines[] = {{'I', "INV-1", 10000}, {'T', "M-1", 5000}};
    assert (ml_msg_set_lines (posting, lines, 2) == 0);
    copy = s_round_trip (posting);
    assert (copy->posting.line_count == 2 && copy->posting.lines[1].kind == 'T');
    assert (copy->posting.lines[1].amount_minor == 5000);
    ml_msg_destroy (&copy);
    //  Lines that do not sum to the amount are malformed.
    posting->posting.amount_minor = 15001;
    assert (ml_msg_encode (posting, &data, &size) == 0);
    const char *error = NULL;
    assert (ml_msg_decode (data, size, &error) == NULL);
    assert (strstr (error, "sum"));
    free (data);
    //  A reversal names the posting it reverses, and never itself.
    posting->posting.amount_minor = 15000;
    strcpy (posting->posting.reverses, "1f8fad5b-d9cb-469f-a165-70867728950e");
    copy = s_round_trip (posting);
    assert (strcmp (copy->posting.reverses, posting->posting.reverses) == 0);
    ml_msg_destroy (&copy);
    strcpy (posting->posting.reverses, posting->posting.posting_uuid);
    assert (ml_msg_encode (posting, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "itself"));
    free (data);
    strcpy (posting->posting.reverses, "1F8FAD5B-D9CB-469F-A165-70867728950E");
    assert (ml_msg_encode (posting, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "reverses"));
    free (data);
    ml_msg_destroy (&posting);

    ml_msg_t *result = ml_msg_new (ML_MSG_POSTING_RESULT);
    strcpy (result->posting_uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy (result->status, "posted");
    strcpy (result->receipt_id, "42");
    result->cursor = 99;
    copy = s_round_trip (result);
    assert (strcmp (copy->receipt_id, "42") == 0 && copy->cursor == 99);
    ml_msg_destroy (&copy);
    ml_msg_destroy (&result);

    ml_msg_t *search = ml_msg_new (ML_MSG_SEARCH);
    search->request_id = 77;
    search->search.deadline_ms = 2000;
    search->search.target = 'I';
    search->search.field = ML_FIELD_CLIENT_NAME;
    search->search.match = 'C';
    strcpy (search->search.text, "'; DROP TABLE invoice; --");
    strcpy (search->search.date_from, "2026-01-01");
    search->search.amount_filter = ML_AMOUNT_MAX | ML_AMOUNT_CURRENCY;
    search->search.amount_max = 500000;
    strcpy (search->search.amount_currency, "EUR");
    search->search.status = ML_STATUS_OVERDUE;
    strcpy (search->search.as_of, "2026-11-22");
    search->search.scoped = 1;
    assert (ml_msg_add_scope (search, ML_SCOPE_MATTERS, "M-1") == 0);
    assert (ml_msg_add_scope (search, ML_SCOPE_INVOICES, "INV-9") == 0);
    assert (ml_msg_add_scope (search, ML_SCOPE_INVOICES, "") == -1);
    search->search.limit = 50;
    copy = s_round_trip (search);
    assert (copy->request_id == 77 && copy->search.field == ML_FIELD_CLIENT_NAME);
    assert (strcmp (copy->search.text, search->search.text) == 0);
    assert (copy->search.scope_count[ML_SCOPE_CLIENTS] == 0);
    assert (copy->search.scope_count[ML_SCOPE_INVOICES] == 1);
    assert (strcmp (copy->search.scope[ML_SCOPE_MATTERS][0], "M-1") == 0);
    assert (copy->search.amount_max == 500000 && copy->search.limit == 50);
    assert (strcmp (copy->search.amount_currency, "EUR") == 0);
    ml_msg_destroy (&copy);
    //  A bound's currency is three capitals, and only with a bound.
    strcpy (search->search.amount_currency, "eur");
    assert (ml_msg_encode (search, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "currency"));
    free (data);
    strcpy (search->search.amount_currency, "EUR");
    search->search.amount_filter = ML_AMOUNT_CURRENCY;
    assert (ml_msg_encode (search, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "currency"));
    free (data);
    search->search.amount_filter = ML_AMOUNT_MAX | ML_AMOUNT_CURRENCY;
    //  Text without a field, or an invoice number on trust ledgers, is malformed.
    search->search.field = ML_FIELD_NONE;
    assert (ml_msg_encode (search, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "field"));
    free (data);
    search->search.field = ML_FIELD_INVOICE_NUMBER;
    search->search.target = 'T';
    assert (ml_msg_encode (search, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL);
    free (data);
    ml_msg_destroy (&search);
    assert (ml_field_parse ("matter-description") == ML_FIELD_MATTER_DESCRIPTION);
    assert (ml_field_parse ("nope") == -1 && ml_field_parse (NULL) == -1);
    assert (strcmp (ml_field_name (ML_FIELD_CLIENT_NUMBER), "client-number") == 0);

    ml_msg_t *answer = ml_msg_new (ML_MSG_SEARCH_RESULT);
    answer->request_id = 77;
    answer->code = ML_SEARCH_OK;
    answer->next = 1001;
    ml_item_t *row = ml_msg_add_item (answer);
    row->kind = 'I';
    row->op = 'U';
    row->source_id = 1001;
    strcpy (row->currency, "USD");
    row->total_minor = row->balance_minor = 100;
    copy = s_round_trip (answer);
    assert (copy->item_count == 1 && copy->next == 1001 && copy->code == 200);
    ml_msg_destroy (&copy);
    //  A failed search carries no rows.
    answer->code = ML_SEARCH_TIMEOUT;
    assert (ml_msg_encode (answer, &data, &size) == 0);
    assert (ml_msg_decode (data, size, &error) == NULL && strstr (error, "no rows"));
    free (data);
    ml_msg_destroy (&answer);

    //  Trailing bytes, unknown ids and bad UTF-8 are refused.
    uint8_t ping[] = {0xAA, 'M', 1, ML_MSG_PING, 0};
    assert (ml_msg_decode (ping, sizeof ping, &error) == NULL);
    ml_msg_t *pong = ml_msg_decode (ping, 4, &error);
    assert (pong && pong->id == ML_MSG_PING);
    ml_msg_destroy (&pong);
    uint8_t unknown[] = {0xAA, 'M', 1, 99};
    assert (ml_msg_decode (unknown, sizeof unknown, &error) == NULL);
    uint8_t bad_utf8[] = {0xAA, 'M', 1, ML_MSG_ERROR, 0, 1, 0, 2, 0xC0, 0x80};
    assert (ml_msg_decode (bad_utf8, sizeof bad_utf8, &error) == NULL);
    assert (strstr (error, "UTF-8"));
    ml_msg_destroy (&pong);
    printf ("OK\n");
}
