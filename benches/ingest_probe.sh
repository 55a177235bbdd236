#!/bin/bash
# A second user's run times while one user's file is ingested (issue 12, goal 4): a fresh
# release `enclave serve` on DATABASE, `enclave ingest FILE --user bench` in the background,
# and meanwhile `examples/analysis_at_scale` in probe mode (a trivial message every 100 ms for
# PROBE_SECS seconds, its run times' p50/p99 printed as JSON). Then the ingest's own line and
# its time.
#
#   cargo build --release --bin enclave --example analysis_at_scale
#   benches/ingest_probe.sh FILE sqlite:///tmp/bench.db 15     (the file is removed first)
#   benches/ingest_probe.sh FILE postgres://postgres@127.0.0.1:5432/bench 15   (an empty database)
#
# Extra environment (e.g. ENCLAVE_BULK_CHUNK_MS=3) is passed to the server.
set -euo pipefail
FILE=$1 DB=$2 SECS=$3
BIN=${BIN:-target/release/enclave}
SECRET=bench-secret-bench-secret-bench-secret
WORK=$(mktemp -d)
case $DB in sqlite://?*) rm -f "${DB#sqlite://}" "${DB#sqlite://}"-wal "${DB#sqlite://}"-shm ;; esac
ENCLAVE_JWT_SECRET=$SECRET ENCLAVE_MESSAGE_BURST=10000 ENCLAVE_MESSAGES_PER_MINUTE=100000 \
  RUST_LOG=warn "$BIN" serve --bind 127.0.0.1:0 --database "$DB" > "$WORK/out" 2> "$WORK/err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
until grep -q "listening on" "$WORK/out" 2>/dev/null; do sleep 0.1; done
URL=$(head -1 "$WORK/out" | sed 's/listening on //')
START=$(date +%s.%N)
(
  ENCLAVE_JWT_SECRET=$SECRET "$BIN" ingest "$FILE" --user bench --url "$URL" \
    --checkpoint "$WORK/checkpoint" > "$WORK/ingest" 2>&1 || echo "ingest failed" >> "$WORK/ingest"
  echo "ingest_seconds $(echo "$(date +%s.%N) - $START" | bc)" >> "$WORK/ingest"
) &
INGEST=$!
# The ingest first checks the whole file; the probe starts once uploads are under way.
sleep "${DELAY:-1}"
PROBE_SECS=$SECS target/release/examples/analysis_at_scale "$URL" $SECRET $SERVER
wait $INGEST
tail -3 "$WORK/ingest"
