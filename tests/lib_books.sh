# The books balance, to the cent: what every test that moves money checks at its end, after
# lib_e2e.sh (core_sql, matter_sql, wait_for, fail). An auditor's checks, from the two
# databases alone:
#   - the outbox has drained: no charge waits for the processor's answer, no posting for the
#     matter system's;
#   - every receipt of the matter database is a posting the core has posted (a payment, or
#     one reversed since), once, and every such posting has its receipt; the same for
#     reversals (refunds, voids, chargebacks) and the matter database's receipt_reversal;
#   - every approved charge has its one posting, of its amount less the fee, and no other
#     charge has one; every approved reversal its reversing posting, of its amount; no
#     charge gives back more than it took;
#   - the sums agree: receipts, reversals, and each receipt's allocations.
# Rejected postings are allowed (the matter system may refuse one; it has no receipt then);
# tests that make none check it themselves. Sets BOOKS_RECEIPTS, BOOKS_REVERSALS (counts) and
# BOOKS_TOTAL (the receipts' sum, minor units) for the caller's figures.

books_drained() {
    [ "$(core_sql "SELECT (SELECT COUNT(*) FROM charge WHERE status IN ('pending', 'unknown'))
        + (SELECT COUNT(*) FROM reversal WHERE status IN ('pending', 'unknown'))
        + (SELECT COUNT(*) FROM posting WHERE status IN ('pending', 'delivered'))")" = 0 ]
}

# The core's postings of one sort and the matter database's rows of one table, both lists of
# posting uuids: each of the first exactly once in the second, nothing else there. Sets
# BOOKS_ROWS to the matter database's count.
books_same() {
    local what=$1 core_query=$2 matter_query=$3
    core_sql "$core_query" | LC_ALL=C sort >"$W/books_core.txt"
    matter_sql "$matter_query" | LC_ALL=C sort >"$W/books_matter.txt"
    LC_ALL=C sort -u "$W/books_matter.txt" >"$W/books_matter_distinct.txt"
    local rows duplicated lost extra
    rows=$(wc -l <"$W/books_matter.txt")
    duplicated=$((rows - $(wc -l <"$W/books_matter_distinct.txt")))
    lost=$(LC_ALL=C comm -23 "$W/books_core.txt" "$W/books_matter_distinct.txt" | wc -l)
    extra=$(LC_ALL=C comm -13 "$W/books_core.txt" "$W/books_matter_distinct.txt" | wc -l)
    [ "$duplicated" = 0 ] && [ "$lost" = 0 ] && [ "$extra" = 0 ] ||
        fail "books: $what: $rows in the matter database, $(wc -l <"$W/books_core.txt") posted at the core: $lost lost, $duplicated duplicated, $extra unknown to the core"
    BOOKS_ROWS=$rows
}

check_books() {
    wait_for 120 "the outbox to drain (no charge or posting waiting)" books_drained
    # A payment's posting stays its receipt when reversals take it back ('reversed': all of it).
    books_same receipts \
        "SELECT posting_uuid FROM posting WHERE reverses = '' AND status IN ('posted', 'reversed')" \
        "SELECT posting_uuid FROM receipt"
    BOOKS_RECEIPTS=$BOOKS_ROWS
    books_same reversals \
        "SELECT posting_uuid FROM posting WHERE reverses <> '' AND status = 'posted'" \
        "SELECT posting_uuid FROM receipt_reversal"
    BOOKS_REVERSALS=$BOOKS_ROWS
    local bad
    bad=$(core_sql "SELECT c.charge_key FROM charge c LEFT JOIN posting p ON p.posting_uuid = c.posting_uuid
        WHERE (c.status = 'approved') <> (p.posting_uuid IS NOT NULL)
           OR (p.posting_uuid IS NOT NULL AND p.amount_minor <> c.amount_minor - c.fee_minor)")
    [ -z "$bad" ] || fail "books: charges without their one posting of their amount: $bad"
    # Each approved refund, void or chargeback has its reversing posting, of its amount, against
    # its charge's posting; no other has one; and no charge gives back more than it took.
    bad=$(core_sql "SELECT r.reversal_key FROM reversal r JOIN charge c ON c.charge_key = r.charge_key
        LEFT JOIN posting p ON p.posting_uuid = r.posting_uuid
        WHERE (r.status = 'approved') <> (p.posting_uuid IS NOT NULL)
           OR (p.posting_uuid IS NOT NULL AND (p.amount_minor <> r.amount_minor OR p.reverses <> c.posting_uuid))")
    [ -z "$bad" ] || fail "books: reversals without their one posting of their amount: $bad"
    bad=$(core_sql "SELECT c.charge_key FROM charge c JOIN reversal r ON r.charge_key = c.charge_key
        WHERE r.status = 'approved' GROUP BY c.charge_key, c.amount_minor
        HAVING SUM(r.amount_minor) > c.amount_minor")
    [ -z "$bad" ] || fail "books: charges that gave back more than they took: $bad"
    local core_receipts matter_receipts core_reversals matter_reversals allocated
    core_receipts=$(core_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM posting
        WHERE reverses = '' AND status IN ('posted', 'reversed')")
    matter_receipts=$(matter_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM receipt")
    core_reversals=$(core_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM posting
        WHERE reverses <> '' AND status = 'posted'")
    matter_reversals=$(matter_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM receipt_reversal")
    allocated=$(matter_sql "SELECT COALESCE(SUM(amount_minor), 0) FROM receipt_allocation")
    [ "$core_receipts" = "$matter_receipts" ] && [ "$core_reversals" = "$matter_reversals" ] &&
        [ "$allocated" = "$matter_receipts" ] ||
        fail "books: sums: receipts core $core_receipts, matter $matter_receipts (allocated $allocated); reversals core $core_reversals, matter $matter_reversals"
    BOOKS_TOTAL=$core_receipts
    log "books balance: $BOOKS_RECEIPTS receipts ($BOOKS_TOTAL minor units), $BOOKS_REVERSALS reversals, every approved charge posted once"
}
