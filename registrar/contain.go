package registrar

import (
	"fmt"
	"runtime/debug"
)

// contain runs f, turning a panic in it — a parser or rewriter meeting
// bytes it did not expect in a user's model — into an error that says
// which step failed and what to check, so that one malformed upload fails
// its own registration and never the server.
func (r *Registrar) contain(step string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("registration step panicked", "step", step, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %s failed on this model (%v); the file may be malformed — check it with onnx.checker.check_model", ErrRejected, step, p)
		}
	}()
	return f()
}
