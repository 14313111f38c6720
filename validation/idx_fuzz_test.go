package validation

import "testing"

// FuzzParseIDX: validation data is user bytes; any input parses or errs.
func FuzzParseIDX(f *testing.F) {
	f.Add([]byte{0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9})
	f.Add([]byte{0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseIDX(b)
	})
}
