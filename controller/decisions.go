package controller

import (
	"sync"
	"time"
)

// DecisionRecord is one query's routing decision, kept for GET /v1/decisions.
type DecisionRecord struct {
	At          time.Time `json:"at"`
	Model       string    `json:"model"`
	Batch       int       `json:"batch"`
	LatencyMs   float64   `json:"latency_target_ms,omitempty"`
	MinAccuracy float64   `json:"min_accuracy,omitempty"`
	MaxCost     float64   `json:"max_cost,omitempty"`
	Strict      bool      `json:"strict,omitempty"`
	Action      string    `json:"action"`
	Reason      string    `json:"reason"`
	Message     string    `json:"message"`
	Variant     string    `json:"variant,omitempty"`
	Worker      string    `json:"worker,omitempty"`
	Replica     string    `json:"replica,omitempty"`
	Load        string    `json:"load,omitempty"`
	EstimateMs  float64   `json:"estimate_ms"`
	ObservedMs  float64   `json:"observed_ms,omitempty"`
	Met         bool      `json:"met"`
	Error       string    `json:"error,omitempty"`
	DecisionNs  int64     `json:"decision_ns"`
}

// decisionLog is a ring of the most recent decisions.
type decisionLog struct {
	mu   sync.Mutex
	buf  []DecisionRecord
	next int
	full bool
}

func newDecisionLog(n int) *decisionLog {
	return &decisionLog{buf: make([]DecisionRecord, max(n, 1))}
}

func (l *decisionLog) add(r DecisionRecord) {
	l.mu.Lock()
	l.buf[l.next] = r
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	l.mu.Unlock()
}

// Decisions returns the recent decisions, newest first.
func (c *Controller) Decisions() []DecisionRecord {
	l := c.decisions
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = len(l.buf)
	}
	out := make([]DecisionRecord, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.buf[(l.next-i+len(l.buf))%len(l.buf)])
	}
	return out
}
