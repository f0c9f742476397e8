package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"
)

// -capacity-after measures the raw capacity again after the load and
// relates the hashed rate to the mean of both measurements.
func TestRunLoginCapacityAfter(t *testing.T) {
	t.Parallel()
	fake := newFakeAuthd(defaultPassword)
	pub := httptest.NewServer(fake.public())
	t.Cleanup(pub.Close)

	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), testEnv(&waits{}), []string{"login",
		"-url", pub.URL, "-users", "2", "-concurrency", "2", "-duration", "1m", "-requests", "20", "-json",
		"-capacity", "20ms", "-capacity-after", "-memory-kib", "64", "-iterations", "1",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	c := rep.Capacity
	if c == nil || c.CapacityAfter == nil || c.CapacityAfter.Hashes == 0 {
		t.Fatalf("saturation %+v", c)
	}
	mean := (c.Capacity.PerSecond + c.CapacityAfter.PerSecond) / 2
	if math.Abs(c.RatioMean-c.HashedRate/mean) > 1e-9 || c.RatioMean <= 0 {
		t.Errorf("ratio against the mean %v, want %v", c.RatioMean, c.HashedRate/mean)
	}
}
