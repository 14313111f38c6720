package cpuset

import (
	"slices"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		out  string
	}{
		{"0", []int{0}, "0"},
		{"0-1", []int{0, 1}, "0-1"},
		{"3,0-1", []int{0, 1, 3}, "0-1,3"},
		{"1,1,0", []int{0, 1}, "0-1"},
	} {
		got, err := Parse(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if f := Format(got); f != tc.out {
			t.Errorf("Format(%v) = %q, want %q", got, f, tc.out)
		}
	}
	for _, bad := range []string{"", "a", "1-0", "0,", "-1", "99999"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestPinProcess(t *testing.T) {
	before, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := PinProcess(before); err != nil {
			t.Errorf("restore affinity: %v", err)
		}
	})
	one := before[:1]
	if err := PinProcess(one); err != nil {
		t.Fatal(err)
	}
	got, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, one) {
		t.Fatalf("after pinning to %v the thread may run on %v", one, got)
	}
}
