package kube

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Elector decides which of several controllers runs the autoscalers: the
// one holding a coordination.k8s.io Lease. Every controller serves
// queries; only the leader loads, switches and unloads replicas and adds
// and removes workers, so two controllers never scale the same workers.
type Elector struct {
	Client    kubernetes.Interface
	Namespace string
	Lease     string // the Lease's name
	Identity  string // this controller
	Log       *slog.Logger
	// OnChange, when set, is called with true when this controller becomes
	// the leader and false when it stops being one.
	OnChange func(leading bool)

	leading atomic.Bool
}

// Leading reports whether this controller holds the lease now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Run takes part in the election until ctx ends, trying again after a
// lost lease. The timings are client-go's usual ones (a lease of 15 s
// renewed every 2 s), so a dead leader is replaced within about 15 s.
func (e *Elector) Run(ctx context.Context) error {
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: e.Lease, Namespace: e.Namespace},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	set := func(v bool) {
		if e.leading.Swap(v) != v && e.OnChange != nil {
			e.OnChange(v)
		}
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, ReleaseOnCancel: true, Name: e.Lease,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					log.Info("leading: this controller runs the autoscalers", "lease", e.Namespace+"/"+e.Lease, "identity", e.Identity)
					set(true)
				},
				OnStoppedLeading: func() {
					log.Info("not leading: another controller runs the autoscalers", "lease", e.Namespace+"/"+e.Lease)
					set(false)
				},
				OnNewLeader: func(id string) {
					if id != e.Identity {
						log.Info("autoscaling leader", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		set(false)
	}
	return nil
}
