// Command gen writes the contract models (package zoo/contracts) to
// <out>/<name>.onnx. Run it from the repository root after changing a model:
//
//	go run ./zoo/contracts/gen
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/infaas/infaas/zoo/contracts"
)

func main() {
	out := flag.String("out", filepath.Join("zoo", "models"), "directory to write <name>.onnx into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, m := range contracts.Models() {
		b, err := contracts.Build(m.Name)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, m.Name+".onnx")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s\t%d bytes\n", path, len(b))
	}
	return nil
}
