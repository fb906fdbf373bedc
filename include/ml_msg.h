/*  ml_msg: the MLP/1 codec (docs/protocol.md), the one both agent and core use.

    A message is a value record: its fields are plain members, which the id decides
    which are encoded. ml_msg_decode checks every length, count, string and cap of
    docs/protocol.md section 3 and never trusts the input; ml_msg_encode is its inverse.
*/
#ifndef ML_MSG_H_INCLUDED
#define ML_MSG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_MSG_HELLO          1
#define ML_MSG_WELCOME        2
#define ML_MSG_SNAPSHOT       3
#define ML_MSG_SNAPSHOT_END   4
#define ML_MSG_CHANGES        5
#define ML_MSG_ACK            6
#define ML_MSG_POSTING        7
#define ML_MSG_POSTING_RESULT 8
#define ML_MSG_PING           9
#define ML_MSG_PONG           10
#define ML_MSG_ERROR          11

#define ML_PROTOCOL_VERSION 1
#define ML_MAX_MESSAGE_SIZE (16 * 1024 * 1024)
#define ML_MAX_ITEMS        5000
#define ML_MAX_LINES        500

#define ML_ERROR_MALFORMED    400
#define ML_ERROR_UNAUTHORIZED 401
#define ML_ERROR_OUT_OF_STATE 409
#define ML_ERROR_VERSION      426
#define ML_ERROR_INTERNAL     500

//  String buffers are one byte larger than the longest value the protocol allows.
typedef struct {
    char kind; //  'I' invoice, 'T' trust balance of a matter
    char op;   //  'U' upsert, 'R' remove
    uint64_t change_id;
    uint64_t source_id;
    char invoice_number[64];
    char invoice_date[11];
    char due_date[11];
    char client_number[64];
    char client_name[256];
    char matter_number[64];
    char matter_description[256];
    char currency[4];
    int64_t total_minor;
    int64_t balance_minor;
    char status[16];
} ml_item_t;

typedef struct {
    char kind; //  'I' pays an invoice, 'T' deposits to a matter's trust ledger
    char reference[64];
    int64_t amount_minor;
} ml_line_t;

typedef struct {
    char posting_uuid[37];
    char created_at[32];
    char received_on[11];
    char account_number[64];
    char client_number[64];
    char payer_name[256];
    char payer_email[256];
    char currency[4];
    int64_t amount_minor;
    char ar_message[1001];
    char processor_txn[128];
    size_t line_count;
    ml_line_t *lines; //  owned by the message that holds the posting
} ml_posting_t;

typedef struct {
    int id;
    //  HELLO
    uint16_t protocol;
    char agent_version[64];
    uint16_t contract_version;
    char epoch[64];
    uint64_t high_water;
    //  WELCOME
    uint32_t heartbeat_ms;
    uint32_t window;
    uint8_t resync;
    //  WELCOME, SNAPSHOT-END, CHANGES, ACK, POSTING-RESULT
    uint64_t cursor;
    //  SNAPSHOT, SNAPSHOT-END, CHANGES, ACK
    uint64_t batch;
    //  CHANGES
    uint64_t since;
    //  SNAPSHOT-END
    uint64_t count;
    //  SNAPSHOT, CHANGES: item_count items, owned
    size_t item_count;
    size_t item_capacity;
    ml_item_t *items;
    //  POSTING
    ml_posting_t posting;
    //  POSTING-RESULT
    char posting_uuid[37];
    char status[16];
    char receipt_id[64];
    //  POSTING-RESULT, ERROR
    char reason[256];
    //  ERROR
    uint16_t code;
} ml_msg_t;

//  Create a message with the given id and every field empty.
ml_msg_t *ml_msg_new (int id);

//  Destroy a message and what it owns. Idempotent; nulls the caller's pointer.
void ml_msg_destroy (ml_msg_t **self_p);

//  Name of a message id ("HELLO"), for logs; "UNKNOWN" otherwise.
const char *ml_msg_name (int id);

//  Append a zeroed item and return it (borrowed), or NULL when ML_MAX_ITEMS are held.
ml_item_t *ml_msg_add_item (ml_msg_t *self);

//  Drop every item, keeping the allocation for the next batch.
void ml_msg_clear_items (ml_msg_t *self);

//  Set the posting's lines to a copy of count lines. Returns 0, or -1 if count is 0 or
//  above ML_MAX_LINES.
int ml_msg_set_lines (ml_msg_t *self, const ml_line_t *lines, size_t count);

//  Encode into a new buffer. Caller owns *data and must free it. Returns 0, or -1 if a
//  field breaks a protocol rule (a string too long, too many items): programmer error on
//  the sending side, reported rather than sent.
int ml_msg_encode (const ml_msg_t *self, uint8_t **data, size_t *size);

//  Decode one message body. Returns a new message (caller owns it), or NULL with *error
//  set to a static text saying what was wrong. Never aborts on bad input.
ml_msg_t *ml_msg_decode (const uint8_t *data, size_t size, const char **error);

void ml_msg_test (bool verbose);

#endif
