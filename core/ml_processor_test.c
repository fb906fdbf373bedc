/*  ml_processor's selftest (include/ml_processor.h): the built-in test processor and the
    HTTP processor against tests/processor_server.py, kept apart from the class: it is a
    third of it.
*/
#include "ml_processor_internal.h"
#include "ml_processor.h"
#include "ml_log.h"
#include "ml_money.h"
#include "ml_selftest_support.h"
#include "ml_service.h"
#include "ml_text.h"
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

//  Fails with the line, the outcome and the expectation on stdout (stderr is captured).
static void s_expect (int line, ml_processor_status_t got, const ml_processor_result_t *result,
                      ml_processor_status_t wanted, const char *reason)
{
    if (got != wanted || result->status != got || !streq (result->reason, reason)) {
        printf ("\nml_processor_test line %d: got %s '%s' (%s), wanted %s '%s'\n", line,
                ml_processor_status_name (got), result->reason, result->message,
                ml_processor_status_name (wanted), reason);
        fflush (stdout);
        assert (false);
    }
    char message[sizeof result->message];
    snprintf (message, sizeof message, "%s", result->message);
    assert (!ml_processor_mask_card_numbers (message));
}

#define S_EXPECT(call, wanted, reason) s_expect (__LINE__, (call), &r, (wanted), (reason))

static const char *s_id (const char *prefix, const char *key, char *id, size_t size)
{
    ml_processor_derive_id (prefix, key, id, size);
    return id;
}

typedef struct {
    char data[4096];
    size_t size;
} s_sink_t;

static size_t s_sink_write (char *data, size_t size, size_t count, void *argument)
{
    s_sink_t *sink = (s_sink_t *)argument;
    size_t bytes = size * count;
    size_t room = sizeof sink->data - 1 - sink->size;
    memcpy (sink->data + sink->size, data, bytes < room ? bytes : room);
    sink->size += bytes < room ? bytes : room;
    sink->data[sink->size] = 0;
    return bytes;
}

//  A request straight to the test server (its /_test/ control, or what our client never
//  sends). Returns the HTTP status; the answer's body goes into sink.
static long s_server_request (int port, const char *method, const char *path, const char *body,
                              const char *api_key, s_sink_t *sink)
{
    char url[200], authorization[200];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    snprintf (authorization, sizeof authorization, "Authorization: Bearer %s", api_key);
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    headers = curl_slist_append (headers, "Idempotency-Key: raw-request");
    headers = curl_slist_append (headers, authorization);
    CURL *curl = curl_easy_init ();
    assert (curl);
    sink->size = 0;
    sink->data[0] = 0;
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_sink_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, sink);
    if (streq (method, "POST"))
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body ? body : "{}");
    long http = 0;
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup (curl);
    curl_slist_free_all (headers);
    return http;
}

static void s_control (int port, const char *switches)
{
    s_sink_t sink;
    assert (s_server_request (port, "POST", "/_test/control", switches, "", &sink) == 200);
}

static int64_t s_stat (int port, const char *name)
{
    s_sink_t sink;
    assert (s_server_request (port, "GET", "/_test/stats", NULL, "", &sink) == 200);
    json_t *root = json_loads (sink.data, 0, NULL);
    assert (json_is_integer (json_object_get (root, name)));
    int64_t value = (int64_t)json_integer_value (json_object_get (root, name));
    json_decref (root);
    return value;
}

static int s_settle_test (void *argument)
{
    return ml_processor_settle ((ml_processor_t *)argument);
}

static int s_settle_http (void *argument)
{
    s_sink_t sink;
    assert (s_server_request (*(int *)argument, "POST", "/_test/settle", "{}", "", &sink) == 200);
    json_t *root = json_loads (sink.data, 0, NULL);
    int settled = (int)json_integer_value (json_object_get (root, "settled"));
    json_decref (root);
    return settled;
}

//  Start tests/processor_server.py with its stderr in log_path; returns its pid and port.
static pid_t s_server_start (const char *key_file, const char *log_path, int *port)
{
    char script[600];
    snprintf (script, sizeof script, "%s/tests/processor_server.py", ML_SOURCE_DIR);
    //  Three late answers per key for the timeout cards: one call and its two retries.
    const char *argv[] = {"python3",
                          script,
                          "--api-key-file",
                          key_file,
                          "--timeout-card-attempts",
                          "3",
                          "--timeout-card-delay-ms",
                          "1000",
                          NULL};
    return ml_selftest_server (argv, log_path, port);
}

//  Write a configuration with a processor section and load its settings.
static int s_load (const char *directory, const char *section, ml_processor_settings_t *settings,
                   char *error, size_t error_size)
{
    char path[200];
    snprintf (path, sizeof path, "%s/processor.cfg", directory);
    ml_selftest_write (path, section, 0600);
    ml_config_t *config = ml_config_load (path, error, error_size);
    assert (config);
    int rc = ml_processor_settings_load (settings, config, error, error_size);
    ml_config_destroy (&config);
    return rc;
}

