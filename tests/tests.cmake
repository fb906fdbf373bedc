# Every CTest test of matterlink. Selftests run one class each; codec cases run one folder
# each; end-to-end tests start real processes on real sockets and a real SQLite file.

set (ML_CLASSES ml_log ml_money ml_config ml_service ml_keygen ml_msg ml_odbc ml_contract
     ml_alloc ml_store ml_admin ml_agent ml_core)
foreach (class ${ML_CLASSES})
    add_test (NAME selftest_${class} COMMAND ml_selftest -t ${class})
endforeach ()

file (GLOB ML_CODEC_CASES LIST_DIRECTORIES true "${CMAKE_SOURCE_DIR}/tests/codec/*")
foreach (case ${ML_CODEC_CASES})
    if (IS_DIRECTORY ${case})
        get_filename_component (case_name ${case} NAME)
        add_test (NAME codec_${case_name} COMMAND ml_codec_case ${case})
    endif ()
endforeach ()

add_test (NAME contract_sqlite COMMAND sh ${CMAKE_SOURCE_DIR}/tests/contract_sqlite.sh
          ${CMAKE_SOURCE_DIR})

file (GLOB ML_E2E_TESTS "${CMAKE_SOURCE_DIR}/tests/e2e_*.sh")
foreach (script ${ML_E2E_TESTS})
    get_filename_component (test_name ${script} NAME_WE)
    add_test (NAME ${test_name} COMMAND bash ${script})
    set_tests_properties (${test_name} PROPERTIES
        ENVIRONMENT "ML_BIN=${CMAKE_BINARY_DIR};ML_SOURCE=${CMAKE_SOURCE_DIR}"
        TIMEOUT 300)
endforeach ()

add_test (NAME format COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/check-format.sh)
