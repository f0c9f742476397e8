#!/usr/bin/env bash
# The Courier (issue 10): the latency of a request that queues an email
# (POST /v1/register: the account, its verification token and the outbox row
# in one transaction, then 201) while the mail provider is healthy, slow (2 s
# per message) or hanging (never answers DATA), and with no provider at all
# (the log sender), side by side in one run. Each provider gets a fresh authd
# (SQLite in a new directory, in-process state) and its own
# `authbench smtp-sink`; each load is bounded (D, default 15s).
#
# Argon2id at its floor (AUTHD_ARGON2_MEMORY_KIB=19456, ITERATIONS=2,
# PARALLELISM=1; authd refuses less) and C=2 clients for the hash workers
# (AUTHD_HASH_WORKERS=2), so that requests do not queue for hashing and the
# latency is the request's own; the per-client rate limit is raised
# (everything comes from 127.0.0.1).
#
# Printed per provider: registrations/s, p50/p99/max of the 201s, and from
# authd's admin /metrics: go_goroutines, authd_notify_outbox_pending and
# authd_notify_inflight before the load, at its end, and again SETTLE seconds
# after it (past AUTHD_NOTIFY_TIMEOUT: a hanging provider's first attempts
# have timed out by then), the emails delivered, and what the sink saw.
#
# Usage: bash docs/bench/courier.sh [AUTHD_…=value …]   (extra authd settings)
#   e.g. on PostgreSQL: bash docs/bench/courier.sh AUTHD_DATABASE_URL='postgres://…' AUTHD_SECRET_KEY=…
# Environment: AUTHD, AUTHBENCH (binaries), HTTP, ADMIN, SMTP (loopback
# addresses), D (load length), C (clients), NOTIFY_TIMEOUT, SETTLE, MODES
# (which of log,healthy,slow,hang).
set -u
AUTHD=${AUTHD:-/tmp/authd}
AUTHBENCH=${AUTHBENCH:-/tmp/authbench}
HTTP=${HTTP:-127.0.0.1:8080}
ADMIN=${ADMIN:-127.0.0.1:9090}
SMTP=${SMTP:-127.0.0.1:2525}
D=${D:-15s}
C=${C:-2}
NOTIFY_TIMEOUT=${NOTIFY_TIMEOUT:-5s}
SETTLE=${SETTLE:-7}
MODES=${MODES:-log healthy slow hang}

# metric NAME [LABELS]: the value of one series on the admin /metrics.
metric() {
  curl -sf "http://$ADMIN/metrics" | awk -v n="$1" -v l="${2:-}" \
    '$1 == n l { print $2; found = 1; exit } END { if (!found) print "?" }'
}
# gauges: goroutines, pending outbox rows, delivery attempts in flight.
gauges() { echo "$(metric go_goroutines) $(metric authd_notify_outbox_pending) $(metric authd_notify_inflight)"; }

printf '%-8s %6s %8s %8s %8s  %-14s %-14s %-10s %5s  %s\n' provider "reg/s" p50 p99 max \
  goroutines pending inflight sent "sink"
for mode in $MODES; do
  dir=$(mktemp -d)
  smtp=()
  sinkpid=
  case $mode in
    healthy) "$AUTHBENCH" smtp-sink -addr "$SMTP" -duration 5m > "$dir/sink.out" 2>&1 & sinkpid=$! ;;
    slow) "$AUTHBENCH" smtp-sink -addr "$SMTP" -delay 2s -duration 5m > "$dir/sink.out" 2>&1 & sinkpid=$! ;;
    hang) "$AUTHBENCH" smtp-sink -addr "$SMTP" -hang -duration 5m > "$dir/sink.out" 2>&1 & sinkpid=$! ;;
  esac
  [ "$mode" != log ] && smtp=(AUTHD_SMTP_URL="smtp://$SMTP" AUTHD_MAIL_FROM=authd@example.com)
  env -C "$dir" AUTHD_HTTP_ADDR="$HTTP" AUTHD_ADMIN_ADDR="$ADMIN" AUTHD_PUBLIC_URL="http://$HTTP" \
    AUTHD_RATE_LIMIT_RPS=100000 AUTHD_RATE_LIMIT_BURST=100000 AUTHD_SHUTDOWN_DRAIN_DELAY=0 \
    AUTHD_ARGON2_MEMORY_KIB=19456 AUTHD_ARGON2_ITERATIONS=2 AUTHD_ARGON2_PARALLELISM=1 AUTHD_HASH_WORKERS=2 \
    AUTHD_NOTIFY_TIMEOUT="$NOTIFY_TIMEOUT" AUTHD_LOG_LEVEL=error "${smtp[@]}" "$@" \
    "$AUTHD" > "$dir/authd.log" 2>&1 < /dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" > /dev/null && break; sleep 0.1; done
  if ! curl -sf "http://$HTTP/readyz" > /dev/null; then
    echo "$mode: authd did not start: $(head -c 300 "$dir/authd.log")"
    [ -n "$sinkpid" ] && kill -TERM "$sinkpid" && wait "$sinkpid"
    continue
  fi
  start=$(gauges)
  "$AUTHBENCH" register -url "http://$HTTP" -admin "http://$ADMIN" -concurrency "$C" -duration "$D" -json \
    > "$dir/register.json" 2> "$dir/register.err"
  end=$(gauges)
  sleep "$SETTLE"
  settled=$(gauges)
  sent=$(metric authd_notify_deliveries_total '{channel="email",outcome="sent"}')
  kill -TERM "$pid"; wait "$pid"
  sink=-
  if [ -n "$sinkpid" ]; then
    kill -TERM "$sinkpid"; wait "$sinkpid"
    sink=$(sed -n 's/^smtp-sink [^:]*:[0-9]*: //p' "$dir/sink.out")
  fi
  read -r g0 p0 i0 <<< "$start"; read -r g1 p1 i1 <<< "$end"; read -r g2 p2 i2 <<< "$settled"
  jq -r '(.by_status[] | select(.code == 201)) as $c | "\(.throughput_rps) \($c.p50_ms) \($c.p99_ms) \($c.max_ms)"' \
    "$dir/register.json" | while read -r rps p50 p99 max; do
    printf '%-8s %6.1f %6.1fms %6.1fms %6.1fms  %-14s %-14s %-10s %5s  %s\n' "$mode" "$rps" "$p50" "$p99" "$max" \
      "$g0->$g1->$g2" "$p0->$p1->$p2" "$i0->$i1->$i2" "$sent" "$sink"
  done
  other=$(jq -c '[(.by_status[] | select(.code != 201) | {code, count}), (.client_errors | select(.total > 0))]' "$dir/register.json")
  [ -n "$other" ] && [ "$other" != "[]" ] && echo "  not 201: $other"
done
echo "goroutines, pending, inflight: go_goroutines, authd_notify_outbox_pending, authd_notify_inflight before the load -> at its end -> ${SETTLE}s later (AUTHD_NOTIFY_TIMEOUT=$NOTIFY_TIMEOUT); sent: emails the provider accepted by then"