//  Every test card and operation, run alike against both kinds: they must answer alike, with
//  the same ids.
static void s_scenario (ml_processor_t *p, int (*settle) (void *), void *settle_argument)
{
    ml_processor_result_t r;
    char id[64];
    struct {
        const char *key, *number, *cvc, *brand, *last4;
    } cards[] = {
        {"tok-visa", "4242 4242 4242 4242", "123", "visa", "4242"},
        {"tok-mastercard", "5555-5555-5555-4444", "123", "mastercard", "4444"},
        {"tok-amex", "378282246310005", "1234", "amex", "0005"},
        {"tok-discover", "6011111111111117", "123", "discover", "1117"},
        {"tok-declined", "4000000000000002", "123", "visa", "0002"},
        {"tok-funds", "4000000000009995", "123", "visa", "9995"},
        {"tok-expired", "4000000000000069", "123", "visa", "0069"},
        {"tok-late", "4000000000003006", "123", "visa", "3006"},
        {"tok-lost", "4000000000004004", "123", "visa", "4004"},
    };
    char tokens[9][ML_PROCESSOR_ID_MAX + 1];
    for (size_t index = 0; index < 9; index++) {
        S_EXPECT (ml_processor_tokenize (p, cards[index].key, cards[index].number, 12, 2099,
                                         cards[index].cvc, &r),
                  ML_PROCESSOR_APPROVED, "");
        char expected[200];
        s_id ("x", cards[index].key, id, sizeof id);
        snprintf (expected, sizeof expected, "tok_%s_%s_122099_%.8s_%s", cards[index].brand,
                  cards[index].last4, id + 2, id + 10);
        assert (streq (r.token, expected));
        assert (streq (r.brand, cards[index].brand) && streq (r.last4, cards[index].last4));
        assert (r.exp_month == 12 && r.exp_year == 2099);
        assert (r.operation == ML_PROCESSOR_TOKENIZE);
        snprintf (tokens[index], sizeof tokens[index], "%s", r.token);
    }
    //  A token tells its card, as the processor knows it (the core's check of a token made
    //  in a payer's browser); an unknown or malformed token is refused.
    S_EXPECT (ml_processor_token (p, tokens[1], &r), ML_PROCESSOR_APPROVED, "");
    assert (streq (r.token, tokens[1]) && streq (r.brand, "mastercard") &&
            streq (r.last4, "4444") && r.exp_month == 12 && r.exp_year == 2099);
    S_EXPECT (ml_processor_token (p, "tok_visa_9999_122099_0123456789abcdef", &r),
              ML_PROCESSOR_ERROR, "invalid_token");
    S_EXPECT (ml_processor_token (p, "tok_visa_4242_122099_01234567_89abcde", &r),
              ML_PROCESSOR_ERROR, "invalid_token");
    //  A token made before the hash was split (one group of 16) names its card still.
    S_EXPECT (ml_processor_token (p, "tok_visa_4242_122099_0123456789abcdef", &r),
              ML_PROCESSOR_APPROVED, "");
    //  No token looks like a card number, which method-add refuses to save: this key's hash
    //  is 9a0296876315080d, whose 13 digits in a row pass the card check.
    S_EXPECT (ml_processor_tokenize (p, "save-10180", "4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.token, "tok_visa_4242_122099_9a029687_6315080d"));
    assert (!ml_text_has_card_number (r.token));
    S_EXPECT (ml_processor_token (p, "tok_visa_4242_122099_9a029687_6315080d", &r),
              ML_PROCESSOR_APPROVED, "");
    S_EXPECT (ml_processor_token (p, "tok bad", &r), ML_PROCESSOR_ERROR, "invalid_token");
    //  The same key: the same token. The same key for another card: refused.
    S_EXPECT (ml_processor_tokenize (p, "tok-visa", "4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.token, tokens[0]));
    S_EXPECT (ml_processor_tokenize (p, "tok-visa", "5555555555554444", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "idempotency_key_reused");
    assert (streq (r.message, "idempotency key reused with other parameters"));
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242424242424241", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_number");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242", 12, 2099, "123", &r), ML_PROCESSOR_ERROR,
              "invalid_number");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242x4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_number");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", NULL, 12, 2099, "123", &r), ML_PROCESSOR_ERROR,
              "invalid_number");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4111111111111111", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "not_a_test_card");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242424242424242", 12, 2099, "12", &r),
              ML_PROCESSOR_ERROR, "invalid_cvc");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242424242424242", 12, 2099, "1234", &r),
              ML_PROCESSOR_ERROR, "invalid_cvc");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "378282246310005", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_cvc");
    S_EXPECT (ml_processor_tokenize (p, "tok-bad", "4242424242424242", 13, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_expiry");
    S_EXPECT (ml_processor_tokenize (p, "tok bad", "4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_key");
    S_EXPECT (ml_processor_tokenize (p, "..", "4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_ERROR, "invalid_key");
    S_EXPECT (ml_processor_tokenize (p, "tok-old", "4242424242424242", 1, 2001, "123", &r),
              ML_PROCESSOR_DECLINED, "expired_card");
    assert (streq (r.last4, "4242") && !r.token[0]);
    //  An ERROR leaves its key unused.
    S_EXPECT (ml_processor_lookup (p, "tok-bad", &r), ML_PROCESSOR_NOT_FOUND, "not_found");

    //  Charges: one per behaviour.
    char pay1[ML_PROCESSOR_ID_MAX + 1];
    S_EXPECT (ml_processor_charge (p, "pay-1-charge", tokens[0], 12345, "USD", "OP-001",
                                   "Invoice 1001", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("ch", "pay-1-charge", id, sizeof id)));
    assert (r.amount_minor == 12345 && streq (r.currency, "USD"));
    assert (streq (r.merchant_account, "OP-001") && r.operation == ML_PROCESSOR_CHARGE);
    snprintf (pay1, sizeof pay1, "%s", r.txn);
    S_EXPECT (ml_processor_charge (p, "pay-1-charge", tokens[0], 12345, "USD", "OP-001",
                                   "Invoice 1001", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, pay1));
    S_EXPECT (ml_processor_charge (p, "pay-1-charge", tokens[0], 12346, "USD", "OP-001",
                                   "Invoice 1001", &r),
              ML_PROCESSOR_ERROR, "idempotency_key_reused");
    for (size_t index = 1; index < 4; index++) {
        char key[64];
        snprintf (key, sizeof key, "pay-card-%zu", index);
        S_EXPECT (ml_processor_charge (p, key, tokens[index], 100, "USD", "OP-001", NULL, &r),
                  ML_PROCESSOR_APPROVED, "");
    }
    S_EXPECT (ml_processor_charge (p, "pay-declined", tokens[4], 100, "USD", "OP-001", "", &r),
              ML_PROCESSOR_DECLINED, "card_declined");
    assert (streq (r.txn, s_id ("ch", "pay-declined", id, sizeof id)));
    S_EXPECT (ml_processor_charge (p, "pay-funds", tokens[5], 100, "USD", "OP-001", "", &r),
              ML_PROCESSOR_DECLINED, "insufficient_funds");
    S_EXPECT (ml_processor_charge (p, "pay-expired", tokens[6], 100, "USD", "OP-001", "", &r),
              ML_PROCESSOR_DECLINED, "expired_card");
    //  The charge is made but its answer is lost: UNKNOWN, then found by a lookup.
    S_EXPECT (ml_processor_charge (p, "pay-late", tokens[7], 5000, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "timeout");
    assert (!r.txn[0]);
    S_EXPECT (ml_processor_lookup (p, "pay-late", &r), ML_PROCESSOR_APPROVED, "");
    assert (r.operation == ML_PROCESSOR_CHARGE && r.amount_minor == 5000);
    assert (streq (r.txn, s_id ("ch", "pay-late", id, sizeof id)));
    S_EXPECT (ml_processor_charge (p, "pay-late", tokens[7], 5000, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, id));
    //  The request is lost on its way: UNKNOWN, the lookup finds nothing, the same call again
    //  does it.
    S_EXPECT (ml_processor_charge (p, "pay-lost", tokens[8], 5000, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "timeout");
    S_EXPECT (ml_processor_lookup (p, "pay-lost", &r), ML_PROCESSOR_NOT_FOUND, "not_found");
    S_EXPECT (ml_processor_charge (p, "pay-lost", tokens[8], 5000, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    //  Refused before or by the processor.
    S_EXPECT (ml_processor_charge (p, "pay-bad", "tok nope", 100, "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_token");
    S_EXPECT (ml_processor_charge (p, "pay-bad", "tok_visa_9999_122099_0123456789abcdef", 100,
                                   "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_token");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 0, "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_amount");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], -5, "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_amount");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], ML_PROCESSOR_AMOUNT_MAX + 1, "USD",
                                   "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_amount");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "usd", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_currency");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "USD", "OP 001", "", &r),
              ML_PROCESSOR_ERROR, "invalid_merchant_account");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "USD", "OP-001",
                                   "card 4242 4242 4242 4242", &r),
              ML_PROCESSOR_ERROR, "invalid_description");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "USD", "OP-001", "two\nlines", &r),
              ML_PROCESSOR_ERROR, "invalid_description");
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "USD", "OP-001", "\xff\xfe", &r),
              ML_PROCESSOR_ERROR, "invalid_description");
    char long_text[ML_PROCESSOR_DESCRIPTION_MAX + 2];
    memset (long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    S_EXPECT (ml_processor_charge (p, "pay-bad", tokens[0], 100, "USD", "OP-001", long_text, &r),
              ML_PROCESSOR_ERROR, "invalid_description");
    //  UTF-8 descriptions are fine.
    S_EXPECT (ml_processor_charge (p, "pay-utf8", tokens[0], 100, "EUR", "OP-001",
                                   "Honoraires \xc3\xa9t\xc3\xa9 2024", &r),
              ML_PROCESSOR_APPROVED, "");

    //  Refunds: never more than what is left of the charge.
    char pay2[ML_PROCESSOR_ID_MAX + 1], refund1[ML_PROCESSOR_ID_MAX + 1];
    S_EXPECT (ml_processor_charge (p, "pay-2-charge", tokens[0], 10000, "USD", "TRUST-001",
                                   "Retainer", &r),
              ML_PROCESSOR_APPROVED, "");
    snprintf (pay2, sizeof pay2, "%s", r.txn);
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-1", pay2, 4000, "USD", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("re", "pay-2-refund-1", id, sizeof id)));
    assert (streq (r.charge_txn, pay2) && streq (r.merchant_account, "TRUST-001"));
    assert (r.amount_minor == 4000 && streq (r.currency, "USD"));
    snprintf (refund1, sizeof refund1, "%s", r.txn);
    //  Asked twice, refunded once: the 6000 left are still there below.
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-1", pay2, 4000, "USD", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, refund1));
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-2", pay2, 7000, "USD", &r), ML_PROCESSOR_ERROR,
              "amount_exceeds_refundable");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-2", pay2, 6000, "EUR", &r), ML_PROCESSOR_ERROR,
              "currency_mismatch");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-2", pay2, 6000, "USD", &r),
              ML_PROCESSOR_APPROVED, "");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-3", pay2, 1, "USD", &r), ML_PROCESSOR_ERROR,
              "amount_exceeds_refundable");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-3", s_id ("ch", "pay-declined", id, sizeof id),
                                   1, "USD", &r),
              ML_PROCESSOR_ERROR, "charge_not_approved");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-3", "ch_00000000deadbeef", 1, "USD", &r),
              ML_PROCESSOR_ERROR, "no_such_charge");
    S_EXPECT (ml_processor_refund (p, "pay-2-refund-3", "ch 1", 1, "USD", &r), ML_PROCESSOR_ERROR,
              "invalid_txn");
    S_EXPECT (ml_processor_refund (p, "pay-1-charge", pay1, 1, "USD", &r), ML_PROCESSOR_ERROR,
              "idempotency_key_reused");
    S_EXPECT (ml_processor_void (p, "pay-2-void", pay2, &r), ML_PROCESSOR_ERROR, "charge_refunded");

    //  Voids: the whole charge, before it settles.
    char pay3[ML_PROCESSOR_ID_MAX + 1];
    S_EXPECT (ml_processor_charge (p, "pay-3-charge", tokens[1], 2500, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    snprintf (pay3, sizeof pay3, "%s", r.txn);
    S_EXPECT (ml_processor_void (p, "pay-3-void", pay3, &r), ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("vo", "pay-3-void", id, sizeof id)) && streq (r.charge_txn, pay3));
    assert (r.amount_minor == 2500 && streq (r.currency, "USD"));
    S_EXPECT (ml_processor_void (p, "pay-3-void", pay3, &r), ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, id));
    S_EXPECT (ml_processor_void (p, "pay-3-void-2", pay3, &r), ML_PROCESSOR_ERROR, "charge_voided");
    S_EXPECT (ml_processor_refund (p, "pay-3-refund", pay3, 100, "USD", &r), ML_PROCESSOR_ERROR,
              "charge_voided");
    char pay4[ML_PROCESSOR_ID_MAX + 1];
    S_EXPECT (ml_processor_charge (p, "pay-4-charge", tokens[2], 3000, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    snprintf (pay4, sizeof pay4, "%s", r.txn);
    assert (settle (settle_argument) >= 1);
    S_EXPECT (ml_processor_void (p, "pay-4-void", pay4, &r), ML_PROCESSOR_ERROR, "charge_settled");
    S_EXPECT (ml_processor_refund (p, "pay-4-refund", pay4, 3000, "USD", &r), ML_PROCESSOR_APPROVED,
              "");

    //  Lookups give back the original result, whatever the operation.
    S_EXPECT (ml_processor_lookup (p, "pay-1-charge", &r), ML_PROCESSOR_APPROVED, "");
    assert (r.operation == ML_PROCESSOR_CHARGE && streq (r.txn, pay1));
    assert (r.amount_minor == 12345 && streq (r.currency, "USD"));
    assert (streq (r.merchant_account, "OP-001"));
    S_EXPECT (ml_processor_lookup (p, "pay-declined", &r), ML_PROCESSOR_DECLINED, "card_declined");
    assert (r.operation == ML_PROCESSOR_CHARGE);
    S_EXPECT (ml_processor_lookup (p, "pay-2-refund-1", &r), ML_PROCESSOR_APPROVED, "");
    assert (r.operation == ML_PROCESSOR_REFUND && streq (r.txn, refund1));
    assert (streq (r.charge_txn, pay2) && r.amount_minor == 4000);
    S_EXPECT (ml_processor_lookup (p, "pay-3-void", &r), ML_PROCESSOR_APPROVED, "");
    assert (r.operation == ML_PROCESSOR_VOID && streq (r.charge_txn, pay3));
    S_EXPECT (ml_processor_lookup (p, "tok-visa", &r), ML_PROCESSOR_APPROVED, "");
    assert (r.operation == ML_PROCESSOR_TOKENIZE && streq (r.token, tokens[0]));
    assert (streq (r.last4, "4242"));
    S_EXPECT (ml_processor_lookup (p, "tok-old", &r), ML_PROCESSOR_DECLINED, "expired_card");
    S_EXPECT (ml_processor_lookup (p, "pay-2-refund-3", &r), ML_PROCESSOR_NOT_FOUND, "not_found");
    S_EXPECT (ml_processor_lookup (p, "never-used", &r), ML_PROCESSOR_NOT_FOUND, "not_found");
    S_EXPECT (ml_processor_lookup (p, "no such key", &r), ML_PROCESSOR_ERROR, "invalid_key");
}

//  Misbehaviours only a real network has, against the server (whose port is port).
static void s_misbehaviours (ml_processor_t *p, ml_processor_settings_t *settings, int port)
{
    ml_processor_result_t r;
    char id[64], error[600], token[ML_PROCESSOR_ID_MAX + 1];
    S_EXPECT (ml_processor_tokenize (p, "h-token", "4242424242424242", 12, 2099, "123", &r),
              ML_PROCESSOR_APPROVED, "");
    snprintf (token, sizeof token, "%s", r.token);
    int64_t charges = s_stat (port, "charges");
    int64_t requests = s_stat (port, "requests");
    //  500 twice: retried with the same key, charged once.
    s_control (port, "{\"fail_500\": 2}");
    S_EXPECT (ml_processor_charge (p, "h-500", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("ch", "h-500", id, sizeof id)));
    assert (s_stat (port, "charges") == charges + 1);
    assert (s_stat (port, "requests") == requests + 3);
    //  Done, then the connection dropped, twice (libcurl itself retries once on a reused
    //  connection that died): our retry gets the stored answer.
    s_control (port, "{\"drop\": 2}");
    S_EXPECT (ml_processor_charge (p, "h-drop", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (s_stat (port, "charges") == charges + 2);
    //  Garbage once: retried. Garbage every time: UNKNOWN, and the lookup resolves it.
    s_control (port, "{\"garbage\": 1}");
    S_EXPECT (ml_processor_charge (p, "h-garbage-1", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    s_control (port, "{\"garbage\": 3}");
    S_EXPECT (ml_processor_charge (p, "h-garbage-3", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "bad_response");
    S_EXPECT (ml_processor_lookup (p, "h-garbage-3", &r), ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("ch", "h-garbage-3", id, sizeof id)));
    s_control (port, "{\"oversize\": 3}");
    S_EXPECT (ml_processor_charge (p, "h-big", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "bad_response");
    S_EXPECT (ml_processor_lookup (p, "h-big", &r), ML_PROCESSOR_APPROVED, "");
    s_control (port, "{\"garbage\": 3}");
    S_EXPECT (ml_processor_lookup (p, "h-big", &r), ML_PROCESSOR_UNKNOWN, "bad_response");
    //  The work done, then an answer that contradicts itself: HTTP 402 with a body saying
    //  approved (processor_server.py's lie 9). Not a decline: UNKNOWN, and the lookup settles.
    s_control (port, "{\"lie\": 3, \"lie_kind\": 9}");
    S_EXPECT (ml_processor_charge (p, "h-contradicts", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "bad_response");
    //  A lookup is held to the operation it asks about: HTTP 200 only, the same amount.
    ml_processor_call_t asked = {0};
    snprintf (asked.key, sizeof asked.key, "h-contradicts");
    asked.lookup = true;
    asked.operation = ML_PROCESSOR_CHARGE;
    asked.amount_minor = 700;
    snprintf (asked.currency, sizeof asked.currency, "USD");
    snprintf (asked.merchant_account, sizeof asked.merchant_account, "OP-001");
    for (int kind = 0; kind <= 9; kind += 9) {
        char lie[64];
        snprintf (lie, sizeof lie, "{\"lie\": 3, \"lie_kind\": %d}", kind);
        s_control (port, lie);
        ml_processor_call (p, &asked);
        //  (A lookup answered 402 is a refusal of the lookup, ERROR: neither settles it.)
        assert (asked.status == (kind == 9 ? ML_PROCESSOR_ERROR : ML_PROCESSOR_UNKNOWN));
    }
    s_control (port, "{\"lie_kind\": -1}");
    ml_processor_call (p, &asked);
    assert (asked.status == ML_PROCESSOR_APPROVED && asked.result.amount_minor == 700);
    //  Every answer too late: UNKNOWN after the retries; the charge was made once, and the
    //  lookup finds it.
    s_control (port, "{\"delay_ms\": 1000, \"delay_count\": 3}");
    S_EXPECT (ml_processor_charge (p, "h-slow", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "timeout");
    S_EXPECT (ml_processor_lookup (p, "h-slow", &r), ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, s_id ("ch", "h-slow", id, sizeof id)) && r.amount_minor == 700);
    assert (s_stat (port, "charges") == charges + 7);
    //  Without retries a 500 is UNKNOWN; the lookup says it did not happen; calling again
    //  with the same key does it.
    settings->retries = 0;
    ml_processor_t *once = ml_processor_new (settings, error, sizeof error);
    assert (once);
    s_control (port, "{\"fail_500\": 1}");
    S_EXPECT (ml_processor_charge (once, "h-once", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_UNKNOWN, "server_error");
    S_EXPECT (ml_processor_lookup (once, "h-once", &r), ML_PROCESSOR_NOT_FOUND, "not_found");
    S_EXPECT (ml_processor_charge (once, "h-once", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_APPROVED, "");
    ml_processor_destroy (&once);
    //  A key the processor refuses.
    snprintf (settings->api_key, sizeof settings->api_key, "sk_test_wrong_Hq3pLx7");
    ml_processor_t *stranger = ml_processor_new (settings, error, sizeof error);
    assert (stranger);
    S_EXPECT (ml_processor_charge (stranger, "h-stranger", token, 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "unauthorized");
    ml_processor_destroy (&stranger);
    ml_processor_settings_wipe (settings);
}

void ml_processor_test (bool verbose)
{
    printf (" * ml_processor: ");
    fflush (stdout);
    char directory[128], path[200], key_file[200], log_path[200], server_log[200], error[600];
    assert (ml_selftest_tmpdir (directory, sizeof directory) == 0);
    snprintf (key_file, sizeof key_file, "%s/api.key", directory);
    snprintf (log_path, sizeof log_path, "%s/ml_log.txt", directory);
    snprintf (server_log, sizeof server_log, "%s/server.txt", directory);
    const char *api_key = "sk_test_selftest_Zq8vR2mN";
    char key_text[64];
    snprintf (key_text, sizeof key_text, "%s\n", api_key);
    ml_selftest_write (key_file, key_text, 0600);

    //  Every log line of this test goes to a file, at debug level, to be searched for card
    //  numbers and keys at the end (a failed assertion's message lands there too).
    ml_log_level_t saved_level = ml_log_level ();
    ml_log_setup (NULL, ML_LOG_DEBUG);
    int saved_stderr = ml_selftest_stderr_to (log_path);
    assert (curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK);

    //  The worker: calls made on its thread, answered with the same struct, the card wiped.
    {
        ml_processor_settings_t test_settings;
        ml_processor_settings_defaults (&test_settings);
        ml_processor_t *test_processor = ml_processor_new (&test_settings, error, sizeof error);
        assert (test_processor);
        zactor_t *worker = ml_service_start (ml_processor_actor, test_processor);
        assert (worker);
        ml_processor_call_t calls[2];
        memset (calls, 0, sizeof calls);
        calls[0].operation = ML_PROCESSOR_TOKENIZE;
        strcpy (calls[0].key, "w-token");
        strcpy (calls[0].number, "4242424242424242");
        strcpy (calls[0].cvc, "123");
        calls[0].exp_month = 4;
        calls[0].exp_year = 2031;
        zsock_send (worker, "sp", "CALL", &calls[0]);
        char *command = NULL;
        void *answered = NULL;
        assert (zsock_recv (worker, "sp", &command, &answered) == 0);
        assert (streq (command, "DONE") && answered == &calls[0]);
        zstr_free (&command);
        assert (calls[0].status == ML_PROCESSOR_APPROVED && *calls[0].result.token);
        assert (!*calls[0].number && !*calls[0].cvc);
        calls[1].operation = ML_PROCESSOR_CHARGE;
        strcpy (calls[1].key, "w-charge");
        strcpy (calls[1].token, calls[0].result.token);
        calls[1].amount_minor = 1234;
        strcpy (calls[1].currency, "USD");
        strcpy (calls[1].merchant_account, "acct_w");
        zsock_send (worker, "sp", "CALL", &calls[1]);
        assert (zsock_recv (worker, "sp", &command, &answered) == 0 && answered == &calls[1]);
        zstr_free (&command);
        assert (calls[1].status == ML_PROCESSOR_APPROVED && *calls[1].result.txn);
        calls[1].lookup = true;
        zsock_send (worker, "sp", "CALL", &calls[1]);
        assert (zsock_recv (worker, "sp", &command, &answered) == 0);
        zstr_free (&command);
        assert (calls[1].status == ML_PROCESSOR_APPROVED &&
                calls[1].result.operation == ML_PROCESSOR_CHARGE);
        zactor_destroy (&worker);
        ml_processor_destroy (&test_processor);
    }

    //  Settings from a configuration file.
    ml_processor_settings_t settings;
    char section[600];
    snprintf (section, sizeof section,
              "processor\n    kind = http\n    endpoint = \"http://127.0.0.1:9/\"\n"
              "    api_key_file = \"%s\"\n    connect_timeout_ms = 500\n    timeout_ms = 2000\n"
              "    retries = 1\n",
              key_file);
    assert (s_load (directory, section, &settings, error, sizeof error) == 0);
    assert (streq (settings.kind, "http") && streq (settings.api_key, api_key));
    assert (settings.timeout_ms == 2000 && settings.retries == 1);
    assert (settings.connect_timeout_ms == 500 && settings.retry_backoff_ms == 250);
    ml_processor_settings_wipe (&settings);
    assert (!settings.api_key[0]);
    snprintf (path, sizeof path, "%s/processor.cfg", directory);
    ml_config_t *config = ml_config_load (path, error, sizeof error);
    ml_processor_t *loaded = ml_processor_load (config, error, sizeof error);
    assert (loaded && streq (ml_processor_kind (loaded), "http"));
    assert (ml_processor_settle (loaded) == -1);
    ml_processor_destroy (&loaded);
    ml_processor_destroy (&loaded);
    ml_config_destroy (&config);
    //  No section: the test processor.
    assert (s_load (directory, "core\n    x = 1\n", &settings, error, sizeof error) == 0);
    assert (streq (settings.kind, "test") && settings.retries == 2);
    struct {
        const char *section, *problem;
    } bad[] = {
        {"processor\n    kind = paypal\n", "not one of test, http"},
        {"processor\n    kind = http\n    api_key_file = /x\n", "processor/endpoint is required"},
        {"processor\n    kind = http\n    endpoint = \"https://p.example\"\n",
         "processor/api_key_file is required"},
        {"processor\n    retries = 99\n", "processor/retries must be a whole number"},
        {"processor\n    kind = http\n    endpoint = \"http://p.example/api\"\n"
         "    api_key_file = /x\n",
         "loopback"},
        {"processor\n    kind = http\n    endpoint = \"https://me:pw@p.example\"\n"
         "    api_key_file = /x\n",
         "user name or password"},
        {"processor\n    kind = http\n    endpoint = \"ftp://p.example\"\n    api_key_file = /x\n",
         "https:// URL"},
        {"processor\n    kind = http\n    endpoint = \"https://p.example\"\n"
         "    connect_timeout_ms = 5000\n    timeout_ms = 1000\n    api_key_file = /x\n",
         "at least processor/connect_timeout_ms"},
        {"processor\n    kind = http\n    endpoint = \"https://p.example\"\n"
         "    api_key_file = /nonexistent/key\n",
         "cannot open"},
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        assert (s_load (directory, bad[index].section, &settings, error, sizeof error) == -1);
        if (!strstr (error, bad[index].problem)) {
            printf ("\nml_processor_test: '%s' does not say '%s'\n", error, bad[index].problem);
            fflush (stdout);
            assert (false);
        }
    }
    //  The key file: readable by its owner only, one line; its content never in a message.
    snprintf (section, sizeof section,
              "processor\n    kind = http\n    endpoint = \"https://p.example\"\n"
              "    api_key_file = \"%s\"\n",
              key_file);
    ml_selftest_write (key_file, key_text, 0644);
    assert (s_load (directory, section, &settings, error, sizeof error) == -1);
    assert (strstr (error, "chmod 600") && !strstr (error, api_key));
    ml_selftest_write (key_file, "sk_test two words\n", 0600);
    assert (s_load (directory, section, &settings, error, sizeof error) == -1);
    assert (strstr (error, "one line") && !strstr (error, "two words"));
    ml_selftest_write (key_file, "\n", 0600);
    assert (s_load (directory, section, &settings, error, sizeof error) == -1);
    assert (strstr (error, "is empty"));
    ml_selftest_write (key_file, key_text, 0600);
    assert (s_load (directory, section, &settings, error, sizeof error) == 0);
    ml_processor_settings_wipe (&settings);

    //  The test processor.
    ml_processor_settings_defaults (&settings);
    ml_processor_t *processor = ml_processor_new (&settings, error, sizeof error);
    assert (processor && streq (ml_processor_kind (processor), "test"));
    s_scenario (processor, s_settle_test, processor);
    //  A "restart": a new test processor knows nothing, yet tokens still work and the same
    //  key gives the same transaction id.
    ml_processor_result_t r, before;
    s_expect (__LINE__, ml_processor_lookup (processor, "pay-1-charge", &before), &before,
              ML_PROCESSOR_APPROVED, "");
    ml_processor_destroy (&processor);
    ml_processor_destroy (&processor);
    processor = ml_processor_new (&settings, error, sizeof error);
    S_EXPECT (ml_processor_lookup (processor, "pay-1-charge", &r), ML_PROCESSOR_NOT_FOUND,
              "not_found");
    //  A token as the test processor made them before its hash was split in two groups.
    char token[ML_PROCESSOR_ID_MAX + 1], hash[64];
    ml_processor_derive_id ("x", "tok-visa", hash, sizeof hash);
    snprintf (token, sizeof token, "tok_visa_4242_122099_%s", hash + 2);
    S_EXPECT (ml_processor_charge (processor, "pay-1-charge", token, 12345, "USD", "OP-001",
                                   "Invoice 1001", &r),
              ML_PROCESSOR_APPROVED, "");
    assert (streq (r.txn, before.txn));
    ml_processor_destroy (&processor);
    settings.kind[0] = 0;
    assert (ml_processor_new (&settings, error, sizeof error) == NULL);

    //  The HTTP client, against tests/processor_server.py.
    int port = 0;
    pid_t server = s_server_start (key_file, server_log, &port);
    assert (port > 0);
    ml_processor_settings_defaults (&settings);
    snprintf (settings.kind, sizeof settings.kind, "http");
    snprintf (settings.endpoint, sizeof settings.endpoint, "http://127.0.0.1:%d", port);
    snprintf (settings.api_key, sizeof settings.api_key, "%s", api_key);
    settings.connect_timeout_ms = 1000;
    settings.timeout_ms = 400;
    settings.retries = 2;
    settings.retry_backoff_ms = 50;
    processor = ml_processor_new (&settings, error, sizeof error);
    assert (processor && streq (ml_processor_kind (processor), "http"));
    s_scenario (processor, s_settle_http, &port);
    s_misbehaviours (processor, &settings, port);
    //  The server checks what our client never sends.
    s_sink_t sink;
    assert (s_server_request (port, "POST", "/v1/tokens",
                              "{\"number\":\"4242424242424241\",\"exp_month\":12,"
                              "\"exp_year\":2099,\"cvc\":\"123\"}",
                              api_key, &sink) == 400);
    assert (strstr (sink.data, "invalid_number"));
    assert (s_server_request (port, "POST", "/v1/charges",
                              "{\"token\":\"tok_x\",\"amount\":12.5,\"currency\":\"USD\","
                              "\"merchant_account\":\"OP-001\"}",
                              api_key, &sink) == 400);
    assert (strstr (sink.data, "invalid_amount"));
    //  No server: nothing was sent, so the charge did not happen (ERROR); a lookup cannot
    //  tell anything (UNKNOWN).
    kill (server, SIGTERM);
    int status;
    assert (waitpid (server, &status, 0) == server);
    S_EXPECT (ml_processor_charge (processor, "h-down", "tok_x", 700, "USD", "OP-001", "", &r),
              ML_PROCESSOR_ERROR, "processor_unreachable");
    S_EXPECT (ml_processor_lookup (processor, "h-down", &r), ML_PROCESSOR_UNKNOWN,
              "processor_unreachable");
    ml_processor_destroy (&processor);
    ml_processor_settings_wipe (&settings);
    curl_global_cleanup ();

    //  Back to stderr; then search what was logged, ours and the server's.
    ml_selftest_stderr_back (saved_stderr);
    ml_log_setup (NULL, saved_level);
    char *logged = ml_selftest_read (log_path);
    char *server_logged = ml_selftest_read (server_log);
    if (verbose)
        printf ("\n%s%s", logged, server_logged);
    assert (strstr (logged, "processor test: charge key=pay-1-charge: approved txn=ch_"));
    assert (strstr (logged, "processor http: charge key=h-500: approved"));
    assert (strstr (logged, "retrying with the same key"));
    assert (strstr (logged, "the outcome of charge key=h-slow is unknown"));
    assert (strstr (server_logged, "POST /v1/tokens"));
    const char *secrets[] = {api_key,
                             "sk_test_wrong_Hq3pLx7",
                             "4242 4242 4242 4242",
                             "5555-5555-5555-4444",
                             "4242424242424241",
                             "4111111111111111"};
    for (size_t index = 0; index < sizeof secrets / sizeof secrets[0]; index++)
        assert (!strstr (logged, secrets[index]) && !strstr (server_logged, secrets[index]));
    const char *number;
    for (size_t card = 0; (number = ml_processor_test_card (card)); card++)
        assert (!strstr (logged, number) && !strstr (server_logged, number));
    free (logged);
    free (server_logged);
    assert (ml_selftest_remove (directory) == 0);
    printf ("OK\n");
}
