# Common commands. `make test` is the test command the README and CI use.
AUTHD_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
AUTHD_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export AUTHD_TEST_POSTGRES_URL AUTHD_TEST_REDIS_URL

.PHONY: run test test-short vet fmt build bench bench-limiter
run:
	go run ./cmd/authd

# The whole suite with the race detector, PostgreSQL and Redis suites on.
test:
	go test -race -count=1 -timeout 20m $(TESTFLAGS) ./...

# Unit tests only: no PostgreSQL, no Redis (those suites skip, naming their variable).
test-short:
	env -u AUTHD_TEST_POSTGRES_URL -u AUTHD_TEST_REDIS_URL go test -race ./...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	go build -o bin/ ./cmd/...

bench:
	go test -run '^$$' -bench . -benchmem ./internal/...

bench-limiter:
	cd bench && go test -run '^$$' -bench . -benchmem ./...
