/*  ml_processor: the card processor interface. See include/ml_processor.h and docs/processor.md.

    The public calls check their arguments here, once, for both kinds, then hand over to the
    test processor (s_test_*) or the HTTP client (s_http_*), and log the outcome in one place
    (s_finish). No card number, CVC or API key reaches a log line or a message.
*/
#include "ml_processor.h"
#include "ml_processor_internal.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"
#include "ml_service.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  Answers are outside input: one larger than this is refused, not buffered.
#define S_RESPONSE_MAX (64 * 1024)
//  The test processor keeps everything in memory: it refuses work beyond this many keys.
#define S_TEST_KEYS_MAX 100000
//  A run of this many digits (spaces and '-' between them allowed) is taken for a card number.
#define S_CARD_DIGITS 12

typedef enum { S_KIND_TEST, S_KIND_HTTP } s_kind_t;

//  The test cards (docs/processor.md), after the numbers processors publish for their test
//  modes. Each last4 is unique, so a token names its card without holding the number.
typedef enum { S_APPROVE, S_DECLINE, S_TIMEOUT_AFTER, S_TIMEOUT_BEFORE } s_behaviour_t;

typedef struct {
    const char *number;
    const char *brand;
    s_behaviour_t behaviour;
    const char *reason; //  S_DECLINE: the decline code
} s_card_t;

static const s_card_t s_cards[] = {
    {"4242424242424242", "visa", S_APPROVE, NULL},
    {"5555555555554444", "mastercard", S_APPROVE, NULL},
    {"378282246310005", "amex", S_APPROVE, NULL},
    {"6011111111111117", "discover", S_APPROVE, NULL},
    {"4000000000000002", "visa", S_DECLINE, "card_declined"},
    {"4000000000009995", "visa", S_DECLINE, "insufficient_funds"},
    {"4000000000000069", "visa", S_DECLINE, "expired_card"},
    {"4000000000003006", "visa", S_TIMEOUT_AFTER, NULL},
    {"4000000000004004", "visa", S_TIMEOUT_BEFORE, NULL},
};

const char *ml_processor_test_card (size_t index)
{
    return index < sizeof s_cards / sizeof s_cards[0] ? s_cards[index].number : NULL;
}

//  An operation the test processor completed (APPROVED or DECLINED), under its key.
typedef struct {
    ml_processor_op_t operation;
    char *params; //  canonical parameters, to refuse the key's reuse for another request
    ml_processor_result_t result;
} s_operation_t;

//  A charge the test processor made (approved or declined), under its transaction id.
typedef struct {
    bool approved;
    bool voided;
    bool settled;
    int64_t amount;
    int64_t refunded;
    char currency[4];
    char merchant_account[ML_PROCESSOR_ACCOUNT_MAX + 1];
} s_charge_t;

//  What one HTTP call expects back, so an answer about something else is not believed.
typedef struct {
    ml_processor_op_t operation; //  NONE for a lookup that does not know what it asks about
    const char *key;
    const char *path;
    const char *body; //  NULL for GET
    size_t body_size;
    int64_t amount;
    const char *currency;
    const char *charge_txn;
    const char *merchant_account;
    const char *token; //  a token lookup (GET /v1/tokens/{token}): the token asked about
    bool lookup;       //  GET /v1/operations/{key}: 200 whatever the outcome
} s_request_t;

struct _ml_processor_t {
    s_kind_t kind;
    //  Test kind
    zhashx_t *operations; //  key -> s_operation_t
    zhashx_t *charges;    //  transaction id -> s_charge_t
    zhashx_t *timed_out;  //  keys whose first call already ended UNKNOWN (timeout cards)
    //  HTTP kind
    CURL *curl; //  one handle, so connections are reused between calls
    char endpoint[256];
    char authorization[600]; //  "Authorization: Bearer KEY": a secret, wiped on destroy
    int connect_timeout_ms;
    int timeout_ms;
    int retries;
    int retry_backoff_ms;
    char response[S_RESPONSE_MAX];
    size_t response_size;
    bool response_too_big;
    char curl_error[CURL_ERROR_SIZE];
};

//  --------------------------------------------------------------------------------------
//  Names and checks shared by both kinds

const char *ml_processor_status_name (ml_processor_status_t status)
{
    switch (status) {
        case ML_PROCESSOR_APPROVED:
            return "approved";
        case ML_PROCESSOR_DECLINED:
            return "declined";
        case ML_PROCESSOR_UNKNOWN:
            return "unknown";
        case ML_PROCESSOR_ERROR:
            return "error";
        case ML_PROCESSOR_NOT_FOUND:
            return "not_found";
    }
    return "?";
}

const char *ml_processor_op_name (ml_processor_op_t operation)
{
    switch (operation) {
        case ML_PROCESSOR_TOKENIZE:
            return "tokenize";
        case ML_PROCESSOR_CHARGE:
            return "charge";
        case ML_PROCESSOR_REFUND:
            return "refund";
        case ML_PROCESSOR_VOID:
            return "void";
        case ML_PROCESSOR_NONE:
            break;
    }
    return "none";
}

//  The JSON "object" names of the operations, in the order of ml_processor_op_t.
static const char *s_object_names[] = {"", "token", "charge", "refund", "void"};

