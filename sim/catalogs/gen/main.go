// Command gen writes the ONNX models of the convnets catalogue: three
// convolutional classifiers of one use case, small to large, whose costs
// span what real CNN serving sees on one CPU core (about 1 ms to 15 ms a
// sample). `make sim-catalog` registers them with a live infaas, which
// generates and profiles their variants, and saves what it measured as
// sim/catalogs/convnets.json.
//
//	go run ./sim/catalogs/gen DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/infaas/infaas/internal/zootest"
)

// nets are the architectures: name, channels, layers, declared accuracy.
var nets = []struct {
	name             string
	channels, layers int
	accuracy         float64
}{
	{"convnet-s", 32, 2, 85},
	{"convnet-m", 96, 3, 90},
	{"convnet-l", 160, 4, 95},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, n := range nets {
		path := filepath.Join(dir, n.name+".onnx")
		if err := os.WriteFile(path, zootest.ConvNet(n.channels, n.layers, true), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s %s %g\n", n.name, path, n.accuracy)
	}
}
