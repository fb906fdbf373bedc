/*  ml_processor: the card processor, behind one interface: tokenize, charge, refund, void, lookup.

    Two kinds, chosen by settings: "test", a deterministic processor inside the core for the
    demo and the tests (its test cards are listed in docs/processor.md), and "http", a client
    over libcurl for a real processor's JSON API (the API is specified in docs/processor.md,
    so an integrator can put an adapter in front of any processor).

    Every operation takes an idempotency key that the caller derives from its own durable ids
    (say the payment's UUID and the operation: "3f0c...-charge"), and stores before calling.
    Calling again with the same key is always safe: the processor answers with the result of
    the first call and never charges twice. That is what makes the UNKNOWN status workable:

      APPROVED   done, final. result->txn is the processor's transaction id.
      DECLINED   refused by the processor for a business reason, final (result->reason, e.g.
                 "card_declined", "insufficient_funds").
      UNKNOWN    the call may or may not have happened (timeout, dropped connection, server
                 error or unreadable answer, after the retries). Never assume failure: resolve
                 it later with ml_processor_lookup, or by calling again with the same key.
      ERROR      the request was refused as invalid (by us before sending, or by the
                 processor), or never reached the processor; final, nothing happened.
      NOT_FOUND  (lookup only) no completed operation has that key.

    Money is int64 minor units with an ISO 4217 currency, never floating point. A card number
    passes through ml_processor_tokenize only: it is never stored, logged or put in a message.

    An object is used by one thread at a time (the actor that owns it); calls block for at most
    (retries + 1) x timeout_ms plus the back-off, so an actor that must stay responsive makes
    them from a worker.
*/
#ifndef ML_PROCESSOR_H_INCLUDED
#define ML_PROCESSOR_H_INCLUDED

#include "ml_config.h"

#include <czmq.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _ml_processor_t ml_processor_t;

typedef enum {
    ML_PROCESSOR_APPROVED = 0,
    ML_PROCESSOR_DECLINED = 1,
    ML_PROCESSOR_UNKNOWN = 2,
    ML_PROCESSOR_ERROR = 3,
    ML_PROCESSOR_NOT_FOUND = 4
} ml_processor_status_t;

typedef enum {
    ML_PROCESSOR_NONE = 0,
    ML_PROCESSOR_TOKENIZE = 1,
    ML_PROCESSOR_CHARGE = 2,
    ML_PROCESSOR_REFUND = 3,
    ML_PROCESSOR_VOID = 4
} ml_processor_op_t;

//  Limits of what crosses this interface (bytes, without the terminating zero).
#define ML_PROCESSOR_KEY_MAX         128 //  idempotency key: letters, digits, '-', '_', '.', ':'
#define ML_PROCESSOR_ID_MAX          128 //  token and transaction ids
#define ML_PROCESSOR_ACCOUNT_MAX     64  //  merchant account id: letters, digits, '-', '_', '.'
#define ML_PROCESSOR_DESCRIPTION_MAX 200 //  printable text, no card-number-like digit runs
//  Amounts must be 1 to 2^53 - 1 minor units: every JSON parser holds those exactly.
#define ML_PROCESSOR_AMOUNT_MAX INT64_C (9007199254740991)

//  What a call returns. Plain values, no pointers: copy it, keep it, no destroy needed.
//  Fields that do not apply to the operation or the status are empty or zero.
typedef struct {
    ml_processor_status_t status;
    ml_processor_op_t operation;              //  what the result is about (lookup tells it)
    char reason[64];                          //  machine code: "card_declined", "timeout", ...
    char message[256];                        //  for staff; never holds card data
    char txn[ML_PROCESSOR_ID_MAX + 1];        //  processor transaction id (charge, refund, void)
    char charge_txn[ML_PROCESSOR_ID_MAX + 1]; //  refund and void: the charge acted on
    char merchant_account[ML_PROCESSOR_ACCOUNT_MAX + 1]; //  where the money went or came from
    int64_t amount_minor;                                //  charged, refunded or voided
    char currency[4];                                    //  ISO 4217 code of amount_minor
    char token[ML_PROCESSOR_ID_MAX + 1];                 //  tokenize: the reusable card token
    char brand[16]; //  tokenize: "visa", "mastercard", "amex", "discover" or "other"
    char last4[5];  //  tokenize: last four digits, for people to recognise the card
    int exp_month;  //  tokenize: 1 to 12
    int exp_year;   //  tokenize: four digits
} ml_processor_result_t;