static void s_result_set (ml_processor_result_t *result, ml_processor_status_t status,
                          const char *reason, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void s_result_set (ml_processor_result_t *result, ml_processor_status_t status,
                          const char *reason, const char *format, ...)
{
    result->status = status;
    snprintf (result->reason, sizeof result->reason, "%s", reason);
    va_list args;
    va_start (args, format);
    vsnprintf (result->message, sizeof result->message, format, args);
    va_end (args);
}

//  Only letters, digits and the given punctuation, from 1 to max bytes, starting with a
//  letter or digit (so a key is never "." or ".." inside a URL path).
static bool s_valid_word (const char *text, size_t max, const char *punctuation)
{
    if (!text || !isalnum ((unsigned char)text[0]))
        return false;
    size_t length = strlen (text);
    if (length > max)
        return false;
    for (size_t index = 0; index < length; index++)
        if (!isalnum ((unsigned char)text[index]) && !strchr (punctuation, text[index]))
            return false;
    return true;
}

static bool s_valid_key (const char *key)
{
    return s_valid_word (key, ML_PROCESSOR_KEY_MAX, "-_.:");
}

static bool s_valid_id (const char *id)
{
    return s_valid_word (id, ML_PROCESSOR_ID_MAX, "-_");
}

static bool s_valid_account (const char *account)
{
    return s_valid_word (account, ML_PROCESSOR_ACCOUNT_MAX, "-_.");
}

//  A processor's reason code: lower-case letters, digits and '_'.
static bool s_valid_code (const char *code, size_t size)
{
    if (!code || !*code || strlen (code) >= size)
        return false;
    for (const char *cursor = code; *cursor; cursor++)
        if (!islower ((unsigned char)*cursor) && !isdigit ((unsigned char)*cursor) &&
            *cursor != '_')
            return false;
    return true;
}

//  Mask every run of S_CARD_DIGITS or more digits (spaces and '-' between them count as part
//  of the run) in place. Returns true if something was masked.
bool ml_processor_mask_card_numbers (char *text)
{
    bool masked = false;
    for (char *start = text; *start;) {
        if (!isdigit ((unsigned char)*start)) {
            start++;
            continue;
        }
        char *end = start;
        int digits = 0;
        char *last_digit = start;
        while (*end && (isdigit ((unsigned char)*end) || *end == ' ' || *end == '-')) {
            if (isdigit ((unsigned char)*end)) {
                digits++;
                last_digit = end;
            }
            end++;
        }
        if (digits >= S_CARD_DIGITS) {
            for (char *cursor = start; cursor <= last_digit; cursor++)
                if (isdigit ((unsigned char)*cursor))
                    *cursor = '*';
            masked = true;
        }
        start = last_digit + 1;
    }
    return masked;
}

//  Copy text that came from the processor into a message: printable ASCII only, card-number
//  like digit runs masked, cut to size.
static void s_copy_message (const char *untrusted, char *message, size_t size)
{
    size_t out = 0;
    for (const unsigned char *in = (const unsigned char *)untrusted; *in && out + 1 < size; in++)
        message[out++] = (*in >= 0x20 && *in < 0x7f) ? (char)*in : '?';
    message[out] = 0;
    ml_processor_mask_card_numbers (message);
}

//  Keep only the digits of a card number written with spaces or '-'. Returns 0 with 12 to
//  19 Luhn-valid digits in digits, else -1. digits must hold 20 bytes.
static int s_card_digits (const char *number, char *digits)
{
    size_t count = 0;
    for (const char *cursor = number; cursor && *cursor; cursor++) {
        if (isdigit ((unsigned char)*cursor)) {
            if (count == 19)
                return -1;
            digits[count++] = *cursor;
        } else if (*cursor != ' ' && *cursor != '-')
            return -1;
    }
    digits[count] = 0;
    if (count < 12)
        return -1;
    int sum = 0;
    for (size_t index = 0; index < count; index++) {
        int digit = digits[count - 1 - index] - '0';
        if (index % 2 == 1) {
            digit *= 2;
            if (digit > 9)
                digit -= 9;
        }
        sum += digit;
    }
    return sum % 10 == 0 ? 0 : -1;
}

static bool s_valid_cvc (const char *cvc)
{
    size_t length = cvc ? strlen (cvc) : 0;
    if (length < 3 || length > 4)
        return false;
    for (size_t index = 0; index < length; index++)
        if (!isdigit ((unsigned char)cvc[index]))
            return false;
    return true;
}

//  Has a card valid through the end of exp_month/exp_year expired? (UTC, as processors do.)
static bool s_expired (int exp_month, int exp_year)
{
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    return exp_year * 12 + exp_month < (utc.tm_year + 1900) * 12 + utc.tm_mon + 1;
}

//  FNV-1a, 64 bits: the test processor derives its ids from keys with it, so the same key
//  gives the same id after a restart (tests/processor_server.py does the same).
static uint64_t s_fnv (const char *text)
{
    uint64_t hash = UINT64_C (0xcbf29ce484222325);
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor; cursor++) {
        hash ^= *cursor;
        hash *= UINT64_C (0x100000001b3);
    }
    return hash;
}

void ml_processor_derive_id (const char *prefix, const char *key, char *id, size_t size)
{
    snprintf (id, size, "%s_%016" PRIx64, prefix, s_fnv (key));
}

static ml_processor_status_t s_finish (ml_processor_t *self, ml_processor_op_t operation,
                                       const char *key, ml_processor_result_t *result)
{
    if (result->operation == ML_PROCESSOR_NONE)
        result->operation = operation;
    ml_log_level_t level =
        result->status == ML_PROCESSOR_UNKNOWN || result->status == ML_PROCESSOR_ERROR
            ? ML_LOG_WARNING
            : ML_LOG_INFO;
    if (level <= ml_log_level ()) {
        char message[300], amount[64] = "";
        if (result->currency[0])
            snprintf (amount, sizeof amount, " amount=%" PRId64 " %s", result->amount_minor,
                      result->currency);
        ml_log_write (level, "processor %s: %s key=%s: %s%s%s%s%s%s%s%s%s%s",
                      self->kind == S_KIND_TEST ? "test" : "http",
                      operation == ML_PROCESSOR_NONE ? "lookup" : ml_processor_op_name (operation),
                      s_valid_key (key) ? key : "(invalid)",
                      ml_processor_status_name (result->status), result->txn[0] ? " txn=" : "",
                      result->txn, result->last4[0] ? " last4=" : "", result->last4, amount,
                      result->reason[0] ? " reason=" : "", result->reason,
                      result->message[0] ? ": " : "",
                      ml_log_escape (result->message, message, sizeof message));
        if (result->status == ML_PROCESSOR_UNKNOWN && operation != ML_PROCESSOR_NONE)
            ml_log_write (level,
                          "processor: the outcome of %s key=%s is unknown: it may have happened; "
                          "resolve it with a lookup or by calling again with the same key",
                          ml_processor_op_name (operation), key);
    }
    return result->status;
}

//  --------------------------------------------------------------------------------------
//  Life cycle

static void s_operation_destroy (void **item_p)
{
    s_operation_t *operation = (s_operation_t *)*item_p;
    if (operation) {
        free (operation->params);
        free (operation);
        *item_p = NULL;
    }
}

static void s_charge_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

ml_processor_t *ml_processor_new (const ml_processor_settings_t *settings, char *error,
                                  size_t error_size)
{
    assert (settings);
    bool http = streq (settings->kind, "http");
    if (!http && !streq (settings->kind, "test")) {
        snprintf (error, error_size, "processor kind must be test or http");
        return NULL;
    }
    if (http) {
        if (ml_processor_check_endpoint (settings->endpoint, error, error_size) != 0)
            return NULL;
        if (!ml_processor_valid_api_key (settings->api_key)) {
            snprintf (error, error_size,
                      "the http processor needs an API key (one line, "
                      "printable ASCII without spaces)");
            return NULL;
        }
        if (settings->connect_timeout_ms < 1 || settings->timeout_ms < 1 || settings->retries < 0 ||
            settings->retries > 10 || settings->retry_backoff_ms < 0) {
            snprintf (error, error_size, "processor timeouts, retries or back-off out of range");
            return NULL;
        }
        //  Thread-safe and reference-counted since curl 7.84; undone in destroy.
        if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf (error, error_size, "cannot initialise libcurl");
            return NULL;
        }
    }
    ml_processor_t *self = calloc (1, sizeof (ml_processor_t));
    assert (self);
    if (!http) {
        self->kind = S_KIND_TEST;
        self->operations = zhashx_new ();
        self->charges = zhashx_new ();
        self->timed_out = zhashx_new ();
        assert (self->operations && self->charges && self->timed_out);
        zhashx_set_destructor (self->operations, s_operation_destroy);
        zhashx_set_destructor (self->charges, s_charge_destroy);
        ml_log (ML_LOG_NOTICE, "processor: the built-in test processor is in use: no card is "
                               "charged (docs/processor.md lists its test cards)");
        return self;
    }
    self->kind = S_KIND_HTTP;
    self->curl = curl_easy_init ();
    if (!self->curl) {
        snprintf (error, error_size, "cannot create a libcurl handle");
        curl_global_cleanup ();
        free (self);
        return NULL;
    }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", settings->endpoint);
    //  Requests add paths that start with '/'.
    size_t length = strlen (self->endpoint);
    while (length > 0 && self->endpoint[length - 1] == '/')
        self->endpoint[--length] = 0;
    snprintf (self->authorization, sizeof self->authorization, "Authorization: Bearer %s",
              settings->api_key);
    self->connect_timeout_ms = settings->connect_timeout_ms;
    self->timeout_ms = settings->timeout_ms;
    self->retries = settings->retries;
    self->retry_backoff_ms = settings->retry_backoff_ms;
    return self;
}

