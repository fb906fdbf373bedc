/*  ml_autopay's calendar: due dates of a schedule, date parsing and arithmetic on
    proleptic Gregorian days. Pure functions, no store (core/ml_autopay_internal.h). */
#include "ml_autopay_internal.h"
#include "ml_msg.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>

//  Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil),
//  so date arithmetic needs neither time zones nor the C library's time_t range.
static int64_t s_days (int year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static void s_civil (int64_t days, int *year, int *month, int *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t shifted = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * shifted + 2) / 5 + 1);
    *month = (int)(shifted < 10 ? shifted + 3 : shifted - 9);
    *year = (int)(year_of_era + era * 400 + (*month <= 2));
}

//  A strict YYYY-MM-DD that names a real day. Returns 0 or -1.
int ml_autopay_date_parse (const char *text, int *year, int *month, int *day)
{
    if (!text || !*text || !ml_msg_valid_date (text))
        return -1;
    *year = atoi (text);
    *month = atoi (text + 5);
    *day = atoi (text + 8);
    return *year < 2000 || *year > 9000 ? -1 : 0;
}

static void s_date_text (int64_t days, char *text, size_t size)
{
    int year, month, day;
    s_civil (days, &year, &month, &day);
    snprintf (text, size, "%04d-%02d-%02d", year, month, day);
}

//  A date plus some days, as text (11 bytes). date must be valid.
void ml_autopay_date_add (const char *date, int days, char *text, size_t size)
{
    int year, month, day;
    int rc = ml_autopay_date_parse (date, &year, &month, &day);
    assert (rc == 0);
    s_date_text (s_days (year, month, day) + days, text, size);
}

int ml_autopay_due_date (const char *first_date, const char *frequency, const char *day_rule,
                         int index, char *due, size_t size)
{
    int year, month, day;
    if (ml_autopay_date_parse (first_date, &year, &month, &day) != 0 || index < 0 || !frequency ||
        !day_rule || (!streq (day_rule, "last") && !streq (day_rule, "next")))
        return -1;
    int step_days = streq (frequency, "weekly") ? 7 : streq (frequency, "biweekly") ? 14 : 0;
    int step_months = streq (frequency, "monthly") ? 1 : streq (frequency, "quarterly") ? 3 : 0;
    if (step_days) {
        s_date_text (s_days (year, month, day) + (int64_t)step_days * index, due, size);
        return 0;
    }
    if (!step_months)
        return -1;
    //  Each due date counts from the first one, not from the last: a schedule on the 31st
    //  is paid on Feb 28 and again on Mar 31, never drifting to the 28th. The index-th run
    //  belongs to its period, the step_months calendar months starting with its month, and
    //  never leaves it: so each period is charged exactly once.
    int months = (month - 1) + step_months * index;
    int due_year = year + months / 12, due_month = months % 12 + 1;
    int last = ml_msg_month_days (due_year, due_month);
    if (day <= last)
        s_date_text (s_days (due_year, due_month, day), due, size);
    else if (streq (day_rule, "next") && step_months > 1)
        //  The 1st of the following month is still in a quarter's period.
        s_date_text (s_days (due_year, due_month, last) + 1, due, size);
    else
        //  "last", or "next" on a monthly schedule: the 1st of the following month is the
        //  next period's, which has its own run (it would be charged twice, this one never).
        s_date_text (s_days (due_year, due_month, last), due, size);
    return 0;
}

//  The first day client- and matter-level enrollments no longer run: one year after the
//  schedule's first run.
void ml_autopay_year_end (const char *first_date, char *end, size_t size)
{
    int year, month, day;
    int rc = ml_autopay_date_parse (first_date, &year, &month, &day);
    assert (rc == 0);
    if (month == 2 && day == 29)
        day = 28;
    //  The modulos only tell the compiler the text fits; a parsed date is in range already.
    snprintf (end, size, "%04u-%02u-%02u", (unsigned)(year + 1) % 10000u, (unsigned)month % 100u,
              (unsigned)day % 100u);
}
