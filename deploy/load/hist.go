package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the manner of HdrHistogram: every power of two is
// split into 128 linear sub-buckets, so any recorded value is reported within 1/128 (0.8%) of its
// true value, from 1 ns to hours, in a fixed 58 KiB array with no allocation per record. One
// histogram per connection (no locking); merged at the end.
type hist struct {
	counts   [histBuckets]uint64
	total    uint64
	sum      uint64
	min, max uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>uint(shift)) - histSub
}

// histHighest is the highest value that lands in bucket i.
func histHighest(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	mantissa := uint64(i&(histSub-1) + histSub)
	return (mantissa+1)<<uint(shift) - 1
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	h.total++
	h.sum += v
	if h.total == 1 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// quantile returns the value at quantile q (0..1): the highest value equivalent to the recorded
// value of that rank (HdrHistogram's convention), capped at the true maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histHighest(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}