ml_processor_t *ml_processor_load (ml_config_t *config, char *error, size_t error_size)
{
    ml_processor_settings_t settings;
    ml_processor_t *self = NULL;
    if (ml_processor_settings_load (&settings, config, error, error_size) == 0)
        self = ml_processor_new (&settings, error, error_size);
    ml_processor_settings_wipe (&settings);
    return self;
}

void ml_processor_destroy (ml_processor_t **self_p)
{
    assert (self_p);
    ml_processor_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->operations);
        zhashx_destroy (&self->charges);
        zhashx_destroy (&self->timed_out);
        if (self->curl) {
            curl_easy_cleanup (self->curl);
            curl_global_cleanup ();
        }
        explicit_bzero (self->authorization, sizeof self->authorization);
        free (self);
        *self_p = NULL;
    }
}

const char *ml_processor_kind (ml_processor_t *self)
{
    assert (self);
    return self->kind == S_KIND_TEST ? "test" : "http";
}

//  --------------------------------------------------------------------------------------
//  The test processor: deterministic by card number, state in memory

static const s_card_t *s_card_find (const char *digits)
{
    for (size_t index = 0; index < sizeof s_cards / sizeof s_cards[0]; index++)
        if (streq (s_cards[index].number, digits))
            return &s_cards[index];
    return NULL;
}

static const char *s_last4 (const char *number)
{
    return number + strlen (number) - 4;
}

//  A test token is tok_BRAND_LAST4_MMYYYY_HASH: it names its test card and expiry without the
//  number, so tokens saved before a restart still work. HASH is the key's FNV-1a hash in hex,
//  written as two groups of 8 (s_test_token); tokens made before that hold it as one group of
//  16 and still charge.
static const s_card_t *s_token_card (const char *token, int *exp_month, int *exp_year)
{
    char brand[16], last4[5], expiry[7], high[17], low[9] = "";
    int used = 0, more = 0;
    if (strncmp (token, "tok_", 4) != 0 || strlen (token) > 64 ||
        sscanf (token + 4, "%15[a-z]_%4[0-9]_%6[0-9]_%16[0-9a-f]%n", brand, last4, expiry, high,
                &used) != 4)
        return NULL;
    if (strlen (high) == 8 && sscanf (token + 4 + used, "_%8[0-9a-f]%n", low, &more) == 1)
        used += more;
    if (token[4 + used] != 0 || strlen (last4) != 4 || strlen (expiry) != 6 ||
        strlen (high) + strlen (low) != 16)
        return NULL;
    for (size_t index = 0; index < sizeof s_cards / sizeof s_cards[0]; index++)
        if (streq (s_cards[index].brand, brand) && streq (s_last4 (s_cards[index].number), last4)) {
            *exp_month = (expiry[0] - '0') * 10 + (expiry[1] - '0');
            *exp_year = atoi (expiry + 2);
            return *exp_month >= 1 && *exp_month <= 12 ? &s_cards[index] : NULL;
        }
    return NULL;
}

//  Answer from the idempotency store when the key is known: the stored result for the same
//  request, an ERROR for another one. Returns true when result holds the answer.
static bool s_test_replay (ml_processor_t *self, const char *key, ml_processor_op_t operation,
                           const char *params, ml_processor_result_t *result)
{
    s_operation_t *stored = (s_operation_t *)zhashx_lookup (self->operations, key);
    if (stored) {
        if (stored->operation == operation && streq (stored->params, params))
            *result = stored->result;
        else
            s_result_set (result, ML_PROCESSOR_ERROR, "idempotency_key_reused",
                          "idempotency key reused with other parameters");
        return true;
    }
    if (zhashx_size (self->operations) + zhashx_size (self->timed_out) >= S_TEST_KEYS_MAX) {
        s_result_set (result, ML_PROCESSOR_ERROR, "test_processor_full",
                      "the test processor holds %d keys, its limit", S_TEST_KEYS_MAX);
        return true;
    }
    return false;
}

//  Only APPROVED and DECLINED are stored: an ERROR leaves the key unused.
static void s_test_store (ml_processor_t *self, const char *key, ml_processor_op_t operation,
                          const char *params, const ml_processor_result_t *result)
{
    s_operation_t *stored = calloc (1, sizeof (s_operation_t));
    assert (stored);
    stored->operation = operation;
    stored->params = strdup (params);
    assert (stored->params);
    stored->result = *result;
    int rc = zhashx_insert (self->operations, key, stored);
    assert (rc == 0);
}

//  The test token of a card for key: tok_BRAND_LAST4_MMYYYY_HASH, HASH the key's FNV-1a hash
//  as two groups of 8 hex digits. In one group of 16 it held a run of 13 or more decimal digits
//  passing the card check for about one key in 2,000, and method-add refuses such a token as a
//  card number (docs/admin-api.md), so the card of that payment could not be saved; a run of 8
//  never looks like one.
static void s_test_token (const char *brand, const char *last4, int exp_month, int exp_year,
                          const char *key, char *token, size_t size)
{
    uint64_t hash = s_fnv (key);
    snprintf (token, size, "tok_%s_%s_%02d%04d_%08" PRIx64 "_%08" PRIx64, brand, last4, exp_month,
              exp_year, hash >> 32, hash & UINT64_C (0xffffffff));
}

static void s_test_tokenize (ml_processor_t *self, const char *key, const char *digits,
                             int exp_month, int exp_year, const char *cvc,
                             ml_processor_result_t *result)
{
    const s_card_t *card = s_card_find (digits);
    if (!card) {
        s_result_set (result, ML_PROCESSOR_ERROR, "not_a_test_card",
                      "the test processor takes only the test cards of docs/processor.md");
        return;
    }
    if (strlen (cvc) != (streq (card->brand, "amex") ? 4u : 3u)) {
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_cvc",
                      "the security code has 4 digits on amex cards and 3 on others");
        return;
    }
    //  Only the test cards above get this far, so the hash below is of a published number.
    char text[64], params[40];
    snprintf (text, sizeof text, "tokenize|%s|%d|%d|%s", digits, exp_month, exp_year, cvc);
    snprintf (params, sizeof params, "%016" PRIx64, s_fnv (text));
    explicit_bzero (text, sizeof text);
    if (s_test_replay (self, key, ML_PROCESSOR_TOKENIZE, params, result))
        return;
    snprintf (result->brand, sizeof result->brand, "%s", card->brand);
    snprintf (result->last4, sizeof result->last4, "%s", s_last4 (digits));
    result->exp_month = exp_month;
    result->exp_year = exp_year;
    if (s_expired (exp_month, exp_year))
        s_result_set (result, ML_PROCESSOR_DECLINED, "expired_card", "the card has expired");
    else {
        s_test_token (card->brand, result->last4, exp_month, exp_year, key, result->token,
                      sizeof result->token);
        s_result_set (result, ML_PROCESSOR_APPROVED, "", "%s", "");
    }
    s_test_store (self, key, ML_PROCESSOR_TOKENIZE, params, result);
}

