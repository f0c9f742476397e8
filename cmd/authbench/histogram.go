package main

import (
	"math/bits"
	"time"
)

// histogram is a fixed-size, log-linear latency histogram in the spirit of
// HdrHistogram: values are microseconds, recorded exactly below 64µs and with
// a relative error under 1/64 (reported as the bucket midpoint, so under
// 1/128) above. Recording never allocates and takes no lock: each worker owns
// its histograms and they are merged once the workers have returned. The
// zero value is not ready; use newHistogram.
type histogram struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // sub-buckets per power of two
	// histMaxMicros caps recorded values at 2^31 µs (about 36 minutes);
	// longer values land in the top bucket, while max stays exact.
	histMaxBits   = 31
	histMaxMicros = 1<<histMaxBits - 1
	histBuckets   = (histMaxBits-histSubBits+1)*histSub + histSub
)

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBuckets)}
}

// bucketOf returns the bucket index of a value in microseconds.
func bucketOf(us uint64) int {
	if us > histMaxMicros {
		us = histMaxMicros
	}
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1 // mantissa in [histSub, 2*histSub)
	return (shift+1)*histSub + int(us>>uint(shift)) - histSub
}

// bucketRange returns the lowest and highest microsecond value of a bucket.
func bucketRange(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	shift := uint(i/histSub - 1)
	mant := uint64(i%histSub + histSub)
	return mant << shift, (mant+1)<<shift - 1
}

// record adds one observation.
func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d/time.Microsecond))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// merge adds every observation of o to h.
func (h *histogram) merge(o *histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value below which a fraction q of the observations
// fall (nearest rank), as the midpoint of its bucket clamped to the exact
// minimum and maximum. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, hi := bucketRange(i)
		v := time.Duration((lo+hi)/2) * time.Microsecond
		if lo == hi {
			v = time.Duration(lo) * time.Microsecond
		}
		return min(max(v, h.min), h.max)
	}
	return h.max
}

// mean returns the arithmetic mean, 0 when empty.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
