/*  ml_selftest: runs the selftest of one class (-t NAME) or of all of them. */
#include "ml_admin.h"
#include "ml_agent.h"
#include "ml_alloc.h"
#include "ml_autopay.h"
#include "ml_config.h"
#include "ml_contract.h"
#include "ml_db.h"
#include "ml_core.h"
#include "ml_keygen.h"
#include "ml_lease.h"
#include "ml_agent_keys.h"
#include "ml_group.h"
#include "ml_log.h"
#include "ml_logins.h"
#include "ml_portal_pay.h"
#include "ml_selftest_support.h"
#include "ml_mailer.h"
#include "ml_money.h"
#include "ml_msg.h"
#include "ml_odbc.h"
#include "ml_payers.h"
#include "ml_processor.h"
#include "ml_ingest.h"
#include "ml_readers.h"
#include "ml_payments.h"
#include "ml_portal_account.h"
#include "ml_finder.h"
#include "ml_service.h"
#include "ml_store.h"
#include "ml_staff_postings.h"
#include "ml_contacts.h"
#include "ml_table.h"
#include "ml_text.h"
#include "ml_credentials.h"
#include "ml_staff.h"
#include "ml_notify.h"
#include "ml_totp.h"

#include <stdio.h>
#include <string.h>

//  Not a class: every free-text entry of the admin API (tests/ml_free_text.c).
void ml_free_text_test (bool verbose);

static const ml_selftest_class_t s_tests[] = {
    {"ml_log", ml_log_test},
    {"ml_money", ml_money_test},
    {"ml_config", ml_config_test},
    {"ml_service", ml_service_test},
    {"ml_keygen", ml_keygen_test},
    {"ml_msg", ml_msg_test},
    {"ml_odbc", ml_odbc_test},
    {"ml_contract", ml_contract_test},
    {"ml_alloc", ml_alloc_test},
    {"ml_db", ml_db_test},
    {"ml_store", ml_store_test},
    {"ml_ingest", ml_ingest_test},
    {"ml_readers", ml_readers_test},
    {"ml_admin", ml_admin_test},
    {"ml_payers", ml_payers_test},
    {"ml_finder", ml_finder_test},
    {"ml_agent", ml_agent_test},
    {"ml_core", ml_core_test},
    {"ml_processor", ml_processor_test},
    {"ml_mailer", ml_mailer_test},
    {"ml_payments", ml_payments_test},
    {"ml_autopay", ml_autopay_test},
    {"ml_logins", ml_logins_test},                 //  the portal's logins, links and sessions
    {"ml_portal_pay", ml_portal_pay_test},         //  paying from the portal
    {"ml_portal_account", ml_portal_account_test}, //  the payer's methods, history, Auto-Pay
    {"ml_credentials", ml_credentials_test},       //  tokens, CSRF, passwords, throttling
    {"ml_totp", ml_totp_test},                     //  RFC 6238 one-time passwords
    {"ml_staff_postings", ml_staff_postings_test}, //  postings' filters and pages
    {"ml_contacts", ml_contacts_test},             //  agents' last contact, replica behind
    {"ml_staff", ml_staff_test},                   //  staff accounts, second factor, scoping
    {"ml_notify", ml_notify_test},                 //  which events e-mail whom
    {"ml_table", ml_table_test},                   //  listings as rows of arrays
    {"ml_lease", ml_lease_test},                   //  firm leases and their fencing epoch
    {"ml_group", ml_group_test},                   //  group commit of the core's thread
    {"ml_agent_keys", ml_agent_keys_test},         //  the registered agents' keys
    {"ml_text", ml_text_test},
    {"ml_free_text", ml_free_text_test},
};

int main (int argc, char *argv[])
{
    return ml_selftest_main ("ml_selftest", argc, argv, s_tests,
                             sizeof s_tests / sizeof s_tests[0]);
}
