package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/selection"
)

// servingPolicy is a selection policy with an autoscaling configuration:
// infaas's own, and the baselines the INFaaS paper compares it with, as
// configurations of the same code.
type servingPolicy struct {
	selection string
	fixed     bool                    // serves each architecture with one fixed variant
	scale     func(*autoscale.Config) // adjusts the model autoscaler; nil: as configured
	about     string
}

var servingPolicies = map[string]servingPolicy{
	"infaas": {selection: "infaas",
		about: "model-less: a variant per query; replicate or switch variants as load changes, downgrade and unload as it falls"},
	"infaas-novertical": {selection: "infaas", scale: func(c *autoscale.Config) { c.NoVertical = true },
		about: "infaas without vertical scaling: replicas only, never a variant switch"},
	"sm+": {selection: "fixed", fixed: true, scale: func(c *autoscale.Config) { c.NoVertical = true },
		about: "SageMaker-like: one fixed variant per architecture, horizontal autoscaling only"},
	"clipper+": {selection: "fixed", fixed: true, scale: func(c *autoscale.Config) { c.Static = true },
		about: "Clipper-like: one fixed variant per architecture, adaptive batching, static replicas (one, loaded on first use)"},
	"fixed": {selection: "fixed", fixed: true, scale: func(c *autoscale.Config) { c.NoVertical = true },
		about: "the same as sm+"},
}

func policyNames() []string {
	names := make([]string, 0, len(servingPolicies))
	for n := range servingPolicies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// parseFixed reads --fixed: arch=variant pairs, comma-separated.
func parseFixed(s string) (map[string]string, error) {
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

// selectionConfig is the selection policy's configuration for sp.
func (sp servingPolicy) selectionConfig(fixed string) (selection.Config, error) {
	if !sp.fixed {
		if fixed != "" {
			return selection.Config{}, fmt.Errorf("--fixed applies to the fixed policies (sm+, clipper+, fixed) only")
		}
		return selection.Config{}, nil
	}
	m, err := parseFixed(fixed)
	if err != nil {
		return selection.Config{}, err
	}
	return selection.Config{Fixed: m, FixedDefault: true}, nil
}
