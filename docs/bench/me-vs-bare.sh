#!/usr/bin/env bash
# me-vs-bare in three deployments, one after the other, same settings.
set -u
run() {
  name=$1; shift
  dir=$(mktemp -d); cd "$dir"
  env "$@" AUTHD_LOG_LEVEL=warn setsid nohup /tmp/authd > authd.log 2>&1 < /dev/null &
  for _ in $(seq 50); do curl -sf localhost:8080/readyz >/dev/null && break; sleep 0.1; done
  echo "== $name"
  /tmp/authbench me-vs-bare -url http://127.0.0.1:8080 -concurrency 32 -duration 10s 2>/dev/null | grep -E '^(throughput|ratio|     200)'
  pkill -TERM -f '^/tmp/authd$'; sleep 1
}
psql 'postgres://postgres@127.0.0.1:5432/test' -qc 'DROP SCHEMA IF EXISTS authd_bench CASCADE; CREATE SCHEMA authd_bench'
run "sqlite + in-process state" AUTHD_HASH_WORKERS=2
run "sqlite + redis" AUTHD_REDIS_URL=redis://127.0.0.1:6379/0 AUTHD_REDIS_KEY_PREFIX=mebench1:
run "postgres + redis" AUTHD_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?search_path=authd_bench' AUTHD_REDIS_URL=redis://127.0.0.1:6379/0 AUTHD_REDIS_KEY_PREFIX=mebench2:
