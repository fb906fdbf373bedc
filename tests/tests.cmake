# Every CTest test of matterlink. Selftests run one class each; codec cases run one folder
# each; end-to-end tests start real processes on real sockets and a real SQLite file.

# Every test sees the sanitizer settings (they matter only in ML_ASAN / ML_UBSAN builds),
# and the daemons the end-to-end tests start inherit them.
set (ML_TEST_ENV
     "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
     "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

set (ML_CLASSES ml_log ml_money ml_config ml_service ml_keygen ml_msg ml_odbc ml_contract
     ml_alloc ml_db ml_store ml_ingest ml_readers ml_admin ml_payers ml_finder ml_payments ml_agent ml_core
     ml_processor ml_mailer ml_autopay ml_logins ml_portal_pay ml_portal_account ml_text
     ml_free_text ml_credentials ml_totp ml_staff ml_staff_postings ml_contacts ml_notify ml_table ml_lease
     ml_group ml_agent_keys)
foreach (class ${ML_CLASSES})
    add_test (NAME selftest_${class} COMMAND ml_selftest -t ${class})
    set_tests_properties (selftest_${class} PROPERTIES ENVIRONMENT "${ML_TEST_ENV}")
endforeach ()

# The web's classes (web/ml_web_selftest.c).
foreach (class ml_html ml_web_form ml_web_core ml_web_pages ml_web_pay ml_web_server ml_web_workers ml_web_staff
               ml_web_staff_pay ml_web_staff_autopay)
    add_test (NAME selftest_${class} COMMAND ml_web_selftest -t ${class})
    set_tests_properties (selftest_${class} PROPERTIES ENVIRONMENT "${ML_TEST_ENV}")
endforeach ()

file (GLOB ML_CODEC_CASES LIST_DIRECTORIES true "${CMAKE_SOURCE_DIR}/tests/codec/*")
foreach (case ${ML_CODEC_CASES})
    if (IS_DIRECTORY ${case})
        get_filename_component (case_name ${case} NAME)
        add_test (NAME codec_${case_name} COMMAND ml_codec_case ${case})
    endif ()
endforeach ()

# The dialects whose contract this tree holds: each runs the contract and end-to-end suites.
set (ML_DIALECTS sqlite)
foreach (dialect postgresql mariadb)
    if (EXISTS ${CMAKE_SOURCE_DIR}/sql/${dialect}/contract.sql)
        list (APPEND ML_DIALECTS ${dialect})
    endif ()
endforeach ()

# PostgreSQL and MariaDB servers on free loopback ports, started once for every test that
# needs them and stopped afterwards, also when tests fail (a CTest fixture).
set (ML_SERVERS_DIR ${CMAKE_BINARY_DIR}/servers)
list (LENGTH ML_DIALECTS dialect_count)
if (dialect_count GREATER 1)
    add_test (NAME servers_start
              COMMAND sh ${CMAKE_SOURCE_DIR}/tests/servers.sh start ${ML_SERVERS_DIR})
    add_test (NAME servers_stop
              COMMAND sh ${CMAKE_SOURCE_DIR}/tests/servers.sh stop ${ML_SERVERS_DIR})
    set_tests_properties (servers_start PROPERTIES FIXTURES_SETUP servers)
    set_tests_properties (servers_stop PROPERTIES FIXTURES_CLEANUP servers)
endif ()

# ml_db's selftest again with its PostgreSQL half, on a database of the test servers.
if (dialect_count GREATER 1)
    add_test (NAME selftest_ml_db_postgresql COMMAND sh -c
              "ML_DB_TEST_POSTGRESQL=$(sh ${CMAKE_SOURCE_DIR}/tests/servers.sh storedb ${ML_SERVERS_DIR} ml_db_selftest) && export ML_DB_TEST_POSTGRESQL && exec $<TARGET_FILE:ml_selftest> -t ml_db")
    set_tests_properties (selftest_ml_db_postgresql PROPERTIES ENVIRONMENT "${ML_TEST_ENV}"
                          FIXTURES_REQUIRED servers)
    # The classes that keep tables in the core's store, their selftests on a PostgreSQL
    # store (ml_selftest_store makes a database per test store on the test server).
    foreach (class ml_store ml_admin ml_payers ml_finder ml_payments ml_mailer ml_autopay
                   ml_logins ml_portal_pay ml_portal_account ml_free_text ml_staff ml_notify
                   ml_lease ml_group)
        add_test (NAME selftest_${class}_postgresql COMMAND sh -c
                  ". ${ML_SERVERS_DIR}/servers.env && ML_SELFTEST_POSTGRESQL=postgresql://postgres@127.0.0.1:$ML_PG_PORT && export ML_SELFTEST_POSTGRESQL && exec $<TARGET_FILE:ml_selftest> -t ${class}")
        set_tests_properties (selftest_${class}_postgresql PROPERTIES ENVIRONMENT "${ML_TEST_ENV}"
                              FIXTURES_REQUIRED servers)
    endforeach ()
endif ()

foreach (dialect ${ML_DIALECTS})
    set (script ${CMAKE_SOURCE_DIR}/tests/contract_${dialect}.sh)
    if (EXISTS ${script})
        add_test (NAME contract_${dialect} COMMAND sh ${script} ${CMAKE_SOURCE_DIR})
        if (NOT dialect STREQUAL "sqlite")
            set_tests_properties (contract_${dialect} PROPERTIES
                ENVIRONMENT "ML_SERVERS_DIR=${ML_SERVERS_DIR};${ML_TEST_ENV}" FIXTURES_REQUIRED servers)
        endif ()
    endif ()
endforeach ()

# Each end-to-end script names the dialects it runs on in a "# dialects:" line.
file (GLOB ML_E2E_TESTS "${CMAKE_SOURCE_DIR}/tests/e2e_*.sh")
foreach (script ${ML_E2E_TESTS})
    get_filename_component (test_name ${script} NAME_WE)
    file (STRINGS ${script} dialect_line REGEX "^# dialects:")
    foreach (dialect ${ML_DIALECTS})
        if (dialect_line MATCHES " ${dialect}")
            add_test (NAME ${test_name}_${dialect} COMMAND bash ${script})
            set_tests_properties (${test_name}_${dialect} PROPERTIES
                ENVIRONMENT "ML_BIN=${CMAKE_BINARY_DIR};ML_SOURCE=${CMAKE_SOURCE_DIR};ML_DIALECT=${dialect};ML_SERVERS_DIR=${ML_SERVERS_DIR};${ML_TEST_ENV}"
                TIMEOUT 300 SKIP_RETURN_CODE 77)
            if (NOT dialect STREQUAL "sqlite")
                set_tests_properties (${test_name}_${dialect} PROPERTIES FIXTURES_REQUIRED servers)
            endif ()
        endif ()
    endforeach ()
endforeach ()

# Every contract dialect's amount limit is the C constant ML_MONEY_MAX_MINOR.
add_test (NAME money_limit COMMAND ${CMAKE_COMMAND} -DML_SOURCE=${CMAKE_SOURCE_DIR}
          -P ${CMAKE_SOURCE_DIR}/tests/money_limit.cmake)

add_test (NAME format COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/check-format.sh)
