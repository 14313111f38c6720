package workerrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/health"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/worker"
	"github.com/infaas/infaas/workerrpc/workerpb"
)

// CallTimeout bounds the calls whose signature has no context (Unload,
// State, and ID before the ID is known).
const CallTimeout = 10 * time.Second

// Client is a remote worker. Its methods match the in-process
// *worker.Worker's (see Local), and its errors satisfy errors.Is with the
// worker's sentinels. Safe for concurrent use; every call shares one
// connection.
type Client struct {
	conn *grpc.ClientConn
	rpc  workerpb.WorkerClient
	own  bool // Close closes conn

	mu sync.Mutex
	id string
}

// Dial connects to the worker at addr and fetches its ID with one State
// call under ctx, failing if the worker does not answer. Without options
// it uses plaintext (for loopback and trusted networks); opts are applied
// after the defaults, so they can replace the credentials. Close the
// Client to close the connection.
func Dial(ctx context.Context, addr string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}, opts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("dial worker %s: %w", addr, err)
	}
	c := NewClient(conn)
	c.own = true
	if _, err := c.state(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial worker %s: %w", addr, err)
	}
	return c, nil
}

// NewClient wraps a connection its caller owns (and closes). Calls should
// allow messages of MaxMessageBytes (grpc.MaxCallRecvMsgSize and
// grpc.MaxCallSendMsgSize) for large batches. The worker's ID is fetched
// on the first call to ID or State.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{conn: conn, rpc: workerpb.NewWorkerClient(conn)}
}

// Close closes the connection if Dial opened it; a Client from NewClient
// leaves the connection to its owner.
func (c *Client) Close() error {
	if !c.own {
		return nil
	}
	return c.conn.Close()
}

// ID is the worker's ID, as its State reports it. It is known after Dial;
// a Client from NewClient fetches it on first use and returns "" while the
// worker cannot be reached.
func (c *Client) ID() string {
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id != "" {
		return id
	}
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	st, err := c.state(ctx)
	if err != nil {
		return ""
	}
	return st.ID
}

// Load loads a replica of v on the worker and returns its ID.
func (c *Client) Load(ctx context.Context, v catalog.Variant, a catalog.Architecture) (string, error) {
	vj, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("load %s: encode variant: %w", v.Name, err)
	}
	aj, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("load %s: encode architecture: %w", v.Name, err)
	}
	resp, err := c.rpc.Load(ctx, &workerpb.LoadRequest{VariantJson: vj, ArchitectureJson: aj})
	if err != nil {
		return "", fromStatus(err)
	}
	return resp.GetReplicaId(), nil
}

// Unload drains replica id (within CallTimeout).
func (c *Client) Unload(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	_, err := c.rpc.Unload(ctx, &workerpb.UnloadRequest{ReplicaId: id})
	return fromStatus(err)
}

// Infer runs req on replica id. The inputs' bytes are sent as they are and
// the response's outputs are the received buffers; neither is copied.
func (c *Client) Infer(ctx context.Context, id string, req worker.Request) (worker.Response, error) {
	if req.Batch > math.MaxInt32 || req.Batch < math.MinInt32 {
		return worker.Response{}, fmt.Errorf("%w: batch %d does not fit the wire's int32", worker.ErrBadInput, req.Batch)
	}
	in := &workerpb.InferRequest{ReplicaId: id, Inputs: toWire(req.Inputs), Batch: int32(req.Batch)}
	if !req.Deadline.IsZero() {
		// The wire carries what is left of the budget, not the instant:
		// the worker's clock is not ours. A spent budget still travels
		// (1 ns), so the worker sheds it instead of serving it late.
		in.BudgetNs = max(time.Until(req.Deadline).Nanoseconds(), 1)
	}
	if a := req.Asked; a != (health.Asked{}) {
		in.Asked = &workerpb.Asked{LatencyMs: a.LatencyMs, MinAccuracy: a.MinAccuracy, Pinned: a.Pinned}
	}
	out, err := c.rpc.Infer(ctx, in)
	if err != nil {
		return worker.Response{}, fromStatus(err)
	}
	return worker.Response{
		Outputs:     fromWire(out.GetOutputs()),
		QueueTime:   time.Duration(out.GetQueueNs()),
		ComputeTime: time.Duration(out.GetComputeNs()),
		BatchSize:   int(out.GetBatchSize()),
		Replica:     out.GetReplica(),
		Variant:     out.GetVariant(),
	}, nil
}

// Profile measures variant v on the worker's hardware.
func (c *Client) Profile(ctx context.Context, v catalog.Variant, a catalog.Architecture) (catalog.Profile, error) {
	vj, err := json.Marshal(v)
	if err != nil {
		return catalog.Profile{}, fmt.Errorf("profile %s: encode variant: %w", v.Name, err)
	}
	aj, err := json.Marshal(a)
	if err != nil {
		return catalog.Profile{}, fmt.Errorf("profile %s: encode architecture: %w", v.Name, err)
	}
	resp, err := c.rpc.Profile(ctx, &workerpb.ProfileRequest{VariantJson: vj, ArchitectureJson: aj})
	if err != nil {
		return catalog.Profile{}, fromStatus(err)
	}
	var p catalog.Profile
	if err := json.Unmarshal(resp.GetProfileJson(), &p); err != nil {
		return catalog.Profile{}, fmt.Errorf("profile %s: decode profile: %w", v.Name, err)
	}
	return p, nil
}

// State snapshots the worker (within CallTimeout). When the worker cannot
// be reached it returns a Status with only the ID and the time, Running
// false; the controller treats that as a worker that is down.
func (c *Client) State() worker.Status {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	st, err := c.state(ctx)
	if err != nil {
		c.mu.Lock()
		id := c.id
		c.mu.Unlock()
		return worker.Status{ID: id, Running: false, At: time.Now()}
	}
	return st
}

// state fetches the worker's Status and remembers its ID.
func (c *Client) state(ctx context.Context) (worker.Status, error) {
	resp, err := c.rpc.State(ctx, &workerpb.StateRequest{})
	if err != nil {
		return worker.Status{}, fromStatus(err)
	}
	var st worker.Status
	if err := json.Unmarshal(resp.GetStatusJson(), &st); err != nil {
		return worker.Status{}, fmt.Errorf("decode worker status: %w", err)
	}
	c.mu.Lock()
	if c.id == "" {
		c.id = st.ID
	}
	c.mu.Unlock()
	return st, nil
}

// Local is the in-process worker with the Client's method set, so the
// controller can hold either behind one interface.
type Local struct{ *worker.Worker }

// ID is the worker's configured ID.
func (l Local) ID() string { return l.Config().ID }

// toWire and fromWire convert tensors to and from the wire's, sharing
// their shape and data.
func toWire(ts []inference.Tensor) []*workerpb.Tensor {
	out := make([]*workerpb.Tensor, len(ts))
	for i, t := range ts {
		out[i] = &workerpb.Tensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape, Data: t.Data}
	}
	return out
}

func fromWire(ts []*workerpb.Tensor) []inference.Tensor {
	out := make([]inference.Tensor, len(ts))
	for i, t := range ts {
		out[i] = inference.Tensor{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape(), Data: t.GetData()}
	}
	return out
}
