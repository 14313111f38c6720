package workerrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// Hello is how a worker introduces itself to a controller.
type Hello struct {
	WorkerID string
	// Address is where the controller dials the worker's Worker service.
	Address string
	Class   catalog.HardwareClass
	// Incarnation is new every time the worker process starts.
	Incarnation string
}

// Membership is the controller's side of joining: Join admits a worker (or
// refuses it with an error the worker sees), and the returned Member hears
// every later report and, once, that the stream ended.
type Membership interface {
	Join(ctx context.Context, h Hello) (Member, error)
	// ID names the controller in its replies.
	ID() string
	// ReportEvery is how often workers should report.
	ReportEvery() time.Duration
}

// Member is one joined worker's stream as the controller sees it.
type Member interface {
	Report(st worker.Status)
	// Leave is called once when the stream ends; err says why (nil: the
	// worker closed it).
	Leave(err error)
	// Done is closed when the controller has let the worker go (silent
	// too long, replaced): the stream then ends, and the worker, if it is
	// alive after all, joins again afresh.
	Done() <-chan struct{}
}

// RegistryServer serves the Registry service for a Membership.
type RegistryServer struct {
	workerpb.UnimplementedRegistryServer
	m Membership
}

var _ workerpb.RegistryServer = (*RegistryServer)(nil)

// NewRegistryServer returns the Registry service of m.
func NewRegistryServer(m Membership) *RegistryServer { return &RegistryServer{m: m} }

// Join admits a worker and relays its reports until the stream ends.
func (s *RegistryServer) Join(stream workerpb.Registry_JoinServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHello()
	if h == nil {
		return status.Error(codes.InvalidArgument, "join: the first report must carry a hello")
	}
	hello := Hello{WorkerID: h.GetWorkerId(), Address: h.GetAddress(), Incarnation: h.GetIncarnation()}
	if err := json.Unmarshal(h.GetClassJson(), &hello.Class); err != nil {
		return status.Errorf(codes.InvalidArgument, "join %s: decode class_json: %v", hello.WorkerID, err)
	}
	if err := catalog.ValidateName("worker ID", hello.WorkerID); err != nil {
		return status.Errorf(codes.InvalidArgument, "join: %v", err)
	}
	if hello.Address == "" {
		return status.Errorf(codes.InvalidArgument, "join %s: no address to reach the worker at", hello.WorkerID)
	}
	member, err := s.m.Join(stream.Context(), hello)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "join %s: %v", hello.WorkerID, err)
	}
	var leaveErr error
	defer func() { member.Leave(leaveErr) }()
	if err := stream.Send(&workerpb.JoinReply{ControllerId: s.m.ID(), ReportEveryMs: s.m.ReportEvery().Milliseconds()}); err != nil {
		leaveErr = err
		return err
	}
	report := func(b []byte) error {
		var st worker.Status
		if err := json.Unmarshal(b, &st); err != nil {
			return status.Errorf(codes.InvalidArgument, "report from %s: decode status_json: %v", hello.WorkerID, err)
		}
		member.Report(st)
		return nil
	}
	if b := first.GetStatusJson(); len(b) > 0 {
		if err := report(b); err != nil {
			leaveErr = err
			return err
		}
	}
	recvDone := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				recvDone <- nil
				return
			}
			if err == nil {
				err = report(msg.GetStatusJson())
			}
			if err != nil {
				recvDone <- err
				return
			}
		}
	}()
	select {
	case err := <-recvDone:
		leaveErr = err
		return err
	case <-member.Done():
		// Returning cancels the stream; the receiving goroutine ends with it.
		leaveErr = errors.New("the controller let the worker go")
		return status.Error(codes.Aborted, "the controller let this worker go (silent past its heartbeat timeout, or replaced); join again")
	}
}

// Announcer keeps a worker joined to one controller: it connects, says
// hello, reports the worker's state at the pace the controller asks for,
// and reconnects with backoff whenever the stream breaks (a controller
// restart, a network blip) until its context ends.
type Announcer struct {
	Controller string // host:port of the controller's cluster address
	Hello      Hello
	State      func() worker.Status
	// DialOptions are added after plaintext transport and ClientAuth.
	DialOptions []grpc.DialOption
	// MaxBackoff caps the wait between attempts; 0 means 1 s.
	MaxBackoff time.Duration
	Log        *slog.Logger
	// OnJoin, when set, is called each time the controller accepts.
	OnJoin func(controllerID string)
}

// Run announces until ctx ends; it returns nil then.
func (a *Announcer) Run(ctx context.Context) error {
	if a.MaxBackoff <= 0 {
		a.MaxBackoff = time.Second
	}
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, a.DialOptions...)
	conn, err := grpc.NewClient(a.Controller, opts...)
	if err != nil {
		return fmt.Errorf("announce to %s: %w", a.Controller, err)
	}
	defer conn.Close()
	rpc := workerpb.NewRegistryClient(conn)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		joined, err := a.session(ctx, rpc)
		if ctx.Err() != nil {
			break
		}
		if joined {
			backoff = 50 * time.Millisecond
		}
		a.Log.Debug("controller stream ended; reconnecting", "controller", a.Controller, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, a.MaxBackoff)
	}
	return nil
}

// session is one Join stream; joined reports whether the controller
// accepted the worker.
func (a *Announcer) session(ctx context.Context, rpc workerpb.RegistryClient) (joined bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpc.Join(ctx, grpc.WaitForReady(false))
	if err != nil {
		return false, err
	}
	class, err := json.Marshal(a.Hello.Class)
	if err != nil {
		return false, err
	}
	send := func(h *workerpb.Hello) error {
		st, err := json.Marshal(a.State())
		if err != nil {
			return err
		}
		return stream.Send(&workerpb.WorkerReport{Hello: h, StatusJson: st})
	}
	if err := send(&workerpb.Hello{WorkerId: a.Hello.WorkerID, Address: a.Hello.Address, ClassJson: class,
		Incarnation: a.Hello.Incarnation}); err != nil {
		return false, err
	}
	reply, err := stream.Recv()
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.InvalidArgument {
			a.Log.Error("controller refused this worker", "controller", a.Controller, "err", err)
		}
		return false, err
	}
	every := time.Duration(reply.GetReportEveryMs()) * time.Millisecond
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	a.Log.Info("joined controller", "controller", a.Controller, "controller_id", reply.GetControllerId(), "report_every", every)
	if a.OnJoin != nil {
		a.OnJoin(reply.GetControllerId())
	}
	// The controller never sends again; a Recv that returns means the
	// stream is over.
	done := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		done <- err
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = stream.CloseSend()
			return true, ctx.Err()
		case err := <-done:
			return true, err
		case <-tick.C:
			if err := send(nil); err != nil {
				return true, err
			}
		}
	}
}
