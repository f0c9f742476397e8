// Package bench compares authd's rate limiter with the Go libraries it could
// have used, and measures the Redis limiter against redis-benchmark. It is its
// own module so that the service never depends on the libraries it is
// compared with; see docs/bench/guardian.md for the figures and commands.
//
// Run from this directory:
//
//	go test -run '^$' -bench 'Allow' -benchmem -cpu 1,2
//	AUTHD_TEST_REDIS_URL=redis://127.0.0.1:6379/0 ./redis-ratio.sh
package bench
