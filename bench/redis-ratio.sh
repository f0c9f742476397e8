#!/usr/bin/env bash
# redis-ratio.sh: requests per second through authd's Redis rate limiter (the
# middleware, go-redis, EVALSHA of internal/limiter/gcra.lua) against
# redis-benchmark's EVALSHA rate for the same script, at the same concurrency,
# and their ratio. Needs redis-cli, redis-benchmark and a Redis to use.
#
#   AUTHD_TEST_REDIS_URL=redis://127.0.0.1:6379/0 C=50 N=200000 ./redis-ratio.sh
set -euo pipefail
cd "$(dirname "$0")"

url=${AUTHD_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
conc=${C:-50}
n=${N:-200000}

# redis://[user:pass@]host:port[/db]
hostport=${url#*://}
hostport=${hostport##*@}
hostport=${hostport%%/*}
host=${hostport%:*}
port=${hostport##*:}
[ "$port" = "$host" ] && port=6379
db=${url##*/}
case $db in '' | *[!0-9]*) db=0 ;; esac

cli=(redis-cli -h "$host" -p "$port" -n "$db")
sha=$("${cli[@]}" SCRIPT LOAD "$(cat ../internal/limiter/gcra.lua)")

# Same arguments as the Go benchmark: refill every 1 µs, burst 1e9, 10 k keys.
rb=$(redis-benchmark -h "$host" -p "$port" --dbnum "$db" -c "$conc" -n "$n" -r 10000 --csv \
	evalsha "$sha" 1 "authd-bench:rb:__rand_int__" 1 1000000000 |
	awk -F'","' 'NR == 2 { print $2 }')

ours=$(AUTHD_TEST_REDIS_URL="$url" BENCH_CONCURRENCY="$conc" \
	go test -run '^$' -bench '^BenchmarkRedisMiddleware$' -benchtime "${n}x" -count 1 . |
	awk '/^BenchmarkRedisMiddleware/ { for (i = 1; i < NF; i++) if ($(i+1) == "req/s") print $i }')

echo "concurrency:               $conc"
echo "requests:                  $n"
echo "redis-benchmark EVALSHA:   $rb req/s"
echo "authd middleware + Redis:  $ours req/s"
awk -v a="$ours" -v b="$rb" 'BEGIN { printf "ratio (authd / redis-benchmark): %.2f\n", a / b }'
