#!/bin/bash
# The analysis at size (issue 12, goals 1, 3 and 4): a release `enclave serve` on DATABASE with
# the limits raised for a big user, then `examples/analysis_at_scale` — RECORDS synthetic
# records generated, then RUNS analyses timed, the server's RSS and a second user's run times
# reported as JSON. With ANALYSE_USER=NAME the records of NAME already in the database are
# analysed instead (RECORDS 0), after `enclave ingest $INGEST --user NAME` when INGEST names a
# file.
#
#   cargo build --release --bin enclave --example analysis_at_scale
#   benches/analysis_scale.sh sqlite:///tmp/scale.db 1000000 3   (a new SQLite file)
#   INGEST=/tmp/wide.ndjson ANALYSE_USER=wide benches/analysis_scale.sh DATABASE 0 3
set -euo pipefail
DB=$1 N=$2 RUNS=$3
BIN=${BIN:-target/release/enclave}
SECRET=bench-secret-bench-secret-bench-secret
WORK=$(mktemp -d)
ENCLAVE_JWT_SECRET=$SECRET ENCLAVE_SYNTHETIC_APPROVAL_THRESHOLD=100000000 \
  ENCLAVE_SYNTHETIC_MAX_RECORDS=100000000 ENCLAVE_MAX_RECORDS_PER_USER=100000000 \
  ENCLAVE_MESSAGE_BURST=10000 ENCLAVE_MESSAGES_PER_MINUTE=100000 RUST_LOG=warn \
  "$BIN" serve --bind 127.0.0.1:0 --database "$DB" > "$WORK/out" 2> "$WORK/err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
until grep -q "listening on" "$WORK/out" 2>/dev/null; do sleep 0.1; done
URL=$(head -1 "$WORK/out" | sed 's/listening on //')
if [ -n "${INGEST:-}" ]; then
  ENCLAVE_JWT_SECRET=$SECRET "$BIN" ingest "$INGEST" --user "${ANALYSE_USER:?name the user}" \
    --url "$URL" --checkpoint "$WORK/checkpoint" | tail -1
fi
target/release/examples/analysis_at_scale "$URL" $SECRET $SERVER "$N" "$RUNS"