static void s_test_charge (ml_processor_t *self, const char *key, const char *token, int64_t amount,
                           const char *currency, const char *merchant_account,
                           const char *description, ml_processor_result_t *result)
{
    int exp_month = 0, exp_year = 0;
    const s_card_t *card = s_token_card (token, &exp_month, &exp_year);
    if (!card) {
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_token",
                      "no such token at the test processor");
        return;
    }
    char *params = zsys_sprintf ("charge|%s|%" PRId64 "|%s|%s|%s", token, amount, currency,
                                 merchant_account, description);
    assert (params);
    if (s_test_replay (self, key, ML_PROCESSOR_CHARGE, params, result)) {
        zstr_free (&params);
        return;
    }
    //  The call is lost on its way: nothing happens, the caller cannot know it.
    if (card->behaviour == S_TIMEOUT_BEFORE && !zhashx_lookup (self->timed_out, key)) {
        zhashx_insert (self->timed_out, key, (void *)"");
        s_result_set (result, ML_PROCESSOR_UNKNOWN, "timeout",
                      "no answer from the processor in time");
        zstr_free (&params);
        return;
    }
    ml_processor_derive_id ("ch", key, result->txn, sizeof result->txn);
    if (zhashx_lookup (self->charges, result->txn)) {
        s_result_set (result, ML_PROCESSOR_ERROR, "txn_collision",
                      "two keys give the same test transaction id: use another key");
        result->txn[0] = 0;
        zstr_free (&params);
        return;
    }
    result->amount_minor = amount;
    snprintf (result->currency, sizeof result->currency, "%s", currency);
    snprintf (result->merchant_account, sizeof result->merchant_account, "%s", merchant_account);
    if (s_expired (exp_month, exp_year))
        s_result_set (result, ML_PROCESSOR_DECLINED, "expired_card", "the card has expired");
    else if (card->behaviour == S_DECLINE)
        s_result_set (result, ML_PROCESSOR_DECLINED, card->reason, "the card was declined");
    else
        s_result_set (result, ML_PROCESSOR_APPROVED, "", "%s", "");
    s_charge_t *charge = calloc (1, sizeof (s_charge_t));
    assert (charge);
    charge->approved = result->status == ML_PROCESSOR_APPROVED;
    charge->amount = amount;
    snprintf (charge->currency, sizeof charge->currency, "%s", currency);
    snprintf (charge->merchant_account, sizeof charge->merchant_account, "%s", merchant_account);
    zhashx_insert (self->charges, result->txn, charge);
    s_test_store (self, key, ML_PROCESSOR_CHARGE, params, result);
    zstr_free (&params);
    //  The charge is made, but its answer is lost: the caller must find out by asking.
    if (card->behaviour == S_TIMEOUT_AFTER) {
        memset (result, 0, sizeof *result);
        s_result_set (result, ML_PROCESSOR_UNKNOWN, "timeout",
                      "no answer from the processor in time");
    }
}

//  The charge a refund or void acts on, or NULL with an ERROR in result.
static s_charge_t *s_test_charge_for (ml_processor_t *self, const char *charge_txn,
                                      ml_processor_result_t *result)
{
    s_charge_t *charge = (s_charge_t *)zhashx_lookup (self->charges, charge_txn);
    if (!charge)
        s_result_set (result, ML_PROCESSOR_ERROR, "no_such_charge",
                      "the test processor knows no charge %s", charge_txn);
    else if (!charge->approved)
        s_result_set (result, ML_PROCESSOR_ERROR, "charge_not_approved",
                      "charge %s was declined: there is nothing to give back", charge_txn);
    else if (charge->voided)
        s_result_set (result, ML_PROCESSOR_ERROR, "charge_voided", "charge %s was voided",
                      charge_txn);
    else
        return charge;
    return NULL;
}

static void s_test_refund (ml_processor_t *self, const char *key, const char *charge_txn,
                           int64_t amount, const char *currency, ml_processor_result_t *result)
{
    char params[300];
    snprintf (params, sizeof params, "refund|%s|%" PRId64 "|%s", charge_txn, amount, currency);
    if (s_test_replay (self, key, ML_PROCESSOR_REFUND, params, result))
        return;
    s_charge_t *charge = s_test_charge_for (self, charge_txn, result);
    if (!charge)
        return;
    if (!streq (charge->currency, currency)) {
        s_result_set (result, ML_PROCESSOR_ERROR, "currency_mismatch", "charge %s is in %s, not %s",
                      charge_txn, charge->currency, currency);
        return;
    }
    if (amount > charge->amount - charge->refunded) {
        char left[64];
        s_result_set (
            result, ML_PROCESSOR_ERROR, "amount_exceeds_refundable",
            "charge %s has %s left to refund", charge_txn,
            ml_money_format (charge->amount - charge->refunded, currency, left, sizeof left));
        return;
    }
    charge->refunded += amount;
    ml_processor_derive_id ("re", key, result->txn, sizeof result->txn);
    snprintf (result->charge_txn, sizeof result->charge_txn, "%s", charge_txn);
    snprintf (result->merchant_account, sizeof result->merchant_account, "%s",
              charge->merchant_account);
    result->amount_minor = amount;
    snprintf (result->currency, sizeof result->currency, "%s", currency);
    s_result_set (result, ML_PROCESSOR_APPROVED, "", "%s", "");
    s_test_store (self, key, ML_PROCESSOR_REFUND, params, result);
}

static void s_test_void (ml_processor_t *self, const char *key, const char *charge_txn,
                         ml_processor_result_t *result)
{
    char params[200];
    snprintf (params, sizeof params, "void|%s", charge_txn);
    if (s_test_replay (self, key, ML_PROCESSOR_VOID, params, result))
        return;
    s_charge_t *charge = s_test_charge_for (self, charge_txn, result);
    if (!charge)
        return;
    if (charge->settled) {
        s_result_set (result, ML_PROCESSOR_ERROR, "charge_settled",
                      "charge %s has settled: refund it instead", charge_txn);
        return;
    }
    if (charge->refunded > 0) {
        s_result_set (result, ML_PROCESSOR_ERROR, "charge_refunded",
                      "charge %s was partly refunded: refund the rest instead", charge_txn);
        return;
    }
    charge->voided = true;
    ml_processor_derive_id ("vo", key, result->txn, sizeof result->txn);
    snprintf (result->charge_txn, sizeof result->charge_txn, "%s", charge_txn);
    snprintf (result->merchant_account, sizeof result->merchant_account, "%s",
              charge->merchant_account);
    result->amount_minor = charge->amount;
    snprintf (result->currency, sizeof result->currency, "%s", charge->currency);
    s_result_set (result, ML_PROCESSOR_APPROVED, "", "%s", "");
    s_test_store (self, key, ML_PROCESSOR_VOID, params, result);
}

