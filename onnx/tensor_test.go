package onnx

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestTensorFloats(t *testing.T) {
	want := []float32{1.5, -2, 0, float32(math.Inf(1)), 3.25, -0.125}
	raw := NewFloatTensor("w", []int64{2, 3}, want)
	tests := []struct {
		name    string
		tensor  *TensorProto
		want    []float32
		wantErr string
	}{
		{"raw_data", raw, want, ""},
		{"float_data", &TensorProto{Name: "w", DataType: int32(TensorProto_FLOAT), Dims: []int64{2, 3}, FloatData: want}, want, ""},
		{"scalar", NewFloatTensor("s", nil, []float32{7}), []float32{7}, ""},
		{"empty", NewFloatTensor("e", []int64{0, 4}, nil), []float32{}, ""},
		{"raw bytes short", &TensorProto{Name: "w", DataType: int32(TensorProto_FLOAT), Dims: []int64{2, 3}, RawData: raw.RawData[:20]}, nil, "raw bytes"},
		{"float_data short", &TensorProto{Name: "w", DataType: int32(TensorProto_FLOAT), Dims: []int64{2, 3}, FloatData: want[:5]}, nil, "float_data"},
		{"not float", NewInt8Tensor("q", []int64{2}, []int8{1, 2}), nil, "want FLOAT"},
		{"external", &TensorProto{Name: "x", DataType: int32(TensorProto_FLOAT), Dims: []int64{2}, DataLocation: TensorProto_EXTERNAL.Enum()}, nil, "externally"},
		{"negative dim", &TensorProto{Name: "n", DataType: int32(TensorProto_FLOAT), Dims: []int64{-1}}, nil, "negative"},
		{"nil", nil, nil, "nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TensorFloats(tc.tensor)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("TensorFloats: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("TensorFloats = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTensorConstructors(t *testing.T) {
	tests := []struct {
		name      string
		tensor    *TensorProto
		wantType  TensorProto_DataType
		wantRaw   []byte
		wantBytes int64
	}{
		{"float", NewFloatTensor("f", []int64{2}, []float32{1, -2}), TensorProto_FLOAT, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}, 8},
		{"int8", NewInt8Tensor("i", []int64{3}, []int8{-128, 0, 127}), TensorProto_INT8, []byte{0x80, 0, 0x7f}, 3},
		{"uint8", NewUint8Tensor("u", []int64{1, 2}, []uint8{0, 255}), TensorProto_UINT8, []byte{0, 255}, 2},
		{"int64", NewInt64Tensor("s", []int64{1}, []int64{-1}), TensorProto_INT64, []byte{255, 255, 255, 255, 255, 255, 255, 255}, 8},
		{"int8 scalar", NewInt8Tensor("z", nil, []int8{0}), TensorProto_INT8, []byte{0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DataType(tc.tensor); got != tc.wantType {
				t.Errorf("type = %s, want %s", got, tc.wantType)
			}
			if !reflect.DeepEqual(tc.tensor.GetRawData(), tc.wantRaw) {
				t.Errorf("raw = %x, want %x", tc.tensor.GetRawData(), tc.wantRaw)
			}
			if got := DataBytes(tc.tensor); got != tc.wantBytes {
				t.Errorf("DataBytes = %d, want %d", got, tc.wantBytes)
			}
		})
	}
}

func TestConstructorPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "want 6") {
			t.Fatalf("recover() = %v, want a panic naming the expected length", r)
		}
	}()
	NewFloatTensor("w", []int64{2, 3}, []float32{1})
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		name    string
		dims    []int64
		want    int64
		wantErr bool
	}{
		{"scalar", nil, 1, false},
		{"matrix", []int64{3, 4}, 12, false},
		{"zero", []int64{3, 0, 5}, 0, false},
		{"negative", []int64{3, -1}, 0, true},
		{"overflow", []int64{1 << 40, 1 << 40}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NumElements(tc.dims)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("NumElements(%v) = %d, %v; want %d, err=%v", tc.dims, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
