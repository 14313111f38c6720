package workload

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Diurnal is one day compressed into Length: the rate is Low at the start
// and at the end (night) and rises along a raised cosine to High at the
// middle (midday):
//
//	rate(t) = Low + (High−Low)·(1 − cos(2πt/Length))/2
//
// so it is smooth, symmetric about the middle and averages (Low+High)/2.
type Diurnal struct {
	Low, High float64
	Length    time.Duration
}

var _ Schedule = Diurnal{}

// Defaults of `diurnal`.
const (
	defaultDiurnalLength = 120 * time.Second
	defaultDiurnalLow    = 4
	defaultDiurnalHigh   = 80
)

// Rate implements Schedule.
func (d Diurnal) Rate(t time.Duration) float64 {
	if t < 0 || t >= d.Length {
		return 0
	}
	x := float64(t) / float64(d.Length)
	return d.Low + (d.High-d.Low)*(1-math.Cos(2*math.Pi*x))/2
}

// Duration implements Schedule.
func (d Diurnal) Duration() time.Duration { return d.Length }

func parseDiurnal(arg string) (Schedule, error) {
	const want = "want diurnal[:DURATION[:LOW:HIGH]]"
	d := Diurnal{Low: defaultDiurnalLow, High: defaultDiurnalHigh, Length: defaultDiurnalLength}
	parts := splitArg(arg)
	if len(parts) != 0 && len(parts) != 1 && len(parts) != 3 {
		return nil, errors.New(want)
	}
	var err error
	if len(parts) >= 1 {
		if d.Length, err = parseDuration(parts[0]); err != nil {
			return nil, err
		}
	}
	if len(parts) == 3 {
		if d.Low, d.High, err = parseRates(parts[1], parts[2]); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// The burst model of Bursty: periods at the base rate ("off") and at the
// peak rate ("on") alternate, starting off; each period's length is drawn
// from an exponential distribution whose mean is the schedule's length
// over these divisors (5 s off and 2 s on over 120 s).
const (
	burstOffDivisor = 24
	burstOnDivisor  = 60
	// burstStream is the PCG stream of the draws, apart from the
	// arrivals' (1) and the mix's (2) for the same seed.
	burstStream = 3
)

// Defaults of `bursty`.
const (
	defaultBurstyLength = 120 * time.Second
	defaultBurstyBase   = 10
	defaultBurstyPeak   = 100
	defaultBurstySeed   = 1
)

// Bursty returns a seeded bursty load of the given length: base QPS with
// bursts at peak QPS. Periods at the base rate and at the peak rate
// alternate, starting at the base rate; their lengths are exponentially
// distributed with means length/24 at the base rate and length/60 at the
// peak (5 s and 2 s over 120 s), rounded to the millisecond (at least
// 1 ms), the last cut at the end. About 2/7 of the time is at the peak,
// so the mean rate is near (5·base + 2·peak)/7, varying from seed to seed;
// about 17 bursts come whatever the length, so the Steps stay short.
// The draws come from a PCG source of seed (stream 3) and are made here,
// once: one seed gives one schedule, and its Rate is a pure function.
func Bursty(length time.Duration, base, peak float64, seed uint64) Steps {
	rng := rand.New(rand.NewPCG(seed, burstStream))
	means := [2]float64{
		float64(length) / burstOffDivisor,
		float64(length) / burstOnDivisor,
	}
	rates := [2]float64{base, peak}
	var out Steps
	for at, on := time.Duration(0), 0; at < length; on = 1 - on {
		d := time.Duration(rng.ExpFloat64() * means[on]).Round(time.Millisecond)
		d = min(max(d, time.Millisecond), length-at)
		out = append(out, Step{QPS: rates[on], For: d})
		at += d
	}
	return out
}

func parseBursty(arg string) (Schedule, error) {
	const want = "want bursty[:DURATION[:BASE:PEAK[:SEED]]]"
	length := defaultBurstyLength
	base, peak := float64(defaultBurstyBase), float64(defaultBurstyPeak)
	seed := uint64(defaultBurstySeed)
	parts := splitArg(arg)
	if len(parts) == 2 || len(parts) > 4 {
		return nil, errors.New(want)
	}
	var err error
	if len(parts) >= 1 {
		if length, err = parseDuration(parts[0]); err != nil {
			return nil, err
		}
	}
	if len(parts) >= 3 {
		if base, peak, err = parseRates(parts[1], parts[2]); err != nil {
			return nil, err
		}
	}
	if len(parts) == 4 {
		if seed, err = strconv.ParseUint(strings.TrimSpace(parts[3]), 10, 64); err != nil {
			return nil, fmt.Errorf("seed %q: want a whole number, 0 or more; %s", parts[3], want)
		}
	}
	return Bursty(length, base, peak, seed), nil
}

// splitArg splits a kind's argument at its colons; an empty one has no
// parts.
func splitArg(arg string) []string {
	if arg == "" {
		return nil
	}
	return strings.Split(arg, ":")
}

func parseRates(a, b string) (float64, float64, error) {
	x, err := parseRate(a)
	if err != nil {
		return 0, 0, err
	}
	y, err := parseRate(b)
	return x, y, err
}
