#!/usr/bin/env bash
# Overload that still serves (issue 9, item 9), in one run against one authd
# (SQLite, in-process state, rate limits raised, default Argon2id unless
# authd's settings are given as arguments):
#   1. what a refusal costs: 256 clients flood POST /v1/login while the hash
#      pool is full, then GET /healthz, both beside 8 clients that keep the
#      pool busy, so that both runs share the same hashing; then the same
#      without them;
#   2. 256 clients that honour Retry-After, raw Argon2id capacity measured
#      just before and just after;
#   3. 256 clients that retry at once, raw capacity measured just before and
#      just after, with a CPU profile of authd over 10 s of the flood.
# Usage: bash docs/bench/overload.sh [AUTHD_…=value …]
#   e.g. bash docs/bench/overload.sh AUTHD_ARGON2_MEMORY_KIB=65536 AUTHD_ARGON2_ITERATIONS=3 AUTHD_ARGON2_PARALLELISM=4
#   or, the production layout for part 1 only:
#   PARTS=1a bash docs/bench/overload.sh AUTHD_REDIS_URL=redis://127.0.0.1:6379/0 AUTHD_REDIS_KEY_PREFIX=overload:
# Environment: AUTHD, AUTHBENCH (binaries), HTTP, ADMIN (loopback addresses),
# D (run length), USERS (accounts of parts 2 and 3), PARTS (which of
# 1a,1b,2,3 to run).
set -u
AUTHD=${AUTHD:-/tmp/authd}
AUTHBENCH=${AUTHBENCH:-/tmp/authbench}
HTTP=${HTTP:-127.0.0.1:8080}
ADMIN=${ADMIN:-127.0.0.1:9090}
D=${D:-20s}
USERS=${USERS:-256}
PARTS=,${PARTS:-1a,1b,2,3},
# authbench's raw capacity probe uses authd's Argon2id settings.
argon2=(-memory-kib 19456 -iterations 2 -parallelism 1)
for kv in "$@"; do
  case $kv in
    AUTHD_ARGON2_MEMORY_KIB=*) argon2[1]=${kv#*=} ;;
    AUTHD_ARGON2_ITERATIONS=*) argon2[3]=${kv#*=} ;;
    AUTHD_ARGON2_PARALLELISM=*) argon2[5]=${kv#*=} ;;
  esac
done
dir=$(mktemp -d); cd "$dir"
env AUTHD_HTTP_ADDR="$HTTP" AUTHD_ADMIN_ADDR="$ADMIN" AUTHD_RATE_LIMIT_RPS=100000 AUTHD_RATE_LIMIT_BURST=100000 \
  AUTHD_LOG_LEVEL=warn "$@" setsid nohup "$AUTHD" > authd.log 2>&1 < /dev/null &
pid=$!
for _ in $(seq 50); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.1; done
common=(-url "http://$HTTP" -admin "http://$ADMIN" -metrics authd_hash_jobs_total,authd_logins_total,process_cpu_seconds_total)
login=(login "${common[@]}" -sample-interval 1s -users "$USERS" -seed-concurrency 16 -run-id overload -concurrency 256 -duration "$D" -capacity 10s -capacity-after "${argon2[@]}")

if [[ $PARTS == *,1a,* ]]; then
echo "===== 1a. what a refusal costs: 256 clients flood login while the pool is full, then GET /healthz; 8 keepers in both"
"$AUTHBENCH" refusal-vs-bare "${common[@]}" -concurrency 256 -keepers 8 -warmup 2s -duration "$D"
fi
if [[ $PARTS == *,1b,* ]]; then
echo "===== 1b. the same without keepers: only the flood's own admitted logins hash, and GET /healthz runs on an idle pool"
"$AUTHBENCH" refusal-vs-bare "${common[@]}" -concurrency 256 -keepers 0 -warmup 2s -duration "$D"
fi
if [[ $PARTS == *,2,* || $PARTS == *,3,* ]]; then
  # The users of parts 2 and 3, created before anything is measured.
  "$AUTHBENCH" login "${common[@]}" -users "$USERS" -seed-concurrency 16 -run-id overload -concurrency 1 -requests 1 -duration 1s > /dev/null
fi
if [[ $PARTS == *,2,* ]]; then
echo "===== 2. 256 clients that honour Retry-After"
"$AUTHBENCH" "${login[@]}" -retry-after honour
fi
if [[ $PARTS == *,3,* ]]; then
echo "===== 3. 256 clients that retry at once; authd's CPU profile over 10 s of the flood"
(sleep 12; curl -s -o cpu.pb "http://$ADMIN/debug/pprof/profile?seconds=10") &
prof=$!
"$AUTHBENCH" "${login[@]}" -retry-after ignore
wait "$prof"
go tool pprof -top -nodecount=25 "$AUTHD" cpu.pb 2>/dev/null
echo "== the same profile by caller (cumulative)"
go tool pprof -top -cum -nodecount=30 "$AUTHD" cpu.pb 2>/dev/null | tail -n +6
fi
kill -TERM "$pid"; wait "$pid" 2>/dev/null
