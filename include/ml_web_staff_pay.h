/*  ml_web_staff_pay: "Make a Payment" for a firm's staff, four steps under /staff/pay
    (docs/web.md, "Make a Payment"; web/staff/ml_web_staff_pay*.c).

    1 Criteria (/staff/pay/criteria): the field to search by; "use this every time" is the
    core's staff-default, and /staff/pay then goes straight to step 2. 2 Search
    (/staff/pay/search): the firm's matter database through the core's search, column
    filters and paging, checkboxes that add to the staff user's one selection (kept by the
    core across searches and across a return to step 1), and the "Current search /
    Selected" switch. 3 Allocate (/staff/pay/allocate): an amount per line or one total
    applied oldest first over the selected invoices, trust by hand, balances net of pending
    postings, a surplus refused with the reason. 4 Pay (/staff/pay/pay): a saved payer and
    method or a new payer and a card through the processor's hosted fields (pay.js), the
    receipt address and the A/R message; or "Send for Payment" (the link e-mail). Every
    call carries the staff session; the core authorizes it and keeps the firm apart.
*/
#ifndef ML_WEB_STAFF_PAY_H_INCLUDED
#define ML_WEB_STAFF_PAY_H_INCLUDED

#include "ml_web_pages.h"

//  /staff/pay and /staff/pay/STEP: one handler that dispatches on the step.
ml_web_handler_fn ml_web_staff_pay;

void ml_web_staff_pay_test (bool verbose);

#endif
