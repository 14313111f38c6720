package catalog

// MemoryNeed is the memory a load of a variant with profile p and a model
// file of fileBytes needs: the profiled peak resident memory of the session
// (measured above a baseline that already held the model file) plus the
// file itself, which the worker holds while ONNX Runtime builds the
// session. An unprofiled variant (peak ≤ 0) needs three times its file.
//
// It is the one rule: the worker's ledger reserves it, the selection
// snapshot checks a worker's free memory against it, and the controller
// books it for a load in flight, so selection never places a load the
// worker refuses.
func MemoryNeed(p Profile, fileBytes int64) int64 {
	if p.PeakMemoryBytes <= 0 {
		return 3 * fileBytes
	}
	return p.PeakMemoryBytes + fileBytes
}

// MemoryNeedOn is MemoryNeed for v on a worker of hardware class class: by
// its profile there when it has one, by the reference Profile otherwise.
func (v Variant) MemoryNeedOn(class string) int64 {
	p, ok := v.ProfileOn(class)
	if !ok {
		p = v.Profile
	}
	return MemoryNeed(p, v.FileBytes)
}
