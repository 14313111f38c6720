// Package policies names the serving policies: infaas's own and the
// baselines the INFaaS paper compares it with (SageMaker-like SM+,
// Clipper-like Clipper+), each a configuration of the same selection and
// autoscaling code. `infaas serve --policy` and `infaas simulate --policy`
// read the same table, so a live run and a simulated one of a policy run
// the same rules.
package policies

import (
	"fmt"
	"slices"
	"strings"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/selection"
)

// Policy is a selection policy with an autoscaling configuration.
type Policy struct {
	Name      string
	Selection string // the selection policy (selection.Lookup)
	Fixed     bool   // serves each architecture with one fixed variant
	// Scale adjusts the model autoscaler's configuration; nil: as given.
	Scale func(*autoscale.Config)
	About string
}

// Models is cfg adjusted for the policy.
func (p Policy) Models(cfg autoscale.Config) autoscale.Config {
	if p.Scale != nil {
		p.Scale(&cfg)
	}
	return cfg
}

var table = map[string]Policy{
	"infaas": {Selection: "infaas",
		About: "model-less: a variant per query; replicate or switch variants as load changes, downgrade and unload as it falls"},
	"infaas-novertical": {Selection: "infaas", Scale: func(c *autoscale.Config) { c.NoVertical = true },
		About: "infaas without vertical scaling: replicas only, never a variant switch"},
	"sm+": {Selection: "fixed", Fixed: true, Scale: func(c *autoscale.Config) { c.NoVertical = true },
		About: "SageMaker-like: one fixed variant per architecture, horizontal autoscaling only"},
	"clipper+": {Selection: "fixed", Fixed: true, Scale: func(c *autoscale.Config) { c.Static = true },
		About: "Clipper-like: one fixed variant per architecture, adaptive batching, static replicas (one, loaded on first use)"},
	"fixed": {Selection: "fixed", Fixed: true, Scale: func(c *autoscale.Config) { c.NoVertical = true },
		About: "the same as sm+"},
}

// Names lists the policies, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the policy called name.
func Lookup(name string) (Policy, error) {
	p, ok := table[name]
	if !ok {
		return Policy{}, fmt.Errorf("policy %q: want one of %s", name, strings.Join(Names(), ", "))
	}
	p.Name = name
	return p, nil
}

// ParseFixed reads --fixed: arch=variant pairs, comma-separated.
func ParseFixed(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		a, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || a == "" || v == "" {
			return nil, fmt.Errorf("--fixed: %q is not arch=variant", kv)
		}
		if err := catalog.ValidateName("architecture", a); err != nil {
			return nil, fmt.Errorf("--fixed: %w", err)
		}
		if _, dup := out[a]; dup {
			return nil, fmt.Errorf("--fixed: architecture %s is listed twice", a)
		}
		out[a] = v
	}
	return out, nil
}

// SelectionConfig is the selection policy's configuration for p, with
// fixed (--fixed: arch=variant pairs) for the fixed policies.
func (p Policy) SelectionConfig(fixed string) (selection.Config, error) {
	if !p.Fixed {
		if fixed != "" {
			return selection.Config{}, fmt.Errorf("--fixed applies to the fixed policies (sm+, clipper+, fixed) only")
		}
		return selection.Config{}, nil
	}
	m, err := ParseFixed(fixed)
	if err != nil {
		return selection.Config{}, err
	}
	return selection.Config{Fixed: m, FixedDefault: true}, nil
}
