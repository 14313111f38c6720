package loadgen

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// RowHeader is the header of the per-second table FormatRow writes.
const RowHeader = "  sec  offered   sent  drop answered refused failed  viol   p50 ms   p99 ms  variants"

// FormatRow writes one second as a line of the table under RowHeader; the
// variants are the three that served most, then how many others did.
func FormatRow(r Row) string {
	return fmt.Sprintf("%5d %8.1f %6d %5d %8d %7d %6d %5d %8.2f %8.2f  %s",
		r.Second, r.Offered, r.Sent, r.Dropped, r.Answered, r.Refused, r.Failed, r.Violations,
		r.P50Ms, r.P99Ms, topVariants(r.Variants, 3))
}

// topVariants writes the n variants that served most, as name:count.
func topVariants(vs map[string]int, n int) string {
	names := sortedVariants(vs)
	var b strings.Builder
	for i, name := range names {
		if i == n {
			fmt.Fprintf(&b, " +%d", len(names)-n)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", name, vs[name])
	}
	return b.String()
}

// sortedVariants lists variants by count, most first, then by name.
func sortedVariants(vs map[string]int) []string {
	names := make([]string, 0, len(vs))
	for name := range vs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if vs[names[i]] != vs[names[j]] {
			return vs[names[i]] > vs[names[j]]
		}
		return names[i] < names[j]
	})
	return names
}

// FormatSummary writes the final figures for people, several lines.
func FormatSummary(s Summary) string {
	var b strings.Builder
	pct := func(n, of int) string {
		if of == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
	}
	if s.Interrupted {
		b.WriteString("interrupted before the schedule's end\n")
	}
	fmt.Fprintf(&b, "schedule %s, %s arrivals, seed %d: %.1f s, %.1f s until the last answer\n",
		or(s.Schedule, "?"), s.Arrivals, s.Seed, s.DurationS, s.ElapsedS)
	fmt.Fprintf(&b, "sent %d (%.1f QPS offered), dropped by the generator %d\n", s.Sent, s.OfferedQPS, s.Dropped)
	fmt.Fprintf(&b, "answered %d (%s), refused %d (%s), failed %d (%s); throughput %.1f QPS\n",
		s.Answered, pct(s.Answered, s.Sent), s.Refused, pct(s.Refused, s.Sent), s.Failed, pct(s.Failed, s.Sent), s.ThroughputQPS)
	fmt.Fprintf(&b, "violations %d (%s of answered)", s.Violations, pct(s.Violations, s.Answered))
	if s.TightestTargetMs > 0 {
		fmt.Fprintf(&b, "; tightest target %g ms", s.TightestTargetMs)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, mean %.2f ms, max %.2f ms\n",
		s.P50Ms, s.P99Ms, s.P999Ms, s.MeanMs, s.MaxMs)
	if s.Timed > 0 {
		fmt.Fprintf(&b, "by the server's account (%d answers): %.2f ms queued in a worker, %.2f ms computing, %.2f ms outside the workers on average\n",
			s.Timed, s.QueueMeanMs, s.ComputeMeanMs, s.OutsideMeanMs)
	}
	if len(s.Statuses) > 0 {
		keys := make([]string, 0, len(s.Statuses))
		for k := range s.Statuses {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s:%d", k, s.Statuses[k])
		}
		fmt.Fprintf(&b, "statuses %s\n", strings.Join(parts, " "))
	}
	if len(s.Variants) > 0 {
		fmt.Fprintf(&b, "variants %s\n", topVariants(s.Variants, len(s.Variants)))
	}
	if len(s.Sets) > 1 {
		for _, st := range s.Sets {
			fmt.Fprintf(&b, "  %-40s sent %d, answered %d, refused %d, failed %d, violations %d, p50 %.2f ms, p99 %.2f ms\n",
				st.Label, st.Sent, st.Answered, st.Refused, st.Failed, st.Violations, st.P50Ms, st.P99Ms)
		}
	}
	if s.MaxLagMs > 50 {
		fmt.Fprintf(&b, "warning: the generator ran up to %.0f ms behind its schedule; this machine may be too busy for the load\n", s.MaxLagMs)
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// csvHeader are the columns of WriteCSV.
var csvHeader = []string{"second", "offered_qps", "sent", "dropped", "answered", "refused", "failed", "violations", "p50_ms", "p99_ms", "variants"}

// WriteCSV writes the per-second rows with a header; variants are one
// column of name=count pairs joined by ';', most used first.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, r := range rows {
		var vs []string
		for _, name := range sortedVariants(r.Variants) {
			vs = append(vs, name+"="+strconv.Itoa(r.Variants[name]))
		}
		rec := []string{
			strconv.Itoa(r.Second), f(r.Offered), strconv.Itoa(r.Sent), strconv.Itoa(r.Dropped),
			strconv.Itoa(r.Answered), strconv.Itoa(r.Refused), strconv.Itoa(r.Failed), strconv.Itoa(r.Violations),
			f(r.P50Ms), f(r.P99Ms), strings.Join(vs, ";"),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the summary as indented JSON.
func WriteJSON(w io.Writer, s Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
