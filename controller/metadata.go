package controller

import (
	"context"
	"fmt"

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
	switch kind {
	case selection.KindUseCase:
		u := v.useCases[n]
		md.Platform = "infaas_model_less"
		md.Inputs = []inference.TensorMetadata{{Name: u.Input.Name, Datatype: u.Input.DataType, Shape: u.Input.Shape}}
		md.Outputs = []inference.TensorMetadata{{Name: "output", Datatype: "FP32", Shape: []int64{-1, int64(u.Classes)}}}
		return md, nil
	case selection.KindVariant:
		n = v.variants[n].Architecture
	}
	a := v.archs[n]
	md.Inputs = []inference.TensorMetadata{{Name: a.Input.Name, Datatype: a.Input.DataType, Shape: a.Input.Shape}}
	md.Outputs = []inference.TensorMetadata{{Name: a.Output.Name, Datatype: a.Output.DataType, Shape: a.Output.Shape}}
	return md, nil
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