static void s_test_lookup (ml_processor_t *self, const char *key, ml_processor_result_t *result)
{
    s_operation_t *stored = (s_operation_t *)zhashx_lookup (self->operations, key);
    if (stored)
        *result = stored->result;
    else
        s_result_set (result, ML_PROCESSOR_NOT_FOUND, "not_found",
                      "no operation was made with this key");
}

int ml_processor_settle (ml_processor_t *self)
{
    assert (self);
    if (self->kind != S_KIND_TEST)
        return -1;
    int settled = 0;
    for (s_charge_t *charge = (s_charge_t *)zhashx_first (self->charges); charge;
         charge = (s_charge_t *)zhashx_next (self->charges))
        if (charge->approved && !charge->voided && !charge->settled) {
            charge->settled = true;
            settled++;
        }
    return settled;
}

//  --------------------------------------------------------------------------------------
//  The HTTP client

static size_t s_http_write (char *data, size_t size, size_t count, void *argument)
{
    ml_processor_t *self = (ml_processor_t *)argument;
    size_t bytes = size * count;
    if (bytes > S_RESPONSE_MAX - self->response_size) {
        self->response_too_big = true;
        return 0; //  curl stops the transfer
    }
    memcpy (self->response + self->response_size, data, bytes);
    self->response_size += bytes;
    return bytes;
}

//  Copy a string member that must match a word check into out. Returns 0, or -1 when the
//  member is absent (and required) or not a valid string.
static int s_member_id (json_t *root, const char *name, bool required, bool (*check) (const char *),
                        char *out, size_t size)
{
    json_t *value = json_object_get (root, name);
    if (!value)
        return required ? -1 : 0;
    const char *text = json_string_value (value);
    if (!text || !check (text) || strlen (text) >= size)
        return -1;
    snprintf (out, size, "%s", text);
    return 0;
}

static int s_member_amount (json_t *root, const char *name, bool required, int64_t *amount)
{
    json_t *value = json_object_get (root, name);
    if (!value)
        return required ? -1 : 0;
    if (!json_is_integer (value) || json_integer_value (value) < 1 ||
        json_integer_value (value) > ML_PROCESSOR_AMOUNT_MAX)
        return -1;
    *amount = (int64_t)json_integer_value (value);
    return 0;
}

static bool s_known_currency (const char *text)
{
    return ml_money_exponent (text) >= 0;
}

//  Read the processor's reason and message (both optional) into result.
static void s_read_reason (json_t *root, ml_processor_result_t *result)
{
    const char *reason = json_string_value (json_object_get (root, "reason"));
    if (reason && s_valid_code (reason, sizeof result->reason))
        snprintf (result->reason, sizeof result->reason, "%s", reason);
    const char *message = json_string_value (json_object_get (root, "message"));
    if (message)
        s_copy_message (message, result->message, sizeof result->message);
}

//  Fill result from an operation object (a POST's answer, or a lookup's). Returns 0, or -1
//  with why when the answer is not one we can believe.
static int s_http_outcome (const s_request_t *request, long http, json_t *root,
                           ml_processor_result_t *result, const char **why)
{
    *why = "not a JSON object";
    if (!json_is_object (root))
        return -1;
    const char *object = json_string_value (json_object_get (root, "object"));
    ml_processor_op_t operation = ML_PROCESSOR_NONE;
    for (int index = ML_PROCESSOR_TOKENIZE; index <= ML_PROCESSOR_VOID; index++)
        if (object && streq (object, s_object_names[index]))
            operation = (ml_processor_op_t)index;
    *why = "no known \"object\"";
    if (operation == ML_PROCESSOR_NONE ||
        (request->operation != ML_PROCESSOR_NONE && operation != request->operation))
        return -1;
    *why = request->token ? "\"token\" is not the token asked about"
                          : "\"idempotency_key\" is not the key of the request";
    const char *key =
        json_string_value (json_object_get (root, request->token ? "token" : "idempotency_key"));
    if (!key || !streq (key, request->token ? request->token : request->key))
        return -1;
    const char *status = json_string_value (json_object_get (root, "status"));
    bool approved = status && streq (status, "approved");
    bool declined = status && streq (status, "declined");
    *why = "\"status\" is neither approved nor declined, or disagrees with the HTTP status";
    if (!approved && !declined)
        return -1;
    if (request->lookup ? http != 200
                        : request->operation != ML_PROCESSOR_NONE &&
                              (approved ? http != 200 && http != 201 : http != 402))
        return -1;
    memset (result, 0, sizeof *result);
    result->operation = operation;
    *why = "a member is missing or has the wrong type";
    if (operation == ML_PROCESSOR_TOKENIZE) {
        const char *brand = json_string_value (json_object_get (root, "brand"));
        const char *brands[] = {"visa", "mastercard", "amex", "discover"};
        snprintf (result->brand, sizeof result->brand, "other");
        for (size_t index = 0; brand && index < 4; index++)
            if (streq (brand, brands[index]))
                snprintf (result->brand, sizeof result->brand, "%s", brand);
        const char *last4 = json_string_value (json_object_get (root, "last4"));
        if (last4 && strlen (last4) == 4 && strspn (last4, "0123456789") == 4)
            snprintf (result->last4, sizeof result->last4, "%s", last4);
        json_t *month = json_object_get (root, "exp_month");
        json_t *year = json_object_get (root, "exp_year");
        if (json_is_integer (month) && json_integer_value (month) >= 1 &&
            json_integer_value (month) <= 12 && json_is_integer (year) &&
            json_integer_value (year) >= 2000 && json_integer_value (year) <= 2099) {
            result->exp_month = (int)json_integer_value (month);
            result->exp_year = (int)json_integer_value (year);
        }
        if (approved && (s_member_id (root, "token", true, s_valid_id, result->token,
                                      sizeof result->token) != 0 ||
                         !result->last4[0] || !result->exp_month))
            return -1;
    } else {
        bool charge = operation == ML_PROCESSOR_CHARGE;
        if (s_member_id (root, "id", approved, s_valid_id, result->txn, sizeof result->txn) ||
            s_member_id (root, "charge", approved && !charge, s_valid_id, result->charge_txn,
                         sizeof result->charge_txn) ||
            s_member_amount (root, "amount", approved && operation != ML_PROCESSOR_VOID,
                             &result->amount_minor) ||
            s_member_id (root, "currency", result->amount_minor > 0, s_known_currency,
                         result->currency, sizeof result->currency) ||
            s_member_id (root, "merchant_account", approved && charge, s_valid_account,
                         result->merchant_account, sizeof result->merchant_account))
            return -1;
        //  An answer about another amount, currency, account or charge than the one asked
        //  for is a fault somewhere between us and the processor: believe none of it.
        *why = "the answer is about another amount, currency, account or charge";
        if (request->operation != ML_PROCESSOR_NONE) {
            //  A void's answer need not name an amount; when it does, it is the charge's.
            if (request->amount && approved &&
                (operation != ML_PROCESSOR_VOID || result->amount_minor) &&
                (result->amount_minor != request->amount ||
                 !streq (result->currency, request->currency)))
                return -1;
            if (request->charge_txn && approved && !streq (result->charge_txn, request->charge_txn))
                return -1;
            if (request->merchant_account && approved &&
                !streq (result->merchant_account, request->merchant_account))
                return -1;
        }
    }
    s_read_reason (root, result);
    result->status = approved ? ML_PROCESSOR_APPROVED : ML_PROCESSOR_DECLINED;
    if (declined && !result->reason[0])
        snprintf (result->reason, sizeof result->reason, "unspecified");
    if (approved)
        result->reason[0] = 0;
    return 0;
}

