#!/usr/bin/env bash
# The Forge under load: saturation, overload, gone clients; then the naive baseline.
set -u
dir=$(mktemp -d); cd "$dir"
AUTHD_RATE_LIMIT_RPS=100000 AUTHD_RATE_LIMIT_BURST=100000 AUTHD_LOG_LEVEL=warn setsid nohup /tmp/authd > authd.log 2>&1 < /dev/null &
for _ in $(seq 50); do curl -sf localhost:8080/readyz >/dev/null && break; sleep 0.1; done
M=authd_hash_jobs_total,authd_hash_jobs_orphaned_total,authd_logins_total
echo "===== saturation: 32 clients (inside the queue), raw capacity measured in the same run"
/tmp/authbench login -admin http://127.0.0.1:9090 -users 1000 -seed-concurrency 16 -run-id sat -concurrency 32 -duration 20s -capacity 10s -metrics $M
echo "===== overload: 256 clients against the default queue (64)"
/tmp/authbench login -admin http://127.0.0.1:9090 -users 1000 -seed-concurrency 16 -run-id sat -concurrency 256 -duration 20s -metrics $M
echo "===== gone clients: 256 clients that give up after 200 ms"
/tmp/authbench login -admin http://127.0.0.1:9090 -users 1000 -seed-concurrency 16 -run-id sat -concurrency 256 -duration 20s -timeout 200ms -metrics $M
pkill -TERM -f '^/tmp/authd$'; sleep 1
echo "===== naive baseline: 256 clients, hashing in the request goroutine"
setsid nohup /tmp/authbench naive -addr 127.0.0.1:8181 > naive.log 2>&1 < /dev/null &
sleep 1
/tmp/authbench login -url http://127.0.0.1:8181 -rss-url http://127.0.0.1:8181/debug/rss -users 200 -run-id naive -concurrency 256 -duration 20s
pkill -TERM -f 'authbench naive'
