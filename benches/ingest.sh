#!/bin/bash
# Ingest benchmark (issue 12, goal 2): a fresh release `enclave serve` on DATABASE, then
# `enclave ingest FILE --user bench` (the whole file checked first, then sent in parts), timed;
# the server's RSS sampled every 0.5 s. Prints seconds, records/s and the server's RSS before
# and at its peak (KiB).
#
#   cargo build --release
#   benches/ingest.sh FILE RECORDS sqlite:///tmp/bench.db      (the file is removed first)
#   benches/ingest.sh FILE RECORDS postgres://postgres@127.0.0.1:5432/bench   (an empty database)
#
# Extra environment (e.g. ENCLAVE_BULK_CHUNK=5000) is passed to the server.
set -euo pipefail
FILE=$1 RECORDS=$2 DB=$3
BIN=${BIN:-target/release/enclave}
SECRET=bench-secret-bench-secret-bench-secret
WORK=$(mktemp -d)
case $DB in sqlite://?*) rm -f "${DB#sqlite://}" "${DB#sqlite://}"-wal "${DB#sqlite://}"-shm ;; esac
ENCLAVE_JWT_SECRET=$SECRET RUST_LOG=warn "$BIN" serve --bind 127.0.0.1:0 --database "$DB" \
  > "$WORK/out" 2> "$WORK/err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
until grep -q "listening on" "$WORK/out" 2>/dev/null; do sleep 0.1; done
URL=$(head -1 "$WORK/out" | sed 's/listening on //')
BASE=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)
( while kill -0 $SERVER 2>/dev/null; do awk '/VmRSS/ {print $2}' /proc/$SERVER/status; sleep 0.5; done ) > "$WORK/rss" &
START=$(date +%s.%N)
ENCLAVE_JWT_SECRET=$SECRET "$BIN" ingest "$FILE" --user bench --url "$URL" --checkpoint "$WORK/checkpoint"
END=$(date +%s.%N)
PEAK=$(sort -n "$WORK/rss" | tail -1)
echo "seconds $(echo "$END - $START" | bc) records/s $(echo "$RECORDS / ($END - $START)" | bc) server_rss_kib_before $BASE peak $PEAK"