//  How to build a processor. api_key is a secret: wipe the settings with
//  ml_processor_settings_wipe once the processor is made.
typedef struct {
    char kind[8];           //  "test" or "http"
    char endpoint[256];     //  http: base URL, "https://processor.example/api" (no trailing /)
    char api_key[513];      //  http: sent as "Authorization: Bearer KEY", never logged
    int connect_timeout_ms; //  http: longest wait for a connection, per attempt
    int timeout_ms;         //  http: longest wait for a whole answer, per attempt
    int retries;            //  http: extra attempts after a network error, timeout or 5xx
    int retry_backoff_ms;   //  http: wait before the first retry; doubles each time (max 5 s)
} ml_processor_settings_t;

//  Fill settings with the defaults: kind "test", connect 3000 ms, total 15000 ms, 2 retries,
//  250 ms back-off.
void ml_processor_settings_defaults (ml_processor_settings_t *settings);

//  Read the section "processor" of a configuration: kind, endpoint, api_key_file, timeout_ms,
//  connect_timeout_ms, retries, retry_backoff_ms (docs/processor.md). The API key is read from
//  the file api_key_file, which must be a regular file owned by this user and readable by
//  nobody else (mode 0600 or 0400): a key never comes from a command line or the config
//  itself. Returns 0, or -1 with a message for the person who wrote the file in error (which
//  never holds the key). Defaults apply to absent keys.
int ml_processor_settings_load (ml_processor_settings_t *settings, ml_config_t *config, char *error,
                                size_t error_size);

//  Overwrite the API key held in settings.
void ml_processor_settings_wipe (ml_processor_settings_t *settings);

//  Create a processor from settings (the key is copied). Returns NULL with a message in error
//  when the settings are invalid.
ml_processor_t *ml_processor_new (const ml_processor_settings_t *settings, char *error,
                                  size_t error_size);

//  Load the settings from config, create the processor and wipe the settings. NULL + error.
ml_processor_t *ml_processor_load (ml_config_t *config, char *error, size_t error_size);

//  Destroy the processor and wipe its copy of the key. Idempotent; nulls the caller's pointer.
void ml_processor_destroy (ml_processor_t **self_p);

//  "test" or "http".
const char *ml_processor_kind (ml_processor_t *self);

//  Turn a card into a token. number: 12 to 19 digits (spaces and '-' between them are
//  ignored), Luhn-valid; exp_month 1 to 12, exp_year four digits; cvc 3 or 4 digits. The
//  caller should wipe its own copy of number and cvc afterwards; this call keeps none.
//  APPROVED gives token, brand, last4, exp_month, exp_year.
ml_processor_status_t ml_processor_tokenize (ml_processor_t *self, const char *key,
                                             const char *number, int exp_month, int exp_year,
                                             const char *cvc, ml_processor_result_t *result);

//  Charge a token (authorize and capture at once). merchant_account names the processor
//  account the money goes to: the caller picks it by the deposit account's type, so trust
//  and operating money never share a charge. description (may be NULL) appears on the
//  processor's records. APPROVED and DECLINED give txn.
ml_processor_status_t ml_processor_charge (ml_processor_t *self, const char *key, const char *token,
                                           int64_t amount_minor, const char *currency,
                                           const char *merchant_account, const char *description,
                                           ml_processor_result_t *result);

//  Refund part or all of an approved charge: amount_minor may not exceed what was charged
//  minus earlier refunds, and currency must be the charge's (the processor checks both and
//  answers ERROR "amount_exceeds_refundable" or "currency_mismatch"). APPROVED gives txn
//  (the refund's id), charge_txn and merchant_account (where the money comes from).
ml_processor_status_t ml_processor_refund (ml_processor_t *self, const char *key,
                                           const char *charge_txn, int64_t amount_minor,
                                           const char *currency, ml_processor_result_t *result);

