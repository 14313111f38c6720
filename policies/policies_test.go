package policies

import (
	"strings"
	"testing"

	"github.com/infaas/infaas/autoscale"
	"github.com/infaas/infaas/selection"
)

// Every serving policy builds: its selection policy looks up with its
// configuration (the fixed ones without --fixed too), and its autoscaler
// configuration validates.
func TestServingPoliciesBuild(t *testing.T) {
	for _, name := range Names() {
		sp, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := sp.SelectionConfig("")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := selection.Lookup(sp.Selection, cfg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := sp.Models(autoscale.DefaultConfig())
		if _, err := autoscale.NewModels(m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch name {
		case "sm+", "fixed":
			if !m.NoVertical || m.Static {
				t.Errorf("%s must scale horizontally only: %+v", name, m)
			}
		case "clipper+":
			if !m.Static {
				t.Errorf("clipper+ must be static: %+v", m)
			}
		case "infaas":
			if m.NoVertical || m.Static {
				t.Errorf("infaas must scale both ways: %+v", m)
			}
		}
	}
}

func TestParseFixed(t *testing.T) {
	m, err := ParseFixed("a=a.v1, b=b.v2")
	if err != nil || m["a"] != "a.v1" || m["b"] != "b.v2" {
		t.Fatalf("got %v, %v", m, err)
	}
	for _, bad := range []string{"a", "a=", "=v", "a=x,a=y"} {
		if _, err := ParseFixed(bad); err == nil || !strings.Contains(err.Error(), "--fixed") {
			t.Errorf("%q: want an error naming --fixed, got %v", bad, err)
		}
	}
	if _, err := table["infaas"].SelectionConfig("a=v"); err == nil {
		t.Error("--fixed with the infaas policy must be refused")
	}
}