//  One attempt: perform the request; *not_sent tells that not a byte of it left this host.
static CURLcode s_http_perform (ml_processor_t *self, const char *url, struct curl_slist *headers,
                                const s_request_t *request, long *http, bool *not_sent)
{
    CURL *curl = self->curl;
    //  Reset keeps the connection cache, so the next attempt may reuse the connection.
    curl_easy_reset (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt (curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long)self->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long)self->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_USERAGENT,
                      "matterlink/"
                      "0.1");
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_http_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, self);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, self->curl_error);
    //  Never CURLOPT_VERBOSE: it would print the Authorization header.
    if (request->body) {
        curl_easy_setopt (curl, CURLOPT_POST, 1L);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, request->body);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE, (long)request->body_size);
    } else
        curl_easy_setopt (curl, CURLOPT_HTTPGET, 1L);
    self->response_size = 0;
    self->response_too_big = false;
    self->curl_error[0] = 0;
    CURLcode code = curl_easy_perform (curl);
    *http = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, http);
    long sent = 0;
    curl_easy_getinfo (curl, CURLINFO_REQUEST_SIZE, &sent);
    *not_sent = code != CURLE_OK && sent == 0;
    return code;
}

//  Is this HTTP status one to try again with the same key?
static bool s_http_retryable (long http)
{
    return http >= 500 || http == 408 || http == 429;
}

static void s_http_call (ml_processor_t *self, const s_request_t *request,
                         ml_processor_result_t *result)
{
    char url[600], idempotency[200];
    snprintf (url, sizeof url, "%s%s", self->endpoint, request->path);
    snprintf (idempotency, sizeof idempotency, "Idempotency-Key: %s", request->key);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append (headers, self->authorization);
    headers = curl_slist_append (headers, idempotency);
    headers = curl_slist_append (headers, "Accept: application/json");
    if (request->body) {
        headers = curl_slist_append (headers, "Content-Type: application/json");
        headers = curl_slist_append (headers, "Expect:");
    }
    assert (headers);
    const char *method = request->body ? "POST" : "GET";
    const char *operation = request->operation == ML_PROCESSOR_NONE
                                ? "lookup"
                                : ml_processor_op_name (request->operation);
    bool maybe_sent = false, final = false;
    const char *reason = "network_error";
    char problem[300] = "";
    int attempts = self->retries + 1;
    for (int attempt = 1; attempt <= attempts && !final; attempt++) {
        if (attempt > 1) {
            int wait = self->retry_backoff_ms;
            for (int doubling = 2; doubling < attempt && wait < ML_PROCESSOR_BACKOFF_MAX_MS;
                 doubling++)
                wait *= 2;
            wait = wait > ML_PROCESSOR_BACKOFF_MAX_MS ? ML_PROCESSOR_BACKOFF_MAX_MS : wait;
            ml_log (ML_LOG_WARNING,
                    "processor http: %s key=%s: %s; retrying with the same key "
                    "in %d ms (attempt %d of %d)",
                    operation, request->key, problem, wait, attempt, attempts);
            zclock_sleep (wait);
        }
        int64_t started = zclock_mono ();
        long http = 0;
        bool not_sent = false;
        CURLcode code = s_http_perform (self, url, headers, request, &http, &not_sent);
        char escaped[300];
        if (code != CURLE_OK && !self->response_too_big) {
            ml_log_escape (self->curl_error[0] ? self->curl_error : curl_easy_strerror (code),
                           escaped, sizeof escaped);
            ml_log (ML_LOG_DEBUG, "processor http: %s %s key=%s attempt %d: %s (%" PRId64 " ms)",
                    method, request->path, request->key, attempt, escaped,
                    zclock_mono () - started);
            maybe_sent = maybe_sent || !not_sent;
            reason = code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network_error";
            snprintf (problem, sizeof problem, "%s", escaped);
            continue;
        }
        ml_log (ML_LOG_DEBUG,
                "processor http: %s %s key=%s attempt %d: HTTP %ld, %zu bytes in %" PRId64 " ms",
                method, request->path, request->key, attempt, http, self->response_size,
                zclock_mono () - started);
        maybe_sent = true;
        if (self->response_too_big) {
            reason = "bad_response";
            snprintf (problem, sizeof problem, "HTTP %ld with an answer over %d bytes", http,
                      S_RESPONSE_MAX);
            continue;
        }
        if (s_http_retryable (http)) {
            reason = "server_error";
            snprintf (problem, sizeof problem, "HTTP %ld", http);
            continue;
        }
        json_error_t json_error;
        json_t *root =
            json_loadb (self->response, self->response_size, JSON_REJECT_DUPLICATES, &json_error);
        bool lookup = request->lookup;
        const char *why = "not JSON";
        if (http == 200 || http == 201 || (http == 402 && !lookup)) {
            const char *claimed = json_string_value (json_object_get (root, "status"));
            if (root && s_http_outcome (request, http, root, result, &why) == 0)
                final = true;
            else if (http == 402 && !(claimed && streq (claimed, "approved"))) {
                //  The status line is the processor's final word even when its body is not
                //  readable; but a body that says approved contradicts it: neither is believed.
                memset (result, 0, sizeof *result);
                s_result_set (result, ML_PROCESSOR_DECLINED, "unspecified",
                              "the processor declined without a readable reason");
                final = true;
            } else {
                reason = "bad_response";
                snprintf (problem, sizeof problem, "HTTP %ld with an answer we cannot use (%s)",
                          http, why);
            }
        } else if (http >= 400 && http < 500) {
            //  Refused: the error object says why, when it is readable.
            json_t *error = json_object_get (root, "error");
            const char *code_text = json_string_value (json_object_get (error, "code"));
            const char *message = json_string_value (json_object_get (error, "message"));
            if (http == 409 && code_text && streq (code_text, "request_in_progress")) {
                //  The first request with this key is still being worked on: ask again.
                reason = "in_progress";
                snprintf (problem, sizeof problem,
                          "HTTP 409: a request with this key is in "
                          "progress");
                json_decref (root);
                continue;
            }
            memset (result, 0, sizeof *result);
            if (lookup && http == 404 && code_text && streq (code_text, "not_found"))
                s_result_set (result, ML_PROCESSOR_NOT_FOUND, "not_found",
                              "no operation was made with this key");
            else {
                if (code_text && s_valid_code (code_text, sizeof result->reason))
                    snprintf (result->reason, sizeof result->reason, "%s", code_text);
                else if (http == 401 || http == 403)
                    snprintf (result->reason, sizeof result->reason, "unauthorized");
                else
                    snprintf (result->reason, sizeof result->reason, "http_%ld", http);
                if (message)
                    s_copy_message (message, result->message, sizeof result->message);
                else
                    snprintf (result->message, sizeof result->message,
                              "the processor refused the request (HTTP %ld)", http);
                result->status = ML_PROCESSOR_ERROR;
                if (http == 401 || http == 403)
                    ml_log (ML_LOG_ERROR,
                            "processor http: the processor refused our API key (HTTP %ld): "
                            "check the file named by processor/api_key_file",
                            http);
            }
            final = true;
        } else {
            reason = "bad_response";
            snprintf (problem, sizeof problem, "unexpected HTTP %ld", http);
        }
        json_decref (root);
    }
    //  The header list holds a copy of the key: wipe it before it goes back to the heap.
    for (struct curl_slist *item = headers; item; item = item->next)
        explicit_bzero (item->data, strlen (item->data));
    curl_slist_free_all (headers);
    if (final)
        return;
    memset (result, 0, sizeof *result);
    if (!maybe_sent && request->operation != ML_PROCESSOR_NONE)
        s_result_set (result, ML_PROCESSOR_ERROR, "processor_unreachable",
                      "the processor could not be reached (%s); the request was not sent", problem);
    else
        s_result_set (result, ML_PROCESSOR_UNKNOWN, maybe_sent ? reason : "processor_unreachable",
                      "no usable answer after %d attempts (last: %s)", attempts, problem);
}

