package catalog

import "testing"

func TestMemoryNeed(t *testing.T) {
	tests := []struct {
		name string
		peak int64
		file int64
		want int64
	}{
		{name: "profiled: peak plus file", peak: 100, file: 10, want: 110},
		{name: "unprofiled: three files", peak: 0, file: 10, want: 30},
		{name: "negative peak counts as unprofiled", peak: -1, file: 10, want: 30},
		{name: "nothing known", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MemoryNeed(Profile{PeakMemoryBytes: tc.peak}, tc.file); got != tc.want {
				t.Errorf("MemoryNeed(peak %d, file %d) = %d, want %d", tc.peak, tc.file, got, tc.want)
			}
		})
	}
}

func TestMemoryNeedOn(t *testing.T) {
	v := Variant{
		Hardware:  "cpu-small",
		FileBytes: 10,
		Profile:   Profile{PeakMemoryBytes: 100},
		Profiles: map[string]Profile{
			"cpu-large":  {PeakMemoryBytes: 200},
			"cpu-small":  {PeakMemoryBytes: 999}, // the reference Profile wins for its class
			"unprofiled": {},
		},
	}
	tests := []struct {
		class string
		want  int64
	}{
		{class: "cpu-small", want: 110},
		{class: "cpu-large", want: 210},
		{class: "unprofiled", want: 30}, // listed, but without a peak: three files
		{class: "gpu", want: 110},       // no profile there: the reference one
	}
	for _, tc := range tests {
		t.Run(tc.class, func(t *testing.T) {
			if got := v.MemoryNeedOn(tc.class); got != tc.want {
				t.Errorf("MemoryNeedOn(%q) = %d, want %d", tc.class, got, tc.want)
			}
			if on, ok := v.OnClass(tc.class); ok {
				if got := MemoryNeed(on.Profile, on.FileBytes); got != tc.want {
					t.Errorf("MemoryNeed of the %s instance = %d, want %d as MemoryNeedOn", tc.class, got, tc.want)
				}
			}
		})
	}
}
