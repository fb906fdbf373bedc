#!/bin/bash
# dialects: sqlite
# A payment link becomes a page (tests/web_link.py) against real core, agent, SMTP server,
# matterlink-web, the HTTP test processor (its browser tokenization endpoint is what the
# page's script calls) and headless Chromium: staff make a link with the CLI, its e-mail
# carries PUBLIC_URL/link?token=, the page shows the lines without the A/R message, a new card
# pays it, the confirmation shows each charge and the receipt number, the postings are posted
# once in the matter database; a declined card and a forged card token pay nothing; the same
# URL then shows the generic "expired or already used" page, as do a cancelled link and an
# unknown token; a form posted twice pays once.
. "$ML_SOURCE/tests/lib_e2e.sh"
. "$ML_SOURCE/tests/lib_processor.sh"
setup 3 24
start_smtp
WEB_PORT=$(free_port)
PROCESSOR_TIMEOUT_MS=5000 start_processor --cors-origin "http://127.0.0.1:$WEB_PORT"
portal_config
start_core
start_agent
wait_for 30 "the core to hold every open invoice" core_has_all_invoices
json() { python3 -c "import json,sys; d = json.load(sys.stdin); print($1)"; }
admin() { "$ML_BIN/ml_api_client" "ipc://$W/admin.sock" "$1"; }
add_accounts

# Two invoices of one client and a trust deposit to its matter; a third invoice for the link
# whose form is posted twice, and a fourth for the cancelled one.
client=$(matter_sql "SELECT o.client_number FROM $OPEN_INVOICES GROUP BY o.client_number ORDER BY COUNT(*) DESC, o.client_number LIMIT 1")
invoices=($(matter_sql "SELECT o.invoice_number FROM $OPEN_INVOICES WHERE o.client_number = '$client' ORDER BY o.invoice_number LIMIT 4"))
[ ${#invoices[@]} = 4 ] || fail "client $client has fewer than four open invoices"
matter=$(matter_sql "SELECT m.matter_number FROM invoice i JOIN matter m ON m.matter_id = i.matter_id WHERE i.invoice_number = '${invoices[0]}'")
make_link() {
    cli --json link create --firm acme --payer-name "Pat Doe" --payer-email pat@example.com \
        --message "SECRET-AR-MEMO for the ledger" "$@"
}
out=$(make_link --invoice "${invoices[0]}=1.25,${invoices[1]}=2.50" --trust "$matter=3.00") ||
    fail "link create: $out"
first=$(echo "$out" | json 'd["link"]["token"]')
out=$(make_link --invoice "${invoices[2]}=1.00") || fail "link create: $out"
twice=$(echo "$out" | json 'd["link"]["token"]')
out=$(make_link --invoice "${invoices[3]}=1.00") || fail "link create: $out"
cancelled=$(echo "$out" | json 'd["link"]["token"]')
cli --json link cancel "$(echo "$out" | json 'd["link"]["link_id"]')" >/dev/null || fail "link cancel"

# The mail carries the page's URL (the token in it), never the A/R message.
link_mail() { [ "$(mails_where '"pat@example.com" in m["rcpt_tos"] and "/link?token='"$first"'" in (m["body"] or "")')" = 1 ]; }
wait_for 20 "the link's mail with its URL" link_mail
url=$(python3 - "$W/mail" "$first" <<'PY'
import glob, json, os, re, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    hit = re.search(r"(http://\S+/link\?token=" + sys.argv[2] + r")\b", json.load(open(path))["body"] or "")
    if hit:
        print(hit.group(1))
PY
)
[ "$url" = "http://127.0.0.1:$WEB_PORT/link?token=$first" ] || fail "the mail's URL: $url"
[ "$(mails_where '"SECRET-AR-MEMO" in (m["body"] or "") or "SECRET-AR-MEMO" in m["headers"]["subject"]')" = 0 ] ||
    fail "the A/R message is in a mail"

WEB_CORE_TIMEOUT_MS=10000 start_web "tokenize_url = $PROCESSOR_URL/v1/public/tokens"
HOME="$W" timeout 80 /usr/bin/python3 "$ML_SOURCE/tests/web_link.py" "$url" "$twice" "$cancelled" \
    "Acme LLP" "${invoices[0]} ${invoices[1]}" "$ML_BIN/screenshots" "$W/paid.json" ||
    fail "the browser flow"

# The postings: three from the page (two invoices in one operating charge, the trust deposit),
# one from the form posted twice; each posted once in the matter database.
postings=$(python3 -c "import json; print(' '.join(json.load(open('$W/paid.json'))['postings']))")
[ "$(echo $postings | wc -w)" = 3 ] || fail "not three postings of link payments: $postings"
for posting in $postings; do
    wait_for 30 "posting $posting to be posted" posting_is "$posting" posted
    [ "$(matter_sql "SELECT COUNT(*) FROM receipt WHERE posting_uuid = '$posting'")" = 1 ] ||
        fail "posting $posting is not one receipt in the matter database"
done
[ "$(admin '{"op": "payments", "firm": "acme"}' | json 'len([p for p in d["payments"] if p["source"] == "link" and p["status"] == "approved"])')" = 2 ] ||
    fail "not two approved link payments"
[ "$(cli --json link list --firm acme --state paid | json 'len(d["links"])')" = 2 ] || fail "not two links paid"
curl -sf "$PROCESSOR_URL/_test/ledger" | python3 -c '
import json, sys
charges = json.load(sys.stdin)["charges"]
assert len(charges) == 4 and all(c["made"] == 1 for c in charges), charges  # one declined' || fail "a charge was made twice"
grep -q -e 4242424242424242 -e "$first" "$W/web.log" && fail "a card number or link token in the web's log"
grep -q -e "$first" -e "$twice" "$W/core.log" && fail "a link token in the core's log"
log "PASS"
