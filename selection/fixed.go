package selection

import (
	"errors"
	"maps"
	"time"
)

// Fixed is the baseline policy of SageMaker- and Clipper-like systems: one
// configured variant per architecture, never switched. It applies the
// infaas rules to those variants only, so it still prefers loaded replicas
// and loads off the critical path; a request for a use case chooses among
// the fixed variants of its architectures. The configured variant is not
// tied to a hardware class: all of its instances are candidates, so it is
// still placed on whichever class serves the request best. A request naming
// a variant is served with that variant, as in any policy.
type Fixed struct {
	byArch   map[string]string
	fallback bool // Config.FixedDefault
}

var _ Policy = (*Fixed)(nil)

func newFixed(cfg Config) (Policy, error) {
	if len(cfg.Fixed) == 0 && !cfg.FixedDefault {
		return nil, errors.New("the fixed policy needs a variant per architecture (Config.Fixed) or the default rule (Config.FixedDefault)")
	}
	return &Fixed{byArch: maps.Clone(cfg.Fixed), fallback: cfg.FixedDefault}, nil
}

// Name implements Policy.
func (*Fixed) Name() string { return "fixed" }

// maxStack is how many fixed candidates (instances) Select keeps on the
// stack.
const maxStack = 64

// Select implements Policy. It allocates nothing for use cases of up to
// 64 instances of fixed variants (32 architectures on two classes).
func (f *Fixed) Select(s *Snapshot, r *Request, now time.Time, d *Decision) {
	var buf [maxStack]int32
	cands, reason, ok := f.candidates(s, r, buf[:0])
	if !ok {
		d.reset(batchOf(r))
		d.Reason = reason
		return
	}
	decide(s, cands, r, now.UnixNano(), d)
}

// Explain implements Policy.
func (f *Fixed) Explain(s *Snapshot, r *Request, now time.Time) Explanation {
	cands, reason, ok := f.candidates(s, r, nil)
	return explain(s, f.Name(), cands, ok, reason, r, now)
}

// candidates appends the instances of the request's fixed variants to buf
// in (cost, index) order, or says why there are none.
func (f *Fixed) candidates(s *Snapshot, r *Request, buf []int32) ([]int32, Reason, bool) {
	t, k, ok := s.lookup(r.Kind, r.Name)
	if !ok {
		return nil, ReasonUnknown, false
	}
	c := s.cat
	switch k {
	case KindVariant:
		sp := c.vnames[t.variant].list
		return c.lists[sp.off : sp.off+sp.n : sp.off+sp.n], 0, true
	case KindArchitecture:
		buf = f.appendFixed(s, buf, t.arch)
	default:
		for _, a := range c.usecases[t.usecase].archs {
			buf = f.appendFixed(s, buf, a)
		}
	}
	if len(buf) == 0 {
		return nil, ReasonNotConfigured, false
	}
	// Insertion sort: the lists are short.
	for i := 1; i < len(buf); i++ {
		for j := i; j > 0 && variantLess(c.vi[buf[j]].cost, 0, buf[j], c.vi[buf[j-1]].cost, 0, buf[j-1]); j-- {
			buf[j], buf[j-1] = buf[j-1], buf[j]
		}
	}
	return buf, 0, true
}

// appendFixed appends the instances of architecture a's configured
// variant, if it exists in the snapshot and belongs to a.
func (f *Fixed) appendFixed(s *Snapshot, buf []int32, a int32) []int32 {
	c := s.cat
	name, ok := f.byArch[c.archs[a].name]
	if !ok {
		if !f.fallback {
			return buf
		}
		// The cheapest fp32 instance's variant (the list is in cost order).
		sp := c.archs[a].list
		for _, v := range c.lists[sp.off : sp.off+sp.n] {
			if c.variants[v].Precision == "fp32" {
				name, ok = c.variants[v].Name, true
				break
			}
		}
		if !ok {
			return buf
		}
	}
	if t, ok := c.names[name]; ok && t.variant >= 0 && c.vi[c.vnames[t.variant].ref].arch == a {
		sp := c.vnames[t.variant].list
		return append(buf, c.lists[sp.off:sp.off+sp.n]...)
	}
	return buf
}
