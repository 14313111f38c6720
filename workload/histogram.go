package workload

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: 2^histSubBits buckets per
// power of two below the first, half as many above, so a recorded value is
// reported within 1/128 (under 0.8%) of itself.
const histSubBits = 8

const histSub = 1 << histSubBits

// Histogram counts latencies in log-linear buckets, as HDR histograms do:
// values (in microseconds) below 256 are exact; above, each power of two is
// cut into 128 equal buckets. Memory grows with the largest value only
// (a few kilobytes up to hours). The zero value is empty and ready.
type Histogram struct {
	counts   []uint64
	n        uint64
	min, max time.Duration
	sum      time.Duration
}

// bucketOf returns the bucket of a value in microseconds.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // ≥ 1
	return histSub + (shift-1)*(histSub/2) + int(v>>shift) - histSub/2
}

// bucketMid returns the middle of a bucket, in microseconds.
func bucketMid(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	shift := (i-histSub)/(histSub/2) + 1
	low := uint64((i-histSub)%(histSub/2)+histSub/2) << shift
	return float64(low) + float64(uint64(1)<<shift)/2
}

// Record adds one latency; negative ones count as 0.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(uint64(d / time.Microsecond))
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
	h.sum += d
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the mean of the values recorded, exactly.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the values recorded: the
// middle of the bucket holding the value of rank ⌈q·n⌉, clamped to the
// exact minimum and maximum; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			d := time.Duration(bucketMid(i) * float64(time.Microsecond))
			return min(max(d, h.min), h.max)
		}
	}
	return h.max
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
