package controller

import (
	"context"
	"fmt"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/inference"
	"github.com/infaas/infaas/selection"
)

// ModelMetadata describes a variant, an architecture or a use case.
func (c *Controller) ModelMetadata(ctx context.Context, name string) (inference.ModelMetadata, error) {
	v := c.view.Load()
	if v == nil {
		return inference.ModelMetadata{}, fmt.Errorf("%w: the controller is starting", ErrNotReady)
	}
	n, kind, err := v.resolve(name)
	if err != nil {
		return inference.ModelMetadata{}, err
	}
	md := inference.ModelMetadata{Name: name, Versions: []string{ModelVersion}, Platform: "onnxruntime_onnx"}
	if kind == selection.KindUseCase {
		md.Platform = "infaas_model_less"
	}
	c2, ok := v.contractOf(n, kind)
	if !ok {
		return inference.ModelMetadata{}, fmt.Errorf("%w: %q has no tensor contract", ErrUnknownModel, name)
	}
	md.Inputs, md.Outputs = tensorMetadata(c2.Inputs), tensorMetadata(c2.Outputs)
	return md, nil
}

// tensorMetadata reports tensors with -1 for every dynamic dimension.
func tensorMetadata(ts []catalog.TensorSpec) []inference.TensorMetadata {
	out := make([]inference.TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = inference.TensorMetadata{Name: t.Name, Datatype: t.DataType, Shape: t.Shape}
	}
	return out
}

// ModelReady: a registered model is ready — infaas loads a variant on the
// first query (or before, when the model autoscaler decides).
func (c *Controller) ModelReady(ctx context.Context, name string) (bool, error) {
	v := c.view.Load()
	if v == nil {
		return false, nil
	}
	if _, _, err := v.resolve(name); err != nil {
		return false, err
	}
	return true, nil
}
