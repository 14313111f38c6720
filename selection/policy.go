package selection

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy decides how to serve each request. Implementations are pure:
// Select and Explain read only their arguments, start nothing, and agree
// with each other (Explain's Decision is what Select writes).
type Policy interface {
	// Name is the name the policy is registered under.
	Name() string
	// Select writes the decision for r into d, allocating nothing.
	Select(s *Snapshot, r *Request, now time.Time, d *Decision)
	// Explain returns the same decision with every candidate considered,
	// why each was dropped, and how the rest scored.
	Explain(s *Snapshot, r *Request, now time.Time) Explanation
}

// Config configures the policies; each reads only its own fields.
type Config struct {
	// Fixed maps an architecture name to the one variant the fixed policy
	// serves it with.
	Fixed map[string]string
	// FixedDefault serves an architecture Fixed does not list with its
	// cheapest full-precision (fp32) variant: the model as its owner
	// registered it, tuned only in ways that do not change its answers —
	// what a SageMaker- or Clipper-like deployment runs.
	FixedDefault bool
}

// Factory makes a policy from its configuration.
type Factory func(Config) (Policy, error)

// ErrUnknownPolicy is returned by Lookup for a name not in the registry.
var ErrUnknownPolicy = errors.New("unknown selection policy")

// registry holds every policy by name. A new policy is one file and one
// line here.
var registry = map[string]Factory{
	"infaas": func(Config) (Policy, error) { return &Infaas{}, nil },
	"fixed":  newFixed,
}

// Names lists the registered policies, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the policy registered under name, configured with cfg.
func Lookup(name string, cfg Config) (Policy, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownPolicy, name, strings.Join(Names(), ", "))
	}
	p, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("selection policy %s: %w", name, err)
	}
	return p, nil
}
