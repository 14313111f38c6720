package controller

import (
	"context"
	"slices"
	"time"

	"github.com/infaas/infaas/catalog"
)

// profileSetter is the metadata store's per-class profile write.
type profileSetter interface {
	SetProfile(ctx context.Context, variant, class string, p catalog.Profile) error
}

// profiler is a worker that can measure a variant on its hardware.
type profiler interface {
	Worker
	Profile(ctx context.Context, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error)
}

// profileRetry is how long a failed (variant, class) measurement waits
// before it is tried again.
const profileRetry = 5 * time.Minute

// profileSoon asks the class profiler to look for work (coalesced).
func (c *Controller) profileSoon() {
	select {
	case c.profile <- struct{}{}:
	default:
	}
}

// runClassProfiles measures, in the background, every variant on every
// hardware class that has a running worker and no profile of it yet —
// on a worker of that class, one variant at a time — and stores the
// profile, so selection can use the class's own numbers. It wakes when a
// worker joins and when the catalog changes.
func (c *Controller) runClassProfiles(ctx context.Context) {
	setter, ok := c.store.(profileSetter)
	if !ok {
		c.log.Warn("the metadata store cannot hold per-class profiles; workers of other classes stay unprofiled")
		return
	}
	failed := map[string]time.Time{} // variant@class → when it failed
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.profile:
		case <-tick.C:
		}
		for c.profileOne(ctx, setter, failed) {
		}
	}
}

// profileOne measures one missing (variant, class) pair; false when there
// is none left (or ctx ended).
func (c *Controller) profileOne(ctx context.Context, setter profileSetter, failed map[string]time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	v := c.view.Load()
	if v == nil {
		return false
	}
	byClass := map[string]profiler{}
	for _, w := range c.workersNow() {
		p, ok := w.(profiler)
		if !ok {
			continue
		}
		st := w.State()
		if !st.Running {
			continue
		}
		if _, seen := byClass[st.Hardware.Name]; !seen {
			byClass[st.Hardware.Name] = p
		}
	}
	names := make([]string, 0, len(v.variants))
	for n := range v.variants {
		names = append(names, n)
	}
	slices.Sort(names)
	for class, w := range byClass {
		for _, n := range names {
			x := v.variants[n]
			key := n + "@" + class
			if _, ok := x.ProfileOn(class); ok || c.now().Sub(failed[key]) < profileRetry {
				continue
			}
			a, ok := v.archs[x.Architecture]
			if !ok {
				continue
			}
			start := c.now()
			pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			p, err := w.Profile(pctx, x, a)
			cancel()
			if err == nil {
				err = setter.SetProfile(ctx, n, class, p)
			}
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				failed[key] = c.now()
				c.log.Warn("profiling on a class failed; will retry later", "variant", n, "class", class, "worker", w.ID(), "err", err, "retry_in", profileRetry)
				return true
			}
			c.log.Info("profiled variant on class", "variant", n, "class", class, "worker", w.ID(),
				"p99_b1_ms", p.P99At(1), "reference_p99_b1_ms", x.Profile.P99At(1), "took", c.now().Sub(start).Round(time.Millisecond))
			if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("refresh after profiling", "err", err)
			}
			return true
		}
	}
	return false
}