static void s_http_tokenize (ml_processor_t *self, const char *key, const char *digits,
                             int exp_month, int exp_year, const char *cvc,
                             ml_processor_result_t *result)
{
    //  Written by hand, not with jansson, so that the only copy of the number is this buffer,
    //  which is wiped afterwards (digits and cvc are digits only: nothing to escape).
    char body[160];
    int size = snprintf (body, sizeof body,
                         "{\"number\":\"%s\",\"exp_month\":%d,\"exp_year\":%d,\"cvc\":\"%s\"}",
                         digits, exp_month, exp_year, cvc);
    s_request_t request = {ML_PROCESSOR_TOKENIZE,
                           key,
                           "/v1/tokens",
                           body,
                           (size_t)size,
                           0,
                           NULL,
                           NULL,
                           NULL,
                           NULL,
                           false};
    s_http_call (self, &request, result);
    explicit_bzero (body, sizeof body);
}

static void s_http_post (ml_processor_t *self, s_request_t *request, json_t *body,
                         ml_processor_result_t *result)
{
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    assert (text);
    request->body = text;
    request->body_size = strlen (text);
    s_http_call (self, request, result);
    free (text);
}

//  --------------------------------------------------------------------------------------
//  The operations

static void s_result_init (ml_processor_result_t *result, ml_processor_op_t operation)
{
    assert (result);
    memset (result, 0, sizeof *result);
    result->operation = operation;
}

//  Checks shared by every operation. Returns true if key is usable, else sets the ERROR.
static bool s_check_key (const char *key, ml_processor_result_t *result)
{
    if (s_valid_key (key))
        return true;
    s_result_set (result, ML_PROCESSOR_ERROR, "invalid_key",
                  "an idempotency key is 1 to %d letters, digits, '-', '_', '.' or ':', "
                  "starting with a letter or digit",
                  ML_PROCESSOR_KEY_MAX);
    return false;
}

static bool s_check_money (int64_t amount, const char *currency, ml_processor_result_t *result)
{
    if (amount < 1 || amount > ML_PROCESSOR_AMOUNT_MAX) {
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_amount",
                      "an amount is a whole number of minor units from 1 to 2^53 - 1");
        return false;
    }
    if (!currency || ml_money_exponent (currency) < 0) {
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_currency",
                      "the currency is not an ISO 4217 code we know");
        return false;
    }
    return true;
}

ml_processor_status_t ml_processor_tokenize (ml_processor_t *self, const char *key,
                                             const char *number, int exp_month, int exp_year,
                                             const char *cvc, ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_TOKENIZE);
    char digits[20];
    if (!s_check_key (key, result))
        ;
    else if (s_card_digits (number, digits) != 0)
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_number",
                      "the card number is not 12 to 19 digits passing the Luhn check");
    else if (exp_month < 1 || exp_month > 12 || exp_year < 2000 || exp_year > 2099)
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_expiry",
                      "the expiry is a month 1 to 12 and a four-digit year");
    else if (!s_valid_cvc (cvc))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_cvc",
                      "the security code is 3 or 4 digits");
    else if (self->kind == S_KIND_TEST)
        s_test_tokenize (self, key, digits, exp_month, exp_year, cvc, result);
    else
        s_http_tokenize (self, key, digits, exp_month, exp_year, cvc, result);
    explicit_bzero (digits, sizeof digits);
    return s_finish (self, ML_PROCESSOR_TOKENIZE, key, result);
}

ml_processor_status_t ml_processor_charge (ml_processor_t *self, const char *key, const char *token,
                                           int64_t amount_minor, const char *currency,
                                           const char *merchant_account, const char *description,
                                           ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_CHARGE);
    description = description ? description : "";
    char masked[ML_PROCESSOR_DESCRIPTION_MAX + 1];
    snprintf (masked, sizeof masked, "%s", description);
    bool printable = true;
    for (const unsigned char *cursor = (const unsigned char *)description; *cursor; cursor++)
        if (*cursor < 0x20 || *cursor == 0x7f)
            printable = false;
    json_t *utf8 = json_string (description); //  NULL unless valid UTF-8
    if (!s_check_key (key, result))
        ;
    else if (!s_valid_id (token))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_token",
                      "a token is 1 to %d letters, digits, '-' or '_'", ML_PROCESSOR_ID_MAX);
    else if (!s_check_money (amount_minor, currency, result))
        ;
    else if (!s_valid_account (merchant_account))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_merchant_account",
                      "a merchant account id is 1 to %d letters, digits, '-', '_' or '.'",
                      ML_PROCESSOR_ACCOUNT_MAX);
    else if (strlen (description) > ML_PROCESSOR_DESCRIPTION_MAX || !printable || !utf8)
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_description",
                      "a description is up to %d bytes of UTF-8 text without control characters",
                      ML_PROCESSOR_DESCRIPTION_MAX);
    else if (ml_processor_mask_card_numbers (masked))
        //  It would reach the processor's records and statements: refuse, and do not echo it.
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_description",
                      "the description holds what looks like a card number");
    else if (self->kind == S_KIND_TEST)
        s_test_charge (self, key, token, amount_minor, currency, merchant_account, description,
                       result);
    else {
        s_request_t request = {
            ML_PROCESSOR_CHARGE, key,  "/v1/charges", NULL, 0, amount_minor, currency, NULL,
            merchant_account,    NULL, false};
        json_t *body = json_pack ("{s:s, s:I, s:s, s:s, s:O}", "token", token, "amount",
                                  (json_int_t)amount_minor, "currency", currency,
                                  "merchant_account", merchant_account, "description", utf8);
        s_http_post (self, &request, body, result);
    }
    json_decref (utf8);
    explicit_bzero (masked, sizeof masked);
    return s_finish (self, ML_PROCESSOR_CHARGE, key, result);
}

