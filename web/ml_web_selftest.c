/*  ml_web_selftest: runs the selftest of one web class (-t NAME) or of all of them. The
    web's classes have their own runner so that the core's programs never link
    libmicrohttpd. */
#include "ml_html.h"
#include "ml_log.h"
#include "ml_selftest_support.h"
#include "ml_web_core.h"
#include "ml_web_form.h"
#include "ml_web_pages.h"
#include "ml_web_staff.h"
#include "ml_web_server.h"
#include "ml_web_workers.h"
#include "ml_web_staff_pay.h"

#include <stdio.h>
#include <string.h>

static const ml_selftest_class_t s_tests[] = {
    {"ml_html", ml_html_test},
    {"ml_web_form", ml_web_form_test},
    {"ml_web_core", ml_web_core_test},
    {"ml_web_pages", ml_web_pages_test},
    {"ml_web_pay", ml_web_pay_test},
    {"ml_web_server", ml_web_server_test},
    {"ml_web_workers", ml_web_workers_test},
    {"ml_web_staff", ml_web_staff_test},
    {"ml_web_staff_pay", ml_web_staff_pay_test},
    {"ml_web_staff_autopay", ml_web_staff_autopay_test},
};

int main (int argc, char *argv[])
{
    return ml_selftest_main ("ml_web_selftest", argc, argv, s_tests,
                             sizeof s_tests / sizeof s_tests[0]);
}
