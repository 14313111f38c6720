package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/infaas/infaas/executor"
)

func runVersion(ctx context.Context, args []string) error {
	fmt.Printf("infaas (go %s)\n", runtime.Version())
	if err := executor.Init(); err != nil {
		fmt.Printf("onnxruntime: not loaded: %v\n", err)
		return nil
	}
	fmt.Printf("onnxruntime %s (%s)\n", executor.Version(), executor.LibraryPath())
	return nil
}
