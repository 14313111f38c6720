package health

// Asked is what the requests a replica received asked of it: the tightest
// latency target among them, the highest accuracy floor, and whether any
// named the variant itself. The model autoscaler must keep meeting it when
// it replaces the variant (autoscale.Traffic is this type). Every
// controller tells the worker what each request asked; the worker's
// monitor keeps it over its window (Monitor.Admitted, Refused) and
// reports it in Stats, so the controller that scales sees what the
// traffic of all controllers asked, not only its own.
type Asked struct {
	// LatencyMs is the tightest latency target; 0: none stated.
	LatencyMs float64 `json:"latency_ms,omitempty"`
	// MinAccuracy is the highest accuracy floor.
	MinAccuracy float64 `json:"min_accuracy,omitempty"`
	// Pinned: some requests named the variant itself; it is never
	// switched away from, only replicated.
	Pinned bool `json:"pinned,omitempty"`
}

// Merge is what a and b asked together: the tighter target (a stated one
// over none), the higher floor, pinned if either is. The zero Asked
// merges as nothing.
func (a Asked) Merge(b Asked) Asked {
	if b.LatencyMs > 0 && (a.LatencyMs <= 0 || b.LatencyMs < a.LatencyMs) {
		a.LatencyMs = b.LatencyMs
	}
	a.MinAccuracy = max(a.MinAccuracy, b.MinAccuracy)
	a.Pinned = a.Pinned || b.Pinned
	return a
}
