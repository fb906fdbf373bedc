/*  ml_text: rules for the free text people type into matterlink (A/R messages, payer names,
    notes, memos, descriptions, link messages, search text).

    Free text is stored, e-mailed and may be logged, so a card number typed into it would
    spread card data where no card data may be (PCI DSS). One check, used at every entry,
    refuses it.
*/
#ifndef ML_TEXT_H_INCLUDED
#define ML_TEXT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  What a refusal says after the field's name, e.g. "'note' " ML_TEXT_CARD_REFUSAL. It never
//  quotes the text.
#define ML_TEXT_CARD_REFUSAL                                                                       \
    "holds what looks like a card number (13 to 19 digits that pass the card check digit); "       \
    "card numbers may not be stored or sent: remove it"

//  True if text (UTF-8, may be NULL) holds a card-like number: a run of 13 to 19 digits that
//  passes the Luhn check, or a run of more than 19 digits (it may hold one). The digits of a
//  run may be separated by spaces or dashes, as people group a card number ("4111
//  1111 1111 1111", "4111-1111-1111-1111"); full-width digits, no-break and thin spaces and
//  Unicode dashes count too, so the look-alikes pass no more easily than the plain forms.
//  Shorter runs and runs failing Luhn are left alone (dates, phone numbers, invoice numbers).
bool ml_text_has_card_number (const char *text);

//  Mask in place what ml_text_has_card_number finds: every digit of such a run becomes '*'
//  (each byte of a full-width one), separators and the rest of the text stay. For messages
//  that quote what someone sent (an error naming the id it did not find): the text is not
//  refused there, so it is masked. Returns whether anything was masked.
bool ml_text_mask_card_numbers (char *text);

//  Tell each_run where each run that ml_text_has_card_number finds lies in text: its first
//  digit's byte offset and its length in bytes, to its last digit (separators inside). For
//  a page that must not show back what a person typed (matterlink-web). Returns whether
//  there was one.
typedef void (ml_text_run_fn) (void *arg, size_t offset, size_t length);
bool ml_text_card_runs (const char *text, ml_text_run_fn *each_run, void *arg);

void ml_text_test (bool verbose);

#endif
