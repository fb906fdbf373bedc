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
#define ML_MSG_SEARCH         12
#define ML_MSG_SEARCH_RESULT  13

#define ML_PROTOCOL_VERSION 1
#define ML_MAX_MESSAGE_SIZE (16 * 1024 * 1024)
#define ML_MAX_ITEMS        5000
#define ML_MAX_LINES        500
#define ML_MAX_SEARCH_ROWS  500  //  rows in one SEARCH-RESULT
#define ML_MAX_SCOPE        1000 //  numbers in each of a SEARCH's three scope lists
#define ML_MAX_DEADLINE_MS  60000

#define ML_ERROR_MOVED        307 //  another core node owns the firm: reason names it
#define ML_ERROR_MALFORMED    400
#define ML_ERROR_UNAUTHORIZED 401
#define ML_ERROR_OUT_OF_STATE 409
#define ML_ERROR_TOO_LARGE    413 //  the firm's replica would pass core/max_firm_items
#define ML_ERROR_KEY_IN_USE   423 //  another live connection holds this firm's route
#define ML_ERROR_VERSION      426
#define ML_ERROR_INTERNAL     500

//  SEARCH-RESULT codes: 200 the rows; 400 a request the agent cannot run; 500 the database
//  failed; 503 the matter database is unreachable now; 504 the deadline passed.
#define ML_SEARCH_OK          200
#define ML_SEARCH_BAD_REQUEST 400
#define ML_SEARCH_FAILED      500
#define ML_SEARCH_UNAVAILABLE 503
#define ML_SEARCH_TIMEOUT     504

//  What a SEARCH looks in. The numbering is the wire's (docs/protocol.md section 3).
typedef enum {
    ML_FIELD_NONE = 0, //  no criterion: everything in scope
    ML_FIELD_CLIENT_NAME = 1,
    ML_FIELD_CLIENT_NUMBER = 2,
    ML_FIELD_MATTER_NUMBER = 3,
    ML_FIELD_MATTER_DESCRIPTION = 4,
    ML_FIELD_INVOICE_NUMBER = 5
} ml_field_t;

#define ML_FIELD_LAST ML_FIELD_INVOICE_NUMBER

//  Name of a field as staff and the admin API say it ("client-name"), "" for NONE, or NULL.
const char *ml_field_name (int field);

//  The field of a name, or -1.
int ml_field_parse (const char *name);

#define ML_STATUS_ANY     0
#define ML_STATUS_OVERDUE 1 //  due date before as-of
#define ML_STATUS_CURRENT 2 //  no due date, or due on or after as-of

#define ML_AMOUNT_MIN      1 //  amount_filter bits
#define ML_AMOUNT_MAX      2
#define ML_AMOUNT_CURRENCY 4 //  the bounds are amount_currency's minor units: other rows fail

#define ML_SCOPE_CLIENTS  0
#define ML_SCOPE_MATTERS  1
#define ML_SCOPE_INVOICES 2

//  A search request: criteria, filters, the payer's scope, and a page.
typedef struct {
    uint32_t deadline_ms; //  the answer is useless after this; the agent stops the query
    char target;          //  'I' open invoices, 'T' trust ledgers
    uint8_t field;        //  ml_field_t
    char match;           //  'E' exact, 'P' prefix, 'C' contains (case-insensitive)
    char text[256];
    char date_from[11]; //  invoice date range, either end may be empty
    char date_to[11];
    uint8_t amount_filter; //  ML_AMOUNT_MIN | ML_AMOUNT_MAX: which bounds are set
    int64_t amount_min;    //  balance bounds, minor units, inclusive
    int64_t amount_max;
    char amount_currency[4]; //  with ML_AMOUNT_CURRENCY: three upper-case letters
    uint8_t status;          //  ML_STATUS_*
    char as_of[11];          //  the date "overdue" is judged on
    uint8_t scoped;          //  1: only what the scope lists allow (a payer's view)
    size_t scope_count[3];
    char (*scope[3])[64]; //  owned: client numbers, matter numbers, invoice numbers
    uint64_t after;       //  paging: rows with source id above this
    uint16_t limit;       //  1 to ML_MAX_SEARCH_ROWS
} ml_search_t;

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
    //  A reversing posting (refund, void, chargeback) names the posting it reverses;
    //  empty for an ordinary posting. Its lines keep positive amounts: what each takes back.
    char reverses[37];
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
    //  ERROR, SEARCH-RESULT
    uint16_t code;
    //  SEARCH, SEARCH-RESULT
    uint64_t request_id;
    //  SEARCH
    ml_search_t search;
    //  SEARCH-RESULT: where the next page starts (0: no more), and the rows in items
    uint64_t next;
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

//  Append a number to one of the SEARCH's scope lists (ML_SCOPE_*). Returns 0, or -1 when
//  the list holds ML_MAX_SCOPE numbers or the number is empty or over 63 bytes.
int ml_msg_add_scope (ml_msg_t *self, int list, const char *number);

//  True if date is empty, or a real calendar day as YYYY-MM-DD, years 0001 to 9999 (the
//  rule every date on the link follows, and the one date check of the core and the CLI).
bool ml_msg_valid_date (const char *date);

//  The days of a month (1 to 12) of the Gregorian calendar; 0 for another month.
int ml_msg_month_days (int year, int month);

//  Why an item cannot go on the link (its kind, op, currency, dates or amounts break the
//  grammar of docs/protocol.md), or NULL. The decoder refuses a batch holding such an item; the
//  agent checks each row it reads with the same rules, so one bad row never costs the batch.
const char *ml_msg_item_problem (const ml_item_t *item);

//  Encode into a new buffer. Caller owns *data and must free it. Returns 0, or -1 if a
//  field breaks a protocol rule (a string too long, too many items): programmer error on
//  the sending side, reported rather than sent.
int ml_msg_encode (const ml_msg_t *self, uint8_t **data, size_t *size);

//  Decode one message body. Returns a new message (caller owns it), or NULL with *error
//  set to a static text saying what was wrong. Never aborts on bad input.
ml_msg_t *ml_msg_decode (const uint8_t *data, size_t size, const char **error);

//  ERROR 307 (ML_ERROR_MOVED): the reason is "moved ENDPOINT firm FIRM is served by another core
//  node", ENDPOINT "-" when the owner's is unknown (docs/protocol.md, section 4). Fills the
//  reason of error (an ERROR message; endpoint NULL or "" for unknown).
void ml_msg_moved_format (ml_msg_t *error, const char *endpoint, const char *firm_id);

//  Read an ERROR 307's endpoint. Returns 1 with the endpoint copied, 0 when the owner is
//  unknown ("-"), -1 when error is no well-formed ERROR 307 (an endpoint is a tcp:// or
//  ipc:// address without spaces that fits size).
int ml_msg_moved_endpoint (const ml_msg_t *error, char *endpoint, size_t size);

void ml_msg_test (bool verbose);

#endif
