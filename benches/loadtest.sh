#!/usr/bin/env bash
# Runs one `enclave loadtest` against a fresh release server, as BENCHMARKS.md records them.
#
#   benches/loadtest.sh sqlite|postgres [loadtest flags…]
#   NODES=3 benches/loadtest.sh postgres [loadtest flags…]
#
# With NODES=N (PostgreSQL) N servers share the database as a cluster and the load goes to
# all of them (a comma-separated --url: each user's sockets in turn); each node's peak RSS is
# printed at the end.
#
# The server gets a new database (a temp SQLite file, or a new PostgreSQL database on
# $ENCLAVE_BENCH_PG, default postgres://postgres@127.0.0.1:5432), durable commits (SQLite
# synchronous=FULL, the default; PostgreSQL synchronous_commit=on, its default), and a message
# rate high enough not to refuse a load (ENCLAVE_MESSAGES_PER_MINUTE, ENCLAVE_MESSAGE_BURST).
# Build first: cargo build --release.
set -euo pipefail
backend=${1:?usage: benches/loadtest.sh sqlite|postgres [loadtest flags…]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ENCLAVE_BIN:-$root/target/release/enclave}
dir=$(mktemp -d)
case $backend in
  sqlite) db="sqlite://$dir/bench.db" ;;
  postgres)
    pg=${ENCLAVE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
    name="enclave_bench_$$"
    psql "$pg/postgres" -qc "CREATE DATABASE $name" >/dev/null
    db="$pg/$name" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
nodes=${NODES:-1}
if [[ $nodes -gt 1 && $backend != postgres ]]; then
  echo "several nodes share a PostgreSQL database: NODES=$nodes needs postgres" >&2; exit 2
fi
servers=()
cleanup() {
  for server in "${servers[@]}"; do kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; done
  [[ $backend == postgres ]] && psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $name" >/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export ENCLAVE_JWT_SECRET=bench-secret-bench-secret-bench-secret
urls=()
for n in $(seq "$nodes"); do
  ENCLAVE_MESSAGES_PER_MINUTE=6000000 ENCLAVE_MESSAGE_BURST=100000 RUST_LOG=${RUST_LOG:-warn} \
    "$bin" serve --bind 127.0.0.1:0 --database "$db" >"$dir/out$n" 2>"$dir/err$n" &
  servers+=("$!")
  for _ in $(seq 100); do grep -q "listening on" "$dir/out$n" 2>/dev/null && break; sleep 0.1; done
  urls+=("$(sed -n 's/^listening on http:\/\//ws:\/\//p' "$dir/out$n")/ws")
done
if [[ $nodes -eq 1 ]]; then
  "$bin" loadtest --url "${urls[0]}" --server-pid "${servers[0]}" "$@"
else
  status=0
  "$bin" loadtest --url "$(IFS=,; echo "${urls[*]}")" "$@" || status=$?
  for n in "${!servers[@]}"; do
    echo "node $((n + 1)): peak RSS $(awk '/VmHWM/ {print $2, $3}' "/proc/${servers[$n]}/status")"
  done
  exit $status
fi
