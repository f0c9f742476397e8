package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	t.Parallel()
	var prevHi uint64
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo > histMaxMicros {
			break
		}
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxUint64); got >= histBuckets {
		t.Fatalf("huge value lands in bucket %d of %d", got, histBuckets)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{3 * time.Millisecond}, 0.99, 3 * time.Millisecond},
		{"exact below 64us", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond},
		{"max is exact", []time.Duration{time.Millisecond, 1234567 * time.Microsecond}, 1, 1234567 * time.Microsecond},
		{"hour clamps to top bucket but max stays", []time.Duration{time.Hour}, 1, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHistogram()
			for _, v := range tt.values {
				h.record(v)
			}
			if got := h.quantile(tt.q); got != tt.want {
				t.Fatalf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestHistogramUniformAndMerge(t *testing.T) {
	t.Parallel()
	// 1..10000 ms spread over two histograms, merged.
	a, b := newHistogram(), newHistogram()
	for i := 1; i <= 10000; i++ {
		h := a
		if i%2 == 0 {
			h = b
		}
		h.record(time.Duration(i) * time.Millisecond)
	}
	a.merge(b)
	if a.n != 10000 {
		t.Fatalf("n = %d", a.n)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 10000 * float64(time.Millisecond)
		got := float64(a.quantile(q))
		if math.Abs(got-want)/want > 1.0/histSub {
			t.Errorf("p%v = %v, want within 1/%d of %v", q*100, time.Duration(got), histSub, time.Duration(want))
		}
	}
	if a.min != time.Millisecond || a.max != 10*time.Second {
		t.Errorf("min/max = %v/%v", a.min, a.max)
	}
	if m := a.mean(); m != 5000500*time.Microsecond {
		t.Errorf("mean = %v", m)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	h := newHistogram()
	for i := 0; b.Loop(); i++ {
		h.record(time.Duration(i%100000) * time.Microsecond)
	}
}
