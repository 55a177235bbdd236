#!/bin/bash
# The page's upload at size (issue 13): a fresh release `enclave serve --dev` on a SQLite file,
# headless Chromium driven over WebDriver (chromedriver, with curl), signed in by name, FILE
# uploaded from the usage panel; the page's status read every 0.5 s and printed with the time
# since Upload whenever its phase changes (checking, storing, the end), then the summary, the
# server's RSS before and at its peak (KiB), and the browser's console errors.
#
#   cargo build --release
#   python3 benches/usage_file.py /tmp/big.ndjson 1000000
#   benches/page_upload.sh /tmp/big.ndjson
set -euo pipefail
FILE=$(realpath "$1")
BIN=${BIN:-target/release/enclave}
WORK=$(mktemp -d)
DRIVER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --dev --bind 127.0.0.1:0 --database "sqlite://$WORK/bench.db" \
  > "$WORK/out" 2> "$WORK/err" &
SERVER=$!
chromedriver --port="$DRIVER_PORT" > "$WORK/driver.log" 2>&1 &
DRIVER=$!
trap 'kill $SERVER $DRIVER 2>/dev/null; pkill -f "$WORK/profile" 2>/dev/null; rm -rf "$WORK"' EXIT
until grep -q "listening on" "$WORK/out" 2>/dev/null; do sleep 0.1; done
URL=$(head -1 "$WORK/out" | sed 's/listening on //')
D=http://127.0.0.1:$DRIVER_PORT
until curl -sf "$D/status" > /dev/null; do sleep 0.1; done
SESSION=$(curl -s -X POST "$D/session" -d "{\"capabilities\":{\"alwaysMatch\":{\"goog:chromeOptions\":
  {\"args\":[\"--headless=new\",\"--no-sandbox\",\"--disable-background-networking\",
  \"--user-data-dir=$WORK/profile\"]}}}}" | jq -r .value.sessionId)
S=$D/session/$SESSION
element() { curl -s -X POST "$S/element" -d "{\"using\":\"css selector\",\"value\":\"$1\"}" | jq -r '.value | to_entries[0].value'; }
keys() { curl -s -X POST "$S/element/$(element "$1")/value" -d "{\"text\":\"$2\"}" > /dev/null; }
click() { curl -s -X POST "$S/element/$(element "$1")/click" -d '{}' > /dev/null; }
text() { curl -s "$S/element/$(element "$1")/text" | jq -r .value; }
curl -s -X POST "$S/url" -d "{\"url\":\"$URL/\"}" > /dev/null
keys "#user-name" bench
click "#dev-sign-in button[type=submit]"
until [ "$(text "#connection")" = "connected as bench" ]; do sleep 0.2; done
click "#usage-panel > summary"
keys "#usage-file" "$FILE"
BASE=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)
( while kill -0 $SERVER 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$SERVER/status; sleep 0.5; done ) > "$WORK/rss" &
START=$(date +%s.%N)
click "#upload-form button[type=submit]"
PHASE=
while true; do
  STATUS=$(text "#upload-status")
  NOW=$(echo "$(date +%s.%N) - $START" | bc)
  if [ "${STATUS%%…*}" != "$PHASE" ]; then
    PHASE=${STATUS%%…*}
    printf '%6.1f s  %s\n' "$NOW" "$STATUS"
  fi
  case "$STATUS" in Stored*|"Upload failed"*) break ;; esac
  sleep 0.5
done
# The summary the page loads after the upload (before it, it said none was stored).
until [[ "$(text "#usage-summary .totals")" =~ ^[0-9] ]]; do sleep 0.5; done
text "#usage-summary .totals"
echo "server_rss_kib_before $BASE peak $(sort -n "$WORK/rss" | tail -1)"
curl -s -X POST "$S/se/log" -d '{"type":"browser"}' | jq -c '.value[] | select(.level == "SEVERE")'
curl -s -X DELETE "$S" > /dev/null