ml_processor_status_t ml_processor_refund (ml_processor_t *self, const char *key,
                                           const char *charge_txn, int64_t amount_minor,
                                           const char *currency, ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_REFUND);
    if (!s_check_key (key, result))
        ;
    else if (!s_valid_id (charge_txn))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_txn",
                      "a transaction id is 1 to %d letters, digits, '-' or '_'",
                      ML_PROCESSOR_ID_MAX);
    else if (!s_check_money (amount_minor, currency, result))
        ;
    else if (self->kind == S_KIND_TEST)
        s_test_refund (self, key, charge_txn, amount_minor, currency, result);
    else {
        s_request_t request = {
            ML_PROCESSOR_REFUND, key,  "/v1/refunds", NULL, 0, amount_minor, currency,
            charge_txn,          NULL, NULL,          false};
        json_t *body = json_pack ("{s:s, s:I, s:s}", "charge", charge_txn, "amount",
                                  (json_int_t)amount_minor, "currency", currency);
        s_http_post (self, &request, body, result);
    }
    return s_finish (self, ML_PROCESSOR_REFUND, key, result);
}

//  A void of charge_txn; amount_minor and currency (0 and NULL: not known) are the charge's,
//  which an approved answer that names an amount must echo.
static ml_processor_status_t s_void (ml_processor_t *self, const char *key, const char *charge_txn,
                                     int64_t amount_minor, const char *currency,
                                     ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_VOID);
    if (!s_check_key (key, result))
        ;
    else if (!s_valid_id (charge_txn))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_txn",
                      "a transaction id is 1 to %d letters, digits, '-' or '_'",
                      ML_PROCESSOR_ID_MAX);
    else if (self->kind == S_KIND_TEST)
        s_test_void (self, key, charge_txn, result);
    else {
        s_request_t request = {ML_PROCESSOR_VOID, key,        "/v1/voids", NULL, 0,    amount_minor,
                               currency,          charge_txn, NULL,        NULL, false};
        s_http_post (self, &request, json_pack ("{s:s}", "charge", charge_txn), result);
    }
    return s_finish (self, ML_PROCESSOR_VOID, key, result);
}

ml_processor_status_t ml_processor_void (ml_processor_t *self, const char *key,
                                         const char *charge_txn, ml_processor_result_t *result)
{
    return s_void (self, key, charge_txn, 0, NULL, result);
}

//  A lookup of key; expected (or NULL) is the call made with it, whose answer the lookup's
//  must match as an operation's own answer must: its kind, amount, currency, account and
//  charge, or it is not believed (UNKNOWN, asked again later).
static ml_processor_status_t s_lookup (ml_processor_t *self, const char *key,
                                       const ml_processor_call_t *expected,
                                       ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_NONE);
    if (!s_check_key (key, result))
        ;
    else if (self->kind == S_KIND_TEST)
        s_test_lookup (self, key, result);
    else {
        //  The key's characters are all safe in a URL path (s_valid_key).
        char path[200];
        snprintf (path, sizeof path, "/v1/operations/%s", key);
        s_request_t request = {
            ML_PROCESSOR_NONE, key, path, NULL, 0, 0, NULL, NULL, NULL, NULL, true};
        if (expected && expected->operation >= ML_PROCESSOR_CHARGE &&
            expected->operation <= ML_PROCESSOR_VOID) {
            request.operation = expected->operation;
            request.amount = expected->amount_minor;
            request.currency = expected->currency;
            if (expected->operation == ML_PROCESSOR_CHARGE)
                request.merchant_account = expected->merchant_account;
            else
                request.charge_txn = expected->charge_txn;
        }
        s_http_call (self, &request, result);
    }
    return s_finish (self, ML_PROCESSOR_NONE, key, result);
}

ml_processor_status_t ml_processor_lookup (ml_processor_t *self, const char *key,
                                           ml_processor_result_t *result)
{
    return s_lookup (self, key, NULL, result);
}

ml_processor_status_t ml_processor_token (ml_processor_t *self, const char *token,
                                          ml_processor_result_t *result)
{
    assert (self);
    s_result_init (result, ML_PROCESSOR_TOKENIZE);
    const char *key = "token-lookup"; //  for the log: a token is not logged
    if (!token || !s_valid_id (token))
        s_result_set (result, ML_PROCESSOR_ERROR, "invalid_token",
                      "a token is 1 to %d letters, digits, '-' or '_'", ML_PROCESSOR_ID_MAX);
    else if (self->kind == S_KIND_TEST) {
        int exp_month = 0, exp_year = 0;
        const s_card_t *card = s_token_card (token, &exp_month, &exp_year);
        if (!card)
            s_result_set (result, ML_PROCESSOR_ERROR, "invalid_token",
                          "no such token at the test processor");
        else {
            s_result_set (result, ML_PROCESSOR_APPROVED, "", "%s", "");
            snprintf (result->token, sizeof result->token, "%s", token);
            snprintf (result->brand, sizeof result->brand, "%s", card->brand);
            snprintf (result->last4, sizeof result->last4, "%s", s_last4 (card->number));
            result->exp_month = exp_month;
            result->exp_year = exp_year;
        }
    } else {
        //  The token's characters are all safe in a URL path (s_valid_id).
        char path[200];
        snprintf (path, sizeof path, "/v1/tokens/%s", token);
        s_request_t request = {
            ML_PROCESSOR_TOKENIZE, key, path, NULL, 0, 0, NULL, NULL, NULL, token, false};
        s_http_call (self, &request, result);
    }
    return s_finish (self, ML_PROCESSOR_TOKENIZE, key, result);
}

void ml_processor_call (ml_processor_t *self, ml_processor_call_t *call)
{
    assert (self && call);
    memset (&call->result, 0, sizeof call->result);
    if (call->lookup)
        call->status = s_lookup (self, call->key, call, &call->result);
    else if (call->token_lookup)
        call->status = ml_processor_token (self, call->token, &call->result);
    else if (call->operation == ML_PROCESSOR_TOKENIZE)
        call->status = ml_processor_tokenize (self, call->key, call->number, call->exp_month,
                                              call->exp_year, call->cvc, &call->result);
    else if (call->operation == ML_PROCESSOR_CHARGE)
        call->status = ml_processor_charge (
            self, call->key, call->token, call->amount_minor, call->currency,
            call->merchant_account, *call->description ? call->description : NULL, &call->result);
    else if (call->operation == ML_PROCESSOR_REFUND)
        call->status = ml_processor_refund (self, call->key, call->charge_txn, call->amount_minor,
                                            call->currency, &call->result);
    else if (call->operation == ML_PROCESSOR_VOID)
        call->status = s_void (self, call->key, call->charge_txn, call->amount_minor,
                               call->currency, &call->result);
    else {
        call->status = ML_PROCESSOR_ERROR;
        s_result_set (&call->result, ML_PROCESSOR_ERROR, "invalid_call", "no operation asked");
    }
    //  The card's only copies outside the processor are wiped once the call is made.
    explicit_bzero (call->number, sizeof call->number);
    explicit_bzero (call->cvc, sizeof call->cvc);
}

void ml_processor_actor (zsock_t *pipe, void *args)
{
    ml_processor_t *processor = (ml_processor_t *)args;
    ml_service_ready (pipe, processor != NULL);
    if (!processor)
        return;
    while (true) {
        char *command = NULL;
        void *pointer = NULL;
        if (zsock_recv (pipe, "sp", &command, &pointer) != 0 || !command)
            break; //  interrupted
        bool stop = streq (command, "$TERM");
        if (streq (command, "CALL") && pointer) {
            ml_processor_call (processor, (ml_processor_call_t *)pointer);
            zsock_send (pipe, "sp", "DONE", pointer);
        }
        zstr_free (&command);
        if (stop)
            break;
    }
}
