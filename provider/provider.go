// Package provider is how infaas gets workers: a Provider starts and
// stops worker processes of a hardware class and lists them. The local
// provider (provider/local) runs `infaas worker` children on this
// machine; the Kubernetes provider (provider/kube) scales per-class
// worker Deployments. The cluster autoscaler drives either through this
// interface. A worker a provider starts announces
// itself to the controller like any other (see workerrpc.Announcer); the
// provider only owns the process.
package provider

import (
	"context"
	"errors"
	"time"

	"github.com/infaas/infaas/catalog"
)

// ErrUnknownWorker: no worker of that ID was started by this provider.
var ErrUnknownWorker = errors.New("unknown worker")

// ErrCapacity: the provider cannot start a worker of that class (the
// machine is too small, or a quota is reached).
var ErrCapacity = errors.New("no capacity for the class")

// Worker states.
const (
	StateRunning = "running"
	StateExited  = "exited" // ended on its own; see Worker.Exit
	StateStopped = "stopped"
)

// Worker is one worker a provider started.
type Worker struct {
	ID      string    `json:"id"`
	Class   string    `json:"class"`
	State   string    `json:"state"`
	PID     int       `json:"pid,omitempty"`
	CPUs    string    `json:"cpus,omitempty"` // CPU list it is pinned to
	Started time.Time `json:"started"`
	// Exit says how it (last) ended: exit status or signal.
	Exit string `json:"exit,omitempty"`
	// Restarts counts how often it was started again after exiting.
	Restarts int `json:"restarts,omitempty"`
	// Detail is the provider's word on where the worker stands (for
	// Kubernetes: the pod's phase, node, readiness or why it is not
	// scheduled).
	Detail string `json:"detail,omitempty"`
}

// Provider starts and stops workers. Implementations are safe for
// concurrent use; their constructors start nothing.
type Provider interface {
	// Name is the provider's registry name ("local").
	Name() string
	// Start launches a worker of class and returns once the process
	// exists (it joins the controller on its own shortly after).
	Start(ctx context.Context, class catalog.HardwareClass) (Worker, error)
	// Stop ends worker id gracefully (its replicas drain), forcibly after
	// a grace period.
	Stop(ctx context.Context, id string) error
	// List returns the workers started, by ID.
	List() []Worker
	// Run owns the workers until ctx ends, then stops every one.
	Run(ctx context.Context) error
}