//  Cancel a whole approved charge before it settles (ERROR "charge_settled" after: refund it
//  then), when nothing of it was refunded. APPROVED gives txn, charge_txn and the amount.
ml_processor_status_t ml_processor_void (ml_processor_t *self, const char *key,
                                         const char *charge_txn, ml_processor_result_t *result);

//  The result of the operation made with key: APPROVED or DECLINED with the original result
//  (operation says which), NOT_FOUND if the processor completed no operation with that key
//  (calling again with the same key is then safe), UNKNOWN if the processor could not be
//  asked (ask again later), ERROR if the key is invalid or the processor refused the request.
ml_processor_status_t ml_processor_lookup (ml_processor_t *self, const char *key,
                                           ml_processor_result_t *result);

//  What card a token names (a token made in the payer's browser by the processor's
//  tokenization endpoint, docs/processor.md "Hosted fields"): APPROVED gives token, brand,
//  last4, exp_month and exp_year as the processor knows them (the http kind asks
//  GET /v1/tokens/{token}); ERROR "invalid_token" when the processor does not know it;
//  UNKNOWN when it could not be asked. Nothing is stored under a key.
ml_processor_status_t ml_processor_token (ml_processor_t *self, const char *token,
                                          ml_processor_result_t *result);

//  Test kind only: settle every approved charge now (the test processor's end-of-day batch),
//  so voids are refused after it. Returns how many charges settled, or -1 for the http kind.
int ml_processor_settle (ml_processor_t *self);

//  "approved", "declined", "unknown", "error", "not_found".
const char *ml_processor_status_name (ml_processor_status_t status);

//  "tokenize", "charge", "refund", "void", or "none".
const char *ml_processor_op_name (ml_processor_op_t operation);

//  One processor call as data, so that a worker thread can make it (ml_processor_actor)
//  while the thread that asked goes on. The asker fills the request part; the call fills
//  status and result. Plain values, no pointers but context, which is the asker's.
typedef struct {
    ml_processor_op_t operation; //  TOKENIZE, CHARGE, REFUND or VOID; ignored for a lookup
    bool lookup;                 //  ml_processor_lookup of key instead of operation
    bool token_lookup;           //  ml_processor_token of token instead of operation
    char key[ML_PROCESSOR_KEY_MAX + 1];
    char token[ML_PROCESSOR_ID_MAX + 1];                 //  charge
    char charge_txn[ML_PROCESSOR_ID_MAX + 1];            //  refund, void
    int64_t amount_minor;                                //  charge, refund; void: the charge's
    char currency[4];                                    //  charge, refund, void
    char merchant_account[ML_PROCESSOR_ACCOUNT_MAX + 1]; //  charge
    char description[ML_PROCESSOR_DESCRIPTION_MAX + 1];  //  charge, may be empty
    char number[41];                                     //  tokenize; wiped by the call
    char cvc[8];                                         //  tokenize; wiped by the call
    int exp_month, exp_year;                             //  tokenize
    ml_processor_status_t status;                        //  the outcome
    ml_processor_result_t result;                        //  the outcome
    void *context;                                       //  the asker's, untouched
} ml_processor_call_t;

//  Make the call call describes, fill its status and result, and wipe its card number and
//  security code, whatever the outcome.
void ml_processor_call (ml_processor_t *self, ml_processor_call_t *call);

//  The processor's worker: an actor (start it with ml_service_start, args the processor,
//  which it borrows and is then the only thread to use until the actor is destroyed) that
//  makes calls one at a time, in the order asked, so the thread that asks never waits for
//  the processor. Protocol on its pipe (zsock_send pictures): "sp" "CALL" call asks;
//  "sp" "DONE" call answers, once per CALL, with the same pointer, after the call (the
//  pointer stays the asker's: the worker only borrows it until DONE). On $TERM it ends after
//  the call in progress; CALLs still queued then are not made and not answered.
void ml_processor_actor (zsock_t *pipe, void *args);

void ml_processor_test (bool verbose);

#endif
